//! Distributed traces: with `--otlp-endpoint`, every call becomes a span exported over OTLP/gRPC,
//! continuing the caller's W3C trace context, with child spans for validation, the durable write
//! and feed delivery.
//!
//! # Design
//! Spans are ordinary `tracing` spans at DEBUG level under the `khabar` target. Without an
//! endpoint no subscriber layer wants them, so their call sites are disabled and cost a branch;
//! the log output keeps its own filter (`--log`) whichever way. With an endpoint, one more layer
//! (tracing-opentelemetry) turns exactly these spans into OpenTelemetry spans and a batch
//! processor exports them. The RPC span is opened by [`TraceLayer`], outside authorization, so
//! refused calls are traced too; it takes the outcome from the gRPC status, which arrives in the
//! response headers for an early error and in the trailers otherwise.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider},
};
use tower::{Layer, Service};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer as _, filter::filter_fn, registry::LookupSpan};

/// How long one export may take before the batch is dropped (the server never waits for it).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why trace export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceSetupError {
    /// The endpoint is not an http(s) URL.
    #[error("--otlp-endpoint must be an http:// or https:// URL, got {0:?}")]
    Endpoint(String),
    /// The exporter could not be built.
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// Exports the server's spans to an OTLP collector until shut down.
#[derive(Debug)]
pub struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    /// Sets up export to the collector at `endpoint` (e.g. `http://127.0.0.1:4317`), keeping
    /// `sample_ratio` of the traces that start here and following the caller's decision for the
    /// others. Must run inside the Tokio runtime that will carry the exports.
    pub fn start(endpoint: &str, sample_ratio: f64) -> Result<Self, TraceSetupError> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(TraceSetupError::Endpoint(endpoint.to_owned()));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TraceSetupError::Exporter {
                endpoint: endpoint.to_owned(),
                reason: e.to_string(),
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name("khabar")
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        Ok(Self { provider })
    }

    /// The subscriber layer that hands khabar's spans (and nothing else) to the exporter.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("khabar"))
            .with_filter(filter_fn(|metadata| {
                metadata.is_span() && metadata.target().starts_with("khabar")
            }))
    }

    /// Exports what is still buffered and stops. Blocks: call it off the async threads.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

/// A fresh W3C `traceparent` (sampled) for a call that starts a trace, such as `khabar ingest`.
pub fn new_traceparent() -> String {
    let ids = RandomIdGenerator::default();
    format!("00-{}-{}-01", ids.new_trace_id(), ids.new_span_id())
}

/// Checks a W3C `traceparent` value (as `khabar ingest --traceparent` takes it).
pub fn parse_traceparent(value: &str) -> Result<String, String> {
    let mut headers = http::HeaderMap::new();
    let parsed = http::HeaderValue::from_str(value).map(|v| headers.insert("traceparent", v));
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    if parsed.is_ok() && context.span().span_context().is_valid() {
        Ok(value.to_owned())
    } else {
        Err(
            "expected a W3C traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"
                .into(),
        )
    }
}

/// Reads W3C trace context from HTTP/2 request headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Records a gRPC status code on an RPC span.
fn record_status(span: &Span, code: &str) {
    match code.parse::<i64>() {
        Ok(code) => span.record("rpc.grpc.status_code", code),
        Err(_) => span.record("rpc.grpc.status_code", code),
    };
    if code != "0" {
        span.record("otel.status_code", "ERROR");
    }
}

/// Tower layer opening one span per call when trace export is on.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer {
    enabled: bool,
}

impl TraceLayer {
    /// Traces calls when `enabled`; otherwise passes them through untouched.
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            enabled: self.enabled,
        }
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
    enabled: bool,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for TraceService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if !self.enabled {
            let response = self.inner.call(request);
            return Box::pin(async move {
                Ok(response.await?.map(|body| TracedBody {
                    body,
                    span: None,
                    status_seen: true,
                }))
            });
        }
        let span = rpc_span(&request);
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(async move {
            let response = tracing::Instrument::instrument(response, span.clone()).await?;
            // An early error travels in the headers ("trailers-only"); otherwise the trailers
            // at the end of the body carry the status.
            let early = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok());
            if let Some(code) = early {
                record_status(&span, code);
            }
            let status_seen = early.is_some();
            Ok(response.map(|body| TracedBody {
                body,
                span: Some(span),
                status_seen,
            }))
        })
    }
}

/// The span of one call, its parent taken from the caller's `traceparent` if it sent one.
fn rpc_span<B>(request: &http::Request<B>) -> Span {
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::debug_span!(
        target: "khabar::rpc",
        "rpc",
        otel.name = path,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        article.id = Empty,
        khabar.outcome = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled, and then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}

/// A response body that records the gRPC status from its trailers on the call's span, and
/// keeps the span open until the last frame (a feed's span lasts as long as the feed). A body
/// dropped before its status was sent is a call the client cancelled.
pub struct TracedBody<B> {
    body: B,
    span: Option<Span>,
    status_seen: bool,
}

impl<B> Drop for TracedBody<B> {
    fn drop(&mut self) {
        if let (Some(span), false) = (&self.span, self.status_seen) {
            record_status(span, "1");
        }
    }
}

impl<B: Body + Unpin> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(span)) = (&polled, &self.span)
            && let Some(code) = frame
                .trailers_ref()
                .and_then(|trailers| trailers.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
        {
            record_status(span, code);
            self.status_seen = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_traceparent_is_a_valid_sampled_w3c_header() {
        let header = new_traceparent();
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(parts[1], "0".repeat(32));
        assert_ne!(new_traceparent(), header);
    }

    #[test]
    fn the_propagator_reads_what_new_traceparent_writes() {
        let header = new_traceparent();
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", header.parse().expect("ascii"));
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let span = context.span();
        let span_context = span.span_context();
        assert!(span_context.is_valid());
        assert!(span_context.is_sampled());
        assert_eq!(span_context.trace_id().to_string(), &header[3..35]);
        assert_eq!(span_context.span_id().to_string(), &header[36..52]);
    }

    #[tokio::test]
    async fn a_collector_behind_tls_is_accepted() {
        // Nothing listens there: setting up does not connect, exporting later would.
        TraceExport::start("https://127.0.0.1:9", 1.0).expect("https endpoints are supported");
    }

    #[test]
    fn endpoints_without_a_scheme_are_refused() {
        let error = TraceExport::start("127.0.0.1:4317", 1.0).expect_err("no scheme");
        assert!(error.to_string().contains("--otlp-endpoint"), "{error}");
    }
}
