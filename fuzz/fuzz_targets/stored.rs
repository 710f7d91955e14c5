//! The decoders of stored data (log records and frames, index values, the first layout's
//! records, page tokens, stored articles), chosen by the first byte.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| khabar::fuzzing::stored(data));
