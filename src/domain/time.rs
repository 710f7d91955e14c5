use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with nanosecond precision, restricted to years 0001 to 9999 like
/// google.protobuf.Timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    seconds: i64,
    nanos: u32,
}

impl Timestamp {
    /// 0001-01-01T00:00:00Z.
    pub const MIN_SECONDS: i64 = -62_135_596_800;
    /// 9999-12-31T23:59:59Z.
    pub const MAX_SECONDS: i64 = 253_402_300_799;
    /// The smallest representable timestamp.
    pub const MIN: Timestamp = Timestamp {
        seconds: Self::MIN_SECONDS,
        nanos: 0,
    };
    /// The largest representable timestamp.
    pub const MAX: Timestamp = Timestamp {
        seconds: Self::MAX_SECONDS,
        nanos: 999_999_999,
    };
    /// Length of [`Timestamp::to_sortable_bytes`].
    pub const SORTABLE_LEN: usize = 12;

    /// Returns `None` when the seconds are outside years 0001..=9999 or the nanos outside 0..1e9.
    pub fn new(seconds: i64, nanos: i32) -> Option<Self> {
        let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
        (Self::MIN_SECONDS..=Self::MAX_SECONDS)
            .contains(&seconds)
            .then_some(Self { seconds, nanos })
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self {
            seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(Self::MAX_SECONDS),
            nanos: since_epoch.subsec_nanos(),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    /// Nanoseconds within the second.
    pub fn nanos(&self) -> u32 {
        self.nanos
    }

    /// This timestamp moved forward by `seconds`, clamped to [`Timestamp::MAX`].
    pub fn saturating_add_seconds(self, seconds: i64) -> Self {
        match self.seconds.checked_add(seconds) {
            Some(s) if s <= Self::MAX_SECONDS => Self {
                seconds: s,
                nanos: self.nanos,
            },
            _ => Self::MAX,
        }
    }

    /// Big-endian encoding whose byte order is chronological order (for index keys).
    pub fn to_sortable_bytes(self) -> [u8; Self::SORTABLE_LEN] {
        let mut out = [0u8; Self::SORTABLE_LEN];
        // Flipping the sign bit maps i64 order onto unsigned byte order.
        out[..8].copy_from_slice(&((self.seconds as u64) ^ (1 << 63)).to_be_bytes());
        out[8..].copy_from_slice(&self.nanos.to_be_bytes());
        out
    }

    /// Inverse of [`Timestamp::to_sortable_bytes`]; `None` for bytes it cannot have produced.
    pub fn from_sortable_bytes(bytes: &[u8]) -> Option<Self> {
        let seconds: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let nanos: [u8; 4] = bytes.get(8..Self::SORTABLE_LEN)?.try_into().ok()?;
        let seconds = (u64::from_be_bytes(seconds) ^ (1 << 63)) as i64;
        Self::new(seconds, i32::try_from(u32::from_be_bytes(nanos)).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_parts() {
        assert!(Timestamp::new(0, -1).is_none());
        assert!(Timestamp::new(0, 1_000_000_000).is_none());
        assert!(Timestamp::new(Timestamp::MAX_SECONDS + 1, 0).is_none());
        assert!(Timestamp::new(Timestamp::MIN_SECONDS - 1, 0).is_none());
        assert_eq!(
            Timestamp::new(5, 7).map(|t| (t.seconds(), t.nanos())),
            Some((5, 7))
        );
    }

    #[test]
    fn sortable_bytes_preserve_order_and_round_trip() {
        let times = [
            Timestamp::MIN,
            Timestamp::new(-1, 999_999_999).unwrap(),
            Timestamp::new(0, 0).unwrap(),
            Timestamp::new(0, 1).unwrap(),
            Timestamp::new(1_467_363_600, 0).unwrap(),
            Timestamp::MAX,
        ];
        for pair in times.windows(2) {
            assert!(
                pair[0].to_sortable_bytes() < pair[1].to_sortable_bytes(),
                "{pair:?}"
            );
        }
        for t in times {
            assert_eq!(
                Timestamp::from_sortable_bytes(&t.to_sortable_bytes()),
                Some(t)
            );
        }
    }

    #[test]
    fn saturating_add_clamps_at_max() {
        assert_eq!(Timestamp::MAX.saturating_add_seconds(10), Timestamp::MAX);
        let t = Timestamp::new(10, 3).unwrap().saturating_add_seconds(5);
        assert_eq!((t.seconds(), t.nanos()), (15, 3));
    }
}
