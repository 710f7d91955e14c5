//! The article model, its validation and its normalization. Transport-free: nothing here knows
//! about gRPC or about how articles are stored.

mod article;
pub mod editorial;
pub mod embargo;
mod filter;
mod text;
mod time;
mod uri;
mod validation;

pub use article::{
    Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, InfoSource, ParseIdError,
    Retraction, Source, ValidArticle,
};
pub use filter::ArticleFilter;
pub use text::normalize_line;
pub use time::Timestamp;
pub use validation::{
    ArticleDraft, InfoSourceDraft, MAX_BODY_BYTES, MAX_HEADLINE_CHARS, MAX_LIST_ITEM_CHARS,
    MAX_LIST_ITEMS, SourceDraft, TimestampDraft, ValidationError, Violation, describe_violations,
};
