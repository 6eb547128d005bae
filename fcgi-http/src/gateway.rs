//! A document root served as nginx serves one in front of php-fpm: `*.php` through
//! FastCGI, directories to their `index.php`, other files static.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{header, HeaderValue, Request, Response, StatusCode};
use fcgi_proto::split_path;

use crate::body::BoxError;
use crate::files::{self, Found};
use crate::sendfile::{self, RequestHead};
use crate::{
    normalize_path, FastCgiService, HttpError, PeerAddrs, ResponseBody, ScriptConfig, ScriptTarget,
    ServiceOptions,
};
use fcgi_tokio::Client;

struct Inner {
    /// The canonical document root.
    root: PathBuf,
    /// The canonical directory of files the application may have sent by name.
    sendfile_root: Option<PathBuf>,
}

/// A document root behind one HTTP service, as this nginx configuration serves it:
///
/// ```nginx
/// root /srv/www;
/// index index.php;
/// location / { try_files $uri $uri/ =404; }
/// location ~ [^/]\.php(/|$) {
///     fastcgi_split_path_info ^(.+?\.php)(/.*)$;
///     if (!-f $realpath_root$fastcgi_script_name) { return 404; }
///     include fastcgi_params;
///     fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
///     fastcgi_param DOCUMENT_ROOT $realpath_root;
///     fastcgi_pass php-fpm;
/// }
/// ```
///
/// A request path is decoded and normalized first ([`normalize_path`]: 400 for a bad
/// one, 403 for one that climbs out of the root). Then:
///
/// - a path with a segment ending in the split extension (`/a.php`, `/a.php/b`) runs
///   that script through [`FastCgiService::send_to`], with `PATH_INFO` the rest; 404
///   when the script is not a regular file under the root;
/// - a directory without a trailing `/` is redirected (301) to the path with one; with
///   one, it runs its index file (`index.php`) when there is one, else 403 (no
///   listings);
/// - a regular file is served: `GET` and `HEAD` (405 otherwise), `Content-Type` by
///   extension, `Content-Length`, `Last-Modified` and 304 for an equal
///   `If-Modified-Since`; read in 64 KiB pieces;
/// - a missing path is 404; a path whose canonical form (symbolic links resolved) lies
///   outside the root is 403, and so is anything that is not a file or a directory.
///
/// The root is canonicalized once (`SCRIPT_FILENAME` and `DOCUMENT_ROOT` use it, as
/// nginx's `$realpath_root`), so the application must see the same file system. Like
/// nginx, the extension is matched byte for byte: `/a.PHP` is a static file, its
/// source; keep such files out of the root.
///
/// The file system checks (a `realpath` and a `stat` per request) and the reading of
/// files up to 64 KiB happen on the calling thread, as nginx does them: from the page
/// cache they cost microseconds, less than a hop to a blocking thread pool.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
    fcgi: FastCgiService,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("root", &self.inner.root)
            .field("fcgi", &self.fcgi)
            .finish()
    }
}

impl Gateway {
    /// A gateway for the document root of `script` (which must exist and be a
    /// directory, with a UTF-8 path), whose scripts run on `client`'s application.
    pub fn new(client: Client, script: ScriptConfig) -> io::Result<Self> {
        Self::with_options(client, script, ServiceOptions::default())
    }

