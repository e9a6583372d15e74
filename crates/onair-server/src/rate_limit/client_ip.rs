//! Who the client is when it is anonymous: the socket's peer address, or, when that peer
//! is one of our own proxies, the address the proxies forwarded (`Forwarded`, else
//! `X-Forwarded-For`). Anyone can write those headers, so they are read only from a
//! trusted peer, right to left, stopping at the first address that is not a trusted
//! proxy: everything left of it was written by the client itself.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The load balancers and reverse proxies in front of the nodes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// CIDRs (`10.0.0.0/8`) or single addresses; an error names the entry it cannot read.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{entry}` is not an address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in forwarded_for(headers).into_iter().rev() {
            // An unreadable hop ("unknown", an obfuscated name): the proxy that wrote it
            // is as close to the client as we can tell.
            let Some(hop) = hop else {
                return client;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// The addresses the proxies recorded, client first: `Forwarded`'s `for=` parameters if
/// the header is there, else `X-Forwarded-For`. `None` for a hop that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let lines = |name| headers.get_all(name).iter().map(|v| v.to_str().ok());
    if headers.contains_key(FORWARDED) {
        lines(FORWARDED.as_str())
            .flat_map(|line| line.unwrap_or("for=unknown").split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for").then(|| node(value))
                })?
            })
            .collect()
    } else {
        lines(X_FORWARDED_FOR)
            .flat_map(|line| line.unwrap_or("unknown").split(','))
            .map(node)
            .collect()
    }
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, or
/// quoted `"[2001:db8::1]:4711"`.
fn node(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    let ip = if let Some(bracketed) = value.strip_prefix('[') {
        bracketed.split(']').next()?.parse().ok()?
    } else if let Ok(ip) = value.parse() {
        ip
    } else {
        let (ip, _port) = value.rsplit_once(':')?;
        IpAddr::V4(ip.parse().ok()?)
    };
    Some(IpAddr::to_canonical(&ip))
}

/// The rate-limit key of an anonymous client: its IPv4 address, or its IPv6 /64 (one
/// subscriber's network: a host picks any address inside it at will).
pub fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX));
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        TrustedProxies::parse(&list).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let forged = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("9.9.9.9"), &forged), ip("9.9.9.9"));
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(lb.client_ip(ip("9.9.9.9"), &forged), ip("9.9.9.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let lb = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        // The client prepended a lie; our proxies appended what they saw.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 7.7.7.7, 192.168.1.1")]);
        assert_eq!(lb.client_ip(ip("10.1.2.3"), &chain), ip("7.7.7.7"));
        // Split over several header lines, in order.
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7:5555"),
        ]);
        assert_eq!(lb.client_ip(ip("10.1.2.3"), &lines), ip("7.7.7.7"));
        // Only proxies in the chain: the left-most is as far as it goes.
        let inside = headers(&[("x-forwarded-for", "10.9.9.9, 10.8.8.8")]);
        assert_eq!(lb.client_ip(ip("10.1.2.3"), &inside), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(lb.client_ip(ip("10.1.2.3"), &headers(&[])), ip("10.1.2.3"));
        // An IPv4-mapped peer is its IPv4 address.
        assert_eq!(lb.client_ip(ip("::ffff:10.1.2.3"), &chain), ip("7.7.7.7"),);
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_is_parsed_per_rfc_7239() {
        let lb = proxies(&["10.0.0.1/32"]);
        let both = headers(&[
            ("x-forwarded-for", "3.3.3.3"),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.1",
            ),
        ]);
        assert_eq!(lb.client_ip(ip("10.0.0.1"), &both), ip("2001:db8::1"));
        let hidden = headers(&[("forwarded", "for=6.6.6.6, for=_hidden, by=10.0.0.1")]);
        // `by=` only: not an address, so the peer is as close as we get.
        assert_eq!(lb.client_ip(ip("10.0.0.1"), &hidden), ip("10.0.0.1"));
        let unknown = headers(&[("forwarded", "for=6.6.6.6, for=unknown")]);
        assert_eq!(lb.client_ip(ip("10.0.0.1"), &unknown), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(client_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
    }

    #[test]
    fn proxies_are_cidrs_or_addresses() {
        let lb = proxies(&["10.0.0.0/8", " 192.0.2.1 ", "2001:db8::/32"]);
        assert!(lb.trusts(ip("10.255.0.1")));
        assert!(lb.trusts(ip("192.0.2.1")));
        assert!(!lb.trusts(ip("192.0.2.2")));
        assert!(lb.trusts(ip("2001:db8:ffff::1")));
        let err = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }
}
