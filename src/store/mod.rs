//! Durable storage of articles and of the ordered event log.
//!
//! [`ArticleStore`] is the interface the gRPC layer and the feeds use; [`SledStore`] implements
//! it on an embedded sled database. The interface is transport-free and asynchronous so that a
//! backend on a distributed engine can implement it too.
//!
//! # Guarantees every backend gives
//! - A write is acknowledged (its future resolves `Ok`) only once it is durable: it survives the
//!   process being killed right after the acknowledgement.
//! - Every event-producing write (create, update, retract) appends exactly one [`LogEvent`] with
//!   the next cursor, atomically with the article write. Cursors start at 1 and have no gaps.
//! - [`ArticleStore::durable_head`] only ever shows cursors whose events are durable, so a feed
//!   never serves an event that a crash could take back.

mod blocks;
mod codec;
#[cfg(test)]
mod conformance;
mod dir_lock;
mod faults;
mod index;
mod keys;
mod list;
mod log;
mod migrate;
mod postgres;
mod recent;
mod sled_store;
mod writer;

use std::{future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;
use prost::Message;
use tokio::sync::watch;

use crate::{
    domain::{Article, ArticleId, ContentHash, Timestamp, ValidArticle},
    pb::khabar::v1 as pb,
    wire,
};

pub use faults::{DiskFaults, DiskOperation};
pub use list::{ListOrder, ListQuery, ListedPage, PageToken};
pub use postgres::{PostgresConfig, PostgresStore};
pub use sled_store::{SledStore, SledStoreConfig};

/// Result of the storage layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What an ingest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// New article, version 1, CREATED event logged.
    Created,
    /// Content changed: new version, UPDATED event logged.
    Updated,
    /// Same content and counters: nothing written.
    Unchanged,
    /// Same content, new view count: counter stored, no new version, no event.
    CountersUpdated,
    /// A new version stored durably but held back (embargo in the future, or withheld by the
    /// sender): no event until it is released.
    Held,
    /// The sender canceled the article: retracted as by `retract`.
    Canceled,
}

impl IngestOutcome {
    /// The outcome's name as the API spells it, for logs and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Updated => "UPDATED",
            Self::Unchanged => "UNCHANGED",
            Self::CountersUpdated => "COUNTERS_UPDATED",
            Self::Held => "HELD",
            Self::Canceled => "CANCELED",
        }
    }
}

/// Which version of an article a read sees.
///
/// A version held back (its embargo is in the future, or the sender withheld it) is stored and
/// acknowledged, but has no event in the log until it is released: at its embargo time, or when
/// a later version says usable. Readers see the last released version meanwhile (an article
/// never released is not found), and feeds only ever carry released versions, at their release
/// cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// What readers may see: the last released version.
    #[default]
    Released,
    /// For editors (the admin role): the held version when there is one (its status is
    /// `Withheld`), else the last released version.
    IncludingHeld,
}

/// The acknowledgement of a durable ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReceipt {
    /// Identifier of the article.
    pub id: ArticleId,
    /// Version after the ingest.
    pub version: u64,
    /// What happened.
    pub outcome: IngestOutcome,
    /// Hash of the stored content.
    pub content_hash: ContentHash,
    /// Cursor of the event that produced the current version.
    pub cursor: u64,
    /// Writes made durable together with this one, itself included (the commit group).
    pub group_size: usize,
}

/// A write's answer, told how many writes became durable together with it.
pub(crate) trait Durable {
    /// Records the size of the commit group; most answers have no use for it.
    fn made_durable_with(&mut self, _writes: usize) {}
}

impl Durable for IngestReceipt {
    fn made_durable_with(&mut self, writes: usize) {
        self.group_size = writes;
    }
}

impl Durable for Article {}
impl Durable for Consumer {}
impl Durable for () {}

/// Kind of a logged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An article was stored for the first time.
    Created,
    /// An article's content changed.
    Updated,
    /// An article was retracted.
    Retracted,
}

