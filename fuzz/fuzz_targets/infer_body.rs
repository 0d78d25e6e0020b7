#![no_main]
//! `cargo fuzz run infer_body`: see chaos_inference::fuzzing::infer_body.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chaos_inference::fuzzing::infer_body(data));
