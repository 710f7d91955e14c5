//! Stored records: what the log's frames carry and what the sled index holds. Protobuf messages
//! declared here rather than in `proto/`, because they are a private storage format, free to
//! differ from the API; protobuf keeps old records readable when fields are added, and every
//! record carries a format version so that a later change can migrate or refuse it.
//!
//! The one exception is an event's article: it is stored in the API's own `khabar.v1.Article`
//! encoding, so that feeds send the stored bytes as they are.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::{
    Consumer, EventHeader, EventKind, LogEvent, StoreError, keys::printable, log::Location,
};
use crate::domain::{
    Article, ArticleId, ArticleStatus, ContentHash, StoryLink, Timestamp, editorial::Urgency,
};

/// Format of every record this version writes.
const FORMAT: u32 = 1;

#[derive(Clone, PartialEq, Message)]
struct TimeRecord {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
struct LocationRecord {
    #[prost(uint64, tag = "1")]
    segment: u64,
    #[prost(uint64, tag = "2")]
    offset: u64,
    #[prost(uint32, tag = "3")]
    len: u32,
}

/// Everything about an article but its content; the index's article record.
#[derive(Clone, PartialEq, Message)]
struct HeadRecord {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(bytes = "vec", tag = "2")]
    id: Vec<u8>,
    #[prost(string, tag = "3")]
    source_id: String,
    #[prost(string, tag = "4")]
    uri: String,
    #[prost(string, tag = "5")]
    language: String,
    #[prost(string, repeated, tag = "6")]
    tags: Vec<String>,
    #[prost(message, optional, tag = "7")]
    published_at: Option<TimeRecord>,
    #[prost(uint64, tag = "8")]
    version: u64,
    /// 1 usable, 2 withheld, 3 canceled.
    #[prost(int32, tag = "9")]
    status: i32,
    #[prost(bytes = "vec", tag = "10")]
    content_hash: Vec<u8>,
    #[prost(uint64, tag = "11")]
    view_count: u64,
    #[prost(message, optional, tag = "12")]
    ingested_at: Option<TimeRecord>,
    #[prost(message, optional, tag = "13")]
    first_ingested_at: Option<TimeRecord>,
    #[prost(uint64, tag = "14")]
    cursor: u64,
    /// Where the event that produced the current version is. Absent inside an event record,
    /// which is that event.
    #[prost(message, optional, tag = "15")]
    location: Option<LocationRecord>,
    /// `uri` in canonical form; empty in records written before canonical addresses.
    #[prost(string, tag = "16")]
    canonical_uri: String,
    /// The story's first article; empty in records written before stories (or with them off).
    #[prost(bytes = "vec", tag = "17")]
    story_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "18")]
    duplicate_of: Vec<u8>,
    #[prost(float, tag = "19")]
    similarity: f32,
    /// Editorial urgency 1..=9; 0 when unset and in records written before listings filtered
    /// on it (articles stored before editorial metadata have none).
    #[prost(uint32, tag = "20")]
    urgency: u32,
    /// Genre codes.
    #[prost(string, repeated, tag = "21")]
    genre_codes: Vec<String>,
    /// When the article leaves listings; absent when it never does.
    #[prost(message, optional, tag = "22")]
    expires: Option<TimeRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct EventRecordPb {
    #[prost(uint64, tag = "1")]
    cursor: u64,
    /// 1 created, 2 updated, 3 retracted.
    #[prost(int32, tag = "2")]
    kind: i32,
    #[prost(message, optional, tag = "3")]
    recorded_at: Option<TimeRecord>,
    #[prost(message, optional, tag = "4")]
    head: Option<HeadRecord>,
    /// Set when an update moved the publication time: the time-index entry to remove.
    #[prost(message, optional, tag = "5")]
    previous_published_at: Option<TimeRecord>,
    /// The article after the change, as `khabar.v1.Article`.
    #[prost(bytes = "bytes", tag = "6")]
    article: Bytes,
    /// The story fingerprint of this version (`Fingerprint::to_bytes`); empty when none was
    /// taken (records written before stories, with stories off, and retractions).
    #[prost(bytes = "bytes", tag = "7")]
    fingerprint: Bytes,
    /// The story the article belonged to before this event, when it changed: the story-index
    /// entry to remove.
    #[prost(bytes = "vec", tag = "8")]
    previous_story_id: Vec<u8>,
    /// Set when the event dropped a held version published at another time than the new head:
    /// the held version's time-index entry to remove.
    #[prost(message, optional, tag = "9")]
    dropped_held_published_at: Option<TimeRecord>,
}

