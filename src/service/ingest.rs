//! Ingesting articles.

use crate::{
    domain::{ArticleDraft, Timestamp, ValidArticle},
    error::{Error, Result},
    store::{ArticleStore, IngestReceipt, PendingWrite},
};

/// Checks an article's field rules and normalizes it; `None` is a request without one.
pub fn validate_article(article: Option<ArticleDraft>) -> Result<ValidArticle> {
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
        Ok(self.store.ingest(article).await?)
    }

    /// Queues an article behind the writes queued before it; the pending write resolves once
    /// it is durable.
    pub async fn enqueue(&self, article: ValidArticle) -> Result<PendingWrite<IngestReceipt>> {
        Ok(self.store.enqueue_ingest(article).await?)
    }
}
