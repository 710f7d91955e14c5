//! NATS JetStream as a peer: a minimal client of the NATS text protocol (CONNECT, PUB, SUB, MSG,
//! PING/PONG) and the W1/W2 workloads on a file-backed JetStream stream. Articles are published
//! as their protobuf bytes; subject `articles.<i>` carries the article index.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Semaphore,
};

use crate::{Failure, Report, latency_fields};

const STREAM: &str = "ARTICLES";

/// A delivered message.
pub struct Msg {
    pub subject: String,
    pub payload: Vec<u8>,
}

struct Reader(BufReader<OwnedReadHalf>);

impl Reader {
    /// The next MSG; answers nothing itself (the writer half answers PINGs via `pending_pong`).
    async fn next(&mut self, pongs: &Mutex<usize>) -> Result<Msg, Failure> {
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).await? == 0 {
                return Err("nats closed the connection".into());
            }
            let line = line.trim_end();
            if line == "PING" {
                *pongs.lock().expect("not poisoned") += 1;
                continue;
            }
            if line == "PONG" || line == "+OK" || line.starts_with("INFO") {
                continue;
            }
            if let Some(error) = line.strip_prefix("-ERR") {
                return Err(format!("nats: {error}").into());
            }
            let Some(rest) = line.strip_prefix("MSG ") else {
                return Err(format!("unexpected line from nats: {line}").into());
            };
            // MSG <subject> <sid> [reply] <bytes>
            let parts: Vec<&str> = rest.split(' ').collect();
            let len: usize = parts.last().ok_or("malformed MSG")?.parse()?;
            let mut payload = vec![0; len + 2];
            self.0.read_exact(&mut payload).await?;
            payload.truncate(len);
            return Ok(Msg {
                subject: parts[0].to_owned(),
                payload,
            });
        }
    }
}

/// One NATS connection split into halves.
struct Connection {
    reader: Reader,
    writer: OwnedWriteHalf,
    pongs: Arc<Mutex<usize>>,
}

impl Connection {
    async fn open(addr: &str) -> Result<Self, Failure> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut writer) = stream.into_split();
        let mut reader = Reader(BufReader::with_capacity(1 << 16, read));
        let mut info = String::new();
        reader.0.read_line(&mut info).await?;
        writer
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"headers\":false}\r\nPING\r\n")
            .await?;
        let mut pong = String::new();
        reader.0.read_line(&mut pong).await?;
        if !pong.starts_with("PONG") {
            return Err(format!("nats refused the connection: {pong}").into());
        }
        Ok(Self {
            reader,
            writer,
            pongs: Arc::default(),
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        send_with_pongs(&mut self.writer, &self.pongs, bytes).await
    }

    async fn subscribe(&mut self, subject: &str, sid: u32) -> Result<(), Failure> {
        self.send(format!("SUB {subject} {sid}\r\n").as_bytes())
            .await
    }

    /// A request/reply round trip on a fresh inbox.
    async fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        inbox: &str,
    ) -> Result<Msg, Failure> {
        self.subscribe(inbox, 999).await?;
        self.send(&publish_frame(subject, Some(inbox), payload))
            .await?;
        let reply = self.reader.next(&self.pongs).await?;
        self.send(b"UNSUB 999\r\n").await?;
        Ok(reply)
    }
}

/// Writes `bytes`, first answering any PING the reader saw.
async fn send_with_pongs(
    writer: &mut OwnedWriteHalf,
    pongs: &Mutex<usize>,
    bytes: &[u8],
) -> Result<(), Failure> {
    let owed = std::mem::take(&mut *pongs.lock().expect("not poisoned"));
    for _ in 0..owed {
        writer.write_all(b"PONG\r\n").await?;
    }
    writer.write_all(bytes).await?;
    Ok(())
}

fn publish_frame(subject: &str, reply: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let mut frame = match reply {
        Some(reply) => format!("PUB {subject} {reply} {}\r\n", payload.len()),
        None => format!("PUB {subject} {}\r\n", payload.len()),
    }
    .into_bytes();
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    frame
}

fn check_api_reply(msg: &Msg) -> Result<(), Failure> {
    let text = String::from_utf8_lossy(&msg.payload);
    if text.contains("\"error\"") {
        Err(format!("jetstream: {text}").into())
    } else {
        Ok(())
    }
}

