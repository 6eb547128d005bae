//! The CGI response head (RFC 3875 section 6) at the start of `STDOUT`: an incremental
//! parser and the parsed head.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::HeadError;
use crate::params::parse_decimal;

/// Where a run of bytes sits in a head's bytes. Offsets are `u32`: a head is never
/// longer than its parser's limit, which is capped to fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `start..end`; both are below the head's limit (see [`HeadParser::new`]).
    fn new(start: usize, end: usize) -> Self {
        Self {
            start: start as u32,
            end: end as u32,
        }
    }

    fn of(self, raw: &[u8]) -> &[u8] {
        &raw[self.start as usize..self.end as usize]
    }
}

/// One header's name and value, as places in the head's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    name: Span,
    value: Span,
}

/// One response header, borrowed from its [`ResponseHead`]: a name (an HTTP token, as
/// sent) and its value (without the whitespace around it).
#[derive(Clone, Copy)]
pub struct HeaderField<'h> {
    raw: &'h Bytes,
    field: Field,
}

impl<'h> HeaderField<'h> {
    /// The name as the application spelled it (`Content-type`, `Set-Cookie`, ...).
    pub fn name(&self) -> &'h str {
        // Names are checked to be HTTP tokens, which are ASCII, before a field is made.
        std::str::from_utf8(self.name_bytes()).unwrap_or_default()
    }

    fn name_bytes(&self) -> &'h [u8] {
        self.field.name.of(self.raw)
    }

    /// The value's bytes.
    pub fn value(&self) -> &'h [u8] {
        self.field.value.of(self.raw)
    }

    /// The value as text, when it is UTF-8.
    pub fn value_str(&self) -> Option<&'h str> {
        std::str::from_utf8(self.value()).ok()
    }

    /// The value's bytes, shared with the received buffer (no copy).
    pub fn value_bytes(&self) -> Bytes {
        let Span { start, end } = self.field.value;
        self.raw.slice(start as usize..end as usize)
    }
}

/// Two fields are equal when their names and values are, byte for byte.
impl PartialEq for HeaderField<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name_bytes() == other.name_bytes() && self.value() == other.value()
    }
}

impl Eq for HeaderField<'_> {}

impl fmt::Debug for HeaderField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?}",
            self.name(),
            String::from_utf8_lossy(self.value())
        )
    }
}

/// Where a head's first lines end (the offset of each `\n`), noted while the head is
/// parsed, so that walking its lines again needs no search for them. Heads over 64 KiB
/// and lines past the sixth are searched for.
#[derive(Clone, Copy, Debug, Default)]
struct LineEnds {
    ends: [u16; 6],
    known: u8,
}

impl LineEnds {
    /// Notes that the next line ends at `end`, if there is room and it fits. Lines are
    /// noted in order, so once one does not fit none after it does: the noted ones are
    /// always the first lines.
    fn push(&mut self, end: usize) {
        if let (Some(slot), Ok(end)) = (
            self.ends.get_mut(usize::from(self.known)),
            u16::try_from(end),
        ) {
            *slot = end;
            self.known += 1;
        }
    }
}

/// A walk over a parsed head's lines, up to its blank line: each line's start and its
/// bytes without the line end.
#[derive(Clone)]
struct Lines<'h> {
    raw: &'h [u8],
    ends: &'h LineEnds,
    index: usize,
    at: usize,
}

impl<'h> Iterator for Lines<'h> {
    type Item = (usize, &'h [u8]);

    fn next(&mut self) -> Option<(usize, &'h [u8])> {
        let end = match self.ends.ends.get(self.index) {
            Some(&end) if self.index < usize::from(self.ends.known) => usize::from(end),
            _ => self.at + memchr::memchr(b'\n', self.raw.get(self.at..)?)?,
        };
        self.index += 1;
        let start = self.at;
        let line = &self.raw[start..end];
        self.at = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (!line.is_empty()).then_some((start, line))
    }
}

/// The headers of a [`ResponseHead`], in the order received: see
/// [`ResponseHead::headers`].
///
/// It walks the head's lines again: they were checked when the head was parsed, so
/// this only finds where each name and value sit.
#[derive(Clone)]
pub struct Headers<'h> {
    raw: &'h Bytes,
    lines: Lines<'h>,
    /// Headers not yet handed out.
    left: usize,
}

impl<'h> Iterator for Headers<'h> {
    type Item = HeaderField<'h>;

    fn next(&mut self) -> Option<HeaderField<'h>> {
        while self.left > 0 {
            let (start, line) = self.lines.next()?;
            let colon = memchr::memchr(b':', line)?;
            if line[..colon].eq_ignore_ascii_case(b"status") {
                continue;
            }
            self.left -= 1;
            let (vs, ve) = trim(&line[colon + 1..]);
            let value_at = start + colon + 1;
            return Some(HeaderField {
                raw: self.raw,
                field: Field {
                    name: Span::new(start, start + colon),
                    value: Span::new(value_at + vs, value_at + ve),
                },
            });
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl std::iter::FusedIterator for Headers<'_> {}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// A parsed CGI response head.
///
/// The `Status` header is consumed into [`status`](Self::status) and
/// [`reason`](Self::reason); every other header stays, in order, with every value (three
/// `Set-Cookie` headers stay three).
///
/// The head keeps the bytes it was parsed from (shared with the received buffer, not
/// copied), checked whole when it arrived; [`headers`](Self::headers) finds the fields
/// in them when asked. A head takes no allocation of its own, whatever its size.
#[derive(Clone)]
pub struct ResponseHead {
    /// The head, its blank line included.
    raw: Bytes,
    status: u16,
    reason: Option<Span>,
    status_given: bool,
    /// How many headers, `Status` aside.
    count: u32,
    line_ends: LineEnds,
}

impl fmt::Debug for ResponseHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseHead")
            .field("status", &self.status)
            .field("reason", &self.reason())
            .field("headers", &self.headers())
            .finish()
    }
}

/// Two heads are equal when their statuses, reasons and headers (in order) are.
impl PartialEq for ResponseHead {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.status_given == other.status_given
            && self.reason_bytes() == other.reason_bytes()
            && self.headers().eq(other.headers())
    }
}

impl Eq for ResponseHead {}

/// The head of an empty CGI response: status 200, no headers (what a head with no
/// header lines means).
impl Default for ResponseHead {
    fn default() -> Self {
        Self {
            raw: Bytes::new(),
            status: 200,
            reason: None,
            status_given: false,
            count: 0,
            line_ends: LineEnds::default(),
        }
    }
}

