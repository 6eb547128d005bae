//! fcgi-async-std against a real php-fpm: the basics on async-std and on smol, then the
//! adapter's own machinery (the pool, cancellation, full duplex, streaming both ways).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{addresses, client, get, post, timeout, unix_client, Rt, Xorshift};
use fcgi_async_std::{Address, Body, Client, Error, Options, Request};
use fcgi_proto::{Params, ParamsBuilder};
use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};
use smol::io::AsyncReadExt;
use smol::stream::StreamExt;

on_both_runtimes!(
    hello_over_unix_and_tcp,
    post_echo_sizes_with_sha256,
    post_body_from_a_stream_and_a_reader,
    response_body_through_stream_and_async_read,
    stderr_kept_taken_or_handed_to_a_callback,
    get_values_from_php_fpm,
    connect_errors_and_failover,
    close_idle_frees_the_kept_connections,
    thousand_sequential_requests_on_one_kept_connection,
);

on_async_std!(
    sixty_four_tasks_share_eight_connections,
    dropped_requests_never_corrupt_the_pool,
    full_duplex_output_before_input_does_not_deadlock,
    max_requests_one_two_hundred_sequential_requests,
);

async fn hello_over_unix_and_tcp(_rt: Rt) {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address.clone(), Options::default());
        let response = client.request(get(fpm, "hello.php", "")).await.unwrap();
        assert_eq!(response.status, 200, "{address}");
        assert_eq!(&response.body[..], b"Hello, World!");
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=UTF-8")
        );
        assert!(response.stderr.is_empty());
        assert!(response.end.protocol_status.is_complete());
        // The same through `Request::get`, on the kept connection.
        let script = fpm.script("hello.php");
        let request = Request::get(script.to_str().unwrap(), "/hello.php?x=1").unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(&response.body[..], b"Hello, World!");
        assert_eq!(client.connections_opened(), 1);
    }
}

async fn post_echo_sizes_with_sha256(_rt: Rt) {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address.clone(), Options::default());
        for (i, len) in [0usize, 1, 65535, 65536, 3 * 1024 * 1024 + 7]
            .into_iter()
            .enumerate()
        {
            let body = random_bytes(len, i as u64 + 3);
            let response = client
                .request(post(fpm, "echo.php", body.clone()))
                .await
                .unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(
                response.header("x-body-sha256"),
                Some(hex_sha256(&body).as_str())
            );
            assert!(response.body[..] == body[..], "{address} {len}");
        }
        assert_eq!(client.connections_opened(), 1);
    }
}

async fn post_body_from_a_stream_and_a_reader(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm, Options::default());
    let body = random_bytes(2 * 1024 * 1024 + 5, 11);
    let chunks: Vec<std::io::Result<Bytes>> = body
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let request = post(
        fpm,
        "echo.php",
        Body::from_stream(stream, body.len() as u64),
    );
    let response = client.request(request).await.unwrap();
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&body).as_str())
    );

    // A futures-io reader.
    let reader = smol::io::Cursor::new(body.clone());
    let request = post(
        fpm,
        "echo.php",
        Body::from_reader(reader, body.len() as u64),
    );
    let response = client.request(request).await.unwrap();
    assert!(response.body[..] == body[..]);

    // A body shorter than declared is refused before it reaches the server.
    let reader = smol::io::Cursor::new(vec![0u8; 5]);
    let err = client
        .request(post(fpm, "echo.php", Body::from_reader(reader, 6)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    let response = client.request(get(fpm, "hello.php", "")).await.unwrap();
    assert_eq!(response.status, 200);
}

async fn response_body_through_stream_and_async_read(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm, Options::default());
    let len = 5 * 1024 * 1024 + 1;
    let expected = fcgi_testkit::large_body(len);
    let query = format!("bytes={len}");

    // futures_core::Stream of Bytes.
    let mut stream = client
        .request_streaming(get(fpm, "large.php", &query))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.address().contains(".sock"), "{}", stream.address());
    let mut offset = 0;
    let mut pieces = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk[..] == expected[offset..offset + chunk.len()]);
        offset += chunk.len();
        pieces += 1;
    }
    assert_eq!(offset, len);
    assert!(pieces > 1);
    assert!(stream.end().unwrap().protocol_status.is_complete());

    // futures_io::AsyncRead, in odd-sized reads.
    let mut stream = client
        .request_streaming(get(fpm, "large.php", &query))
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 9999];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == expected);
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
    drop(stream);
    // Both streams ended: one kept connection served all.
    assert_eq!(client.connections_opened(), 1);
    assert_eq!(client.idle_connections(), 1);
}

