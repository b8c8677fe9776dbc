//! Parsing the words callers send — protocols, port lists, CIDRs, addresses, comments — into normalised types.
//! Everything from the bus passes through here before it reaches the database or nft.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Longest comment or reason kept, in bytes.
pub const MAX_TEXT: usize = 256;
/// Most source networks on one rule or the SSH access list.
pub const MAX_SOURCES: usize = 64;
/// Most port items (ports or ranges) in one rule.
pub const MAX_PORT_ITEMS: usize = 32;

/// The ports every machine keeps open (besides SSH): the panel. Openings on other ports must expire or say why
/// they are permanent.
pub const STANDARD_PORTS: [u16; 2] = [80, 443];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("protocol {s:?} is not supported; use tcp or udp")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// An inclusive port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// A sorted list of non-overlapping, non-adjacent port ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(Vec<PortRange>);

impl Ports {
    /// `80`, `8000-8100`, or a comma list of those; whitespace is ignored, overlapping items merge.
    pub fn parse(s: &str) -> Result<Ports, String> {
        let items: Vec<&str> = s.split(',').map(str::trim).collect();
        if s.trim().is_empty() {
            return Err(
                "ports are empty; give a port (8080), a range (8000-8100) or a list (80,8000-8100)"
                    .into(),
            );
        }
        if items.len() > MAX_PORT_ITEMS {
            return Err(format!(
                "too many port items ({}); the limit is {MAX_PORT_ITEMS}",
                items.len()
            ));
        }
        let mut ranges = Vec::with_capacity(items.len());
        for item in items {
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (port(a.trim())?, port(b.trim())?),
                None => {
                    let p = port(item)?;
                    (p, p)
                }
            };
            if first > last {
                return Err(format!(
                    "port range {item:?} runs backwards; write it low-high"
                ));
            }
            ranges.push(PortRange { first, last });
        }
        ranges.sort();
        let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(prev) if u32::from(r.first) <= u32::from(prev.last) + 1 => {
                    prev.last = prev.last.max(r.last);
                }
                _ => merged.push(r),
            }
        }
        Ok(Ports(merged))
    }

    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    /// True when every port is one of `ports`.
    pub fn within(&self, ports: &[u16]) -> bool {
        self.0
            .iter()
            .all(|r| (r.first..=r.last).all(|p| ports.contains(&p)))
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.first == r.last {
                write!(f, "{}", r.first)?;
            } else {
                write!(f, "{}-{}", r.first, r.last)?;
            }
        }
        Ok(())
    }
}

fn port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!("{s:?} is not a port; ports are numbers 1-65535")),
    }
}

/// A CIDR or bare address (meaning /32 or /128), truncated to its network: `10.1.2.3/8` becomes `10.0.0.0/8`.
pub fn cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "{s:?} is not an address or CIDR (examples: 192.0.2.7, 198.51.100.0/24, 2001:db8::/32)"
    ))
}

/// A list of CIDRs, sorted and without duplicates.
pub fn cidrs(list: &[String]) -> Result<Vec<IpNet>, String> {
    if list.len() > MAX_SOURCES {
        return Err(format!(
            "too many sources ({}); the limit is {MAX_SOURCES}",
            list.len()
        ));
    }
    let mut nets = list
        .iter()
        .map(|s| cidr(s))
        .collect::<Result<Vec<_>, _>>()?;
    nets.sort();
    nets.dedup();
    Ok(nets)
}

/// One address to ban: no prefixes (a ban is one source).
pub fn address(s: &str) -> Result<IpAddr, String> {
    let s = s.trim();
    let addr: IpAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))?;
    // A v4-mapped v6 address is the v4 source as the kernel sees it on an inet table.
    Ok(match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    })
}

/// Free text (comments, reasons): one line, printable, bounded.
pub fn text(name: &str, s: &str, required: bool) -> Result<String, String> {
    let s = s.trim();
    if required && s.is_empty() {
        return Err(format!("{name} is required: say why"));
    }
    if s.len() > MAX_TEXT {
        return Err(format!(
            "{name} is {} bytes; the limit is {MAX_TEXT}",
            s.len()
        ));
    }
    if s.chars().any(|c| c.is_control() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')) {
        return Err(format!("{name} contains control or invisible characters"));
    }
    Ok(s.to_owned())
}

/// SSH ports: one or two, 1–65535, no duplicates.
pub fn ssh_ports(ports: &[u16]) -> Result<Vec<u16>, String> {
    let mut v = ports.to_vec();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() || v.len() > 2 || v.contains(&0) {
        return Err(format!(
            "SSH ports {ports:?}: give one or two ports 1-65535 (two only while moving SSH to a new port)"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_normalise_and_merge() {
        assert_eq!(Ports::parse(" 8080 ").unwrap().to_string(), "8080");
        assert_eq!(
            Ports::parse("8100-8200,80,8000-8100,81")
                .unwrap()
                .to_string(),
            "80-81,8000-8200"
        );
        assert!(Ports::parse("443,80").unwrap().within(&STANDARD_PORTS));
        assert!(!Ports::parse("80-82").unwrap().within(&STANDARD_PORTS));
    }

    #[test]
    fn bad_ports_say_what_is_wrong() {
        for (input, want) in [
            ("", "empty"),
            ("0", "1-65535"),
            ("65536", "1-65535"),
            ("90-80", "backwards"),
            ("22;reboot", "not a port"),
            ("-1", "not a port"),
        ] {
            let err = Ports::parse(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn cidrs_truncate_sort_and_refuse_garbage() {
        let v = cidrs(&[
            "10.1.2.3/8".into(),
            "192.0.2.7".into(),
            "2001:db8::1/32".into(),
            "10.0.0.0/8".into(),
        ])
        .unwrap();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("example.com").unwrap_err().contains("not an address"));
    }

    #[test]
    fn addresses_and_text() {
        assert_eq!(
            address("::ffff:192.0.2.7").unwrap().to_string(),
            "192.0.2.7"
        );
        assert!(address("192.0.2.0/24").is_err());
        assert!(text("comment", "", true).is_err());
        assert!(text("comment", "a\nb", true).is_err());
        assert_eq!(text("comment", " ok ", true).unwrap(), "ok");
        assert!(ssh_ports(&[22, 2222, 2223]).is_err());
        assert_eq!(ssh_ports(&[2222, 22, 22]).unwrap(), [22, 2222]);
    }
}
