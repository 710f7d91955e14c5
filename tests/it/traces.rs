//! Traces: a server started with --otlp-endpoint exports its spans to an OTLP collector (here a
//! tonic server implementing the collector's TraceService, in the test process): one span per
//! call continuing the caller's W3C traceparent, with validation, the durable write and feed
//! delivery as child spans.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use khabar::pb::khabar::v1::{self as pb, subscribe_request::Start};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

use crate::common::{ChildServer, fixture, run_bounded, seed_request};

const WAIT: Duration = Duration::from_secs(30);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// Keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves the collector on an ephemeral loopback port; returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        format!("http://{addr}")
    }

    /// The spans received so far, once at least one is named `name` (waits up to WAIT).
    async fn spans_once(&self, name: &str) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if spans.iter().any(|s| s.name == name) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no span named {name} within {WAIT:?}; got {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|AnyValue { value }| value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attribute(span, key) {
        Some(Value::StringValue(value)) => value,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(Value::IntValue(value)) => *value,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn children<'a>(spans: &'a [Span], parent: &Span, name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.name == name && s.parent_span_id == parent.span_id)
        .collect()
}

/// Stops the server the way an operator would, so the last spans are flushed on the way out.
fn stop(mut server: ChildServer) {
    server.terminate();
    assert!(server.wait_exit(WAIT).success(), "khabar exits cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_traced_from_the_callers_span_through_validation_the_write_and_the_feed() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let data = tempfile::tempdir().unwrap();
    let server = ChildServer::start_with(data.path(), &["--otlp-endpoint", &endpoint]);
    let channel = server.channel().await;

    let mut request = Request::new(seed_request());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_ID}-01").parse().unwrap(),
    );
    let receipt = pb::ingest_service_client::IngestServiceClient::new(channel.clone())
        .ingest(request)
        .await
        .unwrap()
        .into_inner();

    let mut feed = pb::feed_service_client::FeedServiceClient::new(channel.clone())
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let delivered = tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("the feed delivers the event")
        .expect("an item")
        .expect("an event");
    assert_eq!(delivered.cursor, receipt.cursor);
    drop(feed);

    let missing = pb::article_service_client::ArticleServiceClient::new(channel)
        .get_article(pb::GetArticleRequest {
            id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            ..Default::default()
        })
        .await
        .expect_err("no such article");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    stop(server);
    let spans = collector
        .spans_once("khabar.v1.ArticleService/GetArticle")
        .await;

    // The ingest call continues the caller's trace...
    let ingest = named(&spans, "khabar.v1.IngestService/Ingest");
    assert_eq!(ingest.len(), 1, "{spans:#?}");
    let ingest = ingest[0];
    assert_eq!(hex(&ingest.trace_id), TRACE_ID);
    assert_eq!(hex(&ingest.parent_span_id), PARENT_ID);
    assert_eq!(ingest.kind, SpanKind::Server as i32);
    assert_eq!(text(ingest, "rpc.system"), "grpc");
    assert_eq!(text(ingest, "rpc.service"), "khabar.v1.IngestService");
    assert_eq!(text(ingest, "rpc.method"), "Ingest");
    assert_eq!(int(ingest, "rpc.grpc.status_code"), 0);
    assert_eq!(text(ingest, "article.id"), receipt.id);
    assert_eq!(text(ingest, "khabar.outcome"), "CREATED");

    // ...with validation and the durable write beneath it.
    let validate = children(&spans, ingest, "validate");
    assert_eq!(validate.len(), 1, "{spans:#?}");
    assert_eq!(validate[0].trace_id, ingest.trace_id);
    let write = children(&spans, ingest, "store.write");
    assert_eq!(write.len(), 1, "{spans:#?}");
    let write = write[0];
    assert_eq!(text(write, "article.id"), receipt.id);
    assert_eq!(
        int(write, "khabar.cursor"),
        i64::try_from(receipt.cursor).unwrap()
    );
    assert!(int(write, "khabar.group_size") >= 1, "{write:?}");
    assert!(write.start_time_unix_nano >= ingest.start_time_unix_nano);
    assert!(write.end_time_unix_nano <= ingest.end_time_unix_nano);

    // The feed call started its own trace (no traceparent) and traced the delivery.
    let subscribe = named(&spans, "khabar.v1.FeedService/Subscribe");
    assert_eq!(subscribe.len(), 1, "{spans:#?}");
    let subscribe = subscribe[0];
    assert!(subscribe.parent_span_id.is_empty());
    assert_ne!(subscribe.trace_id, ingest.trace_id);
    let deliveries = children(&spans, subscribe, "feed.deliver");
    assert!(!deliveries.is_empty(), "{spans:#?}");
    let sent: i64 = deliveries
        .iter()
        .map(|d| int(d, "khabar.events_sent"))
        .sum();
    assert_eq!(sent, 1);

    // A failed call carries its status.
    let get = named(&spans, "khabar.v1.ArticleService/GetArticle")[0];
    assert_eq!(
        int(get, "rpc.grpc.status_code"),
        tonic::Code::NotFound as i64
    );
    assert_eq!(
        get.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(text(get, "article.id"), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn khabar_ingest_sends_a_traceparent_that_the_server_continues() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let data = tempfile::tempdir().unwrap();
    let server = ChildServer::start_with(data.path(), &["--otlp-endpoint", &endpoint]);
    let url = format!("http://{}", server.addr);
    let input = fixture("seed-article.ingest.json");
    let input = input.to_str().unwrap();

    let given = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let out = run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_khabar")).args([
            "ingest",
            input,
            "--server",
            &url,
            "--traceparent",
            &given,
        ]),
        None,
        WAIT,
    )
    .expect("run khabar ingest");
    assert!(out.status.success(), "{out:?}");
    // Without --traceparent, a new trace.
    let out = run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(["ingest", input, "--server", &url])
            .env_remove("TRACEPARENT"),
        None,
        WAIT,
    )
    .expect("run khabar ingest");
    assert!(out.status.success(), "{out:?}");
    // A malformed one is refused before anything is sent.
    let out = run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_khabar")).args([
            "ingest",
            input,
            "--server",
            &url,
            "--traceparent",
            "00-not-a-trace-01",
        ]),
        None,
        WAIT,
    )
    .expect("run khabar ingest");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("W3C traceparent"));

    stop(server);
    let spans = collector
        .spans_once("khabar.v1.IngestService/IngestStream")
        .await;
    let streams = named(&spans, "khabar.v1.IngestService/IngestStream");
    assert_eq!(streams.len(), 2, "{spans:#?}");
    let (continued, started): (Vec<&Span>, Vec<&Span>) = streams
        .into_iter()
        .partition(|s| hex(&s.trace_id) == TRACE_ID);
    assert_eq!(continued.len(), 1, "{spans:#?}");
    assert_eq!(hex(&continued[0].parent_span_id), PARENT_ID);
    // The CLI's own trace: a parent it made up, in a trace of its own.
    assert_eq!(started[0].parent_span_id.len(), 8);
    assert_ne!(started[0].parent_span_id, vec![0; 8]);
    for stream in [continued[0], started[0]] {
        let writes = children(&spans, stream, "store.write");
        assert_eq!(writes.len(), 1, "{spans:#?}");
        assert_eq!(writes[0].trace_id, stream.trace_id);
        assert_eq!(children(&spans, stream, "validate").len(), 1);
        assert_eq!(int(stream, "rpc.grpc.status_code"), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_ratio_keeps_that_share_of_new_traces_and_follows_the_callers_decision() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let data = tempfile::tempdir().unwrap();
    let server = ChildServer::start_with(
        data.path(),
        &["--otlp-endpoint", &endpoint, "--otlp-sample-ratio", "0"],
    );
    let mut client = pb::ingest_service_client::IngestServiceClient::new(server.channel().await);
    let unsampled_trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    for (n, traceparent) in [
        (0, None),
        (1, Some(format!("00-{TRACE_ID}-{PARENT_ID}-01"))),
        (2, Some(format!("00-{unsampled_trace}-{PARENT_ID}-00"))),
    ] {
        let mut request = Request::new(crate::common::seed_variant(n));
        if let Some(traceparent) = traceparent {
            request
                .metadata_mut()
                .insert("traceparent", traceparent.parse().unwrap());
        }
        client.ingest(request).await.unwrap();
    }

    stop(server);
    let spans = collector.spans_once("khabar.v1.IngestService/Ingest").await;
    // Only the call whose caller sampled it: a ratio of 0 starts no trace of its own, and an
    // unsampled caller's trace stays unsampled.
    let ingests = named(&spans, "khabar.v1.IngestService/Ingest");
    assert_eq!(ingests.len(), 1, "{spans:#?}");
    assert_eq!(hex(&ingests[0].trace_id), TRACE_ID);
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == TRACE_ID),
        "{spans:#?}"
    );
    assert_eq!(children(&spans, ingests[0], "store.write").len(), 1);
}
