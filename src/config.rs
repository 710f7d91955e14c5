//! Command line and environment configuration. Every option is a flag and a `KHABAR_*`
//! environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    auth::{AuthPolicy, TokenConfigError, Tokens},
    client::ClientArgs,
};

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
    Serve(Box<ServeArgs>),
    /// Ask a server whether it is serving (grpc.health.v1); exit 0 if it is, 1 if not. Meant for
    /// container health checks.
    Health(HealthArgs),
    /// Ingest articles from a file or standard input (JSON or NDJSON) through IngestStream.
    Ingest(IngestArgs),
    /// Print one article as JSON.
    Get(GetArgs),
    /// Follow the feed, printing one JSON line per event.
    Tail(TailArgs),
    /// List articles, newest first: a table on a terminal, one JSON line per article otherwise.
    List(ListArgs),
    /// Retract an article and print it as JSON.
    Retract(RetractArgs),
    /// Print the articles of a story, oldest first: a table on a terminal, one JSON line per
    /// article otherwise.
    Story(StoryArgs),
    /// List, show or delete durable feed consumers.
    Consumers(ConsumersArgs),
    /// Print a shell completion script (e.g. `khabar completions bash > /etc/bash_completion.d/khabar`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a directory.
    Man(ManArgs),
    /// Print the `sha256:<hex>` form of a bearer token read from standard input, for
    /// --tokens-file, so that the configuration holds no usable secret.
    HashToken,
}

/// Options of `khabar ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// File to read, or `-` for standard input. It holds NDJSON (one item per line), one JSON
    /// document, or a JSON array of items; an item is an article or an ingest request
    /// `{"article": {...}}` in proto3 JSON, as grpcurl takes them, or an IPTC ninjs 2.x object.
    #[arg(value_name = "FILE|-")]
    pub input: String,

    /// Format of the items: `auto` decides per item, reading an object as IPTC ninjs 2.x when
    /// it has `uri` and a property only ninjs has (`headlines`, `bodies`, `descriptions`,
    /// `firstcreated`, `versioncreated`, `standard` or `infosources`), else as khabar's JSON.
    /// A ninjs item that is not valid ninjs is rejected on its own, naming the ninjs path.
    #[arg(long, value_enum, default_value_t = crate::cli::InputFormat::Auto)]
    pub input_format: crate::cli::InputFormat,

    /// Articles sent ahead of their acknowledgements.
    #[arg(long, env = "KHABAR_INGEST_WINDOW", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: u16,

    /// W3C trace context to continue (00-<trace id>-<parent id>-<flags>), so the server's spans
    /// join the caller's trace; a new trace is started when absent.
    #[arg(long, env = "TRACEPARENT", value_parser = crate::traces::parse_traceparent)]
    pub traceparent: Option<String>,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `khabar get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Article identifier.
    pub id: String,

    /// Print the article as one IPTC ninjs 2.1 JSON object instead of khabar's proto3 JSON.
    #[arg(long)]
    pub ninjs: bool,

    /// Show a version held back by an embargo (or withheld) if there is one (needs an admin
    /// token).
    #[arg(long)]
    pub include_embargoed: bool,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `khabar tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Start with the first event of the log (default: only new events).
    #[arg(long, conflicts_with = "after")]
    pub from_beginning: bool,

    /// Start after this cursor.
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<u64>,

    /// Only events of this source (repeatable).
    #[arg(long = "source", value_name = "ID")]
    pub sources: Vec<String>,

    /// Only events of articles in this language range, e.g. `ar` (repeatable).
    #[arg(long = "language", value_name = "TAG")]
    pub languages: Vec<String>,

    /// Only events of articles with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Only events of articles that start a story (one item per story).
    #[arg(long)]
    pub first_of_story: bool,

    /// Only events of articles with an urgency from 1 (most urgent) to N; articles without an
    /// urgency are left out.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub max_urgency: Option<u32>,

    /// Only events of articles with this genre code, e.g. `genre:Analysis` (repeatable; any
    /// of them).
    #[arg(long = "genre", value_name = "CODE")]
    pub genres: Vec<String>,

    /// Print each event's article as one IPTC ninjs 2.1 JSON object per line instead of the
    /// event in proto3 JSON; a retraction prints the article with `pubstatus` `canceled` and
    /// the reason in `ednote`.
    #[arg(long, conflicts_with = "checkpoints")]
    pub ninjs: bool,

    /// Durable consumer to resume and acknowledge as events are printed; a new consumer starts
    /// where --from-beginning or --after say.
    #[arg(long, env = "KHABAR_CONSUMER", value_name = "NAME")]
    pub consumer: Option<String>,

    /// Also print checkpoints (sent on idle feeds and while filters skip events).
    #[arg(long)]
    pub checkpoints: bool,

    /// Stop after printing this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Order of `khabar list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListOrderArg {
    /// Newest publication time first.
    Newest,
    /// Most urgent first, then newest.
    Urgency,
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table when standard output is a terminal, JSON lines otherwise.
    Auto,
    /// An aligned table for people.
    Table,
    /// One proto3 JSON object per line.
    Json,
}

