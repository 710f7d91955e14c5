//! Feeds and durable consumers: where a subscription starts, and where a consumer resumes.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{FilterDraft, article_filter, checked_time};
use crate::{
    domain::TimestampDraft,
    error::{Error, Result},
    feed::{self, FeedEnd, FeedFilter, FeedItem, FeedSettings, FeedStats},
    store::{ArticleStore, Consumer, EventKind, StoreError},
};

const MAX_CONSUMER_NAME_CHARS: usize = 128;

/// Where a new subscription (or a new durable consumer) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After the newest event: only events to come.
    FromNow,
    /// With the first event of the log.
    FromBeginning,
    /// After this cursor.
    AfterCursor(u64),
    /// With the first event recorded at or after this time.
    FromTime(TimestampDraft),
}

/// A subscription request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct FeedRequest {
    /// Where to start; from now when left out.
    pub start: Option<Start>,
    /// Source ids (OR).
    pub source_ids: Vec<String>,
    /// BCP-47 language ranges (OR).
    pub languages: Vec<String>,
    /// Tags (OR).
    pub tags: Vec<String>,
    /// Kinds of event; all when empty.
    pub kinds: Vec<EventKind>,
    /// Only events of articles that start a story.
    pub first_of_story: bool,
    /// 0 for any urgency, else only articles of urgency 1 to this.
    pub max_urgency: u32,
    /// Genre codes (OR).
    pub genres: Vec<String>,
    /// Durable consumer to resume (or create); empty for none.
    pub consumer: String,
}

/// A consumer with the head of the log it is measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerView {
    /// The consumer.
    pub consumer: Consumer,
    /// The newest cursor in the log.
    pub head: u64,
}

impl ConsumerView {
    /// Events in the log after the consumer's acknowledged cursor.
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.consumer.acked_cursor)
    }
}

/// Subscriptions and durable consumers on a store.
#[derive(Clone)]
pub struct Feeds<S> {
    store: S,
    settings: FeedSettings,
    shutdown: watch::Receiver<bool>,
    stats: Arc<FeedStats>,
}

impl<S: ArticleStore> Feeds<S> {
    /// Serves feeds of `store`; open subscriptions end when `shutdown` turns true.
    pub fn new(
        store: S,
        settings: FeedSettings,
        shutdown: watch::Receiver<bool>,
        stats: Arc<FeedStats>,
    ) -> Self {
        Self {
            store,
            settings,
            shutdown,
            stats,
        }
    }

    /// Starts a subscription. A durable consumer that exists resumes right after its
    /// acknowledged cursor whatever `start` says; a new one is created where `start` says.
    pub async fn subscribe(
        &self,
        request: FeedRequest,
    ) -> Result<mpsc::Receiver<Result<FeedItem, FeedEnd>>> {
        let start = request.start;
        let (filter, consumer) = checked_filter_and_consumer(request)?;
        let after = match consumer {
            None => self.start_after(start).await?,
            Some(name) => match self.store.consumer(name.clone()).await {
                Ok(existing) => existing.acked_cursor,
                Err(StoreError::ConsumerNotFound(_)) => {
                    let start_after = self.start_after(start).await?;
                    self.store
                        .ensure_consumer(name, start_after)
                        .await?
                        .acked_cursor
                }
                Err(e) => return Err(e.into()),
            },
        };
        Ok(feed::subscribe(
            self.store.clone(),
            after,
            filter,
            self.settings,
            self.shutdown.clone(),
            self.stats.clone(),
        ))
    }

    /// Moves a consumer's acknowledged cursor forward (an older cursor changes nothing).
    pub async fn ack(&self, name: &str, cursor: u64) -> Result<ConsumerView> {
        let name = consumer_name("consumer", name)?;
        let consumer = self.store.ack(name, cursor).await?;
        self.view(consumer).await
    }

    /// One consumer.
    pub async fn consumer(&self, name: &str) -> Result<ConsumerView> {
        let name = consumer_name("name", name)?;
        let consumer = self.store.consumer(name).await?;
        self.view(consumer).await
    }

    /// Every consumer, by name.
    pub async fn consumers(&self) -> Result<Vec<ConsumerView>> {
        let consumers = self.store.consumers().await?;
        let head = self.store.head().await?;
        Ok(consumers
            .into_iter()
            .map(|consumer| ConsumerView { consumer, head })
            .collect())
    }

    /// Deletes a consumer.
    pub async fn delete_consumer(&self, name: &str) -> Result<()> {
        let name = consumer_name("name", name)?;
        Ok(self.store.delete_consumer(name).await?)
    }

    async fn view(&self, consumer: Consumer) -> Result<ConsumerView> {
        let head = self.store.head().await?;
        Ok(ConsumerView { consumer, head })
    }

    /// The cursor after which a new subscription or consumer starts.
    async fn start_after(&self, start: Option<Start>) -> Result<u64> {
        match start {
            None | Some(Start::FromNow) => Ok(self.store.head().await?),
            Some(Start::FromBeginning) => Ok(0),
            Some(Start::AfterCursor(cursor)) => {
                let head = self.store.head().await?;
                if cursor > head {
                    Err(StoreError::CursorBeyondHead { cursor, head }.into())
                } else {
                    Ok(cursor)
                }
            }
            Some(Start::FromTime(raw)) => {
                let time = checked_time("from_time", raw)?;
                Ok(self.store.first_cursor_at(time).await? - 1)
            }
        }
    }
}

/// A subscription request's filter and durable consumer name (if any), checked; where it starts
/// is checked once the store is asked (an existing consumer resumes whatever `start` says).
pub(crate) fn checked_filter_and_consumer(
    request: FeedRequest,
) -> Result<(FeedFilter, Option<String>)> {
    let FeedRequest {
        start: _,
        source_ids,
        languages,
        tags,
        kinds,
        first_of_story,
        max_urgency,
        genres,
        consumer,
    } = request;
    let draft = FilterDraft {
        source_ids,
        languages,
        tags,
        max_urgency,
        genres,
    };
    let filter = FeedFilter {
        articles: article_filter("filter.", draft)?,
        kinds,
        first_of_story,
    };
    let consumer = match consumer.as_str() {
        "" => None,
        name => Some(consumer_name("consumer", name)?),
    };
    Ok((filter, consumer))
}

/// A durable consumer's name, checked.
pub(crate) fn consumer_name(field: &str, raw: &str) -> Result<String> {
    let valid = !raw.is_empty()
        && raw.len() <= MAX_CONSUMER_NAME_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if raw.is_empty() {
        Err(Error::invalid_field(
            field,
            "is required: the name of a durable consumer",
        ))
    } else if valid {
        Ok(raw.to_owned())
    } else {
        Err(Error::invalid_field(
            field,
            format!(
                "must be 1 to {MAX_CONSUMER_NAME_CHARS} ASCII letters, digits, '.', '_' or '-'"
            ),
        ))
    }
}
