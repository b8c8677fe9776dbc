//! Per-source sliding windows and ban escalation, in memory and bounded.
//!
//! A source is banned when it reaches `max_failures` counted failures of one service within `window`. Times are
//! the journal's (`__REALTIME_TIMESTAMP`), not the clock's, so the decision depends only on the lines and a replay
//! decides the same way. A source banned again within `forget_after` of its previous ban is a repeat offender: its
//! ban lasts `base × factor^(offences−1)`, capped at `max`.
//!
//! Memory is bounded: at most `max_sources` windows and offence records; beyond that the least recently seen are
//! dropped (an attacker rotating through many addresses costs a fixed amount of memory and loses its own history
//! first). Each window holds at most `max_failures` timestamps.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::parse::Service;

const MICROS: u64 = 1_000_000;

/// When one service's failures ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub max_failures: u32,
    pub window_secs: u64,
}

/// How long bans last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanTimes {
    pub base_secs: u64,
    pub factor: u32,
    pub max_secs: u64,
    /// A ban this long after the previous one's start counts as a first offence again.
    pub forget_after_secs: u64,
}

impl BanTimes {
    /// The ban for the `offence`-th offence (1-based).
    pub fn duration(&self, offence: u32) -> u64 {
        let mut secs = self.base_secs;
        for _ in 1..offence {
            secs = secs.saturating_mul(u64::from(self.factor));
            if secs >= self.max_secs {
                break;
            }
        }
        secs.min(self.max_secs)
    }
}

/// A ban to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub seconds: u64,
    /// 1 for a first offence.
    pub offence: u32,
    /// Counted failures in the window that triggered it.
    pub failures: u32,
}

#[derive(Debug, Default)]
struct Track {
    times: VecDeque<u64>,
    last_seen: u64,
}

#[derive(Debug, Clone, Copy)]
struct Offence {
    count: u32,
    last_ban_us: u64,
    banned_until_us: u64,
}

#[derive(Debug)]
pub struct Windows {
    ssh: Threshold,
    panel: Threshold,
    bans: BanTimes,
    max_sources: usize,
    tracks: HashMap<(Service, IpAddr), Track>,
    offences: HashMap<IpAddr, Offence>,
}

impl Windows {
    pub fn new(ssh: Threshold, panel: Threshold, bans: BanTimes, max_sources: usize) -> Windows {
        Windows {
            ssh,
            panel,
            bans,
            max_sources: max_sources.max(16),
            tracks: HashMap::new(),
            offences: HashMap::new(),
        }
    }

    fn threshold(&self, service: Service) -> Threshold {
        match service {
            Service::Ssh => self.ssh,
            Service::Panel => self.panel,
        }
    }

    /// Counts one failure of `weight` at `now_us`; returns a ban when the threshold is reached. Failures from a
    /// source already banned (lines logged before the ban took effect) are not counted.
    pub fn failure(
        &mut self,
        service: Service,
        source: IpAddr,
        now_us: u64,
        weight: u32,
    ) -> Option<Decision> {
        if weight == 0 {
            return None;
        }
        if self
            .offences
            .get(&source)
            .is_some_and(|o| o.banned_until_us > now_us)
        {
            return None;
        }
        let threshold = self.threshold(service);
        let horizon = now_us.saturating_sub(threshold.window_secs.saturating_mul(MICROS));
        if !self.tracks.contains_key(&(service, source)) && self.tracks.len() >= self.max_sources {
            evict(&mut self.tracks, self.max_sources, |t| t.last_seen);
        }
        let track = self.tracks.entry((service, source)).or_default();
        track.last_seen = track.last_seen.max(now_us);
        for _ in 0..weight {
            track.times.push_back(now_us);
        }
        while track.times.front().is_some_and(|&t| t < horizon) {
            track.times.pop_front();
        }
        let limit = threshold.max_failures.max(1) as usize;
        while track.times.len() > limit {
            track.times.pop_front();
        }
        let failures = track.times.len();
        if failures < limit {
            return None;
        }
        self.tracks.remove(&(service, source));
        let forget = self.bans.forget_after_secs.saturating_mul(MICROS);
        let offence = match self.offences.get(&source) {
            Some(o) if now_us.saturating_sub(o.last_ban_us) < forget => o.count.saturating_add(1),
            _ => 1,
        };
        let seconds = self.bans.duration(offence);
        if !self.offences.contains_key(&source) && self.offences.len() >= self.max_sources {
            evict(&mut self.offences, self.max_sources, |o| o.last_ban_us);
        }
        self.offences.insert(
            source,
            Offence {
                count: offence,
                last_ban_us: now_us,
                banned_until_us: now_us.saturating_add(seconds.saturating_mul(MICROS)),
            },
        );
        Some(Decision {
            seconds,
            offence,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        })
    }

