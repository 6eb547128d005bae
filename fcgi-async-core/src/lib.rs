//! The runtime-neutral engine of the async FastCGI clients `fcgi-tokio` and
//! `fcgi-async-std`: a pool of kept connections per upstream (with `max_connections`,
//! `max_idle`, `idle_timeout`, failover between upstreams and a retry after a stale kept
//! connection), per-phase timeouts, full-duplex exchanges, multiplexed connections each
//! run by a driver task, and cancellation that never leaves a half-read connection in
//! the pool.
//!
//! It is written once, generic over a [`Runtime`]: the socket, the timer, the timeout,
//! the clock, `connect`, `spawn` and the pool's [`Semaphore`] of one async runtime
//! ([`NeutralSemaphore`] serves any). The other locks, notifications and channels are
//! runtime-neutral (`async-lock`, `event-listener`, `async-channel`). Every protocol
//! decision is the sans-IO core's, [`fcgi_proto`].
//!
//! Applications use an adapter, not this crate: `fcgi-tokio` (tokio) or
//! `fcgi-async-std` (async-std and smol). An adapter is a [`Runtime`], its socket, and
//! type aliases: `fcgi_tokio::Client` is `Client<Tokio>`, and [`Body`], [`Request`],
//! [`Options`] and [`Response`] are these types. The runtime's `AsyncRead`, which
//! [`Body::from_reader`] takes and [`ResponseStream`] implements, is chosen by feature:
//! `tokio` for tokio's, `futures-io` for futures-io's (an adapter turns its own on).
//!
//! # One request per connection, or multiplexed
//!
#![doc = crate::shared_docs!(multiplexing, "[`Runtime::spawn`]")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod balance;
mod body;
mod client;
mod discovery;
mod docs;
mod exchange;
#[cfg(test)]
mod fake_runtime;
mod mux;
mod runtime;
mod time;

pub use body::{Body, BodyReader, FuturesIo, TokioIo};
pub use client::{Client, Options, Request, Response, ResponseStream};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};
pub use runtime::{NeutralSemaphore, Runtime, Semaphore, Socket, Timer};
