//! FastCGI 1.0 records: types, roles, flags, protocol statuses, the 8-byte header and an
//! incremental record decoder.
//!
//! A record is an 8-byte [`RecordHeader`] followed by `content_length` bytes of content and
//! `padding_length` bytes of padding. The [`RecordDecoder`] accepts input in any
//! fragmentation: short input is "need more", never an error.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;

/// The only FastCGI protocol version: 1.
pub const VERSION: u8 = 1;
/// Length of a record header in bytes.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;
/// The content size this crate uses when it splits a stream into records: the largest
/// multiple of 8 that fits, as the specification recommends (php-fpm does the same).
pub const STREAM_CHUNK_LEN: usize = 65528;

/// The request id of management records (`GET_VALUES`, `GET_VALUES_RESULT`, `UNKNOWN_TYPE`).
pub const MANAGEMENT_ID: u16 = 0;

/// A record type. Known types have constants; any other byte value is kept as is, so an
/// unknown type from a peer can be reported rather than lost.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(pub u8);

impl RecordType {
    /// `FCGI_BEGIN_REQUEST` (1): starts a request; client to server.
    pub const BEGIN_REQUEST: Self = Self(1);
    /// `FCGI_ABORT_REQUEST` (2): asks the server to abort a request; client to server.
    pub const ABORT_REQUEST: Self = Self(2);
    /// `FCGI_END_REQUEST` (3): ends a request; server to client.
    pub const END_REQUEST: Self = Self(3);
    /// `FCGI_PARAMS` (4): the request's name-value pairs; a stream, client to server.
    pub const PARAMS: Self = Self(4);
    /// `FCGI_STDIN` (5): the request body; a stream, client to server.
    pub const STDIN: Self = Self(5);
    /// `FCGI_STDOUT` (6): the response; a stream, server to client.
    pub const STDOUT: Self = Self(6);
    /// `FCGI_STDERR` (7): the application's error output; a stream, server to client.
    pub const STDERR: Self = Self(7);
    /// `FCGI_DATA` (8): the filter role's file data; a stream, client to server.
    pub const DATA: Self = Self(8);
    /// `FCGI_GET_VALUES` (9): asks for server variables; a management record.
    pub const GET_VALUES: Self = Self(9);
    /// `FCGI_GET_VALUES_RESULT` (10): answers `GET_VALUES`; a management record.
    pub const GET_VALUES_RESULT: Self = Self(10);
    /// `FCGI_UNKNOWN_TYPE` (11): the peer did not understand a management record.
    pub const UNKNOWN_TYPE: Self = Self(11);

    /// The specification's name of a known type, or `None`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "BEGIN_REQUEST",
            2 => "ABORT_REQUEST",
            3 => "END_REQUEST",
            4 => "PARAMS",
            5 => "STDIN",
            6 => "STDOUT",
            7 => "STDERR",
            8 => "DATA",
            9 => "GET_VALUES",
            10 => "GET_VALUES_RESULT",
            11 => "UNKNOWN_TYPE",
            _ => return None,
        })
    }

    /// Whether records of this type form a stream that ends with an empty record
    /// (`PARAMS`, `STDIN`, `STDOUT`, `STDERR`, `DATA`).
    pub fn is_stream(self) -> bool {
        matches!(self.0, 4..=8)
    }
}

impl fmt::Debug for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

/// The role a request asks the application to play (`BEGIN_REQUEST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Role(pub u16);

impl Role {
    /// `FCGI_RESPONDER` (1): the CGI role; what php-fpm serves.
    pub const RESPONDER: Self = Self(1);
    /// `FCGI_AUTHORIZER` (2).
    pub const AUTHORIZER: Self = Self(2);
    /// `FCGI_FILTER` (3): like responder, plus a `DATA` stream.
    pub const FILTER: Self = Self(3);
}

impl Default for Role {
    fn default() -> Self {
        Self::RESPONDER
    }
}

/// `FCGI_KEEP_CONN`, the only `BEGIN_REQUEST` flag: the server keeps the connection open
/// after the request ends.
pub const FLAG_KEEP_CONN: u8 = 1;

