//! Scenarios against Go's `net/http/fcgi` (see [`crate::gofcgi`] for the server, its
//! routes and what Go writes on the wire): a `Date` header on every response, no
//! `STDERR` from a handler, `GET_VALUES` answered `FCGI_MPXS_CONNS=1` and then an empty
//! record, and requests multiplexed on one connection.

use sha2::{Digest, Sha256};

use super::*;
use crate::GoFcgi;

fn go_address() -> Address {
    Address::Unix(GoFcgi::shared().unix_socket().to_path_buf())
}

/// The header fields of `reply` as `(name, value)` text, in order, with the value of
/// `Date` replaced by `DATE` once checked to be an HTTP date
/// (`Wed, 02 Dec 2026 06:02:02 GMT`).
fn fields_dated(reply: &Reply) -> Vec<(String, String)> {
    reply
        .head
        .headers()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value()).into_owned();
            if h.name().eq_ignore_ascii_case("date") {
                let b = value.as_bytes();
                let form = b.len() == 29
                    && b[3] == b','
                    && value.ends_with(" GMT")
                    && [b[19], b[22]] == [b':', b':'];
                assert!(form, "not an HTTP date: {value:?}");
                (h.name().to_string(), "DATE".to_string())
            } else {
                (h.name().to_string(), value)
            }
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

scenario!(
    /// `/hello` three times: 200 `OK`, exactly `Content-Type: text/plain` and Go's
    /// `Date`, the body, no stderr, a complete end, on one kept connection.
    gofcgi_hello_with_every_header, &[], Isolation::Shared, |a| {
        let c = client(a, go_address(), Settings::default());
        for _ in 0..3 {
            let r = ok(&*c, flup_request("GET", "/hello"), "hello").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.head.reason(), Some("OK"));
            assert_eq!(
                fields_dated(&r),
                pairs(&[("Content-Type", "text/plain"), ("Date", "DATE")])
            );
            assert_eq!(r.body, b"Hello, World!");
            assert!(r.stderr.is_empty(), "{:?}", r.stderr);
            assert_eq!(r.end.app_status, 0);
            assert!(r.end.protocol_status.is_complete());
        }
        assert_eq!(c.connections_opened(), 1, "Go keeps the connection");
    }
);

scenario!(
    /// Bodies of 0 B, 1 B, 65535 B, 65536 B and 10 MiB (random) come back whole:
    /// `X-Body-Length` and the sha256 of what came back equal what was sent, all on one
    /// kept connection.
    gofcgi_echo_sizes_with_sha256_on_one_kept_connection, &[], Isolation::Shared, |a| {
        let c = client(a, go_address(), Settings::default());
        for (i, len) in [0usize, 1, 65535, 65536, 10 * 1024 * 1024].into_iter().enumerate() {
            let body = random_bytes(len, i as u64 + 73);
            let r = ok(&*c, flup_request("POST", "/echo").body(body.clone()), "echo").await;
            assert_eq!(r.status, 200, "{len}");
            assert_eq!(
                fields_dated(&r),
                pairs(&[
                    ("Content-Type", "application/octet-stream"),
                    ("Date", "DATE"),
                    ("X-Body-Length", &len.to_string()),
                ]),
                "{len}"
            );
            assert_eq!(hex_sha256(&r.body), hex_sha256(&body), "{len}");
        }
        assert_eq!(c.connections_opened(), 1, "every size on one kept connection");
    }
);

scenario!(
    /// Three `Set-Cookie` headers in order with 404 `Not Found` (Go writes the headers
    /// sorted by name, the values of one name in order).
    gofcgi_three_set_cookie_in_order_with_404, &[], Isolation::Shared, |a| {
        let c = client(a, go_address(), Settings::default());
        let r = ok(&*c, flup_request("GET", "/cookies"), "cookies").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.head.reason(), Some("Not Found"));
        let cookies: Vec<&[u8]> = r.head.get_all("set-cookie").collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2", b"c=3"]);
        assert_eq!(
            fields_dated(&r),
            pairs(&[
                ("Content-Type", "text/plain"),
                ("Date", "DATE"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Set-Cookie", "c=3"),
            ])
        );
        assert_eq!(r.body, b"not here");
    }
);

