//! Columns to domain values and back. A value the schema's checks should have kept out is a
//! `Corrupt` error naming the row, never a panic.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tokio_postgres::{Row, types::FromSqlOwned};

use super::{Head, writer::Held};
use crate::{
    domain::{Article, ArticleId, ArticleStatus, ContentHash, Timestamp},
    pb::khabar::v1 as pb,
    store::{Consumer, EventHeader, EventKind, LogEvent, Result, StoreError},
    wire,
};

fn corrupt(what: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: what.to_owned(),
        reason: reason.into(),
    }
}

/// Column `index` of `row`, typed.
pub fn get<T: FromSqlOwned>(row: &Row, index: usize, what: &str) -> Result<T> {
    row.try_get(index)
        .map_err(|e| corrupt(what, format!("column {index}: {e}")))
}

/// A bigint column holding a u64 bit for bit.
pub fn u64_at(row: &Row, index: usize, what: &str) -> Result<u64> {
    get::<i64>(row, index, what).map(|v| v as u64)
}

/// The (seconds, nanoseconds) columns at `index` and `index + 1`.
pub fn time_at(row: &Row, index: usize, what: &str) -> Result<Timestamp> {
    let seconds: i64 = get(row, index, what)?;
    let nanos: i32 = get(row, index + 1, what)?;
    Timestamp::new(seconds, nanos)
        .ok_or_else(|| corrupt(what, format!("time ({seconds}, {nanos}) is out of range")))
}

/// The columns a time is stored in.
pub fn time_columns(time: Timestamp) -> (i64, i32) {
    // Nanoseconds are below 1e9, so they fit.
    (time.seconds(), time.nanos() as i32)
}

/// An article id column.
pub fn id_at(row: &Row, index: usize, what: &str) -> Result<ArticleId> {
    let bytes: Vec<u8> = get(row, index, what)?;
    let bytes: [u8; ArticleId::LEN] = bytes
        .try_into()
        .map_err(|_| corrupt(what, "an article id is not 16 bytes"))?;
    Ok(ArticleId::from_bytes(bytes))
}

/// How an event kind is stored.
pub fn kind_code(kind: EventKind) -> i16 {
    match kind {
        EventKind::Created => 1,
        EventKind::Updated => 2,
        EventKind::Retracted => 3,
    }
}

fn kind(code: i16, what: &str) -> Result<EventKind> {
    match code {
        1 => Ok(EventKind::Created),
        2 => Ok(EventKind::Updated),
        3 => Ok(EventKind::Retracted),
        other => Err(corrupt(what, format!("unknown event kind {other}"))),
    }
}

/// How an article status is stored.
pub fn status_code(status: ArticleStatus) -> i16 {
    match status {
        ArticleStatus::Usable => 1,
        ArticleStatus::Withheld => 2,
        ArticleStatus::Canceled => 3,
    }
}

fn status(code: i16, what: &str) -> Result<ArticleStatus> {
    match code {
        1 => Ok(ArticleStatus::Usable),
        2 => Ok(ArticleStatus::Withheld),
        3 => Ok(ArticleStatus::Canceled),
        other => Err(corrupt(what, format!("unknown article status {other}"))),
    }
}

/// An article head, from the columns `writer::BY_ID` and `writer::BY_NATURAL_KEY` select.
pub fn head(row: &Row) -> Result<Head> {
    let what = "article head";
    let hash: Vec<u8> = get(row, 9, what)?;
    let content_hash = ContentHash(
        hash.try_into()
            .map_err(|_| corrupt(what, "a content hash is not 32 bytes"))?,
    );
    Ok(Head {
        id: id_at(row, 0, what)?,
        source_id: get(row, 1, what)?,
        uri: get(row, 2, what)?,
        language: get(row, 3, what)?,
        tags: get(row, 4, what)?,
        published_at: time_at(row, 5, what)?,
        version: u64_at(row, 7, what)?,
        status: status(get(row, 8, what)?, what)?,
        content_hash,
        view_count: u64_at(row, 10, what)?,
        ingested_at: time_at(row, 11, what)?,
        first_ingested_at: time_at(row, 13, what)?,
        cursor: u64_at(row, 15, what)?,
        canonical_uri: get(row, 17, what)?,
        story_id: id_at(row, 18, what)?,
        fingerprint: get(row, 19, what)?,
        urgency_rank: get(row, 20, what)?,
        genres: get(row, 21, what)?,
        expires: match (get(row, 22, what)?, get(row, 23, what)?) {
            (Some(s), Some(ns)) => {
                Some(Timestamp::new(s, ns).ok_or_else(|| corrupt(what, "expiry out of range"))?)
            }
            _ => None,
        },
    })
}

