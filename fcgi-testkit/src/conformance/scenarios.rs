//! The scenarios, each a `pub mod` with its `SCENARIO`, in the order the suite lists
//! them: plain requests against php-fpm, memory, the hostile server, fault drills, then
//! what needs a pool, cancellation, full duplex or multiplexing; then, from files of
//! their own, the scenarios against the other server lineages (libfcgi, Go, uWSGI).

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fcgi_proto::{Address, ClientError, HeadError, Params, ParamsBuilder, Phase, ProtocolStatus};

use super::{
    join_all, poll_once_then_drop, timeout, Adapter, Flow, Isolation, LocalFuture, Need, Reply,
    Scenario, Settings, TestBody, TestClient, TestRequest,
};
use crate::hostile::{self, Got, Hostile};
use crate::silent::{self, Silent};
use crate::{fill_large_body, hex_sha256, large_body, random_bytes, Flup, FullBacklog, PhpFpm};

/// Every scenario, in the suite's order.
pub const ALL: &[Scenario] = &[
    hello_over_unix_and_tcp::SCENARIO,
    post_echo_sizes_with_sha256::SCENARIO,
    body_from_a_reader_and_a_short_reader::SCENARIO,
    three_set_cookie_in_order_with_404::SCENARIO,
    stderr_apart_from_stdout::SCENARIO,
    header_block_larger_than_one_record::SCENARIO,
    location_only_gives_302_and_a_path_a_local_redirect::SCENARIO,
    missing_script_gives_404_and_primary_script_unknown::SCENARIO,
    thousand_sequential_requests_on_one_kept_connection::SCENARIO,
    read_timeout_fires_in_time_and_the_next_request_succeeds::SCENARIO,
    total_timeout_bounds_the_request::SCENARIO,
    connect_errors_name_the_address::SCENARIO,
    exit_in_the_middle_of_output_is_a_normal_end::SCENARIO,
    server_params_reach_php::SCENARIO,
    get_values_from_php_fpm::SCENARIO,
    streaming_gives_the_head_then_the_body_and_a_drop_closes::SCENARIO,
    max_requests_one_two_hundred_sequential_requests::SCENARIO,
    a_256_mib_response_streams_in_bounded_memory::SCENARIO,
    every_hostile_case::SCENARIO,
    a_record_after_end_request_spares_the_response::SCENARIO,
    worker_killed_mid_response_fails_that_request_only::SCENARIO,
    socket_file_removed_while_a_connection_is_kept::SCENARIO,
    a_script_slower_than_every_timeout::SCENARIO,
    master_restarted_fails_the_request_in_flight_then_the_next_succeeds::SCENARIO,
    write_timeout_when_the_server_stops_reading::SCENARIO,
    connect_timeout_on_an_unanswered_connect::SCENARIO,
    unix_connect_to_a_full_backlog_fails_at_once::SCENARIO,
    connect_timeout_covers_waiting_for_a_pool_slot::SCENARIO,
    full_duplex_output_before_input_does_not_deadlock::SCENARIO,
    sixty_four_tasks_share_eight_connections::SCENARIO,
    failover_to_the_next_upstream::SCENARIO,
    max_requests_one_under_concurrent_load::SCENARIO,
    php_fpm_killed_and_restarted_during_a_concurrent_run::SCENARIO,
    dropped_requests_never_corrupt_the_pool::SCENARIO,
    flup_hundred_concurrent_echoes_share_one_connection::SCENARIO,
    flup_slow_request_does_not_hold_back_a_fast_one::SCENARIO,
    flup_concurrent_large_responses_interleave::SCENARIO,
    flup_dropped_requests_abort_alone::SCENARIO,
    flup_body_and_stderr_on_a_multiplexed_connection::SCENARIO,
    flup_timeouts_fail_one_request_and_spare_the_others::SCENARIO,
    flup_a_full_connection_spills_onto_another::SCENARIO,
    flup_a_broken_connection_fails_every_request_on_it::SCENARIO,
    silent_get_values_never_holds_a_request_back::SCENARIO,
    php_fpm_with_multiplex_keeps_one_request_per_connection::SCENARIO,
    libfcgi_hello_with_every_header::SCENARIO,
    libfcgi_echo_sizes_with_sha256_on_one_kept_connection::SCENARIO,
    libfcgi_three_set_cookie_in_order_with_404::SCENARIO,
    libfcgi_stderr_apart_from_stdout::SCENARIO,
    libfcgi_fifty_megabytes_streamed_with_a_checksum::SCENARIO,
    libfcgi_get_values_answers_when_padded::SCENARIO,
    libfcgi_with_multiplex_asked_serves_one_request_per_connection::SCENARIO,
    gofcgi_hello_with_every_header::SCENARIO,
    gofcgi_echo_sizes_with_sha256_on_one_kept_connection::SCENARIO,
    gofcgi_three_set_cookie_in_order_with_404::SCENARIO,
    gofcgi_stderr_only_for_params_go_cannot_read::SCENARIO,
    gofcgi_fifty_megabytes_streamed_with_a_checksum::SCENARIO,
    gofcgi_get_values_answers_mpxs_conns_1::SCENARIO,
    gofcgi_hundred_concurrent_sleeps_share_one_connection::SCENARIO,
    uwsgi_hello_with_every_header::SCENARIO,
    uwsgi_echo_sizes_with_sha256::SCENARIO,
    uwsgi_sequential_requests_each_on_a_new_connection::SCENARIO,
    uwsgi_get_values_gets_no_answer::SCENARIO,
    uwsgi_get_values_never_holds_a_request_back::SCENARIO,
];

// ---- helpers shared by the scenarios ----

/// The php-fpm the scenarios share: more workers than [`PhpFpm::shared`]'s, because
/// scenarios run side by side, each client keeps a connection (which pins a worker),
/// and the timeout scenarios leave workers asleep past their timeouts.
fn shared_fpm() -> &'static PhpFpm {
    static SHARED: OnceLock<PhpFpm> = OnceLock::new();
    SHARED.get_or_init(|| PhpFpm::builder().max_children(16).start())
}

fn unix(fpm: &PhpFpm) -> Address {
    Address::Unix(fpm.unix_socket().to_path_buf())
}

fn addresses(fpm: &PhpFpm) -> [Address; 2] {
    [unix(fpm), Address::from(fpm.tcp_addr())]
}

fn get(fpm: &PhpFpm, script: &str, query: &str) -> TestRequest {
    TestRequest::new(fpm.params("GET", script, query))
}

fn echo(fpm: &PhpFpm, body: impl Into<Vec<u8>>) -> TestRequest {
    TestRequest::new(fpm.params("POST", "echo.php", "")).body(body)
}

fn client<'a>(
    adapter: &'a dyn Adapter,
    address: Address,
    settings: Settings,
) -> Box<dyn TestClient + 'a> {
    adapter
        .client(vec![address], settings)
        .unwrap_or_else(|e| panic!("{}: a client: {e}", adapter.name()))
}

/// A client that has asked its upstream whether it multiplexes (with
/// `settings.multiplex`), so that its first request already takes the path the answer
/// decides: requests do not wait for that answer on their own.
async fn discovered<'a>(
    adapter: &'a dyn Adapter,
    address: Address,
    settings: Settings,
) -> Box<dyn TestClient + 'a> {
    let c = client(adapter, address, settings);
    c.discover_multiplexing().await;
    c
}

async fn ok(client: &dyn TestClient, request: TestRequest, what: &str) -> Reply {
    client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A few echo requests, each answered with its own body.
async fn echo_round(client: &dyn TestClient, fpm: &PhpFpm, tag: &str) {
    for i in 0..5 {
        let body = format!("{tag} {i}");
        let reply = ok(client, echo(fpm, body.clone()), tag).await;
        assert_eq!(reply.body, body.as_bytes(), "{tag} {i}");
    }
}

fn assert_broken_connection(err: &ClientError, address: &str) {
    assert!(
        matches!(err, ClientError::Protocol { .. } | ClientError::Io { .. }),
        "want a protocol or I/O error, got {err:?}"
    );
    assert!(err.to_string().contains(address), "{err}");
}

fn is_read_timeout(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::Timeout {
            phase: Phase::Read,
            ..
        }
    )
}

