//! Name-value pairs, the encoding of `PARAMS`, `GET_VALUES` and `GET_VALUES_RESULT`.
//!
//! Each pair is the name's length, the value's length, the name, the value. A length
//! below 128 takes one byte; a longer one four bytes, big-endian, with the top bit set,
//! so no name or value can exceed 2^31-1 bytes.

use bytes::BufMut;

use crate::error::NvError;

/// The longest name or value the format can carry.
pub const MAX_LEN: usize = 0x7FFF_FFFF;

fn length_len(len: usize) -> usize {
    if len < 128 {
        1
    } else {
        4
    }
}

/// The encoded size of one pair.
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    length_len(name.len()) + length_len(value.len()) + name.len() + value.len()
}

pub(crate) fn put_length(out: &mut impl BufMut, len: usize) {
    if len < 128 {
        // Fits: checked just above.
        out.put_u8(len as u8);
    } else {
        // Fits: callers check `len <= MAX_LEN` first.
        out.put_u32(len as u32 | 0x8000_0000);
    }
}

/// Appends one pair to `out`; a name or value longer than [`MAX_LEN`] is an error and
/// nothing is written.
///
/// ```
/// let mut out = Vec::new();
/// fcgi_proto::nv::encode_pair(&mut out, b"REQUEST_METHOD", b"GET").unwrap();
/// assert_eq!(out, b"\x0e\x03REQUEST_METHODGET");
/// ```
pub fn encode_pair(out: &mut impl BufMut, name: &[u8], value: &[u8]) -> Result<(), NvError> {
    for len in [name.len(), value.len()] {
        if len > MAX_LEN {
            return Err(NvError::TooLong(len));
        }
    }
    put_length(out, name.len());
    put_length(out, value.len());
    out.put_slice(name);
    out.put_slice(value);
    Ok(())
}

/// Iterates over the pairs in `input`; an error ends the iteration.
///
/// ```
/// let pairs: Vec<_> = fcgi_proto::nv::decode_pairs(b"\x01\x01ab\x00\x00")
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(pairs, [(&b"a"[..], &b"b"[..]), (&b""[..], &b""[..])]);
/// ```
pub fn decode_pairs(input: &[u8]) -> Pairs<'_> {
    Pairs { rest: input }
}

/// Iterator over encoded name-value pairs; see [`decode_pairs`].
#[derive(Clone, Debug)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Pairs<'a> {
    fn length(&mut self) -> Result<usize, NvError> {
        let first = *self.rest.first().ok_or(NvError::Truncated)?;
        if first < 128 {
            self.rest = &self.rest[1..];
            return Ok(usize::from(first));
        }
        let Some((four, rest)) = self.rest.split_first_chunk::<4>() else {
            return Err(NvError::Truncated);
        };
        self.rest = rest;
        Ok((u32::from_be_bytes(*four) & 0x7FFF_FFFF) as usize)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], NvError> {
        if self.rest.len() < n {
            return Err(NvError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn pair(&mut self) -> Result<(&'a [u8], &'a [u8]), NvError> {
        let name_len = self.length()?;
        let value_len = self.length()?;
        Ok((self.take(name_len)?, self.take(value_len)?))
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), NvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.pair();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type OwnedPairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode(input: &[u8]) -> Result<OwnedPairs, NvError> {
        decode_pairs(input)
            .map(|r| r.map(|(n, v)| (n.to_vec(), v.to_vec())))
            .collect()
    }

    #[test]
    fn one_and_four_byte_lengths() {
        let long = vec![b'v'; 128];
        let mut out = Vec::new();
        encode_pair(&mut out, b"N", &long).unwrap();
        assert_eq!(&out[..6], &[1, 0x80, 0, 0, 128, b'N']);
        assert_eq!(out.len(), encoded_len(b"N", &long));
        let short = vec![b'v'; 127];
        let mut out2 = Vec::new();
        encode_pair(&mut out2, b"N", &short).unwrap();
        assert_eq!(&out2[..3], &[1, 127, b'N']);
        out.extend_from_slice(&out2);
        assert_eq!(
            decode(&out).unwrap(),
            vec![(b"N".to_vec(), long), (b"N".to_vec(), short)]
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut out = Vec::new();
        encode_pair(&mut out, b"NAME", &[b'x'; 200]).unwrap();
        for cut in 1..out.len() {
            assert_eq!(decode(&out[..cut]), Err(NvError::Truncated), "cut at {cut}");
        }
        // Byte by byte through a trailing partial pair: whole pairs then the error.
        let mut two = out.clone();
        two.extend_from_slice(&out[..3]);
        let mut it = decode_pairs(&two);
        assert!(matches!(it.next(), Some(Ok(_))));
        assert_eq!(it.next(), Some(Err(NvError::Truncated)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn top_bit_is_masked_and_too_long_rejected() {
        // A four-byte length with every bit set means 2^31-1, which the input lacks.
        assert_eq!(
            decode(&[0xFF, 0xFF, 0xFF, 0xFF, 0]),
            Err(NvError::Truncated)
        );
        // 2^31 bytes: a zeroed allocation the kernel maps lazily, never touched, since the
        // length is checked before anything is written.
        let huge = vec![0u8; MAX_LEN + 1];
        let mut out = Vec::new();
        assert_eq!(
            encode_pair(&mut out, b"N", &huge),
            Err(NvError::TooLong(MAX_LEN + 1))
        );
        assert_eq!(
            encode_pair(&mut out, &huge, b""),
            Err(NvError::TooLong(MAX_LEN + 1))
        );
        assert!(out.is_empty());
    }
}
