//! What only fcgi-async-std's API has, against a real php-fpm, on async-std and on smol:
//! bodies from streams and futures-io readers, the body through `Stream` and
//! `AsyncRead`, stderr kept, taken or handed to a callback, `close_idle`. The scenarios
//! every adapter shares are in conformance.rs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{get, post, unix_client, Rt};
use fcgi_async_std::{Body, Client, Error, Options, Request};
use fcgi_proto::Params;
use fcgi_testkit::hostile::{self, Hostile};
use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};
use smol::io::AsyncReadExt;
use smol::stream::StreamExt;

on_both_runtimes!(
    post_body_from_a_stream_and_a_reader,
    body_reader_that_stays_open_after_its_bytes_completes,
    response_body_through_stream_and_async_read,
    stderr_kept_taken_or_handed_to_a_callback,
    close_idle_frees_the_kept_connections,
);

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

/// [`fcgi_testkit::open_reader`] as an async-io socket.
fn open_reader(
    data: &[u8],
) -> (
    async_io::Async<std::os::unix::net::UnixStream>,
    fcgi_testkit::OpenWriter,
) {
    let (reader, writer) = fcgi_testkit::open_reader(data);
    (async_io::Async::new(reader).unwrap(), writer)
}

/// A body reader with exactly the declared bytes that stays open after them is read up
/// to those bytes and no further, and the body is ended there: php-fpm echoes it within
/// 2 s, and a server that reads the body to its end (the empty `STDIN` record) before
/// it answers does so at once, not after its 2 s wait for an end that never came. Each
/// request is bounded at 5 s.
async fn body_reader_that_stays_open_after_its_bytes_completes(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm, Options::default());
    let body = random_bytes(300 * 1024 + 7, 7);
    let (reader, _writer) = open_reader(&body);
    let request = post(
        fpm,
        "echo.php",
        Body::from_reader(reader, body.len() as u64),
    );
    let start = Instant::now();
    let response = common::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("the request waits for the reader's end")
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&body).as_str())
    );
    assert!(response.body[..] == body[..]);

    let server = Hostile::start(&hostile::reads_the_body_to_its_end());
    let client = common::client(
        fcgi_async_std::Address::Unix(server.socket().to_path_buf()),
        Options::default(),
    );
    let (reader, _writer) = open_reader(&body[..1000]);
    let request = post(fpm, "echo.php", Body::from_reader(reader, 1000));
    let start = Instant::now();
    let response = common::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("the request waits for the reader's end")
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < hostile::REQUEST_READ_TIMEOUT / 2, "{elapsed:?}");
    assert!(response.body[..] == hostile::BODY[..]);
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

async fn close_idle_frees_the_kept_connections(_rt: Rt) {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm, Options::default());
    // Two requests in flight together (a quick one can end before the second starts,
    // which then takes its kept connection), so two connections are kept.
    let (a, b) = futures_util::join!(
        client.request(get(fpm, "sleep.php", "ms=100")),
        client.request(get(fpm, "sleep.php", "ms=100"))
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