/// A version stored without an event: held back (embargoed or withheld), or the retraction of
/// an article that was never released. In the index (under `p` id) without its article bytes,
/// with the location of its log record in the head.
#[derive(Clone, PartialEq, Message)]
struct PendingRecordPb {
    /// The version's head: status withheld (canceled for a retraction), cursor 0, no story.
    #[prost(message, optional, tag = "1")]
    head: Option<HeadRecord>,
    /// 1 embargoed until `until`, 2 withheld, 3 retracted without an event.
    #[prost(int32, tag = "2")]
    state: i32,
    #[prost(message, optional, tag = "3")]
    until: Option<TimeRecord>,
    /// The version as `khabar.v1.Article`; empty in the index.
    #[prost(bytes = "bytes", tag = "4")]
    article: Bytes,
    /// The publication time of the held version this one replaces, when its time-index entry
    /// is to be removed.
    #[prost(message, optional, tag = "5")]
    previous_published_at: Option<TimeRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct ConsumerRecord {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(uint64, tag = "3")]
    acked_cursor: u64,
    #[prost(message, optional, tag = "4")]
    created_at: Option<TimeRecord>,
    #[prost(message, optional, tag = "5")]
    acked_at: Option<TimeRecord>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Body {
    #[prost(message, tag = "2")]
    Event(EventRecordPb),
    #[prost(message, tag = "3")]
    Counters(HeadRecord),
    #[prost(message, tag = "4")]
    ConsumerPut(ConsumerRecord),
    #[prost(string, tag = "5")]
    ConsumerDeleted(String),
    #[prost(message, tag = "6")]
    Pending(PendingRecordPb),
}

#[derive(Clone, PartialEq, Message)]
struct LogRecord {
    #[prost(uint32, tag = "1")]
    format: u32,
    #[prost(oneof = "Body", tags = "2, 3, 4, 5, 6")]
    body: Option<Body>,
}

/// An article without its content, as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleHead {
    /// Identifier.
    pub id: ArticleId,
    /// Source id (half of the natural key; a filter).
    pub source_id: String,
    /// Uri (the other half).
    pub uri: String,
    /// Language tag (a filter).
    pub language: String,
    /// Tags (a filter).
    pub tags: Vec<String>,
    /// Publication time (the listing order).
    pub published_at: Timestamp,
    /// Current version.
    pub version: u64,
    /// Current status.
    pub status: ArticleStatus,
    /// Hash of the current content.
    pub content_hash: ContentHash,
    /// Latest view count, which may be newer than the event's.
    pub view_count: u64,
    /// When the current version was stored.
    pub ingested_at: Timestamp,
    /// When the first version was stored.
    pub first_ingested_at: Timestamp,
    /// Cursor of the event that produced the current version.
    pub cursor: u64,
    /// Where that event's record is in the log.
    pub location: Location,
    /// `uri` in canonical form (the natural key's second half); computed from `uri` for a
    /// record written before canonical addresses.
    pub canonical_uri: String,
    /// The article's story; `None` for an article stored before stories or with them off.
    pub story: Option<StoryLink>,
    /// Editorial urgency (a listing filter and order); `None` when unset.
    pub urgency: Option<Urgency>,
    /// Genre codes (a listing filter).
    pub genre_codes: Vec<String>,
    /// When the article leaves listings.
    pub expires: Option<Timestamp>,
}

impl ArticleHead {
    /// The head of `article` as logged at `cursor`; its location is set once the record is
    /// appended.
    pub fn of(article: &Article, cursor: u64) -> Self {
        let content = &article.content;
        Self {
            id: article.id,
            source_id: content.source.id.clone(),
            uri: content.uri.clone(),
            language: content.language.clone(),
            tags: content.tags.clone(),
            published_at: content.published_at,
            version: article.version,
            status: article.status,
            content_hash: article.content_hash,
            view_count: article.view_count,
            ingested_at: article.ingested_at,
            first_ingested_at: article.first_ingested_at,
            cursor,
            location: Location {
                segment: 0,
                offset: 0,
                len: 0,
            },
            canonical_uri: article.canonical_uri.clone(),
            story: article.story,
            urgency: content.editorial.urgency,
            genre_codes: content.editorial.genre_codes(),
            expires: content.editorial.expires,
        }
    }

    /// The story the article is filed under in the story index: its own when it has none.
    pub fn story_id(&self) -> ArticleId {
        self.story.map_or(self.id, |s| s.story_id)
    }

