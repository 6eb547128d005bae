//! The client: one address, at most one kept connection, timeouts, and requests.

use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fcgi_proto::{Config, Connection, End, Event, RequestId, ResponseHead, ServerValues};

use crate::request::{Body, Request, StderrCallback};
use crate::stream::Stream;
use fcgi_proto::lifecycle::{self, AwaitHead, FailedAttempt, HeadStep};
use fcgi_proto::Address;
use fcgi_proto::{ClientError as Error, LimitKind, Phase, UsageError};

/// Timeouts and limits of a [`Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Bound on opening a TCP connection (default 10 s): a server that does not answer
    /// (its listen queue full, a host gone) fails with [`Error::Timeout`] in
    /// [`Phase::Connect`] once it runs out. A unix socket never waits, so the bound never
    /// applies to it: a server that is not there, or whose listen queue is full, fails at
    /// once with [`Error::Connect`] (a full queue with `io::ErrorKind::WouldBlock`,
    /// `EAGAIN`, as nginx answers 502 at once).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fcgi_blocking::{Client, Error, Options, Request};
    ///
    /// let mut options = Options::default();
    /// options.connect_timeout = Some(Duration::from_secs(1));
    /// let mut client = Client::with_options("unix:/run/php/php-fpm.sock".parse()?, options);
    /// match client.request(Request::get("/srv/www/index.php", "/")?) {
    ///     Err(Error::Connect { source, .. }) if source.kind() == std::io::ErrorKind::WouldBlock => {
    ///         eprintln!("php-fpm accepts no more connections")
    ///     }
    ///     other => println!("{:?}", other.map(|r| r.status)),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub connect_timeout: Option<Duration>,
    /// Bound on each wait for the server to send more (default 60 s, as nginx's
    /// `fastcgi_read_timeout`).
    pub read_timeout: Option<Duration>,
    /// Bound on each wait for the server to take more (default 60 s, as nginx's
    /// `fastcgi_send_timeout`).
    pub write_timeout: Option<Duration>,
    /// Bound on a whole request, connect included, until its response is read
    /// (default none).
    pub total_timeout: Option<Duration>,
    /// Largest body a buffered [`Client::request`] collects (default 64 MiB); stream
    /// larger ones with [`Client::request_streaming`].
    pub max_body_bytes: u64,
    /// The protocol core's limits.
    pub config: Config,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Some(lifecycle::DEFAULT_CONNECT_TIMEOUT),
            read_timeout: Some(lifecycle::DEFAULT_READ_TIMEOUT),
            write_timeout: Some(lifecycle::DEFAULT_WRITE_TIMEOUT),
            total_timeout: None,
            max_body_bytes: lifecycle::DEFAULT_MAX_BODY_BYTES,
            config: Config::default(),
        }
    }
}

/// A buffered response.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status (from `Status`, else 302 with `Location`, else 200).
    pub status: u16,
    /// The response head: status, reason and every header in order.
    pub head: ResponseHead,
    /// The body, byte-exact.
    pub body: Vec<u8>,
    /// The application's `STDERR` (empty when the request had an
    /// [`on_stderr`](Request::on_stderr) callback).
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

struct Conn {
    stream: Stream,
    proto: Connection,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Bytes received over the connection's life.
    received: u64,
    /// When the last request on it ended.
    idle_since: Instant,
    /// The input broke the protocol; the events the core queued before that are handed
    /// out first (a response that ended whole before a stray record is delivered), then
    /// this.
    failed: Option<Error>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        tracing::debug!(target: "fcgi::conn", "connection closed");
    }
}

