//! The client side of one FastCGI connection, as a state machine without I/O.
//!
//! Methods come in four groups: commands ([`start_request`](Connection::start_request),
//! [`send_stdin`](Connection::send_stdin), [`finish_stdin`](Connection::finish_stdin),
//! [`abort`](Connection::abort), [`get_values`](Connection::get_values)) queue output;
//! output ([`transmit`](Connection::transmit), [`consume_transmit`](Connection::consume_transmit))
//! hands that output to the socket; input ([`input_buffer`](Connection::input_buffer),
//! [`input_written`](Connection::input_written), [`receive`](Connection::receive),
//! [`receive_eof`](Connection::receive_eof)) takes what the socket read; events
//! ([`poll_event`](Connection::poll_event)) say what happened. Getters tell the state.

use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::config::Config;
use crate::error::{Error, HeadError, Limit, LimitExceeded, ProtocolError, UsageError};
use crate::nv;
use crate::params::Params;
use crate::record::{
    begin_request_body, EndRequestBody, Next, Piece, ProtocolStatus, RecordDecoder, RecordHeader,
    RecordType, Role, FLAG_KEEP_CONN, HEADER_LEN, MANAGEMENT_ID, MAX_CONTENT_LEN, STREAM_CHUNK_LEN,
};
use crate::response::{HeadParser, ResponseHead};
use crate::values::ServerValues;

/// A request's id on its connection (1 to 65535).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u16);

impl RequestId {
    /// The id as sent on the wire.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a request ended (`END_REQUEST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct End {
    /// The application's exit status.
    pub app_status: u32,
    /// How the server ended the request; anything but `REQUEST_COMPLETE` means the
    /// request was refused (overloaded, unknown role, cannot multiplex).
    pub protocol_status: ProtocolStatus,
    /// `STDERR` bytes past [`Config::max_stderr_bytes`] that were dropped, not delivered.
    pub stderr_dropped: u64,
}

/// What happened on the connection; drained with [`Connection::poll_event`].
///
/// For each request, in order: any number of `Stderr`; then either `Head` followed by
/// any number of `Body` and `Stderr`, or `HeadError` followed by any number of
/// `Stderr`; then `End`. A request refused by the server (a protocol status other than
/// `REQUEST_COMPLETE`, before any output) has only `End`. An aborted request has only
/// `End`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The response head is complete.
    Head {
        /// The request.
        id: RequestId,
        /// The parsed head.
        head: ResponseHead,
    },
    /// Response body bytes, a slice of the received input (never empty).
    Body {
        /// The request.
        id: RequestId,
        /// The bytes.
        data: Bytes,
    },
    /// The application's error output (never empty).
    Stderr {
        /// The request.
        id: RequestId,
        /// The bytes.
        data: Bytes,
    },
    /// The response head is malformed: the request has failed. Its further `STDOUT` is
    /// discarded (`STDERR` is still delivered); its `End` still follows, after which the
    /// connection is reusable.
    HeadError {
        /// The request.
        id: RequestId,
        /// What was wrong.
        error: HeadError,
    },
    /// The request ended; its id is free again.
    End {
        /// The request.
        id: RequestId,
        /// How it ended.
        end: End,
    },
    /// The answer to [`Connection::get_values`].
    Values(ServerValues),
    /// The server did not understand a management record of this type.
    UnknownType(RecordType),
}

#[derive(Debug)]
enum HeadState {
    Parsing(HeadParser),
    Done,
    /// Failed or aborted: output is discarded.
    Discard,
}

#[derive(Debug)]
struct Request {
    id: u16,
    declared_len: Option<u64>,
    sent: u64,
    stdin_finished: bool,
    data_finished: bool,
    head: HeadState,
    stdout_closed: bool,
    stderr_closed: bool,
    stderr_delivered: usize,
    stderr_dropped: u64,
    aborted: bool,
}

/// The size of a fresh input buffer: one read takes a whole 64 KiB record.
const INPUT_BUFFER_LEN: usize = 64 * 1024;
/// The largest the input buffer grows to while reads keep filling it (a long response
/// arriving faster than it is read): a quarter as many reads per byte. Small exchanges
/// never fill 64 KiB and keep the 64 KiB buffer.
const MAX_INPUT_BUFFER_LEN: usize = 256 * 1024;
/// Below this much free room, [`Connection::input_buffer`] starts a fresh buffer rather
/// than offer a short read.
const MIN_INPUT_ROOM: usize = 8 * 1024;
/// How many ended aborted requests are remembered, so that their late records are
/// dropped (see `Connection::ended_aborts`).
const ENDED_ABORTS: usize = 64;
/// Body chunks below this size are copied next to their record header, so that a small
/// request is one contiguous buffer (one write); larger ones are sent as they are.
const COPY_BODY_BELOW: usize = 4 * 1024;

