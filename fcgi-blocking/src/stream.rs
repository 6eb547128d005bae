//! The socket under a connection: TCP, or a unix socket on unix platforms.

use std::io::{self, IoSlice, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::{fd::OwnedFd, unix::net::UnixStream};
use std::time::Duration;

use fcgi_proto::Address;

#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Opens a connection; a TCP host is resolved and each of its addresses tried in turn,
    /// each within `timeout`. A unix socket connects without waiting (see
    /// [`connect_unix`]).
    pub(crate) fn connect(address: &Address, timeout: Option<Duration>) -> io::Result<Stream> {
        match address {
            #[cfg(unix)]
            Address::Unix(path) => Ok(Stream::Unix(connect_unix(path)?)),
            #[cfg(not(unix))]
            Address::Unix(_) => Err(fcgi_proto::address::unix_unsupported()),
            Address::Tcp(hostport) => {
                let mut last = None;
                for addr in hostport.to_socket_addrs()? {
                    let attempt = match timeout {
                        Some(t) => TcpStream::connect_timeout(&addr, t),
                        None => TcpStream::connect(addr),
                    };
                    match attempt {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "host resolved to no address")
                }))
            }
        }
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }
}

/// Connects to the unix socket at `path` without waiting, then makes the socket
/// blocking. std's `UnixStream::connect` blocks, and a blocking connect to a socket whose
/// listen queue is full waits for room with no bound but `SO_SNDTIMEO`; a non-blocking
/// one fails at once with `EAGAIN` (`WouldBlock`), which the client reports as a connect
/// error, as the async adapters do (see `fcgi_proto::ClientError::connect_failed` for
/// why). Otherwise a unix connect succeeds or fails at once either way.
#[cfg(unix)]
fn connect_unix(path: &std::path::Path) -> io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::unix(path)?)?;
    socket.set_nonblocking(false)?;
    Ok(UnixStream::from(OwnedFd::from(socket)))
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            #[cfg(unix)]
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
