//! The gRPC surface: tonic service implementations, protobuf <-> domain conversions and the
//! request-size layer. Each handler has the same shape: destructure the request, convert it,
//! call [`crate::service`], convert the answer; errors become `tonic::Status` in
//! [`crate::error`] only.

mod articles;
mod convert;
mod encoded;
mod feed;
mod ingest;
mod limits;

pub use articles::ArticleApi;
pub use convert::article_pb_from_draft;
pub use encoded::EncodedFeedEvent;
pub use feed::FeedApi;
pub use ingest::{IngestApi, validate as validate_ingest_request};
pub use limits::{OversizeLayer, remap_oversize};

/// Runs the checks and conversions the handlers apply to a request of `kind`, decoded from
/// `bytes`, as a fuzz target does: nothing a client can send may make them panic.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_request(kind: u8, bytes: &[u8]) {
    use prost::Message;

    use crate::{pb::khabar::v1 as pb, service};
    match kind % 7 {
        0 => {
            if let Ok(request) = pb::IngestRequest::decode(bytes) {
                let _ = validate_ingest_request(request);
            }
        }
        1 => {
            if let Ok(request) = pb::ListArticlesRequest::decode(bytes) {
                let _ = service::articles::list_query(articles::list_request(request), 3 << 20);
            }
        }
        2 => {
            if let Ok(request) = pb::GetArticleRequest::decode(bytes) {
                let _ = convert::parse_id("id", &request.id);
            }
        }
        3 => {
            if let Ok(request) = pb::RetractArticleRequest::decode(bytes) {
                let _ = convert::parse_id("id", &request.id);
                let _ = service::articles::retraction_reason(&request.reason);
            }
        }
        4 => {
            if let Ok(request) = pb::SubscribeRequest::decode(bytes)
                && let Ok(request) = feed::feed_request(request)
            {
                if let Some(service::Start::FromTime(t)) = request.start {
                    let _ = crate::domain::Timestamp::new(t.seconds, t.nanos);
                }
                let _ = service::feeds::checked_filter_and_consumer(request);
            }
        }
        5 => {
            if let Ok(request) = pb::AckRequest::decode(bytes) {
                let _ = service::feeds::consumer_name("consumer", &request.consumer);
            }
        }
        _ => {
            if let Ok(request) = pb::GetConsumerRequest::decode(bytes) {
                let _ = service::feeds::consumer_name("name", &request.name);
            }
            if let Ok(request) = pb::DeleteConsumerRequest::decode(bytes) {
                let _ = service::feeds::consumer_name("name", &request.name);
            }
        }
    }
}