/// A blocking FastCGI client for one server address.
///
/// It keeps one connection open between requests when the server allows it
/// (`FCGI_KEEP_CONN`). A request that fails on a reused connection before any byte of
/// its response arrived (a php-fpm worker recycled by `pm.max_requests` closes its kept
/// connections) is sent once more on a fresh connection. A request whose body is a
/// reader cannot be sent twice: before such a request, and before any request on a
/// connection idle for a second or more, the client checks without blocking that the
/// kept connection is still open, and opens a new one when it is not. (The check costs
/// three system calls, which a small request on a busy connection does without.) These
/// rules are the core's, shared with the async clients: see [`fcgi_proto::lifecycle`].
///
/// ```no_run
/// use fcgi_blocking::{Client, Request};
///
/// let mut client = Client::connect("unix:/run/php/php-fpm.sock")?;
/// client.set_timeout(Some(std::time::Duration::from_secs(5)));
/// let response = client.request(Request::get("/srv/www/index.php", "/index.php?page=1")?)?;
/// println!("{} {}", response.status, String::from_utf8_lossy(&response.body));
/// # Ok::<(), fcgi_blocking::Error>(())
/// ```
pub struct Client {
    address: Address,
    address_text: String,
    options: Options,
    conn: Option<Conn>,
    connections_opened: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address_text)
            .field("options", &self.options)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Client {
    /// A client for `address` with default [`Options`]; it connects at the first
    /// request.
    pub fn new<A>(address: A) -> Result<Self, Error>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Ok(Self::with_options(address.try_into()?, Options::default()))
    }

    /// A client with these options; it connects at the first request.
    pub fn with_options(address: Address, options: Options) -> Self {
        Self {
            address_text: address.to_string(),
            address,
            options,
            conn: None,
            connections_opened: 0,
        }
    }

    /// A client connected to `address` now, so a wrong address fails here.
    pub fn connect<A>(address: A) -> Result<Self, Error>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        let mut client = Self::new(address)?;
        let deadline = client.deadline();
        client.open(deadline)?;
        Ok(client)
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The options, to change (they apply from the next request).
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// Sets the read and write timeouts (`None`: wait forever), as the seed's
    /// `set_timeout`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.options.read_timeout = timeout;
        self.options.write_timeout = timeout;
    }

    /// How many connections this client has opened.
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened
    }

    /// Whether a connection is open and kept for the next request.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the kept connection, if any.
    pub fn close(&mut self) {
        self.conn = None;
    }

    fn deadline(&self) -> Option<Instant> {
        self.options.total_timeout.map(|t| Instant::now() + t)
    }

    fn timeout_error(&self, phase: Phase, after: Duration) -> Error {
        Error::Timeout {
            address: self.address_text.clone(),
            phase,
            after,
        }
    }

    /// The bound for the next wait: the phase's timeout, or what is left of the total.
    fn bound(&self, phase: Phase, deadline: Option<Instant>) -> Result<Option<Duration>, Error> {
        let phase_timeout = match phase {
            Phase::Write => self.options.write_timeout,
            Phase::Read => self.options.read_timeout,
            // Connecting (one connection: there is no pool slot to wait for).
            _ => self.options.connect_timeout,
        };
        let phase_timeout = phase_timeout.map(|t| t.max(Duration::from_millis(1)));
        let Some(deadline) = deadline else {
            return Ok(phase_timeout);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout_error(phase, self.options.total_timeout.unwrap_or_default()));
        }
        Ok(Some(phase_timeout.map_or(left, |t| t.min(left))))
    }

    fn io_error(&self, source: io::Error) -> Error {
        Error::Io {
            address: self.address_text.clone(),
            source,
        }
    }

    fn proto_error(&self, e: fcgi_proto::Error) -> Error {
        Error::from_connection(self.address_text.as_str(), e)
    }

    fn open(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        self.conn = None;
        let bound = self.bound(Phase::Connect, deadline)?;
        // A unix socket whose queue is full fails at once with `WouldBlock`: a connect
        // error, not a timeout (`connect_failed` says why).
        let stream = Stream::connect(&self.address, bound).map_err(|source| {
            Error::connect_failed(self.address_text.clone(), source, bound.unwrap_or_default())
        })?;
        self.connections_opened += 1;
        tracing::debug!(target: "fcgi::conn", address = %self.address_text, "connected");
        self.conn = Some(Conn {
            stream,
            proto: Connection::new(self.options.config.clone()),
            read_timeout: None,
            write_timeout: None,
            received: 0,
            idle_since: Instant::now(),
            failed: None,
        });
        Ok(())
    }

    /// Whether the kept connection is still open: the server may have closed it while it
    /// sat idle (php-fpm recycling a worker, a server-side idle timeout).
    fn kept_connection_alive(conn: &mut Conn) -> bool {
        if !conn.proto.is_reusable() || conn.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let probe = conn.stream.read(conn.proto.input_buffer());
        let restored = conn.stream.set_nonblocking(false).is_ok();
        // Anything but "nothing to read yet" means closed, broken or out of step.
        restored && matches!(probe, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn conn(&mut self) -> &mut Conn {
        // Every caller runs after `open` succeeded in this request.
        self.conn
            .as_mut()
            .expect("a connection is open during a request")
    }

    fn write_pending(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        while self.conn().proto.transmit_len() > 0 {
            let bound = self.bound(Phase::Write, deadline)?;
            let conn = self.conn();
            if conn.write_timeout != bound {
                conn.stream
                    .set_write_timeout(bound)
                    .map_err(|e| self.io_error(e))?;
                self.conn().write_timeout = bound;
            }
            let conn = self.conn();
            let mut slices = [IoSlice::new(&[]); 64];
            let n = conn.proto.transmit(&mut slices);
            // A small request is one slice: `write` spares the kernel the iovec import.
            let result = match n {
                1 => conn.stream.write(&slices[0]),
                _ => conn.stream.write_vectored(&slices[..n]),
            };
            match result {
                Ok(0) => return Err(self.io_error(io::ErrorKind::WriteZero.into())),
                Ok(written) => conn.proto.consume_transmit(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(self.timeout_error(Phase::Write, bound.unwrap_or_default()))
                }
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(())
    }

    fn read_some(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let bound = self.bound(Phase::Read, deadline)?;
        let conn = self.conn();
        if conn.read_timeout != bound {
            conn.stream
                .set_read_timeout(bound)
                .map_err(|e| self.io_error(e))?;
            self.conn().read_timeout = bound;
        }
        let conn = self.conn();
        let result = loop {
            match conn.stream.read(conn.proto.input_buffer()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let fed = match result {
            Ok(0) => {
                tracing::debug!(target: "fcgi::conn", "closed by the server");
                conn.proto.receive_eof()
            }
            Ok(n) => {
                conn.received += n as u64;
                conn.proto.input_written(n)
            }
            Err(e) if is_timeout(&e) => {
                return Err(self.timeout_error(Phase::Read, bound.unwrap_or_default()))
            }
            Err(e) => return Err(self.io_error(e)),
        };
        if let Err(e) = fed {
            let error = self.proto_error(e);
            self.conn().failed = Some(error);
        }
        Ok(())
    }

    fn next_event(&mut self, deadline: Option<Instant>) -> Result<Event, Error> {
        loop {
            let conn = self.conn();
            if let Some(event) = conn.proto.poll_event() {
                return Ok(event);
            }
            if let Some(error) = conn.failed.take() {
                return Err(error);
            }
            self.read_some(deadline)?;
        }
    }

    /// Sends the request; answers its id. The body is streamed in records.
    fn send(
        &mut self,
        request: &mut Request,
        deadline: Option<Instant>,
    ) -> Result<RequestId, Error> {
        let id = self
            .conn()
            .proto
            .start_request(&request.params)
            .map_err(|e| self.proto_error(e))?;
        match &mut request.body {
            Body::Empty => {}
            Body::Bytes(bytes) => {
                let bytes = bytes.clone();
                self.conn()
                    .proto
                    .send_stdin(id, bytes)
                    .map_err(|e| self.proto_error(e))?;
            }
            Body::Reader { reader, len } => {
                let len = *len;
                let mut sent = 0u64;
                let mut buf = BytesMut::new();
                while sent < len {
                    // Read up to 256 KiB at a time, never past the declared length.
                    let want = (len - sent).min(256 * 1024) as usize;
                    buf.resize(want, 0);
                    let n = match reader.read(&mut buf[..]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Error::Body(e)),
                    };
                    if n == 0 {
                        // What the async clients answer for a body that ends early (the
                        // core's `finish_stdin`): `CONTENT_LENGTH` is `len`.
                        return Err(Error::Usage(UsageError::BodyTooShort {
                            id,
                            declared: len,
                            sent,
                        }));
                    }
                    sent += n as u64;
                    let chunk = buf.split_to(n).freeze();
                    self.conn()
                        .proto
                        .send_stdin(id, chunk)
                        .map_err(|e| self.proto_error(e))?;
                    self.write_pending(deadline)?;
                }
                // Nothing more is read: a reader that stays open after its `len` bytes
                // (a pipe, a socket) would block a read that looks for more.
            }
        }
        self.conn()
            .proto
            .finish_stdin(id)
            .map_err(|e| self.proto_error(e))?;
        self.write_pending(deadline)?;
        Ok(id)
    }

    /// Sends a request and reads its whole response into memory (bounded by
    /// [`Options::max_body_bytes`]).
    pub fn request(&mut self, request: Request) -> Result<Response, Error> {
        let max = self.options.max_body_bytes;
        let mut reader = self.request_streaming(request)?;
        let mut body = Vec::new();
        while let Some(chunk) = reader.chunk()? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(Error::Limit {
                    address: reader.client.address_text.clone(),
                    kind: LimitKind::ResponseBody,
                    limit: max,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let end = reader.end.expect("chunk returned None: the request ended");
        Ok(Response {
            status: reader.head.status(),
            // Moved out, not cloned: the reader is done with it.
            head: std::mem::take(&mut reader.head),
            body,
            stderr: std::mem::take(&mut reader.stderr),
            end,
        })
    }

    /// Sends a request and returns once the response head has arrived; the body is then
    /// read from the returned [`ResponseReader`] as it arrives, in constant memory.
    pub fn request_streaming(&mut self, mut request: Request) -> Result<ResponseReader<'_>, Error> {
        let deadline = self.deadline();
        lifecycle::set_content_length(&mut request.params, request.body.len())?;
        let mut stderr = Vec::new();
        let mut on_stderr = request.on_stderr.take();
        let mut retried = false;
        loop {
            let replayable = request.body.is_replayable();
            let reused = match self.conn.as_mut() {
                Some(conn) if !lifecycle::must_probe(conn.idle_since.elapsed(), replayable) => {
                    conn.proto.is_reusable()
                }
                Some(conn) => Self::kept_connection_alive(conn),
                None => false,
            };
            if !reused {
                self.open(deadline)?;
            }
            let received_before = self.conn().received;
            match self.send_and_read_head(&mut request, deadline, &mut stderr, &mut on_stderr) {
                Ok((id, head)) => {
                    return Ok(ResponseReader {
                        client: self,
                        id,
                        head,
                        pending: Bytes::new(),
                        end: None,
                        stderr,
                        on_stderr,
                        deadline,
                    })
                }
                Err(e) => {
                    let nothing_received = self
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.received == received_before);
                    let attempt = FailedAttempt {
                        connection_failed: lifecycle::is_connection_failure(&e),
                        reused,
                        response_started: !nothing_received,
                        body_replayable: replayable,
                        already_retried: retried,
                    };
                    let keep = matches!(e, Error::BadResponse { .. } | Error::Refused { .. })
                        && self.conn.as_ref().is_some_and(|c| c.proto.is_reusable());
                    if !keep {
                        self.conn = None;
                    }
                    if attempt.may_retry() {
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    fn send_and_read_head(
        &mut self,
        request: &mut Request,
        deadline: Option<Instant>,
        stderr: &mut Vec<u8>,
        on_stderr: &mut Option<StderrCallback>,
    ) -> Result<(RequestId, ResponseHead), Error> {
        let id = self.send(request, deadline)?;
        let mut wait = AwaitHead::new();
        loop {
            let event = self.next_event(deadline)?;
            match wait.on_event(event, &self.address_text) {
                HeadStep::Head(head) => return Ok((id, head)),
                HeadStep::Stderr(data) => deliver_stderr(stderr, on_stderr, &data),
                HeadStep::Failed(error) => return Err(error),
                _ => {}
            }
        }
    }

    /// Asks the server for management variables (`GET_VALUES`), such as
    /// `FCGI_MPXS_CONNS`. php-fpm closes the connection after answering, so this uses a
    /// connection of its own.
    pub fn get_values(&mut self, names: &[&str]) -> Result<ServerValues, Error> {
        let deadline = self.deadline();
        self.open(deadline)?;
        let result = (|| {
            self.conn()
                .proto
                .get_values(names)
                .map_err(|e| self.proto_error(e))?;
            self.write_pending(deadline)?;
            loop {
                if let Event::Values(values) = self.next_event(deadline)? {
                    return Ok(values);
                }
            }
        })();
        self.conn = None;
        result
    }
}

fn deliver_stderr(kept: &mut Vec<u8>, callback: &mut Option<StderrCallback>, data: &[u8]) {
    match callback {
        Some(f) => f(data),
        None => kept.extend_from_slice(data),
    }
}

/// A response whose head has arrived and whose body is read as it comes.
///
/// It implements [`Read`] for the body; [`chunk`](Self::chunk) gives the body
/// in the pieces received, without a copy. Dropping it before the end closes the
/// connection (the next request opens a new one).
pub struct ResponseReader<'c> {
    client: &'c mut Client,
    id: RequestId,
    head: ResponseHead,
    pending: Bytes,
    end: Option<End>,
    stderr: Vec<u8>,
    on_stderr: Option<StderrCallback>,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for ResponseReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseReader")
            .field("id", &self.id)
            .field("head", &self.head)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl ResponseReader<'_> {
    /// The response head.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    /// `STDERR` received so far (empty with an `on_stderr` callback).
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// How the request ended, once the body is read to its end.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// The next piece of the body as received, or `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        while self.end.is_none() {
            let event = self.client.next_event(self.deadline);
            match event {
                Ok(Event::Body { data, .. }) => return Ok(Some(data)),
                Ok(Event::Stderr { data, .. }) => {
                    deliver_stderr(&mut self.stderr, &mut self.on_stderr, &data)
                }
                Ok(Event::End { end, .. }) => {
                    self.end = Some(end);
                    if let Some(error) = self.client.conn.as_ref().and_then(|c| c.failed.as_ref()) {
                        // The request had ended whole (its response is delivered) when
                        // the server broke the protocol: a record after END_REQUEST, say.
                        tracing::warn!(
                            %error,
                            "FastCGI server broke the protocol after a response ended; connection closed"
                        );
                    }
                    let conn = self.client.conn();
                    if conn.proto.is_reusable() {
                        conn.idle_since = Instant::now();
                    } else {
                        self.client.conn = None;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.client.conn = None;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Reads and discards the rest of the body; answers how the request ended.
    pub fn finish(mut self) -> Result<End, Error> {
        while self.chunk()?.is_some() {}
        Ok(self.end.expect("chunk returned None: the request ended"))
    }
}

impl Read for ResponseReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            match self.chunk() {
                Ok(Some(chunk)) => self.pending = chunk,
                Ok(None) => return Ok(0),
                Err(e) => {
                    let kind = if e.is_timeout() {
                        io::ErrorKind::TimedOut
                    } else {
                        io::ErrorKind::Other
                    };
                    return Err(io::Error::new(kind, e));
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

impl Drop for ResponseReader<'_> {
    fn drop(&mut self) {
        if self.end.is_none() {
            // The rest of the response is still on its way: the connection cannot carry
            // another request.
            self.client.conn = None;
        }
    }
}
