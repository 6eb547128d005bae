//! A private responder on libfcgi, the reference FastCGI C library (fcgi2, Debian
//! `libfcgi-dev`, header `fcgiapp.h`): a third server lineage beside php-fpm and flup.
//!
//! ```no_run
//! use fcgi_testkit::Libfcgi;
//!
//! let server = Libfcgi::shared(); // one per test binary, started on first use
//! let socket = server.unix_socket();
//! # let _ = socket;
//! ```
//!
//! # The program
//!
//! The kit compiles a small C responder (the file `libfcgi_responder.c` of this crate)
//! with `cc ... -lfcgi -pthread` the first time it is needed, and keeps the binary in the
//! build cache (see [`build_dir`](crate::native::build_dir)); `FCGI_TEST_CC` names
//! another compiler. Without the library the build fails with the way to install it:
//! `apt-get install -y libfcgi-dev`.
//!
//! It opens the socket with `FCGX_OpenSocket` and runs [`THREADS`] threads, each with
//! its own `FCGX_Request` in a `FCGX_Accept_r` / `FCGX_Finish_r` loop: a thread serves one
//! connection at a time, one request at a time, and keeps the connection while the
//! client asks for it (`FCGI_KEEP_CONN`). At the end of every request it reads what is
//! left of `STDIN` (see the C source for why).
//!
//! # The routes
//!
//! As [`Flup`](crate::Flup)'s: the route is the last segment of the path of
//! `REQUEST_URI` (else `SCRIPT_NAME`) without its extension; numbers come from
//! `QUERY_STRING`. Header lines end in `\r\n`; every response starts with a `Status`
//! line. The exact STDOUT bytes:
//!
//! - **`hello`**: `Status: 200 OK`, `Content-Type: text/plain`, body `Hello, World!`.
//! - **`echo`**: reads `CONTENT_LENGTH` bytes of `STDIN`, then `Status: 200 OK`,
//!   `Content-Type: application/octet-stream`, `X-Body-Length: <bytes read>` and the
//!   bytes.
//! - **`cookies`**: `Status: 404 Not Found`, `Set-Cookie: a=1`, `Set-Cookie: b=2`,
//!   `Set-Cookie: c=3`, `Content-Type: text/plain`, body `not here`.
//! - **`stderr`**: `STDERR` `first message\n`, `STDOUT` the head (`Status: 200 OK`,
//!   `Content-Type: text/plain`) and `one\n`, `STDERR` `second message\n`, `STDOUT`
//!   `two\n`: each flushed, so on the wire in this order.
//! - **`large?bytes=N`**: `Status: 200 OK`, `Content-Type: application/octet-stream`,
//!   `X-Body-Length: N`, then N bytes of [`large_body`](crate::large_body).
//! - **`sleep?ms=N`**: sleeps N ms, then `Status: 200 OK`, `Content-Type: text/plain`,
//!   body `slept N`.
//! - **`status?code=N`**: `Status: N Status`, `Content-Type: text/plain`, body
//!   `status N`.
//! - anything else: `Status: 404 Not Found`, `Content-Type: text/plain`, body
//!   `not found`.
//!
//! # What libfcgi writes (2.4.2, seen on the wire; the tests below check it)
//!
//! - **Records**: content padded to a multiple of 8 bytes with zeros; `STDOUT` records
//!   carry at most 8184 bytes (its 8 KiB stream buffer less the header), `STDERR` records
//!   at most 504.
//! - **End of a request** (`FCGX_Finish_r`, which closes the error stream, then the
//!   output stream): an empty `STDERR` only when the request wrote to `STDERR`, then the
//!   rest of `STDOUT`, an empty `STDOUT` (always), then `END_REQUEST` (app status 0,
//!   `REQUEST_COMPLETE`).
//! - **Keep-alive**: honoured. With `FCGI_KEEP_CONN` the connection stays open for the
//!   next request; without it, libfcgi closes it after `END_REQUEST`.
//! - **`GET_VALUES`**: answered with one `GET_VALUES_RESULT` record (no empty record
//!   after it) holding, in the order asked, `FCGI_MAX_CONNS=1`, `FCGI_MAX_REQS=1` and
//!   `FCGI_MPXS_CONNS=0` for those of the three names that were asked; other names are
//!   left out. Its padding bytes are not cleared (they hold whatever was on the stack).
//!   Other management record types get `UNKNOWN_TYPE`.
//! - **But a `GET_VALUES` is answered only once more bytes arrive after it.**
//!   libfcgi reads the names through its stream reader, which, when its buffer is empty,
//!   reads the socket before it looks whether the record has ended. A `GET_VALUES`
//!   record without padding that is the last thing the client sent is therefore not
//!   answered until the client sends something else; a half-close gets no answer at all
//!   (the connection is closed). A padded `GET_VALUES` is answered at once (its padding
//!   is still in the buffer when the names end). A client that asks `GET_VALUES`
//!   alone on a connection and waits, as ours do, waits until its timeout.
//!
//! # Stopping
//!
//! As for every server built from source (see [`crate::native`]): the program
//! exits, removing its directory, when its standard input (a pipe held by this
//! process) closes; a stop waits for it and kills it by its pid after 5 seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::native::{self, Server};

