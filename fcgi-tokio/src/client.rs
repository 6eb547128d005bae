//! The shared client on tokio: the engine's client and response stream, with tokio's
//! `AsyncRead`. [`Options`] and [`Response`] are the engine's.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use fcgi_proto::{Address, ClientError as Error, End, Params, ResponseHead, ServerValues};
use futures_core::Stream;
use tokio::io::{AsyncRead, ReadBuf};

pub use fcgi_async_core::{Options, Response};

use crate::body::Body;
use crate::runtime::Tokio;

/// One request: params, a body, and where its stderr goes.
///
/// The client sets `CONTENT_LENGTH` from the body, so what is declared always equals
/// what is sent.
pub struct Request(fcgi_async_core::Request);

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Request {
    /// A request with these params and no body.
    pub fn new(params: Params) -> Self {
        Self(fcgi_async_core::Request::new(params))
    }

    /// A `GET` for a script file with nginx's default params (see
    /// [`ParamsBuilder::get`](fcgi_proto::ParamsBuilder::get)); `uri` is the request
    /// target (path and query).
    pub fn get(script_filename: &str, uri: &str) -> Result<Self, Error> {
        fcgi_async_core::Request::get(script_filename, uri).map(Self)
    }

    /// The params.
    pub fn params(&self) -> &Params {
        self.0.params()
    }

    /// The params, to change.
    pub fn params_mut(&mut self) -> &mut Params {
        self.0.params_mut()
    }

    /// Sets the body.
    pub fn body(self, body: impl Into<Body>) -> Self {
        Self(self.0.body(body.into()))
    }

    /// Hands the application's `STDERR` to `callback` as it arrives, instead of keeping
    /// it with the response.
    pub fn on_stderr(self, callback: impl FnMut(&[u8]) + Send + 'static) -> Self {
        Self(self.0.on_stderr(callback))
    }
}

