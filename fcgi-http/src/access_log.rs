//! An access log in nginx's `combined` format, with the request time and the upstream
//! time: a tower layer around any service, one line per request, emitted as a `tracing`
//! event when the response body has been sent (or dropped).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use ::http::{header, HeaderMap, Request, Response};
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use ipnet::IpNet;

use crate::proxy::client_view;
use crate::PeerAddrs;

/// The `tracing` target of the access log's lines: route it to a file (the `fcgi serve
/// --access-log` option does, through a non-blocking writer).
pub const ACCESS_LOG_TARGET: &str = "fcgi_http::access";

/// How long the FastCGI application took to answer with its head, put in a response's
/// extensions by [`FastCgiService`](crate::FastCgiService) (and so the
/// [`Gateway`](crate::Gateway)): the access log's upstream time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamTime(pub Duration);

/// A tower layer that logs every request in nginx's `combined` format plus two
/// fields, the request time and the upstream time in seconds (`-` for a response that
/// did not come from FastCGI, such as a static file), as
///
/// ```text
/// log_format fcgi '$remote_addr - $remote_user [$time_local] "$request" $status '
///                 '$body_bytes_sent "$http_referer" "$http_user_agent" '
///                 '$request_time $upstream_header_time';
/// ```
///
/// for example
///
/// ```text
/// 192.0.2.7 - - [02/Dec/2026:08:49:37 +0000] "GET /index.php?page=2 HTTP/1.1" 200 5120 "-" "curl/8.5.0" 0.012 0.011
/// ```
///
/// The line is a `tracing` event at level INFO of the target [`ACCESS_LOG_TARGET`],
/// emitted once the response body has been sent or given up (a client gone midway logs
/// the bytes sent so far; one gone before the response began logs status 499, as nginx
/// does); the time is UTC. Quoted fields are escaped as nginx escapes
/// them (`"`, `\` and bytes outside printable ASCII as `\xHH`). `$remote_addr` is the
/// connection's peer (from [`PeerAddrs`]), or the client a trusted proxy forwarded
/// (see [`AccessLogLayer::trusted_proxies`]); `$remote_user` is the user name of a Basic
/// `Authorization` header.
///
/// ```
/// use fcgi_http::{parse_trusted_proxy, AccessLogLayer};
///
/// let proxies = vec![parse_trusted_proxy("10.0.0.0/8").unwrap()];
/// let layer = AccessLogLayer::new().trusted_proxies(proxies);
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default)]
pub struct AccessLogLayer {
    trusted_proxies: Arc<[IpNet]>,
}

impl AccessLogLayer {
    /// A layer that logs the connection's peer as `$remote_addr`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs as `$remote_addr` the client that a proxy among `proxies` forwarded in
    /// `X-Forwarded-For`, by the rule the application's `REMOTE_ADDR` follows (give the
    /// same list as [`ServiceOptions::trusted_proxies`](crate::ServiceOptions), as nginx's
    /// realip module changes both); the peer otherwise.
    pub fn trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies.into();
        self
    }
}

impl<S> tower_layer::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    trusted_proxies: Arc<[IpNet]>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for AccessLog<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>, Error = Infallible>,
    S::Future: Send + 'static,
    RB: Body,
{
    type Response = Response<LoggedBody<RB>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        // Nothing is gathered for a log no subscriber takes (`fcgi serve` without
        // `--access-log` keeps the layer).
        let entry = tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO)
            .then(|| Entry::of(&request, &self.trusted_proxies));
        // Until the response comes, the line is a client's that gave up: dropped here
        // (the connection closed while the application worked), it says 499 as nginx's
        // does.
        let mut waiting = LoggedBody {
            inner: (),
            entry: entry.map(|entry| Entry {
                status: CLIENT_CLOSED,
                ..entry
            }),
            sent: 0,
            started,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = response.await;
            let mut entry = waiting.entry.take();
            if let Some(entry) = &mut entry {
                entry.status = response.status().as_u16();
                entry.upstream = response.extensions().get::<UpstreamTime>().map(|t| t.0);
            }
            let (parts, body) = response.into_parts();
            let body = LoggedBody {
                inner: body,
                entry,
                sent: 0,
                started,
            };
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// The status logged for a request whose client closed its connection before the
/// response began, nginx's non-standard 499.
const CLIENT_CLOSED: u16 = 499;

/// What the line says of a request, gathered before the response.
struct Entry {
    remote: String,
    user: String,
    request: String,
    referer: String,
    agent: String,
    status: u16,
    upstream: Option<Duration>,
}

impl Entry {
    fn of<B>(request: &Request<B>, trusted_proxies: &[IpNet]) -> Self {
        let remote = request.extensions().get::<PeerAddrs>().map_or_else(
            || "-".to_owned(),
            |peer| {
                let peer = peer.remote.ip();
                client_view(request.headers(), peer, trusted_proxies)
                    .forwarded_for
                    .unwrap_or(peer)
                    .to_string()
            },
        );
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let line = format!("{} {} {:?}", request.method(), target, request.version());
        Entry {
            remote,
            user: basic_user(request.headers()).map_or_else(|| "-".to_owned(), |u| escape(&u)),
            request: escape(line.as_bytes()),
            referer: header_field(request.headers(), header::REFERER),
            agent: header_field(request.headers(), header::USER_AGENT),
            status: 0,
            upstream: None,
        }
    }

    fn line(&self, sent: u64, elapsed: Duration, now: SystemTime) -> String {
        let mut line = String::with_capacity(160);
        let _ = write!(
            line,
            "{} - {} [{}] \"{}\" {} {} \"{}\" \"{}\" {:.3} ",
            self.remote,
            self.user,
            time_local(now),
            self.request,
            self.status,
            sent,
            self.referer,
            self.agent,
            elapsed.as_secs_f64(),
        );
        match self.upstream {
            Some(t) => {
                let _ = write!(line, "{:.3}", t.as_secs_f64());
            }
            None => line.push('-'),
        }
        line
    }
}

/// A header as the log quotes it: escaped, `-` when absent.
fn header_field(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .map_or_else(|| "-".to_owned(), |v| escape(v.as_bytes()))
}

/// The user name of a `Basic` `Authorization` header (what nginx's `$remote_user` is).
fn basic_user(headers: &HeaderMap) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let user = decoded.split(|&b| b == b':').next()?;
    Some(user.to_vec())
}

