//! Bearer-token authentication and role-based authorization of gRPC calls.
//!
//! Tokens are configured as lines of `NAME ROLES TOKEN`, where ROLES is a comma-separated subset
//! of `ingest`, `read`, `admin` and TOKEN is `sha256:<hex>` (the SHA-256 of the token, so that the
//! configuration does not hold usable secrets) or the token itself. A call presents its token as
//! `authorization: Bearer <token>` metadata; the token is hashed and looked up, so the comparison
//! never touches the configured secret byte by byte.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use sha2::{Digest, Sha256};
use tonic::Status;
use tower::{Layer, Service};
use tracing::debug;

use crate::{
    error::Error,
    methods::{self, Access},
    metrics::Metrics,
};

/// Shortest plain-text token accepted, so that a configured secret cannot be guessed quickly.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Ingest articles.
    Ingest,
    /// Read articles and feeds, and manage one's durable consumers' progress.
    Read,
    /// Everything, including retracting articles and deleting consumers.
    Admin,
}

impl Role {
    /// The role's name in token configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Name given to the token in the configuration, for logs.
    pub name: Arc<str>,
    /// Roles granted.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Whether this principal may act in `role` (admin may do anything).
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r == role || *r == Role::Admin)
    }
}

/// Who is calling, as far as a service needs to know: put in the request's extensions by
/// [`AuthLayer`] for every call it lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Whether the caller may act as admin: its token grants the role, or tokens are not
    /// configured (then every caller may do anything).
    pub admin: bool,
}

impl Caller {
    /// The caller of `request`; a request that did not pass through [`AuthLayer`] is no admin.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .unwrap_or(Self { admin: false })
    }
}

/// A token configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{origin}, entry {entry}: {problem}")]
pub struct TokenConfigError {
    /// Where the entry came from (an option and file name).
    pub origin: String,
    /// 1-based position of the entry.
    pub entry: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// The configured tokens, by the SHA-256 of the token.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Principal>,
    plain_text: usize,
}

impl Tokens {
    /// Adds the entries of `text` (one per line, or separated by `;`; `#` starts a comment).
    /// `origin` names the source in error messages.
    pub fn add_entries(&mut self, text: &str, origin: &str) -> Result<(), TokenConfigError> {
        let entries = text
            .split(['\n', ';'])
            .map(|entry| entry.split('#').next().unwrap_or_default().trim())
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let fail = |problem: String| TokenConfigError {
                origin: origin.to_owned(),
                entry: index + 1,
                problem,
            };
            let fields: Vec<&str> = entry.split_whitespace().collect();
            let [name, roles, token] = fields.as_slice() else {
                return Err(fail(format!(
                    "expected NAME ROLES TOKEN, found {} field(s)",
                    fields.len()
                )));
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(fail(format!(
                    "name {name:?} may only hold ASCII letters, digits, '-', '_' and '.'"
                )));
            }
            let roles = parse_roles(roles).map_err(fail)?;
            let (hash, plain) = match token.strip_prefix("sha256:") {
                Some(hex) => (parse_sha256_hex(hex).map_err(fail)?, false),
                None => {
                    check_token_strength(token).map_err(fail)?;
                    (hash_token(token), true)
                }
            };
            let principal = Principal {
                name: Arc::from(*name),
                roles,
            };
            if let Some(other) = self.by_hash.insert(hash, principal) {
                return Err(fail(format!(
                    "the same token is configured twice (also for {:?})",
                    other.name
                )));
            }
            self.plain_text += usize::from(plain);
        }
        Ok(())
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// How many tokens were configured in plain text rather than hashed.
    pub fn plain_text_count(&self) -> usize {
        self.plain_text
    }

    /// The holder of `token`, if it is configured.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        self.by_hash.get(&hash_token(token))
    }
}

