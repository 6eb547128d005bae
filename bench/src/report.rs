//! Collects samples and prints them as Markdown tables: medians, ratios to the raw floor
//! and to fastcgi-client.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::Command;

use crate::clients::{Kind, Workload, TASKS};
use crate::{Plan, Sample, Server};

/// Every sample and syscall count of a run.
pub(crate) struct Results {
    plan: Plan,
    samples: HashMap<(Kind, Workload), Vec<Sample>>,
    syscalls: HashMap<(Kind, Workload), Vec<(String, f64)>>,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Medians of one client and workload.
#[derive(Clone, Copy)]
struct Figures {
    per_second: f64,
    mib_per_second: f64,
    cpu_us: f64,
    allocs: f64,
    alloc_bytes: f64,
    peak_rss_mib: f64,
}

impl Results {
    pub(crate) fn new(plan: &Plan) -> Self {
        Self {
            plan: plan.clone(),
            samples: HashMap::new(),
            syscalls: HashMap::new(),
        }
    }

    pub(crate) fn add(&mut self, kind: Kind, workload: Workload, sample: Sample) {
        self.samples
            .entry((kind, workload))
            .or_default()
            .push(sample);
    }

    pub(crate) fn set_syscalls(&mut self, kind: Kind, workload: Workload, per: Vec<(String, f64)>) {
        self.syscalls.insert((kind, workload), per);
    }

    fn figures(&self, kind: Kind, workload: Workload) -> Option<Figures> {
        let samples = self.samples.get(&(kind, workload))?;
        let of = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let req = |s: &Sample| s.requests.max(1) as f64;
        let uncounted = samples.iter().any(|s| s.allocs_uncounted);
        Some(Figures {
            per_second: of(&|s| s.requests as f64 / (s.wall_ns as f64 / 1e9)),
            mib_per_second: of(&|s| s.bytes as f64 / (1 << 20) as f64 / (s.wall_ns as f64 / 1e9)),
            cpu_us: of(&|s| s.cpu_us as f64 / req(s)),
            allocs: if uncounted {
                f64::NAN
            } else {
                of(&|s| s.allocs as f64 / req(s))
            },
            alloc_bytes: if uncounted {
                f64::NAN
            } else {
                of(&|s| s.alloc_bytes as f64 / req(s))
            },
            peak_rss_mib: of(&|s| s.peak_rss_kib as f64 / 1024.0),
        })
    }

