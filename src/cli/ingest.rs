//! `khabar ingest FILE|-`: sends every item through one IngestStream, at most `--window` ahead
//! of their acknowledgements, and reports each rejection and a summary.

use std::{
    fs::File,
    io::{BufReader, Write},
    process::ExitCode,
    sync::Arc,
};

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    EXIT_REFUSED, EXIT_USAGE, connect_error, describe,
    input::{Item, Parsed, Position, read_items},
    progress::Progress,
    usage_error,
};
use crate::{
    config::IngestArgs,
    pb::khabar::v1::{self as pb, IngestOutcome},
    traces,
};

/// What the response loop handles next, in input order, with the input offset of its end.
enum Pending {
    /// Rejected before sending.
    Local(Position, u64, String),
    /// Sent; its response is the next one on the stream. The paths are properties of a ninjs
    /// item that were left out.
    Sent(Position, u64, Vec<String>),
}

/// Counts of outcomes.
#[derive(Debug, Default)]
struct Summary {
    created: u64,
    updated: u64,
    unchanged: u64,
    counters_updated: u64,
    held: u64,
    canceled: u64,
    rejected: u64,
}

impl Summary {
    fn total(&self) -> u64 {
        self.created
            + self.updated
            + self.unchanged
            + self.counters_updated
            + self.held
            + self.canceled
            + self.rejected
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} counters updated, ",
            self.created, self.updated, self.unchanged, self.counters_updated,
        )?;
        // Only embargoed, withheld or canceled input has these; most runs never do.
        if self.held > 0 {
            write!(f, "{} held, ", self.held)?;
        }
        if self.canceled > 0 {
            write!(f, "{} canceled, ", self.canceled)?;
        }
        write!(f, "{} rejected ({} items)", self.rejected, self.total())
    }
}

/// How long the server may take to end the stream once every answer is in.
const STREAM_END_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the stream to its end once every item is answered, so the server ends the call with
/// its status rather than seeing it cancelled; says what went wrong if it did not end cleanly.
async fn finish_stream(responses: &mut tonic::Streaming<pb::IngestResponse>) -> Option<String> {
    match tokio::time::timeout(STREAM_END_WAIT, responses.message()).await {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(_))) => Some("the server answered more items than were sent".to_owned()),
        Ok(Err(status)) => Some(format!(
            "the stream failed after the last answer: {}",
            describe(&status)
        )),
        Err(_) => Some(format!(
            "the server did not end the stream within {}s of the last answer",
            STREAM_END_WAIT.as_secs()
        )),
    }
}

/// Prints a rejection on standard error: the field violations one per line when there are
/// any (the status message repeats them), the message otherwise.
fn report_rejection(
    progress: &Progress,
    position: Position,
    reason: &str,
    violations: &[pb::FieldViolation],
) {
    progress.suspend(|| {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{position}: rejected: {reason}");
        for violation in violations {
            let _ = writeln!(stderr, "  {}: {}", violation.field, violation.description);
        }
    });
}

/// Says which properties of an acknowledged ninjs item khabar did not keep.
fn report_left_out(progress: &Progress, position: Position, not_carried: &[String]) {
    progress.suspend(|| {
        eprintln!(
            "{position}: warning: ninjs properties khabar does not keep were left out: {}",
            not_carried.join(", ")
        );
    });
}

