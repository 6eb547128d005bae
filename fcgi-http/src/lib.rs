//! HTTP in, FastCGI behind: an `http::Request` goes to the application and an
//! `http::Response` whose body streams comes back, through a tower [`Service`] that axum
//! and hyper take as it is. The FastCGI client under it is [`fcgi_tokio`]'s.
//!
//! | item | what |
//! |---|---|
//! | [`FastCgiService`] | every request to one FastCGI application: params from the request ([`fcgi_proto::ParamsBuilder::from_http`]), the script from a [`ScriptConfig`] |
//! | [`Gateway`] | a document root, as nginx serves one in front of php-fpm: `*.php` through FastCGI, directories to `index.php`, other files static |
//! | [`ScriptConfig`] | document root, index file, split extension, extra params |
//! | [`ResponseBody`] | the response body: FastCGI output as it arrives, a file, or bytes |
//! | [`PeerAddrs`] | the client's and the server's socket addresses, for `REMOTE_ADDR` and `SERVER_ADDR` |
//!
//! A server loop with hyper (as `examples/php_gateway.rs` and `fcgi serve` do):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::convert::Infallible;
//! use fcgi_http::{Gateway, PeerAddrs, ScriptConfig};
//! use fcgi_tokio::Client;
//!
//! let gateway = Gateway::new(Client::new("unix:/run/php/php-fpm.sock")?, ScriptConfig::new("/srv/www"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (socket, remote) = listener.accept().await?;
//!     let gateway = gateway.for_connection(PeerAddrs::new(remote, socket.local_addr()?));
//!     // hyper::server::conn::http1::Builder::new().serve_connection(
//!     //     hyper_util::rt::TokioIo::new(socket),
//!     //     hyper::service::service_fn(move |request| {
//!     //         let gateway = gateway.clone();
//!     //         async move { Ok::<_, Infallible>(gateway.handle(request).await) }
//!     //     }),
//!     // )
//! #   let _ = gateway;
//! }
//! # }
//! ```
//!
//! # What reaches the application, and what comes back
//!
//! - Params as nginx's `fastcgi_params` (see [`fcgi_proto::ParamsBuilder`]): request
//!   headers under its policy (`Proxy` and names with `_` dropped), `REMOTE_ADDR`,
//!   `REMOTE_PORT`, `SERVER_ADDR`, `SERVER_PORT` from [`PeerAddrs`] (a request
//!   extension, else the service's [`for_connection`](FastCgiService::for_connection)),
//!   then the [`ScriptConfig`]'s own params, which win.
//! - `CONTENT_LENGTH` is always the number of body bytes sent. A body of unknown length
//!   (chunked) is spooled first, to memory then to a temporary file (nginx does the
//!   same), or refused with 411 ([`UnknownLength`]).
//! - The response as nginx passes it: `Status` consumed into the status line, a
//!   `Location` without `Status` is 302, hop-by-hop headers (and those the
//!   application's `Connection` names) dropped, every `Set-Cookie` kept in order. A
//!   `HEAD` request, 1xx, 204 and 304 responses have no body: they go out at once,
//!   and what the application writes after the head is read and discarded in the
//!   background, so that its connection goes back to the pool (for at most 1 s and
//!   1 MiB; past them that connection is closed). The same goes for the rest of a
//!   response dropped before its end, such as the `END_REQUEST` record after a body
//!   of the application's `Content-Length`, which hyper does not wait for.
//! - Failures answer without detail: 400 for a bad request, 502 when the application
//!   cannot be reached or answers badly, 504 when it times out; the detail goes to
//!   `tracing` (target `fcgi_http`).
//!
//! # Features
//!
//! - `server` (default): [`Server`], the server loop: HTTP/1.1 and HTTP/2 by hyper-util,
//!   graceful shutdown.
//! - `tls` (default): HTTPS for [`Server`] with rustls (and ring), and [`tls_config`] to
//!   load PEM files.
//!
//! Without them, the crate is the tower [`Service`] and the [`Gateway`], for a server
//! of your own (axum, hyper).
//!
//! [`Service`]: tower_service::Service

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_log;
mod body;
mod buffer;
#[cfg(feature = "server")]
mod client_io;
mod etag;
mod files;
mod gateway;
mod health;
mod proxy;
mod script;
mod sendfile;
#[cfg(feature = "server")]
mod server;
mod service;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use ::http::StatusCode;