    /// Whether the article starts its story (one without a story counts as its own).
    pub fn starts_story(&self) -> bool {
        self.story_id() == self.id
    }
}

/// An event as logged, with what the index needs from it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// The event as feeds serve it.
    pub event: Arc<LogEvent>,
    /// The article's index record after the event.
    pub head: ArticleHead,
    /// The publication time before an update that moved it.
    pub previous_published_at: Option<Timestamp>,
    /// The version's story fingerprint bytes; empty when none was taken.
    pub fingerprint: Bytes,
    /// The story the article was filed under before an update that moved it.
    pub previous_story_id: Option<ArticleId>,
    /// The publication time of a held version the event dropped, when it differs from the
    /// head's: that version's time-index entry to remove.
    pub dropped_held_published_at: Option<Timestamp>,
}

/// Why a version waits without an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldState {
    /// Released at this time.
    Embargoed(Timestamp),
    /// Until a later version says usable.
    Withheld,
    /// Not waiting: the article was retracted before any version was released, so no event
    /// was ever logged for it.
    Retracted,
}

/// A version stored without an event (see [`HeldState`]).
#[derive(Debug, Clone)]
pub struct PendingRecord {
    /// The version's head: cursor 0, no story; its location is the pending record's own.
    pub head: ArticleHead,
    /// Why it waits.
    pub state: HeldState,
    /// The version as `khabar.v1.Article` (status withheld, or canceled); empty when read from
    /// the index.
    pub article: Bytes,
    /// The publication time of the held version it replaces, when that version's time-index
    /// entry is to be removed.
    pub previous_published_at: Option<Timestamp>,
}

impl PendingRecord {
    /// Whether the version waits for release (rather than recording a retraction).
    pub fn is_held(&self) -> bool {
        self.state != HeldState::Retracted
    }

    /// The embargo time, for a version held until one.
    pub fn until(&self) -> Option<Timestamp> {
        match self.state {
            HeldState::Embargoed(until) => Some(until),
            HeldState::Withheld | HeldState::Retracted => None,
        }
    }
}

/// One record of the log.
#[derive(Debug, Clone)]
pub enum Record {
    /// An article changed; the event feeds serve.
    Event(EventRecord),
    /// An article's view count changed (no event).
    Counters(ArticleHead),
    /// A durable consumer was created or moved forward.
    ConsumerPut(Consumer),
    /// A durable consumer was deleted.
    ConsumerDeleted(String),
    /// A version was stored without an event.
    Pending(PendingRecord),
}

fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn time_record(t: Timestamp) -> TimeRecord {
    TimeRecord {
        seconds: t.seconds(),
        // Always < 1e9, so it fits.
        nanos: t.nanos() as i32,
    }
}

fn timestamp(record: Option<TimeRecord>) -> Result<Timestamp, String> {
    let record = record.ok_or("missing timestamp")?;
    Timestamp::new(record.seconds, record.nanos).ok_or_else(|| "timestamp out of range".to_owned())
}

fn optional_timestamp(record: Option<TimeRecord>) -> Result<Option<Timestamp>, String> {
    record.map(|r| timestamp(Some(r))).transpose()
}

fn kind_code(kind: EventKind) -> i32 {
    match kind {
        EventKind::Created => 1,
        EventKind::Updated => 2,
        EventKind::Retracted => 3,
    }
}

fn status_code(status: ArticleStatus) -> i32 {
    match status {
        ArticleStatus::Usable => 1,
        ArticleStatus::Withheld => 2,
        ArticleStatus::Canceled => 3,
    }
}

fn check_format(format: u32) -> Result<(), String> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(format!(
            "record format {format}; this khabar reads format {FORMAT}: use the khabar version \
             that wrote it"
        ))
    }
}

fn location_record(location: Location) -> LocationRecord {
    LocationRecord {
        segment: location.segment,
        offset: location.offset,
        len: location.len,
    }
}

