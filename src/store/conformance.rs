//! What every [`ArticleStore`] must do, checked on each backend: the embedded store in a fresh
//! directory, and PostgreSQL in a fresh database on the server `KHABAR_TEST_DATABASE_URL` names
//! (SKIPPED without it, a failure with `KHABAR_REQUIRE_POSTGRES=1`). Then what only PostgreSQL
//! has to show: migrations, notifications between servers, and commits whose outcome is lost.

use std::{sync::Arc, time::Duration};

use super::{
    AnyStore, ArticleStore, EventKind, IngestOutcome, ListQuery, ListedPage, PostgresConfig,
    PostgresStore, SledStore, SledStoreConfig, StoreError,
};
use crate::domain::{
    ArticleDraft, ArticleFilter, ArticleId, ArticleStatus, SourceDraft, Timestamp, TimestampDraft,
    ValidArticle,
    editorial::{CANCELED_BY_SOURCE, Editorial, PubStatus},
    embargo::{Clock, ManualClock, SystemClock},
};

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// Where a test's store lives.
enum TestStore {
    Embedded(tempfile::TempDir),
    Postgres(String),
}

impl TestStore {
    async fn open(&self) -> AnyStore {
        self.open_with_clock(Arc::new(SystemClock)).await
    }

    /// Opens the store with embargoes timed by `clock`.
    async fn open_with_clock(&self, clock: Arc<dyn Clock>) -> AnyStore {
        match self {
            Self::Embedded(dir) => AnyStore::Embedded(
                SledStore::open(&SledStoreConfig {
                    cache_capacity_bytes: 16 << 20,
                    clock,
                    ..SledStoreConfig::new(dir.path().to_owned())
                })
                .expect("open store"),
            ),
            Self::Postgres(url) => AnyStore::Postgres(
                open_postgres_with_clock(url, clock)
                    .await
                    .expect("open store"),
            ),
        }
    }
}

impl TestStore {
    /// Sets the encoding version byte of every stored fingerprint to `version`, as an earlier
    /// release of khabar would have written them (the store must be closed).
    async fn mark_fingerprints_as_encoding(&self, version: u8) -> usize {
        match self {
            Self::Embedded(dir) => {
                use super::{codec, keys, log::Log};
                let db =
                    super::sled_store::open_sled_when_released(&dir.path().join("index"), 16 << 20)
                        .expect("open the index");
                let log = Log::open(&dir.path().join("log")).expect("open the log");
                let mut marked = 0;
                for entry in db.range(keys::article_range()) {
                    let (key, value) = entry.unwrap();
                    let head = codec::decode_head(&key, &value).unwrap();
                    let payload = log.read(head.location).unwrap();
                    let codec::Record::Event(record) =
                        codec::decode_record(payload.clone(), head.location).unwrap()
                    else {
                        panic!("an article's location is its event");
                    };
                    let at = payload
                        .windows(record.fingerprint.len())
                        .position(|window| window == record.fingerprint.as_ref())
                        .expect("the fingerprint is in its record");
                    let mut earlier = payload.to_vec();
                    earlier[at] = version;
                    log.overwrite_payload(head.location, &earlier).unwrap();
                    marked += 1;
                }
                marked
            }
            Self::Postgres(url) => {
                let marked = admin_client(url)
                    .await
                    .execute(
                        "UPDATE khabar.articles \
                         SET fingerprint = overlay(fingerprint PLACING $1 FROM 1 FOR 1) \
                         WHERE fingerprint IS NOT NULL",
                        &[&&[version][..]],
                    )
                    .await
                    .unwrap();
                usize::try_from(marked).unwrap()
            }
        }
    }
}

impl TestStore {
    /// The encoding version of each fingerprint the store keeps apart from its log records
    /// (the embedded index's cache of fingerprints taken at start; every article row on
    /// PostgreSQL), in id order (the store must be closed).
    async fn kept_fingerprint_versions(&self) -> Vec<u8> {
        match self {
            Self::Embedded(dir) => {
                let db =
                    super::sled_store::open_sled_when_released(&dir.path().join("index"), 16 << 20)
                        .expect("open the index");
                let any = super::keys::fingerprint(ArticleId::from_bytes([0; 16]));
                db.scan_prefix(&any[..1])
                    .map(|entry| entry.unwrap().1[0])
                    .collect()
            }
            Self::Postgres(url) => admin_client(url)
                .await
                .query(
                    "SELECT get_byte(fingerprint, 0) FROM khabar.articles ORDER BY id",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| u8::try_from(row.get::<_, i32>(0)).unwrap())
                .collect(),
        }
    }
}

async fn open_postgres(url: &str) -> super::Result<PostgresStore> {
    open_postgres_with_clock(url, Arc::new(SystemClock)).await
}

pub(super) async fn open_postgres_with_clock(
    url: &str,
    clock: Arc<dyn Clock>,
) -> super::Result<PostgresStore> {
    let mut config = PostgresConfig::parse(url).expect("a valid URL");
    config.pool_size = 4;
    config.poll_interval = Duration::from_millis(200);
    config.clock = clock;
    PostgresStore::open(&config).await
}

