//! Limits and settings of a [`Connection`](crate::Connection), each with a documented
//! default.

/// Settings of one connection.
///
/// ```
/// let mut config = fcgi_proto::Config::default();
/// config.max_head_bytes = 256 * 1024;
/// let conn = fcgi_proto::Connection::new(config);
/// # let _ = conn;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest response head (all headers and the blank line) accepted, in bytes.
    ///
    /// Default 64 KiB: nginx refuses heads over its 4 or 8 KiB buffer with "upstream sent
    /// too big header"; 64 KiB leaves room for large cookies and policies while bounding
    /// what a misbehaving application can make the client hold.
    pub max_head_bytes: usize,
    /// Most `STDERR` bytes delivered per request; the rest is counted in
    /// [`End::stderr_dropped`](crate::End::stderr_dropped), not delivered.
    ///
    /// Default 64 KiB: enough for many log lines, bounded so that a script that logs in a
    /// loop cannot make a caller that keeps stderr grow without end.
    pub max_stderr_bytes: usize,
    /// Most requests in flight at once on the connection.
    ///
    /// Default 1: php-fpm and most servers do not multiplex (a second request waits for
    /// the first). Raise it only for a server that said `FCGI_MPXS_CONNS=1`; see
    /// [`ServerValues::max_concurrent_requests`](crate::ServerValues::max_concurrent_requests).
    pub max_concurrent_requests: u16,
    /// Most received bytes held in events not yet drained with
    /// [`poll_event`](crate::Connection::poll_event).
    ///
    /// Default 1 MiB: a caller that follows the drain rule holds one read's worth; this
    /// stops one that does not from buffering without bound.
    pub max_buffered_input: usize,
    /// Ask the server to keep the connection open after each request (`FCGI_KEEP_CONN`).
    ///
    /// Default `true`: a kept connection saves a connect per request. Without it php-fpm
    /// half-closes after the response and the caller must close promptly.
    pub keep_conn: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_head_bytes: 64 * 1024,
            max_stderr_bytes: 64 * 1024,
            max_concurrent_requests: 1,
            max_buffered_input: 1024 * 1024,
            keep_conn: true,
        }
    }
}
