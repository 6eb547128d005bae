//! A FastCGI client over tokio: one cloneable [`Client`] that many tasks share, with a
//! pool of kept connections per upstream, per-phase timeouts, full-duplex streaming of
//! request and response bodies, and cancellation that never leaves a half-read
//! connection in the pool.
//!
//! It is a thin driver of the sans-IO core [`fcgi_proto`], which makes every protocol
//! decision; this crate moves bytes between tokio sockets and the core. The client
//! itself (pool, timeouts, exchanges, multiplexing) is the runtime-neutral engine of
//! `fcgi-async-core`, shared with `fcgi-async-std`, run here on tokio.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fcgi_tokio::{Body, Client, Request};
//! use fcgi_proto::ParamsBuilder;
//!
//! let client = Client::new("127.0.0.1:9000")?;
//! let params = ParamsBuilder::new("POST", "/echo.php")
//!     .script("/echo.php", "/srv/www/echo.php")
//!     .build()?;
//!
//! // Buffered: status, every header in order, body, stderr.
//! let response = client.request(Request::new(params.clone()).body("hello")).await?;
//! assert_eq!(response.status, 200);
//!
//! // Streaming: the head first, then the body as it arrives.
//! let mut stream = client.request_streaming(Request::new(params).body("hello")).await?;
//! while let Some(chunk) = stream.chunk().await? {
//!     println!("{} bytes", chunk.len());
//! }
//! # Ok(()) }
//! ```
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
//! - a driver task (`tokio::spawn`) owns the socket and the protocol core; requests reach
//!   it through a channel, it polls their bodies into the core in turn (at most 256 KiB of
//!   output queued), writes, reads, and routes each event to its request's queue;
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

//!
//! # HTTP (feature `http`)
//!
//! The [`http`] module takes `http::Request`s and answers `http::Response`s whose body
//! streams: [`http::FastCgiService`], a tower `Service` for axum and hyper, and
//! [`http::Gateway`], a document root served as nginx serves one in front of php-fpm
//! (`*.php` through FastCGI, other files static). `examples/php_gateway.rs` and the
//! `fcgi serve` command are thin server loops around the gateway.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod client;
#[cfg(feature = "http")]
pub mod http;
mod io;
mod runtime;

pub use body::Body;
pub use client::{Client, Options, Request, Response, ResponseStream};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};
