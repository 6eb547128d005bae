//! The one error type of the blocking client.

use std::fmt;
use std::io;
use std::time::Duration;

use fcgi_proto::{HeadError, ParamError, ProtocolError, ProtocolStatus};

/// What the client was doing when a timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
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
    /// [`Options::max_body_bytes`](crate::Options::max_body_bytes) of a buffered response.
    ResponseBody,
}

/// Everything that can go wrong with a request.
///
/// Every message names the server's address and says what happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The address could not be parsed.
    InvalidAddress(String),
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
    /// The request is inconsistent (a body reader shorter or longer than its length).
    Usage(String),
}

impl Error {
    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether the connection could not be opened.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidAddress(a) => write!(
                f,
                "invalid FastCGI address {a:?} (want HOST:PORT, [V6]:PORT, unix:/path or a path starting with / or ./)"
            ),
            Error::Connect { address, source } => {
                write!(f, "cannot connect to FastCGI server {address}: {source}")
            }
            Error::Timeout {
                address,
                phase,
                after,
            } => write!(
                f,
                "timed out after {:.3}s {phase} (FastCGI server {address})",
                after.as_secs_f64()
            ),
            Error::Io { address, source } => {
                write!(f, "I/O error with FastCGI server {address}: {source}")
            }
            Error::Protocol { address, source } => {
                write!(f, "FastCGI server {address} broke the protocol: {source}")
            }
            Error::BadResponse { address, source } => {
                write!(f, "bad response from FastCGI server {address}: {source}")
            }
            Error::Refused { address, status } => {
                write!(f, "FastCGI server {address} refused the request: {status}")
            }
            Error::Limit {
                address,
                kind: LimitKind::ResponseBody,
                limit,
            } => write!(
                f,
                "response body from FastCGI server {address} is larger than the limit of {limit} bytes"
            ),
            Error::Params(e) => write!(f, "invalid request: {e}"),
            Error::Usage(e) => write!(f, "invalid request: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Protocol { source, .. } => Some(source),
            Error::BadResponse { source, .. } => Some(source),
            Error::Params(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ParamError> for Error {
    fn from(e: ParamError) -> Self {
        Error::Params(e)
    }
}
