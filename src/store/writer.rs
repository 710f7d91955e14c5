//! The write path: one writer thread applies commands in arrival order, one flusher thread makes
//! them durable in groups.
//!
//! The writer owns the cursor counter, so cursor allocation and the atomic sled batch that
//! writes the article, its index entries and its log event happen in one order with no gaps.
//! Each drained group of commands is handed to the flusher, which calls sled's blocking
//! `flush()` once for everything that arrived since its last flush, then `fdatasync`s the data
//! file (sled's flush uses `sync_file_range`, which does not flush the device cache), and only
//! then answers the callers and advances the durable head. While the flusher syncs one group,
//! the writer applies the next: one fsync serves many articles (group commit). A single flusher
//! also sidesteps sled's `flush_async` deadlock under concurrent callers.
//!
//! If a flush or a write fails, the store stops taking writes: after a failed fsync the kernel
//! may have dropped dirty pages, so carrying on could acknowledge data that is not on disk.

use std::{
    fs::File,
    sync::{Arc, OnceLock, mpsc as std_mpsc},
};

use sled::Batch;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error};
use ulid::Generator;

use super::{
    Consumer, EventKind, IngestOutcome, IngestReceipt, LogEvent, Result, StoreError, codec, keys,
    recent::RecentEvents, sled_store::load_article,
};
use crate::domain::{Article, ArticleId, ArticleStatus, Retraction, Timestamp, ValidArticle};

/// Most commands applied before their group is handed to the flusher; bounds ack latency when
/// the queue never drains.
const MAX_GROUP: usize = 1_024;

/// Where the answer to a command goes.
pub type Reply<T> = oneshot::Sender<Result<T>>;

/// A write request and where its answer goes.
pub enum Command {
    /// Store an article.
    Ingest {
        article: Box<ValidArticle>,
        reply: Reply<IngestReceipt>,
    },
    /// Retract an article.
    Retract {
        id: ArticleId,
        reason: String,
        reply: Reply<Article>,
    },
    /// Create a consumer unless it exists.
    EnsureConsumer {
        name: String,
        start_after: u64,
        reply: Reply<Consumer>,
    },
    /// Move a consumer's acknowledged cursor forward.
    Ack {
        name: String,
        cursor: u64,
        reply: Reply<Consumer>,
    },
    /// Delete a consumer.
    DeleteConsumer { name: String, reply: Reply<()> },
}

/// Answers one command: called with `None` once its group is durable, or with the reason the
/// flush failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// A result that may be delivered only once the group it belongs to is durable.
struct Completion(Answer);

impl Completion {
    fn new<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Self {
        Self(Box::new(move |failure| {
            let answer = match failure {
                None => result,
                Some(reason) => Err(StoreError::Unavailable(reason.to_owned())),
            };
            // A caller that went away no longer needs the answer; its write is durable regardless.
            let _ = reply.send(answer);
        }))
    }

    fn deliver(self) {
        (self.0)(None)
    }

    fn fail(self, reason: &str) {
        (self.0)(Some(reason))
    }
}

/// Applied commands waiting for a flush, and the log head once they are durable.
struct Group {
    completions: Vec<Completion>,
    head: u64,
}

/// Set once when the store stops taking writes; read by both threads.
type Failure = Arc<OnceLock<String>>;

/// Starts the writer and flusher threads. They stop when every command sender is dropped,
/// after answering and flushing everything already sent.
pub fn spawn(
    db: sled::Db,
    data_file: File,
    head: u64,
    commands: mpsc::Receiver<Command>,
    durable_head: watch::Sender<u64>,
    recent: Arc<RecentEvents>,
    last_recorded_at: Timestamp,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    // Two groups in the pipe: one being synced, one ready; more would only add latency.
    let (groups_tx, groups_rx) = std_mpsc::sync_channel(2);
    let failure = Failure::default();
    let writer = Writer {
        db: db.clone(),
        next_cursor: head + 1,
        ids: Generator::new(),
        failure: failure.clone(),
        recent,
        last_recorded_at,
    };
    let writer = std::thread::Builder::new()
        .name("khabar-writer".into())
        .spawn(move || writer.run(commands, groups_tx))?;
    let flusher = std::thread::Builder::new()
        .name("khabar-flusher".into())
        .spawn(move || flush_groups(&db, &data_file, &groups_rx, &durable_head, &failure))?;
    Ok(vec![writer, flusher])
}

struct Writer {
    db: sled::Db,
    next_cursor: u64,
    ids: Generator,
    failure: Failure,
    recent: Arc<RecentEvents>,
    /// Event times never go backwards, even if the wall clock does, so that the log can be
    /// searched by time.
    last_recorded_at: Timestamp,
}

