//! The monitor's state: the loaded programs, the tenants they count, totals that run on across restarts, first-seen
//! decisions and alerts. Synchronous (map reads and SQLite are blocking); the daemon calls it from blocking
//! threads, one call at a time.
//!
//! Totals: the kernel's counters start at zero with every load, and a tenant's cgroup gets a new id whenever its
//! slice is restarted (resume after suspend). So a tenant's total is `base` (the last checkpoint, plus every cgroup
//! of it that has gone since) + what the kernel holds for its current cgroup. A cgroup that disappears is read one
//! last time and folded into `base` before its map entries are removed: nothing counted is dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rampart_interfaces::monitor::{
    Alert, Enforcement, EventCount, Health, ListenPort, PortCount, ProgramStats, TenantCounters,
    TenantDetail, ALERT_CPU, ALERT_EXEC, ALERT_LISTEN, ALERT_OUTBOUND,
};

use crate::bpf::{self, Options, Programs};
use crate::cgroups::{self, TenantCgroup};
use crate::cpu::CpuWatch;
use crate::events::ReaderStats;
use crate::settings::Settings;
use crate::store::{OutboundRow, Store};
use crate::wire::{self, Event, PortKey, Stats, EV_CONNECT, EV_EXEC, EV_LISTEN, KIND_NAMES};
use crate::Error;

/// The most ports one enforcement list may hold (each is a kernel map entry per protocol).
pub const MAX_ENFORCED_PORTS: usize = 1024;

#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    programs: Programs,
    store: Store,
    parent: PathBuf,
    live: BTreeMap<String, TenantCgroup>,
    base: HashMap<String, Stats>,
    base_outbound: HashMap<(String, u8, u16), u64>,
    /// Plan limits (percent of one CPU) from rampart-tenantd, for slices without a cpu controller to read.
    plan_limits: HashMap<String, u32>,
    cpu: CpuWatch,
}

