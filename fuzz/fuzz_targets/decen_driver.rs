#![no_main]
//! libFuzzer entry for `lagom::fuzzing::decen_driver_inputs` (see its docs for the properties checked).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lagom::fuzzing::decen_driver_inputs(data));