pub use access_log::{AccessLog, AccessLogLayer, LoggedBody, UpstreamTime, ACCESS_LOG_TARGET};
pub use body::ResponseBody;
pub use etag::{WeakEtag, WeakEtagFuture, WeakEtagLayer};
pub use gateway::Gateway;
pub use health::{HealthCheck, HealthChecks};
pub use ipnet::IpNet;
pub use proxy::parse_trusted_proxy;
pub use script::{normalize_path, ScriptConfig, ScriptTarget};
#[cfg(feature = "tls")]
pub use server::{tls_config, TlsError};
#[cfg(feature = "server")]
pub use server::{
    Draining, Server, DEFAULT_BACKLOG, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEAD_BYTES, DEFAULT_SEND_TIMEOUT,
};
pub use service::FastCgiService;

/// The two ends of the client's connection: `REMOTE_ADDR`/`REMOTE_PORT` and
/// `SERVER_ADDR`/`SERVER_PORT`. Put it in a request's extensions, or give it to
/// [`FastCgiService::for_connection`] / [`Gateway::for_connection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddrs {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
}

impl PeerAddrs {
    /// The client's address and the local one it reached.
    pub fn new(remote: SocketAddr, local: SocketAddr) -> Self {
        Self { remote, local }
    }
}

/// What to do with a request body of unknown length (`Transfer-Encoding: chunked`):
/// FastCGI needs `CONTENT_LENGTH` before the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownLength {
    /// Read it all first, into memory up to [`ServiceOptions::spool_memory`], the rest
    /// into an anonymous temporary file (gone when closed), then send it with its
    /// length (nginx's behaviour).
    Spool,
    /// Answer 411 Length Required.
    Reject,
}

/// Settings of a [`FastCgiService`] or [`Gateway`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceOptions {
    /// Bodies of unknown length (default [`UnknownLength::Spool`]).
    pub unknown_length: UnknownLength,
    /// Read the whole request body before an upstream connection is taken (default
    /// `true`; nginx's `fastcgi_request_buffering on`): into memory up to
    /// [`spool_memory`](Self::spool_memory), the rest into an anonymous temporary file.
    /// A client that sends its body slowly then holds no FastCGI connection (and no
    /// php-fpm worker) while it dawdles. With `false`, a body of known length streams
    /// to the application as it arrives (for applications that read uploads
    /// progressively), and each slow upload pins a connection of the pool; a body of
    /// unknown length is spooled either way.
    pub request_buffering: bool,
    /// The most of a spooled request body kept in memory (default 256 KiB; nginx's
    /// `client_body_buffer_size` is 8-16 KiB). Small bodies never touch the disk.
    pub spool_memory: usize,
    /// The longest wait for the next piece of a request body (default 30 s; nginx's
    /// `client_body_timeout`, 60 s): past it the request is answered 408 (while the
    /// body is being buffered) or the FastCGI request fails (while it streams), and
    /// the connection closes. `None`: no limit.
    pub body_timeout: Option<std::time::Duration>,
    /// Read the application's response at the upstream's speed (default `true`;
    /// nginx's `fastcgi_buffering on`): into memory up to
    /// [`response_buffer_memory`](Self::response_buffer_memory), then into an anonymous
    /// temporary file up to [`max_temp_file_bytes`](Self::max_temp_file_bytes), so that
    /// the FastCGI connection goes back to the pool at `END_REQUEST` however slowly the
    /// client reads. Past those bounds (or [`max_temp_total_bytes`](Self::max_temp_total_bytes)
    /// for all responses together) the response streams: the application waits for
    /// the client. A response with `X-Accel-Buffering: no` streams (the header is not
    /// passed on), as nginx does: for server-sent events and long polls. Bytes go to
    /// the client as soon as they arrive either way; buffering only decides who waits.
    pub response_buffering: bool,
    /// The most of one buffered response held in memory (default 256 KiB; nginx's
    /// `fastcgi_buffers` are 8 x 4-8 KiB). A response that fits is never written to disk.
    pub response_buffer_memory: usize,
    /// The largest temporary file of one buffered response (default 1 GiB, as nginx's
    /// `fastcgi_max_temp_file_size`; 0: memory only). The file is anonymous (unlinked
    /// from its creation, gone when the response is done or dropped) and its pages
    /// are the kernel's page cache, not the gateway's memory.
    pub max_temp_file_bytes: u64,
    /// The most bytes in the temporary files of all buffered responses of the service
    /// together (default 4 GiB; nginx has no such bound). A response's file counts
    /// until the response is done.
    pub max_temp_total_bytes: u64,
    /// The largest request body: 413 above it (default 1 GiB; nginx's
    /// `client_max_body_size`, whose default of 1 MiB is too small for uploads).
    pub max_body_bytes: Option<u64>,
    /// `HTTPS=on` and `REQUEST_SCHEME=https` (default `false`): set it behind TLS.
    pub https: bool,
    /// `SERVER_SOFTWARE` (default `fcgi/VERSION`).
    pub server_software: String,
    /// Which request headers become `HTTP_*` params (default: nginx's).
    pub header_policy: fcgi_proto::HeaderPolicy,
    /// Reverse proxies whose forwarding headers are believed (default none): for a
    /// request whose connection comes from one of these networks, `REMOTE_ADDR` is the
    /// client named by `X-Forwarded-For` (the rightmost address that is not itself a
    /// trusted proxy, as nginx's `real_ip_recursive on`; `REMOTE_PORT` is then empty)
    /// and `X-Forwarded-Proto: https` sets `HTTPS=on`. From any other peer both headers
    /// are only headers (`HTTP_X_FORWARDED_FOR`): a client cannot choose its
    /// `REMOTE_ADDR`. See [`parse_trusted_proxy`].
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            unknown_length: UnknownLength::Spool,
            request_buffering: true,
            spool_memory: 256 * 1024,
            body_timeout: Some(std::time::Duration::from_secs(30)),
            response_buffering: true,
            response_buffer_memory: 256 * 1024,
            max_temp_file_bytes: 1024 * 1024 * 1024,
            max_temp_total_bytes: 4 * 1024 * 1024 * 1024,
            max_body_bytes: Some(1024 * 1024 * 1024),
            https: false,
            server_software: concat!("fcgi/", env!("CARGO_PKG_VERSION")).into(),
            header_policy: fcgi_proto::HeaderPolicy::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Why a request got no answer from the application. [`status`](Self::status) is the
