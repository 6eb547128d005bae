//! The shared client: a pool of connections per upstream, requests, responses.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::marker::PhantomData;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Event as Notify;
use fcgi_proto::lifecycle::{self, AwaitHead, FailedAttempt, HeadStep};
use fcgi_proto::{
    Address, ClientError as Error, Config, Connection, End, Event, LimitKind, Params, Phase,
    ResponseHead, ServerValues, UsageError,
};
use futures_core::Stream;

use crate::balance::{self, Standing};
use crate::body::Body;
use crate::discovery::Probe;
use crate::exchange::{Conn, Exchange, OpenGuard, Timeouts};
use crate::mux::{self, MuxPool, MuxRequest, Outcome};
use crate::runtime::{Runtime, Semaphore, SemaphorePermit};
use crate::time::Idle;

/// Requests per multiplexed connection when the server does not say (`FCGI_MAX_REQS`).
const DEFAULT_MUX_REQUESTS: u16 = 100;

/// Bound on the `GET_VALUES` exchange of [`Options::multiplex`] when there is no
/// [`Options::connect_timeout`].
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// After a `GET_VALUES` exchange failed, requests use one connection each for this long
/// before the client asks again.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// Settings of a [`Client`]; `fcgi_tokio::Options` and `fcgi_async_std::Options` are
/// this type.
///
/// `#[non_exhaustive]`: start from `Options::default()` and set fields.
///
/// ```
/// use std::time::Duration;
/// use fcgi_async_core::Options;
///
/// let mut options = Options::default();
/// options.max_connections = 4; // each kept connection pins one php-fpm worker
/// options.read_timeout = Some(Duration::from_secs(30));
/// options.total_timeout = Some(Duration::from_secs(60));
/// assert_eq!(options.max_idle, 8);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Bound on opening a connection, waiting for a free pool slot included (default
    /// 10 s): a TCP server that does not answer fails with [`Error::Timeout`] in
    /// [`Phase::Connect`] once it runs out; a request that found every connection the
    /// pool may open busy for that long fails in [`Phase::PoolSlot`] ("no connection
    /// free within ..."). A unix socket connect never waits: a server that is not
    /// there, or whose listen queue is full, fails at once with [`Error::Connect`] (a
    /// full queue with [`io::ErrorKind::WouldBlock`], `EAGAIN`, as nginx answers 502 at
    /// once), and the next upstream is tried.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fcgi_async_core::Options;
    ///
    /// let mut options = Options::default();
    /// options.connect_timeout = Some(Duration::from_secs(1));
    /// # let _ = options;
    /// ```
    pub connect_timeout: Option<Duration>,
    /// Bound on each wait for the server to send more, once the request is sent (default
    /// 60 s, as nginx's `fastcgi_read_timeout`).
    pub read_timeout: Option<Duration>,
    /// Bound on each wait for the server to take more of the request (default 60 s, as
    /// nginx's `fastcgi_send_timeout`).
    pub write_timeout: Option<Duration>,
    /// Bound on a whole request until its response head (default none). A streamed body
    /// read afterwards is bounded by `read_timeout` between reads.
    pub total_timeout: Option<Duration>,
    /// Most connections open to each upstream, busy and idle together (default 8).
    ///
    /// Each open connection to php-fpm pins one worker: keep this below the pool's
    /// `pm.max_children`, or other clients of that pool starve.
    pub max_connections: usize,
    /// Most idle connections kept per upstream (default 8).
    pub max_idle: usize,
    /// Idle connections older than this are closed instead of reused (default 30 s).
    pub idle_timeout: Option<Duration>,
    /// Close a connection after this many requests (default none).
    pub max_requests_per_connection: Option<u64>,
    /// Largest body [`Client::request`] collects in memory (default 64 MiB).
    pub max_body_bytes: u64,
    /// The protocol core's limits.
    pub config: Config,
    /// Multiplex requests on shared connections when the server can (default `false`).
    ///
    /// When set, the first request to an upstream starts a probe in the background: it
    /// asks `GET_VALUES` (`FCGI_MPXS_CONNS`, `FCGI_MAX_REQS`, `FCGI_MAX_CONNS`) on a
    /// short-lived connection of its own (within [`connect_timeout`](Self::connect_timeout),
    /// 10 s without one; one such connection per upstream at a time, beside the pool's
    /// and not counted by [`Client::connections_opened`]), and the client keeps the
    /// answer for its life. **Requests never wait for the probe**: until it has
    /// answered, they go one per connection, as without this option; requests waiting
    /// for a pool slot when it answers switch to multiplexing, and a kept connection
    /// becomes the first multiplexed one. To have every request multiplexed from the
    /// first, await [`Client::discover_multiplexing`] once at startup.
    ///
    /// - A server that does not multiplex (php-fpm answers `FCGI_MPXS_CONNS=0`; a server
    ///   without `GET_VALUES` answers `UNKNOWN_TYPE`) is served exactly as without this
    ///   option: one request per connection at a time.
    /// - A server that multiplexes (`FCGI_MPXS_CONNS=1`, such as flup) gets up to
    ///   `FCGI_MAX_REQS` requests at once on each connection (100 when it does not say;
    ///   [`Config::max_concurrent_requests`] caps it when set above 1). A request takes
    ///   the first connection with room; another connection opens only when all are
    ///   full, up to [`max_connections`](Self::max_connections) (and `FCGI_MAX_CONNS`).
    /// - When the `GET_VALUES` exchange fails (php-fpm does not answer while all its
    ///   workers are busy; some servers never answer it), requests go on one per
    ///   connection and the client asks again 5 s later, in the background.
    ///
    /// On a multiplexed connection, a task of its own ([`Runtime::spawn`]) owns the socket
    /// and writes every request's records and body while it reads every response, so
    /// one request never waits for another; timeouts and errors are those of the
    /// one-request path. Dropping a request or its [`ResponseStream`] sends
    /// `ABORT_REQUEST` for that request alone; the connection and the other requests on
    /// it carry on. FastCGI has no flow control per request: a response stream that is
    /// not read holds up to 512 KiB, then holds back the other responses on its
    /// connection until it is read or dropped. A connection idle for
    /// [`idle_timeout`](Self::idle_timeout) closes, and so does every connection once
    /// the client and all its streams are dropped. Multiplexed connections always ask
    /// `FCGI_KEEP_CONN`; [`max_idle`](Self::max_idle) does not apply to them, and
    /// [`max_requests_per_connection`](Self::max_requests_per_connection) does.
    ///
    /// An aborted request keeps its id until the server ends it. flup, for one, ignores
    /// `ABORT_REQUEST` and runs the request to its end; a request dropped while its body
    /// was still being sent waits there for the rest of the body forever and keeps its
    /// id (one slot of the connection) until the connection closes.
    pub multiplex: bool,
    /// With several upstreams: how long one that failed (a connect error, or
    /// `END_REQUEST` refusing a request as overloaded) is passed over, as nginx's
    /// `fail_timeout` (default 10 s). Requests go to the upstream with the fewest in
    /// flight among the others, and to it again once this has passed or a connection
    /// to it has opened; when every upstream is out, they are tried all the same.
    pub upstream_fail_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Some(lifecycle::DEFAULT_CONNECT_TIMEOUT),
            read_timeout: Some(lifecycle::DEFAULT_READ_TIMEOUT),
            write_timeout: Some(lifecycle::DEFAULT_WRITE_TIMEOUT),
            total_timeout: None,
            max_connections: 8,
            max_idle: 8,
            idle_timeout: Some(Duration::from_secs(30)),
            max_requests_per_connection: None,
            max_body_bytes: lifecycle::DEFAULT_MAX_BODY_BYTES,
            config: Config::default(),
            multiplex: false,
            upstream_fail_timeout: Duration::from_secs(10),
        }
    }
}

