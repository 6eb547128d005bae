//! A unix socket on tokio's reactor that waits for writability only once a write has had
//! to wait.
//!
//! tokio's own `UnixStream` registers every socket for both readability and
//! writability. On a unix socket the kernel signals writability again each time the peer
//! reads (`unix_write_space`), so a client that sends a request and waits for the answer
//! is woken once when php-fpm reads the request and again when the answer comes: two
//! thread wake-ups and `epoll_wait`s per request instead of one. (TCP signals
//! writability only after a write found the buffer full, so `TcpStream` is left as it
//! is.) This socket registers for readability alone and adds writability the first time
//! a write would block (a body larger than the socket buffer), for the rest of the
//! connection's life. `scripts/bench` measures the difference: the raw tokio floor with
//! read interest only costs ~0.7x the CPU per small request of the one on tokio's
//! `UnixStream` (BENCHMARKS.md).
//!
//! tokio's `AsyncFd` has no safe way to register a descriptor nor to read into a
//! `BytesMut`'s spare capacity, hence the two `unsafe` blocks below, each with the
//! reason it holds.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixStream;

/// A connected unix socket, registered with tokio's reactor for readability, and for
/// writability too once a write has had to wait.
#[derive(Debug)]
pub struct UnixSocket {
    fd: AsyncFd<StdUnixStream>,
    /// Whether the registration covers writability.
    writable: bool,
}

impl UnixSocket {
    /// Takes over a socket connected by tokio, registered for readability alone.
    pub(crate) fn new(stream: UnixStream) -> io::Result<Self> {
        Ok(Self {
            fd: register(stream.into_std()?, Interest::READABLE)?,
            writable: false,
        })
    }

    /// Reads into `buf`, waiting for readability.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, buf.len(), |s| (&*s).read(buf))
    }

    /// Appends to the spare capacity of `buf` (the caller leaves at least one byte of
    /// it), zeroing nothing, waiting for readability.
    pub(crate) fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let room = buf.capacity() - buf.len();
        self.poll_read_with(cx, room, |s| {
            let n = socket2::SockRef::from(s).recv(buf.spare_capacity_mut())?;
            // SAFETY: `recv` initialized the first `n` bytes of the spare capacity it was
            // given (socket2 reports how many the kernel wrote, never more than the
            // slice), so the first `len + n` bytes of `buf` are initialized.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_len(buf.len() + n);
            }
            Ok(n)
        })
    }

    /// Runs `read` once the socket is readable, until it does not find the socket empty.
    /// A read shorter than `room` drained the socket: its readiness is cleared then, as
    /// tokio's own streams do, so the next read waits for the reactor instead of trying
    /// the socket for nothing.
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        room: usize,
        mut read: impl FnMut(&StdUnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| read(fd.get_ref())) {
                Ok(Ok(n)) => {
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // `WouldBlock`: the readiness is cleared; wait for the next.
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes from `bufs` in turn, as much as the socket takes: straight away while the
    /// socket has room, else (once registered for writability) when it has.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = |s: &StdUnixStream| match bufs {
            // One slice by a plain write: the kernel's `sendto` path is shorter than
            // `writev`'s, which copies in an iovec array first.
            [one] => (&*s).write(one),
            _ => (&*s).write_vectored(bufs),
        };
        if !self.writable {
            match write(self.fd.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
            // The socket is full: from now on the reactor watches writability too. The
            // new registration starts with the socket's current readiness, but a waker
            // left on the old one for readability is gone: the task is woken to poll
            // its read again.
            self.reregister_writable()?;
            cx.waker().wake_by_ref();
        }
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| write(fd.get_ref())) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn reregister_writable(&mut self) -> io::Result<()> {
        // `AsyncFd` cannot change its interest: a duplicate of the descriptor (the same
        // socket) is registered for both, then the first one dropped, which deregisters
        // and closes it.
        let both = Interest::READABLE | Interest::WRITABLE;
        self.fd = register(self.fd.get_ref().try_clone()?, both)?;
        self.writable = true;
        Ok(())
    }

    /// A read that never waits: `Ok(0)` is end of input, `WouldBlock` nothing yet.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.get_ref().read(buf)
    }
}