fn parse_roles(raw: &str) -> Result<Vec<Role>, String> {
    let mut roles = Vec::new();
    for name in raw.split(',') {
        let role = match name {
            "ingest" => Role::Ingest,
            "read" => Role::Read,
            "admin" => Role::Admin,
            other => {
                return Err(format!(
                    "unknown role {other:?}; roles are ingest, read and admin, separated by commas"
                ));
            }
        };
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

fn parse_sha256_hex(hex: &str) -> Result<[u8; 32], String> {
    let invalid = || format!("sha256:{hex} is not 64 hexadecimal digits");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
    }
    Ok(hash)
}

/// Rejects tokens too short or too plain to be secrets.
pub fn check_token_strength(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "a token must be at least {MIN_TOKEN_CHARS} characters long"
        ));
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '#' && c != ';')
    {
        return Err(
            "a token may only hold printable ASCII characters other than '#' and ';', without spaces"
                .to_owned(),
        );
    }
    Ok(())
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `sha256:<hex>` form of a token, for token configuration.
pub fn hashed_token_entry(token: &str) -> String {
    let hex: String = hash_token(token)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Who may call what.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    /// Configured tokens; when empty, every call is allowed.
    pub tokens: Tokens,
    /// Whether grpc.health.v1 needs a token (any role).
    pub protect_health: bool,
    /// Whether server reflection needs a token (any role).
    pub protect_reflection: bool,
}

/// What a call needs under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    AnyToken,
    Role(Role),
}

impl AuthPolicy {
    /// Whether calls are checked at all.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    fn need(&self, path: &str) -> Need {
        let discovery = |protected: bool| {
            if protected {
                Need::AnyToken
            } else {
                Need::Nothing
            }
        };
        match methods::find(path).map(|method| method.access) {
            Some(Access::Health) => discovery(self.protect_health),
            Some(Access::Reflection) => discovery(self.protect_reflection),
            Some(Access::Role(role)) => Need::Role(role),
            // Paths the server does not answer need the most, so that nothing slips through.
            None => Need::Role(Role::Admin),
        }
    }

    /// Checks a call to `path` carrying `authorization` metadata.
    pub fn check(&self, path: &str, authorization: Option<&[u8]>) -> Result<Caller, Error> {
        if !self.enabled() {
            return Ok(Caller { admin: true });
        }
        let need = self.need(path);
        if need == Need::Nothing {
            return Ok(Caller { admin: false });
        }
        let Some(header) = authorization else {
            return Err(Error::Unauthenticated(format!(
                "{path} needs a token: send metadata \"authorization: Bearer <token>\""
            )));
        };
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "malformed authorization metadata: expected \"Bearer <token>\"".to_owned(),
                )
            })?;
        let principal = self.tokens.principal(token).ok_or_else(|| {
            Error::Unauthenticated("the bearer token is not valid on this server".to_owned())
        })?;
        match need {
            Need::Role(role) if !principal.has(role) => {
                let granted: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
                Err(Error::PermissionDenied(format!(
                    "{path} needs role {role} (or admin); token {:?} has {}",
                    principal.name,
                    granted.join(", ")
                )))
            }
            _ => Ok(Caller {
                admin: principal.has(Role::Admin),
            }),
        }
    }
}

/// Tower layer that answers calls failing [`AuthPolicy::check`] with their status, before any
/// service sees them.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    policy: Arc<AuthPolicy>,
    metrics: Arc<Metrics>,
}

