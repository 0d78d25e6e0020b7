//! Black-box tests: every test starts the real binary and talks HTTP to it.

mod admin;
mod bad_input;
mod chaos_profiles;
mod helpers;
mod lifecycle;
mod manifests;
mod routes;
