//! `Params`, `ParamsBuilder`, `HeaderPolicy` and `split_path`: exact param lists in
//! nginx's order, header folding and its security policy, and path splitting.

use fcgi_proto::params::{split_path, HeaderPolicy, SplitPath};
use fcgi_proto::{ParamError, Params, ParamsBuilder, PathError, UsageError};

fn list(params: &Params) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn names(params: &Params) -> Vec<String> {
    list(params).into_iter().map(|(n, _)| n).collect()
}

// ---------------------------------------------------------------------------------------
// ParamsBuilder: the exact list.
// ---------------------------------------------------------------------------------------

#[test]
fn full_request_gives_nginx_params_in_order() {
    let params = ParamsBuilder::new("POST", "/app/index.php/users/7?x=1&y=%20")
        .document_root("/srv/www/")
        .script("/app/index.php", "/srv/www/app/index.php")
        .path_info("/users/7")
        .remote_addr("[2001:db8::1]:51234".parse().unwrap())
        .server_addr("192.0.2.10:443".parse().unwrap())
        .https(true)
        .server_software("nginx/1.24.0")
        .header("Host", "example.com:8443")
        .header("Content-Type", "application/json")
        .header("Content-Length", "2")
        .header("Accept", "text/html")
        .header("X-Trace", "1")
        .header("accept", "*/*")
        .header("Cookie", "a=1")
        .header("cookie", "b=2")
        .header("Proxy", "http://evil.example/")
        .header("X_Under", "dropped")
        .header("X.Dot", "dropped")
        .param("APP_ENV", "prod")
        .build()
        .unwrap();
    assert_eq!(
        list(&params),
        pairs(&[
            ("SCRIPT_FILENAME", "/srv/www/app/index.php"),
            ("QUERY_STRING", "x=1&y=%20"),
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_TYPE", "application/json"),
            ("CONTENT_LENGTH", "2"),
            ("SCRIPT_NAME", "/app/index.php"),
            ("REQUEST_URI", "/app/index.php/users/7?x=1&y=%20"),
            ("DOCUMENT_URI", "/app/index.php/users/7"),
            ("DOCUMENT_ROOT", "/srv/www/"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "https"),
            ("HTTPS", "on"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "nginx/1.24.0"),
            ("REMOTE_ADDR", "2001:db8::1"),
            ("REMOTE_PORT", "51234"),
            ("SERVER_ADDR", "192.0.2.10"),
            ("SERVER_PORT", "443"),
            ("SERVER_NAME", "example.com"),
            ("REDIRECT_STATUS", "200"),
            ("PATH_INFO", "/users/7"),
            ("PATH_TRANSLATED", "/srv/www/users/7"),
            ("HTTP_HOST", "example.com:8443"),
            ("HTTP_ACCEPT", "text/html, */*"),
            ("HTTP_X_TRACE", "1"),
            ("HTTP_COOKIE", "a=1; b=2"),
            ("APP_ENV", "prod"),
        ])
    );
    assert_eq!(params.content_length(), Ok(Some(2)));
}

#[test]
fn minimal_request_leaves_out_what_is_not_given() {
    let params = ParamsBuilder::new("GET", "/").build().unwrap();
    assert_eq!(
        list(&params),
        pairs(&[
            ("QUERY_STRING", ""),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/"),
            ("REQUEST_URI", "/"),
            ("DOCUMENT_URI", "/"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "fcgi"),
            ("REDIRECT_STATUS", "200"),
        ])
    );
    assert_eq!(params.content_length(), Ok(None));
}

