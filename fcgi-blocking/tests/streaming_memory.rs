//! A 256 MiB response streams through fcgi-blocking in bounded memory. Alone in its test
//! binary, so that no other test's allocations blur the measure.

use std::io::Read;

use fcgi_blocking::{Address, Client, Request};
use fcgi_testkit::PhpFpm;

/// The process's resident set size in KiB, from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_256_mib_response_streams_in_bounded_memory() {
    let fpm = PhpFpm::shared();
    for address in [
        Address::Unix(fpm.unix_socket().to_path_buf()),
        Address::from(fpm.tcp_addr()),
    ] {
        stream_256_mib(fpm, address);
    }
}

fn stream_256_mib(fpm: &PhpFpm, address: Address) {
    const LEN: u64 = 256 * 1024 * 1024;
    const BOUND_KIB: u64 = 16 * 1024;
    let mut client = Client::with_options(address.clone(), fcgi_blocking::Options::default());
    let script = fpm.script("large.php");
    let warm = client
        .request(Request::get(script.to_str().unwrap(), "/large.php?bytes=1000000").unwrap())
        .unwrap();
    assert_eq!(warm.body.len(), 1_000_000);
    let baseline = rss_kib();

    let request =
        Request::get(script.to_str().unwrap(), &format!("/large.php?bytes={LEN}")).unwrap();
    let mut reader = client.request_streaming(request).unwrap();
    assert_eq!(reader.status(), 200);
    let mut buf = vec![0u8; 256 * 1024];
    let mut expected = vec![0u8; buf.len()];
    let mut offset = 0u64;
    let mut peak = baseline;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        fcgi_testkit::fill_large_body(offset, &mut expected[..n]);
        assert!(buf[..n] == expected[..n], "body differs near byte {offset}");
        offset += n as u64;
        if offset % (8 * 1024 * 1024) < n as u64 {
            peak = peak.max(rss_kib());
        }
    }
    peak = peak.max(rss_kib());
    assert_eq!(offset, LEN);
    assert!(reader.end().is_some());
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < BOUND_KIB,
        "{address}: resident memory grew by {growth} KiB while streaming 256 MiB (bound {BOUND_KIB} KiB)"
    );
}
