//! The server loop: accepts TCP connections (optionally TLS), serves HTTP/1.1 and HTTP/2
//! on each (hyper-util's `auto` builder: ALPN over TLS, prior knowledge in clear text),
//! tells the service each request's [`PeerAddrs`], and shuts down gracefully.

use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
#[cfg(feature = "tls")]
use std::io;
#[cfg(feature = "tls")]
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;

use crate::body::BoxError;
use crate::client_io::{Activity, ClientIo, ClientLimits, InFlight, Tracked};
use crate::PeerAddrs;

/// How long a client has to finish its TLS handshake.
#[cfg(feature = "tls")]
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle connections are asked to close while accepting is paused.
const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// Default of [`Server::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Server::keepalive_timeout`].
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`Server::send_timeout`].
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`Server::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of [`Server::max_head_bytes`].
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default of [`Server::backlog`].
pub const DEFAULT_BACKLOG: u32 = 4096;

/// An HTTP server for a service such as [`Gateway`](crate::Gateway) or
/// [`FastCgiService`](crate::FastCgiService), or either behind tower layers.
///
/// Each connection speaks HTTP/1.1 or HTTP/2: over TLS as ALPN agreed (`h2`,
/// `http/1.1`), in clear text HTTP/1.1, or HTTP/2 with prior knowledge (h2c, as
/// `curl --http2-prior-knowledge` sends). Each request carries the connection's
/// [`PeerAddrs`] as an extension. A TLS handshake has 10 s.
///
/// Clients are bounded, with nginx-like defaults (see each setter):
/// [`header_timeout`](Self::header_timeout), [`keepalive_timeout`](Self::keepalive_timeout),
/// [`send_timeout`](Self::send_timeout), [`max_connections`](Self::max_connections) and
/// [`max_head_bytes`](Self::max_head_bytes). A client that exceeds a timeout has its
/// connection closed (logged through `tracing` at level info, target `fcgi_http`, as
/// nginx logs them); the request body's timeout is the service's
/// ([`ServiceOptions::body_timeout`](crate::ServiceOptions::body_timeout), 408).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use fcgi_http::{Gateway, ScriptConfig, Server};
/// use fcgi_tokio::Client;
///
/// let gateway = Gateway::new(Client::new("unix:/run/php/php-fpm.sock")?, ScriptConfig::new("/srv/www"))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let draining = Server::new().serve(listener, gateway, async {
///     let _ = tokio::signal::ctrl_c().await;
/// }).await;
/// // No more connections are accepted; the requests in flight get 30 s to finish.
/// let finished = draining.finish(std::time::Duration::from_secs(30)).await;
/// # let _ = finished;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub struct Server {
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
    limits: ClientLimits,
    backlog: u32,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("tls", &self.is_tls())
            .field("limits", &self.limits)
            .field("backlog", &self.backlog)
            .finish()
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            #[cfg(feature = "tls")]
            tls: None,
            limits: ClientLimits {
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
                send_timeout: DEFAULT_SEND_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            },
            backlog: DEFAULT_BACKLOG,
        }
    }
}

impl Server {
    /// A server in clear text (HTTP/1.1 and h2c).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a client has to send a whole request head, from the connection's
    /// start or from the first byte of a later request (default 10 s; nginx's
    /// `client_header_timeout`, 60 s). Past it the connection closes: slowloris
    /// clients, who send a header line now and then, are cut off.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_timeout = timeout;
        self
    }

    /// How long a connection may stay open with no request in flight and no byte of
    /// the next one received (default 60 s; nginx's `keepalive_timeout`, 75 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.limits.keepalive_timeout = timeout;
        self
    }

    /// The longest wait for a client to take more of a response (between two writes
    /// that make progress; default 30 s; nginx's `send_timeout`, 60 s). Past it the
    /// connection closes.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.limits.send_timeout = timeout;
        self
    }

    /// The most client connections open at once (default 1024; nginx's
    /// `worker_connections`, 512 per worker). At the limit, accepting pauses (new
    /// clients wait in the listen queue) and the idle keep-alive connections are
    /// closed to make room, as nginx does. Keep it below the descriptor limit
    /// (`ulimit -n`), leaving room for the upstream connections and files.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max.max(1);
        self
    }

    /// The largest request head (request line and headers; default 64 KiB; nginx's
    /// `large_client_header_buffers` allow 4 x 8 KiB). A larger HTTP/1.1 head is
    /// answered 431 and the connection closed; HTTP/2 advertises it as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`. It also bounds what a connection buffers
    /// before a head is complete. At least 8 KiB (hyper's minimum).
    pub fn max_head_bytes(mut self, max: usize) -> Self {
        self.limits.max_head_bytes = max.max(8192);
        self
    }

    /// The length of the listen queue [`serve`](Self::serve) gives its listener: how
    /// many connections the kernel completes and keeps for the server before it drops
    /// new clients' SYNs (default 4096; the kernel caps it at `net.core.somaxconn`,
    /// 4096 on Linux since 5.4; nginx's `listen ... backlog=`, 511 on Linux).
    ///
    /// A connection the queue has no room for is not refused: its SYN is dropped, and
    /// the client sends it again after 1 s, then 3 s, ... So the queue must hold a
    /// whole burst of connections (a slowloris attack opens hundreds at once) while the
    /// server accepts them, and everything that arrives while accepting is paused at
    /// [`max_connections`](Self::max_connections). tokio's `TcpListener::bind` (mio,
    /// as the standard library) listens with 128, which such a burst overflows.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// Serves HTTPS with this configuration (see [`tls_config`]); its ALPN protocols
    /// decide between HTTP/2 and HTTP/1.1. Set
    /// [`ServiceOptions::https`](crate::ServiceOptions::https) on the service too, so
    /// that the application sees `HTTPS=on`.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(TlsAcceptor::from(config));
        self
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Accepts connections from `listener` and serves `service` on each, until
    /// `shutdown` completes; then it accepts no more and returns the connections still
    /// open, which close as soon as their request in flight is answered (at once when
    /// idle): see [`Draining::finish`]. A failed accept (out of descriptors, most
    /// likely) is logged and retried after 50 ms.
    ///
    /// The listener's queue is set to [`backlog`](Self::backlog) first (`listen(2)`
    /// again on the listening socket, which changes only its backlog).
    pub async fn serve<S, B>(
        &self,
        listener: TcpListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> Draining
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        // Measured with 1000 connections opened at once against the 128 that
        // `TcpListener::bind` gives: the accept loop (one task, on a busy 2-CPU
        // machine) falls behind by more than 128, the kernel drops SYNs
        // (`TcpExtListenOverflows`), and a visitor's connection waits 1 s for its SYN's
        // retransmission; likewise for anything that arrives while accepting is paused
        // at the connection limit. A queue that holds the burst removes that wait.
        if let Err(e) = socket2::SockRef::from(&listener)
            .listen(i32::try_from(self.backlog).unwrap_or(i32::MAX))
        {
            tracing::warn!(target: "fcgi_http", "cannot set the listen backlog to {}: {e}", self.backlog);
        }
        let graceful = GracefulShutdown::new();
        let local = listener.local_addr().ok();
        let mut shutdown = std::pin::pin!(shutdown);
        let limits = self.limits.clone();
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let (reclaim, reclaimed) = watch::channel(0u64);
        let mut paused = false;
        loop {
            let permit = match permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if !paused {
                        tracing::warn!(
                            target: "fcgi_http",
                            "{} client connections open: accepting paused, idle ones closed",
                            limits.max_connections
                        );
                        paused = true;
                    }
                    // Asked again and again: a connection idles long enough to be
                    // reclaimed only after a while.
                    let mut permit = None;
                    while permit.is_none() {
                        reclaim.send_modify(|n| *n += 1);
                        tokio::select! {
                            acquired = permits.clone().acquire_owned() => match acquired {
                                Ok(acquired) => permit = Some(acquired),
                                Err(_) => break,
                            },
                            () = tokio::time::sleep(RECLAIM_EVERY) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    match permit {
                        Some(permit) => permit,
                        None => break,
                    }
                }
            };
            if paused && permits.available_permits() > limits.max_connections / 8 {
                paused = false;
            }
            let (socket, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(target: "fcgi_http", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = socket.set_nodelay(true);
            let Some(local) = socket.local_addr().ok().or(local) else {
                continue;
            };
            let peer = PeerAddrs::new(remote, local);
            let watcher = graceful.watcher();
            #[cfg(feature = "tls")]
            let tls = self.tls.clone();
            let service = service.clone();
            let activity = Arc::new(Activity::default());
            let socket =
                ClientIo::new(socket, activity.clone(), &limits, reclaimed.clone(), remote);
            let limits = limits.clone();
            tokio::spawn(async move {
                let _permit = permit;
                #[cfg(feature = "tls")]
                if let Some(acceptor) = tls {
                    match handshake(&acceptor, socket).await {
                        Ok(stream) => {
                            serve_connection(stream, service, peer, watcher, activity, &limits)
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(target: "fcgi_http", %remote, "TLS handshake failed: {e}")
                        }
                    }
                    return;
                }
                serve_connection(socket, service, peer, watcher, activity, &limits).await;
            });
        }
        Draining { graceful }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until it closes, or until a graceful
/// shutdown closes it between requests.
async fn serve_connection<IO, S, B>(
    io: IO,
    service: S,
    peer: PeerAddrs,
    watcher: Watcher,
    activity: Arc<Activity>,
    limits: &ClientLimits,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let hyper_service = hyper::service::service_fn(move |mut request| {
        request.extensions_mut().insert(peer);
        let mut service = service.clone();
        let in_flight = InFlight::new(activity.clone());
        async move {
            poll_fn(|cx| service.poll_ready(cx)).await?;
            let response = service.call(request).await?;
            Ok::<_, Infallible>(response.map(|body| Tracked {
                body: Box::pin(body),
                _in_flight: in_flight,
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The connection's own timers (`ClientIo`) come first; hyper's header timer is a
    // backstop.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout + limits.keepalive_timeout)
        .max_buf_size(limits.max_head_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(128)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(256);
    let connection = builder.serve_connection(TokioIo::new(io), hyper_service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(target: "fcgi_http", remote = %peer.remote, "connection ended: {e}");
    }
}

#[cfg(feature = "tls")]
async fn handshake(
    acceptor: &TlsAcceptor,
    socket: ClientIo,
) -> io::Result<tokio_rustls::server::TlsStream<ClientIo>> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// The connections of a [`Server`] that has stopped accepting.
#[derive(Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub struct Draining {
    graceful: GracefulShutdown,
}

impl Draining {
    /// How many connections are still open.
    pub fn open(&self) -> usize {
        self.graceful.count()
    }

    /// Asks every connection to close once its request in flight is answered, and
    /// waits for them all, at most `limit`: `true` when they all closed in time.
    /// Dropping the future stops waiting (the connections go on closing by themselves).
    pub async fn finish(self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.graceful.shutdown())
            .await
            .is_ok()
    }
}

/// Why a certificate or key could not be loaded.
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no item of the kind wanted.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// rustls refused the certificate and key (a key that does not match, say).
    Rustls(rustls::Error),
}

#[cfg(feature = "tls")]
impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, .. } => write!(f, "cannot load PEM from {}", path.display()),
            TlsError::NoCertificate(path) => {
                write!(f, "no certificate in {}", path.display())
            }
            TlsError::Rustls(_) => f.write_str("the certificate and key cannot be used"),
        }
    }
}

#[cfg(feature = "tls")]
impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { source, .. } => Some(source),
            TlsError::NoCertificate(_) => None,
            TlsError::Rustls(e) => Some(e),
        }
    }
}

/// A TLS configuration from a PEM certificate chain (the server's certificate first)
/// and a PEM private key (PKCS#8, PKCS#1 or SEC1), offering HTTP/2 and HTTP/1.1 by
/// ALPN, with rustls's safe defaults (TLS 1.2 and 1.3).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let pem_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Pem { path, source }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(pem_error(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
