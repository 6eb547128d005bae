//! Hostile HTTP clients against `fcgi serve` (the real binary) in front of a real
//! php-fpm pool of 8 workers, one named case at a time. While a case runs, a visitor
//! keeps asking a small PHP page on connections of its own; the case passes when every
//! visit is answered within a bound well under a second, the gateway's resident memory
//! stays bounded, the attackers are cut off in their time, and afterwards all 8 workers
//! answer at once (no upstream connection is left held).
//!
//! The header, body and keep-alive timeouts are set to 2 s here (the defaults are
//! 10-60 s) so that a case ends in seconds; what is tested is that they hold, not their
//! length. `FCGI_HOSTILE_DEFAULTS=1` runs the suite with the default timeouts too, in a
//! few minutes. The send timeout keeps its default (30 s), so that the slow readers stay
//! connected while the case checks that they hold no php-fpm worker.
//!
//! The gateway runs with its defaults otherwise: 1024 client connections at most, a
//! listen queue of 4096. The slowloris case opens 3000 connections at once and the idle
//! case holds 2000 (the test raises its soft descriptor limit to the hard one when it
//! is lower than that needs, and fails saying so when the hard one is lower still).
//! Both go past the connection limit, where accepting pauses and idle connections are
//! reclaimed. These two once made a visit wait about 1 s now and then: its SYN was
//! dropped by a full listen queue (128, as `TcpListener::bind` gives it) while the
//! gateway accepted a burst, and at the connection limit idle connections were not
//! reclaimed at all (a reclaim future that never completed).
//!
//! The visit bound holds on a 2-CPU machine with other work on it (20 runs of 20 at a
//! load average of 4-7, 5 of 5 with two busy loops besides), with the debug build that
//! `cargo test` makes. It did not hold with another benchmark saturating the machine
//! (load average 12-16): 8 runs of 20 saw one visit of 0.76-1.2 s in the slowloris or
//! slow-read case. The slow slowloris visits had connected in 60 us: they waited for
//! CPU, behind the thousands of connections accepted and closed before theirs, not in
//! the kernel's SYN or accept queue.
//!
//! The slow readers' responses (50 MB each) go to temporary files past 256 KiB in
//! memory; the case checks that they leave php-fpm at its speed, that one of them
//! arrives byte for byte, and that the files are gone with their responses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_testkit::PhpFpm;

mod support;
use support::start;

/// Whether the gateway keeps its default client timeouts (10 s head, 30 s body, 60 s
/// keep-alive): `FCGI_HOSTILE_DEFAULTS=1`, a run of a few minutes. Otherwise they are
/// 2 s, and the suite takes seconds.
fn default_timeouts() -> bool {
    std::env::var_os("FCGI_HOSTILE_DEFAULTS").is_some_and(|v| v == "1")
}

