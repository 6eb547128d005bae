//! `fcgi serve` against the test kit's php-fpm: the binary is started on a free port,
//! asked over plain HTTP/1.1 sockets, then killed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};

mod support;
use support::{start, start_with_env, Serve, BIN};

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

/// `curl` (a client of another lineage, with HTTP/2 and every compression) against a
/// running `fcgi serve`: `(status line's version, headers, body)`.
fn curl(args: &[&str]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D"])
        .arg(&head)
        .args(args)
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap();
    let mut lines = head.lines();
    let version = lines.next().unwrap().split(' ').next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (version, headers, out.stdout)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A front-controller application (Slim, from Debian's php-slim) through
/// `--front-controller`, compressed for clients that ask, over HTTP/2 with prior
/// knowledge; and `--no-compress`.
#[test]
fn front_controller_compression_and_h2c() {
    fcgi_testkit::slim::require_slim();
    let fpm = PhpFpm::shared();
    let socket = format!("unix:{}", fpm.unix_socket().display());
    let public = fcgi_testkit::slim::public_dir();
    let root = public.to_str().unwrap();
    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        root,
        "--front-controller",
        "/index.php",
        &socket,
    ]);
    let base = format!("http://{}", serve.addr);
    let got = request(serve.addr, "GET", "/hello/World", &[], b"");
    assert_eq!((got.status, &got.body[..]), (200, &b"Hello, World!"[..]));
    let got = request(serve.addr, "GET", "/no/such/page", &[], b"");
    assert_eq!(got.status, 404);

    // Over HTTP/2 in clear text, compressed as curl asks; curl decompresses.
    let css = std::fs::read(public.join("css/site.css")).unwrap();
    let (version, headers, body) = curl(&[
        "--http2-prior-knowledge",
        "--compressed",
        &format!("{base}/css/site.css"),
    ]);
    assert_eq!(version, "HTTP/2");
    assert!(
        matches!(
            header(&headers, "content-encoding"),
            Some("gzip" | "br" | "zstd")
        ),
        "{headers:?}"
    );
    assert_eq!(header(&headers, "vary"), Some("accept-encoding"));
    assert_eq!(body, css);
    // The file's strong tag, weak on its compressed bytes.
    let plain = request(serve.addr, "GET", "/css/site.css", &[], b"");
    let tag = plain.header("etag").unwrap().to_owned();
    assert!(tag.starts_with('"'), "{tag}");
    assert_eq!(
        header(&headers, "etag"),
        Some(format!("W/{tag}").as_str()),
        "{headers:?}"
    );
    // PHP's output too, streamed; but not a tiny answer (13 bytes).
    let home = request(serve.addr, "GET", "/", &[], b"").body;
    assert!(home.len() > 100);
    let (_, headers, body) = curl(&["--compressed", &format!("{base}/")]);
    assert!(
        header(&headers, "content-encoding").is_some(),
        "{headers:?}"
    );
    assert_eq!(body, home);
    let (_, headers, body) = curl(&["--compressed", &format!("{base}/hello/World")]);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(body, b"Hello, World!");
    // Without Accept-Encoding, as is.
    let got = request(serve.addr, "GET", "/css/site.css", &[], b"");
    assert_eq!(got.header("content-encoding"), None);
    assert_eq!(got.body, css);
    drop(serve);

    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        root,
        "--front-controller",
        "/index.php",
        "--no-compress",
        &socket,
    ]);
    let (_, headers, body) = curl(&[
        "--compressed",
        &format!("http://{}/css/site.css", serve.addr),
    ]);
    assert_eq!(header(&headers, "content-encoding"), None);
    // No compression layer at all: nothing varies with Accept-Encoding.
    assert_eq!(header(&headers, "vary"), None);
    assert_eq!(body, css);
}

/// HTTPS with HTTP/2 by ALPN, on a certificate made here; HTTPS=on reaches PHP.
#[test]
fn https_with_http2() {
    let fpm = PhpFpm::shared();
    fpm.write_script(
        "cli_serve_https.php",
        "<?php echo $_SERVER['HTTPS'] ?? 'unset', ' ', $_SERVER['SERVER_PROTOCOL'];",
    );
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let socket = format!("unix:{}", fpm.unix_socket().display());
    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        fpm.docroot().to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        &socket,
    ]);
    let url = format!(
        "https://localhost:{}/cli_serve_https.php",
        serve.addr.port()
    );
    let resolve = format!("localhost:{}:127.0.0.1", serve.addr.port());
    let cacert = cert.to_str().unwrap();
    let (version, _, body) = curl(&["--http2", "--cacert", cacert, "--resolve", &resolve, &url]);
    assert_eq!(version, "HTTP/2");
    assert_eq!(body, b"on HTTP/2.0");
    let (version, _, body) = curl(&["--http1.1", "--cacert", cacert, "--resolve", &resolve, &url]);
    assert_eq!(version, "HTTP/1.1");
    assert_eq!(body, b"on HTTP/1.1");

    // A key that is not a key: a usage error at start, naming the files.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--root", "/tmp"])
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            cert.to_str().unwrap(),
        ])
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot load PEM"));
}

