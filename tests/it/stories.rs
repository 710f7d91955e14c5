//! Stories and canonical addresses end to end, on both stores: copies of a story from other
//! outlets link to its first article, address variants of one page are one article, GetStory,
//! the story_ids listing filter and first_of_story feeds, assignments across restarts and a
//! SIGKILL, re-fingerprinted updates, and data stored before stories.

use std::path::Path;

use crate::common::{Backend, ChildServer, TestServer, WAIT, copy_dir, fixture, seed_request};
use khabar::pb::khabar::v1::{
    self as pb, article_service_client::ArticleServiceClient,
    feed_service_client::FeedServiceClient, ingest_service_client::IngestServiceClient,
    subscribe_request::Start,
};
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};

crate::on_both_backends!(
    copies_link_to_the_first_article_of_their_story,
    address_variants_of_one_page_are_one_article,
    an_updated_version_is_fingerprinted_again,
    assignments_survive_a_restart_and_a_kill,
    articles_stored_with_stories_off_join_stories_later,
);

/// The tuned default of `--duplicate-threshold`.
const THRESHOLD: f32 = khabar::stories::DEFAULT_THRESHOLD;

/// An article of the labeled set (`tests/fixtures/stories/articles/NAME.txt`: the headline, a
/// blank line, the body), published by `source` at `uri`, `minutes` after the seed article.
fn story_article(name: &str, source: &str, uri: &str, minutes: i64) -> pb::IngestRequest {
    let text = std::fs::read_to_string(fixture(&format!("stories/articles/{name}.txt")))
        .expect("labeled article is readable");
    let (headline, body) = text.split_once("\n\n").expect("headline, blank line, body");
    pb::IngestRequest {
        article: Some(pb::Article {
            source: Some(pb::Source {
                id: source.into(),
                name: source.to_uppercase(),
                url: String::new(),
            }),
            uri: uri.into(),
            headline: headline.trim().into(),
            body: body.trim().into(),
            language: if name.starts_with("en-") { "en" } else { "ar" }.into(),
            published_at: Some(pbjson_types::Timestamp {
                seconds: 1_467_363_600 + minutes * 60,
                nanos: 0,
            }),
            ..Default::default()
        }),
    }
}

/// The seed article, republished by another outlet with its own dateline and source line.
fn republished_copy() -> pb::IngestRequest {
    story_article(
        "ar-seed.source-line",
        "rt-arabic",
        "https://rt-arabic.example/news/1",
        90,
    )
}

/// The seed article typed plainly (no tashkeel, أ/إ/آ as ا, ى for ي), by a third outlet.
fn orthographic_copy() -> pb::IngestRequest {
    story_article(
        "ar-seed.ortho-plain",
        "sawt",
        "https://sawt.example/syria/2",
        120,
    )
}

/// An article about another event altogether.
fn unrelated() -> pb::IngestRequest {
    story_article("ar-budget", "iqtisad", "https://iqtisad.example/budget", 30)
}

struct Clients {
    ingest: IngestServiceClient<Channel>,
    articles: ArticleServiceClient<Channel>,
}

impl Clients {
    fn new(channel: Channel) -> Self {
        Self {
            ingest: IngestServiceClient::new(channel.clone()),
            articles: ArticleServiceClient::new(channel),
        }
    }

    async fn ingest(&mut self, request: pb::IngestRequest) -> pb::IngestResponse {
        self.ingest
            .ingest(request)
            .await
            .expect("ingest")
            .into_inner()
    }

