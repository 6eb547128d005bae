//! fcgi-blocking against a real php-fpm, over its unix socket and its TCP port.

use fcgi_testkit::{hex_sha256, random_bytes};
use std::time::{Duration, Instant};

use fcgi_blocking::{Address, Client, Error, Options, Phase, Request};
use fcgi_proto::{Params, ParamsBuilder};
use fcgi_testkit::PhpFpm;

fn addresses(fpm: &PhpFpm) -> [Address; 2] {
    [
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Address::from(fpm.tcp_addr()),
    ]
}

fn params(fpm: &PhpFpm, method: &str, script: &str, query: &str) -> Params {
    let filename = fpm.script(script);
    let filename = filename.to_str().expect("temp paths are UTF-8");
    let uri = if query.is_empty() {
        format!("/{script}")
    } else {
        format!("/{script}?{query}")
    };
    let name = format!("/{script}");
    ParamsBuilder::new(method, &uri)
        .script(&name, filename)
        .document_root(fpm.docroot().to_str().expect("temp paths are UTF-8"))
        .build()
        .expect("valid params")
}

fn get(fpm: &PhpFpm, script: &str, query: &str) -> Request {
    Request::new(params(fpm, "GET", script, query))
}

#[test]
fn hello_over_unix_and_tcp() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address.clone(), Options::default());
        let response = client.request(get(fpm, "hello.php", "")).unwrap();
        assert_eq!(response.status, 200, "{address}");
        assert_eq!(response.body, b"Hello, World!");
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=UTF-8")
        );
        assert!(response.stderr.is_empty());
        assert_eq!(response.end.app_status, 0);
        assert!(response.end.protocol_status.is_complete());
    }
}

#[test]
fn post_echo_sizes_with_sha256() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address.clone(), Options::default());
        for (i, len) in [0usize, 1, 65535, 65536, 10 * 1024 * 1024]
            .into_iter()
            .enumerate()
        {
            let body = random_bytes(len, i as u64 + 7);
            let request = Request::new(params(fpm, "POST", "echo.php", "")).body(body.clone());
            let response = client.request(request).unwrap();
            assert_eq!(response.status, 200, "{address} {len}");
            assert_eq!(
                response.header("x-body-length"),
                Some(len.to_string().as_str())
            );
            assert_eq!(
                response.header("x-body-sha256"),
                Some(hex_sha256(&body).as_str())
            );
            assert_eq!(response.body.len(), len);
            assert_eq!(
                hex_sha256(&response.body),
                hex_sha256(&body),
                "{address} {len}"
            );
        }
        assert_eq!(
            client.connections_opened(),
            1,
            "every size on one kept connection"
        );
    }
}

#[test]
fn post_body_from_a_reader() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let body = random_bytes(3 * 1024 * 1024 + 17, 99);
    let request = Request::new(params(fpm, "POST", "echo.php", ""))
        .body_reader(std::io::Cursor::new(body.clone()), body.len() as u64);
    let response = client.request(request).unwrap();
    assert_eq!(
        response.header("x-body-sha256"),
        Some(hex_sha256(&body).as_str())
    );
    assert_eq!(response.body, body);

    // A reader shorter than its declared length fails, and the next request works.
    let request = Request::new(params(fpm, "POST", "echo.php", ""))
        .body_reader(std::io::Cursor::new(vec![1u8; 10]), 11);
    let err = client.request(request).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    assert_eq!(
        client.request(get(fpm, "hello.php", "")).unwrap().body,
        b"Hello, World!"
    );
}

#[test]
fn three_set_cookie_in_order_with_404() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address, Options::default());
        let response = client.request(get(fpm, "cookies.php", "")).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.head.reason(), Some("Not Found"));
        let cookies: Vec<&[u8]> = response.headers("set-cookie").collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2", b"c=3"]);
        assert_eq!(response.body, b"not here");
    }
}

#[test]
fn stderr_apart_from_stdout() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address, Options::default());
        let response = client.request(get(fpm, "stderr.php", "")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"one\ntwo\nthree\n");
        let stderr = String::from_utf8(response.stderr).unwrap();
        let first = stderr.find("first message").expect(&stderr);
        let second = stderr.find("second message").expect(&stderr);
        assert!(first < second, "{stderr}");
        assert!(!stderr.contains("one") && !stderr.contains("three"));
    }
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

