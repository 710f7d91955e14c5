//! A log segment file of any content: opened, recovered and read.
#![no_main]

use std::{path::PathBuf, sync::OnceLock};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("khabar-fuzz-log-{}", std::process::id())))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| khabar::fuzzing::log_segment(dir(), data));