    async fn get(&mut self, id: &str) -> pb::Article {
        self.articles
            .get_article(pb::GetArticleRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .expect("get")
            .into_inner()
    }

    async fn story(&mut self, story_id: &str) -> Result<Vec<pb::StoryArticle>, tonic::Status> {
        self.articles
            .get_story(pb::GetStoryRequest {
                story_id: story_id.into(),
            })
            .await
            .map(|r| r.into_inner().articles)
    }
}

/// Asserts that `article` was linked to `first` as a copy of its story.
fn assert_linked(article: &pb::Article, first: &str) {
    assert_eq!(article.story_id, first, "{}", article.headline);
    assert_eq!(article.duplicate_of, first, "{}", article.headline);
    assert!(
        (THRESHOLD..=1.0).contains(&article.similarity),
        "similarity {} of {}",
        article.similarity,
        article.headline
    );
}

/// Asserts that `article` starts its own story.
fn assert_starts_story(article: &pb::Article) {
    assert_eq!(article.story_id, article.id, "{}", article.headline);
    assert_eq!(article.duplicate_of, "");
    assert_eq!(article.similarity, 0.0);
}

async fn copies_link_to_the_first_article_of_their_story(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut clients = Clients::new(server.channel().await);
    let first = clients.ingest(seed_request()).await.id;
    let other = clients.ingest(unrelated()).await.id;
    let copy = clients.ingest(republished_copy()).await.id;
    let plain = clients.ingest(orthographic_copy()).await.id;

    let first_article = clients.get(&first).await;
    assert_starts_story(&first_article);
    assert_eq!(
        first_article.canonical_uri,
        "https://alkhabar.example/news/us-abandons-allies-syria-bukamal"
    );
    assert_starts_story(&clients.get(&other).await);
    assert_linked(&clients.get(&copy).await, &first);
    let plain_article = clients.get(&plain).await;
    assert_eq!(plain_article.story_id, first);
    assert!(
        [first.as_str(), copy.as_str()].contains(&plain_article.duplicate_of.as_str()),
        "linked to the most similar earlier article of the story"
    );
    assert!(plain_article.similarity >= THRESHOLD);

    // GetStory: the story's articles oldest first by published_at, with their sources.
    let story = clients.story(&first).await.expect("story");
    let ids: Vec<&str> = story.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [&first, &copy, &plain]);
    let sources: Vec<&str> = story
        .iter()
        .map(|a| a.source.as_ref().map_or("", |s| s.id.as_str()))
        .collect();
    assert_eq!(sources, ["alkhabar", "rt-arabic", "sawt"]);
    assert_eq!(story[0].similarity, 0.0);
    assert_eq!(story[1].duplicate_of, first);
    assert!(story[1].similarity >= THRESHOLD);
    assert_eq!(
        clients.story(&other).await.expect("a story of one").len(),
        1
    );
    let unknown = clients
        .story("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .expect_err("no such story");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let malformed = clients.story("nope").await.expect_err("not an id");
    assert_eq!(malformed.code(), Code::InvalidArgument);

    // ListArticles filtered by story, newest first, page by page.
    let mut listed = Vec::new();
    let mut request = pb::ListArticlesRequest {
        story_ids: vec![first.clone()],
        page_size: 2,
        ..Default::default()
    };
    for _ in 0..5 {
        let page = clients
            .articles
            .list_articles(request.clone())
            .await
            .expect("list")
            .into_inner();
        listed.extend(page.articles.into_iter().map(|a| a.id));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(listed, [plain.clone(), copy.clone(), first.clone()]);
    let both = clients
        .articles
        .list_articles(pb::ListArticlesRequest {
            story_ids: vec![first.clone(), other.clone()],
            source_ids: vec!["alkhabar".into(), "iqtisad".into()],
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let both: Vec<&str> = both.articles.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(both, [&other, &first], "AND across filters, OR within");
    let bad = clients
        .articles
        .list_articles(pb::ListArticlesRequest {
            story_ids: vec!["x".into()],
            ..Default::default()
        })
        .await
        .expect_err("a malformed story id");
    assert_eq!(bad.code(), Code::InvalidArgument);

    // A retracted copy leaves the story.
    clients
        .articles
        .retract_article(pb::RetractArticleRequest {
            id: plain.clone(),
            reason: "نسخة مكررة".into(),
        })
        .await
        .expect("retract");
    let story = clients.story(&first).await.expect("story");
    assert_eq!(story.len(), 2);

    // A feed of story starters only: one item per story.
    let mut feed = FeedServiceClient::new(server.channel().await)
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::FromBeginning(true)),
            filter: Some(pb::FeedFilter {
                first_of_story: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut delivered = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("event in time")
            .expect("feed open")
            .expect("event");
        if event.kind() == pb::EventKind::Checkpoint {
            // Five events: four creations and a retraction.
            if event.cursor >= 5 {
                break;
            }
            continue;
        }
        let article = event.article.expect("event article");
        assert_eq!(article.story_id, article.id, "only story starters");
        delivered.push(article.id);
    }
    assert_eq!(delivered, [first.clone(), other.clone()]);
    drop(feed);
    server.stop().await;
}

async fn address_variants_of_one_page_are_one_article(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut clients = Clients::new(server.channel().await);
    let created = clients.ingest(seed_request()).await;
    assert_eq!(created.outcome(), pb::IngestOutcome::Created);
    let page = "https://alkhabar.example/news/us-abandons-allies-syria-bukamal";
    for variant in [
        "https://www.alkhabar.example/news/us-abandons-allies-syria-bukamal?utm_source=twitter&utm_medium=social",
        "https://alkhabar.example/news/us-abandons-allies-syria-bukamal/",
        "HTTPS://ALKHABAR.EXAMPLE:443/news/us-abandons-allies-syria-bukamal#comments",
        "https://amp.alkhabar.example/news/us-abandons-allies-syria-bukamal/amp",
        "https://m.alkhabar.example/news/us-abandons-allies-syria-bukamal?fbclid=abc",
    ] {
        let mut request = seed_request();
        request.article.as_mut().unwrap().uri = variant.into();
        let answer = clients.ingest(request).await;
        assert_eq!(answer.id, created.id, "{variant}");
        assert_ne!(answer.outcome(), pb::IngestOutcome::Created, "{variant}");
        let article = clients.get(&answer.id).await;
        assert_eq!(article.uri, variant, "the address as sent is kept");
        assert_eq!(article.canonical_uri, page);
    }

    // An Arabic path, as an IRI and percent-encoded.
    let mut iri = seed_request();
    iri.article.as_mut().unwrap().uri = "https://alkhabar.example/أخبار/سوريا-البوكمال".into();
    let arabic = clients.ingest(iri).await;
    assert_eq!(arabic.outcome(), pb::IngestOutcome::Created);
    let mut encoded = seed_request();
    encoded.article.as_mut().unwrap().uri = "https://alkhabar.example/%D8%A3%D8%AE%D8%A8%D8%A7%D8%B1/%D8%B3%D9%88%D8%B1%D9%8A%D8%A7-%D8%A7%D9%84%D8%A8%D9%88%D9%83%D9%85%D8%A7%D9%84?utm_campaign=x".into();
    let again = clients.ingest(encoded).await;
    assert_eq!(again.id, arabic.id);
    assert_ne!(again.outcome(), pb::IngestOutcome::Created);
    assert_eq!(
        clients.get(&arabic.id).await.canonical_uri,
        "https://alkhabar.example/أخبار/سوريا-البوكمال"
    );

    // The same address from another source is another article.
    let mut elsewhere = seed_request();
    elsewhere
        .article
        .as_mut()
        .unwrap()
        .source
        .as_mut()
        .unwrap()
        .id = "mirror".into();
    let mirrored = clients.ingest(elsewhere).await;
    assert_eq!(mirrored.outcome(), pb::IngestOutcome::Created);
    assert_ne!(mirrored.id, created.id);
    server.stop().await;
}

async fn an_updated_version_is_fingerprinted_again(backend: Backend) {
    let server = TestServer::start_on(&backend).await;
    let mut clients = Clients::new(server.channel().await);
    let first = clients.ingest(seed_request()).await.id;
    let later = clients.ingest(unrelated()).await.id;
    assert_starts_story(&clients.get(&later).await);

    // The outlet replaces its text at the same address with a copy of the seed story.
    let mut replaced = republished_copy();
    {
        let article = replaced.article.as_mut().unwrap();
        let original = unrelated().article.unwrap();
        article.source = original.source;
        article.uri = original.uri;
    }
    let updated = clients.ingest(replaced).await;
    assert_eq!(updated.id, later);
    assert_eq!(updated.outcome(), pb::IngestOutcome::Updated);
    assert_linked(&clients.get(&later).await, &first);
    let story: Vec<String> = clients
        .story(&first)
        .await
        .expect("story")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(story, [first.clone(), later.clone()]);

    // And back: it leaves the story and starts its own again.
    let back = clients.ingest(unrelated()).await;
    assert_eq!(back.outcome(), pb::IngestOutcome::Updated);
    assert_starts_story(&clients.get(&later).await);
    assert_eq!(clients.story(&first).await.expect("story").len(), 1);
    server.stop().await;
}

async fn assignments_survive_a_restart_and_a_kill(backend: Backend) {
    let data_dir = tempfile::tempdir().unwrap();
    let flags = backend.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ChildServer::start_with(data_dir.path(), &flags);
    let mut clients = Clients::new(server.channel().await);
    let first = clients.ingest(seed_request()).await.id;
    let other = clients.ingest(unrelated()).await.id;
    let copy = clients.ingest(republished_copy()).await.id;
    let before = [
        clients.get(&first).await,
        clients.get(&other).await,
        clients.get(&copy).await,
    ];
    drop(clients);
    // SIGKILL: nothing is flushed or checkpointed on the way out.
    drop(server);

    let server = ChildServer::start_with(data_dir.path(), &flags);
    let mut clients = Clients::new(server.channel().await);
    for article in &before {
        assert_eq!(&clients.get(&article.id).await, article);
    }
    // The rebuilt story index still knows the story: a new copy links to it.
    let plain = clients.ingest(orthographic_copy()).await.id;
    let plain_article = clients.get(&plain).await;
    assert_eq!(plain_article.story_id, first);
    assert!(plain_article.similarity >= THRESHOLD);
    drop(clients);
    let mut server = server;
    server.terminate();
    assert!(server.wait_exit(WAIT).success());
    drop(server);

    // A clean restart too.
    let server = ChildServer::start_with(data_dir.path(), &flags);
    let mut clients = Clients::new(server.channel().await);
    assert_eq!(clients.get(&plain).await, plain_article);
    let ids: Vec<String> = clients
        .story(&first)
        .await
        .expect("story")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, [first, copy, plain]);
}

async fn articles_stored_with_stories_off_join_stories_later(backend: Backend) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut flags = backend.flags();
    flags.extend(["--stories".into(), "off".into()]);
    let off: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ChildServer::start_with(data_dir.path(), &off);
    let mut clients = Clients::new(server.channel().await);
    let first = clients.ingest(seed_request()).await.id;
    let copy = clients.ingest(republished_copy()).await.id;
    for id in [&first, &copy] {
        let article = clients.get(id).await;
        assert_eq!(article.story_id, "", "no story fields with stories off");
        assert_eq!(article.duplicate_of, "");
    }
    drop(clients);
    drop(server);
    if let Backend::Embedded = backend {
        mark_index_as_layout_2(data_dir.path());
    }

    let on = backend.flags();
    let on: Vec<&str> = on.iter().map(String::as_str).collect();
    let server = ChildServer::start_with(data_dir.path(), &on);
    let mut clients = Clients::new(server.channel().await);
    // Stored without fingerprints: fingerprinted at start, each its own story.
    let ids: Vec<String> = clients
        .story(&first)
        .await
        .expect("an old article is its own story")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, std::slice::from_ref(&first));
    let plain = clients.ingest(orthographic_copy()).await.id;
    let plain_article = clients.get(&plain).await;
    assert!(
        [first.as_str(), copy.as_str()].contains(&plain_article.story_id.as_str()),
        "a new copy links to an old article's story: {plain_article:?}"
    );
    assert!(plain_article.similarity >= THRESHOLD);
    // Old articles are still found by their address, in any form.
    let mut variant = seed_request();
    variant.article.as_mut().unwrap().uri =
        "https://www.alkhabar.example/news/us-abandons-allies-syria-bukamal/?utm_source=x".into();
    let answer = clients.ingest(variant).await;
    assert_eq!(answer.id, first);
}

/// Makes the embedded store's index say layout 2 (written before canonical keys and stories),
/// as a data directory of the previous release does.
fn mark_index_as_layout_2(data_dir: &Path) {
    let db = sled::open(data_dir.join("index")).expect("open the index");
    db.insert("mlayout", "2").expect("write the layout");
    db.flush().expect("flush the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_the_first_layout_gets_stories() {
    let fixture = fixture("layout-v1");
    let data_dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("data"), data_dir.path());
    let server = TestServer::start_in(data_dir, khabar::config::DEFAULT_MAX_MESSAGE_BYTES).await;
    let mut clients = Clients::new(server.channel().await);
    // Its live articles copy the seed story; each was stored as its own story.
    let old = "01M8AHZ8Z5D6NRMSNY2J7Q6PG2";
    let article = clients.get(old).await;
    assert_eq!(article.story_id, "");
    assert_eq!(
        article.canonical_uri,
        "https://alkhabar.example/migration/2"
    );
    let copy = clients.ingest(republished_copy()).await.id;
    let linked = clients.get(&copy).await;
    assert!(
        ["01M8AHZ8Z5D6NRMSNY2J7Q6PG2", "01M8AHZ98SKDRFY8X38JMNY1EW"]
            .contains(&linked.story_id.as_str()),
        "{linked:?}"
    );
    assert!(linked.similarity >= THRESHOLD);
    let story = clients.story(&linked.story_id).await.expect("story");
    assert_eq!(story.len(), 2);
    assert_eq!(story[1].id, copy);
    // An old address in another form is the old article.
    let mut variant = seed_request();
    let article = variant.article.as_mut().unwrap();
    article.uri = "https://www.alkhabar.example/migration/3/?utm_medium=rss".into();
    let answer = clients.ingest(variant).await;
    assert_eq!(answer.id, "01M8AHZ98SKDRFY8X38JMNY1EW");
    assert_ne!(answer.outcome(), pb::IngestOutcome::Created);
    server.stop().await;
}

/// Several servers on one database: each writer catches up on what the others assigned before
/// assigning, so copies ingested through different servers, even at once, join one story, in
/// the order of their cursors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_database_assign_stories_as_one() {
    let Some(backend) = Backend::postgres("servers_sharing_a_database_assign_stories_as_one").await
    else {
        return;
    };
    let flags = backend.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let servers = [
        ChildServer::start_with(dirs[0].path(), &flags),
        ChildServer::start_with(dirs[1].path(), &flags),
    ];
    let mut a = Clients::new(servers[0].channel().await);
    let mut b = Clients::new(servers[1].channel().await);
    // Both writers have their index before the first article.
    let warm = b.ingest(unrelated()).await.id;
    let first = a.ingest(seed_request()).await.id;
    let copy = b.ingest(republished_copy()).await.id;
    assert_linked(&b.get(&copy).await, &first);

    // Copies from other outlets through both servers at once.
    let outlets: Vec<pb::IngestRequest> = (0..6)
        .map(|n| {
            let mut request = orthographic_copy();
            let article = request.article.as_mut().unwrap();
            article.source.as_mut().unwrap().id = format!("outlet-{n}");
            request
        })
        .collect();
    let mut tasks = Vec::new();
    for (n, request) in outlets.into_iter().enumerate() {
        let mut client = if n % 2 == 0 {
            a.ingest.clone()
        } else {
            b.ingest.clone()
        };
        tasks.push(tokio::spawn(async move {
            client
                .ingest(request)
                .await
                .expect("ingest")
                .into_inner()
                .id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    for id in &ids {
        let article = a.get(id).await;
        assert_eq!(article.story_id, first, "{id}");
        assert!(article.similarity >= THRESHOLD);
    }
    let story = b.story(&first).await.expect("story");
    assert_eq!(story.len(), 8);
    assert_starts_story(&a.get(&warm).await);
}
