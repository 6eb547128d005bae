//! The kit's private nginx: it serves the given `server` block, passes PHP to the kit's
//! php-fpm with the system's `fastcgi_params`, logs into its own directory, and is gone
//! (process and directory) once dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fcgi_testkit::{Nginx, PhpFpm};

/// `GET path` over HTTP/1.0 (the server closes after the response); the whole response.
fn get(nginx: &Nginx, path: &str) -> String {
    let mut stream = TcpStream::connect(nginx.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_php_and_files_then_stops_on_drop() {
    let fpm = PhpFpm::shared();
    let docroot = fpm.docroot().to_str().unwrap();
    std::fs::write(fpm.docroot().join("plain.txt"), "just text\n").unwrap();
    let nginx = Nginx::start(&format!(
        "        root {docroot};
        location ~ \\.php$ {{
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{};
        }}",
        fpm.unix_socket().display()
    ));
    assert!(nginx.addr().ip().is_loopback());
    assert!(nginx.config().contains("master_process off;"));

    let hello = get(&nginx, "/hello.php");
    assert!(hello.starts_with("HTTP/1.1 200 OK\r\n"), "{hello}");
    assert!(hello.ends_with("\r\n\r\nHello, World!"), "{hello}");
    let file = get(&nginx, "/plain.txt");
    assert!(file.contains("\r\nContent-Type: text/plain\r\n"), "{file}");
    assert!(file.ends_with("\r\n\r\njust text\n"), "{file}");
    // The request went through the system's fastcgi_params.
    let server = get(&nginx, "/server.php?a=1");
    for param in [
        r#""QUERY_STRING":"a=1""#,
        r#""REQUEST_URI":"/server.php?a=1""#,
        r#""REDIRECT_STATUS":"200""#,
    ] {
        assert!(server.contains(param), "{param} missing: {server}");
    }
    assert!(get(&nginx, "/nothing.txt").starts_with("HTTP/1.1 404 "));
    assert!(nginx
        .access_log()
        .contains("\"GET /hello.php HTTP/1.0\" 200 "));

    let (pid, dir) = (nginx.pid(), nginx.dir().to_owned());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(nginx);
    let deadline = Instant::now() + Duration::from_secs(10);
    // nginx was the wrapper's child, reaped by it: its /proc entry goes.
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "nginx {pid} still runs after drop"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}