/// The next value of a xorshift generator: the scenarios' reproducible randomness.
fn next(seed: &Cell<u64>) -> u64 {
    let mut s = seed.get();
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    seed.set(s);
    s
}

/// Defines `pub mod $name { pub const SCENARIO }` for the scenario body `$body`, an
/// `async` block that sees the adapter as `$a`.
macro_rules! scenario {
    ($(#[$doc:meta])* $name:ident, $needs:expr, $isolation:expr, |$a:ident| $body:block) => {
        $(#[$doc])*
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            /// This scenario.
            pub const SCENARIO: Scenario = Scenario {
                name: stringify!($name),
                needs: $needs,
                isolation: $isolation,
                run,
            };
            fn run($a: &dyn Adapter) -> LocalFuture<'_, ()> {
                Box::pin(async move $body)
            }
        }
    };
}

// ---- plain requests against php-fpm ----

scenario!(
    /// hello.php over the unix socket and over TCP: status, Content-Type, body, no
    /// stderr, a complete end.
    hello_over_unix_and_tcp, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address.clone(), Settings::default());
            let r = ok(&*c, get(fpm, "hello.php", ""), "hello").await;
            assert_eq!(r.status, 200, "{address}");
            assert_eq!(r.body, b"Hello, World!");
            assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
            assert!(r.stderr.is_empty());
            assert_eq!(r.end.app_status, 0);
            assert!(r.end.protocol_status.is_complete());
        }
    }
);

scenario!(
    /// POST bodies of 0 B, 1 B, 65535 B, 65536 B and 10 MiB come back whole (sha256
    /// on both sides), all on one kept connection.
    post_echo_sizes_with_sha256, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address.clone(), Settings::default());
            for (i, len) in [0usize, 1, 65535, 65536, 10 * 1024 * 1024].into_iter().enumerate() {
                let body = random_bytes(len, i as u64 + 7);
                let r = ok(&*c, echo(fpm, body.clone()), "echo").await;
                assert_eq!(r.status, 200, "{address} {len}");
                assert_eq!(r.header("x-body-length"), Some(len.to_string().as_str()));
                assert_eq!(r.header("x-body-sha256"), Some(hex_sha256(&body).as_str()));
                assert_eq!(hex_sha256(&r.body), hex_sha256(&body), "{address} {len}");
            }
            assert_eq!(c.connections_opened(), 1, "{address}: every size on one kept connection");
        }
    }
);

scenario!(
    /// A body from the adapter's reader type arrives whole; a reader shorter than its
    /// declared length is a usage error, and the next request works.
    body_from_a_reader_and_a_short_reader, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let c = client(a, unix(fpm), Settings::default());
        let data = random_bytes(3 * 1024 * 1024 + 17, 99);
        let mut request = TestRequest::new(fpm.params("POST", "echo.php", ""));
        request.body = TestBody::Reader { data: data.clone(), declared: data.len() as u64 };
        let r = ok(&*c, request, "reader body").await;
        assert_eq!(r.header("x-body-sha256"), Some(hex_sha256(&data).as_str()));
        assert_eq!(r.body, data);

        let mut request = TestRequest::new(fpm.params("POST", "echo.php", ""));
        request.body = TestBody::Reader { data: vec![1u8; 10], declared: 11 };
        let err = c.request(request).await.unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)), "{err:?}");
        assert_eq!(ok(&*c, get(fpm, "hello.php", ""), "after").await.body, b"Hello, World!");
    }
);

scenario!(
    /// Three Set-Cookie headers, in order, with status 404 and its reason.
    three_set_cookie_in_order_with_404, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address, Settings::default());
            let r = ok(&*c, get(fpm, "cookies.php", ""), "cookies").await;
            assert_eq!(r.status, 404);
            assert_eq!(r.head.reason(), Some("Not Found"));
            let cookies: Vec<&[u8]> = r.head.get_all("set-cookie").collect();
            assert_eq!(cookies, [&b"a=1"[..], b"b=2", b"c=3"]);
            assert_eq!(r.body, b"not here");
        }
    }
);

scenario!(
    /// What the script writes to stderr is kept apart from the body, in order.
    stderr_apart_from_stdout, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address, Settings::default());
            let r = ok(&*c, get(fpm, "stderr.php", ""), "stderr").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body, b"one\ntwo\nthree\n");
            let stderr = String::from_utf8_lossy(&r.stderr);
            let first = stderr.find("first message").expect("first message");
            let second = stderr.find("second message").expect("second message");
            assert!(first < second, "{stderr}");
            assert!(!stderr.contains("one") && !stderr.contains("three"), "{stderr}");
        }
    }
);

scenario!(
    /// An 80 KiB head (more than one record) is read when the limit allows it; at the
    /// default limit it is a typed error and the connection stays usable.
    header_block_larger_than_one_record, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let mut raised = Settings::default();
        raised.config.max_head_bytes = 1024 * 1024;
        for address in addresses(fpm) {
            let c = client(a, address, raised.clone());
            let r = ok(&*c, get(fpm, "bigheaders.php", "count=40&size=2000"), "big head").await;
            assert_eq!(r.status, 200);
            for i in 0..40 {
                let value = r.header(&format!("x-big-{i}")).expect("every header");
                assert_eq!(value.len(), 2000);
                assert!(value.bytes().all(|b| b == b'x'));
            }
            assert_eq!(r.body, b"ok");
        }
        let c = client(a, unix(fpm), Settings::default());
        let err = c.request(get(fpm, "bigheaders.php", "count=40&size=2000")).await.unwrap_err();
        assert!(
            matches!(err, ClientError::BadResponse { source: HeadError::TooLarge { limit: 65536 }, .. }),
            "{err:?}"
        );
        assert_eq!(ok(&*c, get(fpm, "hello.php", ""), "after").await.body, b"Hello, World!");
        assert_eq!(c.connections_opened(), 1, "the head error left the connection usable");
    }
);

scenario!(
    /// A Location with no Status is a 302; a local path is flagged a local redirect.
    location_only_gives_302_and_a_path_a_local_redirect, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address, Settings::default());
            let r = ok(&*c, get(fpm, "redirect.php", "to=https://example.com/next"), "redirect").await;
            assert_eq!(r.status, 302);
            assert_eq!(r.header("location"), Some("https://example.com/next"));
            assert!(!r.head.is_local_redirect());
            let r = ok(&*c, get(fpm, "redirect.php", "to=/local/path"), "local").await;
            assert_eq!(r.status, 302);
            assert!(r.head.is_local_redirect());
        }
    }
);

scenario!(
    /// A missing script: 404, php-fpm's body, "Primary script unknown" on stderr.
    missing_script_gives_404_and_primary_script_unknown, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address, Settings::default());
            let r = ok(&*c, get(fpm, "does-not-exist.php", ""), "missing").await;
            assert_eq!(r.status, 404);
            assert_eq!(r.body, b"File not found.\n");
            let stderr = String::from_utf8_lossy(&r.stderr);
            assert!(stderr.contains("Primary script unknown"), "{stderr}");
        }
    }
);

scenario!(
    /// 1000 sequential requests: one connection, so one php-fpm worker answers all.
    thousand_sequential_requests_on_one_kept_connection, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address.clone(), Settings::default());
            let first = ok(&*c, get(fpm, "pid.php", ""), "pid").await.body;
            for _ in 0..999 {
                let r = ok(&*c, get(fpm, "pid.php", ""), "pid").await;
                assert_eq!(r.body, first, "{address}: one worker, one connection");
            }
            assert_eq!(c.connections_opened(), 1, "{address}");
        }
    }
);

scenario!(
    /// A 300 ms read timeout on a script that sleeps 3 s fires in time, names the phase
    /// and the address, closes that connection; the next request succeeds.
    read_timeout_fires_in_time_and_the_next_request_succeeds, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let settings = Settings {
            read_timeout: Some(Duration::from_millis(300)),
            ..Settings::default()
        };
        for address in addresses(fpm) {
            let c = client(a, address.clone(), settings.clone());
            let start = Instant::now();
            let err = c.request(get(fpm, "sleep.php", "ms=3000")).await.unwrap_err();
            let elapsed = start.elapsed();
            assert!(is_read_timeout(&err), "{address}: {err:?}");
            assert!(err.to_string().contains(&address.to_string()), "{err}");
            assert!(
                elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
                "{elapsed:?}"
            );
            assert_eq!(c.open_connections(), 0, "the timed-out connection is closed");
            assert_eq!(ok(&*c, get(fpm, "hello.php", ""), "after").await.status, 200);
        }
    }
);