#[test]
fn ipv6_addresses_and_server_name() {
    let v6 = ParamsBuilder::new("GET", "/i.php")
        .remote_addr("[::1]:40000".parse().unwrap())
        .server_addr("[fe80::1:2]:9000".parse().unwrap())
        .https(false)
        .build()
        .unwrap();
    assert_eq!(v6.get("REMOTE_ADDR"), Some(&b"::1"[..]));
    assert_eq!(v6.get("REMOTE_PORT"), Some(&b"40000"[..]));
    assert_eq!(v6.get("SERVER_ADDR"), Some(&b"fe80::1:2"[..]));
    assert_eq!(v6.get("SERVER_PORT"), Some(&b"9000"[..]));
    // No Host and no server_name: the server address.
    assert_eq!(v6.get("SERVER_NAME"), Some(&b"fe80::1:2"[..]));
    assert_eq!(v6.get("REQUEST_SCHEME"), Some(&b"http"[..]));
    assert!(!v6.contains("HTTPS"));
    // The longest IPv6 text form.
    let long = ParamsBuilder::new("GET", "/")
        .remote_addr(
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                .parse()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(
        long.get("REMOTE_ADDR"),
        Some(&b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"[..])
    );

    // SERVER_NAME from Host: the port goes, brackets of an IPv6 literal stay.
    for (host, name) in [
        ("example.com", "example.com"),
        ("example.com:8080", "example.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[2001:db8::7]:443", "[2001:db8::7]"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("example.com:", "example.com:"),
        ("example.com:http", "example.com:http"),
    ] {
        let p = ParamsBuilder::new("GET", "/")
            .server_addr("10.0.0.1:80".parse().unwrap())
            .header("Host", host)
            .build()
            .unwrap();
        assert_eq!(p.get("SERVER_NAME"), Some(name.as_bytes()), "Host: {host}");
        assert_eq!(p.get("HTTP_HOST"), Some(host.as_bytes()));
    }
    // An explicit server name wins over Host.
    let p = ParamsBuilder::new("GET", "/")
        .header("Host", "client.example")
        .server_name("vhost.example")
        .build()
        .unwrap();
    assert_eq!(p.get("SERVER_NAME"), Some(&b"vhost.example"[..]));
}

#[test]
fn path_info_document_root_and_defaults() {
    // PATH_TRANSLATED only with a document root; the root's trailing slash is not doubled.
    let p = ParamsBuilder::new("GET", "/i.php/x")
        .path_info("/x")
        .build()
        .unwrap();
    assert_eq!(p.get("PATH_INFO"), Some(&b"/x"[..]));
    assert!(!p.contains("PATH_TRANSLATED"));
    let p = ParamsBuilder::new("GET", "/i.php")
        .document_root("/srv/www")
        .path_info("")
        .build()
        .unwrap();
    assert_eq!(p.get("PATH_INFO"), Some(&b""[..]));
    assert_eq!(p.get("PATH_TRANSLATED"), Some(&b"/srv/www"[..]));
    // Without a split, neither.
    let p = ParamsBuilder::new("GET", "/i.php")
        .document_root("/srv/www")
        .build()
        .unwrap();
    assert!(!p.contains("PATH_INFO") && !p.contains("PATH_TRANSLATED"));

    // script_filename alone keeps SCRIPT_NAME from the path; setters override defaults.
    let p = ParamsBuilder::new("HEAD", "/a/b.php?q")
        .script_filename("/srv/b.php")
        .document_uri("/a/b.php")
        .server_protocol("HTTP/1.0")
        .build()
        .unwrap();
    assert_eq!(
        list(&p)[..7],
        pairs(&[
            ("SCRIPT_FILENAME", "/srv/b.php"),
            ("QUERY_STRING", "q"),
            ("REQUEST_METHOD", "HEAD"),
            ("SCRIPT_NAME", "/a/b.php"),
            ("REQUEST_URI", "/a/b.php?q"),
            ("DOCUMENT_URI", "/a/b.php"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
        ])[..]
    );
    // Only the first '?' splits the query.
    let p = ParamsBuilder::new("GET", "/x?a=1?b=2").build().unwrap();
    assert_eq!(p.get("QUERY_STRING"), Some(&b"a=1?b=2"[..]));
    assert_eq!(p.get("SCRIPT_NAME"), Some(&b"/x"[..]));
    // A request target that is not UTF-8.
    let p = ParamsBuilder::from_bytes(b"GET", b"/caf\xe9.php?n=\xff")
        .build()
        .unwrap();
    assert_eq!(p.get("SCRIPT_NAME"), Some(&b"/caf\xe9.php"[..]));
    assert_eq!(p.get("QUERY_STRING"), Some(&b"n=\xff"[..]));
}

#[test]
fn with_split_path() {
    let uri_path = "/blog/index.php/2024/post";
    let split = split_path(uri_path.as_bytes(), b".php").unwrap().unwrap();
    let script_name = std::str::from_utf8(split.script_name).unwrap();
    let path_info = std::str::from_utf8(split.path_info).unwrap();
    let filename = format!("/srv/www{script_name}");
    let p = ParamsBuilder::new("GET", "/blog/index.php/2024/post?page=1")
        .document_root("/srv/www")
        .script(script_name, &filename)
        .path_info(path_info)
        .build()
        .unwrap();
    assert_eq!(
        p.get("SCRIPT_FILENAME"),
        Some(&b"/srv/www/blog/index.php"[..])
    );
    assert_eq!(p.get("SCRIPT_NAME"), Some(&b"/blog/index.php"[..]));
    assert_eq!(p.get("PATH_INFO"), Some(&b"/2024/post"[..]));
    assert_eq!(p.get("PATH_TRANSLATED"), Some(&b"/srv/www/2024/post"[..]));
    assert_eq!(
        p.get("DOCUMENT_URI"),
        Some(&b"/blog/index.php/2024/post"[..])
    );
}

// ---------------------------------------------------------------------------------------
// Headers.
// ---------------------------------------------------------------------------------------

#[test]
fn headers_join_and_map() {
    let p = ParamsBuilder::new("GET", "/")
        .header("X-Forwarded-For", "10.0.0.1")
        .header("Cookie", "a=1")
        .header("x-forwarded-for", "10.0.0.2")
        .header("COOKIE", "b=2")
        .header("Cookie", "c=3")
        .header("X-Forwarded-For", "10.0.0.3")
        .header("Content-Type", "text/plain")
        .header("content-type", "ignored/second")
        .header("Content-Length", "0005")
        .header("X-Empty", "")
        .header_bytes(b"X-Bin", b"caf\xe9 \x7f\x01\t")
        .build()
        .unwrap();
    let headers: Vec<_> = list(&p)
        .into_iter()
        .filter(|(n, _)| n.starts_with("HTTP_") || n.starts_with("CONTENT_"))
        .collect::<Vec<_>>();
    assert_eq!(
        headers[..5],
        pairs(&[
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "5"),
            ("HTTP_X_FORWARDED_FOR", "10.0.0.1, 10.0.0.2, 10.0.0.3"),
            ("HTTP_COOKIE", "a=1; b=2; c=3"),
            ("HTTP_X_EMPTY", ""),
        ])[..]
    );
    assert_eq!(p.get("HTTP_X_BIN"), Some(&b"caf\xe9 \x7f\x01\t"[..]));
    assert!(!p.contains("HTTP_CONTENT_TYPE") && !p.contains("HTTP_CONTENT_LENGTH"));
}

#[test]
fn content_length_sources() {
    // An explicit length wins over the header (even one that is not a number).
    for header in ["2", "abc"] {
        let p = ParamsBuilder::new("POST", "/")
            .header("Content-Length", header)
            .content_length(7)
            .build()
            .unwrap();
        assert_eq!(p.get("CONTENT_LENGTH"), Some(&b"7"[..]));
        assert_eq!(p.content_length(), Ok(Some(7)));
    }
    // Equal duplicates are one length; different ones are an error.
    let p = ParamsBuilder::new("POST", "/")
        .header("Content-Length", "3")
        .header("content-length", "3")
        .build()
        .unwrap();
    assert_eq!(p.get("CONTENT_LENGTH"), Some(&b"3"[..]));
    for explicit in [None, Some(3)] {
        let mut b = ParamsBuilder::new("POST", "/")
            .header("Content-Length", "3")
            .header("Content-Length", "4");
        if let Some(n) = explicit {
            b = b.content_length(n);
        }
        assert_eq!(b.build(), Err(ParamError::InvalidContentLength));
    }
    for bad in ["abc", "-1", "+1", " 1", "1 ", "", "99999999999999999999"] {
        assert_eq!(
            ParamsBuilder::new("POST", "/")
                .header("Content-Length", bad)
                .build(),
            Err(ParamError::InvalidContentLength),
            "{bad:?}"
        );
    }
    let p = ParamsBuilder::new("POST", "/")
        .content_length(u64::MAX)
        .build()
        .unwrap();
    assert_eq!(p.get("CONTENT_LENGTH"), Some(&b"18446744073709551615"[..]));
    assert_eq!(p.content_length(), Ok(Some(u64::MAX)));
}

#[test]
fn caller_params_win_over_everything() {
    let p = ParamsBuilder::new("GET", "/i.php")
        .header("Host", "client.example")
        .header("Accept", "*/*")
        .param("HTTP_HOST", "proxy.example")
        .param("REQUEST_METHOD", "PUT")
        .param("HTTPS", "on")
        .param("CUSTOM", "1")
        .param("CUSTOM", "2")
        .build()
        .unwrap();
    assert_eq!(
        list(&p),
        pairs(&[
            ("QUERY_STRING", ""),
            ("REQUEST_METHOD", "PUT"),
            ("SCRIPT_NAME", "/i.php"),
            ("REQUEST_URI", "/i.php"),
            ("DOCUMENT_URI", "/i.php"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "fcgi"),
            ("SERVER_NAME", "client.example"),
            ("REDIRECT_STATUS", "200"),
            ("HTTP_HOST", "proxy.example"),
            ("HTTP_ACCEPT", "*/*"),
            ("HTTPS", "on"),
            ("CUSTOM", "2"),
        ])
    );
    // A caller's CONTENT_LENGTH wins over the header and is what the connection holds
    // the body to.
    let p = ParamsBuilder::new("POST", "/")
        .header("Content-Length", "3")
        .param("CONTENT_LENGTH", "9")
        .build()
        .unwrap();
    assert_eq!(p.content_length(), Ok(Some(9)));
}

#[test]
fn header_policy() {
    let build = |policy: HeaderPolicy, name: &'static str| {
        ParamsBuilder::new("GET", "/")
            .header_policy(policy)
            .header(name, "v")
            .build()
            .unwrap()
    };
    let default = HeaderPolicy::default();
    assert!(default.drop_proxy && !default.allow_underscores);
    for proxy in ["Proxy", "proxy", "PROXY", "pRoXy"] {
        assert!(!build(default, proxy).contains("HTTP_PROXY"), "{proxy}");
        assert!(!default.allows(proxy.as_bytes()));
    }
    // Not a prefix match.
    assert!(build(default, "Proxy-Authorization").contains("HTTP_PROXY_AUTHORIZATION"));
    for dropped in [
        "X_User_Id",
        "X.User.Id",
        "X User",
        "X@Y",
        "X:Y",
        "X/Y",
        "X+Y",
        "Ünï",
        "",
    ] {
        let p = build(default, dropped);
        assert!(
            !names(&p).iter().any(|n| n.starts_with("HTTP_")),
            "{dropped:?} passed"
        );
        assert!(!default.allows(dropped.as_bytes()));
    }
    assert!(default.allows(b"X-User-Id") && default.allows(b"x-9"));

    let mut underscores = HeaderPolicy::default();
    underscores.allow_underscores = true;
    assert_eq!(
        build(underscores, "X_User-Id").get("HTTP_X_USER_ID"),
        Some(&b"v"[..])
    );
    assert!(!build(underscores, "X.User").contains("HTTP_X_USER"));
    assert!(!build(underscores, "Proxy").contains("HTTP_PROXY"));
    // With underscores allowed the spellings fold into one param, joined.
    let p = ParamsBuilder::new("GET", "/")
        .header_policy(underscores)
        .header("X-A", "1")
        .header("X_A", "2")
        .build()
        .unwrap();
    assert_eq!(p.get("HTTP_X_A"), Some(&b"1, 2"[..]));

    let mut proxy_ok = HeaderPolicy::default();
    proxy_ok.drop_proxy = false;
    assert_eq!(build(proxy_ok, "Proxy").get("HTTP_PROXY"), Some(&b"v"[..]));
    assert!(!build(proxy_ok, "X_A").contains("HTTP_X_A"));

    // By default a spoofed X-User_Id does not overwrite the proxy's X-User-Id.
    let p = ParamsBuilder::new("GET", "/")
        .header("X-User-Id", "alice")
        .header("X-User_Id", "admin")
        .header("X.User.Id", "admin")
        .build()
        .unwrap();
    assert_eq!(p.get("HTTP_X_USER_ID"), Some(&b"alice"[..]));
}

/// The policy governs every header, added before or after it is set; the last policy set
/// is the one applied.
#[test]
fn header_policy_set_after_headers_still_applies() {
    let headers = |b: ParamsBuilder<'static>| {
        b.header("X-User_Id", "7")
            .header("Proxy", "http://proxy.example:3128/")
            .header("X.Dot", "never")
    };
    let mut open = HeaderPolicy::default();
    open.allow_underscores = true;
    open.drop_proxy = false;

    let p = headers(ParamsBuilder::new("GET", "/"))
        .header_policy(open)
        .build()
        .unwrap();
    assert_eq!(p.get("HTTP_X_USER_ID"), Some(&b"7"[..]));
    assert_eq!(
        p.get("HTTP_PROXY"),
        Some(&b"http://proxy.example:3128/"[..])
    );
    assert!(!names(&p).iter().any(|n| n.contains("DOT")), "{p:?}");

    // Set before, between and after: the same params.
    let before = headers(ParamsBuilder::new("GET", "/").header_policy(open));
    let between = ParamsBuilder::new("GET", "/")
        .header("X-User_Id", "7")
        .header_policy(open)
        .header("Proxy", "http://proxy.example:3128/")
        .header("X.Dot", "never");
    assert_eq!(before.build().unwrap(), p);
    assert_eq!(between.build().unwrap(), p);

    // By default, and when a later call sets the default back, both are dropped.
    for p in [
        headers(ParamsBuilder::new("GET", "/")).build().unwrap(),
        headers(ParamsBuilder::new("GET", "/").header_policy(open))
            .header_policy(HeaderPolicy::default())
            .build()
            .unwrap(),
    ] {
        assert!(!names(&p).iter().any(|n| n.starts_with("HTTP_")), "{p:?}");
    }

    // Each flag alone.
    let mut underscores = HeaderPolicy::default();
    underscores.allow_underscores = true;
    let p = headers(ParamsBuilder::new("GET", "/"))
        .header_policy(underscores)
        .build()
        .unwrap();
    assert_eq!(p.get("HTTP_X_USER_ID"), Some(&b"7"[..]));
    assert!(!p.contains("HTTP_PROXY"));
    let mut proxy_ok = HeaderPolicy::default();
    proxy_ok.drop_proxy = false;
    let p = headers(ParamsBuilder::new("GET", "/"))
        .header_policy(proxy_ok)
        .build()
        .unwrap();
    assert!(!p.contains("HTTP_X_USER_ID"));
    assert_eq!(
        p.get("HTTP_PROXY"),
        Some(&b"http://proxy.example:3128/"[..])
    );

    // Spellings that fold into one name join in the order given, whenever the policy
    // that lets them through was set.
    let p = ParamsBuilder::new("GET", "/")
        .header("X-A", "1")
        .header("X_A", "2")
        .header("x-a", "3")
        .header_policy(underscores)
        .build()
        .unwrap();
    assert_eq!(p.get("HTTP_X_A"), Some(&b"1, 2, 3"[..]));
}

#[test]
fn forbidden_bytes_in_headers_are_errors() {
    for (name, value, error) in [
        (
            &b"X-A\0"[..],
            &b"v"[..],
            ParamError::InvalidHeaderName("X-A\0".into()),
        ),
        (
            b"X-A\r",
            b"v",
            ParamError::InvalidHeaderName("X-A\r".into()),
        ),
        (b"X\nA", b"v", ParamError::InvalidHeaderName("X\nA".into())),
        (b"X-A", b"v\0", ParamError::InvalidHeaderValue("X-A".into())),
        (
            b"X-A",
            b"v\r\nInjected: 1",
            ParamError::InvalidHeaderValue("X-A".into()),
        ),
        (b"X-A", b"\n", ParamError::InvalidHeaderValue("X-A".into())),
        // Even for headers the policy would drop.
        (
            b"Proxy",
            b"x\ny",
            ParamError::InvalidHeaderValue("Proxy".into()),
        ),
        (b"X_A", b"x\0", ParamError::InvalidHeaderValue("X_A".into())),
        (
            b"Content-Type",
            b"a\rb",
            ParamError::InvalidHeaderValue("Content-Type".into()),
        ),
    ] {
        let result = ParamsBuilder::new("GET", "/")
            .header_bytes(name, value)
            .build();
        assert_eq!(result, Err(error), "{name:?} {value:?}");
    }
    // The first error wins.
    assert_eq!(
        ParamsBuilder::new("GET", "/")
            .header("A\0", "1")
            .param("B=", "1")
            .header("C", "\0")
            .build(),
        Err(ParamError::InvalidHeaderName("A\0".into()))
    );
    assert_eq!(
        ParamsBuilder::new("GET", "/")
            .param("B=", "1")
            .header("A\0", "1")
            .build(),
        Err(ParamError::InvalidName("B=".into()))
    );
}

#[test]
fn header_sizes() {
    // A long header name is legal and folds like any other.
    let name = format!("X-{}", "Long".repeat(100));
    let p = ParamsBuilder::new("GET", "/")
        .header(&name, "v")
        .build()
        .unwrap();
    let folded = format!("HTTP_X_{}", "LONG".repeat(100));
    assert_eq!(p.get(&folded), Some(&b"v"[..]));
    // Joined values that no longer fit one record.
    let big = "v".repeat(40_000);
    assert!(matches!(
        ParamsBuilder::new("GET", "/")
            .header("X-Big", &big)
            .header("X-Big", &big)
            .build(),
        Err(ParamError::PairTooLarge { name, .. }) if name == "HTTP_X_BIG"
    ));
    // Joined values that fill a record exactly: 1 + 4 + "HTTP_X_A" + 32760 + ", " + 32760.
    let half = "v".repeat(32_760);
    let p = ParamsBuilder::new("GET", "/")
        .header("X-A", &half)
        .header("X-A", &half)
        .build()
        .unwrap();
    assert_eq!(p.get("HTTP_X_A").map(<[u8]>::len), Some(65_522));
    let one_more = "v".repeat(32_761);
    assert_eq!(
        ParamsBuilder::new("GET", "/")
            .header("X-A", &half)
            .header("X-A", &one_more)
            .build(),
        Err(ParamError::PairTooLarge {
            name: "HTTP_X_A".into(),
            size: 65_536
        })
    );
    // One value too large.
    let huge = "v".repeat(70_000);
    assert_eq!(
        ParamsBuilder::new("GET", "/")
            .header("X-Huge", &huge)
            .build(),
        Err(ParamError::PairTooLarge {
            name: "HTTP_X_HUGE".into(),
            size: 1 + 4 + 11 + 70_000
        })
    );
    // Params other than headers are checked too.
    assert!(matches!(
        ParamsBuilder::new("GET", "/")
            .document_root(&huge)
            .build(),
        Err(ParamError::PairTooLarge { name, size }) if name == "DOCUMENT_ROOT" && size == 1 + 4 + 13 + 70_000
    ));
    assert_eq!(
        ParamsBuilder::new("GET", "/x\0").build(),
        Err(ParamError::InvalidValue("SCRIPT_NAME".into()))
    );
}

// ---------------------------------------------------------------------------------------
// Params.
// ---------------------------------------------------------------------------------------

#[test]
fn params_insert_replace_remove() {
    let mut p = Params::new();
    assert!(p.is_empty());
    p.insert("A", "1").unwrap();
    p.insert("B", "2").unwrap();
    p.insert("C", "3").unwrap();
    // Replacing keeps the position, with a shorter and with a longer value.
    p.insert("B", "two, much longer").unwrap();
    p.insert("A", "").unwrap();
    assert_eq!(
        list(&p),
        pairs(&[("A", ""), ("B", "two, much longer"), ("C", "3")])
    );
    p.insert("B", "b").unwrap();
    assert_eq!(list(&p), pairs(&[("A", ""), ("B", "b"), ("C", "3")]));
    assert_eq!(p.len(), 3);
    assert_eq!(p.encoded_len(), 3 + 4 + 4);
    assert!(p.remove("B"));
    assert!(!p.remove("B"));
    assert!(!p.contains("B") && p.get("B").is_none());
    assert_eq!(list(&p), pairs(&[("A", ""), ("C", "3")]));
    // Inserted again, it goes to the end.
    p.insert(b"B".as_slice(), b"again".as_slice()).unwrap();
    assert_eq!(names(&p), ["A", "C", "B"]);
    // Names are case-sensitive.
    p.insert("a", "lower").unwrap();
    assert_eq!(p.get("A"), Some(&b""[..]));
    assert_eq!(p.get("a"), Some(&b"lower"[..]));
    // Equality is by content and order.
    let mut q = Params::with_capacity(4, 64);
    for (n, v) in [("A", ""), ("C", "3"), ("B", "again"), ("a", "lower")] {
        q.insert(n, v).unwrap();
    }
    assert_eq!(p, q);
    q.remove("A");
    q.insert("A", "").unwrap();
    assert_ne!(p, q);
    assert_eq!(
        format!("{:?}", Params::new().tap_insert("K", "V")),
        r#"{"K": "V"}"#
    );
}

trait TapInsert {
    fn tap_insert(self, name: &str, value: &str) -> Self;
}

impl TapInsert for Params {
    fn tap_insert(mut self, name: &str, value: &str) -> Self {
        self.insert(name, value).unwrap();
        self
    }
}

#[test]
fn params_reject_bad_names_and_values() {
    let mut p = Params::new();
    p.insert("KEEP", "1").unwrap();
    let bad_names: [(&[u8], ParamError); 9] = [
        (b"", ParamError::EmptyName),
        (b"A=B", ParamError::InvalidName("A=B".into())),
        (b"=", ParamError::InvalidName("=".into())),
        (b"A\0", ParamError::InvalidName("A\0".into())),
        (b"A\r", ParamError::InvalidName("A\r".into())),
        (b"A\nB", ParamError::InvalidName("A\nB".into())),
        (b"A B", ParamError::InvalidName("A B".into())),
        (b"A\x7f", ParamError::InvalidName("A\x7f".into())),
        (b"\xc3\xa9", ParamError::InvalidName("é".into())),
    ];
    for (name, error) in bad_names {
        assert_eq!(p.insert(name, "v"), Err(error), "{name:?}");
    }
    for value in [&b"a\0b"[..], b"\r", b"a\nb", b"x\r\ny"] {
        assert_eq!(
            p.insert("V", value),
            Err(ParamError::InvalidValue("V".into())),
            "{value:?}"
        );
        // Replacing an existing value is checked the same way.
        assert_eq!(
            p.insert("KEEP", value),
            Err(ParamError::InvalidValue("KEEP".into()))
        );
    }
    // Anything else goes: other control bytes, non-UTF-8, '=' in values.
    p.insert("OK", b"a=b\t\x01\xff".as_slice()).unwrap();
    // Failed inserts changed nothing.
    assert_eq!(
        p.iter().collect::<Vec<_>>(),
        [(&b"KEEP"[..], &b"1"[..]), (b"OK", b"a=b\t\x01\xff")]
    );
}

#[test]
fn params_pair_size_limit() {
    let mut p = Params::new();
    assert_eq!(
        p.insert("BIG", "x".repeat(70_000)),
        Err(ParamError::PairTooLarge {
            name: "BIG".into(),
            size: 1 + 4 + 3 + 70_000
        })
    );
    // Exactly one record's worth fits; one more byte does not.
    p.insert("N", "v".repeat(65_535 - 6)).unwrap();
    assert_eq!(p.encoded_len(), 65_535);
    assert_eq!(
        p.insert("N", "v".repeat(65_535 - 5)),
        Err(ParamError::PairTooLarge {
            name: "N".into(),
            size: 65_536
        })
    );
    assert_eq!(p.get("N").map(<[u8]>::len), Some(65_535 - 6));
    // A long name is shortened in the error.
    let name = "N".repeat(70_000);
    assert_eq!(
        p.insert(&name, ""),
        Err(ParamError::PairTooLarge {
            name: format!("{}...", "N".repeat(64)),
            size: 4 + 1 + 70_000
        })
    );
    assert_eq!(p.len(), 1);
}

#[test]
fn params_content_length() {
    let mut p = Params::new();
    assert_eq!(p.content_length(), Ok(None));
    p.insert("CONTENT_LENGTH", "").unwrap();
    assert_eq!(p.content_length(), Ok(None));
    p.insert("CONTENT_LENGTH", "0").unwrap();
    assert_eq!(p.content_length(), Ok(Some(0)));
    p.insert("CONTENT_LENGTH", "1048576").unwrap();
    assert_eq!(p.content_length(), Ok(Some(1_048_576)));
    for bad in ["x", "1.5", "-0", "1e3", "0x10", "18446744073709551616"] {
        p.insert("CONTENT_LENGTH", bad).unwrap();
        assert_eq!(
            p.content_length(),
            Err(UsageError::InvalidContentLength),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// split_path.
// ---------------------------------------------------------------------------------------

fn split(path: &[u8]) -> Result<Option<(String, String)>, PathError> {
    split_path(path, b".php").map(|o| {
        o.map(|s| {
            (
                String::from_utf8_lossy(s.script_name).into_owned(),
                String::from_utf8_lossy(s.path_info).into_owned(),
            )
        })
    })
}

fn some(script: &str, info: &str) -> Result<Option<(String, String)>, PathError> {
    Ok(Some((script.to_string(), info.to_string())))
}

#[test]
fn split_path_nginx_cases() {
    assert_eq!(split(b"/index.php"), some("/index.php", ""));
    assert_eq!(split(b"/index.php/"), some("/index.php", "/"));
    assert_eq!(
        split(b"/app/index.php/users/7"),
        some("/app/index.php", "/users/7")
    );
    assert_eq!(split(b"/a/b/c.php/d/e"), some("/a/b/c.php", "/d/e"));
    // The first segment that ends with the extension wins.
    assert_eq!(split(b"/a.php/b.php"), some("/a.php", "/b.php"));
    assert_eq!(split(b"/a.php/b.php/c"), some("/a.php", "/b.php/c"));
    // A segment that merely contains it does not end with it.
    assert_eq!(split(b"/a.phpx/b.php"), some("/a.phpx/b.php", ""));
    assert_eq!(split(b"/a.phpx/b.php/c"), some("/a.phpx/b.php", "/c"));
    assert_eq!(split(b"/a.php.jpg"), Ok(None));
    assert_eq!(split(b"/dir.php/x.jpg"), some("/dir.php", "/x.jpg"));
    assert_eq!(split(b"/x.php.php"), some("/x.php.php", ""));
    // No match.
    assert_eq!(split(b"/"), Ok(None));
    assert_eq!(split(b"/static/style.css"), Ok(None));
    assert_eq!(split(b"/php/index"), Ok(None));
    // Other extensions; an empty one never matches.
    assert_eq!(
        split_path(b"/cgi/run.fcgi/x", b".fcgi"),
        Ok(Some(SplitPath {
            script_name: b"/cgi/run.fcgi",
            path_info: b"/x"
        }))
    );
    assert_eq!(split_path(b"/a.php", b""), Ok(None));
}

#[test]
fn split_path_security_cases() {
    // CVE-2019-11043: `%0a` decoded to LF emptied PATH_INFO in nginx's regex.
    assert_eq!(
        split(b"/index.php/\ntest"),
        Err(PathError::ForbiddenByte(b'\n'))
    );
    assert_eq!(
        split(b"/index.php\n/x"),
        Err(PathError::ForbiddenByte(b'\n'))
    );
    assert_eq!(
        split(b"/index.php/a\rb"),
        Err(PathError::ForbiddenByte(b'\r'))
    );
    // NUL: PHP would read `/shell.jpg` as the whole name.
    assert_eq!(split(b"/shell.jpg\0.php"), Err(PathError::ForbiddenByte(0)));
    // Forbidden bytes are found even without a match, and before anything else.
    assert_eq!(split(b"/static\0"), Err(PathError::ForbiddenByte(0)));
    assert_eq!(split(b"rel\n"), Err(PathError::ForbiddenByte(b'\n')));
    // Byte-exact matching: no case folding, no Unicode look-alikes.
    assert_eq!(split(b"/shell.PHP"), Ok(None));
    assert_eq!(split(b"/shell.Php/x"), Ok(None));
    assert_eq!(split("/shell.\u{ff50}hp".as_bytes()), Ok(None)); // full-width p
    assert_eq!(
        split("/shell.\u{ff50}hp/x.php".as_bytes()),
        some("/shell.\u{ff50}hp/x.php", "")
    );
    // A script name that is the extension alone.
    assert_eq!(split(b"/.php"), Err(PathError::EmptyScriptName));
    assert_eq!(split(b"/.php/x"), Err(PathError::EmptyScriptName));
    assert_eq!(split(b"/dir/.php"), Err(PathError::EmptyScriptName));
    assert_eq!(split_path(b"/x/y", b"/x"), Err(PathError::EmptyScriptName));
    // Relative paths.
    assert_eq!(split(b"index.php"), Err(PathError::NotAbsolute));
    assert_eq!(split(b""), Err(PathError::NotAbsolute));
    assert_eq!(split_path(b"x", b""), Err(PathError::NotAbsolute));
}

// ---------------------------------------------------------------------------------------
// The `http` feature.
// ---------------------------------------------------------------------------------------

#[cfg(feature = "http")]
mod http_feature {
    use bytes::Bytes;
    use fcgi_proto::params::HeaderPolicy;
    use fcgi_proto::response::HeadParser;
    use fcgi_proto::{ParamError, ParamsBuilder, ResponseHead};

    use super::{list, pairs};

    fn request(builder: http::request::Builder) -> http::request::Parts {
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn from_http_request_parts() {
        let parts = request(
            http::Request::post("http://example.com:8080/form.php?x=1&y=2")
                .version(http::Version::HTTP_11)
                .header("host", "example.com:8080")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("content-length", "3")
                .header("x-trace", "a")
                .header("cookie", "k=1")
                .header("x-trace", "b")
                .header("cookie", "l=2")
                .header("proxy", "http://evil.example/")
                .header("x_under", "dropped")
                .header("transfer-encoding", "chunked") // framing: never a param
                .header("x-bin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap()),
        );
        let params = ParamsBuilder::from_http(&parts)
            .script_filename("/srv/www/form.php")
            .build()
            .unwrap();
        assert_eq!(
            list(&params)
                .into_iter()
                .filter(|(n, _)| n != "HTTP_X_BIN")
                .collect::<Vec<_>>(),
            pairs(&[
                ("SCRIPT_FILENAME", "/srv/www/form.php"),
                ("QUERY_STRING", "x=1&y=2"),
                ("REQUEST_METHOD", "POST"),
                ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
                ("CONTENT_LENGTH", "3"),
                ("SCRIPT_NAME", "/form.php"),
                ("REQUEST_URI", "/form.php?x=1&y=2"),
                ("DOCUMENT_URI", "/form.php"),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("REQUEST_SCHEME", "http"),
                ("GATEWAY_INTERFACE", "CGI/1.1"),
                ("SERVER_SOFTWARE", "fcgi"),
                ("SERVER_NAME", "example.com"),
                ("REDIRECT_STATUS", "200"),
                ("HTTP_HOST", "example.com:8080"),
                ("HTTP_X_TRACE", "a, b"),
                ("HTTP_COOKIE", "k=1; l=2"),
            ])
        );
        assert_eq!(params.get("HTTP_X_BIN"), Some(&b"caf\xe9"[..]));
        assert_eq!(params.content_length(), Ok(Some(3)));

        // Versions.
        for (version, protocol) in [
            (http::Version::HTTP_10, "HTTP/1.0"),
            (http::Version::HTTP_11, "HTTP/1.1"),
            (http::Version::HTTP_2, "HTTP/2.0"),
        ] {
            let parts = request(http::Request::get("/").version(version));
            let p = ParamsBuilder::from_http(&parts).build().unwrap();
            assert_eq!(p.get("SERVER_PROTOCOL"), Some(protocol.as_bytes()));
        }
        // An absolute URI without a path.
        let parts = request(http::Request::get("http://example.com"));
        let p = ParamsBuilder::from_http(&parts).build().unwrap();
        assert_eq!(p.get("REQUEST_URI"), Some(&b"/"[..]));
        assert_eq!(p.get("QUERY_STRING"), Some(&b""[..]));
        // Builder settings after from_http still apply; a bad Content-Length fails.
        let parts = request(http::Request::put("/u.php").header("content-length", "x"));
        assert_eq!(
            ParamsBuilder::from_http(&parts).build(),
            Err(ParamError::InvalidContentLength)
        );
        let p = ParamsBuilder::from_http(&parts)
            .content_length(0)
            .build()
            .unwrap();
        assert_eq!(p.get("REQUEST_METHOD"), Some(&b"PUT"[..]));
        assert_eq!(p.get("CONTENT_LENGTH"), Some(&b"0"[..]));
    }

    fn parse(head: &'static [u8]) -> ResponseHead {
        HeadParser::new(8192)
            .feed(Bytes::from_static(head))
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn header_policy_after_from_http_applies() {
        let parts = request(
            http::Request::get("/server.php")
                .header("x-user_id", "7")
                .header("proxy", "http://proxy.example:3128/")
                .header("x-trace", "t"),
        );
        let mut policy = HeaderPolicy::default();
        policy.allow_underscores = true;
        policy.drop_proxy = false;
        let p = ParamsBuilder::from_http(&parts)
            .header_policy(policy)
            .build()
            .unwrap();
        assert_eq!(p.get("HTTP_X_USER_ID"), Some(&b"7"[..]));
        assert_eq!(
            p.get("HTTP_PROXY"),
            Some(&b"http://proxy.example:3128/"[..])
        );
        assert_eq!(p.get("HTTP_X_TRACE"), Some(&b"t"[..]));

        let p = ParamsBuilder::from_http(&parts).build().unwrap();
        assert!(!p.contains("HTTP_X_USER_ID") && !p.contains("HTTP_PROXY"));
        assert_eq!(p.get("HTTP_X_TRACE"), Some(&b"t"[..]));
    }

    #[test]
    fn response_head_to_http_parts() {
        let head = parse(
            b"Status: 404 Not Found\r\nContent-type: text/html\r\nSet-Cookie: a=1\r\nX-Bin: caf\xe9\r\nset-cookie: b=2\r\n\r\n",
        );
        let parts = head.to_http_parts().unwrap();
        assert_eq!(parts.status, http::StatusCode::NOT_FOUND);
        assert_eq!(parts.version, http::Version::HTTP_11);
        assert_eq!(parts.headers.len(), 4);
        assert_eq!(parts.headers["content-type"], "text/html");
        assert_eq!(
            parts
                .headers
                .get_all("set-cookie")
                .iter()
                .collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(parts.headers["x-bin"].as_bytes(), b"caf\xe9");
        assert!(!parts.headers.contains_key("status"));

        // The status rules carry over.
        let parts = parse(b"Location: https://example.com/\r\n\r\n")
            .to_http_parts()
            .unwrap();
        assert_eq!(parts.status, http::StatusCode::FOUND);
        assert_eq!(parts.headers["location"], "https://example.com/");
        let parts = parse(b"\r\n").to_http_parts().unwrap();
        assert_eq!(parts.status, http::StatusCode::OK);
        assert!(parts.headers.is_empty());
        let parts = parse(b"Status: 599\r\n\r\n").to_http_parts().unwrap();
        assert_eq!(parts.status.as_u16(), 599);
    }

    #[test]
    fn response_head_to_gateway_parts() {
        let head = parse(
            b"Status: 201 Made\r\nConnection: x-conn\r\nX-Conn: 1\r\nKeep-Alive: timeout=5\r\n\
              Transfer-Encoding: chunked\r\nUpgrade: websocket\r\nSet-Cookie: a=1\r\n\
              Set-Cookie: b=2\r\nSet-Cookie: c=3\r\nLocation: /next\r\n\r\n",
        );
        let parts = head.to_gateway_parts().unwrap();
        assert_eq!(parts.status.as_u16(), 201);
        let names: Vec<_> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["set-cookie", "location"]);
        assert_eq!(
            parts
                .headers
                .get_all("set-cookie")
                .iter()
                .collect::<Vec<_>>(),
            ["a=1", "b=2", "c=3"]
        );
        // A local redirect without Status is passed on as 302, as nginx does.
        let parts = parse(b"Location: /login\r\n\r\n")
            .to_gateway_parts()
            .unwrap();
        assert_eq!(parts.status, http::StatusCode::FOUND);
        assert_eq!(parts.headers["location"], "/login");
    }
}
