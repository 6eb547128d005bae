//! Benchmarks of the sans-IO core: decoding a large STDOUT stream (beside a plain memory
//! copy of the same bytes), encoding a typical request, and parsing a typical php-fpm
//! response head.
//!
//! `cargo bench -p fcgi-proto --bench proto -- --quick` for a short run.

use std::hint::black_box;
use std::io::IoSlice;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use fcgi_proto::record::{RecordDecoder, RecordHeader, RecordType, STREAM_CHUNK_LEN};
use fcgi_proto::{Config, Connection, Event, HeadParser, Params, ParamsBuilder};

/// Size of one socket read in the stream benchmarks.
const READ_LEN: usize = 64 * 1024;
/// Size of the response body in the stream benchmarks.
const BODY_LEN: usize = 16 * 1024 * 1024;

/// A typical php-fpm response head (about 400 bytes).
const PHP_HEAD: &[u8] = b"X-Powered-By: PHP/8.2.20\r\n\
Set-Cookie: PHPSESSID=9a1b2c3d4e5f60718293a4b5c6d7e8f9; path=/; HttpOnly; SameSite=Lax\r\n\
Set-Cookie: remember=eyJpZCI6NDIsImV4cCI6MTcwMDAwMDAwMH0; expires=Fri, 31 Jan 2025 10:00:00 GMT; Max-Age=2592000; path=/; secure\r\n\
Expires: Thu, 19 Nov 1981 08:52:00 GMT\r\n\
Cache-Control: no-store, no-cache, must-revalidate\r\n\
Pragma: no-cache\r\n\
Content-type: text/html; charset=UTF-8\r\n\
\r\n";

fn push_record(wire: &mut Vec<u8>, t: RecordType, content: &[u8]) {
    let header = RecordHeader::new(t, 1, u16::try_from(content.len()).expect("fits a record"));
    wire.extend_from_slice(&header.encode());
    wire.extend_from_slice(content);
}

fn push_end_request(wire: &mut Vec<u8>) {
    push_record(wire, RecordType::END_REQUEST, &[0; 8]);
}

/// The whole reply of a request with a `BODY_LEN` body, as php-fpm frames it: the head
/// and the start of the body in the first STDOUT record, then 65528-byte records, then
/// END_REQUEST.
fn big_reply() -> Vec<u8> {
    let mut stdout = Vec::with_capacity(PHP_HEAD.len() + BODY_LEN);
    stdout.extend_from_slice(PHP_HEAD);
    stdout.extend((0..BODY_LEN).map(|i| (i % 251) as u8));
    let mut wire = Vec::with_capacity(stdout.len() + stdout.len() / STREAM_CHUNK_LEN * 8 + 64);
    for chunk in stdout.chunks(STREAM_CHUNK_LEN) {
        push_record(&mut wire, RecordType::STDOUT, chunk);
    }
    push_end_request(&mut wire);
    wire
}

/// A connection with request 1 started and its (empty) body finished, output discarded.
fn started_connection(params: &Params) -> Connection {
    let mut conn = Connection::new(Config::default());
    let id = conn.start_request(params).expect("request starts");
    conn.finish_stdin(id).expect("empty body");
    let queued = conn.transmit_len();
    conn.consume_transmit(queued);
    conn
}

/// Drains events; returns whether the request ended.
fn drain(conn: &mut Connection) -> bool {
    let mut ended = false;
    while let Some(event) = conn.poll_event() {
        if let Event::End { .. } = event {
            ended = true;
        }
        black_box(event);
    }
    ended
}

fn stream_decode(c: &mut Criterion) {
    let wire = big_reply();
    let params = Params::new();
    let mut group = c.benchmark_group("stdout_16MiB");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.sample_size(20);

    // Baseline: the copy a read makes, 64 KiB at a time into one buffer.
    group.bench_function("copy_64k_baseline", |b| {
        let mut buf = vec![0u8; READ_LEN];
        b.iter(|| {
            for piece in black_box(&wire[..]).chunks(READ_LEN) {
                buf[..piece.len()].copy_from_slice(piece);
                black_box(&mut buf);
            }
        });
    });

    group.bench_function("record_decoder", |b| {
        let mut buf = BytesMut::with_capacity(2 * READ_LEN);
        b.iter(|| {
            let mut decoder = RecordDecoder::new();
            let mut bytes = 0;
            for piece in black_box(&wire[..]).chunks(READ_LEN) {
                buf.extend_from_slice(piece);
                while let Some(fragment) = decoder.decode(&mut buf).expect("valid records") {
                    bytes += fragment.data.len();
                }
            }
            assert!(buf.is_empty());
            bytes
        });
    });

    group.bench_function("connection", |b| {
        b.iter(|| {
            let mut conn = started_connection(&params);
            let mut rest = black_box(&wire[..]);
            let mut ended = false;
            while !rest.is_empty() {
                let room = conn.input_buffer();
                let n = room.len().min(READ_LEN).min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                conn.input_written(n).expect("valid reply");
                ended = drain(&mut conn);
            }
            assert!(ended);
            conn
        });
    });
    group.finish();
}

