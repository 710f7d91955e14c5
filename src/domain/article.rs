use std::{fmt, str::FromStr};

use sha2::{Digest, Sha256};
use ulid::Ulid;

use super::{Timestamp, editorial::Editorial};

/// Server-assigned article identifier: a ULID, so identifiers sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArticleId(Ulid);

impl ArticleId {
    /// Length of [`ArticleId::to_bytes`].
    pub const LEN: usize = 16;

    /// Wraps a ULID.
    pub fn from_ulid(ulid: Ulid) -> Self {
        Self(ulid)
    }

    /// Big-endian bytes, in creation order (for storage keys).
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        self.0.0.to_be_bytes()
    }

    /// Inverse of [`ArticleId::to_bytes`].
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(Ulid(u128::from_be_bytes(bytes)))
    }
}

impl fmt::Display for ArticleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a string is not an article identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a 26-character article id (ULID), got {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for ArticleId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s.trim())
            .map(Self)
            .map_err(|_| ParseIdError(s.chars().take(64).collect()))
    }
}

/// The outlet an article comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// Slug identifying the outlet; half of the natural key.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Home page; empty when unknown.
    pub url: String,
}

/// A source of information for the story (agency, originating outlet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InfoSource {
    /// Name of the source.
    pub name: String,
    /// Address of the source; empty when unknown.
    pub uri: String,
    /// Role, e.g. "originating".
    pub role: String,
}

/// Everything a client says about an article except its counters: the part that is versioned
/// and hashed. Always normalized (see the `text` module) once it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleContent {
    /// Publishing outlet.
    pub source: Source,
    /// Canonical address; with `source.id`, the natural key.
    pub uri: String,
    /// Headline.
    pub headline: String,
    /// Summary or standfirst; may be empty.
    pub summary: String,
    /// Full text.
    pub body: String,
    /// BCP-47 language tag.
    pub language: String,
    /// First publication by the outlet.
    pub published_at: Timestamp,
    /// Last change by the outlet, if known.
    pub updated_at: Option<Timestamp>,
    /// Bylines.
    pub authors: Vec<String>,
    /// Section or desk; may be empty.
    pub section: String,
    /// Free-form keywords.
    pub tags: Vec<String>,
    /// Places the story is about.
    pub places: Vec<String>,
    /// Organisations the story is about.
    pub organisations: Vec<String>,
    /// People the story is about.
    pub people: Vec<String>,
    /// Where the story came from.
    pub info_sources: Vec<InfoSource>,
    /// Embargo, status from the sender, urgency, rights, associations.
    pub editorial: Editorial,
}

impl ArticleContent {
    /// SHA-256 over an unambiguous encoding of every field, so that any change of content, and
    /// nothing else, changes the hash.
    pub fn content_hash(&self) -> ContentHash {
        let mut hasher = CanonicalHasher::new();
        let Self {
            source,
            uri,
            headline,
            summary,
            body,
            language,
            published_at,
            updated_at,
            authors,
            section,
            tags,
            places,
            organisations,
            people,
            info_sources,
            editorial,
        } = self;
        hasher.text(&source.id);
        hasher.text(&source.name);
        hasher.text(&source.url);
        hasher.text(uri);
        hasher.text(headline);
        hasher.text(summary);
        hasher.text(body);
        hasher.text(language);
        hasher.timestamp(Some(*published_at));
        hasher.timestamp(*updated_at);
        hasher.list(authors);
        hasher.text(section);
        hasher.list(tags);
        hasher.list(places);
        hasher.list(organisations);
        hasher.list(people);
        hasher.count(info_sources.len());
        for info in info_sources {
            hasher.text(&info.name);
            hasher.text(&info.uri);
            hasher.text(&info.role);
        }
        // Appended only when set, so that articles without editorial metadata keep the hashes
        // they were stored with.
        if !editorial.is_empty() {
            hasher.0.update(editorial.canonical_bytes());
        }
        ContentHash(hasher.0.finalize().into())
    }
}

/// Length-prefixes every value, so that no two different contents feed the same bytes.
struct CanonicalHasher(Sha256);

impl CanonicalHasher {
    fn new() -> Self {
        Self(Sha256::new_with_prefix(b"khabar.article.content.v1\0"))
    }

