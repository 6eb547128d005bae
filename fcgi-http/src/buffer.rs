//! Response buffering: a FastCGI response read at the upstream's speed into memory,
//! then into a temporary file, while the HTTP client reads it at its own speed; the
//! FastCGI connection goes back to the pool at `END_REQUEST`, not when the slowest
//! client has read the last byte (nginx's `fastcgi_buffering`).
//!
//! One task (the filler) reads the [`ResponseStream`] and appends to a queue of
//! segments, in order: bytes in memory while the response's memory bound allows, else
//! ranges of an anonymous temporary file while the file bounds allow, else it waits
//! for the client to take some memory (the response then streams: the upstream
//! waits). Once part of the response is in the file, what follows goes there too
//! while it has room: memory is for the response's start (and for the stream past
//! the file's bounds).
//!
//! A chunk of the stream is a slice of the FastCGI connection's input buffer (64-256
//! KiB), and keeps all of that buffer alive while it is queued. Chunks smaller than
//! [`COPY_BELOW`] are copied before they are queued in memory: php-fpm sends a 64 KiB
//! `flush()` as a record of 65528 bytes and one of 8, and without the copy each queued
//! 8-byte chunk held a buffer of its own (386 of them at once, 26 MiB, for a 256 MiB
//! response whose small chunks went to memory while the large ones went to the file). The [`ResponseBody`](crate::ResponseBody) takes segments from the front as
//! they come, so a buffered response reaches the client as soon as a streamed one.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use fcgi_tokio::ResponseStream;
use tokio::sync::Notify;

use crate::body::drain;

/// The largest piece read from the temporary file at a time.
const FILE_PIECE: u64 = 64 * 1024;
/// Chunks smaller than this are copied before they are queued in memory, so that a
/// queued chunk never keeps a FastCGI input buffer much larger than itself alive.
const COPY_BELOW: usize = 16 * 1024;

/// The bounds of response buffering, shared by the responses of one service.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Memory per response.
    pub(crate) memory: usize,
    /// Temporary file bytes per response.
    pub(crate) file: u64,
    /// Temporary file bytes of all responses together.
    pub(crate) total: u64,
    /// Temporary file bytes in use now, by all responses.
    pub(crate) in_use: AtomicU64,
}

enum Segment {
    Memory(Bytes),
    File { at: u64, len: u64 },
}

enum End {
    Done,
    Failed(fcgi_tokio::Error),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Segment>,
    /// Bytes of the `Memory` segments queued.
    memory: usize,
    /// Bytes of the `File` segments queued.
    file_queued: u64,
    file: Option<Arc<std::fs::File>>,
    end: Option<End>,
    /// The body, waiting for a segment.
    waker: Option<Waker>,
    /// The body has been dropped.
    gone: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The body took memory, or went away.
    progress: Notify,
    limits: Arc<Limits>,
    /// Temporary file bytes this response holds of `limits.in_use`.
    reserved: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held leaves a queue that is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let reserved = *self.reserved.get_mut();
        self.limits.in_use.fetch_sub(reserved, Ordering::Relaxed);
    }
}

/// The reading end: what [`ResponseBody`](crate::ResponseBody) polls.
pub(crate) struct Buffered {
    shared: Arc<Shared>,
    /// Where pieces of the file are read: its allocation is reused once hyper has
    /// sent (and dropped) the piece before.
    read_buf: BytesMut,
}

impl Drop for Buffered {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.gone = true;
        state.queue.clear();
        state.memory = 0;
        state.file_queued = 0;
        drop(state);
        self.shared.progress.notify_one();
    }
}

impl Buffered {
    /// Starts buffering `stream`, whose first chunks (`ready`, read already) lead.
    /// Needs a tokio runtime.
    pub(crate) fn start(stream: ResponseStream, ready: Vec<Bytes>, limits: Arc<Limits>) -> Self {
        let this = Self::new(ready, None, limits);
        tokio::spawn(fill(stream, this.shared.clone()));
        this
    }

    /// A response that failed after these chunks.
    pub(crate) fn failed(ready: Vec<Bytes>, error: fcgi_tokio::Error, limits: Arc<Limits>) -> Self {
        Self::new(ready, Some(End::Failed(error)), limits)
    }

    fn new(ready: Vec<Bytes>, end: Option<End>, limits: Arc<Limits>) -> Self {
        let mut state = State {
            end,
            ..State::default()
        };
        for chunk in ready {
            state.memory += chunk.len();
            state.queue.push_back(Segment::Memory(chunk));
        }
        Self {
            read_buf: BytesMut::new(),
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                progress: Notify::new(),
                limits,
                reserved: AtomicU64::new(0),
            }),
        }
    }

    /// The next piece of the response, in order.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BufferError>>> {
        let mut state = self.shared.lock();
        match state.queue.front_mut() {
            Some(Segment::Memory(_)) => {
                let Some(Segment::Memory(bytes)) = state.queue.pop_front() else {
                    unreachable!("the front segment was just seen to be in memory");
                };
                state.memory -= bytes.len();
                drop(state);
                self.shared.progress.notify_one();
                Poll::Ready(Some(Ok(bytes)))
            }
            Some(Segment::File { at, len }) => {
                let piece = (*len).min(FILE_PIECE);
                let from = *at;
                *at += piece;
                *len -= piece;
                if *len == 0 {
                    state.queue.pop_front();
                }
                state.file_queued -= piece;
                let Some(file) = state.file.clone() else {
                    unreachable!("file segments are queued after the file is made");
                };
                drop(state);
                // From the page cache, as the gateway reads small static files: on
                // this thread.
                self.read_buf.resize(piece as usize, 0);
                match read_at(&file, &mut self.read_buf, from) {
                    Ok(()) => Poll::Ready(Some(Ok(self.read_buf.split().freeze()))),
                    Err(e) => Poll::Ready(Some(Err(BufferError::TempFile(e)))),
                }
            }
            None => match state.end.take() {
                Some(End::Done) => {
                    state.end = Some(End::Done);
                    Poll::Ready(None)
                }
                Some(End::Failed(e)) => {
                    state.end = Some(End::Done);
                    Poll::Ready(Some(Err(BufferError::Upstream(e))))
                }
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
        }
    }
}

