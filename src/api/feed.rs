//! `khabar.v1.FeedService`.

use std::{pin::Pin, sync::Arc};

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{EncodedFeedEvent, convert::timestamp_pb, filters::article_filter};
use crate::{
    domain::Timestamp,
    error::{Error, Result},
    feed::{self, FeedFilter, FeedItem, FeedSettings, FeedStats},
    pb::{
        khabar::v1::{self as pb, subscribe_request::Start},
        raw::feed_service_server::FeedService,
    },
    store::{ArticleStore, Consumer, EventKind, StoreError},
};

const MAX_CONSUMER_NAME_CHARS: usize = 128;

/// Implements `khabar.v1.FeedService` on a store.
#[derive(Clone)]
pub struct FeedApi<S> {
    store: S,
    settings: FeedSettings,
    shutdown: watch::Receiver<bool>,
    stats: Arc<FeedStats>,
}

impl<S: ArticleStore> FeedApi<S> {
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

    fn head(&self) -> u64 {
        *self.store.durable_head().borrow()
    }

    /// The cursor after which a new subscription or consumer starts.
    async fn start_after(&self, start: Option<Start>) -> Result<u64> {
        let head = self.head();
        match start {
            None => Ok(head),
            Some(Start::FromNow(true)) => Ok(head),
            Some(Start::FromBeginning(true)) => Ok(0),
            Some(Start::FromNow(false) | Start::FromBeginning(false)) => Err(Error::invalid_field(
                "start",
                "from_beginning and from_now must be true when set; leave start out for from_now",
            )),
            Some(Start::AfterCursor(cursor)) if cursor > head => {
                Err(StoreError::CursorBeyondHead { cursor, head }.into())
            }
            Some(Start::AfterCursor(cursor)) => Ok(cursor),
            Some(Start::FromTime(time)) => {
                let time = Timestamp::new(time.seconds, time.nanos).ok_or_else(|| {
                    Error::invalid_field(
                        "from_time",
                        "must be a valid time between years 0001 and 9999",
                    )
                })?;
                Ok(self.store.first_cursor_at(time).await? - 1)
            }
        }
    }

    fn consumer_pb(&self, consumer: Consumer) -> pb::Consumer {
        let Consumer {
            name,
            acked_cursor,
            created_at,
            acked_at,
        } = consumer;
        let head = self.head();
        pb::Consumer {
            name,
            acked_cursor,
            head_cursor: head,
            lag: head.saturating_sub(acked_cursor),
            created_at: Some(timestamp_pb(created_at)),
            acked_at: acked_at.map(timestamp_pb),
        }
    }
}

pub(super) fn consumer_name(field: &str, raw: &str) -> Result<String> {
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

pub(super) fn feed_filter(filter: Option<pb::FeedFilter>) -> Result<FeedFilter> {
    let pb::FeedFilter {
        source_ids,
        languages,
        tags,
        kinds,
    } = filter.unwrap_or_default();
    let kinds = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| match pb::EventKind::try_from(kind) {
            Ok(pb::EventKind::Created) => Ok(EventKind::Created),
            Ok(pb::EventKind::Updated) => Ok(EventKind::Updated),
            Ok(pb::EventKind::Retracted) => Ok(EventKind::Retracted),
            Ok(pb::EventKind::Unspecified | pb::EventKind::Checkpoint) | Err(_) => {
                Err(Error::invalid_field(
                    format!("filter.kinds[{i}]"),
                    "must be EVENT_KIND_CREATED, EVENT_KIND_UPDATED or EVENT_KIND_RETRACTED",
                ))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FeedFilter {
        articles: article_filter("filter.", source_ids, languages, tags)?,
        kinds,
    })
}

fn encoded_feed_event(item: FeedItem) -> EncodedFeedEvent {
    match item {
        FeedItem::Event(event) => {
            let kind = match event.kind {
                EventKind::Created => pb::EventKind::Created,
                EventKind::Updated => pb::EventKind::Updated,
                EventKind::Retracted => pb::EventKind::Retracted,
            };
            // The stored bytes are shared with the log's window and every other subscriber.
            EncodedFeedEvent::event(
                event.cursor,
                kind,
                event.article.clone(),
                timestamp_pb(event.recorded_at),
            )
        }
        FeedItem::Checkpoint { cursor, at } => EncodedFeedEvent {
            cursor,
            kind: pb::EventKind::Checkpoint.into(),
            article: None,
            timestamp: Some(timestamp_pb(at)),
        },
    }
}

#[tonic::async_trait]
impl<S: ArticleStore> FeedService for FeedApi<S> {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<EncodedFeedEvent, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let pb::SubscribeRequest {
            start,
            filter,
            consumer,
        } = request.into_inner();
        let filter = feed_filter(filter)?;
        let after = if consumer.is_empty() {
            self.start_after(start).await?
        } else {
            let name = consumer_name("consumer", &consumer)?;
            // An existing consumer resumes where it acknowledged; the start option is for new ones.
            match self.store.consumer(name.clone()).await {
                Ok(existing) => existing.acked_cursor,
                Err(StoreError::ConsumerNotFound(_)) => {
                    let start_after = self.start_after(start).await?;
                    let created = self
                        .store
                        .ensure_consumer(name, start_after)
                        .await
                        .map_err(Error::from)?;
                    created.acked_cursor
                }
                Err(e) => return Err(Error::from(e).into()),
            }
        };
        let items = feed::subscribe(
            self.store.clone(),
            after,
            filter,
            self.settings,
            self.shutdown.clone(),
            self.stats.clone(),
        );
        let events = ReceiverStream::new(items).map(|item| match item {
            Ok(item) => Ok(encoded_feed_event(item)),
            Err(end) => Err(Status::from(Error::from(end))),
        });
        Ok(Response::new(Box::pin(events)))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::Consumer>, Status> {
        let pb::AckRequest { consumer, cursor } = request.into_inner();
        let name = consumer_name("consumer", &consumer)?;
        let consumer = self.store.ack(name, cursor).await.map_err(Error::from)?;
        Ok(Response::new(self.consumer_pb(consumer)))
    }

    async fn get_consumer(
        &self,
        request: Request<pb::GetConsumerRequest>,
    ) -> Result<Response<pb::Consumer>, Status> {
        let pb::GetConsumerRequest { name } = request.into_inner();
        let name = consumer_name("name", &name)?;
        let consumer = self.store.consumer(name).await.map_err(Error::from)?;
        Ok(Response::new(self.consumer_pb(consumer)))
    }

    async fn list_consumers(
        &self,
        _request: Request<pb::ListConsumersRequest>,
    ) -> Result<Response<pb::ListConsumersResponse>, Status> {
        let consumers = self.store.consumers().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListConsumersResponse {
            consumers: consumers.into_iter().map(|c| self.consumer_pb(c)).collect(),
        }))
    }

    async fn delete_consumer(
        &self,
        request: Request<pb::DeleteConsumerRequest>,
    ) -> Result<Response<pb::DeleteConsumerResponse>, Status> {
        let pb::DeleteConsumerRequest { name } = request.into_inner();
        let name = consumer_name("name", &name)?;
        self.store
            .delete_consumer(name)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::DeleteConsumerResponse {}))
    }
}
