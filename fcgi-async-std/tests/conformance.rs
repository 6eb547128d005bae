//! The test kit's conformance suite, run by fcgi-async-std on async-std
//! (`on_async_std::*`) and on smol (`on_smol::*`).

use std::time::Duration;

use fcgi_async_std::{Address, Error};
use fcgi_testkit::conformance::{Adapter, Design, LocalFuture, Settings, TestClient};

fcgi_testkit::async_suite_client!(fcgi_async_std, smol::io::Cursor::new);

/// The runtime whose `block_on` drives the scenario.
#[derive(Clone, Copy)]
enum Runtime {
    AsyncStd,
    Smol,
}

struct FuturesIo(Runtime);

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
    ) -> Result<Box<dyn TestClient + '_>, Error> {
        suite_client(upstreams, settings)
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
