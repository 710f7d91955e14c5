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
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, Statement, types::ToSql};
use tracing::{debug, warn};
use ulid::Generator;

use super::{
    Connector, Head,
    errors::{commit_error, store_error},
    rows,
};
use crate::{
    domain::{
        Article, ArticleContent, ArticleId, ArticleStatus, StoryLink, Timestamp, ValidArticle,
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
}

const LOCK_HEAD: &str =
    "SELECT head, recorded_s, recorded_ns FROM khabar.log_head WHERE only_row FOR UPDATE";
const BY_NATURAL_KEY: &str = "SELECT a.id, a.source_id, a.uri, a.language, a.tags, \
     a.published_s, a.published_ns, a.version, a.status, a.content_hash, a.view_count, \
     a.ingested_s, a.ingested_ns, a.first_ingested_s, a.first_ingested_ns, a.cursor, NULL::bytea, \
     a.canonical_uri, a.story_id, a.fingerprint , a.urgency_rank, a.genres, a.expires_s, a.expires_ns \
     FROM khabar.articles a JOIN unnest($1::text[], $2::text[]) AS k(source_id, uri) \
     ON a.source_id = k.source_id AND a.canonical_uri = k.uri";
const BY_ID: &str = "SELECT a.id, a.source_id, a.uri, a.language, a.tags, \
     a.published_s, a.published_ns, a.version, a.status, a.content_hash, a.view_count, \
     a.ingested_s, a.ingested_ns, a.first_ingested_s, a.first_ingested_ns, a.cursor, e.article, \
     a.canonical_uri, a.story_id, a.fingerprint , a.urgency_rank, a.genres, a.expires_s, a.expires_ns \
     FROM khabar.articles a JOIN khabar.events e ON e.cursor = a.cursor WHERE a.id = ANY($1)";
/// The articles changed after cursor $1 (through other servers), in cursor order of their
/// current version, with the content of live ones that have no fingerprint.
const STORIES_SINCE: &str = "SELECT a.id, a.cursor, a.published_s, a.published_ns, a.status, \
     a.story_id, a.fingerprint, \
     CASE WHEN a.fingerprint IS NULL AND a.status <> 3 THEN e.article END \
     FROM khabar.articles a JOIN khabar.events e ON e.cursor = a.cursor \
     WHERE a.cursor > $1 AND a.published_s >= $2 ORDER BY a.cursor";
const NEWEST_PUBLISHED: &str = "SELECT max(published_s) FROM khabar.articles";
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
     first_ingested_s, first_ingested_ns, cursor, canonical_uri, story_id, fingerprint, \
     urgency_rank, string_to_array(genres, E'\\x1f'), expires_s, expires_ns \
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
                .query(&statements.stories_since, &[&bits(applied), &cutoff])
                .await
                .map_err(e)?;
            for row in &rows {
                restore_row(&mut index, row)?;
            }
        }
        Ok(index)
    }
}

/// Files one article row of `STORIES_SINCE` in the index as a rebuild does.
fn restore_row(index: &mut StoryIndex, row: &tokio_postgres::Row) -> Result<()> {
    let what = "article of a story";
    let id = rows::id_at(row, 0, what)?;
    let cursor = rows::u64_at(row, 1, what)?;
    let published_at = rows::time_at(row, 2, what)?;
    let status: i16 = rows::get(row, 4, what)?;
    if status == rows::status_code(ArticleStatus::Canceled) {
        index.remove(id);
        index.advance(published_at);
        return Ok(());
    }
    let story_id = rows::id_at(row, 5, what)?;
    let stored: Option<Vec<u8>> = rows::get(row, 6, what)?;
    let fingerprint = match stored.and_then(|bytes| Fingerprint::from_bytes(&bytes).ok()) {
        Some(fingerprint) => fingerprint,
        None => {
            let bytes: Option<Vec<u8>> = rows::get(row, 7, what)?;
            let bytes = bytes.ok_or_else(|| StoreError::Corrupt {
                key: format!("article {id}"),
                reason: "neither its fingerprint nor its content was read".into(),
            })?;
            let article = rows::decode_article(cursor, bytes.into())?;
            Fingerprint::of_article(&article.content.headline, &article.content.body)
        }
    };
    index.restore(id, published_at, &fingerprint, story_id);
    Ok(())
}

