//! Editorial metadata sent with an article (IPTC ninjs and NewsML-G2 terms): embargo, the
//! sender's publication status, urgency, genres, where the story is located, rights, other
//! identifiers, associations to other items and expiry. Like the rest of an article's content
//! it is versioned and hashed.
//!
//! This module holds the rules only: what a valid value is ([`EditorialDraft::validate`]), whether
//! an article may be shown at a given time ([`visibility`]) and what a new version does to the
//! previous one ([`transition`]). The proposed protobuf fields are in the `editorial.md` next to
//! this file.
//!
//! # Association relations
//! The relation of an association is a token, not a closed list: lowercase ASCII letters and
//! digits in words joined by single hyphens (`correction-of`, `follow-up-of`, `featureimage`), at
//! most [`MAX_REL_CHARS`] characters. The four relations in [`rel`] are the ones khabar
//! documents; others are stored and sent on as they came. A closed list would refuse items that
//! ninjs senders legitimately name otherwise (ninjs leaves association names free), while a
//! pattern still keeps free text, spaces and case variants out, so relations stay comparable and
//! filterable.

use std::{fmt, str::FromStr};

use super::{
    ArticleId, TimestampDraft, ValidationError, Violation,
    text::{find_control, normalize_block, normalize_line},
    time::Timestamp,
    uri::check_url_or_urn,
    validation::capped,
};

/// Most genres on one article.
pub const MAX_GENRES: usize = 20;
/// Most alternative identifiers on one article.
pub const MAX_ALT_IDS: usize = 20;
/// Most associations on one article.
pub const MAX_ASSOCIATIONS: usize = 50;
/// Longest genre code, in characters.
pub const MAX_CODE_CHARS: usize = 200;
/// Longest association relation, in characters.
pub const MAX_REL_CHARS: usize = 64;
/// Longest alternative id value, in characters.
pub const MAX_ALT_ID_VALUE_CHARS: usize = 500;
/// Longest `located`, genre name and `copyright_holder`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `copyright_notice`, in characters.
pub const MAX_NOTICE_CHARS: usize = 1_000;
/// Longest `usage_terms` and `ed_note`, in characters (newlines allowed).
pub const MAX_TERMS_CHARS: usize = 4_000;
/// Longest association address, in UTF-8 bytes (as for the article's own `uri`).
pub const MAX_URI_BYTES: usize = 2_048;
/// How far ahead of the time of ingest an embargo may lie. An item held for longer is better
/// sent as `withheld`, which needs no time.
pub const MAX_EMBARGO_DAYS: i64 = 366;
/// Prefix of alternative id roles that khabar sets itself (the article id in ninjs output);
/// senders may not use it.
pub const RESERVED_ROLE_PREFIX: &str = "khabar:";
/// The retraction reason when a sender cancels an article without an editorial note.
pub const CANCELED_BY_SOURCE: &str = "canceled by source";

/// The documented association relations.
pub mod rel {
    /// This item corrects the target.
    pub const CORRECTION_OF: &str = "correction-of";
    /// This item follows up the target story.
    pub const FOLLOW_UP_OF: &str = "follow-up-of";
    /// The target is related, without a more precise relation.
    pub const RELATED: &str = "related";
    /// This item is a translation of the target.
    pub const TRANSLATION_OF: &str = "translation-of";
    /// All of the above.
    pub const DOCUMENTED: [&str; 4] = [CORRECTION_OF, FOLLOW_UP_OF, RELATED, TRANSLATION_OF];
}

/// Publication status as the sender gave it (ninjs `pubstatus`). The stored article's
/// [`super::ArticleStatus`] is derived from it and from retractions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PubStatus {
    /// Fit for publication (also what an unset status means).
    #[default]
    Usable,
    /// Held back, without a time, until a later version says usable.
    Withheld,
    /// Retracted by the sender.
    Canceled,
}

impl PubStatus {
    /// The proposed protobuf enum number (0 is unset and reads as usable).
    pub fn number(self) -> i32 {
        match self {
            Self::Usable => 1,
            Self::Withheld => 2,
            Self::Canceled => 3,
        }
    }

    /// Inverse of [`PubStatus::number`]; 0 (unset) is [`PubStatus::Usable`].
    pub fn from_number(n: i32) -> Option<Self> {
        match n {
            0 | 1 => Some(Self::Usable),
            2 => Some(Self::Withheld),
            3 => Some(Self::Canceled),
            _ => None,
        }
    }

    /// The ninjs spelling: `usable`, `withheld` or `canceled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usable => "usable",
            Self::Withheld => "withheld",
            Self::Canceled => "canceled",
        }
    }
}

impl FromStr for PubStatus {
    type Err = ();

    /// Parses the ninjs spelling exactly (lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "usable" => Ok(Self::Usable),
            "withheld" => Ok(Self::Withheld),
            "canceled" => Ok(Self::Canceled),
            _ => Err(()),
        }
    }
}

/// Editorial urgency from 1 (most urgent) to 9 (least urgent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Urgency(u8);

impl Urgency {
    /// The most urgent.
    pub const MOST: Urgency = Urgency(1);
    /// The least urgent.
    pub const LEAST: Urgency = Urgency(9);

    /// `None` outside 1..=9.
    pub fn new(value: u32) -> Option<Self> {
        u8::try_from(value)
            .ok()
            .filter(|v| (1..=9).contains(v))
            .map(Self)
    }

    /// The value, 1..=9.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A genre: the nature or journalistic form of the content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Genre {
    /// A code without spaces: a QCode such as `genre:Analysis` or a URI of a controlled
    /// vocabulary entry.
    pub code: String,
    /// Display name; may be empty.
    pub name: String,
}

/// Another identifier of the article (a wire service's id, an ISAN...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AltId {
    /// What kind of identifier, e.g. `guid`, `reuters`.
    pub role: String,
    /// The identifier.
    pub value: String,
}

