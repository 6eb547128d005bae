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
//! A body can come from any tokio reader of known length, such as a file:
//!
//! ```
//! use fcgi_tokio::Body;
//!
//! let file = Body::from_reader(std::io::Cursor::new(vec![0u8; 1024]), 1024);
//! assert_eq!(file.len(), Some(1024));
//! ```
//!
//! The client is `fcgi-async-core`'s, on the runtime [`Tokio`]: [`Client`] and
//! [`ResponseStream`] are type aliases, the other types are the engine's, and
//! [`ResponseStream`] is a tokio `AsyncRead`.
//!
//! # One request per connection, or multiplexed
//!
#![doc = fcgi_async_core::shared_docs!(multiplexing, "`tokio::spawn`")]
//!
//! # HTTP
//!
//! The crate `fcgi-http` takes `http::Request`s and answers `http::Response`s whose body
//! streams, on this client: `FastCgiService`, a tower `Service` for axum and hyper, and
//! `Gateway`, a document root served as nginx serves one in front of php-fpm (`*.php`
//! through FastCGI, other files static), behind the `fcgi serve` command.

// `unsafe` only where `unix` registers a socket with tokio and reads into spare
// capacity; each block says why it holds.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod io;
pub mod runtime;
#[cfg(unix)]
mod unix;

pub use fcgi_async_core::{Body, Options, Request, Response};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};
pub use runtime::Tokio;

#[doc = fcgi_async_core::shared_docs!(client)]
///
/// ```no_run
/// # async fn run() -> Result<(), fcgi_tokio::Error> {
/// use fcgi_tokio::{Client, Request};
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
pub type Client = fcgi_async_core::Client<Tokio>;

#[doc = fcgi_async_core::shared_docs!(response_stream)]
///
/// `AsyncRead` is tokio's; unread stderr is logged under the target `fcgi_tokio`.
pub type ResponseStream = fcgi_async_core::ResponseStream<Tokio>;
