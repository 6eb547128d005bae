//! The socket under a connection: TCP, or a unix socket on unix platforms, as async-io's
//! `Async` (the reactor async-std and smol both run on).

use std::io::{self, IoSlice, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::{fd::OwnedFd, unix::net::UnixStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::Async;
use fcgi_async_core::Socket;
use fcgi_proto::Address;
use futures_io::{AsyncRead, AsyncWrite};

use crate::time::timeout;

/// The socket of a connection ([`Runtime::Socket`](fcgi_async_core::Runtime::Socket) of
/// [`AsyncIo`](crate::AsyncIo)): TCP or a unix socket, on async-io.
#[derive(Debug)]
pub enum Io {
    /// A TCP connection.
    Tcp(Async<TcpStream>),
    /// A unix socket connection (on unix platforms only).
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

/// Opens a connection within `limit`: a TCP host is resolved (on a thread of the
/// `blocking` pool, unless it is an IP address) and each of its addresses tried in turn.
pub(crate) async fn connect(address: &Address, limit: Option<Duration>) -> io::Result<Io> {
    let attempt = async {
        match address {
            #[cfg(unix)]
            Address::Unix(path) => Ok(Io::Unix(connect_unix(path)?)),
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
                            return Ok(Io::Tcp(stream));
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

impl Socket for Io {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One slice (a small request, queued whole) goes by a plain write: the kernel's
        // `sendto` path is shorter than `writev`'s, which copies in an iovec array first.
        if let [one] = bufs {
            return match self {
                Io::Tcp(s) => Pin::new(s).poll_write(cx, one),
                #[cfg(unix)]
                Io::Unix(s) => Pin::new(s).poll_write(cx, one),
            };
        }
        match self {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            Io::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    /// A read that never waits (the socket is non-blocking): `Ok(0)` is end of input,
    /// `WouldBlock` nothing yet.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => (&mut s.get_ref()).read(buf),
            #[cfg(unix)]
            Io::Unix(s) => (&mut s.get_ref()).read(buf),
        }
    }
}