scenario!(
    /// A 400 ms total timeout bounds a request whose every read is within its own
    /// timeout; the next request succeeds.
    total_timeout_bounds_the_request, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let settings = Settings {
            total_timeout: Some(Duration::from_millis(400)),
            ..Settings::default()
        };
        let c = client(a, unix(fpm), settings);
        echo_round(&*c, fpm, "before").await;
        let start = Instant::now();
        let err = c.request(get(fpm, "sleep.php", "ms=3000")).await.unwrap_err();
        let elapsed = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert!(err.to_string().contains(&unix(fpm).to_string()), "{err}");
        echo_round(&*c, fpm, "after").await;
    }
);

scenario!(
    /// A missing socket file and a refused TCP port are connect errors that name the
    /// address, each time, with no state left behind.
    connect_errors_name_the_address, &[], Isolation::Shared, |a| {
        let missing = Address::Unix("/nonexistent/dir/php.sock".into());
        let c = client(a, missing, Settings::default());
        let err = c.request(TestRequest::new(Params::new())).await.unwrap_err();
        match &err {
            ClientError::Connect { address, source } => {
                assert_eq!(address, "unix:/nonexistent/dir/php.sock");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("want Connect, got {other:?}"),
        }
        assert!(err.to_string().contains("/nonexistent/dir/php.sock"), "{err}");
        // A port that was free a moment ago, with nothing listening now.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let target = format!("127.0.0.1:{port}");
        let c = client(a, target.parse().expect("an address"), Settings::default());
        for _ in 0..2 {
            let start = Instant::now();
            let err = c.request(TestRequest::new(Params::new())).await.unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(2));
            match &err {
                ClientError::Connect { address, source } => {
                    assert_eq!(address, &target);
                    assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
                }
                other => panic!("want Connect, got {other:?}"),
            }
        }
    }
);

scenario!(
    /// `exit` in the middle of output ends the response normally with what was written.
    exit_in_the_middle_of_output_is_a_normal_end, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let c = client(a, unix(fpm), Settings::default());
        let r = ok(&*c, get(fpm, "exit_mid.php", ""), "exit").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"partial");
    }
);

