//! [`ArticleStore`] on an embedded sled database in a local directory.

use std::{fs::File, path::PathBuf, sync::Arc, thread::JoinHandle};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

use super::{
    ArticleStore, IngestReceipt, ListQuery, ListedPage, LogEvent, PendingWrite, Result, StoreError,
    codec, keys, list,
    writer::{self, Command},
};
use crate::domain::{Article, ArticleId, ValidArticle};

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
        let head = match db.range(keys::log_range()).next_back() {
            Some(entry) => {
                let (key, _) = entry?;
                keys::log_cursor(&key).ok_or_else(|| StoreError::Corrupt {
                    key: keys::printable(&key),
                    reason: "malformed log key".into(),
                })?
            }
            None => 0,
        };
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (head_tx, head_rx) = watch::channel(head);
        let threads = writer::spawn(db.clone(), data_file, head, commands_rx, head_tx)?;
        info!(path = %config.path.display(), head, "store opened");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                commands: Some(commands_tx),
                durable_head: head_rx,
                threads,
            }),
        })
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.inner.db.size_on_disk()?)
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
        self.enqueue(|reply| Command::Ingest { article, reply })
            .await
    }

    async fn retract(&self, id: ArticleId, reason: String) -> Result<Article> {
        self.enqueue(|reply| Command::Retract { id, reason, reply })
            .await?
            .await
    }

    async fn get(&self, id: ArticleId) -> Result<Article> {
        self.read(move |db| {
            let key = keys::article(id);
            let bytes = db.get(key)?.ok_or(StoreError::NotFound(id))?;
            codec::decode_article(&key, &bytes)
        })
        .await
    }

    async fn list(&self, query: ListQuery) -> Result<ListedPage> {
        self.read(move |db| list::list(db, &query)).await
    }

    async fn read_log(&self, after: u64, max: usize) -> Result<Vec<LogEvent>> {
        let head = *self.inner.durable_head.borrow();
        if after >= head || max == 0 {
            return Ok(Vec::new());
        }
        self.read(move |db| {
            db.range(keys::log(after + 1)..=keys::log(head))
                .take(max)
                .map(|entry| {
                    let (key, value) = entry?;
                    codec::decode_event(&key, &value)
                })
                .collect()
        })
        .await
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        self.inner.durable_head.clone()
    }
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
