//! What the gateway tests share: the gateway served over HTTP/1.1 by hyper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fcgi_http::{Gateway, PeerAddrs};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// A running gateway: its address, and how many HTTP connections it accepted.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    // Not every test binary reads it.
    #[allow(dead_code)]
    pub(crate) accepted: Arc<AtomicUsize>,
}

/// Serves `gateway` on 127.0.0.1:0 for as long as the test's runtime runs.
pub(crate) async fn serve(gateway: Gateway) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (socket, remote) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let gateway = gateway.for_connection(PeerAddrs::new(remote, addr));
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request).await) }
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Server { addr, accepted }
}
