//! The `khabar.v1` wire form of stored articles, shared by the API, which sends it, and the
//! log, which stores every event's article in exactly this encoding so that feeds can send the
//! stored bytes as they are.

use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, InfoSource, Retraction,
        Source, StoryLink, Timestamp,
    },
    pb::khabar::v1 as pb,
};

/// A domain timestamp as protobuf.
pub fn timestamp_pb(t: Timestamp) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.seconds(),
        // Always below 1e9.
        nanos: t.nanos() as i32,
    }
}

/// A stored article as protobuf.
pub fn article_pb(article: Article) -> pb::Article {
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
        canonical_uri,
        story,
    } = article;
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
    let status = match status {
        ArticleStatus::Usable => pb::ArticleStatus::Usable,
        ArticleStatus::Withheld => pb::ArticleStatus::Withheld,
        ArticleStatus::Canceled => pb::ArticleStatus::Canceled,
    };
    pb::Article {
        id: id.to_string(),
        source: Some(pb::Source {
            id: source.id,
            name: source.name,
            url: source.url,
        }),
        uri,
        headline,
        summary,
        body,
        language,
        published_at: Some(timestamp_pb(published_at)),
        updated_at: updated_at.map(timestamp_pb),
        authors,
        section,
        tags,
        places,
        organisations,
        people,
        info_sources: info_sources
            .into_iter()
            .map(|i| pb::InfoSource {
                name: i.name,
                uri: i.uri,
                role: i.role,
            })
            .collect(),
        view_count,
        ingested_at: Some(timestamp_pb(ingested_at)),
        version,
        status: status.into(),
        content_hash: content_hash.to_string(),
        first_ingested_at: Some(timestamp_pb(first_ingested_at)),
        cursor,
        retraction: retraction.map(|r| pb::Retraction {
            reason: r.reason,
            retracted_at: Some(timestamp_pb(r.retracted_at)),
        }),
        canonical_uri,
        story_id: story.map(|s| s.story_id.to_string()).unwrap_or_default(),
        duplicate_of: story
            .and_then(|s| s.duplicate_of)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        similarity: story.map_or(0.0, |s| s.similarity),
    }
}

/// Reads back an article that [`article_pb`] produced (a stored one); says what is wrong with
/// anything else.
pub fn article_from_pb(article: pb::Article) -> Result<Article, String> {
    let pb::Article {
        id,
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
        view_count,
        ingested_at,
        version,
        status,
        content_hash,
        first_ingested_at,
        cursor,
        retraction,
        canonical_uri,
        story_id,
        duplicate_of,
        similarity,
    } = article;
    let story = if story_id.is_empty() {
        None
    } else {
        let parse =
            |id: &str, field: &str| id.parse::<ArticleId>().map_err(|e| format!("{field}: {e}"));
        Some(StoryLink {
            story_id: parse(&story_id, "story_id")?,
            duplicate_of: (!duplicate_of.is_empty())
                .then(|| parse(&duplicate_of, "duplicate_of"))
                .transpose()?,
            similarity,
        })
    };
    let pb::Source {
        id: source_id,
        name: source_name,
        url: source_url,
    } = source.ok_or("article without a source")?;
    let uri_for_key = if canonical_uri.is_empty() {
        uri.clone()
    } else {
        String::new()
    };
    let status = match pb::ArticleStatus::try_from(status) {
        Ok(pb::ArticleStatus::Usable) => ArticleStatus::Usable,
        Ok(pb::ArticleStatus::Withheld) => ArticleStatus::Withheld,
        Ok(pb::ArticleStatus::Canceled) => ArticleStatus::Canceled,
        Ok(pb::ArticleStatus::Unspecified) | Err(_) => {
            return Err(format!("unknown article status {status}"));
        }
    };
    Ok(Article {
        id: id.parse::<ArticleId>().map_err(|e| e.to_string())?,
        content: ArticleContent {
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
            published_at: timestamp(published_at, "published_at")?,
            updated_at: updated_at
                .map(|t| timestamp(Some(t), "updated_at"))
                .transpose()?,
            authors,
            section,
            tags,
            places,
            organisations,
            people,
            info_sources: info_sources
                .into_iter()
                .map(|pb::InfoSource { name, uri, role }| InfoSource { name, uri, role })
                .collect(),
        },
        view_count,
        version,
        status,
        content_hash: content_hash_from_hex(&content_hash)?,
        ingested_at: timestamp(ingested_at, "ingested_at")?,
        first_ingested_at: timestamp(first_ingested_at, "first_ingested_at")?,
        cursor,
        retraction: retraction
            .map(|r| {
                Ok::<_, String>(Retraction {
                    reason: r.reason,
                    retracted_at: timestamp(r.retracted_at, "retraction.retracted_at")?,
                })
            })
            .transpose()?,
        // Stored before canonical addresses: it is a pure function of `uri`.
        canonical_uri: if canonical_uri.is_empty() {
            crate::domain::canonical_uri(&uri_for_key)
        } else {
            canonical_uri
        },
        story,
    })
}

fn timestamp(t: Option<pbjson_types::Timestamp>, field: &str) -> Result<Timestamp, String> {
    let t = t.ok_or_else(|| format!("{field} is missing"))?;
    Timestamp::new(t.seconds, t.nanos).ok_or_else(|| format!("{field} is out of range"))
}

fn content_hash_from_hex(hex: &str) -> Result<ContentHash, String> {
    let invalid = || format!("content hash {hex:?} is not 64 hex digits");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut bytes = [0; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
    }
    Ok(ContentHash(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn article() -> Article {
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
            canonical_uri: "https://alkhabar.example/1".into(),
            story: Some(StoryLink {
                story_id: ArticleId::from_bytes([1; 16]),
                duplicate_of: Some(ArticleId::from_bytes([2; 16])),
                similarity: 0.75,
            }),
        }
    }

    #[test]
    fn stored_article_round_trips() {
        assert_eq!(article_from_pb(article_pb(article())), Ok(article()));
    }

    #[test]
    fn malformed_stored_articles_say_what_is_wrong() {
        type Breakage = fn(&mut pb::Article);
        let cases: [(Breakage, &str); 5] = [
            (|a| a.id = "x".into(), "ULID"),
            (|a| a.source = None, "source"),
            (|a| a.status = 9, "status 9"),
            (|a| a.content_hash = "zz".into(), "content hash"),
            (|a| a.published_at = None, "published_at"),
        ];
        for (break_it, expected) in cases {
            let mut stored = article_pb(article());
            break_it(&mut stored);
            let err = article_from_pb(stored).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
