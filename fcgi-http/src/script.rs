//! Script resolution: from a request path to `SCRIPT_NAME`, `SCRIPT_FILENAME` and
//! `PATH_INFO`, as nginx's `root`, `fastcgi_index` and `fastcgi_split_path_info` do.

use std::borrow::Cow;

use fcgi_proto::split_path;

/// Where scripts live and how a request path names one.
///
/// ```
/// use fcgi_http::ScriptConfig;
///
/// let config = ScriptConfig::new("/srv/www").param("APP_ENV", "production");
/// let target = config.resolve("/app/index.php/users/7")?;
/// assert_eq!(target.script_name, "/app/index.php");
/// assert_eq!(target.script_filename, "/srv/www/app/index.php");
/// assert_eq!(target.path_info.as_deref(), Some("/users/7"));
/// // A directory gets the index file.
/// assert_eq!(config.resolve("/blog/")?.script_filename, "/srv/www/blog/index.php");
/// # Ok::<(), fcgi_http::HttpError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptConfig {
    document_root: String,
    index: Option<String>,
    split_extension: Option<String>,
    front_controller: Option<String>,
    allow_dotfiles: bool,
    params: Vec<(String, String)>,
}

impl ScriptConfig {
    /// Scripts under `document_root` (a path on the FastCGI server's machine, sent as
    /// `DOCUMENT_ROOT`), index file `index.php`, paths split after `.php`, no front
    /// controller, dot files refused, no extra params. A trailing `/` of the root is
    /// dropped.
    pub fn new(document_root: impl Into<String>) -> Self {
        let mut document_root = document_root.into();
        while document_root.len() > 1 && document_root.ends_with('/') {
            document_root.pop();
        }
        Self {
            document_root,
            index: Some("index.php".into()),
            split_extension: Some(".php".into()),
            front_controller: None,
            allow_dotfiles: false,
            params: Vec::new(),
        }
    }

    /// The script that runs for a path that names no script (and, in a
    /// [`Gateway`](crate::Gateway), no file and no directory either), such as
    /// `/index.php`: what nginx does with `try_files $uri $uri/ /index.php$is_args$args`
    /// and what front-controller applications (Laravel, Symfony, Slim, WordPress's
    /// pretty permalinks, Drupal) need. The script gets `SCRIPT_NAME` and
    /// `DOCUMENT_URI` = `script`, no `PATH_INFO`, and `REQUEST_URI` and
    /// `QUERY_STRING` as the client sent them. `None` (the default): such a path is
    /// 404. A name without a leading `/` gets one.
    ///
    /// ```
    /// use fcgi_http::ScriptConfig;
    ///
    /// let config = ScriptConfig::new("/srv/app/public").front_controller(Some("/index.php"));
    /// let target = config.resolve("/blog/2026/hello")?;
    /// assert_eq!(target.script_name, "/index.php");
    /// assert_eq!(target.script_filename, "/srv/app/public/index.php");
    /// assert_eq!(target.path_info, None);
    /// // A path that names a script still runs that script.
    /// assert_eq!(config.resolve("/admin.php/users")?.script_name, "/admin.php");
    /// # Ok::<(), fcgi_http::HttpError>(())
    /// ```
    pub fn front_controller(mut self, script: Option<&str>) -> Self {
        self.front_controller = script.map(|s| {
            if s.starts_with('/') {
                s.to_owned()
            } else {
                format!("/{s}")
            }
        });
        self
    }

    /// Whether paths with a segment that starts with `.` (`/.env`, `/.git/config`,
    /// `/app/.htpasswd`) are served (default `false`: they are 404, as if absent, except
    /// under `/.well-known/`, RFC 8615's place for ACME challenges and the like).
    ///
    /// ```
    /// use fcgi_http::{HttpError, ScriptConfig};
    ///
    /// let config = ScriptConfig::new("/srv/www");
    /// assert!(matches!(config.resolve("/.git/config"), Err(HttpError::NotFound)));
    /// assert!(matches!(config.resolve("/a/%2eenv"), Err(HttpError::NotFound)));
    /// assert!(config.resolve("/.well-known/acme-challenge/x").is_ok());
    /// assert!(config.allow_dotfiles(true).resolve("/.git/config").is_ok());
    /// ```
    pub fn allow_dotfiles(mut self, allow: bool) -> Self {
        self.allow_dotfiles = allow;
        self
    }

    /// The file a path ending in `/` gets (nginx's `fastcgi_index`); `None`: such a path
    /// names itself.
    pub fn index(mut self, index: Option<&str>) -> Self {
        self.index = index.map(str::to_owned);
        self
    }