/// How long an attacker may wait to be answered or cut off: its timeout and then some.
fn cut_off_within() -> Duration {
    if default_timeouts() {
        Duration::from_secs(70)
    } else {
        Duration::from_secs(10)
    }
}

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
    after: fn(&mut Held, &Gateway),
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
            after: |held, _| closed_or_408(held),
        },
        Case {
            name: "slowloris: 3000 half request heads, opened at once",
            attack: |addr| {
                (0..SLOWLORIS)
                    .map(|_| {
                        let mut s = connect(addr);
                        // The gateway may have closed it already (reclaimed at the
                        // connection limit): that is one of the outcomes tested.
                        let _ = s.write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                        s
                    })
                    .collect()
            },
            // Each is closed: reclaimed at the connection limit, or at the header
            // timeout (hyper's backstop answers 408).
            after: |held, _| closed_or_408(held),
        },
        Case {
            name: "2000 idle keep-alive connections, each after one request",
            attack: |addr| {
                let mut held = Vec::with_capacity(IDLE);
                let mut answered = 0;
                // In bursts of 100 connections opened at once, each with its request
                // written at once; past the connection limit (1024) the gateway closes
                // the idle ones to take the next.
                for _ in 0..IDLE / 100 {
                    let mut burst: Held = (0..100)
                        .map(|_| {
                            let mut s = connect(addr);
                            let _ = s.write_all(b"GET /idle.txt HTTP/1.1\r\nHost: x\r\n\r\n");
                            s
                        })
                        .collect();
                    for s in &mut burst {
                        answered += usize::from(read_answer(s, IDLE_BODY));
                    }
                    held.append(&mut burst);
                }
                println!("idle connections: {answered} of {IDLE} answered before going idle");
                assert!(answered >= IDLE / 2, "only {answered} of {IDLE} answered");
                held
            },
            // Each is closed by the gateway (reclaimed, or at the keep-alive timeout)
            // with nothing more sent.
            after: |held, _| {
                for s in held.iter_mut() {
                    let more = read_until_closed(s, cut_off_within());
                    assert!(more.is_empty(), "{}", String::from_utf8_lossy(&more));
                }
            },
        },
        Case {
            name: "slow read: 10 GETs of a 50 MB response read through a tiny receive window",
            attack: |addr| {
                (0..10)
                    .map(|_| {
                        let socket = socket2::Socket::new(
                            socket2::Domain::IPV4,
                            socket2::Type::STREAM,
                            None,
                        )
                        .unwrap();
                        // Before connecting, so that the window is small from the start.
                        socket.set_recv_buffer_size(4096).unwrap();
                        socket.connect(&addr.into()).unwrap();
                        let mut s = TcpStream::from(socket);
                        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                        // HTTP/1.0: the body ends where the connection does.
                        s.write_all(
                            format!("GET /large.php?bytes={SLOW_READ_LEN} HTTP/1.0\r\n\r\n")
                                .as_bytes(),
                        )
                        .unwrap();
                        // One after the other: ten 50 MB responses at once would keep
                        // all 8 workers busy producing them, for seconds on a loaded
                        // machine, and the visitor would wait for that, not for the
                        // readers. A gateway that streamed to the readers would still
                        // have 8 of them holding the 8 connections after the eighth.
                        wait_for_php(addr);
                        s
                    })
                    .collect()
            },
            after: slow_read_after,
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
            after: |held, _| {
                let answer = read_until_closed(&mut held[0], cut_off_within());
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
            after: |held, _| {
                let answer = read_until_closed(&mut held[0], cut_off_within());
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
            after: |held, _| {
                let answer = read_until_closed(&mut held[0], cut_off_within());
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
            after: |_, _| {},
        },
    ]
}

/// The gateway under test.
struct Gateway {
    addr: SocketAddr,
    pid: u32,
}

/// The length of the slow readers' response: far past the 256 KiB a response may hold
/// in memory.
const SLOW_READ_LEN: u64 = 50_000_000;

/// Waits until php-fpm has no request in progress but the one asking: the gateway has
/// read every response to its end. At most 20 s: less than the send timeout (30 s),
/// which would free a worker held by a slow reader as well.
fn wait_for_php(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while active_workers(addr) > 1 {
        assert!(
            Instant::now() < deadline,
            "php-fpm still busy with the slow readers' responses"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The ten slow readers have had their responses sent by php-fpm in full (into the
/// gateway's memory and temporary files), which they could not have made it do. They
/// take 1 KiB each every 100 ms (10 KB/s, 80 minutes for the whole response) for a
/// while, then, still connected, all 8 workers answer at once; one reader takes the
/// rest of its response at full speed and checks every byte; once they are gone, the
/// gateway holds no temporary file.
fn slow_read_after(held: &mut Held, gateway: &Gateway) {
    let mut taken = vec![Vec::new(); held.len()];
    let mut buf = [0u8; 1024];
    for _ in 0..5 {
        for (s, taken) in held.iter_mut().zip(&mut taken) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "a slow reader was cut off");
            taken.extend_from_slice(&buf[..n]);
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        temp_files(gateway.pid) > 0,
        "the responses were not buffered in temporary files"
    );
    all_workers_at_once(gateway.addr, "slow read, the readers connected");
    // One response, to its end: byte for byte what large.php sent.
    let s = &mut held[0];
    socket2::SockRef::from(&*s)
        .set_recv_buffer_size(1 << 20)
        .unwrap();
    let mut response = std::mem::take(&mut taken[0]);
    let head_end = loop {
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed in the head");
        response.extend_from_slice(&buf[..n]);
    };
    assert!(
        response.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&response[..head_end])
    );
    let mut offset = 0u64;
    let mut expected = Vec::new();
    let mut check = |piece: &[u8], offset: &mut u64| {
        expected.resize(piece.len(), 0);
        fcgi_testkit::fill_large_body(*offset, &mut expected);
        assert!(
            piece == &expected[..],
            "the body differs near byte {offset}"
        );
        *offset += piece.len() as u64;
    };
    check(&response[head_end..], &mut offset);
    let mut big = vec![0u8; 1 << 16];
    loop {
        let n = s.read(&mut big).unwrap();
        if n == 0 {
            break;
        }
        check(&big[..n], &mut offset);
    }
    assert_eq!(offset, SLOW_READ_LEN);
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp_files(gateway.pid) > 0 {
        assert!(
            Instant::now() < deadline,
            "temporary files still open after their responses"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// php-fpm's workers running a script or finishing its response, this one's included
/// (`active.php`).
fn active_workers(addr: SocketAddr) -> u32 {
    let mut s = connect(addr);
    s.write_all(b"GET /active.php HTTP/1.0\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(30));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    answer
        .rsplit("\r\n\r\n")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{answer}"))
}

/// The gateway's open temporary files (anonymous: deleted from their creation).
fn temp_files(pid: u32) -> usize {
    let temp = std::env::temp_dir();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(&temp) && target.to_string_lossy().ends_with(" (deleted)")
        })
        .count()
}

/// 8 visits at once, one per php-fpm worker, each within the bound: no upstream
/// connection is held.
fn all_workers_at_once(addr: SocketAddr, when: &str) {
    let together: Vec<_> = (0..8).map(|_| thread::spawn(move || visit(addr))).collect();
    for visit in together {
        let (status, took) = visit.join().unwrap();
        assert_eq!(status, 200, "{when}");
        assert!(took < VISIT_BOUND, "{when}: a visit took {took:?}");
    }
}

/// The half heads of the slowloris case.
const SLOWLORIS: usize = 3000;
/// The idle keep-alive connections of their case.
const IDLE: usize = 2000;
/// The body of `idle.txt`, the static file the idle connections ask for.
const IDLE_BODY: &[u8] = b"idle keep-alive\n";

/// Reads one answer ending in `body`: `false` when the gateway closed the connection
/// before (it may, to stay under its connection limit).
fn read_answer(s: &mut TcpStream, body: &[u8]) -> bool {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(body) {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    true
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Each attacker is answered 408 or closed without an answer, in its time.
fn closed_or_408(held: &mut Held) {
    for s in held.iter_mut() {
        let answer = read_until_closed(s, cut_off_within());
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
}

/// Reads until the gateway closes the connection (or `bound` passes: a failure).
fn read_until_closed(s: &mut TcpStream, bound: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(bound)).unwrap();
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
    // Closed with a reset: no TIME_WAIT left on the visitor's side, where thousands of
    // visits a run would otherwise use up 127.0.0.2's ports for a minute.
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
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

/// The soft limit on open descriptors of this process (which `fcgi serve` inherits).
fn open_files_limit() -> (u64, String) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].parse().unwrap_or(u64::MAX), fields[4].to_owned())
}

/// Makes sure this process (the attackers) and the gateway (its child, up to its 1024
/// connections and its upstream ones) have the descriptors the cases need: raises the
/// soft limit to the hard one with `prlimit` when it is lower.
fn enough_descriptors() {
    let needed = (SLOWLORIS.max(IDLE) + 1100) as u64;
    let (soft, hard) = open_files_limit();
    if soft >= needed {
        return;
    }
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status();
    let (soft, _) = open_files_limit();
    assert!(
        soft >= needed,
        "the cases need {needed} open descriptors; the limit is {soft} (ulimit -n)"
    );
}

#[test]
fn hostile_clients() {
    enough_descriptors();
    let fpm = PhpFpm::builder().max_children(8).start();
    std::fs::write(fpm.docroot().join("idle.txt"), IDLE_BODY).unwrap();
    std::fs::write(
        fpm.docroot().join("active.php"),
        // Per worker: the pool's counters are refreshed once a second only. A worker
        // that holds a kept FastCGI connection between requests is "Reading headers".
        "<?php $n = 0; foreach (fpm_get_status()['procs'] as $p) { \
         $n += in_array($p['state'], ['Running', 'Finishing']); } echo $n;",
    )
    .unwrap();
    let socket = format!("unix:{}", fpm.unix_socket().display());
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--root",
        fpm.docroot().to_str().unwrap(),
        "--connections",
        "8",
        "--max-body",
        "1M",
    ];
    if !default_timeouts() {
        args.extend([
            "--client-header-timeout",
            "2",
            "--client-body-timeout",
            "2",
            "--keepalive-timeout",
            "2",
        ]);
    }
    args.push(&socket);
    let serve = start(&args);
    let (addr, pid) = (serve.addr, serve.child.id());
    let gateway = Gateway { addr, pid };
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
        let sampler = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss(pid));
                    thread::sleep(Duration::from_millis(10));
                }
                peak
            })
        };
        let mut held = (case.attack)(addr);
        (case.after)(&mut held, &gateway);
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
        drop(held);
        stop.store(true, Ordering::Relaxed);
        let slowest = visitor.join().unwrap();
        let peak = sampler.join().unwrap().max(rss(pid));
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
        all_workers_at_once(addr, case.name);
    }
}
