//! fcgi-bench: every FastCGI client against one private php-fpm, and the HTTP gateway
//! beside nginx. `scripts/bench` builds and runs it; BENCHMARKS.md has its tables.
//!
//! ```text
//! fcgi-bench [--quick] [--rounds N] [--out FILE] [--clients a,b] [--workloads a,b]
//!            [--no-strace] [--no-gateway] [--no-buffering]
//!            [--gateway-cmd 'CMD {listen} {upstream} {root} {connections}']
//! fcgi-bench client --kind K --workload W --socket PATH --docroot DIR -n N
//!            [--bytes B] [--warmup W]          (one measured child; prints a result line)
//!            (env FCGI_BENCH_NO_TIMEOUTS=1: the fcgi-tokio and fcgi-async-std
//!            clients with no timeouts, to measure what armed timers cost)
//! fcgi-bench php-fpm                           (starts the same php-fpm, prints its socket
//!                                               and docroot, stops at end of stdin: for
//!                                               profiling a child under callgrind or perf)
//! ```
//!
//! The driver starts php-fpm (static pool) through fcgi-testkit and runs each client and
//! workload in a child process (this binary again, `client ...`), so the CPU time
//! (getrusage), peak RSS and allocation counts (a counting global allocator) are the
//! client's alone, measured around the timed loop after a warm-up. Rounds interleave the
//! clients, each round starting one client later (A B C D, B C D A, ...); the tables give
//! medians. Sequential runs pin the
//! child and every php-fpm process to CPU 1; the others run on both CPUs. Syscalls per
//! request come from `strace -f -c` of one child with N requests minus one with none.

mod alloc;
mod clients;
mod gateway;
mod meter;
mod report;

use std::path::PathBuf;
use std::process::Command;

use clients::{Job, Kind, Workload};
use fcgi_testkit::PhpFpm;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Sizes of one run.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    pub(crate) seq: u64,
    pub(crate) concurrent: u64,
    pub(crate) large_bytes: u64,
    pub(crate) upload_bytes: u64,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) strace: bool,
    pub(crate) gateway: bool,
    /// The gateway's buffering section (part of the gateway's).
    pub(crate) buffering: bool,
    pub(crate) gateway_cmd: Option<String>,
    pub(crate) wrk_seconds: u64,
    pub(crate) out: Option<PathBuf>,
}

impl Plan {
    fn parse(args: &[String]) -> Plan {
        let quick = args.iter().any(|a| a == "--quick");
        let mut plan = Plan {
            quick,
            rounds: if quick { 3 } else { 7 },
            seq: if quick { 2_000 } else { 20_000 },
            concurrent: if quick { 3_200 } else { 32_000 },
            large_bytes: if quick { 64 << 20 } else { 1 << 30 },
            upload_bytes: if quick { 16 << 20 } else { 100 << 20 },
            kinds: Kind::ALL.to_vec(),
            workloads: Workload::ALL.to_vec(),
            strace: true,
            gateway: true,
            buffering: true,
            gateway_cmd: None,
            wrk_seconds: if quick { 3 } else { 10 },
            out: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned().unwrap_or_else(|| usage(arg));
            match arg.as_str() {
                "--quick" => {}
                "--rounds" => plan.rounds = value().parse().unwrap_or_else(|_| usage(arg)),
                "--out" => plan.out = Some(value().into()),
                "--clients" => {
                    plan.kinds = value()
                        .split(',')
                        .map(|k| Kind::parse(k).unwrap_or_else(|| usage(k)))
                        .collect()
                }
                "--workloads" => {
                    plan.workloads = value()
                        .split(',')
                        .map(|w| Workload::parse(w).unwrap_or_else(|| usage(w)))
                        .collect()
                }
                "--no-strace" => plan.strace = false,
                "--no-gateway" => plan.gateway = false,
                "--no-buffering" => plan.buffering = false,
                "--gateway-cmd" => plan.gateway_cmd = Some(value()),
                other => usage(other),
            }
        }
        plan
    }

    fn n(&self, workload: Workload) -> u64 {
        match workload {
            Workload::Seq => self.seq,
            Workload::Concurrent => self.concurrent,
            Workload::Large | Workload::Upload => 1,
        }
    }

