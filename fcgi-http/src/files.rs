//! Static files: safe resolution under a root, `Content-Type` by extension,
//! `Last-Modified`, `HEAD`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ::http::{header, HeaderValue, Method, Response, StatusCode};

use crate::{HttpError, ResponseBody};

/// Files up to this size are read whole at once; larger ones stream in 64 KiB pieces.
const SMALL_FILE: u64 = 64 * 1024;

/// What a path under the root is, once resolved.
pub(crate) enum Found {
    /// A regular file, its canonical path and metadata.
    File(PathBuf, std::fs::Metadata),
    /// A directory, its canonical path.
    Dir(PathBuf),
}

/// Looks up `relative` (a normalized request path, `/` first) under `root` (canonical):
/// the canonical path must stay under the root, so a symbolic link that leads out of it
/// is 403; a missing file is 404; anything but a file or a directory is 403.
pub(crate) fn find(root: &Path, relative: &str) -> Result<Found, HttpError> {
    let path = root.join(relative.trim_start_matches('/'));
    let canonical = std::fs::canonicalize(&path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => HttpError::Forbidden,
        _ => HttpError::NotFound,
    })?;
    if !canonical.starts_with(root) {
        return Err(HttpError::Forbidden);
    }
    let meta = std::fs::metadata(&canonical).map_err(|_| HttpError::NotFound)?;
    if meta.is_file() {
        Ok(Found::File(canonical, meta))
    } else if meta.is_dir() {
        Ok(Found::Dir(canonical))
    } else {
        Err(HttpError::Forbidden)
    }
}

/// Answers a request for a static file: `GET` and `HEAD` only (405 otherwise), with
/// `Content-Type`, `Content-Length` and `Last-Modified`, and 304 for an
/// `If-Modified-Since` equal to `Last-Modified` (nginx's `if_modified_since exact`).
/// A file of at most 64 KiB is read whole, on the calling thread; a larger one streams
/// through tokio's file I/O.
pub(crate) async fn serve(
    request: &::http::request::Parts,
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<Response<ResponseBody>, HttpError> {
    let head = request.method == Method::HEAD;
    if !head && request.method != Method::GET {
        return Err(HttpError::MethodNotAllowed);
    }
    let len = meta.len();
    let mut response = Response::new(ResponseBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(modified) = meta.modified().ok().and_then(http_date) {
        let not_modified = request
            .headers
            .get(header::IF_MODIFIED_SINCE)
            .is_some_and(|since| since.as_bytes() == modified.as_bytes());
        // An HTTP date is ASCII.
        if let Ok(value) = HeaderValue::from_str(&modified) {
            headers.insert(header::LAST_MODIFIED, value);
        }
        if not_modified {
            headers.remove(header::CONTENT_LENGTH);
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(response);
        }
    }
    if head || len == 0 {
        return Ok(response);
    }
    if len <= SMALL_FILE {
        // Read at once, on this thread, as nginx does: a hop to tokio's blocking pool
        // costs more than reading a small file from the page cache.
        let bytes = std::fs::read(path).map_err(HttpError::File)?;
        if bytes.len() as u64 != len {
            return Err(HttpError::File(io::Error::other(
                "the file changed size while it was read",
            )));
        }
        *response.body_mut() = ResponseBody::full(bytes);
    } else {
        let file = tokio::fs::File::open(path).await.map_err(HttpError::File)?;
        *response.body_mut() = ResponseBody::file(file, len);
    }
    Ok(response)
}

/// The `Content-Type` of a file, by its extension (ASCII case-insensitive);
/// `application/octet-stream` for any other.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    const TYPES: &[(&str, &str)] = &[
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("map", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("csv", "text/csv; charset=utf-8"),
        ("xml", "application/xml"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("ico", "image/x-icon"),
        ("pdf", "application/pdf"),
        ("wasm", "application/wasm"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
        ("ttf", "font/ttf"),
        ("otf", "font/otf"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
        ("wav", "audio/wav"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("zip", "application/zip"),
        ("gz", "application/gzip"),
        ("tar", "application/x-tar"),
    ];
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |(_, t)| t)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); `None` before 1970.
pub(crate) fn http_date(time: SystemTime) -> Option<String> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    Some(format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_dates() {
        let at = |secs| http_date(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Path::new("/a/b.CSS")),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("/a/b.png")), "image/png");
        assert_eq!(content_type(Path::new("/a/b")), "application/octet-stream");
        assert_eq!(
            content_type(Path::new("/a/b.php.bak")),
            "application/octet-stream"
        );
    }
}
