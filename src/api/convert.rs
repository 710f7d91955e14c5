//! Conversions between protobuf messages and domain types. Every message is destructured field
//! by field, so a field added to the proto does not compile until it is handled here.

use crate::{
    domain::{
        Article, ArticleDraft, ArticleStatus, InfoSourceDraft, SourceDraft, Timestamp,
        TimestampDraft,
    },
    pb::khabar::v1 as pb,
    store::{IngestOutcome, IngestReceipt},
};

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
    } = article;
    let pb::Source { id, name, url } = source.unwrap_or_default();
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
    }
}

/// A timestamp as sent, before range checks.
pub fn timestamp_draft(t: pbjson_types::Timestamp) -> TimestampDraft {
    TimestampDraft {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

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
    } = article;
    let status = match status {
        ArticleStatus::Usable => pb::ArticleStatus::Usable,
        ArticleStatus::Withheld => pb::ArticleStatus::Withheld,
        ArticleStatus::Canceled => pb::ArticleStatus::Canceled,
    };
    pb::Article {
        id: id.to_string(),
        source: Some(pb::Source {
            id: content.source.id,
            name: content.source.name,
            url: content.source.url,
        }),
        uri: content.uri,
        headline: content.headline,
        summary: content.summary,
        body: content.body,
        language: content.language,
        published_at: Some(timestamp_pb(content.published_at)),
        updated_at: content.updated_at.map(timestamp_pb),
        authors: content.authors,
        section: content.section,
        tags: content.tags,
        places: content.places,
        organisations: content.organisations,
        people: content.people,
        info_sources: content
            .info_sources
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
    } = receipt;
    let outcome = match outcome {
        IngestOutcome::Created => pb::IngestOutcome::Created,
        IngestOutcome::Updated => pb::IngestOutcome::Updated,
        IngestOutcome::Unchanged => pb::IngestOutcome::Unchanged,
        IngestOutcome::CountersUpdated => pb::IngestOutcome::CountersUpdated,
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
