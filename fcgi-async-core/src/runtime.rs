//! What the engine needs from an async runtime: a socket, a timer, a timeout, a way to
//! open a connection and one to run a task in the background. Everything else (the pool,
//! its locks, semaphores and channels) is runtime-neutral.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fcgi_proto::{Address, Connection};

/// An async runtime that the engine drives its connections on.
///
/// The engine is generic over it (no `dyn` on the paths every request takes):
/// `fcgi-tokio` implements it on tokio, `fcgi-async-std` on async-io for async-std and
/// smol. An implementation is a type without values: every item is an associated
/// function or type.
pub trait Runtime: fmt::Debug + Sized + Send + Sync + 'static {
    /// A connected socket (TCP or a unix socket).
    type Socket: Socket;

    /// A timer for a point in time, which can be set again.
    type Timer: Timer;

    /// The counting semaphore of each upstream's connection slots
    /// ([`Options::max_connections`](crate::Options::max_connections)).
    /// [`NeutralSemaphore`] serves any runtime; a runtime's own can be fairer.
    type Semaphore: Semaphore;

    /// Opens a connection to `address` within `timeout` (`None`: no bound); a TCP host is
    /// resolved and each of its addresses tried in turn, and TCP sockets have
    /// `TCP_NODELAY` set. A connection not made in time fails with
    /// [`io::ErrorKind::TimedOut`]. A unix socket is connected without waiting: one
    /// whose listen queue is full fails at once with the kernel's `EAGAIN`
    /// ([`io::ErrorKind::WouldBlock`]), which the engine reports as a connect error (see
    /// [`ClientError::connect_failed`](fcgi_proto::ClientError::connect_failed) for why).
    fn connect(
        address: &Address,
        timeout: Option<Duration>,
    ) -> impl Future<Output = io::Result<Self::Socket>> + Send;

    /// The time now, on the clock of [`timer`](Self::timer): deadlines and timeouts are
    /// reckoned on it. The default is [`Instant::now`]; tokio's clock can be paused and
    /// advanced in tests.
    fn now() -> Instant {
        Instant::now()
    }

    /// A timer that fires at `at`.
    fn timer(at: Instant) -> Self::Timer;

    /// `future`'s output, or `None` when `limit` passes first (then the future is
    /// dropped).
    fn timeout<F: Future + Send>(
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Option<F::Output>> + Send;

    /// Runs `task` to its end in the background, detached: the driver task of a
    /// multiplexed connection. A runtime that cannot start it drops it, which fails the
    /// requests meant for it like a closed connection.
    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Logs `STDERR` that a dropped [`ResponseStream`](crate::ResponseStream) received
    /// and nobody took. The default logs through `tracing` (target `fcgi_async_core`,
    /// level warn); an adapter logs under its own crate's name.
    fn unread_stderr(address: &str, stderr: &[u8]) {
        tracing::warn!(
            target: "fcgi_async_core",
            address = %address,
            "FastCGI stderr: {}",
            String::from_utf8_lossy(stderr)
        );
    }
}

/// A connected, non-blocking socket, driven by polling.
pub trait Socket: fmt::Debug + Send + Sync + Unpin + 'static {
    /// Reads into `buf`: `Ok(0)` is end of input.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Reads into the input buffer of `conn` and answers how many bytes were read
    /// (`Ok(0)`: end of input); the engine then hands them to
    /// [`Connection::input_written`].
    ///
    /// The default reads through [`poll_read`](Self::poll_read) into
    /// [`Connection::input_buffer`], initialized room that the core zeroes once per
    /// fresh buffer. A socket that can fill uninitialized memory overrides it to append
    /// to the spare capacity of [`Connection::input_buf`] instead (as fcgi-tokio and
    /// fcgi-async-std do), which zeroes nothing.
    fn poll_read_input(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<io::Result<usize>> {
        self.poll_read(cx, conn.input_buffer())
    }

    /// Writes from `bufs` in turn, as much as the socket takes.
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;

    /// A read that never waits: `Ok(0)` is end of input,
    /// [`io::ErrorKind::WouldBlock`] nothing yet. The pool uses it to tell whether a kept
    /// connection is still open.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
}

/// A timer set for a point in time.
pub trait Timer: Send + Sync + Unpin + 'static {
    /// Sets the timer again, for `at`.
    fn reset(&mut self, at: Instant);

    /// Ready once the instant the timer is set for has passed, and from then on however
    /// often it is polled, until it is set again; otherwise registers `cx` to be woken
    /// then.
    ///
    /// `now` is the runtime's clock when the engine read it a moment ago, in the same
    /// poll (nothing waited since): a timer that would read the clock to tell whether
    /// it has fired can take that reading instead. `None`: not read.
    fn poll_fired(&mut self, cx: &mut Context<'_>, now: Option<Instant>) -> Poll<()>;
}

/// A counting semaphore: a pool's connection slots. A permit is held for as long as its
/// connection is busy (or, multiplexed, open) and gives its slot back when dropped.
pub trait Semaphore: Send + Sync + 'static {
    /// A slot taken; dropping it gives the slot back.
    type Permit: Send + Sync + Unpin + 'static;

    /// A semaphore with `permits` slots.
    fn new(permits: usize) -> Self;

    /// Takes a slot, waiting for one to be free.
    fn acquire(&self) -> impl Future<Output = Self::Permit> + Send;

    /// Takes a slot if one is free now.
    fn try_acquire(&self) -> Option<Self::Permit>;

    /// The slots free now.
    fn available_permits(&self) -> usize;
}

/// The permit of a runtime's [`Semaphore`].
pub(crate) type SemaphorePermit<R> = <<R as Runtime>::Semaphore as Semaphore>::Permit;

/// A runtime-neutral [`Semaphore`] on `async-lock`. It is not strictly first come,
/// first served: a request that arrives as a slot frees can take it before one that
/// waited.
#[derive(Debug)]
pub struct NeutralSemaphore(Arc<async_lock::Semaphore>);

impl Semaphore for NeutralSemaphore {
    type Permit = async_lock::SemaphoreGuardArc;

    fn new(permits: usize) -> Self {
        Self(Arc::new(async_lock::Semaphore::new(permits)))
    }

    fn acquire(&self) -> impl Future<Output = Self::Permit> + Send {
        self.0.acquire_arc()
    }

    fn try_acquire(&self) -> Option<Self::Permit> {
        self.0.try_acquire_arc()
    }

    fn available_permits(&self) -> usize {
        self.0.available_permits()
    }
}
