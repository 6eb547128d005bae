//! The client side: one client kind running one workload in this (child) process, timed
//! by a [`Meter`] around the measured loop only (after a warm-up).
//!
//! Every client gets the same prebuilt request and clones it per request, as its API
//! takes it (fcgi's `Params`, fastcgi-client's `Params`); the raw floor sends bytes it
//! encoded once.

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use fcgi_proto::{Address, Config, Connection, Params, ParamsBuilder};

use crate::meter::Meter;

/// A client under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// One pre-encoded request, one write, read until END_REQUEST: the floor.
    Raw,
    /// The same on tokio's `UnixStream` and runtime: the floor of tokio clients.
    RawTokio,
    /// The same on tokio's runtime, its socket registered for readability alone (as
    /// fcgi-tokio registers unix sockets), not for both as tokio's `UnixStream` is.
    RawTokioReadable,
    /// The same on async-io's `Async<UnixStream>` under async-std's executor: the floor
    /// of futures-io clients.
    RawAsyncIo,
    /// raw-async-io with one timer pending in async-io's reactor, as in any program with
    /// a timeout set (fcgi-async-std's read timeout is one).
    RawAsyncIoTimer,
    /// fcgi-blocking.
    Blocking,
    /// fcgi-tokio.
    Tokio,
    /// fcgi-async-std, on async-std.
    AsyncStd,
    /// The `fcgi` binary's load mode (`-n N -c 1 --connections 1`, `-c 32 --connections
    /// 32` for the concurrent workload), run as a process of its own.
    FcgiLoad,
    /// The `fastcgi-client` crate (latest release), over tokio.
    FastcgiClient,
}

impl Kind {
    /// Every kind, in the order of the tables (the floor first).
    pub(crate) const ALL: &'static [Kind] = &[
        Kind::Raw,
        Kind::RawTokio,
        Kind::RawTokioReadable,
        Kind::RawAsyncIo,
        Kind::RawAsyncIoTimer,
        Kind::Blocking,
        Kind::Tokio,
        Kind::AsyncStd,
        Kind::FcgiLoad,
        Kind::FastcgiClient,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw-floor",
            Kind::RawTokio => "raw-tokio",
            Kind::RawTokioReadable => "raw-tokio-readable",
            Kind::RawAsyncIo => "raw-async-io",
            Kind::RawAsyncIoTimer => "raw-async-io-timer",
            Kind::Blocking => "fcgi-blocking",
            Kind::Tokio => "fcgi-tokio",
            Kind::AsyncStd => "fcgi-async-std",
            Kind::FcgiLoad => "fcgi-load",
            Kind::FastcgiClient => "fastcgi-client",
        }
    }

    /// The floor on the same runtime and socket: what this client's CPU is held against
    /// in "CPU vs its runtime's floor".
    pub(crate) fn floor(self) -> Kind {
        match self {
            Kind::Raw | Kind::Blocking => Kind::Raw,
            Kind::RawTokio
            | Kind::RawTokioReadable
            | Kind::Tokio
            | Kind::FcgiLoad
            | Kind::FastcgiClient => Kind::RawTokio,
            Kind::RawAsyncIo | Kind::RawAsyncIoTimer | Kind::AsyncStd => Kind::RawAsyncIo,
        }
    }

    /// Whether this kind runs `workload`: the async floors and the load mode measure
    /// small requests only.
    pub(crate) fn runs(self, workload: Workload) -> bool {
        match self {
            Kind::RawTokio
            | Kind::RawTokioReadable
            | Kind::RawAsyncIo
            | Kind::RawAsyncIoTimer
            | Kind::FcgiLoad => {
                matches!(workload, Workload::Seq | Workload::Concurrent)
            }
            _ => true,
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Workload {
    /// `n` small requests (hello.php) one after another on a kept connection.
    Seq,
    /// `n` small requests from 32 concurrent tasks (threads for the blocking clients),
    /// each with its own kept connection.
    Concurrent,
    /// `n` responses of `bytes` bytes each (big.php), streamed and counted.
    Large,
    /// `n` uploads of `bytes` bytes each (PUT to sink.php, which reads and counts them).
    Upload,
}

impl Workload {
    pub(crate) const ALL: &'static [Workload] = &[
        Workload::Seq,
        Workload::Concurrent,
        Workload::Large,
        Workload::Upload,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Seq => "seq",
            Workload::Concurrent => "concurrent",
            Workload::Large => "large",
            Workload::Upload => "upload",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.iter().copied().find(|w| w.name() == name)
    }
}

/// Tasks (or threads) of the concurrent workload.
pub(crate) const TASKS: usize = 32;

/// Streams the body of `big.php?bytes=N`: N bytes of `x`, echoed in 64 KiB pieces.
pub(crate) const BIG_PHP: &str = r#"<?php
$n = max(0, (int) ($_GET['bytes'] ?? 0));
header('Content-Type: application/octet-stream');
$chunk = str_repeat('x', 65536);
while ($n >= 65536) {
    echo $chunk;
    $n -= 65536;
}
if ($n > 0) {
    echo substr($chunk, 0, $n);
}
"#;

/// Reads the request body in 1 MiB pieces and answers its length.
pub(crate) const SINK_PHP: &str = r#"<?php
$in = fopen('php://input', 'rb');
$len = 0;
while (($chunk = fread($in, 1048576)) !== false && $chunk !== '') {
    $len += strlen($chunk);
}
echo $len;
"#;

/// What one child runs.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) kind: Kind,
    pub(crate) workload: Workload,
    pub(crate) socket: PathBuf,
    pub(crate) docroot: PathBuf,
    /// Measured requests (0: only the warm-up, the baseline for syscall counts).
    pub(crate) n: u64,
    /// Response or upload size of the large and upload workloads.
    pub(crate) bytes: u64,
    /// Warm-up requests before the measured ones.
    pub(crate) warmup: u64,
}

