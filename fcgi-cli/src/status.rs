//! `fcgi status`: php-fpm's status page (`pm.status_path`), asked as `?json&full`,
//! printed as a table (or as it came, `--json`); with thresholds, a probe for health
//! checks (exit 0 healthy, 1 a threshold failed).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Duration;

use fcgi_blocking::{Client, Options, Request};
use fcgi_proto::{Address, ParamsBuilder};
use serde_json::Value;

use crate::args::{check_path, parse_timeout, utf8, UsageError};
use crate::{say, Failure, Output, EXIT_LOCAL, EXIT_USAGE, SOFTWARE};

const AFTER_HELP: &str = "\
The status page is php-fpm's pm.status_path, asked with ?json&full. The table
shows the pool (listen queue, processes active and idle, slow requests) and its
processes. With thresholds it is a probe: each that fails is named on standard
error. Exit status: 0 healthy, 1 a threshold failed (or no status page at
PATH), 2 usage error, 3 cannot connect, 4 timeout, 5 the server broke the
protocol.";

/// `fcgi status`'s command line, as clap reads it.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "fcgi status - php-fpm's status page as a table or JSON; with thresholds, a probe",
    override_usage = "fcgi status [OPTIONS] <ADDRESS>",
    after_help = AFTER_HELP
)]
pub(crate) struct StatusCli {
    /// the php-fpm pool: HOST:PORT, [V6]:PORT, unix:/path/to.sock, or a socket path
    /// that starts with / or ./
    #[arg(value_name = "ADDRESS")]
    address: Option<OsString>,
    /// the pool's pm.status_path (default /status)
    #[arg(long, value_name = "PATH")]
    path: Option<OsString>,
    /// print the status page's JSON as it came
    #[arg(long)]
    json: bool,
    /// one bound, in seconds, on connecting and the whole request
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    timeout: Option<OsString>,
    /// fail when more than N connections wait in the listen queue
    #[arg(long, value_name = "N", help_heading = "Thresholds")]
    max_listen_queue: Option<OsString>,
    /// fail when fewer than N processes are idle
    #[arg(long, value_name = "N", help_heading = "Thresholds")]
    min_idle: Option<OsString>,
    /// fail when more than P percent of the processes are active
    #[arg(long, value_name = "P", help_heading = "Thresholds")]
    max_active_percent: Option<OsString>,
    /// fail when more than N requests were slow (request_slowlog_timeout)
    #[arg(long, value_name = "N", help_heading = "Thresholds")]
    max_slow_requests: Option<OsString>,
}

/// `fcgi status`'s settings.
#[derive(Debug, PartialEq)]
pub(crate) struct StatusArgs {
    pub(crate) address: Address,
    pub(crate) path: String,
    pub(crate) json: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) thresholds: Thresholds,
}

/// The probe's bounds; `None` is unchecked.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Thresholds {
    pub(crate) max_listen_queue: Option<u64>,
    pub(crate) min_idle: Option<u64>,
    pub(crate) max_active_percent: Option<f64>,
    pub(crate) max_slow_requests: Option<u64>,
}

/// A whole number, 0 included.
fn parse_number(value: OsString, name: &str) -> Result<u64, UsageError> {
    let text = utf8(value, &format!("the value of {name}"))?;
    let trimmed = text.trim();
    trimmed
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| trimmed.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| format!("bad {name} {text:?}: want a whole number"))
}

impl StatusCli {
    /// The checks and defaults.
    pub(crate) fn check(self) -> Result<StatusArgs, UsageError> {
        let address = utf8(self.address.ok_or("missing ADDRESS")?, "ADDRESS")?;
        let address = address.parse::<Address>().map_err(|e| format!("{e}"))?;
        let path = match self.path {
            Some(p) => check_path("--path", utf8(p, "the --path")?)?,
            None => "/status".into(),
        };
        let number = |v: Option<OsString>, name: &str| v.map(|v| parse_number(v, name)).transpose();
        let max_active_percent = self
            .max_active_percent
            .map(|v| {
                let text = utf8(v, "the value of --max-active-percent")?;
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        format!(
                            "bad --max-active-percent {text:?}: want a percentage from 0 to 100"
                        )
                    })
            })
            .transpose()?;
        Ok(StatusArgs {
            address,
            path,
            json: self.json,
            timeout: self.timeout.map(parse_timeout).transpose()?,
            thresholds: Thresholds {
                max_listen_queue: number(self.max_listen_queue, "--max-listen-queue")?,
                min_idle: number(self.min_idle, "--min-idle")?,
                max_active_percent,
                max_slow_requests: number(self.max_slow_requests, "--max-slow-requests")?,
            },
        })
    }
}