scenario!(
    /// The params reach PHP's `$_SERVER`; a header with an underscore and `Proxy` do
    /// not.
    server_params_reach_php, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let c = client(a, unix(fpm), Settings::default());
        let filename = fpm.script("server.php");
        let params = ParamsBuilder::new("GET", "/server.php?a=1&b=2")
            .script("/server.php", filename.to_str().expect("UTF-8"))
            .header("X-Custom", "yes")
            .header("X-Bad_Name", "dropped")
            .header("Proxy", "http://evil.example/")
            .build()
            .expect("valid params");
        let r = ok(&*c, TestRequest::new(params), "server").await;
        let text = String::from_utf8(r.body).expect("JSON");
        assert!(text.contains(r#""QUERY_STRING":"a=1&b=2""#), "{text}");
        assert!(text.contains(r#""HTTP_X_CUSTOM":"yes""#), "{text}");
        assert!(!text.contains("HTTP_X_BAD_NAME") && !text.contains("HTTP_PROXY"), "{text}");
        assert!(text.contains(r#""GATEWAY_INTERFACE":"CGI/1.1""#), "{text}");
    }
);

scenario!(
    /// FCGI_GET_VALUES: php-fpm does not multiplex.
    get_values_from_php_fpm, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let c = client(a, unix(fpm), Settings::default());
        let values = c.get_values(&["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS", "FCGI_MAX_REQS"]).await.expect("values");
        assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
        assert!(!values.multiplexes());
    }
);

scenario!(
    /// A streamed 5 MiB body arrives whole after its head; dropping a stream half-way
    /// closes that connection, and the next request opens another.
    streaming_gives_the_head_then_the_body_and_a_drop_closes, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let c = client(a, unix(fpm), Settings::default());
        let len = 5 * 1024 * 1024 + 3;
        let mut body = Vec::new();
        let mut collect = |chunk: &[u8]| {
            body.extend_from_slice(chunk);
            Flow::Continue
        };
        let s = c.stream(get(fpm, "large.php", &format!("bytes={len}")), &mut collect).await.expect("stream");
        assert_eq!(s.status, 200);
        assert!(s.end.is_some());
        assert_eq!(s.body_bytes, len as u64);
        assert!(body == large_body(len), "the body differs");

        let mut stop = |_: &[u8]| Flow::Stop;
        let s = c.stream(get(fpm, "large.php", &format!("bytes={len}")), &mut stop).await.expect("stream");
        assert!(s.end.is_none() && s.body_bytes > 0);
        assert_eq!(ok(&*c, get(fpm, "hello.php", ""), "after").await.status, 200);
        assert_eq!(c.connections_opened(), 2, "the dropped stream's connection was closed");
    }
);

scenario!(
    /// With `pm.max_requests = 1` every worker exits after one request, closing the
    /// kept connection: 200 sequential requests all succeed, over unix and TCP.
    max_requests_one_two_hundred_sequential_requests, &[], Isolation::Shared, |a| {
        let fpm = PhpFpm::builder().max_requests(1).start();
        for address in addresses(&fpm) {
            let c = client(a, address.clone(), Settings::default());
            for i in 0..200 {
                let r = ok(&*c, get(&fpm, "hello.php", ""), &format!("{address} request {i}")).await;
                assert_eq!(r.body, b"Hello, World!");
            }
        }
    }
);

// ---- memory ----

scenario!(
    /// 256 MiB streamed over unix and TCP and checked piece by piece: resident memory
    /// grows by less than 16 MiB.
    a_256_mib_response_streams_in_bounded_memory, &[], Isolation::Alone, |a| {
        const LEN: u64 = 256 * 1024 * 1024;
        const BOUND: u64 = 16 * 1024 * 1024;
        let fpm = shared_fpm();
        for address in addresses(fpm) {
            let c = client(a, address.clone(), Settings::default());
            let warm = ok(&*c, get(fpm, "large.php", "bytes=1000000"), "warm").await;
            assert_eq!(warm.body.len(), 1_000_000);
            let baseline = hostile::resident_bytes();
            let mut peak = baseline;
            let mut offset = 0u64;
            let mut expected = Vec::new();
            let mut check = |chunk: &[u8]| {
                expected.resize(chunk.len(), 0);
                fill_large_body(offset, &mut expected);
                assert!(chunk == &expected[..], "body differs near byte {offset}");
                let before = offset;
                offset += chunk.len() as u64;
                if before / (8 << 20) != offset / (8 << 20) {
                    peak = peak.max(hostile::resident_bytes());
                }
                Flow::Continue
            };
            let s = c.stream(get(fpm, "large.php", &format!("bytes={LEN}")), &mut check).await.expect("stream");
            peak = peak.max(hostile::resident_bytes());
            assert_eq!(s.body_bytes, LEN);
            assert!(s.end.is_some());
            let growth = peak.saturating_sub(baseline);
            assert!(growth < BOUND, "{address}: resident memory grew by {growth} bytes streaming 256 MiB");
        }
    }
);

// ---- the hostile server ----

scenario!(
    /// Every case of the hostile server: the exact outcome, within the case's time
    /// bound and memory bound. One output line per case.
    every_hostile_case, &[], Isolation::Alone, |a| {
        let cases = hostile::cases();
        let mut failures = Vec::new();
        for case in &cases {
            let server = Hostile::start(case);
            let address = Address::Unix(server.socket().to_path_buf());
            let settings = Settings {
                connect_timeout: Some(Duration::from_secs(5)),
                write_timeout: Some(Duration::from_secs(5)),
                read_timeout: Some(case.timeouts.read),
                total_timeout: case.timeouts.total,
                ..Settings::default()
            };
            let c = client(a, address.clone(), settings);
            let params = ParamsBuilder::new("GET", "/hostile.php")
                .script("/hostile.php", "/srv/hostile.php")
                .build()
                .expect("valid params");
            let peak = hostile::reset_peak_resident();
            let before = hostile::resident_bytes();
            let start = Instant::now();
            let result = c.request(TestRequest::new(params)).await;
            let elapsed = start.elapsed();
            let after = if peak { hostile::peak_resident_bytes() } else { hostile::resident_bytes() };
            let growth = after.saturating_sub(before);
            let outcome = match &result {
                Ok(r) => Ok(Got { status: r.status, head: &r.head, body: &r.body, stderr: &r.stderr }),
                Err(e) => Err(e),
            };
            let mut problems = Vec::new();
            if let Err(e) = case.expected.check(outcome, &address.to_string()) {
                problems.push(e);
            }
            if elapsed > case.within {
                problems.push(format!("took {elapsed:?}, more than {:?}", case.within));
            }
            if growth > case.memory.max_growth {
                problems.push(format!("memory grew {growth} bytes, more than {} ({})", case.memory.max_growth, case.memory.note));
            }
            drop(c);
            let served = server.join();
            let shown = match &result {
                Ok(r) => format!("{} with {} bytes", r.status, r.body.len()),
                Err(e) => format!("{e:?}"),
            };
            let line = format!(
                "{:<40} {:>8.1?} rss+{:>6} KiB  server wrote {}/{}  {}",
                case.name, elapsed, growth / 1024, served.written, case.reply_len(), shown
            );
            if problems.is_empty() {
                println!("ok   {line}");
            } else {
                println!("FAIL {line}\n    {}", problems.join("; "));
                failures.push(format!("{}: {}", case.name, problems.join("; ")));
            }
        }
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }
);

scenario!(
    /// A stray record right after END_REQUEST, read together with it: the request was
    /// over at END_REQUEST, so its response is delivered whole (buffered and streamed),
    /// and the connection, which the stray record broke, is closed instead of kept.
    a_record_after_end_request_spares_the_response, &[], Isolation::Shared, |a| {
        let case = hostile::cases()
            .into_iter()
            .find(|c| c.name == "stdout_after_end_request")
            .expect("the hostile case");
        let params = ParamsBuilder::new("GET", "/hostile.php")
            .script("/hostile.php", "/srv/hostile.php")
            .build()
            .expect("valid params");
        let server = Hostile::start(&case);
        let c = client(a, Address::Unix(server.socket().to_path_buf()), Settings::default());
        let r = ok(&*c, TestRequest::new(params.clone()), "buffered").await;
        assert_eq!((r.status, &r.body[..], r.header("content-type")), (200, hostile::BODY, Some("text/plain")));
        assert_eq!(c.open_connections(), 0, "the broken connection was kept");
        drop(c);
        server.join();

        let server = Hostile::start(&case);
        let c = client(a, Address::Unix(server.socket().to_path_buf()), Settings::default());
        let mut body = Vec::new();
        let mut collect = |chunk: &[u8]| {
            body.extend_from_slice(chunk);
            Flow::Continue
        };
        let s = c.stream(TestRequest::new(params), &mut collect).await.expect("streamed");
        assert_eq!((s.status, &body[..]), (200, hostile::BODY));
        assert_eq!(s.end.map(|e| e.protocol_status), Some(ProtocolStatus::REQUEST_COMPLETE));
        assert_eq!(c.open_connections(), 0, "the broken connection was kept");
        drop(c);
        server.join();
    }
);

// ---- fault drills ----

scenario!(
    /// php-fpm's workers killed mid-response: that request fails with an error naming
    /// the address, the broken connection is dropped, and the next requests succeed.
    worker_killed_mid_response_fails_that_request_only, &[], Isolation::Shared, |a| {
        let fpm = PhpFpm::builder().max_children(2).start();
        let address = unix(&fpm).to_string();
        let c = client(a, unix(&fpm), Settings::default());
        echo_round(&*c, &fpm, "before").await;
        let mut killed = false;
        let mut kill_once = |_: &[u8]| {
            if !killed {
                killed = true;
                assert!(!fpm.kill_workers().is_empty());
            }
            Flow::Continue
        };
        let err = c
            .stream(get(&fpm, "large.php", "bytes=268435456"), &mut kill_once)
            .await
            .expect_err("the response cannot end normally after its worker was killed");
        assert_broken_connection(&err, &address);
        echo_round(&*c, &fpm, "after").await;
    }
);

scenario!(
    /// The socket file removed: a kept connection still works; a new one fails with a
    /// connect error naming the path.
    socket_file_removed_while_a_connection_is_kept, &[], Isolation::Shared, |a| {
        let fpm = PhpFpm::builder().max_children(2).start();
        let socket = fpm.unix_socket().to_path_buf();
        let c = client(a, unix(&fpm), Settings::default());
        echo_round(&*c, &fpm, "before").await;
        std::fs::remove_file(&socket).expect("remove the socket file");
        echo_round(&*c, &fpm, "kept").await;
        assert_eq!(c.connections_opened(), 1);
        drop(c);
        let c = client(a, unix(&fpm), Settings::default());
        let err = c.request(get(&fpm, "hello.php", "")).await.unwrap_err();
        match &err {
            ClientError::Connect { address, source } => {
                assert_eq!(address, &format!("unix:{}", socket.display()));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("want Connect, got {other:?}"),
        }
    }
);

scenario!(
    /// A script slower than every timeout: the read timeout names its phase and exact
    /// bound; the next requests succeed on a new connection.
    a_script_slower_than_every_timeout, &[], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let settings = Settings {
            read_timeout: Some(Duration::from_millis(300)),
            ..Settings::default()
        };
        let c = client(a, unix(fpm), settings);
        echo_round(&*c, fpm, "before").await;
        let err = c.request(get(fpm, "sleep.php", "ms=2000")).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { phase: Phase::Read, after, .. } if after == Duration::from_millis(300)),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("reading the response") && text.contains(&unix(fpm).to_string()), "{text}");
        echo_round(&*c, fpm, "after").await;
        assert_eq!(c.connections_opened(), 2, "the timed-out connection was not reused");
    }
);

scenario!(
    /// php-fpm restarted while a response streams: that request fails with an error
    /// naming the address; the next ones succeed on one new connection.
    master_restarted_fails_the_request_in_flight_then_the_next_succeeds, &[], Isolation::Shared, |a| {
        let mut fpm = PhpFpm::builder().max_children(2).start();
        let address = unix(&fpm).to_string();
        let c = client(a, unix(&fpm), Settings::default());
        echo_round(&*c, &fpm, "before").await;
        let opened = c.connections_opened();
        let request = get(&fpm, "large.php", "bytes=268435456");
        let fpm_ref = &mut fpm;
        let mut restarted = false;
        let mut restart_once = |_: &[u8]| {
            if !restarted {
                restarted = true;
                fpm_ref.restart();
            }
            Flow::Continue
        };
        let err = c
            .stream(request, &mut restart_once)
            .await
            .expect_err("the response cannot end normally across a restart");
        assert_broken_connection(&err, &address);
        echo_round(&*c, &fpm, "after").await;
        assert_eq!(c.connections_opened(), opened + 1, "one new connection to the restarted server");
    }
);

scenario!(
    /// A server that accepts and never reads: the 16 MiB body fills the socket buffers
    /// and the 300 ms write timeout fires, naming its phase; the connection is closed.
    write_timeout_when_the_server_stops_reading, &[], Isolation::Shared, |a| {
        let dir = crate::make_temp_dir();
        let path = dir.join("deaf.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let (socket, _) = listener.accept().expect("accept");
            let _ = released.recv_timeout(Duration::from_secs(10));
            drop(socket);
        });
        let settings = Settings {
            write_timeout: Some(Duration::from_millis(300)),
            ..Settings::default()
        };
        let c = client(a, Address::Unix(path.clone()), settings);
        let params = ParamsBuilder::new("PUT", "/upload.php")
            .script("/upload.php", "/srv/upload.php")
            .build()
            .expect("valid params");
        let start = Instant::now();
        let err = c.request(TestRequest::new(params).body(vec![b'x'; 16 << 20])).await.unwrap_err();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
            "{elapsed:?}"
        );
        assert!(matches!(err, ClientError::Timeout { phase: Phase::Write, .. }), "{err:?}");
        assert!(err.to_string().contains("writing the request"), "{err}");
        assert_eq!(c.open_connections(), 0, "the stuck connection is closed");
        let _ = release.send(());
        holder.join().expect("the holder thread");
        let _ = std::fs::remove_dir_all(&dir);
    }
);

