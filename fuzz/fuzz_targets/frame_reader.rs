#![no_main]
//! libFuzzer entry for `lagom::fuzzing::frame_reader` (see its docs for the properties checked).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lagom::fuzzing::frame_reader(data));
