//! A FastCGI client over [`futures-io`](futures_io), for async-std and smol: one
//! cloneable [`Client`] that many tasks share, with a pool of kept connections per
//! upstream, per-phase timeouts, full-duplex streaming of request and response bodies,
//! and cancellation that never leaves a half-read connection in the pool.
//!
//! It is a thin driver of the sans-IO core [`fcgi_proto`], which makes every protocol
//! decision; this crate moves bytes between sockets and the core. The client itself
//! (pool, timeouts, exchanges, multiplexing) is the runtime-neutral engine of
//! `fcgi-async-core`, shared with `fcgi-tokio`, run here on async-io. Its API is that of
//! `fcgi-tokio`, name for name.
//!
//! With async-std:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fcgi_async_std::{Body, Client, Request};
//! use fcgi_proto::ParamsBuilder;
//!
//! async_std::task::block_on(async {
//!     let client = Client::new("127.0.0.1:9000")?;
//!     let params = ParamsBuilder::new("POST", "/echo.php")
//!         .script("/echo.php", "/srv/www/echo.php")
//!         .build()?;
//!
//!     // Buffered: status, every header in order, body, stderr.
//!     let response = client.request(Request::new(params.clone()).body("hello")).await?;
//!     assert_eq!(response.status, 200);
//!
//!     // Streaming: the head first, then the body as it arrives.
//!     let mut stream = client.request_streaming(Request::new(params).body("hello")).await?;
//!     while let Some(chunk) = stream.chunk().await? {
//!         println!("{} bytes", chunk.len());
//!     }
//!     Ok(())
//! })
//! # }
//! ```
//!
//! With smol (the same client; add the crate with `default-features = false, features =
//! ["smol"]` so that async-std is not built at all):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fcgi_async_std::{Client, Request};
//! use smol::io::AsyncReadExt;
//!
//! smol::block_on(async {
//!     let client = Client::new("unix:/run/php/php-fpm.sock")?;
//!     let request = Request::get("/srv/www/index.php", "/index.php?page=1")?;
//!     // The body through futures-io's AsyncRead.
//!     let mut stream = client.request_streaming(request).await?;
//!     let mut body = String::new();
//!     stream.read_to_string(&mut body).await?;
//!     println!("{} {body}", stream.status());
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Runtimes
//!
//! Sockets and timers are [`async-io`](async_io)'s, the reactor that async-std and smol
//! both run on, so one code path serves both, under either executor (or
//! `futures::executor`, or `async_io::block_on`). The runtime features choose only
//! where the driver task of a multiplexed connection runs (see below):
//!
//! | features | driver task |
//! |---|---|
//! | `async-std` (the default) | `async_std::task::spawn` |
//! | `smol`, alone or with `async-std` | `smol::spawn` (smol's global executor) |
//! | neither | a thread of its own per multiplexed connection |
//!
//! async-std is discontinued upstream in favour of smol (RUSTSEC-2025-0052): new code
//! should prefer `default-features = false, features = ["smol"]`. A TCP host name is
//! resolved on the thread pool of the `blocking` crate (an IP address is not resolved).
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
//! served exactly as without the option. On a multiplexed connection:
//!
//! - a driver task (spawned as the table above says) owns the socket and the protocol
//!   core; requests reach it through a channel, it polls their bodies into the core in
//!   turn (at most 256 KiB of output queued), writes, reads, and routes each event to its
//!   request's queue;
//! - the core numbers the requests and frees an id at its `END_REQUEST`; a request that
//!   is dropped (its future or its [`ResponseStream`]) is aborted with `ABORT_REQUEST`
//!   through the core, which drops that request's later records; the other requests on
//!   the connection carry on;
//! - the read and total timeouts are kept per request, as on the one-request path; a
//!   server that takes no output for the write timeout fails the requests not yet
//!   written with a write timeout and the connection takes no new request;
//! - a broken connection (reset, closed early, protocol error) fails every request in
//!   flight on it with that error, and leaves the pool;
//! - a response whose reader lags holds at most 512 KiB, then holds back the whole
//!   connection until it is read or dropped: FastCGI has no flow control per request.
//!
//! The same [`Client::request`], [`Client::request_streaming`] and [`ResponseStream`]
//! serve both paths.

#![forbid(unsafe_code)]
// No `#![cfg_attr(docsrs, feature(doc_cfg))]` here, unlike fcgi-proto and fcgi-tokio: no
// public item of this crate depends on a feature, and with it rustdoc would only mark
// methods that `ResponseStream` gets from futures-lite's extension traits as "available
// on crate feature `alloc`/`std` only": futures-lite's features, not this crate's.

mod body;
mod client;
mod io;
mod rt;
mod time;

pub use body::Body;
pub use client::{Client, Options, Request, Response, ResponseStream};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
