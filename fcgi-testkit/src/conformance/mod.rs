//! The conformance suite: one list of scenarios, each written once, that every adapter
//! (fcgi-blocking, fcgi-tokio, fcgi-async-std on async-std and on smol) runs against a
//! real php-fpm, a real flup, a responder on libfcgi (the reference C library), a server
//! on Go's net/http/fcgi, uWSGI in FastCGI mode and the scripted hostile server.
//!
//! An adapter takes part by implementing [`Adapter`] and [`TestClient`] in a test file
//! of its own crate and calling [`conformance_suite!`](crate::conformance_suite) there,
//! which makes one `#[test]` per scenario. Scenarios are `async` so that the
//! concurrent ones (a shared pool, cancellation, multiplexing) can be written once; the
//! blocking adapter runs its calls inside the future and says by its [`Design`] which
//! scenarios its design cannot run. A skipped scenario passes and prints one line that
//! says so, outside the test harness's capture.
//!
//! ```text
//! // fcgi-foo/tests/conformance.rs
//! struct Foo;
//! impl fcgi_testkit::conformance::Adapter for Foo { /* ... */ }
//! fcgi_testkit::conformance_suite!(Foo);
//! ```

mod scenarios;

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use fcgi_proto::{Address, ClientError, Config, End, Params, ResponseHead, ServerValues};

pub use scenarios::*;

/// A future as the suite passes it around: boxed, not necessarily `Send`.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What an adapter's design can do. Scenarios that need more are skipped, with a line
/// that names the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Design {
    /// One client is shared by concurrent requests through a pool of connections, with
    /// `max_connections` and failover between upstreams.
    pub shared_pool: bool,
    /// Requests are futures that can be dropped at any point (cancellation).
    pub cancellable: bool,
    /// The response is read while the request body is still being written.
    pub full_duplex: bool,
    /// Several requests share one connection when the server multiplexes.
    pub multiplexing: bool,
}

impl Design {
    /// Everything: the async adapters.
    pub const ASYNC: Design = Design {
        shared_pool: true,
        cancellable: true,
        full_duplex: true,
        multiplexing: true,
    };
    /// One connection, one request at a time, written then read: the blocking adapter.
    pub const BLOCKING: Design = Design {
        shared_pool: false,
        cancellable: false,
        full_duplex: false,
        multiplexing: false,
    };
}

/// The client settings a scenario asks for: the fields every adapter's `Options` has.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Settings {
    /// Connect timeout (for a pool: waiting for a slot included).
    pub connect_timeout: Option<Duration>,
    /// Read timeout.
    pub read_timeout: Option<Duration>,
    /// Write timeout.
    pub write_timeout: Option<Duration>,
    /// Total timeout.
    pub total_timeout: Option<Duration>,
    /// The pool's connection limit; `None` keeps the adapter's default.
    pub max_connections: Option<usize>,
    /// Multiplex when the server says it can.
    pub multiplex: bool,
    /// The core's limits.
    pub config: Config,
}

/// A request body in a form every adapter can send.
#[derive(Debug, Clone, Default)]
pub enum TestBody {
    /// No body.
    #[default]
    Empty,
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// The adapter's reader type (`std::io::Read`, tokio's or futures-io's
    /// `AsyncRead`) over these bytes, declared as `declared` bytes long.
    Reader {
        /// What the reader yields.
        data: Vec<u8>,
        /// The length the request declares.
        declared: u64,
    },
}

/// One request: params and a body.
#[derive(Debug, Clone)]
pub struct TestRequest {
    /// The params.
    pub params: Params,
    /// The body.
    pub body: TestBody,
}

impl TestRequest {
    /// A request with no body.
    pub fn new(params: Params) -> Self {
        TestRequest {
            params,
            body: TestBody::Empty,
        }
    }

    /// With a body of bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = TestBody::Bytes(body.into());
        self
    }
}

/// A buffered response, as every adapter's `Response` holds it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The head.
    pub head: ResponseHead,
    /// The body.
    pub body: Vec<u8>,
    /// What the server wrote to stderr.
    pub stderr: Vec<u8>,
    /// How the request ended.
    pub end: End,
}

impl Reply {
    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// What a streamed response looked like once the scenario stopped reading it.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// The status.
    pub status: u16,
    /// Body bytes handed to the callback.
    pub body_bytes: u64,
    /// How the request ended, when it was read to the end.
    pub end: Option<End>,
}

/// Whether a streaming callback wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Stop here and drop the stream, mid-body.
    Stop,
}

