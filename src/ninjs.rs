//! khabar articles as IPTC ninjs 2.1 (News in JSON) and back.
//!
//! [`to_ninjs`] renders a stored article, [`content_to_ninjs`] the client-set part only, and
//! [`from_ninjs`] reads a ninjs object into the drafts that ingest validates. Property names and
//! shapes are those of the ninjs 2.1 JSON schema (`http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json`,
//! which 2.0 lacks only `expires` against); in particular text lives in the `headlines`,
//! `descriptions` and `bodies` arrays, not in the 1.x `headline`/`body_text` strings.
//!
//! # Mapping
//! | khabar | ninjs 2.1 |
//! |---|---|
//! | `uri` | `uri` |
//! | (text articles only) | `type`: `"text"` |
//! | `headline` | `headlines[0]`: `{role: "main", value}` |
//! | `summary` (when set) | `descriptions[0]`: `{role: "summary", value}` |
//! | `body` | `bodies[0]`: `{role: "main", contenttype: "text/plain", value}` |
//! | `language` | `language` |
//! | `published_at` | `firstcreated` |
//! | `updated_at` (when set) | `versioncreated` |
//! | `authors` | `by`, joined with `"; "` (split on `;` when read) |
//! | `source` {id, name, url} | `infosources[0]`: `{role: "publisher", literal: id, name, uri: url}` |
//! | `info_sources` | `infosources[1..]`: `{name, uri, role}` |
//! | `tags` | `subjects`: `{name}` |
//! | `section` | `subjects`: `{name, rel: "section"}` |
//! | `places`, `people`, `organisations` | `places`, `people`, `organisations`: `{name}` |
//! | `embargoed`, `expires` | `embargoed`, `expires` |
//! | `pubstatus` | `pubstatus` (`"canceled"` once the article is retracted) |
//! | `urgency` | `urgency` |
//! | `genres` {code, name} | `genres`: `{uri: code}` when the code is an http(s) URL or a URN, else `{literal: code}`; plus `name` |
//! | `located` | `located` |
//! | `copyright_holder`, `copyright_notice`, `usage_terms` | `copyrightholder`, `copyrightnotice`, `usageterms` |
//! | `alt_ids` {role, value} | `altids` |
//! | `associations` {rel, target} | `associations`: `{name: rel, uri}`; an article target as `uri: "urn:khabar:article:<id>"` |
//! | `ed_note` | `ednote` (the retraction reason when retracted without a note) |
//! | server-set `id` | `altids`: `{role: "khabar:id", value: id}` |
//! | server-set `version` | `version` (a string) |
//! | server-set `status`, `retraction` | `pubstatus: "canceled"` and `ednote` |
//!
//! Not carried: `view_count` (a counter, not content; read back as 0); the server-set
//! `ingested_at`, `first_ingested_at`, `content_hash`, `cursor` and the retraction time (ninjs
//! has no place for them, and ingest ignores them anyway). An author whose name contains `;`
//! comes back split in two.
//!
//! # Reading
//! A property that ninjs 2.1 does not define is refused as a violation: the schema forbids it
//! (`unevaluatedProperties: false`), so the object is not ninjs 2.1, and the usual cause is a
//! 1.x name or a typo, which the message points out. A ninjs property or sub-property that
//! khabar does not keep (`renditions`, `slugline`, a subject's `uri`...) is accepted and listed
//! in [`NinjsImport::not_carried`], which `khabar ingest` warns about; rejecting valid ninjs for extra
//! detail would make most real feeds unusable, and dropping it without a word would hide
//! the loss. Violations name ninjs paths (`headlines[0].value`); the khabar validation that
//! follows names khabar fields.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value, json};

use crate::domain::{
    Article, ArticleContent, ArticleDraft, ArticleStatus, InfoSourceDraft, SourceDraft, Timestamp,
    TimestampDraft, Violation,
    editorial::{
        AltIdDraft, AssociationDraft, AssociationTarget, GenreDraft, PubStatus,
        RESERVED_ROLE_PREFIX,
    },
};

/// The ninjs version written and read.
pub const NINJS_VERSION: &str = "2.1";
/// The identifier of the ninjs 2.1 JSON schema.
pub const NINJS_SCHEMA: &str = "http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json";
/// Role of the infosource that carries the article's outlet.
pub const PUBLISHER_ROLE: &str = "publisher";
/// Role of the alternative id that carries khabar's article id.
pub const ARTICLE_ID_ROLE: &str = "khabar:id";
/// Prefix of association addresses that point at a khabar article.
pub const ARTICLE_URN_PREFIX: &str = "urn:khabar:article:";
/// `rel` of the subject that carries the section.
pub const SECTION_REL: &str = "section";
/// Separator between authors in `by`.
pub const BY_SEPARATOR: &str = "; ";

