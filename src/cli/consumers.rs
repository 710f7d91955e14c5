//! `khabar consumers list|get NAME|delete NAME`: the durable feed consumers and their progress.

use std::process::ExitCode;

use super::{
    Output, Stop, as_table, connect_error, json,
    list::time_cell,
    print_pretty, refused,
    table::{Column, Table, terminal_width},
    usage_error,
};
use crate::{
    client::ClientArgs,
    config::{ConsumersArgs, ConsumersCommand, OutputFormat},
    pb::khabar::v1 as pb,
};

/// Runs `khabar consumers`.
pub async fn consumers(args: ConsumersArgs) -> ExitCode {
    match args.command {
        ConsumersCommand::List { format, client } => list(format, client).await,
        ConsumersCommand::Get { name, client } => get(name, client).await,
        ConsumersCommand::Delete { name, client } => delete(name, client).await,
    }
}

async fn list(format: OutputFormat, client: ClientArgs) -> ExitCode {
    let connection = match client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let consumers = match connection
        .feeds()
        .list_consumers(pb::ListConsumersRequest {})
        .await
    {
        Ok(response) => response.into_inner().consumers,
        Err(status) => return refused(&status),
    };
    let table = as_table(format);
    match print_list(&consumers, table) {
        Ok(()) | Err(Stop::Closed) => {}
        Err(Stop::Failed(e)) => return usage_error(e),
    }
    if consumers.is_empty() && table {
        eprintln!("no consumers");
    }
    ExitCode::SUCCESS
}

fn print_list(consumers: &[pb::Consumer], table: bool) -> Result<(), Stop> {
    let mut out = Output::new();
    if !table {
        for consumer in consumers {
            let line = json::to_line(consumer).map_err(|e| Stop::Failed(e.to_string()))?;
            out.line(&line)?;
        }
        return Ok(());
    }
    if consumers.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = consumers.iter().map(row).collect();
    let column = |header| Column {
        header,
        bidi: false,
    };
    let mut table = Table::new(
        vec![
            column("NAME"),
            column("ACKED"),
            column("HEAD"),
            column("LAG"),
            column("CREATED"),
            column("LAST ACK"),
        ],
        terminal_width(),
    );
    table.fit(&rows);
    out.line(&table.header())?;
    for cells in &rows {
        out.line(&table.row(cells))?;
    }
    Ok(())
}

fn row(consumer: &pb::Consumer) -> Vec<String> {
    let time = |t: &Option<pbjson_types::Timestamp>| t.as_ref().map_or("-".to_owned(), time_cell);
    vec![
        consumer.name.clone(),
        consumer.acked_cursor.to_string(),
        consumer.head_cursor.to_string(),
        consumer.lag.to_string(),
        time(&consumer.created_at),
        time(&consumer.acked_at),
    ]
}

async fn get(name: String, client: ClientArgs) -> ExitCode {
    let connection = match client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    match connection
        .feeds()
        .get_consumer(pb::GetConsumerRequest { name })
        .await
    {
        Ok(response) => print_pretty(&response.into_inner()),
        Err(status) => refused(&status),
    }
}

async fn delete(name: String, client: ClientArgs) -> ExitCode {
    let connection = match client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    match connection
        .feeds()
        .delete_consumer(pb::DeleteConsumerRequest { name: name.clone() })
        .await
    {
        Ok(_) => {
            println!("deleted consumer {name}");
            ExitCode::SUCCESS
        }
        Err(status) => refused(&status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_that_never_acknowledged_shows_a_dash() {
        let consumer = pb::Consumer {
            name: "indexer".into(),
            acked_cursor: 0,
            head_cursor: 4,
            lag: 4,
            created_at: Some(pbjson_types::Timestamp {
                seconds: 1_467_363_600,
                nanos: 5,
            }),
            acked_at: None,
        };
        assert_eq!(
            row(&consumer),
            ["indexer", "0", "4", "4", "2016-07-01T09:00:00Z", "-"]
        );
    }
}
