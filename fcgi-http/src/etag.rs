//! Entity tags of encoded responses: a compressed response is other bytes with the same
//! meaning, so its tag may only be weak (RFC 9110, 8.8.3). nginx's `gzip` weakens the
//! tags of what it compresses; tower-http's compression leaves them as they are, so
//! this layer goes around it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::http::{header, HeaderValue, Response};

/// The weak form of `etag`: `W/` before a strong tag, a weak one as it is.
pub(crate) fn weak(etag: &HeaderValue) -> HeaderValue {
    if etag.as_bytes().starts_with(b"W/") {
        return etag.clone();
    }
    let mut bytes = b"W/".to_vec();
    bytes.extend_from_slice(etag.as_bytes());
    // `W/` before a valid value is valid.
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| etag.clone())
}

/// A tower layer that makes the `ETag` of every response with a `Content-Encoding`
/// weak: put it outside a compression layer, so that a strong tag the application or a
/// static file gave the identity bytes is not claimed for compressed ones. A weak tag
/// still revalidates (`If-None-Match` compares weakly); a range request validated by it
/// (`If-Range`, which compares strongly) gets the whole response, as it must.
///
/// ```
/// use fcgi_http::WeakEtagLayer;
/// use tower_layer::Layer;
///
/// # fn wrap<S>(service: S) {
/// let service = WeakEtagLayer.layer(service);
/// # let _ = service;
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct WeakEtagLayer;

impl<S> tower_layer::Layer<S> for WeakEtagLayer {
    type Service = WeakEtag<S>;

    fn layer(&self, inner: S) -> WeakEtag<S> {
        WeakEtag { inner }
    }
}

/// The service of [`WeakEtagLayer`].
#[derive(Clone, Debug)]
pub struct WeakEtag<S> {
    inner: S,
}

impl<S, R, B> tower_service::Service<R> for WeakEtag<S>
where
    S: tower_service::Service<R, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = WeakEtagFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        WeakEtagFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`WeakEtag`].
    pub struct WeakEtagFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> std::fmt::Debug for WeakEtagFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakEtagFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for WeakEtagFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = match self.project().inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        let headers = response.headers_mut();
        if headers.contains_key(header::CONTENT_ENCODING) {
            if let Some(etag) = headers.get(header::ETAG) {
                let etag = weak(etag);
                headers.insert(header::ETAG, etag);
            }
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower_layer::Layer;
    use tower_service::Service;

    #[test]
    fn weak_forms() {
        let weak_of = |s: &'static str| weak(&HeaderValue::from_static(s));
        assert_eq!(weak_of("\"65a1-10\""), "W/\"65a1-10\"");
        assert_eq!(weak_of("W/\"65a1-10\""), "W/\"65a1-10\"");
    }

    #[tokio::test]
    async fn only_encoded_responses_are_weakened() {
        let respond = |encoding: Option<&'static str>| {
            let mut service = WeakEtagLayer.layer(tower_service_fn(move || {
                let mut response = Response::new(());
                response
                    .headers_mut()
                    .insert(header::ETAG, HeaderValue::from_static("\"abc\""));
                if let Some(encoding) = encoding {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
                }
                response
            }));
            async move { service.call(()).await.unwrap() }
        };
        let plain = respond(None).await;
        assert_eq!(plain.headers()[header::ETAG], "\"abc\"");
        let gzip = respond(Some("gzip")).await;
        assert_eq!(gzip.headers()[header::ETAG], "W/\"abc\"");
    }

    /// A service answering every request with `make()`.
    fn tower_service_fn<F: Fn() -> Response<()>>(make: F) -> Answer<F> {
        Answer(make)
    }

    struct Answer<F>(F);

    impl<F: Fn() -> Response<()>> Service<()> for Answer<F> {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<()>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: ()) -> Self::Future {
            std::future::ready(Ok((self.0)()))
        }
    }
}
