//! Guards on the connections of both listeners: a cap on how many are open, and deadlines on a peer
//! that stops reading or writing. tonic bounds streams per connection but not connections, and
//! neither hyper nor tonic times out a peer that stalls at the TCP level (a socket that never sends
//! the HTTP/2 preface, a client that never reads the responses it asked for); each such connection
//! holds a file descriptor and buffers, so a client could starve everyone else. Past the cap, accepting
//! pauses until a connection closes; new ones wait in the listen backlog.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::PollSemaphore;
use tonic::transport::server::Connected;

/// How long a peer may leave a connection without reading from it or writing to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    /// From the connection's start to its first byte.
    pub first_read: Option<Duration>,
    /// Between reads, once the first byte came.
    pub read_idle: Option<Duration>,
    /// How long a write may wait for the peer to take the bytes.
    pub write_stall: Option<Duration>,
}

/// `incoming`, yielding at most `max` connections that are open at the same time, each held to
/// `deadlines`.
pub fn limited_incoming<S>(incoming: S, max: usize, deadlines: Deadlines) -> LimitedIncoming<S> {
    LimitedIncoming {
        inner: incoming,
        permits: PollSemaphore::new(Arc::new(Semaphore::new(max))),
        deadlines,
    }
}

pub struct LimitedIncoming<S> {
    inner: S,
    permits: PollSemaphore,
    deadlines: Deadlines,
}

impl<S, IO> Stream for LimitedIncoming<S>
where
    S: Stream<Item = io::Result<IO>> + Unpin,
{
    type Item = io::Result<Limited<IO>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // A permit first: at the cap, nothing is accepted. If no connection is waiting, the permit
        // is given back and taken again at the next poll.
        let permit = match this.permits.poll_acquire(cx) {
            Poll::Ready(Some(permit)) => permit,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(io))) => {
                Poll::Ready(Some(Ok(Limited::new(io, permit, this.deadlines))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection that gives its place back when it closes, and fails with `TimedOut` when the peer
/// stalls past a deadline.
pub struct Limited<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
    deadlines: Deadlines,
    read_any: bool,
    /// Armed when a read or write first waits, disarmed when it makes progress.
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<IO> Limited<IO> {
    pub fn new(io: IO, permit: OwnedSemaphorePermit, deadlines: Deadlines) -> Self {
        Limited {
            io,
            _permit: permit,
            deadlines,
            read_any: false,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// `Pending`, unless the timer `slot` (armed with `limit` on first use) has run out.
fn waited_too_long(
    slot: &mut Option<Pin<Box<Sleep>>>,
    limit: Option<Duration>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(limit) = limit else {
        return false;
    };
    let timer = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    timer.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("the peer {what}"))
}

impl<IO: AsyncWrite + Unpin> Limited<IO> {
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut IO>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.io), cx) {
            Poll::Ready(result) => {
                self.write_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if waited_too_long(&mut self.write_timer, self.deadlines.write_stall, cx) {
                    Poll::Ready(Err(timed_out("stopped reading what it asked for")))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<IO: Connected> Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read_any = true;
                this.read_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = if this.read_any {
                    this.deadlines.read_idle
                } else {
                    this.deadlines.first_read
                };
                if waited_too_long(&mut this.read_timer, limit, cx) {
                    Poll::Ready(Err(timed_out("sent nothing in time")))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
