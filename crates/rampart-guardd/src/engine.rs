//! The decision core, free of I/O: journal entries in, ban orders out. Everything the daemon decides is decided
//! here, so it is unit-tested without a journal or a bus.

use std::net::IpAddr;

use rampart_common::journal::Entry;

use crate::parse::{self, Event, FailureKind, Service};
use crate::policy::{AdminSessions, Allowlist};
use crate::settings::Settings;
use crate::window::Windows;

/// A ban to ask the firewall for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanOrder {
    pub source: IpAddr,
    pub seconds: u64,
    pub offence: u32,
    pub service: Service,
    /// The failure that crossed the threshold.
    pub kind: FailureKind,
    pub failures: u32,
    pub user: Option<String>,
}

impl BanOrder {
    /// The reason passed to the firewall (and so to the audit log).
    pub fn reason(&self) -> String {
        format!(
            "rampart-guardd: {} {} failures ({}), offence {}",
            self.failures,
            self.service.as_str(),
            self.kind.as_str(),
            self.offence
        )
    }
}

/// Counters for the status line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub entries: u64,
    pub failures: u64,
    pub bans: u64,
    pub spared_allowlisted: u64,
    pub spared_admin: u64,
}

#[derive(Debug)]
pub struct Engine {
    windows: Windows,
    pub allowlist: Allowlist,
    sessions: AdminSessions,
    pub counters: Counters,
}

impl Engine {
    pub fn new(settings: &Settings) -> Engine {
        Engine {
            windows: Windows::new(
                settings.ssh,
                settings.panel,
                settings.bans,
                settings.max_sources,
            ),
            allowlist: Allowlist::new(settings.allowlist.clone()),
            sessions: AdminSessions::new(
                settings.admin_session_max_secs,
                settings.max_sources.min(65_536),
            ),
            counters: Counters::default(),
        }
    }

    pub fn handle(&mut self, entry: &Entry) -> Option<BanOrder> {
        self.counters.entries += 1;
        let now = entry.realtime_us;
        match parse::parse(entry)? {
            Event::SessionOpened { source, keys, .. } => {
                self.sessions.open(source, keys, now);
                None
            }
            Event::SessionClosed { key, .. } => {
                self.sessions.close(&key);
                None
            }
            Event::Failure {
                service,
                kind,
                source,
                user,
            } => {
                self.counters.failures += 1;
                if self.allowlist.contains(source) {
                    self.counters.spared_allowlisted += 1;
                    return None;
                }
                if self.sessions.is_admin(source, now) {
                    self.counters.spared_admin += 1;
                    return None;
                }
                let decision = self.windows.failure(service, source, now, kind.weight())?;
                self.counters.bans += 1;
                Some(BanOrder {
                    source,
                    seconds: decision.seconds,
                    offence: decision.offence,
                    service,
                    kind,
                    failures: decision.failures,
                    user,
                })
            }
        }
    }

    pub fn open_sessions(&self) -> usize {
        self.sessions.open_count()
    }

    pub fn tracked(&self) -> usize {
        self.windows.tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::GuardFragment;

    fn engine(allow: &[&str]) -> Engine {
        let f = GuardFragment {
            ssh_max_failures: Some(3),
            allowlist: Some(allow.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        Engine::new(&Settings::try_from(f).unwrap())
    }

    fn sshd(t: u64, pid: u32, msg: &str) -> Entry {
        Entry {
            cursor: format!("c{t}"),
            realtime_us: t * 1_000_000,
            fields: [
                ("SYSLOG_IDENTIFIER", "sshd"),
                ("_UID", "0"),
                ("MESSAGE", msg),
                ("SYSLOG_PID", &pid.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }

    fn fail(t: u64, addr: &str) -> Entry {
        sshd(
            t,
            1000 + t as u32,
            &format!("Failed password for root from {addr} port {t} ssh2"),
        )
    }

    #[test]
    fn bans_once_at_the_threshold() {
        let mut e = engine(&[]);
        assert_eq!(e.handle(&fail(1, "203.0.113.9")), None);
        assert_eq!(e.handle(&fail(2, "203.0.113.9")), None);
        let order = e.handle(&fail(3, "203.0.113.9")).unwrap();
        assert_eq!(order.source, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!((order.seconds, order.offence, order.failures), (600, 1, 3));
        assert!(order.reason().contains("3 ssh failures"));
        assert_eq!(e.handle(&fail(4, "203.0.113.9")), None);
    }

    #[test]
    fn allowlisted_sources_are_never_banned() {
        let mut e = engine(&["198.51.100.0/24"]);
        for t in 0..50 {
            assert_eq!(e.handle(&fail(t, "198.51.100.7")), None);
        }
        assert_eq!(e.counters.spared_allowlisted, 50);
        e.allowlist.set_firewall(["203.0.113.0/24".to_owned()]);
        for t in 50..60 {
            assert_eq!(e.handle(&fail(t, "203.0.113.1")), None);
        }
    }

    #[test]
    fn open_admin_session_source_is_spared_until_it_closes() {
        let mut e = engine(&[]);
        let admin = "192.0.2.10";
        e.handle(&sshd(
            1,
            500,
            "Accepted publickey for admin from 192.0.2.10 port 40000 ssh2: ED25519 SHA256:x",
        ));
        for t in 2..20 {
            assert_eq!(
                e.handle(&fail(t, admin)),
                None,
                "mistyped password in a second terminal"
            );
        }
        assert_eq!(e.counters.spared_admin, 18);
        e.handle(&sshd(
            20,
            501,
            "Disconnected from user admin 192.0.2.10 port 40000",
        ));
        e.handle(&fail(21, admin));
        e.handle(&fail(22, admin));
        assert!(
            e.handle(&fail(23, admin)).is_some(),
            "after the session closed, the usual rules"
        );
    }

    #[test]
    fn pam_session_close_by_pid_ends_the_exemption() {
        let mut e = engine(&[]);
        e.handle(&sshd(
            1,
            600,
            "Accepted publickey for admin from 192.0.2.11 port 40001 ssh2: ED25519 SHA256:x",
        ));
        e.handle(&sshd(
            2,
            600,
            "pam_unix(sshd:session): session closed for user admin",
        ));
        e.handle(&fail(3, "192.0.2.11"));
        e.handle(&fail(4, "192.0.2.11"));
        assert!(e.handle(&fail(5, "192.0.2.11")).is_some());
    }

    #[test]
    fn password_session_is_not_an_admin_session() {
        let mut e = engine(&[]);
        e.handle(&sshd(
            1,
            700,
            "Accepted password for tenant from 192.0.2.12 port 40002 ssh2",
        ));
        e.handle(&fail(2, "192.0.2.12"));
        e.handle(&fail(3, "192.0.2.12"));
        assert!(e.handle(&fail(4, "192.0.2.12")).is_some());
    }
}
