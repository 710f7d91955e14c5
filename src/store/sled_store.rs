//! [`ArticleStore`] on an embedded sled database in a local directory.

use std::{fs::File, path::PathBuf, sync::Arc, thread::JoinHandle};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

use super::recent::RecentEvents;
use super::{
    ArticleStore, Consumer, IngestReceipt, ListQuery, ListedPage, LogEvent, PendingWrite, Result,
    StoreError, codec, keys, list,
    writer::{self, Command},
};
use crate::domain::{Article, ArticleId, Timestamp, ValidArticle};

/// Version of the key layout in [`keys`]; a directory written with another layout is refused.
const LAYOUT_VERSION: &[u8] = b"1";
/// Writes waiting for the writer thread at most; further callers wait for room (backpressure).
const COMMAND_QUEUE: usize = 1_024;

/// Where and how to open the store.
#[derive(Debug, Clone)]
pub struct SledStoreConfig {
    /// Data directory; created if missing.
    pub path: PathBuf,
    /// Bytes of sled's page cache.
    pub cache_capacity_bytes: u64,
}

/// Articles and the event log in sled. A cheap-to-clone handle; the writer threads stop and the
/// database closes when the last handle is dropped.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    recent: Arc<RecentEvents>,
    commands: Option<mpsc::Sender<Command>>,
    durable_head: watch::Receiver<u64>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it; the flusher syncs what it applied.
        self.commands = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store and starts its writer threads.
    pub fn open(config: &SledStoreConfig) -> Result<Self> {
        let db = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_capacity_bytes)
            .open()?;
        check_layout(&db)?;
        let data_file = File::open(config.path.join("db"))?;
        let last_event = match db.range(keys::log_range()).next_back() {
            Some(entry) => {
                let (key, value) = entry?;
                Some(codec::decode_event(&key, &value)?)
            }
            None => None,
        };
        let head = last_event.as_ref().map_or(0, |e| e.cursor);
        let last_recorded_at = last_event.map_or(Timestamp::MIN, |e| e.recorded_at);
        let recent = Arc::new(RecentEvents::default());
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (head_tx, head_rx) = watch::channel(head);
        let threads = writer::spawn(
            db.clone(),
            data_file,
            head,
            commands_rx,
            head_tx,
            recent.clone(),
            last_recorded_at,
        )?;
        info!(path = %config.path.display(), head, "store opened");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                recent,
                commands: Some(commands_tx),
                durable_head: head_rx,
                threads,
            }),
        })
    }

    async fn enqueue<T: Send + 'static>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<PendingWrite<T>> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store is shutting down".into());
        let commands = self.inner.commands.as_ref().ok_or_else(closed)?;
        commands.send(command(reply)).await.map_err(|_| closed())?;
        Ok(Box::pin(async move { answer.await.map_err(|_| closed())? }))
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&sled::Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || read(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

impl ArticleStore for SledStore {
    async fn enqueue_ingest(&self, article: ValidArticle) -> Result<PendingWrite<IngestReceipt>> {
        self.enqueue(|reply| Command::Ingest {
            article: Box::new(article),
            reply,
        })
        .await
    }

    async fn retract(&self, id: ArticleId, reason: String) -> Result<Article> {
        self.enqueue(|reply| Command::Retract { id, reason, reply })
            .await?
            .await
    }

    async fn get(&self, id: ArticleId) -> Result<Article> {
        self.read(move |db| load_article(db, id)?.ok_or(StoreError::NotFound(id)))
            .await
    }

    async fn list(&self, query: ListQuery) -> Result<ListedPage> {
        self.read(move |db| list::list(db, &query)).await
    }

    async fn read_log(&self, after: u64, max: usize) -> Result<Vec<Arc<LogEvent>>> {
        let head = *self.inner.durable_head.borrow();
        if after >= head || max == 0 {
            return Ok(Vec::new());
        }
        if let Some(events) = self.inner.recent.read(after, head, max) {
            return Ok(events);
        }
        self.read(move |db| {
            db.range(keys::log(after + 1)..=keys::log(head))
                .take(max)
                .map(|entry| {
                    let (key, value) = entry?;
                    codec::decode_event(&key, &value).map(Arc::new)
                })
                .collect()
        })
        .await
    }

    async fn first_cursor_at(&self, time: Timestamp) -> Result<u64> {
        let head = *self.inner.durable_head.borrow();
        // Event times never decrease along the log, so a binary search finds the first one.
        self.read(move |db| {
            let (mut low, mut high) = (1, head + 1);
            while low < high {
                let middle = low + (high - low) / 2;
                let key = keys::log(middle);
                let bytes = db.get(key)?.ok_or_else(|| StoreError::Corrupt {
                    key: keys::printable(&key),
                    reason: format!("log entry missing below head {head}"),
                })?;
                if codec::decode_event(&key, &bytes)?.recorded_at < time {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            Ok(low)
        })
        .await
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        self.inner.durable_head.clone()
    }

    async fn ensure_consumer(&self, name: String, start_after: u64) -> Result<Consumer> {
        self.enqueue(|reply| Command::EnsureConsumer {
            name,
            start_after,
            reply,
        })
        .await?
        .await
    }

    async fn ack(&self, name: String, cursor: u64) -> Result<Consumer> {
        self.enqueue(|reply| Command::Ack {
            name,
            cursor,
            reply,
        })
        .await?
        .await
    }

    async fn consumer(&self, name: String) -> Result<Consumer> {
        self.read(move |db| {
            let key = keys::consumer(&name);
            let bytes = db.get(&key)?.ok_or(StoreError::ConsumerNotFound(name))?;
            codec::decode_consumer(&key, &bytes)
        })
        .await
    }

    async fn consumers(&self) -> Result<Vec<Consumer>> {
        self.read(|db| {
            db.range(keys::consumer_range())
                .map(|entry| {
                    let (key, value) = entry?;
                    codec::decode_consumer(&key, &value)
                })
                .collect()
        })
        .await
    }

    async fn delete_consumer(&self, name: String) -> Result<()> {
        self.enqueue(|reply| Command::DeleteConsumer { name, reply })
            .await?
            .await
    }

    async fn size_on_disk(&self) -> Result<u64> {
        self.read(|db| Ok(db.size_on_disk()?)).await
    }
}

/// Reads an article: its head from the article table, its content from the log event that
/// produced its current version.
pub(super) fn load_article(db: &sled::Tree, id: ArticleId) -> Result<Option<Article>> {
    let key = keys::article(id);
    let Some(bytes) = db.get(key)? else {
        return Ok(None);
    };
    codec::decode_article_with(&key, &bytes, |cursor| {
        let log_key = keys::log(cursor);
        let event = db.get(log_key)?.ok_or_else(|| StoreError::Corrupt {
            key: keys::printable(&key),
            reason: format!("its content event {cursor} is missing"),
        })?;
        Ok(codec::decode_event(&log_key, &event)?.article.content)
    })
    .map(Some)
}

fn check_layout(db: &sled::Db) -> Result<()> {
    match db.get(keys::layout_version())? {
        Some(version) if version == LAYOUT_VERSION => Ok(()),
        Some(version) => Err(StoreError::Corrupt {
            key: keys::printable(&keys::layout_version()),
            reason: format!(
                "data directory has layout version {}, this khabar reads version {}",
                keys::printable(&version),
                keys::printable(LAYOUT_VERSION)
            ),
        }),
        None if db.is_empty() => {
            db.insert(keys::layout_version(), LAYOUT_VERSION)?;
            db.flush()?;
            Ok(())
        }
        None => Err(StoreError::Corrupt {
            key: keys::printable(&keys::layout_version()),
            reason: "data directory holds data that khabar did not write".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{
            ArticleDraft, ArticleFilter, ArticleStatus, SourceDraft, Timestamp, TimestampDraft,
        },
        store::{EventKind, IngestOutcome},
    };

    fn open(dir: &std::path::Path) -> SledStore {
        SledStore::open(&SledStoreConfig {
            path: dir.to_owned(),
            cache_capacity_bytes: 16 << 20,
        })
        .expect("open store")
    }

    fn article(n: u32, source: &str, tags: &[&str], view_count: u64) -> ValidArticle {
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
            tags: tags.iter().map(|t| t.to_string()).collect(),
            view_count,
            ..ArticleDraft::default()
        }
        .validate(Timestamp::now())
        .expect("valid")
    }

    #[tokio::test]
    async fn ingest_outcomes_follow_the_natural_key_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());

        let created = store.ingest(article(1, "alkhabar", &[], 10)).await.unwrap();
        assert_eq!(
            (created.outcome, created.version, created.cursor),
            (IngestOutcome::Created, 1, 1)
        );

        let same = store.ingest(article(1, "alkhabar", &[], 10)).await.unwrap();
        assert_eq!(
            (same.outcome, same.id, same.version, same.cursor),
            (IngestOutcome::Unchanged, created.id, 1, 1)
        );

        let counted = store.ingest(article(1, "alkhabar", &[], 11)).await.unwrap();
        assert_eq!(
            (counted.outcome, counted.version, counted.cursor),
            (IngestOutcome::CountersUpdated, 1, 1)
        );
        assert_eq!(counted.content_hash, created.content_hash);
        assert_eq!(store.get(created.id).await.unwrap().view_count, 11);

        let mut changed = article(1, "alkhabar", &[], 11);
        changed.content.body.push_str(" (محدث)");
        let updated = store.ingest(changed).await.unwrap();
        assert_eq!(
            (updated.outcome, updated.id, updated.version, updated.cursor),
            (IngestOutcome::Updated, created.id, 2, 2)
        );
        assert_ne!(updated.content_hash, created.content_hash);

        let other_source = store.ingest(article(1, "wire-a", &[], 0)).await.unwrap();
        assert_eq!(other_source.outcome, IngestOutcome::Created);
        assert_ne!(other_source.id, created.id);

        let events = store.read_log(0, 100).await.unwrap();
        let kinds: Vec<(u64, EventKind, u64)> = events
            .iter()
            .map(|e| (e.cursor, e.kind, e.article.version))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, EventKind::Created, 1),
                (2, EventKind::Updated, 2),
                (3, EventKind::Created, 1)
            ]
        );
        assert!(events[1].article.content.body.ends_with("(محدث)"));
    }

    #[tokio::test]
    async fn retraction_is_logged_once_and_blocks_reingest() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let created = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();

        let retracted = store.retract(created.id, "خطأ".into()).await.unwrap();
        assert_eq!(
            (retracted.status, retracted.version, retracted.cursor),
            (ArticleStatus::Canceled, 2, 2)
        );
        let again = store.retract(created.id, "مرة أخرى".into()).await.unwrap();
        assert_eq!(again, retracted);
        assert_eq!(*store.durable_head().borrow(), 2);

        let err = store
            .ingest(article(1, "alkhabar", &[], 0))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Retracted(id) if id == created.id),
            "{err}"
        );

        let missing = ArticleId::from_bytes([1; 16]);
        assert!(
            matches!(store.retract(missing, "x".into()).await, Err(StoreError::NotFound(id)) if id == missing)
        );
        assert!(matches!(
            store.get(missing).await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn concurrent_ingests_get_gap_free_cursors_that_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let writers: Vec<_> = (0..64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.ingest(article(n, "alkhabar", &[], 0)).await })
            })
            .collect();
        let mut cursors = Vec::new();
        for writer in writers {
            cursors.push(writer.await.unwrap().unwrap().cursor);
        }
        cursors.sort_unstable();
        assert_eq!(cursors, (1..=64).collect::<Vec<u64>>());
        drop(store);

        let reopened = open(dir.path());
        assert_eq!(*reopened.durable_head().borrow(), 64);
        let log = reopened.read_log(60, 100).await.unwrap();
        assert_eq!(
            log.iter().map(|e| e.cursor).collect::<Vec<_>>(),
            [61, 62, 63, 64]
        );
        let next = reopened
            .ingest(article(1000, "alkhabar", &[], 0))
            .await
            .unwrap();
        assert_eq!(next.cursor, 65);
    }

    #[tokio::test]
    async fn lists_newest_first_with_filters_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for n in 0..10 {
            let source = if n % 2 == 0 { "alkhabar" } else { "wire-a" };
            let tags: &[&str] = if n % 3 == 0 { &["سوريا"] } else { &[] };
            store.ingest(article(n, source, tags, 0)).await.unwrap();
        }
        let query = ListQuery {
            page_size: 3,
            max_page_bytes: 1 << 20,
            ..ListQuery::default()
        };
        let mut headlines = Vec::new();
        let mut token = None;
        loop {
            let page = store
                .list(ListQuery {
                    page_token: token,
                    ..query.clone()
                })
                .await
                .unwrap();
            assert!(page.articles.len() <= 3);
            headlines.extend(page.articles.iter().map(|a| a.content.headline.clone()));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        let expected: Vec<String> = (0..10).rev().map(|n| format!("عنوان {n}")).collect();
        assert_eq!(headlines, expected);

        let filtered = store
            .list(ListQuery {
                filter: ArticleFilter {
                    source_ids: vec!["alkhabar".into()],
                    tags: vec!["سوريا".into()],
                    ..ArticleFilter::default()
                },
                ..query.clone()
            })
            .await
            .unwrap();
        let names: Vec<&str> = filtered
            .articles
            .iter()
            .map(|a| a.content.headline.as_str())
            .collect();
        assert_eq!(names, ["عنوان 6", "عنوان 0"]);

        let window = store
            .list(ListQuery {
                published_after: Timestamp::new(1_467_331_202, 0),
                published_before: Timestamp::new(1_467_331_205, 0),
                ..query.clone()
            })
            .await
            .unwrap();
        let names: Vec<&str> = window
            .articles
            .iter()
            .map(|a| a.content.headline.as_str())
            .collect();
        assert_eq!(names, ["عنوان 4", "عنوان 3", "عنوان 2"]);

        let first = store.list(query.clone()).await.unwrap();
        let foreign = ListQuery {
            filter: ArticleFilter {
                languages: vec!["en".into()],
                ..ArticleFilter::default()
            },
            page_token: first.next_page_token,
            ..query.clone()
        };
        assert!(matches!(
            store.list(foreign).await,
            Err(StoreError::InvalidPageToken(_))
        ));
    }

    #[tokio::test]
    async fn retracted_articles_are_listed_only_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let kept = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
        let gone = store.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
        store.retract(gone.id, "خطأ".into()).await.unwrap();
        let query = ListQuery {
            page_size: 10,
            max_page_bytes: 1 << 20,
            ..ListQuery::default()
        };
        let ids = |page: ListedPage| page.articles.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(ids(store.list(query.clone()).await.unwrap()), [kept.id]);
        let all = ListQuery {
            include_retracted: true,
            ..query
        };
        assert_eq!(ids(store.list(all).await.unwrap()), [gone.id, kept.id]);
    }

    #[tokio::test]
    async fn moving_publication_time_moves_the_listing_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
        store.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
        let mut moved = article(1, "alkhabar", &[], 0);
        moved.content.published_at = Timestamp::new(1_467_331_300, 0).unwrap();
        store.ingest(moved).await.unwrap();
        let page = store
            .list(ListQuery {
                page_size: 10,
                max_page_bytes: 1 << 20,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let names: Vec<&str> = page
            .articles
            .iter()
            .map(|a| a.content.headline.as_str())
            .collect();
        assert_eq!(names, ["عنوان 1", "عنوان 2"]);
    }

    #[tokio::test]
    async fn refuses_a_directory_with_another_layout() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(keys::layout_version(), &b"99"[..]).unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(&SledStoreConfig {
            path: dir.path().to_owned(),
            cache_capacity_bytes: 1 << 20,
        })
        .err()
        .expect("must refuse");
        assert!(err.to_string().contains("layout version 99"), "{err}");
    }
}
