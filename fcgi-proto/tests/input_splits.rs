//! The input side of `Connection` however the server's bytes are cut into reads.
//!
//! A whole record that is already in the buffer is decoded on a fast path (header read in
//! place, padding taken with it); a record cut by a read goes through the record decoder's
//! state machine. These tests feed the same bytes whole, cut at every offset, byte by byte
//! and in random pieces, through `receive`, `input_buffer` and `input_buf`, and check that
//! the events (with body and stderr bytes merged, since their grouping follows the reads),
//! the error and the connection's state come out the same.

use bytes::{Bytes, BytesMut};
use fcgi_proto::record::{RecordHeader, RecordType};
use fcgi_proto::{
    Config, Connection, Error, Event, HeadError, ParamsBuilder, ProtocolError, ProtocolStatus,
    RequestId,
};
use proptest::prelude::*;

/// How a piece of input reaches the connection.
#[derive(Clone, Copy, Debug)]
enum Feed {
    /// `receive` (a copy).
    Receive,
    /// `input_buffer` / `input_written`: a reader that needs initialized memory.
    Buffer,
    /// `input_buf` / `input_written`: a reader that appends to spare capacity.
    Buf,
}

const FEEDS: [Feed; 3] = [Feed::Receive, Feed::Buffer, Feed::Buf];

fn feed(conn: &mut Connection, how: Feed, data: &[u8]) -> Result<(), Error> {
    match how {
        Feed::Receive => conn.receive(data),
        Feed::Buffer => {
            let mut at = 0;
            while at < data.len() {
                let room = conn.input_buffer();
                let n = room.len().min(data.len() - at);
                room[..n].copy_from_slice(&data[at..at + n]);
                conn.input_written(n)?;
                at += n;
            }
            Ok(())
        }
        Feed::Buf => {
            let mut at = 0;
            while at < data.len() {
                let buf = conn.input_buf();
                let n = (buf.capacity() - buf.len()).min(data.len() - at);
                buf.extend_from_slice(&data[at..at + n]);
                conn.input_written(n)?;
                at += n;
            }
            Ok(())
        }
    }
}

/// A record with its padding (filled with `0xAA`), as a server may frame it.
fn record(out: &mut Vec<u8>, t: RecordType, id: u16, content: &[u8], padding: u8) {
    let mut header = RecordHeader::new(t, id, u16::try_from(content.len()).unwrap());
    header.padding_length = padding;
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding), 0xAA);
}

fn end_body(app_status: u32, status: ProtocolStatus) -> [u8; 8] {
    let a = app_status.to_be_bytes();
    [a[0], a[1], a[2], a[3], status.0, 0, 0, 0]
}

/// What the client asked before the server's bytes: `requests` requests started (ids 1
/// up), `values` `GET_VALUES` queries.
#[derive(Clone, Copy, Debug)]
struct Setup {
    requests: u16,
    values: usize,
}

fn connection(setup: Setup) -> (Connection, Vec<RequestId>) {
    let mut config = Config::default();
    config.max_concurrent_requests = setup.requests.max(1);
    config.max_stderr_bytes = 40;
    let mut conn = Connection::new(config);
    let params = ParamsBuilder::new("GET", "/").build().unwrap();
    let mut ids = Vec::new();
    for _ in 0..setup.requests {
        let id = conn.start_request(&params).unwrap();
        conn.finish_stdin(id).unwrap();
        ids.push(id);
    }
    for _ in 0..setup.values {
        conn.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
    }
    let n = conn.transmit_len();
    conn.consume_transmit(n);
    (conn, ids)
}

/// Appends an event, merging it into the last one when both carry body (or stderr)
/// bytes of the same request.
fn push_merged(events: &mut Vec<Event>, event: Event) {
    match (events.last_mut(), event) {
        (Some(Event::Body { id: a, data: d }), Event::Body { id: b, data })
        | (Some(Event::Stderr { id: a, data: d }), Event::Stderr { id: b, data })
            if *a == b =>
        {
            let mut joined = BytesMut::from(&d[..]);
            joined.extend_from_slice(&data);
            *d = joined.freeze();
        }
        (_, event) => events.push(event),
    }
}

