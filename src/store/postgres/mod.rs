//! [`ArticleStore`] on PostgreSQL, for several stateless khabar servers sharing one database.
//!
//! # Tables (schema `khabar`, see `migrations/`)
//! - `log_head`: one row, the newest cursor and the newest event's time. Every write
//!   transaction locks it first, which orders all writers of all servers.
//! - `events`: the log; each event holds the article's `khabar.v1.Article` bytes (sent to feeds
//!   as they are) and the header feeds filter on.
//! - `articles`: each article's head (natural key (source id, canonical address) unique,
//!   publication time indexed for listings, story id indexed for stories), naming the event
//!   that holds its current content, with the story fingerprint of that version. An article
//!   never released names no event: only its natural key is there, for its next version.
//! - `held`: at most one version per article held back (an embargo in the future, or withheld
//!   by the sender), with its embargo time. Every write group first releases the held versions
//!   whose time has come, under the head lock; each server runs a timer (see `release`) that
//!   asks its writer for such a group when the earliest embargo time in the table has passed.
//! - `consumers`: durable consumers and their acknowledged cursors.
//!
//! # Writes, reads, feeds
//! Writes go through one writer task per server (see `writer`): groups of commands, one
//! transaction each. Reads use a connection pool. [`ArticleStore::durable_head`] is fed by the
//! writer after each commit, by `LISTEN khabar_log` (every write transaction notifies the new
//! head, delivered only after it commits) and by a poll of `log_head` every
//! [`PostgresConfig::poll_interval`] and after every reconnection, so a notification lost in a
//! failover only delays a feed. Events are read by cursor up to the head, in order and with no
//! gaps: a head is only ever seen once every event up to it has committed.

#[cfg(test)]
mod embargo_tests;
mod errors;
mod follower;
mod release;
mod rows;
mod schema;
mod writer;

use std::{str::FromStr, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{NoTls, types::ToSql};
use tracing::{info, warn};

pub use schema::SCHEMA_VERSION;

use self::errors::{pool_error, store_error};
use super::{
    ArticleStore, Consumer, IngestReceipt, ListOrder, ListQuery, ListedPage, LogEvent,
    PendingWrite, Result, StoreError,
    list::Position,
    writer::{Command, Prepared},
};
use crate::domain::embargo::{Clock, SystemClock};
use crate::{
    domain::{Article, ArticleId, ArticleStatus, ContentHash, Timestamp, ValidArticle},
    stories::StoryConfig,
};

/// Writes waiting for the writer task at most; further callers wait for room.
const COMMAND_QUEUE: usize = 1_024;
/// Bytes of articles waiting for the writer at most, as in the embedded store; further callers
/// wait for room.
const QUEUED_BYTES: usize = 64 << 20;

/// Where and how to reach PostgreSQL.
#[derive(Clone)]
pub struct PostgresConfig {
    /// Connection settings, parsed from a `postgres://` URL or a key=value string.
    pub connection: tokio_postgres::Config,
    /// Connections for reads (the writer and the notification listener have one each).
    pub pool_size: usize,
    /// How often the head is read when no notification arrives.
    pub poll_interval: Duration,
    /// How stories are linked; `None` turns story linking off.
    pub stories: Option<StoryConfig>,
    /// When embargoes end; a manual clock in tests.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio_postgres::Config's Debug redacts the password.
        f.debug_struct("PostgresConfig")
            .field("connection", &self.connection)
            .field("pool_size", &self.pool_size)
            .field("poll_interval", &self.poll_interval)
            .field("stories", &self.stories)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Options every khabar connection sets: commits wait until durable (on a standby too, with
/// synchronous replication), and no server-side timeout may cancel a statement, least of all a
/// COMMIT waiting for a standby (PostgreSQL would then report it committed although no standby
/// has it).
const SESSION_OPTIONS: &str = "-c synchronous_commit=on -c statement_timeout=0 \
     -c idle_in_transaction_session_timeout=0 -c lock_timeout=0";

impl PostgresConfig {
    /// Parses a connection URL (`postgres://user:password@host:port,host2:port2/db?...`) or a
    /// key=value string, as libpq takes them, with the defaults of `khabar serve`.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let mut connection = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
        if connection.get_hosts().is_empty() {
            return Err("the URL names no host".into());
        }
        if connection.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(
                "sslmode=require: this khabar connects to PostgreSQL without TLS; use a private \
                 network or a TLS-terminating proxy on loopback"
                    .into(),
            );
        }
        let options = match connection.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {SESSION_OPTIONS}"),
            _ => SESSION_OPTIONS.to_owned(),
        };
        connection.options(options);
        if connection.get_application_name().is_none() {
            connection.application_name("khabar");
        }
        if connection.get_connect_timeout().is_none() {
            connection.connect_timeout(Duration::from_secs(5));
        }
        // A primary that vanishes without closing its connections (a network partition, a
        // powered-off host) is noticed within about half a minute instead of two hours.
        if connection.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            connection.keepalives_idle(Duration::from_secs(10));
            connection.keepalives_interval(Duration::from_secs(5));
            connection.keepalives_retries(3);
        }
        Ok(Self {
            connection,
            pool_size: 16,
            poll_interval: Duration::from_millis(500),
            stories: Some(StoryConfig::default()),
            clock: Arc::new(SystemClock),
        })
    }
}