/// What an association points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AssociationTarget {
    /// An item known by its address (an absolute http(s) URL or a URN).
    Uri(String),
    /// Another article stored in khabar.
    Article(ArticleId),
}

/// A link from this article to another item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Association {
    /// The relation, e.g. [`rel::CORRECTION_OF`].
    pub rel: String,
    /// The item it points at.
    pub target: AssociationTarget,
}

/// Validated, normalized editorial metadata of one article version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Editorial {
    /// Not to be published before this time.
    pub embargoed: Option<Timestamp>,
    /// The sender's publication status.
    pub pubstatus: PubStatus,
    /// Editorial urgency; `None` when unset.
    pub urgency: Option<Urgency>,
    /// Genres.
    pub genres: Vec<Genre>,
    /// Where the story originates, e.g. "دير الزور"; may be empty.
    pub located: String,
    /// Who claims the copyright; may be empty.
    pub copyright_holder: String,
    /// The copyright notice; may be empty.
    pub copyright_notice: String,
    /// Terms of use, in words; may be empty.
    pub usage_terms: String,
    /// Other identifiers of the article.
    pub alt_ids: Vec<AltId>,
    /// Links to other items.
    pub associations: Vec<Association>,
    /// Left out of listings from this time on.
    pub expires: Option<Timestamp>,
    /// A note for editors, not for publication; the retraction reason when the sender cancels.
    pub ed_note: String,
}

impl Editorial {
    /// True when nothing is set, as for every article stored before these fields existed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The codes of the genres, as listings and feeds filter on them.
    pub fn genre_codes(&self) -> Vec<String> {
        self.genres.iter().map(|g| g.code.clone()).collect()
    }

    /// An unambiguous encoding of every field (each value length-prefixed) for the content hash.
    /// Feed it to the hash only when [`Editorial::is_empty`] is false, so that the hashes of
    /// articles without editorial metadata stay what they were.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"khabar.article.editorial.v1\0");
        let Self {
            embargoed,
            pubstatus,
            urgency,
            genres,
            located,
            copyright_holder,
            copyright_notice,
            usage_terms,
            alt_ids,
            associations,
            expires,
            ed_note,
        } = self;
        put_time(&mut out, *embargoed);
        out.push(pubstatus.number() as u8);
        out.push(urgency.map_or(0, Urgency::get));
        put_count(&mut out, genres.len());
        for g in genres {
            put_text(&mut out, &g.code);
            put_text(&mut out, &g.name);
        }
        put_text(&mut out, located);
        put_text(&mut out, copyright_holder);
        put_text(&mut out, copyright_notice);
        put_text(&mut out, usage_terms);
        put_count(&mut out, alt_ids.len());
        for a in alt_ids {
            put_text(&mut out, &a.role);
            put_text(&mut out, &a.value);
        }
        put_count(&mut out, associations.len());
        for a in associations {
            put_text(&mut out, &a.rel);
            match &a.target {
                AssociationTarget::Uri(uri) => {
                    out.push(1);
                    put_text(&mut out, uri);
                }
                AssociationTarget::Article(id) => {
                    out.push(2);
                    out.extend_from_slice(&id.to_bytes());
                }
            }
        }
        put_time(&mut out, *expires);
        put_text(&mut out, ed_note);
        out
    }

    /// Whether the article may be shown to readers at `now`.
    pub fn visibility(&self, now: Timestamp) -> Visibility {
        visibility(self.embargoed, self.pubstatus, self.expires, now)
    }
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_count(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_time(out: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_sortable_bytes());
        }
        None => out.push(0),
    }
}

/// A genre as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenreDraft {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// An alternative id as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltIdDraft {
    /// Role.
    pub role: String,
    /// Value.
    pub value: String,
}

/// An association as sent: exactly one of `uri` and `article_id` must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociationDraft {
    /// Relation.
    pub rel: String,
    /// Target address.
    pub uri: String,
    /// Target article id.
    pub article_id: String,
}

/// Editorial metadata as a client sent it: unvalidated, unnormalized. Numbers are kept as sent
/// so that out-of-range values can be reported on their field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditorialDraft {
    /// Embargo time.
    pub embargoed: Option<TimestampDraft>,
    /// Proposed `PubStatus` enum number: 0 unset (usable), 1 usable, 2 withheld, 3 canceled.
    pub pubstatus: i32,
    /// 0 unset, 1..=9.
    pub urgency: u32,
    /// Genres.
    pub genres: Vec<GenreDraft>,
    /// Where the story originates.
    pub located: String,
    /// Copyright holder.
    pub copyright_holder: String,
    /// Copyright notice.
    pub copyright_notice: String,
    /// Usage terms.
    pub usage_terms: String,
    /// Alternative ids.
    pub alt_ids: Vec<AltIdDraft>,
    /// Associations.
    pub associations: Vec<AssociationDraft>,
    /// Expiry time.
    pub expires: Option<TimestampDraft>,
    /// Editorial note.
    pub ed_note: String,
}

impl Editorial {
    /// The draft that validates back into this value (for re-sending a stored article).
    pub fn to_draft(&self) -> EditorialDraft {
        let time = |t: Option<Timestamp>| {
            t.map(|t| TimestampDraft {
                seconds: t.seconds(),
                // Always below 1e9.
                nanos: t.nanos() as i32,
            })
        };
        EditorialDraft {
            embargoed: time(self.embargoed),
            pubstatus: self.pubstatus.number(),
            urgency: self.urgency.map_or(0, |u| u32::from(u.get())),
            genres: self
                .genres
                .iter()
                .map(|g| GenreDraft {
                    code: g.code.clone(),
                    name: g.name.clone(),
                })
                .collect(),
            located: self.located.clone(),
            copyright_holder: self.copyright_holder.clone(),
            copyright_notice: self.copyright_notice.clone(),
            usage_terms: self.usage_terms.clone(),
            alt_ids: self
                .alt_ids
                .iter()
                .map(|a| AltIdDraft {
                    role: a.role.clone(),
                    value: a.value.clone(),
                })
                .collect(),
            associations: self
                .associations
                .iter()
                .map(|a| match &a.target {
                    AssociationTarget::Uri(uri) => AssociationDraft {
                        rel: a.rel.clone(),
                        uri: uri.clone(),
                        article_id: String::new(),
                    },
                    AssociationTarget::Article(id) => AssociationDraft {
                        rel: a.rel.clone(),
                        uri: String::new(),
                        article_id: id.to_string(),
                    },
                })
                .collect(),
            expires: time(self.expires),
            ed_note: self.ed_note.clone(),
        }
    }
}