/// The C source of the responder.
pub const SOURCE: &str = include_str!("libfcgi_responder.c");

/// The environment variable that names the C compiler (default `cc`).
pub const CC_ENV: &str = "FCGI_TEST_CC";

/// Threads of the responder: connections it serves at once. Scenarios run side by side
/// and every client keeps its connection, which holds a thread until it closes.
pub const THREADS: u32 = 32;

/// The compiled responder, built on first use (see the module documentation).
///
/// # Panics
///
/// When it cannot be built; the message says what to install.
pub fn libfcgi_responder() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_responder).clone()
}

fn build_responder() -> PathBuf {
    const FLAGS: [&str; 3] = ["-O2", "-Wall", "-Wextra"];
    const LIBS: [&str; 2] = ["-lfcgi", "-pthread"];
    const INSTALL: &str = "Debian: `apt-get install -y gcc libfcgi-dev`";
    let cc = std::env::var(CC_ENV)
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cc".to_string());
    let version = native::run(Command::new(&cc).arg("--version"), &format!("`{cc}`"))
        .unwrap_or_else(|e| panic!("{e}; install a C compiler ({INSTALL}) or set {CC_ENV}"));
    let command = format!("{cc} {} {}", FLAGS.join(" "), LIBS.join(" "));
    let inputs = [SOURCE.as_bytes(), command.as_bytes(), version.as_bytes()];
    native::cached_binary("libfcgi_responder", &inputs, |scratch| {
        let source = scratch.join("libfcgi_responder.c");
        std::fs::write(&source, SOURCE).map_err(|e| format!("cannot write {source:?}: {e}"))?;
        let binary = scratch.join("libfcgi_responder");
        let mut compile = Command::new(&cc);
        compile
            .args(FLAGS)
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .args(LIBS);
        native::run(&mut compile, &format!("`{cc}` on the libfcgi responder"))
            .map_err(|e| format!("{e}\n({INSTALL})"))?;
        Ok(binary)
    })
}

/// A private libfcgi responder serving the test routes on a unix socket (see the module
/// documentation). Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct Libfcgi {
    server: Server,
}

impl Libfcgi {
    /// Builds the responder if need be, starts it and returns once its socket accepts
    /// connections.
    ///
    /// # Panics
    ///
    /// When it cannot be built, or does not start (the message holds its output).
    pub fn start() -> Self {
        let binary = libfcgi_responder();
        Libfcgi {
            server: Server::start("libfcgi", &binary, &[THREADS.to_string()]),
        }
    }

