//! The socket under a connection: TCP, or a unix socket on unix platforms, as async-io's
//! `Async` (the reactor async-std and smol both run on).

use std::io::{self, IoSlice, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::{fd::OwnedFd, unix::net::UnixStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_io::Async;
use bytes::BytesMut;
use fcgi_async_core::Socket;
use fcgi_proto::{Address, Connection};
use futures_io::AsyncWrite;
use socket2::SockRef;

use crate::time::timeout;

/// The socket of a connection ([`Runtime::Socket`](fcgi_async_core::Runtime::Socket) of
/// [`AsyncIo`](crate::AsyncIo)): TCP or a unix socket, on async-io.
#[derive(Debug)]
pub struct Io {
    stream: Stream,
    /// The last read was shorter than its buffer: it emptied the socket.
    drained: bool,
    /// Something was written since the socket was emptied: the next read waits for
    /// readability before it tries (see [`Io::poll_read`]).
    answer_awaited: bool,
}

#[derive(Debug)]
enum Stream {
    Tcp(Async<TcpStream>),
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

impl From<Stream> for Io {
    fn from(stream: Stream) -> Self {
        Io {
            stream,
            drained: false,
            answer_awaited: false,
        }
    }
}

/// Opens a connection within `limit`: a TCP host is resolved (on a thread of the
/// `blocking` pool, unless it is an IP address) and each of its addresses tried in turn.
pub(crate) async fn connect(address: &Address, limit: Option<Duration>) -> io::Result<Io> {
    let attempt = async {
        match address {
            #[cfg(unix)]
            Address::Unix(path) => Ok(Stream::Unix(connect_unix(path)?).into()),
            #[cfg(not(unix))]
            Address::Unix(_) => Err(fcgi_proto::address::unix_unsupported()),
            Address::Tcp(hostport) => {
                let addresses: Vec<SocketAddr> = match hostport.parse() {
                    Ok(address) => vec![address],
                    Err(_) => {
                        let hostport = hostport.clone();
                        blocking::unblock(move || {
                            Ok::<_, io::Error>(hostport.to_socket_addrs()?.collect())
                        })
                        .await?
                    }
                };
                let mut last_error = None;
                for address in addresses {
                    match Async::<TcpStream>::connect(address).await {
                        Ok(stream) => {
                            stream.get_ref().set_nodelay(true)?;
                            return Ok(Stream::Tcp(stream).into());
                        }
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(last_error.unwrap_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{hostport} resolves to no address"),
                    )
                }))
            }
        }
    };
    match limit {
        Some(t) => timeout(t, attempt)
            .await
            .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into())),
        None => attempt.await,
    }
}

/// Connects to the unix socket at `path` without waiting. A unix connect succeeds or
/// fails at once, but for a socket whose listen queue is full: the kernel answers that
/// with `EAGAIN` (`WouldBlock`), and the client reports it as a connect error, as
/// fcgi-tokio and fcgi-blocking do (see `fcgi_proto::ClientError::connect_failed` for
/// why). `Async::<UnixStream>::connect` would take `EAGAIN` for a connect in progress
/// and fail with a misleading `ENOTCONN` instead.
#[cfg(unix)]
fn connect_unix(path: &std::path::Path) -> io::Result<Async<UnixStream>> {
    use socket2::{Domain, SockAddr, Type};
    let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::unix(path)?)?;
    Async::new_nonblocking(UnixStream::from(OwnedFd::from(socket)))
}

