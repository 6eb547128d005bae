//! An arbitrary sequence of caller operations on a `Connection`, interleaved with peer
//! bytes: arbitrary ones, or well-formed records built from arbitrary fields (`STDOUT`,
//! `STDERR`, `END_REQUEST`, `GET_VALUES_RESULT`, `UNKNOWN_TYPE` for request ids 0 to 3).
//!
//! Checks: no panic (the harness never calls `consume_transmit` or `input_written` beyond
//! their documented bounds); a `Usage` or `Limit` error from a command leaves the
//! connection unchanged (`transmit_len`, `in_flight`); a `Protocol` error is the one
//! `error()` reports and every later command answers it; events follow the documented
//! order (started requests only, aborted ones only `End`); `transmit_chunks` add up to
//! `transmit_len`; everything the client writes decodes as version-1 records.
#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use fcgi_fuzz::EventChecker;
use fcgi_proto::error::{Error, Limit, UsageError};
use fcgi_proto::record::{encode_record, EndRequestBody, RecordDecoder, RecordType};
use fcgi_proto::{nv, Config, Connection, Params, ProtocolStatus, RequestId};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Peer {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    End {
        app_status: u32,
        protocol_status: u8,
    },
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    UnknownType(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Start {
        params: Vec<(Vec<u8>, Vec<u8>)>,
        content_length: Option<u16>,
        raw_content_length: Option<Vec<u8>>,
    },
    SendStdin {
        request: u8,
        len: u16,
    },
    FinishStdin {
        request: u8,
    },
    Abort {
        request: u8,
    },
    GetValues(Vec<String>),
    SetMaxConcurrent(u16),
    Consume(u32),
    Poll,
    PollAll,
    PeerBytes(Vec<u8>),
    PeerBytesViaBuffer(Vec<u8>),
    PeerBytesViaSpare(Vec<u8>),
    PeerRecord {
        kind: Peer,
        id: u8,
        padding: u8,
    },
    Eof,
}

/// How peer bytes reach the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `receive`.
    Receive,
    /// `input_buffer()`'s initialized room, then `input_written`.
    Room,
    /// `input_buf()`'s spare capacity (as tokio's `read_buf` fills it), then
    /// `input_written`.
    Spare,
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_concurrent: u8,
    max_stderr: u16,
    max_buffered: u16,
    max_head: u16,
    keep_conn: bool,
    ops: Vec<Op>,
}

struct Harness {
    conn: Connection,
    checker: EventChecker,
    /// Ids handed out so far (ended ones stay: they are "unknown" now).
    ids: Vec<RequestId>,
    /// What the client wrote, decoded as client-to-server records.
    written: BytesMut,
    decoder: RecordDecoder,
}

impl Harness {
    fn pick(&self, request: u8) -> Option<RequestId> {
        if self.ids.is_empty() {
            return None;
        }
        Some(self.ids[usize::from(request) % self.ids.len()])
    }

