//! A request of any khabar.v1 kind (first byte), decoded and checked as its handler does.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| khabar::fuzzing::request(data));
