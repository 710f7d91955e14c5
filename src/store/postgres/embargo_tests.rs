//! Held versions on PostgreSQL: embargoes, withheld and canceled versions, releases by the
//! timer of one or several servers, at start, and the migration that adds them. Each test runs
//! in a fresh database on the server `KHABAR_TEST_DATABASE_URL` names (SKIPPED without it, a
//! failure with `KHABAR_REQUIRE_POSTGRES=1`), on a manual clock: no test sleeps.

use std::{sync::Arc, time::Duration};

use super::{PostgresStore, SCHEMA_VERSION};
use crate::{
    domain::{
        ArticleDraft, ArticleId, ArticleStatus, SourceDraft, Timestamp, TimestampDraft,
        ValidArticle,
        editorial::{CANCELED_BY_SOURCE, EditorialDraft, PubStatus},
        embargo::ManualClock,
    },
    store::{ArticleStore, EventKind, IngestOutcome, ListQuery, StoreError, View},
};

use crate::store::conformance::{admin_client, fresh_database, open_postgres_with_clock};

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// The test's clock: a whole second near the wall clock, so that embargoes validate.
fn clock() -> ManualClock {
    ManualClock::new(Timestamp::new(Timestamp::now().seconds(), 0).expect("a valid time"))
}

async fn open(url: &str, clock: &ManualClock) -> PostgresStore {
    tokio::time::timeout(WAIT, open_postgres_with_clock(url, Arc::new(clock.clone())))
        .await
        .expect("opens in time")
        .expect("opens")
}

/// Article `n` of one source; `edit` sets its editorial fields.
fn article(n: u32, headline: &str, edit: impl FnOnce(&mut EditorialDraft)) -> ValidArticle {
    let mut editorial = EditorialDraft::default();
    edit(&mut editorial);
    ArticleDraft {
        source: SourceDraft {
            id: "alkhabar".into(),
            name: "الخبر".into(),
            url: String::new(),
        },
        uri: format!("https://alkhabar.example/{n}"),
        headline: headline.into(),
        body: "نص الخبر".into(),
        language: "ar".into(),
        published_at: Some(TimestampDraft {
            seconds: 1_467_331_200 + i64::from(n),
            nanos: 0,
        }),
        editorial,
        ..ArticleDraft::default()
    }
    .validate(Timestamp::now())
    .expect("valid")
}

fn embargoed_until(clock: &ManualClock, seconds: i64) -> impl FnOnce(&mut EditorialDraft) {
    let until = crate::domain::embargo::Clock::now(clock).saturating_add_seconds(seconds);
    move |e: &mut EditorialDraft| {
        e.embargoed = Some(TimestampDraft {
            seconds: until.seconds(),
            nanos: 0,
        })
    }
}

fn status(pubstatus: PubStatus, note: &str) -> impl FnOnce(&mut EditorialDraft) + '_ {
    move |e: &mut EditorialDraft| {
        e.pubstatus = pubstatus.number();
        e.ed_note = note.into();
    }
}

fn usable(_: &mut EditorialDraft) {}

async fn head_reaches(store: &PostgresStore, cursor: u64) {
    let mut head = store.durable_head();
    tokio::time::timeout(WAIT, head.wait_for(|head| *head >= cursor))
        .await
        .expect("the head moves in time")
        .expect("the store is open");
}

/// Every event in the log, as (kind, article, version).
async fn events(store: &PostgresStore) -> Vec<(EventKind, ArticleId, u64)> {
    let head = store.head().await.unwrap();
    head_reaches(store, head).await;
    store
        .read_log(0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.header.id, e.header.version))
        .collect()
}

/// Runs a write group (an unrelated article) on `store`, which releases whatever is due
/// first; returns its cursor.
async fn another_write(store: &PostgresStore, n: u32) -> u64 {
    let receipt = store.ingest(article(n, "خبر آخر", usable)).await.unwrap();
    assert_eq!(receipt.outcome, IngestOutcome::Created);
    receipt.cursor
}

fn listed(view: View) -> ListQuery {
    ListQuery {
        view,
        page_size: 100,
        max_page_bytes: usize::MAX,
        include_retracted: true,
        ..ListQuery::default()
    }
}

