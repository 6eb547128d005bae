//! The tower `Service`: an `http::Request` to a FastCGI application, an
//! `http::Response` back whose body streams.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ::http::{header, Method, Request, Response, StatusCode};
use fcgi_proto::ParamsBuilder;

use crate::body::{drain, request_body, BoxError};
use crate::buffer::{Buffered, Limits};
use crate::proxy::{client_view, ClientView};
use crate::UpstreamTime;
use crate::{HttpError, PeerAddrs, ResponseBody, ScriptConfig, ScriptTarget, ServiceOptions};
use fcgi_tokio::{Client, ResponseStream};

struct Inner {
    client: Client,
    script: ScriptConfig,
    options: ServiceOptions,
    buffer_limits: Arc<Limits>,
}

/// Sends every request to one FastCGI application and answers with its response: a
/// tower `Service<http::Request<B>>` (`Clone`, its error [`Infallible`]: failures are
/// answered with a status, see [`HttpError`]), for any request body `B` that is an
/// `http_body::Body` (hyper's `Incoming`, axum's `Body`, ...).
///
/// The script comes from the request path through the [`ScriptConfig`], without looking
/// at the file system (the application may be on another machine): `/app/` runs
/// `DOCUMENT_ROOT/app/index.php`, `/x.php/y` runs `x.php` with `PATH_INFO=/y`.
///
/// ```no_run
/// # async fn run() -> Result<(), fcgi_tokio::Error> {
/// use fcgi_http::{FastCgiService, ScriptConfig};
/// use fcgi_tokio::Client;
///
/// let service = FastCgiService::new(Client::new("127.0.0.1:9000")?, ScriptConfig::new("/srv/www"));
/// let request = http::Request::get("/index.php?page=2").body(String::new()).unwrap();
/// let response = service.handle(request).await;
/// println!("{}", response.status());
/// // With axum: Router::new().fallback_service(service)
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FastCgiService {
    inner: Arc<Inner>,
    peer: Option<PeerAddrs>,
}

impl fmt::Debug for FastCgiService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastCgiService")
            .field("client", &self.inner.client)
            .field("script", &self.inner.script)
            .field("options", &self.inner.options)
            .field("peer", &self.peer)
            .finish()
    }
}

impl FastCgiService {
    /// A service for the application behind `client`, with default [`ServiceOptions`].
    pub fn new(client: Client, script: ScriptConfig) -> Self {
        Self::with_options(client, script, ServiceOptions::default())
    }

