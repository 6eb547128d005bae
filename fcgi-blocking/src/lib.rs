//! A blocking FastCGI client over std sockets, for php-fpm and any FastCGI application.
//!
//! It is a thin driver of the sans-IO core [`fcgi_proto`]: it opens TCP or unix
//! sockets, moves bytes between them and the core, and maps the core's events to a
//! [`Response`] or a streaming [`ResponseReader`]. Every protocol decision (records,
//! params, CGI header parsing, keep-alive) is the core's.
//!
//! The request, body included, is written before the response is read. php-fpm reads
//! a POST body whole before the script runs, so this never blocks there; an application
//! that writes more output than the socket buffers hold before it reads its input makes
//! the write wait until the write timeout. `fcgi-tokio` reads and writes at once.
//!
//! ```no_run
//! use std::time::Duration;
//! use fcgi_blocking::{Client, Request};
//! use fcgi_proto::ParamsBuilder;
//!
//! let mut client = Client::connect("127.0.0.1:9000")?;
//! client.set_timeout(Some(Duration::from_secs(10)));
//!
//! // A buffered request: status, every header in order, body, stderr.
//! let params = ParamsBuilder::new("POST", "/echo.php?x=1")
//!     .script("/echo.php", "/srv/www/echo.php")
//!     .header("Content-Type", "application/json")
//!     .build()?;
//! let response = client.request(Request::new(params).body(r#"{"hello":"world"}"#))?;
//! println!("{}", response.status);
//! for cookie in response.headers("set-cookie") {
//!     println!("cookie: {}", String::from_utf8_lossy(cookie));
//! }
//!
//! // A streaming request: the head first, then the body as a `Read`.
//! let mut reader = client.request_streaming(Request::get("/srv/www/big.php", "/big.php")?)?;
//! println!("{}", reader.status());
//! std::io::copy(&mut reader, &mut std::io::stdout())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod client;
mod request;
mod stream;

pub use client::{Client, Options, Response, ResponseReader};
pub use fcgi_proto::Address;
pub use fcgi_proto::{ClientError as Error, LimitKind, Phase};
pub use request::Request;

pub use fcgi_proto;
