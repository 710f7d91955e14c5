//! The write path: one writer thread decides and logs, one syncer thread makes groups durable
//! and applies them to the index, one checkpointer thread bounds the replay at start-up.
//!
//! # Order of a write
//! 1. The writer takes every command waiting (a group), decides each one against the index and
//!    against the writes of groups that are not applied yet (kept in memory, so a group sees its
//!    own earlier writes), encodes the records and appends them to the log with one `pwrite`.
//!    It owns the cursor counter, so cursors are allocated in log order with no gaps.
//! 2. The syncer `fdatasync`s the log once for every group that arrived since its last sync,
//!    then applies their records to the sled index (plain inserts: the log record, not a sled
//!    batch, is the atomic unit), advances the durable head, and only then answers the callers.
//!    While it syncs one group the writer logs the next: one fsync serves many writes.
//! 3. Every few seconds the checkpointer flushes sled and `fdatasync`s its file. The index
//!    records the log position it has applied up to with every group, so whatever sled
//!    recovers after a crash tells where to replay the log from.
//!
//! The index is written only after the log records it reflects are durable, so sled, which
//! writes pages out on its own schedule, never holds an entry whose record a crash could take
//! back. Reads go to the index and therefore only ever see durable writes.
//!
//! If a log write, a sync or an index write fails, the store stops taking writes: after a
//! failed fsync the kernel may have dropped dirty pages, so carrying on could acknowledge data
//! that is not on disk.

use std::{
    collections::HashMap,
    fs::File,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc as std_mpsc,
    },
    time::Duration,
};

use bytes::Bytes;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tracing::{debug, error};
use ulid::Generator;

use super::{
    Consumer, DiskFaults, DiskOperation, Durable, EventHeader, EventKind, IngestOutcome,
    IngestReceipt, LogEvent, Result, StoreError,
    codec::{self, Applied, ArticleHead, EventRecord, Record},
    index,
    log::{Location, Log, LogWriter},
    recent::RecentEvents,
};
use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, StoryLink, Timestamp, ValidArticle,
        canonical_uri,
    },
    pb::khabar::v1 as pb,
    stories::{Fingerprint, StoryIndex},
    wire,
};

/// Most commands in one group; bounds ack latency when the queue never drains.
const MAX_GROUP: usize = 1_024;
/// Most log bytes in one group.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Where the answer to a command goes.
pub type Reply<T> = oneshot::Sender<Result<T>>;

/// What the write path needs of an article besides the article itself: worked out in the
/// caller's task, in parallel with other calls, so that the one writer only decides.
pub struct Prepared {
    /// The natural key's address.
    pub canonical_uri: String,
    /// The story fingerprint of the article; `None` with stories off.
    pub fingerprint: Option<Fingerprint>,
}

impl Prepared {
    /// Prepares `article`, fingerprinting it when `stories` are on.
    pub fn of(article: &ValidArticle, stories: bool) -> Self {
        let content = article.content();
        Self {
            canonical_uri: canonical_uri(&content.uri),
            fingerprint: stories.then(|| Fingerprint::of_article(&content.headline, &content.body)),
        }
    }
}

/// Takes `article`'s share (in KiB) of a write queue's byte budget of `capacity_kib`, waiting
/// for room; given back when the permit is dropped. An article larger than the whole budget
/// still goes through, alone.
pub async fn reserve_queue_share(
    budget: &Arc<tokio::sync::Semaphore>,
    capacity_kib: usize,
    article: &ValidArticle,
) -> Result<OwnedSemaphorePermit> {
    let kib = article.approximate_size().div_ceil(1024).min(capacity_kib) as u32;
    budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))
}

