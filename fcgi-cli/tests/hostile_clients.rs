//! Hostile HTTP clients against `fcgi serve` (the real binary) in front of a real
//! php-fpm pool of 8 workers, one named case at a time. While a case runs, a visitor
//! keeps asking a small PHP page on connections of its own; the case passes when every
//! visit is answered within a bound well under a second, the gateway's resident memory
//! stays bounded, the attackers are cut off in their time, and afterwards all 8 workers
//! answer at once (no upstream connection is left held).
//!
//! The client timeouts are set to 2 s here (the defaults are 10-60 s) so that a case
//! ends in seconds; what is tested is that they hold, not their length.
//!
//! Not here yet, because they do not pass every time: slowloris (300 half heads) and
//! thousands of idle connections opened at once. A visit that arrives during such a
//! burst of connections sometimes waits about 1 s, its SYN retransmitted (with 1000 idle
//! connections in most runs, with 300 half heads about once in six on a loaded
//! machine); the gateway before the client limits were added showed no such wait in the
//! same experiment. That is not understood yet, and a case that fails now and then is
//! not kept as a case that passes.
//! Nor a slow reader of a response larger than the response buffer (256 KiB in
//! memory): it still holds its upstream connection until the send timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_testkit::PhpFpm;

mod support;
use support::start;

/// The longest a visit may take while a case runs.
const VISIT_BOUND: Duration = Duration::from_millis(750);
/// The most the gateway's resident memory may grow during a case.
const RSS_GROWTH_BOUND: u64 = 64 << 20;

/// What an attack leaves behind: connections to hold until the case ends.
type Held = Vec<TcpStream>;

