//! gRPC glue: our `gatehouse.v1.Gatehouse` service, Envoy's `envoy.service.auth.v3.Authorization`,
//! health and reflection, all under one [`CallLayer`].
//!
//! Thin by design: convert the request, call the app (tokens, the decider, the store), convert back.
//! The one rule decided here is which credential a call names: a token, `anonymous`, a principal
//! described by a caller holding a server token, or, when the call names none, the service its
//! client certificate names (`GatehouseService::caller`), since that is a matter of the API's fields.
//! A call marked [`FromBrowser`] names only the user whose token is in its `authorization` header.

mod convert;
mod ext_authz;
mod layer;
mod metadata;
mod service;

pub use convert::{explanation_to_pb, map_to_struct, principal_kind_from_pb, struct_to_map};
pub use ext_authz::{ExtAuthzService, answer as answer_ext_authz};
pub use layer::{CallLayer, CallScope};
pub use metadata::{FromBrowser, FromConsole};
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