impl ResponseHead {
    /// The HTTP status: from `Status`; else 302 when there is a `Location`; else 200.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase given with `Status`, if any.
    pub fn reason(&self) -> Option<&str> {
        self.reason_bytes()
            .and_then(|r| std::str::from_utf8(r).ok())
    }

    fn reason_bytes(&self) -> Option<&[u8]> {
        self.reason.map(|r| r.of(&self.raw))
    }

    /// Whether the application sent a `Status` header.
    pub fn has_status_header(&self) -> bool {
        self.status_given
    }

    /// Every header but `Status`, in the order received.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fcgi_proto::response::HeadParser;
    ///
    /// let head = b"X-Powered-By: PHP/8.2\r\nContent-type: text/html\r\n\r\n";
    /// let (head, _) = HeadParser::new(8192).feed(Bytes::from_static(head)).unwrap().unwrap();
    /// assert_eq!(head.headers().len(), 2);
    /// let last = head.headers().last().unwrap();
    /// assert_eq!((last.name(), last.value()), ("Content-type", &b"text/html"[..]));
    /// ```
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            raw: &self.raw,
            lines: self.lines(),
            left: self.count as usize,
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        if !self.is_header_name(name) {
            return None;
        }
        self.lines()
            .find_map(|(_, line)| value_if_named(line, name))
    }

    /// Every value of a header, by case-insensitive name, in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        let name = name.as_bytes();
        let named = self.is_header_name(name);
        self.lines()
            .take_while(move |_| named)
            .filter_map(move |(_, line)| value_if_named(line, name))
    }

    /// Whether any header could have this name: `Status` is not one here (it became
    /// `status()` and `reason()`).
    fn is_header_name(&self, name: &[u8]) -> bool {
        self.count > 0 && !name.eq_ignore_ascii_case(b"status")
    }

    /// The header lines, `Status` included.
    fn lines(&self) -> Lines<'_> {
        Lines {
            raw: &self.raw,
            ends: &self.line_ends,
            index: 0,
            at: 0,
        }
    }

    /// `Content-Length`, if sent (it is checked to be a number).
    pub fn content_length(&self) -> Option<u64> {
        self.get("content-length").and_then(parse_decimal)
    }

    /// Whether this is a CGI local redirect: a `Location` that is a path (`/...`), with
    /// no `Status`. The CGI specification asks the web server to serve that path itself
    /// instead; [`status`](Self::status) is 302, which is what nginx answers.
    pub fn is_local_redirect(&self) -> bool {
        !self.status_given
            && self
                .get("location")
                .is_some_and(|l| l.starts_with(b"/") && !l.starts_with(b"//"))
    }

    /// The headers a gateway passes on to its HTTP client, in order: every header but
    /// the hop-by-hop ones (see [`is_hop_by_hop`]) and those the application's own
    /// `Connection` header names, as nginx and RFC 9110 section 7.6.1 ask.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fcgi_proto::response::HeadParser;
    ///
    /// let head = b"Connection: close, X-Internal\r\nX-Internal: 1\r\nKeep-Alive: 5\r\n\
    ///              Transfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
    /// let (head, _) = HeadParser::new(8192).feed(Bytes::from_static(head)).unwrap().unwrap();
    /// let kept: Vec<_> = head.end_to_end_headers().map(|h| h.name()).collect();
    /// assert_eq!(kept, ["Set-Cookie", "Set-Cookie"]);
    /// ```
    pub fn end_to_end_headers(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        // Looked up once: with no `Connection` header (the usual head) no field is
        // checked against its list.
        let connection = self.get("connection").is_some();
        self.headers().filter(move |h| {
            let named_by_connection = || {
                self.get_all("connection")
                    .flat_map(|v| v.split(|&b| b == b','))
                    .any(|token| {
                        let (s, e) = trim(token);
                        token[s..e].eq_ignore_ascii_case(h.name_bytes())
                    })
            };
            let dropped = is_hop_by_hop(h.name_bytes()) || (connection && named_by_connection());
            !dropped
        })
    }

    /// The head as `http::response::Parts` for a gateway to send: the status and the
    /// [`end_to_end_headers`](Self::end_to_end_headers) in order (three `Set-Cookie`
    /// stay three), HTTP/1.1.
    #[cfg(feature = "http")]
    pub fn to_gateway_parts(&self) -> Result<http::response::Parts, http::Error> {
        self.parts_of(self.end_to_end_headers())
    }

    /// The head as `http::response::Parts` (status, every header in order, HTTP/1.1).
    #[cfg(feature = "http")]
    pub fn to_http_parts(&self) -> Result<http::response::Parts, http::Error> {
        self.parts_of(self.headers())
    }

    /// The status and `headers` in order, appended to one `HeaderMap` sized for them
    /// (what `http::response::Builder` does, without moving the parts at each header).
    #[cfg(feature = "http")]
    fn parts_of<'h>(
        &self,
        headers: impl Iterator<Item = HeaderField<'h>>,
    ) -> Result<http::response::Parts, http::Error> {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = http::StatusCode::from_u16(self.status)?;
        parts.headers.reserve(self.count as usize);
        for h in headers {
            let name = http::HeaderName::from_bytes(h.name().as_bytes())?;
            parts
                .headers
                .append(name, http::HeaderValue::from_bytes(h.value())?);
        }
        Ok(parts)
    }
}

/// The value of a header line (checked when its head was parsed, line end removed) if
/// its name is `name`, case-insensitively. Names are tokens, so the first colon ends
/// the name: the line is `name`'s only if `name` is followed by its colon.
fn value_if_named<'l>(line: &'l [u8], name: &[u8]) -> Option<&'l [u8]> {
    let named =
        line.get(name.len()) == Some(&b':') && line[..name.len()].eq_ignore_ascii_case(name);
    named.then(|| {
        let value = &line[name.len() + 1..];
        let (start, end) = trim(value);
        &value[start..end]
    })
}

