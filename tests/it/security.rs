//! TLS, mutual TLS and bearer tokens with roles, end to end over real connections, with tonic
//! clients and with grpcurl.

use std::{process::Command, sync::Arc};

use crate::common::{
    TestServer, WAIT, fixture, fixture_text, grpcurl_binary, run_bounded, seed_request,
};
use khabar::{
    auth::{AuthPolicy, Tokens, hashed_token_entry},
    config::TlsSettings,
    pb::khabar::v1::{
        self as pb, article_service_client::ArticleServiceClient,
        feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    },
};
use tonic::{
    Code, Request,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const INGESTER: &str = "ingester-secret-0123456789";
const READER: &str = "reader-secret-0123456789";
const ADMIN: &str = "admin-secret-0123456789";

fn tls_file(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("tls/{name}"))).expect("TLS fixture is readable")
}

fn server_tls(mutual: bool) -> TlsSettings {
    TlsSettings {
        cert_pem: tls_file("server.pem"),
        key_pem: tls_file("server.key"),
        client_ca_pem: mutual.then(|| tls_file("ca.pem")),
    }
}

/// Trusts the test CA, presenting `client` ("client" or "other-client") when given.
fn client_tls(client: Option<&str>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(tls_file("ca.pem")))
        .domain_name("localhost");
    match client {
        Some(name) => tls.identity(Identity::from_pem(
            tls_file(&format!("{name}.pem")),
            tls_file(&format!("{name}.key")),
        )),
        None => tls,
    }
}

fn token_policy() -> AuthPolicy {
    let mut tokens = Tokens::default();
    let entries = format!(
        "ingester ingest {}\nreader read {}\nops admin {}\n",
        hashed_token_entry(INGESTER),
        hashed_token_entry(READER),
        hashed_token_entry(ADMIN),
    );
    tokens
        .add_entries(&entries, "test tokens")
        .expect("valid tokens");
    AuthPolicy {
        tokens,
        ..AuthPolicy::default()
    }
}

async fn start(
    tls: Option<TlsSettings>,
    client: Option<ClientTlsConfig>,
    auth: AuthPolicy,
) -> TestServer {
    TestServer::start_with(tempfile::tempdir().expect("temp dir"), client, |config| {
        config.tls = tls;
        config.auth = Arc::new(auth);
    })
    .await
}

