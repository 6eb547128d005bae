//! Request bodies: bytes, a stream of bytes, or a reader, each with a known length.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;

/// Most bytes read from a body reader at once.
const READ_CHUNK: usize = 64 * 1024;

/// A source of request body bytes, read by polling: what an adapter makes of its
/// runtime's reader (tokio's `AsyncRead`, futures-io's `AsyncRead`).
pub trait BodyReader: Send {
    /// Reads into `buf`: `Ok(0)` is the end.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;
}

enum Source {
    Empty,
    Bytes(Bytes),
    Stream(Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>),
    Reader(Pin<Box<dyn BodyReader>>, BytesMut),
}

/// A request body of known length (`CONTENT_LENGTH` is set from it, and the client
/// checks that exactly that many bytes come).
///
/// Each adapter wraps it in a `Body` of its own whose `from_reader` takes its runtime's
/// reader.
///
/// ```
/// use fcgi_async_core::Body;
///
/// let empty = Body::empty();
/// let text = Body::from("name=World");
/// assert_eq!(text.len(), Some(10));
/// # let _ = empty;
/// ```
pub struct Body {
    source: Source,
    len: Option<u64>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl Body {
    /// No body (no `CONTENT_LENGTH`).
    pub fn empty() -> Self {
        Self {
            source: Source::Empty,
            len: None,
        }
    }

    /// A stream of chunks adding up to `len` bytes.
    pub fn from_stream<S>(stream: S, len: u64) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        Self {
            source: Source::Stream(Box::pin(stream)),
            len: Some(len),
        }
    }

    /// A reader yielding exactly `len` bytes (an adapter turns its runtime's reader into
    /// a [`BodyReader`]).
    pub fn from_reader<R>(reader: R, len: u64) -> Self
    where
        R: BodyReader + 'static,
    {
        Self {
            source: Source::Reader(Box::pin(reader), BytesMut::new()),
            len: Some(len),
        }
    }

    /// The length, `None` for no body.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether there is no body at all.
    pub fn is_empty(&self) -> bool {
        self.len.unwrap_or(0) == 0
    }

    /// A copy that sends the same bytes again, when the body is in memory.
    pub(crate) fn try_clone(&self) -> Option<Body> {
        let source = match &self.source {
            Source::Empty => Source::Empty,
            Source::Bytes(b) => Source::Bytes(b.clone()),
            _ => return None,
        };
        Some(Body {
            source,
            len: self.len,
        })
    }

    /// The next chunk; `None` at the end.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        match &mut self.source {
            Source::Empty => Poll::Ready(None),
            Source::Bytes(b) => {
                let chunk = std::mem::take(b);
                self.source = Source::Empty;
                Poll::Ready((!chunk.is_empty()).then_some(Ok(chunk)))
            }
            Source::Stream(s) => loop {
                match s.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                    other => return other,
                }
            },
            Source::Reader(r, buf) => {
                // `buf` is zeroed room: a read fills its front, which is split off.
                if buf.len() < READ_CHUNK / 4 {
                    *buf = BytesMut::zeroed(READ_CHUNK);
                }
                match r.as_mut().poll_read(cx, &mut buf[..]) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(n)) => {
                        if n == 0 {
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Some(Ok(buf.split_to(n).freeze())))
                    }
                }
            }
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self {
            len: Some(b.len() as u64),
            source: Source::Bytes(b),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Bytes::from_static(s).into()
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}
