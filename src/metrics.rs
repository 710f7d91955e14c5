//! Prometheus metrics: what the service counts, and the `/metrics` HTTP endpoint that exposes
//! them in the OpenMetrics text format.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;
use tonic::Code;
use tower::{Layer, Service};
use tracing::warn;

use crate::{
    domain::Violation,
    feed::FeedStats,
    methods,
    store::{ArticleStore, IngestOutcome},
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    field: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    consumer: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// The service's metrics. Counters are updated where things happen; gauges that describe the
/// store are refreshed when scraped.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ingests: Family<OutcomeLabels, Counter>,
    rejected_fields: Family<FieldLabels, Counter>,
    request_seconds: HistogramFamily<MethodLabels>,
    auth_failures: Family<CodeLabels, Counter>,
    feed_subscribers: Gauge,
    consumer_lag: Family<ConsumerLabels, Gauge>,
    head_cursor: Gauge,
    store_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("khabar");
        let ingests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "ingests",
            "Ingested articles by outcome (created, updated, unchanged, counters_updated, rejected)",
            ingests.clone(),
        );
        let rejected_fields = Family::<FieldLabels, Counter>::default();
        registry.register(
            "ingest_rejected_fields",
            "Field violations of rejected articles, by field path (list indexes removed)",
            rejected_fields.clone(),
        );
        let request_seconds: HistogramFamily<MethodLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_request_duration_seconds",
            "Time from a call's arrival to the start of its response (for streaming responses, \
             until the stream opens), by method",
            request_seconds.clone(),
        );
        let auth_failures = Family::<CodeLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Calls refused by authentication or authorization, by status code",
            auth_failures.clone(),
        );
        let feed_subscribers = Gauge::default();
        registry.register(
            "feed_subscribers",
            "Feed subscriptions currently open",
            feed_subscribers.clone(),
        );
        let consumer_lag = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "consumer_lag_events",
            "Events in the log after a durable consumer's acknowledged cursor",
            consumer_lag.clone(),
        );
        let head_cursor = Gauge::default();
        registry.register(
            "log_head_cursor",
            "Cursor of the newest durable event in the log",
            head_cursor.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register(
            "store_size_bytes",
            "Size of the store on disk",
            store_bytes.clone(),
        );
        Self {
            registry,
            ingests,
            rejected_fields,
            request_seconds,
            auth_failures,
            feed_subscribers,
            consumer_lag,
            head_cursor,
            store_bytes,
        }
    }

    /// Counts an accepted ingest.
    pub fn record_ingest(&self, outcome: IngestOutcome) {
        let outcome = match outcome {
            IngestOutcome::Created => "created",
            IngestOutcome::Updated => "updated",
            IngestOutcome::Unchanged => "unchanged",
            IngestOutcome::CountersUpdated => "counters_updated",
            IngestOutcome::Held => "held",
            IngestOutcome::Canceled => "canceled",
        };
        self.ingests.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a rejected ingest and each field it broke.
    pub fn record_rejection(&self, violations: &[Violation]) {
        self.ingests
            .get_or_create(&OutcomeLabels {
                outcome: "rejected",
            })
            .inc();
        for violation in violations {
            self.rejected_fields
                .get_or_create(&FieldLabels {
                    field: without_indexes(&violation.field),
                })
                .inc();
        }
    }

    /// Counts a call refused with `code`.
    pub fn record_auth_failure(&self, code: Code) {
        let code = match code {
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "permission_denied",
            _ => "other",
        };
        self.auth_failures.get_or_create(&CodeLabels { code }).inc();
    }

    /// The label of a request path: the path itself when the server answers it, else "other",
    /// so that clients cannot create label values at will.
    fn method_label(path: &str) -> &'static str {
        methods::find(path).map_or("other", |method| method.path.as_str())
    }

    fn observe_request(&self, method: &'static str, seconds: f64) {
        self.request_seconds
            .get_or_create(&MethodLabels { method })
            .observe(seconds);
    }

    /// Refreshes the store gauges from `store` and renders every metric.
    pub async fn render<S: ArticleStore>(&self, store: &S, feeds: &FeedStats) -> String {
        self.feed_subscribers
            .set(saturating_i64(feeds.live_subscriptions() as u64));
        let head = *store.durable_head().borrow();
        self.head_cursor.set(saturating_i64(head));
        match store.size_on_disk().await {
            Ok(bytes) => {
                self.store_bytes.set(saturating_i64(bytes));
            }
            Err(e) => warn!(error = %e, "cannot read the store size for metrics"),
        }
        match store.consumers().await {
            Ok(consumers) => {
                // Deleted consumers must disappear from the output.
                self.consumer_lag.clear();
                for consumer in consumers {
                    self.consumer_lag
                        .get_or_create(&ConsumerLabels {
                            consumer: consumer.name,
                        })
                        .set(saturating_i64(head.saturating_sub(consumer.acked_cursor)));
                }
            }
            Err(e) => warn!(error = %e, "cannot read consumers for metrics"),
        }
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            warn!(error = %e, "cannot encode metrics");
        }
        text
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `article.tags[3]` -> `article.tags`, so that the label has one value per field.
fn without_indexes(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut depth = 0usize;
    for c in field.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve<S: ArticleStore>(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: S,
    feeds: Arc<FeedStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(Scrape {
        metrics,
        store,
        feeds,
    });
    let app = Router::new()
        .route("/metrics", get(scrape::<S>))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

struct Scrape<S> {
    metrics: Arc<Metrics>,
    store: S,
    feeds: Arc<FeedStats>,
}

async fn scrape<S: ArticleStore>(State(scrape): State<Arc<Scrape<S>>>) -> impl IntoResponse {
    let text = scrape.metrics.render(&scrape.store, &scrape.feeds).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// Tower layer timing every call into [`Metrics`].
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    /// Times calls into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        // The label, not the path, is kept: no allocation per call.
        let method = Metrics::method_label(request.uri().path());
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            metrics.observe_request(method, started.elapsed().as_secs_f64());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_indexes_are_removed_from_field_labels() {
        assert_eq!(without_indexes("article.tags[3]"), "article.tags");
        assert_eq!(
            without_indexes("article.info_sources[0].uri"),
            "article.info_sources.uri"
        );
        assert_eq!(without_indexes("article.headline"), "article.headline");
    }

    #[test]
    fn unknown_paths_share_one_label() {
        let metrics = Metrics::new();
        for path in [
            "/khabar.v1.IngestService/Ingest",
            "/made.up/Path1",
            "/made.up/Path2",
        ] {
            metrics.observe_request(Metrics::method_label(path), 0.001);
        }
        let mut text = String::new();
        encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains(
                "khabar_grpc_request_duration_seconds_count{method=\"/khabar.v1.IngestService/Ingest\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("khabar_grpc_request_duration_seconds_count{method=\"other\"} 2"),
            "{text}"
        );
        assert!(!text.contains("made.up"), "{text}");
    }
}
