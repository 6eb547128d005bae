//! CGI params: the ordered set sent as `PARAMS`, a builder from HTTP-shaped input with
//! nginx's default params and a secure header policy, and path splitting.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::{ParamError, PathError};
use crate::nv;
use crate::record::MAX_CONTENT_LEN;

#[derive(Clone, Copy, Debug)]
struct Entry {
    name_start: usize,
    name_len: usize,
    value_start: usize,
    value_len: usize,
}

/// An ordered set of CGI params.
///
/// Params keep the order in which they were first inserted; inserting a name again
/// replaces its value in place. Every name is non-empty printable ASCII without `=`; no
/// value holds NUL, CR or LF (PHP reads params as C strings); every pair fits in one
/// `PARAMS` record. Names and values live in one buffer, so a set costs three allocations
/// however many params it has; clones share them (a clone is a reference count, and a
/// clone that is changed copies them first), so the clone a request takes costs none.
///
/// ```
/// use fcgi_proto::Params;
///
/// let mut params = Params::new();
/// params.insert("REQUEST_METHOD", "GET")?;
/// params.insert("SCRIPT_FILENAME", "/srv/www/index.php")?;
/// params.insert("REQUEST_METHOD", "POST")?; // replaces, keeps the position
/// let names: Vec<&[u8]> = params.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, [&b"REQUEST_METHOD"[..], b"SCRIPT_FILENAME"]);
/// assert_eq!(params.get("REQUEST_METHOD"), Some(&b"POST"[..]));
/// assert!(params.insert("PATH", "a\0b").is_err());
/// # Ok::<(), fcgi_proto::ParamError>(())
/// ```
#[derive(Clone, Default)]
pub struct Params {
    /// Shared by clones, copied on the first change to a shared one.
    pairs: Arc<Pairs>,
}

/// What [`Params`] hold.
#[derive(Clone, Default)]
struct Pairs {
    /// Each pair as it goes on the wire (name-value encoded), in order. Unless `stale`,
    /// `buf` is exactly the concatenation of the entries' encodings, so a request's
    /// `PARAMS` content is copied in one piece.
    buf: Vec<u8>,
    entries: Vec<Entry>,
    /// Some bytes of `buf` belong to no pair any more (a value replaced by one of another
    /// length, a pair removed or joined): encode pair by pair.
    stale: bool,
    /// Which entry is `CONTENT_LENGTH`, kept as pairs come and go: each request looks it
    /// up (to set it to the body's length and to hold the body to it), and a look-up
    /// that finds no such param would otherwise compare every name.
    content_length_at: Option<usize>,
}

const CONTENT_LENGTH: &[u8] = b"CONTENT_LENGTH";

impl Pairs {
    /// Appends a new pair of a `name_len`-byte name and a `value_len`-byte value, which
    /// `write` appends to the buffer, name then value.
    fn push_pair_with(
        &mut self,
        name_len: usize,
        value_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        nv::put_length(&mut self.buf, name_len);
        nv::put_length(&mut self.buf, value_len);
        let name_start = self.buf.len();
        write(&mut self.buf);
        debug_assert_eq!(self.buf.len(), name_start + name_len + value_len);
        if &self.buf[name_start..name_start + name_len] == CONTENT_LENGTH {
            self.content_length_at = Some(self.entries.len());
        }
        self.entries.push(Entry {
            name_start,
            name_len,
            value_start: name_start + name_len,
            value_len,
        });
    }

