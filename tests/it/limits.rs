//! Resource limits under abuse: what one connection can hold open, what a subscriber that stops
//! reading costs, and the memory of a thousand idle subscribers under a live ingest load.

use std::time::Duration;

use khabar::pb::khabar::v1::{
    self as pb, feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    subscribe_request::Start,
};
use tokio_stream::StreamExt;

use crate::common::{ChildServer, TestServer, WAIT, seed_variant};

/// Peak (`VmHWM`) or current (`VmRSS`) resident memory of a process, in MiB.
fn memory_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .expect("memory field")
}

/// Ingests `count` articles from `first` on one stream with 32 in flight.
async fn ingest_load(channel: tonic::transport::Channel, first: usize, count: usize) {
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    let mut ingest = IngestServiceClient::new(channel);
    let sender = tokio::spawn(async move {
        for n in first..first + count {
            if tx.send(seed_variant(n)).await.is_err() {
                break;
            }
        }
    });
    let mut responses = ingest
        .ingest_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    for _ in 0..count {
        let response = tokio::time::timeout(WAIT, responses.next())
            .await
            .expect("answer in time")
            .expect("stream open")
            .expect("answer");
        assert_eq!(response.outcome(), pb::IngestOutcome::Created);
    }
    sender.await.unwrap();
}

#[tokio::test]
async fn one_connection_holds_no_more_calls_than_the_stream_limit() {
    let server = TestServer::start_with(tempfile::tempdir().unwrap(), None, |config| {
        config.max_concurrent_streams = 8;
    })
    .await;
    let mut feeds = FeedServiceClient::new(server.channel().await);
    let subscribe = |feeds: &mut FeedServiceClient<_>| {
        let mut feeds = feeds.clone();
        async move {
            feeds
                .subscribe(pb::SubscribeRequest::default())
                .await
                .map(|r| r.into_inner())
        }
    };
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(subscribe(&mut feeds).await.expect("within the limit"));
    }
    assert_eq!(server.feed_stats.live_subscriptions(), 8);
    // A ninth call on the same connection waits for a stream to end...
    let ninth = tokio::time::timeout(Duration::from_secs(1), subscribe(&mut feeds)).await;
    assert!(ninth.is_err(), "the ninth call was not let in");
    assert_eq!(server.feed_stats.live_subscriptions(), 8);
    // ...and gets in once one does; another connection is not held back meanwhile.
    let mut other = FeedServiceClient::new(server.channel().await);
    tokio::time::timeout(WAIT, subscribe(&mut other))
        .await
        .expect("another connection in time")
        .expect("another connection");
    drop(open.pop());
    tokio::time::timeout(WAIT, subscribe(&mut feeds))
        .await
        .expect("let in once a stream ended")
        .expect("subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_stop_reading_cost_bounded_memory() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(data_dir.path());
    let channel = server.channel().await;
    // 3,000 articles, about 15 MB of events: a server that buffered the whole backlog for each
    // of 50 stalled subscribers would hold 750 MB.
    ingest_load(channel.clone(), 0, 3_000).await;
    let pid = server.child.id();
    let before = memory_mib(pid, "VmRSS");
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut feeds = FeedServiceClient::new(server.channel().await);
        let feed = feeds
            .subscribe(pb::SubscribeRequest {
                start: Some(Start::FromBeginning(true)),
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        // Held, never read.
        stalled.push((feeds, feed));
    }
    // Let the subscriptions fill every buffer they can: until the server's memory stops growing
    // for a second (at most 20 s).
    let mut last = memory_mib(pid, "VmRSS");
    let mut steady_since = std::time::Instant::now();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline && steady_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = memory_mib(pid, "VmRSS");
        if now > last {
            last = now;
            steady_since = std::time::Instant::now();
        }
    }
    let grown = last.saturating_sub(before);
    eprintln!("50 stalled subscribers: server memory {before} -> {last} MiB");
    assert!(
        grown < 128,
        "50 stalled subscribers grew the server by {grown} MiB"
    );
    // The server still serves, and a stalled subscriber that reads again gets its events in order.
    ingest_load(channel, 3_000, 10).await;
    let (_, feed) = &mut stalled[0];
    let mut cursor = 0;
    while cursor < 100 {
        let event = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("event in time")
            .expect("feed open")
            .expect("event");
        if event.kind() != pb::EventKind::Checkpoint {
            cursor += 1;
            assert_eq!(event.cursor, cursor);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_subscribers_under_a_live_load_stay_under_256_mib() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(data_dir.path());
    let mut feeds = Vec::new();
    // 1,000 subscriptions over 8 connections (the default limit is 256 streams a connection),
    // filtered so that they stay idle but for checkpoints.
    for connection in 0..8 {
        let client = FeedServiceClient::new(server.channel().await);
        for _ in 0..125 {
            let feed = client
                .clone()
                .subscribe(pb::SubscribeRequest {
                    start: Some(Start::FromNow(true)),
                    filter: Some(pb::FeedFilter {
                        source_ids: vec!["nobody".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("subscription on connection {connection}: {e}"))
                .into_inner();
            feeds.push(feed);
        }
    }
    ingest_load(server.channel().await, 0, 2_000).await;
    let peak = memory_mib(server.child.id(), "VmHWM");
    eprintln!("1,000 idle subscribers and 2,000 articles ingested: peak RSS {peak} MiB");
    assert!(peak < 256, "peak RSS {peak} MiB");
    // Every subscription is still open: each one's next message is a checkpoint.
    for feed in feeds.iter_mut().step_by(100) {
        let message = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("checkpoint in time")
            .expect("feed open")
            .expect("checkpoint");
        assert_eq!(message.kind(), pb::EventKind::Checkpoint);
    }
}
