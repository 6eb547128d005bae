//! What the servers built from source at test time share ([`Libfcgi`](crate::Libfcgi)'s
//! C responder, [`GoFcgi`](crate::GoFcgi)'s Go program): a build cache and the running
//! process.
//!
//! # The build cache
//!
//! A program is built once per source text and toolchain and kept in the directory
//! `FCGI_TEST_BUILD_DIR` when set, else `$TMPDIR/fcgi-testkit-build`, under a name that
//! holds the sha256 of its inputs, so a changed source gets a new binary and test binaries
//! that start at the same time never see half a build: each builds in a scratch directory
//! renamed into place once complete. Within one test process the path is looked up once.
//!
//! # The process
//!
//! Each instance has its own temporary directory `DIR` with the socket and the server's
//! output (its log). The program reads its standard input, a pipe held by this process,
//! and exits (removing `DIR`) when the pipe closes: on [`Drop`], or when the test process
//! exits in any way, even killed. A stop closes the pipe, waits for that process (by the
//! child handle kept from the spawn) and kills it after a few seconds.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{hex_sha256, make_temp_dir, read_lossy, wait_timeout};

/// The environment variable that names the build cache directory.
pub const BUILD_DIR_ENV: &str = "FCGI_TEST_BUILD_DIR";

/// How long a server gets to accept connections after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stop waits for the process to exit before it kills it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The build cache directory (see the module documentation).
pub fn build_dir() -> PathBuf {
    match std::env::var_os(BUILD_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("fcgi-testkit-build"),
    }
}

/// The binary `name` built from `inputs` (source text, toolchain version, flags: whatever
/// changes the result) by `build`, which gets a scratch directory and returns the binary
/// it made there (or what went wrong). Cached in [`build_dir`].
///
/// # Panics
///
/// When `build` fails or the cache cannot be written; the message holds `build`'s error.
pub(crate) fn cached_binary(
    name: &str,
    inputs: &[&[u8]],
    build: impl FnOnce(&Path) -> Result<PathBuf, String>,
) -> PathBuf {
    let mut all = Vec::new();
    for input in inputs {
        all.extend_from_slice(&(input.len() as u64).to_be_bytes());
        all.extend_from_slice(input);
    }
    let cache = build_dir();
    let entry = cache.join(format!("{name}-{}", &hex_sha256(&all)[..16]));
    let binary = entry.join(name);
    if binary.is_file() {
        return binary;
    }
    fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("cannot create {cache:?}: {e}"));
    let scratch = cache.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("cannot create {scratch:?}: {e}"));
    let built = match build(&scratch) {
        Ok(built) => built,
        Err(e) => {
            let _ = fs::remove_dir_all(&scratch);
            panic!("cannot build {name}: {e}");
        }
    };
    if built != scratch.join(name) {
        fs::rename(&built, scratch.join(name))
            .unwrap_or_else(|e| panic!("cannot move {built:?} into {scratch:?}: {e}"));
    }
    match fs::rename(&scratch, &entry) {
        Ok(()) => {}
        // Another process finished first: use its binary.
        Err(_) if binary.is_file() => {
            let _ = fs::remove_dir_all(&scratch);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&scratch);
            panic!("cannot move the new {name} to {entry:?}: {e}");
        }
    }
    binary
}

/// Runs `command` (which must set nothing but its arguments and environment) and
/// returns its standard output, or an error that holds everything it printed.
pub(crate) fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A running server built from source (see the module documentation).
#[derive(Debug)]
pub(crate) struct Server {
    what: &'static str,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    control: Option<ChildStdin>,
}

impl Server {
    /// Runs `binary SOCKET DIR args...` in a new temporary directory `DIR` (socket
    /// `DIR/<what>.sock`, output `DIR/<what>.log`) and returns once the socket accepts
    /// connections.
    ///
    /// # Panics
    ///
    /// When the program cannot run, exits, or does not accept connections within 20
    /// seconds; the message holds its output.
    pub(crate) fn start(what: &'static str, binary: &Path, args: &[String]) -> Server {
        let dir = make_temp_dir();
        let socket = dir.join(format!("{what}.sock"));
        let log = dir.join(format!("{what}.log"));
        let out = fs::File::create(&log).unwrap_or_else(|e| panic!("cannot create {log:?}: {e}"));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open {log:?}: {e}"));
        let mut child = Command::new(binary)
            .arg(&socket)
            .arg(&dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let control = child.stdin.take();
        let mut server = Server {
            what,
            dir,
            socket,
            log,
            child: Some(child),
            control,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = server.child.as_mut().expect("set above");
            if let Ok(Some(status)) = child.try_wait() {
                server.child = None;
                panic!(
                    "{what} exited during start ({status}); its output:\n{}",
                    server.log()
                );
            }
            if UnixStream::connect(&server.socket).is_ok() {
                return server;
            }
            if Instant::now() > deadline {
                let log = server.log();
                server.stop();
                panic!(
                    "{what} did not accept connections on {} within {READY_TIMEOUT:?}; its output:\n{log}",
                    server.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn unix_socket(&self) -> &Path {
        &self.socket
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some() && crate::process::alive(self.pid())
    }

    pub(crate) fn log(&self) -> String {
        read_lossy(&self.log, 0)
    }

    /// The log once it contains `needle`, waiting for it at most 10 s (`None` then). A
    /// program prints its start line after it listens, so the line can come a moment
    /// after [`Server::start`] has seen the socket accept.
    #[cfg(test)]
    pub(crate) fn log_with(&self, needle: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return Some(log);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Closes the control pipe (the program exits at once) and waits for the process,
    /// killing it (by its pid, through the child handle) after 5 seconds.
    pub(crate) fn stop(&mut self) {
        drop(self.control.take());
        if let Some(mut child) = self.child.take() {
            if wait_timeout(&mut child, STOP_TIMEOUT).is_none() {
                eprintln!(
                    "{} did not exit after its pipe closed: killing it",
                    self.what
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
