//! Runs a real, private php-fpm for the integration tests and benchmarks of the fcgi
//! crates, with the PHP scripts they need.
//!
//! ```no_run
//! use fcgi_testkit::PhpFpm;
//!
//! // One php-fpm per test binary, started on first use and shared by every test in it.
//! let fpm = PhpFpm::shared();
//! let socket = fpm.unix_socket(); // the [unix] pool
//! let addr = fpm.tcp_addr(); // the [tcp] pool, on 127.0.0.1
//! let script = fpm.script("hello.php"); // send it as SCRIPT_FILENAME
//!
//! // A private instance for a test that changes the server (restarts, recycling, ...).
//! let mut own = PhpFpm::builder().max_children(2).max_requests(1).start();
//! own.restart();
//! drop(own); // SIGTERM to the master, waits for it, removes the temporary directory
//! ```
//!
//! It depends on std, on fcgi-proto only to build the hostile server's records, and on
//! socket2 only for [`FullBacklog`], a unix socket whose listen queue is full.
//!
//! It also runs a private [`Flup`] (Python's flup), a server that multiplexes requests on
//! one connection, with routes that mirror the PHP scripts: see the [`flup`] module.
//! Two more server lineages serve the same routes, built from source at test time (see
//! [`native`]): [`Libfcgi`], a responder on the reference C library (see the [`libfcgi`]
//! module), and [`GoFcgi`], a server on Go's `net/http/fcgi`, which multiplexes (see the
//! [`gofcgi`] module). [`Uwsgi`] runs uWSGI in FastCGI mode (Debian's package, with a
//! WSGI application of the same routes): a server that never answers `GET_VALUES` and
//! closes every connection after `END_REQUEST` (see the [`uwsgi`] module).
//!
//! # Finding php-fpm
//!
//! [`find_php_fpm`] takes, in this order: the path in the environment variable
//! `FCGI_TEST_PHP_FPM`; `php-fpm` on `PATH`, else the highest `php-fpmX.Y` on `PATH`;
//! else the highest `/usr/sbin/php-fpm*`. Starting panics when none is found, with the
//! way to install it: `apt-get update && apt-get install -y php-fpm` (Debian 12 installs
//! `/usr/sbin/php-fpm8.2` and starts no service).
//!
//! # The server
//!
//! Each instance lives in its own temporary directory `DIR`: the configuration
//! `DIR/php-fpm.conf`, the docroot `DIR/www`, the unix socket `DIR/php.sock`, php-fpm's
//! own log `DIR/php-fpm.log` (see [`PhpFpm::log`]) and its early standard error
//! `DIR/stderr.log`. php-fpm runs in the foreground as `php-fpm -F -n -y DIR/php-fpm.conf`
//! (`-n`: no system `php.ini`, so only the settings below apply), plus `-R` when the
//! tests run as root. Two pools serve the same docroot:
//!
//! - `[unix]` listens on `DIR/php.sock` (mode 0666);
//! - `[tcp]` listens on `127.0.0.1:PORT`, a port that was free at start
//!   (`listen.allowed_clients = 127.0.0.1`).
//!
//! Both have `pm = static` with `max_children` workers each (default
//! [`DEFAULT_MAX_CHILDREN`]; [`PhpFpm::worker_pids`] lists both pools' workers),
//! optional `pm.max_requests`, `request_terminate_timeout` and `request_slowlog_timeout`, `clear_env = yes`,
//! `catch_workers_output = yes`, `ping.path = /ping` (a request with
//! `SCRIPT_NAME=/ping` and any `SCRIPT_FILENAME` answers `pong`), `pm.status_path =
//! /status` (likewise), and these PHP settings, as `php_admin_value` (which a request's
//! `PHP_VALUE` cannot override):
//!
//! | setting | value | why |
//! |---|---|---|
//! | `output_buffering` | `0` | `echo` and `flush()` reach the socket in the order the script runs |
//! | `display_errors` | off | PHP warnings never land in a response body |
//! | `log_errors` | on | ... they go to FastCGI STDERR instead (PHP 8 defaults to off) |
//! | `error_reporting` | `E_ALL` | every warning and notice is reported |
//! | `error_log` | unset | `error_log()` and PHP errors go to FastCGI STDERR |
//! | `memory_limit` | `256M` | room for tests, scripts stream anyway |
//! | `max_execution_time` | `0` | no limit: long streams and sleeps run to the end |
//! | `post_max_size` | `0` | no limit: a large POST body reaches `php://input` without a warning |
//!
//! Everything else keeps PHP's built-in defaults, for example `expose_php` (every
//! response has `X-Powered-By: PHP/8.x.y`), `default_charset = UTF-8` and
//! `enable_post_data_reading = 1`.
//!
//! ## Where PHP's errors and `error_log()` go
//!
//! With no `error_log` setting, PHP hands every log line to the SAPI; php-fpm writes it
//! (its `fastcgi.logging` is on by default) as a FastCGI STDERR record of the current
//! request, `PHP message: ` followed by the text, without a newline. Further messages of
//! the same request are prefixed `; ` (the second `error_log()` of `stderr.php` arrives
//! as `; PHP message: second message`). A PHP warning arrives like
//! `PHP message: PHP Warning:  Undefined variable $x in /path/x.php on line 2`. The
//! worker also prints each message on its standard error, which
//! `catch_workers_output` copies into [`PhpFpm::log`]
//! (`child 123 said into stderr: "NOTICE: PHP message: first message"`).
//!
//! ## Reading the request body
//!
//! Because `enable_post_data_reading` is on, PHP reads the whole body of a **POST**
//! (whatever its `CONTENT_TYPE`, even none) before the script starts. Other methods
//! (PUT, PATCH, ...) are read only when the script reads `php://input`, so output can
//! come back while the client still sends the body: use PUT (or the param
//! `PHP_VALUE=enable_post_data_reading=0`) for a full-duplex test with
//! `flush_then_read.php`. `php://input` can be read more than once: PHP keeps the body in
//! a `php://temp` stream that spills to a file.
//!
//! # The scripts
//!
//! Every instance writes these into its docroot. The responses are the exact bytes of
//! FastCGI STDOUT (header lines end in `\r\n`; `X-Powered-By: PHP/8.x.y` always comes
//! first, left out below). Query parameters come from `QUERY_STRING`; a missing or
//! malformed number counts as 0.
//!
//! - **`hello.php`**: `Content-type: text/html; charset=UTF-8` (php-fpm's own
//!   default header, lower-case `t`), body `Hello, World!` (13 bytes, no newline).
//! - **`echo.php`**: reads `php://input` twice in 64 KiB chunks: first to hash it, then
//!   to echo it. Headers `Content-Type: application/octet-stream`,
//!   `X-Body-Sha256: <64 lower-case hex digits, sha256 of the body>`,
//!   `X-Body-Length: <bytes>`; the body is the request body, byte for byte (empty
//!   body: length 0 and the sha256 of nothing, `e3b0c442...b855`). Not for a
//!   `multipart/form-data` POST: PHP parses that into `$_FILES` and leaves
//!   `php://input` empty.
//! - **`cookies.php`**: `Status: 404 Not Found`, then `Set-Cookie: a=1`,
//!   `Set-Cookie: b=2`, `Set-Cookie: c=3` in this order, then the default
//!   `Content-type`; body `not here`.
//! - **`stderr.php`**: STDOUT `one\n` (after the default headers), STDERR
//!   `PHP message: first message`, STDOUT `two\n`, STDERR
//!   `; PHP message: second message`, STDOUT `three\n`, as separate records in this
//!   order. The body is `one\ntwo\nthree\n`.
//! - **`large.php?bytes=N`**: `Content-Type: application/octet-stream`,
//!   `X-Body-Length: N`, then exactly N bytes of [`large_body`] (16-byte lines, each its
//!   own line number in 15 hex digits and `\n`), written and flushed in 64 KiB chunks;
//!   PHP's memory stays flat. 256 MiB take about a second.
//! - **`bigheaders.php?count=N&size=M`**: headers `X-Big-0` to `X-Big-<N-1>`, each with
//!   a value of M bytes of `x`, then the default `Content-type`; body `ok`. With
//!   `count=40&size=2000` the header block is about 80 KiB, more than one record.
//! - **`sleep.php?ms=N`**: sleeps N milliseconds, then body `slept N` (default headers).
//! - **`server.php`**: `Content-Type: application/json`, body
//!   `json_encode($_SERVER, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE)`:
//!   every param the request sent, plus PHP's own (`PHP_SELF`, `REQUEST_TIME`,
//!   `REQUEST_TIME_FLOAT`, `argv`, `argc`; `clear_env` keeps the environment out).
//!   Bytes that are not UTF-8 become U+FFFD.
//! - **`redirect.php?to=URL`**: `Location: URL` and the default `Content-type`, **no**
//!   `Status` header (the script stops PHP from adding `Status: 302 Found`), empty body.
//!   A client decides: absolute URL = 302, local path = local redirect.
//! - **`exit_mid.php`**: body `partial`, flushed, then `exit`: a normal end
//!   (END_REQUEST with app status 0).
//! - **`pid.php`**: body the decimal process id of the worker that ran it: requests on
//!   one kept connection all give the same.
//! - **`flush_then_read.php`**: `Content-type: text/plain;charset=UTF-8` (PHP appends
//!   the charset), body `started\n` flushed **before** reading the request body, then
//!   `<sha256 hex of the body> <length>\n` once it has read all of it.
//! - **`status.php?code=N`**: header `Status: N` (N verbatim, so
//!   `code=418%20Teapot` gives `Status: 418 Teapot`) between `X-Powered-By` and the
//!   default `Content-type`; body `status N`.
//!
//! A missing script answers php-fpm's own `Status: 404 Not Found` with body
//! `File not found.\n` and STDERR `Primary script unknown`. Tests add their own scripts
//! with [`PhpFpm::write_script`].
//!
//! # Stopping
//!
//! php-fpm is started through a small `sh` wrapper whose standard input is a pipe held
//! by this process. When that pipe closes, on [`Drop`] or when the test process exits
//! in any way (even killed), the wrapper sends SIGTERM to the master and waits for it;
//! after an exit without [`Drop`] it also removes `DIR`. So the never-dropped
//! [`PhpFpm::shared`] instance does not outlive its test binary, and neither does a
//! private one when the test process is killed. A start takes about 25 ms, a stop about
//! 6 ms: php-fpm exits within milliseconds of SIGTERM. (Waiting for a php-fpm that is
//! not your child, say with `kill -0`, can seem to take 1-2 s on machines whose PID 1
//! reaps orphans slowly: that is a zombie waiting, not php-fpm.)