/// Asks the status page, prints it, checks the thresholds; answers the exit status.
pub(crate) fn run(args: StatusArgs) -> Result<u8, Failure> {
    let mut options = Options::default();
    if let Some(t) = args.timeout {
        options.connect_timeout = Some(t);
        options.read_timeout = Some(t);
        options.write_timeout = Some(t);
        options.total_timeout = Some(t);
    }
    let mut client = Client::with_options(args.address.clone(), options);
    let uri = format!("{}?json&full", args.path);
    let params = ParamsBuilder::new("GET", &uri)
        .script(&args.path, &args.path)
        .server_software(SOFTWARE)
        .server_name("localhost")
        .param("REMOTE_ADDR", "127.0.0.1")
        .param("SERVER_PORT", "80")
        .build()
        .map_err(|e| Failure::new(EXIT_USAGE, format!("invalid request: {e}")))?;
    let response = client
        .request(Request::new(params))
        .map_err(Failure::client)?;
    let page: Option<Value> = (response.status == 200)
        .then(|| serde_json::from_slice(&response.body).ok())
        .flatten()
        .filter(|page: &Value| page.get("pool").is_some());
    let Some(page) = page else {
        return Err(Failure::new(
            EXIT_LOCAL,
            format!(
                "no php-fpm status page at {} {} (status {}, {} body bytes): is it the \
                 pool's pm.status_path?",
                args.address,
                args.path,
                response.status,
                response.body.len()
            ),
        ));
    };
    let text = if args.json {
        response.body.clone()
    } else {
        table(&page).into_bytes()
    };
    Output::stdout().write(&text)?;
    let failed = check(&page, &args.thresholds);
    for message in &failed {
        say(message);
    }
    Ok(if failed.is_empty() { 0 } else { EXIT_LOCAL })
}

fn number(page: &Value, name: &str) -> u64 {
    page.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// Active, idle and total processes. From the process list when there is one: each
/// process's state is read when the page is made, where the pool's own counters are
/// sampled by php-fpm's master once a second (and php-fpm 8.2 was seen reporting 32
/// active of 4). Slots of processes not started yet (pid 0) are not processes.
fn processes(page: &Value) -> (u64, u64, u64) {
    let Some(list) = page.get("processes").and_then(Value::as_array) else {
        return (
            number(page, "active processes"),
            number(page, "idle processes"),
            number(page, "total processes"),
        );
    };
    let started = || list.iter().filter(|p| number(p, "pid") > 0);
    let idle = started()
        .filter(|p| p.get("state").and_then(Value::as_str) == Some("Idle"))
        .count() as u64;
    let total = started().count() as u64;
    (total - idle, idle, total)
}

/// The thresholds that fail, as messages.
fn check(page: &Value, t: &Thresholds) -> Vec<String> {
    let mut failed = Vec::new();
    let queue = number(page, "listen queue");
    if let Some(max) = t.max_listen_queue.filter(|&max| queue > max) {
        failed.push(format!(
            "listen queue {queue} is above --max-listen-queue {max}"
        ));
    }
    let (active, idle, total) = processes(page);
    if let Some(min) = t.min_idle.filter(|&min| idle < min) {
        failed.push(format!("idle processes {idle} are below --min-idle {min}"));
    }
    let percent = if total == 0 {
        0.0
    } else {
        active as f64 * 100.0 / total as f64
    };
    if let Some(max) = t.max_active_percent.filter(|&max| percent > max) {
        failed.push(format!(
            "active processes {active} of {total} ({percent:.0}%) are above \
             --max-active-percent {max}"
        ));
    }
    let slow = number(page, "slow requests");
    if let Some(max) = t.max_slow_requests.filter(|&max| slow > max) {
        failed.push(format!(
            "slow requests {slow} are above --max-slow-requests {max}"
        ));
    }
    failed
}

/// A JSON value as a table cell.
fn cell(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(v) => v.to_string(),
    }
}

