//! Assembles the store, the services, health, reflection, TLS, authentication and metrics, and
//! serves them on a listener.

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{error, info, warn};

use crate::domain::embargo::{Clock, SystemClock};
use crate::{
    api::{ArticleApi, FeedApi, IngestApi, OversizeLayer},
    auth::{AuthLayer, AuthPolicy},
    config::{ConfigError, ServeArgs, Switch, TlsSettings},
    feed::{FeedSettings, FeedStats},
    methods,
    metrics::{self, Metrics, MetricsLayer},
    pb::{
        self,
        khabar::v1::{
            article_service_server::ArticleServiceServer,
            ingest_service_server::{self, IngestServiceServer},
        },
        raw::feed_service_server::FeedServiceServer,
    },
    store::{
        AnyStore, ArticleStore, DiskFaults, PostgresConfig, PostgresStore, SledStore,
        SledStoreConfig, StoreError,
    },
    stories::StoryConfig,
    traces::TraceLayer,
};

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory of the embedded store.
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded store, when set.
    pub postgres: Option<PostgresConfig>,
    /// Largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
    /// Index page cache size.
    pub cache_bytes: u64,
    /// How often the index is made durable.
    pub index_checkpoint: Duration,
    /// Longest silence on an idle feed before a checkpoint.
    pub feed_heartbeat: Duration,
    /// How long shutdown waits for open calls before dropping them.
    pub shutdown_grace: Duration,
    /// Concurrent calls one connection may have open.
    pub max_concurrent_streams: u32,
    /// TLS material; plaintext when `None`.
    pub tls: Option<TlsSettings>,
    /// Who may call what.
    pub auth: Arc<AuthPolicy>,
    /// Disk failures to inject into the store: a seam for tests of a failing disk, empty
    /// otherwise.
    pub disk_faults: Arc<DiskFaults>,
    /// Whether calls open trace spans (set when traces are exported).
    pub trace_calls: bool,
    /// How stories are linked; `None` with `--stories off`.
    pub stories: Option<StoryConfig>,
    /// When embargoes end: the system clock, a manual one in tests.
    pub clock: Arc<dyn Clock>,
}

impl ServerConfig {
    /// The server settings `args` describe, reading the files they name.
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let stories = (args.stories == Switch::On).then_some(StoryConfig {
            window: args.story_window,
            threshold: args.duplicate_threshold,
        });
        let postgres = args
            .database_url
            .as_deref()
            .map(|url| {
                PostgresConfig::parse(url)
                    .map(|mut config| {
                        config.pool_size = usize::from(args.database_pool_size);
                        config.stories = stories;
                        config
                    })
                    .map_err(|e| ConfigError::Inconsistent(format!("--database-url: {e}")))
            })
            .transpose()?;
        Ok(Self {
            data_dir: args.data_dir.clone(),
            postgres,
            stories,
            clock: Arc::new(SystemClock),
            max_message_bytes: args.max_message_bytes,
            cache_bytes: args.cache_bytes,
            index_checkpoint: Duration::from_millis(args.index_checkpoint_ms),
            feed_heartbeat: Duration::from_millis(args.feed_heartbeat_ms),
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
            max_concurrent_streams: args.max_concurrent_streams,
            tls: args.tls()?,
            auth: Arc::new(args.auth_policy()?),
            disk_faults: Arc::default(),
            trace_calls: args.otlp_endpoint.is_some(),
        })
    }

    /// Plaintext, open settings with the defaults of `khabar serve` on `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            postgres: None,
            max_message_bytes: crate::config::DEFAULT_MAX_MESSAGE_BYTES,
            cache_bytes: 64 << 20,
            index_checkpoint: Duration::from_secs(2),
            feed_heartbeat: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            max_concurrent_streams: 256,
            tls: None,
            auth: Arc::default(),
            disk_faults: Arc::default(),
            trace_calls: false,
            stories: Some(StoryConfig::default()),
            clock: Arc::new(SystemClock),
        }
    }
}

/// What the server reports about itself while it runs.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Counters and histograms, shared with the `/metrics` endpoint.
    pub metrics: Arc<Metrics>,
    /// Live feed subscriptions.
    pub feed_stats: Arc<FeedStats>,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_listener: Option<TcpListener>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be opened.
    #[error("cannot open the data directory {}: {source}", path.display())]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// What went wrong.
        source: StoreError,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The TLS certificate, key or client CA cannot be used.
    #[error("cannot set up TLS (--tls-cert, --tls-key, --tls-client-ca): {0}")]
    Tls(tonic::transport::Error),
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
    let telemetry = Telemetry {
        feed_stats,
        ..Telemetry::default()
    };
    serve(listener, config, telemetry, shutdown).await
}

