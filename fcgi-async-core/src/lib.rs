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
//! `fcgi-async-std` (async-std and smol). Each implements [`Runtime`] and wraps
//! [`Client`], [`ResponseStream`] and [`Body`] in types of its own where its runtime's
//! traits (`AsyncRead`) are implemented.
//!
//! # One request per connection, or multiplexed
//!
//! By default every request has a connection to itself while it runs (php-fpm and most
//! servers serve one request per connection at a time): the task that sends the request
//! drives its connection inline, with no extra task and no channel, and the connection
//! goes back to the pool when the response has ended.
//!
//! With [`Options::multiplex`], the client asks each upstream `GET_VALUES` before its
//! first request. A server that answers `FCGI_MPXS_CONNS=1` (flup, for one) gets many
//! requests at once on each connection, up to its `FCGI_MAX_REQS`; any other server is
//! served exactly as without the option. On a multiplexed connection a driver task
//! ([`Runtime::spawn`]) owns the socket and the protocol core, and requests reach it
//! through a channel; see [`Options::multiplex`].

#![forbid(unsafe_code)]

mod body;
mod client;
mod discovery;
mod exchange;
#[cfg(test)]
mod fake_runtime;
mod mux;
mod runtime;
mod time;

pub use body::{Body, BodyReader};
pub use client::{Client, Options, Request, Response, ResponseStream};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};
pub use runtime::{NeutralSemaphore, Runtime, Semaphore, Socket, Timer};
