//! A hostile FastCGI server: named cases, each a scripted reply (bytes, pauses, a
//! close) with the one exact outcome a client must report, a time bound and a memory
//! bound. Every adapter's test suite runs every case of [`cases`], so a case added here
//! runs everywhere.
//!
//! ```no_run
//! use fcgi_testkit::hostile::{cases, Hostile};
//!
//! for case in cases() {
//!     let server = Hostile::start(&case); // a fresh unix socket in a temp dir
//!     let socket = server.socket(); // point a client at it, send one GET, then:
//!     // case.expected.check(outcome) names any difference from the expected outcome.
//!     # let _ = socket;
//! }
//! ```
//!
//! The server is a std thread that accepts one connection, reads the request (until
//! the client's empty `STDIN` record, or [`REQUEST_READ_TIMEOUT`]; some cases read one
//! byte only, see [`ReadRequest`]), then plays the case's [`Step`]s. Write errors end
//! the script quietly: a client that gave up closes its end. Replies use request id
//! [`REQUEST_ID`] (1): the core gives the first request on a fresh connection the lowest
//! free id.
//!
//! Memory: each case states the most the client's process may grow while it runs
//! ([`MemoryBound`]). The server writes repeated content from one small buffer
//! ([`Step::Repeat`]), so what it sends in bulk (32 MiB of header, 1 MiB of garbage)
//! does not count against the client: a client that held it would exceed the bound.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use fcgi_proto::record::RecordHeader;
use fcgi_proto::{ClientError, HeadError, Phase, ProtocolError, ProtocolStatus, RecordType};

/// The request id every scripted reply uses.
pub const REQUEST_ID: u16 = 1;

/// How long the server waits for the end of the request before it plays its reply
/// anyway.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a server write may wait for the client to read before the script stops.
const SERVER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The usual memory bound: the client's resident memory may grow this much during a
/// case (thread stacks, allocator arenas, a 64 KiB input buffer, a small response).
pub const DEFAULT_MEMORY_GROWTH: u64 = 16 * 1024 * 1024;

/// One step of a scripted reply.
#[derive(Clone)]
pub enum Step {
    /// Write these bytes (one `write_all`).
    Write(Vec<u8>),
    /// Write these bytes this many times (the server holds them once).
    Repeat {
        /// The bytes.
        bytes: Vec<u8>,
        /// How many times.
        times: usize,
    },
    /// Write these bytes one at a time, pausing before each.
    Drip {
        /// The bytes.
        bytes: Vec<u8>,
        /// The pause before each byte.
        every: Duration,
    },
    /// Wait.
    Pause(Duration),
    /// Close the connection (both directions); later steps are not played.
    Close,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Write(b) => write!(f, "Write({} bytes)", b.len()),
            Step::Repeat { bytes, times } => write!(f, "Repeat({} bytes x {times})", bytes.len()),
            Step::Drip { bytes, every } => write!(f, "Drip({} bytes every {every:?})", bytes.len()),
            Step::Pause(d) => write!(f, "Pause({d:?})"),
            Step::Close => f.write_str("Close"),
        }
    }
}

/// What the server reads before it plays its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadRequest {
    /// The whole request: until the empty `STDIN` record (or [`REQUEST_READ_TIMEOUT`]).
    Whole,
    /// One byte, so the request is known to have arrived and the rest stays unread
    /// (closing then resets the connection).
    OneByte,
}

/// The timeouts the client must use for a case (every other setting: the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Bound on each wait for the server to send more.
    pub read: Duration,
    /// Bound on the whole request, if any.
    pub total: Option<Duration>,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            read: Duration::from_secs(5),
            total: None,
        }
    }
}

/// How much the client's resident memory may grow while the case runs.
#[derive(Clone, Copy, Debug)]
pub struct MemoryBound {
    /// Most growth of the peak (or current) resident set, in bytes.
    pub max_growth: u64,
    /// Why that bound holds.
    pub note: &'static str,
}

