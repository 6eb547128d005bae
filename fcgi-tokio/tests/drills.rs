//! Fault drills that tests/faults.rs does not cover: php-fpm recycling every worker
//! under concurrent load, a script slower than every timeout, a refused connection and
//! the socket file removed under a kept connection. Each: a clear error for the
//! affected request, every other response whole and its own, and the pool recovers.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use fcgi_proto::ParamsBuilder;
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Error, Options, Phase, Request};

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
    Client::with_upstreams([Address::Unix(fpm.unix_socket().to_path_buf())], options).unwrap()
}

/// A few echo requests, each answered with its own body.
async fn echo_round(client: &Client, echo: &Path, tag: &str) {
    for i in 0..5 {
        let body = format!("{tag} {i}");
        let response = client
            .request(request(echo, "POST", "").body(body.clone()))
            .await
            .unwrap_or_else(|e| panic!("{tag} {i}: {e}"));
        assert_eq!(&response.body[..], body.as_bytes(), "{tag} {i}");
    }
}

/// `tasks` tasks sending `each` echo requests through `client`; answers the errors.
/// Every response that arrives must be its own request's.
async fn echo_load(client: &Client, echo: &Path, tasks: usize, each: usize) -> Vec<Error> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (client, echo) = (client.clone(), echo.to_path_buf());
        handles.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..each {
                let body = format!("task {task} request {i} {}", "x".repeat(i * 37));
                match client
                    .request(request(&echo, "POST", "").body(body.clone()))
                    .await
                {
                    Ok(response) => assert_eq!(
                        &response.body[..],
                        body.as_bytes(),
                        "task {task} request {i} got another request's answer"
                    ),
                    Err(e) => errors.push(e),
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for h in handles {
        errors.extend(h.await.unwrap());
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_requests_one_under_load() {
    // Every worker serves one request, then exits and closes its kept connection: each
    // pooled connection is dead, or about to be, by the time it is reused. The pool's
    // liveness check and its one retry of a request that got nothing back on a reused
    // connection hide that.
    let fpm = PhpFpm::builder().max_children(8).max_requests(1).start();
    let echo = fpm.script("echo.php");

    // One task at a time: the retry always finds a fresh connection; zero errors.
    let client = unix_client(&fpm, Options::default());
    let errors = echo_load(&client, &echo, 1, 100).await;
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );

    // 8 tasks x 50 requests on 4 connections.
    let mut options = Options::default();
    options.max_connections = 4;
    let client = unix_client(&fpm, options);
    let start = Instant::now();
    let errors = echo_load(&client, &echo, 8, 50).await;
    println!(
        "400 echo requests, 8 tasks, pm.max_requests=1: {} errors in {:?}, {} connections opened",
        errors.len(),
        start.elapsed(),
        client.connections_opened()
    );
    // A request that fails on a stale kept connection (its worker exited after
    // answering) is retried on a new connection: no request fails.
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );
    assert!(client.open_connections() <= 4);
    let errors = echo_load(&client, &echo, 1, 20).await;
    assert!(errors.is_empty(), "after the load: {}", errors[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_slower_than_every_timeout() {
    let fpm = PhpFpm::shared();
    let address = Address::Unix(fpm.unix_socket().to_path_buf()).to_string();
    let sleep = fpm.script("sleep.php");
    let echo = fpm.script("echo.php");

    // The read timeout: no byte for 300 ms.
    let mut options = Options::default();
    options.read_timeout = Some(Duration::from_millis(300));
    let client = unix_client(fpm, options);
    echo_round(&client, &echo, "before read timeout").await;
    let start = Instant::now();
    let err = client
        .request(request(&sleep, "GET", "ms=2000"))
        .await
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
    assert_eq!(
        client.open_connections(),
        0,
        "the timed-out connection is closed"
    );
    echo_round(&client, &echo, "after read timeout").await;

    // The total timeout, with generous per-read timeouts.
    let mut options = Options::default();
    options.total_timeout = Some(Duration::from_millis(400));
    let client = unix_client(fpm, options);
    let start = Instant::now();
    let err = client
        .request(request(&sleep, "GET", "ms=2000"))
        .await
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
    assert_eq!(
        client.open_connections(),
        0,
        "the timed-out connection is closed"
    );
    echo_round(&client, &echo, "after total timeout").await;
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    // A port that was free a moment ago, with nothing listening now.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let client = Client::new(target.as_str()).unwrap();
    for _ in 0..2 {
        let start = Instant::now();
        let err = client
            .request(request(Path::new("/srv/x.php"), "GET", ""))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        match &err {
            Error::Connect { address, source } => {
                assert_eq!(address, &target);
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("want Connect, got {other:?}"),
        }
        assert!(err.to_string().contains(&target), "{err}");
        assert_eq!(client.open_connections(), 0, "no slot is leaked");
    }
}

#[tokio::test]
async fn socket_file_removed_while_a_connection_is_kept() {
    let fpm = PhpFpm::builder().max_children(2).start();
    let socket = fpm.unix_socket().to_path_buf();
    let echo = fpm.script("echo.php");
    let client = unix_client(&fpm, Options::default());
    echo_round(&client, &echo, "before").await;
    assert_eq!(client.idle_connections(), 1);
    std::fs::remove_file(&socket).unwrap();
    // The kept connection is already open: it still works.
    echo_round(&client, &echo, "kept").await;
    assert_eq!(client.connections_opened(), 1);
    assert_eq!(client.close_idle(), 1);
    let err = client
        .request(request(&fpm.script("hello.php"), "GET", ""))
        .await
        .unwrap_err();
    match &err {
        Error::Connect { address, source } => {
            assert_eq!(address, &format!("unix:{}", socket.display()));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("want Connect, got {other:?}"),
    }
    assert!(err.to_string().contains(socket.to_str().unwrap()), "{err}");
    assert_eq!(client.open_connections(), 0, "no slot is leaked");
}
