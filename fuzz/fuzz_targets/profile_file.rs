#![no_main]
//! `cargo fuzz run profile_file`: see chaos_inference::fuzzing::profile_file.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chaos_inference::fuzzing::profile_file(data));
