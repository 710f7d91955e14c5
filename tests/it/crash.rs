//! Crash safety: a khabar child process takes concurrent ingests and consumer acks and is
//! killed with SIGKILL right after an acknowledgement; after a restart every acknowledged
//! article and its log event must be there exactly once, with no gap in the cursors, and the
//! consumer's confirmed ack must hold. `KHABAR_CRASH_RUNS` sets how many
//! kill/restart rounds to run (default 3).

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, Hasher},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::common::{ChildServer, WAIT, seed_request};
use khabar::{
    domain::ArticleId,
    pb::khabar::v1::{
        self as pb, IngestOutcome, article_service_client::ArticleServiceClient,
        feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
        subscribe_request::Start,
    },
    store::{ArticleStore, EventKind, SledStore, SledStoreConfig},
};

const CLIENTS: usize = 16;
const CONSUMER: &str = "crash-consumer";
const MAX_REQUESTS_PER_CLIENT: usize = 2_000;

#[derive(Debug, Clone)]
struct Ack {
    uri: String,
    id: String,
    version: u64,
    cursor: u64,
    outcome: IngestOutcome,
}

/// A number that differs from call to call and from run to run: SipHash with random keys over
/// the clock.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    hasher.finish()
}

fn request(uri: &str, revision: usize) -> pb::IngestRequest {
    let mut request = seed_request();
    let article = request.article.as_mut().unwrap();
    article.uri = uri.to_owned();
    if revision > 0 {
        article.body.push_str(&format!("\n\nتحديث رقم {revision}"));
    }
    request
}

/// Ingests from CLIENTS concurrent clients and kills the server right after ack number `kill_after`.
/// Ingests from CLIENTS concurrent clients while a durable consumer acknowledges the latest
/// cursor, and kills the server right after ack number `kill_after`. Returns the article
/// acknowledgements and the highest consumer cursor the server confirmed.
async fn ingest_until_killed(
    server: ChildServer,
    run: usize,
    kill_after: usize,
) -> (Vec<Ack>, u64) {
    let channel = server.channel().await;
    let latest_cursor = Arc::new(AtomicU64::new(0));
    let mut feeds = FeedServiceClient::new(channel.clone());
    drop(
        feeds
            .subscribe(pb::SubscribeRequest {
                consumer: CONSUMER.into(),
                start: Some(Start::FromBeginning(true)),
                ..Default::default()
            })
            .await
            .expect("create the consumer"),
    );
    let acker = {
        let latest_cursor = latest_cursor.clone();
        tokio::spawn(async move {
            let mut confirmed = 0;
            for _ in 0..10_000 {
                let cursor = latest_cursor.load(Ordering::Relaxed);
                match feeds
                    .ack(pb::AckRequest {
                        consumer: CONSUMER.into(),
                        cursor,
                    })
                    .await
                {
                    Ok(consumer) => confirmed = consumer.into_inner().acked_cursor,
                    Err(_) => break,
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            confirmed
        })
    };
    let server = Arc::new(Mutex::new(Some(server)));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let mut ingest = IngestServiceClient::new(channel.clone());
            let (server, acks, latest_cursor) =
                (server.clone(), acks.clone(), latest_cursor.clone());
            tokio::spawn(async move {
                let mut mine: Vec<(String, usize)> = Vec::new();
                for n in 0..MAX_REQUESTS_PER_CLIENT {
                    // Every fourth request edits one of this client's earlier articles.
                    let (uri, revision) = match (n % 4, mine.len()) {
                        (3, len) if len > 0 => {
                            let slot = &mut mine[n % len];
                            slot.1 += 1;
                            slot.clone()
                        }
                        _ => {
                            let uri = format!("https://alkhabar.example/crash/{run}/{client}/{n}");
                            mine.push((uri.clone(), 0));
                            (uri, 0)
                        }
                    };
                    let Ok(response) = ingest.ingest(request(&uri, revision)).await else {
                        break;
                    };
                    let response = response.into_inner();
                    latest_cursor.fetch_max(response.cursor, Ordering::Relaxed);
                    let mut acks = acks.lock().unwrap();
                    acks.push(Ack {
                        uri,
                        id: response.id.clone(),
                        version: response.version,
                        cursor: response.cursor,
                        outcome: response.outcome(),
                    });
                    if acks.len() == kill_after {
                        // SIGKILL right after this acknowledgement, with other requests in flight.
                        if let Some(mut server) = server.lock().unwrap().take() {
                            server.child.kill().expect("kill khabar");
                            server.child.wait().expect("reap khabar");
                        }
                    }
                }
            })
        })
        .collect();
    for client in clients {
        tokio::time::timeout(WAIT * 3, client)
            .await
            .expect("client ends")
            .expect("client task");
    }
    assert!(
        server.lock().unwrap().is_none(),
        "the server was killed during the load"
    );
    let confirmed = tokio::time::timeout(WAIT, acker)
        .await
        .expect("acker ends")
        .unwrap();
    (
        Arc::try_unwrap(acks).unwrap().into_inner().unwrap(),
        confirmed,
    )
}

/// What one kill/restart round found; every count but `acked` must be zero.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Acknowledged ingests.
    acked: usize,
    /// Acknowledged writes missing or different after the restart (articles, the consumer's ack).
    lost: usize,
    /// Events logged twice for one article version, or articles created twice.
    duplicated: usize,
    /// Cursors missing from 1..=head, or out of place.
    gaps: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.acked += other.acked;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.gaps += other.gaps;
    }
}

