//! A FastCGI server that never answers `GET_VALUES` and closes every connection after
//! `END_REQUEST`, as some small server libraries do: it serves requests correctly, but
//! a `GET_VALUES` gets no result and no `UNKNOWN_TYPE` (the server holds that
//! connection for a while, then drops it), and `FCGI_KEEP_CONN` is ignored. A client
//! that waits for its multiplexing probe before sending requests stalls on it.
//!
//! uWSGI's FastCGI mode is the real server that behaves so, and the tests run against it
//! (see [`crate::uwsgi`]); this scripted stand-in stays where the time the probe is held
//! must be exact and chosen by the test (uWSGI holds it for its own read timeout), and
//! where a test counts the probes it received.
//!
//! ```no_run
//! use std::time::Duration;
//! use fcgi_testkit::silent::Silent;
//!
//! let server = Silent::start(Duration::from_secs(3));
//! let socket = server.socket(); // every request answers "Hello, World!"
//! # let _ = socket;
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fcgi_proto::record::{RecordHeader, HEADER_LEN};
use fcgi_proto::{ProtocolStatus, RecordType};

use crate::hostile::{end_request_body, record};

/// The body of every response.
pub const BODY: &[u8] = b"Hello, World!";

/// The server: one thread accepts, one thread per connection serves it.
#[derive(Debug)]
pub struct Silent {
    dir: PathBuf,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    probes: AtomicU64,
    connections: AtomicU64,
}

impl Silent {
    /// Binds a unix socket in a temporary directory and starts serving. A connection
    /// that asks `GET_VALUES` is held for `hold`, then closed, unanswered.
    ///
    /// # Panics
    ///
    /// When the socket cannot be bound.
    pub fn start(hold: Duration) -> Silent {
        let dir = crate::make_temp_dir();
        let socket = dir.join("silent.sock");
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", socket.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let thread = {
            let (stop, counts) = (stop.clone(), counts.clone());
            std::thread::Builder::new()
                .name("silent-fastcgi".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        counts.connections.fetch_add(1, Ordering::SeqCst);
                        let counts = counts.clone();
                        let _ = std::thread::Builder::new()
                            .name("silent-fastcgi-conn".into())
                            .spawn(move || {
                                let _ = serve(stream, hold, &counts);
                            });
                    }
                })
                .expect("spawn the silent server thread")
        };
        Silent {
            dir,
            socket,
            stop,
            counts,
            thread: Some(thread),
        }
    }

    /// The unix socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Requests answered so far.
    pub fn requests_served(&self) -> u64 {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// `GET_VALUES` records received (and left unanswered) so far.
    pub fn probes_seen(&self) -> u64 {
        self.counts.probes.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.counts.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept; connection threads end with their connections.
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Reads one record: its header and content (padding skipped). `None` at EOF.
fn read_record(stream: &mut UnixStream) -> io::Result<Option<(RecordHeader, Vec<u8>)>> {
    let mut head = [0u8; HEADER_LEN];
    match stream.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let header = RecordHeader::decode(&head).map_err(io::Error::other)?;
    let mut content =
        vec![0u8; usize::from(header.content_length) + usize::from(header.padding_length)];
    stream.read_exact(&mut content)?;
    content.truncate(usize::from(header.content_length));
    Ok(Some((header, content)))
}

fn serve(mut stream: UnixStream, hold: Duration, counts: &Counts) -> io::Result<()> {
    let mut id = None;
    while let Some((header, content)) = read_record(&mut stream)? {
        match header.record_type {
            RecordType::GET_VALUES => {
                counts.probes.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(hold);
                return Ok(());
            }
            RecordType::BEGIN_REQUEST => id = Some(header.request_id),
            RecordType::STDIN if content.is_empty() => {
                let id = id.unwrap_or(header.request_id);
                let head = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n";
                let mut reply = record(RecordType::STDOUT, id, &[&head[..], BODY].concat());
                reply.extend(record(RecordType::STDOUT, id, b""));
                reply.extend(record(
                    RecordType::END_REQUEST,
                    id,
                    &end_request_body(0, ProtocolStatus::REQUEST_COMPLETE),
                ));
                // Counted before the answer goes out: a client that has its answer sees
                // the count.
                counts.requests.fetch_add(1, Ordering::SeqCst);
                stream.write_all(&reply)?;
                // Whatever FCGI_KEEP_CONN said.
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}
