//! Listing and feed filters on editorial metadata: urgency and genre filters, the urgency order
//! with page tokens, expiry under the store's clock, on both stores.

use std::sync::Arc;

use khabar::{
    domain::{Timestamp, embargo::ManualClock},
    pb::khabar::v1 as pb,
};

use crate::common::{Backend, TestServer, seed_variant};

/// Article `n`: urgency `urgency` (0 unset), genre `genre` when given, published `n` minutes
/// after the seed, expiring at `expires` (seconds) when given.
fn article(n: usize, urgency: u32, genre: Option<&str>, expires: Option<i64>) -> pb::IngestRequest {
    let mut request = seed_variant(n);
    let article = request.article.as_mut().unwrap();
    article.published_at.as_mut().unwrap().seconds += n as i64 * 60;
    article.urgency = urgency;
    article.genres = genre
        .map(|code| pb::Genre {
            code: code.into(),
            name: String::new(),
        })
        .into_iter()
        .collect();
    article.expires = expires.map(|seconds| pbjson_types::Timestamp { seconds, nanos: 0 });
    request
}

fn marker(article: &pb::Article) -> usize {
    article
        .headline
        .rsplit('#')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn list_all(
    articles: &mut khabar::pb::khabar::v1::article_service_client::ArticleServiceClient<
        tonic::transport::Channel,
    >,
    request: pb::ListArticlesRequest,
) -> Vec<usize> {
    let mut seen = Vec::new();
    let mut request = pb::ListArticlesRequest {
        page_size: 2,
        ..request
    };
    for _ in 0..50 {
        let page = articles
            .list_articles(request.clone())
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.articles.iter().map(marker));
        if page.next_page_token.is_empty() {
            return seen;
        }
        request.page_token = page.next_page_token;
    }
    panic!("the listing did not end: {seen:?}");
}

async fn filters_order_and_expiry(backend: Backend) {
    let now = Timestamp::now();
    let clock = ManualClock::new(now);
    let server = TestServer::start_on_with(&backend, |config| {
        config.clock = Arc::new(clock.clone());
    })
    .await;
    let mut ingest = server.ingest_client().await;
    let mut articles = server.articles_client().await;
    let soon = now.seconds() + 3_600;
    // (marker, urgency, genre, expires)
    let table: [(usize, u32, Option<&str>, Option<i64>); 7] = [
        (0, 0, None, None),
        (1, 3, Some("genre:Analysis"), None),
        (2, 1, None, None),
        (3, 3, Some("genre:Current"), Some(soon)),
        (4, 0, Some("genre:Analysis"), None),
        (5, 9, None, None),
        (6, 1, Some("genre:Current"), None),
    ];
    for (n, urgency, genre, expires) in table {
        ingest
            .ingest(article(n, urgency, genre, expires))
            .await
            .unwrap();
    }

    let newest = list_all(&mut articles, pb::ListArticlesRequest::default()).await;
    assert_eq!(newest, [6, 5, 4, 3, 2, 1, 0]);
    let by_urgency = pb::ListArticlesRequest {
        order_by: pb::ListOrder::Urgency.into(),
        ..Default::default()
    };
    assert_eq!(
        list_all(&mut articles, by_urgency.clone()).await,
        [6, 2, 3, 1, 5, 4, 0],
        "most urgent first, newest first within an urgency, unset last"
    );
    let urgent = pb::ListArticlesRequest {
        max_urgency: 3,
        ..by_urgency.clone()
    };
    assert_eq!(list_all(&mut articles, urgent).await, [6, 2, 3, 1]);
    let genres = pb::ListArticlesRequest {
        genres: vec!["genre:Analysis".into()],
        ..Default::default()
    };
    assert_eq!(list_all(&mut articles, genres).await, [4, 1]);

    // A token of one order is refused by the other.
    let page = articles
        .list_articles(pb::ListArticlesRequest {
            page_size: 2,
            ..by_urgency.clone()
        })
        .await
        .unwrap()
        .into_inner();
    let refused = articles
        .list_articles(pb::ListArticlesRequest {
            page_size: 2,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // Past its expiry an article leaves listings, unless asked for; it stays readable.
    clock.advance_seconds(7_200);
    assert_eq!(
        list_all(&mut articles, by_urgency.clone()).await,
        [6, 2, 1, 5, 4, 0]
    );
    let with_expired = pb::ListArticlesRequest {
        include_expired: true,
        ..by_urgency
    };
    assert_eq!(
        list_all(&mut articles, with_expired).await,
        [6, 2, 3, 1, 5, 4, 0]
    );

    // Feeds filter on the same fields.
    let feeds = server.feed_client().await;
    let subscribe = |filter: pb::FeedFilter| {
        let mut feeds = feeds.clone();
        async move {
            let mut feed = feeds
                .subscribe(pb::SubscribeRequest {
                    start: Some(pb::subscribe_request::Start::FromBeginning(true)),
                    filter: Some(filter),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut seen = Vec::new();
            // Every event up to cursor 7 was examined once a checkpoint or event reaches it.
            for _ in 0..100 {
                let event = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    tokio_stream::StreamExt::next(&mut feed),
                )
                .await
                .expect("an item in time")
                .expect("feed open")
                .unwrap();
                if let Some(article) = &event.article {
                    seen.push(marker(article));
                }
                if event.cursor >= 7 {
                    return seen;
                }
            }
            panic!("the feed did not reach cursor 7: {seen:?}");
        }
    };
    let urgent = subscribe(pb::FeedFilter {
        max_urgency: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(urgent, [2, 6]);
    let current = subscribe(pb::FeedFilter {
        genres: vec!["genre:Current".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(current, [3, 6]);
}

crate::on_both_backends!(filters_order_and_expiry);
