//! What the daemon publishes while an update runs: the phase, bytes and chunks done, and an estimate of the time
//! left from the rate so far (none until there is a rate).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub phase: &'static str,
    pub version: Option<String>,
    /// Bytes of the slot image handled (written or found good already) out of the image length.
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub chunks_done: usize,
    pub chunks_total: usize,
    pub eta: Option<Duration>,
}

/// Rate from the start of this run; bytes found good on the slot at resume do not count as speed.
#[derive(Debug, Clone)]
pub struct Rate {
    start: Instant,
    base: u64,
}

impl Rate {
    pub fn start(bytes_already: u64) -> Rate {
        Rate {
            start: Instant::now(),
            base: bytes_already,
        }
    }

    pub fn eta(&self, done: u64, total: u64) -> Option<Duration> {
        eta(
            self.start.elapsed(),
            done.saturating_sub(self.base),
            total.saturating_sub(done),
        )
    }
}

/// Time left at the rate `moved / elapsed`.
pub fn eta(elapsed: Duration, moved: u64, left: u64) -> Option<Duration> {
    if moved == 0 || elapsed.is_zero() {
        return None;
    }
    let per_byte = elapsed.as_secs_f64() / moved as f64;
    Some(Duration::from_secs_f64(per_byte * left as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_from_rate() {
        assert_eq!(eta(Duration::from_secs(10), 0, 100), None);
        assert_eq!(
            eta(Duration::from_secs(10), 100, 300),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(Duration::from_secs(10), 100, 0), Some(Duration::ZERO));
    }
}
