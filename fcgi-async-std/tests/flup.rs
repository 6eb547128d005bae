//! fcgi-async-std against flup, a server that multiplexes requests on one connection
//! (`Options::multiplex`), and against php-fpm with the same option (which must keep
//! one request per connection). The driver task of each multiplexed connection runs on
//! the executor the crate's features choose; the tests' own tasks run on async-std and
//! on smol.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{timeout, Rt, Xorshift};
use fcgi_async_std::{Address, Body, Client, Error, Options, Phase, Request};
use fcgi_proto::{Params, ParamsBuilder};
use fcgi_testkit::{hex_sha256, random_bytes, Flup, PhpFpm};

on_both_runtimes!(
    get_values_says_flup_multiplexes,
    hundred_concurrent_echoes_share_one_connection,
    concurrent_large_responses_interleave,
    slow_request_does_not_hold_back_a_fast_one,
    dropped_requests_abort_alone_and_the_connection_carries_on,
    timeouts_fail_one_request_and_spare_the_others,
);

on_async_std!(
    streamed_body_and_stderr_on_a_multiplexed_connection,
    a_full_connection_spills_onto_another,
    a_broken_connection_fails_every_request_on_it,
    php_fpm_with_multiplex_keeps_one_request_per_connection,
);

fn mux_options() -> Options {
    let mut options = Options::default();
    options.multiplex = true;
    options
}

fn client(socket: &std::path::Path, options: Options) -> Client {
    Client::with_upstreams([Address::Unix(socket.to_path_buf())], options).unwrap()
}

/// Params for a flup route (`/hello`, `/echo`, `/sleep?ms=N`, ...).
fn params(method: &str, uri: &str) -> Params {
    let path = uri.split('?').next().unwrap();
    ParamsBuilder::new(method, uri)
        .script(path, path)
        .server_name("localhost")
        .server_addr("127.0.0.1:80".parse().unwrap())
        .build()
        .unwrap()
}

fn get(uri: &str) -> Request {
    Request::new(params("GET", uri))
}

fn echo(body: impl Into<Body>) -> Request {
    Request::new(params("POST", "/echo")).body(body)
}

async fn get_values_says_flup_multiplexes(_rt: Rt) {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), Options::default());
    let values = client
        .get_values(&["FCGI_MPXS_CONNS", "FCGI_MAX_REQS", "FCGI_MAX_CONNS"])
        .await
        .unwrap();
    assert!(values.multiplexes(), "{values:?}");
    assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"1"[..]));
    assert_eq!(values.max_requests(), Some(flup.max_reqs()));
    assert_eq!(values.max_connections(), Some(flup.max_conns()));
}

async fn hundred_concurrent_echoes_share_one_connection(rt: Rt) {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), mux_options());
    // One request first: discovery and the connection are then out of the timing.
    let hello = client.request(get("/hello")).await.unwrap();
    assert_eq!(&hello.body[..], b"Hello, World!");
    assert_eq!(client.upstream_multiplexes(0), Some(true));

    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let client = client.clone();
        tasks.push(rt.spawn(async move {
            // Sizes from empty to 200 KiB, each body its own bytes.
            let body = random_bytes((i as usize * 2053) % (200 * 1024), i + 1);
            let response = client.request(echo(body.clone())).await.unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(
                response.header("x-body-sha256"),
                Some(hex_sha256(&body).as_str()),
                "request {i}"
            );
            assert!(
                response.body[..] == body[..],
                "request {i} got another body"
            );
        }));
    }
    for task in tasks {
        task.await;
    }
    eprintln!(
        "{rt:?}: 100 concurrent echo requests (0-200 KiB) over one multiplexed connection: {:?}",
        start.elapsed()
    );
    assert_eq!(client.connections_opened(), 1);
    assert_eq!(client.open_connections(), 1);
}

async fn concurrent_large_responses_interleave(rt: Rt) {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), mux_options());
    // Four 64 KiB pieces each, with 20 ms between pieces (flup's threads take turns).
    const LEN: usize = 256 * 1024;
    // The order in which body pieces and ends arrived: (request, piece or end).
    let log: Arc<Mutex<Vec<(usize, bool)>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..50usize {
        let client = client.clone();
        let log = log.clone();
        tasks.push(rt.spawn(async move {
            let mut stream = client
                .request_streaming(get(&format!("/large?bytes={LEN}&pause_ms=20")))
                .await
                .unwrap();
            let mut offset = 0u64;
            let mut expected = Vec::new();
            while let Some(chunk) = stream.chunk().await.unwrap() {
                log.lock().unwrap().push((i, false));
                expected.resize(chunk.len(), 0);
                fcgi_testkit::fill_large_body(offset, &mut expected);
                assert!(chunk[..] == expected[..], "request {i} at {offset}");
                offset += chunk.len() as u64;
            }
            log.lock().unwrap().push((i, true));
            assert_eq!(offset, LEN as u64);
        }));
    }
    for task in tasks {
        task.await;
    }
    let log = log.lock().unwrap();
    let first_end = log.iter().position(|&(_, end)| end).unwrap();
    let mut started: Vec<usize> = log[..first_end].iter().map(|&(i, _)| i).collect();
    started.sort_unstable();
    started.dedup();
    assert!(
        started.len() > 1,
        "responses did not interleave: {:?}",
        &log[..first_end]
    );
    assert_eq!(client.connections_opened(), 1);
}

