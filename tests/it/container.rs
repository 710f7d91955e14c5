//! The container image, built from the repository's Dockerfile and run for real: it becomes
//! healthy, serves grpcurl from the host, stops cleanly on `docker stop`, and keeps its data in
//! its volume across containers.
//!
//! No image registry is reachable where this runs, so the test neither pulls the base image nor
//! runs the `compile` stage. It builds the Dockerfile's `runtime-from-host` target, which shares
//! every runtime setting with the default target, from the binary cargo compiled for the tests,
//! on a base image it makes itself: a root filesystem holding that binary's shared libraries, the
//! dynamic loader, CA certificates and the non-root user of the default base (nonroot, 65532),
//! loaded with `docker import`.
//!
//! The docker CLI is `$KHABAR_DOCKER` if set, else the first `docker` on `PATH` that reaches an
//! engine and can build with BuildKit, else the first that reaches one (legacy builder).
//! Without a Docker engine the test says so and passes, unless `KHABAR_REQUIRE_DOCKER=1` (set by
//! `.ci/run`, which starts an engine) makes that a failure.

use std::{
    ffi::OsStr,
    fs::File,
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::common::{fixture, grpcurl_binary, run_bounded};
use serde_json::Value;

/// Longest wait for a container to be reported healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
/// Timeout given to `docker stop`, after which Docker would send SIGKILL.
const STOP_TIMEOUT_SECS: u64 = 30;
/// A graceful shutdown of an idle server must end well within that timeout.
const STOPPED_WITHIN: Duration = Duration::from_secs(20);
/// Bound on one docker or grpcurl command.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// Bound on importing the base image and building the image.
const BUILD_LIMIT: Duration = Duration::from_secs(600);
/// The non-root user of the default base image (distroless `nonroot`).
const NONROOT: &str = "65532";

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A docker CLI that reaches an engine, and whether its `docker build` uses BuildKit.
struct DockerCli {
    path: PathBuf,
    buildkit: bool,
}

/// The docker CLIs to try: `$KHABAR_DOCKER` alone if set, else every `docker` on `PATH`.
fn docker_candidates() -> Vec<PathBuf> {
    if let Some(configured) = std::env::var_os("KHABAR_DOCKER") {
        return vec![PathBuf::from(configured)];
    }
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("docker");
        let Ok(real) = candidate.canonicalize() else {
            continue;
        };
        if real.is_file() && !seen.contains(&real) {
            seen.push(real);
            found.push(candidate);
        }
    }
    found
}

/// Picks the docker CLI to use, or says why there is none.
fn find_docker() -> Result<DockerCli, String> {
    let candidates = docker_candidates();
    if candidates.is_empty() {
        return Err("no docker CLI on PATH".to_owned());
    }
    let mut problems = Vec::new();
    let mut reachable = Vec::new();
    for path in candidates {
        let run = |args: &[&str]| {
            run_bounded(
                Command::new(&path).args(args).stdin(Stdio::null()),
                None,
                Duration::from_secs(30),
            )
        };
        match run(&["info", "--format", "{{.ServerVersion}}"]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                problems.push(format!("{} info: {}", path.display(), describe(&out)));
                continue;
            }
            Err(e) => {
                problems.push(format!("{} info: {e}", path.display()));
                continue;
            }
        }
        // `docker build` uses BuildKit through the buildx plugin; clients before 23 have it
        // built in (with DOCKER_BUILDKIT=1).
        let has_buildx = run(&["buildx", "version"]).is_ok_and(|out| out.status.success());
        let builtin = run(&["version", "--format", "{{.Client.Version}}"])
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| {
                let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                version.split('.').next()?.parse::<u32>().ok()
            })
            .is_some_and(|major| major < 23);
        reachable.push(DockerCli {
            path,
            buildkit: has_buildx || builtin,
        });
    }
    match reachable.iter().position(|cli| cli.buildkit) {
        Some(index) => Ok(reachable.swap_remove(index)),
        None if !reachable.is_empty() => Ok(reachable.swap_remove(0)),
        None => Err(problems.join("\n")),
    }
}

