//! A 256 MiB response streams through fcgi-async-std in bounded memory, on async-std then
//! on smol. Alone in its
//! test binary, so that no other test's allocations blur the measure.

use fcgi_async_std::{Address, Client, Options, Request};
use fcgi_proto::ParamsBuilder;
use fcgi_testkit::PhpFpm;

/// The process's resident set size in KiB, from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_256_mib_response_streams_in_bounded_memory_on_async_std_then_smol() {
    const LEN: u64 = 256 * 1024 * 1024;
    const BOUND_KIB: u64 = 16 * 1024;
    let fpm = PhpFpm::shared();
    let client = Client::with_upstreams(
        [Address::Unix(fpm.unix_socket().to_path_buf())],
        Options::default(),
    )
    .unwrap();
    let script = fpm.script("large.php");
    let request = |len: u64| {
        let uri = format!("/large.php?bytes={len}");
        let params = ParamsBuilder::new("GET", &uri)
            .script("/large.php", script.to_str().unwrap())
            .build()
            .unwrap();
        Request::new(params)
    };
    let run = || async {
        let warm = client.request(request(1_000_000)).await.unwrap();
        assert_eq!(warm.body.len(), 1_000_000);
        drop(warm);
        let baseline = rss_kib();

        let mut stream = client.request_streaming(request(LEN)).await.unwrap();
        assert_eq!(stream.status(), 200);
        let mut expected = Vec::new();
        let mut offset = 0u64;
        let mut peak = baseline;
        while let Some(chunk) = stream.chunk().await.unwrap() {
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
        assert!(stream.end().is_some());
        let growth = peak.saturating_sub(baseline);
        eprintln!("256 MiB streamed; resident memory grew by {growth} KiB");
        assert!(
            growth < BOUND_KIB,
            "resident memory grew by {growth} KiB while streaming 256 MiB (bound {BOUND_KIB} KiB)"
        );
    };
    async_std::task::block_on(run());
    smol::block_on(run());
}
