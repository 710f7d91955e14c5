//! Embargoed and withheld articles end to end over gRPC: invisible to readers and to feeds until
//! their time, then delivered exactly once at the next cursor, across an in-process restart
//! (with a manual clock) and across `kill -9` of a child server (with the system clock), on the
//! embedded store and on PostgreSQL.

use std::{sync::Arc, time::Duration};

use crate::common::{
    Backend, ChildServer, TestServer, WAIT, feed_from_beginning, fixture_text,
    ingest_request_from_json,
};
use khabar::{
    auth::{AuthPolicy, Tokens, hashed_token_entry},
    domain::{
        Timestamp,
        embargo::{Clock, ManualClock},
    },
    pb::khabar::v1::{
        self as pb, article_service_client::ArticleServiceClient,
        feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    },
    server::ServerConfig,
};
use tonic::{
    Code, Request,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

const READER: &str = "reader-secret-0123456789";
const ADMIN: &str = "admin-secret-0123456789";

fn tokens() -> Arc<AuthPolicy> {
    let mut tokens = Tokens::default();
    let entries = format!(
        "reader read {}\nops admin {}\n",
        hashed_token_entry(READER),
        hashed_token_entry(ADMIN),
    );
    tokens
        .add_entries(&entries, "test tokens")
        .expect("valid tokens");
    Arc::new(AuthPolicy {
        tokens,
        ..AuthPolicy::default()
    })
}

/// Sends `authorization: Bearer <token>` on every call.
#[derive(Clone)]
struct Bearer(&'static str);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        let value: MetadataValue<_> = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::internal("token is not valid metadata"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

type Intercepted = InterceptedService<Channel, Bearer>;

struct Clients {
    ingest: IngestServiceClient<Intercepted>,
    articles: ArticleServiceClient<Intercepted>,
    feeds: FeedServiceClient<Intercepted>,
}

fn clients(channel: Channel, token: &'static str) -> Clients {
    let bearer = Bearer(token);
    Clients {
        ingest: IngestServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        articles: ArticleServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        feeds: FeedServiceClient::with_interceptor(channel, bearer),
    }
}

fn proto_time(t: Timestamp) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.seconds(),
        nanos: t.nanos() as i32,
    }
}

/// The seed article's second version (urgency, genre, place, association), embargoed until
/// `until`; under `uri` when given (a first version of another article).
fn embargoed_v2(until: Timestamp, uri: Option<&str>) -> pb::IngestRequest {
    let mut request = ingest_request_from_json(&fixture_text("seed-article-v2.ingest.json"));
    let article = request.article.as_mut().expect("fixture has an article");
    article.embargoed = Some(proto_time(until));
    if let Some(uri) = uri {
        article.uri = uri.to_owned();
    }
    request
}

/// The seed article's first version, or a marker article under another uri.
fn plain(uri: Option<&str>) -> pb::IngestRequest {
    let mut request = ingest_request_from_json(&fixture_text("seed-article.ingest.json"));
    if let Some(uri) = uri {
        request.article.as_mut().expect("an article").uri = uri.to_owned();
    }
    request
}

