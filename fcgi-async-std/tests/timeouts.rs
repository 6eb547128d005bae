//! Each timeout fires within its bound, names its phase and the address, and the pool
//! recovers: connect (waiting for a pool slot included), write, read and total, on
//! async-std and on smol.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{addresses, client, get, unix_client, Rt};
use fcgi_async_std::{Address, Error, Options, Phase, Request};
use fcgi_proto::ParamsBuilder;
use fcgi_testkit::PhpFpm;

on_both_runtimes!(
    connect_timeout_covers_waiting_for_a_pool_slot,
    connect_timeout_on_an_unanswered_connect,
    write_timeout_when_the_server_stops_reading,
    read_timeout_fires_in_time_and_the_pool_recovers,
    total_timeout_bounds_the_request,
);

/// This binary's php-fpm: its tests keep workers asleep past their timeouts, on two
/// runtimes at once, and the pool's recovery must not wait for a free worker.
fn fpm() -> &'static PhpFpm {
    static FPM: OnceLock<PhpFpm> = OnceLock::new();
    FPM.get_or_init(|| PhpFpm::builder().max_children(12).start())
}

fn within(elapsed: Duration, low: Duration, high: Duration) {
    assert!(
        elapsed >= low && elapsed < high,
        "{elapsed:?} not in {low:?}..{high:?}"
    );
}

fn phase(err: &Error) -> Option<Phase> {
    match err {
        Error::Timeout { phase, .. } => Some(*phase),
        _ => None,
    }
}

async fn connect_timeout_covers_waiting_for_a_pool_slot(rt: Rt) {
    let fpm = fpm();
    let mut options = Options::default();
    options.max_connections = 1;
    options.connect_timeout = Some(Duration::from_millis(300));
    let client = unix_client(fpm, options);
    let sleeper = {
        let client = client.clone();
        rt.spawn(async move { client.request(get(fpm, "sleep.php", "ms=1500")).await })
    };
    // Let the sleeper take the only slot.
    while client.open_connections() == 0 {
        common::sleep(Duration::from_millis(5)).await;
    }
    let start = Instant::now();
    let err = client.request(get(fpm, "hello.php", "")).await.unwrap_err();
    within(
        start.elapsed(),
        Duration::from_millis(300),
        Duration::from_millis(1200),
    );
    assert_eq!(phase(&err), Some(Phase::Connect), "{err}");
    assert!(err.to_string().contains("connecting"), "{err}");
    assert_eq!(&sleeper.await.unwrap().body[..], b"slept 1500");
    let response = client.request(get(fpm, "hello.php", "")).await.unwrap();
    assert_eq!(&response.body[..], b"Hello, World!");
    assert_eq!(
        client.connections_opened(),
        1,
        "the slot's connection was reused"
    );
}

async fn connect_timeout_on_an_unanswered_connect(_rt: Rt) {
    // A listener whose backlog is full leaves further connects unanswered (the kernel
    // drops their SYNs): the connect itself times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut options = Options::default();
    options.connect_timeout = Some(Duration::from_millis(300));
    // Fill the backlog with connects nobody accepts.
    let start = Instant::now();
    while held.len() < 512 && start.elapsed() < Duration::from_secs(2) {
        let s = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(50));
        match s {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    let client = client(Address::from(address), options);
    let start = Instant::now();
    let err = client
        .request(Request::new(Default::default()))
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    if phase(&err).is_none() {
        // This kernel accepted the connect after all: nothing to measure here.
        eprintln!("the backlog did not fill ({err}); skipped");
        return;
    }
    within(
        elapsed,
        Duration::from_millis(300),
        Duration::from_millis(1200),
    );
    assert_eq!(phase(&err), Some(Phase::Connect), "{err}");
    assert!(err.to_string().contains(&address.to_string()), "{err}");
    drop(listener);
}

async fn write_timeout_when_the_server_stops_reading(rt: Rt) {
    // A server that accepts and never reads: the request body fills the socket buffers.
    let dir = std::env::temp_dir().join(format!(
        "fcgi-async-std-timeouts-{}-{rt:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deaf.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(5));
        drop(socket);
    });
    let mut options = Options::default();
    options.write_timeout = Some(Duration::from_millis(300));
    let client = client(Address::Unix(path.clone()), options);
    let params = ParamsBuilder::new("PUT", "/upload.php")
        .script(
            "/upload.php",
            &PathBuf::from("/srv/upload.php").to_string_lossy(),
        )
        .build()
        .unwrap();
    let body = vec![b'x'; 16 * 1024 * 1024];
    let start = Instant::now();
    let err = client
        .request(Request::new(params).body(body))
        .await
        .unwrap_err();
    within(
        start.elapsed(),
        Duration::from_millis(300),
        Duration::from_millis(1500),
    );
    assert_eq!(phase(&err), Some(Phase::Write), "{err}");
    assert!(err.to_string().contains("writing the request"), "{err}");
    assert_eq!(
        client.open_connections(),
        0,
        "the stuck connection is closed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn read_timeout_fires_in_time_and_the_pool_recovers(_rt: Rt) {
    let fpm = fpm();
    let mut options = Options::default();
    options.read_timeout = Some(Duration::from_millis(300));
    for address in addresses(fpm) {
        let client = client(address.clone(), options.clone());
        let start = Instant::now();
        let err = client
            .request(get(fpm, "sleep.php", "ms=3000"))
            .await
            .unwrap_err();
        assert_eq!(phase(&err), Some(Phase::Read), "{err}");
        assert!(err.to_string().contains(&address.to_string()), "{err}");
        within(
            start.elapsed(),
            Duration::from_millis(300),
            Duration::from_secs(2),
        );
        assert_eq!(
            client.open_connections(),
            0,
            "the timed-out connection is closed"
        );
        let response = client.request(get(fpm, "hello.php", "")).await.unwrap();
        assert_eq!(response.status, 200);
    }
}

async fn total_timeout_bounds_the_request(_rt: Rt) {
    let fpm = fpm();
    let mut options = Options::default();
    options.total_timeout = Some(Duration::from_millis(400));
    let client = unix_client(fpm, options);
    let start = Instant::now();
    let err = client
        .request(get(fpm, "sleep.php", "ms=3000"))
        .await
        .unwrap_err();
    assert_eq!(phase(&err), Some(Phase::Read), "{err}");
    within(
        start.elapsed(),
        Duration::from_millis(400),
        Duration::from_secs(2),
    );
    let response = client.request(get(fpm, "hello.php", "")).await.unwrap();
    assert_eq!(response.status, 200);
}
