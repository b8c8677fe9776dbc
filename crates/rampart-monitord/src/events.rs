//! Reading the ring buffer: a thread polls it, parses each record and hands it on; sequence numbers are tracked per
//! CPU so losses show up twice — the kernel's own count of failed reservations, and the gaps seen here.
//!
//! The channel to the daemon is unbounded on purpose: events exist only for first-seen things, whose number the
//! kernel maps cap (an entry per tenant and port or binary), so a burst is bounded without dropping anything here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use libbpf_rs::{MapHandle, RingBufferBuilder};

use crate::wire::{Event, EV_KINDS};
use crate::Error;

/// What the reader has seen, shared with the daemon.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Records read, by kind.
    pub received: [AtomicU64; EV_KINDS],
    /// Records that did not parse (short or unknown kind).
    pub malformed: AtomicU64,
    /// Per CPU: (highest sequence number seen, records seen).
    seqs: Mutex<HashMap<u32, (u64, u64)>>,
}

impl ReaderStats {
    /// Notes one record's sequence number.
    fn saw(&self, cpu: u32, seq: u64) {
        let mut seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seqs.entry(cpu).or_insert((0, 0));
        entry.0 = entry.0.max(seq);
        entry.1 += 1;
    }

    /// Events the kernel numbered but the reader never got, over all CPUs. Every CPU numbers from 1, so the
    /// highest number seen is how many it tried to send up to then; order of arrival does not matter.
    pub fn gaps(&self) -> u64 {
        let seqs = self.seqs.lock().unwrap_or_else(|p| p.into_inner());
        seqs.values()
            .map(|(max, seen)| max.saturating_sub(*seen))
            .sum()
    }

    pub fn received(&self) -> [u64; EV_KINDS] {
        std::array::from_fn(|i| self.received[i].load(Ordering::Relaxed))
    }
}

/// The running reader thread; stops when dropped.
#[derive(Debug)]
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<ReaderStats>,
}

impl Reader {
    /// Starts reading `map` (the ring buffer), sending each event to `deliver`.
    pub fn start(
        map: &libbpf_rs::Map<'_>,
        deliver: impl Fn(Event) + Send + 'static,
    ) -> Result<Reader, Error> {
        // An owned handle (a dup of the map's fd): the thread does not borrow the loaded object.
        let handle = MapHandle::try_from(map).map_err(|e| Error::Bpf {
            step: "open the ring buffer",
            message: format!("{e:#}"),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReaderStats::default());
        let (stop2, stats2) = (Arc::clone(&stop), Arc::clone(&stats));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let mut builder = RingBufferBuilder::new();
                let on_record = move |data: &[u8]| -> i32 {
                    match Event::parse(data) {
                        Some(event) => {
                            stats2.saw(event.cpu, event.seq);
                            if let Some(n) = stats2.received.get(event.kind as usize) {
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                            deliver(event);
                        }
                        None => {
                            stats2.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    0
                };
                let built = match builder.add(&handle, on_record) {
                    Ok(_) => builder.build(),
                    Err(e) => Err(e),
                };
                let ring = match built {
                    Ok(ring) => ring,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while !stop2.load(Ordering::Relaxed) {
                    if let Err(e) = ring.poll(Duration::from_millis(100)) {
                        // EINTR and the like: poll again; anything lasting shows as stale counters in Health.
                        log::debug!("ring buffer poll: {e}");
                    }
                }
                // Whatever arrived before the stop is still read.
                let _ = ring.consume();
            })
            .map_err(Error::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Reader {
                stop,
                thread: Some(thread),
                stats,
            }),
            Ok(Err(message)) => Err(Error::Bpf {
                step: "set up the ring buffer reader",
                message,
            }),
            Err(_) => Err(Error::Bpf {
                step: "set up the ring buffer reader",
                message: "the reader thread ended".into(),
            }),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_missing_numbers_per_cpu_in_any_order() {
        let s = ReaderStats::default();
        for seq in [1, 2, 5, 4] {
            s.saw(0, seq);
        }
        s.saw(1, 1);
        s.saw(1, 2);
        assert_eq!(s.gaps(), 1, "cpu 0 lost 3, cpu 1 nothing");
        s.saw(0, 3);
        assert_eq!(s.gaps(), 0, "a late record fills its gap");
    }
}
