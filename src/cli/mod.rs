//! The client commands of the `khabar` binary: `ingest`, `get`, `list`, `retract`, `tail`,
//! `consumers`, `health` and `hash-token`, and `completions` and `man` for its documentation.
//! They speak to a server only through its public gRPC API.

mod consumers;
mod docs;
mod get;
mod ingest;
mod input;
mod json;
mod list;
mod progress;
mod story;
mod table;
mod tail;

use std::{
    io::{ErrorKind, IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use tonic::Status;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

pub use consumers::consumers;
pub use docs::{completions, man};
pub use get::{get, retract};
pub use ingest::ingest;
pub use input::InputFormat;
pub use list::list;
pub use story::story;
pub use tail::tail;

use crate::{
    auth,
    client::ClientError,
    config::{HealthArgs, OutputFormat},
};

/// Exit code when the server answered with an error or rejected input.
const EXIT_REFUSED: u8 = 1;
/// Exit code for usage, configuration and connection problems.
const EXIT_USAGE: u8 = 2;

fn usage_error(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EXIT_USAGE)
}

fn connect_error(error: ClientError) -> ExitCode {
    usage_error(error)
}

/// One line for a status: its code name and message.
fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Reports a call the server refused.
fn refused(status: &Status) -> ExitCode {
    eprintln!("error: {}", describe(status));
    ExitCode::from(EXIT_REFUSED)
}

/// Whether a listing is printed as a table (else as JSON lines).
fn as_table(format: OutputFormat) -> bool {
    match format {
        OutputFormat::Table => true,
        OutputFormat::Json => false,
        OutputFormat::Auto => std::io::stdout().is_terminal(),
    }
}

/// Where listings write their lines; stops quietly when the reader goes away (`| head`).
struct Output {
    out: std::io::StdoutLock<'static>,
}

/// Why a listing stopped writing.
enum Stop {
    /// The reader closed the pipe: not an error.
    Closed,
    /// Writing failed.
    Failed(String),
}

impl Output {
    fn new() -> Self {
        Self {
            out: std::io::stdout().lock(),
        }
    }

    /// Writes one line and flushes it, so that a consumer of the pipe sees it at once.
    fn line(&mut self, line: &str) -> Result<(), Stop> {
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| match e.kind() {
                ErrorKind::BrokenPipe => Stop::Closed,
                _ => Stop::Failed(format!("cannot write to standard output: {e}")),
            })
    }
}

/// Prints a message as indented proto3 JSON (`get`, `retract`, `consumers get`).
fn print_pretty<M: json::ProtoMessage>(message: &M) -> ExitCode {
    match json::to_pretty(message).map(|json| Output::new().line(&json)) {
        Ok(Ok(()) | Err(Stop::Closed)) => ExitCode::SUCCESS,
        Ok(Err(Stop::Failed(e))) => usage_error(e),
        Err(e) => usage_error(e),
    }
}

/// `khabar health`: exit 0 when the server reports SERVING.
pub async fn health(args: HealthArgs) -> ExitCode {
    let timeout = Duration::from_millis(args.timeout_ms);
    let server = args.client.server.clone();
    let check = async {
        let connection = args.client.connect().await.map_err(|e| e.to_string())?;
        let response = connection
            .health()
            .check(HealthCheckRequest {
                service: args.service.clone(),
            })
            .await
            .map_err(|status| describe(&status))?;
        Ok::<_, String>(response.into_inner().status())
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(ServingStatus::Serving)) => {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            println!("{}", status.as_str_name());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("error: health check of {server} failed: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: health check of {server} timed out after {timeout:?}");
            ExitCode::FAILURE
        }
    }
}

/// `khabar hash-token`: reads a token from standard input and prints its configured form.
pub fn hash_token() -> ExitCode {
    let mut token = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut token) {
        return usage_error(format!("cannot read the token from standard input: {e}"));
    }
    let token = token.trim_end_matches(['\r', '\n']);
    if let Err(problem) = auth::check_token_strength(token) {
        return usage_error(problem);
    }
    println!("{}", auth::hashed_token_entry(token));
    ExitCode::SUCCESS
}

/// Reads `bytes` as `khabar ingest` reads its input, and checks every item as the server would
/// (a fuzz target).
#[cfg(feature = "fuzzing")]
pub fn fuzz_ingest_input(bytes: &[u8]) {
    let _ = input::read_items(bytes, input::InputFormat::Auto, |item| {
        if let Ok(parsed) = item.request {
            let _ = crate::api::validate_ingest_request(parsed.request);
        }
        true
    });
}
