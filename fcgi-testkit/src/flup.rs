//! A private flup: a Python FastCGI server that multiplexes requests on one connection.
//!
//! [`Flup`] runs `flup.server.fcgi.WSGIServer(app, bindAddress=SOCKET, multiplexed=True)`
//! (flup 1.0.3, from PyPI) with a small WSGI application whose routes mirror the PHP
//! scripts the tests use. flup is the multiplexing peer of the tests: php-fpm answers
//! `FCGI_MPXS_CONNS=0` and serves one request per connection at a time.
//!
//! ```no_run
//! use fcgi_testkit::Flup;
//!
//! let flup = Flup::shared(); // one per test binary, started on first use
//! let socket = flup.unix_socket();
//! // A private one that refuses to multiplex, or advertises a small FCGI_MAX_REQS.
//! let own = Flup::builder().max_reqs(10).start();
//! # let _ = (socket, own);
//! ```
//!
//! # The Python environment
//!
//! flup lives in a virtual environment made once and reused by every later run: the
//! directory in `FCGI_TEST_FLUP_VENV` when set, else `$TMPDIR/fcgi-testkit-flup-venv`
//! (see [`flup_venv`]). The first start creates it with `python3 -m venv` and
//! `pip install flup==1.0.3` (a few seconds; pip needs the network or a configured
//! mirror), in a scratch directory renamed into place once complete, so test binaries
//! that start at the same time never see half an environment. The Python interpreter is
//! `python3` on `PATH`, or the one named by `FCGI_TEST_PYTHON`. When that fails, the
//! start panics with the commands to run by hand.
//!
//! # The server
//!
//! Each instance has its own temporary directory `DIR` holding the socket `DIR/flup.sock`
//! (mode 0666), the script `DIR/flup_app.py` and the server's output `DIR/flup.log` (see
//! [`Flup::log`]). Settings:
//!
//! - `multiplexed=True` (see [`FlupBuilder::multiplexed`]): every connection reads
//!   records on one thread and runs each request on a thread of its own, so requests on
//!   one connection run at the same time and their records interleave. flup writes
//!   `STDOUT` in records of at most 8184 bytes (its `maxwrite` of 8192 minus the header).
//! - Threads: each connection holds a thread of flup's pool for its whole life, and
//!   each multiplexed request runs on a thread of its own (not limited). flup's own
//!   defaults would be a pool of `minSpare=1`, `maxSpare=5`, `maxThreads=sys.maxsize`,
//!   advertising `FCGI_MAX_CONNS` = the open-files limit and `FCGI_MAX_REQS` = five
//!   times that. That pool grows only when it sees no idle thread at an accept, and
//!   counts a thread idle until it has picked up its connection, so connections opened
//!   together can sit queued behind busy ones until one of those closes (seen: 30 s for
//!   the 8th of 8). The kit starts all [`FlupBuilder::max_conns`] threads up front
//!   (`minSpare` = `maxSpare` = `maxThreads`, default 100) and advertises
//!   `FCGI_MAX_CONNS` = that and `FCGI_MAX_REQS` = [`FlupBuilder::max_reqs`] (default
//!   1000): comfortably more than 100 concurrent requests on one connection. flup itself
//!   does not enforce `FCGI_MAX_REQS`; clients read it with `GET_VALUES`.
//! - The Python 3 fix: flup 1.0.3 looks the `GET_VALUES` names (bytes) up in a table
//!   keyed by `str`, so it answers nothing; the kit keys the table by bytes, and
//!   `GET_VALUES` answers `FCGI_MAX_CONNS`, `FCGI_MAX_REQS` and `FCGI_MPXS_CONNS`.
//! - flup ignores `ABORT_REQUEST` except for setting a flag the application never reads:
//!   an aborted request runs to its end and still sends its records and `END_REQUEST`.
//!   An aborted request whose body stream never ended waits for it forever.
//!
//! # The routes
//!
//! The route is the last segment of the request path (`REQUEST_URI` without its query,
//! else `SCRIPT_NAME` + `PATH_INFO`), with any extension removed: `/echo`, `/echo.php` and
//! `/x/echo.py` all reach `echo`, so PHP-style params work unchanged. Query parameters come
//! from `QUERY_STRING`; a missing or malformed number counts as 0. Every response starts
//! with `Status: 200 OK` (or the status given) and the headers below, lines ending in
//! `\r\n`.
//!
//! - **`hello`**: `Content-Type: text/plain`, body `Hello, World!`.
//! - **`echo`**: reads the body (`CONTENT_LENGTH` bytes), then answers
//!   `Content-Type: application/octet-stream`, `X-Body-Sha256: <sha256, 64 lower-case hex
//!   digits>`, `X-Body-Length: <bytes>`, and the body byte for byte.
//! - **`sleep?ms=N`**: sleeps N milliseconds, then body `slept N`.
//! - **`large?bytes=N&pause_ms=M`**: `Content-Type: application/octet-stream`,
//!   `X-Body-Length: N`, then exactly N bytes of [`large_body`](crate::large_body) (line
//!   L is L in 15 lower-case hex digits and `\n`), written in 64 KiB pieces with M
//!   milliseconds between pieces (default 0). flup sends each piece as records of 8184
//!   bytes; concurrent requests on one connection take turns (Python threads), so their
//!   records interleave, and a pause makes every request take turns.
//! - **`stderr`**: writes `first message\n` to `wsgi.errors` (FastCGI `STDERR`, also
//!   copied into [`Flup::log`]), then body `one\n`, then `second message\n` to
//!   `wsgi.errors`, then body `two\n`.
//! - **`status?code=N`**: `Status: N` (with reason `Status`), body `status N`.
//! - **`server`**: `Content-Type: application/json`, body the JSON object of every param
//!   of the request (plus the few flup adds: `PATH_INFO`, `SCRIPT_NAME`, ...).
//! - anything else: `Status: 404 Not Found`, body `not found`.
//!
//! # Stopping
//!
//! The Python process reads its standard input, a pipe held by this process, on a
//! thread of its own: when the pipe closes (on [`Drop`], or when the test process exits
//! in any way, even killed), it removes `DIR` and exits at once. So the never-dropped
//! [`Flup::shared`] instance does not outlive its test binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{make_temp_dir, read_lossy, wait_timeout};

