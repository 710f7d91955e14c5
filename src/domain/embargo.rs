//! Pending embargo releases and the clock that decides when they are due.
//!
//! [`EmbargoSchedule`] is an in-memory index of the articles whose current version waits for
//! its embargo time; the durable truth is the store, which keeps the embargo with each stored
//! version and whether that version was released. At start the server rebuilds the schedule
//! from the store ([`EmbargoSchedule::from_pending`]); whatever passed while it was down is then
//! due at once, oldest first.
//!
//! A release is two steps so that a crash between them loses nothing: [`EmbargoSchedule::due`]
//! only looks, the caller appends the release event and marks the version released in one
//! durable write, and only then calls [`EmbargoSchedule::released`].

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use tokio::sync::watch;

use super::{ArticleId, Timestamp, editorial::Transition};

/// The longest a [`SystemClock`] timer sleeps before looking at the wall clock again, so that a
/// step of the system clock delays a release by at most this much.
pub const MAX_TIMER_SLEEP: Duration = Duration::from_millis(500);

/// A future that a clock resolves at a given time.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where the time comes from: the system clock in the server, a [`ManualClock`] in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Resolves once [`Clock::now`] has reached `deadline`, or a little earlier (at most
    /// [`MAX_TIMER_SLEEP`] for the system clock) so the caller can look again: a timer loop
    /// re-checks [`EmbargoSchedule::due`] after every wake-up.
    fn sleep_until(&self, deadline: Timestamp) -> Sleep<'_>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep<'_> {
        let wait = duration_between(Timestamp::now(), deadline).min(MAX_TIMER_SLEEP);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The time from `from` to `to`, zero when `to` is not later.
pub fn duration_between(from: Timestamp, to: Timestamp) -> Duration {
    if to <= from {
        return Duration::ZERO;
    }
    let to_nanos = i128::from(to.seconds()) * 1_000_000_000 + i128::from(to.nanos());
    let from_nanos = i128::from(from.seconds()) * 1_000_000_000 + i128::from(from.nanos());
    let nanos = u64::try_from(to_nanos - from_nanos).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos)
}

/// A clock that moves only when told to; sleepers wake as soon as it reaches their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Sets the time; moving it backwards is allowed (as the wall clock may).
    pub fn set(&self, t: Timestamp) {
        self.now.send_replace(t);
    }

    /// Moves the time forward by `seconds`.
    pub fn advance_seconds(&self, seconds: i64) {
        self.now
            .send_modify(|t| *t = t.saturating_add_seconds(seconds));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep<'_> {
        let mut changes = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, so `changed` cannot fail while we wait.
            while *changes.borrow_and_update() < deadline {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// One pending release: this version of this article becomes visible at `release_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingRelease {
    /// When it is due. First in the ordering.
    pub release_at: Timestamp,
    /// The article; orders releases due at the same time (ids sort by creation).
    pub id: ArticleId,
    /// The version that waits.
    pub version: u64,
}

/// What [`EmbargoSchedule::schedule`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleChange {
    /// The article had nothing pending.
    Inserted,
    /// The article had an earlier version pending, at `from`; its release is replaced.
    Moved {
        /// The replaced release time.
        from: Timestamp,
    },
    /// An entry for a later version is already pending; this older one is ignored.
    Stale,
}

/// The pending embargo releases, ordered by time and then article id. At most one entry per
/// article: a new version replaces the previous one's release.
#[derive(Debug, Default, Clone)]
pub struct EmbargoSchedule {
    by_time: BTreeSet<PendingRelease>,
    by_article: HashMap<ArticleId, PendingRelease>,
}

