//! Static files: safe resolution under a root, then tower-http's `ServeFile` with
//! entity tags around it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ::http::{header, HeaderValue, Method, Response, StatusCode};
use tower_http::services::ServeFile;

use crate::etag::weak;
use crate::{HttpError, ResponseBody};

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
///
/// The usual case costs one `lstat` per path segment under the root: when no segment is
/// a symbolic link (nor `.` or `..`), the path is already canonical and under the root,
/// and the last `lstat` is the file's metadata. Otherwise the path is canonicalized
/// (`realpath`, one `readlink` per segment from `/`) and checked against the root.
pub(crate) fn find(root: &Path, relative: &str) -> Result<Found, HttpError> {
    if !cfg!(unix) {
        // Elsewhere a segment may be a drive or a prefix that `push` would not append.
        return find_canonical(root, relative);
    }
    let mut path = root.to_path_buf();
    let mut last = None;
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." || segment.chars().any(std::path::is_separator) {
            return find_canonical(root, relative);
        }
        path.push(segment);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return find_canonical(root, relative),
            Ok(meta) => last = Some(meta),
            Err(e) => return Err(lookup_error(&e)),
        }
    }
    let meta = match last {
        Some(meta) => meta,
        // The root itself.
        None => std::fs::metadata(&path).map_err(|_| HttpError::NotFound)?,
    };
    if relative.ends_with('/') && !meta.is_dir() {
        // `file/` names no file (`realpath` says ENOTDIR; nginx answers 404).
        return Err(HttpError::NotFound);
    }
    found(path, meta)
}

fn lookup_error(e: &io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => HttpError::Forbidden,
        _ => HttpError::NotFound,
    }
}

/// [`find`] for a path with a symbolic link in it: canonicalized, then checked against
/// the root.
fn find_canonical(root: &Path, relative: &str) -> Result<Found, HttpError> {
    let path = root.join(relative.trim_start_matches('/'));
    let canonical = std::fs::canonicalize(&path).map_err(|e| lookup_error(&e))?;
    if !is_under(&canonical, root) {
        return Err(HttpError::Forbidden);
    }
    let meta = std::fs::metadata(&canonical).map_err(|_| HttpError::NotFound)?;
    found(canonical, meta)
}

fn found(canonical: PathBuf, meta: std::fs::Metadata) -> Result<Found, HttpError> {
    if meta.is_file() {
        Ok(Found::File(canonical, meta))
    } else if meta.is_dir() {
        Ok(Found::Dir(canonical))
    } else {
        Err(HttpError::Forbidden)
    }
}

/// Whether the canonical `path` is `root` (canonical) or lies under it: `Path::starts_with`
/// compared byte for byte, without splitting both paths into components (canonical
/// paths have no `.`, `..` or doubled separators to normalize).
fn is_under(path: &Path, root: &Path) -> bool {
    let (path, root) = (
        path.as_os_str().as_encoded_bytes(),
        root.as_os_str().as_encoded_bytes(),
    );
    match path.strip_prefix(root) {
        None => false,
        Some(rest) => {
            rest.is_empty()
                || root
                    .last()
                    .is_some_and(|&b| std::path::is_separator(b.into()))
                || std::path::is_separator(rest[0].into())
        }
    }
}