/// Whether a response header is hop-by-hop: it describes one connection, not the
/// response, so a gateway drops it from the application's head (`Connection`,
/// `Keep-Alive`, `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`, `Proxy-Authenticate`,
/// `Proxy-Authorization`, `Proxy-Connection`; case-insensitive).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP_BY_HOP: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
    ];
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// An incremental parser of the response head.
///
/// Feed it `STDOUT` content in pieces of any size; it answers the head and the first
/// body bytes once the blank line has arrived. When the whole head arrives in one piece
/// (the usual case) it is parsed in place and no byte is copied.
///
/// ```
/// use bytes::Bytes;
/// use fcgi_proto::response::HeadParser;
///
/// let mut parser = HeadParser::new(8192);
/// assert!(parser.feed(Bytes::from_static(b"Status: 404 Not Found\r\nSet-Cookie: a=1\r\n")).unwrap().is_none());
/// let (head, body) = parser
///     .feed(Bytes::from_static(b"Set-Cookie: b=2\r\n\r\nnot here"))
///     .unwrap()
///     .unwrap();
/// assert_eq!((head.status(), head.reason()), (404, Some("Not Found")));
/// assert_eq!(head.get_all("set-cookie").collect::<Vec<_>>(), [b"a=1", b"b=2"]);
/// assert_eq!(&body[..], b"not here");
/// ```
#[derive(Debug)]
pub struct HeadParser {
    buf: BytesMut,
    limit: usize,
    /// Where to resume looking for the blank line.
    scanned: usize,
}

impl HeadParser {
    /// A parser that refuses heads longer than `limit` bytes (blank line included;
    /// a limit over 4 GiB counts as 4 GiB).
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            limit: limit.min(u32::MAX as usize),
            scanned: 0,
        }
    }

    /// Bytes fed so far that are not yet part of a parsed head.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next `STDOUT` bytes; answers the head and the body bytes that followed
    /// it once the head is complete. Feed nothing after that.
    pub fn feed(&mut self, data: Bytes) -> Result<Option<(ResponseHead, Bytes)>, HeadError> {
        if self.buf.is_empty() {
            // The usual case, a whole head in one piece: parsed in the same pass that
            // finds its end.
            let too_large = HeadError::TooLarge { limit: self.limit };
            match parse_head(&data, self.limit) {
                Ok(Some(head)) if head.raw.len() > self.limit => return Err(too_large),
                Ok(Some(head)) => {
                    let mut rest = data;
                    rest.advance(head.raw.len());
                    return Ok(Some((head, rest)));
                }
                Ok(None) => {}
                // An error counts once the head is whole, and a head too large is that
                // before anything else, as on the buffered path below.
                Err(e) => match find_head_end(&data, 0) {
                    Some(end) if end > self.limit => return Err(too_large),
                    Some(_) => return Err(e),
                    None => {}
                },
            }
        }
        self.buf.extend_from_slice(&data);
        match find_head_end(&self.buf, self.scanned) {
            Some(end) if end <= self.limit => {
                let head = self.buf.split_to(end).freeze();
                let rest = self.buf.split().freeze();
                let head =
                    parse_head(&head, self.limit)?.expect("a whole head, blank line included");
                Ok(Some((head, rest)))
            }
            Some(_) => Err(HeadError::TooLarge { limit: self.limit }),
            None if self.buf.len() > self.limit => Err(HeadError::TooLarge { limit: self.limit }),
            None => {
                // The blank line can start at most two bytes before the end (`\n\r`).
                self.scanned = self.buf.len().saturating_sub(2);
                Ok(None)
            }
        }
    }
}

/// The length of the head including its blank line, if `buf` holds all of it; `from`
/// is where to resume scanning (a position of no interest before it).
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    // An empty head: the very first line is blank.
    if from == 0 {
        if buf.starts_with(b"\n") {
            return Some(1);
        }
        if buf.starts_with(b"\r\n") {
            return Some(2);
        }
    }
    for i in memchr::memchr_iter(b'\n', &buf[from..]).map(|i| i + from) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Which bytes may appear in a header name (RFC 9110 `tchar`), by byte value: one load
/// per byte on the hot path instead of a search of the punctuation list.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// Bytes a header value may not hold: control bytes but tab, and DEL (the rule
/// `has_forbidden_value_byte` computes; a test holds the two together).
#[cfg(test)]
const FORBIDDEN_IN_VALUE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b < 0x20 && b != b'\t' as usize) || b == 0x7F;
        b += 1;
    }
    table
};

/// Whether `value` holds a byte a header value may not hold (control bytes but tab, and
/// DEL): written without an early exit
/// or a table, so that it compiles to a few vector instructions per 16 bytes (header
/// values are short, and rarely bad).
fn has_forbidden_value_byte(value: &[u8]) -> bool {
    value.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7F)
    })
}

fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

fn trim(value: &[u8]) -> (usize, usize) {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    (start, end)
}

/// Parses the head at the start of `head`, up to and including its blank line (the
/// head shares those bytes), or answers `None` when `head` has no blank line yet. A
/// head that runs past `limit` bytes is [`HeadError::TooLarge`] (so every offset fits a
/// [`Span`]).
///
/// Each line is read by [`scan_line`], one pass over its bytes, when it has the usual
/// shape; any other line goes to [`checked_line`], which checks one thing after another
/// to report the exact error (or finds the line not whole yet). Only the lines the
/// parser must understand (`Status`, `Content-Length`, ...) are looked at again, for
/// their values.
fn parse_head(head: &Bytes, limit: usize) -> Result<Option<ResponseHead>, HeadError> {
    let bytes: &[u8] = head;
    // Lines are scanned within the limit: a line that ends past it is not whole there,
    // and `checked_line` finds it too large.
    let within_limit = &bytes[..bytes.len().min(limit)];
    let mut fields = SpecialFields::default();
    let mut count = 0u32;
    let mut line_ends = LineEnds::default();
    let mut line_start = 0;
    let len = loop {
        let line = match scan_line(within_limit, line_start) {
            Some(line) => line,
            None => {
                // Each line before this one was a header or the one `Status`.
                let line_no = count as usize + usize::from(fields.status.is_some()) + 1;
                match checked_line(bytes, line_start, line_no, limit)? {
                    Some(line) => line,
                    None => return Ok(None),
                }
            }
        };
        line_ends.push(line.end);
        let start = line_start;
        line_start = line.end + 1;
        let Some(colon) = line.colon else {
            break line_start; // The blank line: the head ends here.
        };
        if !SpecialFields::may_name(colon - start) || fields.take(bytes, start, colon, line.end)? {
            count += 1;
        }
    };
    if fields.content_length && fields.transfer_encoding {
        return Err(HeadError::ContentLengthWithTransferEncoding);
    }
    let status_given = fields.status.is_some();
    let (status, reason) = match fields.status {
        Some(s) => s,
        None if fields.location => (302, None),
        None => (200, None),
    };
    Ok(Some(ResponseHead {
        raw: head.slice(..len),
        status,
        reason,
        status_given,
        count,
        line_ends,
    }))
}

