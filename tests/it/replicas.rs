//! Several khabar servers on one PostgreSQL database: three `khabar serve` processes of the real
//! binary share articles, the log and durable consumers. The same article ingested through all
//! three at once is created once; a feed on one server delivers what the others ingest, in
//! cursor order, exactly once; a consumer acknowledged on one resumes on another.

use std::collections::{BTreeMap, HashSet};

use crate::common::{Backend, ChildServer, WAIT, seed_variant};
use khabar::pb::khabar::v1::{
    self as pb, EventKind, IngestOutcome, article_service_client::ArticleServiceClient,
    feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    subscribe_request::Start,
};
use tokio_stream::StreamExt;
use tonic::{Streaming, transport::Channel};

/// Three servers on one fresh database, or `None` without PostgreSQL.
async fn three_replicas(test: &str) -> Option<(Vec<ChildServer>, Vec<tempfile::TempDir>)> {
    let backend = Backend::postgres(test).await?;
    let flags = backend.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let servers = dirs
        .iter()
        .map(|dir| ChildServer::start_with(dir.path(), &flags))
        .collect();
    Some((servers, dirs))
}

async fn ingest_client(server: &ChildServer) -> IngestServiceClient<Channel> {
    IngestServiceClient::new(server.channel().await)
}

async fn feed_client(server: &ChildServer) -> FeedServiceClient<Channel> {
    FeedServiceClient::new(server.channel().await).max_decoding_message_size(64 << 20)
}

async fn next_event(feed: &mut Streaming<pb::FeedEvent>) -> pb::FeedEvent {
    loop {
        let message = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("a feed message in time")
            .expect("the feed is open")
            .expect("no error");
        if message.kind() != EventKind::Checkpoint {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_article_ingested_through_three_servers_at_once_is_created_once() {
    let Some((servers, _dirs)) = three_replicas("replicas::created_once").await else {
        return;
    };
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(ingest_client(server).await);
    }
    let keys = 25;
    let mut created_cursors = Vec::new();
    for n in 0..keys {
        let calls = clients.iter().map(|client| {
            let mut client = client.clone();
            let request = seed_variant(n);
            tokio::spawn(async move { client.ingest(request).await })
        });
        let mut answers = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            answers.push(call.await.unwrap().expect("ingest").into_inner());
        }
        let created: Vec<&pb::IngestResponse> = answers
            .iter()
            .filter(|a| a.outcome() == IngestOutcome::Created)
            .collect();
        assert_eq!(created.len(), 1, "key {n}: {answers:?}");
        for answer in &answers {
            assert_eq!(answer.id, created[0].id, "key {n}: one article");
            assert_eq!(answer.cursor, created[0].cursor, "key {n}: one event");
            assert_ne!(answer.outcome(), IngestOutcome::Updated, "key {n}");
        }
        created_cursors.push(created[0].cursor);
    }
    created_cursors.sort_unstable();
    assert_eq!(created_cursors, (1..=keys as u64).collect::<Vec<_>>());

    // Every server reads every article.
    for server in &servers {
        let mut articles = ArticleServiceClient::new(server.channel().await);
        let page = articles
            .list_articles(pb::ListArticlesRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.articles.len(), keys);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_on_one_server_delivers_what_the_others_ingest_in_order_exactly_once() {
    let Some((servers, _dirs)) = three_replicas("replicas::feed_across").await else {
        return;
    };
    let mut feeds = feed_client(&servers[1]).await;
    let mut live = feeds
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Ingest through the other two servers at once.
    let per_server = 40;
    let mut writers = Vec::new();
    for (i, server) in [&servers[0], &servers[2]].into_iter().enumerate() {
        let mut client = ingest_client(server).await;
        writers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for n in 0..per_server {
                let answer = client
                    .ingest(seed_variant(i * 1000 + n))
                    .await
                    .expect("ingest")
                    .into_inner();
                acks.push((answer.cursor, answer.id));
            }
            acks
        }));
    }
    let mut acknowledged = BTreeMap::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let total = (2 * per_server) as u64;
    assert_eq!(
        acknowledged.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );

    // The live feed, subscribed before the first ingest, and a catch-up from the beginning.
    let mut replay = feeds
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for feed in [&mut live, &mut replay] {
        let mut seen = HashSet::new();
        for expected in 1..=total {
            let event = next_event(feed).await;
            assert_eq!(event.cursor, expected, "cursor order, no gaps, no repeats");
            let article = event.article.expect("an event carries its article");
            assert_eq!(Some(&article.id), acknowledged.get(&expected));
            assert!(seen.insert(article.id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_acknowledged_on_one_server_resumes_on_another() {
    let Some((servers, _dirs)) = three_replicas("replicas::consumer_across").await else {
        return;
    };
    let mut ingest = ingest_client(&servers[0]).await;
    for n in 0..10 {
        ingest.ingest(seed_variant(n)).await.expect("ingest");
    }

    let mut on_b = feed_client(&servers[1]).await;
    let mut feed = on_b
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            consumer: "indexer".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for cursor in 1..=4 {
        assert_eq!(next_event(&mut feed).await.cursor, cursor);
    }
    drop(feed);
    on_b.ack(pb::AckRequest {
        consumer: "indexer".into(),
        cursor: 4,
    })
    .await
    .expect("ack on B");

    // On C the consumer resumes right after what B acknowledged, whatever start it sends.
    let mut on_c = feed_client(&servers[2]).await;
    let mut feed = on_c
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            consumer: "indexer".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut feed).await.cursor, 5);
    let acked = on_c
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: 10,
        })
        .await
        .expect("ack on C")
        .into_inner();
    assert_eq!((acked.acked_cursor, acked.head_cursor), (10, 10));

    // A sees both acknowledgements; an older one changes nothing.
    let mut on_a = feed_client(&servers[0]).await;
    let consumer = on_a
        .get_consumer(pb::GetConsumerRequest {
            name: "indexer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((consumer.acked_cursor, consumer.lag), (10, 0));
    let older = on_a
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(older.acked_cursor, 10);
    // A cursor acknowledged elsewhere is within the head everywhere, even before A ingested.
    let beyond = on_a
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: 11,
        })
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::FailedPrecondition);
}