/// Sends `authorization: Bearer <token>` on every call, when there is a token.
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::internal("token is not valid metadata"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

struct Clients {
    ingest: IngestServiceClient<InterceptedService<Channel, Bearer>>,
    articles: ArticleServiceClient<InterceptedService<Channel, Bearer>>,
    feeds: FeedServiceClient<InterceptedService<Channel, Bearer>>,
}

async fn clients(server: &TestServer, token: Option<&str>) -> Clients {
    let channel = server.channel().await;
    let bearer = Bearer(token.map(str::to_owned));
    Clients {
        ingest: IngestServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        articles: ArticleServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        feeds: FeedServiceClient::with_interceptor(channel, bearer),
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Result<T, (Code, String)> {
    result.map_err(|s| (s.code(), s.message().to_owned()))
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_plaintext() {
    let server = start(
        Some(server_tls(false)),
        Some(client_tls(None)),
        AuthPolicy::default(),
    )
    .await;
    let mut c = clients(&server, None).await;
    let receipt = c
        .ingest
        .ingest(seed_request())
        .await
        .expect("ingest over TLS")
        .into_inner();
    assert_eq!(receipt.outcome(), pb::IngestOutcome::Created);
    let article = c
        .articles
        .get_article(pb::GetArticleRequest {
            id: receipt.id.clone(),
            ..Default::default()
        })
        .await
        .expect("get over TLS")
        .into_inner();
    assert_eq!(
        article.headline,
        seed_request().article.expect("article").headline
    );

    // A plaintext HTTP/2 client gets no gRPC answer from a TLS port.
    let plaintext = Channel::from_shared(format!("http://{}", server.addr))
        .expect("url")
        .connect_timeout(WAIT)
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let answer = tokio::time::timeout(
            WAIT,
            HealthClient::new(channel).check(HealthCheckRequest::default()),
        )
        .await
        .expect("plaintext call ends in time");
        assert!(
            answer.is_err(),
            "plaintext call succeeded on a TLS port: {answer:?}"
        );
    }

    // A client that does not trust the server's CA refuses the connection.
    let untrusting = Channel::from_shared(format!("https://{}", server.addr))
        .expect("url")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(tls_file("other-ca.pem")))
                .domain_name("localhost"),
        )
        .expect("client TLS config")
        .connect_timeout(WAIT)
        .connect()
        .await;
    assert!(
        untrusting.is_err(),
        "a client trusting another CA connected"
    );
    server.stop().await;
}

/// Connects with `tls` and makes one health call; Ok only if the server answered.
async fn health_over(server: &TestServer, tls: ClientTlsConfig) -> Result<(), String> {
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(WAIT)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::time::timeout(
        WAIT,
        HealthClient::new(channel).check(HealthCheckRequest::default()),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map(|_| ())
    .map_err(|e| format!("call: {e}"))
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_configured_ca() {
    let server = start(
        Some(server_tls(true)),
        Some(client_tls(Some("client"))),
        AuthPolicy::default(),
    )
    .await;
    let mut c = clients(&server, None).await;
    let receipt = c
        .ingest
        .ingest(seed_request())
        .await
        .expect("ingest with a client certificate")
        .into_inner();
    assert_eq!(receipt.outcome(), pb::IngestOutcome::Created);

    assert_eq!(
        health_over(&server, client_tls(Some("client"))).await,
        Ok(())
    );
    let without = health_over(&server, client_tls(None)).await;
    assert!(without.is_err(), "no client certificate was accepted");
    let stranger = health_over(&server, client_tls(Some("other-client"))).await;
    assert!(
        stranger.is_err(),
        "a certificate from another CA was accepted"
    );
    server.stop().await;
}

#[tokio::test]
async fn each_role_reaches_its_methods_only() {
    let server = start(None, None, token_policy()).await;

    // ingest: may ingest, may not read or retract.
    let mut ingester = clients(&server, Some(INGESTER)).await;
    let id = ingester
        .ingest
        .ingest(seed_request())
        .await
        .expect("ingester ingests")
        .into_inner()
        .id;
    let get = || pb::GetArticleRequest {
        id: id.clone(),
        ..Default::default()
    };
    let (denied, message) = code(ingester.articles.get_article(get()).await).unwrap_err();
    assert_eq!(denied, Code::PermissionDenied, "{message}");
    assert!(
        message.contains("needs role read") && message.contains("\"ingester\""),
        "{message}"
    );

    // read: may get, list and subscribe; may not ingest, retract or delete consumers.
    let mut reader = clients(&server, Some(READER)).await;
    let article = reader
        .articles
        .get_article(get())
        .await
        .expect("reader gets")
        .into_inner();
    assert_eq!(article.id, id);
    let listed = reader
        .articles
        .list_articles(pb::ListArticlesRequest::default())
        .await
        .expect("reader lists")
        .into_inner();
    assert_eq!(listed.articles.len(), 1);
    let mut feed = reader
        .feeds
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::FromBeginning(true)),
            ..pb::SubscribeRequest::default()
        })
        .await
        .expect("reader subscribes")
        .into_inner();
    let event = tokio::time::timeout(WAIT, feed.message())
        .await
        .expect("event in time")
        .expect("stream healthy")
        .expect("an event");
    assert_eq!(event.cursor, 1);
    drop(feed);
    assert_eq!(
        code(reader.ingest.ingest(seed_request()).await)
            .unwrap_err()
            .0,
        Code::PermissionDenied
    );
    let retract = || pb::RetractArticleRequest {
        id: id.clone(),
        reason: "test".into(),
    };
    assert_eq!(
        code(reader.articles.retract_article(retract()).await)
            .unwrap_err()
            .0,
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            reader
                .feeds
                .delete_consumer(pb::DeleteConsumerRequest {
                    name: "nobody".into()
                })
                .await
        )
        .unwrap_err()
        .0,
        Code::PermissionDenied
    );
    // A streaming ingest is refused as a whole, before any item is read.
    let refused = reader
        .ingest
        .ingest_stream(tokio_stream::iter(vec![seed_request()]))
        .await;
    assert_eq!(code(refused).unwrap_err().0, Code::PermissionDenied);

    // admin: everything, including retraction.
    let mut admin = clients(&server, Some(ADMIN)).await;
    let retracted = admin
        .articles
        .retract_article(retract())
        .await
        .expect("admin retracts")
        .into_inner();
    assert_eq!(retracted.status(), pb::ArticleStatus::Canceled);
    admin
        .ingest
        .ingest(crate::common::seed_variant(1))
        .await
        .expect("admin ingests");
    admin
        .articles
        .get_article(get())
        .await
        .expect("admin reads");
    server.stop().await;
}

