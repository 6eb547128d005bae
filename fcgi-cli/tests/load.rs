//! Load mode of the `fcgi` binary (`-n`, `-c`) against a real php-fpm with 8 workers
//! per pool: the summary it prints, the checks it makes and its exit statuses.
//!
//! One run at a time: each kept connection pins a php-fpm worker until its `fcgi`
//! exits, so two runs side by side with more connections than workers together would
//! each wait, with requests in php-fpm's listen queue, for the other to finish.

use fcgi_testkit::hex_sha256;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use fcgi_testkit::{FullBacklog, PhpFpm};

const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit status; stdout {:?}, stderr {:?}",
            self.stdout, self.stderr
        );
        self
    }

    /// The summary line `name:`, without its name.
    #[track_caller]
    fn line(&self, name: &str) -> &str {
        let prefix = format!("{name}:");
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {prefix} line in the summary {:?}", self.stdout))
    }

    /// The number that starts summary line `name:`.
    #[track_caller]
    fn number(&self, name: &str) -> u64 {
        let line = self.line(name);
        line.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {line:?} starts with no number"))
    }

    fn requests(&self) -> u64 {
        self.number("requests")
    }

    fn errors(&self) -> u64 {
        self.number("errors")
    }

    fn opened(&self) -> u64 {
        self.number("connections")
    }

    /// The count of errors of one kind, from `errors: 7 (connect 3, timeout 4)`.
    #[track_caller]
    fn errors_of(&self, kind: &str) -> u64 {
        let line = self.line("errors");
        let Some(kinds) = line
            .split_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(')'))
        else {
            return 0;
        };
        kinds
            .split(", ")
            .find_map(|part| part.strip_prefix(kind)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn fcgi(args: &[&str]) -> Run {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fcgi_alone(args)
}

/// A run against a php-fpm of the test's own, that needs no turn.
fn fcgi_alone(args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the fcgi binary runs");
    Run {
        code: output
            .status
            .code()
            .expect("fcgi exits, not killed by a signal"),
        stdout: String::from_utf8(output.stdout).expect("the summary is text"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The php-fpm of this test binary: 8 workers, so that 8 requests in flight never wait.
fn fpm() -> &'static PhpFpm {
    static FPM: OnceLock<PhpFpm> = OnceLock::new();
    FPM.get_or_init(|| PhpFpm::builder().max_children(8).start())
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

fn temp_path(name: &str) -> std::path::PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "fcgi-load-test-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

#[test]
fn many_requests_over_a_few_connections() {
    let run = fcgi(&["-n", "200", "-c", "8", &sock(), &script("hello.php")]);
    run.expect_code(0);
    assert_eq!(run.requests(), 200);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.line("statuses"), "200 x 200");
    assert_eq!(run.number("received"), 200 * 13);
    let opened = run.opened();
    assert!((1..=8).contains(&opened), "{opened} connections opened");
    assert!(
        run.line("connections").ends_with("at most 8"),
        "{}",
        run.stdout
    );
    let latency = run.line("latency");
    for part in ["p50 ", "p90 ", "p99 ", "max "] {
        assert!(latency.contains(part), "{latency}");
    }
    assert!(run.number("requests/s") > 0, "{}", run.stdout);
    // Nothing on standard error: not a terminal, no progress line; no errors.
    assert_eq!(run.stderr, "");
}

#[test]
fn connections_option_caps_the_pool() {
    let run = fcgi(&[
        "--requests=100",
        "--concurrency=8",
        "--connections",
        "2",
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(0);
    assert_eq!(run.requests(), 100);
    assert_eq!(run.errors(), 0);
    let opened = run.opened();
    assert!((1..=2).contains(&opened), "{opened} connections opened");
}

#[test]
fn defaults_one_in_flight_and_n_from_c() {
    // -n alone: one at a time, one connection kept for all of them.
    let run = fcgi(&["-n", "20", &sock(), &script("hello.php")]);
    run.expect_code(0);
    assert_eq!(run.requests(), 20);
    assert_eq!(run.opened(), 1);
    assert!(
        run.line("requests").ends_with(", 1 in flight"),
        "{}",
        run.stdout
    );
    // -c alone: that many requests, all at once.
    let run = fcgi(&["-c4", &fpm().tcp_addr().to_string(), &script("hello.php")]);
    run.expect_code(0);
    assert_eq!(run.requests(), 4);
    assert_eq!(run.errors(), 0);
}

#[test]
fn echo_body_is_checked_against_x_body_sha256() {
    let run = fcgi(&[
        "-n",
        "40",
        "-c",
        "4",
        "-d",
        "name=World&n=1",
        &sock(),
        &script("echo.php"),
    ]);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.number("received"), 40 * 14);

    // A file is read once and sent with every request.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let path = temp_path("body.bin");
    std::fs::write(&path, &body).expect("write the body file");
    let run = fcgi(&[
        "-n",
        "10",
        "-c",
        "4",
        "-d",
        &format!("@{}", path_str(&path)),
        "--expect-sha256",
        &hex_sha256(&body),
        &sock(),
        &script("echo.php"),
    ]);
    let _ = std::fs::remove_file(&path);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.number("received"), 10 * body.len() as u64);

    // A header that names another body: every response is a checksum error.
    let liar = fpm().write_script(
        "liar.php",
        "<?php header('X-Body-Sha256: ' . hash('sha256', 'something else')); \
         echo file_get_contents('php://input');",
    );
    let run = fcgi(&["-n", "12", "-c", "3", "-d", "x", &sock(), &path_str(&liar)]);
    run.expect_code(1);
    assert_eq!(run.errors(), 12);
    assert_eq!(run.errors_of("checksum"), 12);
    assert!(
        run.stderr
            .contains("fcgi: 12 checksum errors, the first: X-Body-Sha256 is "),
        "{}",
        run.stderr
    );
}

#[test]
fn expect_sha256_mismatch_is_an_error() {
    let hello = hex_sha256(b"Hello, World!");
    let run = fcgi(&[
        "-n",
        "30",
        "-c",
        "5",
        "--expect-sha256",
        &hello.to_ascii_uppercase(),
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);

    let wrong = hex_sha256(b"Goodbye");
    let run = fcgi(&[
        "-n",
        "30",
        "-c",
        "5",
        "--expect-sha256",
        &wrong,
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(1);
    assert_eq!(run.requests(), 30);
    assert_eq!(run.errors(), 30);
    assert_eq!(run.errors_of("checksum"), 30);
    assert!(
        run.stderr.starts_with(&format!(
            "fcgi: 30 checksum errors, the first: the body's sha256 is {hello}, not {wrong}"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_status_counts_only_with_fail() {
    let args = ["-n", "200", "-c", "8", "-q", "code=500"];
    let mut with_fail = args.to_vec();
    let (socket, status) = (sock(), script("status.php"));
    with_fail.extend(["--fail", &socket, &status]);
    let run = fcgi(&with_fail);
    run.expect_code(22);
    assert_eq!(run.requests(), 200);
    assert_eq!(run.errors(), 200);
    assert_eq!(run.errors_of("bad status"), 200);
    assert_eq!(run.line("statuses"), "500 x 200");
    assert!(
        run.stderr
            .contains("fcgi: 200 bad status errors, the first: the server answered 500"),
        "{}",
        run.stderr
    );

    // Without --fail a complete response is no error, whatever its status.
    let mut without = args.to_vec();
    without.extend([socket.as_str(), &status]);
    let run = fcgi(&without);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.line("statuses"), "500 x 200");
}

#[test]
fn application_stderr_is_counted_not_passed_on() {
    let run = fcgi(&["-n", "10", "-c", "2", &sock(), &script("missing.php")]);
    run.expect_code(0);
    assert_eq!(run.line("statuses"), "404 x 10");
    assert_eq!(
        run.stderr,
        "fcgi: 10 responses came with FCGI_STDERR, the first: Primary script unknown\n"
    );
}

#[test]
fn missing_socket_is_connect_errors_exit_3() {
    let missing = temp_path("no.sock");
    let run = fcgi(&["-n", "50", "-c", "5", &path_str(&missing), "/srv/x.php"]);
    run.expect_code(3);
    assert_eq!(run.requests(), 50);
    assert_eq!(run.errors(), 50);
    assert_eq!(run.errors_of("connect"), 50);
    assert_eq!(run.opened(), 0);
    assert_eq!(run.line("latency"), "none (no response arrived whole)");
    assert!(
        run.stderr
            .starts_with("fcgi: 50 connect errors, the first: cannot connect"),
        "{}",
        run.stderr
    );

    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let run = fcgi(&["-c", "3", &format!("127.0.0.1:{port}"), "/srv/x.php"]);
    run.expect_code(3);
    assert_eq!(run.errors_of("connect"), 3);
}

#[test]
fn full_listen_queue_is_connect_errors_exit_3_at_once() {
    // A unix socket whose listen queue is full: every connect fails at once (EAGAIN, as
    // nginx's 502) instead of waiting for room.
    let full = FullBacklog::start();
    let socket = format!("unix:{}", path_str(full.socket()));
    let started = Instant::now();
    let run = fcgi(&["-n", "10", "-c", "2", "--timeout", "1", &socket, "/x.php"]);
    let took = started.elapsed();
    run.expect_code(3);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(run.errors_of("connect"), 10);
    assert_eq!(run.opened(), 0);
}

#[test]
fn timeout_bounds_each_request() {
    let started = Instant::now();
    let run = fcgi(&[
        "-n",
        "4",
        "-c",
        "2",
        "--timeout",
        "0.2",
        "-q",
        "ms=700",
        &sock(),
        &script("sleep.php"),
    ]);
    let took = started.elapsed();
    run.expect_code(4);
    assert_eq!(run.errors(), 4);
    assert_eq!(run.errors_of("timeout"), 4);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(
        run.stderr
            .starts_with("fcgi: 4 timeout errors, the first: timed out after 0.200s"),
        "{}",
        run.stderr
    );

    // A bound long enough changes nothing.
    let run = fcgi(&[
        "-n",
        "4",
        "-c",
        "2",
        "--timeout=5",
        "-q",
        "ms=20",
        &sock(),
        &script("sleep.php"),
    ]);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
}

#[test]
fn mixed_errors_are_exit_1() {
    // Half the requests time out, half answer 500: two kinds, exit 1.
    let script = fpm().write_script(
        "half.php",
        "<?php if (getmypid() % 2) { usleep(600000); } header('Status: 500'); echo 'x';",
    );
    // Which workers sleep is up to php-fpm; retry until both kinds showed up.
    for _ in 0..5 {
        let run = fcgi(&[
            "-n",
            "8",
            "-c",
            "8",
            "--fail",
            "--timeout",
            "0.3",
            &sock(),
            &path_str(&script),
        ]);
        if run.errors_of("timeout") > 0 && run.errors_of("bad status") > 0 {
            run.expect_code(1);
            assert_eq!(run.errors(), 8);
            return;
        }
        assert!([4, 22].contains(&run.code), "{}", run.stdout);
    }
    panic!("never both kinds of errors in one run");
}

#[test]
fn usage_conflicts_are_exit_2() {
    let socket = sock();
    let hello = script("hello.php");
    for (args, message) in [
        (
            &["-n", "5", "-i"][..],
            "-i/--include cannot be used in load mode",
        ),
        (
            &["-c", "2", "-o", "out"],
            "-o/--output cannot be used in load mode",
        ),
        (
            &["-n", "5", "--values"],
            "--values cannot be used in load mode",
        ),
        (&["-c", "5", "--ping"], "--ping cannot be used in load mode"),
        (
            &["--connections", "2"],
            "--connections belongs to load mode",
        ),
        (&["--multiplex"], "--multiplex belongs to load mode"),
        (&["--expect-sha256", "00"], "bad --expect-sha256"),
        (&["-n", "0"], "bad -n/--requests \"0\""),
        (&["-n", "-3"], "bad -n/--requests"),
        (&["-n", "lots"], "bad -n/--requests"),
        (&["-c", "0"], "bad -c/--concurrency"),
        (&["-c", "100001"], "bad -c/--concurrency"),
        (&["-n", "5", "--connections=0"], "bad --connections"),
        (&["-n", "5", "--expect-sha256", "xyz"], "want 64 hex digits"),
    ] {
        let mut all = args.to_vec();
        all.extend([socket.as_str(), &hello]);
        let run = fcgi(&all);
        assert_eq!(run.code, 2, "{all:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("fcgi: ") && run.stderr.contains(message),
            "{all:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{all:?}");
    }
    let run = fcgi(&[&socket, &hello, "-n"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("option -n/--requests needs a value"),
        "{}",
        run.stderr
    );
    // Load mode needs a SCRIPT_FILENAME too.
    let run = fcgi(&["-n", "5", &socket]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("missing SCRIPT_FILENAME"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_lists_the_load_options() {
    let run = fcgi(&["--help"]);
    run.expect_code(0);
    for option in [
        "-n, --requests N",
        "-c, --concurrency C",
        "--connections K",
        "--multiplex",
        "--expect-sha256 HEX",
        "pins one php-fpm worker",
    ] {
        assert!(run.stdout.contains(option), "{option} not in the help");
    }
}

#[test]
fn multiplex_shares_one_connection_with_flup() {
    let flup = fcgi_testkit::Flup::shared();
    let socket = path_str(flup.unix_socket());
    let run = fcgi(&[
        "-n",
        "100",
        "-c",
        "20",
        "--multiplex",
        &socket,
        "/srv/hello.php",
    ]);
    run.expect_code(0);
    assert_eq!(run.requests(), 100);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.line("statuses"), "200 x 100");
    assert_eq!(run.line("connections"), "1 opened, at most 20, multiplexed");

    // Bodies and their X-Body-Sha256 checked on the shared connection too.
    let run = fcgi(&[
        "-n",
        "60",
        "-c",
        "20",
        "--multiplex",
        "-d",
        "side by side",
        &socket,
        "/srv/echo.php",
    ]);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.opened(), 1);
    assert_eq!(run.number("received"), 60 * 12);

    // Without --multiplex: one connection per request in flight. (Only 4: flup's thread
    // pool starts with 5 threads, one per kept connection, and a burst of more
    // connections than that waits for threads it does not start.)
    let run = fcgi(&["-n", "40", "-c", "4", &socket, "/srv/hello.php"]);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
    let opened = run.opened();
    assert!((2..=4).contains(&opened), "{opened} connections opened");
}

/// The `max` of the summary's latency line, in milliseconds.
fn max_latency_ms(run: &Run) -> f64 {
    let latency = run.line("latency");
    latency
        .rsplit_once("max ")
        .and_then(|(_, max)| max.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no max in {latency:?}"))
}

/// `fcgi --multiplex --timeout 2 -n 50 -c 4` against a server that never answers
/// GET_VALUES and closes every connection after END_REQUEST: the probe gives up after
/// --timeout (2 s), before the run starts, and no request ever waits for it.
fn run_beside_an_unanswered_probe(socket: &str, script: &str) {
    let run = fcgi(&[
        "--multiplex",
        "--timeout",
        "2",
        "-n",
        "50",
        "-c",
        "4",
        socket,
        script,
    ]);
    run.expect_code(0);
    assert_eq!(run.requests(), 50);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.line("statuses"), "200 x 50");
    assert_eq!(
        run.line("connections"),
        "50 opened, at most 4, not multiplexed (no answer to GET_VALUES)"
    );
    // No request waited for the probe's 2 s bound.
    assert!(max_latency_ms(&run) < 1000.0, "{}", run.line("latency"));
}

#[test]
fn multiplex_against_a_server_that_never_answers_get_values() {
    // The server holds the GET_VALUES connection for 3 s, then drops it.
    let server = fcgi_testkit::silent::Silent::start(Duration::from_secs(3));
    run_beside_an_unanswered_probe(&path_str(server.socket()), "/srv/hello.php");
    assert_eq!(server.requests_served(), 50);
    assert!(server.probes_seen() >= 1);
}

#[test]
fn multiplex_against_uwsgi_which_never_answers_get_values() {
    // The real server that behaves so: uWSGI in FastCGI mode sends nothing in answer to
    // GET_VALUES (it holds the probe's connection for 8 s).
    let server = fcgi_testkit::Uwsgi::shared();
    run_beside_an_unanswered_probe(&path_str(server.unix_socket()), "/srv/hello.py");
}

#[test]
fn a_long_multiplex_run_has_no_stall_from_the_probe() {
    // Long enough for the client to ask GET_VALUES again in the background (5 s after
    // the first probe gave up at 1 s): requests still never wait for a probe. The run
    // is bounded by time, not by a count, so that it outlasts the second probe however
    // fast the requests go.
    let server = fcgi_testkit::silent::Silent::start(Duration::from_secs(3));
    let socket = path_str(server.socket());
    let run = fcgi(&[
        "--multiplex",
        "--timeout",
        "1",
        "--duration",
        "9s",
        "-c",
        "4",
        &socket,
        "/srv/hello.php",
    ]);
    run.expect_code(0);
    assert_eq!(run.errors(), 0);
    // The second probe, 6 s in, ran during the run.
    assert!(
        server.probes_seen() >= 2,
        "one probe: the run ended before the client asked again"
    );
    assert!(max_latency_ms(&run) < 500.0, "{}", run.line("latency"));
}

#[test]
fn multiplex_over_one_connection_to_go() {
    // Go's net/http/fcgi answers GET_VALUES with FCGI_MPXS_CONNS=1 and then an empty
    // GET_VALUES_RESULT, which broke the discovery before: every request went one at a
    // time over the one connection allowed (100 sleeps of 100 ms in flight took 10 s).
    let go = fcgi_testkit::gofcgi::GoFcgi::shared();
    let socket = path_str(go.unix_socket());
    let run = fcgi(&[
        "-n",
        "400",
        "-c",
        "100",
        "--connections",
        "1",
        "--multiplex",
        "-q",
        "ms=100",
        &socket,
        "/srv/sleep.php",
    ]);
    run.expect_code(0);
    assert_eq!(run.requests(), 400);
    assert_eq!(run.errors(), 0);
    assert_eq!(run.line("statuses"), "200 x 400");
    assert_eq!(run.line("connections"), "1 opened, at most 1, multiplexed");
    // Four waves of 100 sleeps of 100 ms side by side: well under 4 s one after the
    // other would take 40 s.
    let secs: f64 = run
        .line("requests")
        .split(" in ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .expect("the run's duration");
    assert!(secs < 2.0, "{}", run.line("requests"));
    assert!(max_latency_ms(&run) < 1000.0, "{}", run.line("latency"));
}

/// Counts its requests in the file `counter` names; the 500th of each thousand stalls
/// for one second.
const STALL: &str = r#"<?php
$f = fopen($_GET['counter'], 'c+');
flock($f, LOCK_EX);
$n = (int) stream_get_contents($f) + 1;
ftruncate($f, 0);
rewind($f);
fwrite($f, (string) $n);
flock($f, LOCK_UN);
fclose($f);
if ($n % 1000 == 500) { usleep(1000000); }
echo 'ok';
"#;

/// A latency of the summary's latency line, in ms: `p99`, `max`, ...
#[track_caller]
fn latency_ms(run: &Run, name: &str) -> f64 {
    let line = run.line("latency");
    line.split(", ")
        .find_map(|part| {
            part.strip_prefix(name)?
                .strip_prefix(' ')?
                .strip_suffix(" ms")
        })
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// Coordinated omission: on one connection, one request in a thousand stalls for a
/// second. Closed loop, that stall delays only the requests that were not sent
/// meanwhile, so it shows in the max alone. Open loop at 100 requests/s, the hundred
/// requests that fell due during the stall waited for it, and the p99 says so.
///
/// It runs for 10 s on a php-fpm of its own, beside the other tests (whose runs take
/// turns on the shared one: a turn this long would count in their timings).
#[test]
fn open_loop_counts_the_wait_behind_a_stall() {
    let fpm = PhpFpm::builder().max_children(2).start();
    let sock = || path_str(fpm.unix_socket());
    let stall = path_str(&fpm.write_script("stall.php", STALL));
    let counter = |name: &str| format!("counter={}", path_str(&temp_path(name)));

    let closed = counter("closed");
    let run = fcgi_alone(&["-n", "1000", "-q", &closed, &sock(), &stall]);
    run.expect_code(0);
    assert_eq!(run.requests(), 1000);
    let (p99, max) = (latency_ms(&run, "p99"), latency_ms(&run, "max"));
    assert!(p99 < 200.0, "closed loop p99 {p99} ms: {}", run.stdout);
    assert!(max >= 1000.0, "closed loop max {max} ms: {}", run.stdout);

    let open = counter("open");
    let run = fcgi_alone(&[
        "-n",
        "1000",
        "--rate",
        "100",
        "--connections",
        "1",
        "-q",
        &open,
        &sock(),
        &stall,
    ]);
    run.expect_code(0);
    assert_eq!(run.requests(), 1000);
    assert!(
        run.line("connections").ends_with("at most 1"),
        "{}",
        run.stdout
    );
    let (p99, max) = (latency_ms(&run, "p99"), latency_ms(&run, "max"));
    assert!(
        (800.0..1500.0).contains(&p99),
        "open loop p99 {p99} ms: {}",
        run.stdout
    );
    assert!(max >= 1000.0, "open loop max {max} ms: {}", run.stdout);
    for name in ["closed", "open"] {
        let _ = std::fs::remove_file(temp_path(name));
    }
}

#[test]
fn duration_rate_and_json() {
    // A php-fpm of its own, as for the stall above: these runs last a second.
    let fpm = PhpFpm::builder().max_children(2).start();
    let sock = || path_str(fpm.unix_socket());
    let script = |name: &str| path_str(&fpm.script(name));
    // At 50 requests/s for one second: the 50 requests due before its end.
    let run = fcgi_alone(&[
        "--rate",
        "50",
        "--duration",
        "1s",
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(0);
    assert_eq!(run.requests(), 50);
    assert_eq!(run.errors(), 0);
    assert!(
        run.line("requests").ends_with("at most, 50 due per second"),
        "{}",
        run.stdout
    );

    // Open loop on one kept connection: the requests taken early and sent on schedule
    // reuse it (a task out of work closed it under the next one's feet: 20 opened).
    let run = fcgi_alone(&[
        "--rate",
        "100",
        "-n",
        "20",
        "--connections",
        "1",
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(0);
    assert_eq!((run.requests(), run.errors()), (20, 0));
    assert_eq!(run.opened(), 1, "{}", run.stdout);

    // Closed loop for 300 ms, the summary as one JSON object.
    let started = Instant::now();
    let run = fcgi_alone(&[
        "--duration=300ms",
        "-c",
        "2",
        "--json",
        &sock(),
        &script("hello.php"),
    ]);
    run.expect_code(0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let line = run.stdout.trim_end();
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    for part in [
        "\"errors\":0,",
        "\"in_flight\":2,",
        "\"latency_ms\":{\"max\":",
        "\"statuses\":{\"200\":",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}
