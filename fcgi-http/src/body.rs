//! Bodies: an `http_body::Body` in becomes a [`Body`] of known length (streamed, or
//! spooled first when its length is unknown); [`ResponseBody`] out streams from a
//! [`ResponseStream`], a file, or memory.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::buffer::{BufferError, Buffered};
use crate::{HttpError, ServiceOptions, UnknownLength};
use fcgi_tokio::{Body, ResponseStream};
use tower_http::services::fs::ServeFileSystemResponseBody;

/// Most bytes of a FastCGI response read and thrown away after its HTTP response is done
/// with it, so that its connection can be kept; past it, the connection is closed.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// Longest time such a response is read and thrown away; past it, the connection is
/// closed (a script that streams on would otherwise hold it, and its worker, for as
/// long as it runs).
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The error type of request bodies the service takes.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An `http_body::Body` as a stream of data chunks (trailers are dropped: FastCGI has
/// no place for them), which fails with [`BodyTimedOut`] when the client sends nothing
/// for its idle limit.
struct DataStream<B> {
    body: Pin<Box<B>>,
    idle: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> DataStream<B> {
    fn new(body: B, idle: Option<Duration>) -> Self {
        Self {
            body: Box::pin(body),
            idle,
            timer: None,
        }
    }
}

/// The client sent no request body bytes for the body timeout (the source of the
/// `io::Error`, of kind `TimedOut`, that the body's stream fails with).
#[derive(Debug)]
pub(crate) struct BodyTimedOut(Duration);

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the client sent no request body bytes for {:?}", self.0)
    }
}

impl std::error::Error for BodyTimedOut {}

impl<B> Stream for DataStream<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            return match this.body.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    let Some(idle) = this.idle else {
                        return Poll::Pending;
                    };
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    match timer.as_mut().poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            BodyTimedOut(idle),
                        )))),
                    }
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e.into())))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Progress: the idle limit starts again at the next wait.
                    if let (Some(timer), Some(idle)) = (&mut this.timer, this.idle) {
                        timer.as_mut().reset(tokio::time::Instant::now() + idle);
                    }
                    match frame.into_data() {
                        Ok(mut data) => Poll::Ready(Some(Ok(data.copy_to_bytes(data.remaining())))),
                        Err(_trailers) => continue,
                    }
                }
            };
        }
    }
}

