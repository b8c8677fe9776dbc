//! Who is never banned: allowlisted networks (from settings and from firewalld's `Allowlist()`) and the sources of
//! confirmed administrator sessions that are open right now (an accepted SSH public key; a panel session that
//! passed every factor). The firewall refuses to ban allowlisted sources too; checking here as well keeps the
//! audit log free of bans that were never going to happen.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::parse::SessionEnd;

/// A network in CIDR form; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix.min(128)));
    a & mask == b & mask
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || {
            format!("{text:?} is not an address or CIDR network (e.g. 192.0.2.0/24, 2001:db8::/32)")
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Settings' networks plus firewalld's current allowlist.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    configured: Vec<Cidr>,
    firewall: Vec<Cidr>,
}

impl Allowlist {
    pub fn new(configured: Vec<Cidr>) -> Allowlist {
        Allowlist {
            configured,
            firewall: Vec::new(),
        }
    }

    /// Replaces the part read from firewalld (entries that do not parse are skipped with a warning).
    pub fn set_firewall(&mut self, cidrs: impl IntoIterator<Item = String>) {
        self.firewall = cidrs
            .into_iter()
            .filter_map(|c| match c.parse() {
                Ok(cidr) => Some(cidr),
                Err(e) => {
                    log::warn!("ignoring firewall allowlist entry: {e}");
                    None
                }
            })
            .collect();
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.configured
            .iter()
            .chain(&self.firewall)
            .any(|c| c.contains(addr))
    }
}

/// Open administrator sessions. A session whose end was never logged (sshd killed) is forgotten after `max_age`.
#[derive(Debug)]
pub struct AdminSessions {
    next_id: u64,
    sessions: HashMap<u64, (IpAddr, u64)>,
    keys: HashMap<SessionEnd, u64>,
    max_age_us: u64,
    cap: usize,
}

impl AdminSessions {
    pub fn new(max_age_secs: u64, cap: usize) -> AdminSessions {
        AdminSessions {
            next_id: 0,
            sessions: HashMap::new(),
            keys: HashMap::new(),
            max_age_us: max_age_secs.saturating_mul(1_000_000),
            cap: cap.max(1),
        }
    }

    pub fn open(&mut self, source: IpAddr, keys: Vec<SessionEnd>, now_us: u64) {
        if self.sessions.len() >= self.cap {
            self.expire(now_us);
            if self.sessions.len() >= self.cap {
                // Still full: the oldest gives way (it is the likeliest to have ended unlogged).
                if let Some(oldest) = self
                    .sessions
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(id, _)| *id)
                {
                    self.remove(oldest);
                }
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.sessions.insert(id, (source, now_us));
        for key in keys {
            if let Some(old) = self.keys.insert(key, id) {
                // A PID or endpoint reused: the session it named has ended.
                if old != id {
                    self.remove(old);
                }
            }
        }
    }

    pub fn close(&mut self, key: &SessionEnd) {
        if let Some(id) = self.keys.get(key).copied() {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u64) {
        self.sessions.remove(&id);
        self.keys.retain(|_, v| *v != id);
    }

    fn expire(&mut self, now_us: u64) {
        let stale: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, (_, t))| now_us.saturating_sub(*t) > self.max_age_us)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.remove(id);
        }
    }

    /// True when `source` has an open administrator session.
    pub fn is_admin(&self, source: IpAddr, now_us: u64) -> bool {
        self.sessions
            .values()
            .any(|(s, t)| *s == source && now_us.saturating_sub(*t) <= self.max_age_us)
    }

    pub fn open_count(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let net: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(net.contains(ip("192.0.2.200")));
        assert!(net.contains(ip("::ffff:192.0.2.1")));
        assert!(!net.contains(ip("192.0.3.1")));
        assert!(!net.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let one: Cidr = "203.0.113.9".parse().unwrap();
        assert!(one.contains(ip("203.0.113.9")) && !one.contains(ip("203.0.113.8")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "192.0.2.0/33",
            "x",
            "192.0.2.0/",
            "2001:db8::/129",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allowlist_merges_settings_and_firewall() {
        let mut a = Allowlist::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(a.contains(ip("10.1.2.3")));
        assert!(!a.contains(ip("198.51.100.7")));
        a.set_firewall(["198.51.100.0/24".to_owned(), "garbage".to_owned()]);
        assert!(a.contains(ip("198.51.100.7")));
        a.set_firewall([]);
        assert!(!a.contains(ip("198.51.100.7")));
    }

    #[test]
    fn admin_session_lifecycle() {
        let admin = ip("192.0.2.10");
        let mut s = AdminSessions::new(3600, 8);
        assert!(!s.is_admin(admin, 0));
        s.open(
            admin,
            vec![SessionEnd::Endpoint(admin, 5000), SessionEnd::Pid(77)],
            0,
        );
        s.open(
            admin,
            vec![SessionEnd::Endpoint(admin, 5001), SessionEnd::Pid(78)],
            0,
        );
        assert!(s.is_admin(admin, 1));
        s.close(&SessionEnd::Endpoint(admin, 5000));
        assert!(s.is_admin(admin, 1), "the second session is still open");
        s.close(&SessionEnd::Pid(78));
        assert!(!s.is_admin(admin, 1));
        // An unlogged end is forgotten after max_age.
        s.open(admin, vec![SessionEnd::Pid(79)], 0);
        assert!(s.is_admin(admin, 3_600_000_000));
        assert!(!s.is_admin(admin, 3_600_000_001));
    }

    #[test]
    fn sessions_are_bounded() {
        let mut s = AdminSessions::new(3600, 4);
        for n in 0..100u16 {
            s.open(
                ip("192.0.2.1"),
                vec![SessionEnd::Pid(u32::from(n))],
                u64::from(n),
            );
            assert!(s.open_count() <= 4);
        }
    }
}
