//! Several upstreams, each a php-fpm of its own: requests go to the one with the fewest
//! in flight, and when one dies mid-run no request is lost that had not reached PHP.
//! Each php-fpm has its own `sys_temp_dir`, where the script notes the requests it ran.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcgi_proto::ParamsBuilder;
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Options, Request};

/// Notes `id` in this php-fpm's temporary directory, then sleeps `ms`.
const HIT: &str = r#"<?php
file_put_contents(sys_get_temp_dir() . '/hits', $_GET['id'] . "\n", FILE_APPEND | LOCK_EX);
usleep((int) ($_GET['ms'] ?? 0) * 1000);
echo 'ran ', $_GET['id'];
"#;

struct Pool {
    fpm: PhpFpm,
    hits: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pool {
    fn start() -> Pool {
        let dir = tempfile::tempdir().unwrap();
        let fpm = PhpFpm::builder()
            .max_children(8)
            .php_admin_value("sys_temp_dir", dir.path().to_str().unwrap())
            .start();
        Pool {
            fpm,
            hits: dir.path().join("hits"),
            _dir: dir,
        }
    }

    fn address(&self) -> Address {
        Address::Unix(self.fpm.unix_socket().to_path_buf())
    }

    /// The ids of the requests this php-fpm ran.
    fn hits(&self) -> BTreeSet<u32> {
        std::fs::read_to_string(&self.hits)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }
}

fn script() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hit.php");
    std::fs::write(&path, HIT).unwrap();
    (dir, path)
}

fn request(script: &Path, id: u32, ms: u32) -> Request {
    let uri = format!("/hit.php?id={id}&ms={ms}");
    let params = ParamsBuilder::new("GET", &uri)
        .script("/hit.php", script.to_str().unwrap())
        .build()
        .unwrap();
    Request::new(params)
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Two long requests on one upstream and one on the other: the short requests that
/// follow go to the less loaded one, where round robin would send half of them to the
/// busier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_with_fewest_in_flight_goes_first() {
    let (_dir, script) = script();
    let (a, b) = (Pool::start(), Pool::start());
    let client = Client::with_upstreams([a.address(), b.address()], Options::default()).unwrap();
    // Equal loads take turns: A, B, A.
    let mut long = Vec::new();
    for id in 1..=3 {
        let (client, request) = (client.clone(), request(&script, id, 1500));
        long.push(tokio::spawn(async move { client.request(request).await }));
        let (a, b) = (&a, &b);
        until("the long request runs", || {
            a.hits().len() + b.hits().len() == id as usize
        })
        .await;
    }
    let (busy, idle) = if a.hits().len() == 2 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!((busy.hits().len(), idle.hits().len()), (2, 1));
    for id in 10..14 {
        let response = client.request(request(&script, id, 0)).await.unwrap();
        assert_eq!(response.body, format!("ran {id}"));
    }
    let shorts: BTreeSet<u32> = (10..14).collect();
    assert!(
        idle.hits().is_superset(&shorts),
        "idle ran {:?}",
        idle.hits()
    );
    assert!(
        busy.hits().is_disjoint(&shorts),
        "busy ran {:?}",
        busy.hits()
    );
    for handle in long {
        assert_eq!(handle.await.unwrap().unwrap().status, 200);
    }
}

/// One php-fpm is killed while requests run on both: every request that failed had
/// reached PHP there (none is lost before it), and the rest are answered by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_loses_only_the_requests_it_was_running() {
    let (_dir, script) = script();
    let (mut a, b) = (Pool::start(), Pool::start());
    let client = Client::with_upstreams([a.address(), b.address()], Options::default()).unwrap();
    let total = 300u32;
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0u32;
    let mut results = Vec::new();
    let mut killed = false;
    while next < total || !tasks.is_empty() {
        while next < total && tasks.len() < 8 {
            let request = request(&script, next, 5);
            let client = client.clone();
            let id = next;
            tasks.spawn(async move { (id, client.request(request).await) });
            next += 1;
        }
        if let Some(done) = tasks.join_next().await {
            results.push(done.unwrap());
        }
        if !killed && results.len() >= 100 {
            a.fpm.kill_master();
            killed = true;
        }
    }
    let ran_on_a = a.hits();
    let ran_on_b = b.hits();
    let mut failed = Vec::new();
    for (id, result) in &results {
        match result {
            Ok(response) => {
                assert_eq!(response.status, 200);
                assert_eq!(response.body, format!("ran {id}"));
            }
            Err(e) => {
                assert!(ran_on_a.contains(id), "request {id} failed before PHP: {e}");
                failed.push(*id);
            }
        }
    }
    assert!(failed.len() <= 8, "{} failed: {failed:?}", failed.len());
    assert_eq!(results.len(), total as usize);
    // After the kill, B ran everything that was not already running on A.
    let late: BTreeSet<u32> = (120..total).collect();
    assert!(
        ran_on_b.is_superset(&late),
        "missing on B: {:?}",
        late.difference(&ran_on_b)
    );
}

/// An upstream a health check takes out gets no requests until it is put back.
#[tokio::test]
async fn an_unhealthy_upstream_gets_no_requests() {
    let (_dir, script) = script();
    let (a, b) = (Pool::start(), Pool::start());
    let client = Client::with_upstreams([a.address(), b.address()], Options::default()).unwrap();
    assert_eq!(client.upstreams().count(), 2);
    client.set_upstream_healthy(0, false);
    assert!(!client.upstream_healthy(0) && client.upstream_healthy(1));
    for id in 0..6 {
        client.request(request(&script, id, 0)).await.unwrap();
    }
    assert_eq!(a.hits(), BTreeSet::new());
    assert_eq!(b.hits(), (0..6).collect());
    client.set_upstream_healthy(0, true);
    for id in 6..12 {
        client.request(request(&script, id, 0)).await.unwrap();
    }
    // Back in service, idle like the other: they take turns.
    assert_eq!(a.hits().len(), 3, "{:?}", a.hits());
    assert_eq!(b.hits().len(), 9, "{:?}", b.hits());
}
