//! Request bodies: bytes, a stream of bytes, or a reader, each with a known length.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;

/// Most bytes read from a body reader at once.
const READ_CHUNK: usize = 64 * 1024;

/// A reader that a [`Body`] can be read from: tokio's `AsyncRead` (feature `tokio`, as in
/// `fcgi-tokio`) or futures-io's (feature `futures-io`, as in `fcgi-async-std`). `M`
/// names the trait ([`TokioIo`], [`FuturesIo`]) and is inferred: every such reader
/// implements this already, so callers never name it unless a type implements both
/// traits and both features are on (a build with both adapters), where
/// `Body::from_reader::<_, TokioIo>` picks one.
pub trait BodyReader<M>: Send + 'static {
    /// Reads into `buf`: `Ok(0)` is the end.
    fn poll_read_body(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;
}

/// Names tokio's `AsyncRead` as a [`BodyReader`].
#[derive(Debug)]
pub enum TokioIo {}

/// Names futures-io's `AsyncRead` as a [`BodyReader`].
#[derive(Debug)]
pub enum FuturesIo {}

#[cfg(feature = "tokio")]
impl<T: tokio::io::AsyncRead + Send + 'static> BodyReader<TokioIo> for T {
    fn poll_read_body(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read_buf = tokio::io::ReadBuf::new(buf);
        tokio::io::AsyncRead::poll_read(self, cx, &mut read_buf)
            .map_ok(|()| read_buf.filled().len())
    }
}

#[cfg(feature = "futures-io")]
impl<T: futures_io::AsyncRead + Send + 'static> BodyReader<FuturesIo> for T {
    fn poll_read_body(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncRead::poll_read(self, cx, buf)
    }
}

/// A reader whose trait is chosen: the one form a body keeps.
trait ReadSource: Send {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;
}

pin_project_lite::pin_project! {
    struct Reader<T, M> {
        #[pin]
        reader: T,
        trait_: PhantomData<fn() -> M>,
    }
}

impl<T: BodyReader<M>, M> ReadSource for Reader<T, M> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.project().reader.poll_read_body(cx, buf)
    }
}

enum Source {
    Empty,
    Bytes(Bytes),
    Stream(Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>),
    Reader(Pin<Box<dyn ReadSource>>, BytesMut),
}

/// A request body of known length (`CONTENT_LENGTH` is set from it, and the client
/// checks that exactly that many bytes come).
///
/// `fcgi_tokio::Body` and `fcgi_async_std::Body` are this type; [`from_reader`](Self::from_reader)
/// takes the runtime's reader in each.
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
    /// Bytes still to take from a stream or a reader: none is polled once they came.
    left: u64,
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
            left: 0,
        }
    }

    /// A stream of chunks adding up to `len` bytes. Once they came the body is complete
    /// and the stream is not polled again, so one that stays open after them does not
    /// hold the request up; one that ends early fails it (a usage error), and so does a
    /// chunk that goes past `len`.
    pub fn from_stream<S>(stream: S, len: u64) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        Self {
            source: Source::Stream(Box::pin(stream)),
            len: Some(len),
            left: len,
        }
    }

    /// A reader (tokio's `AsyncRead` with `fcgi-tokio`, futures-io's with
    /// `fcgi-async-std`: see [`BodyReader`]) of which exactly `len` bytes are read, never
    /// more: a reader that stays open after them (a
    /// pipe, a socket, the standard input of a process that has not exited) does not hold
    /// the request up, and whatever it has after them stays unread (telling whether there
    /// is more would take a read that can wait forever). A reader that ends before `len`
    /// bytes fails the request with a usage error.
    pub fn from_reader<T, M>(reader: T, len: u64) -> Self
    where
        T: BodyReader<M>,
        M: 'static,
    {
        let reader = Reader {
            reader,
            trait_: PhantomData,
        };
        Self {
            source: Source::Reader(Box::pin(reader), BytesMut::new()),
            len: Some(len),
            left: len,
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
            left: self.left,
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
            // The declared length came: the body is complete. Nothing more is asked of
            // the stream or reader, which may stay open and never answer.
            Source::Stream(_) | Source::Reader(..) if self.left == 0 => Poll::Ready(None),
            Source::Stream(s) => loop {
                match s.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                    Poll::Ready(Some(Ok(chunk))) => {
                        // A chunk past the length goes on, for the core to refuse.
                        self.left = self.left.saturating_sub(chunk.len() as u64);
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    other => return other,
                }
            },
            Source::Reader(r, buf) => {
                // `buf` is zeroed room: a read fills its front, which is split off.
                if buf.len() < READ_CHUNK / 4 {
                    *buf = BytesMut::zeroed(READ_CHUNK);
                }
                // Never more than the bytes still to come.
                let room = buf
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                match r.as_mut().poll_read(cx, &mut buf[..room]) {
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
                        self.left -= n as u64;
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
            left: b.len() as u64,
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
