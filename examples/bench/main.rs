//! Load generator for khabar's benchmarks (the workload of `bench/WORKLOAD.md`'s W1 and W2):
//! durable ingest with 1 or many requests in flight, feed catch-up, and live-tail latency.
//! Prints one JSON line per run. Every loop is bounded by a count and by `--max-seconds`.
//!
//! ```sh
//! cargo run --release --example bench -- ingest --mode stream --in-flight 32 --articles 20000
//! cargo run --release --example bench -- catchup --consumers 4 --events 20000
//! cargo run --release --example bench -- tail --subscribers 4 --rate 500 --articles 2000
//! ```

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand, ValueEnum};
use khabar::pb::khabar::v1::{
    self as pb, EventKind, IngestOutcome, feed_service_client::FeedServiceClient,
    ingest_service_client::IngestServiceClient, subscribe_request::Start,
};
use prost::Message;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::transport::Channel;

mod ceilings;
mod nats;
mod redis;
#[path = "../support/seed.rs"]
mod seed;

#[derive(Parser)]
#[command(about = "Load generator for khabar benchmarks")]
struct Cli {
    /// The system's address: a URL for khabar, host:port for redis and nats.
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    server: String,
    /// Which system `--server` is.
    #[arg(long, value_enum, default_value_t = Target::Khabar, global = true)]
    target: Target,
    /// Give up (and exit non-zero) after this long.
    #[arg(long, default_value_t = 600, global = true)]
    max_seconds: u64,
    #[command(subcommand)]
    command: Workload,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Khabar,
    Redis,
    Nats,
}

