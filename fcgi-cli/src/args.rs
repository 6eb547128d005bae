//! The command line: parsed by hand, getopt style.
//!
//! Short options take their value attached (`-XPOST`) or as the next argument
//! (`-X POST`), and flags cluster (`-iXPUT`); long options take it after `=` or as the
//! next argument. A value is taken as is, even when it starts with `-`. `--` ends the
//! options. A single-value option given twice keeps the last value; `-H` and `-p`
//! repeat; `-d` may be given once.
//!
//! `-n` or `-c` turns on load mode ([`Load`]); `--connections`, `--multiplex` and
//! `--expect-sha256` belong to it alone.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use fcgi_blocking::Address;

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
    /// Talk to a server.
    Run(Box<Args>),
    /// `fcgi serve`: an HTTP gateway in front of the server.
    Serve(crate::serve::ServeCommand),
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
    /// Load mode (`-n`, `-c`): many requests, checked and summed up, none printed.
    pub(crate) load: Option<Load>,
}

/// Load mode's settings, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Load {
    /// `-n`: requests in all.
    pub(crate) requests: u64,
    /// `-c`: requests in flight at once.
    pub(crate) concurrency: usize,
    /// `--connections`: the pool's bound on open connections.
    pub(crate) connections: usize,
    /// `--multiplex`.
    pub(crate) multiplex: bool,
    /// `--expect-sha256`: the sha256 every response body must have.
    pub(crate) expect_sha256: Option<[u8; 32]>,
}

/// The largest `-c` and `--connections`: far above what one machine's descriptors
/// allow, and a bound that keeps the pool's semaphore in its range.
pub(crate) const MAX_CONCURRENCY: usize = 100_000;

/// A usage error: the message, without the `fcgi: ` prefix.
pub(crate) type UsageError = String;

/// The text of an argument, or a usage error naming `what`.
pub(crate) fn text(value: OsString, what: &str) -> Result<String, UsageError> {
    utf8(value, what)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Method,
    Query,
    Header,
    Param,
    Data,
    Include,
    Output,
    Timeout,
    Fail,
    Values,
    Ping,
    Help,
    Version,
    Requests,
    Concurrency,
    Connections,
    Multiplex,
    ExpectSha256,
}

impl Opt {
    fn from_short(c: u8) -> Option<Opt> {
        Some(match c {
            b'X' => Opt::Method,
            b'q' => Opt::Query,
            b'H' => Opt::Header,
            b'p' => Opt::Param,
            b'd' => Opt::Data,
            b'i' => Opt::Include,
            b'o' => Opt::Output,
            b'n' => Opt::Requests,
            b'c' => Opt::Concurrency,
            _ => return None,
        })
    }

    fn from_long(name: &[u8]) -> Option<Opt> {
        Some(match name {
            b"method" => Opt::Method,
            b"query" => Opt::Query,
            b"header" => Opt::Header,
            b"param" => Opt::Param,
            b"data" => Opt::Data,
            b"include" => Opt::Include,
            b"output" => Opt::Output,
            b"timeout" => Opt::Timeout,
            b"fail" => Opt::Fail,
            b"values" => Opt::Values,
            b"ping" => Opt::Ping,
            b"help" => Opt::Help,
            b"version" => Opt::Version,
            b"requests" => Opt::Requests,
            b"concurrency" => Opt::Concurrency,
            b"connections" => Opt::Connections,
            b"multiplex" => Opt::Multiplex,
            b"expect-sha256" => Opt::ExpectSha256,
            _ => return None,
        })
    }

    /// Whether the option needs a value (`--ping` has an optional one, handled apart).
    fn takes_value(self) -> bool {
        matches!(
            self,
            Opt::Method
                | Opt::Query
                | Opt::Header
                | Opt::Param
                | Opt::Data
                | Opt::Output
                | Opt::Timeout
                | Opt::Requests
                | Opt::Concurrency
                | Opt::Connections
                | Opt::ExpectSha256
        )
    }

