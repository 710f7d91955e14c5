//! Ingesting articles.

use tracing::{Instrument, Span, field::Empty};

use crate::{
    domain::{ArticleDraft, Timestamp, ValidArticle},
    error::{Error, Result},
    store::{ArticleStore, IngestReceipt, PendingWrite},
};

/// Checks an article's field rules and normalizes it; `None` is a request without one.
pub fn validate_article(article: Option<ArticleDraft>) -> Result<ValidArticle> {
    let _span = tracing::debug_span!(target: "khabar::ingest", "validate").entered();
    let article = article.ok_or_else(|| Error::invalid_field("article", "is required"))?;
    article
        .validate(Timestamp::now())
        .map_err(|e| Error::invalid_article("article", e))
}

/// Ingests into a store.
#[derive(Clone)]
pub struct Ingest<S> {
    store: S,
}

impl<S: ArticleStore> Ingest<S> {
    /// Ingests into `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Stores an article; answers once it is durable.
    pub async fn ingest(&self, article: ValidArticle) -> Result<IngestReceipt> {
        self.enqueue(article).await?.await.map_err(Error::from)
    }

    /// Queues an article behind the writes queued before it; the pending write resolves once
    /// it is durable. Traced as one `store.write` span from queueing to durability.
    pub async fn enqueue(&self, article: ValidArticle) -> Result<PendingWrite<IngestReceipt>> {
        let span = tracing::debug_span!(
            target: "khabar::ingest",
            "store.write",
            article.id = Empty,
            khabar.outcome = Empty,
            khabar.cursor = Empty,
            khabar.group_size = Empty,
        );
        let pending = self
            .store
            .enqueue_ingest(article)
            .instrument(span.clone())
            .await?;
        Ok(Box::pin(
            async move {
                let receipt = pending.await?;
                let span = Span::current();
                span.record("article.id", receipt.id.to_string());
                span.record("khabar.outcome", receipt.outcome.as_str());
                span.record(
                    "khabar.cursor",
                    i64::try_from(receipt.cursor).unwrap_or(i64::MAX),
                );
                span.record(
                    "khabar.group_size",
                    i64::try_from(receipt.group_size).unwrap_or(i64::MAX),
                );
                Ok(receipt)
            }
            .instrument(span),
        ))
    }
}
