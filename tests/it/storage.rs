//! The data directory: the log as the store of events, the index rebuilt or replayed from it,
//! torn tails, damage, and the migration of the first layout.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::common::{
    ChildServer, TestServer, copy_dir, create_consumer, feed_from_beginning, run_bounded,
    seed_variant,
};
use khabar::{
    pb::khabar::v1::{self as pb, IngestOutcome},
    store::{ArticleStore, SledStore, SledStoreConfig},
};

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Offsets of the frames of a segment file, read with the documented format (16-byte header;
/// frames of magic, length, checksum, payload; zeros after the last one).
fn frame_offsets(segment: &Path) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(segment).unwrap();
    let mut frames = Vec::new();
    let mut at = 16;
    while at + 12 <= bytes.len() && bytes[at..at + 12].iter().any(|b| *b != 0) {
        assert_eq!(&bytes[at..at + 4], b"KHR1", "frame magic at {at}");
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        frames.push((at as u64, (at + 12 + len) as u64));
        at += 12 + len;
    }
    frames
}

/// Every event of the feed from the beginning, up to `count` of them.
async fn feed_events(server: &TestServer, count: usize) -> Vec<pb::FeedEvent> {
    feed_from_beginning(server.feed_client().await, count)
        .await
        .0
}

async fn get(server: &TestServer, id: &str) -> pb::Article {
    server
        .articles_client()
        .await
        .get_article(pb::GetArticleRequest {
            id: id.into(),
            ..Default::default()
        })
        .await
        .expect("article found")
        .into_inner()
}

fn json_lines<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("proto3 JSON"))
        .collect()
}

#[tokio::test]
async fn a_directory_of_the_first_layout_is_migrated_and_served_unchanged() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout-v1");
    let data_dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("data"), data_dir.path());
    let mut expected_articles: Vec<pb::Article> = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("expected/articles.json")).unwrap(),
    )
    .unwrap();
    // Stored before canonical addresses: served with the canonical form of their uri, and
    // without story fields (they were stored before stories).
    for article in &mut expected_articles {
        article.canonical_uri = khabar::domain::canonical_uri(&article.uri);
    }
    let expected_feed: Vec<pb::FeedEvent> =
        json_lines(&std::fs::read_to_string(fixture.join("expected/feed.jsonl")).unwrap());
    let expected_consumers: pb::ListConsumersResponse = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("expected/consumers.json")).unwrap(),
    )
    .unwrap();

    let server = TestServer::start_in(data_dir, khabar::config::DEFAULT_MAX_MESSAGE_BYTES).await;
    for expected in &expected_articles {
        assert_eq!(&get(&server, &expected.id).await, expected);
    }
    assert_eq!(
        expected_articles[2].view_count, 4242,
        "a view count stored after the last event is kept"
    );
    assert_eq!(feed_events(&server, 5).await, expected_feed);
    let consumers = server
        .feed_client()
        .await
        .list_consumers(pb::ListConsumersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consumers, expected_consumers);

    let next = server
        .ingest_client()
        .await
        .ingest(seed_variant(1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((next.outcome(), next.cursor), (IngestOutcome::Created, 6));
    let data_dir = server.stop().await;
    for kept in [
        "log",
        "index",
        "layout-v1-backup/db",
        "layout-v1-backup/conf",
    ] {
        assert!(data_dir.path().join(kept).exists(), "{kept}");
    }
    assert!(!data_dir.path().join("db").exists(), "old files moved away");

    // Started again: already migrated, nothing changes.
    let server = TestServer::start_in(data_dir, khabar::config::DEFAULT_MAX_MESSAGE_BYTES).await;
    for expected in &expected_articles {
        assert_eq!(&get(&server, &expected.id).await, expected);
    }
    assert_eq!(feed_events(&server, 6).await[..5], expected_feed[..]);
    server.stop().await;
}

/// Ingests a small history through the API: creations, an update, a counters update, a
/// retraction and a consumer's ack. Returns every article id.
async fn ingest_history(server: &TestServer) -> Vec<String> {
    let mut ingest = server.ingest_client().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let response = ingest.ingest(seed_variant(n)).await.unwrap().into_inner();
        ids.push(response.id);
    }
    let mut changed = seed_variant(3);
    changed
        .article
        .as_mut()
        .unwrap()
        .body
        .push_str("\n\nتحديث.");
    assert_eq!(
        ingest.ingest(changed).await.unwrap().into_inner().outcome(),
        IngestOutcome::Updated
    );
    let mut counted = seed_variant(4);
    counted.article.as_mut().unwrap().view_count = 77;
    assert_eq!(
        ingest.ingest(counted).await.unwrap().into_inner().outcome(),
        IngestOutcome::CountersUpdated
    );
    server
        .articles_client()
        .await
        .retract_article(pb::RetractArticleRequest {
            id: ids[5].clone(),
            reason: "خطأ".into(),
        })
        .await
        .unwrap();
    let mut feeds = server.feed_client().await;
    create_consumer(&mut feeds, "indexer").await;
    feeds
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: 9,
        })
        .await
        .unwrap();
    ids
}

