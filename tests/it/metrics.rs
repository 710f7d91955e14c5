//! The Prometheus endpoint reports what the server did: ingest outcomes, rejected fields,
//! request latencies, live subscribers, consumer lag, the log head and the store size.

use crate::common::{
    TestServer, WAIT, fixture_text, ingest_request_from_json, seed_request, seed_variant,
};
use khabar::pb::khabar::v1::{self as pb, subscribe_request::Start};

/// The value of the sample named exactly `series` (name and labels), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[tokio::test]
async fn metrics_follow_ingests_feeds_and_consumers() {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    ingest.ingest(seed_request()).await.expect("created");
    ingest.ingest(seed_request()).await.expect("unchanged");
    ingest.ingest(seed_variant(1)).await.expect("created");
    let invalid = ingest_request_from_json(&fixture_text("invalid-article.ingest.json"));
    let rejected = ingest.ingest(invalid).await.unwrap_err();
    assert_eq!(rejected.code(), tonic::Code::InvalidArgument);

    // A durable consumer that has acknowledged the first of the two events, and one live
    // subscription.
    let mut feeds = server.feed_client().await;
    let mut subscription = feeds
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            consumer: "indexer".into(),
            ..pb::SubscribeRequest::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let first = tokio::time::timeout(WAIT, subscription.message())
        .await
        .expect("event in time")
        .expect("stream healthy")
        .expect("an event");
    feeds
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: first.cursor,
        })
        .await
        .expect("ack");

    let metrics = server.scrape_metrics().await;
    let value = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
    };
    assert_eq!(value("khabar_ingests_total{outcome=\"created\"}"), 2.0);
    assert_eq!(value("khabar_ingests_total{outcome=\"unchanged\"}"), 1.0);
    assert_eq!(value("khabar_ingests_total{outcome=\"rejected\"}"), 1.0);
    assert_eq!(
        value("khabar_ingest_rejected_fields_total{field=\"article.headline\"}"),
        1.0
    );
    assert_eq!(
        value(
            "khabar_grpc_request_duration_seconds_count{method=\"/khabar.v1.IngestService/Ingest\"}"
        ),
        4.0
    );
    assert_eq!(value("khabar_log_head_cursor"), 2.0);
    assert_eq!(value("khabar_feed_subscribers"), 1.0);
    assert_eq!(
        value("khabar_consumer_lag_events{consumer=\"indexer\"}"),
        1.0
    );
    assert!(value("khabar_store_size_bytes") > 0.0);
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    drop(subscription);
    server.stop().await;
}