/// The client side of one FastCGI connection.
///
/// The connection never does I/O: commands queue bytes to write, the caller writes them
/// and reports how many were written, feeds what it reads, and drains events.
///
/// **The drain rule: after every command or input, write out all of
/// [`transmit`](Self::transmit) and drain [`poll_event`](Self::poll_event) until it
/// returns `None`.**
///
/// Errors: a [`ProtocolError`] (the peer broke the protocol) is fatal and sticky: every
/// later call returns it again. A [`UsageError`] changes nothing. Events queued before an
/// error stay drainable.
pub struct Connection {
    config: Config,
    max_concurrent: u16,
    decoder: RecordDecoder,
    /// `input[..filled]` holds received bytes not yet decoded. `input[filled..]` is
    /// either initialized room for the next read through a slice (`room_in_len`, from
    /// [`input_buffer`](Self::input_buffer)) or bytes appended through
    /// [`input_buf`](Self::input_buf) and not yet taken by
    /// [`input_written`](Self::input_written).
    input: BytesMut,
    filled: usize,
    room_in_len: bool,
    /// Taking the empty input buffer back to the start of its allocation was tried,
    /// and no input came since: once is enough (each wait for a response asks for the
    /// buffer at least twice, before and after the socket is ready).
    rewind_tried: bool,
    /// The spare capacity [`input_buf`](Self::input_buf) last offered.
    offered: usize,
    /// The size of the next buffer [`input_buffer`](Self::input_buffer) makes room in.
    input_target: usize,
    output: VecDeque<Bytes>,
    output_len: usize,
    scratch: BytesMut,
    requests: Vec<Request>,
    /// Where the search for the next request's id starts: ids rotate over the
    /// connection's life, so a late record of an ended request can never be taken for
    /// the next request's.
    next_id: u16,
    /// Aborted requests the server has ended, most recent last (at most
    /// [`ENDED_ABORTS`]): some servers (Go's net/http/fcgi) end an aborted request at
    /// once and then write its handler's output and a second `END_REQUEST`. Records for
    /// these ids are dropped, and the ids are not given to new requests meanwhile.
    ended_aborts: VecDeque<u16>,
    /// A request ended before its body was finished (see [`is_reusable`](Self::is_reusable)).
    ended_before_body: bool,
    events: VecDeque<Event>,
    event_bytes: usize,
    values_pending: usize,
    /// The last `GET_VALUES_RESULT` had pairs and no empty record has ended it yet: some
    /// servers end every record stream they write, management records included.
    values_unended: bool,
    error: Option<ProtocolError>,
    eof: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("in_flight", &self.requests.len())
            .field("transmit_len", &self.transmit_len())
            .field("events", &self.events.len())
            .field("error", &self.error)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl Default for Connection {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Connection {
    /// A new connection, before any byte was sent or received.
    pub fn new(config: Config) -> Self {
        Self {
            max_concurrent: config.max_concurrent_requests.max(1),
            config,
            decoder: RecordDecoder::new(),
            input: BytesMut::new(),
            filled: 0,
            room_in_len: false,
            rewind_tried: false,
            offered: 0,
            input_target: INPUT_BUFFER_LEN,
            output: VecDeque::new(),
            output_len: 0,
            scratch: BytesMut::new(),
            requests: Vec::new(),
            next_id: 1,
            ended_aborts: VecDeque::new(),
            ended_before_body: false,
            events: VecDeque::new(),
            event_bytes: 0,
            values_pending: 0,
            values_unended: false,
            error: None,
            eof: false,
        }
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Requests started and not yet ended.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Whether another request can start now.
    pub fn can_start_request(&self) -> bool {
        self.check_open().is_ok() && self.requests.len() < usize::from(self.max_concurrent)
    }

    /// The protocol error that broke the connection, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.error.as_ref()
    }

    /// Whether the peer closed the connection ([`receive_eof`](Self::receive_eof)).
    pub fn is_closed(&self) -> bool {
        self.eof
    }

    /// Whether the connection can carry another request after this one: keep-alive was
    /// asked, nothing is in flight or left over (received or still to send), every
    /// request's body went out whole before the request ended, and neither side broke
    /// or closed it.
    ///
    /// A request the server ended before its body was finished leaves the connection
    /// out of step: the server may not have read what was sent, and what was not is
    /// never sent. nginx's upstream keepalive makes the same call.
    pub fn is_reusable(&self) -> bool {
        self.config.keep_conn
            && self.error.is_none()
            && !self.eof
            && !self.ended_before_body
            && self.requests.is_empty()
            && self.values_pending == 0
            && self.filled == 0
            && self.transmit_len() == 0
            && self.decoder.is_at_boundary()
    }

    /// Sets how many requests may be in flight at once (see
    /// [`Config::max_concurrent_requests`]). Requests already in flight are unaffected.
    pub fn set_max_concurrent_requests(&mut self, max: u16) {
        self.max_concurrent = max.max(1);
    }

    /// The current concurrency limit: the configured one, lowered to 1 after the server
    /// answered `CANT_MPX_CONN`.
    pub fn max_concurrent_requests(&self) -> u16 {
        self.max_concurrent
    }

    // ----- commands -----

    fn check_open(&self) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(Error::Protocol(e.clone()));
        }
        if self.eof {
            return Err(UsageError::Closed.into());
        }
        Ok(())
    }

    /// Starts a responder request (what php-fpm serves) with these params: queues
    /// `BEGIN_REQUEST`, the `PARAMS` records and their end. Then send the body with
    /// [`send_stdin`](Self::send_stdin) and end it with
    /// [`finish_stdin`](Self::finish_stdin) (at once when there is no body).
    ///
    /// When the params hold `CONTENT_LENGTH`, exactly that many body bytes must follow;
    /// without it, the body must be empty (a server waits for `CONTENT_LENGTH` bytes).
    pub fn start_request(&mut self, params: &Params) -> Result<RequestId, Error> {
        self.start_request_as(Role::RESPONDER, params)
    }