/// Everything a run shows: the merged events, the first error, and the state after.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<Error>,
    in_flight: usize,
    reusable: bool,
}

/// Feeds `wire` cut at `cuts` (increasing offsets), the pieces fed as `hows` says in
/// turn; drains events after every piece and stops at the first error.
fn run(setup: Setup, wire: &[u8], cuts: &[usize], hows: &[Feed]) -> Outcome {
    let (mut conn, _) = connection(setup);
    let mut events = Vec::new();
    let mut error = None;
    let mut start = 0;
    let ends = cuts.iter().copied().chain([wire.len()]);
    for (k, end) in ends.enumerate() {
        let result = feed(&mut conn, hows[k % hows.len()], &wire[start..end]);
        start = end;
        // Events queued before an error stay drainable.
        while let Some(event) = conn.poll_event() {
            assert!(
                !matches!(&event, Event::Body { data, .. } | Event::Stderr { data, .. } if data.is_empty()),
                "empty body or stderr event"
            );
            push_merged(&mut events, event);
        }
        if let Err(e) = result {
            error = Some(e);
            break;
        }
    }
    Outcome {
        events,
        error,
        in_flight: conn.in_flight(),
        reusable: conn.is_reusable(),
    }
}

/// Checks that `wire` gives the same outcome whole (through each way of feeding), cut
/// once at every offset, cut twice at every pair of offsets when `pairs`, and byte by
/// byte; returns the outcome.
fn same_however_cut(setup: Setup, wire: &[u8], pairs: bool) -> Outcome {
    let whole = run(setup, wire, &[], &[Feed::Receive]);
    for how in FEEDS {
        assert_eq!(
            run(setup, wire, &[], &[how]),
            whole,
            "whole through {how:?}"
        );
        let bytewise: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(
            run(setup, wire, &bytewise, &[how]),
            whole,
            "bytewise through {how:?}"
        );
    }
    for cut in 0..=wire.len() {
        for (i, how) in FEEDS.iter().enumerate() {
            let other = FEEDS[(i + 1) % FEEDS.len()];
            assert_eq!(
                run(setup, wire, &[cut], &[*how, other]),
                whole,
                "cut at {cut} through {how:?} then {other:?}"
            );
        }
        if pairs {
            for second in cut..=wire.len() {
                assert_eq!(
                    run(setup, wire, &[cut, second], &FEEDS),
                    whole,
                    "cut at {cut} and {second}"
                );
            }
        }
    }
    whole
}

const PHP_STDOUT: &[u8] =
    b"X-Powered-By: PHP/8.2.28\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello world";

/// php-fpm's answer to a small request (one read's worth): the output, the end of the
/// stream, END_REQUEST; with the given padding on each record.
fn php_reply(id: u16, paddings: [u8; 3]) -> Vec<u8> {
    let mut wire = Vec::new();
    record(&mut wire, RecordType::STDOUT, id, PHP_STDOUT, paddings[0]);
    record(&mut wire, RecordType::STDOUT, id, b"", paddings[1]);
    let end = end_body(0, ProtocolStatus::REQUEST_COMPLETE);
    record(&mut wire, RecordType::END_REQUEST, id, &end, paddings[2]);
    wire
}

