//! `fcgi status` against real php-fpm pools under load: the table, `--json`, and each
//! threshold tripping for real. Each test has a php-fpm of its own, whose workers it
//! holds busy with a script that waits for a file the test creates.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fcgi_testkit::PhpFpm;

const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// Waits, where told to go, until a file named `go` exists.
const GATE: &str = r#"<?php
touch($_GET['dir'] . '/' . $_GET['name'] . '.started');
while (!file_exists($_GET['dir'] . '/' . $_GET['name'] . '.go')) { usleep(2000); }
echo 'done';
"#;

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn output(child: Child) -> Run {
    let out = child.wait_with_output().expect("fcgi runs");
    Run {
        code: out
            .status
            .code()
            .expect("fcgi exits, not killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fcgi binary starts")
}

fn fcgi(args: &[&str]) -> Run {
    output(spawn(args))
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}

/// Waits for `condition`, at most 10 s.
#[track_caller]
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A request that holds a php-fpm worker until released.
struct Hold {
    child: Option<Child>,
    go: PathBuf,
}

impl Hold {
    /// Starts the request and returns once the script runs.
    fn start(fpm: &PhpFpm, address: &str, name: &str) -> Hold {
        let gate = fpm.write_script("gate.php", GATE);
        let dir = path_str(fpm.dir());
        let child = spawn(&[
            "-q",
            &format!("dir={dir}&name={name}"),
            address,
            &path_str(&gate),
        ]);
        let started = fpm.dir().join(format!("{name}.started"));
        wait_for("the held request to start", || started.exists());
        Hold {
            child: Some(child),
            go: fpm.dir().join(format!("{name}.go")),
        }
    }

    /// Lets the request end; answers its run.
    fn release(mut self) -> Run {
        std::fs::write(&self.go, b"").expect("write the go file");
        output(self.child.take().expect("released once"))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = std::fs::write(&self.go, b"");
            let _ = output(child);
        }
    }
}

/// The accept queue of the listening TCP socket on `port` (Linux: `rx_queue` of a
/// LISTEN socket in /proc/net/tcp).
fn accept_queue(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[1] == local && f[3] == "0A")
        .and_then(|f| f[4].split_once(':').map(|(_, rx)| rx.to_owned()))
        .and_then(|rx| usize::from_str_radix(&rx, 16).ok())
        .expect("the listening socket is in /proc/net/tcp")
}

#[test]
fn table_json_and_a_healthy_probe() {
    let fpm = PhpFpm::builder().max_children(4).start();
    let sock = path_str(fpm.unix_socket());
    let run = fcgi(&["status", &sock]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("pool:             unix\nprocess manager:  static\n"),
        "{}",
        run.stdout
    );
    // The status request itself is the one active process.
    assert!(
        run.stdout.contains("\nprocesses:        1 active, "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("GET     /status?json&full"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "");

    let run = fcgi(&["status", "--json", "--path=/status", &sock]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("{\"pool\":\"unix\","),
        "{}",
        run.stdout
    );

    let run = fcgi(&[
        "status",
        "--max-listen-queue",
        "0",
        "--min-idle",
        "0",
        "--max-active-percent=100",
        "--max-slow-requests",
        "0",
        &sock,
    ]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));

    // Not the pool's pm.status_path: php-fpm looks for a script of that name.
    let run = fcgi(&["status", "--path", "/nope", &sock]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("fcgi: no php-fpm status page at ") && run.stdout.is_empty(),
        "{}",
        run.stderr
    );
    let missing = fpm.dir().join("missing.sock");
    assert_eq!(fcgi(&["status", &path_str(&missing)]).code, 3);
    for bad in [
        &[][..],
        &["--min-idle", "x", &sock],
        &["--path", "status", &sock],
    ] {
        let run = fcgi(&[&["status"][..], bad].concat());
        assert_eq!(run.code, 2, "{bad:?}");
        assert!(run.stderr.starts_with("fcgi: "), "{}", run.stderr);
    }
}

/// `fcgi status` until its table has `line`, at most 10 s.
#[track_caller]
fn wait_for_status(sock: &str, line: &str) {
    wait_for(line, || fcgi(&["status", sock]).stdout.contains(line));
}

#[test]
fn min_idle_and_max_active_percent_trip_with_workers_busy() {
    let fpm = PhpFpm::builder().max_children(4).start();
    let sock = path_str(fpm.unix_socket());
    let _a = Hold::start(&fpm, &sock, "a");
    let _b = Hold::start(&fpm, &sock, "b");
    // Two held, the status request itself: three of four active.
    wait_for_status(&sock, "processes:        3 active, 1 idle, 4 total");
    let probe = |threshold: &str, value: &str| fcgi(&["status", threshold, value, &sock]);
    let run = probe("--min-idle", "1");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let run = probe("--min-idle", "2");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "fcgi: idle processes 1 are below --min-idle 2\n")
    );
    let run = probe("--max-active-percent", "75");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let run = probe("--max-active-percent", "74");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            "fcgi: active processes 3 of 4 (75%) are above --max-active-percent 74\n"
        )
    );
}

#[test]
fn max_slow_requests_trips_after_a_slow_request() {
    let fpm = PhpFpm::builder()
        .max_children(2)
        .request_slowlog_timeout(1)
        .start();
    let sock = path_str(fpm.unix_socket());
    let run = fcgi(&["status", "--max-slow-requests", "0", &sock]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let held = Hold::start(&fpm, &sock, "slow");
    // php-fpm's master counts a request slow once it has run for 1 s.
    wait_for_status(&sock, "slow requests:    1\n");
    held.release();
    let run = fcgi(&["status", "--max-slow-requests", "1", &sock]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let run = fcgi(&["status", "--max-slow-requests", "0", &sock]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "fcgi: slow requests 1 are above --max-slow-requests 0\n")
    );
}

/// The listen queue: php-fpm reads it for TCP sockets only (Linux: TCP_INFO), in its
/// master, once a second; the status page shows the last reading. With both workers
/// held, the status request waits in the queue first, two more connections behind it;
/// once the master has read the queue (two of its 1-second rounds), one worker is let
/// go, takes the status request, and reports the three.
#[test]
fn max_listen_queue_trips_with_requests_queued() {
    let fpm = PhpFpm::builder().max_children(2).start();
    let tcp = fpm.tcp_addr().to_string();
    let port = fpm.tcp_addr().port();
    let a = Hold::start(&fpm, &tcp, "a");
    let b = Hold::start(&fpm, &tcp, "b");
    assert_eq!(accept_queue(port), 0);
    let status = spawn(&["status", "--max-listen-queue", "1", &tcp]);
    wait_for("the status request in the queue", || {
        accept_queue(port) == 1
    });
    let queued: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(fpm.tcp_addr()).expect("connect"))
        .collect();
    wait_for("three in the queue", || accept_queue(port) == 3);
    std::thread::sleep(Duration::from_millis(2200));
    b.release();
    let run = output(status);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "fcgi: listen queue 3 is above --max-listen-queue 1\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\nlisten queue:     3 (max 3, "),
        "{}",
        run.stdout
    );
    drop(queued);
    a.release();
}