fn typical_request() -> ParamsBuilder<'static> {
    let remote: SocketAddr = "203.0.113.7:51234".parse().expect("an address");
    let local: SocketAddr = "192.0.2.10:443".parse().expect("an address");
    ParamsBuilder::new("GET", "/index.php?page=2&sort=desc&q=fastcgi")
        .document_root("/srv/www/example.com/public")
        .script("/index.php", "/srv/www/example.com/public/index.php")
        .remote_addr(remote)
        .server_addr(local)
        .https(true)
        .header("Host", "example.com")
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
        .header(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("Accept-Language", "en-US,en;q=0.5")
        .header("Accept-Encoding", "gzip, deflate, br, zstd")
        .header("Referer", "https://example.com/index.php?page=1")
        .header(
            "Cookie",
            "PHPSESSID=9a1b2c3d4e5f60718293a4b5c6d7e8f9; theme=dark",
        )
        .header("Upgrade-Insecure-Requests", "1")
}

fn request_encode(c: &mut Criterion) {
    let prebuilt = typical_request().build().expect("valid params");
    let mut conn = Connection::new(Config::default());
    let id = conn.start_request(&prebuilt).expect("starts");
    conn.finish_stdin(id).expect("empty body");
    eprintln!(
        "typical request: {} params, {} bytes of pairs, {} bytes on the wire",
        prebuilt.len(),
        prebuilt.encoded_len(),
        conn.transmit_len()
    );
    let mut group = c.benchmark_group("request_encode");
    group.throughput(Throughput::Elements(1));

    group.bench_function("params_build", |b| {
        b.iter(|| black_box(typical_request()).build().expect("valid params"));
    });

    // A fresh connection per request, dropped inside the timed region: `Connection::new`
    // allocates nothing, and dropping frees what the request allocated, as writing its
    // output out would on a kept connection. (Keeping thousands of connections alive
    // until a batch ends, as `iter_batched` does, measured page faults instead.)
    group.bench_function("start_request_prebuilt", |b| {
        b.iter(|| {
            let mut conn = Connection::new(Config::default());
            black_box(conn.start_request(black_box(&prebuilt)).expect("starts"));
            black_box(conn.transmit_len());
        });
    });

    // What a web server does per request: build the params, start the request, end the
    // empty body, hand the queued bytes to one vectored write.
    group.bench_function("build_start_finish_transmit", |b| {
        b.iter(|| {
            let mut conn = Connection::new(Config::default());
            let params = black_box(typical_request()).build().expect("valid params");
            let id = conn.start_request(&params).expect("starts");
            conn.finish_stdin(id).expect("empty body");
            let mut slices = [IoSlice::new(&[]); 8];
            let n = conn.transmit(&mut slices);
            let written: usize = slices[..n].iter().map(|s| s.len()).sum();
            black_box(&slices[..n]);
            conn.consume_transmit(written);
            black_box(written);
        });
    });
    group.finish();
}

fn response_head(c: &mut Criterion) {
    let body = b"<!DOCTYPE html><html><body>Hello</body></html>";
    let mut stdout = PHP_HEAD.to_vec();
    stdout.extend_from_slice(body);
    let stdout = Bytes::from(stdout);
    let mut wire = Vec::new();
    push_record(&mut wire, RecordType::STDOUT, &stdout);
    push_end_request(&mut wire);
    let params = Params::new();

    eprintln!("php-fpm head: {} bytes", PHP_HEAD.len());
    let mut group = c.benchmark_group("response_head");
    group.throughput(Throughput::Bytes(PHP_HEAD.len() as u64));

    group.bench_function("head_parser_one_piece", |b| {
        b.iter(|| {
            let mut parser = HeadParser::new(64 * 1024);
            let (head, rest) = parser
                .feed(black_box(stdout.clone()))
                .expect("valid head")
                .expect("whole head");
            black_box(rest);
            head
        });
    });

    // A fresh connection per response: its first read allocates the input buffer.
    group.bench_function("connection_one_record_fresh", |b| {
        b.iter_batched(
            || started_connection(&params),
            |mut conn| {
                conn.receive(black_box(&wire)).expect("valid reply");
                assert!(drain(&mut conn));
                conn
            },
            BatchSize::PerIteration,
        );
    });

    // One kept connection, as a pool uses it: start a request (no params, no body), take
    // its output, feed the reply, drain. Includes the small cost of starting the request.
    group.bench_function("connection_one_record_kept", |b| {
        let mut conn = Connection::new(Config::default());
        b.iter(|| {
            let id = conn.start_request(&params).expect("starts");
            conn.finish_stdin(id).expect("empty body");
            let queued = conn.transmit_len();
            conn.consume_transmit(queued);
            conn.receive(black_box(&wire)).expect("valid reply");
            assert!(drain(&mut conn));
        });
        assert!(conn.is_reusable());
    });
    group.finish();
}

// `criterion_group!` would define an undocumented `pub fn`, which the workspace lints
// reject; this is what it and `criterion_main!` expand to.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    stream_decode(&mut criterion);
    request_encode(&mut criterion);
    response_head(&mut criterion);
    criterion.final_summary();
}
