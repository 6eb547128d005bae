//! The request lifecycle every client shares: the decisions around one request that do
//! not depend on how bytes move, so that the blocking and the async clients make them
//! alike by construction.
//!
//! In the order a request meets them:
//!
//! 1. [`set_content_length`]: the `CONTENT_LENGTH` param from the body.
//! 2. [`must_probe`]: whether a kept connection is checked (a non-blocking read) before
//!    it carries the request.
//! 3. [`AwaitHead`]: the request's events until its response head, and what an
//!    `END_REQUEST` before the head means for the caller ([`end_without_head`]).
//! 4. [`FailedAttempt::may_retry`]: whether a request that failed is sent once more on a
//!    fresh connection.
//!
//! The adapters keep only sockets, timeouts and the pool.

use std::time::Duration;

use bytes::Bytes;

use crate::client_error::ClientError;
use crate::connection::{End, Event};
use crate::error::{HeadError, ParamError};
use crate::params::Params;
use crate::response::ResponseHead;

/// Every client's default bound on opening a connection (10 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Every client's default bound on each wait for the server to send more (60 s, as
/// nginx's `fastcgi_read_timeout`).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Every client's default bound on each wait for the server to take more (60 s, as
/// nginx's `fastcgi_send_timeout`).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Every client's default for the largest response body collected in memory (64 MiB);
/// larger ones are streamed.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Sets `CONTENT_LENGTH` from the body: a body's length is written as `CONTENT_LENGTH`
/// (replacing any the caller set, so that what is declared always equals what is sent);
/// with no body, a `CONTENT_LENGTH` the caller set becomes `"0"`; with neither, the
/// param stays absent.
///
/// ```
/// use fcgi_proto::{lifecycle::set_content_length, Params};
///
/// let mut params = Params::new();
/// set_content_length(&mut params, Some(5))?;
/// assert_eq!(params.get("CONTENT_LENGTH"), Some(&b"5"[..]));
///
/// set_content_length(&mut params, None)?; // the caller's param, but no body
/// assert_eq!(params.get("CONTENT_LENGTH"), Some(&b"0"[..]));
///
/// let mut bare = Params::new();
/// set_content_length(&mut bare, None)?;
/// assert!(!bare.contains("CONTENT_LENGTH"));
/// # Ok::<(), fcgi_proto::ParamError>(())
/// ```
pub fn set_content_length(params: &mut Params, body_len: Option<u64>) -> Result<(), ParamError> {
    match body_len {
        Some(len) => params.insert("CONTENT_LENGTH", len.to_string()),
        None if params.contains("CONTENT_LENGTH") => params.insert("CONTENT_LENGTH", "0"),
        None => Ok(()),
    }
}

/// A kept connection idle at least this long is probed before reuse, whatever the body
/// (servers close idle connections after a while: php-fpm recycling a worker, a
/// server-side idle timeout).
pub const PROBE_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Whether a kept connection, idle for `idle_for`, must be checked before it carries a
/// request whose body is (or is not) replayable: a non-blocking read that must find
/// nothing to read yet; anything else (end of input, an error, bytes out of turn)
/// means the connection is closed, broken or out of step and a new one is opened.
///
/// The rule: probe unless the body can be sent again **and** the connection was in use
/// less than [`PROBE_IDLE_AFTER`] ago.
///
/// - A body that cannot be sent again (a stream) is sent only after a probe: a closed
///   connection found by the request itself would leave it failed, since the retry
///   ([`FailedAttempt::may_retry`]) needs the body again.
/// - A replayable body on a connection used a moment ago goes without a probe: such a
///   connection is rarely closed, and when it is, the failure comes before any
///   response byte and the retry sends the request again on a fresh connection. A busy
///   kept connection thus costs no probe (on a blocking socket, a probe is three system
///   calls: non-blocking on, read, non-blocking off).
/// - A connection idle longer is probed: that is when servers close idle connections,
///   and the probe is cheaper than a failed round trip.
///
/// The same answer whether the pool is async or blocking. A connection the core already
/// knows to be unusable ([`Connection::is_reusable`](crate::Connection::is_reusable)
/// false) is never reused, probe or not.
///
/// ```
/// use std::time::Duration;
/// use fcgi_proto::lifecycle::must_probe;
///
/// assert!(!must_probe(Duration::from_millis(5), true)); // a busy connection, an in-memory body
/// assert!(must_probe(Duration::from_millis(5), false)); // a streamed body: always
/// assert!(must_probe(Duration::from_secs(30), true)); // idle a while: always
/// ```
pub fn must_probe(idle_for: Duration, body_replayable: bool) -> bool {
    !body_replayable || idle_for >= PROBE_IDLE_AFTER
}