// grpcurl blocks this thread while the in-process server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_are_unauthenticated_and_discovery_stays_open() {
    let server = start(None, None, token_policy()).await;
    for token in [None, Some("not-a-configured-token-value")] {
        let mut c = clients(&server, token).await;
        let (status, message) = code(c.ingest.ingest(seed_request()).await).unwrap_err();
        assert_eq!(status, Code::Unauthenticated, "{token:?}: {message}");
        let (status, _) = code(
            c.articles
                .list_articles(pb::ListArticlesRequest::default())
                .await,
        )
        .unwrap_err();
        assert_eq!(status, Code::Unauthenticated);
    }
    let mut c = clients(&server, None).await;
    let (_, message) = code(c.ingest.ingest(seed_request()).await).unwrap_err();
    assert!(message.contains("authorization: Bearer"), "{message}");

    // Health and reflection need no token by default.
    let health = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "{health:?}");
    let grpcurl = grpcurl_binary();
    let addr = server.addr.to_string();
    let out = Command::new(&grpcurl)
        .args(["-plaintext", "-max-time", "20", &addr, "list"])
        .output()
        .expect("run grpcurl");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("khabar.v1.IngestService"));

    // Refusals are counted.
    let metrics = server.scrape_metrics().await;
    assert!(
        metrics.contains("khabar_auth_failures_total{code=\"unauthenticated\"} 5"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_and_reflection_can_require_a_token() {
    // The in-process harness waits for health without a token, so this runs the real binary.
    let data_dir = tempfile::tempdir().expect("temp dir");
    let tokens_file = data_dir.path().join("tokens");
    std::fs::write(
        &tokens_file,
        format!("reader read {}\n", hashed_token_entry(READER)),
    )
    .expect("write tokens");
    let tokens_file = tokens_file.to_string_lossy().into_owned();
    let mut server = crate::common::ChildServer::start_with(
        &data_dir.path().join("db"),
        &[
            "--tokens-file",
            &tokens_file,
            "--auth-health",
            "--auth-reflection",
        ],
    );
    let url = format!("http://{}", server.addr);
    let khabar = env!("CARGO_BIN_EXE_khabar");
    let out = Command::new(khabar)
        .args(["health", "--server", &url])
        .output()
        .expect("run khabar health");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a token"),
        "{out:?}"
    );

    let grpcurl = grpcurl_binary();
    let addr = server.addr.to_string();
    let out = Command::new(&grpcurl)
        .args(["-plaintext", "-max-time", "20", &addr, "list"])
        .output()
        .expect("run grpcurl");
    assert!(!out.status.success(), "{out:?}");
    let bearer = format!("authorization: Bearer {READER}");
    let out = Command::new(&grpcurl)
        .args([
            "-plaintext",
            "-max-time",
            "20",
            "-H",
            &bearer,
            &addr,
            "list",
        ])
        .output()
        .expect("run grpcurl");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(&grpcurl)
        .args([
            "-plaintext",
            "-max-time",
            "20",
            "-H",
            &bearer,
            &addr,
            "grpc.health.v1.Health/Check",
        ])
        .output()
        .expect("run grpcurl");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SERVING"));
    server.terminate();
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

// grpcurl blocks this thread while the in-process server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_ingests_over_tls_with_a_token() {
    let server = start(
        Some(server_tls(false)),
        Some(client_tls(None)),
        token_policy(),
    )
    .await;
    let grpcurl = grpcurl_binary();
    let addr = server.addr.to_string();
    let ca = fixture("tls/ca.pem").to_string_lossy().into_owned();
    let run = |token: &str, method: &str, body: &str| {
        run_bounded(
            Command::new(&grpcurl)
                .args([
                    "-cacert",
                    &ca,
                    "-max-time",
                    "20",
                    "-format-error",
                    "-d",
                    "@",
                ])
                .args([
                    "-H",
                    &format!("authorization: Bearer {token}"),
                    &addr,
                    method,
                ]),
            Some(body),
            // Beyond grpcurl's own -max-time.
            2 * WAIT,
        )
        .expect("grpcurl finishes")
    };
    let seed = fixture_text("seed-article.ingest.json");
    let out = run(INGESTER, "khabar.v1.IngestService/Ingest", &seed);
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(answer["outcome"], "INGEST_OUTCOME_CREATED");

    let out = run(READER, "khabar.v1.IngestService/Ingest", &seed);
    assert!(!out.status.success(), "{out:?}");
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(error["code"], 7, "PERMISSION_DENIED: {error}");
    server.stop().await;
}