/// The request of a workload, as fcgi `Params` (method, URI, script; upload: the length).
fn params(job: &Job) -> Params {
    let (method, uri, script) = match job.workload {
        Workload::Seq | Workload::Concurrent => ("GET", "/hello.php".to_owned(), "hello.php"),
        Workload::Large => ("GET", format!("/big.php?bytes={}", job.bytes), "big.php"),
        Workload::Upload => ("PUT", "/sink.php".to_owned(), "sink.php"),
    };
    let filename = job.docroot.join(script);
    let filename = filename.to_str().expect("UTF-8 docroot");
    let path = uri.split('?').next().unwrap_or(&uri).to_owned();
    let mut params = ParamsBuilder::new(method, &uri)
        .script(&path, filename)
        .build()
        .expect("params");
    if job.workload == Workload::Upload {
        params
            .insert("CONTENT_LENGTH", job.bytes.to_string())
            .expect("a valid param");
    }
    params
}

/// The body of an upload: `bytes` bytes in memory, shared by every client.
fn upload_body(job: &Job) -> Bytes {
    Bytes::from(vec![b'u'; job.bytes as usize])
}

const HELLO: &[u8] = b"Hello, World!";

/// Runs a job and prints its `result` line.
pub(crate) fn run(job: &Job) {
    match job.kind {
        Kind::Raw => raw::run(job),
        Kind::RawTokio => raw_tokio::run(job),
        Kind::RawTokioReadable => raw_tokio_readable::run(job),
        Kind::RawAsyncIo | Kind::RawAsyncIoTimer => raw_async_io::run(job),
        Kind::FcgiLoad => fcgi_load::run(job),
        Kind::Blocking => blocking::run(job),
        Kind::Tokio => tokio_client::run(job),
        Kind::AsyncStd => async_std_client::run(job),
        Kind::FastcgiClient => fastcgi_client_crate::run(job),
    }
}