    /// Appends a pair whose name is one of the builder's own (valid, and not yet in
    /// the set), after checking its value.
    fn push_new(&mut self, name: &'static str, value: &[u8]) -> Result<(), ParamError> {
        let name = name.as_bytes();
        debug_assert!(check_name(name).is_ok());
        debug_assert!(!self
            .entries
            .iter()
            .any(|e| &self.buf[e.name_start..e.name_start + e.name_len] == name));
        check_value(name, value)?;
        self.push_pair_with(name.len(), value.len(), |buf| {
            buf.extend_from_slice(name);
            buf.extend_from_slice(value);
        });
        Ok(())
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Params {}

fn check_name(name: &[u8]) -> Result<(), ParamError> {
    if name.is_empty() {
        return Err(ParamError::EmptyName);
    }
    if name
        .iter()
        .any(|&b| !(0x21..=0x7E).contains(&b) || b == b'=')
    {
        return Err(ParamError::InvalidName(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    Ok(())
}

fn has_forbidden_byte(value: &[u8]) -> bool {
    // Most params and headers are short: a plain loop is cheaper there than setting up
    // memchr's vector search (callgrind, a gateway request of ~20 params and 3 headers:
    // `build()` 6 700 -> 5 600 instructions).
    if value.len() < 32 {
        return value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n');
    }
    memchr::memchr3(0, b'\r', b'\n', value).is_some()
}

fn check_pair(name: &[u8], value: &[u8]) -> Result<(), ParamError> {
    check_name(name)?;
    check_value(name, value)
}

/// The value of a pair whose name is valid: no NUL, CR or LF, and the pair fits a record.
fn check_value(name: &[u8], value: &[u8]) -> Result<(), ParamError> {
    if has_forbidden_byte(value) {
        return Err(ParamError::InvalidValue(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let size = nv::encoded_len(name, value);
    if size > MAX_CONTENT_LEN {
        return Err(pair_too_large(name, size));
    }
    Ok(())
}

impl Params {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `count` params of `bytes` name and value bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Self {
            pairs: Arc::new(Pairs {
                // Each pair's two lengths take at least two bytes.
                buf: Vec::with_capacity(bytes + 2 * count),
                entries: Vec::with_capacity(count),
                stale: false,
                content_length_at: None,
            }),
        }
    }

    /// Number of params.
    pub fn len(&self) -> usize {
        self.pairs.entries.len()
    }

    /// Whether there are no params.
    pub fn is_empty(&self) -> bool {
        self.pairs.entries.is_empty()
    }

    fn name_of(&self, e: &Entry) -> &[u8] {
        &self.pairs.buf[e.name_start..e.name_start + e.name_len]
    }

    fn value_of(&self, e: &Entry) -> &[u8] {
        &self.pairs.buf[e.value_start..e.value_start + e.value_len]
    }

    fn position(&self, name: &[u8]) -> Option<usize> {
        if name == CONTENT_LENGTH {
            return self.pairs.content_length_at;
        }
        // Lengths first: most names differ in length, and that needs no look at `buf`.
        self.pairs
            .entries
            .iter()
            .position(|e| e.name_len == name.len() && self.name_of(e) == name)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let i = self.position(name.as_ref())?;
        Some(self.value_of(&self.pairs.entries[i]))
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: impl AsRef<[u8]>) -> bool {
        self.position(name.as_ref()).is_some()
    }

    /// Sets `name` to `value`: appended if new, replaced in place otherwise.
    pub fn insert(
        &mut self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ParamError> {
        let (name, value) = (name.as_ref(), value.as_ref());
        check_pair(name, value)?;
        self.insert_checked(name, value);
        Ok(())
    }

    /// Appends a new pair, encoded.
    fn push_pair(&mut self, name: &[u8], value: &[u8]) {
        self.push_pair_with(name.len(), value.len(), |buf| {
            buf.extend_from_slice(name);
            buf.extend_from_slice(value);
        });
    }

    /// Appends a new pair of a `name_len`-byte name and a `value_len`-byte value, which
    /// `write` appends to the buffer, name then value.
    fn push_pair_with(
        &mut self,
        name_len: usize,
        value_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        Arc::make_mut(&mut self.pairs).push_pair_with(name_len, value_len, write);
    }

    /// Drops the last pair from the encoding when the encoding is exact; answers whether
    /// it did.
    fn pop_exact(&mut self, i: usize) -> bool {
        if self.pairs.stale || i + 1 != self.pairs.entries.len() {
            return false;
        }
        let p = Arc::make_mut(&mut self.pairs);
        let e = p.entries[i];
        p.buf
            .truncate(e.name_start - length_len(e.name_len) - length_len(e.value_len));
        p.entries.pop();
        if p.content_length_at == Some(i) {
            p.content_length_at = None;
        }
        true
    }

    fn insert_checked(&mut self, name: &[u8], value: &[u8]) {
        match self.position(name) {
            Some(i) if self.pairs.entries[i].value_len == value.len() => {
                // Same length: the encoding stays exact.
                let p = Arc::make_mut(&mut self.pairs);
                let e = p.entries[i];
                p.buf[e.value_start..e.value_start + value.len()].copy_from_slice(value);
            }
            Some(i) if self.pop_exact(i) => self.push_pair(name, value),
            Some(i) => {
                let p = Arc::make_mut(&mut self.pairs);
                p.stale = true;
                let e = &mut p.entries[i];
                if value.len() <= e.value_len {
                    // Overwrite in place; the old value's tail is simply unused.
                    p.buf[e.value_start..e.value_start + value.len()].copy_from_slice(value);
                } else {
                    e.value_start = p.buf.len();
                    p.buf.extend_from_slice(value);
                }
                e.value_len = value.len();
            }
            None => self.push_pair(name, value),
        }
    }

    /// Removes `name`; returns whether it was set.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) -> bool {
        match self.position(name.as_ref()) {
            Some(i) => {
                if !self.pop_exact(i) {
                    let p = Arc::make_mut(&mut self.pairs);
                    p.entries.remove(i);
                    p.stale = true;
                    p.content_length_at = match p.content_length_at {
                        Some(at) if at == i => None,
                        Some(at) if at > i => Some(at - 1),
                        at => at,
                    };
                }
                true
            }
            None => false,
        }
    }

    /// The params in order, as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs
            .entries
            .iter()
            .map(|e| (self.name_of(e), self.value_of(e)))
    }

    /// The size of all pairs encoded, without record headers.
    pub fn encoded_len(&self) -> usize {
        match self.encoded() {
            Some(pairs) => pairs.len(),
            None => self.iter().map(|(n, v)| nv::encoded_len(n, v)).sum(),
        }
    }

    /// Every pair encoded, in order, when that is at hand in one piece.
    pub(crate) fn encoded(&self) -> Option<&[u8]> {
        (!self.pairs.stale).then_some(&self.pairs.buf[..])
    }

    /// `CONTENT_LENGTH` as a number: `Ok(None)` when unset or empty, an error when it is
    /// not a decimal number.
    pub fn content_length(&self) -> Result<Option<u64>, crate::UsageError> {
        match self.get("CONTENT_LENGTH") {
            None | Some(b"") => Ok(None),
            Some(v) => parse_decimal(v)
                .map(Some)
                .ok_or(crate::UsageError::InvalidContentLength),
        }
    }
}

/// Parses ASCII decimal digits (no sign, no spaces) into a `u64`; `None` when it does
/// not fit.
pub(crate) fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Which request headers become `HTTP_*` params.
///
/// The default is nginx's: names made only of `[A-Za-z0-9-]` pass; any other name is
/// dropped, since `X-User_Id`, `X.User.Id` and `X-User-Id` would all reach the
/// application as `HTTP_X_USER_ID` and let a client spoof a header a proxy sets; `Proxy`
/// is dropped (httpoxy, CVE-2016-5385). NUL, CR or LF in any header name or value is an
/// error whatever the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderPolicy {
    /// Drop the `Proxy` header (default `true`).
    pub drop_proxy: bool,
    /// Pass names with `_`, folded like `-` (default `false`; nginx's
    /// `underscores_in_headers`).
    pub allow_underscores: bool,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        Self {
            drop_proxy: true,
            allow_underscores: false,
        }
    }
}

impl HeaderPolicy {
    /// Whether a header of this name passes (names with NUL, CR or LF are an error before
    /// this is asked).
    pub fn allows(&self, name: &[u8]) -> bool {
        !name.is_empty()
            && name.iter().all(|&b| {
                b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && self.allow_underscores)
            })
            && !(self.drop_proxy && name.eq_ignore_ascii_case(b"proxy"))
    }
}

/// Builds a request's params from HTTP-shaped input, as nginx's `fastcgi_params` does.
///
/// In order: `SCRIPT_FILENAME`, `QUERY_STRING`, `REQUEST_METHOD`, `CONTENT_TYPE`,
/// `CONTENT_LENGTH`, `SCRIPT_NAME`, `REQUEST_URI`, `DOCUMENT_URI`, `DOCUMENT_ROOT`,
/// `SERVER_PROTOCOL`, `REQUEST_SCHEME`, `HTTPS` (when on), `GATEWAY_INTERFACE`,
/// `SERVER_SOFTWARE`, `REMOTE_ADDR`, `REMOTE_PORT`, `SERVER_ADDR`, `SERVER_PORT`,
/// `SERVER_NAME`, `REDIRECT_STATUS`, `PATH_INFO` and `PATH_TRANSLATED` (when a path
/// was split), then one `HTTP_*` param per header name in the order first seen, then the
/// caller's own params, which win over all of the above. A param whose input is not
/// given is left out. Same-name headers are joined with `", "` (`Cookie` with `"; "`);
/// `Content-Type` and `Content-Length` become `CONTENT_TYPE` and `CONTENT_LENGTH`; an
/// explicit [`content_length`](Self::content_length) wins over the header.
///
/// ```
/// use fcgi_proto::ParamsBuilder;
///
/// let params = ParamsBuilder::new("POST", "/index.php?page=2")
///     .document_root("/srv/www")
///     .script("/index.php", "/srv/www/index.php")
///     .header("Host", "example.com")
///     .header("Cookie", "a=1")
///     .header("Cookie", "b=2")
///     .header("X-Forwarded_For", "spoofed") // dropped: underscore
///     .header("Proxy", "http://evil/")      // dropped: httpoxy
///     .content_length(5)
///     .param("APP_ENV", "production")
///     .build()?;
/// assert_eq!(params.get("QUERY_STRING"), Some(&b"page=2"[..]));
/// assert_eq!(params.get("CONTENT_LENGTH"), Some(&b"5"[..]));
/// assert_eq!(params.get("HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
/// assert_eq!(params.get("HTTP_HOST"), Some(&b"example.com"[..]));
/// assert!(!params.contains("HTTP_X_FORWARDED_FOR") && !params.contains("HTTP_PROXY"));
/// # Ok::<(), fcgi_proto::ParamError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ParamsBuilder<'a> {
    method: &'a [u8],
    request_uri: &'a [u8],
    script_name: Option<&'a [u8]>,
    script_filename: Option<&'a [u8]>,
    document_root: Option<&'a [u8]>,
    document_uri: Option<&'a [u8]>,
    path_info: Option<&'a [u8]>,
    server_name: Option<&'a [u8]>,
    server_protocol: &'a [u8],
    server_software: &'a [u8],
    remote_addr: Option<SocketAddr>,
    server_addr: Option<SocketAddr>,
    https: bool,
    content_length: Option<u64>,
    policy: HeaderPolicy,
    /// The request headers as given, in order (NUL, CR and LF already refused): the
    /// policy is applied to them, and their names folded, by `build`, so the policy in
    /// force then governs every header, whenever it was set.
    headers: Vec<(&'a [u8], &'a [u8])>,
    extra: Params,
    error: Option<ParamError>,
}

/// A header name's byte as it appears in its `HTTP_*` param: `-` as `_`, letters upper
/// case.
fn fold_byte(b: u8) -> u8 {
    match b {
        b'-' => b'_',
        b => b.to_ascii_uppercase(),
    }
}

/// Whether two header names fold into the same `HTTP_*` param.
fn same_folded(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold_byte(x) == fold_byte(y))
}

/// `HTTP_` and the folded name: the param a header becomes.
fn folded_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + name.len());
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&b| fold_byte(b)));
    out
}