/// The docker CLI, and what the test created, removed when it ends however it ends.
struct Docker {
    cli: DockerCli,
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Docker {
    fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(&self.cli.path);
        command
            .args(args)
            .env("DOCKER_BUILDKIT", if self.cli.buildkit { "1" } else { "0" })
            .stdin(Stdio::null());
        command
    }

    fn output<S: AsRef<OsStr>>(&self, args: &[S], limit: Duration) -> io::Result<Output> {
        run_bounded(&mut self.command(args), None, limit)
    }

    /// Runs docker and returns its trimmed standard output; fails the test if it fails.
    fn run_within<S: AsRef<OsStr> + std::fmt::Debug>(&self, args: &[S], limit: Duration) -> String {
        let out = self
            .output(args, limit)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn run<S: AsRef<OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        self.run_within(args, COMMAND_LIMIT)
    }

    fn inspect(&self, format: &str, object: &str) -> String {
        self.run(&["inspect", "--format", format, object])
    }

    fn logs(&self, container: &str) -> String {
        self.output(&["logs", container], COMMAND_LIMIT)
            .map(|out| describe(&out))
            .unwrap_or_else(|e| e.to_string())
    }

    /// Waits until Docker reports `container` healthy; returns how long that took.
    fn wait_healthy(&self, container: &str) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.inspect(
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                container,
            );
            if status == "running healthy" {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < HEALTHY_WITHIN && status.starts_with("running"),
                "{container} is {status:?} after {:?}; its logs: {}",
                started.elapsed(),
                self.logs(container)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts a container of `image` with `volume` on /data and its gRPC port published on an
    /// ephemeral loopback port; returns that port's address once the container is healthy.
    fn start(&mut self, name: &str, image: &str, volume: &str) -> String {
        self.containers.push(name.to_owned());
        self.run(&[
            "run",
            "--detach",
            "--name",
            name,
            "--volume",
            &format!("{volume}:/data"),
            "--publish",
            "127.0.0.1::50051",
            image,
        ]);
        let healthy_in = self.wait_healthy(name);
        let addr = self
            .run(&["port", name, "50051/tcp"])
            .lines()
            .next()
            .expect("the published port")
            .to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "published on {addr}, not on loopback"
        );
        eprintln!("{name}: healthy in {healthy_in:?}, gRPC on {addr}");
        addr
    }

    /// `docker stop` with the test's timeout: the container must exit 0, well within it.
    fn stop_gracefully(&self, container: &str) -> Duration {
        let stopping = Instant::now();
        self.run(&["stop", "--time", &STOP_TIMEOUT_SECS.to_string(), container]);
        let stopped_in = stopping.elapsed();
        assert_eq!(
            self.inspect(
                "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
                container
            ),
            "exited 0 false",
            "{container} did not exit 0 on docker stop; its logs: {}",
            self.logs(container)
        );
        assert!(
            stopped_in < STOPPED_WITHIN,
            "docker stop took {stopped_in:?}"
        );
        eprintln!("{container}: docker stop took {stopped_in:?}, exit code 0");
        stopped_in
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let mut cleanup = Vec::new();
        for container in &self.containers {
            cleanup.push(vec!["rm", "--force", "--volumes", container]);
        }
        for volume in &self.volumes {
            cleanup.push(vec!["volume", "rm", "--force", volume]);
        }
        for image in &self.images {
            cleanup.push(vec!["rmi", "--force", image]);
        }
        for args in cleanup {
            match self.output(&args, COMMAND_LIMIT) {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!("cleanup: docker {args:?} failed: {}", describe(&out)),
                Err(e) => eprintln!("cleanup: docker {args:?}: {e}"),
            }
        }
    }
}

