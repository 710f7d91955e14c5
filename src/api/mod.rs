//! The gRPC surface: tonic service implementations, protobuf <-> domain conversions and the
//! request-size layer. Each handler has the same shape: check the request, convert it, call the
//! store, convert the answer; errors become `tonic::Status` in [`crate::error`] only.

mod articles;
mod convert;
mod encoded;
mod feed;
mod filters;
mod ingest;
mod limits;

pub use articles::ArticleApi;
pub use encoded::EncodedFeedEvent;
pub use feed::FeedApi;
pub use ingest::{IngestApi, validate as validate_ingest_request};
pub use limits::{OversizeLayer, remap_oversize};
