#![no_main]
//! `cargo fuzz run chaos_overrides`: see chaos_inference::fuzzing::chaos_overrides.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chaos_inference::fuzzing::chaos_overrides(data));