/// The error for a pair of `size` encoded bytes, more than a record holds; long names
/// are cut short.
fn pair_too_large(name: &[u8], size: usize) -> ParamError {
    let mut shown = String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned();
    if name.len() > 64 {
        shown.push_str("...");
    }
    ParamError::PairTooLarge { name: shown, size }
}

/// The number of bytes a length takes in a name-value pair.
fn length_len(n: usize) -> usize {
    if n < 128 {
        1
    } else {
        4
    }
}

impl<'a> ParamsBuilder<'a> {
    /// Starts from the request method and the request target as received (path and
    /// query, not decoded).
    pub fn new(method: &'a str, request_uri: &'a str) -> Self {
        Self::from_bytes(method.as_bytes(), request_uri.as_bytes())
    }

    /// A `GET` of the script file `script_filename`, with the path of `request_uri`
    /// (before any `?`) as `SCRIPT_NAME`: a health check or a one-off request.
    ///
    /// ```
    /// let params = fcgi_proto::ParamsBuilder::get("/srv/www/status.php", "/status.php?full")
    ///     .build()?;
    /// assert_eq!(params.get("SCRIPT_NAME"), Some(&b"/status.php"[..]));
    /// assert_eq!(params.get("QUERY_STRING"), Some(&b"full"[..]));
    /// # Ok::<(), fcgi_proto::ParamError>(())
    /// ```
    pub fn get(script_filename: &'a str, request_uri: &'a str) -> Self {
        let path = request_uri.split('?').next().unwrap_or(request_uri);
        Self::new("GET", request_uri).script(path, script_filename)
    }

