//! The client commands of the real binary (`khabar ingest`, `get`, `tail`) against a real
//! server: input forms, reports, exit codes, durable consumers, filters, TLS and tokens.

mod common;

use std::{
    process::{Command, Output, Stdio},
    sync::Arc,
};

use common::{TestServer, WAIT, fixture, fixture_text, run_bounded};
use khabar::{
    auth::{AuthPolicy, Tokens, hashed_token_entry},
    config::TlsSettings,
};
use serde_json::Value;
use tonic::transport::{Certificate, ClientTlsConfig};

/// Runs `khabar ARGS` with `stdin`, killing it if it outlives [`WAIT`].
fn khabar(args: &[&str], stdin: Option<&str>) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(args)
            .env_remove("KHABAR_SERVER")
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

/// The seed article as NDJSON lines (bare articles) under distinct uris, optionally of another
/// source.
fn seed_lines(range: std::ops::Range<usize>, source: &str) -> Vec<String> {
    let seed: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json")).unwrap();
    range
        .map(|n| {
            let mut article = seed["article"].clone();
            article["uri"] = format!("https://alkhabar.example/cli/{source}/{n}").into();
            article["source"]["id"] = source.into();
            serde_json::to_string(&article).unwrap()
        })
        .collect()
}

fn lines_json(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn cursor(event: &Value) -> u64 {
    event["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no cursor in {event}"))
}