#[derive(Subcommand)]
enum Workload {
    /// W1: ingest N workload articles and wait for every durable acknowledgement.
    Ingest {
        #[arg(long, default_value_t = 20_000)]
        articles: usize,
        /// Index of the first article (to add new articles to a non-empty store).
        #[arg(long, default_value_t = 0)]
        start_index: usize,
        /// unary: concurrent calls (redis: connections); stream: one stream (redis: one
        /// pipelined connection). NATS always publishes asynchronously on one connection.
        #[arg(long, value_enum, default_value_t = Mode::Stream)]
        mode: Mode,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        /// The seed article text (`seed-article-ar.txt`).
        #[arg(long)]
        seed: PathBuf,
    },
    /// W2a: consumers read the log from the beginning at the same time.
    Catchup {
        #[arg(long, default_value_t = 4)]
        consumers: usize,
        /// Events each consumer reads.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
    },
    /// W2b: live subscribers while one producer publishes at a steady rate.
    Tail {
        #[arg(long, default_value_t = 4)]
        subscribers: usize,
        /// Articles per second.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 2_000)]
        articles: usize,
        #[arg(long, default_value_t = 1_000_000)]
        start_index: usize,
        #[arg(long)]
        seed: PathBuf,
    },
    /// Ceiling: small write + fdatasync in a loop on a directory's disk.
    Fsync {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Ceiling: raw sled inserts of the article bytes, flushed and synced per group.
    Sled {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        articles: usize,
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        #[arg(long)]
        seed: PathBuf,
    },
    /// Ceiling: khabar's store alone (the log and its index, no gRPC, articles validated before
    /// the clock starts), with `in_flight` ingests waiting for their acknowledgement at a time.
    Store {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        articles: usize,
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        #[arg(long)]
        seed: PathBuf,
    },
    /// Ceiling: serve a no-op IngestService (for `ingest` against it).
    NoopServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// An OTLP trace collector that counts and drops what it is sent (for khabar with
    /// --otlp-endpoint); reports the span count on stderr when it stops.
    OtlpSink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Concurrent unary Ingest calls.
    Unary,
    /// One IngestStream with a window of unacknowledged requests.
    Stream,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;
/// One JSON result line.
type Report = serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    let deadline = Duration::from_secs(cli.max_seconds);
    let server = cli.server.clone();
    let target = cli.target;
    let run = async move {
        match (cli.command, target) {
            (
                Workload::Ingest {
                    articles,
                    start_index,
                    mode,
                    in_flight,
                    seed,
                },
                Target::Khabar,
            ) => {
                ingest(
                    &server,
                    &Seed::load(&seed)?,
                    start_index,
                    articles,
                    mode,
                    in_flight,
                )
                .await
            }
            (
                Workload::Ingest {
                    articles,
                    start_index,
                    mode,
                    in_flight,
                    seed,
                },
                peer,
            ) => {
                let bytes = Arc::new(Seed::load(&seed)?.encoded(start_index, articles));
                if peer == Target::Redis {
                    redis::wait_ready(&server).await?;
                }
                let mut report = match (peer, mode) {
                    (Target::Redis, Mode::Unary) => {
                        redis::ingest_connections(&server, bytes, in_flight).await?
                    }
                    (Target::Redis, Mode::Stream) => {
                        redis::ingest_pipelined(&server, bytes, in_flight).await?
                    }
                    _ => {
                        nats::create_stream(&server).await?;
                        nats::ingest(&server, bytes, in_flight).await?
                    }
                };
                merge(
                    &mut report,
                    json!({"in_flight": in_flight, "mode": mode_name(mode)}),
                );
                Ok(report)
            }
            (Workload::Catchup { consumers, events }, Target::Khabar) => {
                catchup(&server, consumers, events).await
            }
            (Workload::Catchup { consumers, events }, Target::Redis) => {
                redis::catchup(&server, consumers, events as usize).await
            }
            (Workload::Catchup { consumers, events }, Target::Nats) => {
                nats::catchup(&server, consumers, events as usize).await
            }
            (
                Workload::Tail {
                    subscribers,
                    rate,
                    articles,
                    start_index,
                    seed,
                },
                Target::Khabar,
            ) => {
                tail(
                    &server,
                    &Seed::load(&seed)?,
                    subscribers,
                    rate,
                    start_index,
                    articles,
                )
                .await
            }
            (
                Workload::Tail {
                    subscribers,
                    rate,
                    articles,
                    start_index,
                    seed,
                },
                Target::Redis,
            ) => {
                let bytes = Arc::new(Seed::load(&seed)?.encoded(start_index, articles));
                redis::tail(&server, bytes, subscribers, rate).await
            }
            (
                Workload::Tail {
                    subscribers,
                    rate,
                    articles,
                    start_index,
                    seed,
                },
                Target::Nats,
            ) => {
                let bytes = Arc::new(Seed::load(&seed)?.encoded(start_index, articles));
                nats::tail(&server, bytes, subscribers, rate, start_index).await
            }
            (Workload::Fsync { dir, seconds }, _) => ceilings::fsync_rate(&dir, seconds),
            (
                Workload::Sled {
                    dir,
                    articles,
                    in_flight,
                    seed,
                },
                _,
            ) => {
                let bytes = Seed::load(&seed)?.encoded(0, articles);
                ceilings::sled_inserts(&dir, &bytes, in_flight)
            }
            (
                Workload::Store {
                    dir,
                    articles,
                    in_flight,
                    seed,
                },
                _,
            ) => {
                let seed = Seed::load(&seed)?;
                let requests = (0..articles).map(|i| seed.article(i)).collect();
                ceilings::store_ingests(&dir, requests, in_flight).await
            }
            (Workload::NoopServer { listen }, _) => ceilings::serve_noop(&listen, deadline).await,
            (Workload::OtlpSink { listen }, _) => {
                ceilings::serve_otlp_sink(&listen, deadline).await
            }
        }
    };
    let report = tokio::time::timeout(deadline + Duration::from_secs(1), run)
        .await
        .map_err(|_| format!("gave up after {deadline:?}"))??;
    println!("{report}");
    Ok(())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Unary => "unary",
        Mode::Stream => "stream",
    }
}

/// The seed article split as WORKLOAD.md describes.
struct Seed {
    site: String,
    headline: String,
    paragraphs: Vec<String>,
    origin: String,
}