/// A fresh database on the test server, or `None` after saying SKIPPED.
pub(super) async fn fresh_database(test: &str) -> Option<String> {
    let admin = match std::env::var("KHABAR_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                !std::env::var("KHABAR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1"),
                "{test}: KHABAR_REQUIRE_POSTGRES=1 but KHABAR_TEST_DATABASE_URL is not set"
            );
            eprintln!("SKIPPED {test} on PostgreSQL: KHABAR_TEST_DATABASE_URL is not set");
            return None;
        }
    };
    static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "khabar_unit_{}_{nanos}_{}",
        std::process::id(),
        CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let client = admin_client(&admin).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let mut config: tokio_postgres::Config = admin.parse().expect("a valid admin URL");
    config.dbname(&name);
    Some(config_url(&config))
}

/// A connection of the test's own (for checks and for playing a failing server).
pub(super) async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio::time::timeout(WAIT, tokio_postgres::connect(url, tokio_postgres::NoTls))
            .await
            .expect("PostgreSQL answers in time")
            .expect("connect to the test server");
    tokio::spawn(connection);
    client
}

fn config_url(config: &tokio_postgres::Config) -> String {
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
        config.get_dbname().unwrap_or("postgres")
    )
}

macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$test(super::TestStore::Embedded(dir)).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(url) = super::fresh_database(stringify!($test)).await {
                        super::$test(super::TestStore::Postgres(url)).await;
                    }
                }
            )+
        }
    };
}

on_both_backends!(
    ingest_outcomes_follow_the_natural_key_and_content,
    retraction_is_logged_once_and_blocks_reingest,
    concurrent_ingests_get_gap_free_cursors_that_survive_reopening,
    reads_and_time_searches_start_anywhere_between_index_entries,
    lists_newest_first_with_filters_and_pages,
    retracted_articles_are_listed_only_on_request,
    moving_publication_time_moves_the_listing_entry,
    // Embargo, withheld and canceled (issue 12): the same rules on every backend.
    embargoed_first_version_is_hidden_until_its_time_then_created_once,
    embargoed_new_version_keeps_the_old_one_until_released_and_can_move_or_lift,
    withheld_until_usable_and_canceled_by_the_sender,
    pending_embargoes_survive_reopening_and_passed_ones_are_released_at_open,
    // Stories (issue 11).
    fingerprints_of_an_earlier_encoding_are_taken_again_at_open,
);

pub(super) fn article(n: u32, source: &str, tags: &[&str], view_count: u64) -> ValidArticle {
    ArticleDraft {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        view_count,
        ..draft(n, source)
    }
    .validate(Timestamp::now())
    .expect("valid")
}

/// Article `n` of `source`, published `n` seconds after the seed article's day began.
fn draft(n: u32, source: &str) -> ArticleDraft {
    ArticleDraft {
        source: SourceDraft {
            id: source.into(),
            name: "الخبر".into(),
            url: String::new(),
        },
        uri: format!("https://alkhabar.example/{n}"),
        headline: format!("عنوان {n}"),
        body: "نص الخبر".into(),
        language: "ar".into(),
        published_at: Some(TimestampDraft {
            seconds: 1_467_331_200 + i64::from(n),
            nanos: 0,
        }),
        ..ArticleDraft::default()
    }
}

/// The seed article as outlet `source` published it: the same text under another address.
fn seed_copy(n: u32, source: &str) -> ValidArticle {
    let seed = include_str!("../../tests/fixtures/seed-article-ar.txt");
    let (headline, body) = seed
        .split_once("\n\n182\n\n")
        .expect("the seed's view count separates its headline from its body");
    let headline = headline.lines().last().expect("a headline");
    ArticleDraft {
        uri: format!("https://{source}.example/news/{n}"),
        headline: headline.into(),
        body: body.into(),
        ..draft(n, source)
    }
    .validate(Timestamp::now())
    .expect("valid")
}

async fn fingerprints_of_an_earlier_encoding_are_taken_again_at_open(backend: TestStore) {
    let store = backend.open().await;
    let first = store.ingest(seed_copy(1, "alkhabar")).await.unwrap().id;
    let second = store.ingest(seed_copy(2, "wire-a")).await.unwrap().id;
    drop(store);
    // Fingerprints the store cannot read, as after an upgrade that changed their encoding.
    let earlier = crate::stories::Fingerprint::ENCODING_VERSION - 1;
    assert_eq!(backend.mark_fingerprints_as_encoding(earlier).await, 2);

    let store = backend.open().await;
    let third = store.ingest(seed_copy(3, "wire-b")).await.unwrap().id;
    let linked = store
        .get(third, crate::store::View::Released)
        .await
        .unwrap()
        .story
        .expect("linked");
    assert_eq!(linked.story_id, first, "{linked:?}");
    assert!(
        [Some(first), Some(second)].contains(&linked.duplicate_of),
        "{linked:?}"
    );
    assert_eq!(linked.similarity, 1.0);
    let members: Vec<ArticleId> = store
        .story(first)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(members, [first, second, third]);
    drop(store);
    // Kept, so that the next start reads them instead of taking them again.
    let kept = backend.kept_fingerprint_versions().await;
    let version = crate::stories::Fingerprint::ENCODING_VERSION;
    let expected: &[u8] = match backend {
        // The third article's fingerprint is in its log record.
        TestStore::Embedded(_) => &[version, version],
        TestStore::Postgres(_) => &[version, version, version],
    };
    assert_eq!(kept, expected);
}