/// One client of the adapter under test, made by [`Adapter::client`].
pub trait TestClient {
    /// Sends `request` and buffers the whole response.
    fn request(&self, request: TestRequest) -> LocalFuture<'_, Result<Reply, ClientError>>;

    /// Sends `request` and hands each body chunk to `on_chunk` as it arrives, until the
    /// end or until `on_chunk` says [`Flow::Stop`], which drops the stream.
    fn stream<'a>(
        &'a self,
        request: TestRequest,
        on_chunk: &'a mut dyn FnMut(&[u8]) -> Flow,
    ) -> LocalFuture<'a, Result<Streamed, ClientError>>;

    /// FCGI_GET_VALUES.
    fn get_values<'a>(
        &'a self,
        names: &'a [&'a str],
    ) -> LocalFuture<'a, Result<ServerValues, ClientError>>;

    /// With multiplexing asked for, asks the upstream whether it multiplexes and waits
    /// for the answer (requests do not wait for it on their own). Nothing by default.
    fn discover_multiplexing(&self) -> LocalFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Connections this client has opened so far.
    fn connections_opened(&self) -> u64;

    /// Connections open now (kept or in use).
    fn open_connections(&self) -> usize;
}

/// An adapter under test: how to make its clients and run its futures.
pub trait Adapter {
    /// The name in the suite's output, e.g. `fcgi-tokio`.
    fn name(&self) -> &str;

    /// What the adapter's design can do.
    fn design(&self) -> Design;

    /// A client of `upstreams` (one, unless the scenario tests failover) with `settings`.
    fn client(
        &self,
        upstreams: Vec<Address>,
        settings: Settings,
    ) -> Result<Box<dyn TestClient + '_>, ClientError>;

    /// Runs `future` to completion on the adapter's runtime.
    fn block_on(&self, future: LocalFuture<'_, ()>);

    /// A timer of the adapter's runtime. Only called when the design is cancellable.
    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()>;
}

/// What a scenario needs beyond a plain client, checked against the adapter's
/// [`Design`] before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A shared pool.
    SharedPool,
    /// Cancellation by dropping futures.
    Cancellation,
    /// Full-duplex streaming.
    FullDuplex,
    /// Multiplexing.
    Multiplexing,
}

impl Need {
    fn met_by(self, design: Design) -> bool {
        match self {
            Need::SharedPool => design.shared_pool,
            Need::Cancellation => design.cancellable,
            Need::FullDuplex => design.full_duplex,
            Need::Multiplexing => design.multiplexing,
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Need::SharedPool => "share one client between concurrent requests",
            Need::Cancellation => "drop a request in flight",
            Need::FullDuplex => "read the response while it writes the body",
            Need::Multiplexing => "multiplex requests on one connection",
        })
    }
}

/// How a scenario uses the process: most run side by side; those that measure the
/// process's memory run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Runs beside the other scenarios of the binary.
    Shared,
    /// Measures resident memory: runs while no other scenario of the binary does.
    Alone,
}

/// One scenario of the suite.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Its name, which is also its test's name.
    pub name: &'static str,
    /// What it needs of the adapter's design.
    pub needs: &'static [Need],
    /// Whether it runs alone.
    pub isolation: Isolation,
    /// The scenario.
    pub run: for<'a> fn(&'a dyn Adapter) -> LocalFuture<'a, ()>,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("isolation", &self.isolation)
            .finish()
    }
}

/// Scenarios that measure memory hold this lock for writing, the others for reading.
static ISOLATION: RwLock<()> = RwLock::new(());

/// Runs `scenario` against `adapter`, or skips it with a line that says why.
pub fn run(adapter: &dyn Adapter, scenario: &Scenario) {
    let design = adapter.design();
    if let Some(need) = scenario.needs.iter().find(|n| !n.met_by(design)) {
        // Written to stderr directly, not through `eprintln!`, so that the test
        // harness's output capture does not hide it.
        let _ = writeln!(
            std::io::stderr(),
            "conformance: {} skips {}: its design cannot {need}",
            adapter.name(),
            scenario.name
        );
        return;
    }
    let _guard = match scenario.isolation {
        Isolation::Shared => Guard::Read(ISOLATION.read().unwrap_or_else(|e| e.into_inner())),
        Isolation::Alone => Guard::Write(ISOLATION.write().unwrap_or_else(|e| e.into_inner())),
    };
    adapter.block_on((scenario.run)(adapter));
}

