//! Editorial metadata and ninjs through the real binary against a real server: `get --ninjs`
//! and `tail --ninjs` print ninjs 2.1 that the published schema accepts, ninjs read by
//! `ingest` gives back the same article, malformed ninjs is rejected by its ninjs path, and
//! `list` filters and orders by urgency.

use std::process::{Command, Output, Stdio};

use crate::common::{TestServer, WAIT, fixture, fixture_text, run_bounded};
use crate::ninjs_schema;
use serde_json::Value;

/// Runs `khabar ARGS` with `stdin`, killing it if it outlives [`WAIT`].
fn khabar(args: &[&str], stdin: Option<&str>) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(args)
            .env_remove("KHABAR_SERVER")
            .env_remove("COLUMNS")
            .stdin(Stdio::null()),
        stdin,
        WAIT,
    )
    .unwrap_or_else(|e| panic!("khabar {args:?}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines_json(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn assert_valid_ninjs(schema: &jsonschema::Validator, item: &Value) {
    let errors = ninjs_schema::errors(schema, item);
    assert!(errors.is_empty(), "not ninjs 2.1: {errors:?}\n{item:#}");
}

/// Ingests a fixture (or `-` with `stdin`) and returns the summary line, asserting success.
fn ingest_ok(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = khabar(&[&["ingest", "--server", url][..], args].concat(), stdin);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    stdout(&out).trim().to_owned()
}

/// Every listed article (released, retracted ones included), as proto3 JSON.
fn list_all(url: &str) -> Vec<Value> {
    let out = khabar(
        &[
            "list",
            "--format",
            "json",
            "--include-retracted",
            "--include-expired",
            "--server",
            url,
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    lines_json(&out)
}

/// The id of the one listed article at `uri`.
fn id_of(url: &str, source: &str, uri: &str) -> String {
    let found: Vec<Value> = list_all(url)
        .into_iter()
        .filter(|a| a["uri"] == uri && a["source"]["id"] == source)
        .collect();
    assert_eq!(found.len(), 1, "{source} {uri}: {found:?}");
    found[0]["id"].as_str().expect("an id").to_owned()
}

fn get_json(url: &str, id: &str) -> Value {
    let out = khabar(&["get", id, "--server", url], None);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("get prints JSON")
}

fn get_ninjs(url: &str, id: &str) -> Value {
    let out = khabar(&["get", id, "--ninjs", "--server", url], None);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("get --ninjs prints one JSON object")
}

const SEED_URI: &str = "https://alkhabar.example/news/us-abandons-allies-syria-bukamal";

/// Fields of khabar's JSON that the server sets for each stored article, so that an article
/// ingested again under another address has its own: identity, version, log position, times of
/// ingest, hash (the address is hashed), canonical address and story links (a copy is linked
/// to the original). `viewCount` is a counter that ninjs does not carry (read back as 0).
const NOT_TRAVELLING: [&str; 11] = [
    "id",
    "version",
    "cursor",
    "contentHash",
    "ingestedAt",
    "firstIngestedAt",
    "canonicalUri",
    "storyId",
    "duplicateOf",
    "similarity",
    "viewCount",
];

/// `article` without the fields that cannot travel through ninjs, and with `uri` and
/// `source.id` blanked when the copy was sent under another address or source.
fn travelling(article: &Value) -> Value {
    let mut article = article.clone();
    let fields = article.as_object_mut().expect("an object");
    for key in NOT_TRAVELLING {
        fields.remove(key);
    }
    fields.remove("uri");
    if let Some(Value::Object(source)) = fields.get_mut("source") {
        source.remove("id");
    }
    article
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ninjs_prints_schema_valid_ninjs_that_ingests_back_to_the_same_article() {
    let server = TestServer::start().await;
    let url = server.url();
    let schema = ninjs_schema::validator();

    // The second version's embargo (2016) has passed: released at once.
    let v2 = fixture("seed-article-v2.ingest.json");
    assert_eq!(
        ingest_ok(&url, &[v2.to_str().unwrap()], None),
        "1 created, 0 updated, 0 unchanged, 0 counters updated, 0 rejected (1 items)"
    );
    let id = id_of(&url, "alkhabar", SEED_URI);
    let original = get_json(&url, &id);
    assert_eq!(original["status"], "ARTICLE_STATUS_USABLE");

    let ninjs = get_ninjs(&url, &id);
    assert_valid_ninjs(&schema, &ninjs);
    assert_eq!(ninjs["uri"], SEED_URI);
    assert_eq!(ninjs["versioncreated"], "2016-07-01T11:30:00Z");
    assert_eq!(ninjs["firstcreated"], "2016-07-01T09:00:00Z");
    assert_eq!(ninjs["pubstatus"], "usable");
    assert_eq!(ninjs["urgency"], 3);
    assert_eq!(ninjs["version"], "1");
    assert_eq!(
        ninjs["genres"],
        serde_json::json!([{"literal": "genre:Current", "name": "خبر"}])
    );
    assert_eq!(ninjs["located"], "دير الزور");
    assert_eq!(ninjs["embargoed"], "2016-07-01T12:00:00Z");
    assert_eq!(
        ninjs["associations"],
        serde_json::json!([{
            "name": "follow-up-of",
            "uri": "https://alkhabar.example/news/new-syrian-army-offensive-bukamal"
        }])
    );
    assert_eq!(ninjs["headlines"][0]["role"], "main");
    assert_eq!(ninjs["headlines"][0]["value"], original["headline"]);
    // ninjs 2.x keeps the text in `bodies`; the 1.x `body_text` is not a 2.1 property.
    assert_eq!(ninjs["bodies"][0]["contenttype"], "text/plain");
    assert_eq!(ninjs["bodies"][0]["value"], original["body"]);
    assert!(ninjs.get("body_text").is_none(), "{ninjs:#}");
    assert_eq!(ninjs["infosources"][0]["literal"], "alkhabar");
    assert!(
        ninjs["altids"]
            .as_array()
            .expect("altids")
            .contains(&serde_json::json!({"role": "khabar:id", "value": id})),
        "{ninjs:#}"
    );

    // khabar -> ninjs -> khabar, under a new address, read as ninjs by request.
    let moved_uri = "https://alkhabar.example/news/us-abandons-allies-syria-bukamal-copy";
    let mut moved = ninjs.clone();
    moved["uri"] = moved_uri.into();
    assert!(
        ingest_ok(
            &url,
            &["-", "--input-format", "ninjs"],
            Some(&serde_json::to_string(&moved).unwrap()),
        )
        .starts_with("1 created, 0 updated"),
    );
    let copy_id = id_of(&url, "alkhabar", moved_uri);
    assert_ne!(copy_id, id);
    let copy = get_json(&url, &copy_id);
    assert_eq!(copy["uri"], moved_uri);
    assert_eq!(copy["source"]["id"], "alkhabar");
    assert_eq!(copy["viewCount"].as_str().unwrap_or("0"), "0");
    assert_eq!(original["viewCount"], "182");
    assert_eq!(travelling(&copy), travelling(&original));
    // The editorial fields are among those compared; make sure they were there to compare
    // (`pubstatus` usable is stored as unset, so proto3 JSON leaves it out).
    for field in [
        "embargoed",
        "urgency",
        "genres",
        "located",
        "copyrightHolder",
        "associations",
        "infoSources",
    ] {
        assert!(copy.get(field).is_some(), "{field} missing: {copy:#}");
    }

    // The same under another source (the publisher infosource's literal), found by `auto`.
    let mut other = ninjs.clone();
    other["infosources"][0]["literal"] = "alkhabar-mirror".into();
    assert!(
        ingest_ok(
            &url,
            &["-", "--input-format", "auto"],
            Some(&serde_json::to_string(&other).unwrap()),
        )
        .starts_with("1 created, 0 updated"),
    );
    let mirror_id = id_of(&url, "alkhabar-mirror", SEED_URI);
    let mirror = get_json(&url, &mirror_id);
    assert_eq!(mirror["uri"], SEED_URI);
    assert_eq!(travelling(&mirror), travelling(&original));

    // Its ninjs is the original's but for what the server set and the publisher.
    let mut mirror_ninjs = get_ninjs(&url, &mirror_id);
    assert_valid_ninjs(&schema, &mirror_ninjs);
    mirror_ninjs["infosources"][0]["literal"] = "alkhabar".into();
    mirror_ninjs["altids"] = ninjs["altids"].clone();
    assert_eq!(mirror_ninjs, ninjs);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reads_ninjs_files_and_rejects_malformed_ninjs_by_its_path() {
    let server = TestServer::start().await;
    let url = server.url();

    // The ninjs rendering of the seed's second version, told apart from khabar's JSON alone.
    let file = fixture("seed-article-v2.ninjs.json");
    assert_eq!(
        ingest_ok(&url, &[file.to_str().unwrap()], None),
        "1 created, 0 updated, 0 unchanged, 0 counters updated, 0 rejected (1 items)"
    );
    let id = id_of(&url, "alkhabar", SEED_URI);
    let article = get_json(&url, &id);
    let sent: Value = serde_json::from_str(&fixture_text("seed-article-v2.ingest.json")).unwrap();
    for field in [
        "headline",
        "body",
        "urgency",
        "genres",
        "located",
        "associations",
        "embargoed",
    ] {
        assert_eq!(article[field], sent["article"][field], "{field}");
    }

    // NDJSON of three ninjs items, the second malformed: it alone is rejected, by its path.
    // The first has ninjs properties khabar does not keep: it is stored, with a warning
    // naming them.
    let ninjs: Value = serde_json::from_str(&fixture_text("seed-article-v2.ninjs.json")).unwrap();
    let items: Vec<String> = (0..3)
        .map(|n| {
            let mut item = ninjs.clone();
            item["uri"] = format!("https://alkhabar.example/ninjs/{n}").into();
            if n == 0 {
                item["slugline"] = "syria-bukamal".into();
                item["renditions"] =
                    serde_json::json!({"thumb": {"href": "https://alkhabar.example/t.jpg"}});
            }
            if n == 1 {
                item["headlines"] = "لا عنوان".into();
            }
            serde_json::to_string(&item).unwrap()
        })
        .collect();
    let out = khabar(&["ingest", "-", "--server", &url], Some(&items.join("\n")));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out).trim(),
        "2 created, 0 updated, 0 unchanged, 0 counters updated, 1 rejected (3 items)"
    );
    let report = stderr(&out);
    assert!(
        report.contains("line 2: rejected: not valid ninjs: headlines: must be an array"),
        "{report}"
    );
    assert!(
        report.contains(
            "line 1: warning: ninjs properties khabar does not keep were left out: \
             slugline, renditions"
        ) || report.contains(
            "line 1: warning: ninjs properties khabar does not keep were left out: \
             renditions, slugline"
        ),
        "{report}"
    );
    assert!(
        !report.contains("line 1: rejected") && !report.contains("line 3"),
        "{report}"
    );
    let uris: Vec<Value> = list_all(&url)
        .into_iter()
        .map(|a| a["uri"].clone())
        .collect();
    assert!(uris.contains(&"https://alkhabar.example/ninjs/0".into()));
    assert!(!uris.contains(&"https://alkhabar.example/ninjs/1".into()));
    assert!(uris.contains(&"https://alkhabar.example/ninjs/2".into()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_ninjs_prints_one_schema_valid_object_per_event() {
    let server = TestServer::start().await;
    let url = server.url();
    let schema = ninjs_schema::validator();

    // The seed (no editorial fields), its second version (UPDATED, with them), another
    // article, and a retraction: four events.
    for name in ["seed-article.ingest.json", "seed-article-v2.ingest.json"] {
        ingest_ok(&url, &[fixture(name).to_str().unwrap()], None);
    }
    let mut other: Value =
        serde_json::from_str(&fixture_text("seed-article-v2.ingest.json")).unwrap();
    other["article"]["uri"] = "https://alkhabar.example/news/other".into();
    ingest_ok(&url, &["-"], Some(&other.to_string()));
    let other_id = id_of(&url, "alkhabar", "https://alkhabar.example/news/other");
    let out = khabar(
        &[
            "retract",
            &other_id,
            "--reason",
            "سحب الخبر",
            "--server",
            &url,
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");

    let out = khabar(
        &[
            "tail",
            "--from-beginning",
            "--ninjs",
            "--limit",
            "4",
            "--server",
            &url,
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let items = lines_json(&out);
    assert_eq!(items.len(), 4, "{}", stdout(&out));
    for item in &items {
        assert_valid_ninjs(&schema, item);
    }
    assert_eq!(items[0]["uri"], SEED_URI);
    assert_eq!(items[0]["version"], "1");
    assert!(items[0].get("urgency").is_none(), "{:#}", items[0]);
    assert_eq!(items[1]["uri"], SEED_URI);
    assert_eq!(items[1]["version"], "2");
    assert_eq!(items[1]["urgency"], 3);
    assert_eq!(items[2]["pubstatus"], "usable");
    assert_eq!(items[3]["uri"], "https://alkhabar.example/news/other");
    assert_eq!(items[3]["pubstatus"], "canceled");
    assert_eq!(items[3]["ednote"], "سحب الخبر");

    // The feed filters apply to ninjs output too: the seed's first version (no urgency, no
    // genre) is skipped.
    let out = khabar(
        &[
            "tail",
            "--from-beginning",
            "--ninjs",
            "--max-urgency",
            "3",
            "--genre",
            "genre:Current",
            "--limit",
            "3",
            "--server",
            &url,
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let items = lines_json(&out);
    assert_eq!(items.len(), 3, "{}", stdout(&out));
    assert!(items.iter().all(|i| i["urgency"] == 3), "{items:?}");
    server.stop().await;
}

/// A bare article of the seed at `uri`, with `urgency` (0: none) and a publication time.
fn article_line(uri: &str, urgency: u32, published_at: &str) -> String {
    let seed: Value = serde_json::from_str(&fixture_text("seed-article-v2.ingest.json")).unwrap();
    let mut article = seed["article"].clone();
    article["uri"] = uri.into();
    article["publishedAt"] = published_at.into();
    article["updatedAt"] = published_at.into();
    if urgency == 0 {
        article.as_object_mut().unwrap().remove("urgency");
    } else {
        article["urgency"] = urgency.into();
    }
    serde_json::to_string(&article).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_urgency_and_orders_the_most_urgent_first() {
    let server = TestServer::start().await;
    let url = server.url();
    let base = "https://alkhabar.example/urgency";
    let lines = [
        article_line(&format!("{base}/routine-newest"), 5, "2016-07-04T09:00:00Z"),
        article_line(&format!("{base}/flash-oldest"), 1, "2016-07-01T09:00:00Z"),
        article_line(&format!("{base}/three"), 3, "2016-07-02T09:00:00Z"),
        article_line(&format!("{base}/none"), 0, "2016-07-03T09:00:00Z"),
    ];
    ingest_ok(&url, &["-"], Some(&lines.join("\n")));

    let listed = |args: &[&str]| -> Vec<String> {
        let out = khabar(
            &[&["list", "--format", "json", "--server", &url][..], args].concat(),
            None,
        );
        assert!(out.status.success(), "{out:?}");
        lines_json(&out)
            .iter()
            .map(|a| {
                a["uri"]
                    .as_str()
                    .expect("a uri")
                    .trim_start_matches(&format!("{base}/"))
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        listed(&["--max-urgency", "3", "--order-by", "urgency"]),
        ["flash-oldest", "three"]
    );
    assert_eq!(
        listed(&["--order-by", "urgency"]),
        ["flash-oldest", "three", "routine-newest", "none"]
    );
    assert_eq!(listed(&["--max-urgency", "3"]), ["three", "flash-oldest"]);
    assert_eq!(
        listed(&[]),
        ["routine-newest", "none", "three", "flash-oldest"]
    );
    let out = khabar(&["list", "--max-urgency", "0", "--server", &url], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--max-urgency"), "{out:?}");
    server.stop().await;
}