/// Options of `khabar list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only articles of this source (repeatable).
    #[arg(long = "source", value_name = "ID")]
    pub sources: Vec<String>,

    /// Only articles in this language range, e.g. `ar` for `ar` and `ar-SY` (repeatable).
    #[arg(long = "language", value_name = "TAG")]
    pub languages: Vec<String>,

    /// Only articles with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Only articles published at or after this time (RFC 3339, e.g. 2016-07-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub published_after: Option<pbjson_types::Timestamp>,

    /// Only articles published before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub published_before: Option<pbjson_types::Timestamp>,

    /// Only articles of this story (its first article's id; repeatable).
    #[arg(long = "story", value_name = "ID")]
    pub stories: Vec<String>,

    /// Also list retracted articles.
    #[arg(long)]
    pub include_retracted: bool,

    /// Also list articles past their `expires` time.
    #[arg(long)]
    pub include_expired: bool,

    /// List an article held back by an embargo (or withheld) as its held version (needs an
    /// admin token).
    #[arg(long)]
    pub include_embargoed: bool,

    /// Only articles with an urgency from 1 (most urgent) to N; articles without an urgency
    /// are left out.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub max_urgency: Option<u32>,

    /// Only articles with this genre code, e.g. `genre:Analysis` (repeatable; any of them).
    #[arg(long = "genre", value_name = "CODE")]
    pub genres: Vec<String>,

    /// Order of the listing: newest first, or most urgent first (urgency 1 to 9, then articles
    /// without one), newest first within an urgency.
    #[arg(long, value_enum, default_value_t = ListOrderArg::Newest)]
    pub order_by: ListOrderArg,

    /// Articles asked for per call; the server serves at most 1000.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,

    /// Stop after this many articles (default: every matching article).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Auto)]
    pub format: OutputFormat,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `khabar story`.
#[derive(Debug, Clone, Args)]
pub struct StoryArgs {
    /// The story's id (the id of its first article, any article's story_id).
    pub id: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Auto)]
    pub format: OutputFormat,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `khabar retract`.
#[derive(Debug, Clone, Args)]
pub struct RetractArgs {
    /// Article identifier.
    pub id: String,

    /// Why the article is withdrawn, for downstream editors.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `khabar consumers`.
#[derive(Debug, Clone, Args)]
pub struct ConsumersArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConsumersCommand,
}

/// Subcommands of `khabar consumers`.
#[derive(Debug, Clone, Subcommand)]
pub enum ConsumersCommand {
    /// List every durable consumer: a table on a terminal, one JSON line per consumer otherwise.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Auto)]
        format: OutputFormat,

