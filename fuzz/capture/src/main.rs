//! Captures raw php-fpm exchanges and writes them as seeds under `fuzz/corpus-seed/`.
//!
//! Run from the repository root: `fuzz/capture-seeds` (or
//! `cargo run --manifest-path fuzz/capture/Cargo.toml`). It starts a private php-fpm with
//! `fcgi_testkit::PhpFpm`, sends requests encoded by `fcgi_proto::Connection` over a plain
//! `UnixStream`, and records the bytes php-fpm answers, before any parsing. Each seed is
//! the raw bytes behind the control prefix its target reads (see `fuzz/README.md`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use bytes::BytesMut;
use fcgi_proto::record::{RecordDecoder, RecordType};
use fcgi_proto::{Config, Connection, Event, ParamsBuilder};
use fcgi_testkit::PhpFpm;

/// Writes everything `conn` queued to `sock`; returns the bytes written.
fn flush(conn: &mut Connection, sock: &mut UnixStream) -> Vec<u8> {
    let mut sent = Vec::new();
    while conn.transmit_len() > 0 {
        let chunk = conn
            .transmit_chunks()
            .next()
            .expect("queued output")
            .to_vec();
        sock.write_all(&chunk).expect("write to php-fpm");
        conn.consume_transmit(chunk.len());
        sent.extend_from_slice(&chunk);
    }
    sent
}

/// Reads from `sock`, feeding `conn`, until `done` says the exchange is over or the peer
/// closes; returns the raw bytes read.
fn read_until(
    conn: &mut Connection,
    sock: &mut UnixStream,
    mut done: impl FnMut(&Event) -> bool,
) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock.read(&mut buf).expect("read from php-fpm");
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&buf[..n]);
        conn.receive(&buf[..n]).expect("php-fpm speaks FastCGI");
        let mut finished = false;
        while let Some(event) = conn.poll_event() {
            finished |= done(&event);
        }
        if finished {
            return raw;
        }
    }
}

/// One request: returns (bytes sent, bytes received).
fn exchange(fpm: &PhpFpm, script: &str, query: &str) -> (Vec<u8>, Vec<u8>) {
    let uri = if query.is_empty() {
        format!("/{script}")
    } else {
        format!("/{script}?{query}")
    };
    let path = fpm.script(script);
    let params = ParamsBuilder::new("GET", &uri)
        .script(&format!("/{script}"), path.to_str().expect("UTF-8 path"))
        .build()
        .expect("valid params");
    let mut conn = Connection::new(Config::default());
    let id = conn.start_request(&params).expect("start");
    conn.finish_stdin(id).expect("no body");
    let mut sock = UnixStream::connect(fpm.unix_socket()).expect("connect to php-fpm");
    let sent = flush(&mut conn, &mut sock);
    let raw = read_until(&mut conn, &mut sock, |e| matches!(e, Event::End { .. }));
    (sent, raw)
}

/// The content of every record of `record_type` in `wire`, concatenated.
fn stream(wire: &[u8], record_type: RecordType) -> Vec<u8> {
    let mut buf = BytesMut::from(wire);
    let mut decoder = RecordDecoder::new();
    let mut out = Vec::new();
    while let Some(f) = decoder.decode(&mut buf).expect("valid records") {
        if f.header.record_type == record_type {
            out.extend_from_slice(&f.data);
        }
    }
    out
}

fn write(dir: &Path, target: &str, name: &str, prefix: &[u8], data: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("create seed directory");
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(data);
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let out = Path::new("fuzz/corpus-seed");
    let fpm = PhpFpm::start();
    let requests = [
        ("hello", "hello.php", ""),
        ("cookies", "cookies.php", ""),
        ("stderr", "stderr.php", ""),
        ("large", "large.php", "bytes=20000"),
        ("bigheaders", "bigheaders.php", "count=20&size=100"),
        ("redirect", "redirect.php", "to=/elsewhere"),
        ("missing", "no-such-script.php", ""),
    ];
    for (name, script, query) in requests {
        let (sent, raw) = exchange(&fpm, script, query);
        // record_decoder: split control [0, 0] = everything at once.
        write(out, "record_decoder", name, &[0, 0], &raw);
        // connection_bytes: generous limits, keep_conn, everything at once.
        write(
            out,
            "connection_bytes",
            name,
            &[0xFF, 0xFF, 0xFF, 1, 0, 0],
            &raw,
        );
        // response_head: limit 16383, everything at once, then the STDOUT stream.
        let stdout = stream(&raw, RecordType::STDOUT);
        write(out, "response_head", name, &[0xFF, 0xFF, 0, 0], &stdout);
        if name == "hello" {
            write(out, "record_decoder", "hello-pieces", &[0x41, 0x17], &raw);
            write(
                out,
                "connection_bytes",
                "hello-pieces",
                &[0xFF, 0xFF, 0xFF, 1, 0x41, 0x17],
                &raw,
            );
            write(
                out,
                "nv_decode",
                "params",
                &[],
                &stream(&sent, RecordType::PARAMS),
            );
        }
        println!(
            "{name}: sent {} bytes, received {} bytes",
            sent.len(),
            raw.len()
        );
    }
    // GET_VALUES: php-fpm answers, then closes the connection.
    let mut conn = Connection::new(Config::default());
    conn.get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        .expect("get_values");
    let mut sock = UnixStream::connect(fpm.unix_socket()).expect("connect to php-fpm");
    flush(&mut conn, &mut sock);
    let raw = read_until(&mut conn, &mut sock, |e| matches!(e, Event::Values(_)));
    let values = stream(&raw, RecordType::GET_VALUES_RESULT);
    write(out, "nv_decode", "get_values_result", &[], &values);
    write(out, "record_decoder", "get_values_result", &[0, 0], &raw);
    println!("get_values: received {} bytes", raw.len());
}