/// The pool, one `name: value` line each, then the processes, one row each.
fn table(page: &Value) -> String {
    let mut out = String::new();
    let get = |name: &str| cell(page.get(name));
    let _ = writeln!(out, "pool:             {}", get("pool"));
    let _ = writeln!(out, "process manager:  {}", get("process manager"));
    let _ = writeln!(out, "start since:      {} s", get("start since"));
    let _ = writeln!(out, "accepted conn:    {}", get("accepted conn"));
    let _ = writeln!(
        out,
        "listen queue:     {} (max {}, length {})",
        get("listen queue"),
        get("max listen queue"),
        get("listen queue len")
    );
    let (active, idle, total) = processes(page);
    let _ = writeln!(
        out,
        "processes:        {active} active, {idle} idle, {total} total (max children reached {})",
        get("max children reached")
    );
    let _ = writeln!(out, "slow requests:    {}", get("slow requests"));
    let Some(processes) = page.get("processes").and_then(Value::as_array) else {
        return out;
    };
    let header = [
        "pid",
        "state",
        "requests",
        "duration ms",
        "method",
        "uri",
        "script",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for p in processes.iter().filter(|p| number(p, "pid") > 0) {
        let duration = p
            .get("request duration")
            .and_then(Value::as_u64)
            .map_or("-".into(), |us| format!("{:.1}", us as f64 / 1000.0));
        rows.push(vec![
            cell(p.get("pid")),
            cell(p.get("state")),
            cell(p.get("requests")),
            duration,
            cell(p.get("request method")),
            cell(p.get("request uri")),
            cell(p.get("script")),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    out.push('\n');
    for row in rows {
        let mut line = String::new();
        for (i, value) in row.iter().enumerate() {
            let _ = write!(line, "{value:<width$}  ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page with one process: the status request itself.
    fn page() -> Value {
        serde_json::json!({
            "pool": "www", "process manager": "static", "start since": 5,
            "accepted conn": 9, "listen queue": 2, "max listen queue": 3,
            "listen queue len": 4096, "idle processes": 1, "active processes": 3,
            "total processes": 4, "max active processes": 4, "max children reached": 0,
            "slow requests": 1,
            "processes": [{"pid": 12, "state": "Running", "requests": 3,
                "request duration": 1500, "request method": "GET",
                "request uri": "/status?json&full", "script": "-"},
                {"pid": 0, "state": "(null)"}]
        })
    }

    /// The same pool with three processes running and one idle.
    fn busy_page() -> Value {
        let mut page = page();
        let process = |state: &str| serde_json::json!({"pid": 20, "state": state});
        page["processes"] = serde_json::json!([
            process("Running"),
            process("Running"),
            process("Reading headers"),
            process("Idle"),
            {"pid": 0, "state": "(null)"},
        ]);
        page
    }

    #[test]
    fn thresholds() {
        let page = busy_page();
        assert!(check(&page, &Thresholds::default()).is_empty());
        let pass = Thresholds {
            max_listen_queue: Some(2),
            min_idle: Some(1),
            max_active_percent: Some(75.0),
            max_slow_requests: Some(1),
        };
        assert!(check(&page, &pass).is_empty(), "{:?}", check(&page, &pass));
        let fail = Thresholds {
            max_listen_queue: Some(1),
            min_idle: Some(2),
            max_active_percent: Some(74.0),
            max_slow_requests: Some(0),
        };
        assert_eq!(
            check(&page, &fail),
            [
                "listen queue 2 is above --max-listen-queue 1",
                "idle processes 1 are below --min-idle 2",
                "active processes 3 of 4 (75%) are above --max-active-percent 74",
                "slow requests 1 are above --max-slow-requests 0",
            ]
        );
    }

    #[test]
    fn table_lines() {
        assert_eq!(
            table(&page()),
            "pool:             www\n\
             process manager:  static\n\
             start since:      5 s\n\
             accepted conn:    9\n\
             listen queue:     2 (max 3, length 4096)\n\
             processes:        1 active, 0 idle, 1 total (max children reached 0)\n\
             slow requests:    1\n\
             \n\
             pid  state    requests  duration ms  method  uri                script\n\
             12   Running  3         1.5          GET     /status?json&full  -\n"
        );
    }
}
