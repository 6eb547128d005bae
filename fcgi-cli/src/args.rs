//! The command line, declared with clap's derive API: the options, their help, the
//! subcommands (`serve`, `status`, `completions`, `man`), and from the same definition
//! the completion scripts and the man page.
//!
//! clap reads the words (clusters `-iXPUT`, `--name=value`, `--`); the values are kept as
//! raw `OsString`s and checked here, so that the messages and the exit status of a bad
//! value stay what they were, and so that `-d`, file names, `-o` and the values of `-H`
//! and `-p` may be any bytes on unix. A single-value option given twice keeps the last
//! (`args_override_self`); `-H` and `-p` repeat; `-d` may be given once.
//!
//! `-n`, `-c`, `--duration` or `--rate` turns on load mode ([`Load`]);
//! `--connections`, `--multiplex`, `--expect-sha256` and `--json` belong to it alone.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use fcgi_blocking::Address;

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print this text (help, version, completions, man page) to standard output.
    Print(Vec<u8>),
    /// Talk to a server.
    Run(Box<Args>),
    /// `fcgi serve`: an HTTP gateway in front of the server.
    Serve(Box<crate::serve::ServeArgs>),
    /// `fcgi status`: php-fpm's status page, and a probe.
    Status(crate::status::StatusArgs),
}

/// What to do with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A request for SCRIPT_FILENAME.
    Request {
        /// The script's path on the server.
        script_filename: String,
    },
    /// `GET_VALUES`.
    Values,
    /// php-fpm's ping: a request for this path.
    Ping(String),
}

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// `-d TEXT`.
    Literal(Vec<u8>),
    /// `-d @FILE`.
    File(PathBuf),
    /// `-d @-`.
    Stdin,
}

/// A parsed command line that talks to a server.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) address: Address,
    pub(crate) mode: Mode,
    pub(crate) method: Option<String>,
    pub(crate) query: Option<String>,
    /// Header names and values, in order.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// Params to add or override, in order.
    pub(crate) params: Vec<(String, Vec<u8>)>,
    pub(crate) data: Option<Data>,
    pub(crate) include: bool,
    pub(crate) output: Option<PathBuf>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) fail: bool,
    /// `-v` given this many times: 1 the records, 2 also the params.
    pub(crate) verbose: u8,
    /// Load mode (`-n`, `-c`, `--duration`, `--rate`): many requests, checked and
    /// summed up, none printed.
    pub(crate) load: Option<Load>,
}

/// When a load run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// After this many requests (`-n`).
    Requests(u64),
    /// Once this much time has passed (`--duration`): no request starts after it.
    Duration(Duration),
}

/// Load mode's settings, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Load {
    /// `-n` or `--duration`.
    pub(crate) stop: Stop,
    /// `-c`: requests in flight at once (at most).
    pub(crate) concurrency: usize,
    /// `--connections`: the pool's bound on open connections.
    pub(crate) connections: usize,
    /// `--multiplex`.
    pub(crate) multiplex: bool,
    /// `--expect-sha256`: the sha256 every response body must have.
    pub(crate) expect_sha256: Option<[u8; 32]>,
    /// `--rate`: requests per second, open loop.
    pub(crate) rate: Option<f64>,
    /// `--json`: the summary as one JSON object.
    pub(crate) json: bool,
}

/// The largest `-c` and `--connections`: far above what one machine's descriptors
/// allow, and a bound that keeps the pool's semaphore in its range.
pub(crate) const MAX_CONCURRENCY: usize = 100_000;

/// A usage error: the message, without the `fcgi: ` prefix.
pub(crate) type UsageError = String;

const ABOUT: &str = "\
fcgi - send one request to a FastCGI server (php-fpm, ...), print the
response; or send many (-n, -c) and print a summary";

const USAGE: &str = "\
fcgi [OPTIONS] <ADDRESS> [SCRIPT_FILENAME]
       fcgi serve [--listen ADDR] --root DIR [OPTIONS] <ADDRESS>...
       fcgi status [OPTIONS] <ADDRESS>
       fcgi completions <SHELL> | fcgi man";

const AFTER_HELP: &str = "\
Load mode (on with -n, -c, --duration or --rate): the request is sent N times,
C at once, and each response is checked and counted, not printed. -X -q -H -p -d
--timeout --fail apply to every request (-d is read once, --timeout bounds each
request); -i -o --values --ping cannot be used. A request is an error, by kind:
connect; timeout; protocol (bad records, an early close, a bad head); refused
(END_REQUEST overloaded, ...); bad status (>= 400, with --fail only); checksum
(the body's sha256 is not --expect-sha256, or not its X-Body-Sha256 header,
which with -d must also be the sha256 of the body sent). The summary goes to
standard output: requests, requests/s, latency p50/p90/p99/p99.9/max, body
bytes, statuses, errors by kind, connections opened; a progress line to
standard error when that is a terminal.

