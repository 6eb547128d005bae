//! `fcgi`: send one request to a FastCGI server (php-fpm, ...) and print the
//! response, like `curl` for FastCGI; or, in load mode (`-n`, `-c`), many requests,
//! checked and summed up, to tune a pool without a web server in front.
//!
//! ```text
//! fcgi [OPTIONS] <ADDRESS> [SCRIPT_FILENAME]
//! ```
//!
//! `fcgi --help` prints the options, the params sent and the exit statuses; the
//! crate's README.md explains each choice.

#![forbid(unsafe_code)]
// The help text is clap's, written as doc comments, which rustdoc also reads: there
// `[V6]:PORT` is text, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

mod args;
mod load;
mod reason;
mod serve;
mod status;
mod verbose;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use fcgi_blocking::{Client, Error, Options, Request};
use fcgi_proto::values::{FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS};
use fcgi_proto::{HeaderPolicy, Params, ParamsBuilder, ResponseHead};

use crate::args::{Args, Command, Data, Mode};

/// `SERVER_SOFTWARE`.
const SOFTWARE: &str = concat!("fcgi/", env!("CARGO_PKG_VERSION"));

/// `CONTENT_TYPE` of a `-d` body without a `Content-Type` header, as curl sends.
const FORM: &str = "application/x-www-form-urlencoded";

const EXIT_LOCAL: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CONNECT: u8 = 3;
const EXIT_TIMEOUT: u8 = 4;
const EXIT_SERVER: u8 = 5;
const EXIT_FAIL: u8 = 22;

/// Why the command failed: its exit status and the message for standard error.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The exit status of a client error.
    fn client(e: Error) -> Self {
        let code = match &e {
            Error::Connect { .. } => EXIT_CONNECT,
            Error::Timeout { .. } => EXIT_TIMEOUT,
            Error::Io { .. }
            | Error::Protocol { .. }
            | Error::BadResponse { .. }
            | Error::Refused { .. }
            | Error::Limit { .. }
            | Error::ConnectionLimit { .. } => EXIT_SERVER,
            Error::InvalidAddress(_) | Error::Params(_) => EXIT_USAGE,
            // Usage (a body file that changed size while it was sent), Body, ...
            _ => EXIT_LOCAL,
        };
        Self::new(code, error_chain(&e))
    }
}

/// An error's message and those of its sources, joined with ": " (an error's message
/// does not repeat its source's, so each part shows once).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether the application's STDERR, passed on as is, left standard error in the
/// middle of a line (php-fpm sends its messages without a newline).
static STDERR_MID_LINE: AtomicBool = AtomicBool::new(false);

/// Passes the application's STDERR on, byte for byte.
fn pass_stderr(data: &[u8]) {
    if let Some(&last) = data.last() {
        let _ = io::stderr().write_all(data);
        STDERR_MID_LINE.store(last != b'\n', Ordering::Relaxed);
    }
}

/// Writes a message line to standard error, on a line of its own; a failure to do so
/// is ignored (there is nowhere left to report it).
pub(crate) fn say(message: &str) {
    say_raw(&format!("fcgi: {message}"));
}

/// Writes a line to standard error as it is (`-v`'s lines), on a line of its own.
pub(crate) fn say_raw(line: &str) {
    let start = if STDERR_MID_LINE.swap(false, Ordering::Relaxed) {
        "\n"
    } else {
        ""
    };
    let _ = writeln!(io::stderr(), "{start}{line}");
}

fn main() -> ExitCode {
    let report = |failure: Failure| {
        say(&failure.message);
        failure.code
    };
    let code = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Print(text)) => print_text(&text),
        Ok(Command::Serve(args)) => serve::run(*args),
        Ok(Command::Status(args)) => status::run(args).unwrap_or_else(report),
        Ok(Command::Run(args)) => {
            verbose::init(args.verbose);
            run(*args).unwrap_or_else(report)
        }
        Err(message) => {
            say(&format!("{message} (see fcgi --help)"));
            EXIT_USAGE
        }
    };
    ExitCode::from(code)
}

fn print_text(text: &[u8]) -> u8 {
    match Output::stdout().write(text) {
        Ok(_) => 0,
        Err(failure) => {
            say(&failure.message);
            failure.code
        }
    }
}

/// Whether the reader of the output is still there.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Open,
    /// Standard output is a pipe whose reader went away: stop quietly.
    Closed,
}

/// Where the output goes: standard output, unbuffered, or the `-o` file.
struct Output {
    writer: Box<dyn Write>,
    /// The `-o` file; `None` for standard output.
    path: Option<PathBuf>,
}

impl Output {
    fn stdout() -> Self {
        // A duplicate of the descriptor writes each chunk straight through, where
        // `io::Stdout` would hold back the bytes after the last newline.
        #[cfg(unix)]
        let writer: Box<dyn Write> = {
            use std::os::fd::AsFd;
            match io::stdout().as_fd().try_clone_to_owned() {
                Ok(fd) => Box::new(File::from(fd)),
                Err(_) => Box::new(io::stdout()),
            }
        };
        // Elsewhere `Output::write` flushes after each chunk.
        #[cfg(not(unix))]
        let writer: Box<dyn Write> = Box::new(io::stdout());
        Self { writer, path: None }
    }

