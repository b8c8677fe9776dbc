//! Sustained CPU at the limit — the miner case. Each tenant slice's `cpu.stat` `usage_usec` is sampled every
//! `cpu_sample_secs`; the use over each interval, as a share of the tenant's limit, either stays at or above the
//! threshold for the whole window (one alert, then quiet until it drops below and rises again) or it does not.
//!
//! An explicit state per tenant rather than a moving average: an average over ten minutes hides a miner that
//! pauses, and says nothing about *when* it started; here the alert names the moment the tenant reached its limit.

use std::collections::HashMap;

/// One tenant's state.
#[derive(Debug, Clone, Default)]
struct Track {
    /// The previous sample: (time µs, usage µs).
    last: Option<(u64, u64)>,
    /// Since when (µs) every interval was at or above the threshold.
    above_since: Option<u64>,
    alerted: bool,
    percent: u32,
}

/// An alert to raise: the tenant held its limit from `since_usec` to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sustained {
    pub tenant: String,
    pub percent: u32,
    pub limit_percent: u32,
    pub held_secs: u64,
}

#[derive(Debug)]
pub struct CpuWatch {
    window_usec: u64,
    threshold_percent: u32,
    tracks: HashMap<String, Track>,
}

impl CpuWatch {
    pub fn new(window: std::time::Duration, threshold_percent: u32) -> CpuWatch {
        CpuWatch {
            window_usec: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
            threshold_percent,
            tracks: HashMap::new(),
        }
    }

    /// Takes one sample of `tenant` at time `now_usec` (any monotonic clock) with its `usage_usec` so far and its
    /// limit in percent of one CPU (None: no limit known, so nothing to alert about). Returns the alert to raise.
    pub fn sample(
        &mut self,
        tenant: &str,
        now_usec: u64,
        usage_usec: u64,
        limit_percent: Option<u32>,
    ) -> Option<Sustained> {
        let track = self.tracks.entry(tenant.to_owned()).or_default();
        let previous = track.last.replace((now_usec, usage_usec));
        let (then, used_before) = previous?;
        let wall = now_usec.checked_sub(then).filter(|w| *w > 0)?;
        // A restarted slice starts its usage at 0 again: that interval tells nothing.
        let used = usage_usec.checked_sub(used_before)?;
        track.percent = u32::try_from(used.saturating_mul(100) / wall).unwrap_or(u32::MAX);
        let Some(limit) = limit_percent.filter(|l| *l > 0) else {
            track.above_since = None;
            return None;
        };
        let share = u64::from(track.percent) * 100 / u64::from(limit);
        if share < u64::from(self.threshold_percent) {
            track.above_since = None;
            track.alerted = false;
            return None;
        }
        let since = *track.above_since.get_or_insert(then);
        let held = now_usec - since;
        if held >= self.window_usec && !track.alerted {
            track.alerted = true;
            return Some(Sustained {
                tenant: tenant.to_owned(),
                percent: track.percent,
                limit_percent: limit,
                held_secs: held / 1_000_000,
            });
        }
        None
    }

    /// CPU use over the last interval, in percent of one CPU.
    pub fn percent(&self, tenant: &str) -> u32 {
        self.tracks.get(tenant).map_or(0, |t| t.percent)
    }

    /// Forgets a tenant that is gone.
    pub fn forget(&mut self, tenant: &str) {
        self.tracks.remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000;

    /// Feeds samples every 10 s with the given use in percent of one CPU; returns the sample index of each alert.
    fn run(watch: &mut CpuWatch, limit: Option<u32>, uses: &[u64]) -> Vec<usize> {
        let mut usage = 0;
        let mut alerts = Vec::new();
        for (i, pct) in std::iter::once(&0).chain(uses).enumerate() {
            usage += pct * 10 * S / 100;
            if watch.sample("t", i as u64 * 10 * S, usage, limit).is_some() {
                alerts.push(i);
            }
        }
        alerts
    }

    #[test]
    fn alerts_once_after_the_whole_window_at_the_limit() {
        let mut w = CpuWatch::new(Duration::from_secs(60), 95);
        // 50 % limit, used at 49 % (98 % of it) for 2 minutes: the alert comes when 60 s are covered.
        let alerts = run(&mut w, Some(50), &[49; 12]);
        assert_eq!(alerts, vec![6]);
        assert_eq!(w.percent("t"), 49);
    }

    #[test]
    fn a_dip_restarts_the_window_and_rearms_the_alert() {
        let mut w = CpuWatch::new(Duration::from_secs(30), 95);
        let uses = [100, 100, 40, 100, 100, 100, 100, 10, 100, 100, 100];
        assert_eq!(run(&mut w, Some(100), &uses), vec![6, 11]);
    }

    #[test]
    fn below_the_threshold_or_without_a_limit_never_alerts() {
        let mut w = CpuWatch::new(Duration::from_secs(10), 95);
        assert!(run(&mut w, Some(100), &[90; 20]).is_empty());
        let mut w = CpuWatch::new(Duration::from_secs(10), 95);
        assert!(run(&mut w, None, &[100; 20]).is_empty());
    }

    #[test]
    fn a_restarted_slice_is_not_read_as_negative_use() {
        let mut w = CpuWatch::new(Duration::from_secs(20), 95);
        assert_eq!(w.sample("t", 0, 5 * S, Some(100)), None);
        assert_eq!(w.sample("t", 10 * S, S, Some(100)), None);
        assert_eq!(w.sample("t", 20 * S, 11 * S, Some(100)), None);
        assert!(w.sample("t", 30 * S, 21 * S, Some(100)).is_some());
    }
}