    /// Sources with a live window (for status and tests).
    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }

    /// Sources with an offence on record.
    pub fn offenders(&self) -> usize {
        self.offences.len()
    }
}

/// Drops the least recently seen tenth of `map` (at least one entry).
fn evict<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    seen: impl Fn(&V) -> u64,
) {
    let drop = (cap / 10).max(1);
    let mut ages: Vec<(u64, K)> = map.iter().map(|(k, v)| (seen(v), k.clone())).collect();
    if ages.len() > drop {
        ages.select_nth_unstable_by_key(drop, |(t, _)| *t);
        ages.truncate(drop);
    }
    for (_, key) in ages {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = MICROS;

    fn windows() -> Windows {
        Windows::new(
            Threshold {
                max_failures: 3,
                window_secs: 60,
            },
            Threshold {
                max_failures: 5,
                window_secs: 600,
            },
            BanTimes {
                base_secs: 600,
                factor: 3,
                max_secs: 86_400,
                forget_after_secs: 7 * 86_400,
            },
            100,
        )
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0xcb00_7100 + n))
    }

    #[test]
    fn threshold_within_window_bans_once() {
        let mut w = windows();
        assert_eq!(w.failure(Service::Ssh, ip(1), S, 1), None);
        assert_eq!(w.failure(Service::Ssh, ip(1), 2 * S, 1), None);
        let d = w.failure(Service::Ssh, ip(1), 3 * S, 1).unwrap();
        assert_eq!((d.seconds, d.offence, d.failures), (600, 1, 3));
        // Lines logged before the ban took effect do not ban again.
        for t in 4..20 {
            assert_eq!(w.failure(Service::Ssh, ip(1), t * S, 1), None);
        }
    }

    #[test]
    fn window_slides() {
        let mut w = windows();
        assert_eq!(w.failure(Service::Ssh, ip(2), 0, 1), None);
        assert_eq!(w.failure(Service::Ssh, ip(2), 30 * S, 1), None);
        // The first failure is 61 s old by now: only two in the window.
        assert_eq!(w.failure(Service::Ssh, ip(2), 61 * S, 1), None);
        assert!(w.failure(Service::Ssh, ip(2), 62 * S, 1).is_some());
    }

    #[test]
    fn services_and_sources_count_separately_and_weight_zero_is_free() {
        let mut w = windows();
        for t in 0..4 {
            assert_eq!(
                w.failure(Service::Panel, ip(3), t * S, 1),
                None,
                "panel threshold is 5"
            );
        }
        assert_eq!(w.failure(Service::Ssh, ip(3), 5 * S, 1), None);
        assert_eq!(w.failure(Service::Ssh, ip(4), 5 * S, 1), None);
        for t in 0..10 {
            assert_eq!(w.failure(Service::Ssh, ip(3), (6 + t) * S, 0), None);
        }
        assert!(w.failure(Service::Panel, ip(3), 20 * S, 1).is_some());
    }

    #[test]
    fn repeat_offenders_escalate_to_the_cap_and_are_forgotten() {
        let mut w = windows();
        let mut now = 0;
        let mut durations = Vec::new();
        for _ in 0..6 {
            let d = loop {
                now += S;
                if let Some(d) = w.failure(Service::Ssh, ip(5), now, 1) {
                    break d;
                }
            };
            durations.push(d.seconds);
            now += d.seconds * S; // the ban runs out
        }
        assert_eq!(durations, [600, 1800, 5400, 16_200, 48_600, 86_400]);
        // A week of good behaviour later, a first offence again.
        now += 8 * 86_400 * S;
        let d = (1..=3)
            .find_map(|i| w.failure(Service::Ssh, ip(5), now + i * S, 1))
            .unwrap();
        assert_eq!((d.offence, d.seconds), (1, 600));
    }

    #[test]
    fn durations_saturate() {
        let b = BanTimes {
            base_secs: u64::MAX / 2,
            factor: u32::MAX,
            max_secs: u64::MAX,
            forget_after_secs: 1,
        };
        assert_eq!(b.duration(u32::MAX), u64::MAX);
    }

    #[test]
    fn memory_is_bounded() {
        let mut w = windows();
        for n in 0..10_000 {
            w.failure(Service::Ssh, ip(n), u64::from(n) * S, 1);
            assert!(w.tracked() <= 100);
        }
        // Three failures each from many sources: bans recorded, offences bounded too.
        for n in 0..1_000u32 {
            for k in 0..3 {
                w.failure(
                    Service::Ssh,
                    ip(100_000 + n),
                    20_000 * S + u64::from(n * 3 + k),
                    1,
                );
            }
            assert!(w.offenders() <= 100);
        }
    }
}