/// What a client can read of a server: every article, the feed, the consumers.
async fn snapshot(
    server: &TestServer,
    ids: &[String],
    events: usize,
) -> (Vec<pb::Article>, Vec<pb::FeedEvent>, Vec<(String, u64)>) {
    let mut articles = Vec::new();
    for id in ids {
        articles.push(get(server, id).await);
    }
    let consumers = server
        .feed_client()
        .await
        .list_consumers(pb::ListConsumersRequest {})
        .await
        .unwrap()
        .into_inner()
        .consumers
        .into_iter()
        .map(|c| (c.name, c.acked_cursor))
        .collect();
    (articles, feed_events(server, events).await, consumers)
}

#[tokio::test]
async fn the_index_is_rebuilt_from_the_log_alone() {
    let server = TestServer::start().await;
    let ids = ingest_history(&server).await;
    let before = snapshot(&server, &ids, 14).await;
    assert_eq!(before.0[4].view_count, 77);
    assert_eq!(before.2, [("indexer".to_owned(), 9)]);
    let data_dir = server.stop().await;

    std::fs::remove_dir_all(data_dir.path().join("index")).unwrap();
    let server = TestServer::start_in(data_dir, khabar::config::DEFAULT_MAX_MESSAGE_BYTES).await;
    assert_eq!(snapshot(&server, &ids, 14).await, before);
    let listed = server
        .articles_client()
        .await
        .list_articles(pb::ListArticlesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.articles.len(), 11, "the retracted one is left out");
    let next = server
        .ingest_client()
        .await
        .ingest(seed_variant(100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.cursor, 15, "cursors go on after the rebuilt head");
    server.stop().await;
}

#[tokio::test]
async fn acknowledged_writes_the_index_never_saw_are_replayed_after_sigkill() {
    let data_dir = tempfile::tempdir().unwrap();
    // The index is checkpointed only at start: everything after it lives in the log alone.
    let server = ChildServer::start_with(data_dir.path(), &["--index-checkpoint-ms", "3600000"]);
    let channel = server.channel().await;
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(channel.clone());
    let mut acked = Vec::new();
    for n in 0..40 {
        acked.push(ingest.ingest(seed_variant(n)).await.unwrap().into_inner());
    }
    let mut feeds = pb::feed_service_client::FeedServiceClient::new(channel);
    create_consumer(&mut feeds, "indexer").await;
    feeds
        .ack(pb::AckRequest {
            consumer: "indexer".into(),
            cursor: 33,
        })
        .await
        .unwrap();
    drop(server); // SIGKILL

    let server = ChildServer::start(data_dir.path());
    let opened = server
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("store opened"))
        .cloned()
        .expect("store opened line");
    let replayed: u64 = opened
        .split("replayed=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("replayed count in {opened}"));
    // 40 articles, the consumer's creation and its ack: all in the log, none checkpointed.
    assert!(
        (1..=42).contains(&replayed),
        "the records after the start-up checkpoint were applied again: {opened}"
    );
    let channel = server.channel().await;
    let mut articles = pb::article_service_client::ArticleServiceClient::new(channel.clone());
    for ack in &acked {
        let article = articles
            .get_article(pb::GetArticleRequest {
                id: ack.id.clone(),
                ..Default::default()
            })
            .await
            .expect("acknowledged article survives")
            .into_inner();
        assert_eq!(article.cursor, ack.cursor);
    }
    let consumer = pb::feed_service_client::FeedServiceClient::new(channel)
        .get_consumer(pb::GetConsumerRequest {
            name: "indexer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((consumer.acked_cursor, consumer.head_cursor), (33, 40));
}

fn open_store(data_dir: &Path) -> khabar::store::Result<SledStore> {
    SledStore::open(&SledStoreConfig::new(data_dir.to_owned()))
}

/// A small article, so that cutting its record at every byte stays quick.
fn small_article(n: u32) -> khabar::domain::ValidArticle {
    khabar::domain::ArticleDraft {
        source: khabar::domain::SourceDraft {
            id: "alkhabar".into(),
            name: "الخبر".into(),
            url: String::new(),
        },
        uri: format!("https://alkhabar.example/small/{n}"),
        headline: format!("عنوان {n}"),
        body: format!("نص قصير {n}"),
        language: "ar".into(),
        published_at: Some(khabar::domain::TimestampDraft {
            seconds: 1_467_331_200 + i64::from(n),
            nanos: 0,
        }),
        ..khabar::domain::ArticleDraft::default()
    }
    .validate(khabar::domain::Timestamp::now())
    .expect("valid")
}

#[tokio::test]
async fn a_torn_tail_is_dropped_wherever_the_last_record_is_cut() {
    // `base`: two articles, the index up to date. `full`: the same log plus a third record that
    // the index has not applied, as when a crash cuts the append of a group short.
    let base = tempfile::tempdir().unwrap();
    let store = open_store(base.path()).unwrap();
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(store.ingest(small_article(n)).await.unwrap().id);
    }
    drop(store);
    let full = tempfile::tempdir().unwrap();
    copy_dir(base.path(), full.path());
    let store = open_store(full.path()).unwrap();
    store.ingest(small_article(2)).await.unwrap();
    drop(store);
    let full_segment = std::fs::read(&segments(full.path())[0]).unwrap();
    let (last_start, last_end) = *frame_offsets(&segments(full.path())[0]).last().unwrap();

    // Every byte of the frame header and of the record's ends, and every 16th in between (the
    // log's own tests cut at every byte; here each cut opens a whole store).
    let cuts = (last_start..last_end)
        .filter(|cut| cut - last_start < 32 || last_end - cut <= 32 || cut % 16 == 0);
    for (cut, keep_size) in cuts.flat_map(|cut| [(cut, false), (cut, true)]) {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        // The write stopped at `cut`: the file ends there, or the prepared zeros follow.
        let mut torn = full_segment.clone();
        if keep_size {
            torn[cut as usize..last_end as usize].fill(0);
        } else {
            torn.truncate(cut as usize);
        }
        std::fs::write(&segments(dir.path())[0], &torn).unwrap();
        let store = open_store(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(*store.durable_head().borrow(), 2, "cut at {cut}");
        for id in &ids {
            store.get(*id, khabar::store::View::Released).await.unwrap();
        }
        let next = store.ingest(small_article(3)).await.unwrap();
        assert_eq!(next.cursor, 3, "cut at {cut}");
        drop(store);
        assert_eq!(
            frame_offsets(&segments(dir.path())[0]).len(),
            3,
            "cut at {cut}: the torn bytes were removed before the next append"
        );
    }
}

#[tokio::test]
async fn damage_before_the_tail_stops_the_start_naming_file_and_offset() {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    for n in 0..3 {
        ingest.ingest(seed_variant(n)).await.unwrap();
    }
    let data_dir = server.stop().await;
    let segment = segments(data_dir.path())[0].clone();
    let (first, _) = frame_offsets(&segment)[0];
    let mut bytes = std::fs::read(&segment).unwrap();
    let flipped = first as usize + 12 + 1_000;
    bytes[flipped] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    // The index replays from its last checkpoint: remove it, so the whole log is read again.
    std::fs::remove_dir_all(data_dir.path().join("index")).unwrap();

    let err = open_store(data_dir.path()).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains(&segment.display().to_string()), "{text}");
    assert!(text.contains(&format!("offset {first}")), "{text}");
    assert!(text.contains("checksum"), "{text}");

    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_khabar"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path()),
        None,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    assert!(line.contains(&segment.display().to_string()), "{line}");
    assert!(line.contains(&format!("offset {first}")), "{line}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "nothing is truncated on damage"
    );
}

#[tokio::test]
async fn a_damaged_last_record_is_noticed_at_start() {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    for n in 0..3 {
        ingest.ingest(seed_variant(n)).await.unwrap();
    }
    let data_dir = server.stop().await;
    let segment = segments(data_dir.path())[0].clone();
    let (last, _) = *frame_offsets(&segment).last().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[last as usize + 12 + 100] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    // The index applied that record: it cannot pass for a torn write that was never acknowledged.
    let err = open_store(data_dir.path()).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains(&format!("offset {last}")), "{text}");
    assert!(text.contains("acknowledged writes are missing"), "{text}");
}

/// Starts `khabar serve` on `data_dir` expecting it to refuse: returns its one error line.
fn refused_start(data_dir: &Path, as_nobody: bool) -> String {
    let binary = env!("CARGO_BIN_EXE_khabar");
    let mut command = if as_nobody {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", binary])
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
        command
    } else {
        let mut command = Command::new(binary);
        command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
        command
    };
    let output = run_bounded(
        command.arg(data_dir).env("NO_COLOR", "1"),
        None,
        Duration::from_secs(20),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0].to_owned()
}

/// Thirty acknowledged articles through a real server; their ids.
async fn thirty_articles() -> (tempfile::TempDir, Vec<String>) {
    let server = TestServer::start().await;
    let mut ingest = server.ingest_client().await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(
            ingest
                .ingest(seed_variant(n))
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    (server.stop().await, ids)
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_damaged_index_is_repaired_from_the_log() {
    for file in ["db", "conf"] {
        let (data_dir, ids) = thirty_articles().await;
        let path = data_dir.path().join("index").join(file);
        let middle = std::fs::metadata(&path).unwrap().len() as usize / 2;
        flip_byte(&path, middle);
        let server =
            TestServer::start_in(data_dir, khabar::config::DEFAULT_MAX_MESSAGE_BYTES).await;
        for id in &ids {
            get(&server, id).await;
        }
        assert_eq!(feed_events(&server, 30).await.len(), 30, "{file}");
        let listed = server
            .articles_client()
            .await
            .list_articles(pb::ListArticlesRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.articles.len(), 30, "{file}");
        let data_dir = server.stop().await;
        if file == "conf" {
            // sled cannot open it at all: it was moved aside and rebuilt.
            let kept = std::fs::read_dir(data_dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("index.unreadable-")
                });
            assert!(kept, "the unreadable index is kept aside");
        }
    }
}

#[tokio::test]
async fn a_damaged_log_record_stops_the_start_naming_file_and_offset() {
    let (data_dir, _) = thirty_articles().await;
    let segment = segments(data_dir.path())[0].clone();
    let frames = frame_offsets(&segment);
    let (start, end) = frames[frames.len() / 2];
    flip_byte(&segment, ((start + end) / 2) as usize);
    let line = refused_start(data_dir.path(), false);
    assert!(line.contains(&segment.display().to_string()), "{line}");
    assert!(line.contains(&format!("offset {start}")), "{line}");
    assert!(line.contains("acknowledged"), "{line}");
}

#[tokio::test]
async fn foreign_files_and_wrong_permissions_stop_the_start_with_one_line() {
    // A file of another program where a segment belongs.
    let (data_dir, _) = thirty_articles().await;
    let segment = segments(data_dir.path())[0].clone();
    std::fs::write(&segment, b"\x89PNG\r\n\x1a\n not a khabar file").unwrap();
    let line = refused_start(data_dir.path(), false);
    assert!(line.contains(&segment.display().to_string()), "{line}");
    assert!(line.contains("not a khabar log segment"), "{line}");

    // A data directory that is a file.
    let file = tempfile::NamedTempFile::new().unwrap();
    let line = refused_start(file.path(), false);
    assert!(line.contains(&file.path().display().to_string()), "{line}");

    // A directory the server's user cannot enter (as root, the server runs as nobody).
    let is_root = run_bounded(Command::new("id").arg("-u"), None, Duration::from_secs(5))
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !is_root {
        eprintln!("SKIPPED the permission case: it needs root to run the server as nobody");
        return;
    }
    let locked = tempfile::tempdir().unwrap();
    let data = locked.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(locked.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let line = refused_start(&data, true);
    assert!(line.contains(&data.display().to_string()), "{line}");
    assert!(line.contains("ermission denied"), "{line}");
}

#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_is_refused_and_changes_nothing() {
    let data_dir = tempfile::tempdir().unwrap();
    let first = ChildServer::start(data_dir.path());
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(first.channel().await);
    let before = ingest
        .ingest(seed_variant(1))
        .await
        .expect("ingest")
        .into_inner();

    let line = refused_start(data_dir.path(), false);
    assert!(
        line.contains(&format!("in use by process {}", first.child.id())),
        "{line}"
    );
    assert!(line.contains("--data-dir"), "{line}");
    let entries: Vec<String> = std::fs::read_dir(data_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries
            .iter()
            .any(|name| name.starts_with("index.unreadable")),
        "the index in use was not taken for damaged: {entries:?}"
    );

    // The server that holds the directory goes on as before.
    let after = ingest
        .ingest(seed_variant(2))
        .await
        .expect("ingest after the refused start")
        .into_inner();
    assert_eq!(after.cursor, before.cursor + 1);
    let mut articles = pb::article_service_client::ArticleServiceClient::new(first.channel().await);
    for id in [&before.id, &after.id] {
        articles
            .get_article(pb::GetArticleRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("both articles are served");
    }
    drop(first);

    // Once it is gone (killed, so the lock is released by the system), the directory is free.
    let second = ChildServer::start(data_dir.path());
    let mut articles =
        pb::article_service_client::ArticleServiceClient::new(second.channel().await);
    let listed = articles
        .list_articles(pb::ListArticlesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.articles.len(), 2);
}
