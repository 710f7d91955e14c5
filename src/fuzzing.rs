//! Entry points for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature. Each
//! runs decoders and checks on bytes the way khabar runs them on what a client sends or a disk
//! holds; none may panic, hang or allocate without bound, whatever the bytes.

use std::path::Path;

/// A request of the kind chosen by the first byte, decoded from the rest, then checked and
/// converted as its handler does.
pub fn request(data: &[u8]) {
    if let Some((kind, bytes)) = data.split_first() {
        crate::api::fuzz_request(*kind, bytes);
    }
}

/// The input of `khabar ingest` (NDJSON, a document or an array of proto3 JSON), each item
/// checked as the server would.
pub fn ingest_input(data: &[u8]) {
    crate::cli::fuzz_ingest_input(data);
}

/// One of the decoders of stored data, chosen by the first byte: log records, article heads,
/// consumers, log pointers, the applied position, log frames, the first layout's records, page
/// tokens, stored articles.
pub fn stored(data: &[u8]) {
    if let Some((kind, bytes)) = data.split_first() {
        crate::store::fuzz_stored(*kind, bytes);
    }
}

/// `data` as the only segment of a log in `dir`: opened, recovered and read.
pub fn log_segment(dir: &Path, data: &[u8]) {
    crate::store::fuzz_segment(dir, data);
}

/// Writes a seed corpus for every target into `corpus/<target>/`, built from the fixtures in
/// `fixtures` (the real Arabic article, its second version with editorial metadata, as a request
/// and as ninjs, and the invalid request) and from a real store holding
/// them.
pub fn write_seed_corpus(fixtures: &Path, corpus: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message;

    use crate::pb::khabar::v1 as pb;

    let read = |name: &str| std::fs::read_to_string(fixtures.join(name));
    let seed_json = read("seed-article.ingest.json")?;
    let invalid_json = read("invalid-article.ingest.json")?;
    let editorial_json = read("seed-article-v2.ingest.json")?;
    let ninjs_json = read("seed-article-v2.ninjs.json")?;
    let seed: pb::IngestRequest = serde_json::from_str(&seed_json)?;
    let editorial: pb::IngestRequest = serde_json::from_str(&editorial_json)?;
    let invalid: pb::IngestRequest = serde_json::from_str(&invalid_json)?;
    let mut variant = seed.clone();
    if let Some(article) = variant.article.as_mut() {
        article.uri.push_str("/2");
    }

    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)
    };
    let with_kind = |kind: u8, bytes: Vec<u8>| [vec![kind], bytes].concat();

    let requests: Vec<(u8, Vec<u8>)> = vec![
        (0, seed.encode_to_vec()),
        (0, invalid.encode_to_vec()),
        (0, editorial.encode_to_vec()),
        (
            1,
            pb::ListArticlesRequest {
                source_ids: vec!["alkhabar".into()],
                languages: vec!["ar".into()],
                tags: vec!["سوريا".into()],
                page_size: 10,
                published_after: Some(pbjson_types::Timestamp {
                    seconds: 1_467_331_200,
                    nanos: 0,
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            1,
            pb::ListArticlesRequest {
                max_urgency: 3,
                genres: vec!["genre:Current".into()],
                order_by: pb::ListOrder::Urgency.into(),
                include_expired: true,
                include_embargoed: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            2,
            pb::GetArticleRequest {
                id: "01KAVJ0G0T8RQS2D5W8MZ3C6XE".into(),
                include_embargoed: true,
            }
            .encode_to_vec(),
        ),
        (
            3,
            pb::RetractArticleRequest {
                id: "01KAVJ0G0T8RQS2D5W8MZ3C6XE".into(),
                reason: "خطأ في نسبة الخبر إلى مصدره".into(),
            }
            .encode_to_vec(),
        ),
        (
            4,
            pb::SubscribeRequest {
                start: Some(pb::subscribe_request::Start::FromTime(
                    pbjson_types::Timestamp {
                        seconds: 1_800_000_000,
                        nanos: 5,
                    },
                )),
                filter: Some(pb::FeedFilter {
                    source_ids: vec!["alkhabar".into()],
                    languages: vec!["ar".into()],
                    tags: vec!["سوريا".into()],
                    kinds: vec![1, 3],
                    first_of_story: true,
                    max_urgency: 3,
                    genres: vec!["genre:Current".into()],
                }),
                consumer: "search-indexer".into(),
            }
            .encode_to_vec(),
        ),
        (
            5,
            pb::AckRequest {
                consumer: "search-indexer".into(),
                cursor: 42,
            }
            .encode_to_vec(),
        ),
        (
            6,
            pb::GetConsumerRequest {
                name: "search-indexer".into(),
            }
            .encode_to_vec(),
        ),
    ];
    for (i, (kind, bytes)) in requests.into_iter().enumerate() {
        write("request", &format!("seed-{i}"), &with_kind(kind, bytes))?;
    }

    write("ingest_input", "document.json", seed_json.as_bytes())?;
    write("ingest_input", "invalid.json", invalid_json.as_bytes())?;
    write("ingest_input", "editorial.json", editorial_json.as_bytes())?;
    write("ingest_input", "ninjs.json", ninjs_json.as_bytes())?;
    let line = |json: &str| -> Result<String, serde_json::Error> {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(json)?)
    };
    write(
        "ingest_input",
        "lines.ndjson",
        format!("{}\n{}\n", line(&seed_json)?, line(&invalid_json)?).as_bytes(),
    )?;
    write(
        "ingest_input",
        "array.json",
        format!("[{}, {}]", line(&seed_json)?, line(&invalid_json)?).as_bytes(),
    )?;

    let store_dir = tempfile_dir("khabar-seed-store")?;
    let validated = [seed, variant, editorial]
        .into_iter()
        .map(crate::api::validate_ingest_request)
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stored, segment) = runtime.block_on(crate::store::fuzz_seeds(&store_dir, validated))?;
    std::fs::remove_dir_all(&store_dir)?;
    for (i, (kind, bytes)) in stored.into_iter().enumerate() {
        write("stored", &format!("seed-{i}"), &with_kind(kind, bytes))?;
    }
    write("log_segment", "segment", &segment)?;
    Ok(())
}

fn tempfile_dir(prefix: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
