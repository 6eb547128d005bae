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
    pub(crate) fn restart(slot: &mut Option<Self>, limit: Option<Duration>) {
        match (slot.as_mut(), limit) {
            (Some(idle), Some(limit)) => {
                idle.limit = limit;
                idle.progress();
            }
            (_, limit) => *slot = limit.map(Self::new),
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::io::{self, IoSlice};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use fcgi_proto::Address;

    use super::{Deadline, Idle};
    use crate::runtime::{NeutralSemaphore, Runtime, Socket, Timer};

    thread_local! {
        /// The fake clock of the test on this thread.
        static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
        /// Timers the fake runtime has made on this thread.
        static TIMERS: Cell<u32> = const { Cell::new(0) };
    }

    fn advance(by: Duration) {
        NOW.set(Some(Fake::now() + by));
    }

    /// A runtime whose clock moves only when a test says so.
    #[derive(Debug)]
    struct Fake;

    #[derive(Debug)]
    struct NoSocket;

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
    struct FakeTimer(Instant);

    impl Timer for FakeTimer {
        fn reset(&mut self, at: Instant) {
            self.0 = at;
        }

        fn poll_fired(&mut self, _: &mut Context<'_>) -> Poll<()> {
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

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn an_idle_timeout_fires_after_the_limit_without_progress() {
        let mut idle = Idle::<Fake>::new(Duration::from_secs(10));
        assert!(idle.poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(9));
        assert!(idle.poll_expired(&mut cx()).is_pending());
        idle.progress();
        // The timer set for the first limit fires early: it is set again for the rest.
        advance(Duration::from_secs(2));
        assert!(idle.poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(7));
        assert!(idle.poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(1));
        assert!(idle.poll_expired(&mut cx()).is_ready());
    }

    #[test]
    fn a_deadline_stays_ready_once_passed() {
        let mut deadline = Deadline::<Fake>::after(Duration::from_secs(5));
        assert!(deadline.poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(5));
        assert!(deadline.poll_expired(&mut cx()).is_ready());
        assert!(deadline.poll_expired(&mut cx()).is_ready());
    }

    #[test]
    fn a_restarted_idle_timeout_keeps_its_timer_and_counts_from_the_restart() {
        let mut slot = None;
        Idle::<Fake>::restart(&mut slot, Some(Duration::from_secs(10)));
        let made = TIMERS.get();
        assert!(slot.as_mut().unwrap().poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(8));
        // The next request on the connection: the same timer, counting anew.
        Idle::restart(&mut slot, Some(Duration::from_secs(10)));
        advance(Duration::from_secs(9));
        assert!(slot.as_mut().unwrap().poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(1));
        assert!(slot.as_mut().unwrap().poll_expired(&mut cx()).is_ready());
        // A shorter limit moves the timer earlier.
        Idle::restart(&mut slot, Some(Duration::from_secs(1)));
        assert!(slot.as_mut().unwrap().poll_expired(&mut cx()).is_pending());
        advance(Duration::from_secs(1));
        assert!(slot.as_mut().unwrap().poll_expired(&mut cx()).is_ready());
        assert_eq!(TIMERS.get(), made + 1, "one timer for the three requests");
        // A request without the timeout keeps none.
        Idle::restart(&mut slot, None);
        assert!(slot.is_none());
    }
}
