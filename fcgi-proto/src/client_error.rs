//! The error type every adapter (blocking, tokio, futures-io) returns, so that the same
//! failure has the same name and message whichever runtime drives the connection.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::address::AddressError;
use crate::error::{HeadError, ParamError, ProtocolError};
use crate::record::ProtocolStatus;

/// What the client was doing when a timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a pool slot: every connection the pool may open to the server was
    /// busy (a saturated pool, not a dead server). The connect timeout bounds it.
    PoolSlot,
    /// Opening the connection.
    Connect,
    /// Writing the request (waiting for the server to take more bytes).
    Write,
    /// Reading the response (waiting for the server to send more bytes).
    Read,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PoolSlot => "waiting for a free connection",
            Phase::Connect => "connecting",
            Phase::Write => "writing the request",
            Phase::Read => "reading the response",
        })
    }
}

/// Which client-side limit was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// A client's `max_body_bytes`: the largest response body it collects in memory.
    ResponseBody,
}

/// Everything that can go wrong with a request.
///
/// Every message names the server's address and says what happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The address could not be parsed.
    InvalidAddress(AddressError),
    /// The connection could not be opened.
    Connect {
        /// The server's address.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// A timeout fired.
    Timeout {
        /// The server's address.
        address: String,
        /// What the client was doing.
        phase: Phase,
        /// The bound that ran out: the phase's timeout, or what was left of the total.
        after: Duration,
    },
    /// Reading or writing the socket failed (reset, broken pipe, ...).
    Io {
        /// The server's address.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The server broke the FastCGI protocol or closed the connection early.
    Protocol {
        /// The server's address.
        address: String,
        /// What it did.
        source: ProtocolError,
    },
    /// The application's response head is malformed (bad CGI headers).
    BadResponse {
        /// The server's address.
        address: String,
        /// What was wrong.
        source: HeadError,
    },
    /// The server refused the request (`END_REQUEST` with a protocol status other than
    /// `REQUEST_COMPLETE`: overloaded, unknown role, cannot multiplex).
    Refused {
        /// The server's address.
        address: String,
        /// The status it gave.
        status: ProtocolStatus,
    },
    /// A limit of the client was hit.
    Limit {
        /// The server's address.
        address: String,
        /// Which limit.
        kind: LimitKind,
        /// Its value.
        limit: u64,
    },
    /// The request's params are invalid (a NUL byte, a pair too large, ...).
    Params(ParamError),
    /// The request is inconsistent (a body shorter or longer than its length).
    Usage(String),
    /// The request body's stream or reader failed.
    Body(io::Error),
    /// No upstream address was given to the client.
    NoUpstream,
}

impl ClientError {
    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout { .. })
    }

    /// Whether the connection could not be opened.
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }

    /// The error of a connect to `address` that failed with `source` under the bound
    /// `bound`: a [`Timeout`](ClientError::Timeout) in [`Phase::Connect`] when the bound
    /// ran out (`source` is [`io::ErrorKind::TimedOut`]), else a
    /// [`Connect`](ClientError::Connect) error that keeps `source`. Every adapter names
    /// its failed connects through it, so the same failure has the same name whichever
    /// runtime drove the connect.
    ///
    /// A unix socket whose listen queue is full (a server that accepts nothing more)
    /// answers a connect that does not wait with `EAGAIN` at once
    /// ([`io::ErrorKind::WouldBlock`]). The adapters connect to unix sockets that way and
    /// report it as it comes, a connect error, as nginx answers 502 at once: a
    /// non-blocking unix connect has nothing to wait on (no readiness tells when the
    /// queue has room), so waiting would mean retrying on a timer, and a client failing
    /// fast lets its caller shed load or fail over to another upstream.
    ///
    /// ```
    /// use std::io;
    /// use std::time::Duration;
    /// use fcgi_proto::{ClientError, Phase};
    ///
    /// let full = io::Error::from(io::ErrorKind::WouldBlock);
    /// let e = ClientError::connect_failed("unix:/run/php.sock", full, Duration::from_secs(1));
    /// assert!(e.is_connect());
    ///
    /// let late = io::Error::from(io::ErrorKind::TimedOut);
    /// let e = ClientError::connect_failed("127.0.0.1:9000", late, Duration::from_secs(1));
    /// assert!(matches!(e, ClientError::Timeout { phase: Phase::Connect, .. }));
    /// ```
    pub fn connect_failed(address: impl Into<String>, source: io::Error, bound: Duration) -> Self {
        let address = address.into();
        if source.kind() == io::ErrorKind::TimedOut {
            ClientError::Timeout {
                address,
                phase: Phase::Connect,
                after: bound,
            }
        } else {
            ClientError::Connect { address, source }
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidAddress(e) => e.fmt(f),
            ClientError::Connect { address, source } => {
                write!(f, "cannot connect to FastCGI server {address}: {source}")
            }
            ClientError::Timeout {
                address,
                phase: Phase::PoolSlot,
                after,
            } => write!(
                f,
                "no connection to FastCGI server {address} free within {:.3}s (every connection the pool may open is busy)",
                after.as_secs_f64()
            ),
            ClientError::Timeout {
                address,
                phase,
                after,
            } => write!(
                f,
                "timed out after {:.3}s {phase} (FastCGI server {address})",
                after.as_secs_f64()
            ),
            ClientError::Io { address, source } => {
                write!(f, "I/O error with FastCGI server {address}: {source}")
            }
            ClientError::Protocol { address, source } => {
                write!(f, "FastCGI server {address} broke the protocol: {source}")
            }
            ClientError::BadResponse { address, source } => {
                write!(f, "bad response from FastCGI server {address}: {source}")
            }
            ClientError::Refused { address, status } => {
                write!(f, "FastCGI server {address} refused the request: {status}")
            }
            ClientError::Limit {
                address,
                kind: LimitKind::ResponseBody,
                limit,
            } => write!(
                f,
                "response body from FastCGI server {address} is larger than the limit of {limit} bytes"
            ),
            ClientError::Params(e) => write!(f, "invalid request: {e}"),
            ClientError::Usage(e) => write!(f, "invalid request: {e}"),
            ClientError::Body(e) => write!(f, "reading the request body failed: {e}"),
            ClientError::NoUpstream => f.write_str("the client has no upstream address"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. }
            | ClientError::Io { source, .. }
            | ClientError::Body(source) => Some(source),
            ClientError::Protocol { source, .. } => Some(source),
            ClientError::BadResponse { source, .. } => Some(source),
            ClientError::Params(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::convert::Infallible> for ClientError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<AddressError> for ClientError {
    fn from(e: AddressError) -> Self {
        ClientError::InvalidAddress(e)
    }
}

impl From<ParamError> for ClientError {
    fn from(e: ParamError) -> Self {
        ClientError::Params(e)
    }
}
