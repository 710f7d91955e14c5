//! The write path on PostgreSQL: one writer task per server takes every command waiting (a
//! group), decides each in arrival order and commits the whole group in one transaction on a
//! connection of its own, then answers. While a group commits, the next one queues up.
//!
//! # One transaction per group
//! 1. `SELECT ... FROM khabar.log_head FOR UPDATE` locks the one-row head first. Every write
//!    transaction of every server on the database does this, so writers run one at a time:
//!    each reads everything the previous one committed (READ COMMITTED takes a snapshot per
//!    statement, after the lock is granted), cursors are taken in commit order, and no reader
//!    ever sees cursor n + 1 committed before cursor n.
//! 2. The articles and consumers the group names are read (one statement each), and every
//!    command is decided in memory against them and the group's earlier writes.
//! 3. Events, article heads and consumers are written with one statement each (consumers'
//!    acknowledged cursors with `GREATEST`), then `UPDATE ... SET head = head + n RETURNING head`
//!    and `pg_notify` with the new head, which PostgreSQL delivers only once the transaction
//!    has committed.
//! 4. `COMMIT`, with `synchronous_commit = on` and no statement timeout, so it returns only
//!    once the server (and, with synchronous replication, a standby) has the group durably.
//!    Nothing in khabar cancels it. If the connection breaks during `COMMIT`, the group may or
//!    may not be committed: every caller gets `OutcomeUnknown` (retrying is safe: writes are
//!    idempotent). A commit whose wait for synchronous replication was cancelled on the server
//!    is answered the same way.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bytes::Bytes;
use prost::Message;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, Client, Statement, types::ToSql};
use tracing::{debug, error, warn};
use ulid::Generator;

use super::{
    Connector, Head,
    errors::{commit_error, store_error},
    rows,
};
use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, ContentHash, StoryLink, Timestamp,
        ValidArticle,
        editorial::{PreviousVersion, PubStatus, ReleaseEvent, Transition, transition},
        embargo::Clock,
    },
    store::{
        Consumer, Durable, EventKind, IngestOutcome, IngestReceipt, Result, StoreError,
        writer::{Command, Prepared, Reply},
    },
    stories::{Fingerprint, StoryConfig, StoryIndex},
    wire,
};

/// Most commands in one transaction.
const MAX_GROUP: usize = 1_024;

/// The writer's connection and its prepared statements.
struct Connection {
    client: Client,
    /// Notices the server sent on this connection (a cancelled wait for synchronous
    /// replication comes as one).
    notices: mpsc::Receiver<String>,
    statements: Statements,
}

struct Statements {
    lock_head: Statement,
    by_natural_key: Statement,
    by_id: Statement,
    consumers: Statement,
    insert_events: Statement,
    upsert_articles: Statement,
    delete_consumers: Statement,
    upsert_consumers: Statement,
    advance_head: Statement,
    stories_since: Statement,
    due: Statement,
    delete_held: Statement,
    insert_held: Statement,
}

const LOCK_HEAD: &str =
    "SELECT head, recorded_s, recorded_ns FROM khabar.log_head WHERE only_row FOR UPDATE";
/// Heads by natural key, with their held version; the released content only where $3 says the
/// ingest may need it (a canceled version retracts the released one).
const BY_NATURAL_KEY: &str = "SELECT a.id, a.source_id, a.uri, a.language, a.tags, \
     a.published_s, a.published_ns, a.version, a.status, a.content_hash, a.view_count, \
     a.ingested_s, a.ingested_ns, a.first_ingested_s, a.first_ingested_ns, \
     COALESCE(a.cursor, 0), \
     CASE WHEN k.wants THEN (SELECT e.article FROM khabar.events e WHERE e.cursor = a.cursor) END, \
     a.canonical_uri, a.story_id, a.fingerprint, \
     a.urgency_rank, a.genres, a.expires_s, a.expires_ns, \
     h.version, h.content_hash, h.view_count, h.release_s, h.release_ns, h.fingerprint, h.article \
     FROM khabar.articles a \
     JOIN unnest($1::text[], $2::text[], $3::bool[]) AS k(source_id, uri, wants) \
     ON a.source_id = k.source_id AND a.canonical_uri = k.uri \
     LEFT JOIN khabar.held h ON h.article_id = a.id";
const BY_ID: &str = "SELECT a.id, a.source_id, a.uri, a.language, a.tags, \
     a.published_s, a.published_ns, a.version, a.status, a.content_hash, a.view_count, \
     a.ingested_s, a.ingested_ns, a.first_ingested_s, a.first_ingested_ns, \
     COALESCE(a.cursor, 0), e.article, a.canonical_uri, a.story_id, a.fingerprint, \
     a.urgency_rank, a.genres, a.expires_s, a.expires_ns, \
     h.version, h.content_hash, h.view_count, h.release_s, h.release_ns, h.fingerprint, h.article \
     FROM khabar.articles a LEFT JOIN khabar.events e ON e.cursor = a.cursor \
     LEFT JOIN khabar.held h ON h.article_id = a.id WHERE a.id = ANY($1)";
/// Held versions whose embargo time is at or before ($1, $2), in release order, at most $3.
const DUE: &str = "SELECT a.id, a.source_id, a.uri, a.language, a.tags, \
     a.published_s, a.published_ns, a.version, a.status, a.content_hash, a.view_count, \
     a.ingested_s, a.ingested_ns, a.first_ingested_s, a.first_ingested_ns, \
     COALESCE(a.cursor, 0), NULL::bytea, a.canonical_uri, a.story_id, a.fingerprint, \
     a.urgency_rank, a.genres, a.expires_s, a.expires_ns, \
     h.version, h.content_hash, h.view_count, h.release_s, h.release_ns, h.fingerprint, h.article \
     FROM khabar.held h JOIN khabar.articles a ON a.id = h.article_id \
     WHERE h.release_s IS NOT NULL AND (h.release_s, h.release_ns) <= ($1, $2) \
     ORDER BY h.release_s, h.release_ns, h.article_id LIMIT $3";
const DELETE_HELD: &str = "DELETE FROM khabar.held WHERE article_id = ANY($1)";
const INSERT_HELD: &str = "INSERT INTO khabar.held (article_id, version, content_hash, \
     view_count, release_s, release_ns, fingerprint, article) \
     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], \
     $6::int[], $7::bytea[], $8::bytea[])";
/// The articles changed after cursor $1 (through other servers), in cursor order of their
/// current version, with the content of live ones that have no fingerprint of the encoding
/// version $3 (its first byte): stored before stories, with them off, or by an earlier release.
const STORIES_SINCE: &str = "SELECT a.id, a.cursor, a.published_s, a.published_ns, a.status, \
     a.story_id, a.fingerprint, \
     CASE WHEN substring(a.fingerprint FROM 1 FOR 1) IS DISTINCT FROM $3 AND a.status <> 3 \
     THEN e.article END \
     FROM khabar.articles a JOIN khabar.events e ON e.cursor = a.cursor \
     WHERE a.cursor > $1 AND a.published_s >= $2 ORDER BY a.cursor";
/// Stores fingerprints taken at a rebuild ($3) in the rows of id $1 whose cursor is still $2.
const STORE_FINGERPRINTS: &str = "UPDATE khabar.articles a SET fingerprint = t.fingerprint \
     FROM unnest($1::bytea[], $2::bigint[], $3::bytea[]) AS t(id, cursor, fingerprint) \
     WHERE a.id = t.id AND a.cursor = t.cursor";