impl Seed {
    fn load(path: &PathBuf) -> Result<Self, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (site, headline, body, origin) = seed::split(&text)?;
        Ok(Self {
            site: site.to_owned(),
            headline: headline.to_owned(),
            paragraphs: body.iter().map(|p| (*p).to_owned()).collect(),
            origin: origin.to_owned(),
        })
    }

    /// The protobuf bytes of articles `start..start + count`, as peers store them.
    fn encoded(&self, start: usize, count: usize) -> Vec<Vec<u8>> {
        (start..start + count)
            .map(|i| {
                self.article(i)
                    .article
                    .map(|a| a.encode_to_vec())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Article `i` of the workload.
    fn article(&self, i: usize) -> pb::IngestRequest {
        const SOURCES: [&str; 4] = ["alkhabar", "wire-a", "wire-b", "wire-c"];
        let mut paragraphs = self.paragraphs.clone();
        paragraphs.rotate_left(i % 10);
        pb::IngestRequest {
            article: Some(pb::Article {
                source: Some(pb::Source {
                    id: SOURCES[i % 4].into(),
                    name: self.site.clone(),
                    url: String::new(),
                }),
                uri: format!("https://alkhabar.example/bench/{i}"),
                headline: format!("{} #{i}", self.headline),
                body: paragraphs.join("\n\n"),
                language: "ar".into(),
                // 2016-07-01T00:00:00Z plus i seconds.
                published_at: Some(pbjson_types::Timestamp {
                    seconds: 1_467_331_200 + i as i64,
                    nanos: 0,
                }),
                tags: vec!["سوريا".into(), "البوكمال".into(), format!("tag-{}", i % 16)],
                info_sources: vec![pb::InfoSource {
                    name: self.origin.clone(),
                    uri: String::new(),
                    role: "originating".into(),
                }],
                ..Default::default()
            }),
        }
    }
}

async fn connect(server: &str) -> Result<Channel, Failure> {
    Ok(Channel::from_shared(server.to_owned())?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank].as_secs_f64() * 1e3
}

/// Adds p50, p99 and max of `latencies` to `report`.
fn latency_fields(report: &mut Report, mut latencies: Vec<Duration>) {
    latencies.sort_unstable();
    merge(
        report,
        json!({
            "p50_ms": percentile_ms(&latencies, 0.50),
            "p99_ms": percentile_ms(&latencies, 0.99),
            "max_ms": latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        }),
    );
}

fn catchup_report(
    consumers: usize,
    events: u64,
    started: Instant,
    per_consumer: Vec<f64>,
) -> Report {
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "workload": "catchup",
        "consumers": consumers,
        "events": events,
        "seconds": seconds,
        "events_per_sec_per_consumer": per_consumer,
        "events_per_sec_total": (consumers as u64 * events) as f64 / seconds,
    })
}

fn tail_report(
    subscribers: usize,
    articles: usize,
    rate: u32,
    published: f64,
    latencies: Vec<Duration>,
) -> Report {
    let mut report = json!({
        "workload": "tail",
        "subscribers": subscribers,
        "articles": articles,
        "rate_target": rate,
        "rate_achieved": published,
        "samples": latencies.len(),
    });
    latency_fields(&mut report, latencies);
    report
}

async fn ingest(
    server: &str,
    seed: &Seed,
    start_index: usize,
    articles: usize,
    mode: Mode,
    in_flight: usize,
) -> Result<serde_json::Value, Failure> {
    let requests: Vec<pb::IngestRequest> = (start_index..start_index + articles)
        .map(|i| seed.article(i))
        .collect();
    let article_bytes: usize = requests
        .iter()
        .map(|r| r.article.as_ref().map_or(0, Message::encoded_len))
        .sum();
    let client = IngestServiceClient::new(connect(server).await?);
    let started = Instant::now();
    let latencies = match mode {
        Mode::Unary => ingest_unary(client, requests, in_flight).await?,
        Mode::Stream => ingest_stream(client, requests, in_flight).await?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut report = json!({
        "workload": "ingest",
        "mode": match mode { Mode::Unary => "unary", Mode::Stream => "stream" },
        "in_flight": in_flight,
        "articles": articles,
        "seconds": seconds,
        "articles_per_sec": articles as f64 / seconds,
        "mb_per_sec": article_bytes as f64 / seconds / 1e6,
    });
    latency_fields(&mut report, latencies);
    Ok(report)
}

fn check_created(response: &pb::IngestResponse) -> Result<(), Failure> {
    match response.outcome() {
        IngestOutcome::Created => Ok(()),
        other => Err(format!("article not created: {other:?} {:?}", response.error).into()),
    }
}

async fn ingest_unary(
    client: IngestServiceClient<Channel>,
    requests: Vec<pb::IngestRequest>,
    in_flight: usize,
) -> Result<Vec<Duration>, Failure> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (mut client, requests, next) = (client.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        return Ok::<_, Failure>(latencies);
                    };
                    let sent = Instant::now();
                    let response = client.ingest(request.clone()).await?.into_inner();
                    latencies.push(sent.elapsed());
                    check_created(&response)?;
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(latencies)
}