Params sent (-p overrides any of them):
  GATEWAY_INTERFACE=CGI/1.1  SERVER_PROTOCOL=HTTP/1.1  REQUEST_METHOD
  SCRIPT_FILENAME  SCRIPT_NAME=/<file name of SCRIPT_FILENAME>
  REQUEST_URI=SCRIPT_NAME[?QS]  DOCUMENT_URI=SCRIPT_NAME  QUERY_STRING
  DOCUMENT_ROOT=<directory of SCRIPT_FILENAME>  REQUEST_SCHEME=http
  SERVER_SOFTWARE=fcgi/VERSION  REMOTE_ADDR=127.0.0.1  SERVER_PORT=80
  SERVER_NAME=localhost (or the Host header's host)  REDIRECT_STATUS=200
  CONTENT_LENGTH and CONTENT_TYPE with a body; HTTP_* from -H.
  With --ping, SCRIPT_FILENAME, SCRIPT_NAME and REQUEST_URI are PATH.

The body goes to standard output byte for byte as it arrives; the application's
FCGI_STDERR goes to standard error as it arrives (load mode: the first one, at
the end, with the count of responses that had one).

Exit status:
  0  success               1  no pong (--ping), or a local file error
  2  usage error           3  cannot connect
  4  timeout               5  the server broke the protocol or closed early
  22 status 400 or more with --fail
  Load mode: 0 without errors; when every error gives the same status above
  (3, 4, 5 or 22), that one; otherwise 1 (checksum errors, mixed kinds).";

const LOAD: &str = "Load mode";

/// The whole command line, as clap reads it. Values stay raw here; [`finish`] checks
/// them.
#[derive(Debug, Parser)]
#[command(
    name = "fcgi",
    version,
    about = ABOUT,
    override_usage = USAGE,
    after_help = AFTER_HELP,
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    subcommand_value_name = "COMMAND",
    term_width = 78
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,

    /// HOST:PORT, [V6]:PORT, unix:/path/to.sock, or a socket path that starts with /
    /// or ./
    #[arg(value_name = "ADDRESS")]
    address: Option<OsString>,

    /// the script's path on the server; required unless --values or --ping is given
    #[arg(value_name = "SCRIPT_FILENAME")]
    script_filename: Option<OsString>,

    /// request method (default GET; POST with -d)
    #[arg(short = 'X', long, value_name = "M", allow_hyphen_values = true)]
    method: Option<OsString>,

    /// query string (QUERY_STRING; a leading ? is dropped)
    #[arg(short, long, value_name = "QS", allow_hyphen_values = true)]
    query: Option<OsString>,

    /// request header, sent as HTTP_N (repeatable); Proxy and names with bytes other
    /// than A-Z a-z 0-9 - are dropped
    #[arg(short = 'H', long, value_name = "'N: V'", action = ArgAction::Append, allow_hyphen_values = true)]
    header: Vec<OsString>,

    /// add a param or override a default one (repeatable)
    #[arg(short, long, value_name = "NAME=VALUE", action = ArgAction::Append, allow_hyphen_values = true)]
    param: Vec<OsString>,

    /// request body: DATA as is, @FILE streams a file, @- reads standard input; sets
    /// CONTENT_LENGTH, and CONTENT_TYPE to application/x-www-form-urlencoded unless -H
    /// gives a Content-Type
    #[arg(short, long, value_name = "DATA", action = ArgAction::Append, allow_hyphen_values = true)]
    data: Vec<OsString>,

    /// print 'Status: CODE REASON', the response headers and a blank line (LF line
    /// ends) before the body
    #[arg(short, long)]
    include: bool,

    /// write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE", allow_hyphen_values = true)]
    output: Option<OsString>,

    /// one bound, in seconds, on connecting and the whole request (default: 10 s to
    /// connect, 60 s for each wait for the server)
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    timeout: Option<OsString>,

    /// print nothing and exit 22 when the status is >= 400 (load mode: count such a
    /// response as an error)
    #[arg(long)]
    fail: bool,

    /// ask FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS (GET_VALUES); print the answer
    /// as NAME=VALUE lines
    #[arg(long)]
    values: bool,

    /// php-fpm ping: request PATH (default /ping); exit 0 when the body is pong, 1
    /// otherwise
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    ping: Option<Option<OsString>>,

    /// show the records sent (>) and received (<) on standard error; -vv also the params
    /// (RUST_LOG=fcgi=debug,... adds the library's other events)
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,

    /// send N requests in all (default: C; with --rate, R)
    #[arg(short = 'n', long = "requests", value_name = "N", allow_hyphen_values = true, help_heading = LOAD)]
    requests: Option<OsString>,

    /// keep at most C requests in flight (default 1; with --rate, 100)
    #[arg(short, long, value_name = "C", allow_hyphen_values = true, help_heading = LOAD)]
    concurrency: Option<OsString>,

    /// send requests for this long instead of -n: 30s, 2m, 500ms, or seconds
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, help_heading = LOAD)]
    duration: Option<OsString>,

    /// open loop: start R requests a second on schedule, whatever the answers;
    /// latency counts from when each request was due
    #[arg(long, value_name = "R", allow_hyphen_values = true, help_heading = LOAD)]
    rate: Option<OsString>,

    /// keep at most K connections open (default: C); each kept connection pins one
    /// php-fpm worker, so keep K at most the pool's pm.max_children
    #[arg(long, value_name = "K", allow_hyphen_values = true, help_heading = LOAD)]
    connections: Option<OsString>,

    /// send requests side by side on a connection when the server offers it
    /// (FCGI_MPXS_CONNS=1)
    #[arg(long, help_heading = LOAD)]
    multiplex: bool,

    /// every response body must have this sha256
    #[arg(long, value_name = "HEX", allow_hyphen_values = true, help_heading = LOAD)]
    expect_sha256: Option<OsString>,

    /// print the summary as one JSON object
    #[arg(long, help_heading = LOAD)]
    json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Sub {
    /// an HTTP/1.1 and HTTP/2 server for a PHP site, as nginx in front of php-fpm
    Serve(Box<crate::serve::ServeCli>),
    /// php-fpm's status page (pm.status_path), as a table or JSON; with thresholds, a
    /// probe
    Status(crate::status::StatusCli),
    /// print a completion script for bash, zsh or fish
    Completions {
        /// the shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// print the man page (roff) to standard output
    Man,
}

/// The clap definition, as help, completions and the man page use it.
pub(crate) fn command() -> clap::Command {
    Cli::command()
}

/// The help of `fcgi` (or of a subcommand, `path` its name), as `--help` prints it.
pub(crate) fn help_text(path: &[&str]) -> String {
    let mut command = command();
    command.build();
    let mut cmd = &mut command;
    for name in path {
        cmd = cmd
            .find_subcommand_mut(name)
            .expect("help of a known subcommand");
    }
    bare_value_names(&cmd.render_help().to_string())
}

/// clap writes option values as `<N>`; this command's help has always written them
/// bare, `-n, --requests N` (as curl does), and its tests and README say so. The
/// brackets go; the two columns they took stay, so that the help column stays aligned.
fn bare_value_names(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    for line in help.lines() {
        let mut line = line.to_owned();
        // An option line: spaces, the option's spelling, two spaces or the end of the
        // line, its help.
        let indent = line.len() - line.trim_start().len();
        if indent >= 2 && line[indent..].starts_with('-') {
            let spec_end = line[indent..].find("  ").map_or(line.len(), |i| i + indent);
            let spec = &line[..spec_end];
            let bare = spec.replace(['<', '>'], "");
            let padding = if spec_end < line.len() {
                " ".repeat(spec.len() - bare.len())
            } else {
                String::new()
            };
            line = format!("{bare}{padding}{}", &line[spec_end..]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Parses the arguments after the program's name.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let args: Vec<OsString> = std::iter::once(OsString::from("fcgi"))
        .chain(args)
        .collect();
    let matches = match command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(e) => return clap_error(e, &args),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| first_line(&e))?;
    match cli.command {
        Some(Sub::Serve(serve)) => serve.check().map(|args| Command::Serve(Box::new(args))),
        Some(Sub::Status(status)) => status.check().map(Command::Status),
        Some(Sub::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "fcgi", &mut out);
            Ok(Command::Print(out))
        }
        Some(Sub::Man) => Ok(Command::Print(man_page())),
        None => {
            let ping_was_attached = args
                .iter()
                .skip(1)
                .take_while(|a| *a != "--")
                .any(|a| os_bytes_lossy(a).starts_with("--ping="));
            finish(cli, &matches, ping_was_attached).map(|args| Command::Run(Box::new(args)))
        }
    }
}

/// The man page, `fcgi.1`, from the same definition as the help.
pub(crate) fn man_page() -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec does not fail.
    // NAME is `fcgi \- ABOUT`: the about without the help's own `fcgi - `.
    let about = ABOUT.strip_prefix("fcgi - ").unwrap_or(ABOUT);
    let _ = clap_mangen::Man::new(command().about(about)).render(&mut out);
    out
}

/// What a clap error means here: help and version are printed, anything else is a
/// usage error with a one-line message.
fn clap_error(e: clap::Error, args: &[OsString]) -> Result<Command, UsageError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp => {
            let path: Vec<String> = args
                .iter()
                .skip(1)
                .filter_map(|a| a.to_str())
                .find(|a| SUBCOMMANDS.contains(a))
                .map(|a| vec![a.to_owned()])
                .unwrap_or_default();
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            Ok(Command::Print(help_text(&path).into_bytes()))
        }
        ErrorKind::DisplayVersion => Ok(Command::Print(
            format!("fcgi {}\n", env!("CARGO_PKG_VERSION")).into_bytes(),
        )),
        ErrorKind::InvalidValue
            if matches!(
                e.get(ContextKind::InvalidValue),
                Some(ContextValue::String(v)) if v.is_empty()
            ) =>
        {
            // `-n` at the end: "option -n/--requests needs a value", as before.
            let spelled = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => arg.clone(),
                _ => String::new(),
            };
            Err(format!(
                "option {} needs a value",
                option_name(&spelled, args)
            ))
        }
        _ => Err(first_line(&e)),
    }
}

