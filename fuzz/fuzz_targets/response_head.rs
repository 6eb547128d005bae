//! Arbitrary bytes through `response::HeadParser`, with a limit from 0 to 16383 and
//! arbitrary pieces.
//!
//! Input: two bytes of limit (little-endian, shifted right by 2), two split control
//! bytes (see `fcgi_fuzz::Splits`), then the `STDOUT` bytes.
//!
//! Checks: no panic; the parser never buffers more than its limit between pieces; a
//! parsed head is at most the limit; the result (head, body bytes, or `HeadError`) does
//! not depend on the pieces; a head re-parsed from a canonical re-serialization
//! (`Status` line when given, then `Name: value\r\n` lines) has the same status, reason
//! and headers; `to_http_parts` agrees on the status and header count when it succeeds.
#![no_main]

use bytes::Bytes;
use fcgi_fuzz::Splits;
use fcgi_proto::error::HeadError;
use fcgi_proto::{HeadParser, ResponseHead};
use libfuzzer_sys::fuzz_target;

type Outcome = Result<Option<(ResponseHead, Vec<u8>)>, HeadError>;

fn parse(pieces: &[&[u8]], limit: usize) -> Outcome {
    let mut parser = HeadParser::new(limit);
    let mut fed = 0usize;
    for (i, piece) in pieces.iter().enumerate() {
        fed += piece.len();
        match parser.feed(Bytes::copy_from_slice(piece))? {
            None => {
                assert!(
                    parser.buffered() <= limit,
                    "{} bytes buffered, limit {limit}",
                    parser.buffered()
                );
                assert!(parser.buffered() <= fed);
            }
            Some((head, rest)) => {
                assert!(fed - rest.len() <= limit, "head longer than the limit");
                let mut body = rest.to_vec();
                pieces[i + 1..]
                    .iter()
                    .for_each(|p| body.extend_from_slice(p));
                return Ok(Some((head, body)));
            }
        }
    }
    Ok(None)
}

fn serialize(head: &ResponseHead) -> Vec<u8> {
    let mut out = Vec::new();
    if head.has_status_header() {
        out.extend_from_slice(format!("Status: {}", head.status()).as_bytes());
        if let Some(reason) = head.reason() {
            out.push(b' ');
            out.extend_from_slice(reason.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    for h in head.headers() {
        out.extend_from_slice(h.name().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((limit, rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*limit) >> 2);
    let (mut splits, data) = Splits::new(rest);
    let pieces = splits.pieces(data);
    let outcome = parse(&pieces, limit);
    assert_eq!(outcome, parse(&[data], limit), "pieces change the outcome");
    let Ok(Some((head, _body))) = outcome else {
        return;
    };
    assert!(!head.headers().any(|h| h.name().is_empty()));
    let canonical = serialize(&head);
    let (again, rest) = HeadParser::new(usize::MAX)
        .feed(Bytes::from(canonical))
        .expect("a canonical head parses")
        .expect("a canonical head is complete");
    assert!(rest.is_empty());
    assert_eq!(again.status(), head.status());
    assert_eq!(again.reason(), head.reason());
    assert_eq!(again.has_status_header(), head.has_status_header());
    assert!(again.headers().eq(head.headers()));
    assert_eq!(again.content_length(), head.content_length());
    assert_eq!(again.is_local_redirect(), head.is_local_redirect());
    if let Ok(parts) = head.to_http_parts() {
        assert_eq!(parts.status.as_u16(), head.status());
        assert_eq!(parts.headers.len(), head.headers().len());
    }
});
