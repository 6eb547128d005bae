//! What only fcgi-blocking's API has, against a real php-fpm: `set_timeout`, `connect`,
//! the stderr callback and the `Read` body. The scenarios every adapter shares are in
//! conformance.rs.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use fcgi_blocking::{Address, Client, Error, Options, Phase, Request};
use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};

fn addresses(fpm: &PhpFpm) -> [Address; 2] {
    [
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Address::from(fpm.tcp_addr()),
    ]
}

fn get(fpm: &PhpFpm, script: &str, query: &str) -> Request {
    Request::new(fpm.params("GET", script, query))
}

#[test]
fn stderr_callback_receives_it_as_it_arrives() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let request = get(fpm, "stderr.php", "").on_stderr(move |data| {
        tx.send(data.to_vec()).unwrap();
    });
    let response = client.request(request).unwrap();
    assert!(response.stderr.is_empty());
    let all: Vec<u8> = rx.try_iter().flatten().collect();
    let all = String::from_utf8(all).unwrap();
    assert!(
        all.contains("first message") && all.contains("second message"),
        "{all}"
    );
}

/// A body reader with exactly the declared bytes that stays open after them (a socket
/// whose write end a thread holds until the test is done, as a pipe or the standard input
/// of a process still running) is read up to those bytes and no further: the request
/// completes with the echoed body. The reader's 5 s read timeout bounds a read past the
/// end, so such a read fails the time bound instead of hanging the test. A reader that
/// ends before the declared length is still a usage error.
#[test]
fn body_reader_that_stays_open_after_its_bytes_completes() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let data = random_bytes(300 * 1024 + 7, 7);
    let (reader, writer) = fcgi_testkit::open_reader(&data);
    reader
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let start = Instant::now();
    let request =
        Request::new(fpm.params("POST", "echo.php", "")).body_reader(reader, data.len() as u64);
    let response = client.request(request).unwrap();
    let elapsed = start.elapsed();
    drop(writer);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&data).as_str())
    );
    assert_eq!(response.body, data);

    // Ten bytes declared as eleven, then the end: a usage error.
    let (reader, mut writer) = UnixStream::pair().unwrap();
    writer.write_all(&[1; 10]).unwrap();
    drop(writer);
    let request = Request::new(fpm.params("POST", "echo.php", "")).body_reader(reader, 11);
    let err = client.request(request).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
    let response = client.request(get(fpm, "hello.php", "")).unwrap();
    assert_eq!(response.body, b"Hello, World!");
}

#[test]
fn read_timeout_fires_in_time_and_the_next_request_succeeds() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address.clone(), Options::default());
        client.set_timeout(Some(Duration::from_millis(300)));
        let start = Instant::now();
        let err = client
            .request(get(fpm, "sleep.php", "ms=3000"))
            .unwrap_err();
        let elapsed = start.elapsed();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    phase: Phase::Read,
                    ..
                }
            ),
            "{address}: {err}"
        );
        assert!(err.to_string().contains(&address.to_string()), "{err}");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
        client.set_timeout(Some(Duration::from_secs(10)));
        let response = client.request(get(fpm, "hello.php", "")).unwrap();
        assert_eq!(response.body, b"Hello, World!");
    }
}

#[test]
fn connect_errors_name_the_address() {
    let err = Client::connect("unix:/nonexistent/dir/php.sock").unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(
        err.to_string().contains("unix:/nonexistent/dir/php.sock"),
        "{err}"
    );
    // A port nothing listens on: find one by binding and closing.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect(format!("127.0.0.1:{port}").as_str()).unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(matches!(
        Client::new("nonsense"),
        Err(Error::InvalidAddress(_))
    ));
}

#[test]
fn streaming_reader_gives_head_first_then_body() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let len = 5 * 1024 * 1024 + 3;
    let mut reader = client
        .request_streaming(get(fpm, "large.php", &format!("bytes={len}")))
        .unwrap();
    assert_eq!(reader.status(), 200);
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut body).unwrap();
    assert_eq!(body, fcgi_testkit::large_body(len));
    assert!(reader.end().is_some());
    drop(reader);
    // Dropping a reader half-way closes the connection; the next request opens another.
    let mut reader = client
        .request_streaming(get(fpm, "large.php", &format!("bytes={len}")))
        .unwrap();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(&mut reader, &mut first).unwrap();
    drop(reader);
    assert!(!client.is_connected());
    assert_eq!(
        client.request(get(fpm, "hello.php", "")).unwrap().status,
        200
    );
    assert_eq!(client.connections_opened(), 2);
}
