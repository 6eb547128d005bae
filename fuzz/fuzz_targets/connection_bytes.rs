//! A `Connection` with one request started (body finished and written), then arbitrary
//! peer bytes in arbitrary pieces, each fed with `receive`, through
//! `input_buffer`/`input_written` (initialized room, as `Read` fills it) or through
//! `input_buf`/`input_written` (spare capacity, as tokio's `read_buf` appends to it),
//! events drained after the feed (unless the generator says to skip a drain, which
//! exercises `Limit::BufferedInput`).
//!
//! Input: four config bytes (`max_head_bytes` = 64 * b0, `max_stderr_bytes` = 16 * b1,
//! `max_buffered_input` = 1 + 256 * b2, `keep_conn` = b3 & 1), two split control bytes
//! (see `fcgi_fuzz::Splits`), then the peer's bytes. A seed captured from php-fpm answers
//! request id 1, the id the connection gives its first request.
//!
//! Checks: no panic; every error is `Error::Protocol`, sticky (later calls answer the same
//! error and `error()` reports it), or `Error::Limit(BufferedInput)` while undrained events
//! hold at least the limit; events follow the documented order; delivered body and stderr
//! bytes never exceed the bytes fed, stderr never exceeds its limit; the bytes held in
//! undrained events stay below the limit plus one feed; `receive_eof` at the end is `Ok`
//! only when nothing is in flight.
#![no_main]

use fcgi_fuzz::{EventChecker, Splits};
use fcgi_proto::error::{Error, Limit};
use fcgi_proto::{Config, Connection, Event, ParamsBuilder};
use libfuzzer_sys::fuzz_target;

const CONFIG_LEN: usize = 4;

/// How a piece of peer bytes reaches the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `receive(piece)`.
    Receive,
    /// Copied into `input_buffer()`'s initialized room, then `input_written`.
    Room,
    /// Appended to `input_buf()`'s spare capacity, then `input_written`.
    Spare,
}

struct Harness {
    conn: Connection,
    checker: EventChecker,
    fed: usize,
    /// Bytes accepted since the last drain.
    fed_since_drain: usize,
}

impl Harness {
    fn drain(&mut self) {
        let max_stderr = self.conn.config().max_stderr_bytes;
        let max_buffered = self.conn.config().max_buffered_input;
        let mut pending = 0usize;
        while let Some(event) = self.conn.poll_event() {
            if let Event::Body { data, .. } | Event::Stderr { data, .. } = &event {
                pending += data.len();
            }
            self.checker.event(&event, max_stderr);
        }
        assert!(
            pending < max_buffered + self.fed_since_drain,
            "{pending} bytes held in events, limit {max_buffered}, fed {}",
            self.fed_since_drain
        );
        assert!(self.checker.data_bytes <= self.fed);
        self.fed_since_drain = 0;
    }

    /// Feeds `piece` by one of the three input paths; returns the error, if any.
    fn feed(&mut self, piece: &[u8], path: Path) -> Result<(), Error> {
        if path == Path::Receive {
            let result = self.conn.receive(piece);
            if !matches!(result, Err(Error::Limit(_))) {
                // Taken, even on a protocol error: events before it stay drainable.
                self.accepted(piece.len());
            }
            return result;
        }
        let mut rest = piece;
        while !rest.is_empty() {
            let n = if path == Path::Room {
                let room = self.conn.input_buffer();
                assert!(
                    room.len() >= 8 * 1024,
                    "input_buffer offers {} bytes",
                    room.len()
                );
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                n
            } else {
                let buf = self.conn.input_buf();
                let spare = buf.capacity() - buf.len();
                assert!(spare >= 8 * 1024, "input_buf offers {spare} bytes");
                let n = spare.min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                n
            };
            match self.conn.input_written(n) {
                Ok(()) => {}
                Err(Error::Limit(e)) => {
                    // Nothing was taken: drain, then the same `n` again (as documented).
                    assert_eq!(e.limit, Limit::BufferedInput);
                    self.drain();
                    if let Err(e) = self.conn.input_written(n) {
                        self.accepted(n);
                        return Err(e);
                    }
                }
                Err(e) => {
                    self.accepted(n);
                    return Err(e);
                }
            }
            self.accepted(n);
            rest = &rest[n..];
        }
        Ok(())
    }

    fn accepted(&mut self, n: usize) {
        self.fed += n;
        self.fed_since_drain += n;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((cfg, rest)) = input.split_first_chunk::<CONFIG_LEN>() else {
        return;
    };
    let mut config = Config::default();
    config.max_head_bytes = 64 * usize::from(cfg[0]);
    config.max_stderr_bytes = 16 * usize::from(cfg[1]);
    config.max_buffered_input = 1 + 256 * usize::from(cfg[2]);
    config.keep_conn = cfg[3] & 1 == 1;
    let (mut splits, data) = Splits::new(rest);

    let mut conn = Connection::new(config);
    let params = ParamsBuilder::new("GET", "/hello.php")
        .script("/hello.php", "/srv/www/hello.php")
        .build()
        .expect("valid params");
    let id = conn.start_request(&params).expect("first request starts");
    conn.finish_stdin(id).expect("no body declared");
    let queued = conn.transmit_len();
    conn.consume_transmit(queued);
    assert_eq!(conn.transmit_len(), 0);
    let mut h = Harness {
        conn,
        checker: EventChecker::default(),
        fed: 0,
        fed_since_drain: 0,
    };
    h.checker.started(id);

    let mut failed = None;
    let mut rest = data;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(splits.next_len(rest.len()));
        let choice = splits.next_u32();
        let path = match (choice & 1, choice & 8) {
            (0, _) => Path::Receive,
            (_, 0) => Path::Room,
            _ => Path::Spare,
        };
        let skip_drain = choice & 0x6 == 0x6;
        match h.feed(piece, path) {
            Ok(()) => rest = tail,
            Err(Error::Limit(e)) => {
                // `receive` refuses a piece while undrained events hold the limit.
                assert_eq!(e.limit, Limit::BufferedInput);
                assert!(path == Path::Receive);
                h.drain();
                continue;
            }
            Err(Error::Protocol(e)) => {
                failed = Some(e);
                break;
            }
            Err(other) => panic!("unexpected error from peer bytes: {other:?}"),
        }
        if !skip_drain {
            h.drain();
        }
    }
    // Events queued before an error stay drainable.
    h.drain();
    if let Some(e) = failed {
        assert_eq!(h.conn.error(), Some(&e));
        let sticky = Err(Error::Protocol(e));
        assert_eq!(h.conn.receive(b"\x01\x06\x00\x01\x00\x00\x00\x00"), sticky);
        assert_eq!(h.conn.input_written(0), sticky);
        assert_eq!(h.conn.receive_eof(), sticky);
        assert!(!h.conn.can_start_request() && !h.conn.is_reusable());
        assert_eq!(h.conn.start_request(&params), sticky.map(|()| id));
        assert_eq!(h.conn.transmit_len(), 0);
        return;
    }
    assert_eq!(h.conn.in_flight(), h.checker.in_flight());
    match h.conn.receive_eof() {
        Ok(()) => assert_eq!(h.conn.in_flight(), 0),
        Err(Error::Protocol(e)) => assert_eq!(h.conn.error(), Some(&e)),
        Err(other) => panic!("unexpected error from receive_eof: {other:?}"),
    }
    h.drain();
    assert!(h.conn.is_closed() && !h.conn.is_reusable());
});