/// The flup release the kit installs.
pub const FLUP_VERSION: &str = "1.0.3";

/// The environment variable that names the virtual environment directory to use.
pub const FLUP_VENV_ENV: &str = "FCGI_TEST_FLUP_VENV";

/// The environment variable that names the Python interpreter that creates the venv.
pub const PYTHON_ENV: &str = "FCGI_TEST_PYTHON";

/// The file in a finished venv that says flup is installed.
const READY_MARK: &str = "fcgi-testkit-flup-ready";

/// How long flup gets to accept connections after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stop waits for the Python process to exit before it kills it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The server and its WSGI application; see the module documentation.
const APP: &str = r#"# Written by fcgi-testkit: flup serving the test routes.
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from urllib.parse import parse_qs

from flup.server.fcgi import WSGIServer

SOCKET, DIR = sys.argv[1], sys.argv[2]
MULTIPLEXED = sys.argv[3] == '1'
MAX_CONNS, MAX_REQS = int(sys.argv[4]), int(sys.argv[5])


def watch_stdin():
    # The test process holds the other end: its close (drop, exit, kill) stops us.
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except Exception:
        pass
    shutil.rmtree(DIR, ignore_errors=True)
    os._exit(0)


def number(query, name):
    try:
        return int(query.get(name, ['0'])[0])
    except ValueError:
        return 0


def large_chunks(total, pause_ms):
    line = 0
    sent = 0
    while sent < total:
        if sent and pause_ms > 0:
            time.sleep(pause_ms / 1000.0)
        size = min(65536, total - sent)
        lines = (size + 15) // 16
        data = ''.join('%015x\n' % i for i in range(line, line + lines)).encode()
        yield data[:size]
        line += lines
        sent += size


