//! Where a FastCGI server listens: a TCP host and port, or a unix socket. Parsing only;
//! the adapters connect.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

/// A FastCGI server's address.
///
/// Parsed from `HOST:PORT`, `[V6]:PORT`, `unix:/path/to.sock`, or a path that starts with
/// `/` or `./`.
///
/// ```
/// use fcgi_proto::Address;
///
/// assert_eq!("127.0.0.1:9000".parse::<Address>().unwrap(), Address::Tcp("127.0.0.1:9000".into()));
/// assert_eq!("[::1]:9000".parse::<Address>().unwrap(), Address::Tcp("[::1]:9000".into()));
/// assert_eq!("unix:/run/php/php-fpm.sock".parse::<Address>().unwrap(), Address::Unix("/run/php/php-fpm.sock".into()));
/// assert_eq!("./php.sock".parse::<Address>().unwrap(), Address::Unix("./php.sock".into()));
/// assert!("php.sock".parse::<Address>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// `HOST:PORT` or `[V6]:PORT`; the host is resolved at each connect.
    Tcp(String),
    /// A unix socket's path. It parses on every platform, so that configurations carry
    /// over; connecting to one where there are no unix sockets (Windows) fails with
    /// [`unix_unsupported`].
    Unix(PathBuf),
}

/// The error of a connect to an [`Address::Unix`] on a platform without unix sockets
/// (every adapter gives the same one): [`io::ErrorKind::Unsupported`], with a message
/// that says so. TCP works everywhere; php-cgi on Windows listens on TCP.
///
/// ```
/// let error = fcgi_proto::address::unix_unsupported();
/// assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
/// ```
pub fn unix_unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "unix sockets are not available on this platform (use HOST:PORT)",
    )
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddressError(s.to_owned()));
            }
            return Ok(Address::Unix(path.into()));
        }
        if s.starts_with('/') || s.starts_with("./") {
            return Ok(Address::Unix(s.into()));
        }
        let valid_tcp = match s.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty()
                    && port.parse::<u16>().is_ok()
                    && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
            }
            None => false,
        };
        if !valid_tcp {
            return Err(AddressError(s.to_owned()));
        }
        Ok(Address::Tcp(s.to_owned()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(hostport) => f.write_str(hostport),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl From<std::net::SocketAddr> for Address {
    fn from(addr: std::net::SocketAddr) -> Self {
        Address::Tcp(addr.to_string())
    }
}

impl TryFrom<&str> for Address {
    type Error = AddressError;

    fn try_from(s: &str) -> Result<Self, AddressError> {
        s.parse()
    }
}

/// A string that is not a FastCGI address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError(pub String);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid FastCGI address {:?} (want HOST:PORT, [V6]:PORT, unix:/path or a path starting with / or ./)",
            self.0
        )
    }
}

impl std::error::Error for AddressError {}