impl EditorialDraft {
    /// Validates and normalizes the draft; `now` bounds how far ahead an embargo may lie.
    pub fn validate(self, now: Timestamp) -> Result<Editorial, ValidationError> {
        let (editorial, violations) = self.check(now);
        if violations.is_empty() {
            Ok(editorial)
        } else {
            Err(capped(violations))
        }
    }

    /// The normalized metadata and every violation, uncapped, for a caller that reports them
    /// together with other violations (an article's).
    pub(super) fn check(self, now: Timestamp) -> (Editorial, Vec<Violation>) {
        let mut check = Check::default();
        let editorial = check.editorial(self, now);
        (editorial, check.violations)
    }
}

#[derive(Default)]
struct Check {
    violations: Vec<Violation>,
}

impl Check {
    fn fail(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    fn editorial(&mut self, draft: EditorialDraft, now: Timestamp) -> Editorial {
        let EditorialDraft {
            embargoed,
            pubstatus,
            urgency,
            genres,
            located,
            copyright_holder,
            copyright_notice,
            usage_terms,
            alt_ids,
            associations,
            expires,
            ed_note,
        } = draft;
        let latest_embargo = now.saturating_add_seconds(MAX_EMBARGO_DAYS * 24 * 60 * 60);
        let embargoed = self.time("embargoed", embargoed).and_then(|t| {
            if t > latest_embargo {
                self.fail(
                    "embargoed",
                    format!(
                        "must be at most {MAX_EMBARGO_DAYS} days ahead; to hold an article \
                         without a release time send pubstatus withheld"
                    ),
                );
                None
            } else {
                Some(t)
            }
        });
        let pubstatus = PubStatus::from_number(pubstatus).unwrap_or_else(|| {
            self.fail(
                "pubstatus",
                format!(
                    "must be PUB_STATUS_USABLE, PUB_STATUS_WITHHELD or PUB_STATUS_CANCELED (or \
                     unset, meaning usable), got {pubstatus}"
                ),
            );
            PubStatus::Usable
        });
        let urgency = match urgency {
            0 => None,
            n => Urgency::new(n).or_else(|| {
                self.fail(
                    "urgency",
                    format!(
                        "must be from 1 (most urgent) to 9 (least urgent), or 0 for unset, got {n}"
                    ),
                );
                None
            }),
        };
        let genres = self.genres(genres);
        let located = self.line("located", &located, false, MAX_NAME_CHARS);
        let copyright_holder =
            self.line("copyright_holder", &copyright_holder, false, MAX_NAME_CHARS);
        let copyright_notice = self.line(
            "copyright_notice",
            &copyright_notice,
            false,
            MAX_NOTICE_CHARS,
        );
        let usage_terms = self.block("usage_terms", usage_terms, MAX_TERMS_CHARS);
        let alt_ids = self.alt_ids(alt_ids);
        let associations = self.associations(associations);
        let expires = self.time("expires", expires);
        let expires = match (embargoed, expires) {
            (Some(embargo), Some(expiry)) if expiry <= embargo => {
                self.fail(
                    "expires",
                    "must be later than embargoed, or the article would never be visible",
                );
                None
            }
            (_, expires) => expires,
        };
        let ed_note = self.block("ed_note", ed_note, MAX_TERMS_CHARS);
        Editorial {
            embargoed,
            pubstatus,
            urgency,
            genres,
            located,
            copyright_holder,
            copyright_notice,
            usage_terms,
            alt_ids,
            associations,
            expires,
            ed_note,
        }
    }

    fn time(&mut self, field: &str, raw: Option<TimestampDraft>) -> Option<Timestamp> {
        let raw = raw?;
        let t = Timestamp::new(raw.seconds, raw.nanos);
        if t.is_none() {
            self.fail(field, "must be a valid time between years 0001 and 9999");
        }
        t
    }

    /// A single-line text; empty when invalid.
    fn line(&mut self, field: &str, raw: &str, required: bool, max_chars: usize) -> String {
        let text = normalize_line(raw);
        let problem = if text.is_empty() {
            required.then(|| "is required and must not be blank".to_owned())
        } else if let Some((at, c)) = find_control(&text, &[]) {
            Some(control_problem(at, c, "line breaks and control characters"))
        } else {
            too_long(&text, max_chars)
        };
        self.settle(field, text, problem)
    }

    /// Multi-line text where newline and tab are the only control characters allowed.
    fn block(&mut self, field: &str, raw: String, max_chars: usize) -> String {
        let text = normalize_block(raw);
        let problem = if let Some((at, c)) = find_control(&text, &['\n', '\t']) {
            Some(control_problem(
                at,
                c,
                "control characters other than newline and tab",
            ))
        } else {
            too_long(&text, max_chars)
        };
        self.settle(field, text, problem)
    }

    /// A code: one word without white space, like a QCode or a URI.
    fn code(&mut self, field: &str, raw: &str, max_chars: usize, example: &str) -> String {
        let text = normalize_line(raw);
        let problem = if text.is_empty() {
            Some("is required and must not be blank".to_owned())
        } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some(format!(
                "must be a code without spaces or control characters, such as {example}, got {}",
                quoted(&text)
            ))
        } else {
            too_long(&text, max_chars)
        };
        self.settle(field, text, problem)
    }

