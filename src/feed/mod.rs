//! Feeds: lossless, resumable subscriptions to the ordered log.
//!
//! # Design
//! A subscription remembers one number, the last cursor it examined, and only ever reads the log
//! forward from there: first through stored history, then, once caught up, it waits on the
//! store's durable-head watch and reads again. Live events and history come through the same
//! read, so there is no hand-over between a "history" and a "live" path where events could be
//! lost or repeated, and no event is served before it is durable. Recent events come from the
//! store's in-memory window, older ones from disk, transparently.
//!
//! Ingest never waits for subscribers: a slow subscriber only falls behind and reads from disk
//! later. Memory per subscription is bounded by one read batch ([`READ_BATCH`] events, shared
//! with the store's window when recent) plus the outgoing channel ([`CHANNEL_CAPACITY`] items).
//! A subscriber that went away is noticed when a send fails or, while idle, by the closed
//! channel, and its task ends.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tracing::{Instrument, Span, field::Empty};

use prost::Message as _;

use crate::{
    domain::{ArticleFilter, Timestamp, editorial::Urgency},
    store::{ArticleStore, EventKind, LogEvent, StoreError},
};

/// Events read from the log at a time.
pub const READ_BATCH: usize = 128;
/// Items buffered between a subscription and its client.
pub const CHANNEL_CAPACITY: usize = 64;

/// Which events a subscription delivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    /// Which articles.
    pub articles: ArticleFilter,
    /// Which kinds of event; empty means all.
    pub kinds: Vec<EventKind>,
    /// Only events of articles that start a story.
    pub first_of_story: bool,
}

impl FeedFilter {
    /// Whether the event passes the filter.
    pub fn matches(&self, event: &LogEvent) -> bool {
        let header = &event.header;
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && (!self.first_of_story || header.starts_story)
            && self
                .articles
                .matches_fields(&header.source_id, &header.language, &header.tags)
            && (!self.articles.needs_editorial() || self.matches_editorial(event))
    }

    /// The urgency and genre filters, on the two fields read out of the event's article bytes
    /// (the header has neither: events logged before editorial metadata never had them). The
    /// partial decode skips every other field without copying it, so a filtered feed costs
    /// about a pass over each event's bytes.
    fn matches_editorial(&self, event: &LogEvent) -> bool {
        let Ok(fields) = EditorialFields::decode(event.article.as_ref()) else {
            // Stored bytes are written by khabar; ones it cannot read match no filter.
            return false;
        };
        self.articles.matches_urgency_and_genres(
            Urgency::new(fields.urgency),
            fields.genres.iter().map(|g| g.code.as_str()),
        )
    }
}

/// The fields of `khabar.v1.Article` a feed filters on; the others are skipped when decoding.
#[derive(Clone, PartialEq, prost::Message)]
struct EditorialFields {
    #[prost(uint32, tag = "42")]
    urgency: u32,
    #[prost(message, repeated, tag = "43")]
    genres: Vec<GenreCode>,
}

/// The code of a `khabar.v1.Genre`.
#[derive(Clone, PartialEq, prost::Message)]
struct GenreCode {
    #[prost(string, tag = "1")]
    code: String,
}

/// What a subscription sends.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A matching event.
    Event(Arc<LogEvent>),
    /// Every event up to `cursor` was examined and the matching ones were sent.
    Checkpoint {
        /// Latest cursor examined.
        cursor: u64,
        /// When the checkpoint was made.
        at: Timestamp,
    },
}

/// Why a subscription ended by itself.
#[derive(Debug, thiserror::Error)]
pub enum FeedEnd {
    /// The server is shutting down.
    #[error("khabar is shutting down; resubscribe with after_cursor {last_cursor} to resume")]
    ShuttingDown {
        /// Last cursor examined.
        last_cursor: u64,
    },
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings shared by all subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// Longest silence on an idle feed before a checkpoint is sent.
    pub heartbeat: Duration,
}

/// Counts live subscriptions (for tests and metrics).
#[derive(Debug, Default)]
pub struct FeedStats {
    live: AtomicUsize,
}

