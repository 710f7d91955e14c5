//! `khabar.v1.IngestService`.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, Span, debug};

use super::{convert, remap_oversize};
use crate::{
    domain::ValidArticle,
    error::{Error, Result},
    metrics::Metrics,
    pb::khabar::v1::{self as pb, ingest_service_server::IngestService},
    service::{Ingest, validate_article},
    store::{ArticleStore, IngestReceipt, PendingWrite},
};

/// Requests of one IngestStream that may be in flight (queued or waiting for their flush)
/// before the server stops reading more from that stream.
const STREAM_WINDOW: usize = 256;

/// Implements `khabar.v1.IngestService` on a store.
#[derive(Clone)]
pub struct IngestApi<S> {
    ingest: Ingest<S>,
    metrics: Arc<Metrics>,
}

impl<S: ArticleStore> IngestApi<S> {
    /// Serves ingests into `store`, counting outcomes in `metrics`.
    pub fn new(store: S, metrics: Arc<Metrics>) -> Self {
        Self {
            ingest: Ingest::new(store),
            metrics,
        }
    }
}

/// Counts what became of one ingest.
fn count(metrics: &Metrics, result: &Result<IngestReceipt>) {
    match result {
        Ok(receipt) => metrics.record_ingest(receipt.outcome),
        Err(Error::InvalidArgument { violations, .. }) => metrics.record_rejection(violations),
        Err(_) => metrics.record_rejection(&[]),
    }
}

/// Checks an ingest request as `Ingest` does: the article's field rules, then normalization.
pub fn validate(request: pb::IngestRequest) -> Result<ValidArticle> {
    let pb::IngestRequest { article } = request;
    validate_article(article.map(convert::article_draft))
}

/// The in-stream answer for a rejected article: the same code, message and violations that
/// Ingest would have answered with.
fn rejection(error: Error) -> pb::IngestResponse {
    let violations = match &error {
        Error::InvalidArgument { violations, .. } => violations
            .iter()
            .map(|v| pb::FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let status = Status::from(error);
    pb::IngestResponse {
        outcome: pb::IngestOutcome::Rejected.into(),
        error: Some(pb::IngestError {
            code: status.code().into(),
            message: status.message().to_owned(),
            violations,
        }),
        ..pb::IngestResponse::default()
    }
}

/// What the responder task waits on, in request order.
enum InFlight {
    Rejected(Error),
    Queued(PendingWrite<IngestReceipt>),
    StreamFailed(Status),
}

#[tonic::async_trait]
impl<S: ArticleStore> IngestService for IngestApi<S> {
    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let result = match validate(request.into_inner()) {
            Ok(article) => self.ingest.ingest(article).await,
            Err(e) => Err(e),
        };
        count(&self.metrics, &result);
        if let Ok(receipt) = &result {
            let span = Span::current();
            span.record("article.id", receipt.id.to_string());
            span.record("khabar.outcome", receipt.outcome.as_str());
        }
        Ok(Response::new(convert::ingest_response(result?)))
    }

    type IngestStreamStream = ReceiverStream<Result<pb::IngestResponse, Status>>;

    async fn ingest_stream(
        &self,
        request: Request<Streaming<pb::IngestRequest>>,
    ) -> Result<Response<Self::IngestStreamStream>, Status> {
        let mut requests = request.into_inner();
        let (in_flight_tx, mut in_flight_rx) = mpsc::channel(STREAM_WINDOW);
        let (responses_tx, responses_rx) = mpsc::channel(STREAM_WINDOW);

        // Reader: validates and queues each article before reading the next, so writes keep the
        // stream's order while up to STREAM_WINDOW of them wait for their flush together.
        let ingest = self.ingest.clone();
        tokio::spawn(
            async move {
                loop {
                    let next = match requests.message().await {
                        Ok(Some(request)) => match validate(request) {
                            Ok(article) => match ingest.enqueue(article).await {
                                Ok(pending) => InFlight::Queued(pending),
                                Err(e) => InFlight::Rejected(e),
                            },
                            Err(e) => InFlight::Rejected(e),
                        },
                        Ok(None) => break,
                        Err(status) => InFlight::StreamFailed(remap_oversize(status)),
                    };
                    let failed = matches!(next, InFlight::StreamFailed(_));
                    if in_flight_tx.send(next).await.is_err() || failed {
                        break;
                    }
                }
            }
            .in_current_span(),
        );

        // Responder: answers in request order, each once its write is durable.
        let metrics = self.metrics.clone();
        tokio::spawn(
            async move {
                while let Some(in_flight) = in_flight_rx.recv().await {
                    let outcome = match in_flight {
                        InFlight::Rejected(e) => Ok(Err(e)),
                        InFlight::Queued(pending) => Ok(pending.await.map_err(Error::from)),
                        InFlight::StreamFailed(status) => Err(status),
                    };
                    let response = outcome.map(|result| {
                        count(&metrics, &result);
                        match result {
                            Ok(receipt) => convert::ingest_response(receipt),
                            Err(e) => rejection(e),
                        }
                    });
                    let failed = response.is_err();
                    if responses_tx.send(response).await.is_err() {
                        debug!("ingest stream client went away");
                        break;
                    }
                    if failed {
                        break;
                    }
                }
            }
            .in_current_span(),
        );

        Ok(Response::new(ReceiverStream::new(responses_rx)))
    }
}
