//! The sled index: how each log record changes it, and the lookups the store makes.
//!
//! Every change is a blind write derived from one log record alone, so applying a record twice,
//! or applying records on top of an index that already holds some later ones, ends in the same
//! state once every record up to the end of the log has been applied. That makes replay at
//! start-up safe from any position at or before the last one the index recorded.

use super::{
    Consumer, EventKind, Result, StoreError,
    codec::{self, Applied, ArticleHead, EventRecord, PendingRecord, Record},
    keys,
    log::Location,
};
use crate::domain::{ArticleId, Timestamp};

/// One event in this many has its place in the log recorded in the index (cursors 1, 65, 129,
/// ...): one index entry per event would cost a sled insert for every article. A reader starts
/// at the entry at or before the cursor it wants and reads the log on from there.
pub const LOG_INDEX_STRIDE: u64 = 64;

/// Whether `cursor` has a log index entry.
fn indexed(cursor: u64) -> bool {
    cursor % LOG_INDEX_STRIDE == 1
}

/// Applies one log record to the index.
pub fn apply(tree: &sled::Tree, record: &Record) -> Result<()> {
    match record {
        Record::Event(EventRecord {
            event,
            head,
            previous_published_at,
            fingerprint: _,
            previous_story_id,
            dropped_held_published_at,
        }) => {
            // The urgency entry of the head this event replaces; reading it keeps a replay
            // correct too, since every later record removes the entry its predecessor made.
            if let Some(before) = self::head(tree, head.id)?
                && let Some(key) = urgency_key(&before)
                && urgency_key(head) != Some(key)
            {
                tree.remove(key)?;
            }
            // The head first: a listing that meets the new index entries finds the article.
            tree.insert(keys::article(head.id), codec::encode_head(head))?;
            if let Some(key) = urgency_key(head) {
                tree.insert(key, &[][..])?;
            }
            if indexed(event.cursor) {
                tree.insert(
                    keys::log(event.cursor),
                    &codec::encode_pointer(head.location, event.recorded_at)[..],
                )?;
            }
            if event.kind == EventKind::Created {
                // Only if absent: two articles stored before canonical addresses may share a
                // canonical key, which then names the older one (the other stays readable by
                // id). Any later article is created only under a key that is free.
                let _ = tree.compare_and_swap(
                    keys::natural_key(&head.source_id, &head.canonical_uri),
                    None as Option<&[u8]>,
                    Some(&head.id.to_bytes()[..]),
                )?;
            }
            let story = head.story_id();
            if let Some(previous) = previous_story_id
                && *previous != story
            {
                tree.remove(keys::story(*previous, head.id))?;
            }
            tree.insert(keys::story(story, head.id), &[][..])?;
            // The version's fingerprint stays in its log record, which a rebuild reads; the
            // index keeps only fingerprints computed at start for versions stored without one,
            // and a new version makes any such one stale.
            tree.remove(keys::fingerprint(head.id))?;
            if let Some(previous) = previous_published_at
                && *previous != head.published_at
            {
                tree.remove(keys::time_index(*previous, head.id))?;
            }
            tree.insert(keys::time_index(head.published_at, head.id), &[][..])?;
            // Every event ends whatever version of the article was held.
            tree.remove(keys::pending(head.id))?;
            if let Some(held) = dropped_held_published_at
                && *held != head.published_at
            {
                tree.remove(keys::time_index(*held, head.id))?;
            }
        }
        Record::Pending(pending) => {
            let head = &pending.head;
            tree.insert(keys::pending(head.id), codec::encode_pending(pending))?;
            // A never-released article is found by its natural key, so that a re-ingest moves
            // or lifts its embargo; the key names the first article stored under it, as above.
            let _ = tree.compare_and_swap(
                keys::natural_key(&head.source_id, &head.canonical_uri),
                None as Option<&[u8]>,
                Some(&head.id.to_bytes()[..]),
            )?;
            if let Some(previous) = pending.previous_published_at
                && (previous != head.published_at || !pending.is_held())
            {
                tree.remove(keys::time_index(previous, head.id))?;
            }
            if pending.is_held() {
                // Listed (to editors) at its own publication time.
                tree.insert(keys::time_index(head.published_at, head.id), &[][..])?;
            }
        }
        Record::Counters(head) => {
            tree.insert(keys::article(head.id), codec::encode_head(head))?;
        }
        Record::ConsumerPut(consumer) => {
            tree.insert(
                keys::consumer(&consumer.name),
                codec::encode_consumer(consumer),
            )?;
        }
        Record::ConsumerDeleted(name) => {
            tree.remove(keys::consumer(name))?;
        }
    }
    Ok(())
}

