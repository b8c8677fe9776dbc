//! The single writer: a thread that owns the store and commits records in batches (group commit).
//!
//! Callers queue a record and wait for its reply. The thread takes the first queued record, drains whatever else
//! queued up to `max_batch`, writes the batch in ONE transaction and commits — with WAL and `synchronous=FULL`
//! the commit returns only after the WAL is fsynced — and only then answers every caller in the batch. So an
//! acknowledged record survives power loss, and one fsync is shared by everyone who arrived while the previous
//! one was in flight. A failed commit answers every caller in the batch with the error; none of them is stored.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_interfaces::audit::Appended;
use tokio::sync::{mpsc, oneshot};

use crate::journal;
use crate::store::{Pending, Store};
use crate::Error;

/// How many records may wait for the writer before callers are slowed down. With records of at most ~66 KiB this
/// bounds the queue's memory (~270 MB worst case, a few MB in practice).
const QUEUE: usize = 4096;
/// A batch still not committed after this long means the writer is stuck (disk, lock): stop feeding the watchdog.
pub const STUCK_AFTER: Duration = Duration::from_secs(15);

enum Job {
    Append(Pending, oneshot::Sender<Result<Appended, String>>),
    Stop,
}

/// A cheap, cloneable handle to the writer thread.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    state: Arc<State>,
}

/// What the writer thread publishes for health checks and verification.
#[derive(Debug)]
struct State {
    alive: AtomicBool,
    /// Milliseconds since `epoch` at which the batch being written started; 0 when idle.
    busy_since_ms: AtomicU64,
    epoch: Instant,
    /// Records committed so far (the chain head's sequence number).
    committed: AtomicU64,
}

impl Writer {
    /// Starts the writer thread. `mirror` sends each stored record to the journal too.
    pub fn spawn(
        store: Store,
        max_batch: usize,
        mirror: bool,
    ) -> Result<(Writer, JoinHandle<()>), Error> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let state = Arc::new(State {
            alive: AtomicBool::new(true),
            busy_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            committed: AtomicU64::new(store.len()),
        });
        let shared = state.clone();
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                write_loop(store, rx, max_batch.max(1), mirror, &shared);
                shared.alive.store(false, Ordering::SeqCst);
            })
            .map_err(Error::Thread)?;
        Ok((Writer { tx, state }, handle))
    }

    /// Appends `record`; resolves once it is durable.
    pub async fn append(&self, record: Pending) -> Result<Appended, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Append(record, reply))
            .await
            .map_err(|_| Error::WriterGone.to_string())?;
        rx.await.map_err(|_| Error::WriterGone.to_string())?
    }

    /// Asks the thread to finish what is queued and stop; later appends fail with `WriterGone`.
    pub async fn stop(&self) {
        let _ = self.tx.send(Job::Stop).await;
    }

    /// False once the thread has exited or a batch has been stuck for [`STUCK_AFTER`]: the watchdog stops being
    /// fed and systemd restarts the daemon (nothing acknowledged is lost: acknowledgement follows commit).
    pub fn is_healthy(&self) -> bool {
        if !self.state.alive.load(Ordering::SeqCst) {
            return false;
        }
        let since = self.state.busy_since_ms.load(Ordering::SeqCst);
        since == 0
            || self.state.epoch.elapsed().as_millis() < u128::from(since) + STUCK_AFTER.as_millis()
    }

    /// Records committed by this writer's store (the head the daemon knows, to catch a log truncated behind it).
    pub fn committed(&self) -> u64 {
        self.state.committed.load(Ordering::SeqCst)
    }
}

fn write_loop(
    mut store: Store,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    mirror: bool,
    state: &State,
) {
    let mut records = Vec::with_capacity(max_batch);
    let mut replies = Vec::with_capacity(max_batch);
    let mut stop = false;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut job = Some(first);
        while let Some(j) = job.take() {
            match j {
                Job::Append(rec, reply) => {
                    records.push(rec);
                    replies.push(reply);
                }
                Job::Stop => stop = true,
            }
            if !stop && records.len() < max_batch {
                job = rx.try_recv().ok();
            }
        }
        if records.is_empty() {
            continue;
        }
        let now_ms = u64::try_from(state.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        state.busy_since_ms.store(now_ms, Ordering::SeqCst);
        let result = store.append_batch(&records);
        state.busy_since_ms.store(0, Ordering::SeqCst);
        state.committed.store(store.len(), Ordering::SeqCst);
        match result {
            Ok(done) => {
                for ((reply, rec), appended) in replies.drain(..).zip(records.iter()).zip(done) {
                    if mirror {
                        journal::mirror(rec, &appended);
                    }
                    let _ = reply.send(Ok(appended));
                }
            }
            Err(e) => {
                let text = rampart_common::error::chain(&e);
                log::error!(
                    "audit batch of {} records not stored: {text}",
                    records.len()
                );
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(text.clone()));
                }
            }
        }
        records.clear();
    }
    rx.close();
    // Anything that raced in after Stop is refused, not silently dropped.
    while let Ok(Job::Append(_, reply)) = rx.try_recv() {
        let _ = reply.send(Err(Error::WriterGone.to_string()));
    }
}