type StderrCallback = Box<dyn FnMut(&[u8]) + Send>;

/// One request: params, a body, and where its stderr goes.
///
/// The client sets `CONTENT_LENGTH` from the body, so what is declared always equals
/// what is sent.
pub struct Request {
    params: Params,
    body: Body,
    on_stderr: Option<StderrCallback>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("params", &self.params)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with these params and no body.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            body: Body::empty(),
            on_stderr: None,
        }
    }

    /// A `GET` for a script file with nginx's default params (see
    /// [`ParamsBuilder::get`](fcgi_proto::ParamsBuilder::get)); `uri` is the request
    /// target (path and query).
    pub fn get(script_filename: &str, uri: &str) -> Result<Self, Error> {
        Ok(Self::new(
            fcgi_proto::ParamsBuilder::get(script_filename, uri).build()?,
        ))
    }

    /// The params.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The params, to change.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Hands the application's `STDERR` to `callback` as it arrives, instead of keeping
    /// it with the response.
    pub fn on_stderr(mut self, callback: impl FnMut(&[u8]) + Send + 'static) -> Self {
        self.on_stderr = Some(Box::new(callback));
        self
    }
}

struct Upstream<R: Runtime> {
    address: Address,
    text: Arc<str>,
    permits: R::Semaphore,
    /// Boxed: a connection moves from the pool to a request and back as a pointer, not
    /// as the few hundred bytes of its state.
    idle: Mutex<Vec<Box<Conn<R>>>>,
    /// Requests waiting for a pool slot or taking an idle connection right now.
    waiting: AtomicUsize,
    /// With [`Options::multiplex`]: what `GET_VALUES` said, once it answered. `None`
    /// inside: the server does not multiplex.
    mode: OnceLock<Option<mux::Settings>>,
    /// Whether a `GET_VALUES` probe is running; after a failed one, when to ask again.
    discovery: Mutex<Discovery>,
    /// Notified when a probe ends: requests waiting for a one-request slot look at
    /// `mode` again.
    probe_ended: Notify,
    mux: MuxPool,
    /// Whether requests go to it first ([`balance`]).
    standing: Standing,
}

/// The state of an upstream's `GET_VALUES` probe ([`Options::multiplex`]).
#[derive(Debug, Default)]
struct Discovery {
    running: bool,
    retry_at: Option<Instant>,
}

/// What [`Client::checkout`] found.
// Boxing the large variant would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Checkout<R: Runtime> {
    /// A connection, whether it was reused, and its pool slot.
    Conn(Box<Conn<R>>, bool, PlainSlot<R>),
    /// The upstream answered `GET_VALUES` while the request waited for a slot: it
    /// looks at the multiplexed path again.
    ModeKnown,
}

/// The pool slot of a one-request connection. Freeing it wakes the requests waiting
/// for room on the upstream's multiplexed connections, which share the slots.
struct PlainSlot<R: Runtime> {
    permit: Option<SemaphorePermit<R>>,
    /// `None` unless the client multiplexes: no request can wait for a multiplexed slot.
    freed: Option<Arc<Notify>>,
}

impl<R: Runtime> PlainSlot<R> {
    /// The permit, for a connection that keeps the slot as a multiplexed one.
    fn into_permit(mut self) -> SemaphorePermit<R> {
        self.permit
            .take()
            .expect("a slot holds its permit until dropped")
    }
}

impl<R: Runtime> Drop for PlainSlot<R> {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            if let Some(freed) = &self.freed {
                freed.notify(usize::MAX);
            }
        }
    }
}

struct Inner<R: Runtime> {
    upstreams: Vec<Upstream<R>>,
    options: Options,
    next: AtomicUsize,
    opened: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
}

#[doc = crate::shared_docs!(client)]
///
/// Generic over the [`Runtime`] that drives its connections; an adapter (`fcgi-tokio`,
/// `fcgi-async-std`) names it.
///
/// ```no_run
/// # async fn run<R: fcgi_async_core::Runtime>() -> Result<(), fcgi_async_core::Error> {
/// use fcgi_async_core::{Client, Request};
/// use fcgi_proto::ParamsBuilder;
///
/// let client = Client::<R>::new("unix:/run/php/php-fpm.sock")?;
/// let params = ParamsBuilder::new("GET", "/index.php")
///     .script("/index.php", "/srv/www/index.php")
///     .build()?;
/// let response = client.request(Request::new(params)).await?;
/// println!("{} {}", response.status, String::from_utf8_lossy(&response.body));
/// # Ok(()) }
/// ```
pub struct Client<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field(
                "upstreams",
                &self
                    .inner
                    .upstreams
                    .iter()
                    .map(|u| &u.text)
                    .collect::<Vec<_>>(),
            )
            .field("options", &self.inner.options)
            .finish()
    }
}

/// A response read into memory; `fcgi_tokio::Response` and `fcgi_async_std::Response`
/// are this type.
///
/// ```no_run
/// # async fn run(client: fcgi_async_core::Client<impl fcgi_async_core::Runtime>) -> Result<(), fcgi_async_core::Error> {
/// use fcgi_async_core::Request;
///
/// let response = client.request(Request::get("/srv/www/login.php", "/login.php")?).await?;
/// println!("{} {:?}", response.status, response.header("content-type"));
/// for cookie in response.headers("set-cookie") {
///     println!("Set-Cookie: {}", String::from_utf8_lossy(cookie));
/// }
/// if !response.stderr.is_empty() {
///     eprintln!("{}", String::from_utf8_lossy(&response.stderr));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status (from `Status`, else 302 with `Location`, else 200).
    pub status: u16,
    /// The response head: status, reason and every header in order.
    pub head: ResponseHead,
    /// The body, byte-exact.
    pub body: Bytes,
    /// The application's `STDERR` (empty with an [`on_stderr`](Request::on_stderr)
    /// callback).
    pub stderr: Vec<u8>,
    /// How the request ended.
    pub end: End,
}