/// Waits for the server, then creates the file-backed stream.
pub async fn create_stream(addr: &str) -> Result<(), Failure> {
    let mut connection = None;
    for _ in 0..200 {
        if let Ok(c) = Connection::open(addr).await {
            connection = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut connection = connection.ok_or("nats did not answer")?;
    let config = format!(
        r#"{{"name":"{STREAM}","subjects":["articles.>"],"storage":"file","max_msg_size":8388608}}"#
    );
    let reply = connection
        .request(
            &format!("$JS.API.STREAM.CREATE.{STREAM}"),
            config.as_bytes(),
            "_INBOX.create",
        )
        .await?;
    check_api_reply(&reply)
}

/// W1: publishes with up to `window` unacknowledged on one connection (JetStream's async
/// publish), counting an article when its PubAck arrives.
pub async fn ingest(
    addr: &str,
    articles: Arc<Vec<Vec<u8>>>,
    window: usize,
) -> Result<Report, Failure> {
    let Connection {
        mut reader,
        mut writer,
        pongs,
    } = Connection::open(addr).await?;
    send_with_pongs(&mut writer, &pongs, b"SUB _INBOX.acks.* 1\r\n").await?;
    let permits = Arc::new(Semaphore::new(window));
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; articles.len()]));
    let started = Instant::now();
    let sender = {
        let (articles, permits, sent_at, pongs) = (
            articles.clone(),
            permits.clone(),
            sent_at.clone(),
            pongs.clone(),
        );
        tokio::spawn(async move {
            for (i, article) in articles.iter().enumerate() {
                permits.acquire().await?.forget();
                let frame = publish_frame(
                    &format!("articles.{i}"),
                    Some(&format!("_INBOX.acks.{i}")),
                    article,
                );
                sent_at.lock().expect("not poisoned")[i] = Some(Instant::now());
                send_with_pongs(&mut writer, &pongs, &frame).await?;
            }
            Ok::<_, Failure>(writer)
        })
    };
    let mut latencies = Vec::with_capacity(articles.len());
    while latencies.len() < articles.len() {
        let ack = reader.next(&pongs).await?;
        check_api_reply(&ack)?;
        let index: usize = ack
            .subject
            .rsplit('.')
            .next()
            .ok_or("ack without index")?
            .parse()?;
        let sent = sent_at.lock().expect("not poisoned")[index].ok_or("ack before publish")?;
        latencies.push(sent.elapsed());
        permits.add_permits(1);
    }
    drop(sender.await??);
    let seconds = started.elapsed().as_secs_f64();
    let bytes: usize = articles.iter().map(Vec::len).sum();
    let mut report = serde_json::json!({
        "workload": "ingest",
        "articles": articles.len(),
        "seconds": seconds,
        "articles_per_sec": articles.len() as f64 / seconds,
        "mb_per_sec": bytes as f64 / seconds / 1e6,
    });
    latency_fields(&mut report, latencies);
    Ok(report)
}

/// Creates an ephemeral push consumer delivering to `inbox` on `connection`.
async fn push_consumer(
    connection: &mut Connection,
    inbox: &str,
    deliver_policy: &str,
) -> Result<(), Failure> {
    connection.subscribe(inbox, 7).await?;
    let config = format!(
        r#"{{"stream_name":"{STREAM}","config":{{"deliver_policy":"{deliver_policy}","ack_policy":"none","deliver_subject":"{inbox}","replay_policy":"instant","max_ack_pending":-1}}}}"#
    );
    let reply = connection
        .request(
            &format!("$JS.API.CONSUMER.CREATE.{STREAM}"),
            config.as_bytes(),
            &format!("{inbox}.api"),
        )
        .await?;
    check_api_reply(&reply)
}

/// W2a: consumers each read the whole stream through a push consumer at the same time.
pub async fn catchup(addr: &str, consumers: usize, events: usize) -> Result<Report, Failure> {
    let started = Instant::now();
    let mut readers = Vec::new();
    for c in 0..consumers {
        let mut connection = Connection::open(addr).await?;
        readers.push(tokio::spawn(async move {
            let begun = Instant::now();
            push_consumer(&mut connection, &format!("_INBOX.catchup{c}"), "all").await?;
            let mut read = 0;
            while read < events {
                let msg = connection.reader.next(&connection.pongs).await?;
                if msg.subject.starts_with("articles.") {
                    read += 1;
                }
                if read % 256 == 0 {
                    // Answer server PINGs while busy reading.
                    send_with_pongs(&mut connection.writer, &connection.pongs, b"").await?;
                }
            }
            Ok::<f64, Failure>(events as f64 / begun.elapsed().as_secs_f64())
        }));
    }
    let mut per_consumer = Vec::new();
    for reader in readers {
        per_consumer.push(reader.await??);
    }
    Ok(crate::catchup_report(
        consumers,
        events as u64,
        started,
        per_consumer,
    ))
}

/// W2b: push consumers from "new" while one producer publishes at a steady rate.
pub async fn tail(
    addr: &str,
    articles: Arc<Vec<Vec<u8>>>,
    subscribers: usize,
    rate: u32,
    first_index: usize,
) -> Result<Report, Failure> {
    let total = articles.len();
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let mut readers = Vec::new();
    for s in 0..subscribers {
        let mut connection = Connection::open(addr).await?;
        push_consumer(&mut connection, &format!("_INBOX.tail{s}"), "new").await?;
        let sent_at = sent_at.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                let msg = connection.reader.next(&connection.pongs).await?;
                let received = Instant::now();
                let index: usize = msg.subject.rsplit('.').next().ok_or("no index")?.parse()?;
                let sent = sent_at.lock().expect("not poisoned")[index - first_index]
                    .ok_or("message before its send")?;
                latencies.push(received - sent);
                send_with_pongs(&mut connection.writer, &connection.pongs, b"").await?;
            }
            Ok::<_, Failure>(latencies)
        }));
    }

    let Connection {
        mut reader,
        mut writer,
        pongs,
    } = Connection::open(addr).await?;
    send_with_pongs(&mut writer, &pongs, b"SUB _INBOX.tailacks.* 1\r\n").await?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let started = Instant::now();
    for (i, article) in articles.iter().enumerate() {
        ticks.tick().await;
        sent_at.lock().expect("not poisoned")[i] = Some(Instant::now());
        let frame = publish_frame(
            &format!("articles.{}", first_index + i),
            Some(&format!("_INBOX.tailacks.{i}")),
            article,
        );
        send_with_pongs(&mut writer, &pongs, &frame).await?;
        check_api_reply(&reader.next(&pongs).await?)?;
    }
    let published = total as f64 / started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for r in readers {
        latencies.extend(r.await??);
    }
    Ok(crate::tail_report(
        subscribers,
        total,
        rate,
        published,
        latencies,
    ))
}