/// A write request and where its answer goes.
pub enum Command {
    /// Store an article.
    Ingest {
        article: Box<ValidArticle>,
        /// Its canonical address and fingerprint.
        prepared: Box<Prepared>,
        reply: Reply<IngestReceipt>,
        /// The article's share of the queue's byte budget, given back once it is logged.
        queued: OwnedSemaphorePermit,
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

/// Delivers one command's result once its group is durable (with the number of writes made
/// durable together), or why it is not.
type Answer = Box<dyn FnOnce(std::result::Result<usize, &Stopped>) + Send>;

/// A result that may be delivered only once the group it belongs to is durable.
struct Completion(Answer);

impl Completion {
    fn new<T: Durable + Send + 'static>(reply: Reply<T>, result: Result<T>) -> Self {
        Self(Box::new(move |durable| {
            let answer = match durable {
                Ok(group_size) => result.map(|mut answer| {
                    answer.made_durable_with(group_size);
                    answer
                }),
                Err(stopped) => Err(stopped.error()),
            };
            // A caller that went away no longer needs the answer; its write is durable regardless.
            let _ = reply.send(answer);
        }))
    }

    /// Answers once durable, together with `group_size` writes in all.
    fn deliver(self, group_size: usize) {
        (self.0)(Ok(group_size))
    }

    fn fail(self, stopped: &Stopped) {
        (self.0)(Err(stopped))
    }
}

/// Why the store stopped taking writes.
#[derive(Debug, Clone)]
pub struct Stopped {
    reason: String,
    disk_full: bool,
}

impl Stopped {
    /// After `what` failed with `error`.
    fn after(what: &str, error: &StoreError) -> Self {
        let disk_full = error.is_disk_full();
        let reason = if disk_full {
            format!(
                "the disk holding the data directory is full ({what} failed: {error}); free \
                 space, then restart khabar"
            )
        } else {
            format!("{what} failed ({error}); restart khabar")
        };
        Self { reason, disk_full }
    }

    /// While the store closes.
    fn closing() -> Self {
        Self {
            reason: "the store is closing".into(),
            disk_full: false,
        }
    }

    /// The error a write answers with.
    fn error(&self) -> StoreError {
        if self.disk_full {
            StoreError::DiskFull(self.reason.clone())
        } else {
            StoreError::Unavailable(self.reason.clone())
        }
    }
}

/// One group of logged records on its way to durability.
struct Group {
    /// Sequence number, from 1.
    seq: u64,
    /// The group's records in log order, each with its location.
    records: Vec<Record>,
    /// Log files to sync before anything in the group is durable.
    files: Vec<Arc<File>>,
    /// The group's last log record (or an earlier one, when the group logged nothing).
    last: Option<Location>,
    /// The log's last cursor once the group is durable.
    head: u64,
    /// The cursor and time of the group's last event, if it has events.
    last_event: Option<(u64, Timestamp)>,
    completions: Vec<Completion>,
}

/// Set once when the store stops taking writes; read by every thread, watched by the server
/// (whose health turns NOT_SERVING, so that an orchestrator restarts it).
#[derive(Debug, Clone)]
pub struct Failure(Arc<FailureState>);

#[derive(Debug)]
struct FailureState {
    stopped: OnceLock<Stopped>,
    watch: watch::Sender<bool>,
}

impl Default for Failure {
    fn default() -> Self {
        Self(Arc::new(FailureState {
            stopped: OnceLock::new(),
            watch: watch::Sender::new(false),
        }))
    }
}

impl Failure {
    /// Why the store stopped, if it did.
    pub fn get(&self) -> Option<&Stopped> {
        self.0.stopped.get()
    }

    /// Records why the store stopped; the first reason stays.
    pub fn set(&self, stopped: Stopped) {
        if self.0.stopped.set(stopped).is_ok() {
            self.0.watch.send_replace(true);
        }
    }

    /// Turns true once the store has stopped taking writes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.watch.subscribe()
    }
}

/// What the threads of the write path share with the store.
pub struct WritePath {
    /// The writer, syncer and checkpointer threads.
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// Stops the checkpointer (after a final checkpoint) when dropped.
    pub stop_checkpoints: std_mpsc::Sender<()>,
}

/// Everything the write path starts from.
pub struct WriterStart {
    /// The index.
    pub db: sled::Db,
    /// sled's data file, synced at checkpoints.
    pub index_file: File,
    /// The log, for reading back an article's content.
    pub log: Arc<Log>,
    /// Appends to the log.
    pub log_writer: LogWriter,
    /// Highest cursor in the log.
    pub head: u64,
    /// Time of the last event.
    pub last_recorded_at: Timestamp,
    /// Recent events, for feeds.
    pub recent: Arc<RecentEvents>,
    /// Where a failure is recorded.
    pub failure: Failure,
    /// How often the index is made durable.
    pub checkpoint_interval: Duration,
    /// Disk failures to inject (tests).
    pub faults: Arc<DiskFaults>,
    /// The story index, rebuilt from the durable articles; `None` with stories off.
    pub stories: Option<StoryIndex>,
}

