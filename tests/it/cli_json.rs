//! What the command-line client prints is proto3 JSON exactly as grpcurl (1.8.6, Go's protobuf
//! runtime) prints it: for every message type the client prints, the same call on the same
//! server through both, compared as JSON values (timestamps in `Z` with 0, 3, 6 or 9 fractional
//! digits, 64-bit integers as strings, zero values left out, enums by name, field names in
//! lowerCamelCase).

use std::process::{Command, Output, Stdio};

use crate::common::{TestServer, WAIT, fixture_text, grpcurl_binary, run_bounded};
use serde_json::Value;

struct Grpcurl {
    binary: String,
    addr: String,
}

impl Grpcurl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_bounded(
            Command::new(&self.binary)
                .args(["-plaintext", "-max-time", "20"])
                .args(args)
                .stdin(Stdio::null()),
            stdin,
            2 * WAIT,
        )
        .expect("grpcurl finishes")
    }

    /// The answer of a unary call.
    fn call(&self, method: &str, body: &str) -> Value {
        let out = self.run(&["-d", "@", &self.addr, method], Some(body));
        assert!(out.status.success(), "{method}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("grpcurl prints JSON")
    }

    /// The messages of a feed subscription, followed for `seconds`.
    fn subscribe(&self, body: &str, seconds: &str) -> Vec<Value> {
        let out = self.run(
            &[
                "-max-time",
                seconds,
                "-d",
                body,
                &self.addr,
                "khabar.v1.FeedService/Subscribe",
            ],
            None,
        );
        serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }
}

/// Runs `khabar ARGS` against `url`.
fn khabar(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(args)
            .args(["--server", url])
            .env_remove("KHABAR_SERVER")
            .stdin(Stdio::null()),
        stdin,
        WAIT,
    )
    .unwrap_or_else(|e| panic!("khabar {args:?}: {e}"));
    assert_eq!(out.status.code(), Some(0), "khabar {args:?}: {out:?}");
    out
}

/// The one JSON document `khabar` printed (get, retract, consumers get).
fn document(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// The JSON lines `khabar` printed (list, tail, consumers list).
fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The first place where two JSON values differ, as a path, with both sides there.
fn difference(path: &str, left: &Value, right: &Value) -> Option<String> {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let (l, r) = (&l.get(key), &r.get(key));
                match (l, r) {
                    (Some(l), Some(r)) => difference(&format!("{path}.{key}"), l, r),
                    _ => Some(format!("{path}.{key}: {l:?} != {r:?}")),
                }
            })
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => l
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (l, r))| difference(&format!("{path}[{i}]"), l, r)),
        (Value::Array(l), Value::Array(r)) => {
            Some(format!("{path}: {} items != {} items", l.len(), r.len()))
        }
        _ if left == right => None,
        _ => Some(format!("{path}: {left} != {right}")),
    }
}

/// Asserts that what the client printed is what grpcurl printed, naming the first difference.
#[track_caller]
fn assert_same(what: &str, printed: &Value, answer: &Value) {
    if let Some(difference) = difference("", printed, answer) {
        panic!("{what}: the client printed something else than grpcurl: {difference}");
    }
}

