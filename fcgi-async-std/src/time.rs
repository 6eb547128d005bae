//! Clocks, on async-io's timers (the reactor that async-std and smol both run on): a
//! bound on a future, a deadline, and a timeout between two steps of progress.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;

/// The bound of [`timeout`] ran out.
#[derive(Debug)]
pub(crate) struct Elapsed;

/// `future`'s output, unless `limit` passes first (then the future is dropped).
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut timer = Timer::after(limit);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A fixed point in time: ready from then on, however often it is polled.
pub(crate) struct Deadline {
    at: Instant,
    timer: Timer,
}

impl Deadline {
    pub(crate) fn at(at: Instant) -> Self {
        Self {
            at,
            timer: Timer::at(at),
        }
    }

    pub(crate) fn after(limit: Duration) -> Self {
        Self::at(Instant::now() + limit)
    }

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        // A timer that fired is ready for good above; one not yet due registers `cx`.
        Pin::new(&mut self.timer).poll(cx).map(|_| ())
    }
}

/// A timeout between two steps of progress: it fires when `limit` passes without one.
pub(crate) struct Idle {
    pub(crate) limit: Duration,
    last: Instant,
    /// The timer and the instant it is set for.
    timer: Option<(Timer, Instant)>,
}

impl Idle {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            last: Instant::now(),
            timer: None,
        }
    }

    pub(crate) fn progress(&mut self) {
        self.last = Instant::now();
    }

    /// Ready when the limit has passed since the last progress.
    ///
    /// Progress does not move the timer (that would cost a trip to the reactor per
    /// read): a timer that fires before the limit has passed since the last progress is
    /// set again for the rest.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let due = self.last + self.limit;
            if Instant::now() >= due {
                return Poll::Ready(());
            }
            let (timer, set_for) = self.timer.get_or_insert_with(|| (Timer::at(due), due));
            if *set_for > due {
                timer.set_at(due);
                *set_for = due;
            }
            match Pin::new(&mut *timer).poll(cx) {
                // Early: progress came since it was set.
                Poll::Ready(_) => {
                    timer.set_at(due);
                    *set_for = due;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