const NEWEST_PUBLISHED: &str =
    "SELECT max(published_s) FROM khabar.articles WHERE cursor IS NOT NULL";
const CONSUMERS: &str = "SELECT name, acked, created_s, created_ns, acked_s, acked_ns \
     FROM khabar.consumers WHERE name = ANY($1)";
const INSERT_EVENTS: &str = "INSERT INTO khabar.events (cursor, kind, recorded_s, recorded_ns, \
     article_id, version, source_id, language, tags, article, starts_story) \
     SELECT cursor, kind, recorded_s, recorded_ns, article_id, version, source_id, language, \
     string_to_array(tags, E'\\x1f'), article, starts_story \
     FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::int[], $5::bytea[], \
     $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bytea[], $11::bool[]) \
     AS e(cursor, kind, recorded_s, recorded_ns, article_id, version, source_id, language, tags, \
     article, starts_story)";
const UPSERT_ARTICLES: &str = "INSERT INTO khabar.articles (id, source_id, uri, language, tags, \
     published_s, published_ns, version, status, content_hash, view_count, ingested_s, \
     ingested_ns, first_ingested_s, first_ingested_ns, cursor, canonical_uri, story_id, \
     fingerprint, urgency_rank, genres, expires_s, expires_ns) \
     SELECT id, source_id, uri, language, string_to_array(tags, E'\\x1f'), published_s, \
     published_ns, version, status, content_hash, view_count, ingested_s, ingested_ns, \
     first_ingested_s, first_ingested_ns, NULLIF(cursor, 0), canonical_uri, story_id, \
     fingerprint, urgency_rank, string_to_array(genres, E'\\x1f'), expires_s, expires_ns \
     FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
     $7::int[], $8::bigint[], $9::smallint[], $10::bytea[], $11::bigint[], $12::bigint[], \
     $13::int[], $14::bigint[], $15::int[], $16::bigint[], $17::text[], $18::bytea[], \
     $19::bytea[], $20::smallint[], $21::text[], $22::bigint[], $23::int[]) \
     AS a(id, source_id, uri, language, tags, published_s, published_ns, version, status, \
     content_hash, view_count, ingested_s, ingested_ns, first_ingested_s, first_ingested_ns, \
     cursor, canonical_uri, story_id, fingerprint, urgency_rank, genres, expires_s, \
     expires_ns) \
     ON CONFLICT (id) DO UPDATE SET language = EXCLUDED.language, tags = EXCLUDED.tags, \
     published_s = EXCLUDED.published_s, published_ns = EXCLUDED.published_ns, \
     version = EXCLUDED.version, status = EXCLUDED.status, \
     content_hash = EXCLUDED.content_hash, view_count = EXCLUDED.view_count, \
     ingested_s = EXCLUDED.ingested_s, ingested_ns = EXCLUDED.ingested_ns, \
     cursor = EXCLUDED.cursor, story_id = EXCLUDED.story_id, \
     fingerprint = EXCLUDED.fingerprint, urgency_rank = EXCLUDED.urgency_rank, \
     genres = EXCLUDED.genres, expires_s = EXCLUDED.expires_s, \
     expires_ns = EXCLUDED.expires_ns";
const DELETE_CONSUMERS: &str = "DELETE FROM khabar.consumers WHERE name = ANY($1)";
const UPSERT_CONSUMERS: &str = "INSERT INTO khabar.consumers (name, acked, created_s, \
     created_ns, acked_s, acked_ns) \
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[], $5::bigint[], \
     $6::int[]) \
     ON CONFLICT (name) DO UPDATE SET acked = GREATEST(khabar.consumers.acked, EXCLUDED.acked), \
     acked_s = EXCLUDED.acked_s, acked_ns = EXCLUDED.acked_ns";
const ADVANCE_HEAD: &str = "WITH advanced AS (UPDATE khabar.log_head SET head = head + $1, \
     recorded_s = $2, recorded_ns = $3 WHERE only_row RETURNING head) \
     SELECT head, pg_notify('khabar_log', head::text) FROM advanced";

/// Tags travel to the server as one string each, joined by the unit separator, which no
/// stored text holds (control characters are refused in single-line fields).
const TAG_SEPARATOR: char = '\u{1f}';

impl Connection {
    async fn open(connector: &Connector) -> Result<Self> {
        let (client, mut connection) = connector
            .connect("writer")
            .await
            .map_err(|e| store_error(&e))?;
        let (notices_tx, notices) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        warn!(notice = %notice, "PostgreSQL notice on the write connection");
                        let _ = notices_tx.try_send(notice.message().to_owned());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        warn!(error = %e, "the write connection to PostgreSQL failed");
                        break;
                    }
                    None => break,
                }
            }
        });
        let prepare = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.map_err(|e| store_error(&e)) }
        };
        let statements = Statements {
            lock_head: prepare(LOCK_HEAD).await?,
            by_natural_key: prepare(BY_NATURAL_KEY).await?,
            by_id: prepare(BY_ID).await?,
            consumers: prepare(CONSUMERS).await?,
            insert_events: prepare(INSERT_EVENTS).await?,
            upsert_articles: prepare(UPSERT_ARTICLES).await?,
            delete_consumers: prepare(DELETE_CONSUMERS).await?,
            upsert_consumers: prepare(UPSERT_CONSUMERS).await?,
            advance_head: prepare(ADVANCE_HEAD).await?,
            stories_since: prepare(STORIES_SINCE).await?,
            due: prepare(DUE).await?,
            delete_held: prepare(DELETE_HELD).await?,
            insert_held: prepare(INSERT_HELD).await?,
        };
        Ok(Self {
            client,
            notices,
            statements,
        })
    }
}

/// The writer's story index, and the head of the log it reflects.
///
/// Every server's writer keeps one. Inside each group's transaction, right after the head is
/// locked, it catches up on the articles other servers changed since the head it reflects
/// (restoring them in cursor order of their current version, as a rebuild does), then assigns
/// the group's articles. The head lock orders all writers of all servers, so assignments are
/// made in cursor order, each against every earlier article, whichever server took it.
pub struct Stories {
    config: StoryConfig,
    /// `None` until rebuilt from the articles within the window: at the first group, and after
    /// a group failed (its assignments may not have been committed).
    index: Option<(StoryIndex, u64)>,
}

impl Stories {
    /// Stories linked with `config`; the index is rebuilt at the first write.
    pub fn new(config: StoryConfig) -> Self {
        Self {
            config,
            index: None,
        }
    }