#[test]
fn small_reply_split_anywhere() {
    let one = Setup {
        requests: 1,
        values: 0,
    };
    for paddings in [[0, 0, 0], [5, 0, 0], [0, 7, 1], [255, 255, 255], [3, 0, 8]] {
        let wire = php_reply(1, paddings);
        let outcome = same_however_cut(one, &wire, paddings == [3, 0, 8]);
        assert_eq!(outcome.error, None);
        assert!(outcome.reusable && outcome.in_flight == 0);
        match &outcome.events[..] {
            [Event::Head { head, .. }, Event::Body { data, .. }, Event::End { end, .. }] => {
                assert_eq!(head.status(), 200);
                assert_eq!(&data[..], b"Hello world");
                assert!(end.protocol_status.is_complete());
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn several_records_and_requests_in_one_read() {
    // Two multiplexed requests, stderr, a management answer in between and padding
    // everywhere: every record is whole in the one read.
    let setup = Setup {
        requests: 2,
        values: 1,
    };
    let mut wire = Vec::new();
    record(&mut wire, RecordType::STDERR, 2, b"warning: x", 3);
    record(
        &mut wire,
        RecordType::STDOUT,
        1,
        b"Status: 404 Not Found\r\n",
        0,
    );
    record(&mut wire, RecordType::STDOUT, 2, b"A: b\r\n\r\nfirst ", 1);
    record(
        &mut wire,
        RecordType::GET_VALUES_RESULT,
        0,
        b"\x0f\x01FCGI_MPXS_CONNS1",
        7,
    );
    record(&mut wire, RecordType::STDOUT, 1, b"\r\nnot found", 2);
    record(&mut wire, RecordType::STDOUT, 2, b"second", 0);
    record(&mut wire, RecordType::STDERR, 1, &[b'e'; 50], 6);
    record(&mut wire, RecordType::STDOUT, 2, b"", 0);
    record(&mut wire, RecordType::STDERR, 2, b"", 4);
    let end = end_body(3, ProtocolStatus::REQUEST_COMPLETE);
    record(&mut wire, RecordType::END_REQUEST, 2, &end, 0);
    record(&mut wire, RecordType::STDOUT, 1, b"", 255);
    record(
        &mut wire,
        RecordType::UNKNOWN_TYPE,
        0,
        &[42, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    let end = end_body(0, ProtocolStatus::REQUEST_COMPLETE);
    record(&mut wire, RecordType::END_REQUEST, 1, &end, 5);
    let outcome = same_however_cut(setup, &wire, false);
    assert_eq!(outcome.error, None);
    assert!(outcome.reusable && outcome.in_flight == 0);
    let kinds: Vec<String> = outcome
        .events
        .iter()
        .map(|e| match e {
            Event::Head { id, head } => format!("head {id} {}", head.status()),
            Event::Body { id, data } => format!("body {id} {}", String::from_utf8_lossy(data)),
            Event::Stderr { id, data } => format!("stderr {id} {}", data.len()),
            Event::End { id, end } => format!("end {id} {} {}", end.app_status, end.stderr_dropped),
            Event::Values(v) => format!("values {}", v.multiplexes()),
            Event::UnknownType(t) => format!("unknown {}", t.0),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "stderr 2 10",
            "head 2 200",
            "body 2 first ",
            "values true",
            "head 1 404",
            "body 1 not found",
            "body 2 second",
            // 40 bytes of stderr are kept per request (the test's limit).
            "stderr 1 40",
            "end 2 3 0",
            "unknown 42",
            "end 1 0 10",
        ]
    );
}

#[test]
fn padding_across_reads() {
    let one = Setup {
        requests: 1,
        values: 0,
    };
    let wire = php_reply(1, [6, 6, 6]);
    // Every record ends before its padding: cut there, and inside the padding.
    let content_ends = [
        8 + PHP_STDOUT.len(),
        8 + PHP_STDOUT.len() + 6 + 8,
        wire.len() - 6,
    ];
    for end in content_ends {
        for cut in end..=end + 6 {
            let (mut conn, _) = connection(one);
            let mut events = Vec::new();
            feed(&mut conn, Feed::Buf, &wire[..cut]).unwrap();
            while let Some(e) = conn.poll_event() {
                push_merged(&mut events, e);
            }
            if cut == wire.len() - 6 {
                // END_REQUEST is decoded, its padding is not all here: not yet reusable.
                assert_eq!(conn.in_flight(), 0);
                assert!(!conn.is_reusable(), "padding still to come at {cut}");
            }
            feed(&mut conn, Feed::Buffer, &wire[cut..]).unwrap();
            while let Some(e) = conn.poll_event() {
                push_merged(&mut events, e);
            }
            assert!(conn.is_reusable(), "cut at {cut}");
            assert_eq!(events.len(), 3, "cut at {cut}");
        }
    }
    // The next reply follows on the same connection after a padded one.
    let (mut conn, _) = connection(one);
    let mut wire = php_reply(1, [1, 2, 3]);
    feed(&mut conn, Feed::Buf, &wire[..wire.len() - 2]).unwrap();
    let params = ParamsBuilder::new("GET", "/").build().unwrap();
    while conn.poll_event().is_some() {}
    let id = conn.start_request(&params).unwrap();
    conn.finish_stdin(id).unwrap();
    let n = conn.transmit_len();
    conn.consume_transmit(n);
    let tail = wire.split_off(wire.len() - 2);
    let mut next = tail;
    next.extend(php_reply(id.get(), [0, 0, 0]));
    feed(&mut conn, Feed::Buf, &next).unwrap();
    let mut events = Vec::new();
    while let Some(e) = conn.poll_event() {
        push_merged(&mut events, e);
    }
    assert_eq!(events.len(), 3);
    assert!(conn.is_reusable());
}

#[test]
fn errors_the_same_however_cut() {
    let one = Setup {
        requests: 1,
        values: 0,
    };
    let reply = php_reply(1, [2, 0, 0]);
    // The valid reply up to END_REQUEST, then something wrong.
    let prefix = &reply[..8 + PHP_STDOUT.len() + 2];
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (
            {
                let mut w = prefix.to_vec();
                w.extend_from_slice(&[2, 6, 0, 1, 0, 0, 0, 0]);
                w
            },
            ProtocolError::BadVersion(2),
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::STDOUT, 7, b"x", 0);
                w
            },
            ProtocolError::UnknownRequest {
                record_type: RecordType::STDOUT,
                request_id: 7,
            },
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::STDOUT, 1, b"", 3);
                record(&mut w, RecordType::STDOUT, 1, b"more", 0);
                w
            },
            ProtocolError::AfterEndOfStream {
                record_type: RecordType::STDOUT,
                request_id: 1,
            },
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::STDERR, 1, b"", 0);
                record(&mut w, RecordType::STDERR, 1, b"", 0);
                w
            },
            ProtocolError::AfterEndOfStream {
                record_type: RecordType::STDERR,
                request_id: 1,
            },
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::END_REQUEST, 1, &[0; 5], 1);
                w
            },
            ProtocolError::BadEndRequestLength(5),
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::END_REQUEST, 0, &[0; 8], 0);
                w
            },
            ProtocolError::UnexpectedRecordType {
                record_type: RecordType::END_REQUEST,
                request_id: 0,
            },
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::PARAMS, 1, b"", 0);
                w
            },
            ProtocolError::UnexpectedRecordType {
                record_type: RecordType::PARAMS,
                request_id: 1,
            },
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::GET_VALUES_RESULT, 0, b"", 0);
                w
            },
            ProtocolError::UnsolicitedValues,
        ),
        (
            {
                let mut w = prefix.to_vec();
                record(&mut w, RecordType::UNKNOWN_TYPE, 0, &[1, 2, 3], 4);
                w
            },
            ProtocolError::BadUnknownTypeLength(3),
        ),
    ];
    for (wire, expected) in cases {
        let outcome = same_however_cut(one, &wire, false);
        assert_eq!(outcome.error, Some(Error::Protocol(expected)));
        // The head and body before the bad record were delivered.
        match &outcome.events[..] {
            [Event::Head { .. }, Event::Body { data, .. }] => assert_eq!(&data[..], b"Hello world"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn late_records_of_an_aborted_request_are_dropped_however_cut() {
    // Go's net/http/fcgi ends an aborted request at once, then writes its output and a
    // second END_REQUEST.
    let end = end_body(0, ProtocolStatus::REQUEST_COMPLETE);
    let mut first = Vec::new();
    record(&mut first, RecordType::END_REQUEST, 1, &end, 0);
    let mut late = Vec::new();
    record(&mut late, RecordType::STDOUT, 1, PHP_STDOUT, 3);
    record(&mut late, RecordType::STDERR, 1, b"late", 0);
    record(&mut late, RecordType::END_REQUEST, 1, &end, 1);
    // After the second END_REQUEST the id is unknown again.
    record(&mut late, RecordType::STDOUT, 1, b"x", 0);
    for cut in 0..=late.len() {
        for how in FEEDS {
            let (mut conn, ids) = connection(Setup {
                requests: 1,
                values: 0,
            });
            conn.abort(ids[0]).unwrap();
            feed(&mut conn, how, &first).unwrap();
            assert!(matches!(conn.poll_event(), Some(Event::End { .. })));
            let results = [
                feed(&mut conn, how, &late[..cut]),
                feed(&mut conn, how, &late[cut..]),
            ];
            assert!(conn.poll_event().is_none(), "late output dropped");
            let error = results.into_iter().find_map(Result::err);
            assert_eq!(
                error,
                Some(Error::Protocol(ProtocolError::UnknownRequest {
                    record_type: RecordType::STDOUT,
                    request_id: 1,
                })),
                "cut at {cut} through {how:?}"
            );
        }
    }
}

#[test]
fn body_is_a_slice_of_the_read_after_earlier_records() {
    // A record after others in the same read is still handed out without a copy.
    let (mut conn, _) = connection(Setup {
        requests: 1,
        values: 0,
    });
    let mut wire = Vec::new();
    record(&mut wire, RecordType::STDERR, 1, b"e", 7);
    record(&mut wire, RecordType::STDOUT, 1, b"A: b\r\n\r\n", 1);
    record(&mut wire, RecordType::STDOUT, 1, b"body", 0);
    let buf = conn.input_buf();
    let start = buf.as_ptr() as usize + buf.len();
    buf.extend_from_slice(&wire);
    conn.input_written(wire.len()).unwrap();
    let mut body = None;
    while let Some(e) = conn.poll_event() {
        if let Event::Body { data, .. } = e {
            body = Some(data);
        }
    }
    let body: Bytes = body.unwrap();
    assert_eq!(&body[..], b"body");
    assert_eq!(body.as_ptr() as usize, start + wire.len() - 4, "copied");
}

// ----- random sessions -----

/// One server record of a random session.
#[derive(Clone, Debug)]
struct Rec {
    t: RecordType,
    id: u16,
    content: Vec<u8>,
    padding: u8,
}

/// A valid reply for `requests` multiplexed requests and `values` management answers,
/// records interleaved as `order` picks; then optionally one byte changed.
fn session_strategy() -> impl Strategy<Value = (Setup, Vec<Rec>)> {
    (1u16..=3, 0usize..=1).prop_flat_map(|(requests, values)| {
        let per_request = (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..4),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 1..60), 0..3),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![4 => Just(0u8), 1 => 1u8..=3],
        );
        (
            Just(Setup { requests, values }),
            prop::collection::vec(per_request, usize::from(requests)),
            prop::collection::vec(any::<prop::sample::Index>(), 0..64),
            prop::collection::vec(
                prop_oneof![3 => Just(0u8), 2 => 1u8..=9, 1 => any::<u8>()],
                1..8,
            ),
            any::<bool>(),
        )
            .prop_map(|(setup, per, order, paddings, head_first)| {
                let mut queues: Vec<Vec<Rec>> = Vec::new();
                let mut p = 0;
                let mut pad = || {
                    p += 1;
                    paddings[p % paddings.len()]
                };
                for (k, (stdout, stderr, close_out, close_err, status)) in per.iter().enumerate() {
                    let id = k as u16 + 1;
                    let mut q = Vec::new();
                    if head_first {
                        let head = b"Content-type: text/plain\r\n\r\n".to_vec();
                        q.push(Rec {
                            t: RecordType::STDOUT,
                            id,
                            content: head,
                            padding: pad(),
                        });
                    }
                    let mut errs = stderr.iter();
                    for chunk in stdout {
                        q.push(Rec {
                            t: RecordType::STDOUT,
                            id,
                            content: chunk.clone(),
                            padding: pad(),
                        });
                        if let Some(e) = errs.next() {
                            q.push(Rec {
                                t: RecordType::STDERR,
                                id,
                                content: e.clone(),
                                padding: pad(),
                            });
                        }
                    }
                    for e in errs {
                        q.push(Rec {
                            t: RecordType::STDERR,
                            id,
                            content: e.clone(),
                            padding: pad(),
                        });
                    }
                    if *close_out {
                        q.push(Rec {
                            t: RecordType::STDOUT,
                            id,
                            content: Vec::new(),
                            padding: pad(),
                        });
                    }
                    if *close_err {
                        q.push(Rec {
                            t: RecordType::STDERR,
                            id,
                            content: Vec::new(),
                            padding: pad(),
                        });
                    }
                    let end = end_body(u32::from(*status), ProtocolStatus(*status % 3));
                    q.push(Rec {
                        t: RecordType::END_REQUEST,
                        id,
                        content: end.to_vec(),
                        padding: pad(),
                    });
                    q.reverse();
                    queues.push(q);
                }
                if setup.values > 0 {
                    let values = b"\x0f\x01FCGI_MPXS_CONNS1".to_vec();
                    queues.push(vec![Rec {
                        t: RecordType::GET_VALUES_RESULT,
                        id: 0,
                        content: values,
                        padding: pad(),
                    }]);
                }
                let mut records = Vec::new();
                let mut order = order.into_iter();
                loop {
                    let open: Vec<usize> = (0..queues.len())
                        .filter(|&k| !queues[k].is_empty())
                        .collect();
                    if open.is_empty() {
                        break;
                    }
                    let k = order.next().map_or(open[0], |i| open[i.index(open.len())]);
                    records.push(queues[k].pop().unwrap());
                }
                (setup, records)
            })
    })
}