async fn ingest_outcomes_follow_the_natural_key_and_content(backend: TestStore) {
    let store = backend.open().await;

    let created = store.ingest(article(1, "alkhabar", &[], 10)).await.unwrap();
    assert_eq!(
        (created.outcome, created.version, created.cursor),
        (IngestOutcome::Created, 1, 1)
    );

    let same = store.ingest(article(1, "alkhabar", &[], 10)).await.unwrap();
    assert_eq!(
        (same.outcome, same.id, same.version, same.cursor),
        (IngestOutcome::Unchanged, created.id, 1, 1)
    );

    let counted = store.ingest(article(1, "alkhabar", &[], 11)).await.unwrap();
    assert_eq!(
        (counted.outcome, counted.version, counted.cursor),
        (IngestOutcome::CountersUpdated, 1, 1)
    );
    assert_eq!(counted.content_hash, created.content_hash);
    assert_eq!(
        store
            .get(created.id, crate::store::View::Released)
            .await
            .unwrap()
            .view_count,
        11
    );

    let changed = article(1, "alkhabar", &[], 11).edited(|c| c.body.push_str(" (محدث)"));
    let updated = store.ingest(changed).await.unwrap();
    assert_eq!(
        (updated.outcome, updated.id, updated.version, updated.cursor),
        (IngestOutcome::Updated, created.id, 2, 2)
    );
    assert_ne!(updated.content_hash, created.content_hash);

    let other_source = store.ingest(article(1, "wire-a", &[], 0)).await.unwrap();
    assert_eq!(other_source.outcome, IngestOutcome::Created);
    assert_ne!(other_source.id, created.id);

    let events = store.read_log(0, 100).await.unwrap();
    let kinds: Vec<(u64, EventKind, u64)> = events
        .iter()
        .map(|e| (e.cursor, e.kind, e.header.version))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, EventKind::Created, 1),
            (2, EventKind::Updated, 2),
            (3, EventKind::Created, 1)
        ]
    );
    assert!(
        events[1]
            .decode_article()
            .unwrap()
            .content
            .body
            .ends_with("(محدث)")
    );
}

async fn retraction_is_logged_once_and_blocks_reingest(backend: TestStore) {
    let store = backend.open().await;
    let created = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();

    let retracted = store.retract(created.id, "خطأ".into()).await.unwrap();
    assert_eq!(
        (retracted.status, retracted.version, retracted.cursor),
        (ArticleStatus::Canceled, 2, 2)
    );
    let again = store.retract(created.id, "مرة أخرى".into()).await.unwrap();
    assert_eq!(again, retracted);
    assert_eq!(*store.durable_head().borrow(), 2);

    let err = store
        .ingest(article(1, "alkhabar", &[], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Retracted(id) if id == created.id),
        "{err}"
    );

    let missing = ArticleId::from_bytes([1; 16]);
    assert!(
        matches!(store.retract(missing, "x".into()).await, Err(StoreError::NotFound(id)) if id == missing)
    );
    assert!(matches!(
        store.get(missing, crate::store::View::Released).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn concurrent_ingests_get_gap_free_cursors_that_survive_reopening(backend: TestStore) {
    let store = backend.open().await;
    let writers: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.ingest(article(n, "alkhabar", &[], 0)).await })
        })
        .collect();
    let mut cursors = Vec::new();
    for writer in writers {
        cursors.push(writer.await.unwrap().unwrap().cursor);
    }
    cursors.sort_unstable();
    assert_eq!(cursors, (1..=64).collect::<Vec<u64>>());
    drop(store);

    let reopened = backend.open().await;
    assert_eq!(*reopened.durable_head().borrow(), 64);
    let log = reopened.read_log(60, 100).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        [61, 62, 63, 64]
    );
    let next = reopened
        .ingest(article(1000, "alkhabar", &[], 0))
        .await
        .unwrap();
    assert_eq!(next.cursor, 65);
}

async fn reads_and_time_searches_start_anywhere_between_index_entries(backend: TestStore) {
    let store = backend.open().await;
    for n in 0..150 {
        store.ingest(article(n, "alkhabar", &[], 0)).await.unwrap();
    }
    drop(store);
    // Reopened, the in-memory window is empty: every read goes to the log on disk.
    let store = backend.open().await;
    let all = store.read_log(0, 1_000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        (1..=150).collect::<Vec<_>>()
    );
    for after in [0, 1, 62, 63, 64, 65, 100, 128, 129, 145, 149] {
        let cursors: Vec<u64> = store
            .read_log(after, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.cursor)
            .collect();
        let expected: Vec<u64> = (after + 1..=(after + 10).min(150)).collect();
        assert_eq!(cursors, expected, "after {after}");
    }
    assert!(store.read_log(150, 10).await.unwrap().is_empty());

    for k in [1, 2, 64, 65, 66, 100, 129, 150] {
        let time = all[k - 1].recorded_at;
        let found = store.first_cursor_at(time).await.unwrap() as usize;
        assert_eq!(all[found - 1].recorded_at, time, "time of event {k}");
        assert!(found == 1 || all[found - 2].recorded_at < time, "event {k}");
    }
    let before_all = Timestamp::new(1, 0).unwrap();
    assert_eq!(store.first_cursor_at(before_all).await.unwrap(), 1);
    let after_all = all[149].recorded_at.saturating_add_seconds(1);
    assert_eq!(store.first_cursor_at(after_all).await.unwrap(), 151);
}