impl Response {
    /// Every value of a header, by case-insensitive name, in order.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.head.get_all(name)
    }

    /// The first value of a header as text, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl<R: Runtime> Client<R> {
    /// A client for one address with default [`Options`]. It connects at the first
    /// request.
    pub fn new<A>(address: A) -> Result<Self, Error>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Self::with_upstreams([address.try_into()?], Options::default())
    }

    /// A client for several upstream addresses: each request goes to the one with the
    /// fewest requests in flight (turns among equals), passing over one that failed
    /// lately ([`Options::upstream_fail_timeout`]) or that a health check took out
    /// ([`set_upstream_healthy`](Self::set_upstream_healthy)); a connect error tries
    /// the next.
    pub fn with_upstreams(
        addresses: impl IntoIterator<Item = Address>,
        options: Options,
    ) -> Result<Self, Error> {
        let upstreams: Vec<Upstream<R>> = addresses
            .into_iter()
            .map(|address| Upstream {
                text: address.to_string().into(),
                address,
                permits: R::Semaphore::new(options.max_connections.max(1)),
                idle: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
                mode: OnceLock::new(),
                discovery: Mutex::new(Discovery::default()),
                probe_ended: Notify::new(),
                mux: MuxPool::default(),
                standing: Standing::default(),
            })
            .collect();
        if upstreams.is_empty() {
            return Err(Error::NoUpstream);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                upstreams,
                options,
                next: AtomicUsize::new(0),
                opened: Arc::new(AtomicU64::new(0)),
                open: Arc::new(AtomicUsize::new(0)),
            }),
        })
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The upstream a request tries first ([`balance::first`]): the least loaded in
    /// service, a pool slot taken or waited for counting as a request in flight.
    fn first_upstream(&self) -> usize {
        let ups = &self.inner.upstreams;
        if ups.len() == 1 {
            return 0;
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % ups.len();
        let now = R::now();
        let slots = self.inner.options.max_connections.max(1);
        let standing: Vec<(bool, usize)> = ups
            .iter()
            .map(|up| {
                let busy = slots.saturating_sub(up.permits.available_permits());
                let load = busy + up.waiting.load(Ordering::Relaxed);
                (up.standing.in_service(now), load)
            })
            .collect();
        balance::first(start, &standing)
    }

    /// The upstream addresses, in the order given.
    pub fn upstreams(&self) -> impl ExactSizeIterator<Item = &Address> {
        self.inner.upstreams.iter().map(|up| &up.address)
    }

    /// Takes the upstream at `index` (in the order given) out of service, or puts it
    /// back: for a health check of the caller's (the `fcgi-http` gateway asks php-fpm's
    /// ping page). While out, requests go to the others, or to it when all are out.
    /// An index out of range does nothing.
    pub fn set_upstream_healthy(&self, index: usize, healthy: bool) {
        if let Some(up) = self.inner.upstreams.get(index) {
            up.standing.set_healthy(healthy);
        }
    }

    /// Whether the upstream at `index` is in service as far as health checks go
    /// (`false` for an index out of range).
    pub fn upstream_healthy(&self, index: usize) -> bool {
        self.inner
            .upstreams
            .get(index)
            .is_some_and(|up| up.standing.healthy())
    }

    /// Connections opened so far for requests, over the client's life (the short-lived
    /// `GET_VALUES` connection of [`Options::multiplex`] is not counted).
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// Connections open now, busy and idle, over all upstreams, and the `GET_VALUES`
    /// probe's of [`Options::multiplex`] while it lasts.
    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Idle connections kept now, over all upstreams.
    pub fn idle_connections(&self) -> usize {
        self.inner
            .upstreams
            .iter()
            .map(|u| lock(&u.idle).len())
            .sum()
    }

    /// Closes every idle kept connection now; answers how many. Each idle connection to
    /// php-fpm pins a worker: a caller that has finished its burst can free them at once
    /// rather than after [`Options::idle_timeout`]. Busy and multiplexed connections are
    /// left alone.
    ///
    /// An upstream with requests waiting for a connection keeps its idle ones: a waiting
    /// request is about to take one.
    pub fn close_idle(&self) -> usize {
        self.inner
            .upstreams
            .iter()
            .filter(|u| u.waiting.load(Ordering::Acquire) == 0)
            .map(|u| std::mem::take(&mut *lock(&u.idle)).len())
            .sum()
    }

    /// With [`Options::multiplex`], whether the upstream at `index` (in the order given
    /// to [`with_upstreams`](Self::with_upstreams)) multiplexes requests on its
    /// connections: `None` until it answered `GET_VALUES` (and always without the
    /// option).
    pub fn upstream_multiplexes(&self, index: usize) -> Option<bool> {
        self.inner
            .upstreams
            .get(index)?
            .mode
            .get()
            .map(Option::is_some)
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            read: self.inner.options.read_timeout,
            write: self.inner.options.write_timeout,
        }
    }

    /// How long a request may wait for a connection: the connect timeout, and what is
    /// left of its total timeout.
    fn connect_bound(&self, deadline: Option<(Instant, Duration)>) -> Option<Duration> {
        match (self.inner.options.connect_timeout, deadline) {
            (t, None) => t,
            (None, Some((at, _))) => Some(at.saturating_duration_since(R::now())),
            (Some(t), Some((at, _))) => Some(t.min(at.saturating_duration_since(R::now()))),
        }
    }

    /// A freshly opened connection to the upstream at `index`.
    fn new_conn(&self, io: R::Socket, index: usize) -> Box<Conn<R>> {
        Box::new(Conn {
            io,
            proto: Connection::new(self.inner.options.config.clone()),
            address: self.inner.upstreams[index].text.clone(),
            upstream: index,
            received: 0,
            requests: 0,
            idle_since: R::now(),
            read_idle: None,
            write_idle: None,
            _open: OpenGuard::new(&self.inner.open),
        })
    }

    /// A connection to an upstream, starting with `first`: an idle one (unless
    /// `fresh_only`; probed first when [`lifecycle::must_probe`] says so for a body that
    /// is, or is not, `body_replayable`), or a new one. With `may_switch`, a request of a multiplexing
    /// client that waits for a slot while its upstream's probe runs stops waiting when
    /// the probe ends ([`Checkout::ModeKnown`]).
    async fn checkout(
        &self,
        first: usize,
        deadline: Option<(Instant, Duration)>,
        fresh_only: bool,
        may_switch: bool,
        body_replayable: bool,
    ) -> Result<Checkout<R>, Error> {
        let ups = &self.inner.upstreams;
        let options = &self.inner.options;
        let mut last_error = None;
        // Those in service first, in turn from `first`; then the others.
        // Read once, so that each upstream comes exactly once; with one upstream there
        // is no order to make, and no allocation or clock read per request for it.
        let in_service: Vec<bool> = if ups.len() > 1 {
            let now = R::now();
            ups.iter().map(|up| up.standing.in_service(now)).collect()
        } else {
            Vec::new()
        };
        let serving = |i: usize| in_service.get(i).copied().unwrap_or(true);
        let order = (0..ups.len())
            .map(|k| (first + k) % ups.len())
            .filter(|&i| serving(i))
            .chain(
                (0..ups.len())
                    .map(|k| (first + k) % ups.len())
                    .filter(|&i| !serving(i)),
            );
        for index in order {
            let up = &ups[index];
            let bound = self.connect_bound(deadline);
            let waited_too_long = || Error::Timeout {
                address: up.text.to_string(),
                phase: Phase::PoolSlot,
                after: bound.unwrap_or_default(),
            };
            // When the wait for a slot began; `None`: a slot was free at once (no clock
            // read, no timer armed).
            let mut started = None;
            let _waiting = Waiting::enter(&up.waiting);
            let switch = may_switch && options.multiplex && up.mode.get().is_none();
            let permit = if switch {
                started = Some(R::now());
                // Listening before looking: a probe that ends after the look wakes this.
                let mut ended = pin!(up.probe_ended.listen());
                if up.mode.get().is_some() {
                    return Ok(Checkout::ModeKnown);
                }
                let mut acquire = pin!(up.permits.acquire());
                let raced = poll_fn(|cx| {
                    if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
                        return Poll::Ready(Some(permit));
                    }
                    ended.as_mut().poll(cx).map(|()| None)
                });
                let raced = match bound {
                    Some(b) => R::timeout(b, raced).await.ok_or_else(waited_too_long)?,
                    None => raced.await,
                };
                match raced {
                    Some(permit) => permit,
                    None => return Ok(Checkout::ModeKnown),
                }
            } else if let Some(permit) = up.permits.try_acquire() {
                // A free slot, taken without arming the pool-slot timeout: a waiting
                // request would hold none (a released slot goes to the first waiter).
                permit
            } else {
                started = Some(R::now());
                let acquire = up.permits.acquire();
                match bound {
                    Some(b) => R::timeout(b, acquire).await.ok_or_else(waited_too_long)?,
                    None => acquire.await,
                }
            };
            let slot = PlainSlot {
                permit: Some(permit),
                freed: options.multiplex.then(|| up.mux.waiters()),
            };
            while let Some(mut conn) = (!fresh_only).then(|| lock(&up.idle).pop()).flatten() {
                let now = R::now();
                let idle_for = now.saturating_duration_since(conn.idle_since);
                let fresh = options.idle_timeout.is_none_or(|t| idle_for < t);
                if fresh && conn.is_usable(idle_for, body_replayable) {
                    conn.idle_since = now;
                    return Ok(Checkout::Conn(conn, true, slot));
                }
            }
            // Idle connections count against max_connections too: the oldest give way
            // to the one about to open (a retry passes over idle ones it deems stale).
            {
                let mut idle = lock(&up.idle);
                let excess = idle.len().saturating_sub(up.permits.available_permits());
                idle.drain(..excess);
            }
            let left = bound.map(|b| match started {
                Some(started) => b.saturating_sub(R::now().saturating_duration_since(started)),
                None => b,
            });
            match R::connect(&up.address, left).await {
                Ok(io) => {
                    up.standing.succeeded();
                    self.inner.opened.fetch_add(1, Ordering::Relaxed);
                    return Ok(Checkout::Conn(self.new_conn(io, index), false, slot));
                }
                Err(source) => {
                    tracing::debug!(address = %up.text, error = %source, "FastCGI connect failed");
                    // A timeout ends the request; a connect error (no server, a unix
                    // socket whose listen queue is full) tries the next upstream.
                    let error = Error::connect_failed(
                        up.text.to_string(),
                        source,
                        bound.unwrap_or_default(),
                    );
                    up.standing.failed(R::now(), options.upstream_fail_timeout);
                    if error.is_timeout() {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.expect("a client has at least one upstream"))
    }

    /// Puts a connection whose request ended back in its pool (as a multiplexed one when
    /// its upstream turned out to multiplex), or closes it.
    fn check_in(&self, mut conn: Box<Conn<R>>, slot: PlainSlot<R>) {
        let options = &self.inner.options;
        if let Some(error) = conn.proto.error() {
            // The request had ended whole (its response is delivered) when the server
            // broke the protocol: a record after END_REQUEST, say.
            tracing::warn!(
                address = %conn.address,
                %error,
                "FastCGI server broke the protocol after a response ended; connection closed"
            );
        }
        let worn_out = options
            .max_requests_per_connection
            .is_some_and(|max| conn.requests >= max);
        if !conn.proto.is_reusable() || worn_out {
            return;
        }
        let up = &self.inner.upstreams[conn.upstream];
        if let Some(Some(settings)) = up.mode.get() {
            up.mux.adopt::<R>(settings, *conn, slot.into_permit());
            return;
        }
        // Idle since its last read (the one that brought the end of the response),
        // timed then; no clock read of its own unless the read timeout is off.
        conn.idle_since = conn.read_idle.as_ref().map_or_else(R::now, Idle::last);
        let mut idle = lock(&up.idle);
        if idle.len() < options.max_idle {
            idle.push(conn);
        }
    }

    /// Sends a request and reads its whole response into memory (bounded by
    /// [`Options::max_body_bytes`]).
    // Not `async fn`: the future is `run`'s own, with no state machine around it.
    pub fn request(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        self.run::<Response>(request)
    }

    /// Sends a request and returns once the response head has arrived; the body then
    /// streams from the returned [`ResponseStream`], while the rest of the request body
    /// is still being written if need be (full duplex).
    pub fn request_streaming(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<ResponseStream<R>, Error>> + Send + '_ {
        self.run::<ResponseStream<R>>(request)
    }

    /// Sends a request, once more on a fresh connection when [`FailedAttempt::may_retry`]
    /// says so, and answers `A`: the whole response, read on a one-request connection in
    /// the same loop that waits for the head, with no [`ResponseStream`] in between (the
    /// usual request takes one pass through here); or the stream, at the head.
    async fn run<A: Answer<R>>(&self, request: Request) -> Result<A, Error> {
        let Request {
            mut params,
            body,
            mut on_stderr,
        } = request;
        lifecycle::set_content_length(&mut params, body.len())?;
        let deadline = self.inner.options.total_timeout.map(|t| (R::now() + t, t));
        let first = self.first_upstream();
        let mut replay = body.try_clone();
        let mut body = Some(body);
        let mut stderr = Vec::new();
        let mut retry = false;
        loop {
            if self.inner.options.multiplex {
                let mut attempt = MuxAttempt {
                    params: &params,
                    body: &mut body,
                    replay: &mut replay,
                    deadline,
                    stderr: &mut stderr,
                    on_stderr: &mut on_stderr,
                };
                match self.request_mux(first, &mut attempt).await {
                    None => {}
                    Some(Err(e)) => return Err(e),
                    Some(Ok((request, head))) => {
                        let address = request.address.clone();
                        let source = Source::Mux(request);
                        let stream =
                            ResponseStream::new(self, address, source, head, stderr, on_stderr);
                        return match A::at_head(stream) {
                            Ok(answer) => Ok(answer),
                            Err(stream) => stream.read_whole().await.map(A::whole),
                        };
                    }
                }
            }
            // A retry goes to a new connection: the next idle one may be as stale as the
            // last (php-fpm workers recycled by pm.max_requests close theirs together).
            let checkout = self.checkout(first, deadline, retry, true, replay.is_some());
            let (conn, reused, slot) = match checkout.await? {
                Checkout::Conn(conn, reused, slot) => (conn, reused, slot),
                Checkout::ModeKnown => continue,
            };
            let received_before = conn.received;
            let this_body = match body.take() {
                Some(b) => b,
                None => replay.take().expect("a retry has a replayable body"),
            };
            let mut exchange =
                Exchange::start(conn, &params, this_body, self.timeouts(), deadline)?;
            let mut wait = AwaitHead::new();
            // `A::WHOLE` only: the head, once it came, and the body so far.
            let mut whole: Option<(ResponseHead, Collected, UnreadStderr<R>)> = None;
            let error = loop {
                // Events already received first, without a poll (the usual response
                // comes in one read: its head, body and end).
                let polled = match exchange.queued_event() {
                    Some(event) => Ok(event),
                    None => poll_fn(|cx| exchange.poll_event(cx)).await,
                };
                let event = match polled {
                    Ok(event) => event,
                    // Past the head, an error ends the request as it ends a stream.
                    Err(e) if whole.is_some() => return Err(e),
                    Err(e) => break e,
                };
                let Some((_, collected, unread)) = &mut whole else {
                    match wait.on_event(event, &exchange.conn.address) {
                        HeadStep::Head(head) if A::WHOLE => {
                            let kept = std::mem::take(&mut stderr);
                            let unread = UnreadStderr::new(kept, &exchange.conn.address);
                            let collected = Collected::new(self.inner.options.max_body_bytes);
                            whole = Some((head, collected, unread));
                        }
                        HeadStep::Head(head) => {
                            let address = exchange.conn.address.clone();
                            let source = Source::Plain { exchange, slot };
                            let stream =
                                ResponseStream::new(self, address, source, head, stderr, on_stderr);
                            return Ok(A::at_head(stream)
                                .unwrap_or_else(|_| unreachable!("a whole body is read here")));
                        }
                        HeadStep::Stderr(data) => {
                            deliver_stderr(&mut stderr, &mut on_stderr, &data)
                        }
                        HeadStep::Failed(e) => {
                            // The request ended with a refusal or a bad head; the
                            // connection is fine.
                            if matches!(e, Error::Refused { .. }) {
                                let up = &self.inner.upstreams[exchange.conn.upstream];
                                up.standing
                                    .failed(R::now(), self.inner.options.upstream_fail_timeout);
                            }
                            self.check_in(exchange.conn, slot);
                            return Err(e);
                        }
                        _ => {}
                    }
                    continue;
                };
                let address = &exchange.conn.address;
                match event {
                    Event::Body { data, .. } => collected.push(data, address)?,
                    Event::Stderr { data, .. } => unread.deliver(&mut on_stderr, &data, address),
                    Event::End { end, .. } => {
                        let (head, collected, unread) = whole.take().expect("matched above");
                        // The connection goes back before its pool slot.
                        self.check_in(exchange.conn, slot);
                        return Ok(A::whole(Response {
                            status: head.status(),
                            head,
                            body: collected.finish(),
                            stderr: unread.take(),
                            end,
                        }));
                    }
                    _ => {}
                }
            };
            let attempt = FailedAttempt {
                connection_failed: lifecycle::is_connection_failure(&error),
                reused,
                response_started: exchange.conn.received != received_before,
                body_replayable: replay.is_some(),
                already_retried: retry,
            };
            drop(exchange);
            drop(slot);
            if attempt.may_retry() {
                retry = true;
                continue;
            }
            return Err(error);
        }
    }

    /// Asks an upstream for management variables (`GET_VALUES`), such as
    /// `FCGI_MPXS_CONNS`, on a connection of its own (php-fpm closes it after
    /// answering).
    pub async fn get_values(&self, names: &[&str]) -> Result<ServerValues, Error> {
        let deadline = self.inner.options.total_timeout.map(|t| (R::now() + t, t));
        let first = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.upstreams.len();
        // Not retried: a kept connection is probed before it carries the request.
        let Checkout::Conn(mut conn, _, _slot) =
            self.checkout(first, deadline, false, false, false).await?
        else {
            unreachable!("checkout switches paths only when asked to");
        };
        // A connection fresh or taken idle from the pool has nothing in flight; the
        // core's `get_values` answers for a closed or broken one.
        if conn.proto.in_flight() > 0 {
            return Err(Error::Usage(UsageError::Busy));
        }
        conn.proto
            .get_values(names)
            .map_err(|e| conn.proto_error(e))?;
        let mut exchange = Exchange::management(conn, self.timeouts(), deadline);
        loop {
            match poll_fn(|cx| exchange.poll_event(cx)).await? {
                Event::Values(values) => return Ok(values),
                _ => continue,
            }
        }
    }
}

/// A request on its way through the multiplexed path: what a new attempt needs.
struct MuxAttempt<'a> {
    params: &'a Params,
    /// The body, while no attempt has consumed it (or one handed it back unsent).
    body: &'a mut Option<Body>,
    /// A copy of an in-memory body, to send again after a failed attempt.
    replay: &'a mut Option<Body>,
    deadline: Option<(Instant, Duration)>,
    stderr: &'a mut Vec<u8>,
    on_stderr: &'a mut Option<StderrCallback>,
}

