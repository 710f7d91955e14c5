//! [`ArticleStore`] on local disk: khabar's own log holds every event and every other
//! acknowledged write; an embedded sled database indexes it.
//!
//! # Data directory
//! - `log/`: the log's segment files (see `log`), the only copy of every article's content.
//! - `index/`: the sled index (see `keys`): natural keys, article heads, the time index, the
//!   log index, story fingerprints and members, consumers, and how far the log has been
//!   applied. It can be rebuilt from the log:
//!   remove `index/` and start khabar.
//!
//! # Start-up
//! A data directory of the first layout (sled alone, in the directory itself) is migrated first
//! (see `migrate`). Then the log is checked from the position the index has applied it up to,
//! a torn tail is removed, and the records after that position are applied to the index again.
//! An index that claims more of the log than the log holds means acknowledged writes are
//! missing: the store refuses to open rather than serve a shortened history.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::{
    ArticleStore, Consumer, DiskFaults, IngestReceipt, ListQuery, ListedPage, LogEvent,
    PendingWrite, Result, StoreError, codec, index, keys, list,
    log::{Log, Position},
    migrate,
    writer::{
        self, Command, Failure, Prepared, Queued, WriterStart, read_article, read_pending_article,
    },
};
use super::{blocks::BlockCache, dir_lock::DataDirLock, recent::RecentEvents};
use crate::domain::embargo::{Clock, EmbargoSchedule, PendingRelease, SystemClock};
use crate::{
    domain::{Article, ArticleId, ArticleStatus, Timestamp, ValidArticle},
    stories::{Fingerprint, StoryConfig, StoryIndex},
};

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(e) => Self::Io(e),
            corruption @ sled::Error::Corruption { .. } => Self::Corrupt {
                key: "the sled index".to_owned(),
                reason: corruption.to_string(),
            },
            other => Self::Database(other.to_string()),
        }
    }
}

/// Version of the data directory layout; a directory written with another one is refused.
/// Layout 3 keys articles by canonical address and indexes stories; an index of layout 2 is
/// rebuilt from the log (which both layouts share) at the first start.
const LAYOUT_VERSION: &[u8] = b"3";
/// The layout whose index is rebuilt rather than refused.
const PREVIOUS_LAYOUT_VERSION: &[u8] = b"2";
/// Writes waiting for the writer thread at most; further callers wait for room (backpressure).
const COMMAND_QUEUE: usize = 1_024;

/// Where and how to open the store.
#[derive(Debug, Clone)]
pub struct SledStoreConfig {
    /// Data directory; created if missing.
    pub path: PathBuf,
    /// Bytes of the index's page cache.
    pub cache_capacity_bytes: u64,
    /// How often the index is made durable.
    pub checkpoint_interval: Duration,
    /// Disk failures to inject; empty but in tests.
    pub faults: Arc<DiskFaults>,
    /// Bytes of articles waiting for the writer at most (besides at most 1,024 writes): with
    /// articles of up to a message's size, the count alone would let the queue hold gigabytes.
    pub queued_bytes: usize,
    /// How stories are linked; `None` turns story linking off.
    pub stories: Option<StoryConfig>,
    /// When embargoes end; a manual clock in tests.
    pub clock: Arc<dyn Clock>,
}