async fn lists_newest_first_with_filters_and_pages(backend: TestStore) {
    let store = backend.open().await;
    for n in 0..10 {
        let source = if n % 2 == 0 { "alkhabar" } else { "wire-a" };
        let tags: &[&str] = if n % 3 == 0 { &["سوريا"] } else { &[] };
        store.ingest(article(n, source, tags, 0)).await.unwrap();
    }
    let query = ListQuery {
        page_size: 3,
        max_page_bytes: 1 << 20,
        ..ListQuery::default()
    };
    let mut headlines = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(ListQuery {
                page_token: token,
                ..query.clone()
            })
            .await
            .unwrap();
        assert!(page.articles.len() <= 3);
        headlines.extend(page.articles.iter().map(|a| a.content.headline.clone()));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..10).rev().map(|n| format!("عنوان {n}")).collect();
    assert_eq!(headlines, expected);

    let filtered = store
        .list(ListQuery {
            filter: ArticleFilter {
                source_ids: vec!["alkhabar".into()],
                tags: vec!["سوريا".into()],
                ..ArticleFilter::default()
            },
            ..query.clone()
        })
        .await
        .unwrap();
    let names: Vec<&str> = filtered
        .articles
        .iter()
        .map(|a| a.content.headline.as_str())
        .collect();
    assert_eq!(names, ["عنوان 6", "عنوان 0"]);

    let window = store
        .list(ListQuery {
            published_after: Timestamp::new(1_467_331_202, 0),
            published_before: Timestamp::new(1_467_331_205, 0),
            ..query.clone()
        })
        .await
        .unwrap();
    let names: Vec<&str> = window
        .articles
        .iter()
        .map(|a| a.content.headline.as_str())
        .collect();
    assert_eq!(names, ["عنوان 4", "عنوان 3", "عنوان 2"]);

    let first = store.list(query.clone()).await.unwrap();
    let foreign = ListQuery {
        filter: ArticleFilter {
            languages: vec!["en".into()],
            ..ArticleFilter::default()
        },
        page_token: first.next_page_token,
        ..query.clone()
    };
    assert!(matches!(
        store.list(foreign).await,
        Err(StoreError::InvalidPageToken(_))
    ));
}

async fn retracted_articles_are_listed_only_on_request(backend: TestStore) {
    let store = backend.open().await;
    let kept = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    let gone = store.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
    store.retract(gone.id, "خطأ".into()).await.unwrap();
    let query = ListQuery {
        page_size: 10,
        max_page_bytes: 1 << 20,
        ..ListQuery::default()
    };
    let ids = |page: ListedPage| page.articles.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(query.clone()).await.unwrap()), [kept.id]);
    let all = ListQuery {
        include_retracted: true,
        ..query
    };
    assert_eq!(ids(store.list(all).await.unwrap()), [gone.id, kept.id]);
}