mod backlog;
mod body;
pub mod conformance;
pub mod flup;
pub mod gofcgi;
pub mod hostile;
pub mod libfcgi;
pub mod native;
pub mod nginx;
mod process;
mod scripts;
pub mod silent;
pub mod slim;
pub mod uwsgi;
#[cfg(test)]
mod wire;

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use backlog::{FullBacklog, RELEASE_AFTER};
pub use body::{fill_large_body, hex_sha256, large_body, open_reader, random_bytes, OpenWriter};
pub use flup::{flup_venv, Flup, FlupBuilder};
pub use gofcgi::GoFcgi;
pub use libfcgi::Libfcgi;
pub use nginx::Nginx;
pub use uwsgi::Uwsgi;

/// Workers per pool when [`Builder::max_children`] is not called.
pub const DEFAULT_MAX_CHILDREN: u32 = 4;

/// The environment variable that names the php-fpm binary to use.
pub const PHP_FPM_ENV: &str = "FCGI_TEST_PHP_FPM";

/// How php-fpm is installed, for the message when it is missing.
const INSTALL_HINT: &str = "apt-get update && apt-get install -y php-fpm";

/// How long php-fpm gets to accept connections on both listeners after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stop waits for php-fpm to exit after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts of a fresh instance tried before giving up when the TCP port was taken.
const PORT_ATTEMPTS: u32 = 8;

