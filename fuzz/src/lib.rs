//! Shared pieces of the fuzz targets in `fuzz_targets/`: the reference implementations they compare
//! gatehouse against, and helpers that turn fuzzer bytes into structured values.
//!
//! Built only by `scripts/fuzz.sh`; it is its own workspace, so the main crate's `cargo build` and
//! `cargo test` never build it.

pub mod id_pattern;
pub mod routes;
pub mod token;
pub mod values;