/// Escapes as nginx's log module does: `"`, `\` and bytes outside printable ASCII as
/// `\xHH`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
    out
}

/// `$time_local` in UTC: `02/Dec/2026:08:49:37 +0000`, rearranged from the HTTP date
/// `Wed, 02 Dec 2026 08:49:37 GMT` (fixed width).
fn time_local(now: SystemTime) -> String {
    let http = httpdate::fmt_http_date(now);
    let (day, month, year, time) = (&http[5..7], &http[8..11], &http[12..16], &http[17..25]);
    format!("{day}/{month}/{year}:{time} +0000")
}

/// A response body that counts the bytes sent and writes the log line when it is
/// done (at its end or when dropped).
pub struct LoggedBody<B> {
    inner: B,
    entry: Option<Entry>,
    sent: u64,
    started: Instant,
}

impl<B> std::fmt::Debug for LoggedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl<B> LoggedBody<B> {
    fn log(&mut self) {
        if let Some(entry) = self.entry.take() {
            let line = entry.line(self.sent, self.started.elapsed(), SystemTime::now());
            tracing::info!(target: ACCESS_LOG_TARGET, "{line}");
        }
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        self.log();
    }
}

impl<B: Body + Unpin> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.remaining() as u64;
                }
            }
            Poll::Ready(None) => this.log(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn lines_as_nginx_writes_them() {
        let request = Request::get("/index.php?page=2")
            .header("referer", "https://example.com/a \"b\"")
            .header("user-agent", "curl/8.5.0")
            .header("authorization", "Basic YWxpY2U6c2VjcmV0")
            .extension(PeerAddrs::new(
                "192.0.2.7:4711".parse().unwrap(),
                "127.0.0.1:80".parse().unwrap(),
            ))
            .body(())
            .unwrap();
        let mut entry = Entry::of(&request, &[]);
        entry.status = 200;
        entry.upstream = Some(Duration::from_millis(11));
        let at = UNIX_EPOCH + Duration::from_secs(1_796_201_377);
        assert_eq!(
            entry.line(5120, Duration::from_millis(12), at),
            "192.0.2.7 - alice [02/Dec/2026:08:49:37 +0000] \"GET /index.php?page=2 HTTP/1.1\" \
             200 5120 \"https://example.com/a \\x22b\\x22\" \"curl/8.5.0\" 0.012 0.011"
        );
        let bare = Request::post("/x").body(()).unwrap();
        let mut entry = Entry::of(&bare, &[]);
        entry.status = 404;
        assert_eq!(
            entry.line(10, Duration::from_micros(400), at),
            "- - - [02/Dec/2026:08:49:37 +0000] \"POST /x HTTP/1.1\" 404 10 \"-\" \"-\" 0.000 -"
        );
    }

    #[test]
    fn the_forwarded_client_from_a_trusted_proxy() {
        let request = Request::get("/")
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
            .extension(PeerAddrs::new(
                "10.1.2.3:4711".parse().unwrap(),
                "127.0.0.1:80".parse().unwrap(),
            ))
            .body(())
            .unwrap();
        let trusted = [crate::parse_trusted_proxy("10.0.0.0/8").unwrap()];
        assert_eq!(Entry::of(&request, &trusted).remote, "203.0.113.7");
        assert_eq!(Entry::of(&request, &[]).remote, "10.1.2.3");
        let other = [crate::parse_trusted_proxy("192.0.2.0/24").unwrap()];
        assert_eq!(Entry::of(&request, &other).remote, "10.1.2.3");
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape(b"a\"b\\c\x01\x7f\xc3\xa9"),
            "a\\x22b\\x5Cc\\x01\\x7F\\xC3\\xA9"
        );
    }
}