    fn open(path: Option<&Path>) -> Result<Self, Failure> {
        match path {
            None => Ok(Self::stdout()),
            Some(path) => match File::create(path) {
                Ok(file) => Ok(Self {
                    writer: Box::new(file),
                    path: Some(path.to_owned()),
                }),
                Err(e) => Err(Failure::new(
                    EXIT_LOCAL,
                    format!("cannot create {}: {e}", path.display()),
                )),
            },
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<Flow, Failure> {
        match self
            .writer
            .write_all(data)
            .and_then(|()| self.writer.flush())
        {
            Ok(()) => Ok(Flow::Open),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe && self.path.is_none() => {
                Ok(Flow::Closed)
            }
            Err(e) => Err(Failure::new(
                EXIT_LOCAL,
                match &self.path {
                    Some(path) => format!("cannot write {}: {e}", path.display()),
                    None => format!("cannot write to standard output: {e}"),
                },
            )),
        }
    }
}

fn run(args: Args) -> Result<u8, Failure> {
    if let Some(load) = &args.load {
        return load::run(&args, load);
    }
    let mut options = Options::default();
    if let Some(t) = args.timeout {
        options.connect_timeout = Some(t);
        options.read_timeout = Some(t);
        options.write_timeout = Some(t);
        options.total_timeout = Some(t);
    }
    // STDERR is passed on as it arrives, never kept: nothing to bound.
    options.config.max_stderr_bytes = usize::MAX;
    let mut client = Client::with_options(args.address.clone(), options);
    match &args.mode {
        Mode::Values => values(&mut client, &args),
        Mode::Request { script_filename } => {
            let (script_name, document_root) = split_script(script_filename);
            let target = Target {
                script_filename,
                script_name: &script_name,
                document_root: document_root.as_deref(),
            };
            request(&mut client, &args, &target, None)
        }
        Mode::Ping(path) => {
            let target = Target {
                script_filename: path,
                script_name: path,
                document_root: None,
            };
            request(&mut client, &args, &target, Some(path))
        }
    }
}

/// `--values`.
fn values(client: &mut Client, args: &Args) -> Result<u8, Failure> {
    let values = client
        .get_values(&[FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS])
        .map_err(Failure::client)?;
    let mut text = Vec::new();
    for (name, value) in values.iter() {
        text.extend_from_slice(name);
        text.push(b'=');
        text.extend_from_slice(value);
        text.push(b'\n');
    }
    Output::open(args.output.as_deref())?.write(&text)?;
    Ok(0)
}

/// What the request is for.
struct Target<'a> {
    script_filename: &'a str,
    /// `SCRIPT_NAME` unless `-p` sets it.
    script_name: &'a str,
    document_root: Option<&'a str>,
}

/// `SCRIPT_NAME` (`/` and the file name) and `DOCUMENT_ROOT` (the directory; none for
/// a bare file name) of a script path: `/srv/www/hello.php` gives `/hello.php` and
/// `/srv/www`.
fn split_script(path: &str) -> (String, Option<String>) {
    match path.rfind('/') {
        Some(i) => {
            let dir = if i == 0 { "/" } else { &path[..i] };
            (format!("/{}", &path[i + 1..]), Some(dir.to_owned()))
        }
        None => (format!("/{path}"), None),
    }
}

/// The value of the last `-p NAME=...`, when it is UTF-8.
fn param_override<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.params
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn build_params(args: &Args, target: &Target<'_>) -> Result<Params, Failure> {
    let method = match (&args.method, &args.data) {
        (Some(m), _) => m.as_str(),
        (None, Some(_)) => "POST",
        (None, None) => "GET",
    };
    let script_name = param_override(args, "SCRIPT_NAME").unwrap_or(target.script_name);
    let query = args.query.as_deref().unwrap_or("");
    let request_uri = if query.is_empty() {
        script_name.to_owned()
    } else {
        format!("{script_name}?{query}")
    };
    let mut builder = ParamsBuilder::new(method, &request_uri)
        .script(script_name, target.script_filename)
        .server_software(SOFTWARE);
    if let Some(root) = target.document_root {
        builder = builder.document_root(root);
    }
    let has = |name: &str| {
        args.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("Host") {
        builder = builder.server_name("localhost");
    }
    let policy = HeaderPolicy::default();
    for (name, value) in &args.headers {
        if !policy.allows(name.as_bytes()) {
            let why = if name.eq_ignore_ascii_case("proxy") {
                "HTTP_PROXY would redirect the application's outgoing requests (httpoxy)"
            } else {
                "only names made of A-Z a-z 0-9 - are sent, as nginx does"
            };
            say(&format!("warning: header {name:?} not sent: {why}"));
        }
        builder = builder.header_bytes(name.as_bytes(), value);
    }
    if args.data.is_some() && !has("Content-Type") {
        builder = builder.header("Content-Type", FORM);
    }
    let invalid =
        |e: fcgi_proto::ParamError| Failure::new(EXIT_USAGE, format!("invalid request: {e}"));
    let mut params = builder
        .param("REMOTE_ADDR", "127.0.0.1")
        .param("SERVER_PORT", "80")
        .build()
        .map_err(invalid)?;
    for (name, value) in &args.params {
        params.insert(name, value).map_err(invalid)?;
    }
    Ok(params)
}

/// Attaches the `-d` body.
fn with_body(request: Request, data: Option<&Data>) -> Result<Request, Failure> {
    let read_all = |from: &mut dyn Read, what: &dyn std::fmt::Display| {
        let mut body = Vec::new();
        from.read_to_end(&mut body)
            .map(|_| body)
            .map_err(|e| Failure::new(EXIT_LOCAL, format!("cannot read {what}: {e}")))
    };
    Ok(match data {
        None => request,
        Some(Data::Literal(bytes)) => request.body(bytes.clone()),
        Some(Data::Stdin) => request.body(read_all(&mut io::stdin().lock(), &"standard input")?),
        Some(Data::File(path)) => {
            let cannot = |e: io::Error| {
                Failure::new(EXIT_LOCAL, format!("cannot read {}: {e}", path.display()))
            };
            let mut file = File::open(path).map_err(cannot)?;
            let meta = file.metadata().map_err(cannot)?;
            if meta.is_file() {
                // Streamed in pieces; CONTENT_LENGTH from the size.
                request.body_reader(file, meta.len())
            } else {
                // A pipe or a device has no size to announce: read it all first.
                request.body(read_all(&mut file, &path.display())?)
            }
        }
    })
}

/// `-i`: the status line, every header in order, a blank line; LF line ends.
fn format_head(head: &ResponseHead) -> Vec<u8> {
    let mut text = format!("Status: {}", head.status()).into_bytes();
    if let Some(reason) = head
        .reason()
        .filter(|r| !r.is_empty())
        .or_else(|| reason::phrase(head.status()))
    {
        text.push(b' ');
        text.extend_from_slice(reason.as_bytes());
    }
    text.push(b'\n');
    for header in head.headers() {
        text.extend_from_slice(header.name().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(header.value());
        text.push(b'\n');
    }
    text.push(b'\n');
    text
}

/// Remembers whether a body is exactly `pong`, without keeping it.
#[derive(Default)]
struct PongProbe {
    seen: Vec<u8>,
    len: u64,
}

impl PongProbe {
    fn feed(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        let room = 4usize.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn is_pong(&self) -> bool {
        self.len == 4 && self.seen == b"pong"
    }
}

/// A request (or `--ping` when `ping` is its path): prints the response; answers the
/// exit status.
fn request(
    client: &mut Client,
    args: &Args,
    target: &Target<'_>,
    ping: Option<&str>,
) -> Result<u8, Failure> {
    let params = build_params(args, target)?;
    let request = with_body(Request::new(params), args.data.as_ref())?.on_stderr(pass_stderr);
    let mut reader = client.request_streaming(request).map_err(Failure::client)?;
    let status = reader.status();
    if args.fail && status >= 400 {
        let reason = reader
            .head()
            .reason()
            .or_else(|| reason::phrase(status))
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        return Err(Failure::new(
            EXIT_FAIL,
            format!("the server answered {status}{reason}"),
        ));
    }
    let mut out = Output::open(args.output.as_deref())?;
    if args.include && out.write(&format_head(reader.head()))? == Flow::Closed {
        return Ok(0);
    }
    let mut probe = PongProbe::default();
    while let Some(chunk) = reader.chunk().map_err(Failure::client)? {
        probe.feed(&chunk);
        if out.write(&chunk)? == Flow::Closed {
            return Ok(0);
        }
    }
    match ping {
        Some(path) if !probe.is_pong() => Err(Failure::new(
            EXIT_LOCAL,
            format!(
                "no pong from {} at {path} (status {status}, {} body bytes)",
                args.address, probe.len
            ),
        )),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_paths() {
        assert_eq!(
            split_script("/srv/www/hello.php"),
            ("/hello.php".into(), Some("/srv/www".into()))
        );
        assert_eq!(
            split_script("/hello.php"),
            ("/hello.php".into(), Some("/".into()))
        );
        assert_eq!(split_script("hello.php"), ("/hello.php".into(), None));
        assert_eq!(
            split_script("app/x.php"),
            ("/x.php".into(), Some("app".into()))
        );
    }

    #[test]
    fn pong_probe() {
        let mut p = PongProbe::default();
        p.feed(b"po");
        p.feed(b"ng");
        assert!(p.is_pong());
        p.feed(b"\n");
        assert!(!p.is_pong());
        let mut p = PongProbe::default();
        p.feed(b"pon");
        assert!(!p.is_pong());
    }
}