/// Assembles in `root` a root filesystem like the default base image's, with what `binary` needs
/// to run: its shared libraries and the dynamic loader, CA certificates, `/etc/passwd` and
/// `/etc/group` with root and nonroot (65532), `/home/nonroot` and `/tmp`.
fn assemble_base(binary: &Path, root: &Path) {
    let ldd = run_bounded(Command::new("ldd").arg(binary), None, COMMAND_LIMIT).expect("run ldd");
    assert!(ldd.status.success(), "ldd failed: {}", describe(&ldd));
    let mut files: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    assert!(
        !files.is_empty(),
        "ldd named no libraries: {}",
        describe(&ldd)
    );
    files.push(PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    for file in files.iter().filter(|file| file.exists()) {
        let target = root.join(file.strip_prefix("/").expect("an absolute path"));
        std::fs::create_dir_all(target.parent().expect("a parent directory")).unwrap();
        std::fs::copy(file, &target).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
             nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT}:\n"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("home/nonroot")).unwrap();
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
}

/// Packs `root` into `tar`: everything owned by root, except `/home/nonroot`, owned by nonroot.
fn pack(root: &Path, tar: &Path) {
    let mut create = Command::new("tar");
    create
        .args(["--create", "--numeric-owner", "--owner=0", "--group=0"])
        .arg("--exclude=./home/nonroot")
        .arg("--file")
        .arg(tar)
        .arg("--directory")
        .arg(root)
        .arg(".");
    let mut append = Command::new("tar");
    append
        .args(["--append", "--numeric-owner"])
        .arg(format!("--owner={NONROOT}"))
        .arg(format!("--group={NONROOT}"))
        .arg("--file")
        .arg(tar)
        .arg("--directory")
        .arg(root)
        .arg("./home/nonroot");
    for command in [&mut create, &mut append] {
        let out = run_bounded(command, None, COMMAND_LIMIT).expect("run tar");
        assert!(out.status.success(), "tar failed: {}", describe(&out));
    }
}

/// Calls `method` with grpcurl from the host; `data` is grpcurl's `-d` (`@` reads `stdin`).
fn grpcurl(addr: &str, method: &str, data: &str, stdin: Stdio) -> Value {
    let out = run_bounded(
        Command::new(grpcurl_binary())
            .args(["-plaintext", "-max-time", "20", "-d", data, addr, method])
            .stdin(stdin),
        None,
        COMMAND_LIMIT,
    )
    .unwrap_or_else(|e| panic!("grpcurl {method}: {e}"));
    assert!(
        out.status.success(),
        "grpcurl {method} failed: {}",
        describe(&out)
    );
    serde_json::from_slice(&out.stdout).expect("grpcurl prints JSON")
}

fn get_article(addr: &str, id: &str) -> Value {
    let request = serde_json::json!({ "id": id }).to_string();
    grpcurl(
        addr,
        "khabar.v1.ArticleService/GetArticle",
        &request,
        Stdio::null(),
    )
}

fn unique_name() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis();
    format!("khabar-test-{}-{millis}", std::process::id())
}