impl SledStoreConfig {
    /// The defaults of `khabar serve` for the directory `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cache_capacity_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(2),
            faults: Arc::default(),
            queued_bytes: 64 << 20,
            stories: Some(StoryConfig::default()),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Articles, the log and its index. A cheap-to-clone handle; the write path stops and the
/// index is checkpointed when the last handle is dropped.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    log: Arc<Log>,
    recent: Arc<RecentEvents>,
    blocks: Arc<BlockCache>,
    commands: Option<mpsc::Sender<Queued>>,
    /// The byte budget of queued articles, in KiB, and its size.
    queued_bytes: Arc<tokio::sync::Semaphore>,
    queued_kib: usize,
    durable_head: watch::Receiver<u64>,
    writes_stopped: watch::Receiver<bool>,
    /// Whether stories are linked (articles are fingerprinted before they are queued).
    stories: bool,
    /// The store's clock, which decides what a listing counts as expired.
    list_clock: Arc<dyn Clock>,
    stop_checkpoints: Option<std::sync::mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    /// Declared last so that the directory is released only after everything else closed.
    _dir_lock: DataDirLock,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it and the syncer finish; the checkpointer
        // then makes the index durable once more.
        self.commands = None;
        let mut threads = std::mem::take(&mut self.threads).into_iter();
        for thread in threads.by_ref().take(2) {
            let _ = thread.join();
        }
        self.stop_checkpoints = None;
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// What opening found, for the start-up log line.
struct Opened {
    replayed: usize,
    rebuilt: bool,
}

impl SledStore {
    /// Opens (or creates) the store, recovers it and starts its write path.
    pub fn open(config: &SledStoreConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.path)?;
        let dir_lock = DataDirLock::acquire(&config.path)?;
        migrate::migrate_if_needed(&config.path, config.cache_capacity_bytes)?;
        let log = Log::open_with_faults(&config.path.join("log"), config.faults.clone())?;
        let index_dir = config.path.join("index");
        let db = open_index(&index_dir, config.cache_capacity_bytes, &log)?;
        let rebuilt = check_layout(&db)?;
        let index_file = File::open(index_dir.join("db"))?;
        let (end, (head, last_recorded_at), opened) = recover(&db, &index_file, &log, rebuilt)?;
        let stories = config
            .stories
            .map(|story_config| rebuild_stories(&db, &log, story_config))
            .transpose()?;
        let schedule =
            EmbargoSchedule::from_pending(index::embargoed(&db)?.iter().filter_map(|pending| {
                pending.until().map(|release_at| PendingRelease {
                    release_at,
                    id: pending.head.id,
                    version: pending.head.version,
                })
            }));
        let pending_embargoes = schedule.len();
        let (next_due_tx, next_due_rx) = watch::channel(schedule.next_due());
        let recent = Arc::new(RecentEvents::default());
        let queued_kib = config.queued_bytes.div_ceil(1024).max(1);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (head_tx, head_rx) = watch::channel(head);
        let failure = Failure::default();
        let writes_stopped = failure.watch();
        let write_path = writer::spawn(
            WriterStart {
                db: db.clone(),
                index_file,
                log: log.clone(),
                log_writer: log.writer(end)?,
                head,
                last_recorded_at,
                recent: recent.clone(),
                failure,
                checkpoint_interval: config.checkpoint_interval,
                faults: config.faults.clone(),
                stories,
                clock: config.clock.clone(),
                schedule,
                next_due: next_due_tx,
            },
            commands_rx,
            head_tx,
        )?;
        let mut threads = write_path.threads;
        threads.push(spawn_release_timer(
            config.clock.clone(),
            next_due_rx,
            commands_tx.downgrade(),
        )?);
        info!(
            path = %config.path.display(),
            head,
            replayed = opened.replayed,
            rebuilt_index = opened.rebuilt,
            pending_embargoes,
            "store opened"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                log,
                recent,
                blocks: Arc::default(),
                commands: Some(commands_tx),
                queued_bytes: Arc::new(tokio::sync::Semaphore::new(queued_kib)),
                queued_kib,
                durable_head: head_rx,
                writes_stopped,
                stories: config.stories.is_some(),
                list_clock: config.clock.clone(),
                stop_checkpoints: Some(write_path.stop_checkpoints),
                threads,
                _dir_lock: dir_lock,
            }),
        })
    }

    /// Handles to this store that are alive, this one included.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    async fn enqueue<T: Send + 'static>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<PendingWrite<T>> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store is shutting down".into());
        let commands = self.inner.commands.as_ref().ok_or_else(closed)?;
        commands
            .send(Queued::Command(command(reply)))
            .await
            .map_err(|_| closed())?;
        Ok(Box::pin(async move { answer.await.map_err(|_| closed())? }))
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&sled::Db, &Log) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || read(&inner.db, &inner.log))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// Starts the thread that asks the writer to release held versions when their embargo passes:
/// it sleeps until the next embargo time the writer published (on the system clock at most
/// `MAX_TIMER_SLEEP` at a time, so that a release is logged within a second of its time even
/// if the wall clock steps) and wakes early when the writer publishes an earlier one. It holds
/// no strong handle on the queue, so the writer still stops when the store is dropped, and it
/// stops once the writer has.
fn spawn_release_timer(
    clock: Arc<dyn Clock>,
    mut next_due: watch::Receiver<Option<Timestamp>>,
    commands: mpsc::WeakSender<Queued>,
) -> Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("khabar-embargo".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    let Some(at) = *next_due.borrow_and_update() else {
                        if next_due.changed().await.is_err() {
                            return;
                        }
                        continue;
                    };
                    tokio::select! {
                        () = clock.sleep_until(at) => {}
                        changed = next_due.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                    if clock.now() < at {
                        continue;
                    }
                    let Some(sender) = commands.upgrade() else {
                        return;
                    };
                    let (reply, answer) = oneshot::channel();
                    let sent = sender.send(Queued::Release { reply: Some(reply) }).await;
                    drop(sender);
                    if sent.is_err() {
                        return;
                    }
                    let released = matches!(answer.await, Ok(Ok(())));
                    // A failed store, or a release the writer found nothing to do for, leaves
                    // the time where it was: wait for it to change rather than spin.
                    if (!released || *next_due.borrow() == Some(at))
                        && next_due.changed().await.is_err()
                    {
                        return;
                    }
                }
            });
        })?;
    Ok(thread)
}

