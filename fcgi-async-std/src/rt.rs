//! The one thing that differs between runtimes: where the driver task of a multiplexed
//! connection runs. Sockets and timers are async-io's, which async-std and smol share.
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

/// Runs `task` to its end in the background, detached.
pub(crate) fn spawn<F>(task: F)
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