fn head_record(head: &ArticleHead, with_location: bool) -> HeadRecord {
    let ArticleHead {
        id,
        source_id,
        uri,
        language,
        tags,
        published_at,
        version,
        status,
        content_hash,
        view_count,
        ingested_at,
        first_ingested_at,
        cursor,
        location,
        canonical_uri,
        story,
        urgency,
        genre_codes,
        expires,
    } = head;
    HeadRecord {
        format: FORMAT,
        id: id.to_bytes().to_vec(),
        source_id: source_id.clone(),
        uri: uri.clone(),
        language: language.clone(),
        tags: tags.clone(),
        published_at: Some(time_record(*published_at)),
        version: *version,
        status: status_code(*status),
        content_hash: content_hash.0.to_vec(),
        view_count: *view_count,
        ingested_at: Some(time_record(*ingested_at)),
        first_ingested_at: Some(time_record(*first_ingested_at)),
        cursor: *cursor,
        location: with_location.then(|| location_record(*location)),
        canonical_uri: canonical_uri.clone(),
        story_id: story
            .map(|s| s.story_id.to_bytes().to_vec())
            .unwrap_or_default(),
        duplicate_of: story
            .and_then(|s| s.duplicate_of)
            .map(|d| d.to_bytes().to_vec())
            .unwrap_or_default(),
        similarity: story.map_or(0.0, |s| s.similarity),
        urgency: urgency.map_or(0, |u| u32::from(u.get())),
        genre_codes: genre_codes.clone(),
        expires: expires.map(time_record),
    }
}

/// An optional id field: empty means none.
fn optional_id(bytes: Vec<u8>, field: &str) -> Result<Option<ArticleId>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let id: [u8; ArticleId::LEN] = bytes
        .try_into()
        .map_err(|_| format!("{field} is not 16 bytes"))?;
    Ok(Some(ArticleId::from_bytes(id)))
}

fn head_from_record(
    record: HeadRecord,
    own_location: Option<Location>,
) -> Result<ArticleHead, String> {
    let HeadRecord {
        format,
        id,
        source_id,
        uri,
        language,
        tags,
        published_at,
        version,
        status,
        content_hash,
        view_count,
        ingested_at,
        first_ingested_at,
        cursor,
        location,
        canonical_uri,
        story_id,
        duplicate_of,
        similarity,
        urgency,
        genre_codes,
        expires,
    } = record;
    check_format(format)?;
    let story = optional_id(story_id, "story id")?
        .map(|story_id| {
            Ok::<_, String>(StoryLink {
                story_id,
                duplicate_of: optional_id(duplicate_of, "duplicate_of")?,
                similarity,
            })
        })
        .transpose()?;
    // Records written before canonical addresses have none: it is a pure function of `uri`.
    let canonical_uri = if canonical_uri.is_empty() {
        crate::domain::canonical_uri(&uri)
    } else {
        canonical_uri
    };
    let id: [u8; ArticleId::LEN] = id.try_into().map_err(|_| "id is not 16 bytes")?;
    let content_hash: [u8; 32] = content_hash
        .try_into()
        .map_err(|_| "content hash is not 32 bytes")?;
    let location = match (location, own_location) {
        (Some(l), _) => Location {
            segment: l.segment,
            offset: l.offset,
            len: l.len,
        },
        (None, Some(own)) => own,
        (None, None) => return Err("article record without the location of its content".into()),
    };
    Ok(ArticleHead {
        id: ArticleId::from_bytes(id),
        source_id,
        uri,
        language,
        tags,
        published_at: timestamp(published_at)?,
        version,
        status: match status {
            1 => ArticleStatus::Usable,
            2 => ArticleStatus::Withheld,
            3 => ArticleStatus::Canceled,
            other => return Err(format!("unknown status {other}")),
        },
        content_hash: ContentHash(content_hash),
        view_count,
        ingested_at: timestamp(ingested_at)?,
        first_ingested_at: timestamp(first_ingested_at)?,
        cursor,
        location,
        canonical_uri,
        story,
        urgency: match urgency {
            0 => None,
            other => Some(Urgency::new(other).ok_or_else(|| format!("urgency {other}"))?),
        },
        genre_codes,
        expires: optional_timestamp(expires)?,
    })
}

fn consumer_record(consumer: &Consumer) -> ConsumerRecord {
    ConsumerRecord {
        format: FORMAT,
        name: consumer.name.clone(),
        acked_cursor: consumer.acked_cursor,
        created_at: Some(time_record(consumer.created_at)),
        acked_at: consumer.acked_at.map(time_record),
    }
}

fn consumer_from_record(record: ConsumerRecord) -> Result<Consumer, String> {
    check_format(record.format)?;
    Ok(Consumer {
        name: record.name,
        acked_cursor: record.acked_cursor,
        created_at: timestamp(record.created_at)?,
        acked_at: optional_timestamp(record.acked_at)?,
    })
}

