//! Conversions between protobuf messages and domain types. Every message is destructured field
//! by field, so a field added to the proto does not compile until it is handled here.

pub use crate::wire::{article_pb, timestamp_pb};
use crate::{
    domain::{
        ArticleDraft, ArticleId, InfoSourceDraft, ParseIdError, SourceDraft, TimestampDraft,
        editorial::{AltIdDraft, AssociationDraft, EditorialDraft, GenreDraft},
    },
    error::{Error, Result},
    pb::khabar::v1 as pb,
    store::{IngestOutcome, IngestReceipt},
};

/// One article of a story, in brief.
pub fn story_article_pb(article: crate::domain::Article) -> pb::StoryArticle {
    let source = article.content.source;
    pb::StoryArticle {
        id: article.id.to_string(),
        source: Some(pb::Source {
            id: source.id,
            name: source.name,
            url: source.url,
        }),
        headline: article.content.headline,
        published_at: Some(timestamp_pb(article.content.published_at)),
        similarity: article.story.map_or(0.0, |s| s.similarity),
        duplicate_of: article
            .story
            .and_then(|s| s.duplicate_of)
            .map(|d| d.to_string())
            .unwrap_or_default(),
    }
}

/// An article id sent in request field `field`.
pub fn parse_id(field: &str, raw: &str) -> Result<ArticleId> {
    raw.parse()
        .map_err(|e: ParseIdError| Error::invalid_field(field, e.to_string()))
}

/// The client-set part of an article; server-set fields are ignored.
pub fn article_draft(article: pb::Article) -> ArticleDraft {
    let pb::Article {
        id: _,
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
        ingested_at: _,
        version: _,
        status: _,
        content_hash: _,
        first_ingested_at: _,
        cursor: _,
        retraction: _,
        canonical_uri: _,
        story_id: _,
        duplicate_of: _,
        similarity: _,
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
    } = article;
    let pb::Source { id, name, url } = source.unwrap_or_default();
    let editorial = EditorialDraft {
        embargoed: embargoed.map(timestamp_draft),
        pubstatus,
        urgency,
        genres: genres
            .into_iter()
            .map(|pb::Genre { code, name }| GenreDraft { code, name })
            .collect(),
        located,
        copyright_holder,
        copyright_notice,
        usage_terms,
        alt_ids: alt_ids
            .into_iter()
            .map(|pb::AltId { role, value }| AltIdDraft { role, value })
            .collect(),
        associations: associations
            .into_iter()
            .map(|pb::Association { rel, target }| {
                let (uri, article_id) = match target {
                    Some(pb::association::Target::Uri(uri)) => (uri, String::new()),
                    Some(pb::association::Target::ArticleId(id)) => (String::new(), id),
                    None => (String::new(), String::new()),
                };
                AssociationDraft {
                    rel,
                    uri,
                    article_id,
                }
            })
            .collect(),
        expires: expires.map(timestamp_draft),
        ed_note,
    };
    ArticleDraft {
        source: SourceDraft { id, name, url },
        uri,
        headline,
        summary,
        body,
        language,
        published_at: published_at.map(timestamp_draft),
        updated_at: updated_at.map(timestamp_draft),
        authors,
        section,
        tags,
        places,
        organisations,
        people,
        info_sources: info_sources
            .into_iter()
            .map(|pb::InfoSource { name, uri, role }| InfoSourceDraft { name, uri, role })
            .collect(),
        view_count,
        editorial,
    }
}

/// A timestamp as sent, before range checks.
pub fn timestamp_draft(t: pbjson_types::Timestamp) -> TimestampDraft {
    TimestampDraft {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

/// A timestamp as sent (the inverse of [`timestamp_draft`]).
pub fn timestamp_pb_from_draft(t: TimestampDraft) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

/// An unvalidated article as the API's message (the inverse of [`article_draft`]), for clients
/// that read articles in another form (ninjs) and send them.
pub fn article_pb_from_draft(draft: ArticleDraft) -> pb::Article {
    let ArticleDraft {
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
        editorial: e,
    } = draft;
    pb::Article {
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
        published_at: published_at.map(timestamp_pb_from_draft),
        updated_at: updated_at.map(timestamp_pb_from_draft),
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
        embargoed: e.embargoed.map(timestamp_pb_from_draft),
        pubstatus: e.pubstatus,
        urgency: e.urgency,
        genres: e
            .genres
            .into_iter()
            .map(|g| pb::Genre {
                code: g.code,
                name: g.name,
            })
            .collect(),
        located: e.located,
        copyright_holder: e.copyright_holder,
        copyright_notice: e.copyright_notice,
        usage_terms: e.usage_terms,
        alt_ids: e
            .alt_ids
            .into_iter()
            .map(|a| pb::AltId {
                role: a.role,
                value: a.value,
            })
            .collect(),
        associations: e
            .associations
            .into_iter()
            .map(|a| pb::Association {
                rel: a.rel,
                target: Some(if a.article_id.is_empty() {
                    pb::association::Target::Uri(a.uri)
                } else {
                    pb::association::Target::ArticleId(a.article_id)
                }),
            })
            .collect(),
        expires: e.expires.map(timestamp_pb_from_draft),
        ed_note: e.ed_note,
        ..pb::Article::default()
    }
}

/// The answer to a successful ingest.
pub fn ingest_response(receipt: IngestReceipt) -> pb::IngestResponse {
    let IngestReceipt {
        id,
        version,
        outcome,
        content_hash,
        cursor,
        group_size: _,
    } = receipt;
    let outcome = match outcome {
        IngestOutcome::Created => pb::IngestOutcome::Created,
        IngestOutcome::Updated => pb::IngestOutcome::Updated,
        IngestOutcome::Unchanged => pb::IngestOutcome::Unchanged,
        IngestOutcome::CountersUpdated => pb::IngestOutcome::CountersUpdated,
        IngestOutcome::Held => pb::IngestOutcome::Held,
        IngestOutcome::Canceled => pb::IngestOutcome::Canceled,
    };
    pb::IngestResponse {
        id: id.to_string(),
        version,
        outcome: outcome.into(),
        content_hash: content_hash.to_string(),
        cursor,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_goes_to_the_message_and_back_unchanged() {
        // The seed's second version sets every client field family, editorial ones included.
        let request: pb::IngestRequest = serde_json::from_str(include_str!(
            "../../tests/fixtures/seed-article-v2.ingest.json"
        ))
        .unwrap();
        let mut sent = request.article.unwrap();
        // What the fixture leaves unset, so that every client field is carried.
        sent.summary = "ملخص الخبر".into();
        sent.authors = vec!["مراسل الخبر".into()];
        sent.section = "سياسة".into();
        sent.copyright_notice = "© الخبر".into();
        sent.usage_terms = "للنشر بذكر المصدر".into();
        sent.alt_ids = vec![pb::AltId {
            role: "guid".into(),
            value: "urn:x:1".into(),
        }];
        sent.expires = Some(pbjson_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 5,
        });
        sent.ed_note = "تصحيح".into();
        let draft = article_draft(sent.clone());
        assert_eq!(article_pb_from_draft(draft), sent);
    }
}