/// How long [`PhpFpm::restart`] keeps trying to get the same TCP port back.
const RESTART_PORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `"$@"` (php-fpm) in the background and waits for it. A watcher reads the
/// wrapper's standard input: a line `keep` or the end of input (this process closed the
/// pipe or died) makes it SIGTERM php-fpm; at end of input it also marks `$dir` for
/// removal. The wrapper exits with php-fpm's status as soon as php-fpm exits, whoever
/// stopped it.
pub(crate) const WRAPPER: &str = r#"dir=$1
shift
exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
( read cmd <&3; [ "$cmd" = keep ] || : > "$dir/.cleanup"; kill -TERM "$pid" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
if [ -e "$dir/.cleanup" ]; then rm -rf "$dir"; fi
exit "$status"
"#;

/// Settings for a private php-fpm; made by [`PhpFpm::builder`], consumed by
/// [`Builder::start`].
#[derive(Debug, Clone)]
pub struct Builder {
    max_children: u32,
    max_requests: Option<u32>,
    request_terminate_timeout: Option<u64>,
    request_slowlog_timeout: Option<u64>,
    php_admin_values: Vec<(String, String)>,
    binary: Option<PathBuf>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            max_children: DEFAULT_MAX_CHILDREN,
            max_requests: None,
            request_terminate_timeout: None,
            request_slowlog_timeout: None,
            php_admin_values: Vec::new(),
            binary: None,
        }
    }
}

