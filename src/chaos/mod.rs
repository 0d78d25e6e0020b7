//! Everything about misbehaving, and nothing about HTTP: the one fault type, profiles (what may
//! go wrong), the plan (when, decided from the seed), the engine that carries the plan out and
//! the effects it switches.

pub mod duration;
pub mod effects;
pub mod endpoints;
pub mod engine;
pub mod fault;
pub mod overload;
pub mod overrides;
pub mod plan;
pub mod profile;
pub mod seed;
