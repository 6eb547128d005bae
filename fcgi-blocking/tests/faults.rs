//! Fault drills against a real php-fpm: each fault fails the affected request with a
//! clear error (its kind, the server's address), leaves every other response whole and
//! its own, and the client recovers for the next request.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use fcgi_blocking::{Address, Client, Error, Options, Phase, Request};
use fcgi_proto::ParamsBuilder;
use fcgi_testkit::PhpFpm;

fn request(script: &Path, method: &str, query: &str) -> Request {
    let name = format!("/{}", script.file_name().unwrap().to_str().unwrap());
    let uri = format!("{name}?{query}");
    let params = ParamsBuilder::new(method, &uri)
        .script(&name, script.to_str().unwrap())
        .build()
        .unwrap();
    Request::new(params)
}

fn unix_client(fpm: &PhpFpm, options: Options) -> Client {
    Client::with_options(Address::Unix(fpm.unix_socket().to_path_buf()), options)
}

/// A few echo requests, each answered with its own body.
fn echo_round(client: &mut Client, fpm: &PhpFpm, tag: &str) {
    for i in 0..5 {
        let body = format!("{tag} {i}");
        let response = client
            .request(request(&fpm.script("echo.php"), "POST", "").body(body.clone()))
            .unwrap_or_else(|e| panic!("{tag} {i}: {e}"));
        assert_eq!(response.body, body.as_bytes(), "{tag} {i}");
    }
}

/// Reads a streamed body until it fails; panics if it ends normally.
fn read_until_error(reader: &mut fcgi_blocking::ResponseReader<'_>) -> Error {
    loop {
        match reader.next_chunk() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the response ended normally despite the fault"),
            Err(e) => return e,
        }
    }
}

fn assert_broken_connection(err: &Error, address: &str) {
    assert!(
        matches!(err, Error::Protocol { .. } | Error::Io { .. }),
        "want a protocol or I/O error, got {err:?}"
    );
    assert!(err.to_string().contains(address), "{err}");
}

#[test]
fn worker_killed_mid_response_fails_that_request_only() {
    let fpm = PhpFpm::builder().max_children(2).start();
    let address = Address::Unix(fpm.unix_socket().to_path_buf()).to_string();
    let mut client = unix_client(&fpm, Options::default());
    echo_round(&mut client, &fpm, "before");
    let err = {
        let mut reader = client
            .request_streaming(request(&fpm.script("large.php"), "GET", "bytes=268435456"))
            .unwrap();
        assert!(reader.next_chunk().unwrap().is_some());
        let killed = fpm.kill_workers();
        assert!(!killed.is_empty());
        read_until_error(&mut reader)
    };
    assert_broken_connection(&err, &address);
    assert!(!client.is_connected(), "the broken connection is dropped");
    echo_round(&mut client, &fpm, "after");
}

#[test]
fn master_restarted_fails_the_request_in_flight_then_the_next_succeeds() {
    let mut fpm = PhpFpm::builder().max_children(2).start();
    let address = Address::Unix(fpm.unix_socket().to_path_buf()).to_string();
    let mut client = unix_client(&fpm, Options::default());
    echo_round(&mut client, &fpm, "before");
    let opened = client.connections_opened();
    let large = fpm.script("large.php");
    let err = {
        let mut reader = client
            .request_streaming(request(&large, "GET", "bytes=268435456"))
            .unwrap();
        assert!(reader.next_chunk().unwrap().is_some());
        fpm.restart();
        read_until_error(&mut reader)
    };
    assert_broken_connection(&err, &address);
    echo_round(&mut client, &fpm, "after");
    assert_eq!(
        client.connections_opened(),
        opened + 1,
        "one new connection to the restarted server"
    );
}

#[test]
fn a_script_slower_than_every_timeout() {
    let fpm = PhpFpm::shared();
    let address = Address::Unix(fpm.unix_socket().to_path_buf()).to_string();
    let sleep = fpm.script("sleep.php");

    // The read timeout: no byte for 300 ms.
    let mut options = Options::default();
    options.read_timeout = Some(Duration::from_millis(300));
    let mut client = unix_client(fpm, options);
    let start = Instant::now();
    let err = client
        .request(request(&sleep, "GET", "ms=2000"))
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: Phase::Read,
                after,
                ..
            } if after == Duration::from_millis(300)
        ),
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("reading the response") && text.contains(&address),
        "{text}"
    );
    assert!(
        !client.is_connected(),
        "a timed-out connection is not reused"
    );
    echo_round(&mut client, fpm, "after read timeout");

    // The total timeout, with generous per-read timeouts.
    let mut options = Options::default();
    options.total_timeout = Some(Duration::from_millis(400));
    let mut client = unix_client(fpm, options);
    echo_round(&mut client, fpm, "before total timeout");
    let start = Instant::now();
    let err = client
        .request(request(&sleep, "GET", "ms=2000"))
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
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert!(err.to_string().contains(&address), "{err}");
    echo_round(&mut client, fpm, "after total timeout");
}

#[test]
fn connection_refused_names_the_address() {
    // A port that was free a moment ago, with nothing listening now.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let mut client = Client::new(target.as_str()).unwrap();
    let start = Instant::now();
    let err = client
        .request(Request::get("/srv/x.php", "/x.php").unwrap())
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    match &err {
        Error::Connect { address, source } => {
            assert_eq!(address, &target);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("want Connect, got {other:?}"),
    }
    assert!(err.is_connect());
    assert!(err.to_string().contains(&target), "{err}");
    // No state is left behind: the next request fails the same clear way.
    let again = client
        .request(Request::get("/srv/x.php", "/x.php").unwrap())
        .unwrap_err();
    assert!(again.is_connect(), "{again:?}");
}

#[test]
fn socket_file_removed_while_a_connection_is_kept() {
    let fpm = PhpFpm::builder().max_children(2).start();
    let socket = fpm.unix_socket().to_path_buf();
    let mut client = unix_client(&fpm, Options::default());
    echo_round(&mut client, &fpm, "before");
    assert!(client.is_connected());
    std::fs::remove_file(&socket).unwrap();
    // The kept connection is already open: it still works.
    echo_round(&mut client, &fpm, "kept");
    assert_eq!(client.connections_opened(), 1);
    client.close();
    let err = client
        .request(request(&fpm.script("hello.php"), "GET", ""))
        .unwrap_err();
    match &err {
        Error::Connect { address, source } => {
            assert_eq!(address, &format!("unix:{}", socket.display()));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("want Connect, got {other:?}"),
    }
    assert!(err.to_string().contains(socket.to_str().unwrap()), "{err}");
}