/// The operator options reach the gateway: --param, --index, --max-body,
/// --read-timeout, --trusted-proxy, --sendfile-root, dot files, and the access log.
#[test]
fn operator_options() {
    let fpm = PhpFpm::shared();
    let app = fpm.docroot().join("cli_ops");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    std::fs::write(
        app.join("main.php"),
        "<?php echo $_SERVER['APP_ENV'], ' ', $_SERVER['REMOTE_ADDR'], ' ', $_SERVER['HTTPS'] ?? 'unset';",
    )
    .unwrap();
    std::fs::write(app.join("sub/main.php"), "<?php echo 'sub index';").unwrap();
    std::fs::write(app.join("slow.php"), "<?php sleep(3); echo 'late';").unwrap();
    std::fs::write(app.join(".env"), "SECRET=1").unwrap();
    std::fs::write(
        app.join("download.php"),
        "<?php header('Content-Type: text/plain'); header('X-Accel-Redirect: /report.txt');",
    )
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("report.txt"), "the report\n").unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("access.log");
    let socket = format!("unix:{}", fpm.unix_socket().display());
    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        app.to_str().unwrap(),
        "--param",
        "APP_ENV=cli-test",
        "--index",
        "main.php",
        "--max-body",
        "1k",
        "--read-timeout",
        "1",
        "--trusted-proxy",
        "127.0.0.0/8",
        "--sendfile-root",
        files.path().to_str().unwrap(),
        "--access-log",
        log.to_str().unwrap(),
        &socket,
    ]);
    let got = request(
        serve.addr,
        "GET",
        "/",
        &["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https"],
        b"",
    );
    assert_eq!(
        (got.status, &got.body[..]),
        (200, &b"cli-test 203.0.113.9 on"[..])
    );
    let got = request(serve.addr, "GET", "/sub/", &[], b"");
    assert_eq!(got.body, b"sub index");
    let got = request(serve.addr, "POST", "/main.php", &[], &[b'x'; 1025]);
    assert_eq!(got.status, 413);
    let got = request(serve.addr, "GET", "/slow.php", &[], b"");
    assert_eq!(got.status, 504);
    let got = request(serve.addr, "GET", "/.env", &[], b"");
    assert_eq!(got.status, 404);
    let got = request(serve.addr, "GET", "/download.php", &[], b"");
    assert_eq!((got.status, &got.body[..]), (200, &b"the report\n"[..]));
    // One line per request, written off the request path: wait for the six.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 6 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    // The client a trusted proxy forwarded, as the application's REMOTE_ADDR.
    assert!(lines[0].starts_with("203.0.113.9 - - ["), "{}", lines[0]);
    assert!(lines[1].starts_with("127.0.0.1 - - ["), "{}", lines[1]);
    assert!(
        lines[0].contains("] \"GET / HTTP/1.1\" 200 23 \"-\" \"-\" "),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].contains("\"POST /main.php HTTP/1.1\" 413 "),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("\"GET /slow.php HTTP/1.1\" 504 "),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].contains("\"GET /.env HTTP/1.1\" 404 "),
        "{}",
        lines[4]
    );
    drop(serve);

    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        app.to_str().unwrap(),
        "--allow-dotfiles",
        &socket,
    ]);
    let got = request(serve.addr, "GET", "/.env", &[], b"");
    assert_eq!((got.status, &got.body[..]), (200, &b"SECRET=1"[..]));
}

/// Several FastCGI servers and a health check: one that takes connections but never
/// answers is taken out, and every request is answered by the other.
#[test]
fn several_upstreams_with_a_health_check() {
    let fpm = PhpFpm::shared();
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        fpm.docroot().to_str().unwrap(),
        "--health-check",
        "/ping",
        "--read-timeout",
        "30",
        &format!("unix:{}", silent.display()),
        &format!("unix:{}", fpm.unix_socket().display()),
    ]);
    // The first round of checks takes the silent one out within its 2 s.
    let line = serve.stderr.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.contains("upstream out of service"), "{line}");
    assert!(line.contains(&silent.display().to_string()), "{line}");
    for _ in 0..6 {
        let got = request(serve.addr, "GET", "/hello.php", &[], b"");
        assert_eq!((got.status, &got.body[..]), (200, &b"Hello, World!"[..]));
    }
}

/// A client cut off by the head timeout is a line on standard error when `RUST_LOG`
/// asks for the gateway's info events, and nothing without it (only warnings are).
#[test]
fn clients_cut_off_are_logged_with_rust_log() {
    let fpm = PhpFpm::shared();
    let socket = format!("unix:{}", fpm.unix_socket().display());
    let root = fpm.docroot().to_str().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--root",
        root,
        "--client-header-timeout",
        "1",
        &socket,
    ];
    let half_head = |serve: &Serve| {
        let mut client = TcpStream::connect(serve.addr).unwrap();
        client
            .write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Closed by the gateway once the head timeout has passed.
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        client
    };
    let serve = start_with_env(&args, &[("RUST_LOG", "fcgi_http=info")]);
    let client = half_head(&serve);
    let local = client.local_addr().unwrap();
    let line = serve.stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.contains("closing"), "{line}");
    assert!(line.contains(&format!("remote={local}")), "{line}");
    drop(serve);

    let serve = start_with_env(&args, &[("RUST_LOG", "")]);
    drop(half_head(&serve));
    // A request after it: its answer means the cut-off was handled and said nothing.
    let got = request(serve.addr, "GET", "/hello.php", &[], b"");
    assert_eq!(got.status, 200);
    assert!(serve.stderr.try_recv().is_err());
}
