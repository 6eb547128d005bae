//! Helpers shared by the fuzz targets: how an input's first bytes choose the pieces the
//! rest is fed in, and a checker of the documented event order of a `Connection`.
//!
//! Byte-fed targets read a few control bytes at the front of the input and treat the rest
//! as raw wire bytes, so a seed is a captured exchange behind a short prefix (see
//! `fuzz/README.md`).

use std::collections::{HashMap, VecDeque};

use fcgi_proto::{Event, RequestId};

/// Number of control bytes [`Splits::new`] takes.
pub const SPLIT_CTL_LEN: usize = 2;

/// Chooses the sizes of the pieces an input is fed in, from two control bytes.
///
/// The top two bits of the first byte pick a mode: 0 feeds everything at once; 1 pieces of
/// 1 to 64 bytes; 2 pieces of 1 to 4096 bytes; 3 pieces of 1 to 96 KiB. The low six bits
/// of the first byte and the second byte seed a small pseudo-random generator, which the
/// targets also use for other per-piece choices.
#[derive(Clone, Debug)]
pub struct Splits {
    max: usize,
    state: u32,
}

impl Splits {
    /// Reads the control bytes from the front of `input`; returns the splitter and the
    /// rest of the input. A short input yields "everything at once".
    pub fn new(input: &[u8]) -> (Self, &[u8]) {
        let (ctl, rest) = match input.split_first_chunk::<SPLIT_CTL_LEN>() {
            Some((ctl, rest)) => (*ctl, rest),
            None => ([0, 0], &[][..]),
        };
        let max = match ctl[0] >> 6 {
            0 => usize::MAX,
            1 => 64,
            2 => 4096,
            _ => 96 * 1024,
        };
        let state = (u32::from(ctl[0] & 0x3F) << 8 | u32::from(ctl[1])) ^ 0x9E37_79B9;
        (Self { max, state }, rest)
    }

    /// The next pseudo-random 32-bit number (xorshift32).
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }

    /// The size of the next piece when `remaining` bytes are left (at least 1 when
    /// `remaining > 0`).
    pub fn next_len(&mut self, remaining: usize) -> usize {
        if self.max == usize::MAX {
            return remaining;
        }
        let len = 1 + (self.next_u32() as usize) % self.max;
        len.min(remaining)
    }

    /// Splits `data` into the pieces to feed.
    pub fn pieces<'a>(&mut self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (piece, rest) = data.split_at(self.next_len(data.len()));
            out.push(piece);
            data = rest;
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Started; only `Stderr` so far.
    Start,
    /// `Head` delivered: `Body` and `Stderr` may follow.
    Head,
    /// `HeadError` delivered: only `Stderr` may follow.
    Failed,
    /// Aborted by the caller: only `End` may follow.
    Aborted,
}

/// Checks the event order documented on [`Event`]: per request, `Stderr*`, then
/// `Head (Body | Stderr)*` or `HeadError Stderr*`, then `End`; an aborted request
/// only `End` after the abort; no empty `Body` or `Stderr`; no event for a request that
/// was not started. Also sums the delivered body and stderr bytes.
///
/// An id is free again once the connection has processed its `END_REQUEST`, possibly
/// before the caller drained the `End` event; so each id holds a queue of requests, the
/// oldest one receiving the events.
#[derive(Debug, Default)]
pub struct EventChecker {
    /// Per id: (stage, stderr bytes delivered) of each request not yet seen to end.
    requests: HashMap<u16, VecDeque<(Stage, usize)>>,
    /// Body and stderr bytes delivered in all.
    pub data_bytes: usize,
    /// `Head` events delivered.
    pub heads: usize,
    /// `End` events delivered.
    pub ends: usize,
}

impl EventChecker {
    /// A request was started.
    pub fn started(&mut self, id: RequestId) {
        self.requests
            .entry(id.get())
            .or_default()
            .push_back((Stage::Start, 0));
    }

    /// The caller aborted a request (successfully): the newest request of that id.
    pub fn aborted(&mut self, id: RequestId) {
        let newest = self
            .requests
            .get_mut(&id.get())
            .and_then(|q| q.back_mut())
            .expect("abort succeeded for a request the checker does not know");
        newest.0 = Stage::Aborted;
    }

    /// Requests started whose `End` was not delivered yet.
    pub fn in_flight(&self) -> usize {
        self.requests.values().map(VecDeque::len).sum()
    }

    /// Checks one event; `max_stderr` is the configured per-request stderr limit.
    pub fn event(&mut self, event: &Event, max_stderr: usize) {
        match event {
            Event::Head { id, head } => {
                let (stage, _) = self.oldest(*id);
                assert_eq!(*stage, Stage::Start, "Head for {id} in stage {stage:?}");
                assert!((100..=999).contains(&head.status()));
                *stage = Stage::Head;
                self.heads += 1;
            }
            Event::Body { id, data } => {
                let (stage, _) = self.oldest(*id);
                assert_eq!(*stage, Stage::Head, "Body for {id} in stage {stage:?}");
                assert!(!data.is_empty(), "empty Body");
                self.data_bytes += data.len();
            }
            Event::Stderr { id, data } => {
                let (stage, total) = self.oldest(*id);
                assert_ne!(*stage, Stage::Aborted, "Stderr for aborted {id}");
                assert!(!data.is_empty(), "empty Stderr");
                *total += data.len();
                assert!(
                    *total <= max_stderr,
                    "{total} stderr bytes delivered for {id}, limit {max_stderr}"
                );
                self.data_bytes += data.len();
            }
            Event::HeadError { id, .. } => {
                let (stage, _) = self.oldest(*id);
                assert_eq!(
                    *stage,
                    Stage::Start,
                    "HeadError for {id} in stage {stage:?}"
                );
                *stage = Stage::Failed;
            }
            Event::End { id, .. } => {
                self.oldest(*id);
                let queue = self.requests.get_mut(&id.get()).expect("checked above");
                queue.pop_front();
                if queue.is_empty() {
                    self.requests.remove(&id.get());
                }
                self.ends += 1;
            }
            Event::Values(_) | Event::UnknownType(_) => {}
            other => panic!("an event this checker does not know: {other:?}"),
        }
    }

    fn oldest(&mut self, id: RequestId) -> &mut (Stage, usize) {
        self.requests
            .get_mut(&id.get())
            .and_then(|q| q.front_mut())
            .unwrap_or_else(|| panic!("event for {id}, which is not in flight"))
    }
}
