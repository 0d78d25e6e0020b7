#![no_main]
//! `cargo fuzz run grpc_infer_request`: see chaos_inference::fuzzing::grpc_infer_request.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chaos_inference::fuzzing::grpc_infer_request(data));