def route_of(environ):
    path = environ.get('REQUEST_URI', '').split('?', 1)[0]
    if not path:
        path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
    last = path.rsplit('/', 1)[-1]
    return last.split('.', 1)[0]


def app(environ, start_response):
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
        time.sleep(ms / 1000.0)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('slept %d' % ms).encode()]
    if route == 'large':
        total = max(number(query, 'bytes'), 0)
        start_response('200 OK', [
            ('Content-Type', 'application/octet-stream'),
            ('X-Body-Length', str(total)),
        ])
        return large_chunks(total, number(query, 'pause_ms'))
    if route == 'stderr':
        errors = environ['wsgi.errors']
        errors.write('first message\n')
        errors.flush()
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def body():
            yield b'one\n'
            errors.write('second message\n')
            errors.flush()
            yield b'two\n'
        return body()
    if route == 'status':
        code = number(query, 'code')
        start_response('%03d Status' % code, [('Content-Type', 'text/plain')])
        return [('status %d' % code).encode()]
    if route == 'server':
        params = {k: v for k, v in environ.items() if isinstance(v, str)}
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(params, sort_keys=True).encode()]
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'not found']


threading.Thread(target=watch_stdin, daemon=True).start()
# Every connection holds a thread of flup's pool for its life. The pool grows only when
# it sees no idle thread at an accept, and counts a thread idle until it has picked up
# its job: connections that arrive together can be queued behind busy ones. So start all
# of the threads up front.
server = WSGIServer(app, bindAddress=SOCKET, umask=0, multiplexed=MULTIPLEXED,
                    minSpare=MAX_CONNS, maxSpare=MAX_CONNS, maxThreads=MAX_CONNS)
# flup 1.0.3 on Python 3 looks GET_VALUES names (bytes) up in a table keyed by str and
# answers nothing: key it by bytes.
server.capability = {
    b'FCGI_MAX_CONNS': MAX_CONNS,
    b'FCGI_MAX_REQS': MAX_REQS,
    b'FCGI_MPXS_CONNS': 1 if MULTIPLEXED else 0,
}
print('fcgi-testkit: flup serving on %s' % SOCKET, flush=True)
server.run()
os._exit(0)
"#;

/// Settings for a private flup; made by [`Flup::builder`], consumed by
/// [`FlupBuilder::start`].
#[derive(Debug, Clone)]
pub struct FlupBuilder {
    multiplexed: bool,
    max_conns: u32,
    max_reqs: u32,
}

impl Default for FlupBuilder {
    fn default() -> Self {
        Self {
            multiplexed: true,
            max_conns: 100,
            max_reqs: 1000,
        }
    }
}

impl FlupBuilder {
    /// Whether flup multiplexes (default `true`). Without it, flup serves one request
    /// per connection at a time, answers a second `BEGIN_REQUEST` on a busy connection
    /// with `END_REQUEST(CANT_MPX_CONN)`, and advertises `FCGI_MPXS_CONNS=0`.
    pub fn multiplexed(mut self, yes: bool) -> Self {
        self.multiplexed = yes;
        self
    }

