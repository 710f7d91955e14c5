//! The example clients in `examples/clients/` (Python with grpcio, Node with grpc-js), run as child
//! processes against a real khabar server, with the real fixtures:
//!
//! - `ingest one`: the Arabic seed article is CREATED, then UNCHANGED when sent again; the invalid
//!   article is rejected with every field violation, read from the google.rpc.BadRequest details.
//! - `ingest stream`: a stream of many articles gets one result per line, in order, including a
//!   rejected line with its violations, an UNCHANGED and an UPDATED one, and a summary.
//! - `consume`: a durable consumer stops after a limit, resumes right after its acknowledged
//!   cursor on the next run, catches up, and on a third run sees only what was added since; when
//!   the server restarts under it, it subscribes again and goes on without losing or repeating an
//!   event.
//!
//! The Python stubs are generated from `proto/` into a temporary directory with grpcio-tools; the
//! Node client loads the protos at run time. The tests need `python3` with the packages of
//! `examples/clients/python/requirements.txt`, and `node` with `npm ci` run in
//! `examples/clients/node`. Without them they say SKIPPED and pass, unless
//! `KHABAR_REQUIRE_CLIENTS=1` (set by `.ci/run`, which installs them) makes that a failure.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::common::{ChildServer, WAIT, fixture, fixture_text, missing_tool, run_bounded};
use khabar::pb::khabar::v1::{GetConsumerRequest, feed_service_client::FeedServiceClient};
use serde_json::Value;

/// Bound on one client run (interpreter start-up included).
const CLIENT_LIMIT: Duration = Duration::from_secs(90);
/// Feed heartbeat of the servers: checkpoints tell a consumer it has caught up.
const HEARTBEAT_MS: &str = "100";
/// Fields the invalid fixture breaks, one violation each.
const INVALID_FIELDS: [&str; 7] = [
    "article.source.id",
    "article.source.name",
    "article.uri",
    "article.headline",
    "article.body",
    "article.language",
    "article.published_at",
];
/// Articles in the stream besides the special lines.
const MANY: usize = 50;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One example client: its interpreter, its directory, and what its programs need to run.
struct Client {
    language: &'static str,
    interpreter: &'static str,
    dir: PathBuf,
    extension: &'static str,
    env: Vec<(&'static str, OsString)>,
    /// Generated stubs (Python), removed with the client.
    _stubs: Option<tempfile::TempDir>,
}

impl Client {
    /// The Python client, with stubs generated from proto/; None (reported) if it cannot run.
    fn python(test: &str) -> Option<Self> {
        let probe = Command::new("python3")
            .args([
                "-c",
                "import grpc, grpc_tools, grpc_status, google.protobuf, google.rpc.error_details_pb2",
            ])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                missing_tool(
                    test,
                    &format!(
                        "python3 lacks the client's packages (pip install -r \
                         examples/clients/python/requirements.txt): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                );
                return None;
            }
            Err(e) => {
                missing_tool(test, &format!("python3 does not run: {e}"));
                return None;
            }
        }
        let stubs = tempfile::tempdir().expect("temp dir");
        let mut protoc = Command::new("python3");
        protoc
            .current_dir(repo())
            .args(["-m", "grpc_tools.protoc", "-I", "proto"])
            .arg(format!("--python_out={}", stubs.path().display()))
            .arg(format!("--grpc_python_out={}", stubs.path().display()));
        for entry in fs::read_dir(repo().join("proto/khabar/v1")).expect("list protos") {
            let path = entry.expect("proto entry").path();
            if path.extension().is_some_and(|e| e == "proto") {
                protoc.arg(path.strip_prefix(repo()).expect("under the repository"));
            }
        }
        let out = run_bounded(protoc.stdin(Stdio::null()), None, CLIENT_LIMIT).expect("run protoc");
        assert!(
            out.status.success(),
            "generating the Python stubs failed: {}",
            describe(&out)
        );
        Some(Self {
            language: "python",
            interpreter: "python3",
            dir: repo().join("examples/clients/python"),
            extension: "py",
            env: vec![
                ("PYTHONPATH", stubs.path().into()),
                ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ],
            _stubs: Some(stubs),
        })
    }

    /// The Node client; None (reported) if node or its packages are missing.
    fn node(test: &str) -> Option<Self> {
        let dir = repo().join("examples/clients/node");
        let probe = Command::new("node")
            .current_dir(&dir)
            .args([
                "-e",
                "for (const p of ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']) require.resolve(p)",
            ])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                missing_tool(
                    test,
                    &format!(
                        "the Node client's packages are not installed (npm ci --prefix \
                         examples/clients/node): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                );
                return None;
            }
            Err(e) => {
                missing_tool(test, &format!("node does not run: {e}"));
                return None;
            }
        }
        Some(Self {
            language: "node",
            interpreter: "node",
            dir,
            extension: "js",
            env: Vec::new(),
            _stubs: None,
        })
    }

