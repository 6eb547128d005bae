//! Processes seen through `/proc`, and signals sent with the `kill` command.

use std::fs;
use std::process::{Command, Stdio};

/// State letter and parent pid of a process, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` exists and has not exited (a zombie waiting to be reaped is dead).
pub(crate) fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Whether `pid` is stopped by a signal (SIGSTOP): it then runs no code, and a `fork`
/// it was in has finished (a process stops only on its way back to user space).
pub(crate) fn stopped(pid: u32) -> bool {
    matches!(stat(pid), Some(('T' | 't', _)))
}

/// The living children of `pid`, in ascending order.
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| {
            matches!(stat(candidate), Some((state, ppid)) if ppid == pid && state != 'Z' && state != 'X')
        })
        .collect();
    found.sort_unstable();
    found
}

/// The pids that may be signalled: never 0 (`kill 0` means our own process group), 1
/// (init) or this process.
fn targets(pids: &[u32]) -> Vec<u32> {
    let own = std::process::id();
    pids.iter()
        .copied()
        .filter(|&pid| pid > 1 && pid != own)
        .collect()
}

/// Sends `signal` (a name such as `TERM`) to `pids` with the `kill` command. Pids that
/// are already gone are ignored.
pub(crate) fn signal(signal: &str, pids: &[u32]) {
    let pids = targets(pids);
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether this process runs with effective uid 0 (php-fpm then needs `-R`).
pub(crate) fn is_root() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_the_process_group_init_or_self() {
        let own = std::process::id();
        assert_eq!(targets(&[0, 1, own, 12345]), [12345]);
    }

    #[test]
    fn this_process_is_alive_and_a_child_of_its_parent() {
        let own = std::process::id();
        assert!(alive(own));
        let (_, parent) = stat(own).unwrap();
        assert!(children(parent).contains(&own));
    }
}