    /// The option's name for messages.
    fn name(self) -> &'static str {
        match self {
            Opt::Method => "-X/--method",
            Opt::Query => "-q/--query",
            Opt::Header => "-H/--header",
            Opt::Param => "-p/--param",
            Opt::Data => "-d/--data",
            Opt::Include => "-i/--include",
            Opt::Output => "-o/--output",
            Opt::Timeout => "--timeout",
            Opt::Fail => "--fail",
            Opt::Values => "--values",
            Opt::Ping => "--ping",
            Opt::Help => "--help",
            Opt::Version => "--version",
            Opt::Requests => "-n/--requests",
            Opt::Concurrency => "-c/--concurrency",
            Opt::Connections => "--connections",
            Opt::Multiplex => "--multiplex",
            Opt::ExpectSha256 => "--expect-sha256",
        }
    }

    /// Whether the option shapes a request (none of them goes with `--values`).
    fn is_request_option(self) -> bool {
        matches!(
            self,
            Opt::Method
                | Opt::Query
                | Opt::Header
                | Opt::Param
                | Opt::Data
                | Opt::Include
                | Opt::Fail
        )
    }

    /// Whether the option belongs to load mode alone (`-n` and `-c` turn it on).
    fn is_load_option(self) -> bool {
        matches!(
            self,
            Opt::Requests
                | Opt::Concurrency
                | Opt::Connections
                | Opt::Multiplex
                | Opt::ExpectSha256
        )
    }
}

/// Options seen so far.
#[derive(Default)]
struct Seen {
    method: Option<String>,
    query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    params: Vec<(String, Vec<u8>)>,
    data: Option<Data>,
    include: bool,
    output: Option<PathBuf>,
    timeout: Option<Duration>,
    fail: bool,
    values: bool,
    /// `--ping`, with its path when one was given.
    ping: Option<Option<String>>,
    /// A `--ping` path taken from the next argument; it may turn out to be the address.
    ping_path_was_separate: bool,
    /// The first option given that only a request uses.
    first_request_option: Option<Opt>,
    /// `-n`.
    requests: Option<u64>,
    /// `-c`.
    concurrency: Option<usize>,
    connections: Option<usize>,
    multiplex: bool,
    expect_sha256: Option<[u8; 32]>,
    /// The first option given that only load mode uses.
    first_load_option: Option<Opt>,
    positionals: Vec<OsString>,
}

fn utf8(value: OsString, what: &str) -> Result<String, UsageError> {
    value
        .into_string()
        .map_err(|v| format!("{what} is not valid UTF-8: {}", v.to_string_lossy()))
}

/// Parses a header given as `Name: value`.
fn parse_header(value: OsString) -> Result<(String, Vec<u8>), UsageError> {
    let bytes = value.into_vec();
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
    let bytes = value.into_vec();
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

fn parse_timeout(value: OsString) -> Result<Duration, UsageError> {
    let text = utf8(value, "the value of --timeout")?;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("bad --timeout {text:?}: want a number of seconds above 0"))
}

/// A count for `-n`, `-c` or `--connections`: a whole number from 1 to `max`.
fn parse_count(value: OsString, opt: Opt, max: u64) -> Result<u64, UsageError> {
    let text = utf8(value, &format!("the value of {}", opt.name()))?;
    let trimmed = text.trim();
    trimmed
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| trimmed.parse::<u64>().ok())
        .flatten()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            format!(
                "bad {} {text:?}: want a whole number from 1 to {max}",
                opt.name()
            )
        })
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

fn check_ping_path(path: String) -> Result<String, UsageError> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(format!("bad --ping path {path:?}: it starts with /"))
    }
}