    /// Runs a command and checks what its error says about the state.
    fn command<T>(&mut self, f: impl FnOnce(&mut Connection) -> Result<T, Error>) -> Option<T> {
        let before = (self.conn.transmit_len(), self.conn.in_flight());
        match f(&mut self.conn) {
            Ok(v) => Some(v),
            Err(Error::Usage(_) | Error::Limit(_)) => {
                let after = (self.conn.transmit_len(), self.conn.in_flight());
                assert_eq!(before, after, "a refused command changed the state");
                None
            }
            Err(Error::Protocol(e)) => {
                assert_eq!(
                    self.conn.error(),
                    Some(&e),
                    "error() is not the sticky error"
                );
                assert_eq!(before.0, self.conn.transmit_len());
                None
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    fn peer(&mut self, bytes: &[u8], via: Via) {
        let result = if via == Via::Receive {
            self.conn.receive(bytes)
        } else {
            let mut rest = bytes;
            let mut result = Ok(());
            while !rest.is_empty() {
                let n = if via == Via::Room {
                    let room = self.conn.input_buffer();
                    let n = room.len().min(rest.len());
                    room[..n].copy_from_slice(&rest[..n]);
                    n
                } else {
                    let buf = self.conn.input_buf();
                    let n = (buf.capacity() - buf.len()).min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    n
                };
                result = self.conn.input_written(n);
                if result.is_err() {
                    break;
                }
                rest = &rest[n..];
            }
            result
        };
        match result {
            Ok(()) => {}
            Err(Error::Protocol(e)) => assert_eq!(self.conn.error(), Some(&e)),
            Err(Error::Limit(e)) => assert_eq!(e.limit, Limit::BufferedInput),
            Err(Error::Usage(UsageError::Closed)) => assert!(self.conn.is_closed()),
            Err(other) => panic!("unexpected error from peer bytes: {other:?}"),
        }
    }

    fn poll(&mut self) -> bool {
        let max_stderr = self.conn.config().max_stderr_bytes;
        match self.conn.poll_event() {
            Some(event) => {
                self.checker.event(&event, max_stderr);
                true
            }
            None => false,
        }
    }

    fn consume(&mut self, amount: u32) {
        let queued = self.conn.transmit_len();
        let chunks: usize = self.conn.transmit_chunks().map(<[u8]>::len).sum();
        assert_eq!(chunks, queued, "transmit_chunks disagree with transmit_len");
        let n = amount as usize % (queued + 1);
        let mut left = n;
        for chunk in self.conn.transmit_chunks() {
            let take = left.min(chunk.len());
            self.written.extend_from_slice(&chunk[..take]);
            left -= take;
        }
        self.conn.consume_transmit(n);
        assert_eq!(self.conn.transmit_len(), queued - n);
        while let Some(_fragment) = self
            .decoder
            .decode(&mut self.written)
            .expect("the client writes version-1 records")
        {}
    }
}

fn record(kind: Peer, id: u8, padding: u8) -> Vec<u8> {
    let id = u16::from(id % 4);
    let (record_type, content) = match kind {
        Peer::Stdout(c) => (RecordType::STDOUT, c),
        Peer::Stderr(c) => (RecordType::STDERR, c),
        Peer::End {
            app_status,
            protocol_status,
        } => (
            RecordType::END_REQUEST,
            EndRequestBody {
                app_status,
                protocol_status: ProtocolStatus(protocol_status % 5),
            }
            .encode()
            .to_vec(),
        ),
        Peer::Values(pairs) => {
            let mut c = Vec::new();
            for (n, v) in pairs {
                nv::encode_pair(&mut c, &n, &v).expect("short pairs");
            }
            (RecordType::GET_VALUES_RESULT, c)
        }
        Peer::UnknownType(t) => (RecordType::UNKNOWN_TYPE, vec![t, 0, 0, 0, 0, 0, 0, 0]),
    };
    let mut content = content;
    content.truncate(u16::MAX as usize);
    let mut out = BytesMut::new();
    encode_record(&mut out, record_type, id, &content);
    out[6] = padding % 9;
    out.extend_from_slice(&vec![0; usize::from(padding % 9)]);
    out.to_vec()
}

fuzz_target!(|input: Input| {
    let mut config = Config::default();
    config.max_concurrent_requests = u16::from(input.max_concurrent % 5);
    config.max_stderr_bytes = usize::from(input.max_stderr);
    config.max_buffered_input = 1 + usize::from(input.max_buffered);
    config.max_head_bytes = usize::from(input.max_head);
    config.keep_conn = input.keep_conn;
    let mut h = Harness {
        conn: Connection::new(config),
        checker: EventChecker::default(),
        ids: Vec::new(),
        written: BytesMut::new(),
        decoder: RecordDecoder::new(),
    };
    for op in input.ops {
        match op {
            Op::Start {
                params,
                content_length,
                raw_content_length,
            } => {
                let mut p = Params::new();
                for (name, value) in params.iter().take(8) {
                    // Invalid pairs are the params module's business, not this target's.
                    let _ = p.insert(name, value);
                }
                if let Some(len) = content_length {
                    let _ = p.insert("CONTENT_LENGTH", len.to_string());
                }
                if let Some(raw) = raw_content_length {
                    let _ = p.insert("CONTENT_LENGTH", raw);
                }
                if let Some(id) = h.command(|c| c.start_request(&p)) {
                    h.checker.started(id);
                    if !h.ids.contains(&id) {
                        h.ids.push(id);
                    }
                }
            }
            Op::SendStdin { request, len } => {
                if let Some(id) = h.pick(request) {
                    let body = Bytes::from(vec![b'b'; usize::from(len)]);
                    h.command(|c| c.send_stdin(id, body));
                }
            }
            Op::FinishStdin { request } => {
                if let Some(id) = h.pick(request) {
                    h.command(|c| c.finish_stdin(id));
                }
            }
            Op::Abort { request } => {
                if let Some(id) = h.pick(request) {
                    if h.command(|c| c.abort(id)).is_some() {
                        h.checker.aborted(id);
                    }
                }
            }
            Op::GetValues(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                h.command(|c| c.get_values(&names));
            }
            Op::SetMaxConcurrent(max) => {
                h.conn.set_max_concurrent_requests(max % 6);
                assert!(h.conn.max_concurrent_requests() >= 1);
            }
            Op::Consume(amount) => h.consume(amount),
            Op::Poll => {
                h.poll();
            }
            Op::PollAll => while h.poll() {},
            Op::PeerBytes(bytes) => h.peer(&bytes, Via::Receive),
            Op::PeerBytesViaBuffer(bytes) => h.peer(&bytes, Via::Room),
            Op::PeerBytesViaSpare(bytes) => h.peer(&bytes, Via::Spare),
            Op::PeerRecord { kind, id, padding } => {
                let bytes = record(kind, id, padding);
                h.peer(&bytes, Via::Receive);
            }
            Op::Eof => {
                let before = h.conn.transmit_len();
                match h.conn.receive_eof() {
                    Ok(()) => {}
                    Err(Error::Protocol(e)) => assert_eq!(h.conn.error(), Some(&e)),
                    Err(Error::Usage(UsageError::Closed)) => {}
                    Err(other) => panic!("unexpected error from receive_eof: {other:?}"),
                }
                assert_eq!(h.conn.transmit_len(), before);
            }
        }
        if let Some(e) = h.conn.error().cloned() {
            // Sticky: a command answers the same error.
            assert_eq!(h.conn.get_values(&[]), Err(Error::Protocol(e)));
        }
        // The connection forgets a request when it reads END_REQUEST; the checker when
        // the caller drains `End`.
        assert!(h.conn.in_flight() <= h.checker.in_flight());
    }
    while h.poll() {}
    h.consume(u32::MAX);
    let rest = h.conn.transmit_len();
    h.consume(rest as u32);
    assert_eq!(h.conn.transmit_len(), 0);
});
