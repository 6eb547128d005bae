//! Health checks against a real php-fpm (`ping.path = /ping`) and a server that takes
//! connections but never answers: the silent one is taken out of service, so that no
//! request waits on it, and php-fpm goes out when killed and back when restarted.

use std::time::Duration;

use fcgi_http::HealthCheck;
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Options, Request};

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_upstreams_go_out_of_service_and_come_back() {
    let mut fpm = PhpFpm::builder().start();
    // Connections to it succeed (the kernel queues them), answers never come.
    let dir = tempfile::tempdir().unwrap();
    let silent_path = dir.path().join("silent.sock");
    let _silent = std::os::unix::net::UnixListener::bind(&silent_path).unwrap();
    let mut options = Options::default();
    options.read_timeout = Some(Duration::from_secs(3));
    let client = Client::with_upstreams(
        [
            Address::Unix(fpm.unix_socket().to_path_buf()),
            Address::Unix(silent_path.clone()),
        ],
        options,
    )
    .unwrap();
    let checks = HealthCheck::new("/ping")
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(300))
        .spawn(&client);
    until("the silent server is out", || !client.upstream_healthy(1)).await;
    assert!(client.upstream_healthy(0));

    // Every request goes to php-fpm: one sent to the silent server would time out.
    for _ in 0..6 {
        let response = client
            .request(Request::new(fpm.params("GET", "hello.php", "")))
            .await
            .unwrap();
        assert_eq!(
            (response.status, &response.body[..]),
            (200, &b"Hello, World!"[..])
        );
    }

    fpm.kill_master();
    until("the killed php-fpm is out", || !client.upstream_healthy(0)).await;
    fpm.restart();
    until("the restarted php-fpm is back", || {
        client.upstream_healthy(0)
    })
    .await;
    assert!(!client.upstream_healthy(1));

    drop(checks);
}
