//! Checks the test kit against the real php-fpm it starts, with a minimal FastCGI client
//! written here (std only): the listeners, every script's exact response, the stop on
//! drop and at process exit, and the fault drills.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_testkit::PhpFpm;

const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const STDERR: u8 = 7;

fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("record content fits");
    let mut out = vec![1, kind, 0, 1];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

fn length(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// What php-fpm answered to one request.
#[derive(Debug, Default)]
struct Reply {
    /// `(type, content)` of every record before END_REQUEST.
    records: Vec<(u8, Vec<u8>)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    app_status: u32,
    protocol_status: u8,
}

impl Reply {
    /// STDOUT without php-fpm's `X-Powered-By` line.
    fn stdout_without_powered_by(&self) -> &[u8] {
        let text = &self.stdout;
        assert!(text.starts_with(b"X-Powered-By: PHP/"), "{:?}", self.text());
        let end = text.windows(2).position(|w| w == b"\r\n").unwrap();
        &text[end + 2..]
    }

    fn body(&self) -> &[u8] {
        let end = self
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        &self.stdout[end + 4..]
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// BEGIN_REQUEST (responder, no keep-alive), the params in one record, the empty
/// PARAMS record.
fn begin(params: &[(&str, &str)]) -> Vec<u8> {
    let mut out = record(BEGIN_REQUEST, &[0, 1, 0, 0, 0, 0, 0, 0]);
    let mut pairs = Vec::new();
    for (name, value) in params {
        length(&mut pairs, name.len());
        length(&mut pairs, value.len());
        pairs.extend_from_slice(name.as_bytes());
        pairs.extend_from_slice(value.as_bytes());
    }
    out.extend(record(PARAMS, &pairs));
    out.extend(record(PARAMS, b""));
    out
}

/// Sends one request (no keep-alive) and reads records up to END_REQUEST.
fn request(mut stream: impl Read + Write, params: &[(&str, &str)], stdin: &[u8]) -> Reply {
    let mut out = begin(params);
    for chunk in stdin.chunks(65535) {
        out.extend(record(STDIN, chunk));
    }
    out.extend(record(STDIN, b""));
    stream.write_all(&out).unwrap();

    let mut reply = Reply::default();
    loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 1, "version");
        let len = u16::from_be_bytes([header[4], header[5]]) as usize;
        let mut content = vec![0u8; len + header[6] as usize];
        stream.read_exact(&mut content).unwrap();
        content.truncate(len);
        match header[1] {
            END_REQUEST => {
                reply.app_status = u32::from_be_bytes(content[..4].try_into().unwrap());
                reply.protocol_status = content[4];
                return reply;
            }
            STDOUT => reply.stdout.extend_from_slice(&content),
            STDERR => reply.stderr.extend_from_slice(&content),
            other => panic!("unexpected record type {other}"),
        }
        reply.records.push((header[1], content));
    }
}

fn unix(fpm: &PhpFpm) -> UnixStream {
    UnixStream::connect(fpm.unix_socket()).unwrap()
}

fn get(fpm: &PhpFpm, script: &str, query: &str) -> Reply {
    call(fpm, "GET", script, query, b"")
}

fn call(fpm: &PhpFpm, method: &str, script: &str, query: &str, body: &[u8]) -> Reply {
    let filename = fpm.script(script);
    let name = format!("/{script}");
    let uri = format!("/{script}?{query}");
    let len = body.len().to_string();
    let params = [
        ("SCRIPT_FILENAME", filename.to_str().unwrap()),
        ("SCRIPT_NAME", &name),
        ("REQUEST_URI", &uri),
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_LENGTH", &len),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
    ];
    request(unix(fpm), &params, body)
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Alive and not a zombie (a zombie waits only for its parent to reap it).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

#[test]
fn builder_start_hello_over_unix_then_drop_stops_the_master() {
    let fpm = PhpFpm::builder().max_children(2).start();
    UnixStream::connect(fpm.unix_socket()).expect("unix listener");
    TcpStream::connect(fpm.tcp_addr()).expect("tcp listener");

    let reply = get(&fpm, "hello.php", "");
    assert!(
        reply.stdout.windows(13).any(|w| w == b"Hello, World!"),
        "{}",
        reply.text()
    );
    assert_eq!((reply.app_status, reply.protocol_status), (0, 0));

    let master = fpm.master_pid();
    let workers = fpm.worker_pids();
    let dir = fpm.dir().to_path_buf();
    assert!(alive(master));
    assert_eq!(workers.len(), 4, "2 pools x max_children 2: {workers:?}");
    let start = Instant::now();
    drop(fpm);
    let stop_time = start.elapsed();
    assert!(!alive(master), "master {master} still alive");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} still alive");
    }
    assert!(!dir.exists());
    assert!(stop_time < Duration::from_secs(2), "{stop_time:?}");
}

