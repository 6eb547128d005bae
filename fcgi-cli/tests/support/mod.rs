//! What the tests of `fcgi serve` share: the binary started on a free port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// A running `fcgi serve`, killed on drop.
pub(crate) struct Serve {
    // Not every test binary reads it.
    #[allow(dead_code)]
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// Standard error after the listening line.
    #[allow(dead_code)]
    pub(crate) stderr: mpsc::Receiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(args: &[&str]) -> Serve {
    start_with_env(args, &[])
}

/// As [`start`], with variables added to the environment.
// Not every test binary calls it.
#[allow(dead_code)]
pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fcgi starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("fcgi serve says where it listens");
    let addr = line
        .strip_prefix("fcgi: listening on http://")
        .or_else(|| line.strip_prefix("fcgi: listening on https://"))
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Serve {
        child,
        addr,
        stderr: rx,
    }
}