/// What a feed filter looks at: read from the log record without decoding the article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// The article.
    pub id: ArticleId,
    /// Its version after the change.
    pub version: u64,
    /// Its source id.
    pub source_id: String,
    /// Its language tag.
    pub language: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Whether it starts its story (an article without a story counts as starting its own).
    pub starts_story: bool,
}

/// One entry of the ordered log: the article as it was right after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Position in the log; strictly increasing, no gaps.
    pub cursor: u64,
    /// What happened.
    pub kind: EventKind,
    /// When it was stored.
    pub recorded_at: Timestamp,
    /// Who it is about.
    pub header: EventHeader,
    /// The article right after the change, encoded as `khabar.v1.Article`: the bytes feeds send.
    pub article: Bytes,
}

impl LogEvent {
    /// Decodes the article.
    pub fn decode_article(&self) -> Result<Article> {
        let corrupt = |reason: String| StoreError::Corrupt {
            key: format!("log cursor {}", self.cursor),
            reason,
        };
        let article =
            pb::Article::decode(self.article.clone()).map_err(|e| corrupt(e.to_string()))?;
        wire::article_from_pb(article).map_err(corrupt)
    }

    /// Bytes the event takes in memory, give or take.
    pub fn approximate_size(&self) -> usize {
        let header = &self.header;
        let tags: usize = header.tags.iter().map(|t| t.len() + 24).sum();
        self.article.len() + header.source_id.len() + header.language.len() + tags + 160
    }
}

/// A durable consumer's progress through the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Unique name.
    pub name: String,
    /// Every event up to this cursor has been acknowledged.
    pub acked_cursor: u64,
    /// When the consumer was created.
    pub created_at: Timestamp,
    /// When it last acknowledged, if ever.
    pub acked_at: Option<Timestamp>,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No article has this identifier.
    #[error("article {0} not found")]
    NotFound(ArticleId),
    /// The natural key belongs to a retracted article, which ingest must not revive.
    #[error("article {0} was retracted; a retracted article cannot be ingested again")]
    Retracted(ArticleId),
    /// No durable consumer has this name.
    #[error("consumer {0:?} not found")]
    ConsumerNotFound(String),
    /// A cursor past the end of the log.
    #[error("cursor {cursor} is beyond the head of the log ({head})")]
    CursorBeyondHead {
        /// The cursor asked for.
        cursor: u64,
        /// The highest cursor in the log.
        head: u64,
    },
    /// A page token that this store did not issue for this query.
    #[error("invalid page token: {0}")]
    InvalidPageToken(&'static str),
    /// The storage engine failed; the message says how (engine-specific detail stays here, so
    /// that every backend shares this error type).
    #[error("database error: {0}")]
    Database(String),
    /// Syncing or opening files failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The store was written by a khabar this one cannot read (a newer schema or layout).
    #[error("{0}")]
    Incompatible(String),
    /// A stored record could not be decoded.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// Printable form of the key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The store cannot serve the call now: it stopped accepting writes after a failed write or
    /// sync, is closing, or cannot reach its database. Retrying (here or on another server) is
    /// safe because every write is idempotent.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The connection to the database was lost while a write was committing: it may or may not
    /// have been stored. Retrying is safe because every write is idempotent (ingest by natural
    /// key, retraction, consumer creation and acknowledgement).
    #[error(
        "storage unavailable: {0}; the write may or may not have been stored, and retrying it is \
         safe (ingest is idempotent by source and uri)"
    )]
    OutcomeUnknown(String),
    /// The disk holding the data directory is full; the store stopped accepting writes.
    #[error("{0}")]
    DiskFull(String),
    /// Another process holds the data directory; the message names it.
    #[error("{0}")]
    InUse(String),
}

impl StoreError {
    /// Whether the error says the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Io(e) => e.kind() == std::io::ErrorKind::StorageFull,
            Self::DiskFull(_) => true,
            _ => false,
        }
    }
}

