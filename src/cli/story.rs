//! `khabar story ID`: the articles of a story, oldest first; a table on a terminal (headlines
//! laid out right to left where they are written so), one proto3 JSON line per article
//! otherwise.

use std::process::ExitCode;

use super::{
    Output, Stop, as_table, connect_error, json,
    list::time_cell,
    refused,
    table::{Column, Table, terminal_width},
    usage_error,
};
use crate::{config::StoryArgs, pb::khabar::v1 as pb};

fn row(article: &pb::StoryArticle) -> Vec<String> {
    vec![
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
        if article.duplicate_of.is_empty() {
            "first".to_owned()
        } else {
            format!("{:.2}", article.similarity)
        },
        article.headline.clone(),
    ]
}

fn print(out: &mut Output, articles: &[pb::StoryArticle], table: bool) -> Result<(), Stop> {
    if !table {
        for article in articles {
            let line = json::to_line(article).map_err(|e| Stop::Failed(e.to_string()))?;
            out.line(&line)?;
        }
        return Ok(());
    }
    let column = |header, bidi| Column { header, bidi };
    let mut table = Table::new(
        vec![
            column("ID", false),
            column("PUBLISHED", false),
            column("SOURCE", false),
            column("SIMILARITY", false),
            column("HEADLINE", true),
        ],
        terminal_width(),
    );
    let rows: Vec<Vec<String>> = articles.iter().map(row).collect();
    table.fit(&rows);
    out.line(&table.header())?;
    for cells in &rows {
        out.line(&table.row(cells))?;
    }
    Ok(())
}

/// Runs `khabar story`.
pub async fn story(args: StoryArgs) -> ExitCode {
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let answer = connection
        .articles()
        .get_story(pb::GetStoryRequest { story_id: args.id })
        .await;
    let articles = match answer {
        Ok(response) => response.into_inner().articles,
        Err(status) => return refused(&status),
    };
    match print(&mut Output::new(), &articles, as_table(args.format)) {
        Ok(()) | Err(Stop::Closed) => ExitCode::SUCCESS,
        Err(Stop::Failed(e)) => usage_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_article_is_marked_and_copies_show_their_similarity() {
        let first = pb::StoryArticle {
            id: "01KAVJ0G0T8RQS2D5W8MZ3C6XE".into(),
            source: Some(pb::Source {
                id: "alkhabar".into(),
                ..Default::default()
            }),
            headline: "خبر".into(),
            ..Default::default()
        };
        let copy = pb::StoryArticle {
            duplicate_of: first.id.clone(),
            similarity: 0.834,
            ..first.clone()
        };
        assert_eq!(row(&first)[3], "first");
        assert_eq!(row(&copy)[3], "0.83");
        assert_eq!(row(&copy)[4], "خبر");
    }
}
