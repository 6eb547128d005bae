//! A runtime for unit tests whose clock moves only when a test says so, whose sockets
//! fail, and whose spawned tasks never run.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use fcgi_proto::Address;

use crate::runtime::{NeutralSemaphore, Runtime, Socket, Timer};

thread_local! {
    /// The fake clock of the test on this thread.
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Timers the fake runtime has made on this thread.
    static TIMERS: Cell<u32> = const { Cell::new(0) };
}

pub(crate) fn advance(by: Duration) {
    NOW.set(Some(Fake::now() + by));
}

/// A runtime whose clock moves only when a test says so.
#[derive(Debug)]
pub(crate) struct Fake;

#[derive(Debug)]
pub(crate) struct NoSocket;

impl Socket for NoSocket {
    fn poll_read(&mut self, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }

    fn poll_write_vectored(
        &mut self,
        _: &mut Context<'_>,
        _: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }

    fn try_read(&self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Fires when the fake clock has reached its instant.
pub(crate) struct FakeTimer(Instant);

impl Timer for FakeTimer {
    fn reset(&mut self, at: Instant) {
        self.0 = at;
    }

    /// Like tokio's timer, it knows whether it fired without the engine's reading.
    fn poll_fired(&mut self, _: &mut Context<'_>, _now: Option<Instant>) -> Poll<()> {
        if Fake::now() >= self.0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Runtime for Fake {
    type Socket = NoSocket;
    type Timer = FakeTimer;
    type Semaphore = NeutralSemaphore;

    async fn connect(_: &Address, _: Option<Duration>) -> io::Result<NoSocket> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn now() -> Instant {
        NOW.get().unwrap_or_else(|| {
            let start = Instant::now();
            NOW.set(Some(start));
            start
        })
    }

    fn timer(at: Instant) -> FakeTimer {
        TIMERS.set(TIMERS.get() + 1);
        FakeTimer(at)
    }

    async fn timeout<F: Future + Send>(_: Duration, future: F) -> Option<F::Output> {
        Some(future.await)
    }

    fn spawn<F>(_: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
    }
}

/// Timers the fake runtime has made on this thread.
pub(crate) fn timers_made() -> u32 {
    TIMERS.get()
}

pub(crate) fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}