fn register(stream: StdUnixStream, interest: Interest) -> io::Result<AsyncFd<StdUnixStream>> {
    // SAFETY: a std `UnixStream` owns its descriptor: it stays open and refers to the same
    // socket until the stream is dropped or taken back with `into_inner`, and `as_raw_fd`
    // always answers that descriptor, which is what `register_with_interest` requires.
    #[allow(unsafe_code)]
    let fd = unsafe { AsyncFd::register_with_interest(stream, interest) };
    Ok(fd?)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::future::poll_fn;
    use std::io::{IoSlice, Read, Write};
    use std::os::unix::net::UnixStream as StdUnixStream;
    use std::sync::mpsc;

    use bytes::BytesMut;

    use super::UnixSocket;

    /// This thread's id, from `/proc/thread-self` (`PID/task/TID`).
    fn own_tid() -> String {
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        link.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// How often thread `tid` of this process has given up its CPU to wait.
    fn voluntary_switches(tid: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap();
        line.trim().parse().unwrap()
    }

    /// A socket of a connected pair, on a current-thread runtime with its reactor, and
    /// the other end.
    fn pair() -> (tokio::runtime::Runtime, UnixSocket, StdUnixStream) {
        let (ours, theirs) = StdUnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let socket = runtime.block_on(async {
            UnixSocket::new(tokio::net::UnixStream::from_std(ours).unwrap()).unwrap()
        });
        (runtime, socket, theirs)
    }

    /// Returns once thread `tid` sleeps (state `S`, waiting in the reactor here).
    fn until_asleep(tid: &str) {
        loop {
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
            // The state follows the command name, which is in parentheses.
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            if state == Some("S") {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// The peer reading the request makes the socket writable again; a socket waiting
    /// for its answer is not woken by that, only by the answer: one sleep per exchange.
    #[test]
    fn a_request_sleeps_once_until_its_answer_not_again_when_the_peer_reads_it() {
        let (runtime, mut socket, mut theirs) = pair();
        let tid = own_tid();
        let (sent, on_sent) = mpsc::channel::<()>();
        let peer = std::thread::spawn({
            let tid = tid.clone();
            move || {
                on_sent.recv().unwrap();
                // Read the request only once the client waits for its answer, and answer
                // only once it waits again (if reading woke it, it has slept again by
                // then, and counted a second sleep).
                until_asleep(&tid);
                let mut request = [0u8; 7];
                theirs.read_exact(&mut request).unwrap();
                until_asleep(&tid);
                theirs.write_all(b"answer").unwrap();
                request
            }
        });
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let written = socket.poll_write(&mut cx, &[IoSlice::new(b"request")]);
        assert!(matches!(written, std::task::Poll::Ready(Ok(7))));
        let before = voluntary_switches(&tid);
        sent.send(()).unwrap();
        let mut input = BytesMut::with_capacity(64);
        let n = runtime
            .block_on(poll_fn(|cx| socket.poll_read_buf(cx, &mut input)))
            .unwrap();
        let slept = voluntary_switches(&tid) - before;
        assert_eq!((n, &input[..]), (6, &b"answer"[..]));
        assert_eq!(&peer.join().unwrap(), b"request");
        assert_eq!(
            slept, 1,
            "the thread slept {slept} times waiting for one answer"
        );
    }

    /// A write larger than the socket buffer waits for room (the socket is registered
    /// for writability then) and arrives whole, and reads go on as before.
    #[test]
    fn a_write_that_fills_the_socket_waits_for_room_and_arrives_whole() {
        let (runtime, mut socket, mut theirs) = pair();
        let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let peer = std::thread::spawn(move || {
            let mut got = vec![0u8; 8 * 1024 * 1024];
            theirs.read_exact(&mut got).unwrap();
            theirs.write_all(b"done").unwrap();
            got
        });
        let input = runtime.block_on(async {
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = poll_fn(|cx| socket.poll_write(cx, &[IoSlice::new(rest)]))
                    .await
                    .unwrap();
                rest = &rest[n..];
            }
            assert!(socket.writable, "the socket filled and waited for room");
            let mut input = BytesMut::with_capacity(64);
            while input.len() < 4 {
                poll_fn(|cx| socket.poll_read_buf(cx, &mut input))
                    .await
                    .unwrap();
            }
            input
        });
        assert_eq!(&input[..], b"done");
        assert!(peer.join().unwrap() == body, "the body arrived changed");
    }
}
