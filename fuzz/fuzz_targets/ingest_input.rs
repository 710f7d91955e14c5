//! The proto3 JSON input of `khabar ingest`, each item checked as the server would.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| khabar::fuzzing::ingest_input(data));
