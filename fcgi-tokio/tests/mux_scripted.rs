//! Multiplexed connections against a scripted server (a tokio unix listener), where each
//! record the client sends can be checked: a dropped request is aborted alone with
//! `ABORT_REQUEST` and its id reused after its `END_REQUEST`; an idle connection closes
//! after the idle timeout; a dropped client closes its connections.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fcgi_proto::record::{encode_record, EndRequestBody, RecordType};
use fcgi_proto::{nv, ParamsBuilder, ProtocolStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use fcgi_tokio::{Address, Client, Options, Request};

/// A record as a scripted server reads it: type, request id, content.
type Record = (RecordType, u16, Vec<u8>);

async fn read_record(s: &mut UnixStream) -> Option<Record> {
    let mut header = [0u8; 8];
    s.read_exact(&mut header).await.ok()?;
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let mut content = vec![0; len + usize::from(header[6])];
    s.read_exact(&mut content).await.ok()?;
    content.truncate(len);
    Some((
        RecordType(header[1]),
        u16::from_be_bytes([header[2], header[3]]),
        content,
    ))
}

async fn write_record(s: &mut UnixStream, t: RecordType, id: u16, content: &[u8]) {
    let mut out = BytesMut::new();
    encode_record(&mut out, t, id, content);
    s.write_all(&out).await.unwrap();
}

async fn end(s: &mut UnixStream, id: u16) {
    let body = EndRequestBody {
        app_status: 0,
        protocol_status: ProtocolStatus::REQUEST_COMPLETE,
    };
    write_record(s, RecordType::END_REQUEST, id, &body.encode()).await;
}

/// Reads records until the empty STDIN of `count` requests; answers their ids.
async fn read_requests(s: &mut UnixStream, count: usize) -> Vec<u16> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let (t, id, content) = read_record(s).await.expect("a request");
        if t == RecordType::STDIN && content.is_empty() {
            ids.push(id);
        }
    }
    ids
}

/// A multiplexing server scripted by `serve` on the request connection, after it
/// answered `GET_VALUES` on the first connection.
async fn scripted<F, Fut>(serve: F) -> (PathBuf, tokio::task::JoinHandle<()>)
where
    F: FnOnce(UnixStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "fcgi-tokio-mux-{}-{}.sock",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut values, _) = listener.accept().await.unwrap();
        let (t, id, _) = read_record(&mut values).await.unwrap();
        assert_eq!((t, id), (RecordType::GET_VALUES, 0));
        let mut answer = Vec::new();
        nv::encode_pair(&mut answer, b"FCGI_MPXS_CONNS", b"1").unwrap();
        nv::encode_pair(&mut answer, b"FCGI_MAX_REQS", b"10").unwrap();
        write_record(&mut values, RecordType::GET_VALUES_RESULT, 0, &answer).await;
        drop(values);
        let (conn, _) = listener.accept().await.unwrap();
        serve(conn).await;
    });
    (path, server)
}

fn get() -> Request {
    Request::new(ParamsBuilder::new("GET", "/x").build().unwrap())
}

fn client(path: &std::path::Path) -> Client {
    let mut options = Options::default();
    options.multiplex = true;
    Client::with_upstreams([Address::Unix(path.to_path_buf())], options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_is_aborted_alone() {
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<()>();
    let (path, server) = scripted(|mut s| async move {
        assert_eq!(read_requests(&mut s, 1).await, [1]);
        seen_tx.send(()).unwrap();
        assert_eq!(read_requests(&mut s, 1).await, [2]);
        write_record(
            &mut s,
            RecordType::STDOUT,
            1,
            b"Status: 200 OK\r\n\r\nfirst",
        )
        .await;
        // The client drops request 1 after its first piece: ABORT_REQUEST for it.
        dropped_rx.await.unwrap();
        let (t, id, _) = read_record(&mut s).await.unwrap();
        assert_eq!((t, id), (RecordType::ABORT_REQUEST, 1));
        // Its late records are dropped; request 2 is untouched.
        write_record(&mut s, RecordType::STDOUT, 1, b" late").await;
        write_record(
            &mut s,
            RecordType::STDOUT,
            2,
            b"Status: 200 OK\r\n\r\nsecond",
        )
        .await;
        write_record(&mut s, RecordType::STDERR, 1, b"late stderr").await;
        end(&mut s, 1).await;
        end(&mut s, 2).await;
        // The next request takes the next id, never an ended one's.
        assert_eq!(read_requests(&mut s, 1).await, [3]);
        write_record(&mut s, RecordType::STDOUT, 3, b"\r\nthird").await;
        end(&mut s, 3).await;
        // The client is dropped: its driver closes the connection.
        let eof = tokio::time::timeout(Duration::from_secs(5), read_record(&mut s)).await;
        assert!(matches!(eof, Ok(None)), "the connection stayed open");
    })
    .await;
    let client = client(&path);
    // The first connection answers GET_VALUES: ask before the first request,
    // which does not wait for the answer on its own.
    client.discover_multiplexing().await;
    let first = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut stream = client.request_streaming(get()).await.unwrap();
            assert_eq!(&stream.chunk().await.unwrap().unwrap()[..], b"first");
        })
    };
    seen_rx.await.unwrap();
    let second = {
        let client = client.clone();
        tokio::spawn(async move { client.request(get()).await.unwrap() })
    };
    first.await.unwrap();
    dropped_tx.send(()).unwrap();
    let second = second.await.unwrap();
    assert_eq!(&second.body[..], b"second");
    assert!(second.stderr.is_empty());
    let third = client.request(get()).await.unwrap();
    assert_eq!(&third.body[..], b"third");
    assert_eq!(client.connections_opened(), 1);
    drop(client);
    server.await.unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_closes_after_the_idle_timeout() {
    let (path, server) = scripted(|mut s| async move {
        assert_eq!(read_requests(&mut s, 1).await, [1]);
        write_record(&mut s, RecordType::STDOUT, 1, b"\r\nok").await;
        end(&mut s, 1).await;
        let eof = tokio::time::timeout(Duration::from_secs(5), read_record(&mut s)).await;
        assert!(matches!(eof, Ok(None)), "the connection stayed open");
    })
    .await;
    let mut options = Options::default();
    options.multiplex = true;
    options.idle_timeout = Some(Duration::from_millis(200));
    let client = Client::with_upstreams([Address::Unix(path.to_path_buf())], options).unwrap();
    // The first connection answers GET_VALUES: ask before the first request,
    // which does not wait for the answer on its own.
    client.discover_multiplexing().await;
    assert_eq!(&client.request(get()).await.unwrap().body[..], b"ok");
    assert_eq!(client.open_connections(), 1);
    let start = Instant::now();
    server.await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    // The count drops right after the socket closes.
    let deadline = Instant::now() + Duration::from_secs(1);
    while client.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.open_connections(), 0);
    let _ = std::fs::remove_file(&path);
}
