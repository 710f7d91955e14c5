//! Turns an untrusted [`ArticleDraft`] into a [`ValidArticle`], reporting every broken rule at
//! once. Each field gets at most one violation: the first rule it breaks.

use std::fmt;

use language_tags::LanguageTag;

use super::{
    ArticleContent, InfoSource, Source, Timestamp, ValidArticle,
    editorial::EditorialDraft,
    text::{find_control, normalize_block, normalize_line},
    uri::{check_http_url, check_url_or_urn},
};

/// Longest headline, in characters.
pub const MAX_HEADLINE_CHARS: usize = 1_000;
/// Largest body, in UTF-8 bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most items in a list field (authors, tags, places, organisations, people, info_sources).
pub const MAX_LIST_ITEMS: usize = 100;
/// Longest list item, in characters.
pub const MAX_LIST_ITEM_CHARS: usize = 200;
const MAX_SUMMARY_CHARS: usize = 10_000;
const MAX_NAME_CHARS: usize = 200;
const MAX_URI_BYTES: usize = 2_048;
const MAX_SOURCE_ID_CHARS: usize = 64;
const MAX_LANGUAGE_CHARS: usize = 64;
const MAX_FUTURE_SECONDS: i64 = 24 * 60 * 60;
/// More violations than this are summarized in one, so the error stays small enough for gRPC
/// trailers (clients commonly cap them at 8 KiB).
pub(super) const MAX_REPORTED_VIOLATIONS: usize = 50;

/// A timestamp as sent, possibly out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampDraft {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// The source as sent.
#[derive(Debug, Clone, Default)]
pub struct SourceDraft {
    /// Outlet slug.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Home page.
    pub url: String,
}

/// An info source as sent.
#[derive(Debug, Clone, Default)]
pub struct InfoSourceDraft {
    /// Name.
    pub name: String,
    /// Address.
    pub uri: String,
    /// Role.
    pub role: String,
}

/// An article as a client sent it: unvalidated, unnormalized.
#[derive(Debug, Clone, Default)]
pub struct ArticleDraft {
    /// Publishing outlet.
    pub source: SourceDraft,
    /// Canonical address.
    pub uri: String,
    /// Headline.
    pub headline: String,
    /// Summary.
    pub summary: String,
    /// Full text.
    pub body: String,
    /// Language tag.
    pub language: String,
    /// First publication.
    pub published_at: Option<TimestampDraft>,
    /// Last change.
    pub updated_at: Option<TimestampDraft>,
    /// Bylines.
    pub authors: Vec<String>,
    /// Section.
    pub section: String,
    /// Keywords.
    pub tags: Vec<String>,
    /// Places.
    pub places: Vec<String>,
    /// Organisations.
    pub organisations: Vec<String>,
    /// People.
    pub people: Vec<String>,
    /// Information sources.
    pub info_sources: Vec<InfoSourceDraft>,
    /// View counter.
    pub view_count: u64,
    /// Editorial metadata.
    pub editorial: EditorialDraft,
}

/// One broken rule, on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field relative to the article, e.g. `source.id` or `tags[2]`.
    pub field: String,
    /// What is wrong, in words a person can act on.
    pub description: String,
}

/// Every rule an article broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The violations, in field order.
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_violations("article", &self.violations))
    }
}

/// Longest list of violations put in an error message; the rest are only in the details.
const MAX_MESSAGE_CHARS: usize = 1_024;

/// One line naming every violation, e.g. `invalid article (2 violations): uri: ...; body: ...`,
/// cut short after about 1 KiB so that it fits in gRPC trailers.
pub fn describe_violations(what: &str, violations: &[Violation]) -> String {
    let n = violations.len();
    let mut message = format!(
        "invalid {what} ({n} violation{}): ",
        if n == 1 { "" } else { "s" }
    );
    for (i, v) in violations.iter().enumerate() {
        if i > 0 && message.len() + v.field.len() + v.description.len() > MAX_MESSAGE_CHARS {
            message.push_str(&format!(
                "; and {} more, listed in the error details",
                n - i
            ));
            break;
        }
        let separator = if i == 0 { "" } else { "; " };
        message.push_str(&format!("{separator}{}: {}", v.field, v.description));
    }
    message
}