    /// Brings the index up to `head` (the locked head) and hands it out for the group.
    async fn catch_up(
        &mut self,
        transaction: &tokio_postgres::Transaction<'_>,
        statements: &Statements,
        head: u64,
    ) -> Result<StoryIndex> {
        let e = |e: tokio_postgres::Error| store_error(&e);
        let (mut index, applied, cutoff) = match self.index.take() {
            Some((index, applied)) if applied <= head => (index, applied, i64::MIN),
            _ => {
                let newest: Option<i64> = transaction
                    .query_one(NEWEST_PUBLISHED, &[])
                    .await
                    .map_err(e)?
                    .try_get(0)
                    .map_err(e)?;
                let window = i64::try_from(self.config.window.as_secs()).unwrap_or(i64::MAX);
                let cutoff = newest.map_or(i64::MIN, |n| n.saturating_sub(window));
                (StoryIndex::new(self.config), 0, cutoff)
            }
        };
        if applied < head {
            let rows = transaction
                .query(
                    &statements.stories_since,
                    &[
                        &bits(applied),
                        &cutoff,
                        &&[Fingerprint::ENCODING_VERSION][..],
                    ],
                )
                .await
                .map_err(e)?;
            let mut taken = (Vec::new(), Vec::new(), Vec::new());
            for row in &rows {
                if let Some((id, cursor, fingerprint)) = restore_row(&mut index, row)? {
                    taken.0.push(id.to_bytes().to_vec());
                    taken.1.push(bits(cursor));
                    taken.2.push(fingerprint);
                }
            }
            // Kept, so that the next rebuild reads them instead of taking them again; a row
            // changed since (it cannot be while the head is locked) keeps its own.
            if !taken.0.is_empty() {
                transaction
                    .execute(STORE_FINGERPRINTS, &[&taken.0, &taken.1, &taken.2])
                    .await
                    .map_err(e)?;
            }
        }
        Ok(index)
    }
}

/// Files one article row of `STORIES_SINCE` in the index as a rebuild does; returns the
/// fingerprint it had to take from the content, with the row's id and cursor.
fn restore_row(
    index: &mut StoryIndex,
    row: &tokio_postgres::Row,
) -> Result<Option<(ArticleId, u64, Vec<u8>)>> {
    let what = "article of a story";
    let id = rows::id_at(row, 0, what)?;
    let cursor = rows::u64_at(row, 1, what)?;
    let published_at = rows::time_at(row, 2, what)?;
    let status: i16 = rows::get(row, 4, what)?;
    if status == rows::status_code(ArticleStatus::Canceled) {
        index.remove(id);
        index.advance(published_at);
        return Ok(None);
    }
    let story_id = rows::id_at(row, 5, what)?;
    let stored: Option<Vec<u8>> = rows::get(row, 6, what)?;
    let mut taken = None;
    let fingerprint = match stored.and_then(|bytes| Fingerprint::from_bytes(&bytes).ok()) {
        Some(fingerprint) => fingerprint,
        None => {
            let bytes: Option<Vec<u8>> = rows::get(row, 7, what)?;
            let bytes = bytes.ok_or_else(|| StoreError::Corrupt {
                key: format!("article {id}"),
                reason: "neither its fingerprint nor its content was read".into(),
            })?;
            let article = rows::decode_article(cursor, bytes.into())?;
            let fingerprint =
                Fingerprint::of_article(&article.content.headline, &article.content.body);
            taken = Some((id, cursor, fingerprint.to_bytes()));
            fingerprint
        }
    };
    index.restore(id, published_at, &fingerprint, story_id);
    Ok(taken)
}

/// A request to release the held versions that are due; answered with how many were released.
pub type ReleaseRequest = oneshot::Sender<Result<usize>>;

/// What the writer shares with the release timer and the store.
pub struct Embargoes {
    /// Decides transitions and release times.
    pub clock: Arc<dyn Clock>,
    /// Requests from the timer (or the store's start) to release what is due.
    pub releases: mpsc::Receiver<ReleaseRequest>,
    /// Told after a commit that stored a held version with an embargo time, so that the timer
    /// looks at the next release time again.
    pub stored: Arc<Notify>,
}

/// Runs the write path until every command sender is gone, answering everything sent.
pub async fn run(
    connector: Connector,
    mut commands: mpsc::Receiver<Command>,
    durable_head: Arc<watch::Sender<u64>>,
    mut stories: Option<Stories>,
    mut embargoes: Embargoes,
) {
    let mut connection: Option<Connection> = None;
    let mut ids = Generator::new();
    loop {
        // Every group releases what is due before it decides its commands; a release request
        // runs a group without commands.
        let (mut group, release) = tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(command) => (vec![command], None),
                None => break,
            },
            Some(request) = embargoes.releases.recv() => (Vec::new(), Some(request)),
        };
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        if connection.as_ref().is_none_or(|c| c.client.is_closed()) {
            connection = match Connection::open(&connector).await {
                Ok(opened) => Some(opened),
                Err(e) => {
                    warn!(error = %e, "cannot open the write connection to PostgreSQL");
                    if let Some(release) = release {
                        let _ = release.send(Err(same_error(&e)));
                    }
                    fail_all(group, &e);
                    continue;
                }
            };
        }
        let Some(open) = connection.as_mut() else {
            continue;
        };
        let count = group.len();
        let now = embargoes.clock.now();
        match commit_group(open, &mut ids, stories.as_mut(), now, group).await {
            Ok((head, answers, done)) => {
                if let Some(release) = release {
                    let _ = release.send(Ok(done.released));
                }
                if done.embargo_stored {
                    embargoes.stored.notify_one();
                }
                durable_head.send_if_modified(|current| {
                    let advanced = head > *current;
                    *current = (*current).max(head);
                    advanced
                });
                debug!(commands = count, head, "group committed");
                answers.into_iter().for_each(|answer| answer.deliver(count));
            }
            Err((error, answers)) => {
                if let Some(release) = release {
                    let _ = release.send(Err(same_error(&error)));
                }
                if let StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_) = error {
                    // The connection may be broken; the next group opens a new one.
                    connection = None;
                }
                warn!(error = %error, commands = count, "group failed");
                answers.into_iter().for_each(|answer| answer.fail(&error));
            }
        }
    }
    debug!("PostgreSQL writer stopped");
}

fn fail_all(group: Vec<Command>, error: &StoreError) {
    for command in group {
        Answer::pending(command).fail(error);
    }
}

/// Sends a command's answer: its own result, or the group's failure.
type Deliver = Box<dyn FnOnce(std::result::Result<usize, &StoreError>) + std::marker::Send>;

/// A decided command: its reply and the answer it gets once the group commits.
struct Answer(Deliver);

impl Answer {
    fn new<T: Durable + Send + 'static>(reply: Reply<T>, result: Result<T>) -> Self {
        Self(Box::new(move |committed| {
            let answer = match committed {
                Ok(group_size) => result.map(|mut answer| {
                    answer.made_durable_with(group_size);
                    answer
                }),
                Err(error) => Err(same_error(error)),
            };
            // A caller that went away no longer needs the answer.
            let _ = reply.send(answer);
        }))
    }

    /// An undecided command, which can only fail.
    fn pending(command: Command) -> Self {
        fn never<T>() -> Result<T> {
            Err(StoreError::Unavailable("not decided".into()))
        }
        match command {
            Command::Ingest { reply, .. } => Self::new(reply, never()),
            Command::Retract { reply, .. } => Self::new(reply, never()),
            Command::EnsureConsumer { reply, .. } => Self::new(reply, never()),
            Command::Ack { reply, .. } => Self::new(reply, never()),
            Command::DeleteConsumer { reply, .. } => Self::new(reply, never()),
        }
    }

    /// Answers once committed, together with `group_size` writes in all.
    fn deliver(self, group_size: usize) {
        (self.0)(Ok(group_size))
    }

    fn fail(self, error: &StoreError) {
        (self.0)(Err(error))
    }
}

/// The same failure for every caller of a group (errors are not `Clone`).
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::OutcomeUnknown(m) => StoreError::OutcomeUnknown(m.clone()),
        StoreError::Corrupt { key, reason } => StoreError::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        },
        other => StoreError::Database(other.to_string()),
    }
}

type Failed = (StoreError, Vec<Answer>);