/// The one outcome a client must report for a case.
#[derive(Clone, Debug)]
pub enum Expected {
    /// A response with this status, these headers among others (name, exact value),
    /// this exact body and this exact stderr.
    Response {
        /// The HTTP status.
        status: u16,
        /// Headers that must be present with exactly this (first) value.
        headers: Vec<(&'static str, &'static str)>,
        /// The exact body.
        body: Vec<u8>,
        /// The exact stderr.
        stderr: Vec<u8>,
    },
    /// `ClientError::Protocol` with exactly this source.
    Protocol(ProtocolError),
    /// `ClientError::BadResponse` with exactly this source.
    BadResponse(HeadError),
    /// `ClientError::Refused` with exactly this status.
    Refused(ProtocolStatus),
    /// `ClientError::Timeout` in this phase.
    Timeout(Phase),
    /// `ClientError::Io` with this kind of error.
    Io(io::ErrorKind),
}

/// A response as a client received it, for [`Expected::check`].
#[derive(Clone, Copy, Debug)]
pub struct Got<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The response head.
    pub head: &'a fcgi_proto::ResponseHead,
    /// The body.
    pub body: &'a [u8],
    /// The stderr.
    pub stderr: &'a [u8],
}

impl Expected {
    /// `Ok` when `outcome` is exactly the expected one, else what differs. An error
    /// must also name `address` (the server's address as the client prints it).
    pub fn check(
        &self,
        outcome: Result<Got<'_>, &ClientError>,
        address: &str,
    ) -> Result<(), String> {
        let err = match (self, outcome) {
            (
                Expected::Response {
                    status,
                    headers,
                    body,
                    stderr,
                },
                Ok(got),
            ) => {
                if got.status != *status {
                    return Err(format!("status {} (want {status})", got.status));
                }
                for (name, value) in headers {
                    let found = got.head.get(name);
                    if found != Some(value.as_bytes()) {
                        return Err(format!(
                            "header {name}: {:?} (want {value:?})",
                            found.map(String::from_utf8_lossy)
                        ));
                    }
                }
                if got.body != &body[..] {
                    return Err(format!(
                        "body of {} bytes {:?} (want {} bytes {:?})",
                        got.body.len(),
                        preview(got.body),
                        body.len(),
                        preview(body)
                    ));
                }
                if got.stderr != &stderr[..] {
                    return Err(format!(
                        "stderr {:?} (want {:?})",
                        preview(got.stderr),
                        preview(stderr)
                    ));
                }
                return Ok(());
            }
            (_, Ok(got)) => {
                return Err(format!(
                    "a response (status {}, {} bytes of body), want {self:?}",
                    got.status,
                    got.body.len()
                ))
            }
            (_, Err(err)) => err,
        };
        let matches = match (self, err) {
            (Expected::Protocol(want), ClientError::Protocol { source, .. }) => want == source,
            (Expected::BadResponse(want), ClientError::BadResponse { source, .. }) => {
                want == source
            }
            (Expected::Refused(want), ClientError::Refused { status, .. }) => want == status,
            (Expected::Timeout(want), ClientError::Timeout { phase, .. }) => want == phase,
            (Expected::Io(want), ClientError::Io { source, .. }) => *want == source.kind(),
            _ => false,
        };
        if !matches {
            return Err(format!("error {err:?} ({err}), want {self:?}"));
        }
        let text = err.to_string();
        if !text.contains(address) {
            return Err(format!("error {text:?} does not name {address}"));
        }
        Ok(())
    }
}

fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(40)];
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if bytes.len() > shown.len() {
        text.push_str("...");
    }
    text
}

/// A well-behaved server that reads the whole request, to the empty `STDIN` record that
/// ends the body, before it answers 200 with [`BODY`]: what the spec lets any responder
/// do. A client that never ends the body gets its answer only after
/// [`REQUEST_READ_TIMEOUT`].
pub fn reads_the_body_to_its_end() -> Case {
    Case {
        name: "reads_the_body_to_its_end",
        read: ReadRequest::Whole,
        reply: vec![Step::Write(response(&head_and(BODY), 65535))],
        timeouts: ClientTimeouts::default(),
        expected: Expected::Response {
            status: 200,
            headers: vec![("content-type", "text/plain")],
            body: BODY.to_vec(),
            stderr: Vec::new(),
        },
        within: Duration::from_secs(1),
        memory: MemoryBound {
            max_growth: DEFAULT_MEMORY_GROWTH,
            note: "a small reply",
        },
    }
}

/// A named hostile case.
#[derive(Clone, Debug)]
pub struct Case {
    /// A short unique name.
    pub name: &'static str,
    /// What the server reads first.
    pub read: ReadRequest,
    /// The scripted reply.
    pub reply: Vec<Step>,
    /// The timeouts the client uses.
    pub timeouts: ClientTimeouts,
    /// The outcome the client must report.
    pub expected: Expected,
    /// The request must end (with its outcome) within this, connect included.
    pub within: Duration,
    /// How much the client's memory may grow meanwhile.
    pub memory: MemoryBound,
}