    /// Runs `program` (ingest or consume) against `server` with `args`, to completion.
    fn run(&self, program: &str, server: &str, args: &[&str]) -> Output {
        let mut command = self.command(program, server, args);
        run_bounded(&mut command, None, CLIENT_LIMIT)
            .unwrap_or_else(|e| panic!("{} {program} {args:?}: {e}", self.language))
    }

    fn command(&self, program: &str, server: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.interpreter);
        command
            .arg(self.dir.join(format!("{program}.{}", self.extension)))
            .args(["--server", server])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("KHABAR_SERVER")
            .env_remove("KHABAR_TOKEN")
            .stdin(Stdio::null());
        command
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("client output is UTF-8")
}

/// The `key=value` words of a result line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Checks a rejection of the invalid fixture: the header line, then one line per violation.
fn assert_invalid_rejection(lines: &[&str], label: &str) {
    assert_eq!(
        lines[0],
        format!("{label}: REJECTED INVALID_ARGUMENT (7 field violations)"),
        "rejection header"
    );
    let fields: BTreeSet<&str> = lines[1..=7]
        .iter()
        .map(|line| {
            let (field, description) = line
                .strip_prefix("  ")
                .and_then(|l| l.split_once(": "))
                .unwrap_or_else(|| panic!("not a violation line: {line:?}"));
            assert!(
                !description.trim().is_empty(),
                "empty description: {line:?}"
            );
            field
        })
        .collect();
    assert_eq!(fields, INVALID_FIELDS.into_iter().collect());
    let source = lines[1..=7]
        .iter()
        .find(|l| l.starts_with("  article.source.id: "))
        .expect("source.id violation");
    assert!(
        source.contains("slug") && source.contains("Bad Source!"),
        "{source}"
    );
}

/// A fixture article under another uri and headline, as one NDJSON line.
fn variant(n: usize, headline_suffix: &str) -> String {
    let mut request: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json"))
        .expect("seed fixture is JSON");
    let article = &mut request["article"];
    article["uri"] = Value::from(format!("https://alkhabar.example/news/{n}"));
    let headline = article["headline"].as_str().expect("headline").to_owned();
    article["headline"] = Value::from(format!("{headline} #{n}{headline_suffix}"));
    serde_json::to_string(&request).expect("serialize")
}

fn compact(name: &str) -> String {
    let value: Value = serde_json::from_str(&fixture_text(name)).expect("fixture is JSON");
    serde_json::to_string(&value).expect("serialize")
}

fn seed_headline() -> String {
    let value: Value = serde_json::from_str(&fixture_text("seed-article.ingest.json"))
        .expect("seed fixture is JSON");
    value["article"]["headline"]
        .as_str()
        .expect("headline")
        .to_owned()
}

/// A feed event line: (cursor, kind, id, headline).
fn event(line: &str) -> (u64, String, String, String) {
    assert!(line.starts_with("event "), "not an event line: {line:?}");
    let headline = line
        .split_once(" headline=")
        .map(|(_, h)| h.to_owned())
        .expect("headline");
    (
        field(line, "cursor").parse().expect("numeric cursor"),
        field(line, "kind").to_owned(),
        field(line, "id").to_owned(),
        headline,
    )
}

/// Ingest (one, again, invalid), a stream of many, and a durable consumer over three runs.
fn ingest_and_consume(client: &Client) {
    let data = tempfile::tempdir().expect("temp dir");
    let server = ChildServer::start_with(data.path(), &["--feed-heartbeat-ms", HEARTBEAT_MS]);
    let addr = server.addr.as_str();
    let seed = fixture("seed-article.ingest.json");
    let seed = seed.to_str().expect("UTF-8 path");
    let invalid = fixture("invalid-article.ingest.json");
    let invalid = invalid.to_str().expect("UTF-8 path");

    // One article, then the same again.
    let out = client.run("ingest", addr, &["one", seed]);
    assert!(out.status.success(), "ingest one: {}", describe(&out));
    let text = stdout(&out);
    let created = text.lines().next().expect("a result line").to_owned();
    assert!(
        created.starts_with(&format!("{seed}: CREATED id=")),
        "{created}"
    );
    let seed_id = field(&created, "id").to_owned();
    assert_eq!(seed_id.len(), 26, "a ULID: {created}");
    assert_eq!(
        (field(&created, "version"), field(&created, "cursor")),
        ("1", "1")
    );
    let out = client.run("ingest", addr, &["one", seed]);
    assert!(out.status.success(), "ingest one again: {}", describe(&out));
    assert_eq!(
        stdout(&out).trim_end(),
        format!("{seed}: UNCHANGED id={seed_id} version=1 cursor=1")
    );

    // The invalid article: INVALID_ARGUMENT with its BadRequest details; exit code 1.
    let out = client.run("ingest", addr, &["one", invalid]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ingest invalid: {}",
        describe(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert_invalid_rejection(&lines, invalid);

    // A stream: MANY new articles, then the invalid one, the seed unchanged, and the first
    // variant with a new headline (an update).
    let work = tempfile::tempdir().expect("temp dir");
    let mut ndjson: Vec<String> = (1..=MANY).map(|n| variant(n, "")).collect();
    ndjson.push(compact("invalid-article.ingest.json"));
    ndjson.push(compact("seed-article.ingest.json"));
    ndjson.push(variant(1, " (محدّث)"));
    let stream_file = work.path().join("articles.ndjson");
    fs::write(&stream_file, ndjson.join("\n") + "\n").expect("write NDJSON");
    let out = client.run(
        "ingest",
        addr,
        &["stream", stream_file.to_str().expect("UTF-8 path")],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "ingest stream: {}",
        describe(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), MANY + 8 + 2 + 1, "{text}");
    let mut cursors = BTreeSet::new();
    let mut first_variant = String::new();
    for (i, line) in lines[..MANY].iter().enumerate() {
        assert!(
            line.starts_with(&format!("line {}: CREATED id=", i + 1))
                && line.contains(" version=1 "),
            "{line}"
        );
        cursors.insert(field(line, "cursor").parse::<u64>().expect("cursor"));
        if i == 0 {
            first_variant = field(line, "id").to_owned();
        }
    }
    let expected: BTreeSet<u64> = (2..=MANY as u64 + 1).collect();
    assert_eq!(cursors, expected, "each created article got its own cursor");
    assert_invalid_rejection(&lines[MANY..MANY + 8], &format!("line {}", MANY + 1));
    assert_eq!(
        lines[MANY + 8],
        format!(
            "line {}: UNCHANGED id={seed_id} version=1 cursor=1",
            MANY + 2
        )
    );
    let head = MANY as u64 + 2;
    assert_eq!(
        lines[MANY + 9],
        format!(
            "line {}: UPDATED id={first_variant} version=2 cursor={head}",
            MANY + 3
        )
    );
    assert_eq!(
        lines[MANY + 10],
        format!("{MANY} created, 1 updated, 1 unchanged, 0 counters updated, 1 rejected")
    );

    // A new durable consumer from the beginning, stopped after two events.
    let consumer = format!("{}-indexer", client.language);
    let out = client.run(
        "consume",
        addr,
        &["--consumer", &consumer, "--from-beginning", "--limit", "2"],
    );
    assert!(
        out.status.success(),
        "consume --limit 2: {}",
        describe(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], format!("new consumer {consumer}"));
    assert_eq!(
        event(lines[1]),
        (1, "CREATED".into(), seed_id.clone(), seed_headline()),
        "the Arabic headline comes back byte for byte"
    );
    assert!(lines[1].contains(" source=alkhabar "), "{}", lines[1]);
    assert_eq!(event(lines[2]).0, 2);
    assert_eq!(lines[3], "acked cursor 2");

    // The next run resumes right after cursor 2, whatever start it asks for, and catches up.
    let out = client.run(
        "consume",
        addr,
        &["--consumer", &consumer, "--until-caught-up"],
    );
    assert!(out.status.success(), "consume (resume): {}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("resuming consumer {consumer} after cursor 2 (head {head})")
    );
    let events: Vec<_> = lines[1..lines.len() - 2].iter().map(|l| event(l)).collect();
    let seen: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(seen, (3..=head).collect::<Vec<_>>(), "{text}");
    let (_, kind, id, headline) = events.last().expect("events");
    assert_eq!((kind.as_str(), id), ("UPDATED", &first_variant));
    assert!(headline.ends_with(" #1 (محدّث)"), "{headline}");
    assert_eq!(
        lines[lines.len() - 2],
        format!("caught up at cursor {head}")
    );
    assert_eq!(lines[lines.len() - 1], format!("acked cursor {head}"));

    // One more article; a third run sees only that one.
    let extra = work.path().join("extra.ingest.json");
    fs::write(&extra, variant(1000, "")).expect("write article");
    let out = client.run(
        "ingest",
        addr,
        &["one", extra.to_str().expect("UTF-8 path")],
    );
    assert!(out.status.success(), "ingest extra: {}", describe(&out));
    let out = client.run(
        "consume",
        addr,
        &["--consumer", &consumer, "--until-caught-up"],
    );
    assert!(out.status.success(), "consume (third): {}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        format!(
            "resuming consumer {consumer} after cursor {head} (head {})",
            head + 1
        )
    );
    assert_eq!(event(lines[1]).0, head + 1);
    assert!(event(lines[1]).3.ends_with(" #1000"), "{}", lines[1]);
    assert_eq!(lines[2], format!("caught up at cursor {}", head + 1));
    assert_eq!(lines[3], format!("acked cursor {}", head + 1));
}

/// A loopback address nothing listens on now, for a server that must come back on it.
fn free_loopback_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").to_string()
}

/// The acknowledged cursor of `consumer`, or None while it does not exist.
fn acked_cursor(server: &ChildServer, consumer: &str) -> Option<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut feed = FeedServiceClient::new(server.channel().await);
        let request = GetConsumerRequest {
            name: consumer.to_owned(),
        };
        match feed.get_consumer(request).await {
            Ok(answer) => Some(answer.into_inner().acked_cursor),
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("GetConsumer: {status:?}"),
        }
    })
}