/// What a committed group did besides answering its commands.
struct Done {
    /// Held versions it released.
    released: usize,
    /// Whether it stored a held version with an embargo time.
    embargo_stored: bool,
}

/// Commits one group, decided at `now` (the store's clock): first the releases due by then, in
/// (embargo time, article id) order, then the commands. Returns the head after it, the answers
/// to deliver and what else it did.
async fn commit_group(
    connection: &mut Connection,
    ids: &mut Generator,
    mut stories: Option<&mut Stories>,
    now: Timestamp,
    group: Vec<Command>,
) -> std::result::Result<(u64, Vec<Answer>, Done), Failed> {
    while connection.notices.try_recv().is_ok() {}
    let statements = &connection.statements;
    let transaction = match connection.client.transaction().await {
        Ok(t) => t,
        Err(e) => {
            let answers = group.into_iter().map(Answer::pending).collect();
            return Err((store_error(&e), answers));
        }
    };
    let names = Names::of(&group);
    let key_sources: Vec<&str> = names.keys.iter().map(|(s, _)| s.as_str()).collect();
    let key_uris: Vec<&str> = names.keys.iter().map(|(_, u)| u.as_str()).collect();
    let key_wants: &Vec<bool> = &names.wants_content;
    let id_bytes: Vec<Vec<u8>> = names.ids.iter().map(|id| id.to_bytes().to_vec()).collect();
    let consumer_names: Vec<&str> = names.consumers.iter().map(String::as_str).collect();
    let key_params: [&(dyn ToSql + Sync); 3] = [&key_sources, &key_uris, key_wants];
    let (now_s, now_ns) = rows::time_columns(now);
    let most_due = MAX_GROUP as i64;
    let due_params: [&(dyn ToSql + Sync); 3] = [&now_s, &now_ns, &most_due];
    let id_params: [&(dyn ToSql + Sync); 1] = [&id_bytes];
    let consumer_params: [&(dyn ToSql + Sync); 1] = [&consumer_names];
    // Pipelined: the server runs them in order, the reads only once the head is locked.
    let read = tokio::try_join!(
        transaction.query_one(&statements.lock_head, &[]),
        transaction.query(&statements.by_natural_key, &key_params),
        transaction.query(&statements.by_id, &id_params),
        transaction.query(&statements.consumers, &consumer_params),
        transaction.query(&statements.due, &due_params),
    );
    let (head_row, by_key, by_id, consumer_rows, due_rows) = match read {
        Ok(rows) => rows,
        Err(e) => {
            let answers = group.into_iter().map(Answer::pending).collect();
            return Err((store_error(&e), answers));
        }
    };
    let loaded = (|| -> Result<Group> {
        let head = rows::u64_at(&head_row, 0, "log head")?;
        let recorded_at = rows::time_at(&head_row, 1, "log head")?;
        let mut state = Group::new(head, recorded_at, now);
        for row in by_key.iter().chain(&by_id).chain(&due_rows) {
            state.load_article(rows::head(row)?, rows::content(row)?, rows::held(row)?);
        }
        for row in &due_rows {
            state.due.push(rows::id_at(row, 0, "held version")?);
        }
        for row in &consumer_rows {
            let consumer = rows::consumer(row)?;
            state
                .consumers
                .insert(consumer.name.clone(), Some(consumer));
        }
        for name in &names.consumers {
            state.consumers.entry(name.clone()).or_insert(None);
        }
        Ok(state)
    })();
    let mut state = match loaded {
        Ok(state) => state,
        Err(e) => {
            let answers = group.into_iter().map(Answer::pending).collect();
            return Err((e, answers));
        }
    };
    if let Some(stories) = stories.as_deref_mut() {
        match stories
            .catch_up(&transaction, statements, state.first_head)
            .await
        {
            Ok(index) => state.stories = Some(index),
            Err(e) => {
                let answers = group.into_iter().map(Answer::pending).collect();
                return Err((e, answers));
            }
        }
    }
    let released = state.release_due();
    let answers: Vec<Answer> = group
        .into_iter()
        .map(|command| state.decide(command, ids))
        .collect();

    let written = write(&transaction, statements, &state).await;
    if let Err(e) = written {
        return Err((e, answers));
    }
    if let Err(e) = transaction.commit().await {
        return Err((commit_error(&e), answers));
    }
    // Committed: the index reflects every event up to the new head.
    if let (Some(stories), Some(index)) = (stories, state.stories.take()) {
        stories.index = Some((index, state.head));
    }
    let cancelled_wait = std::iter::from_fn(|| connection.notices.try_recv().ok())
        .find(|notice| notice.contains("synchronous replication"));
    if let Some(notice) = cancelled_wait {
        let error = StoreError::OutcomeUnknown(format!(
            "the commit's wait for synchronous replication was cancelled on the server \
             ({notice}): it is stored on the primary but may not be on a standby"
        ));
        return Err((error, answers));
    }
    let done = Done {
        released,
        embargo_stored: state.embargo_stored,
    };
    Ok((state.head, answers, done))
}

/// Writes the group's changes and advances the head.
async fn write(
    transaction: &tokio_postgres::Transaction<'_>,
    statements: &Statements,
    state: &Group,
) -> Result<()> {
    let e = |e: tokio_postgres::Error| store_error(&e);
    let events = EventColumns::of(&state.events);
    let articles = ArticleColumns::of(state.dirty_heads());
    let deleted: Vec<&str> = state.deleted_consumers.iter().map(String::as_str).collect();
    let consumers = ConsumerColumns::of(
        state
            .dirty_consumers
            .iter()
            .filter_map(|name| state.consumers.get(name).and_then(Option::as_ref)),
    );
    let held = HeldColumns::of(&state.held, &state.dirty_held);
    let added = (state.head - state.first_head) as i64;
    let (recorded_s, recorded_ns) = rows::time_columns(state.recorded_at);
    // Events first: each article row names the event that holds its content.
    if !state.events.is_empty() {
        transaction
            .execute(&statements.insert_events, &events.params())
            .await
            .map_err(e)?;
    }
    if !articles.ids.is_empty() {
        transaction
            .execute(&statements.upsert_articles, &articles.params())
            .await
            .map_err(e)?;
    }
    // Every held row the group touched is replaced: deleted, then inserted if still held.
    if !held.touched.is_empty() {
        transaction
            .execute(&statements.delete_held, &[&held.touched])
            .await
            .map_err(e)?;
    }
    if !held.ids.is_empty() {
        transaction
            .execute(&statements.insert_held, &held.params())
            .await
            .map_err(e)?;
    }
    if !deleted.is_empty() {
        transaction
            .execute(&statements.delete_consumers, &[&deleted])
            .await
            .map_err(e)?;
    }
    if !consumers.names.is_empty() {
        transaction
            .execute(&statements.upsert_consumers, &consumers.params())
            .await
            .map_err(e)?;
    }
    if added > 0 {
        let row = transaction
            .query_one(
                &statements.advance_head,
                &[&added, &recorded_s, &recorded_ns],
            )
            .await
            .map_err(e)?;
        let head = rows::u64_at(&row, 0, "log head")?;
        if head != state.head {
            return Err(StoreError::Corrupt {
                key: "khabar.log_head".into(),
                reason: format!(
                    "advanced to {head} where the locked head said {}",
                    state.head
                ),
            });
        }
    }
    Ok(())
}