    /// [`start_request`](Self::start_request) with another role.
    pub fn start_request_as(&mut self, role: Role, params: &Params) -> Result<RequestId, Error> {
        self.check_open()?;
        if self.requests.len() >= usize::from(self.max_concurrent) {
            return Err(if self.max_concurrent == 1 {
                UsageError::Busy.into()
            } else {
                LimitExceeded {
                    limit: Limit::ConcurrentRequests,
                    max: usize::from(self.max_concurrent),
                }
                .into()
            });
        }
        let declared_len = params.content_length()?;
        // The first id from `next_id` on (1 to 65535, then 1 again) that is neither in
        // flight nor an ended abort's: a kept connection uses 65535 ids before it repeats
        // one.
        let id = if self.requests.is_empty() && self.ended_aborts.is_empty() {
            // The usual case, nothing to step over: no search.
            self.next_id
        } else {
            std::iter::successors(Some(self.next_id), |&id| Some(id % u16::MAX + 1))
                .take(usize::from(u16::MAX))
                .find(|id| {
                    self.requests.iter().all(|r| r.id != *id) && !self.ended_aborts.contains(id)
                })
                .ok_or(LimitExceeded {
                    limit: Limit::ConcurrentRequests,
                    max: self.requests.len(),
                })?
        };
        self.next_id = id % u16::MAX + 1;
        let flags = if self.config.keep_conn {
            FLAG_KEEP_CONN
        } else {
            0
        };
        if self.scratch.is_empty() {
            // Everything queued before was written: when nothing else points into the
            // buffer, this request is encoded at its start (its cache lines are the last
            // request's), not after what the last one used.
            let _ = self.scratch.try_reclaim(self.scratch.capacity() + 1);
        }
        self.scratch
            .reserve(2 * HEADER_LEN + 8 + params.encoded_len() + 2 * HEADER_LEN);
        put_header(&mut self.scratch, RecordType::BEGIN_REQUEST, id, 8);
        self.scratch.put_slice(&begin_request_body(role, flags));
        // The usual case: every pair fits in one record, copied in one piece.
        let whole = params.encoded().and_then(|pairs| {
            let len = u16::try_from(pairs.len()).ok().filter(|&n| n > 0)?;
            Some((pairs, len))
        });
        if let Some((pairs, len)) = whole {
            put_header(&mut self.scratch, RecordType::PARAMS, id, len);
            self.scratch.put_slice(pairs);
        } else {
            self.encode_params_in_records(id, params);
        }
        put_header(&mut self.scratch, RecordType::PARAMS, id, 0);
        #[cfg(feature = "tracing")]
        {
            crate::trace::begin_request(id, role, flags != 0);
            crate::trace::params(id, params);
            crate::trace::record(">", RecordType::PARAMS, id, 0);
        }
        self.requests.push(Request {
            id,
            declared_len,
            sent: 0,
            stdin_finished: false,
            data_finished: false,
            head: HeadState::Parsing(HeadParser::new(self.config.max_head_bytes)),
            stdout_closed: false,
            stderr_closed: false,
            stderr_delivered: 0,
            stderr_dropped: 0,
            aborted: false,
        });
        Ok(RequestId(id))
    }

    /// `params` pair by pair, in as many PARAMS records as they need (for pairs not at
    /// hand in one piece, or too many for one record).
    fn encode_params_in_records(&mut self, id: u16, params: &Params) {
        let mut record_start = None;
        for (name, value) in params.iter() {
            let len = nv::encoded_len(name, value);
            let start = match record_start {
                Some(start) if self.scratch.len() - start - HEADER_LEN + len <= MAX_CONTENT_LEN => {
                    start
                }
                previous => {
                    if let Some(start) = previous {
                        self.patch_length(start);
                    }
                    let start = self.scratch.len();
                    put_header(&mut self.scratch, RecordType::PARAMS, id, 0);
                    start
                }
            };
            record_start = Some(start);
            // Params hold no name or value longer than one record, far below nv::MAX_LEN.
            nv::encode_pair(&mut self.scratch, name, value)
                .expect("params are checked to fit in one record");
        }
        if let Some(start) = record_start {
            self.patch_length(start);
        }
    }

    fn patch_length(&mut self, record_start: usize) {
        let len = self.scratch.len() - record_start - HEADER_LEN;
        // The loop above keeps every PARAMS record within MAX_CONTENT_LEN.
        let len = u16::try_from(len).expect("PARAMS record within 65535 bytes");
        self.scratch[record_start + 4..record_start + 6].copy_from_slice(&len.to_be_bytes());
    }

    fn request_mut(&mut self, id: RequestId) -> Result<&mut Request, Error> {
        self.check_open()?;
        self.requests
            .iter_mut()
            .find(|r| r.id == id.0)
            .ok_or(Error::Usage(UsageError::UnknownRequest(id)))
    }

    /// Queues body bytes (`STDIN`) for a request, in records of at most 65528 bytes.
    /// Large chunks are not copied: the records point into `data`.
    pub fn send_stdin(&mut self, id: RequestId, data: Bytes) -> Result<(), Error> {
        let req = self.request_mut(id)?;
        if req.stdin_finished {
            return Err(UsageError::BodyFinished(id).into());
        }
        let attempted = req.sent + data.len() as u64;
        let declared = req.declared_len.unwrap_or(0);
        if attempted > declared {
            return Err(UsageError::BodyTooLong {
                id,
                declared,
                attempted,
            }
            .into());
        }
        req.sent = attempted;
        self.queue_stream(RecordType::STDIN, id.0, data);
        Ok(())
    }

    /// Ends a request's body with the empty `STDIN` record. The bytes sent must add up to
    /// the request's `CONTENT_LENGTH` (0 without one).
    pub fn finish_stdin(&mut self, id: RequestId) -> Result<(), Error> {
        let req = self.request_mut(id)?;
        if req.stdin_finished {
            return Err(UsageError::BodyFinished(id).into());
        }
        let declared = req.declared_len.unwrap_or(0);
        if req.sent != declared {
            return Err(UsageError::BodyTooShort {
                id,
                declared,
                sent: req.sent,
            }
            .into());
        }
        req.stdin_finished = true;
        put_header(&mut self.scratch, RecordType::STDIN, id.0, 0);
        #[cfg(feature = "tracing")]
        crate::trace::record(">", RecordType::STDIN, id.0, 0);
        Ok(())
    }

