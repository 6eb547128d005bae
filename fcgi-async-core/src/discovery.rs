//! The `GET_VALUES` probe of [`Options::multiplex`](crate::Options::multiplex): one
//! short-lived connection that asks an upstream whether it multiplexes. It runs in a
//! task of its own, so no request ever waits for it (some servers never answer).

use std::future::poll_fn;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use fcgi_proto::values::{FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS};
use fcgi_proto::{Address, ClientError as Error, Config, Connection, Event, Phase, ServerValues};

use crate::exchange::{Conn, Exchange, OpenGuard, Timeouts};
use crate::runtime::Runtime;

/// What a probe needs, copied out of the client so that the task does not keep it.
pub(crate) struct Probe {
    pub(crate) address: Address,
    pub(crate) text: Arc<str>,
    /// The upstream's index in its client.
    pub(crate) index: usize,
    pub(crate) config: Config,
    pub(crate) timeouts: Timeouts,
    /// Bound on the whole exchange, connect included.
    pub(crate) bound: Duration,
    /// The client's count of open connections.
    pub(crate) open: Arc<AtomicUsize>,
}

impl Probe {
    /// Asks `GET_VALUES` on a connection of its own (never pooled). `None`: the server
    /// does not know `GET_VALUES` (it answered `UNKNOWN_TYPE`).
    pub(crate) async fn run<R: Runtime>(self) -> Result<Option<ServerValues>, Error> {
        let work = async {
            let io = R::connect(&self.address, None).await.map_err(|source| {
                Error::connect_failed(self.text.to_string(), source, self.bound)
            })?;
            let mut conn = Box::new(Conn::<R> {
                io,
                proto: Connection::new(self.config.clone()),
                address: self.text.clone(),
                upstream: self.index,
                received: 0,
                requests: 0,
                idle_since: R::now(),
                read_idle: None,
                write_idle: None,
                _open: OpenGuard::new(&self.open),
            });
            conn.proto
                .get_values(&[FCGI_MPXS_CONNS, FCGI_MAX_REQS, FCGI_MAX_CONNS])
                .map_err(|e| conn.proto_error(e))?;
            let mut exchange = Exchange::management(conn, self.timeouts, None);
            loop {
                match poll_fn(|cx| exchange.poll_event(cx)).await? {
                    Event::Values(values) => return Ok(Some(values)),
                    Event::UnknownType(_) => return Ok(None),
                    _ => {}
                }
            }
        };
        R::timeout(self.bound, work).await.unwrap_or_else(|| {
            Err(Error::Timeout {
                address: self.text.to_string(),
                phase: Phase::Connect,
                after: self.bound,
            })
        })
    }
}