    fn settle(&mut self, field: &str, text: String, problem: Option<String>) -> String {
        match problem {
            Some(problem) => {
                self.fail(field, problem);
                String::new()
            }
            None => text,
        }
    }

    fn count(&mut self, field: &str, n: usize, max: usize) -> bool {
        if n > max {
            self.fail(field, format!("has {n} items; at most {max} are allowed"));
            false
        } else {
            true
        }
    }

    fn genres(&mut self, genres: Vec<GenreDraft>) -> Vec<Genre> {
        if !self.count("genres", genres.len(), MAX_GENRES) {
            return Vec::new();
        }
        let mut out: Vec<Genre> = Vec::with_capacity(genres.len());
        for (i, g) in genres.into_iter().enumerate() {
            let code = self.code(
                &format!("genres[{i}].code"),
                &g.code,
                MAX_CODE_CHARS,
                "\"genre:Analysis\" or \"http://cv.iptc.org/newscodes/genre/Analysis\"",
            );
            let name = self.line(&format!("genres[{i}].name"), &g.name, false, MAX_NAME_CHARS);
            if !code.is_empty()
                && let Some(first) = out.iter().position(|seen| seen.code == code)
            {
                self.fail(
                    format!("genres[{i}].code"),
                    format!("repeats genres[{first}].code {}", quoted(&code)),
                );
            }
            out.push(Genre { code, name });
        }
        out
    }

    fn alt_ids(&mut self, alt_ids: Vec<AltIdDraft>) -> Vec<AltId> {
        if !self.count("alt_ids", alt_ids.len(), MAX_ALT_IDS) {
            return Vec::new();
        }
        let mut out: Vec<AltId> = Vec::with_capacity(alt_ids.len());
        for (i, a) in alt_ids.into_iter().enumerate() {
            let field = format!("alt_ids[{i}].role");
            let mut role = self.code(&field, &a.role, MAX_REL_CHARS, "\"guid\" or \"reuters\"");
            if role.starts_with(RESERVED_ROLE_PREFIX) {
                self.fail(
                    field,
                    format!(
                        "must not start with {RESERVED_ROLE_PREFIX:?}: such roles are set by the \
                         server, got {}",
                        quoted(&role)
                    ),
                );
                role.clear();
            }
            let value = self.line(
                &format!("alt_ids[{i}].value"),
                &a.value,
                true,
                MAX_ALT_ID_VALUE_CHARS,
            );
            if !role.is_empty()
                && !value.is_empty()
                && let Some(first) = out
                    .iter()
                    .position(|seen| seen.role == role && seen.value == value)
            {
                self.fail(format!("alt_ids[{i}]"), format!("repeats alt_ids[{first}]"));
            }
            out.push(AltId { role, value });
        }
        out
    }

    fn associations(&mut self, associations: Vec<AssociationDraft>) -> Vec<Association> {
        if !self.count("associations", associations.len(), MAX_ASSOCIATIONS) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(associations.len());
        for (i, a) in associations.into_iter().enumerate() {
            let rel = self.rel(&format!("associations[{i}].rel"), &a.rel);
            let uri = normalize_line(&a.uri);
            let article_id = normalize_line(&a.article_id);
            let target = match (uri.is_empty(), article_id.is_empty()) {
                (true, true) => {
                    self.fail(
                        format!("associations[{i}]"),
                        "needs a target: set uri (an absolute http(s) URL or a URN) or \
                         article_id (a khabar article id)",
                    );
                    None
                }
                (false, false) => {
                    self.fail(
                        format!("associations[{i}]"),
                        "has both uri and article_id; set only one",
                    );
                    None
                }
                (false, true) => self.target_uri(&format!("associations[{i}].uri"), uri),
                (true, false) => match article_id.parse::<ArticleId>() {
                    Ok(id) => Some(AssociationTarget::Article(id)),
                    Err(e) => {
                        self.fail(format!("associations[{i}].article_id"), e.to_string());
                        None
                    }
                },
            };
            if let Some(target) = target {
                out.push(Association { rel, target });
            }
        }
        out
    }

    fn rel(&mut self, field: &str, raw: &str) -> String {
        let rel = normalize_line(raw);
        let problem = if rel.is_empty() {
            Some(format!(
                "is required: one of {} or another lowercase token",
                rel::DOCUMENTED.join(", ")
            ))
        } else if !is_rel_token(&rel) || rel.chars().count() > MAX_REL_CHARS {
            Some(format!(
                "must be a lowercase token of at most {MAX_REL_CHARS} characters: ASCII letters \
                 and digits in words joined by single '-' (e.g. \"correction-of\"), got {}",
                quoted(&rel)
            ))
        } else {
            None
        };
        self.settle(field, rel, problem)
    }

    fn target_uri(&mut self, field: &str, uri: String) -> Option<AssociationTarget> {
        let problem = if uri.len() > MAX_URI_BYTES {
            Some(format!(
                "is {} bytes long; at most {MAX_URI_BYTES} are allowed",
                uri.len()
            ))
        } else {
            check_url_or_urn(&uri).err().map(|why| {
                format!(
                    "must be an absolute http(s) URL or a URN (urn:nid:nss): {why}, got {}",
                    quoted(&uri)
                )
            })
        };
        match problem {
            Some(problem) => {
                self.fail(field, problem);
                None
            }
            None => Some(AssociationTarget::Uri(uri)),
        }
    }
}