async fn listed_ids(store: &PostgresStore, view: View) -> Vec<(ArticleId, u64, ArticleStatus)> {
    store
        .list(listed(view))
        .await
        .unwrap()
        .articles
        .iter()
        .map(|a| (a.id, a.version, a.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embargoed_first_version_is_hidden_until_its_time_then_created_once() {
    let Some(url) = fresh_database("embargoed first version").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let held = store
        .ingest(article(1, "عنوان", embargoed_until(&clock, 60)))
        .await
        .unwrap();
    assert_eq!(
        (held.outcome, held.version, held.cursor),
        (IngestOutcome::Held, 1, 0)
    );
    assert!(matches!(
        store.get(held.id, View::Released).await,
        Err(StoreError::NotFound(_))
    ));
    let seen = store.get(held.id, View::IncludingHeld).await.unwrap();
    assert_eq!(
        (seen.version, seen.status, seen.story),
        (1, ArticleStatus::Withheld, None)
    );
    assert!(listed_ids(&store, View::Released).await.is_empty());
    assert_eq!(
        listed_ids(&store, View::IncludingHeld).await,
        [(held.id, 1, ArticleStatus::Withheld)]
    );
    // The same version again changes nothing; a new view count is kept with the held version.
    let again = store
        .ingest(article(1, "عنوان", embargoed_until(&clock, 60)))
        .await
        .unwrap();
    assert_eq!(
        (again.outcome, again.version),
        (IngestOutcome::Unchanged, 1)
    );
    assert_eq!(store.head().await.unwrap(), 0, "no event while held");

    clock.advance_seconds(59);
    let other = another_write(&store, 2).await;
    assert_eq!(other, 1, "one second early, nothing is released");

    clock.advance_seconds(1);
    head_reaches(&store, 2).await;
    assert_eq!(
        events(&store).await,
        [
            (EventKind::Created, other_id(&store, 2).await, 1),
            (EventKind::Created, held.id, 1),
        ]
    );
    let released = store.get(held.id, View::Released).await.unwrap();
    assert_eq!(
        (released.version, released.status, released.cursor),
        (1, ArticleStatus::Usable, 2)
    );
    assert!(released.story.is_some(), "filed in its story at release");
    assert_eq!(released.ingested_at, seen.ingested_at);
    // Released once: later groups find nothing due.
    another_write(&store, 3).await;
    assert_eq!(store.head().await.unwrap(), 3);
}

async fn other_id(store: &PostgresStore, n: u32) -> ArticleId {
    store
        .ingest(article(n, "خبر آخر", usable))
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_new_version_keeps_the_released_one_readable_until_it_is_updated() {
    let Some(url) = fresh_database("held new version").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let first = store.ingest(article(1, "الأول", usable)).await.unwrap();
    let held = store
        .ingest(article(1, "الثاني", embargoed_until(&clock, 30)))
        .await
        .unwrap();
    assert_eq!(
        (held.id, held.outcome, held.version, held.cursor),
        (first.id, IngestOutcome::Held, 2, 1)
    );
    let readers = store.get(first.id, View::Released).await.unwrap();
    assert_eq!(
        (readers.version, readers.content.headline.as_str()),
        (1, "الأول")
    );
    let editors = store.get(first.id, View::IncludingHeld).await.unwrap();
    assert_eq!(
        (
            editors.version,
            editors.status,
            editors.content.headline.as_str()
        ),
        (2, ArticleStatus::Withheld, "الثاني")
    );
    assert_eq!(
        listed_ids(&store, View::Released).await,
        [(first.id, 1, ArticleStatus::Usable)]
    );
    assert_eq!(
        listed_ids(&store, View::IncludingHeld).await,
        [(first.id, 2, ArticleStatus::Withheld)]
    );

    clock.advance_seconds(30);
    head_reaches(&store, 2).await;
    assert_eq!(
        events(&store).await,
        [
            (EventKind::Created, first.id, 1),
            (EventKind::Updated, first.id, 2)
        ]
    );
    let released = store.get(first.id, View::Released).await.unwrap();
    assert_eq!(
        (released.version, released.status, released.cursor),
        (2, ArticleStatus::Usable, 2)
    );
    assert_eq!(released.content.headline, "الثاني");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embargo_can_be_moved_and_lifted() {
    let Some(url) = fresh_database("embargo moved").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let held = store
        .ingest(article(1, "عنوان", embargoed_until(&clock, 60)))
        .await
        .unwrap();
    let moved = store
        .ingest(article(1, "عنوان", embargoed_until(&clock, 120)))
        .await
        .unwrap();
    assert_eq!(
        (moved.id, moved.outcome, moved.version),
        (held.id, IngestOutcome::Held, 2)
    );
    clock.advance_seconds(60);
    assert_eq!(
        another_write(&store, 2).await,
        1,
        "the old time no longer counts"
    );
    assert!(store.get(held.id, View::Released).await.is_err());

    // Lifted: the next version is published at once, and nothing is released later.
    let lifted = store.ingest(article(1, "عنوان", usable)).await.unwrap();
    assert_eq!(
        (lifted.id, lifted.outcome, lifted.version, lifted.cursor),
        (held.id, IngestOutcome::Created, 3, 2)
    );
    clock.advance_seconds(120);
    assert_eq!(another_write(&store, 3).await, 3);
    let log = events(&store).await;
    assert_eq!(
        log.iter().filter(|(_, id, _)| *id == held.id).count(),
        1,
        "{log:?}"
    );
    assert_eq!(
        store
            .get(held.id, View::IncludingHeld)
            .await
            .unwrap()
            .version,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_version_waits_for_a_usable_one() {
    let Some(url) = fresh_database("withheld").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let held = store
        .ingest(article(1, "عنوان", status(PubStatus::Withheld, "")))
        .await
        .unwrap();
    assert_eq!((held.outcome, held.version), (IngestOutcome::Held, 1));
    clock.advance_seconds(365 * 24 * 3600);
    assert_eq!(another_write(&store, 2).await, 1, "no time releases it");
    assert!(store.get(held.id, View::Released).await.is_err());
    assert_eq!(
        store
            .get(held.id, View::IncludingHeld)
            .await
            .unwrap()
            .status,
        ArticleStatus::Withheld
    );

    let usable = store.ingest(article(1, "عنوان", usable)).await.unwrap();
    assert_eq!(
        (usable.id, usable.outcome, usable.version, usable.cursor),
        (held.id, IngestOutcome::Created, 2, 2)
    );
    assert_eq!(
        store.get(held.id, View::Released).await.unwrap().status,
        ArticleStatus::Usable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_version_retracts_a_released_article_with_its_reason() {
    let Some(url) = fresh_database("canceled released").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let first = store.ingest(article(1, "عنوان", usable)).await.unwrap();
    // A held version waiting meanwhile is dropped with the article.
    store
        .ingest(article(1, "تحديث", embargoed_until(&clock, 30)))
        .await
        .unwrap();
    let canceled = store
        .ingest(article(
            1,
            "عنوان",
            status(PubStatus::Canceled, "خبر غير صحيح"),
        ))
        .await
        .unwrap();
    assert_eq!(
        (
            canceled.id,
            canceled.outcome,
            canceled.version,
            canceled.cursor
        ),
        (first.id, IngestOutcome::Canceled, 3, 2)
    );
    let retracted = store.get(first.id, View::Released).await.unwrap();
    assert_eq!(retracted.status, ArticleStatus::Canceled);
    assert_eq!(
        retracted.retraction.map(|r| r.reason).as_deref(),
        Some("خبر غير صحيح")
    );
    clock.advance_seconds(60);
    another_write(&store, 2).await;
    assert_eq!(
        events(&store).await[..2],
        [
            (EventKind::Created, first.id, 1),
            (EventKind::Retracted, first.id, 3)
        ]
    );
    assert_eq!(
        store.head().await.unwrap(),
        3,
        "the dropped version is never released"
    );
    // Canceled again: nothing to do; anything else is refused.
    let again = store
        .ingest(article(1, "عنوان", status(PubStatus::Canceled, "")))
        .await
        .unwrap();
    assert_eq!(again.outcome, IngestOutcome::Unchanged);
    assert!(matches!(
        store.ingest(article(1, "جديد", usable)).await,
        Err(StoreError::Retracted(_))
    ));

    // Without a note the reason is the default one.
    store.ingest(article(5, "عنوان", usable)).await.unwrap();
    let canceled = store
        .ingest(article(5, "عنوان", status(PubStatus::Canceled, "")))
        .await
        .unwrap();
    let retracted = store.get(canceled.id, View::Released).await.unwrap();
    assert_eq!(
        retracted.retraction.map(|r| r.reason).as_deref(),
        Some(CANCELED_BY_SOURCE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_never_released_is_retracted_without_an_event() {
    let Some(url) = fresh_database("canceled never released").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    // Held, then canceled by its sender.
    let held = store
        .ingest(article(1, "عنوان", embargoed_until(&clock, 30)))
        .await
        .unwrap();
    let canceled = store
        .ingest(article(1, "عنوان", status(PubStatus::Canceled, "")))
        .await
        .unwrap();
    assert_eq!(
        (
            canceled.id,
            canceled.outcome,
            canceled.version,
            canceled.cursor
        ),
        (held.id, IngestOutcome::Canceled, 2, 0)
    );
    // Canceled in its first version.
    let first = store
        .ingest(article(2, "عنوان", status(PubStatus::Canceled, "")))
        .await
        .unwrap();
    assert_eq!(
        (first.outcome, first.version, first.cursor),
        (IngestOutcome::Canceled, 1, 0)
    );
    // Held, then retracted by an editor: the answer is the held version, retracted.
    let withheld = store
        .ingest(article(3, "عنوان", status(PubStatus::Withheld, "")))
        .await
        .unwrap();
    let answer = store
        .retract(withheld.id, "سحب".into())
        .await
        .expect("a held article can be retracted");
    assert_eq!(
        (answer.id, answer.status, answer.cursor),
        (withheld.id, ArticleStatus::Canceled, 0)
    );

    clock.advance_seconds(60);
    assert_eq!(
        another_write(&store, 9).await,
        1,
        "no event for any of them"
    );
    for id in [held.id, first.id, withheld.id] {
        for view in [View::Released, View::IncludingHeld] {
            assert!(
                matches!(store.get(id, view).await, Err(StoreError::NotFound(_))),
                "{view:?}"
            );
        }
    }
    assert_eq!(listed_ids(&store, View::IncludingHeld).await.len(), 1);
    for n in 1..=3 {
        assert!(matches!(
            store.ingest(article(n, "جديد", usable)).await,
            Err(StoreError::Retracted(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_release_an_embargo_once() {
    let Some(url) = fresh_database("two servers").await else {
        return;
    };
    let clock = clock();
    let one = open(&url, &clock).await;
    let two = open(&url, &clock).await;
    let mut held = Vec::new();
    for n in 1..=5 {
        let receipt = one
            .ingest(article(
                n,
                "عنوان",
                embargoed_until(&clock, 10 + i64::from(n % 2)),
            ))
            .await
            .unwrap();
        held.push(receipt.id);
    }
    // Stored through the other server, and earlier than the first's.
    let early = two
        .ingest(article(6, "عنوان", embargoed_until(&clock, 5)))
        .await
        .unwrap();
    clock.advance_seconds(11);
    head_reaches(&one, 6).await;
    head_reaches(&two, 6).await;
    // Both timers ran; a write on each shows nothing more was due.
    another_write(&one, 7).await;
    another_write(&two, 8).await;
    let log = events(&one).await;
    assert_eq!(log.len(), 8, "{log:?}");
    assert_eq!(log[0], (EventKind::Created, early.id, 1), "earliest first");
    // Due at the same time: by article id.
    let mut at_10: Vec<ArticleId> = [&held[1], &held[3]].into_iter().copied().collect();
    let mut at_11: Vec<ArticleId> = [&held[0], &held[2], &held[4]]
        .into_iter()
        .copied()
        .collect();
    at_10.sort();
    at_11.sort();
    let released: Vec<ArticleId> = log[1..6].iter().map(|(_, id, _)| *id).collect();
    assert_eq!(released, [at_10, at_11].concat());
    assert_eq!(events(&two).await, log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embargo_that_passed_while_no_server_ran_is_released_at_start() {
    let Some(url) = fresh_database("release at start").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let held = store
        .ingest(article(1, "عنوان", embargoed_until(&clock, 30)))
        .await
        .unwrap();
    store.close(WAIT).await;

    clock.advance_seconds(3_600);
    let store = open(&url, &clock).await;
    let released = store.get(held.id, View::Released).await.expect("released");
    assert_eq!((released.version, released.cursor), (1, 1));
    assert_eq!(events(&store).await, [(EventKind::Created, held.id, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_2_database_is_migrated_and_holds_versions() {
    let Some(url) = fresh_database("schema-2 migration").await else {
        return;
    };
    let clock = clock();
    let store = open(&url, &clock).await;
    let first = store.ingest(article(1, "عنوان", usable)).await.unwrap();
    store.close(WAIT).await;

    // The database as a khabar of schema 2 left it.
    let admin = admin_client(&url).await;
    admin
        .batch_execute(
            "DROP TABLE khabar.held;
             ALTER TABLE khabar.articles ALTER COLUMN cursor SET NOT NULL;
             DROP INDEX khabar.articles_by_urgency;
             ALTER TABLE khabar.articles DROP COLUMN urgency_rank, DROP COLUMN genres,
                 DROP COLUMN expires_s, DROP COLUMN expires_ns;
             UPDATE khabar.schema_version SET version = 2;",
        )
        .await
        .unwrap();

    let store = open(&url, &clock).await;
    let version: i32 = admin
        .query_one("SELECT version FROM khabar.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(
        store.get(first.id, View::Released).await.unwrap().version,
        1
    );
    let held = store
        .ingest(article(2, "عنوان", embargoed_until(&clock, 30)))
        .await
        .unwrap();
    assert_eq!(held.outcome, IngestOutcome::Held);
    clock.advance_seconds(30);
    head_reaches(&store, 2).await;
    assert_eq!(store.get(held.id, View::Released).await.unwrap().cursor, 2);
}
