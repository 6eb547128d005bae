//! What a client child measures around its timed loop: wall time, CPU time of the whole
//! process (getrusage), allocations, and at the end its peak RSS.

use std::time::Instant;

use crate::alloc;

/// CPU microseconds (user + system, and user alone) of every thread of this process, and
/// peak RSS in KiB.
fn rusage() -> (u64, u64, u64) {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value we own; RUSAGE_SELF is
    // always valid.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (
        us(usage.ru_utime) + us(usage.ru_stime),
        us(usage.ru_utime),
        usage.ru_maxrss as u64,
    )
}

/// A running measurement.
pub(crate) struct Meter {
    wall: Instant,
    cpu_us: u64,
    user_us: u64,
    allocs: (u64, u64),
}

impl Meter {
    /// Starts measuring (after the warm-up).
    pub(crate) fn start() -> Self {
        let (cpu_us, user_us, _) = rusage();
        Self {
            wall: Instant::now(),
            cpu_us,
            user_us,
            allocs: alloc::snapshot(),
        }
    }

    /// Stops and prints one line for the driver: `result key=value ...`.
    pub(crate) fn finish(self, requests: u64, bytes: u64) {
        let wall_ns = self.wall.elapsed().as_nanos();
        let (cpu_us, user_us, peak_rss_kib) = rusage();
        let (allocs, alloc_bytes) = alloc::snapshot();
        println!(
            "result requests={requests} bytes={bytes} wall_ns={wall_ns} cpu_us={} user_us={} allocs={} alloc_bytes={} peak_rss_kib={peak_rss_kib}",
            cpu_us - self.cpu_us,
            user_us - self.user_us,
            allocs - self.allocs.0,
            alloc_bytes - self.allocs.1,
        );
    }
}
