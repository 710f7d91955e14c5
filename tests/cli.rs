//! The binary's own commands and options: `khabar health`, JSON logs, start-up errors.

mod common;

use std::process::{Command, Output};

use common::{ChildServer, WAIT};

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
    let cases: [(&[&str], &str); 4] = [
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
        "KHABAR_LISTEN",
        "KHABAR_DATA_DIR",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from --help:\n{help}"
        );
    }
}
