//! Record-level `tracing` events (feature `tracing`): one event for each record the
//! connection queues or receives, target [`WIRE`], level DEBUG; the params' pairs at
//! TRACE. `fcgi -v` shows them; any subscriber may.
//!
//! They are emitted here, where records are encoded and decoded, so that what a
//! subscriber sees is what went over the wire, written once for every adapter. The
//! core stays free of I/O: an event is a call into `tracing`, which does nothing when
//! no subscriber wants it (one relaxed atomic load per record). Without the feature
//! the calls are not compiled at all.
//!
//! Fields: `dir` (`">"` queued to send, `"<"` received), `record` (the type's name),
//! `id`, `len` (content bytes), and by type: `role` and `keep_conn` (BEGIN_REQUEST),
//! `pairs` (PARAMS), `app_status` and `protocol_status` (END_REQUEST); a pair at TRACE
//! has `name` and `value` (lossy UTF-8).

use crate::params::Params;
use crate::record::{ProtocolStatus, RecordType, Role};

/// The target of every record event.
pub const WIRE: &str = "fcgi::wire";

/// A record queued or received, with its type, request id and content length.
#[inline]
pub(crate) fn record(dir: &'static str, record_type: RecordType, id: u16, len: usize) {
    tracing::debug!(target: WIRE, dir, record = %record_type, id, len);
}

/// `BEGIN_REQUEST` queued.
#[inline]
pub(crate) fn begin_request(id: u16, role: Role, keep_conn: bool) {
    tracing::debug!(
        target: WIRE,
        dir = ">",
        record = "BEGIN_REQUEST",
        id,
        len = 8usize,
        role = role_name(role),
        keep_conn
    );
}

/// The `PARAMS` stream queued (all its records), then at TRACE each pair.
#[inline]
pub(crate) fn params(id: u16, params: &Params) {
    tracing::debug!(
        target: WIRE,
        dir = ">",
        record = "PARAMS",
        id,
        len = params.encoded_len(),
        pairs = params.len()
    );
    if tracing::enabled!(target: WIRE, tracing::Level::TRACE) {
        for (name, value) in params.iter() {
            tracing::trace!(
                target: WIRE,
                id,
                name = %String::from_utf8_lossy(name),
                value = %String::from_utf8_lossy(value)
            );
        }
    }
}

/// `END_REQUEST` received.
#[inline]
pub(crate) fn end_request(id: u16, app_status: u32, protocol_status: ProtocolStatus) {
    tracing::debug!(
        target: WIRE,
        dir = "<",
        record = "END_REQUEST",
        id,
        len = 8usize,
        app_status,
        protocol_status = %protocol_status
    );
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::RESPONDER => "RESPONDER",
        Role::AUTHORIZER => "AUTHORIZER",
        Role::FILTER => "FILTER",
        _ => "unknown",
    }
}
