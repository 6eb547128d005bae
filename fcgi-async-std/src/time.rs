//! Clocks, on async-io's timers (the reactor that async-std and smol both run on): a
//! bound on a future, and the engine's timer.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
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
    at: Instant,
    fired: bool,
    /// The waker the timer is registered with in the reactor, while it is.
    registered: Option<Waker>,
}

impl IoTimer {
    pub(crate) fn at(at: Instant) -> Self {
        Self {
            timer: Timer::at(at),
            at,
            fired: false,
            registered: None,
        }
    }
}

impl fcgi_async_core::Timer for IoTimer {
    fn reset(&mut self, at: Instant) {
        self.timer.set_at(at);
        self.at = at;
        self.fired = false;
        self.registered = None;
    }

    /// With the engine's clock reading, a timer not yet due and registered for the
    /// same task is not polled (an async-io timer reads the clock on every poll).
    fn poll_fired(&mut self, cx: &mut Context<'_>, now: Option<Instant>) -> Poll<()> {
        if !self.fired {
            let waiting = self
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            match now {
                Some(now) if now >= self.at => self.fired = true,
                Some(_) if waiting => {}
                _ => match Pin::new(&mut self.timer).poll(cx) {
                    Poll::Ready(_) => self.fired = true,
                    Poll::Pending if !waiting => self.registered = Some(cx.waker().clone()),
                    Poll::Pending => {}
                },
            }
        }
        if self.fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use fcgi_async_core::Timer as _;

    use super::{timeout, IoTimer};

    /// Polled with the engine's clock readings, a timer fires when its instant has
    /// passed (woken by the reactor), stays fired, and is pending again once set later.
    #[test]
    fn a_timer_polled_with_clock_readings_fires_when_due() {
        let mut timer = IoTimer::at(Instant::now() + Duration::from_millis(20));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(timer.poll_fired(&mut cx, Some(Instant::now())).is_pending());
        let fired = poll_fn(|cx| timer.poll_fired(cx, Some(Instant::now())));
        let bounded = timeout(Duration::from_secs(10), fired);
        assert_eq!(async_io::block_on(bounded), Some(()));
        assert!(timer.poll_fired(&mut cx, Some(Instant::now())).is_ready());
        assert!(timer.poll_fired(&mut cx, None).is_ready());

        timer.reset(Instant::now() + Duration::from_secs(60));
        assert!(timer.poll_fired(&mut cx, Some(Instant::now())).is_pending());
        assert!(timer.poll_fired(&mut cx, None).is_pending());
        let due = Instant::now() + Duration::from_secs(60);
        assert!(matches!(
            timer.poll_fired(&mut cx, Some(due)),
            Poll::Ready(())
        ));
    }
}
