//! Connecting to a khabar server from the command line: the shared connection options (server,
//! TLS, token) and the one place channels and clients are made.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use tonic::{
    Request, Status,
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::health_client::HealthClient;

use crate::config::{UnreadableFile, read_file};
use crate::pb::khabar::v1::{
    article_service_client::ArticleServiceClient, feed_service_client::FeedServiceClient,
    ingest_service_client::IngestServiceClient,
};

/// Largest message the client accepts from the server (articles may hold 1 MiB bodies).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How to reach a server; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server to call: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(long, env = "KHABAR_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// PEM CA certificate(s) to trust for an https:// server, instead of the system's roots.
    #[arg(long, env = "KHABAR_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate, for servers that require mutual TLS (with --client-key).
    #[arg(long, env = "KHABAR_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, env = "KHABAR_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// Name the server certificate must carry, when it is not the host of --server.
    #[arg(long, env = "KHABAR_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,

    /// Bearer token sent with every call. Prefer --token-file or KHABAR_TOKEN over the command
    /// line, where other users can see it.
    #[arg(
        long,
        env = "KHABAR_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,

    /// File whose first line is the bearer token.
    #[arg(long, env = "KHABAR_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Give up connecting after this many milliseconds.
    #[arg(long, env = "KHABAR_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,
}

/// Why a client could not be set up or connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// --server is not a usable URL.
    #[error("--server {server:?} is not a valid URL: {reason}")]
    InvalidServer {
        /// The value given.
        server: String,
        /// Why.
        reason: String,
    },
    /// A file named by an option cannot be read.
    #[error(transparent)]
    Unreadable(#[from] UnreadableFile),
    /// The token cannot be sent as metadata.
    #[error("the bearer token may only hold printable ASCII characters")]
    InvalidToken,
    /// TLS options cannot be used.
    #[error("TLS set-up failed (--ca-cert, --client-cert, --client-key): {0}")]
    Tls(tonic::transport::Error),
    /// The server could not be reached.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// Adds `authorization: Bearer <token>` to every call when a token is configured.
#[derive(Debug, Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel carrying the configured credentials.
pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// A connection to a server, handing out clients of each service.
#[derive(Debug, Clone)]
pub struct Connection {
    channel: Channel,
    bearer: Bearer,
}

impl Connection {
    /// Client of `khabar.v1.IngestService`.
    pub fn ingest(&self) -> IngestServiceClient<AuthedChannel> {
        IngestServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Client of `khabar.v1.ArticleService`.
    pub fn articles(&self) -> ArticleServiceClient<AuthedChannel> {
        ArticleServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Client of `khabar.v1.FeedService`.
    pub fn feeds(&self) -> FeedServiceClient<AuthedChannel> {
        FeedServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Client of `grpc.health.v1.Health`.
    pub fn health(&self) -> HealthClient<AuthedChannel> {
        HealthClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

impl ClientArgs {
    fn bearer(&self) -> Result<Bearer, ClientError> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(path)) => {
                let bytes = read_file("--token-file", path)?;
                let text = String::from_utf8(bytes).map_err(|_| ClientError::InvalidToken)?;
                Some(text.lines().next().unwrap_or_default().trim().to_owned())
            }
            (None, None) => None,
        };
        token
            .filter(|token| !token.is_empty())
            .map(|token| {
                format!("Bearer {token}")
                    .parse::<AsciiMetadataValue>()
                    .map_err(|_| ClientError::InvalidToken)
            })
            .transpose()
            .map(Bearer)
    }

    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let invalid = |reason: String| ClientError::InvalidServer {
            server: self.server.clone(),
            reason,
        };
        let endpoint = Endpoint::from_shared(self.server.clone())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms));
        match endpoint.uri().scheme_str() {
            Some("http") => Ok(endpoint),
            Some("https") => {
                let mut tls = ClientTlsConfig::new();
                tls = match &self.ca_cert {
                    Some(path) => {
                        tls.ca_certificate(Certificate::from_pem(read_file("--ca-cert", path)?))
                    }
                    None => tls.with_native_roots(),
                };
                if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                    tls = tls.identity(Identity::from_pem(
                        read_file("--client-cert", cert)?,
                        read_file("--client-key", key)?,
                    ));
                }
                if let Some(name) = &self.tls_server_name {
                    tls = tls.domain_name(name.clone());
                }
                endpoint.tls_config(tls).map_err(ClientError::Tls)
            }
            _ => Err(invalid("the scheme must be http or https".to_owned())),
        }
    }

    /// Connects to the server with the configured TLS and token.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let bearer = self.bearer()?;
        let channel = self
            .endpoint()?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                server: self.server.clone(),
                source,
            })?;
        Ok(Connection { channel, bearer })
    }
}