/// Runs `khabar ingest`.
pub async fn ingest(args: IngestArgs) -> ExitCode {
    let (input, size): (Box<dyn std::io::BufRead + Send>, _) = if args.input == "-" {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        match File::open(&args.input) {
            Ok(file) => {
                // Pipes and devices have no size to measure progress against.
                let size = file
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len());
                (Box::new(BufReader::new(file)), size)
            }
            Err(e) => return usage_error(format!("cannot open {}: {e}", args.input)),
        }
    };
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };

    let window = usize::from(args.window);
    let format = args.input_format;
    // The reader runs on its own thread: file and stdin reads block.
    let (items_tx, mut items_rx) = mpsc::channel::<Item>(window);
    let reader = std::thread::spawn(move || {
        read_items(input, format, |item| items_tx.blocking_send(item).is_ok())
    });

    let (requests_tx, requests_rx) = mpsc::channel::<pb::IngestRequest>(window);
    let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(window * 4);
    let in_flight = Arc::new(Semaphore::new(window));
    let dispatcher_permits = in_flight.clone();
    let dispatcher = tokio::spawn(async move {
        while let Some(item) = items_rx.recv().await {
            let pending = match item.request {
                Ok(Parsed {
                    request,
                    not_carried,
                }) => {
                    let Ok(permit) = dispatcher_permits.clone().acquire_owned().await else {
                        break;
                    };
                    // Given back by the response loop when the answer arrives.
                    permit.forget();
                    if pending_tx
                        .send(Pending::Sent(item.position, item.offset, not_carried))
                        .await
                        .is_err()
                        || requests_tx.send(request).await.is_err()
                    {
                        break;
                    }
                    continue;
                }
                Err(message) => Pending::Local(item.position, item.offset, message),
            };
            if pending_tx.send(pending).await.is_err() {
                break;
            }
        }
    });

    let mut client = connection.ingest();
    let mut call = tonic::Request::new(ReceiverStream::new(requests_rx));
    let traceparent = args.traceparent.unwrap_or_else(traces::new_traceparent);
    if let Ok(value) = traceparent.parse() {
        call.metadata_mut().insert("traceparent", value);
    }
    let mut responses = match client.ingest_stream(call).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            dispatcher.abort();
            return usage_error(format!(
                "the server refused the ingest stream: {}",
                describe(&status)
            ));
        }
    };

    let mut summary = Summary::default();
    let progress = Progress::new(size);
    let mut failure = None;
    while let Some(pending) = pending_rx.recv().await {
        let offset = match pending {
            Pending::Local(position, offset, message) => {
                summary.rejected += 1;
                report_rejection(&progress, position, &message, &[]);
                offset
            }
            Pending::Sent(position, offset, not_carried) => {
                let response = match responses.message().await {
                    Ok(Some(response)) => response,
                    Ok(None) => {
                        failure = Some(format!(
                            "the server ended the stream before answering {position}"
                        ));
                        break;
                    }
                    Err(status) => {
                        failure = Some(format!(
                            "the stream failed at {position}: {}",
                            describe(&status)
                        ));
                        break;
                    }
                };
                in_flight.add_permits(1);
                if !not_carried.is_empty() && response.outcome() != IngestOutcome::Rejected {
                    report_left_out(&progress, position, &not_carried);
                }
                match response.outcome() {
                    IngestOutcome::Created => summary.created += 1,
                    IngestOutcome::Updated => summary.updated += 1,
                    IngestOutcome::Unchanged => summary.unchanged += 1,
                    IngestOutcome::CountersUpdated => summary.counters_updated += 1,
                    IngestOutcome::Held => summary.held += 1,
                    IngestOutcome::Canceled => summary.canceled += 1,
                    IngestOutcome::Rejected | IngestOutcome::Unspecified => {
                        summary.rejected += 1;
                        let error = response.error.unwrap_or_default();
                        let code = tonic::Code::from_i32(error.code);
                        let reason = if error.violations.is_empty() {
                            format!("{code:?}: {}", error.message)
                        } else {
                            format!("{code:?}: {} field violation(s)", error.violations.len())
                        };
                        report_rejection(&progress, position, &reason, &error.violations);
                    }
                }
                offset
            }
        };
        progress.update(offset, summary.total(), summary.rejected);
    }
    progress.finish();
    dispatcher.abort();
    drop(pending_rx);
    if failure.is_none() {
        failure = finish_stream(&mut responses).await;
    }

    println!("{summary}");
    if let Some(failure) = failure {
        eprintln!("error: {failure}; the items before it were acknowledged as counted above");
        return ExitCode::from(EXIT_USAGE);
    }
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return usage_error(format!("reading {} failed: {e}", args.input));
        }
        Err(_) => return usage_error("the input reader failed"),
    }
    if summary.rejected > 0 {
        ExitCode::from(EXIT_REFUSED)
    } else {
        ExitCode::SUCCESS
    }
}