    fn count(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    fn text(&mut self, s: &str) {
        self.count(s.len());
        self.0.update(s.as_bytes());
    }

    fn list(&mut self, items: &[String]) {
        self.count(items.len());
        for item in items {
            self.text(item);
        }
    }

    fn timestamp(&mut self, t: Option<Timestamp>) {
        match t {
            Some(t) => {
                self.0.update([1]);
                self.0.update(t.to_sortable_bytes());
            }
            None => self.0.update([0]),
        }
    }
}

/// SHA-256 of an article's normalized content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of 64 digits: formatting each byte on its own showed up in profiles of
        // ingest, which answers every call with the hash.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0; 64];
        for (i, byte) in self.0.iter().enumerate() {
            hex[2 * i] = DIGITS[usize::from(byte >> 4)];
            hex[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        // Only ASCII digits were written.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

/// An article that passed validation and normalization, ready to be stored. Its content hash is
/// computed once, where the article is validated, rather than on the single write path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidArticle {
    content: ArticleContent,
    view_count: u64,
    content_hash: ContentHash,
}

impl ValidArticle {
    /// Wraps content that passed validation.
    pub(super) fn new(content: ArticleContent, view_count: u64) -> Self {
        Self {
            content_hash: content.content_hash(),
            content,
            view_count,
        }
    }

    /// The normalized content.
    pub fn content(&self) -> &ArticleContent {
        &self.content
    }

    /// The view counter reported by the outlet.
    pub fn view_count(&self) -> u64 {
        self.view_count
    }

    /// The hash of the content.
    pub fn content_hash(&self) -> ContentHash {
        self.content_hash
    }

    /// Bytes the article takes in memory, give or take.
    pub fn approximate_size(&self) -> usize {
        let c = &self.content;
        let lists: usize = [&c.authors, &c.tags, &c.places, &c.organisations, &c.people]
            .iter()
            .flat_map(|l| l.iter())
            .map(|s| s.len() + 24)
            .sum();
        let info: usize = c
            .info_sources
            .iter()
            .map(|i| i.name.len() + i.uri.len() + i.role.len() + 72)
            .sum();
        c.source.id.len()
            + c.source.name.len()
            + c.source.url.len()
            + c.uri.len()
            + c.headline.len()
            + c.summary.len()
            + c.body.len()
            + c.language.len()
            + c.section.len()
            + lists
            + info
            + 512
    }

    /// The content, for storing.
    pub fn into_content(self) -> ArticleContent {
        self.content
    }

    /// The same article with its content changed by `edit` (and hashed again), for tests that
    /// need a variant of a valid article.
    #[cfg(test)]
    pub fn edited(self, edit: impl FnOnce(&mut ArticleContent)) -> Self {
        let mut content = self.content;
        edit(&mut content);
        Self::new(content, self.view_count)
    }
}

/// Publication status (ninjs pubStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleStatus {
    /// Fit for publication.
    Usable,
    /// Held back for now.
    Withheld,
    /// Retracted.
    Canceled,
}

/// Why and when an article was withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    /// Editor's reason.
    pub reason: String,
    /// When it was retracted.
    pub retracted_at: Timestamp,
}

/// Where an article stands among the stories, as the story index assigned it at ingest.
#[derive(Debug, Clone, Copy)]
pub struct StoryLink {
    /// The first article of its story; the article itself when it starts one.
    pub story_id: ArticleId,
    /// The most similar earlier article of the story, if any.
    pub duplicate_of: Option<ArticleId>,
    /// Estimated similarity (0..=1) to `duplicate_of`; 0 when there is none.
    pub similarity: f32,
}

impl StoryLink {
    /// The link of an article that starts its own story.
    pub fn alone(id: ArticleId) -> Self {
        Self {
            story_id: id,
            duplicate_of: None,
            similarity: 0.0,
        }
    }

    /// Whether the article `id` starts this story.
    pub fn starts(&self, id: ArticleId) -> bool {
        self.story_id == id
    }
}

// Compared bit for bit, so that a stored link reads back equal to itself.
impl PartialEq for StoryLink {
    fn eq(&self, other: &Self) -> bool {
        self.story_id == other.story_id
            && self.duplicate_of == other.duplicate_of
            && self.similarity.to_bits() == other.similarity.to_bits()
    }
}

impl Eq for StoryLink {}

