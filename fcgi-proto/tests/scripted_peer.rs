//! Full exchanges through `fcgi_proto::Connection` against a scripted FastCGI server.
//!
//! The server side lives in this file: it decodes what the client sent with
//! `RecordDecoder` and `decode_pairs` and checks the exact records, and it builds its
//! replies as raw bytes (any padding, garbage in reserved bytes). Every reply is fed
//! whole, one byte at a time through `receive`, and through `input_buffer` /
//! `input_written` in pieces of several sizes; each way must give the same events.

use std::collections::BTreeMap;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use fcgi_proto::nv::{decode_pairs, encode_pair};
use fcgi_proto::record::{RecordDecoder, RecordType, HEADER_LEN, MAX_CONTENT_LEN};
use fcgi_proto::{
    Config, Connection, Error, Event, HeadError, Limit, LimitExceeded, NvError, Params,
    ParamsBuilder, ProtocolError, ProtocolStatus, RequestId, Role, UsageError,
};

// ---------------------------------------------------------------------------------------
// What the client sent, decoded and checked on the server side.
// ---------------------------------------------------------------------------------------

/// One whole record as the server read it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    ty: RecordType,
    id: u16,
    content: Vec<u8>,
}

/// Takes everything the connection queued through `transmit` / `consume_transmit`
/// (checking it agrees with `transmit_chunks` and `transmit_len`).
fn take_output(conn: &mut Connection) -> Vec<u8> {
    let expected: Vec<u8> = conn.transmit_chunks().flatten().copied().collect();
    assert_eq!(expected.len(), conn.transmit_len());
    let mut out = Vec::new();
    while conn.transmit_len() > 0 {
        let mut slices = [IoSlice::new(&[]); 3];
        let n = conn.transmit(&mut slices);
        assert!(n > 0, "bytes queued but no slice given");
        let mut written = 0;
        for s in &slices[..n] {
            assert!(!s.is_empty(), "empty slice handed out");
            out.extend_from_slice(s);
            written += s.len();
        }
        conn.consume_transmit(written);
    }
    assert_eq!(out, expected);
    let mut none = [IoSlice::new(&[]); 2];
    assert_eq!(conn.transmit(&mut none), 0);
    out
}

