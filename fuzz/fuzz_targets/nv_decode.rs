//! Arbitrary bytes through `nv::decode_pairs`.
//!
//! Checks: no panic; the only error is `Truncated`, it comes last and ends the iteration;
//! without an error the pairs cover the input exactly; every decoded pair re-encodes with
//! `nv::encode_pair` to exactly the bytes it came from, except that a length sent in the
//! four-byte form below 128 (which the decoder accepts) re-encodes in its one-byte form;
//! the re-encoded pairs decode to the same pairs.
#![no_main]

use fcgi_proto::error::NvError;
use fcgi_proto::nv;
use libfuzzer_sys::fuzz_target;

/// How many bytes the length at the front of `bytes` takes, and whether that form is the
/// shortest one (a four-byte length below 128 is not).
fn length_form(bytes: &[u8]) -> (usize, bool) {
    if bytes[0] < 128 {
        return (1, true);
    }
    let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7FFF_FFFF;
    (4, len >= 128)
}

fuzz_target!(|input: &[u8]| {
    let mut pos = 0usize;
    let mut pairs = Vec::new();
    let mut reencoded = Vec::new();
    let mut iter = nv::decode_pairs(input);
    while let Some(item) = iter.next() {
        match item {
            Ok((name, value)) => {
                // `value` is a slice of `input`: its end is where this pair's bytes end.
                let end = value.as_ptr() as usize + value.len() - input.as_ptr() as usize;
                let original = &input[pos..end];
                let mut out = Vec::new();
                nv::encode_pair(&mut out, name, value).expect("decoded pairs are short");
                assert_eq!(out.len(), nv::encoded_len(name, value));
                let (name_len_len, name_short) = length_form(original);
                let (_, value_short) = length_form(&original[name_len_len..]);
                if name_short && value_short {
                    assert_eq!(out, original, "pair does not re-encode to its bytes");
                } else {
                    // Same pair, each long-form short length three bytes shorter.
                    let saved = 3 * (usize::from(!name_short) + usize::from(!value_short));
                    assert_eq!(out.len() + saved, original.len());
                    assert!(original.ends_with(&out[out.len() - name.len() - value.len()..]));
                }
                reencoded.extend_from_slice(&out);
                pairs.push((name, value));
                pos = end;
            }
            Err(e) => {
                assert_eq!(e, NvError::Truncated);
                assert!(iter.next().is_none(), "iteration goes on after an error");
                break;
            }
        }
    }
    if pos != input.len() {
        // Only an error stops short of the end.
        assert!(nv::decode_pairs(input).any(|r| r.is_err()));
    }
    let again: Vec<_> = nv::decode_pairs(&reencoded)
        .collect::<Result<_, _>>()
        .expect("re-encoded pairs decode");
    assert_eq!(again, pairs);
});
