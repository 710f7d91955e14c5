//! The binary's own commands and options: `khabar health`, JSON logs, start-up errors.

mod common;

use std::process::{Command, Output};

use common::{ChildServer, WAIT, run_bounded};

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
