#![no_main]
//! libFuzzer entry for `lagom::fuzzing::rendezvous_events` (see its docs for the properties checked).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lagom::fuzzing::rendezvous_events(data));