/// The log record of `record`, ready to be framed.
pub fn log_record(record: &Record) -> impl Message {
    let body = match record {
        Record::Event(EventRecord {
            event,
            head,
            previous_published_at,
            fingerprint,
            previous_story_id,
            dropped_held_published_at,
        }) => Body::Event(EventRecordPb {
            cursor: event.cursor,
            kind: kind_code(event.kind),
            recorded_at: Some(time_record(event.recorded_at)),
            head: Some(head_record(head, false)),
            previous_published_at: previous_published_at.map(time_record),
            article: event.article.clone(),
            fingerprint: fingerprint.clone(),
            previous_story_id: previous_story_id
                .map(|id| id.to_bytes().to_vec())
                .unwrap_or_default(),
            dropped_held_published_at: dropped_held_published_at.map(time_record),
        }),
        Record::Counters(head) => Body::Counters(head_record(head, true)),
        Record::Pending(pending) => Body::Pending(pending_record(pending, false)),
        Record::ConsumerPut(consumer) => Body::ConsumerPut(consumer_record(consumer)),
        Record::ConsumerDeleted(name) => Body::ConsumerDeleted(name.clone()),
    };
    LogRecord {
        format: FORMAT,
        body: Some(body),
    }
}

/// Decodes the record framed at `location`. The article bytes of an event share `payload`'s
/// buffer rather than being copied.
pub fn decode_record(payload: Bytes, location: Location) -> Result<Record, StoreError> {
    let key = || {
        format!(
            "log segment {} offset {}",
            location.segment, location.offset
        )
    };
    let record = LogRecord::decode(payload).map_err(|e| corrupt(&key(), e.to_string()))?;
    check_format(record.format).map_err(|reason| corrupt(&key(), reason))?;
    let body = record
        .body
        .ok_or_else(|| corrupt(&key(), "record of an unknown kind"))?;
    let decoded = match body {
        Body::Event(event) => event_from_record(event, location).map(Record::Event),
        Body::Counters(head) => head_from_record(head, None).map(Record::Counters),
        Body::ConsumerPut(consumer) => consumer_from_record(consumer).map(Record::ConsumerPut),
        Body::ConsumerDeleted(name) => Ok(Record::ConsumerDeleted(name)),
        Body::Pending(pending) => pending_from_record(pending, Some(location)).map(Record::Pending),
    };
    decoded.map_err(|reason| corrupt(&key(), reason))
}

fn event_from_record(record: EventRecordPb, location: Location) -> Result<EventRecord, String> {
    let EventRecordPb {
        cursor,
        kind,
        recorded_at,
        head,
        previous_published_at,
        article,
        fingerprint,
        previous_story_id,
        dropped_held_published_at,
    } = record;
    let kind = match kind {
        1 => EventKind::Created,
        2 => EventKind::Updated,
        3 => EventKind::Retracted,
        other => return Err(format!("unknown event kind {other}")),
    };
    let head = head_from_record(
        head.ok_or("event without its article record")?,
        Some(location),
    )?;
    if head.cursor != cursor {
        return Err(format!(
            "event {cursor} carries an article record of event {}",
            head.cursor
        ));
    }
    let event = LogEvent {
        cursor,
        kind,
        recorded_at: timestamp(recorded_at)?,
        header: EventHeader {
            id: head.id,
            version: head.version,
            source_id: head.source_id.clone(),
            language: head.language.clone(),
            tags: head.tags.clone(),
            starts_story: head.starts_story(),
        },
        article,
    };
    Ok(EventRecord {
        event: Arc::new(event),
        head,
        previous_published_at: optional_timestamp(previous_published_at)?,
        fingerprint,
        previous_story_id: optional_id(previous_story_id, "previous story id")?,
        dropped_held_published_at: optional_timestamp(dropped_held_published_at)?,
    })
}

/// The stored form of `pending`: in the index (`in_index`) with the location in its head and
/// without the article bytes; in the log with the bytes and without the location (its own).
fn pending_record(pending: &PendingRecord, in_index: bool) -> PendingRecordPb {
    let (state, until) = match pending.state {
        HeldState::Embargoed(until) => (1, Some(time_record(until))),
        HeldState::Withheld => (2, None),
        HeldState::Retracted => (3, None),
    };
    PendingRecordPb {
        head: Some(head_record(&pending.head, in_index)),
        state,
        until,
        article: if in_index {
            Bytes::new()
        } else {
            pending.article.clone()
        },
        previous_published_at: pending.previous_published_at.map(time_record),
    }
}

fn pending_from_record(
    record: PendingRecordPb,
    own_location: Option<Location>,
) -> Result<PendingRecord, String> {
    let PendingRecordPb {
        head,
        state,
        until,
        article,
        previous_published_at,
    } = record;
    let head = head_from_record(
        head.ok_or("pending version without its head")?,
        own_location,
    )?;
    let state = match state {
        1 => HeldState::Embargoed(timestamp(until)?),
        2 => HeldState::Withheld,
        3 => HeldState::Retracted,
        other => return Err(format!("unknown pending state {other}")),
    };
    Ok(PendingRecord {
        head,
        state,
        article,
        previous_published_at: optional_timestamp(previous_published_at)?,
    })
}