/// `-n/--requests` for clap's `--requests <N>`: the option as the old messages named
/// it, short and long.
fn option_name(spelled: &str, args: &[OsString]) -> String {
    let long = spelled
        .split(' ')
        .next()
        .and_then(|s| s.strip_prefix("--"))
        .unwrap_or_default();
    let mut command = command();
    // The subcommand the arguments name, when one does.
    if let Some(sub) = args
        .iter()
        .skip(1)
        .find_map(|a| a.to_str().filter(|a| SUBCOMMANDS.contains(a)))
    {
        command = command.find_subcommand(sub).cloned().unwrap_or(command);
    }
    let short = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_short());
    match short {
        Some(c) => format!("-{c}/--{long}"),
        None if long.is_empty() => spelled.to_owned(),
        None => format!("--{long}"),
    }
}

/// The subcommands' names.
const SUBCOMMANDS: [&str; 4] = ["serve", "status", "completions", "man"];

/// The first line of a clap error, without its `error: `.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or("bad arguments");
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Bytes of an argument, shown in a message.
fn os_bytes_lossy(value: &OsString) -> std::borrow::Cow<'_, str> {
    value.to_string_lossy()
}

/// The bytes of an argument: any bytes on unix; elsewhere it must be Unicode.
#[cfg(unix)]
fn into_bytes(value: OsString, _what: &str) -> Result<Vec<u8>, UsageError> {
    use std::os::unix::ffi::OsStringExt;
    Ok(value.into_vec())
}

