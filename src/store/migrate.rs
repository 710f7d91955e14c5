//! Migration of a data directory of the first layout (sled alone, its files in the directory
//! itself) to the current one (`log/` and `index/`).
//!
//! Every event of the old log is written to the new log in cursor order, with its cursor, time
//! and article unchanged; a view count stored after an article's last event becomes a counters
//! record after that event; every consumer becomes a consumer record. The new log is written to
//! `log.migrating/`, synced, and only then renamed to `log/`, so a crash during the migration
//! leaves the old layout untouched and the next start begins again. The index is then rebuilt
//! from the new log by the ordinary start-up. The old files are moved to
//! `layout-v1-backup/` rather than deleted: remove that directory once the migrated store
//! serves your data.

mod v1;

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use prost::Message;
use tracing::{info, warn};

use super::{
    EventHeader, EventKind, LogEvent, Result, StoreError,
    codec::{self, ArticleHead, EventRecord, Record},
    keys,
    log::{Log, Position},
};
use crate::{
    domain::{ArticleId, Timestamp},
    wire,
};

const OLD_LAYOUT: &[u8] = b"1";
/// sled's files in a directory of the first layout.
const OLD_FILES: [&str; 3] = ["conf", "db", "blobs"];
const BACKUP_DIR: &str = "layout-v1-backup";
/// Log bytes buffered before they are written out during a migration.
const WRITE_OUT_BYTES: usize = 8 << 20;

/// Migrates `root` if it holds a directory of the first layout; does nothing otherwise.
pub fn migrate_if_needed(root: &Path, cache_capacity_bytes: u64) -> Result<()> {
    if !root.join("conf").is_file() || !root.join("db").is_file() {
        return Ok(());
    }
    let log_dir = root.join("log");
    if !log_dir.exists() {
        info!(path = %root.display(), "migrating a data directory of layout 1 to layout 2");
        let migrated = write_new_log(root, cache_capacity_bytes)?;
        std::fs::rename(root.join("log.migrating"), &log_dir)?;
        File::open(root)?.sync_all()?;
        info!(
            events = migrated.events,
            counters = migrated.counters,
            consumers = migrated.consumers,
            "layout 1 migrated to the log"
        );
    }
    let backup = move_old_files(root)?;
    warn!(
        backup = %backup.display(),
        "the files of layout 1 were kept; remove that directory once this khabar serves your data"
    );
    Ok(())
}

struct Migrated {
    events: u64,
    counters: u64,
    consumers: u64,
}

fn write_new_log(root: &Path, cache_capacity_bytes: u64) -> Result<Migrated> {
    let staging = root.join("log.migrating");
    if staging.exists() {
        // A migration that did not finish: start it again.
        std::fs::remove_dir_all(&staging)?;
    }
    let old = sled::Config::new()
        .path(root)
        .cache_capacity(cache_capacity_bytes.min(64 << 20))
        // Only read: a flushing thread would hold the files a moment after the migration.
        .flush_every_ms(None)
        .open()?;
    match old.get(keys::layout_version())? {
        Some(version) if version == OLD_LAYOUT => {}
        other => {
            return Err(StoreError::Corrupt {
                key: root.join("db").display().to_string(),
                reason: format!(
                    "sled files in the data directory with layout {:?}, not a khabar layout 1 \
                     directory: move them away, or point --data-dir elsewhere",
                    other.map(|v| keys::printable(&v))
                ),
            });
        }
    }
    let log = Log::open(&staging)?;
    let mut writer = log.writer(Position::START)?;
    let mut migrated = Migrated {
        events: 0,
        counters: 0,
        consumers: 0,
    };
    let mut published_at: HashMap<ArticleId, Timestamp> = HashMap::new();
    for (expected_cursor, entry) in (1..).zip(old.range(keys::log_range())) {
        let (key, value) = entry?;
        let event = v1::decode_event(&key, &value)?;
        if event.cursor != expected_cursor {
            return Err(StoreError::Corrupt {
                key: keys::printable(&key),
                reason: format!("the old log has a gap: cursor {expected_cursor} is missing"),
            });
        }
        let article = event.article;
        let id = article.id;
        let content = &article.content;
        let head = ArticleHead {
            // Stored before canonical addresses and stories.
            canonical_uri: crate::domain::canonical_uri(&content.uri),
            story: None,
            ..ArticleHead::of(&article, event.cursor)
        };
        let previous_published_at = published_at.insert(id, content.published_at);
        let record = Record::Event(EventRecord {
            event: Arc::new(LogEvent {
                cursor: event.cursor,
                kind: event.kind,
                recorded_at: event.recorded_at,
                header: EventHeader {
                    id,
                    version: head.version,
                    source_id: head.source_id.clone(),
                    language: head.language.clone(),
                    tags: head.tags.clone(),
                    starts_story: true,
                },
                article: Bytes::from(wire::article_pb(article).encode_to_vec()),
            }),
            head: head.clone(),
            previous_published_at: previous_published_at
                .filter(|_| event.kind != EventKind::Created),
            fingerprint: Bytes::new(),
            previous_story_id: None,
            dropped_held_published_at: None,
        });
        let location = writer.append(&codec::log_record(&record))?;
        migrated.events += 1;

        // A view count stored after the article's current version was logged.
        let article_key = keys::article(id);
        let stored = old.get(article_key)?.ok_or_else(|| StoreError::Corrupt {
            key: keys::printable(&article_key),
            reason: format!("article of logged event {} is missing", event.cursor),
        })?;
        let (view_count, current_cursor) = v1::decode_counters(&article_key, &stored)?;
        if current_cursor == event.cursor && view_count != head.view_count {
            let counted = ArticleHead {
                view_count,
                location,
                ..head
            };
            writer.append(&codec::log_record(&Record::Counters(counted)))?;
            migrated.counters += 1;
        }
        if writer.pending_bytes() >= WRITE_OUT_BYTES {
            writer.write_out()?;
        }
    }
    for entry in old.range(keys::consumer_range()) {
        let (key, value) = entry?;
        let consumer = v1::decode_consumer(&key, &value)?;
        writer.append(&codec::log_record(&Record::ConsumerPut(consumer)))?;
        migrated.consumers += 1;
    }
    writer.write_out()?;
    for file in writer.files_to_sync() {
        file.sync_data()?;
    }
    File::open(&staging)?.sync_all()?;
    Ok(migrated)
}

fn move_old_files(root: &Path) -> Result<PathBuf> {
    let backup = root.join(BACKUP_DIR);
    std::fs::create_dir_all(&backup)?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if OLD_FILES.contains(&name.as_ref()) || name.starts_with("snap.") {
            std::fs::rename(entry.path(), backup.join(&*name))?;
        }
    }
    File::open(root)?.sync_all()?;
    Ok(backup)
}

/// Runs the decoders of the first layout's records on `bytes` (a fuzz target).
#[cfg(feature = "fuzzing")]
pub(super) fn fuzz_old_records(bytes: &[u8]) -> Result<()> {
    let _ = v1::decode_event(&keys::log(1), bytes);
    let _ = v1::decode_article(b"a", bytes);
    let _ = v1::decode_consumer(&keys::consumer("c"), bytes);
    let _ = v1::decode_counters(b"a", bytes);
    Ok(())
}
