//! Accepting TLS connections without letting a slow client hold up the others: each handshake runs in
//! its own task, under [`super::HANDSHAKE_TIMEOUT`] and under the listener's connection cap (the cap's
//! permit is taken before the TCP accept and lives in the connection), and only finished handshakes
//! reach the server.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use super::identity::{Identities, Peer};
use super::{HANDSHAKE_TIMEOUT, Tls};
use crate::conn::{self, Deadlines};

/// A TLS connection whose handshake is done, and who is on the other end.
pub struct TlsConn {
    stream: TlsStream<conn::Limited<TcpStream>>,
    peer: Peer,
}

impl TlsConn {
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

/// Runs the handshake on `io` under the timeout; `None` (logged at debug) if it fails or times out.
pub async fn handshake(
    acceptor: TlsAcceptor,
    io: conn::Limited<TcpStream>,
    remote: SocketAddr,
    identities: &Identities,
) -> Option<TlsConn> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(stream)) => {
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first);
            let identity = Arc::new(identities.of(leaf));
            Some(TlsConn {
                stream,
                peer: Peer { remote, identity },
            })
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = %remote, "TLS handshake timed out");
            None
        }
    }
}

/// The gRPC listener's connections, as tonic takes them.
pub struct TlsIncoming {
    ready: mpsc::Receiver<TlsConn>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        // The server stopped accepting: so does the accept loop.
        self.accepting.abort();
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|conn| conn.map(Ok))
    }
}

/// Accepts on `listener`, at most `max` connections open at once (handshakes included), each held
/// to `deadlines`, and yields those whose handshake succeeds.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Tls>,
    max: usize,
    deadlines: Deadlines,
) -> TlsIncoming {
    // Finished handshakes wait here for the server to take them; each holds a permit, so at most
    // `max` can.
    let (tx, ready) = mpsc::channel(max.max(1));
    let accepting = tokio::spawn(accept_loop(listener, tls, max, deadlines, tx));
    TlsIncoming { ready, accepting }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<Tls>,
    max: usize,
    deadlines: Deadlines,
    tx: mpsc::Sender<TlsConn>,
) {
    let permits = Arc::new(Semaphore::new(max));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a gRPC connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a gRPC connection");
        }
        let io = conn::Limited::new(tcp, permit, deadlines);
        let acceptor = tls.grpc_acceptor();
        let tls = Arc::clone(&tls);
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(conn) = handshake(acceptor, io, remote, tls.identities()).await {
                let _ = tx.send(conn).await;
            }
        });
    }
}

impl Connected for TlsConn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
