//! The engine's [`Runtime`] on tokio: tokio's sockets, timers, semaphore and
//! `tokio::spawn`. Applications need none of it by name: [`Client`](crate::Client) is
//! `fcgi_async_core::Client<Tokio>`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fcgi_async_core::{Address, Runtime, Semaphore, Timer};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

pub use crate::io::Io;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use crate::unix::UnixSocket;

/// tokio, as the engine's [`Runtime`]: tokio's sockets, timers, semaphore and
/// `tokio::spawn`. [`Client`](crate::Client) is `fcgi_async_core::Client<Tokio>`.
#[derive(Debug)]
pub struct Tokio;

impl Runtime for Tokio {
    type Socket = Io;
    type Timer = TokioTimer;
    type Semaphore = TokioSemaphore;

    fn connect(
        address: &Address,
        timeout: Option<Duration>,
    ) -> impl Future<Output = io::Result<Io>> + Send {
        crate::io::connect(address, timeout)
    }

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn timer(at: Instant) -> TokioTimer {
        TokioTimer(Box::pin(tokio::time::sleep_until(at.into())))
    }

    async fn timeout<F: Future + Send>(limit: Duration, future: F) -> Option<F::Output> {
        tokio::time::timeout(limit, future).await.ok()
    }

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(tokio::spawn(task));
    }

    fn unread_stderr(address: &str, stderr: &[u8]) {
        tracing::warn!(
            target: "fcgi_tokio",
            address = %address,
            "FastCGI stderr: {}",
            String::from_utf8_lossy(stderr)
        );
    }
}

/// A tokio `Sleep`, boxed to be `Unpin`; it stays ready once elapsed.
pub struct TokioTimer(Pin<Box<Sleep>>);

impl Timer for TokioTimer {
    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(at.into());
    }

    /// tokio's timer entry knows whether it fired: no clock is read.
    fn poll_fired(&mut self, cx: &mut Context<'_>, _now: Option<Instant>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// tokio's semaphore: first come, first served.
pub struct TokioSemaphore(Arc<tokio::sync::Semaphore>);

impl Semaphore for TokioSemaphore {
    type Permit = OwnedSemaphorePermit;

    fn new(permits: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(permits)))
    }

    fn acquire(&self) -> impl Future<Output = OwnedSemaphorePermit> + Send {
        let acquire = self.0.clone().acquire_owned();
        async move { acquire.await.expect("the pool's semaphore is never closed") }
    }

    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }

    fn available_permits(&self) -> usize {
        self.0.available_permits()
    }
}
