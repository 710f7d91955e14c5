//! The most recent log events, kept in memory so that live feeds read them without going to
//! disk. Bounded by count and by bytes; older events are
//! read from the log on disk.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use super::LogEvent;

/// Most events kept.
const MAX_EVENTS: usize = 8_192;
/// Most bytes of articles kept (approximate).
const MAX_BYTES: usize = 64 << 20;

/// Shared between the writer, which appends, and the readers.
#[derive(Default)]
pub struct RecentEvents {
    inner: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    events: VecDeque<(Arc<LogEvent>, usize)>,
    bytes: usize,
}

impl RecentEvents {
    /// Appends the event just written; its cursor must follow the last one kept.
    pub fn push(&self, event: Arc<LogEvent>) {
        let size = event.approximate_size();
        let mut window = self.lock();
        if window
            .events
            .back()
            .is_some_and(|(last, _)| last.cursor + 1 != event.cursor)
        {
            // Cannot happen with one writer; starting over keeps the window contiguous.
            window.events.clear();
            window.bytes = 0;
        }
        window.events.push_back((event, size));
        window.bytes += size;
        while window.events.len() > MAX_EVENTS
            || (window.bytes > MAX_BYTES && window.events.len() > 1)
        {
            if let Some((_, size)) = window.events.pop_front() {
                window.bytes -= size;
            }
        }
    }

    /// Events with cursors in `after + 1 ..= head`, at most `max`, if the window holds the first
    /// of them; `None` when they must be read from disk.
    pub fn read(&self, after: u64, head: u64, max: usize) -> Option<Vec<Arc<LogEvent>>> {
        let window = self.lock();
        let first = window.events.front()?.0.cursor;
        if after + 1 < first {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).ok()?;
        let events: Vec<Arc<LogEvent>> = window
            .events
            .iter()
            .skip(skip)
            .take_while(|(event, _)| event.cursor <= head)
            .take(max)
            .map(|(event, _)| event.clone())
            .collect();
        // An empty answer from the window (cursors not yet written to it) means disk.
        (!events.is_empty()).then_some(events)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while holding this lock cannot leave the window inconsistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
