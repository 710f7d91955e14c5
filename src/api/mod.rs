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
pub use encoded::EncodedFeedEvent;
pub use feed::FeedApi;
pub use ingest::{IngestApi, validate as validate_ingest_request};
pub use limits::{OversizeLayer, remap_oversize};