/// Starts the writer, syncer and checkpointer threads. They stop when every command sender is
/// dropped, after answering and syncing everything already sent.
pub fn spawn(
    start: WriterStart,
    commands: mpsc::Receiver<Command>,
    durable_head: watch::Sender<u64>,
) -> std::io::Result<WritePath> {
    let WriterStart {
        db,
        index_file,
        log,
        log_writer,
        head,
        last_recorded_at,
        recent,
        failure,
        checkpoint_interval,
        faults,
        stories,
    } = start;
    // Two groups in the pipe: one being synced, one ready; more would only add latency.
    let (groups_tx, groups_rx) = std_mpsc::sync_channel(2);
    let applied_seq = Arc::new(AtomicU64::new(0));
    let writer = Writer {
        tree: (*db).clone(),
        log,
        log_writer,
        next_cursor: head + 1,
        ids: Generator::new(),
        failure: failure.clone(),
        recent,
        last_recorded_at,
        seq: 1,
        records: Vec::new(),
        last_event: None,
        unapplied: Unapplied::default(),
        applied_seq: applied_seq.clone(),
        stories,
    };
    let writer = std::thread::Builder::new()
        .name("khabar-writer".into())
        .spawn(move || writer.run(commands, groups_tx))?;
    let syncer = {
        let (tree, failure, applied_seq) = ((*db).clone(), failure.clone(), applied_seq.clone());
        let faults = faults.clone();
        let mut head = (head, last_recorded_at);
        std::thread::Builder::new()
            .name("khabar-syncer".into())
            .spawn(move || {
                sync_groups(
                    &tree,
                    &faults,
                    &groups_rx,
                    &durable_head,
                    &failure,
                    &applied_seq,
                    &mut head,
                );
            })?
    };
    let (stop_checkpoints, stopping) = std_mpsc::channel();
    let checkpointer = std::thread::Builder::new()
        .name("khabar-checkpoint".into())
        .spawn(move || {
            checkpoints(
                &db,
                &index_file,
                checkpoint_interval,
                &stopping,
                &applied_seq,
                &failure,
            );
        })?;
    Ok(WritePath {
        threads: vec![writer, syncer, checkpointer],
        stop_checkpoints,
    })
}

/// Writes of groups the syncer has not applied to the index yet, so that decisions see them.
/// Each entry remembers the group that wrote it last; entries of applied groups are dropped.
#[derive(Default)]
struct Unapplied {
    natural_keys: HashMap<(String, String), (ArticleId, u64)>,
    /// Heads, with the article bytes of their current event when it is not applied yet.
    heads: HashMap<ArticleId, (ArticleHead, Option<Bytes>, u64)>,
    consumers: HashMap<String, (Option<Consumer>, u64)>,
}

impl Unapplied {
    fn prune(&mut self, applied_seq: u64) {
        self.natural_keys.retain(|_, (_, seq)| *seq > applied_seq);
        self.heads.retain(|_, (_, _, seq)| *seq > applied_seq);
        self.consumers.retain(|_, (_, seq)| *seq > applied_seq);
    }
}

struct Writer {
    tree: sled::Tree,
    log: Arc<Log>,
    log_writer: LogWriter,
    next_cursor: u64,
    ids: Generator,
    failure: Failure,
    recent: Arc<RecentEvents>,
    /// Event times never go backwards, even if the wall clock does, so that the log can be
    /// searched by time.
    last_recorded_at: Timestamp,
    /// Sequence number of the group being built.
    seq: u64,
    /// Records of the group being built.
    records: Vec<Record>,
    /// The last event of the group being built.
    last_event: Option<(u64, Timestamp)>,
    unapplied: Unapplied,
    applied_seq: Arc<AtomicU64>,
    /// Owned by the writer, which decides every write in cursor order: assignments are made in
    /// that order, so they are deterministic and a rebuild reproduces the index.
    stories: Option<StoryIndex>,
}

