//! The client commands of the real binary (`khabar ingest`, `get`, `list`, `retract`, `tail`,
//! `consumers`) against a real server: input forms, reports, progress, tables, exit codes,
//! durable consumers, filters, TLS and tokens.

use std::{
    process::{Command, Output, Stdio},
    sync::Arc,
};

use crate::common::{TestServer, WAIT, fixture, fixture_text, run_bounded};
use khabar::{
    auth::{AuthPolicy, Tokens, hashed_token_entry},
    config::TlsSettings,
};
use serde_json::Value;
use tonic::transport::{Certificate, ClientTlsConfig};

/// Runs `khabar ARGS` with `stdin`, killing it if it outlives [`WAIT`].
fn khabar(args: &[&str], stdin: Option<&str>) -> Output {
    khabar_env(args, stdin, &[])
}

/// [`khabar`] with extra environment variables.
fn khabar_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(args)
            .env_remove("KHABAR_SERVER")
            .env_remove("COLUMNS")
            .envs(env.iter().copied())
            .stdin(Stdio::null()),
        stdin,
        WAIT,
    )
    .unwrap_or_else(|e| panic!("khabar {args:?}: {e}"))
}

/// Runs `khabar ARGS` with standard output and error on a pseudo-terminal (util-linux `script`,
/// part of every Debian system), returning what the terminal showed.
fn khabar_on_terminal(args: &[&str]) -> Output {
    let quote = |arg: &str| format!("'{}'", arg.replace('\'', r"'\''"));
    let command = std::iter::once(env!("CARGO_BIN_EXE_khabar"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    run_bounded(
        Command::new("script")
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .env_remove("KHABAR_SERVER")
            .env_remove("COLUMNS")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null()),
        None,
        WAIT,
    )
    .unwrap_or_else(|e| panic!("script (util-linux) is needed to run khabar on a terminal: {e}"))
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
    // Not on a terminal: nothing but the summary, no progress display.
    assert_eq!(stderr(&out), "");

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

/// Seven articles an hour apart (`n` at 09+n:00Z): 0-4 from alkhabar in Arabic, 5-6 from
/// other-wire in English tagged "markets"; the uri ends in `n`.
fn listing_lines() -> Vec<String> {
    let seed: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json")).unwrap();
    (0..7)
        .map(|n| {
            let mut article = seed["article"].clone();
            article["uri"] = format!("https://alkhabar.example/list/{n}").into();
            article["publishedAt"] = format!("2016-07-01T{:02}:00:00Z", 9 + n).into();
            if n >= 5 {
                article["source"]["id"] = "other-wire".into();
                article["language"] = "en".into();
                article["tags"] = serde_json::json!(["markets"]);
                article["headline"] = format!("Markets open higher {n}").into();
            }
            serde_json::to_string(&article).unwrap()
        })
        .collect()
}

/// The `n` of each listed article, in listing order.
fn listed(out: &Output) -> Vec<usize> {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    lines_json(out)
        .iter()
        .map(|article| {
            let uri = article["uri"].as_str().unwrap();
            uri.rsplit('/').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_page_tokens_and_applies_every_filter() {
    let server = TestServer::start().await;
    let url = server.url();
    let out = khabar(
        &["ingest", "-", "--server", &url],
        Some(&listing_lines().join("\n")),
    );
    assert!(out.status.success(), "{out:?}");
    let list = |args: &[&str]| khabar(&[&["list", "--server", &url][..], args].concat(), None);

    // Off a terminal: one JSON line per article, newest first, across four pages of two.
    assert_eq!(listed(&list(&["--page-size", "2"])), [6, 5, 4, 3, 2, 1, 0]);
    assert_eq!(listed(&list(&[])), [6, 5, 4, 3, 2, 1, 0]);
    assert_eq!(
        listed(&list(&["--page-size", "2", "--limit", "3"])),
        [6, 5, 4]
    );
    assert_eq!(listed(&list(&["--limit", "1"])), [6]);
    assert_eq!(listed(&list(&["--source", "other-wire"])), [6, 5]);
    assert_eq!(
        listed(&list(&["--source", "other-wire", "--source", "alkhabar"])).len(),
        7
    );
    assert_eq!(listed(&list(&["--language", "ar"])), [4, 3, 2, 1, 0]);
    assert_eq!(listed(&list(&["--tag", "markets"])), [6, 5]);
    assert_eq!(
        listed(&list(&["--tag", "markets", "--language", "ar"])),
        [] as [usize; 0]
    );
    // After is inclusive, before exclusive; any offset is accepted.
    assert_eq!(
        listed(&list(&[
            "--published-after",
            "2016-07-01T11:00:00Z",
            "--published-before",
            "2016-07-01T16:00:00+03:00",
        ])),
        [3, 2]
    );

    // Retracted articles only with --include-retracted.
    let id = lines_json(&list(&["--limit", "4"]))[3]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = khabar(
        &["retract", &id, "--reason", "تصحيح", "--server", &url],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed(&list(&[])), [6, 5, 4, 2, 1, 0]);
    let all = list(&["--include-retracted"]);
    assert_eq!(listed(&all), [6, 5, 4, 3, 2, 1, 0]);
    assert_eq!(lines_json(&all)[3]["status"], "ARTICLE_STATUS_CANCELED");

    // Mistakes: a time that is not RFC 3339 is a usage error, a filter the server refuses is 1.
    let out = list(&["--published-after", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("RFC 3339"), "{out:?}");
    let out = list(&[
        "--published-after",
        "2016-07-02T00:00:00Z",
        "--published-before",
        "2016-07-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("InvalidArgument"), "{out:?}");
    let out = list(&["--page-size", "1001"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_prints_a_table_on_a_terminal_with_isolated_right_to_left_headlines() {
    use unicode_width::UnicodeWidthStr;
    const FSI: char = '\u{2068}';
    const PDI: char = '\u{2069}';

    let server = TestServer::start().await;
    let url = server.url();
    let out = khabar(
        &["ingest", "-", "--server", &url],
        Some(&listing_lines().join("\n")),
    );
    assert!(out.status.success(), "{out:?}");
    let sent: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json")).unwrap();
    let arabic = sent["article"]["headline"].as_str().unwrap();

    // Standard output a terminal: a table, without asking.
    let out = khabar_on_terminal(&["list", "--server", &url, "--limit", "3"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let screen = stdout(&out).replace('\r', "");
    let lines: Vec<&str> = screen.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{screen}");
    assert!(
        lines[0].starts_with("ID") && lines[0].ends_with("HEADLINE"),
        "{screen}"
    );
    assert!(lines[1].contains("other-wire") && lines[1].contains("Markets open higher 6"));
    assert!(
        lines[3].contains(&format!("{FSI}{arabic}{PDI}")),
        "{screen}"
    );

    // Forced, on a line of 100 columns: the headline is cut to fit, by display width, inside
    // its isolate, and starts in the same column on every line.
    let out = khabar_env(
        &[
            "list",
            "--server",
            &url,
            "--format",
            "table",
            "--include-retracted",
        ],
        None,
        &[("COLUMNS", "100")],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 8, "{table}");
    let column = |line: &str, at: usize| UnicodeWidthStr::width(&line[..at]);
    let headline_column = column(lines[0], lines[0].find("HEADLINE").unwrap());
    for line in &lines[1..] {
        assert!(UnicodeWidthStr::width(*line) <= 100, "{line}");
        let start = line
            .find(FSI)
            .unwrap_or_else(|| panic!("no isolate: {line}"));
        assert_eq!(column(line, start), headline_column, "{line}");
        assert!(line.ends_with(PDI), "{line}");
        assert!(line.contains(" usable "), "{line}");
    }
    let cut = lines[7];
    let shown = &cut[cut.find(FSI).unwrap() + FSI.len_utf8()..cut.len() - PDI.len_utf8()];
    assert!(shown.ends_with('…'), "{cut}");
    assert!(arabic.starts_with(shown.trim_end_matches('…')), "{cut}");

    // JSON when asked, even on a terminal.
    let out = khabar_on_terminal(&["list", "--server", &url, "--limit", "1", "--format", "json"]);
    let line = stdout(&out);
    let article: Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(article["source"]["id"], "other-wire");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_shows_progress_on_a_terminal_only() {
    let server = TestServer::start().await;
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wire.ndjson");
    std::fs::write(&file, seed_lines(0..20, "alkhabar").join("\n")).unwrap();
    let file = file.to_str().unwrap();

    let out = khabar_on_terminal(&["ingest", file, "--server", &url, "--window", "2"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let screen = stdout(&out);
    // A bar over the file's size, with rate, time left and items; then the summary.
    assert!(screen.contains(" left) "), "{screen}");
    assert!(screen.contains(" items"), "{screen}");
    assert!(
        screen.contains(
            "20 created, 0 updated, 0 unchanged, 0 counters updated, 0 rejected (20 items)"
        ),
        "{screen}"
    );

    let out = khabar(&["ingest", file, "--server", &url], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stderr(&out), "");
    assert_eq!(
        stdout(&out),
        "0 created, 0 updated, 20 unchanged, 0 counters updated, 0 rejected (20 items)\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retract_prints_the_retracted_article_and_refuses_what_it_cannot_do() {
    let server = TestServer::start().await;
    let url = server.url();
    let seed = fixture("seed-article.ingest.json");
    let out = khabar(&["ingest", seed.to_str().unwrap(), "--server", &url], None);
    assert!(out.status.success(), "{out:?}");
    let id = lines_json(&khabar(&["list", "--server", &url], None))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reason = "خطأ في نسبة الخبر إلى مصدره";

    let out = khabar(
        &["retract", &id, "--reason", reason, "--server", &url],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let article: Value = serde_json::from_slice(&out.stdout).expect("retract prints JSON");
    assert_eq!(article["id"], id.as_str());
    assert_eq!(article["status"], "ARTICLE_STATUS_CANCELED");
    assert_eq!(article["version"], "2");
    assert_eq!(article["retraction"]["reason"], reason);
    assert!(
        article["retraction"]["retractedAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // What get shows afterwards is the same article.
    let got: Value =
        serde_json::from_slice(&khabar(&["get", &id, "--server", &url], None).stdout).unwrap();
    assert_eq!(got, article);

    let out = khabar(
        &[
            "retract",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "--reason",
            "x",
            "--server",
            &url,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("NotFound"), "{out:?}");
    let out = khabar(&["retract", &id, "--reason", "  ", "--server", &url], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("InvalidArgument"), "{out:?}");
    let out = khabar(&["retract", &id, "--server", &url], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--reason"), "{out:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_are_listed_shown_and_deleted() {
    let server = TestServer::start().await;
    let url = server.url();
    let out = khabar(
        &["ingest", "-", "--server", &url],
        Some(&seed_lines(0..3, "alkhabar").join("\n")),
    );
    assert!(out.status.success(), "{out:?}");
    let consumers = |args: &[&str]| {
        khabar(
            &[&["consumers"][..], args, &["--server", &url][..]].concat(),
            None,
        )
    };
    let out = consumers(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "");

    for (name, limit) in [("indexer", "2"), ("archiver", "3")] {
        let out = khabar(
            &[
                "tail",
                "--from-beginning",
                "--limit",
                limit,
                "--consumer",
                name,
                "--server",
                &url,
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
    }

    let out = consumers(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed = lines_json(&out);
    let progress: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["ackedCursor"].as_str().unwrap(),
                c["lag"].as_str().unwrap_or("0"),
            )
        })
        .collect();
    assert_eq!(progress, [("archiver", "3", "0"), ("indexer", "2", "1")]);

    let out = consumers(&["list", "--format", "table"]);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("NAME      ACKED  HEAD  LAG  CREATED"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("indexer   2      3     1    "),
        "{table}"
    );

    let out = consumers(&["get", "indexer"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let consumer: Value = serde_json::from_slice(&out.stdout).expect("consumers get prints JSON");
    assert_eq!(consumer, listed[1]);
    assert!(
        stdout(&out).contains("\n  \"ackedCursor\": \"2\""),
        "indented"
    );

    let out = consumers(&["delete", "indexer"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "deleted consumer indexer\n");
    for args in [&["get", "indexer"][..], &["delete", "indexer"][..]] {
        let out = consumers(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(stderr(&out).contains("NotFound"), "{out:?}");
    }
    let out = consumers(&["get", "not a name!"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("InvalidArgument"), "{out:?}");
    assert_eq!(lines_json(&consumers(&["list"])).len(), 1);

    server.stop().await;
    let out = consumers(&["list"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("cannot connect"), "{out:?}");
}