        /// Connection options.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print one consumer as JSON.
    Get {
        /// Consumer name.
        name: String,

        /// Connection options.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a consumer and its acknowledged progress.
    Delete {
        /// Consumer name.
        name: String,

        /// Connection options.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Options of `khabar completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// Shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `khabar man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write khabar.1 and one page per subcommand (khabar-list.1, ...) into this directory
    /// instead of printing khabar.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Options of `khabar health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Service to ask about; empty for the server as a whole.
    #[arg(long, env = "KHABAR_HEALTH_SERVICE", default_value = "")]
    pub service: String,

    /// Give up after this many milliseconds.
    #[arg(long, env = "KHABAR_HEALTH_TIMEOUT_MS", default_value_t = 3_000)]
    pub timeout_ms: u64,

    /// Connection options.
    #[command(flatten)]
    pub client: ClientArgs,
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

    /// Directory of the embedded store (its log and sled index); created if missing. Not used
    /// with --database-url.
    #[arg(long, env = "KHABAR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Store everything in PostgreSQL instead of the data directory, so that several khabar
    /// servers share it: `postgres://USER:PASSWORD@HOST:PORT/DB`, several hosts as
    /// `HOST1:PORT1,HOST2:PORT2` with `?target_session_attrs=read-write` to follow the primary.
    #[arg(
        long,
        env = "KHABAR_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// Connections each server keeps for reads from PostgreSQL (writes and notifications use
    /// one more each).
    #[arg(
        long,
        env = "KHABAR_DATABASE_POOL_SIZE",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=1_000),
    )]
    pub database_pool_size: u16,

    /// Largest gRPC message accepted or sent, in bytes; larger requests get RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "KHABAR_MAX_MESSAGE_BYTES",
        default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
        value_parser = parse_max_message_bytes,
    )]
    pub max_message_bytes: usize,

    /// Size of the index's page cache (sled), in bytes.
    #[arg(long, env = "KHABAR_CACHE_BYTES", default_value_t = 64 << 20)]
    pub cache_bytes: u64,

    /// How often the index is made durable, in milliseconds. Writes are durable in the log
    /// before they are acknowledged whatever this is; it bounds how much of the log is applied
    /// to the index again after a crash.
    #[arg(
        long,
        env = "KHABAR_INDEX_CHECKPOINT_MS",
        default_value_t = 2_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000),
    )]
    pub index_checkpoint_ms: u64,

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

    /// Concurrent calls (HTTP/2 streams) one connection may have open; further calls of that
    /// connection wait for one to end. Bounds what one client can make the server hold.
    #[arg(
        long,
        env = "KHABAR_MAX_CONCURRENT_STREAMS",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=100_000),
    )]
    pub max_concurrent_streams: u32,

    /// Link near-duplicate articles into stories at ingest (`on`), or store articles without
    /// story fields and skip fingerprinting (`off`).
    #[arg(long, env = "KHABAR_STORIES", value_enum, default_value_t = Switch::On)]
    pub stories: Switch,

    /// How far apart (by published_at) two articles of one story may be: a number followed by
    /// `d` (days), `h` (hours), `m` (minutes) or `s` (seconds), e.g. `7d`, `36h`.
    #[arg(
        long,
        env = "KHABAR_STORY_WINDOW",
        default_value = "7d",
        value_name = "DURATION",
        value_parser = parse_story_window,
    )]
    pub story_window: Duration,

    /// Estimated similarity (0..=1) from which an article is linked to an earlier one as a copy
    /// of the same story.
    #[arg(
        long,
        env = "KHABAR_DUPLICATE_THRESHOLD",
        default_value_t = crate::stories::DEFAULT_THRESHOLD,
        value_name = "SIMILARITY",
        value_parser = parse_threshold,
    )]
    pub duplicate_threshold: f32,

    /// Log filter, in tracing's env-filter syntax (e.g. "info" or "khabar=debug,info").
    #[arg(long, env = "KHABAR_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "KHABAR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OTLP/gRPC collector to export traces to (e.g. http://127.0.0.1:4317): one span per call,
    /// continuing the caller's W3C traceparent, with spans for validation, the durable write
    /// and feed delivery. Off unless set.
    #[arg(long, env = "KHABAR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Share (0..=1) of the traces khabar starts that are exported; a call that arrives with a
    /// traceparent follows its caller's sampling decision.
    #[arg(
        long,
        env = "KHABAR_OTLP_SAMPLE_RATIO",
        default_value_t = 1.0,
        value_name = "RATIO",
        value_parser = parse_threshold,
    )]
    pub otlp_sample_ratio: f32,

    /// Address for the Prometheus endpoint (plain HTTP, `GET /metrics`); none unless set.
    #[arg(long, env = "KHABAR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// PEM certificate chain of the server; turns TLS on (with --tls-key).
    #[arg(long, env = "KHABAR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the server certificate.
    #[arg(long, env = "KHABAR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s); when set, clients must present a certificate signed by one of them
    /// (mutual TLS).
    #[arg(long, env = "KHABAR_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// File of bearer tokens, one `NAME ROLES TOKEN` entry per line: ROLES is a comma-separated
    /// subset of ingest, read, admin; TOKEN is `sha256:<hex>` (see `khabar hash-token`) or the
    /// token itself. With any token configured, every call needs one (health and reflection
    /// excepted, see --auth-health and --auth-reflection).
    #[arg(long, env = "KHABAR_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Bearer tokens given directly, entries as in --tokens-file separated by ';' or newlines.
    #[arg(long, env = "KHABAR_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,

    /// Require a token (any role) for grpc.health.v1 too.
    #[arg(long, env = "KHABAR_AUTH_HEALTH")]
    pub auth_health: bool,

    /// Require a token (any role) for server reflection too.
    #[arg(long, env = "KHABAR_AUTH_REFLECTION")]
    pub auth_reflection: bool,
}

