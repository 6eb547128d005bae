//! Scenarios against uWSGI in FastCGI mode (see [`crate::uwsgi`] for the server, its
//! routes and what uWSGI writes on the wire): no answer at all to `GET_VALUES`, and
//! every connection closed after `END_REQUEST`, whatever `FCGI_KEEP_CONN` says. The
//! client must take neither for a broken server: a request never waits for the
//! multiplexing probe, and a connection the server closed is never used again.

use super::*;
use crate::Uwsgi;

fn uwsgi_address() -> Address {
    Address::Unix(Uwsgi::shared().unix_socket().to_path_buf())
}

/// The header fields of `reply` as `(name, value)` text, in order.
fn fields(reply: &Reply) -> Vec<(String, String)> {
    reply
        .head
        .headers()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value()).into_owned();
            (h.name().to_string(), value)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

scenario!(
    /// `/hello` three times: 200 `OK`, exactly `Content-Type: text/plain` (uWSGI adds
    /// no header), the body, no stderr, a complete end. uWSGI closes the connection
    /// after each: three connections.
    uwsgi_hello_with_every_header, &[], Isolation::Shared, |a| {
        let c = client(a, uwsgi_address(), Settings::default());
        for _ in 0..3 {
            let r = ok(&*c, flup_request("GET", "/hello"), "hello").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.head.reason(), Some("OK"));
            assert_eq!(fields(&r), pairs(&[("Content-Type", "text/plain")]));
            assert_eq!(r.body, b"Hello, World!");
            assert!(r.stderr.is_empty(), "{:?}", r.stderr);
            assert_eq!(r.end.app_status, 0);
            assert!(r.end.protocol_status.is_complete());
        }
        assert_eq!(c.connections_opened(), 3, "uWSGI closes after every request");
    }
);

scenario!(
    /// Bodies of 0 B, 1 B, 65535 B, 65536 B and 10 MiB (random) come back whole: the
    /// headers are exactly `Content-Type`, `X-Body-Sha256` and `X-Body-Length` of what
    /// was sent, and the sha256 of what came back equals it; one connection each.
    uwsgi_echo_sizes_with_sha256, &[], Isolation::Shared, |a| {
        let c = client(a, uwsgi_address(), Settings::default());
        let sizes = [0usize, 1, 65535, 65536, 10 * 1024 * 1024];
        for (i, len) in sizes.into_iter().enumerate() {
            let body = random_bytes(len, i as u64 + 131);
            let r = ok(&*c, flup_request("POST", "/echo").body(body.clone()), "echo").await;
            assert_eq!(r.status, 200, "{len}");
            assert_eq!(
                fields(&r),
                pairs(&[
                    ("Content-Type", "application/octet-stream"),
                    ("X-Body-Sha256", &hex_sha256(&body)),
                    ("X-Body-Length", &len.to_string()),
                ]),
                "{len}"
            );
            assert_eq!(hex_sha256(&r.body), hex_sha256(&body), "{len}");
            assert!(r.end.protocol_status.is_complete());
        }
        assert_eq!(c.connections_opened(), sizes.len() as u64);
    }
);

scenario!(
    /// 200 requests one after another on one client, which asks to keep each
    /// connection: uWSGI closes every one after `END_REQUEST`, and the client never
    /// sends a request on a connection so closed. Every request succeeds, each on a
    /// connection of its own, and none is left open.
    uwsgi_sequential_requests_each_on_a_new_connection, &[], Isolation::Shared, |a| {
        const N: u64 = 200;
        let c = client(a, uwsgi_address(), Settings::default());
        for i in 0..N {
            let r = ok(&*c, flup_request("GET", "/hello"), &format!("request {i}")).await;
            assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]), "{i}");
        }
        assert_eq!(c.connections_opened(), N);
        assert!(c.open_connections() <= 1, "{}", c.open_connections());
    }
);

scenario!(
    /// `GET_VALUES` to uWSGI: no answer at all (no `UNKNOWN_TYPE` either), so the call
    /// ends with its read timeout, 300 ms; a request after it works.
    uwsgi_get_values_gets_no_answer, &[], Isolation::Shared, |a| {
        let settings = Settings {
            read_timeout: Some(Duration::from_millis(300)),
            ..Settings::default()
        };
        let c = client(a, uwsgi_address(), settings);
        let start = Instant::now();
        let err = c.get_values(&["FCGI_MPXS_CONNS"]).await.unwrap_err();
        let took = start.elapsed();
        assert!(is_read_timeout(&err), "{err:?}");
        assert!(
            (Duration::from_millis(300)..Duration::from_secs(2)).contains(&took),
            "{took:?}"
        );
        let r = ok(&*c, flup_request("GET", "/hello"), "after").await;
        assert_eq!(r.body, b"Hello, World!");
    }
);

scenario!(
    /// uWSGI never answers `GET_VALUES` (it holds the probe's connection for 8 s) and
    /// closes every connection after `END_REQUEST`. With multiplexing asked for, a 1 s
    /// connect timeout (the probe's bound) and a 1 s total timeout, 52 requests, 4 at a
    /// time, all succeed one per connection and none waits for the probe: each takes
    /// well under its bound. After the probe gave up, requests go on the same way.
    uwsgi_get_values_never_holds_a_request_back, &[Need::Multiplexing], Isolation::Shared, |a| {
        let settings = Settings {
            connect_timeout: Some(Duration::from_secs(1)),
            total_timeout: Some(Duration::from_secs(1)),
            max_connections: Some(4),
            ..multiplexed()
        };
        let c = client(a, uwsgi_address(), settings);
        let c = &*c;
        let slowest = Cell::new(Duration::ZERO);
        let slowest = &slowest;
        let round = |n: usize| {
            join_all((0..4).map(|_| {
                Box::pin(async move {
                    for _ in 0..n {
                        let start = Instant::now();
                        let r = ok(c, flup_request("GET", "/hello"), "hello").await;
                        assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
                        slowest.set(slowest.get().max(start.elapsed()));
                    }
                }) as LocalFuture<'_, ()>
            }).collect())
        };
        let start = Instant::now();
        round(13).await;
        let first = start.elapsed();
        assert_eq!(c.connections_opened(), 52, "one connection per request");
        assert!(slowest.get() < Duration::from_millis(500), "a request took {:?}", slowest.get());
        // The probe gives up after its 1 s bound; requests carry on one per connection.
        c.discover_multiplexing().await;
        let probe_ended = start.elapsed();
        assert!(probe_ended >= Duration::from_secs(1), "the probe ended after {probe_ended:?}");
        round(2).await;
        assert!(slowest.get() < Duration::from_millis(500), "a request took {:?}", slowest.get());
        assert_eq!(c.connections_opened(), 60, "uWSGI closes each connection");
        println!("52 requests: {first:?}; probe over after {probe_ended:?}; slowest {:?}", slowest.get());
    }
);