/// Checks the data directory directly with the store: the log should be gap-free and hold
/// every acknowledged write exactly once. Returns the head cursor and what was found.
async fn check_store(data_dir: &Path, acks: &[Ack], confirmed_consumer_ack: u64) -> (u64, Tally) {
    let mut tally = Tally {
        acked: acks.len(),
        ..Tally::default()
    };
    let store =
        SledStore::open(&SledStoreConfig::new(data_dir.to_owned())).expect("reopen after kill");
    let head = *store.durable_head().borrow();
    match store.consumer(CONSUMER.into()).await {
        Ok(consumer) if consumer.acked_cursor >= confirmed_consumer_ack => {}
        other => {
            eprintln!("confirmed consumer ack {confirmed_consumer_ack} lost: {other:?}");
            tally.lost += 1;
        }
    }
    let mut events = Vec::new();
    while (events.len() as u64) < head {
        let batch = store.read_log(events.len() as u64, 1_000).await.unwrap();
        assert!(!batch.is_empty(), "log ends before head {head}");
        events.extend(batch);
    }
    tally.gaps += events
        .iter()
        .enumerate()
        .filter(|(i, e)| e.cursor != *i as u64 + 1)
        .count()
        + (head as usize).saturating_sub(events.len());

    let articles: Vec<_> = events
        .iter()
        .map(|e| e.decode_article().expect("logged article decodes"))
        .collect();
    let mut by_version = HashSet::new();
    let mut created_per_uri: HashMap<&str, usize> = HashMap::new();
    for (event, article) in events.iter().zip(&articles) {
        if !by_version.insert((article.id, article.version)) {
            eprintln!("event for {} v{} logged twice", article.id, article.version);
            tally.duplicated += 1;
        }
        assert_eq!(
            (event.header.id, event.header.version),
            (article.id, article.version)
        );
        if event.kind == EventKind::Created {
            *created_per_uri
                .entry(article.content.uri.as_str())
                .or_default() += 1;
        }
    }
    tally.duplicated += created_per_uri.values().filter(|n| **n > 1).count();

    for ack in acks {
        let logged = events
            .get(ack.cursor as usize - 1)
            .zip(articles.get(ack.cursor as usize - 1));
        let kept = logged.is_some_and(|(event, article)| {
            let expected_kind = match ack.outcome {
                IngestOutcome::Created => EventKind::Created,
                IngestOutcome::Updated => EventKind::Updated,
                other => panic!("unexpected outcome {other:?} for {}", ack.uri),
            };
            article.id.to_string() == ack.id
                && article.content.uri == ack.uri
                && event.kind == expected_kind
                && article.version == ack.version
        });
        let id: ArticleId = ack.id.parse().unwrap();
        let stored = store
            .get(id, khabar::store::View::Released)
            .await
            .is_ok_and(|stored| stored.version >= ack.version);
        if !(kept && stored) {
            eprintln!("acknowledged {ack:?} lost (head {head})");
            tally.lost += 1;
        }
    }
    (head, tally)
}

/// Restarts the server on the directory and reads every acknowledged article over gRPC.
async fn check_after_restart(data_dir: &Path, acks: &[Ack], head: u64) {
    let server = ChildServer::start(data_dir);
    let channel = server.channel().await;
    let mut articles = ArticleServiceClient::new(channel.clone());
    let latest: HashMap<&str, u64> = acks.iter().fold(HashMap::new(), |mut m, a| {
        let v = m.entry(a.id.as_str()).or_default();
        *v = (*v).max(a.version);
        m
    });
    for (id, version) in latest {
        let article = articles
            .get_article(pb::GetArticleRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("acknowledged article readable after restart")
            .into_inner();
        assert!(article.version >= version);
    }
    let next = IngestServiceClient::new(channel)
        .ingest(request(
            &format!("https://alkhabar.example/crash/after/{head}"),
            0,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next.cursor,
        head + 1,
        "the next cursor follows the recovered head"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_articles_survive_sigkill() {
    let runs: usize = std::env::var("KHABAR_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut total = Tally::default();
    for run in 0..runs {
        let data_dir = tempfile::tempdir().unwrap();
        let kill_after = 50 + (random_u64() % 350) as usize;
        let (acks, confirmed_consumer_ack) =
            ingest_until_killed(ChildServer::start(data_dir.path()), run, kill_after).await;
        assert!(
            confirmed_consumer_ack > 0,
            "run {run}: the consumer acknowledged something"
        );
        assert!(acks.len() >= kill_after, "run {run}: {} acks", acks.len());
        assert!(
            acks.iter().any(|a| a.outcome == IngestOutcome::Updated),
            "run {run} exercised updates"
        );
        let (head, tally) = check_store(data_dir.path(), &acks, confirmed_consumer_ack).await;
        assert!(head >= acks.iter().map(|a| a.cursor).max().unwrap_or(0));
        check_after_restart(data_dir.path(), &acks, head).await;
        eprintln!(
            "crash run {run}: killed after ack {kill_after}, {} acks, head {head}, consumer ack {confirmed_consumer_ack}: {tally:?}",
            acks.len()
        );
        total += tally;
    }
    // The line tests/soak.sh reports.
    eprintln!(
        "soak: cycles={runs} acked={} lost={} duplicated={} gaps={}",
        total.acked, total.lost, total.duplicated, total.gaps
    );
    assert_eq!(
        (total.lost, total.duplicated, total.gaps),
        (0, 0, 0),
        "{total:?}"
    );
}