    /// A gateway with these options.
    pub fn with_options(
        client: Client,
        script: ScriptConfig,
        options: ServiceOptions,
    ) -> io::Result<Self> {
        let root = std::fs::canonicalize(script.document_root())?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let Some(root_text) = root.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the document root's path is not UTF-8",
            ));
        };
        let mut canonical = ScriptConfig::new(root_text)
            .index(script.index_file())
            .split_extension(script.extension())
            .front_controller(script.front_controller_script())
            .allow_dotfiles(script.dotfiles_allowed());
        for (name, value) in script.params() {
            canonical = canonical.param(name, value);
        }
        Ok(Self {
            fcgi: FastCgiService::with_options(client, canonical, options),
            inner: Arc::new(Inner {
                root,
                sendfile_root: None,
            }),
        })
    }

    /// Lets the application have the gateway send a file under `dir` (which must be a
    /// directory) in its place: a response with `X-Accel-Redirect: /path` (a URI path,
    /// taken under `dir`) or `X-Sendfile: /file/system/path` (which must lie under
    /// `dir`) becomes that file, served as a static file is (ranges, conditional
    /// requests), for a `GET` whatever the method (a `HEAD` stays one), with the
    /// application's `Content-Type`, `Content-Disposition`, `Set-Cookie`,
    /// `Cache-Control` and `Expires` (as nginx's `X-Accel-Redirect` does). A name that
    /// leads out of `dir` is 403, a missing file 404. Without this (the default) both
    /// headers reach the client as the application wrote them.
    ///
    /// A PHP download behind a permission check:
    ///
    /// ```php
    /// <?php
    /// if (!user_may_download($_GET['id'])) { http_response_code(403); exit; }
    /// header('Content-Type: application/zip');
    /// header('Content-Disposition: attachment; filename="report.zip"');
    /// header('X-Accel-Redirect: /reports/2026/report.zip');
    /// ```
    pub fn sendfile_root(self, dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = std::fs::canonicalize(dir)?;
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root: self.inner.root.clone(),
                sendfile_root: Some(dir),
            }),
            fcgi: self.fcgi,
        })
    }

    /// A copy for the requests of one client connection (see
    /// [`FastCgiService::for_connection`]).
    pub fn for_connection(&self, peer: PeerAddrs) -> Self {
        Self {
            inner: self.inner.clone(),
            fcgi: self.fcgi.for_connection(peer),
        }
    }

    /// The canonical document root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The FastCGI service behind it.
    pub fn fastcgi(&self) -> &FastCgiService {
        &self.fcgi
    }

    /// Answers a request: a script's response, a file, or the response for an error.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.send(request)
            .await
            .unwrap_or_else(HttpError::into_response)
    }

    /// Answers a request, or says why not.
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<ResponseBody>, HttpError>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let script = self.fcgi.script_config();
        let root = &self.inner.root;
        let path = normalize_path(request.uri().path())?;
        script.check_dotfiles(&path)?;
        let extension = script.extension().unwrap_or("");
        match split_path(path.as_bytes(), extension.as_bytes()) {
            Ok(Some(split)) => {
                // `path` is UTF-8 and the split falls just after the ASCII extension.
                let at = split.script_name.len();
                let (script_name, path_info) = (&path[..at], &path[at..]);
                match files::find(root, script_name)? {
                    Found::File(..) => {}
                    Found::Dir(_) => return Err(HttpError::NotFound),
                }
                let target = script.target(
                    script_name.to_owned(),
                    Some(path_info.to_owned()),
                    path.into_owned(),
                );
                return self.run(request, &target).await;
            }
            Ok(None) => {}
            Err(_) => return Err(HttpError::NotFound),
        }
        let found = match files::find(root, &path) {
            Err(HttpError::NotFound) => match script.front_controller_target() {
                Some(target) => {
                    return match files::find(root, &target.script_name)? {
                        Found::File(..) => self.run(request, &target).await,
                        Found::Dir(_) => Err(HttpError::NotFound),
                    };
                }
                None => return Err(HttpError::NotFound),
            },
            found => found?,
        };
        match found {
            Found::File(file, meta) => {
                let relative = path.into_owned();
                let (parts, _body) = request.into_parts();
                files::serve(root, &relative, parts, &file, &meta).await
            }
            Found::Dir(dir) => {
                if !path.ends_with('/') {
                    return Ok(redirect_to_dir(request.uri()));
                }
                let Some(index) = script.index_file() else {
                    return Err(HttpError::Forbidden);
                };
                match files::find(&dir, index) {
                    Ok(Found::File(..)) => {}
                    _ => return Err(HttpError::Forbidden),
                }
                let mut uri = path.into_owned();
                uri.push_str(index);
                let target = script.target(uri.clone(), None, uri);
                self.run(request, &target).await
            }
        }
    }

    /// Runs a script; with a sendfile root, follows the file its response may name.
    async fn run<B>(
        &self,
        request: Request<B>,
        target: &ScriptTarget,
    ) -> Result<Response<ResponseBody>, HttpError>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let Some(sendfile_root) = &self.inner.sendfile_root else {
            return self.fcgi.send_to(request, target).await;
        };
        let head = RequestHead {
            method: request.method().clone(),
            headers: request.headers().clone(),
        };
        let response = self.fcgi.send_to(request, target).await?;
        sendfile::follow(sendfile_root, head, response).await
    }
}

/// 301 to the same path with a `/` added, query kept (as nginx answers for a
/// directory).
fn redirect_to_dir(uri: &::http::Uri) -> Response<ResponseBody> {
    let mut location = String::with_capacity(uri.path().len() + 1);
    location.push_str(uri.path());
    location.push('/');
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(ResponseBody::full("Moved Permanently\n"));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    // The path and query of a valid URI are valid header bytes.
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<B> tower_service::Service<Request<B>> for Gateway
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}