    /// Most connections served at once (flup's thread pool, all started up front; a
    /// connection beyond it is closed at once) and the advertised `FCGI_MAX_CONNS`.
    /// Default 100.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_conns(mut self, n: u32) -> Self {
        assert!(n > 0, "flup needs at least one connection");
        self.max_conns = n;
        self
    }

    /// The advertised `FCGI_MAX_REQS` (default 1000). flup does not enforce it; a client
    /// that reads it keeps at most that many requests in flight per connection.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_reqs(mut self, n: u32) -> Self {
        assert!(n > 0, "FCGI_MAX_REQS must be at least 1");
        self.max_reqs = n;
        self
    }

    /// Starts flup (creating the venv first if need be, see the module documentation)
    /// and returns once its socket accepts connections.
    ///
    /// # Panics
    ///
    /// When the venv cannot be made (the message says how to make it by hand), or flup
    /// does not accept connections within 20 seconds (the message holds its output).
    pub fn start(self) -> Flup {
        let python = venv_python(&flup_venv());
        let dir = make_temp_dir();
        let script = dir.join("flup_app.py");
        let socket = dir.join("flup.sock");
        let log_path = dir.join("flup.log");
        fs::write(&script, APP).unwrap_or_else(|e| panic!("cannot write {script:?}: {e}"));
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {log_path:?}: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open {log_path:?}: {e}"));
        let mut child = Command::new(&python)
            .arg("-u")
            .arg(&script)
            .arg(&socket)
            .arg(&dir)
            .arg(if self.multiplexed { "1" } else { "0" })
            .arg(self.max_conns.to_string())
            .arg(self.max_reqs.to_string())
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .env_remove("FCGI_FORCE_CGI")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let control = child.stdin.take();
        let mut flup = Flup {
            settings: self,
            dir,
            socket,
            child: Some(child),
            control,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = flup.child.as_mut().expect("set above");
            if let Ok(Some(status)) = child.try_wait() {
                flup.child = None;
                panic!(
                    "flup exited during start ({status}); its output:\n{}",
                    flup.log()
                );
            }
            if UnixStream::connect(&flup.socket).is_ok() {
                return flup;
            }
            if Instant::now() > deadline {
                let log = flup.log();
                flup.stop();
                panic!(
                    "flup did not accept connections on {} within {READY_TIMEOUT:?}; its output:\n{log}",
                    flup.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A private flup serving the test routes on a unix socket (see the module
/// documentation). Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct Flup {
    settings: FlupBuilder,
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    control: Option<ChildStdin>,
}

impl Flup {
    /// Settings for a private instance: `Flup::builder().max_reqs(10).start()`.
    pub fn builder() -> FlupBuilder {
        FlupBuilder::default()
    }

    /// Starts a private, multiplexing instance with the default settings.
    ///
    /// # Panics
    ///
    /// As [`FlupBuilder::start`].
    pub fn start() -> Self {
        FlupBuilder::default().start()
    }

    /// The instance shared by every test of this test binary, started on first use with
    /// the default settings (multiplexed). It is never dropped: it stops and its directory
    /// goes away when the test process exits.
    ///
    /// # Panics
    ///
    /// As [`FlupBuilder::start`], in every test that calls it.
    pub fn shared() -> &'static Flup {
        static SHARED: OnceLock<Flup> = OnceLock::new();
        SHARED.get_or_init(Flup::start)
    }

    /// The unix socket flup listens on.
    pub fn unix_socket(&self) -> &Path {
        &self.socket
    }

    /// The temporary directory of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether it multiplexes (see [`FlupBuilder::multiplexed`]).
    pub fn multiplexed(&self) -> bool {
        self.settings.multiplexed
    }

    /// The advertised `FCGI_MAX_REQS`.
    pub fn max_reqs(&self) -> u32 {
        self.settings.max_reqs
    }

    /// The advertised `FCGI_MAX_CONNS` (also flup's `maxThreads`).
    pub fn max_conns(&self) -> u32 {
        self.settings.max_conns
    }

    /// The process id of the Python process (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the server process is still running.
    pub fn is_running(&self) -> bool {
        self.child.is_some() && crate::process::alive(self.pid())
    }

    /// What the server wrote so far (its start line, tracebacks, and a copy of every
    /// request's `wsgi.errors` output). Empty when it cannot be read.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("flup.log"), 0)
    }

    /// Stops the server: closes its control pipe (it exits at once) and waits for it,
    /// killing it after 5 seconds. Does nothing when it is not running.
    pub fn stop(&mut self) {
        drop(self.control.take());
        if let Some(mut child) = self.child.take() {
            if wait_timeout(&mut child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Flup {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The virtual environment with flup: `$FCGI_TEST_FLUP_VENV`, else
/// `$TMPDIR/fcgi-testkit-flup-venv`; made on first use (`python3 -m venv`, then
/// `pip install flup==1.0.3`) and reused afterwards. Returns its directory.
///
/// # Panics
///
/// When the venv cannot be made; the message says how to make it by hand.
pub fn flup_venv() -> PathBuf {
    // One maker per process; other processes are handled by the rename below.
    static MAKING: Mutex<()> = Mutex::new(());
    let _guard = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let venv = match std::env::var_os(FLUP_VENV_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("fcgi-testkit-flup-venv"),
    };
    if venv.join(READY_MARK).is_file() {
        return venv;
    }
    let python = std::env::var_os(PYTHON_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let hint = format!(
        "make it by hand with `{python} -m venv {venv} && {venv}/bin/pip install \
         flup=={FLUP_VERSION} && touch {venv}/{READY_MARK}` (Debian: `apt-get install -y \
         python3-venv` first), or set {FLUP_VENV_ENV} to such a venv",
        python = python.display(),
        venv = venv.display(),
    );
    let parent = venv.parent().unwrap_or(Path::new("/"));
    let _ = fs::create_dir_all(parent);
    let scratch = parent.join(format!(
        ".{}.partial-{}",
        venv.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&scratch);
    let run = |command: &mut Command, what: &str| {
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}; {hint}"));
        if !output.status.success() {
            let _ = fs::remove_dir_all(&scratch);
            panic!(
                "{what} failed ({}):\n{}{}\n{hint}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    run(
        Command::new(&python).arg("-m").arg("venv").arg(&scratch),
        &format!("`{} -m venv`", python.display()),
    );
    run(
        Command::new(scratch.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("flup=={FLUP_VERSION}"))
            .env("PIP_NO_INPUT", "1"),
        &format!("`pip install flup=={FLUP_VERSION}`"),
    );
    fs::write(scratch.join(READY_MARK), FLUP_VERSION)
        .unwrap_or_else(|e| panic!("cannot write into {scratch:?}: {e}"));
    // The venv's python finds its packages relative to itself, so the finished
    // environment works from its final place (only pip's own scripts keep the old path).
    match fs::rename(&scratch, &venv) {
        Ok(()) => {}
        Err(_) if venv.join(READY_MARK).is_file() => {
            // Another process finished first: use its environment.
            let _ = fs::remove_dir_all(&scratch);
        }
        Err(_) => {
            // A broken leftover without the mark: replace it.
            let _ = fs::remove_dir_all(&venv);
            if let Err(e) = fs::rename(&scratch, &venv) {
                let _ = fs::remove_dir_all(&scratch);
                if !venv.join(READY_MARK).is_file() {
                    panic!("cannot move the new venv to {venv:?}: {e}; {hint}");
                }
            }
        }
    }
    venv
}

/// The interpreter of a venv.
fn venv_python(venv: &Path) -> PathBuf {
    let python = venv.join("bin").join("python3");
    let usable = fs::metadata(&python)
        .map(|meta| meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if usable {
        python
    } else {
        venv.join("bin").join("python")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A record with request id `id`.
    fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
        let mut out = vec![1, kind];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(content);
        out
    }

    fn pair(out: &mut Vec<u8>, name: &str, value: &str) {
        // Short names and values only: one-byte lengths.
        out.push(name.len() as u8);
        out.push(value.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }

    /// Reads whole records until `done` says stop; returns `(type, id, content)`.
    fn read_records(
        stream: &mut UnixStream,
        mut done: impl FnMut(u8, u16) -> bool,
    ) -> Vec<(u8, u16, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let mut header = [0u8; 8];
            stream.read_exact(&mut header).unwrap();
            let id = u16::from_be_bytes([header[2], header[3]]);
            let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let mut content = vec![0; len + usize::from(header[6])];
            stream.read_exact(&mut content).unwrap();
            content.truncate(len);
            let stop = done(header[1], id);
            out.push((header[1], id, content));
            if stop {
                return out;
            }
        }
    }

    fn begin(out: &mut Vec<u8>, id: u16, route: &str) {
        out.extend(record(1, id, &[0, 1, 1, 0, 0, 0, 0, 0]));
        let mut params = Vec::new();
        pair(&mut params, "REQUEST_METHOD", "GET");
        pair(&mut params, "REQUEST_URI", route);
        pair(&mut params, "SERVER_NAME", "localhost");
        pair(&mut params, "SERVER_PORT", "80");
        pair(&mut params, "SERVER_PROTOCOL", "HTTP/1.1");
        out.extend(record(4, id, &params));
        out.extend(record(4, id, b""));
        out.extend(record(5, id, b""));
    }

    #[test]
    fn get_values_says_it_multiplexes_and_requests_interleave() {
        let flup = Flup::start();
        let mut stream = UnixStream::connect(flup.unix_socket()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut names = Vec::new();
        for name in ["FCGI_MPXS_CONNS", "FCGI_MAX_REQS", "FCGI_MAX_CONNS"] {
            pair(&mut names, name, "");
        }
        stream.write_all(&record(9, 0, &names)).unwrap();
        let answer = read_records(&mut stream, |kind, _| kind == 10);
        let (kind, id, content) = &answer[0];
        assert_eq!((*kind, *id), (10, 0));
        let mut values = Vec::new();
        let mut rest = &content[..];
        while rest.len() >= 2 {
            let (n, v) = (usize::from(rest[0]), usize::from(rest[1]));
            let name = String::from_utf8_lossy(&rest[2..2 + n]).into_owned();
            let value = String::from_utf8_lossy(&rest[2 + n..2 + n + v]).into_owned();
            values.push((name, value));
            rest = &rest[2 + n + v..];
        }
        values.sort();
        let want = [
            ("FCGI_MAX_CONNS", "100"),
            ("FCGI_MAX_REQS", "1000"),
            ("FCGI_MPXS_CONNS", "1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(values, want);

        // On the same connection: a slow request (id 1), then a fast one (id 2). The
        // fast one ends first.
        let mut wire = Vec::new();
        begin(&mut wire, 1, "/sleep?ms=500");
        begin(&mut wire, 2, "/hello");
        stream.write_all(&wire).unwrap();
        let mut ended = Vec::new();
        let records = read_records(&mut stream, |kind, id| {
            if kind == 3 {
                ended.push(id);
            }
            ended.len() == 2
        });
        assert_eq!(ended, [2, 1], "{records:?}");
        let stdout = |want: u16| -> Vec<u8> {
            records
                .iter()
                .filter(|(kind, id, _)| *kind == 6 && *id == want)
                .flat_map(|(_, _, c)| c.clone())
                .collect()
        };
        assert!(stdout(2).ends_with(b"\r\n\r\nHello, World!"));
        assert!(stdout(1).ends_with(b"\r\n\r\nslept 500"));
    }

    #[test]
    fn dropped_instance_stops_and_cleans_up() {
        let flup = Flup::builder().multiplexed(false).start();
        let dir = flup.dir().to_path_buf();
        let pid = flup.pid();
        assert!(flup.is_running());
        drop(flup);
        assert!(!crate::process::alive(pid));
        assert!(!dir.exists());
    }

    #[test]
    fn large_route_matches_the_kit_generator() {
        let flup = Flup::shared();
        let mut stream = UnixStream::connect(flup.unix_socket()).unwrap();
        let mut wire = Vec::new();
        begin(&mut wire, 7, "/large?bytes=200000");
        stream.write_all(&wire).unwrap();
        let records = read_records(&mut stream, |kind, _| kind == 3);
        let stdout: Vec<u8> = records
            .iter()
            .filter(|(kind, _, _)| *kind == 6)
            .flat_map(|(_, _, c)| c.clone())
            .collect();
        let split = stdout.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&stdout[..split]);
        assert!(head.contains("X-Body-Length: 200000"), "{head}");
        assert_eq!(stdout[split + 4..], crate::large_body(200_000)[..]);
        assert!(records.iter().all(|(_, id, _)| *id == 7));
    }
}