async fn moving_publication_time_moves_the_listing_entry(backend: TestStore) {
    let store = backend.open().await;
    store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    store.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
    let moved = article(1, "alkhabar", &[], 0)
        .edited(|c| c.published_at = Timestamp::new(1_467_331_300, 0).unwrap());
    store.ingest(moved).await.unwrap();
    let page = store
        .list(ListQuery {
            page_size: 10,
            max_page_bytes: 1 << 20,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = page
        .articles
        .iter()
        .map(|a| a.content.headline.as_str())
        .collect();
    assert_eq!(names, ["عنوان 1", "عنوان 2"]);
}

/// Waits (bounded) until `store`'s durable head reaches `cursor`.
async fn head_reaches(store: &AnyStore, cursor: u64) {
    let mut head = store.durable_head();
    tokio::time::timeout(WAIT, head.wait_for(|head| *head >= cursor))
        .await
        .expect("the head moves in time")
        .expect("the store is open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let Some(url) = fresh_database("migrations").await else {
        return;
    };
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { open_postgres(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opening {
        stores.push(open.await.unwrap().expect("every server opens"));
    }
    let admin = admin_client(&url).await;
    let version: i32 = admin
        .query_one("SELECT version FROM khabar.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, super::postgres::SCHEMA_VERSION);
    drop(stores);

    admin
        .batch_execute("UPDATE khabar.schema_version SET version = 99")
        .await
        .unwrap();
    let refused = open_postgres(&url)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(matches!(refused, StoreError::Incompatible(_)), "{refused}");
    assert!(
        refused.to_string().contains("schema version 99"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_see_each_others_writes_even_when_a_notification_is_lost() {
    let Some(url) = fresh_database("notifications").await else {
        return;
    };
    let writer = TestStore::Postgres(url.clone()).open().await;
    let follower = TestStore::Postgres(url.clone()).open().await;
    writer.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    head_reaches(&follower, 1).await;
    assert_eq!(follower.read_log(0, 10).await.unwrap().len(), 1);

    // Cut every listening connection (both servers'), then write at once: the notification
    // may go to nobody, and the poll has to find the event.
    let admin = admin_client(&url).await;
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'khabar-listener'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        cut.len(),
        2,
        "each server listens on a connection of its own"
    );
    writer.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
    head_reaches(&follower, 2).await;
    let cursors: Vec<u64> = follower
        .read_log(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.cursor)
        .collect();
    assert_eq!(cursors, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_commit_is_an_unknown_outcome_and_retrying_is_safe() {
    let Some(url) = fresh_database("lost_commit").await else {
        return;
    };
    let store = TestStore::Postgres(url.clone()).open().await;
    // A deferred trigger makes COMMIT itself slow, long enough to cut the connection under it.
    let admin = admin_client(&url).await;
    admin
        .batch_execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON khabar.events \
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        )
        .await
        .unwrap();
    let ingest = {
        let store = store.clone();
        tokio::spawn(async move { store.ingest(article(1, "alkhabar", &[], 0)).await })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let cut = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query = 'COMMIT' AND state = 'active'",
                &[],
            )
            .await
            .unwrap();
        if !cut.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no COMMIT to cut");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = tokio::time::timeout(WAIT, ingest)
        .await
        .expect("answered in time")
        .unwrap()
        .expect_err("the outcome is unknown");
    assert!(matches!(error, StoreError::OutcomeUnknown(_)), "{error}");
    let status = tonic::Status::from(crate::error::Error::from(error));
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("retrying it is safe"),
        "{}",
        status.message()
    );

    // The write path reconnects; the retry stores the article exactly once.
    admin
        .batch_execute("DROP TRIGGER slow_commit ON khabar.events")
        .await
        .unwrap();
    let retried = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    let again = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(again.id, retried.id);
    assert_eq!(again.outcome, IngestOutcome::Unchanged);
    assert_eq!(store.read_log(0, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable_with_a_clear_message() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut config =
        PostgresConfig::parse(&format!("postgres://khabar@127.0.0.1:{port}/khabar")).unwrap();
    config.connection.connect_timeout(Duration::from_secs(2));
    let error = PostgresStore::open(&config).await.err().expect("refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("--database-url"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_wait_for_a_standby_was_cancelled_is_an_unknown_outcome() {
    let Some(url) = fresh_database("cancelled_wait").await else {
        return;
    };
    let store = TestStore::Postgres(url.clone()).open().await;
    // PostgreSQL reports a COMMIT whose wait for a synchronous standby was cancelled as a success
    // with this warning. A deferred trigger sends the same warning during COMMIT, as a server
    // without a standby to wait for cannot.
    let admin = admin_client(&url).await;
    admin
        .batch_execute(
            "CREATE FUNCTION cancelled_wait() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE WARNING 'canceling wait for synchronous replication due to user \
               request'; RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER cancelled_wait AFTER INSERT ON khabar.events \
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cancelled_wait();",
        )
        .await
        .unwrap();
    let error = store
        .ingest(article(1, "alkhabar", &[], 0))
        .await
        .expect_err("not acknowledged");
    assert!(matches!(error, StoreError::OutcomeUnknown(_)), "{error}");
    assert!(error.to_string().contains("standby"), "{error}");

    // It was committed on this server: the retry finds it.
    admin
        .batch_execute("DROP TRIGGER cancelled_wait ON khabar.events")
        .await
        .unwrap();
    let retried = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(retried.outcome, IngestOutcome::Unchanged);
    assert_eq!(retried.cursor, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_database_is_migrated_with_canonical_keys_the_older_article_keeping_a_shared_one()
 {
    let Some(url) = fresh_database("schema-1 migration").await else {
        return;
    };
    let store = open_postgres(&url).await.expect("opens");
    let mut receipts = Vec::new();
    for n in 1..=3 {
        receipts.push(store.ingest(article(n, "alkhabar", &[], 0)).await.unwrap());
    }
    drop(store);

    // The database as a khabar of schema 1 left it: no story columns or indexes, the natural key
    // on the address as sent. The second article was stored under another form of the first
    // one's address, which schema 1 kept apart.
    let admin = admin_client(&url).await;
    admin
        .batch_execute(
            "DROP INDEX khabar.articles_natural_key;
             DROP INDEX khabar.articles_by_story;
             DROP INDEX khabar.articles_by_cursor;
             ALTER TABLE khabar.articles
                 DROP COLUMN canonical_uri, DROP COLUMN story_id, DROP COLUMN fingerprint;
             ALTER TABLE khabar.events DROP COLUMN starts_story;
             UPDATE khabar.articles SET uri = 'https://www.alkhabar.example/1/?utm_source=rss'
                 WHERE uri = 'https://alkhabar.example/2';
             ALTER TABLE khabar.articles
                 ADD CONSTRAINT articles_natural_key UNIQUE (source_id, uri);
             UPDATE khabar.schema_version SET version = 1;",
        )
        .await
        .unwrap();

    let store = open_postgres(&url)
        .await
        .expect("a schema-1 database is migrated");
    let version: i32 = admin
        .query_one("SELECT version FROM khabar.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, super::postgres::SCHEMA_VERSION);
    let keys: Vec<(Vec<u8>, Option<String>)> = admin
        .query(
            "SELECT id, canonical_uri FROM khabar.articles ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let canonical: Vec<Option<&str>> = keys.iter().map(|(_, uri)| uri.as_deref()).collect();
    assert_eq!(
        canonical,
        [
            Some("https://alkhabar.example/1"),
            None,
            Some("https://alkhabar.example/3")
        ],
        "the older article keeps the shared key, the newer one none"
    );

    // Every article is still there by id, and every address form of the first one now names it.
    for receipt in &receipts {
        assert_eq!(
            store
                .get(receipt.id, crate::store::View::Released)
                .await
                .unwrap()
                .id,
            receipt.id
        );
    }
    let again = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(
        (again.id, again.outcome),
        (receipts[0].id, IngestOutcome::Unchanged)
    );
    let third = store.ingest(article(3, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(
        (third.id, third.outcome),
        (receipts[2].id, IngestOutcome::Unchanged)
    );
}

// ---- Embargo, withheld and canceled (issue 12) ----
//
// Run on both backends with a manual clock: nothing sleeps, and every wait is bounded.

/// The manual clock of an embargo test, standing at a whole second.
fn embargo_clock() -> (ManualClock, Timestamp) {
    let t0 = Timestamp::new(Timestamp::now().seconds(), 0).expect("a valid time");
    (ManualClock::new(t0), t0)
}

/// `article` with its editorial metadata changed by `edit` (and hashed again).
fn with_editorial(article: ValidArticle, edit: impl FnOnce(&mut Editorial)) -> ValidArticle {
    article.edited(|c| edit(&mut c.editorial))
}

fn embargoed(article: ValidArticle, until: Timestamp) -> ValidArticle {
    with_editorial(article, |e| e.embargoed = Some(until))
}

/// The (cursor, kind, article, version) of every event in the log.
async fn events(store: &AnyStore) -> Vec<(u64, EventKind, ArticleId, u64)> {
    store
        .read_log(0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.cursor, e.kind, e.header.id, e.header.version))
        .collect()
}

fn listing(view: crate::store::View) -> ListQuery {
    ListQuery {
        view,
        page_size: 100,
        max_page_bytes: 1 << 20,
        ..ListQuery::default()
    }
}

async fn listed(
    store: &AnyStore,
    view: crate::store::View,
) -> Vec<(ArticleId, u64, ArticleStatus)> {
    store
        .list(listing(view))
        .await
        .unwrap()
        .articles
        .iter()
        .map(|a| (a.id, a.version, a.status))
        .collect()
}

async fn embargoed_first_version_is_hidden_until_its_time_then_created_once(backend: TestStore) {
    use crate::store::View::{IncludingHeld, Released};
    let (clock, t0) = embargo_clock();
    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    let until = t0.saturating_add_seconds(60);

    let held = store
        .ingest(embargoed(article(1, "alkhabar", &[], 0), until))
        .await
        .unwrap();
    assert_eq!(
        (held.outcome, held.version, held.cursor),
        (IngestOutcome::Held, 1, 0)
    );
    assert!(matches!(
        store.get(held.id, Released).await,
        Err(StoreError::NotFound(id)) if id == held.id
    ));
    let editors = store.get(held.id, IncludingHeld).await.unwrap();
    assert_eq!(
        (
            editors.status,
            editors.version,
            editors.content.editorial.embargoed
        ),
        (ArticleStatus::Withheld, 1, Some(until))
    );
    assert_eq!(
        *store.durable_head().borrow(),
        0,
        "no event for a held version"
    );
    assert!(listed(&store, Released).await.is_empty());
    assert_eq!(
        listed(&store, IncludingHeld).await,
        [(held.id, 1, ArticleStatus::Withheld)]
    );

    // The same content again changes nothing; other articles go on as usual.
    let again = store
        .ingest(embargoed(article(1, "alkhabar", &[], 0), until))
        .await
        .unwrap();
    assert_eq!(
        (again.outcome, again.id, again.version, again.cursor),
        (IngestOutcome::Unchanged, held.id, 1, 0)
    );
    let other = store.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!((other.outcome, other.cursor), (IngestOutcome::Created, 1));

    // One second early: still held (the next write is decided after any release would be).
    clock.advance_seconds(59);
    let marker = store.ingest(article(3, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(marker.cursor, 2);
    assert!(matches!(
        store.get(held.id, Released).await,
        Err(StoreError::NotFound(_))
    ));

    clock.advance_seconds(1);
    head_reaches(&store, 3).await;
    let log = store.read_log(0, 100).await.unwrap();
    let release = &log[2];
    assert_eq!(
        (
            release.cursor,
            release.kind,
            release.header.id,
            release.header.version
        ),
        (3, EventKind::Created, held.id, 1)
    );
    assert!(release.recorded_at >= until, "recorded when released");
    let sent = release.decode_article().unwrap();
    assert_eq!((sent.status, sent.cursor), (ArticleStatus::Usable, 3));
    let read = store.get(held.id, Released).await.unwrap();
    assert_eq!(
        (read.status, read.version, read.cursor),
        (ArticleStatus::Usable, 1, 3)
    );
    assert_eq!(
        read.ingested_at, editors.ingested_at,
        "ingested when it was stored"
    );
    assert_eq!(store.get(held.id, IncludingHeld).await.unwrap(), read);
    assert_eq!(listed(&store, Released).await.len(), 3);

    // Exactly once: later writes and clock moves add no second event.
    clock.advance_seconds(3_600);
    let last = store.ingest(article(4, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(last.cursor, 4);
    let cursors: Vec<u64> = events(&store).await.iter().map(|e| e.0).collect();
    assert_eq!(cursors, [1, 2, 3, 4], "gap-free");
    let releases = events(&store)
        .await
        .iter()
        .filter(|e| e.2 == held.id)
        .count();
    assert_eq!(releases, 1);
}

async fn embargoed_new_version_keeps_the_old_one_until_released_and_can_move_or_lift(
    backend: TestStore,
) {
    use crate::store::View::{IncludingHeld, Released};
    let (clock, t0) = embargo_clock();
    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    let at = |seconds| t0.saturating_add_seconds(seconds);
    let version = |n: u32| article(1, "alkhabar", &[], 0).edited(|c| c.body = format!("نص {n}"));

    let first = store.ingest(version(1)).await.unwrap();
    assert_eq!((first.outcome, first.cursor), (IngestOutcome::Created, 1));
    let second = store.ingest(embargoed(version(2), at(60))).await.unwrap();
    assert_eq!(
        (second.outcome, second.version, second.cursor),
        (IngestOutcome::Held, 2, 1)
    );
    assert_eq!(
        store.get(first.id, Released).await.unwrap().content.body,
        "نص 1"
    );
    let editors = store.get(first.id, IncludingHeld).await.unwrap();
    assert_eq!(
        (
            editors.status,
            editors.version,
            editors.content.body.as_str()
        ),
        (ArticleStatus::Withheld, 2, "نص 2")
    );
    assert_eq!(
        listed(&store, Released).await,
        [(first.id, 1, ArticleStatus::Usable)]
    );
    assert_eq!(
        listed(&store, IncludingHeld).await,
        [(first.id, 2, ArticleStatus::Withheld)]
    );

    // Moved later: nothing at the old time.
    let later = store.ingest(embargoed(version(3), at(120))).await.unwrap();
    assert_eq!((later.outcome, later.version), (IngestOutcome::Held, 3));
    clock.set(at(60));
    let marker = store.ingest(article(50, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(
        marker.cursor, 2,
        "the moved embargo released nothing at its old time"
    );

    // Moved earlier: released then, as an update, with its own version number.
    let earlier = store.ingest(embargoed(version(4), at(90))).await.unwrap();
    assert_eq!((earlier.outcome, earlier.version), (IngestOutcome::Held, 4));
    clock.set(at(90));
    head_reaches(&store, 3).await;
    assert_eq!(
        events(&store).await[2],
        (3, EventKind::Updated, first.id, 4)
    );
    let read = store.get(first.id, Released).await.unwrap();
    assert_eq!(
        (
            read.version,
            read.cursor,
            read.status,
            read.content.body.as_str()
        ),
        (4, 3, ArticleStatus::Usable, "نص 4")
    );

    // Lifted: a version without an embargo is published now and the pending one dropped.
    let pending = store
        .ingest(embargoed(version(5), at(1_000)))
        .await
        .unwrap();
    assert_eq!(pending.outcome, IngestOutcome::Held);
    let lifted = store.ingest(version(6)).await.unwrap();
    assert_eq!(
        (lifted.outcome, lifted.version, lifted.cursor),
        (IngestOutcome::Updated, 6, 4)
    );
    assert_eq!(store.get(first.id, IncludingHeld).await.unwrap().version, 6);
    clock.set(at(2_000));
    let marker = store.ingest(article(51, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(marker.cursor, 5, "the dropped embargo is never released");
    assert_eq!(
        events(&store).await,
        [
            (1, EventKind::Created, first.id, 1),
            (2, EventKind::Created, events(&store).await[1].2, 1),
            (3, EventKind::Updated, first.id, 4),
            (4, EventKind::Updated, first.id, 6),
            (5, EventKind::Created, marker.id, 1),
        ]
    );
    assert_eq!(
        listed(&store, IncludingHeld).await.len(),
        3,
        "one entry per article"
    );
}

async fn withheld_until_usable_and_canceled_by_the_sender(backend: TestStore) {
    use crate::store::View::{IncludingHeld, Released};
    let (clock, t0) = embargo_clock();
    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    let withheld = |a| with_editorial(a, |e| e.pubstatus = PubStatus::Withheld);
    let canceled = |a, note: &str| {
        with_editorial(a, |e| {
            e.pubstatus = PubStatus::Canceled;
            e.ed_note = note.to_owned();
        })
    };

    // Withheld without a time, until a later version says usable.
    let held = store
        .ingest(withheld(article(1, "alkhabar", &[], 0)))
        .await
        .unwrap();
    assert_eq!((held.outcome, held.cursor), (IngestOutcome::Held, 0));
    clock.advance_seconds(86_400);
    assert!(matches!(
        store.get(held.id, Released).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get(held.id, IncludingHeld).await.unwrap().status,
        ArticleStatus::Withheld
    );
    let usable = store.ingest(article(1, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(
        (usable.outcome, usable.id, usable.version, usable.cursor),
        (IngestOutcome::Created, held.id, 2, 1)
    );

    // Canceled after release: retracted as RetractArticle does, with the note as reason.
    let answer = store
        .ingest(canceled(article(1, "alkhabar", &[], 0), "خبر غير دقيق"))
        .await
        .unwrap();
    assert_eq!(
        (answer.outcome, answer.cursor),
        (IngestOutcome::Canceled, 2)
    );
    let retracted = store.get(held.id, Released).await.unwrap();
    assert_eq!(retracted.status, ArticleStatus::Canceled);
    assert_eq!(
        retracted.retraction.map(|r| r.reason).as_deref(),
        Some("خبر غير دقيق")
    );
    let canceled_again = store
        .ingest(canceled(article(1, "alkhabar", &[], 0), "خبر غير دقيق"))
        .await
        .unwrap();
    assert_eq!(canceled_again.outcome, IngestOutcome::Unchanged);
    let other = store.ingest(article(2, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(other.cursor, 3);
    let answer = store
        .ingest(canceled(article(2, "alkhabar", &[], 0), ""))
        .await
        .unwrap();
    assert_eq!(answer.outcome, IngestOutcome::Canceled);
    let log = store.read_log(0, 100).await.unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(
        (log[3].kind, log[3].header.id),
        (EventKind::Retracted, other.id)
    );
    assert_eq!(
        log[3]
            .decode_article()
            .unwrap()
            .retraction
            .map(|r| r.reason)
            .as_deref(),
        Some(CANCELED_BY_SOURCE)
    );

    // Canceled before any release: retracted without an event, never to come back.
    let until = clock.now().saturating_add_seconds(60);
    let secret = store
        .ingest(embargoed(article(3, "alkhabar", &[], 0), until))
        .await
        .unwrap();
    let answer = store
        .ingest(canceled(
            embargoed(article(3, "alkhabar", &[], 0), until),
            "",
        ))
        .await
        .unwrap();
    assert_eq!(
        (answer.outcome, answer.id, answer.cursor),
        (IngestOutcome::Canceled, secret.id, 0)
    );
    for view in [Released, IncludingHeld] {
        assert!(matches!(
            store.get(secret.id, view).await,
            Err(StoreError::NotFound(_))
        ));
    }
    assert!(matches!(
        store.ingest(article(3, "alkhabar", &[], 0)).await,
        Err(StoreError::Retracted(id)) if id == secret.id
    ));
    // Readers never saw it, so it is not found for a retraction either, as for reads.
    assert!(matches!(
        store.retract(secret.id, "x".into()).await,
        Err(StoreError::NotFound(id)) if id == secret.id
    ));

    // RetractArticle of a held, never-released article: no event, and no release later.
    let pending = store
        .ingest(embargoed(article(4, "alkhabar", &[], 0), until))
        .await
        .unwrap();
    let retract = store.retract(pending.id, "سحب".into()).await.unwrap();
    assert_eq!(
        (retract.status, retract.cursor),
        (ArticleStatus::Canceled, 0)
    );
    clock.advance_seconds(120);
    let marker = store.ingest(article(5, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(marker.cursor, 5, "no event for never-released retractions");
    assert!(matches!(
        store.get(pending.id, Released).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.ingest(article(4, "alkhabar", &[], 0)).await,
        Err(StoreError::Retracted(_))
    ));
    let _ = t0;
}

async fn pending_embargoes_survive_reopening_and_passed_ones_are_released_at_open(
    backend: TestStore,
) {
    use crate::store::View::{IncludingHeld, Released};
    let (clock, t0) = embargo_clock();
    let at = |seconds| t0.saturating_add_seconds(seconds);
    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    let late = store
        .ingest(embargoed(article(1, "alkhabar", &[], 0), at(60)))
        .await
        .unwrap();
    let early = store
        .ingest(embargoed(article(2, "alkhabar", &[], 0), at(30)))
        .await
        .unwrap();
    let far = store
        .ingest(embargoed(article(3, "alkhabar", &[], 0), at(86_400)))
        .await
        .unwrap();
    drop(store);

    // Not due yet: still held after a restart.
    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    assert!(matches!(
        store.get(late.id, Released).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get(late.id, IncludingHeld).await.unwrap().status,
        ArticleStatus::Withheld
    );
    assert_eq!(*store.durable_head().borrow(), 0);
    drop(store);

    // Both passed while the store was closed: released at open, in embargo order, once.
    clock.set(at(100));
    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    head_reaches(&store, 2).await;
    assert_eq!(
        events(&store).await,
        [
            (1, EventKind::Created, early.id, 1),
            (2, EventKind::Created, late.id, 1),
        ]
    );
    store.get(late.id, Released).await.unwrap();
    drop(store);

    let store = backend.open_with_clock(Arc::new(clock.clone())).await;
    let marker = store.ingest(article(9, "alkhabar", &[], 0)).await.unwrap();
    assert_eq!(
        marker.cursor, 3,
        "released once, not again at the next open"
    );
    assert!(matches!(
        store.get(far.id, Released).await,
        Err(StoreError::NotFound(_))
    ));
    clock.set(at(86_400));
    head_reaches(&store, 4).await;
    assert_eq!(events(&store).await[3], (4, EventKind::Created, far.id, 1));
}