// The binary is run synchronously while the in-process server answers on another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reads_files_and_stdin_and_reports_each_rejection() {
    let server = TestServer::start().await;
    let url = server.url();
    let seed = fixture("seed-article.ingest.json");
    let seed = seed.to_str().unwrap();

    // The fixture as grpcurl takes it: one pretty-printed request document.
    let out = khabar(&["ingest", seed, "--server", &url], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out).trim(),
        "1 created, 0 updated, 0 unchanged, 0 counters updated, 0 rejected (1 items)"
    );

    // The same again from standard input: unchanged.
    let out = khabar(
        &["ingest", "-", "--server", &url],
        Some(&fixture_text("seed-article.ingest.json")),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("0 created, 0 updated, 1 unchanged"));

    // NDJSON mixing articles, a request, broken JSON and invalid articles.
    let mut lines = seed_lines(0..2, "alkhabar");
    lines.push("this is not json".into());
    lines.push(String::new());
    lines.push(fixture_text("invalid-article.ingest.json").replace('\n', " "));
    lines.push(format!(
        "{{\"article\": {}}}",
        seed_lines(2..3, "alkhabar")[0]
    ));
    let out = khabar(
        &["ingest", "-", "--server", &url, "--window", "2"],
        Some(&lines.join("\n")),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out).trim(),
        "3 created, 0 updated, 0 unchanged, 0 counters updated, 2 rejected (5 items)"
    );
    let report = stderr(&out);
    assert!(report.contains("line 3: rejected: not JSON"), "{report}");
    assert!(
        report.contains("line 5: rejected: InvalidArgument: 7 field violation(s)"),
        "{report}"
    );
    for field in [
        "article.source.id",
        "article.headline",
        "article.published_at",
    ] {
        assert!(
            report.contains(&format!("  {field}: ")),
            "{field}: {report}"
        );
    }

    // The invalid fixture alone: one rejection, exit 1.
    let invalid = fixture("invalid-article.ingest.json");
    let out = khabar(
        &["ingest", invalid.to_str().unwrap(), "--server", &url],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).starts_with("document: rejected: InvalidArgument"));

    // Usage problems exit 2.
    let out = khabar(&["ingest", "no-such-file.ndjson", "--server", &url], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("cannot open no-such-file.ndjson"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_article_and_fails_for_unknown_ids() {
    let server = TestServer::start().await;
    let url = server.url();
    let seed = fixture("seed-article.ingest.json");
    let out = khabar(&["ingest", seed.to_str().unwrap(), "--server", &url], None);
    assert!(out.status.success(), "{out:?}");
    let out = khabar(
        &["tail", "--from-beginning", "--limit", "1", "--server", &url],
        None,
    );
    let id = lines_json(&out)[0]["article"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = khabar(&["get", &id, "--server", &url], None);
    assert!(out.status.success(), "{out:?}");
    let article: Value = serde_json::from_slice(&out.stdout).expect("get prints JSON");
    let sent: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json")).unwrap();
    assert_eq!(article["id"], id.as_str());
    // Arabic text comes back byte for byte.
    assert_eq!(article["headline"], sent["article"]["headline"]);
    assert_eq!(article["body"], sent["article"]["body"]);
    assert_eq!(article["status"], "ARTICLE_STATUS_USABLE");

    let out = khabar(
        &["get", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--server", &url],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("NotFound"), "{out:?}");
    let out = khabar(&["get", "not-an-id", "--server", &url], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("InvalidArgument"), "{out:?}");

    // Nobody listens on the server's port once it is stopped.
    server.stop().await;
    let out = khabar(&["get", &id, "--server", &url], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("cannot connect"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_events_resumes_consumers_and_filters_by_source() {
    let server = TestServer::start().await;
    let url = server.url();
    let mut lines = seed_lines(0..4, "alkhabar");
    lines.extend(seed_lines(0..2, "other-wire"));
    let out = khabar(&["ingest", "-", "--server", &url], Some(&lines.join("\n")));
    assert!(out.status.success(), "{out:?}");

    let out = khabar(
        &["tail", "--from-beginning", "--limit", "3", "--server", &url],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let events = lines_json(&out);
    assert_eq!(events.iter().map(cursor).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(events.iter().all(|e| e["kind"] == "EVENT_KIND_CREATED"));

    let out = khabar(
        &["tail", "--after", "4", "--limit", "2", "--server", &url],
        None,
    );
    assert_eq!(
        lines_json(&out).iter().map(cursor).collect::<Vec<_>>(),
        [5, 6]
    );

    // A durable consumer resumes after what it printed.
    let consumer = ["--consumer", "cli-reader", "--server", &url];
    let first = khabar(
        &[
            &["tail", "--from-beginning", "--limit", "2"][..],
            &consumer[..],
        ]
        .concat(),
        None,
    );
    assert_eq!(
        lines_json(&first).iter().map(cursor).collect::<Vec<_>>(),
        [1, 2]
    );
    let second = khabar(
        &[&["tail", "--limit", "3"][..], &consumer[..]].concat(),
        None,
    );
    assert_eq!(
        lines_json(&second).iter().map(cursor).collect::<Vec<_>>(),
        [3, 4, 5]
    );

    let out = khabar(
        &[
            "tail",
            "--from-beginning",
            "--source",
            "other-wire",
            "--limit",
            "2",
            "--server",
            &url,
        ],
        None,
    );
    let events = lines_json(&out);
    assert_eq!(events.iter().map(cursor).collect::<Vec<_>>(), [5, 6]);
    assert!(
        events
            .iter()
            .all(|e| e["article"]["source"]["id"] == "other-wire")
    );
    server.stop().await;
}

const READER: &str = "reader-secret-0123456789";
const INGESTER: &str = "ingester-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_a_tls_server_with_a_token() {
    let tls_file = |name: &str| std::fs::read(fixture(&format!("tls/{name}"))).unwrap();
    let mut tokens = Tokens::default();
    tokens
        .add_entries(
            &format!(
                "reader read {}\ningester ingest {}",
                hashed_token_entry(READER),
                hashed_token_entry(INGESTER)
            ),
            "test",
        )
        .unwrap();
    let client_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(tls_file("ca.pem")))
        .domain_name("localhost");
    let server = TestServer::start_with(tempfile::tempdir().unwrap(), Some(client_tls), |config| {
        config.tls = Some(TlsSettings {
            cert_pem: tls_file("server.pem"),
            key_pem: tls_file("server.key"),
            client_ca_pem: None,
        });
        config.auth = Arc::new(AuthPolicy {
            tokens,
            ..AuthPolicy::default()
        });
    })
    .await;
    let url = format!("https://{}", server.addr);
    let ca = fixture("tls/ca.pem");
    let ca = ca.to_str().unwrap();
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), format!("{INGESTER}\n")).unwrap();
    let seed = fixture("seed-article.ingest.json");
    let tls = ["--server", &url, "--ca-cert", ca];

    let out = khabar(
        &[
            &["ingest", seed.to_str().unwrap(), "--token-file"][..],
            &[token_file.path().to_str().unwrap()][..],
            &tls[..],
        ]
        .concat(),
        None,
    );
    assert!(out.status.success(), "{out:?}");

    let out = khabar(
        &[
            &[
                "tail",
                "--from-beginning",
                "--limit",
                "1",
                "--token",
                READER,
            ][..],
            &tls[..],
        ]
        .concat(),
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cursor(&lines_json(&out)[0]), 1);

    // The ingester's token does not grant reading; no token at all is unauthenticated.
    let out = khabar(
        &[
            &["tail", "--from-beginning", "--token", INGESTER][..],
            &tls[..],
        ]
        .concat(),
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("PermissionDenied"), "{out:?}");
    let out = khabar(
        &[&["ingest", seed.to_str().unwrap()][..], &tls[..]].concat(),
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("Unauthenticated"), "{out:?}");

    // Health is open, and checked over TLS.
    let out = khabar(&[&["health"][..], &tls[..]].concat(), None);
    assert!(out.status.success(), "{out:?}");
    server.stop().await;
}