/// Every top-level property of ninjs 2.1, from its JSON schema.
pub const NINJS_2_1_PROPERTIES: [&str; 38] = [
    "altids",
    "associations",
    "bodies",
    "by",
    "contentcreated",
    "copyrightholder",
    "copyrightnotice",
    "descriptions",
    "ednote",
    "embargoed",
    "events",
    "expires",
    "firstcreated",
    "genres",
    "headlines",
    "infosources",
    "language",
    "located",
    "objects",
    "organisations",
    "people",
    "places",
    "profile",
    "pubstatus",
    "renditions",
    "representationtype",
    "rightsinfo",
    "slugline",
    "standard",
    "subjects",
    "title",
    "trustindicators",
    "type",
    "urgency",
    "uri",
    "usageterms",
    "version",
    "versioncreated",
];

/// A stored article as a ninjs 2.1 object, with its server-set fields (id, version, a
/// retraction).
pub fn to_ninjs(article: &Article) -> Value {
    let editorial = &article.content.editorial;
    let mut out = content_object(&article.content);
    out.insert("version".into(), json!(article.version.to_string()));
    let retracted = article.retraction.is_some() || article.status == ArticleStatus::Canceled;
    if retracted {
        out.insert("pubstatus".into(), json!(PubStatus::Canceled.as_str()));
        if editorial.ed_note.is_empty()
            && let Some(r) = &article.retraction
        {
            out.insert("ednote".into(), json!(r.reason));
        }
    }
    let mut altids = vec![json!({"role": ARTICLE_ID_ROLE, "value": article.id.to_string()})];
    if let Some(Value::Array(sent)) = out.remove("altids") {
        altids.extend(sent);
    }
    out.insert("altids".into(), Value::Array(altids));
    Value::Object(sorted(out))
}

/// The client-set part of an article (what ingest takes) as a ninjs 2.1 object.
pub fn content_to_ninjs(content: &ArticleContent) -> Value {
    Value::Object(sorted(content_object(content)))
}

/// Properties in the order of [`NINJS_2_1_PROPERTIES`] after `uri` and `type`, so output is
/// stable and readable.
fn sorted(mut map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ["uri", "type", "standard", "version"]
        .into_iter()
        .chain(NINJS_2_1_PROPERTIES)
    {
        if let Some(v) = map.remove(key) {
            out.insert(key.to_owned(), v);
        }
    }
    out.extend(map);
    out
}

fn content_object(c: &ArticleContent) -> Map<String, Value> {
    let e = &c.editorial;
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    put("uri", json!(c.uri));
    put("type", json!("text"));
    put(
        "standard",
        json!({"name": "ninjs", "version": NINJS_VERSION, "schema": NINJS_SCHEMA}),
    );
    put("firstcreated", json!(rfc3339(c.published_at)));
    if let Some(t) = c.updated_at {
        put("versioncreated", json!(rfc3339(t)));
    }
    if let Some(t) = e.embargoed {
        put("embargoed", json!(rfc3339(t)));
    }
    put("pubstatus", json!(e.pubstatus.as_str()));
    if let Some(u) = e.urgency {
        put("urgency", json!(u.get()));
    }
    let text = |s: &str| (!s.is_empty()).then(|| json!(s));
    for (key, value) in [
        ("copyrightholder", &e.copyright_holder),
        ("copyrightnotice", &e.copyright_notice),
        ("usageterms", &e.usage_terms),
        ("ednote", &e.ed_note),
        ("located", &e.located),
    ] {
        if let Some(v) = text(value) {
            put(key, v);
        }
    }
    put("language", json!(c.language));
    put("headlines", json!([{"role": "main", "value": c.headline}]));
    if !c.summary.is_empty() {
        put(
            "descriptions",
            json!([{"role": "summary", "value": c.summary}]),
        );
    }
    put(
        "bodies",
        json!([{"role": "main", "contenttype": "text/plain", "value": c.body}]),
    );
    if !c.authors.is_empty() {
        put("by", json!(c.authors.join(BY_SEPARATOR)));
    }
    let mut subjects: Vec<Value> = c.tags.iter().map(|t| json!({"name": t})).collect();
    if !c.section.is_empty() {
        subjects.push(json!({"name": c.section, "rel": SECTION_REL}));
    }
    if !subjects.is_empty() {
        put("subjects", Value::Array(subjects));
    }
    for (key, names) in [
        ("places", &c.places),
        ("people", &c.people),
        ("organisations", &c.organisations),
    ] {
        if !names.is_empty() {
            put(key, names.iter().map(|n| json!({"name": n})).collect());
        }
    }
    let mut publisher = Map::new();
    publisher.insert("name".into(), json!(c.source.name));
    publisher.insert("role".into(), json!(PUBLISHER_ROLE));
    publisher.insert("literal".into(), json!(c.source.id));
    if !c.source.url.is_empty() {
        publisher.insert("uri".into(), json!(c.source.url));
    }
    let mut infosources = vec![Value::Object(publisher)];
    for info in &c.info_sources {
        let mut item = Map::new();
        item.insert("name".into(), json!(info.name));
        if !info.uri.is_empty() {
            item.insert("uri".into(), json!(info.uri));
        }
        if !info.role.is_empty() {
            item.insert("role".into(), json!(info.role));
        }
        infosources.push(Value::Object(item));
    }
    put("infosources", Value::Array(infosources));
    if !e.genres.is_empty() {
        let genres = e
            .genres
            .iter()
            .map(|g| {
                let mut item = Map::new();
                let key = if is_uri_code(&g.code) {
                    "uri"
                } else {
                    "literal"
                };
                item.insert(key.into(), json!(g.code));
                if !g.name.is_empty() {
                    item.insert("name".into(), json!(g.name));
                }
                Value::Object(item)
            })
            .collect();
        put("genres", genres);
    }
    if !e.alt_ids.is_empty() {
        put(
            "altids",
            e.alt_ids
                .iter()
                .map(|a| json!({"role": a.role, "value": a.value}))
                .collect(),
        );
    }
    if !e.associations.is_empty() {
        put(
            "associations",
            e.associations
                .iter()
                .map(|a| {
                    let uri = match &a.target {
                        AssociationTarget::Uri(uri) => uri.clone(),
                        AssociationTarget::Article(id) => format!("{ARTICLE_URN_PREFIX}{id}"),
                    };
                    json!({"name": a.rel, "uri": uri})
                })
                .collect(),
        );
    }
    if let Some(t) = e.expires {
        put("expires", json!(rfc3339(t)));
    }
    out
}