/// What a scan changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Engine {
    /// Opens the database, loads the programs and attaches them at the tenant.slice cgroup.
    pub fn open(settings: Settings) -> Result<Engine, Error> {
        let parent = match &settings.cgroup {
            Some(p) => p.clone(),
            None => cgroups::cgroup2_mount()?.join(rampart_interfaces::tenant::PARENT_SLICE),
        };
        let store = Store::open(&settings.database)?;
        let programs = Programs::load(
            &parent,
            &Options {
                ring_bytes: settings.ring_buffer_bytes,
                udp_sends: settings.udp_sends,
            },
        )?;
        let base = store.totals()?.into_iter().collect();
        let base_outbound = store
            .outbound()?
            .into_iter()
            .map(|(t, proto, port, n)| ((t, proto, port), n))
            .collect();
        let cpu = CpuWatch::new(settings.cpu_window, settings.cpu_threshold_percent);
        Ok(Engine {
            settings,
            programs,
            store,
            parent,
            live: BTreeMap::new(),
            base,
            base_outbound,
            plan_limits: HashMap::new(),
            cpu,
        })
    }

    pub fn programs(&self) -> &Programs {
        &self.programs
    }

    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// Finds tenant slices that appeared, went, or were restarted, and starts or stops counting them.
    pub fn scan(&mut self) -> Result<ScanChanges, Error> {
        let found = cgroups::scan(&self.parent)?;
        let mut changes = ScanChanges::default();
        let gone: Vec<TenantCgroup> = self
            .live
            .values()
            .filter(|cg| found.get(&cg.name).is_none_or(|f| f.id != cg.id))
            .cloned()
            .collect();
        for cg in gone {
            self.fold(&cg)?;
            self.live.remove(&cg.name);
            self.cpu.forget(&cg.name);
            changes.removed.push(cg.name);
        }
        for (name, cg) in found {
            if self.live.contains_key(&name) {
                continue;
            }
            self.start_counting(&cg)?;
            self.live.insert(name.clone(), cg);
            changes.added.push(name);
        }
        Ok(changes)
    }

    /// Adds a cgroup to the maps, with what this tenant was already seen doing and its enforcement.
    fn start_counting(&self, cg: &TenantCgroup) -> Result<(), Error> {
        self.programs.add_tenant(cg.id)?;
        for (proto, port, _) in self.store.listening(&cg.name)? {
            self.programs.mark_seen_listening(&PortKey {
                cgroup: cg.id,
                port,
                proto,
            })?;
        }
        for (tenant, proto, port) in self.base_outbound.keys() {
            if *tenant == cg.name {
                self.programs.mark_seen_outbound(&PortKey {
                    cgroup: cg.id,
                    port: *port,
                    proto: *proto,
                })?;
            }
        }
        for (dev, ino) in self.store.binaries(&cg.name)? {
            self.programs.mark_seen_binary(cg.id, dev, ino)?;
        }
        if let Some(e) = self.store.enforcement(&cg.name)? {
            self.programs.set_enforcement(
                cg.id,
                &e.deny_outbound,
                e.restrict_listen,
                &e.allow_listen,
            )?;
        }
        Ok(())
    }

    /// Reads a cgroup one last time into `base`, then removes it from the maps.
    fn fold(&mut self, cg: &TenantCgroup) -> Result<(), Error> {
        if let Some(s) = self.programs.stats(cg.id)? {
            let b = self.base.entry(cg.name.clone()).or_default();
            *b = b.plus(s);
        }
        for (key, n) in self.programs.outbound()? {
            if key.cgroup == cg.id {
                *self
                    .base_outbound
                    .entry((cg.name.clone(), key.proto, key.port))
                    .or_default() += n;
            }
        }
        self.programs.remove_tenant(cg.id)
    }

    fn name_of(&self, cgroup: u64) -> Option<&str> {
        self.live
            .values()
            .find(|cg| cg.id == cgroup)
            .map(|cg| cg.name.as_str())
    }

    /// Every tenant's totals (known now or before), by name.
    pub fn totals(&self) -> Result<BTreeMap<String, Stats>, Error> {
        let mut out: BTreeMap<String, Stats> =
            self.base.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for cg in self.live.values() {
            let kernel = self.programs.stats(cg.id)?.unwrap_or_default();
            let t = out.entry(cg.name.clone()).or_default();
            *t = t.plus(kernel);
        }
        Ok(out)
    }

    fn outbound_totals(&self) -> Result<Vec<OutboundRow>, Error> {
        let mut out = self.base_outbound.clone();
        for (key, n) in self.programs.outbound()? {
            if let Some(name) = self.name_of(key.cgroup) {
                *out.entry((name.to_owned(), key.proto, key.port))
                    .or_default() += n;
            }
        }
        let mut rows: Vec<OutboundRow> = out
            .into_iter()
            .map(|((t, pr, po), n)| (t, pr, po, n))
            .collect();
        rows.sort();
        Ok(rows)
    }

    /// Saves the totals (one transaction).
    pub fn checkpoint(&mut self, now: u64) -> Result<(), Error> {
        let totals: Vec<(String, Stats)> = self.totals()?.into_iter().collect();
        let outbound = self.outbound_totals()?;
        self.store.checkpoint(&totals, &outbound, now)
    }

    /// Decides what an event means: records what was first seen, and returns the alert it raises, if any (not
    /// yet stored: see [`Engine::store_alert`]).
    pub fn handle(&mut self, e: &Event, now: u64) -> Result<Option<Alert>, Error> {
        let Some(tenant) = self.name_of(e.cgroup).map(str::to_owned) else {
            // The cgroup went between the event and now; its counters were folded already.
            log::debug!("event for cgroup {} that is no longer a tenant's", e.cgroup);
            return Ok(None);
        };
        let proto = wire::proto_name(e.proto);
        let alert = |kind: &str, message: String, program: String| Alert {
            id: 0,
            time: now,
            tenant: tenant.clone(),
            kind: kind.to_owned(),
            message,
            pid: e.pid,
            program,
            port: e.port,
        };
        Ok(match e.kind {
            EV_LISTEN => self
                .store
                .add_listening(&tenant, e.proto, e.port, now)?
                .then(|| {
                    alert(
                        ALERT_LISTEN,
                        format!(
                            "listening on {proto}/{} for the first time ({}, pid {})",
                            e.port, e.comm, e.pid
                        ),
                        e.comm.clone(),
                    )
                }),
            EV_CONNECT => {
                let new = self.store.add_outbound(&tenant, e.proto, e.port, now)?;
                (new && self.settings.watch_ports.contains(&e.port)).then(|| {
                    alert(
                        ALERT_OUTBOUND,
                        format!(
                            "first outbound connection to {proto}/{}, a watched port ({}, pid {})",
                            e.port, e.comm, e.pid
                        ),
                        e.comm.clone(),
                    )
                })
            }
            EV_EXEC => {
                let new = self
                    .store
                    .add_binary(&tenant, e.dev, e.ino, &e.path, e.flags, now)?;
                let why = e.exec_reasons();
                (new && !why.is_empty()).then(|| {
                    alert(
                        ALERT_EXEC,
                        format!("ran {} {} (pid {})", e.path, why.join(", "), e.pid),
                        e.path.clone(),
                    )
                })
            }
            _ => None,
        })
    }

    /// Samples every tenant's CPU use; returns the alerts to raise.
    pub fn cpu_tick(&mut self, now_usec: u64, now: u64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for cg in self.live.values() {
            let usage = match cgroups::cpu_usage_usec(&cg.path) {
                Ok(u) => u,
                Err(e) => {
                    log::debug!("{}: {}", cg.name, rampart_common::error::chain(&e));
                    continue;
                }
            };
            let limit = cgroups::cpu_limit_percent(&cg.path)
                .or_else(|| self.plan_limits.get(&cg.name).copied());
            if let Some(s) = self.cpu.sample(&cg.name, now_usec, usage, limit) {
                alerts.push(Alert {
                    id: 0,
                    time: now,
                    tenant: s.tenant,
                    kind: ALERT_CPU.to_owned(),
                    message: format!(
                        "CPU at {} % of one CPU for {} s: at or above {} % of its limit of {} %",
                        s.percent,
                        s.held_secs,
                        self.settings.cpu_threshold_percent,
                        s.limit_percent
                    ),
                    pid: 0,
                    program: String::new(),
                    port: 0,
                });
            }
        }
        alerts
    }

    /// Brings what is kept in line with the tenants rampart-tenantd knows, as (name, created_at). A tenant recorded
    /// with another creation time, or no longer known, was purged: everything kept about it but its alerts is
    /// forgotten, in the database, in the base totals and, when a slice of that name is being counted (already a
    /// new tenant of the same name), in the maps, which the next scan fills again from nothing. So a new tenant
    /// never inherits an old one's totals, seen ports and binaries (which would hide its first-seen alerts) or
    /// enforcement. Slices rampart-tenantd never named (tests and benchmarks make their own) are left alone.
    /// Returns the names forgotten.
    pub fn reconcile(&mut self, known: &[(String, u64)]) -> Result<Vec<String>, Error> {
        let known: HashMap<&str, u64> = known.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        let recorded = self.store.incarnations()?;
        let mut forgotten = Vec::new();
        for (name, created) in &recorded {
            if known.get(name.as_str()) == Some(created) {
                continue;
            }
            if let Some(cg) = self.live.remove(name) {
                self.programs.remove_tenant(cg.id)?;
                self.cpu.forget(name);
            }
            self.base.remove(name);
            self.base_outbound.retain(|(t, _, _), _| t != name);
            self.store.forget(name)?;
            forgotten.push(name.clone());
        }
        for (name, created) in known {
            let same = recorded.iter().any(|(n, c)| n == name && *c == created);
            if !same {
                self.store.set_incarnation(name, created)?;
            }
        }
        Ok(forgotten)
    }

    /// The plans' CPU limits by tenant (from rampart-tenantd), used where `cpu.max` cannot be read.
    pub fn set_plan_limits(&mut self, limits: HashMap<String, u32>) {
        self.plan_limits = limits;
    }

    /// Stores an alert, giving it its id.
    pub fn store_alert(&mut self, mut alert: Alert) -> Result<Alert, Error> {
        self.store
            .add_alert(&mut alert, self.settings.alerts_kept)?;
        Ok(alert)
    }

    pub fn unaudited(&self) -> Result<Vec<Alert>, Error> {
        self.store.unaudited()
    }

    pub fn mark_audited(&self, id: u64) -> Result<(), Error> {
        self.store.mark_audited(id)
    }

    pub fn alerts(&self, since_id: u64, limit: u32) -> Result<Vec<Alert>, Error> {
        let limit = if limit == 0 { 100 } else { limit.min(10_000) };
        self.store.alerts(since_id, limit)
    }

    // ---- reads for the bus ----

    pub fn counters(&self) -> Result<Vec<TenantCounters>, Error> {
        Ok(self
            .totals()?
            .into_iter()
            .map(|(name, s)| self.tenant_counters(&name, s))
            .collect())
    }

    fn tenant_counters(&self, name: &str, s: Stats) -> TenantCounters {
        let limit = self
            .live
            .get(name)
            .and_then(|cg| cgroups::cpu_limit_percent(&cg.path))
            .or_else(|| self.plan_limits.get(name).copied())
            .unwrap_or(0);
        TenantCounters {
            tenant: name.to_owned(),
            rx_bytes: s.rx_bytes,
            rx_packets: s.rx_packets,
            tx_bytes: s.tx_bytes,
            tx_packets: s.tx_packets,
            connects: s.connects,
            execs: s.execs,
            flagged_execs: s.flagged_execs,
            cpu_percent: self.cpu.percent(name),
            cpu_limit_percent: limit,
        }
    }

    pub fn detail(&self, name: &str) -> Result<TenantDetail, Error> {
        let totals = self.totals()?;
        let s = totals
            .get(name)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("no tenant {name:?} has been monitored")))?;
        let outbound = self
            .outbound_totals()?
            .into_iter()
            .filter(|(t, ..)| t == name)
            .map(|(_, proto, port, count)| PortCount {
                protocol: wire::proto_name(proto).to_owned(),
                port,
                count,
            })
            .collect();
        let listening = self
            .store
            .listening(name)?
            .into_iter()
            .map(|(proto, port, first_seen)| ListenPort {
                protocol: wire::proto_name(proto).to_owned(),
                port,
                first_seen,
            })
            .collect();
        Ok(TenantDetail {
            counters: self.tenant_counters(name, s),
            outbound,
            listening,
        })
    }

    pub fn health(&self, reader: &ReaderStats) -> Result<Health, Error> {
        let dropped = self.programs.dropped()?;
        let received = reader.received();
        Ok(Health {
            attached: true,
            cgroup: self.parent.display().to_string(),
            tenants: u32::try_from(self.live.len()).unwrap_or(u32::MAX),
            events: KIND_NAMES
                .iter()
                .enumerate()
                .map(|(i, kind)| EventCount {
                    kind: (*kind).to_owned(),
                    received: received[i],
                    dropped: dropped[i],
                })
                .collect(),
            gaps: reader.gaps(),
            bpf_stats: bpf::stats_enabled(),
            programs: self
                .programs
                .program_stats()
                .into_iter()
                .map(|(name, run_count, run_time_ns)| ProgramStats {
                    name,
                    run_count,
                    run_time_ns,
                })
                .collect(),
        })
    }

    pub fn enforcement(&self, name: &str) -> Result<Enforcement, Error> {
        Ok(self
            .store
            .enforcement(name)?
            .unwrap_or_else(|| Enforcement {
                tenant: name.to_owned(),
                deny_outbound: Vec::new(),
                restrict_listen: false,
                allow_listen: Vec::new(),
            }))
    }

    /// Checks an enforcement request (tenant name, ports) before anything is audited or applied.
    pub fn check_enforcement(e: &Enforcement) -> Result<Enforcement, Error> {
        rampart_interfaces::tenant::check_name(&e.tenant).map_err(Error::Invalid)?;
        let clean = |ports: &[u16], what: &str| -> Result<Vec<u16>, Error> {
            if ports.contains(&0) {
                return Err(Error::Invalid(format!("{what}: 0 is not a port")));
            }
            if ports.len() > MAX_ENFORCED_PORTS {
                return Err(Error::Invalid(format!(
                    "{what}: {} ports; at most {MAX_ENFORCED_PORTS}",
                    ports.len()
                )));
            }
            let mut p = ports.to_vec();
            p.sort_unstable();
            p.dedup();
            Ok(p)
        };
        Ok(Enforcement {
            tenant: e.tenant.clone(),
            deny_outbound: clean(&e.deny_outbound, "deny_outbound")?,
            restrict_listen: e.restrict_listen,
            allow_listen: clean(&e.allow_listen, "allow_listen")?,
        })
    }

    /// Stores a (checked) enforcement and applies it to the tenant's current cgroup, if it has one. Kernel first:
    /// if the kernel refuses, nothing is stored.
    pub fn set_enforcement(&mut self, e: &Enforcement) -> Result<(), Error> {
        let Some(cg) = self.live.get(&e.tenant) else {
            return self.store.set_enforcement(e);
        };
        self.programs.set_enforcement(
            cg.id,
            &e.deny_outbound,
            e.restrict_listen,
            &e.allow_listen,
        )?;
        if let Err(err) = self.store.set_enforcement(e) {
            // Put the kernel back to what the database still says, so the two agree.
            let old = self.enforcement(&e.tenant)?;
            self.programs.set_enforcement(
                cg.id,
                &old.deny_outbound,
                old.restrict_listen,
                &old.allow_listen,
            )?;
            return Err(err);
        }
        Ok(())
    }

    /// Names of the tenants being counted now.
    pub fn live(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }
}