/// The bytes of an argument: any bytes on unix; elsewhere it must be Unicode.
#[cfg(not(unix))]
fn into_bytes(value: OsString, what: &str) -> Result<Vec<u8>, UsageError> {
    utf8(value, what).map(String::into_bytes)
}

/// A path from bytes [`into_bytes`] gave.
#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// A path from bytes [`into_bytes`] gave (UTF-8 off unix).
#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// The text of an argument, or a usage error naming `what`.
pub(crate) fn utf8(value: OsString, what: &str) -> Result<String, UsageError> {
    value
        .into_string()
        .map_err(|v| format!("{what} is not valid UTF-8: {}", v.to_string_lossy()))
}

/// Parses a header given as `Name: value`.
fn parse_header(value: OsString) -> Result<(String, Vec<u8>), UsageError> {
    let bytes = into_bytes(value, "the -H/--header value")?;
    let shown = || String::from_utf8_lossy(&bytes).into_owned();
    let Some(colon) = bytes.iter().position(|&b| b == b':') else {
        return Err(format!("bad header {:?}: want 'Name: value'", shown()));
    };
    let name = &bytes[..colon];
    if name.is_empty() {
        return Err(format!("bad header {:?}: empty name", shown()));
    }
    if name.iter().any(|&b| b <= b' ' || b == 0x7F) {
        return Err(format!(
            "bad header {:?}: a name has no spaces or control characters",
            shown()
        ));
    }
    let name = String::from_utf8(name.to_vec())
        .map_err(|_| format!("bad header {:?}: the name is not valid UTF-8", shown()))?;
    let value = bytes[colon + 1..].trim_ascii().to_vec();
    Ok((name, value))
}

/// Parses a param given as `NAME=VALUE`.
fn parse_param(value: OsString) -> Result<(String, Vec<u8>), UsageError> {
    let bytes = into_bytes(value, "the -p/--param value")?;
    let shown = || String::from_utf8_lossy(&bytes).into_owned();
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err(format!("bad param {:?}: want NAME=VALUE", shown()));
    };
    if eq == 0 {
        return Err(format!("bad param {:?}: empty name", shown()));
    }
    let name = String::from_utf8(bytes[..eq].to_vec())
        .map_err(|_| format!("bad param {:?}: the name is not valid UTF-8", shown()))?;
    Ok((name, bytes[eq + 1..].to_vec()))
}

/// `--timeout`: seconds above 0, fractions allowed.
pub(crate) fn parse_timeout(value: OsString) -> Result<Duration, UsageError> {
    let text = utf8(value, "the value of --timeout")?;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("bad --timeout {text:?}: want a number of seconds above 0"))
}

/// `--duration`: `30s`, `2m`, `1h`, `500ms`, or a number of seconds; above 0.
fn parse_duration(value: OsString) -> Result<Duration, UsageError> {
    let text = utf8(value, "the value of --duration")?;
    let trimmed = text.trim();
    let (number, unit) = match trimmed.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, "s"),
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("bad --duration {text:?}: want a time above 0, as 30s, 2m or 500ms"))
}

/// `--rate`: requests per second, above 0 and at most a million.
fn parse_rate(value: OsString) -> Result<f64, UsageError> {
    let text = utf8(value, "the value of --rate")?;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 1e6)
        .ok_or_else(|| {
            format!("bad --rate {text:?}: want requests per second, above 0 and at most 1000000")
        })
}

