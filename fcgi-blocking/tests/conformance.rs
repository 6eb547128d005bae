//! The test kit's conformance suite, run by fcgi-blocking. Its design (one connection,
//! one request at a time, written then read) skips the scenarios that need a shared
//! pool, cancellation, full duplex or multiplexing, and says so in the output.

use std::io::Cursor;
use std::sync::Mutex;
use std::time::Duration;

use fcgi_blocking::{Client, Options, Request};
use fcgi_proto::{Address, ClientError, ServerValues};
use fcgi_testkit::conformance::{
    self, Adapter, Design, Flow, LocalFuture, Reply, Settings, Streamed, TestBody, TestClient,
    TestRequest,
};

struct Blocking;

/// A blocking client behind a mutex: the suite's calls take `&self`.
struct BlockingClient(Mutex<Client>);

impl BlockingClient {
    fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn request(test: TestRequest) -> Request {
    let request = Request::new(test.params);
    match test.body {
        TestBody::Empty => request,
        TestBody::Bytes(bytes) => request.body(bytes),
        TestBody::Reader { data, declared } => request.body_reader(Cursor::new(data), declared),
    }
}

impl TestClient for BlockingClient {
    fn request(&self, test: TestRequest) -> LocalFuture<'_, Result<Reply, ClientError>> {
        Box::pin(async move {
            let r = self.client().request(request(test))?;
            Ok(Reply {
                status: r.status,
                head: r.head,
                body: r.body,
                stderr: r.stderr,
                end: r.end,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        test: TestRequest,
        on_chunk: &'a mut dyn FnMut(&[u8]) -> Flow,
    ) -> LocalFuture<'a, Result<Streamed, ClientError>> {
        Box::pin(async move {
            let mut client = self.client();
            let mut reader = client.request_streaming(request(test))?;
            let mut body_bytes = 0;
            while let Some(chunk) = reader.chunk()? {
                body_bytes += chunk.len() as u64;
                if on_chunk(&chunk) == Flow::Stop {
                    break;
                }
            }
            Ok(Streamed {
                status: reader.status(),
                body_bytes,
                end: reader.end().cloned(),
            })
        })
    }

    fn get_values<'a>(
        &'a self,
        names: &'a [&'a str],
    ) -> LocalFuture<'a, Result<ServerValues, ClientError>> {
        Box::pin(async move { self.client().get_values(names) })
    }

    fn connections_opened(&self) -> u64 {
        self.client().connections_opened()
    }

    fn open_connections(&self) -> usize {
        usize::from(self.client().is_connected())
    }
}

impl Adapter for Blocking {
    fn name(&self) -> &str {
        "fcgi-blocking"
    }

    fn design(&self) -> Design {
        Design::BLOCKING
    }

    fn client(
        &self,
        upstreams: Vec<Address>,
        settings: Settings,
    ) -> Result<Box<dyn TestClient + '_>, ClientError> {
        // Only scenarios that need a shared pool (which this design has not) give more.
        let [address] = <[Address; 1]>::try_from(upstreams)
            .unwrap_or_else(|all| panic!("a blocking client has one upstream, not {}", all.len()));
        let mut options = Options::default();
        options.connect_timeout = settings.connect_timeout.or(options.connect_timeout);
        options.read_timeout = settings.read_timeout.or(options.read_timeout);
        options.write_timeout = settings.write_timeout.or(options.write_timeout);
        options.total_timeout = settings.total_timeout;
        options.config = settings.config;
        Ok(Box::new(BlockingClient(Mutex::new(Client::with_options(
            address, options,
        )))))
    }

    fn block_on(&self, future: LocalFuture<'_, ()>) {
        conformance::block_on(future)
    }

    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()> {
        // Never called: the blocking design is not cancellable.
        Box::pin(async move { std::thread::sleep(duration) })
    }
}

fcgi_testkit::conformance_suite!(Blocking);