/// A write whose place in the write order is fixed; resolves once the write is durable.
pub type PendingWrite<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// Storage of articles and of the ordered log. Implementations are cheap to clone handles.
pub trait ArticleStore: Clone + Send + Sync + 'static {
    /// Queues a validated article for storage under its natural key (source id, uri). Writes
    /// are applied in the order their `enqueue_ingest` futures resolve, so a caller that awaits
    /// each before queueing the next keeps its own order while many writes are in flight.
    fn enqueue_ingest(
        &self,
        article: ValidArticle,
    ) -> impl Future<Output = Result<PendingWrite<IngestReceipt>>> + Send;

    /// Stores a validated article and resolves once it is durable.
    fn ingest(&self, article: ValidArticle) -> impl Future<Output = Result<IngestReceipt>> + Send {
        async move { self.enqueue_ingest(article).await?.await }
    }

    /// Marks an article retracted and logs a RETRACTED event; idempotent. Resolves once durable.
    fn retract(
        &self,
        id: ArticleId,
        reason: String,
    ) -> impl Future<Output = Result<Article>> + Send;

    /// Reads one article.
    fn get(&self, id: ArticleId, view: View) -> impl Future<Output = Result<Article>> + Send;

    /// Lists articles newest first by publication time.
    fn list(&self, query: ListQuery) -> impl Future<Output = Result<ListedPage>> + Send;

    /// The live (not retracted) articles of a story, oldest first by publication time (then
    /// id); empty when no article belongs to it.
    fn story(&self, story_id: ArticleId) -> impl Future<Output = Result<Vec<Article>>> + Send;

    /// Reads up to `max` durable log events with cursors greater than `after`, in order and
    /// without gaps. Events are shared, so many feeds can hold the same one cheaply.
    fn read_log(
        &self,
        after: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Arc<LogEvent>>>> + Send;

    /// The cursor of the first event recorded at or after `time`, or head + 1 if there is none.
    fn first_cursor_at(&self, time: Timestamp) -> impl Future<Output = Result<u64>> + Send;

    /// Watches the highest durable cursor (0 while the log is empty).
    fn durable_head(&self) -> watch::Receiver<u64>;

    /// Turns true if the store stops taking writes for good (a failed disk); a store that only
    /// ever fails one call at a time never turns it.
    fn writes_stopped(&self) -> watch::Receiver<bool> {
        watch::channel(false).1
    }

    /// The highest durable cursor now. A store shared by several servers asks its database, so
    /// that a cursor acknowledged through another server is already within the head.
    fn head(&self) -> impl Future<Output = Result<u64>> + Send {
        let head = *self.durable_head().borrow();
        async move { Ok(head) }
    }

    /// Returns the named consumer, creating it durably with `acked_cursor = start_after` if it
    /// does not exist yet.
    fn ensure_consumer(
        &self,
        name: String,
        start_after: u64,
    ) -> impl Future<Output = Result<Consumer>> + Send;

    /// Moves a consumer's acknowledged cursor forward (an older cursor changes nothing);
    /// resolves once durable.
    fn ack(&self, name: String, cursor: u64) -> impl Future<Output = Result<Consumer>> + Send;

    /// Reads one consumer.
    fn consumer(&self, name: String) -> impl Future<Output = Result<Consumer>> + Send;

    /// Every consumer, by name.
    fn consumers(&self) -> impl Future<Output = Result<Vec<Consumer>>> + Send;

    /// Deletes a consumer; resolves once durable.
    fn delete_consumer(&self, name: String) -> impl Future<Output = Result<()>> + Send;

    /// Bytes the store occupies on disk (or an estimate, where the engine only has one).
    fn size_on_disk(&self) -> impl Future<Output = Result<u64>> + Send;
}

/// The store `khabar serve` runs on: the embedded one, or PostgreSQL shared by several servers.
#[derive(Clone)]
pub enum AnyStore {
    /// The log and its sled index in a local data directory.
    Embedded(SledStore),
    /// PostgreSQL.
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Which backend this is, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Handles to this store that are alive, this one included.
    fn handles(&self) -> usize {
        match self {
            Self::Embedded(s) => s.handles(),
            Self::Postgres(s) => s.handles(),
        }
    }