/// The request body for the FastCGI client, and its length for `CONTENT_LENGTH`.
///
/// - With [`ServiceOptions::request_buffering`] (the default), and for a body of
///   unknown length (`Transfer-Encoding: chunked`) in any case, the body is read in
///   full first: into memory up to [`ServiceOptions::spool_memory`], then into an
///   anonymous temporary file; a body of unknown length is refused with 411 instead
///   when [`ServiceOptions::unknown_length`] says so. No upstream connection is taken
///   until this returns.
/// - Without it, a body of known length (`Content-Length`: its size hint is exact)
///   streams through as it arrives.
/// - Either is refused with 413 above [`ServiceOptions::max_body_bytes`], and with
///   408 ([`HttpError::BodyTimeout`]) when the client pauses longer than
///   [`ServiceOptions::body_timeout`] while it is read here.
pub(crate) async fn request_body<B>(
    body: B,
    options: &ServiceOptions,
) -> Result<(Body, Option<u64>), HttpError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let too_large = |len: u64| options.max_body_bytes.is_some_and(|max| len > max);
    if body.is_end_stream() {
        return Ok((Body::empty(), None));
    }
    let exact = body.size_hint().exact();
    if let Some(len) = exact {
        if too_large(len) {
            return Err(HttpError::PayloadTooLarge);
        }
        if len == 0 {
            return Ok((Body::empty(), Some(0)));
        }
        if !options.request_buffering {
            let stream = DataStream::new(body, options.body_timeout);
            return Ok((Body::from_stream(stream, len), Some(len)));
        }
    } else if options.unknown_length == UnknownLength::Reject {
        return Err(HttpError::LengthRequired);
    }
    let mut body = DataStream::new(body, options.body_timeout);
    let mut memory = BytesMut::new();
    // The first chunk, kept as it is while it is the only one (no copy for a body
    // that arrives in one piece).
    let mut first: Option<Bytes> = None;
    let mut file: Option<tokio::fs::File> = None;
    let mut total = 0u64;
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
        let chunk = chunk.map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut
                && e.get_ref().is_some_and(|inner| inner.is::<BodyTimedOut>())
            {
                HttpError::BodyTimeout
            } else {
                HttpError::Body(e)
            }
        })?;
        total += chunk.len() as u64;
        if too_large(total) {
            return Err(HttpError::PayloadTooLarge);
        }
        let in_memory = memory.len() + first.as_ref().map_or(0, Bytes::len);
        if file.is_none() && in_memory + chunk.len() <= options.spool_memory {
            if in_memory == 0 && exact == Some(chunk.len() as u64) {
                first = Some(chunk);
                continue;
            }
            if let Some(first) = first.take() {
                memory.extend_from_slice(&first);
            }
            memory.extend_from_slice(&chunk);
            continue;
        }
        let f = match &mut file {
            Some(f) => f,
            None => {
                let mut f = tokio::fs::File::from_std(
                    tokio::task::spawn_blocking(tempfile::tempfile)
                        .await
                        .map_err(io::Error::other)
                        .and_then(|r| r)
                        .map_err(HttpError::Spool)?,
                );
                if let Some(first) = first.take() {
                    f.write_all(&first).await.map_err(HttpError::Spool)?;
                }
                f.write_all(&memory).await.map_err(HttpError::Spool)?;
                memory = BytesMut::new();
                file.insert(f)
            }
        };
        f.write_all(&chunk).await.map_err(HttpError::Spool)?;
    }
    match file {
        Some(mut f) => {
            f.flush().await.map_err(HttpError::Spool)?;
            f.rewind().await.map_err(HttpError::Spool)?;
            Ok((Body::from_reader(f, total), Some(total)))
        }
        None if total == 0 => Ok((Body::empty(), Some(0))),
        None => match first {
            Some(first) => Ok((Body::from(first), Some(total))),
            None => Ok((Body::from(memory.freeze()), Some(total))),
        },
    }
}

enum Kind {
    Empty,
    Full(Bytes),
    /// A whole response read already, in the pieces it came in.
    Chunks(VecDeque<Bytes>),
    Stream(Box<ResponseStream>),
    Buffered(Buffered),
    File(Box<ServeFileSystemResponseBody>),
}

/// The body of a response from [`FastCgiService`](crate::FastCgiService) or
/// [`Gateway`](crate::Gateway): the application's output as it arrives from FastCGI
/// (no copy), a static file read in 64 KiB pieces (tower-http's), or bytes in memory.
///
/// An upstream failure in the middle of the body is an error of the body (the status
/// has been sent): hyper then closes the client's connection, which is how the client
/// learns that the body is cut short.
pub struct ResponseBody {
    kind: Kind,
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) | Kind::Chunks(_) => "full",
            Kind::Stream(_) => "fastcgi",
            Kind::Buffered(_) => "fastcgi, buffered",
            Kind::File { .. } => "file",
        };
        f.debug_struct("ResponseBody")
            .field("kind", &kind)
            .field("size_hint", &http_body::Body::size_hint(self))
            .finish()
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// These bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(bytes.into()),
        }
    }

    /// The rest of a FastCGI response.
    pub fn stream(stream: ResponseStream) -> Self {
        Self {
            kind: Kind::Stream(Box::new(stream)),
        }
    }

    /// A whole response, in pieces.
    pub(crate) fn chunks(chunks: VecDeque<Bytes>) -> Self {
        Self {
            kind: Kind::Chunks(chunks),
        }
    }

    /// A FastCGI response read by a task of its own at the upstream's speed.
    pub(crate) fn buffered(buffered: Buffered) -> Self {
        Self {
            kind: Kind::Buffered(buffered),
        }
    }

    /// A static file, as tower-http's `ServeFile` sends it.
    pub(crate) fn file(body: ServeFileSystemResponseBody) -> Self {
        Self {
            kind: Kind::File(Box::new(body)),
        }
    }
}