enum Guard<'a> {
    Read(#[allow(dead_code)] std::sync::RwLockReadGuard<'a, ()>),
    Write(#[allow(dead_code)] std::sync::RwLockWriteGuard<'a, ()>),
}

/// Makes one `#[test]` per scenario of the suite for the adapter `$adapter` (an
/// expression whose value implements [`Adapter`], evaluated in each test).
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:expr) => {
        $crate::conformance_suite!(@each $adapter;
            hello_over_unix_and_tcp,
            post_echo_sizes_with_sha256,
            body_from_a_reader_and_a_short_reader,
            three_set_cookie_in_order_with_404,
            stderr_apart_from_stdout,
            header_block_larger_than_one_record,
            location_only_gives_302_and_a_path_a_local_redirect,
            missing_script_gives_404_and_primary_script_unknown,
            thousand_sequential_requests_on_one_kept_connection,
            read_timeout_fires_in_time_and_the_next_request_succeeds,
            total_timeout_bounds_the_request,
            connect_errors_name_the_address,
            exit_in_the_middle_of_output_is_a_normal_end,
            server_params_reach_php,
            get_values_from_php_fpm,
            streaming_gives_the_head_then_the_body_and_a_drop_closes,
            max_requests_one_two_hundred_sequential_requests,
            a_256_mib_response_streams_in_bounded_memory,
            every_hostile_case,
            a_record_after_end_request_spares_the_response,
            worker_killed_mid_response_fails_that_request_only,
            socket_file_removed_while_a_connection_is_kept,
            a_script_slower_than_every_timeout,
            master_restarted_fails_the_request_in_flight_then_the_next_succeeds,
            write_timeout_when_the_server_stops_reading,
            connect_timeout_on_an_unanswered_connect,
            unix_connect_to_a_full_backlog_fails_at_once,
            connect_timeout_covers_waiting_for_a_pool_slot,
            full_duplex_output_before_input_does_not_deadlock,
            sixty_four_tasks_share_eight_connections,
            failover_to_the_next_upstream,
            max_requests_one_under_concurrent_load,
            php_fpm_killed_and_restarted_during_a_concurrent_run,
            dropped_requests_never_corrupt_the_pool,
            flup_hundred_concurrent_echoes_share_one_connection,
            flup_slow_request_does_not_hold_back_a_fast_one,
            flup_concurrent_large_responses_interleave,
            flup_dropped_requests_abort_alone,
            flup_body_and_stderr_on_a_multiplexed_connection,
            flup_timeouts_fail_one_request_and_spare_the_others,
            flup_a_full_connection_spills_onto_another,
            flup_a_broken_connection_fails_every_request_on_it,
            silent_get_values_never_holds_a_request_back,
            php_fpm_with_multiplex_keeps_one_request_per_connection,
            libfcgi_hello_with_every_header,
            libfcgi_echo_sizes_with_sha256_on_one_kept_connection,
            libfcgi_three_set_cookie_in_order_with_404,
            libfcgi_stderr_apart_from_stdout,
            libfcgi_fifty_megabytes_streamed_with_a_checksum,
            libfcgi_get_values_answers_when_padded,
            libfcgi_with_multiplex_asked_serves_one_request_per_connection,
            gofcgi_hello_with_every_header,
            gofcgi_echo_sizes_with_sha256_on_one_kept_connection,
            gofcgi_three_set_cookie_in_order_with_404,
            gofcgi_stderr_only_for_params_go_cannot_read,
            gofcgi_fifty_megabytes_streamed_with_a_checksum,
            gofcgi_get_values_answers_mpxs_conns_1,
            gofcgi_hundred_concurrent_sleeps_share_one_connection,
            uwsgi_hello_with_every_header,
            uwsgi_echo_sizes_with_sha256,
            uwsgi_sequential_requests_each_on_a_new_connection,
            uwsgi_get_values_gets_no_answer,
            uwsgi_get_values_never_holds_a_request_back
        );
    };
    (@each $adapter:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::run(&$adapter, &$crate::conformance::$name::SCENARIO);
            }
        )*

        #[test]
        fn the_suite_lists_every_scenario() {
            let listed = [$(stringify!($name)),*];
            let all: Vec<&str> = $crate::conformance::ALL.iter().map(|s| s.name).collect();
            assert_eq!(listed[..], all[..]);
        }
    };
}

