//! How real FastCGI server libraries write management records and end their requests,
//! byte for byte, fed to `fcgi_proto::Connection`, with the events the core gives.
//!
//! Each case is written from reading the library's source (the function is named in the
//! case's documentation) and, for php-fpm 8.2, libfcgi 2.4.2, Go 1.19 and uWSGI 2.0.21,
//! from the bytes the running server wrote (fcgi-testkit's `libfcgi` and `gofcgi`
//! modules capture them in their tests). The libraries differ in four ways that matter to a client:
//!
//! | library | `GET_VALUES` answer | stream ends | keep-alive |
//! |---|---|---|---|
//! | php-fpm (php-src `main/fastcgi.c`) | one record, `FCGI_MPXS_CONNS=0` | none: `END_REQUEST` right after the last `STDOUT` | honoured |
//! | libfcgi (fcgi2 `libfcgi/fcgiapp.c`) | one record, the three names asked | empty `STDERR` if written, empty `STDOUT` always | honoured |
//! | Go `net/http/fcgi` | `FCGI_MPXS_CONNS=1`, then an empty record | empty `STDOUT` | honoured |
//! | flup (`flup/server/fcgi_base.py`) | one record, the names it knows | empty `STDOUT`, empty `STDERR`, each only if written | honoured |
//! | tokio-fastcgi (`src/lib.rs`) | one unpadded record | empty `STDOUT` and empty `STDERR`, always | honoured |
//! | uWSGI (`proto/fastcgi.c`) | none at all | empty `STDOUT` | never: closes after every request |
//!
//! Every input is fed whole, one byte at a time and in pieces of 7 bytes; each way must
//! give the same events.

use bytes::Bytes;
use fcgi_proto::{
    Config, Connection, Error, Event, ParamsBuilder, ProtocolError, ProtocolStatus, RequestId,
};

// ---------------------------------------------------------------------------------------
// Server bytes and the events they give.
// ---------------------------------------------------------------------------------------

const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const END_REQUEST: u8 = 3;
const GET_VALUES_RESULT: u8 = 10;
const UNKNOWN_TYPE: u8 = 11;

/// A record with explicit padding bytes (their values as the library leaves them).
fn record_with(kind: u8, id: u16, content: &[u8], padding: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("a short record");
    let pad = u8::try_from(padding.len()).expect("short padding");
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[pad, 0]);
    out.extend_from_slice(content);
    out.extend_from_slice(padding);
    out
}

/// A record padded with zeros to a multiple of 8 bytes (libfcgi's `STDOUT`, Go, flup).
fn record8(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let pad = (8 - content.len() % 8) % 8;
    record_with(kind, id, content, &vec![0; pad])
}

/// A record without padding (tokio-fastcgi, uWSGI).
fn record0(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    record_with(kind, id, content, &[])
}

/// `END_REQUEST`: app status 0, `REQUEST_COMPLETE`, reserved bytes as given.
fn end_request(id: u16, reserved: [u8; 3]) -> Vec<u8> {
    let body = [0, 0, 0, 0, 0, reserved[0], reserved[1], reserved[2]];
    record_with(END_REQUEST, id, &body, &[])
}

