//! The embedded store's claim on its data directory: one khabar process at a time.
//!
//! Two processes on one directory would both append to the log, and the second would find the
//! index locked by the first, take it for damaged and rebuild it aside. An exclusive advisory
//! lock on `khabar.lock`, taken before anything else in the directory is read, refuses the
//! second process instead. The operating system drops the lock when the process ends, however
//! it ends, so a killed server never leaves a stale lock behind.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::Path,
};

use super::{Result, StoreError};

/// The lock file's name inside the data directory.
pub(super) const LOCK_FILE: &str = "khabar.lock";

/// Holds the data directory for as long as it lives.
#[derive(Debug)]
pub(super) struct DataDirLock {
    // The lock belongs to the open file; closing it releases the directory.
    _file: File,
}

impl DataDirLock {
    /// Takes the directory `dir` (which must exist), or says which process holds it.
    pub(super) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(in_use(dir, &path, &mut file)),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        // The holder's process id, for the message another process gets; the lock itself is
        // what counts, so a failure to write it does not matter.
        let _ = file.set_len(0).and_then(|()| {
            file.rewind()?;
            writeln!(file, "{}", std::process::id())
        });
        Ok(Self { _file: file })
    }
}

fn in_use(dir: &Path, path: &Path, file: &mut File) -> StoreError {
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    let holder = match holder.trim() {
        pid if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
            format!("process {pid}")
        }
        _ => "another process".to_owned(),
    };
    StoreError::InUse(format!(
        "the data directory {} is in use by {holder} (it holds the lock on {}): stop that \
         khabar, or give this one another --data-dir",
        dir.display(),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).expect("first claim");
        let refused = DataDirLock::acquire(dir.path()).expect_err("second claim");
        let message = refused.to_string();
        assert!(matches!(refused, StoreError::InUse(_)), "{message}");
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "names the holder: {message}"
        );
        assert!(message.contains("--data-dir"), "{message}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_does_not_hold_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4242424\n").unwrap();
        let _claim = DataDirLock::acquire(dir.path()).expect("an unlocked file is free");
        let holder = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(holder, format!("{}\n", std::process::id()));
    }
}