impl FeedStats {
    /// Subscriptions whose task is still running.
    pub fn live_subscriptions(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Keeps a subscription counted while its task runs, however the task ends.
struct LiveGuard(Arc<FeedStats>);

impl LiveGuard {
    fn new(stats: Arc<FeedStats>) -> Self {
        stats.live.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts a subscription that delivers every event after `after` that passes `filter`, then
/// follows the log, until the receiver is dropped or `shutdown` turns true.
pub fn subscribe<S: ArticleStore>(
    store: S,
    after: u64,
    filter: FeedFilter,
    settings: FeedSettings,
    shutdown: watch::Receiver<bool>,
    stats: Arc<FeedStats>,
) -> mpsc::Receiver<Result<FeedItem, FeedEnd>> {
    let (items, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let subscription = Subscription {
        _live: LiveGuard::new(stats),
        head: store.durable_head(),
        store,
        after,
        filter,
        settings,
        shutdown,
        items,
        last_sent: Instant::now(),
    };
    // Inside the call's span, so each delivery is traced as a child of the feed's call.
    tokio::spawn(subscription.run().in_current_span());
    receiver
}

struct Subscription<S> {
    _live: LiveGuard,
    store: S,
    head: watch::Receiver<u64>,
    after: u64,
    filter: FeedFilter,
    settings: FeedSettings,
    shutdown: watch::Receiver<bool>,
    items: mpsc::Sender<Result<FeedItem, FeedEnd>>,
    last_sent: Instant,
}

/// Whether the subscription goes on.
enum Flow {
    Continue,
    Stop,
}

impl<S: ArticleStore> Subscription<S> {
    async fn run(mut self) {
        loop {
            let flow = match self.step().await {
                Ok(flow) => flow,
                Err(end) => {
                    // The client may already be gone; either way the subscription ends here.
                    let _ = self.items.send(Err(end)).await;
                    Flow::Stop
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// Reads one batch if the log is ahead, else waits for something to happen.
    async fn step(&mut self) -> Result<Flow, FeedEnd> {
        if *self.shutdown.borrow() {
            return Err(self.shutting_down());
        }
        let head = *self.head.borrow_and_update();
        if self.after < head {
            return self.deliver_batch().await;
        }
        let heartbeat_due = self.last_sent + self.settings.heartbeat;
        tokio::select! {
            _ = self.shutdown.changed() => Ok(Flow::Continue),
            () = self.items.closed() => Ok(Flow::Stop),
            changed = self.head.changed() => match changed {
                Ok(()) => Ok(Flow::Continue),
                Err(_) => Err(StoreError::Unavailable("the store closed".into()).into()),
            },
            () = tokio::time::sleep_until(heartbeat_due) => self.send_checkpoint().await,
        }
    }

    async fn deliver_batch(&mut self) -> Result<Flow, FeedEnd> {
        let span = tracing::debug_span!(
            target: "khabar::feed",
            "feed.deliver",
            khabar.after = i64::try_from(self.after).unwrap_or(i64::MAX),
            khabar.events_read = Empty,
            khabar.events_sent = Empty,
        );
        self.deliver_batch_traced(&span)
            .instrument(span.clone())
            .await
    }

    async fn deliver_batch_traced(&mut self, span: &Span) -> Result<Flow, FeedEnd> {
        let events = self.store.read_log(self.after, READ_BATCH).await?;
        span.record(
            "khabar.events_read",
            i64::try_from(events.len()).unwrap_or(0),
        );
        let mut sent = 0_usize;
        if events.is_empty() {
            // The head says there is more; an empty read would otherwise spin forever.
            return Err(StoreError::Corrupt {
                key: format!("log cursor {}", self.after + 1),
                reason: "missing below the durable head".into(),
            }
            .into());
        }
        for event in events {
            if event.cursor != self.after + 1 {
                return Err(StoreError::Corrupt {
                    key: format!("log cursor {}", self.after + 1),
                    reason: format!("expected next, found cursor {}", event.cursor),
                }
                .into());
            }
            self.after = event.cursor;
            if self.filter.matches(&event) {
                sent += 1;
                span.record("khabar.events_sent", i64::try_from(sent).unwrap_or(0));
                if let Flow::Stop = self.send(FeedItem::Event(event)).await? {
                    return Ok(Flow::Stop);
                }
            }
        }
        // A long run of filtered-out history still reports progress at the heartbeat rate.
        if self.last_sent.elapsed() >= self.settings.heartbeat {
            return self.send_checkpoint().await;
        }
        Ok(Flow::Continue)
    }

    async fn send_checkpoint(&mut self) -> Result<Flow, FeedEnd> {
        let checkpoint = FeedItem::Checkpoint {
            cursor: self.after,
            at: Timestamp::now(),
        };
        self.send(checkpoint).await
    }

    /// Sends one item, waiting for room (a slow client holds only its own subscription), but
    /// giving up on shutdown.
    async fn send(&mut self, item: FeedItem) -> Result<Flow, FeedEnd> {
        let delivered = tokio::select! {
            sent = self.items.send(Ok(item)) => Some(sent.is_ok()),
            _ = self.shutdown.wait_for(|stopping| *stopping) => None,
        };
        match delivered {
            None => Err(self.shutting_down()),
            Some(delivered) => {
                self.last_sent = Instant::now();
                Ok(if delivered {
                    Flow::Continue
                } else {
                    Flow::Stop
                })
            }
        }
    }

    fn shutting_down(&self) -> FeedEnd {
        FeedEnd::ShuttingDown {
            last_cursor: self.after,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        domain::{ArticleDraft, SourceDraft, TimestampDraft, ValidArticle},
        store::{SledStore, SledStoreConfig},
    };

    fn store(dir: &Path) -> SledStore {
        SledStore::open(&SledStoreConfig::new(dir.to_owned())).expect("open store")
    }

    fn article(n: u32, source: &str) -> ValidArticle {
        ArticleDraft {
            source: SourceDraft {
                id: source.into(),
                name: "الخبر".into(),
                url: String::new(),
            },
            uri: format!("https://alkhabar.example/{n}"),
            headline: format!("عنوان {n}"),
            body: "نص الخبر".into(),
            language: "ar".into(),
            published_at: Some(TimestampDraft {
                seconds: 1_467_331_200 + i64::from(n),
                nanos: 0,
            }),
            ..ArticleDraft::default()
        }
        .validate(Timestamp::now())
        .expect("valid")
    }

    struct Feed {
        items: mpsc::Receiver<Result<FeedItem, FeedEnd>>,
        stop: watch::Sender<bool>,
        stats: Arc<FeedStats>,
    }

    fn start(store: &SledStore, after: u64, filter: FeedFilter, heartbeat: Duration) -> Feed {
        let (stop, stopping) = watch::channel(false);
        let stats = Arc::new(FeedStats::default());
        let items = subscribe(
            store.clone(),
            after,
            filter,
            FeedSettings { heartbeat },
            stopping,
            stats.clone(),
        );
        Feed { items, stop, stats }
    }

    impl Feed {
        async fn next(&mut self) -> Result<FeedItem, FeedEnd> {
            // Longer than any heartbeat here: with the paused clock, the earliest timer fires first.
            tokio::time::timeout(Duration::from_secs(120), self.items.recv())
                .await
                .expect("an item in time")
                .expect("the subscription is open")
        }

        /// The cursors of the next `count` events, checkpoints skipped.
        async fn events(&mut self, count: usize) -> Vec<u64> {
            let mut cursors = Vec::new();
            while cursors.len() < count {
                if let FeedItem::Event(event) = self.next().await.expect("no end") {
                    cursors.push(event.cursor);
                }
            }
            cursors
        }
    }

    #[tokio::test]
    async fn catches_up_then_follows_the_log_without_gaps_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for n in 0..5 {
            store.ingest(article(n, "alkhabar")).await.unwrap();
        }
        let mut feed = start(&store, 2, FeedFilter::default(), Duration::from_secs(60));
        assert_eq!(feed.events(3).await, [3, 4, 5]);
        for n in 5..8 {
            store.ingest(article(n, "alkhabar")).await.unwrap();
        }
        assert_eq!(feed.events(3).await, [6, 7, 8]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_feed_sends_a_checkpoint_every_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.ingest(article(0, "alkhabar")).await.unwrap();
        let mut feed = start(&store, 1, FeedFilter::default(), Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        for beat in 1..=3 {
            match feed.next().await.expect("no end") {
                FeedItem::Checkpoint { cursor, .. } => assert_eq!(cursor, 1),
                other => panic!("{other:?}"),
            }
            // The paused clock moved by whole heartbeats, not by real time.
            assert_eq!(started.elapsed(), Duration::from_secs(30 * beat));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn filtered_history_still_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for n in 0..300 {
            store.ingest(article(n, "wire-a")).await.unwrap();
        }
        store.ingest(article(300, "alkhabar")).await.unwrap();
        let filter = FeedFilter {
            articles: ArticleFilter {
                source_ids: vec!["alkhabar".into()],
                ..ArticleFilter::default()
            },
            kinds: vec![],
            first_of_story: false,
        };
        // A heartbeat of zero: every batch of skipped events is followed by a checkpoint.
        let mut feed = start(&store, 0, filter, Duration::ZERO);
        let mut checkpoints = Vec::new();
        loop {
            match feed.next().await.expect("no end") {
                FeedItem::Checkpoint { cursor, .. } => checkpoints.push(cursor),
                FeedItem::Event(event) => {
                    assert_eq!(event.cursor, 301);
                    break;
                }
            }
        }
        assert!(checkpoints.len() >= 2, "{checkpoints:?}");
        assert!(
            checkpoints.windows(2).all(|w| w[0] <= w[1]) && checkpoints[0] > 0,
            "{checkpoints:?}"
        );
    }

    #[tokio::test]
    async fn a_shutdown_ends_the_feed_naming_the_cursor_to_resume_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for n in 0..3 {
            store.ingest(article(n, "alkhabar")).await.unwrap();
        }
        let mut feed = start(&store, 0, FeedFilter::default(), Duration::from_secs(60));
        assert_eq!(feed.events(3).await, [1, 2, 3]);
        feed.stop.send_replace(true);
        match feed.next().await {
            Err(FeedEnd::ShuttingDown { last_cursor }) => assert_eq!(last_cursor, 3),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_goes_away_ends_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let feed = start(&store, 0, FeedFilter::default(), Duration::from_secs(60));
        let stats = feed.stats.clone();
        assert_eq!(stats.live_subscriptions(), 1);
        drop(feed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while stats.live_subscriptions() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "task still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
