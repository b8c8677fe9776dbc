//! Per-source rate limits: a token bucket per client address for all requests, and a slower one for
//! authentication attempts (passwords, codes). Memory is bounded: beyond `MAX_SOURCES` the map is pruned of
//! full buckets (sources that have been quiet), then of the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

const MAX_SOURCES: usize = 50_000;

#[derive(Debug)]
pub struct Buckets {
    rate: f64,
    burst: f64,
    sources: HashMap<IpAddr, (f64, Instant)>,
}

impl Buckets {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Buckets {
        Buckets {
            rate,
            burst,
            sources: HashMap::new(),
        }
    }

    /// Takes one token for `source`; false when it has none left (answer 429).
    pub fn take(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.prune(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, last) = self.sources.entry(source).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.sources
            .retain(|_, (t, last)| *t + now.duration_since(*last).as_secs_f64() * rate < burst);
        if self.sources.len() >= MAX_SOURCES {
            if let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, (_, last))| *last)
                .map(|(k, _)| *k)
            {
                self.sources.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_per_source() {
        let mut b = Buckets::new(2.0, 3.0);
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| b.take(a, t)));
        assert!(!b.take(a, t), "burst spent");
        assert!(b.take(other, t), "another source has its own bucket");
        assert!(b.take(a, t + Duration::from_millis(600)), "refilled at 2/s");
        assert!(!b.take(a, t + Duration::from_millis(600)));
    }

    #[test]
    fn memory_is_bounded() {
        let mut b = Buckets::new(1.0, 1.0);
        let t = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            b.take(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(b.sources.len() <= MAX_SOURCES);
    }
}
