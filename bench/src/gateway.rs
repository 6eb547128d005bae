//! HTTP in front of the same php-fpm: wrk (HTTP/1.1) and h2load (HTTP/2 in clear text,
//! prior knowledge) against nginx (`fastcgi_pass` to a keepalive upstream,
//! `fastcgi_keep_conn on`) and against the fcgi gateway, interleaved, with the same
//! connection and stream counts. Requests per second and p50/p99 from `wrk --latency` and
//! from h2load's per-request log; CPU per request of the serving processes from
//! /proc/PID/stat (utime + stime) before and after.
//!
//! Placement: nothing pinned. nginx runs `worker_processes 2` (one per CPU, as `auto`
//! gives here) and the gateway its default runtime, so each may use both CPUs; wrk and
//! php-fpm share them.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Plan, Server};

mod buffering;
pub(crate) use buffering::run as run_buffering;

/// wrk connections, the same for every server, and the gateway's upstream connections
/// (`{connections}`; nginx keeps as many, see [`NGINX_KEEPALIVE`]).
const CONNECTIONS: usize = 32;
const WRK_THREADS: usize = 2;
/// nginx's kept upstream connections per worker process (nginx counts `keepalive` per
/// worker): 2 x 16 = 32, the wrk connection count.
const NGINX_KEEPALIVE: usize = 16;
/// h2load: connections and concurrent streams on each. 8 x 4 = 32 requests in flight,
/// as many as wrk's 32 connections keep, so the upstream side sees the same load.
const H2_CONNECTIONS: usize = 8;
const H2_STREAMS: usize = 4;
/// php-fpm workers the section needs. php-fpm gives each kept connection a worker of
/// its own for as long as it is open, idle or not, and every server stays up (with its
/// pool filled) while the others are measured: nginx's 32, `fcgi serve`'s 32, 8 and 8,
/// the example's 8, plus spare ones. With fewer, the server started last found every worker
/// held by the others' idle connections and answered nothing, and in earlier runs nginx,
/// measured while `fcgi serve` held 32 workers, had a p99 of hundreds of milliseconds.
pub(crate) const PHP_WORKERS: u32 = 2 * CONNECTIONS as u32 + 8 + 8 + 8 + 8;

/// One load run's figures (wrk or h2load).
struct Load {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    cpu_us: f64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_listening(port: u16, child: &mut Child) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process (all its threads), in clock ticks, and its parent's pid.
fn proc_stat(pid: u32) -> Option<(u64, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

/// A process and its direct children (nginx's master and workers).
fn family(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                if proc_stat(child).is_some_and(|(_, ppid)| ppid == pid) {
                    pids.push(child);
                }
            }
        }
    }
    pids
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&p| proc_stat(p))
        .map(|(t, _)| t)
        .sum()
}

/// `1.23ms`, `456.00us`, `1.50s` in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn run_wrk(port: u16, seconds: u64, pids: &[u32]) -> Option<Load> {
    let before = cpu_ticks(pids);
    let output = Command::new("wrk")
        .args(["-t", &WRK_THREADS.to_string()])
        .args(["-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/hello.php"))
        .output()
        .ok()?;
    let after = cpu_ticks(pids);
    let text = String::from_utf8_lossy(&output.stdout);
    let mut wrk = Load {
        per_second: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        cpu_us: 0.0,
    };
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            ["Requests/sec:", n] => wrk.per_second = n.parse().ok()?,
            ["50%", t] => wrk.p50_ms = millis(t)?,
            ["99%", t] => wrk.p99_ms = millis(t)?,
            [n, "requests", "in", ..] => wrk.requests = n.parse().ok()?,
            _ => {}
        }
    }
    if text.contains("Non-2xx") || wrk.requests == 0 {
        eprintln!("wrk reported errors or nothing:\n{text}");
        return None;
    }
    wrk.cpu_us = (after - before) as f64 / clock_ticks() * 1e6 / wrk.requests as f64;
    Some(wrk)
}

/// The `q` quantile (0..1) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at]
}