/// Runs `per_thread` on [`TASKS`] threads, each warmed up before the measured start.
/// The sequential workload for a blocking client: `one` request at a time on `client`,
/// the warm-up, then the measured `job.n`.
fn sequential<C>(job: &Job, client: &mut C, one: fn(&mut C)) {
    for _ in 0..job.warmup {
        one(client);
    }
    let meter = Meter::start();
    for _ in 0..job.n {
        one(client);
    }
    meter.finish(job.n, 0);
}

fn threads<C: Send + 'static>(
    job: &Job,
    connect: impl Fn() -> C,
    one: fn(&mut C),
) -> (Meter, Vec<std::thread::JoinHandle<()>>) {
    let barrier = Arc::new(Barrier::new(TASKS + 1));
    let per = job.n / TASKS as u64;
    let warmup = job.warmup / TASKS as u64 + 1;
    let handles = (0..TASKS)
        .map(|_| {
            let mut client = connect();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                for _ in 0..warmup {
                    one(&mut client);
                }
                barrier.wait();
                for _ in 0..per {
                    one(&mut client);
                }
            })
        })
        .collect();
    barrier.wait();
    (Meter::start(), handles)
}

fn join(meter: Meter, handles: Vec<std::thread::JoinHandle<()>>, requests: u64) {
    for handle in handles {
        handle.join().expect("client thread");
    }
    meter.finish(requests, 0);
}

/// The floor: pre-encoded bytes, one write, a scan for END_REQUEST.
mod raw {
    use super::*;

    /// Walks record headers to find the end of END_REQUEST; counts STDOUT content bytes.
    /// Parses nothing else.
    #[derive(Default)]
    pub(super) struct EndScan {
        header: [u8; 8],
        have: usize,
        in_record: bool,
        kind: u8,
        content: usize,
        padding: usize,
        pub(super) stdout: u64,
    }

    impl EndScan {
        /// Feeds received bytes; true once END_REQUEST (content and padding) has arrived.
        pub(super) fn feed(&mut self, mut data: &[u8]) -> bool {
            loop {
                if self.in_record {
                    let n = self.content.min(data.len());
                    if self.kind == 6 {
                        self.stdout += n as u64;
                    }
                    self.content -= n;
                    data = &data[n..];
                    let p = self.padding.min(data.len());
                    self.padding -= p;
                    data = &data[p..];
                    if self.content > 0 || self.padding > 0 {
                        return false;
                    }
                    self.in_record = false;
                    if self.kind == 3 {
                        return true;
                    }
                }
                if data.is_empty() {
                    return false;
                }
                let n = (8 - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have < 8 {
                    return false;
                }
                self.have = 0;
                let h = self.header;
                self.kind = h[1];
                self.content = usize::from(u16::from_be_bytes([h[4], h[5]]));
                self.padding = usize::from(h[6]);
                self.in_record = true;
            }
        }
    }

    /// The whole request as one buffer.
    pub(super) fn encode(params: &Params, body: Option<Bytes>) -> Vec<u8> {
        let mut conn = Connection::new(Config::default());
        let id = conn.start_request(params).expect("starts");
        if let Some(body) = body {
            conn.send_stdin(id, body).expect("body");
        }
        conn.finish_stdin(id).expect("ends");
        let mut wire = Vec::with_capacity(conn.transmit_len());
        for chunk in conn.transmit_chunks() {
            wire.extend_from_slice(chunk);
        }
        wire
    }

    struct Raw {
        stream: UnixStream,
        wire: Vec<u8>,
        buf: Vec<u8>,
    }

    impl Raw {
        fn connect(socket: &Path, wire: Vec<u8>, buf_len: usize) -> Self {
            Self {
                stream: UnixStream::connect(socket).expect("connect"),
                wire,
                buf: vec![0; buf_len],
            }
        }

        /// One exchange; answers the STDOUT bytes (head included).
        fn exchange(&mut self) -> u64 {
            self.stream.write_all(&self.wire).expect("write");
            let mut scan = EndScan::default();
            loop {
                let n = self.stream.read(&mut self.buf).expect("read");
                assert!(n > 0, "php-fpm closed the connection");
                if scan.feed(&self.buf[..n]) {
                    return scan.stdout;
                }
            }
        }
    }

