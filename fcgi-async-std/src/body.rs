//! Request bodies: bytes, a stream of bytes, or a futures-io reader, each with a known
//! length.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_io::AsyncRead;

/// A request body of known length (`CONTENT_LENGTH` is set from it, and the client
/// checks that exactly that many bytes come).
///
/// ```
/// use fcgi_async_std::Body;
///
/// let empty = Body::empty();
/// let text = Body::from("name=World");
/// // Any futures-io reader: a file of async-std or smol, a socket, a cursor.
/// let reader = smol::io::Cursor::new(vec![0u8; 1024]);
/// let file = Body::from_reader(reader, 1024);
/// # let _ = (empty, text, file);
/// ```
#[derive(Default)]
pub struct Body(fcgi_async_core::Body);

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Body {
    /// No body (no `CONTENT_LENGTH`).
    pub fn empty() -> Self {
        Self(fcgi_async_core::Body::empty())
    }

    /// A stream of chunks adding up to `len` bytes.
    pub fn from_stream<S>(stream: S, len: u64) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        Self(fcgi_async_core::Body::from_stream(stream, len))
    }

    /// A reader ([`futures_io::AsyncRead`]) yielding exactly `len` bytes.
    pub fn from_reader<R>(reader: R, len: u64) -> Self
    where
        R: AsyncRead + Send + 'static,
    {
        Self(fcgi_async_core::Body::from_reader(Reader { reader }, len))
    }

    /// The length, `None` for no body.
    pub fn len(&self) -> Option<u64> {
        self.0.len()
    }

    /// Whether there is no body at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pin_project_lite::pin_project! {
    /// A futures-io reader as the engine's [`BodyReader`](fcgi_async_core::BodyReader).
    struct Reader<R> {
        #[pin]
        reader: R,
    }
}

impl<R: AsyncRead + Send> fcgi_async_core::BodyReader for Reader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.project().reader.poll_read(cx, buf)
    }
}

impl From<Body> for fcgi_async_core::Body {
    fn from(body: Body) -> Self {
        body.0
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self(b.into())
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self(v.into())
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Self(s.into())
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self(s.into())
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}