impl Writer {
    fn run(mut self, mut commands: mpsc::Receiver<Command>, groups: std_mpsc::SyncSender<Group>) {
        while let Some(first) = commands.blocking_recv() {
            let mut completions = vec![self.apply(first)];
            while completions.len() < MAX_GROUP {
                match commands.try_recv() {
                    Ok(command) => completions.push(self.apply(command)),
                    Err(_) => break,
                }
            }
            let group = Group {
                completions,
                head: self.next_cursor - 1,
            };
            if let Err(std_mpsc::SendError(group)) = groups.send(group) {
                group
                    .completions
                    .into_iter()
                    .for_each(|c| c.fail("store is closing"));
                break;
            }
        }
        debug!("writer stopped");
    }

    fn apply(&mut self, command: Command) -> Completion {
        match command {
            Command::Ingest { article, reply } => {
                Completion::new(reply, self.guarded(|w| w.ingest(*article)))
            }
            Command::Retract { id, reason, reply } => {
                Completion::new(reply, self.guarded(|w| w.retract(id, reason)))
            }
            Command::EnsureConsumer {
                name,
                start_after,
                reply,
            } => Completion::new(
                reply,
                self.guarded(|w| w.ensure_consumer(name, start_after)),
            ),
            Command::Ack {
                name,
                cursor,
                reply,
            } => Completion::new(reply, self.guarded(|w| w.ack(name, cursor))),
            Command::DeleteConsumer { name, reply } => {
                Completion::new(reply, self.guarded(|w| w.delete_consumer(&name)))
            }
        }
    }

    /// Runs a write unless the store has failed, and fails the store on a storage error.
    fn guarded<T>(&mut self, write: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(reason) = self.failure.get() {
            return Err(StoreError::Unavailable(reason.clone()));
        }
        let result = write(self);
        if let Err(e @ (StoreError::Database(_) | StoreError::Io(_) | StoreError::Corrupt { .. })) =
            &result
        {
            error!(error = %e, "write failed; the store stops taking writes");
            let _ = self
                .failure
                .set(format!("a write failed ({e}); restart khabar"));
        }
        result
    }

    fn now(&mut self) -> Timestamp {
        self.last_recorded_at = self.last_recorded_at.max(Timestamp::now());
        self.last_recorded_at
    }

