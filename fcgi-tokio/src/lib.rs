//! A FastCGI client over tokio: one cloneable [`Client`] that many tasks share, with a
//! pool of kept connections per upstream, per-phase timeouts, full-duplex streaming of
//! request and response bodies, and cancellation that never leaves a half-read
//! connection in the pool.
//!
//! It is a thin driver of the sans-IO core [`fcgi_proto`], which makes every protocol
//! decision; this crate moves bytes between tokio sockets and the core.
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

#![forbid(unsafe_code)]

mod body;
mod client;
mod exchange;
mod io;

pub use body::Body;
pub use client::{Client, Options, Request, Response, ResponseStream};
pub use fcgi_proto;
pub use fcgi_proto::{Address, ClientError as Error, LimitKind, Phase};