    fn small(client: &mut Raw) {
        let stdout = client.exchange();
        assert!(stdout > HELLO.len() as u64);
    }

    pub(super) fn run(job: &Job) {
        let params = params(job);
        let socket = job.socket.clone();
        match job.workload {
            Workload::Seq => {
                let mut client = Raw::connect(&socket, encode(&params, None), 64 * 1024);
                sequential(job, &mut client, small);
            }
            Workload::Concurrent => {
                let wire = encode(&params, None);
                let (meter, handles) = threads(
                    job,
                    || Raw::connect(&socket, wire.clone(), 64 * 1024),
                    small,
                );
                join(meter, handles, job.n / TASKS as u64 * TASKS as u64);
            }
            Workload::Large => {
                let mut client = Raw::connect(&socket, encode(&params, None), 256 * 1024);
                let meter = Meter::start();
                for _ in 0..job.n {
                    assert!(client.exchange() >= job.bytes);
                }
                meter.finish(job.n, job.n * job.bytes);
            }
            Workload::Upload => {
                let wire = encode(&params, Some(upload_body(job)));
                let mut client = Raw::connect(&socket, wire, 64 * 1024);
                let meter = Meter::start();
                for _ in 0..job.n {
                    client.exchange();
                }
                meter.finish(job.n, job.n * job.bytes);
            }
        }
    }
}

mod blocking {
    use super::*;
    use fcgi_blocking::{Client, Request};

    fn small(client: &mut (Client, Params)) {
        let response = client
            .0
            .request(Request::new(client.1.clone()))
            .expect("request");
        assert_eq!(response.body, HELLO);
    }