    fn syscall_text(&self, kind: Kind, workload: Workload) -> (String, String) {
        let Some(per) = self.syscalls.get(&(kind, workload)) else {
            return ("-".into(), "-".into());
        };
        let total: f64 = per.iter().map(|(_, n)| n).sum();
        let detail = per
            .iter()
            .filter(|(_, n)| *n >= 0.01 * total.max(1.0))
            .take(5)
            .map(|(name, n)| format!("{} {}", number(*n), name))
            .collect::<Vec<_>>()
            .join(", ");
        (number(total), detail)
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let plan = &self.plan;
        for &workload in &plan.workloads {
            let (title, unit) = match workload {
                Workload::Seq => (
                    format!(
                        "Sequential small requests (hello.php) on one kept connection, {} per run; client and php-fpm pinned to CPU 1",
                        plan.seq
                    ),
                    "request",
                ),
                Workload::Concurrent => (
                    format!(
                        "{TASKS} concurrent small requests (hello.php), {TASKS} kept connections, {} per run; 2 CPUs, not pinned",
                        plan.concurrent
                    ),
                    "request",
                ),
                Workload::Large => (
                    format!(
                        "One {} MiB response streamed (big.php), counted and dropped; 2 CPUs, not pinned",
                        plan.large_bytes >> 20
                    ),
                    "response",
                ),
                Workload::Upload => (
                    format!(
                        "One {} MiB upload (PUT to sink.php, body from memory); 2 CPUs, not pinned",
                        plan.upload_bytes >> 20
                    ),
                    "upload",
                ),
            };
            let _ = writeln!(out, "\n### {title}\n");
            let floor = self.figures(Kind::Raw, workload);
            let other = self.figures(Kind::FastcgiClient, workload);
            let bulk = matches!(workload, Workload::Large | Workload::Upload);
            let (rate, cpu) = if bulk {
                ("MiB/s", "client CPU ms")
            } else {
                ("requests/s", "client CPU us/request")
            };
            let _ = writeln!(
                out,
                "| client | {rate} | vs floor | vs its floor | {cpu} | CPU vs floor | CPU vs its runtime's floor | CPU vs fastcgi-client | syscalls/{unit} | allocations/{unit} | allocated/{unit} | peak RSS |"
            );
            let _ = writeln!(
                out,
                "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
            );
            for &kind in &plan.kinds {
                let Some(f) = self.figures(kind, workload) else {
                    continue;
                };
                let rate_of = |f: &Figures| if bulk { f.mib_per_second } else { f.per_second };
                let cpu_of = |f: &Figures| if bulk { f.cpu_us / 1000.0 } else { f.cpu_us };
                let ratio = |a: f64, b: Option<f64>| match b {
                    Some(b) if b > 0.0 => format!("{:.2}x", a / b),
                    _ => "-".into(),
                };
                // The floor on the client's own runtime, when it ran this workload.
                let own = self.figures(kind.floor(), workload);
                let (total, detail) = self.syscall_text(kind, workload);
                let syscalls = if detail.is_empty() {
                    total
                } else {
                    format!("{total} ({detail})")
                };
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB |",
                    kind.name(),
                    rate_of(&f),
                    ratio(rate_of(&f), floor.as_ref().map(rate_of)),
                    ratio(rate_of(&f), own.as_ref().map(rate_of)),
                    number(cpu_of(&f)),
                    ratio(cpu_of(&f), floor.as_ref().map(cpu_of)),
                    ratio(cpu_of(&f), own.as_ref().map(cpu_of)),
                    ratio(cpu_of(&f), other.as_ref().map(cpu_of)),
                    syscalls,
                    number(f.allocs),
                    bytes(f.alloc_bytes),
                    f.peak_rss_mib,
                );
            }
        }
        let _ = writeln!(
            out,
            "\nMedians of {} interleaved rounds (every client once per round, in turn, each round starting one client later). CPU: getrusage of the client process (user + system, all threads) around the timed loop, after 1000 warm-up requests for the small workloads. Allocations: calls to alloc/realloc in the timed loop (a counting global allocator). Syscalls: `strace -f -c` of a run with N/4 requests minus one with none, per request. Peak RSS: the whole client process (the upload body, {} MiB, is in memory for every client). `vs floor`: throughput ratio to raw-floor (higher is better); `vs its floor` and `CPU vs its runtime's floor`: against the floor on the client's own runtime and socket (raw-floor for fcgi-blocking, raw-tokio for fcgi-tokio, the load mode and fastcgi-client, raw-async-io for fcgi-async-std); CPU ratios: lower is better. raw-tokio-readable: raw-tokio with its socket registered for readability alone, as fcgi-tokio registers unix sockets (tokio's `UnixStream` registers for writability too, and a unix socket signals it each time the peer reads), held against raw-tokio. raw-async-io-timer: raw-async-io with one async-io timer pending in the reactor all along, as in any program with a timeout set (fcgi-async-std's read timeout is one; async-io's reactor works through its timers on every wait), held against raw-async-io. fcgi-load: the `fcgi` binary's load mode in a process of its own (`-c 1 --connections 1`, or 32 and 32), figures from a run of the warm-up alone subtracted from one of the warm-up and the measured requests; its allocations are not counted.",
            plan.rounds,
            plan.upload_bytes >> 20
        );
        out
    }
}

/// `strace -c` output: calls by syscall name.
pub(crate) fn parse_strace(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if cols.len() < 5 || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let name = cols[cols.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = cols[3].parse::<u64>() {
            *calls.entry(name.to_owned()).or_default() += n;
        }
    }
    calls
}

fn number(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn bytes(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", x / 1024.0 / 1024.0)
    } else if x >= 1024.0 {
        format!("{:.1} KiB", x / 1024.0)
    } else {
        format!("{x:.0} B")
    }
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The machine and the versions, for BENCHMARKS.md.
pub(crate) fn machine(plan: &Plan, server: &Server) -> String {
    let fpm_version = Command::new(server.fpm.binary())
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    format!(
        "\n### Machine\n\n- date: {}\n- CPUs: {} x {}\n- kernel: {}\n- php-fpm: {} (static pool, {} workers per pool, unix socket)\n- rustc: {}\n- fastcgi-client: 0.12 (tokio feature)\n- mode: {}\n",
        sh("date -u '+%Y-%m-%d %H:%M UTC'"),
        sh("nproc"),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"),
        sh("uname -sr"),
        fpm_version,
        server.fpm.max_children(),
        sh("rustc --version"),
        if plan.quick { "--quick" } else { "full" },
    )
}