/// Opens connections of its own (the writer's, the listener's) with the store's settings.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
}

impl Connector {
    /// Connects as `role` (shown in `pg_stat_activity.application_name` after the server's
    /// application name: `khabar-writer`, `khabar-listener`).
    async fn connect(
        &self,
        role: &str,
    ) -> std::result::Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        tokio_postgres::Error,
    > {
        let mut config = self.config.clone();
        let name = format!(
            "{}-{role}",
            config.get_application_name().unwrap_or("khabar")
        );
        config.application_name(name);
        config.connect(NoTls).await
    }
}

/// An article's head: everything but its content, and the event that holds the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    id: ArticleId,
    source_id: String,
    uri: String,
    language: String,
    tags: Vec<String>,
    published_at: Timestamp,
    version: u64,
    status: ArticleStatus,
    content_hash: ContentHash,
    view_count: u64,
    ingested_at: Timestamp,
    first_ingested_at: Timestamp,
    cursor: u64,
    /// The natural key's address; `None` for an article stored before canonical addresses
    /// whose canonical address an older one has (it is reachable by id only).
    canonical_uri: Option<String>,
    /// The story it is filed under (its own id when it has none).
    story_id: ArticleId,
    /// The story fingerprint of the current version, when one was taken.
    fingerprint: Option<Vec<u8>>,
    /// 10 - urgency, 0 when unset (see `list::urgency_rank`).
    urgency_rank: i16,
    /// Genre codes.
    genres: Vec<String>,
    /// When the article leaves listings.
    expires: Option<Timestamp>,
}

impl Head {
    fn of(article: &Article) -> Self {
        let content = &article.content;
        Self {
            id: article.id,
            source_id: content.source.id.clone(),
            uri: content.uri.clone(),
            language: content.language.clone(),
            tags: content.tags.clone(),
            published_at: content.published_at,
            version: article.version,
            status: article.status,
            content_hash: article.content_hash,
            view_count: article.view_count,
            ingested_at: article.ingested_at,
            first_ingested_at: article.first_ingested_at,
            cursor: article.cursor,
            canonical_uri: Some(article.canonical_uri.clone()),
            story_id: article.story.map_or(article.id, |s| s.story_id),
            fingerprint: None,
            urgency_rank: i16::from(crate::store::list::urgency_rank(content.editorial.urgency)),
            genres: content.editorial.genre_codes(),
            expires: content.editorial.expires,
        }
    }
}

/// Articles, the log and consumers in PostgreSQL. A cheap-to-clone handle; see
/// [`PostgresStore::close`].
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    commands: Option<mpsc::Sender<Command>>,
    durable_head: watch::Receiver<u64>,
    head_sender: Arc<watch::Sender<u64>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    stop_follower: Option<oneshot::Sender<()>>,
    stop_timer: Option<oneshot::Sender<()>>,
    /// The byte budget of queued articles, in KiB.
    queued_bytes: Arc<tokio::sync::Semaphore>,
    /// Whether stories are linked (articles are fingerprinted before they are queued).
    stories: bool,
    /// The store's clock, which decides what a listing counts as expired.
    clock: Arc<dyn Clock>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer answers what is queued and stops; the follower stops at once.
        self.commands = None;
        self.stop_follower = None;
        self.stop_timer = None;
    }
}

