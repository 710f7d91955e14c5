//! ninjs output of the seed articles: valid against the IPTC ninjs 2.1 JSON schema, equal to the
//! rendering kept in `tests/fixtures/seed-article-v2.ninjs.json`, and read back into the same
//! article.

use std::{fs, path::PathBuf};

use khabar::{
    api::validate_ingest_request,
    domain::{ArticleContent, Timestamp},
    ninjs::{NINJS_2_1_PROPERTIES, content_to_ninjs, from_ninjs},
    pb::khabar::v1 as pb,
};
use serde_json::Value;

#[path = "support/ninjs_schema.rs"]
mod ninjs_schema;

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

/// Reads an ingest fixture (`{"article": {...}}` in proto3 JSON) through the generated serde of
/// `khabar.v1` and validates it as `Ingest` does.
fn validated(name: &str) -> ArticleContent {
    let text = fs::read_to_string(fixture_path(name)).expect("fixture");
    let request: pb::IngestRequest = serde_json::from_str(&text).expect("an ingest request");
    validate_ingest_request(request)
        .expect("the fixture is valid")
        .into_content()
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
    let validator = ninjs_schema::validator();
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
    let validator = ninjs_schema::validator();
    for name in ["seed-article.ingest.json", "seed-article-v2.ingest.json"] {
        let item = content_to_ninjs(&validated(name));
        assert_eq!(
            ninjs_schema::errors(&validator, &item),
            Vec::<String>::new(),
            "{name}"
        );
    }
    let kept = read_json("seed-article-v2.ninjs.json");
    assert_eq!(
        ninjs_schema::errors(&validator, &kept),
        Vec::<String>::new()
    );
}

#[test]
fn seed_v2_renders_as_the_kept_ninjs_fixture() {
    let item = content_to_ninjs(&validated("seed-article-v2.ingest.json"));
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
        let content = validated(name);
        let back = from_ninjs(&content_to_ninjs(&content)).expect("readable");
        assert!(
            back.not_carried.is_empty(),
            "{name}: {:?}",
            back.not_carried
        );
        let article = back.article.validate(now()).expect("valid");
        assert_eq!(article.content(), &content, "{name}");
        assert_eq!(article.content_hash(), content.content_hash(), "{name}");
    }
}

#[test]
fn the_kept_ninjs_fixture_reads_as_the_v2_ingest_fixture() {
    let back = from_ninjs(&read_json("seed-article-v2.ninjs.json")).expect("readable");
    let article = back.article.validate(now()).expect("valid");
    assert_eq!(article.content(), &validated("seed-article-v2.ingest.json"));
    assert!(!article.content().editorial.is_empty());
}