async fn slow_request_does_not_hold_back_a_fast_one(rt: Rt) {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), mux_options());
    client.request(get("/hello")).await.unwrap();
    let done = Arc::new(Mutex::new(false));
    let slow = {
        let (client, done) = (client.clone(), done.clone());
        rt.spawn(async move {
            let start = Instant::now();
            let response = client.request(get("/sleep?ms=2000")).await.unwrap();
            *done.lock().unwrap() = true;
            (response, start.elapsed())
        })
    };
    common::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let fast = client.request(get("/hello")).await.unwrap();
    let fast_time = start.elapsed();
    assert_eq!(&fast.body[..], b"Hello, World!");
    assert!(
        !*done.lock().unwrap(),
        "the slow request is still in flight"
    );
    assert!(fast_time < Duration::from_millis(500), "{fast_time:?}");
    let (slow, slow_time) = slow.await;
    assert_eq!(&slow.body[..], b"slept 2000");
    assert!(slow_time >= Duration::from_millis(2000));
    assert_eq!(client.connections_opened(), 1);
}

async fn dropped_requests_abort_alone_and_the_connection_carries_on(rt: Rt) {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), mux_options());
    client.request(get("/hello")).await.unwrap();
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut drops = Vec::new();
    for i in 0..50u64 {
        let seed = random.next();
        let client = client.clone();
        let cut = Duration::from_micros(seed % 20_000);
        drops.push(rt.spawn(async move {
            match seed % 4 {
                // Drop the future before the head (the server sleeps first).
                0 => {
                    let request = get(&format!("/sleep?ms={}", 50 + i));
                    let r = timeout(cut, client.request(request)).await;
                    assert!(r.is_none(), "the sleep cannot be done yet");
                }
                // Drop a large response after some of its body.
                1 => {
                    let mut stream = client
                        .request_streaming(get("/large?bytes=1048576"))
                        .await
                        .unwrap();
                    for _ in 0..1 + seed % 5 {
                        stream.chunk().await.unwrap().unwrap();
                    }
                }
                // Drop an echo at a random point, maybe while its body is on the way.
                2 => {
                    let body = random_bytes(100_000 + i as usize, i);
                    let _ = timeout(cut, client.request(echo(body))).await;
                }
                // Drop right after the first poll.
                _ => {
                    let mut future = Box::pin(client.request(get("/large?bytes=100000")));
                    let _ = futures_util::poll!(future.as_mut());
                }
            }
        }));
    }
    for task in drops {
        task.await;
    }
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let client = client.clone();
        tasks.push(rt.spawn(async move {
            let body = format!("normal request {i}").repeat(1 + i as usize * 10);
            let response = client.request(echo(body.clone())).await.unwrap();
            assert_eq!(response.body, Bytes::from(body), "request {i}");
        }));
    }
    for task in tasks {
        task.await;
    }
    assert_eq!(
        client.connections_opened(),
        1,
        "aborts broke the connection"
    );
    assert_eq!(client.open_connections(), 1);
}

async fn timeouts_fail_one_request_and_spare_the_others(rt: Rt) {
    let flup = Flup::shared();
    let mut options = mux_options();
    options.read_timeout = Some(Duration::from_millis(300));
    let client = client(flup.unix_socket(), options);
    client.request(get("/hello")).await.unwrap();
    let slow = {
        let client = client.clone();
        rt.spawn(async move { client.request(get("/sleep?ms=1500")).await })
    };
    common::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        let response = client.request(get("/hello")).await.unwrap();
        assert_eq!(&response.body[..], b"Hello, World!");
    }
    let err = slow.await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: Phase::Read,
                ..
            }
        ),
        "{err}"
    );

    // The total timeout too, on a client of its own.
    let mut options = mux_options();
    options.total_timeout = Some(Duration::from_millis(300));
    let bounded = self::client(flup.unix_socket(), options);
    bounded.request(get("/hello")).await.unwrap();
    let start = Instant::now();
    let err = bounded.request(get("/sleep?ms=1500")).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() < Duration::from_millis(1000));

    // Both connections carry on.
    for client in [&client, &bounded] {
        let response = client.request(get("/hello")).await.unwrap();
        assert_eq!(&response.body[..], b"Hello, World!");
        assert_eq!(client.connections_opened(), 1);
    }
}