async fn get(
    articles: &mut ArticleServiceClient<Intercepted>,
    id: &str,
    include_embargoed: bool,
) -> Result<pb::Article, Code> {
    articles
        .get_article(pb::GetArticleRequest {
            id: id.to_owned(),
            include_embargoed,
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.code())
}

async fn listed(
    articles: &mut ArticleServiceClient<Intercepted>,
    held: bool,
) -> Vec<(String, u64)> {
    articles
        .list_articles(pb::ListArticlesRequest {
            page_size: 100,
            include_embargoed: held,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .articles
        .into_iter()
        .map(|a| (a.id, a.version))
        .collect()
}

/// The next non-checkpoint event of `feed`, waited for at most WAIT.
async fn next_event(feed: &mut tonic::Streaming<pb::FeedEvent>) -> pb::FeedEvent {
    loop {
        let event = tokio::time::timeout(WAIT, tokio_stream::StreamExt::next(feed))
            .await
            .expect("event in time")
            .expect("feed open")
            .expect("event");
        if event.kind() != pb::EventKind::Checkpoint {
            return event;
        }
    }
}

async fn subscribe(
    feeds: &mut FeedServiceClient<Intercepted>,
    after_cursor: u64,
) -> tonic::Streaming<pb::FeedEvent> {
    feeds
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::AfterCursor(after_cursor)),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner()
}

fn summary(event: &pb::FeedEvent) -> (u64, pb::EventKind, String, u64) {
    let article = event.article.as_ref().expect("event carries its article");
    (
        event.cursor,
        event.kind(),
        article.id.clone(),
        article.version,
    )
}

fn configure(clock: &ManualClock) -> impl FnOnce(&mut ServerConfig) + use<> {
    let clock = clock.clone();
    move |config| {
        config.auth = tokens();
        config.clock = Arc::new(clock);
    }
}

async fn embargoed_articles_reach_readers_and_feeds_only_at_their_time_once_across_a_restart(
    backend: Backend,
) {
    let t0 = Timestamp::new(Timestamp::now().seconds(), 0).expect("a valid time");
    let clock = ManualClock::new(t0);
    let until = t0.saturating_add_seconds(60);
    let server = TestServer::start_on_with(&backend, configure(&clock)).await;
    let mut admin = clients(server.channel().await, ADMIN);
    let mut reader = clients(server.channel().await, READER);

    let seed = admin.ingest.ingest(plain(None)).await.unwrap().into_inner();
    assert_eq!(
        (seed.outcome(), seed.cursor),
        (pb::IngestOutcome::Created, 1)
    );
    let mut live = subscribe(&mut reader.feeds, 0).await;
    assert_eq!(next_event(&mut live).await.cursor, 1);

    // A new version of the seed and a never-released article, both embargoed.
    let update = admin
        .ingest
        .ingest(embargoed_v2(until, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            update.outcome(),
            update.id.as_str(),
            update.version,
            update.cursor
        ),
        (pb::IngestOutcome::Held, seed.id.as_str(), 2, 1)
    );
    let fresh_uri = "https://alkhabar.example/news/embargoed-first";
    let fresh = admin
        .ingest
        .ingest(embargoed_v2(until, Some(fresh_uri)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (fresh.outcome(), fresh.version, fresh.cursor),
        (pb::IngestOutcome::Held, 1, 0)
    );

    // Readers: the old version, NOT_FOUND, no listing entry, and no right to ask for more.
    assert_eq!(
        get(&mut reader.articles, &seed.id, false)
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        get(&mut reader.articles, &fresh.id, false).await,
        Err(Code::NotFound)
    );
    assert_eq!(
        get(&mut reader.articles, &fresh.id, true).await,
        Err(Code::PermissionDenied)
    );
    assert_eq!(
        listed(&mut reader.articles, false).await,
        [(seed.id.clone(), 1)]
    );
    // Editors see the held versions when they ask.
    let held = get(&mut admin.articles, &fresh.id, true).await.unwrap();
    assert_eq!(held.status(), pb::ArticleStatus::Withheld);
    assert_eq!(held.located, "دير الزور");
    assert_eq!(
        get(&mut admin.articles, &seed.id, true)
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(listed(&mut admin.articles, true).await.len(), 2);

    // Feeds: the next event is the next write, not a held version.
    let marker = admin
        .ingest
        .ingest(plain(Some("https://alkhabar.example/news/marker-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marker.cursor, 2);
    assert_eq!(next_event(&mut live).await.cursor, 2);
    drop(live);

    // Still held after a restart.
    let server = server.restart_with(configure(&clock)).await;
    let mut admin = clients(server.channel().await, ADMIN);
    let mut reader = clients(server.channel().await, READER);
    assert_eq!(
        get(&mut reader.articles, &fresh.id, false).await,
        Err(Code::NotFound)
    );
    let mut live = subscribe(&mut reader.feeds, 2).await;

    // The embargo passes: both released, once each, at the next cursors, in (time, id) order.
    clock.set(until);
    let first = summary(&next_event(&mut live).await);
    let second = summary(&next_event(&mut live).await);
    assert_eq!(first, (3, pb::EventKind::Updated, seed.id.clone(), 2));
    assert_eq!(second, (4, pb::EventKind::Created, fresh.id.clone(), 1));
    let released = get(&mut reader.articles, &fresh.id, false).await.unwrap();
    assert_eq!(
        (released.status(), released.cursor, released.urgency),
        (pb::ArticleStatus::Usable, 4, 3)
    );

    clock.advance_seconds(3_600);
    let marker = admin
        .ingest
        .ingest(plain(Some("https://alkhabar.example/news/marker-2")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marker.cursor, 5);
    assert_eq!(
        next_event(&mut live).await.cursor,
        5,
        "nothing released twice"
    );
    let mut everything = subscribe(&mut reader.feeds, 0).await;
    let mut cursors = Vec::new();
    for _ in 0..5 {
        cursors.push(next_event(&mut everything).await.cursor);
    }
    assert_eq!(cursors, [1, 2, 3, 4, 5], "gap-free");
    drop((live, everything));
    server.stop().await;
}

/// Ingests `request` into a child server without tokens (every caller is admin).
async fn ingest_child(server: &ChildServer, request: pb::IngestRequest) -> pb::IngestResponse {
    IngestServiceClient::new(server.channel().await)
        .ingest(request)
        .await
        .expect("ingest")
        .into_inner()
}

async fn get_child(
    server: &ChildServer,
    id: &str,
    include_embargoed: bool,
) -> Result<pb::Article, Code> {
    ArticleServiceClient::new(server.channel().await)
        .get_article(pb::GetArticleRequest {
            id: id.to_owned(),
            include_embargoed,
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.code())
}

async fn child_events(
    server: &ChildServer,
    count: usize,
) -> Vec<(u64, pb::EventKind, String, u64)> {
    let feeds = FeedServiceClient::new(server.channel().await);
    let (events, _) = feed_from_beginning(feeds, count).await;
    events.iter().map(summary).collect()
}

crate::on_both_backends!(
    embargoed_articles_reach_readers_and_feeds_only_at_their_time_once_across_a_restart,
    an_embargo_that_passes_while_the_server_is_killed_is_released_once_at_start,
    a_far_embargo_survives_kill_9_and_stays_hidden,
);

fn kill_9(mut server: ChildServer) {
    server.child.kill().expect("kill khabar");
    server.wait_exit(WAIT);
}

async fn an_embargo_that_passes_while_the_server_is_killed_is_released_once_at_start(
    backend: Backend,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = backend.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ChildServer::start_with(dir.path(), &flags);
    let until = Timestamp::now().saturating_add_seconds(2);
    let uri = "https://alkhabar.example/news/embargo-kill";
    let held = ingest_child(&server, embargoed_v2(until, Some(uri))).await;
    assert_eq!(held.outcome(), pb::IngestOutcome::Held);
    kill_9(server);

    // The one real wait of these tests: until the embargo has passed (about two seconds).
    let wait = khabar::domain::embargo::duration_between(Timestamp::now(), until);
    tokio::time::sleep(wait.min(Duration::from_secs(3)) + Duration::from_millis(50)).await;
    assert!(khabar::domain::embargo::SystemClock.now() >= until);

    let server = ChildServer::start_with(dir.path(), &flags);
    let events = child_events(&server, 1).await;
    assert_eq!(events, [(1, pb::EventKind::Created, held.id.clone(), 1)]);
    assert_eq!(get_child(&server, &held.id, false).await.unwrap().cursor, 1);
    kill_9(server);

    // Not released again by the next start.
    let server = ChildServer::start_with(dir.path(), &flags);
    let marker = ingest_child(&server, plain(None)).await;
    assert_eq!(marker.cursor, 2);
    let events = child_events(&server, 2).await;
    assert_eq!(events[1].2, marker.id);
}

async fn a_far_embargo_survives_kill_9_and_stays_hidden(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = backend.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ChildServer::start_with(dir.path(), &flags);
    let until = Timestamp::now().saturating_add_seconds(86_400);
    let uri = "https://alkhabar.example/news/embargo-far";
    let held = ingest_child(&server, embargoed_v2(until, Some(uri))).await;
    assert_eq!((held.outcome(), held.cursor), (pb::IngestOutcome::Held, 0));
    kill_9(server);

    let server = ChildServer::start_with(dir.path(), &flags);
    assert_eq!(
        get_child(&server, &held.id, false).await,
        Err(Code::NotFound)
    );
    let editors = get_child(&server, &held.id, true).await.unwrap();
    assert_eq!(
        (editors.status(), editors.version),
        (pb::ArticleStatus::Withheld, 1)
    );
    let marker = ingest_child(&server, plain(None)).await;
    assert_eq!(marker.cursor, 1);
    let events = child_events(&server, 1).await;
    assert_eq!(
        events[0].2, marker.id,
        "the first event is the marker, not the held article"
    );
    // The same content again while held: unchanged.
    let again = ingest_child(&server, embargoed_v2(until, Some(uri))).await;
    assert_eq!(
        (again.outcome(), again.id),
        (pb::IngestOutcome::Unchanged, held.id)
    );
}
