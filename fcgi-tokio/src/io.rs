//! The socket under a connection: TCP, or a unix socket on unix platforms.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use fcgi_async_core::Socket;
use fcgi_proto::{Address, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio_util::io::poll_read_buf;

#[cfg(unix)]
use crate::unix::UnixSocket;

/// The socket of a connection ([`Runtime::Socket`](fcgi_async_core::Runtime::Socket) of
/// [`Tokio`](crate::Tokio)): TCP or a unix socket.
#[derive(Debug)]
pub enum Io {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix socket connection.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    Unix(UnixSocket),
}

/// Opens a connection within `timeout`: a TCP host is resolved and each of its addresses
/// tried in turn.
pub(crate) async fn connect(address: &Address, timeout: Option<Duration>) -> io::Result<Io> {
    let attempt = async {
        match address {
            #[cfg(unix)]
            Address::Unix(path) => Ok(Io::Unix(UnixSocket::new(UnixStream::connect(path).await?)?)),
            #[cfg(not(unix))]
            Address::Unix(_) => Err(fcgi_proto::address::unix_unsupported()),
            Address::Tcp(hostport) => {
                let stream = TcpStream::connect(hostport.as_str()).await?;
                stream.set_nodelay(true)?;
                Ok(Io::Tcp(stream))
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, attempt)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        None => attempt.await,
    }
}

impl Socket for Io {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Io::Tcp(s) => {
                let mut buf = ReadBuf::new(buf);
                ready!(Pin::new(s).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }
            #[cfg(unix)]
            Io::Unix(s) => s.poll_read(cx, buf),
        }
    }

    /// Appends to the spare capacity of the core's input buffer, zeroing nothing: TCP
    /// through tokio's `poll_read` on an uninitialized `ReadBuf` (tokio-util's
    /// `poll_read_buf`), a unix socket through [`UnixSocket`]. A short read clears the
    /// readiness, as `poll_read` does, so the next read waits for the reactor instead of
    /// trying the socket.
    fn poll_read_input(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<io::Result<usize>> {
        match self {
            Io::Tcp(s) => poll_read_buf(Pin::new(s), cx, conn.input_buf()),
            #[cfg(unix)]
            Io::Unix(s) => s.poll_read_buf(cx, conn.input_buf()),
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            // One slice (a small request, queued whole) goes by a plain write: the
            // kernel's `sendto` path is shorter than `writev`'s, which copies in an iovec
            // array first.
            Io::Tcp(s) => match bufs {
                [one] => Pin::new(s).poll_write(cx, one),
                _ => Pin::new(s).poll_write_vectored(cx, bufs),
            },
            #[cfg(unix)]
            Io::Unix(s) => s.poll_write(cx, bufs),
        }
    }

    /// A read that never waits: `Ok(0)` is end of input, `WouldBlock` nothing yet.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.try_read(buf),
            #[cfg(unix)]
            Io::Unix(s) => s.try_read(buf),
        }
    }
}