fn wire_of(records: &[Rec]) -> Vec<u8> {
    let mut wire = Vec::new();
    for r in records {
        record(&mut wire, r.t, r.id, &r.content, r.padding);
    }
    wire
}

/// Increasing cut offsets from piece sizes.
fn cuts_of(len: usize, sizes: &[usize]) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut at = 0;
    for k in 0.. {
        at += sizes[k % sizes.len()].max(1);
        if at >= len {
            break;
        }
        cuts.push(at);
    }
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However a session's bytes are cut into reads and fed, the merged events, the
    /// error (after one corrupted byte) and the connection's state are those of a single
    /// read.
    #[test]
    fn events_independent_of_reads(
        (setup, records) in session_strategy(),
        sizes in prop::collection::vec(prop_oneof![1usize..=9, 1usize..=400], 1..6),
        hows in prop::collection::vec(prop::sample::select(&FEEDS[..]), 1..4),
        corrupt in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let mut wire = wire_of(&records);
        if let Some((at, byte)) = corrupt {
            let at = at.index(wire.len());
            wire[at] = byte;
        }
        let whole = run(setup, &wire, &[], &[Feed::Receive]);
        let cuts = cuts_of(wire.len(), &sizes);
        prop_assert_eq!(&run(setup, &wire, &cuts, &hows), &whole);
        if corrupt.is_none() {
            prop_assert_eq!(&whole.error, &None);
            prop_assert!(whole.reusable && whole.in_flight == 0);
            let ends = whole.events.iter().filter(|e| matches!(e, Event::End { .. })).count();
            prop_assert_eq!(ends, usize::from(setup.requests));
            let too_large = whole.events.iter().any(|e| {
                matches!(e, Event::HeadError { error: HeadError::TooLarge { .. }, .. })
            });
            prop_assert!(!too_large);
        }
    }
}