/// Encodes a pending version for the index.
pub fn encode_pending(pending: &PendingRecord) -> Vec<u8> {
    pending_record(pending, true).encode_to_vec()
}

/// Decodes the pending version stored under `key`.
pub fn decode_pending(key: &[u8], bytes: &[u8]) -> Result<PendingRecord, StoreError> {
    let record =
        PendingRecordPb::decode(bytes).map_err(|e| corrupt(&printable(key), e.to_string()))?;
    pending_from_record(record, None).map_err(|reason| corrupt(&printable(key), reason))
}

/// Encodes an article head for the index.
pub fn encode_head(head: &ArticleHead) -> Vec<u8> {
    head_record(head, true).encode_to_vec()
}

/// Decodes the head stored under `key`.
pub fn decode_head(key: &[u8], bytes: &[u8]) -> Result<ArticleHead, StoreError> {
    let record = HeadRecord::decode(bytes).map_err(|e| corrupt(&printable(key), e.to_string()))?;
    head_from_record(record, None).map_err(|reason| corrupt(&printable(key), reason))
}

/// Encodes a consumer for the index.
pub fn encode_consumer(consumer: &Consumer) -> Vec<u8> {
    consumer_record(consumer).encode_to_vec()
}

/// Decodes the consumer stored under `key`.
pub fn decode_consumer(key: &[u8], bytes: &[u8]) -> Result<Consumer, StoreError> {
    let record =
        ConsumerRecord::decode(bytes).map_err(|e| corrupt(&printable(key), e.to_string()))?;
    consumer_from_record(record).map_err(|reason| corrupt(&printable(key), reason))
}

const POINTER_LEN: usize = 1 + 8 + 8 + 4 + Timestamp::SORTABLE_LEN;
const APPLIED_LEN: usize = 1 + 8 + 8 + 4 + 8 + Timestamp::SORTABLE_LEN;

/// Encodes where an event is and when it was recorded (the log index's value).
pub fn encode_pointer(location: Location, recorded_at: Timestamp) -> [u8; POINTER_LEN] {
    let mut out = [0; POINTER_LEN];
    // Fixed-width: the index reads these in binary searches.
    out[0] = FORMAT as u8;
    out[1..9].copy_from_slice(&location.segment.to_be_bytes());
    out[9..17].copy_from_slice(&location.offset.to_be_bytes());
    out[17..21].copy_from_slice(&location.len.to_be_bytes());
    out[21..].copy_from_slice(&recorded_at.to_sortable_bytes());
    out
}

/// Decodes [`encode_pointer`].
pub fn decode_pointer(key: &[u8], bytes: &[u8]) -> Result<(Location, Timestamp), StoreError> {
    let bad = |reason: &str| corrupt(&printable(key), reason);
    if bytes.len() != POINTER_LEN || u32::from(bytes[0]) != FORMAT {
        return Err(bad("log pointer of an unknown format"));
    }
    let number = |range: std::ops::Range<usize>| {
        let mut b = [0; 8];
        b[8 - range.len()..].copy_from_slice(&bytes[range]);
        u64::from_be_bytes(b)
    };
    let recorded_at =
        Timestamp::from_sortable_bytes(&bytes[21..]).ok_or_else(|| bad("bad time"))?;
    Ok((
        Location {
            segment: number(1..9),
            offset: number(9..17),
            len: number(17..21) as u32,
        },
        recorded_at,
    ))
}

/// How far the index has applied the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The last log record applied.
    pub last: Location,
    /// The last event's cursor (0 before the first event).
    pub head: u64,
    /// The last event's time.
    pub head_recorded_at: Timestamp,
}

/// Encodes [`Applied`].
pub fn encode_applied(applied: &Applied) -> [u8; APPLIED_LEN] {
    let mut out = [0; APPLIED_LEN];
    out[0] = FORMAT as u8;
    out[1..9].copy_from_slice(&applied.last.segment.to_be_bytes());
    out[9..17].copy_from_slice(&applied.last.offset.to_be_bytes());
    out[17..21].copy_from_slice(&applied.last.len.to_be_bytes());
    out[21..29].copy_from_slice(&applied.head.to_be_bytes());
    out[29..].copy_from_slice(&applied.head_recorded_at.to_sortable_bytes());
    out
}