impl AuthLayer {
    /// Enforces `policy`, counting refusals in `metrics`.
    pub fn new(policy: Arc<AuthPolicy>, metrics: Arc<Metrics>) -> Self {
        Self { policy, metrics }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: Arc<AuthPolicy>,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.as_bytes());
        match self.policy.check(request.uri().path(), authorization) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(error) => {
                let status = Status::from(error);
                debug!(path = request.uri().path(), code = ?status.code(), "call refused");
                self.metrics.record_auth_failure(status.code());
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    const INGESTER: &str = "ingester-token-0123456789";
    const READER: &str = "reader-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";

    fn policy() -> AuthPolicy {
        let mut tokens = Tokens::default();
        let config = format!(
            "# name roles token\ningester ingest {}\nreader read {READER}\n\nops admin {ADMIN} # all",
            hashed_token_entry(INGESTER)
        );
        tokens.add_entries(&config, "--tokens-file t").unwrap();
        AuthPolicy {
            tokens,
            ..AuthPolicy::default()
        }
    }

    fn check(policy: &AuthPolicy, path: &str, token: Option<&str>) -> Result<(), Code> {
        let header = token.map(|t| format!("Bearer {t}"));
        policy
            .check(path, header.as_deref().map(str::as_bytes))
            .map(|_| ())
            .map_err(|e| Status::from(e).code())
    }

    #[test]
    fn roles_grant_their_methods_and_admin_grants_all() {
        let policy = policy();
        assert_eq!(policy.tokens.len(), 3);
        assert_eq!(policy.tokens.plain_text_count(), 2);
        let ingest = "/khabar.v1.IngestService/Ingest";
        let get = "/khabar.v1.ArticleService/GetArticle";
        let retract = "/khabar.v1.ArticleService/RetractArticle";
        let subscribe = "/khabar.v1.FeedService/Subscribe";
        let delete = "/khabar.v1.FeedService/DeleteConsumer";
        assert_eq!(check(&policy, ingest, Some(INGESTER)), Ok(()));
        assert_eq!(
            check(&policy, get, Some(INGESTER)),
            Err(Code::PermissionDenied)
        );
        assert_eq!(check(&policy, get, Some(READER)), Ok(()));
        assert_eq!(check(&policy, subscribe, Some(READER)), Ok(()));
        assert_eq!(
            check(&policy, ingest, Some(READER)),
            Err(Code::PermissionDenied)
        );
        assert_eq!(
            check(&policy, retract, Some(READER)),
            Err(Code::PermissionDenied)
        );
        assert_eq!(
            check(&policy, delete, Some(READER)),
            Err(Code::PermissionDenied)
        );
        for path in [ingest, get, retract, subscribe, delete, "/x.Unknown/Call"] {
            assert_eq!(check(&policy, path, Some(ADMIN)), Ok(()), "{path}");
        }
    }

    #[test]
    fn missing_unknown_or_malformed_tokens_are_unauthenticated() {
        let policy = policy();
        let path = "/khabar.v1.IngestService/Ingest";
        assert_eq!(check(&policy, path, None), Err(Code::Unauthenticated));
        assert_eq!(
            check(&policy, path, Some("not-a-configured-token-at-all")),
            Err(Code::Unauthenticated)
        );
        // The configured hash is not itself a token.
        let hashed = hashed_token_entry(INGESTER);
        assert_eq!(
            check(&policy, path, Some(&hashed)),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            policy
                .check(path, Some(format!("Basic {INGESTER}").as_bytes()))
                .map_err(|e| Status::from(e).code()),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            policy
                .check(path, Some(format!("bearer  {INGESTER} ").as_bytes()))
                .map_err(|e| Status::from(e).code()),
            Ok(Caller { admin: false })
        );
    }

    #[test]
    fn health_and_reflection_are_open_unless_protected() {
        let mut policy = policy();
        let health = "/grpc.health.v1.Health/Check";
        let reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
        assert_eq!(check(&policy, health, None), Ok(()));
        assert_eq!(check(&policy, reflection, None), Ok(()));
        policy.protect_health = true;
        policy.protect_reflection = true;
        assert_eq!(check(&policy, health, None), Err(Code::Unauthenticated));
        assert_eq!(check(&policy, reflection, None), Err(Code::Unauthenticated));
        assert_eq!(check(&policy, health, Some(INGESTER)), Ok(()));
        assert_eq!(check(&policy, reflection, Some(READER)), Ok(()));
    }

    #[test]
    fn without_tokens_everything_is_open() {
        let policy = AuthPolicy::default();
        assert!(!policy.enabled());
        assert_eq!(
            check(&policy, "/khabar.v1.ArticleService/RetractArticle", None),
            Ok(())
        );
    }

    #[test]
    fn bad_entries_are_reported_with_their_position() {
        let cases = [
            ("reader read", "expected NAME ROLES TOKEN"),
            (
                "reader write some-long-token-value",
                "unknown role \"write\"",
            ),
            ("reader read short", "at least 16 characters"),
            ("reader read sha256:abcd", "64 hexadecimal digits"),
            ("bad/name read some-long-token-value", "may only hold"),
            (
                "a read some-long-token-value; b admin some-long-token-value",
                "configured twice",
            ),
        ];
        for (config, expected) in cases {
            let err = Tokens::default()
                .add_entries(config, "KHABAR_TOKENS")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{config:?}: {err}");
            assert!(err.starts_with("KHABAR_TOKENS, entry "), "{err}");
        }
    }

    #[test]
    fn hashed_entries_match_sha256_of_the_token() {
        // SHA-256("abc"), a published test vector.
        assert_eq!(
            hashed_token_entry("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