impl EmbargoSchedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schedule after a start, from every stored version that waits for its embargo, in any
    /// order. Where an article appears twice the later version wins.
    pub fn from_pending(pending: impl IntoIterator<Item = PendingRelease>) -> Self {
        let mut schedule = Self::new();
        for p in pending {
            schedule.schedule(p.id, p.version, p.release_at);
        }
        schedule
    }

    /// Number of pending releases.
    pub fn len(&self) -> usize {
        self.by_article.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_article.is_empty()
    }

    /// The pending release of `id`, if any.
    pub fn get(&self, id: ArticleId) -> Option<PendingRelease> {
        self.by_article.get(&id).copied()
    }

    /// Every pending release, in release order.
    pub fn iter(&self) -> impl Iterator<Item = &PendingRelease> {
        self.by_time.iter()
    }

    /// Schedules `version` of `id` for `release_at`, replacing an earlier version's entry (the
    /// embargo was moved, or a new version came while the old one waited).
    pub fn schedule(
        &mut self,
        id: ArticleId,
        version: u64,
        release_at: Timestamp,
    ) -> ScheduleChange {
        let entry = PendingRelease {
            release_at,
            id,
            version,
        };
        let change = match self.by_article.get(&id) {
            Some(old) if old.version > version => return ScheduleChange::Stale,
            Some(old) => {
                let from = old.release_at;
                self.by_time.remove(old);
                ScheduleChange::Moved { from }
            }
            None => ScheduleChange::Inserted,
        };
        self.by_time.insert(entry);
        self.by_article.insert(id, entry);
        change
    }

    /// Removes the pending release of `id` (the embargo was lifted, or the article was
    /// withheld or canceled) and returns it.
    pub fn lift(&mut self, id: ArticleId) -> Option<PendingRelease> {
        let old = self.by_article.remove(&id)?;
        self.by_time.remove(&old);
        Some(old)
    }

    /// Brings the schedule in line with a new stored `version` of `id`, as decided by
    /// [`super::editorial::transition`].
    pub fn apply(&mut self, id: ArticleId, version: u64, transition: &Transition) {
        match transition {
            Transition::Embargo { until, .. } => {
                self.schedule(id, version, *until);
            }
            Transition::Publish { .. } | Transition::Withhold | Transition::Retract { .. } => {
                if self.get(id).is_some_and(|p| p.version <= version) {
                    self.lift(id);
                }
            }
            Transition::Unchanged | Transition::Refused => {}
        }
    }

    /// The earliest release time, for the timer.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.by_time.first().map(|p| p.release_at)
    }

    /// Every release due at `now` (release time at or before it), by time and then article id.
    /// Nothing is removed: call [`EmbargoSchedule::released`] once each is durably released.
    pub fn due(&self, now: Timestamp) -> Vec<PendingRelease> {
        self.by_time
            .iter()
            .take_while(|p| p.release_at <= now)
            .copied()
            .collect()
    }

    /// Removes `release` once it is done; false (and nothing removed) when the article's entry
    /// changed meanwhile (a new version moved the embargo).
    pub fn released(&mut self, release: &PendingRelease) -> bool {
        if self.by_article.get(&release.id) == Some(release) {
            self.lift(release.id);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, PoisonError};

    use super::*;

    /// A schedule shared between a test's ingest side and its release timer.
    type SharedSchedule = Arc<Mutex<EmbargoSchedule>>;

    fn lock(schedule: &SharedSchedule) -> std::sync::MutexGuard<'_, EmbargoSchedule> {
        schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
    use crate::domain::editorial::ReleaseEvent;
    use ulid::Ulid;

    const T0: i64 = 1_800_000_000;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::new(seconds, 0).unwrap()
    }

    fn id(n: u128) -> ArticleId {
        ArticleId::from_ulid(Ulid(n))
    }

    fn pending(n: u128, version: u64, seconds: i64) -> PendingRelease {
        PendingRelease {
            release_at: at(seconds),
            id: id(n),
            version,
        }
    }

    fn ids(releases: &[PendingRelease]) -> Vec<u128> {
        releases
            .iter()
            .map(|p| u128::from_be_bytes(p.id.to_bytes()))
            .collect()
    }

    #[test]
    fn due_in_time_order_then_by_article_id() {
        let mut s = EmbargoSchedule::new();
        s.schedule(id(3), 1, at(T0 + 20));
        s.schedule(id(2), 1, at(T0 + 10));
        s.schedule(id(9), 1, at(T0 + 10));
        s.schedule(id(1), 1, at(T0 + 10));
        s.schedule(id(5), 1, at(T0 + 30));
        assert_eq!(s.next_due(), Some(at(T0 + 10)));
        assert!(s.due(at(T0 + 9)).is_empty());
        assert_eq!(ids(&s.due(at(T0 + 10))), [1, 2, 9]);
        assert_eq!(ids(&s.due(at(T0 + 25))), [1, 2, 9, 3]);
        assert_eq!(s.len(), 5, "due only looks");
    }

    #[test]
    fn nanoseconds_count() {
        let mut s = EmbargoSchedule::new();
        let just_after = Timestamp::new(T0, 1).unwrap();
        s.schedule(id(1), 1, just_after);
        assert!(s.due(at(T0)).is_empty());
        assert_eq!(s.due(just_after).len(), 1);
    }

    #[test]
    fn moving_an_embargo_replaces_the_entry() {
        let mut s = EmbargoSchedule::new();
        assert_eq!(s.schedule(id(1), 1, at(T0 + 10)), ScheduleChange::Inserted);
        s.schedule(id(2), 1, at(T0 + 20));
        assert_eq!(
            s.schedule(id(1), 2, at(T0 + 30)),
            ScheduleChange::Moved { from: at(T0 + 10) }
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_due(), Some(at(T0 + 20)));
        assert_eq!(ids(&s.due(at(T0 + 30))), [2, 1]);
        assert_eq!(s.get(id(1)), Some(pending(1, 2, T0 + 30)));

        // Moved earlier.
        s.schedule(id(1), 3, at(T0 + 5));
        assert_eq!(ids(&s.due(at(T0 + 5))), [1]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn an_older_version_does_not_replace_a_newer_one() {
        let mut s = EmbargoSchedule::new();
        s.schedule(id(1), 4, at(T0 + 10));
        assert_eq!(s.schedule(id(1), 3, at(T0 + 1)), ScheduleChange::Stale);
        assert_eq!(s.get(id(1)), Some(pending(1, 4, T0 + 10)));
    }

    #[test]
    fn lifting_removes_the_entry() {
        let mut s = EmbargoSchedule::new();
        s.schedule(id(1), 1, at(T0 + 10));
        s.schedule(id(2), 1, at(T0 + 10));
        assert_eq!(s.lift(id(1)), Some(pending(1, 1, T0 + 10)));
        assert_eq!(s.lift(id(1)), None);
        assert_eq!(ids(&s.due(at(T0 + 100))), [2]);
    }

    #[test]
    fn re_ingest_while_pending_follows_the_transition() {
        let mut s = EmbargoSchedule::new();
        let embargo = |seconds| Transition::Embargo {
            until: at(seconds),
            event: ReleaseEvent::Created,
        };
        s.apply(id(1), 1, &embargo(T0 + 60));
        s.apply(id(2), 1, &embargo(T0 + 60));
        s.apply(id(3), 1, &embargo(T0 + 60));
        // Moved later, lifted (published now), withheld.
        s.apply(id(1), 2, &embargo(T0 + 120));
        s.apply(
            id(2),
            2,
            &Transition::Publish {
                event: ReleaseEvent::Created,
            },
        );
        s.apply(id(3), 2, &Transition::Withhold);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(id(1)), Some(pending(1, 2, T0 + 120)));
        // A retraction of an older version than the one pending leaves the newer one alone.
        s.apply(
            id(1),
            1,
            &Transition::Retract {
                reason: "x".into(),
                announce: false,
            },
        );
        assert_eq!(s.len(), 1);
        s.apply(
            id(1),
            3,
            &Transition::Retract {
                reason: "x".into(),
                announce: false,
            },
        );
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn released_only_removes_the_entry_that_was_due() {
        let mut s = EmbargoSchedule::new();
        s.schedule(id(1), 1, at(T0 + 10));
        let due = s.due(at(T0 + 10));
        // A new version moves the embargo between `due` and the release being written.
        s.schedule(id(1), 2, at(T0 + 50));
        assert!(!s.released(&due[0]));
        assert_eq!(s.len(), 1);
        let due = s.due(at(T0 + 50));
        assert!(s.released(&due[0]));
        assert!(s.is_empty());
    }

    #[test]
    fn rebuild_at_start_releases_what_passed_while_down_in_order() {
        // As read from the store at start: any order, some already past, one article twice.
        let stored = [
            pending(7, 1, T0 + 500),
            pending(4, 2, T0 - 30),
            pending(5, 1, T0 - 3_600),
            pending(6, 1, T0 - 30),
            pending(4, 1, T0 - 7_200),
            pending(8, 3, T0),
        ];
        let s = EmbargoSchedule::from_pending(stored);
        assert_eq!(s.len(), 5);
        let due = s.due(at(T0));
        assert_eq!(
            due,
            [
                pending(5, 1, T0 - 3_600),
                pending(4, 2, T0 - 30),
                pending(6, 1, T0 - 30),
                pending(8, 3, T0),
            ]
        );
        assert_eq!(s.next_due(), Some(at(T0 - 3_600)));
        // The same store read in another order gives the same schedule.
        let mut reversed = stored;
        reversed.reverse();
        let again = EmbargoSchedule::from_pending(reversed);
        assert_eq!(again.due(at(T0 + 1_000)), s.due(at(T0 + 1_000)));
    }

    #[test]
    fn duration_between_handles_nanos_and_the_past() {
        let a = Timestamp::new(10, 900_000_000).unwrap();
        let b = Timestamp::new(12, 100_000_000).unwrap();
        assert_eq!(duration_between(a, b), Duration::from_millis(1_200));
        assert_eq!(duration_between(b, a), Duration::ZERO);
        assert_eq!(duration_between(a, a), Duration::ZERO);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(at(T0));
        assert_eq!(clock.now(), at(T0));
        clock.advance_seconds(5);
        assert_eq!(clock.now(), at(T0 + 5));
        clock.set(at(T0 - 5));
        assert_eq!(clock.now(), at(T0 - 5));
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_at_their_deadline() {
        let clock = ManualClock::new(at(T0));
        let schedule: SharedSchedule = Arc::default();
        lock(&schedule).schedule(id(1), 1, at(T0 + 60));
        lock(&schedule).schedule(id(2), 1, at(T0 + 120));

        // A release loop as the server would run it, bounded in rounds.
        let (released_tx, mut released_rx) = tokio::sync::mpsc::unbounded_channel();
        let timer = {
            let clock = clock.clone();
            let schedule = schedule.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    let Some(next) = lock(&schedule).next_due() else {
                        return;
                    };
                    clock.sleep_until(next).await;
                    let due = lock(&schedule).due(clock.now());
                    for release in due {
                        lock(&schedule).released(&release);
                        if released_tx.send(release).is_err() {
                            return;
                        }
                    }
                }
            })
        };

        let wait = Duration::from_secs(10);
        tokio::task::yield_now().await;
        assert!(released_rx.try_recv().is_err(), "nothing is due yet");
        clock.advance_seconds(59);
        tokio::task::yield_now().await;
        assert!(released_rx.try_recv().is_err(), "one second early");
        clock.advance_seconds(1);
        let first = tokio::time::timeout(wait, released_rx.recv())
            .await
            .unwrap();
        assert_eq!(first, Some(pending(1, 1, T0 + 60)));
        clock.advance_seconds(600);
        let second = tokio::time::timeout(wait, released_rx.recv())
            .await
            .unwrap();
        assert_eq!(second, Some(pending(2, 1, T0 + 120)));
        tokio::time::timeout(wait, timer).await.unwrap().unwrap();
        assert!(lock(&schedule).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_timer_wakes_at_most_half_a_second_later() {
        let far = Timestamp::now().saturating_add_seconds(3_600);
        let before = tokio::time::Instant::now();
        SystemClock.sleep_until(far).await;
        assert_eq!(before.elapsed(), MAX_TIMER_SLEEP);
        let past = Timestamp::new(1_000_000_000, 0).unwrap();
        let before = tokio::time::Instant::now();
        SystemClock.sleep_until(past).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
