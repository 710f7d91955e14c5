//! Load and checks for `tests/failover.sh`: ingests through several khabar servers on one
//! PostgreSQL cluster while the script kills the primary, retrying what is not acknowledged
//! (UNAVAILABLE is retried: ingest is idempotent by natural key), then checks that every
//! acknowledged article and event is in the database, that cursors have no gaps, and that a feed
//! delivers them all in order. Prints one result line and exits 1 if anything acknowledged is
//! missing. Every loop is bounded by a count or by `--seconds`.
//!
//! ```sh
//! cargo run --release --example failover -- --servers http://127.0.0.1:50061,http://127.0.0.1:50062 \
//!     --database-url 'postgres://postgres@127.0.0.1:5433,127.0.0.1:5434/khabar?target_session_attrs=read-write' \
//!     --seconds 45 --kill-after 12 --kill-command 'kill -9 1234'
//! ```

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use khabar::pb::khabar::v1::{
    self as pb, EventKind, feed_service_client::FeedServiceClient,
    ingest_service_client::IngestServiceClient, subscribe_request::Start,
};
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};

#[derive(Parser)]
#[command(about = "Ingest load across a failover, then check nothing acknowledged was lost")]
struct Cli {
    /// khabar servers, comma-separated URLs; writers are spread over them.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// The database the servers share, to check what it holds afterwards.
    #[arg(long)]
    database_url: String,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// How long to ingest.
    #[arg(long, default_value_t = 45)]
    seconds: u64,
    /// When to run --kill-command, in seconds after the start.
    #[arg(long, default_value_t = 12)]
    kill_after: u64,
    /// Shell command that kills the primary.
    #[arg(long)]
    kill_command: String,
    /// The seed article (proto3 JSON IngestRequest).
    #[arg(long, default_value = "tests/fixtures/seed-article.ingest.json")]
    seed: String,
}

/// One acknowledged ingest.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    cursor: u64,
    at: Duration,
}

#[derive(Default)]
struct Tally {
    acks: BTreeMap<String, Ack>,
    retries: u64,
    unknown_outcomes: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("failover check failed to run: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let seed: pb::IngestRequest = serde_json::from_str(&std::fs::read_to_string(&cli.seed)?)?;
    let mut channels = Vec::new();
    for server in &cli.servers {
        channels.push(
            Channel::from_shared(server.clone())?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .connect_lazy(),
        );
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(cli.seconds);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut writers = Vec::new();
    for w in 0..cli.writers {
        let mut client = IngestServiceClient::new(channels[w % channels.len()].clone());
        let (tally, seed) = (tally.clone(), seed.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                let key = format!("failover-{w}-{n}");
                let mut request = seed.clone();
                if let Some(article) = request.article.as_mut() {
                    article.uri = format!("https://alkhabar.example/failover/{key}");
                    article.headline = format!("{} {key}", article.headline);
                }
                // The same article until it is acknowledged, or the run is over.
                while Instant::now() < deadline {
                    match client.ingest(request.clone()).await {
                        Ok(answer) => {
                            let answer = answer.into_inner();
                            let ack = Ack {
                                id: answer.id,
                                cursor: answer.cursor,
                                at: started.elapsed(),
                            };
                            if let Ok(mut tally) = tally.lock() {
                                tally.acks.insert(key.clone(), ack);
                            }
                            break;
                        }
                        Err(status) => {
                            if let Ok(mut tally) = tally.lock() {
                                tally.retries += 1;
                                if status.message().contains("may or may not") {
                                    tally.unknown_outcomes += 1;
                                }
                            }
                            if !matches!(
                                status.code(),
                                Code::Unavailable | Code::Unknown | Code::DeadlineExceeded
                            ) {
                                eprintln!(
                                    "{key}: unexpected {:?}: {}",
                                    status.code(),
                                    status.message()
                                );
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                n += 1;
            }
        }));
    }
    let kill_at = started + Duration::from_secs(cli.kill_after);
    tokio::time::sleep_until(kill_at.into()).await;
    let killed_at = started.elapsed();
    let kill_command = cli.kill_command.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-c", &kill_command])
            .status()
    })
    .await??;
    eprintln!(
        "killed the primary at {:.1}s ({status})",
        killed_at.as_secs_f64()
    );
    for writer in writers {
        writer.await?;
    }
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| "writers still running")?
        .into_inner()
        .map_err(|_| "a writer panicked")?;

