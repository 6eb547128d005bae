//! What the test files share: the two runtimes every test can run on, timers, and
//! params for the test kit's php-fpm.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use fcgi_async_std::{Address, Client, Options, Request};
use fcgi_testkit::PhpFpm;

/// The runtime a test runs on: its `block_on` drives the test, its executor runs the
/// test's spawned tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    AsyncStd,
    Smol,
}

/// A spawned task's result.
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Rt {
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        match self {
            Rt::AsyncStd => async_std::task::block_on(future),
            Rt::Smol => smol::block_on(future),
        }
    }

    /// Spawns `future` on this runtime's executor; the returned future is its output.
    pub fn spawn<T, F>(self, future: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        match self {
            Rt::AsyncStd => Box::pin(async_std::task::spawn(future)),
            Rt::Smol => Box::pin(smol::spawn(future)),
        }
    }

    /// Runs blocking work off the executor.
    pub async fn unblock<T, F>(self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            Rt::AsyncStd => async_std::task::spawn_blocking(work).await,
            Rt::Smol => smol::unblock(work).await,
        }
    }
}

/// Defines `on_async_std::NAME` and `on_smol::NAME` tests, each running `NAME(rt)` on its
/// runtime, for every `NAME` listed.
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod on_async_std {
            $(#[test]
            fn $name() {
                let rt = $crate::common::Rt::AsyncStd;
                rt.block_on(super::$name(rt));
            })*
        }
        mod on_smol {
            $(#[test]
            fn $name() {
                let rt = $crate::common::Rt::Smol;
                rt.block_on(super::$name(rt));
            })*
        }
    };
}

/// Defines an `async_std_only::NAME` test for every `NAME` listed.
#[macro_export]
macro_rules! on_async_std {
    ($($name:ident),* $(,)?) => {
        mod async_std_only {
            $(#[test]
            fn $name() {
                let rt = $crate::common::Rt::AsyncStd;
                rt.block_on(super::$name(rt));
            })*
        }
    };
}

pub async fn sleep(d: Duration) {
    async_io::Timer::after(d).await;
}

/// `future`'s output, or `None` when `limit` passes first (the future is dropped).
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    smol::future::or(async { Some(future.await) }, async {
        sleep(limit).await;
        None
    })
    .await
}

pub fn addresses(fpm: &PhpFpm) -> [Address; 2] {
    [
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Address::from(fpm.tcp_addr()),
    ]
}

pub fn client(address: Address, options: Options) -> Client {
    Client::with_upstreams([address], options).unwrap()
}

pub fn unix_client(fpm: &PhpFpm, options: Options) -> Client {
    client(Address::Unix(fpm.unix_socket().to_path_buf()), options)
}

pub fn get(fpm: &PhpFpm, script: &str, query: &str) -> Request {
    Request::new(fpm.params("GET", script, query))
}

pub fn post(fpm: &PhpFpm, script: &str, body: impl Into<fcgi_async_std::Body>) -> Request {
    Request::new(fpm.params("POST", script, "")).body(body)
}

/// A pseudo-random sequence (xorshift), the same on every run.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
