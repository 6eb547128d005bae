//! `fcgi serve`: an HTTP/1.1 server for a document root, as nginx serves one in front
//! of php-fpm: `*.php` through FastCGI, other files static, directories to
//! `index.php`. The work is `fcgi_http::Gateway`'s; this is the command line,
//! the server loop and a log of warnings on standard error.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use fcgi_http::{Gateway, PeerAddrs, ScriptConfig};
use fcgi_proto::Address;
use fcgi_tokio::{Client, Options};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::args::{parse_count, utf8, UsageError, MAX_CONCURRENCY};
use crate::{error_chain, say};

const AFTER_HELP: &str = "\
Requests with a .php path segment (/a.php, /a.php/more) run that script
(404 when it is missing); a directory runs its index.php (301 to add the
trailing /; 403 without index.php); other files are sent as they are, with
Content-Type, Content-Length and Last-Modified (GET and HEAD only). A path
that climbs out of DIR, by .. or by a symbolic link, is 403. Request bodies of
unknown length (chunked) are spooled (1 MiB in memory, the rest in a temporary
file) and sent with their length; the largest body is 1 GiB (413 above).
The application cannot be reached: 502; it takes over 60 s to answer: 504.
Warnings (those errors, the application's FCGI_STDERR) go to standard error.
SIGTERM or SIGINT stops it: it accepts no more connections, lets the requests
in flight finish (at most 30 s) and exits with 0 (1 if it had to cut some).";

/// `fcgi serve`'s command line, as clap reads it; [`ServeCli::check`] checks it.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "fcgi serve - an HTTP/1.1 server for a PHP site, as nginx in front of php-fpm:\n\
             *.php through FastCGI, other files static, directories to index.php",
    override_usage = "fcgi serve [--listen ADDR] --root DIR [--connections K] <ADDRESS>",
    after_help = AFTER_HELP
)]
pub(crate) struct ServeCli {
    /// the FastCGI server: HOST:PORT, [V6]:PORT, unix:/path/to.sock, or a socket path
    /// that starts with / or ./
    #[arg(value_name = "ADDRESS")]
    upstream: Option<OsString>,
    /// listen on ADDR, HOST:PORT (default 127.0.0.1:8080; port 0 takes a free port); the
    /// address is printed
    #[arg(long, value_name = "ADDR")]
    listen: Option<OsString>,
    /// the document root; the FastCGI server must see the same files at the same path
    /// (sent as SCRIPT_FILENAME)
    #[arg(long, value_name = "DIR")]
    root: Option<OsString>,
    /// keep at most K connections to the FastCGI server (default 8); each pins one
    /// php-fpm worker, so keep it at most the pool's pm.max_children
    #[arg(long, value_name = "K")]
    connections: Option<OsString>,
}

/// `fcgi serve`'s settings.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ServeArgs {
    pub(crate) listen: SocketAddr,
    pub(crate) root: String,
    pub(crate) upstream: Address,
    pub(crate) connections: usize,
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
        let upstream = utf8(
            self.upstream
                .ok_or("missing ADDRESS (the FastCGI server)")?,
            "ADDRESS",
        )?;
        let upstream = upstream.parse::<Address>().map_err(|e| format!("{e}"))?;
        Ok(ServeArgs {
            listen,
            root,
            upstream,
            connections,
        })
    }
}

/// Serves until killed; answers the exit status when it cannot start.
pub(crate) fn run(args: ServeArgs) -> u8 {
    let _ = tracing::subscriber::set_global_default(StderrLog);
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
    let client = match Client::with_upstreams([args.upstream.clone()], options) {
        Ok(client) => client,
        Err(e) => {
            say(&error_chain(&e));
            return 2;
        }
    };
    let gateway = match Gateway::new(client, ScriptConfig::new(args.root.as_str())) {
        Ok(gateway) => gateway,
        Err(e) => {
            say(&format!("--root {}: {e}", args.root));
            return 2;
        }
    };
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
    let stop_signal = match StopSignal::new() {
        Ok(signal) => signal,
        Err(e) => {
            say(&format!("cannot handle SIGTERM and SIGINT: {e}"));
            return 1;
        }
    };
    say(&format!(
        "listening on http://{local}, root {}, FastCGI at {}",
        gateway.root().display(),
        args.upstream
    ));
    serve_until_stopped(listener, local, gateway, stop_signal).await
}

/// How long the requests in flight have to finish after SIGTERM or SIGINT.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves every connection `listener` accepts until SIGTERM or SIGINT. Then it accepts
/// no more, closes each connection once its request in flight is answered (at once for
/// one between requests), and answers 0 when they are all closed: 1 if some are still
/// open after [`FINISH_TIMEOUT`] or at a second signal.
async fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    gateway: Gateway,
    mut stop_signal: StopSignal,
) -> u8 {
    // Told once: stop after the request in flight.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Each connection's task holds a sender: `recv` answers `None` once all are gone.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: give connections time to close.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            name = stop_signal.next() => {
                say(&format!(
                    "{name}: accepting no more connections, finishing the requests in flight (at most {} s)",
                    FINISH_TIMEOUT.as_secs()
                ));
                break;
            }
        };
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().unwrap_or(local);
        let gateway = gateway.for_connection(PeerAddrs::new(remote, local));
        let mut stopping = stopping.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(request).await) }
            });
            // HTTP/1.1 keep-alive; a client slower than 30 s to send a head is dropped.
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(socket), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // (The guard `wait_for` answers is not kept across the await below.)
                _ = async { stopping.wait_for(|stop| *stop).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    tokio::select! {
        _ = all_closed.recv() => 0,
        _ = tokio::time::sleep(FINISH_TIMEOUT) => {
            say("requests still in flight after the timeout: stopping anyway");
            1
        }
        name = stop_signal.next() => {
            say(&format!("{name} again: stopping with requests in flight"));
            1
        }
    }
}

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
/// (`fcgi: MESSAGE key=value ...`); the rest are never even formatted.
struct StderrLog;

impl tracing::Subscriber for StderrLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
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
            crate::args::Command::Serve(args) => Ok(args),
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
                upstream: Address::Unix("/s".into()),
                connections: 8,
            })
        );
        let a = parse_strs(&["/run/php.sock", "--root=/srv", "--connections=3"]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a.connections, 3);
        assert_eq!(a.upstream, Address::Unix("/run/php.sock".into()));
        for bad in [
            &[][..],
            &["--root", "/srv"],
            &["unix:/s"],
            &["--root", "", "unix:/s"],
            &["--root", "/srv", "nonsense"],
            &["--root", "/srv", "unix:/s", "unix:/t"],
            &["--root", "/srv", "--listen", "nowhere", "unix:/s"],
            &["--root", "/srv", "--connections", "0", "unix:/s"],
            &["--root", "/srv", "--bogus", "unix:/s"],
            &["--root"],
        ] {
            assert!(parse_strs(bad).is_err(), "{bad:?}");
        }
    }
}