impl Builder {
    /// Workers of each pool (`pm.max_children`; `pm = static`). Default
    /// [`DEFAULT_MAX_CHILDREN`].
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_children(mut self, n: u32) -> Self {
        assert!(n > 0, "php-fpm needs at least one child");
        self.max_children = n;
        self
    }

    /// Requests a worker serves before php-fpm replaces it (`pm.max_requests`): with 1,
    /// every request gets a fresh worker and a kept connection dies after each request.
    /// Default: never.
    pub fn max_requests(mut self, n: u32) -> Self {
        self.max_requests = Some(n);
        self
    }

    /// Kills a worker whose request runs longer than `secs` seconds
    /// (`request_terminate_timeout`); the client sees the connection end without
    /// END_REQUEST. Default: never.
    pub fn request_terminate_timeout(mut self, secs: u64) -> Self {
        self.request_terminate_timeout = Some(secs);
        self
    }

    /// Counts a request that runs longer than `secs` seconds as slow
    /// (`request_slowlog_timeout`, with `slowlog = DIR/slow.log`): the status page's
    /// `slow requests`. Default: never.
    pub fn request_slowlog_timeout(mut self, secs: u64) -> Self {
        self.request_slowlog_timeout = Some(secs);
        self
    }

    /// Sets `php_admin_value[name] = value` in both pools, in place of the kit's own
    /// value of that setting if it has one (for flags, write `0` or `1`).
    pub fn php_admin_value(mut self, name: &str, value: &str) -> Self {
        self.php_admin_values
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// Uses this php-fpm binary instead of [`find_php_fpm`]'s.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts php-fpm and returns once it has logged `ready to handle connections`, every
    /// worker of both pools has started and both listeners accept connections.
    ///
    /// # Panics
    ///
    /// When php-fpm is not installed (the message says how to install it), or does not
    /// become ready within 10 seconds (the message holds php-fpm's log).
    pub fn start(self) -> PhpFpm {
        let binary = match &self.binary {
            Some(binary) => binary.clone(),
            None => find_php_fpm().unwrap_or_else(|| {
                panic!(
                    "php-fpm not found (looked at ${PHP_FPM_ENV}, php-fpm* on PATH and \
                     /usr/sbin/php-fpm*); install it with `{INSTALL_HINT}` or set \
                     {PHP_FPM_ENV} to its path"
                )
            }),
        };
        assert!(
            binary.is_file(),
            "php-fpm binary {} does not exist; install php-fpm with `{INSTALL_HINT}` or \
             set {PHP_FPM_ENV} to its path",
            binary.display()
        );
        let dir = make_temp_dir();
        let docroot = dir.join("www");
        fs::create_dir(&docroot)
            .and_then(|()| scripts::install(&docroot))
            .unwrap_or_else(|e| panic!("cannot write the PHP scripts into {docroot:?}: {e}"));
        let mut fpm = PhpFpm {
            unix_socket: dir.join("php.sock"),
            tcp_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            docroot,
            dir,
            binary,
            settings: self,
            running: None,
            master_pid: 0,
        };
        for _ in 0..PORT_ATTEMPTS {
            fpm.tcp_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            if fpm.launch().is_ok() {
                return fpm;
            }
        }
        panic!(
            "php-fpm could not bind a free TCP port in {PORT_ATTEMPTS} attempts; last log:\n{}",
            fpm.log()
        );
    }
}

/// The TCP port was taken between choosing it and php-fpm binding it.
struct PortTaken;

/// A started wrapper (see [`WRAPPER`]) and the pipe that keeps it waiting.
#[derive(Debug)]
struct Running {
    wrapper: Child,
    control: Option<ChildStdin>,
}

/// A private php-fpm with a `[unix]` and a `[tcp]` pool and the built-in scripts (see
/// the crate documentation). Dropping it stops php-fpm and removes its directory.
#[derive(Debug)]
pub struct PhpFpm {
    settings: Builder,
    binary: PathBuf,
    dir: PathBuf,
    docroot: PathBuf,
    unix_socket: PathBuf,
    tcp_addr: SocketAddr,
    running: Option<Running>,
    master_pid: u32,
}

impl PhpFpm {
    /// Settings for a private instance: `PhpFpm::builder().max_children(2).start()`.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts a private instance with the default settings.
    ///
    /// # Panics
    ///
    /// As [`Builder::start`].
    pub fn start() -> Self {
        Builder::default().start()
    }

