//! Which upstream a request goes to, when a client has several: the one with the
//! fewest requests in flight among those in service, as nginx's `least_conn`; an
//! upstream that failed (a connect error, or `END_REQUEST` refusing the request) sits
//! out [`Options::upstream_fail_timeout`](crate::Options::upstream_fail_timeout), as
//! nginx's `fail_timeout`; one that a health check took out stays out until it is put
//! back ([`Client::set_upstream_healthy`](crate::Client::set_upstream_healthy)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An upstream's standing.
#[derive(Debug, Default)]
pub(crate) struct Standing {
    /// Until when it sits out after a failure.
    failed_until: Mutex<Option<Instant>>,
    /// Taken out by a health check.
    unhealthy: AtomicBool,
}

impl Standing {
    /// Whether requests go to it first.
    pub(crate) fn in_service(&self, now: Instant) -> bool {
        !self.unhealthy.load(Ordering::Relaxed) && !self.sitting_out(now)
    }

    fn sitting_out(&self, now: Instant) -> bool {
        let mut failed_until = lock(&self.failed_until);
        match *failed_until {
            Some(until) if now < until => true,
            Some(_) => {
                *failed_until = None;
                false
            }
            None => false,
        }
    }

    /// It failed a request at `now`: it sits out `for_`.
    pub(crate) fn failed(&self, now: Instant, for_: Duration) {
        *lock(&self.failed_until) = Some(now + for_);
    }

    /// It served a connection: any sitting out ends.
    pub(crate) fn succeeded(&self) {
        let mut failed_until = lock(&self.failed_until);
        if failed_until.is_some() {
            *failed_until = None;
        }
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.unhealthy.store(!healthy, Ordering::Relaxed);
    }

    pub(crate) fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The upstream to try first: among those in service, the least loaded, ties going to
/// the first in the rotation from `start` (so that equal upstreams take turns); when
/// none is in service, `start` (a request is better tried than refused).
/// `upstreams` yields, in index order, whether each is in service and its load.
pub(crate) fn first(start: usize, upstreams: &[(bool, usize)]) -> usize {
    let n = upstreams.len();
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| upstreams[i].0)
        .min_by_key(|&i| upstreams[i].1)
        .unwrap_or(start % n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_in_service_first() {
        assert_eq!(first(0, &[(true, 3), (true, 1), (true, 2)]), 1);
        // Ties take turns from the rotation's start.
        assert_eq!(first(0, &[(true, 1), (true, 1), (true, 1)]), 0);
        assert_eq!(first(1, &[(true, 1), (true, 1), (true, 1)]), 1);
        assert_eq!(first(2, &[(true, 1), (true, 1), (true, 1)]), 2);
        // Out of service: passed over, however idle.
        assert_eq!(first(0, &[(false, 0), (true, 5)]), 1);
        // None in service: the rotation's.
        assert_eq!(first(1, &[(false, 0), (false, 0)]), 1);
        assert_eq!(first(5, &[(true, 0)]), 0);
    }

    #[test]
    fn a_failure_sits_out_its_time_and_health_overrides() {
        let standing = Standing::default();
        let now = Instant::now();
        assert!(standing.in_service(now));
        standing.failed(now, Duration::from_secs(10));
        assert!(!standing.in_service(now + Duration::from_secs(9)));
        assert!(standing.in_service(now + Duration::from_secs(10)));
        standing.failed(now, Duration::from_secs(10));
        standing.succeeded();
        assert!(standing.in_service(now));
        standing.set_healthy(false);
        assert!(!standing.in_service(now + Duration::from_secs(60)));
        assert!(!standing.healthy());
        standing.set_healthy(true);
        assert!(standing.in_service(now));
    }
}
