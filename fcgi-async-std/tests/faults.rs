//! Faults: php-fpm killed and restarted under load, workers killed mid-response, every
//! worker recycled after one request under concurrent load, the socket file removed
//! under a kept connection. Each: a clear error for the affected request only, every
//! other response whole and its own, and the pool recovers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get, post, unix_client, Rt};
use fcgi_async_std::{Address, Client, Error, Options};
use fcgi_testkit::PhpFpm;

on_async_std!(
    php_fpm_killed_and_restarted_during_a_run,
    workers_killed_mid_response_fail_that_request_only,
    socket_file_removed_while_a_connection_is_kept,
);

on_both_runtimes!(max_requests_one_under_load);

/// `tasks` tasks sending `each` echo requests through `client`; answers the errors.
/// Every response that arrives must be its own request's.
async fn echo_load(
    rt: Rt,
    fpm: &Arc<PhpFpm>,
    client: &Client,
    tasks: usize,
    each: usize,
) -> Vec<Error> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (client, fpm) = (client.clone(), fpm.clone());
        handles.push(rt.spawn(async move {
            let mut errors = Vec::new();
            for i in 0..each {
                let body = format!("task {task} request {i} {}", "x".repeat(i * 37));
                match client.request(post(&fpm, "echo.php", body.clone())).await {
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
        errors.extend(h.await);
    }
    errors
}

async fn max_requests_one_under_load(rt: Rt) {
    // Every worker serves one request, then exits and closes its kept connection: each
    // pooled connection is dead, or about to be, by the time it is reused. The pool's
    // liveness check and its one retry of a request that got nothing back on a reused
    // connection hide that.
    let fpm = Arc::new(PhpFpm::builder().max_children(8).max_requests(1).start());
    let mut options = Options::default();
    options.max_connections = 4;
    let client = unix_client(&fpm, options);
    let start = Instant::now();
    let errors = echo_load(rt, &fpm, &client, 8, 50).await;
    eprintln!(
        "{rt:?}: 400 echo requests, 8 tasks, pm.max_requests=1: {} errors in {:?}, {} connections opened",
        errors.len(),
        start.elapsed(),
        client.connections_opened()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );
    assert!(client.open_connections() <= 4);
}

async fn php_fpm_killed_and_restarted_during_a_run(rt: Rt) {
    let fpm = Arc::new(std::sync::Mutex::new(
        PhpFpm::builder().max_children(6).start(),
    ));
    let (address, echo) = {
        let fpm = fpm.lock().unwrap();
        (
            Address::Unix(fpm.unix_socket().to_path_buf()),
            fpm.script("echo.php"),
        )
    };
    let mut options = Options::default();
    options.max_connections = 4;
    options.connect_timeout = Some(Duration::from_secs(2));
    let client = Client::with_upstreams([address.clone()], options).unwrap();
    let request = move |body: String| {
        let params = fcgi_proto::ParamsBuilder::new("POST", "/echo.php")
            .script("/echo.php", echo.to_str().unwrap())
            .build()
            .unwrap();
        fcgi_async_std::Request::new(params).body(body)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (client, stop, ok, failed, request) = (
            client.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            request.clone(),
        );
        let address = address.to_string();
        tasks.push(rt.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = format!("task {task} request {i}");
                match client.request(request(body.clone())).await {
                    // Every answer that arrives belongs to its own request.
                    Ok(response) => {
                        assert_eq!(&response.body[..], body.as_bytes());
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                Error::Io { .. } | Error::Protocol { .. } | Error::Connect { .. }
                            ),
                            "unexpected error kind: {e}"
                        );
                        assert!(e.to_string().contains(&address), "{e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        common::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    common::sleep(Duration::from_millis(300)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0);
    let restarted = fpm.clone();
    rt.unblock(move || {
        let mut fpm = restarted.lock().unwrap();
        fpm.kill_master();
        std::thread::sleep(Duration::from_millis(200));
        fpm.restart();
    })
    .await;
    common::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await;
    }
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "the kill failed some requests"
    );
    assert!(
        ok.load(Ordering::Relaxed) > before,
        "requests succeeded after the restart"
    );
    for i in 0..100 {
        let body = format!("after {i}");
        let response = client.request(request(body.clone())).await.unwrap();
        assert_eq!(&response.body[..], body.as_bytes());
    }
}

async fn workers_killed_mid_response_fail_that_request_only(_rt: Rt) {
    let fpm = PhpFpm::builder().max_children(2).start();
    let client = unix_client(&fpm, Options::default());
    let mut stream = client
        .request_streaming(get(&fpm, "large.php", "bytes=268435456"))
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some());
    let killed = fpm.kill_workers();
    let err = loop {
        match stream.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a killed worker cannot finish 256 MiB"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, Error::Protocol { .. } | Error::Io { .. }),
        "{err}"
    );
    drop(stream);
    // The idle worker, killed too, may take a connection made before it is gone and
    // reset it: wait until the master has replaced both.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fpm.worker_pids().iter().any(|pid| killed.contains(pid)) && Instant::now() < deadline {
        common::sleep(Duration::from_millis(10)).await;
    }
    let response = client.request(get(&fpm, "hello.php", "")).await.unwrap();
    assert_eq!(&response.body[..], b"Hello, World!");
}

async fn socket_file_removed_while_a_connection_is_kept(_rt: Rt) {
    let fpm = PhpFpm::builder().max_children(2).start();
    let socket = fpm.unix_socket().to_path_buf();
    let client = unix_client(&fpm, Options::default());
    let echo = |tag: &str| post(&fpm, "echo.php", tag.to_string());
    assert_eq!(
        &client.request(echo("before")).await.unwrap().body[..],
        b"before"
    );
    assert_eq!(client.idle_connections(), 1);
    std::fs::remove_file(&socket).unwrap();
    // The kept connection is already open: it still works.
    assert_eq!(
        &client.request(echo("kept")).await.unwrap().body[..],
        b"kept"
    );
    assert_eq!(client.connections_opened(), 1);
    assert_eq!(client.close_idle(), 1);
    let err = client
        .request(get(&fpm, "hello.php", ""))
        .await
        .unwrap_err();
    match &err {
        Error::Connect { address, source } => {
            assert_eq!(address, &format!("unix:{}", socket.display()));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("want Connect, got {other:?}"),
    }
    assert_eq!(client.open_connections(), 0, "no slot is leaked");
}