impl Case {
    /// How many bytes the whole reply holds.
    pub fn reply_len(&self) -> u64 {
        self.reply
            .iter()
            .map(|step| match step {
                Step::Write(b) | Step::Drip { bytes: b, .. } => b.len() as u64,
                Step::Repeat { bytes, times } => (bytes.len() * times) as u64,
                Step::Pause(_) | Step::Close => 0,
            })
            .sum()
    }
}

// ----- record helpers -----

/// One record: header (version 1), content, `padding` zero bytes.
///
/// # Panics
///
/// When `content` is longer than 65535 bytes.
pub fn record_padded(record_type: RecordType, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("record content fits in 65535 bytes");
    let mut header = RecordHeader::new(record_type, id, len);
    header.padding_length = padding;
    let mut out = Vec::with_capacity(8 + content.len() + usize::from(padding));
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding), 0);
    out
}

/// One record without padding.
pub fn record(record_type: RecordType, id: u16, content: &[u8]) -> Vec<u8> {
    record_padded(record_type, id, content, 0)
}

/// A `STDOUT` record of request [`REQUEST_ID`].
pub fn stdout(content: &[u8]) -> Vec<u8> {
    record(RecordType::STDOUT, REQUEST_ID, content)
}

/// A `STDERR` record of request [`REQUEST_ID`].
pub fn stderr(content: &[u8]) -> Vec<u8> {
    record(RecordType::STDERR, REQUEST_ID, content)
}

/// The 8-byte content of an `END_REQUEST`.
pub fn end_request_body(app_status: u32, protocol_status: ProtocolStatus) -> [u8; 8] {
    let a = app_status.to_be_bytes();
    [a[0], a[1], a[2], a[3], protocol_status.0, 0, 0, 0]
}

/// An `END_REQUEST` of request [`REQUEST_ID`].
pub fn end_request(app_status: u32, protocol_status: ProtocolStatus) -> Vec<u8> {
    record(
        RecordType::END_REQUEST,
        REQUEST_ID,
        &end_request_body(app_status, protocol_status),
    )
}

/// `STDOUT` records carrying `bytes`, at most `size` bytes each, then the empty `STDOUT`
/// and an `END_REQUEST` (`REQUEST_COMPLETE`).
pub fn response(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in bytes.chunks(size.max(1)) {
        out.extend(stdout(chunk));
    }
    out.extend(stdout(b""));
    out.extend(end_request(0, ProtocolStatus::REQUEST_COMPLETE));
    out
}

/// The valid response most cases build on: its head.
pub const HEAD: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n";

/// The body after [`HEAD`].
pub const BODY: &[u8] = b"hello, hostile world";

fn ok_response(body: Vec<u8>, stderr: Vec<u8>) -> Expected {
    Expected::Response {
        status: 200,
        headers: vec![("content-type", "text/plain")],
        body,
        stderr,
    }
}

fn head_and(rest: &[u8]) -> Vec<u8> {
    let mut all = HEAD.to_vec();
    all.extend_from_slice(rest);
    all
}

// ----- the cases -----