impl<R: Runtime> Client<R> {
    /// With [`Options::multiplex`], asks every upstream that has not answered yet whether
    /// it multiplexes (`GET_VALUES`, see there), and waits until each probe has ended:
    /// answered, or failed within the connect timeout (10 s without one). Requests never
    /// wait for a probe; before it answers they go one per connection. Await this once
    /// at startup to have every request multiplexed from the first. Without the option
    /// it returns at once.
    ///
    /// ```no_run
    /// # async fn run<R: fcgi_async_core::Runtime>() -> Result<(), fcgi_async_core::Error> {
    /// use fcgi_async_core::{Client, Options};
    ///
    /// let mut options = Options::default();
    /// options.multiplex = true;
    /// let client = Client::<R>::with_upstreams(["unix:/run/app.sock".parse()?], options)?;
    /// client.discover_multiplexing().await;
    /// println!("multiplexes: {:?}", client.upstream_multiplexes(0));
    /// # Ok(()) }
    /// ```
    pub async fn discover_multiplexing(&self) {
        if !self.inner.options.multiplex {
            return;
        }
        for (index, up) in self.inner.upstreams.iter().enumerate() {
            // Listening before looking: a probe that ends after the look wakes this.
            let ended = up.probe_ended.listen();
            if up.mode.get().is_some() {
                continue;
            }
            self.start_discovery(index, true);
            ended.await;
        }
    }

