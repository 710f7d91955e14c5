//! The article model, its validation and its normalization, and the keys articles are compared
//! by (canonical addresses, match keys). Transport-free: nothing here knows about gRPC or about
//! how articles are stored.

mod article;
mod canonical_uri;
pub mod editorial;
pub mod embargo;
mod filter;
mod match_key;
mod text;
mod time;
mod uri;
mod validation;

pub use article::{
    Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, InfoSource, ParseIdError,
    Retraction, Source, StoryLink, ValidArticle,
};
pub use canonical_uri::{canonical_uri, is_tracking_parameter};
pub use filter::ArticleFilter;
pub use match_key::match_key;
pub(crate) use match_key::{match_key_word_hashes, match_key_word_hashes_read};
pub use text::normalize_line;
pub use time::Timestamp;
pub use validation::{
    ArticleDraft, InfoSourceDraft, MAX_BODY_BYTES, MAX_HEADLINE_CHARS, MAX_LIST_ITEM_CHARS,
    MAX_LIST_ITEMS, SourceDraft, TimestampDraft, ValidationError, Violation, describe_violations,
};
