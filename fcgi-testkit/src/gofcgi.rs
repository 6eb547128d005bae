//! A private server on Go's `net/http/fcgi` (Go's standard library, Debian `golang-go`,
//! Go 1.19): a fourth server lineage, and a multiplexing one.
//!
//! ```no_run
//! use fcgi_testkit::GoFcgi;
//!
//! let server = GoFcgi::shared(); // one per test binary, started on first use
//! let socket = server.unix_socket();
//! # let _ = socket;
//! ```
//!
//! # The program
//!
//! The kit builds a small Go program (the file `gofcgi_server.go` of this crate) with
//! `go build` the first time it is needed and keeps the binary in the build cache (see
//! [`build_dir`](crate::native::build_dir)); Go's own cache (`GOCACHE`) and `GOPATH`
//! live there too. The build is offline (`GOPROXY=off`, `CGO_ENABLED=0`, `GOENV=off`;
//! the program uses the standard library only); a first build takes about ten seconds,
//! later ones none. `FCGI_TEST_GO` names the `go` command (default: `go` on `PATH`).
//! Without Go the build fails with the way to install it: `apt-get install -y
//! golang-go`.
//!
//! It runs `fcgi.Serve` on a unix listener with an `http.Handler`: every connection is
//! read by a goroutine of its own, and every request runs in a goroutine of its own once
//! its `STDIN` has begun, so requests on one connection run at the same time.
//!
//! # The routes
//!
//! As [`Libfcgi`](crate::Libfcgi)'s, the route being the last segment of the request
//! path without its extension, through Go's `http.ResponseWriter`, which writes
//! `Status: <code> <reason>` first and then every header sorted by name, with a `Date`
//! header Go adds to every response:
//!
//! - **`hello`**: 200, `Content-Type: text/plain`, body `Hello, World!`.
//! - **`echo`**: reads the body, then 200, `Content-Type: application/octet-stream`,
//!   `X-Body-Length: <bytes>`, and the bytes.
//! - **`cookies`**: 404 `Not Found`, `Content-Type: text/plain`, then `Set-Cookie: a=1`,
//!   `b=2`, `c=3` in this order; body `not here`.
//! - **`stderr`**: `Content-Type: text/plain`, body `one\n` (flushed) and `two\n`. An
//!   `http.Handler` has no FastCGI `STDERR`: the route prints `first message` and
//!   `second message` to the process's standard error (see [`GoFcgi::log`]).
//! - **`large?bytes=N`**: `Content-Type: application/octet-stream`, `X-Body-Length: N`,
//!   then N bytes of [`large_body`](crate::large_body) in 64 KiB writes.
//! - **`sleep?ms=N`**: sleeps N ms, then `Content-Type: text/plain`, body `slept N`.
//! - **`status?code=N`**: status N, `Content-Type: text/plain`, body `status N`.
//! - anything else: 404, `Content-Type: text/plain`, body `not found`.
//!
//! # What Go's net/http/fcgi writes (1.19, seen on the wire; the tests below check it)
//!
//! - **Records**: content padded to a multiple of 8 bytes with zeros; `STDOUT` records
//!   carry at most 65535 bytes. The head is written (and flushed) apart from the body.
//! - **End of a request**: an empty `STDOUT`, then `END_REQUEST` (app status 0,
//!   `REQUEST_COMPLETE`). No `STDERR` at all, except when Go cannot make an
//!   `http.Request` of the params (no `REQUEST_METHOD`, a bad `CONTENT_LENGTH`, ...):
//!   then one `STDERR` record with the reason (`cgi: no REQUEST_METHOD in
//!   environment`), never ended by an empty `STDERR`, before a `500` head.
//! - **Keep-alive**: honoured; without `FCGI_KEEP_CONN` Go closes the connection after
//!   `END_REQUEST`.
//! - **`GET_VALUES`**: whatever is asked, one record `FCGI_MPXS_CONNS=1`, then an
//!   empty `GET_VALUES_RESULT` (Go ends every record stream it writes). No
//!   `FCGI_MAX_CONNS`, no `FCGI_MAX_REQS`. A management record of another type gets no
//!   answer at all (no `UNKNOWN_TYPE`): Go ignores records for request ids it does not
//!   know, id 0 included.
//! - **`ABORT_REQUEST`**: for a request whose `STDIN` has not ended, Go writes
//!   `END_REQUEST` at once, and the handler still runs: its `STDOUT` and a second
//!   `END_REQUEST` follow. For a request whose `STDIN` has ended, Go ignores it.
//!
//! # Stopping
//!
//! As for every server built from source (see [`crate::native`]): the program
//! exits, removing its directory, when its standard input (a pipe held by this process)
//! closes; a stop waits for it and kills it by its pid after 5 seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::native::{self, Server};

