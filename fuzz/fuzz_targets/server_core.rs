#![no_main]
//! libFuzzer entry for `lagom::fuzzing::server_core_events` (see its docs for the properties checked).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lagom::fuzzing::server_core_events(data));