impl PostgresStore {
    /// Connects, migrates the schema (or refuses a newer one) and starts the write path and
    /// the head follower.
    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        let connector = Connector {
            config: config.connection.clone(),
        };
        let (mut client, connection) = connector.connect("migrations").await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL ({}): check --database-url and that the server \
                 accepts connections",
                errors::store_error(&e)
            ))
        })?;
        let driver = tokio::spawn(connection);
        schema::migrate(&mut client).await?;
        let head: i64 = client
            .query_one("SELECT head FROM khabar.log_head", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| store_error(&e))?;
        drop(client);
        // The driver ends once the client is dropped.
        let _ = driver.await;

        let manager = Manager::from_config(
            config.connection.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))?;

        let head = head as u64;
        let (head_tx, head_rx) = watch::channel(head);
        let head_tx = Arc::new(head_tx);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (releases_tx, releases_rx) = mpsc::channel(1);
        let embargo_stored = Arc::new(tokio::sync::Notify::new());
        let writer = tokio::spawn(writer::run(
            connector.clone(),
            commands_rx,
            head_tx.clone(),
            config.stories.map(writer::Stories::new),
            writer::Embargoes {
                clock: config.clock.clone(),
                releases: releases_rx,
                stored: embargo_stored.clone(),
            },
        ));
        // Embargoes that passed while no server ran are released before the store is used;
        // a failure here is retried by the timer.
        let mut released = 0;
        loop {
            match release::release_now(&releases_tx).await {
                Some(Ok(0)) | None => break,
                Some(Ok(n)) => released += n,
                Some(Err(e)) => {
                    warn!(error = %e, "cannot release the held versions due at start");
                    break;
                }
            }
        }
        let (stop_timer, timer_stopping) = oneshot::channel();
        tokio::spawn(release::run(
            pool.clone(),
            config.clock.clone(),
            releases_tx,
            embargo_stored,
            timer_stopping,
        ));
        let (stop_follower, follower_stopping) = oneshot::channel();
        tokio::spawn(follower::run(
            connector,
            head_tx.clone(),
            config.poll_interval,
            follower_stopping,
        ));
        info!(
            hosts = config.connection.get_hosts().len(),
            schema_version = SCHEMA_VERSION,
            head,
            released_at_start = released,
            "PostgreSQL store opened"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                commands: Some(commands_tx),
                durable_head: head_rx,
                head_sender: head_tx,
                writer: Some(writer),
                stop_follower: Some(stop_follower),
                stop_timer: Some(stop_timer),
                queued_bytes: Arc::new(tokio::sync::Semaphore::new(QUEUED_BYTES / 1024)),
                stories: config.stories.is_some(),
                clock: config.clock.clone(),
            }),
        })
    }

    /// Stops taking writes and waits (up to `limit`) until the writes already queued are
    /// answered. Other handles that are still alive keep the write path open.
    pub async fn close(self, limit: Duration) {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        inner.commands = None;
        inner.stop_follower = None;
        inner.stop_timer = None;
        if let Some(writer) = inner.writer.take() {
            let _ = tokio::time::timeout(limit, writer).await;
        }
        inner.pool.close();
    }

    /// Handles to this store that are alive, this one included.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    async fn enqueue<T: Send + 'static>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<PendingWrite<T>> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the store is shutting down".into());
        let commands = self.inner.commands.as_ref().ok_or_else(closed)?;
        commands.send(command(reply)).await.map_err(|_| closed())?;
        Ok(Box::pin(async move { answer.await.map_err(|_| closed())? }))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.inner.pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| store_error(&e))?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| store_error(&e))
    }

    fn advance_head(&self, head: u64) {
        self.inner.head_sender.send_if_modified(|current| {
            let advanced = head > *current;
            *current = (*current).max(head);
            advanced
        });
    }
}

