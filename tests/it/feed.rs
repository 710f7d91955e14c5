//! Feeds end to end: catch-up, live tail, filters, checkpoints, durable consumers, slow and
//! departing subscribers, many subscribers, shutdown.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::common::{Backend, HEARTBEAT, TestServer, WAIT, seed_variant};
use khabar::pb::khabar::v1::{
    self as pb, EventKind, feed_service_client::FeedServiceClient, subscribe_request::Start,
};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming, transport::Channel};

type Feed = Streaming<pb::FeedEvent>;

async fn subscribe(client: &mut FeedServiceClient<Channel>, request: pb::SubscribeRequest) -> Feed {
    client
        .subscribe(request)
        .await
        .expect("subscribe")
        .into_inner()
}

fn start(start: Start) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        start: Some(start),
        ..Default::default()
    }
}

/// The next message, checkpoint or event.
async fn next_message(feed: &mut Feed) -> pb::FeedEvent {
    tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("a feed message in time")
        .expect("the feed is open")
        .expect("no error")
}

/// The next article event, skipping checkpoints.
async fn next_event(feed: &mut Feed) -> pb::FeedEvent {
    loop {
        let message = next_message(feed).await;
        if message.kind() != EventKind::Checkpoint {
            return message;
        }
    }
}

async fn ingest_all(
    server: &TestServer,
    requests: Vec<pb::IngestRequest>,
) -> Vec<pb::IngestResponse> {
    let mut ingest = server.ingest_client().await;
    ingest
        .ingest_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.expect("ingest"))
        .collect()
        .await
}

fn variants(range: std::ops::Range<usize>) -> Vec<pb::IngestRequest> {
    range.map(seed_variant).collect()
}

