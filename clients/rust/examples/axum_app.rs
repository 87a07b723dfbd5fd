//! A book catalog in axum behind gatehouse: readers read books, librarians delete them, anyone
//! browses the catalog, and `/healthz` is open.
//!
//! ```sh
//! cargo run -p gatehouse -- serve                       # gatehouse on 127.0.0.1:50051
//! GATEHOUSE_ADDR=http://127.0.0.1:50051 cargo run -p gatehouse-tower --example axum_app
//! curl -H "authorization: Bearer $TOKEN" 127.0.0.1:3000/books/7
//! ```

use std::error::Error;

use axum::Router;
use axum::extract::{Extension, Path};
use axum::routing::get;
use gatehouse_tower::{Caller, Decider, GatehouseLayer, Remote, Resource, Routes};
use http::Method;

/// The questions each request asks gatehouse.
pub fn routes() -> Routes {
    let book = |p: &gatehouse_tower::Params<'_>| Resource::new("book", p.get("id"));
    Routes::new()
        .route(Method::GET, "/books/{id}", "read", book)
        .route(Method::DELETE, "/books/{id}", "delete", book)
        .route(Method::GET, "/catalog", "browse", |_| {
            Resource::new("catalog", "")
        })
        .allow_anonymous()
        .public(Method::GET, "/healthz")
}

/// The app, every route behind `layer`. `/admin` has no route in [`routes`], so it is refused.
pub fn app<D: Decider>(layer: GatehouseLayer<D>) -> Router {
    Router::new()
        .route("/books/{id}", get(read_book).delete(delete_book))
        .route("/catalog", get(catalog))
        .route("/admin", get(|| async { "the admin page\n" }))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(layer)
}

async fn read_book(Path(id): Path<String>, caller: Option<Extension<Caller>>) -> String {
    format!("book {id} for {}\n", who(caller))
}

async fn delete_book(Path(id): Path<String>, caller: Option<Extension<Caller>>) -> String {
    format!("book {id} deleted by {}\n", who(caller))
}

async fn catalog(caller: Option<Extension<Caller>>) -> String {
    format!("the catalog for {}\n", who(caller))
}

/// A request let through by `FailureMode::Open` while gatehouse was down has no caller.
fn who(caller: Option<Extension<Caller>>) -> String {
    match caller {
        Some(Extension(caller)) if caller.user_id.is_empty() => "anonymous".to_owned(),
        Some(Extension(caller)) => caller.user_id,
        None => "an unverified caller".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let address =
        std::env::var("GATEHOUSE_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned());
    let layer = GatehouseLayer::new(Remote::connect_lazy(address)?, routes())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app(layer)).await?;
    Ok(())
}