impl ArticleDraft {
    /// Validates and normalizes the draft; `now` bounds how far in the future dates may be.
    pub fn validate(self, now: Timestamp) -> Result<ValidArticle, ValidationError> {
        let mut check = Checker::default();
        let latest_allowed = now.saturating_add_seconds(MAX_FUTURE_SECONDS);
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
            view_count,
            editorial,
        } = self;

        let source = Source {
            id: check.source_id("source.id", &source.id),
            name: check.line("source.name", &source.name, Required::Yes, MAX_NAME_CHARS),
            url: check.address(
                "source.url",
                &source.url,
                Required::No,
                AddressKind::HttpUrl,
            ),
        };
        let uri = check.address("uri", &uri, Required::Yes, AddressKind::UrlOrUrn);
        let headline = check.line("headline", &headline, Required::Yes, MAX_HEADLINE_CHARS);
        let summary = check.block(
            "summary",
            summary,
            Required::No,
            Limit::Chars(MAX_SUMMARY_CHARS),
        );
        let body = check.block("body", body, Required::Yes, Limit::Bytes(MAX_BODY_BYTES));
        let language = check.language("language", &language);
        let published_at =
            check.timestamp("published_at", published_at, Required::Yes, latest_allowed);
        let updated_at = check.timestamp("updated_at", updated_at, Required::No, latest_allowed);
        let authors = check.list("authors", &authors);
        let section = check.line("section", &section, Required::No, MAX_NAME_CHARS);
        let tags = check.list("tags", &tags);
        let places = check.list("places", &places);
        let organisations = check.list("organisations", &organisations);
        let people = check.list("people", &people);
        let info_sources = check.info_sources(&info_sources);
        // Reported with the article's own violations, under one cap.
        let (editorial, editorial_violations) = editorial.check(now);
        check.violations.extend(editorial_violations);

