//! What the boot that just happened means for the update in flight. A pure function of the journal's phase, the
//! running slot, this boot's id and the ESP's entries, so every case is a unit test; the engine then acts on
//! the decision (journal, never-retry set, entry removal).
//!
//! Blessing itself is not ours: `systemd-bless-boot.service` drops the counter after `boot-complete.target`
//! (every Rampart daemon ready, the local API answering). We only observe it: a counter-less entry of the new
//! version while running from its slot means blessed, and the anti-rollback floor rises to it.

use semver::Version;

use crate::boot::EntryName;
use crate::slot::Slot;
use crate::state::Phase;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    /// No update waits for a boot.
    Nothing,
    /// This is still the boot that wrote the entry (e.g. the daemon restarted): waiting for the reboot.
    AwaitingReboot { version: Version },
    /// Running the new version, not yet blessed.
    PendingBless { version: Version },
    /// Running the new version and systemd-bless-boot removed its counter.
    Blessed { version: Version },
    /// Back on the old slot: the new version failed. It goes into the never-retry set; its entry is removed.
    Failed { version: Version, reason: String },
}

/// For the journal: what the boot meant, in words.
impl std::fmt::Display for BootDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootDecision::Nothing => write!(f, "no update waits for this boot"),
            BootDecision::AwaitingReboot { version } => {
                write!(f, "{version} is installed and starts at the next boot")
            }
            BootDecision::PendingBless { version } => write!(
                f,
                "running {version} on trial: it is blessed once boot-complete.target is reached"
            ),
            BootDecision::Blessed { version } => write!(
                f,
                "{version} is blessed; nothing below it is installed again"
            ),
            BootDecision::Failed { version, reason } => write!(
                f,
                "{version} failed and is never retried automatically: {reason}"
            ),
        }
    }
}

pub fn decide(phase: &Phase, booted: Slot, boot_id: &str, entries: &[EntryName]) -> BootDecision {
    let entry_of = |v: &Version| entries.iter().find(|e| &e.version == v);
    match phase {
        Phase::EntryWritten {
            plan,
            boot_id: written_in,
            ..
        } => {
            let version = plan.version.clone();
            if written_in == boot_id {
                BootDecision::AwaitingReboot { version }
            } else if booted == plan.slot {
                match entry_of(&version) {
                    Some(e) if e.blessed() => BootDecision::Blessed { version },
                    _ => BootDecision::PendingBless { version },
                }
            } else {
                let reason = match entry_of(&version) {
                    Some(e) if e.exhausted() => format!(
                        "every boot attempt ({}) ended before boot-complete.target; systemd-boot fell back to {}",
                        e.counter.map_or(0, |c| c.done),
                        booted
                    ),
                    Some(e) => format!(
                        "the machine came back on {booted} although {} still had tries left (chosen by hand, or the \
                         firmware booted something else)",
                        e.file
                    ),
                    None => format!("its boot entry disappeared; the machine booted {booted}"),
                };
                BootDecision::Failed { version, reason }
            }
        }
        Phase::PendingBless { version, slot } => {
            let version = version.clone();
            if booted != *slot {
                BootDecision::Failed {
                    reason: format!(
                        "it ran from {slot} but was never blessed; the machine fell back to {booted}"
                    ),
                    version,
                }
            } else if entry_of(&version).is_some_and(EntryName::blessed) {
                BootDecision::Blessed { version }
            } else {
                BootDecision::PendingBless { version }
            }
        }
        _ => BootDecision::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::plan;

    fn entries(names: &[&str]) -> Vec<EntryName> {
        names.iter().filter_map(|n| EntryName::parse(n)).collect()
    }

    fn written() -> Phase {
        Phase::EntryWritten {
            plan: plan("1.1.0"),
            entry: "rampart-1.1.0+3.conf".into(),
            boot_id: "boot-1".into(),
        }
    }

    const V: Version = Version::new(1, 1, 0);

    #[test]
    fn same_boot_waits_for_the_reboot() {
        let d = decide(
            &written(),
            Slot::A,
            "boot-1",
            &entries(&["rampart-1.1.0+3.conf"]),
        );
        assert_eq!(d, BootDecision::AwaitingReboot { version: V });
    }

    #[test]
    fn booted_the_new_slot_is_pending_bless() {
        let d = decide(
            &written(),
            Slot::B,
            "boot-2",
            &entries(&["rampart-0.1.0.conf", "rampart-1.1.0+2-1.conf"]),
        );
        assert_eq!(d, BootDecision::PendingBless { version: V });
        let pending = Phase::PendingBless {
            version: V,
            slot: Slot::B,
        };
        let d = decide(
            &pending,
            Slot::B,
            "boot-2",
            &entries(&["rampart-1.1.0+2-1.conf"]),
        );
        assert_eq!(d, BootDecision::PendingBless { version: V });
    }

    #[test]
    fn blessed_entry_on_the_new_slot_is_blessed() {
        let pending = Phase::PendingBless {
            version: V,
            slot: Slot::B,
        };
        let d = decide(
            &pending,
            Slot::B,
            "boot-2",
            &entries(&["rampart-0.1.0.conf", "rampart-1.1.0.conf"]),
        );
        assert_eq!(d, BootDecision::Blessed { version: V });
    }

    #[test]
    fn exhausted_counter_on_the_old_slot_is_a_failure() {
        let d = decide(
            &written(),
            Slot::A,
            "boot-5",
            &entries(&["rampart-0.1.0.conf", "rampart-1.1.0+0-3.conf"]),
        );
        match d {
            BootDecision::Failed { version, reason } => {
                assert_eq!(version, V);
                assert!(reason.contains("every boot attempt (3)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_slot_with_tries_left_or_no_entry_is_a_failure_too() {
        for names in [&["rampart-1.1.0+3.conf"][..], &[][..]] {
            let d = decide(&written(), Slot::A, "boot-2", &entries(names));
            assert!(matches!(d, BootDecision::Failed { .. }), "{names:?}: {d:?}");
        }
    }

    #[test]
    fn pending_bless_back_on_the_old_slot_failed() {
        let pending = Phase::PendingBless {
            version: V,
            slot: Slot::B,
        };
        let d = decide(
            &pending,
            Slot::A,
            "boot-3",
            &entries(&["rampart-1.1.0+0-3.conf"]),
        );
        assert!(matches!(d, BootDecision::Failed { .. }));
    }

    #[test]
    fn other_phases_have_nothing_to_do() {
        for phase in [
            Phase::Idle,
            Phase::MetadataVerified {
                plan: plan("1.1.0"),
            },
            Phase::Blessed { version: V },
        ] {
            assert_eq!(decide(&phase, Slot::A, "b", &[]), BootDecision::Nothing);
        }
    }
}
