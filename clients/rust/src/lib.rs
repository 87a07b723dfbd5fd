//! gatehouse-tower: a tower layer that asks gatehouse, per request, "may this caller do this?", for
//! axum and tonic services alike.
//!
//! ```ignore
//! let decider = Remote::connect_lazy("http://127.0.0.1:50051")?;
//! let routes = Routes::new()
//!     .route(Method::GET, "/books/{id}", "read", |p| Resource::new("book", p.get("id")));
//! let layer = GatehouseLayer::new(decider, routes)?;
//! let app = Router::new().route("/books/{id}", get(book)).layer(layer);
//! ```
//!
//! # Layout
//! - [`routes`]: a request's method and path to the question to ask (action, resource), or public.
//! - [`decider`]: the question, the answer and the [`Decider`] trait that answers.
//! - [`remote`]: [`Remote`], which asks a gatehouse server's `Check` over gRPC, with a deadline.
//! - [`local`]: [`Local`], which verifies and decides in process with gatehouse's own engine.
//! - [`credential`]: the one reading of the `authorization` header.
//! - [`layer`]: [`GatehouseLayer`] and its service: route, read the token, ask, pass on or refuse.
//! - [`refusal`]: a refusal as an HTTP or a gRPC (trailers-only) response.
//!
//! No error, log line or `Debug` output of this crate contains a token.

#![forbid(unsafe_code)]

pub mod credential;
pub mod decider;
pub mod layer;
pub mod local;
pub mod refusal;
pub mod remote;
pub mod routes;

pub use credential::Token;
pub use decider::{Answer, Credential, DecideError, Decider, Question};
pub use layer::{Caller, FailureMode, Gatehouse, GatehouseLayer};
pub use local::{Local, LocalError};
pub use remote::{Remote, RemoteError};
pub use routes::{Params, Resource, RouteError, Routes};