    /// Starts the `GET_VALUES` probe of the upstream at `index` in the background,
    /// unless one is running or (without `now`) a failed one is too recent.
    fn start_discovery(&self, index: usize, now: bool) {
        let up = &self.inner.upstreams[index];
        {
            let mut discovery = lock(&up.discovery);
            let too_soon = discovery.retry_at.is_some_and(|at| R::now() < at);
            if discovery.running || (too_soon && !now) {
                return;
            }
            discovery.running = true;
        }
        let options = &self.inner.options;
        let probe = Probe {
            address: up.address.clone(),
            text: up.text.clone(),
            index,
            config: options.config.clone(),
            timeouts: self.timeouts(),
            bound: options.connect_timeout.unwrap_or(DISCOVERY_TIMEOUT),
            open: self.inner.open.clone(),
        };
        // The task holds the client weakly: a dropped client closes its connections at
        // once, whatever a slow probe is still waiting for.
        let inner = Arc::downgrade(&self.inner);
        R::spawn(async move {
            let answer = probe.run::<R>().await;
            if let Some(inner) = Weak::upgrade(&inner) {
                Client { inner }.finish_discovery(index, answer);
            }
        });
    }

    /// Keeps what a probe found and wakes the requests that wait on it.
    fn finish_discovery(&self, index: usize, answer: Result<Option<ServerValues>, Error>) {
        let up = &self.inner.upstreams[index];
        match answer {
            Err(e) => {
                tracing::debug!(
                    address = %up.text,
                    error = &e as &(dyn std::error::Error + 'static),
                    "FastCGI GET_VALUES failed; not multiplexing for now"
                );
                let mut discovery = lock(&up.discovery);
                discovery.running = false;
                discovery.retry_at = Some(R::now() + DISCOVERY_RETRY);
            }
            Ok(values) => {
                let settings = values
                    .as_ref()
                    .and_then(|v| self.mux_settings_from(index, v));
                tracing::debug!(address = %up.text, ?values, multiplexed = settings.is_some(), "FastCGI GET_VALUES");
                let mode = up.mode.get_or_init(|| settings);
                *lock(&up.discovery) = Discovery::default();
                if let Some(settings) = mode {
                    // The most recently used idle connection carries on as the first
                    // multiplexed one (when a slot is free for it); the others close.
                    let idle = std::mem::take(&mut *lock(&up.idle));
                    if let Some(mut conn) = idle.into_iter().next_back() {
                        if conn.is_alive() {
                            if let Some(permit) = up.permits.try_acquire() {
                                up.mux.adopt::<R>(settings, *conn, permit);
                            }
                        }
                    }
                }
            }
        }
        up.probe_ended.notify(usize::MAX);
    }

    /// The multiplexing settings for the upstream at `index` from its `GET_VALUES`
    /// answer; `None` when it does not multiplex.
    fn mux_settings_from(&self, index: usize, values: &ServerValues) -> Option<mux::Settings> {
        let up = &self.inner.upstreams[index];
        let options = &self.inner.options;
        let cap = options.config.max_concurrent_requests;
        let fallback = if cap > 1 { cap } else { DEFAULT_MUX_REQUESTS };
        let mut per_connection = values.max_concurrent_requests(fallback);
        if cap > 1 {
            per_connection = per_connection.min(cap);
        }
        if per_connection < 2 {
            return None;
        }
        let server_max = values
            .max_connections()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .unwrap_or(usize::MAX);
        Some(mux::Settings {
            address: up.address.clone(),
            text: up.text.clone(),
            config: options.config.clone(),
            per_connection,
            max_connections: options.max_connections.max(1).min(server_max),
            connect_timeout: options.connect_timeout,
            write_timeout: options.write_timeout,
            idle_timeout: options.idle_timeout,
            max_requests_per_connection: options.max_requests_per_connection,
            opened: self.inner.opened.clone(),
            open: self.inner.open.clone(),
        })
    }

    /// How the upstream at `index` is served: `Some` settings when it multiplexes,
    /// `None` when it does not or has not said yet (its probe then starts, in the
    /// background).
    fn mux_settings(&self, index: usize) -> Option<&mux::Settings> {
        let up = &self.inner.upstreams[index];
        match up.mode.get() {
            Some(mode) => mode.as_ref(),
            None => {
                self.start_discovery(index, false);
                None
            }
        }
    }

    /// Sends a request on a multiplexed connection, trying the upstreams from `first`
    /// while they cannot be connected; returns once the response head arrived. `None`
    /// when an upstream does not multiplex: the caller takes the one-request path.
    async fn request_mux(
        &self,
        first: usize,
        attempt: &mut MuxAttempt<'_>,
    ) -> Option<Result<(MuxRequest<R>, ResponseHead), Error>> {
        let ups = &self.inner.upstreams;
        let mut last_error = None;
        for k in 0..ups.len() {
            let index = (first + k) % ups.len();
            let up = &ups[index];
            let settings = self.mux_settings(index)?;
            let mut unsent_retries = 0;
            let mut replayed = false;
            loop {
                let bound = self.connect_bound(attempt.deadline);
                let (conn, reused) = match up.mux.reserve::<R>(&up.permits, settings, bound).await {
                    Ok(reserved) => reserved,
                    Err(e) => return Some(Err(e)),
                };
                let Some(body) = attempt.body.take().or_else(|| attempt.replay.take()) else {
                    unreachable!("an attempt starts only with a body at hand");
                };
                let mut request = conn.start(
                    attempt.params.clone(),
                    body,
                    self.inner.options.read_timeout,
                    attempt.deadline,
                );
                let error = match read_head(&mut request, attempt.stderr, attempt.on_stderr).await {
                    Ok(Ok(head)) => return Some(Ok((request, head))),
                    Ok(Err(e)) => return Some(Err(e)),
                    Err(e) => e,
                };
                if let Some(body) = request.take_returned_body() {
                    *attempt.body = Some(body);
                }
                let (outcome, received) = (request.outcome, request.received);
                drop(request);
                let can_send = attempt.body.is_some() || attempt.replay.is_some();
                if error.is_connect() && can_send {
                    last_error = Some(error);
                    break;
                }
                let retry = match outcome {
                    // The connection closed before the request went out: nothing was sent.
                    Outcome::NotStarted => {
                        unsent_retries += 1;
                        unsent_retries <= 3
                    }
                    // A kept connection broke before any of the response came: once more
                    // on another connection, as on the one-request path.
                    Outcome::ConnectionFailed => {
                        let again = FailedAttempt {
                            connection_failed: true,
                            reused,
                            response_started: received,
                            body_replayable: can_send,
                            already_retried: replayed,
                        }
                        .may_retry();
                        replayed = true;
                        again
                    }
                    _ => false,
                };
                if !(retry && can_send) {
                    return Some(Err(error));
                }
            }
        }
        Some(Err(
            last_error.expect("the loop ends early unless a connect failed")
        ))
    }
}

/// Where a request's events come from: its own connection, or a multiplexed one.
trait EventSource {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>>;
    fn address(&self) -> &str;
}

impl<R: Runtime> EventSource for Exchange<R> {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        Exchange::poll_event(self, cx)
    }

