//! Commit-confirm for lockout-prone changes (DESIGN.md rule 4), as an explicit state machine.
//!
//! ```text
//!   Idle --begin--> Waiting --confirm(id)--> Idle        (change kept)
//!                      |------deadline-----> Idle        (change reverted, audited as firewall.revert)
//! ```
//!
//! One change waits at a time: a second lockout-prone change while one is waiting is refused, so a revert always
//! restores exactly the state before the change. The state lives in the database (`pending`), so a restart keeps
//! waiting for the same deadline, and `--restore` at boot reverts it (the machine rebooted inside the window:
//! nobody confirmed).

use ipnet::IpNet;

use crate::store::{PendingRow, Ssh};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitConfirm {
    Idle,
    Waiting(PendingRow),
}

/// What the caller must do after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing to do yet.
    None,
    /// Restore this SSH access and forget the pending change.
    Revert(PendingRow),
}

impl CommitConfirm {
    pub fn from_row(row: Option<PendingRow>) -> CommitConfirm {
        row.map_or(CommitConfirm::Idle, CommitConfirm::Waiting)
    }

    /// Idle → Waiting. Refused while another change waits.
    pub fn begin(&self, row: PendingRow) -> Result<CommitConfirm, String> {
        match self {
            CommitConfirm::Idle => Ok(CommitConfirm::Waiting(row)),
            CommitConfirm::Waiting(p) => Err(format!(
                "change {} ({}) is waiting for confirmation until {}; confirm it or let it revert first",
                p.change_id,
                p.description,
                humantime::format_rfc3339_seconds(unix(p.confirm_by))
            )),
        }
    }

    /// Waiting(id) → Idle, keeping the change.
    pub fn confirm(&self, change_id: u64) -> Result<CommitConfirm, String> {
        match self {
            CommitConfirm::Waiting(p) if p.change_id == change_id => Ok(CommitConfirm::Idle),
            CommitConfirm::Waiting(p) => Err(format!(
                "change {change_id} is not waiting for confirmation (change {} is)",
                p.change_id
            )),
            CommitConfirm::Idle => Err(format!(
                "change {change_id} is not waiting for confirmation (nothing is; it may have been reverted)"
            )),
        }
    }

    /// Waiting → Idle when the deadline has passed (or `force`, at boot): the change must be reverted.
    pub fn tick(&self, now: u64, force: bool) -> (CommitConfirm, Effect) {
        match self {
            CommitConfirm::Waiting(p) if force || now >= p.confirm_by => {
                (CommitConfirm::Idle, Effect::Revert(p.clone()))
            }
            other => (other.clone(), Effect::None),
        }
    }

    pub fn deadline(&self) -> Option<u64> {
        match self {
            CommitConfirm::Idle => None,
            CommitConfirm::Waiting(p) => Some(p.confirm_by),
        }
    }

    /// The `STATUS=` line fragment.
    pub fn describe(&self) -> String {
        match self {
            CommitConfirm::Idle => "no change waiting".to_owned(),
            CommitConfirm::Waiting(p) => format!(
                "change {} waiting for confirmation until {}",
                p.change_id,
                humantime::format_rfc3339_seconds(unix(p.confirm_by))
            ),
        }
    }
}

fn unix(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// True when going from `old` to `new` can cut someone off: a port is removed, or some source that could reach
/// SSH before cannot now.
pub fn lockout_prone(old: &Ssh, new: &Ssh) -> bool {
    if old.ports.iter().any(|p| !new.ports.contains(p)) {
        return true;
    }
    if new.sources.is_empty() {
        return false;
    }
    if old.sources.is_empty() {
        return true;
    }
    old.sources
        .iter()
        .any(|o| !new.sources.iter().any(|n: &IpNet| n.contains(o)))
}

/// `SSH ports 22 → 2222; sources anywhere → 10.0.0.0/8`.
pub fn describe_ssh_change(old: &Ssh, new: &Ssh) -> String {
    let ports = |s: &Ssh| {
        s.ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let sources = |s: &Ssh| {
        if s.sources.is_empty() {
            "anywhere".to_owned()
        } else {
            s.sources
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let mut parts = Vec::new();
    if old.ports != new.ports {
        parts.push(format!("SSH ports {} → {}", ports(old), ports(new)));
    }
    if old.sources != new.sources {
        parts.push(format!("SSH sources {} → {}", sources(old), sources(new)));
    }
    if parts.is_empty() {
        parts.push(format!(
            "SSH ports {} from {} (unchanged)",
            ports(new),
            sources(new)
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(ports: &[u16], sources: &[&str]) -> Ssh {
        Ssh {
            ports: ports.to_vec(),
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn row(id: u64, by: u64) -> PendingRow {
        PendingRow {
            change_id: id,
            description: "d".into(),
            requested_by: "root@console".into(),
            confirm_by: by,
            revert_to: ssh(&[22], &[]),
        }
    }

    #[test]
    fn lockout_prone_cases() {
        assert!(!lockout_prone(&ssh(&[22], &[]), &ssh(&[22, 2222], &[])));
        assert!(lockout_prone(&ssh(&[22, 2222], &[]), &ssh(&[2222], &[])));
        assert!(lockout_prone(
            &ssh(&[22], &[]),
            &ssh(&[22], &["10.0.0.0/8"])
        ));
        assert!(!lockout_prone(
            &ssh(&[22], &["10.1.0.0/16"]),
            &ssh(&[22], &["10.0.0.0/8"])
        ));
        assert!(lockout_prone(
            &ssh(&[22], &["10.0.0.0/8"]),
            &ssh(&[22], &["10.1.0.0/16"])
        ));
        assert!(!lockout_prone(
            &ssh(&[22], &["10.0.0.0/8"]),
            &ssh(&[22], &[])
        ));
    }

    #[test]
    fn transitions() {
        let idle = CommitConfirm::Idle;
        let waiting = idle.begin(row(3, 100)).unwrap();
        assert!(waiting.begin(row(4, 100)).unwrap_err().contains("change 3"));
        assert!(waiting.confirm(4).is_err());
        assert_eq!(waiting.confirm(3).unwrap(), CommitConfirm::Idle);
        assert_eq!(waiting.tick(99, false).1, Effect::None);
        assert_eq!(
            waiting.tick(100, false),
            (CommitConfirm::Idle, Effect::Revert(row(3, 100)))
        );
        assert!(matches!(waiting.tick(0, true).1, Effect::Revert(_)));
        assert!(idle.confirm(3).is_err());
    }
}