/// A count for `-n`, `-c` or `--connections` (spelled `name`): a whole number from 1 to
/// `max`.
pub(crate) fn parse_count(value: OsString, name: &str, max: u64) -> Result<u64, UsageError> {
    let text = utf8(value, &format!("the value of {name}"))?;
    let trimmed = text.trim();
    trimmed
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| trimmed.parse::<u64>().ok())
        .flatten()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("bad {name} {text:?}: want a whole number from 1 to {max}"))
}

/// `--expect-sha256`: 64 hex digits, either case.
fn parse_sha256(value: OsString) -> Result<[u8; 32], UsageError> {
    let text = utf8(value, "the value of --expect-sha256")?;
    decode_sha256(text.trim().as_bytes())
        .ok_or_else(|| format!("bad --expect-sha256 {text:?}: want 64 hex digits"))
}

/// A sha256 written as 64 hex digits, either case.
pub(crate) fn decode_sha256(hex: &[u8]) -> Option<[u8; 32]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A path for `--ping` or `fcgi status --path`: it starts with `/`.
pub(crate) fn check_path(option: &str, path: String) -> Result<String, UsageError> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(format!("bad {option} path {path:?}: it starts with /"))
    }
}

/// `-d`: `@-`, `@FILE` or the bytes as they are.
fn parse_data(values: Vec<OsString>) -> Result<Option<Data>, UsageError> {
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("-d/--data given more than once".into());
    }
    let bytes = into_bytes(value, "the -d/--data value")?;
    Ok(Some(match bytes.strip_prefix(b"@") {
        Some(b"-") => Data::Stdin,
        Some(path) if !path.is_empty() => Data::File(path_from_bytes(path)),
        Some(_) => return Err("-d @ needs a file name, or - for stdin".into()),
        None => Data::Literal(bytes),
    }))
}

/// The positional arguments in the order given. `--ping` takes the next word as PATH
/// only when it starts with `/` (clap takes any word that is not an option): another
/// word is put back among the positionals where it stood; and a path that leaves no
/// ADDRESS is the address after all (`fcgi --ping /run/php.sock`).
fn positionals(cli: &mut Cli, matches: &ArgMatches, ping_was_attached: bool) -> Vec<OsString> {
    let mut found: Vec<(usize, OsString)> = Vec::new();
    for (id, value) in [
        ("address", cli.address.take()),
        ("script_filename", cli.script_filename.take()),
    ] {
        if let (Some(value), Some(index)) = (value, matches.index_of(id)) {
            found.push((index, value));
        }
    }
    if let Some(Some(path)) = &cli.ping {
        if !ping_was_attached {
            let index = matches.index_of("ping").unwrap_or(0);
            let is_path = path.to_str().is_none_or(|p| p.starts_with('/'));
            if !is_path || found.is_empty() {
                found.push((index, path.clone()));
                cli.ping = Some(None);
            }
        }
    }
    found.sort_by_key(|(index, _)| *index);
    found.into_iter().map(|(_, value)| value).collect()
}

