//! `fcgi serve`: an HTTP/1.1 and HTTP/2 server for a document root, as nginx serves one
//! in front of php-fpm: `*.php` through FastCGI, other files static, directories to
//! `index.php`, optionally a front controller. The work is `fcgi_http`'s (`Gateway`,
//! `Server`, `HealthCheck`, `AccessLogLayer`, `WeakEtagLayer`) and tower-http's
//! compression; this is the command line and a log of warnings on standard error.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fcgi_http::{
    AccessLogLayer, Gateway, HealthCheck, IpNet, ScriptConfig, Server, ServiceOptions,
    WeakEtagLayer, ACCESS_LOG_TARGET,
};
use fcgi_proto::Address;
use fcgi_tokio::{Client, Options};
use tower_http::compression::CompressionLayer;
use tower_layer::Layer as _;
use tracing_subscriber::filter::Targets;

use crate::args::{parse_count, parse_timeout, utf8, UsageError, MAX_CONCURRENCY};
use crate::{error_chain, say};

const AFTER_HELP: &str = "\
Requests with a .php path segment (/a.php, /a.php/more) run that script
(404 when it is missing); a directory runs its index file (301 to add the
trailing /; 403 without one); with --front-controller, any other path that
names no file or directory runs that script, with REQUEST_URI and
QUERY_STRING as sent (nginx's try_files $uri $uri/ /index.php$is_args$args).
Other files are sent as they are (GET and HEAD): Content-Type,
Last-Modified, ETag, If-None-Match, If-Modified-Since, single ranges (206,
416), and a .br, .zst or .gz sibling when the client accepts it. A path that
climbs out of DIR, by .. or by a symbolic link, is 403; a path with a segment
starting with . is 404 (but /.well-known/) unless --allow-dotfiles.
Responses are compressed (gzip, br, zstd, from Accept-Encoding), streamed,
unless already encoded, tiny, images, or --no-compress. Request bodies of
unknown length (chunked) are spooled (256 KiB in memory, the rest in a
temporary file) and sent with their length. HTTP/1.1 and HTTP/2: over TLS by
ALPN, in clear text with prior knowledge (h2c).
Several ADDRESSes: each request goes to the one with the fewest requests in
flight; one that fails to connect or refuses is passed over for 10 s; with
--health-check, one whose page fails is out until it answers again.
The application cannot be reached: 502; it takes longer than --read-timeout to
answer: 504. Warnings (those errors, the application's FCGI_STDERR) go to
standard error. SIGTERM or SIGINT stops it: it accepts no more connections,
lets the requests in flight finish (at most 30 s) and exits with 0 (1 if it
had to cut some).";

/// `fcgi serve`'s command line, as clap reads it; [`ServeCli::check`] checks it.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "fcgi serve - an HTTP server for a PHP site, as nginx in front of php-fpm:\n\
             *.php through FastCGI, other files static, directories to index.php",
    override_usage = "fcgi serve [--listen ADDR] --root DIR [OPTIONS] <ADDRESS>...",
    after_help = AFTER_HELP
)]
pub(crate) struct ServeCli {
    /// the FastCGI servers: HOST:PORT, [V6]:PORT, unix:/path/to.sock, or a socket path
    /// that starts with / or ./
    #[arg(value_name = "ADDRESS")]
    upstreams: Vec<OsString>,
    /// listen on ADDR, HOST:PORT (default 127.0.0.1:8080; port 0 takes a free port); the
    /// address is printed
    #[arg(long, value_name = "ADDR")]
    listen: Option<OsString>,
    /// the document root; the FastCGI server must see the same files at the same path
    /// (sent as SCRIPT_FILENAME)
    #[arg(long, value_name = "DIR")]
    root: Option<OsString>,
    /// keep at most K connections to each FastCGI server (default 8); each pins one
    /// php-fpm worker, so keep it at most the pool's pm.max_children
    #[arg(long, value_name = "K")]
    connections: Option<OsString>,
    /// run SCRIPT (such as /index.php) for paths that name no file or directory
    #[arg(long, value_name = "SCRIPT")]
    front_controller: Option<OsString>,
    /// the file a directory runs (default index.php)
    #[arg(long, value_name = "NAME")]
    index: Option<OsString>,
    /// send this param with every request, over any other (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    param: Vec<OsString>,
    /// serve HTTPS with this PEM certificate chain (with --tls-key); sets HTTPS=on
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<OsString>,
    /// the PEM private key of --tls-cert
    #[arg(long, value_name = "FILE")]
    tls_key: Option<OsString>,
    /// do not compress responses
    #[arg(long)]
    no_compress: bool,
    /// serve paths with a segment that starts with . (.env, .git/)
    #[arg(long)]
    allow_dotfiles: bool,
    /// the largest request body, as 100M, 2G or bytes (default 1G); 413 above
    #[arg(long, value_name = "SIZE")]
    max_body: Option<OsString>,
    /// bound on each wait for the FastCGI server's answer, in seconds (default 60)
    #[arg(long, value_name = "SECS")]
    read_timeout: Option<OsString>,
    /// write a line per request to FILE (- for standard output): nginx's combined format
    /// with the request time and the upstream time
    #[arg(long, value_name = "FILE")]
    access_log: Option<OsString>,
    /// believe X-Forwarded-For and X-Forwarded-Proto from these peers only, as CIDR
    /// or an address (repeatable)
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<OsString>,
    /// ask PATH (php-fpm's ping.path) of each FastCGI server every 5 s; one that fails
    /// gets no requests until it answers again
    #[arg(long, value_name = "PATH")]
    health_check: Option<OsString>,
    /// let the application answer X-Accel-Redirect or X-Sendfile with a file under DIR,
    /// which is then sent in its place
    #[arg(long, value_name = "DIR")]
    sendfile_root: Option<OsString>,
    /// stream request bodies of known length to the application as they arrive, instead
    /// of reading them whole before taking a FastCGI connection (nginx's
    /// fastcgi_request_buffering off); each slow upload then pins a php-fpm worker
    #[arg(long)]
    no_request_buffering: bool,
    /// let the application wait for the client, instead of reading its response at its
    /// own speed into memory (256 KiB per response) and a temporary file (nginx's
    /// fastcgi_buffering off); a response with X-Accel-Buffering: no streams either way
    #[arg(long)]
    no_response_buffering: bool,
    /// the largest temporary file of one buffered response, as 1G or bytes (default 1G;
    /// nginx's fastcgi_max_temp_file_size); 0 keeps responses in memory only; past it
    /// the response streams
    #[arg(long, value_name = "SIZE")]
    max_temp_file: Option<OsString>,
    /// the most bytes in the temporary files of all buffered responses together
    /// (default 4G); past it responses stream
    #[arg(long, value_name = "SIZE")]
    max_temp_total: Option<OsString>,
    /// close a connection whose request head has not all arrived within SECS (default
    /// 10; nginx's client_header_timeout, 60)
    #[arg(long, value_name = "SECS")]
    client_header_timeout: Option<OsString>,
    /// answer 408 when the client sends nothing of its request body for SECS (default
    /// 30; nginx's client_body_timeout, 60)
    #[arg(long, value_name = "SECS")]
    client_body_timeout: Option<OsString>,
    /// close a connection whose client takes nothing of the response for SECS
    /// (default 30; nginx's send_timeout, 60)
    #[arg(long, value_name = "SECS")]
    send_timeout: Option<OsString>,
    /// close a keep-alive connection idle for SECS (default 60; nginx's
    /// keepalive_timeout, 75)
    #[arg(long, value_name = "SECS")]
    keepalive_timeout: Option<OsString>,
    /// keep at most N client connections open (default 1024; nginx's
    /// worker_connections); at the limit accepting pauses and idle ones are closed
    #[arg(long, value_name = "N")]
    max_connections: Option<OsString>,
    /// the largest request head, as 64K or bytes (default 64K, at least 8K; nginx's
    /// large_client_header_buffers); 431 above
    #[arg(long, value_name = "SIZE")]
    max_head: Option<OsString>,
}