    fn address(&self) -> &str {
        &self.conn.address
    }
}

impl<R: Runtime> EventSource for MuxRequest<R> {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        MuxRequest::poll_event(self, cx)
    }

    fn address(&self) -> &str {
        &self.address
    }
}

/// Counts a request as waiting for a connection while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What [`Client::run`] answers: the whole response ([`Response`], for
/// [`Client::request`]) or a stream of it from its head ([`ResponseStream`], for
/// [`Client::request_streaming`]).
trait Answer<R: Runtime>: Sized {
    /// Whether the body is read whole.
    const WHOLE: bool;

    /// The answer from the stream at the response head, or the stream back when the
    /// body is to be read whole.
    // Moved back as it is: boxing it would cost an allocation per request.
    #[allow(clippy::result_large_err)]
    fn at_head(stream: ResponseStream<R>) -> Result<Self, ResponseStream<R>>;

    /// The answer from the response read whole (only when [`WHOLE`](Self::WHOLE)).
    fn whole(response: Response) -> Self;
}

impl<R: Runtime> Answer<R> for Response {
    const WHOLE: bool = true;

    fn at_head(stream: ResponseStream<R>) -> Result<Self, ResponseStream<R>> {
        Err(stream)
    }

    fn whole(response: Response) -> Self {
        response
    }
}