/// A configuration that cannot be used; the message names the option.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by an option cannot be read.
    #[error(transparent)]
    Unreadable(#[from] UnreadableFile),
    /// Token configuration is invalid.
    #[error(transparent)]
    Tokens(#[from] TokenConfigError),
    /// An option needs another one.
    #[error("{0}")]
    Inconsistent(String),
}

impl ServeArgs {
    /// Reads the TLS files named by the options, if any.
    pub fn tls(&self) -> Result<Option<TlsSettings>, ConfigError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        Ok(Some(TlsSettings {
            cert_pem: read_file("--tls-cert", cert)?,
            key_pem: read_file("--tls-key", key)?,
            client_ca_pem: self
                .tls_client_ca
                .as_ref()
                .map(|ca| read_file("--tls-client-ca", ca))
                .transpose()?,
        }))
    }

    /// Builds the authentication policy from the token options.
    pub fn auth_policy(&self) -> Result<AuthPolicy, ConfigError> {
        let mut tokens = Tokens::default();
        if let Some(path) = &self.tokens_file {
            let bytes = read_file("--tokens-file", path)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                ConfigError::Inconsistent(format!(
                    "--tokens-file: {} is not UTF-8 text",
                    path.display()
                ))
            })?;
            tokens.add_entries(&text, &format!("--tokens-file {}", path.display()))?;
        }
        if let Some(entries) = &self.tokens {
            tokens.add_entries(entries, "--tokens (KHABAR_TOKENS)")?;
        }
        if tokens.is_empty() && (self.auth_health || self.auth_reflection) {
            return Err(ConfigError::Inconsistent(
                "--auth-health and --auth-reflection need tokens (--tokens-file or --tokens)"
                    .to_owned(),
            ));
        }
        Ok(AuthPolicy {
            tokens,
            protect_health: self.auth_health,
            protect_reflection: self.auth_reflection,
        })
    }
}