/// The Go source of the server.
pub const SOURCE: &str = include_str!("gofcgi_server.go");

/// The environment variable that names the `go` command (default `go`).
pub const GO_ENV: &str = "FCGI_TEST_GO";

/// The compiled server, built on first use (see the module documentation).
///
/// # Panics
///
/// When it cannot be built; the message says what to install.
pub fn go_fcgi_server() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_server).clone()
}

/// The environment of every `go` command the kit runs: offline, no cgo, no user
/// configuration, caches in the build directory.
fn go_command(go: &str) -> Command {
    let cache = native::build_dir();
    let mut command = Command::new(go);
    command
        .env("GOCACHE", cache.join("go-cache"))
        .env("GOPATH", cache.join("go-path"))
        .env("GOPROXY", "off")
        .env("GOENV", "off")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "")
        .env("CGO_ENABLED", "0");
    command
}

fn build_server() -> PathBuf {
    const INSTALL: &str = "Debian: `apt-get install -y golang-go`";
    let go = std::env::var(GO_ENV)
        .ok()
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "go".to_string());
    let version = native::run(go_command(&go).arg("version"), &format!("`{go} version`"))
        .unwrap_or_else(|e| panic!("{e}; install Go ({INSTALL}) or set {GO_ENV}"));
    let inputs = [SOURCE.as_bytes(), go.as_bytes(), version.as_bytes()];
    native::cached_binary("gofcgi_server", &inputs, |scratch| {
        let source = scratch.join("gofcgi_server.go");
        std::fs::write(&source, SOURCE).map_err(|e| format!("cannot write {source:?}: {e}"))?;
        let binary = scratch.join("gofcgi_server");
        let mut build = go_command(&go);
        build
            .current_dir(scratch)
            .args(["build", "-o"])
            .arg(&binary)
            .arg(&source);
        native::run(&mut build, &format!("`{go} build` on the Go server"))
            .map_err(|e| format!("{e}\n({INSTALL})"))?;
        Ok(binary)
    })
}

/// A private Go `net/http/fcgi` server serving the test routes on a unix socket (see the
/// module documentation). Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct GoFcgi {
    server: Server,
}

impl GoFcgi {
    /// Builds the server if need be, starts it and returns once its socket accepts
    /// connections.
    ///
    /// # Panics
    ///
    /// When it cannot be built, or does not start (the message holds its output).
    pub fn start() -> Self {
        let binary = go_fcgi_server();
        GoFcgi {
            server: Server::start("gofcgi", &binary, &[]),
        }
    }

