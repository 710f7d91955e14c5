//! Redis Streams as a peer: a minimal RESP client (enough for XADD, XRANGE, XREAD, PING) and the
//! W1/W2 workloads on it. Articles are stored as their protobuf bytes, the same bytes khabar gets.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
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

const KEY: &[u8] = b"articles";

/// A RESP reply.
#[derive(Debug)]
pub enum Reply {
    Simple,
    Error(String),
    Integer,
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Encodes a command as a RESP array of bulk strings.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

struct ReplyReader(BufReader<OwnedReadHalf>);

impl ReplyReader {
    fn read(&mut self) -> Pin<Box<dyn Future<Output = Result<Reply, Failure>> + Send + '_>> {
        Box::pin(async move {
            let mut line = String::new();
            if self.0.read_line(&mut line).await? == 0 {
                return Err("redis closed the connection".into());
            }
            let line = line.trim_end_matches("\r\n");
            let (kind, rest) = line.split_at(1);
            Ok(match kind {
                "+" => Reply::Simple,
                "-" => Reply::Error(rest.to_owned()),
                ":" => Reply::Integer,
                "$" => {
                    let len: i64 = rest.parse()?;
                    if len < 0 {
                        Reply::Bulk(None)
                    } else {
                        let mut data = vec![0; len as usize + 2];
                        self.0.read_exact(&mut data).await?;
                        data.truncate(len as usize);
                        Reply::Bulk(Some(data))
                    }
                }
                "*" => {
                    let len: i64 = rest.parse()?;
                    if len < 0 {
                        Reply::Array(None)
                    } else {
                        let mut items = Vec::with_capacity(len as usize);
                        for _ in 0..len {
                            items.push(self.read().await?);
                        }
                        Reply::Array(Some(items))
                    }
                }
                other => return Err(format!("unexpected RESP type {other:?}").into()),
            })
        })
    }
}

/// One connection, usable pipelined: write commands, then read their replies in order.
struct Connection {
    reader: ReplyReader,
    writer: OwnedWriteHalf,
}

impl Connection {
    async fn open(addr: &str) -> Result<Self, Failure> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: ReplyReader(BufReader::with_capacity(1 << 16, read)),
            writer,
        })
    }

    async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, Failure> {
        let mut out = Vec::new();
        command(&mut out, args);
        self.writer.write_all(&out).await?;
        match self.reader.read().await? {
            Reply::Error(e) => Err(format!("redis: {e}").into()),
            reply => Ok(reply),
        }
    }
}

/// Waits until the server answers PING.
pub async fn wait_ready(addr: &str) -> Result<(), Failure> {
    for _ in 0..200 {
        if let Ok(mut connection) = Connection::open(addr).await
            && connection.call(&[b"PING"]).await.is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("redis at {addr} did not answer").into())
}

fn xadd_args<'a>(index: &'a [u8], article: &'a [u8]) -> [&'a [u8]; 7] {
    [b"XADD", KEY, b"*", b"i", index, b"a", article]
}

/// W1 on separate connections, one command in flight on each.
pub async fn ingest_connections(
    addr: &str,
    articles: Arc<Vec<Vec<u8>>>,
    connections: usize,
) -> Result<Report, Failure> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let mut connection = Connection::open(addr).await?;
        let (articles, next) = (articles.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(article) = articles.get(i) else {
                    return Ok::<_, Failure>(latencies);
                };
                let index = i.to_string();
                let sent = Instant::now();
                connection
                    .call(&xadd_args(index.as_bytes(), article))
                    .await?;
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(ingest_report(&articles, started, latencies))
}

/// W1 on one connection with up to `window` commands pipelined.
pub async fn ingest_pipelined(
    addr: &str,
    articles: Arc<Vec<Vec<u8>>>,
    window: usize,
) -> Result<Report, Failure> {
    let Connection {
        mut reader,
        mut writer,
    } = Connection::open(addr).await?;
    let permits = Arc::new(Semaphore::new(window));
    let sent_at = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let total = articles.len();
    let started = Instant::now();
    let sender = {
        let (articles, permits, sent_at) = (articles.clone(), permits.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            for (i, article) in articles.iter().enumerate() {
                permits.acquire().await?.forget();
                // Send what is allowed in one write, like a pipelining client does.
                out.clear();
                let index = i.to_string();
                command(&mut out, &xadd_args(index.as_bytes(), article));
                sent_at
                    .lock()
                    .expect("not poisoned")
                    .push_back(Instant::now());
                writer.write_all(&out).await?;
            }
            Ok::<_, Failure>(())
        })
    };
    let mut latencies = Vec::with_capacity(total);
    while latencies.len() < total {
        if let Reply::Error(e) = reader.read().await? {
            return Err(format!("redis: {e}").into());
        }
        let sent = sent_at
            .lock()
            .expect("not poisoned")
            .pop_front()
            .ok_or("reply without command")?;
        latencies.push(sent.elapsed());
        permits.add_permits(1);
    }
    sender.await??;
    Ok(ingest_report(&articles, started, latencies))
}

