//! One request on one connection, driven by polling: the request body is written while
//! the response is read (full duplex), with a timeout for each phase.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fcgi_proto::{ClientError as Error, Connection, Event, Phase, RequestId};

use crate::body::Body;
use crate::runtime::{Runtime, Socket};
use crate::time::{Clock, Deadline, Idle};

/// Output queued beyond this waits before more of the request body is taken.
const MAX_QUEUED_OUTPUT: usize = 256 * 1024;

/// A connection: its socket and its protocol state.
#[derive(Debug)]
pub(crate) struct Conn<R: Runtime> {
    pub(crate) io: R::Socket,
    pub(crate) proto: Connection,
    pub(crate) address: Arc<str>,
    /// Which upstream of the client it belongs to.
    pub(crate) upstream: usize,
    /// Bytes received over its life.
    pub(crate) received: u64,
    /// Requests it has carried.
    pub(crate) requests: u64,
    /// In the pool: when it went idle there. Checked out: when it was (a clock
    /// reading of the runtime's, which the request's timeouts start from, see
    /// [`Exchange::start`]).
    pub(crate) idle_since: std::time::Instant,
    /// The read and write timeouts of the request it carries. They live with the
    /// connection, not the request, so that their timers are made once and carried from
    /// request to request (see [`Idle`]): no timer is registered per request.
    pub(crate) read_idle: Option<Idle<R>>,
    pub(crate) write_idle: Option<Idle<R>>,
    pub(crate) _open: OpenGuard,
}

/// Counts a connection as open for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<R: Runtime> Conn<R> {
    pub(crate) fn proto_error(&self, e: fcgi_proto::Error) -> Error {
        Error::from_connection(&*self.address, e)
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io {
            address: self.address.to_string(),
            source,
        }
    }

    /// Whether a kept connection is still open: anything but "nothing to read yet" means
    /// the server closed it, or sent something out of turn.
    pub(crate) fn is_alive(&mut self) -> bool {
        if !self.proto.is_reusable() {
            return false;
        }
        // Whatever a read finds condemns the connection, so it goes to a scratch buffer,
        // not the core's input buffer (a fresh one would be zeroed for it).
        let mut scratch = [0u8; 64];
        matches!(self.io.try_read(&mut scratch), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Whether a kept connection, idle for `idle_for`, may carry a request whose body is
    /// (or is not) replayable: probed ([`is_alive`](Self::is_alive)) when the core's
    /// [`must_probe`](fcgi_proto::lifecycle::must_probe) says so, else only checked to
    /// be reusable.
    pub(crate) fn is_usable(&mut self, idle_for: Duration, body_replayable: bool) -> bool {
        if fcgi_proto::lifecycle::must_probe(idle_for, body_replayable) {
            self.is_alive()
        } else {
            self.proto.is_reusable()
        }
    }
}

/// The timeouts of one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
}

/// One request in progress on a connection it owns.
pub(crate) struct Exchange<R: Runtime> {
    pub(crate) conn: Box<Conn<R>>,
    /// The request, or `None` for a management exchange (`GET_VALUES`).
    pub(crate) id: Option<RequestId>,
    body: Body,
    body_done: bool,
    read_armed: bool,
    /// The clock reading of the checkout, for the first poll: nothing waits between
    /// the two.
    started_at: Option<Instant>,
    deadline: Option<(Deadline<R>, Duration)>,
    /// The connection failed on input; the events the core queued before that are
    /// handed out first (a response that ended whole before a stray record is
    /// delivered), then this.
    failed: Option<Error>,
}

