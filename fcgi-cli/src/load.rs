//! Load mode (`-n`, `-c`): sends the same request many times, some at once, over the
//! shared pooled client of `fcgi-tokio`; checks every response and sums them up.
//!
//! `-c` tasks on one thread (a current-thread runtime: the client's work is small, and
//! on a small machine the CPUs are better left to the server) take requests from one
//! counter until `-n` are done or `--duration` is over. Closed loop (the default), a
//! task sends its next request when the last one is answered. Open loop (`--rate R`),
//! request `i` is due `i / R` seconds after the start: a task waits for that moment
//! and the latency counts from it, so requests held up behind a slow one count the
//! wait they would have had from a client that kept sending (the wrk2 correction of
//! coordinated omission). Latencies go to one HDR histogram (bounded memory, 3
//! significant digits); each task keeps its own tally of the rest (statuses, errors by
//! kind), merged at the end. A progress line goes to standard error when it is a
//! terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_proto::Params;
use fcgi_tokio::{Client, Error, Options, Request};
use hdrhistogram::Histogram;
use sha2::{Digest, Sha256};

use crate::args::{decode_sha256, Args, Data, Load, Mode, Stop};
use crate::{
    build_params, error_chain, say, split_script, Failure, Output, Target, EXIT_CONNECT, EXIT_FAIL,
    EXIT_LOCAL, EXIT_SERVER, EXIT_TIMEOUT, EXIT_USAGE,
};

/// The response header that names a sha256 to check the body against (the testkit's
/// echo.php reports the sha256 of the body it received).
const SHA256_HEADER: &str = "X-Body-Sha256";

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Most bytes of the first FCGI_STDERR shown at the end.
const STDERR_SHOWN: usize = 300;

/// Why a request counts as an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The connection could not be opened.
    Connect,
    /// A timeout: `--timeout`, or one of the client's own bounds.
    Timeout,
    /// The server broke the protocol or closed early; a malformed head; an I/O error.
    Protocol,
    /// `END_REQUEST` with overloaded, cannot multiplex or unknown role.
    Refused,
    /// `--fail` and a status of 400 or more.
    BadStatus,
    /// The body does not match `--expect-sha256` or its `X-Body-Sha256` header.
    Checksum,
    /// Anything else (the request body, ...).
    Other,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Connect,
        Kind::Timeout,
        Kind::Protocol,
        Kind::Refused,
        Kind::BadStatus,
        Kind::Checksum,
        Kind::Other,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Timeout => "timeout",
            Kind::Protocol => "protocol",
            Kind::Refused => "refused",
            Kind::BadStatus => "bad status",
            Kind::Checksum => "checksum",
            Kind::Other => "other",
        }
    }

    /// The exit status a single request failing this way gives.
    fn exit_code(self) -> u8 {
        match self {
            Kind::Connect => EXIT_CONNECT,
            Kind::Timeout => EXIT_TIMEOUT,
            Kind::Protocol | Kind::Refused => EXIT_SERVER,
            Kind::BadStatus => EXIT_FAIL,
            Kind::Checksum | Kind::Other => EXIT_LOCAL,
        }
    }

    fn of(error: &Error) -> Kind {
        match error {
            Error::Connect { .. } => Kind::Connect,
            Error::Timeout { .. } => Kind::Timeout,
            Error::Io { .. }
            | Error::Protocol { .. }
            | Error::BadResponse { .. }
            | Error::Limit { .. }
            | Error::ConnectionLimit { .. } => Kind::Protocol,
            Error::Refused { .. } => Kind::Refused,
            _ => Kind::Other,
        }
    }
}

/// What every request is: built once, cloned for each.
struct Plan {
    params: Params,
    body: Option<Bytes>,
    /// The sha256 of the body sent, with `-d`.
    sent_sha256: Option<[u8; 32]>,
    expect_sha256: Option<[u8; 32]>,
    fail: bool,
    timeout: Option<Duration>,
    stop: Stop,
    /// `--rate`: requests per second, open loop.
    rate: Option<f64>,
}