/// A FastCGI client shared by many tasks: `Clone + Send + Sync`, with a pool of
/// connections to one or more upstream addresses.
///
/// Connections are kept when the server allows (`FCGI_KEEP_CONN`) and reused most
/// recently used first; at most [`Options::max_connections`] are open per upstream.
/// Requests go to the upstreams in turn; one that cannot connect passes to the next, as
/// nginx's `fastcgi_next_upstream error` does. A request that fails on a reused
/// connection before any byte of its response arrived is sent once more on a fresh
/// connection, when its body is in memory. Dropping a request's future or its response
/// stream at any point closes its connection; nothing half-read is ever reused. With
/// [`Options::multiplex`] and a server that multiplexes, requests share connections
/// instead, and a dropped request is aborted alone (see there).
///
/// ```no_run
/// # async fn run() -> Result<(), fcgi_tokio::Error> {
/// use fcgi_tokio::{Client, Request};
/// use fcgi_proto::ParamsBuilder;
///
/// let client = Client::new("unix:/run/php/php-fpm.sock")?;
/// let params = ParamsBuilder::new("GET", "/index.php")
///     .script("/index.php", "/srv/www/index.php")
///     .build()?;
/// let response = client.request(Request::new(params)).await?;
/// println!("{} {}", response.status, String::from_utf8_lossy(&response.body));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client(fcgi_async_core::Client<Tokio>);

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Client {
    /// A client for one address with default [`Options`]. It connects at the first
    /// request.
    pub fn new<A>(address: A) -> Result<Self, Error>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        fcgi_async_core::Client::new(address).map(Self)
    }

    /// A client for several upstream addresses (round robin, failover on connect
    /// errors).
    pub fn with_upstreams(
        addresses: impl IntoIterator<Item = Address>,
        options: Options,
    ) -> Result<Self, Error> {
        fcgi_async_core::Client::with_upstreams(addresses, options).map(Self)
    }

    /// The options.
    pub fn options(&self) -> &Options {
        self.0.options()
    }

    /// Connections opened so far for requests, over the client's life (the short-lived
    /// `GET_VALUES` connection of [`Options::multiplex`] is not counted).
    pub fn connections_opened(&self) -> u64 {
        self.0.connections_opened()
    }

    /// Connections open now, busy and idle, over all upstreams, and the `GET_VALUES`
    /// probe's of [`Options::multiplex`] while it lasts.
    pub fn open_connections(&self) -> usize {
        self.0.open_connections()
    }

    /// Idle connections kept now, over all upstreams.
    pub fn idle_connections(&self) -> usize {
        self.0.idle_connections()
    }

    /// Closes every idle kept connection now; answers how many. Each idle connection to
    /// php-fpm pins a worker: a caller that has finished its burst can free them at once
    /// rather than after [`Options::idle_timeout`]. Busy and multiplexed connections are
    /// left alone.
    ///
    /// An upstream with requests waiting for a connection keeps its idle ones: a waiting
    /// request is about to take one.
    pub fn close_idle(&self) -> usize {
        self.0.close_idle()
    }

    /// With [`Options::multiplex`], whether the upstream at `index` (in the order given
    /// to [`with_upstreams`](Self::with_upstreams)) multiplexes requests on its
    /// connections: `None` until it answered `GET_VALUES` (and always without the
    /// option).
    pub fn upstream_multiplexes(&self, index: usize) -> Option<bool> {
        self.0.upstream_multiplexes(index)
    }

    /// With [`Options::multiplex`], asks every upstream that has not answered yet whether
    /// it multiplexes (`GET_VALUES`), and waits until each probe has ended: answered, or
    /// failed within the connect timeout (10 s without one). Requests never wait for a
    /// probe; before it answers they go one per connection. Await this once at startup
    /// to have every request multiplexed from the first. Without the option it returns
    /// at once.
    pub async fn discover_multiplexing(&self) {
        self.0.discover_multiplexing().await
    }

    /// Sends a request and reads its whole response into memory (bounded by
    /// [`Options::max_body_bytes`]).
    pub async fn request(&self, request: Request) -> Result<Response, Error> {
        self.0.request(request.0).await
    }

    /// Sends a request and returns once the response head has arrived; the body then
    /// streams from the returned [`ResponseStream`], while the rest of the request body
    /// is still being written if need be (full duplex).
    pub async fn request_streaming(&self, request: Request) -> Result<ResponseStream, Error> {
        self.0
            .request_streaming(request.0)
            .await
            .map(ResponseStream)
    }

    /// Asks an upstream for management variables (`GET_VALUES`), such as
    /// `FCGI_MPXS_CONNS`, on a connection of its own (php-fpm closes it after
    /// answering).
    pub async fn get_values(&self, names: &[&str]) -> Result<ServerValues, Error> {
        self.0.get_values(names).await
    }
}

/// A response whose head has arrived; its body streams as a [`Stream`] of [`Bytes`]
/// (no copy) or through [`AsyncRead`].
///
/// Dropping it before the end of the body closes the connection (on a multiplexed
/// connection: aborts the request alone, see [`Options::multiplex`]).
pub struct ResponseStream(fcgi_async_core::ResponseStream<Tokio>);

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseStream {
    /// The response head.
    pub fn head(&self) -> &ResponseHead {
        self.0.head()
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.0.status()
    }

    /// The server's address.
    pub fn address(&self) -> &str {
        self.0.address()
    }

    /// How the request ended, once the body is read to its end.
    pub fn end(&self) -> Option<&End> {
        self.0.end()
    }

    /// `STDERR` received so far (empty with an `on_stderr` callback).
    pub fn stderr(&self) -> &[u8] {
        self.0.stderr()
    }

    /// Takes the `STDERR` received so far. Stderr never taken is logged through
    /// `tracing` (target `fcgi_tokio`, level warn) when the stream is dropped.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        self.0.take_stderr()
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.0.chunk().await
    }

    /// Polls for the next piece of the body.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        self.0.poll_chunk(cx)
    }
}

impl Stream for ResponseStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().0).poll_next(cx)
    }
}

impl AsyncRead for ResponseStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let piece = std::task::ready!(self.get_mut().0.poll_read_bytes(cx, buf.remaining()))?;
        buf.put_slice(&piece);
        Poll::Ready(Ok(()))
    }
}