/// `fcgi serve`'s settings.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ServeArgs {
    pub(crate) listen: SocketAddr,
    pub(crate) root: String,
    pub(crate) upstreams: Vec<Address>,
    pub(crate) connections: usize,
    pub(crate) front_controller: Option<String>,
    pub(crate) index: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    pub(crate) compress: bool,
    pub(crate) allow_dotfiles: bool,
    pub(crate) max_body: u64,
    pub(crate) read_timeout: Duration,
    pub(crate) access_log: Option<PathBuf>,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) health_check: Option<String>,
    pub(crate) sendfile_root: Option<PathBuf>,
    pub(crate) request_buffering: bool,
    pub(crate) response_buffering: bool,
    pub(crate) max_temp_file: u64,
    pub(crate) max_temp_total: u64,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_head: usize,
}

impl ServeCli {
    /// The checks and defaults.
    pub(crate) fn check(self) -> Result<ServeArgs, UsageError> {
        let listen = match self.listen {
            Some(l) => utf8(l, "--listen")?,
            None => "127.0.0.1:8080".into(),
        };
        let listen = listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("--listen {listen}: not HOST:PORT"))?;
        let root = utf8(self.root.ok_or("missing --root DIR")?, "--root")?;
        if root.is_empty() {
            return Err("empty --root".into());
        }
        let connections = match self.connections {
            None => 8,
            Some(k) => parse_count(k, "--connections", MAX_CONCURRENCY as u64)? as usize,
        };
        if self.upstreams.is_empty() {
            return Err("missing ADDRESS (the FastCGI server)".into());
        }
        let upstreams = self
            .upstreams
            .into_iter()
            .map(|a| {
                let a = utf8(a, "ADDRESS")?;
                a.parse::<Address>().map_err(|e| format!("{e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path_option = |value: OsString, name: &str| -> Result<String, UsageError> {
            let value = utf8(value, name)?;
            if value.is_empty() {
                return Err(format!("empty {name}"));
            }
            Ok(value)
        };
        let front_controller = self
            .front_controller
            .map(|s| path_option(s, "--front-controller"))
            .transpose()?;
        let index = match self.index {
            Some(i) => {
                let index = path_option(i, "--index")?;
                if index.contains('/') {
                    return Err(format!("bad --index {index:?}: a file name, without /"));
                }
                index
            }
            None => "index.php".into(),
        };
        let params = self
            .param
            .into_iter()
            .map(|p| {
                let p = utf8(p, "--param")?;
                match p.split_once('=') {
                    Some((name, value)) if !name.is_empty() => {
                        Ok((name.to_owned(), value.to_owned()))
                    }
                    _ => Err(format!("bad --param {p:?}: want NAME=VALUE")),
                }
            })
            .collect::<Result<Vec<_>, UsageError>>()?;
        let tls = match (self.tls_cert, self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        let max_body = match self.max_body {
            Some(size) => parse_size(utf8(size, "--max-body")?)?,
            None => 1 << 30,
        };
        let read_timeout = match self.read_timeout {
            Some(t) => parse_timeout(t).map_err(|e| e.replace("--timeout", "--read-timeout"))?,
            None => Duration::from_secs(60),
        };
        let trusted_proxies = self
            .trusted_proxy
            .into_iter()
            .map(|t| {
                let t = utf8(t, "--trusted-proxy")?;
                fcgi_http::parse_trusted_proxy(&t)
                    .map_err(|_| format!("bad --trusted-proxy {t:?}: want a CIDR or an address"))
            })
            .collect::<Result<Vec<_>, UsageError>>()?;
        let health_check = self
            .health_check
            .map(|p| path_option(p, "--health-check"))
            .transpose()?;
        let timeout = |value: Option<OsString>, name: &str, default: Duration| match value {
            Some(t) => parse_timeout(t).map_err(|e| e.replace("--timeout", name)),
            None => Ok(default),
        };
        let header_timeout = timeout(
            self.client_header_timeout,
            "--client-header-timeout",
            fcgi_http::DEFAULT_HEADER_TIMEOUT,
        )?;
        let body_timeout = timeout(
            self.client_body_timeout,
            "--client-body-timeout",
            Duration::from_secs(30),
        )?;
        let send_timeout = timeout(
            self.send_timeout,
            "--send-timeout",
            fcgi_http::DEFAULT_SEND_TIMEOUT,
        )?;
        let keepalive_timeout = timeout(
            self.keepalive_timeout,
            "--keepalive-timeout",
            fcgi_http::DEFAULT_KEEPALIVE_TIMEOUT,
        )?;
        let max_connections = match self.max_connections {
            None => fcgi_http::DEFAULT_MAX_CONNECTIONS,
            Some(n) => parse_count(n, "--max-connections", 1 << 20)? as usize,
        };
        let max_head = match self.max_head {
            None => fcgi_http::DEFAULT_MAX_HEAD_BYTES,
            Some(size) => {
                let size = parse_size(utf8(size, "--max-head")?)
                    .map_err(|e| e.replace("--max-body", "--max-head"))?;
                if !(8192..=1 << 24).contains(&size) {
                    return Err(format!("--max-head {size}: want 8K to 16M"));
                }
                size as usize
            }
        };
        let defaults = ServiceOptions::default();
        let max_temp_file = match self.max_temp_file {
            None => defaults.max_temp_file_bytes,
            Some(size) => parse_size(utf8(size, "--max-temp-file")?)
                .map_err(|e| e.replace("--max-body", "--max-temp-file"))?,
        };
        let max_temp_total = match self.max_temp_total {
            None => defaults.max_temp_total_bytes,
            Some(size) => parse_size(utf8(size, "--max-temp-total")?)
                .map_err(|e| e.replace("--max-body", "--max-temp-total"))?,
        };
        Ok(ServeArgs {
            listen,
            root,
            upstreams,
            connections,
            front_controller,
            index,
            params,
            tls,
            compress: !self.no_compress,
            allow_dotfiles: self.allow_dotfiles,
            max_body,
            read_timeout,
            access_log: self.access_log.map(PathBuf::from),
            trusted_proxies,
            health_check,
            sendfile_root: self.sendfile_root.map(PathBuf::from),
            request_buffering: !self.no_request_buffering,
            response_buffering: !self.no_response_buffering,
            max_temp_file,
            max_temp_total,
            header_timeout,
            body_timeout,
            send_timeout,
            keepalive_timeout,
            max_connections,
            max_head,
        })
    }
}

/// `--max-body`: bytes, or a number with K, M or G (powers of 1024).
fn parse_size(text: String) -> Result<u64, UsageError> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.char_indices().last() {
        Some((i, 'k' | 'K')) => (&trimmed[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&trimmed[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&trimmed[..i], 1 << 30),
        _ => (trimmed, 1),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("bad --max-body {text:?}: want bytes, or a size as 100M or 2G"))
}

/// Serves until stopped; answers the exit status.
pub(crate) fn run(args: ServeArgs) -> u8 {
    // The access log's writer: a thread of its own, so that no request waits on the
    // disk (tracing-appender's non-blocking writer; lines are dropped, not waited
    // for, when 128 Ki of them are queued). Flushed when `_flush` goes.
    let (access, _flush) = match &args.access_log {
        None => (None, None),
        Some(path) => {
            let writer: Box<dyn std::io::Write + Send> = if path.as_os_str() == "-" {
                Box::new(std::io::stdout())
            } else {
                match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    Ok(file) => Box::new(file),
                    Err(e) => {
                        say(&format!("--access-log {}: {e}", path.display()));
                        return 2;
                    }
                }
            };
            let (writer, guard) = tracing_appender::non_blocking(writer);
            (Some(writer), Some(guard))
        }
    };
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok());
    let _ = tracing::subscriber::set_global_default(StderrLog { access, rust_log });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            say(&format!("cannot start the runtime: {e}"));
            return 1;
        }
    };
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> u8 {
    let mut options = Options::default();
    options.max_connections = args.connections;
    options.max_idle = args.connections;
    options.read_timeout = Some(args.read_timeout);
    let client = match Client::with_upstreams(args.upstreams.iter().cloned(), options) {
        Ok(client) => client,
        Err(e) => {
            say(&error_chain(&e));
            return 2;
        }
    };
    let mut script = ScriptConfig::new(args.root.as_str())
        .index(Some(&args.index))
        .front_controller(args.front_controller.as_deref())
        .allow_dotfiles(args.allow_dotfiles);
    for (name, value) in &args.params {
        script = script.param(name, value);
    }
    let mut service_options = ServiceOptions::default();
    service_options.max_body_bytes = Some(args.max_body);
    service_options.https = args.tls.is_some();
    service_options.trusted_proxies = args.trusted_proxies.clone();
    service_options.request_buffering = args.request_buffering;
    service_options.response_buffering = args.response_buffering;
    service_options.max_temp_file_bytes = args.max_temp_file;
    service_options.max_temp_total_bytes = args.max_temp_total;
    service_options.body_timeout = Some(args.body_timeout);
    let gateway = match Gateway::with_options(client.clone(), script, service_options) {
        Ok(gateway) => gateway,
        Err(e) => {
            say(&format!("--root {}: {e}", args.root));
            return 2;
        }
    };
    let gateway = match &args.sendfile_root {
        None => gateway,
        Some(dir) => match gateway.sendfile_root(dir) {
            Ok(gateway) => gateway,
            Err(e) => {
                say(&format!("--sendfile-root {}: {e}", dir.display()));
                return 2;
            }
        },
    };
    let mut server = Server::new()
        .header_timeout(args.header_timeout)
        .keepalive_timeout(args.keepalive_timeout)
        .send_timeout(args.send_timeout)
        .max_connections(args.max_connections)
        .max_head_bytes(args.max_head);
    if let Some((cert, key)) = &args.tls {
        match fcgi_http::tls_config(cert, key) {
            Ok(config) => server = server.tls(Arc::new(config)),
            Err(e) => {
                say(&format!("--tls-cert/--tls-key: {}", error_chain(&e)));
                return 2;
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            say(&format!("cannot listen on {}: {e}", args.listen));
            return 1;
        }
    };
    let Ok(local) = listener.local_addr() else {
        say("the listening socket has no address");
        return 1;
    };
    // Made before the first line, so that a signal from then on is handled.
    let mut stop_signal = match StopSignal::new() {
        Ok(signal) => signal,
        Err(e) => {
            say(&format!("cannot handle SIGTERM and SIGINT: {e}"));
            return 1;
        }
    };
    let _checks = args
        .health_check
        .as_ref()
        .map(|path| HealthCheck::new(path.as_str()).spawn(&client));
    let upstreams: Vec<String> = args.upstreams.iter().map(ToString::to_string).collect();
    let scheme = if server.is_tls() { "https" } else { "http" };
    say(&format!(
        "listening on {scheme}://{local}, root {}, FastCGI at {}",
        gateway.root().display(),
        upstreams.join(", ")
    ));
    let stopped = async {
        let name = stop_signal.next().await;
        say(&format!(
            "{name}: accepting no more connections, finishing the requests in flight (at most {} s)",
            FINISH_TIMEOUT.as_secs()
        ));
    };
    // Layers only when they have work: a compression layer with every encoding off
    // still wraps each body in its (large) body type and adds `Vary`, and an access log
    // layer without a log still boxes a future and reads the clock per request. What
    // is compressed has its ETag made weak, as nginx's gzip does.
    let service = gateway.clone();
    let access_log = args
        .access_log
        .is_some()
        .then(|| AccessLogLayer::new().trusted_proxies(args.trusted_proxies.clone()));
    let compressed = |service| WeakEtagLayer.layer(CompressionLayer::new().layer(service));
    let draining = match (args.compress, access_log) {
        (true, Some(access_log)) => {
            let service = access_log.layer(compressed(service));
            server.serve(listener, service, stopped).await
        }
        (true, None) => server.serve(listener, compressed(service), stopped).await,
        (false, Some(access_log)) => {
            let service = access_log.layer(service);
            server.serve(listener, service, stopped).await
        }
        (false, None) => server.serve(listener, service, stopped).await,
    };
    tokio::select! {
        finished = draining.finish(FINISH_TIMEOUT) => {
            if finished {
                0
            } else {
                say("requests still in flight after the timeout: stopping anyway");
                1
            }
        }
        name = stop_signal.next() => {
            say(&format!("{name} again: stopping with requests in flight"));
            1
        }
    }
}

/// How long the requests in flight have to finish after SIGTERM or SIGINT.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// SIGTERM and SIGINT, handled from the moment this is made.
#[cfg(unix)]
struct StopSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignal {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Off unix: Ctrl-C (so that the crate builds there; no SIGTERM to handle).
#[cfg(not(unix))]
struct StopSignal;

#[cfg(not(unix))]
impl StopSignal {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Writes `tracing` events of level warn and above to standard error, one line each
/// (`fcgi: MESSAGE key=value ...`), and those `RUST_LOG` names (as
/// `fcgi_http=info`, which shows each client cut off by a timeout or at the connection
/// limit); with an access log the lines of [`ACCESS_LOG_TARGET`] go to its writer; the
/// rest are never even formatted.
struct StderrLog {
    access: Option<tracing_appender::non_blocking::NonBlocking>,
    rust_log: Option<Targets>,
}

impl tracing::Subscriber for StderrLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        if metadata.target() == ACCESS_LOG_TARGET {
            return self.access.is_some();
        }
        *metadata.level() <= tracing::Level::WARN
            || self
                .rust_log
                .as_ref()
                .is_some_and(|t| t.would_enable(metadata.target(), metadata.level()))
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        if event.metadata().target() == ACCESS_LOG_TARGET {
            if let Some(access) = &self.access {
                line.message.push('\n');
                let _ = access.clone().write_all(line.message.as_bytes());
            }
            return;
        }
        say(&format!("{}{}", line.message, line.fields));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl tracing::field::Visit for Line {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    /// An error with its sources: its own message does not repeat them.
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        let _ = write!(self.fields, " {}={}", field.name(), error_chain(value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<ServeArgs, UsageError> {
        let all = std::iter::once("serve").chain(args.iter().copied());
        match crate::args::parse(all.map(OsString::from))? {
            crate::args::Command::Serve(args) => Ok(*args),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse_strs(&["--listen", "127.0.0.1:0", "--root", "/srv", "unix:/s"]),
            Ok(ServeArgs {
                listen: "127.0.0.1:0".parse().unwrap(),
                root: "/srv".into(),
                upstreams: vec![Address::Unix("/s".into())],
                connections: 8,
                front_controller: None,
                index: "index.php".into(),
                params: Vec::new(),
                tls: None,
                compress: true,
                allow_dotfiles: false,
                max_body: 1 << 30,
                read_timeout: Duration::from_secs(60),
                access_log: None,
                trusted_proxies: Vec::new(),
                health_check: None,
                sendfile_root: None,
                request_buffering: true,
                response_buffering: true,
                max_temp_file: 1 << 30,
                max_temp_total: 4 << 30,
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
                send_timeout: Duration::from_secs(30),
                keepalive_timeout: Duration::from_secs(60),
                max_connections: 1024,
                max_head: 64 << 10,
            })
        );
        let a = parse_strs(&["/run/php.sock", "--root=/srv", "--connections=3"]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a.connections, 3);
        assert_eq!(a.upstreams, [Address::Unix("/run/php.sock".into())]);
        let a = parse_strs(&[
            "--root",
            "/srv",
            "unix:/a",
            "10.0.0.2:9000",
            "--front-controller",
            "/index.php",
            "--index",
            "app.php",
            "--param",
            "APP_ENV=prod",
            "--param",
            "EMPTY=",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--no-compress",
            "--allow-dotfiles",
            "--max-body",
            "100M",
            "--read-timeout",
            "2.5",
            "--access-log",
            "-",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "::1",
            "--health-check",
            "/ping",
            "--sendfile-root",
            "/srv/files",
            "--no-request-buffering",
            "--no-response-buffering",
            "--client-header-timeout",
            "5",
            "--client-body-timeout",
            "6",
            "--send-timeout",
            "7",
            "--keepalive-timeout",
            "8",
            "--max-connections",
            "100",
            "--max-head",
            "16K",
            "--max-temp-file",
            "0",
            "--max-temp-total",
            "10G",
        ])
        .unwrap();
        assert!(!a.request_buffering && !a.response_buffering);
        assert_eq!(
            [
                a.header_timeout,
                a.body_timeout,
                a.send_timeout,
                a.keepalive_timeout
            ],
            [5, 6, 7, 8].map(Duration::from_secs)
        );
        assert_eq!((a.max_connections, a.max_head), (100, 16 << 10));
        assert_eq!((a.max_temp_file, a.max_temp_total), (0, 10 << 30));
        assert_eq!(
            a.upstreams,
            [
                Address::Unix("/a".into()),
                Address::Tcp("10.0.0.2:9000".into())
            ]
        );
        assert_eq!(a.front_controller.as_deref(), Some("/index.php"));
        assert_eq!(a.index, "app.php");
        assert_eq!(
            a.params,
            [
                ("APP_ENV".into(), "prod".into()),
                ("EMPTY".into(), String::new())
            ]
        );
        assert_eq!(a.tls, Some(("c.pem".into(), "k.pem".into())));
        assert!(!a.compress && a.allow_dotfiles);
        assert_eq!(a.max_body, 100 << 20);
        assert_eq!(a.read_timeout, Duration::from_millis(2500));
        assert_eq!(a.access_log, Some("-".into()));
        let proxies: Vec<String> = a.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(a.health_check.as_deref(), Some("/ping"));
        assert_eq!(a.sendfile_root, Some("/srv/files".into()));
        for (size, bytes) in [("0", 0), ("512", 512), ("64k", 64 << 10), ("2G", 2 << 30)] {
            assert_eq!(parse_size(size.into()), Ok(bytes), "{size}");
        }
        for bad in [
            &[][..],
            &["--root", "/srv"],
            &["unix:/s"],
            &["--root", "", "unix:/s"],
            &["--root", "/srv", "nonsense"],
            &["--root", "/srv", "unix:/s", "nonsense"],
            &["--root", "/srv", "--listen", "nowhere", "unix:/s"],
            &["--root", "/srv", "--connections", "0", "unix:/s"],
            &["--root", "/srv", "--bogus", "unix:/s"],
            &["--root"],
            &["--root", "/srv", "--tls-cert", "c.pem", "unix:/s"],
            &["--root", "/srv", "--tls-key", "k.pem", "unix:/s"],
            &["--root", "/srv", "--max-body", "lots", "unix:/s"],
            &["--root", "/srv", "--max-body", "99999999999G", "unix:/s"],
            &["--root", "/srv", "--read-timeout", "0", "unix:/s"],
            &["--root", "/srv", "--param", "NOVALUE", "unix:/s"],
            &["--root", "/srv", "--param", "=x", "unix:/s"],
            &["--root", "/srv", "--index", "a/b.php", "unix:/s"],
            &[
                "--root",
                "/srv",
                "--trusted-proxy",
                "10.0.0.0/33",
                "unix:/s",
            ],
            &["--root", "/srv", "--front-controller", "", "unix:/s"],
            &["--root", "/srv", "--send-timeout", "0", "unix:/s"],
            &["--root", "/srv", "--max-connections", "0", "unix:/s"],
            &["--root", "/srv", "--max-head", "1K", "unix:/s"],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?}");
        }
    }
}