/// The urgency-index entry of an article head; none when its urgency is unset.
pub fn urgency_key(head: &ArticleHead) -> Option<[u8; 30]> {
    head.urgency
        .map(|u| keys::urgency_index(10 - u.get(), head.published_at, head.id))
}

/// Records that the index holds every record up to `applied.last`.
pub fn set_applied(tree: &sled::Tree, applied: &Applied) -> Result<()> {
    tree.insert(keys::applied(), &codec::encode_applied(applied)[..])?;
    Ok(())
}

/// How far the index has applied the log, if it has applied anything.
pub fn applied(tree: &sled::Tree) -> Result<Option<Applied>> {
    let key = keys::applied();
    tree.get(&key)?
        .map(|bytes| codec::decode_applied(&key, &bytes))
        .transpose()
}

/// The head of an article.
pub fn head(tree: &sled::Tree, id: ArticleId) -> Result<Option<ArticleHead>> {
    let key = keys::article(id);
    tree.get(key)?
        .map(|bytes| codec::decode_head(&key, &bytes))
        .transpose()
}

/// The version of an article stored without an event, if any.
pub fn pending(tree: &sled::Tree, id: ArticleId) -> Result<Option<PendingRecord>> {
    let key = keys::pending(id);
    tree.get(key)?
        .map(|bytes| codec::decode_pending(&key, &bytes))
        .transpose()
}

/// Every version held for release at a time, in key order: what the release timer starts
/// from.
pub fn embargoed(tree: &sled::Tree) -> Result<Vec<PendingRecord>> {
    let mut held = Vec::new();
    for entry in tree.range(keys::pending_range()) {
        let (key, value) = entry?;
        let pending = codec::decode_pending(&key, &value)?;
        if pending.until().is_some() {
            held.push(pending);
        }
    }
    Ok(held)
}

/// The article stored under a natural key.
pub fn natural_key(tree: &sled::Tree, source_id: &str, uri: &str) -> Result<Option<ArticleId>> {
    let key = keys::natural_key(source_id, uri);
    let Some(bytes) = tree.get(&key)? else {
        return Ok(None);
    };
    let id: [u8; ArticleId::LEN] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
        key: keys::printable(&key),
        reason: "id is not 16 bytes".into(),
    })?;
    Ok(Some(ArticleId::from_bytes(id)))
}

/// The members of a story, by id.
pub fn story_members(tree: &sled::Tree, story_id: ArticleId) -> Result<Vec<ArticleId>> {
    tree.scan_prefix(keys::story_prefix(story_id))
        .keys()
        .map(|key| {
            let key = key?;
            keys::story_member(&key).ok_or_else(|| StoreError::Corrupt {
                key: keys::printable(&key),
                reason: "not a story-index key".into(),
            })
        })
        .collect()
}

/// The fingerprint bytes computed at start for an article's current version, stored without
/// one, if any.
pub fn fingerprint(tree: &sled::Tree, id: ArticleId) -> Result<Option<sled::IVec>> {
    Ok(tree.get(keys::fingerprint(id))?)
}

/// A durable consumer.
pub fn consumer(tree: &sled::Tree, name: &str) -> Result<Option<Consumer>> {
    let key = keys::consumer(name);
    tree.get(&key)?
        .map(|bytes| codec::decode_consumer(&key, &bytes))
        .transpose()
}

/// Every durable consumer, by name.
pub fn consumers(tree: &sled::Tree) -> Result<Vec<Consumer>> {
    tree.range(keys::consumer_range())
        .map(|entry| {
            let (key, value) = entry?;
            codec::decode_consumer(&key, &value)
        })
        .collect()
}

/// The indexed event at or before `cursor`: its cursor, where it is, and its time.
pub fn event_at_or_before(
    tree: &sled::Tree,
    cursor: u64,
) -> Result<Option<(u64, Location, Timestamp)>> {
    let Some(entry) = tree.range(keys::log(1)..=keys::log(cursor)).next_back() else {
        return Ok(None);
    };
    let (key, value) = entry?;
    let found = keys::log_cursor(&key).ok_or_else(|| StoreError::Corrupt {
        key: keys::printable(&key),
        reason: "not a log index key".into(),
    })?;
    let (location, recorded_at) = codec::decode_pointer(&key, &value)?;
    Ok(Some((found, location, recorded_at)))
}