/// Whether an error means the connection broke under the request (the transport failed,
/// or the server closed the connection or broke the protocol), as opposed to an answer
/// of the server (a refusal, a bad head), a timeout, a limit or the caller's mistake.
/// Only such a failure is worth another attempt on a fresh connection.
///
/// ```
/// use fcgi_proto::{lifecycle::is_connection_failure, ClientError, ProtocolStatus};
///
/// let reset = ClientError::Io {
///     address: "unix:/run/php.sock".into(),
///     source: std::io::ErrorKind::ConnectionReset.into(),
/// };
/// assert!(is_connection_failure(&reset));
/// let refused = ClientError::Refused {
///     address: "unix:/run/php.sock".into(),
///     status: ProtocolStatus::OVERLOADED,
/// };
/// assert!(!is_connection_failure(&refused));
/// ```
pub fn is_connection_failure(error: &ClientError) -> bool {
    matches!(error, ClientError::Io { .. } | ClientError::Protocol { .. })
}

/// A request attempt that failed, as the retry rule sees it. Every field is an input the
/// adapter knows; [`may_retry`](Self::may_retry) decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailedAttempt {
    /// The connection broke under the request ([`is_connection_failure`] for the error,
    /// or the adapter saw the connection fail).
    pub connection_failed: bool,
    /// The attempt went out on a kept connection, not one opened for it.
    pub reused: bool,
    /// Some of the response (any byte, or any event of the request) arrived.
    pub response_started: bool,
    /// The body can be sent again (it is in memory, not a consumed stream).
    pub body_replayable: bool,
    /// This attempt was already the retry.
    pub already_retried: bool,
}

impl FailedAttempt {
    /// Whether the request is sent once more, on a fresh connection: when a reused
    /// connection broke before any of the response arrived (what a kept connection
    /// closed by the server looks like: a php-fpm worker recycled by `pm.max_requests`),
    /// the body can be sent again, and this was not already the retry.
    ///
    /// The retry goes to a new connection, never to another kept one: the next idle
    /// connection may be as stale as the last (php-fpm workers recycled together close
    /// theirs together).
    ///
    /// ```
    /// use fcgi_proto::lifecycle::FailedAttempt;
    ///
    /// let stale = FailedAttempt {
    ///     connection_failed: true,
    ///     reused: true,
    ///     body_replayable: true,
    ///     ..FailedAttempt::default()
    /// };
    /// assert!(stale.may_retry());
    /// assert!(!FailedAttempt { already_retried: true, ..stale }.may_retry());
    /// assert!(!FailedAttempt { response_started: true, ..stale }.may_retry());
    /// assert!(!FailedAttempt { reused: false, ..stale }.may_retry());
    /// ```
    pub fn may_retry(&self) -> bool {
        self.connection_failed
            && self.reused
            && !self.response_started
            && self.body_replayable
            && !self.already_retried
    }
}

/// What an `END_REQUEST` that came before any response head means for the caller: the
/// server refused the request ([`ClientError::Refused`], with its protocol status), or,
/// after a malformed head ([`Event::HeadError`]), [`ClientError::BadResponse`]. Either
/// way the request ended in step: the connection may carry the next request when the
/// core says it is reusable.
///
/// ```
/// use fcgi_proto::{lifecycle::end_without_head, ClientError};
/// # let end = {
/// #     use fcgi_proto::{Config, Connection, Event, Params};
/// #     let mut conn = Connection::new(Config::default());
/// #     let id = conn.start_request(&Params::new())?;
/// #     conn.finish_stdin(id)?;
/// #     conn.input_buffer()[..16].copy_from_slice(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
/// #     conn.input_written(16)?;
/// #     match conn.poll_event() { Some(Event::End { end, .. }) => end, _ => unreachable!() }
/// # };
/// // `end`: an END_REQUEST with protocol status FCGI_OVERLOADED.
/// let error = end_without_head("unix:/run/php.sock", None, &end);
/// assert!(matches!(error, ClientError::Refused { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn end_without_head(address: &str, head_error: Option<HeadError>, end: &End) -> ClientError {
    let address = address.to_string();
    match head_error {
        Some(source) => ClientError::BadResponse { address, source },
        None => ClientError::Refused {
            address,
            status: end.protocol_status,
        },
    }
}

/// What to do with an event of a request that waits for its response head
/// ([`AwaitHead::on_event`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum HeadStep {
    /// The head arrived: the body follows.
    Head(ResponseHead),
    /// The application's `STDERR`, for the caller.
    Stderr(Bytes),
    /// The request ended without a usable head ([`end_without_head`]); the connection is
    /// still in step.
    Failed(ClientError),
    /// Nothing for the caller: read on.
    Continue,
}

