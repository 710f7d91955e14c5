//! Blocks of decoded log events, shared by the feeds that catch up through the same stretch of
//! the log at about the same time (a replay after an outage, several consumers started from the
//! beginning): each block is read from disk, checked and decoded once, not once per feed.
//!
//! A block holds the events between two log index entries (see `index::LOG_INDEX_STRIDE`), so it
//! is read from its first event's indexed place. Only complete blocks (below the durable head)
//! are kept; eviction is first in, first out, bounded by bytes.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use super::LogEvent;

/// Bytes of events kept at most (approximate).
const MAX_BYTES: usize = 16 << 20;

/// The events of one block, in cursor order.
pub type Block = Arc<[Arc<LogEvent>]>;

/// Recently read blocks, by block number.
#[derive(Default)]
pub struct BlockCache {
    inner: Mutex<Blocks>,
}

#[derive(Default)]
struct Blocks {
    by_number: HashMap<u64, (Block, usize)>,
    order: VecDeque<u64>,
    bytes: usize,
}

impl BlockCache {
    /// The block, if it was read recently.
    pub fn get(&self, number: u64) -> Option<Block> {
        self.lock()
            .by_number
            .get(&number)
            .map(|(block, _)| block.clone())
    }

    /// Keeps a block that was just read.
    pub fn insert(&self, number: u64, block: Block) {
        let size: usize = block.iter().map(|e| e.approximate_size()).sum();
        let mut blocks = self.lock();
        if blocks.by_number.insert(number, (block, size)).is_some() {
            // Another feed read the same block meanwhile; the newer copy replaced it.
            return;
        }
        blocks.order.push_back(number);
        blocks.bytes += size;
        while blocks.bytes > MAX_BYTES && blocks.order.len() > 1 {
            let Some(oldest) = blocks.order.pop_front() else {
                break;
            };
            if let Some((_, size)) = blocks.by_number.remove(&oldest) {
                blocks.bytes -= size;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Blocks> {
        // A panic while holding this lock cannot leave the map and the order inconsistent
        // enough to matter: at worst a block is kept or dropped early.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{
        domain::{ArticleId, Timestamp},
        store::{EventHeader, EventKind},
    };

    fn block(first: u64, article_bytes: usize) -> Block {
        (first..first + 4)
            .map(|cursor| {
                Arc::new(LogEvent {
                    cursor,
                    kind: EventKind::Created,
                    recorded_at: Timestamp::MIN,
                    header: EventHeader {
                        id: ArticleId::from_bytes([1; 16]),
                        version: 1,
                        source_id: "alkhabar".into(),
                        language: "ar".into(),
                        tags: vec![],
                        starts_story: true,
                    },
                    article: Bytes::from(vec![0; article_bytes]),
                })
            })
            .collect()
    }

    #[test]
    fn keeps_blocks_until_the_byte_bound_then_drops_the_oldest() {
        let cache = BlockCache::default();
        let per_block = MAX_BYTES / 4;
        for number in 0..4 {
            cache.insert(number, block(number * 4 + 1, per_block / 4));
        }
        assert_eq!(cache.get(0).map(|b| b[0].cursor), None, "over the bound");
        assert_eq!(cache.get(3).map(|b| b[0].cursor), Some(13));
        assert!(cache.get(9).is_none());
        // A single block larger than the bound is still kept, alone.
        cache.insert(10, block(41, MAX_BYTES));
        assert!(cache.get(10).is_some());
        assert!(cache.get(3).is_none());
    }
}
