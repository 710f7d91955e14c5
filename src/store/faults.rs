//! Disk failures injected on purpose: the seam through which tests make the store's writes,
//! syncs and index updates fail, to show what khabar does when its disk does. Empty (and one
//! uncontended lock per operation) unless a test arms it.

use std::{io, sync::Mutex};

/// An operation of the store on its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOperation {
    /// Writing a group of records to the log.
    LogWrite,
    /// Syncing the log (`fdatasync`).
    LogSync,
    /// Preparing a new log segment (writing its zeros).
    SegmentPreparation,
    /// Applying a record to the index.
    IndexWrite,
}

const OPERATIONS: usize = 4;

impl DiskOperation {
    fn slot(self) -> usize {
        match self {
            Self::LogWrite => 0,
            Self::LogSync => 1,
            Self::SegmentPreparation => 2,
            Self::IndexWrite => 3,
        }
    }
}

/// Which operations fail: each armed one lets a number of calls through, then fails every later
/// call with an error of the given kind.
#[derive(Debug, Default)]
pub struct DiskFaults {
    armed: Mutex<[Option<(u64, io::ErrorKind)>; OPERATIONS]>,
}

impl DiskFaults {
    /// Lets `after` more calls of `operation` succeed, then fails the rest with `kind`.
    pub fn fail(&self, operation: DiskOperation, after: u64, kind: io::ErrorKind) {
        self.lock()[operation.slot()] = Some((after, kind));
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        *self.lock() = [None; OPERATIONS];
    }

    /// Fails if `operation` is armed and its successes are used up.
    pub fn check(&self, operation: DiskOperation) -> io::Result<()> {
        let mut armed = self.lock();
        match &mut armed[operation.slot()] {
            None => Ok(()),
            Some((0, kind)) => Err(io::Error::new(
                *kind,
                format!("injected failure of {operation:?}"),
            )),
            Some((left, _)) => {
                *left -= 1;
                Ok(())
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Option<(u64, io::ErrorKind)>; OPERATIONS]> {
        // The state is plain data; a panic elsewhere cannot leave it half updated.
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_the_given_number_through_then_fails_every_call() {
        let faults = DiskFaults::default();
        assert!(faults.check(DiskOperation::LogSync).is_ok());
        faults.fail(DiskOperation::LogSync, 2, io::ErrorKind::StorageFull);
        assert!(faults.check(DiskOperation::LogSync).is_ok());
        assert!(faults.check(DiskOperation::LogWrite).is_ok());
        assert!(faults.check(DiskOperation::LogSync).is_ok());
        for _ in 0..3 {
            let err = faults.check(DiskOperation::LogSync).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        }
        faults.clear();
        assert!(faults.check(DiskOperation::LogSync).is_ok());
    }
}
