//! A failing disk, injected through the store's fault seam: the failing write and every later
//! one are refused with an actionable status, nothing unsynced is acknowledged, what was durable
//! stays readable and in the feeds, and a restart serves every acknowledged write.

use std::{io::ErrorKind, sync::Arc};

use khabar::{
    pb::khabar::v1::{self as pb, IngestOutcome},
    store::{DiskFaults, DiskOperation},
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::common::{TestServer, WAIT, create_consumer, feed_from_beginning, seed_variant};

async fn start(data_dir: tempfile::TempDir, faults: &Arc<DiskFaults>) -> TestServer {
    let faults = faults.clone();
    TestServer::start_with(data_dir, None, move |config| config.disk_faults = faults).await
}

/// Cursors of the first `count` events of a feed from the beginning; and nothing after them.
async fn feed_cursors(server: &TestServer, count: usize) -> Vec<u64> {
    let (events, mut feed) = feed_from_beginning(server.feed_client().await, count).await;
    // Nothing past them: the next message is a checkpoint at the same cursor.
    let next = tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("checkpoint in time")
        .expect("feed open")
        .expect("checkpoint");
    assert_eq!(
        (next.kind(), next.cursor),
        (pb::EventKind::Checkpoint, count as u64),
        "no event past the durable ones"
    );
    events.iter().map(|e| e.cursor).collect()
}

const INGEST: &str = "khabar.v1.IngestService";
const ARTICLES: &str = "khabar.v1.ArticleService";
const FEEDS: &str = "khabar.v1.FeedService";

async fn health(server: &TestServer, service: &str) -> ServingStatus {
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

/// Waits (bounded) until `service` reports `expected`.
async fn wait_for_health(server: &TestServer, service: &str, expected: ServingStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = health(server, service).await;
        if status == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service:?} still {status:?}, expected {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs the scenario with `operation` failing after the first five articles are durable, and
/// returns the status the sixth ingest got.
async fn failing(operation: DiskOperation, kind: ErrorKind) -> tonic::Status {
    let faults = Arc::new(DiskFaults::default());
    let server = start(tempfile::tempdir().unwrap(), &faults).await;
    let mut ingest = server.ingest_client().await;
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        acknowledged.push(ingest.ingest(seed_variant(n)).await.unwrap().into_inner());
    }
    let mut feeds = server.feed_client().await;
    create_consumer(&mut feeds, "indexer").await;
    for service in ["", INGEST, ARTICLES, FEEDS] {
        assert_eq!(health(&server, service).await, ServingStatus::Serving);
    }

    faults.fail(operation, 0, kind);
    let refused = ingest
        .ingest(seed_variant(5))
        .await
        .expect_err("the failing write is not acknowledged");
    // Every later write is refused the same way, whatever it is.
    let later = ingest.ingest(seed_variant(6)).await.unwrap_err();
    assert_eq!(
        (later.code(), later.message()),
        (refused.code(), refused.message())
    );
    let ack = feeds
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(ack.code(), refused.code());
    let retract = server
        .articles_client()
        .await
        .retract_article(pb::RetractArticleRequest {
            id: acknowledged[0].id.clone(),
            reason: "خطأ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(retract.code(), refused.code());

    // Health tells the orchestrator to restart: the server and its ingest are NOT_SERVING,
    // reads and feeds still serve.
    wait_for_health(&server, "", ServingStatus::NotServing).await;
    assert_eq!(health(&server, INGEST).await, ServingStatus::NotServing);
    assert_eq!(health(&server, ARTICLES).await, ServingStatus::Serving);
    assert_eq!(health(&server, FEEDS).await, ServingStatus::Serving);

    // What was durable stays readable and in the feeds.
    let mut articles = server.articles_client().await;
    for ack in &acknowledged {
        let article = articles
            .get_article(pb::GetArticleRequest {
                id: ack.id.clone(),
                ..Default::default()
            })
            .await
            .expect("durable article readable")
            .into_inner();
        assert_eq!(article.version, 1);
    }
    let listed = articles
        .list_articles(pb::ListArticlesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.articles.len(), 5);
    assert_eq!(feed_cursors(&server, 5).await, [1, 2, 3, 4, 5]);

    // After a restart on a working disk everything acknowledged is there, and the refused
    // writes can be sent again (ingest is idempotent by natural key).
    let data_dir = server.stop().await;
    faults.clear();
    let server = start(data_dir, &faults).await;
    for service in ["", INGEST] {
        assert_eq!(health(&server, service).await, ServingStatus::Serving);
    }
    let mut articles = server.articles_client().await;
    for ack in &acknowledged {
        articles
            .get_article(pb::GetArticleRequest {
                id: ack.id.clone(),
                ..Default::default()
            })
            .await
            .expect("acknowledged article after the restart");
    }
    let mut ingest = server.ingest_client().await;
    for n in 5..7 {
        let retried = ingest.ingest(seed_variant(n)).await.unwrap().into_inner();
        assert!(
            matches!(
                retried.outcome(),
                IngestOutcome::Created | IngestOutcome::Unchanged
            ),
            "{retried:?}"
        );
    }
    let head = feed_cursors(&server, 7).await;
    assert_eq!(head, (1..=7).collect::<Vec<u64>>(), "cursors stay gap-free");
    server.stop().await;
    refused
}

#[tokio::test]
async fn a_failed_log_sync_stops_writes_and_keeps_what_was_durable() {
    let refused = failing(DiskOperation::LogSync, ErrorKind::Other).await;
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("syncing the log"), "{refused:?}");
    assert!(refused.message().contains("restart khabar"), "{refused:?}");
}

#[tokio::test]
async fn a_failed_log_write_stops_writes_and_keeps_what_was_durable() {
    let refused = failing(DiskOperation::LogWrite, ErrorKind::Other).await;
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(
        refused.message().contains("writing to the log"),
        "{refused:?}"
    );
    assert!(refused.message().contains("restart khabar"), "{refused:?}");
}

#[tokio::test]
async fn a_failed_index_update_stops_writes_and_the_log_keeps_the_write() {
    let refused = failing(DiskOperation::IndexWrite, ErrorKind::Other).await;
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(
        refused.message().contains("updating the index"),
        "{refused:?}"
    );
    assert!(refused.message().contains("retrying"), "{refused:?}");
}

#[tokio::test]
async fn a_full_disk_answers_resource_exhausted_naming_the_disk() {
    let refused = failing(DiskOperation::LogWrite, ErrorKind::StorageFull).await;
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("disk holding the data directory is full"),
        "{refused:?}"
    );
    assert!(refused.message().contains("free space"), "{refused:?}");
}