/// What a group names, to read before deciding.
#[derive(Default)]
struct Names {
    keys: Vec<(String, String)>,
    /// For each key, whether an ingest of it may need the released content (it cancels).
    wants_content: Vec<bool>,
    ids: Vec<ArticleId>,
    consumers: Vec<String>,
}

impl Names {
    fn of(group: &[Command]) -> Self {
        let mut names = Self::default();
        let (mut keys, mut ids, mut consumers) = (HashSet::new(), HashSet::new(), HashSet::new());
        for command in group {
            match command {
                Command::Ingest {
                    article, prepared, ..
                } => {
                    let key = (
                        article.content().source.id.clone(),
                        prepared.canonical_uri.clone(),
                    );
                    let cancels = article.content().editorial.pubstatus == PubStatus::Canceled;
                    if keys.insert(key.clone()) {
                        names.keys.push(key);
                        names.wants_content.push(cancels);
                    } else if cancels && let Some(i) = names.keys.iter().position(|k| *k == key) {
                        names.wants_content[i] = true;
                    }
                }
                Command::Retract { id, .. } => {
                    if ids.insert(*id) {
                        names.ids.push(*id);
                    }
                }
                Command::EnsureConsumer { name, .. }
                | Command::Ack { name, .. }
                | Command::DeleteConsumer { name, .. } => {
                    if consumers.insert(name.clone()) {
                        names.consumers.push(name.clone());
                    }
                }
            }
        }
        names
    }
}

/// One event to insert.
struct NewEvent {
    cursor: u64,
    kind: EventKind,
    recorded_at: Timestamp,
    head: Head,
    article: Bytes,
}

/// The state a group decides against: what it read, and what it wrote so far.
struct Group {
    /// Head before the group.
    first_head: u64,
    /// Head after the group's events so far.
    head: u64,
    /// Time of the newest event so far.
    recorded_at: Timestamp,
    natural_keys: HashMap<(String, String), ArticleId>,
    /// Heads, with the bytes of their current event when known.
    heads: HashMap<ArticleId, (Head, Option<Bytes>)>,
    dirty: Vec<ArticleId>,
    events: Vec<NewEvent>,
    /// `None`: known not to exist.
    consumers: HashMap<String, Option<Consumer>>,
    dirty_consumers: Vec<String>,
    deleted_consumers: Vec<String>,
    /// The story index while the group is decided; `None` with stories off.
    stories: Option<StoryIndex>,
    /// The store's clock when the group was taken: what is due, and what an ingest holds.
    clock_now: Timestamp,
    /// Held versions as read and as decided; `None`: known to have none.
    held: HashMap<ArticleId, Option<Held>>,
    /// Articles whose held row the group replaces or deletes.
    dirty_held: Vec<ArticleId>,
    /// The articles whose held version is due, in release order.
    due: Vec<ArticleId>,
    /// Whether a held version with an embargo time was stored.
    embargo_stored: bool,
}

/// A version held back, as stored in `khabar.held`.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its version number.
    pub version: u64,
    /// Its content hash.
    pub content_hash: ContentHash,
    /// The view count last sent for it.
    pub view_count: u64,
    /// Its embargo time; `None` when withheld without a time.
    pub release_at: Option<Timestamp>,
    /// Its story fingerprint, when stories are on.
    pub fingerprint: Option<Vec<u8>>,
    /// The version as stored: `khabar.v1.Article`, status withheld, no cursor, no story.
    pub article: Bytes,
}

impl Group {
    fn new(head: u64, recorded_at: Timestamp, clock_now: Timestamp) -> Self {
        Self {
            first_head: head,
            head,
            recorded_at,
            natural_keys: HashMap::new(),
            heads: HashMap::new(),
            dirty: Vec::new(),
            events: Vec::new(),
            consumers: HashMap::new(),
            dirty_consumers: Vec::new(),
            deleted_consumers: Vec::new(),
            stories: None,
            clock_now,
            held: HashMap::new(),
            dirty_held: Vec::new(),
            due: Vec::new(),
            embargo_stored: false,
        }
    }

    /// Fingerprints a version and asks the story index where it belongs; nothing with stories
    /// off.
    fn place(
        &mut self,
        id: ArticleId,
        content: &ArticleContent,
        fingerprint: Option<&Fingerprint>,
        updated: bool,
    ) -> (Option<StoryLink>, Option<Vec<u8>>) {
        let Some(stories) = self.stories.as_mut() else {
            return (None, None);
        };
        let (link, fingerprint) = stories.place(id, content, fingerprint, updated);
        (Some(link), Some(fingerprint))
    }

    fn load_article(&mut self, head: Head, content: Option<Bytes>, held: Option<Held>) {
        self.held.entry(head.id).or_insert(held);
        if let Some(canonical) = &head.canonical_uri {
            self.natural_keys
                .insert((head.source_id.clone(), canonical.clone()), head.id);
        }
        match self.heads.get_mut(&head.id) {
            // Read twice (by key and by id): keep the content.
            Some((_, known)) if known.is_some() => {}
            _ => {
                self.heads.insert(head.id, (head, content));
            }
        }
    }

    fn dirty_heads(&self) -> impl Iterator<Item = &Head> {
        self.dirty
            .iter()
            .filter_map(|id| self.heads.get(id).map(|(h, _)| h))
    }

    fn mark_dirty(&mut self, id: ArticleId) {
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
    }

    /// Sets (or drops, with `None`) the held version of `id`.
    fn set_held(&mut self, id: ArticleId, held: Option<Held>) {
        let was_held = self.held.get(&id).is_some_and(Option::is_some);
        if (held.is_some() || was_held) && !self.dirty_held.contains(&id) {
            self.dirty_held.push(id);
        }
        if held.as_ref().is_some_and(|h| h.release_at.is_some()) {
            self.embargo_stored = true;
        }
        self.held.insert(id, held);
    }

    fn mark_consumer(&mut self, name: &str) {
        if !self.dirty_consumers.iter().any(|n| n == name) {
            self.dirty_consumers.push(name.to_owned());
        }
    }

    /// Event times never go backwards, even if the clock does or another server's runs ahead.
    fn now(&mut self) -> Timestamp {
        self.recorded_at = self.recorded_at.max(self.clock_now);
        self.recorded_at
    }

    /// Releases the held versions found due, in release order; returns how many.
    fn release_due(&mut self) -> usize {
        let due = std::mem::take(&mut self.due);
        let mut released = 0;
        for id in due {
            match self.release(id) {
                Ok(true) => released += 1,
                Ok(false) => {}
                // Left held: the other releases and the writes go on, and the timer retries.
                Err(e) => error!(article = %id, error = %e, "cannot release a held version"),
            }
        }
        released
    }

    /// Appends the event of `id`'s held version (CREATED if the article was never released,
    /// else UPDATED), files it in its story and makes it the released head.
    fn release(&mut self, id: ArticleId) -> Result<bool> {
        let Some(Some(held)) = self.held.get(&id).cloned() else {
            return Ok(false);
        };
        if held.release_at.is_none_or(|at| at > self.clock_now) {
            return Ok(false);
        }
        let (head, _) = self.heads.get(&id).ok_or_else(|| StoreError::Corrupt {
            key: format!("held version of {id}"),
            reason: "its article was not read".into(),
        })?;
        let released_before = head.cursor != 0;
        let mut article = rows::decode_article(0, held.article.clone())?;
        article.status = ArticleStatus::Usable;
        article.view_count = held.view_count;
        article.retraction = None;
        article.cursor = self.head + 1;
        let fingerprint = held
            .fingerprint
            .as_deref()
            .and_then(|bytes| Fingerprint::from_bytes(bytes).ok());
        let (story, fingerprint) =
            self.place(id, &article.content, fingerprint.as_ref(), released_before);
        article.story = story;
        let kind = if released_before {
            EventKind::Updated
        } else {
            EventKind::Created
        };
        let now = self.now();
        self.set_held(id, None);
        self.log_event(kind, article, now, fingerprint);
        Ok(true)
    }

