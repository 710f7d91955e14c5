//! The limits khabar should get close to: the disk's fsync rate, a no-op tonic RPC carrying the
//! same payload, and raw sled inserts with khabar's flush policy.

use std::{
    fs::OpenOptions,
    os::unix::fs::FileExt,
    path::Path,
    time::{Duration, Instant},
};

use khabar::pb::khabar::v1::{self as pb, ingest_service_server::IngestService};
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