/// PEM material for serving TLS.
#[derive(Clone)]
pub struct TlsSettings {
    /// Server certificate chain.
    pub cert_pem: Vec<u8>,
    /// Server private key.
    pub key_pem: Vec<u8>,
    /// CAs that sign client certificates, for mutual TLS.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsSettings")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// A file named by an option (of the server or of a client command) that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{option}: cannot read {}: {source}", path.display())]
pub struct UnreadableFile {
    /// The option naming the file.
    pub option: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Reads the file that `option` names.
pub fn read_file(option: &'static str, path: &std::path::Path) -> Result<Vec<u8>, UnreadableFile> {
    std::fs::read(path).map_err(|source| UnreadableFile {
        option,
        path: path.to_owned(),
        source,
    })
}

/// Parses an RFC 3339 time (`2016-07-01T09:00:00Z`, `2016-07-01T12:00:00+03:00`).
fn parse_time(raw: &str) -> Result<pbjson_types::Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(raw).map_err(|e| {
        format!("{raw:?} is not an RFC 3339 time such as 2016-07-01T09:00:00Z: {e}")
    })?;
    Ok(pbjson_types::Timestamp::from(time.to_utc()))
}

/// An on/off option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Parses `--story-window`: a whole number with a unit, `d`, `h`, `m` or `s`.
pub fn parse_story_window(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let invalid =
        || format!("{raw:?} is not a duration: write a whole number and a unit, e.g. 7d, 36h, 90m");
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit_secs = match unit {
        "d" => 24 * 60 * 60,
        "h" => 60 * 60,
        "m" => 60,
        "s" => 1,
        _ => return Err(invalid()),
    };
    let secs = number
        .checked_mul(unit_secs)
        .filter(|s| (1..=10 * 366 * 24 * 60 * 60).contains(s))
        .ok_or_else(|| format!("{raw:?}: must be between 1s and 3660d"))?;
    Ok(Duration::from_secs(secs))
}

/// Parses `--duplicate-threshold`: a number from 0 to 1.
pub fn parse_threshold(raw: &str) -> Result<f32, String> {
    let value: f32 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between 0 and 1, got {value}"))
    }
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
            Command::Serve(serve) => *serve,
            _ => unreachable!("parsed as serve"),
        })
    }

    #[test]
    fn defaults_listen_on_loopback_with_local_data() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(args.data_dir, PathBuf::from("./data"));
        assert_eq!(args.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(args.database_url, None);
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
    fn story_options_have_tuned_defaults_and_checked_ranges() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.stories, Switch::On);
        assert_eq!(args.story_window, Duration::from_secs(7 * 24 * 60 * 60));
        assert_eq!(args.duplicate_threshold, crate::stories::DEFAULT_THRESHOLD);
        let args = parse(&[
            "--stories",
            "off",
            "--story-window",
            "36h",
            "--duplicate-threshold",
            "0.8",
        ])
        .unwrap();
        assert_eq!(args.stories, Switch::Off);
        assert_eq!(args.story_window, Duration::from_secs(36 * 60 * 60));
        assert_eq!(args.duplicate_threshold, 0.8);
        for (window, secs) in [("90m", 5_400), ("45s", 45), ("1d", 86_400)] {
            assert_eq!(parse_story_window(window), Ok(Duration::from_secs(secs)));
        }
        for bad in ["7", "d", "7w", "-1d", "0s", "99999d", "1.5d"] {
            assert!(parse_story_window(bad).is_err(), "{bad}");
        }
        for bad in ["1.01", "-0.1", "NaN", "x"] {
            let err = parse(&[&format!("--duplicate-threshold={bad}")])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--duplicate-threshold"), "{bad}: {err}");
        }
        let err = parse(&["--story-window", "7w"]).unwrap_err().to_string();
        assert!(err.contains("--story-window"), "{err}");
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
    fn tls_key_and_cert_go_together() {
        let err = parse(&["--tls-cert", "c.pem"]).unwrap_err().to_string();
        assert!(err.contains("--tls-key"), "{err}");
        let err = parse(&["--tls-client-ca", "ca.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        let args = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        let err = args.tls().unwrap_err().to_string();
        assert!(err.starts_with("--tls-cert: cannot read c.pem"), "{err}");
    }

    #[test]
    fn token_problems_name_the_option() {
        let args = parse(&["--tokens", "reader read short"]).unwrap();
        let err = args.auth_policy().unwrap_err().to_string();
        assert!(
            err.starts_with("--tokens (KHABAR_TOKENS), entry 1"),
            "{err}"
        );
        let args = parse(&["--tokens-file", "missing-tokens"]).unwrap();
        let err = args.auth_policy().unwrap_err().to_string();
        assert!(err.starts_with("--tokens-file: cannot read"), "{err}");
        let args = parse(&["--auth-health"]).unwrap();
        let err = args.auth_policy().unwrap_err().to_string();
        assert!(err.contains("need tokens"), "{err}");
        let args = parse(&["--tokens", "a read 0123456789abcdef; b ingest,read sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]).unwrap();
        assert_eq!(args.auth_policy().unwrap().tokens.len(), 2);
    }

    #[test]
    fn list_times_are_rfc3339_in_any_offset() {
        let cli = Cli::try_parse_from([
            "khabar",
            "list",
            "--published-after",
            "2016-07-01T12:00:00.5+03:00",
        ])
        .unwrap();
        let Command::List(args) = cli.command else {
            unreachable!("parsed as list")
        };
        let after = args.published_after.unwrap();
        assert_eq!((after.seconds, after.nanos), (1_467_363_600, 500_000_000));
        let err = Cli::try_parse_from(["khabar", "list", "--published-before", "2016-07-01"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--published-before") && err.contains("RFC 3339"),
            "{err}"
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
