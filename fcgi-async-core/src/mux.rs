//! Multiplexed connections: a driver task owns each connection (its socket and its
//! protocol core) and carries many requests at once; requests talk to it through a
//! command channel and each has a queue of its own for what comes back.
//!
//! ```text
//!  request task                         driver task (one per connection)
//!  ------------                         --------------------------------
//!  reserve a slot (pool) ---------\
//!  Command::Start{params, body} ---+--> core.start_request; polls the body into the core
//!                                       writes core output to the socket
//!  Queue <- Sent / Event / Failed <---- reads the socket into the core, routes events by id
//!  drop before the end: Cancel ------>  core.abort(id): ABORT_REQUEST, later records dropped
//!                                       END_REQUEST frees the slot (pool notified)
//! ```
//!
//! Every protocol decision (ids, records, aborts, limits) is the core's; the driver moves
//! bytes and routes events.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use event_listener::Event as Notify;
use futures_core::Stream;

use fcgi_proto::{
    Address, ClientError as Error, Config, Connection, Event, Params, Phase, ProtocolError,
    RequestId,
};

use crate::body::Body;
use crate::exchange::{Conn, OpenGuard};
use crate::runtime::{Runtime, Semaphore, SemaphorePermit, Socket};
use crate::time::{Clock, Deadline, Idle};

/// Output queued beyond this waits before more of any request body is taken.
const MAX_QUEUED_OUTPUT: usize = 256 * 1024;

/// Received bytes held for one request that its reader has not taken yet. Past this, the
/// driver stops reading the socket until the reader catches up: FastCGI has no flow
/// control per request, so a stream nobody reads holds back its whole connection
/// instead of growing without bound.
pub(crate) const MAX_BUFFERED_PER_REQUEST: usize = 512 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every state behind these locks stays consistent between statements.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ----- the per-request queue ------------------------------------------------------------

/// What the driver hands a request.
pub(crate) enum Delivery {
    /// Everything of the request (params and body) has been written to the socket.
    Sent,
    /// An event of the request.
    Event(Event),
    /// The request failed; nothing more comes.
    Failed {
        error: Error,
        /// The connection broke (not something about this request alone).
        connection: bool,
    },
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Delivery>,
    /// Body and stderr bytes in `items`.
    bytes: usize,
    /// The driver started the request on its connection.
    started: bool,
    /// The driver's end is gone: nothing more comes.
    closed: bool,
    /// The request's end is gone: deliver nothing more.
    cancelled: bool,
    /// The body of a request that was never started, handed back for another attempt.
    returned_body: Option<Body>,
    consumer: Option<Waker>,
    driver: Option<Waker>,
}

/// One request's queue: the driver pushes, the request pops.
#[derive(Default)]
pub(crate) struct Queue(Mutex<QueueState>);

impl Queue {
    /// Adds a delivery; answers whether the queue is now over its byte bound.
    fn push(&self, delivery: Delivery) -> bool {
        let mut state = lock(&self.0);
        if state.cancelled {
            return false;
        }
        if let Delivery::Event(Event::Body { data, .. } | Event::Stderr { data, .. }) = &delivery {
            state.bytes += data.len();
        }
        state.items.push_back(delivery);
        let over = state.bytes >= MAX_BUFFERED_PER_REQUEST;
        let waker = state.consumer.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        over
    }