    /// Like [`new`](Self::new) for a request target that is not UTF-8.
    pub fn from_bytes(method: &'a [u8], request_uri: &'a [u8]) -> Self {
        Self {
            method,
            request_uri,
            script_name: None,
            script_filename: None,
            document_root: None,
            document_uri: None,
            path_info: None,
            server_name: None,
            server_protocol: b"HTTP/1.1",
            server_software: b"fcgi",
            remote_addr: None,
            server_addr: None,
            https: false,
            content_length: None,
            policy: HeaderPolicy::default(),
            headers: Vec::new(),
            extra: Params::new(),
            error: None,
        }
    }

    /// `SCRIPT_NAME` (the script's URI path) and `SCRIPT_FILENAME` (its file). Without
    /// it, `SCRIPT_NAME` is the path of the request target and `SCRIPT_FILENAME` is left
    /// out.
    pub fn script(mut self, script_name: &'a str, script_filename: &'a str) -> Self {
        self.script_name = Some(script_name.as_bytes());
        self.script_filename = Some(script_filename.as_bytes());
        self
    }

    /// `SCRIPT_FILENAME` alone.
    pub fn script_filename(mut self, script_filename: &'a str) -> Self {
        self.script_filename = Some(script_filename.as_bytes());
        self
    }

    /// `DOCUMENT_ROOT`.
    pub fn document_root(mut self, document_root: &'a str) -> Self {
        self.document_root = Some(document_root.as_bytes());
        self
    }

    /// `DOCUMENT_URI` (default: the path of the request target).
    pub fn document_uri(mut self, document_uri: &'a str) -> Self {
        self.document_uri = Some(document_uri.as_bytes());
        self
    }

    /// `PATH_INFO`, and `PATH_TRANSLATED` when a document root is set. See [`split_path`].
    pub fn path_info(mut self, path_info: &'a str) -> Self {
        self.path_info = Some(path_info.as_bytes());
        self
    }

    /// `SERVER_NAME` (default: the `Host` header without its port, else `SERVER_ADDR`).
    pub fn server_name(mut self, server_name: &'a str) -> Self {
        self.server_name = Some(server_name.as_bytes());
        self
    }

    /// `SERVER_PROTOCOL` (default `HTTP/1.1`).
    pub fn server_protocol(mut self, protocol: &'a str) -> Self {
        self.server_protocol = protocol.as_bytes();
        self
    }

    /// `SERVER_SOFTWARE` (default `fcgi`).
    pub fn server_software(mut self, software: &'a str) -> Self {
        self.server_software = software.as_bytes();
        self
    }

    /// `REMOTE_ADDR` and `REMOTE_PORT`.
    pub fn remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// `SERVER_ADDR` and `SERVER_PORT`.
    pub fn server_addr(mut self, addr: SocketAddr) -> Self {
        self.server_addr = Some(addr);
        self
    }