/// Opens the index, waiting while its sled lock is taken. The data directory's lock rules out
/// another process, so a taken lock belongs to a store of this process that was just closed:
/// sled 0.34 lets go of its files a moment after its last handle is dropped.
pub(super) fn open_sled_when_released(
    dir: &Path,
    cache_capacity_bytes: u64,
) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + INDEX_RELEASE_WAIT;
    loop {
        match open_sled(dir, cache_capacity_bytes) {
            Err(e) if is_lock_contention(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// Whether sled refused to open because another handle holds its file lock (sled reports it
/// as an untyped i/o error with this message).
fn is_lock_contention(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if e.to_string().starts_with("could not acquire lock"))
}

fn open_sled(dir: &Path, cache_capacity_bytes: u64) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity_bytes)
        // The checkpointer flushes the index; sled's own timer would only add writes.
        .flush_every_ms(None)
        .open()
}

/// How long opening the index waits for a store of this process that is closing to let go of
/// it.
const INDEX_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Opens the index. One that sled cannot open (damaged files) is moved aside and rebuilt from
/// the log, which holds everything it did: the index is derived data.
fn open_index(dir: &Path, cache_capacity_bytes: u64, log: &Log) -> Result<sled::Db> {
    match open_sled_when_released(dir, cache_capacity_bytes) {
        Ok(db) => Ok(db),
        Err(e) if is_lock_contention(&e) => Err(StoreError::InUse(format!(
            "the index {} is still locked after {} s although this process holds the data \
             directory: a store of this process that was closed has not let go of it",
            dir.display(),
            INDEX_RELEASE_WAIT.as_secs()
        ))),
        Err(e) if log.segment_range().is_some() => {
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = dir.with_file_name(format!("index.unreadable-{seconds}"));
            warn!(
                index = %dir.display(),
                error = %e,
                kept = %aside.display(),
                "the index cannot be opened; rebuilding it from the log (the unreadable one is kept aside)"
            );
            std::fs::rename(dir, &aside).map_err(|rename| StoreError::Corrupt {
                key: dir.display().to_string(),
                reason: format!(
                    "the index cannot be opened ({e}) nor moved aside to rebuild it \
                         ({rename}): remove it to rebuild it from the log"
                ),
            })?;
            Ok(open_sled(dir, cache_capacity_bytes)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The log record of `head`'s current version, if its location holds that version's event.
fn logged_event(log: &Log, head: &codec::ArticleHead) -> Result<Option<codec::EventRecord>> {
    let payload = log.read(head.location)?;
    match codec::decode_record(payload, head.location)? {
        codec::Record::Event(record)
            if record.head.id == head.id && record.event.cursor == head.cursor =>
        {
            Ok(Some(record))
        }
        _ => Ok(None),
    }
}

/// Rebuilds the story index from the durable articles: the live ones published within the
/// window of the newest, in cursor order of their current version, with their stored
/// fingerprints and stories (as the writer filed them). An article stored before stories has
/// no fingerprint: it is taken from its content once and kept in the index; it counts as
/// starting its own story.
fn rebuild_stories(db: &sled::Db, log: &Log, config: StoryConfig) -> Result<StoryIndex> {
    let mut index = StoryIndex::new(config);
    let mut heads = Vec::new();
    let mut newest: Option<Timestamp> = None;
    for entry in db.range(keys::article_range()) {
        let (key, value) = entry?;
        let head = codec::decode_head(&key, &value)?;
        newest = newest.max(Some(head.published_at));
        if head.status != ArticleStatus::Canceled {
            heads.push(head);
        }
    }
    let Some(newest) = newest else {
        return Ok(index);
    };
    let window = i64::try_from(config.window.as_secs()).unwrap_or(i64::MAX);
    let cutoff = newest.seconds().saturating_sub(window);
    heads.retain(|head| head.published_at.seconds() >= cutoff);
    heads.sort_by_key(|head| head.cursor);
    let mut computed = 0usize;
    for head in &heads {
        // The version's log record holds its fingerprint; a version stored without one (or
        // with one of another encoding) has it computed once and kept in the index. The
        // record is read once either way: its article is what the fingerprint is taken from.
        let logged = logged_event(log, head)?;
        let cached = || -> Result<Option<Fingerprint>> {
            Ok(index::fingerprint(db, head.id)?
                .and_then(|bytes| Fingerprint::from_bytes(&bytes).ok()))
        };
        let fingerprint = match logged
            .as_ref()
            .and_then(|record| Fingerprint::from_bytes(&record.fingerprint).ok())
        {
            Some(fingerprint) => fingerprint,
            None => match cached()? {
                Some(fingerprint) => fingerprint,
                None => {
                    let article = match &logged {
                        Some(record) => record.event.decode_article()?,
                        // Reading it again reports what the location holds instead.
                        None => read_article(log, head)?,
                    };
                    let fingerprint =
                        Fingerprint::of_article(&article.content.headline, &article.content.body);
                    db.insert(keys::fingerprint(head.id), fingerprint.to_bytes())?;
                    computed += 1;
                    fingerprint
                }
            },
        };
        index.restore(head.id, head.published_at, &fingerprint, head.story_id());
    }
    index.advance(newest);
    info!(
        articles = index.len(),
        fingerprinted = computed,
        memory_bytes = index.memory_bytes(),
        "story index rebuilt"
    );
    Ok(index)
}

/// Brings the index up to the end of the log: checks the log from where the index says it has
/// applied it, removes a torn tail and applies what follows. Returns where the log ends and its
/// last event's cursor and time.
fn recover(
    db: &sled::Db,
    index_file: &File,
    log: &Log,
    rebuilt: bool,
) -> Result<(Position, (u64, Timestamp), Opened)> {
    let applied = index::applied(db)?;
    let mut head = applied.map_or((0, Timestamp::MIN), |a| (a.head, a.head_recorded_at));
    if rebuilt && log.segment_range().is_some() {
        warn!(log = %log.dir().display(), "the index is empty: rebuilding it from the log");
    }
    let mut replayed = 0;
    let recovered = log.recover(applied.map(|a| a.last), |location, payload| {
        let record = codec::decode_record(payload, location)?;
        index::apply(db, &record)?;
        if let codec::Record::Event(event) = &record {
            head = (event.event.cursor, event.event.recorded_at);
        }
        replayed += 1;
        Ok(())
    })?;
    if let Some(bytes) = recovered.truncated {
        warn!(bytes, "the log had a torn tail, removed");
    }
    if let Some(last) = recovered.last {
        index::set_applied(
            db,
            &codec::Applied {
                last,
                head: head.0,
                head_recorded_at: head.1,
            },
        )?;
    }
    db.flush()?;
    index_file.sync_data()?;
    Ok((recovered.end, head, Opened { replayed, rebuilt }))
}

impl ArticleStore for SledStore {
    async fn enqueue_ingest(&self, article: ValidArticle) -> Result<PendingWrite<IngestReceipt>> {
        let queued =
            writer::reserve_queue_share(&self.inner.queued_bytes, self.inner.queued_kib, &article)
                .await?;
        // Fingerprinted here, in the caller's task, rather than on the one writer thread.
        let prepared = Box::new(Prepared::of(&article, self.inner.stories));
        self.enqueue(|reply| Command::Ingest {
            article: Box::new(article),
            prepared,
            reply,
            queued,
        })
        .await
    }

    async fn retract(&self, id: ArticleId, reason: String) -> Result<Article> {
        self.enqueue(|reply| Command::Retract { id, reason, reply })
            .await?
            .await
    }

    async fn get(&self, id: ArticleId, view: super::View) -> Result<Article> {
        self.read(move |db, log| {
            if view == super::View::IncludingHeld
                && let Some(held) = index::pending(db, id)?.filter(|p| p.is_held())
            {
                return read_pending_article(log, &held);
            }
            let head = index::head(db, id)?.ok_or(StoreError::NotFound(id))?;
            read_article(log, &head)
        })
        .await
    }

    async fn list(&self, query: ListQuery) -> Result<ListedPage> {
        let now = self.inner.list_clock.now();
        self.read(move |db, log| list::list(db, log, &query, now))
            .await
    }

    async fn story(&self, story_id: ArticleId) -> Result<Vec<Article>> {
        self.read(move |db, log| {
            let mut heads = list::story_heads(db, story_id)?;
            heads.retain(|head| head.status != ArticleStatus::Canceled);
            heads.sort_by_key(|head| (head.published_at, head.id));
            heads.iter().map(|head| read_article(log, head)).collect()
        })
        .await
    }

    async fn read_log(&self, after: u64, max: usize) -> Result<Vec<Arc<LogEvent>>> {
        let head = *self.inner.durable_head.borrow();
        if after >= head || max == 0 {
            return Ok(Vec::new());
        }
        if let Some(events) = self.inner.recent.read(after, head, max) {
            return Ok(events);
        }
        let blocks = self.inner.blocks.clone();
        self.read(move |db, log| read_events(db, log, &blocks, after, head, max))
            .await
    }

    async fn first_cursor_at(&self, time: Timestamp) -> Result<u64> {
        let head = *self.inner.durable_head.borrow();
        self.read(move |db, log| first_cursor_at(db, log, time, head))
            .await
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        self.inner.durable_head.clone()
    }

    fn writes_stopped(&self) -> watch::Receiver<bool> {
        self.inner.writes_stopped.clone()
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
        self.read(move |db, _| {
            index::consumer(db, &name)?.ok_or(StoreError::ConsumerNotFound(name))
        })
        .await
    }

    async fn consumers(&self) -> Result<Vec<Consumer>> {
        self.read(|db, _| index::consumers(db)).await
    }

    async fn delete_consumer(&self, name: String) -> Result<()> {
        self.enqueue(|reply| Command::DeleteConsumer { name, reply })
            .await?
            .await
    }

    async fn size_on_disk(&self) -> Result<u64> {
        self.read(|db, log| Ok(db.size_on_disk()? + log.size_on_disk()?))
            .await
    }
}

/// Calls `visit` with the events from cursor `first` on, in order, until it returns `false` or
/// the event at `head` has been visited. Reads the log from the indexed event at or before
/// `first`.
fn scan_events(
    db: &sled::Db,
    log: &Log,
    first: u64,
    head: u64,
    mut visit: impl FnMut(Arc<LogEvent>) -> bool,
) -> Result<()> {
    let missing = |reason: String| StoreError::Corrupt {
        key: format!("log cursor {first}"),
        reason,
    };
    let (mut expected, location, _) = index::event_at_or_before(db, first)?
        .ok_or_else(|| missing(format!("no index entry at or before it (head {head})")))?;
    let mut done = false;
    log.read_from(location.position(), |location, payload| {
        if let codec::Record::Event(record) = codec::decode_record(payload, location)? {
            let event = record.event;
            if event.cursor != expected {
                return Err(StoreError::Corrupt {
                    key: format!("log cursor {expected}"),
                    reason: format!("found cursor {} in its place", event.cursor),
                });
            }
            expected += 1;
            if event.cursor >= first {
                let cursor = event.cursor;
                done = !visit(event) || cursor >= head;
            }
        }
        Ok(!done)
    })?;
    if !done && expected <= head {
        return Err(missing(format!(
            "the log ends at cursor {} below head {head}",
            expected - 1
        )));
    }
    Ok(())
}

/// Reads events `after + 1 ..= head`, at most `max`, from the log: whole blocks below the head
/// through the block cache, the head's own block directly.
fn read_events(
    db: &sled::Db,
    log: &Log,
    blocks: &BlockCache,
    after: u64,
    head: u64,
    max: usize,
) -> Result<Vec<Arc<LogEvent>>> {
    let stride = index::LOG_INDEX_STRIDE;
    let last = head.min(after.saturating_add(max as u64));
    let mut events = Vec::with_capacity((last - after) as usize);
    let mut cursor = after + 1;
    while cursor <= last {
        let number = (cursor - 1) / stride;
        let (block_first, block_last) = (number * stride + 1, (number + 1) * stride);
        if block_last > head {
            scan_events(db, log, cursor, last, |event| {
                events.push(event);
                true
            })?;
            break;
        }
        let block = match blocks.get(number) {
            Some(block) => block,
            None => {
                let mut read = Vec::with_capacity(stride as usize);
                scan_events(db, log, block_first, block_last, |event| {
                    read.push(event);
                    true
                })?;
                let block: super::blocks::Block = read.into();
                blocks.insert(number, block.clone());
                block
            }
        };
        if block.len() as u64 != stride {
            return Err(StoreError::Corrupt {
                key: format!("log cursor {block_first}"),
                reason: format!("a block of {} events instead of {stride}", block.len()),
            });
        }
        let until = last.min(block_last);
        events.extend(
            block[(cursor - block_first) as usize..=(until - block_first) as usize]
                .iter()
                .cloned(),
        );
        cursor = until + 1;
    }
    Ok(events)
}

/// The cursor of the first event recorded at or after `time`, or `head + 1`. Event times never
/// decrease along the log: a binary search over the indexed events finds the stretch of the log
/// to read.
fn first_cursor_at(db: &sled::Db, log: &Log, time: Timestamp, head: u64) -> Result<u64> {
    if head == 0 {
        return Ok(1);
    }
    // Indexed events number 0..=last_indexed; find the last one recorded before `time`.
    let last_indexed = (head - 1) / index::LOG_INDEX_STRIDE;
    let (mut low, mut high) = (0, last_indexed + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        let (cursor, recorded_at) =
            index::indexed_event(db, middle)?.ok_or_else(|| StoreError::Corrupt {
                key: format!("log index entry {middle}"),
                reason: format!("missing below head {head}"),
            })?;
        if recorded_at < time {
            low = middle + 1;
        } else if cursor == 1 {
            return Ok(1);
        } else {
            high = middle;
        }
    }
    if low == 0 {
        return Ok(1);
    }
    let start = 1 + (low - 1) * index::LOG_INDEX_STRIDE;
    let mut found = head + 1;
    scan_events(db, log, start, head, |event| {
        if event.recorded_at >= time {
            found = event.cursor;
            false
        } else {
            true
        }
    })?;
    Ok(found)
}

/// Checks the index's layout version; returns whether the index is new (empty).
fn check_layout(db: &sled::Db) -> Result<bool> {
    match db.get(keys::layout_version())? {
        Some(version) if version == LAYOUT_VERSION => Ok(false),
        Some(version) if version == PREVIOUS_LAYOUT_VERSION => {
            // Natural keys move to canonical addresses and stories get their index: the index
            // is derived from the log, so it is rebuilt from it rather than edited in place. A
            // crash during the rebuild leaves no applied position, so the next start replays
            // the whole log again.
            warn!(
                "the index has layout 2: rebuilding it from the log for layout 3 (canonical \
                 addresses and stories)"
            );
            db.clear()?;
            db.insert(keys::layout_version(), LAYOUT_VERSION)?;
            Ok(true)
        }
        Some(version) => Err(StoreError::Corrupt {
            key: keys::printable(&keys::layout_version()),
            reason: format!(
                "the index has layout version {}, this khabar reads version {}: use the khabar \
                 version that wrote it, or remove the index directory to rebuild it from the log",
                keys::printable(&version),
                keys::printable(LAYOUT_VERSION)
            ),
        }),
        None if db.is_empty() => {
            db.insert(keys::layout_version(), LAYOUT_VERSION)?;
            Ok(true)
        }
        None => Err(StoreError::Corrupt {
            key: keys::printable(&keys::layout_version()),
            reason: "the index directory holds data that khabar did not write".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::article;

    fn open(dir: &std::path::Path) -> SledStore {
        SledStore::open(&SledStoreConfig {
            cache_capacity_bytes: 16 << 20,
            ..SledStoreConfig::new(dir.to_owned())
        })
        .expect("open store")
    }

    #[tokio::test]
    async fn a_failed_sync_stops_writes_but_not_reads() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(DiskFaults::default());
        let config = SledStoreConfig {
            faults: faults.clone(),
            ..SledStoreConfig::new(dir.path().to_owned())
        };
        let store = SledStore::open(&config).unwrap();
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(
                store
                    .ingest(article(n, "alkhabar", &[], 0))
                    .await
                    .unwrap()
                    .id,
            );
        }
        faults.fail(
            crate::store::DiskOperation::LogSync,
            0,
            std::io::ErrorKind::Other,
        );
        let failed = store.ingest(article(3, "alkhabar", &[], 0)).await;
        assert!(
            matches!(&failed, Err(StoreError::Unavailable(why)) if why.contains("syncing the log")),
            "{failed:?}"
        );
        // Every later write is refused with the same reason, without touching the disk.
        faults.clear();
        for refused in [
            store.ingest(article(4, "alkhabar", &[], 0)).await.map(drop),
            store.ensure_consumer("c".into(), 0).await.map(drop),
            store.retract(ids[0], "x".into()).await.map(drop),
        ] {
            assert!(
                matches!(&refused, Err(StoreError::Unavailable(why)) if why.contains("restart khabar")),
                "{refused:?}"
            );
        }
        // What was durable is still read, and only that.
        assert_eq!(*store.durable_head().borrow(), 3);
        for id in &ids {
            store.get(*id, crate::store::View::Released).await.unwrap();
        }
        assert_eq!(store.read_log(0, 10).await.unwrap().len(), 3);
        drop(store);
        let reopened = open(dir.path());
        assert!(*reopened.durable_head().borrow() >= 3);
        for id in &ids {
            reopened
                .get(*id, crate::store::View::Released)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(DiskFaults::default());
        let store = SledStore::open(&SledStoreConfig {
            faults: faults.clone(),
            ..SledStoreConfig::new(dir.path().to_owned())
        })
        .unwrap();
        faults.fail(
            crate::store::DiskOperation::LogWrite,
            0,
            std::io::ErrorKind::StorageFull,
        );
        for n in 0..2 {
            let full = store.ingest(article(n, "alkhabar", &[], 0)).await;
            assert!(
                matches!(&full, Err(StoreError::DiskFull(why)) if why.contains("free space")),
                "{full:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_queue_budget_in_bytes_never_blocks_for_good() {
        let dir = tempfile::tempdir().unwrap();
        // Room for one article and a half: writers wait for each other, none forever, and an
        // article larger than the whole budget still goes through.
        let store = SledStore::open(&SledStoreConfig {
            queued_bytes: 1_000,
            ..SledStoreConfig::new(dir.path().to_owned())
        })
        .unwrap();
        let big = article(0, "alkhabar", &[], 0).edited(|c| c.body = "نص ".repeat(4_000));
        assert!(big.approximate_size() > 10_000);
        store.ingest(big).await.unwrap();
        let writers: Vec<_> = (1..=50)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.ingest(article(n, "alkhabar", &[], 0)).await })
            })
            .collect();
        for writer in writers {
            tokio::time::timeout(std::time::Duration::from_secs(20), writer)
                .await
                .expect("no writer waits forever")
                .unwrap()
                .unwrap();
        }
        assert_eq!(*store.durable_head().borrow(), 51);
        assert_eq!(
            store.inner.queued_bytes.available_permits(),
            store.inner.queued_kib,
            "every share of the budget was given back"
        );
    }

    #[tokio::test]
    async fn a_directory_in_use_is_refused_and_free_again_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path());
        let id = first
            .ingest(article(1, "alkhabar", &[], 0))
            .await
            .unwrap()
            .id;
        let refused = SledStore::open(&SledStoreConfig::new(dir.path().to_owned()))
            .err()
            .expect("a second store on the directory is refused");
        assert!(matches!(refused, StoreError::InUse(_)), "{refused}");
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            entries.len(),
            3,
            "log, index and the lock only: {entries:?}"
        );
        assert!(
            first.get(id, crate::store::View::Released).await.is_ok(),
            "the first store still serves"
        );
        // Reopened at once, as an in-process restart does: sled may still be letting go of the
        // index for a moment, which the open waits out.
        drop(first);
        let reopened = open(dir.path());
        assert!(reopened.get(id, crate::store::View::Released).await.is_ok());
    }

    #[tokio::test]
    async fn refuses_a_directory_with_another_layout() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("index")).unwrap();
            db.insert(keys::layout_version(), &b"99"[..]).unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(&SledStoreConfig::new(dir.path().to_owned()))
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("layout version 99"), "{err}");
    }
}
