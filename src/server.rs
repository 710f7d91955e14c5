//! Assembles the store, the services, health and reflection, and serves them on a listener.

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::{
    api::{ArticleApi, FeedApi, IngestApi, OversizeLayer},
    config::ServeArgs,
    feed::{FeedSettings, FeedStats},
    pb::{
        self,
        khabar::v1::{
            article_service_server::ArticleServiceServer, feed_service_server::FeedServiceServer,
            ingest_service_server::IngestServiceServer,
        },
    },
    store::{SledStore, SledStoreConfig, StoreError},
};

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// sled data directory.
    pub data_dir: PathBuf,
    /// Largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
    /// sled page cache size.
    pub cache_bytes: u64,
    /// Longest silence on an idle feed before a checkpoint.
    pub feed_heartbeat: Duration,
    /// How long shutdown waits for open calls before dropping them.
    pub shutdown_grace: Duration,
}

impl From<&ServeArgs> for ServerConfig {
    fn from(args: &ServeArgs) -> Self {
        Self {
            data_dir: args.data_dir.clone(),
            max_message_bytes: args.max_message_bytes,
            cache_bytes: args.cache_bytes,
            feed_heartbeat: Duration::from_millis(args.feed_heartbeat_ms),
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be opened.
    #[error("cannot open the data directory: {0}")]
    Store(#[from] StoreError),
    /// Reflection could not be built from the descriptors.
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A startup task failed.
    #[error("startup failed: {0}")]
    Startup(#[from] tokio::task::JoinError),
}

/// Serves khabar on `listener` until `shutdown` resolves, then closes the store.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    run_with_stats(listener, config, Arc::default(), shutdown).await
}

/// [`run`], counting live feed subscriptions in `feed_stats`.
pub async fn run_with_stats(
    listener: TcpListener,
    config: ServerConfig,
    feed_stats: Arc<FeedStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let store_config = SledStoreConfig {
        path: config.data_dir.clone(),
        cache_capacity_bytes: config.cache_bytes,
    };
    // Opening replays sled's log, which blocks.
    let store = tokio::task::spawn_blocking(move || SledStore::open(&store_config)).await??;

    let limit = config.max_message_bytes;
    let ingest = IngestServiceServer::new(IngestApi::new(store.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let articles = ArticleServiceServer::new(ArticleApi::new(store.clone(), limit))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    // Open feed streams would keep the server from stopping: they end themselves on this signal.
    let (stop_feeds, feeds_stopping) = watch::channel(false);
    let feeds = FeedServiceServer::new(FeedApi::new(
        store.clone(),
        FeedSettings {
            heartbeat: config.feed_heartbeat,
        },
        feeds_stopping,
        feed_stats,
    ))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    for service in HEALTH_CHECKED {
        health_reporter
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }

    match listener.local_addr() {
        Ok(addr) => info!(%addr, data_dir = %config.data_dir.display(), "listening"),
        Err(e) => warn!(error = %e, "listening on an unknown address"),
    }
    let (signalled_tx, signalled) = oneshot::channel::<()>();
    let serve = Server::builder()
        .layer(OversizeLayer)
        .add_service(health)
        .add_service(reflection_v1()?)
        .add_service(reflection_v1alpha()?)
        .add_service(ingest)
        .add_service(articles)
        .add_service(feeds)
        // Without TCP_NODELAY, small responses wait for delayed ACKs (about 40 ms each).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                shutdown.await;
                info!(grace = ?config.shutdown_grace, "shutting down: refusing new calls, finishing open ones");
                for service in HEALTH_CHECKED {
                    health_reporter.set_service_status(service, ServingStatus::NotServing).await;
                }
                stop_feeds.send_replace(true);
                let _ = signalled_tx.send(());
            },
        );
    // Graceful shutdown waits for every open call; a client that keeps a stream open must not
    // hold the process forever, so the wait ends after the grace period.
    let grace_over = async {
        if signalled.await.is_ok() {
            tokio::time::sleep(config.shutdown_grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serve => served?,
        () = grace_over => warn!("shutdown grace period over; dropping the calls still open"),
    }
    info!("server stopped; closing the store");
    drop(store);
    Ok(())
}

/// Services whose health is reported, "" being the server as a whole.
const HEALTH_CHECKED: [&str; 4] = [
    "",
    "khabar.v1.IngestService",
    "khabar.v1.ArticleService",
    "khabar.v1.FeedService",
];

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Lets grpcurl decode google.rpc.BadRequest error details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

fn reflection_v1() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    ServerError,
> {
    Ok(reflection_builder().build_v1()?)
}

/// grpcurl 1.8 and other older clients only speak v1alpha.
fn reflection_v1alpha() -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    ServerError,
> {
    Ok(reflection_builder().build_v1alpha()?)
}
