//! The chaos engine: profiles (what may go wrong), the plan (when, decided from the seed), and
//! the runtime that carries the plan out.

pub mod duration;
pub mod engine;
pub mod faults;
pub mod overrides;
pub mod plan;
pub mod profile;
