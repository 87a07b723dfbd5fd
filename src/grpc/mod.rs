//! gRPC glue: our `gatehouse.v1.Gatehouse` service, Envoy's `envoy.service.auth.v3.Authorization`,
//! health and reflection.
//!
//! Thin by design: convert the request, call `token` and `engine`, convert back. No decision logic here.

mod convert;
mod ext_authz;
mod metadata;
mod service;

pub use ext_authz::ExtAuthzService;
pub use service::GatehouseService;

/// Generated code of `proto/gatehouse/v1/gatehouse.proto`, client included for callers and tests.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod pb {
    tonic::include_proto!("gatehouse.v1");

    /// Served by reflection, so grpcurl and other tools can call us without the .proto file.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("gatehouse_descriptor");
}