scenario!(
    /// A listener whose backlog is full leaves further connects unanswered (the kernel
    /// drops their SYNs): the 300 ms connect timeout fires, naming the phase and the
    /// address.
    connect_timeout_on_an_unanswered_connect, &[], Isolation::Shared, |a| {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let address = listener.local_addr().expect("its address");
        // Fill the backlog with connects nobody accepts.
        let mut held = Vec::new();
        let start = Instant::now();
        while held.len() < 512 && start.elapsed() < Duration::from_secs(2) {
            match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(50)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        let settings = Settings { connect_timeout: Some(Duration::from_millis(300)), ..Settings::default() };
        let c = client(a, Address::from(address), settings);
        let start = Instant::now();
        let err = c.request(TestRequest::new(Params::new())).await.unwrap_err();
        let elapsed = start.elapsed();
        assert!(matches!(err, ClientError::Timeout { phase: Phase::Connect, .. }), "{err:?}");
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1200),
            "{elapsed:?}"
        );
        assert!(err.to_string().contains(&address.to_string()), "{err}");
        drop(held);
    }
);

scenario!(
    /// A unix socket whose listen queue is full (a server that accepts nothing more)
    /// fails the request at once, with or without a connect timeout: a connect error
    /// that names the address, with the kernel's `EAGAIN` (`WouldBlock`) as its source,
    /// as nginx answers 502 at once. A unix connect has nothing to wait for that a
    /// timeout could end, so no adapter waits for room.
    unix_connect_to_a_full_backlog_fails_at_once, &[], Isolation::Shared, |a| {
        let full = FullBacklog::start();
        let address = Address::Unix(full.socket().to_path_buf());
        // 1 s, and the adapter's default (10 s).
        for connect_timeout in [Some(Duration::from_secs(1)), None] {
            let settings = Settings { connect_timeout, ..Settings::default() };
            let c = client(a, address.clone(), settings);
            let start = Instant::now();
            let err = c.request(TestRequest::new(Params::new())).await.unwrap_err();
            let elapsed = start.elapsed();
            assert!(
                elapsed < Duration::from_secs(2),
                "{}, connect timeout {connect_timeout:?}: failed after {elapsed:?}: {err:?}",
                a.name()
            );
            match &err {
                ClientError::Connect { source, .. } => {
                    assert_eq!(source.kind(), std::io::ErrorKind::WouldBlock, "{err:?}")
                }
                other => panic!("{}: want a connect error, got {other:?}", a.name()),
            }
            assert!(err.to_string().contains(&address.to_string()), "{err}");
        }
    }
);

scenario!(
    /// With one connection allowed and in use, a second request waits for the slot
    /// within the connect timeout, then fails naming its own phase (a saturated pool,
    /// not a dead server); the slot's connection is reused afterwards.
    connect_timeout_covers_waiting_for_a_pool_slot, &[Need::SharedPool], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let settings = Settings {
            max_connections: Some(1),
            connect_timeout: Some(Duration::from_millis(300)),
            ..Settings::default()
        };
        let c = client(a, unix(fpm), settings);
        let c = &*c;
        let sleeper: LocalFuture<'_, ()> = Box::pin(async move {
            let r = ok(c, get(fpm, "sleep.php", "ms=1500"), "sleeper").await;
            assert_eq!(r.body, b"slept 1500");
        });
        let waiter: LocalFuture<'_, ()> = Box::pin(async move {
            // Let the sleeper take the only slot.
            while c.open_connections() == 0 {
                a.sleep(Duration::from_millis(5)).await;
            }
            let start = Instant::now();
            let err = c.request(get(fpm, "hello.php", "")).await.unwrap_err();
            let elapsed = start.elapsed();
            assert!(
                elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1200),
                "{elapsed:?}"
            );
            // Its own phase: a saturated pool, not a server that does not answer.
            assert!(matches!(err, ClientError::Timeout { phase: Phase::PoolSlot, .. }), "{err:?}");
            assert!(err.to_string().starts_with("no connection to FastCGI server"), "{err}");
            assert!(err.to_string().contains("free within 0.300s"), "{err}");
        });
        join_all(vec![sleeper, waiter]).await;
        assert_eq!(ok(c, get(fpm, "hello.php", ""), "after").await.body, b"Hello, World!");
        assert_eq!(c.connections_opened(), 1, "the slot's connection was reused");
    }
);

// ---- what needs a pool, cancellation, full duplex or multiplexing ----

scenario!(
    /// A script that writes 4 MiB before it reads a 50 MiB PUT body: a client that
    /// wrote the whole body before reading would wait forever.
    full_duplex_output_before_input_does_not_deadlock, &[Need::FullDuplex], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        // Writes 4 MiB, far more than socket buffers hold, before it reads its input.
        let script = fpm.write_script(
            "duplex.php",
            r#"<?php
header('Content-Type: application/octet-stream');
$chunk = str_repeat('x', 65536);
for ($i = 0; $i < 64; $i++) { echo $chunk; flush(); }
$h = hash_init('sha256');
$in = fopen('php://input', 'rb');
$n = 0;
while (!feof($in)) { $d = fread($in, 65536); $n += strlen($d); hash_update($h, $d); }
echo "\n", hash_final($h), " ", $n;
"#,
        );
        let body = random_bytes(50 * 1024 * 1024, 5);
        // PUT: php-fpm reads a POST body whole before the script starts, a PUT body
        // only when the script reads it.
        let params = ParamsBuilder::new("PUT", "/duplex.php")
            .script("/duplex.php", script.to_str().expect("UTF-8"))
            .build()
            .expect("valid params");
        let c = client(a, unix(fpm), Settings::default());
        let r = timeout(a, Duration::from_secs(60), c.request(TestRequest::new(params).body(body.clone())))
            .await
            .expect("no deadlock")
            .expect("the request");
        let tail = &r.body[64 * 65536..];
        let expected = format!("\n{} {}", hex_sha256(&body), body.len());
        assert_eq!(std::str::from_utf8(tail).expect("text"), expected);
    }
);