/// Why a buffered response was cut short.
#[derive(Debug)]
pub(crate) enum BufferError {
    /// The FastCGI response failed.
    Upstream(fcgi_tokio::Error),
    /// The temporary file could not be read back.
    TempFile(io::Error),
}

/// Reads `stream` to its end into `shared`'s queue; stops (and drains `stream` as an
/// unread response is drained) when the body goes away.
async fn fill(mut stream: ResponseStream, shared: Arc<Shared>) {
    let mut written = 0u64;
    let mut file_failed = false;
    loop {
        let chunk = {
            let mut gone = std::pin::pin!(gone(&shared));
            std::future::poll_fn(|cx| {
                if gone.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                stream.poll_chunk(cx).map(Some)
            })
            .await
        };
        let Some(chunk) = chunk else {
            drain(stream);
            return;
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                finish(&shared, End::Done);
                return;
            }
            Err(e) => {
                finish(&shared, End::Failed(e));
                return;
            }
        };
        loop {
            match place(&shared, &chunk, &mut written, &mut file_failed) {
                Placed::Queued => break,
                Placed::Gone => {
                    drain(stream);
                    return;
                }
                // Neither memory nor the file: wait for the client to take some (the
                // response streams).
                Placed::Full(progress) => progress.await,
            }
        }
    }
}

/// What became of a chunk.
enum Placed<'a> {
    /// In memory or the temporary file.
    Queued,
    /// The body is gone.
    Gone,
    /// No room: try again when this completes (enabled before the queue was seen).
    Full(Pin<Box<tokio::sync::futures::Notified<'a>>>),
}

/// Queues `chunk` in memory or the temporary file, if either has room.
fn place<'a>(
    shared: &'a Shared,
    chunk: &Bytes,
    written: &mut u64,
    file_failed: &mut bool,
) -> Placed<'a> {
    let limits = &shared.limits;
    let len = chunk.len();
    let mut progress = Box::pin(shared.progress.notified());
    progress.as_mut().enable();
    let mut state = shared.lock();
    if state.gone {
        return Placed::Gone;
    }
    let memory_room = state.memory == 0 || state.memory + len <= limits.memory;
    if memory_room && state.file_queued == 0 {
        return in_memory(state, chunk);
    }
    let fits = !*file_failed
        && *written + len as u64 <= limits.file
        && limits
            .in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + len as u64 <= limits.total).then_some(used + len as u64)
            })
            .is_ok();
    if !fits {
        // Past the file's bounds, memory (behind the file) or a wait: the stream.
        return if memory_room {
            in_memory(state, chunk)
        } else {
            Placed::Full(progress)
        };
    }
    shared.reserved.fetch_add(len as u64, Ordering::Relaxed);
    let file = match &state.file {
        Some(file) => Ok(file.clone()),
        None => tempfile::tempfile().map(|f| {
            let f = Arc::new(f);
            state.file = Some(f.clone());
            f
        }),
    };
    drop(state);
    // To the page cache, as the gateway reads small static files: on this thread.
    match file.and_then(|f| write_at(&f, chunk, *written)) {
        Ok(()) => {
            let at = *written;
            *written += len as u64;
            let mut state = shared.lock();
            state.file_queued += len as u64;
            match state.queue.back_mut() {
                Some(Segment::File {
                    at: last,
                    len: last_len,
                }) if *last + *last_len == at => *last_len += len as u64,
                _ => state.queue.push_back(Segment::File {
                    at,
                    len: len as u64,
                }),
            }
            wake(state);
            Placed::Queued
        }
        Err(e) => {
            tracing::warn!(
                target: "fcgi_http",
                "cannot buffer a response in a temporary file, streaming it: {e}"
            );
            *file_failed = true;
            place(shared, chunk, written, file_failed)
        }
    }
}

/// Queues `chunk` in memory (a copy when it is small: see [`COPY_BELOW`]).
fn in_memory<'a>(mut state: MutexGuard<'_, State>, chunk: &Bytes) -> Placed<'a> {
    let chunk = if chunk.len() < COPY_BELOW {
        Bytes::copy_from_slice(chunk)
    } else {
        chunk.clone()
    };
    state.memory += chunk.len();
    state.queue.push_back(Segment::Memory(chunk));
    wake(state);
    Placed::Queued
}

/// Completes when the body has gone away.
async fn gone(shared: &Shared) {
    loop {
        let progress = shared.progress.notified();
        if shared.lock().gone {
            return;
        }
        progress.await;
    }
}

fn finish(shared: &Shared, end: End) {
    let mut state = shared.lock();
    state.end = Some(end);
    wake(state);
}

fn wake(mut state: MutexGuard<'_, State>) {
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(unix)]
fn write_at(file: &std::fs::File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn write_at(_file: &std::fs::File, _bytes: &[u8], _at: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "positional writes are unix only",
    ))
}

#[cfg(not(unix))]
fn read_at(_file: &std::fs::File, _buf: &mut [u8], _at: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "positional reads are unix only",
    ))
}
