//! `fcgi_http::Server` against a real php-fpm: HTTP/1.1 and HTTP/2 in clear text (h2c
//! with prior knowledge), HTTPS with ALPN h2 and http/1.1 on a certificate made here,
//! and a graceful shutdown that lets a request in flight finish. (curl's test is in
//! `curl.rs`: a child process started here would hold a copy of every listening
//! socket until it runs curl, and the shutdown test checks that its port refuses.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fcgi_http::{tls_config, Draining, Gateway, ScriptConfig, Server, ServiceOptions, TlsError};
use fcgi_testkit::{hex_sha256, random_bytes, PhpFpm};
use fcgi_tokio::{Address, Client, Options};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

fn fpm() -> &'static PhpFpm {
    PhpFpm::shared()
}

fn gateway(https: bool) -> Gateway {
    let client = Client::with_upstreams(
        [Address::Unix(fpm().unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let mut options = ServiceOptions::default();
    options.https = https;
    Gateway::with_options(
        client,
        ScriptConfig::new(fpm().docroot().to_str().unwrap()),
        options,
    )
    .unwrap()
}

/// A running server: its address, and the sender that stops it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    draining: tokio::task::JoinHandle<Draining>,
}

async fn start(server: Server, gateway: Gateway) -> Running {
    start_on("127.0.0.1:0", server, gateway).await
}

async fn start_on(address: &str, server: Server, gateway: Gateway) -> Running {
    let listener = TcpListener::bind(address).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let draining = tokio::spawn(async move {
        server
            .serve(listener, gateway, async {
                let _ = stopped.await;
            })
            .await
    });
    Running {
        addr,
        stop,
        draining,
    }
}

/// A response read whole.
struct Got {
    version: Version,
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

/// One request over an HTTP/2 connection on `io`.
async fn h2<IO>(io: IO, request: Request<Full<Bytes>>) -> Got
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    read(response).await
}

/// One request over an HTTP/1.1 connection on `io`.
async fn h1<IO>(io: IO, request: Request<Full<Bytes>>) -> Got
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    read(response).await
}

async fn read(response: http::Response<hyper::body::Incoming>) -> Got {
    let (parts, body) = response.into_parts();
    Got {
        version: parts.version,
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn post(uri: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

const HTTPS_PHP: &str = "<?php echo 'HTTPS=', $_SERVER['HTTPS'] ?? 'unset', ' SCHEME=', $_SERVER['REQUEST_SCHEME'], ' PROTOCOL=', $_SERVER['SERVER_PROTOCOL'];";

#[tokio::test]
async fn http1_and_h2c_on_one_port() {
    fpm().write_script("server_https.php", HTTPS_PHP);
    let running = start(Server::new(), gateway(false)).await;
    let uri = format!("http://{}/hello.php", running.addr);

    let got = h1(TcpStream::connect(running.addr).await.unwrap(), get(&uri)).await;
    assert_eq!(
        (got.version, got.status),
        (Version::HTTP_11, StatusCode::OK)
    );
    assert_eq!(got.body, "Hello, World!");

    let got = h2(TcpStream::connect(running.addr).await.unwrap(), get(&uri)).await;
    assert_eq!((got.version, got.status), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(got.body, "Hello, World!");
    assert_eq!(
        got.headers.get("content-type").unwrap(),
        "text/html; charset=UTF-8"
    );

    let uri = format!("http://{}/server_https.php", running.addr);
    let got = h2(TcpStream::connect(running.addr).await.unwrap(), get(&uri)).await;
    assert_eq!(got.body, "HTTPS=unset SCHEME=http PROTOCOL=HTTP/2.0");

    // A request body streams to PHP under HTTP/2 as under HTTP/1.1.
    let data = random_bytes(3 * 1024 * 1024 + 5, 71);
    let uri = format!("http://{}/echo.php", running.addr);
    let got = h2(
        TcpStream::connect(running.addr).await.unwrap(),
        post(&uri, data.clone()),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.headers.get("x-body-sha256").unwrap(),
        hex_sha256(&data).as_str()
    );
    assert_eq!(hex_sha256(&got.body), hex_sha256(&data));
}

/// A self-signed certificate for `localhost`, written as PEM files under `dir`.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    (cert, key, generated.cert.der().to_vec())
}

async fn tls_connect(
    addr: SocketAddr,
    root: &[u8],
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector
        .connect(name, TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn https_with_alpn_h2_and_http1() {
    fpm().write_script("server_https.php", HTTPS_PHP);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path());
    let config = Arc::new(tls_config(&cert, &key).unwrap());
    let server = Server::new().tls(config);
    assert!(server.is_tls());
    let running = start(server, gateway(true)).await;
    let uri = format!("https://localhost:{}/server_https.php", running.addr.port());

    let stream = tls_connect(running.addr, &der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let got = h2(stream, get(&uri)).await;
    assert_eq!((got.version, got.status), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(got.body, "HTTPS=on SCHEME=https PROTOCOL=HTTP/2.0");

    let stream = tls_connect(running.addr, &der, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let got = h1(stream, get(&uri)).await;
    assert_eq!(
        (got.version, got.status),
        (Version::HTTP_11, StatusCode::OK)
    );
    assert_eq!(got.body, "HTTPS=on SCHEME=https PROTOCOL=HTTP/1.1");

    // A client that never finishes its handshake holds nothing but its socket, and the
    // others are served meanwhile.
    let _silent = TcpStream::connect(running.addr).await.unwrap();
    let stream = tls_connect(running.addr, &der, &[b"h2"]).await;
    let got = h2(stream, get(&uri)).await;
    assert_eq!(got.status, StatusCode::OK);
}

#[test]
fn tls_config_errors_say_which_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(dir.path());
    let missing = dir.path().join("missing.pem");
    let error = tls_config(&missing, &key).unwrap_err();
    assert!(matches!(error, TlsError::Pem { ref path, .. } if *path == missing));
    assert_eq!(
        error.to_string(),
        format!("cannot load PEM from {}", missing.display())
    );
    assert!(std::error::Error::source(&error).is_some());

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(tls_config(&empty, &key), Err(TlsError::NoCertificate(p)) if p == empty));
    // A key file without a key.
    assert!(matches!(
        tls_config(&cert, &cert),
        Err(TlsError::Pem { .. })
    ));
    // A key that is not the certificate's.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key, _) = certificate(&other);
    assert!(matches!(
        tls_config(&cert, &other_key),
        Err(TlsError::Rustls(_))
    ));
}

/// After the stop, the server accepts no more connections; a request in flight is
/// answered whole, and then its connection closes.
#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    fpm().write_script(
        "server_slow.php",
        "<?php echo 'started '; flush(); usleep(300000); echo 'finished';",
    );
    // On an address of its own: once closed, its port may go to another test's listener
    // on 127.0.0.1, which would take the connect below.
    let running = start_on("127.0.0.77:0", Server::new(), gateway(false)).await;
    let uri = format!("http://{}/server_slow.php", running.addr);
    let stream = TcpStream::connect(running.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    // The head has come back: the request is in flight, PHP is sleeping.
    let response = sender.send_request(get(&uri)).await.unwrap();
    running.stop.send(()).unwrap();
    let draining = running.draining.await.unwrap();
    assert_eq!(draining.open(), 1);
    let again = TcpStream::connect(running.addr).await;
    assert!(again.is_err(), "still accepting: {again:?}");
    let finish = tokio::spawn(draining.finish(Duration::from_secs(10)));
    let got = read(response).await;
    assert_eq!(
        (got.status, got.body),
        (StatusCode::OK, Bytes::from("started finished"))
    );
    assert!(finish.await.unwrap(), "connections left open");
    // The server closed the connection after the answer.
    connection.await.unwrap().unwrap();
}