/// h2load in clear text with prior knowledge (its default for `http://`). Latencies
/// come from its per-request log (`--log-file`: start, status, microseconds), as h2load
/// prints only their mean and spread.
fn run_h2load(port: u16, seconds: u64, pids: &[u32]) -> Option<Load> {
    let log = std::env::temp_dir().join(format!(
        "fcgi-bench-h2load-{}-{port}.tsv",
        std::process::id()
    ));
    let before = cpu_ticks(pids);
    let output = Command::new("h2load")
        .args(["-t", &WRK_THREADS.to_string()])
        .args(["-c", &H2_CONNECTIONS.to_string()])
        .args(["-m", &H2_STREAMS.to_string()])
        .args(["-D", &seconds.to_string()])
        .arg("--log-file")
        .arg(&log)
        .arg(format!("http://127.0.0.1:{port}/hello.php"))
        .output()
        .ok()?;
    let after = cpu_ticks(pids);
    let text = String::from_utf8_lossy(&output.stdout);
    let mut load = Load {
        per_second: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        cpu_us: 0.0,
    };
    let mut failed = 0u64;
    let mut not_2xx = 0u64;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            // finished in 10.00s, 15000.50 req/s, 1.20MB/s
            ["finished", "in", _, rate, "req/s,", ..] => load.per_second = rate.parse().ok()?,
            // requests: N total, N started, N done, N succeeded, N failed, ...
            ["requests:", ..] => {
                for pair in cols[1..].chunks(2) {
                    match pair {
                        [n, "succeeded,"] => load.requests = n.parse().ok()?,
                        [n, "failed,"] => failed = n.parse().ok()?,
                        _ => {}
                    }
                }
            }
            // status codes: N 2xx, N 3xx, N 4xx, N 5xx
            ["status", "codes:", ..] => {
                for pair in cols[2..].chunks(2) {
                    if let [n, class] = pair {
                        if !class.starts_with("2xx") {
                            not_2xx += n.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut latencies: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse::<f64>().ok())
        .map(|us| us / 1000.0)
        .collect();
    let _ = std::fs::remove_file(&log);
    if failed > 0 || not_2xx > 0 || load.requests == 0 {
        eprintln!("h2load reported errors or nothing:\n{text}");
        return None;
    }
    latencies.sort_by(f64::total_cmp);
    load.p50_ms = quantile(&latencies, 0.5);
    load.p99_ms = quantile(&latencies, 0.99);
    load.cpu_us = (after - before) as f64 / clock_ticks() * 1e6 / load.requests as f64;
    Some(load)
}

fn nginx_conf(dir: &Path, ports: (u16, u16), socket: &Path, docroot: &Path) -> String {
    let d = dir.display();
    let (port, h2_port) = ports;
    let location = format!(
        r#"        root {root};
        location ~ \.php$ {{
            fastcgi_pass php;
            fastcgi_keep_conn on;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param DOCUMENT_URI $document_uri;
            fastcgi_param DOCUMENT_ROOT $document_root;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REMOTE_PORT $remote_port;
            fastcgi_param SERVER_ADDR $server_addr;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_param REDIRECT_STATUS 200;
        }}"#,
        root = docroot.display(),
    );
    format!(
        r#"daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    # No limit on the requests of a client connection, as the gateways have none:
    # nginx's default of 1 000 closes each HTTP/2 connection after 1 000 requests,
    # which h2load counts as failures and does not reconnect from.
    keepalive_requests 1000000000;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream php {{
        server unix:{socket};
        keepalive {NGINX_KEEPALIVE};
    }}
    server {{
        listen 127.0.0.1:{port};
{location}
    }}
    # HTTP/2 in clear text: nginx speaks it with prior knowledge only on a port of its
    # own (`http2` without `ssl`), where it answers no HTTP/1.1.
    server {{
        listen 127.0.0.1:{h2_port} http2;
{location}
    }}
}}
"#,
        socket = socket.display(),
    )
}

/// A server under load: its process (killed on drop), its ports (HTTP/1.1, and HTTP/2
/// with prior knowledge: the same for the gateways, which tell them apart by the
/// preface) and the pids whose CPU counts.
struct Running {
    name: String,
    child: Child,
    port: u16,
    h2_port: u16,
    pids: Vec<u32>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM (nginx: fast shutdown), then wait; SIGKILL after a grace period.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(server: &Server) -> Result<Running, String> {
    let dir = server.fpm.dir().join("nginx");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = free_port();
    let h2_port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(
            &dir,
            (port, h2_port),
            server.fpm.unix_socket(),
            server.fpm.docroot(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let nginx = ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .find(|n| Command::new(n).arg("-v").output().is_ok())
        .ok_or("nginx not found (apt-get install -y nginx-light)")?;
    let mut child = Command::new(nginx)
        .args(["-e", "stderr", "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    if !wait_listening(port, &mut child) {
        let _ = child.kill();
        return Err("nginx did not start".into());
    }
    let version = Command::new(nginx)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();
    let pids = family(child.id());
    Ok(Running {
        name: format!(
            "nginx ({}, 2 workers, upstream keepalive {NGINX_KEEPALIVE} per worker)",
            version.trim_start_matches("nginx version: ")
        ),
        child,
        port,
        h2_port,
        pids,
    })
}

/// Gateways to measure: a name for the table and a command template each, those that
/// exist beside this binary (or the one given).
/// The directory of this binary, where cargo put `fcgi` and `examples/` too.
fn own_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// `fcgi serve`'s command template without its options and upstream, when the `fcgi`
/// binary beside this one has the subcommand.
fn fcgi_serve() -> Option<String> {
    let fcgi = own_dir().join("fcgi");
    // `fcgi --help` answers any `--help`: the subcommand exists when its help names
    // `--listen`.
    Command::new(&fcgi)
        .args(["serve", "--help"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--listen")
        })
        .then(|| {
            format!(
                "{} serve --listen {{listen}} --root {{root}}",
                fcgi.display()
            )
        })
}

fn gateway_commands(plan: &Plan) -> Vec<(String, String)> {
    if let Some(cmd) = &plan.gateway_cmd {
        let program = cmd.split_whitespace().next().unwrap_or_default();
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return vec![(name, cmd.clone())];
    }
    let dir = own_dir();
    let mut found = Vec::new();
    if let Some(serve) = fcgi_serve() {
        // Compression off, as nginx has it here (issue 14 compares them so): as many
        // connections as nginx keeps, and the default, 8 (fewer PHP processes competing
        // for the CPUs, requests waiting in the gateway instead). Then its defaults as
        // they are, compression on: wrk and h2load ask for no encoding and the body is
        // tiny, so that row shows what the layer costs when it has nothing to do.
        found.push((
            format!("fcgi serve --no-compress, {CONNECTIONS} connections"),
            format!("{serve} --no-compress --connections {{connections}} {{upstream}}"),
        ));
        found.push((
            "fcgi serve --no-compress, 8 connections".to_string(),
            format!("{serve} --no-compress {{upstream}}"),
        ));
        found.push((
            "fcgi serve, its defaults (8 connections, compression on)".to_string(),
            format!("{serve} {{upstream}}"),
        ));
    }
    let example = dir.join("examples").join("php_gateway");
    if example.exists() {
        found.push((
            "php_gateway example (8 connections)".to_string(),
            format!(
                "{} --listen {{listen}} --upstream {{upstream}} --root {{root}}",
                example.display()
            ),
        ));
    }
    found
}

fn start_gateway(name: &str, template: &str, server: &Server) -> Result<Running, String> {
    let port = free_port();
    let cmd = template
        .replace("{listen}", &format!("127.0.0.1:{port}"))
        .replace(
            "{upstream}",
            &format!("unix:{}", server.fpm.unix_socket().display()),
        )
        .replace("{root}", &server.fpm.docroot().display().to_string())
        .replace("{connections}", &CONNECTIONS.to_string());
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let (program, args) = words.split_first().ok_or("empty gateway command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !wait_listening(port, &mut child) {
        let _ = child.kill();
        return Err(format!("{cmd}: did not listen"));
    }
    let pid = child.id();
    Ok(Running {
        name: name.to_string(),
        child,
        port,
        h2_port: port,
        pids: vec![pid],
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A load generator: its name in the table and its runner.
struct Tool {
    title: &'static str,
    program: &'static str,
    run: fn(u16, u64, &[u32]) -> Option<Load>,
    h2: bool,
}

const TOOLS: [Tool; 2] = [
    Tool {
        title: "HTTP/1.1 (wrk, hello.php)",
        program: "wrk",
        run: run_wrk,
        h2: false,
    },
    Tool {
        title: "HTTP/2 in clear text, prior knowledge (h2load, hello.php)",
        program: "h2load",
        run: run_h2load,
        h2: true,
    },
];

/// Runs the section; answers its Markdown (or a line saying why it was skipped).
pub(crate) fn run(plan: &Plan, server: &Server) -> String {
    let mut out = String::from("\n### HTTP gateway beside nginx\n\n");
    let tools: Vec<&Tool> = TOOLS
        .iter()
        .filter(|t| {
            let found = Command::new(t.program).arg("--version").output().is_ok();
            if !found {
                let _ = writeln!(
                    out,
                    "{} skipped: {} not found (apt-get install -y {}).\n",
                    t.title,
                    t.program,
                    if t.h2 { "nghttp2-client" } else { "wrk" }
                );
            }
            found
        })
        .collect();
    if tools.is_empty() {
        return out;
    }
    let mut servers = Vec::new();
    match start_nginx(server) {
        Ok(s) => servers.push(s),
        Err(e) => {
            let _ = writeln!(out, "nginx skipped: {e}.");
        }
    }
    let templates = gateway_commands(plan);
    if templates.is_empty() {
        out.push_str("Gateway skipped: no `fcgi serve` beside this binary (the `fcgi` binary of fcgi-cli with the `serve` subcommand) and no `examples/php_gateway`; give one with `--gateway-cmd 'CMD {listen} {upstream} {root} {connections}'`.\n\n");
    }
    for (name, template) in &templates {
        match start_gateway(name, template, server) {
            Ok(s) => servers.push(s),
            Err(e) => {
                let _ = writeln!(out, "Gateway skipped: {e}.\n");
            }
        }
    }
    if servers.is_empty() {
        return out;
    }
    let rounds = plan.rounds;
    // samples[tool][server]
    let mut samples: Vec<Vec<Vec<Load>>> = tools
        .iter()
        .map(|_| servers.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (t, tool) in tools.iter().enumerate() {
            // Each round starts one server later, as the clients' rounds do.
            for i in 0..servers.len() {
                let s = (i + round) % servers.len();
                let running = &servers[s];
                let port = if tool.h2 {
                    running.h2_port
                } else {
                    running.port
                };
                // Warm-up: fills the server's upstream pool.
                let _ = (tool.run)(port, 1, &running.pids);
                if let Some(w) = (tool.run)(port, plan.wrk_seconds, &running.pids) {
                    eprintln!(
                        "round {}/{rounds} {} {}: {:.0} req/s, p99 {:.2} ms, {:.1} us CPU/req",
                        round + 1,
                        tool.program,
                        running.name,
                        w.per_second,
                        w.p99_ms,
                        w.cpu_us
                    );
                    samples[t][s].push(w);
                }
            }
        }
    }
    let nginx_rate = |t: usize| -> Option<f64> {
        let s = servers.iter().position(|r| r.name.starts_with("nginx"))?;
        let rates: Vec<f64> = samples[t][s].iter().map(|w| w.per_second).collect();
        (!rates.is_empty()).then(|| median(rates))
    };
    for (t, tool) in tools.iter().enumerate() {
        let _ = writeln!(
            out,
            "#### {}\n\n| server | requests/s | vs nginx | p50 latency | p99 latency | server CPU us/request |\n|---|---:|---:|---:|---:|---:|",
            tool.title
        );
        let base = nginx_rate(t);
        for (running, samples) in servers.iter().zip(&samples[t]) {
            if samples.is_empty() {
                let _ = writeln!(
                    out,
                    "| {} | no responses ({}'s output is in the log) | | | | |",
                    running.name, tool.program
                );
                continue;
            }
            let of = |f: fn(&Load) -> f64| median(samples.iter().map(f).collect());
            let rate = of(|w| w.per_second);
            let ratio = base.map_or("-".to_string(), |b| format!("{:.2}x", rate / b));
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.1} |",
                running.name,
                rate,
                ratio,
                of(|w| w.p50_ms),
                of(|w| w.p99_ms),
                of(|w| w.cpu_us),
            );
        }
        if tool.h2 {
            let _ = writeln!(
                out,
                "\n`h2load -t{WRK_THREADS} -c{H2_CONNECTIONS} -m{H2_STREAMS} -D{} http://127.0.0.1:PORT/hello.php` ({H2_CONNECTIONS} connections x {H2_STREAMS} streams: {} requests in flight, as wrk's {CONNECTIONS} connections keep), after a 1 s warm-up run; h2c with prior knowledge (h2load's way for `http://`), on nginx's `listen PORT http2;` port (nginx 1.22 speaks h2c there only) and on the gateways' one port. p50/p99 from h2load's `--log-file` (it prints only mean and spread). Medians of {rounds} interleaved runs, each round starting one server later; nothing pinned. CPU: nginx master + workers; the gateway, one process, all threads.\n",
                plan.wrk_seconds,
                H2_CONNECTIONS * H2_STREAMS,
            );
        } else {
            let _ = writeln!(
                out,
                "\n`wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{}s --latency http://127.0.0.1:PORT/hello.php`, after a 1 s warm-up run; medians of {rounds} interleaved runs, each round starting one server later; nothing pinned (wrk, php-fpm and the server share both CPUs). nginx: 2 worker processes; CPU is master + workers. Gateway: one process, all threads.\n",
                plan.wrk_seconds
            );
        }
    }
    out
}
