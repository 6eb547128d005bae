//! A private uWSGI in FastCGI mode: a real server that never answers `GET_VALUES` and
//! closes every connection after `END_REQUEST`, whatever `FCGI_KEEP_CONN` says.
//!
//! ```no_run
//! use fcgi_testkit::Uwsgi;
//!
//! let server = Uwsgi::shared(); // one per test binary, started on first use
//! let socket = server.unix_socket();
//! # let _ = socket;
//! ```
//!
//! # Finding uWSGI
//!
//! The binary is the path in `FCGI_TEST_UWSGI` when set, else `uwsgi` on `PATH`; it
//! loads its `python3` plugin (`--plugin python3`). Debian 12: `apt-get install -y
//! uwsgi-core uwsgi-plugin-python3` (uWSGI 2.0.21, Python 3.11; installing starts no
//! service). A start without them panics with that command.
//!
//! # The server
//!
//! Each instance has its own temporary directory `DIR` with the application
//! `DIR/uwsgi_app.py`, the socket `DIR/uwsgi.sock` (mode 0666), the master's pid file
//! `DIR/uwsgi.pid` and the server's output `DIR/uwsgi.log` (see [`Uwsgi::log`]). It runs
//!
//! ```text
//! uwsgi --plugin python3 --fastcgi-socket DIR/uwsgi.sock --chmod-socket=666
//!       --master --die-on-term --no-orphans --need-app --strict --disable-logging
//!       --skip-atexit --worker-reload-mercy 2 --processes 2 --threads 8
//!       --wsgi-file DIR/uwsgi_app.py --pidfile DIR/uwsgi.pid
//!       --hook-accepting "append:DIR/accepting x"
//! ```
//!
//! with no `UWSGI_*` variable in its environment (uWSGI reads options from those). Two
//! worker processes of 8 threads each serve 16 connections at once: every thread
//! accepts a connection and serves it to its end. A master process watches the workers;
//! `--die-on-term` makes SIGTERM stop the whole server (without it, uWSGI 2.0 takes
//! SIGTERM as "reload").
//!
//! A start returns once every worker has run the `accepting` hook (one `x` each in
//! `DIR/accepting`) and a `/hello` request was answered, about 0.1 s. A worker runs that
//! hook after it has set its own signal handlers; until then it has the master's, and
//! the master's SIGINT on a stop would leave it running (seen when a test dropped an
//! instance right after its start).
//!
//! # The routes
//!
//! As [`Flup`](crate::Flup)'s, the route being the last segment of the request path
//! (`REQUEST_URI` without its query, else `SCRIPT_NAME` + `PATH_INFO`) without its
//! extension: `/hello`, `/srv/hello.php` and `/x/hello.py` all reach `hello`. uWSGI
//! writes `Status: <code> <reason>` and then the application's headers in order, lines
//! ending in `\r\n`, and adds none.
//!
//! - **`hello`**: 200, `Content-Type: text/plain`, body `Hello, World!`.
//! - **`echo`**: reads the body (`CONTENT_LENGTH` bytes), then 200, `Content-Type:
//!   application/octet-stream`, `X-Body-Sha256: <64 lower-case hex digits>`,
//!   `X-Body-Length: <bytes>`, and the body byte for byte.
//! - **`sleep?ms=N`**: sleeps N milliseconds, then 200, `Content-Type: text/plain`,
//!   body `slept N` (a missing or malformed N counts as 0).
//! - anything else: 404 `Not Found`, `Content-Type: text/plain`, body `not found`.
//!
//! # What uWSGI writes (2.0.21, `proto/fastcgi.c`; seen on the wire, the tests below check it)
//!
//! - **Records**: never padded. The head is one `STDOUT` record, each piece of the body
//!   another. No `STDERR` (a WSGI application's `wsgi.errors` goes to the log).
//! - **End of a request**: an empty `STDOUT`, then `END_REQUEST` (app status 0,
//!   `REQUEST_COMPLETE`), then uWSGI **closes the connection**, even when
//!   `BEGIN_REQUEST` set `FCGI_KEEP_CONN`: its parser never reads the flags.
//! - **`GET_VALUES`**: no answer at all, no `UNKNOWN_TYPE`: the parser reads `PARAMS`
//!   and `STDIN` and skips every other record type. A connection that sends nothing
//!   more is held, silent, until uWSGI's read timeout drops it: 8 s with the default
//!   `--socket-timeout` of 4 s (2 s with `--socket-timeout 1`). A request sent after
//!   the `GET_VALUES` on the same connection is served as if it were not there.
//! - While it holds such a connection, it holds the thread that accepted it: 16 probes
//!   left open would keep every later request waiting for up to 8 s. A client that
//!   gives up on its probe and closes the connection frees the thread at once.
//!
//! # Stopping
//!
//! uWSGI is started through the same small `sh` wrapper as php-fpm (see the crate
//! documentation): its standard input is a pipe held by this process, and when that
//! pipe closes, on [`Drop`] or when the test process exits in any way (even killed),
//! the wrapper sends SIGTERM to the master (by its pid), waits for it and removes `DIR`.
//! The master sends SIGINT to its workers and exits once they are gone, within about a
//! second (it looks at them once a second). `--skip-atexit` makes a worker leave at once
//! on that SIGINT: without it the worker runs Python's teardown while its other threads
//! sit in `accept`, the likeliest reason why one CI run saw a stop take the full 10 s.
//! `--worker-reload-mercy 2` has the master kill a worker that is still there 2 s after
//! the SIGINT, where uWSGI's default waits 60 s. A stop that takes more than 10 s kills
//! the master and its workers by their pids.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{make_temp_dir, process, read_lossy, wait_timeout, WRAPPER};