    // The longest stretch without an acknowledgement from the last one before the kill on: the
    // write pause.
    let mut times: Vec<Duration> = tally.acks.values().map(|a| a.at).collect();
    times.sort_unstable();
    let from = times.iter().rposition(|t| *t <= killed_at).unwrap_or(0);
    let pause = times[from..]
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or(Duration::ZERO);

    // What the database holds, read from the new primary.
    let (db, connection) =
        tokio_postgres::connect(&cli.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let (events, min, max): (i64, Option<i64>, Option<i64>) = {
        let row = db
            .query_one(
                "SELECT count(*), min(cursor), max(cursor) FROM khabar.events",
                &[],
            )
            .await?;
        (row.get(0), row.get(1), row.get(2))
    };
    let head: i64 = db
        .query_one("SELECT head FROM khabar.log_head", &[])
        .await?
        .get(0);
    let rows = db
        .query(
            "SELECT a.uri, a.id, e.cursor FROM khabar.articles a \
             JOIN khabar.events e ON e.article_id = a.id AND e.kind = 1",
            &[],
        )
        .await?;
    let mut stored: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for row in rows {
        let uri: String = row.get(0);
        let id: Vec<u8> = row.get(1);
        let cursor: i64 = row.get(2);
        let id = <[u8; 16]>::try_from(id.as_slice())
            .map(|b| ulid::Ulid(u128::from_be_bytes(b)).to_string())
            .unwrap_or_default();
        if let Some(key) = uri.rsplit('/').next() {
            stored.insert(key.to_owned(), (id, cursor as u64));
        }
    }
    let mut lost = Vec::new();
    for (key, ack) in &tally.acks {
        match stored.get(key) {
            Some((id, cursor)) if *id == ack.id && *cursor == ack.cursor => {}
            other => lost.push(format!("{key} acked {ack:?}, stored {other:?}")),
        }
    }
    let found = tally.acks.len() - lost.len();
    let mut problems = Vec::new();
    let gap_free = events == head && min.is_none_or(|m| m == 1) && max.unwrap_or(0) == head;

    // A feed from the beginning delivers every event, in order, once.
    let mut feed = FeedServiceClient::new(channels[0].clone()).max_decoding_message_size(64 << 20);
    let mut stream = feed
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut expected = 1u64;
    let feed_deadline = Instant::now() + Duration::from_secs(60);
    while expected as i64 <= head && Instant::now() < feed_deadline {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(event))) if event.kind() == EventKind::Checkpoint => {}
            Ok(Some(Ok(event))) if event.cursor == expected => expected += 1,
            Ok(Some(Ok(event))) => {
                problems.push(format!(
                    "feed: cursor {} where {expected} was due",
                    event.cursor
                ));
                break;
            }
            other => {
                problems.push(format!("feed ended at cursor {expected}: {other:?}"));
                break;
            }
        }
    }
    let feed_complete = expected as i64 == head + 1;

    for line in lost.iter().chain(&problems).take(20) {
        eprintln!("missing: {line}");
    }
    println!(
        "failover: acknowledged={} found={} lost={} pause={:.1}s retries={} unknown_outcomes={} \
         events={events} head={head} gap_free={gap_free} feed_complete={feed_complete}",
        tally.acks.len(),
        found,
        lost.len(),
        pause.as_secs_f64(),
        tally.retries,
        tally.unknown_outcomes,
    );
    Ok(lost.is_empty() && problems.is_empty() && gap_free && feed_complete)
}