/// The current event's article bytes, when the query read them (column 16).
pub fn content(row: &Row) -> Result<Option<Bytes>> {
    Ok(get::<Option<Vec<u8>>>(row, 16, "article head")?.map(Bytes::from))
}

/// A consumer: name, acked, created (2 columns), acked at (2 nullable columns).
pub fn consumer(row: &Row) -> Result<Consumer> {
    let what = "consumer";
    let acked_s: Option<i64> = get(row, 4, what)?;
    let acked_ns: Option<i32> = get(row, 5, what)?;
    let acked_at = match (acked_s, acked_ns) {
        (Some(s), Some(ns)) => Some(
            Timestamp::new(s, ns)
                .ok_or_else(|| corrupt(what, format!("time ({s}, {ns}) is out of range")))?,
        ),
        _ => None,
    };
    Ok(Consumer {
        name: get(row, 0, what)?,
        acked_cursor: u64_at(row, 1, what)?,
        created_at: time_at(row, 2, what)?,
        acked_at,
    })
}

/// An event: cursor, kind, recorded (2 columns), article id, version, source, language, tags,
/// article bytes.
pub fn event(row: &Row) -> Result<Arc<LogEvent>> {
    let what = "event";
    let cursor = u64_at(row, 0, what)?;
    Ok(Arc::new(LogEvent {
        cursor,
        kind: kind(get(row, 1, what)?, what)?,
        recorded_at: time_at(row, 2, what)?,
        header: EventHeader {
            id: id_at(row, 4, what)?,
            version: u64_at(row, 5, what)?,
            source_id: get(row, 6, what)?,
            language: get(row, 7, what)?,
            tags: get(row, 8, what)?,
            starts_story: get(row, 10, what)?,
        },
        article: Bytes::from(get::<Vec<u8>>(row, 9, what)?),
    }))
}

/// Decodes the article an event stored.
pub fn decode_article(cursor: u64, bytes: Bytes) -> Result<Article> {
    let what = format!("event {cursor}");
    let article = pb::Article::decode(bytes).map_err(|e| corrupt(&what, e.to_string()))?;
    wire::article_from_pb(article).map_err(|e| corrupt(&what, e))
}

/// The held version read with a head (columns 24 to 30), if the article has one.
pub fn held(row: &Row) -> Result<Option<Held>> {
    let what = "held version";
    let Some(version) = get::<Option<i64>>(row, 24, what)? else {
        return Ok(None);
    };
    let hash: Vec<u8> = get(row, 25, what)?;
    let content_hash = ContentHash(
        hash.try_into()
            .map_err(|_| corrupt(what, "a content hash is not 32 bytes"))?,
    );
    let release_s: Option<i64> = get(row, 27, what)?;
    let release_ns: Option<i32> = get(row, 28, what)?;
    let release_at = match (release_s, release_ns) {
        (Some(s), Some(ns)) => Some(
            Timestamp::new(s, ns)
                .ok_or_else(|| corrupt(what, format!("time ({s}, {ns}) is out of range")))?,
        ),
        _ => None,
    };
    Ok(Some(Held {
        version: version as u64,
        content_hash,
        view_count: u64_at(row, 26, what)?,
        release_at,
        fingerprint: get(row, 29, what)?,
        article: Bytes::from(get::<Vec<u8>>(row, 30, what)?),
    }))
}