    /// `HTTPS=on` and `REQUEST_SCHEME=https` when true; `REQUEST_SCHEME=http` otherwise.
    pub fn https(mut self, on: bool) -> Self {
        self.https = on;
        self
    }

    /// `CONTENT_LENGTH`: the number of body bytes that will be sent, which the
    /// [`Connection`](crate::Connection) then holds the caller to.
    pub fn content_length(mut self, len: u64) -> Self {
        self.content_length = Some(len);
        self
    }

    /// The policy for request headers (default: [`HeaderPolicy::default`]).
    ///
    /// It governs every header, those added before this call as well as those added
    /// after: headers are kept as given and the policy is applied by
    /// [`build`](Self::build). Called more than once, the last policy wins.
    ///
    /// ```
    /// use fcgi_proto::{HeaderPolicy, ParamsBuilder};
    ///
    /// let mut policy = HeaderPolicy::default();
    /// policy.allow_underscores = true;
    /// policy.drop_proxy = false;
    /// let params = ParamsBuilder::new("GET", "/index.php")
    ///     .header("X-User_Id", "42")
    ///     .header("Proxy", "http://proxy.internal:3128/")
    ///     .header_policy(policy) // applies to the headers above too
    ///     .build()?;
    /// assert_eq!(params.get("HTTP_X_USER_ID"), Some(&b"42"[..]));
    /// assert_eq!(params.get("HTTP_PROXY"), Some(&b"http://proxy.internal:3128/"[..]));
    /// # Ok::<(), fcgi_proto::ParamError>(())
    /// ```
    pub fn header_policy(mut self, policy: HeaderPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds a request header. Headers the [policy](Self::header_policy) drops are left
    /// out; NUL, CR or LF make [`build`](Self::build) fail.
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.add_header(name.as_bytes(), value.as_bytes());
        self
    }

    /// Adds a request header given as bytes (values may be any bytes but NUL, CR, LF).
    pub fn header_bytes(mut self, name: &'a [u8], value: &'a [u8]) -> Self {
        self.add_header(name, value);
        self
    }

    fn fail(&mut self, e: ParamError) {
        self.error.get_or_insert(e);
    }