    /// Queues `DATA` bytes, the filter role's second input stream.
    pub fn send_data(&mut self, id: RequestId, data: Bytes) -> Result<(), Error> {
        if self.request_mut(id)?.data_finished {
            return Err(UsageError::BodyFinished(id).into());
        }
        self.queue_stream(RecordType::DATA, id.0, data);
        Ok(())
    }

    /// Ends the `DATA` stream with its empty record.
    pub fn finish_data(&mut self, id: RequestId) -> Result<(), Error> {
        let req = self.request_mut(id)?;
        if req.data_finished {
            return Err(UsageError::BodyFinished(id).into());
        }
        req.data_finished = true;
        put_header(&mut self.scratch, RecordType::DATA, id.0, 0);
        #[cfg(feature = "tracing")]
        crate::trace::record(">", RecordType::DATA, id.0, 0);
        Ok(())
    }

    fn queue_stream(&mut self, record_type: RecordType, id: u16, mut data: Bytes) {
        // Room for every record header at once: each header is split off `scratch` as
        // its own chunk, and growing `scratch` a header at a time allocated twice per
        // record (a new buffer, then its shared header) while earlier ones wait unsent.
        self.scratch
            .reserve(data.len().div_ceil(STREAM_CHUNK_LEN) * HEADER_LEN + HEADER_LEN);
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(STREAM_CHUNK_LEN));
            // `chunk` is at most STREAM_CHUNK_LEN (65528) bytes.
            put_header(&mut self.scratch, record_type, id, chunk.len() as u16);
            #[cfg(feature = "tracing")]
            crate::trace::record(">", record_type, id, chunk.len());
            if chunk.len() < COPY_BODY_BELOW {
                self.scratch.put_slice(&chunk);
            } else {
                self.flush_scratch();
                self.push_output(chunk);
            }
        }
    }

    /// Asks the server to abort a request (`ABORT_REQUEST`). Its later output is
    /// discarded and no more body is taken; its `End` still comes. php-fpm ignores the
    /// request and runs the script to its end: to stop waiting sooner on a connection
    /// that does not multiplex, close it instead.
    pub fn abort(&mut self, id: RequestId) -> Result<(), Error> {
        let req = self.request_mut(id)?;
        if req.aborted {
            return Ok(());
        }
        req.aborted = true;
        req.stdin_finished = true;
        req.data_finished = true;
        req.head = HeadState::Discard;
        put_header(&mut self.scratch, RecordType::ABORT_REQUEST, id.0, 0);
        #[cfg(feature = "tracing")]
        crate::trace::record(">", RecordType::ABORT_REQUEST, id.0, 0);
        // Drop what was queued for this request but not delivered.
        self.events.retain(|e| match e {
            Event::Head { id: i, .. } | Event::HeadError { id: i, .. } => *i != id,
            Event::Body { id: i, data } | Event::Stderr { id: i, data } => {
                if *i == id {
                    self.event_bytes -= data.len();
                }
                *i != id
            }
            _ => true,
        });
        Ok(())
    }

    /// Asks for management variables (`GET_VALUES`), such as
    /// [`FCGI_MPXS_CONNS`](crate::values::FCGI_MPXS_CONNS); the answer comes as
    /// [`Event::Values`]. php-fpm answers and then closes the connection, and does not
    /// answer while all its workers are busy. A server that does not implement
    /// `GET_VALUES` answers [`Event::UnknownType`] with
    /// [`RecordType::GET_VALUES`] instead, which also ends the wait.
    pub fn get_values(&mut self, names: &[&str]) -> Result<(), Error> {
        self.check_open()?;
        let size: usize = names
            .iter()
            .map(|n| nv::encoded_len(n.as_bytes(), b""))
            .sum();
        if size > MAX_CONTENT_LEN {
            return Err(UsageError::ValuesTooLarge(size).into());
        }
        // At least one byte of padding, up to a multiple of 8: the reference C library
        // (libfcgi) answers a management record only once more bytes follow it, and an
        // unpadded GET_VALUES that ends on an 8-byte boundary waits unanswered.
        let padding = 8 - size % 8;
        // `size` fits in one record, checked above.
        let mut header = RecordHeader::new(RecordType::GET_VALUES, MANAGEMENT_ID, size as u16);
        header.padding_length = padding as u8;
        self.scratch.put_slice(&header.encode());
        for name in names {
            nv::encode_pair(&mut self.scratch, name.as_bytes(), b"")
                .expect("names fit in one record, checked above");
        }
        self.scratch.put_bytes(0, padding);
        #[cfg(feature = "tracing")]
        crate::trace::record(">", RecordType::GET_VALUES, MANAGEMENT_ID, size);
        self.values_pending += 1;
        Ok(())
    }

    // ----- output -----

    fn flush_scratch(&mut self) {
        if !self.scratch.is_empty() {
            let chunk = self.scratch.split().freeze();
            self.push_output(chunk);
        }
    }

    fn push_output(&mut self, chunk: Bytes) {
        self.output_len += chunk.len();
        self.output.push_back(chunk);
    }

    /// Bytes queued to write.
    pub fn transmit_len(&self) -> usize {
        self.output_len + self.scratch.len()
    }

    /// Fills `slices` with the queued output, in order, for one vectored write; returns
    /// how many slices were filled. Call [`consume_transmit`](Self::consume_transmit)
    /// with the number of bytes written. A request with a small body (under 4 KiB) is
    /// one slice: one write.
    pub fn transmit<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        if self.output.is_empty() {
            // The usual case: records and small bodies encoded in one piece.
            return match (slices.first_mut(), self.scratch.is_empty()) {
                (Some(slot), false) => {
                    *slot = IoSlice::new(&self.scratch);
                    1
                }
                _ => 0,
            };
        }
        let mut n = 0;
        for (slot, chunk) in slices.iter_mut().zip(self.transmit_chunks()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// The queued output as chunks, in order (for writers without vectored writes).
    pub fn transmit_chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let tail = (!self.scratch.is_empty()).then_some(&self.scratch[..]);
        self.output.iter().map(|c| &c[..]).chain(tail)
    }

    /// Marks `n` bytes of the queued output as written.
    ///
    /// # Panics
    /// When `n` is more than [`transmit_len`](Self::transmit_len): a bug in the caller.
    pub fn consume_transmit(&mut self, mut n: usize) {
        assert!(
            n <= self.transmit_len(),
            "consumed more than was queued to transmit"
        );
        if self.output.is_empty() {
            self.scratch.advance(n);
            return;
        }
        while n > 0 {
            let Some(front) = self.output.front_mut() else {
                // What is left of `n` lies in the unqueued tail (checked above).
                self.scratch.advance(n);
                return;
            };
            if n < front.len() {
                front.advance(n);
                self.output_len -= n;
                return;
            }
            n -= front.len();
            self.output_len -= front.len();
            self.output.pop_front();
        }
    }

    // ----- input -----

    /// Room to read into, for a reader that needs initialized memory (`std::io::Read`,
    /// futures-io's `AsyncRead`): the caller reads from the socket into this slice,
    /// then calls [`input_written`](Self::input_written) with the number of bytes read.
    /// The slice is at least 8 KiB, and reading into it copies no byte twice: body events
    /// are slices of it. Its room is zeroed when a fresh buffer is started (once per
    /// buffer, not per read); [`input_buf`](Self::input_buf) needs no zeroing.
    pub fn input_buffer(&mut self) -> &mut [u8] {
        if !self.room_in_len {
            // What follows `filled` is not room (it may be bytes appended through
            // `input_buf` whose `input_written` must come first): room starts after it.
            self.filled_to_len();
            self.room_in_len = true;
        }
        if self.input.len() - self.filled < MIN_INPUT_ROOM {
            let want = self.input_target.max(self.filled + MIN_INPUT_ROOM);
            // Keep the undecoded bytes and make room. When no event or body chunk still
            // points into the buffer (the caller dropped them, as a streaming reader
            // does), `reserve` takes the whole allocation back in place, moving those few
            // bytes to its front: a long response reuses one buffer instead of allocating
            // one per 64 KiB.
            self.input.truncate(self.filled);
            self.input.reserve(want - self.filled);
            self.input.resize(want, 0);
        }
        &mut self.input[self.filled..]
    }

    /// The input buffer, for a reader that fills spare capacity (a `read_buf`-style
    /// call: tokio-util's `poll_read_buf`, socket2's `recv`, `bytes::BufMut`): the
    /// caller appends what it reads to the buffer's spare capacity, at least 8 KiB,
    /// which is not zeroed first, then calls [`input_written`](Self::input_written)
    /// with the number of bytes appended.
    /// The bytes already in the buffer are received input: leave them as they are.
    /// Body events are slices of the buffer, as with
    /// [`input_buffer`](Self::input_buffer).
    pub fn input_buf(&mut self) -> &mut BytesMut {
        if self.room_in_len {
            // Initialized room from `input_buffer`: spare capacity from now on.
            self.input.truncate(self.filled);
            self.room_in_len = false;
        }
        if self.input.is_empty() && !self.rewind_tried {
            // Nothing undecoded: when no event or body chunk points into the buffer any
            // more, the next read goes to its start again (cache lines still warm from
            // the last exchange) instead of after what the last one used.
            let _ = self.input.try_reclaim(self.input.capacity() + 1);
            self.rewind_tried = true;
        }
        if self.input.capacity() - self.input.len() < MIN_INPUT_ROOM {
            let want = self.input_target.max(self.input.len() + MIN_INPUT_ROOM);
            // As in `input_buffer`: a buffer no event points into any more is taken
            // back in place.
            self.input.reserve(want - self.input.len());
        }
        self.offered = self.input.capacity() - self.input.len();
        &mut self.input
    }

    /// Bytes appended through [`input_buf`](Self::input_buf) and never reported (a caller
    /// that went over to [`input_buffer`](Self::input_buffer) in between) are dropped:
    /// the buffer is undecoded input up to `filled` only.
    fn filled_to_len(&mut self) {
        self.input.truncate(self.filled);
    }

    /// Processes `n` bytes the caller read into [`input_buffer`](Self::input_buffer) or
    /// appended to [`input_buf`](Self::input_buf).
    ///
    /// When it answers [`Limit::BufferedInput`] (events were not drained), nothing was
    /// taken: drain [`poll_event`](Self::poll_event), then call `input_written(n)` again
    /// with the same `n`, without reading into the buffer in between.
    ///
    /// # Panics
    /// When `n` is larger than the slice `input_buffer` gave, or than what was appended
    /// to `input_buf`: a bug in the caller.
    pub fn input_written(&mut self, n: usize) -> Result<(), Error> {
        assert!(
            self.filled + n <= self.input.len(),
            "more input written than there was room for"
        );
        self.check_open()?;
        self.check_buffered()?;
        let room = if self.room_in_len {
            self.input.len() - self.filled
        } else {
            self.offered
        };
        if n >= MIN_INPUT_ROOM && n >= room {
            // The read filled all the room: more is likely waiting.
            self.input_target = (self.input_target * 2).min(MAX_INPUT_BUFFER_LEN);
        }
        self.filled += n;
        self.process()
    }

    /// Processes received bytes (copied into the connection's buffer). Adapters that own
    /// a socket read into [`input_buffer`](Self::input_buffer) instead to save the copy.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        self.check_buffered()?;
        let mut data = data;
        while !data.is_empty() {
            // Copied into spare capacity: nothing is zeroed first.
            let buf = self.input_buf();
            let n = (buf.capacity() - buf.len()).min(data.len());
            buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.filled += n;
            self.process()?;
        }
        Ok(())
    }

    fn check_buffered(&self) -> Result<(), Error> {
        // Nothing undrained is never too much, whatever the limit (even 0).
        if self.event_bytes > 0 && self.event_bytes >= self.config.max_buffered_input {
            return Err(LimitExceeded {
                limit: Limit::BufferedInput,
                max: self.config.max_buffered_input,
            }
            .into());
        }
        Ok(())
    }

    /// The peer closed its side. Fine between requests; an error in the middle of a
    /// record or while requests are in flight.
    pub fn receive_eof(&mut self) -> Result<(), Error> {
        self.check_open()?;
        self.eof = true;
        let error = if self.filled > 0 || !self.decoder.is_at_boundary() {
            ProtocolError::EofInRecord
        } else if !self.requests.is_empty() || self.values_pending > 0 {
            ProtocolError::EofInRequest {
                in_flight: self.requests.len() + self.values_pending,
            }
        } else {
            return Ok(());
        };
        Err(self.fail(error))
    }

    fn fail(&mut self, error: ProtocolError) -> Error {
        self.error = Some(error.clone());
        Error::Protocol(error)
    }

    fn process(&mut self) -> Result<(), Error> {
        self.rewind_tried = false;
        // Records are decoded in place: `taken` bytes at the front of the input are used
        // up, and dropped together when a content slice is split off the buffer (the
        // events' `Bytes` point into it) or at the end.
        let mut taken = 0;
        let result = loop {
            let buf = &self.input[taken..self.filled];
            if buf.is_empty() {
                // Whatever the decoder's state, nothing to decode is "need more".
                break Ok(());
            }
            // The usual case: a whole record at a record boundary, taken with its padding.
            let (header, len, last, padding) = if let Some(header) = self.decoder.whole_record(buf)
            {
                taken += HEADER_LEN;
                let padding = usize::from(header.padding_length);
                (header, usize::from(header.content_length), true, padding)
            } else {
                match self.decoder.next(buf) {
                    Ok(Next::Piece(Piece {
                        header,
                        skip,
                        len,
                        last,
                    })) => {
                        taken += skip;
                        (header, len, last, 0)
                    }
                    Ok(Next::Need { skip }) => {
                        taken += skip;
                        break Ok(());
                    }
                    Err(e) => break Err(e),
                }
            };
            let step = if header.record_type == RecordType::END_REQUEST
                && header.request_id != MANAGEMENT_ID
            {
                // Read in place: no slice of the input is made for it.
                let body = EndRequestBody::decode(&self.input[taken..taken + len]);
                taken += len;
                self.handle_end(header, body)
            } else {
                let data = if len == 0 {
                    None
                } else {
                    // What was used up before the content goes with it, in one split.
                    let mut data = self.input.split_to(taken + len).freeze();
                    data.advance(taken);
                    self.filled -= taken + len;
                    taken = 0;
                    Some(data)
                };
                self.handle(header, data, last)
            };
            taken += padding;
            if let Err(e) = step {
                break Err(e);
            }
        };
        self.input.advance(taken);
        self.filled -= taken;
        result.map_err(|e| self.fail(e))
    }

    /// The index in `requests` of the request a record belongs to; `Ok(None)` for the
    /// late records of an ended aborted request, which are dropped.
    fn request_index(&mut self, header: RecordHeader) -> Result<Option<usize>, ProtocolError> {
        let request_id = header.request_id;
        if let Some(index) = self.requests.iter().position(|r| r.id == request_id) {
            return Ok(Some(index));
        }
        if let Some(at) = self.ended_aborts.iter().position(|&i| i == request_id) {
            // The late output of an aborted request that the server ended at once; its
            // second END_REQUEST is the last of it.
            if header.record_type == RecordType::END_REQUEST {
                self.ended_aborts.remove(at);
            }
            return Ok(None);
        }
        Err(ProtocolError::UnknownRequest {
            record_type: header.record_type,
            request_id,
        })
    }

    /// A record other than a request's `END_REQUEST` (which goes to
    /// [`handle_end`](Self::handle_end)), or a piece of one: its content, `None` when
    /// empty.
    fn handle(
        &mut self,
        header: RecordHeader,
        data: Option<Bytes>,
        last: bool,
    ) -> Result<(), ProtocolError> {
        let record_type = header.record_type;
        let request_id = header.request_id;
        #[cfg(feature = "tracing")]
        if last && record_type != RecordType::END_REQUEST {
            crate::trace::record("<", record_type, request_id, header.content_length.into());
        }
        #[cfg(not(feature = "tracing"))]
        let _ = last;
        if request_id == MANAGEMENT_ID {
            return self.handle_management(header, data.unwrap_or_default());
        }
        if !matches!(record_type, RecordType::STDOUT | RecordType::STDERR) {
            return Err(ProtocolError::UnexpectedRecordType {
                record_type,
                request_id,
            });
        }
        let Some(index) = self.request_index(header)? else {
            return Ok(());
        };
        let id = RequestId(request_id);
        let req = &mut self.requests[index];
        match record_type {
            RecordType::STDOUT => {
                if req.stdout_closed {
                    return Err(ProtocolError::AfterEndOfStream {
                        record_type,
                        request_id,
                    });
                }
                let Some(data) = data else {
                    req.stdout_closed = true;
                    if let HeadState::Parsing(_) = req.head {
                        req.head = HeadState::Discard;
                        self.push_event(Event::HeadError {
                            id,
                            error: HeadError::Incomplete,
                        });
                    }
                    return Ok(());
                };
                match &mut req.head {
                    HeadState::Discard => {}
                    HeadState::Done => self.push_event(Event::Body { id, data }),
                    HeadState::Parsing(parser) => match parser.feed(data) {
                        Ok(None) => {}
                        Ok(Some((head, rest))) => {
                            req.head = HeadState::Done;
                            self.push_event(Event::Head { id, head });
                            if !rest.is_empty() {
                                self.push_event(Event::Body { id, data: rest });
                            }
                        }
                        Err(error) => {
                            req.head = HeadState::Discard;
                            self.push_event(Event::HeadError { id, error });
                        }
                    },
                }
            }
            _ => {
                // STDERR, checked above.
                if req.stderr_closed {
                    return Err(ProtocolError::AfterEndOfStream {
                        record_type,
                        request_id,
                    });
                }
                let Some(data) = data else {
                    req.stderr_closed = true;
                    return Ok(());
                };
                if req.aborted {
                    return Ok(());
                }
                let room = self.config.max_stderr_bytes - req.stderr_delivered;
                let keep = data.len().min(room);
                req.stderr_delivered += keep;
                req.stderr_dropped += (data.len() - keep) as u64;
                if keep > 0 {
                    self.push_event(Event::Stderr {
                        id,
                        data: data.slice(..keep),
                    });
                }
            }
        }
        Ok(())
    }

    /// A request's `END_REQUEST` (non-stream records arrive whole), its body read.
    fn handle_end(
        &mut self,
        header: RecordHeader,
        body: Result<EndRequestBody, ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let Some(index) = self.request_index(header)? else {
            return Ok(());
        };
        let body = body?;
        let request_id = header.request_id;
        #[cfg(feature = "tracing")]
        crate::trace::end_request(request_id, body.app_status, body.protocol_status);
        let id = RequestId(request_id);
        let req = &self.requests[index];
        let aborted = req.aborted;
        self.ended_before_body |= !req.stdin_finished;
        let stderr_dropped = req.stderr_dropped;
        let head_incomplete = match &req.head {
            HeadState::Parsing(parser) => {
                parser.buffered() > 0 || body.protocol_status.is_complete()
            }
            _ => false,
        };
        // Dropped in place (no move) when it is the last one, as it is when alone.
        if index + 1 == self.requests.len() {
            self.requests.truncate(index);
        } else {
            self.requests.swap_remove(index);
        }
        if aborted {
            if self.ended_aborts.len() == ENDED_ABORTS {
                self.ended_aborts.pop_front();
            }
            self.ended_aborts.push_back(request_id);
        }
        if head_incomplete {
            self.push_event(Event::HeadError {
                id,
                error: HeadError::Incomplete,
            });
        }
        if body.protocol_status == ProtocolStatus::CANT_MPX_CONN {
            self.max_concurrent = 1;
        }
        self.push_event(Event::End {
            id,
            end: End {
                app_status: body.app_status,
                protocol_status: body.protocol_status,
                stderr_dropped,
            },
        });
        Ok(())
    }

    fn handle_management(
        &mut self,
        header: RecordHeader,
        data: Bytes,
    ) -> Result<(), ProtocolError> {
        match header.record_type {
            RecordType::GET_VALUES_RESULT => {
                // Go's net/http/fcgi, among others, writes the answer as a stream: the
                // pairs, then an empty record. That empty record ends the answer before
                // it; one is accepted per answer, so a flood of them is still an error.
                // An empty record that follows no answer is itself the answer (no values).
                if data.is_empty() && std::mem::take(&mut self.values_unended) {
                    return Ok(());
                }
                if self.values_pending == 0 {
                    return Err(ProtocolError::UnsolicitedValues);
                }
                let values = ServerValues::decode(&data).map_err(ProtocolError::BadValues)?;
                self.values_pending -= 1;
                self.values_unended = !data.is_empty();
                self.push_event(Event::Values(values));
            }
            RecordType::UNKNOWN_TYPE => {
                if data.len() != 8 {
                    return Err(ProtocolError::BadUnknownTypeLength(data.len()));
                }
                let record_type = RecordType(data[0]);
                // A server without GET_VALUES answers it this way: no result will come.
                if record_type == RecordType::GET_VALUES && self.values_pending > 0 {
                    self.values_pending -= 1;
                }
                self.push_event(Event::UnknownType(record_type));
            }
            record_type => {
                return Err(ProtocolError::UnexpectedRecordType {
                    record_type,
                    request_id: header.request_id,
                })
            }
        }
        Ok(())
    }

    fn push_event(&mut self, event: Event) {
        if let Event::Body { data, .. } | Event::Stderr { data, .. } = &event {
            self.event_bytes += data.len();
        }
        self.events.push_back(event);
    }

    // ----- events -----

    /// The next event, or `None` when all are drained.
    // Small and called in every drain loop: inlined there, the event is moved once.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Body { data, .. } | Event::Stderr { data, .. } = &event {
            self.event_bytes -= data.len();
        }
        Some(event)
    }
}