    fn ingest(&mut self, new: ValidArticle) -> Result<IngestReceipt> {
        let natural_key = keys::natural_key(&new.content.source.id, &new.content.uri);
        let now = self.now();
        let content_hash = new.content.content_hash();
        let Some(id_bytes) = self.db.get(&natural_key)? else {
            let id = self.new_id();
            let article = Article {
                id,
                content: new.content,
                view_count: new.view_count,
                version: 1,
                status: ArticleStatus::Usable,
                content_hash,
                ingested_at: now,
                first_ingested_at: now,
                cursor: self.next_cursor,
                retraction: None,
            };
            let mut batch = Batch::default();
            batch.insert(natural_key, &id.to_bytes());
            batch.insert(&keys::time_index(article.content.published_at, id), &[]);
            self.append(batch, EventKind::Created, &article, now)?;
            return Ok(receipt(&article, IngestOutcome::Created));
        };

        let id_bytes: [u8; ArticleId::LEN] =
            id_bytes
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    key: keys::printable(&natural_key),
                    reason: "id is not 16 bytes".into(),
                })?;
        let id = ArticleId::from_bytes(id_bytes);
        let mut article = self.load(id)?.ok_or_else(|| StoreError::Corrupt {
            key: keys::printable(&natural_key),
            reason: format!("points to missing article {id}"),
        })?;
        if article.status == ArticleStatus::Canceled {
            return Err(StoreError::Retracted(id));
        }
        if article.content_hash == content_hash {
            if article.view_count == new.view_count {
                return Ok(receipt(&article, IngestOutcome::Unchanged));
            }
            article.view_count = new.view_count;
            self.db
                .insert(keys::article(id), codec::encode_article_head(&article))?;
            return Ok(receipt(&article, IngestOutcome::CountersUpdated));
        }

        let mut batch = Batch::default();
        if article.content.published_at != new.content.published_at {
            batch.remove(&keys::time_index(article.content.published_at, id));
            batch.insert(&keys::time_index(new.content.published_at, id), &[]);
        }
        article.content = new.content;
        article.view_count = new.view_count;
        article.version += 1;
        article.content_hash = content_hash;
        article.ingested_at = now;
        article.cursor = self.next_cursor;
        self.append(batch, EventKind::Updated, &article, now)?;
        Ok(receipt(&article, IngestOutcome::Updated))
    }

    fn retract(&mut self, id: ArticleId, reason: String) -> Result<Article> {
        let mut article = self.load(id)?.ok_or(StoreError::NotFound(id))?;
        if article.status == ArticleStatus::Canceled {
            return Ok(article);
        }
        let now = self.now();
        article.status = ArticleStatus::Canceled;
        article.retraction = Some(Retraction {
            reason,
            retracted_at: now,
        });
        article.version += 1;
        article.ingested_at = now;
        article.cursor = self.next_cursor;
        self.append(Batch::default(), EventKind::Retracted, &article, now)?;
        Ok(article)
    }

    /// Adds the article and its log event to `batch` and applies it atomically.
    fn append(
        &mut self,
        mut batch: Batch,
        kind: EventKind,
        article: &Article,
        now: Timestamp,
    ) -> Result<()> {
        debug_assert_eq!(article.cursor, self.next_cursor);
        batch.insert(
            &keys::article(article.id),
            codec::encode_article_head(article),
        );
        let encoded = codec::encode_article(article);
        batch.insert(
            &keys::log(article.cursor),
            codec::encode_event(kind, now, encoded),
        );
        self.db.apply_batch(batch)?;
        self.next_cursor += 1;
        self.recent.push(LogEvent {
            cursor: article.cursor,
            kind,
            recorded_at: now,
            article: article.clone(),
        });
        Ok(())
    }

    fn load_consumer(&self, name: &str) -> Result<Option<Consumer>> {
        let key = keys::consumer(name);
        self.db
            .get(&key)?
            .map(|bytes| codec::decode_consumer(&key, &bytes))
            .transpose()
    }

    fn ensure_consumer(&mut self, name: String, start_after: u64) -> Result<Consumer> {
        if let Some(existing) = self.load_consumer(&name)? {
            return Ok(existing);
        }
        let head = self.next_cursor - 1;
        if start_after > head {
            return Err(StoreError::CursorBeyondHead {
                cursor: start_after,
                head,
            });
        }
        let consumer = Consumer {
            name,
            acked_cursor: start_after,
            created_at: Timestamp::now(),
            acked_at: None,
        };
        self.db.insert(
            keys::consumer(&consumer.name),
            codec::encode_consumer(&consumer),
        )?;
        Ok(consumer)
    }

    fn ack(&mut self, name: String, cursor: u64) -> Result<Consumer> {
        let mut consumer = self
            .load_consumer(&name)?
            .ok_or(StoreError::ConsumerNotFound(name))?;
        let head = self.next_cursor - 1;
        if cursor > head {
            return Err(StoreError::CursorBeyondHead { cursor, head });
        }
        if cursor <= consumer.acked_cursor {
            return Ok(consumer);
        }
        consumer.acked_cursor = cursor;
        consumer.acked_at = Some(Timestamp::now());
        self.db.insert(
            keys::consumer(&consumer.name),
            codec::encode_consumer(&consumer),
        )?;
        Ok(consumer)
    }

    fn delete_consumer(&mut self, name: &str) -> Result<()> {
        match self.db.remove(keys::consumer(name))? {
            Some(_) => Ok(()),
            None => Err(StoreError::ConsumerNotFound(name.to_owned())),
        }
    }

    fn load(&self, id: ArticleId) -> Result<Option<Article>> {
        load_article(&self.db, id)
    }

    fn new_id(&mut self) -> ArticleId {
        // The generator keeps ids strictly increasing within a millisecond; it only fails after
        // 2^80 ids in one millisecond, where a fresh random id is still unique in practice.
        ArticleId::from_ulid(self.ids.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }
}

fn receipt(article: &Article, outcome: IngestOutcome) -> IngestReceipt {
    IngestReceipt {
        id: article.id,
        version: article.version,
        outcome,
        content_hash: article.content_hash,
        cursor: article.cursor,
    }
}

fn flush_groups(
    db: &sled::Db,
    data_file: &File,
    groups: &std_mpsc::Receiver<Group>,
    durable_head: &watch::Sender<u64>,
    failure: &Failure,
) {
    while let Ok(first) = groups.recv() {
        let mut pending = vec![first];
        pending.extend(groups.try_iter());
        let flush_started = std::time::Instant::now();
        let flushed = db.flush().map_err(StoreError::from);
        let flush_time = flush_started.elapsed();
        let synced = flushed.and_then(|_| data_file.sync_data().map_err(StoreError::from));
        let sync_time = flush_started.elapsed() - flush_time;
        match synced {
            Ok(()) => {
                let head = pending.iter().map(|g| g.head).max().unwrap_or(0);
                let writes: usize = pending.iter().map(|g| g.completions.len()).sum();
                debug!(head, writes, ?flush_time, ?sync_time, "group flushed");
                // Head first, so that a cursor is visible to feeds by the time it is acked.
                durable_head.send_if_modified(|current| {
                    let advanced = head > *current;
                    *current = (*current).max(head);
                    advanced
                });
                pending
                    .into_iter()
                    .flat_map(|g| g.completions)
                    .for_each(Completion::deliver);
            }
            Err(e) => {
                error!(error = %e, "flush failed; the store stops taking writes");
                let reason = format!("flushing to disk failed ({e}); restart khabar");
                let _ = failure.set(reason.clone());
                pending
                    .into_iter()
                    .flat_map(|g| g.completions)
                    .for_each(|c| c.fail(&reason));
            }
        }
    }
    debug!("flusher stopped");
}