/// The `n`th indexed event (cursor `1 + n * LOG_INDEX_STRIDE`): where it is and its time.
pub fn indexed_event(tree: &sled::Tree, n: u64) -> Result<Option<(u64, Timestamp)>> {
    let cursor = 1 + n * LOG_INDEX_STRIDE;
    let key = keys::log(cursor);
    tree.get(key)?
        .map(|bytes| codec::decode_pointer(&key, &bytes).map(|(_, t)| (cursor, t)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::store::{EventHeader, LogEvent, codec::tests::head as sample_head};

    fn event(head: &ArticleHead, kind: EventKind, previous: Option<Timestamp>) -> Record {
        Record::Event(EventRecord {
            event: Arc::new(LogEvent {
                cursor: head.cursor,
                kind,
                recorded_at: Timestamp::new(1_800_000_000, 0).unwrap(),
                header: EventHeader {
                    id: head.id,
                    version: head.version,
                    source_id: head.source_id.clone(),
                    language: head.language.clone(),
                    tags: head.tags.clone(),
                    starts_story: head.starts_story(),
                },
                article: Bytes::new(),
            }),
            head: head.clone(),
            previous_published_at: previous,
            fingerprint: Bytes::new(),
            previous_story_id: None,
            dropped_held_published_at: None,
        })
    }

    fn time_index(tree: &sled::Tree) -> Vec<(Timestamp, ArticleId)> {
        tree.range(
            keys::time_index(Timestamp::MIN, ArticleId::from_bytes([0; 16])).to_vec()
                ..keys::time_index_end(),
        )
        .keys()
        .map(|k| keys::parse_time_index(&k.unwrap()).unwrap())
        .collect()
    }

    #[test]
    fn replaying_records_again_ends_in_the_same_index() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let at = |offset| Location {
            segment: 1,
            offset,
            len: 10,
        };
        let mut created = sample_head(at(16));
        created.cursor = 1;
        created.version = 1;
        let mut updated = created.clone();
        updated.cursor = 2;
        updated.version = 2;
        updated.location = at(26);
        updated.published_at = Timestamp::new(1_500_000_000, 0).unwrap();
        let mut counted = updated.clone();
        counted.view_count = 9_999;
        let records = [
            event(&created, EventKind::Created, None),
            event(&updated, EventKind::Updated, Some(created.published_at)),
            Record::Counters(counted.clone()),
        ];
        for record in &records {
            apply(&db, record).unwrap();
        }
        let once: Vec<_> = db.iter().map(Result::unwrap).collect();
        // Replaying from the start on top of the finished index changes nothing.
        for record in &records {
            apply(&db, record).unwrap();
        }
        let twice: Vec<_> = db.iter().map(Result::unwrap).collect();
        assert_eq!(once, twice);

        assert_eq!(head(&db, created.id).unwrap(), Some(counted));
        assert_eq!(
            natural_key(&db, &created.source_id, &created.canonical_uri).unwrap(),
            Some(created.id)
        );
        assert_eq!(
            time_index(&db),
            [(updated.published_at, created.id)],
            "the moved entry replaced the old one"
        );
        let urgency_entries: Vec<_> = db
            .scan_prefix(&keys::urgency_index_from(1)[..1])
            .keys()
            .map(|k| keys::parse_urgency_index(&k.unwrap()).unwrap())
            .collect();
        assert_eq!(
            urgency_entries,
            [(7, updated.published_at, created.id)],
            "urgency 3 is filed once, at the article's latest time"
        );
        assert_eq!(
            event_at_or_before(&db, 2).unwrap().map(|(c, l, _)| (c, l)),
            Some((1, at(16))),
            "only every {LOG_INDEX_STRIDE}th event is indexed"
        );
        assert!(db.get(keys::log(2)).unwrap().is_none());
    }

    #[test]
    fn consumers_are_put_and_deleted() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let consumer = Consumer {
            name: "indexer".into(),
            acked_cursor: 5,
            created_at: Timestamp::new(1, 0).unwrap(),
            acked_at: None,
        };
        apply(&db, &Record::ConsumerPut(consumer.clone())).unwrap();
        assert_eq!(consumers(&db).unwrap(), std::slice::from_ref(&consumer));
        apply(&db, &Record::ConsumerDeleted("indexer".into())).unwrap();
        assert_eq!(super::consumer(&db, "indexer").unwrap(), None);
    }
}