/// A name-value pair with one-byte lengths.
fn pair(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![name.len() as u8, value.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(value.as_bytes());
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<u8> {
    list.iter().flat_map(|(n, v)| pair(n, v)).collect()
}

/// Events in a form a test can write down whole.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Head(u16, u16, Vec<(String, String)>),
    Body(u16, Vec<u8>),
    Stderr(u16, Vec<u8>),
    End(u16, u32, ProtocolStatus),
    Values(Vec<(String, String)>),
    UnknownType(u8),
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("text")
}

fn convert(event: Event) -> Ev {
    match event {
        Event::Head { id, head } => Ev::Head(
            id.get(),
            head.status(),
            head.headers()
                .map(|h| (h.name().to_string(), text(h.value())))
                .collect(),
        ),
        Event::Body { id, data } => Ev::Body(id.get(), data.to_vec()),
        Event::Stderr { id, data } => Ev::Stderr(id.get(), data.to_vec()),
        Event::End { id, end } => Ev::End(id.get(), end.app_status, end.protocol_status),
        Event::Values(values) => {
            Ev::Values(values.iter().map(|(n, v)| (text(n), text(v))).collect())
        }
        Event::UnknownType(t) => Ev::UnknownType(t.0),
        other => panic!("unexpected event {other:?}"),
    }
}

/// Joins neighbouring `Body` (or `Stderr`) events of one request: how a stream is cut
/// into events depends on how the input was cut.
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

/// Feeds `input` in pieces of `piece` bytes, draining events after each; stops at the
/// first error. Returns the events and the result.
fn feed(conn: &mut Connection, input: &[u8], piece: usize) -> (Vec<Ev>, Result<(), Error>) {
    let mut events = Vec::new();
    let mut result = Ok(());
    for chunk in input.chunks(piece.max(1)) {
        result = conn.receive(chunk);
        while let Some(e) = conn.poll_event() {
            events.push(convert(e));
        }
        if result.is_err() {
            break;
        }
    }
    (normalize(events), result)
}

/// The ways every input is fed.
const PIECES: [usize; 3] = [usize::MAX, 1, 7];

/// Runs `setup` for a fresh connection, feeds it `input` each way, and checks the events
/// and the result (`Ok`, or the protocol error) are `want` every time. Returns the last
/// connection, for checks after.
fn expect(
    setup: impl Fn() -> Connection,
    input: &[u8],
    want: &[Ev],
    error: Option<ProtocolError>,
) -> Connection {
    let mut last = None;
    for piece in PIECES {
        let mut conn = setup();
        let (events, result) = feed(&mut conn, input, piece);
        assert_eq!(events, want, "fed in pieces of {piece}");
        match &error {
            None => assert_eq!(result, Ok(()), "fed in pieces of {piece}"),
            Some(e) => assert_eq!(result, Err(Error::Protocol(e.clone())), "pieces of {piece}"),
        }
        last = Some(conn);
    }
    last.expect("fed at least once")
}

/// A connection with one request in flight (its params and end of `STDIN` sent).
fn one_request(config: Config) -> (Connection, RequestId) {
    let mut conn = Connection::new(config);
    let params = ParamsBuilder::new("GET", "/x").build().expect("params");
    let id = conn.start_request(&params).expect("a request");
    conn.finish_stdin(id).expect("end of stdin");
    drain_output(&mut conn);
    (conn, id)
}

/// A connection that asked `GET_VALUES` for the three standard names.
fn asked() -> Connection {
    let mut conn = Connection::default();
    conn.get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        .expect("get_values");
    drain_output(&mut conn);
    conn
}

fn drain_output(conn: &mut Connection) {
    let n = conn.transmit_len();
    conn.consume_transmit(n);
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn values(list: &[(&str, &str)]) -> Ev {
    Ev::Values(list.iter().map(|(n, v)| header(n, v)).collect())
}

const COMPLETE: ProtocolStatus = ProtocolStatus::REQUEST_COMPLETE;

// ---------------------------------------------------------------------------------------
// php-fpm
// ---------------------------------------------------------------------------------------

/// php-fpm (php-src `main/fastcgi.c`, `fcgi_read_request`, its `FCGI_GET_VALUES`
/// branch) answers from its table of management variables, which holds only
/// `FCGI_MPXS_CONNS=0`, in one record padded with zeros (`fcgi_make_header`), whatever
/// names are asked. Bytes as php-fpm 8.2 wrote them.
#[test]
fn php_fpm_get_values() {
    let answer = record8(GET_VALUES_RESULT, 0, &pair("FCGI_MPXS_CONNS", "0"));
    assert_eq!(answer.len(), 8 + 18 + 6);
    let mut conn = expect(asked, &answer, &[values(&[("FCGI_MPXS_CONNS", "0")])], None);
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(()));
}

/// php-fpm's end of a request (`fcgi_finish_request` → `fcgi_end` → `fcgi_flush` with
/// `end` set): the open `STDOUT` (or `STDERR`) record is closed as it is, and
/// `END_REQUEST` follows at once: no empty `STDOUT`, no empty `STDERR`. Its
/// `END_REQUEST` reserved bytes are left as they were in the buffer (php-fpm 8.2 sent
/// `00 2e 33 36`-like leftovers). Bytes as php-fpm 8.2 wrote them for a script that
/// logs, echoes, flushes, logs and echoes.
#[test]
fn php_fpm_end_of_request_without_empty_records() {
    let head = "X-Powered-By: PHP/8.2.36\r\nContent-type: text/html; charset=UTF-8\r\n\r\n";
    let mut input = record8(STDERR, 1, b"PHP message: first");
    input.extend(record8(STDOUT, 1, format!("{head}one\n").as_bytes()));
    input.extend(record8(STDERR, 1, b"; PHP message: second"));
    input.extend(record8(STDOUT, 1, b"two\n"));
    input.extend(end_request(1, [b'.', b'3', b'6']));
    let want = [
        Ev::Stderr(1, b"PHP message: first".to_vec()),
        Ev::Head(
            1,
            200,
            vec![
                header("X-Powered-By", "PHP/8.2.36"),
                header("Content-type", "text/html; charset=UTF-8"),
            ],
        ),
        Ev::Body(1, b"one\n".to_vec()),
        Ev::Stderr(1, b"; PHP message: second".to_vec()),
        Ev::Body(1, b"two\n".to_vec()),
        Ev::End(1, 0, COMPLETE),
    ];
    let conn = expect(|| one_request(Config::default()).0, &input, &want, None);
    assert!(conn.is_reusable());
}

// ---------------------------------------------------------------------------------------
// libfcgi (fcgi2)
// ---------------------------------------------------------------------------------------

/// libfcgi (fcgi2 `libfcgi/fcgiapp.c`, `ProcessManagementRecord`) answers each of
/// `FCGI_MAX_CONNS`, `FCGI_MAX_REQS` and `FCGI_MPXS_CONNS` that was asked, in the order
/// asked, with `1`, `1` and `0`, in one record padded to 8 bytes, and the padding is
/// whatever was in its stack buffer. No empty record follows. (It writes the answer only
/// once bytes after the `GET_VALUES` record have arrived: see fcgi-testkit's `libfcgi`
/// module.) Bytes as libfcgi 2.4.2 wrote them, padding included.
#[test]
fn libfcgi_get_values() {
    let content = pairs(&[
        ("FCGI_MAX_CONNS", "1"),
        ("FCGI_MAX_REQS", "1"),
        ("FCGI_MPXS_CONNS", "0"),
    ]);
    assert_eq!(content.len(), 51);
    let answer = record_with(GET_VALUES_RESULT, 0, &content, &[0, 0x01, 0xa3, 0x7f, 0]);
    let want = [values(&[
        ("FCGI_MAX_CONNS", "1"),
        ("FCGI_MAX_REQS", "1"),
        ("FCGI_MPXS_CONNS", "0"),
    ])];
    let mut conn = expect(asked, &answer, &want, None);
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(()));
}

