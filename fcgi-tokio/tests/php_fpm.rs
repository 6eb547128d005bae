//! fcgi-tokio against a real php-fpm, over its unix socket and its TCP port.

use fcgi_testkit::{hex_sha256, random_bytes};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_proto::{Params, ParamsBuilder};
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Body, Client, Error, Options, Phase, Request};

fn addresses(fpm: &PhpFpm) -> [Address; 2] {
    [
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Address::from(fpm.tcp_addr()),
    ]
}

fn client(address: Address, options: Options) -> Client {
    Client::with_upstreams([address], options).unwrap()
}

fn unix_client(fpm: &PhpFpm) -> Client {
    client(
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Options::default(),
    )
}

fn params(fpm: &PhpFpm, method: &str, script: &str, query: &str) -> Params {
    let filename = fpm.script(script);
    let uri = if query.is_empty() {
        format!("/{script}")
    } else {
        format!("/{script}?{query}")
    };
    let name = format!("/{script}");
    ParamsBuilder::new(method, &uri)
        .script(&name, filename.to_str().unwrap())
        .document_root(fpm.docroot().to_str().unwrap())
        .build()
        .unwrap()
}

fn get(fpm: &PhpFpm, script: &str, query: &str) -> Request {
    Request::new(params(fpm, "GET", script, query))
}

#[tokio::test]
async fn hello_over_unix_and_tcp() {
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
    }
}

#[tokio::test]
async fn post_echo_sizes_with_sha256() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address.clone(), Options::default());
        for (i, len) in [0usize, 1, 65535, 65536, 10 * 1024 * 1024]
            .into_iter()
            .enumerate()
        {
            let body = random_bytes(len, i as u64 + 3);
            let request = Request::new(params(fpm, "POST", "echo.php", "")).body(body.clone());
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(
                response.header("x-body-sha256"),
                Some(hex_sha256(&body).as_str())
            );
            assert_eq!(
                hex_sha256(&response.body),
                hex_sha256(&body),
                "{address} {len}"
            );
        }
        assert_eq!(client.connections_opened(), 1);
    }
}

#[tokio::test]
async fn post_body_from_a_stream_and_a_reader() {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm);
    let body = random_bytes(2 * 1024 * 1024 + 5, 11);
    let chunks: Vec<std::io::Result<Bytes>> = body
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let request = Request::new(params(fpm, "POST", "echo.php", ""))
        .body(Body::from_stream(stream, body.len() as u64));
    let response = client.request(request).await.unwrap();
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&body).as_str())
    );

    let request = Request::new(params(fpm, "POST", "echo.php", "")).body(Body::from_reader(
        std::io::Cursor::new(body.clone()),
        body.len() as u64,
    ));
    let response = client.request(request).await.unwrap();
    assert_eq!(&response.body[..], &body[..]);

    // A body shorter than declared is refused before it reaches the server.
    let request = Request::new(params(fpm, "POST", "echo.php", ""))
        .body(Body::from_reader(std::io::Cursor::new(vec![0u8; 5]), 6));
    let err = client.request(request).await.unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    assert_eq!(
        client
            .request(get(fpm, "hello.php", ""))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn three_set_cookie_in_order_with_404() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address, Options::default());
        let response = client.request(get(fpm, "cookies.php", "")).await.unwrap();
        assert_eq!(response.status, 404);
        let cookies: Vec<&[u8]> = response.headers("set-cookie").collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2", b"c=3"]);
        assert_eq!(&response.body[..], b"not here");
    }
}

#[tokio::test]
async fn stderr_apart_from_stdout() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address, Options::default());
        let response = client.request(get(fpm, "stderr.php", "")).await.unwrap();
        assert_eq!(&response.body[..], b"one\ntwo\nthree\n");
        let stderr = String::from_utf8(response.stderr).unwrap();
        let first = stderr.find("first message").expect(&stderr);
        let second = stderr.find("second message").expect(&stderr);
        assert!(first < second);
    }
}

#[tokio::test]
async fn header_block_larger_than_one_record() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.config.max_head_bytes = 1024 * 1024;
    for address in addresses(fpm) {
        let client = client(address, options.clone());
        let response = client
            .request(get(fpm, "bigheaders.php", "count=40&size=2000"))
            .await
            .unwrap();
        for i in 0..40 {
            assert_eq!(response.header(&format!("x-big-{i}")).unwrap().len(), 2000);
        }
        assert_eq!(&response.body[..], b"ok");
    }
}

#[tokio::test]
async fn location_only_gives_302_and_missing_script_404() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address, Options::default());
        let response = client
            .request(get(fpm, "redirect.php", "to=https://example.com/next"))
            .await
            .unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(
            response.header("location"),
            Some("https://example.com/next")
        );
        assert!(!response.head.is_local_redirect());
        let response = client
            .request(get(fpm, "redirect.php", "to=/local"))
            .await
            .unwrap();
        assert_eq!(response.status, 302);
        assert!(response.head.is_local_redirect());
        let response = client.request(get(fpm, "nope.php", "")).await.unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(&response.body[..], b"File not found.\n");
        assert!(String::from_utf8_lossy(&response.stderr).contains("Primary script unknown"));
    }
}

