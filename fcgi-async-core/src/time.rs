//! Clocks on the runtime's timers: a deadline, and a timeout between two steps of
//! progress.

use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::runtime::{Runtime, Timer};

/// A fixed point in time: ready from then on, however often it is polled.
pub(crate) struct Deadline<R: Runtime> {
    timer: R::Timer,
}

impl<R: Runtime> Deadline<R> {
    pub(crate) fn at(at: Instant) -> Self {
        Self {
            timer: R::timer(at),
        }
    }

    pub(crate) fn after(limit: Duration) -> Self {
        Self::at(R::now() + limit)
    }

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll_fired(cx)
    }
}

/// A timeout between two steps of progress: it fires when `limit` passes without one.
pub(crate) struct Idle<R: Runtime> {
    pub(crate) limit: Duration,
    last: Instant,
    /// The timer and the instant it is set for.
    timer: Option<(R::Timer, Instant)>,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Idle<R> {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            last: R::now(),
            timer: None,
            _runtime: PhantomData,
        }
    }

    pub(crate) fn progress(&mut self) {
        self.last = R::now();
    }

    /// Ready when the limit has passed since the last progress.
    ///
    /// Progress does not move the timer (that would cost a trip to the timer wheel or
    /// reactor per read): a timer that fires before the limit has passed since the last
    /// progress is set again for the rest.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let due = self.last + self.limit;
            let (timer, set_for) = self.timer.get_or_insert_with(|| (R::timer(due), due));
            if *set_for > due {
                timer.reset(due);
                *set_for = due;
            }
            match timer.poll_fired(cx) {
                Poll::Ready(()) if R::now() >= due => return Poll::Ready(()),
                // Early: progress came since it was set.
                Poll::Ready(()) => {
                    timer.reset(due);
                    *set_for = due;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
