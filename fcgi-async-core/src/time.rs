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

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>, clock: &Clock<R>) -> Poll<()> {
        self.timer.poll_fired(cx, clock.reading())
    }
}

/// The runtime's clock, read at most once: the steps of progress made within one poll
/// (which never waits) share one reading.
pub(crate) struct Clock<R: Runtime> {
    now: Option<Instant>,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Clock<R> {
    pub(crate) fn new() -> Self {
        Self {
            now: None,
            _runtime: PhantomData,
        }
    }

    /// A clock already read, at `now`.
    pub(crate) fn read_at(now: Instant) -> Self {
        Self {
            now: Some(now),
            _runtime: PhantomData,
        }
    }

    pub(crate) fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(R::now)
    }

    /// The reading, if the clock was read.
    pub(crate) fn reading(&self) -> Option<Instant> {
        self.now
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

impl<R: Runtime> std::fmt::Debug for Idle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
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

    /// `slot` made ready for a new request with `limit` (`None`: no timeout): the
    /// timer already in it is kept, and moved only if it would fire late.
    pub(crate) fn restart(slot: &mut Option<Self>, limit: Option<Duration>, clock: &mut Clock<R>) {
        match (slot.as_mut(), limit) {
            (Some(idle), Some(limit)) => {
                idle.limit = limit;
                idle.progress(clock);
            }
            (_, limit) => *slot = limit.map(Self::new),
        }
    }

    pub(crate) fn progress(&mut self, clock: &mut Clock<R>) {
        self.last = clock.now();
    }

    /// When progress was last made (or the timeout last restarted).
    pub(crate) fn last(&self) -> Instant {
        self.last
    }

    /// Progress now, on a clock read of its own.
    pub(crate) fn progress_now(&mut self) {
        self.last = R::now();
    }

    /// Ready when the limit has passed since the last progress.
    ///
    /// Progress does not move the timer (that would cost a trip to the timer wheel or
    /// reactor per read): a timer that fires before the limit has passed since the last
    /// progress is set again for the rest.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>, clock: &Clock<R>) -> Poll<()> {
        loop {
            let due = self.last + self.limit;
            let (timer, set_for) = self.timer.get_or_insert_with(|| (R::timer(due), due));
            if *set_for > due {
                timer.reset(due);
                *set_for = due;
            }
            match timer.poll_fired(cx, clock.reading()) {
                // A fresh reading: the poll's may predate the instant the timer fired at,
                // and taking that for early would set the timer again for a past instant,
                // over and over.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Clock, Deadline, Idle};
    use crate::fake_runtime::{advance, cx, timers_made, Fake};

    #[test]
    fn an_idle_timeout_fires_after_the_limit_without_progress() {
        let mut idle = Idle::<Fake>::new(Duration::from_secs(10));
        assert!(idle.poll_expired(&mut cx(), &Clock::new()).is_pending());
        advance(Duration::from_secs(9));
        assert!(idle.poll_expired(&mut cx(), &Clock::new()).is_pending());
        idle.progress_now();
        // The timer set for the first limit fires early: it is set again for the rest.
        advance(Duration::from_secs(2));
        assert!(idle.poll_expired(&mut cx(), &Clock::new()).is_pending());
        advance(Duration::from_secs(7));
        assert!(idle.poll_expired(&mut cx(), &Clock::new()).is_pending());
        advance(Duration::from_secs(1));
        assert!(idle.poll_expired(&mut cx(), &Clock::new()).is_ready());
    }

    #[test]
    fn a_deadline_stays_ready_once_passed() {
        let mut deadline = Deadline::<Fake>::after(Duration::from_secs(5));
        assert!(deadline.poll_expired(&mut cx(), &Clock::new()).is_pending());
        advance(Duration::from_secs(5));
        assert!(deadline.poll_expired(&mut cx(), &Clock::new()).is_ready());
        assert!(deadline.poll_expired(&mut cx(), &Clock::new()).is_ready());
    }

    #[test]
    fn a_restarted_idle_timeout_keeps_its_timer_and_counts_from_the_restart() {
        let mut slot = None;
        Idle::<Fake>::restart(&mut slot, Some(Duration::from_secs(10)), &mut Clock::new());
        let made = timers_made();
        assert!(slot
            .as_mut()
            .unwrap()
            .poll_expired(&mut cx(), &Clock::new())
            .is_pending());
        advance(Duration::from_secs(8));
        // The next request on the connection: the same timer, counting anew.
        Idle::restart(&mut slot, Some(Duration::from_secs(10)), &mut Clock::new());
        advance(Duration::from_secs(9));
        assert!(slot
            .as_mut()
            .unwrap()
            .poll_expired(&mut cx(), &Clock::new())
            .is_pending());
        advance(Duration::from_secs(1));
        assert!(slot
            .as_mut()
            .unwrap()
            .poll_expired(&mut cx(), &Clock::new())
            .is_ready());
        // A shorter limit moves the timer earlier.
        Idle::restart(&mut slot, Some(Duration::from_secs(1)), &mut Clock::new());
        assert!(slot
            .as_mut()
            .unwrap()
            .poll_expired(&mut cx(), &Clock::new())
            .is_pending());
        advance(Duration::from_secs(1));
        assert!(slot
            .as_mut()
            .unwrap()
            .poll_expired(&mut cx(), &Clock::new())
            .is_ready());
        assert_eq!(timers_made(), made + 1, "one timer for the three requests");
        // A request without the timeout keeps none.
        Idle::restart(&mut slot, None, &mut Clock::new());
        assert!(slot.is_none());
    }

    /// A timer that fired after the poll's clock reading was taken counts as expired,
    /// not as early: it is not set again for the same past instant over and over.
    #[test]
    fn a_timer_that_fired_after_the_polls_reading_expires_the_timeout() {
        let (done, expired) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut slot = None;
            Idle::<Fake>::restart(&mut slot, Some(Duration::from_secs(10)), &mut Clock::new());
            let idle = slot.as_mut().unwrap();
            let mut clock = Clock::<Fake>::new();
            clock.now();
            assert!(idle.poll_expired(&mut cx(), &clock).is_pending());
            advance(Duration::from_secs(10));
            // `clock` still holds its reading from before.
            let _ = done.send(idle.poll_expired(&mut cx(), &clock).is_ready());
        });
        assert_eq!(expired.recv_timeout(Duration::from_secs(10)), Ok(true));
    }
}
