#![no_main]
//! `cargo fuzz run duration_range`: see chaos_inference::fuzzing::duration_range.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chaos_inference::fuzzing::duration_range(data));