/// A request waiting for its response head: feed it each event of the request; it says
/// what the adapter does with it. After a malformed head it keeps reading to the
/// request's end, so that the connection stays usable.
///
/// ```
/// use fcgi_proto::lifecycle::{AwaitHead, HeadStep};
/// use fcgi_proto::{Config, Connection, Params};
///
/// let mut conn = Connection::new(Config::default());
/// let id = conn.start_request(&Params::new())?;
/// conn.finish_stdin(id)?;
/// let answer = [
///     &[1u8, 6, 0, 1, 0, 21, 0, 0][..],
///     b"Status: 404\r\n\r\ngone\n", // STDOUT: the head and a body
/// ]
/// .concat();
/// conn.input_buffer()[..answer.len()].copy_from_slice(&answer);
/// conn.input_written(answer.len())?;
///
/// let mut wait = AwaitHead::new();
/// let head = loop {
///     let event = conn.poll_event().expect("the canned answer has a head");
///     match wait.on_event(event, "unix:/run/php.sock") {
///         HeadStep::Head(head) => break head,
///         HeadStep::Stderr(data) => eprintln!("{}", String::from_utf8_lossy(&data)),
///         HeadStep::Failed(error) => return Err(error.into()),
///         _ => {}
///     }
/// };
/// assert_eq!(head.status(), 404);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct AwaitHead {
    head_error: Option<HeadError>,
}