impl Plan {
    /// When request `index` (from 0) is due, or `None` when the run has no such
    /// request: closed loop, now; open loop, `index / rate` after `started`.
    fn due(&self, index: u64, started: Instant) -> Option<Instant> {
        let due = match self.rate {
            Some(rate) => started + Duration::from_secs_f64(index as f64 / rate),
            None => Instant::now(),
        };
        match self.stop {
            Stop::Requests(n) => (index < n).then_some(due),
            Stop::Duration(d) => (due < started + d).then_some(due),
        }
    }
}

/// Latencies, in microseconds: 1 us to an hour, 3 significant digits (about 190 KB,
/// whatever the number of requests).
type Latencies = Histogram<u64>;

fn latencies() -> Latencies {
    // Constant, valid bounds: 1 <= low, high >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What one request gave.
#[derive(Default)]
struct Outcome {
    status: Option<u16>,
    bytes: u64,
    /// The `X-Body-Sha256` header.
    header_sha256: Option<Vec<u8>>,
    /// The body's sha256, when there is something to check it against.
    digest: Option<[u8; 32]>,
    stderr: Vec<u8>,
}

/// Counters the progress line reads while the tasks run.
#[derive(Default)]
struct Progress {
    /// The next request to take.
    next: AtomicU64,
    /// Requests taken by a task (open loop: some still waiting for their moment).
    taken: AtomicU64,
    /// Requests sent (or being sent).
    sent: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

/// One task's results, and, merged, the run's.
#[derive(Default)]
struct Tally {
    /// Requests done (answered or failed).
    requests: u64,
    bytes: u64,
    statuses: BTreeMap<u16, u64>,
    errors: [u64; Kind::ALL.len()],
    /// The message of the first error of each kind.
    first_errors: [Option<String>; Kind::ALL.len()],
    /// Responses that came with FCGI_STDERR, and the first such text.
    stderr_responses: u64,
    first_stderr: Option<Vec<u8>>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for kind in Kind::ALL {
            let i = kind.index();
            self.errors[i] += other.errors[i];
            if self.first_errors[i].is_none() {
                self.first_errors[i] = other.first_errors[i].clone();
            }
        }
        self.stderr_responses += other.stderr_responses;
        if self.first_stderr.is_none() {
            self.first_stderr = other.first_stderr;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    fn record_error(&mut self, kind: Kind, message: impl FnOnce() -> String) {
        self.errors[kind.index()] += 1;
        let first = &mut self.first_errors[kind.index()];
        if first.is_none() {
            *first = Some(message());
        }
    }

    /// The exit status: 0 without errors; the status a single request would give when
    /// every error gives the same one; else 1.
    fn exit_code(&self) -> u8 {
        let mut codes = Kind::ALL
            .iter()
            .filter(|kind| self.errors[kind.index()] > 0)
            .map(|kind| kind.exit_code());
        match codes.next() {
            None => 0,
            Some(first) if codes.all(|code| code == first) => first,
            Some(_) => EXIT_LOCAL,
        }
    }
}

/// Runs load mode.
pub(crate) fn run(args: &Args, load: &Load) -> Result<u8, Failure> {
    let Mode::Request { script_filename } = &args.mode else {
        return Err(Failure::new(
            EXIT_USAGE,
            "load mode sends requests for a SCRIPT_FILENAME",
        ));
    };
    let (script_name, document_root) = split_script(script_filename);
    let target = Target {
        script_filename,
        script_name: &script_name,
        document_root: document_root.as_deref(),
    };
    let params = build_params(args, &target)?;
    let body = read_body(args.data.as_ref())?;
    let plan = Plan {
        params,
        sent_sha256: body.as_ref().map(|b| Sha256::digest(b).into()),
        body,
        expect_sha256: load.expect_sha256,
        fail: args.fail,
        timeout: args.timeout,
        stop: load.stop,
        rate: load.rate,
    };

    let mut options = Options::default();
    if let Some(t) = args.timeout {
        options.connect_timeout = Some(t);
        options.read_timeout = Some(t);
        options.write_timeout = Some(t);
        options.total_timeout = Some(t);
    }
    options.max_connections = load.connections;
    options.max_idle = load.connections;
    options.multiplex = load.multiplex;
    options.config.max_stderr_bytes = usize::MAX;
    let client = Client::with_upstreams([args.address.clone()], options)
        .map_err(|e| Failure::new(EXIT_USAGE, error_chain(&e)))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_LOCAL, format!("cannot start the runtime: {e}")))?;
    let (tally, latencies, elapsed) = runtime.block_on(async {
        // Before the clock starts: whether the server multiplexes decides how every
        // request of the run is sent (requests do not wait for the answer on their own).
        client.discover_multiplexing().await;
        drive(&client, Arc::new(plan), load).await
    });
    let summary = Summary {
        concurrency: load.concurrency,
        connections: load.connections,
        opened: client.connections_opened(),
        multiplexed: load.multiplex.then(|| client.upstream_multiplexes(0)),
        rate: load.rate,
        elapsed,
        latencies,
        tally,
    };
    let text = if load.json {
        summary.json()
    } else {
        summary.text()
    };
    Output::stdout().write(text.as_bytes())?;
    summary.explain();
    Ok(summary.tally.exit_code())
}

/// The `-d` body, read once into memory.
fn read_body(data: Option<&Data>) -> Result<Option<Bytes>, Failure> {
    let cannot = |what: &dyn std::fmt::Display, e: io::Error| {
        Failure::new(EXIT_LOCAL, format!("cannot read {what}: {e}"))
    };
    Ok(Some(match data {
        None => return Ok(None),
        Some(Data::Literal(bytes)) => Bytes::from(bytes.clone()),
        Some(Data::File(path)) => fs::read(path)
            .map_err(|e| cannot(&path.display(), e))?
            .into(),
        Some(Data::Stdin) => {
            let mut body = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut body)
                .map_err(|e| cannot(&"standard input", e))?;
            body.into()
        }
    }))
}

