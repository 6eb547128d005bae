//! Scenarios against libfcgi, the reference C library (see [`crate::libfcgi`] for the
//! responder, its routes and what libfcgi writes on the wire): one request at a time
//! per connection, kept connections, `STDERR` and `STDOUT` each ended by an empty
//! record, and a `GET_VALUES` answered only when more bytes follow it.

use sha2::{Digest, Sha256};

use super::*;
use crate::Libfcgi;

fn libfcgi_address() -> Address {
    Address::Unix(Libfcgi::shared().unix_socket().to_path_buf())
}

/// The header fields of `reply` as `(name, value)` text, in order.
fn fields(reply: &Reply) -> Vec<(String, String)> {
    reply
        .head
        .headers()
        .map(|h| {
            (
                h.name().to_string(),
                String::from_utf8_lossy(h.value()).into_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

scenario!(
    /// `/hello` three times: status 200 with its reason, exactly one header
    /// (`Content-Type: text/plain`; `Status` is consumed), the body, no stderr, a
    /// complete end with app status 0, all on one kept connection.
    libfcgi_hello_with_every_header, &[], Isolation::Shared, |a| {
        let c = client(a, libfcgi_address(), Settings::default());
        for _ in 0..3 {
            let r = ok(&*c, flup_request("GET", "/hello"), "hello").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.head.reason(), Some("OK"));
            assert!(r.head.has_status_header());
            assert_eq!(fields(&r), pairs(&[("Content-Type", "text/plain")]));
            assert_eq!(r.body, b"Hello, World!");
            assert!(r.stderr.is_empty(), "{:?}", r.stderr);
            assert_eq!(r.end.app_status, 0);
            assert!(r.end.protocol_status.is_complete());
        }
        assert_eq!(c.connections_opened(), 1, "libfcgi keeps the connection");
    }
);

scenario!(
    /// Bodies of 0 B, 1 B, 65535 B, 65536 B and 10 MiB (random) come back whole:
    /// `X-Body-Length` and the sha256 of what came back equal what was sent, all on one
    /// kept connection.
    libfcgi_echo_sizes_with_sha256_on_one_kept_connection, &[], Isolation::Shared, |a| {
        let c = client(a, libfcgi_address(), Settings::default());
        for (i, len) in [0usize, 1, 65535, 65536, 10 * 1024 * 1024].into_iter().enumerate() {
            let body = random_bytes(len, i as u64 + 41);
            let r = ok(&*c, flup_request("POST", "/echo").body(body.clone()), "echo").await;
            assert_eq!(r.status, 200, "{len}");
            assert_eq!(
                fields(&r),
                pairs(&[
                    ("Content-Type", "application/octet-stream"),
                    ("X-Body-Length", &len.to_string()),
                ]),
                "{len}"
            );
            assert_eq!(hex_sha256(&r.body), hex_sha256(&body), "{len}");
            assert!(r.stderr.is_empty());
        }
        assert_eq!(c.connections_opened(), 1, "every size on one kept connection");
    }
);

scenario!(
    /// Three `Set-Cookie` headers in order, with `Status: 404 Not Found`.
    libfcgi_three_set_cookie_in_order_with_404, &[], Isolation::Shared, |a| {
        let c = client(a, libfcgi_address(), Settings::default());
        let r = ok(&*c, flup_request("GET", "/cookies"), "cookies").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.head.reason(), Some("Not Found"));
        let cookies: Vec<&[u8]> = r.head.get_all("set-cookie").collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2", b"c=3"]);
        assert_eq!(
            fields(&r),
            pairs(&[
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Set-Cookie", "c=3"),
                ("Content-Type", "text/plain"),
            ])
        );
        assert_eq!(r.body, b"not here");
    }
);

scenario!(
    /// `STDERR` and `STDOUT` records interleaved (and each stream ended by its empty
    /// record): the body and stderr each whole, in order, apart; the connection is kept.
    libfcgi_stderr_apart_from_stdout, &[], Isolation::Shared, |a| {
        let c = client(a, libfcgi_address(), Settings::default());
        for _ in 0..2 {
            let r = ok(&*c, flup_request("GET", "/stderr"), "stderr").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body, b"one\ntwo\n");
            assert_eq!(r.stderr, b"first message\nsecond message\n");
            assert!(r.end.protocol_status.is_complete());
        }
        let r = ok(&*c, flup_request("GET", "/hello"), "after").await;
        assert!(r.stderr.is_empty(), "stderr of one request leaked into the next");
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// A 50 MB response (libfcgi writes it in records of 8184 bytes) streamed: every
    /// chunk equals the generator's bytes at its offset, the sha256 of the whole equals
    /// the generator's, and the connection is kept for the next request.
    libfcgi_fifty_megabytes_streamed_with_a_checksum, &[], Isolation::Shared, |a| {
        const LEN: u64 = 50_000_000;
        let c = client(a, libfcgi_address(), Settings::default());
        let mut got = Sha256::new();
        let mut offset = 0u64;
        let mut expected = Vec::new();
        let mut check = |chunk: &[u8]| {
            expected.resize(chunk.len(), 0);
            fill_large_body(offset, &mut expected);
            assert!(chunk == &expected[..], "differs at {offset}");
            got.update(chunk);
            offset += chunk.len() as u64;
            Flow::Continue
        };
        let s = c
            .stream(flup_request("GET", &format!("/large?bytes={LEN}")), &mut check)
            .await
            .expect("stream");
        assert_eq!(s.status, 200);
        assert_eq!(s.body_bytes, LEN);
        assert!(s.end.expect("read to the end").protocol_status.is_complete());
        let mut want = Sha256::new();
        let mut piece = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < LEN {
            let n = (LEN - at).min(piece.len() as u64) as usize;
            fill_large_body(at, &mut piece[..n]);
            want.update(&piece[..n]);
            at += n as u64;
        }
        assert_eq!(got.finalize(), want.finalize());
        assert_eq!(ok(&*c, flup_request("GET", "/hello"), "after").await.body, b"Hello, World!");
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// `GET_VALUES` to libfcgi: it answers `FCGI_MAX_CONNS=1`, `FCGI_MAX_REQS=1`,
    /// `FCGI_MPXS_CONNS=0`, but only once more bytes follow the record, so the clients
    /// pad their `GET_VALUES` (an unpadded one that ends on an 8-byte boundary, as these
    /// three names do, waited unanswered until the read timeout). The client's next
    /// request works.
    libfcgi_get_values_answers_when_padded, &[], Isolation::Shared, |a| {
        let settings = Settings {
            read_timeout: Some(Duration::from_secs(2)),
            ..Settings::default()
        };
        let c = client(a, libfcgi_address(), settings);
        let start = Instant::now();
        let values = c
            .get_values(&["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS", "FCGI_MAX_REQS"])
            .await
            .expect("libfcgi answers");
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
        assert_eq!(values.max_connections(), Some(1));
        assert_eq!(values.max_requests(), Some(1));
        assert!(!values.multiplexes());
        let r = ok(&*c, flup_request("GET", "/hello"), "after").await;
        assert_eq!(r.body, b"Hello, World!");
    }
);

scenario!(
    /// A client that would multiplex, in front of libfcgi: requests do not wait for its
    /// discovery (`GET_VALUES`, which libfcgi answers with `FCGI_MPXS_CONNS=0`): they
    /// are served without multiplexing at once, sequential ones on one kept connection,
    /// six concurrent ones on a connection each (the pool's three).
    libfcgi_with_multiplex_asked_serves_one_request_per_connection, &[Need::Multiplexing], Isolation::Shared, |a| {
        let settings = Settings {
            connect_timeout: Some(Duration::from_secs(2)),
            max_connections: Some(3),
            ..multiplexed()
        };
        let c = client(a, libfcgi_address(), settings);
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(ok(&*c, flup_request("GET", "/hello"), "hello").await.body, b"Hello, World!");
        }
        let elapsed = start.elapsed();
        println!("five requests beside the discovery: {elapsed:?}");
        // Discovery happens beside the requests, never before them.
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
        assert_eq!(c.connections_opened(), 1);
        let c = &*c;
        let tasks: Vec<LocalFuture<'_, ()>> = (0..6)
            .map(|_| {
                Box::pin(async move {
                    let r = ok(c, flup_request("GET", "/sleep?ms=200"), "sleep").await;
                    assert_eq!(r.body, b"slept 200");
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        assert_eq!(c.connections_opened(), 3);
        // Once the discovery has ended, its connection is closed: the pool's three.
        c.discover_multiplexing().await;
        assert!(c.open_connections() <= 3, "{}", c.open_connections());
    }
);
