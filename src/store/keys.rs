//! Key layout of the sled index. One tree, with a one-byte prefix per kind of record. The index
//! holds only small records; the content of every article version lives in the log, and the
//! index points into it.
//!
//! | key                                       | value                                       |
//! |-------------------------------------------|---------------------------------------------|
//! | `a` id(16)                                | article head: everything but the content, and where its current event is in the log |
//! | `k` source_id 0x00 canonical_uri          | id(16) (the first article stored under it)  |
//! | `f` id(16)                                | story fingerprint of a current version logged without one |
//! | `s` story_id(16) id(16)                   | empty (the members of each story)           |
//! | `l` cursor(8, big-endian)                 | where the event is in the log, and its time |
//! | `t` published_at(12, sortable) id(16)     | empty (listing index)                       |
//! | `p` id(16)                                | a version stored without an event: held (embargoed or withheld), or the retraction of a never-released article; where its record is in the log |
//! | `u` 10-urgency(1) published_at(12) id(16) | empty (urgency listing index; urgency set only) |
//! | `c` consumer name                         | consumer record                             |
//! | `m` `layout`                              | layout version                              |
//! | `m` `applied`                             | the last log record the index has applied   |
//!
//! Big-endian cursors make the log index a contiguous range in cursor order; the time index does
//! the same for listings, newest first by reverse scan, and the urgency index most urgent first
//! (then newest) by reverse scan: urgency 1 is stored as 9, urgency 9 as 1.

use crate::domain::{ArticleId, Timestamp};

const ARTICLE: u8 = b'a';
const NATURAL_KEY: u8 = b'k';
const LOG: u8 = b'l';
const TIME_INDEX: u8 = b't';
const META: u8 = b'm';
const CONSUMER: u8 = b'c';
const FINGERPRINT: u8 = b'f';
const STORY: u8 = b's';
const PENDING: u8 = b'p';
const URGENCY_INDEX: u8 = b'u';

/// Key of the layout-version metadata record.
pub fn layout_version() -> Vec<u8> {
    [&[META][..], b"layout"].concat()
}

/// Key of the log position up to which the index has applied the log.
pub fn applied() -> Vec<u8> {
    [&[META][..], b"applied"].concat()
}

/// Key of an article record.
pub fn article(id: ArticleId) -> [u8; 17] {
    let mut key = [ARTICLE; 17];
    key[1..].copy_from_slice(&id.to_bytes());
    key
}

/// Range covering every article record.
pub fn article_range() -> std::ops::Range<Vec<u8>> {
    vec![ARTICLE]..vec![ARTICLE + 1]
}

/// Key mapping (source id, uri) to the article id. Source ids are slugs, so they never contain
/// the 0x00 separator.
pub fn natural_key(source_id: &str, uri: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + source_id.len() + uri.len());
    key.push(NATURAL_KEY);
    key.extend_from_slice(source_id.as_bytes());
    key.push(0);
    key.extend_from_slice(uri.as_bytes());
    key
}

/// Key of an article's version stored without an event.
pub fn pending(id: ArticleId) -> [u8; 17] {
    let mut key = [PENDING; 17];
    key[1..].copy_from_slice(&id.to_bytes());
    key
}

/// Range covering every version stored without an event.
pub fn pending_range() -> std::ops::Range<Vec<u8>> {
    vec![PENDING]..vec![PENDING + 1]
}

/// Key of an article's story fingerprint.
pub fn fingerprint(id: ArticleId) -> [u8; 17] {
    let mut key = [FINGERPRINT; 17];
    key[1..].copy_from_slice(&id.to_bytes());
    key
}

/// Key of a story-index entry: `id` belongs to the story `story_id`.
pub fn story(story_id: ArticleId, id: ArticleId) -> [u8; 33] {
    let mut key = [STORY; 33];
    key[1..17].copy_from_slice(&story_id.to_bytes());
    key[17..].copy_from_slice(&id.to_bytes());
    key
}

/// Prefix of every story-index entry of `story_id`.
pub fn story_prefix(story_id: ArticleId) -> [u8; 17] {
    let mut key = [STORY; 17];
    key[1..].copy_from_slice(&story_id.to_bytes());
    key
}

/// The member id of a story-index key.
pub fn story_member(key: &[u8]) -> Option<ArticleId> {
    match key {
        [STORY, _story @ ..] if key.len() == 33 => {
            Some(ArticleId::from_bytes(key[17..].try_into().ok()?))
        }
        _ => None,
    }
}

/// Key of a durable consumer.
pub fn consumer(name: &str) -> Vec<u8> {
    [&[CONSUMER][..], name.as_bytes()].concat()
}

/// Range covering every consumer.
pub fn consumer_range() -> std::ops::Range<Vec<u8>> {
    vec![CONSUMER]..vec![CONSUMER + 1]
}

