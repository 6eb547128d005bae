//! What only fcgi-tokio's API has, against a real php-fpm: bodies from a stream, and
//! `close_idle`. The scenarios every adapter shares are in conformance.rs.

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
