//! What request and response buffering cost in `fcgi serve` (issue 17): the same
//! gateway with buffering on (its default) and with `--no-request-buffering
//! --no-response-buffering`, side by side in one run, interleaved: small requests under
//! wrk, a large upload (`PUT` to sink.php) and a large download (big.php), each
//! transfer on a connection of its own. Wall time, the gateway's CPU (/proc/PID/stat)
//! and its peak RSS (`VmHWM`, reset before each transfer through
//! `/proc/PID/clear_refs`).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use super::{clock_ticks, cpu_ticks, fcgi_serve, median, run_wrk, start_gateway, Running};
use crate::{Plan, Server};

/// One transfer's figures.
struct Transfer {
    wall_ms: f64,
    cpu_ms: f64,
    peak_rss_kib: f64,
}

/// Resets the peak RSS of `pid` to its current RSS (Linux 4.0 and later).
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// `VmHWM` of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(f64::NAN)
}

/// Sends `request` (and `body` bytes of `x` after it) on a fresh connection, reads the
/// response to its end (the request asks to close) and answers the bytes received.
fn exchange(port: u16, request: &str, body: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_nodelay(true)?;
    socket.write_all(request.as_bytes())?;
    let piece = vec![b'x'; 1 << 20];
    let mut left = body;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        socket.write_all(&piece[..n])?;
        left -= n as u64;
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut head = Vec::new();
    let mut received = 0u64;
    loop {
        let n = socket.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < 512 {
            head.extend_from_slice(&buf[..n.min(512 - head.len())]);
        }
        received += n as u64;
    }
    Ok((head, received))
}

/// One measured transfer through `running`.
fn transfer(
    running: &Running,
    request: &str,
    body: u64,
    expect: impl Fn(&[u8], u64) -> bool,
) -> Option<Transfer> {
    let pid = running.pids[0];
    reset_peak(pid);
    let before = cpu_ticks(&running.pids);
    let started = Instant::now();
    let result = exchange(running.port, request, body);
    let wall = started.elapsed();
    let after = cpu_ticks(&running.pids);
    match result {
        Ok((head, received)) if expect(&head, received) => Some(Transfer {
            wall_ms: wall.as_secs_f64() * 1e3,
            cpu_ms: (after - before) as f64 / clock_ticks() * 1e3,
            peak_rss_kib: peak_rss_kib(pid),
        }),
        Ok((head, received)) => {
            eprintln!(
                "{}: unexpected answer ({received} bytes): {}",
                running.name,
                String::from_utf8_lossy(&head)
            );
            None
        }
        Err(e) => {
            eprintln!("{}: {e}", running.name);
            None
        }
    }
}

fn ok(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 200")
}

/// Runs the section; answers its Markdown.
pub(crate) fn run(plan: &Plan, server: &Server) -> String {
    let mut out = String::from("\n### Buffering in `fcgi serve`: what it costs\n\n");
    let Some(serve) = fcgi_serve() else {
        out.push_str("Skipped: no `fcgi serve` beside this binary.\n");
        return out;
    };
    let variants = [
        (
            "buffering on (the default)",
            format!("{serve} --no-compress {{upstream}}"),
        ),
        (
            "--no-request-buffering --no-response-buffering",
            format!(
                "{serve} --no-compress --no-request-buffering --no-response-buffering {{upstream}}"
            ),
        ),
    ];
    let mut servers = Vec::new();
    for (name, template) in &variants {
        match start_gateway(name, template, server) {
            Ok(s) => servers.push(s),
            Err(e) => {
                let _ = writeln!(out, "Skipped: {e}.");
                return out;
            }
        }
    }
    let up = plan.upload_bytes;
    let down = plan.large_bytes;
    let upload = format!(
        "PUT /sink.php HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {up}\r\nConnection: close\r\n\r\n"
    );
    let download = format!(
        "GET /big.php?bytes={down} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let up_text = up.to_string();
    let has_wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    // [server] -> samples
    let mut small: Vec<Vec<super::Load>> = servers.iter().map(|_| Vec::new()).collect();
    let mut ups: Vec<Vec<Transfer>> = servers.iter().map(|_| Vec::new()).collect();
    let mut downs: Vec<Vec<Transfer>> = servers.iter().map(|_| Vec::new()).collect();
    let rounds = plan.rounds;
    for round in 0..rounds {
        for i in 0..servers.len() {
            let s = (i + round) % servers.len();
            let running = &servers[s];
            if has_wrk {
                let _ = run_wrk(running.port, 1, &running.pids);
                if let Some(w) = run_wrk(running.port, plan.wrk_seconds, &running.pids) {
                    small[s].push(w);
                }
            }
            // sink.php answers the length it read.
            let expect_up =
                |head: &[u8], _: u64| ok(head) && String::from_utf8_lossy(head).contains(&up_text);
            if let Some(t) = transfer(running, &upload, up, expect_up) {
                ups[s].push(t);
            }
            let expect_down = |head: &[u8], received: u64| ok(head) && received >= down;
            if let Some(t) = transfer(running, &download, 0, expect_down) {
                downs[s].push(t);
            }
            eprintln!(
                "round {}/{rounds} buffering, {}: done",
                round + 1,
                running.name
            );
        }
    }
    let _ = writeln!(
        out,
        "| `fcgi serve --no-compress` | small: requests/s | small: p99 | small: CPU us/request | {} MiB upload: wall ms | upload: CPU ms | upload: peak RSS | {} MiB download: wall ms | download: CPU ms | download: peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        up >> 20,
        down >> 20
    );
    for (s, running) in servers.iter().enumerate() {
        let m = |v: Vec<f64>| {
            let x = median(v);
            if x.is_nan() {
                "-".to_string()
            } else {
                format!("{x:.1}")
            }
        };
        let rss = |t: &[Transfer]| {
            let x = median(t.iter().map(|t| t.peak_rss_kib).collect());
            if x.is_nan() {
                "-".to_string()
            } else {
                format!("{:.1} MiB", x / 1024.0)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} ms | {} | {} | {} | {} | {} | {} | {} |",
            running.name,
            m(small[s].iter().map(|w| w.per_second.round()).collect()).trim_end_matches(".0"),
            m(small[s].iter().map(|w| w.p99_ms).collect()),
            m(small[s].iter().map(|w| w.cpu_us).collect()),
            m(ups[s].iter().map(|t| t.wall_ms).collect()),
            m(ups[s].iter().map(|t| t.cpu_ms).collect()),
            rss(&ups[s]),
            m(downs[s].iter().map(|t| t.wall_ms).collect()),
            m(downs[s].iter().map(|t| t.cpu_ms).collect()),
            rss(&downs[s]),
        );
    }
    let _ = writeln!(
        out,
        "\n8 upstream connections (the default), compression off. Small: `wrk -t2 -c32 -d{}s` on hello.php, as above. Upload: one `PUT` of {up} bytes to sink.php (which reads it in 1 MiB pieces and answers its length), sent in 1 MiB writes on a connection of its own. Download: one `GET` of big.php?bytes={down}, read to its end in 256 KiB reads. CPU: the gateway process, all threads (/proc, clock ticks). Peak RSS: the gateway's `VmHWM`, reset before each transfer (`/proc/PID/clear_refs`). Medians of {rounds} interleaved rounds (each round starting with the other server); nothing pinned.\n",
        plan.wrk_seconds
    );
    out
}