/// Runs the tasks (and the progress line); answers the merged tally, the latencies and
/// the time taken.
async fn drive(client: &Client, plan: Arc<Plan>, load: &Load) -> (Tally, Latencies, Duration) {
    let progress = Arc::new(Progress::default());
    let histogram = Arc::new(Mutex::new(latencies()));
    let started = Instant::now();
    let ticker = io::stderr().is_terminal().then(|| {
        let progress = progress.clone();
        let total = plan.stop;
        tokio::spawn(async move {
            let first = tokio::time::Instant::now() + PROGRESS_EVERY;
            let mut tick = tokio::time::interval_at(first, PROGRESS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let line = progress_line(
                    progress.done.load(Ordering::Relaxed),
                    total,
                    progress.failed.load(Ordering::Relaxed),
                    started.elapsed(),
                );
                let _ = write!(io::stderr(), "\r{line}\x1b[K");
            }
        })
    });
    let workers = match plan.stop {
        Stop::Requests(n) => (load.concurrency as u64).min(n),
        Stop::Duration(_) => load.concurrency as u64,
    };
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(worker(
                client.clone(),
                plan.clone(),
                progress.clone(),
                histogram.clone(),
                started,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(part) => tally.merge(part),
            // A task that panicked: its requests are lost, not counted; say so.
            Err(e) => say(&format!("a load task failed: {e}")),
        }
    }
    let elapsed = started.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
        let _ = ticker.await;
        let _ = write!(io::stderr(), "\r\x1b[K");
    }
    let latencies = std::mem::replace(
        &mut *histogram
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        latencies(),
    );
    (tally, latencies, elapsed)
}