    /// The instance shared by every test of this test binary, started on first use
    /// with the default settings. It is never dropped: php-fpm stops and its directory
    /// goes away when the test process exits.
    ///
    /// Each kept connection pins one of its [`DEFAULT_MAX_CHILDREN`] workers per pool;
    /// tests that hold connections open, restart or kill the server, or need other
    /// settings should start their own instance.
    ///
    /// # Panics
    ///
    /// As [`Builder::start`], in every test that calls it.
    pub fn shared() -> &'static PhpFpm {
        static SHARED: OnceLock<PhpFpm> = OnceLock::new();
        SHARED.get_or_init(PhpFpm::start)
    }

    /// The unix socket of the `[unix]` pool.
    pub fn unix_socket(&self) -> &Path {
        &self.unix_socket
    }

    /// The address of the `[tcp]` pool, `127.0.0.1:PORT`. It stays the same across
    /// [`restart`](Self::restart).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The document root, an absolute path (send it as `DOCUMENT_ROOT`).
    pub fn docroot(&self) -> &Path {
        &self.docroot
    }

    /// The absolute path of script `name` in the docroot (send it as
    /// `SCRIPT_FILENAME`). The file need not exist.
    pub fn script(&self, name: &str) -> PathBuf {
        self.docroot.join(name)
    }

    /// Params for `METHOD /SCRIPT?QUERY` (no `?` when `query` is empty) run by script
    /// `script` of this docroot: nginx's defaults with `SCRIPT_NAME`, `SCRIPT_FILENAME`
    /// and `DOCUMENT_ROOT` set.
    pub fn params(&self, method: &str, script: &str, query: &str) -> fcgi_proto::Params {
        let filename = self.script(script);
        let uri = if query.is_empty() {
            format!("/{script}")
        } else {
            format!("/{script}?{query}")
        };
        fcgi_proto::ParamsBuilder::new(method, &uri)
            .script(
                &format!("/{script}"),
                filename.to_str().expect("UTF-8 temp path"),
            )
            .document_root(self.docroot.to_str().expect("UTF-8 temp path"))
            .build()
            .expect("valid params")
    }

    /// Writes a script into the docroot (creating directories in `name`) and returns its
    /// absolute path. The file is replaced atomically, so a request running at the same
    /// time sees the old or the new script, never a piece of it.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write_script(&self, name: &str, php_source: impl AsRef<[u8]>) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.script(name);
        let parent = path.parent().unwrap_or(&self.docroot);
        let temp = parent.join(format!(
            ".write-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(parent)
            .and_then(|()| fs::write(&temp, php_source.as_ref()))
            .and_then(|()| fs::rename(&temp, &path))
            .unwrap_or_else(|e| panic!("cannot write script {path:?}: {e}"));
        path
    }

    /// The temporary directory that holds everything of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The php-fpm binary this instance runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Workers per pool (`pm.max_children`).
    pub fn max_children(&self) -> u32 {
        self.settings.max_children
    }

    /// The process id of the php-fpm master (the last one, once stopped or killed).
    pub fn master_pid(&self) -> u32 {
        self.master_pid
    }

    /// The living workers of both pools (children of the master), read from `/proc`, in
    /// ascending order; empty when php-fpm is not running. Right after a worker died
    /// (recycled by `max_requests`, killed by `request_terminate_timeout` or
    /// [`kill_workers`](Self::kill_workers)) the list can be short for a moment, until
    /// the master has forked its replacement.
    pub fn worker_pids(&self) -> Vec<u32> {
        if self.running.is_none() {
            return Vec::new();
        }
        process::children(self.master_pid)
    }

    /// Whether the master process is alive.
    pub fn is_running(&self) -> bool {
        self.running.is_some() && process::alive(self.master_pid)
    }

    /// The path of php-fpm's own log (`error_log` of `[global]`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("php-fpm.log")
    }

