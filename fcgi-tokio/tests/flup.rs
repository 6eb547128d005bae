//! fcgi-tokio against flup, a server that multiplexes requests on one connection
//! (`Options::multiplex`), and against php-fpm with the same option (which must keep
//! one request per connection).

use fcgi_testkit::{hex_sha256, random_bytes};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_proto::{Params, ParamsBuilder};
use fcgi_testkit::Flup;
use fcgi_tokio::{Address, Body, Client, Error, Options, Phase, Request};

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

#[tokio::test]
async fn get_values_says_flup_multiplexes() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_body_and_stderr_on_a_multiplexed_connection() {
    let flup = Flup::shared();
    let client = client(flup.unix_socket(), mux_options());
    // A body from a stream, 64 pieces of 16 KiB: taken in turn while responses flow.
    let whole = random_bytes(64 * 16 * 1024, 99);
    let pieces: Vec<std::io::Result<Bytes>> = whole
        .chunks(16 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures_util::stream::iter(pieces), whole.len() as u64);
    let (echoed, stderr) = tokio::join!(client.request(echo(body)), client.request(get("/stderr")));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fail_one_request_and_spare_the_others() {
    let flup = Flup::shared();
    let mut options = mux_options();
    options.read_timeout = Some(Duration::from_millis(300));
    let client = client(flup.unix_socket(), options);
    client.request(get("/hello")).await.unwrap();
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.request(get("/sleep?ms=1500")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        let response = client.request(get("/hello")).await.unwrap();
        assert_eq!(&response.body[..], b"Hello, World!");
    }
    let err = slow.await.unwrap().unwrap_err();
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
    let bounded =
        Client::with_upstreams([Address::Unix(flup.unix_socket().to_path_buf())], options).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_spills_onto_another() {
    // FCGI_MAX_REQS=10: at most 10 requests per connection, 8 connections (the default
    // max_connections) for 100 requests; the rest wait for a free slot.
    let flup = Flup::builder().max_reqs(10).start();
    let client = client(flup.unix_socket(), mux_options());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.request(get("/sleep?ms=100")).await.unwrap();
            assert_eq!(&response.body[..], b"slept 100");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!(
        "100 sleeps of 100 ms, 10 per connection: {:?}",
        start.elapsed()
    );
    assert_eq!(client.connections_opened(), 8);

    // Sequential requests all fit on the first connection.
    let sequential = Client::with_upstreams(
        [Address::Unix(flup.unix_socket().to_path_buf())],
        mux_options(),
    )
    .unwrap();
    for _ in 0..20 {
        sequential.request(get("/hello")).await.unwrap();
    }
    assert_eq!(sequential.connections_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_fails_every_request_on_it() {
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
        waiting.push(tokio::spawn(async move {
            client
                .request(get("/sleep?ms=5000").body(body))
                .await
                .unwrap_err()
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Responses being read (a stream left unread would hold back the connection).
    let mut reading = Vec::new();
    for _ in 0..3 {
        let mut stream = client
            .request_streaming(get("/large?bytes=100000000"))
            .await
            .unwrap();
        reading.push(tokio::spawn(async move {
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.connections_opened(), 1);
    let start = Instant::now();
    tokio::task::spawn_blocking(move || flup.stop())
        .await
        .unwrap();
    for task in waiting {
        let err = task.await.unwrap();
        assert!(broken(&err), "{err}");
        eprintln!("waiting for its head: {err}");
    }
    for task in reading {
        let (err, got) = task.await.unwrap();
        assert!(broken(&err), "{err}");
        assert!(got > 0);
        eprintln!("reading its body, after {got} bytes: {err}");
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    // The broken connection left the pool (the count drops right after the errors);
    // a new request finds the server gone.
    let deadline = Instant::now() + Duration::from_secs(1);
    while client.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.open_connections(), 0);
    let err = client.request(get("/hello")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}