const GET: &str = "SELECT a.view_count, a.cursor, e.article FROM khabar.articles a \
     JOIN khabar.events e ON e.cursor = a.cursor WHERE a.id = $1";
/// An article's held version if it has one, else its released head.
const GET_INCLUDING_HELD: &str = "SELECT COALESCE(h.view_count, a.view_count), \
     COALESCE(a.cursor, 0), COALESCE(h.article, e.article) FROM khabar.articles a \
     LEFT JOIN khabar.events e ON e.cursor = a.cursor \
     LEFT JOIN khabar.held h ON h.article_id = a.id \
     WHERE a.id = $1 AND (e.cursor IS NOT NULL OR h.article_id IS NOT NULL)";
/// A listing: `$order` orders it, `$position` is where the previous page stopped. With $19 (the
/// view including held versions) an article is listed as its held version if it has one, and
/// one never released is listed too.
macro_rules! list_sql {
    ($position:literal, $order:literal) => {
        concat!(
            "SELECT a.id, a.published_s, a.published_ns, COALESCE(h.view_count, a.view_count), \
             COALESCE(a.cursor, 0), COALESCE(h.article, e.article), a.urgency_rank \
             FROM khabar.articles a LEFT JOIN khabar.events e ON e.cursor = a.cursor \
             LEFT JOIN khabar.held h ON $19 AND h.article_id = a.id \
             WHERE (e.cursor IS NOT NULL OR h.article_id IS NOT NULL) \
             AND ($1 OR a.status <> 3) \
             AND (cardinality($2::text[]) = 0 OR a.source_id = ANY($2)) \
             AND (cardinality($3::text[]) = 0 OR EXISTS (SELECT 1 FROM unnest($3::text[]) AS \
                  r(range) WHERE lower(a.language) = r.range \
                  OR starts_with(lower(a.language), r.range || '-'))) \
             AND (cardinality($4::text[]) = 0 OR a.tags && $4) \
             AND (a.published_s, a.published_ns) >= ($5, $6) \
             AND (a.published_s, a.published_ns) < ($12, $13) \
             AND (cardinality($11::bytea[]) = 0 OR a.story_id = ANY($11)) \
             AND ($14::smallint = 0 OR a.urgency_rank >= 10 - $14) \
             AND (cardinality($15::text[]) = 0 OR a.genres && $15) \
             AND ($16 OR a.expires_s IS NULL OR (a.expires_s, a.expires_ns) > ($17, $18)) \
             AND ",
            $position,
            " ORDER BY ",
            $order,
            " LIMIT $10"
        )
    };
}
const LIST: &str = list_sql!(
    "(a.published_s, a.published_ns, a.id) < ($7, $8, $9)",
    "a.published_s DESC, a.published_ns DESC, a.id DESC"
);
const LIST_BY_URGENCY: &str = list_sql!(
    "(a.urgency_rank, a.published_s, a.published_ns, a.id) < ($20, $7, $8, $9)",
    "a.urgency_rank DESC, a.published_s DESC, a.published_ns DESC, a.id DESC"
);
const STORY: &str = "SELECT a.view_count, a.cursor, e.article FROM khabar.articles a \
     JOIN khabar.events e ON e.cursor = a.cursor WHERE a.story_id = $1 AND a.status <> 3 \
     ORDER BY a.published_s, a.published_ns, a.id";
const READ_LOG: &str = "SELECT cursor, kind, recorded_s, recorded_ns, article_id, version, \
     source_id, language, tags, article, starts_story FROM khabar.events \
     WHERE cursor > $1 AND cursor <= $2 ORDER BY cursor LIMIT $3";
const FIRST_AT: &str = "SELECT cursor FROM khabar.events \
     WHERE (recorded_s, recorded_ns) >= ($1, $2) \
     ORDER BY recorded_s, recorded_ns, cursor LIMIT 1";
const HEAD: &str = "SELECT head FROM khabar.log_head";
const CONSUMER: &str = "SELECT name, acked, created_s, created_ns, acked_s, acked_ns \
     FROM khabar.consumers WHERE name = $1";
