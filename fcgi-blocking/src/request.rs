//! What to send: params, a body, and where stderr goes.

use std::fmt;
use std::io::Read;

use bytes::Bytes;
use fcgi_proto::{Params, ParamsBuilder};

use fcgi_proto::ClientError as Error;

pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    Reader {
        reader: Box<dyn Read + Send>,
        len: u64,
    },
}

impl Body {
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => None,
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Reader { len, .. } => Some(*len),
        }
    }

    /// Whether the body can be sent again (for a retry on a fresh connection).
    pub(crate) fn is_replayable(&self) -> bool {
        !matches!(self, Body::Reader { .. })
    }
}

/// A callback that receives the application's `STDERR` as it arrives.
pub(crate) type StderrCallback = Box<dyn FnMut(&[u8]) + Send>;

/// One FastCGI request: its params, its body, and where its stderr goes.
///
/// The client sets `CONTENT_LENGTH` to the body's length, so what is declared always
/// equals what is sent.
///
/// ```
/// use fcgi_blocking::Request;
/// use fcgi_proto::ParamsBuilder;
///
/// let params = ParamsBuilder::new("POST", "/echo.php")
///     .script("/echo.php", "/srv/www/echo.php")
///     .header("Content-Type", "text/plain")
///     .build()?;
/// let request = Request::new(params)
///     .body("hello")
///     .on_stderr(|line| eprint!("php: {}", String::from_utf8_lossy(line)));
/// # let _ = request;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Request {
    pub(crate) params: Params,
    pub(crate) body: Body,
    pub(crate) on_stderr: Option<StderrCallback>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("params", &self.params)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with these params and no body.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            body: Body::Empty,
            on_stderr: None,
        }
    }

    /// A `GET` for a script file with nginx's default params (see
    /// [`ParamsBuilder`]); `uri` is the request target (path and query).
    pub fn get(script_filename: &str, uri: &str) -> Result<Self, Error> {
        Ok(Self::new(ParamsBuilder::get(script_filename, uri).build()?))
    }

    /// The params.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The params, to change.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// Sends these bytes as the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Streams the body from a reader: exactly `len` bytes are read from it, never more,
    /// so a reader that stays open after them (a pipe, a socket, the standard input of a
    /// process that has not exited) does not hold the request up. Whatever the reader
    /// has after `len` bytes stays unread in it: telling whether there is more would take
    /// a read that can wait forever. A reader that ends before `len` bytes fails the
    /// request with [`Error::Usage`]. A request with such a body is not retried.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use fcgi_blocking::Request;
    ///
    /// // The write end stays open: the request takes its 5 bytes and does not wait for
    /// // the end.
    /// let (reader, mut writer) = UnixStream::pair()?;
    /// writer.write_all(b"hello")?;
    /// let request = Request::get("/srv/www/echo.php", "/echo.php")?.body_reader(reader, 5);
    /// # let _ = (request, writer);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn body_reader(mut self, reader: impl Read + Send + 'static, len: u64) -> Self {
        self.body = Body::Reader {
            reader: Box::new(reader),
            len,
        };
        self
    }

    /// Hands the application's `STDERR` to `callback` as it arrives, instead of keeping
    /// it in the response.
    pub fn on_stderr(mut self, callback: impl FnMut(&[u8]) + Send + 'static) -> Self {
        self.on_stderr = Some(Box::new(callback));
        self
    }
}