    /// The instance shared by every test of this test binary, started on first use. It
    /// is never dropped: it stops and its directory goes away when the test process
    /// exits.
    ///
    /// # Panics
    ///
    /// As [`GoFcgi::start`], in every test that calls it.
    pub fn shared() -> &'static GoFcgi {
        static SHARED: OnceLock<GoFcgi> = OnceLock::new();
        SHARED.get_or_init(GoFcgi::start)
    }

    /// The unix socket it listens on.
    pub fn unix_socket(&self) -> &Path {
        self.server.unix_socket()
    }

    /// The temporary directory of this instance.
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }

    /// The process id of the server (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Whether the server is still running.
    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// What the server printed: its start line, and what the `stderr` route writes.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Stops the server (see the module documentation). Does nothing when it is not
    /// running.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, read_record, read_until, record, record_padded, Rec};
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn connect(server: &GoFcgi) -> UnixStream {
        let stream = UnixStream::connect(server.unix_socket()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a timeout");
        stream
    }

    const COMPLETE: [u8; 8] = [0; 8];
    const MPXS_CONNS_1: &[u8] = b"\x0f\x01FCGI_MPXS_CONNS1";

    /// `(type, id, content)` of each record, with the value of a `Date` header replaced
    /// by `DATE` (after checking its form).
    fn strip(records: &[Rec]) -> Vec<(u8, u16, Vec<u8>)> {
        records
            .iter()
            .map(|r| {
                let mut content = r.content.clone();
                if let Some(at) = content.windows(8).position(|w| w == b"\r\nDate: ") {
                    let start = at + 8;
                    let date = &content[start..start + 29];
                    assert!(date.ends_with(b" GMT") && date[3] == b',', "{date:?}");
                    content.splice(start..start + 29, b"DATE".iter().copied());
                }
                (r.kind, r.id, content)
            })
            .collect()
    }

    fn rec(kind: u8, id: u16, content: &[u8]) -> (u8, u16, Vec<u8>) {
        (kind, id, content.to_vec())
    }

    #[test]
    fn get_values_is_mpxs_conns_then_an_empty_record_whatever_is_asked() {
        let server = GoFcgi::shared();
        let mut stream = connect(server);
        for names in [
            &["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"][..],
            &["FCGI_MAX_REQS"],
            &[],
        ] {
            stream.write_all(&wire::get_values(names, 0)).unwrap();
            let first = read_record(&mut stream).expect("the answer");
            assert_eq!((first.kind, first.id), (10, 0), "{names:?}");
            assert_eq!(first.content, MPXS_CONNS_1, "{names:?}");
            assert_eq!(first.padding, [0; 6]);
            let second = read_record(&mut stream).expect("the empty record");
            assert_eq!((second.kind, second.id), (10, 0), "{names:?}");
            assert!(second.content.is_empty() && second.padding.is_empty());
        }
        // Another management type: no answer at all; the connection goes on.
        stream.write_all(&record_padded(42, 0, b"", 0)).unwrap();
        assert!(wire::silent_for(&mut stream, Duration::from_millis(300)));
        stream.write_all(&wire::request(1, "/hello", true)).unwrap();
        let records = read_until(&mut stream, 3);
        assert_eq!(
            strip(&records),
            [
                rec(
                    6,
                    1,
                    b"Status: 200 OK\r\nContent-Type: text/plain\r\nDate: DATE\r\n\r\n"
                ),
                rec(6, 1, b"Hello, World!"),
                rec(6, 1, b""),
                rec(3, 1, &COMPLETE),
            ]
        );
    }

    #[test]
    fn stream_ends_keep_alive_and_the_only_stderr() {
        let server = GoFcgi::shared();
        let mut stream = connect(server);
        stream
            .write_all(&wire::request(1, "/cookies", true))
            .unwrap();
        let records = read_until(&mut stream, 3);
        assert_eq!(
            strip(&records),
            [
                rec(
                    6,
                    1,
                    b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nDate: DATE\r\n\
                      Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\n\r\n"
                ),
                rec(6, 1, b"not here"),
                rec(6, 1, b""),
                rec(3, 1, &COMPLETE),
            ]
        );
        for r in &records {
            assert_eq!((r.content.len() + r.padding.len()) % 8, 0, "{r:?}");
            assert!(r.padding.iter().all(|&b| b == 0), "{r:?}");
        }
        // Kept. No REQUEST_METHOD: STDERR without its empty record, then a 500; and
        // without FCGI_KEEP_CONN, Go closes after END_REQUEST.
        let mut params = Vec::new();
        wire::pair(&mut params, "REQUEST_URI", "/hello");
        wire::pair(&mut params, "SERVER_PROTOCOL", "HTTP/1.1");
        let mut request = record(1, 2, &[0, 1, 0, 0, 0, 0, 0, 0]);
        request.extend(record(4, 2, &params));
        request.extend(record(4, 2, b""));
        request.extend(record(5, 2, b""));
        stream.write_all(&request).unwrap();
        let records = read_until(&mut stream, 3);
        assert_eq!(
            strip(&records),
            [
                rec(7, 2, b"cgi: no REQUEST_METHOD in environment"),
                rec(
                    6,
                    2,
                    b"Status: 500 Internal Server Error\r\n\
                      Content-Type: text/plain; charset=utf-8\r\nDate: DATE\r\n\r\n"
                ),
                rec(6, 2, b""),
                rec(3, 2, &COMPLETE),
            ]
        );
        assert_eq!(read_record(&mut stream), None, "closed after END_REQUEST");
    }

    #[test]
    fn abort_before_the_end_of_stdin_ends_the_request_twice() {
        let server = GoFcgi::shared();
        let mut stream = connect(server);
        let mut params = Vec::new();
        wire::pair(&mut params, "REQUEST_METHOD", "POST");
        wire::pair(&mut params, "REQUEST_URI", "/echo");
        wire::pair(&mut params, "SERVER_PROTOCOL", "HTTP/1.1");
        wire::pair(&mut params, "CONTENT_LENGTH", "10");
        let mut request = record(1, 1, &[0, 1, 1, 0, 0, 0, 0, 0]);
        request.extend(record(4, 1, &params));
        request.extend(record(4, 1, b""));
        // Three of the ten bytes, then ABORT_REQUEST while the handler waits for more.
        request.extend(record(5, 1, b"abc"));
        request.extend(record(2, 1, b""));
        stream.write_all(&request).unwrap();
        let mut records = vec![read_record(&mut stream).expect("a record")];
        records.extend(read_until(&mut stream, 3));
        let stripped = strip(&records);
        assert_eq!(stripped[0], rec(3, 1, &COMPLETE), "END_REQUEST first");
        assert_eq!(
            stripped[stripped.len() - 2..],
            [rec(6, 1, b""), rec(3, 1, &COMPLETE)]
        );
        let stdout: Vec<u8> = records[1..]
            .iter()
            .filter(|r| r.kind == 6)
            .flat_map(|r| r.content.clone())
            .collect();
        let text = String::from_utf8_lossy(&stdout);
        assert!(text.starts_with("Status: 400 Bad Request\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\nfcgi: request aborted by web server\n"),
            "{text}"
        );
    }

    #[test]
    fn requests_on_one_connection_run_at_the_same_time() {
        let server = GoFcgi::shared();
        let mut stream = connect(server);
        let mut wire_bytes = wire::request(1, "/sleep?ms=1000", true);
        wire_bytes.extend(wire::request(2, "/hello", true));
        stream.write_all(&wire_bytes).unwrap();
        let mut ended = Vec::new();
        while ended.len() < 2 {
            let r = read_record(&mut stream).expect("a record");
            if r.kind == 3 {
                ended.push(r.id);
            }
        }
        assert_eq!(ended, [2, 1], "the fast request ends first");
    }

    #[test]
    fn large_route_matches_the_kit_generator() {
        let server = GoFcgi::shared();
        let mut stream = connect(server);
        stream
            .write_all(&wire::request(7, "/large?bytes=200000", false))
            .unwrap();
        let records = read_until(&mut stream, 3);
        let stdout: Vec<u8> = records
            .iter()
            .filter(|r| r.kind == 6)
            .flat_map(|r| r.content.clone())
            .collect();
        let split = stdout.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&stdout[..split]);
        assert!(head.contains("\r\nX-Body-Length: 200000\r\n"), "{head}");
        assert!(stdout[split..] == crate::large_body(200_000)[..]);
        let sizes: Vec<usize> = records.iter().map(|r| r.content.len()).collect();
        assert_eq!(sizes.iter().max(), Some(&65535));
        assert!(records.iter().all(|r| r.id == 7));
    }

    #[test]
    fn dropped_instance_stops_and_cleans_up() {
        let server = GoFcgi::start();
        let dir = server.dir().to_path_buf();
        let pid = server.pid();
        assert!(server.is_running());
        let log = server.server.log_with("serving on");
        assert!(log.is_some(), "no start line: {}", server.log());
        drop(server);
        assert!(!crate::process::alive(pid));
        assert!(!dir.exists());
    }
}