/// For an async adapter whose API is fcgi-tokio's (`Client::with_upstreams`, `Options`,
/// `Request`, `Body::from_reader`, `request`, `request_streaming`, `chunk`, ...):
/// defines `SuiteClient`, the adapter's `Client` as a [`TestClient`], and
/// `suite_client(upstreams, settings)`, which makes one. `$crate_name` is the adapter's
/// crate; `$reader` turns a `Vec<u8>` into the reader its `Body::from_reader` takes.
#[macro_export]
macro_rules! async_suite_client {
    ($adapter:ident, $reader:expr) => {
        /// The adapter's client, as the conformance suite drives it.
        struct SuiteClient($adapter::Client);

        fn suite_request(test: $crate::conformance::TestRequest) -> $adapter::Request {
            let request = $adapter::Request::new(test.params);
            match test.body {
                $crate::conformance::TestBody::Empty => request,
                $crate::conformance::TestBody::Bytes(bytes) => request.body(bytes),
                $crate::conformance::TestBody::Reader { data, declared } => {
                    request.body($adapter::Body::from_reader(($reader)(data), declared))
                }
            }
        }

        fn suite_client<'a>(
            upstreams: Vec<$adapter::Address>,
            settings: $crate::conformance::Settings,
        ) -> Result<Box<dyn $crate::conformance::TestClient + 'a>, $adapter::Error> {
            let mut options = $adapter::Options::default();
            options.connect_timeout = settings.connect_timeout.or(options.connect_timeout);
            options.read_timeout = settings.read_timeout.or(options.read_timeout);
            options.write_timeout = settings.write_timeout.or(options.write_timeout);
            options.total_timeout = settings.total_timeout;
            options.max_connections = settings.max_connections.unwrap_or(options.max_connections);
            options.multiplex = settings.multiplex;
            options.config = settings.config;
            let client = $adapter::Client::with_upstreams(upstreams, options)?;
            Ok(Box::new(SuiteClient(client)))
        }

        impl $crate::conformance::TestClient for SuiteClient {
            fn request(
                &self,
                test: $crate::conformance::TestRequest,
            ) -> $crate::conformance::LocalFuture<
                '_,
                Result<$crate::conformance::Reply, $adapter::Error>,
            > {
                Box::pin(async move {
                    let r = self.0.request(suite_request(test)).await?;
                    Ok($crate::conformance::Reply {
                        status: r.status,
                        head: r.head,
                        body: r.body.into(),
                        stderr: r.stderr,
                        end: r.end,
                    })
                })
            }

            fn stream<'a>(
                &'a self,
                test: $crate::conformance::TestRequest,
                on_chunk: &'a mut dyn FnMut(&[u8]) -> $crate::conformance::Flow,
            ) -> $crate::conformance::LocalFuture<
                'a,
                Result<$crate::conformance::Streamed, $adapter::Error>,
            > {
                Box::pin(async move {
                    let mut stream = self.0.request_streaming(suite_request(test)).await?;
                    let mut body_bytes = 0;
                    while let Some(chunk) = stream.chunk().await? {
                        body_bytes += chunk.len() as u64;
                        if on_chunk(&chunk) == $crate::conformance::Flow::Stop {
                            break;
                        }
                    }
                    Ok($crate::conformance::Streamed {
                        status: stream.status(),
                        body_bytes,
                        end: stream.end().cloned(),
                    })
                })
            }

            fn get_values<'a>(
                &'a self,
                names: &'a [&'a str],
            ) -> $crate::conformance::LocalFuture<
                'a,
                Result<$adapter::fcgi_proto::ServerValues, $adapter::Error>,
            > {
                Box::pin(self.0.get_values(names))
            }

            fn discover_multiplexing(&self) -> $crate::conformance::LocalFuture<'_, ()> {
                Box::pin(self.0.discover_multiplexing())
            }

            fn connections_opened(&self) -> u64 {
                self.0.connections_opened()
            }

            fn open_connections(&self) -> usize {
                self.0.open_connections()
            }
        }
    };
}

/// Runs `future` on this thread until it completes: the executor of the blocking
/// adapter, whose futures never wait on anything but their own calls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// `future`'s output, or `None` when `adapter`'s timer fires first (and `future` is
/// dropped where it stands).
pub async fn timeout<T>(
    adapter: &dyn Adapter,
    duration: Duration,
    future: impl Future<Output = T>,
) -> Option<T> {
    let mut future = std::pin::pin!(future);
    let mut timer = adapter.sleep(duration);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Polls `future` once, then drops it.
pub async fn poll_once_then_drop<T>(future: impl Future<Output = T>) {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await
}

/// Runs every future in `futures` concurrently on the current task and returns their
/// outputs in order.
pub async fn join_all<'a, T>(futures: Vec<LocalFuture<'a, T>>) -> Vec<T> {
    let mut futures: Vec<Option<LocalFuture<'a, T>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *out = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}