async fn stderr_kept_taken_or_handed_to_a_callback(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm, Options::default());
    let response = client.request(get(fpm, "stderr.php", "")).await.unwrap();
    assert_eq!(&response.body[..], b"one\ntwo\nthree\n");
    let stderr = String::from_utf8(response.stderr).unwrap();
    let first = stderr.find("first message").expect(&stderr);
    let second = stderr.find("second message").expect(&stderr);
    assert!(first < second);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let request =
        get(fpm, "stderr.php", "").on_stderr(move |data| sink.lock().unwrap().extend(data));
    let response = client.request(request).await.unwrap();
    assert!(response.stderr.is_empty());
    let seen = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
    assert!(seen.contains("first message") && seen.contains("second message"));

    let mut stream = client
        .request_streaming(get(fpm, "stderr.php", ""))
        .await
        .unwrap();
    while stream.chunk().await.unwrap().is_some() {}
    let taken = stream.take_stderr();
    assert!(String::from_utf8_lossy(&taken).contains("second message"));
    assert!(stream.stderr().is_empty());
}

async fn get_values_from_php_fpm(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let values = unix_client(fpm, Options::default())
        .get_values(&["FCGI_MPXS_CONNS"])
        .await
        .unwrap();
    assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
}

async fn connect_errors_and_failover(_rt: Rt) {
    let missing = Address::Unix("/nonexistent/php.sock".into());
    let err = client(missing.clone(), Options::default())
        .request(Request::new(Params::new()))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(err.to_string().contains("/nonexistent/php.sock"));
    // A host name is resolved; a port nobody listens on refuses.
    let refused = Client::new("localhost:1").unwrap();
    let err = refused
        .request(Request::new(Params::new()))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    // The first upstream refuses: requests fail over to the second.
    let fpm = PhpFpm::shared();
    let both = Client::with_upstreams(
        [missing, Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    for _ in 0..4 {
        let response = both.request(get(fpm, "hello.php", "")).await.unwrap();
        assert_eq!(response.status, 200);
    }
}

async fn close_idle_frees_the_kept_connections(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm, Options::default());
    let (a, b) = futures_util::join!(
        client.request(get(fpm, "hello.php", "")),
        client.request(get(fpm, "hello.php", ""))
    );
    assert_eq!((a.unwrap().status, b.unwrap().status), (200, 200));
    assert_eq!(client.idle_connections(), 2);
    assert_eq!(client.close_idle(), 2);
    assert_eq!(
        (client.idle_connections(), client.open_connections()),
        (0, 0)
    );
    let response = client.request(get(fpm, "hello.php", "")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(client.connections_opened(), 3);
}

async fn sixty_four_tasks_share_eight_connections(rt: Rt) {
    let fpm = Arc::new(PhpFpm::builder().max_children(10).start());
    let mut options = Options::default();
    options.max_connections = 8;
    let client = unix_client(&fpm, options);
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let (client, peak, fpm) = (client.clone(), peak.clone(), fpm.clone());
        tasks.push(rt.spawn(async move {
            for i in 0..157 {
                let body = format!("task {task} request {i}");
                let response = client.request(post(&fpm, "echo.php", body.clone())).await;
                assert_eq!(&response.unwrap().body[..], body.as_bytes());
                peak.fetch_max(client.open_connections(), Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak <= 8, "{peak}");
    assert!(
        client.connections_opened() <= 8,
        "{}",
        client.connections_opened()
    );
}

async fn dropped_requests_never_corrupt_the_pool(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.max_connections = 3;
    let client = unix_client(fpm, options);
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    for i in 0..1000u64 {
        let seed = random.next();
        let request = post(fpm, "echo.php", format!("cancelled {i}"));
        let cut = Duration::from_micros(seed % 400);
        match seed % 3 {
            // Drop the request future at a random point.
            0 => {
                let _ = timeout(cut, client.request(request)).await;
            }
            // Take the head, then drop the body stream half-read.
            1 => {
                if let Some(Ok(mut stream)) =
                    timeout(cut * 10, client.request_streaming(request)).await
                {
                    let _ = timeout(cut, stream.chunk()).await;
                }
            }
            // Drop right after the first poll.
            _ => {
                let mut future = Box::pin(client.request(request));
                let _ = futures_util::poll!(future.as_mut());
            }
        }
        assert!(client.open_connections() <= 3);
    }
    for i in 0..1000 {
        let body = format!("normal {i}");
        let response = client
            .request(post(fpm, "echo.php", body.clone()))
            .await
            .unwrap();
        assert_eq!(&response.body[..], body.as_bytes());
    }
    assert!(client.open_connections() <= 3);
}

async fn full_duplex_output_before_input_does_not_deadlock(_rt: Rt) {
    let fpm = PhpFpm::shared();
    // Writes 4 MiB, far more than socket buffers hold, before it reads its input: a
    // client that sent its whole body before reading would wait forever.
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
    // PUT: php-fpm reads a POST body whole before the script starts, a PUT body only
    // when the script reads it.
    let params = ParamsBuilder::new("PUT", "/duplex.php")
        .script("/duplex.php", script.to_str().unwrap())
        .build()
        .unwrap();
    let client = unix_client(fpm, Options::default());
    let response = timeout(
        Duration::from_secs(60),
        client.request(Request::new(params).body(body.clone())),
    )
    .await
    .expect("no deadlock")
    .unwrap();
    let text = &response.body[64 * 65536..];
    let expected = format!("\n{} {}", hex_sha256(&body), body.len());
    assert_eq!(std::str::from_utf8(text).unwrap(), expected);
}

async fn max_requests_one_two_hundred_sequential_requests(_rt: Rt) {
    // Every worker exits after one request: each kept connection is dead when reused,
    // and the request goes again on a fresh one.
    let fpm = PhpFpm::builder().max_requests(1).start();
    for address in addresses(&fpm) {
        let client = client(address.clone(), Options::default());
        for i in 0..200 {
            let response = client
                .request(get(&fpm, "hello.php", ""))
                .await
                .unwrap_or_else(|e| panic!("{address} request {i}: {e}"));
            assert_eq!(&response.body[..], b"Hello, World!");
        }
    }
}

async fn thousand_sequential_requests_on_one_kept_connection(rt: Rt) {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address.clone(), Options::default());
        let first = client.request(get(fpm, "pid.php", "")).await.unwrap().body;
        let start = std::time::Instant::now();
        for _ in 0..999 {
            let body = client.request(get(fpm, "pid.php", "")).await.unwrap().body;
            assert_eq!(body, first, "{address}");
        }
        eprintln!(
            "{rt:?} {address}: 999 sequential requests in {:?}",
            start.elapsed()
        );
        assert_eq!(client.connections_opened(), 1);
    }
}

#[test]
fn the_public_types_are_send_and_sync_where_tokio_s_are() {
    fn clone_send_sync<T: Clone + Send + Sync>() {}
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    clone_send_sync::<Client>();
    clone_send_sync::<Options>();
    send::<Request>();
    send::<Body>();
    send::<fcgi_async_std::ResponseStream>();
    send_sync::<fcgi_async_std::Response>();
    send_sync::<Error>();
    // The futures too: a request can be spawned on a multi-threaded executor.
    fn future_is_send<F: std::future::Future + Send>(_: F) {}
    let client = Client::new("127.0.0.1:9").unwrap();
    future_is_send(client.request(Request::new(Params::new())));
    future_is_send(client.request_streaming(Request::new(Params::new())));
    future_is_send(client.get_values(&[]));
}
