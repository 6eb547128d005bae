//! The socket under a connection: TCP or a unix socket.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use fcgi_async_core::Socket;
use fcgi_proto::{Address, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// The socket of a connection ([`Runtime::Socket`](fcgi_async_core::Runtime::Socket) of
/// [`Tokio`](crate::Tokio)): TCP or a unix socket.
#[derive(Debug)]
pub enum Io {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix socket connection.
    Unix(UnixStream),
}

/// Opens a connection within `timeout`: a TCP host is resolved and each of its addresses
/// tried in turn.
pub(crate) async fn connect(address: &Address, timeout: Option<Duration>) -> io::Result<Io> {
    let attempt = async {
        match address {
            Address::Unix(path) => Ok(Io::Unix(UnixStream::connect(path).await?)),
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
        let mut buf = ReadBuf::new(buf);
        let result = match self {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, &mut buf),
            Io::Unix(s) => Pin::new(s).poll_read(cx, &mut buf),
        };
        result.map_ok(|()| buf.filled().len())
    }

    /// Appends to the spare capacity of the core's input buffer (tokio's
    /// `try_read_buf`, which reads into uninitialized memory): no zeroing first.
    fn poll_read_input(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
    ) -> Poll<io::Result<usize>> {
        loop {
            let read = match self {
                Io::Tcp(s) => {
                    ready!(s.poll_read_ready(cx))?;
                    s.try_read_buf(conn.input_buf())
                }
                Io::Unix(s) => {
                    ready!(s.poll_read_ready(cx))?;
                    s.try_read_buf(conn.input_buf())
                }
            };
            match read {
                // The readiness was stale (`try_read_buf` cleared it): wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    /// A read that never waits: `Ok(0)` is end of input, `WouldBlock` nothing yet.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.try_read(buf),
            Io::Unix(s) => s.try_read(buf),
        }
    }
}
