//! End to end over real TCP with a tonic client: ingest, re-ingest, get, list, retract, limits.

use crate::common::{
    Backend, SERVICES, TestServer, WAIT, fixture_text, ingest_request_from_json, seed_request,
    seed_variant,
};
use khabar::pb::khabar::v1::{self as pb, ArticleStatus, IngestOutcome};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

fn violation_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .expect("status carries google.rpc.BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

async fn seed_article_round_trips_byte_for_byte(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;
    let sent = seed_request().article.unwrap();

    let ack = ingest.ingest(seed_request()).await.unwrap().into_inner();
    assert_eq!(ack.outcome(), IngestOutcome::Created);
    assert_eq!((ack.version, ack.cursor), (1, 1));
    assert_eq!(ack.id.len(), 26);
    assert_eq!(ack.content_hash.len(), 64);

    let got = articles
        .get_article(pb::GetArticleRequest {
            id: ack.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, ack.id);
    assert_eq!(got.headline.as_bytes(), sent.headline.as_bytes());
    assert_eq!(got.body.as_bytes(), sent.body.as_bytes());
    assert_eq!(got.source, sent.source);
    assert_eq!(got.tags, sent.tags);
    assert_eq!(got.places, sent.places);
    assert_eq!(got.organisations, sent.organisations);
    assert_eq!(got.people, sent.people);
    assert_eq!(got.info_sources, sent.info_sources);
    assert_eq!(got.published_at, sent.published_at);
    assert_eq!(got.view_count, 182);
    assert_eq!(got.status(), ArticleStatus::Usable);
    assert_eq!((got.version, got.cursor), (1, 1));
    assert_eq!(got.content_hash, ack.content_hash);
    assert!(got.ingested_at.is_some() && got.first_ingested_at.is_some());
    assert!(got.body.contains("28 يونيو") && got.body.contains("“داعش”"));
    server.stop().await;
}

async fn reingest_is_unchanged_counters_only_or_a_new_version(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;

    let first = ingest.ingest(seed_request()).await.unwrap().into_inner();
    let same = ingest.ingest(seed_request()).await.unwrap().into_inner();
    assert_eq!(same.outcome(), IngestOutcome::Unchanged);
    assert_eq!(
        (same.id.as_str(), same.version, same.cursor),
        (first.id.as_str(), 1, 1)
    );

    // Only white space and bidi controls differ: normalization makes it the same content.
    let mut padded = seed_request();
    let article = padded.article.as_mut().unwrap();
    article.headline = format!("  \u{202B}{}\u{202C}  ", article.headline);
    let same_after_normalizing = ingest.ingest(padded).await.unwrap().into_inner();
    assert_eq!(same_after_normalizing.outcome(), IngestOutcome::Unchanged);

    let mut more_views = seed_request();
    more_views.article.as_mut().unwrap().view_count = 500;
    let counted = ingest.ingest(more_views).await.unwrap().into_inner();
    assert_eq!(counted.outcome(), IngestOutcome::CountersUpdated);
    assert_eq!(
        (
            counted.version,
            counted.cursor,
            counted.content_hash.as_str()
        ),
        (1, 1, first.content_hash.as_str())
    );

    let mut edited = seed_request();
    edited
        .article
        .as_mut()
        .unwrap()
        .headline
        .push_str(" (تحديث)");
    let updated = ingest.ingest(edited).await.unwrap().into_inner();
    assert_eq!(updated.outcome(), IngestOutcome::Updated);
    assert_eq!(
        (updated.id.as_str(), updated.version, updated.cursor),
        (first.id.as_str(), 2, 2)
    );
    assert_ne!(updated.content_hash, first.content_hash);

    let got = articles
        .get_article(pb::GetArticleRequest {
            id: first.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.headline.ends_with("(تحديث)"));
    assert_eq!((got.version, got.view_count), (2, 182));
    server.stop().await;
}

#[tokio::test]
async fn invalid_fixture_gets_one_violation_per_broken_rule() {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    let request = ingest_request_from_json(&fixture_text("invalid-article.ingest.json"));
    let status = ingest.ingest(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violation_fields(&status),
        [
            "article.source.id",
            "article.source.name",
            "article.uri",
            "article.headline",
            "article.body",
            "article.language",
            "article.published_at"
        ]
    );
    // The message alone tells a grpcurl user what to fix.
    for part in [
        "7 violations",
        "article.source.id",
        "slug",
        "article.published_at",
        "24 hours",
    ] {
        assert!(
            status.message().contains(part),
            "{part:?} missing from {:?}",
            status.message()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn missing_article_and_control_characters_are_invalid() {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    let status = ingest
        .ingest(pb::IngestRequest { article: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["article"]);

    let mut request = seed_request();
    let article = request.article.as_mut().unwrap();
    article.body.push('\u{0000}');
    article.tags.push(String::new());
    let status = ingest.ingest(request).await.unwrap_err();
    assert_eq!(
        violation_fields(&status),
        ["article.body", "article.tags[3]"]
    );
    assert!(status.message().contains("U+0000"), "{}", status.message());
    server.stop().await;
}

async fn oversized_requests_are_resource_exhausted_with_the_limit(backend: Backend) {
    let limit = 256 * 1024;
    let server =
        TestServer::start_on_with(&backend, |config| config.max_message_bytes = limit).await;
    let mut ingest = server.ingest_client().await;
    let mut big = seed_request();
    big.article.as_mut().unwrap().body = "خ".repeat(limit);

    let status = ingest.ingest(big.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("limit of {limit} bytes")),
        "{}",
        status.message()
    );

    // In a stream, the articles before the oversized one are answered first.
    let requests = tokio_stream::iter(vec![seed_request(), big]);
    let mut responses = ingest.ingest_stream(requests).await.unwrap().into_inner();
    let first = tokio::time::timeout(WAIT, responses.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.outcome(), IngestOutcome::Created);
    let status = tokio::time::timeout(WAIT, responses.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("limit of {limit} bytes")),
        "{}",
        status.message()
    );

    // The server is still fine.
    let ok = ingest.ingest(seed_variant(1)).await.unwrap().into_inner();
    assert_eq!(ok.outcome(), IngestOutcome::Created);
    server.stop().await;
}

async fn ingest_stream_answers_each_request_in_order(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut edited = seed_variant(0);
    edited
        .article
        .as_mut()
        .unwrap()
        .body
        .push_str("\n\nفقرة جديدة");
    let mut invalid = seed_variant(2);
    invalid.article.as_mut().unwrap().language = "??".into();
    let requests = vec![
        seed_variant(0),
        seed_variant(1),
        invalid,
        seed_variant(0),
        edited,
        pb::IngestRequest { article: None },
        seed_variant(3),
    ];
    let responses: Vec<pb::IngestResponse> = ingest
        .ingest_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.expect("stream keeps going"))
        .collect()
        .await;
    let outcomes: Vec<IngestOutcome> = responses.iter().map(|r| r.outcome()).collect();
    assert_eq!(
        outcomes,
        [
            IngestOutcome::Created,
            IngestOutcome::Created,
            IngestOutcome::Rejected,
            IngestOutcome::Unchanged,
            IngestOutcome::Updated,
            IngestOutcome::Rejected,
            IngestOutcome::Created,
        ]
    );
    assert_eq!(responses[4].id, responses[0].id);
    assert_eq!(responses[4].version, 2);
    let cursors: Vec<u64> = responses.iter().map(|r| r.cursor).collect();
    assert_eq!(cursors, [1, 2, 0, 1, 3, 0, 4]);
    let rejected = responses[2]
        .error
        .as_ref()
        .expect("rejection carries the error");
    assert_eq!(rejected.code, Code::InvalidArgument as i32);
    assert_eq!(rejected.violations.len(), 1);
    assert_eq!(rejected.violations[0].field, "article.language");
    assert!(rejected.message.contains("BCP-47"));
    assert_eq!(
        responses[5].error.as_ref().unwrap().violations[0].field,
        "article"
    );
    server.stop().await;
}

async fn a_long_stream_keeps_order_with_many_writes_in_flight(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let count = 2_000;
    let requests = tokio_stream::iter((0..count).map(seed_variant));
    let responses: Vec<pb::IngestResponse> = tokio::time::timeout(
        WAIT * 3,
        ingest
            .ingest_stream(requests)
            .await
            .unwrap()
            .into_inner()
            .map(Result::unwrap)
            .collect(),
    )
    .await
    .expect("stream finishes");
    assert_eq!(responses.len(), count);
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(response.outcome(), IngestOutcome::Created, "response {i}");
        assert_eq!(response.cursor, i as u64 + 1, "response {i}");
    }
    server.stop().await;
}

async fn concurrent_ingests_get_distinct_gap_free_cursors(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let client = server.ingest_client().await;
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let mut client = client.clone();
            tokio::spawn(
                async move { client.ingest(seed_variant(n)).await.map(|r| r.into_inner()) },
            )
        })
        .collect();
    let mut cursors = Vec::new();
    for task in tasks {
        cursors.push(task.await.unwrap().unwrap().cursor);
    }
    cursors.sort_unstable();
    assert_eq!(cursors, (1..=32).collect::<Vec<u64>>());
    server.stop().await;
}

async fn retract_cancels_and_blocks_reingest(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;
    let ack = ingest.ingest(seed_request()).await.unwrap().into_inner();

    let status = articles
        .retract_article(pb::RetractArticleRequest {
            id: ack.id.clone(),
            reason: "  ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["reason"]);

    let retracted = articles
        .retract_article(pb::RetractArticleRequest {
            id: ack.id.clone(),
            reason: "المصدر غير موثوق".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retracted.status(), ArticleStatus::Canceled);
    assert_eq!((retracted.version, retracted.cursor), (2, 2));
    let retraction = retracted.retraction.as_ref().expect("retraction recorded");
    assert_eq!(retraction.reason, "المصدر غير موثوق");

    let again = articles
        .retract_article(pb::RetractArticleRequest {
            id: ack.id.clone(),
            reason: "مرة ثانية".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, retracted, "retracting twice changes nothing");

    let status = ingest.ingest(seed_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("retracted"),
        "{}",
        status.message()
    );

    let got = articles
        .get_article(pb::GetArticleRequest {
            id: ack.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status(), ArticleStatus::Canceled);
    server.stop().await;
}

async fn unknown_and_malformed_ids(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut articles = server.articles_client().await;
    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let status = articles
        .get_article(pb::GetArticleRequest {
            id: unknown.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(unknown));
    let status = articles
        .retract_article(pb::RetractArticleRequest {
            id: unknown.into(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = articles
        .get_article(pb::GetArticleRequest {
            id: "42".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["id"]);
    server.stop().await;
}

async fn list_pages_newest_first_with_filters(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;
    let sources = ["alkhabar", "wire-a"];
    for n in 0..25 {
        let mut request = seed_variant(n);
        let article = request.article.as_mut().unwrap();
        article.source.as_mut().unwrap().id = sources[n % 2].into();
        article.published_at.as_mut().unwrap().seconds += n as i64 * 60;
        article.language = if n % 5 == 0 {
            "ar-SY".into()
        } else {
            "ar".into()
        };
        article.tags = vec![format!("tag-{}", n % 3)];
        ingest.ingest(request).await.unwrap();
    }

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = articles
            .list_articles(pb::ListArticlesRequest {
                page_size: 10,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(
            page.articles
                .iter()
                .map(|a| a.published_at.unwrap().seconds),
        );
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    let filtered = articles
        .list_articles(pb::ListArticlesRequest {
            source_ids: vec!["wire-a".into()],
            languages: vec!["ar-sy".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ns: Vec<String> = filtered
        .articles
        .iter()
        .map(|a| a.headline.rsplit('#').next().unwrap().to_owned())
        .collect();
    assert_eq!(ns, ["15", "5"]);

    let tagged = articles
        .list_articles(pb::ListArticlesRequest {
            tags: vec!["tag-0".into(), "tag-1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tagged.articles.len(), 17);

    let base = seed_request()
        .article
        .unwrap()
        .published_at
        .unwrap()
        .seconds;
    let window = articles
        .list_articles(pb::ListArticlesRequest {
            published_after: Some(pbjson_types::Timestamp {
                seconds: base + 60,
                nanos: 0,
            }),
            published_before: Some(pbjson_types::Timestamp {
                seconds: base + 180,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(window.articles.len(), 2);
    server.stop().await;
}

async fn list_rejects_bad_requests_field_by_field(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;
    for n in 0..3 {
        ingest.ingest(seed_variant(n)).await.unwrap();
    }
    let first = articles
        .list_articles(pb::ListArticlesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());

    let t = |seconds| Some(pbjson_types::Timestamp { seconds, nanos: 0 });
    let cases = [
        (
            pb::ListArticlesRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListArticlesRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListArticlesRequest {
                page_size: 1,
                tags: vec!["other".into()],
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListArticlesRequest {
                published_after: t(10),
                published_before: t(5),
                ..Default::default()
            },
            "published_after",
        ),
        (
            pb::ListArticlesRequest {
                tags: vec![" ".into()],
                ..Default::default()
            },
            "tags[0]",
        ),
    ];
    for (request, field) in cases {
        let status = articles.list_articles(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violation_fields(&status), [field]);
    }

    // Above the maximum is served at the maximum.
    let all = articles
        .list_articles(pb::ListArticlesRequest {
            page_size: 5_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.articles.len(), 3);
    server.stop().await;
}

async fn list_pages_stay_under_the_message_limit(backend: Backend) {
    let limit = 1 << 20;
    let server =
        TestServer::start_on_with(&backend, |config| config.max_message_bytes = limit).await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;
    for n in 0..12 {
        let mut request = seed_variant(n);
        request.article.as_mut().unwrap().body = "خبر ".repeat(20_000); // ~160 KB each
        ingest.ingest(request).await.unwrap();
    }
    let mut total = 0;
    let mut page_token = String::new();
    loop {
        let page = articles
            .list_articles(pb::ListArticlesRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("each page fits in the limit")
            .into_inner();
        assert!(
            page.articles.len() < 12,
            "a page of 12 x 160 KB cannot fit in 1 MiB"
        );
        total += page.articles.len();
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(total, 12);
    server.stop().await;
}

async fn acknowledged_articles_survive_a_restart(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut ingest = server.ingest_client().await;
    let mut acks = Vec::new();
    for n in 0..20 {
        acks.push(ingest.ingest(seed_variant(n)).await.unwrap().into_inner());
    }
    let server = server.restart().await;
    let mut articles = server.articles_client().await;
    for ack in &acks {
        let got = articles
            .get_article(pb::GetArticleRequest {
                id: ack.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((got.version, got.cursor), (ack.version, ack.cursor));
    }
    let next = server
        .ingest_client()
        .await
        .ingest(seed_variant(100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.cursor, 21, "cursors continue without a gap");
    server.stop().await;
}

#[tokio::test]
async fn health_reports_each_service_and_reflection_speaks_v1_and_v1alpha() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::{v1, v1alpha};

    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "khabar.v1.IngestService",
        "khabar.v1.ArticleService",
        "khabar.v1.FeedService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut reflection =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for &expected in SERVICES.iter() {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "google.rpc.BadRequest".into(),
            ),
        ),
    };
    let mut reflection =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    assert!(
        matches!(
            answer.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "v1alpha reflection resolves google.rpc.BadRequest for error details: {answer:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn many_violations_still_fit_in_one_status() {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    let mut request = seed_request();
    request.article.as_mut().unwrap().people = vec![" ".into(); 100];
    let status = ingest.ingest(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violation_fields(&status);
    assert_eq!(fields.len(), 50);
    assert_eq!(fields[0], "article.people[0]");
    assert_eq!(fields[49], "article", "the last one summarizes the rest");
    assert!(
        status
            .message()
            .contains("more, listed in the error details"),
        "{}",
        status.message()
    );
    server.stop().await;
}

crate::on_both_backends!(
    seed_article_round_trips_byte_for_byte,
    reingest_is_unchanged_counters_only_or_a_new_version,
    oversized_requests_are_resource_exhausted_with_the_limit,
    ingest_stream_answers_each_request_in_order,
    a_long_stream_keeps_order_with_many_writes_in_flight,
    concurrent_ingests_get_distinct_gap_free_cursors,
    retract_cancels_and_blocks_reingest,
    unknown_and_malformed_ids,
    list_pages_newest_first_with_filters,
    list_rejects_bad_requests_field_by_field,
    list_pages_stay_under_the_message_limit,
    acknowledged_articles_survive_a_restart,
);