/// How the server ended a request (`END_REQUEST`'s `protocolStatus`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolStatus(pub u8);

impl ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): a normal end.
    pub const REQUEST_COMPLETE: Self = Self(0);
    /// `FCGI_CANT_MPX_CONN` (1): the server does not take concurrent requests on one
    /// connection.
    pub const CANT_MPX_CONN: Self = Self(1);
    /// `FCGI_OVERLOADED` (2): the server is out of a resource.
    pub const OVERLOADED: Self = Self(2);
    /// `FCGI_UNKNOWN_ROLE` (3): the server does not play the requested role.
    pub const UNKNOWN_ROLE: Self = Self(3);

    /// Whether this is `REQUEST_COMPLETE`.
    pub fn is_complete(self) -> bool {
        self == Self::REQUEST_COMPLETE
    }
}

impl fmt::Debug for ProtocolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ProtocolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("REQUEST_COMPLETE"),
            1 => f.write_str("CANT_MPX_CONN"),
            2 => f.write_str("OVERLOADED"),
            3 => f.write_str("UNKNOWN_ROLE"),
            other => write!(f, "protocol status {other}"),
        }
    }
}

/// The 8-byte header that starts every record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The record type.
    pub record_type: RecordType,
    /// The request this record belongs to; 0 for management records.
    pub request_id: u16,
    /// Bytes of content after the header.
    pub content_length: u16,
    /// Bytes of padding after the content.
    pub padding_length: u8,
}

impl RecordHeader {
    /// A header with no padding.
    pub fn new(record_type: RecordType, request_id: u16, content_length: u16) -> Self {
        Self {
            record_type,
            request_id,
            content_length,
            padding_length: 0,
        }
    }

    /// The header's 8 bytes on the wire (version 1, reserved byte 0).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [
            VERSION,
            self.record_type.0,
            id[0],
            id[1],
            len[0],
            len[1],
            self.padding_length,
            0,
        ]
    }

    /// Reads a header. The reserved byte is ignored; a version other than 1 is an error.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, ProtocolError> {
        Self::decode_slice(bytes)
    }

    /// [`decode`](Self::decode) from the first 8 bytes of a slice, read in place.
    ///
    /// # Panics
    /// When `bytes` is shorter than 8: a bug in the caller.
    #[inline]
    pub(crate) fn decode_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let bytes = &bytes[..HEADER_LEN];
        if bytes[0] != VERSION {
            return Err(ProtocolError::BadVersion(bytes[0]));
        }
        Ok(Self {
            record_type: RecordType(bytes[1]),
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_length: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_length: bytes[6],
        })
    }
}

/// Appends one whole record (header, content, no padding) to `out`.
///
/// # Panics
/// Never for valid use: `content` longer than [`MAX_CONTENT_LEN`] is a bug in the caller
/// and panics, since a silently truncated record would corrupt the stream.
pub fn encode_record(out: &mut BytesMut, record_type: RecordType, request_id: u16, content: &[u8]) {
    let len = u16::try_from(content.len()).expect("record content is at most 65535 bytes");
    out.extend_from_slice(&RecordHeader::new(record_type, request_id, len).encode());
    out.extend_from_slice(content);
}

/// A piece of a record produced by [`RecordDecoder`].
///
/// Non-stream records (`END_REQUEST`, `GET_VALUES_RESULT`, ...) always come whole, as one
/// fragment with `last == true`. Stream records (`STDOUT`, `STDERR`, ...) come as their
/// content arrives, so a body is never held back waiting for the rest of its record: a
/// record of content length 0 (a stream's end) is one empty fragment with `last == true`;
/// otherwise each fragment is non-empty and the final one has `last == true`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The header of the record this piece belongs to.
    pub header: RecordHeader,
    /// The content bytes, a slice of the input (no copy).
    pub data: Bytes,
    /// Whether this piece ends the record's content.
    pub last: bool,
}

#[derive(Clone, Copy, Debug)]
enum DecodeState {
    /// Waiting for a header.
    Header,
    /// Inside a stream record's content: `remaining` bytes of it still to come.
    StreamContent {
        header: RecordHeader,
        remaining: usize,
    },
    /// Skipping `remaining` bytes of padding.
    Padding { remaining: usize },
}