/// A line of the head, checked: where its `\n` is, and its colon (`None` for the
/// blank line).
struct Line {
    end: usize,
    colon: Option<usize>,
}

/// What the headers with a meaning to the parser have said so far.
#[derive(Default)]
struct SpecialFields {
    status: Option<(u16, Option<Span>)>,
    content_length: bool,
    transfer_encoding: bool,
    location: bool,
}

impl SpecialFields {
    /// Whether a name this long could be one with a meaning here (`Status`, `Location`,
    /// `Content-Length`, `Transfer-Encoding`): most names are not, and are then
    /// compared with nothing.
    fn may_name(len: usize) -> bool {
        matches!(len, 6 | 8 | 14 | 17)
    }

    /// Takes in the checked header line `start..end` (`end` at its `\n`) whose colon is
    /// at `colon`; answers whether it counts as a header (`Status` does not).
    ///
    /// Kept out of line, as most heads need it for no header.
    #[cold]
    #[inline(never)]
    fn take(
        &mut self,
        head: &[u8],
        start: usize,
        colon: usize,
        end: usize,
    ) -> Result<bool, HeadError> {
        let name = &head[start..colon];
        let line = &head[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (vs, ve) = trim(&line[colon + 1..]);
        let value_start = colon + 1 + vs;
        let value = &line[value_start..colon + 1 + ve];
        if name.eq_ignore_ascii_case(b"status") {
            if self.status.is_some() {
                return Err(HeadError::InvalidStatus);
            }
            // The offset is below the limit, which fits a `u32` (see `Span`).
            self.status = Some(parse_status(value, value_start as u32)?);
            return Ok(false);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if self.content_length {
                return Err(HeadError::DuplicateContentLength);
            }
            self.content_length = true;
            parse_decimal(value).ok_or(HeadError::InvalidContentLength)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"location") {
            self.location = true;
        }
        Ok(true)
    }
}

/// Reads the line at `start` in one pass over its bytes, if it is the blank line or a
/// header line of the usual shape: a name of token bytes, a colon, then bytes a value
/// may hold (visible bytes, spaces, tabs) up to `\n` or `\r\n`. `None` for any other
/// line, or one not whole yet: [`checked_line`] then tells which it is.
///
/// Spaces and tabs may be anywhere in a value, so the value is checked whole, without
/// finding where the whitespace around it ends: the header's value is found when asked
/// for (see [`Headers`]).
fn scan_line(head: &[u8], start: usize) -> Option<Line> {
    if let Some(end) = line_end_at(head, start) {
        return Some(Line { end, colon: None });
    }
    let colon = scan_name(head, start)?;
    let end = scan_value(head, colon + 1)?;
    Some(Line {
        end,
        colon: Some(colon),
    })
}

/// Where the line end at `at` (`\n` or `\r\n`) has its `\n`, if there is one there.
fn line_end_at(head: &[u8], at: usize) -> Option<usize> {
    match head.get(at)? {
        b'\n' => Some(at),
        b'\r' if head.get(at + 1) == Some(&b'\n') => Some(at + 1),
        _ => None,
    }
}

/// Scans the token bytes of a header name from `start`: where the colon after them is.
/// `None` when the name is empty, another byte ends it, or the line is not whole yet.
///
/// Eight bytes are looked at together (see [`other_than_name_bytes`]), the few bytes
/// that stop that one at a time: a table look-up per byte costs several instructions.
fn scan_name(head: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    loop {
        at = skip_plain(head, at, other_than_name_bytes);
        match *head.get(at)? {
            b':' if at > start => return Some(at),
            b if is_token_byte(b) => at += 1,
            _ => return None,
        }
    }
}

/// Scans the bytes of a header value from `at` to its line end: where the line's `\n`
/// is. `None` when a byte a value may not hold comes first, or the line is not whole
/// yet.
///
/// Eight bytes are looked at together (see [`special_value_bytes`]): values are most of
/// a head's bytes.
fn scan_value(head: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at = skip_plain(head, at, special_value_bytes);
        match *head.get(at)? {
            b'\n' | b'\r' => return line_end_at(head, at),
            b if b >= 0x20 && b != 0x7F || b == b'\t' => at += 1,
            _ => return None,
        }
    }
}

