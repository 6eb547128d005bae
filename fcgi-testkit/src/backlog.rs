//! A unix socket whose listen queue is full: a server that never answers a connect.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

/// How long the queue stays full before [`FullBacklog`] starts to accept and close what
/// waits in it, so that a client that waits for room without a bound fails its test
/// instead of hanging it.
pub const RELEASE_AFTER: Duration = Duration::from_secs(5);

/// Most connects the filling may queue (Linux queues one with a backlog of 0).
const MAX_QUEUED: usize = 64;

/// A unix socket that listens with a backlog of 0, whose queue this process filled with
/// connects of its own that nobody accepts: a further connect finds no room. A
/// non-blocking connect fails at once (`EAGAIN` on Linux); a blocking one waits for room.
///
/// After [`RELEASE_AFTER`] a thread starts to accept every queued connection and close
/// it at once, so that a client stuck in a blocking connect gets a closed connection
/// (and its test a wrong result) instead of waiting forever. Dropping it stops that
/// thread and removes its directory.
///
/// ```no_run
/// use fcgi_testkit::FullBacklog;
///
/// let full = FullBacklog::start();
/// let socket = full.socket(); // connect here: no room
/// # let _ = socket;
/// ```
#[derive(Debug)]
pub struct FullBacklog {
    dir: PathBuf,
    socket: PathBuf,
    queued: usize,
    stop: Option<Sender<()>>,
    releaser: Option<JoinHandle<()>>,
}

impl FullBacklog {
    /// Binds a socket in a new temporary directory, listens with a backlog of 0 and
    /// fills the queue.
    ///
    /// # Panics
    ///
    /// When the socket cannot be made, or its queue does not fill within 64 connects.
    pub fn start() -> FullBacklog {
        let dir = crate::make_temp_dir();
        let socket = dir.join("full.sock");
        let (listener, held) = listen_full(&socket)
            .unwrap_or_else(|e| panic!("a full listener at {}: {e}", socket.display()));
        let queued = held.len();
        let (stop, stopped) = mpsc::channel::<()>();
        let releaser = std::thread::Builder::new()
            .name("full-backlog".into())
            .spawn(move || {
                // The connects that fill the queue stay open as long as the listener.
                let _held = held;
                // Dropped (or the sender gone) before the release: nothing to do.
                if stopped.recv_timeout(RELEASE_AFTER) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                if listener.set_nonblocking(true).is_err() {
                    return;
                }
                loop {
                    while let Ok((connection, _)) = listener.accept() {
                        drop(connection);
                    }
                    // Polls the queue every 10 ms until dropped: only a client that got
                    // stuck (a failing test) ever gets here.
                    match stopped.recv_timeout(Duration::from_millis(10)) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .expect("spawn the full-backlog thread");
        FullBacklog {
            dir,
            socket,
            queued,
            stop: Some(stop),
            releaser: Some(releaser),
        }
    }

    /// The unix socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The connects queued to fill it.
    pub fn queued(&self) -> usize {
        self.queued
    }
}

/// A listener at `path` with a backlog of 0, and the connected sockets that fill its
/// queue.
fn listen_full(path: &Path) -> io::Result<(Socket, Vec<Socket>)> {
    let address = SockAddr::unix(path)?;
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    listener.bind(&address)?;
    listener.listen(0)?;
    let mut held = Vec::new();
    loop {
        let client = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        client.set_nonblocking(true)?;
        match client.connect(&address) {
            Ok(()) if held.len() < MAX_QUEUED => held.push(client),
            Ok(()) => {
                return Err(io::Error::other(format!(
                    "the queue took {MAX_QUEUED} connects and is not full"
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((listener, held)),
            Err(e) => return Err(e),
        }
    }
}

impl Drop for FullBacklog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(releaser) = self.releaser.take() {
            let _ = releaser.join();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