/// The environment variable that names the uWSGI binary (default `uwsgi` on `PATH`).
pub const UWSGI_ENV: &str = "FCGI_TEST_UWSGI";

/// Worker processes of every instance.
pub const PROCESSES: u32 = 2;

/// Threads of each worker: each serves one connection at a time.
pub const THREADS: u32 = 8;

/// How uWSGI is installed, for the message when it is missing.
const INSTALL_HINT: &str = "Debian: `apt-get install -y uwsgi-core uwsgi-plugin-python3`";

/// How long uWSGI gets to serve its first request after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stop waits for uWSGI to exit after SIGTERM before it kills it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The WSGI application; see the module documentation.
const APP: &str = r#"# Written by fcgi-testkit: the test routes, served by uWSGI.
import hashlib
import time
from urllib.parse import parse_qs


def number(query, name):
    try:
        return int(query.get(name, ['0'])[0])
    except ValueError:
        return 0


def route_of(environ):
    path = environ.get('REQUEST_URI', '').split('?', 1)[0]
    if not path:
        path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
    last = path.rsplit('/', 1)[-1]
    return last.split('.', 1)[0]


def application(environ, start_response):
    route = route_of(environ)
    query = parse_qs(environ.get('QUERY_STRING', ''))
    if route == 'hello':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'Hello, World!']
    if route == 'echo':
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = 0
        stream = environ['wsgi.input']
        parts = []
        got = 0
        while got < length:
            piece = stream.read(min(65536, length - got))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        body = b''.join(parts)
        start_response('200 OK', [
            ('Content-Type', 'application/octet-stream'),
            ('X-Body-Sha256', hashlib.sha256(body).hexdigest()),
            ('X-Body-Length', str(len(body))),
        ])
        return [body]
    if route == 'sleep':
        ms = number(query, 'ms')
        time.sleep(max(ms, 0) / 1000.0)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('slept %d' % ms).encode()]
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'not found']
"#;

/// The uWSGI binary: `$FCGI_TEST_UWSGI`, else `uwsgi` (looked up on `PATH`).
pub fn find_uwsgi() -> PathBuf {
    std::env::var_os(UWSGI_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("uwsgi"), PathBuf::from)
}

