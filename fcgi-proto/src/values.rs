//! Management variables: what `GET_VALUES` asks and `GET_VALUES_RESULT` answers.

use std::fmt;

use bytes::Bytes;

use crate::error::NvError;
use crate::nv;

/// `FCGI_MAX_CONNS`: the most concurrent connections the server accepts.
pub const FCGI_MAX_CONNS: &str = "FCGI_MAX_CONNS";
/// `FCGI_MAX_REQS`: the most concurrent requests the server accepts.
pub const FCGI_MAX_REQS: &str = "FCGI_MAX_REQS";
/// `FCGI_MPXS_CONNS`: `1` when the server multiplexes requests on one connection.
pub const FCGI_MPXS_CONNS: &str = "FCGI_MPXS_CONNS";

/// The answer to `GET_VALUES`: the variables the server chose to report, in order.
///
/// php-fpm answers only `FCGI_MPXS_CONNS=0`; flup answers all three.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerValues {
    pairs: Vec<(Bytes, Bytes)>,
}

impl fmt::Debug for ServerValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.pairs
                    .iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl ServerValues {
    /// Reads the content of a `GET_VALUES_RESULT` record.
    pub fn decode(content: &Bytes) -> Result<Self, NvError> {
        let pairs = nv::decode_pairs(content)
            .map(|pair| pair.map(|(n, v)| (content.slice_ref(n), content.slice_ref(v))))
            .collect::<Result<_, _>>()?;
        Ok(Self { pairs })
    }

    /// The reported variables, as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs.iter().map(|(n, v)| (&n[..], &v[..]))
    }

    /// A variable's value, if reported.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    fn number(&self, name: &str) -> Option<u32> {
        std::str::from_utf8(self.get(name)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the server said it multiplexes (`FCGI_MPXS_CONNS=1`).
    pub fn multiplexes(&self) -> bool {
        self.number(FCGI_MPXS_CONNS) == Some(1)
    }

    /// `FCGI_MAX_REQS`, if reported as a number.
    pub fn max_requests(&self) -> Option<u32> {
        self.number(FCGI_MAX_REQS)
    }

    /// `FCGI_MAX_CONNS`, if reported as a number.
    pub fn max_connections(&self) -> Option<u32> {
        self.number(FCGI_MAX_CONNS)
    }

    /// How many requests to keep in flight on one connection to this server: 1 unless
    /// it multiplexes; then `FCGI_MAX_REQS` (at least 1, at most 65535), or `fallback`
    /// when it did not say.
    pub fn max_concurrent_requests(&self, fallback: u16) -> u16 {
        if !self.multiplexes() {
            return 1;
        }
        match self.max_requests() {
            Some(n) => u16::try_from(n).unwrap_or(u16::MAX).max(1),
            None => fallback.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> ServerValues {
        let mut out = Vec::new();
        for (n, v) in pairs {
            nv::encode_pair(&mut out, n.as_bytes(), v.as_bytes()).unwrap();
        }
        ServerValues::decode(&Bytes::from(out)).unwrap()
    }

    #[test]
    fn php_fpm_and_flup_answers() {
        let fpm = values(&[(FCGI_MPXS_CONNS, "0")]);
        assert!(!fpm.multiplexes());
        assert_eq!(fpm.max_concurrent_requests(32), 1);
        let flup = values(&[
            (FCGI_MAX_CONNS, "10"),
            (FCGI_MAX_REQS, "50"),
            (FCGI_MPXS_CONNS, "1"),
        ]);
        assert!(flup.multiplexes());
        assert_eq!(flup.max_requests(), Some(50));
        assert_eq!(flup.max_connections(), Some(10));
        assert_eq!(flup.max_concurrent_requests(32), 50);
        assert_eq!(
            values(&[(FCGI_MPXS_CONNS, "1")]).max_concurrent_requests(32),
            32
        );
        assert_eq!(
            values(&[(FCGI_MPXS_CONNS, "1"), (FCGI_MAX_REQS, "100000")]).max_concurrent_requests(1),
            u16::MAX
        );
        assert_eq!(
            values(&[(FCGI_MPXS_CONNS, "yes")]).max_concurrent_requests(8),
            1
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            ServerValues::decode(&Bytes::from_static(b"\x05\x01AB")),
            Err(NvError::Truncated)
        );
    }
}