async fn streamed_body_and_stderr_on_a_multiplexed_connection(_rt: Rt) {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), mux_options());
    // A body from a stream, 64 pieces of 16 KiB: taken in turn while responses flow.
    let whole = random_bytes(64 * 16 * 1024, 99);
    let pieces: Vec<std::io::Result<Bytes>> = whole
        .chunks(16 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures_util::stream::iter(pieces), whole.len() as u64);
    let (echoed, stderr) =
        futures_util::join!(client.request(echo(body)), client.request(get("/stderr")));
    let echoed = echoed.unwrap();
    assert_eq!(
        echoed.header("x-body-sha256"),
        Some(hex_sha256(&whole).as_str())
    );
    assert!(echoed.body[..] == whole[..]);
    let stderr = stderr.unwrap();
    assert_eq!(&stderr.body[..], b"one\ntwo\n");
    let text = String::from_utf8_lossy(&stderr.stderr);
    assert!(text.contains("first message\n"), "{text:?}");
    assert!(text.contains("second message\n"), "{text:?}");
    assert_eq!(client.connections_opened(), 1);
}

async fn a_full_connection_spills_onto_another(rt: Rt) {
    // FCGI_MAX_REQS=10: at most 10 requests per connection, 8 connections (the default
    // max_connections) for 100 requests; the rest wait for a free slot.
    let flup = Flup::builder().max_reqs(10).start();
    let client = client(flup.unix_socket(), mux_options());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = client.clone();
        tasks.push(rt.spawn(async move {
            let response = client.request(get("/sleep?ms=100")).await.unwrap();
            assert_eq!(&response.body[..], b"slept 100");
        }));
    }
    for task in tasks {
        task.await;
    }
    assert_eq!(client.connections_opened(), 8);

    // Sequential requests all fit on the first connection.
    let sequential = self::client(flup.unix_socket(), mux_options());
    for _ in 0..20 {
        sequential.request(get("/hello")).await.unwrap();
    }
    assert_eq!(sequential.connections_opened(), 1);
}

async fn a_broken_connection_fails_every_request_on_it(rt: Rt) {
    let mut flup = Flup::start();
    let client = client(flup.unix_socket(), mux_options());
    client.request(get("/hello")).await.unwrap();
    let broken = |err: &Error| matches!(err, Error::Io { .. } | Error::Protocol { .. });
    // Requests waiting for their head, with bodies that cannot be sent again.
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let client = client.clone();
        let body = Body::from_stream(
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]),
            1,
        );
        waiting.push(rt.spawn(async move {
            client
                .request(get("/sleep?ms=5000").body(body))
                .await
                .unwrap_err()
        }));
    }
    common::sleep(Duration::from_millis(200)).await;
    // Responses being read (a stream left unread would hold back the connection).
    let mut reading = Vec::new();
    for _ in 0..3 {
        let mut stream = client
            .request_streaming(get("/large?bytes=100000000"))
            .await
            .unwrap();
        reading.push(rt.spawn(async move {
            let mut got = 0;
            loop {
                match stream.chunk().await {
                    Ok(Some(chunk)) => got += chunk.len(),
                    Ok(None) => panic!("a 100 MB body ended early"),
                    Err(e) => return (e, got),
                }
            }
        }));
    }
    common::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.connections_opened(), 1);
    let start = Instant::now();
    rt.unblock(move || flup.stop()).await;
    for task in waiting {
        let err = task.await;
        assert!(broken(&err), "{err}");
    }
    for task in reading {
        let (err, got) = task.await;
        assert!(broken(&err), "{err}");
        assert!(got > 0);
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    // The broken connection left the pool (the count drops right after the errors);
    // a new request finds the server gone.
    let deadline = Instant::now() + Duration::from_secs(1);
    while client.open_connections() > 0 && Instant::now() < deadline {
        common::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.open_connections(), 0);
    let err = client.request(get("/hello")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

async fn php_fpm_with_multiplex_keeps_one_request_per_connection(rt: Rt) {
    let fpm = PhpFpm::shared();
    let mut options = mux_options();
    options.max_connections = 3;
    let client = client(fpm.unix_socket(), options);
    for _ in 0..5 {
        let response = client
            .request(common::get(fpm, "hello.php", ""))
            .await
            .unwrap();
        assert_eq!(&response.body[..], b"Hello, World!");
    }
    assert_eq!(client.upstream_multiplexes(0), Some(false));
    // As without the option: sequential requests reuse one kept connection.
    assert_eq!(client.connections_opened(), 1);

    // Concurrent requests take a connection each, within max_connections.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = client.clone();
        let request = common::get(fpm, "sleep.php", "ms=200");
        tasks.push(rt.spawn(async move { client.request(request).await.unwrap() }));
    }
    for task in tasks {
        assert_eq!(&task.await.body[..], b"slept 200");
    }
    assert_eq!(client.connections_opened(), 3);
    assert!(client.open_connections() <= 3);
}