/// Answers a request for a static file under `root` (canonical), found at `path` (its
/// canonical path, with `meta`) for the normalized request path `relative`: `GET` and
/// `HEAD` only (405 otherwise).
///
/// tower-http's `ServeFile` does the HTTP: `Content-Type` (by extension, `charset=utf-8`
/// added to text), `Content-Length`, `Last-Modified` and `If-Modified-Since` /
/// `If-Unmodified-Since`, single byte ranges (206; 416 for what cannot be served,
/// multipart ranges included), streaming in 64 KiB pieces, and the precompressed
/// siblings `.br`, `.zst` and `.gz` when the client accepts them. Here, around it:
/// `ETag` (as nginx writes it: the modification time and the length in hex) with
/// `If-None-Match` (which, as RFC 9110 says, overrides `If-Modified-Since`) and
/// `If-Range` (a range only for the current version), and a precompressed sibling only
/// when it is itself a regular file under the root (no symbolic link out), its tag
/// weak (`W/"..."`: other bytes, the same content).
pub(crate) async fn serve(
    root: &Path,
    relative: &str,
    mut request: ::http::request::Parts,
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<Response<ResponseBody>, HttpError> {
    if request.method != Method::HEAD && request.method != Method::GET {
        return Err(HttpError::MethodNotAllowed);
    }
    let etag = entity_tag(meta);
    let headers = &mut request.headers;
    let mime = mime_type(path);
    let mut serve_file = ServeFile::new_with_mime(path, &mime);
    let accepts = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let sibling = |ext: &str| {
        accepts.contains(ext_token(ext))
            && matches!(
                find(root, &format!("{relative}.{ext}")),
                Ok(Found::File(..))
            )
    };
    let (br, zst, gz) = (sibling("br"), sibling("zst"), sibling("gz"));
    if br {
        serve_file = serve_file.precompressed_br();
    }
    if zst {
        serve_file = serve_file.precompressed_zstd();
    }
    if gz {
        serve_file = serve_file.precompressed_gzip();
    }
    let sibling_in_play = br || zst || gz;
    if let Some(if_none_match) = headers.get(header::IF_NONE_MATCH) {
        if etag_matches(if_none_match.as_bytes(), &etag) {
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            let etag = if sibling_in_play { weak(&etag) } else { etag };
            response.headers_mut().insert(header::ETAG, etag);
            if let Some(modified) = meta.modified().ok().map(httpdate::fmt_http_date) {
                // An HTTP date is ASCII.
                if let Ok(value) = HeaderValue::from_str(&modified) {
                    response.headers_mut().insert(header::LAST_MODIFIED, value);
                }
            }
            return Ok(response);
        }
        headers.remove(header::IF_MODIFIED_SINCE);
    }
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        // If-Range compares strongly, and a compressed sibling's bytes are not the
        // ones its entity tag or date validated: with one in play, the whole file.
        let current = !sibling_in_play
            && (if_range.as_bytes() == etag.as_bytes()
                || meta
                    .modified()
                    .ok()
                    .is_some_and(|m| if_range.as_bytes() == httpdate::fmt_http_date(m).as_bytes()));
        if !current {
            headers.remove(header::RANGE);
        }
    }
    let response = serve_file
        .try_call(::http::Request::from_parts(request, ()))
        .await
        .map_err(HttpError::File)?;
    let (mut parts, body) = response.into_parts();
    if parts.status.is_success() || parts.status == StatusCode::NOT_MODIFIED {
        let etag = if parts.headers.contains_key(header::CONTENT_ENCODING) {
            weak(&etag)
        } else {
            etag
        };
        parts.headers.insert(header::ETAG, etag);
    }
    Ok(Response::from_parts(parts, ResponseBody::file(body)))
}

/// The `Accept-Encoding` token of a precompressed sibling's extension.
fn ext_token(ext: &str) -> &'static str {
    match ext {
        "br" => "br",
        "zst" => "zstd",
        _ => "gzip",
    }
}

/// A strong entity tag as nginx makes one: `"<mtime in hex>-<length in hex>"`.
fn entity_tag(meta: &std::fs::Metadata) -> HeaderValue {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    // Hex digits and quotes are valid header bytes.
    HeaderValue::from_str(&format!("\"{mtime:x}-{:x}\"", meta.len()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison: `W/` ignored) or is
/// `*`.
fn etag_matches(list: &[u8], etag: &HeaderValue) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag.as_bytes()
    })
}

