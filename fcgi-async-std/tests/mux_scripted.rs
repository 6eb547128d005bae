//! Multiplexed connections against a scripted server (a thread with a blocking unix
//! socket), where each record the client sends can be checked: a dropped request is
//! aborted alone with `ABORT_REQUEST` and its id reused after its `END_REQUEST`; an
//! idle connection closes after the idle timeout; a dropped client closes its
//! connections. On async-std and smol.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::Rt;
use fcgi_async_std::{Address, Client, Options, Request};
use fcgi_proto::record::{encode_record, EndRequestBody, RecordType};
use fcgi_proto::{nv, ParamsBuilder, ProtocolStatus};

on_both_runtimes!(
    a_dropped_request_is_aborted_alone,
    an_idle_connection_closes_after_the_idle_timeout,
);

/// A record as a scripted server reads it: type, request id, content.
type Record = (RecordType, u16, Vec<u8>);

fn read_record(s: &mut UnixStream) -> Option<Record> {
    let mut header = [0u8; 8];
    s.read_exact(&mut header).ok()?;
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let mut content = vec![0; len + usize::from(header[6])];
    s.read_exact(&mut content).ok()?;
    content.truncate(len);
    Some((
        RecordType(header[1]),
        u16::from_be_bytes([header[2], header[3]]),
        content,
    ))
}

fn write_record(s: &mut UnixStream, t: RecordType, id: u16, content: &[u8]) {
    let mut out = BytesMut::new();
    encode_record(&mut out, t, id, content);
    s.write_all(&out).unwrap();
}

fn end(s: &mut UnixStream, id: u16) {
    let body = EndRequestBody {
        app_status: 0,
        protocol_status: ProtocolStatus::REQUEST_COMPLETE,
    };
    write_record(s, RecordType::END_REQUEST, id, &body.encode());
}

/// Reads records until the empty STDIN of `count` requests; answers their ids.
fn read_requests(s: &mut UnixStream, count: usize) -> Vec<u16> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let (t, id, content) = read_record(s).expect("a request");
        if t == RecordType::STDIN && content.is_empty() {
            ids.push(id);
        }
    }
    ids
}

/// Whether the client closes the connection within 5 s (nothing else comes).
fn closed_by_client(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    matches!(s.read(&mut byte), Ok(0))
}

/// A multiplexing server scripted by `serve` on the request connection, after it
/// answered `GET_VALUES` on the first connection.
fn scripted<F>(serve: F) -> (PathBuf, JoinHandle<()>)
where
    F: FnOnce(UnixStream) + Send + 'static,
{
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "fcgi-async-std-mux-{}-{}.sock",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut values, _) = listener.accept().unwrap();
        let (t, id, _) = read_record(&mut values).unwrap();
        assert_eq!((t, id), (RecordType::GET_VALUES, 0));
        let mut answer = Vec::new();
        nv::encode_pair(&mut answer, b"FCGI_MPXS_CONNS", b"1").unwrap();
        nv::encode_pair(&mut answer, b"FCGI_MAX_REQS", b"10").unwrap();
        write_record(&mut values, RecordType::GET_VALUES_RESULT, 0, &answer);
        drop(values);
        let (conn, _) = listener.accept().unwrap();
        serve(conn);
    });
    (path, server)
}

fn get() -> Request {
    Request::new(ParamsBuilder::new("GET", "/x").build().unwrap())
}

fn client(path: &Path, options: Options) -> Client {
    let mut options = options;
    options.multiplex = true;
    Client::with_upstreams([Address::Unix(path.to_path_buf())], options).unwrap()
}

async fn a_dropped_request_is_aborted_alone(rt: Rt) {
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<()>();
    let (path, server) = scripted(move |mut s| {
        assert_eq!(read_requests(&mut s, 1), [1]);
        seen_tx.send(()).unwrap();
        assert_eq!(read_requests(&mut s, 1), [2]);
        write_record(
            &mut s,
            RecordType::STDOUT,
            1,
            b"Status: 200 OK\r\n\r\nfirst",
        );
        // The client drops request 1 after its first piece: ABORT_REQUEST for it.
        dropped_rx.recv().unwrap();
        let (t, id, _) = read_record(&mut s).unwrap();
        assert_eq!((t, id), (RecordType::ABORT_REQUEST, 1));
        // Its late records are dropped; request 2 is untouched.
        write_record(&mut s, RecordType::STDOUT, 1, b" late");
        write_record(
            &mut s,
            RecordType::STDOUT,
            2,
            b"Status: 200 OK\r\n\r\nsecond",
        );
        write_record(&mut s, RecordType::STDERR, 1, b"late stderr");
        end(&mut s, 1);
        end(&mut s, 2);
        // The next request takes the next id, never an ended one's.
        assert_eq!(read_requests(&mut s, 1), [3]);
        write_record(&mut s, RecordType::STDOUT, 3, b"\r\nthird");
        end(&mut s, 3);
        // The client is dropped: its driver closes the connection.
        assert!(closed_by_client(&mut s), "the connection stayed open");
    });
    let client = client(&path, Options::default());
    // The first connection answers GET_VALUES: ask before the first request,
    // which does not wait for the answer on its own.
    client.discover_multiplexing().await;
    let first = {
        let client = client.clone();
        rt.spawn(async move {
            let mut stream = client.request_streaming(get()).await.unwrap();
            assert_eq!(&stream.chunk().await.unwrap().unwrap()[..], b"first");
        })
    };
    rt.unblock(move || seen_rx.recv().unwrap()).await;
    let second = {
        let client = client.clone();
        rt.spawn(async move { client.request(get()).await.unwrap() })
    };
    first.await;
    dropped_tx.send(()).unwrap();
    let second = second.await;
    assert_eq!(&second.body[..], b"second");
    assert!(second.stderr.is_empty());
    let third = client.request(get()).await.unwrap();
    assert_eq!(&third.body[..], b"third");
    assert_eq!(client.connections_opened(), 1);
    drop(client);
    rt.unblock(move || server.join()).await.unwrap();
    let _ = std::fs::remove_file(&path);
}

async fn an_idle_connection_closes_after_the_idle_timeout(rt: Rt) {
    let (path, server) = scripted(|mut s| {
        assert_eq!(read_requests(&mut s, 1), [1]);
        write_record(&mut s, RecordType::STDOUT, 1, b"\r\nok");
        end(&mut s, 1);
        assert!(closed_by_client(&mut s), "the connection stayed open");
    });
    let mut options = Options::default();
    options.idle_timeout = Some(Duration::from_millis(200));
    let client = client(&path, options);
    // The first connection answers GET_VALUES: ask before the first request,
    // which does not wait for the answer on its own.
    client.discover_multiplexing().await;
    assert_eq!(&client.request(get()).await.unwrap().body[..], b"ok");
    assert_eq!(client.open_connections(), 1);
    let start = Instant::now();
    rt.unblock(move || server.join()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    // The count drops right after the socket closes.
    let deadline = Instant::now() + Duration::from_secs(1);
    while client.open_connections() > 0 && Instant::now() < deadline {
        common::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.open_connections(), 0);
    let _ = std::fs::remove_file(&path);
}
