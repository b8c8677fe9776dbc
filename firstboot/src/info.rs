//! What the console shows about this machine: version, root slot, addresses, the panel's URL and certificate
//! fingerprint, SSH host key fingerprints, and the services' health. Each piece degrades to a clear "unknown"
//! rather than hiding the rest.

use std::net::IpAddr;
use std::path::Path;

use rampart_common::units::UnitState;
use rampart_interfaces::ssh::{HostKey, SshProxy};

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub version: String,
    pub slot: String,
    pub addresses: Vec<IpAddr>,
    pub tls_fingerprint: String,
    pub host_keys: Vec<HostKey>,
    pub health: Vec<UnitState>,
}

/// Where `rampart-webd make-cert` publishes the certificate's fingerprint (the key stays in its own directory).
pub const FINGERPRINT_FILE: &str = "/run/rampart-webd-cert/fingerprint";

/// The root slot: the GPT name (`root-a`, `root-b`) of the partition mounted at `/`, found through the mount's
/// device number (/proc/self/mountinfo → /sys/dev/block/MAJ:MIN/uevent), so no device node is needed.
pub fn slot() -> String {
    if Path::new("/run/host/container-manager").exists()
        || Path::new("/run/systemd/container").exists()
    {
        return "container".to_owned();
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dev = mountinfo.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(4) == Some(&"/"))
            .then(|| f.get(2).map(|d| (*d).to_owned()))
            .flatten()
    });
    let name = dev
        .and_then(|d| std::fs::read_to_string(format!("/sys/dev/block/{d}/uevent")).ok())
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("PARTNAME=").map(str::to_owned))
        });
    name.unwrap_or_else(|| "unknown slot".to_owned())
}

/// The panel certificate's SHA-256 fingerprint, as rampart-webd-cert.service published it.
pub fn tls_fingerprint() -> String {
    match std::fs::read_to_string(FINGERPRINT_FILE) {
        Ok(f) if !f.trim().is_empty() => f.trim().to_owned(),
        _ => format!("unknown (no {FINGERPRINT_FILE}: is rampart-webd-cert.service done?)"),
    }
}

pub async fn gather(conn: &zbus::Connection) -> Machine {
    let host_keys = match SshProxy::new(conn).await {
        Ok(p) => p.host_keys().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let health = rampart_common::units::list(conn, rampart_common::units::WATCHED)
        .await
        .unwrap_or_default();
    Machine {
        version: rampart_common::os_release::image_version(env!("CARGO_PKG_VERSION")),
        slot: slot(),
        addresses: rampart_common::net::global_addresses(),
        tls_fingerprint: tls_fingerprint(),
        host_keys,
        health,
    }
}

impl Machine {
    /// The lines every screen starts with.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let addrs: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        s.push_str(&format!(
            "  Version:         Rampart {} ({})\n",
            self.version, self.slot
        ));
        s.push_str(&format!(
            "  Addresses:       {}\n",
            if addrs.is_empty() {
                "none yet (no network?)".to_owned()
            } else {
                addrs.join(", ")
            }
        ));
        if let Some(ip) = self.addresses.first() {
            s.push_str(&format!(
                "  Panel:           {}\n",
                rampart_common::net::https_url(ip)
            ));
        }
        s.push_str(&format!(
            "  TLS certificate: SHA256 {}\n",
            self.tls_fingerprint
        ));
        for k in &self.host_keys {
            s.push_str(&format!(
                "  SSH host key:    {} {}\n",
                k.algorithm, k.fingerprint
            ));
        }
        s
    }

    pub fn health_lines(&self) -> String {
        let mut s = String::new();
        let bad: Vec<&UnitState> = self
            .health
            .iter()
            .filter(|u| u.active != "active")
            .collect();
        if self.health.is_empty() {
            s.push_str("  Health:          unknown (systemd did not answer)\n");
        } else if bad.is_empty() {
            s.push_str(&format!(
                "  Health:          all {} services active\n",
                self.health.len()
            ));
        } else {
            for u in bad {
                s.push_str(&format!(
                    "  Health:          {} is {} ({})\n",
                    u.unit, u.active, u.sub
                ));
            }
        }
        s
    }
}