    /// Closes the store: waits up to `limit` for the other handles to go (calls and feeds
    /// finishing), then for the writes still queued to be answered; the embedded store then
    /// syncs and checkpoints its index, so that the directory can be opened again at once.
    pub async fn close(self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.handles() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        match self {
            // Dropping joins the write path's threads, which blocks.
            Self::Embedded(store) => {
                let _ = tokio::task::spawn_blocking(move || drop(store)).await;
            }
            Self::Postgres(store) => store.close(limit).await,
        }
    }
}

/// Runs one of the decoders of stored data on `bytes`, as a fuzz target does: nothing a damaged
/// or foreign file can hold may make them panic.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_stored(kind: u8, bytes: &[u8]) {
    let location = log::Location {
        segment: 1,
        offset: log::SEGMENT_HEADER_LEN,
        len: bytes.len() as u32,
    };
    let key = b"k";
    match kind % 9 {
        0 => {
            if let Ok(codec::Record::Event(record)) =
                codec::decode_record(Bytes::copy_from_slice(bytes), location)
            {
                let _ = record.event.decode_article();
            }
        }
        1 => drop(codec::decode_head(key, bytes)),
        2 => drop(codec::decode_consumer(key, bytes)),
        3 => drop(codec::decode_pointer(key, bytes)),
        4 => drop(codec::decode_applied(key, bytes)),
        5 => drop(log::parse_frame(&Bytes::copy_from_slice(bytes))),
        6 => drop(migrate::fuzz_old_records(bytes)),
        7 => drop(list::PageToken::decode(&String::from_utf8_lossy(bytes))),
        _ => {
            if let Ok(article) = pb::Article::decode(bytes) {
                let _ = wire::article_from_pb(article);
            }
        }
    }
}

impl ArticleStore for AnyStore {
    async fn enqueue_ingest(&self, article: ValidArticle) -> Result<PendingWrite<IngestReceipt>> {
        match self {
            Self::Embedded(s) => s.enqueue_ingest(article).await,
            Self::Postgres(s) => s.enqueue_ingest(article).await,
        }
    }

    async fn retract(&self, id: ArticleId, reason: String) -> Result<Article> {
        match self {
            Self::Embedded(s) => s.retract(id, reason).await,
            Self::Postgres(s) => s.retract(id, reason).await,
        }
    }

    async fn get(&self, id: ArticleId, view: View) -> Result<Article> {
        match self {
            Self::Embedded(s) => s.get(id, view).await,
            Self::Postgres(s) => s.get(id, view).await,
        }
    }

    async fn list(&self, query: ListQuery) -> Result<ListedPage> {
        match self {
            Self::Embedded(s) => s.list(query).await,
            Self::Postgres(s) => s.list(query).await,
        }
    }

    async fn story(&self, story_id: ArticleId) -> Result<Vec<Article>> {
        match self {
            Self::Embedded(s) => s.story(story_id).await,
            Self::Postgres(s) => s.story(story_id).await,
        }
    }

    async fn read_log(&self, after: u64, max: usize) -> Result<Vec<Arc<LogEvent>>> {
        match self {
            Self::Embedded(s) => s.read_log(after, max).await,
            Self::Postgres(s) => s.read_log(after, max).await,
        }
    }

    async fn first_cursor_at(&self, time: Timestamp) -> Result<u64> {
        match self {
            Self::Embedded(s) => s.first_cursor_at(time).await,
            Self::Postgres(s) => s.first_cursor_at(time).await,
        }
    }

    fn writes_stopped(&self) -> watch::Receiver<bool> {
        match self {
            Self::Embedded(s) => s.writes_stopped(),
            Self::Postgres(s) => s.writes_stopped(),
        }
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        match self {
            Self::Embedded(s) => s.durable_head(),
            Self::Postgres(s) => s.durable_head(),
        }
    }

    async fn head(&self) -> Result<u64> {
        match self {
            Self::Embedded(s) => s.head().await,
            Self::Postgres(s) => s.head().await,
        }
    }

