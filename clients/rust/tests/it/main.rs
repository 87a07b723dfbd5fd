//! The layer over a real gatehouse server (in process, on 127.0.0.1:0, real gRPC, real tokens, a
//! policy directory on disk), in front of the examples' apps over real HTTP and gRPC. One binary, so
//! the suite links once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod axum_http;
mod common;
mod failure;
mod local;
mod tonic_grpc;

// The examples' builders are what the tests put behind the layer; their `main`s are not run.
#[allow(dead_code)]
#[path = "../../examples/axum_app.rs"]
mod axum_app;
#[allow(dead_code)]
#[path = "../../examples/tonic_health.rs"]
mod grpc_app;
