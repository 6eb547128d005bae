//! A real framework application through the gateway, beside nginx.
//!
//! The test kit's Slim 3 application (`fcgi_testkit::slim`, on Debian's `php-slim`) runs
//! on one private php-fpm behind two HTTP servers:
//!
//! - the [`Gateway`] with the front controller `/index.php`, served by hyper on
//!   127.0.0.1 (as the other gateway tests serve it);
//! - a private nginx ([`fcgi_testkit::Nginx`]) configured as Slim is deployed:
//!   `try_files $uri $uri/ /index.php$is_args$args;` and `*.php` to php-fpm
//!   ([`fcgi_testkit::slim::nginx_server`]).
//!
//! Every request goes to both. Per request the test compares the status, the headers
//! that matter and the body bytes, and checks what the application is known to answer,
//! so that both servers being wrong the same way fails too. Where the two servers
//! legitimately differ (their own error pages and static-file details), the difference is
//! asserted explicitly, with which behaviour is right. A table of the results is printed
//! (`cargo test -p fcgi-http --test framework -- --nocapture`).
//!
//! Headers left out of the comparison, and why:
//!
//! - `Date`: the clock, which may tick between the two requests;
//! - `Server`: nginx names itself (`nginx/1.22.1`), the gateway sends none;
//! - `Connection`, `Keep-Alive`, `Transfer-Encoding`: hop-by-hop connection management
//!   and framing, not content (a server may send chunked where the other sends a length);
//! - `X-Powered-By`: PHP's own header, the same php-fpm behind both, and not the
//!   servers' behaviour;
//! - `Content-Length` is compared only when both send one (otherwise the body is framed
//!   by chunks, and its length is checked through the body bytes).
//!
//! Every other header is compared, every value in order (`Set-Cookie` above all).
//! With `FCGI_FRAMEWORK_DUMP` set, every response's headers are printed too.
//!
//! A `Location` that is absolute on the server's own origin (`http://127.0.0.1:PORT/x`,
//! nginx's `absolute_redirect`) is compared as its path: the two servers listen on
//! different ports.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use fcgi_http::{Gateway, ScriptConfig};
use fcgi_testkit::{hex_sha256, random_bytes, slim, Nginx, PhpFpm};
use fcgi_tokio::{Address, Client, Options};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

mod support;
use support::serve;

/// The `Content-Type` of the application's text answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// The `Content-Type` of Slim's `withJson`.
const JSON: &str = "application/json";

/// Headers not compared (see the module documentation for why).
const IGNORED: &[&str] = &[
    "date",
    "server",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "x-powered-by",
    "content-length",
];

/// One request of the comparison.
struct Case {
    method: Method,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Sent chunked (no Content-Length), in pieces of 16 KiB.
    chunked: bool,
}

impl Case {
    fn get(target: &str) -> Self {
        Self::new(Method::GET, target)
    }

    fn new(method: Method, target: &str) -> Self {
        Self {
            method,
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
        }
    }

    fn with_body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut case = self.header("content-type", content_type);
        case.body = body.into();
        case
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    fn label(&self) -> String {
        let mut target = self.target.clone();
        if target.len() > 34 {
            target.truncate(31);
            target.push_str("...");
        }
        let chunked = if self.chunked { " (chunked)" } else { "" };
        format!("{} {target}{chunked}", self.method)
    }
}

/// A response read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The compared headers: lower-case name and values in order, sorted by name, with
    /// `Location` relative to `origin`.
    fn compared_headers(&self, origin: &str) -> Vec<(String, Vec<String>)> {
        let mut names: Vec<&str> = self
            .headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| !IGNORED.contains(name))
            .collect();
        names.sort_unstable();
        names
            .into_iter()
            .map(|name| {
                let values = self
                    .all(name)
                    .into_iter()
                    .map(|v| match name {
                        "location" => v.strip_prefix(origin).unwrap_or(v).to_owned(),
                        _ => v.to_owned(),
                    })
                    .collect();
                (name.to_owned(), values)
            })
            .collect()
    }
}

