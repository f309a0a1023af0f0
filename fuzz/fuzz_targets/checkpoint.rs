#![no_main]
//! libFuzzer entry for `lagom::fuzzing::checkpoint_bytes` (see its docs for the properties checked).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lagom::fuzzing::checkpoint_bytes(data));