    fn add_header(&mut self, name: &'a [u8], value: &'a [u8]) {
        if has_forbidden_byte(name) {
            return self.fail(ParamError::InvalidHeaderName(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        if has_forbidden_byte(value) {
            return self.fail(ParamError::InvalidHeaderValue(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        self.headers.push((name, value));
    }

    /// Room for `count` more headers (one allocation for a request's headers).
    #[cfg(feature = "http")]
    pub(crate) fn reserve_headers(mut self, count: usize) -> Self {
        self.headers.reserve(count);
        self
    }

    /// Whether a header of this name becomes an `HTTP_*` param under `policy` (not
    /// dropped, and not `Content-Type` or `Content-Length`).
    fn is_http_param(policy: &HeaderPolicy, name: &[u8]) -> bool {
        policy.allows(name)
            && !name.eq_ignore_ascii_case(b"content-type")
            && !name.eq_ignore_ascii_case(b"content-length")
    }

    /// Sets a param of the caller's own; it wins over every param built from the request.
    pub fn param(mut self, name: &'a str, value: &'a str) -> Self {
        if let Err(e) = self.extra.insert(name, value) {
            self.fail(e);
        }
        self
    }

    /// Builds the params; the first invalid input is the error.
    pub fn build(self) -> Result<Params, ParamError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (path, query) = match memchr::memchr(b'?', self.request_uri) {
            Some(i) => (&self.request_uri[..i], &self.request_uri[i + 1..]),
            None => (self.request_uri, &b""[..]),
        };
        // The headers the policy lets through: `Content-Type` (the first),
        // `Content-Length` (all alike) and the size of the rest.
        let policy = self.policy;
        let mut content_type = None;
        let mut header_content_length = None;
        let mut header_bytes = 0;
        for &(name, value) in &self.headers {
            if !policy.allows(name) {
                continue;
            }
            if name.eq_ignore_ascii_case(b"content-type") {
                content_type.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                match header_content_length {
                    Some(old) if old != value => return Err(ParamError::InvalidContentLength),
                    _ => header_content_length = Some(value),
                }
            } else {
                // "HTTP_", two lengths of up to 4 bytes, a separator if joined.
                header_bytes += 5 + 8 + 2 + name.len() + value.len();
            }
        }
        let content_length = match (self.content_length, header_content_length) {
            (Some(n), _) => Some(n),
            (None, Some(h)) => Some(parse_decimal(h).ok_or(ParamError::InvalidContentLength)?),
            (None, None) => None,
        };
        // The builder's own params, each name once: appended without a look-up, into a
        // set not yet shared (no reference count to check per pair).
        let count = 24 + self.headers.len() + self.extra.len();
        let mut p = Pairs {
            buf: Vec::with_capacity(512 + header_bytes + self.extra.pairs.buf.len() + 2 * count),
            entries: Vec::with_capacity(count),
            stale: false,
            content_length_at: None,
        };
        let mut scratch = [0u8; 64];
        let mut number = itoa::Buffer::new();
        let put = |p: &mut Pairs, name: &'static str, value: &[u8]| p.push_new(name, value);

        if let Some(f) = self.script_filename {
            put(&mut p, "SCRIPT_FILENAME", f)?;
        }
        put(&mut p, "QUERY_STRING", query)?;
        put(&mut p, "REQUEST_METHOD", self.method)?;
        if let Some(t) = content_type {
            put(&mut p, "CONTENT_TYPE", t)?;
        }
        if let Some(n) = content_length {
            put(&mut p, "CONTENT_LENGTH", number.format(n).as_bytes())?;
        }
        put(&mut p, "SCRIPT_NAME", self.script_name.unwrap_or(path))?;
        put(&mut p, "REQUEST_URI", self.request_uri)?;
        put(&mut p, "DOCUMENT_URI", self.document_uri.unwrap_or(path))?;
        if let Some(root) = self.document_root {
            put(&mut p, "DOCUMENT_ROOT", root)?;
        }
        put(&mut p, "SERVER_PROTOCOL", self.server_protocol)?;
        put(
            &mut p,
            "REQUEST_SCHEME",
            if self.https { b"https" } else { b"http" },
        )?;
        if self.https {
            put(&mut p, "HTTPS", b"on")?;
        }
        put(&mut p, "GATEWAY_INTERFACE", b"CGI/1.1")?;
        put(&mut p, "SERVER_SOFTWARE", self.server_software)?;
        if let Some(a) = self.remote_addr {
            put(&mut p, "REMOTE_ADDR", format_ip(&mut scratch, a.ip()))?;
            put(&mut p, "REMOTE_PORT", number.format(a.port()).as_bytes())?;
        }
        if let Some(a) = self.server_addr {
            put(&mut p, "SERVER_ADDR", format_ip(&mut scratch, a.ip()))?;
            put(&mut p, "SERVER_PORT", number.format(a.port()).as_bytes())?;
        }
        // `HTTP_HOST`'s value: the one `Host` header, or all of them joined.
        let mut hosts = self
            .headers
            .iter()
            .filter(|&&(name, _)| name.eq_ignore_ascii_case(b"host") && policy.allows(name))
            .map(|&(_, value)| value);
        let joined_hosts;
        let host = match (hosts.next(), hosts.next()) {
            (None, _) => None,
            (Some(one), None) => Some(one),
            (Some(first), Some(second)) => {
                let mut joined = first.to_vec();
                for value in std::iter::once(second).chain(hosts) {
                    joined.extend_from_slice(b", ");
                    joined.extend_from_slice(value);
                }
                joined_hosts = joined;
                Some(&joined_hosts[..])
            }
        }
        .map(strip_port);
        match (self.server_name, host) {
            (Some(name), _) | (None, Some(name)) => put(&mut p, "SERVER_NAME", name)?,
            (None, None) => {
                if let Some(a) = self.server_addr {
                    put(&mut p, "SERVER_NAME", format_ip(&mut scratch, a.ip()))?;
                }
            }
        }
        put(&mut p, "REDIRECT_STATUS", b"200")?;
        if let Some(info) = self.path_info {
            put(&mut p, "PATH_INFO", info)?;
            if let Some(root) = self.document_root {
                let mut translated = Vec::with_capacity(root.len() + info.len());
                translated.extend_from_slice(root.strip_suffix(b"/").unwrap_or(root));
                translated.extend_from_slice(info);
                put(&mut p, "PATH_TRANSLATED", &translated)?;
            }
        }
        self.put_headers(&mut p)?;
        let mut p = Params { pairs: Arc::new(p) };
        for (name, value) in self.extra.iter() {
            p.insert_checked(name, value);
        }
        Ok(p)
    }

    /// Appends one `HTTP_*` param per header name the policy lets through, in the order
    /// first seen, same-name headers joined, each written once into `p`'s buffer.
    fn put_headers(&self, p: &mut Pairs) -> Result<(), ParamError> {
        let policy = &self.policy;
        for (i, &(name, value)) in self.headers.iter().enumerate() {
            let same = |&&(other, _): &&(&[u8], &[u8])| {
                same_folded(other, name) && Self::is_http_param(policy, other)
            };
            // Joined with the first header of its name, or not a param at all.
            if !Self::is_http_param(policy, name) || self.headers[..i].iter().any(|h| same(&h)) {
                continue;
            }
            let later = self.headers[i + 1..].iter().filter(same).map(|&(_, v)| v);
            let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                b"; "
            } else {
                b", "
            };
            let name_len = 5 + name.len();
            let value_len = value.len()
                + later
                    .clone()
                    .map(|v| separator.len() + v.len())
                    .sum::<usize>();
            let size = length_len(name_len) + length_len(value_len) + name_len + value_len;
            if size > MAX_CONTENT_LEN {
                return Err(pair_too_large(&folded_name(name), size));
            }
            // A folded name is `HTTP_` and bytes the policy allows: a valid param name;
            // no value holds NUL, CR or LF (refused when the header was added); and it is
            // new: no other param starts with `HTTP_`, and later headers of this name were
            // joined here.
            p.push_pair_with(name_len, value_len, |buf| {
                buf.extend_from_slice(b"HTTP_");
                buf.extend(name.iter().map(|&b| fold_byte(b)));
                buf.extend_from_slice(value);
                for v in later {
                    buf.extend_from_slice(separator);
                    buf.extend_from_slice(v);
                }
            });
        }
        Ok(())
    }
}

/// The host part of a `Host` header value (`example.com:8080` -> `example.com`,
/// `[::1]:80` -> `[::1]`).
fn strip_port(host: &[u8]) -> &[u8] {
    match memchr::memrchr(b':', host) {
        Some(i)
            if !host[i + 1..].is_empty()
                && host[i + 1..].iter().all(u8::is_ascii_digit)
                && !host[..i].ends_with(b":") =>
        {
            if host.starts_with(b"[") && !host[..i].ends_with(b"]") {
                host
            } else {
                &host[..i]
            }
        }
        _ => host,
    }
}

/// An IP address as `Display` writes it; IPv4 through `itoa` (the common case, a few
/// times per request: `Display` and its formatting machinery cost several times more),
/// IPv6 through `Display`.
fn format_ip(buf: &mut [u8; 64], ip: std::net::IpAddr) -> &[u8] {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            let mut at = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[at] = b'.';
                    at += 1;
                }
                let octet = digits.format(octet).as_bytes();
                buf[at..at + octet.len()].copy_from_slice(octet);
                at += octet.len();
            }
            &buf[..at]
        }
        std::net::IpAddr::V6(v6) => format_into(buf, format_args!("{v6}")),
    }
}