/// Other management record types get `UNKNOWN_TYPE` from libfcgi
/// (`ProcessManagementRecord`, its `else` branch), at once.
#[test]
fn libfcgi_unknown_type() {
    let answer = record_with(UNKNOWN_TYPE, 0, &[42, 0, 0, 0, 0, 0, 0, 0], &[]);
    expect(Connection::default, &answer, &[Ev::UnknownType(42)], None);
}

/// libfcgi answers a `GET_VALUES` that asks none of its three names with an empty
/// `GET_VALUES_RESULT`: that is the answer. But after an earlier answer with pairs on
/// the same connection, the core cannot tell it from Go's empty record that ends an
/// answer, and takes it for that: the second question stays unanswered. Our clients ask
/// once per connection, so they never meet this; it is here so that the rule's limit is
/// written down.
#[test]
fn libfcgi_empty_second_answer_is_taken_for_the_end_of_the_first() {
    let setup = || {
        let mut conn = Connection::default();
        conn.get_values(&["FCGI_MPXS_CONNS"]).expect("first");
        conn.get_values(&["OTHER"]).expect("second");
        drain_output(&mut conn);
        conn
    };
    let mut input = record8(GET_VALUES_RESULT, 0, &pair("FCGI_MPXS_CONNS", "0"));
    input.extend(record8(GET_VALUES_RESULT, 0, b""));
    let conn = expect(setup, &input, &[values(&[("FCGI_MPXS_CONNS", "0")])], None);
    assert!(!conn.is_reusable(), "the second answer is still awaited");
}