async fn ingest_stream(
    mut client: IngestServiceClient<Channel>,
    requests: Vec<pb::IngestRequest>,
    window: usize,
) -> Result<Vec<Duration>, Failure> {
    let total = requests.len();
    let permits = Arc::new(Semaphore::new(window));
    let sent_at = Arc::new(Mutex::new(std::collections::VecDeque::with_capacity(total)));
    let (tx, rx) = mpsc::channel(window.max(1));
    let sender = {
        let (permits, sent_at) = (permits.clone(), sent_at.clone());
        tokio::spawn(async move {
            for request in requests {
                // At most `window` requests are unacknowledged at any time.
                permits.acquire().await.expect("semaphore open").forget();
                sent_at
                    .lock()
                    .expect("not poisoned")
                    .push_back(Instant::now());
                if tx.send(request).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut responses = client
        .ingest_stream(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut latencies = Vec::with_capacity(total);
    while latencies.len() < total {
        let response = responses.next().await.ok_or("stream ended early")??;
        check_created(&response)?;
        let sent = sent_at
            .lock()
            .expect("not poisoned")
            .pop_front()
            .ok_or("response without request")?;
        latencies.push(sent.elapsed());
        permits.add_permits(1);
    }
    sender.await?;
    Ok(latencies)
}

/// A `khabar.v1.FeedEvent` read as its cursor and kind, with the article left as bytes: a
/// consumer that hands the article on (to a queue, a file, an index) needs no more, and the
/// peers' consumers in this benchmark receive their payload as opaque bytes too.
#[derive(Clone, PartialEq, prost::Message)]
struct FeedEventEnvelope {
    #[prost(uint64, tag = "1")]
    cursor: u64,
    #[prost(enumeration = "EventKind", tag = "2")]
    kind: i32,
    #[prost(bytes = "bytes", tag = "3")]
    article: prost::bytes::Bytes,
}

/// Subscribes from the beginning, decoding events as [`FeedEventEnvelope`]s.
async fn subscribe_envelopes(
    channel: Channel,
) -> Result<tonic::Streaming<FeedEventEnvelope>, Failure> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
    grpc.ready().await?;
    let request = pb::SubscribeRequest {
        start: Some(Start::FromBeginning(true)),
        ..Default::default()
    };
    let path = http::uri::PathAndQuery::from_static("/khabar.v1.FeedService/Subscribe");
    let codec = tonic_prost::ProstCodec::<pb::SubscribeRequest, FeedEventEnvelope>::default();
    Ok(grpc
        .server_streaming(tonic::Request::new(request), path, codec)
        .await?
        .into_inner())
}

async fn catchup(
    server: &str,
    consumers: usize,
    events: u64,
) -> Result<serde_json::Value, Failure> {
    let mut readers = Vec::new();
    let started = Instant::now();
    for _ in 0..consumers {
        let channel = connect(server).await?;
        readers.push(tokio::spawn(async move {
            let begun = Instant::now();
            let mut feed = subscribe_envelopes(channel).await?;
            let mut read = 0;
            while read < events {
                let event = feed.next().await.ok_or("feed ended early")??;
                if event.kind() != EventKind::Checkpoint {
                    read += 1;
                    if event.cursor != read {
                        return Err::<f64, Failure>(
                            format!("expected cursor {read}, got {}", event.cursor).into(),
                        );
                    }
                }
            }
            Ok(events as f64 / begun.elapsed().as_secs_f64())
        }));
    }
    let mut per_consumer = Vec::new();
    for reader in readers {
        per_consumer.push(reader.await??);
    }
    Ok(catchup_report(consumers, events, started, per_consumer))
}

async fn tail(
    server: &str,
    seed: &Seed,
    subscribers: usize,
    rate: u32,
    start_index: usize,
    articles: usize,
) -> Result<serde_json::Value, Failure> {
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let mut client = FeedServiceClient::new(connect(server).await?);
        let request = pb::SubscribeRequest {
            start: Some(Start::FromNow(true)),
            ..Default::default()
        };
        let mut feed = client.subscribe(request).await?.into_inner();
        let sent_at = sent_at.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(articles);
            while latencies.len() < articles {
                let event = feed.next().await.ok_or("feed ended early")??;
                let received = Instant::now();
                let Some(article) = event.article else {
                    continue;
                };
                let sent = sent_at
                    .lock()
                    .expect("not poisoned")
                    .get(&article.uri)
                    .copied();
                latencies
                    .push(received - sent.ok_or("event for an article this run did not send")?);
            }
            Ok::<_, Failure>(latencies)
        }));
    }

    let client = IngestServiceClient::new(connect(server).await?);
    let requests: Vec<pb::IngestRequest> = (start_index..start_index + articles)
        .map(|i| seed.article(i))
        .collect();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let started = Instant::now();
    let mut publishes = Vec::with_capacity(articles);
    for request in requests {
        ticks.tick().await;
        let uri = request
            .article
            .as_ref()
            .map(|a| a.uri.clone())
            .unwrap_or_default();
        sent_at
            .lock()
            .expect("not poisoned")
            .insert(uri, Instant::now());
        let mut client = client.clone();
        publishes.push(tokio::spawn(async move { client.ingest(request).await }));
    }
    for publish in publishes {
        check_created(&publish.await??.into_inner())?;
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await??);
    }
    Ok(tail_report(
        subscribers,
        articles,
        rate,
        articles as f64 / publish_seconds,
        latencies,
    ))
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
