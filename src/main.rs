//! The `khabar` binary: parses the configuration, sets up logging and runs the server.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use khabar::{
    config::{Cli, Command},
    server::{self, ServerConfig},
};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let filter = match EnvFilter::try_new(&args.log) {
                Ok(filter) => filter,
                Err(e) => {
                    eprintln!("error: invalid value {:?} for --log: {e}", args.log);
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            let listener = match TcpListener::bind(args.listen).await {
                Ok(listener) => listener,
                Err(e) => {
                    error!(listen = %args.listen, error = %e, "cannot listen (--listen)");
                    return ExitCode::FAILURE;
                }
            };
            match server::run(listener, ServerConfig::from(&args), shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!(error = %e, "server failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    info!("shutdown signal received");
}
