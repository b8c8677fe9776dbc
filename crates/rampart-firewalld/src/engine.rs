//! The firewall: the database and the kernel table kept in step. Synchronous on purpose (SQLite and nft are
//! blocking); the bus service and the timer loop call it from blocking threads, one call at a time.
//!
//! Every change runs as: SQLite transaction → build the whole table from the transaction's view → apply it with
//! nft (one kernel transaction) → commit. If nft refuses, the SQLite transaction rolls back and nothing changed;
//! if the commit fails after nft applied, the table is rebuilt from the database as it was.

use std::net::IpAddr;

use ipnet::IpNet;
use rampart_common::exec::Program;
use rampart_interfaces::firewall::{Change, PendingChange, RuleSpec, Status};
use rusqlite::Transaction;
use serde_json::{json, Value};

use crate::commit_confirm::{self, CommitConfirm, Effect};
use crate::nft::{self, Nft};
use crate::ruleset::{self, Found};
use crate::settings::Settings;
use crate::spec::{self, Ports, Protocol};
use crate::store::{self, AllowEntry, OutboxRecord, PendingRow, Ssh, Store, StoredRule};
use crate::Error;

/// Longest ban accepted, in seconds (a year); guardd's bans are minutes to days.
pub const MAX_BAN: u64 = 365 * 86_400;

const LAST_RECONCILED: &str = "last_reconciled";

#[derive(Debug)]
pub struct Engine {
    store: Store,
    nft: Nft,
    settings: Settings,
    cc: CommitConfirm,
    /// The table as we last left it (see [`ruleset::fingerprint`]).
    fingerprint: String,
}

impl Engine {
    pub fn open(settings: Settings) -> Result<Engine, Error> {
        let store = Store::open(&settings.database, &settings.ssh_ports)?;
        let cc = CommitConfirm::from_row(store::pending(&store.conn)?);
        Ok(Engine {
            nft: Nft::new(Program::new(settings.nft)?),
            store,
            settings,
            cc,
            fingerprint: String::new(),
        })
    }

    /// Brings the kernel in line with the database: overdue rules expire, an overdue pending change reverts
    /// (any pending change when `boot`: the machine restarted inside the window), then the whole table is applied.
    pub fn start(&mut self, now: u64, boot: bool) -> Result<(), Error> {
        self.expire_due(now)?;
        self.revert_due(now, boot)?;
        self.transact(Vec::new(), |_| Ok(()))
    }

    /// The one way state changes: see the module docs. `extra` nft commands join the same kernel transaction.
    fn transact<T>(
        &mut self,
        extra: Vec<Value>,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let tx = self.store.conn.transaction().map_err(|source| Error::Db {
            step: "begin a transaction",
            source,
        })?;
        let out = f(&tx)?;
        let desired = store::desired(&tx)?;
        let found = Found::from_listing(self.nft.list_table()?.as_ref());
        let mut doc = ruleset::document(&desired, &found);
        if let Some(cmds) = doc.get_mut("nftables").and_then(Value::as_array_mut) {
            cmds.extend(extra);
        }
        self.nft.apply(&doc)?;
        if let Err(source) = tx.commit() {
            log::error!(
                "database commit failed after nft applied; restoring the table from the database"
            );
            if let Err(e) = self.reapply() {
                log::error!(
                    "could not restore the table: {}",
                    rampart_common::error::chain(&e)
                );
            }
            return Err(Error::Db {
                step: "commit the change",
                source,
            });
        }
        self.fingerprint = ruleset::fingerprint(self.nft.list_table()?.as_ref());
        Ok(out)
    }

    fn reapply(&mut self) -> Result<(), Error> {
        let desired = store::desired(&self.store.conn)?;
        let found = Found::from_listing(self.nft.list_table()?.as_ref());
        self.nft.apply(&ruleset::document(&desired, &found))?;
        self.fingerprint = ruleset::fingerprint(self.nft.list_table()?.as_ref());
        Ok(())
    }

    // ---- rules ----

    pub fn list(&self) -> Result<Vec<StoredRule>, Error> {
        store::rules(&self.store.conn)
    }