/// What [`RecordDecoder::next`] found at the front of its input.
#[derive(Debug)]
pub(crate) enum Next {
    /// More input is needed; the first `skip` bytes (padding, a whole header before a
    /// stream record's missing content) are used up.
    Need { skip: usize },
    /// A fragment.
    Piece(Piece),
}

/// A fragment as [`RecordDecoder::next`] finds it: `skip` bytes used up before its
/// content (padding, the header), then `len` bytes of content.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) header: RecordHeader,
    pub(crate) skip: usize,
    pub(crate) len: usize,
    pub(crate) last: bool,
}

/// An incremental record decoder.
///
/// Feed it a buffer that holds the bytes received so far; each call to
/// [`decode`](Self::decode) takes what it can from the front of the buffer and returns
/// the next [`Fragment`], or `Ok(None)` when more input is needed. Whatever it leaves in
/// the buffer is at most one partial header or one partial non-stream record (so at most
/// `8 + 65535 + 255` bytes).
///
/// ```
/// use bytes::BytesMut;
/// use fcgi_proto::record::{encode_record, RecordDecoder, RecordType};
///
/// let mut wire = BytesMut::new();
/// encode_record(&mut wire, RecordType::STDOUT, 1, b"hello");
/// let mut decoder = RecordDecoder::new();
/// let mut input = wire.split_to(3); // a short read
/// assert_eq!(decoder.decode(&mut input).unwrap(), None);
/// input.unsplit(wire);
/// let fragment = decoder.decode(&mut input).unwrap().unwrap();
/// assert_eq!(&fragment.data[..], b"hello");
/// assert!(fragment.last);
/// ```
#[derive(Clone, Debug)]
pub struct RecordDecoder {
    state: DecodeState,
}

impl Default for RecordDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordDecoder {
    /// A decoder waiting for the first header.
    pub fn new() -> Self {
        Self {
            state: DecodeState::Header,
        }
    }

    /// Whether the decoder stands between records (no partial record consumed). Together
    /// with an empty buffer, this means the input ended cleanly.
    pub fn is_at_boundary(&self) -> bool {
        matches!(self.state, DecodeState::Header)
    }

