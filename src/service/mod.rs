//! The rules of every call, on domain types and free of any transport: where a feed starts and
//! where a durable consumer resumes, what a retraction reason must be, how listings are paged,
//! how filters are normalized. The gRPC handlers in [`crate::api`] only destructure requests,
//! convert them, call this layer and convert its answers; errors are [`crate::error::Error`],
//! mapped to a status in one place.

pub(crate) mod articles;
pub(crate) mod feeds;
mod filters;
mod ingest;

pub use articles::{Articles, ListRequest};
pub use feeds::{ConsumerView, FeedRequest, Feeds, Start};
pub use filters::{FilterDraft, article_filter};
pub use ingest::{Ingest, validate_article};

use crate::{
    domain::{Timestamp, TimestampDraft},
    error::{Error, Result},
};

/// A time sent by a client, checked against the range every stored time keeps to.
fn checked_time(field: &str, raw: TimestampDraft) -> Result<Timestamp> {
    Timestamp::new(raw.seconds, raw.nanos).ok_or_else(|| {
        Error::invalid_field(field, "must be a valid time between years 0001 and 9999")
    })
}

/// [`checked_time`] for an optional time.
fn time(field: &str, raw: Option<TimestampDraft>) -> Result<Option<Timestamp>> {
    raw.map(|raw| checked_time(field, raw)).transpose()
}