    async fn ensure_consumer(&self, name: String, start_after: u64) -> Result<Consumer> {
        match self {
            Self::Embedded(s) => s.ensure_consumer(name, start_after).await,
            Self::Postgres(s) => s.ensure_consumer(name, start_after).await,
        }
    }

    async fn ack(&self, name: String, cursor: u64) -> Result<Consumer> {
        match self {
            Self::Embedded(s) => s.ack(name, cursor).await,
            Self::Postgres(s) => s.ack(name, cursor).await,
        }
    }

    async fn consumer(&self, name: String) -> Result<Consumer> {
        match self {
            Self::Embedded(s) => s.consumer(name).await,
            Self::Postgres(s) => s.consumer(name).await,
        }
    }

    async fn consumers(&self) -> Result<Vec<Consumer>> {
        match self {
            Self::Embedded(s) => s.consumers().await,
            Self::Postgres(s) => s.consumers().await,
        }
    }

    async fn delete_consumer(&self, name: String) -> Result<()> {
        match self {
            Self::Embedded(s) => s.delete_consumer(name).await,
            Self::Postgres(s) => s.delete_consumer(name).await,
        }
    }

    async fn size_on_disk(&self) -> Result<u64> {
        match self {
            Self::Embedded(s) => s.size_on_disk().await,
            Self::Postgres(s) => s.size_on_disk().await,
        }
    }
}

/// Opens `bytes` as the only segment of a log and recovers it, as a fuzz target does.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_segment(dir: &std::path::Path, bytes: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(dir).is_err()
        || std::fs::write(dir.join(format!("{:020}.log", 1)), bytes).is_err()
    {
        return;
    }
    if let Ok(log) = log::Log::open(dir) {
        let _ = log.recover(None, |location, payload| {
            codec::decode_record(payload, location).map(drop)
        });
        let _ = log.read_from(log::Position::START, |location, payload| {
            Ok(codec::decode_record(payload, location).is_ok())
        });
    }
}

/// Real stored bytes for the fuzzers' seed corpus: the log frames' payloads, the index's values
/// (with the decoder kinds of [`fuzz_stored`]) and a segment, from a store holding `articles`
/// with a retraction, a view count change and a consumer.
#[cfg(feature = "fuzzing")]
pub(crate) async fn fuzz_seeds(
    dir: &std::path::Path,
    articles: Vec<ValidArticle>,
) -> Result<(Vec<(u8, Vec<u8>)>, Vec<u8>)> {
    let store = SledStore::open(&SledStoreConfig::new(dir.to_owned()))?;
    let mut first = None;
    for article in articles {
        let receipt = store.ingest(article).await?;
        first.get_or_insert(receipt.id);
    }
    if let Some(id) = first {
        store.retract(id, "خطأ في المصدر".into()).await?;
    }
    store.ensure_consumer("indexer".into(), 0).await?;
    store.ack("indexer".into(), 1).await?;
    let page = store
        .list(ListQuery {
            page_size: 1,
            max_page_bytes: 1 << 20,
            ..ListQuery::default()
        })
        .await?;
    drop(store);
    let mut seeds = Vec::new();
    if let Some(token) = page.next_page_token {
        seeds.push((7, token.encode().into_bytes()));
    }
    let segment = std::fs::read(dir.join("log").join(format!("{:020}.log", 1)))?;
    let used = {
        let mut at = log::SEGMENT_HEADER_LEN as usize;
        let bytes = Bytes::from(segment.clone());
        while let Ok((payload, len)) = log::parse_frame(&bytes.slice(at..)) {
            seeds.push((0, payload.to_vec()));
            seeds.push((5, bytes[at..at + len].to_vec()));
            at += len;
        }
        at
    };
    let db = sled::open(dir.join("index"))?;
    for entry in db.iter() {
        let (key, value) = entry?;
        let kind = match key.first() {
            Some(b'a') => 1,
            Some(b'c') => 2,
            Some(b'l') => 3,
            Some(b'm') if key.as_ref() == keys::applied().as_slice() => 4,
            _ => continue,
        };
        seeds.push((kind, value.to_vec()));
    }
    Ok((seeds, segment[..used].to_vec()))
}
