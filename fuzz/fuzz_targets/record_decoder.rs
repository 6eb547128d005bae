//! Arbitrary bytes through `record::RecordDecoder`, fed in arbitrary pieces.
//!
//! Checks: no panic; the only error is `BadVersion` with a version other than 1; fragments
//! of one record share its header, stream content comes in non-empty pieces that add up
//! to its content length, non-stream records come whole; the decoder never holds more
//! than one partial header or non-stream record; fragment bytes never exceed the bytes
//! fed; re-encoding the whole records decoded (with their padding) and decoding them
//! again, whole and byte by byte, gives the same records.
#![no_main]

use bytes::BytesMut;
use fcgi_fuzz::Splits;
use fcgi_proto::error::ProtocolError;
use fcgi_proto::record::{RecordDecoder, RecordHeader, HEADER_LEN, MAX_CONTENT_LEN};
use libfuzzer_sys::fuzz_target;

type Records = Vec<(RecordHeader, Vec<u8>)>;

/// Decodes `pieces` in order; returns the whole records and whether decoding failed.
fn decode(pieces: &[&[u8]]) -> (Records, bool) {
    let mut decoder = RecordDecoder::new();
    let mut buf = BytesMut::new();
    let mut records: Records = Vec::new();
    // The record whose content is still arriving: header and bytes so far.
    let mut open: Option<(RecordHeader, Vec<u8>)> = None;
    let mut fed = 0usize;
    let mut delivered = 0usize;
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => {
                    delivered += f.data.len();
                    assert!(delivered <= fed, "fragments hold more than was fed");
                    let len = usize::from(f.header.content_length);
                    if !f.header.record_type.is_stream() {
                        assert!(open.is_none(), "non-stream record inside a stream record");
                        assert!(f.last, "non-stream record in pieces");
                        assert_eq!(f.data.len(), len, "non-stream record of the wrong length");
                        records.push((f.header, f.data.to_vec()));
                        continue;
                    }
                    let (header, mut content) = match open.take() {
                        Some((h, c)) => {
                            assert_eq!(h, f.header, "fragment header changed mid-record");
                            (h, c)
                        }
                        None => (f.header, Vec::new()),
                    };
                    assert!(len == 0 || !f.data.is_empty(), "empty stream fragment");
                    content.extend_from_slice(&f.data);
                    assert!(content.len() <= len, "stream record longer than its header");
                    if f.last {
                        assert_eq!(content.len(), len, "stream record ended short");
                        records.push((header, content));
                    } else {
                        assert!(
                            content.len() < len,
                            "non-last fragment completes the record"
                        );
                        open = Some((header, content));
                    }
                }
                Ok(None) => {
                    assert!(
                        buf.len() < HEADER_LEN + MAX_CONTENT_LEN,
                        "decoder left {} bytes buffered",
                        buf.len()
                    );
                    break;
                }
                Err(e) => {
                    assert!(
                        matches!(e, ProtocolError::BadVersion(v) if v != 1),
                        "unexpected error {e:?}"
                    );
                    return (records, true);
                }
            }
        }
    }
    (records, false)
}

fn encode(records: &Records) -> Vec<u8> {
    let mut wire = Vec::new();
    for (header, content) in records {
        wire.extend_from_slice(&header.encode());
        wire.extend_from_slice(content);
        wire.resize(wire.len() + usize::from(header.padding_length), 0);
    }
    wire
}

fuzz_target!(|input: &[u8]| {
    let (mut splits, data) = Splits::new(input);
    let pieces = splits.pieces(data);
    let (records, _failed) = decode(&pieces);
    let wire = encode(&records);
    let (again, failed) = decode(&[&wire]);
    assert!(!failed);
    assert_eq!(again, records, "re-encoded records decode differently");
    if wire.len() <= 4096 {
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode(&bytes), (records, false), "byte by byte differs");
    }
});