/// libfcgi's end of a request (`FCGX_Finish_r` closes the error stream, then the output
/// stream; `WriteCloseRecords` writes the empty record of each, except for an error
/// stream nothing was written to, and `END_REQUEST` after the last one): here a request
/// that wrote and flushed `STDERR`, `STDOUT`, `STDERR`, then `STDOUT` left in its
/// buffer. Bytes as libfcgi 2.4.2 wrote them.
#[test]
fn libfcgi_end_of_request_with_both_streams_ended() {
    let mut input = record8(STDERR, 1, b"first message\n");
    input.extend(record8(
        STDOUT,
        1,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none\n",
    ));
    input.extend(record8(STDERR, 1, b"second message\n"));
    input.extend(record8(STDERR, 1, b""));
    input.extend(record8(STDOUT, 1, b"two\n"));
    input.extend(record8(STDOUT, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    let want = [
        Ev::Stderr(1, b"first message\n".to_vec()),
        Ev::Head(1, 200, vec![header("Content-Type", "text/plain")]),
        Ev::Body(1, b"one\n".to_vec()),
        Ev::Stderr(1, b"second message\n".to_vec()),
        Ev::Body(1, b"two\n".to_vec()),
        Ev::End(1, 0, COMPLETE),
    ];
    let conn = expect(|| one_request(Config::default()).0, &input, &want, None);
    assert!(conn.is_reusable());
}

// ---------------------------------------------------------------------------------------
// Go net/http/fcgi
// ---------------------------------------------------------------------------------------

/// Go (`net/http/fcgi`, `child.handleRecord`, its `typeGetValues` case) answers any
/// `GET_VALUES` with `FCGI_MPXS_CONNS=1` through `conn.writePairs`, which writes the
/// pairs through a stream writer and closes it: the pairs record, then an empty
/// `GET_VALUES_RESULT` (`streamWriter.Close`). The core takes the empty record as the
/// end of the answer. Bytes as Go 1.19 wrote them.
#[test]
fn go_get_values_then_an_empty_record() {
    let mut answer = record8(GET_VALUES_RESULT, 0, &pair("FCGI_MPXS_CONNS", "1"));
    answer.extend(record8(GET_VALUES_RESULT, 0, b""));
    assert_eq!(answer.len(), 8 + 18 + 6 + 8);
    let mut conn = expect(asked, &answer, &[values(&[("FCGI_MPXS_CONNS", "1")])], None);
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(()));
}

/// Go's answer and the records of requests on the same connection can interleave: the
/// pairs and the empty record are two writes, each under the connection's lock, and a
/// handler's goroutine may write between them. The empty record still ends the answer.
#[test]
fn go_get_values_with_a_request_between_its_records() {
    let setup = || {
        let (mut conn, _) = one_request(Config::default());
        conn.get_values(&["FCGI_MPXS_CONNS"]).expect("get_values");
        drain_output(&mut conn);
        conn
    };
    let mut input = record8(GET_VALUES_RESULT, 0, &pair("FCGI_MPXS_CONNS", "1"));
    input.extend(record8(STDOUT, 1, b"Status: 200 OK\r\n\r\nhi"));
    input.extend(record8(GET_VALUES_RESULT, 0, b""));
    input.extend(record8(STDOUT, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    let want = [
        values(&[("FCGI_MPXS_CONNS", "1")]),
        Ev::Head(1, 200, vec![]),
        Ev::Body(1, b"hi".to_vec()),
        Ev::End(1, 0, COMPLETE),
    ];
    let conn = expect(setup, &input, &want, None);
    assert!(conn.is_reusable());
}

/// Go's end of a request (`child.serveRequest`): the head is its own record
/// (`response.writeCGIHeader` flushes it), the body follows, `response.Close` ends
/// `STDOUT` with an empty record, then `conn.writeEndRequest`. Records are padded with
/// zeros (`header.init`). Bytes as Go 1.19 wrote them.
#[test]
fn go_end_of_request() {
    let head =
        "Status: 200 OK\r\nContent-Type: text/plain\r\nDate: Wed, 02 Dec 2026 06:02:02 GMT\r\n\r\n";
    let mut input = record8(STDOUT, 1, head.as_bytes());
    input.extend(record8(STDOUT, 1, b"Hello, World!"));
    input.extend(record8(STDOUT, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    let want = [
        Ev::Head(
            1,
            200,
            vec![
                header("Content-Type", "text/plain"),
                header("Date", "Wed, 02 Dec 2026 06:02:02 GMT"),
            ],
        ),
        Ev::Body(1, b"Hello, World!".to_vec()),
        Ev::End(1, 0, COMPLETE),
    ];
    let conn = expect(|| one_request(Config::default()).0, &input, &want, None);
    assert!(conn.is_reusable());
}

/// Go's only `STDERR` (`child.serveRequest` when `cgi.RequestFromMap` fails): one
/// record with the reason, never ended by an empty `STDERR`, then a 500 head. Bytes as
/// Go 1.19 wrote them for a request without `REQUEST_METHOD`.
#[test]
fn go_stderr_without_its_empty_record() {
    let head = "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\
                Date: Wed, 02 Dec 2026 06:02:03 GMT\r\n\r\n";
    let mut input = record8(STDERR, 1, b"cgi: no REQUEST_METHOD in environment");
    input.extend(record8(STDOUT, 1, head.as_bytes()));
    input.extend(record8(STDOUT, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    let want = [
        Ev::Stderr(1, b"cgi: no REQUEST_METHOD in environment".to_vec()),
        Ev::Head(
            1,
            500,
            vec![
                header("Content-Type", "text/plain; charset=utf-8"),
                header("Date", "Wed, 02 Dec 2026 06:02:03 GMT"),
            ],
        ),
        Ev::End(1, 0, COMPLETE),
    ];
    expect(|| one_request(Config::default()).0, &input, &want, None);
}

/// Go's answer to `ABORT_REQUEST` for a request whose `STDIN` has not ended
/// (`child.handleRecord`, its `typeAbortRequest` case): `END_REQUEST` at once; the
/// handler goes on (its body read fails), and `child.serveRequest` then writes its
/// response and a second `END_REQUEST` for the same id. The core remembers the ids of
/// aborted requests the server ended and drops their late records, up to that second
/// `END_REQUEST`: the connection, and every other request on it, carries on, and no new
/// request is given the id meanwhile. Bytes as Go 1.19 wrote them for an echo aborted
/// after 3 of 10 body bytes.
#[test]
fn go_abort_ends_the_request_twice() {
    let setup = || {
        let mut conn = Connection::default();
        let params = ParamsBuilder::new("POST", "/echo")
            .content_length(10)
            .build()
            .expect("params");
        let id = conn.start_request(&params).expect("a request");
        conn.send_stdin(id, Bytes::from_static(b"abc"))
            .expect("some body");
        conn.abort(id).expect("abort");
        drain_output(&mut conn);
        conn
    };
    let head = "Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                Date: Wed, 02 Dec 2026 06:02:26 GMT\r\nX-Content-Type-Options: nosniff\r\n\r\n";
    let mut input = end_request(1, [0, 0, 0]);
    input.extend(record8(STDOUT, 1, head.as_bytes()));
    input.extend(record8(STDOUT, 1, b"fcgi: request aborted by web server\n"));
    input.extend(record8(STDOUT, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    expect(setup, &input, &[Ev::End(1, 0, COMPLETE)], None);
    // The late records may also come while another request runs on the connection.
    let mut conn = setup();
    conn.receive(&end_request(1, [0, 0, 0]))
        .expect("the first end");
    while conn.poll_event().is_some() {}
    let params = ParamsBuilder::new("GET", "/hello").build().expect("params");
    let next = conn.start_request(&params).expect("another request");
    assert_eq!(next.get(), 2);
    conn.finish_stdin(next).expect("no body");
    drain_output(&mut conn);
    conn.receive(&input[16..])
        .expect("the aborted request's late records");
    assert_eq!(conn.poll_event(), None, "nothing for request 2");
    // After its second END_REQUEST, a record for request 1 is unknown again.
    assert!(matches!(
        conn.receive(&end_request(1, [0, 0, 0])),
        Err(Error::Protocol(ProtocolError::UnknownRequest {
            request_id: 1,
            ..
        }))
    ));
}

// ---------------------------------------------------------------------------------------
// flup
// ---------------------------------------------------------------------------------------

/// flup (`flup/server/fcgi_base.py`, `Connection._do_get_values`) answers the names
/// it has in its capability table, in the order asked, in one record; `Record.write`
/// pads every record with zeros to 8 bytes. No empty record follows. (flup 1.0.3 on
/// Python 3 only answers when the table is keyed by bytes: see fcgi-testkit's `flup`.)
#[test]
fn flup_get_values() {
    let content = pairs(&[
        ("FCGI_MAX_CONNS", "100"),
        ("FCGI_MAX_REQS", "1000"),
        ("FCGI_MPXS_CONNS", "1"),
    ]);
    let answer = record8(GET_VALUES_RESULT, 0, &content);
    let want = [values(&[
        ("FCGI_MAX_CONNS", "100"),
        ("FCGI_MAX_REQS", "1000"),
        ("FCGI_MPXS_CONNS", "1"),
    ])];
    let mut conn = expect(asked, &answer, &want, None);
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(()));
}

/// flup's end of a request (`Request.run` → `Request._flush`, which closes `stdout`,
/// then `stderr`; `OutputStream.close` writes the empty record only for a stream that
/// had data; then `Connection.end_request`): the empty `STDERR` comes after the empty
/// `STDOUT`.
#[test]
fn flup_end_of_request_stdout_then_stderr() {
    let mut input = record8(STDERR, 1, b"first message\n");
    input.extend(record8(
        STDOUT,
        1,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    ));
    input.extend(record8(STDOUT, 1, b"one\n"));
    input.extend(record8(STDERR, 1, b"second message\n"));
    input.extend(record8(STDOUT, 1, b"two\n"));
    input.extend(record8(STDOUT, 1, b""));
    input.extend(record8(STDERR, 1, b""));
    input.extend(record8(END_REQUEST, 1, &[0; 8]));
    let want = [
        Ev::Stderr(1, b"first message\n".to_vec()),
        Ev::Head(1, 200, vec![header("Content-Type", "text/plain")]),
        Ev::Body(1, b"one\n".to_vec()),
        Ev::Stderr(1, b"second message\n".to_vec()),
        Ev::Body(1, b"two\n".to_vec()),
        Ev::End(1, 0, COMPLETE),
    ];
    let conn = expect(|| one_request(Config::default()).0, &input, &want, None);
    assert!(conn.is_reusable());
}

// ---------------------------------------------------------------------------------------
// tokio-fastcgi (Rust)
// ---------------------------------------------------------------------------------------

/// tokio-fastcgi (FlashSystems, `src/lib.rs`, `Requests::process_sys`) answers the
/// names it knows (its `max_conns`, its `max_reqs`, `FCGI_MPXS_CONNS=1`) in one record
/// without padding (`OutRecordWriter::write_data` never pads); in debug builds the names
/// are sorted, in release builds they come in hash order. No empty record follows.
#[test]
fn tokio_fastcgi_get_values() {
    let content = pairs(&[
        ("FCGI_MAX_CONNS", "10"),
        ("FCGI_MAX_REQS", "10"),
        ("FCGI_MPXS_CONNS", "1"),
    ]);
    let answer = record0(GET_VALUES_RESULT, 0, &content);
    let want = [values(&[
        ("FCGI_MAX_CONNS", "10"),
        ("FCGI_MAX_REQS", "10"),
        ("FCGI_MPXS_CONNS", "1"),
    ])];
    let mut conn = expect(asked, &answer, &want, None);
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(()));
}

/// tokio-fastcgi's end of a request (`Request::process`): `OutStream::close` on
/// `stdout`, then on `stderr` (each writes an empty record, whether or not anything was
/// written), then `write_finish` (`END_REQUEST`). Nothing is padded.
#[test]
fn tokio_fastcgi_end_of_request_with_an_empty_stderr_always() {
    let mut input = record0(STDOUT, 1, b"Status: 204 No Content\r\n\r\n");
    input.extend(record0(STDOUT, 1, b""));
    input.extend(record0(STDERR, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    let want = [Ev::Head(1, 204, vec![]), Ev::End(1, 0, COMPLETE)];
    let conn = expect(|| one_request(Config::default()).0, &input, &want, None);
    assert!(conn.is_reusable());
}

// ---------------------------------------------------------------------------------------
// uWSGI
// ---------------------------------------------------------------------------------------

/// uWSGI's FastCGI socket (`proto/fastcgi.c`, `uwsgi_proto_fastcgi_parser`: "PARAMS ?
/// (ignore other types)") reads only `PARAMS` and `STDIN`: `GET_VALUES` gets neither an
/// answer nor `UNKNOWN_TYPE`. A client that waits for one waits until its timeout; the
/// connection ends without the answer, which the core reports. (uWSGI 2.0.21 sent
/// nothing in 2 s, and served a request sent after the `GET_VALUES` as if it were not
/// there.)
#[test]
fn uwsgi_never_answers_get_values() {
    let mut conn = asked();
    assert!(!conn.is_reusable(), "the answer is awaited");
    assert!(matches!(
        conn.receive_eof(),
        Err(Error::Protocol(ProtocolError::EofInRequest { .. }))
    ));
}

/// uWSGI's end of a request (`uwsgi_proto_fastcgi_close`): 24 fixed bytes, an empty
/// `STDOUT` and `END_REQUEST` (app status 0, complete) with the request id patched in,
/// then `uwsgi_proto_base_close` closes the connection whatever `FCGI_KEEP_CONN` said
/// (the parser never reads `BEGIN_REQUEST`'s flags). `STDOUT` records are not padded.
/// The core ends the request, then takes the end of input as a clean close. Bytes as
/// uWSGI 2.0.21 (Debian 12, its python3 plugin) wrote them for a request that asked
/// to keep the connection.
#[test]
fn uwsgi_closes_after_every_request() {
    let mut input = record0(
        STDOUT,
        1,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    );
    input.extend(record0(STDOUT, 1, b"Hello, World!"));
    input.extend(record0(STDOUT, 1, b""));
    input.extend(end_request(1, [0, 0, 0]));
    assert_eq!(
        &input[input.len() - 24..input.len() - 16],
        [1, 6, 0, 1, 0, 0, 0, 0]
    );
    let want = [
        Ev::Head(1, 200, vec![header("Content-Type", "text/plain")]),
        Ev::Body(1, b"Hello, World!".to_vec()),
        Ev::End(1, 0, COMPLETE),
    ];
    let setup = || {
        let config = Config::default();
        assert!(config.keep_conn, "the client asks to keep the connection");
        one_request(config).0
    };
    let mut conn = expect(setup, &input, &want, None);
    assert!(conn.is_reusable());
    assert_eq!(conn.receive_eof(), Ok(()));
    assert!(conn.is_closed());
    assert!(!conn.is_reusable());
}
