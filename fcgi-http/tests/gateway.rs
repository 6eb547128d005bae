//! The HTTP gateway (feature `http`) against a real php-fpm, through a real HTTP client:
//! a hyper server on 127.0.0.1:0 in this process serves the test kit's docroot, and a
//! hyper-util client requests from it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use fcgi_http::{
    FastCgiService, Gateway, PeerAddrs, ResponseBody, ScriptConfig, ServiceOptions, UnknownLength,
};
use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};
use fcgi_tokio::{Address, Client, Options};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

mod support;
use support::{serve, Server};

type TestBody = BoxBody<Bytes, std::io::Error>;

fn fpm() -> &'static PhpFpm {
    PhpFpm::shared()
}

fn fcgi_client(options: Options) -> Client {
    Client::with_upstreams([Address::Unix(fpm().unix_socket().to_path_buf())], options).unwrap()
}

fn gateway() -> Gateway {
    Gateway::new(
        fcgi_client(Options::default()),
        ScriptConfig::new(fpm().docroot().to_str().unwrap()),
    )
    .unwrap()
}

fn http_client() -> hyper_util::client::legacy::Client<HttpConnector, TestBody> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body of unknown length (sent chunked), in pieces of `piece` bytes.
fn chunked(data: Vec<u8>, piece: usize) -> TestBody {
    let data = Bytes::from(data);
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..data.len())
        .step_by(piece)
        .map(|at| Ok(Frame::data(data.slice(at..(at + piece).min(data.len())))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// A response read whole.
struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(server: &Server, request: http::request::Builder, body: TestBody) -> Got {
    let path = request.uri_ref().unwrap().path_and_query().unwrap().clone();
    let request = request
        .uri(format!("http://{}{path}", server.addr))
        .body(body)
        .unwrap();
    let response = http_client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(server: &Server, path: &str) -> Got {
    send(server, Request::get(path), empty()).await
}

/// Waits until `condition` holds of `fcgi`'s pool (a response without a body is drained
/// in the background after it has gone out); fails after 10 s.
async fn until(fcgi: &Client, what: &str, condition: impl Fn(&Client) -> bool) {
    let start = std::time::Instant::now();
    while !condition(fcgi) {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn hello() {
    let server = serve(gateway()).await;
    let got = get(&server, "/hello.php").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, "Hello, World!");
    assert_eq!(got.header("content-type"), Some("text/html; charset=UTF-8"));
    assert!(got.header("x-powered-by").unwrap().starts_with("PHP/"));
    assert!(got.headers.get("status").is_none());
    // PHP gives no length: the body goes out chunked, and the connection stays open.
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert!(got.headers.get("connection").is_none());
}

#[tokio::test]
async fn post_echo_with_sha256() {
    let server = serve(gateway()).await;
    for (i, len) in [0usize, 1, 65_536, 3 * 1024 * 1024].into_iter().enumerate() {
        let data = random_bytes(len, i as u64 + 11);
        let sha = hex_sha256(&data);
        // With Content-Length: streamed through.
        let got = send(
            &server,
            Request::post("/echo.php").header("content-type", "application/octet-stream"),
            full(data.clone()),
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{len}");
        assert_eq!(got.header("x-body-sha256"), Some(sha.as_str()), "{len}");
        assert_eq!(got.header("x-body-length"), Some(len.to_string().as_str()));
        assert_eq!(hex_sha256(&got.body), sha);
        // Chunked: spooled (in memory up to 1 MiB, then a temporary file), then sent
        // with its exact length.
        let got = send(
            &server,
            Request::post("/echo.php").header("content-type", "application/octet-stream"),
            chunked(data.clone(), 7919),
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "chunked {len}");
        assert_eq!(
            got.header("x-body-sha256"),
            Some(sha.as_str()),
            "chunked {len}"
        );
        assert_eq!(got.header("x-body-length"), Some(len.to_string().as_str()));
        assert_eq!(hex_sha256(&got.body), sha);
    }
}

#[tokio::test]
async fn unknown_length_rejected_with_411_and_too_large_with_413() {
    let mut options = ServiceOptions::default();
    options.unknown_length = UnknownLength::Reject;
    options.max_body_bytes = Some(1000);
    let root = ScriptConfig::new(fpm().docroot().to_str().unwrap());
    let server =
        serve(Gateway::with_options(fcgi_client(Options::default()), root, options).unwrap()).await;
    let got = send(&server, Request::post("/echo.php"), chunked(vec![1; 10], 3)).await;
    assert_eq!(got.status, StatusCode::LENGTH_REQUIRED);
    assert_eq!(got.body, "Length Required\n");
    let got = send(&server, Request::post("/echo.php"), full(vec![1; 1001])).await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE);
    let got = send(&server, Request::post("/echo.php"), full(vec![1; 1000])).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.len(), 1000);
    // Spooling counts too.
    let mut options = ServiceOptions::default();
    options.max_body_bytes = Some(1000);
    let root = ScriptConfig::new(fpm().docroot().to_str().unwrap());
    let server =
        serve(Gateway::with_options(fcgi_client(Options::default()), root, options).unwrap()).await;
    let got = send(
        &server,
        Request::post("/echo.php"),
        chunked(vec![1; 1001], 100),
    )
    .await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn three_set_cookies_in_order_and_status_consumed() {
    let server = serve(gateway()).await;
    let got = get(&server, "/cookies.php").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    let cookies: Vec<_> = got
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2", "c=3"]);
    assert!(got.headers.get("status").is_none());
    assert_eq!(got.body, "not here");
    let got = get(&server, "/status.php?code=418").await;
    assert_eq!(got.status.as_u16(), 418);
    assert_eq!(got.body, "status 418");
}

#[tokio::test]
async fn not_found_forbidden_and_bad_paths() {
    let server = serve(gateway()).await;
    for path in [
        "/missing.php",
        "/missing.php/more",
        "/missing.html",
        "/dir/missing.txt",
        "/.php",
    ] {
        let got = get(&server, path).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(got.body, "Not Found\n", "{path}");
        assert_eq!(
            got.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    for path in [
        "/../etc/passwd",
        "/a/../../etc/passwd",
        "/%2e%2e/etc/passwd",
    ] {
        let got = get(&server, path).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{path}");
    }
    // A symbolic link out of the root is not followed.
    let link = fpm().docroot().join("escape-link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let got = get(&server, "/escape-link/hostname").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    // The CVE-2019-11043 shape: a newline in the path never reaches PHP.
    let got = get(&server, "/hello.php/%0a").await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    let got = get(&server, "/hello.php%00.txt").await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn location_redirects() {
    let server = serve(gateway()).await;
    // No Status: a Location makes it 302, absolute or local.
    let got = get(&server, "/redirect.php?to=https://example.com/next").await;
    assert_eq!(got.status, StatusCode::FOUND);
    assert_eq!(got.header("location"), Some("https://example.com/next"));
    let got = get(&server, "/redirect.php?to=/login.php").await;
    assert_eq!(got.status, StatusCode::FOUND);
    assert_eq!(got.header("location"), Some("/login.php"));
    // PHP's own header('Location: ...') adds Status: 302 Found; an explicit 301 stays.
    fpm().write_script("gw_moved.php", "<?php header('Location: /new', true, 301);");
    let got = get(&server, "/gw_moved.php").await;
    assert_eq!(got.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(got.header("location"), Some("/new"));
    // A directory without its slash.
    std::fs::create_dir_all(fpm().docroot().join("gw_dir")).unwrap();
    let got = get(&server, "/gw_dir?x=1").await;
    assert_eq!(got.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(got.header("location"), Some("/gw_dir/?x=1"));
    // ... and with it, but no index.php: no listing.
    let got = get(&server, "/gw_dir/").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn directory_index_and_path_info() {
    let server = serve(gateway()).await;
    fpm().write_script(
        "gw_app/index.php",
        "<?php echo $_SERVER['SCRIPT_NAME'], '|', $_SERVER['SCRIPT_FILENAME'], '|', \
         $_SERVER['PATH_INFO'] ?? '-', '|', $_SERVER['DOCUMENT_URI'], '|', $_SERVER['REQUEST_URI'];",
    );
    let root = std::fs::canonicalize(fpm().docroot()).unwrap();
    let root = root.to_str().unwrap();
    let got = get(&server, "/gw_app/?q=1").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.text(),
        format!("/gw_app/index.php|{root}/gw_app/index.php|-|/gw_app/index.php|/gw_app/?q=1")
    );
    let got = get(&server, "/gw_app/index.php/users/7").await;
    assert_eq!(
        got.text(),
        format!(
            "/gw_app/index.php|{root}/gw_app/index.php|/users/7|/gw_app/index.php/users/7|/gw_app/index.php/users/7"
        )
    );
    let got = get(&server, "/gw_app//./index.php").await;
    assert_eq!(
        got.text(),
        format!(
            "/gw_app/index.php|{root}/gw_app/index.php|-|/gw_app/index.php|/gw_app//./index.php"
        )
    );
}

#[tokio::test]
async fn static_file() {
    let server = serve(gateway()).await;
    let data = random_bytes(200_000, 5);
    std::fs::create_dir_all(fpm().docroot().join("gw_static")).unwrap();
    std::fs::write(fpm().docroot().join("gw_static/blob.bin"), &data).unwrap();
    std::fs::write(fpm().docroot().join("gw_static/page.html"), "<p>hi</p>").unwrap();
    std::fs::write(fpm().docroot().join("gw_static/source.PHP"), "<?php x").unwrap();
    let got = get(&server, "/gw_static/blob.bin").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("content-length"), Some("200000"));
    assert_eq!(hex_sha256(&got.body), hex_sha256(&data));
    let modified = got.header("last-modified").unwrap().to_owned();
    assert!(modified.ends_with(" GMT"), "{modified}");
    let got = get(&server, "/gw_static/page.html").await;
    assert_eq!(got.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(got.body, "<p>hi</p>");
    // Matched byte for byte, as nginx: `.PHP` is not PHP.
    let got = get(&server, "/gw_static/source.PHP").await;
    assert_eq!(got.body, "<?php x");
    // HEAD: the head alone, with the length.
    let got = send(&server, Request::head("/gw_static/blob.bin"), empty()).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-length"), Some("200000"));
    assert!(got.body.is_empty());
    // If-Modified-Since equal to Last-Modified: 304, no body.
    let got = send(
        &server,
        Request::get("/gw_static/blob.bin").header("if-modified-since", &modified),
        empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert!(got.body.is_empty());
    // Only GET and HEAD.
    let got = send(&server, Request::post("/gw_static/page.html"), full("x")).await;
    assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(got.header("allow"), Some("GET, HEAD"));
    // Percent-encoded names.
    std::fs::write(fpm().docroot().join("gw_static/a b.txt"), "spaced").unwrap();
    let got = get(&server, "/gw_static/a%20b.txt").await;
    assert_eq!(got.body, "spaced");
    assert_eq!(
        got.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

/// A HEAD to a script that keeps streaming after its head: answered at once, not when
/// the script ends; the background drain gives up after 1 s and closes that connection.
#[tokio::test]
async fn head_to_a_streaming_script_is_answered_at_once() {
    let gateway = gateway();
    let fcgi = gateway.fastcgi().client().clone();
    let server = serve(gateway).await;
    fpm().write_script(
        "gw_stream.php",
        "<?php echo 'first'; flush(); sleep(5); echo 'late';",
    );
    let client = http_client();
    let start = std::time::Instant::now();
    let request = Request::head(format!("http://{}/gw_stream.php", server.addr))
        .body(empty())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
    // The script sleeps 5 s: answered well before that.
    assert!(
        start.elapsed() < Duration::from_millis(4500),
        "{:?}",
        start.elapsed()
    );
    until(&fcgi, "the drained connection is closed", |c| {
        c.open_connections() == 0
    })
    .await;
    assert_eq!(fcgi.idle_connections(), 0);
    let got = get(&server, "/hello.php").await;
    assert_eq!(got.body, "Hello, World!");
    assert_eq!(fcgi.connections_opened(), 2);
}

#[tokio::test]
async fn head_has_no_body_and_keeps_connections() {
    let gateway = gateway();
    let fcgi = gateway.fastcgi().client().clone();
    let server = serve(gateway).await;
    let client = http_client();
    for _ in 0..5 {
        let request = Request::head(format!("http://{}/hello.php", server.addr))
            .body(empty())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=UTF-8"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
        until(&fcgi, "the connection is back", |c| {
            c.idle_connections() == 1
        })
        .await;
    }
    for _ in 0..5 {
        let request = Request::get(format!("http://{}/hello.php", server.addr))
            .body(empty())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "Hello, World!");
    }
    // A script that sends its length and its body to a HEAD request, then works on:
    // the length is passed on at once, the body read and thrown away, and the
    // connection back in the pool when the script ends.
    fpm().write_script(
        "gw_len.php",
        "<?php header('Content-Length: 5'); echo 'hello'; flush(); usleep(50000);",
    );
    for _ in 0..3 {
        let request = Request::head(format!("http://{}/gw_len.php", server.addr))
            .body(empty())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "5");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
        until(&fcgi, "the connection is back", |c| {
            c.idle_connections() == 1
        })
        .await;
    }
    let request = Request::get(format!("http://{}/gw_len.php", server.addr))
        .body(empty())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.headers()["content-length"], "5");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    // HTTP/1.1 keep-alive to the client, kept FastCGI connections behind.
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(fcgi.connections_opened(), 1);
    // 204 and 304 from PHP: no body either.
    fpm().write_script(
        "gw_nobody.php",
        "<?php http_response_code((int) $_GET['code']); echo 'ignored';",
    );
    for code in [204, 304] {
        let got = get(&server, &format!("/gw_nobody.php?code={code}")).await;
        assert_eq!(got.status.as_u16(), code);
        assert!(got.body.is_empty(), "{code}");
    }
}

#[tokio::test]
async fn underscore_and_proxy_headers_are_not_passed_on() {
    let server = serve(gateway()).await;
    let got = send(
        &server,
        Request::get("/server.php/extra?x=1")
            .header("x_user_id", "spoofed")
            .header("proxy", "http://evil.example:8080/")
            .header("x-user-id", "real")
            .header("x-trace", "a")
            .header("x-trace", "b"),
        empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let text = got.text();
    let root = std::fs::canonicalize(fpm().docroot()).unwrap();
    let root = root.to_str().unwrap();
    assert!(!text.contains("HTTP_PROXY"), "{text}");
    assert!(!text.contains("spoofed"), "{text}");
    for expected in [
        r#""HTTP_X_USER_ID":"real""#.to_owned(),
        r#""HTTP_X_TRACE":"a, b""#.to_owned(),
        format!(r#""HTTP_HOST":"{}""#, server.addr),
        r#""SERVER_NAME":"127.0.0.1""#.to_owned(),
        r#""REMOTE_ADDR":"127.0.0.1""#.to_owned(),
        r#""SERVER_ADDR":"127.0.0.1""#.to_owned(),
        format!(r#""SERVER_PORT":"{}""#, server.addr.port()),
        r#""SCRIPT_NAME":"/server.php""#.to_owned(),
        format!(r#""SCRIPT_FILENAME":"{root}/server.php""#),
        format!(r#""DOCUMENT_ROOT":"{root}""#),
        r#""PATH_INFO":"/extra""#.to_owned(),
        format!(r#""PATH_TRANSLATED":"{root}/extra""#),
        r#""REQUEST_URI":"/server.php/extra?x=1""#.to_owned(),
        r#""QUERY_STRING":"x=1""#.to_owned(),
        r#""REQUEST_METHOD":"GET""#.to_owned(),
        r#""SERVER_PROTOCOL":"HTTP/1.1""#.to_owned(),
        r#""REQUEST_SCHEME":"http""#.to_owned(),
        r#""GATEWAY_INTERFACE":"CGI/1.1""#.to_owned(),
        r#""REDIRECT_STATUS":"200""#.to_owned(),
        format!(r#""SERVER_SOFTWARE":"fcgi/{}""#, env!("CARGO_PKG_VERSION")),
    ] {
        assert!(text.contains(&expected), "{expected} in {text}");
    }
    assert!(text.contains(r#""REMOTE_PORT":""#));
    // A chunked POST reaches PHP with its exact CONTENT_LENGTH and no framing header.
    let got = send(
        &server,
        Request::post("/server.php").header("content-type", "text/plain"),
        chunked(vec![b'x'; 1000], 99),
    )
    .await;
    let text = got.text();
    assert!(text.contains(r#""CONTENT_LENGTH":"1000""#), "{text}");
    assert!(text.contains(r#""CONTENT_TYPE":"text/plain""#), "{text}");
    assert!(!text.contains("TRANSFER_ENCODING"), "{text}");
}

/// `ServiceOptions::header_policy` reaches PHP, through the gateway and through the tower
/// service alike: with underscores allowed and `Proxy` kept, `X-User_Id` arrives as
/// `HTTP_X_USER_ID` and `Proxy` as `HTTP_PROXY`, exactly; with the default options neither
/// arrives.
///
/// PHP guards against httpoxy itself: it removes `HTTP_PROXY` from `$_SERVER` (and
/// `getenv`) unless php-fpm's own environment sets it. `getallheaders()` is built by
/// php-fpm from the `HTTP_*` params as received, so it shows whether the param was sent.
#[tokio::test]
async fn header_policy_option_reaches_php() {
    use tower_service::Service;
    fpm().write_script(
        "gw_policy.php",
        r#"<?php
$show = fn ($a, $k) => array_key_exists($k, $a) ? '[' . $a[$k] . ']' : 'unset';
$params = array_change_key_case(getallheaders(), CASE_UPPER);
echo '$_SERVER HTTP_X_USER_ID=', $show($_SERVER, 'HTTP_X_USER_ID'), "\n";
echo 'param HTTP_PROXY=', $show($params, 'PROXY'), "\n";
echo '$_SERVER HTTP_PROXY=', $show($_SERVER, 'HTTP_PROXY'), "\n";
"#,
    );
    let mut open = ServiceOptions::default();
    open.header_policy.allow_underscores = true;
    open.header_policy.drop_proxy = false;
    let passed = "$_SERVER HTTP_X_USER_ID=[42]\n\
                  param HTTP_PROXY=[http://proxy.example:3128/]\n\
                  $_SERVER HTTP_PROXY=unset\n";
    let dropped = "$_SERVER HTTP_X_USER_ID=unset\n\
                   param HTTP_PROXY=unset\n\
                   $_SERVER HTTP_PROXY=unset\n";
    let request = || {
        Request::get("/gw_policy.php")
            .header("X-User_Id", "42")
            .header("Proxy", "http://proxy.example:3128/")
    };
    let root = || ScriptConfig::new(fpm().docroot().to_str().unwrap());

    for (options, expected) in [(open, passed), (ServiceOptions::default(), dropped)] {
        let gateway =
            Gateway::with_options(fcgi_client(Options::default()), root(), options.clone())
                .unwrap();
        let got = send(&serve(gateway).await, request(), empty()).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.text(), expected, "gateway, {:?}", options.header_policy);

        let mut service =
            FastCgiService::with_options(fcgi_client(Options::default()), root(), options.clone());
        let response = service
            .call(request().body(String::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, expected, "service, {:?}", options.header_policy);
    }
}

#[tokio::test]
async fn hop_by_hop_headers_from_php_are_dropped() {
    let server = serve(gateway()).await;
    fpm().write_script(
        "gw_hop.php",
        "<?php header('Connection: X-Secret'); header('X-Secret: 1'); \
         header('Keep-Alive: timeout=1'); header('Upgrade: nope'); header('Trailer: X-T'); \
         header('X-Kept: yes'); echo 'body';",
    );
    let got = get(&server, "/gw_hop.php").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, "body");
    assert_eq!(got.header("x-kept"), Some("yes"));
    for gone in ["x-secret", "keep-alive", "upgrade", "trailer", "connection"] {
        assert!(got.headers.get(gone).is_none(), "{gone}: {:?}", got.headers);
    }
}

#[tokio::test]
async fn upstream_failures_are_502_and_504_without_detail() {
    let missing = std::env::temp_dir().join(format!("fcgi-gw-missing-{}.sock", std::process::id()));
    let client =
        Client::with_upstreams([Address::Unix(missing.clone())], Options::default()).unwrap();
    let root = ScriptConfig::new(fpm().docroot().to_str().unwrap());
    let server = serve(Gateway::new(client, root).unwrap()).await;
    let got = get(&server, "/hello.php").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.body, "Bad Gateway\n");
    // Static files do not need the upstream.
    std::fs::write(fpm().docroot().join("gw_plain.txt"), "plain").unwrap();
    assert_eq!(get(&server, "/gw_plain.txt").await.body, "plain");

    let mut options = Options::default();
    options.read_timeout = Some(Duration::from_millis(200));
    let root = ScriptConfig::new(fpm().docroot().to_str().unwrap());
    let server = serve(Gateway::new(fcgi_client(options), root).unwrap()).await;
    let got = get(&server, "/sleep.php?ms=1500").await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(got.body, "Gateway Timeout\n");
}

/// A record after END_REQUEST, read with it: the response had arrived whole, so the
/// visitor gets it (200 and its body, not a 502); the broken connection is closed.
#[tokio::test]
async fn a_record_after_end_request_spares_the_response() {
    let case = fcgi_testkit::hostile::cases()
        .into_iter()
        .find(|c| c.name == "stdout_after_end_request")
        .expect("the hostile case");
    let hostile = fcgi_testkit::hostile::Hostile::start(&case);
    let client = Client::with_upstreams(
        [Address::Unix(hostile.socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    std::fs::write(
        fpm().docroot().join("gw_hostile.php"),
        "<?php // served by the hostile server",
    )
    .unwrap();
    let root = ScriptConfig::new(fpm().docroot().to_str().unwrap());
    let server = serve(Gateway::new(client.clone(), root).unwrap()).await;
    let got = get(&server, "/gw_hostile.php").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.body, fcgi_testkit::hostile::BODY);
    until(&client, "the broken connection closed", |c| {
        c.open_connections() == 0
    })
    .await;
    assert_eq!(client.idle_connections(), 0);
}

/// The tower Service as axum would call it: any body type, `PeerAddrs` from the
/// request's extensions, scripts resolved from the path alone.
#[tokio::test]
async fn tower_service_directly() {
    use tower_service::Service;
    let script = ScriptConfig::new(fpm().docroot().to_str().unwrap()).param("APP_ENV", "test");
    let mut service = FastCgiService::new(fcgi_client(Options::default()), script);
    let peer = PeerAddrs::new(
        "192.0.2.7:40000".parse().unwrap(),
        "[::1]:8443".parse().unwrap(),
    );
    let mut request = Request::builder()
        .method(Method::PUT)
        .uri("/echo.php")
        .body(Full::new(Bytes::from_static(b"tower body")))
        .unwrap();
    request.extensions_mut().insert(peer);
    let response: Response<ResponseBody> = service.call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-body-sha256"],
        hex_sha256(b"tower body").as_str()
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "tower body");

    let mut request = Request::get("/server.php/p").body(String::new()).unwrap();
    request.extensions_mut().insert(peer);
    let response = service.call(request).await.unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for expected in [
        r#""REMOTE_ADDR":"192.0.2.7""#,
        r#""REMOTE_PORT":"40000""#,
        r#""SERVER_ADDR":"::1""#,
        r#""SERVER_PORT":"8443""#,
        r#""APP_ENV":"test""#,
        r#""PATH_INFO":"/p""#,
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    // Without a file system check: a missing script is php-fpm's own 404.
    let response = service
        .call(Request::get("/nope.php").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "File not found.\n"
    );
    assert_eq!(header::CONTENT_TYPE, "content-type");
}

/// A response with the application's `Content-Length`: hyper stops reading the body once
/// it has that many bytes, before the `END_REQUEST` record; the rest is drained so that
/// the FastCGI connection is kept, request after request.
#[tokio::test]
async fn content_length_responses_keep_their_connection() {
    let gateway = gateway();
    let fcgi = gateway.fastcgi().client().clone();
    let server = serve(gateway).await;
    fpm().write_script(
        "gw_length.php",
        "<?php header('Content-Length: 5'); echo 'hello';",
    );
    for _ in 0..5 {
        let got = get(&server, "/gw_length.php").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.header("content-length"), Some("5"));
        assert_eq!(got.body, "hello");
        until(&fcgi, "the connection is back", |c| {
            c.idle_connections() == 1
        })
        .await;
    }
    assert_eq!(fcgi.connections_opened(), 1);
}

/// A front-controller application, as Laravel, Symfony or Slim lay one out: every path
/// that is no file and no directory runs `/index.php` with the original REQUEST_URI and
/// QUERY_STRING, as nginx's `try_files $uri $uri/ /index.php$is_args$args` does; files
/// are still files and other scripts still run themselves.
#[tokio::test]
async fn front_controller_runs_for_paths_that_name_nothing() {
    let app = "fc_app";
    let show = r#"<?php
foreach (['SCRIPT_NAME', 'SCRIPT_FILENAME', 'REQUEST_URI', 'QUERY_STRING', 'DOCUMENT_URI', 'PATH_INFO', 'REQUEST_METHOD'] as $k) {
    echo $k, '=', $_SERVER[$k] ?? 'unset', "\n";
}
echo 'body=', file_get_contents('php://input'), "\n";
"#;
    fpm().write_script(&format!("{app}/index.php"), show);
    fpm().write_script(
        &format!("{app}/other.php"),
        "<?php echo 'other ', $_SERVER['SCRIPT_NAME'];",
    );
    fpm().write_script(&format!("{app}/style.css"), "body { color: red }\n");
    fpm().write_script(&format!("{app}/docs/index.php"), "<?php echo 'docs index';");
    let root = fpm().docroot().join(app);
    let root = std::fs::canonicalize(root).unwrap();
    let root_text = root.to_str().unwrap();
    let gateway = Gateway::new(
        fcgi_client(Options::default()),
        ScriptConfig::new(root_text).front_controller(Some("/index.php")),
    )
    .unwrap();
    let server = serve(gateway).await;

    let expect = |uri: &str, query: &str, method: &str, body: &str| {
        format!(
            "SCRIPT_NAME=/index.php\nSCRIPT_FILENAME={root_text}/index.php\nREQUEST_URI={uri}\n\
             QUERY_STRING={query}\nDOCUMENT_URI=/index.php\nPATH_INFO=unset\n\
             REQUEST_METHOD={method}\nbody={body}\n"
        )
    };
    let got = get(&server, "/blog/2026/hello%20world?page=2&x=%41").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.text(),
        expect(
            "/blog/2026/hello%20world?page=2&x=%41",
            "page=2&x=%41",
            "GET",
            ""
        )
    );
    // A form POST to a pretty URL reaches the front controller with its body.
    let got = send(
        &server,
        Request::post("/api/items?v=1").header("content-type", "application/x-www-form-urlencoded"),
        full("name=widget"),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.text(),
        expect("/api/items?v=1", "v=1", "POST", "name=widget")
    );
    // A path under a file names nothing either.
    let got = get(&server, "/style.css/more").await;
    assert_eq!(got.text(), expect("/style.css/more", "", "GET", ""));

    // The root runs its index file, with its own REQUEST_URI.
    let got = get(&server, "/").await;
    assert_eq!(got.text(), expect("/", "", "GET", ""));
    // Files are files, scripts run themselves, directories keep their rules.
    let got = get(&server, "/style.css").await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (StatusCode::OK, "body { color: red }\n")
    );
    let got = get(&server, "/other.php").await;
    assert_eq!(got.text(), "other /other.php");
    let got = get(&server, "/docs/").await;
    assert_eq!(got.text(), "docs index");
    let got = get(&server, "/docs").await;
    assert_eq!(got.status, StatusCode::MOVED_PERMANENTLY);
    // A missing script is 404, as nginx's `location ~ \.php$` answers it.
    let got = get(&server, "/missing.php").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);

    // A front controller that does not exist is 404, not a FastCGI error.
    let gateway = Gateway::new(
        fcgi_client(Options::default()),
        ScriptConfig::new(root_text).front_controller(Some("app.php")),
    )
    .unwrap();
    let got = get(&serve(gateway).await, "/anything").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
}

/// `.env`, `.git/` and other dot files are 404 unless allowed; `/.well-known/` is open.
#[tokio::test]
async fn dotfiles_are_hidden_unless_allowed() {
    let app = "dot_app";
    fpm().write_script(&format!("{app}/.env"), "DB_PASSWORD=secret\n");
    fpm().write_script(&format!("{app}/.git/config"), "[core]\n");
    fpm().write_script(&format!("{app}/.hidden/run.php"), "<?php echo 'ran';");
    fpm().write_script(
        &format!("{app}/.well-known/acme-challenge/token"),
        "proof\n",
    );
    fpm().write_script(&format!("{app}/.well-known/.secret"), "no\n");
    let root = fpm().docroot().join(app);
    let config = || ScriptConfig::new(root.to_str().unwrap());
    let server = serve(Gateway::new(fcgi_client(Options::default()), config()).unwrap()).await;
    for path in [
        "/.env",
        "/%2eenv",
        "/x/../.env",
        "/.git/config",
        "/.git/",
        "/.hidden/run.php",
        "/.well-known/.secret",
    ] {
        let got = get(&server, path).await;
        assert_eq!(
            (got.status, got.text().as_str()),
            (StatusCode::NOT_FOUND, "Not Found\n"),
            "{path}"
        );
    }
    let got = get(&server, "/.well-known/acme-challenge/token").await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (StatusCode::OK, "proof\n")
    );

    let open = Gateway::new(
        fcgi_client(Options::default()),
        config().allow_dotfiles(true),
    )
    .unwrap();
    let server = serve(open).await;
    let got = get(&server, "/.env").await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (StatusCode::OK, "DB_PASSWORD=secret\n")
    );
    let got = get(&server, "/.hidden/run.php").await;
    assert_eq!((got.status, got.text().as_str()), (StatusCode::OK, "ran"));
}

/// `X-Forwarded-For` and `X-Forwarded-Proto` set REMOTE_ADDR and HTTPS only when the
/// connection comes from a trusted proxy; from anyone else they are plain headers.
#[tokio::test]
async fn forwarding_headers_only_from_trusted_proxies() {
    fpm().write_script(
        "gw_remote.php",
        "<?php foreach (['REMOTE_ADDR', 'REMOTE_PORT', 'HTTPS', 'REQUEST_SCHEME', 'HTTP_X_FORWARDED_FOR'] as $k) { echo $k, '=', $_SERVER[$k] ?? 'unset', \"\\n\"; }",
    );
    let served = |trusted: &[&str]| {
        let mut options = ServiceOptions::default();
        options.trusted_proxies = trusted
            .iter()
            .map(|t| fcgi_http::parse_trusted_proxy(t).unwrap())
            .collect();
        Gateway::with_options(
            fcgi_client(Options::default()),
            ScriptConfig::new(fpm().docroot().to_str().unwrap()),
            options,
        )
        .unwrap()
    };
    let request = || {
        Request::get("/gw_remote.php")
            .header("X-Forwarded-For", "6.6.6.6, 203.0.113.7")
            .header("X-Forwarded-Proto", "https")
    };

    // The test's client connects from 127.0.0.1: a trusted proxy here.
    let server = serve(served(&["127.0.0.0/8"])).await;
    let got = send(&server, request(), empty()).await;
    assert_eq!(
        got.text(),
        "REMOTE_ADDR=203.0.113.7\nREMOTE_PORT=\nHTTPS=on\nREQUEST_SCHEME=https\n\
         HTTP_X_FORWARDED_FOR=6.6.6.6, 203.0.113.7\n"
    );

    // Not trusted (and the default, none trusted): the connection's own address.
    for trusted in [&["10.0.0.0/8"][..], &[]] {
        let server = serve(served(trusted)).await;
        let got = send(&server, request(), empty()).await;
        let text = got.text();
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("REMOTE_PORT="))
            .unwrap();
        assert!(port.parse::<u16>().unwrap() > 0, "{text}");
        assert_eq!(
            text,
            format!(
                "REMOTE_ADDR=127.0.0.1\nREMOTE_PORT={port}\nHTTPS=unset\nREQUEST_SCHEME=http\n\
                 HTTP_X_FORWARDED_FOR=6.6.6.6, 203.0.113.7\n"
            ),
            "{trusted:?}"
        );
    }
}

/// Conditional and range requests of static files, and precompressed siblings.
#[tokio::test]
async fn static_files_etag_range_and_precompressed() {
    let server = serve(gateway()).await;
    let dir = fpm().docroot().join("gw_cond");
    std::fs::create_dir_all(&dir).unwrap();
    let data = random_bytes(100_000, 23);
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let got = get(&server, "/gw_cond/data.bin").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("accept-ranges"), Some("bytes"));
    let etag = got.header("etag").unwrap().to_owned();
    let modified = got.header("last-modified").unwrap().to_owned();
    let meta = std::fs::metadata(dir.join("data.bin")).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(etag, format!("\"{mtime:x}-{:x}\"", data.len()));

    let conditional = |name: &'static str, value: String| {
        let request = Request::get("/gw_cond/data.bin").header(name, value);
        send(&server, request, empty())
    };
    // If-None-Match: 304 with the tag, no body; W/ and lists match too.
    for value in [etag.clone(), format!("\"nope\", W/{etag}"), "*".to_owned()] {
        let got = conditional("if-none-match", value.clone()).await;
        assert_eq!(got.status, StatusCode::NOT_MODIFIED, "{value}");
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        assert!(got.body.is_empty());
    }
    // A tag that does not match wins over a matching If-Modified-Since (RFC 9110).
    let got = send(
        &server,
        Request::get("/gw_cond/data.bin")
            .header("if-none-match", "\"other\"")
            .header("if-modified-since", &modified),
        empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(hex_sha256(&got.body), hex_sha256(&data));

    // A single range: 206 with exactly those bytes.
    let got = conditional("range", "bytes=1000-1999".into()).await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got.header("content-range"), Some("bytes 1000-1999/100000"));
    assert_eq!(got.header("content-length"), Some("1000"));
    assert_eq!(got.body, data[1000..2000]);
    let got = conditional("range", "bytes=-10".into()).await;
    assert_eq!(got.body, data[data.len() - 10..]);
    // Beyond the end, and several ranges at once: 416.
    for range in ["bytes=200000-", "bytes=0-1,5-6"] {
        let got = conditional("range", range.into()).await;
        assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(got.header("content-range"), Some("bytes */100000"));
    }
    // If-Range: the range for the current version only, else the whole file.
    for (if_range, partial) in [
        (etag.clone(), true),
        (modified.clone(), true),
        ("\"old\"".to_owned(), false),
    ] {
        let got = send(
            &server,
            Request::get("/gw_cond/data.bin")
                .header("range", "bytes=0-9")
                .header("if-range", &if_range),
            empty(),
        )
        .await;
        if partial {
            assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{if_range}");
            assert_eq!(got.body, data[..10]);
        } else {
            assert_eq!(got.status, StatusCode::OK, "{if_range}");
            assert_eq!(got.body.len(), data.len());
        }
    }

    // Precompressed siblings, when the client accepts them.
    std::fs::write(dir.join("app.js"), "console.log('plain');\n").unwrap();
    std::fs::write(dir.join("app.js.br"), "BROTLI BYTES").unwrap();
    std::fs::write(dir.join("app.js.gz"), "GZIP BYTES").unwrap();
    let with = |encoding: &'static str| {
        send(
            &server,
            Request::get("/gw_cond/app.js").header("accept-encoding", encoding),
            empty(),
        )
    };
    let got = with("gzip, br").await;
    assert_eq!(got.header("content-encoding"), Some("br"));
    assert_eq!(
        got.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(got.body, "BROTLI BYTES");
    let got = with("gzip").await;
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    assert_eq!(got.body, "GZIP BYTES");
    let got = with("identity").await;
    assert_eq!(got.header("content-encoding"), None);
    assert_eq!(got.body, "console.log('plain');\n");
    // A sibling's tag is the file's, weak: other bytes, the same content. It still
    // revalidates (If-None-Match compares weakly), but a range it validates is for
    // other bytes, so If-Range with a sibling in play gets the whole sibling.
    let plain_tag = got.header("etag").unwrap().to_owned();
    assert!(plain_tag.starts_with('"'), "{plain_tag}");
    let got = with("gzip").await;
    assert_eq!(got.header("etag"), Some(format!("W/{plain_tag}").as_str()));
    let got = send(
        &server,
        Request::get("/gw_cond/app.js")
            .header("accept-encoding", "gzip")
            .header("if-none-match", format!("W/{plain_tag}")),
        empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert_eq!(got.header("etag"), Some(format!("W/{plain_tag}").as_str()));
    let got = send(
        &server,
        Request::get("/gw_cond/app.js")
            .header("accept-encoding", "gzip")
            .header("range", "bytes=0-3")
            .header("if-range", plain_tag.as_str()),
        empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, "GZIP BYTES");
    let got = send(
        &server,
        Request::get("/gw_cond/app.js")
            .header("range", "bytes=0-6")
            .header("if-range", plain_tag.as_str()),
        empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(got.body, "console");
    // A sibling that is a symbolic link out of the root is not served.
    std::fs::write(dir.join("lib.js"), "plain lib\n").unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "SECRET").unwrap();
    let link = dir.join("lib.js.gz");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let got = send(
        &server,
        Request::get("/gw_cond/lib.js").header("accept-encoding", "gzip"),
        empty(),
    )
    .await;
    assert_eq!(got.header("content-encoding"), None);
    assert_eq!(got.body, "plain lib\n");
}

/// `X-Accel-Redirect` and `X-Sendfile` under a sendfile root: the gateway sends the
/// file the application names, with ranges, keeping the application's headers that
/// matter; nothing outside that root; without the option the headers pass through.
#[tokio::test]
async fn sendfile_from_the_application() {
    let files = tempfile::tempdir().unwrap();
    let files_root = std::fs::canonicalize(files.path()).unwrap();
    std::fs::create_dir_all(files_root.join("reports")).unwrap();
    let report = random_bytes(300_000, 31);
    std::fs::write(files_root.join("reports/q4.zip"), &report).unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "SECRET").unwrap();
    fpm().write_script(
        "gw_download.php",
        r#"<?php
header('Content-Type: application/zip');
header('Content-Disposition: attachment; filename="q4.zip"');
setcookie('downloaded', 'q4');
header('Cache-Control: private');
if (isset($_GET['accel'])) { header('X-Accel-Redirect: ' . $_GET['accel']); }
if (isset($_GET['sendfile'])) { header('X-Sendfile: ' . $_GET['sendfile']); }
echo 'the application body';
"#,
    );
    let gateway = || {
        Gateway::new(
            fcgi_client(Options::default()),
            ScriptConfig::new(fpm().docroot().to_str().unwrap()),
        )
        .unwrap()
    };
    let server = serve(gateway().sendfile_root(&files_root).unwrap()).await;
    let sendfile = files_root.join("reports/q4.zip");
    let encode = |s: &str| s.replace('/', "%2F");
    for query in [
        "accel=/reports/q4.zip".to_owned(),
        format!("sendfile={}", encode(sendfile.to_str().unwrap())),
    ] {
        let uri = format!("/gw_download.php?{query}");
        // A POST too: the file is sent as for a GET, as nginx does.
        for method in [Method::GET, Method::POST] {
            let got = send(
                &server,
                Request::builder().method(method.clone()).uri(&uri),
                empty(),
            )
            .await;
            assert_eq!(got.status, StatusCode::OK, "{query} {method}");
            assert_eq!(hex_sha256(&got.body), hex_sha256(&report), "{query}");
            assert_eq!(got.header("content-length"), Some("300000"));
            assert_eq!(got.header("content-type"), Some("application/zip"));
            assert_eq!(
                got.header("content-disposition"),
                Some("attachment; filename=\"q4.zip\"")
            );
            assert_eq!(got.header("set-cookie"), Some("downloaded=q4"));
            assert_eq!(got.header("cache-control"), Some("private"));
            assert_eq!(got.header("x-accel-redirect"), None);
            assert_eq!(got.header("x-sendfile"), None);
        }
        let got = send(
            &server,
            Request::get(&uri).header("range", "bytes=100-199"),
            empty(),
        )
        .await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(got.body, report[100..200]);
        let got = send(&server, Request::head(&uri), empty()).await;
        assert_eq!((got.status, got.body.len()), (StatusCode::OK, 0));
        assert_eq!(got.header("content-length"), Some("300000"));
    }
    // Nothing outside the sendfile root, nothing missing.
    for (query, status) in [
        ("accel=/../etc/passwd".to_owned(), StatusCode::FORBIDDEN),
        (
            "accel=/reports/missing.zip".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        ("accel=/reports/".to_owned(), StatusCode::FORBIDDEN),
        (
            format!("sendfile={}", encode(outside.path().to_str().unwrap())),
            StatusCode::FORBIDDEN,
        ),
        (
            "sendfile=%2Fnowhere%2Fq4.zip".to_owned(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let got = get(&server, &format!("/gw_download.php?{query}")).await;
        assert_eq!(got.status, status, "{query}");
        assert!(!got.text().contains("SECRET"));
    }
    // Without a sendfile root the application's response goes out as it is.
    let server = serve(gateway()).await;
    let got = get(&server, "/gw_download.php?accel=/reports/q4.zip").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("x-accel-redirect"), Some("/reports/q4.zip"));
    assert_eq!(got.body, "the application body");
}

/// A tracing writer into a shared buffer, for the access log's lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// One access log line per request, in nginx's combined format plus the request and
/// upstream times, written when the body has gone out, and with status 499 when the
/// client left before the response began.
#[tokio::test]
async fn access_log_lines() {
    use tower_service::Service;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut logged = tower_layer::Layer::layer(&fcgi_http::AccessLogLayer::new(), gateway());
    let peer = PeerAddrs::new(
        "192.0.2.7:4711".parse().unwrap(),
        "127.0.0.1:80".parse().unwrap(),
    );
    std::fs::write(fpm().docroot().join("gw_log.txt"), "twelve bytes").unwrap();
    for (uri, agent) in [("/hello.php?x=1", "agent \"one\""), ("/gw_log.txt", "two")] {
        let request = Request::get(uri)
            .header("user-agent", agent)
            .header("referer", "http://example.com/")
            .extension(peer)
            .body(String::new())
            .unwrap();
        let response = logged.call(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty());
    }
    let missing = Request::get("/missing.html")
        .extension(peer)
        .body(String::new())
        .unwrap();
    drop(logged.call(missing).await.unwrap());
    // A client that leaves while the script runs: its response never begins.
    let abandoned = Request::get("/sleep.php?ms=1000")
        .extension(peer)
        .body(String::new())
        .unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(50), logged.call(abandoned)).await;
    assert!(gave_up.is_err(), "the script sleeps 1 s");
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let shape = |line: &str, head: &str, tail: &str, upstream: bool| {
        // 192.0.2.7 - - [02/Dec/2026:08:49:37 +0000] "GET ..." 200 13 "ref" "ua" 0.001 0.001
        let (start, rest) = line.split_once(" [").unwrap();
        assert_eq!(start, "192.0.2.7 - -", "{line}");
        let (time, rest) = rest.split_once("] ").unwrap();
        assert_eq!(time.len(), "02/Dec/2026:08:49:37 +0000".len(), "{line}");
        assert!(time.ends_with(" +0000"), "{line}");
        assert!(rest.starts_with(head), "{line}");
        let fields: Vec<&str> = rest.rsplitn(3, ' ').collect();
        let (upstream_time, request_time, before) = (fields[0], fields[1], fields[2]);
        assert!(before.ends_with(tail), "{line}");
        assert!(request_time.parse::<f64>().unwrap() < 10.0, "{line}");
        if upstream {
            assert!(
                upstream_time.parse::<f64>().unwrap() <= request_time.parse::<f64>().unwrap(),
                "{line}"
            );
        } else {
            assert_eq!(upstream_time, "-", "{line}");
        }
    };
    shape(
        lines[0],
        "\"GET /hello.php?x=1 HTTP/1.1\" 200 13 ",
        "\"http://example.com/\" \"agent \\x22one\\x22\"",
        true,
    );
    shape(
        lines[1],
        "\"GET /gw_log.txt HTTP/1.1\" 200 12 ",
        "\"http://example.com/\" \"two\"",
        false,
    );
    shape(
        lines[2],
        "\"GET /missing.html HTTP/1.1\" 404 0 ",
        "\"-\" \"-\"",
        false,
    );
    shape(
        lines[3],
        "\"GET /sleep.php?ms=1000 HTTP/1.1\" 499 0 ",
        "\"-\" \"-\"",
        false,
    );
}
