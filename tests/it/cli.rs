//! The binary's own commands and options: `khabar health`, JSON logs, start-up errors, shell
//! completions and manual pages.

use std::process::{Command, Output};

use crate::common::{ChildServer, WAIT, run_bounded};

fn khabar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_khabar"))
        .args(args)
        .output()
        .expect("run khabar")
}

#[test]
fn health_command_reports_serving_and_fails_otherwise() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(data_dir.path());
    let url = format!("http://{}", server.addr);

    let out = khabar(&["health", "--server", &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");

    let out = khabar(&[
        "health",
        "--server",
        &url,
        "--service",
        "khabar.v1.FeedService",
    ]);
    assert!(out.status.success(), "{out:?}");

    let out = khabar(&["health", "--server", &url, "--service", "no.such.Service"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    server.terminate();
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let out = khabar(&["health", "--server", &url, "--timeout-ms", "500"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("health check"),
        "{out:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start_with(data_dir.path(), &["--log-format", "json"]);
    server.terminate();
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let lines = server.log.lock().unwrap().clone();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value.get("level").is_some() && value.get("fields").is_some(),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("\"listening\"")),
        "{lines:?}"
    );
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_option() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["serve", "--max-message-bytes", "10"],
            "--max-message-bytes",
        ),
        (&["serve", "--listen", "not-an-address"], "--listen"),
        (
            &["serve", "--feed-heartbeat-ms", "0"],
            "--feed-heartbeat-ms",
        ),
        (&["serve", "--log-format", "xml"], "--log-format"),
        (&["serve", "--tokens", "reader read short"], "--tokens"),
        (
            &["serve", "--tokens", "reader reed 0123456789abcdef"],
            "--tokens",
        ),
        (
            &[
                "serve",
                "--tls-cert",
                "missing.pem",
                "--tls-key",
                "missing.key",
            ],
            "--tls-cert",
        ),
        (
            &["serve", "--metrics-listen", "nowhere"],
            "--metrics-listen",
        ),
    ];
    for (args, option) in cases {
        let out = khabar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(option), "{args:?}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_khabar"))
        .args([
            "serve",
            "--data-dir",
            "/dev/null/not-a-dir",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot open the data directory"),
        "{out:?}"
    );
}

#[test]
fn help_documents_every_option() {
    let out = khabar(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--listen",
        "--data-dir",
        "--max-message-bytes",
        "--cache-bytes",
        "--feed-heartbeat-ms",
        "--shutdown-grace-ms",
        "--log",
        "--log-format",
        "--metrics-listen",
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "--tokens-file",
        "--tokens",
        "--auth-health",
        "--auth-reflection",
        "KHABAR_LISTEN",
        "KHABAR_DATA_DIR",
        "KHABAR_TOKENS_FILE",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from --help:\n{help}"
        );
    }
}

#[test]
fn unusable_tls_material_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let garbage = garbage.to_string_lossy().into_owned();
    let data_dir = dir.path().join("db").to_string_lossy().into_owned();
    let out = khabar(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--tls-cert",
        &garbage,
        "--tls-key",
        &garbage,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot set up TLS (--tls-cert"),
        "{out:?}"
    );
}

#[test]
fn hash_token_prints_the_configured_form() {
    let run = |token: &str| {
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_khabar")).arg("hash-token"),
            Some(token),
            WAIT,
        )
        .unwrap()
    };
    let out = run("0123456789abcdef\n");
    assert!(out.status.success(), "{out:?}");
    // SHA-256 of "0123456789abcdef", without the newline.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sha256:9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f"
    );
    let out = run("short\n");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"),
        "{out:?}"
    );
}

/// Every subcommand, as completions and manual pages must know them.
const SUBCOMMANDS: [&str; 12] = [
    "serve",
    "health",
    "ingest",
    "get",
    "tail",
    "list",
    "retract",
    "consumers",
    "hash-token",
    "completions",
    "man",
    "help",
];

