#![no_main]
//! libFuzzer entry for `lagom::fuzzing::message_codec` (see its docs for the properties checked).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lagom::fuzzing::message_codec(data));