const ALL_CONSUMERS: &str = "SELECT name, acked, created_s, created_ns, acked_s, acked_ns \
     FROM khabar.consumers ORDER BY name COLLATE \"C\"";
const SIZE: &str = "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'khabar' AND c.relkind = 'r'";

impl ArticleStore for PostgresStore {
    async fn enqueue_ingest(&self, article: ValidArticle) -> Result<PendingWrite<IngestReceipt>> {
        let queued = crate::store::writer::reserve_queue_share(
            &self.inner.queued_bytes,
            QUEUED_BYTES / 1024,
            &article,
        )
        .await?;
        // Fingerprinted here, in the caller's task, rather than in the one writer task.
        let prepared = Box::new(Prepared::of(&article, self.inner.stories));
        self.enqueue(|reply| Command::Ingest {
            article: Box::new(article),
            prepared,
            reply,
            queued,
        })
        .await
    }

    async fn retract(&self, id: ArticleId, reason: String) -> Result<Article> {
        self.enqueue(|reply| Command::Retract { id, reason, reply })
            .await?
            .await
    }

    async fn get(&self, id: ArticleId, view: crate::store::View) -> Result<Article> {
        let sql = match view {
            crate::store::View::Released => GET,
            crate::store::View::IncludingHeld => GET_INCLUDING_HELD,
        };
        let rows = self.query(sql, &[&id.to_bytes().to_vec()]).await?;
        let row = rows.first().ok_or(StoreError::NotFound(id))?;
        let view_count = rows::u64_at(row, 0, "article")?;
        let cursor = rows::u64_at(row, 1, "article")?;
        let bytes: Vec<u8> = rows::get(row, 2, "article")?;
        let mut article = rows::decode_article(cursor, bytes.into())?;
        article.view_count = view_count;
        Ok(article)
    }