#[test]
fn bash_completion_completes_subcommands_and_options() {
    let out = khabar(&["completions", "bash"]);
    assert!(out.status.success(), "{out:?}");
    let script = String::from_utf8(out.stdout).unwrap();
    for command in SUBCOMMANDS {
        assert!(script.contains(command), "{command} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("khabar.bash");
    std::fs::write(&path, &script).unwrap();
    // Loaded into a real bash, the completion function answers as the shell would ask it.
    let complete = |words: &str| {
        let probe = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _khabar khabar \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        let out = run_bounded(
            Command::new("bash").args(["--noprofile", "--norc", "-c", &probe]),
            None,
            WAIT,
        )
        .unwrap();
        assert!(out.status.success(), "{words}: {out:?}");
        let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        words.sort();
        words
    };
    assert_eq!(complete("khabar con"), ["consumers"]);
    assert_eq!(complete("khabar co"), ["completions", "consumers"]);
    assert_eq!(
        complete("khabar consumers ''"),
        ["--help", "-h", "delete", "get", "help", "list"]
    );
    assert!(complete("khabar list --").contains(&"--published-after".to_owned()));
    assert_eq!(complete("khabar completions z"), ["zsh"]);

    for (shell, marker) in [("zsh", "#compdef khabar"), ("fish", "complete -c khabar")] {
        let out = khabar(&["completions", shell]);
        assert!(out.status.success(), "{out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("consumers") && script.contains("retract"),
            "{shell}"
        );
    }
    let out = khabar(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Checks a page with groff when it is installed (`.ci/run` installs it), with every warning on;
/// returns the rendered text. Without groff, only the roff structure is checked.
fn render_man_page(page: &str) -> Option<String> {
    let lines: Vec<&str> = page.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with(".TH ")), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS"] {
        assert!(lines.contains(&section), "{section} missing: {page}");
    }
    // Every request line is a known man(7) macro or groff request.
    for line in lines.iter().filter(|l| l.starts_with('.')) {
        let request = line[1..].split_whitespace().next().unwrap_or_default();
        assert!(
            [
                "TH", "SH", "SS", "TP", "PP", "IP", "RS", "RE", "br", "ie", "el", "ds", "B", "I",
                "nf", "fi", "sp", "in"
            ]
            .contains(&request),
            "unknown request {line:?}"
        );
    }
    let groff = Command::new("groff").arg("--version").output();
    if !groff.is_ok_and(|out| out.status.success()) {
        eprintln!("groff is not installed: the manual page was only checked for its structure");
        return None;
    }
    let out = run_bounded(
        Command::new("groff").args(["-man", "-Tutf8", "-ww", "-rLL=200n"]),
        Some(page),
        WAIT,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "groff warns about the page"
    );
    // Bold and underline are drawn with backspaces on a terminal device.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.chars()
            .fold(String::new(), |mut plain, c| {
                if c == '\u{8}' {
                    plain.pop();
                } else {
                    plain.push(c);
                }
                plain
            })
            .replace("\u{2010}", "-"),
    )
}

#[test]
fn man_pages_are_valid_roff_for_every_command() {
    let out = khabar(&["man"]);
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH khabar 1"), "{page}");
    for command in SUBCOMMANDS.iter().filter(|c| **c != "help") {
        assert!(
            page.contains(&format!("khabar\\-{}(1)", command.replace('-', "\\-"))),
            "{command} missing: {page}"
        );
    }
    if let Some(text) = render_man_page(&page) {
        assert!(text.contains("khabar-consumers(1)"), "{text}");
        assert!(text.contains("List articles, newest first"), "{text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let out = khabar(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "khabar.1",
        "khabar-list.1",
        "khabar-retract.1",
        "khabar-consumers.1",
        "khabar-consumers-list.1",
        "khabar-consumers-get.1",
        "khabar-consumers-delete.1",
        "khabar-serve.1",
        "khabar-completions.1",
    ] {
        assert!(
            pages.contains(&expected.to_owned()),
            "{expected}: {pages:?}"
        );
    }
    let list = std::fs::read_to_string(dir.path().join("khabar-list.1")).unwrap();
    if let Some(text) = render_man_page(&list) {
        for option in [
            "--published-after",
            "--published-before",
            "--include-retracted",
            "--page-size",
            "--limit",
            "--format",
            "--server",
            "--token-file",
        ] {
            assert!(text.contains(option), "{option} missing: {text}");
        }
    }
    let out = khabar(&["man", "--out-dir", "/dev/null/not-a-dir"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