impl Io {
    /// Waits until the socket, found empty, is readable.
    ///
    /// async-io answers "readable" at once when it delivered readability since the task
    /// last asked, even when reads have used that readability up since: the socket was
    /// just found empty, so such an answer is stale, and the second question registers
    /// for the next readability. Asking twice saves the read that would only find the
    /// socket empty again (a system call per response). A readability that did arrive
    /// between the two questions is not lost: the second registers interest, and the
    /// reactor reports a socket that is readable then at once.
    fn poll_wait_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let readable = |cx: &mut Context<'_>| match &self.stream {
            Stream::Tcp(s) => s.poll_readable(cx),
            #[cfg(unix)]
            Stream::Unix(s) => s.poll_readable(cx),
        };
        ready!(readable(cx))?;
        readable(cx)
    }

    /// Runs `read` (a read that never waits, into `room` bytes), waiting for
    /// readability when the socket is empty.
    ///
    /// A read shorter than `room` emptied the socket (a stream socket hands over all it
    /// holds, up to the buffer). When something was written since, the next read waits
    /// for readability before it tries: a request just written has no answer yet, so a
    /// read would find the socket empty for nothing. Reads with no write between them
    /// (a body streaming in) try the socket first, as more may have come meanwhile.
    fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        mut read: impl FnMut(&Stream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if std::mem::take(&mut self.answer_awaited) {
            ready!(self.poll_wait_readable(cx))?;
        }
        loop {
            match read(&self.stream) {
                Ok(n) => {
                    self.drained = n > 0 && n < room;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.poll_wait_readable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Stream {
    /// A read that never waits (the socket is non-blocking): `Ok(0)` is end of input,
    /// `WouldBlock` nothing yet.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&mut s.get_ref()).read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => (&mut s.get_ref()).read(buf),
        }
    }

    /// As [`read`](Self::read), appending to the spare capacity of `buf`, which is not
    /// zeroed first.
    fn read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let socket = match self {
            Stream::Tcp(s) => SockRef::from(s.get_ref()),
            #[cfg(unix)]
            Stream::Unix(s) => SockRef::from(s.get_ref()),
        };
        let n = socket.recv(buf.spare_capacity_mut())?;
        // SAFETY: `recv` initialized the first `n` bytes of the spare capacity it was
        // given (socket2 reports how many the kernel wrote, never more than the slice),
        // so the first `len + n` bytes of `buf` are initialized.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_len(buf.len() + n);
        }
        Ok(n)
    }
}

