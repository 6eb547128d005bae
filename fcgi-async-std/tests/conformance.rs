//! The test kit's conformance suite, run by fcgi-async-std on async-std
//! (`on_async_std::*`) and on smol (`on_smol::*`).

use std::time::Duration;

use fcgi_async_std::{Body, Client, Options, Request};
use fcgi_proto::{Address, ClientError, ServerValues};
use fcgi_testkit::conformance::{
    Adapter, Design, Flow, LocalFuture, Reply, Settings, Streamed, TestBody, TestClient,
    TestRequest,
};

/// The runtime whose `block_on` drives the scenario.
#[derive(Clone, Copy)]
enum Runtime {
    AsyncStd,
    Smol,
}

struct FuturesIo(Runtime);

struct FuturesIoClient(Client);

fn request(test: TestRequest) -> Request {
    let request = Request::new(test.params);
    match test.body {
        TestBody::Empty => request,
        TestBody::Bytes(bytes) => request.body(bytes),
        TestBody::Reader { data, declared } => {
            request.body(Body::from_reader(smol::io::Cursor::new(data), declared))
        }
    }
}

impl TestClient for FuturesIoClient {
    fn request(&self, test: TestRequest) -> LocalFuture<'_, Result<Reply, ClientError>> {
        Box::pin(async move {
            let r = self.0.request(request(test)).await?;
            Ok(Reply {
                status: r.status,
                head: r.head,
                body: r.body.into(),
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
            let mut stream = self.0.request_streaming(request(test)).await?;
            let mut body_bytes = 0;
            while let Some(chunk) = stream.chunk().await? {
                body_bytes += chunk.len() as u64;
                if on_chunk(&chunk) == Flow::Stop {
                    break;
                }
            }
            Ok(Streamed {
                status: stream.status(),
                body_bytes,
                end: stream.end().cloned(),
            })
        })
    }

    fn get_values<'a>(
        &'a self,
        names: &'a [&'a str],
    ) -> LocalFuture<'a, Result<ServerValues, ClientError>> {
        Box::pin(self.0.get_values(names))
    }

    fn connections_opened(&self) -> u64 {
        self.0.connections_opened()
    }

    fn open_connections(&self) -> usize {
        self.0.open_connections()
    }
}

impl Adapter for FuturesIo {
    fn name(&self) -> &str {
        match self.0 {
            Runtime::AsyncStd => "fcgi-async-std on async-std",
            Runtime::Smol => "fcgi-async-std on smol",
        }
    }

    fn design(&self) -> Design {
        Design::ASYNC
    }

    fn client(
        &self,
        upstreams: Vec<Address>,
        settings: Settings,
    ) -> Result<Box<dyn TestClient + '_>, ClientError> {
        let mut options = Options::default();
        options.connect_timeout = settings.connect_timeout.or(options.connect_timeout);
        options.read_timeout = settings.read_timeout.or(options.read_timeout);
        options.write_timeout = settings.write_timeout.or(options.write_timeout);
        options.total_timeout = settings.total_timeout;
        options.max_connections = settings.max_connections.unwrap_or(options.max_connections);
        options.multiplex = settings.multiplex;
        options.config = settings.config;
        Ok(Box::new(FuturesIoClient(Client::with_upstreams(
            upstreams, options,
        )?)))
    }

    fn block_on(&self, future: LocalFuture<'_, ()>) {
        match self.0 {
            Runtime::AsyncStd => async_std::task::block_on(future),
            Runtime::Smol => smol::block_on(future),
        }
    }

    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}

mod on_async_std {
    use super::*;
    fcgi_testkit::conformance_suite!(FuturesIo(Runtime::AsyncStd));
}

mod on_smol {
    use super::*;
    fcgi_testkit::conformance_suite!(FuturesIo(Runtime::Smol));
}