/// HTTP status it is answered with.
///
/// Its message is one line of its own; the error it wraps (an `io::Error`, the
/// [`Error`](fcgi_tokio::Error) of the FastCGI request) comes from
/// [`source`](std::error::Error::source), not repeated in the message.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// 400: the request cannot be passed on (a bad path, a header or param FastCGI
    /// cannot carry).
    BadRequest(&'static str),
    /// 403: the path climbs out of the document root, or a file may not be served.
    Forbidden,
    /// 404: no such script or file.
    NotFound,
    /// 405: a method a static file does not answer.
    MethodNotAllowed,
    /// 411: a body of unknown length, with [`UnknownLength::Reject`].
    LengthRequired,
    /// 413: a body above [`ServiceOptions::max_body_bytes`].
    PayloadTooLarge,
    /// 400: reading the client's body failed.
    Body(io::Error),
    /// 408: the client sent nothing of its body for
    /// [`ServiceOptions::body_timeout`].
    BodyTimeout,
    /// 500: spooling the body to a temporary file failed.
    Spool(io::Error),
    /// 500: reading a static file failed.
    File(io::Error),
    /// 502, or 504 for a timeout: the FastCGI exchange failed.
    Upstream(fcgi_tokio::Error),
    /// 502: the application's head cannot be an HTTP head (a header value the `http`
    /// crate refuses).
    InvalidHead,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::Forbidden => f.write_str("forbidden"),
            HttpError::NotFound => f.write_str("not found"),
            HttpError::MethodNotAllowed => f.write_str("method not allowed"),
            HttpError::LengthRequired => f.write_str("a request body of unknown length"),
            HttpError::PayloadTooLarge => f.write_str("the request body is too large"),
            HttpError::Body(_) => f.write_str("reading the request body failed"),
            HttpError::BodyTimeout => f.write_str("the client stopped sending its request body"),
            HttpError::Spool(_) => f.write_str("spooling the request body failed"),
            HttpError::File(_) => f.write_str("reading the file failed"),
            HttpError::Upstream(_) => f.write_str("the FastCGI request failed"),
            HttpError::InvalidHead => f.write_str("the application's head is not an HTTP head"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Body(e) | HttpError::Spool(e) | HttpError::File(e) => Some(e),
            HttpError::Upstream(e) => Some(e),
            HttpError::BadRequest(_)
            | HttpError::Forbidden
            | HttpError::NotFound
            | HttpError::MethodNotAllowed
            | HttpError::LengthRequired
            | HttpError::PayloadTooLarge
            | HttpError::BodyTimeout
            | HttpError::InvalidHead => None,
        }
    }
}

