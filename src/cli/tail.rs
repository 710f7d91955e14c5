//! `khabar tail`: follows the feed and prints one compact JSON line per event (proto3 JSON, or
//! the article in ninjs with `--ninjs`), acknowledging a durable consumer's progress only for
//! events already written out.

use std::{
    io::{ErrorKind, Write},
    process::ExitCode,
    time::Duration,
};

use super::{EXIT_REFUSED, connect_error, describe, json, usage_error};
use crate::{
    client::Connection,
    config::TailArgs,
    pb::khabar::v1::{self as pb, EventKind, subscribe_request::Start},
};

/// Acknowledge at least this often while events stream in...
const ACK_EVERY_EVENTS: u64 = 128;
/// ...and as soon as the feed pauses this long.
const ACK_WHEN_IDLE: Duration = Duration::from_millis(200);

fn request(args: &TailArgs) -> pb::SubscribeRequest {
    let start = if args.from_beginning {
        Start::FromBeginning(true)
    } else if let Some(cursor) = args.after {
        Start::AfterCursor(cursor)
    } else {
        Start::FromNow(true)
    };
    pb::SubscribeRequest {
        start: Some(start),
        filter: Some(pb::FeedFilter {
            source_ids: args.sources.clone(),
            languages: args.languages.clone(),
            tags: args.tags.clone(),
            kinds: Vec::new(),
            first_of_story: args.first_of_story,
            max_urgency: args.max_urgency.unwrap_or(0),
            genres: args.genres.clone(),
        }),
        consumer: args.consumer.clone().unwrap_or_default(),
    }
}

/// An event's article as one line of ninjs; a retraction's article is canceled, as ninjs
/// carries it.
fn event_ninjs(event: &pb::FeedEvent) -> Result<String, String> {
    let article = event
        .article
        .clone()
        .ok_or("the event carries no article")?;
    let article = crate::wire::article_from_pb(article)?;
    serde_json::to_string(&crate::ninjs::to_ninjs(&article)).map_err(|e| e.to_string())
}

/// A durable consumer's acknowledged progress, sent lazily.
struct Acks<'a> {
    connection: &'a Connection,
    consumer: Option<String>,
    written: Option<u64>,
    unacked: u64,
}

impl Acks<'_> {
    fn written(&mut self, cursor: u64) {
        if self.consumer.is_some() {
            self.written = Some(cursor);
            self.unacked += 1;
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        let (Some(consumer), Some(cursor)) = (&self.consumer, self.written.take()) else {
            return Ok(());
        };
        self.unacked = 0;
        self.connection
            .feeds()
            .ack(pb::AckRequest {
                consumer: consumer.clone(),
                cursor,
            })
            .await
            .map(|_| ())
            .map_err(|status| {
                format!(
                    "acknowledging cursor {cursor} failed: {}",
                    describe(&status)
                )
            })
    }
}

/// Runs `khabar tail`.
pub async fn tail(args: TailArgs) -> ExitCode {
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let mut events = match connection.feeds().subscribe(request(&args)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            eprintln!("error: {}", describe(&status));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let mut acks = Acks {
        connection: &connection,
        consumer: args.consumer.clone(),
        written: None,
        unacked: 0,
    };
    let mut printed = 0u64;
    let mut stdout = std::io::stdout().lock();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let outcome: Result<(), String> = loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            break Ok(());
        }
        let next = async {
            if acks.written.is_some() {
                tokio::time::timeout(ACK_WHEN_IDLE, events.message())
                    .await
                    .ok()
            } else {
                Some(events.message().await)
            }
        };
        let next = tokio::select! {
            next = next => next,
            _ = &mut interrupted => break Ok(()),
        };
        let event = match next {
            None => {
                // The feed paused: a good moment to save progress.
                if let Err(e) = acks.flush().await {
                    break Err(e);
                }
                continue;
            }
            Some(Ok(Some(event))) => event,
            Some(Ok(None)) => break Ok(()),
            Some(Err(status)) => break Err(format!("the feed ended: {}", describe(&status))),
        };
        let checkpoint = event.kind() == EventKind::Checkpoint;
        if !checkpoint || args.checkpoints {
            let line = if args.ninjs {
                event_ninjs(&event)
            } else {
                json::to_line(&event).map_err(|e| e.to_string())
            };
            let line = match line {
                Ok(line) => line,
                Err(e) => break Err(format!("cannot print event {} as JSON: {e}", event.cursor)),
            };
            if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
                if e.kind() == ErrorKind::BrokenPipe {
                    // The reader went away (`| head`): not an error, and nothing more to ack.
                    break Ok(());
                }
                break Err(format!("cannot write to standard output: {e}"));
            }
            printed += 1;
        }
        // A checkpoint's cursor is safe to acknowledge too: everything up to it was examined.
        acks.written(event.cursor);
        if acks.unacked >= ACK_EVERY_EVENTS
            && let Err(e) = acks.flush().await
        {
            break Err(e);
        }
    };
    let saved = acks.flush().await;
    match outcome.and(saved) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.starts_with("the feed ended") => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_REFUSED)
        }
        Err(e) => usage_error(e),
    }
}
