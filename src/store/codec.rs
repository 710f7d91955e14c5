//! On-disk records: protobuf messages declared here rather than in `proto/`, because they are a
//! private storage format, free to differ from the API. Protobuf keeps old records readable
//! when fields are added.

use prost::Message;

use super::{Consumer, EventKind, LogEvent, StoreError, keys};
use crate::domain::{
    Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, InfoSource, Retraction, Source,
    Timestamp,
};

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

/// Encodes a consumer record (the name is the key).
pub fn encode_consumer(consumer: &Consumer) -> Vec<u8> {
    ConsumerRecord {
        acked_cursor: consumer.acked_cursor,
        created_at: Some(time_record(consumer.created_at)),
        acked_at: consumer.acked_at.map(time_record),
    }
    .encode_to_vec()
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

/// Encodes an article with its content (the form log events carry).
pub fn encode_article(article: &Article) -> Vec<u8> {
    article_record(article).encode_to_vec()
}

/// Encodes an article without its content, for the article table: the content is in the log
/// event at `article.cursor`, which produced the current version, so it is written only once.
pub fn encode_article_head(article: &Article) -> Vec<u8> {
    let mut record = article_record(article);
    record.content = None;
    record.encode_to_vec()
}

/// Encodes a log event around an already encoded article.
pub fn encode_event(kind: EventKind, recorded_at: Timestamp, encoded_article: Vec<u8>) -> Vec<u8> {
    EventRecord {
        kind: match kind {
            EventKind::Created => 1,
            EventKind::Updated => 2,
            EventKind::Retracted => 3,
        },
        recorded_at: Some(time_record(recorded_at)),
        article: encoded_article,
    }
    .encode_to_vec()
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

fn article_record(article: &Article) -> ArticleRecord {
    let Article {
        id,
        content,
        view_count,
        version,
        status,
        content_hash,
        ingested_at,
        first_ingested_at,
        cursor,
        retraction,
    } = article;
    ArticleRecord {
        id: id.to_bytes().to_vec(),
        content: Some(content_record(content)),
        view_count: *view_count,
        version: *version,
        status: match status {
            ArticleStatus::Usable => 1,
            ArticleStatus::Withheld => 2,
            ArticleStatus::Canceled => 3,
        },
        content_hash: content_hash.0.to_vec(),
        ingested_at: Some(time_record(*ingested_at)),
        first_ingested_at: Some(time_record(*first_ingested_at)),
        cursor: *cursor,
        retraction: retraction.as_ref().map(|r| RetractionRecord {
            reason: r.reason.clone(),
            retracted_at: Some(time_record(r.retracted_at)),
        }),
    }
}

fn content_record(content: &ArticleContent) -> ContentRecord {
    let ArticleContent {
        source,
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
    } = content;
    ContentRecord {
        source_id: source.id.clone(),
        source_name: source.name.clone(),
        source_url: source.url.clone(),
        uri: uri.clone(),
        headline: headline.clone(),
        summary: summary.clone(),
        body: body.clone(),
        language: language.clone(),
        published_at: Some(time_record(*published_at)),
        updated_at: updated_at.map(time_record),
        authors: authors.clone(),
        section: section.clone(),
        tags: tags.clone(),
        places: places.clone(),
        organisations: organisations.clone(),
        people: people.clone(),
        info_sources: info_sources
            .iter()
            .map(|i| InfoSourceRecord {
                name: i.name.clone(),
                uri: i.uri.clone(),
                role: i.role.clone(),
            })
            .collect(),
    }
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article() -> Article {
        let content = ArticleContent {
            source: Source {
                id: "alkhabar".into(),
                name: "الخبر وما وراء الخبر".into(),
                url: "https://alkhabar.example/".into(),
            },
            uri: "https://alkhabar.example/1".into(),
            headline: "أمريكا تتخلّى ١٢٣".into(),
            summary: "ملخص".into(),
            body: "نص\n\nنص".into(),
            language: "ar".into(),
            published_at: Timestamp::new(1_467_363_600, 12).unwrap(),
            updated_at: Some(Timestamp::new(1_467_363_700, 0).unwrap()),
            authors: vec!["كاتب".into()],
            section: "سياسة".into(),
            tags: vec!["سوريا".into()],
            places: vec!["البوكمال".into()],
            organisations: vec!["رويترز".into()],
            people: vec!["كريس غارفر".into()],
            info_sources: vec![InfoSource {
                name: "موقع روسيا اليوم".into(),
                uri: String::new(),
                role: "originating".into(),
            }],
        };
        Article {
            id: ArticleId::from_bytes([3; 16]),
            content_hash: content.content_hash(),
            content,
            view_count: 182,
            version: 2,
            status: ArticleStatus::Canceled,
            ingested_at: Timestamp::new(1_800_000_000, 5).unwrap(),
            first_ingested_at: Timestamp::new(1_700_000_000, 0).unwrap(),
            cursor: 77,
            retraction: Some(Retraction {
                reason: "خطأ في المصدر".into(),
                retracted_at: Timestamp::new(1_800_000_001, 0).unwrap(),
            }),
        }
    }

    #[test]
    fn article_round_trips() {
        let key = keys::article(article().id);
        let decoded = decode_article(&key, &encode_article(&article())).unwrap();
        assert_eq!(decoded, article());
    }

    #[test]
    fn article_head_leaves_content_to_the_log() {
        let key = keys::article(article().id);
        let head = encode_article_head(&article());
        assert!(head.len() < encode_article(&article()).len() / 2);
        let mut asked = None;
        let decoded = decode_article_with(&key, &head, |cursor| {
            asked = Some(cursor);
            Ok(article().content)
        })
        .unwrap();
        assert_eq!(asked, Some(77));
        assert_eq!(decoded, article());
        assert!(
            decode_article(&key, &head).is_err(),
            "a head alone is not a whole article"
        );
    }

    #[test]
    fn event_round_trips_around_encoded_article() {
        let recorded_at = Timestamp::new(1_800_000_002, 9).unwrap();
        let bytes = encode_event(
            EventKind::Retracted,
            recorded_at,
            encode_article(&article()),
        );
        let event = decode_event(&keys::log(77), &bytes).unwrap();
        assert_eq!(event.cursor, 77);
        assert_eq!(event.kind, EventKind::Retracted);
        assert_eq!(event.recorded_at, recorded_at);
        assert_eq!(event.article, article());
    }

    #[test]
    fn consumer_round_trips() {
        let consumer = Consumer {
            name: "search-indexer".into(),
            acked_cursor: 42,
            created_at: Timestamp::new(1_800_000_000, 1).unwrap(),
            acked_at: Some(Timestamp::new(1_800_000_100, 2).unwrap()),
        };
        let key = keys::consumer(&consumer.name);
        assert_eq!(
            decode_consumer(&key, &encode_consumer(&consumer)).unwrap(),
            consumer
        );
    }

    #[test]
    fn garbage_is_reported_as_corrupt_with_its_key() {
        let err = decode_article(b"a\x01", b"\xff\xff\xff").unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { ref key, .. } if key == "a\\x01"),
            "{err}"
        );
        let mut record = article_record(&article());
        record.status = 9;
        let err = decode_article(b"a", &record.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("unknown status 9"), "{err}");
    }
}
