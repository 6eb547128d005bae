//! Faults under concurrent load: php-fpm killed and restarted, workers killed
//! mid-response. Each fails only the requests in flight, and the pool recovers. (The
//! single-request fault drills and timeouts are in the conformance suite.)

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fcgi_proto::ParamsBuilder;
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Error, Options, Request};

fn request(script: &Path, method: &str, query: &str) -> Request {
    let name = format!("/{}", script.file_name().unwrap().to_str().unwrap());
    let uri = format!("{name}?{query}");
    let params = ParamsBuilder::new(method, &uri)
        .script(&name, script.to_str().unwrap())
        .build()
        .unwrap();
    Request::new(params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_killed_and_restarted_during_a_run() {
    let mut fpm = PhpFpm::builder().max_children(6).start();
    let echo = fpm.script("echo.php");
    let address = Address::Unix(fpm.unix_socket().to_path_buf());
    let mut options = Options::default();
    options.max_connections = 4;
    options.connect_timeout = Some(Duration::from_secs(2));
    let client = Client::with_upstreams([address.clone()], options).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (client, stop, ok, failed, echo) = (
            client.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            echo.clone(),
        );
        let address = address.to_string();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = format!("task {task} request {i}");
                match client
                    .request(request(&echo, "POST", "").body(body.clone()))
                    .await
                {
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
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0);
    tokio::task::block_in_place(|| {
        fpm.kill_master();
        std::thread::sleep(Duration::from_millis(200));
        fpm.restart();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
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
        let response = client
            .request(request(&echo, "POST", "").body(body.clone()))
            .await
            .unwrap();
        assert_eq!(&response.body[..], body.as_bytes());
    }
}

#[tokio::test]
async fn workers_killed_mid_response_fail_that_request_only() {
    let fpm = PhpFpm::builder().max_children(2).start();
    let client = Client::with_upstreams(
        [Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let mut stream = client
        .request_streaming(request(&fpm.script("large.php"), "GET", "bytes=268435456"))
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some());
    fpm.kill_workers();
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
    let response = client
        .request(request(&fpm.script("hello.php"), "GET", ""))
        .await
        .unwrap();
    assert_eq!(&response.body[..], b"Hello, World!");
}
