//! What only fcgi-tokio's API has, against a real php-fpm: bodies from a stream, and
//! `close_idle`. The scenarios every adapter shares are in conformance.rs.

use std::time::{Duration, Instant};

use fcgi_testkit::hostile::{self, Hostile};
use fcgi_testkit::{hex_sha256, random_bytes};

use bytes::Bytes;
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Body, Client, Error, Options, Request};

fn client(address: Address, options: Options) -> Client {
    Client::with_upstreams([address], options).unwrap()
}

fn unix_client(fpm: &PhpFpm) -> Client {
    client(
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Options::default(),
    )
}

fn get(fpm: &PhpFpm, script: &str, query: &str) -> Request {
    Request::new(fpm.params("GET", script, query))
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
    let request = Request::new(fpm.params("POST", "echo.php", ""))
        .body(Body::from_stream(stream, body.len() as u64));
    let response = client.request(request).await.unwrap();
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&body).as_str())
    );

    let request = Request::new(fpm.params("POST", "echo.php", "")).body(Body::from_reader(
        std::io::Cursor::new(body.clone()),
        body.len() as u64,
    ));
    let response = client.request(request).await.unwrap();
    assert_eq!(&response.body[..], &body[..]);

    // A body shorter than declared is refused before it reaches the server.
    let request = Request::new(fpm.params("POST", "echo.php", ""))
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

/// [`fcgi_testkit::open_reader`] as a tokio socket.
fn open_reader(data: &[u8]) -> (tokio::net::UnixStream, fcgi_testkit::OpenWriter) {
    let (reader, writer) = fcgi_testkit::open_reader(data);
    reader.set_nonblocking(true).unwrap();
    (tokio::net::UnixStream::from_std(reader).unwrap(), writer)
}

/// A body reader with exactly the declared bytes that stays open after them is read up
/// to those bytes and no further, and the body is ended there: php-fpm echoes it within
/// 2 s, and a server that reads the body to its end (the empty `STDIN` record) before
/// it answers does so at once, not after its 2 s wait for an end that never came. Each
/// request is bounded at 5 s.
#[tokio::test]
async fn body_reader_that_stays_open_after_its_bytes_completes() {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm);
    let body = random_bytes(300 * 1024 + 7, 7);
    let (reader, _writer) = open_reader(&body);
    let request = Request::new(fpm.params("POST", "echo.php", ""))
        .body(Body::from_reader(reader, body.len() as u64));
    let start = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("the request waits for the reader's end")
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&body).as_str())
    );
    assert_eq!(&response.body[..], &body[..]);

    let server = Hostile::start(&hostile::reads_the_body_to_its_end());
    let to_server = Client::with_upstreams(
        [Address::Unix(server.socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let (reader, _writer) = open_reader(&body[..1000]);
    let request =
        Request::new(fpm.params("POST", "echo.php", "")).body(Body::from_reader(reader, 1000));
    let start = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), to_server.request(request))
        .await
        .expect("the request waits for the reader's end")
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < hostile::REQUEST_READ_TIMEOUT / 2, "{elapsed:?}");
    assert_eq!(&response.body[..], hostile::BODY);
}

#[tokio::test]
async fn close_idle_frees_the_kept_connections() {
    let fpm = PhpFpm::shared();
    let client = unix_client(fpm);
    // Two requests in flight together (a quick one can end before the second starts,
    // which then takes its kept connection), so two connections are kept.
    let (a, b) = tokio::join!(
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

#[tokio::test]
async fn request_reads_a_body_of_many_chunks_whole_and_stops_at_its_bound() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.max_body_bytes = 200_000;
    let client = client(Address::Unix(fpm.unix_socket().to_path_buf()), options);
    // php-fpm writes it in 64 KiB pieces: several chunks, joined.
    let whole = client
        .request(get(fpm, "large.php", "bytes=200000"))
        .await
        .unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("X-Body-Length"), Some("200000"));
    assert_eq!(whole.body, fcgi_testkit::large_body(200_000));
    let over = client
        .request(get(fpm, "large.php", "bytes=200001"))
        .await
        .unwrap_err();
    match over {
        Error::Limit { kind, limit, .. } => {
            assert_eq!(
                (kind, limit),
                (fcgi_tokio::LimitKind::ResponseBody, 200_000)
            )
        }
        other => panic!("expected the body limit, got {other:?}"),
    }
    // The connection of the request cut short is closed, not kept: the next request
    // opens a new one and is answered whole.
    let again = client.request(get(fpm, "hello.php", "")).await.unwrap();
    assert_eq!(&again.body[..], b"Hello, World!");
    assert_eq!(client.connections_opened(), 2);
}