impl Socket for Io {
    /// Reads what the socket holds, waiting for readability when it is empty (see
    /// `Io::poll_read_with` for when it waits first).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, buf.len(), |stream| stream.read(buf))
    }

    /// Reads into the spare capacity of the connection's input buffer
    /// ([`Connection::input_buf`]), so that no room is zeroed before it is read into;
    /// otherwise as [`poll_read`](Self::poll_read).
    fn poll_read_input(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<io::Result<usize>> {
        let buf = conn.input_buf();
        let room = buf.capacity() - buf.len();
        self.poll_read_with(cx, room, |stream| stream.read_buf(buf))
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One slice (a small request, queued whole) goes by a plain write: the kernel's
        // `sendto` path is shorter than `writev`'s, which copies in an iovec array first.
        let written = match (&mut self.stream, bufs) {
            (Stream::Tcp(s), [one]) => Pin::new(s).poll_write(cx, one),
            #[cfg(unix)]
            (Stream::Unix(s), [one]) => Pin::new(s).poll_write(cx, one),
            (Stream::Tcp(s), _) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            (Stream::Unix(s), _) => Pin::new(s).poll_write_vectored(cx, bufs),
        };
        if let Poll::Ready(Ok(1..)) = written {
            self.answer_awaited = self.drained;
        }
        written
    }

    /// A read that never waits (the socket is non-blocking): `Ok(0)` is end of input,
    /// `WouldBlock` nothing yet.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::future::poll_fn;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use async_io::Async;
    use fcgi_async_core::Socket;

    use super::{Io, Stream};

    fn pair() -> (Io, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (Stream::Unix(Async::new(ours).unwrap()).into(), theirs)
    }

    /// One read, waiting for the reactor if need be; `before_waiting` runs the first
    /// time the read waits.
    fn read(io: &mut Io, buf: &mut [u8], before_waiting: impl FnOnce()) -> usize {
        let mut before_waiting = Some(before_waiting);
        let read = poll_fn(|cx| {
            let polled = io.poll_read(cx, buf);
            if let (Poll::Pending, Some(f)) = (&polled, before_waiting.take()) {
                f();
            }
            polled
        });
        let bounded = crate::time::timeout(Duration::from_secs(10), read);
        async_io::block_on(bounded).expect("the read ends").unwrap()
    }

    /// Writes `bytes` to the peer through `io`, as a request goes out.
    fn write(io: &mut Io, bytes: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        let slices = [std::io::IoSlice::new(bytes)];
        let written = io.poll_write_vectored(&mut cx, &slices);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    /// Input read into a buffer's spare capacity is appended to what the buffer held,
    /// and a read that did not fill the room counts as having emptied the socket (the
    /// next read after a write waits for the reactor, as with `poll_read`).
    #[test]
    fn input_is_appended_to_the_spare_capacity() {
        let (mut io, mut theirs) = pair();
        theirs.write_all(b"abc").unwrap();
        let mut buf = bytes::BytesMut::with_capacity(64);
        buf.extend_from_slice(b"xy");
        let mut cx = Context::from_waker(Waker::noop());
        let room = buf.capacity() - buf.len();
        let read = io.poll_read_with(&mut cx, room, |stream| stream.read_buf(&mut buf));
        assert!(matches!(read, Poll::Ready(Ok(3))));
        assert_eq!(&buf[..], b"xyabc");
        write(&mut io, b"request");
        theirs.write_all(b"d").unwrap();
        let room = buf.capacity() - buf.len();
        let read = io.poll_read_with(&mut cx, room, |stream| stream.read_buf(&mut buf));
        assert!(read.is_pending(), "waits for the reactor after a write");
        assert_eq!(&buf[..], b"xyabc");
    }

    /// Reads with no write between them try the socket first: after a read that
    /// filled its buffer, and after one that emptied the socket (a body streaming in,
    /// more of which may have come meanwhile).
    #[test]
    fn reads_with_no_write_between_them_try_the_socket_at_once() {
        let (mut io, mut theirs) = pair();
        theirs.write_all(b"abcdef").unwrap();
        let mut buf = [0; 4];
        assert_eq!(read(&mut io, &mut buf, || {}), 4);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            io.poll_read(&mut cx, &mut buf),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(&buf[..2], b"ef");
        theirs.write_all(b"gh").unwrap();
        assert!(matches!(
            io.poll_read(&mut cx, &mut buf),
            Poll::Ready(Ok(2))
        ));
        assert_eq!(&buf[..2], b"gh");
    }

    /// After a read that emptied the socket and a write (a request on a kept
    /// connection), the next read waits for the reactor to report readability before
    /// it reads (`look`: seen by a poll that does not wait), and what came in between
    /// is reported at once, not lost. Both after a read that needed the reactor (whose
    /// report async-io gives once more, stale) and after one that did not.
    #[test]
    fn a_read_after_a_write_on_an_emptied_socket_waits_for_the_reactor_and_loses_nothing() {
        for (first_waits, look) in [(true, true), (true, false), (false, true), (false, false)] {
            let (mut io, mut theirs) = pair();
            let mut buf = [0; 16];
            if first_waits {
                let mut writer = theirs.try_clone().unwrap();
                let n = read(&mut io, &mut buf, move || writer.write_all(b"ab").unwrap());
                assert_eq!(n, 2);
            } else {
                theirs.write_all(b"ab").unwrap();
                assert_eq!(read(&mut io, &mut buf, || panic!("data was there")), 2);
            }
            write(&mut io, b"request");
            theirs.write_all(b"cd").unwrap();
            if look {
                let mut cx = Context::from_waker(Waker::noop());
                assert!(io.poll_read(&mut cx, &mut buf).is_pending());
            }
            assert_eq!(read(&mut io, &mut buf, || {}), 2);
            assert_eq!(&buf[..2], b"cd");
            let mut request = [0; 7];
            std::io::Read::read_exact(&mut theirs, &mut request).unwrap();
            assert_eq!(&request, b"request");
        }
    }
}