/// Decodes [`encode_applied`].
pub fn decode_applied(key: &[u8], bytes: &[u8]) -> Result<Applied, StoreError> {
    let bad = |reason: &str| corrupt(&printable(key), reason);
    if bytes.len() != APPLIED_LEN || u32::from(bytes[0]) != FORMAT {
        return Err(bad("applied position of an unknown format"));
    }
    let number = |range: std::ops::Range<usize>| {
        let mut b = [0; 8];
        b[8 - range.len()..].copy_from_slice(&bytes[range]);
        u64::from_be_bytes(b)
    };
    Ok(Applied {
        last: Location {
            segment: number(1..9),
            offset: number(9..17),
            len: number(17..21) as u32,
        },
        head: number(21..29),
        head_recorded_at: Timestamp::from_sortable_bytes(&bytes[29..])
            .ok_or_else(|| bad("bad time"))?,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::ArticleId;

    pub fn head(location: Location) -> ArticleHead {
        ArticleHead {
            id: ArticleId::from_bytes([3; 16]),
            source_id: "alkhabar".into(),
            uri: "https://alkhabar.example/1".into(),
            language: "ar".into(),
            tags: vec!["سوريا".into(), "البوكمال".into()],
            published_at: Timestamp::new(1_467_363_600, 12).unwrap(),
            version: 2,
            status: ArticleStatus::Canceled,
            content_hash: ContentHash([9; 32]),
            view_count: 182,
            ingested_at: Timestamp::new(1_800_000_000, 5).unwrap(),
            first_ingested_at: Timestamp::new(1_700_000_000, 0).unwrap(),
            cursor: 77,
            location,
            canonical_uri: "https://alkhabar.example/1".into(),
            story: Some(StoryLink {
                story_id: ArticleId::from_bytes([1; 16]),
                duplicate_of: Some(ArticleId::from_bytes([1; 16])),
                similarity: 0.8,
            }),
            urgency: Urgency::new(3),
            genre_codes: vec!["genre:Analysis".into()],
            expires: Timestamp::new(1_900_000_000, 0),
        }
    }

    const AT: Location = Location {
        segment: 4,
        offset: 1234,
        len: 5000,
    };

    fn framed(record: &Record) -> Bytes {
        Bytes::from(log_record(record).encode_to_vec())
    }

    #[test]
    fn event_records_round_trip_and_share_the_article_bytes() {
        let head = head(AT);
        let article = Bytes::from_static("مقال".as_bytes());
        let event = LogEvent {
            cursor: 77,
            kind: EventKind::Retracted,
            recorded_at: Timestamp::new(1_800_000_002, 9).unwrap(),
            header: EventHeader {
                id: head.id,
                version: head.version,
                source_id: head.source_id.clone(),
                language: head.language.clone(),
                tags: head.tags.clone(),
                starts_story: false,
            },
            article,
        };
        let record = Record::Event(EventRecord {
            event: Arc::new(event.clone()),
            head: head.clone(),
            previous_published_at: Some(Timestamp::new(1, 0).unwrap()),
            fingerprint: Bytes::from_static(&[1, 2, 3]),
            previous_story_id: Some(ArticleId::from_bytes([5; 16])),
            dropped_held_published_at: Some(Timestamp::new(2, 0).unwrap()),
        });
        let payload = framed(&record);
        let Record::Event(decoded) = decode_record(payload.clone(), AT).unwrap() else {
            panic!("an event");
        };
        assert_eq!(*decoded.event, event);
        assert_eq!(decoded.head, head, "the location is the frame's own");
        assert_eq!(decoded.previous_published_at, Timestamp::new(1, 0));
        assert_eq!(decoded.fingerprint.as_ref(), &[1, 2, 3]);
        assert_eq!(
            decoded.previous_story_id,
            Some(ArticleId::from_bytes([5; 16]))
        );
        assert_eq!(decoded.dropped_held_published_at, Timestamp::new(2, 0));
        let inside = payload.as_ptr_range();
        assert!(
            inside.contains(&decoded.event.article.as_ptr()),
            "article bytes are a slice of the payload, not a copy"
        );
    }

    #[test]
    fn other_records_round_trip() {
        let consumer = Consumer {
            name: "search-indexer".into(),
            acked_cursor: 42,
            created_at: Timestamp::new(1_800_000_000, 1).unwrap(),
            acked_at: Some(Timestamp::new(1_800_000_100, 2).unwrap()),
        };
        let elsewhere = Location {
            segment: 1,
            offset: 16,
            len: 99,
        };
        match decode_record(framed(&Record::Counters(head(elsewhere))), AT).unwrap() {
            Record::Counters(decoded) => assert_eq!(decoded, head(elsewhere)),
            other => panic!("{other:?}"),
        }
        match decode_record(framed(&Record::ConsumerPut(consumer.clone())), AT).unwrap() {
            Record::ConsumerPut(decoded) => assert_eq!(decoded, consumer),
            other => panic!("{other:?}"),
        }
        match decode_record(framed(&Record::ConsumerDeleted("x".into())), AT).unwrap() {
            Record::ConsumerDeleted(name) => assert_eq!(name, "x"),
            other => panic!("{other:?}"),
        }
        let key = b"cx";
        assert_eq!(
            decode_consumer(key, &encode_consumer(&consumer)).unwrap(),
            consumer
        );
        assert_eq!(decode_head(key, &encode_head(&head(AT))).unwrap(), head(AT));
        // A head written before canonical addresses and stories reads back with the canonical
        // form computed and no story.
        let mut old = head_record(&head(AT), true);
        old.canonical_uri.clear();
        old.story_id.clear();
        old.duplicate_of.clear();
        old.urgency = 0;
        old.genre_codes.clear();
        old.expires = None;
        old.uri = "https://www.alkhabar.example/1/?utm_source=x".into();
        let decoded = decode_head(key, &old.encode_to_vec()).unwrap();
        assert_eq!(decoded.canonical_uri, "https://alkhabar.example/1");
        assert_eq!(decoded.story, None);
        assert!(decoded.starts_story());
        // ... and, written before listings filtered on editorial metadata, none of it.
        assert_eq!(
            (decoded.urgency, decoded.genre_codes, decoded.expires),
            (None, vec![], None)
        );
    }

    #[test]
    fn pending_records_round_trip_in_the_log_and_in_the_index() {
        let mut held = head(AT);
        held.cursor = 0;
        held.story = None;
        held.status = ArticleStatus::Withheld;
        let until = Timestamp::new(1_800_000_300, 0).unwrap();
        for state in [
            HeldState::Embargoed(until),
            HeldState::Withheld,
            HeldState::Retracted,
        ] {
            let pending = PendingRecord {
                head: held.clone(),
                state,
                article: Bytes::from_static(b"held"),
                previous_published_at: Some(Timestamp::new(3, 0).unwrap()),
            };
            let Record::Pending(decoded) =
                decode_record(framed(&Record::Pending(pending.clone())), AT).unwrap()
            else {
                panic!("a pending record");
            };
            assert_eq!(decoded.head, held, "the location is the frame's own");
            assert_eq!(decoded.state, state);
            assert_eq!(decoded.article.as_ref(), b"held");
            assert_eq!(decoded.previous_published_at, Timestamp::new(3, 0));
            assert_eq!(
                decoded.until(),
                (state == HeldState::Embargoed(until)).then_some(until)
            );
            let indexed = decode_pending(b"p", &encode_pending(&pending)).unwrap();
            assert_eq!(indexed.head, held);
            assert_eq!(indexed.state, state);
            assert!(indexed.article.is_empty(), "the index keeps no content");
        }
    }

    #[test]
    fn pointers_and_positions_round_trip() {
        let at = Timestamp::new(1_800_000_000, 7).unwrap();
        assert_eq!(
            decode_pointer(b"l", &encode_pointer(AT, at)).unwrap(),
            (AT, at)
        );
        let applied = Applied {
            last: AT,
            head: 77,
            head_recorded_at: at,
        };
        assert_eq!(
            decode_applied(b"m", &encode_applied(&applied)).unwrap(),
            applied
        );
        assert!(decode_pointer(b"l", &[2; POINTER_LEN]).is_err());
        assert!(decode_applied(b"m", b"short").is_err());
    }

    #[test]
    fn garbage_and_future_formats_are_reported_as_corrupt() {
        let err = decode_record(Bytes::from_static(b"\xff\xff\xff"), AT).unwrap_err();
        assert!(err.to_string().contains("offset 1234"), "{err}");
        let future = LogRecord {
            format: 9,
            body: Some(Body::ConsumerDeleted("x".into())),
        };
        let err = decode_record(Bytes::from(future.encode_to_vec()), AT).unwrap_err();
        assert!(err.to_string().contains("record format 9"), "{err}");
        let mut record = head_record(&head(AT), true);
        record.status = 9;
        let err = decode_head(b"a", &record.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("unknown status 9"), "{err}");
    }
}