impl<R: Runtime> Exchange<R> {
    /// Starts a request on `conn`: queues its begin record and params.
    pub(crate) fn start(
        mut conn: Box<Conn<R>>,
        params: &fcgi_proto::Params,
        body: Body,
        timeouts: Timeouts,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<Self, Error> {
        let id = conn
            .proto
            .start_request(params)
            .map_err(|e| conn.proto_error(e))?;
        conn.requests += 1;
        Ok(Self::new(conn, Some(id), body, timeouts, deadline))
    }

    /// An exchange of management records only (the caller queued them on `conn`).
    pub(crate) fn management(
        conn: Box<Conn<R>>,
        timeouts: Timeouts,
        deadline: Option<(Instant, Duration)>,
    ) -> Self {
        Self::new(conn, None, Body::empty(), timeouts, deadline)
    }

    fn new(
        mut conn: Box<Conn<R>>,
        id: Option<RequestId>,
        body: Body,
        timeouts: Timeouts,
        deadline: Option<(Instant, Duration)>,
    ) -> Self {
        // The connection was checked out a moment ago: its timeouts count from then,
        // on that clock reading.
        let mut clock = Clock::<R>::read_at(conn.idle_since);
        Idle::restart(&mut conn.read_idle, timeouts.read, &mut clock);
        Idle::restart(&mut conn.write_idle, timeouts.write, &mut clock);
        Self {
            conn,
            body_done: id.is_none(),
            id,
            body,
            read_armed: false,
            started_at: clock.reading(),
            deadline: deadline.map(|(at, total)| (Deadline::at(at), total)),
            failed: None,
        }
    }

    fn timeout(&self, phase: Phase, after: Duration) -> Error {
        Error::Timeout {
            address: self.conn.address.to_string(),
            phase,
            after,
        }
    }

    /// The next event already received, once the whole request is sent: what
    /// [`poll_event`](Self::poll_event) would hand out then (it has no body to take and
    /// nothing to write), without its look at the body, the output and the clocks. Once
    /// the connection failed, its queued events still come first, as from `poll_event`.
    #[inline]
    pub(crate) fn queued_event(&mut self) -> Option<Event> {
        if !self.body_done || self.conn.proto.transmit_len() > 0 {
            return None;
        }
        self.conn.proto.poll_event()
    }

    /// The next event of this request (or of the connection), doing whatever reading and
    /// writing it takes.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        // Progress is timed once per poll: nothing in it waits. The first poll goes on
        // from the checkout's reading.
        let mut clock = match self.started_at.take() {
            Some(at) => Clock::<R>::read_at(at),
            None => Clock::new(),
        };
        loop {
            if self.failed.is_some() {
                return Poll::Ready(match self.conn.proto.poll_event() {
                    Some(event) => Ok(event),
                    None => Err(self.failed.take().expect("checked above")),
                });
            }

            // 1. Take more of the request body while little output is queued.
            while let (false, Some(id)) = (self.body_done, self.id) {
                if self.conn.proto.transmit_len() >= MAX_QUEUED_OUTPUT {
                    break;
                }
                let step = match self.body.poll_chunk(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Some(Ok(chunk))) => self.conn.proto.send_stdin(id, chunk),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Error::Body(e))),
                    Poll::Ready(None) => {
                        self.body_done = true;
                        self.conn.proto.finish_stdin(id)
                    }
                };
                if let Err(e) = step {
                    return Poll::Ready(Err(self.conn.proto_error(e)));
                }
                // New output: the write timeout counts from now.
                if let Some(idle) = &mut self.conn.write_idle {
                    idle.progress(&mut clock);
                }
            }

            // 2. Write what is queued.
            let mut wrote = false;
            while self.conn.proto.transmit_len() > 0 {
                let Conn { io, proto, .. } = &mut *self.conn;
                // 16 slices: 8 records of 64 KiB, more than a socket takes at once. The
                // array is set up on every pass, small requests included (64 cost ~140
                // instructions per request).
                let mut slices = [IoSlice::new(&[]); 16];
                let n = proto.transmit(&mut slices);
                match io.poll_write_vectored(cx, &slices[..n]) {
                    Poll::Pending => break,
                    Poll::Ready(Ok(0)) => {
                        let e = std::io::ErrorKind::WriteZero.into();
                        return Poll::Ready(Err(self.conn.io_error(e)));
                    }
                    Poll::Ready(Ok(written)) => {
                        proto.consume_transmit(written);
                        wrote = true;
                        if let Some(idle) = &mut self.conn.write_idle {
                            idle.progress(&mut clock);
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.conn.io_error(e))),
                }
            }
            if wrote && !self.body_done && self.conn.proto.transmit_len() < MAX_QUEUED_OUTPUT {
                // Room again: take more of the body before waiting on anything.
                continue;
            }
            let sent = self.body_done && self.conn.proto.transmit_len() == 0;
            if sent && !self.read_armed {
                self.read_armed = true;
                if let Some(idle) = &mut self.conn.read_idle {
                    idle.progress(&mut clock);
                }
            }

            // 3. Hand out what has been received.
            if let Some(event) = self.conn.proto.poll_event() {
                return Poll::Ready(Ok(event));
            }

            // 4. Read.
            let Conn { io, proto, .. } = &mut *self.conn;
            match io.poll_read_input(cx, proto) {
                Poll::Ready(Ok(n)) => {
                    self.conn.received += n as u64;
                    let fed = if n == 0 {
                        self.conn.proto.receive_eof()
                    } else {
                        self.conn.proto.input_written(n)
                    };
                    if let Err(e) = fed {
                        // What arrived before the error is delivered first (see above).
                        self.failed = Some(self.conn.proto_error(e));
                        continue;
                    }
                    if let Some(idle) = &mut self.conn.read_idle {
                        idle.progress(&mut clock);
                    }
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.conn.io_error(e))),
                Poll::Pending => {}
            }

            // 5. Nothing can move now: check the clocks.
            if let Some((timer, total)) = &mut self.deadline {
                if timer.poll_expired(cx, &clock).is_ready() {
                    let phase = if sent { Phase::Read } else { Phase::Write };
                    let total = *total;
                    return Poll::Ready(Err(self.timeout(phase, total)));
                }
            }
            if self.conn.proto.transmit_len() > 0 {
                if let Some(idle) = &mut self.conn.write_idle {
                    if idle.poll_expired(cx, &clock).is_ready() {
                        let limit = idle.limit;
                        return Poll::Ready(Err(self.timeout(Phase::Write, limit)));
                    }
                }
            }
            if self.read_armed {
                if let Some(idle) = &mut self.conn.read_idle {
                    if idle.poll_expired(cx, &clock).is_ready() {
                        let limit = idle.limit;
                        return Poll::Ready(Err(self.timeout(Phase::Read, limit)));
                    }
                }
            }
            return Poll::Pending;
        }
    }
}
