//! Which addresses outbound calls may reach: global unicast only. An IPv6 address that
//! carries an IPv4 one (mapped, compatible, NAT64, 6to4, Teredo) is judged by the IPv4
//! address it leads to, since a translator or relay would deliver it there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a global unicast address (and so is any IPv4 address it embeds).
pub(super) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_global_v4(ip),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Embedded::One(v4) => is_global_v4(v4),
            Embedded::Two(a, b) => is_global_v4(a) && is_global_v4(b),
            Embedded::None => is_global_v6(ip),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved 240/4, broadcast
}

/// Outside the forms that embed IPv4: only 2000::/3 is global unicast, minus the
/// special blocks carved out of it.
fn is_global_v6(ip: Ipv6Addr) -> bool {
    let [a, b, ..] = ip.segments();
    let special = match a {
        // IETF protocol assignments (2001::/23), documentation (2001:db8::/32).
        0x2001 => b < 0x0200 || b == 0x0db8,
        // Documentation (3fff::/20).
        0x3fff => b < 0x1000,
        // SRv6 SIDs (5f00::/16).
        0x5f00 => true,
        _ => false,
    };
    (a & 0xe000) == 0x2000 && !special
}

enum Embedded {
    None,
    One(Ipv4Addr),
    /// Teredo: the server and the client.
    Two(Ipv4Addr, Ipv4Addr),
}

fn embedded_v4(ip: Ipv6Addr) -> Embedded {
    let s = ip.segments();
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    match s {
        // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96 (:: and ::1 included:
        // 0.0.0.0 and 0.0.0.1 are refused like them).
        [0, 0, 0, 0, 0, 0xffff | 0, ..] => Embedded::One(low),
        // NAT64, well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Embedded::One(low),
        // Local-use NAT64 64:ff9b:1::/48 leads into a private translator whatever it
        // embeds: judged as the unspecified address, that is refused.
        [0x64, 0xff9b, 1, ..] => Embedded::One(Ipv4Addr::UNSPECIFIED),
        // 6to4 2002::/16: the IPv4 address follows the prefix.
        [0x2002, ..] => Embedded::One(Ipv4Addr::from((bits >> 80) as u32)),
        // Teredo 2001::/32: the server, then the client with its bits inverted.
        [0x2001, 0, ..] => Embedded::Two(
            Ipv4Addr::from((bits >> 64) as u32),
            Ipv4Addr::from(!(bits as u32)),
        ),
        _ => Embedded::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_unicast_is_reachable_in_every_form() {
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "198.20.0.1",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            // Teredo: server 65.54.227.120, client 8.8.8.8 (inverted f7f7:f7f7).
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ];
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            // Teredo with a loopback client (127.0.0.1 inverted: 80ff:fffe).
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            // Teredo through a private server.
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "3fff::1",
            "3fff:fff::1",
            "5f00::1",
            "4000::1",
            "::2:1:1",
        ];
        for ip in allowed {
            assert!(is_global(ip.parse().unwrap()), "{ip} should be allowed");
        }
        for ip in refused {
            assert!(!is_global(ip.parse().unwrap()), "{ip} should be refused");
        }
    }
}
