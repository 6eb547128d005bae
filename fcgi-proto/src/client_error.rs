//! The error type every adapter (blocking, tokio, futures-io) returns, so that the same
//! failure has the same name and message whichever runtime drives the connection.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::address::AddressError;
use crate::error::{Error, HeadError, LimitExceeded, ParamError, ProtocolError, UsageError};
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

/// Which limit of the client itself (not of the connection's
/// [`Config`](crate::Config), see [`ClientError::ConnectionLimit`]) was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// A client's `max_body_bytes`: the largest response body it collects in memory.
    ResponseBody,
}

/// Everything that can go wrong with a request.
///
/// Every message is one line of its own that names the server's address (when there is
/// one) and says what happened. An error this one wraps (an [`io::Error`], a
/// [`ProtocolError`], ...) is not repeated in the message: it comes from
/// [`source`](std::error::Error::source), so that a reporter walking the chain (anyhow's
/// `{:#}`, eyre, `tracing`) prints each part once. Print the whole chain to show
/// everything:
///
/// ```
/// use std::error::Error as _;
/// use std::io;
/// use fcgi_proto::ClientError;
///
/// let e = ClientError::Io {
///     address: "unix:/run/php.sock".into(),
///     source: io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"),
/// };
/// assert_eq!(e.to_string(), "I/O error with FastCGI server unix:/run/php.sock");
/// let mut text = e.to_string();
/// let mut cause = e.source();
/// while let Some(c) = cause {
///     text = format!("{text}: {c}");
///     cause = c.source();
/// }
/// assert_eq!(text, "I/O error with FastCGI server unix:/run/php.sock: connection reset");
/// ```
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
    /// A limit of the client itself was hit (one of its options, such as the largest
    /// response body it collects in memory).
    Limit {
        /// The server's address.
        address: String,
        /// Which limit.
        kind: LimitKind,
        /// Its value.
        limit: u64,
    },
    /// A limit of the connection's [`Config`](crate::Config) was hit: more requests at
    /// once than it carries, or more input from the server than it buffers.
    ConnectionLimit {
        /// The server's address.
        address: String,
        /// Which limit, and its value.
        source: LimitExceeded,
    },
    /// The request's params are invalid (a NUL byte, a pair too large, ...).
    Params(ParamError),
    /// The request is inconsistent (a body shorter or longer than its length), or the
    /// connection was used as it does not allow.
    Usage(UsageError),
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

    /// The error of a request to `address` whose [`Connection`](crate::Connection)
    /// answered `error`: a [`Protocol`](ClientError::Protocol) error, a
    /// [`Usage`](ClientError::Usage) error or a
    /// [`ConnectionLimit`](ClientError::ConnectionLimit), each keeping the core's typed
    /// error. Every adapter maps the core's errors through it.
    ///
    /// ```
    /// use fcgi_proto::{ClientError, Error, UsageError};
    ///
    /// let e = ClientError::from_connection("127.0.0.1:9000", Error::Usage(UsageError::Closed));
    /// assert!(matches!(e, ClientError::Usage(UsageError::Closed)));
    /// ```
    pub fn from_connection(address: impl Into<String>, error: Error) -> Self {
        match error {
            Error::Protocol(source) => ClientError::Protocol {
                address: address.into(),
                source,
            },
            Error::Usage(e) => ClientError::Usage(e),
            Error::Limit(source) => ClientError::ConnectionLimit {
                address: address.into(),
                source,
            },
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidAddress(e) => e.fmt(f),
            ClientError::Connect { address, .. } => {
                write!(f, "cannot connect to FastCGI server {address}")
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
            ClientError::Io { address, .. } => {
                write!(f, "I/O error with FastCGI server {address}")
            }
            ClientError::Protocol { address, .. } => {
                write!(f, "FastCGI server {address} broke the protocol")
            }
            ClientError::BadResponse { address, .. } => {
                write!(f, "bad response from FastCGI server {address}")
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
            ClientError::ConnectionLimit { address, .. } => write!(
                f,
                "the connection to FastCGI server {address} hit a limit of its configuration"
            ),
            ClientError::Params(_) | ClientError::Usage(_) => f.write_str("invalid request"),
            ClientError::Body(_) => f.write_str("reading the request body failed"),
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
            ClientError::ConnectionLimit { source, .. } => Some(source),
            ClientError::Params(e) => Some(e),
            ClientError::Usage(e) => Some(e),
            ClientError::InvalidAddress(_)
            | ClientError::Timeout { .. }
            | ClientError::Refused { .. }
            | ClientError::Limit { .. }
            | ClientError::NoUpstream => None,
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

#[cfg(test)]
mod tests {
    use std::error::Error as StdError;

    use super::*;
    use crate::error::{Limit, NvError};

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

    /// Asserts that `e`'s chain is `len` long and that no message repeats a later one.
    fn assert_each_part_once(e: &(dyn StdError + 'static), len: usize) {
        let messages = chain(e);
        assert_eq!(messages.len(), len, "{e:?}: {messages:?}");
        for (i, outer) in messages.iter().enumerate() {
            assert!(!outer.is_empty(), "{e:?}: {messages:?}");
            for inner in &messages[i + 1..] {
                assert!(!outer.contains(inner.as_str()), "{e:?}: {messages:?}");
            }
        }
    }

    /// How long the chain of each variant is: 1 when it wraps nothing (or shows what it
    /// wraps itself), 2 when its source is a leaf. Exhaustive, so a new variant must be
    /// added here (and to the list below).
    fn client_chain_len(e: &ClientError) -> usize {
        match e {
            ClientError::InvalidAddress(_)
            | ClientError::Timeout { .. }
            | ClientError::Refused { .. }
            | ClientError::Limit { .. }
            | ClientError::NoUpstream => 1,
            ClientError::Connect { .. }
            | ClientError::Io { .. }
            | ClientError::Protocol { .. }
            | ClientError::BadResponse { .. }
            | ClientError::ConnectionLimit { .. }
            | ClientError::Params(_)
            | ClientError::Usage(_)
            | ClientError::Body(_) => 2,
        }
    }

    fn core_chain_len(e: &Error) -> usize {
        match e {
            Error::Protocol(_) | Error::Usage(_) | Error::Limit(_) => 2,
        }
    }

    #[test]
    fn client_errors_print_each_part_of_their_chain_once() {
        let address = || String::from("unix:/run/php.sock");
        let io = || io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer");
        let errors = [
            ClientError::InvalidAddress(AddressError("nowhere".into())),
            ClientError::Connect {
                address: address(),
                source: io::Error::from(io::ErrorKind::ConnectionRefused),
            },
            ClientError::Timeout {
                address: address(),
                phase: Phase::Read,
                after: Duration::from_secs(1),
            },
            ClientError::Timeout {
                address: address(),
                phase: Phase::PoolSlot,
                after: Duration::from_secs(1),
            },
            ClientError::Io {
                address: address(),
                source: io(),
            },
            ClientError::Protocol {
                address: address(),
                source: ProtocolError::BadValues(NvError::Truncated),
            },
            ClientError::BadResponse {
                address: address(),
                source: HeadError::MissingColon { line: 2 },
            },
            ClientError::Refused {
                address: address(),
                status: ProtocolStatus::OVERLOADED,
            },
            ClientError::Limit {
                address: address(),
                kind: LimitKind::ResponseBody,
                limit: 1024,
            },
            ClientError::ConnectionLimit {
                address: address(),
                source: LimitExceeded {
                    limit: Limit::BufferedInput,
                    max: 4096,
                },
            },
            ClientError::Params(ParamError::InvalidValue("QUERY_STRING".into())),
            ClientError::Usage(UsageError::Closed),
            ClientError::Body(io()),
            ClientError::NoUpstream,
        ];
        for e in &errors {
            assert_each_part_once(e, client_chain_len(e));
        }
    }

    #[test]
    fn core_errors_print_each_part_of_their_chain_once() {
        let errors = [
            Error::Protocol(ProtocolError::EofInRecord),
            Error::Usage(UsageError::Busy),
            Error::Limit(LimitExceeded {
                limit: Limit::ConcurrentRequests,
                max: 1,
            }),
        ];
        for e in &errors {
            assert_each_part_once(e, core_chain_len(e));
        }
    }

    #[test]
    fn the_chain_reads_as_the_one_line_messages_did() {
        let e = ClientError::Connect {
            address: "127.0.0.1:9000".into(),
            source: io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
        };
        assert_eq!(
            chain(&e).join(": "),
            "cannot connect to FastCGI server 127.0.0.1:9000: connection refused"
        );
        let e = ClientError::Usage(UsageError::Closed);
        assert_eq!(
            chain(&e).join(": "),
            "invalid request: the connection is closed"
        );
    }
}