    /// The extension after which a path splits into `SCRIPT_NAME` and `PATH_INFO`
    /// (matched byte for byte, see [`fcgi_proto::split_path`]); `None`: never split.
    pub fn split_extension(mut self, extension: Option<&str>) -> Self {
        self.split_extension = extension.map(str::to_owned);
        self
    }

    /// A param sent with every request; it wins over every param built from the
    /// request (nginx's `fastcgi_param`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The document root.
    pub fn document_root(&self) -> &str {
        &self.document_root
    }

    /// The index file.
    pub fn index_file(&self) -> Option<&str> {
        self.index.as_deref()
    }

    /// The split extension.
    pub fn extension(&self) -> Option<&str> {
        self.split_extension.as_deref()
    }

    /// The front controller, if any.
    pub fn front_controller_script(&self) -> Option<&str> {
        self.front_controller.as_deref()
    }

    /// Whether dot files are served.
    pub fn dotfiles_allowed(&self) -> bool {
        self.allow_dotfiles
    }

    /// Refuses a normalized path with a dot-file segment, unless they are allowed
    /// (`/.well-known/` is always open): [`HttpError::NotFound`](crate::HttpError::NotFound),
    /// as if it were absent.
    pub(crate) fn check_dotfiles(&self, path: &str) -> Result<(), crate::HttpError> {
        if self.allow_dotfiles {
            return Ok(());
        }
        let rest = path.strip_prefix("/.well-known/").unwrap_or(path);
        if rest.split('/').any(|segment| segment.starts_with('.')) {
            return Err(crate::HttpError::NotFound);
        }
        Ok(())
    }

    /// The front controller's target, if there is one.
    pub(crate) fn front_controller_target(&self) -> Option<ScriptTarget> {
        let script = self.front_controller.as_ref()?;
        Some(self.target(script.clone(), None, script.clone()))
    }

    /// The extra params, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The script a request path names: the path is decoded and normalized (see
    /// [`normalize_path`]), split after the extension, and a script name ending in `/`
    /// gets the index file (as nginx's `fastcgi_index` does to
    /// `$fastcgi_script_name`); a path that names no script goes to the
    /// [front controller](Self::front_controller) when there is one. A path with a dot
    /// file in it is 404 (see [`allow_dotfiles`](Self::allow_dotfiles)). The file is not
    /// looked for: the document root may be on another machine.
    pub fn resolve(&self, path: &str) -> Result<ScriptTarget, crate::HttpError> {
        let path = normalize_path(path)?;
        self.check_dotfiles(&path)?;
        let extension = self.split_extension.as_deref().unwrap_or("");
        let (mut script_name, path_info) = match split_path(path.as_bytes(), extension.as_bytes()) {
            // `path` is UTF-8 and the split falls just after an ASCII extension.
            Ok(Some(split)) => {
                let at = split.script_name.len();
                (path[..at].to_owned(), Some(path[at..].to_owned()))
            }
            Ok(None) if !path.ends_with('/') || self.index.is_none() => {
                match self.front_controller_target() {
                    Some(target) => return Ok(target),
                    None => (path.clone().into_owned(), None),
                }
            }
            Ok(None) => (path.clone().into_owned(), None),
            Err(_) => return Err(crate::HttpError::NotFound),
        };
        let mut document_uri = path.into_owned();
        if script_name.ends_with('/') {
            if let Some(index) = &self.index {
                script_name.push_str(index);
                document_uri.push_str(index);
            }
        }
        Ok(self.target(script_name, path_info, document_uri))
    }

    /// A target for a script name already resolved.
    pub(crate) fn target(
        &self,
        script_name: String,
        path_info: Option<String>,
        document_uri: String,
    ) -> ScriptTarget {
        let mut script_filename =
            String::with_capacity(self.document_root.len() + script_name.len());
        script_filename.push_str(self.document_root.trim_end_matches('/'));
        script_filename.push_str(&script_name);
        ScriptTarget {
            script_name,
            script_filename,
            path_info: path_info.filter(|p| !p.is_empty()),
            document_uri,
        }
    }
}

/// The script a request goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScriptTarget {
    /// `SCRIPT_NAME`: the script's URI path (`/app/index.php`).
    pub script_name: String,
    /// `SCRIPT_FILENAME`: the document root and the script name.
    pub script_filename: String,
    /// `PATH_INFO`: what followed the script name, when not empty (`/users/7`).
    pub path_info: Option<String>,
    /// `DOCUMENT_URI`: the decoded, normalized request path, index file included.
    pub document_uri: String,
}