    /// Takes the next fragment from the front of `buf`; `Ok(None)` means more input is
    /// needed. A version other than 1 is an error; the decoder must not be used after one.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Fragment>, ProtocolError> {
        match self.next(buf)? {
            Next::Need { skip } => {
                buf.advance(skip);
                Ok(None)
            }
            Next::Piece(Piece {
                header,
                skip,
                len,
                last,
            }) => {
                buf.advance(skip);
                let data = if len == 0 {
                    Bytes::new()
                } else {
                    buf.split_to(len).freeze()
                };
                Ok(Some(Fragment { header, data, last }))
            }
        }
    }

    /// The header of the whole record (header, content and padding) at the front of
    /// `buf` when the decoder stands between records; `None` in every other case (a
    /// partial record, a bad version), which [`next`](Self::next) handles. Taking the
    /// record's bytes leaves the decoder where `next` would leave it once the record and
    /// its padding are decoded: between records.
    #[inline]
    pub(crate) fn whole_record(&self, buf: &[u8]) -> Option<RecordHeader> {
        if !matches!(self.state, DecodeState::Header) {
            return None;
        }
        let header = RecordHeader::decode_slice(buf.get(..HEADER_LEN)?).ok()?;
        let len =
            HEADER_LEN + usize::from(header.content_length) + usize::from(header.padding_length);
        (len <= buf.len()).then_some(header)
    }

    /// The decoding step under [`decode`](Self::decode), on a slice and without taking
    /// any byte: says how many bytes at the front of `buf` are used up and where the next
    /// fragment's content lies. The decoder's state moves on as if `decode` had taken
    /// them, so the caller must drop exactly those bytes before the next call.
    pub(crate) fn next(&mut self, buf: &[u8]) -> Result<Next, ProtocolError> {
        let mut at = 0;
        loop {
            match self.state {
                DecodeState::Header => {
                    let Some(head) = buf.get(at..at + HEADER_LEN) else {
                        return Ok(Next::Need { skip: at });
                    };
                    let header = RecordHeader::decode_slice(head)?;
                    let content = usize::from(header.content_length);
                    let avail = buf.len() - at - HEADER_LEN;
                    if header.record_type.is_stream() {
                        at += HEADER_LEN;
                        if content <= avail {
                            // The whole record is here (or it is empty, a stream's end).
                            self.finish_content(header);
                            return Ok(Next::Piece(Piece {
                                header,
                                skip: at,
                                len: content,
                                last: true,
                            }));
                        }
                        self.state = DecodeState::StreamContent {
                            header,
                            remaining: content,
                        };
                    } else {
                        if avail < content {
                            return Ok(Next::Need { skip: at });
                        }
                        self.finish_content(header);
                        return Ok(Next::Piece(Piece {
                            header,
                            skip: at + HEADER_LEN,
                            len: content,
                            last: true,
                        }));
                    }
                }
                DecodeState::StreamContent { header, remaining } => {
                    let avail = buf.len() - at;
                    if avail == 0 {
                        return Ok(Next::Need { skip: at });
                    }
                    let last = avail >= remaining;
                    let len = if last {
                        self.finish_content(header);
                        remaining
                    } else {
                        self.state = DecodeState::StreamContent {
                            header,
                            remaining: remaining - avail,
                        };
                        avail
                    };
                    return Ok(Next::Piece(Piece {
                        header,
                        skip: at,
                        len,
                        last,
                    }));
                }
                DecodeState::Padding { remaining } => {
                    let avail = buf.len() - at;
                    if avail < remaining {
                        self.state = DecodeState::Padding {
                            remaining: remaining - avail,
                        };
                        return Ok(Next::Need { skip: buf.len() });
                    }
                    at += remaining;
                    self.state = DecodeState::Header;
                }
            }
        }
    }

    fn finish_content(&mut self, header: RecordHeader) {
        self.state = match header.padding_length {
            0 => DecodeState::Header,
            n => DecodeState::Padding {
                remaining: usize::from(n),
            },
        };
    }
}

/// The fixed 8-byte body of `BEGIN_REQUEST`.
pub fn begin_request_body(role: Role, flags: u8) -> [u8; 8] {
    let role = role.0.to_be_bytes();
    [role[0], role[1], flags, 0, 0, 0, 0, 0]
}

/// The body of `END_REQUEST`: how a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndRequestBody {
    /// The application's exit status (php-fpm: 0, or the script's `exit()` code).
    pub app_status: u32,
    /// How the server ended the request.
    pub protocol_status: ProtocolStatus,
}

impl EndRequestBody {
    /// Reads the 8-byte body; any other length is a protocol error.
    pub fn decode(content: &[u8]) -> Result<Self, ProtocolError> {
        let bytes: &[u8; 8] = content
            .try_into()
            .map_err(|_| ProtocolError::BadEndRequestLength(content.len()))?;
        Ok(Self {
            app_status: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            protocol_status: ProtocolStatus(bytes[4]),
        })
    }

    /// The 8 bytes on the wire.
    pub fn encode(&self) -> [u8; 8] {
        let a = self.app_status.to_be_bytes();
        [a[0], a[1], a[2], a[3], self.protocol_status.0, 0, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t: RecordType, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
        let mut h = RecordHeader::new(t, id, content.len() as u16);
        h.padding_length = padding;
        let mut v = h.encode().to_vec();
        v.extend_from_slice(content);
        v.resize(v.len() + padding as usize, 0xAA);
        v
    }

    /// Decodes `input` fed in pieces of `step` bytes; returns (header, whole content) pairs.
    fn decode_all(
        input: &[u8],
        step: usize,
    ) -> Result<Vec<(RecordHeader, Vec<u8>)>, ProtocolError> {
        let mut dec = RecordDecoder::new();
        let mut buf = BytesMut::new();
        let mut out: Vec<(RecordHeader, Vec<u8>)> = Vec::new();
        let mut open = false;
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(f) = dec.decode(&mut buf)? {
                if open {
                    let last = out.last_mut().unwrap();
                    assert_eq!(last.0, f.header);
                    last.1.extend_from_slice(&f.data);
                } else {
                    out.push((f.header, f.data.to_vec()));
                }
                open = !f.last;
            }
        }
        assert!(!open && buf.is_empty() && dec.is_at_boundary());
        Ok(out)
    }

