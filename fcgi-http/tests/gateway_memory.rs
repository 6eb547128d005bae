//! A 256 MiB response streams through the HTTP gateway (php-fpm -> gateway -> HTTP
//! client, all but php-fpm in this process) in bounded memory. Alone in its test
//! binary, so that no other test's allocations blur the measure.
//!
//! With the default response buffering, php-fpm outruns this client (which checks
//! every byte) and most of the response passes through the temporary file, whose pages
//! are the kernel's, not the process's.

use fcgi_http::{Gateway, ScriptConfig};
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Options};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioExecutor;

mod support;

/// The process's resident set size in KiB, from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_256_mib_response_streams_through_the_gateway_in_bounded_memory() {
    const LEN: u64 = 256 * 1024 * 1024;
    const BOUND_KIB: u64 = 16 * 1024;
    let fpm = PhpFpm::shared();
    let client = Client::with_upstreams(
        [Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let gateway = Gateway::new(client, ScriptConfig::new(fpm.docroot().to_str().unwrap())).unwrap();
    let addr = support::serve(gateway).await.addr;
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let get = |len: u64| {
        http.request(
            http::Request::get(format!("http://{addr}/large.php?bytes={len}"))
                .body(Empty::new())
                .unwrap(),
        )
    };
    let warm = get(1_000_000).await.unwrap();
    let warm = warm.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(warm.len(), 1_000_000);
    drop(warm);
    let baseline = rss_kib();

    let response = get(LEN).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-body-length"],
        LEN.to_string().as_str()
    );
    let mut body = response.into_body();
    let mut expected = Vec::new();
    let mut offset = 0u64;
    let mut peak = baseline;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.unwrap().into_data() else {
            continue;
        };
        expected.resize(chunk.len(), 0);
        fcgi_testkit::fill_large_body(offset, &mut expected);
        assert!(chunk[..] == expected[..], "body differs near byte {offset}");
        offset += chunk.len() as u64;
        if offset % (8 * 1024 * 1024) < chunk.len() as u64 {
            peak = peak.max(rss_kib());
        }
    }
    peak = peak.max(rss_kib());
    assert_eq!(offset, LEN);
    let growth = peak.saturating_sub(baseline);
    eprintln!("resident memory grew by {growth} KiB while streaming 256 MiB through the gateway");
    assert!(
        growth < BOUND_KIB,
        "resident memory grew by {growth} KiB while streaming 256 MiB (bound {BOUND_KIB} KiB)"
    );
}
