//! Login throttling: failures are counted per account and per source in sliding windows; while either is over
//! its limit, attempts are refused before any password is hashed. A correct login clears its account's window
//! (not its source's: one right guess does not pardon a spraying source).
//!
//! Kept in memory: a restart forgets the windows. That is deliberate — persisting every failure would make a
//! flood of wrong passwords a flood of fsyncs — and harmless: rampart-guardd bans repeating sources at the
//! firewall from the journal, which does survive.

use std::collections::{HashMap, VecDeque};

/// At most this many keys are tracked per map; beyond it the stalest are forgotten (a source-spraying flood
/// cannot grow memory without bound).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window_secs: u64,
    pub per_account: usize,
    pub per_source: usize,
}

#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    accounts: HashMap<String, VecDeque<u64>>,
    sources: HashMap<String, VecDeque<u64>>,
}

/// Refused: try again in this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits,
            accounts: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Whether an attempt for `account` from `source` may go ahead now.
    pub fn check(&mut self, account: &str, source: &str, now: u64) -> Result<(), RetryAfter> {
        let w = self.limits.window_secs;
        let a = over(&mut self.accounts, account, self.limits.per_account, w, now);
        let s = over(&mut self.sources, source, self.limits.per_source, w, now);
        match a.max(s) {
            0 => Ok(()),
            wait => Err(RetryAfter(wait)),
        }
    }

    pub fn failed(&mut self, account: &str, source: &str, now: u64) {
        for (map, key) in [(&mut self.accounts, account), (&mut self.sources, source)] {
            if key.is_empty() {
                continue;
            }
            if map.len() >= MAX_KEYS && !map.contains_key(key) {
                forget_stalest(map);
            }
            map.entry(key.to_owned()).or_default().push_back(now);
        }
    }

    pub fn succeeded(&mut self, account: &str) {
        self.accounts.remove(account);
    }
}

/// Seconds until `key` is under `limit` again (0: it is now), after dropping failures older than the window.
fn over(
    map: &mut HashMap<String, VecDeque<u64>>,
    key: &str,
    limit: usize,
    window: u64,
    now: u64,
) -> u64 {
    let Some(times) = map.get_mut(key) else {
        return 0;
    };
    while times.front().is_some_and(|t| t + window <= now) {
        times.pop_front();
    }
    if times.is_empty() {
        map.remove(key);
        return 0;
    }
    if times.len() < limit {
        return 0;
    }
    // The attempt that must age out before the count is under the limit again.
    let index = times.len() - limit;
    times
        .get(index)
        .map_or(0, |t| (t + window).saturating_sub(now).max(1))
}

fn forget_stalest(map: &mut HashMap<String, VecDeque<u64>>) {
    let stalest = map
        .iter()
        .min_by_key(|(_, times)| times.back().copied().unwrap_or(0))
        .map(|(k, _)| k.clone());
    if let Some(k) = stalest {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(Limits {
            window_secs: 600,
            per_account: 3,
            per_source: 5,
        })
    }

    #[test]
    fn account_limit_then_window_slides() {
        let mut t = throttle();
        for i in 0..3 {
            assert!(t.check("alice", &format!("192.0.2.{i}"), 100 + i).is_ok());
            t.failed("alice", &format!("192.0.2.{i}"), 100 + i);
        }
        // Any source, even a fresh one, is refused for alice until the first failure ages out.
        assert_eq!(t.check("alice", "198.51.100.9", 200), Err(RetryAfter(500)));
        assert!(t.check("bob", "198.51.100.9", 200).is_ok());
        assert!(t.check("alice", "198.51.100.9", 700).is_ok());
    }

    #[test]
    fn source_limit_covers_every_account_it_tries() {
        let mut t = throttle();
        for i in 0..5 {
            t.failed(&format!("user{i}"), "203.0.113.7", 10);
        }
        assert!(t.check("someone-else", "203.0.113.7", 11).is_err());
        assert!(t.check("someone-else", "203.0.113.8", 11).is_ok());
    }

    #[test]
    fn success_clears_the_account_not_the_source() {
        let mut t = throttle();
        for _ in 0..3 {
            t.failed("alice", "203.0.113.7", 10);
        }
        t.succeeded("alice");
        assert!(t.check("alice", "198.51.100.1", 11).is_ok());
        t.failed("x", "203.0.113.7", 12);
        t.failed("y", "203.0.113.7", 12);
        assert!(
            t.check("z", "203.0.113.7", 13).is_err(),
            "5 failures from the source remain"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = throttle();
        for i in 0..(MAX_KEYS + 10) {
            t.failed("", &format!("s{i}"), i as u64);
        }
        assert!(t.sources.len() <= MAX_KEYS);
        assert!(t.accounts.is_empty(), "empty account names are not tracked");
    }
}