impl Writer {
    fn run(mut self, mut commands: mpsc::Receiver<Command>, groups: std_mpsc::SyncSender<Group>) {
        while let Some(first) = commands.blocking_recv() {
            self.unapplied
                .prune(self.applied_seq.load(Ordering::Acquire));
            let mut completions = vec![self.apply(first)];
            while completions.len() < MAX_GROUP && self.log_writer.pending_bytes() < MAX_GROUP_BYTES
            {
                match commands.try_recv() {
                    Ok(command) => completions.push(self.apply(command)),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.log_writer.write_out() {
                let _ = self.fail_store(&e);
            }
            let records = std::mem::take(&mut self.records);
            if let Some(stopped) = self.failure.get() {
                completions.into_iter().for_each(|c| c.fail(stopped));
                continue;
            }
            let group = Group {
                seq: self.seq,
                records,
                files: self.log_writer.files_to_sync(),
                last: self.log_writer.last(),
                last_event: self.last_event.take(),
                head: self.next_cursor - 1,
                completions,
            };
            self.seq += 1;
            if let Err(std_mpsc::SendError(group)) = groups.send(group) {
                group
                    .completions
                    .into_iter()
                    .for_each(|c| c.fail(&Stopped::closing()));
                break;
            }
        }
        debug!("writer stopped");
    }

    fn apply(&mut self, command: Command) -> Completion {
        match command {
            Command::Ingest {
                article,
                prepared,
                reply,
                queued,
            } => {
                let result = self.guarded(|w| w.ingest(*article, *prepared));
                drop(queued);
                Completion::new(reply, result)
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
                Completion::new(reply, self.guarded(|w| w.delete_consumer(name)))
            }
        }
    }

    /// Runs a write unless the store has failed, and fails the store on a storage error.
    fn guarded<T>(&mut self, write: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(stopped) = self.failure.get() {
            return Err(stopped.error());
        }
        let result = write(self);
        match result {
            Err(e @ (StoreError::Database(_) | StoreError::Io(_) | StoreError::Corrupt { .. })) => {
                let stopped = self.fail_store(&e);
                Err(stopped.error())
            }
            other => other,
        }
    }

    /// Stops the store after a write failed; answers with why.
    fn fail_store(&self, e: &StoreError) -> Stopped {
        error!(error = %e, "writing to the log failed; the store stops taking writes");
        let stopped = Stopped::after("writing to the log", e);
        self.failure.set(stopped.clone());
        self.failure.get().cloned().unwrap_or(stopped)
    }

    fn now(&mut self) -> Timestamp {
        self.last_recorded_at = self.last_recorded_at.max(Timestamp::now());
        self.last_recorded_at
    }

    fn lookup_id(&self, source_id: &str, canonical_uri: &str) -> Result<Option<ArticleId>> {
        let key = (source_id.to_owned(), canonical_uri.to_owned());
        match self.unapplied.natural_keys.get(&key) {
            Some((id, _)) => Ok(Some(*id)),
            None => index::natural_key(&self.tree, source_id, canonical_uri),
        }
    }

    fn lookup_head(&self, id: ArticleId) -> Result<Option<(ArticleHead, Option<Bytes>)>> {
        match self.unapplied.heads.get(&id) {
            Some((head, article, _)) => Ok(Some((head.clone(), article.clone()))),
            None => Ok(index::head(&self.tree, id)?.map(|head| (head, None))),
        }
    }

    fn lookup_consumer(&self, name: &str) -> Result<Option<Consumer>> {
        match self.unapplied.consumers.get(name) {
            Some((consumer, _)) => Ok(consumer.clone()),
            None => index::consumer(&self.tree, name),
        }
    }

    /// Fingerprints a version and asks the story index where it belongs (`update` for a new
    /// version of a held article); nothing when stories are off.
    fn place(
        &mut self,
        id: ArticleId,
        content: &ArticleContent,
        fingerprint: Option<&Fingerprint>,
        updated: bool,
    ) -> (Option<StoryLink>, Bytes) {
        let Some(stories) = self.stories.as_mut() else {
            return (None, Bytes::new());
        };
        let (link, fingerprint) = stories.place(id, content, fingerprint, updated);
        (Some(link), Bytes::from(fingerprint))
    }

    fn ingest(&mut self, new: ValidArticle, prepared: Prepared) -> Result<IngestReceipt> {
        let now = self.now();
        let content_hash = new.content_hash();
        let view_count = new.view_count();
        let source_id = new.content().source.id.clone();
        let Prepared {
            canonical_uri: canonical,
            fingerprint,
        } = prepared;
        let Some(id) = self.lookup_id(&source_id, &canonical)? else {
            let id = self.new_id();
            let (story, fingerprint) = self.place(id, new.content(), fingerprint.as_ref(), false);
            let article = Article {
                id,
                content: new.into_content(),
                view_count,
                version: 1,
                status: ArticleStatus::Usable,
                content_hash,
                ingested_at: now,
                first_ingested_at: now,
                cursor: self.next_cursor,
                retraction: None,
                canonical_uri: canonical.clone(),
                story,
            };
            let receipt = receipt(&article, IngestOutcome::Created);
            self.log_event(EventKind::Created, article, now, None, fingerprint, None)?;
            self.unapplied
                .natural_keys
                .insert((source_id, canonical), (id, self.seq));
            return Ok(receipt);
        };

        let (mut head, current_article) =
            self.lookup_head(id)?.ok_or_else(|| StoreError::Corrupt {
                key: format!("natural key ({source_id}, {canonical})"),
                reason: format!("points to missing article {id}"),
            })?;
        if head.status == ArticleStatus::Canceled {
            return Err(StoreError::Retracted(id));
        }
        if head.content_hash == content_hash {
            let outcome = if head.view_count == view_count {
                IngestOutcome::Unchanged
            } else {
                head.view_count = view_count;
                self.log_writer
                    .append(&codec::log_record(&Record::Counters(head.clone())))?;
                self.records.push(Record::Counters(head.clone()));
                self.unapplied
                    .heads
                    .insert(id, (head.clone(), current_article, self.seq));
                IngestOutcome::CountersUpdated
            };
            return Ok(IngestReceipt {
                id,
                version: head.version,
                outcome,
                content_hash: head.content_hash,
                cursor: head.cursor,
                group_size: 0,
            });
        }

        let previous_published_at = head.published_at;
        let previous_story = head.story_id();
        let (story, fingerprint) = self.place(id, new.content(), fingerprint.as_ref(), true);
        let article = Article {
            id,
            content: new.into_content(),
            view_count,
            version: head.version + 1,
            status: head.status,
            content_hash,
            ingested_at: now,
            first_ingested_at: head.first_ingested_at,
            cursor: self.next_cursor,
            retraction: None,
            // The key stays the one the article was first stored under (an old article's may
            // differ from its uri's canonical form only if two shared it).
            canonical_uri: head.canonical_uri.clone(),
            story,
        };
        let receipt = receipt(&article, IngestOutcome::Updated);
        self.log_event(
            EventKind::Updated,
            article,
            now,
            Some(previous_published_at),
            fingerprint,
            Some(previous_story),
        )?;
        Ok(receipt)
    }

    fn retract(&mut self, id: ArticleId, reason: String) -> Result<Article> {
        let (head, current_article) = self.lookup_head(id)?.ok_or(StoreError::NotFound(id))?;
        let mut article = match current_article {
            Some(bytes) => decode_article(head.cursor, bytes)?,
            None => read_article(&self.log, &head)?,
        };
        if article.status == ArticleStatus::Canceled {
            return Ok(article);
        }
        let now = self.now();
        article.retract(reason, now, self.next_cursor);
        if article.canonical_uri.is_empty() {
            article.canonical_uri = head.canonical_uri.clone();
        }
        if let Some(stories) = self.stories.as_mut() {
            stories.remove(id);
        }
        self.log_event(
            EventKind::Retracted,
            article.clone(),
            now,
            None,
            Bytes::new(),
            None,
        )?;
        Ok(article)
    }

    /// Logs the event that produced `article`'s current version.
    fn log_event(
        &mut self,
        kind: EventKind,
        article: Article,
        recorded_at: Timestamp,
        previous_published_at: Option<Timestamp>,
        fingerprint: Bytes,
        previous_story_id: Option<ArticleId>,
    ) -> Result<()> {
        debug_assert_eq!(article.cursor, self.next_cursor);
        let cursor = self.next_cursor;
        // Its location is known once the record is appended.
        let mut head = ArticleHead::of(&article, cursor);
        let bytes = Bytes::from(wire::article_pb(article).encode_to_vec());
        let event = Arc::new(LogEvent {
            cursor,
            kind,
            recorded_at,
            header: EventHeader {
                id: head.id,
                version: head.version,
                source_id: head.source_id.clone(),
                language: head.language.clone(),
                tags: head.tags.clone(),
                starts_story: head.starts_story(),
            },
            article: bytes.clone(),
        });
        let mut record = EventRecord {
            event: event.clone(),
            head,
            previous_published_at,
            fingerprint,
            previous_story_id,
        };
        let location = self
            .log_writer
            .append(&codec::log_record(&Record::Event(record.clone())))?;
        record.head.location = location;
        head = record.head.clone();
        self.records.push(Record::Event(record));
        self.unapplied
            .heads
            .insert(head.id, (head, Some(bytes), self.seq));
        self.next_cursor += 1;
        self.last_event = Some((cursor, recorded_at));
        self.recent.push(event);
        Ok(())
    }

    fn log_consumer(
        &mut self,
        record: Record,
        name: String,
        after: Option<Consumer>,
    ) -> Result<()> {
        self.log_writer.append(&codec::log_record(&record))?;
        self.records.push(record);
        self.unapplied.consumers.insert(name, (after, self.seq));
        Ok(())
    }

    fn ensure_consumer(&mut self, name: String, start_after: u64) -> Result<Consumer> {
        if let Some(existing) = self.lookup_consumer(&name)? {
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
            name: name.clone(),
            acked_cursor: start_after,
            created_at: Timestamp::now(),
            acked_at: None,
        };
        self.log_consumer(
            Record::ConsumerPut(consumer.clone()),
            name,
            Some(consumer.clone()),
        )?;
        Ok(consumer)
    }

    fn ack(&mut self, name: String, cursor: u64) -> Result<Consumer> {
        let mut consumer = self
            .lookup_consumer(&name)?
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
        self.log_consumer(
            Record::ConsumerPut(consumer.clone()),
            consumer.name.clone(),
            Some(consumer.clone()),
        )?;
        Ok(consumer)
    }

    fn delete_consumer(&mut self, name: String) -> Result<()> {
        if self.lookup_consumer(&name)?.is_none() {
            return Err(StoreError::ConsumerNotFound(name));
        }
        self.log_consumer(Record::ConsumerDeleted(name.clone()), name, None)
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
        group_size: 0,
    }
}

fn decode_article(cursor: u64, bytes: Bytes) -> Result<Article> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("log cursor {cursor}"),
        reason,
    };
    let article = pb::Article::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    wire::article_from_pb(article).map_err(corrupt)
}