/// A consumer following the feed while the server is stopped (SIGTERM) and started again on the
/// same address and data: it subscribes again and receives every event exactly once.
fn consume_across_a_restart(client: &Client) {
    let data = tempfile::tempdir().expect("temp dir");
    let addr = free_loopback_addr();
    let flags = ["--feed-heartbeat-ms", HEARTBEAT_MS];
    let mut server = ChildServer::start_on(&addr, data.path(), &flags);
    let work = tempfile::tempdir().expect("temp dir");
    let article = |n: usize| {
        let path = work.path().join(format!("{n}.ingest.json"));
        fs::write(&path, variant(n, "")).expect("write article");
        path.to_str().expect("UTF-8 path").to_owned()
    };
    let (first, second, third) = (article(1), article(2), article(3));
    let out = client.run("ingest", &addr, &["one", &first, &second]);
    assert!(out.status.success(), "ingest: {}", describe(&out));

    let consumer = format!("{}-restarts", client.language);
    let mut command = client.command(
        "consume",
        &addr,
        &["--consumer", &consumer, "--from-beginning", "--limit", "3"],
    );
    let follower = thread::spawn(move || run_bounded(&mut command, None, CLIENT_LIMIT));

    // The consumer acknowledges at checkpoints: wait until the server has recorded both events.
    let deadline = Instant::now() + WAIT;
    while acked_cursor(&server, &consumer) != Some(2) {
        assert!(
            Instant::now() < deadline,
            "the consumer did not acknowledge cursor 2 within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    server.terminate();
    assert!(server.wait_exit(WAIT).success(), "khabar stops cleanly");
    drop(server);
    let server = ChildServer::start_on(&addr, data.path(), &flags);
    let out = client.run("ingest", &addr, &["one", &third]);
    assert!(
        out.status.success(),
        "ingest after restart: {}",
        describe(&out)
    );

    let out = follower
        .join()
        .expect("consumer thread")
        .expect("consumer finishes in time");
    assert!(
        out.status.success(),
        "consume across a restart: {}",
        describe(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{}", describe(&out));
    assert_eq!(lines[0], format!("new consumer {consumer}"));
    let seen: Vec<u64> = lines[1..4].iter().map(|l| event(l).0).collect();
    assert_eq!(seen, [1, 2, 3], "{text}");
    assert_eq!(lines[4], "acked cursor 3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("feed interrupted (UNAVAILABLE"),
        "the consumer saw the server go away: {stderr}"
    );
    assert_eq!(acked_cursor(&server, &consumer), Some(3));
}

#[test]
fn python_client_ingests_and_consumes() {
    if let Some(client) = Client::python("python_client_ingests_and_consumes") {
        ingest_and_consume(&client);
    }
}

#[test]
fn python_consumer_survives_a_server_restart() {
    if let Some(client) = Client::python("python_consumer_survives_a_server_restart") {
        consume_across_a_restart(&client);
    }
}

#[test]
fn node_client_ingests_and_consumes() {
    if let Some(client) = Client::node("node_client_ingests_and_consumes") {
        ingest_and_consume(&client);
    }
}

#[test]
fn node_consumer_survives_a_server_restart() {
    if let Some(client) = Client::node("node_consumer_survives_a_server_restart") {
        consume_across_a_restart(&client);
    }
}