/// `[a-z][a-z0-9]*` words joined by single hyphens.
fn is_rel_token(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn too_long(text: &str, max: usize) -> Option<String> {
    let chars = text.chars().count();
    (chars > max).then(|| format!("is {chars} characters long; at most {max} are allowed"))
}

fn control_problem(at: usize, c: char, what: &str) -> String {
    format!(
        "must not contain {what}: found U+{:04X} at character {at}",
        c as u32
    )
}

fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        format!("{:?}…", s.chars().take(MAX).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

/// Whether an article may be shown to a reader, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Shown.
    Visible,
    /// Hidden until the embargo time.
    Embargoed {
        /// When it becomes visible.
        until: Timestamp,
    },
    /// Hidden without a time, until a later version says usable.
    Withheld,
    /// Retracted by the sender.
    Canceled,
    /// Past its expiry: shown when asked for by id, left out of listings unless asked for.
    Expired,
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Visible => f.write_str("visible"),
            Self::Embargoed { .. } => f.write_str("embargoed"),
            Self::Withheld => f.write_str("withheld"),
            Self::Canceled => f.write_str("canceled"),
            Self::Expired => f.write_str("expired"),
        }
    }
}

/// Decides visibility at `now`. A canceled status wins over everything, then withheld (it has
/// no end), then an embargo still running, then expiry. The embargo ends at its time exactly
/// (`now == embargoed` is visible) and expiry begins at its time exactly.
pub fn visibility(
    embargoed: Option<Timestamp>,
    pubstatus: PubStatus,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> Visibility {
    match pubstatus {
        PubStatus::Canceled => return Visibility::Canceled,
        PubStatus::Withheld => return Visibility::Withheld,
        PubStatus::Usable => {}
    }
    if let Some(until) = embargoed.filter(|until| now < *until) {
        return Visibility::Embargoed { until };
    }
    if expires.is_some_and(|expiry| now >= expiry) {
        return Visibility::Expired;
    }
    Visibility::Visible
}

/// What the stored previous version of an article means for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PreviousVersion {
    /// Some version was released: a `CREATED` event is in the log and readers have seen it.
    pub released: bool,
    /// The article is retracted (by `RetractArticle` or by a canceled version).
    pub retracted: bool,
}

/// The event a release appends to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseEvent {
    /// The article's first appearance in the log.
    Created,
    /// A new version of an article readers have seen.
    Updated,
}

/// What the server does with a new version of an article (a first version included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Store it and append `event` to the log now; drop any pending embargo of the article
    /// (an embargo that was moved into the past or lifted).
    Publish {
        /// The event to append.
        event: ReleaseEvent,
    },
    /// Store it without an event and schedule its release at `until`, replacing any pending
    /// release of the article (the embargo moved). Readers get NOT_FOUND until then.
    Embargo {
        /// The release time.
        until: Timestamp,
        /// The event the release will append.
        event: ReleaseEvent,
    },
    /// Store it without an event and drop any pending release: hidden without a time until a
    /// later version says usable.
    Withhold,
    /// Retract the article as `RetractArticle` does, with `reason`, and drop any pending
    /// release. When `announce` is false the article was never released, and no event is
    /// appended: feeds never saw it, and a `RETRACTED` event would reveal that it exists.
    Retract {
        /// The retraction reason: the version's editorial note, or [`CANCELED_BY_SOURCE`].
        reason: String,
        /// Whether to append a `RETRACTED` event.
        announce: bool,
    },
    /// Nothing to do: a canceled version of an article already retracted.
    Unchanged,
    /// Refused as for any ingest of a retracted article (`FAILED_PRECONDITION`).
    Refused,
}

/// The rules for a new version (`next`, stored at `now`) given the previous one (`None` for a
/// first version). Expiry does not hold anything back: an expired article is stored and its
/// event appended as usual; expiry only leaves it out of listings.
pub fn transition(
    previous: Option<PreviousVersion>,
    next: &Editorial,
    now: Timestamp,
) -> Transition {
    let previous = previous.unwrap_or_default();
    if previous.retracted {
        return match next.pubstatus {
            PubStatus::Canceled => Transition::Unchanged,
            _ => Transition::Refused,
        };
    }
    let event = if previous.released {
        ReleaseEvent::Updated
    } else {
        ReleaseEvent::Created
    };
    match next.visibility(now) {
        Visibility::Canceled => Transition::Retract {
            reason: cancel_reason(next),
            announce: previous.released,
        },
        Visibility::Withheld => Transition::Withhold,
        Visibility::Embargoed { until } => Transition::Embargo { until, event },
        Visibility::Visible | Visibility::Expired => Transition::Publish { event },
    }
}

