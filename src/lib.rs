//! chaos-inference: an ONNX inference server that misbehaves on a schedule.
//!
//! The binary (`main.rs`) only parses the command line and calls into this library, so the
//! tests and every subcommand use the same code the server runs.

pub mod chaos;
pub mod cli;
pub mod config;
pub(crate) mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod grpc;
pub(crate) mod health;
pub(crate) mod http;
pub mod http1;
pub mod load;
pub mod metrics;
pub mod model;
pub mod probe;
pub mod record;
pub mod simulate;
pub mod stand_in;
pub mod startup;
pub(crate) mod stats;
pub mod telemetry;
