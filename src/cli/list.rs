//! `khabar list`: every article matching the filters, newest (or most urgent) first, page after
//! page until
//! `--limit` or the end; a table on a terminal, one proto3 JSON line per article otherwise.

use std::process::ExitCode;

use super::{
    EXIT_REFUSED, Output, Stop, as_table, connect_error, json, refused,
    table::{Column, Table, terminal_width},
    usage_error,
};
use crate::{
    config::{ListArgs, ListOrderArg},
    pb::khabar::v1 as pb,
};

/// Prints articles as they come, as a table or as JSON lines.
enum Printer {
    Table {
        table: Table,
        status: bool,
        header_done: bool,
    },
    Json,
}

impl Printer {
    fn new(table: bool, status: bool) -> Self {
        if !table {
            return Self::Json;
        }
        let column = |header, bidi| Column { header, bidi };
        let mut columns = vec![
            column("ID", false),
            column("PUBLISHED", false),
            column("SOURCE", false),
            column("LANGUAGE", false),
        ];
        if status {
            columns.push(column("STATUS", false));
        }
        columns.push(column("HEADLINE", true));
        Self::Table {
            table: Table::new(columns, terminal_width()),
            status,
            header_done: false,
        }
    }

    fn page(&mut self, out: &mut Output, articles: &[pb::Article]) -> Result<(), Stop> {
        match self {
            Self::Json => {
                for article in articles {
                    let line = json::to_line(article).map_err(|e| Stop::Failed(e.to_string()))?;
                    out.line(&line)?;
                }
            }
            Self::Table {
                table,
                status,
                header_done,
            } => {
                if articles.is_empty() {
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = articles.iter().map(|a| row(a, *status)).collect();
                table.fit(&rows);
                if !*header_done {
                    out.line(&table.header())?;
                    *header_done = true;
                }
                for cells in &rows {
                    out.line(&table.row(cells))?;
                }
            }
        }
        Ok(())
    }
}

fn row(article: &pb::Article, status: bool) -> Vec<String> {
    let mut cells = vec![
        article.id.clone(),
        article
            .published_at
            .map(|t| time_cell(&t))
            .unwrap_or_default(),
        article
            .source
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default(),
        article.language.clone(),
    ];
    if status {
        cells.push(status_cell(article.status()));
    }
    cells.push(article.headline.clone());
    cells
}

/// A time to the second, RFC 3339 in UTC.
pub(super) fn time_cell(time: &pbjson_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(time.seconds, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{}s", time.seconds))
}

fn status_cell(status: pb::ArticleStatus) -> String {
    match status {
        pb::ArticleStatus::Usable => "usable",
        pb::ArticleStatus::Withheld => "withheld",
        pb::ArticleStatus::Canceled => "retracted",
        pb::ArticleStatus::Unspecified => "-",
    }
    .to_owned()
}

/// Runs `khabar list`.
pub async fn list(args: ListArgs) -> ExitCode {
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let mut client = connection.articles();
    let mut request = pb::ListArticlesRequest {
        source_ids: args.sources,
        languages: args.languages,
        tags: args.tags,
        published_after: args.published_after,
        published_before: args.published_before,
        page_size: 0,
        page_token: String::new(),
        include_retracted: args.include_retracted,
        story_ids: args.stories,
        include_embargoed: args.include_embargoed,
        include_expired: args.include_expired,
        max_urgency: args.max_urgency.unwrap_or(0),
        genres: args.genres,
        order_by: match args.order_by {
            ListOrderArg::Newest => pb::ListOrder::Unspecified,
            ListOrderArg::Urgency => pb::ListOrder::Urgency,
        }
        .into(),
    };
    let mut printer = Printer::new(as_table(args.format), args.include_retracted);
    let mut out = Output::new();
    let mut printed = 0u64;
    loop {
        let wanted = args.limit.map_or(u64::from(args.page_size), |limit| {
            (limit - printed).min(u64::from(args.page_size))
        });
        // At most 1000 (the option's range), so it fits.
        request.page_size = i32::try_from(wanted).unwrap_or(i32::MAX);
        let page = match client.list_articles(request.clone()).await {
            Ok(response) => response.into_inner(),
            Err(status) => return refused(&status),
        };
        // A page may hold more than asked for only if the server ignores page_size; --limit holds.
        let take = page
            .articles
            .len()
            .min(usize::try_from(wanted).unwrap_or(usize::MAX));
        match printer.page(&mut out, &page.articles[..take]) {
            Ok(()) => {}
            Err(Stop::Closed) => return ExitCode::SUCCESS,
            Err(Stop::Failed(e)) => return usage_error(e),
        }
        printed += take as u64;
        if page.next_page_token.is_empty() || args.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
        if page.next_page_token == request.page_token {
            eprintln!("error: the server answered the same page token twice; stopping");
            return ExitCode::from(EXIT_REFUSED);
        }
        request.page_token = page.next_page_token;
    }
    if printed == 0 && matches!(printer, Printer::Table { .. }) {
        eprintln!("no articles match");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_second_in_utc() {
        let time = pbjson_types::Timestamp {
            seconds: 1_467_363_600,
            nanos: 999_000_000,
        };
        assert_eq!(time_cell(&time), "2016-07-01T09:00:00Z");
    }

    #[test]
    fn rows_show_the_status_only_when_asked() {
        let article = pb::Article {
            id: "01KAVJ0G0T8RQS2D5W8MZ3C6XE".into(),
            source: Some(pb::Source {
                id: "alkhabar".into(),
                ..Default::default()
            }),
            language: "ar".into(),
            headline: "خبر".into(),
            status: pb::ArticleStatus::Canceled.into(),
            ..Default::default()
        };
        assert_eq!(
            row(&article, false),
            ["01KAVJ0G0T8RQS2D5W8MZ3C6XE", "", "alkhabar", "ar", "خبر"]
        );
        assert_eq!(row(&article, true)[4], "retracted");
    }
}