/// Reads an article: its content from the log event that produced its current version, its
/// view count (which may be newer) from its head.
pub fn read_article(log: &Log, head: &ArticleHead) -> Result<Article> {
    let payload = log.read(head.location)?;
    let Record::Event(record) = codec::decode_record(payload, head.location)? else {
        return Err(StoreError::Corrupt {
            key: format!("article {}", head.id),
            reason: "its content location holds no event".into(),
        });
    };
    if record.event.cursor != head.cursor || record.head.id != head.id {
        return Err(StoreError::Corrupt {
            key: format!("article {}", head.id),
            reason: format!(
                "its content location holds event {} of article {}",
                record.event.cursor, record.head.id
            ),
        });
    }
    let mut article = record.event.decode_article()?;
    article.view_count = head.view_count;
    if article.canonical_uri.is_empty() {
        // Stored before canonical addresses: the head has it computed.
        article.canonical_uri = head.canonical_uri.clone();
    }
    Ok(article)
}

/// Makes groups durable as they come; `last_event` is the last event applied to the index.
fn sync_groups(
    tree: &sled::Tree,
    faults: &DiskFaults,
    groups: &std_mpsc::Receiver<Group>,
    durable_head: &watch::Sender<u64>,
    failure: &Failure,
    applied_seq: &AtomicU64,
    last_event: &mut (u64, Timestamp),
) {
    while let Ok(first) = groups.recv() {
        let mut pending = vec![first];
        pending.extend(groups.try_iter());
        let outcome = failure.get().map_or_else(
            || make_durable(tree, faults, &pending, last_event),
            |stopped| Err(stopped.clone()),
        );
        match outcome {
            Ok(()) => {
                let head = pending.iter().map(|g| g.head).max().unwrap_or(0);
                // Head first, so that a cursor is visible to feeds by the time it is acked.
                durable_head.send_if_modified(|current| {
                    let advanced = head > *current;
                    *current = (*current).max(head);
                    advanced
                });
                let last_seq = pending.iter().map(|g| g.seq).max().unwrap_or(0);
                let group_size = pending.iter().map(|g| g.completions.len()).sum();
                pending
                    .into_iter()
                    .flat_map(|g| g.completions)
                    .for_each(|c| c.deliver(group_size));
                applied_seq.store(last_seq, Ordering::Release);
            }
            Err(stopped) => {
                failure.set(stopped.clone());
                pending
                    .into_iter()
                    .flat_map(|g| g.completions)
                    .for_each(|c| c.fail(&stopped));
            }
        }
    }
    debug!("syncer stopped");
}