        match (check.violations.is_empty(), published_at) {
            (true, Some(published_at)) => Ok(ValidArticle::new(
                ArticleContent {
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
                },
                view_count,
            )),
            _ => Err(check.into_error()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Required {
    Yes,
    No,
}

#[derive(Clone, Copy)]
enum Limit {
    Chars(usize),
    Bytes(usize),
}

#[derive(Clone, Copy)]
enum AddressKind {
    HttpUrl,
    UrlOrUrn,
}

/// Every violation, the list cut to the most that are reported with the rest summarized in one.
pub(super) fn capped(mut violations: Vec<Violation>) -> ValidationError {
    if violations.len() > MAX_REPORTED_VIOLATIONS {
        let hidden = violations.len() - (MAX_REPORTED_VIOLATIONS - 1);
        violations.truncate(MAX_REPORTED_VIOLATIONS - 1);
        violations.push(Violation {
            field: "article".into(),
            description: format!("{hidden} more violations not listed; fix the ones above first"),
        });
    }
    ValidationError { violations }
}

#[derive(Default)]
struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    fn into_error(self) -> ValidationError {
        capped(self.violations)
    }

    /// A single-line text field; returns the normalized text (empty when invalid).
    fn line(&mut self, field: &str, raw: &str, required: Required, max_chars: usize) -> String {
        let text = normalize_line(raw);
        let problem = if text.is_empty() {
            (required == Required::Yes).then(|| "is required and must not be blank".to_owned())
        } else if let Some((at, c)) = find_control(&text, &[]) {
            Some(control_problem(at, c, "line breaks and control characters"))
        } else {
            too_long_chars(&text, max_chars)
        };
        self.settle(field, text, problem)
    }

    /// A multi-line text field where only newline and tab are allowed among control characters.
    fn block(&mut self, field: &str, raw: String, required: Required, limit: Limit) -> String {
        let text = normalize_block(raw);
        let problem = if text.is_empty() {
            (required == Required::Yes).then(|| "is required and must not be blank".to_owned())
        } else if let Some((at, c)) = find_control(&text, &['\n', '\t']) {
            Some(control_problem(
                at,
                c,
                "control characters other than newline and tab",
            ))
        } else {
            match limit {
                Limit::Chars(max) => too_long_chars(&text, max),
                Limit::Bytes(max) => (text.len() > max).then(|| {
                    format!(
                        "is {} bytes of UTF-8; at most {max} bytes are allowed",
                        text.len()
                    )
                }),
            }
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

    fn source_id(&mut self, field: &str, raw: &str) -> String {
        let id = normalize_line(raw);
        let problem = if id.is_empty() {
            Some("is required and must not be blank".to_owned())
        } else if !is_slug(&id) || id.len() > MAX_SOURCE_ID_CHARS {
            Some(format!(
                "must be a slug of at most {MAX_SOURCE_ID_CHARS} characters: lowercase ASCII \
                 letters and digits, with single '-', '_' or '.' between them (e.g. \"alkhabar\"), \
                 got {}",
                quoted(&id)
            ))
        } else {
            None
        };
        self.settle(field, id, problem)
    }

    fn address(&mut self, field: &str, raw: &str, required: Required, kind: AddressKind) -> String {
        let uri = normalize_line(raw);
        let problem = if uri.is_empty() {
            (required == Required::Yes).then(|| "is required and must not be blank".to_owned())
        } else if uri.len() > MAX_URI_BYTES {
            Some(format!(
                "is {} bytes long; at most {MAX_URI_BYTES} are allowed",
                uri.len()
            ))
        } else {
            let (checked, expected) = match kind {
                AddressKind::HttpUrl => (check_http_url(&uri), "an absolute http(s) URL"),
                AddressKind::UrlOrUrn => (
                    check_url_or_urn(&uri),
                    "an absolute http(s) URL or a URN (urn:nid:nss)",
                ),
            };
            checked
                .err()
                .map(|why| format!("must be {expected}: {why}, got {}", quoted(&uri)))
        };
        self.settle(field, uri, problem)
    }

    fn language(&mut self, field: &str, raw: &str) -> String {
        let tag = normalize_line(raw);
        let problem = if tag.is_empty() {
            Some("is required: a BCP-47 language tag such as \"ar\" or \"en-GB\"".to_owned())
        } else if tag.chars().count() > MAX_LANGUAGE_CHARS || LanguageTag::parse(&tag).is_err() {
            Some(format!(
                "must be a well-formed BCP-47 language tag such as \"ar\" or \"en-GB\", got {}",
                quoted(&tag)
            ))
        } else {
            None
        };
        self.settle(field, tag, problem)
    }

    fn timestamp(
        &mut self,
        field: &str,
        raw: Option<TimestampDraft>,
        required: Required,
        latest_allowed: Timestamp,
    ) -> Option<Timestamp> {
        let Some(raw) = raw else {
            if required == Required::Yes {
                self.fail(
                    field,
                    "is required: when the outlet first published the article",
                );
            }
            return None;
        };
        match Timestamp::new(raw.seconds, raw.nanos) {
            None => {
                self.fail(field, "must be a valid time between years 0001 and 9999");
                None
            }
            Some(t) if t > latest_allowed => {
                self.fail(field, "must not be more than 24 hours in the future");
                None
            }
            Some(t) => Some(t),
        }
    }

    fn list(&mut self, field: &str, items: &[String]) -> Vec<String> {
        if items.len() > MAX_LIST_ITEMS {
            self.fail(
                field,
                format!(
                    "has {} items; at most {MAX_LIST_ITEMS} are allowed",
                    items.len()
                ),
            );
            return Vec::new();
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                self.line(
                    &format!("{field}[{i}]"),
                    item,
                    Required::Yes,
                    MAX_LIST_ITEM_CHARS,
                )
            })
            .collect()
    }

    fn info_sources(&mut self, items: &[InfoSourceDraft]) -> Vec<InfoSource> {
        if items.len() > MAX_LIST_ITEMS {
            self.fail(
                "info_sources",
                format!(
                    "has {} items; at most {MAX_LIST_ITEMS} are allowed",
                    items.len()
                ),
            );
            return Vec::new();
        }
        items
            .iter()
            .enumerate()
            .map(|(i, info)| InfoSource {
                name: self.line(
                    &format!("info_sources[{i}].name"),
                    &info.name,
                    Required::Yes,
                    MAX_LIST_ITEM_CHARS,
                ),
                uri: self.address(
                    &format!("info_sources[{i}].uri"),
                    &info.uri,
                    Required::No,
                    AddressKind::UrlOrUrn,
                ),
                role: self.line(
                    &format!("info_sources[{i}].role"),
                    &info.role,
                    Required::No,
                    MAX_LIST_ITEM_CHARS,
                ),
            })
            .collect()
    }
}

fn too_long_chars(text: &str, max: usize) -> Option<String> {
    let chars = text.chars().count();
    (chars > max).then(|| format!("is {chars} characters long; at most {max} are allowed"))
}

fn control_problem(at: usize, c: char, what: &str) -> String {
    format!(
        "must not contain {what}: found U+{:04X} at character {at}",
        c as u32
    )
}

/// Lowercase ASCII alphanumeric runs joined by single '-', '_' or '.'.
fn is_slug(s: &str) -> bool {
    s.split(['-', '_', '.']).all(|run| {
        !run.is_empty()
            && run
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The value for an error message, shortened so that a huge input cannot make a huge error.
fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        format!("{:?}…", s.chars().take(MAX).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn now() -> Timestamp {
        Timestamp::new(NOW, 0).unwrap()
    }

    fn valid_draft() -> ArticleDraft {
        ArticleDraft {
            source: SourceDraft {
                id: "alkhabar".into(),
                name: "الخبر وما وراء الخبر".into(),
                url: "https://alkhabar.example/".into(),
            },
            uri: "https://alkhabar.example/news/1".into(),
            headline: "أمريكا تتخلى عن حلفائها في سوريا في ذروة المعارك مع “داعش”".into(),
            body: "كشفت صحيفة “واشنطن بوست” الأمريكية.\n\nوأكدت مصادر للصحيفة في 28 يونيو.".into(),
            language: "ar".into(),
            published_at: Some(TimestampDraft {
                seconds: 1_467_363_600,
                nanos: 0,
            }),
            tags: vec!["سوريا".into(), "البوكمال".into()],
            info_sources: vec![InfoSourceDraft {
                name: "موقع روسيا اليوم".into(),
                uri: String::new(),
                role: "originating".into(),
            }],
            view_count: 182,
            ..ArticleDraft::default()
        }
    }

    fn violations(draft: ArticleDraft) -> Vec<(String, String)> {
        match draft.validate(now()) {
            Ok(article) => panic!("expected violations, got {article:?}"),
            Err(e) => e
                .violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect(),
        }
    }

    fn fields(draft: ArticleDraft) -> Vec<String> {
        violations(draft).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn accepts_a_valid_arabic_article_unchanged() {
        let draft = valid_draft();
        let article = draft.clone().validate(now()).expect("valid");
        assert_eq!(article.content().headline, draft.headline);
        assert_eq!(article.content().body, draft.body);
        assert_eq!(article.content().tags, draft.tags);
        assert_eq!(article.view_count(), 182);
    }

    #[test]
    fn reports_every_broken_rule_once_per_field() {
        let draft = ArticleDraft {
            source: SourceDraft {
                id: "Bad Source!".into(),
                name: String::new(),
                url: String::new(),
            },
            uri: "not a uri".into(),
            headline: "   ".into(),
            body: String::new(),
            language: "xx-!!".into(),
            published_at: Some(TimestampDraft {
                seconds: 32_472_144_000,
                nanos: 0,
            }),
            ..ArticleDraft::default()
        };
        assert_eq!(
            fields(draft),
            [
                "source.id",
                "source.name",
                "uri",
                "headline",
                "body",
                "language",
                "published_at"
            ]
        );
    }

    #[test]
    fn explains_each_violation() {
        let mut draft = valid_draft();
        draft.source.id = "Bad Source!".into();
        draft.language = "xx-!!".into();
        let found = violations(draft);
        assert!(
            found[0].1.contains("slug") && found[0].1.contains("\"Bad Source!\""),
            "{found:?}"
        );
        assert!(
            found[1].1.contains("BCP-47") && found[1].1.contains("xx-!!"),
            "{found:?}"
        );
    }

    #[test]
    fn requires_published_at_and_bounds_the_future() {
        let mut missing = valid_draft();
        missing.published_at = None;
        assert_eq!(fields(missing), ["published_at"]);

        let mut soon = valid_draft();
        soon.published_at = Some(TimestampDraft {
            seconds: NOW + 23 * 3600,
            nanos: 0,
        });
        assert!(soon.validate(now()).is_ok());

        let mut late = valid_draft();
        late.published_at = Some(TimestampDraft {
            seconds: NOW + 24 * 3600 + 1,
            nanos: 0,
        });
        late.updated_at = Some(TimestampDraft {
            seconds: NOW + 25 * 3600,
            nanos: 0,
        });
        assert_eq!(fields(late), ["published_at", "updated_at"]);

        let mut malformed = valid_draft();
        malformed.published_at = Some(TimestampDraft {
            seconds: 0,
            nanos: -1,
        });
        assert_eq!(fields(malformed), ["published_at"]);
    }

    #[test]
    fn checks_slugs() {
        for ok in ["alkhabar", "wire-a", "bbc.arabic", "a1_b2"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "Alkhabar",
            "al khabar",
            "-a",
            "a-",
            "a--b",
            "الخبر",
            "a/b",
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
        let mut long = valid_draft();
        long.source.id = "a".repeat(MAX_SOURCE_ID_CHARS + 1);
        assert_eq!(fields(long), ["source.id"]);
    }

    #[test]
    fn bounds_headline_in_characters_not_bytes() {
        let mut at_limit = valid_draft();
        at_limit.headline = "خ".repeat(MAX_HEADLINE_CHARS);
        assert!(at_limit.validate(now()).is_ok());
        let mut over = valid_draft();
        over.headline = "خ".repeat(MAX_HEADLINE_CHARS + 1);
        assert_eq!(fields(over), ["headline"]);
    }

    #[test]
    fn bounds_body_in_bytes() {
        let mut at_limit = valid_draft();
        at_limit.body = "a".repeat(MAX_BODY_BYTES);
        assert!(at_limit.validate(now()).is_ok());
        let mut over = valid_draft();
        over.body = "خ".repeat(MAX_BODY_BYTES / 2 + 1);
        let found = violations(over);
        assert_eq!(found[0].0, "body");
        assert!(found[0].1.contains("1048576"), "{found:?}");
    }

    #[test]
    fn body_allows_newline_and_tab_only() {
        let mut ok = valid_draft();
        ok.body = "سطر\n\tسطر".into();
        assert!(ok.validate(now()).is_ok());
        for control in ['\r', '\u{0000}', '\u{001B}', '\u{0085}'] {
            let mut bad = valid_draft();
            bad.body = format!("سطر{control}سطر");
            let found = violations(bad);
            assert_eq!(found[0].0, "body");
            assert!(
                found[0].1.contains(&format!("U+{:04X}", control as u32)),
                "{found:?}"
            );
        }
    }

    #[test]
    fn single_line_fields_reject_line_breaks() {
        let mut draft = valid_draft();
        draft.headline = "سطر\nسطر".into();
        draft.tags = vec!["ok".into(), "a\tb".into()];
        assert_eq!(fields(draft), ["headline", "tags[1]"]);
    }

    #[test]
    fn bounds_lists_and_their_items() {
        let mut too_many = valid_draft();
        too_many.tags = (0..=MAX_LIST_ITEMS).map(|i| format!("وسم-{i}")).collect();
        assert_eq!(fields(too_many), ["tags"]);

        let mut at_limit = valid_draft();
        at_limit.people = (0..MAX_LIST_ITEMS).map(|i| format!("شخص {i}")).collect();
        assert!(at_limit.validate(now()).is_ok());

        let mut bad_items = valid_draft();
        bad_items.places = vec!["ب".repeat(MAX_LIST_ITEM_CHARS + 1), " ".into()];
        bad_items.authors = vec!["كاتب".into()];
        assert_eq!(fields(bad_items), ["places[0]", "places[1]"]);
    }

    #[test]
    fn checks_info_sources_field_by_field() {
        let mut draft = valid_draft();
        draft.info_sources = vec![InfoSourceDraft {
            name: String::new(),
            uri: "nowhere".into(),
            role: "originating".into(),
        }];
        assert_eq!(
            fields(draft),
            ["info_sources[0].name", "info_sources[0].uri"]
        );
    }

    #[test]
    fn source_url_must_be_http() {
        let mut draft = valid_draft();
        draft.source.url = "urn:isbn:0451450523".into();
        assert_eq!(fields(draft), ["source.url"]);
    }

    #[test]
    fn accepts_urn_as_uri() {
        let mut draft = valid_draft();
        draft.uri = "urn:newsml:alkhabar.example:2016:1".into();
        assert!(draft.validate(now()).is_ok());
    }

    #[test]
    fn normalizes_before_storing() {
        let mut draft = valid_draft();
        draft.headline = "  \u{202E}أمريكا\u{202C} تتخلى\u{200F}  ".into();
        draft.tags = vec!["\u{2067}سوريا\u{2069}".into()];
        draft.body = "\n  قال \u{2067}Reuters\u{2069} إن  \n".into();
        draft.language = " ar ".into();
        let article = draft.validate(now()).expect("valid");
        assert_eq!(article.content().headline, "أمريكا تتخلى\u{200F}");
        assert_eq!(article.content().tags, ["سوريا"]);
        assert_eq!(article.content().body, "قال \u{2067}Reuters\u{2069} إن");
        assert_eq!(article.content().language, "ar");
    }

    #[test]
    fn only_bidi_controls_is_blank() {
        let mut draft = valid_draft();
        draft.headline = "\u{202B}\u{202C}".into();
        assert_eq!(fields(draft), ["headline"]);
    }

    #[test]
    fn language_tags() {
        for ok in ["ar", "ar-SY", "en-GB", "zh-Hant-TW", "ar-Latn", "x-private"] {
            let mut draft = valid_draft();
            draft.language = ok.into();
            assert!(draft.validate(now()).is_ok(), "{ok}");
        }
        for bad in ["", "xx-!!", "english please", "a", "ar_SY", "عربي"] {
            let mut draft = valid_draft();
            draft.language = bad.into();
            assert_eq!(fields(draft), ["language"], "{bad}");
        }
    }

    #[test]
    fn caps_the_number_of_reported_violations() {
        let mut draft = valid_draft();
        draft.tags = vec![String::new(); MAX_LIST_ITEMS];
        let found = violations(draft);
        assert_eq!(found.len(), MAX_REPORTED_VIOLATIONS);
        let (field, description) = found.last().unwrap();
        assert_eq!(field, "article");
        assert!(
            description.starts_with("51 more violations"),
            "{description}"
        );
    }

    #[test]
    fn long_messages_are_cut_short_and_say_so() {
        let mut draft = valid_draft();
        draft.tags = vec![String::new(); 40];
        let message = draft.validate(now()).unwrap_err().to_string();
        assert!(
            message.starts_with("invalid article (40 violations): tags[0]: is required"),
            "{message}"
        );
        assert!(message.len() < MAX_MESSAGE_CHARS + 100, "{}", message.len());
        assert!(
            message.ends_with("more, listed in the error details"),
            "{message}"
        );
    }

    #[test]
    fn display_lists_violations() {
        let mut draft = valid_draft();
        draft.headline = String::new();
        let err = draft.validate(now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid article (1 violation): headline: is required and must not be blank"
        );
    }
}