/// Runs the write path until every command sender is gone, answering everything sent.
pub async fn run(
    connector: Connector,
    mut commands: mpsc::Receiver<Command>,
    durable_head: Arc<watch::Sender<u64>>,
    mut stories: Option<Stories>,
) {
    let mut connection: Option<Connection> = None;
    let mut ids = Generator::new();
    while let Some(first) = commands.recv().await {
        let mut group = vec![first];
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
                    fail_all(group, &e);
                    continue;
                }
            };
        }
        let Some(open) = connection.as_mut() else {
            continue;
        };
        let count = group.len();
        match commit_group(open, &mut ids, stories.as_mut(), group).await {
            Ok((head, answers)) => {
                durable_head.send_if_modified(|current| {
                    let advanced = head > *current;
                    *current = (*current).max(head);
                    advanced
                });
                debug!(commands = count, head, "group committed");
                answers.into_iter().for_each(|answer| answer.deliver(count));
            }
            Err((error, answers)) => {
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

/// Commits one group; returns the head after it and the answers to deliver.
async fn commit_group(
    connection: &mut Connection,
    ids: &mut Generator,
    mut stories: Option<&mut Stories>,
    group: Vec<Command>,
) -> std::result::Result<(u64, Vec<Answer>), Failed> {
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
    let id_bytes: Vec<Vec<u8>> = names.ids.iter().map(|id| id.to_bytes().to_vec()).collect();
    let consumer_names: Vec<&str> = names.consumers.iter().map(String::as_str).collect();
    let key_params: [&(dyn ToSql + Sync); 2] = [&key_sources, &key_uris];
    let id_params: [&(dyn ToSql + Sync); 1] = [&id_bytes];
    let consumer_params: [&(dyn ToSql + Sync); 1] = [&consumer_names];
    // Pipelined: the server runs them in order, the reads only once the head is locked.
    let read = tokio::try_join!(
        transaction.query_one(&statements.lock_head, &[]),
        transaction.query(&statements.by_natural_key, &key_params),
        transaction.query(&statements.by_id, &id_params),
        transaction.query(&statements.consumers, &consumer_params),
    );
    let (head_row, by_key, by_id, consumer_rows) = match read {
        Ok(rows) => rows,
        Err(e) => {
            let answers = group.into_iter().map(Answer::pending).collect();
            return Err((store_error(&e), answers));
        }
    };
    let loaded = (|| -> Result<Group> {
        let head = rows::u64_at(&head_row, 0, "log head")?;
        let recorded_at = rows::time_at(&head_row, 1, "log head")?;
        let mut state = Group::new(head, recorded_at);
        for row in by_key.iter().chain(&by_id) {
            state.load_article(rows::head(row)?, rows::content(row)?);
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
    Ok((state.head, answers))
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
                    if keys.insert(key.clone()) {
                        names.keys.push(key);
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
}

impl Group {
    fn new(head: u64, recorded_at: Timestamp) -> Self {
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

    fn load_article(&mut self, head: Head, content: Option<Bytes>) {
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

    fn mark_consumer(&mut self, name: &str) {
        if !self.dirty_consumers.iter().any(|n| n == name) {
            self.dirty_consumers.push(name.to_owned());
        }
    }

    /// Event times never go backwards, even if the clock does or another server's runs ahead.
    fn now(&mut self) -> Timestamp {
        self.recorded_at = self.recorded_at.max(Timestamp::now());
        self.recorded_at
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
            let now = self.now();
            // The generator keeps ids increasing within a millisecond; it fails only after 2^80
            // ids in one, where a random id is still unique in practice.
            let id = ArticleId::from_ulid(ids.generate().unwrap_or_else(|_| ulid::Ulid::new()));
            let (story, fingerprint) = self.place(id, new.content(), fingerprint.as_ref(), false);
            let article = Article {
                id,
                content: new.into_content(),
                view_count,
                version: 1,
                status: ArticleStatus::Usable,
                content_hash,
                ingested_at: now,
                first_ingested_at: now,
                cursor: self.head + 1,
                retraction: None,
                canonical_uri: key.1.clone(),
                story,
            };
            let receipt = receipt(&article, IngestOutcome::Created);
            self.natural_keys.insert(key, id);
            self.log_event(EventKind::Created, article, now, fingerprint);
            return Ok(receipt);
        };
        let (head, _) = self.heads.get_mut(&id).ok_or_else(|| StoreError::Corrupt {
            key: format!("natural key ({}, {})", key.0, key.1),
            reason: format!("points to missing article {id}"),
        })?;
        if head.status == ArticleStatus::Canceled {
            return Err(StoreError::Retracted(id));
        }
        if head.content_hash == content_hash {
            let outcome = if head.view_count == view_count {
                IngestOutcome::Unchanged
            } else {
                head.view_count = view_count;
                IngestOutcome::CountersUpdated
            };
            let receipt = IngestReceipt {
                id,
                version: head.version,
                outcome,
                content_hash: head.content_hash,
                cursor: head.cursor,
                group_size: 0,
            };
            if outcome == IngestOutcome::CountersUpdated {
                self.mark_dirty(id);
            }
            return Ok(receipt);
        }
        let (version, first_ingested_at, status) =
            (head.version + 1, head.first_ingested_at, head.status);
        let canonical = head.canonical_uri.clone().unwrap_or(key.1);
        let now = self.now();
        let (story, fingerprint) = self.place(id, new.content(), fingerprint.as_ref(), true);
        let article = Article {
            id,
            content: new.into_content(),
            view_count,
            version,
            status,
            content_hash,
            ingested_at: now,
            first_ingested_at,
            cursor: self.head + 1,
            retraction: None,
            canonical_uri: canonical,
            story,
        };
        let receipt = receipt(&article, IngestOutcome::Updated);
        self.log_event(EventKind::Updated, article, now, fingerprint);
        Ok(receipt)
    }

    fn retract(&mut self, id: ArticleId, reason: String) -> Result<Article> {
        let (head, content) = self.heads.get(&id).ok_or(StoreError::NotFound(id))?;
        let bytes = content.clone().ok_or_else(|| StoreError::Corrupt {
            key: format!("article {id}"),
            reason: "its content was not read".into(),
        })?;
        let mut article = rows::decode_article(head.cursor, bytes)?;
        article.view_count = head.view_count;
        if article.status == ArticleStatus::Canceled {
            return Ok(article);
        }
        let now = self.now();
        article.retract(reason, now, self.head + 1);
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
