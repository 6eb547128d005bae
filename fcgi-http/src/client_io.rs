//! A client's connection with its timers: the socket under hyper (and TLS), which
//! closes the connection when the client is too slow, because hyper alone has no
//! keep-alive limit for HTTP/1.1, no send timeout, and nothing for HTTP/2 heads.
//!
//! The socket knows whether a request is in flight from [`Activity`], which the
//! server's service and the response bodies it hands to hyper ([`Tracked`]) keep up:
//!
//! - no request in flight: the connection must bring a whole request head within the
//!   header timeout (from its start, or from the first byte after the last response),
//!   or its first byte within the keep-alive timeout after a response; at the
//!   server's connection limit it may be closed to make room (reclaimed);
//! - a request in flight: reads have no timer here (the body's timeout is the
//!   service's, hyper reads ahead to notice a close), and every write that cannot
//!   progress must progress within the send timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// At the connection limit, a connection that has sent nothing yet is reclaimed once
/// it has been idle this long (one just accepted has not had its first read yet); a
/// keep-alive connection between requests (nginx reuses those first), or one that has
/// sent part of a request head and waits for the rest (slowloris), is reclaimed at once.
const RECLAIM_AFTER: Duration = Duration::from_millis(100);

/// The bounds on each client.
#[derive(Clone, Debug)]
pub(crate) struct ClientLimits {
    pub(crate) header_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_head_bytes: usize,
}

/// The requests of one connection.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    started: AtomicU64,
}

/// One request in flight, from its head to the end (or drop) of its response body.
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(crate) fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.started.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is done.
pub(crate) struct Tracked<B> {
    pub(crate) body: Pin<Box<B>>,
    pub(crate) _in_flight: InFlight,
}

impl<B> http_body::Body for Tracked<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A stretch without a request in flight.
struct Idle {
    since: Instant,
    first_byte: Option<Instant>,
    /// No request yet on this connection.
    fresh: bool,
    reclaim: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
}

/// The client's socket with its timers.
pub(crate) struct ClientIo {
    io: TcpStream,
    activity: Arc<Activity>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    send_timeout: Duration,
    remote: SocketAddr,
    reclaim: watch::Receiver<u64>,
    idle: Option<Idle>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_since: Option<Instant>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl ClientIo {
    pub(crate) fn new(
        io: TcpStream,
        activity: Arc<Activity>,
        limits: &ClientLimits,
        reclaim: watch::Receiver<u64>,
        remote: SocketAddr,
    ) -> Self {
        Self {
            io,
            activity,
            header_timeout: limits.header_timeout,
            keepalive_timeout: limits.keepalive_timeout,
            send_timeout: limits.send_timeout,
            remote,
            reclaim,
            idle: None,
            read_timer: None,
            write_since: None,
            write_timer: None,
        }
    }

    /// Keeps `idle` up to date; `Some` with the reason when the connection must close.
    fn poll_idle(&mut self, cx: &mut Context<'_>, pending: bool) -> Option<&'static str> {
        if self.activity.in_flight.load(Ordering::Acquire) > 0 {
            self.idle = None;
            return None;
        }
        let now = Instant::now();
        let idle = self.idle.get_or_insert_with(|| Idle {
            since: now,
            first_byte: None,
            fresh: self.activity.started.load(Ordering::Relaxed) == 0,
            reclaim: next_reclaim(&self.reclaim),
        });
        if !pending {
            return None;
        }
        loop {
            if idle.reclaim.as_mut().poll(cx).is_pending() {
                break;
            }
            // Between requests, or part of a head sent and the rest awaited: not a
            // connection that has not had its chance to send yet.
            let read_already = !idle.fresh || idle.first_byte.is_some();
            if read_already || now.duration_since(idle.since) >= RECLAIM_AFTER {
                return Some("closed an idle connection at the connection limit");
            }
            idle.reclaim = next_reclaim(&self.reclaim);
        }
        let (deadline, why) = match idle.first_byte {
            Some(at) => (
                at + self.header_timeout,
                "client timed out sending a request head",
            ),
            None if idle.fresh => (
                idle.since + self.header_timeout,
                "client timed out sending a request head",
            ),
            None => (
                idle.since + self.keepalive_timeout,
                "keep-alive connection idle too long",
            ),
        };
        let timer = self
            .read_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Some(why),
            Poll::Pending => None,
        }
    }

    /// The send timeout, when a write cannot progress.
    fn poll_send_timer(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let since = *self.write_since.get_or_insert_with(Instant::now);
        let deadline = since + self.send_timeout;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::info!(target: "fcgi_http", remote = %self.remote, "client timed out reading the response: closing");
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing of the response for the send timeout",
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_result<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.write_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_send_timer(cx).map(Err),
        }
    }
}

/// Completes at the server's next call to reclaim idle connections (never once the
/// server has stopped: its sender is gone).
fn next_reclaim(reclaim: &watch::Receiver<u64>) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
    let mut reclaim = reclaim.clone();
    reclaim.mark_unchanged();
    Box::pin(async move {
        // Only on an error: waiting on after a call would never reclaim at all (as
        // this did once, leaving the connection limit to the keep-alive timeout).
        if reclaim.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.poll_idle(cx, false);
                if let Some(idle) = &mut this.idle {
                    if idle.first_byte.is_none() && buf.filled().len() > before {
                        idle.first_byte = Some(Instant::now());
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.poll_idle(cx, true) {
                Some(why) => {
                    tracing::info!(target: "fcgi_http", remote = %this.remote, "{why}: closing");
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
                }
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write_result(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write_result(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.write_result(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.write_result(cx, polled)
    }
}