    fn decide(&mut self, command: Command, ids: &mut Generator) -> Answer {
        match command {
            Command::Ingest {
                article,
                prepared,
                reply,
                queued,
            } => {
                let decided = self.ingest(*article, *prepared, ids);
                // Decided, the article is in the group's statements: its budget is free again.
                drop(queued);
                Answer::new(reply, decided)
            }
            Command::Retract { id, reason, reply } => Answer::new(reply, self.retract(id, reason)),
            Command::EnsureConsumer {
                name,
                start_after,
                reply,
            } => Answer::new(reply, self.ensure_consumer(name, start_after)),
            Command::Ack {
                name,
                cursor,
                reply,
            } => Answer::new(reply, self.ack(name, cursor)),
            Command::DeleteConsumer { name, reply } => {
                Answer::new(reply, self.delete_consumer(name))
            }
        }
    }

    fn ingest(
        &mut self,
        new: ValidArticle,
        prepared: Prepared,
        ids: &mut Generator,
    ) -> Result<IngestReceipt> {
        let content_hash = new.content_hash();
        let view_count = new.view_count();
        let Prepared {
            canonical_uri,
            fingerprint,
        } = prepared;
        let key = (new.content().source.id.clone(), canonical_uri);
        let Some(&id) = self.natural_keys.get(&key) else {
            return self.ingest_new(new, key, fingerprint, ids);
        };
        let (head, _) = self.heads.get(&id).ok_or_else(|| StoreError::Corrupt {
            key: format!("natural key ({}, {})", key.0, key.1),
            reason: format!("points to missing article {id}"),
        })?;
        let released = head.cursor != 0;
        let head_cursor = head.cursor;
        let first_ingested_at = head.first_ingested_at;
        let canonical = head.canonical_uri.clone().unwrap_or(key.1);
        if head.status == ArticleStatus::Canceled {
            let previous = PreviousVersion {
                released,
                retracted: true,
            };
            return match transition(Some(previous), &new.content().editorial, self.clock_now) {
                Transition::Unchanged => Ok(IngestReceipt {
                    id,
                    version: head.version,
                    outcome: IngestOutcome::Unchanged,
                    content_hash: head.content_hash,
                    cursor: head.cursor,
                    group_size: 0,
                }),
                _ => Err(StoreError::Retracted(id)),
            };
        }
        // The latest stored version: the held one if any, else the released one.
        let held = self.held.get(&id).cloned().flatten();
        let (latest_version, latest_hash, latest_views) = match &held {
            Some(held) => (held.version, held.content_hash, held.view_count),
            None => (head.version, head.content_hash, head.view_count),
        };
        if latest_hash == content_hash {
            let outcome = if latest_views == view_count {
                IngestOutcome::Unchanged
            } else {
                IngestOutcome::CountersUpdated
            };
            if outcome == IngestOutcome::CountersUpdated {
                match held {
                    Some(mut held) => {
                        held.view_count = view_count;
                        self.set_held(id, Some(held));
                    }
                    None => {
                        if let Some((head, _)) = self.heads.get_mut(&id) {
                            head.view_count = view_count;
                        }
                        self.mark_dirty(id);
                    }
                }
            }
            return Ok(IngestReceipt {
                id,
                version: latest_version,
                outcome,
                content_hash,
                cursor: head_cursor,
                group_size: 0,
            });
        }
        let version = latest_version + 1;
        let previous = PreviousVersion {
            released,
            retracted: false,
        };
        let now = self.now();
        let article = Article {
            id,
            content: new.into_content(),
            view_count,
            version,
            status: ArticleStatus::Usable,
            content_hash,
            ingested_at: now,
            first_ingested_at,
            cursor: 0,
            retraction: None,
            canonical_uri: canonical,
            story: None,
        };
        let decided = transition(Some(previous), &article.content.editorial, self.clock_now);
        match decided {
            Transition::Publish { event } => {
                self.set_held(id, None);
                Ok(self.publish(article, event, fingerprint, released))
            }
            Transition::Embargo { until, .. } => {
                Ok(self.hold(article, Some(until), fingerprint, head_cursor))
            }
            Transition::Withhold => Ok(self.hold(article, None, fingerprint, head_cursor)),
            Transition::Retract { reason, announce } => {
                self.set_held(id, None);
                let cursor = if announce {
                    let mut retracted = self.released_article(id)?;
                    retracted.retract(reason, now, self.head + 1);
                    retracted.version = version;
                    if let Some(stories) = self.stories.as_mut() {
                        stories.remove(id);
                    }
                    let cursor = retracted.cursor;
                    self.log_event(EventKind::Retracted, retracted, now, None);
                    cursor
                } else {
                    if let Some((head, _)) = self.heads.get_mut(&id) {
                        head.status = ArticleStatus::Canceled;
                    }
                    self.mark_dirty(id);
                    head_cursor
                };
                Ok(IngestReceipt {
                    id,
                    version,
                    outcome: IngestOutcome::Canceled,
                    content_hash,
                    cursor,
                    group_size: 0,
                })
            }
            // Only a retracted article, handled above, gets these.
            Transition::Unchanged | Transition::Refused => Err(StoreError::Retracted(id)),
        }
    }

    /// The first version of an article the store has not seen.
    fn ingest_new(
        &mut self,
        new: ValidArticle,
        key: (String, String),
        fingerprint: Option<Fingerprint>,
        ids: &mut Generator,
    ) -> Result<IngestReceipt> {
        let content_hash = new.content_hash();
        let view_count = new.view_count();
        let now = self.now();
        // The generator keeps ids increasing within a millisecond; it fails only after 2^80
        // ids in one, where a random id is still unique in practice.
        let id = ArticleId::from_ulid(ids.generate().unwrap_or_else(|_| ulid::Ulid::new()));
        let article = Article {
            id,
            content: new.into_content(),
            view_count,
            version: 1,
            status: ArticleStatus::Usable,
            content_hash,
            ingested_at: now,
            first_ingested_at: now,
            cursor: 0,
            retraction: None,
            canonical_uri: key.1.clone(),
            story: None,
        };
        self.natural_keys.insert(key, id);
        match transition(None, &article.content.editorial, self.clock_now) {
            Transition::Publish { event } => Ok(self.publish(article, event, fingerprint, false)),
            Transition::Embargo { until, .. } => {
                self.insert_unreleased(&article);
                Ok(self.hold(article, Some(until), fingerprint, 0))
            }
            Transition::Withhold => {
                self.insert_unreleased(&article);
                Ok(self.hold(article, None, fingerprint, 0))
            }
            Transition::Retract { .. } | Transition::Unchanged | Transition::Refused => {
                // Never released: recorded as retracted without an event, so that the key
                // refuses later versions.
                let receipt = receipt(&article, IngestOutcome::Canceled);
                let mut head = Head::of(&article);
                head.version = 0;
                head.status = ArticleStatus::Canceled;
                self.heads.insert(id, (head, None));
                self.held.insert(id, None);
                self.mark_dirty(id);
                Ok(receipt)
            }
        }
    }

