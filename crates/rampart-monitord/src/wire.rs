//! The byte layouts shared with the BPF programs (`bpf/monitor.h`), read and written field by field in native
//! byte order. Parsing copies bytes into plain values (no casts of kernel memory into Rust types), and anything
//! shorter than its layout is refused rather than read past.

pub const EV_EXEC: u32 = 0;
pub const EV_CONNECT: u32 = 1;
pub const EV_LISTEN: u32 = 2;
pub const EV_KINDS: usize = 3;
/// Event kinds by index, as [`rampart_interfaces::monitor::EventCount::kind`] names them.
pub const KIND_NAMES: [&str; EV_KINDS] = ["exec", "connect", "listen"];

pub const EXEC_TMPFS: u8 = 1;
pub const EXEC_WORLD_WRITABLE: u8 = 2;
pub const EXEC_DELETED: u8 = 4;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

pub const STATS_SIZE: usize = 7 * 8;
pub const PORT_KEY_SIZE: usize = 16;
pub const BIN_KEY_SIZE: usize = 24;
const COMM_LEN: usize = 16;
const PATH_LEN: usize = 256;
pub const EVENT_SIZE: usize = HEADER_SIZE + COMM_LEN + PATH_LEN;
const HEADER_SIZE: usize = 56;

/// `u64` at byte `offset` of `b` (0 when `b` is too short: callers check lengths first).
pub fn u64_at(b: &[u8], offset: usize) -> u64 {
    b.get(offset..offset + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

fn u32_at(b: &[u8], offset: usize) -> u32 {
    b.get(offset..offset + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn u16_at(b: &[u8], offset: usize) -> u16 {
    b.get(offset..offset + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

/// A NUL-terminated C string field, as printable text. Paths and process names are the tenant's choice, and they
/// end up on an administrator's terminal (`rampartctl monitor alerts`): control characters (escape sequences,
/// newlines) and invalid UTF-8 are shown as `\xNN` instead of being passed on.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let mut out = String::with_capacity(end);
    for chunk in b[..end].utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                for byte in c.to_string().bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// `struct tenant_stats`: one CPU's share, or (summed) a tenant's total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub connects: u64,
    pub execs: u64,
    pub flagged_execs: u64,
}

impl Stats {
    pub fn from_bytes(b: &[u8]) -> Stats {
        Stats {
            rx_bytes: u64_at(b, 0),
            rx_packets: u64_at(b, 8),
            tx_bytes: u64_at(b, 16),
            tx_packets: u64_at(b, 24),
            connects: u64_at(b, 32),
            execs: u64_at(b, 40),
            flagged_execs: u64_at(b, 48),
        }
    }

    /// Field-wise sum (counter totals across restarts: what was saved plus what the kernel counted since).
    pub fn plus(self, o: Stats) -> Stats {
        Stats {
            rx_bytes: self.rx_bytes.saturating_add(o.rx_bytes),
            rx_packets: self.rx_packets.saturating_add(o.rx_packets),
            tx_bytes: self.tx_bytes.saturating_add(o.tx_bytes),
            tx_packets: self.tx_packets.saturating_add(o.tx_packets),
            connects: self.connects.saturating_add(o.connects),
            execs: self.execs.saturating_add(o.execs),
            flagged_execs: self.flagged_execs.saturating_add(o.flagged_execs),
        }
    }
}

impl std::iter::Sum for Stats {
    fn sum<I: Iterator<Item = Stats>>(iter: I) -> Stats {
        iter.fold(Stats::default(), Stats::plus)
    }
}

/// `struct port_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub cgroup: u64,
    pub port: u16,
    pub proto: u8,
}

impl PortKey {
    pub fn from_bytes(b: &[u8]) -> PortKey {
        PortKey {
            cgroup: u64_at(b, 0),
            port: u16_at(b, 8),
            proto: b.get(10).copied().unwrap_or(0),
        }
    }

    pub fn to_bytes(self) -> [u8; PORT_KEY_SIZE] {
        let mut out = [0u8; PORT_KEY_SIZE];
        out[..8].copy_from_slice(&self.cgroup.to_ne_bytes());
        out[8..10].copy_from_slice(&self.port.to_ne_bytes());
        out[10] = self.proto;
        out
    }
}

/// `struct bin_key`.
pub fn bin_key(cgroup: u64, dev: u64, ino: u64) -> [u8; BIN_KEY_SIZE] {
    let mut out = [0u8; BIN_KEY_SIZE];
    out[..8].copy_from_slice(&cgroup.to_ne_bytes());
    out[8..16].copy_from_slice(&dev.to_ne_bytes());
    out[16..].copy_from_slice(&ino.to_ne_bytes());
    out
}

/// The name of an IP protocol number as the interfaces spell it.
pub fn proto_name(proto: u8) -> &'static str {
    match proto {
        UDP => "udp",
        _ => "tcp",
    }
}

/// `struct event`: one ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: u32,
    pub cpu: u32,
    pub seq: u64,
    pub cgroup: u64,
    pub time_ns: u64,
    pub pid: u32,
    pub port: u16,
    pub proto: u8,
    pub flags: u8,
    pub dev: u64,
    pub ino: u64,
    pub comm: String,
    pub path: String,
}

impl Event {
    /// Parses one record; None when it is shorter than the layout or of an unknown kind (counted by the caller).
    pub fn parse(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let kind = u32_at(b, 0);
        if kind as usize >= EV_KINDS {
            return None;
        }
        Some(Event {
            kind,
            cpu: u32_at(b, 4),
            seq: u64_at(b, 8),
            cgroup: u64_at(b, 16),
            time_ns: u64_at(b, 24),
            pid: u32_at(b, 32),
            port: u16_at(b, 36),
            proto: b[38],
            flags: b[39],
            dev: u64_at(b, 40),
            ino: u64_at(b, 48),
            comm: c_string(&b[HEADER_SIZE..HEADER_SIZE + COMM_LEN]),
            path: c_string(&b[HEADER_SIZE + COMM_LEN..EVENT_SIZE]),
        })
    }

    /// Why an exec is flagged, in words (empty: not flagged).
    pub fn exec_reasons(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if self.flags & EXEC_TMPFS != 0 {
            why.push("on a tmpfs");
        }
        if self.flags & EXEC_WORLD_WRITABLE != 0 {
            why.push("from a world-writable directory");
        }
        if self.flags & EXEC_DELETED != 0 {
            why.push("of a deleted file");
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_bytes() -> Vec<u8> {
        let mut b = vec![0u8; EVENT_SIZE];
        b[0..4].copy_from_slice(&EV_EXEC.to_ne_bytes());
        b[4..8].copy_from_slice(&1u32.to_ne_bytes());
        b[8..16].copy_from_slice(&42u64.to_ne_bytes());
        b[16..24].copy_from_slice(&7u64.to_ne_bytes());
        b[32..36].copy_from_slice(&1234u32.to_ne_bytes());
        b[36..38].copy_from_slice(&3333u16.to_ne_bytes());
        b[38] = TCP;
        b[39] = EXEC_TMPFS | EXEC_DELETED;
        b[56..60].copy_from_slice(b"miner"[..4].as_ref());
        let path = b"/tmp/xmrig";
        b[72..72 + path.len()].copy_from_slice(path);
        b
    }

    #[test]
    fn events_parse_field_by_field() {
        let e = Event::parse(&event_bytes()).unwrap();
        assert_eq!((e.kind, e.cpu, e.seq, e.cgroup), (EV_EXEC, 1, 42, 7));
        assert_eq!((e.pid, e.port, e.proto), (1234, 3333, TCP));
        assert_eq!(e.comm, "mine");
        assert_eq!(e.path, "/tmp/xmrig");
        assert_eq!(e.exec_reasons(), vec!["on a tmpfs", "of a deleted file"]);
    }

    #[test]
    fn short_or_unknown_records_are_refused() {
        let b = event_bytes();
        assert!(Event::parse(&b[..EVENT_SIZE - 1]).is_none());
        let mut unknown = b.clone();
        unknown[0..4].copy_from_slice(&9u32.to_ne_bytes());
        assert!(Event::parse(&unknown).is_none());
        // A path with no NUL fills the field and stops there.
        let mut long = b;
        for c in &mut long[72..] {
            *c = b'a';
        }
        assert_eq!(Event::parse(&long).unwrap().path.len(), PATH_LEN);
    }

    #[test]
    fn a_tenant_cannot_send_escape_sequences_to_a_terminal() {
        let mut b = event_bytes();
        let path = b"/tmp/\x1b[2Jx\nevil\\\xff";
        b[72..72 + path.len()].copy_from_slice(path);
        b[72 + path.len()] = 0;
        let e = Event::parse(&b).unwrap();
        assert_eq!(e.path, "/tmp/\\x1b[2Jx\\x0aevil\\x5c\\xff");
        assert!(!e.path.chars().any(char::is_control));
    }

    #[test]
    fn keys_round_trip() {
        let k = PortKey {
            cgroup: 99,
            port: 9200,
            proto: UDP,
        };
        assert_eq!(PortKey::from_bytes(&k.to_bytes()), k);
        let stats = Stats {
            rx_bytes: 1,
            tx_packets: 2,
            flagged_execs: 3,
            ..Stats::default()
        };
        assert_eq!(
            vec![stats, stats].into_iter().sum::<Stats>().flagged_execs,
            6
        );
    }
}