/// The consumer name of a consumer key.
pub fn consumer_name(key: &[u8]) -> Option<&str> {
    match key {
        [CONSUMER, name @ ..] => std::str::from_utf8(name).ok(),
        _ => None,
    }
}

/// Key of the log event at `cursor`.
pub fn log(cursor: u64) -> [u8; 9] {
    let mut key = [LOG; 9];
    key[1..].copy_from_slice(&cursor.to_be_bytes());
    key
}

/// The cursor of a log key.
pub fn log_cursor(key: &[u8]) -> Option<u64> {
    match key {
        [LOG, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Range covering the whole log.
pub fn log_range() -> std::ops::RangeInclusive<[u8; 9]> {
    log(0)..=log(u64::MAX)
}

/// Key of a listing-index entry.
pub fn time_index(published_at: Timestamp, id: ArticleId) -> [u8; 29] {
    let mut key = [TIME_INDEX; 29];
    key[1..13].copy_from_slice(&published_at.to_sortable_bytes());
    key[13..].copy_from_slice(&id.to_bytes());
    key
}

/// Exclusive end of the listing-index range.
pub fn time_index_end() -> Vec<u8> {
    vec![TIME_INDEX + 1]
}

/// Splits a listing-index key into publication time and id.
pub fn parse_time_index(key: &[u8]) -> Option<(Timestamp, ArticleId)> {
    match key {
        [TIME_INDEX, rest @ ..] if rest.len() == 28 => {
            let published_at = Timestamp::from_sortable_bytes(&rest[..12])?;
            let id = ArticleId::from_bytes(rest[12..].try_into().ok()?);
            Some((published_at, id))
        }
        _ => None,
    }
}

/// Key of an urgency-index entry; `rank` is 10 - urgency (9 for the most urgent), so that a
/// reverse scan lists the most urgent first.
pub fn urgency_index(rank: u8, published_at: Timestamp, id: ArticleId) -> [u8; 30] {
    let mut key = [URGENCY_INDEX; 30];
    key[1] = rank;
    key[2..14].copy_from_slice(&published_at.to_sortable_bytes());
    key[14..].copy_from_slice(&id.to_bytes());
    key
}

/// Start of the urgency-index entries of rank `rank` and above.
pub fn urgency_index_from(rank: u8) -> Vec<u8> {
    vec![URGENCY_INDEX, rank]
}

/// Splits an urgency-index key into rank, publication time and id.
pub fn parse_urgency_index(key: &[u8]) -> Option<(u8, Timestamp, ArticleId)> {
    match key {
        [URGENCY_INDEX, rank, rest @ ..] if rest.len() == 28 => {
            let published_at = Timestamp::from_sortable_bytes(&rest[..12])?;
            let id = ArticleId::from_bytes(rest[12..].try_into().ok()?);
            Some((*rank, published_at, id))
        }
        _ => None,
    }
}

/// Printable form of a key for error messages.
pub fn printable(key: &[u8]) -> String {
    key.iter()
        .map(|b| match b {
            0x20..=0x7e => (*b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_cursor() {
        assert!(log(255) < log(256));
        assert!(log(1) < log(u64::MAX));
        assert_eq!(log_cursor(&log(4242)), Some(4242));
        assert_eq!(log_cursor(&article(ArticleId::from_bytes([7; 16]))), None);
    }

    #[test]
    fn time_index_round_trips() {
        let t = Timestamp::new(1_467_363_600, 5).unwrap();
        let id = ArticleId::from_bytes([9; 16]);
        assert_eq!(parse_time_index(&time_index(t, id)), Some((t, id)));
        assert_eq!(parse_time_index(&log(1)), None);
        assert_eq!(
            parse_urgency_index(&urgency_index(9, t, id)),
            Some((9, t, id))
        );
        assert_eq!(parse_urgency_index(&time_index(t, id)), None);
        assert!(urgency_index(2, Timestamp::MAX, id) < urgency_index(3, Timestamp::MIN, id));
    }

    #[test]
    fn prefixes_do_not_overlap() {
        let id = ArticleId::from_bytes([0xff; 16]);
        let t = Timestamp::MAX;
        let keys = [
            article(id).to_vec(),
            natural_key("a", "b"),
            log(u64::MAX).to_vec(),
            time_index(t, id).to_vec(),
            consumer("a"),
            layout_version(),
            fingerprint(id).to_vec(),
            story(id, id).to_vec(),
            pending(id).to_vec(),
            urgency_index(9, t, id).to_vec(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a[0], b[0]);
            }
        }
    }

    #[test]
    fn consumer_keys_round_trip_and_stay_in_range() {
        let key = consumer("search-indexer");
        assert_eq!(consumer_name(&key), Some("search-indexer"));
        assert!(consumer_range().contains(&key));
        assert!(!consumer_range().contains(&log(1).to_vec()));
    }

    #[test]
    fn printable_escapes_binary() {
        assert_eq!(printable(&[b'l', 0, 1]), "l\\x00\\x01");
    }
}