impl HttpError {
    /// The status the request is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) | HttpError::Body(_) => StatusCode::BAD_REQUEST,
            HttpError::Forbidden => StatusCode::FORBIDDEN,
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            HttpError::Spool(_) | HttpError::File(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::InvalidHead => StatusCode::BAD_GATEWAY,
            HttpError::Upstream(e) => match e {
                e if e.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
                fcgi_tokio::Error::Params(_)
                | fcgi_tokio::Error::Usage(_)
                | fcgi_tokio::Error::Body(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The response for this error: its status, `Content-Type: text/plain` and the
    /// status's reason as the body; no detail of the failure. Logs the detail through
    /// `tracing` (5xx at warn, the rest at debug).
    pub fn into_response(self) -> ::http::Response<ResponseBody> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(target: "fcgi_http", error = &self as &(dyn std::error::Error + 'static), status = status.as_u16(), "gateway error");
        } else {
            tracing::debug!(target: "fcgi_http", error = &self as &(dyn std::error::Error + 'static), status = status.as_u16(), "request refused");
        }
        let text = status.canonical_reason().unwrap_or("Error");
        let mut body = String::with_capacity(text.len() + 1);
        body.push_str(text);
        body.push('\n');
        let mut response = ::http::Response::new(ResponseBody::full(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            ::http::header::CONTENT_TYPE,
            ::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let HttpError::BodyTimeout = self {
            // The rest of the body may still come: the connection cannot be reused.
            response.headers_mut().insert(
                ::http::header::CONNECTION,
                ::http::HeaderValue::from_static("close"),
            );
        }
        if let HttpError::MethodNotAllowed = self {
            response.headers_mut().insert(
                ::http::header::ALLOW,
                ::http::HeaderValue::from_static("GET, HEAD"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as StdError;
    use std::io;

    use super::HttpError;

    /// The messages along `e`'s chain of sources, `e`'s own first.
    fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
        let mut messages = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            messages.push(c.to_string());
            cause = c.source();
        }
        messages
    }

    /// How long each variant's chain is in the cases below. Exhaustive, so a new
    /// variant must be added here (and to the cases).
    fn chain_len(e: &HttpError) -> usize {
        match e {
            HttpError::BadRequest(_)
            | HttpError::Forbidden
            | HttpError::NotFound
            | HttpError::MethodNotAllowed
            | HttpError::LengthRequired
            | HttpError::PayloadTooLarge
            | HttpError::BodyTimeout
            | HttpError::InvalidHead => 1,
            HttpError::Body(_) | HttpError::Spool(_) | HttpError::File(_) => 2,
            // The client error and its own source.
            HttpError::Upstream(_) => 3,
        }
    }

    #[test]
    fn http_errors_print_each_part_of_their_chain_once() {
        let io = || io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected end of file");
        let errors = [
            HttpError::BadRequest("a NUL byte in the path"),
            HttpError::Forbidden,
            HttpError::NotFound,
            HttpError::MethodNotAllowed,
            HttpError::LengthRequired,
            HttpError::PayloadTooLarge,
            HttpError::BodyTimeout,
            HttpError::Body(io()),
            HttpError::Spool(io()),
            HttpError::File(io()),
            HttpError::Upstream(fcgi_tokio::Error::Io {
                address: "unix:/run/php.sock".into(),
                source: io(),
            }),
            HttpError::InvalidHead,
        ];
        for e in &errors {
            let messages = chain(e);
            assert_eq!(messages.len(), chain_len(e), "{e:?}: {messages:?}");
            for (i, outer) in messages.iter().enumerate() {
                for inner in &messages[i + 1..] {
                    assert!(!outer.contains(inner.as_str()), "{e:?}: {messages:?}");
                }
            }
        }
        let upstream = &errors[10];
        assert_eq!(
            chain(upstream).join(": "),
            "the FastCGI request failed: I/O error with FastCGI server unix:/run/php.sock: \
             unexpected end of file"
        );
    }
}