/// The reason recorded when the sender cancels: its editorial note, or [`CANCELED_BY_SOURCE`].
pub fn cancel_reason(editorial: &Editorial) -> String {
    let note = editorial.ed_note.trim();
    if note.is_empty() {
        CANCELED_BY_SOURCE.to_owned()
    } else {
        // A retraction reason is one line; the note may have several.
        let line = normalize_line(&note.split_whitespace().collect::<Vec<_>>().join(" "));
        line.chars().take(MAX_NOTICE_CHARS).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ArticleDraft, validation::MAX_REPORTED_VIOLATIONS};

    const NOW: i64 = 1_800_000_000;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::new(seconds, 0).unwrap()
    }

    fn now() -> Timestamp {
        at(NOW)
    }

    fn ts(seconds: i64) -> Option<TimestampDraft> {
        Some(TimestampDraft { seconds, nanos: 0 })
    }

    fn full_draft() -> EditorialDraft {
        EditorialDraft {
            embargoed: ts(NOW + 3600),
            pubstatus: 1,
            urgency: 3,
            genres: vec![GenreDraft {
                code: "genre:Analysis".into(),
                name: "تحليل".into(),
            }],
            located: "دير الزور".into(),
            copyright_holder: "الخبر".into(),
            copyright_notice: "© 2016 الخبر".into(),
            usage_terms: "لا يُنشر قبل موعد الحظر.\nNot for publication before the embargo.".into(),
            alt_ids: vec![AltIdDraft {
                role: "guid".into(),
                value: "urn:newsml:alkhabar.example:2016:bukamal".into(),
            }],
            associations: vec![
                AssociationDraft {
                    rel: rel::FOLLOW_UP_OF.into(),
                    uri: "https://alkhabar.example/news/bukamal-offensive".into(),
                    article_id: String::new(),
                },
                AssociationDraft {
                    rel: rel::CORRECTION_OF.into(),
                    uri: String::new(),
                    article_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
                },
            ],
            expires: ts(NOW + 30 * 86_400),
            ed_note: String::new(),
        }
    }

    fn fields(draft: EditorialDraft) -> Vec<String> {
        match draft.validate(now()) {
            Ok(e) => panic!("expected violations, got {e:?}"),
            Err(e) => e.violations.into_iter().map(|v| v.field).collect(),
        }
    }

    fn describe(draft: EditorialDraft) -> Vec<(String, String)> {
        draft
            .validate(now())
            .unwrap_err()
            .violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect()
    }

    #[test]
    fn accepts_every_field_and_keeps_arabic_as_sent() {
        let e = full_draft().validate(now()).expect("valid");
        assert_eq!(e.embargoed, Some(at(NOW + 3600)));
        assert_eq!(e.pubstatus, PubStatus::Usable);
        assert_eq!(e.urgency.map(Urgency::get), Some(3));
        assert_eq!(
            e.genres,
            [Genre {
                code: "genre:Analysis".into(),
                name: "تحليل".into()
            }]
        );
        assert_eq!(e.located, "دير الزور");
        assert_eq!(e.copyright_notice, "© 2016 الخبر");
        assert!(e.usage_terms.contains('\n'));
        assert_eq!(e.alt_ids[0].role, "guid");
        assert_eq!(
            e.associations[1].target,
            AssociationTarget::Article("01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap())
        );
        assert_eq!(e.expires, Some(at(NOW + 30 * 86_400)));
        assert_eq!(e.to_draft().validate(now()), Ok(e));
    }

    #[test]
    fn an_empty_draft_is_empty_editorial() {
        let e = EditorialDraft::default().validate(now()).unwrap();
        assert!(e.is_empty());
        assert_eq!(e.pubstatus, PubStatus::Usable);
        assert_eq!(e.visibility(now()), Visibility::Visible);
    }

    #[test]
    fn normalizes_text_like_the_other_fields() {
        let mut draft = full_draft();
        draft.located = "  \u{2067}دير الزور\u{2069} ".into();
        // "دير" with the alef-hamza spelled as alef + combining hamza: NFC composes it.
        draft.copyright_holder = "\u{0627}\u{0654}الخبر".into();
        draft.genres[0].code = " genre:Analysis ".into();
        let e = draft.validate(now()).unwrap();
        assert_eq!(e.located, "دير الزور");
        assert_eq!(e.copyright_holder, "\u{0623}الخبر");
        assert_eq!(e.genres[0].code, "genre:Analysis");
    }

    #[test]
    fn reports_each_broken_rule_on_its_field() {
        let draft = EditorialDraft {
            embargoed: ts(NOW + (MAX_EMBARGO_DAYS + 1) * 86_400),
            pubstatus: 7,
            urgency: 10,
            genres: vec![
                GenreDraft {
                    code: "genre:News".into(),
                    name: String::new(),
                },
                GenreDraft {
                    code: "two words".into(),
                    name: "اسم".into(),
                },
                GenreDraft {
                    code: String::new(),
                    name: "سطر\nسطر".into(),
                },
            ],
            located: "دير\nالزور".into(),
            copyright_holder: "ا".repeat(MAX_NAME_CHARS + 1),
            alt_ids: vec![AltIdDraft {
                role: "khabar:id".into(),
                value: " ".into(),
            }],
            associations: vec![
                AssociationDraft {
                    rel: "Correction Of".into(),
                    uri: "not a uri".into(),
                    article_id: String::new(),
                },
                AssociationDraft {
                    rel: "related".into(),
                    ..AssociationDraft::default()
                },
                AssociationDraft {
                    rel: "related".into(),
                    uri: "https://a.example/".into(),
                    article_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
                },
                AssociationDraft {
                    rel: "related".into(),
                    uri: String::new(),
                    article_id: "nope".into(),
                },
            ],
            expires: Some(TimestampDraft {
                seconds: 0,
                nanos: -1,
            }),
            ..EditorialDraft::default()
        };
        assert_eq!(
            fields(draft),
            [
                "embargoed",
                "pubstatus",
                "urgency",
                "genres[1].code",
                "genres[2].code",
                "genres[2].name",
                "located",
                "copyright_holder",
                "alt_ids[0].role",
                "alt_ids[0].value",
                "associations[0].rel",
                "associations[0].uri",
                "associations[1]",
                "associations[2]",
                "associations[3].article_id",
                "expires",
            ]
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let mut draft = full_draft();
        draft.urgency = 12;
        draft.pubstatus = 9;
        draft.genres[0].code = "two words".into();
        draft.associations[0].rel = "Follow Up".into();
        let found = describe(draft);
        let text = |field: &str| {
            found
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, d)| d.clone())
                .unwrap_or_else(|| panic!("no violation on {field}: {found:?}"))
        };
        assert!(text("urgency").contains("from 1 (most urgent) to 9"));
        assert!(text("urgency").contains("got 12"));
        assert!(text("pubstatus").contains("PUB_STATUS_WITHHELD"));
        assert!(text("genres[0].code").contains("\"two words\""));
        assert!(text("associations[0].rel").contains("\"correction-of\""));
        assert!(text("associations[0].rel").contains("\"Follow Up\""));
    }

    #[test]
    fn urgency_bounds() {
        for ok in [0, 1, 5, 9] {
            let mut draft = full_draft();
            draft.urgency = ok;
            let e = draft.validate(now()).unwrap();
            assert_eq!(e.urgency.map_or(0, |u| u32::from(u.get())), ok);
        }
        for bad in [10, 255, 256, u32::MAX] {
            let mut draft = full_draft();
            draft.urgency = bad;
            assert_eq!(fields(draft), ["urgency"], "{bad}");
        }
    }

    #[test]
    fn bounds_counts_and_lengths() {
        let mut genres = full_draft();
        genres.genres = (0..=MAX_GENRES)
            .map(|i| GenreDraft {
                code: format!("g{i}"),
                name: String::new(),
            })
            .collect();
        assert_eq!(fields(genres), ["genres"]);

        let mut alt = full_draft();
        alt.alt_ids = (0..=MAX_ALT_IDS)
            .map(|i| AltIdDraft {
                role: "r".into(),
                value: format!("{i}"),
            })
            .collect();
        assert_eq!(fields(alt), ["alt_ids"]);

        let mut assoc = full_draft();
        assoc.associations = vec![AssociationDraft::default(); MAX_ASSOCIATIONS + 1];
        assert_eq!(fields(assoc), ["associations"]);

        let mut at_limit = full_draft();
        at_limit.located = "ز".repeat(MAX_NAME_CHARS);
        at_limit.usage_terms = "ش".repeat(MAX_TERMS_CHARS);
        at_limit.copyright_notice = "©".repeat(MAX_NOTICE_CHARS);
        assert!(at_limit.validate(now()).is_ok());

        let mut over = full_draft();
        over.usage_terms = "ش".repeat(MAX_TERMS_CHARS + 1);
        over.copyright_notice = "©".repeat(MAX_NOTICE_CHARS + 1);
        over.ed_note = "x\u{0007}".into();
        assert_eq!(fields(over), ["copyright_notice", "usage_terms", "ed_note"]);
    }

    #[test]
    fn repeated_genres_and_alt_ids_are_reported() {
        let mut draft = full_draft();
        draft.genres.push(draft.genres[0].clone());
        draft.alt_ids.push(draft.alt_ids[0].clone());
        let found = describe(draft);
        assert_eq!(
            found,
            [
                (
                    "genres[1].code".to_owned(),
                    "repeats genres[0].code \"genre:Analysis\"".to_owned()
                ),
                ("alt_ids[1]".to_owned(), "repeats alt_ids[0]".to_owned()),
            ]
        );
    }

    #[test]
    fn relations_are_tokens_not_a_closed_list() {
        for ok in rel::DOCUMENTED
            .into_iter()
            .chain(["featureimage", "part-2-of"])
        {
            assert!(is_rel_token(ok), "{ok}");
        }
        for bad in [
            "",
            "-related",
            "related-",
            "correction--of",
            "Correction-of",
            "correction_of",
            "2nd",
            "تصحيح",
        ] {
            assert!(!is_rel_token(bad), "{bad}");
        }
        let mut long = full_draft();
        long.associations[0].rel = "a".repeat(MAX_REL_CHARS + 1);
        assert_eq!(fields(long), ["associations[0].rel"]);
    }

    #[test]
    fn embargo_may_be_past_but_not_too_far_ahead() {
        let mut past = full_draft();
        past.embargoed = ts(NOW - 86_400);
        assert!(past.validate(now()).is_ok());
        let mut at_limit = full_draft();
        at_limit.embargoed = ts(NOW + MAX_EMBARGO_DAYS * 86_400);
        at_limit.expires = None;
        assert!(at_limit.validate(now()).is_ok());
        let mut over = full_draft();
        over.embargoed = ts(NOW + MAX_EMBARGO_DAYS * 86_400 + 1);
        let found = describe(over);
        assert_eq!(found[0].0, "embargoed");
        assert!(found[0].1.contains("withheld"), "{found:?}");
    }

    #[test]
    fn expiry_must_follow_the_embargo() {
        let mut same = full_draft();
        same.expires = same.embargoed;
        assert_eq!(fields(same), ["expires"]);
        let mut no_embargo = full_draft();
        no_embargo.embargoed = None;
        no_embargo.expires = ts(NOW - 10);
        assert!(no_embargo.validate(now()).is_ok());
    }

    #[test]
    fn reports_article_and_editorial_violations_together() {
        let mut article = ArticleDraft {
            editorial: full_draft(),
            ..ArticleDraft::default()
        };
        article.editorial.urgency = 11;
        let err = article.validate(now()).unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields.first(), Some(&"source.id"));
        assert_eq!(fields.last(), Some(&"urgency"));
    }

    #[test]
    fn caps_violations_across_both_parts() {
        let mut editorial = full_draft();
        editorial.genres = vec![GenreDraft::default(); MAX_GENRES];
        editorial.alt_ids = vec![AltIdDraft::default(); MAX_ALT_IDS];
        editorial.associations = vec![AssociationDraft::default(); MAX_ASSOCIATIONS];
        let article_only = ArticleDraft::default()
            .validate(now())
            .unwrap_err()
            .violations
            .len();
        let editorial_only = editorial.clone().check(now()).1.len();
        let err = ArticleDraft {
            editorial,
            ..ArticleDraft::default()
        }
        .validate(now())
        .unwrap_err();
        assert_eq!(err.violations.len(), MAX_REPORTED_VIOLATIONS);
        let last = err.violations.last().unwrap();
        assert_eq!(last.field, "article");
        // The summary counts every violation left out, of both parts.
        let hidden = article_only + editorial_only - (MAX_REPORTED_VIOLATIONS - 1);
        assert_eq!(
            last.description,
            format!("{hidden} more violations not listed; fix the ones above first")
        );
    }

    #[test]
    fn canonical_bytes_change_with_every_field() {
        let base = full_draft().validate(now()).unwrap();
        let mut variants = Vec::new();
        let mut push = |edit: &dyn Fn(&mut Editorial)| {
            let mut e = base.clone();
            edit(&mut e);
            variants.push(e);
        };
        push(&|e| e.embargoed = None);
        push(&|e| e.pubstatus = PubStatus::Withheld);
        push(&|e| e.urgency = Urgency::new(4));
        push(&|e| e.genres[0].name.push('ة'));
        push(&|e| e.located = "دير الزو".into());
        push(&|e| e.copyright_holder.clear());
        push(&|e| e.copyright_notice.push('.'));
        push(&|e| e.usage_terms.clear());
        push(&|e| e.alt_ids.clear());
        push(&|e| e.associations.swap(0, 1));
        push(&|e| e.expires = None);
        push(&|e| e.ed_note = "ملاحظة".into());
        // A boundary shift between two neighbouring texts.
        push(&|e| {
            e.copyright_holder = "الخبر©".into();
            e.copyright_notice = " 2016 الخبر".into();
        });
        push(&|e| {
            e.associations[1].target =
                AssociationTarget::Uri("urn:ulid:01ARZ3NDEKTSV4RRFFQ69G5FAV".into())
        });
        let bytes = base.canonical_bytes();
        for v in &variants {
            assert_ne!(v.canonical_bytes(), bytes, "{v:?}");
        }
        assert_eq!(base.clone().canonical_bytes(), bytes);
    }

    #[test]
    fn visibility_rules() {
        let later = Some(at(NOW + 60));
        let earlier = Some(at(NOW - 60));
        use PubStatus::*;
        use Visibility as V;
        let cases = [
            (None, Usable, None, V::Visible),
            (
                later,
                Usable,
                None,
                V::Embargoed {
                    until: at(NOW + 60),
                },
            ),
            (Some(now()), Usable, None, V::Visible),
            (earlier, Usable, None, V::Visible),
            (None, Usable, earlier, V::Expired),
            (None, Usable, Some(now()), V::Expired),
            (None, Usable, later, V::Visible),
            (later, Withheld, None, V::Withheld),
            (None, Withheld, earlier, V::Withheld),
            (later, Canceled, None, V::Canceled),
            (None, Canceled, earlier, V::Canceled),
            (earlier, Usable, Some(at(NOW - 30)), V::Expired),
        ];
        for (embargoed, status, expires, expected) in cases {
            assert_eq!(
                visibility(embargoed, status, expires, now()),
                expected,
                "{embargoed:?} {status:?} {expires:?}"
            );
        }
    }

    fn editorial(edit: impl FnOnce(&mut Editorial)) -> Editorial {
        let mut e = Editorial::default();
        edit(&mut e);
        e
    }

    #[test]
    fn first_version_rules() {
        let plain = Editorial::default();
        assert_eq!(
            transition(None, &plain, now()),
            Transition::Publish {
                event: ReleaseEvent::Created
            }
        );
        let embargoed = editorial(|e| e.embargoed = Some(at(NOW + 60)));
        assert_eq!(
            transition(None, &embargoed, now()),
            Transition::Embargo {
                until: at(NOW + 60),
                event: ReleaseEvent::Created
            }
        );
        let passed = editorial(|e| e.embargoed = Some(at(NOW - 60)));
        assert_eq!(
            transition(None, &passed, now()),
            Transition::Publish {
                event: ReleaseEvent::Created
            }
        );
        let withheld = editorial(|e| e.pubstatus = PubStatus::Withheld);
        assert_eq!(transition(None, &withheld, now()), Transition::Withhold);
        let canceled = editorial(|e| e.pubstatus = PubStatus::Canceled);
        assert_eq!(
            transition(None, &canceled, now()),
            Transition::Retract {
                reason: CANCELED_BY_SOURCE.into(),
                announce: false
            }
        );
        let expired = editorial(|e| e.expires = Some(at(NOW - 1)));
        assert_eq!(
            transition(None, &expired, now()),
            Transition::Publish {
                event: ReleaseEvent::Created
            }
        );
    }

    #[test]
    fn new_version_rules() {
        let unreleased = Some(PreviousVersion::default());
        let released = Some(PreviousVersion {
            released: true,
            retracted: false,
        });
        let retracted = Some(PreviousVersion {
            released: true,
            retracted: true,
        });
        let moved = editorial(|e| e.embargoed = Some(at(NOW + 600)));
        assert_eq!(
            transition(unreleased, &moved, now()),
            Transition::Embargo {
                until: at(NOW + 600),
                event: ReleaseEvent::Created
            },
            "an embargo moved while pending: still the first appearance"
        );
        let lifted = Editorial::default();
        assert_eq!(
            transition(unreleased, &lifted, now()),
            Transition::Publish {
                event: ReleaseEvent::Created
            }
        );
        assert_eq!(
            transition(released, &moved, now()),
            Transition::Embargo {
                until: at(NOW + 600),
                event: ReleaseEvent::Updated
            }
        );
        let usable_again = Editorial::default();
        assert_eq!(
            transition(released, &usable_again, now()),
            Transition::Publish {
                event: ReleaseEvent::Updated
            }
        );
        let withheld = editorial(|e| e.pubstatus = PubStatus::Withheld);
        assert_eq!(transition(released, &withheld, now()), Transition::Withhold);
        let canceled = editorial(|e| {
            e.pubstatus = PubStatus::Canceled;
            e.ed_note = "  سُحب الخبر\nلخطأ في المصدر ".into();
        });
        assert_eq!(
            transition(released, &canceled, now()),
            Transition::Retract {
                reason: "سُحب الخبر لخطأ في المصدر".into(),
                announce: true
            }
        );
        assert_eq!(
            transition(retracted, &canceled, now()),
            Transition::Unchanged
        );
        assert_eq!(
            transition(retracted, &usable_again, now()),
            Transition::Refused
        );
    }

    #[test]
    fn pubstatus_numbers_and_names_round_trip() {
        for s in [PubStatus::Usable, PubStatus::Withheld, PubStatus::Canceled] {
            assert_eq!(PubStatus::from_number(s.number()), Some(s));
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        assert_eq!(PubStatus::from_number(0), Some(PubStatus::Usable));
        assert_eq!(PubStatus::from_number(4), None);
        assert!("Usable".parse::<PubStatus>().is_err());
    }
}
