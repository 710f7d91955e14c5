//! ninjs output of the seed articles: valid against the IPTC ninjs 2.1 JSON schema, equal to the
//! rendering kept in `tests/fixtures/seed-article-v2.ninjs.json`, and read back into the same
//! article.

use std::{fs, path::PathBuf};

use khabar::{
    domain::{
        ArticleContent, ArticleDraft, InfoSourceDraft, SourceDraft, Timestamp, TimestampDraft,
        editorial::{
            AltIdDraft, AssociationDraft, Editorial, EditorialDraft, GenreDraft, PubStatus,
            validate_with_editorial,
        },
    },
    ninjs::{NINJS_2_1_PROPERTIES, content_to_ninjs, from_ninjs},
};
use serde_json::{Map, Value};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_json(name: &str) -> Value {
    let text = fs::read_to_string(fixture_path(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A time just after the seed's dates, so that its embargo has passed and nothing is too far
/// in the future.
fn now() -> Timestamp {
    Timestamp::new(1_467_400_000, 0).unwrap()
}

fn text(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{key} is text"))
                .to_owned()
        })
        .unwrap_or_default()
}

fn texts(map: &Map<String, Value>, key: &str) -> Vec<String> {
    map.get(key)
        .map(|v| {
            v.as_array()
                .unwrap_or_else(|| panic!("{key} is a list"))
                .iter()
                .map(|s| s.as_str().expect("text item").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn objects<'a>(map: &'a Map<String, Value>, key: &str) -> Vec<&'a Map<String, Value>> {
    map.get(key)
        .map(|v| {
            v.as_array()
                .unwrap_or_else(|| panic!("{key} is a list"))
                .iter()
                .map(|o| o.as_object().expect("object item"))
                .collect()
        })
        .unwrap_or_default()
}

fn time(map: &Map<String, Value>, key: &str) -> Option<TimestampDraft> {
    map.get(key).map(|v| {
        let t = chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time is text"))
            .expect("RFC 3339");
        TimestampDraft {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        }
    })
}

/// The proto3 JSON names of the article fields today plus those proposed for editorial metadata.
const FIXTURE_KEYS: [&str; 28] = [
    "source",
    "uri",
    "headline",
    "summary",
    "body",
    "language",
    "publishedAt",
    "updatedAt",
    "authors",
    "section",
    "tags",
    "places",
    "organisations",
    "people",
    "infoSources",
    "viewCount",
    "embargoed",
    "pubstatus",
    "urgency",
    "genres",
    "located",
    "copyrightHolder",
    "copyrightNotice",
    "usageTerms",
    "altIds",
    "associations",
    "expires",
    "edNote",
];

/// Reads an ingest fixture (`{"article": {...}}` in proto3 JSON, with the proposed editorial
/// fields) the way the protobuf conversion will once those fields are in the proto.
fn read_ingest_fixture(name: &str) -> (ArticleDraft, EditorialDraft) {
    let root = read_json(name);
    let a = root["article"].as_object().expect("article object");
    for key in a.keys() {
        assert!(
            FIXTURE_KEYS.contains(&key.as_str()),
            "{name}: unknown field {key}"
        );
    }
    let source = a["source"].as_object().expect("source");
    let article = ArticleDraft {
        source: SourceDraft {
            id: text(source, "id"),
            name: text(source, "name"),
            url: text(source, "url"),
        },
        uri: text(a, "uri"),
        headline: text(a, "headline"),
        summary: text(a, "summary"),
        body: text(a, "body"),
        language: text(a, "language"),
        published_at: time(a, "publishedAt"),
        updated_at: time(a, "updatedAt"),
        authors: texts(a, "authors"),
        section: text(a, "section"),
        tags: texts(a, "tags"),
        places: texts(a, "places"),
        organisations: texts(a, "organisations"),
        people: texts(a, "people"),
        info_sources: objects(a, "infoSources")
            .into_iter()
            .map(|i| InfoSourceDraft {
                name: text(i, "name"),
                uri: text(i, "uri"),
                role: text(i, "role"),
            })
            .collect(),
        view_count: text(a, "viewCount").parse().unwrap_or(0),
        editorial: EditorialDraft::default(),
    };
    let pubstatus = match text(a, "pubstatus").as_str() {
        "" | "PUB_STATUS_UNSPECIFIED" => 0,
        "PUB_STATUS_USABLE" => PubStatus::Usable.number(),
        "PUB_STATUS_WITHHELD" => PubStatus::Withheld.number(),
        "PUB_STATUS_CANCELED" => PubStatus::Canceled.number(),
        other => panic!("pubstatus {other}"),
    };
    let editorial = EditorialDraft {
        embargoed: time(a, "embargoed"),
        pubstatus,
        urgency: a.get("urgency").and_then(Value::as_u64).unwrap_or(0) as u32,
        genres: objects(a, "genres")
            .into_iter()
            .map(|g| GenreDraft {
                code: text(g, "code"),
                name: text(g, "name"),
            })
            .collect(),
        located: text(a, "located"),
        copyright_holder: text(a, "copyrightHolder"),
        copyright_notice: text(a, "copyrightNotice"),
        usage_terms: text(a, "usageTerms"),
        alt_ids: objects(a, "altIds")
            .into_iter()
            .map(|x| AltIdDraft {
                role: text(x, "role"),
                value: text(x, "value"),
            })
            .collect(),
        associations: objects(a, "associations")
            .into_iter()
            .map(|x| AssociationDraft {
                rel: text(x, "rel"),
                uri: text(x, "uri"),
                article_id: text(x, "articleId"),
            })
            .collect(),
        expires: time(a, "expires"),
        ed_note: text(a, "edNote"),
    };
    (article, editorial)
}

fn validated(name: &str) -> (ArticleContent, Editorial) {
    let (article, editorial) = read_ingest_fixture(name);
    let (article, editorial) =
        validate_with_editorial(article, editorial, now()).expect("the fixture is valid");
    (article.into_content(), editorial)
}

/// Stands in for the GeoJSON schema that ninjs refers to for `places[].geojson` (which khabar
/// never writes) with an open schema, so that nothing is fetched; any other address is refused.
struct GeoJsonStub;

impl jsonschema::Retrieve for GeoJsonStub {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri
            .as_str()
            .starts_with("https://geojson.org/schema/GeoJSON.json")
        {
            Ok(serde_json::json!({}))
        } else {
            Err(format!("no schema is fetched for {}", uri.as_str()).into())
        }
    }
}

fn schema_validator() -> jsonschema::Validator {
    let schema = read_json("ninjs/ninjs-schema_2.1.json");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_retriever(GeoJsonStub)
        .build(&schema)
        .expect("the ninjs schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, item: &Value) -> Vec<String> {
    validator
        .iter_errors(item)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_schema_is_the_published_2_1_schema() {
    let schema = read_json("ninjs/ninjs-schema_2.1.json");
    assert_eq!(
        schema["$id"],
        "http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json#"
    );
    let mut properties: Vec<&str> = schema["$defs"]["ninjsType"]["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    properties.sort_unstable();
    assert_eq!(properties, NINJS_2_1_PROPERTIES);
}

#[test]
fn the_schema_rejects_what_it_should() {
    // Guards the validator set-up itself: a check that accepts everything would pass the rest.
    let validator = schema_validator();
    for bad in [
        serde_json::json!({"type": "text"}),
        serde_json::json!({"uri": "https://a.example/1", "headline": "1.x"}),
        serde_json::json!({"uri": "https://a.example/1", "pubstatus": "draft"}),
        serde_json::json!({"uri": "https://a.example/1", "headlines": [{"role": "main"}]}),
        serde_json::json!({"uri": "https://a.example/1", "firstcreated": "yesterday"}),
        serde_json::json!({"uri": "https://a.example/1", "associations": [{"name": "related"}]}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
    }
    assert!(validator.is_valid(&serde_json::json!({"uri": "https://a.example/1"})));
}

#[test]
fn seed_articles_render_as_valid_ninjs_2_1() {
    let validator = schema_validator();
    for name in ["seed-article.ingest.json", "seed-article-v2.ingest.json"] {
        let (content, editorial) = validated(name);
        let item = content_to_ninjs(&content, &editorial);
        assert_eq!(
            schema_errors(&validator, &item),
            Vec::<String>::new(),
            "{name}"
        );
    }
    let kept = read_json("seed-article-v2.ninjs.json");
    assert_eq!(schema_errors(&validator, &kept), Vec::<String>::new());
}

#[test]
fn seed_v2_renders_as_the_kept_ninjs_fixture() {
    let (content, editorial) = validated("seed-article-v2.ingest.json");
    let item = content_to_ninjs(&content, &editorial);
    let rendered = serde_json::to_string_pretty(&item).unwrap();
    if std::env::var_os("KHABAR_WRITE_NINJS_FIXTURE").is_some() {
        fs::write(fixture_path("seed-article-v2.ninjs.json"), &rendered).unwrap();
    }
    assert_eq!(
        item,
        read_json("seed-article-v2.ninjs.json"),
        "rendered:\n{rendered}"
    );
    assert_eq!(item["located"], "دير الزور");
    assert_eq!(item["urgency"], 3);
    assert_eq!(item["embargoed"], "2016-07-01T12:00:00Z");
    assert_eq!(item["genres"][0]["literal"], "genre:Current");
    assert_eq!(item["associations"][0]["name"], "follow-up-of");
}

#[test]
fn seed_articles_round_trip_through_ninjs() {
    for name in ["seed-article.ingest.json", "seed-article-v2.ingest.json"] {
        let (content, editorial) = validated(name);
        let back = from_ninjs(&content_to_ninjs(&content, &editorial)).expect("readable");
        assert!(
            back.not_carried.is_empty(),
            "{name}: {:?}",
            back.not_carried
        );
        let (article, editorial_back) =
            validate_with_editorial(back.article, back.editorial, now()).expect("valid");
        assert_eq!(article.content(), &content, "{name}");
        assert_eq!(article.content_hash(), content.content_hash(), "{name}");
        assert_eq!(editorial_back, editorial, "{name}");
    }
}

#[test]
fn the_kept_ninjs_fixture_reads_as_the_v2_ingest_fixture() {
    let back = from_ninjs(&read_json("seed-article-v2.ninjs.json")).expect("readable");
    let (article, editorial) =
        validate_with_editorial(back.article, back.editorial, now()).expect("valid");
    let (content, expected) = validated("seed-article-v2.ingest.json");
    assert_eq!(article.content(), &content);
    assert_eq!(editorial, expected);
    assert!(!editorial.is_empty());
}