type TestBody = BoxBody<Bytes, std::io::Error>;
type HttpClient = hyper_util::client::legacy::Client<HttpConnector, TestBody>;

async fn send(client: &HttpClient, addr: SocketAddr, case: &Case) -> Reply {
    let mut request = Request::builder()
        .method(case.method.clone())
        .uri(format!("http://{addr}{}", case.target));
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    let data = Bytes::from(case.body.clone());
    let body = if case.chunked {
        // A stream of unknown length: hyper sends it with Transfer-Encoding: chunked.
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..data.len())
            .step_by(16 * 1024)
            .map(|at| {
                Ok(Frame::data(
                    data.slice(at..(at + 16 * 1024).min(data.len())),
                ))
            })
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    } else {
        Full::new(data).map_err(|never| match never {}).boxed()
    };
    let request = request.body(body).unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Checks an answer; says what is wrong.
type CheckOne = Box<dyn Fn(&Reply) -> Result<(), String>>;

/// Checks nginx's answer and the gateway's together; says what is wrong.
type CheckBoth = Box<dyn Fn(&Reply, &Reply) -> Result<(), String>>;

/// How a request's two answers must relate.
enum Expect {
    /// The same status, compared headers and body; and this status, `Content-Type` and
    /// body.
    Same(StatusCode, &'static str, Vec<u8>),
    /// The same, and the body as the function checks it.
    SameChecked(StatusCode, CheckOne),
    /// A known, legitimate difference: checked by the function, given nginx's answer
    /// and the gateway's.
    Differs(&'static str, CheckBoth),
}

/// A row of the printed table.
struct Row {
    label: String,
    nginx: String,
    gateway: String,
    verdict: String,
}

fn summary(reply: &Reply) -> String {
    let content_type = reply
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or(t))
        .unwrap_or("-");
    format!(
        "{} {} {}B",
        reply.status.as_u16(),
        content_type,
        reply.body.len()
    )
}

/// The differences between the compared parts of two answers, empty when none.
fn differences(
    nginx: &Reply,
    nginx_origin: &str,
    gateway: &Reply,
    gateway_origin: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if nginx.status != gateway.status {
        out.push(format!(
            "status: nginx {} gateway {}",
            nginx.status, gateway.status
        ));
    }
    let (n, g) = (
        nginx.compared_headers(nginx_origin),
        gateway.compared_headers(gateway_origin),
    );
    if n != g {
        out.push(format!("headers: nginx {n:?}\n   gateway {g:?}"));
    }
    if let (Some(n), Some(g)) = (
        nginx.header("content-length"),
        gateway.header("content-length"),
    ) {
        if n != g {
            out.push(format!("content-length: nginx {n} gateway {g}"));
        }
    }
    if nginx.body != gateway.body {
        out.push(format!(
            "body: nginx {:?}\n   gateway {:?}",
            nginx.text(),
            gateway.text()
        ));
    }
    out
}

/// A multipart/form-data body: a text field `title` and the file `file`.
fn multipart(boundary: &str, title: &str, file_name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// What `CONTENT_TYPE` and `CONTENT_LENGTH` are in a request's params.
#[derive(Clone, Copy)]
enum Content<'a> {
    /// Not sent (PHP reports `null`).
    Unset,
    /// Sent with empty values.
    Empty,
    /// A body of this type and length.
    Body(&'a str, usize),
}

/// The params `src/server_fields.php` reports, as JSON, for a script that the request
/// ran under this root.
fn server_fields(
    root: &Path,
    method: &str,
    uri: &str,
    script: &str,
    content: Content<'_>,
) -> String {
    let root = root.to_str().unwrap();
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let (content_type, content_length) = match content {
        Content::Unset => ("null".to_owned(), "null".to_owned()),
        Content::Empty => ("\"\"".to_owned(), "\"\"".to_owned()),
        Content::Body(t, n) => (format!("\"{t}\""), format!("\"{n}\"")),
    };
    format!(
        "{{\"REQUEST_METHOD\":\"{method}\",\"REQUEST_URI\":\"{uri}\",\"QUERY_STRING\":\"{query}\",\
         \"SCRIPT_NAME\":\"{script}\",\"SCRIPT_FILENAME\":\"{root}{script}\",\"DOCUMENT_ROOT\":\"{root}\",\
         \"DOCUMENT_URI\":\"{script}\",\"PHP_SELF\":\"{script}\",\"PATH_INFO\":null,\
         \"CONTENT_TYPE\":{content_type},\"CONTENT_LENGTH\":{content_length},\
         \"SERVER_PROTOCOL\":\"HTTP/1.1\",\"GATEWAY_INTERFACE\":\"CGI/1.1\",\"REQUEST_SCHEME\":\"http\",\
         \"HTTPS\":null,\"REDIRECT_STATUS\":\"200\",\"REMOTE_ADDR\":\"127.0.0.1\"}}"
    )
}

/// The expectation for a GET of `uri` that reports its params (run by `script`), the
/// body followed by `tail`: nginx's with empty CONTENT_TYPE and CONTENT_LENGTH, the
/// gateway's without them.
fn params_differ(what: &'static str, root: &Path, uri: &str, script: &str, tail: &str) -> Expect {
    let nginx = format!(
        "{}{tail}",
        server_fields(root, "GET", uri, script, Content::Empty)
    );
    let gateway = format!(
        "{}{tail}",
        server_fields(root, "GET", uri, script, Content::Unset)
    );
    Expect::Differs(
        what,
        Box::new(move |n, g| {
            for (r, want) in [(n, &nginx), (g, &gateway)] {
                check(r.status == StatusCode::OK, || {
                    format!("status {}", r.status)
                })?;
                header_is(r, "content-type", JSON)?;
                check(r.body == want.as_bytes(), || {
                    format!("body {:?}, expected {want:?}", r.text())
                })?;
            }
            Ok(())
        }),
    )
}

fn header_is(r: &Reply, name: &str, want: &str) -> Result<(), String> {
    check(r.header(name) == Some(want), || {
        format!("{name}: {:?}, expected {want:?}", r.header(name))
    })
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

#[tokio::test]
async fn slim_app_through_the_gateway_beside_nginx() {
    slim::require_slim();
    let fpm = PhpFpm::shared();
    let public = std::fs::canonicalize(slim::public_dir()).unwrap();
    let nginx = Nginx::start(&slim::nginx_server(&public, fpm.unix_socket()));
    let fcgi = Client::with_upstreams(
        [Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let gateway = Gateway::new(
        fcgi,
        ScriptConfig::new(public.to_str().unwrap()).front_controller(Some("/index.php")),
    )
    .unwrap();
    let server = serve(gateway).await;
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let (nginx_origin, gateway_origin) = (
        format!("http://{}", nginx.addr()),
        format!("http://{}", server.addr),
    );

    let upload = random_bytes(300_000, 14);
    let upload_sha = hex_sha256(&upload);
    let boundary = "fcgi-test-boundary-7MA4YWxkTrZu0gW";
    let css = std::fs::read(public.join("css/site.css")).unwrap();
    let css_head = css[..10].to_vec();
    let css_len = css.len();
    // nginx's entity tag: the modification time and the length, in hex.
    let css_etag = {
        let meta = std::fs::metadata(public.join("css/site.css")).unwrap();
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        format!("\"{mtime:x}-{:x}\"", meta.len())
    };
    let home = "<!doctype html>\n<title>Slim behind FastCGI</title>\n\
                <link rel=\"stylesheet\" href=\"/css/site.css\">\n\
                <h1>Home</h1>\n<p><a href=\"/hello/World\">Say hello</a></p>\n";
    let form = "name=J%C3%BCrgen&note=a+b%26c&tags%5B%5D=x&tags%5B%5D=y";
    let new_item = r#"{"name":"kettle lid","price":4.25}"#;

    let cases: Vec<(Case, Expect)> = vec![
        (
            Case::get("/"),
            Expect::SameChecked(StatusCode::OK, {
                let home = home.to_owned();
                Box::new(move |r| {
                    header_is(r, "content-type", "text/html; charset=UTF-8")?;
                    check(r.body == home.as_bytes(), || format!("body {:?}", r.text()))
                })
            }),
        ),
        (
            Case::get("/hello/World"),
            Expect::Same(StatusCode::OK, TEXT, b"Hello, World!".to_vec()),
        ),
        (
            Case::get("/hello/J%C3%BCrgen"),
            Expect::Same(StatusCode::OK, TEXT, "Hello, Jürgen!".into()),
        ),
        // The front controller by name: Slim takes `/index.php` as its base path.
        (
            Case::get("/index.php"),
            Expect::Same(StatusCode::OK, "text/html; charset=UTF-8", home.into()),
        ),
        // The script in the path: nginx's `location /` sends it to /index.php (no file
        // is named `/index.php/hello/World`), the gateway runs /index.php with
        // PATH_INFO=/hello/World. Slim strips SCRIPT_NAME off REQUEST_URI either way.
        (
            Case::get("/index.php/hello/World"),
            Expect::Same(StatusCode::OK, TEXT, b"Hello, World!".to_vec()),
        ),
        (
            Case::get("/search?q=fast+cgi&page=2"),
            Expect::Same(
                StatusCode::OK,
                JSON,
                br#"{"query":{"q":"fast cgi","page":"2"},"path":"/search","basePath":""}"#.to_vec(),
            ),
        ),
        // The params of a request without a body: nginx sends CONTENT_TYPE and
        // CONTENT_LENGTH empty (its fastcgi_params sets them from $content_type and
        // $content_length, empty without a body); the gateway leaves them out. RFC 3875
        // (4.1.2, 4.1.3) allows both, "NULL (or unset)", and says the server sets
        // CONTENT_LENGTH "if and only if" there is a body: the gateway follows the
        // letter. PHP code that reads `$_SERVER['CONTENT_TYPE']` without `??` gets an
        // "Undefined array key" warning behind the gateway and not behind nginx (Slim
        // does not). Everything else is the same.
        (
            Case::get("/server?x=1&y=%C3%A9"),
            params_differ(
                "CONTENT_TYPE/LENGTH: nginx empty, gateway unset",
                &public,
                "/server?x=1&y=%C3%A9",
                "/index.php",
                "",
            ),
        ),
        (
            Case::get("/info.php?x=1"),
            params_differ(
                "CONTENT_TYPE/LENGTH: nginx empty, gateway unset",
                &public,
                "/info.php?x=1",
                "/info.php",
                "\n",
            ),
        ),
        // With a body, both send the same.
        (
            Case::new(Method::POST, "/server?x=1").with_body("application/x-www-form-urlencoded", "a=1"),
            Expect::Same(
                StatusCode::OK,
                JSON,
                server_fields(
                    &public,
                    "POST",
                    "/server?x=1",
                    "/index.php",
                    Content::Body("application/x-www-form-urlencoded", 3),
                )
                .into(),
            ),
        ),
        (
            Case::new(Method::POST, "/form").with_body("application/x-www-form-urlencoded", form),
            Expect::Same(StatusCode::OK, TEXT, "name=Jürgen\nnote=a b&c\ntags=x,y\n".into()),
        ),
        (
            Case::get("/api/items"),
            Expect::Same(
                StatusCode::OK,
                JSON,
                br#"{"items":[{"id":1,"name":"kettle","price":24.5},{"id":2,"name":"teapot","price":18}]}"#
                    .to_vec(),
            ),
        ),
        (
            Case::get("/api/items/2"),
            Expect::Same(StatusCode::OK, JSON, br#"{"id":2,"name":"teapot","price":18}"#.to_vec()),
        ),
        (
            Case::get("/api/items/9"),
            Expect::Same(StatusCode::NOT_FOUND, JSON, br#"{"error":"no such item"}"#.to_vec()),
        ),
        (
            Case::new(Method::POST, "/api/items").with_body("application/json", new_item),
            Expect::SameChecked(
                StatusCode::CREATED,
                Box::new(|r| {
                    header_is(r, "location", "/api/items/3")?;
                    header_is(r, "content-type", "application/json")?;
                    let want = r#"{"id":3,"name":"kettle lid","price":4.25}"#;
                    check(r.body == want, || format!("body {:?}", r.text()))
                }),
            ),
        ),
        (
            Case::new(Method::POST, "/api/items").with_body("application/json", "{not json"),
            Expect::Same(
                StatusCode::BAD_REQUEST,
                JSON,
                br#"{"error":"expected {\"name\": string, \"price\": number}"}"#.to_vec(),
            ),
        ),
        (
            Case::new(Method::POST, "/upload").with_body(
                &format!("multipart/form-data; boundary={boundary}"),
                multipart(boundary, "holiday", "photo.bin", &upload),
            ),
            Expect::Same(
                StatusCode::OK,
                JSON,
                format!(
                    "{{\"name\":\"photo.bin\",\"type\":\"application/octet-stream\",\"size\":{},\
                     \"sha256\":\"{upload_sha}\",\"fields\":{{\"title\":\"holiday\"}}}}",
                    upload.len()
                )
                .into(),
            ),
        ),
        // The same upload without a length: nginx reads the whole chunked body before it
        // talks to php-fpm, the gateway spools it, and both send its CONTENT_LENGTH.
        (
            Case::new(Method::POST, "/upload")
                .with_body(
                    &format!("multipart/form-data; boundary={boundary}"),
                    multipart(boundary, "chunked", "photo.bin", &upload),
                )
                .chunked(),
            Expect::Same(
                StatusCode::OK,
                JSON,
                format!(
                    "{{\"name\":\"photo.bin\",\"type\":\"application/octet-stream\",\"size\":{},\
                     \"sha256\":\"{upload_sha}\",\"fields\":{{\"title\":\"chunked\"}}}}",
                    upload.len()
                )
                .into(),
            ),
        ),
        // Authorization (APIs need HTTP_AUTHORIZATION) and cookies reach the application.
        (
            Case::get("/api/me")
                .header("authorization", "Bearer t0ken")
                .header("cookie", "session=abc123; theme=dark"),
            Expect::Same(
                StatusCode::OK,
                JSON,
                br#"{"authorization":"Bearer t0ken","cookies":{"session":"abc123","theme":"dark"}}"#
                    .to_vec(),
            ),
        ),
        (
            Case::get("/no/such/page"),
            Expect::Same(StatusCode::NOT_FOUND, TEXT, b"No route for GET /no/such/page\n".to_vec()),
        ),
        // A missing static file goes to the application too (try_files), which answers
        // its own 404.
        (
            Case::get("/css/missing.css"),
            Expect::Same(StatusCode::NOT_FOUND, TEXT, b"No route for GET /css/missing.css\n".to_vec()),
        ),
        (
            Case::new(Method::DELETE, "/hello/World"),
            Expect::SameChecked(
                StatusCode::METHOD_NOT_ALLOWED,
                Box::new(|r| {
                    header_is(r, "allow", "GET")?;
                    check(r.body == "Use GET\n", || format!("body {:?}", r.text()))
                }),
            ),
        ),
        (
            Case::get("/old-hello"),
            Expect::SameChecked(
                StatusCode::MOVED_PERMANENTLY,
                Box::new(|r| {
                    header_is(r, "location", "/hello/Redirected")?;
                    check(r.body.is_empty(), || format!("body {:?}", r.text()))
                }),
            ),
        ),
        (
            Case::get("/cookies"),
            Expect::SameChecked(
                StatusCode::OK,
                Box::new(|r| {
                    let want = [
                        "theme=dark; path=/; SameSite=Lax",
                        "session=abc123; Path=/; HttpOnly",
                    ];
                    check(r.all("set-cookie") == want, || {
                        format!("set-cookie {:?}", r.all("set-cookie"))
                    })?;
                    check(r.body == "two cookies\n", || format!("body {:?}", r.text()))
                }),
            ),
        ),
        (
            Case::new(Method::HEAD, "/hello/World"),
            Expect::SameChecked(
                StatusCode::OK,
                Box::new(|r| check(r.body.is_empty(), || format!("body {:?}", r.text()))),
            ),
        ),
        // The static file. nginx types it from Debian's mime.types, `text/css`, and adds
        // a charset only under a `charset` directive; the gateway's own table says
        // `text/css; charset=utf-8`. Both work for this ASCII file: without a charset a
        // browser takes the file's @charset, then the referring page's encoding, then
        // UTF-8 (CSS Syntax 3, 3.2). nginx's answer claims nothing it does not know; the
        // gateway's charset is a guess, right for UTF-8 files (most today), wrong for a
        // Latin-1 stylesheet without @charset.
        (
            Case::get("/css/site.css"),
            Expect::Differs(
                "Content-Type: nginx text/css, gateway adds charset=utf-8",
                Box::new(move |n, g| {
                    header_is(n, "content-type", "text/css")?;
                    header_is(g, "content-type", "text/css; charset=utf-8")?;
                    for r in [n, g] {
                        check(r.status == StatusCode::OK, || format!("status {}", r.status))?;
                        check(r.body == css, || format!("body {:?}", r.text()))?;
                        check(r.header("content-length") == Some(&css.len().to_string()), || {
                            format!("content-length {:?}", r.header("content-length"))
                        })?;
                    }
                    check(
                        n.header("last-modified").is_some()
                            && n.header("last-modified") == g.header("last-modified"),
                        || {
                            format!(
                                "last-modified: nginx {:?} gateway {:?}",
                                n.header("last-modified"),
                                g.header("last-modified")
                            )
                        },
                    )
                }),
            ),
        ),
        // A range of the static file, and a revalidation with its entity tag: both
        // servers answer alike (206 with the same Content-Range and bytes; 304 with the
        // same ETag, nginx's form), but for the charset above.
        (
            Case::get("/css/site.css").header("range", "bytes=0-9"),
            Expect::Differs(
                "Content-Type charset, as for the whole file",
                Box::new(move |n, g| {
                    for r in [n, g] {
                        check(r.status == StatusCode::PARTIAL_CONTENT, || {
                            format!("status {}", r.status)
                        })?;
                        check(r.body == css_head, || format!("body {:?}", r.text()))?;
                        check(
                            r.header("content-range") == Some(&format!("bytes 0-9/{css_len}")),
                            || format!("content-range {:?}", r.header("content-range")),
                        )?;
                    }
                    Ok(())
                }),
            ),
        ),
        (
            Case::get("/css/site.css").header("if-none-match", &css_etag),
            Expect::SameChecked(
                StatusCode::NOT_MODIFIED,
                Box::new(|r| check(r.body.is_empty(), || format!("body {:?}", r.text()))),
            ),
        ),
        // A missing *.php: both answer 404 without running PHP (nginx: `try_files $uri
        // =404` in the PHP location; the gateway checks the script file), each with its
        // own error page. Neither runs the front controller: right, as deployed.
        (
            Case::get("/missing.php"),
            Expect::Differs(
                "each server's own 404 page",
                Box::new(|n, g| {
                    for r in [n, g] {
                        check(r.status == StatusCode::NOT_FOUND, || format!("status {}", r.status))?;
                    }
                    check(n.text().contains("<h1>404 Not Found</h1>"), || {
                        format!("nginx body {:?}", n.text())
                    })?;
                    check(g.body == "Not Found\n", || format!("gateway body {:?}", g.text()))
                }),
            ),
        ),
        // A directory without its slash: both redirect (301) to the path with one, each
        // with its own page; nginx makes the Location absolute (`absolute_redirect on`,
        // its default), the gateway sends the path. Both are right (RFC 9110 10.2.2
        // allows a relative reference).
        (
            Case::get("/css"),
            Expect::Differs(
                "301 bodies: each server's own page; nginx's Location absolute",
                {
                    let nginx_location = format!("{nginx_origin}/css/");
                    Box::new(move |n, g| {
                        for r in [n, g] {
                            check(r.status == StatusCode::MOVED_PERMANENTLY, || {
                                format!("status {}", r.status)
                            })?;
                        }
                        check(n.header("location") == Some(nginx_location.as_str()), || {
                            format!("nginx location {:?}", n.header("location"))
                        })?;
                        header_is(g, "location", "/css/")?;
                        check(n.text().contains("<h1>301 Moved Permanently</h1>"), || {
                            format!("nginx body {:?}", n.text())
                        })?;
                        check(g.body == "Moved Permanently\n", || format!("gateway body {:?}", g.text()))
                    })
                },
            ),
        ),
        // A directory with its slash and no index.php: 403 from both (no listings),
        // each with its own page. nginx's `try_files $uri` matches the directory itself
        // before `/index.php` is tried, and the gateway serves an existing directory as
        // a directory: the front controller is not asked, on either.
        (
            Case::get("/css/"),
            Expect::Differs(
                "each server's own 403 page",
                Box::new(|n, g| {
                    for r in [n, g] {
                        check(r.status == StatusCode::FORBIDDEN, || format!("status {}", r.status))?;
                    }
                    check(n.text().contains("<h1>403 Forbidden</h1>"), || {
                        format!("nginx body {:?}", n.text())
                    })?;
                    check(g.body == "Forbidden\n", || format!("gateway body {:?}", g.text()))
                }),
            ),
        ),
    ];

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (case, expect) in &cases {
        let n = send(&client, nginx.addr(), case).await;
        let g = send(&client, server.addr, case).await;
        let diffs = differences(&n, &nginx_origin, &g, &gateway_origin);
        if std::env::var_os("FCGI_FRAMEWORK_DUMP").is_some() {
            println!(
                "{}\n  nginx   {:?}\n  gateway {:?}",
                case.label(),
                n.headers,
                g.headers
            );
        }
        let mut problems: Vec<String> = Vec::new();
        let verdict = match expect {
            Expect::Same(status, content_type, body) => {
                problems.extend(diffs.iter().cloned());
                for (who, r) in [("nginx", &n), ("gateway", &g)] {
                    if r.status != *status {
                        problems.push(format!("{who}: status {}, expected {status}", r.status));
                    }
                    if let Err(e) = header_is(r, "content-type", content_type) {
                        problems.push(format!("{who}: {e}"));
                    }
                    if r.body != body.as_slice() {
                        problems.push(format!(
                            "{who}: body {:?}, expected {:?}",
                            r.text(),
                            String::from_utf8_lossy(body)
                        ));
                    }
                }
                "same".to_owned()
            }
            Expect::SameChecked(status, checker) => {
                problems.extend(diffs.iter().cloned());
                for (who, r) in [("nginx", &n), ("gateway", &g)] {
                    if r.status != *status {
                        problems.push(format!("{who}: status {}, expected {status}", r.status));
                    }
                    if let Err(e) = checker(r) {
                        problems.push(format!("{who}: {e}"));
                    }
                }
                "same".to_owned()
            }
            Expect::Differs(what, checker) => {
                if diffs.is_empty() {
                    problems.push("expected a difference, found none".to_owned());
                }
                if let Err(e) = checker(&n, &g) {
                    problems.push(e);
                }
                format!("differs (expected): {what}")
            }
        };
        let verdict = if problems.is_empty() {
            verdict
        } else {
            failures.push(format!("{}:\n  {}", case.label(), problems.join("\n  ")));
            "FAILED".to_owned()
        };
        rows.push(Row {
            label: case.label(),
            nginx: summary(&n),
            gateway: summary(&g),
            verdict,
        });
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "\nSlim 3 app: nginx (try_files ... /index.php$is_args$args) beside the gateway (front controller /index.php)\n"
    );
    let _ = writeln!(
        table,
        "| request | nginx | gateway | result |\n|---|---|---|---|"
    );
    for row in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} |",
            row.label, row.nginx, row.gateway, row.verdict
        );
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed:\n{}\n--- nginx error log ---\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        nginx.error_log()
    );
}