/// A private uWSGI serving the test routes over FastCGI on a unix socket (see the
/// module documentation). Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct Uwsgi {
    dir: PathBuf,
    socket: PathBuf,
    wrapper: Option<Child>,
    control: Option<ChildStdin>,
    master_pid: u32,
}

impl Uwsgi {
    /// Starts a private instance and returns once it has answered a request.
    ///
    /// # Panics
    ///
    /// When uWSGI or its python3 plugin is missing (the message says what to install),
    /// or it does not answer within 20 seconds (the message holds its output).
    pub fn start() -> Self {
        let binary = find_uwsgi();
        let dir = make_temp_dir();
        let app = dir.join("uwsgi_app.py");
        let socket = dir.join("uwsgi.sock");
        let pid_file = dir.join("uwsgi.pid");
        let log_path = dir.join("uwsgi.log");
        let accepting = dir.join("accepting");
        assert!(
            !dir.as_os_str().to_string_lossy().contains(' '),
            "a temporary directory with a space: {dir:?}"
        );
        fs::write(&app, APP).unwrap_or_else(|e| panic!("cannot write {app:?}: {e}"));
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {log_path:?}: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open {log_path:?}: {e}"));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("fcgi-testkit-uwsgi")
            .arg(&dir)
            .arg(&binary)
            .args(["--plugin", "python3", "--fastcgi-socket"])
            .arg(&socket)
            .arg("--chmod-socket=666")
            .args(["--master", "--die-on-term", "--no-orphans", "--need-app"])
            .args(["--strict", "--disable-logging"])
            .args(["--skip-atexit", "--worker-reload-mercy", "2"])
            .args(["--processes", &PROCESSES.to_string()])
            .args(["--threads", &THREADS.to_string()])
            .arg("--wsgi-file")
            .arg(&app)
            .arg("--pidfile")
            .arg(&pid_file)
            .arg("--hook-accepting")
            .arg(format!("append:{} x", accepting.display()))
            .current_dir(&dir);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("UWSGI_") {
                command.env_remove(name);
            }
        }
        let mut wrapper = command
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to start uWSGI: {e}"));
        let control = wrapper.stdin.take();
        let mut server = Uwsgi {
            dir,
            socket,
            wrapper: Some(wrapper),
            control,
            master_pid: 0,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let wrapper = server.wrapper.as_mut().expect("set above");
            if let Ok(Some(status)) = wrapper.try_wait() {
                server.wrapper = None;
                panic!(
                    "uWSGI ({}) exited during start ({status}); when it or its python3 plugin \
                     is missing, install them ({INSTALL_HINT}) or set {UWSGI_ENV}; its \
                     output:\n{}",
                    binary.display(),
                    server.log()
                );
            }
            if server.master_pid == 0 {
                server.master_pid = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
            }
            // Every worker has set its signal handlers before it runs the hook: a
            // SIGTERM from now on stops them all. (One still starting would take the
            // master's SIGINT for the master's and go on.)
            let accepted = fs::metadata(&accepting).map_or(0, |m| m.len());
            if server.master_pid != 0
                && accepted >= u64::from(PROCESSES)
                && answers_hello(&server.socket)
            {
                return server;
            }
            if Instant::now() > deadline {
                let log = server.log();
                server.stop();
                panic!(
                    "uWSGI ({}) did not answer on {} within {READY_TIMEOUT:?}; its output:\n{log}",
                    binary.display(),
                    server.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The instance shared by every test of this test binary, started on first use. It
    /// is never dropped: it stops and its directory goes away when the test process
    /// exits.
    ///
    /// # Panics
    ///
    /// As [`Uwsgi::start`], in every test that calls it.
    pub fn shared() -> &'static Uwsgi {
        static SHARED: OnceLock<Uwsgi> = OnceLock::new();
        SHARED.get_or_init(Uwsgi::start)
    }

    /// The unix socket it listens on.
    pub fn unix_socket(&self) -> &Path {
        &self.socket
    }

    /// The temporary directory of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of the master (the last one, once stopped).
    pub fn master_pid(&self) -> u32 {
        self.master_pid
    }

    /// The living workers (children of the master), read from `/proc`; empty when
    /// uWSGI is not running.
    pub fn worker_pids(&self) -> Vec<u32> {
        if self.wrapper.is_none() || self.master_pid == 0 {
            return Vec::new();
        }
        process::children(self.master_pid)
    }

    /// Whether the master process is alive.
    pub fn is_running(&self) -> bool {
        self.wrapper.is_some() && process::alive(self.master_pid)
    }

    /// What uWSGI printed so far: its start banner, and what applications write to
    /// their standard error. Empty when it cannot be read.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("uwsgi.log"), 0)
    }

    /// Stops uWSGI: closes the wrapper's pipe, which sends SIGTERM to the master, and
    /// waits for it (about a second), killing the master and its workers by their pids
    /// after 10 seconds. Does nothing when it is not running.
    pub fn stop(&mut self) {
        drop(self.control.take());
        let Some(mut wrapper) = self.wrapper.take() else {
            return;
        };
        if wait_timeout(&mut wrapper, STOP_TIMEOUT).is_none() {
            let workers = process::children(self.master_pid);
            process::signal("KILL", &[self.master_pid]);
            process::signal("KILL", &workers);
            let _ = wrapper.kill();
            let _ = wrapper.wait();
        }
    }
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether a `GET /hello` over FastCGI to `socket` is answered `Hello, World!` and
/// `END_REQUEST` within 5 s.
fn answers_hello(socket: &Path) -> bool {
    fn record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
        let len = u16::try_from(content.len()).expect("a short record");
        out.extend_from_slice(&[1, kind, 0, 1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(content);
    }
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut params = Vec::new();
    for (name, value) in [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/hello"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ] {
        params.extend_from_slice(&[name.len() as u8, value.len() as u8]);
        params.extend_from_slice(name.as_bytes());
        params.extend_from_slice(value.as_bytes());
    }
    let mut wire = Vec::new();
    record(&mut wire, 1, &[0, 1, 0, 0, 0, 0, 0, 0]);
    record(&mut wire, 4, &params);
    record(&mut wire, 4, b"");
    record(&mut wire, 5, b"");
    if stream.write_all(&wire).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    if stream.read_to_end(&mut answer).is_err() {
        return false;
    }
    let end = [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    answer.windows(13).any(|w| w == b"Hello, World!") && answer.ends_with(&end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, read_record, read_until, record, Rec};

    fn connect(server: &Uwsgi) -> UnixStream {
        let stream = UnixStream::connect(server.unix_socket()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a timeout");
        stream
    }

    const COMPLETE: [u8; 8] = [0; 8];

    fn rec(kind: u8, id: u16, content: &[u8]) -> Rec {
        Rec {
            kind,
            id,
            content: content.to_vec(),
            padding: Vec::new(),
        }
    }

    fn hello_records(id: u16) -> Vec<Rec> {
        vec![
            rec(6, id, b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
            rec(6, id, b"Hello, World!"),
            rec(6, id, b""),
            rec(3, id, &COMPLETE),
        ]
    }

    #[test]
    fn closes_after_end_request_although_keep_conn_is_set() {
        let server = Uwsgi::shared();
        for id in [1, 2, 300] {
            let mut stream = connect(server);
            stream
                .write_all(&wire::request(id, "/hello", true))
                .unwrap();
            assert_eq!(read_until(&mut stream, 3), hello_records(id), "{id}");
            assert_eq!(read_record(&mut stream), None, "closed after END_REQUEST");
        }
    }

    #[test]
    fn get_values_gets_nothing_and_a_request_after_it_is_served() {
        let server = Uwsgi::shared();
        let mut stream = connect(server);
        let mut bytes =
            wire::get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"], 0);
        bytes.extend(wire::request(1, "/hello", true));
        stream.write_all(&bytes).unwrap();
        // The first record is the request's: nothing answers the GET_VALUES.
        assert_eq!(read_until(&mut stream, 3), hello_records(1));
        assert_eq!(read_record(&mut stream), None, "closed after END_REQUEST");
    }

    #[test]
    fn get_values_alone_is_held_unanswered_then_dropped() {
        // A private instance: the held connection holds one of its threads for 8 s.
        let server = Uwsgi::start();
        let mut stream = connect(&server);
        let start = Instant::now();
        stream
            .write_all(&wire::get_values(&["FCGI_MPXS_CONNS"], 0))
            .unwrap();
        // Longer than any probe of the tests waits: nothing, and the connection is open.
        assert!(wire::silent_for(&mut stream, Duration::from_secs(3)));
        // Then uWSGI's read timeout (2 x its default --socket-timeout of 4 s) closes it,
        // still without a byte.
        assert_eq!(read_record(&mut stream), None);
        let held = start.elapsed();
        assert!(
            (Duration::from_secs(7)..Duration::from_secs(10)).contains(&held),
            "held {held:?}"
        );
    }

    #[test]
    fn echo_and_not_found() {
        let server = Uwsgi::shared();
        let mut stream = connect(server);
        let body = b"some bytes\x00\xff";
        let mut params = Vec::new();
        wire::pair(&mut params, "REQUEST_METHOD", "POST");
        wire::pair(&mut params, "REQUEST_URI", "/x/echo.py");
        wire::pair(&mut params, "CONTENT_LENGTH", &body.len().to_string());
        wire::pair(&mut params, "SERVER_PROTOCOL", "HTTP/1.1");
        let mut request = record(1, 5, &[0, 1, 0, 0, 0, 0, 0, 0]);
        request.extend(record(4, 5, &params));
        request.extend(record(4, 5, b""));
        request.extend(record(5, 5, &body[..4]));
        request.extend(record(5, 5, &body[4..]));
        request.extend(record(5, 5, b""));
        stream.write_all(&request).unwrap();
        let head = format!(
            "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\
             X-Body-Sha256: {}\r\nX-Body-Length: 12\r\n\r\n",
            crate::hex_sha256(body)
        );
        assert_eq!(
            read_until(&mut stream, 3),
            [
                rec(6, 5, head.as_bytes()),
                rec(6, 5, body),
                rec(6, 5, b""),
                rec(3, 5, &COMPLETE),
            ]
        );
        assert_eq!(read_record(&mut stream), None);

        let mut stream = connect(server);
        stream
            .write_all(&wire::request(1, "/nowhere", false))
            .unwrap();
        assert_eq!(
            read_until(&mut stream, 3),
            [
                rec(
                    6,
                    1,
                    b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
                ),
                rec(6, 1, b"not found"),
                rec(6, 1, b""),
                rec(3, 1, &COMPLETE),
            ]
        );
    }

    #[test]
    fn sixteen_connections_are_served_at_once() {
        // A private instance: all of its threads are needed.
        let server = Uwsgi::start();
        let start = Instant::now();
        let mut streams: Vec<UnixStream> = (0..16).map(|_| connect(&server)).collect();
        for (i, stream) in streams.iter_mut().enumerate() {
            let id = i as u16 + 1;
            stream
                .write_all(&wire::request(id, "/sleep?ms=500", false))
                .unwrap();
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            let records = read_until(stream, 3);
            assert_eq!(records[1], rec(6, i as u16 + 1, b"slept 500"));
        }
        // One after another they would take 8 s; two at a time (one per worker) 4 s.
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn dropped_instance_stops_and_cleans_up() {
        let server = Uwsgi::start();
        let dir = server.dir().to_path_buf();
        let master = server.master_pid();
        let workers = server.worker_pids();
        assert_eq!(workers.len(), PROCESSES as usize);
        assert!(server.is_running());
        assert!(
            server.log().contains("spawned uWSGI worker"),
            "{}",
            server.log()
        );
        let start = Instant::now();
        drop(server);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(!process::alive(master));
        assert!(workers.iter().all(|&pid| !process::alive(pid)));
        assert!(!dir.exists());
    }
}