impl AwaitHead {
    /// Waiting for a request's head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next event of the request; `address` names the server in an error.
    pub fn on_event(&mut self, event: Event, address: &str) -> HeadStep {
        match event {
            Event::Head { head, .. } => HeadStep::Head(head),
            Event::Stderr { data, .. } => HeadStep::Stderr(data),
            Event::HeadError { error, .. } => {
                self.head_error = Some(error);
                HeadStep::Continue
            }
            Event::End { end, .. } => {
                HeadStep::Failed(end_without_head(address, self.head_error.take(), &end))
            }
            _ => HeadStep::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Connection, ProtocolStatus};

    const ADDRESS: &str = "unix:/run/php.sock";

    /// Feeds `input` to a connection with one request started and its body finished;
    /// answers the events, in order.
    fn events_for(input: &[u8]) -> Vec<Event> {
        let mut conn = Connection::new(Config::default());
        let id = conn.start_request(&Params::new()).unwrap();
        conn.finish_stdin(id).unwrap();
        for byte in input {
            conn.input_buffer()[0] = *byte;
            conn.input_written(1).unwrap();
        }
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    fn record(kind: u8, content: &[u8]) -> Vec<u8> {
        let len = u16::try_from(content.len()).unwrap().to_be_bytes();
        let mut v = vec![1, kind, 0, 1, len[0], len[1], 0, 0];
        v.extend_from_slice(content);
        v
    }

    fn end_record(protocol_status: u8) -> Vec<u8> {
        record(3, &[0, 0, 0, 0, protocol_status, 0, 0, 0])
    }

    /// Feeds `events` to an [`AwaitHead`]: answers the `STDERR` it handed out (the input
    /// goes in a byte at a time, so `STDERR` comes in pieces) and its last step.
    fn run(events: Vec<Event>) -> (Vec<u8>, Option<HeadStep>) {
        let mut wait = AwaitHead::new();
        let mut stderr = Vec::new();
        for event in events {
            match wait.on_event(event, ADDRESS) {
                HeadStep::Stderr(data) => stderr.extend_from_slice(&data),
                HeadStep::Continue => {}
                step => return (stderr, Some(step)),
            }
        }
        (stderr, None)
    }

    #[test]
    fn content_length_follows_the_body() {
        let mut params = Params::new();
        params.insert("CONTENT_LENGTH", "99").unwrap();
        set_content_length(&mut params, Some(3)).unwrap();
        assert_eq!(params.get("CONTENT_LENGTH"), Some(&b"3"[..]));
        set_content_length(&mut params, Some(0)).unwrap();
        assert_eq!(params.get("CONTENT_LENGTH"), Some(&b"0"[..]));

        let mut stated = Params::new();
        stated.insert("CONTENT_LENGTH", "12").unwrap();
        set_content_length(&mut stated, None).unwrap();
        assert_eq!(stated.get("CONTENT_LENGTH"), Some(&b"0"[..]));

        let mut none = Params::new();
        set_content_length(&mut none, None).unwrap();
        assert!(!none.contains("CONTENT_LENGTH"));
        set_content_length(&mut none, Some(u64::MAX)).unwrap();
        assert_eq!(
            params_value(&none, "CONTENT_LENGTH"),
            u64::MAX.to_string().into_bytes()
        );
    }

    fn params_value(params: &Params, name: &str) -> Vec<u8> {
        params.get(name).unwrap().to_vec()
    }

    #[test]
    fn probe_rule() {
        let moment = Duration::from_millis(1);
        assert!(!must_probe(Duration::ZERO, true));
        assert!(!must_probe(moment, true));
        assert!(!must_probe(PROBE_IDLE_AFTER - moment, true));
        assert!(must_probe(PROBE_IDLE_AFTER, true));
        assert!(must_probe(Duration::from_secs(3600), true));
        assert!(must_probe(Duration::ZERO, false));
        assert!(must_probe(PROBE_IDLE_AFTER, false));
    }

    #[test]
    fn connection_failures() {
        let io = ClientError::Io {
            address: ADDRESS.into(),
            source: std::io::ErrorKind::BrokenPipe.into(),
        };
        assert!(is_connection_failure(&io));
        let closed = ClientError::from_connection(
            ADDRESS,
            crate::Error::Protocol(crate::ProtocolError::EofInRequest { in_flight: 1 }),
        );
        assert!(is_connection_failure(&closed));
        let timeout = ClientError::Timeout {
            address: ADDRESS.into(),
            phase: crate::Phase::Read,
            after: Duration::from_secs(1),
        };
        assert!(!is_connection_failure(&timeout));
        let refused = ClientError::Refused {
            address: ADDRESS.into(),
            status: ProtocolStatus::OVERLOADED,
        };
        assert!(!is_connection_failure(&refused));
        let body = ClientError::Body(std::io::ErrorKind::Other.into());
        assert!(!is_connection_failure(&body));
    }

    #[test]
    fn retry_only_a_stale_kept_connection_once() {
        let stale = FailedAttempt {
            connection_failed: true,
            reused: true,
            response_started: false,
            body_replayable: true,
            already_retried: false,
        };
        assert!(stale.may_retry());
        for other in [
            FailedAttempt {
                connection_failed: false,
                ..stale
            },
            FailedAttempt {
                reused: false,
                ..stale
            },
            FailedAttempt {
                response_started: true,
                ..stale
            },
            FailedAttempt {
                body_replayable: false,
                ..stale
            },
            FailedAttempt {
                already_retried: true,
                ..stale
            },
        ] {
            assert!(!other.may_retry(), "{other:?}");
        }
        assert!(!FailedAttempt::default().may_retry());
    }

    #[test]
    fn head_then_body() {
        let mut input = record(7, b"warn");
        input.extend(record(6, b"Status: 201\r\n\r\nok"));
        input.extend(end_record(0));
        let (stderr, last) = run(events_for(&input));
        assert_eq!(stderr, b"warn");
        assert!(matches!(last, Some(HeadStep::Head(h)) if h.status() == 201));
    }

    #[test]
    fn end_before_head_is_a_refusal() {
        for (status, expected) in [
            (1, ProtocolStatus::CANT_MPX_CONN),
            (2, ProtocolStatus::OVERLOADED),
            (3, ProtocolStatus::UNKNOWN_ROLE),
        ] {
            let (stderr, last) = run(events_for(&end_record(status)));
            assert!(stderr.is_empty());
            match last {
                Some(HeadStep::Failed(ClientError::Refused { address, status })) => {
                    assert_eq!(address, ADDRESS);
                    assert_eq!(status, expected);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_bad_head_reads_to_the_end() {
        let mut input = record(6, b"no colon here\r\n\r\nbody");
        input.extend(record(7, b"late"));
        input.extend(end_record(0));
        let events = events_for(&input);
        assert!(events.iter().any(|e| matches!(e, Event::HeadError { .. })));
        let (stderr, last) = run(events);
        assert_eq!(stderr, b"late");
        assert!(matches!(
            last,
            Some(HeadStep::Failed(ClientError::BadResponse { .. }))
        ));
    }

    #[test]
    fn events_of_no_interest_are_passed_over() {
        let mut wait = AwaitHead::new();
        let mut input = record(6, b"Status: 200\r\n\r\nbody");
        input.extend(end_record(0));
        let mut events = events_for(&input).into_iter();
        assert!(matches!(
            wait.on_event(events.next().unwrap(), ADDRESS),
            HeadStep::Head(_)
        ));
        // After the head: a body, then the end, as a confused caller might feed them.
        let body = events.next().unwrap();
        assert!(matches!(body, Event::Body { .. }));
        assert!(matches!(wait.on_event(body, ADDRESS), HeadStep::Continue));
    }
}