/// A named hostile client.
struct Case {
    name: &'static str,
    /// Starts the attack against the gateway at `addr`; returns what it holds.
    attack: fn(SocketAddr) -> Held,
    /// Checks, once the case has run, what the gateway did to the attackers.
    after: fn(&mut Held),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "slow upload: 10 POSTs announcing 100000 bytes, sending 10",
            attack: |addr| {
                (0..10)
                    .map(|_| {
                        let mut s = connect(addr);
                        s.write_all(
                            b"POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789",
                        )
                        .unwrap();
                        s
                    })
                    .collect()
            },
            // The body timeout answers 408, or closes.
            after: |held| {
                for s in held.iter_mut() {
                    let answer = read_until_closed(s, Duration::from_secs(10));
                    assert!(
                        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
                        "{}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            },
        },
        Case {
            name: "a 1 MiB request head",
            attack: |addr| {
                let mut s = connect(addr);
                let mut head = b"GET /hello.php HTTP/1.1\r\nHost: x\r\n".to_vec();
                for i in 0..16_384 {
                    head.extend_from_slice(
                        format!("X-Filler-{i:05}: {}\r\n", "y".repeat(40)).as_bytes(),
                    );
                }
                head.extend_from_slice(b"\r\n");
                let _ = s.write_all(&head);
                vec![s]
            },
            after: |held| {
                let answer = read_until_closed(&mut held[0], Duration::from_secs(10));
                assert!(
                    answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"),
                    "{}",
                    String::from_utf8_lossy(&answer)
                );
            },
        },
        Case {
            name: "a body over --max-body",
            attack: |addr| {
                let mut s = connect(addr);
                s.write_all(
                    b"POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
                )
                .unwrap();
                let _ = s.write_all(&vec![b'z'; 2_000_000]);
                vec![s]
            },
            after: |held| {
                let answer = read_until_closed(&mut held[0], Duration::from_secs(10));
                assert!(
                    answer.starts_with(b"HTTP/1.1 413"),
                    "{}",
                    String::from_utf8_lossy(&answer)
                );
            },
        },
        Case {
            name: "invalid chunked encoding",
            attack: |addr| {
                let mut s = connect(addr);
                s.write_all(
                    b"POST /echo.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n",
                )
                .unwrap();
                vec![s]
            },
            after: |held| {
                let answer = read_until_closed(&mut held[0], Duration::from_secs(10));
                assert!(
                    answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
                    "{}",
                    String::from_utf8_lossy(&answer)
                );
            },
        },
        Case {
            name: "clients that close mid-upload and mid-download",
            attack: |addr| {
                for _ in 0..20 {
                    let mut s = connect(addr);
                    s.write_all(
                        b"POST /echo.php HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n",
                    )
                    .unwrap();
                    s.write_all(&[b'u'; 100_000]).unwrap();
                    drop(s);
                    let mut s = connect(addr);
                    s.write_all(b"GET /large.php?bytes=20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let mut some = [0u8; 4096];
                    let _ = s.read(&mut some);
                    drop(s);
                }
                Vec::new()
            },
            after: |_| {},
        },
    ]
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads until the gateway closes the connection (or `bound` passes: a failure).
fn read_until_closed(s: &mut TcpStream, bound: Duration) -> Vec<u8> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        assert!(started.elapsed() < bound, "still open after {bound:?}");
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// One visit: GET /hello.php on a connection of its own from 127.0.0.2, which the
/// visitor closes once the (chunked) answer is complete: the status and the time.
///
/// Another address than the attackers', as a real visitor's: the gateway closes the
/// attackers' connections first, so it keeps their TIME_WAIT, and a visitor's
/// connection from the same address on a port that meets one of those waits for its
/// SYN's retransmission (1 s) in the kernel.
fn visit(addr: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s = TcpStream::from(socket);
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"\r\n0\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let status = std::str::from_utf8(&answer[9..12])
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        answer.ends_with(b"Hello, World!\r\n0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    (status, started.elapsed())
}

#[test]
fn hostile_clients() {
    let fpm = PhpFpm::builder().max_children(8).start();
    let socket = format!("unix:{}", fpm.unix_socket().display());
    let serve = start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        fpm.docroot().to_str().unwrap(),
        "--connections",
        "8",
        "--max-body",
        "1M",
        "--client-header-timeout",
        "2",
        "--client-body-timeout",
        "2",
        "--send-timeout",
        "2",
        "--keepalive-timeout",
        "2",
        &socket,
    ]);
    let (addr, pid) = (serve.addr, serve.child.id());
    let baseline = rss(pid);
    for case in cases() {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let visitor = {
            let (stop, count) = (stop.clone(), count.clone());
            thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    let (status, took) = visit(addr);
                    assert_eq!(status, 200);
                    slowest = slowest.max(took);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                slowest
            })
        };
        let mut held = (case.attack)(addr);
        (case.after)(&mut held);
        // Visits while the attackers still hold what they have: at least ten.
        let deadline = Instant::now() + Duration::from_secs(10);
        let before = count.load(Ordering::Relaxed);
        while count.load(Ordering::Relaxed) < before + 10 {
            assert!(
                Instant::now() < deadline,
                "{}: the visitor is stuck",
                case.name
            );
            thread::sleep(Duration::from_millis(1));
        }
        let peak = rss(pid);
        drop(held);
        stop.store(true, Ordering::Relaxed);
        let slowest = visitor.join().unwrap();
        let visits = count.load(Ordering::Relaxed);
        println!(
            "{}: {visits} visits, slowest {slowest:?}, RSS {} MiB (from {} MiB)",
            case.name,
            peak >> 20,
            baseline >> 20
        );
        assert!(visits > 0, "{}: no visit", case.name);
        assert!(
            slowest < VISIT_BOUND,
            "{}: a visit took {slowest:?}",
            case.name
        );
        assert!(
            peak < baseline + RSS_GROWTH_BOUND,
            "{}: RSS {} MiB from {} MiB",
            case.name,
            peak >> 20,
            baseline >> 20
        );
        // No upstream connection left held: 8 visits at once, one per worker.
        let together: Vec<_> = (0..8).map(|_| thread::spawn(move || visit(addr))).collect();
        for visit in together {
            let (status, took) = visit.join().unwrap();
            assert_eq!(status, 200, "{}", case.name);
            assert!(
                took < VISIT_BOUND,
                "{}: after, a visit took {took:?}",
                case.name
            );
        }
    }
}
