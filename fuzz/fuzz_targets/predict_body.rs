#![no_main]
//! `cargo fuzz run predict_body`: see chaos_inference::fuzzing::predict_body.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chaos_inference::fuzzing::predict_body(data));
