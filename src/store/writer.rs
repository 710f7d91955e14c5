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
    codec::{self, Applied, ArticleHead, EventRecord, HeldState, PendingRecord, Record},
    index,
    log::{Location, Log, LogWriter},
    recent::RecentEvents,
};
use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, Retraction, StoryLink, Timestamp,
        ValidArticle, canonical_uri,
        editorial::{self, PreviousVersion, Transition},
        embargo::{Clock, EmbargoSchedule, PendingRelease},
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

/// What the embedded store's writer takes from its queue: a caller's command, or the release
/// timer's call.
pub enum Queued {
    /// A write of a caller.
    Command(Command),
    /// Release every held version whose embargo has passed; answered once they are durable
    /// (the writer also does this unasked when it starts).
    Release { reply: Option<Reply<()>> },
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
    /// A result nobody waits for.
    fn unanswered() -> Self {
        Self(Box::new(|_| {}))
    }

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
    /// When embargoes end.
    pub clock: Arc<dyn Clock>,
    /// The held versions waiting for their embargo, rebuilt from the index.
    pub schedule: EmbargoSchedule,
    /// Where the writer publishes the next embargo time, for the release timer.
    pub next_due: watch::Sender<Option<Timestamp>>,
}

/// Starts the writer, syncer and checkpointer threads. They stop when every command sender is
/// dropped, after answering and syncing everything already sent.
pub fn spawn(
    start: WriterStart,
    commands: mpsc::Receiver<Queued>,
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
        clock,
        schedule,
        next_due,
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
        clock,
        schedule,
        next_due,
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

/// What is stored of an article: the version readers see and the one without an event.
#[derive(Default)]
struct Stored {
    /// The released head, with the bytes of its current event when that is not applied yet;
    /// `None` when no version was released.
    released: Option<(ArticleHead, Option<Bytes>)>,
    /// A version held back, or the retraction of a never-released article.
    pending: Option<PendingRecord>,
}

impl Stored {
    /// The held version, if one waits.
    fn held(&self) -> Option<&PendingRecord> {
        self.pending.as_ref().filter(|p| p.is_held())
    }

    /// What the editorial rules need of the previous version.
    fn previous(&self) -> PreviousVersion {
        PreviousVersion {
            released: self.released.is_some(),
            retracted: self.retracted(),
        }
    }

    fn retracted(&self) -> bool {
        self.released
            .as_ref()
            .is_some_and(|(head, _)| head.status == ArticleStatus::Canceled)
            || self.pending.as_ref().is_some_and(|p| !p.is_held())
    }

    /// The number of the latest stored version, held or not (held versions use up numbers).
    fn latest_version(&self) -> u64 {
        let released = self.released.as_ref().map_or(0, |(head, _)| head.version);
        let pending = self.pending.as_ref().map_or(0, |p| p.head.version);
        released.max(pending)
    }

    fn first_ingested_at(&self) -> Option<Timestamp> {
        match (&self.released, &self.pending) {
            (Some((head, _)), _) => Some(head.first_ingested_at),
            (None, Some(p)) => Some(p.head.first_ingested_at),
            (None, None) => None,
        }
    }

    fn canonical_uri(&self) -> Option<String> {
        match (&self.released, &self.pending) {
            (Some((head, _)), _) => Some(head.canonical_uri.clone()),
            (None, Some(p)) => Some(p.head.canonical_uri.clone()),
            (None, None) => None,
        }
    }

    /// The time-index entry of the held version that `next` replaces, when it is to go: not
    /// at `next`'s time, nor at the released head's.
    fn replaced_held_published_at(&self, next: &Article) -> Option<Timestamp> {
        let held = self.held()?.head.published_at;
        let kept = held == next.content.published_at
            || self
                .released
                .as_ref()
                .is_some_and(|(head, _)| head.published_at == held);
        (!kept).then_some(held)
    }

    /// The receipt of an ingest that leaves this state: the latest version, and the cursor
    /// of the released head (0 when none was released).
    fn receipt(&self, id: ArticleId, outcome: IngestOutcome) -> IngestReceipt {
        let (version, content_hash) = match (&self.pending, &self.released) {
            (Some(p), _) => (p.head.version, p.head.content_hash),
            (None, Some((head, _))) => (head.version, head.content_hash),
            (None, None) => (0, crate::domain::ContentHash([0; 32])),
        };
        IngestReceipt {
            id,
            version: version.max(self.latest_version()),
            outcome,
            content_hash,
            cursor: self.released.as_ref().map_or(0, |(head, _)| head.cursor),
            group_size: 0,
        }
    }
}

/// What an event replaces, for the index entries to remove.
#[derive(Default)]
struct Previous {
    /// The head's publication time before an update.
    published_at: Option<Timestamp>,
    /// The head's story before an update.
    story_id: Option<ArticleId>,
    /// The publication time of a held version the event drops, when its entry is to go.
    held_published_at: Option<Timestamp>,
}

/// Writes of groups the syncer has not applied to the index yet, so that decisions see them.
/// Each entry remembers the group that wrote it last; entries of applied groups are dropped.
#[derive(Default)]
struct Unapplied {
    natural_keys: HashMap<(String, String), (ArticleId, u64)>,
    /// Heads, with the article bytes of their current event when it is not applied yet.
    heads: HashMap<ArticleId, (ArticleHead, Option<Bytes>, u64)>,
    consumers: HashMap<String, (Option<Consumer>, u64)>,
    /// Versions stored without an event, with their article bytes; `None` once an event
    /// dropped the article's.
    pending: HashMap<ArticleId, (Option<PendingRecord>, u64)>,
}

impl Unapplied {
    fn prune(&mut self, applied_seq: u64) {
        self.pending.retain(|_, (_, seq)| *seq > applied_seq);
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
    clock: Arc<dyn Clock>,
    /// Held versions by embargo time; changed only by the writer, as it decides.
    schedule: EmbargoSchedule,
    next_due: watch::Sender<Option<Timestamp>>,
}

impl Writer {
    fn run(mut self, mut commands: mpsc::Receiver<Queued>, groups: std_mpsc::SyncSender<Group>) {
        // Embargoes that passed while the store was closed are released first of all.
        let mut starting = Some(Queued::Release { reply: None });
        while let Some(first) = starting.take().or_else(|| commands.blocking_recv()) {
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
            let next_due = self.schedule.next_due();
            self.next_due.send_if_modified(|current| {
                let changed = *current != next_due;
                *current = next_due;
                changed
            });
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

    fn apply(&mut self, queued: Queued) -> Completion {
        let command = match queued {
            Queued::Command(command) => command,
            Queued::Release { reply } => {
                let result = self.guarded(Self::release_due);
                return match reply {
                    Some(reply) => Completion::new(reply, result),
                    None => Completion::unanswered(),
                };
            }
        };
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
        self.last_recorded_at = self.last_recorded_at.max(self.clock.now());
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

    /// The stored state of article `id`: its released head (with the bytes of its current
    /// event when that is not applied yet) and its version stored without an event.
    fn lookup_state(&self, id: ArticleId) -> Result<Stored> {
        let released = self.lookup_head(id)?;
        let pending = match self.unapplied.pending.get(&id) {
            Some((pending, _)) => pending.clone(),
            None => index::pending(&self.tree, id)?,
        };
        Ok(Stored { released, pending })
    }

    fn ingest(&mut self, new: ValidArticle, prepared: Prepared) -> Result<IngestReceipt> {
        let content_hash = new.content_hash();
        let view_count = new.view_count();
        let source_id = new.content().source.id.clone();
        let Prepared {
            canonical_uri: canonical,
            fingerprint,
        } = prepared;
        let existing = match self.lookup_id(&source_id, &canonical)? {
            Some(id) => {
                let stored = self.lookup_state(id)?;
                if stored.released.is_none() && stored.pending.is_none() {
                    return Err(StoreError::Corrupt {
                        key: format!("natural key ({source_id}, {canonical})"),
                        reason: format!("points to missing article {id}"),
                    });
                }
                Some((id, stored))
            }
            None => None,
        };
        let transition = editorial::transition(
            existing.as_ref().map(|(_, stored)| stored.previous()),
            &new.content().editorial,
            self.clock.now(),
        );
        let Some((id, stored)) = existing else {
            let id = self.new_id();
            return match transition {
                Transition::Publish { .. } => {
                    self.publish(id, Stored::default(), new, canonical, fingerprint)
                }
                Transition::Embargo { until, .. } => self.hold(
                    id,
                    &Stored::default(),
                    new,
                    canonical,
                    HeldState::Embargoed(until),
                ),
                Transition::Withhold => {
                    self.hold(id, &Stored::default(), new, canonical, HeldState::Withheld)
                }
                Transition::Retract { reason, .. } => {
                    self.cancel_unreleased(id, &Stored::default(), new, canonical, reason)
                }
                Transition::Unchanged | Transition::Refused => Err(StoreError::Retracted(id)),
            };
        };

        if stored.retracted() {
            return match transition {
                Transition::Unchanged => Ok(stored.receipt(id, IngestOutcome::Unchanged)),
                _ => Err(StoreError::Retracted(id)),
            };
        }
        if let Some(pending) = stored.pending.as_ref().filter(|p| p.is_held()) {
            if pending.head.content_hash == content_hash {
                if pending.head.view_count == view_count {
                    return Ok(stored.receipt(id, IngestOutcome::Unchanged));
                }
                // Counted again while held: the same version, logged with its new count.
                let mut counted = pending.clone();
                counted.head.view_count = view_count;
                counted.previous_published_at = None;
                counted.article = pending_bytes(&self.log, pending)?;
                self.log_pending(counted.clone())?;
                let stored = Stored {
                    released: stored.released,
                    pending: Some(counted),
                };
                return Ok(stored.receipt(id, IngestOutcome::CountersUpdated));
            }
        } else if let Some((head, current_article)) = &stored.released
            && head.content_hash == content_hash
        {
            let mut head = head.clone();
            let outcome = if head.view_count == view_count {
                IngestOutcome::Unchanged
            } else {
                head.view_count = view_count;
                self.log_writer
                    .append(&codec::log_record(&Record::Counters(head.clone())))?;
                self.records.push(Record::Counters(head.clone()));
                self.unapplied
                    .heads
                    .insert(id, (head.clone(), current_article.clone(), self.seq));
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

        match transition {
            Transition::Publish { .. } => self.publish(id, stored, new, canonical, fingerprint),
            Transition::Embargo { until, .. } => {
                self.hold(id, &stored, new, canonical, HeldState::Embargoed(until))
            }
            Transition::Withhold => self.hold(id, &stored, new, canonical, HeldState::Withheld),
            Transition::Retract {
                reason,
                announce: true,
            } if stored.released.is_some() => {
                let article = self.retract_stored(id, stored, reason)?;
                Ok(receipt(&article, IngestOutcome::Canceled))
            }
            Transition::Retract { reason, .. } => {
                self.cancel_unreleased(id, &stored, new, canonical, reason)
            }
            Transition::Unchanged => Ok(stored.receipt(id, IngestOutcome::Unchanged)),
            Transition::Refused => Err(StoreError::Retracted(id)),
        }
    }

    /// Stores `new` as the next version of `id` and logs its event now: CREATED when no version
    /// was released, else UPDATED. Any held version is dropped.
    fn publish(
        &mut self,
        id: ArticleId,
        stored: Stored,
        new: ValidArticle,
        canonical: String,
        fingerprint: Option<Fingerprint>,
    ) -> Result<IngestReceipt> {
        let now = self.now();
        let content_hash = new.content_hash();
        let view_count = new.view_count();
        let version = stored.latest_version() + 1;
        let held_published_at = stored.held().map(|p| p.head.published_at);
        self.schedule.lift(id);
        let Some((head, _)) = stored.released else {
            let (story, fingerprint) = self.place(id, new.content(), fingerprint.as_ref(), false);
            let first_ingested_at = stored
                .pending
                .as_ref()
                .map_or(now, |p| p.head.first_ingested_at);
            let canonical = stored
                .pending
                .as_ref()
                .map_or(canonical, |p| p.head.canonical_uri.clone());
            let article = Article {
                id,
                content: new.into_content(),
                view_count,
                version,
                status: ArticleStatus::Usable,
                content_hash,
                ingested_at: now,
                first_ingested_at,
                cursor: self.next_cursor,
                retraction: None,
                canonical_uri: canonical.clone(),
                story,
            };
            let receipt = receipt(&article, IngestOutcome::Created);
            let source_id = article.content.source.id.clone();
            let previous = Previous {
                held_published_at: held_published_at.filter(|p| *p != article.content.published_at),
                ..Previous::default()
            };
            self.log_event(EventKind::Created, article, now, fingerprint, previous)?;
            self.unapplied
                .natural_keys
                .insert((source_id, canonical), (id, self.seq));
            return Ok(receipt);
        };

        let (story, fingerprint) = self.place(id, new.content(), fingerprint.as_ref(), true);
        let article = Article {
            id,
            content: new.into_content(),
            view_count,
            version,
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
        let previous = Previous {
            published_at: Some(head.published_at),
            story_id: Some(head.story_id()),
            held_published_at: held_published_at.filter(|p| *p != article.content.published_at),
        };
        self.log_event(EventKind::Updated, article, now, fingerprint, previous)?;
        Ok(receipt)
    }

    /// Stores `new` as the next version of `id` without an event, held as `state` says,
    /// replacing any earlier held version.
    fn hold(
        &mut self,
        id: ArticleId,
        stored: &Stored,
        new: ValidArticle,
        canonical: String,
        state: HeldState,
    ) -> Result<IngestReceipt> {
        let now = self.now();
        let version = stored.latest_version() + 1;
        let article = Article {
            id,
            content_hash: new.content_hash(),
            view_count: new.view_count(),
            content: new.into_content(),
            version,
            status: ArticleStatus::Withheld,
            ingested_at: now,
            first_ingested_at: stored.first_ingested_at().unwrap_or(now),
            cursor: 0,
            retraction: None,
            canonical_uri: stored.canonical_uri().unwrap_or(canonical),
            story: None,
        };
        match state {
            HeldState::Embargoed(until) => {
                self.schedule.schedule(id, version, until);
            }
            HeldState::Withheld | HeldState::Retracted => {
                self.schedule.lift(id);
            }
        }
        let previous_published_at = stored.replaced_held_published_at(&article);
        let pending = PendingRecord {
            head: ArticleHead::of(&article, 0),
            state,
            article: Bytes::from(wire::article_pb(article).encode_to_vec()),
            previous_published_at,
        };
        self.log_pending(pending.clone())?;
        let stored = Stored {
            released: stored.released.clone(),
            pending: Some(pending),
        };
        Ok(stored.receipt(id, IngestOutcome::Held))
    }

    /// The sender canceled an article no reader has seen: it is recorded retracted, with the
    /// canceled version, and no event (feeds never saw it, and an event would reveal it).
    fn cancel_unreleased(
        &mut self,
        id: ArticleId,
        stored: &Stored,
        new: ValidArticle,
        canonical: String,
        reason: String,
    ) -> Result<IngestReceipt> {
        let now = self.now();
        let article = Article {
            id,
            content_hash: new.content_hash(),
            view_count: new.view_count(),
            content: new.into_content(),
            version: stored.latest_version() + 1,
            status: ArticleStatus::Canceled,
            ingested_at: now,
            first_ingested_at: stored.first_ingested_at().unwrap_or(now),
            cursor: 0,
            retraction: Some(Retraction {
                reason,
                retracted_at: now,
            }),
            canonical_uri: stored.canonical_uri().unwrap_or(canonical),
            story: None,
        };
        let receipt = receipt(&article, IngestOutcome::Canceled);
        self.record_unreleased_retraction(stored, article)?;
        Ok(receipt)
    }

    /// Logs that the never-released `article` (already turned into its retracted version) is
    /// retracted, dropping any held version.
    fn record_unreleased_retraction(&mut self, stored: &Stored, article: Article) -> Result<()> {
        self.schedule.lift(article.id);
        let pending = PendingRecord {
            head: ArticleHead::of(&article, 0),
            state: HeldState::Retracted,
            previous_published_at: stored.held().map(|p| p.head.published_at),
            article: Bytes::from(wire::article_pb(article).encode_to_vec()),
        };
        self.log_pending(pending)
    }

    /// Appends a version stored without an event.
    fn log_pending(&mut self, mut pending: PendingRecord) -> Result<()> {
        let location = self
            .log_writer
            .append(&codec::log_record(&Record::Pending(pending.clone())))?;
        pending.head.location = location;
        let id = pending.head.id;
        self.unapplied.natural_keys.insert(
            (
                pending.head.source_id.clone(),
                pending.head.canonical_uri.clone(),
            ),
            (id, self.seq),
        );
        self.records.push(Record::Pending(pending.clone()));
        self.unapplied.pending.insert(id, (Some(pending), self.seq));
        Ok(())
    }

    /// Releases every held version whose embargo has passed, by time and then article id.
    fn release_due(&mut self) -> Result<()> {
        for due in self.schedule.due(self.clock.now()) {
            self.release(due)?;
            self.schedule.released(&due);
        }
        Ok(())
    }

    /// Logs the event of a held version whose embargo passed: CREATED when no version was
    /// released before, else UPDATED; it is placed in its story now, in cursor order.
    fn release(&mut self, due: PendingRelease) -> Result<()> {
        let stored = self.lookup_state(due.id)?;
        let Some(pending) = stored
            .held()
            .filter(|p| p.head.version == due.version && p.until().is_some())
        else {
            // Replaced meanwhile; what replaced it changed the schedule itself.
            return Ok(());
        };
        let mut article = read_pending_article(&self.log, pending)?;
        let now = self.now();
        article.status = ArticleStatus::Usable;
        article.cursor = self.next_cursor;
        let released = stored.released.as_ref().map(|(head, _)| head);
        let (story, fingerprint) = self.place(due.id, &article.content, None, released.is_some());
        article.story = story;
        let (kind, previous) = match released {
            Some(head) => (
                EventKind::Updated,
                Previous {
                    published_at: Some(head.published_at),
                    story_id: Some(head.story_id()),
                    held_published_at: None,
                },
            ),
            None => (EventKind::Created, Previous::default()),
        };
        debug!(id = %due.id, version = due.version, cursor = article.cursor, "embargo released");
        self.log_event(kind, article, now, fingerprint, previous)
    }

    fn retract(&mut self, id: ArticleId, reason: String) -> Result<Article> {
        let stored = self.lookup_state(id)?;
        if stored.released.is_some() {
            return self.retract_stored(id, stored, reason);
        }
        let Some(pending) = &stored.pending else {
            return Err(StoreError::NotFound(id));
        };
        if !pending.is_held() {
            // Retracted before it was ever released: as for reads, readers never saw it.
            return Err(StoreError::NotFound(id));
        }
        let mut article = read_pending_article(&self.log, pending)?;
        let now = self.now();
        article.retract(reason, now, 0);
        self.record_unreleased_retraction(&stored, article.clone())?;
        Ok(article)
    }

    /// Retracts an article some version of which was released: a RETRACTED event, which
    /// drops any held version.
    fn retract_stored(&mut self, id: ArticleId, stored: Stored, reason: String) -> Result<Article> {
        let Some((head, current_article)) = &stored.released else {
            return Err(StoreError::NotFound(id));
        };
        let mut article = match current_article {
            Some(bytes) => decode_article(head.cursor, bytes.clone())?,
            None => read_article(&self.log, head)?,
        };
        if article.status == ArticleStatus::Canceled {
            return Ok(article);
        }
        let now = self.now();
        // Held versions used up their numbers.
        article.version = stored.latest_version();
        article.retract(reason, now, self.next_cursor);
        if article.canonical_uri.is_empty() {
            article.canonical_uri = head.canonical_uri.clone();
        }
        if let Some(stories) = self.stories.as_mut() {
            stories.remove(id);
        }
        self.schedule.lift(id);
        let previous = Previous {
            held_published_at: stored
                .held()
                .map(|p| p.head.published_at)
                .filter(|p| *p != article.content.published_at),
            ..Previous::default()
        };
        self.log_event(
            EventKind::Retracted,
            article.clone(),
            now,
            Bytes::new(),
            previous,
        )?;
        Ok(article)
    }

    /// Logs the event that produced `article`'s current version.
    fn log_event(
        &mut self,
        kind: EventKind,
        article: Article,
        recorded_at: Timestamp,
        fingerprint: Bytes,
        previous: Previous,
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
            previous_published_at: previous.published_at,
            fingerprint,
            previous_story_id: previous.story_id,
            dropped_held_published_at: previous.held_published_at,
        };
        let location = self
            .log_writer
            .append(&codec::log_record(&Record::Event(record.clone())))?;
        record.head.location = location;
        head = record.head.clone();
        self.records.push(Record::Event(record));
        // Every event ends whatever version was held.
        self.unapplied.pending.insert(head.id, (None, self.seq));
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

/// The article bytes of a pending version: carried when it was read from the log, else read
/// from its record.
fn pending_bytes(log: &Log, pending: &PendingRecord) -> Result<Bytes> {
    if !pending.article.is_empty() {
        return Ok(pending.article.clone());
    }
    let location = pending.head.location;
    let payload = log.read(location)?;
    match codec::decode_record(payload, location)? {
        Record::Pending(record) if record.head.id == pending.head.id => Ok(record.article),
        _ => Err(StoreError::Corrupt {
            key: format!("article {}", pending.head.id),
            reason: "its held version's location holds another record".into(),
        }),
    }
}

/// Reads a version stored without an event (status withheld, or canceled for a retraction),
/// with its latest view count.
pub fn read_pending_article(log: &Log, pending: &PendingRecord) -> Result<Article> {
    let bytes = pending_bytes(log, pending)?;
    let mut article = decode_article(0, bytes)?;
    article.view_count = pending.head.view_count;
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
