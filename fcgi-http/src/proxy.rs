//! Trusted reverse proxies: the client's address from `X-Forwarded-For` and the scheme
//! from `X-Forwarded-Proto`, believed only when the connection comes from a proxy the
//! operator named (nginx's realip module with `real_ip_recursive on`).

use std::net::{IpAddr, SocketAddr};

use ::http::HeaderMap;
use ipnet::IpNet;

/// What the application is told of the client, once trusted proxies are taken into
/// account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientView {
    /// The client's address as forwarded, when a trusted proxy forwarded one (port 0:
    /// the header carries none).
    pub(crate) forwarded_for: Option<IpAddr>,
    /// `Some(true)` for `X-Forwarded-Proto: https` from a trusted proxy, `Some(false)`
    /// for `http`.
    pub(crate) forwarded_https: Option<bool>,
}

/// Reads the forwarding headers of a request that came from `peer`: nothing unless
/// `peer` is in `trusted`. The client is the rightmost `X-Forwarded-For` address that is
/// not itself a trusted proxy (each proxy appends the address it saw, so everything to
/// the left of the first untrusted hop may be forged); a list of trusted proxies only
/// gives its leftmost. An entry that is not an address (`unknown`, garbage) ends the
/// walk with no forwarded address at all, as nginx does.
pub(crate) fn client_view(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> ClientView {
    let none = ClientView::default();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return none;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return none;
        };
        hops.extend(value.split(',').map(str::trim).filter(|h| !h.is_empty()));
    }
    let mut forwarded_for = None;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            forwarded_for = None;
            break;
        };
        forwarded_for = Some(ip);
        if !is_trusted(&ip) {
            break;
        }
    }
    let forwarded_https = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back()
        .and_then(|proto| {
            if proto.eq_ignore_ascii_case("https") {
                Some(true)
            } else if proto.eq_ignore_ascii_case("http") {
                Some(false)
            } else {
                None
            }
        });
    ClientView {
        forwarded_for,
        forwarded_https,
    }
}

/// An address as `X-Forwarded-For` lists it: `192.0.2.1`, `2001:db8::1`, and the forms
/// with a port some proxies write (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(canonical)
}

/// An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`, as a dual-stack listener
/// reports IPv4 peers) as the IPv4 address, so that IPv4 networks match it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Parses a trusted proxy as an operator writes one: a network (`10.0.0.0/8`,
/// `fd00::/8`) or a single address (`192.0.2.10`).
pub fn parse_trusted_proxy(text: &str) -> Result<IpNet, ipnet::AddrParseError> {
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => text.parse::<IpNet>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(peer: &str, trusted: &[&str], xff: &[&str], proto: Option<&str>) -> ClientView {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        if let Some(proto) = proto {
            headers.insert("x-forwarded-proto", proto.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted
            .iter()
            .map(|t| parse_trusted_proxy(t).unwrap())
            .collect();
        client_view(&headers, peer.parse().unwrap(), &trusted)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn untrusted_peers_are_not_believed() {
        let got = view(
            "198.51.100.9",
            &["10.0.0.0/8"],
            &["203.0.113.7"],
            Some("https"),
        );
        assert_eq!(got.forwarded_for, None);
        assert_eq!(got.forwarded_https, None);
        // No trusted proxies at all: the default.
        let got = view("10.0.0.1", &[], &["203.0.113.7"], Some("https"));
        assert_eq!((got.forwarded_for, got.forwarded_https), (None, None));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8", "192.0.2.10"];
        let got = view("10.1.2.3", &trusted, &["203.0.113.7"], Some("https"));
        assert_eq!(got.forwarded_for, ip("203.0.113.7"));
        assert_eq!(got.forwarded_https, Some(true));
        // A forged entry on the left stays on the left.
        let got = view(
            "10.1.2.3",
            &trusted,
            &["6.6.6.6, 203.0.113.7, 192.0.2.10"],
            None,
        );
        assert_eq!(got.forwarded_for, ip("203.0.113.7"));
        // Several header lines are one list, in order.
        let got = view(
            "10.1.2.3",
            &trusted,
            &["6.6.6.6", "203.0.113.7", "10.9.9.9"],
            None,
        );
        assert_eq!(got.forwarded_for, ip("203.0.113.7"));
        // Only proxies: the leftmost.
        let got = view("10.1.2.3", &trusted, &["10.0.0.5, 192.0.2.10"], None);
        assert_eq!(got.forwarded_for, ip("10.0.0.5"));
        // Ports and IPv6.
        let got = view("10.1.2.3", &trusted, &["[2001:db8::1]:4711"], Some("HTTP"));
        assert_eq!(got.forwarded_for, ip("2001:db8::1"));
        assert_eq!(got.forwarded_https, Some(false));
        let got = view("10.1.2.3", &trusted, &["203.0.113.7:4711"], None);
        assert_eq!(got.forwarded_for, ip("203.0.113.7"));
        // An IPv4 peer seen through a dual-stack socket.
        let got = view("::ffff:10.1.2.3", &trusted, &["203.0.113.7"], None);
        assert_eq!(got.forwarded_for, ip("203.0.113.7"));
    }

    #[test]
    fn garbage_gives_no_address() {
        let trusted = ["10.0.0.0/8"];
        for xff in ["unknown", "203.0.113.7, nonsense", "300.1.1.1"] {
            let got = view("10.1.2.3", &trusted, &[xff], None);
            assert_eq!(got.forwarded_for, None, "{xff}");
        }
        let got = view("10.1.2.3", &trusted, &[], Some("gopher"));
        assert_eq!((got.forwarded_for, got.forwarded_https), (None, None));
        // The last value of a list is the nearest proxy's.
        let got = view("10.1.2.3", &trusted, &[], Some("http, https"));
        assert_eq!(got.forwarded_https, Some(true));
    }

    #[test]
    fn trusted_proxies_parse_as_networks_or_addresses() {
        assert_eq!(
            parse_trusted_proxy("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted_proxy("192.0.2.10").unwrap().to_string(),
            "192.0.2.10/32"
        );
        assert_eq!(parse_trusted_proxy("::1").unwrap().to_string(), "::1/128");
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("proxy.example").is_err());
    }
}