scenario!(
    /// 64 concurrent tasks share one client limited to 8 connections: every echo comes
    /// back to its own request, and no more than 8 connections are ever open.
    sixty_four_tasks_share_eight_connections, &[Need::SharedPool], Isolation::Shared, |a| {
        let fpm = PhpFpm::builder().max_children(10).start();
        let settings = Settings {
            max_connections: Some(8),
            ..Settings::default()
        };
        let c = client(a, unix(&fpm), settings);
        let peak = Cell::new(0usize);
        let (c, fpm_ref, peak_ref) = (&*c, &fpm, &peak);
        let tasks: Vec<LocalFuture<'_, ()>> = (0..64u64)
            .map(|task| {
                Box::pin(async move {
                    for i in 0..157 {
                        let body = format!("task {task} request {i}");
                        let r = ok(c, echo(fpm_ref, body.clone()), &body).await;
                        assert_eq!(r.body, body.as_bytes());
                        peak_ref.set(peak_ref.get().max(c.open_connections()));
                    }
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        assert!(peak.get() <= 8, "{} open at once", peak.get());
        assert!(c.connections_opened() <= 8, "{}", c.connections_opened());
    }
);

scenario!(
    /// The first upstream refuses: requests fail over to the second.
    failover_to_the_next_upstream, &[Need::SharedPool], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let missing = Address::Unix("/nonexistent/php.sock".into());
        let c = a.client(vec![missing, unix(fpm)], Settings::default()).expect("a client");
        for _ in 0..4 {
            assert_eq!(ok(&*c, get(fpm, "hello.php", ""), "failover").await.status, 200);
        }
    }
);

scenario!(
    /// `pm.max_requests = 1` under 8 concurrent tasks × 50 echoes on 4 connections:
    /// every kept connection goes stale, and no request fails.
    max_requests_one_under_concurrent_load, &[Need::SharedPool], Isolation::Shared, |a| {
        let fpm = PhpFpm::builder().max_children(8).max_requests(1).start();
        let settings = Settings {
            max_connections: Some(4),
            ..Settings::default()
        };
        let c = client(a, unix(&fpm), settings);
        let (c, fpm_ref) = (&*c, &fpm);
        let tasks: Vec<LocalFuture<'_, Vec<String>>> = (0..8)
            .map(|task| {
                Box::pin(async move {
                    let mut errors = Vec::new();
                    for i in 0..50 {
                        let body = format!("task {task} request {i}");
                        match c.request(echo(fpm_ref, body.clone())).await {
                            Ok(r) => assert_eq!(r.body, body.as_bytes(), "{body}"),
                            Err(e) => errors.push(format!("{body}: {e}")),
                        }
                    }
                    errors
                }) as LocalFuture<'_, Vec<String>>
            })
            .collect();
        let errors: Vec<String> = join_all(tasks).await.into_iter().flatten().collect();
        assert!(errors.is_empty(), "{} errors, first: {}", errors.len(), errors[0]);
        assert!(c.open_connections() <= 4);
    }
);

scenario!(
    /// php-fpm killed (master and workers) and restarted while 4 tasks send echoes:
    /// the requests in flight fail with I/O, protocol or connect errors naming the
    /// address, every answer that arrives is its own request's, and 100 requests
    /// succeed after the restart.
    php_fpm_killed_and_restarted_during_a_concurrent_run, &[Need::SharedPool], Isolation::Shared, |a| {
        let fpm = PhpFpm::builder().max_children(6).start();
        let address = unix(&fpm);
        // The socket and the scripts keep their paths across the restart.
        let echo_params = fpm.params("POST", "echo.php", "");
        let fpm_slot = RefCell::new(Some(fpm));
        let fpm_slot = &fpm_slot;
        let settings = Settings {
            max_connections: Some(4),
            connect_timeout: Some(Duration::from_secs(2)),
            ..Settings::default()
        };
        let c = client(a, address.clone(), settings);
        let (c, address_text) = (&*c, &address.to_string());
        let (stop, succeeded, failed) = (Cell::new(false), Cell::new(0u64), Cell::new(0u64));
        let (stop, succeeded, failed) = (&stop, &succeeded, &failed);
        let echo_request = |body: String| TestRequest::new(echo_params.clone()).body(body);
        let echo_request = &echo_request;
        let mut tasks: Vec<LocalFuture<'_, ()>> = (0..4)
            .map(|task| {
                Box::pin(async move {
                    let mut i = 0u64;
                    while !stop.get() {
                        i += 1;
                        let body = format!("task {task} request {i}");
                        match c.request(echo_request(body.clone())).await {
                            Ok(r) => {
                                assert_eq!(r.body, body.as_bytes());
                                succeeded.set(succeeded.get() + 1);
                            }
                            Err(e) => {
                                assert!(
                                    matches!(e, ClientError::Io { .. } | ClientError::Protocol { .. } | ClientError::Connect { .. }),
                                    "unexpected error kind: {e:?}"
                                );
                                assert!(e.to_string().contains(address_text), "{e}");
                                failed.set(failed.get() + 1);
                                a.sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                }) as LocalFuture<'_, ()>
            })
            .collect();
        tasks.push(Box::pin(async move {
            a.sleep(Duration::from_millis(300)).await;
            let before = succeeded.get();
            assert!(before > 0);
            // On another thread, so that the requests keep running (and failing) while
            // php-fpm is down.
            let mut fpm = fpm_slot.borrow_mut().take().expect("php-fpm");
            let restarter = std::thread::spawn(move || {
                fpm.kill_master();
                std::thread::sleep(Duration::from_millis(200));
                fpm.restart();
                fpm
            });
            while !restarter.is_finished() {
                a.sleep(Duration::from_millis(5)).await;
            }
            *fpm_slot.borrow_mut() = Some(restarter.join().expect("the restart"));
            a.sleep(Duration::from_millis(300)).await;
            stop.set(true);
            assert!(succeeded.get() > before, "requests succeeded after the restart");
        }));
        join_all(tasks).await;
        assert!(failed.get() > 0, "the kill failed some requests");
        for i in 0..100 {
            let body = format!("after {i}");
            let r = ok(c, echo_request(body.clone()), &body).await;
            assert_eq!(r.body, body.as_bytes());
        }
    }
);

scenario!(
    /// 1000 requests dropped at random points (future dropped mid-way, stream dropped
    /// half-read, dropped after the first poll), then 1000 normal requests all correct.
    dropped_requests_never_corrupt_the_pool, &[Need::SharedPool, Need::Cancellation], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let settings = Settings {
            max_connections: Some(3),
            ..Settings::default()
        };
        let c = client(a, unix(fpm), settings);
        let seed = Cell::new(0x9E37_79B9_7F4A_7C15u64);
        for i in 0..1000u64 {
            let s = next(&seed);
            let request = echo(fpm, format!("cancelled {i}"));
            let cut = Duration::from_micros(s % 400);
            match s % 3 {
                0 => {
                    let _ = timeout(a, cut, c.request(request)).await;
                }
                1 => {
                    let mut one_chunk = |_: &[u8]| Flow::Stop;
                    let _ = timeout(a, cut * 10, c.stream(request, &mut one_chunk)).await;
                }
                _ => poll_once_then_drop(c.request(request)).await,
            }
        }
        for i in 0..1000 {
            let body = format!("normal {i}");
            let r = ok(&*c, echo(fpm, body.clone()), &body).await;
            assert_eq!(r.body, body.as_bytes());
        }
        assert!(c.open_connections() <= 3);
    }
);

/// Params for a flup route (`/hello`, `/echo`, `/sleep?ms=N`, `/large?bytes=N`).
fn flup_request(method: &str, uri: &str) -> TestRequest {
    let path = uri.split('?').next().unwrap_or(uri);
    TestRequest::new(
        ParamsBuilder::new(method, uri)
            .script(path, path)
            .server_name("localhost")
            .server_addr("127.0.0.1:80".parse().expect("an address"))
            .build()
            .expect("valid params"),
    )
}

fn multiplexed() -> Settings {
    Settings {
        multiplex: true,
        ..Settings::default()
    }
}

scenario!(
    /// flup multiplexes: 100 concurrent echoes, each answered with its own body, over
    /// one connection.
    flup_hundred_concurrent_echoes_share_one_connection, &[Need::Multiplexing], Isolation::Shared, |a| {
        let flup = Flup::shared();
        let values = client(a, Address::Unix(flup.unix_socket().to_path_buf()), Settings::default())
            .get_values(&["FCGI_MPXS_CONNS"]).await.expect("values");
        assert!(values.multiplexes(), "{values:?}");
        assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"1"[..]));
        let values = client(a, Address::Unix(flup.unix_socket().to_path_buf()), Settings::default())
            .get_values(&["FCGI_MAX_REQS", "FCGI_MAX_CONNS"]).await.expect("values");
        assert_eq!(values.max_requests(), Some(flup.max_reqs()));
        assert_eq!(values.max_connections(), Some(flup.max_conns()));
        let c = discovered(a, Address::Unix(flup.unix_socket().to_path_buf()), multiplexed()).await;
        ok(&*c, flup_request("GET", "/hello"), "hello").await;
        let c = &*c;
        let tasks: Vec<LocalFuture<'_, ()>> = (0..100u64)
            .map(|i| {
                Box::pin(async move {
                    let body = random_bytes(1000 + i as usize * 997, i);
                    let r = ok(c, flup_request("POST", "/echo").body(body.clone()), "echo").await;
                    assert!(r.body == body, "echo {i} came back different");
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// On a multiplexed connection a fast request finishes while a 2 s one is in flight.
    flup_slow_request_does_not_hold_back_a_fast_one, &[Need::Multiplexing], Isolation::Shared, |a| {
        let flup = Flup::shared();
        let c = discovered(a, Address::Unix(flup.unix_socket().to_path_buf()), multiplexed()).await;
        ok(&*c, flup_request("GET", "/hello"), "hello").await;
        let c = &*c;
        let slow_done = Cell::new(None);
        let fast_time = Cell::new(None);
        let slow_done_ref = &slow_done;
        let slow: LocalFuture<'_, ()> = Box::pin(async move {
            let start = Instant::now();
            let r = ok(c, flup_request("GET", "/sleep?ms=2000"), "slow").await;
            assert_eq!(r.body, b"slept 2000");
            slow_done_ref.set(Some(start.elapsed()));
        });
        let fast_time_ref = &fast_time;
        let fast: LocalFuture<'_, ()> = Box::pin(async move {
            a.sleep(Duration::from_millis(100)).await;
            let start = Instant::now();
            let r = ok(c, flup_request("GET", "/hello"), "fast").await;
            assert_eq!(r.body, b"Hello, World!");
            assert!(slow_done_ref.get().is_none(), "the slow request is still in flight");
            fast_time_ref.set(Some(start.elapsed()));
        });
        join_all(vec![slow, fast]).await;
        let fast = fast_time.get().expect("the fast request finished");
        // Held back, it would have taken at least 1.9 s (the slow one's 2 s less 0.1 s).
        assert!(fast < Duration::from_millis(1500), "{fast:?}");
        assert!(slow_done.get().expect("the slow one finished") >= Duration::from_millis(2000));
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// 100 concurrent 256 KiB responses (4 pieces, 20 ms apart) on one multiplexed
    /// connection: each body is whole and its own, and their records interleave (more
    /// than one response has body bytes before the first one ends).
    flup_concurrent_large_responses_interleave, &[Need::Multiplexing], Isolation::Shared, |a| {
        const LEN: u64 = 256 * 1024;
        let flup = Flup::shared();
        let c = discovered(a, Address::Unix(flup.unix_socket().to_path_buf()), multiplexed()).await;
        // The order in which body pieces (false) and ends (true) arrived.
        let log: RefCell<Vec<(u64, bool)>> = RefCell::default();
        let (c, log_ref) = (&*c, &log);
        let tasks: Vec<LocalFuture<'_, ()>> = (0..100u64)
            .map(|i| {
                Box::pin(async move {
                    let mut offset = 0u64;
                    let mut expected = Vec::new();
                    let mut check = |chunk: &[u8]| {
                        log_ref.borrow_mut().push((i, false));
                        expected.resize(chunk.len(), 0);
                        fill_large_body(offset, &mut expected);
                        assert!(chunk == &expected[..], "request {i} at {offset}");
                        offset += chunk.len() as u64;
                        Flow::Continue
                    };
                    let request = flup_request("GET", &format!("/large?bytes={LEN}&pause_ms=20"));
                    let s = c.stream(request, &mut check).await.expect("stream");
                    log_ref.borrow_mut().push((i, true));
                    assert_eq!(s.body_bytes, LEN);
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        let log = log.borrow();
        let first_end = log.iter().position(|&(_, end)| end).expect("an end");
        let mut started: Vec<u64> = log[..first_end].iter().map(|&(i, _)| i).collect();
        started.sort_unstable();
        started.dedup();
        println!("{} of 100 requests had body bytes before the first one ended", started.len());
        assert!(started.len() > 1, "responses did not interleave");
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// 50 requests dropped at random points on a multiplexed connection abort alone:
    /// 100 requests after them are all correct, on the same one connection.
    flup_dropped_requests_abort_alone, &[Need::Multiplexing, Need::Cancellation], Isolation::Shared, |a| {
        let flup = Flup::shared();
        let c = discovered(a, Address::Unix(flup.unix_socket().to_path_buf()), multiplexed()).await;
        ok(&*c, flup_request("GET", "/hello"), "hello").await;
        let c = &*c;
        let seed = Cell::new(0x9E37_79B9_7F4A_7C15u64);
        let drops: Vec<LocalFuture<'_, ()>> = (0..50u64)
            .map(|i| {
                let s = next(&seed);
                let cut = Duration::from_micros(s % 20_000);
                Box::pin(async move {
                    match s % 4 {
                        // Before the head: the server sleeps first.
                        0 => {
                            let r = timeout(a, cut, c.request(flup_request("GET", &format!("/sleep?ms={}", 50 + i)))).await;
                            assert!(r.is_none(), "the sleep cannot be done yet");
                        }
                        // A large response dropped after some of its body.
                        1 => {
                            let mut pieces = 1 + s % 5;
                            let mut some = |_: &[u8]| {
                                pieces -= 1;
                                if pieces == 0 { Flow::Stop } else { Flow::Continue }
                            };
                            c.stream(flup_request("GET", "/large?bytes=1048576"), &mut some).await.expect("stream");
                        }
                        // An echo dropped at a random point, maybe mid-body.
                        2 => {
                            let body = random_bytes(100_000 + i as usize, i);
                            let _ = timeout(a, cut, c.request(flup_request("POST", "/echo").body(body))).await;
                        }
                        _ => poll_once_then_drop(c.request(flup_request("GET", "/large?bytes=100000"))).await,
                    }
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(drops).await;
        let tasks: Vec<LocalFuture<'_, ()>> = (0..100u64)
            .map(|i| {
                Box::pin(async move {
                    let body = format!("normal request {i}").repeat(1 + i as usize * 10);
                    let r = ok(c, flup_request("POST", "/echo").body(body.clone()), "echo").await;
                    assert_eq!(r.body, body.as_bytes(), "request {i}");
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        assert_eq!(c.connections_opened(), 1, "aborts broke the connection");
    }
);

scenario!(
    /// A 1 MiB body from a reader and a response with stderr, side by side on one
    /// multiplexed connection: the body comes back whole, stderr stays apart.
    flup_body_and_stderr_on_a_multiplexed_connection, &[Need::Multiplexing], Isolation::Shared, |a| {
        let flup = Flup::shared();
        let c = discovered(a, Address::Unix(flup.unix_socket().to_path_buf()), multiplexed()).await;
        ok(&*c, flup_request("GET", "/hello"), "hello").await;
        let whole = random_bytes(64 * 16 * 1024, 99);
        let mut echo = flup_request("POST", "/echo");
        echo.body = TestBody::Reader { data: whole.clone(), declared: whole.len() as u64 };
        let c = &*c;
        let (echoed, stderr) = (RefCell::new(None), RefCell::new(None));
        let (echoed_ref, stderr_ref) = (&echoed, &stderr);
        join_all(vec![
            Box::pin(async move { *echoed_ref.borrow_mut() = Some(ok(c, echo, "echo").await) }) as LocalFuture<'_, ()>,
            Box::pin(async move { *stderr_ref.borrow_mut() = Some(ok(c, flup_request("GET", "/stderr"), "stderr").await) }),
        ])
        .await;
        let echoed = echoed.into_inner().expect("the echo");
        assert_eq!(echoed.header("x-body-sha256"), Some(hex_sha256(&whole).as_str()));
        assert!(echoed.body == whole, "the echo differs");
        let stderr = stderr.into_inner().expect("the stderr response");
        assert_eq!(stderr.body, b"one\ntwo\n");
        let text = String::from_utf8_lossy(&stderr.stderr);
        assert!(text.contains("first message\n") && text.contains("second message\n"), "{text:?}");
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// On a multiplexed connection a read timeout fails only its request, and so does
    /// a total timeout; the connection carries on for the others.
    flup_timeouts_fail_one_request_and_spare_the_others, &[Need::Multiplexing], Isolation::Shared, |a| {
        let flup = Flup::shared();
        let address = Address::Unix(flup.unix_socket().to_path_buf());
        let settings = Settings { read_timeout: Some(Duration::from_millis(300)), ..multiplexed() };
        let c = discovered(a, address.clone(), settings).await;
        ok(&*c, flup_request("GET", "/hello"), "hello").await;
        let c = &*c;
        let slow_error = RefCell::new(None);
        let slow_error_ref = &slow_error;
        join_all(vec![
            Box::pin(async move {
                *slow_error_ref.borrow_mut() = c.request(flup_request("GET", "/sleep?ms=1500")).await.err();
            }) as LocalFuture<'_, ()>,
            Box::pin(async move {
                a.sleep(Duration::from_millis(50)).await;
                for _ in 0..5 {
                    assert_eq!(ok(c, flup_request("GET", "/hello"), "beside").await.body, b"Hello, World!");
                }
            }),
        ])
        .await;
        let err = slow_error.into_inner().expect("the slow request timed out");
        assert!(is_read_timeout(&err), "{err:?}");

        let settings = Settings { total_timeout: Some(Duration::from_millis(300)), ..multiplexed() };
        let bounded = discovered(a, address, settings).await;
        ok(&*bounded, flup_request("GET", "/hello"), "hello").await;
        let start = Instant::now();
        let err = bounded.request(flup_request("GET", "/sleep?ms=1500")).await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        // Before the response's 1.5 s: the 300 ms bound, with room for a loaded machine.
        assert!(start.elapsed() < Duration::from_millis(1400), "{:?}", start.elapsed());
        for client in [c, &*bounded] {
            assert_eq!(ok(client, flup_request("GET", "/hello"), "after").await.body, b"Hello, World!");
            assert_eq!(client.connections_opened(), 1);
        }
    }
);

scenario!(
    /// FCGI_MAX_REQS=10: 100 concurrent requests take 10 per connection on all 8
    /// connections the pool allows (the rest wait); sequential ones fit on one.
    flup_a_full_connection_spills_onto_another, &[Need::Multiplexing], Isolation::Shared, |a| {
        let flup = Flup::builder().max_reqs(10).start();
        let address = Address::Unix(flup.unix_socket().to_path_buf());
        let settings = Settings { max_connections: Some(8), ..multiplexed() };
        let c = discovered(a, address.clone(), settings.clone()).await;
        let c = &*c;
        let tasks: Vec<LocalFuture<'_, ()>> = (0..100)
            .map(|_| {
                Box::pin(async move {
                    assert_eq!(ok(c, flup_request("GET", "/sleep?ms=100"), "sleep").await.body, b"slept 100");
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        assert_eq!(c.connections_opened(), 8);
        let sequential = discovered(a, address, settings).await;
        for _ in 0..20 {
            ok(&*sequential, flup_request("GET", "/hello"), "hello").await;
        }
        assert_eq!(sequential.connections_opened(), 1);
    }
);

scenario!(
    /// The server goes away under a multiplexed connection: requests waiting for their
    /// head (with bodies that cannot be sent again) and responses being read all fail
    /// with I/O or protocol errors at once; the connection leaves the pool.
    flup_a_broken_connection_fails_every_request_on_it, &[Need::Multiplexing], Isolation::Shared, |a| {
        let flup = Flup::start();
        let c = discovered(a, Address::Unix(flup.unix_socket().to_path_buf()), multiplexed()).await;
        ok(&*c, flup_request("GET", "/hello"), "hello").await;
        let c = &*c;
        let broken = |err: &ClientError| matches!(err, ClientError::Io { .. } | ClientError::Protocol { .. });
        let flup_slot = RefCell::new(Some(flup));
        let flup_slot = &flup_slot;
        let stopped_at = Cell::new(None);
        let stopped_at = &stopped_at;
        let mut tasks: Vec<LocalFuture<'_, ()>> = Vec::new();
        for _ in 0..3 {
            tasks.push(Box::pin(async move {
                let mut request = flup_request("POST", "/sleep?ms=5000");
                request.body = TestBody::Reader { data: b"x".to_vec(), declared: 1 };
                let err = c.request(request).await.expect_err("the server went away");
                assert!(broken(&err), "waiting for its head: {err:?}");
            }));
        }
        for _ in 0..3 {
            tasks.push(Box::pin(async move {
                let mut got = 0u64;
                let mut count = |chunk: &[u8]| {
                    got += chunk.len() as u64;
                    Flow::Continue
                };
                let err = c.stream(flup_request("GET", "/large?bytes=100000000"), &mut count).await.expect_err("the server went away");
                assert!(broken(&err), "reading its body: {err:?}");
                assert!(got > 0);
            }));
        }
        tasks.push(Box::pin(async move {
            a.sleep(Duration::from_millis(400)).await;
            assert_eq!(c.connections_opened(), 1);
            let mut flup = flup_slot.borrow_mut().take().expect("flup");
            stopped_at.set(Some(Instant::now()));
            let stopper = std::thread::spawn(move || flup.stop());
            while !stopper.is_finished() {
                a.sleep(Duration::from_millis(5)).await;
            }
            stopper.join().expect("flup stopped");
        }));
        join_all(tasks).await;
        let stopped_at = stopped_at.get().expect("flup was stopped");
        assert!(stopped_at.elapsed() < Duration::from_secs(3));
        let deadline = Instant::now() + Duration::from_secs(1);
        while c.open_connections() > 0 && Instant::now() < deadline {
            a.sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(c.open_connections(), 0);
        let err = c.request(flup_request("GET", "/hello")).await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }
);

scenario!(
    /// A server that never answers GET_VALUES (it holds the probe's connection for 3 s,
    /// then drops it) and closes every connection after END_REQUEST. With multiplexing
    /// asked for, a 1 s connect timeout (the probe's bound) and a 1 s total timeout, 52
    /// requests, 4 at a time, all succeed one per connection and none waits for the
    /// probe: each takes well under its bound. After the probe gave up, requests go on.
    silent_get_values_never_holds_a_request_back, &[Need::Multiplexing], Isolation::Shared, |a| {
        let server = Silent::start(Duration::from_secs(3));
        let settings = Settings {
            connect_timeout: Some(Duration::from_secs(1)),
            total_timeout: Some(Duration::from_secs(1)),
            max_connections: Some(4),
            ..multiplexed()
        };
        let c = client(a, Address::Unix(server.socket().to_path_buf()), settings);
        let c = &*c;
        let request = || TestRequest::new(ParamsBuilder::get("/srv/hello.php", "/hello.php").build().expect("params"));
        let slowest = Cell::new(Duration::ZERO);
        let slowest = &slowest;
        let round = |n: usize| {
            join_all((0..4).map(|_| {
                Box::pin(async move {
                    for _ in 0..n {
                        let start = Instant::now();
                        let r = ok(c, request(), "hello").await;
                        assert_eq!((r.status, &r.body[..]), (200, silent::BODY));
                        slowest.set(slowest.get().max(start.elapsed()));
                    }
                }) as LocalFuture<'_, ()>
            }).collect())
        };
        round(13).await;
        assert_eq!(server.requests_served(), 52);
        assert_eq!(server.probes_seen(), 1, "one probe at a time");
        assert!(slowest.get() < Duration::from_millis(500), "a request took {:?}", slowest.get());
        // The probe gives up after its 1 s bound; requests carry on one per connection.
        c.discover_multiplexing().await;
        round(2).await;
        assert_eq!(server.requests_served(), 60);
        assert!(slowest.get() < Duration::from_millis(500), "a request took {:?}", slowest.get());
        assert_eq!(c.connections_opened(), 60, "the server closes each connection");
    }
);

scenario!(
    /// php-fpm says it does not multiplex: with multiplexing asked for, sequential
    /// requests still share one kept connection, concurrent ones take one each.
    php_fpm_with_multiplex_keeps_one_request_per_connection, &[Need::Multiplexing], Isolation::Shared, |a| {
        let fpm = shared_fpm();
        let mut settings = multiplexed();
        settings.max_connections = Some(3);
        let c = discovered(a, unix(fpm), settings).await;
        for _ in 0..5 {
            assert_eq!(ok(&*c, get(fpm, "hello.php", ""), "hello").await.body, b"Hello, World!");
        }
        assert_eq!(c.connections_opened(), 1);
        let c = &*c;
        let tasks: Vec<LocalFuture<'_, ()>> = (0..6)
            .map(|_| {
                Box::pin(async move {
                    let r = ok(c, get(fpm, "sleep.php", "ms=200"), "sleep").await;
                    assert_eq!(r.body, b"slept 200");
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        assert_eq!(c.connections_opened(), 3);
        assert!(c.open_connections() <= 3);
    }
);

// ---- other server lineages, in files of their own ----

#[path = "libfcgi.rs"]
mod libfcgi_scenarios;
pub use libfcgi_scenarios::*;

#[path = "gofcgi.rs"]
mod gofcgi_scenarios;
pub use gofcgi_scenarios::*;

#[path = "uwsgi.rs"]
mod uwsgi_scenarios;
pub use uwsgi_scenarios::*;