#[tokio::test]
async fn large_response_streams_in_pieces() {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm);
    let len = 20 * 1024 * 1024 + 1;
    let mut stream = client
        .request_streaming(get(fpm, "large.php", &format!("bytes={len}")))
        .await
        .unwrap();
    let expected = fcgi_testkit::large_body(len);
    let mut offset = 0;
    let mut pieces = 0;
    while let Some(chunk) = stream.chunk().await.unwrap() {
        assert_eq!(&chunk[..], &expected[offset..offset + chunk.len()]);
        offset += chunk.len();
        pieces += 1;
    }
    assert_eq!(offset, len);
    assert!(pieces > 1);
}

#[tokio::test]
async fn thousand_sequential_requests_on_one_kept_connection() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let client = client(address.clone(), Options::default());
        let first = client.request(get(fpm, "pid.php", "")).await.unwrap().body;
        for _ in 0..999 {
            let body = client.request(get(fpm, "pid.php", "")).await.unwrap().body;
            assert_eq!(body, first, "{address}");
        }
        assert_eq!(client.connections_opened(), 1);
    }
}

#[tokio::test]
async fn read_timeout_fires_in_time_and_the_pool_recovers() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.read_timeout = Some(Duration::from_millis(300));
    for address in addresses(fpm) {
        let client = client(address.clone(), options.clone());
        let start = Instant::now();
        let err = client
            .request(get(fpm, "sleep.php", "ms=3000"))
            .await
            .unwrap_err();
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
        assert!(err.to_string().contains(&address.to_string()), "{err}");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert_eq!(
            client.open_connections(),
            0,
            "the timed-out connection is closed"
        );
        assert_eq!(
            client
                .request(get(fpm, "hello.php", ""))
                .await
                .unwrap()
                .status,
            200
        );
    }
}

#[tokio::test]
async fn total_timeout_bounds_the_request() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.total_timeout = Some(Duration::from_millis(400));
    let client = client(Address::Unix(fpm.unix_socket().to_path_buf()), options);
    let start = Instant::now();
    let err = client
        .request(get(fpm, "sleep.php", "ms=3000"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        client
            .request(get(fpm, "hello.php", ""))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn connect_errors_and_failover() {
    let missing = Address::Unix("/nonexistent/php.sock".into());
    let err = client(missing.clone(), Options::default())
        .request(Request::new(Params::new()))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(err.to_string().contains("/nonexistent/php.sock"));
    // The first upstream refuses: requests fail over to the second.
    let fpm = PhpFpm::shared();
    let both = Client::with_upstreams(
        [missing, Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    for _ in 0..4 {
        assert_eq!(
            both.request(get(fpm, "hello.php", ""))
                .await
                .unwrap()
                .status,
            200
        );
    }
}

#[tokio::test]
async fn get_values_from_php_fpm() {
    let fpm = PhpFpm::shared();
    let values = unix_client(fpm)
        .get_values(&["FCGI_MPXS_CONNS"])
        .await
        .unwrap();
    assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
}

#[tokio::test]
async fn max_requests_one_two_hundred_sequential_requests() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_share_eight_connections() {
    let fpm = PhpFpm::builder().max_children(10).start();
    let mut options = Options::default();
    options.max_connections = 8;
    let client = client(Address::Unix(fpm.unix_socket().to_path_buf()), options);
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let client = client.clone();
        let peak = peak.clone();
        let fpm_params = (0..157)
            .map(|i| {
                let body = format!("task {task} request {i}");
                let request = Request::new(params(&fpm, "POST", "echo.php", "")).body(body.clone());
                (request, body)
            })
            .collect::<Vec<_>>();
        tasks.push(tokio::spawn(async move {
            for (request, body) in fpm_params {
                let response = client.request(request).await.unwrap();
                assert_eq!(&response.body[..], body.as_bytes());
                peak.fetch_max(client.open_connections(), Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::Relaxed) <= 8);
    assert!(
        client.connections_opened() <= 8,
        "{}",
        client.connections_opened()
    );
}

#[tokio::test]
async fn full_duplex_output_before_input_does_not_deadlock() {
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
    let client = unix_client(fpm);
    let response = tokio::time::timeout(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_never_corrupt_the_pool() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.max_connections = 3;
    let client = client(Address::Unix(fpm.unix_socket().to_path_buf()), options);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..1000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let body = format!("cancelled {i}");
        let request = Request::new(params(fpm, "POST", "echo.php", "")).body(body);
        let cut = Duration::from_micros(seed % 400);
        match seed % 3 {
            // Drop the request future at a random point.
            0 => {
                let _ = tokio::time::timeout(cut, client.request(request)).await;
            }
            // Take the head, then drop the body stream half-read.
            1 => {
                if let Ok(Ok(mut stream)) =
                    tokio::time::timeout(cut * 10, client.request_streaming(request)).await
                {
                    let _ = tokio::time::timeout(cut, stream.chunk()).await;
                }
            }
            // Drop right after the first poll.
            _ => {
                let mut future = Box::pin(client.request(request));
                let _ = futures_util::poll!(future.as_mut());
            }
        }
    }
    for i in 0..1000 {
        let body = format!("normal {i}");
        let response = client
            .request(Request::new(params(fpm, "POST", "echo.php", "")).body(body.clone()))
            .await
            .unwrap();
        assert_eq!(&response.body[..], body.as_bytes());
    }
    assert!(client.open_connections() <= 3);
}

#[tokio::test]
async fn close_idle_frees_the_kept_connections() {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm);
    let (a, b) = tokio::join!(
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
    assert_eq!(
        client
            .request(get(fpm, "hello.php", ""))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(client.connections_opened(), 3);
}