    /// A service with these options.
    pub fn with_options(client: Client, script: ScriptConfig, options: ServiceOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                script,
                buffer_limits: Arc::new(Limits {
                    memory: options.response_buffer_memory,
                    file: options.max_temp_file_bytes,
                    total: options.max_temp_total_bytes,
                    in_use: AtomicU64::new(0),
                }),
                options,
            }),
            peer: None,
        }
    }

    /// A copy for the requests of one client connection: `REMOTE_ADDR`, `SERVER_ADDR`
    /// and their ports come from `peer` (unless a request carries [`PeerAddrs`] in its
    /// extensions). Cheap: a reference count and two addresses.
    pub fn for_connection(&self, peer: PeerAddrs) -> Self {
        Self {
            inner: self.inner.clone(),
            peer: Some(peer),
        }
    }

    /// The FastCGI client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The script settings.
    pub fn script_config(&self) -> &ScriptConfig {
        &self.inner.script
    }

    /// The options.
    pub fn options(&self) -> &ServiceOptions {
        &self.inner.options
    }

    /// Answers a request: the application's response, or the response for the error
    /// (see [`HttpError::into_response`]).
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.send(request)
            .await
            .unwrap_or_else(HttpError::into_response)
    }

    /// Sends a request to the script its path names (see [`ScriptConfig::resolve`]).
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<ResponseBody>, HttpError>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let target = self.inner.script.resolve(request.uri().path())?;
        self.send_to(request, &target).await
    }

    /// Sends a request to a script resolved by the caller (a router of its own, the
    /// [`Gateway`](crate::Gateway)).
    pub async fn send_to<B>(
        &self,
        request: Request<B>,
        target: &ScriptTarget,
    ) -> Result<Response<ResponseBody>, HttpError>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let options = &self.inner.options;
        let script = &self.inner.script;
        let (body, len) = request_body(body, options).await?;
        let peer = parts.extensions.get::<PeerAddrs>().or(self.peer.as_ref());
        let view = match peer {
            Some(peer) if !options.trusted_proxies.is_empty() => {
                client_view(&parts.headers, peer.remote.ip(), &options.trusted_proxies)
            }
            _ => ClientView::default(),
        };
        let mut builder = ParamsBuilder::from_http(&parts)
            .script(&target.script_name, &target.script_filename)
            .document_root(script.document_root())
            .document_uri(&target.document_uri)
            .server_software(&options.server_software)
            .https(view.forwarded_https.unwrap_or(options.https))
            .header_policy(options.header_policy);
        if let Some(len) = len {
            builder = builder.content_length(len);
        }
        if let Some(info) = &target.path_info {
            builder = builder.path_info(info);
        }
        if let Some(peer) = peer {
            builder = match view.forwarded_for {
                // The header names no port: REMOTE_PORT is empty, as behind nginx's
                // realip module.
                Some(client) => builder
                    .remote_addr(SocketAddr::new(client, 0))
                    .param("REMOTE_PORT", ""),
                None => builder.remote_addr(peer.remote),
            }
            .server_addr(peer.local);
        }
        for (name, value) in script.params() {
            builder = builder.param(name, value);
        }
        let params = builder
            .build()
            .map_err(|_| HttpError::BadRequest("the request cannot be sent as FastCGI params"))?;
        let started = Instant::now();
        let stream = self
            .inner
            .client
            .request_streaming(fcgi_tokio::Request::new(params).body(body))
            .await
            .map_err(HttpError::Upstream)?;
        let head_only = parts.method == Method::HEAD;
        let buffer = options
            .response_buffering
            .then_some(&self.inner.buffer_limits);
        let mut response = into_response(stream, head_only, buffer)?;
        response
            .extensions_mut()
            .insert(UpstreamTime(started.elapsed()));
        Ok(response)
    }
}

/// The HTTP response for a FastCGI response whose head has arrived.
///
/// With `buffer`, the body is read at the upstream's speed (see
/// [`ServiceOptions::response_buffering`]): what has arrived already is taken at once
/// (a small response is then whole, and needs no task), the rest by a task of its own.
fn into_response(
    stream: ResponseStream,
    head_only: bool,
    buffer: Option<&Arc<Limits>>,
) -> Result<Response<ResponseBody>, HttpError> {
    let parts = stream
        .head()
        .to_gateway_parts()
        .map_err(|_| HttpError::InvalidHead)?;
    let status = parts.status;
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let buffer = match parts.headers.get(X_ACCEL_BUFFERING) {
        Some(value) if value.as_bytes().eq_ignore_ascii_case(b"no") => None,
        _ => buffer,
    };
    let body = if head_only || no_body {
        drain(stream);
        ResponseBody::empty()
    } else if let Some(limits) = buffer {
        buffered(stream, limits)
    } else {
        ResponseBody::stream(stream)
    };
    let mut response = Response::from_parts(parts, body);
    response.headers_mut().remove(X_ACCEL_BUFFERING);
    if status.is_informational() || status == StatusCode::NO_CONTENT {
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    Ok(response)
}

/// The application's say on buffering its response (nginx's header): `no` streams it.
const X_ACCEL_BUFFERING: &str = "x-accel-buffering";

/// A buffered body for `stream`: whole when all of it has arrived with its head (no
/// task, no copy), else read on by a task of its own.
fn buffered(mut stream: ResponseStream, limits: &Arc<Limits>) -> ResponseBody {
    let mut ready = VecDeque::new();
    let mut memory = 0;
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    loop {
        match stream.poll_chunk(&mut cx) {
            Poll::Ready(Ok(Some(chunk))) => {
                memory += chunk.len();
                ready.push_back(chunk);
                if memory < limits.memory {
                    continue;
                }
            }
            Poll::Ready(Ok(None)) => return ResponseBody::chunks(ready),
            Poll::Ready(Err(e)) => {
                return ResponseBody::buffered(Buffered::failed(ready.into(), e, limits.clone()))
            }
            Poll::Pending => {}
        }
        break;
    }
    ResponseBody::buffered(Buffered::start(stream, ready.into(), limits.clone()))
}

impl<B> tower_service::Service<Request<B>> for FastCgiService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}
