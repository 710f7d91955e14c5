//! The `khabar.v1` wire form of stored articles, shared by the API, which sends it, and the
//! log, which stores every event's article in exactly this encoding so that feeds can send the
//! stored bytes as they are.

use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, InfoSource, Retraction,
        Source, StoryLink, Timestamp,
        editorial::{AltId, Association, AssociationTarget, Editorial, Genre, PubStatus, Urgency},
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
        editorial,
    } = content;
    let status = match status {
        ArticleStatus::Usable => pb::ArticleStatus::Usable,
        ArticleStatus::Withheld => pb::ArticleStatus::Withheld,
        ArticleStatus::Canceled => pb::ArticleStatus::Canceled,
    };
    let mut article = pb::Article {
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
        ..Default::default()
    };
    put_editorial(&mut article, editorial);
    article
}

/// Sets the editorial fields of `article` from `editorial`.
fn put_editorial(article: &mut pb::Article, editorial: Editorial) {
    let Editorial {
        embargoed,
        pubstatus,
        urgency,
        genres,
        located,
        copyright_holder,
        copyright_notice,
        usage_terms,
        alt_ids,
        associations,
        expires,
        ed_note,
    } = editorial;
    article.embargoed = embargoed.map(timestamp_pb);
    // Usable is sent as unset (which reads as usable), so that articles without editorial
    // metadata encode as they did before these fields existed.
    article.pubstatus = match pubstatus {
        PubStatus::Usable => 0,
        other => other.number(),
    };
    article.urgency = urgency.map_or(0, |u| u32::from(u.get()));
    article.genres = genres
        .into_iter()
        .map(|Genre { code, name }| pb::Genre { code, name })
        .collect();
    article.located = located;
    article.copyright_holder = copyright_holder;
    article.copyright_notice = copyright_notice;
    article.usage_terms = usage_terms;
    article.alt_ids = alt_ids
        .into_iter()
        .map(|AltId { role, value }| pb::AltId { role, value })
        .collect();
    article.associations = associations
        .into_iter()
        .map(|Association { rel, target }| pb::Association {
            rel,
            target: Some(match target {
                AssociationTarget::Uri(uri) => pb::association::Target::Uri(uri),
                AssociationTarget::Article(id) => {
                    pb::association::Target::ArticleId(id.to_string())
                }
            }),
        })
        .collect();
    article.expires = expires.map(timestamp_pb);
    article.ed_note = ed_note;
}

/// Reads back the editorial fields of a stored article (validated when it was ingested).
fn editorial_from_pb(article: &mut pb::Article) -> Result<Editorial, String> {
    let time = |t: Option<pbjson_types::Timestamp>, field: &str| {
        t.map(|t| timestamp(Some(t), field)).transpose()
    };
    Ok(Editorial {
        embargoed: time(article.embargoed.take(), "embargoed")?,
        pubstatus: PubStatus::from_number(article.pubstatus)
            .ok_or_else(|| format!("unknown pubstatus {}", article.pubstatus))?,
        urgency: match article.urgency {
            0 => None,
            n => Some(Urgency::new(n).ok_or_else(|| format!("urgency {n} is out of range"))?),
        },
        genres: std::mem::take(&mut article.genres)
            .into_iter()
            .map(|pb::Genre { code, name }| Genre { code, name })
            .collect(),
        located: std::mem::take(&mut article.located),
        copyright_holder: std::mem::take(&mut article.copyright_holder),
        copyright_notice: std::mem::take(&mut article.copyright_notice),
        usage_terms: std::mem::take(&mut article.usage_terms),
        alt_ids: std::mem::take(&mut article.alt_ids)
            .into_iter()
            .map(|pb::AltId { role, value }| AltId { role, value })
            .collect(),
        associations: std::mem::take(&mut article.associations)
            .into_iter()
            .map(|pb::Association { rel, target }| {
                let target = match target {
                    Some(pb::association::Target::Uri(uri)) => AssociationTarget::Uri(uri),
                    Some(pb::association::Target::ArticleId(id)) => AssociationTarget::Article(
                        id.parse::<ArticleId>()
                            .map_err(|e| format!("associations: {e}"))?,
                    ),
                    None => return Err("an association without a target".to_owned()),
                };
                Ok(Association { rel, target })
            })
            .collect::<Result<_, String>>()?,
        expires: time(article.expires.take(), "expires")?,
        ed_note: std::mem::take(&mut article.ed_note),
    })
}

/// Reads back an article that [`article_pb`] produced (a stored one); says what is wrong with
/// anything else.
pub fn article_from_pb(mut article: pb::Article) -> Result<Article, String> {
    let editorial = editorial_from_pb(&mut article)?;
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
        // Taken by `editorial_from_pb` above.
        embargoed: _,
        pubstatus: _,
        urgency: _,
        genres: _,
        located: _,
        copyright_holder: _,
        copyright_notice: _,
        usage_terms: _,
        alt_ids: _,
        associations: _,
        expires: _,
        ed_note: _,
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
            editorial,
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
            editorial: editorial(),
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

    fn editorial() -> Editorial {
        Editorial {
            embargoed: Timestamp::new(1_800_000_100, 0),
            pubstatus: PubStatus::Withheld,
            urgency: Urgency::new(3),
            genres: vec![Genre {
                code: "genre:Current".into(),
                name: "خبر".into(),
            }],
            located: "دير الزور".into(),
            copyright_holder: "الخبر".into(),
            copyright_notice: "© ٢٠١٦ الخبر".into(),
            usage_terms: "لا يعاد نشره\nإلا بإذن".into(),
            alt_ids: vec![AltId {
                role: "guid".into(),
                value: "urn:alkhabar:1".into(),
            }],
            associations: vec![
                Association {
                    rel: "follow-up-of".into(),
                    target: AssociationTarget::Article(ArticleId::from_bytes([4; 16])),
                },
                Association {
                    rel: "related".into(),
                    target: AssociationTarget::Uri("https://alkhabar.example/2".into()),
                },
            ],
            expires: Timestamp::new(1_900_000_000, 0),
            ed_note: "ملاحظة".into(),
        }
    }

    #[test]
    fn stored_article_round_trips() {
        assert_eq!(article_from_pb(article_pb(article())), Ok(article()));
        let mut plain = article();
        plain.content.editorial = Editorial::default();
        assert_eq!(article_from_pb(article_pb(plain.clone())), Ok(plain));
    }

    #[test]
    fn an_article_without_editorial_metadata_encodes_as_before_it_existed() {
        let mut plain = article();
        plain.content.editorial = Editorial::default();
        let encoded = article_pb(plain);
        assert_eq!(encoded.pubstatus, 0);
        assert_eq!(encoded.urgency, 0);
        assert!(encoded.embargoed.is_none() && encoded.expires.is_none());
        assert!(encoded.genres.is_empty() && encoded.associations.is_empty());
    }

    #[test]
    fn malformed_stored_articles_say_what_is_wrong() {
        type Breakage = fn(&mut pb::Article);
        let cases: [(Breakage, &str); 8] = [
            (|a| a.id = "x".into(), "ULID"),
            (|a| a.pubstatus = 7, "pubstatus 7"),
            (|a| a.urgency = 12, "urgency 12"),
            (|a| a.associations[0].target = None, "without a target"),
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