scenario!(
    /// Go's handlers have no FastCGI `STDERR` (the `/stderr` route's messages go to
    /// the server's log): its only `STDERR` is the reason it cannot make a request of
    /// the params, here a missing `REQUEST_METHOD`, sent without its empty end record
    /// before a 500. Both come apart from the body; the connection is kept.
    gofcgi_stderr_only_for_params_go_cannot_read, &[], Isolation::Shared, |a| {
        let c = client(a, go_address(), Settings::default());
        let r = ok(&*c, flup_request("GET", "/stderr"), "stderr").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"one\ntwo\n");
        assert!(r.stderr.is_empty(), "{:?}", r.stderr);
        let log = GoFcgi::shared().log();
        assert!(log.contains("first message\n") && log.contains("second message\n"), "{log}");

        let mut params = Params::new();
        params.insert("REQUEST_URI", "/hello").expect("a param");
        params.insert("SERVER_PROTOCOL", "HTTP/1.1").expect("a param");
        let r = ok(&*c, TestRequest::new(params), "no method").await;
        assert_eq!(r.status, 500);
        assert_eq!(r.head.reason(), Some("Internal Server Error"));
        assert_eq!(
            fields_dated(&r),
            pairs(&[("Content-Type", "text/plain; charset=utf-8"), ("Date", "DATE")])
        );
        assert_eq!(r.stderr, b"cgi: no REQUEST_METHOD in environment");
        assert!(r.body.is_empty());
        assert!(r.end.protocol_status.is_complete());
        let r = ok(&*c, flup_request("GET", "/hello"), "after").await;
        assert!(r.stderr.is_empty(), "stderr of one request leaked into the next");
        assert_eq!(c.connections_opened(), 1);
    }
);

scenario!(
    /// A 50 MB response (Go writes it in records of up to 65535 bytes) streamed: every
    /// chunk equals the generator's bytes at its offset, the sha256 of the whole equals
    /// the generator's, and the connection is kept for the next request.
    gofcgi_fifty_megabytes_streamed_with_a_checksum, &[], Isolation::Shared, |a| {
        const LEN: u64 = 50_000_000;
        let c = client(a, go_address(), Settings::default());
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
    /// `GET_VALUES` to Go: whatever is asked, exactly `FCGI_MPXS_CONNS=1` (then an
    /// empty `GET_VALUES_RESULT`, which the core takes as the end of that answer), three
    /// times in a row; requests work after it.
    gofcgi_get_values_answers_mpxs_conns_1, &[], Isolation::Shared, |a| {
        let c = client(a, go_address(), Settings::default());
        for names in [
            &["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS", "FCGI_MAX_REQS"][..],
            &["FCGI_MAX_REQS"],
            &["FCGI_MPXS_CONNS"],
        ] {
            let values = c.get_values(names).await.expect("values");
            let got: Vec<(&[u8], &[u8])> = values.iter().collect();
            assert_eq!(got, [(&b"FCGI_MPXS_CONNS"[..], &b"1"[..])], "{names:?}");
            assert!(values.multiplexes());
            assert_eq!(values.max_requests(), None);
            assert_eq!(values.max_connections(), None);
        }
        assert_eq!(ok(&*c, flup_request("GET", "/hello"), "after").await.body, b"Hello, World!");
    }
);

scenario!(
    /// Go multiplexes: after one request, 100 concurrent `/sleep?ms=100` on a multiplexing client run at
    /// the same time on one connection (Go advertises no `FCGI_MAX_REQS`; the client's
    /// default of 100 per connection applies), so they all take well under a second
    /// (about 0.11 s here). It runs alone: beside the suite's 256 MiB stream and
    /// fault drills on a 2-CPU machine, the same run once took more than 0.8 s.
    gofcgi_hundred_concurrent_sleeps_share_one_connection, &[Need::Multiplexing], Isolation::Alone, |a| {
        let c = discovered(a, go_address(), multiplexed()).await;
        let c = &*c;
        // A request that has ended has freed its slot by the time its caller has the
        // response: the hundred that follow all fit on the one connection.
        assert_eq!(ok(c, flup_request("GET", "/hello"), "hello").await.body, b"Hello, World!");
        let start = Instant::now();
        let tasks: Vec<LocalFuture<'_, ()>> = (0..100)
            .map(|_| {
                Box::pin(async move {
                    let r = ok(c, flup_request("GET", "/sleep?ms=100"), "sleep").await;
                    assert_eq!(r.body, b"slept 100");
                }) as LocalFuture<'_, ()>
            })
            .collect();
        join_all(tasks).await;
        let elapsed = start.elapsed();
        println!("100 concurrent 100 ms requests: {elapsed:?}");
        // One after another they would take 10 s.
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
        assert_eq!(c.connections_opened(), 1);
    }
);
