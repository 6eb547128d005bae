//! `fcgi serve` against the test kit's php-fpm: the binary is started on a free port,
//! asked over plain HTTP/1.1 sockets, then killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};

const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// A running `fcgi serve`, killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    /// Standard error after the listening line.
    stderr: mpsc::Receiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fcgi starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("fcgi serve says where it listens");
    let addr = line
        .strip_prefix("fcgi: listening on http://")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Serve {
        child,
        addr,
        stderr: rx,
    }
}

fn start_default() -> Serve {
    let fpm = PhpFpm::shared();
    let socket = format!("unix:{}", fpm.unix_socket().display());
    start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        fpm.docroot().to_str().unwrap(),
        &socket,
    ])
}

struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`).
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Got {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = decoded;
    }
    Got {
        status,
        headers,
        body,
    }
}

#[test]
fn serves_php_static_files_and_errors() {
    let serve = start_default();
    let fpm = PhpFpm::shared();
    let got = request(serve.addr, "GET", "/hello.php", &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"Hello, World!");
    assert_eq!(got.header("content-type"), Some("text/html; charset=UTF-8"));

    let data = random_bytes(300_000, 9);
    let got = request(
        serve.addr,
        "POST",
        "/echo.php",
        &["Content-Type: application/octet-stream"],
        &data,
    );
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("x-body-sha256"),
        Some(hex_sha256(&data).as_str())
    );
    assert_eq!(hex_sha256(&got.body), hex_sha256(&data));

    let got = request(serve.addr, "GET", "/cookies.php", &[], b"");
    assert_eq!(got.status, 404);
    let cookies: Vec<_> = got
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2", "c=3"]);

    std::fs::write(fpm.docroot().join("cli_serve.css"), "body{}").unwrap();
    let got = request(serve.addr, "GET", "/cli_serve.css", &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(got.header("content-length"), Some("6"));
    assert_eq!(got.body, b"body{}");

    let got = request(serve.addr, "GET", "/no-such.php", &[], b"");
    assert_eq!(got.status, 404);
    let got = request(serve.addr, "GET", "/../etc/passwd", &[], b"");
    assert_eq!(got.status, 403);

    let got = request(
        serve.addr,
        "GET",
        "/server.php",
        &["X_Spoof: 1", "Proxy: http://evil.example/"],
        b"",
    );
    let text = String::from_utf8_lossy(&got.body);
    assert!(
        !text.contains("HTTP_X_SPOOF") && !text.contains("HTTP_PROXY"),
        "{text}"
    );
    assert!(
        text.contains(&format!(r#""SERVER_PORT":"{}""#, serve.addr.port())),
        "{text}"
    );
    assert!(text.contains(r#""SERVER_SOFTWARE":"fcgi/"#), "{text}");
}

#[test]
fn php_stderr_and_upstream_failures_are_logged() {
    let serve = start_default();
    let got = request(serve.addr, "GET", "/stderr.php", &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"one\ntwo\nthree\n");
    let line = serve
        .stderr
        .recv_timeout(Duration::from_secs(10))
        .expect("the application's stderr is logged");
    assert!(line.contains("first message"), "{line}");

    let fpm = PhpFpm::shared();
    let missing = std::env::temp_dir().join(format!("fcgi-serve-{}.sock", std::process::id()));
    let socket = format!("unix:{}", missing.display());
    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        fpm.docroot().to_str().unwrap(),
        &socket,
    ]);
    let got = request(serve.addr, "GET", "/hello.php", &[], b"");
    assert_eq!(got.status, 502);
    assert_eq!(got.body, b"Bad Gateway\n");
    let line = serve.stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        line.contains("502") && line.contains("cannot connect"),
        "{line}"
    );
}

#[test]
fn usage_errors_and_help() {
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Usage: fcgi serve [--listen ADDR] --root DIR"),
        "{help}"
    );
    for bad in [
        &["unix:/s"][..],
        &["--root", "/tmp"],
        &["--root", "/tmp", "--nope", "unix:/s"],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("fcgi: "));
    }
    // A root that does not exist.
    let out = run(&[
        "--root",
        "/nonexistent/fcgi-root",
        "--listen",
        "127.0.0.1:0",
        "unix:/s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/fcgi-root"));
}

/// SIGTERM: a request in flight is answered in full, a kept-alive connection between
/// requests is closed, and the server exits with 0 once they are done.
#[test]
fn sigterm_finishes_requests_in_flight_then_exits_0() {
    let fpm = PhpFpm::shared();
    // The script marks that it has started, then works on for 300 ms.
    fpm.write_script(
        "cli_serve_slow.php",
        "<?php touch(__DIR__ . '/cli_serve_slow.mark'); usleep(300000); echo 'finished';",
    );
    let mark = fpm.docroot().join("cli_serve_slow.mark");
    let _ = std::fs::remove_file(&mark);
    let mut serve = start_default();

    // A connection that has had its answer and is kept alive.
    let mut idle = TcpStream::connect(serve.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        idle,
        "GET /hello.php HTTP/1.1\r\nHost: {}\r\n\r\n",
        serve.addr
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while !answer.ends_with(b"\r\n0\r\n\r\n") {
        let n = idle.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed early: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));

    let addr = serve.addr;
    let in_flight =
        std::thread::spawn(move || request(addr, "GET", "/cli_serve_slow.php", &[], b""));
    let waited = std::time::Instant::now();
    while !mark.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the script never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // The shell's own `kill`: a bare machine may have no kill program.
    let killed = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", serve.child.id()))
        .status()
        .unwrap();
    assert!(killed.success());

    let got = in_flight.join().unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"finished");
    // The idle connection is closed, not answered.
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0);

    let waited = std::time::Instant::now();
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "fcgi serve still runs"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(0));
    let said = serve.stderr.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        said.starts_with("fcgi: SIGTERM: accepting no more connections"),
        "{said}"
    );
}