    pub fn unreviewed(&self, now: u64) -> Result<Vec<StoredRule>, Error> {
        let period = self.settings.review_period.as_secs();
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| r.reviewed_at.saturating_add(period) <= now)
            .collect())
    }

    /// Checks an opening request and turns it into the rule that would be stored.
    pub fn validate_open(&self, spec: &RuleSpec, by: &str, now: u64) -> Result<StoredRule, Error> {
        let protocol = Protocol::parse(&spec.protocol).map_err(Error::Invalid)?;
        let ports = Ports::parse(&spec.ports).map_err(Error::Invalid)?;
        let sources = spec::cidrs(&spec.sources).map_err(Error::Invalid)?;
        let comment = spec::text("comment", &spec.comment, true).map_err(Error::Invalid)?;
        let reason = spec::text("permanent reason", &spec.permanent_reason, false)
            .map_err(Error::Invalid)?;
        let expires_at = if reason.is_empty() {
            let max = self.settings.max_expiry.as_secs();
            let secs = if spec.expires_in == 0 {
                self.settings.default_expiry.as_secs()
            } else {
                spec.expires_in
            };
            if secs > max {
                return Err(Error::Invalid(format!(
                    "an expiry of {} is above the maximum of {}; ask for less, or make the rule permanent with a reason",
                    humantime::format_duration(std::time::Duration::from_secs(secs)),
                    humantime::format_duration(self.settings.max_expiry)
                )));
            }
            now.saturating_add(secs)
        } else {
            if spec.expires_in != 0 {
                return Err(Error::Invalid(
                    "give either an expiry or a permanent reason, not both".into(),
                ));
            }
            0
        };
        Ok(StoredRule {
            id: 0,
            protocol,
            ports,
            sources,
            comment,
            added_by: by.to_owned(),
            added_at: now,
            reviewed_at: now,
            expires_at,
            permanent_reason: reason,
        })
    }

    pub fn open_rule(&mut self, rule: StoredRule, now: u64) -> Result<Change, Error> {
        let target = format!("{}/{}", rule.protocol.as_str(), rule.ports);
        let by = rule.added_by.clone();
        self.transact(Vec::new(), |tx| {
            let rule_id = store::insert_rule(tx, &rule)?;
            let change_id = store::new_change(tx, "open", &target, &by, now)?;
            Ok(Change {
                change_id,
                rule_id,
                confirm_by: 0,
            })
        })
    }

    pub fn close_rule(&mut self, rule_id: u64, by: &str, now: u64) -> Result<Change, Error> {
        self.transact(Vec::new(), |tx| {
            if !store::delete_rule(tx, rule_id)? {
                return Err(Error::Invalid(format!(
                    "there is no rule {rule_id}; `rampartctl firewall list` shows the rules"
                )));
            }
            let change_id = store::new_change(tx, "close", &format!("rule {rule_id}"), by, now)?;
            Ok(Change {
                change_id,
                rule_id,
                confirm_by: 0,
            })
        })
    }

    pub fn review(&mut self, rule_id: u64, now: u64) -> Result<(), Error> {
        if store::review_rule(&self.store.conn, rule_id, now)? {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "there is no rule {rule_id}; `rampartctl firewall list` shows the rules"
            )))
        }
    }

    /// Removes every rule whose expiry has come, queueing a `firewall.expire` record for each.
    pub fn expire_due(&mut self, now: u64) -> Result<Vec<StoredRule>, Error> {
        let due: Vec<StoredRule> = self
            .list()?
            .into_iter()
            .filter(|r| r.expires_at != 0 && r.expires_at <= now)
            .collect();
        if due.is_empty() {
            return Ok(due);
        }
        self.transact(Vec::new(), |tx| {
            for r in &due {
                store::delete_rule(tx, r.id)?;
                let details = json!({
                    "rule_id": r.id, "protocol": r.protocol.as_str(), "ports": r.ports.to_string(),
                    "sources": r.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "comment": r.comment, "added_by": r.added_by, "expires_at": r.expires_at,
                });
                store::push_outbox(tx, "firewall.expire", &r.target(), &details)?;
            }
            Ok(())
        })?;
        Ok(due)
    }

    // ---- SSH access and commit-confirm ----

    pub fn ssh(&self) -> Result<Ssh, Error> {
        store::ssh(&self.store.conn)
    }

    pub fn validate_ssh(access: &rampart_interfaces::firewall::SshAccess) -> Result<Ssh, Error> {
        Ok(Ssh {
            ports: spec::ssh_ports(&access.ports).map_err(Error::Invalid)?,
            sources: spec::cidrs(&access.sources).map_err(Error::Invalid)?,
        })
    }

    pub fn set_ssh(&mut self, new: Ssh, by: &str, now: u64) -> Result<Change, Error> {
        let old = self.ssh()?;
        let description = commit_confirm::describe_ssh_change(&old, &new);
        let prone = commit_confirm::lockout_prone(&old, &new);
        // Even a harmless change waits while another is pending: the revert must restore exactly what was.
        if let CommitConfirm::Waiting(_) = self.cc {
            let probe = PendingRow {
                change_id: 0,
                description: String::new(),
                requested_by: String::new(),
                confirm_by: 0,
                revert_to: old.clone(),
            };
            self.cc.begin(probe).map_err(Error::Refused)?;
        }
        let confirm_by = if prone {
            now.saturating_add(self.settings.confirm_timeout.as_secs())
        } else {
            0
        };
        let (change, row) = self.transact(Vec::new(), |tx| {
            let change_id = store::new_change(tx, "ssh-access", &description, by, now)?;
            store::set_ssh(tx, &new)?;
            let row = prone.then(|| PendingRow {
                change_id,
                description: description.clone(),
                requested_by: by.to_owned(),
                confirm_by,
                revert_to: old.clone(),
            });
            if let Some(row) = &row {
                store::insert_pending(tx, row)?;
            }
            Ok((
                Change {
                    change_id,
                    rule_id: 0,
                    confirm_by,
                },
                row,
            ))
        })?;
        if let Some(row) = row {
            self.cc = self.cc.begin(row).map_err(Error::Refused)?;
        }
        Ok(change)
    }

    pub fn confirm(&mut self, change_id: u64) -> Result<(), Error> {
        let next = self.cc.confirm(change_id).map_err(Error::Invalid)?;
        let tx = self.store.conn.transaction().map_err(|source| Error::Db {
            step: "begin a transaction",
            source,
        })?;
        store::delete_pending(&tx, change_id)?;
        tx.commit().map_err(|source| Error::Db {
            step: "commit the confirmation",
            source,
        })?;
        self.cc = next;
        Ok(())
    }

    /// Reverts the pending change if its deadline has passed (or `force`), queueing `firewall.revert`.
    pub fn revert_due(&mut self, now: u64, force: bool) -> Result<Option<PendingRow>, Error> {
        let (next, effect) = self.cc.tick(now, force);
        let Effect::Revert(row) = effect else {
            return Ok(None);
        };
        self.transact(Vec::new(), |tx| {
            store::set_ssh(tx, &row.revert_to)?;
            store::delete_pending(tx, row.change_id)?;
            let details = json!({
                "change_id": row.change_id, "description": row.description, "requested_by": row.requested_by,
                "confirm_by": row.confirm_by, "restored": describe_ssh(&row.revert_to),
                "reason": if force { "restarted before confirmation" } else { "not confirmed in time" },
            });
            store::push_outbox(tx, "firewall.revert", &format!("change {}", row.change_id), &details)?;
            Ok(())
        })?;
        self.cc = next;
        Ok(Some(row))
    }

    pub fn pending(&self) -> Vec<PendingChange> {
        match &self.cc {
            CommitConfirm::Idle => Vec::new(),
            CommitConfirm::Waiting(p) => vec![PendingChange {
                change_id: p.change_id,
                description: p.description.clone(),
                requested_by: p.requested_by.clone(),
                confirm_by: p.confirm_by,
            }],
        }
    }

    // ---- bans and the allowlist ----

    pub fn bans(&self) -> Result<Vec<(IpAddr, u64)>, Error> {
        self.nft.bans()
    }

    fn allowlisted(&self, addr: &IpAddr) -> Result<Option<IpNet>, Error> {
        Ok(store::allowlist(&self.store.conn)?
            .into_iter()
            .map(|a| a.cidr)
            .find(|n| n.contains(addr)))
    }

    /// Bans `addr` for `seconds` (extending an existing ban to the later expiry). Ok(false): allowlisted.
    pub fn ban(&mut self, addr: IpAddr, seconds: u64) -> Result<bool, Error> {
        if seconds == 0 || seconds > MAX_BAN {
            return Err(Error::Invalid(format!(
                "a ban lasts 1 to {MAX_BAN} seconds; {seconds} is out of range"
            )));
        }
        if !bannable(&addr) {
            return Err(Error::Invalid(format!(
                "{addr} cannot be banned: loopback, unspecified, multicast and broadcast addresses are never \
                 sources of an attack worth a ban, and banning them would cut the machine off from itself"
            )));
        }
        if self.allowlisted(&addr)?.is_some() {
            return Ok(false);
        }
        let current = self
            .bans()?
            .into_iter()
            .find(|(a, _)| *a == addr)
            .map_or(0, |(_, left)| left);
        let doc = json!({ "nftables": nft::ban_commands(&addr, seconds.max(current)) });
        self.nft.apply(&doc)?;
        Ok(true)
    }

    pub fn unban(&mut self, addr: IpAddr) -> Result<(), Error> {
        self.nft
            .apply(&json!({ "nftables": nft::unban_commands(&addr) }))
    }

    pub fn allowlist(&self) -> Result<Vec<AllowEntry>, Error> {
        store::allowlist(&self.store.conn)
    }

    /// Adds `entry` and lifts current bans inside it, in one kernel transaction.
    pub fn allow(&mut self, entry: AllowEntry) -> Result<Vec<IpAddr>, Error> {
        let lifted: Vec<IpAddr> = self
            .bans()?
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| entry.cidr.contains(a))
            .collect();
        let extra = lifted.iter().flat_map(nft::unban_commands).collect();
        self.transact(extra, |tx| store::insert_allow(tx, &entry))?;
        Ok(lifted)
    }

    pub fn disallow(&mut self, cidr: IpNet) -> Result<(), Error> {
        self.transact(Vec::new(), |tx| {
            if store::delete_allow(tx, &cidr)? {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "{cidr} is not on the allowlist; `rampartctl firewall allowlist` shows it"
                )))
            }
        })
    }

    // ---- reconcile, timers, status ----

    /// Re-applies the table if it no longer matches what we applied; queues `firewall.reconcile`. True if it did.
    pub fn reconcile(&mut self, now: u64) -> Result<bool, Error> {
        let listing = self.nft.list_table()?;
        let seen = ruleset::fingerprint(listing.as_ref());
        if seen == self.fingerprint {
            return Ok(false);
        }
        let expected_lines = self.fingerprint.lines().count();
        let found_lines = seen.lines().count();
        let differing: Vec<String> = seen
            .lines()
            .filter(|l| !self.fingerprint.lines().any(|e| e == *l))
            .take(5)
            .map(|l| l.chars().take(300).collect())
            .collect();
        self.transact(Vec::new(), |tx| {
            let details = json!({
                "table_present": listing.is_some(),
                "expected_objects": expected_lines,
                "found_objects": found_lines,
                "unexpected": differing,
            });
            store::push_outbox(tx, "firewall.reconcile", "inet rampart", &details)?;
            store::set_meta(tx, LAST_RECONCILED, now)
        })?;
        Ok(true)
    }

    /// The next time something is due (a rule expiry or the confirm deadline), Unix seconds.
    pub fn next_deadline(&self) -> Result<Option<u64>, Error> {
        let rules = self
            .list()?
            .into_iter()
            .filter(|r| r.expires_at != 0)
            .map(|r| r.expires_at)
            .min();
        Ok([rules, self.cc.deadline()].into_iter().flatten().min())
    }

    pub fn outbox(&self) -> Result<Vec<OutboxRecord>, Error> {
        store::outbox(&self.store.conn)
    }

    pub fn outbox_done(&self, id: i64) -> Result<(), Error> {
        store::outbox_done(&self.store.conn, id)
    }

    pub fn status(&self) -> Result<Status, Error> {
        Ok(Status {
            ssh: self.ssh()?.to_wire(),
            rules: self.list()?.len() as u64,
            bans: self.bans()?.len() as u64,
            pending_changes: self.pending().len() as u64,
            last_reconciled: store::meta(&self.store.conn, LAST_RECONCILED)?,
        })
    }

    /// One line for `sd_notify STATUS=`.
    pub fn status_line(&self) -> String {
        let rules = self.list().map(|r| r.len()).unwrap_or(0);
        format!("{rules} rules; {}", self.cc.describe())
    }
}

fn describe_ssh(ssh: &Ssh) -> Value {
    json!({
        "ports": ssh.ports,
        "sources": ssh.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// Addresses a ban may name: not this machine's loopback, not "any", not a group address.
fn bannable(addr: &IpAddr) -> bool {
    let canonical = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(*v6), IpAddr::V4),
        v4 => *v4,
    };
    match canonical {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()),
    }
}

#[cfg(test)]
mod bannable_tests {
    use super::bannable;

    #[test]
    fn loopback_and_group_addresses_are_not_bannable() {
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
        ] {
            assert!(!bannable(&bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "203.0.113.9",
            "2001:db8::7",
            "::ffff:203.0.113.9",
            "10.1.2.3",
        ] {
            assert!(bannable(&good.parse().unwrap()), "{good}");
        }
    }
}
