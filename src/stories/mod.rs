//! Near-duplicate stories across outlets: the same story republished by another outlet, copied
//! in part, given a new headline, or written with other spellings, is linked to its first
//! article. Transport- and storage-free: the store fingerprints each article version, persists
//! the fingerprint with it, and asks a [`StoryIndex`] where the article belongs.
//!
//! - [`Fingerprint`]: a bottom-k sketch of the word 3-shingles of an article's headline and
//!   body, folded to their match key, without the source lines and bylines that open or close
//!   the body; compared by [`Fingerprint::similarity`]; written to bytes and read back by
//!   [`Fingerprint::to_bytes`] and [`Fingerprint::from_bytes`].
//! - [`StoryIndex`]: the fingerprints of the articles published within a window of the newest,
//!   filed for lookup, with the story of each; [`StoryIndex::assign`] links a new article to
//!   the most similar earlier one at or above a threshold.

mod boilerplate;
mod fingerprint;
mod index;

pub use boilerplate::{is_furniture, strip_furniture};
pub use fingerprint::{
    Fingerprint, FingerprintDecodeError, LEAD_KEYS, LEAD_WORDS, SHINGLE_WORDS, SKETCH_SIZE,
    SimilarityParts,
};
pub use index::{
    Assignment, DEFAULT_THRESHOLD, DEFAULT_WINDOW, INDEXED_SKETCH, LookupStats, MAX_PER_KEY,
    MAX_SCORED, StoryConfig, StoryIndex,
};