/// Syncs the groups' log files, then applies their records to the index.
fn make_durable(
    tree: &sled::Tree,
    faults: &DiskFaults,
    groups: &[Group],
    last_event: &mut (u64, Timestamp),
) -> std::result::Result<(), Stopped> {
    let started = std::time::Instant::now();
    let mut files: Vec<&Arc<File>> = Vec::new();
    for file in groups.iter().flat_map(|g| &g.files) {
        if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
            files.push(file);
        }
    }
    for file in files {
        faults
            .check(DiskOperation::LogSync)
            .and_then(|()| file.sync_data())
            .map_err(|e| {
                error!(error = %e, "syncing the log failed; the store stops taking writes");
                Stopped::after("syncing the log to disk", &StoreError::Io(e))
            })?;
    }
    let synced = started.elapsed();
    let mut apply = || -> Result<()> {
        for record in groups.iter().flat_map(|g| &g.records) {
            faults.check(DiskOperation::IndexWrite)?;
            index::apply(tree, record)?;
        }
        if let Some(event) = groups.iter().rev().find_map(|g| g.last_event) {
            *last_event = event;
        }
        if let Some(last) = groups.iter().rev().find_map(|g| g.last) {
            index::set_applied(
                tree,
                &Applied {
                    last,
                    head: last_event.0,
                    head_recorded_at: last_event.1,
                },
            )?;
        }
        Ok(())
    };
    apply().map_err(|e| {
        error!(error = %e, "updating the index failed; the store stops taking writes");
        Stopped::after(
            "updating the index (the writes are in the log; retrying them after the restart \
             is safe)",
            &e,
        )
    })?;
    debug!(
        groups = groups.len(),
        records = groups.iter().map(|g| g.records.len()).sum::<usize>(),
        ?synced,
        applied = ?(started.elapsed() - synced),
        "groups durable"
    );
    Ok(())
}

/// Makes the index durable every `interval` while writes were applied, and once more when the
/// store closes.
fn checkpoints(
    db: &sled::Db,
    index_file: &File,
    interval: Duration,
    stopping: &std_mpsc::Receiver<()>,
    applied_seq: &AtomicU64,
    failure: &Failure,
) {
    let mut checkpointed = 0;
    loop {
        let stop = !matches!(
            stopping.recv_timeout(interval),
            Err(std_mpsc::RecvTimeoutError::Timeout)
        );
        let applied = applied_seq.load(Ordering::Acquire);
        if applied != checkpointed {
            match db
                .flush()
                .map_err(StoreError::from)
                .and_then(|_| index_file.sync_data().map_err(StoreError::from))
            {
                Ok(()) => checkpointed = applied,
                Err(e) => {
                    // The log still holds every write; only the replay at start-up grows.
                    error!(error = %e, "index checkpoint failed; the store stops taking writes");
                    failure.set(Stopped::after("an index checkpoint", &e));
                }
            }
        }
        if stop {
            break;
        }
    }
    debug!("checkpointer stopped");
}
