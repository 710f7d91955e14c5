//! The `khabar` binary: parses the configuration, sets up logging and runs the server, or runs
//! one of the client commands.

use std::{io::IsTerminal, net::SocketAddr, process::ExitCode};

use clap::Parser;
use khabar::{
    cli,
    config::{Cli, Command, LogFormat, ServeArgs},
    server::{self, ServerConfig, Telemetry},
    traces::TraceExport,
};
use tokio::net::TcpListener;
use tracing::{error, info, warn};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// mimalloc: the write path allocates on one thread and frees on another, which glibc's
/// allocator handles with arena locks and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Health(args) => cli::health(args).await,
        Command::Ingest(args) => cli::ingest(args).await,
        Command::Get(args) => cli::get(args).await,
        Command::Tail(args) => cli::tail(args).await,
        Command::List(args) => cli::list(args).await,
        Command::Retract(args) => cli::retract(args).await,
        Command::Story(args) => cli::story(args).await,
        Command::Consumers(args) => cli::consumers(args).await,
        Command::Completions(args) => cli::completions(args),
        Command::Man(args) => cli::man(args),
        Command::HashToken => cli::hash_token(),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let filter = match EnvFilter::try_new(&args.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: invalid value {:?} for --log: {e}", args.log);
            return ExitCode::from(2);
        }
    };
    let traces = match args
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| TraceExport::start(endpoint, f64::from(args.otlp_sample_ratio)))
        .transpose()
    {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match args.log_format {
        LogFormat::Text => logs.with_filter(filter).boxed(),
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces.as_ref().map(TraceExport::layer))
        .init();
    if let Some(endpoint) = &args.otlp_endpoint {
        info!(%endpoint, "exporting traces over OTLP");
    }
    let code = run_server(args).await;
    if let Some(traces) = traces {
        // Exporting what is buffered blocks; the runtime keeps carrying the export meanwhile.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    code
}

async fn run_server(args: ServeArgs) -> ExitCode {
    let shutdown = shutdown_signal();
    let config = match ServerConfig::from_args(&args) {
        Ok(config) => config,
        Err(e) => {
            error!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    warn_about_security(&args, &config);
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(listen = %args.listen, error = %e, "cannot listen (--listen)");
            return ExitCode::FAILURE;
        }
    };
    let metrics_listener = match args.metrics_listen {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                error!(metrics_listen = %addr, error = %e, "cannot listen (--metrics-listen)");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let telemetry = Telemetry {
        metrics_listener,
        ..Telemetry::default()
    };
    match server::serve(listener, config, telemetry, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Says so when others can reach an open server, or when secrets sit in plain text.
fn warn_about_security(args: &ServeArgs, config: &ServerConfig) {
    let listen: SocketAddr = args.listen;
    if !listen.ip().is_loopback() && !config.auth.enabled() {
        warn!(
            %listen,
            "listening beyond loopback without authentication: anyone who can reach this address can \
             ingest and retract articles; configure tokens (--tokens-file) or restrict access with \
             the network"
        );
    }
    if config.auth.enabled() && config.tls.is_none() && !listen.ip().is_loopback() {
        warn!(
            %listen,
            "bearer tokens travel in clear text without TLS; set --tls-cert and --tls-key"
        );
    }
    let plain = config.auth.tokens.plain_text_count();
    if plain > 0 {
        warn!(
            tokens = plain,
            "tokens configured in plain text; prefer their sha256: form (khabar hash-token)"
        );
    }
}

/// Installs the SIGINT and SIGTERM handlers now, so that a signal that arrives during start-up
/// is not lost (the default action would kill the process), and resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot listen for signals; falling back to Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        info!("shutdown signal received");
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
        info!("shutdown signal received");
    }
}
