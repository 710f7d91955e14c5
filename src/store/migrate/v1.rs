//! Records of the first data directory layout (sled alone), read once to migrate them.

use prost::Message;

use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, InfoSource, Retraction,
        Source, Timestamp,
    },
    store::{Consumer, EventKind, StoreError, keys},
};

/// An event of the first layout, decoded.
pub struct LogEvent {
    pub cursor: u64,
    pub kind: EventKind,
    pub recorded_at: Timestamp,
    pub article: Article,
}

#[derive(Clone, PartialEq, Message)]
struct TimeRecord {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
struct InfoSourceRecord {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    uri: String,
    #[prost(string, tag = "3")]
    role: String,
}

#[derive(Clone, PartialEq, Message)]
struct ContentRecord {
    #[prost(string, tag = "1")]
    source_id: String,
    #[prost(string, tag = "2")]
    source_name: String,
    #[prost(string, tag = "3")]
    source_url: String,
    #[prost(string, tag = "4")]
    uri: String,
    #[prost(string, tag = "5")]
    headline: String,
    #[prost(string, tag = "6")]
    summary: String,
    #[prost(string, tag = "7")]
    body: String,
    #[prost(string, tag = "8")]
    language: String,
    #[prost(message, optional, tag = "9")]
    published_at: Option<TimeRecord>,
    #[prost(message, optional, tag = "10")]
    updated_at: Option<TimeRecord>,
    #[prost(string, repeated, tag = "11")]
    authors: Vec<String>,
    #[prost(string, tag = "12")]
    section: String,
    #[prost(string, repeated, tag = "13")]
    tags: Vec<String>,
    #[prost(string, repeated, tag = "14")]
    places: Vec<String>,
    #[prost(string, repeated, tag = "15")]
    organisations: Vec<String>,
    #[prost(string, repeated, tag = "16")]
    people: Vec<String>,
    #[prost(message, repeated, tag = "17")]
    info_sources: Vec<InfoSourceRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct RetractionRecord {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(message, optional, tag = "2")]
    retracted_at: Option<TimeRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct ArticleRecord {
    #[prost(bytes = "vec", tag = "1")]
    id: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    content: Option<ContentRecord>,
    #[prost(uint64, tag = "3")]
    view_count: u64,
    #[prost(uint64, tag = "4")]
    version: u64,
    /// 1 usable, 2 withheld, 3 canceled.
    #[prost(int32, tag = "5")]
    status: i32,
    #[prost(bytes = "vec", tag = "6")]
    content_hash: Vec<u8>,
    #[prost(message, optional, tag = "7")]
    ingested_at: Option<TimeRecord>,
    #[prost(message, optional, tag = "8")]
    first_ingested_at: Option<TimeRecord>,
    #[prost(uint64, tag = "9")]
    cursor: u64,
    #[prost(message, optional, tag = "10")]
    retraction: Option<RetractionRecord>,
}

/// An event as written. `article` holds an encoded [`ArticleRecord`]: a bytes field is
/// wire-compatible with an embedded message, and the writer has those bytes already.
#[derive(Clone, PartialEq, Message)]
struct EventRecord {
    /// 1 created, 2 updated, 3 retracted.
    #[prost(int32, tag = "1")]
    kind: i32,
    #[prost(message, optional, tag = "2")]
    recorded_at: Option<TimeRecord>,
    #[prost(bytes = "vec", tag = "3")]
    article: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ConsumerRecord {
    #[prost(uint64, tag = "1")]
    acked_cursor: u64,
    #[prost(message, optional, tag = "2")]
    created_at: Option<TimeRecord>,
    #[prost(message, optional, tag = "3")]
    acked_at: Option<TimeRecord>,
}

/// Decodes the consumer stored under `key`.
pub fn decode_consumer(key: &[u8], bytes: &[u8]) -> Result<Consumer, StoreError> {
    let name = keys::consumer_name(key).ok_or_else(|| corrupt(key, "not a consumer key".into()))?;
    let record = ConsumerRecord::decode(bytes).map_err(|e| corrupt(key, e.to_string()))?;
    Ok(Consumer {
        name: name.to_owned(),
        acked_cursor: record.acked_cursor,
        created_at: timestamp(record.created_at).map_err(|reason| corrupt(key, reason))?,
        acked_at: optional_timestamp(record.acked_at).map_err(|reason| corrupt(key, reason))?,
    })
}

/// Decodes an article record that carries its content (a log event's).
pub fn decode_article(key: &[u8], bytes: &[u8]) -> Result<Article, StoreError> {
    decode_article_with(key, bytes, |_| Err(corrupt(key, "missing content".into())))
}

/// Decodes an article record; a record without content (see [`encode_article_head`]) gets it
/// from `content_at`, called with the record's cursor.
pub fn decode_article_with(
    key: &[u8],
    bytes: &[u8],
    content_at: impl FnOnce(u64) -> Result<ArticleContent, StoreError>,
) -> Result<Article, StoreError> {
    let mut record = ArticleRecord::decode(bytes).map_err(|e| corrupt(key, e.to_string()))?;
    let content = match record.content.take() {
        Some(content) => content_from_record(content).map_err(|reason| corrupt(key, reason))?,
        None => content_at(record.cursor)?,
    };
    article_from_record(record, content).map_err(|reason| corrupt(key, reason))
}

/// Decodes the log event stored under `key`.
pub fn decode_event(key: &[u8], bytes: &[u8]) -> Result<LogEvent, StoreError> {
    let cursor = keys::log_cursor(key).ok_or_else(|| corrupt(key, "not a log key".into()))?;
    let record = EventRecord::decode(bytes).map_err(|e| corrupt(key, e.to_string()))?;
    let kind = match record.kind {
        1 => EventKind::Created,
        2 => EventKind::Updated,
        3 => EventKind::Retracted,
        other => return Err(corrupt(key, format!("unknown event kind {other}"))),
    };
    let recorded_at = timestamp(record.recorded_at).map_err(|reason| corrupt(key, reason))?;
    let article = decode_article(key, &record.article)?;
    Ok(LogEvent {
        cursor,
        kind,
        recorded_at,
        article,
    })
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        key: keys::printable(key),
        reason,
    }
}

fn timestamp(record: Option<TimeRecord>) -> Result<Timestamp, String> {
    let record = record.ok_or("missing timestamp")?;
    Timestamp::new(record.seconds, record.nanos).ok_or_else(|| "timestamp out of range".to_owned())
}

fn optional_timestamp(record: Option<TimeRecord>) -> Result<Option<Timestamp>, String> {
    record.map(|r| timestamp(Some(r))).transpose()
}

fn article_from_record(record: ArticleRecord, content: ArticleContent) -> Result<Article, String> {
    let ArticleRecord {
        id,
        content: _,
        view_count,
        version,
        status,
        content_hash,
        ingested_at,
        first_ingested_at,
        cursor,
        retraction,
    } = record;
    let id: [u8; ArticleId::LEN] = id.try_into().map_err(|_| "id is not 16 bytes")?;
    let content_hash: [u8; 32] = content_hash
        .try_into()
        .map_err(|_| "content hash is not 32 bytes")?;
    Ok(Article {
        id: ArticleId::from_bytes(id),
        content,
        view_count,
        version,
        status: match status {
            1 => ArticleStatus::Usable,
            2 => ArticleStatus::Withheld,
            3 => ArticleStatus::Canceled,
            other => return Err(format!("unknown status {other}")),
        },
        content_hash: ContentHash(content_hash),
        ingested_at: timestamp(ingested_at)?,
        first_ingested_at: timestamp(first_ingested_at)?,
        cursor,
        retraction: retraction
            .map(|r| {
                Ok::<_, String>(Retraction {
                    reason: r.reason,
                    retracted_at: timestamp(r.retracted_at)?,
                })
            })
            .transpose()?,
        canonical_uri: String::new(),
        story: None,
    })
}

fn content_from_record(record: ContentRecord) -> Result<ArticleContent, String> {
    let ContentRecord {
        source_id,
        source_name,
        source_url,
        uri,
        headline,
        summary,
        body,
        language,
        published_at,
        updated_at,
        authors,
        section,
        tags,
        places,
        organisations,
        people,
        info_sources,
    } = record;
    Ok(ArticleContent {
        source: Source {
            id: source_id,
            name: source_name,
            url: source_url,
        },
        uri,
        headline,
        summary,
        body,
        language,
        published_at: timestamp(published_at)?,
        updated_at: optional_timestamp(updated_at)?,
        authors,
        section,
        tags,
        places,
        organisations,
        people,
        info_sources: info_sources
            .into_iter()
            .map(|i| InfoSource {
                name: i.name,
                uri: i.uri,
                role: i.role,
            })
            .collect(),
        // Layout 1 predates editorial metadata.
        editorial: Default::default(),
    })
}

/// The view count and current cursor of an article record.
pub fn decode_counters(key: &[u8], bytes: &[u8]) -> Result<(u64, u64), StoreError> {
    let record = ArticleRecord::decode(bytes).map_err(|e| corrupt(key, e.to_string()))?;
    Ok((record.view_count, record.cursor))
}