    fn bytes(&self, workload: Workload) -> u64 {
        match workload {
            Workload::Large => self.large_bytes,
            Workload::Upload => self.upload_bytes,
            _ => 0,
        }
    }
}

fn usage(at: &str) -> ! {
    eprintln!("fcgi-bench: unexpected `{at}`; see the top of bench/src/main.rs for usage");
    std::process::exit(2);
}

/// One child's figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
    pub(crate) wall_ns: u64,
    pub(crate) cpu_us: u64,
    pub(crate) allocs: u64,
    pub(crate) alloc_bytes: u64,
    pub(crate) peak_rss_kib: u64,
    /// The child could not count allocations (the load mode runs in another process).
    pub(crate) allocs_uncounted: bool,
}

fn parse_result(stdout: &str) -> Option<Sample> {
    let line = stdout.lines().find(|l| l.starts_with("result "))?;
    let mut s = Sample::default();
    for pair in line.split_whitespace().skip(1) {
        let (k, v) = pair.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "requests" => s.requests = v,
            "bytes" => s.bytes = v,
            "wall_ns" => s.wall_ns = v,
            "cpu_us" => s.cpu_us = v,
            "allocs" => s.allocs = v,
            "alloc_bytes" => s.alloc_bytes = v,
            "peak_rss_kib" => s.peak_rss_kib = v,
            "allocs_counted" => s.allocs_uncounted = v == 0,
            _ => {}
        }
    }
    Some(s)
}

/// The server and what every child needs to reach it.
pub(crate) struct Server {
    pub(crate) fpm: PhpFpm,
    exe: PathBuf,
}

impl Server {
    fn pin(&self, cpus: &str) {
        let mut pids = vec![self.fpm.master_pid()];
        pids.extend(self.fpm.worker_pids());
        for pid in pids {
            let _ = Command::new("taskset")
                .args(["-apc", cpus, &pid.to_string()])
                .output();
        }
    }

    /// The child command for a job, pinned to `cpus`, optionally under strace.
    fn child(&self, job: &Job, cpus: &str, strace_to: Option<&PathBuf>) -> Command {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", cpus]);
        if let Some(out) = strace_to {
            cmd.arg("strace").args(["-f", "-c", "-o"]).arg(out);
        }
        cmd.arg(&self.exe)
            .args(["client", "--kind", job.kind.name()])
            .args(["--workload", job.workload.name()])
            .arg("--socket")
            .arg(self.fpm.unix_socket())
            .arg("--docroot")
            .arg(self.fpm.docroot())
            .args(["-n", &job.n.to_string()])
            .args(["--bytes", &job.bytes.to_string()])
            .args(["--warmup", &job.warmup.to_string()]);
        cmd
    }

