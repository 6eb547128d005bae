//! A sans-IO FastCGI client: records, name-value pairs, CGI params built from HTTP-shaped
//! input, CGI response head parsing, and the client connection state machine.
//!
//! This crate does no I/O, keeps no clock and spawns nothing. It turns commands into
//! bytes to write and bytes read into events, so the same protocol code drives a
//! blocking socket, tokio, async-std, smol or a custom event loop. Time-outs, pools and
//! sockets live in the adapters (`fcgi-blocking`, `fcgi-tokio`, `fcgi-async-std`).
//!
//! **The drain rule: after every command or input, write out all of
//! [`Connection::transmit`] and drain [`Connection::poll_event`] until it returns
//! `None`.**
//!
//! # The drive loop
//!
//! Encode a request, write what the connection queued, read, feed, drain events. Here
//! the "socket" is a byte vector and a canned php-fpm answer:
//!
//! ```
//! use std::io::IoSlice;
//! use fcgi_proto::{Connection, Config, Event, ParamsBuilder};
//!
//! # fn php_fpm_answer() -> Vec<u8> {
//! #     let mut v = Vec::new();
//! #     let out = b"Content-type: text/html; charset=UTF-8\r\n\r\nHello, World!";
//! #     v.extend_from_slice(&[1, 6, 0, 1, 0, out.len() as u8, 0, 0]);
//! #     v.extend_from_slice(out);
//! #     v.extend_from_slice(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
//! #     v
//! # }
//! let params = ParamsBuilder::new("GET", "/hello.php")
//!     .script("/hello.php", "/srv/www/hello.php")
//!     .build()?;
//! let mut conn = Connection::new(Config::default());
//! let id = conn.start_request(&params)?;
//! conn.finish_stdin(id)?; // no body
//!
//! // 1. Write everything queued (one vectored write here).
//! let mut wire = Vec::new();
//! while conn.transmit_len() > 0 {
//!     let mut slices = [IoSlice::new(&[]); 16];
//!     let n = conn.transmit(&mut slices);
//!     let written = std::io::Write::write_vectored(&mut wire, &slices[..n])?;
//!     conn.consume_transmit(written);
//! }
//!
//! // 2. Read into the connection's buffer, feed, drain events, until the request ends.
//! let mut answer = std::io::Cursor::new(php_fpm_answer());
//! let mut body = Vec::new();
//! 'read: loop {
//!     let room = conn.input_buffer();
//!     let n = std::io::Read::read(&mut answer, room).unwrap();
//!     if n == 0 {
//!         conn.receive_eof()?;
//!         break;
//!     }
//!     conn.input_written(n)?;
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Head { head, .. } => assert_eq!(head.status(), 200),
//!             Event::Body { data, .. } => body.extend_from_slice(&data),
//!             Event::Stderr { data, .. } => eprintln!("{}", String::from_utf8_lossy(&data)),
//!             Event::End { end, .. } => {
//!                 assert!(end.protocol_status.is_complete());
//!                 break 'read;
//!             }
//!             other => panic!("unexpected {other:?}"),
//!         }
//!     }
//! }
//! assert_eq!(body, b"Hello, World!");
//! assert!(conn.is_reusable()); // FCGI_KEEP_CONN: the next request can use it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`address`] | server addresses (`HOST:PORT`, `unix:/path`) as the adapters take them |
//! | [`record`] | record types, roles, flags, protocol statuses, the header, the record decoder |
//! | [`nv`] | name-value pair encoding and decoding |
//! | [`params`] | the ordered param set, the builder from HTTP input, the header policy, path splitting |
//! | [`response`] | the CGI response head and its incremental parser |
//! | [`values`] | management variables (`GET_VALUES`) |
//! | [`connection`] | the client connection state machine and its events |
//! | [`lifecycle`] | the decisions around one request every client shares: `CONTENT_LENGTH`, probing a kept connection, the response head or the refusal, retrying on a fresh connection |
//! | [`client_error`] | the error every adapter returns, shared so that they behave alike |
//! | [`config`] | limits with documented defaults |
//! | [`error`] | errors by who is at fault |
//!
//! # Features
//!
//! - `http`: [`ParamsBuilder::from_http`] from `http::request::Parts`, and
//!   [`ResponseHead::to_http_parts`] and [`ResponseHead::to_gateway_parts`] (hop-by-hop
//!   headers dropped) to `http::response::Parts`.
//! - `tracing`: an event for each record queued or received (module `trace`), what `fcgi -v`
//!   shows; without it the core has no `tracing` dependency.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod address;
pub mod client_error;
pub mod config;
pub mod connection;
pub mod error;
#[cfg(feature = "http")]
mod http_compat;
pub mod lifecycle;
pub mod nv;
pub mod params;
pub mod record;
pub mod response;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod trace;
pub mod values;

pub use address::{Address, AddressError};
pub use client_error::{ClientError, LimitKind, Phase};
pub use config::Config;
pub use connection::{Connection, End, Event, RequestId};
pub use error::{
    Error, HeadError, Limit, LimitExceeded, NvError, ParamError, PathError, ProtocolError,
    UsageError,
};
pub use params::{split_path, HeaderPolicy, Params, ParamsBuilder, SplitPath};
pub use record::{ProtocolStatus, RecordType, Role};
pub use response::{is_hop_by_hop, HeadParser, HeaderField, ResponseHead};
pub use values::ServerValues;
