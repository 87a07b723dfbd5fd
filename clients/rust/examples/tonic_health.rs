//! A tonic server behind gatehouse, serving gRPC health: operators may call `Check`; `Watch` has no
//! route, so it is refused.
//!
//! ```sh
//! cargo run -p gatehouse -- serve                       # gatehouse on 127.0.0.1:50051
//! GATEHOUSE_ADDR=http://127.0.0.1:50051 cargo run -p gatehouse-tower --example tonic_health
//! grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:50061 grpc.health.v1.Health/Check
//! ```

use std::error::Error;
use std::future::Future;

use gatehouse_tower::{Decider, GatehouseLayer, Remote, Resource, Routes};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// The questions each call asks gatehouse.
pub fn routes() -> Routes {
    Routes::new().grpc("/grpc.health.v1.Health/Check", "check", |_| {
        Resource::new("health", "grpc")
    })
}

/// Serves gRPC health behind `layer` on `listener` until `shutdown` completes.
pub async fn serve<D: Decider>(
    layer: GatehouseLayer<D>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    Server::builder()
        .layer(layer)
        .add_service(health)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let address =
        std::env::var("GATEHOUSE_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned());
    let layer = GatehouseLayer::new(Remote::connect_lazy(address)?, routes())?;
    let listener = TcpListener::bind("127.0.0.1:50061").await?;
    serve(layer, listener, std::future::pending()).await?;
    Ok(())
}
