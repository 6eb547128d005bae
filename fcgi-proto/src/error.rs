//! Errors, split by who is at fault: the peer broke the protocol ([`ProtocolError`],
//! fatal for the connection and sticky), the application sent a bad CGI response head
//! ([`HeadError`], fatal for that request only), the caller misused the API
//! ([`UsageError`]), a configured limit was hit ([`LimitExceeded`]), or input the caller
//! built was invalid ([`ParamError`], [`PathError`], [`NvError`]).

use std::fmt;

use crate::connection::RequestId;
use crate::record::RecordType;

/// Any error from the [`Connection`](crate::Connection).
///
/// Its message says who is at fault; the error it wraps comes from
/// [`source`](std::error::Error::source) (not repeated in the message), so a reporter that
/// walks the chain prints each part once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the FastCGI protocol. The connection is unusable; every later call
    /// answers the same error.
    Protocol(ProtocolError),
    /// The caller used the API in a way it does not allow; nothing was changed.
    Usage(UsageError),
    /// A limit from [`Config`](crate::Config) was hit.
    Limit(LimitExceeded),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(_) => f.write_str("FastCGI peer broke the protocol"),
            Error::Usage(_) => f.write_str("FastCGI client misuse"),
            Error::Limit(_) => f.write_str("FastCGI connection limit hit"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Protocol(e) => Some(e),
            Error::Usage(e) => Some(e),
            Error::Limit(e) => Some(e),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

impl From<LimitExceeded> for Error {
    fn from(e: LimitExceeded) -> Self {
        Error::Limit(e)
    }
}

/// The peer sent bytes that break the FastCGI protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A record header with a version other than 1.
    BadVersion(u8),
    /// An `END_REQUEST` whose content is not 8 bytes long.
    BadEndRequestLength(usize),
    /// An `UNKNOWN_TYPE` whose content is not 8 bytes long.
    BadUnknownTypeLength(usize),
    /// A record type a server never sends to a client (or no known type at all).
    UnexpectedRecordType {
        /// The record's type.
        record_type: RecordType,
        /// The record's request id.
        request_id: u16,
    },
    /// A record for a request id that is not in flight: never started, or already ended.
    UnknownRequest {
        /// The record's type.
        record_type: RecordType,
        /// The record's request id.
        request_id: u16,
    },
    /// A `STDOUT` or `STDERR` record after that stream's empty end record.
    AfterEndOfStream {
        /// The record's type.
        record_type: RecordType,
        /// The record's request id.
        request_id: u16,
    },
    /// A `GET_VALUES_RESULT` that nobody asked for.
    UnsolicitedValues,
    /// A `GET_VALUES_RESULT` with malformed name-value pairs.
    BadValues(NvError),
    /// The peer closed the connection in the middle of a record.
    EofInRecord,
    /// The peer closed the connection while requests were in flight.
    EofInRequest {
        /// How many requests were still waiting for their end.
        in_flight: usize,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVersion(v) => write!(f, "record with version {v} (only version 1 exists)"),
            Self::BadEndRequestLength(n) => {
                write!(f, "END_REQUEST with {n} bytes of content (must be 8)")
            }
            Self::BadUnknownTypeLength(n) => {
                write!(f, "UNKNOWN_TYPE with {n} bytes of content (must be 8)")
            }
            Self::UnexpectedRecordType {
                record_type,
                request_id,
            } => write!(
                f,
                "unexpected {record_type} record (request id {request_id}); a server does not send it"
            ),
            Self::UnknownRequest {
                record_type,
                request_id,
            } => write!(
                f,
                "{record_type} record for request id {request_id}, which is not in flight"
            ),
            Self::AfterEndOfStream {
                record_type,
                request_id,
            } => write!(
                f,
                "{record_type} record for request id {request_id} after that stream ended"
            ),
            Self::UnsolicitedValues => f.write_str("GET_VALUES_RESULT that was not asked for"),
            Self::BadValues(e) => write!(f, "malformed GET_VALUES_RESULT: {e}"),
            Self::EofInRecord => f.write_str("connection closed in the middle of a record"),
            Self::EofInRequest { in_flight } => write!(
                f,
                "connection closed before the end of {in_flight} request(s) in flight"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The application's CGI response head (RFC 3875 section 6) is malformed. This fails
/// the one request; the connection stays usable once the request ends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// A header line without a colon.
    MissingColon {
        /// The line's number in the head, from 1.
        line: usize,
    },
    /// A header name that is empty or has a byte outside the HTTP token set.
    InvalidName {
        /// The line's number in the head, from 1.
        line: usize,
    },
    /// A header value with a control byte (NUL, a bare CR, ...).
    InvalidValue {
        /// The line's number in the head, from 1.
        line: usize,
    },
    /// A `Status` header whose value does not start with a code of three digits from 100
    /// to 999, optionally followed by a space and a reason phrase.
    InvalidStatus,
    /// A `Content-Length` that is not a decimal number.
    InvalidContentLength,
    /// More than one `Content-Length` header.
    DuplicateContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`.
    ContentLengthWithTransferEncoding,
    /// The output ended before the blank line that ends the head.
    Incomplete,
    /// The head is larger than [`Config::max_head_bytes`](crate::Config::max_head_bytes).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingColon { line } => {
                write!(f, "response header line {line} has no colon")
            }
            Self::InvalidName { line } => {
                write!(f, "response header line {line} has an invalid name")
            }
            Self::InvalidValue { line } => {
                write!(
                    f,
                    "response header line {line} has a control byte in its value"
                )
            }
            Self::InvalidStatus => f.write_str("invalid Status header (want `Status: NNN reason`)"),
            Self::InvalidContentLength => f.write_str("Content-Length is not a decimal number"),
            Self::DuplicateContentLength => f.write_str("more than one Content-Length header"),
            Self::ContentLengthWithTransferEncoding => {
                f.write_str("both Content-Length and Transfer-Encoding")
            }
            Self::Incomplete => {
                f.write_str("the response ended before the blank line that ends its headers")
            }
            Self::TooLarge { limit } => {
                write!(
                    f,
                    "response headers are larger than the limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// The caller used the [`Connection`](crate::Connection) in a way it does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The request id is not in flight on this connection.
    UnknownRequest(RequestId),
    /// The request's body (STDIN) was already finished.
    BodyFinished(RequestId),
    /// More body bytes than the request's `CONTENT_LENGTH`.
    BodyTooLong {
        /// The request.
        id: RequestId,
        /// Its `CONTENT_LENGTH`.
        declared: u64,
        /// What the caller tried to send in all.
        attempted: u64,
    },
    /// The body was finished with fewer bytes than the request's `CONTENT_LENGTH`.
    BodyTooShort {
        /// The request.
        id: RequestId,
        /// Its `CONTENT_LENGTH`.
        declared: u64,
        /// What was sent.
        sent: u64,
    },
    /// The request's `CONTENT_LENGTH` param is not a decimal number.
    InvalidContentLength,
    /// The peer closed the connection.
    Closed,
    /// The connection still has a request in flight and the peer does not multiplex.
    Busy,
    /// The names asked in one `GET_VALUES` do not fit in one record.
    ValuesTooLarge(usize),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRequest(id) => write!(f, "request {id} is not in flight"),
            Self::BodyFinished(id) => write!(f, "the body of request {id} is already finished"),
            Self::BodyTooLong {
                id,
                declared,
                attempted,
            } => write!(
                f,
                "request {id} declared CONTENT_LENGTH {declared} but tried to send {attempted} bytes"
            ),
            Self::BodyTooShort { id, declared, sent } => write!(
                f,
                "request {id} declared CONTENT_LENGTH {declared} but finished after {sent} bytes"
            ),
            Self::InvalidContentLength => f.write_str("CONTENT_LENGTH is not a decimal number"),
            Self::Closed => f.write_str("the connection is closed"),
            Self::Busy => f.write_str(
                "a request is still in flight and the connection does not multiplex",
            ),
            Self::ValuesTooLarge(n) => {
                write!(f, "GET_VALUES names take {n} bytes, more than one record holds")
            }
        }
    }
}

impl std::error::Error for UsageError {}

/// Which configured limit was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// [`Config::max_concurrent_requests`](crate::Config::max_concurrent_requests).
    ConcurrentRequests,
    /// [`Config::max_buffered_input`](crate::Config::max_buffered_input).
    BufferedInput,
}

/// A configured limit was hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The limit.
    pub limit: Limit,
    /// Its configured value.
    pub max: usize,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Limit::ConcurrentRequests => {
                write!(
                    f,
                    "more than {} concurrent requests on one connection",
                    self.max
                )
            }
            Limit::BufferedInput => write!(
                f,
                "more than {} bytes of received input not yet drained as events",
                self.max
            ),
        }
    }
}

impl std::error::Error for LimitExceeded {}

/// A name-value pair cannot be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NvError {
    /// A name or value longer than 2^31-1 bytes (the format's maximum).
    TooLong(usize),
    /// The input ends in the middle of a pair.
    Truncated,
}

impl fmt::Display for NvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "a name or value of {n} bytes (maximum 2^31-1)"),
            Self::Truncated => f.write_str("name-value pair cut short"),
        }
    }
}

impl std::error::Error for NvError {}

/// A CGI param (or a header that becomes one) cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// An empty param name.
    EmptyName,
    /// A name with a byte outside printable ASCII, or `=`.
    InvalidName(String),
    /// NUL, CR or LF in a value (PHP reads params as C strings; CR and LF split headers).
    InvalidValue(String),
    /// One pair does not fit in one record (65535 bytes), and php-fpm cannot take a pair
    /// split across records.
    PairTooLarge {
        /// The param's name, possibly shortened.
        name: String,
        /// The encoded size of the pair.
        size: usize,
    },
    /// A request header name with NUL, CR or LF.
    InvalidHeaderName(String),
    /// A request header value with NUL, CR or LF.
    InvalidHeaderValue(String),
    /// A `Content-Length` header that is not a decimal number.
    InvalidContentLength,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str("empty param name"),
            Self::InvalidName(n) => write!(f, "param name {n:?} has a forbidden byte"),
            Self::InvalidValue(n) => write!(f, "value of param {n} has a NUL, CR or LF byte"),
            Self::PairTooLarge { name, size } => write!(
                f,
                "param {name} encodes to {size} bytes, more than one record (65535) holds"
            ),
            Self::InvalidHeaderName(n) => {
                write!(f, "request header name {n:?} has a NUL, CR or LF byte")
            }
            Self::InvalidHeaderValue(n) => {
                write!(f, "value of request header {n} has a NUL, CR or LF byte")
            }
            Self::InvalidContentLength => f.write_str("Content-Length is not a decimal number"),
        }
    }
}

impl std::error::Error for ParamError {}

/// A request path cannot be split into `SCRIPT_NAME` and `PATH_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// NUL, CR or LF in the path (the shape of CVE-2019-11043).
    ForbiddenByte(u8),
    /// The path does not start with `/`.
    NotAbsolute,
    /// The script name would be the extension alone (such as `/.php`).
    EmptyScriptName,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForbiddenByte(b) => write!(f, "request path contains byte {b:#04x}"),
            Self::NotAbsolute => f.write_str("request path does not start with '/'"),
            Self::EmptyScriptName => f.write_str("request path has an empty script name"),
        }
    }
}

impl std::error::Error for PathError {}