    #[test]
    fn header_round_trip_and_reserved_byte_ignored() {
        let mut h = RecordHeader::new(RecordType::STDOUT, 0x1234, 0xABCD);
        h.padding_length = 7;
        let mut bytes = h.encode();
        assert_eq!(bytes, [1, 6, 0x12, 0x34, 0xAB, 0xCD, 7, 0]);
        bytes[7] = 0xFF;
        assert_eq!(RecordHeader::decode(&bytes).unwrap(), h);
    }

    #[test]
    fn bad_version_is_rejected() {
        let mut bytes = RecordHeader::new(RecordType::STDOUT, 1, 0).encode();
        bytes[0] = 2;
        assert_eq!(
            RecordHeader::decode(&bytes),
            Err(ProtocolError::BadVersion(2))
        );
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            RecordDecoder::new().decode(&mut buf),
            Err(ProtocolError::BadVersion(2))
        );
    }

    #[test]
    fn whole_bytewise_and_trailing() {
        let mut input = record(
            RecordType::STDOUT,
            1,
            b"Content-type: text/html\r\n\r\nhi",
            6,
        );
        input.extend(record(RecordType::STDERR, 1, b"oops", 255));
        input.extend(record(RecordType::STDOUT, 1, b"", 0));
        input.extend(record(
            RecordType::END_REQUEST,
            1,
            &[0, 0, 0, 3, 0, 9, 9, 9],
            0,
        ));
        input.extend(record(
            RecordType::GET_VALUES_RESULT,
            0,
            b"\x0e\x01FCGI_MPXS_CONNS0",
            3,
        ));
        let expected = decode_all(&input, input.len()).unwrap();
        assert_eq!(expected.len(), 5);
        assert_eq!(expected[1].1, b"oops");
        assert_eq!(expected[2].1, b"");
        for step in [1, 2, 3, 7, 8, 9, 64] {
            assert_eq!(decode_all(&input, step).unwrap(), expected, "step {step}");
        }
        // Trailing data: a partial header stays in the buffer.
        let mut buf = BytesMut::from(&input[..]);
        buf.extend_from_slice(&[1, 6, 0]);
        let mut dec = RecordDecoder::new();
        let mut n = 0;
        while dec.decode(&mut buf).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 5);
        assert_eq!(&buf[..], &[1, 6, 0]);
    }

    #[test]
    fn stream_content_is_delivered_as_it_arrives() {
        let input = record(RecordType::STDOUT, 1, b"abcdef", 2);
        let mut dec = RecordDecoder::new();
        let mut buf = BytesMut::from(&input[..10]);
        let f = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((&f.data[..], f.last), (&b"ab"[..], false));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&input[10..]);
        let f = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((&f.data[..], f.last), (&b"cdef"[..], true));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty() && dec.is_at_boundary());
    }

    #[test]
    fn end_request_body() {
        let body = EndRequestBody {
            app_status: 0x01020304,
            protocol_status: ProtocolStatus::OVERLOADED,
        };
        assert_eq!(EndRequestBody::decode(&body.encode()).unwrap(), body);
        assert_eq!(
            EndRequestBody::decode(&[0; 5]),
            Err(ProtocolError::BadEndRequestLength(5))
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            RecordType::GET_VALUES_RESULT.to_string(),
            "GET_VALUES_RESULT"
        );
        assert_eq!(RecordType(42).to_string(), "type 42");
        assert!(RecordType::DATA.is_stream() && !RecordType::END_REQUEST.is_stream());
        assert_eq!(ProtocolStatus(9).to_string(), "protocol status 9");
        assert_eq!(
            begin_request_body(Role::FILTER, FLAG_KEEP_CONN),
            [0, 3, 1, 0, 0, 0, 0, 0]
        );
    }
}
