//! This machine's own addresses, as people reach it: what the console shows and the panel's certificate names.

use std::net::IpAddr;

/// Global addresses (no loopback, link-local or unspecified ones), IPv4 first, without duplicates.
pub fn global_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|a| {
            let s = a.address?;
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
            IpAddr::V6(v6) => {
                !v6.is_loopback() && !v6.is_unicast_link_local() && !v6.is_unspecified()
            }
        })
        .collect();
    out.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    out.dedup();
    out
}

/// TCP ports something listens on in this network namespace (from /proc/net/tcp and tcp6; state 0A = LISTEN).
pub fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                continue;
            }
            let port = f
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            ports.extend(port);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A port to suggest for SSH: random in 20000..60000 (unprivileged, outside the ranges services usually take and
/// below the kernel's ephemeral range), and not one something already listens on.
pub fn suggest_ssh_port() -> u16 {
    let taken = listening_ports();
    let mut b = [0u8; 2];
    for _ in 0..64 {
        if getrandom_fill(&mut b).is_err() {
            break;
        }
        let p = 20_000 + u16::from_be_bytes(b) % 40_000;
        if !taken.contains(&p) {
            return p;
        }
    }
    (20_000..60_000)
        .find(|p| !taken.contains(p))
        .unwrap_or(40_022)
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// `https://<address>/` for an address (v6 in brackets).
pub fn https_url(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}/"),
        IpAddr::V6(v6) => format!("https://[{v6}]/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_ports_are_free_and_in_range() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(
            listening_ports().contains(&port),
            "{port} not seen listening"
        );
        for _ in 0..50 {
            let p = suggest_ssh_port();
            assert!((20_000..60_000).contains(&p) && p != port);
        }
    }

    #[test]
    fn urls_and_no_loopback() {
        assert!(global_addresses().iter().all(|ip| !ip.is_loopback()));
        assert_eq!(https_url(&"10.0.0.1".parse().unwrap()), "https://10.0.0.1/");
        assert_eq!(https_url(&"fd00::1".parse().unwrap()), "https://[fd00::1]/");
    }
}
