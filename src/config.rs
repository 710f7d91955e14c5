//! Command line and environment configuration. Every option is a flag and a `KHABAR_*`
//! environment variable.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

/// Default limit on one gRPC message, in bytes (4 MiB, gRPC's usual default).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;
const MIN_MAX_MESSAGE_BYTES: usize = 64 << 10;
const MAX_MAX_MESSAGE_BYTES: usize = 256 << 20;

/// khabar: a gRPC service that ingests news articles, stores them durably and serves them as
/// live feeds.
#[derive(Debug, Parser)]
#[command(name = "khabar", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Ask a server whether it is serving (grpc.health.v1); exit 0 if it is, 1 if not. Meant for
    /// container health checks.
    Health(HealthArgs),
}

/// Options of `khabar health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Server to ask.
    #[arg(long, env = "KHABAR_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// Service to ask about; empty for the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,

    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3_000)]
    pub timeout_ms: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Options of `khabar serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on for gRPC (plaintext HTTP/2).
    #[arg(long, env = "KHABAR_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Directory of the sled database; created if missing.
    #[arg(long, env = "KHABAR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Largest gRPC message accepted or sent, in bytes; larger requests get RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "KHABAR_MAX_MESSAGE_BYTES",
        default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
        value_parser = parse_max_message_bytes,
    )]
    pub max_message_bytes: usize,

    /// Size of sled's page cache, in bytes.
    #[arg(long, env = "KHABAR_CACHE_BYTES", default_value_t = 256 << 20)]
    pub cache_bytes: u64,

    /// Longest silence on an idle feed, in milliseconds, before a checkpoint is sent.
    #[arg(
        long,
        env = "KHABAR_FEED_HEARTBEAT_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000),
    )]
    pub feed_heartbeat_ms: u64,

    /// On SIGTERM or SIGINT, how long to wait for open calls (in-flight ingests, streams) to
    /// finish before dropping them, in milliseconds. Acknowledged writes are durable either way.
    #[arg(
        long,
        env = "KHABAR_SHUTDOWN_GRACE_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=600_000),
    )]
    pub shutdown_grace_ms: u64,

    /// Log filter, in tracing's env-filter syntax (e.g. "info" or "khabar=debug,info").
    #[arg(long, env = "KHABAR_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "KHABAR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn parse_max_message_bytes(raw: &str) -> Result<usize, String> {
    let bytes: usize = raw
        .parse()
        .map_err(|_| format!("{raw:?} is not a whole number of bytes"))?;
    if (MIN_MAX_MESSAGE_BYTES..=MAX_MAX_MESSAGE_BYTES).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "must be between {MIN_MAX_MESSAGE_BYTES} and {MAX_MAX_MESSAGE_BYTES} bytes, got {bytes}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["khabar", "serve"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(serve) => serve,
            Command::Health(_) => unreachable!("parsed as serve"),
        })
    }

    #[test]
    fn defaults_listen_on_loopback_with_local_data() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(args.data_dir, PathBuf::from("./data"));
        assert_eq!(args.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
    }

    #[test]
    fn invalid_values_name_the_option() {
        let err = parse(&["--max-message-bytes", "12"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-message-bytes"), "{err}");
        assert!(err.contains("between"), "{err}");
        let err = parse(&["--listen", "nowhere"]).unwrap_err().to_string();
        assert!(err.contains("--listen"), "{err}");
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(parse(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(
            parse(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        let err = parse(&["--log-format", "xml"]).unwrap_err().to_string();
        assert!(err.contains("--log-format"), "{err}");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