    /// Stores the row of an article that has no released version yet: its natural key, with
    /// the listing columns of its held version.
    fn insert_unreleased(&mut self, article: &Article) {
        let mut head = Head::of(article);
        head.version = 0;
        head.cursor = 0;
        self.heads.insert(article.id, (head, None));
        self.held.insert(article.id, None);
        self.mark_dirty(article.id);
    }

    /// Logs `article` (a new version decided now) as `event`, filed in its story.
    fn publish(
        &mut self,
        mut article: Article,
        event: ReleaseEvent,
        fingerprint: Option<Fingerprint>,
        released_before: bool,
    ) -> IngestReceipt {
        let (story, fingerprint) = self.place(
            article.id,
            &article.content,
            fingerprint.as_ref(),
            released_before,
        );
        article.story = story;
        article.cursor = self.head + 1;
        let (kind, outcome) = match event {
            ReleaseEvent::Created => (EventKind::Created, IngestOutcome::Created),
            ReleaseEvent::Updated => (EventKind::Updated, IngestOutcome::Updated),
        };
        let receipt = receipt(&article, outcome);
        let recorded_at = article.ingested_at;
        self.log_event(kind, article, recorded_at, fingerprint);
        receipt
    }

    /// Stores `article` as its article's held version (replacing any), released at
    /// `release_at` or, without one, only replaced by a later version.
    fn hold(
        &mut self,
        mut article: Article,
        release_at: Option<Timestamp>,
        fingerprint: Option<Fingerprint>,
        released_cursor: u64,
    ) -> IngestReceipt {
        article.status = ArticleStatus::Withheld;
        let id = article.id;
        let mut receipt = receipt(&article, IngestOutcome::Held);
        receipt.cursor = released_cursor;
        // An article never released lists with its held version's columns.
        if let Some((head, _)) = self.heads.get_mut(&id).filter(|(h, _)| h.cursor == 0) {
            head.language = article.content.language.clone();
            head.tags = article.content.tags.clone();
            head.published_at = article.content.published_at;
            self.mark_dirty(id);
        }
        let held = Held {
            version: article.version,
            content_hash: article.content_hash,
            view_count: article.view_count,
            release_at,
            fingerprint: fingerprint.map(|f| f.to_bytes()),
            article: Bytes::from(wire::article_pb(article).encode_to_vec()),
        };
        self.set_held(id, Some(held));
        receipt
    }

    /// The released head of `id` as an article.
    fn released_article(&self, id: ArticleId) -> Result<Article> {
        let (head, content) = self.heads.get(&id).ok_or(StoreError::NotFound(id))?;
        let bytes = content.clone().ok_or_else(|| StoreError::Corrupt {
            key: format!("article {id}"),
            reason: "its content was not read".into(),
        })?;
        let mut article = rows::decode_article(head.cursor, bytes)?;
        article.view_count = head.view_count;
        Ok(article)
    }

    fn retract(&mut self, id: ArticleId, reason: String) -> Result<Article> {
        let (head, _) = self.heads.get(&id).ok_or(StoreError::NotFound(id))?;
        let released = head.cursor != 0;
        let held = self.held.get(&id).cloned().flatten();
        if !released {
            // Never released: retracted without an event (feeds never saw it); a version
            // retracted so before is not found, as reads by id do not find it.
            let held = held.ok_or(StoreError::NotFound(id))?;
            let mut article = rows::decode_article(0, held.article)?;
            article.view_count = held.view_count;
            let now = self.now();
            article.retract(reason, now, 0);
            self.set_held(id, None);
            if let Some((head, _)) = self.heads.get_mut(&id) {
                head.status = ArticleStatus::Canceled;
            }
            self.mark_dirty(id);
            return Ok(article);
        }
        let mut article = self.released_article(id)?;
        if article.status == ArticleStatus::Canceled {
            return Ok(article);
        }
        let now = self.now();
        article.retract(reason, now, self.head + 1);
        if let Some(held) = held {
            // Version numbers go on from the dropped held version.
            article.version = article.version.max(held.version + 1);
            self.set_held(id, None);
        }
        if let Some(stories) = self.stories.as_mut() {
            stories.remove(id);
        }
        self.log_event(EventKind::Retracted, article.clone(), now, None);
        Ok(article)
    }

    /// Logs the event that produced `article`'s current version and makes it its head.
    fn log_event(
        &mut self,
        kind: EventKind,
        article: Article,
        recorded_at: Timestamp,
        fingerprint: Option<Vec<u8>>,
    ) {
        self.head += 1;
        let mut head = Head::of(&article);
        head.fingerprint = fingerprint;
        let bytes = Bytes::from(wire::article_pb(article).encode_to_vec());
        let id = head.id;
        self.events.push(NewEvent {
            cursor: self.head,
            kind,
            recorded_at,
            head: head.clone(),
            article: bytes.clone(),
        });
        self.heads.insert(id, (head, Some(bytes)));
        self.mark_dirty(id);
    }

    fn ensure_consumer(&mut self, name: String, start_after: u64) -> Result<Consumer> {
        if let Some(Some(existing)) = self.consumers.get(&name) {
            return Ok(existing.clone());
        }
        if start_after > self.head {
            return Err(StoreError::CursorBeyondHead {
                cursor: start_after,
                head: self.head,
            });
        }
        let consumer = Consumer {
            name: name.clone(),
            acked_cursor: start_after,
            created_at: Timestamp::now(),
            acked_at: None,
        };
        self.consumers.insert(name.clone(), Some(consumer.clone()));
        self.mark_consumer(&name);
        Ok(consumer)
    }

    fn ack(&mut self, name: String, cursor: u64) -> Result<Consumer> {
        let head = self.head;
        let Some(Some(consumer)) = self.consumers.get_mut(&name) else {
            return Err(StoreError::ConsumerNotFound(name));
        };
        if cursor > head {
            return Err(StoreError::CursorBeyondHead { cursor, head });
        }
        if cursor <= consumer.acked_cursor {
            return Ok(consumer.clone());
        }
        consumer.acked_cursor = cursor;
        consumer.acked_at = Some(Timestamp::now());
        let acked = consumer.clone();
        self.mark_consumer(&name);
        Ok(acked)
    }

    fn delete_consumer(&mut self, name: String) -> Result<()> {
        match self.consumers.get_mut(&name) {
            Some(consumer @ Some(_)) => {
                *consumer = None;
                if !self.deleted_consumers.contains(&name) {
                    self.deleted_consumers.push(name.clone());
                }
                self.dirty_consumers.retain(|n| *n != name);
                Ok(())
            }
            _ => Err(StoreError::ConsumerNotFound(name)),
        }
    }
}

fn receipt(article: &Article, outcome: IngestOutcome) -> IngestReceipt {
    IngestReceipt {
        id: article.id,
        version: article.version,
        outcome,
        content_hash: article.content_hash,
        cursor: article.cursor,
        group_size: 0,
    }
}

fn joined_tags(tags: &[String]) -> String {
    let mut joined = String::new();
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            joined.push(TAG_SEPARATOR);
        }
        joined.push_str(tag);
    }
    joined
}

/// Bigint columns hold u64 values bit for bit.
fn bits(value: u64) -> i64 {
    value as i64
}

