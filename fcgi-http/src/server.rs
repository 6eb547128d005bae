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
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use ::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
#[cfg(feature = "tls")]
use tokio::net::TcpStream;
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;

use crate::body::BoxError;
use crate::PeerAddrs;

/// How long a client has to finish its TLS handshake.
#[cfg(feature = "tls")]
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request head on HTTP/1.1 (hyper's default once a
/// timer is set, written out here because it is a promise to operators).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP server for a service such as [`Gateway`](crate::Gateway) or
/// [`FastCgiService`](crate::FastCgiService), or either behind tower layers.
///
/// Each connection speaks HTTP/1.1 or HTTP/2: over TLS as ALPN agreed (`h2`,
/// `http/1.1`), in clear text HTTP/1.1, or HTTP/2 with prior knowledge (h2c, as
/// `curl --http2-prior-knowledge` sends). Each request carries the connection's
/// [`PeerAddrs`] as an extension. A TLS handshake has 10 s; an HTTP/1.1 request head
/// 30 s.
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
#[derive(Clone, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub struct Server {
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl Server {
    /// A server in clear text (HTTP/1.1 and h2c).
    pub fn new() -> Self {
        Self::default()
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
        let graceful = GracefulShutdown::new();
        let local = listener.local_addr().ok();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
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
            tokio::spawn(async move {
                #[cfg(feature = "tls")]
                if let Some(acceptor) = tls {
                    match handshake(&acceptor, socket).await {
                        Ok(stream) => serve_connection(stream, service, peer, watcher).await,
                        Err(e) => {
                            tracing::debug!(target: "fcgi_http", %remote, "TLS handshake failed: {e}")
                        }
                    }
                    return;
                }
                serve_connection(socket, service, peer, watcher).await;
            });
        }
        Draining { graceful }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until it closes, or until a graceful
/// shutdown closes it between requests.
async fn serve_connection<IO, S, B>(io: IO, service: S, peer: PeerAddrs, watcher: Watcher)
where
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
        async move {
            poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(request).await
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(io), hyper_service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(target: "fcgi_http", remote = %peer.remote, "connection ended: {e}");
    }
}

#[cfg(feature = "tls")]
async fn handshake(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
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