    /// Whether the reader still lags; if so, wakes `waker` once it has caught up.
    fn still_full(&self, waker: &Waker) -> bool {
        let mut state = lock(&self.0);
        if state.cancelled || state.bytes < MAX_BUFFERED_PER_REQUEST {
            return false;
        }
        state.driver = Some(waker.clone());
        true
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut state = lock(&self.0);
        if let Some(item) = state.items.pop_front() {
            if let Delivery::Event(Event::Body { data, .. } | Event::Stderr { data, .. }) = &item {
                state.bytes -= data.len();
            }
            let waker = if state.bytes < MAX_BUFFERED_PER_REQUEST / 2 {
                state.driver.take()
            } else {
                None
            };
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Some(item));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.consumer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn set_started(&self) {
        lock(&self.0).started = true;
    }

    fn started(&self) -> bool {
        lock(&self.0).started
    }

    /// The request side is gone: drop what is queued, take nothing more.
    fn cancel(&self) {
        let mut state = lock(&self.0);
        state.cancelled = true;
        state.items.clear();
        state.bytes = 0;
        let waker = state.driver.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn take_returned_body(&self) -> Option<Body> {
        lock(&self.0).returned_body.take()
    }
}

/// The driver's end of a queue: dropping it tells the request that nothing more comes.
pub(crate) struct Producer(Arc<Queue>);

impl Producer {
    fn push(&self, delivery: Delivery) -> bool {
        self.0.push(delivery)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let mut state = lock(&self.0 .0);
        state.closed = true;
        let waker = state.consumer.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

// ----- commands ---------------------------------------------------------------------

/// A request for the driver to start. Dropped without being started (the connection
/// closed first), it hands its body back to the request for another attempt.
pub(crate) struct Start {
    key: u64,
    params: Params,
    body: Option<Body>,
    producer: Option<Producer>,
}

impl Drop for Start {
    fn drop(&mut self) {
        if let (Some(body), Some(producer)) = (self.body.take(), &self.producer) {
            lock(&producer.0 .0).returned_body = Some(body);
        }
        // `producer` drops next: the request sees its queue closed, never started.
    }
}

pub(crate) enum Command {
    Start(Start),
    /// The request with this key was dropped before its end.
    Cancel(u64),
}

// ----- what the pool and the driver share ---------------------------------------------

#[derive(Debug)]
struct Slots {
    /// Requests reserved or in flight (aborted ones too, until their END_REQUEST).
    reserved: usize,
    /// Requests this connection may carry at once.
    limit: usize,
    /// Requests it has taken over its life.
    total: u64,
    /// Most requests over its life.
    max_total: Option<u64>,
    /// The socket is connected.
    connected: bool,
    /// It takes no new request.
    closed: bool,
    /// Why it could not connect, for requests that arrive after the driver ended.
    connect_error: Option<ConnectError>,
}

/// A failed connect, kept to fail every request that was meant for the connection.
#[derive(Debug, Clone)]
struct ConnectError {
    kind: std::io::ErrorKind,
    message: String,
    /// The connect timeout.
    bound: Duration,
}

impl ConnectError {
    fn to_error(&self, address: &str) -> Error {
        let source = std::io::Error::new(self.kind, self.message.clone());
        Error::connect_failed(address, source, self.bound)
    }
}

/// The state of one multiplexed connection that its pool and its driver share.
#[derive(Debug)]
pub(crate) struct MuxShared {
    slots: Mutex<Slots>,
    notify: Arc<Notify>,
    next_key: AtomicU64,
}

impl MuxShared {
    /// Takes a slot for one request; `Some(reused)` on success, where `reused` says the
    /// connection was already connected.
    fn try_reserve(&self) -> Option<bool> {
        let mut s = lock(&self.slots);
        let worn_out = s.max_total.is_some_and(|max| s.total >= max);
        if s.closed || worn_out || s.reserved >= s.limit {
            return None;
        }
        s.reserved += 1;
        s.total += 1;
        Some(s.connected)
    }

    fn release(&self) {
        {
            let mut s = lock(&self.slots);
            s.reserved = s.reserved.saturating_sub(1);
        }
        self.notify.notify(usize::MAX);
    }

    fn set_limit(&self, limit: usize) {
        lock(&self.slots).limit = limit.max(1);
    }

    fn set_connected(&self) {
        lock(&self.slots).connected = true;
    }

    fn close(&self) {
        lock(&self.slots).closed = true;
        self.notify.notify(usize::MAX);
    }

    fn is_closed(&self) -> bool {
        lock(&self.slots).closed
    }

    /// Slots taken: requests in flight, aborted ones awaiting their end, and requests
    /// on their way to the driver.
    fn reserved(&self) -> usize {
        lock(&self.slots).reserved
    }

    /// Whether it has taken all the requests it may ever take.
    fn worn_out(&self) -> bool {
        let s = lock(&self.slots);
        s.max_total.is_some_and(|max| s.total >= max)
    }
}

/// A handle on one multiplexed connection, kept by its pool.
#[derive(Clone)]
pub(crate) struct MuxConn {
    tx: Sender<Command>,
    shared: Arc<MuxShared>,
    address: Arc<str>,
}

/// What a pool needs to open a connection.
pub(crate) struct Settings {
    pub(crate) address: Address,
    pub(crate) text: Arc<str>,
    pub(crate) config: Config,
    /// Requests per connection (from the server's `GET_VALUES` answer).
    pub(crate) per_connection: u16,
    /// Most connections of this pool.
    pub(crate) max_connections: usize,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_requests_per_connection: Option<u64>,
    pub(crate) opened: Arc<AtomicU64>,
    pub(crate) open: Arc<AtomicUsize>,
}

/// The multiplexed connections to one upstream.
#[derive(Default)]
pub(crate) struct MuxPool {
    conns: Mutex<Vec<MuxConn>>,
    notify: Arc<Notify>,
}

impl MuxPool {
    /// A slot for one request: on the first connection with room, else on a new
    /// connection (within `max_connections` and the pool's semaphore), else waits for
    /// room at most `bound`. Answers the connection and whether it was already connected.
    pub(crate) async fn reserve<R: Runtime>(
        &self,
        permits: &R::Semaphore,
        settings: &Settings,
        bound: Option<Duration>,
    ) -> Result<(MuxConn, bool), Error> {
        let deadline = bound.map(|b| R::now() + b);
        loop {
            // Listening before looking: a slot freed after the look wakes this wait.
            let notified = self.notify.listen();
            {
                let mut conns = lock(&self.conns);
                // A driver can also vanish without closing (its runtime shut down).
                conns.retain(|c| !c.shared.is_closed() && !c.tx.is_closed());
                for conn in conns.iter() {
                    if let Some(reused) = conn.shared.try_reserve() {
                        return Ok((conn.clone(), reused));
                    }
                }
                if conns.len() < settings.max_connections.max(1) {
                    if let Some(permit) = permits.try_acquire() {
                        // Spawned with this request's slot taken.
                        let conn = spawn_driver::<R>(settings, permit, self.notify.clone(), None);
                        conns.push(conn.clone());
                        return Ok((conn, false));
                    }
                }
            }
            // Woken by a slot freed on a multiplexed connection, a connection that
            // closed, or a one-request connection's pool slot freed (see `waiters`).
            match deadline {
                Some(at) => {
                    let left = at.saturating_duration_since(R::now());
                    if left.is_zero() {
                        return Err(Error::Timeout {
                            address: settings.text.to_string(),
                            phase: Phase::PoolSlot,
                            after: bound.unwrap_or_default(),
                        });
                    }
                    let _ = R::timeout(left, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// What wakes the requests waiting in [`reserve`](Self::reserve): whoever frees a
    /// slot of the pool's semaphore notifies it.
    pub(crate) fn waiters(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Carries on a connection that served one request at a time (it was opened while
    /// the upstream's `GET_VALUES` probe ran) as a multiplexed one, with its pool slot.
    pub(crate) fn adopt<R: Runtime>(
        &self,
        settings: &Settings,
        conn: Conn<R>,
        permit: SemaphorePermit<R>,
    ) {
        let Conn {
            io,
            mut proto,
            requests,
            _open,
            ..
        } = conn;
        proto.set_max_concurrent_requests(settings.per_connection.max(1));
        let connected = Connected { io, proto, _open };
        let conn = spawn_driver::<R>(
            settings,
            permit,
            self.notify.clone(),
            Some((connected, requests)),
        );
        lock(&self.conns).push(conn);
        self.notify.notify(usize::MAX);
    }
}

/// A connection already open, handed to a driver.
struct Connected<R: Runtime> {
    io: R::Socket,
    proto: Connection,
    _open: OpenGuard,
}

impl MuxConn {
    /// Sends a request (whose slot was reserved) to the driver.
    pub(crate) fn start<R: Runtime>(
        &self,
        params: Params,
        body: Body,
        read_timeout: Option<Duration>,
        deadline: Option<(Instant, Duration)>,
    ) -> MuxRequest<R> {
        let queue = Arc::new(Queue::default());
        let key = self.shared.next_key.fetch_add(1, Ordering::Relaxed);
        let start = Start {
            key,
            params,
            body: Some(body),
            producer: Some(Producer(queue.clone())),
        };
        if let Err(TrySendError::Closed(command) | TrySendError::Full(command)) =
            self.tx.try_send(Command::Start(start))
        {
            // The driver is gone: it could not connect (the request fails as the others
            // meant for it did), or the connection just closed (the command drops here,
            // which closes the queue and hands the body back: another attempt).
            let connect_error = lock(&self.shared.slots).connect_error.clone();
            if let (Command::Start(mut start), Some(e)) = (command, connect_error) {
                fail_unconnected(&mut start, e.to_error(&self.address));
            }
            self.shared.close();
            self.shared.release();
        }
        MuxRequest {
            queue,
            tx: self.tx.clone(),
            key,
            finished: false,
            address: self.address.clone(),
            sent: false,
            started: false,
            read_idle: read_timeout.map(Idle::new),
            deadline: deadline.map(|(at, total)| (Deadline::at(at), total)),
            received: false,
            outcome: Outcome::Running,
        }
    }
}

// ----- the request's end ---------------------------------------------------------------

/// How a request that failed ended, for the retry decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Running,
    /// The connection closed before the driver started the request: nothing was sent.
    NotStarted,
    /// The connection broke while the request was in flight.
    ConnectionFailed,
    /// Anything else: the request's own error or its normal end.
    Other,
}

/// One request on a multiplexed connection, as its caller sees it. Dropping it before
/// the request's end aborts the request on the server.
pub(crate) struct MuxRequest<R: Runtime> {
    queue: Arc<Queue>,
    tx: Sender<Command>,
    key: u64,
    finished: bool,
    pub(crate) address: Arc<str>,
    sent: bool,
    started: bool,
    read_idle: Option<Idle<R>>,
    deadline: Option<(Deadline<R>, Duration)>,
    /// Some event of the request arrived.
    pub(crate) received: bool,
    pub(crate) outcome: Outcome,
}

impl<R: Runtime> MuxRequest<R> {
    fn timeout(&self, phase: Phase, after: Duration) -> Error {
        Error::Timeout {
            address: self.address.to_string(),
            phase,
            after,
        }
    }

    /// The body, when the request was never started and its body came back.
    pub(crate) fn take_returned_body(&self) -> Option<Body> {
        self.queue.take_returned_body()
    }

    /// The next event of the request.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        loop {
            match self.queue.poll_pop(cx) {
                Poll::Ready(Some(Delivery::Sent)) => {
                    self.sent = true;
                    if let Some(idle) = &mut self.read_idle {
                        idle.progress_now();
                    }
                }
                Poll::Ready(Some(Delivery::Event(event))) => {
                    self.received = true;
                    if let Some(idle) = &mut self.read_idle {
                        idle.progress_now();
                    }
                    if matches!(event, Event::End { .. }) {
                        self.finished = true;
                        self.outcome = Outcome::Other;
                    }
                    return Poll::Ready(Ok(event));
                }
                Poll::Ready(Some(Delivery::Failed { error, connection })) => {
                    self.finished = true;
                    self.outcome = if connection {
                        Outcome::ConnectionFailed
                    } else {
                        Outcome::Other
                    };
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    let started = self.queue.started();
                    self.outcome = if started {
                        Outcome::ConnectionFailed
                    } else {
                        Outcome::NotStarted
                    };
                    let what = if started {
                        "the connection closed during the request"
                    } else {
                        "the connection closed before the request was sent"
                    };
                    return Poll::Ready(Err(Error::Io {
                        address: self.address.to_string(),
                        source: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, what),
                    }));
                }
                Poll::Pending => break,
            }
        }
        if !self.started {
            self.started = self.queue.started();
        }
        let clock = Clock::<R>::new();
        if let Some((timer, total)) = &mut self.deadline {
            if timer.poll_expired(cx, &clock).is_ready() {
                let phase = if !self.started {
                    Phase::Connect
                } else if self.sent {
                    Phase::Read
                } else {
                    Phase::Write
                };
                let total = *total;
                return Poll::Ready(Err(self.timeout(phase, total)));
            }
        }
        if self.sent {
            if let Some(idle) = &mut self.read_idle {
                if idle.poll_expired(cx, &clock).is_ready() {
                    let limit = idle.limit;
                    return Poll::Ready(Err(self.timeout(Phase::Read, limit)));
                }
            }
        }
        Poll::Pending
    }
}

impl<R: Runtime> Drop for MuxRequest<R> {
    fn drop(&mut self) {
        if !self.finished {
            self.queue.cancel();
            // Fails only when the driver is gone, and with it the request.
            let _ = self.tx.try_send(Command::Cancel(self.key));
        }
    }
}

// ----- the driver -------------------------------------------------------------------

/// Spawns the driver of a new connection, whose first request has reserved its slot,
/// or (`adopted`) of a connection already open, with the requests it has carried.
fn spawn_driver<R: Runtime>(
    settings: &Settings,
    permit: SemaphorePermit<R>,
    notify: Arc<Notify>,
    adopted: Option<(Connected<R>, u64)>,
) -> MuxConn {
    let (tx, rx) = async_channel::unbounded();
    let (reserved, total) = match &adopted {
        Some((_, carried)) => (0, *carried),
        // The slot of the request that opens the connection.
        None => (1, 1),
    };
    let shared = Arc::new(MuxShared {
        slots: Mutex::new(Slots {
            reserved,
            limit: usize::from(settings.per_connection.max(1)),
            total,
            max_total: settings.max_requests_per_connection,
            connected: adopted.is_some(),
            closed: false,
            connect_error: None,
        }),
        notify,
        next_key: AtomicU64::new(0),
    });
    let mut config = settings.config.clone();
    config.max_concurrent_requests = settings.per_connection.max(1);
    config.keep_conn = true;
    let setup = Setup {
        address: settings.address.clone(),
        text: settings.text.clone(),
        config,
        connect_timeout: settings.connect_timeout,
        write_timeout: settings.write_timeout,
        idle_timeout: settings.idle_timeout,
        opened: settings.opened.clone(),
        open: settings.open.clone(),
        shared: shared.clone(),
        rx,
        permit,
        connected: adopted.map(|(connected, _)| connected),
    };
    R::spawn(run::<R>(setup));
    MuxConn {
        tx,
        shared,
        address: settings.text.clone(),
    }
}

struct Setup<R: Runtime> {
    address: Address,
    text: Arc<str>,
    config: Config,
    connect_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    opened: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    shared: Arc<MuxShared>,
    rx: Receiver<Command>,
    permit: SemaphorePermit<R>,
    /// A connection already open (adopted), else the driver connects.
    connected: Option<Connected<R>>,
}

/// The driver task: connects, then runs the connection until it closes.
async fn run<R: Runtime>(setup: Setup<R>) {
    let Setup {
        address,
        text,
        config,
        connect_timeout,
        write_timeout,
        idle_timeout,
        opened,
        open,
        shared,
        rx,
        permit,
        connected,
    } = setup;
    let connected = match connected {
        Some(connected) => Ok(connected),
        None => R::connect(&address, connect_timeout).await.map(|io| {
            opened.fetch_add(1, Ordering::Relaxed);
            Connected {
                io,
                proto: Connection::new(config),
                _open: OpenGuard::new(&open),
            }
        }),
    };
    let Connected { io, proto, _open } = match connected {
        Ok(connected) => connected,
        Err(source) => {
            tracing::debug!(address = %text, error = %source, "FastCGI connect failed");
            let failure = ConnectError {
                kind: source.kind(),
                message: source.to_string(),
                bound: connect_timeout.unwrap_or_default(),
            };
            // Recorded before the channel closes: a request sent after that finds it.
            lock(&shared.slots).connect_error = Some(failure.clone());
            shared.close();
            rx.close();
            while let Ok(command) = rx.try_recv() {
                if let Command::Start(mut start) = command {
                    fail_unconnected(&mut start, failure.to_error(&text));
                    shared.release();
                }
            }
            drop(permit);
            shared.notify.notify(usize::MAX);
            return;
        }
    };
    shared.set_connected();
    let mut driver = Driver::<R> {
        io,
        proto,
        rx: Box::pin(rx),
        rx_closed: false,
        shared: shared.clone(),
        address: text,
        slots: HashMap::new(),
        keys: HashMap::new(),
        bodies: VecDeque::new(),
        unsent: VecDeque::new(),
        full: Vec::new(),
        written: 0,
        output_empty: true,
        write_limit: write_timeout,
        write_idle: write_timeout.map(Idle::new),
        idle_timeout,
        idle_timer: None,
        draining: false,
        live: 0,
    };
    let result = poll_fn(|cx| driver.poll(cx)).await;
    driver.shut(result.err());
    drop(driver);
    drop(permit);
    shared.notify.notify(usize::MAX);
}

/// Fails a request whose connection could not be opened; its body goes back to it (it
/// may try another upstream).
fn fail_unconnected(start: &mut Start, error: Error) {
    if let (Some(body), Some(producer)) = (start.body.take(), &start.producer) {
        lock(&producer.0 .0).returned_body = Some(body);
    }
    if let Some(producer) = start.producer.take() {
        producer.push(Delivery::Failed {
            error,
            connection: false,
        });
    }
}

/// An `io::Error` with the same kind and message (`io::Error` is not `Clone`).
fn copy_io_error(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

/// Why a connection broke.
enum Broken {
    Io(std::io::Error),
    Protocol(ProtocolError),
    /// The core refused the server's input for another reason than a protocol
    /// violation: a limit of its `Config` (the input it buffers), say.
    Connection(fcgi_proto::Error),
}

struct Slot {
    key: u64,
    /// `None` once the request side is gone (aborted): its records are discarded.
    producer: Option<Producer>,
    /// The body, while more of it is to be taken.
    body: Option<Body>,
    /// The body is finished and everything of the request is written.
    sent: bool,
}

struct Driver<R: Runtime> {
    io: R::Socket,
    proto: Connection,
    /// Boxed: the channel's receiver is not `Unpin`.
    rx: Pin<Box<Receiver<Command>>>,
    rx_closed: bool,
    shared: Arc<MuxShared>,
    address: Arc<str>,
    slots: HashMap<RequestId, Slot>,
    keys: HashMap<u64, RequestId>,
    /// Requests whose body is still being taken, in turn.
    bodies: VecDeque<RequestId>,
    /// Requests (id and key: ids are reused) whose body is finished, with the output
    /// position that completes them.
    unsent: VecDeque<(RequestId, u64, u64)>,
    /// Requests whose reader lags (see [`MAX_BUFFERED_PER_REQUEST`]).
    full: Vec<RequestId>,
    /// Bytes written over the connection's life.
    written: u64,
    /// Nothing was left to write after the last write.
    output_empty: bool,
    write_limit: Option<Duration>,
    write_idle: Option<Idle<R>>,
    idle_timeout: Option<Duration>,
    idle_timer: Option<Deadline<R>>,
    /// Takes no new request; ends once no live request is left.
    draining: bool,
    /// Slots whose caller still waits (has its producer).
    live: usize,
}

impl<R: Runtime> Driver<R> {
    /// Requests whose caller still waits for them.
    fn live(&self) -> usize {
        self.live
    }

    /// Takes a request's producer (its caller is done with it or about to be).
    fn detach(live: &mut usize, slot: &mut Slot) -> Option<Producer> {
        let producer = slot.producer.take();
        if producer.is_some() {
            *live -= 1;
        }
        producer
    }

    fn proto_error(&self, e: fcgi_proto::Error) -> Error {
        Error::from_connection(&*self.address, e)
    }

    /// Fails one request (for a reason of its own) and aborts it on the server.
    fn fail_request(&mut self, id: RequestId, error: Error) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.body = None;
            if let Some(producer) = Self::detach(&mut self.live, slot) {
                producer.push(Delivery::Failed {
                    error,
                    connection: false,
                });
            }
            self.keys.remove(&slot.key);
            // A broken core fails the whole connection at the next read or write.
            let _ = self.proto.abort(id);
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start(mut start) => {
                if self.draining || !self.proto.can_start_request() {
                    // Not started: the request tries again elsewhere (`Start` hands its
                    // body back as it drops).
                    drop(start);
                    self.shared.release();
                    return;
                }
                let id = match self.proto.start_request(&start.params) {
                    Ok(id) => id,
                    Err(e) => {
                        let error = self.proto_error(e);
                        start.body = None;
                        if let Some(producer) = start.producer.take() {
                            producer.0.set_started();
                            producer.push(Delivery::Failed {
                                error,
                                connection: false,
                            });
                        }
                        self.shared.release();
                        return;
                    }
                };
                let producer = start.producer.take().expect("a command has its producer");
                producer.0.set_started();
                self.slots.insert(
                    id,
                    Slot {
                        key: start.key,
                        producer: Some(producer),
                        body: start.body.take(),
                        sent: false,
                    },
                );
                self.keys.insert(start.key, id);
                self.live += 1;
                self.bodies.push_back(id);
                self.idle_timer = None;
            }
            Command::Cancel(key) => {
                let Some(id) = self.keys.remove(&key) else {
                    return;
                };
                if let Some(slot) = self.slots.get_mut(&id) {
                    drop(Self::detach(&mut self.live, slot));
                    slot.body = None;
                    // Queues ABORT_REQUEST; the core drops the request's later records
                    // and frees its id at its END_REQUEST. A broken core fails the
                    // connection at the next read or write.
                    let _ = self.proto.abort(id);
                }
            }
        }
    }

    /// Takes body chunks into the core, in turn, while little output is queued.
    fn take_bodies(&mut self, cx: &mut Context<'_>) {
        let mut quiet = 0;
        while quiet < self.bodies.len() && self.proto.transmit_len() < MAX_QUEUED_OUTPUT {
            let Some(id) = self.bodies.pop_front() else {
                break;
            };
            let Some(body) = self.slots.get_mut(&id).and_then(|s| s.body.as_mut()) else {
                continue;
            };
            match body.poll_chunk(cx) {
                Poll::Pending => {
                    quiet += 1;
                    self.bodies.push_back(id);
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    quiet = 0;
                    match self.proto.send_stdin(id, chunk) {
                        Ok(()) => self.bodies.push_back(id),
                        Err(e) => {
                            let error = self.proto_error(e);
                            self.fail_request(id, error);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    quiet = 0;
                    self.fail_request(id, Error::Body(e));
                }
                Poll::Ready(None) => {
                    quiet = 0;
                    match self.proto.finish_stdin(id) {
                        Ok(()) => {
                            if let Some(slot) = self.slots.get_mut(&id) {
                                slot.body = None;
                                let end = self.written + self.proto.transmit_len() as u64;
                                self.unsent.push_back((id, slot.key, end));
                            }
                        }
                        Err(e) => {
                            let error = self.proto_error(e);
                            self.fail_request(id, error);
                        }
                    }
                }
            }
        }
    }

    /// Writes queued output; `Ok(true)` when something was written.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, Broken> {
        let mut wrote = false;
        if self.output_empty && self.proto.transmit_len() > 0 {
            // New output after none: the write timeout counts from now.
            if let Some(idle) = &mut self.write_idle {
                idle.progress_now();
            }
        }
        while self.proto.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = self.proto.transmit(&mut slices);
            match self.io.poll_write_vectored(cx, &slices[..n]) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    return Err(Broken::Io(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.proto.consume_transmit(n);
                    self.written += n as u64;
                    wrote = true;
                    if let Some(idle) = &mut self.write_idle {
                        idle.progress_now();
                    }
                }
                Poll::Ready(Err(e)) => return Err(Broken::Io(e)),
            }
        }
        self.output_empty = self.proto.transmit_len() == 0;
        // Requests whose last byte is out.
        while let Some(&(id, key, end)) = self.unsent.front() {
            if self.written < end {
                break;
            }
            self.unsent.pop_front();
            if let Some(slot) = self.slots.get_mut(&id).filter(|s| s.key == key) {
                slot.sent = true;
                if let Some(producer) = &slot.producer {
                    producer.push(Delivery::Sent);
                }
            }
        }
        Ok(wrote)
    }

    /// Hands every event of the core to its request.
    fn route(&mut self) {
        while let Some(event) = self.proto.poll_event() {
            let id = match &event {
                Event::Head { id, .. }
                | Event::Body { id, .. }
                | Event::Stderr { id, .. }
                | Event::HeadError { id, .. }
                | Event::End { id, .. } => *id,
                // No management records are asked on these connections.
                _ => continue,
            };
            if matches!(event, Event::End { .. }) {
                let Some(mut slot) = self.slots.remove(&id) else {
                    continue;
                };
                self.keys.remove(&slot.key);
                // The slot is free before its request learns that it ended: a request
                // its caller sends next finds the room.
                self.shared
                    .set_limit(usize::from(self.proto.max_concurrent_requests()));
                self.shared.release();
                if let Some(producer) = Self::detach(&mut self.live, &mut slot) {
                    producer.push(Delivery::Event(event));
                }
                continue;
            }
            let Some(producer) = self.slots.get(&id).and_then(|s| s.producer.as_ref()) else {
                continue;
            };
            if producer.push(Delivery::Event(event)) && !self.full.contains(&id) {
                self.full.push(id);
            }
        }
    }

    /// Whether some reader lags so far behind that reading must wait for it.
    fn paused(&mut self, cx: &mut Context<'_>) -> bool {
        let slots = &self.slots;
        self.full.retain(|id| {
            slots
                .get(id)
                .and_then(|s| s.producer.as_ref())
                .is_some_and(|p| p.0.still_full(cx.waker()))
        });
        !self.full.is_empty()
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Broken>> {
        loop {
            // 1. Commands.
            while !self.rx_closed {
                match self.rx.as_mut().poll_next(cx) {
                    Poll::Ready(Some(command)) => self.command(command),
                    Poll::Ready(None) => self.rx_closed = true,
                    Poll::Pending => break,
                }
            }
            if self.live == 0 {
                // Nobody can send another request (the client is gone), or this
                // connection takes no more and no request is on its way to it.
                let on_the_way = self.shared.reserved() > self.slots.len();
                if self.rx_closed || ((self.draining || self.shared.worn_out()) && !on_the_way) {
                    return Poll::Ready(Ok(()));
                }
            }

            // 2. Bodies, then 3. output.
            self.take_bodies(cx);
            let wrote = self.write(cx)?;
            if wrote
                && self.proto.transmit_len() < MAX_QUEUED_OUTPUT
                && self.bodies.iter().any(|id| {
                    self.slots
                        .get(id)
                        .is_some_and(|s| s.body.is_some() && !s.sent)
                })
            {
                continue;
            }

            // 4. Events.
            self.route();

            // 5. Input, unless a lagging reader holds it back.
            if !self.paused(cx) {
                match self.io.poll_read_input(cx, &mut self.proto) {
                    Poll::Ready(Ok(0)) => {
                        let fed = self.proto.receive_eof();
                        self.route();
                        match fed {
                            // The server closed an idle connection.
                            Ok(()) => return Poll::Ready(Ok(())),
                            Err(fcgi_proto::Error::Protocol(e)) => {
                                return Poll::Ready(Err(Broken::Protocol(e)))
                            }
                            Err(e) => return Poll::Ready(Err(Broken::Connection(e))),
                        }
                    }
                    Poll::Ready(Ok(n)) => {
                        let fed = self.proto.input_written(n);
                        self.route();
                        match fed {
                            Ok(()) => {}
                            Err(fcgi_proto::Error::Protocol(e)) => {
                                return Poll::Ready(Err(Broken::Protocol(e)))
                            }
                            Err(e) => return Poll::Ready(Err(Broken::Connection(e))),
                        }
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Broken::Io(e))),
                    Poll::Pending => {}
                }
            }

            // 6. Clocks.
            let clock = Clock::<R>::new();
            if self.proto.transmit_len() > 0 {
                if let Some(idle) = &mut self.write_idle {
                    if idle.poll_expired(cx, &clock).is_ready() {
                        self.write_stalled();
                        continue;
                    }
                }
            }
            if self.live() == 0 {
                if let Some(limit) = self.idle_timeout {
                    let timer = self
                        .idle_timer
                        .get_or_insert_with(|| Deadline::after(limit));
                    if timer.poll_expired(cx, &clock).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                }
            } else {
                self.idle_timer = None;
            }
            return Poll::Pending;
        }
    }

    /// The server took no output for the write timeout: every request not yet sent
    /// fails with a write timeout; the connection takes no new request and closes once
    /// the requests already sent have ended.
    fn write_stalled(&mut self) {
        let after = self.write_limit.unwrap_or_default();
        self.write_idle = None;
        self.draining = true;
        self.shared.close();
        let address = self.address.to_string();
        for slot in self.slots.values_mut() {
            if slot.sent {
                continue;
            }
            slot.body = None;
            if let Some(producer) = Self::detach(&mut self.live, slot) {
                producer.push(Delivery::Failed {
                    error: Error::Timeout {
                        address: address.clone(),
                        phase: Phase::Write,
                        after,
                    },
                    connection: false,
                });
            }
        }
    }

    /// Closes the connection: every request still in flight fails with `broken` (or,
    /// when the connection simply ended, sees its queue close), and requests sent to
    /// the driver but not started go back to their callers.
    fn shut(&mut self, broken: Option<Broken>) {
        self.shared.close();
        self.rx.close();
        while let Ok(command) = self.rx.try_recv() {
            if let Command::Start(start) = command {
                drop(start);
                self.shared.release();
            }
        }
        if let Some(broken) = &broken {
            match broken {
                // Requests that ended before the violation have their responses.
                Broken::Protocol(error) => tracing::warn!(
                    address = %self.address,
                    in_flight = self.live(),
                    %error,
                    "FastCGI server broke the protocol; multiplexed connection closed"
                ),
                Broken::Io(error) => tracing::debug!(
                    address = %self.address,
                    in_flight = self.live(),
                    %error,
                    "multiplexed FastCGI connection failed"
                ),
                Broken::Connection(error) => tracing::debug!(
                    address = %self.address,
                    in_flight = self.live(),
                    error = error as &(dyn std::error::Error + 'static),
                    "multiplexed FastCGI connection failed"
                ),
            }
            for slot in self.slots.values_mut() {
                if let Some(producer) = Self::detach(&mut self.live, slot) {
                    let error = match broken {
                        Broken::Io(e) => Error::Io {
                            address: self.address.to_string(),
                            source: copy_io_error(e),
                        },
                        Broken::Protocol(e) => Error::Protocol {
                            address: self.address.to_string(),
                            source: e.clone(),
                        },
                        Broken::Connection(e) => Error::from_connection(&*self.address, e.clone()),
                    };
                    producer.push(Delivery::Failed {
                        error,
                        connection: true,
                    });
                }
            }
        }
        // Dropping the slots closes the remaining queues.
        self.slots.clear();
        self.live = 0;
    }
}
