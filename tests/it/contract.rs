//! The khabar.v1 contract, checked with buf: the protos pass `buf lint` (STANDARD with the
//! exceptions in `buf.yaml`), and `buf breaking` (FILE rules) finds nothing that breaks the
//! committed baseline image `contract/khabar-v1.binpb`. The check is shown to bite: in a copy of
//! `proto/`, renaming a field, reusing a field number, changing a type, removing an RPC or
//! renaming an enum value fails it, while adding a field, an enum value and an RPC passes (lint
//! included). The real `proto/` is never modified.
//!
//! buf is `$BUF`, else `contract/node_modules/.bin/buf` (`npm ci --prefix contract`), else `buf`
//! on `PATH`. Without it the tests say SKIPPED and pass, unless `KHABAR_REQUIRE_CLIENTS=1` (set by
//! `.ci/run`, which installs it) makes that a failure.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use crate::common::{missing_tool, run_bounded};

/// Bound on one buf command.
const BUF_LIMIT: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn baseline() -> PathBuf {
    repo().join("contract/khabar-v1.binpb")
}

/// The buf CLI, or None (after reporting it missing) when there is none.
fn buf(test: &str) -> Option<PathBuf> {
    let runs = |candidate: &Path| {
        run_bounded(
            Command::new(candidate)
                .arg("--version")
                .stdin(Stdio::null()),
            None,
            BUF_LIMIT,
        )
        .is_ok_and(|out| out.status.success())
    };
    if let Some(configured) = std::env::var_os("BUF") {
        let configured = PathBuf::from(configured);
        assert!(runs(&configured), "$BUF={configured:?} does not run");
        return Some(configured);
    }
    let candidates = [
        repo().join("contract/node_modules/.bin/buf"),
        PathBuf::from("buf"),
    ];
    let found = candidates.into_iter().find(|c| runs(c));
    if found.is_none() {
        missing_tool(
            test,
            "buf is not installed (npm ci --prefix contract, or set $BUF)",
        );
    }
    found
}

fn run_buf(buf: &Path, dir: &Path, args: &[&str]) -> Output {
    run_bounded(
        Command::new(buf)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null()),
        None,
        BUF_LIMIT,
    )
    .expect("run buf")
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `buf breaking` against the baseline, run in `dir` (which holds `buf.yaml` and `proto/`).
fn breaking(buf: &Path, dir: &Path) -> Output {
    let against = baseline();
    let against = against.to_str().expect("baseline path is UTF-8");
    run_buf(buf, dir, &["breaking", "--against", against])
}

/// A copy of `buf.yaml` and `proto/` in a temporary directory, for edits.
fn proto_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::copy(repo().join("buf.yaml"), dir.path().join("buf.yaml")).expect("copy buf.yaml");
    let from = repo().join("proto/khabar/v1");
    let to = dir.path().join("proto/khabar/v1");
    fs::create_dir_all(&to).expect("create proto dirs");
    for entry in fs::read_dir(&from).expect("list proto/khabar/v1") {
        let path = entry.expect("proto entry").path();
        if path.extension().is_some_and(|e| e == "proto") {
            fs::copy(&path, to.join(path.file_name().expect("file name"))).expect("copy proto");
        }
    }
    dir
}

/// Replaces the one occurrence of `from` in `file` (under `proto/khabar/v1/` of `dir`).
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join("proto/khabar/v1").join(file);
    let text = fs::read_to_string(&path).expect("read proto copy");
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file} should hold {from:?} exactly once"
    );
    fs::write(&path, text.replacen(from, to, 1)).expect("write proto copy");
}

