//! Graceful shutdown of the real binary on SIGTERM: health turns NOT_SERVING, open calls finish
//! or are dropped after the grace period, feeds end with UNAVAILABLE, nothing acknowledged is
//! lost, and the process exits 0.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{ChildServer, WAIT, seed_variant};
use khabar::pb::khabar::v1::{
    self as pb, article_service_client::ArticleServiceClient,
    feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    subscribe_request::Start,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_ingest_load_loses_no_acknowledged_article_and_exits_0() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(data_dir.path());
    let channel = server.channel().await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let mut ingest = IngestServiceClient::new(channel.clone());
            let acked = acked.clone();
            tokio::spawn(async move {
                for n in 0..5_000 {
                    match ingest.ingest(seed_variant(client * 10_000 + n)).await {
                        Ok(response) => acked.lock().unwrap().push(response.into_inner().id),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load makes progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.terminate();
    for client in clients {
        tokio::time::timeout(WAIT, client)
            .await
            .expect("clients stop")
            .unwrap();
    }
    let status = server.wait_exit(WAIT);
    assert_eq!(
        status.code(),
        Some(0),
        "khabar exits 0 after SIGTERM: {status:?}"
    );

    let acked = acked.lock().unwrap().clone();
    let server = ChildServer::start(data_dir.path());
    let mut articles = ArticleServiceClient::new(server.channel().await);
    for id in &acked {
        articles
            .get_article(pb::GetArticleRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("acknowledged article {id} lost: {status}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_do_not_hold_shutdown_past_the_grace_period() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start_with(data_dir.path(), &["--shutdown-grace-ms", "300"]);
    let channel = server.channel().await;

    // Health watchers see the server stop serving.
    let mut health = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = health.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // An ingest stream the client never closes, and an open feed.
    let (requests_tx, requests_rx) = tokio::sync::mpsc::channel(4);
    requests_tx.send(seed_variant(1)).await.unwrap();
    let mut responses = IngestServiceClient::new(channel.clone())
        .ingest_stream(tokio_stream::wrappers::ReceiverStream::new(requests_rx))
        .await
        .unwrap()
        .into_inner();
    let acked = responses.next().await.unwrap().unwrap();
    assert_eq!(acked.outcome(), pb::IngestOutcome::Created);
    let mut feed = FeedServiceClient::new(channel.clone())
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(feed.next().await.unwrap().unwrap().cursor, 1);

    server.terminate();
    let not_serving = tokio::time::timeout(WAIT, health.next())
        .await
        .expect("health update")
        .unwrap()
        .unwrap();
    assert_eq!(not_serving.status, ServingStatus::NotServing as i32);
    let ended = loop {
        match tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("the feed ends")
        {
            Some(Ok(_checkpoint)) => continue,
            Some(Err(status)) => break status,
            None => panic!("the feed ended without a status"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(requests_tx);

    let server = ChildServer::start(data_dir.path());
    let got = ArticleServiceClient::new(server.channel().await)
        .get_article(pb::GetArticleRequest {
            id: acked.id,
            ..Default::default()
        })
        .await
        .expect("the article acknowledged on the stream survived");
    assert_eq!(got.into_inner().version, 1);
}