/// A body dropped before its end: hyper stops polling once it has sent the
/// `Content-Length` the application gave (the `END_REQUEST` record still unread), or the
/// client has gone. The rest is drained so that the connection can be kept.
impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Kind::Stream(stream) = std::mem::replace(&mut self.kind, Kind::Empty) {
            drain(*stream);
        }
    }
}

/// Reads what is left of a FastCGI response and throws it away, in a task of its own,
/// so that its connection goes back to the pool: the rest of a response whose HTTP
/// response has no body (HEAD, 204, 304; php-fpm writes nothing after the head of a
/// `HEAD` request, a script may still) or has been sent in full. Past [`DRAIN_LIMIT`]
/// bytes or [`DRAIN_TIME`], or outside a tokio runtime, the stream is dropped, which
/// closes its connection, as nginx closes one it has not read to the end.
pub(super) fn drain(mut stream: ResponseStream) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let read_to_end = async {
            let mut read = 0;
            while let Ok(Some(chunk)) = stream.chunk().await {
                read += chunk.len();
                if read > DRAIN_LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, read_to_end).await;
    });
}

/// Logs a FastCGI failure in the middle of a body; the error for hyper, which then
/// closes the client's connection.
fn cut_short(e: fcgi_tokio::Error) -> io::Error {
    tracing::warn!(
        target: "fcgi_http",
        error = &e as &(dyn std::error::Error + 'static),
        "FastCGI response cut short"
    );
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => {
                let bytes = std::mem::take(bytes);
                this.kind = Kind::Empty;
                Poll::Ready((!bytes.is_empty()).then(|| Ok(Frame::data(bytes))))
            }
            Kind::Chunks(chunks) => match chunks.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                None => {
                    this.kind = Kind::Empty;
                    Poll::Ready(None)
                }
            },
            Kind::Buffered(buffered) => match buffered.poll_chunk(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Poll::Ready(None) => {
                    this.kind = Kind::Empty;
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(BufferError::Upstream(e)))) => {
                    this.kind = Kind::Empty;
                    Poll::Ready(Some(Err(cut_short(e))))
                }
                Poll::Ready(Some(Err(BufferError::TempFile(e)))) => {
                    tracing::warn!(
                        target: "fcgi_http",
                        error = &e as &(dyn std::error::Error + 'static),
                        "reading a buffered response back from its temporary file failed"
                    );
                    this.kind = Kind::Empty;
                    Poll::Ready(Some(Err(e)))
                }
            },
            Kind::Stream(stream) => match stream.poll_chunk(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Some(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Poll::Ready(Ok(None)) => {
                    this.kind = Kind::Empty;
                    Poll::Ready(None)
                }
                Poll::Ready(Err(e)) => {
                    this.kind = Kind::Empty;
                    Poll::Ready(Some(Err(cut_short(e))))
                }
            },
            Kind::File(body) => {
                let polled = Pin::new(body.as_mut()).poll_frame(cx);
                if let Poll::Ready(None | Some(Err(_))) = polled {
                    this.kind = Kind::Empty;
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_empty(),
            Kind::Chunks(chunks) => chunks.iter().all(Bytes::is_empty),
            Kind::Stream(_) | Kind::Buffered(_) => false,
            Kind::File(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.len() as u64),
            // As a streamed response: the length is the application's to give (a
            // response without one goes out chunked, buffered or not).
            Kind::Chunks(_) | Kind::Stream(_) | Kind::Buffered(_) => SizeHint::default(),
            Kind::File(body) => body.size_hint(),
        }
    }
}