impl Seen {
    fn set(&mut self, opt: Opt, value: OsString) -> Result<(), UsageError> {
        match opt {
            Opt::Method => {
                let method = utf8(value, "the method")?;
                if method.is_empty() {
                    return Err("empty method".into());
                }
                self.method = Some(method);
            }
            Opt::Query => {
                let query = utf8(value, "the query string")?;
                self.query = Some(query.strip_prefix('?').unwrap_or(&query).to_owned());
            }
            Opt::Header => self.headers.push(parse_header(value)?),
            Opt::Param => self.params.push(parse_param(value)?),
            Opt::Data => {
                if self.data.is_some() {
                    return Err("-d/--data given more than once".into());
                }
                let bytes = value.into_vec();
                self.data = Some(match bytes.strip_prefix(b"@") {
                    Some(b"-") => Data::Stdin,
                    Some(path) if !path.is_empty() => {
                        Data::File(PathBuf::from(OsStr::from_bytes(path)))
                    }
                    Some(_) => return Err("-d @ needs a file name, or - for stdin".into()),
                    None => Data::Literal(bytes),
                });
            }
            Opt::Output => {
                if value.is_empty() {
                    return Err("empty --output file name".into());
                }
                self.output = Some(PathBuf::from(value));
            }
            Opt::Timeout => self.timeout = Some(parse_timeout(value)?),
            Opt::Requests => self.requests = Some(parse_count(value, opt, u64::MAX)?),
            Opt::Concurrency => {
                self.concurrency = Some(parse_count(value, opt, MAX_CONCURRENCY as u64)? as usize)
            }
            Opt::Connections => {
                self.connections = Some(parse_count(value, opt, MAX_CONCURRENCY as u64)? as usize)
            }
            Opt::ExpectSha256 => self.expect_sha256 = Some(parse_sha256(value)?),
            Opt::Include
            | Opt::Fail
            | Opt::Values
            | Opt::Ping
            | Opt::Help
            | Opt::Version
            | Opt::Multiplex => {} // flags: handled by `flag`, never passed here
        }
        Ok(())
    }

    /// A flag; answers the command when it ends parsing (`--help`, `--version`).
    fn flag(&mut self, opt: Opt) -> Option<Command> {
        match opt {
            Opt::Include => self.include = true,
            Opt::Fail => self.fail = true,
            Opt::Values => self.values = true,
            Opt::Multiplex => self.multiplex = true,
            Opt::Help => return Some(Command::Help),
            Opt::Version => return Some(Command::Version),
            _ => {}
        }
        None
    }

    fn note(&mut self, opt: Opt) {
        if opt.is_request_option() && self.first_request_option.is_none() {
            self.first_request_option = Some(opt);
        }
        if opt.is_load_option() && self.first_load_option.is_none() {
            self.first_load_option = Some(opt);
        }
    }

    /// Load mode's settings when `-n` or `-c` was given; a usage error for a load option
    /// without them, or for an option that prints one response.
    fn load(&self) -> Result<Option<Load>, UsageError> {
        if self.requests.is_none() && self.concurrency.is_none() {
            return match self.first_load_option {
                Some(opt) => Err(format!(
                    "{} belongs to load mode: give -n/--requests or -c/--concurrency too",
                    opt.name()
                )),
                None => Ok(None),
            };
        }
        let conflict = if self.values {
            Some("--values")
        } else if self.ping.is_some() {
            Some("--ping")
        } else if self.include {
            Some("-i/--include")
        } else if self.output.is_some() {
            Some("-o/--output")
        } else {
            None
        };
        if let Some(name) = conflict {
            return Err(format!(
                "{name} cannot be used in load mode (-n/-c): it checks the responses, \
                 prints none"
            ));
        }
        let concurrency = self.concurrency.unwrap_or(1);
        Ok(Some(Load {
            requests: self.requests.unwrap_or(concurrency as u64),
            concurrency,
            connections: self.connections.unwrap_or(concurrency),
            multiplex: self.multiplex,
            expect_sha256: self.expect_sha256,
        }))
    }
}