#[test]
fn header_block_larger_than_one_record() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.config.max_head_bytes = 1024 * 1024;
    for address in addresses(fpm) {
        let mut client = Client::with_options(address, options.clone());
        // 40 headers of 2000 bytes: about 80 KiB, more than one 65535-byte record.
        let response = client
            .request(get(fpm, "bigheaders.php", "count=40&size=2000"))
            .unwrap();
        assert_eq!(response.status, 200);
        for i in 0..40 {
            let value = response.header(&format!("x-big-{i}")).unwrap();
            assert_eq!(value.len(), 2000);
            assert!(value.bytes().all(|b| b == b'x'));
        }
        assert_eq!(response.body, b"ok");
    }
    // The default limit (64 KiB) refuses it with a typed error; the connection survives.
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let err = client
        .request(get(fpm, "bigheaders.php", "count=40&size=2000"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadResponse {
                source: fcgi_proto::HeadError::TooLarge { limit: 65536 },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        client.request(get(fpm, "hello.php", "")).unwrap().body,
        b"Hello, World!"
    );
    assert_eq!(client.connections_opened(), 1);
}

#[test]
fn location_only_gives_302() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address, Options::default());
        let response = client
            .request(get(fpm, "redirect.php", "to=https://example.com/next"))
            .unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(
            response.header("location"),
            Some("https://example.com/next")
        );
        assert!(!response.head.is_local_redirect());
        let response = client
            .request(get(fpm, "redirect.php", "to=/local/path"))
            .unwrap();
        assert_eq!(response.status, 302);
        assert!(response.head.is_local_redirect());
    }
}

#[test]
fn missing_script_gives_404_and_primary_script_unknown() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address, Options::default());
        let response = client.request(get(fpm, "does-not-exist.php", "")).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"File not found.\n");
        let stderr = String::from_utf8_lossy(&response.stderr);
        assert!(stderr.contains("Primary script unknown"), "{stderr}");
    }
}

#[test]
fn thousand_sequential_requests_on_one_kept_connection() {
    let fpm = PhpFpm::shared();
    for address in addresses(fpm) {
        let mut client = Client::with_options(address.clone(), Options::default());
        let first = client.request(get(fpm, "pid.php", "")).unwrap().body;
        for _ in 0..999 {
            let response = client.request(get(fpm, "pid.php", "")).unwrap();
            // One connection pins one php-fpm worker: every answer comes from it.
            assert_eq!(response.body, first, "{address}");
        }
        assert_eq!(client.connections_opened(), 1, "{address}");
        assert!(client.is_connected());
    }
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
fn total_timeout_bounds_the_whole_request() {
    let fpm = PhpFpm::shared();
    let mut options = Options::default();
    options.total_timeout = Some(Duration::from_millis(400));
    let mut client = Client::with_options(Address::Unix(fpm.unix_socket().to_path_buf()), options);
    let start = Instant::now();
    let err = client
        .request(get(fpm, "sleep.php", "ms=3000"))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() < Duration::from_millis(2000));
    assert_eq!(
        client.request(get(fpm, "hello.php", "")).unwrap().status,
        200
    );
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
fn exit_in_the_middle_of_output_is_a_normal_end() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let response = client.request(get(fpm, "exit_mid.php", "")).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"partial");
}

#[test]
fn server_params_reach_php() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let filename = fpm.script("server.php");
    let params = ParamsBuilder::new("GET", "/server.php?a=1&b=2")
        .script("/server.php", filename.to_str().unwrap())
        .header("X-Custom", "yes")
        .header("X-Bad_Name", "dropped")
        .header("Proxy", "http://evil.example/")
        .build()
        .unwrap();
    let response = client.request(Request::new(params)).unwrap();
    let text = String::from_utf8(response.body).unwrap();
    assert!(text.contains(r#""QUERY_STRING":"a=1&b=2""#), "{text}");
    assert!(text.contains(r#""HTTP_X_CUSTOM":"yes""#), "{text}");
    assert!(
        !text.contains("HTTP_X_BAD_NAME") && !text.contains("HTTP_PROXY"),
        "{text}"
    );
    assert!(text.contains(r#""GATEWAY_INTERFACE":"CGI/1.1""#), "{text}");
}

#[test]
fn get_values_from_php_fpm() {
    let fpm = PhpFpm::shared();
    let mut client = Client::new(Address::Unix(fpm.unix_socket().to_path_buf())).unwrap();
    let values = client
        .get_values(&["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS", "FCGI_MAX_REQS"])
        .unwrap();
    assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
    assert!(!values.multiplexes());
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

#[test]
fn max_requests_one_two_hundred_sequential_requests() {
    let fpm = PhpFpm::builder().max_requests(1).start();
    for address in addresses(&fpm) {
        let mut client = Client::with_options(address.clone(), Options::default());
        for i in 0..200 {
            let response = client
                .request(get(&fpm, "hello.php", ""))
                .unwrap_or_else(|e| panic!("{address} request {i}: {e}"));
            assert_eq!(response.body, b"Hello, World!");
        }
    }
}