#[test]
fn image_runs_healthy_stops_cleanly_and_keeps_its_data() {
    let cli = match find_docker() {
        Ok(cli) => cli,
        Err(why) => {
            let required = std::env::var("KHABAR_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "KHABAR_REQUIRE_DOCKER=1 but no Docker engine is reachable:\n{why}"
            );
            eprintln!(
                "SKIPPED: no Docker engine is reachable, so the container image was not tested \
                 (set KHABAR_REQUIRE_DOCKER=1 to make this a failure):\n{why}"
            );
            return;
        }
    };
    eprintln!(
        "docker CLI {}, {} builder",
        cli.path.display(),
        if cli.buildkit { "BuildKit" } else { "legacy" }
    );
    let mut docker = Docker {
        cli,
        containers: Vec::new(),
        volumes: Vec::new(),
        images: Vec::new(),
    };
    let unique = unique_name();
    let work = tempfile::tempdir().unwrap();
    let khabar = Path::new(env!("CARGO_BIN_EXE_khabar"));

    // The base image, made locally with the configuration of the default base.
    let started = Instant::now();
    let root = work.path().join("rootfs");
    assemble_base(khabar, &root);
    let base_tar = work.path().join("base.tar");
    pack(&root, &base_tar);
    let base = format!("{unique}-base:local");
    docker.images.push(base.clone());
    docker.run_within(
        &[
            OsStr::new("import"),
            OsStr::new("--change"),
            OsStr::new("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            OsStr::new("--change"),
            OsStr::new("ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
            OsStr::new("--change"),
            OsStr::new(&format!("USER {NONROOT}")),
            OsStr::new("--change"),
            OsStr::new("WORKDIR /home/nonroot"),
            base_tar.as_os_str(),
            OsStr::new(&base),
        ],
        BUILD_LIMIT,
    );

    // The Dockerfile's runtime-from-host target, from a context holding only the binary.
    let context = work.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(khabar, context.join("khabar")).unwrap();
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let image = format!("{unique}:local");
    docker.images.push(image.clone());
    docker.run_within(
        &[
            OsStr::new("build"),
            OsStr::new("--file"),
            dockerfile.as_os_str(),
            OsStr::new("--target"),
            OsStr::new("runtime-from-host"),
            OsStr::new("--build-arg"),
            OsStr::new(&format!("RUNTIME_IMAGE={base}")),
            OsStr::new("--force-rm"),
            OsStr::new("--tag"),
            OsStr::new(&image),
            context.as_os_str(),
        ],
        BUILD_LIMIT,
    );
    eprintln!("base image and image built in {:?}", started.elapsed());

    // The runtime settings the Dockerfile promises.
    let config: Value = serde_json::from_str(&docker.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &image,
    ]))
    .expect("image config is JSON");
    assert_eq!(config["User"], format!("{NONROOT}:{NONROOT}"), "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["khabar"]),
        "{config}"
    );
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]), "{config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    assert!(
        config["ExposedPorts"].get("50051/tcp").is_some(),
        "{config}"
    );
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for setting in ["KHABAR_LISTEN=0.0.0.0:50051", "KHABAR_DATA_DIR=/data"] {
        assert!(env.contains(&setting), "{setting} missing: {config}");
    }
    let check: Vec<&str> = config["Healthcheck"]["Test"]
        .as_array()
        .expect("a health check")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        check.get(..3),
        Some(&["CMD", "khabar", "health"][..]),
        "{config}"
    );

    let volume = format!("{unique}-data");
    docker.volumes.push(volume.clone());
    docker.run(&["volume", "create", &volume]);

    // First container, on the fresh volume: ingest the fixture article and read it back.
    let first = format!("{unique}-1");
    let addr = docker.start(&first, &image, &volume);
    let seed = fixture("seed-article.ingest.json");
    let receipt = grpcurl(
        &addr,
        "khabar.v1.IngestService/Ingest",
        "@",
        Stdio::from(File::open(&seed).unwrap()),
    );
    assert_eq!(receipt["outcome"], "INGEST_OUTCOME_CREATED", "{receipt}");
    let id = receipt["id"].as_str().expect("an article id").to_owned();
    let sent: Value = serde_json::from_slice(&std::fs::read(&seed).unwrap()).unwrap();
    let before = get_article(&addr, &id);
    assert_eq!(before["id"], id.as_str(), "{before}");
    assert_eq!(before["headline"], sent["article"]["headline"], "{before}");

    // docker stop: SIGTERM, graceful shutdown, exit code 0, well within the timeout.
    docker.stop_gracefully(&first);

    // A new container on the same volume serves the same article.
    let second = format!("{unique}-2");
    let addr = docker.start(&second, &image, &volume);
    let after = get_article(&addr, &id);
    assert_eq!(after["id"], id.as_str(), "{after}");
    let headline = |article: &Value| {
        article["headline"]
            .as_str()
            .map(str::as_bytes)
            .map(<[u8]>::to_vec)
    };
    assert_eq!(headline(&after), headline(&before));
    assert_eq!(after, before, "the article changed across containers");
    docker.stop_gracefully(&second);
}
