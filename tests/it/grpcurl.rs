//! The README's grpcurl walk-through, run with the real grpcurl binary (1.8.6, reflection
//! v1alpha) against a real server. grpcurl is found through $GRPCURL or on PATH.

use std::process::{Command, Output, Stdio};

use crate::common::{SERVICES, TestServer, WAIT, fixture_text, grpcurl_binary, run_bounded};
use serde_json::Value;

struct Grpcurl {
    binary: String,
    addr: String,
}

impl Grpcurl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_bounded(
            Command::new(&self.binary)
                .args(["-plaintext", "-max-time", "20", "-format-error"])
                .args(args)
                .stdin(Stdio::null()),
            stdin,
            // Beyond grpcurl's own -max-time.
            2 * WAIT,
        )
        .expect("grpcurl finishes")
    }

    /// Calls `method` with the JSON body and returns the parsed response; panics on failure.
    fn call(&self, method: &str, body: &str) -> Value {
        let out = self.run(&["-d", "@", &self.addr, method], Some(body));
        assert!(
            out.status.success(),
            "{method} failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("grpcurl prints JSON")
    }

    /// Calls `method` expecting an error status, returned as grpcurl's JSON rendering of it.
    fn call_err(&self, method: &str, body: &str) -> Value {
        let out = self.run(&["-d", "@", &self.addr, method], Some(body));
        assert!(!out.status.success(), "{method} unexpectedly succeeded");
        serde_json::from_slice(&out.stderr).expect("grpcurl prints the error as JSON")
    }

    fn text(&self, args: &[&str]) -> String {
        let all: Vec<&str> = std::iter::once(self.addr.as_str())
            .chain(args.iter().copied())
            .collect();
        let out = self.run(&all, None);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_walkthrough_with_the_fixtures() {
    let server = TestServer::start().await;
    let grpcurl = Grpcurl {
        binary: grpcurl_binary(),
        addr: server.addr.to_string(),
    };
    // grpcurl blocks; run it off the async threads that serve the requests.
    tokio::task::spawn_blocking(move || walkthrough(&grpcurl))
        .await
        .unwrap();
    server.stop().await;
}

fn walkthrough(grpcurl: &Grpcurl) {
    let services = grpcurl.text(&["list"]);
    for &service in SERVICES.iter() {
        assert!(
            services.lines().any(|l| l == service),
            "{service} not listed: {services}"
        );
    }
    let described = grpcurl.text(&["describe", "khabar.v1.Article"]);
    assert!(
        described.contains("headline") && described.contains("info_sources"),
        "{described}"
    );

    let health = grpcurl.call(
        "grpc.health.v1.Health/Check",
        r#"{"service":"khabar.v1.IngestService"}"#,
    );
    assert_eq!(field(&health, "status"), "SERVING");

    let seed = fixture_text("seed-article.ingest.json");
    let sent: Value = serde_json::from_str(&seed).unwrap();
    let created = grpcurl.call("khabar.v1.IngestService/Ingest", &seed);
    assert_eq!(field(&created, "outcome"), "INGEST_OUTCOME_CREATED");
    assert_eq!(
        (field(&created, "version"), field(&created, "cursor")),
        ("1", "1")
    );
    let id = field(&created, "id").to_owned();

    let again = grpcurl.call("khabar.v1.IngestService/Ingest", &seed);
    assert_eq!(field(&again, "outcome"), "INGEST_OUTCOME_UNCHANGED");
    assert_eq!(field(&again, "id"), id);

    let got = grpcurl.call(
        "khabar.v1.ArticleService/GetArticle",
        &format!(r#"{{"id":"{id}"}}"#),
    );
    for key in ["headline", "body", "uri", "language"] {
        assert_eq!(
            got[key], sent["article"][key],
            "{key} round-trips byte for byte"
        );
    }
    for key in [
        "tags",
        "places",
        "organisations",
        "people",
        "infoSources",
        "source",
    ] {
        assert_eq!(got[key], sent["article"][key], "{key} round-trips");
    }
    assert_eq!(field(&got, "publishedAt"), "2016-07-01T09:00:00Z");
    assert_eq!(field(&got, "status"), "ARTICLE_STATUS_USABLE");
    assert_eq!(
        field(&got, "storyId"),
        id,
        "the first article starts its story"
    );
    assert_eq!(field(&got, "duplicateOf"), "");

    // Another outlet republishes the story: it is linked to the first article.
    let copy = grpcurl.call(
        "khabar.v1.IngestService/Ingest",
        &fixture_text("seed-copy.ingest.json"),
    );
    assert_eq!(field(&copy, "outcome"), "INGEST_OUTCOME_CREATED");
    let copy_id = field(&copy, "id").to_owned();
    let copied = grpcurl.call(
        "khabar.v1.ArticleService/GetArticle",
        &format!(r#"{{"id":"{copy_id}"}}"#),
    );
    assert_eq!(field(&copied, "storyId"), id);
    assert_eq!(field(&copied, "duplicateOf"), id);
    assert_eq!(
        field(&copied, "canonicalUri"),
        "https://rt-arabic.example/news/842117-us-allies-syria"
    );
    let story = grpcurl.call(
        "khabar.v1.ArticleService/GetStory",
        &format!(r#"{{"storyId":"{id}"}}"#),
    );
    let members = story["articles"].as_array().expect("story articles");
    assert_eq!(members.len(), 2, "{story}");
    assert_eq!(field(&members[0], "id"), id);
    assert_eq!(field(&members[0]["source"], "id"), "alkhabar");
    assert_eq!(field(&members[0], "publishedAt"), "2016-07-01T09:00:00Z");
    assert_eq!(field(&members[1], "id"), copy_id);
    assert_eq!(field(&members[1], "duplicateOf"), id);
    let similarity = members[1]["similarity"].as_f64().expect("a similarity");
    assert!(
        (f64::from(khabar::stories::DEFAULT_THRESHOLD)..=1.0).contains(&similarity),
        "{similarity}"
    );

    let listed = grpcurl.call(
        "khabar.v1.ArticleService/ListArticles",
        r#"{"sourceIds":["alkhabar"],"languages":["ar"]}"#,
    );
    let articles = listed["articles"].as_array().expect("articles listed");
    assert_eq!(articles.len(), 1);
    assert_eq!(field(&articles[0], "id"), id);

    let retracted = grpcurl.call(
        "khabar.v1.ArticleService/RetractArticle",
        &format!(r#"{{"id":"{id}","reason":"خطأ في نسبة الخبر إلى مصدره"}}"#),
    );
    assert_eq!(field(&retracted, "status"), "ARTICLE_STATUS_CANCELED");
    assert_eq!(field(&retracted, "version"), "2");
    assert_eq!(
        field(&retracted["retraction"], "reason"),
        "خطأ في نسبة الخبر إلى مصدره"
    );

    let invalid = grpcurl.call_err(
        "khabar.v1.IngestService/Ingest",
        &fixture_text("invalid-article.ingest.json"),
    );
    assert_eq!(invalid["code"], 3, "INVALID_ARGUMENT: {invalid}");
    assert!(
        field(&invalid, "message").contains("7 violations"),
        "{invalid}"
    );
    let details = invalid["details"]
        .as_array()
        .expect("details decoded through reflection");
    assert_eq!(
        field(&details[0], "@type"),
        "type.googleapis.com/google.rpc.BadRequest"
    );
    let fields: Vec<&str> = details[0]["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| field(v, "field"))
        .collect();
    assert_eq!(
        fields,
        [
            "article.source.id",
            "article.source.name",
            "article.uri",
            "article.headline",
            "article.body",
            "article.language",
            "article.published_at"
        ]
    );

    let not_found = grpcurl.call_err(
        "khabar.v1.ArticleService/GetArticle",
        r#"{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}"#,
    );
    assert_eq!(not_found["code"], 5, "NOT_FOUND: {not_found}");

    // A feed from the beginning as a durable consumer; grpcurl stops following after a second.
    let out = grpcurl.run(
        &[
            "-max-time",
            "1",
            "-d",
            r#"{"fromBeginning":true,"consumer":"search-indexer"}"#,
            &grpcurl.addr,
            "khabar.v1.FeedService/Subscribe",
        ],
        None,
    );
    let messages: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("grpcurl prints one JSON object per message");
    let events: Vec<(&str, &str)> = messages
        .iter()
        .filter(|m| field(m, "kind") != "EVENT_KIND_CHECKPOINT")
        .map(|m| (field(m, "cursor"), field(m, "kind")))
        .collect();
    assert_eq!(
        events,
        [
            ("1", "EVENT_KIND_CREATED"),
            ("2", "EVENT_KIND_CREATED"),
            ("3", "EVENT_KIND_RETRACTED")
        ]
    );
    let copied_event = messages
        .iter()
        .find(|m| field(m, "cursor") == "2" && field(m, "kind") == "EVENT_KIND_CREATED")
        .expect("the copy's event");
    assert_eq!(
        field(&copied_event["article"], "storyId"),
        id,
        "feed events carry the story"
    );
    assert_eq!(field(&messages[0]["article"], "id"), id);

    let consumer = grpcurl.call(
        "khabar.v1.FeedService/Ack",
        r#"{"consumer":"search-indexer","cursor":"3"}"#,
    );
    assert_eq!(
        (
            field(&consumer, "ackedCursor"),
            field(&consumer, "headCursor")
        ),
        ("3", "3")
    );
    let listed = grpcurl.call("khabar.v1.FeedService/ListConsumers", "{}");
    assert_eq!(field(&listed["consumers"][0], "name"), "search-indexer");
}