/// Articles whose times need each number of fractional digits proto3 JSON allows, one with an
/// offset in its input, one without a view count (a zero value, left out).
fn articles() -> Vec<String> {
    let seed: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json")).unwrap();
    let times = [
        "2016-07-01T09:00:00Z",
        "2016-07-01T09:00:00.120Z",
        "2016-07-01T09:00:00.123456Z",
        "2016-07-01T09:00:00.123456789Z",
        "2016-07-01T12:00:00.5+03:00",
    ];
    times
        .iter()
        .enumerate()
        .map(|(n, time)| {
            let mut article = seed["article"].clone();
            article["uri"] = format!("https://alkhabar.example/json/{n}").into();
            article["publishedAt"] = (*time).into();
            if n == 3 {
                article["updatedAt"] = "2016-07-02T00:00:00.000001Z".into();
            }
            if n == 4 {
                article.as_object_mut().unwrap().remove("viewCount");
            }
            serde_json::to_string(&article).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_the_client_prints_is_what_grpcurl_prints() {
    let server = TestServer::start().await;
    let grpcurl = Grpcurl {
        binary: grpcurl_binary(),
        addr: server.addr.to_string(),
    };
    let url = server.url();
    // Both block; run them off the async threads that serve the calls.
    tokio::task::spawn_blocking(move || compare(&grpcurl, &url))
        .await
        .unwrap();
    server.stop().await;
}

fn compare(grpcurl: &Grpcurl, url: &str) {
    let mut input = articles();
    // A changed version of the first: an UPDATED event and version 2.
    input.push(input[0].replace("أمريكا", "الولايات المتحدة"));
    let out = khabar(url, &["ingest", "-"], Some(&input.join("\n")));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("5 created, 1 updated"),
        "{out:?}"
    );

    // ListArticlesResponse: the client's lines are the articles of grpcurl's answer, even
    // when it follows page tokens to get them.
    let listed = lines(&khabar(url, &["list", "--page-size", "2"], None));
    let answer = grpcurl.call(
        "khabar.v1.ArticleService/ListArticles",
        r#"{"pageSize":1000}"#,
    );
    assert_same("list", &Value::Array(listed.clone()), &answer["articles"]);
    assert_eq!(listed.len(), 5);
    let published: Vec<&str> = listed
        .iter()
        .map(|a| a["publishedAt"].as_str().unwrap())
        .collect();
    assert_eq!(
        published,
        [
            "2016-07-01T09:00:00.500Z",
            "2016-07-01T09:00:00.123456789Z",
            "2016-07-01T09:00:00.123456Z",
            "2016-07-01T09:00:00.120Z",
            "2016-07-01T09:00:00Z",
        ]
    );
    assert_eq!(listed[1]["updatedAt"], "2016-07-02T00:00:00.000001Z");
    assert!(listed[0].get("viewCount").is_none());
    let ids: Vec<String> = listed
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();

    // Article, through get.
    for id in &ids {
        let printed = document(&khabar(url, &["get", id], None));
        let answer = grpcurl.call(
            "khabar.v1.ArticleService/GetArticle",
            &format!(r#"{{"id":"{id}"}}"#),
        );
        assert_same(&format!("get {id}"), &printed, &answer);
    }

    // StoryArticle, through story: the copies share the first article's story.
    let story_id = listed[0]["storyId"].as_str().expect("a story").to_owned();
    assert_eq!(story_id, ids[4], "the first one ingested starts the story");
    let printed = lines(&khabar(url, &["story", &story_id], None));
    let answer = grpcurl.call(
        "khabar.v1.ArticleService/GetStory",
        &format!(r#"{{"storyId":"{story_id}"}}"#),
    );
    assert_same("story", &Value::Array(printed.clone()), &answer["articles"]);
    assert_eq!(printed.len(), 5);
    let in_story = lines(&khabar(url, &["list", "--story", &story_id], None));
    assert_eq!(in_story.len(), 5);

    // Article, through retract: retracting again answers the article unchanged, so grpcurl's
    // second retraction shows what the client's first one printed.
    let reason = "خطأ في نسبة الخبر إلى مصدره";
    let printed = document(&khabar(
        url,
        &["retract", &ids[2], "--reason", reason],
        None,
    ));
    let answer = grpcurl.call(
        "khabar.v1.ArticleService/RetractArticle",
        &serde_json::json!({"id": ids[2], "reason": reason}).to_string(),
    );
    assert_same("retract", &printed, &answer);
    assert_eq!(printed["status"], "ARTICLE_STATUS_CANCELED");
    let listed = lines(&khabar(url, &["list", "--include-retracted"], None));
    let answer = grpcurl.call(
        "khabar.v1.ArticleService/ListArticles",
        r#"{"includeRetracted":true}"#,
    );
    assert_same(
        "list --include-retracted",
        &Value::Array(listed),
        &answer["articles"],
    );

    // FeedEvent, through tail: created, updated and retracted events.
    let printed = lines(&khabar(
        url,
        &["tail", "--from-beginning", "--limit", "7"],
        None,
    ));
    let answer: Vec<Value> = grpcurl
        .subscribe(r#"{"fromBeginning":true}"#, "2")
        .into_iter()
        .filter(|event| event["kind"] != "EVENT_KIND_CHECKPOINT")
        .collect();
    assert_same(
        "tail",
        &Value::Array(printed.clone()),
        &Value::Array(answer),
    );
    let kinds: Vec<&str> = printed
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[4..],
        [
            "EVENT_KIND_CREATED",
            "EVENT_KIND_UPDATED",
            "EVENT_KIND_RETRACTED"
        ]
    );

    // Consumer, through consumers get and list: one that acknowledged (through the client's
    // tail) and one that never did (created by grpcurl), whose zero cursor and missing time
    // are left out.
    khabar(
        url,
        &[
            "tail",
            "--from-beginning",
            "--limit",
            "3",
            "--consumer",
            "indexer",
        ],
        None,
    );
    grpcurl.subscribe(r#"{"fromBeginning":true,"consumer":"archiver"}"#, "1");
    for name in ["indexer", "archiver"] {
        let printed = document(&khabar(url, &["consumers", "get", name], None));
        let answer = grpcurl.call(
            "khabar.v1.FeedService/GetConsumer",
            &format!(r#"{{"name":"{name}"}}"#),
        );
        assert_same(&format!("consumers get {name}"), &printed, &answer);
    }
    let listed = lines(&khabar(url, &["consumers", "list"], None));
    let answer = grpcurl.call("khabar.v1.FeedService/ListConsumers", "{}");
    assert_same(
        "consumers list",
        &Value::Array(listed.clone()),
        &answer["consumers"],
    );
    assert!(listed[0].get("ackedCursor").is_none() && listed[0].get("ackedAt").is_none());
    assert_eq!(listed[1]["ackedCursor"], "3");
}