/// [`run`], reporting into `telemetry` and serving its metrics endpoint.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let Telemetry {
        metrics,
        feed_stats,
        metrics_listener,
    } = telemetry;
    let mut builder = Server::builder().max_concurrent_streams(config.max_concurrent_streams);
    if let Some(tls) = &config.tls {
        let mut tls_config =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            tls_config = tls_config.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(tls_config).map_err(ServerError::Tls)?;
    }
    let store = open_store(&config).await?;

    let limit = config.max_message_bytes;
    let ingest = IngestServiceServer::new(IngestApi::new(store.clone(), metrics.clone()))
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
        feed_stats.clone(),
    ))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    for service in health_checked() {
        health_reporter
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    let stopped_watch = tokio::spawn(report_stopped_writes(
        store.writes_stopped(),
        health_reporter.clone(),
    ));

    match listener.local_addr() {
        Ok(addr) => info!(
            %addr,
            store = store.backend(),
            tls = config.tls.is_some(),
            mutual_tls = config.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()),
            tokens = config.auth.tokens.len(),
            "listening"
        ),
        Err(e) => warn!(error = %e, "listening on an unknown address"),
    }
    let (signalled_tx, signalled) = oneshot::channel::<()>();
    let (stop_metrics, metrics_stopping) = oneshot::channel::<()>();
    let mut metrics_task = None;
    if let Some(metrics_listener) = metrics_listener {
        if let Ok(addr) = metrics_listener.local_addr() {
            info!(%addr, "serving metrics at /metrics");
        }
        let endpoint = metrics::serve(
            metrics_listener,
            metrics.clone(),
            store.clone(),
            feed_stats,
            async {
                let _ = metrics_stopping.await;
            },
        );
        metrics_task = Some(tokio::spawn(async move {
            if let Err(e) = endpoint.await {
                warn!(error = %e, "metrics endpoint failed");
            }
        }));
    }
    let serve = builder
        .layer(TraceLayer::new(config.trace_calls))
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(AuthLayer::new(config.auth.clone(), metrics))
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
                for service in health_checked() {
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
    stopped_watch.abort();
    let _ = stop_metrics.send(());
    if let Some(task) = metrics_task {
        let _ = tokio::time::timeout(config.shutdown_grace, task).await;
    }
    store.close(config.shutdown_grace).await;
    Ok(())
}

/// Opens the store the configuration names: PostgreSQL, or the embedded store.
async fn open_store(config: &ServerConfig) -> Result<AnyStore, ServerError> {
    if let Some(postgres) = &config.postgres {
        let postgres = PostgresConfig {
            clock: config.clock.clone(),
            ..postgres.clone()
        };
        return Ok(AnyStore::Postgres(PostgresStore::open(&postgres).await?));
    }
    let store_config = SledStoreConfig {
        cache_capacity_bytes: config.cache_bytes,
        checkpoint_interval: config.index_checkpoint,
        faults: config.disk_faults.clone(),
        stories: config.stories,
        clock: config.clock.clone(),
        ..SledStoreConfig::new(config.data_dir.clone())
    };
    // Opening replays the log into the index, which blocks.
    let store = tokio::task::spawn_blocking(move || SledStore::open(&store_config))
        .await?
        .map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    info!(data_dir = %config.data_dir.display(), "embedded store opened");
    Ok(AnyStore::Embedded(store))
}

/// Once the store stops taking writes, reports the server and its ingest service NOT_SERVING:
/// reads and feeds still work, but only a restart brings writes back, and health checks are
/// what orchestrators restart on.
async fn report_stopped_writes(
    mut stopped: watch::Receiver<bool>,
    health: tonic_health::server::HealthReporter,
) {
    if stopped.wait_for(|stopped| *stopped).await.is_err() {
        return;
    }
    error!("the store stopped taking writes; health is NOT_SERVING until khabar is restarted");
    for service in ["", ingest_service_server::SERVICE_NAME] {
        health
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
}

/// Services whose health is reported, "" being the server as a whole.
fn health_checked() -> impl Iterator<Item = &'static str> {
    std::iter::once("").chain(methods::khabar_services())
}

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