/// Every hostile case.
pub fn cases() -> Vec<Case> {
    let quick = Duration::from_secs(2);
    let small = MemoryBound {
        max_growth: DEFAULT_MEMORY_GROWTH,
        note: "a small reply: one 64 KiB input buffer and a short response",
    };
    let case = |name, reply: Vec<Step>, expected| Case {
        name,
        read: ReadRequest::Whole,
        reply,
        timeouts: ClientTimeouts::default(),
        expected,
        within: quick,
        memory: small,
    };
    let protocol = Expected::Protocol;
    let bad_head = |head: &[u8], error| {
        let reply = vec![Step::Write(response(head, 65535))];
        (reply, Expected::BadResponse(error))
    };
    let refused = |status: ProtocolStatus| {
        (
            vec![Step::Write(end_request(0, status))],
            Expected::Refused(status),
        )
    };
    let valid = response(&head_and(BODY), 65535);

    let mut list = Vec::new();

    // Framing.
    let mut bad_version = stdout(&head_and(BODY));
    bad_version[0] = 2;
    list.push(case(
        "bad_version",
        vec![Step::Write(bad_version)],
        protocol(ProtocolError::BadVersion(2)),
    ));
    list.push(case(
        "header_cut_short_then_close",
        vec![
            Step::Write(stdout(HEAD)[..5].to_vec()),
            Step::Pause(ms(50)),
            Step::Close,
        ],
        protocol(ProtocolError::EofInRecord),
    ));
    let cut = stdout(&head_and(BODY));
    list.push(case(
        "content_cut_short_then_close",
        vec![
            Step::Write(cut[..cut.len() - 5].to_vec()),
            Step::Pause(ms(50)),
            Step::Close,
        ],
        protocol(ProtocolError::EofInRecord),
    ));
    let mut short_end = stdout(&head_and(BODY));
    short_end.extend(record(
        RecordType::END_REQUEST,
        REQUEST_ID,
        &end_request_body(0, ProtocolStatus::REQUEST_COMPLETE)[..5],
    ));
    list.push(case(
        "end_request_too_short",
        vec![Step::Write(short_end)],
        protocol(ProtocolError::BadEndRequestLength(5)),
    ));
    list.push(case(
        "unknown_record_type",
        vec![Step::Write(record(RecordType(42), REQUEST_ID, b"what"))],
        protocol(ProtocolError::UnexpectedRecordType {
            record_type: RecordType(42),
            request_id: REQUEST_ID,
        }),
    ));
    list.push(case(
        "record_for_another_request_id",
        vec![Step::Write(record(RecordType::STDOUT, 2, &head_and(BODY)))],
        protocol(ProtocolError::UnknownRequest {
            record_type: RecordType::STDOUT,
            request_id: 2,
        }),
    ));
    // END_REQUEST then STDOUT of the same request in one write: the client reads both at
    // once. The request was over at END_REQUEST: its response is delivered whole, and
    // the connection, broken by the stray record, is closed rather than reused (the
    // scenario `a_record_after_end_request_spares_the_response` checks that part).
    let mut late = valid.clone();
    late.extend(stdout(b"late"));
    list.push(case(
        "stdout_after_end_request",
        vec![Step::Write(late)],
        ok_response(BODY.to_vec(), Vec::new()),
    ));
    list.push(case(
        "get_values_result_mid_request",
        vec![
            Step::Write(stdout(b"Status: 200 OK\r\n")),
            Step::Write(record(
                RecordType::GET_VALUES_RESULT,
                0,
                b"\x0f\x01FCGI_MPXS_CONNS1",
            )),
        ],
        protocol(ProtocolError::UnsolicitedValues),
    ));
    list.push(case(
        "close_after_reading_request",
        vec![Step::Close],
        protocol(ProtocolError::EofInRequest { in_flight: 1 }),
    ));
    // Closing a unix socket with unread input makes the peer's next read fail with
    // ECONNRESET (Linux), before it could see an end of file.
    list.push(Case {
        read: ReadRequest::OneByte,
        ..case(
            "close_right_after_accept",
            vec![Step::Close],
            Expected::Io(io::ErrorKind::ConnectionReset),
        )
    });

    // A head that never ends: 32 MiB of header lines in 8 KiB records, then END_REQUEST.
    let mut line = b"X-Flood: ".to_vec();
    line.resize(8190, b'x');
    line.extend_from_slice(b"\r\n");
    let mut flood = vec![Step::Write(stdout(b"Status: 200 OK\r\n"))];
    flood.push(Step::Repeat {
        bytes: stdout(&line),
        times: 4096,
    });
    flood.push(Step::Write(end_request(
        0,
        ProtocolStatus::REQUEST_COMPLETE,
    )));
    list.push(Case {
        within: Duration::from_secs(10),
        memory: MemoryBound {
            max_growth: 8 * 1024 * 1024,
            note: "32 MiB of head sent: the core stops at max_head_bytes (64 KiB) and \
                   discards the rest while it reads to END_REQUEST",
        },
        ..case(
            "head_never_ends",
            flood,
            Expected::BadResponse(HeadError::TooLarge { limit: 64 * 1024 }),
        )
    });

    // Valid but awkward framing.
    let many_body: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut many = stdout(HEAD);
    for byte in &many_body {
        many.extend(stdout(std::slice::from_ref(byte)));
    }
    many.extend(stdout(b""));
    many.extend(end_request(0, ProtocolStatus::REQUEST_COMPLETE));
    list.push(Case {
        within: Duration::from_secs(5),
        ..case(
            "ten_thousand_one_byte_records",
            vec![Step::Write(many)],
            ok_response(many_body, Vec::new()),
        )
    });
    let mut split = Vec::new();
    let mut split_stderr = Vec::new();
    for (i, byte) in HEAD.iter().enumerate() {
        split.extend(stdout(std::slice::from_ref(byte)));
        let err = [b'0' + (i % 10) as u8];
        split.extend(stderr(&err));
        split_stderr.push(err[0]);
    }
    split.extend(response(BODY, 65535));
    list.push(case(
        "head_byte_by_byte_with_stderr_between",
        vec![Step::Write(split)],
        ok_response(BODY.to_vec(), split_stderr),
    ));
    let mut padded = Vec::new();
    padded.extend(record_padded(RecordType::STDERR, REQUEST_ID, b"warn", 255));
    padded.extend(record_padded(RecordType::STDOUT, REQUEST_ID, HEAD, 255));
    padded.extend(record_padded(RecordType::STDOUT, REQUEST_ID, BODY, 255));
    padded.extend(record_padded(RecordType::STDOUT, REQUEST_ID, b"", 255));
    padded.extend(record_padded(RecordType::STDERR, REQUEST_ID, b"", 255));
    padded.extend(record_padded(
        RecordType::END_REQUEST,
        REQUEST_ID,
        &end_request_body(0, ProtocolStatus::REQUEST_COMPLETE),
        255,
    ));
    list.push(case(
        "padding_255_on_every_record",
        vec![Step::Write(padded)],
        ok_response(BODY.to_vec(), b"warn".to_vec()),
    ));

    // Protocol statuses.
    for (name, status) in [
        ("status_cant_mpx_conn", ProtocolStatus::CANT_MPX_CONN),
        ("status_overloaded", ProtocolStatus::OVERLOADED),
        ("status_unknown_role", ProtocolStatus::UNKNOWN_ROLE),
    ] {
        let (reply, expected) = refused(status);
        list.push(case(name, reply, expected));
    }
    list.push(case(
        "request_complete_without_output",
        vec![Step::Write(end_request(
            0,
            ProtocolStatus::REQUEST_COMPLETE,
        ))],
        Expected::BadResponse(HeadError::Incomplete),
    ));

    // Bad CGI heads.
    let heads: [(&str, &[u8], HeadError); 5] = [
        (
            "status_not_a_number",
            b"Status: abc\r\n\r\nbody",
            HeadError::InvalidStatus,
        ),
        (
            "status_two_digits",
            b"Status: 20\r\n\r\nbody",
            HeadError::InvalidStatus,
        ),
        (
            "header_line_without_colon",
            b"Content-Type text/plain\r\n\r\nbody",
            HeadError::MissingColon { line: 1 },
        ),
        (
            "nul_in_header_name",
            b"X-Bad\0Name: 1\r\n\r\nbody",
            HeadError::InvalidName { line: 1 },
        ),
        (
            "duplicate_content_length",
            b"Content-Length: 4\r\nContent-Length: 4\r\n\r\nbody",
            HeadError::DuplicateContentLength,
        ),
    ];
    for (name, head, error) in heads {
        let (reply, expected) = bad_head(head, error);
        list.push(case(name, reply, expected));
    }

    // Slow servers: the first 10 bytes one every 200 ms (2 s), then the rest.
    let drip = |read: Duration, total: Option<Duration>| {
        let all = response(&head_and(BODY), 65535);
        let reply = vec![
            Step::Drip {
                bytes: all[..10].to_vec(),
                every: ms(200),
            },
            Step::Write(all[10..].to_vec()),
        ];
        (reply, ClientTimeouts { read, total })
    };
    let (reply, timeouts) = drip(Duration::from_secs(1), None);
    list.push(Case {
        timeouts,
        within: Duration::from_secs(5),
        ..case(
            "slow_drip_within_read_timeout",
            reply,
            ok_response(BODY.to_vec(), Vec::new()),
        )
    });
    let (reply, timeouts) = drip(Duration::from_secs(1), Some(Duration::from_secs(1)));
    list.push(Case {
        timeouts,
        within: Duration::from_millis(1900),
        ..case(
            "slow_drip_past_total_timeout",
            reply,
            Expected::Timeout(Phase::Read),
        )
    });

    // 1 MiB of garbage: an HTTP server's answer, over and over.
    let garbage = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
    let times = (1024 * 1024) / garbage.len() + 1;
    list.push(Case {
        memory: MemoryBound {
            max_growth: 1024 * 1024,
            note: "1 MiB of garbage sent: the core rejects the first record header \
                   (8 bytes) and the client closes; it holds at most one 64 KiB read",
        },
        ..case(
            "garbage_1_mib",
            vec![Step::Repeat {
                bytes: garbage,
                times,
            }],
            protocol(ProtocolError::BadVersion(b'H')),
        )
    });

    list
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ----- the server -----

/// A hostile server for one case, listening on a fresh unix socket in its own
/// temporary directory (removed on drop).
#[derive(Debug)]
pub struct Hostile {
    dir: PathBuf,
    socket: PathBuf,
    thread: Option<JoinHandle<Served>>,
}

/// What the server did, from [`Hostile::join`].
#[derive(Debug)]
pub struct Served {
    /// Bytes of the reply written.
    pub written: u64,
    /// The error that ended the script early, if any: a write to a client that closed
    /// fails, which is expected when the client gives up on a reply.
    pub error: Option<io::Error>,
}

impl Hostile {
    /// Binds the socket and starts the thread that serves one connection with the case's
    /// reply.
    ///
    /// # Panics
    ///
    /// When the socket cannot be bound.
    pub fn start(case: &Case) -> Hostile {
        let dir = crate::make_temp_dir();
        let socket = dir.join("hostile.sock");
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", socket.display()));
        let read = case.read;
        let reply = case.reply.clone();
        let thread = std::thread::Builder::new()
            .name(format!("hostile-{}", case.name))
            .spawn(move || {
                let mut written = 0;
                let error = serve(listener, read, &reply, &mut written).err();
                Served { written, error }
            })
            .expect("spawn the hostile server thread");
        Hostile {
            dir,
            socket,
            thread: Some(thread),
        }
    }

    /// The unix socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits for the server thread to finish its script (drop the client first: a
    /// write the client does not read waits up to 5 s).
    pub fn join(mut self) -> Served {
        let thread = self.thread.take().expect("joined once");
        thread.join().expect("the hostile server thread panicked")
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if let Some(thread) = &self.thread {
            if !thread.is_finished() {
                // Wake an accept that nobody answered; the script ends on its own.
                let _ = UnixStream::connect(&self.socket);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn serve(
    listener: UnixListener,
    read: ReadRequest,
    reply: &[Step],
    written: &mut u64,
) -> io::Result<()> {
    let (mut stream, _) = listener.accept()?;
    drop(listener);
    stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT))?;
    stream.set_write_timeout(Some(SERVER_WRITE_TIMEOUT))?;
    match read {
        ReadRequest::OneByte => {
            let mut one = [0u8; 1];
            stream.read_exact(&mut one)?;
        }
        ReadRequest::Whole => read_request(&mut stream),
    }
    for step in reply {
        match step {
            Step::Write(bytes) => {
                stream.write_all(bytes)?;
                *written += bytes.len() as u64;
            }
            Step::Repeat { bytes, times } => {
                for _ in 0..*times {
                    stream.write_all(bytes)?;
                    *written += bytes.len() as u64;
                }
            }
            Step::Drip { bytes, every } => {
                for byte in bytes {
                    std::thread::sleep(*every);
                    stream.write_all(std::slice::from_ref(byte))?;
                    *written += 1;
                }
            }
            Step::Pause(d) => std::thread::sleep(*d),
            Step::Close => {
                drop(stream);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads records until the empty `STDIN` record, the end of input, an error or the
/// read timeout.
fn read_request(stream: &mut UnixStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut at = 0;
    loop {
        while buf.len() >= at + 8 {
            let header = &buf[at..at + 8];
            let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let total = 8 + len + usize::from(header[6]);
            if buf.len() < at + total {
                break;
            }
            if header[1] == RecordType::STDIN.0 && len == 0 {
                return;
            }
            at += total;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ----- memory -----

/// The process's resident memory now (`VmRSS`), in bytes.
pub fn resident_bytes() -> u64 {
    status_field("VmRSS:").unwrap_or(0)
}

/// Resets the process's peak resident memory (`VmHWM`), where the kernel allows it.
/// Answers whether it did.
pub fn reset_peak_resident() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_resident_bytes() -> u64 {
    status_field("VmHWM:").unwrap_or(0)
}

fn status_field(name: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
