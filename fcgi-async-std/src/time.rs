//! Clocks, on async-io's timers (the reactor that async-std and smol both run on): a
//! bound on a future, and the engine's timer.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;

/// `future`'s output, unless `limit` passes first (then the future is dropped).
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut timer = Timer::after(limit);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// An async-io timer as the engine's [`Timer`](fcgi_async_core::Timer): ready for good
/// once fired (an async-io timer that fired is pending again when polled).
pub struct IoTimer {
    timer: Timer,
    fired: bool,
}

impl IoTimer {
    pub(crate) fn at(at: Instant) -> Self {
        Self {
            timer: Timer::at(at),
            fired: false,
        }
    }
}

impl fcgi_async_core::Timer for IoTimer {
    fn reset(&mut self, at: Instant) {
        self.timer.set_at(at);
        self.fired = false;
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.fired && Pin::new(&mut self.timer).poll(cx).is_ready() {
            self.fired = true;
        }
        if self.fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