/// Decodes the client's bytes into whole records. Every client record has version 1
/// and a zero reserved byte; only GET_VALUES is padded (with zeros, up to a multiple of
/// 8, at least one byte); the bytes end on a record boundary.
fn decode_records(wire: &[u8]) -> Vec<Rec> {
    // The raw framing, walked by hand.
    let mut off = 0;
    while off < wire.len() {
        let h = &wire[off..off + HEADER_LEN];
        assert_eq!(h[0], 1, "version at offset {off}");
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let padding = usize::from(h[6]);
        if h[1] == RecordType::GET_VALUES.0 {
            assert_eq!(padding, 8 - len % 8, "GET_VALUES padding");
            let pad = &wire[off + HEADER_LEN + len..][..padding];
            assert!(pad.iter().all(|&b| b == 0), "padding bytes");
        } else {
            assert_eq!(padding, 0, "only GET_VALUES is padded");
        }
        assert_eq!(h[7], 0, "reserved byte");
        off += HEADER_LEN + len + padding;
    }
    assert_eq!(off, wire.len(), "output ends inside a record");

    let mut decoder = RecordDecoder::new();
    let mut buf = BytesMut::from(wire);
    let mut out: Vec<Rec> = Vec::new();
    let mut open = false;
    while let Some(f) = decoder.decode(&mut buf).unwrap() {
        if open {
            let last = out.last_mut().unwrap();
            assert_eq!(
                (last.ty, last.id),
                (f.header.record_type, f.header.request_id)
            );
            last.content.extend_from_slice(&f.data);
        } else {
            out.push(Rec {
                ty: f.header.record_type,
                id: f.header.request_id,
                content: f.data.to_vec(),
            });
        }
        open = !f.last;
    }
    assert!(!open && buf.is_empty() && decoder.is_at_boundary());
    out
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn pairs_of(params: &Params) -> Pairs {
    params
        .iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

/// One request as the server saw it.
#[derive(Debug, Default)]
struct Sent {
    role: u16,
    keep_conn: bool,
    params: Pairs,
    /// Content sizes of the non-empty PARAMS records.
    params_records: Vec<usize>,
    params_finished: bool,
    stdin: Vec<u8>,
    stdin_records: Vec<usize>,
    stdin_finished: bool,
    data: Vec<u8>,
    data_finished: bool,
    aborted: bool,
}

/// Checks the records of every request id: `BEGIN_REQUEST` first (role, flags, zero
/// reserved bytes); `PARAMS` records that each hold whole pairs and at most 65535 bytes,
/// then one empty `PARAMS`; then `STDIN` (and `DATA`) records, each stream ended at
/// most once by an empty record and never continued after it; `ABORT_REQUEST` empty.
/// Management records (id 0) are returned apart.
fn parse_requests(records: &[Rec]) -> (BTreeMap<u16, Sent>, Vec<Rec>) {
    let mut requests: BTreeMap<u16, Sent> = BTreeMap::new();
    let mut management = Vec::new();
    for r in records {
        if r.id == 0 {
            management.push(r.clone());
            continue;
        }
        if r.ty == RecordType::BEGIN_REQUEST {
            assert!(
                !requests.contains_key(&r.id),
                "second BEGIN_REQUEST {}",
                r.id
            );
            assert_eq!(r.content.len(), 8);
            assert_eq!(&r.content[3..], &[0; 5], "BEGIN_REQUEST reserved bytes");
            assert_eq!(r.content[2] & !1, 0, "unknown BEGIN_REQUEST flags");
            requests.insert(
                r.id,
                Sent {
                    role: u16::from_be_bytes([r.content[0], r.content[1]]),
                    keep_conn: r.content[2] == 1,
                    ..Sent::default()
                },
            );
            continue;
        }
        let req = requests
            .get_mut(&r.id)
            .unwrap_or_else(|| panic!("{} before BEGIN_REQUEST for {}", r.ty, r.id));
        match r.ty {
            RecordType::PARAMS => {
                assert!(!req.params_finished, "PARAMS after its end");
                if r.content.is_empty() {
                    req.params_finished = true;
                    continue;
                }
                assert!(r.content.len() <= MAX_CONTENT_LEN);
                req.params_records.push(r.content.len());
                // php-fpm parses each record alone: it must hold whole pairs only.
                for pair in decode_pairs(&r.content) {
                    let (n, v) = pair.expect("a PARAMS record splits a pair");
                    req.params.push((n.to_vec(), v.to_vec()));
                }
            }
            RecordType::STDIN => {
                assert!(req.params_finished, "STDIN before the end of PARAMS");
                assert!(!req.stdin_finished, "STDIN after its end");
                if r.content.is_empty() {
                    req.stdin_finished = true;
                } else {
                    req.stdin_records.push(r.content.len());
                    req.stdin.extend_from_slice(&r.content);
                }
            }
            RecordType::DATA => {
                assert!(req.params_finished, "DATA before the end of PARAMS");
                assert!(!req.data_finished, "DATA after its end");
                if r.content.is_empty() {
                    req.data_finished = true;
                } else {
                    req.data.extend_from_slice(&r.content);
                }
            }
            RecordType::ABORT_REQUEST => {
                assert!(r.content.is_empty());
                assert!(!req.aborted, "second ABORT_REQUEST");
                req.aborted = true;
            }
            other => panic!("client sent {other}"),
        }
    }
    (requests, management)
}

/// Takes the client's output and checks it holds exactly one whole request, `id`, with
/// these params, keep-alive and body; returns what the server saw.
fn expect_one_request(conn: &mut Connection, id: RequestId, params: &Params, body: &[u8]) -> Sent {
    let (mut requests, management) = parse_requests(&decode_records(&take_output(conn)));
    assert!(management.is_empty());
    assert_eq!(requests.keys().copied().collect::<Vec<_>>(), [id.get()]);
    let sent = requests.remove(&id.get()).unwrap();
    assert_eq!(sent.role, 1);
    assert_eq!(sent.keep_conn, conn.config().keep_conn);
    assert!(sent.params_finished);
    assert_eq!(sent.params, pairs_of(params));
    assert_eq!(sent.stdin, body);
    assert!(sent.stdin_finished);
    assert!(!sent.aborted);
    sent
}

// ---------------------------------------------------------------------------------------
// What the server answers, built as bytes.
// ---------------------------------------------------------------------------------------

const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const END_REQUEST: u8 = 3;

/// Server output as raw bytes. Each record gets a different padding (0 to 255) and a
/// garbage reserved byte, as php-fpm sends.
#[derive(Clone, Default)]
struct Reply {
    bytes: Vec<u8>,
    records: usize,
}

impl Reply {
    fn new() -> Self {
        Self::default()
    }

    fn record_padded(mut self, ty: u8, id: u16, content: &[u8], padding: u8) -> Self {
        let len = u16::try_from(content.len()).unwrap();
        let id = id.to_be_bytes();
        let len = len.to_be_bytes();
        self.bytes
            .extend_from_slice(&[1, ty, id[0], id[1], len[0], len[1], padding, 0xA7]);
        self.bytes.extend_from_slice(content);
        self.bytes
            .resize(self.bytes.len() + usize::from(padding), 0x5C);
        self.records += 1;
        self
    }

    fn record(self, ty: u8, id: u16, content: &[u8]) -> Self {
        const PADDINGS: [u8; 6] = [0, 3, 255, 1, 7, 0];
        let padding = PADDINGS[self.records % PADDINGS.len()];
        self.record_padded(ty, id, content, padding)
    }

    fn stdout(self, id: u16, content: &[u8]) -> Self {
        self.record(STDOUT, id, content)
    }

    fn stderr(self, id: u16, content: &[u8]) -> Self {
        self.record(STDERR, id, content)
    }

    fn end(self, id: u16, app_status: u32, status: ProtocolStatus) -> Self {
        let a = app_status.to_be_bytes();
        // php-fpm leaves garbage in the reserved bytes.
        let body = [a[0], a[1], a[2], a[3], status.0, 0xDE, 0xAD, 0xBE];
        self.record(END_REQUEST, id, &body)
    }

    fn values(self, pairs: &[(&[u8], &[u8])]) -> Self {
        let mut content = Vec::new();
        for (n, v) in pairs {
            encode_pair(&mut content, n, v).unwrap();
        }
        self.record(10, 0, &content)
    }

    fn unknown_type(self, ty: u8) -> Self {
        self.record(11, 0, &[ty, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    }

    fn raw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }
}

// ---------------------------------------------------------------------------------------
// Events, in a form a test can write down whole.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Head {
        id: u16,
        status: u16,
        reason: Option<String>,
        headers: Vec<(String, String)>,
    },
    Body(u16, Vec<u8>),
    Stderr(u16, Vec<u8>),
    HeadError(u16, HeadError),
    End {
        id: u16,
        app_status: u32,
        status: ProtocolStatus,
        stderr_dropped: u64,
    },
    Values(Pairs),
    UnknownType(u8),
}

fn head(id: u16, status: u16, headers: &[(&str, &str)]) -> Ev {
    Ev::Head {
        id,
        status,
        reason: None,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn head_reason(id: u16, status: u16, reason: &str, headers: &[(&str, &str)]) -> Ev {
    match head(id, status, headers) {
        Ev::Head {
            id,
            status,
            headers,
            ..
        } => Ev::Head {
            id,
            status,
            reason: Some(reason.to_string()),
            headers,
        },
        _ => unreachable!(),
    }
}

fn body(id: u16, data: &[u8]) -> Ev {
    Ev::Body(id, data.to_vec())
}

fn stderr(id: u16, data: &[u8]) -> Ev {
    Ev::Stderr(id, data.to_vec())
}

fn end(id: u16, app_status: u32, status: ProtocolStatus) -> Ev {
    end_dropped(id, app_status, status, 0)
}

fn end_dropped(id: u16, app_status: u32, status: ProtocolStatus, stderr_dropped: u64) -> Ev {
    Ev::End {
        id,
        app_status,
        status,
        stderr_dropped,
    }
}

fn convert(event: Event) -> Ev {
    match event {
        Event::Head { id, head } => Ev::Head {
            id: id.get(),
            status: head.status(),
            reason: head.reason().map(str::to_string),
            headers: head
                .headers()
                .map(|h| {
                    (
                        h.name().to_string(),
                        String::from_utf8(h.value().to_vec()).unwrap(),
                    )
                })
                .collect(),
        },
        Event::Body { id, data } => {
            assert!(!data.is_empty(), "empty Body event");
            Ev::Body(id.get(), data.to_vec())
        }
        Event::Stderr { id, data } => {
            assert!(!data.is_empty(), "empty Stderr event");
            Ev::Stderr(id.get(), data.to_vec())
        }
        Event::HeadError { id, error } => Ev::HeadError(id.get(), error),
        Event::End { id, end } => Ev::End {
            id: id.get(),
            app_status: end.app_status,
            status: end.protocol_status,
            stderr_dropped: end.stderr_dropped,
        },
        Event::Values(values) => Ev::Values(
            values
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        ),
        Event::UnknownType(t) => Ev::UnknownType(t.0),
        other => panic!("unexpected event {other:?}"),
    }
}

/// Joins neighbouring `Body` (or `Stderr`) events of one request: how a stream is cut
/// into events depends on how the input was cut, the bytes in order do not.
fn normalize(events: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for e in events {
        match (out.last_mut(), &e) {
            (Some(Ev::Body(a, acc)), Ev::Body(b, more)) if a == b => acc.extend_from_slice(more),
            (Some(Ev::Stderr(a, acc)), Ev::Stderr(b, more)) if a == b => {
                acc.extend_from_slice(more)
            }
            _ => out.push(e),
        }
    }
    out
}

fn drain(conn: &mut Connection, into: &mut Vec<Ev>) {
    while let Some(e) = conn.poll_event() {
        into.push(convert(e));
    }
}

// ---------------------------------------------------------------------------------------
// Feeding.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// One `receive` of everything.
    Whole,
    /// `receive` one byte at a time.
    Bytewise,
    /// `input_buffer` / `input_written`, at most this many bytes per read.
    Buffer(usize),
}

const MODES: [Mode; 7] = [
    Mode::Whole,
    Mode::Bytewise,
    Mode::Buffer(1),
    Mode::Buffer(7),
    Mode::Buffer(8),
    Mode::Buffer(1000),
    Mode::Buffer(usize::MAX),
];

/// Feeds `input`, draining events after every piece (the drain rule); stops at the first
/// error, then drains what was queued before it. Returns the events (normalized).
fn feed_result(conn: &mut Connection, input: &[u8], mode: Mode) -> (Vec<Ev>, Result<(), Error>) {
    let mut events = Vec::new();
    let result = (|| -> Result<(), Error> {
        match mode {
            Mode::Whole => conn.receive(input)?,
            Mode::Bytewise => {
                for b in input {
                    conn.receive(std::slice::from_ref(b))?;
                    drain(conn, &mut events);
                }
            }
            Mode::Buffer(max) => {
                let mut rest = input;
                while !rest.is_empty() {
                    let room = conn.input_buffer();
                    assert!(room.len() >= 8 * 1024, "input_buffer below 8 KiB");
                    let n = room.len().min(max).min(rest.len());
                    room[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    conn.input_written(n)?;
                    drain(conn, &mut events);
                }
            }
        }
        Ok(())
    })();
    drain(conn, &mut events);
    (normalize(events), result)
}

fn feed(conn: &mut Connection, input: &Reply, mode: Mode) -> Vec<Ev> {
    let (events, result) = feed_result(conn, &input.bytes, mode);
    if let Err(e) = result {
        panic!("{mode:?}: {e} after events {events:?}");
    }
    events
}

// ---------------------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------------------

fn params_for(script: &str, content_length: Option<u64>) -> Params {
    let mut b = ParamsBuilder::new("GET", script).script(script, "/srv/www/x.php");
    if let Some(n) = content_length {
        b = b.content_length(n);
    }
    b.build().unwrap()
}

/// Starts a request with this body (and the matching `CONTENT_LENGTH`) and finishes it.
fn start(conn: &mut Connection, script: &str, body: &[u8]) -> (RequestId, Params) {
    let params = params_for(script, (!body.is_empty()).then_some(body.len() as u64));
    let id = conn.start_request(&params).unwrap();
    if !body.is_empty() {
        conn.send_stdin(id, Bytes::copy_from_slice(body)).unwrap();
    }
    conn.finish_stdin(id).unwrap();
    (id, params)
}

fn config_mpx(max: u16) -> Config {
    let mut c = Config::default();
    c.max_concurrent_requests = max;
    c
}

const COMPLETE: ProtocolStatus = ProtocolStatus::REQUEST_COMPLETE;

// ---------------------------------------------------------------------------------------
// The exact bytes of a request.
// ---------------------------------------------------------------------------------------

#[test]
fn request_bytes_are_exact() {
    let mut params = Params::new();
    params.insert("SCRIPT_FILENAME", "/s.php").unwrap();
    params.insert("REQUEST_METHOD", "POST").unwrap();
    params.insert("CONTENT_LENGTH", "3").unwrap();
    let mut conn = Connection::default();
    let id = conn.start_request(&params).unwrap();
    assert_eq!(id.get(), 1);
    conn.send_stdin(id, Bytes::from_static(b"abc")).unwrap();
    conn.finish_stdin(id).unwrap();
    let expected: Vec<u8> = [
        &[1, 1, 0, 1, 0, 8, 0, 0][..],
        &[0, 1, 1, 0, 0, 0, 0, 0], // RESPONDER, KEEP_CONN
        &[1, 4, 0, 1, 0, 60, 0, 0],
        b"\x0f\x06SCRIPT_FILENAME/s.php",
        b"\x0e\x04REQUEST_METHODPOST",
        b"\x0e\x01CONTENT_LENGTH3",
        &[1, 4, 0, 1, 0, 0, 0, 0],
        &[1, 5, 0, 1, 0, 3, 0, 0],
        b"abc",
        &[1, 5, 0, 1, 0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(take_output(&mut conn), expected);
}

#[test]
fn roles_keep_conn_flag_and_data_stream() {
    // Without keep-alive the flag is 0 and the connection is not reusable afterwards.
    let mut config = Config::default();
    config.keep_conn = false;
    let mut conn = Connection::new(config);
    start(&mut conn, "/a.php", b"");
    let out = take_output(&mut conn);
    assert_eq!(
        &out[..16],
        &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    let events = feed(
        &mut conn,
        &Reply::new().stdout(1, b"\nok").end(1, 0, COMPLETE),
        Mode::Whole,
    );
    assert_eq!(
        events,
        [head(1, 200, &[]), body(1, b"ok"), end(1, 0, COMPLETE)]
    );
    assert_eq!(conn.in_flight(), 0);
    assert!(!conn.is_reusable());

    // FILTER with a DATA stream; AUTHORIZER.
    let mut conn = Connection::default();
    let params = params_for("/f.php", None);
    let id = conn.start_request_as(Role::FILTER, &params).unwrap();
    conn.send_data(id, Bytes::from_static(b"file data"))
        .unwrap();
    conn.finish_data(id).unwrap();
    assert_eq!(
        conn.send_data(id, Bytes::from_static(b"x")),
        Err(Error::Usage(UsageError::BodyFinished(id)))
    );
    assert_eq!(
        conn.finish_data(id),
        Err(Error::Usage(UsageError::BodyFinished(id)))
    );
    conn.finish_stdin(id).unwrap();
    let (requests, _) = parse_requests(&decode_records(&take_output(&mut conn)));
    let sent = &requests[&1];
    assert_eq!(sent.role, 3);
    assert_eq!(sent.data, b"file data");
    assert!(sent.data_finished && sent.stdin_finished && sent.stdin.is_empty());

    let mut conn = Connection::default();
    conn.start_request_as(Role::AUTHORIZER, &params).unwrap();
    let (requests, _) = parse_requests(&decode_records(&take_output(&mut conn)));
    assert_eq!(requests[&1].role, 2);
    assert!(requests[&1].keep_conn);
}

// ---------------------------------------------------------------------------------------
// Keep-alive, multiplexing, abort.
// ---------------------------------------------------------------------------------------

#[test]
fn keep_alive_reuses_the_connection_with_the_next_request_id() {
    for mode in MODES {
        let mut conn = Connection::default();
        assert!(conn.is_reusable() && conn.can_start_request());

        // First request: a POST body; php-fpm style answer (STDERR first, no empty
        // STDOUT before END_REQUEST).
        let (id, params) = start(&mut conn, "/first.php", b"name=value");
        assert_eq!(id.get(), 1);
        expect_one_request(&mut conn, id, &params, b"name=value");
        assert!(!conn.is_reusable() && !conn.can_start_request());
        assert_eq!(conn.in_flight(), 1);
        assert_eq!(
            conn.start_request(&params),
            Err(Error::Usage(UsageError::Busy))
        );
        let reply = Reply::new()
            .stderr(1, b"PHP message: notice")
            .stdout(
                1,
                b"X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHel",
            )
            .stdout(1, b"lo")
            .end(1, 0, COMPLETE);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [
                stderr(1, b"PHP message: notice"),
                head(
                    1,
                    200,
                    &[
                        ("X-Powered-By", "PHP/8.2"),
                        ("Content-type", "text/html; charset=UTF-8")
                    ]
                ),
                body(1, b"Hello"),
                end(1, 0, COMPLETE),
            ],
            "{mode:?}"
        );
        assert!(conn.is_reusable() && conn.can_start_request(), "{mode:?}");
        assert_eq!(conn.in_flight(), 0);

        // Second request on the same connection: the next id, never the ended one's.
        let (id2, params2) = start(&mut conn, "/second.php", b"");
        assert_eq!(id2.get(), 2);
        let n = id2.get();
        expect_one_request(&mut conn, id2, &params2, b"");
        let reply = Reply::new()
            .stdout(
                n,
                b"Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nFile not found.\n",
            )
            .stdout(n, b"")
            .stderr(n, b"")
            .end(n, 3, COMPLETE);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [
                head_reason(n, 404, "Not Found", &[("Content-type", "text/html")]),
                body(n, b"File not found.\n"),
                end(n, 3, COMPLETE),
            ],
            "{mode:?}"
        );
        assert!(conn.is_reusable());
        // A clean close between requests is fine.
        conn.receive_eof().unwrap();
        assert!(conn.is_closed() && !conn.is_reusable() && !conn.can_start_request());
        assert_eq!(conn.error(), None);
        assert_eq!(
            conn.start_request(&params),
            Err(Error::Usage(UsageError::Closed))
        );
        assert_eq!(conn.receive(b"x"), Err(Error::Usage(UsageError::Closed)));
        assert_eq!(conn.transmit_len(), 0);
    }
}

fn multiplexed(mode: Mode, via_setter: bool) {
    let mut conn = if via_setter {
        let mut conn = Connection::default();
        assert_eq!(conn.max_concurrent_requests(), 1);
        conn.set_max_concurrent_requests(2);
        conn
    } else {
        Connection::new(config_mpx(2))
    };
    assert_eq!(conn.max_concurrent_requests(), 2);
    let params_a = params_for("/a.php", Some(4));
    let params_b = params_for("/b.php", None);
    let a = conn.start_request(&params_a).unwrap();
    let b = conn.start_request(&params_b).unwrap();
    assert_eq!((a.get(), b.get()), (1, 2));
    assert!(!conn.can_start_request());
    assert_eq!(
        conn.start_request(&params_b),
        Err(Error::Limit(LimitExceeded {
            limit: Limit::ConcurrentRequests,
            max: 2
        }))
    );
    conn.finish_stdin(b).unwrap();
    conn.send_stdin(a, Bytes::from_static(b"ab")).unwrap();
    conn.send_stdin(a, Bytes::from_static(b"cd")).unwrap();
    conn.finish_stdin(a).unwrap();

    let records = decode_records(&take_output(&mut conn));
    // The order on the wire: request 1's head, request 2's head, 2's end of STDIN, 1's body.
    let order: Vec<(u16, u8, usize)> = records
        .iter()
        .map(|r| (r.id, r.ty.0, r.content.len()))
        .collect();
    assert_eq!(order[0], (1, 1, 8));
    let begin2 = order.iter().position(|o| *o == (2, 1, 8)).unwrap();
    assert_eq!(order[begin2 - 1], (1, 4, 0));
    assert_eq!(
        &order[order.len() - 5..],
        [(2, 4, 0), (2, 5, 0), (1, 5, 2), (1, 5, 2), (1, 5, 0)]
    );
    let (requests, _) = parse_requests(&records);
    assert_eq!(requests[&1].params, pairs_of(&params_a));
    assert_eq!(requests[&1].stdin, b"abcd");
    assert_eq!(requests[&1].stdin_records, [2, 2]);
    assert_eq!(requests[&2].params, pairs_of(&params_b));
    assert!(requests[&2].stdin.is_empty() && requests[&2].stdin_finished);

    let reply = Reply::new()
        .stdout(1, b"Status: 201 Created\r\nX-A: 1\r\n")
        .stderr(2, b"b-err-1")
        .stdout(2, b"Content-Type: text/plain\r\n\r\nbody-b-1")
        .stderr(1, b"a-err")
        .stdout(1, b"\r\nbody-a-1")
        .stdout(2, b"body-b-2")
        .stderr(2, b"b-err-2")
        .stdout(2, b"")
        .end(2, 0, COMPLETE);
    assert_eq!(
        feed(&mut conn, &reply, mode),
        [
            stderr(2, b"b-err-1"),
            head(2, 200, &[("Content-Type", "text/plain")]),
            body(2, b"body-b-1"),
            stderr(1, b"a-err"),
            head_reason(1, 201, "Created", &[("X-A", "1")]),
            body(1, b"body-a-1"),
            body(2, b"body-b-2"),
            stderr(2, b"b-err-2"),
            end(2, 0, COMPLETE),
        ],
        "{mode:?}"
    );
    // Request 2 ended while 1 runs on: a slot is free again.
    assert_eq!(conn.in_flight(), 1);
    assert!(conn.can_start_request() && !conn.is_reusable());
    // The next id, not the one that just ended: a late record of request 2 can never
    // be taken for request 3's.
    let (c, params_c) = start(&mut conn, "/c.php", b"");
    assert_eq!(c.get(), 3);
    expect_one_request(&mut conn, c, &params_c, b"");

    let reply = Reply::new()
        .stdout(3, b"\nC")
        .stdout(1, b"body-a-2")
        .stdout(1, b"")
        .stderr(1, b"")
        .end(1, 7, COMPLETE)
        .end(3, 0, COMPLETE);
    assert_eq!(
        feed(&mut conn, &reply, mode),
        [
            head(3, 200, &[]),
            body(3, b"C"),
            body(1, b"body-a-2"),
            end(1, 7, COMPLETE),
            end(3, 0, COMPLETE),
        ],
        "{mode:?}"
    );
    assert!(conn.is_reusable());
}

#[test]
fn a_late_record_of_an_ended_request_is_never_the_next_ones() {
    // A broken server sends one more STDOUT for request 1 after its END_REQUEST, in a
    // later packet, while request 2 runs on the kept connection. With ids reused it
    // would be request 2's body; with ids rotated it names no request in flight.
    let mut conn = Connection::default();
    let (first, _) = start(&mut conn, "/a.php", b"");
    take_output(&mut conn);
    conn.receive(&answer_empty(first)).unwrap();
    while conn.poll_event().is_some() {}
    assert!(conn.is_reusable());
    let (next, _) = start(&mut conn, "/b.php", b"");
    take_output(&mut conn);
    assert_ne!(next, first);
    let stray = Reply::new().stdout(first.get(), b"Status: 200\r\n\r\nnot yours");
    assert_eq!(
        conn.receive(&stray.bytes),
        Err(Error::Protocol(ProtocolError::UnknownRequest {
            record_type: RecordType::STDOUT,
            request_id: first.get(),
        }))
    );
    assert_eq!(
        conn.poll_event(),
        None,
        "nothing delivered to request {next}"
    );
}

#[test]
fn request_ids_rotate_and_skip_those_in_flight() {
    let mut conn = Connection::new(config_mpx(3));
    let params = params_for("/x.php", None);
    let run = |conn: &mut Connection| {
        let id = conn.start_request(&params).unwrap();
        conn.finish_stdin(id).unwrap();
        id
    };
    // Request 1 stays in flight while 65 534 others come and go.
    let long = run(&mut conn);
    assert_eq!(long.get(), 1);
    for expected in 2..=u16::MAX {
        let id = run(&mut conn);
        assert_eq!(id.get(), expected);
        take_output(&mut conn);
        conn.receive(&answer_empty(id)).unwrap();
        while conn.poll_event().is_some() {}
    }
    // Past 65535 the ids start again at 1, which is in flight: 2 comes next.
    assert_eq!(run(&mut conn).get(), 2);
    assert_eq!(run(&mut conn).get(), 3);
}

#[test]
fn two_multiplexed_requests_interleave() {
    for mode in MODES {
        multiplexed(mode, false);
        multiplexed(mode, true);
    }
}

#[test]
fn abort_sends_abort_request_discards_output_and_still_ends() {
    for mode in MODES {
        let mut conn = Connection::default();
        let (id, params) = start(&mut conn, "/slow.php", b"");
        expect_one_request(&mut conn, id, &params, b"");
        let before = Reply::new()
            .stderr(1, b"e1")
            .stdout(1, b"Content-Type: text/plain\r\n\r\nhel");
        assert_eq!(
            feed(&mut conn, &before, mode),
            [
                stderr(1, b"e1"),
                head(1, 200, &[("Content-Type", "text/plain")]),
                body(1, b"hel"),
            ]
        );
        conn.abort(id).unwrap();
        assert_eq!(take_output(&mut conn), [1, 2, 0, 1, 0, 0, 0, 0]);
        // Aborting again sends nothing more.
        conn.abort(id).unwrap();
        assert_eq!(conn.transmit_len(), 0);
        assert_eq!(
            conn.send_stdin(id, Bytes::from_static(b"x")),
            Err(Error::Usage(UsageError::BodyFinished(id)))
        );
        assert_eq!(conn.in_flight(), 1);
        let after = Reply::new()
            .stdout(1, b"lo")
            .stderr(1, b"e2")
            .stdout(1, b"")
            .stderr(1, b"")
            .end(1, 0, COMPLETE);
        assert_eq!(
            feed(&mut conn, &after, mode),
            [end(1, 0, COMPLETE)],
            "{mode:?}"
        );
        assert!(conn.is_reusable());
        assert_eq!(
            conn.abort(id),
            Err(Error::Usage(UsageError::UnknownRequest(id)))
        );

        // Aborted before any output and mid-body: the body is closed for good, the
        // server's END_REQUEST (even REQUEST_COMPLETE with no head) gives only End.
        let params = params_for("/upload.php", Some(10));
        let id = conn.start_request(&params).unwrap();
        conn.send_stdin(id, Bytes::from_static(b"1234")).unwrap();
        conn.abort(id).unwrap();
        assert_eq!(
            conn.finish_stdin(id),
            Err(Error::Usage(UsageError::BodyFinished(id)))
        );
        let records = decode_records(&take_output(&mut conn));
        let (requests, _) = parse_requests(&records);
        let sent = &requests[&id.get()];
        assert!(sent.aborted && !sent.stdin_finished);
        assert_eq!(sent.stdin, b"1234");
        assert_eq!(records.last().unwrap().ty, RecordType::ABORT_REQUEST);
        let n = id.get();
        assert_eq!(n, 2);
        assert_eq!(
            feed(&mut conn, &Reply::new().end(n, 0, COMPLETE), mode),
            [end(n, 0, COMPLETE)]
        );
        assert!(conn.is_reusable());
    }
}

#[test]
fn abort_drops_only_the_undelivered_events_of_that_request() {
    let mut conn = Connection::new(config_mpx(2));
    let (a, _) = start(&mut conn, "/a.php", b"");
    let (b, _) = start(&mut conn, "/b.php", b"");
    take_output(&mut conn);
    // Fed without draining: events of both requests are queued.
    conn.receive(
        &Reply::new()
            .stderr(1, b"a-err")
            .stdout(2, b"\nb-body")
            .stdout(1, b"A: 1\n\na-body")
            .stderr(2, b"b-err")
            .bytes,
    )
    .unwrap();
    conn.abort(a).unwrap();
    let mut events = Vec::new();
    drain(&mut conn, &mut events);
    assert_eq!(
        events,
        [head(2, 200, &[]), body(2, b"b-body"), stderr(2, b"b-err")]
    );
    let more = feed(
        &mut conn,
        &Reply::new()
            .stdout(1, b"late")
            .end(1, 0, COMPLETE)
            .end(2, 0, COMPLETE),
        Mode::Whole,
    );
    assert_eq!(more, [end(1, 0, COMPLETE), end(2, 0, COMPLETE)]);
    assert!(!conn.is_reusable(), "the abort is still to send");
    take_output(&mut conn);
    assert!(conn.is_reusable());
    let _ = b;
}

/// A request the server ends before its body is finished leaves the connection out of
/// step (the server may not have read what was sent, the rest is never sent): it is not
/// reused, whether the rest of the body was queued or not yet given. A request whose
/// body went out whole is, once its last record is written.
#[test]
fn a_request_ended_before_its_body_was_finished_ends_the_connection() {
    // The server answers and ends request `id` at once.
    let answer = |conn: &mut Connection, id: RequestId| {
        let n = id.get();
        let reply = Reply::new().stdout(n, b"\n").end(n, 0, COMPLETE);
        assert_eq!(
            feed(conn, &reply, Mode::Whole),
            [head(n, 200, &[]), end(n, 0, COMPLETE)]
        );
    };
    for queued_more in [false, true] {
        let mut conn = Connection::new(Config::default());
        let params = params_for("/upload.php", Some(8));
        let id = conn.start_request(&params).unwrap();
        conn.send_stdin(id, Bytes::from_static(b"1234")).unwrap();
        take_output(&mut conn);
        if queued_more {
            conn.send_stdin(id, Bytes::from_static(b"5678")).unwrap();
        }
        answer(&mut conn, id);
        take_output(&mut conn);
        assert!(!conn.is_reusable(), "queued_more: {queued_more}");
    }

    let mut conn = Connection::new(Config::default());
    let (id, _) = start(&mut conn, "/upload.php", b"12345678");
    answer(&mut conn, id);
    assert!(
        !conn.is_reusable(),
        "its last STDIN record is still to send"
    );
    take_output(&mut conn);
    assert!(conn.is_reusable());
}

// ---------------------------------------------------------------------------------------
// Protocol statuses.
// ---------------------------------------------------------------------------------------

const STATUSES: [ProtocolStatus; 4] = [
    ProtocolStatus::REQUEST_COMPLETE,
    ProtocolStatus::CANT_MPX_CONN,
    ProtocolStatus::OVERLOADED,
    ProtocolStatus::UNKNOWN_ROLE,
];

#[test]
fn each_protocol_status_without_output() {
    for status in STATUSES {
        for mode in MODES {
            let mut conn = Connection::new(config_mpx(4));
            let (id, _) = start(&mut conn, "/x.php", b"");
            take_output(&mut conn);
            let events = feed(&mut conn, &Reply::new().end(1, 0xDEAD_BEEF, status), mode);
            let expected = if status.is_complete() {
                // A completed request must have sent a head.
                vec![
                    Ev::HeadError(1, HeadError::Incomplete),
                    end(1, 0xDEAD_BEEF, status),
                ]
            } else {
                // A refused request has only its End.
                vec![end(1, 0xDEAD_BEEF, status)]
            };
            assert_eq!(events, expected, "{status} {mode:?}");
            assert!(conn.is_reusable());
            let expected_max = if status == ProtocolStatus::CANT_MPX_CONN {
                1
            } else {
                4
            };
            assert_eq!(conn.max_concurrent_requests(), expected_max, "{status}");
            let _ = id;
        }
    }
}

#[test]
fn each_protocol_status_with_output() {
    for status in STATUSES {
        for mode in MODES {
            let mut conn = Connection::new(config_mpx(4));
            start(&mut conn, "/x.php", b"");
            take_output(&mut conn);
            let reply = Reply::new()
                .stderr(1, b"why")
                .stdout(1, b"Status: 503 Busy\r\n\r\ntry later")
                .end(1, 1, status);
            assert_eq!(
                feed(&mut conn, &reply, mode),
                [
                    stderr(1, b"why"),
                    head_reason(1, 503, "Busy", &[]),
                    body(1, b"try later"),
                    end(1, 1, status),
                ],
                "{status} {mode:?}"
            );
            // A partial head is an incomplete head whatever the status.
            let (id, _) = start(&mut conn, "/x.php", b"");
            take_output(&mut conn);
            let n = id.get();
            let reply = Reply::new().stdout(n, b"Status: 503").end(n, 0, status);
            assert_eq!(
                feed(&mut conn, &reply, mode),
                [Ev::HeadError(n, HeadError::Incomplete), end(n, 0, status)],
                "{status} {mode:?}"
            );
            assert!(conn.is_reusable());
        }
    }
}

#[test]
fn cant_mpx_conn_lowers_the_concurrency_limit() {
    for mode in MODES {
        let mut conn = Connection::new(config_mpx(3));
        let (a, _) = start(&mut conn, "/a.php", b"");
        let (b, _) = start(&mut conn, "/b.php", b"");
        take_output(&mut conn);
        let reply = Reply::new().end(b.get(), 0, ProtocolStatus::CANT_MPX_CONN);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [end(2, 0, ProtocolStatus::CANT_MPX_CONN)]
        );
        assert_eq!(conn.max_concurrent_requests(), 1);
        assert!(!conn.can_start_request());
        assert_eq!(
            conn.start_request(&params_for("/b.php", None)),
            Err(Error::Usage(UsageError::Busy))
        );
        let reply = Reply::new().stdout(1, b"\r\n").end(a.get(), 0, COMPLETE);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [head(1, 200, &[]), end(1, 0, COMPLETE)]
        );
        assert!(conn.can_start_request());
        start(&mut conn, "/c.php", b"");
        assert!(!conn.can_start_request());
    }
}

// ---------------------------------------------------------------------------------------
// Management records.
// ---------------------------------------------------------------------------------------

#[test]
fn get_values_and_unknown_type() {
    for mode in MODES {
        let mut conn = Connection::default();
        conn.get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
            .unwrap();
        // 48 bytes of names, and 8 of padding: libfcgi answers a management record
        // only once bytes follow it.
        let expected: Vec<u8> = [
            &[1, 9, 0, 0, 0, 48, 8, 0][..],
            b"\x0e\x00FCGI_MAX_CONNS",
            b"\x0d\x00FCGI_MAX_REQS",
            b"\x0f\x00FCGI_MPXS_CONNS",
            &[0; 8],
        ]
        .concat();
        let out = take_output(&mut conn);
        assert_eq!(out, expected);
        let (requests, management) = parse_requests(&decode_records(&out));
        assert!(requests.is_empty());
        assert_eq!(management[0].ty, RecordType::GET_VALUES);
        assert!(!conn.is_reusable(), "an answer is awaited");

        let long = vec![b'9'; 200];
        let reply = Reply::new().values(&[
            (b"FCGI_MAX_CONNS", b"10"),
            (b"FCGI_MAX_REQS", &long),
            (b"FCGI_MPXS_CONNS", b"1"),
        ]);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [Ev::Values(vec![
                (b"FCGI_MAX_CONNS".to_vec(), b"10".to_vec()),
                (b"FCGI_MAX_REQS".to_vec(), long.clone()),
                (b"FCGI_MPXS_CONNS".to_vec(), b"1".to_vec()),
            ])],
            "{mode:?}"
        );
        assert!(conn.is_reusable());

        // The ServerValues helpers on a php-fpm answer.
        conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
        take_output(&mut conn);
        conn.receive(&Reply::new().values(&[(b"FCGI_MPXS_CONNS", b"0")]).bytes)
            .unwrap();
        match conn.poll_event() {
            Some(Event::Values(v)) => {
                assert!(!v.multiplexes());
                assert_eq!(v.max_concurrent_requests(16), 1);
                assert_eq!(v.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(conn.poll_event(), None);

        // UNKNOWN_TYPE for some management record type.
        assert_eq!(
            feed(&mut conn, &Reply::new().unknown_type(42), mode),
            [Ev::UnknownType(42)]
        );
        assert!(conn.is_reusable());
        conn.receive_eof().unwrap();
    }
}

#[test]
fn unknown_type_answering_get_values_ends_the_wait() {
    // A server that does not implement GET_VALUES answers UNKNOWN_TYPE(GET_VALUES): no
    // GET_VALUES_RESULT will come, so the connection must not wait for one.
    for mode in MODES {
        let mut conn = Connection::default();
        conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
        take_output(&mut conn);
        assert!(!conn.is_reusable());
        assert_eq!(
            feed(&mut conn, &Reply::new().unknown_type(9), mode),
            [Ev::UnknownType(9)]
        );
        assert!(conn.is_reusable(), "{mode:?}");
        // Now a GET_VALUES_RESULT is unsolicited, and EOF is clean.
        let mut c2 = Connection::default();
        c2.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
        c2.receive(&Reply::new().unknown_type(9).bytes).unwrap();
        assert_eq!(c2.receive_eof(), Ok(()));
        conn.get_values(&[]).unwrap();
        assert_eq!(
            take_output(&mut conn),
            [1, 9, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            feed(&mut conn, &Reply::new().values(&[]), mode),
            [Ev::Values(vec![])]
        );
    }
}

#[test]
fn get_values_answer_ended_by_an_empty_record() {
    // Go's net/http/fcgi (and any server that ends every record stream it writes) answers
    // GET_VALUES with the pairs, then an empty GET_VALUES_RESULT.
    let asked = || {
        let mut conn = Connection::default();
        conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
        take_output(&mut conn);
        conn
    };
    let mpxs = || Ev::Values(vec![(b"FCGI_MPXS_CONNS".to_vec(), b"1".to_vec())]);
    for mode in MODES {
        let mut conn = asked();
        let answer = Reply::new()
            .values(&[(b"FCGI_MPXS_CONNS", b"1")])
            .values(&[]);
        assert_eq!(feed(&mut conn, &answer, mode), [mpxs()], "{mode:?}");
        assert!(conn.is_reusable());
        // The end may come in a later read, after the next question was asked: it still
        // ends the first answer, and the second answer is awaited.
        let mut conn = asked();
        let first = Reply::new().values(&[(b"FCGI_MPXS_CONNS", b"1")]);
        assert_eq!(feed(&mut conn, &first, mode), [mpxs()]);
        conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
        take_output(&mut conn);
        assert_eq!(feed(&mut conn, &Reply::new().values(&[]), mode), []);
        assert!(!conn.is_reusable(), "the second answer is still awaited");
        assert_eq!(feed(&mut conn, &answer, mode), [mpxs()]);
        assert!(conn.is_reusable());
        assert_eq!(conn.receive_eof(), Ok(()));
    }
    // An empty record that ends nothing is an answer without values (a server that knows
    // none of the names), and then one more is unsolicited: a flood is still an error.
    expect_protocol_error(
        asked,
        &Reply::new().values(&[]).values(&[]),
        &[Ev::Values(vec![])],
        ProtocolError::UnsolicitedValues,
    );
    expect_protocol_error(
        asked,
        &Reply::new()
            .values(&[(b"FCGI_MPXS_CONNS", b"1")])
            .values(&[])
            .values(&[]),
        &[mpxs()],
        ProtocolError::UnsolicitedValues,
    );
}

#[test]
fn get_values_too_large_is_refused_and_queues_nothing() {
    let mut conn = Connection::default();
    let name = "N".repeat(40_000);
    let names = [name.as_str(), name.as_str()];
    let size = 2 * (4 + 1 + 40_000);
    assert_eq!(
        conn.get_values(&names),
        Err(Error::Usage(UsageError::ValuesTooLarge(size)))
    );
    assert_eq!(conn.transmit_len(), 0);
    assert!(conn.is_reusable());
}

// ---------------------------------------------------------------------------------------
// Streams cut anywhere.
// ---------------------------------------------------------------------------------------

#[test]
fn head_split_across_many_stdout_records_with_stderr_between() {
    let head_bytes: &[u8] =
        b"Status: 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
    let mut reply = Reply::new();
    let mut expected_stderr = Vec::new();
    let mut rest = head_bytes;
    let mut n = 0;
    while !rest.is_empty() {
        let take = (n % 3 + 1).min(rest.len());
        reply = reply.stdout(1, &rest[..take]);
        rest = &rest[take..];
        if n % 2 == 0 && !rest.is_empty() {
            let line = format!("log {n}\n");
            expected_stderr.extend_from_slice(line.as_bytes());
            reply = reply.stderr(1, line.as_bytes());
        }
        n += 1;
    }
    reply = reply
        .stdout(1, b"<html>")
        .stderr(1, b"after head")
        .stdout(1, b"</html>")
        .end(1, 0, COMPLETE);
    assert!(reply.records > 60);
    for mode in MODES {
        let mut conn = Connection::default();
        start(&mut conn, "/page.php", b"");
        take_output(&mut conn);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [
                stderr(1, &expected_stderr),
                head_reason(
                    1,
                    200,
                    "OK",
                    &[
                        ("Content-Type", "text/html"),
                        ("Set-Cookie", "a=1"),
                        ("Set-Cookie", "b=2"),
                    ]
                ),
                body(1, b"<html>"),
                stderr(1, b"after head"),
                body(1, b"</html>"),
                end(1, 0, COMPLETE),
            ],
            "{mode:?}"
        );
    }
}

#[test]
fn large_stdout_in_full_records_is_delivered_whole() {
    let big: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let mut reply = Reply::new().stdout(1, b"Content-Type: application/octet-stream\r\n\r\n");
    for chunk in big.chunks(65535) {
        reply = reply.record_padded(STDOUT, 1, chunk, 255);
    }
    reply = reply.end(1, 0, COMPLETE);
    for mode in [Mode::Whole, Mode::Buffer(usize::MAX), Mode::Buffer(4096)] {
        let mut conn = Connection::default();
        start(&mut conn, "/dl.php", b"");
        take_output(&mut conn);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [
                head(1, 200, &[("Content-Type", "application/octet-stream")]),
                Ev::Body(1, big.clone()),
                end(1, 0, COMPLETE),
            ]
        );
        assert!(conn.is_reusable());
    }
}

#[test]
fn large_body_is_split_into_records_that_point_into_the_input() {
    let len = 2 * 65528 + 5000;
    let body = Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    let mut conn = Connection::default();
    let params = params_for("/upload.php", Some(len as u64));
    let id = conn.start_request(&params).unwrap();
    conn.send_stdin(id, body.clone()).unwrap();
    conn.finish_stdin(id).unwrap();
    // Chunks that are slices of `body`, not copies, in order.
    let slices: Vec<(usize, usize)> = conn
        .transmit_chunks()
        .filter(|c| range.contains(&(c.as_ptr() as usize)))
        .map(|c| (c.as_ptr() as usize - range.start, c.len()))
        .collect();
    assert_eq!(
        slices,
        [(0, 65528), (65528, 65528), (2 * 65528, 5000)],
        "body records must point into the caller's buffer"
    );
    let sent = expect_one_request(&mut conn, id, &params, &body);
    assert_eq!(sent.stdin_records, [65528, 65528, 5000]);
}

#[test]
fn params_larger_than_one_record_are_split_between_pairs() {
    let mut params = Params::new();
    let values: Vec<String> = (0..7)
        .map(|i| {
            char::from(b'a' + i)
                .to_string()
                .repeat(20_000 + usize::from(i))
        })
        .collect();
    for (i, v) in values.iter().enumerate() {
        params.insert(format!("P{i}"), v).unwrap();
    }
    params.insert("SHORT", "1").unwrap();
    assert!(params.encoded_len() > 2 * MAX_CONTENT_LEN);
    let mut conn = Connection::default();
    let id = conn.start_request(&params).unwrap();
    conn.finish_stdin(id).unwrap();
    let sent = expect_one_request(&mut conn, id, &params, b"");
    // Three 20 KB pairs fill a record as far as whole pairs go; the next one starts the
    // next record.
    let pair = |i: usize| 1 + 4 + 2 + 20_000 + i;
    assert_eq!(
        sent.params_records,
        [
            pair(0) + pair(1) + pair(2),
            pair(3) + pair(4) + pair(5),
            pair(6) + 2 + 5 + 1
        ]
    );

    // A pair of exactly 65535 encoded bytes fills a record alone.
    let mut conn = Connection::default();
    let mut params = Params::new();
    params.insert("A", "x").unwrap();
    params.insert("N", "v".repeat(MAX_CONTENT_LEN - 6)).unwrap();
    params.insert("B", "y").unwrap();
    let id = conn.start_request(&params).unwrap();
    conn.finish_stdin(id).unwrap();
    let sent = expect_one_request(&mut conn, id, &params, b"");
    assert_eq!(sent.params_records, [4, MAX_CONTENT_LEN, 4]);

    // Two pairs that add up to exactly 65535 bytes share one record.
    let mut conn = Connection::default();
    let mut params = Params::new();
    params.insert("A", "x").unwrap();
    params
        .insert("N", "v".repeat(MAX_CONTENT_LEN - 4 - 6))
        .unwrap();
    params.insert("B", "y").unwrap();
    let id = conn.start_request(&params).unwrap();
    conn.finish_stdin(id).unwrap();
    let sent = expect_one_request(&mut conn, id, &params, b"");
    assert_eq!(sent.params_records, [MAX_CONTENT_LEN, 4]);

    // No params at all: just the empty PARAMS record.
    let mut conn = Connection::default();
    let empty = Params::new();
    let id = conn.start_request(&empty).unwrap();
    conn.finish_stdin(id).unwrap();
    let sent = expect_one_request(&mut conn, id, &empty, b"");
    assert!(sent.params_records.is_empty());
}

// ---------------------------------------------------------------------------------------
// CONTENT_LENGTH, limits, partial writes.
// ---------------------------------------------------------------------------------------

/// The bytes of a whole answer to request `id`: an empty head and body, then its end.
fn answer_empty(id: RequestId) -> Vec<u8> {
    let n = id.get();
    Reply::new().stdout(n, b"\n").end(n, 0, COMPLETE).bytes
}

#[test]
fn content_length_is_enforced() {
    let mut conn = Connection::default();
    let params = params_for("/post.php", Some(5));
    let id = conn.start_request(&params).unwrap();
    conn.send_stdin(id, Bytes::from_static(b"abc")).unwrap();
    let queued = conn.transmit_len();
    assert_eq!(
        conn.send_stdin(id, Bytes::from_static(b"def")),
        Err(Error::Usage(UsageError::BodyTooLong {
            id,
            declared: 5,
            attempted: 6
        }))
    );
    assert_eq!(
        conn.finish_stdin(id),
        Err(Error::Usage(UsageError::BodyTooShort {
            id,
            declared: 5,
            sent: 3
        }))
    );
    // Usage errors change nothing.
    assert_eq!(conn.transmit_len(), queued);
    conn.send_stdin(id, Bytes::new()).unwrap();
    assert_eq!(conn.transmit_len(), queued, "an empty chunk sends nothing");
    conn.send_stdin(id, Bytes::from_static(b"de")).unwrap();
    conn.finish_stdin(id).unwrap();
    assert_eq!(
        conn.finish_stdin(id),
        Err(Error::Usage(UsageError::BodyFinished(id)))
    );
    assert_eq!(
        conn.send_stdin(id, Bytes::from_static(b"x")),
        Err(Error::Usage(UsageError::BodyFinished(id)))
    );
    let sent = expect_one_request(&mut conn, id, &params, b"abcde");
    assert_eq!(sent.stdin_records, [3, 2]);
    conn.receive(&answer_empty(id)).unwrap();

    // No CONTENT_LENGTH: no body may be sent.
    let params = params_for("/get.php", None);
    let id = conn.start_request(&params).unwrap();
    assert_eq!(
        conn.send_stdin(id, Bytes::from_static(b"body")),
        Err(Error::Usage(UsageError::BodyTooLong {
            id,
            declared: 0,
            attempted: 4
        }))
    );
    conn.finish_stdin(id).unwrap();
    expect_one_request(&mut conn, id, &params, b"");
    conn.receive(&answer_empty(id)).unwrap();

    // An empty CONTENT_LENGTH counts as none; a non-number is refused before anything
    // is queued.
    let mut p = Params::new();
    p.insert("CONTENT_LENGTH", "").unwrap();
    let id = conn.start_request(&p).unwrap();
    conn.finish_stdin(id).unwrap();
    conn.receive(&answer_empty(id)).unwrap();
    take_output(&mut conn);
    while conn.poll_event().is_some() {}
    for bad in ["12a", "-1", " 5", "+5", "99999999999999999999"] {
        p.insert("CONTENT_LENGTH", bad).unwrap();
        assert_eq!(
            conn.start_request(&p),
            Err(Error::Usage(UsageError::InvalidContentLength)),
            "{bad}"
        );
    }
    assert_eq!(conn.transmit_len(), 0);
    assert_eq!(conn.in_flight(), 0);

    // A request id that is not in flight.
    assert_eq!(
        conn.send_stdin(id, Bytes::from_static(b"x")),
        Err(Error::Usage(UsageError::UnknownRequest(id)))
    );
    assert_eq!(
        conn.finish_stdin(id),
        Err(Error::Usage(UsageError::UnknownRequest(id)))
    );
    assert_eq!(
        conn.send_data(id, Bytes::from_static(b"x")),
        Err(Error::Usage(UsageError::UnknownRequest(id)))
    );
    assert_eq!(
        conn.finish_data(id),
        Err(Error::Usage(UsageError::UnknownRequest(id)))
    );
    assert!(conn.is_reusable());
}

#[test]
fn stderr_beyond_the_limit_is_counted_not_delivered() {
    for mode in MODES {
        let mut config = Config::default();
        config.max_stderr_bytes = 10;
        let mut conn = Connection::new(config);
        start(&mut conn, "/noisy.php", b"");
        take_output(&mut conn);
        let reply = Reply::new()
            .stderr(1, b"123456")
            .stdout(1, b"\nbody")
            .stderr(1, b"7890ab")
            .stderr(1, b"cdefg")
            .end(1, 0, COMPLETE);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [
                stderr(1, b"123456"),
                head(1, 200, &[]),
                body(1, b"body"),
                stderr(1, b"7890"),
                end_dropped(1, 0, COMPLETE, 7),
            ],
            "{mode:?}"
        );
        // The count is per request.
        let (id, _) = start(&mut conn, "/noisy.php", b"");
        take_output(&mut conn);
        let n = id.get();
        let reply = Reply::new()
            .stderr(n, b"0123456789")
            .stdout(n, b"\n")
            .end(n, 0, COMPLETE);
        assert_eq!(
            feed(&mut conn, &reply, mode),
            [
                stderr(n, b"0123456789"),
                head(n, 200, &[]),
                end(n, 0, COMPLETE)
            ]
        );
    }
}

#[test]
fn buffered_input_limit() {
    for via_buffer in [false, true] {
        let mut config = Config::default();
        config.max_buffered_input = 16;
        let mut conn = Connection::new(config);
        start(&mut conn, "/big.php", b"");
        take_output(&mut conn);
        // 20 body bytes, not drained.
        conn.receive(&Reply::new().stdout(1, b"\n01234567890123456789").bytes)
            .unwrap();
        let more = Reply::new().stdout(1, b"more").end(1, 0, COMPLETE).bytes;
        let limit = Error::Limit(LimitExceeded {
            limit: Limit::BufferedInput,
            max: 16,
        });
        let n = more.len();
        if via_buffer {
            conn.input_buffer()[..n].copy_from_slice(&more);
            assert_eq!(conn.input_written(n), Err(limit));
        } else {
            assert_eq!(conn.receive(&more), Err(limit));
        }
        // Not a protocol error: nothing is broken, and after draining input is taken.
        assert_eq!(conn.error(), None);
        let mut events = Vec::new();
        drain(&mut conn, &mut events);
        assert_eq!(
            normalize(events),
            [head(1, 200, &[]), body(1, b"01234567890123456789")]
        );
        if via_buffer {
            // The bytes are still in the buffer: report them again.
            conn.input_written(n).unwrap();
        } else {
            conn.receive(&more).unwrap();
        }
        let mut events = Vec::new();
        drain(&mut conn, &mut events);
        assert_eq!(events, [body(1, b"more"), end(1, 0, COMPLETE)]);
        assert!(conn.is_reusable());
    }
}

#[test]
fn transmit_with_partial_writes() {
    let len = 65528 + 4500;
    let body = Bytes::from(vec![0xB0; len]);
    let mut conn = Connection::default();
    let params = params_for("/up.php", Some(len as u64));
    let id = conn.start_request(&params).unwrap();
    conn.send_stdin(id, body.clone()).unwrap();
    conn.finish_stdin(id).unwrap();
    let mut all: Vec<u8> = conn.transmit_chunks().flatten().copied().collect();
    assert!(conn.transmit_chunks().count() >= 4);

    let mut written = Vec::new();
    let steps = [1, 7, 3, 200, 65_000, 1, 9, 4000, 100_000];
    let mut step = 0;
    while conn.transmit_len() > 0 {
        assert_eq!(conn.transmit_len(), all.len() - written.len());
        // A writer that takes at most two slices and `steps[i]` bytes.
        let mut slices = [IoSlice::new(&[]); 2];
        let filled = conn.transmit(&mut slices);
        let offered: Vec<u8> = slices[..filled]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        assert_eq!(offered, all[written.len()..written.len() + offered.len()]);
        let n = steps[step % steps.len()].min(offered.len());
        written.extend_from_slice(&offered[..n]);
        conn.consume_transmit(n);
        step += 1;
        // A command between partial writes queues after what is left.
        if step == 3 {
            conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
            all.extend_from_slice(&[1, 9, 0, 0, 0, 17, 7, 0]);
            all.extend_from_slice(b"\x0f\x00FCGI_MPXS_CONNS");
            all.extend_from_slice(&[0; 7]);
            let left: Vec<u8> = conn.transmit_chunks().flatten().copied().collect();
            assert_eq!(left, all[written.len()..]);
        }
    }
    assert!(step > 8);
    conn.consume_transmit(0);
    assert_eq!(written, all);
    let (mut requests, management) = parse_requests(&decode_records(&written));
    assert_eq!(management.len(), 1);
    let sent = requests.remove(&1).unwrap();
    assert_eq!(sent.stdin, body);
    assert_eq!(sent.stdin_records, [65528, 4500]);
}

#[test]
#[should_panic(expected = "consumed more than was queued")]
fn consuming_more_than_queued_panics() {
    let mut conn = Connection::default();
    start(&mut conn, "/x.php", b"");
    let n = conn.transmit_len();
    conn.consume_transmit(n + 1);
}

#[test]
#[should_panic(expected = "more input written than there was room for")]
fn writing_more_input_than_room_panics() {
    let mut conn = Connection::default();
    let room = conn.input_buffer().len();
    let _ = conn.input_written(room + 1);
}

// ---------------------------------------------------------------------------------------
// Response head errors: the request fails, the connection lives on.
// ---------------------------------------------------------------------------------------

#[test]
fn head_errors_fail_the_request_only() {
    let cases: Vec<(Reply, Vec<Ev>)> = vec![
        // Incomplete at END_REQUEST (php-fpm sends no empty STDOUT).
        (
            Reply::new()
                .stdout(1, b"Content-Type: text/html\r\n")
                .end(1, 0, COMPLETE),
            vec![Ev::HeadError(1, HeadError::Incomplete), end(1, 0, COMPLETE)],
        ),
        // Incomplete at the empty STDOUT; stderr still comes after it.
        (
            Reply::new()
                .stdout(1, b"Content-Type: text/html\r\n")
                .stdout(1, b"")
                .stderr(1, b"late")
                .end(1, 0, COMPLETE),
            vec![
                Ev::HeadError(1, HeadError::Incomplete),
                stderr(1, b"late"),
                end(1, 0, COMPLETE),
            ],
        ),
        // Nothing at all before the empty STDOUT.
        (
            Reply::new().stdout(1, b"").end(1, 0, COMPLETE),
            vec![Ev::HeadError(1, HeadError::Incomplete), end(1, 0, COMPLETE)],
        ),
        // A bad head: the rest of STDOUT is discarded.
        (
            Reply::new()
                .stdout(1, b"Status: abc\r\n\r\nbody")
                .stdout(1, b"more body")
                .end(1, 0, COMPLETE),
            vec![
                Ev::HeadError(1, HeadError::InvalidStatus),
                end(1, 0, COMPLETE),
            ],
        ),
        (
            Reply::new()
                .stdout(1, b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n")
                .end(1, 0, COMPLETE),
            vec![
                Ev::HeadError(1, HeadError::DuplicateContentLength),
                end(1, 0, COMPLETE),
            ],
        ),
        // Larger than max_head_bytes (64 here), arriving in pieces.
        (
            Reply::new()
                .stdout(1, &[b'X'; 40])
                .stdout(1, &[b'Y'; 40])
                .stdout(1, b": z\r\n\r\nbody")
                .end(1, 0, COMPLETE),
            vec![
                Ev::HeadError(1, HeadError::TooLarge { limit: 64 }),
                end(1, 0, COMPLETE),
            ],
        ),
    ];
    for (reply, expected) in cases {
        for mode in MODES {
            let mut config = Config::default();
            config.max_head_bytes = 64;
            let mut conn = Connection::new(config);
            start(&mut conn, "/bad.php", b"");
            take_output(&mut conn);
            assert_eq!(feed(&mut conn, &reply, mode), expected, "{mode:?}");
            assert!(conn.is_reusable());
            assert_eq!(conn.error(), None);
            // The next request on the connection works.
            let (id, _) = start(&mut conn, "/good.php", b"");
            take_output(&mut conn);
            let n = id.get();
            assert_eq!(
                feed(
                    &mut conn,
                    &Reply::new().stdout(n, b"\nok").end(n, 0, COMPLETE),
                    mode
                ),
                [head(n, 200, &[]), body(n, b"ok"), end(n, 0, COMPLETE)]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Protocol errors: fatal, sticky, events before them still drainable.
// ---------------------------------------------------------------------------------------

/// A connection with request 1 in flight (and request 2 when `two`), output taken.
fn in_flight(two: bool) -> Connection {
    let mut conn = Connection::new(config_mpx(2));
    start(&mut conn, "/a.php", b"");
    if two {
        start(&mut conn, "/b.php", b"");
    }
    take_output(&mut conn);
    conn
}

/// Checks that the connection is broken with `error` and that every later call says so.
fn assert_sticky(conn: &mut Connection, error: &ProtocolError) {
    let e = Err(Error::Protocol(error.clone()));
    assert_eq!(conn.error(), Some(error));
    assert!(!conn.is_reusable() && !conn.can_start_request());
    assert_eq!(conn.receive(&Reply::new().end(1, 0, COMPLETE).bytes), e);
    assert_eq!(conn.receive(b""), e);
    conn.input_buffer()[0] = 1;
    assert_eq!(conn.input_written(1), e);
    assert_eq!(
        conn.start_request(&params_for("/x.php", None)).map(|_| ()),
        e
    );
    assert_eq!(conn.get_values(&["FCGI_MPXS_CONNS"]), e);
    assert_eq!(conn.receive_eof(), e);
    assert_eq!(conn.receive_eof(), e);
    assert_eq!(conn.error(), Some(error));
    assert_eq!(conn.poll_event(), None);
}

/// Feeds `reply` in every mode to a fresh connection from `setup`; expects `events`,
/// then `error`, sticky.
fn expect_protocol_error(
    setup: impl Fn() -> Connection,
    reply: &Reply,
    events: &[Ev],
    error: ProtocolError,
) {
    for mode in MODES {
        let mut conn = setup();
        let (got, result) = feed_result(&mut conn, &reply.bytes, mode);
        assert_eq!(
            result,
            Err(Error::Protocol(error.clone())),
            "{mode:?} after {got:?}"
        );
        assert_eq!(got, events, "{mode:?}");
        assert_sticky(&mut conn, &error);
    }
}

#[test]
fn bad_version() {
    for version in [0, 2, 255] {
        expect_protocol_error(
            || in_flight(false),
            &Reply::new()
                .stderr(1, b"before")
                .stdout(1, b"\nbody")
                .raw(&[version, 6, 0, 1, 0, 0, 0, 0]),
            &[stderr(1, b"before"), head(1, 200, &[]), body(1, b"body")],
            ProtocolError::BadVersion(version),
        );
    }
}

#[test]
fn bad_end_request_length() {
    for len in [0, 5, 9] {
        expect_protocol_error(
            || in_flight(false),
            &Reply::new()
                .stdout(1, b"\nx")
                .record(END_REQUEST, 1, &[0; 16][..len]),
            &[head(1, 200, &[]), body(1, b"x")],
            ProtocolError::BadEndRequestLength(len),
        );
    }
}

#[test]
fn bad_unknown_type_length() {
    for len in [0, 4, 16] {
        expect_protocol_error(
            || in_flight(false),
            &Reply::new().unknown_type(42).record(11, 0, &[7; 16][..len]),
            &[Ev::UnknownType(42)],
            ProtocolError::BadUnknownTypeLength(len),
        );
    }
}

#[test]
fn unexpected_record_types() {
    let cases: [(u8, u16, &[u8]); 14] = [
        (4, 1, b"\x01\x01ab"), // PARAMS from the server
        (4, 1, b""),
        (5, 1, b"stdin"),                  // STDIN
        (8, 1, b"data"),                   // DATA
        (1, 1, &[0, 1, 1, 0, 0, 0, 0, 0]), // BEGIN_REQUEST
        (2, 1, b""),                       // ABORT_REQUEST
        (42, 1, b"what"),                  // no known type
        (0, 1, b""),
        (42, 0, b"what"),                   // unknown management type
        (9, 0, b"\x0f\x00FCGI_MPXS_CONNS"), // GET_VALUES from the server
        (10, 1, b""),                       // GET_VALUES_RESULT with a request id
        (11, 1, &[1, 0, 0, 0, 0, 0, 0, 0]), // UNKNOWN_TYPE with a request id
        (3, 0, &[0; 8]),                    // END_REQUEST for id 0
        (6, 0, b"out"),                     // STDOUT for id 0
    ];
    for (ty, id, content) in cases {
        expect_protocol_error(
            || in_flight(false),
            &Reply::new().stderr(1, b"ok so far").record(ty, id, content),
            &[stderr(1, b"ok so far")],
            ProtocolError::UnexpectedRecordType {
                record_type: RecordType(ty),
                request_id: id,
            },
        );
    }
}

#[test]
fn unknown_request_ids() {
    // Never started.
    for (ty, content) in [
        (STDOUT, &b"x"[..]),
        (STDERR, b"x"),
        (STDOUT, b""),
        (END_REQUEST, &[0; 8]),
    ] {
        expect_protocol_error(
            || in_flight(false),
            &Reply::new().record(ty, 2, content),
            &[],
            ProtocolError::UnknownRequest {
                record_type: RecordType(ty),
                request_id: 2,
            },
        );
    }
    // Already ended.
    for (ty, content) in [
        (STDOUT, &b"late"[..]),
        (STDERR, b"late"),
        (END_REQUEST, &[0; 8]),
    ] {
        expect_protocol_error(
            || in_flight(true),
            &Reply::new()
                .stdout(1, b"\n")
                .end(1, 0, COMPLETE)
                .record(ty, 1, content),
            &[head(1, 200, &[]), end(1, 0, COMPLETE)],
            ProtocolError::UnknownRequest {
                record_type: RecordType(ty),
                request_id: 1,
            },
        );
    }
}

#[test]
fn output_after_end_of_stream() {
    expect_protocol_error(
        || in_flight(false),
        &Reply::new()
            .stdout(1, b"\nbody")
            .stdout(1, b"")
            .stdout(1, b"more"),
        &[head(1, 200, &[]), body(1, b"body")],
        ProtocolError::AfterEndOfStream {
            record_type: RecordType::STDOUT,
            request_id: 1,
        },
    );
    expect_protocol_error(
        || in_flight(false),
        &Reply::new().stdout(1, b"").stdout(1, b""),
        &[Ev::HeadError(1, HeadError::Incomplete)],
        ProtocolError::AfterEndOfStream {
            record_type: RecordType::STDOUT,
            request_id: 1,
        },
    );
    expect_protocol_error(
        || in_flight(false),
        &Reply::new()
            .stderr(1, b"e")
            .stderr(1, b"")
            .stderr(1, b"again"),
        &[stderr(1, b"e")],
        ProtocolError::AfterEndOfStream {
            record_type: RecordType::STDERR,
            request_id: 1,
        },
    );
}

#[test]
fn unsolicited_and_bad_values() {
    expect_protocol_error(
        || in_flight(false),
        &Reply::new().values(&[(b"FCGI_MPXS_CONNS", b"0")]),
        &[],
        ProtocolError::UnsolicitedValues,
    );
    // One answer per question: the second is unsolicited.
    let asked = || {
        let mut conn = Connection::default();
        conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
        take_output(&mut conn);
        conn
    };
    expect_protocol_error(
        asked,
        &Reply::new()
            .values(&[(b"FCGI_MPXS_CONNS", b"0")])
            .values(&[(b"FCGI_MPXS_CONNS", b"0")]),
        &[Ev::Values(vec![(
            b"FCGI_MPXS_CONNS".to_vec(),
            b"0".to_vec(),
        )])],
        ProtocolError::UnsolicitedValues,
    );
    expect_protocol_error(
        asked,
        &Reply::new().record(10, 0, b"\x05\x01AB"),
        &[],
        ProtocolError::BadValues(NvError::Truncated),
    );
}

#[test]
fn eof_in_record() {
    // STDOUT: 8 + 6 + 5 bytes; END_REQUEST: 8 + 8 + 3 bytes.
    let full = Reply::new()
        .record_padded(STDOUT, 1, b"\n\nbody", 5)
        .record_padded(END_REQUEST, 1, &[0; 8], 3);
    assert_eq!(full.bytes.len(), 38);
    let cuts = [
        3,  // inside the first header
        10, // inside STDOUT's content
        16, // inside STDOUT's padding
        23, // inside END_REQUEST's header
        31, // inside END_REQUEST's content
        36, // inside END_REQUEST's padding
    ];
    for cut in cuts {
        for mode in MODES {
            let mut conn = in_flight(false);
            let (_, result) = feed_result(&mut conn, &full.bytes[..cut], mode);
            result.unwrap();
            assert_eq!(
                conn.receive_eof(),
                Err(Error::Protocol(ProtocolError::EofInRecord)),
                "cut {cut} {mode:?}"
            );
            assert!(conn.is_closed());
            assert_sticky(&mut conn, &ProtocolError::EofInRecord);
        }
    }
}

#[test]
fn eof_in_request() {
    for mode in MODES {
        // Between records, but a request is in flight.
        let mut conn = in_flight(true);
        let (events, result) =
            feed_result(&mut conn, &Reply::new().stdout(2, b"\nbody").bytes, mode);
        result.unwrap();
        assert_eq!(events, [head(2, 200, &[]), body(2, b"body")]);
        let error = ProtocolError::EofInRequest { in_flight: 2 };
        assert_eq!(conn.receive_eof(), Err(Error::Protocol(error.clone())));
        assert_sticky(&mut conn, &error);
    }
    // A GET_VALUES awaiting its answer counts too.
    let mut conn = Connection::default();
    conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
    take_output(&mut conn);
    let error = ProtocolError::EofInRequest { in_flight: 1 };
    assert_eq!(conn.receive_eof(), Err(Error::Protocol(error.clone())));
    assert_sticky(&mut conn, &error);
    // Events queued before EOF stay drainable.
    let mut conn = in_flight(false);
    conn.receive(&Reply::new().stderr(1, b"last words").bytes)
        .unwrap();
    let error = ProtocolError::EofInRequest { in_flight: 1 };
    assert_eq!(conn.receive_eof(), Err(Error::Protocol(error.clone())));
    let mut events = Vec::new();
    drain(&mut conn, &mut events);
    assert_eq!(events, [stderr(1, b"last words")]);
    assert_sticky(&mut conn, &error);
}

#[test]
fn commands_after_a_protocol_error_return_it() {
    let mut conn = Connection::default();
    let id = conn.start_request(&params_for("/x.php", None)).unwrap();
    let error = ProtocolError::BadVersion(9);
    assert_eq!(
        conn.receive(&[9, 6, 0, 1, 0, 0, 0, 0]),
        Err(Error::Protocol(error.clone()))
    );
    let e = Err(Error::Protocol(error.clone()));
    assert_eq!(conn.send_stdin(id, Bytes::from_static(b"x")), e);
    assert_eq!(conn.finish_stdin(id), e);
    assert_eq!(conn.abort(id), e);
    assert_eq!(conn.send_data(id, Bytes::new()), e);
    assert_eq!(conn.finish_data(id), e);
    assert_sticky(&mut conn, &error);
    // Display says who is at fault; the violation comes from `source`.
    let e = Error::Protocol(error);
    assert_eq!(e.to_string(), "FastCGI peer broke the protocol");
    assert_eq!(
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .as_deref(),
        Some("record with version 9 (only version 1 exists)")
    );
}

#[test]
fn a_small_request_is_one_slice_and_large_bodies_are_not_copied() {
    let mut conn = Connection::default();
    let (id, _) = start(&mut conn, "/small.php", b"name=World");
    let mut slices = [IoSlice::new(&[]); 8];
    assert_eq!(
        conn.transmit(&mut slices),
        1,
        "params, body and terminators in one buffer"
    );
    let total = conn.transmit_len();
    conn.consume_transmit(total);
    assert_eq!(conn.transmit_len(), 0);
    let _ = id;

    // A large body: header slices around the caller's own bytes.
    let mut conn = Connection::default();
    let big = Bytes::from(vec![7u8; 100_000]);
    let params = params_for("/big.php", Some(big.len() as u64));
    let id = conn.start_request(&params).unwrap();
    conn.send_stdin(id, big.clone()).unwrap();
    conn.finish_stdin(id).unwrap();
    let chunks: Vec<&[u8]> = conn.transmit_chunks().collect();
    assert!(
        chunks.iter().any(|c| c.as_ptr() == big.as_ptr()),
        "the body is sent in place"
    );
}