fn put_header(out: &mut BytesMut, record_type: RecordType, id: u16, len: u16) {
    out.put_slice(&RecordHeader::new(record_type, id, len).encode());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamsBuilder;

    fn record(t: RecordType, id: u16, content: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        crate::record::encode_record(&mut out, t, id, content);
        out.to_vec()
    }

    fn started(max: u16) -> Connection {
        let mut conn = Connection::new(Config {
            max_concurrent_requests: max,
            ..Config::default()
        });
        let params = ParamsBuilder::new("GET", "/").build().unwrap();
        for _ in 0..max {
            let id = conn.start_request(&params).unwrap();
            conn.finish_stdin(id).unwrap();
        }
        let n = conn.transmit_len();
        conn.consume_transmit(n);
        conn
    }

    #[test]
    fn event_bytes_follow_queued_body_and_stderr() {
        let mut conn = started(2);
        let mut input = record(RecordType::STDOUT, 1, b"\nbody-1");
        input.extend(record(RecordType::STDERR, 2, b"err-2"));
        input.extend(record(RecordType::STDOUT, 2, b"\nbody-2!"));
        input.extend(record(RecordType::STDERR, 1, b"e1"));
        conn.receive(&input).unwrap();
        assert_eq!(conn.event_bytes, 6 + 5 + 7 + 2);
        conn.abort(RequestId(1)).unwrap();
        assert_eq!(conn.event_bytes, 5 + 7);
        // Stderr of the aborted request no longer counts or queues.
        conn.receive(&record(RecordType::STDERR, 1, b"more"))
            .unwrap();
        assert_eq!(conn.event_bytes, 5 + 7);
        let mut n = 0;
        while let Some(e) = conn.poll_event() {
            assert!(!matches!(
                e,
                Event::Body {
                    id: RequestId(1),
                    ..
                }
            ));
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(conn.event_bytes, 0);
    }

    #[test]
    fn partial_non_stream_record_survives_a_fresh_input_buffer() {
        let mut conn = Connection::default();
        conn.get_values(&["X"]).unwrap();
        let n = conn.transmit_len();
        conn.consume_transmit(n);
        let mut content = Vec::new();
        nv::encode_pair(&mut content, b"X", &[b'v'; 60_000]).unwrap();
        let wire = record(RecordType::GET_VALUES_RESULT, 0, &content);
        // Most of the record: not decodable yet, held at the front of the buffer.
        let first = 59_000;
        let room = conn.input_buffer();
        room[..first].copy_from_slice(&wire[..first]);
        conn.input_written(first).unwrap();
        assert_eq!(conn.filled, first);
        assert!(conn.poll_event().is_none());
        // Less than 8 KiB of room is left: a fresh buffer keeps the partial record.
        let room = conn.input_buffer();
        assert!(room.len() >= MIN_INPUT_ROOM);
        assert_eq!(&conn.input[..first], &wire[..first]);
        let rest = wire.len() - first;
        conn.input_buffer()[..rest].copy_from_slice(&wire[first..]);
        conn.input_written(rest).unwrap();
        assert_eq!(conn.filled, 0);
        match conn.poll_event() {
            Some(Event::Values(v)) => assert_eq!(v.get("X"), Some(&[b'v'; 60_000][..])),
            other => panic!("{other:?}"),
        }
        assert!(conn.is_reusable());
    }

    #[test]
    fn input_appended_to_spare_capacity_is_taken_and_sliced_without_a_copy() {
        let mut conn = started(1);
        let wire = record(RecordType::STDOUT, 1, b"A: 1\r\n\r\nhello");
        let buf = conn.input_buf();
        assert!(buf.capacity() - buf.len() >= MIN_INPUT_ROOM);
        // Half a record, then the rest, as two reads would append them.
        buf.extend_from_slice(&wire[..5]);
        let start = buf.as_ptr() as usize;
        conn.input_written(5).unwrap();
        assert!(conn.poll_event().is_none());
        conn.input_buf().extend_from_slice(&wire[5..]);
        conn.input_written(wire.len() - 5).unwrap();
        assert!(matches!(conn.poll_event(), Some(Event::Head { .. })));
        match conn.poll_event() {
            Some(Event::Body { data, .. }) => {
                assert_eq!(&data[..], b"hello");
                assert_eq!(data.as_ptr() as usize, start + wire.len() - 5, "copied");
            }
            other => panic!("{other:?}"),
        }
        // A slice reader after a spare-capacity one, and back: the input stays in step.
        let end = record(RecordType::END_REQUEST, 1, &[0; 8]);
        conn.input_buffer()[..3].copy_from_slice(&end[..3]);
        conn.input_written(3).unwrap();
        conn.input_buf().extend_from_slice(&end[3..]);
        conn.input_written(end.len() - 3).unwrap();
        assert!(matches!(conn.poll_event(), Some(Event::End { .. })));
        assert!(conn.is_reusable());
    }

    #[test]
    fn body_events_are_slices_of_the_input_buffer() {
        let mut conn = started(1);
        let wire = record(RecordType::STDOUT, 1, b"A: 1\r\n\r\nhello");
        let room = conn.input_buffer();
        room[..wire.len()].copy_from_slice(&wire);
        let start = room.as_ptr() as usize;
        conn.input_written(wire.len()).unwrap();
        assert!(matches!(conn.poll_event(), Some(Event::Head { .. })));
        match conn.poll_event() {
            Some(Event::Body { data, .. }) => {
                assert_eq!(&data[..], b"hello");
                assert_eq!(data.as_ptr() as usize, start + wire.len() - 5, "copied");
            }
            other => panic!("{other:?}"),
        }
    }
}