async fn subscribers_joining_during_concurrent_ingest_get_every_event_once_in_order(
    backend: Backend,
) {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 2_500;
    const TOTAL: u64 = (PRODUCERS * PER_PRODUCER) as u64;
    let server = TestServer::start_on(&backend).await;
    let latest_ack = Arc::new(AtomicU64::new(0));

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut client = server.ingest_client().await;
        let latest_ack = latest_ack.clone();
        producers.push(tokio::spawn(async move {
            let requests = (0..PER_PRODUCER).map(move |i| seed_variant(p * PER_PRODUCER + i));
            let mut responses = client
                .ingest_stream(tokio_stream::iter(requests))
                .await
                .unwrap()
                .into_inner();
            while let Some(response) = responses.next().await {
                let response = response.unwrap();
                assert_eq!(response.outcome(), pb::IngestOutcome::Created);
                latest_ack.fetch_max(response.cursor, Ordering::Relaxed);
            }
        }));
    }

    // Subscribers join at different points of the live load: most right after the latest
    // acknowledged cursor (so their catch-up hands over to the live tail mid-load), one from
    // the beginning, one from now.
    let mut subscribers = Vec::new();
    for n in 0..8u64 {
        // Join points follow the load's progress: subscriber n joins once n/10 of it is acked.
        let deadline = tokio::time::Instant::now() + WAIT;
        while latest_ack.load(Ordering::Relaxed) < n * TOTAL / 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "ingest makes progress"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut client = server.feed_client().await;
        let (request, first_expected) = match n {
            0 => (start(Start::FromBeginning(true)), Some(1)),
            7 => (start(Start::FromNow(true)), None),
            _ => {
                let after = latest_ack.load(Ordering::Relaxed);
                (start(Start::AfterCursor(after)), Some(after + 1))
            }
        };
        let mut feed = subscribe(&mut client, request).await;
        subscribers.push(tokio::spawn(async move {
            let mut seen: Vec<(u64, String, u64)> = Vec::new();
            loop {
                let event = next_event(&mut feed).await;
                let article = event.article.expect("events carry the article");
                seen.push((event.cursor, article.id, article.version));
                if event.cursor == TOTAL {
                    break;
                }
            }
            (first_expected, seen)
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }

    // The log itself, read once from the beginning after the load.
    let mut reference_feed = subscribe(
        &mut server.feed_client().await,
        start(Start::FromBeginning(true)),
    )
    .await;
    let mut log = HashMap::new();
    for cursor in 1..=TOTAL {
        let event = next_event(&mut reference_feed).await;
        assert_eq!(event.cursor, cursor);
        assert_eq!(event.kind(), EventKind::Created);
        log.insert(cursor, event.article.unwrap().id);
    }

    let mut joined_mid_load = 0;
    for subscriber in subscribers {
        let (first_expected, seen) = tokio::time::timeout(WAIT * 3, subscriber)
            .await
            .unwrap()
            .unwrap();
        joined_mid_load +=
            usize::from(first_expected.is_some_and(|first| first > 1 && first < TOTAL));
        let first = seen[0].0;
        if let Some(expected) = first_expected {
            assert_eq!(
                first, expected,
                "delivery starts right after the requested cursor"
            );
        }
        let cursors: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(
            cursors,
            (first..=TOTAL).collect::<Vec<u64>>(),
            "every event once, in order, no gap"
        );
        for (cursor, id, version) in &seen {
            assert_eq!(
                &log[cursor], id,
                "cursor {cursor} carries the logged article"
            );
            assert_eq!(*version, 1);
        }
    }
    assert!(
        joined_mid_load > 0,
        "no subscriber joined while ingest was running"
    );
    server.stop().await;
}

async fn resume_after_cursor_and_durable_consumer_across_restart(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    ingest_all(&server, variants(0..10)).await;
    let mut feeds = server.feed_client().await;

    let mut feed = subscribe(
        &mut feeds,
        pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            consumer: "search-indexer".into(),
            ..Default::default()
        },
    )
    .await;
    for cursor in 1..=4 {
        assert_eq!(next_event(&mut feed).await.cursor, cursor);
    }
    drop(feed);
    let consumer = feeds
        .ack(pb::AckRequest {
            consumer: "search-indexer".into(),
            cursor: 4,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (consumer.acked_cursor, consumer.head_cursor, consumer.lag),
        (4, 10, 6)
    );
    // Acknowledgements only move forward.
    let older = feeds
        .ack(pb::AckRequest {
            consumer: "search-indexer".into(),
            cursor: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(older.acked_cursor, 4);

    let server = server.restart().await;
    ingest_all(&server, variants(10..12)).await;
    let mut feeds = server.feed_client().await;

    let consumer = feeds
        .get_consumer(pb::GetConsumerRequest {
            name: "search-indexer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (consumer.acked_cursor, consumer.head_cursor, consumer.lag),
        (4, 12, 8)
    );
    assert!(consumer.created_at.is_some() && consumer.acked_at.is_some());

    // The consumer resumes after its acknowledged cursor; the start option is ignored.
    let mut resumed = subscribe(
        &mut feeds,
        pb::SubscribeRequest {
            start: Some(Start::FromNow(true)),
            consumer: "search-indexer".into(),
            ..Default::default()
        },
    )
    .await;
    for cursor in 5..=12 {
        assert_eq!(next_event(&mut resumed).await.cursor, cursor);
    }

    let mut after = subscribe(&mut feeds, start(Start::AfterCursor(7))).await;
    assert_eq!(next_event(&mut after).await.cursor, 8);

    // A new consumer without a start option begins at the head.
    let mut fresh = subscribe(
        &mut feeds,
        pb::SubscribeRequest {
            consumer: "archiver".into(),
            ..Default::default()
        },
    )
    .await;
    ingest_all(&server, variants(12..13)).await;
    assert_eq!(next_event(&mut fresh).await.cursor, 13);

    let names: Vec<String> = feeds
        .list_consumers(pb::ListConsumersRequest {})
        .await
        .unwrap()
        .into_inner()
        .consumers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["archiver", "search-indexer"]);

    feeds
        .delete_consumer(pb::DeleteConsumerRequest {
            name: "archiver".into(),
        })
        .await
        .unwrap();
    let gone = feeds
        .get_consumer(pb::GetConsumerRequest {
            name: "archiver".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    drop((resumed, after, fresh));
    server.stop().await;
}

async fn filtered_subscription_gets_matches_and_checkpoints(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let requests: Vec<pb::IngestRequest> = (0..20)
        .map(|n| {
            let mut request = seed_variant(n);
            let article = request.article.as_mut().unwrap();
            article.source.as_mut().unwrap().id =
                if n % 2 == 0 { "alkhabar" } else { "wire-a" }.into();
            request
        })
        .collect();
    let acks = ingest_all(&server, requests).await;
    let mut feeds = server.feed_client().await;

    let mut feed = subscribe(
        &mut feeds,
        pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            filter: Some(pb::FeedFilter {
                source_ids: vec!["wire-a".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    for expected in (2..=20).step_by(2) {
        let event = next_event(&mut feed).await;
        assert_eq!(event.cursor, expected);
        assert_eq!(event.article.unwrap().source.unwrap().id, "wire-a");
    }
    // Idle: a checkpoint reports that everything up to the head was examined.
    let checkpoint = next_message(&mut feed).await;
    assert_eq!(checkpoint.kind(), EventKind::Checkpoint);
    assert_eq!(checkpoint.cursor, 20);
    assert!(checkpoint.article.is_none());

    // A filter that matches nothing still sees progress as non-matching events arrive.
    let mut nothing = subscribe(
        &mut feeds,
        pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            filter: Some(pb::FeedFilter {
                tags: vec!["لا-يوجد".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let first = next_message(&mut nothing).await;
    assert_eq!((first.kind(), first.cursor), (EventKind::Checkpoint, 20));
    ingest_all(&server, variants(100..103)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = next_message(&mut nothing).await;
        assert_eq!(message.kind(), EventKind::Checkpoint, "nothing matches");
        if message.cursor == 23 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
    }

    // Kinds and languages.
    let mut retractions = subscribe(
        &mut feeds,
        pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            filter: Some(pb::FeedFilter {
                kinds: vec![EventKind::Retracted as i32],
                languages: vec!["AR".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let mut articles = server.articles_client().await;
    articles
        .retract_article(pb::RetractArticleRequest {
            id: acks[3].id.clone(),
            reason: "خطأ".into(),
        })
        .await
        .unwrap();
    let event = next_event(&mut retractions).await;
    assert_eq!((event.kind(), event.cursor), (EventKind::Retracted, 24));
    let article = event.article.unwrap();
    assert_eq!(article.id, acks[3].id);
    assert_eq!(article.status(), pb::ArticleStatus::Canceled);
    server.stop().await;
}

async fn a_subscriber_that_stops_reading_then_reads_everything(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut feeds = server.feed_client().await;
    let mut stalled = subscribe(&mut feeds, start(Start::FromNow(true))).await;
    // Far more than the subscription buffers: ingest must not wait for the stalled reader. A
    // writer held back by it would wait forever; the bound only has to tell that from 2,000
    // writes on a loaded machine (PostgreSQL's took more than 20 s there once).
    let acks = tokio::time::timeout(WAIT * 6, ingest_all(&server, variants(0..2_000)))
        .await
        .expect("ingest is not held back by a subscriber that does not read");
    assert_eq!(acks.len(), 2_000);
    tokio::time::sleep(HEARTBEAT * 3).await;
    for cursor in 1..=2_000 {
        assert_eq!(next_event(&mut stalled).await.cursor, cursor);
    }
    server.stop().await;
}

async fn two_hundred_concurrent_subscribers(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let channels = [
        server.channel().await,
        server.channel().await,
        server.channel().await,
        server.channel().await,
    ];
    let mut feeds = Vec::new();
    for n in 0..200 {
        let mut client = FeedServiceClient::new(channels[n % channels.len()].clone());
        feeds.push(subscribe(&mut client, start(Start::FromNow(true))).await);
    }
    assert_eq!(server.feed_stats.live_subscriptions(), 200);
    ingest_all(&server, variants(0..20)).await;
    let readers: Vec<_> = feeds
        .into_iter()
        .map(|mut feed| {
            tokio::spawn(async move {
                let mut cursors = Vec::new();
                while cursors.len() < 20 {
                    cursors.push(next_event(&mut feed).await.cursor);
                }
                cursors
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), (1..=20).collect::<Vec<u64>>());
    }
    wait_for_live(&server, 0).await;
    server.stop().await;
}

async fn wait_for_live(server: &TestServer, expected: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.feed_stats.live_subscriptions() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} live subscriptions, expected {expected}",
            server.feed_stats.live_subscriptions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn subscriptions_of_departed_clients_are_cleaned_up(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    ingest_all(&server, variants(0..300)).await;

    // Mid-catch-up: the client reads a little, then goes away with events still to send.
    let mut busy = subscribe(
        &mut server.feed_client().await,
        start(Start::FromBeginning(true)),
    )
    .await;
    assert_eq!(next_event(&mut busy).await.cursor, 1);
    // Idle: caught up and waiting for new events.
    let idle = subscribe(&mut server.feed_client().await, start(Start::FromNow(true))).await;
    assert_eq!(server.feed_stats.live_subscriptions(), 2);

    drop(busy);
    drop(idle);
    wait_for_live(&server, 0).await;

    // The server is unaffected.
    let mut again = subscribe(
        &mut server.feed_client().await,
        start(Start::AfterCursor(299)),
    )
    .await;
    assert_eq!(next_event(&mut again).await.cursor, 300);
    server.stop().await;
}

async fn from_time_starts_at_the_first_event_recorded_then(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    ingest_all(&server, variants(0..5)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let now = pbjson_types::Timestamp {
        seconds: since_epoch.as_secs() as i64,
        nanos: since_epoch.subsec_nanos() as i32,
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    ingest_all(&server, variants(5..8)).await;
    let mut feed = subscribe(&mut server.feed_client().await, start(Start::FromTime(now))).await;
    let event = next_event(&mut feed).await;
    assert_eq!(event.cursor, 6);
    let recorded = event.timestamp.unwrap();
    assert!((recorded.seconds, recorded.nanos) >= (now.seconds, now.nanos));
    server.stop().await;
}

async fn bad_feed_requests_get_clear_errors(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    ingest_all(&server, variants(0..3)).await;
    let mut feeds = server.feed_client().await;

    let status = feeds
        .ack(pb::AckRequest {
            consumer: "nobody".into(),
            cursor: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("nobody"));

    let status = feeds
        .ack(pb::AckRequest {
            consumer: String::new(),
            cursor: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let status = feeds
        .get_consumer(pb::GetConsumerRequest {
            name: "has space".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    drop(
        subscribe(
            &mut feeds,
            pb::SubscribeRequest {
                consumer: "reader".into(),
                ..Default::default()
            },
        )
        .await,
    );
    let status = feeds
        .ack(pb::AckRequest {
            consumer: "reader".into(),
            cursor: 99,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("beyond the head"),
        "{}",
        status.message()
    );

    let status = feeds
        .subscribe(start(Start::AfterCursor(99)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("cursor 99"),
        "{}",
        status.message()
    );

    let bad_filters = [
        (
            pb::FeedFilter {
                kinds: vec![EventKind::Checkpoint as i32],
                ..Default::default()
            },
            "filter.kinds[0]",
        ),
        (
            pb::FeedFilter {
                kinds: vec![42],
                ..Default::default()
            },
            "filter.kinds[0]",
        ),
        (
            pb::FeedFilter {
                source_ids: vec!["  ".into()],
                ..Default::default()
            },
            "filter.source_ids[0]",
        ),
    ];
    for (filter, field) in bad_filters {
        let status = feeds
            .subscribe(pb::SubscribeRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{}", status.message());
    }

    let status = feeds
        .subscribe(start(Start::FromBeginning(false)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    server.stop().await;
}

async fn shutdown_ends_open_feeds_with_unavailable(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    ingest_all(&server, variants(0..3)).await;
    let mut feed = subscribe(
        &mut server.feed_client().await,
        start(Start::FromBeginning(true)),
    )
    .await;
    for cursor in 1..=3 {
        assert_eq!(next_event(&mut feed).await.cursor, cursor);
    }
    let stopping = tokio::spawn(server.stop());
    let ended = loop {
        match tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("feed ends in time")
        {
            Some(Ok(message)) => assert_eq!(message.kind(), EventKind::Checkpoint),
            Some(Err(status)) => break status,
            None => panic!("the feed ended without saying why"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable);
    assert!(
        ended.message().contains("after_cursor 3"),
        "{}",
        ended.message()
    );
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server stops")
        .unwrap();
}

crate::on_both_backends!(
    subscribers_joining_during_concurrent_ingest_get_every_event_once_in_order,
    resume_after_cursor_and_durable_consumer_across_restart,
    filtered_subscription_gets_matches_and_checkpoints,
    a_subscriber_that_stops_reading_then_reads_everything,
    two_hundred_concurrent_subscribers,
    subscriptions_of_departed_clients_are_cleaned_up,
    from_time_starts_at_the_first_event_recorded_then,
    bad_feed_requests_get_clear_errors,
    shutdown_ends_open_feeds_with_unavailable,
);
