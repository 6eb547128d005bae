//! The test kit's conformance suite, run by fcgi-tokio on a two-worker runtime.

use std::time::Duration;

use fcgi_testkit::conformance::{Adapter, Design, LocalFuture, Settings, TestClient};
use fcgi_tokio::{Address, Error};

fcgi_testkit::async_suite_client!(fcgi_tokio, std::io::Cursor::new);

struct Tokio(tokio::runtime::Runtime);

impl Tokio {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        Tokio(runtime)
    }
}

impl Adapter for Tokio {
    fn name(&self) -> &str {
        "fcgi-tokio"
    }

    fn design(&self) -> Design {
        Design::ASYNC
    }

    fn client(
        &self,
        upstreams: Vec<Address>,
        settings: Settings,
    ) -> Result<Box<dyn TestClient + '_>, Error> {
        // The client spawns multiplexing drivers: make it inside the runtime.
        let _entered = self.0.enter();
        suite_client(upstreams, settings)
    }

    fn block_on(&self, future: LocalFuture<'_, ()>) {
        self.0.block_on(future)
    }

    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fcgi_testkit::conformance_suite!(Tokio::new());
