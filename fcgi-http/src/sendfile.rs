//! `X-Accel-Redirect` and `X-Sendfile`: the application names a file and the gateway
//! sends it, so that a PHP script can authorize a download without streaming it.

use std::path::Path;

use ::http::{header, HeaderMap, HeaderName, Method, Response};

use crate::files::{self, Found};
use crate::{normalize_path, HttpError, ResponseBody};

/// nginx's header: a URI path, here taken under the sendfile root.
const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");
/// Apache's and lighttpd's header: a file system path, here only under the sendfile
/// root.
const X_SENDFILE: HeaderName = HeaderName::from_static("x-sendfile");

/// The application's headers that the file's response keeps, as nginx keeps them
/// through an `X-Accel-Redirect`.
const KEPT: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_DISPOSITION,
    header::SET_COOKIE,
    header::CACHE_CONTROL,
    header::EXPIRES,
];

/// What of the client's request the file's response depends on.
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
}

/// When `response` carries `X-Accel-Redirect` or `X-Sendfile`, the response of the file
/// it names under `root` (canonical) instead: served as a static file is (ranges,
/// conditional requests, precompressed siblings), for a `GET` whatever the method was
/// (a `HEAD` stays one), keeping the application's `Content-Type`,
/// `Content-Disposition`, `Set-Cookie`, `Cache-Control` and `Expires`. The rest of the
/// application's response is read and thrown away. A name that leads out of `root` is
/// 403, a missing file 404. Any other response is returned as it is.
pub(crate) async fn follow(
    root: &Path,
    head: RequestHead,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, HttpError> {
    let relative = if let Some(uri) = response.headers().get(X_ACCEL_REDIRECT) {
        let uri = uri.to_str().map_err(|_| HttpError::InvalidHead)?;
        let path = uri.split_once('?').map_or(uri, |(path, _)| path);
        normalize_path(path)?.into_owned()
    } else if let Some(file) = response.headers().get(X_SENDFILE) {
        let file = file.to_str().map_err(|_| HttpError::InvalidHead)?;
        let canonical = std::fs::canonicalize(file).map_err(|_| HttpError::NotFound)?;
        let inside = canonical
            .strip_prefix(root)
            .map_err(|_| HttpError::Forbidden)?;
        let inside = inside.to_str().ok_or(HttpError::Forbidden)?;
        format!("/{inside}")
    } else {
        return Ok(response);
    };
    let (path, meta) = match files::find(root, &relative)? {
        Found::File(path, meta) => (path, meta),
        Found::Dir(_) => return Err(HttpError::Forbidden),
    };
    let mut request = ::http::Request::new(());
    *request.method_mut() = if head.method == Method::HEAD {
        Method::HEAD
    } else {
        Method::GET
    };
    *request.headers_mut() = head.headers;
    let (parts, ()) = request.into_parts();
    let (app, _rest) = response.into_parts();
    let mut file = files::serve(root, &relative, parts, &path, &meta).await?;
    for name in KEPT {
        let mut values = app.headers.get_all(&name).iter().peekable();
        if values.peek().is_some() {
            file.headers_mut().remove(&name);
            for value in values {
                file.headers_mut().append(&name, value.clone());
            }
        }
    }
    Ok(file)
}
