//! The engine's [`Runtime`] for async-std and smol: sockets and timers are async-io's,
//! which async-std and smol share; what differs between them is where the driver task
//! of a multiplexed connection runs.
//!
//! - feature `smol`: `smol::spawn` (smol's global executor), also when `async-std` is
//!   enabled as well;
//! - feature `async-std` alone (the default): `async_std::task::spawn`;
//! - neither: a thread of its own per multiplexed connection, running the driver with
//!   `async_io::block_on`.
//!
//! Each of these runs the task whatever executor the caller uses: both global executors
//! start their own threads.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use fcgi_async_core::{Address, NeutralSemaphore, Runtime};

pub use crate::io::Io;
pub use crate::time::IoTimer;

/// async-io (async-std, smol), as the engine's [`Runtime`]. [`Client`](crate::Client)
/// is `fcgi_async_core::Client<AsyncIo>`.
#[derive(Debug)]
pub struct AsyncIo;

impl Runtime for AsyncIo {
    type Socket = Io;
    type Timer = IoTimer;
    type Semaphore = NeutralSemaphore;

    fn connect(
        address: &Address,
        timeout: Option<Duration>,
    ) -> impl Future<Output = io::Result<Io>> + Send {
        crate::io::connect(address, timeout)
    }

    fn timer(at: Instant) -> IoTimer {
        IoTimer::at(at)
    }

    fn timeout<F: Future + Send>(
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Option<F::Output>> + Send {
        crate::time::timeout(limit, future)
    }

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        #[cfg(feature = "smol")]
        smol::spawn(task).detach();
        #[cfg(all(feature = "async-std", not(feature = "smol")))]
        drop(async_std::task::spawn(task));
        #[cfg(not(any(feature = "async-std", feature = "smol")))]
        {
            // The driver ends when its connection closes; a failed spawn drops the task,
            // which fails the requests meant for it like a closed connection.
            let spawned = std::thread::Builder::new()
                .name("fcgi-mux".into())
                .spawn(move || async_io::block_on(task));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a thread for a multiplexed FastCGI connection");
            }
        }
    }

    fn unread_stderr(address: &str, stderr: &[u8]) {
        tracing::warn!(
            target: "fcgi_async_std",
            address = %address,
            "FastCGI stderr: {}",
            String::from_utf8_lossy(stderr)
        );
    }
}