/// One of the `-c` tasks: takes requests until the run has no more.
async fn worker(
    client: Client,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
    histogram: Arc<Mutex<Latencies>>,
    run_started: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while let Some(due) = plan.due(progress.next.fetch_add(1, Ordering::Relaxed), run_started) {
        progress.taken.fetch_add(1, Ordering::SeqCst);
        // Open loop: the request waits for its moment, and its latency counts from it.
        if plan.rate.is_some() {
            tokio::time::sleep_until(due.into()).await;
        }
        progress.sent.fetch_add(1, Ordering::SeqCst);
        let started = due;
        tally.requests += 1;
        let mut outcome = Outcome::default();
        let result = match plan.timeout {
            Some(t) => tokio::time::timeout(t, exchange(&client, &plan, &mut outcome))
                .await
                .unwrap_or(Err(Failed::TimedOut(t))),
            None => exchange(&client, &plan, &mut outcome).await,
        };
        let took = started.elapsed();
        let errors_before = tally.error_count();
        tally.bytes += outcome.bytes;
        if let Some(status) = outcome.status {
            *tally.statuses.entry(status).or_default() += 1;
        }
        match result {
            Ok(()) => {
                let micros = took.as_micros().try_into().unwrap_or(u64::MAX);
                histogram
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .saturating_record(micros.max(1));
                if let Some((kind, message)) = check(&plan, &outcome) {
                    tally.record_error(kind, || message);
                }
            }
            Err(Failed::Client(e)) => tally.record_error(Kind::of(&e), || error_chain(&e)),
            Err(Failed::TimedOut(t)) => tally.record_error(Kind::Timeout, || {
                format!("timed out after {:.3}s (--timeout)", t.as_secs_f64())
            }),
        }
        if !outcome.stderr.is_empty() {
            tally.stderr_responses += 1;
            if tally.first_stderr.is_none() {
                tally.first_stderr = Some(outcome.stderr);
            }
        }
        if tally.error_count() > errors_before {
            progress.failed.fetch_add(1, Ordering::Relaxed);
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
    }
    // Out of work, and every request taken has been sent: idle kept connections would
    // pin php-fpm workers that requests still queued behind them (more connections than
    // free workers) are waiting for. (Open loop, a request taken may still wait for its
    // moment, and will want a kept connection: then the task that sends the last one
    // closes them.)
    if progress.sent.load(Ordering::SeqCst) == progress.taken.load(Ordering::SeqCst) {
        client.close_idle();
    }
    tally
}

/// Why a request got no whole response.
enum Failed {
    Client(Error),
    /// `--timeout` ran out.
    TimedOut(Duration),
}

/// Sends one request and reads its whole response into `outcome` (the body only
/// counted, and hashed when there is something to check it against).
async fn exchange(client: &Client, plan: &Plan, outcome: &mut Outcome) -> Result<(), Failed> {
    let mut request = Request::new(plan.params.clone());
    if let Some(body) = &plan.body {
        request = request.body(body.clone());
    }
    let mut stream = client
        .request_streaming(request)
        .await
        .map_err(Failed::Client)?;
    outcome.status = Some(stream.status());
    outcome.header_sha256 = stream.head().get(SHA256_HEADER).map(<[u8]>::to_vec);
    let mut hasher =
        (outcome.header_sha256.is_some() || plan.expect_sha256.is_some()).then(Sha256::new);
    while let Some(chunk) = stream.chunk().await.map_err(Failed::Client)? {
        outcome.bytes += chunk.len() as u64;
        if let Some(hasher) = &mut hasher {
            hasher.update(&chunk);
        }
    }
    outcome.stderr = stream.take_stderr();
    outcome.digest = hasher.map(|h| h.finalize().into());
    Ok(())
}

/// The checks of a whole response: `--fail`, then the checksums. Answers the first
/// that fails.
fn check(plan: &Plan, outcome: &Outcome) -> Option<(Kind, String)> {
    let status = outcome.status.unwrap_or(200);
    if plan.fail && status >= 400 {
        let reason = crate::reason::phrase(status)
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        return Some((
            Kind::BadStatus,
            format!("the server answered {status}{reason}"),
        ));
    }
    let digest = outcome.digest.unwrap_or_default();
    if let Some(expected) = plan.expect_sha256 {
        if digest != expected {
            return Some((
                Kind::Checksum,
                format!(
                    "the body's sha256 is {}, not {} (--expect-sha256)",
                    hex(&digest),
                    hex(&expected)
                ),
            ));
        }
    }
    if let Some(header) = &outcome.header_sha256 {
        let Some(named) = decode_sha256(header.trim_ascii()) else {
            return Some((
                Kind::Checksum,
                format!(
                    "the {SHA256_HEADER} header {:?} is not 64 hex digits",
                    String::from_utf8_lossy(header)
                ),
            ));
        };
        if let Some(sent) = plan.sent_sha256 {
            if named != sent {
                return Some((
                    Kind::Checksum,
                    format!(
                        "{SHA256_HEADER} is {}, not the sha256 of the body sent, {}",
                        hex(&named),
                        hex(&sent)
                    ),
                ));
            }
        }
        if digest != named {
            return Some((
                Kind::Checksum,
                format!(
                    "the body's sha256 is {}, not its {SHA256_HEADER} {}",
                    hex(&digest),
                    hex(&named)
                ),
            ));
        }
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The progress line: `fcgi: 1200/10000 requests, 0 errors, 5123 requests/s, 0.2 s`
/// (with `--duration`: `fcgi: 1200 requests, ..., 0.2/30 s`).
fn progress_line(done: u64, total: Stop, failed: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    match total {
        Stop::Requests(total) => format!(
            "fcgi: {done}/{total} requests, {failed} errors, {rate:.0} requests/s, {secs:.1} s"
        ),
        Stop::Duration(d) => format!(
            "fcgi: {done} requests, {failed} errors, {rate:.0} requests/s, {secs:.1}/{} s",
            d.as_secs_f64()
        ),
    }
}

/// Microseconds as `1.234 ms`.
fn millis(micros: u64) -> String {
    format!("{:.3} ms", micros as f64 / 1e3)
}

/// The quantiles of the latency line, with their names.
const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];

/// What the run gave, for standard output and standard error.
struct Summary {
    concurrency: usize,
    connections: usize,
    opened: u64,
    /// With `--multiplex`: whether the server multiplexes (`None`: it never said).
    multiplexed: Option<Option<bool>>,
    /// `--rate`.
    rate: Option<f64>,
    elapsed: Duration,
    latencies: Latencies,
    tally: Tally,
}

impl Summary {
    fn per_sec(&self, n: f64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            n / secs
        } else {
            0.0
        }
    }

    /// The latency at quantile `q`, in microseconds (`max` exactly).
    fn quantile(&self, q: f64) -> u64 {
        if q >= 1.0 {
            self.latencies.max()
        } else {
            self.latencies.value_at_quantile(q)
        }
    }

    fn multiplexed_text(&self) -> &'static str {
        match self.multiplexed {
            None => "",
            Some(Some(true)) => "multiplexed",
            Some(Some(false)) => "not multiplexed (the server does not offer it)",
            Some(None) => "not multiplexed (no answer to GET_VALUES)",
        }
    }

    /// The summary for standard output.
    fn text(&self) -> String {
        let requests = self.tally.requests;
        let mut out = String::new();
        let _ = write!(
            out,
            "requests:     {requests} in {:.3} s, {} in flight",
            self.elapsed.as_secs_f64(),
            (self.concurrency as u64).min(requests)
        );
        if let Some(rate) = self.rate {
            let _ = write!(out, " at most, {rate} due per second");
        }
        out.push('\n');
        let _ = writeln!(out, "requests/s:   {:.1}", self.per_sec(requests as f64));
        if self.latencies.is_empty() {
            let _ = writeln!(out, "latency:      none (no response arrived whole)");
        } else {
            let parts: Vec<String> = QUANTILES
                .iter()
                .map(|(name, q)| format!("{name} {}", millis(self.quantile(*q))))
                .collect();
            let _ = writeln!(out, "latency:      {}", parts.join(", "));
        }
        let _ = writeln!(
            out,
            "received:     {} body bytes ({:.2} MB/s)",
            self.tally.bytes,
            self.per_sec(self.tally.bytes as f64) / 1e6
        );
        let statuses: Vec<String> = self
            .tally
            .statuses
            .iter()
            .map(|(status, count)| format!("{status} x {count}"))
            .collect();
        let _ = writeln!(
            out,
            "statuses:     {}",
            if statuses.is_empty() {
                "none".to_owned()
            } else {
                statuses.join(", ")
            }
        );
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .filter(|kind| self.tally.errors[kind.index()] > 0)
            .map(|kind| format!("{} {}", kind.name(), self.tally.errors[kind.index()]))
            .collect();
        let errors = self.tally.error_count();
        if kinds.is_empty() {
            let _ = writeln!(out, "errors:       0");
        } else {
            let _ = writeln!(out, "errors:       {errors} ({})", kinds.join(", "));
        }
        let multiplexed = match self.multiplexed_text() {
            "" => String::new(),
            text => format!(", {text}"),
        };
        let _ = writeln!(
            out,
            "connections:  {} opened, at most {}{multiplexed}",
            self.opened, self.connections
        );
        out
    }

    /// The summary as one JSON object (`--json`), on one line; latencies in
    /// milliseconds, `null` when no response arrived whole.
    fn json(&self) -> String {
        use serde_json::{json, Map, Value};
        let requests = self.tally.requests;
        let latency = (!self.latencies.is_empty()).then(|| {
            QUANTILES
                .iter()
                .map(|(name, q)| (name.to_string(), json!(self.quantile(*q) as f64 / 1e3)))
                .collect::<Map<String, Value>>()
        });
        let statuses: Map<String, Value> = self
            .tally
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), json!(count)))
            .collect();
        let errors: Map<String, Value> = Kind::ALL
            .iter()
            .map(|kind| {
                (
                    kind.name().to_string(),
                    json!(self.tally.errors[kind.index()]),
                )
            })
            .collect();
        let value = json!({
            "requests": requests,
            "seconds": self.elapsed.as_secs_f64(),
            "in_flight": (self.concurrency as u64).min(requests),
            "rate": self.rate,
            "requests_per_second": self.per_sec(requests as f64),
            "latency_ms": latency,
            "received_bytes": self.tally.bytes,
            "statuses": statuses,
            "errors": self.tally.error_count(),
            "errors_by_kind": errors,
            "connections_opened": self.opened,
            "connections_max": self.connections,
            "multiplexed": self.multiplexed.map(|m| m.unwrap_or(false)),
        });
        format!("{value}\n")
    }

    /// On standard error: the first message of each kind of error, and the first
    /// FCGI_STDERR.
    fn explain(&self) {
        for kind in Kind::ALL {
            if let Some(message) = &self.tally.first_errors[kind.index()] {
                let count = self.tally.errors[kind.index()];
                say(&format!(
                    "{count} {} error{}, the first: {message}",
                    kind.name(),
                    if count == 1 { "" } else { "s" }
                ));
            }
        }
        if let Some(stderr) = &self.tally.first_stderr {
            let shown = String::from_utf8_lossy(&stderr[..stderr.len().min(STDERR_SHOWN)]);
            let more = if stderr.len() > STDERR_SHOWN {
                "..."
            } else {
                ""
            };
            say(&format!(
                "{} response{} came with FCGI_STDERR, the first: {}{more}",
                self.tally.stderr_responses,
                if self.tally.stderr_responses == 1 {
                    ""
                } else {
                    "s"
                },
                shown.trim_end()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_loop_schedules() {
        let mut plan = plan(None, None, false);
        let start = Instant::now();
        plan.stop = Stop::Requests(3);
        assert!(plan.due(2, start).is_some() && plan.due(3, start).is_none());
        plan.rate = Some(100.0);
        assert_eq!(plan.due(0, start), Some(start));
        assert_eq!(plan.due(2, start), Some(start + Duration::from_millis(20)));
        plan.stop = Stop::Duration(Duration::from_secs(1));
        assert!(plan.due(99, start).is_some() && plan.due(100, start).is_none());
    }

    #[test]
    fn exit_codes() {
        let mut tally = Tally::default();
        assert_eq!(tally.exit_code(), 0);
        tally.record_error(Kind::Connect, String::new);
        assert_eq!(tally.exit_code(), EXIT_CONNECT);
        tally.record_error(Kind::Connect, String::new);
        assert_eq!(tally.exit_code(), EXIT_CONNECT);
        tally.record_error(Kind::Timeout, String::new);
        assert_eq!(tally.exit_code(), EXIT_LOCAL);

        let mut tally = Tally::default();
        tally.record_error(Kind::Protocol, String::new);
        tally.record_error(Kind::Refused, String::new);
        assert_eq!(tally.exit_code(), EXIT_SERVER);
        let mut tally = Tally::default();
        tally.record_error(Kind::BadStatus, String::new);
        assert_eq!(tally.exit_code(), EXIT_FAIL);
        let mut tally = Tally::default();
        tally.record_error(Kind::Checksum, String::new);
        assert_eq!(tally.exit_code(), EXIT_LOCAL);
    }

    #[test]
    fn merge_keeps_the_first_messages() {
        let mut a = Tally::default();
        a.record_error(Kind::Timeout, || "a".into());
        let mut b = Tally::default();
        b.record_error(Kind::Timeout, || "b".into());
        b.record_error(Kind::Connect, || "c".into());
        b.statuses.insert(200, 3);
        b.requests = 4;
        a.merge(b);
        assert_eq!(a.requests, 4);
        assert_eq!(a.errors[Kind::Timeout.index()], 2);
        assert_eq!(a.first_errors[Kind::Timeout.index()].as_deref(), Some("a"));
        assert_eq!(a.first_errors[Kind::Connect.index()].as_deref(), Some("c"));
        assert_eq!(a.statuses[&200], 3);
    }

    fn plan(expect: Option<[u8; 32]>, sent: Option<&[u8]>, fail: bool) -> Plan {
        Plan {
            params: Params::default(),
            body: sent.map(Bytes::copy_from_slice),
            sent_sha256: sent.map(|b| Sha256::digest(b).into()),
            expect_sha256: expect,
            fail,
            timeout: None,
            stop: Stop::Requests(1),
            rate: None,
        }
    }

    fn whole(status: u16, body: &[u8], header: Option<&str>) -> Outcome {
        Outcome {
            status: Some(status),
            bytes: body.len() as u64,
            header_sha256: header.map(|h| h.as_bytes().to_vec()),
            digest: Some(Sha256::digest(body).into()),
            stderr: Vec::new(),
        }
    }

    #[test]
    fn checks() {
        let sum = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        let kind = |p: &Plan, o: &Outcome| check(p, o).map(|(k, _)| k);
        // Without --fail a status is no error; with it, 400 and above are.
        assert_eq!(kind(&plan(None, None, false), &whole(500, b"", None)), None);
        assert_eq!(
            kind(&plan(None, None, true), &whole(500, b"", None)),
            Some(Kind::BadStatus)
        );
        assert_eq!(kind(&plan(None, None, true), &whole(399, b"", None)), None);
        // --expect-sha256.
        assert_eq!(
            kind(&plan(Some(sum(b"x")), None, false), &whole(200, b"x", None)),
            None
        );
        assert_eq!(
            kind(&plan(Some(sum(b"y")), None, false), &whole(200, b"x", None)),
            Some(Kind::Checksum)
        );
        // X-Body-Sha256: the body must hash to it, and with -d it must be the body sent.
        let x = hex(&sum(b"x"));
        let upper = x.to_ascii_uppercase();
        assert_eq!(
            kind(&plan(None, None, false), &whole(200, b"x", Some(&x))),
            None
        );
        assert_eq!(
            kind(
                &plan(None, Some(b"x"), false),
                &whole(200, b"x", Some(&upper))
            ),
            None
        );
        assert_eq!(
            kind(&plan(None, Some(b"y"), false), &whole(200, b"x", Some(&x))),
            Some(Kind::Checksum)
        );
        assert_eq!(
            kind(&plan(None, None, false), &whole(200, b"z", Some(&x))),
            Some(Kind::Checksum)
        );
        assert_eq!(
            kind(&plan(None, None, false), &whole(200, b"x", Some("nothex"))),
            Some(Kind::Checksum)
        );
    }

    /// A summary; latencies below 2048 us are kept exactly at 3 significant digits.
    fn summary(latencies_us: &[u64]) -> Summary {
        let mut tally = Tally {
            requests: 3,
            bytes: 39,
            statuses: BTreeMap::from([(200, 2), (500, 1)]),
            ..Tally::default()
        };
        tally.record_error(Kind::BadStatus, String::new);
        let mut histogram = latencies();
        for us in latencies_us {
            histogram.record(*us).unwrap();
        }
        Summary {
            concurrency: 8,
            connections: 8,
            opened: 2,
            multiplexed: None,
            rate: None,
            elapsed: Duration::from_millis(500),
            latencies: histogram,
            tally,
        }
    }

    #[test]
    fn summary_lines() {
        assert_eq!(
            summary(&[1000, 1500, 2000]).text(),
            "requests:     3 in 0.500 s, 3 in flight\n\
             requests/s:   6.0\n\
             latency:      p50 1.500 ms, p90 2.000 ms, p99 2.000 ms, p99.9 2.000 ms, max 2.000 ms\n\
             received:     39 body bytes (0.00 MB/s)\n\
             statuses:     200 x 2, 500 x 1\n\
             errors:       1 (bad status 1)\n\
             connections:  2 opened, at most 8\n"
        );
        assert!(summary(&[])
            .text()
            .contains("\nlatency:      none (no response arrived whole)\n"));
        assert_eq!(
            progress_line(5, Stop::Requests(10), 1, Duration::from_secs(2)),
            "fcgi: 5/10 requests, 1 errors, 2 requests/s, 2.0 s"
        );
        assert_eq!(
            progress_line(
                5,
                Stop::Duration(Duration::from_secs(30)),
                1,
                Duration::from_secs(2)
            ),
            "fcgi: 5 requests, 1 errors, 2 requests/s, 2.0/30 s"
        );
    }

    #[test]
    fn summary_json() {
        let json: serde_json::Value =
            serde_json::from_str(&summary(&[1000, 1500, 2000]).json()).unwrap();
        assert_eq!(json["requests"], 3);
        assert_eq!(json["latency_ms"]["p50"], 1.5);
        assert_eq!(json["latency_ms"]["max"], 2.0);
        assert_eq!(json["statuses"]["500"], 1);
        assert_eq!(json["errors_by_kind"]["bad status"], 1);
        assert_eq!(json["connections_opened"], 2);
        let json: serde_json::Value = serde_json::from_str(&summary(&[]).json()).unwrap();
        assert!(json["latency_ms"].is_null());
    }
}