fn format_into<'b>(buf: &'b mut [u8; 64], args: fmt::Arguments<'_>) -> &'b [u8] {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // 64 bytes hold any number or IP address this module formats.
    cursor
        .write_fmt(args)
        .expect("a number or an IP address fits in 64 bytes");
    let n = cursor.position() as usize;
    &buf[..n]
}

/// A request path split into the script's name and the path after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitPath<'p> {
    /// `SCRIPT_NAME`: the path up to and including the extension.
    pub script_name: &'p [u8],
    /// `PATH_INFO`: the rest, empty or starting with `/`.
    pub path_info: &'p [u8],
}

/// Splits a decoded request path into `SCRIPT_NAME` and `PATH_INFO` at the first path
/// segment that ends with `extension`, as nginx's `fastcgi_split_path_info
/// ^(.+?\.php)(/.*)$` does.
///
/// The extension is matched byte for byte (`.PHP` and full-width look-alikes do not
/// match `.php`). `Ok(None)` means no segment ends with the extension. NUL, CR and LF
/// are rejected anywhere in the path (a `%0a` in the URI is how CVE-2019-11043 emptied
/// `PATH_INFO`), and so is a script name that is the extension alone (`/.php`).
///
/// ```
/// use fcgi_proto::params::{split_path, SplitPath};
///
/// let split = split_path(b"/app/index.php/users/7", b".php").unwrap().unwrap();
/// assert_eq!(split, SplitPath { script_name: b"/app/index.php", path_info: b"/users/7" });
/// assert_eq!(split_path(b"/shell.PHP", b".php"), Ok(None));
/// assert!(split_path(b"/index.php/\nx", b".php").is_err());
/// ```
pub fn split_path<'p>(
    path: &'p [u8],
    extension: &[u8],
) -> Result<Option<SplitPath<'p>>, PathError> {
    if let Some(i) = memchr::memchr3(0, b'\r', b'\n', path) {
        return Err(PathError::ForbiddenByte(path[i]));
    }
    if !path.starts_with(b"/") {
        return Err(PathError::NotAbsolute);
    }
    if extension.is_empty() {
        return Ok(None);
    }
    for start in memchr::memmem::find_iter(path, extension) {
        let end = start + extension.len();
        if end != path.len() && path[end] != b'/' {
            continue;
        }
        // A match at 0 (an extension starting with '/') leaves no script name either.
        if start == 0 || path[start - 1] == b'/' {
            return Err(PathError::EmptyScriptName);
        }
        return Ok(Some(SplitPath {
            script_name: &path[..end],
            path_info: &path[end..],
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_decimal_accepts_exactly_the_u64_range() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"0042"), Some(42));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"000000000000000000000000007"), Some(7));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"99999999999999999999",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1_000",
            b"\xd9\xa1", // ARABIC-INDIC DIGIT ONE
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strip_port_cases() {
        for (host, stripped) in [
            (&b"example.com"[..], &b"example.com"[..]),
            (b"example.com:80", b"example.com"),
            (b"example.com:", b"example.com:"),
            (b"example.com:8o", b"example.com:8o"),
            (b"[::1]", b"[::1]"),
            (b"[::1]:443", b"[::1]"),
            (b"[fe80::1%25eth0]:8080", b"[fe80::1%25eth0]"),
            // A bare IPv6 address (no brackets) is not split at its last group.
            (b"::1", b"::1"),
            (b"2001:db8::1", b"2001:db8::1"),
            // A bracket that is not closed before the port: left whole.
            (b"[::1:80", b"[::1:80"),
            (b"", b""),
        ] {
            assert_eq!(
                strip_port(host),
                stripped,
                "{}",
                String::from_utf8_lossy(host)
            );
        }
    }

    #[test]
    fn header_names_fold_at_any_length() {
        assert_eq!(folded_name(b"x-Forwarded-for9"), b"HTTP_X_FORWARDED_FOR9");
        assert!(same_folded(b"X-User_id", b"x_USER-ID"));
        assert!(!same_folded(b"X-User", b"X-Users") && !same_folded(b"X.A", b"X-A"));
        // Around the 128-byte boundary of a name's length, and long.
        for len in [1, 122, 123, 124, 250, 1000] {
            let name = "a-".repeat(len / 2) + &"b".repeat(len % 2);
            let built = ParamsBuilder::new("GET", "/")
                .header(&name, "v")
                .build()
                .unwrap();
            let expected = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
            assert_eq!(built.get(&expected), Some(&b"v"[..]), "length {len}");
        }
    }

    #[test]
    fn format_into_holds_the_longest_values() {
        let mut buf = [0u8; 64];
        let v6: std::net::Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        let text = v6.to_string();
        assert_eq!(format_into(&mut buf, format_args!("{v6}")), text.as_bytes());
        assert_eq!(
            format_into(&mut buf, format_args!("{}", u64::MAX)),
            b"18446744073709551615"
        );
        let mapped: std::net::Ipv6Addr = "::ffff:255.255.255.255".parse().unwrap();
        assert_eq!(
            format_into(&mut buf, format_args!("{mapped}")),
            b"::ffff:255.255.255.255"
        );
    }

    #[test]
    fn addresses_as_display_writes_them() {
        let mut buf = [0u8; 64];
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.100.9",
            "255.255.255.255",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:255.255.255.255",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(format_ip(&mut buf, ip), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn replacing_in_place_leaves_other_entries_alone() {
        let mut p = Params::new();
        p.insert("A", "aaaa").unwrap();
        p.insert("B", "bbbb").unwrap();
        p.insert("A", "x").unwrap(); // shorter: overwritten in place
        p.insert("B", "longer value").unwrap(); // longer: moved to the end of the buffer
        p.insert("A", "yy").unwrap();
        assert_eq!(p.get("A"), Some(&b"yy"[..]));
        assert_eq!(p.get("B"), Some(&b"longer value"[..]));
        assert_eq!(p.encoded_len(), (2 + 1 + 2) + (2 + 1 + 12));
        // A clone is independent.
        let q = p.clone();
        p.insert("A", "z").unwrap();
        assert_eq!(q.get("A"), Some(&b"yy"[..]));
    }

    /// The pair-by-pair encoding of `p`, the reference for its one-piece encoding.
    fn encode_each(p: &Params) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in p.iter() {
            nv::encode_pair(&mut out, name, value).unwrap();
        }
        out
    }

    #[test]
    fn joined_headers_are_encoded_exactly() {
        // Joins that stay under 128 bytes, that cross to a four-byte value length, and a
        // long folded name; a caller's param replacing a joined header with a value of
        // the same length (in place, so the encoding stays in one piece).
        let (a, b) = ("x".repeat(100), "y".repeat(100));
        let name = "N-".repeat(70);
        let p = ParamsBuilder::new("GET", "/")
            .header("X-A", "1")
            .header("Cookie", &a)
            .header(&name, "v")
            .header("x-a", "2")
            .header("cookie", &b)
            .header(&name, "w")
            .header("X-A", "3")
            .param("HTTP_X_A", "callers")
            .build()
            .unwrap();
        assert_eq!(p.get("HTTP_X_A"), Some(&b"callers"[..]));
        assert_eq!(p.get("HTTP_COOKIE"), Some(format!("{a}; {b}").as_bytes()));
        assert_eq!(p.get(folded_name(name.as_bytes())), Some(&b"v, w"[..]));
        let pairs = p.encoded().expect("built params are encoded in one piece");
        assert_eq!(pairs, &encode_each(&p)[..]);
    }

    #[test]
    fn one_piece_encoding_matches_pair_by_pair() {
        // A fixed pseudo-random walk of inserts, replacements (same, shorter, longer,
        // across the 128-byte length boundary) and removals, first and last pairs alike:
        // whenever the one-piece encoding is offered, it is exact.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        let names = ["A", "BB", "CONTENT_LENGTH", "HTTP_X", "Q"];
        let mut exact = 0;
        for _ in 0..200 {
            let mut p = Params::new();
            for _ in 0..12 {
                let name = names[next(names.len() as u64)];
                let value = vec![b'v'; [0, 1, 5, 127, 128, 300][next(6)]];
                match next(3) {
                    0 | 1 => p.insert(name, &value).unwrap(),
                    _ => {
                        p.remove(name);
                    }
                }
                if let Some(pairs) = p.encoded() {
                    exact += 1;
                    assert_eq!(pairs, &encode_each(&p)[..]);
                }
                assert_eq!(p.encoded_len(), encode_each(&p).len());
            }
        }
        assert!(exact > 200, "the walk keeps the one-piece encoding often");
    }
}