    /// The instance shared by every test of this test binary, started on first use. It
    /// is never dropped: it stops and its directory goes away when the test process
    /// exits.
    ///
    /// # Panics
    ///
    /// As [`Libfcgi::start`], in every test that calls it.
    pub fn shared() -> &'static Libfcgi {
        static SHARED: OnceLock<Libfcgi> = OnceLock::new();
        SHARED.get_or_init(Libfcgi::start)
    }

    /// The unix socket it listens on.
    pub fn unix_socket(&self) -> &Path {
        self.server.unix_socket()
    }

    /// The temporary directory of this instance.
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }

    /// The process id of the responder (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Whether the responder is still running.
    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// What the responder printed (its start line, errors).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Stops the responder (see the module documentation). Does nothing when it is not
    /// running.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, read_record, read_until, record_padded, Rec};
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn connect(server: &Libfcgi) -> UnixStream {
        let stream = UnixStream::connect(server.unix_socket()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a timeout");
        stream
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in list {
            wire::pair(&mut out, n, v);
        }
        out
    }

    fn rec(kind: u8, id: u16, content: &[u8]) -> (u8, u16, Vec<u8>) {
        (kind, id, content.to_vec())
    }

    fn strip(records: &[Rec]) -> Vec<(u8, u16, Vec<u8>)> {
        records
            .iter()
            .map(|r| (r.kind, r.id, r.content.clone()))
            .collect()
    }

    const COMPLETE: [u8; 8] = [0; 8];

    #[test]
    fn get_values_is_answered_when_the_next_bytes_arrive() {
        let server = Libfcgi::shared();
        let mut stream = connect(server);
        let names = [
            "FCGI_MAX_CONNS",
            "FCGI_MAX_REQS",
            "FCGI_MPXS_CONNS",
            "OTHER",
        ];
        // 65 bytes of content: not a multiple of 8, no padding.
        stream.write_all(&wire::get_values(&names, 0)).unwrap();
        assert!(
            wire::silent_for(&mut stream, Duration::from_millis(300)),
            "libfcgi answered a lone GET_VALUES"
        );
        // The next record's bytes release the first answer (and hold back their own).
        stream
            .write_all(&wire::get_values(&["FCGI_MPXS_CONNS"], 0))
            .unwrap();
        let first = read_record(&mut stream).expect("the first answer");
        assert_eq!((first.kind, first.id), (10, 0));
        assert_eq!(
            first.content,
            pairs(&[
                ("FCGI_MAX_CONNS", "1"),
                ("FCGI_MAX_REQS", "1"),
                ("FCGI_MPXS_CONNS", "0")
            ])
        );
        assert_eq!(first.padding.len(), 5, "51 bytes padded to 56");
        assert!(wire::silent_for(&mut stream, Duration::from_millis(200)));
        // A padded GET_VALUES releases the second answer and is answered at once.
        stream
            .write_all(&wire::get_values(&["FCGI_MAX_REQS"], 3))
            .unwrap();
        let second = read_record(&mut stream).expect("the second answer");
        assert_eq!(
            (second.kind, second.id, second.content),
            (10, 0, pairs(&[("FCGI_MPXS_CONNS", "0")]))
        );
        let third = read_record(&mut stream).expect("the third answer");
        assert_eq!(
            (third.kind, third.id, third.content),
            (10, 0, pairs(&[("FCGI_MAX_REQS", "1")]))
        );
        // An unknown management type: UNKNOWN_TYPE at once.
        stream.write_all(&record_padded(42, 0, b"", 0)).unwrap();
        let unknown = read_record(&mut stream).expect("UNKNOWN_TYPE");
        assert_eq!(
            (unknown.kind, unknown.id, unknown.content),
            (11, 0, vec![42, 0, 0, 0, 0, 0, 0, 0])
        );
        // A request on the same connection still works.
        stream.write_all(&wire::request(1, "/hello", true)).unwrap();
        let records = read_until(&mut stream, 3);
        assert_eq!(
            strip(&records),
            [
                rec(
                    6,
                    1,
                    b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!"
                ),
                rec(6, 1, b""),
                rec(3, 1, &COMPLETE),
            ]
        );
    }

    #[test]
    fn get_values_then_a_half_close_gets_no_answer() {
        let server = Libfcgi::shared();
        let mut stream = connect(server);
        stream
            .write_all(&wire::get_values(&["FCGI_MPXS_CONNS"], 0))
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_record(&mut stream), None);
    }

    #[test]
    fn stream_ends_and_keep_alive() {
        let server = Libfcgi::shared();
        let mut stream = connect(server);
        stream
            .write_all(&wire::request(1, "/stderr", true))
            .unwrap();
        let records = read_until(&mut stream, 3);
        assert_eq!(
            strip(&records),
            [
                rec(7, 1, b"first message\n"),
                rec(
                    6,
                    1,
                    b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none\n"
                ),
                rec(7, 1, b"second message\n"),
                rec(7, 1, b""),
                rec(6, 1, b"two\n"),
                rec(6, 1, b""),
                rec(3, 1, &COMPLETE),
            ]
        );
        for r in &records {
            assert_eq!((r.content.len() + r.padding.len()) % 8, 0, "{r:?}");
            assert!(r.padding.iter().all(|&b| b == 0), "{r:?}");
        }
        // Kept: the next request (a new id) on the same connection, then one without
        // FCGI_KEEP_CONN, after which libfcgi closes.
        stream
            .write_all(&wire::request(2, "/cookies", false))
            .unwrap();
        let records = read_until(&mut stream, 3);
        assert_eq!(
            strip(&records),
            [
                rec(
                    6,
                    2,
                    b"Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                      Set-Cookie: c=3\r\nContent-Type: text/plain\r\n\r\nnot here"
                ),
                rec(6, 2, b""),
                rec(3, 2, &COMPLETE),
            ]
        );
        assert_eq!(read_record(&mut stream), None, "closed after END_REQUEST");
    }

    #[test]
    fn large_route_matches_the_kit_generator_in_8184_byte_records() {
        let server = Libfcgi::shared();
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
        let head = b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     X-Body-Length: 200000\r\n\r\n";
        assert_eq!(&stdout[..head.len()], head);
        assert!(stdout[head.len()..] == crate::large_body(200_000)[..]);
        let sizes: Vec<usize> = records.iter().map(|r| r.content.len()).collect();
        assert_eq!(sizes.iter().max(), Some(&8184));
        assert_eq!(
            &sizes[sizes.len() - 2..],
            [0, 8],
            "empty STDOUT, END_REQUEST"
        );
        assert!(records.iter().all(|r| r.id == 7));
    }

    #[test]
    fn dropped_instance_stops_and_cleans_up() {
        let server = Libfcgi::start();
        let dir = server.dir().to_path_buf();
        let pid = server.pid();
        assert!(server.is_running());
        let log = server.server.log_with("libfcgi serving on");
        assert!(log.is_some(), "no start line: {}", server.log());
        drop(server);
        assert!(!crate::process::alive(pid));
        assert!(!dir.exists());
    }
}
