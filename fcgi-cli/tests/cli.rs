//! The `fcgi` binary against a real php-fpm (from fcgi-testkit) and against scripted
//! fake servers: every option and every exit status.

use fcgi_testkit::{hex_sha256, random_bytes};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fcgi_testkit::{FullBacklog, PhpFpm};

const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit status; stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(2000)]),
            self.stderr
        );
        self
    }

    #[track_caller]
    fn expect_ok(&self) -> &Self {
        self.expect_code(0)
    }
}

fn run_with(args: &[&str], stdin: Option<&[u8]>, dir: Option<&Path>) -> Run {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().expect("the fcgi binary starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A thread, so that a large input cannot dead-lock against the output.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let output = child.wait_with_output().expect("fcgi runs");
    Run {
        code: output
            .status
            .code()
            .expect("fcgi exits, not killed by a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn fcgi(args: &[&str]) -> Run {
    run_with(args, None, None)
}

fn fpm() -> &'static PhpFpm {
    PhpFpm::shared()
}

fn sock() -> String {
    path_str(fpm().unix_socket())
}

fn script(name: &str) -> String {
    path_str(&fpm().script(name))
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}

/// A fresh path in the temporary directory.
fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "fcgi-cli-test-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// `$_SERVER` of server.php, checked by its JSON text: `"NAME":"value"`.
struct Server(String);

impl Server {
    fn fetch(args: &[&str]) -> Server {
        let mut all = args.to_vec();
        let socket = sock();
        let script = script("server.php");
        all.push(&socket);
        all.push(&script);
        let run = fcgi(&all);
        run.expect_ok();
        Server(run.stdout_text())
    }

    #[track_caller]
    fn has(&self, name: &str, value: &str) {
        let pair = format!("\"{name}\":\"{value}\"");
        assert!(self.0.contains(&pair), "{pair} not in {}", self.0);
    }

    #[track_caller]
    fn lacks(&self, name: &str) {
        let key = format!("\"{name}\":");
        assert!(!self.0.contains(&key), "{name} in {}", self.0);
    }
}

/// The headers of `-i` output, as (name, value) lines, and the body after them.
fn split_include(out: &[u8]) -> (Vec<String>, Vec<u8>) {
    let end = out
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("-i output has a blank line");
    let head = String::from_utf8(out[..end].to_vec()).expect("the head is text");
    (
        head.lines().map(str::to_owned).collect(),
        out[end + 2..].to_vec(),
    )
}

// ---- addresses ----

#[test]
fn get_over_unix_socket_path() {
    let run = fcgi(&[&sock(), &script("hello.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"Hello, World!");
    assert_eq!(run.stderr, "");
}

#[test]
fn get_over_unix_prefix_form() {
    let run = fcgi(&[&format!("unix:{}", sock()), &script("hello.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"Hello, World!");
}

#[test]
fn get_over_relative_socket_path() {
    let socket = fpm().unix_socket();
    let dir = socket.parent().expect("the socket is in a directory");
    let name = socket.file_name().expect("the socket has a name");
    let relative = format!("./{}", name.to_str().expect("UTF-8"));
    let run = run_with(&[&relative, &script("hello.php")], None, Some(dir));
    run.expect_ok();
    assert_eq!(run.stdout, b"Hello, World!");
}

#[test]
fn get_over_tcp() {
    let run = fcgi(&[&fpm().tcp_addr().to_string(), &script("hello.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"Hello, World!");
}

// ---- params ----

#[test]
fn default_params() {
    let server = Server::fetch(&[]);
    let docroot = path_str(fpm().docroot());
    server.has("GATEWAY_INTERFACE", "CGI/1.1");
    server.has("SERVER_PROTOCOL", "HTTP/1.1");
    server.has("REQUEST_METHOD", "GET");
    server.has("SCRIPT_FILENAME", &script("server.php"));
    server.has("SCRIPT_NAME", "/server.php");
    server.has("REQUEST_URI", "/server.php");
    server.has("QUERY_STRING", "");
    server.has("DOCUMENT_ROOT", &docroot);
    server.has(
        "SERVER_SOFTWARE",
        concat!("fcgi/", env!("CARGO_PKG_VERSION")),
    );
    server.has("REMOTE_ADDR", "127.0.0.1");
    server.has("SERVER_NAME", "localhost");
    server.has("SERVER_PORT", "80");
    server.has("REDIRECT_STATUS", "200");
    server.lacks("CONTENT_LENGTH");
    server.lacks("CONTENT_TYPE");
}

#[test]
fn method_option() {
    Server::fetch(&["-X", "DELETE"]).has("REQUEST_METHOD", "DELETE");
    Server::fetch(&["--method=PATCH"]).has("REQUEST_METHOD", "PATCH");
    // A body makes POST the default; -X still wins.
    Server::fetch(&["-d", "x"]).has("REQUEST_METHOD", "POST");
    Server::fetch(&["-XPUT", "-d", "x"]).has("REQUEST_METHOD", "PUT");
}

#[test]
fn query_option() {
    let server = Server::fetch(&["-q", "a=1&b=two"]);
    server.has("QUERY_STRING", "a=1&b=two");
    server.has("REQUEST_URI", "/server.php?a=1&b=two");
    // A leading '?' is dropped.
    Server::fetch(&["--query", "?x=y"]).has("QUERY_STRING", "x=y");
}

#[test]
fn header_option() {
    let socket = sock();
    let server_php = script("server.php");
    let run = fcgi(&[
        "-H",
        "X-Custom: hello  world ",
        "--header",
        "X-Custom: again",
        "-H",
        "X_Under: spoofed",
        "-H",
        "Proxy: http://evil.example/",
        "-H",
        "Host: example.com:8080",
        &socket,
        &server_php,
    ]);
    run.expect_ok();
    let server = Server(run.stdout_text());
    server.has("HTTP_X_CUSTOM", "hello  world, again");
    server.has("HTTP_HOST", "example.com:8080");
    server.has("SERVER_NAME", "example.com");
    server.lacks("HTTP_X_UNDER");
    server.lacks("HTTP_PROXY");
    // Dropped headers are named on stderr.
    assert!(run
        .stderr
        .contains("fcgi: warning: header \"X_Under\" not sent"));
    assert!(run
        .stderr
        .contains("fcgi: warning: header \"Proxy\" not sent"));
}

#[test]
fn param_option_adds_and_overrides() {
    let server = Server::fetch(&[
        "-p",
        "APP_ENV=test=yes",
        "--param=SERVER_NAME=other.example",
        "-pSCRIPT_NAME=/app/server.php",
        "-p",
        "REMOTE_ADDR=10.0.0.7",
        "-p",
        "EMPTY=",
        "-q",
        "k=v",
    ]);
    server.has("APP_ENV", "test=yes");
    server.has("SERVER_NAME", "other.example");
    server.has("SCRIPT_NAME", "/app/server.php");
    server.has("REQUEST_URI", "/app/server.php?k=v");
    server.has("REMOTE_ADDR", "10.0.0.7");
    server.has("EMPTY", "");
}

// ---- bodies ----

#[test]
fn data_literal() {
    let run = fcgi(&["-d", "a=1&b=2", &sock(), &script("echo.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"a=1&b=2");

    let server = Server::fetch(&["-d", "a=1&b=2"]);
    server.has("CONTENT_LENGTH", "7");
    server.has("CONTENT_TYPE", "application/x-www-form-urlencoded");
    let server = Server::fetch(&["-d", "{}", "-H", "Content-Type: application/json"]);
    server.has("CONTENT_TYPE", "application/json");
    server.has("CONTENT_LENGTH", "2");
    // An empty body still declares its length.
    let server = Server::fetch(&["--data="]);
    server.has("CONTENT_LENGTH", "0");
    server.has("REQUEST_METHOD", "POST");
}

#[test]
fn data_from_file_is_streamed_byte_exact() {
    let body = random_bytes(3 * 1024 * 1024 + 17, 7);
    let path = temp_path("body.bin");
    std::fs::write(&path, &body).expect("write the body file");
    let run = fcgi(&[
        "-i",
        "-d",
        &format!("@{}", path_str(&path)),
        &sock(),
        &script("echo.php"),
    ]);
    let _ = std::fs::remove_file(&path);
    run.expect_ok();
    let (head, echoed) = split_include(&run.stdout);
    assert!(
        head.contains(&format!("X-Body-Sha256: {}", hex_sha256(&body))),
        "{head:?}"
    );
    assert!(
        head.contains(&format!("X-Body-Length: {}", body.len())),
        "{head:?}"
    );
    assert!(echoed == body, "the echoed body differs");
}

#[test]
fn data_from_a_device_is_read_first() {
    // /dev/null has no size to announce: read it to the end, send what it gave.
    Server::fetch(&["-d", "@/dev/null"]).has("CONTENT_LENGTH", "0");
}

#[test]
fn data_from_stdin() {
    let body = random_bytes(200_000, 11);
    let run = run_with(
        &["-d", "@-", &sock(), &script("echo.php")],
        Some(&body),
        None,
    );
    run.expect_ok();
    assert!(run.stdout == body, "the echoed body differs");
}

#[test]
fn data_file_missing_is_exit_1() {
    let missing = temp_path("missing.bin");
    let run = fcgi(&[
        "-d",
        &format!("@{}", path_str(&missing)),
        &sock(),
        &script("echo.php"),
    ]);
    run.expect_code(1);
    assert!(
        run.stderr.starts_with("fcgi: cannot read "),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

// ---- output ----

/// The `X-Powered-By` line php-fpm puts first, whatever PHP's version.
fn powered_by(lines: &[String]) -> String {
    let line = lines[1].clone();
    assert!(line.starts_with("X-Powered-By: PHP/"), "{lines:?}");
    line
}

#[test]
fn include_prints_the_exact_head() {
    let run = fcgi(&["-i", &sock(), &script("cookies.php")]);
    run.expect_ok();
    let (lines, _) = split_include(&run.stdout);
    let expected = format!(
        "Status: 404 Not Found\n{}\nSet-Cookie: a=1\nSet-Cookie: b=2\nSet-Cookie: c=3\n\
         Content-type: text/html; charset=UTF-8\n\nnot here",
        powered_by(&lines)
    );
    assert_eq!(run.stdout_text(), expected);

    // No Status header: 200 and the standard phrase.
    let run = fcgi(&["--include", &sock(), &script("hello.php")]);
    run.expect_ok();
    let (lines, _) = split_include(&run.stdout);
    let expected = format!(
        "Status: 200 OK\n{}\nContent-type: text/html; charset=UTF-8\n\nHello, World!",
        powered_by(&lines)
    );
    assert_eq!(run.stdout_text(), expected);
}

#[test]
fn include_status_reasons() {
    for (code, line) in [
        ("418", "Status: 418 I'm a teapot"),
        ("418%20Short%20and%20stout", "Status: 418 Short and stout"),
        ("299", "Status: 299"),
    ] {
        let run = fcgi(&[
            "-i",
            "-q",
            &format!("code={code}"),
            &sock(),
            &script("status.php"),
        ]);
        run.expect_ok();
        let (lines, _) = split_include(&run.stdout);
        assert_eq!(lines[0], line);
    }
}

#[test]
fn output_option_writes_the_file() {
    let path = temp_path("out.txt");
    let run = fcgi(&["-o", &path_str(&path), &sock(), &script("hello.php")]);
    run.expect_ok();
    assert!(run.stdout.is_empty());
    assert_eq!(
        std::fs::read(&path).expect("the output file"),
        b"Hello, World!"
    );

    // With -i the head goes to the file too; an existing file is replaced.
    let run = fcgi(&[
        "-i",
        &format!("--output={}", path_str(&path)),
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_ok();
    let written = std::fs::read(&path).expect("the output file");
    let _ = std::fs::remove_file(&path);
    assert!(written.starts_with(b"Status: 200 OK\n"));
    assert!(written.ends_with(b"\n\nHello, World!"));

    let run = fcgi(&[
        "-o",
        "/nonexistent-dir/out.txt",
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(1);
    assert!(run
        .stderr
        .starts_with("fcgi: cannot create /nonexistent-dir/out.txt"));
}

#[test]
fn stderr_goes_to_stderr_not_stdout() {
    let run = fcgi(&[&sock(), &script("stderr.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"one\ntwo\nthree\n");
    assert_eq!(
        run.stderr,
        "PHP message: first message; PHP message: second message"
    );
}

#[test]
fn large_body_arrives_byte_exact() {
    const LEN: usize = 50_000_000;
    let run = fcgi(&["-q", &format!("bytes={LEN}"), &sock(), &script("large.php")]);
    run.expect_ok();
    assert_eq!(run.stdout.len(), LEN);
    let expected = fcgi_testkit::large_body(LEN);
    if let Some(at) = run.stdout.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("the body differs from large.php's from byte {at}");
    }
}

#[test]
fn broken_stdout_pipe_is_quiet() {
    let mut child = Command::new(BIN)
        .args(["-q", "bytes=20000000", &sock(), &script("large.php")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fcgi binary starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("the first line");
    assert_eq!(&first, b"000000000000000\n");
    drop(stdout);
    let output = child.wait_with_output().expect("fcgi runs");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

// ---- timeouts, --fail ----

#[test]
fn timeout_is_exit_4_within_the_bound() {
    let started = Instant::now();
    let run = fcgi(&[
        "--timeout",
        "0.5",
        "-q",
        "ms=2500",
        &sock(),
        &script("sleep.php"),
    ]);
    let took = started.elapsed();
    run.expect_code(4);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(
        run.stderr.starts_with("fcgi: timed out after"),
        "{}",
        run.stderr
    );

    // A bound that is long enough changes nothing.
    let run = fcgi(&["--timeout=5", "-q", "ms=50", &sock(), &script("sleep.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"slept 50");
}

#[test]
fn fail_option() {
    let run = fcgi(&["--fail", &sock(), &script("cookies.php")]);
    run.expect_code(22);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr, "fcgi: the server answered 404 Not Found\n");

    let run = fcgi(&["--fail", "-i", &sock(), &script("cookies.php")]);
    run.expect_code(22);
    assert!(run.stdout.is_empty());

    // php-fpm's own 404 for a missing script, after its STDERR (which has no newline):
    // the message of fcgi starts a line of its own.
    let run = fcgi(&["--fail", &sock(), &script("missing.php")]);
    run.expect_code(22);
    assert_eq!(
        run.stderr,
        "Primary script unknown\nfcgi: the server answered 404 Not Found\n"
    );

    let run = fcgi(&[&sock(), &script("cookies.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"not here");

    let run = fcgi(&["--fail", &sock(), &script("hello.php")]);
    run.expect_ok();
    assert_eq!(run.stdout, b"Hello, World!");
}

// ---- --values, --ping ----

#[test]
fn values_option() {
    let run = fcgi(&["--values", &sock()]);
    run.expect_ok();
    assert_eq!(run.stdout_text(), "FCGI_MPXS_CONNS=0\n");
    let run = fcgi(&[&fpm().tcp_addr().to_string(), "--values"]);
    run.expect_ok();
    assert_eq!(run.stdout_text(), "FCGI_MPXS_CONNS=0\n");
}

#[test]
fn values_from_servers_of_other_lineages() {
    // Go's net/http/fcgi ends its answer with an empty GET_VALUES_RESULT (exit 5 before
    // the core took it as the end of the answer); libfcgi answers once bytes follow the
    // record (a read timeout, exit 4, before the clients padded it).
    let go = fcgi_testkit::gofcgi::GoFcgi::shared();
    let run = fcgi(&["--timeout", "5", "--values", &path_str(go.unix_socket())]);
    run.expect_ok();
    assert_eq!(run.stdout_text(), "FCGI_MPXS_CONNS=1\n");
    let libfcgi = fcgi_testkit::libfcgi::Libfcgi::shared();
    let run = fcgi(&[
        "--timeout",
        "5",
        "--values",
        &path_str(libfcgi.unix_socket()),
    ]);
    run.expect_ok();
    assert_eq!(
        run.stdout_text(),
        "FCGI_MAX_CONNS=1\nFCGI_MAX_REQS=1\nFCGI_MPXS_CONNS=0\n"
    );
}

#[test]
fn ping_option() {
    // The address may follow --ping directly.
    let run = fcgi(&["--ping", &sock()]);
    run.expect_ok();
    assert_eq!(run.stdout, b"pong");
    let run = fcgi(&[&sock(), "--ping", "/ping"]);
    run.expect_ok();
    let run = fcgi(&["--ping=/ping", &fpm().tcp_addr().to_string()]);
    run.expect_ok();

    // A path that is not php-fpm's ping.path: php-fpm runs it as a script (missing):
    // no pong, exit 1.
    let run = fcgi(&["--ping", "/not-ping", &sock()]);
    run.expect_code(1);
    assert!(run.stderr.contains("fcgi: no pong from"), "{}", run.stderr);
    // The status page answers, but not pong.
    let run = fcgi(&["--ping", "/status", &sock()]);
    run.expect_code(1);
    assert!(run.stdout_text().contains("pool:"), "{}", run.stdout_text());
}

// ---- exit 3 ----

#[test]
fn cannot_connect_is_exit_3() {
    let missing = temp_path("no.sock");
    let run = fcgi(&[&path_str(&missing), &script("hello.php")]);
    run.expect_code(3);
    assert!(
        run.stderr.starts_with("fcgi: cannot connect"),
        "{}",
        run.stderr
    );

    let run = fcgi(&[&format!("unix:{}", path_str(&missing)), "--values"]);
    run.expect_code(3);

    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let run = fcgi(&[&format!("127.0.0.1:{port}"), &script("hello.php")]);
    run.expect_code(3);
    assert!(
        run.stderr.starts_with("fcgi: cannot connect"),
        "{}",
        run.stderr
    );
}

#[test]
fn full_listen_queue_is_exit_3_at_once() {
    // A unix socket whose listen queue is full: the connect fails at once (EAGAIN, as
    // nginx's 502) instead of waiting for room, with --timeout and without.
    let full = FullBacklog::start();
    let socket = format!("unix:{}", path_str(full.socket()));
    for timeout in [&["--timeout", "1"][..], &[]] {
        let mut args = timeout.to_vec();
        args.extend([socket.as_str(), "/x.php"]);
        let started = Instant::now();
        let run = fcgi(&args);
        let took = started.elapsed();
        run.expect_code(3);
        assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
        assert!(
            run.stderr.starts_with("fcgi: cannot connect"),
            "{}",
            run.stderr
        );
    }
}

// ---- exit 2 ----

#[test]
fn usage_errors_are_exit_2() {
    let socket = sock();
    let hello = script("hello.php");
    for args in [
        &[][..],
        &["-i"],
        &["not-an-address", &hello],
        &["host-without-port:", &hello],
        &["unix:", &hello],
        &["--nope", &socket, &hello],
        &["-z", &socket, &hello],
        &["-H", "NoColon", &socket, &hello],
        &["-H", ": empty name", &socket, &hello],
        &["-p", "NOEQUALS", &socket, &hello],
        &["-p", "=value", &socket, &hello],
        &["-p", "BAD NAME=1", &socket, &hello],
        &["--timeout", "never", &socket, &hello],
        &[&socket],
        &[&socket, &hello, "extra"],
        &["--values", &socket, &hello],
        &["--values", "-d", "x", &socket],
        &["--ping", "--values", &socket],
        &[&socket, &hello, "-X"],
    ] {
        let run = fcgi(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("fcgi: "), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    let run = fcgi(&[&socket]);
    assert!(
        run.stderr.contains("missing SCRIPT_FILENAME"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_and_version() {
    let run = fcgi(&["--help"]);
    run.expect_ok();
    let help = run.stdout_text();
    assert!(help.contains("Usage: fcgi [OPTIONS] <ADDRESS> [SCRIPT_FILENAME]"));
    for option in [
        "-X, --method",
        "-q, --query",
        "-H, --header",
        "-p, --param",
        "-d, --data",
        "-i, --include",
        "-o, --output",
        "--timeout",
        "--fail",
        "--values",
        "--ping [PATH]",
    ] {
        assert!(help.contains(option), "{option} not in the help");
    }
    let run = fcgi(&["--version"]);
    run.expect_ok();
    assert_eq!(
        run.stdout_text(),
        concat!("fcgi ", env!("CARGO_PKG_VERSION"), "\n")
    );
}

// ---- exit 5: scripted fake servers ----

/// Reads one FastCGI request (up to its empty STDIN record); answers its request id.
fn read_request(stream: &mut impl Read) -> std::io::Result<u16> {
    let mut id = 0;
    loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header)?;
        let kind = header[1];
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0u8; len + usize::from(header[6])];
        stream.read_exact(&mut content)?;
        if kind == 1 {
            id = u16::from_be_bytes([header[2], header[3]]);
        }
        if kind == 5 && len == 0 {
            return Ok(id);
        }
    }
}

/// Serves one connection on a fresh unix socket with `serve`; answers the socket path.
fn fake_server(serve: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static) -> PathBuf {
    let path = temp_path("fake.sock");
    let listener = UnixListener::bind(&path).expect("bind the fake server");
    thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            serve(stream);
        }
    });
    path
}

#[test]
fn garbage_from_the_server_is_exit_5() {
    let path = fake_server(|mut stream| {
        let _ = read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
    });
    let run = fcgi(&[&path_str(&path), "/srv/x.php"]);
    let _ = std::fs::remove_file(&path);
    run.expect_code(5);
    assert!(run.stderr.contains("broke the protocol"), "{}", run.stderr);
}

#[test]
fn close_without_end_request_is_exit_5() {
    let path = fake_server(|mut stream| {
        let Ok(id) = read_request(&mut stream) else {
            return;
        };
        let out = b"Content-Type: text/plain\r\n\r\npartial";
        let mut record = vec![1, 6];
        record.extend_from_slice(&id.to_be_bytes());
        record.extend_from_slice(&(out.len() as u16).to_be_bytes());
        record.extend_from_slice(&[0, 0]);
        record.extend_from_slice(out);
        let _ = stream.write_all(&record);
        // Dropped here: closed with the request still in flight.
    });
    let run = fcgi(&[&path_str(&path), "/srv/x.php"]);
    let _ = std::fs::remove_file(&path);
    run.expect_code(5);
    assert_eq!(run.stdout, b"partial");
    assert!(run.stderr.starts_with("fcgi: "), "{}", run.stderr);
}

#[test]
fn close_before_any_answer_is_exit_5() {
    let path = fake_server(|mut stream| {
        let _ = read_request(&mut stream);
    });
    let run = fcgi(&[&path_str(&path), "/srv/x.php"]);
    let _ = std::fs::remove_file(&path);
    run.expect_code(5);
}

// ---- -v ----

/// The length of a name-value pair as the protocol encodes it.
fn nv_len(name: &str, value: &str) -> usize {
    let prefix = |n: usize| if n < 128 { 1 } else { 4 };
    prefix(name.len()) + prefix(value.len()) + name.len() + value.len()
}

#[test]
fn verbose_shows_the_records_of_one_request() {
    for level in ["-v", "-vv"] {
        let run = fcgi(&[level, &sock(), &script("hello.php")]);
        run.expect_ok();
        // The body is untouched; the records go to standard error.
        assert_eq!(run.stdout, b"Hello, World!");
        let lines: Vec<&str> = run.stderr.lines().collect();
        let mut at = 0;
        let mut next = || {
            at += 1;
            *lines.get(at - 1).unwrap_or(&"(no more lines)")
        };
        assert_eq!(next(), format!("* connected to unix:{}", sock()));
        assert_eq!(next(), "> BEGIN_REQUEST id=1 role=RESPONDER keep-conn");
        let params = next();
        let (pairs, bytes) = params
            .strip_prefix("> PARAMS id=1 ")
            .and_then(|rest| rest.strip_suffix(" bytes"))
            .and_then(|rest| rest.split_once(" pairs, "))
            .unwrap_or_else(|| panic!("{params:?}"));
        let (pairs, bytes): (usize, usize) = (pairs.parse().unwrap(), bytes.parse().unwrap());
        assert!(pairs >= 15, "{params}");
        if level == "-vv" {
            // Each pair on a line of its own; together they are the PARAMS' bytes.
            let mut sum = 0;
            for _ in 0..pairs {
                let line = next();
                let (name, value) = line
                    .strip_prefix(">   ")
                    .and_then(|pair| pair.split_once('='))
                    .unwrap_or_else(|| panic!("{line:?}"));
                sum += nv_len(name, value);
            }
            assert_eq!(sum, bytes);
        }
        assert_eq!(next(), "> PARAMS id=1 0 bytes (end)");
        assert_eq!(next(), "> STDIN id=1 0 bytes (end)");
        // php-fpm writes the head and the body in one STDOUT record, or more.
        let mut stdout = 0;
        let mut line = next();
        while let Some(len) = line
            .strip_prefix("< STDOUT id=1 ")
            .and_then(|rest| rest.strip_suffix(" bytes"))
        {
            stdout += len.parse::<usize>().unwrap();
            line = next();
        }
        assert!(stdout > b"Hello, World!".len(), "{}", run.stderr);
        assert_eq!(line, "< END_REQUEST id=1 app=0 REQUEST_COMPLETE");
        assert_eq!(next(), "* connection closed");
        assert_eq!(at, lines.len(), "{}", run.stderr);
    }
}