/// The `Content-Type` of a file by its extension (mime_guess's table), with
/// `charset=utf-8` for text and JavaScript; `application/octet-stream` for an unknown
/// extension.
pub(crate) fn mime_type(path: &Path) -> mime_guess::Mime {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let texty =
        mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT;
    if texty && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        if let Ok(with_charset) = format!("{mime}; charset=utf-8").parse() {
            return with_charset;
        }
    }
    mime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let of = |p: &str| mime_type(Path::new(p)).to_string();
        assert_eq!(of("/a/b.CSS"), "text/css; charset=utf-8");
        assert_eq!(of("/a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(of("/a/b.html"), "text/html; charset=utf-8");
        assert_eq!(of("/a/b.png"), "image/png");
        assert_eq!(of("/a/b.json"), "application/json");
        assert_eq!(of("/a/b"), "application/octet-stream");
        assert_eq!(of("/a/b.php.bak"), "application/octet-stream");
    }

    #[test]
    fn if_none_match_lists() {
        let etag = HeaderValue::from_static("\"65a1b2c3-10\"");
        assert!(etag_matches(b"\"65a1b2c3-10\"", &etag));
        assert!(etag_matches(b"\"x\", W/\"65a1b2c3-10\"", &etag));
        assert!(etag_matches(b"*", &etag));
        assert!(!etag_matches(b"\"65a1b2c3-11\"", &etag));
        assert!(!etag_matches(b"65a1b2c3-10", &etag));
    }

    #[cfg(unix)]
    #[test]
    fn under_the_root_as_path_starts_with_says() {
        for (path, root) in [
            ("/srv/www", "/srv/www"),
            ("/srv/www/a.php", "/srv/www"),
            ("/srv/www/a/b", "/srv/www"),
            ("/srv/www2/a.php", "/srv/www"),
            ("/srv/ww", "/srv/www"),
            ("/srv", "/srv/www"),
            ("/etc/passwd", "/srv/www"),
            ("/anything", "/"),
            ("/", "/"),
        ] {
            let (path, root) = (Path::new(path), Path::new(root));
            assert_eq!(
                is_under(path, root),
                path.starts_with(root),
                "{path:?} {root:?}"
            );
        }
    }

    /// The lstat walk and the canonical path agree: links inside the root are followed
    /// (to their canonical path), links out are 403, `file/` and missing paths 404.
    #[cfg(unix)]
    #[test]
    fn find_follows_links_only_inside_the_root() {
        let base = std::env::temp_dir().join(format!("fcgi-http-find-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("www");
        std::fs::create_dir_all(root.join("dir/sub")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(root.join("dir/a.php"), "a").unwrap();
        std::fs::write(base.join("outside/secret"), "s").unwrap();
        std::os::unix::fs::symlink(root.join("dir"), root.join("inner")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("out")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let file = |relative: &str| match find(&root, relative) {
            Ok(Found::File(path, _)) => Ok(path),
            Ok(Found::Dir(path)) => Err(format!("dir {}", path.display())),
            Err(e) => Err(format!("{}", e.status())),
        };
        assert_eq!(file("/dir/a.php"), Ok(root.join("dir/a.php")));
        assert_eq!(file("/inner/a.php"), Ok(root.join("dir/a.php")));
        assert_eq!(file("/dir/../dir/a.php"), Ok(root.join("dir/a.php")));
        assert_eq!(file("/out/secret").unwrap_err(), "403 Forbidden");
        assert_eq!(file("/dir/a.php/").unwrap_err(), "404 Not Found");
        assert_eq!(file("/dir/a.php/x").unwrap_err(), "404 Not Found");
        assert_eq!(file("/dir/missing.php").unwrap_err(), "404 Not Found");
        assert_eq!(
            file("/dir/sub/").unwrap_err(),
            format!("dir {}", root.join("dir/sub").display())
        );
        assert_eq!(file("/").unwrap_err(), format!("dir {}", root.display()));
        let _ = std::fs::remove_dir_all(&base);
    }
}
