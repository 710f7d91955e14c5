//! The limits khabar should get close to: the disk's fsync rate, a no-op tonic RPC carrying the
//! same payload, khabar's store without gRPC, and raw sled inserts with the flush policy of
//! khabar's first storage design (one sled batch and one sled flush per group).

use std::{
    fs::OpenOptions,
    os::unix::fs::FileExt,
    path::Path,
    time::{Duration, Instant},
};

use khabar::{
    pb::khabar::v1::{self as pb, ingest_service_server::IngestService},
    store::{ArticleStore, SledStore, SledStoreConfig},
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::{Failure, Report};

/// Small write + fdatasync on the data disk, as many times as fit in `seconds` (at most 100,000).
pub fn fsync_rate(dir: &Path, seconds: f64) -> Result<Report, Failure> {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = [7u8; 4096];
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed().as_secs_f64() < seconds && syncs < 100_000 {
        file.write_all_at(&block, 0)?;
        file.sync_data()?;
        syncs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(
        serde_json::json!({"workload": "fsync", "syncs": syncs, "seconds": elapsed, "syncs_per_sec": syncs as f64 / elapsed}),
    )
}

/// Bytes of khabar's article head record (everything but the content), give or take.
const HEAD: [u8; 160] = [1; 160];

/// sled inserts shaped like khabar's writes (the article bytes once, in the log, plus a small
/// head record, in one atomic batch) in groups of `in_flight`, each group followed by `flush()`
/// and `fdatasync` of the data file.
pub fn sled_inserts(dir: &Path, articles: &[Vec<u8>], in_flight: usize) -> Result<Report, Failure> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(256 << 20)
        .open()?;
    let data_file = std::fs::File::open(dir.join("db"))?;
    let started = Instant::now();
    for (group_index, group) in articles.chunks(in_flight.max(1)).enumerate() {
        for (offset, article) in group.iter().enumerate() {
            let i = (group_index * in_flight + offset) as u64;
            let mut batch = sled::Batch::default();
            batch.insert([&b"l"[..], &i.to_be_bytes()].concat(), article.as_slice());
            batch.insert([&b"a"[..], &i.to_be_bytes()].concat(), &HEAD[..]);
            db.apply_batch(batch)?;
        }
        db.flush()?;
        data_file.sync_data()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "workload": "sled",
        "in_flight": in_flight,
        "articles": articles.len(),
        "seconds": seconds,
        "articles_per_sec": articles.len() as f64 / seconds,
    }))
}

/// khabar's store alone: `requests` validated first, then ingested with `in_flight` waiting for
/// their durable acknowledgement at a time. Reports the rate and the process's CPU time per
/// article while the clock ran.
pub async fn store_ingests(
    dir: &Path,
    requests: Vec<pb::IngestRequest>,
    in_flight: usize,
) -> Result<Report, Failure> {
    let articles = requests
        .into_iter()
        .map(khabar::api::validate_ingest_request)
        .collect::<Result<Vec<_>, _>>()?;
    let count = articles.len();
    let store = SledStore::open(&SledStoreConfig::new(dir.to_owned()))?;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut waiting = Vec::with_capacity(count);
    for article in articles {
        let permit = permits.clone().acquire_owned().await?;
        let pending = store.enqueue_ingest(article).await?;
        waiting.push(tokio::spawn(async move {
            let receipt = pending.await;
            drop(permit);
            receipt
        }));
    }
    for receipt in waiting {
        receipt.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    drop(store);
    Ok(serde_json::json!({
        "workload": "store",
        "in_flight": in_flight,
        "articles": count,
        "seconds": seconds,
        "articles_per_sec": count as f64 / seconds,
        "cpu_us_per_article": cpu / count as f64 * 1e6,
    }))
}

/// User and system CPU time of this process so far, from /proc (0 where it cannot be read).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// An IngestService that answers without doing anything: the transport's cost alone.
pub struct NoopIngest;

fn created() -> pb::IngestResponse {
    pb::IngestResponse {
        outcome: pb::IngestOutcome::Created.into(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl IngestService for NoopIngest {
    async fn ingest(
        &self,
        _request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        Ok(Response::new(created()))
    }

    type IngestStreamStream = ReceiverStream<Result<pb::IngestResponse, Status>>;

    async fn ingest_stream(
        &self,
        request: Request<Streaming<pb::IngestRequest>>,
    ) -> Result<Response<Self::IngestStreamStream>, Status> {
        let mut requests = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(Ok(_)) = requests.next().await {
                if tx.send(Ok(created())).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves [`NoopIngest`] until killed, bounded by `max` anyway.
pub async fn serve_noop(listen: &str, max: Duration) -> Result<Report, Failure> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve = tonic::transport::Server::builder()
        .add_service(pb::ingest_service_server::IngestServiceServer::new(
            NoopIngest,
        ))
        .serve_with_incoming(incoming);
    let _ = tokio::time::timeout(max, serve).await;
    Ok(serde_json::json!({"workload": "noop-server"}))
}

/// Counts the spans it is sent and drops them.
#[derive(Clone, Default)]
struct OtlpSink {
    spans: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for OtlpSink
{
    async fn export(
        &self,
        request: Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        Status,
    > {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans
            .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(Default::default()))
    }
}

/// Serves [`OtlpSink`] until killed (SIGTERM) or `max`, then reports the spans it received.
pub async fn serve_otlp_sink(listen: &str, max: Duration) -> Result<Report, Failure> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    let sink = OtlpSink::default();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let serve = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink.clone()))
        .serve_with_incoming(incoming);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::time::timeout(max, serve) => {}
        _ = terminate.recv() => {}
    }
    let spans = sink.spans.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("otlp-sink: {spans} spans received");
    Ok(serde_json::json!({"workload": "otlp-sink", "spans": spans}))
}
