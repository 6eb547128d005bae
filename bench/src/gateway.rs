//! HTTP in front of the same php-fpm: wrk against nginx (`fastcgi_pass` to a keepalive
//! upstream, `fastcgi_keep_conn on`) and against the fcgi gateway, interleaved, with the
//! same connection count. Requests per second and p50/p99 from `wrk --latency`; CPU per
//! request of the serving processes from /proc/PID/stat (utime + stime) before and after.
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

/// wrk connections, the same for every server, and the gateway's upstream connections
/// (`{connections}`; nginx keeps as many, see [`NGINX_KEEPALIVE`]).
const CONNECTIONS: usize = 32;
const WRK_THREADS: usize = 2;
/// nginx's kept upstream connections per worker process (nginx counts `keepalive` per
/// worker): 2 x 16 = 32, the wrk connection count.
const NGINX_KEEPALIVE: usize = 16;
/// php-fpm workers the section needs. php-fpm gives each kept connection a worker of
/// its own for as long as it is open, idle or not, and every server stays up (with its
/// pool filled) while the others are measured: nginx's 32, `fcgi serve`'s 32 and 8, the
/// example's 8, plus spare ones. With fewer, the server started last found every worker
/// held by the others' idle connections and answered nothing, and in earlier runs nginx,
/// measured while `fcgi serve` held 32 workers, had a p99 of hundreds of milliseconds.
pub(crate) const PHP_WORKERS: u32 = 2 * CONNECTIONS as u32 + 8 + 8 + 8;

struct Wrk {
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

fn run_wrk(port: u16, seconds: u64, pids: &[u32]) -> Option<Wrk> {
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
    let mut wrk = Wrk {
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

fn nginx_conf(dir: &Path, port: u16, socket: &Path, docroot: &Path) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
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
        root {root};
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
        }}
    }}
}}
"#,
        socket = socket.display(),
        root = docroot.display(),
    )
}

/// A server under wrk: its process (killed on drop), port and the pids whose CPU counts.
struct Running {
    name: String,
    child: Child,
    port: u16,
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
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(&dir, port, server.fpm.unix_socket(), server.fpm.docroot()),
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
        pids,
    })
}

/// Gateways to measure: a name for the table and a command template each, those that
/// exist beside this binary (or the one given).
fn gateway_commands(plan: &Plan) -> Vec<(String, String)> {
    if let Some(cmd) = &plan.gateway_cmd {
        let program = cmd.split_whitespace().next().unwrap_or_default();
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return vec![(name, cmd.clone())];
    }
    let dir: PathBuf = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut found = Vec::new();
    let fcgi = dir.join("fcgi");
    // `fcgi --help` answers any `--help`: the subcommand exists when its help names
    // `--listen`.
    if Command::new(&fcgi)
        .args(["serve", "--help"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--listen")
        })
    {
        let serve = format!(
            "{} serve --listen {{listen}} --root {{root}}",
            fcgi.display()
        );
        // As many connections as nginx keeps, and the default: fewer PHP processes
        // competing for the CPUs, requests waiting in the gateway instead.
        found.push((
            format!("fcgi serve, {CONNECTIONS} connections"),
            format!("{serve} --connections {{connections}} {{upstream}}"),
        ));
        found.push((
            "fcgi serve, 8 connections (its default)".to_string(),
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
        pids: vec![pid],
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the section; answers its Markdown (or a line saying why it was skipped).
pub(crate) fn run(plan: &Plan, server: &Server) -> String {
    let mut out = String::from("\n### HTTP gateway beside nginx (wrk, hello.php)\n\n");
    if Command::new("wrk").arg("--version").output().is_err() {
        out.push_str("Skipped: wrk not found (apt-get install -y wrk).\n");
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
    let mut samples: Vec<Vec<Wrk>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (s, running) in servers.iter().enumerate() {
            // Warm-up: fills the server's upstream pool.
            let _ = run_wrk(running.port, 1, &running.pids);
            if let Some(w) = run_wrk(running.port, plan.wrk_seconds, &running.pids) {
                eprintln!(
                    "round {}/{rounds} gateway {}: {:.0} req/s, p99 {:.2} ms, {:.1} us CPU/req",
                    round + 1,
                    running.name,
                    w.per_second,
                    w.p99_ms,
                    w.cpu_us
                );
                samples[s].push(w);
            }
        }
    }
    let _ = writeln!(
        out,
        "| server | requests/s | p50 latency | p99 latency | server CPU us/request |\n|---|---:|---:|---:|---:|"
    );
    for (running, samples) in servers.iter().zip(&samples) {
        if samples.is_empty() {
            let _ = writeln!(
                out,
                "| {} | no responses (wrk's output is in the log) | | | |",
                running.name
            );
            continue;
        }
        let of = |f: fn(&Wrk) -> f64| median(samples.iter().map(f).collect());
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} |",
            running.name,
            of(|w| w.per_second),
            of(|w| w.p50_ms),
            of(|w| w.p99_ms),
            of(|w| w.cpu_us),
        );
    }
    let _ = writeln!(
        out,
        "\n`wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{}s --latency`, medians of {rounds} interleaved runs, nothing pinned (wrk, php-fpm and the server share both CPUs). nginx: 2 worker processes; CPU is master + workers. Gateway: one process, all threads.",
        plan.wrk_seconds
    );
    out
}