    /// php-fpm's own log so far: start, stop and worker events, and what workers wrote
    /// to their standard error (`catch_workers_output`). Empty when it cannot be read.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path(), 0)
    }

    /// Stops php-fpm gracefully (SIGTERM to the master, then waits for it to exit),
    /// keeping the directory, the socket path and the port for
    /// [`restart`](Self::restart). Does nothing when it is not running.
    pub fn stop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        if matches!(running.wrapper.try_wait(), Ok(None)) {
            process::signal("TERM", &[self.master_pid]);
        }
        release(&mut running);
        if wait_timeout(&mut running.wrapper, STOP_TIMEOUT).is_none() {
            // A master that ignores SIGTERM: kill it and its workers.
            let workers = process::children(self.master_pid);
            process::signal("KILL", &[self.master_pid]);
            process::signal("KILL", &workers);
            let _ = running.wrapper.kill();
            let _ = running.wrapper.wait();
        }
    }

    /// Stops php-fpm gracefully if it runs, then starts it again with the same
    /// configuration, unix socket path and TCP port; returns once both accept
    /// connections. Connections to the old server are closed.
    ///
    /// # Panics
    ///
    /// When php-fpm does not come back within about 15 seconds (the port was taken by
    /// someone else, or it failed to start).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_PORT_TIMEOUT;
        while self.launch().is_err() {
            assert!(
                Instant::now() < deadline,
                "php-fpm could not bind {} again; log:\n{}",
                self.tcp_addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the master and every worker with SIGKILL, as a crash would, and waits until
    /// they are gone: open connections are reset, new ones refused (the stale socket
    /// file stays). [`restart`](Self::restart) brings the server back.
    pub fn kill_master(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        // A stopped master cannot replace the workers killed next to it. `kill` returns
        // once the signal is sent, not once the master has stopped: a worker it forks
        // in between would be missed, and would keep the listening sockets open.
        process::signal("STOP", &[self.master_pid]);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !process::stopped(self.master_pid)
            && process::alive(self.master_pid)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let workers = process::children(self.master_pid);
        let mut all = workers.clone();
        all.push(self.master_pid);
        process::signal("KILL", &all);
        release(&mut running);
        if wait_timeout(&mut running.wrapper, STOP_TIMEOUT).is_none() {
            let _ = running.wrapper.kill();
            let _ = running.wrapper.wait();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while workers.iter().any(|&pid| process::alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills every worker of both pools with SIGKILL, as if PHP crashed; the master
    /// starts new ones at once. Requests in progress end without END_REQUEST. Returns
    /// the killed pids once each is dead (at most 5 s), so that no connection made
    /// afterwards can reach a worker still on its way out.
    pub fn kill_workers(&self) -> Vec<u32> {
        let workers = self.worker_pids();
        process::signal("KILL", &workers);
        let deadline = Instant::now() + Duration::from_secs(5);
        while workers.iter().any(|&pid| process::alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        workers
    }

    /// Writes the configuration and starts php-fpm through the wrapper, then waits until
    /// both listeners accept connections.
    fn launch(&mut self) -> Result<(), PortTaken> {
        let conf = self.dir.join("php-fpm.conf");
        fs::write(&conf, self.config()).unwrap_or_else(|e| panic!("cannot write {conf:?}: {e}"));
        let pid_file = self.dir.join("php-fpm.pid");
        let _ = fs::remove_file(&pid_file);
        let _ = fs::remove_file(self.dir.join(".cleanup"));
        let stderr_path = self.dir.join("stderr.log");
        let log_start = file_len(&self.log_path());
        let stderr_start = file_len(&stderr_path);
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap_or_else(|e| panic!("cannot open {stderr_path:?}: {e}"));
        let stdout = stderr
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open {stderr_path:?}: {e}"));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("fcgi-testkit-php-fpm")
            .arg(&self.dir)
            .arg(&self.binary)
            .args(["-F", "-n"]);
        if process::is_root() {
            command.arg("-R");
        }
        let mut wrapper = command
            .arg("-y")
            .arg(&conf)
            .env_remove("FPM_SOCKETS")
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to start php-fpm: {e}"));
        let control = wrapper.stdin.take();
        self.master_pid = 0;
        self.running = Some(Running { wrapper, control });

        let diagnostics = |fpm: &PhpFpm| {
            format!(
                "php-fpm {} with {}\n--- php-fpm.log ---\n{}\n--- stderr ---\n{}",
                fpm.binary.display(),
                conf.display(),
                read_lossy(&fpm.log_path(), log_start),
                read_lossy(&stderr_path, stderr_start)
            )
        };
        let workers = self.settings.max_children as usize;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let running = self.running.as_mut().expect("set above");
            if let Ok(Some(status)) = running.wrapper.try_wait() {
                self.running = None;
                let text = diagnostics(self);
                if text.contains("Address already in use") {
                    return Err(PortTaken);
                }
                panic!("php-fpm exited during start ({status}): {text}");
            }
            if self.master_pid == 0 {
                self.master_pid = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
            }
            if self.master_pid != 0
                && process::children(self.master_pid).len() >= 2 * workers
                && read_lossy(&self.log_path(), log_start).contains("ready to handle connections")
                && UnixStream::connect(&self.unix_socket).is_ok()
                && TcpStream::connect_timeout(&self.tcp_addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let text = diagnostics(self);
                self.stop();
                panic!(
                    "php-fpm did not accept connections on {} and {} within {READY_TIMEOUT:?}: {text}",
                    self.unix_socket.display(),
                    self.tcp_addr
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The php-fpm configuration file.
    fn config(&self) -> String {
        let dir = &self.dir;
        let mut out = String::new();
        out.push_str("; Written by fcgi-testkit.\n[global]\n");
        out.push_str(&format!("pid = {}\n", ini_path(&dir.join("php-fpm.pid"))));
        out.push_str(&format!("error_log = {}\n", ini_path(&self.log_path())));
        out.push_str("log_level = notice\ndaemonize = no\n");
        let pools = [
            (
                "unix",
                ini_path(&self.unix_socket),
                "listen.mode = 0666\n".to_owned(),
            ),
            (
                "tcp",
                self.tcp_addr.to_string(),
                "listen.allowed_clients = 127.0.0.1\n".to_owned(),
            ),
        ];
        for (name, listen, extra) in pools {
            out.push_str(&format!("\n[{name}]\n"));
            if process::is_root() {
                out.push_str("user = root\ngroup = root\n");
            }
            out.push_str(&format!("listen = {listen}\n{extra}"));
            out.push_str(&format!(
                "pm = static\npm.max_children = {}\n",
                self.settings.max_children
            ));
            if let Some(n) = self.settings.max_requests {
                out.push_str(&format!("pm.max_requests = {n}\n"));
            }
            if let Some(secs) = self.settings.request_terminate_timeout {
                out.push_str(&format!("request_terminate_timeout = {secs}s\n"));
            }
            if let Some(secs) = self.settings.request_slowlog_timeout {
                out.push_str(&format!(
                    "request_slowlog_timeout = {secs}s\nslowlog = {}\n",
                    ini_path(&dir.join("slow.log"))
                ));
            }
            out.push_str(POOL_COMMON);
            // php-fpm keeps the first of two settings of one name: leave out the
            // defaults that the builder overrides.
            let overridden =
                |key: &str| self.settings.php_admin_values.iter().any(|(k, _)| k == key);
            for (key, value) in PHP_DEFAULTS {
                if !overridden(key) {
                    out.push_str(&format!("php_admin_value[{key}] = {value}\n"));
                }
            }
            for (key, value) in &self.settings.php_admin_values {
                out.push_str(&format!("php_admin_value[{key}] = {value}\n"));
            }
        }
        out
    }
}

/// The pool settings shared by both pools.
const POOL_COMMON: &str = "clear_env = yes
catch_workers_output = yes
ping.path = /ping
pm.status_path = /status
";

/// The PHP settings of both pools (see the table in the crate documentation), written as
/// `php_admin_value` (flags as 0/1).
const PHP_DEFAULTS: &[(&str, &str)] = &[
    ("output_buffering", "0"),
    ("display_errors", "0"),
    ("display_startup_errors", "0"),
    ("log_errors", "1"),
    ("html_errors", "0"),
    ("error_reporting", "32767"),
    ("memory_limit", "256M"),
    ("max_execution_time", "0"),
    ("post_max_size", "0"),
];

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Tells the wrapper to stop php-fpm but keep the directory, and closes its pipe.
fn release(running: &mut Running) {
    if let Some(mut control) = running.control.take() {
        // Fails when the wrapper is already gone, which is fine.
        let _ = control.write_all(b"keep\n");
    }
}

/// Waits for `child` at most `timeout`; `None` when it is still running.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => return None,
        }
    }
}

/// Finds the php-fpm binary: `$FCGI_TEST_PHP_FPM`, else `php-fpm` on `PATH`, else the
/// highest versioned `php-fpmX.Y` on `PATH`, else the highest `/usr/sbin/php-fpm*`.
/// `None` when there is none.
///
/// A value of `FCGI_TEST_PHP_FPM` without a `/` is looked up on `PATH`; it is returned
/// even when it names nothing, so that starting fails with that name.
pub fn find_php_fpm() -> Option<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    if let Some(name) = std::env::var_os(PHP_FPM_ENV).filter(|name| !name.is_empty()) {
        let given = PathBuf::from(&name);
        if given.components().count() > 1 {
            return Some(given);
        }
        let found = path_dirs
            .iter()
            .map(|dir| dir.join(&name))
            .find(|path| is_executable(path));
        return Some(found.unwrap_or(given));
    }
    for dir in &path_dirs {
        let plain = dir.join("php-fpm");
        if is_executable(&plain) {
            return Some(plain);
        }
    }
    highest_php_fpm(&path_dirs).or_else(|| highest_php_fpm(&[PathBuf::from("/usr/sbin")]))
}

/// The `php-fpm[VERSION]` executable with the highest version in `dirs`.
fn highest_php_fpm(dirs: &[PathBuf]) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = php_fpm_version(&name) else {
                continue;
            };
            let path = entry.path();
            let higher = match &best {
                Some((best_version, _)) => version > *best_version,
                None => true,
            };
            if higher && is_executable(&path) {
                best = Some((version, path));
            }
        }
    }
    best.map(|(_, path)| path)
}

/// The version in a file name like `php-fpm8.2` (`[8, 2]`), `php-fpm82` or `php-fpm`
/// (empty); `None` for other names.
fn php_fpm_version(name: &OsStr) -> Option<Vec<u32>> {
    let suffix = name.to_str()?.strip_prefix("php-fpm")?;
    if !suffix.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Some(
        suffix
            .split('.')
            .filter(|part| !part.is_empty())
            .map(|part| part.parse().unwrap_or(u32::MAX))
            .collect(),
    )
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot bind a TCP port on 127.0.0.1: {e}"))
}

/// A new private directory in the temporary directory (in `/tmp` when that path is so
/// long that the unix socket path would not fit).
fn make_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    loop {
        let dir = base.join(format!(
            "fcgi-testkit-{}-{}-{nanos:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create a directory in {base:?}: {e}"),
        }
    }
}

/// A path as a quoted php-fpm configuration value.
fn ini_path(path: &Path) -> String {
    let text = path.to_str().expect("temporary paths are UTF-8");
    assert!(
        !text.contains(['"', '\n', '$']),
        "unusable path for php-fpm: {text:?}"
    );
    format!("\"{text}\"")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

/// The text of `path` from byte `from` on, with invalid UTF-8 replaced.
fn read_lossy(path: &Path, from: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut bytes));
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_names() {
        let v = |name: &str| php_fpm_version(OsStr::new(name));
        assert_eq!(v("php-fpm8.2"), Some(vec![8, 2]));
        assert_eq!(v("php-fpm"), Some(vec![]));
        assert_eq!(v("php-fpm82"), Some(vec![82]));
        assert_eq!(v("php-fpm8.2.dpkg-old"), None);
        assert_eq!(v("php8.2"), None);
        assert!(v("php-fpm8.10") > v("php-fpm8.9"));
        assert!(v("php-fpm8.2") > v("php-fpm7.4"));
    }
}