    async fn list(&self, query: ListQuery) -> Result<ListedPage> {
        let fingerprint = query.fingerprint();
        let lower = query.published_after.unwrap_or(Timestamp::MIN);
        let (before_s, before_ns) = query
            .published_before
            .map_or((i64::MAX, 0), rows::time_columns);
        // Exclusive upper bound on the listing's position: where the previous page stopped,
        // else above any row (an empty id sorts before every id).
        let (rank, position_s, position_ns, position_id): (i16, i64, i32, Vec<u8>) =
            match query.token_position(fingerprint)? {
                Some(p) => {
                    let (s, ns) = rows::time_columns(p.published_at);
                    (i16::from(p.rank), s, ns, p.id.to_bytes().to_vec())
                }
                None => (10, i64::MAX, 0, Vec::new()),
            };
        let (lower_s, lower_ns) = rows::time_columns(lower);
        let ranges: Vec<String> = query
            .filter
            .languages
            .iter()
            .map(|range| range.to_ascii_lowercase())
            .collect();
        let limit = i64::try_from(query.page_size.saturating_add(1)).unwrap_or(i64::MAX);
        let story_ids: Vec<Vec<u8>> = query
            .story_ids
            .iter()
            .map(|id| id.to_bytes().to_vec())
            .collect();
        let including_held = query.view == crate::store::View::IncludingHeld;
        let max_urgency = query.filter.max_urgency.map_or(0, |u| i16::from(u.get()));
        let (now_s, now_ns) = rows::time_columns(self.inner.clock.now());
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &query.include_retracted,
            &query.filter.source_ids,
            &ranges,
            &query.filter.tags,
            &lower_s,
            &lower_ns,
            &position_s,
            &position_ns,
            &position_id,
            &limit,
            &story_ids,
            &before_s,
            &before_ns,
            &max_urgency,
            &query.filter.genres,
            &query.include_expired,
            &now_s,
            &now_ns,
            &including_held,
        ];
        let sql = match query.order {
            ListOrder::Newest => LIST,
            ListOrder::Urgency => {
                params.push(&rank);
                LIST_BY_URGENCY
            }
        };
        let rows = self.query(sql, &params).await?;
        let mut articles = Vec::new();
        let mut page_bytes = 0;
        let mut last = None;
        for row in &rows {
            if articles.len() >= query.page_size || page_bytes >= query.max_page_bytes {
                break;
            }
            let what = "listed article";
            let id = rows::id_at(row, 0, what)?;
            let published_at = rows::time_at(row, 1, what)?;
            let cursor = rows::u64_at(row, 4, what)?;
            let bytes: Vec<u8> = rows::get(row, 5, what)?;
            let rank: i16 = rows::get(row, 6, what)?;
            let mut article = rows::decode_article(cursor, bytes.into())?;
            article.view_count = rows::u64_at(row, 3, what)?;
            page_bytes += article.approximate_size();
            articles.push(article);
            last = Some(Position {
                rank: match query.order {
                    ListOrder::Newest => 0,
                    ListOrder::Urgency => u8::try_from(rank).unwrap_or(0),
                },
                published_at,
                id,
            });
        }
        let more = rows.len() > articles.len();
        Ok(ListedPage {
            articles,
            next_page_token: last
                .filter(|_| more)
                .map(|p| query.token_after(p, fingerprint)),
        })
    }

    async fn story(&self, story_id: ArticleId) -> Result<Vec<Article>> {
        let rows = self.query(STORY, &[&story_id.to_bytes().to_vec()]).await?;
        rows.iter()
            .map(|row| {
                let what = "story article";
                let cursor = rows::u64_at(row, 1, what)?;
                let bytes: Vec<u8> = rows::get(row, 2, what)?;
                let mut article = rows::decode_article(cursor, bytes.into())?;
                article.view_count = rows::u64_at(row, 0, what)?;
                Ok(article)
            })
            .collect()
    }

    async fn read_log(&self, after: u64, max: usize) -> Result<Vec<Arc<LogEvent>>> {
        let head = *self.inner.durable_head.borrow();
        if after >= head || max == 0 {
            return Ok(Vec::new());
        }
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .query(READ_LOG, &[&(after as i64), &(head as i64), &max])
            .await?;
        rows.iter().map(rows::event).collect()
    }

    async fn first_cursor_at(&self, time: Timestamp) -> Result<u64> {
        let (s, ns) = rows::time_columns(time);
        let rows = self.query(FIRST_AT, &[&s, &ns]).await?;
        match rows.first() {
            Some(row) => rows::u64_at(row, 0, "event"),
            None => Ok(self.head().await? + 1),
        }
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        self.inner.durable_head.clone()
    }

    async fn head(&self) -> Result<u64> {
        let rows = self.query(HEAD, &[]).await?;
        let row = rows.first().ok_or_else(|| StoreError::Corrupt {
            key: "khabar.log_head".into(),
            reason: "the row is missing".into(),
        })?;
        let head = rows::u64_at(row, 0, "log head")?;
        self.advance_head(head);
        Ok(head)
    }

    async fn ensure_consumer(&self, name: String, start_after: u64) -> Result<Consumer> {
        self.enqueue(|reply| Command::EnsureConsumer {
            name,
            start_after,
            reply,
        })
        .await?
        .await
    }

    async fn ack(&self, name: String, cursor: u64) -> Result<Consumer> {
        self.enqueue(|reply| Command::Ack {
            name,
            cursor,
            reply,
        })
        .await?
        .await
    }

    async fn consumer(&self, name: String) -> Result<Consumer> {
        let rows = self.query(CONSUMER, &[&name]).await?;
        match rows.first() {
            Some(row) => rows::consumer(row),
            None => Err(StoreError::ConsumerNotFound(name)),
        }
    }

    async fn consumers(&self) -> Result<Vec<Consumer>> {
        let rows = self.query(ALL_CONSUMERS, &[]).await?;
        rows.iter().map(rows::consumer).collect()
    }

    async fn delete_consumer(&self, name: String) -> Result<()> {
        self.enqueue(|reply| Command::DeleteConsumer { name, reply })
            .await?
            .await
    }

    async fn size_on_disk(&self) -> Result<u64> {
        let rows = self.query(SIZE, &[]).await?;
        match rows.first() {
            Some(row) => rows::u64_at(row, 0, "size"),
            None => Ok(0),
        }
    }
}