/// A stored article with its server-set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// Server-assigned identifier.
    pub id: ArticleId,
    /// Current content.
    pub content: ArticleContent,
    /// Latest view counter.
    pub view_count: u64,
    /// 1 on creation, +1 for each content change and for the retraction.
    pub version: u64,
    /// Publication status.
    pub status: ArticleStatus,
    /// Hash of `content`.
    pub content_hash: ContentHash,
    /// When the current version was stored.
    pub ingested_at: Timestamp,
    /// When the first version was stored.
    pub first_ingested_at: Timestamp,
    /// Log cursor of the event that produced the current version.
    pub cursor: u64,
    /// Set once retracted.
    pub retraction: Option<Retraction>,
    /// `content.uri` in canonical form; with the source id, the natural key. Empty for an
    /// article stored before canonical addresses (it is computed when read).
    pub canonical_uri: String,
    /// Its story; `None` for an article stored before stories were linked.
    pub story: Option<StoryLink>,
}

impl Article {
    /// Turns the article into its retracted next version, logged at `cursor` at `now`.
    pub fn retract(&mut self, reason: String, now: Timestamp, cursor: u64) {
        self.status = ArticleStatus::Canceled;
        self.retraction = Some(Retraction {
            reason,
            retracted_at: now,
        });
        self.version += 1;
        self.ingested_at = now;
        self.cursor = cursor;
    }

    /// Bytes the article takes in memory or in a message, give or take framing.
    pub fn approximate_size(&self) -> usize {
        let c = &self.content;
        let lists = [&c.authors, &c.tags, &c.places, &c.organisations, &c.people];
        let list_bytes: usize = lists
            .iter()
            .flat_map(|l| l.iter())
            .map(|s| s.len() + 4)
            .sum();
        let info_bytes: usize = c
            .info_sources
            .iter()
            .map(|i| i.name.len() + i.uri.len() + i.role.len() + 12)
            .sum();
        let text = [
            &c.source.id,
            &c.source.name,
            &c.source.url,
            &c.uri,
            &c.headline,
            &c.summary,
            &c.body,
            &c.language,
            &c.section,
        ];
        let text_bytes: usize = text.iter().map(|s| s.len() + 4).sum();
        let retraction = self.retraction.as_ref().map_or(0, |r| r.reason.len() + 24);
        list_bytes + info_bytes + text_bytes + retraction + self.canonical_uri.len() + 320
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> ArticleContent {
        ArticleContent {
            source: Source {
                id: "alkhabar".into(),
                name: "الخبر".into(),
                url: String::new(),
            },
            uri: "https://alkhabar.example/1".into(),
            headline: "عنوان".into(),
            summary: String::new(),
            body: "نص".into(),
            language: "ar".into(),
            published_at: Timestamp::new(1_467_363_600, 0).unwrap(),
            updated_at: None,
            authors: vec![],
            section: String::new(),
            tags: vec!["سوريا".into()],
            places: vec![],
            organisations: vec![],
            people: vec![],
            info_sources: vec![],
            editorial: Default::default(),
        }
    }

    #[test]
    fn id_round_trips_through_text_and_bytes() {
        let id = ArticleId::from_ulid(Ulid::new());
        assert_eq!(id.to_string().len(), 26);
        assert_eq!(id.to_string().parse::<ArticleId>(), Ok(id));
        assert_eq!(id.to_string().to_lowercase().parse::<ArticleId>(), Ok(id));
        assert_eq!(ArticleId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "123",
            "not-an-id-not-an-id-not-an",
            "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥",
        ] {
            assert!(bad.parse::<ArticleId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_is_hex_and_stable() {
        let hash = content().content_hash();
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(content().content_hash(), hash);
        let mut bytes = [0; 32];
        bytes[0] = 0x01;
        bytes[1] = 0xab;
        bytes[31] = 0xf0;
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ContentHash(bytes).to_string(), expected);
    }

    #[test]
    fn hash_changes_with_any_field() {
        let base = content().content_hash();
        let mut moved_between_lists = content();
        moved_between_lists.tags.clear();
        moved_between_lists.places.push("سوريا".into());
        let mut shifted_boundary = content();
        shifted_boundary.headline = "عنوانن".into();
        shifted_boundary.body = "ص".into();
        let mut updated = content();
        updated.updated_at = Some(Timestamp::new(1_467_363_601, 0).unwrap());
        let mut diacritic = content();
        diacritic.body = "نَص".into();
        for changed in [moved_between_lists, shifted_boundary, updated, diacritic] {
            assert_ne!(changed.content_hash(), base, "{changed:?}");
        }
    }
}