fn ingest_report(articles: &[Vec<u8>], started: Instant, latencies: Vec<Duration>) -> Report {
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
    report
}

/// Entries of an XRANGE/XREAD entry list: (id, index field).
fn entries(reply: Reply) -> Result<Vec<(String, usize)>, Failure> {
    let Reply::Array(Some(items)) = reply else {
        return Ok(Vec::new());
    };
    items
        .into_iter()
        .map(|entry| {
            let Reply::Array(Some(mut parts)) = entry else {
                return Err("malformed entry".into());
            };
            let (Some(Reply::Array(Some(fields))), Some(Reply::Bulk(Some(id)))) =
                (parts.pop(), parts.pop())
            else {
                return Err("malformed entry".into());
            };
            let index = match fields.get(1) {
                Some(Reply::Bulk(Some(i))) => std::str::from_utf8(i)?.parse()?,
                _ => return Err("entry without index".into()),
            };
            Ok((String::from_utf8(id)?, index))
        })
        .collect()
}

/// W2a: consumers page through the whole stream with XRANGE at the same time.
pub async fn catchup(addr: &str, consumers: usize, events: usize) -> Result<Report, Failure> {
    let started = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..consumers {
        let mut connection = Connection::open(addr).await?;
        readers.push(tokio::spawn(async move {
            let begun = Instant::now();
            let (mut read, mut after) = (0, "-".to_owned());
            while read < events {
                let reply = connection
                    .call(&[b"XRANGE", KEY, after.as_bytes(), b"+", b"COUNT", b"1000"])
                    .await?;
                let page = entries(reply)?;
                let Some((last, _)) = page.last() else {
                    return Err::<f64, Failure>("stream ended early".into());
                };
                after = format!("({last}");
                read += page.len();
            }
            Ok(events as f64 / begun.elapsed().as_secs_f64())
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

/// W2b: subscribers block on XREAD while one producer adds articles at a steady rate.
pub async fn tail(
    addr: &str,
    articles: Arc<Vec<Vec<u8>>>,
    subscribers: usize,
    rate: u32,
) -> Result<Report, Failure> {
    let total = articles.len();
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let mut connection = Connection::open(addr).await?;
        // Start after the current end, like khabar's from_now.
        let last = entries(
            connection
                .call(&[b"XREVRANGE", KEY, b"+", b"-", b"COUNT", b"1"])
                .await?,
        )?;
        let mut after = last.first().map_or("0-0".to_owned(), |(id, _)| id.clone());
        let sent_at = sent_at.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                let reply = connection
                    .call(&[
                        b"XREAD",
                        b"COUNT",
                        b"100",
                        b"BLOCK",
                        b"5000",
                        b"STREAMS",
                        KEY,
                        after.as_bytes(),
                    ])
                    .await?;
                let received = Instant::now();
                let Reply::Array(Some(mut streams)) = reply else {
                    return Err::<_, Failure>("XREAD timed out".into());
                };
                let Some(Reply::Array(Some(mut stream))) = streams.pop() else {
                    return Err("malformed XREAD reply".into());
                };
                for (id, index) in entries(stream.pop().ok_or("malformed XREAD reply")?)? {
                    let sent = sent_at.lock().expect("not poisoned")[index]
                        .ok_or("entry before its send")?;
                    latencies.push(received - sent);
                    after = id;
                }
            }
            Ok(latencies)
        }));
    }

    let mut producer = Connection::open(addr).await?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let started = Instant::now();
    for (i, article) in articles.iter().enumerate() {
        ticks.tick().await;
        let index = i.to_string();
        sent_at.lock().expect("not poisoned")[i] = Some(Instant::now());
        producer.call(&xadd_args(index.as_bytes(), article)).await?;
    }
    let published = total as f64 / started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await??);
    }
    Ok(crate::tail_report(
        subscribers,
        total,
        rate,
        published,
        latencies,
    ))
}