/// The checks and defaults of a command line that talks to a server.
fn finish(mut cli: Cli, matches: &ArgMatches, ping_was_attached: bool) -> Result<Args, UsageError> {
    let positionals = positionals(&mut cli, matches, ping_was_attached);
    // The values, checked in the order the old parser met them doesn't matter for the
    // message: each bad value is a usage error of its own.
    let method = cli.method.map(|m| utf8(m, "the method")).transpose()?;
    if method.as_deref() == Some("") {
        return Err("empty method".into());
    }
    let query = cli
        .query
        .map(|q| utf8(q, "the query string"))
        .transpose()?
        .map(|q| q.strip_prefix('?').unwrap_or(&q).to_owned());
    let headers = cli
        .header
        .into_iter()
        .map(parse_header)
        .collect::<Result<Vec<_>, _>>()?;
    let params = cli
        .param
        .into_iter()
        .map(parse_param)
        .collect::<Result<Vec<_>, _>>()?;
    let data = parse_data(cli.data)?;
    let output = match cli.output {
        Some(o) if o.is_empty() => return Err("empty --output file name".into()),
        o => o.map(PathBuf::from),
    };
    let timeout = cli.timeout.map(parse_timeout).transpose()?;
    let requests = cli
        .requests
        .map(|v| parse_count(v, "-n/--requests", u64::MAX))
        .transpose()?;
    let concurrency = cli
        .concurrency
        .map(|v| parse_count(v, "-c/--concurrency", MAX_CONCURRENCY as u64))
        .transpose()?
        .map(|c| c as usize);
    let connections = cli
        .connections
        .map(|v| parse_count(v, "--connections", MAX_CONCURRENCY as u64))
        .transpose()?
        .map(|c| c as usize);
    let expect_sha256 = cli.expect_sha256.map(parse_sha256).transpose()?;
    let duration = cli.duration.map(parse_duration).transpose()?;
    let rate = cli.rate.map(parse_rate).transpose()?;
    let ping = cli
        .ping
        .map(|p| p.map(|p| utf8(p, "the --ping path")).transpose())
        .transpose()?;
    if ping_was_attached {
        if let Some(Some(path)) = &ping {
            check_path("--ping", path.clone())?;
        }
    }

    // Load mode.
    let load_on =
        requests.is_some() || concurrency.is_some() || duration.is_some() || rate.is_some();
    let load = if !load_on {
        let only_load = [
            (connections.is_some(), "--connections"),
            (cli.multiplex, "--multiplex"),
            (expect_sha256.is_some(), "--expect-sha256"),
            (cli.json, "--json"),
        ];
        if let Some((_, name)) = only_load.iter().find(|(given, _)| *given) {
            return Err(format!(
                "{name} belongs to load mode: give -n/--requests or -c/--concurrency too"
            ));
        }
        None
    } else {
        let conflict = [
            (cli.values, "--values"),
            (ping.is_some(), "--ping"),
            (cli.include, "-i/--include"),
            (output.is_some(), "-o/--output"),
        ];
        if let Some((_, name)) = conflict.iter().find(|(given, _)| *given) {
            return Err(format!(
                "{name} cannot be used in load mode (-n/-c): it checks the responses, \
                 prints none"
            ));
        }
        if requests.is_some() && duration.is_some() {
            return Err("-n/--requests and --duration cannot be combined: give one".into());
        }
        let default_concurrency = if rate.is_some() { 100 } else { 1 };
        let concurrency = concurrency.unwrap_or(default_concurrency);
        let stop = match (requests, duration) {
            (Some(n), _) => Stop::Requests(n),
            (None, Some(d)) => Stop::Duration(d),
            // One second's worth at --rate; else C.
            (None, None) => Stop::Requests(match rate {
                Some(r) => (r.ceil() as u64).max(1),
                None => concurrency as u64,
            }),
        };
        Some(Load {
            stop,
            concurrency,
            connections: connections.unwrap_or(concurrency),
            multiplex: cli.multiplex,
            expect_sha256,
            rate,
            json: cli.json,
        })
    };

    let mut positionals = positionals.into_iter();
    let Some(address) = positionals.next() else {
        return Err("missing ADDRESS".into());
    };
    let address = utf8(address, "ADDRESS")?;
    let address: Address = address.parse().map_err(|e| format!("{e}"))?;
    let script = positionals
        .next()
        .map(|s| utf8(s, "SCRIPT_FILENAME"))
        .transpose()?;
    if let Some(extra) = positionals.next() {
        return Err(format!(
            "unexpected argument {:?} (only ADDRESS and SCRIPT_FILENAME)",
            extra.to_string_lossy()
        ));
    }
    if cli.values && ping.is_some() {
        return Err("--values and --ping cannot be combined".into());
    }
    let mode = if cli.values {
        if script.is_some() {
            return Err("--values sends no request: give no SCRIPT_FILENAME".into());
        }
        let request_option = [
            (method.is_some(), "-X/--method"),
            (query.is_some(), "-q/--query"),
            (!headers.is_empty(), "-H/--header"),
            (!params.is_empty(), "-p/--param"),
            (data.is_some(), "-d/--data"),
            (cli.include, "-i/--include"),
            (cli.fail, "--fail"),
        ];
        if let Some((_, name)) = request_option.iter().find(|(given, _)| *given) {
            return Err(format!(
                "--values sends no request: {name} cannot be used with it"
            ));
        }
        Mode::Values
    } else if let Some(path) = ping {
        if script.is_some() {
            return Err("--ping requests its PATH: give no SCRIPT_FILENAME".into());
        }
        Mode::Ping(check_path(
            "--ping",
            path.unwrap_or_else(|| "/ping".into()),
        )?)
    } else {
        match script {
            Some(script_filename) if !script_filename.is_empty() => {
                Mode::Request { script_filename }
            }
            Some(_) => return Err("empty SCRIPT_FILENAME".into()),
            None => {
                return Err(
                    "missing SCRIPT_FILENAME (the script's path on the server; or use --values or --ping)"
                        .into(),
                )
            }
        }
    };
    Ok(Args {
        address,
        mode,
        method,
        query,
        headers,
        params,
        data,
        include: cli.include,
        output,
        timeout,
        fail: cli.fail,
        verbose: cli.verbose,
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> Args {
        match parse_strs(args) {
            Ok(Command::Run(a)) => *a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn positionals_and_defaults() {
        let a = run(&["/tmp/php.sock", "/srv/www/x.php"]);
        assert_eq!(a.address, Address::Unix("/tmp/php.sock".into()));
        assert_eq!(
            a.mode,
            Mode::Request {
                script_filename: "/srv/www/x.php".into()
            }
        );
        assert!(a.method.is_none() && a.data.is_none() && !a.include && !a.fail);
        let a = run(&["127.0.0.1:9000", "x.php"]);
        assert_eq!(a.address, Address::Tcp("127.0.0.1:9000".into()));
    }

    #[test]
    fn short_long_attached_and_clustered() {
        let a = run(&[
            "-XPUT",
            "-q",
            "?a=1",
            "--header=X-A: 1",
            "-H",
            "X-B:2",
            "-pA=B=C",
            "--param",
            "E=",
            "-id",
            "-lit",
            "--timeout=1.5",
            "--fail",
            "-o",
            "-",
            "-vv",
            "unix:/s",
            "/x.php",
        ]);
        assert_eq!(a.method.as_deref(), Some("PUT"));
        assert_eq!(a.query.as_deref(), Some("a=1"));
        assert_eq!(
            a.headers,
            [("X-A".into(), b"1".to_vec()), ("X-B".into(), b"2".to_vec())]
        );
        assert_eq!(
            a.params,
            [("A".into(), b"B=C".to_vec()), ("E".into(), Vec::new())]
        );
        assert_eq!(a.data, Some(Data::Literal(b"-lit".to_vec())));
        assert!(a.include && a.fail);
        assert_eq!(a.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(a.output, Some(PathBuf::from("-")));
        assert_eq!(a.verbose, 2);
        // The last of a single-value option wins.
        assert_eq!(
            run(&["-X", "A", "--method=B", "/s", "/x"])
                .method
                .as_deref(),
            Some("B")
        );
    }

    #[cfg(unix)]
    #[test]
    fn data_and_headers_may_be_any_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let args = [
            OsString::from("-d"),
            OsString::from_vec(b"\xff\xfe".to_vec()),
            OsString::from("-H"),
            OsString::from_vec(b"X-A: \xff".to_vec()),
            OsString::from("/s"),
            OsString::from("/x"),
        ];
        let Ok(Command::Run(a)) = parse(args) else {
            panic!("non-UTF-8 -d and -H values are taken")
        };
        assert_eq!(a.data, Some(Data::Literal(b"\xff\xfe".to_vec())));
        assert_eq!(a.headers, [("X-A".into(), b"\xff".to_vec())]);
    }

    #[test]
    fn data_forms() {
        assert_eq!(run(&["-d@-", "/s", "/x"]).data, Some(Data::Stdin));
        assert_eq!(
            run(&["-d", "@/etc/hosts", "/s", "/x"]).data,
            Some(Data::File("/etc/hosts".into()))
        );
        assert_eq!(
            run(&["--data=", "/s", "/x"]).data,
            Some(Data::Literal(Vec::new()))
        );
        assert!(parse_strs(&["-d", "@", "/s", "/x"]).is_err());
        assert!(parse_strs(&["-d", "a", "-d", "b", "/s", "/x"]).is_err());
    }

    #[test]
    fn ping_path_or_address() {
        assert_eq!(run(&["--ping", "/tmp/s"]).mode, Mode::Ping("/ping".into()));
        assert_eq!(
            run(&["--ping", "/tmp/s"]).address,
            Address::Unix("/tmp/s".into())
        );
        assert_eq!(
            run(&["--ping", "/status", "/tmp/s"]).mode,
            Mode::Ping("/status".into())
        );
        assert_eq!(
            run(&["/tmp/s", "--ping", "/x"]).mode,
            Mode::Ping("/x".into())
        );
        assert_eq!(run(&["/tmp/s", "--ping"]).mode, Mode::Ping("/ping".into()));
        assert_eq!(
            run(&["--ping=/p", "127.0.0.1:1"]).mode,
            Mode::Ping("/p".into())
        );
        assert_eq!(
            run(&["--ping", "127.0.0.1:1"]).mode,
            Mode::Ping("/ping".into())
        );
        assert_eq!(
            run(&["--ping", "127.0.0.1:1"]).address,
            Address::Tcp("127.0.0.1:1".into())
        );
        assert!(parse_strs(&["--ping=p", "/s"]).is_err());
        assert!(parse_strs(&["--ping", "/s", "/x.php"]).is_ok());
        assert!(parse_strs(&["--ping", "/p", "/s", "/x.php"]).is_err());
        assert!(parse_strs(&["--ping", "x:1", "/x.php"]).is_err());
    }

    #[test]
    fn values_mode() {
        assert_eq!(run(&["--values", "/s"]).mode, Mode::Values);
        assert_eq!(
            run(&["--values", "--timeout", "2", "-o", "f", "/s"]).mode,
            Mode::Values
        );
        assert!(parse_strs(&["--values", "/s", "/x.php"]).is_err());
        assert!(parse_strs(&["--values", "-i", "/s"]).is_err());
        assert!(parse_strs(&["--values", "--ping", "/s"]).is_err());
    }

    #[test]
    fn help_and_version() {
        let help = |args: &[&str]| match parse_strs(args) {
            Ok(Command::Print(text)) => String::from_utf8(text).unwrap(),
            other => panic!("{args:?}: {other:?}"),
        };
        let text = help(&["--help"]);
        assert!(text.contains("Usage: fcgi [OPTIONS] <ADDRESS> [SCRIPT_FILENAME]"));
        assert!(text.contains("  -n, --requests N "), "{text}");
        assert!(text.contains("      --ping [PATH] "), "{text}");
        assert_eq!(help(&["-h"]), text);
        assert_eq!(
            help(&["/s", "--version"]),
            concat!("fcgi ", env!("CARGO_PKG_VERSION"), "\n")
        );
        assert!(help(&["serve", "--help"]).contains("Usage: fcgi serve [--listen ADDR] --root DIR"));
        assert!(help(&["completions", "bash"]).contains("_fcgi"));
        let man = help(&["man"]);
        assert!(man.contains(".SH NAME\nfcgi \\- send one request"), "{man}");
        assert!(man.contains("\\fB\\-\\-rate\\fR"), "{man}");
    }

    #[test]
    fn help_fits_80_columns() {
        for path in [&[][..], &["serve"], &["status"]] {
            for line in help_text(path).lines() {
                assert!(line.len() <= 80, "{line:?}");
            }
        }
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["/s", "/x", "extra"],
            &["nonsense", "/x"],
            &["-z", "/s", "/x"],
            &["--nope", "/s", "/x"],
            &["--fail=1", "/s", "/x"],
            &["-H", "NoColon", "/s", "/x"],
            &["-H", ": v", "/s", "/x"],
            &["-H", "Bad Name: v", "/s", "/x"],
            &["-p", "NOEQUALS", "/s", "/x"],
            &["-p", "=v", "/s", "/x"],
            &["--timeout", "0", "/s", "/x"],
            &["--timeout", "-1", "/s", "/x"],
            &["--timeout", "soon", "/s", "/x"],
            &["--timeout", "inf", "/s", "/x"],
            &["-X", "", "/s", "/x"],
            &["/s", "-X"],
            &["/s"],
            &["/s", ""],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_strs(&["/s", "/x", "-n"]).unwrap_err(),
            "option -n/--requests needs a value"
        );
        assert_eq!(
            parse_strs(&["/s", "/x", "--timeout"]).unwrap_err(),
            "option --timeout needs a value"
        );
    }

    #[test]
    fn load_mode() {
        assert_eq!(run(&["/s", "/x"]).load, None);
        let load = |args: &[&str]| run(args).load.expect("load mode");
        assert_eq!(
            load(&["-n", "100", "-c8", "/s", "/x"]),
            Load {
                stop: Stop::Requests(100),
                concurrency: 8,
                connections: 8,
                multiplex: false,
                expect_sha256: None,
                rate: None,
                json: false,
            }
        );
        let l = load(&["--requests=5", "/s", "/x"]);
        assert_eq!(
            (l.stop, l.concurrency, l.connections),
            (Stop::Requests(5), 1, 1)
        );
        let l = load(&["--concurrency", "4", "/s", "/x"]);
        assert_eq!(
            (l.stop, l.concurrency, l.connections),
            (Stop::Requests(4), 4, 4)
        );
        let l = load(&["--duration", "2m", "--rate=50", "--json", "/s", "/x"]);
        assert_eq!(l.stop, Stop::Duration(Duration::from_secs(120)));
        assert_eq!((l.rate, l.concurrency, l.json), (Some(50.0), 100, true));
        assert_eq!(
            load(&["--duration=250ms", "/s", "/x"]).stop,
            Stop::Duration(Duration::from_millis(250))
        );
        assert_eq!(load(&["--rate", "10", "/s", "/x"]).stop, Stop::Requests(10));
        let hex = "00ff".repeat(16);
        let l = load(&[
            "-c3",
            "--connections=2",
            "--multiplex",
            "--expect-sha256",
            &hex.to_ascii_uppercase(),
            "/s",
            "/x",
        ]);
        assert_eq!((l.connections, l.multiplex), (2, true));
        assert_eq!(
            l.expect_sha256,
            Some([[0x00, 0xff]; 16].concat().try_into().unwrap())
        );
        for bad in [
            &["--connections", "2", "/s", "/x"][..],
            &["--multiplex", "/s", "/x"],
            &["--json", "/s", "/x"],
            &["--expect-sha256", &hex, "/s", "/x"],
            &["-n", "5", "-i", "/s", "/x"],
            &["-n", "5", "-o", "f", "/s", "/x"],
            &["-n", "5", "--values", "/s"],
            &["-c", "5", "--ping", "/s"],
            &["-n", "0", "/s", "/x"],
            &["-n", "+5", "/s", "/x"],
            &["-n", "99999999999999999999", "/s", "/x"],
            &["-c", "100001", "/s", "/x"],
            &["-c", "2", "--connections", "0", "/s", "/x"],
            &["-c", "2", "--expect-sha256", "abc", "/s", "/x"],
            &["-c", "2", "--expect-sha256", &"g".repeat(64), "/s", "/x"],
            &["-n", "5", "/s"],
            &["-n", "5", "--duration", "1s", "/s", "/x"],
            &["--duration", "0s", "/s", "/x"],
            &["--duration", "soon", "/s", "/x"],
            &["--duration", "3d", "/s", "/x"],
            &["--rate", "0", "/s", "/x"],
            &["--rate", "fast", "/s", "/x"],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn double_dash_ends_options() {
        let a = run(&["--", "/s", "/-x.php"]);
        assert_eq!(
            a.mode,
            Mode::Request {
                script_filename: "/-x.php".into()
            }
        );
        let a = run(&["/s", "--", "-x.php"]);
        assert_eq!(
            a.mode,
            Mode::Request {
                script_filename: "-x.php".into()
            }
        );
    }
}
