//! `khabar.v1.FeedService`.

use std::{pin::Pin, sync::Arc};

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    EncodedFeedEvent,
    convert::{timestamp_draft, timestamp_pb},
};
use crate::{
    error::{Error, Result},
    feed::{FeedItem, FeedSettings, FeedStats},
    pb::{
        khabar::v1::{self as pb, subscribe_request::Start as StartPb},
        raw::feed_service_server::FeedService,
    },
    service::{ConsumerView, FeedRequest, Feeds, Start},
    store::{ArticleStore, EventKind},
};

/// Implements `khabar.v1.FeedService` on a store.
#[derive(Clone)]
pub struct FeedApi<S> {
    feeds: Feeds<S>,
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
            feeds: Feeds::new(store, settings, shutdown, stats),
        }
    }
}

/// The subscription a request asks for, as the service layer takes it.
pub(super) fn feed_request(request: pb::SubscribeRequest) -> Result<FeedRequest> {
    let pb::SubscribeRequest {
        start: start_pb,
        filter,
        consumer,
    } = request;
    let pb::FeedFilter {
        source_ids,
        languages,
        tags,
        kinds: kinds_pb,
        first_of_story,
        max_urgency,
        genres,
    } = filter.unwrap_or_default();
    let kinds = kinds(kinds_pb)?;
    Ok(FeedRequest {
        start: start(start_pb)?,
        source_ids,
        languages,
        tags,
        kinds,
        first_of_story,
        max_urgency,
        genres,
        consumer,
    })
}

fn start(start: Option<StartPb>) -> Result<Option<Start>> {
    match start {
        None => Ok(None),
        Some(StartPb::FromNow(true)) => Ok(Some(Start::FromNow)),
        Some(StartPb::FromBeginning(true)) => Ok(Some(Start::FromBeginning)),
        Some(StartPb::FromNow(false) | StartPb::FromBeginning(false)) => Err(Error::invalid_field(
            "start",
            "from_beginning and from_now must be true when set; leave start out for from_now",
        )),
        Some(StartPb::AfterCursor(cursor)) => Ok(Some(Start::AfterCursor(cursor))),
        Some(StartPb::FromTime(time)) => Ok(Some(Start::FromTime(timestamp_draft(time)))),
    }
}

fn kinds(kinds: Vec<i32>) -> Result<Vec<EventKind>> {
    kinds
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
        .collect()
}

fn consumer_pb(view: ConsumerView) -> pb::Consumer {
    let lag = view.lag();
    let ConsumerView { consumer, head } = view;
    let crate::store::Consumer {
        name,
        acked_cursor,
        created_at,
        acked_at,
    } = consumer;
    pb::Consumer {
        name,
        acked_cursor,
        head_cursor: head,
        lag,
        created_at: Some(timestamp_pb(created_at)),
        acked_at: acked_at.map(timestamp_pb),
    }
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
        let items = self
            .feeds
            .subscribe(feed_request(request.into_inner())?)
            .await?;
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
        let view = self.feeds.ack(&consumer, cursor).await?;
        Ok(Response::new(consumer_pb(view)))
    }

    async fn get_consumer(
        &self,
        request: Request<pb::GetConsumerRequest>,
    ) -> Result<Response<pb::Consumer>, Status> {
        let pb::GetConsumerRequest { name } = request.into_inner();
        let view = self.feeds.consumer(&name).await?;
        Ok(Response::new(consumer_pb(view)))
    }

    async fn list_consumers(
        &self,
        _request: Request<pb::ListConsumersRequest>,
    ) -> Result<Response<pb::ListConsumersResponse>, Status> {
        let consumers = self.feeds.consumers().await?;
        Ok(Response::new(pb::ListConsumersResponse {
            consumers: consumers.into_iter().map(consumer_pb).collect(),
        }))
    }

    async fn delete_consumer(
        &self,
        request: Request<pb::DeleteConsumerRequest>,
    ) -> Result<Response<pb::DeleteConsumerResponse>, Status> {
        let pb::DeleteConsumerRequest { name } = request.into_inner();
        self.feeds.delete_consumer(&name).await?;
        Ok(Response::new(pb::DeleteConsumerResponse {}))
    }
}