#[derive(Default)]
struct EventColumns {
    cursors: Vec<i64>,
    kinds: Vec<i16>,
    recorded_s: Vec<i64>,
    recorded_ns: Vec<i32>,
    ids: Vec<Vec<u8>>,
    versions: Vec<i64>,
    sources: Vec<String>,
    languages: Vec<String>,
    tags: Vec<String>,
    articles: Vec<Vec<u8>>,
    starts_story: Vec<bool>,
}

impl EventColumns {
    fn of(events: &[NewEvent]) -> Self {
        let mut columns = Self::default();
        for event in events {
            let (s, ns) = rows::time_columns(event.recorded_at);
            columns.cursors.push(bits(event.cursor));
            columns.kinds.push(rows::kind_code(event.kind));
            columns.recorded_s.push(s);
            columns.recorded_ns.push(ns);
            columns.ids.push(event.head.id.to_bytes().to_vec());
            columns.versions.push(bits(event.head.version));
            columns.sources.push(event.head.source_id.clone());
            columns.languages.push(event.head.language.clone());
            columns.tags.push(joined_tags(&event.head.tags));
            columns.articles.push(event.article.to_vec());
            columns
                .starts_story
                .push(event.head.story_id == event.head.id);
        }
        columns
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.cursors,
            &self.kinds,
            &self.recorded_s,
            &self.recorded_ns,
            &self.ids,
            &self.versions,
            &self.sources,
            &self.languages,
            &self.tags,
            &self.articles,
            &self.starts_story,
        ]
    }
}

#[derive(Default)]
struct ArticleColumns {
    ids: Vec<Vec<u8>>,
    sources: Vec<String>,
    uris: Vec<String>,
    languages: Vec<String>,
    tags: Vec<String>,
    published_s: Vec<i64>,
    published_ns: Vec<i32>,
    versions: Vec<i64>,
    statuses: Vec<i16>,
    hashes: Vec<Vec<u8>>,
    view_counts: Vec<i64>,
    ingested_s: Vec<i64>,
    ingested_ns: Vec<i32>,
    first_s: Vec<i64>,
    first_ns: Vec<i32>,
    cursors: Vec<i64>,
    canonical_uris: Vec<Option<String>>,
    story_ids: Vec<Vec<u8>>,
    fingerprints: Vec<Option<Vec<u8>>>,
    urgency_ranks: Vec<i16>,
    genres: Vec<String>,
    expires_s: Vec<Option<i64>>,
    expires_ns: Vec<Option<i32>>,
}

impl ArticleColumns {
    fn of<'a>(heads: impl Iterator<Item = &'a Head>) -> Self {
        let mut c = Self::default();
        for head in heads {
            let (ps, pns) = rows::time_columns(head.published_at);
            let (is, ins) = rows::time_columns(head.ingested_at);
            let (fs, fns) = rows::time_columns(head.first_ingested_at);
            c.ids.push(head.id.to_bytes().to_vec());
            c.sources.push(head.source_id.clone());
            c.uris.push(head.uri.clone());
            c.languages.push(head.language.clone());
            c.tags.push(joined_tags(&head.tags));
            c.published_s.push(ps);
            c.published_ns.push(pns);
            c.versions.push(bits(head.version));
            c.statuses.push(rows::status_code(head.status));
            c.hashes.push(head.content_hash.0.to_vec());
            c.view_counts.push(bits(head.view_count));
            c.ingested_s.push(is);
            c.ingested_ns.push(ins);
            c.first_s.push(fs);
            c.first_ns.push(fns);
            c.cursors.push(bits(head.cursor));
            c.canonical_uris.push(head.canonical_uri.clone());
            c.story_ids.push(head.story_id.to_bytes().to_vec());
            c.fingerprints.push(head.fingerprint.clone());
            c.urgency_ranks.push(head.urgency_rank);
            // Genre codes hold no spaces or control characters, so the tags' separator works.
            c.genres.push(joined_tags(&head.genres));
            let expires = head.expires.map(rows::time_columns);
            c.expires_s.push(expires.map(|(s, _)| s));
            c.expires_ns.push(expires.map(|(_, ns)| ns));
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 23] {
        [
            &self.ids,
            &self.sources,
            &self.uris,
            &self.languages,
            &self.tags,
            &self.published_s,
            &self.published_ns,
            &self.versions,
            &self.statuses,
            &self.hashes,
            &self.view_counts,
            &self.ingested_s,
            &self.ingested_ns,
            &self.first_s,
            &self.first_ns,
            &self.cursors,
            &self.canonical_uris,
            &self.story_ids,
            &self.fingerprints,
            &self.urgency_ranks,
            &self.genres,
            &self.expires_s,
            &self.expires_ns,
        ]
    }
}

/// The held rows a group replaces (`touched`), and the ones it inserts.
#[derive(Default)]
struct HeldColumns {
    touched: Vec<Vec<u8>>,
    ids: Vec<Vec<u8>>,
    versions: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    view_counts: Vec<i64>,
    release_s: Vec<Option<i64>>,
    release_ns: Vec<Option<i32>>,
    fingerprints: Vec<Option<Vec<u8>>>,
    articles: Vec<Vec<u8>>,
}

impl HeldColumns {
    fn of(held: &HashMap<ArticleId, Option<Held>>, dirty: &[ArticleId]) -> Self {
        let mut c = Self::default();
        for id in dirty {
            let bytes = id.to_bytes().to_vec();
            c.touched.push(bytes.clone());
            let Some(Some(held)) = held.get(id) else {
                continue;
            };
            let release = held.release_at.map(rows::time_columns);
            c.ids.push(bytes);
            c.versions.push(bits(held.version));
            c.hashes.push(held.content_hash.0.to_vec());
            c.view_counts.push(bits(held.view_count));
            c.release_s.push(release.map(|(s, _)| s));
            c.release_ns.push(release.map(|(_, ns)| ns));
            c.fingerprints.push(held.fingerprint.clone());
            c.articles.push(held.article.to_vec());
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.versions,
            &self.hashes,
            &self.view_counts,
            &self.release_s,
            &self.release_ns,
            &self.fingerprints,
            &self.articles,
        ]
    }
}

#[derive(Default)]
struct ConsumerColumns {
    names: Vec<String>,
    acked: Vec<i64>,
    created_s: Vec<i64>,
    created_ns: Vec<i32>,
    acked_s: Vec<Option<i64>>,
    acked_ns: Vec<Option<i32>>,
}

impl ConsumerColumns {
    fn of<'a>(consumers: impl Iterator<Item = &'a Consumer>) -> Self {
        let mut c = Self::default();
        for consumer in consumers {
            let (cs, cns) = rows::time_columns(consumer.created_at);
            let acked_at = consumer.acked_at.map(rows::time_columns);
            c.names.push(consumer.name.clone());
            c.acked.push(bits(consumer.acked_cursor));
            c.created_s.push(cs);
            c.created_ns.push(cns);
            c.acked_s.push(acked_at.map(|(s, _)| s));
            c.acked_ns.push(acked_at.map(|(_, ns)| ns));
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.names,
            &self.acked,
            &self.created_s,
            &self.created_ns,
            &self.acked_s,
            &self.acked_ns,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_counters_travel_unchanged() {
        assert_eq!(joined_tags(&["a".into(), "ب".into()]), "a\u{1f}ب");
        assert_eq!(joined_tags(&[]), "");
        assert_eq!(bits(u64::MAX) as u64, u64::MAX);
    }
}
