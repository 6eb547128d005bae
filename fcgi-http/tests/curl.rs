//! curl, a client of another lineage, against `fcgi_http::Server` and a real php-fpm.

use fcgi_http::{Gateway, ScriptConfig, Server};
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Options};
use tokio::net::TcpListener;

/// h2c with prior knowledge, as `curl --http2-prior-knowledge` speaks it.
#[tokio::test]
async fn curl_http2_prior_knowledge() {
    let fpm = PhpFpm::shared();
    let client = Client::with_upstreams(
        [Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let gateway = Gateway::new(client, ScriptConfig::new(fpm.docroot().to_str().unwrap())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/hello.php", listener.local_addr().unwrap());
    tokio::spawn(async move {
        Server::new()
            .serve(listener, gateway, std::future::pending())
            .await
    });
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--http2-prior-knowledge",
                "-o",
                "-",
                "-w",
                "\n%{http_version} %{http_code}",
            ])
            .arg(&uri)
            .output()
            .expect("curl runs (apt-get install curl)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Hello, World!\n2 200"
    );
}