/// An http(s) URL or a URN goes in a genre's `uri`; anything else (a QCode) in `literal`.
fn is_uri_code(code: &str) -> bool {
    let lower = code.get(..8).unwrap_or(code).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("urn:")
}

/// RFC 3339 in UTC with a `Z`, with as many fraction digits as the time needs (none, 3, 6 or 9).
pub fn rfc3339(t: Timestamp) -> String {
    DateTime::from_timestamp(t.seconds(), t.nanos())
        .map(|d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// A ninjs object read into khabar's drafts.
#[derive(Debug, Clone, Default)]
pub struct NinjsImport {
    /// The article with its editorial metadata, to validate as any other ingest.
    pub article: ArticleDraft,
    /// Paths of ninjs properties that were present but are not kept, e.g. `renditions` or
    /// `subjects[2].uri`.
    pub not_carried: Vec<String>,
}

/// Reads a ninjs 2.x object (2.1 and 2.0). Shape errors (a missing `uri`, a number where text
/// belongs, a property ninjs 2.1 does not define) are violations on ninjs paths; the rules of
/// khabar's fields are checked afterwards by validating the drafts.
pub fn from_ninjs(value: &Value) -> Result<NinjsImport, Vec<Violation>> {
    let Some(object) = value.as_object() else {
        return Err(vec![violation(
            "",
            "must be a JSON object (one ninjs item)",
        )]);
    };
    let mut r = Reader::default();
    for (key, v) in object {
        r.property(key, v);
    }
    if !object.contains_key("uri") {
        r.fail("uri", "is required: the item's global identifier");
    }
    if r.violations.is_empty() {
        Ok(r.import)
    } else {
        Err(r.violations)
    }
}

fn violation(field: &str, description: impl Into<String>) -> Violation {
    Violation {
        field: field.to_owned(),
        description: description.into(),
    }
}

/// What ninjs 1.x (or a common mistake) called a 2.x property.
fn renamed(key: &str) -> Option<&'static str> {
    Some(match key {
        "headline" => "headlines",
        "body_text" | "body_html" | "body" => "bodies",
        "description_text" | "description_html" | "description" => "descriptions",
        "keywords" | "tags" => "subjects",
        "byline" | "authors" => "by",
        "place" => "places",
        "person" => "people",
        "organisation" | "organizations" => "organisations",
        "genre" => "genres",
        "altid" | "alt_ids" => "altids",
        "infosource" => "infosources",
        "pub_status" | "pubStatus" => "pubstatus",
        "copyright_holder" => "copyrightholder",
        "copyright_notice" => "copyrightnotice",
        "usage_terms" => "usageterms",
        "ed_note" => "ednote",
        _ => return None,
    })
}

#[derive(Default)]
struct Reader {
    import: NinjsImport,
    violations: Vec<Violation>,
    publisher_seen: bool,
}

impl Reader {
    fn fail(&mut self, field: &str, description: impl Into<String>) {
        self.violations.push(violation(field, description));
    }

    fn dropped(&mut self, path: String) {
        self.import.not_carried.push(path);
    }

    fn string(&mut self, field: &str, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            _ => {
                self.fail(field, format!("must be a string, got {}", kind(v)));
                String::new()
            }
        }
    }

    fn time(&mut self, field: &str, v: &Value) -> Option<TimestampDraft> {
        let text = self.string(field, v);
        if text.is_empty() {
            return None;
        }
        match DateTime::parse_from_rfc3339(&text) {
            Ok(t) => Some(TimestampDraft {
                seconds: t.timestamp(),
                // Below 2e9 (leap seconds), so it fits.
                nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
            }),
            Err(_) => {
                self.fail(
                    field,
                    format!(
                        "must be an RFC 3339 date-time such as \"2016-07-01T09:00:00Z\", got {:?}",
                        text.chars().take(80).collect::<String>()
                    ),
                );
                None
            }
        }
    }

    fn array<'v>(&mut self, field: &str, v: &'v Value) -> &'v [Value] {
        match v {
            Value::Array(items) => items,
            _ => {
                self.fail(field, format!("must be an array, got {}", kind(v)));
                &[]
            }
        }
    }

    /// The object at `field`, with each of its properties: those in `known` are returned by
    /// name, the others are listed as not carried when ninjs defines them (`defined`), refused
    /// otherwise.
    fn object(
        &mut self,
        field: &str,
        v: &Value,
        known: &[&str],
        defined: &[&str],
    ) -> Option<Map<String, Value>> {
        let Value::Object(map) = v else {
            self.fail(field, format!("must be an object, got {}", kind(v)));
            return None;
        };
        let mut kept = Map::new();
        for (key, value) in map {
            if known.contains(&key.as_str()) {
                kept.insert(key.clone(), value.clone());
            } else if defined.contains(&key.as_str()) {
                self.dropped(format!("{field}.{key}"));
            } else {
                self.fail(
                    &format!("{field}.{key}"),
                    format!(
                        "is not a ninjs 2.1 property here; allowed: {}",
                        known
                            .iter()
                            .chain(defined)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        Some(kept)
    }

    fn text_of(&mut self, field: &str, map: &Map<String, Value>, key: &str) -> String {
        map.get(key)
            .map(|v| self.string(&format!("{field}.{key}"), v))
            .unwrap_or_default()
    }

    fn property(&mut self, key: &str, v: &Value) {
        match key {
            "uri" => self.import.article.uri = self.string(key, v),
            "type" => {
                let t = self.string(key, v);
                if !t.is_empty() && t != "text" {
                    self.fail(
                        key,
                        format!("must be \"text\": khabar keeps text articles, got {t:?}"),
                    );
                }
            }
            "version" => {
                // Server-set in khabar: an item read back from khabar carries it; ignored.
                if !(v.is_string()) {
                    self.fail(key, format!("must be a string, got {}", kind(v)));
                }
            }
            "standard" => {
                if let Some(map) = self.object(key, v, &["name", "version", "schema"], &[]) {
                    let version = self.text_of(key, &map, "version");
                    if !version.is_empty() && !version.starts_with("2.") {
                        self.fail(
                            "standard.version",
                            format!("must be a ninjs 2.x version, got {version:?}"),
                        );
                    }
                }
            }
            "firstcreated" => self.import.article.published_at = self.time(key, v),
            "versioncreated" => self.import.article.updated_at = self.time(key, v),
            "embargoed" => self.import.article.editorial.embargoed = self.time(key, v),
            "expires" => self.import.article.editorial.expires = self.time(key, v),
            "pubstatus" => {
                let s = self.string(key, v);
                match s.parse::<PubStatus>() {
                    Ok(status) => self.import.article.editorial.pubstatus = status.number(),
                    Err(()) => self.fail(
                        key,
                        format!("must be \"usable\", \"withheld\" or \"canceled\", got {s:?}"),
                    ),
                }
            }
            "urgency" => match v.as_u64().filter(|n| (1..=9).contains(n)) {
                // Within 1..=9, so it fits.
                Some(n) => self.import.article.editorial.urgency = n as u32,
                None => self.fail(
                    key,
                    format!("must be a whole number from 1 (most urgent) to 9, got {v}"),
                ),
            },
            "language" => self.import.article.language = self.string(key, v),
            "copyrightholder" => {
                self.import.article.editorial.copyright_holder = self.string(key, v)
            }
            "copyrightnotice" => {
                self.import.article.editorial.copyright_notice = self.string(key, v)
            }
            "usageterms" => self.import.article.editorial.usage_terms = self.string(key, v),
            "ednote" => self.import.article.editorial.ed_note = self.string(key, v),
            "located" => self.import.article.editorial.located = self.string(key, v),
            "by" => {
                let by = self.string(key, v);
                self.import.article.authors = by
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "headlines" => {
                self.import.article.headline = self.texts(key, v, &["main", ""], None);
            }
            "descriptions" => {
                self.import.article.summary = self.texts(key, v, &["summary", ""], None);
            }
            "bodies" => {
                self.import.article.body =
                    self.texts(key, v, &["main", ""], Some(&["charcount", "wordcount"]));
            }
            "subjects" => self.subjects(v),
            "places" => self.import.article.places = self.names(key, v, PLACE_EXTRA),
            "people" => self.import.article.people = self.names(key, v, PERSON_EXTRA),
            "organisations" => {
                self.import.article.organisations = self.names(key, v, ORGANISATION_EXTRA);
            }
            "infosources" => self.infosources(v),
            "genres" => self.genres(v),
            "altids" => self.altids(v),
            "associations" => self.associations(v),
            "contentcreated" | "events" | "objects" | "profile" | "renditions"
            | "representationtype" | "rightsinfo" | "slugline" | "title" | "trustindicators" => {
                self.dropped(key.to_owned());
            }
            _ => {
                let hint = match renamed(key) {
                    Some(name) => format!(" (ninjs 2.x names it {name:?})"),
                    None => String::new(),
                };
                self.fail(
                    key,
                    format!("is not a ninjs 2.1 property{hint}; extensions are not accepted"),
                );
            }
        }
    }

    /// One text from `headlines`, `descriptions` or `bodies`: the first plain-text item whose
    /// role is one of `roles` ("" for no role); the others are listed as not carried.
    fn texts(&mut self, field: &str, v: &Value, roles: &[&str], counts: Option<&[&str]>) -> String {
        let mut chosen = None;
        for (i, item) in self.array(field, v).iter().enumerate() {
            let path = format!("{field}[{i}]");
            let Some(map) = self.object(
                &path,
                item,
                &["value", "role", "contenttype"],
                counts.unwrap_or(&[]),
            ) else {
                continue;
            };
            let value = self.text_of(&path, &map, "value");
            if !map.contains_key("value") {
                self.fail(&format!("{path}.value"), "is required");
            }
            let role = self.text_of(&path, &map, "role");
            let contenttype = self.text_of(&path, &map, "contenttype");
            let plain = contenttype.is_empty() || contenttype.eq_ignore_ascii_case("text/plain");
            if chosen.is_none() && plain && roles.contains(&role.as_str()) {
                chosen = Some(value);
            } else {
                self.dropped(path);
            }
        }
        chosen.unwrap_or_default()
    }

    fn names(&mut self, field: &str, v: &Value, extra: &[&str]) -> Vec<String> {
        let mut names = Vec::new();
        for (i, item) in self.array(field, v).iter().enumerate() {
            let path = format!("{field}[{i}]");
            let Some(map) = self.object(&path, item, &["name", "literal"], extra) else {
                continue;
            };
            let name = self.text_of(&path, &map, "name");
            let literal = self.text_of(&path, &map, "literal");
            match (name.is_empty(), literal.is_empty()) {
                (false, literal_empty) => {
                    names.push(name);
                    if !literal_empty {
                        self.dropped(format!("{path}.literal"));
                    }
                }
                (true, false) => names.push(literal),
                (true, true) => self.fail(&path, "needs a name (or a literal)"),
            }
        }
        names
    }

    fn subjects(&mut self, v: &Value) {
        for (i, item) in self.array("subjects", v).iter().enumerate() {
            let path = format!("subjects[{i}]");
            let Some(map) = self.object(
                &path,
                item,
                &["name", "literal", "rel"],
                &["uri", "creator", "relevance", "confidence"],
            ) else {
                continue;
            };
            let name = self.text_of(&path, &map, "name");
            let literal = self.text_of(&path, &map, "literal");
            let rel = self.text_of(&path, &map, "rel");
            let text = match (name.is_empty(), literal.is_empty()) {
                (false, false) => {
                    self.dropped(format!("{path}.literal"));
                    name
                }
                (false, true) => name,
                (true, false) => literal,
                (true, true) => {
                    self.fail(&path, "needs a name (or a literal)");
                    continue;
                }
            };
            let article = &mut self.import.article;
            if rel == SECTION_REL && article.section.is_empty() {
                article.section = text;
            } else {
                if !rel.is_empty() {
                    self.dropped(format!("{path}.rel"));
                }
                self.import.article.tags.push(text);
            }
        }
    }

    fn infosources(&mut self, v: &Value) {
        for (i, item) in self.array("infosources", v).iter().enumerate() {
            let path = format!("infosources[{i}]");
            let Some(map) = self.object(
                &path,
                item,
                &["name", "uri", "role", "literal"],
                &["contactinfo"],
            ) else {
                continue;
            };
            let name = self.text_of(&path, &map, "name");
            let uri = self.text_of(&path, &map, "uri");
            let role = self.text_of(&path, &map, "role");
            let literal = self.text_of(&path, &map, "literal");
            if role == PUBLISHER_ROLE && !self.publisher_seen {
                self.publisher_seen = true;
                self.import.article.source = SourceDraft {
                    id: literal,
                    name,
                    url: uri,
                };
            } else {
                if !literal.is_empty() {
                    self.dropped(format!("{path}.literal"));
                }
                self.import
                    .article
                    .info_sources
                    .push(InfoSourceDraft { name, uri, role });
            }
        }
    }

    fn genres(&mut self, v: &Value) {
        for (i, item) in self.array("genres", v).iter().enumerate() {
            let path = format!("genres[{i}]");
            let Some(map) = self.object(&path, item, &["name", "uri", "literal"], &[]) else {
                continue;
            };
            let name = self.text_of(&path, &map, "name");
            let uri = self.text_of(&path, &map, "uri");
            let literal = self.text_of(&path, &map, "literal");
            let code = match (uri.is_empty(), literal.is_empty()) {
                (false, false) => {
                    self.dropped(format!("{path}.literal"));
                    uri
                }
                (false, true) => uri,
                (true, _) => literal,
            };
            self.import
                .article
                .editorial
                .genres
                .push(GenreDraft { code, name });
        }
    }

    fn altids(&mut self, v: &Value) {
        for (i, item) in self.array("altids", v).iter().enumerate() {
            let path = format!("altids[{i}]");
            let Some(map) = self.object(&path, item, &["role", "value"], &[]) else {
                continue;
            };
            let role = self.text_of(&path, &map, "role");
            let value = self.text_of(&path, &map, "value");
            // khabar's own id (server-set) comes back when an item read from khabar is sent
            // again; it is not the sender's.
            if role.starts_with(RESERVED_ROLE_PREFIX) {
                continue;
            }
            self.import
                .article
                .editorial
                .alt_ids
                .push(AltIdDraft { role, value });
        }
    }

    fn associations(&mut self, v: &Value) {
        for (i, item) in self.array("associations", v).iter().enumerate() {
            let path = format!("associations[{i}]");
            let defined: Vec<&str> = NINJS_2_1_PROPERTIES
                .iter()
                .copied()
                .filter(|p| *p != "uri")
                .collect();
            let Some(map) = self.object(&path, item, &["name", "uri"], &defined) else {
                continue;
            };
            for required in ["name", "uri"] {
                if !map.contains_key(required) {
                    self.fail(&format!("{path}.{required}"), "is required");
                }
            }
            let rel = self.text_of(&path, &map, "name");
            let uri = self.text_of(&path, &map, "uri");
            let draft = match uri.strip_prefix(ARTICLE_URN_PREFIX) {
                Some(id) => AssociationDraft {
                    rel,
                    uri: String::new(),
                    article_id: id.to_owned(),
                },
                None => AssociationDraft {
                    rel,
                    uri,
                    article_id: String::new(),
                },
            };
            self.import.article.editorial.associations.push(draft);
        }
    }
}

const PLACE_EXTRA: &[&str] = &["rel", "uri", "contactinfo", "geojson"];
const PERSON_EXTRA: &[&str] = &["rel", "uri", "contactinfo"];
const ORGANISATION_EXTRA: &[&str] = &["rel", "uri", "symbols", "contactinfo"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ArticleId, InfoSource, Retraction, Source,
        editorial::{AltId, Association, Editorial, Genre, Urgency, rel},
    };

    const NOW: i64 = 1_800_000_000;

    fn at(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp::new(seconds, nanos).unwrap()
    }

    fn content() -> ArticleContent {
        ArticleContent {
            source: Source {
                id: "alkhabar".into(),
                name: "الخبر وما وراء الخبر".into(),
                url: "https://alkhabar.example/".into(),
            },
            uri: "https://alkhabar.example/news/1".into(),
            headline: "أمريكا تتخلى عن حلفائها في سوريا".into(),
            summary: "ملخص".into(),
            body: "فقرة أولى.\n\nفقرة ثانية.".into(),
            language: "ar".into(),
            published_at: at(1_467_363_600, 0),
            updated_at: Some(at(1_467_367_200, 250_000_000)),
            authors: vec!["كاتب أول".into(), "كاتب ثان".into()],
            section: "سياسة".into(),
            tags: vec!["سوريا".into(), "البوكمال".into()],
            places: vec!["البوكمال".into()],
            organisations: vec!["رويترز".into()],
            people: vec!["كريس غارفر".into()],
            info_sources: vec![
                InfoSource {
                    name: "موقع روسيا اليوم".into(),
                    uri: String::new(),
                    role: "originating".into(),
                },
                InfoSource {
                    name: "رويترز".into(),
                    uri: "https://reuters.example/".into(),
                    role: String::new(),
                },
            ],
            editorial: Editorial::default(),
        }
    }

    fn editorial() -> Editorial {
        Editorial {
            embargoed: Some(at(NOW + 3_600, 0)),
            pubstatus: PubStatus::Usable,
            urgency: Urgency::new(3),
            genres: vec![
                Genre {
                    code: "genre:Analysis".into(),
                    name: "تحليل".into(),
                },
                Genre {
                    code: "http://cv.iptc.org/newscodes/genre/Exclusive".into(),
                    name: String::new(),
                },
            ],
            located: "دير الزور".into(),
            copyright_holder: "الخبر".into(),
            copyright_notice: "© 2016 الخبر".into(),
            usage_terms: "لا يُنشر قبل موعد الحظر.".into(),
            alt_ids: vec![AltId {
                role: "guid".into(),
                value: "urn:newsml:alkhabar.example:2016:1".into(),
            }],
            associations: vec![
                Association {
                    rel: rel::FOLLOW_UP_OF.into(),
                    target: AssociationTarget::Uri("https://alkhabar.example/news/0".into()),
                },
                Association {
                    rel: rel::CORRECTION_OF.into(),
                    target: AssociationTarget::Article(
                        "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap(),
                    ),
                },
            ],
            expires: Some(at(NOW + 86_400, 0)),
            ed_note: "ملاحظة للمحررين".into(),
        }
    }

    /// The article with `editorial`.
    fn article_with(editorial: Editorial) -> Article {
        let content = ArticleContent {
            editorial,
            ..content()
        };
        Article {
            id: "01BX5ZZKBKACTAV9WEVGEMMVRZ".parse().unwrap(),
            content_hash: content.content_hash(),
            content,
            view_count: 182,
            version: 4,
            status: ArticleStatus::Usable,
            ingested_at: at(NOW, 0),
            first_ingested_at: at(NOW - 60, 0),
            cursor: 77,
            retraction: None,
            canonical_uri: String::new(),
            story: None,
        }
    }

    fn article() -> Article {
        article_with(editorial())
    }

    #[test]
    fn every_field_maps_to_its_ninjs_property() {
        let out = to_ninjs(&article());
        let expected = json!({
            "uri": "https://alkhabar.example/news/1",
            "type": "text",
            "standard": {"name": "ninjs", "version": "2.1", "schema": NINJS_SCHEMA},
            "version": "4",
            "altids": [
                {"role": "khabar:id", "value": "01BX5ZZKBKACTAV9WEVGEMMVRZ"},
                {"role": "guid", "value": "urn:newsml:alkhabar.example:2016:1"}
            ],
            "associations": [
                {"name": "follow-up-of", "uri": "https://alkhabar.example/news/0"},
                {"name": "correction-of", "uri": "urn:khabar:article:01ARZ3NDEKTSV4RRFFQ69G5FAV"}
            ],
            "bodies": [{"role": "main", "contenttype": "text/plain", "value": "فقرة أولى.\n\nفقرة ثانية."}],
            "by": "كاتب أول; كاتب ثان",
            "copyrightholder": "الخبر",
            "copyrightnotice": "© 2016 الخبر",
            "descriptions": [{"role": "summary", "value": "ملخص"}],
            "ednote": "ملاحظة للمحررين",
            "embargoed": "2027-01-15T09:00:00Z",
            "expires": "2027-01-16T08:00:00Z",
            "firstcreated": "2016-07-01T09:00:00Z",
            "genres": [
                {"literal": "genre:Analysis", "name": "تحليل"},
                {"uri": "http://cv.iptc.org/newscodes/genre/Exclusive"}
            ],
            "headlines": [{"role": "main", "value": "أمريكا تتخلى عن حلفائها في سوريا"}],
            "infosources": [
                {"name": "الخبر وما وراء الخبر", "role": "publisher", "literal": "alkhabar", "uri": "https://alkhabar.example/"},
                {"name": "موقع روسيا اليوم", "role": "originating"},
                {"name": "رويترز", "uri": "https://reuters.example/"}
            ],
            "language": "ar",
            "located": "دير الزور",
            "organisations": [{"name": "رويترز"}],
            "people": [{"name": "كريس غارفر"}],
            "places": [{"name": "البوكمال"}],
            "pubstatus": "usable",
            "subjects": [{"name": "سوريا"}, {"name": "البوكمال"}, {"name": "سياسة", "rel": "section"}],
            "urgency": 3,
            "usageterms": "لا يُنشر قبل موعد الحظر.",
            "versioncreated": "2016-07-01T10:00:00.250Z"
        });
        assert_eq!(
            out,
            expected,
            "{}",
            serde_json::to_string_pretty(&out).unwrap()
        );
        let keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(&keys[..4], ["uri", "type", "standard", "version"]);
        for key in &keys {
            assert!(NINJS_2_1_PROPERTIES.contains(key), "{key}");
        }
    }

    #[test]
    fn round_trip_keeps_every_carried_field() {
        let now = at(NOW, 0);
        let article = article();
        let back = from_ninjs(&to_ninjs(&article)).expect("readable");
        assert!(back.not_carried.is_empty(), "{:?}", back.not_carried);
        assert_eq!(back.article.view_count, 0, "the counter is not carried");
        let valid = back.article.validate(now).expect("valid article");
        assert_eq!(valid.content(), &article.content);
    }

    #[test]
    fn round_trips_minimal_content() {
        let now = at(NOW, 0);
        let mut content = content();
        content.summary.clear();
        content.updated_at = None;
        content.authors.clear();
        content.section.clear();
        content.tags.clear();
        content.places.clear();
        content.people.clear();
        content.organisations.clear();
        content.info_sources.clear();
        content.source.url.clear();
        let out = content_to_ninjs(&content);
        for absent in ["versioncreated", "descriptions", "by", "subjects", "genres"] {
            assert!(out.get(absent).is_none(), "{absent}");
        }
        let back = from_ninjs(&out).unwrap();
        let valid = back.article.validate(now).unwrap();
        assert_eq!(valid.content(), &content);
        assert!(valid.content().editorial.is_empty());
    }

    #[test]
    fn a_retracted_article_is_canceled_with_its_reason() {
        let mut a = article_with(Editorial::default());
        a.status = ArticleStatus::Canceled;
        a.retraction = Some(Retraction {
            reason: "خطأ في المصدر".into(),
            retracted_at: at(NOW, 0),
        });
        let out = to_ninjs(&a);
        assert_eq!(out["pubstatus"], "canceled");
        assert_eq!(out["ednote"], "خطأ في المصدر");
        a.content.editorial = editorial();
        let out = to_ninjs(&a);
        assert_eq!(out["ednote"], "ملاحظة للمحررين");
    }

    #[test]
    fn times_keep_their_precision() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(0, 1)), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(rfc3339(at(-1, 500_000_000)), "1969-12-31T23:59:59.500Z");
        let mut r = Reader::default();
        let t = r
            .time("t", &json!("2016-07-01T12:00:00.123+03:00"))
            .unwrap();
        assert_eq!((t.seconds, t.nanos), (1_467_363_600, 123_000_000));
    }

    #[test]
    fn reads_foreign_ninjs_and_lists_what_is_not_kept() {
        let item = json!({
            "uri": "urn:uuid:8d19cf88-b3ab-4972-8fec-1207599f2872",
            "type": "text",
            "profile": "Standard",
            "version": "6",
            "firstcreated": "2019-08-09T09:30:04Z",
            "versioncreated": "2019-08-09T09:46:53Z",
            "pubstatus": "withheld",
            "urgency": 5,
            "language": "nb-NO",
            "headlines": [{"role": "main", "value": "Google har kjøpt giganttomt i Skien"},
                          {"role": "sub", "value": "Undertittel"}],
            "bodies": [{"contenttype": "text/html", "value": "<p>x</p>"},
                       {"value": "Tekst", "charcount": 5}],
            "places": [{"name": "Telemark", "literal": "Telemark"}],
            "subjects": [{"name": "Teknologi", "literal": "13010000"},
                         {"literal": "Innenriks"},
                         {"name": "Økonomi", "uri": "http://cv.iptc.org/newscodes/mediatopic/04000000"}],
            "infosources": [{"name": "NTB", "role": "publisher", "literal": "ntb"}],
            "genres": [{"uri": "http://cv.iptc.org/newscodes/genre/Current", "literal": "current"}],
            "associations": [{"name": "featureimage", "uri": "urn:img:1", "type": "picture"}],
            "by": "NTB",
            "slugline": "skien-google",
            "renditions": []
        });
        let got = from_ninjs(&item).expect("readable");
        assert_eq!(got.article.headline, "Google har kjøpt giganttomt i Skien");
        assert_eq!(got.article.body, "Tekst");
        assert_eq!(got.article.source.id, "ntb");
        assert_eq!(got.article.tags, ["Teknologi", "Innenriks", "Økonomi"]);
        assert_eq!(got.article.places, ["Telemark"]);
        assert_eq!(got.article.authors, ["NTB"]);
        assert_eq!(
            got.article.editorial.pubstatus,
            PubStatus::Withheld.number()
        );
        assert_eq!(got.article.editorial.urgency, 5);
        assert_eq!(
            got.article.editorial.genres[0].code,
            "http://cv.iptc.org/newscodes/genre/Current"
        );
        assert_eq!(got.article.editorial.associations[0].uri, "urn:img:1");
        assert_eq!(
            got.not_carried,
            [
                "profile",
                "headlines[1]",
                "bodies[0]",
                "bodies[1].charcount",
                "places[0].literal",
                "subjects[0].literal",
                "subjects[2].uri",
                "genres[0].literal",
                "associations[0].type",
                "slugline",
                "renditions"
            ]
        );
        let now = at(NOW, 0);
        got.article
            .validate(now)
            .expect("valid article and editorial");
    }

    #[test]
    fn refuses_what_ninjs_2_1_does_not_define() {
        let item = json!({
            "uri": "https://a.example/1",
            "headline": "1.x style",
            "body_text": "1.x body",
            "x-custom": 1,
            "headlines": [{"value": "ok", "lang": "ar"}],
            "urgency": 12,
            "pubstatus": "Usable",
            "embargoed": "tomorrow",
            "type": "picture",
            "language": 7
        });
        let errors = from_ninjs(&item).unwrap_err();
        let found: Vec<(&str, &str)> = errors
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        let fields: Vec<&str> = found.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "headline",
                "body_text",
                "x-custom",
                "headlines[0].lang",
                "urgency",
                "pubstatus",
                "embargoed",
                "type",
                "language"
            ]
        );
        assert!(found[0].1.contains("\"headlines\""), "{found:?}");
        assert!(found[1].1.contains("\"bodies\""), "{found:?}");
        assert!(
            found[4].1.contains("from 1 (most urgent) to 9"),
            "{found:?}"
        );
        assert!(from_ninjs(&json!({"type": "text"})).unwrap_err()[0].field == "uri");
        assert!(from_ninjs(&json!([])).is_err());
    }

    #[test]
    fn reading_back_khabar_output_ignores_server_set_fields() {
        let out = to_ninjs(&article_with(Editorial::default()));
        let back = from_ninjs(&out).unwrap();
        assert!(back.article.editorial.alt_ids.is_empty());
        assert!(back.not_carried.is_empty());
        let id: ArticleId = "01BX5ZZKBKACTAV9WEVGEMMVRZ".parse().unwrap();
        assert_eq!(out["altids"][0]["value"], id.to_string());
    }
}