#[test]
fn tcp_pool_answers_too() {
    let fpm = PhpFpm::shared();
    let filename = fpm.script("hello.php");
    let stream = TcpStream::connect(fpm.tcp_addr()).unwrap();
    let reply = request(
        stream,
        &[
            ("SCRIPT_FILENAME", filename.to_str().unwrap()),
            ("REQUEST_METHOD", "GET"),
        ],
        b"",
    );
    assert_eq!(reply.body(), b"Hello, World!");
}

#[test]
fn scripts_answer_exactly_as_documented() {
    let fpm = PhpFpm::shared();

    let reply = get(fpm, "hello.php", "");
    assert_eq!(
        reply.stdout_without_powered_by(),
        b"Content-type: text/html; charset=UTF-8\r\n\r\nHello, World!"
    );
    assert!(reply.stderr.is_empty());

    let reply = call(fpm, "POST", "echo.php", "", b"abc");
    assert_eq!(
        reply.stdout_without_powered_by(),
        b"Content-Type: application/octet-stream\r\n\
          X-Body-Sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\r\n\
          X-Body-Length: 3\r\n\r\nabc"
    );
    assert!(reply.stderr.is_empty(), "{:?}", reply.stderr);
    let reply = get(fpm, "echo.php", "");
    assert!(reply.text().contains(
        "X-Body-Sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n\
         X-Body-Length: 0\r\n\r\n"
    ));
    assert_eq!(reply.body(), b"");
    // Larger than post_max_size's default (8M): no warning, every byte back.
    let big: Vec<u8> = (0..9 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    for method in ["POST", "PUT"] {
        let reply = call(fpm, method, "echo.php", "", &big);
        assert!(reply.text().contains("X-Body-Length: 9437184\r\n"));
        assert!(reply.body() == big, "{method}");
        assert!(
            reply.stderr.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&reply.stderr)
        );
    }

    let reply = get(fpm, "cookies.php", "");
    assert_eq!(
        reply.stdout_without_powered_by(),
        b"Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\n\
          Content-type: text/html; charset=UTF-8\r\n\r\nnot here"
    );

    let reply = get(fpm, "stderr.php", "");
    let records: Vec<(u8, &[u8])> = reply
        .records
        .iter()
        .map(|(kind, content)| (*kind, content.as_slice()))
        .collect();
    assert_eq!(records.len(), 5, "{records:?}");
    assert!(records[0].1.ends_with(b"\r\n\r\none\n"));
    assert_eq!(
        &records[1..],
        [
            (STDERR, &b"PHP message: first message"[..]),
            (STDOUT, b"two\n"),
            (STDERR, b"; PHP message: second message"),
            (STDOUT, b"three\n"),
        ]
    );
    assert_eq!(reply.body(), b"one\ntwo\nthree\n");

    for len in [0usize, 1, 17, 65535, 65536, 65537, 1_000_003] {
        let reply = get(fpm, "large.php", &format!("bytes={len}"));
        let mut expected =
            format!("Content-Type: application/octet-stream\r\nX-Body-Length: {len}\r\n\r\n")
                .into_bytes();
        expected.extend(fcgi_testkit::large_body(len));
        assert!(reply.stdout_without_powered_by() == expected, "{len}");
    }

    let reply = get(fpm, "bigheaders.php", "count=40&size=2000");
    let head_len = reply.stdout.len() - 2;
    assert!(head_len > 65535, "{head_len}");
    let mut expected = String::new();
    for i in 0..40 {
        expected.push_str(&format!("X-Big-{i}: {}\r\n", "x".repeat(2000)));
    }
    expected.push_str("Content-type: text/html; charset=UTF-8\r\n\r\nok");
    assert!(reply.stdout_without_powered_by() == expected.as_bytes());

    let start = Instant::now();
    let reply = get(fpm, "sleep.php", "ms=150");
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(reply.body(), b"slept 150");

    let reply = get(fpm, "server.php", "a=1&b=x/y");
    let text = reply.text();
    assert!(
        text.contains("Content-Type: application/json\r\n\r\n{"),
        "{text}"
    );
    assert!(text.contains(r#""QUERY_STRING":"a=1&b=x/y""#), "{text}");
    assert!(text.contains(r#""GATEWAY_INTERFACE":"CGI/1.1""#), "{text}");
    assert!(!text.contains(r#""PATH":"#), "clear_env: {text}");

    let reply = get(fpm, "redirect.php", "to=https://example.com/next");
    assert_eq!(
        reply.stdout_without_powered_by(),
        b"Location: https://example.com/next\r\nContent-type: text/html; charset=UTF-8\r\n\r\n"
    );
    let reply = get(fpm, "redirect.php", "to=/local/path");
    assert!(reply.text().contains("\r\nLocation: /local/path\r\n"));
    assert!(!reply.text().contains("Status"));

    let reply = get(fpm, "exit_mid.php", "");
    assert_eq!(reply.body(), b"partial");
    assert_eq!((reply.app_status, reply.protocol_status), (0, 0));

    let reply = get(fpm, "pid.php", "");
    let pid: u32 = std::str::from_utf8(reply.body()).unwrap().parse().unwrap();
    assert!(fpm.worker_pids().contains(&pid), "{pid}");

    let reply = call(fpm, "PUT", "flush_then_read.php", "", b"abc");
    assert_eq!(
        reply.stdout_without_powered_by(),
        b"Content-type: text/plain;charset=UTF-8\r\n\r\nstarted\n\
          ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3\n"
    );

    let reply = get(fpm, "status.php", "code=418%20Teapot");
    assert_eq!(
        reply.stdout_without_powered_by(),
        b"Status: 418 Teapot\r\nContent-type: text/html; charset=UTF-8\r\n\r\nstatus 418 Teapot"
    );

    let reply = get(fpm, "missing.php", "");
    assert!(
        reply.text().starts_with("Status: 404 Not Found\r\n"),
        "{}",
        reply.text()
    );
    assert_eq!(reply.body(), b"File not found.\n");
    assert_eq!(reply.stderr, b"Primary script unknown");

    let reply = request(
        unix(fpm),
        &[
            ("SCRIPT_NAME", "/ping"),
            ("SCRIPT_FILENAME", "/ping"),
            ("REQUEST_METHOD", "GET"),
        ],
        b"",
    );
    assert_eq!(reply.body(), b"pong");

    let path = fpm.write_script("own/warn.php", "<?php echo $undefined ?? 'x'; echo $nope;");
    assert_eq!(path, fpm.script("own/warn.php"));
    let reply = get(fpm, "own/warn.php", "");
    assert_eq!(reply.body(), b"x", "display_errors is off");
    let stderr = String::from_utf8_lossy(&reply.stderr);
    assert!(
        stderr.starts_with("PHP message: PHP Warning:  Undefined variable $nope in "),
        "{stderr}"
    );
}

#[test]
fn flush_then_read_answers_before_a_put_body_arrives() {
    let fpm = PhpFpm::shared();
    let filename = fpm.script("flush_then_read.php");
    let mut stream = unix(fpm);
    let mut out = begin(&[
        ("SCRIPT_FILENAME", filename.to_str().unwrap()),
        ("REQUEST_METHOD", "PUT"),
        ("CONTENT_LENGTH", "6"),
    ]);
    out.extend(record(STDIN, b"abc"));
    stream.write_all(&out).unwrap();
    // "started" comes back while half of the body is still unsent.
    let mut seen = Vec::new();
    while !seen.windows(8).any(|w| w == b"started\n") {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    stream.write_all(&record(STDIN, b"def")).unwrap();
    stream.write_all(&record(STDIN, b"")).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream.read_to_end(&mut seen).unwrap();
    let sha_abcdef = "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721 6\n";
    assert!(
        seen.windows(sha_abcdef.len())
            .any(|w| w == sha_abcdef.as_bytes()),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

/// Run in a child process of this test binary: starts the shared instance, prints its
/// pids and directory, and exits without dropping it.
#[test]
fn shared_instance_stops_when_the_test_process_exits() {
    if std::env::var_os("FCGI_TESTKIT_SHARED_CHILD").is_some() {
        let fpm = PhpFpm::shared();
        let mut pids = fpm.worker_pids();
        pids.push(fpm.master_pid());
        println!(
            "SHARED pids={} dir={}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            fpm.dir().display()
        );
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared_instance_stops_when_the_test_process_exits",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FCGI_TESTKIT_SHARED_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find_map(|line| line.split_once("SHARED ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{stdout}"));
    let (pids, dir) = line.split_once(" dir=").unwrap();
    let pids: Vec<u32> = pids
        .strip_prefix("pids=")
        .unwrap()
        .split(',')
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 9, "8 workers and the master: {pids:?}");
    wait_until("php-fpm stops", Duration::from_secs(5), || {
        !pids.iter().any(|&pid| alive(pid))
    });
    wait_until("its directory goes", Duration::from_secs(5), || {
        !Path::new(dir).exists()
    });
}

#[test]
fn kill_master_then_restart_on_the_same_addresses() {
    let mut fpm = PhpFpm::builder()
        .max_children(1)
        .max_requests(1)
        .request_terminate_timeout(1)
        .php_admin_value("memory_limit", "64M")
        .start();
    let addr = fpm.tcp_addr();
    let socket = fpm.unix_socket().to_path_buf();
    assert!(
        fpm.log().contains("ready to handle connections"),
        "{}",
        fpm.log()
    );
    let conf = std::fs::read_to_string(fpm.dir().join("php-fpm.conf")).unwrap();
    assert!(conf.contains("pm.max_requests = 1\n"), "{conf}");
    assert!(conf.contains("request_terminate_timeout = 1s\n"), "{conf}");

    // max_requests = 1: each request gets a new worker.
    let first = get(&fpm, "pid.php", "");
    let second = get(&fpm, "pid.php", "");
    assert_ne!(first.body(), second.body());

    // request_terminate_timeout = 1: the worker is killed; no END_REQUEST.
    let filename = fpm.script("sleep.php");
    let mut stream = unix(&fpm);
    let mut out = begin(&[
        ("SCRIPT_FILENAME", filename.to_str().unwrap()),
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "ms=5000"),
    ]);
    out.extend(record(STDIN, b""));
    stream.write_all(&out).unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(rest.is_empty(), "{rest:?}");
    drop(stream);

    let old_master = fpm.master_pid();
    wait_until(
        "the killed worker is replaced",
        Duration::from_secs(5),
        || fpm.worker_pids().len() == 2,
    );
    let old_workers = fpm.worker_pids();
    fpm.kill_master();
    assert!(!fpm.is_running());
    assert!(!alive(old_master));
    assert!(old_workers.iter().all(|&pid| !alive(pid)));
    assert!(UnixStream::connect(&socket).is_err());
    assert!(TcpStream::connect(addr).is_err());

    // Someone else holds the port for a moment: restart waits for it.
    let squatter = std::net::TcpListener::bind(addr).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(squatter);
    });
    fpm.restart();
    release.join().unwrap();
    assert!(
        fpm.log().contains("Address already in use"),
        "{}",
        fpm.log()
    );
    assert!(fpm.is_running());
    assert_ne!(fpm.master_pid(), old_master);
    assert_eq!(
        (fpm.tcp_addr(), fpm.unix_socket()),
        (addr, socket.as_path())
    );
    let served: u32 = std::str::from_utf8(get(&fpm, "pid.php", "").body())
        .unwrap()
        .parse()
        .unwrap();

    // max_requests = 1 retires the worker that answered: wait for its replacement.
    wait_until(
        "the recycled worker is replaced",
        Duration::from_secs(5),
        || !alive(served) && fpm.worker_pids().len() == 2,
    );
    let killed = fpm.kill_workers();
    assert_eq!(killed.len(), 2);
    wait_until("new workers", Duration::from_secs(5), || {
        let now = fpm.worker_pids();
        now.len() == 2 && now.iter().all(|pid| !killed.contains(pid))
    });
    assert_eq!(get(&fpm, "hello.php", "").body(), b"Hello, World!");

    fpm.write_script("ini.php", "<?php echo ini_get('memory_limit');");
    assert_eq!(get(&fpm, "ini.php", "").body(), b"64M");

    // A graceful restart works too, and the directory survives it.
    fpm.restart();
    assert_eq!(get(&fpm, "hello.php", "").body(), b"Hello, World!");
    assert!(fpm.script("hello.php").exists());
}
