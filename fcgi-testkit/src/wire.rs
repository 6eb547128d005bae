//! Raw records for the kit's own tests of the servers' wire behaviour.

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// One record as read: type, request id, content, padding bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) kind: u8,
    pub(crate) id: u16,
    pub(crate) content: Vec<u8>,
    pub(crate) padding: Vec<u8>,
}

/// A record with request id `id` and `padding` zero bytes of padding.
pub(crate) fn record_padded(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&u16::try_from(content.len()).expect("short").to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding), 0);
    out
}

/// A record without padding.
pub(crate) fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    record_padded(kind, id, content, 0)
}

/// A name-value pair with one-byte lengths.
pub(crate) fn pair(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(u8::try_from(name.len()).expect("short name"));
    out.push(u8::try_from(value.len()).expect("short value"));
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// A GET_VALUES record asking `names`.
pub(crate) fn get_values(names: &[&str], padding: u8) -> Vec<u8> {
    let mut content = Vec::new();
    for name in names {
        pair(&mut content, name, "");
    }
    record_padded(9, 0, &content, padding)
}

/// A whole GET request for `uri` (`REQUEST_URI`, `QUERY_STRING`, `SCRIPT_NAME`) with
/// id `id`, keeping the connection when `keep`.
pub(crate) fn request(id: u16, uri: &str, keep: bool) -> Vec<u8> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut out = record(1, id, &[0, 1, u8::from(keep), 0, 0, 0, 0, 0]);
    let mut params = Vec::new();
    pair(&mut params, "REQUEST_METHOD", "GET");
    pair(&mut params, "REQUEST_URI", uri);
    pair(&mut params, "SCRIPT_NAME", path);
    pair(&mut params, "QUERY_STRING", query);
    pair(&mut params, "SERVER_NAME", "localhost");
    pair(&mut params, "SERVER_PORT", "80");
    pair(&mut params, "SERVER_PROTOCOL", "HTTP/1.1");
    out.extend(record(4, id, &params));
    out.extend(record(4, id, b""));
    out.extend(record(5, id, b""));
    out
}

/// The next record; `None` at end-of-file before a header.
///
/// # Panics
///
/// On a read error (a time-out included) or end-of-file inside a record.
pub(crate) fn read_record(stream: &mut UnixStream) -> Option<Rec> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return None,
            Ok(0) => panic!("end-of-file inside a record header"),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a record: {e}"),
        }
    }
    assert_eq!(header[0], 1, "version");
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let mut content = vec![0; len];
    stream.read_exact(&mut content).expect("record content");
    let mut padding = vec![0; usize::from(header[6])];
    stream.read_exact(&mut padding).expect("record padding");
    Some(Rec {
        kind: header[1],
        id: u16::from_be_bytes([header[2], header[3]]),
        content,
        padding,
    })
}

/// Records until (and with) the first of `kind`.
pub(crate) fn read_until(stream: &mut UnixStream, kind: u8) -> Vec<Rec> {
    let mut out = Vec::new();
    loop {
        let rec = read_record(stream).expect("a record, not end-of-file");
        let done = rec.kind == kind;
        out.push(rec);
        if done {
            return out;
        }
    }
}

/// Whether nothing at all arrives within `wait` (the stream stays open).
pub(crate) fn silent_for(stream: &mut UnixStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("a timeout");
    let mut byte = [0u8; 1];
    let silent = match stream.read(&mut byte) {
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        Ok(_) => false,
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a timeout");
    silent
}