    pub(super) fn run(job: &Job) {
        let params = params(job);
        let address = Address::Unix(job.socket.clone());
        let client = || Client::new(address.clone()).expect("address");
        match job.workload {
            Workload::Seq => {
                sequential(job, &mut (client(), params), small);
            }
            Workload::Concurrent => {
                let (meter, handles) = threads(job, || (client(), params.clone()), small);
                join(meter, handles, job.n / TASKS as u64 * TASKS as u64);
            }
            Workload::Large => {
                let mut c = client();
                let meter = Meter::start();
                for _ in 0..job.n {
                    let mut reader = c
                        .request_streaming(Request::new(params.clone()))
                        .expect("request");
                    let mut got = 0u64;
                    while let Some(chunk) = reader.chunk().expect("body") {
                        got += chunk.len() as u64;
                    }
                    assert_eq!(got, job.bytes);
                }
                meter.finish(job.n, job.n * job.bytes);
            }
            Workload::Upload => {
                let body = upload_body(job);
                let mut c = client();
                let meter = Meter::start();
                for _ in 0..job.n {
                    let response = c
                        .request(Request::new(params.clone()).body(body.clone()))
                        .expect("request");
                    assert_eq!(response.body, job.bytes.to_string().as_bytes());
                }
                meter.finish(job.n, job.n * job.bytes);
            }
        }
    }
}

/// The floor of each async runtime, written once: `$module` sends the raw floor's
/// pre-encoded request with one `write_all` on `$stream` and reads until END_REQUEST by
/// record headers (nothing parsed), under `$block_on`, spawning the concurrent tasks
/// with `$spawn`. Small requests only.
macro_rules! raw_async {
    ($module:ident, $stream:ty, $connect:expr, $read:path, $write:path, $block_on:expr, $spawn:expr) => {
        mod $module {
            use super::raw::{encode, EndScan};
            use super::*;
            use $read as _;
            use $write as _;

            struct Raw {
                stream: $stream,
                wire: Arc<[u8]>,
                buf: Vec<u8>,
            }

            async fn connect(socket: &Path, wire: Arc<[u8]>) -> Raw {
                let connect = $connect;
                Raw {
                    stream: connect(socket).await,
                    wire,
                    buf: vec![0; 64 * 1024],
                }
            }

            async fn small(client: &mut Raw) {
                client.stream.write_all(&client.wire).await.expect("write");
                let mut scan = EndScan::default();
                loop {
                    let n = client.stream.read(&mut client.buf).await.expect("read");
                    assert!(n > 0, "php-fpm closed the connection");
                    if scan.feed(&client.buf[..n]) {
                        break;
                    }
                }
                assert!(scan.stdout > HELLO.len() as u64);
            }

            pub(super) fn run(job: &Job) {
                let wire: Arc<[u8]> = encode(&params(job), None).into();
                let socket = job.socket.clone();
                let block_on = $block_on;
                let spawn = $spawn;
                block_on(job, async move {
                    match job.workload {
                        Workload::Seq => {
                            let mut client = connect(&socket, wire).await;
                            for _ in 0..job.warmup {
                                small(&mut client).await;
                            }
                            let meter = Meter::start();
                            for _ in 0..job.n {
                                small(&mut client).await;
                            }
                            meter.finish(job.n, 0);
                        }
                        Workload::Concurrent => {
                            let per = job.n / TASKS as u64;
                            let warm = job.warmup / TASKS as u64 + 1;
                            let mut clients = Vec::new();
                            for _ in 0..TASKS {
                                clients.push(connect(&socket, wire.clone()).await);
                            }
                            for phase in [warm, per] {
                                let meter = (phase == per).then(Meter::start);
                                let tasks: Vec<_> = clients
                                    .drain(..)
                                    .map(|mut client| {
                                        spawn(async move {
                                            for _ in 0..phase {
                                                small(&mut client).await;
                                            }
                                            client
                                        })
                                    })
                                    .collect();
                                for task in tasks {
                                    clients.push(task.await);
                                }
                                if let Some(meter) = meter {
                                    meter.finish(per * TASKS as u64, 0);
                                }
                            }
                        }
                        Workload::Large | Workload::Upload => {
                            panic!("the async floors measure small requests only")
                        }
                    }
                });
            }
        }
    };
}

raw_async!(
    raw_tokio,
    tokio::net::UnixStream,
    |socket: &Path| {
        let socket = socket.to_path_buf();
        async move {
            tokio::net::UnixStream::connect(socket)
                .await
                .expect("connect")
        }
    },
    tokio::io::AsyncReadExt,
    tokio::io::AsyncWriteExt,
    |job: &Job, future| tokio_runtime(job.workload).block_on(future),
    spawn_on_tokio
);

raw_async!(
    raw_tokio_readable,
    readable::ReadableUnix,
    |socket: &Path| {
        let socket = socket.to_path_buf();
        async move {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .expect("connect");
            readable::ReadableUnix::new(stream)
        }
    },
    tokio::io::AsyncReadExt,
    tokio::io::AsyncWriteExt,
    |job: &Job, future| tokio_runtime(job.workload).block_on(future),
    spawn_on_tokio
);

/// A unix socket on tokio's reactor registered for readability alone, for the
/// `raw-tokio-readable` floor: reads wait for the reactor, writes go straight to the
/// socket (a small request always fits).
mod readable {
    use std::io::{self, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

    pub(super) struct ReadableUnix(AsyncFd<UnixStream>);

    impl ReadableUnix {
        pub(super) fn new(stream: tokio::net::UnixStream) -> Self {
            let stream = stream.into_std().expect("a std socket");
            // The safe registration, deprecated because a descriptor it does not own
            // could change under it; a std `UnixStream` owns its descriptor.
            #[allow(deprecated)]
            let fd = AsyncFd::with_interest(stream, Interest::READABLE).expect("register");
            Self(fd)
        }
    }

    impl AsyncRead for ReadableUnix {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            loop {
                let mut guard = ready!(self.0.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                let room = unfilled.len();
                match guard.try_io(|fd| fd.get_ref().read(unfilled)) {
                    Ok(Ok(n)) => {
                        // A short read drained the socket, as tokio's streams assume.
                        if n > 0 && n < room {
                            guard.clear_ready();
                        }
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            }
        }
    }

    impl AsyncWrite for ReadableUnix {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(self.0.get_ref().write(buf))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}

raw_async!(
    raw_async_io,
    async_io::Async<UnixStream>,
    |socket: &Path| {
        let socket = socket.to_path_buf();
        async move {
            async_io::Async::<UnixStream>::connect(socket)
                .await
                .expect("connect")
        }
    },
    futures_util::io::AsyncReadExt,
    futures_util::io::AsyncWriteExt,
    |job: &Job, future| {
        let timer = job.kind == Kind::RawAsyncIoTimer;
        async_std::task::block_on(with_pending_timer(timer, future))
    },
    async_std::task::spawn
);

/// `future`, with (if `timer`) one async-io timer pending in the reactor all along, set
/// an hour ahead: the `raw-async-io-timer` floor.
async fn with_pending_timer<F: Future>(timer: bool, future: F) -> F::Output {
    let mut timer = timer.then(|| async_io::Timer::after(std::time::Duration::from_secs(3600)));
    if let Some(timer) = &mut timer {
        std::future::poll_fn(|cx| {
            assert!(std::pin::Pin::new(&mut *timer).poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
    }
    future.await
}

/// A task spawned on tokio, awaited for its output (the concurrent workload's tasks).
fn spawn_on_tokio<F>(future: F) -> impl Future<Output = F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = tokio::spawn(future);
    async move { task.await.expect("task") }
}

/// The runtime of the tokio clients: one thread for the sequential loops (as the other
/// clients), two workers for the concurrent one.
fn tokio_runtime(workload: Workload) -> tokio::runtime::Runtime {
    if workload == Workload::Concurrent {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("runtime")
}

/// The `fcgi` binary's load mode, in a process of its own (the `fcgi` next to this
/// binary, as `scripts/bench` builds them side by side): one run of the warm-up alone,
/// then one of the warm-up and the measured requests; the figures are the difference
/// (CPU: getrusage of the waited-for children), so neither process start nor the
/// warm-up counts. Its requests carry `fcgi`'s own default params, not the bench's
/// (much the same size). Allocations are not counted (another process).
mod fcgi_load {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    fn children_rusage() -> (u64, u64) {
        // SAFETY: `getrusage` writes one `rusage` into the zeroed value we own;
        // RUSAGE_CHILDREN is always valid.
        #[allow(unsafe_code)]
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
            usage
        };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        (
            us(usage.ru_utime) + us(usage.ru_stime),
            usage.ru_maxrss as u64,
        )
    }

    /// Runs `fcgi` for `n` requests: answers its wall time in ns and its CPU in us.
    fn load(job: &Job, n: u64) -> (u64, u64) {
        let exe = std::env::current_exe().expect("own path");
        let fcgi = exe.with_file_name("fcgi");
        let (c, connections) = match job.workload {
            Workload::Concurrent => (TASKS, TASKS),
            _ => (1, 1),
        };
        let before = children_rusage().0;
        let wall = Instant::now();
        let out = Command::new(&fcgi)
            .args(["-n", &n.max(1).to_string()])
            .args(["-c", &c.to_string()])
            .args(["--connections", &connections.to_string()])
            .arg(format!("unix:{}", job.socket.display()))
            .arg(job.docroot.join("hello.php"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {} (build fcgi-cli in release): {e}", fcgi.display()));
        let wall_ns = wall.elapsed().as_nanos() as u64;
        assert!(
            out.status.success(),
            "fcgi load mode failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        (wall_ns, children_rusage().0 - before)
    }

    pub(super) fn run(job: &Job) {
        let warm = job.warmup.max(1);
        let (wall0, cpu0) = load(job, warm);
        let (wall1, cpu1) = if job.n == 0 {
            load(job, warm)
        } else {
            load(job, warm + job.n)
        };
        println!(
            "result requests={} bytes=0 wall_ns={} cpu_us={} allocs_counted=0 peak_rss_kib={}",
            job.n,
            wall1.saturating_sub(wall0),
            cpu1.saturating_sub(cpu0),
            children_rusage().1
        );
    }
}

/// The measured loops of an async adapter whose API is fcgi-tokio's: `$module` runs
/// `$adapter`'s client under `$block_on(workload, future)`, spawning the concurrent
/// workload's tasks with `$spawn(future)` (a future of `()`).
macro_rules! async_client {
    ($module:ident, $adapter:ident, $block_on:expr, $spawn:expr) => {
        mod $module {
            use super::*;
            use $adapter::{Client, Options, Request};

            async fn small(client: &Client, params: &Params) {
                let response = client
                    .request(Request::new(params.clone()))
                    .await
                    .expect("request");
                assert_eq!(&response.body[..], HELLO);
            }

            pub(super) fn run(job: &Job) {
                let params = params(job);
                let address = Address::Unix(job.socket.clone());
                let mut options = Options::default();
                options.max_connections = TASKS;
                options.max_idle = TASKS;
                if std::env::var_os("FCGI_BENCH_NO_TIMEOUTS").is_some() {
                    options.read_timeout = None;
                    options.write_timeout = None;
                    options.connect_timeout = None;
                    options.idle_timeout = None;
                }
                let client = Client::with_upstreams([address], options).expect("client");
                let block_on = $block_on;
                let spawn = $spawn;
                block_on(job.workload, async {
                    match job.workload {
                        Workload::Seq => {
                            for _ in 0..job.warmup {
                                small(&client, &params).await;
                            }
                            let meter = Meter::start();
                            for _ in 0..job.n {
                                small(&client, &params).await;
                            }
                            meter.finish(job.n, 0);
                        }
                        Workload::Concurrent => {
                            let per = job.n / TASKS as u64;
                            let warm = job.warmup / TASKS as u64 + 1;
                            for phase in [warm, per] {
                                let meter = (phase == per).then(Meter::start);
                                let tasks: Vec<_> = (0..TASKS)
                                    .map(|_| {
                                        let (client, params) = (client.clone(), params.clone());
                                        spawn(async move {
                                            for _ in 0..phase {
                                                small(&client, &params).await;
                                            }
                                        })
                                    })
                                    .collect();
                                for task in tasks {
                                    task.await;
                                }
                                if let Some(meter) = meter {
                                    meter.finish(per * TASKS as u64, 0);
                                }
                            }
                        }
                        Workload::Large => {
                            let meter = Meter::start();
                            for _ in 0..job.n {
                                let mut stream = client
                                    .request_streaming(Request::new(params.clone()))
                                    .await
                                    .expect("request");
                                let mut got = 0u64;
                                while let Some(chunk) = stream.chunk().await.expect("body") {
                                    got += chunk.len() as u64;
                                }
                                assert_eq!(got, job.bytes);
                            }
                            meter.finish(job.n, job.n * job.bytes);
                        }
                        Workload::Upload => {
                            let body = upload_body(job);
                            let meter = Meter::start();
                            for _ in 0..job.n {
                                let response = client
                                    .request(Request::new(params.clone()).body(body.clone()))
                                    .await
                                    .expect("request");
                                assert_eq!(&response.body[..], job.bytes.to_string().as_bytes());
                            }
                            meter.finish(job.n, job.n * job.bytes);
                        }
                    }
                });
            }
        }
    };
}

async_client!(
    tokio_client,
    fcgi_tokio,
    |workload, future| tokio_runtime(workload).block_on(future),
    spawn_on_tokio
);

async_client!(
    async_std_client,
    fcgi_async_std,
    |_workload, future| async_std::task::block_on(future),
    async_std::task::spawn
);

/// The `fastcgi-client` crate in keep-alive mode over tokio's UnixStream.
mod fastcgi_client_crate {
    use super::*;
    use fastcgi_client::{io, response::Content, Client, Params as FParams, Request, StreamExt};
    use tokio::net::UnixStream as TokioUnix;

    type KeepAlive =
        Client<fastcgi_client::io::TokioCompat<TokioUnix>, fastcgi_client::conn::KeepAlive>;

    /// The same params as fcgi's, in fastcgi-client's type, borrowing `'static` text (as
    /// a program whose params are literals does), so a clone copies only the map.
    fn fparams(params: &Params) -> FParams<'static> {
        let text =
            |b: &[u8]| -> &'static str { String::from_utf8(b.to_vec()).expect("UTF-8").leak() };
        let mut out = FParams::default();
        out.clear();
        for (name, value) in params.iter() {
            out.insert(text(name).into(), text(value).into());
        }
        out
    }

    async fn connect(socket: &Path) -> KeepAlive {
        Client::new_keep_alive_tokio(TokioUnix::connect(socket).await.expect("connect"))
    }

    async fn small(client: &mut KeepAlive, params: &FParams<'static>) {
        let output = client
            .execute(Request::new(params.clone(), io::empty()))
            .await
            .expect("request");
        assert!(output.stdout.expect("stdout").ends_with(HELLO));
    }

    pub(super) fn run(job: &Job) {
        let params = fparams(&params(job));
        let runtime = if job.workload == Workload::Concurrent {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        let socket = job.socket.clone();
        runtime.block_on(async {
            match job.workload {
                Workload::Seq => {
                    let mut client = connect(&socket).await;
                    for _ in 0..job.warmup {
                        small(&mut client, &params).await;
                    }
                    let meter = Meter::start();
                    for _ in 0..job.n {
                        small(&mut client, &params).await;
                    }
                    meter.finish(job.n, 0);
                }
                Workload::Concurrent => {
                    let per = job.n / TASKS as u64;
                    let warm = job.warmup / TASKS as u64 + 1;
                    let mut clients = Vec::new();
                    for _ in 0..TASKS {
                        clients.push(connect(&socket).await);
                    }
                    for phase in [warm, per] {
                        let meter = (phase == per).then(Meter::start);
                        let tasks: Vec<_> = clients
                            .drain(..)
                            .map(|mut client| {
                                let params = params.clone();
                                tokio::spawn(async move {
                                    for _ in 0..phase {
                                        small(&mut client, &params).await;
                                    }
                                    client
                                })
                            })
                            .collect();
                        for task in tasks {
                            clients.push(task.await.expect("task"));
                        }
                        if let Some(meter) = meter {
                            meter.finish(per * TASKS as u64, 0);
                        }
                    }
                }
                Workload::Large => {
                    let mut client = connect(&socket).await;
                    let meter = Meter::start();
                    for _ in 0..job.n {
                        let mut stream = client
                            .execute_stream(Request::new(params.clone(), io::empty()))
                            .await
                            .expect("request");
                        let mut got = 0u64;
                        while let Some(content) = stream.next().await {
                            if let Content::Stdout(out) = content.expect("body") {
                                got += out.len() as u64;
                            }
                        }
                        // STDOUT includes the head here: this client does not parse it.
                        assert!(got >= job.bytes);
                    }
                    meter.finish(job.n, job.n * job.bytes);
                }
                Workload::Upload => {
                    let body = upload_body(job);
                    let mut client = connect(&socket).await;
                    let meter = Meter::start();
                    for _ in 0..job.n {
                        let output = client
                            .execute(Request::new(
                                params.clone(),
                                futures_util::io::Cursor::new(&body[..]),
                            ))
                            .await
                            .expect("request");
                        let stdout = output.stdout.expect("stdout");
                        assert!(stdout.ends_with(job.bytes.to_string().as_bytes()));
                    }
                    meter.finish(job.n, job.n * job.bytes);
                }
            }
        });
    }
}