impl<R: Runtime> Answer<R> for ResponseStream<R> {
    const WHOLE: bool = false;

    fn at_head(stream: ResponseStream<R>) -> Result<Self, ResponseStream<R>> {
        Ok(stream)
    }

    fn whole(_: Response) -> Self {
        unreachable!("run reads a body whole only for a Response")
    }
}

/// A response body read whole, bounded by [`Options::max_body_bytes`]. The first chunk
/// is kept apart: a body of one chunk (most small responses) is returned as it is, with
/// no list allocated.
struct Collected {
    max: u64,
    total: u64,
    first: Option<Bytes>,
    more: Vec<Bytes>,
}

impl Collected {
    fn new(max: u64) -> Self {
        Self {
            max,
            total: 0,
            first: None,
            more: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, chunk: Bytes, address: &str) -> Result<(), Error> {
        self.total += chunk.len() as u64;
        if self.total > self.max {
            return Err(Error::Limit {
                address: address.to_string(),
                kind: LimitKind::ResponseBody,
                limit: self.max,
            });
        }
        match self.first {
            None => self.first = Some(chunk),
            Some(_) => self.more.push(chunk),
        }
        Ok(())
    }

    #[inline]
    fn finish(self) -> Bytes {
        match self.first {
            None => Bytes::new(),
            Some(first) if self.more.is_empty() => first,
            Some(first) => {
                let mut all = Vec::with_capacity(self.total as usize);
                all.extend_from_slice(&first);
                self.more.iter().for_each(|c| all.extend_from_slice(c));
                all.into()
            }
        }
    }
}

/// The `STDERR` of a response whose body [`Client::request`] reads: logged through
/// [`Runtime::unread_stderr`] if the request fails or is dropped before the response is
/// handed over, as a dropped [`ResponseStream`]'s is.
struct UnreadStderr<R: Runtime> {
    kept: Vec<u8>,
    /// The server's, taken once there is `STDERR` to log (none, usually).
    address: Option<Arc<str>>,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> UnreadStderr<R> {
    fn new(kept: Vec<u8>, address: &Arc<str>) -> Self {
        Self {
            address: (!kept.is_empty()).then(|| address.clone()),
            kept,
            _runtime: PhantomData,
        }
    }

    fn deliver(&mut self, callback: &mut Option<StderrCallback>, data: &[u8], address: &Arc<str>) {
        deliver_stderr(&mut self.kept, callback, data);
        if !self.kept.is_empty() && self.address.is_none() {
            self.address = Some(address.clone());
        }
    }

    fn take(mut self) -> Vec<u8> {
        std::mem::take(&mut self.kept)
    }
}

impl<R: Runtime> Drop for UnreadStderr<R> {
    fn drop(&mut self) {
        if let (false, Some(address)) = (self.kept.is_empty(), &self.address) {
            R::unread_stderr(address, &self.kept);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a plain Vec of connections, still valid.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn deliver_stderr(kept: &mut Vec<u8>, callback: &mut Option<StderrCallback>, data: &[u8]) {
    match callback {
        Some(f) => f(data),
        None => kept.extend_from_slice(data),
    }
}

/// Reads until the response head. `Ok(Err(..))` is a request that ended without a
/// usable head (refused, or a malformed head) on a connection still in step.
async fn read_head(
    exchange: &mut impl EventSource,
    stderr: &mut Vec<u8>,
    on_stderr: &mut Option<StderrCallback>,
) -> Result<Result<ResponseHead, Error>, Error> {
    let mut wait = AwaitHead::new();
    loop {
        let event = poll_fn(|cx| exchange.poll_event(cx)).await?;
        match wait.on_event(event, exchange.address()) {
            HeadStep::Head(head) => return Ok(Ok(head)),
            HeadStep::Stderr(data) => deliver_stderr(stderr, on_stderr, &data),
            HeadStep::Failed(error) => return Ok(Err(error)),
            _ => {}
        }
    }
}

#[doc = crate::shared_docs!(response_stream)]
///
/// `AsyncRead` is tokio's with feature `tokio`, futures-io's with feature `futures-io`.
pub struct ResponseStream<R: Runtime> {
    address: Arc<str>,
    source: Source<R>,
    client: Client<R>,
    head: ResponseHead,
    end: Option<End>,
    stderr: Vec<u8>,
    stderr_taken: bool,
    on_stderr: Option<StderrCallback>,
    pending: Bytes,
}

impl<R: Runtime> fmt::Debug for ResponseStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream")
            .field("address", &self.address)
            .field("head", &self.head)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Where the rest of a response comes from.
// Boxing the large variant would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Source<R: Runtime> {
    /// A connection of its own, with its slot in the pool.
    Plain {
        exchange: Exchange<R>,
        slot: PlainSlot<R>,
    },
    /// A request on a multiplexed connection.
    Mux(MuxRequest<R>),
    /// The body has ended or failed.
    Done,
}

impl<R: Runtime> ResponseStream<R> {
    fn new(
        client: &Client<R>,
        address: Arc<str>,
        source: Source<R>,
        head: ResponseHead,
        stderr: Vec<u8>,
        on_stderr: Option<StderrCallback>,
    ) -> Self {
        Self {
            address,
            source,
            client: client.clone(),
            head,
            end: None,
            stderr,
            stderr_taken: false,
            on_stderr,
            pending: Bytes::new(),
        }
    }

    /// The response head.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    /// The server's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How the request ended, once the body is read to its end.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// `STDERR` received so far (empty with an `on_stderr` callback).
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// Takes the `STDERR` received so far. Stderr never taken is logged through
    /// `tracing` (level warn; the target is the adapter's crate, see
    /// [`Runtime::unread_stderr`]) when the stream is dropped.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        self.stderr_taken = true;
        std::mem::take(&mut self.stderr)
    }

    /// Reads the rest of the body into memory (bounded by [`Options::max_body_bytes`]):
    /// the whole response.
    async fn read_whole(mut self) -> Result<Response, Error> {
        let mut collected = Collected::new(self.client.inner.options.max_body_bytes);
        while let Some(chunk) = self.chunk().await? {
            collected.push(chunk, &self.address)?;
        }
        let end = self.end.expect("chunk() answered None: the request ended");
        Ok(Response {
            status: self.head.status(),
            // Moved out, not cloned: the stream is done with it.
            head: std::mem::take(&mut self.head),
            body: collected.finish(),
            stderr: self.take_stderr(),
            end,
        })
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Polls for the next piece of the body.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.pending))));
        }
        loop {
            let polled = match &mut self.source {
                Source::Mux(request) => request.poll_event(cx),
                Source::Plain { exchange, .. } => match exchange.queued_event() {
                    Some(event) => Poll::Ready(Ok(event)),
                    None => exchange.poll_event(cx),
                },
                Source::Done => return Poll::Ready(Ok(None)),
            };
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.source = Source::Done;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(Event::Body { data, .. })) => return Poll::Ready(Ok(Some(data))),
                Poll::Ready(Ok(Event::Stderr { data, .. })) => {
                    deliver_stderr(&mut self.stderr, &mut self.on_stderr, &data)
                }
                Poll::Ready(Ok(Event::End { end, .. })) => {
                    self.end = Some(end);
                    // The connection goes back before its pool slot.
                    if let Source::Plain { exchange, slot } =
                        std::mem::replace(&mut self.source, Source::Done)
                    {
                        self.client.check_in(exchange.conn, slot);
                    }
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

impl<R: Runtime> Stream for ResponseStream<R> {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx).map(Result::transpose)
    }
}