#[test]
fn protos_pass_buf_lint() {
    let Some(buf) = buf("protos_pass_buf_lint") else {
        return;
    };
    let out = run_buf(&buf, repo(), &["lint"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "buf lint found problems:\n{}",
        describe(&out)
    );
}

#[test]
fn protos_do_not_break_the_baseline() {
    let Some(buf) = buf("protos_do_not_break_the_baseline") else {
        return;
    };
    let out = breaking(&buf, repo());
    assert!(
        out.status.success(),
        "proto/ breaks callers of khabar.v1 built against contract/khabar-v1.binpb; keep the old \
         fields, numbers and names (see the README on moving the baseline):\n{}",
        describe(&out)
    );
}

#[test]
fn the_baseline_holds_the_api() {
    let Some(buf) = buf("the_baseline_holds_the_api") else {
        return;
    };
    // If the baseline were empty or from another module, every check against it would pass.
    let against = baseline();
    let out = run_buf(
        &buf,
        repo(),
        &["ls-files", against.to_str().expect("UTF-8 path")],
    );
    assert!(out.status.success(), "buf ls-files: {}", describe(&out));
    let files = String::from_utf8_lossy(&out.stdout);
    for file in [
        "khabar/v1/article.proto",
        "khabar/v1/ingest.proto",
        "khabar/v1/article_service.proto",
        "khabar/v1/feed.proto",
    ] {
        assert!(files.contains(file), "baseline lacks {file}:\n{files}");
    }
}

#[test]
fn breaking_changes_fail_the_check() {
    let Some(buf) = buf("breaking_changes_fail_the_check") else {
        return;
    };
    let original = fs::read_to_string(repo().join("proto/khabar/v1/article.proto"))
        .expect("read article.proto");
    // (what is done, file, from, to, what buf must say)
    let cases = [
        (
            "rename a field",
            "article.proto",
            "string headline = 4;",
            "string title = 4;",
            r#"changed name from "headline" to "title""#,
        ),
        (
            "reuse a field number for another field",
            "article.proto",
            "  string section = 11;",
            "  string byline = 11;",
            r#"changed name from "section" to "byline""#,
        ),
        (
            "change a field's type",
            "ingest.proto",
            "uint64 version = 2;",
            "int64 version = 2;",
            "changed type",
        ),
        (
            "remove an RPC",
            "feed.proto",
            "  rpc ListConsumers(ListConsumersRequest) returns (ListConsumersResponse);\n",
            "",
            r#"RPC "ListConsumers" on service "FeedService" was deleted"#,
        ),
        (
            "rename an enum value",
            "ingest.proto",
            "INGEST_OUTCOME_UNCHANGED = 3;",
            "INGEST_OUTCOME_SAME = 3;",
            "INGEST_OUTCOME_UNCHANGED",
        ),
    ];
    for (change, file, from, to, expected) in cases {
        let copy = proto_copy();
        edit(copy.path(), file, from, to);
        let out = breaking(&buf, copy.path());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && stdout.contains(expected),
            "{change} ({file}: {from:?} -> {to:?}) should fail buf breaking with {expected:?}:\n{}",
            describe(&out)
        );
    }
    let after = fs::read_to_string(repo().join("proto/khabar/v1/article.proto"))
        .expect("read article.proto");
    assert_eq!(original, after, "the real proto/ must not change");
}

#[test]
fn additions_pass_the_check() {
    let Some(buf) = buf("additions_pass_the_check") else {
        return;
    };
    let copy = proto_copy();
    edit(
        copy.path(),
        "article.proto",
        "  float similarity = 28;\n",
        "  float similarity = 28;\n  // Who signed the story, as printed.\n  string byline = 29;\n",
    );
    edit(
        copy.path(),
        "article.proto",
        "  ARTICLE_STATUS_CANCELED = 3;\n",
        "  ARTICLE_STATUS_CANCELED = 3;\n  ARTICLE_STATUS_EMBARGOED = 4;\n",
    );
    edit(
        copy.path(),
        "feed.proto",
        "  rpc DeleteConsumer(DeleteConsumerRequest) returns (DeleteConsumerResponse);\n",
        "  rpc DeleteConsumer(DeleteConsumerRequest) returns (DeleteConsumerResponse);\n  \
         rpc ResetConsumer(ResetConsumerRequest) returns (ResetConsumerResponse);\n}\n\n\
         message ResetConsumerRequest {\n  string name = 1;\n  uint64 cursor = 2;\n}\n\n\
         message ResetConsumerResponse {\n  Consumer consumer = 1;\n",
    );
    let out = breaking(&buf, copy.path());
    assert!(
        out.status.success(),
        "adding a field, an enum value and an RPC must not break khabar.v1:\n{}",
        describe(&out)
    );
    let out = run_buf(&buf, copy.path(), &["lint"]);
    assert!(
        out.status.success(),
        "the additions should pass lint too:\n{}",
        describe(&out)
    );
}