    fn run_child(&self, job: &Job, cpus: &str) -> Sample {
        let output = self.child(job, cpus, None).output().expect("run a child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        match parse_result(&stdout) {
            Some(sample) if output.status.success() => sample,
            _ => panic!(
                "{} {} failed ({}): {}{}",
                job.kind.name(),
                job.workload.name(),
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Syscalls per request by name: strace of N requests minus strace of none.
    fn syscalls(&self, job: &Job, cpus: &str) -> Option<Vec<(String, f64)>> {
        let dir = std::env::temp_dir();
        let count = |n: u64| -> Option<std::collections::BTreeMap<String, u64>> {
            let out = dir.join(format!(
                "fcgi-bench-strace-{}-{}-{}-{n}.txt",
                std::process::id(),
                job.kind.name(),
                job.workload.name()
            ));
            let job = Job { n, ..job.clone() };
            let status = self
                .child(&job, cpus, Some(&out))
                .stdout(std::process::Stdio::null())
                .status()
                .ok()?;
            let text = std::fs::read_to_string(&out).ok()?;
            let _ = std::fs::remove_file(&out);
            status.success().then(|| report::parse_strace(&text))
        };
        let base = count(0)?;
        let full = count(job.n)?;
        let mut per: Vec<(String, f64)> = full
            .iter()
            .map(|(name, calls)| {
                let extra = calls.saturating_sub(base.get(name).copied().unwrap_or(0));
                (name.clone(), extra as f64 / job.n as f64)
            })
            .filter(|(_, per)| *per > 0.0)
            .collect();
        per.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(per)
    }
}

fn client_main(args: &[String]) {
    let mut job = Job {
        kind: Kind::Raw,
        workload: Workload::Seq,
        socket: PathBuf::new(),
        docroot: PathBuf::new(),
        n: 0,
        bytes: 0,
        warmup: 0,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next().cloned().unwrap_or_else(|| usage(arg));
        match arg.as_str() {
            "--kind" => job.kind = Kind::parse(&value).unwrap_or_else(|| usage(&value)),
            "--workload" => job.workload = Workload::parse(&value).unwrap_or_else(|| usage(&value)),
            "--socket" => job.socket = value.into(),
            "--docroot" => job.docroot = value.into(),
            "-n" => job.n = value.parse().unwrap_or_else(|_| usage(&value)),
            "--bytes" => job.bytes = value.parse().unwrap_or_else(|_| usage(&value)),
            "--warmup" => job.warmup = value.parse().unwrap_or_else(|_| usage(&value)),
            other => usage(other),
        }
    }
    clients::run(&job);
}

fn tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A static pool (the test kit's only kind) large enough for the 32 concurrent clients
/// and for the gateway section's servers, which keep their connections open side by side.
fn start_php_fpm() -> PhpFpm {
    let fpm = PhpFpm::builder().max_children(gateway::PHP_WORKERS).start();
    fpm.write_script("big.php", clients::BIG_PHP);
    fpm.write_script("sink.php", clients::SINK_PHP);
    fpm
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        client_main(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("php-fpm") {
        let fpm = start_php_fpm();
        println!(
            "--socket {} --docroot {}",
            fpm.unix_socket().display(),
            fpm.docroot().display()
        );
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        return;
    }
    let plan = Plan::parse(&args);
    let exe = std::env::current_exe().expect("own path");
    let fpm = start_php_fpm();
    let server = Server { fpm, exe };
    let strace = plan.strace && tool("strace");
    if plan.strace && !strace {
        eprintln!("strace not found: no syscall counts (apt-get install -y strace)");
    }

    let mut results = report::Results::new(&plan);
    for round in 0..plan.rounds {
        for &workload in &plan.workloads {
            // Sequential: client and php-fpm on CPU 1 (see shared PEERS.md); the rest on
            // both CPUs.
            let cpus = if workload == Workload::Seq {
                "1"
            } else {
                "0,1"
            };
            server.pin(cpus);
            // Each round starts one client later, so that no client always runs first
            // (right after another workload) or last.
            let kinds: Vec<Kind> = plan
                .kinds
                .iter()
                .copied()
                .filter(|k| k.runs(workload))
                .collect();
            for i in 0..kinds.len() {
                let kind = kinds[(i + round) % kinds.len()];
                let job = Job {
                    kind,
                    workload,
                    socket: server.fpm.unix_socket().to_path_buf(),
                    docroot: server.fpm.docroot().to_path_buf(),
                    n: plan.n(workload),
                    bytes: plan.bytes(workload),
                    warmup: if plan.n(workload) > 1 { 1_000 } else { 0 },
                };
                let sample = server.run_child(&job, cpus);
                eprintln!(
                    "round {}/{} {:>10} {:>15}: {:>8.1} us CPU/req, {:>8.1} allocs/req, {} req/s",
                    round + 1,
                    plan.rounds,
                    workload.name(),
                    kind.name(),
                    sample.cpu_us as f64 / sample.requests.max(1) as f64,
                    sample.allocs as f64 / sample.requests.max(1) as f64,
                    (sample.requests as f64 / (sample.wall_ns as f64 / 1e9)) as u64,
                );
                results.add(kind, workload, sample);
                if round == 0 && strace {
                    // Fewer requests under strace: its cost is per syscall.
                    let job = Job {
                        n: (job.n / 4).max(1),
                        ..job
                    };
                    if let Some(per) = server.syscalls(&job, cpus) {
                        results.set_syscalls(kind, workload, per);
                    }
                }
            }
        }
    }
    server.pin("0,1");
    let mut text = results.markdown();
    if plan.gateway {
        text.push_str(&gateway::run(&plan, &server));
        if plan.buffering {
            text.push_str(&gateway::run_buffering(&plan, &server));
        }
    }
    text.push_str(&report::machine(&plan, &server));
    println!("{text}");
    if let Some(out) = &plan.out {
        std::fs::write(out, &text).expect("write the tables");
    }
}