/// Decodes `%XX` escapes in a request path and normalizes it as nginx does before it
/// matches anything: `//` merges, `.` segments go, `..` removes the segment before it.
///
/// Errors: a path that does not start with `/`, a bad escape, NUL, CR or LF (PHP reads
/// params as C strings; `%0a` is the CVE-2019-11043 shape) or bytes that are not UTF-8
/// are [`HttpError::BadRequest`](crate::HttpError::BadRequest); a `..` that climbs
/// above the root is [`HttpError::Forbidden`](crate::HttpError::Forbidden). A path
/// that needs no change is borrowed, not copied.
///
/// ```
/// use fcgi_http::{normalize_path, HttpError};
///
/// assert_eq!(normalize_path("/a/./b//c/../d.php").unwrap(), "/a/b/d.php");
/// assert_eq!(normalize_path("/caf%C3%A9/").unwrap(), "/café/");
/// assert!(matches!(normalize_path("/../etc/passwd"), Err(HttpError::Forbidden)));
/// assert!(matches!(normalize_path("/x.php%0a"), Err(HttpError::BadRequest(_))));
/// ```
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, crate::HttpError> {
    use crate::HttpError::{BadRequest, Forbidden};
    if !path.starts_with('/') {
        return Err(BadRequest("the request path is not absolute"));
    }
    let bytes = path.as_bytes();
    let control = |b: &u8| matches!(b, 0 | b'\r' | b'\n');
    if bytes.iter().any(control) {
        return Err(BadRequest("control bytes in the request path"));
    }
    let clean =
        !bytes.contains(&b'%') && !bytes.windows(2).any(|pair| pair == b"//" || pair == b"/.");
    if clean {
        return Ok(Cow::Borrowed(path));
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(BadRequest("a bad %-escape in the request path"));
            };
            decoded.push((h * 16 + l) as u8);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    if decoded.iter().any(control) {
        return Err(BadRequest("control bytes in the request path"));
    }
    let decoded =
        String::from_utf8(decoded).map_err(|_| BadRequest("the request path is not UTF-8"))?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(Forbidden);
                }
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpError;

    #[test]
    fn normalize_cases() {
        for (input, expected) in [
            ("/", "/"),
            ("/a", "/a"),
            ("/a/", "/a/"),
            ("//a///b", "/a/b"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a/b/../", "/a/"),
            ("/a/%2e%2E/b", "/b"),
            ("/a%2Fb", "/a/b"),
            ("/%20x", "/ x"),
            ("/.hidden", "/.hidden"),
            ("/a/..b", "/a/..b"),
            ("/x.php/", "/x.php/"),
        ] {
            assert_eq!(normalize_path(input).unwrap(), expected, "{input}");
        }
        for (input, forbidden) in [
            ("/..", true),
            ("/a/../..", true),
            ("/%2e%2e/x", true),
            ("a", false),
            ("", false),
            ("/%", false),
            ("/%4", false),
            ("/%zz", false),
            ("/%00", false),
            ("/%0d", false),
            ("/a\nb", false),
            ("/%ff", false),
        ] {
            let result = normalize_path(input);
            match result {
                Err(HttpError::Forbidden) => assert!(forbidden, "{input}"),
                Err(HttpError::BadRequest(_)) => assert!(!forbidden, "{input}"),
                other => panic!("{input}: {other:?}"),
            }
        }
        assert!(matches!(normalize_path("/a/b.php"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn resolution() {
        let c = ScriptConfig::new("/srv/www/");
        assert_eq!(c.document_root(), "/srv/www");
        let t = c.resolve("/").unwrap();
        assert_eq!(
            (t.script_name.as_str(), t.script_filename.as_str()),
            ("/index.php", "/srv/www/index.php")
        );
        assert_eq!(t.document_uri, "/index.php");
        assert_eq!(t.path_info, None);
        let t = c.resolve("/a.php/").unwrap();
        assert_eq!(t.script_name, "/a.php");
        assert_eq!(t.path_info.as_deref(), Some("/"));
        let t = c.resolve("/a.PHP/x").unwrap();
        assert_eq!(t.script_name, "/a.PHP/x");
        assert!(matches!(c.resolve("/.php"), Err(HttpError::NotFound)));
        let c = c.index(None).split_extension(None);
        assert_eq!(c.resolve("/a.php/b").unwrap().script_name, "/a.php/b");
        assert_eq!(c.resolve("/d/").unwrap().script_name, "/d/");
        let root = ScriptConfig::new("/");
        assert_eq!(root.resolve("/x.php").unwrap().script_filename, "/x.php");
    }
}
