//! Black-box tests: every test starts the real binary and talks HTTP or gRPC to it.

mod admin;
mod bad_input;
mod batching;
mod chaos_profiles;
mod grpc;
mod grpc_parity;
mod helpers;
mod lifecycle;
mod load;
mod manifests;
mod overload;
mod record;
mod routes;
mod simulate_parity;
mod slow_model;
mod stand_in;
mod status_page;
mod timelines;
mod timing;
mod tune;