/// Parses the arguments after the program's name.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().peekable();
    // No address is spelled `serve`: the word is free for the subcommand.
    if args.next_if(|first| first == "serve").is_some() {
        return crate::serve::parse(args).map(Command::Serve);
    }
    let mut seen = Seen::default();
    let mut options_done = false;
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if options_done || bytes == b"-" || !bytes.starts_with(b"-") {
            seen.positionals.push(arg);
            continue;
        }
        if bytes == b"--" {
            options_done = true;
            continue;
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]))),
                None => (long, None),
            };
            let Some(opt) = Opt::from_long(name) else {
                return Err(format!(
                    "unknown option --{}",
                    String::from_utf8_lossy(name)
                ));
            };
            seen.note(opt);
            if opt == Opt::Ping {
                let path = match inline {
                    Some(path) => Some(check_ping_path(utf8(path.to_owned(), "the --ping path")?)?),
                    None => match args.next_if(|next| next.as_bytes().starts_with(b"/")) {
                        Some(path) => {
                            seen.ping_path_was_separate = true;
                            Some(utf8(path, "the --ping path")?)
                        }
                        None => None,
                    },
                };
                seen.ping = Some(path);
            } else if opt.takes_value() {
                let value = match inline {
                    Some(v) => v.to_owned(),
                    None => args
                        .next()
                        .ok_or_else(|| format!("option {} needs a value", opt.name()))?,
                };
                seen.set(opt, value)?;
            } else if inline.is_some() {
                return Err(format!("option {} takes no value", opt.name()));
            } else if let Some(command) = seen.flag(opt) {
                return Ok(command);
            }
            continue;
        }
        // A cluster of short options: flags, then at most one option with a value.
        let cluster = &bytes[1..];
        for (i, &c) in cluster.iter().enumerate() {
            let Some(opt) = Opt::from_short(c) else {
                return Err(format!(
                    "unknown option -{}",
                    String::from_utf8_lossy(&cluster[i..i + 1])
                ));
            };
            seen.note(opt);
            if opt.takes_value() {
                let rest = &cluster[i + 1..];
                let value = if rest.is_empty() {
                    args.next()
                        .ok_or_else(|| format!("option {} needs a value", opt.name()))?
                } else {
                    OsStr::from_bytes(rest).to_owned()
                };
                seen.set(opt, value)?;
                break;
            }
            if let Some(command) = seen.flag(opt) {
                return Ok(command);
            }
        }
    }
    finish(seen).map(|args| Command::Run(Box::new(args)))
}

fn finish(mut seen: Seen) -> Result<Args, UsageError> {
    // `fcgi --ping /run/php.sock`: the argument after --ping was the address.
    if seen.positionals.is_empty() && seen.ping_path_was_separate {
        if let Some(path) = seen.ping.take().flatten() {
            seen.positionals.push(path.into());
            seen.ping = Some(None);
        }
    }
    let load = seen.load()?;
    let mut positionals = std::mem::take(&mut seen.positionals).into_iter();
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
    if seen.values && seen.ping.is_some() {
        return Err("--values and --ping cannot be combined".into());
    }
    let mode = if seen.values {
        if script.is_some() {
            return Err("--values sends no request: give no SCRIPT_FILENAME".into());
        }
        if let Some(opt) = seen.first_request_option {
            return Err(format!(
                "--values sends no request: {} cannot be used with it",
                opt.name()
            ));
        }
        Mode::Values
    } else if let Some(path) = seen.ping.take() {
        if script.is_some() {
            return Err("--ping requests its PATH: give no SCRIPT_FILENAME".into());
        }
        Mode::Ping(check_ping_path(path.unwrap_or_else(|| "/ping".into()))?)
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
        method: seen.method,
        query: seen.query,
        headers: seen.headers,
        params: seen.params,
        data: seen.data,
        include: seen.include,
        output: seen.output,
        timeout: seen.timeout,
        fail: seen.fail,
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
        assert!(parse_strs(&["--ping=p", "/s"]).is_err());
        assert!(parse_strs(&["--ping", "/s", "/x.php"]).is_ok());
        assert!(parse_strs(&["--ping", "/p", "/s", "/x.php"]).is_err());
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
        assert!(matches!(parse_strs(&["--help"]), Ok(Command::Help)));
        assert!(matches!(
            parse_strs(&["/s", "--version"]),
            Ok(Command::Version)
        ));
        assert!(matches!(
            parse_strs(&["-i", "--help", "-z"]),
            Ok(Command::Help)
        ));
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
    }

    #[test]
    fn load_mode() {
        assert_eq!(run(&["/s", "/x"]).load, None);
        let load = |args: &[&str]| run(args).load.expect("load mode");
        assert_eq!(
            load(&["-n", "100", "-c8", "/s", "/x"]),
            Load {
                requests: 100,
                concurrency: 8,
                connections: 8,
                multiplex: false,
                expect_sha256: None,
            }
        );
        let l = load(&["--requests=5", "/s", "/x"]);
        assert_eq!((l.requests, l.concurrency, l.connections), (5, 1, 1));
        let l = load(&["--concurrency", "4", "/s", "/x"]);
        assert_eq!((l.requests, l.concurrency, l.connections), (4, 4, 4));
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