/// Where the first byte from `at` on that `flagged` flags is (`flagged` sets the top
/// bit of each such byte of a little-endian word), or, if none is, where the last
/// bytes too few for a word start: the caller looks at those one at a time.
fn skip_plain(head: &[u8], mut at: usize, flagged: fn(u64) -> u64) -> usize {
    while let Some(word) = word_at(head, at) {
        let flags = flagged(word);
        if flags != 0 {
            return at + flags.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    at
}

/// The eight bytes at `at` as one little-endian word, if there are eight.
fn word_at(head: &[u8], at: usize) -> Option<u64> {
    let last = head.len().checked_sub(8)?;
    if at > last {
        return None;
    }
    let bytes = head[at..at + 8].try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The top bit of each byte of a word of eight bytes.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// `byte` in each of eight bytes.
const fn each_byte(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The top bit of the first byte of `word` (eight bytes, little-endian) that is not an
/// ASCII letter or `-`, the bytes of most header names, and no bit below it: all
/// [`skip_plain`] looks at. Bits above it are the top bits of some of the bytes after
/// it.
///
/// For a byte under 0x80, the top bit of `byte + (0x80 - c)` tells `byte >= c`, with
/// no carry into the next byte. A byte of 0x80 and up is flagged whatever its sums,
/// and may carry into the next byte: the first flagged byte is right, if not those
/// after it.
fn other_than_name_bytes(word: u64) -> u64 {
    // Setting 0x20 makes capitals small letters, and nothing else one.
    let folded = word | each_byte(0x20);
    let from_a = folded.wrapping_add(each_byte(0x80 - b'a'));
    let past_z = folded.wrapping_add(each_byte(0x80 - b'z' - 1));
    let not_dash = (word ^ each_byte(b'-')).wrapping_add(each_byte(0x7F));
    ((past_z | !from_a) & not_dash | word) & HIGH_BITS
}

/// The top bit of each byte of `word` (eight bytes, little-endian) that is a control
/// byte or DEL, the bytes a value may not hold (tab, `\r` and `\n` among them, for the
/// caller to look at); the other bits are clear. Bytes of 0x80 and up are flagged when
/// their low seven bits are: a value may hold them, but looking at the low bits only
/// keeps this to a few instructions, and such bytes are rare in a head.
///
/// Exact for each byte: with `low` a byte's low seven bits, the top bit of
/// `low + (0x80 - c)` tells `low >= c`, with no carry into the next byte.
fn special_value_bytes(word: u64) -> u64 {
    let low = word & !HIGH_BITS;
    let del = low + each_byte(0x01); // Top bit set for 0x7F.
    let visible = low + each_byte(0x80 - 0x20);
    (del | !visible) & HIGH_BITS
}

/// Reads the line at `start` the careful way, checking one thing after another so that
/// the first error found is the one reported: a line that ends past `limit` is
/// [`HeadError::TooLarge`] before anything else. `None` when the line is not whole yet.
fn checked_line(
    head: &[u8],
    start: usize,
    line_no: usize,
    limit: usize,
) -> Result<Option<Line>, HeadError> {
    let Some(end) = memchr::memchr(b'\n', &head[start..]).map(|i| start + i) else {
        return Ok(None);
    };
    if end >= limit {
        return Err(HeadError::TooLarge { limit });
    }
    let line = &head[start..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Ok(Some(Line { end, colon: None }));
    }
    let colon = memchr::memchr(b':', line).ok_or(HeadError::MissingColon { line: line_no })?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(HeadError::InvalidName { line: line_no });
    }
    let (vs, ve) = trim(&line[colon + 1..]);
    if has_forbidden_value_byte(&line[colon + 1 + vs..colon + 1 + ve]) {
        return Err(HeadError::InvalidValue { line: line_no });
    }
    Ok(Some(Line {
        end,
        colon: Some(start + colon),
    }))
}

/// `NNN` or `NNN reason`, with NNN from 100 to 999; `value` starts at `at` in the head.
fn parse_status(value: &[u8], at: u32) -> Result<(u16, Option<Span>), HeadError> {
    let digits = value.get(..3).ok_or(HeadError::InvalidStatus)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::InvalidStatus);
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    if code < 100 {
        return Err(HeadError::InvalidStatus);
    }
    match value.get(3) {
        None => Ok((code, None)),
        Some(b' ') if value.len() == 4 => Ok((code, None)),
        Some(b' ') => Ok((
            code,
            Some(Span::new(at as usize + 4, at as usize + value.len())),
        )),
        Some(_) => Err(HeadError::InvalidStatus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], step: usize) -> Result<Option<(ResponseHead, Vec<u8>)>, HeadError> {
        let mut p = HeadParser::new(1024);
        let mut chunks = input.chunks(step.max(1));
        for chunk in chunks.by_ref() {
            if let Some((head, rest)) = p.feed(Bytes::copy_from_slice(chunk))? {
                let mut body = rest.to_vec();
                chunks.for_each(|c| body.extend_from_slice(c));
                return Ok(Some((head, body)));
            }
        }
        Ok(None)
    }

    /// Parses whole, byte by byte and in pieces of 3, and checks they agree.
    fn parse(input: &[u8]) -> Result<Option<(ResponseHead, Vec<u8>)>, HeadError> {
        let whole = parse_all(input, input.len());
        for step in [1, 2, 3, 5] {
            assert_eq!(parse_all(input, step), whole, "step {step}");
        }
        whole
    }

    fn ok(input: &[u8]) -> (ResponseHead, Vec<u8>) {
        parse(input).unwrap().unwrap()
    }

    #[test]
    fn php_fpm_default_head() {
        let (head, body) =
            ok(b"X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello");
        assert_eq!(head.status(), 200);
        assert_eq!(head.reason(), None);
        assert!(!head.has_status_header());
        assert_eq!(
            head.get("content-type"),
            Some(&b"text/html; charset=UTF-8"[..])
        );
        assert_eq!(head.headers().nth(1).unwrap().name(), "Content-type");
        assert_eq!(body, b"Hello");
    }

    #[test]
    fn bare_lf_and_trailing_data_and_whitespace() {
        let (head, body) = ok(b"A:  x \t\nB:\n\nrest\n\nmore");
        assert_eq!(head.get("a"), Some(&b"x"[..]));
        assert_eq!(head.get("b"), Some(&b""[..]));
        assert_eq!(body, b"rest\n\nmore");
    }

    #[test]
    fn mixed_line_endings_and_empty_head() {
        let (head, body) = ok(b"A: 1\nB: 2\r\n\r\nx");
        assert_eq!(head.headers().len(), 2);
        assert_eq!(body, b"x");
        let (head, body) = ok(b"\r\nbody");
        assert_eq!((head.status(), head.headers().len()), (200, 0));
        assert_eq!(body, b"body");
    }

    #[test]
    fn status_is_consumed_and_set_cookie_kept() {
        let (head, _) = ok(b"Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nset-cookie: c=3\r\n\r\n");
        assert_eq!((head.status(), head.reason()), (404, Some("Not Found")));
        assert!(head.has_status_header());
        assert!(head.get("status").is_none());
        let cookies: Vec<_> = head.get_all("Set-Cookie").collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2", b"c=3"]);
    }

    #[test]
    fn status_forms() {
        assert_eq!(ok(b"Status: 201\n\n").0.status(), 201);
        assert_eq!(ok(b"Status: 299 \n\n").0.reason(), None);
        for bad in [
            &b"Status: 20\n\n"[..],
            b"Status: abc\n\n",
            b"Status: 200OK\n\n",
            b"Status: 099\n\n",
            b"Status:\n\n",
            b"Status: 200\nStatus: 201\n\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(HeadError::InvalidStatus),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn location_rules() {
        let (head, _) = ok(b"Location: https://example.com/\r\n\r\n");
        assert_eq!(head.status(), 302);
        assert!(!head.is_local_redirect());
        let (head, _) = ok(b"Location: /login\r\n\r\n");
        assert_eq!(head.status(), 302);
        assert!(head.is_local_redirect());
        let (head, _) = ok(b"Location: //evil.example/\r\n\r\n");
        assert!(!head.is_local_redirect());
        let (head, _) = ok(b"Status: 301 Moved\r\nLocation: /new\r\n\r\n");
        assert_eq!(head.status(), 301);
        assert!(!head.is_local_redirect());
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(b"A: 1\nNoColon\n\n"),
            Err(HeadError::MissingColon { line: 2 })
        );
        assert_eq!(
            parse(b"Bad Name: 1\n\n"),
            Err(HeadError::InvalidName { line: 1 })
        );
        assert_eq!(
            parse(b"X\0: 1\n\n"),
            Err(HeadError::InvalidName { line: 1 })
        );
        assert_eq!(parse(b": 1\n\n"), Err(HeadError::InvalidName { line: 1 }));
        assert_eq!(parse(b" A: 1\n\n"), Err(HeadError::InvalidName { line: 1 }));
        assert_eq!(
            parse(b"A: x\x00y\n\n"),
            Err(HeadError::InvalidValue { line: 1 })
        );
        assert_eq!(
            parse(b"A: x\ry\n\n"),
            Err(HeadError::InvalidValue { line: 1 })
        );
        assert_eq!(
            parse(b"Content-Length: 1\ncontent-length: 1\n\n"),
            Err(HeadError::DuplicateContentLength)
        );
        assert_eq!(
            parse(b"Content-Length: x\n\n"),
            Err(HeadError::InvalidContentLength)
        );
        assert_eq!(
            parse(b"Content-Length: 1\nTransfer-Encoding: chunked\n\n"),
            Err(HeadError::ContentLengthWithTransferEncoding)
        );
        assert_eq!(parse(b"A: 1\r\nB: 2\r\n"), Ok(None));
    }

    #[test]
    fn limit() {
        let mut p = HeadParser::new(16);
        assert_eq!(
            p.feed(Bytes::from_static(b"A: 0123456789\r\n")).unwrap(),
            None
        );
        assert_eq!(
            p.feed(Bytes::from_static(b"\r\n")),
            Err(HeadError::TooLarge { limit: 16 })
        );
        let mut p = HeadParser::new(16);
        assert_eq!(
            p.feed(Bytes::from_static(b"A: 0123456789abcdef")),
            Err(HeadError::TooLarge { limit: 16 })
        );
        let mut p = HeadParser::new(16);
        assert_eq!(
            p.feed(Bytes::from_static(b"A: 0123456789abc\n\n")),
            Err(HeadError::TooLarge { limit: 16 })
        );
        // Exactly at the limit is fine.
        let mut p = HeadParser::new(16);
        assert!(p
            .feed(Bytes::from_static(b"A: 0123456789a\n\nbody"))
            .unwrap()
            .is_some());
    }

    #[test]
    fn forbidden_value_bytes_match_the_table() {
        for b in 0..=255u8 {
            assert_eq!(
                has_forbidden_value_byte(&[b'a', b, b'z']),
                FORBIDDEN_IN_VALUE[usize::from(b)],
                "byte {b:#04x}"
            );
        }
    }

    #[test]
    fn hop_by_hop_headers_are_not_end_to_end() {
        let (head, _) = ok(
            b"Status: 200\r\nconnection: Close ,x-a\r\nConnection: X-B\r\nX-A: 1\r\n\
            x-b: 2\r\nX-C: 3\r\nKEEP-ALIVE: t\r\nTE: x\r\nTrailer: y\r\nUpgrade: h2\r\n\
            Proxy-Authenticate: z\r\nProxy-Authorization: z\r\nProxy-Connection: z\r\n\
            Transfer-Encoding: chunked\r\nSet-Cookie: 1\r\nSet-Cookie: 2\r\n\r\n",
        );
        let kept: Vec<_> = head
            .end_to_end_headers()
            .map(|h| (h.name(), h.value()))
            .collect();
        assert_eq!(
            kept,
            [
                ("X-C", &b"3"[..]),
                ("Set-Cookie", b"1"),
                ("Set-Cookie", b"2")
            ]
        );
        assert!(is_hop_by_hop(b"Te") && !is_hop_by_hop(b"Content-Length"));
        // Without a `Connection` header only the hop-by-hop names go.
        let (head, _) = ok(b"X-A: 1\r\nKeep-Alive: t\r\nX-B: 2\r\n\r\n");
        let kept: Vec<_> = head.end_to_end_headers().map(|h| h.name()).collect();
        assert_eq!(kept, ["X-A", "X-B"]);
    }

    #[test]
    fn headers_past_the_noted_line_ends_stay_in_order() {
        let input: Vec<u8> = (0..20)
            .flat_map(|i| format!("X-{i}: v{i}\r\n").into_bytes())
            .chain(*b"\r\nbody")
            .collect();
        let (head, body) = ok(&input);
        let got: Vec<_> = head
            .headers()
            .map(|h| (h.name().to_owned(), h.value_str().unwrap().to_owned()))
            .collect();
        let want: Vec<_> = (0..20)
            .map(|i| (format!("X-{i}"), format!("v{i}")))
            .collect();
        assert_eq!(got, want);
        assert_eq!(head.headers().last().unwrap().value(), b"v19");
        assert_eq!(&head.headers().nth(3).unwrap().value_bytes()[..], b"v3");
        assert_eq!(body, b"body");
    }

    #[test]
    fn a_head_over_64_kib_is_walked_by_searching() {
        let long = "v".repeat(70_000);
        let input = format!("A: 1\r\nX-Long: {long}\r\nB: 2\r\nStatus: 201\r\nC: 3\r\n\r\nbody");
        let (head, body) = HeadParser::new(1 << 20)
            .feed(Bytes::from(input))
            .unwrap()
            .unwrap();
        assert_eq!(&body[..], b"body");
        assert_eq!(head.status(), 201);
        let names: Vec<_> = head.headers().map(|h| h.name()).collect();
        assert_eq!(names, ["A", "X-Long", "B", "C"]);
        assert_eq!(head.get("x-long").map(<[u8]>::len), Some(70_000));
        assert_eq!(
            (head.get("b"), head.get("c")),
            (Some(&b"2"[..]), Some(&b"3"[..]))
        );
        assert_eq!(head.get("status"), None);
    }

    #[test]
    fn content_length_getter() {
        assert_eq!(ok(b"Content-Length: 42\n\n").0.content_length(), Some(42));
    }

    #[test]
    fn flagged_bytes_match_their_classes_in_every_lane() {
        let name_plain = |b: u8| b.is_ascii_alphabetic() || b == b'-';
        // Bytes of 0x80 and up are judged by their low seven bits (see the function).
        let value_special = |b: u8| (b & 0x7F) < 0x20 || (b & 0x7F) == 0x7F;
        for b in 0..=255u8 {
            for fill in 0..=255u8 {
                for lane in 0..8 {
                    let mut bytes = [fill; 8];
                    bytes[lane] = b;
                    let word = u64::from_le_bytes(bytes);
                    let want = |class: &dyn Fn(u8) -> bool| {
                        bytes.iter().enumerate().fold(0u64, |acc, (i, &x)| {
                            acc | if class(x) { 0x80 << (8 * i) } else { 0 }
                        })
                    };
                    // Only the first byte not in a name is sure to be flagged.
                    let others = other_than_name_bytes(word);
                    assert_eq!(others & !HIGH_BITS, 0, "{word:#018x}");
                    assert_eq!(
                        (others != 0).then(|| others.trailing_zeros() as usize / 8),
                        bytes.iter().position(|&x| !name_plain(x)),
                        "{word:#018x}"
                    );
                    assert_eq!(
                        special_value_bytes(word),
                        want(&value_special),
                        "{word:#018x}"
                    );
                }
            }
        }
        // Nothing flagged is a byte a value may not hold, tab, `\r` or `\n` aside.
        for b in 0..=255u8 {
            if special_value_bytes(u64::from(b) | each_byte(b'a') << 8) == 0 {
                assert!(!FORBIDDEN_IN_VALUE[usize::from(b)], "{b:#04x}");
            }
        }
    }

    /// [`HeadParser`] against the parser it replaced, on heads valid and not.
    mod differential {
        use super::*;
        use proptest::prelude::*;

        /// The head parser as it was before heads were scanned a word at a time, kept to
        /// check the scan against: [`reference::HeadParser`] must answer what
        /// [`HeadParser`] does, for every input and every way of cutting it.
        mod reference {
            use super::super::super::{
                find_head_end, has_forbidden_value_byte, is_token_byte, parse_status, trim,
                LineEnds, ResponseHead, Span,
            };
            use crate::error::HeadError;
            use crate::params::parse_decimal;
            use bytes::{Bytes, BytesMut};

            pub(super) struct HeadParser {
                pub(super) buf: BytesMut,
                limit: usize,
                scanned: usize,
            }

            impl HeadParser {
                pub(super) fn new(limit: usize) -> Self {
                    Self {
                        buf: BytesMut::new(),
                        limit: limit.min(u32::MAX as usize),
                        scanned: 0,
                    }
                }

                pub(super) fn feed(
                    &mut self,
                    data: Bytes,
                ) -> Result<Option<(ResponseHead, Bytes)>, HeadError> {
                    if self.buf.is_empty() {
                        let too_large = HeadError::TooLarge { limit: self.limit };
                        match parse_head(&data, self.limit) {
                            Ok(Some((_, end))) if end > self.limit => return Err(too_large),
                            Ok(Some((head, end))) => return Ok(Some((head, data.slice(end..)))),
                            Ok(None) => {}
                            Err(e) => match find_head_end(&data, 0) {
                                Some(end) if end > self.limit => return Err(too_large),
                                Some(_) => return Err(e),
                                None => {}
                            },
                        }
                    }
                    self.buf.extend_from_slice(&data);
                    match find_head_end(&self.buf, self.scanned) {
                        Some(end) if end <= self.limit => {
                            let head = self.buf.split_to(end).freeze();
                            let rest = self.buf.split().freeze();
                            let (head, _) = parse_head(&head, self.limit)?
                                .expect("a whole head, blank line included");
                            Ok(Some((head, rest)))
                        }
                        Some(_) => Err(HeadError::TooLarge { limit: self.limit }),
                        None if self.buf.len() > self.limit => {
                            Err(HeadError::TooLarge { limit: self.limit })
                        }
                        None => {
                            self.scanned = self.buf.len().saturating_sub(2);
                            Ok(None)
                        }
                    }
                }
            }

            fn note(line_ends: &mut LineEnds, index: usize, end: usize) {
                if index == usize::from(line_ends.known) && index < line_ends.ends.len() {
                    if let Ok(end) = u16::try_from(end) {
                        line_ends.ends[index] = end;
                        line_ends.known += 1;
                    }
                }
            }

            pub(super) fn parse_head(
                head: &Bytes,
                limit: usize,
            ) -> Result<Option<(ResponseHead, usize)>, HeadError> {
                let mut status = None;
                let mut count = 0u32;
                let mut line_ends = LineEnds::default();
                let mut content_length_seen = false;
                let mut transfer_encoding_seen = false;
                let mut location_seen = false;
                let mut line_start = 0;
                let mut end = None;
                for (index, line_end) in memchr::memchr_iter(b'\n', head).enumerate() {
                    if line_end >= limit {
                        return Err(HeadError::TooLarge { limit });
                    }
                    note(&mut line_ends, index, line_end);
                    let line_no = index + 1;
                    let mut line = &head[line_start..line_end];
                    let offset = line_start;
                    line_start = line_end + 1;
                    if let Some(l) = line.strip_suffix(b"\r") {
                        line = l;
                    }
                    if line.is_empty() {
                        end = Some(line_start);
                        break;
                    }
                    let colon = memchr::memchr(b':', line)
                        .ok_or(HeadError::MissingColon { line: line_no })?;
                    let name = &line[..colon];
                    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
                        return Err(HeadError::InvalidName { line: line_no });
                    }
                    let (vs, ve) = trim(&line[colon + 1..]);
                    let value = Span::new(offset + colon + 1 + vs, offset + colon + 1 + ve);
                    let value_bytes = value.of(head);
                    if has_forbidden_value_byte(value_bytes) {
                        return Err(HeadError::InvalidValue { line: line_no });
                    }
                    if name.eq_ignore_ascii_case(b"status") {
                        if status.is_some() {
                            return Err(HeadError::InvalidStatus);
                        }
                        status = Some(parse_status(value_bytes, value.start)?);
                        continue;
                    }
                    if name.eq_ignore_ascii_case(b"content-length") {
                        if content_length_seen {
                            return Err(HeadError::DuplicateContentLength);
                        }
                        content_length_seen = true;
                        parse_decimal(value_bytes).ok_or(HeadError::InvalidContentLength)?;
                    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                        transfer_encoding_seen = true;
                    } else if name.eq_ignore_ascii_case(b"location") {
                        location_seen = true;
                    }
                    count += 1;
                }
                let Some(end) = end else {
                    return Ok(None);
                };
                if content_length_seen && transfer_encoding_seen {
                    return Err(HeadError::ContentLengthWithTransferEncoding);
                }
                let status_given = status.is_some();
                let (status, reason) = match status {
                    Some(s) => s,
                    None if location_seen => (302, None),
                    None => (200, None),
                };
                Ok(Some((
                    ResponseHead {
                        raw: head.slice(..end),
                        status,
                        reason,
                        status_given,
                        count,
                        line_ends,
                    },
                    end,
                )))
            }
        }

        /// Everything a head holds, its bytes and what was noted while it was parsed.
        type Exact = (Vec<u8>, u16, Option<Span>, bool, u32, [u16; 6], u8);

        fn exact(head: &ResponseHead) -> Exact {
            let LineEnds { ends, known } = head.line_ends;
            (
                head.raw.to_vec(),
                head.status,
                head.reason,
                head.status_given,
                head.count,
                ends,
                known,
            )
        }

        type FedExact = Result<Option<(Exact, Vec<u8>)>, HeadError>;

        fn fed_exact(fed: Result<Option<(ResponseHead, Bytes)>, HeadError>) -> FedExact {
            fed.map(|o| o.map(|(head, rest)| (exact(&head), rest.to_vec())))
        }

        /// Bytes that mean something to the parser, and some that do not.
        const ODD_BYTES: &[u8] = b": \r\n\t\x00\x01\x1f\x7f\x80\x9f\xff\"(/;@[{}aZz09-_.~|^`,=";

        fn header_name() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                3 => "[A-Za-z-]{1,20}".prop_map(String::into_bytes),
                1 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}".prop_map(String::into_bytes),
                2 => prop::sample::select(
                    &[
                        "Status",
                        "status",
                        "STATUS",
                        "Content-Length",
                        "content-length",
                        "Transfer-Encoding",
                        "transfer-encoding",
                        "Location",
                        "LOCATION",
                        "Statuz",
                        "Content-Lengtx",
                        "Transfer-Encodinx",
                        "Locatiom",
                        "X-Powered-By",
                        "Content-type",
                    ][..],
                )
                .prop_map(|n| n.as_bytes().to_vec()),
            ]
        }

        /// A value a header may have, with the whitespace around it.
        fn header_value() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                4 => "[ \t]{0,2}[ -~\t]{0,30}[ \t]{0,2}".prop_map(String::into_bytes),
                2 => "[ \t]{0,2}[0-9]{1,4}( [A-Za-z ]{0,8})?[ \t]{0,2}".prop_map(String::into_bytes),
                2 => prop::sample::select(
                    &[" 200 OK", "404", " /login", " chunked", " 12", " 099", " 200OK", " 301 "][..]
                )
                .prop_map(|v| v.as_bytes().to_vec()),
                1 => prop::collection::vec(0x80..=0xFFu8, 0..12),
            ]
        }

        fn line_end() -> impl Strategy<Value = &'static [u8]> {
            const LINE_ENDS: &[&[u8]] = &[b"\r\n", b"\n"];
            prop::sample::select(LINE_ENDS)
        }

        /// A well-formed header line.
        fn header_line() -> impl Strategy<Value = Vec<u8>> {
            (header_name(), header_value(), line_end())
                .prop_map(|(name, value, end)| [&name[..], b":", &value, end].concat())
        }

        /// Lines of a head, valid or not, and odd bytes.
        fn head_part() -> impl Strategy<Value = Vec<u8>> {
            let odd_byte = prop::sample::select(ODD_BYTES);
            const ANY_LINE_ENDS: &[&[u8]] = &[b"\r\n", b"\n", b"\r", b""];
            let any_line_end = prop::sample::select(ANY_LINE_ENDS);
            prop_oneof![
                4 => header_line(),
                2 => (header_name(), prop::collection::vec(any::<u8>(), 0..12), any_line_end)
                    .prop_map(|(name, value, end)| [&name[..], b":", &value, end].concat()),
                1 => line_end().prop_map(<[u8]>::to_vec),
                2 => prop::collection::vec(odd_byte, 0..24),
            ]
        }

        /// A head: made of parts, or well formed with perhaps one byte changed; often
        /// with its blank line, and some body.
        fn head_input() -> impl Strategy<Value = Vec<u8>> {
            let mixed = prop::collection::vec(head_part(), 0..10).prop_map(|p| p.concat());
            let change = prop::option::of((
                any::<prop::sample::Index>(),
                prop::sample::select(ODD_BYTES),
                any::<bool>(),
            ));
            let nearly_valid = (prop::collection::vec(header_line(), 0..10), change).prop_map(
                |(lines, change)| {
                    let mut head = lines.concat();
                    if let Some((at, byte, insert)) = change {
                        let at = at.index(head.len() + 1);
                        if insert || at == head.len() {
                            head.insert(at, byte);
                        } else {
                            head[at] = byte;
                        }
                    }
                    head
                },
            );
            (
                prop_oneof![mixed, nearly_valid],
                prop::option::weighted(0.8, line_end()),
                prop::collection::vec(any::<u8>(), 0..12),
            )
                .prop_map(|(mut input, blank, body)| {
                    input.extend_from_slice(blank.unwrap_or_default());
                    input.extend_from_slice(&body);
                    input
                })
        }

        fn limit() -> impl Strategy<Value = usize> {
            prop_oneof![
                1 => 0..8usize,
                2 => 8..80usize,
                3 => 80..400usize,
                3 => Just(64 * 1024),
                1 => Just(usize::MAX),
            ]
        }

        /// Cases for the differential test: `PROPTEST_CASES` if set, else 4096.
        fn differential_cases() -> u32 {
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(4096)
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: differential_cases(),
                ..ProptestConfig::default()
            })]

            /// The head parser answers exactly what the reference does: the same head
            /// (bytes, status, reason, line ends noted, ...), body bytes and error, whole
            /// and fed in pieces.
            #[test]
            fn head_parser_matches_the_reference(
                input in head_input(),
                limit in limit(),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let data = Bytes::from(input);
                let parsed = parse_head(&data, limit).map(|o| o.map(|h| exact(&h)));
                let want = reference::parse_head(&data, limit).map(|o| o.map(|(h, _)| exact(&h)));
                prop_assert_eq!(parsed, want);

                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
                cuts.push(data.len());
                cuts.sort_unstable();
                let mut parser = HeadParser::new(limit);
                let mut reference = reference::HeadParser::new(limit);
                let mut from = 0;
                for to in cuts {
                    let piece = data.slice(from..to);
                    from = to;
                    let got = fed_exact(parser.feed(piece.clone()));
                    let want = fed_exact(reference.feed(piece));
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(parser.buffered(), reference.buf.len());
                    if !matches!(got, Ok(None)) {
                        break;
                    }
                }
            }
        }
    }
}
