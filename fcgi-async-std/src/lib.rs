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
//! # Bodies and responses
//!
//! The client is `fcgi-async-core`'s, on the runtime [`AsyncIo`]: [`Client`] and
//! [`ResponseStream`] are type aliases, the other types are the engine's. A body can
//! come from any futures-io reader of known length (a file of async-std or smol, a
//! socket, a cursor), and [`ResponseStream`] is a futures-io `AsyncRead`:
//!
//! ```
//! use fcgi_async_std::{Body, Request};
//! use fcgi_proto::ParamsBuilder;
//!
//! let params = ParamsBuilder::new("POST", "/upload.php")
//!     .script("/upload.php", "/srv/www/upload.php")
//!     .header("Content-Type", "application/octet-stream")
//!     .build()?;
//! let file = smol::io::Cursor::new(vec![7u8; 4096]);
//! let request = Request::new(params)
//!     .body(Body::from_reader(file, 4096))
//!     .on_stderr(|line| eprintln!("php: {}", String::from_utf8_lossy(line)));
//! # let _ = request;
//! # Ok::<(), fcgi_async_std::Error>(())
//! ```
//!
//! ```no_run
//! # async fn run(client: fcgi_async_std::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use fcgi_async_std::Request;
//!
//! let request = Request::get("/srv/www/report.php", "/report.php?page=2")?;
//! assert_eq!(request.params().get("QUERY_STRING"), Some(&b"page=2"[..]));
//! let mut stream = client.request_streaming(request).await?;
//! // Copy the body to a file as it arrives, in bounded memory.
//! let mut file = async_std::fs::File::create("/tmp/report.html").await?;
//! async_std::io::copy(&mut stream, &mut file).await?;
//! println!("{:?}", stream.end());
//! # Ok(()) }
//! ```
//!
//! # One request per connection, or multiplexed
//!
#![doc = fcgi_async_core::shared_docs!(multiplexing, "spawned as the table above says")]
// `unsafe` only where `io` reads into a buffer's spare capacity; the block says why it
// holds.
#![deny(unsafe_code)]
// No `#![cfg_attr(docsrs, feature(doc_cfg))]` here, unlike fcgi-proto and fcgi-tokio: no
// public item of this crate depends on a feature, and with it rustdoc would only mark
// methods that `ResponseStream` gets from futures-lite's extension traits as "available
// on crate feature `alloc`/`std` only": futures-lite's features, not this crate's.

mod io;
pub mod runtime;
mod time;

pub use fcgi_async_core::{Body, Options, Request, Response};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};
pub use runtime::AsyncIo;

#[doc = fcgi_async_core::shared_docs!(client)]
///
/// ```no_run
/// # async fn run() -> Result<(), fcgi_async_std::Error> {
/// use fcgi_async_std::{Client, Request};
/// use fcgi_proto::ParamsBuilder;
///
/// let client = Client::new("unix:/run/php/php-fpm.sock")?;
/// let params = ParamsBuilder::new("GET", "/index.php")
///     .script("/index.php", "/srv/www/index.php")
///     .build()?;
/// let response = client.request(Request::new(params)).await?;
/// println!("{} {}", response.status, String::from_utf8_lossy(&response.body));
/// # Ok(()) }
/// ```
pub type Client = fcgi_async_core::Client<AsyncIo>;

#[doc = fcgi_async_core::shared_docs!(response_stream)]
///
/// `AsyncRead` is futures-io's; unread stderr is logged under the target
/// `fcgi_async_std`.
pub type ResponseStream = fcgi_async_core::ResponseStream<AsyncIo>;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