impl<R: Runtime> ResponseStream<R> {
    /// Polls for at most `max` more bytes of the body, for `AsyncRead`: an
    /// empty piece is the end of the body (or `max` is 0 and nothing was pending). The
    /// piece shares the received buffer (no copy); what is left of a chunk is kept for
    /// the next call. An error is an [`io::Error`] of kind
    /// [`TimedOut`](io::ErrorKind::TimedOut) for a timeout, else
    /// [`Other`](io::ErrorKind::Other), wrapping the [`Error`].
    pub fn poll_read_bytes(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        if self.pending.is_empty() {
            match self.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(chunk))) => self.pending = chunk,
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(Bytes::new())),
                Poll::Ready(Err(e)) => {
                    let kind = if e.is_timeout() {
                        io::ErrorKind::TimedOut
                    } else {
                        io::ErrorKind::Other
                    };
                    return Poll::Ready(Err(io::Error::new(kind, e)));
                }
            }
        }
        let n = max.min(self.pending.len());
        Poll::Ready(Ok(self.pending.split_to(n)))
    }
}

/// The body through tokio's `AsyncRead` (feature `tokio`, as in `fcgi-tokio`).
#[cfg(feature = "tokio")]
impl<R: Runtime> tokio::io::AsyncRead for ResponseStream<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let piece = std::task::ready!(self.get_mut().poll_read_bytes(cx, buf.remaining()))?;
        buf.put_slice(&piece);
        Poll::Ready(Ok(()))
    }
}

/// The body through futures-io's `AsyncRead` (feature `futures-io`, as in
/// `fcgi-async-std`).
#[cfg(feature = "futures-io")]
impl<R: Runtime> futures_io::AsyncRead for ResponseStream<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let piece = std::task::ready!(self.get_mut().poll_read_bytes(cx, buf.len()))?;
        buf[..piece.len()].copy_from_slice(&piece);
        Poll::Ready(Ok(piece.len()))
    }
}

impl<R: Runtime> Drop for ResponseStream<R> {
    fn drop(&mut self) {
        if !self.stderr_taken && !self.stderr.is_empty() {
            R::unread_stderr(&self.address, &self.stderr);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::task::{Wake, Waker};

    use super::*;
    use crate::fake_runtime::Fake;
    use crate::runtime::NeutralSemaphore;

    /// Remembers that it was woken.
    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_freed_one_request_slot_wakes_a_request_waiting_for_a_multiplexed_one() {
        // One slot, held by a connection that carries one request at a time (opened
        // before the upstream said it multiplexes). A request waits for room on the
        // multiplexed connections; the fake clock never moves, so only a wake-up, no
        // periodic look, can let it go on.
        let pool = MuxPool::default();
        let permits = NeutralSemaphore::new(1);
        let slot = PlainSlot::<Fake> {
            permit: Some(permits.try_acquire().expect("a free slot")),
            freed: Some(pool.waiters()),
        };
        let settings = mux::Settings {
            address: Address::Unix("/nowhere.sock".into()),
            text: "unix:/nowhere.sock".into(),
            config: Config::default(),
            per_connection: 10,
            max_connections: 1,
            connect_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            max_requests_per_connection: None,
            opened: Arc::default(),
            open: Arc::default(),
        };
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut reserve = pin!(pool.reserve::<Fake>(&permits, &settings, None));
        assert!(reserve.as_mut().poll(&mut cx).is_pending());
        assert!(!flag.0.load(Ordering::SeqCst));
        drop(slot);
        assert!(
            flag.0.load(Ordering::SeqCst),
            "the waiting request was not woken"
        );
        match reserve.as_mut().poll(&mut cx) {
            Poll::Ready(Ok((_, reused))) => assert!(!reused, "a new connection"),
            other => panic!("{:?}", other.map(|r| r.map(|_| ()))),
        }
    }
}
