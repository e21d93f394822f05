//! The ingest thread's loop and the shard side of the queues.
//!
//! The ingest thread reads Kea's journal as fast as rows arrive: it polls the tailer, routes
//! rows into bounded per-shard queues (a full queue blocks it: back-pressure, nothing is
//! dropped, memory stays bounded), and sleeps on inotify when there is nothing to read.
//! Each shard's owner drains its queue with [`drain`], a bounded batch per call, and
//! expires leases on its own clock with `Shard::expire_due`.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};

use super::links::Links;
use super::source::{KeaSource, Start};
use super::tailer::Position;
use super::watch::Watcher;
use super::{apply, IngestStats, Router, ShardMsg};
use crate::metrics::{Registry, Stamps};
use crate::store::Shard;

/// Settings of the Kea source.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Kea's lease file (`Dhcp6.lease-database.name`).
    pub lease_file: PathBuf,
    /// Longest line accepted.
    pub line_max: usize,
    /// Lines read per poll.
    pub lines_per_poll: usize,
    /// Longest sleep without an inotify event (the tailer polls anyway after it).
    pub idle_wait: Duration,
    /// Capacity of the address-owner map (total addresses and prefixes).
    pub owners_max: usize,
}

/// Server time now, from the wall clock (protocol.md §1.5).
pub fn server_now() -> u32 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    super::row::server_time(unix)
}

/// What the store recovered that the ingest thread needs.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The checkpoint with the lowest id across shards, if every shard has one.
    pub checkpoint: Option<(u64, Position)>,
    /// Per shard, the live leases and their clients ([`Shard::live_leases`]).
    pub owners: Vec<Vec<(crate::wire::client_data::LeaseKind, u64)>>,
}

/// Run the Kea source until `stop` is set: start (resume or snapshot), then tail.
pub fn run(
    config: &IngestConfig,
    links: Links,
    queues: Vec<crossbeam_channel::Sender<ShardMsg>>,
    recovered: Recovered,
    stop: &AtomicBool,
) -> io::Result<IngestStats> {
    run_with(config, links, queues, recovered, stop, Hooks::default())
}

/// What the daemon hangs on the ingest thread.
#[derive(Default)]
pub struct Hooks {
    /// Called after each batch of rows that queued changes and whenever a queue is full:
    /// the shards' owners (network workers) wait on it.
    pub notify: Option<Box<dyn Fn() + Send>>,
    /// Where the ingest figures are published, once a second.
    pub registry: Option<Arc<Registry>>,
}

/// [`run`] with [`Hooks`].
pub fn run_with(
    config: &IngestConfig,
    links: Links,
    queues: Vec<crossbeam_channel::Sender<ShardMsg>>,
    recovered: Recovered,
    stop: &AtomicBool,
    hooks: Hooks,
) -> io::Result<IngestStats> {
    let mut router = Router::new(queues, links, config.owners_max);
    if let Some(notify) = hooks.notify {
        router.set_notify(notify);
    }
    for (shard, owners) in recovered.owners.iter().enumerate() {
        router.learn_owners(u32::try_from(shard).expect("shard count fits u32"), owners);
    }
    let checkpoint = recovered.checkpoint;
    if let Some((id, _)) = checkpoint {
        router.resume_checkpoints_after(id);
    }
    let watcher = Watcher::new(&config.lease_file)?;
    let mut source = KeaSource::new(&config.lease_file, config.line_max, config.lines_per_poll);
    match source.start(&mut router, checkpoint.map(|(_, p)| p), server_now())? {
        Start::Resumed(at) => {
            tracing::info!(line = at.line, offset = at.offset, "resumed Kea lease file")
        }
        Start::Snapshot { rows } => tracing::info!(rows, "loaded Kea lease snapshot"),
    }
    router.notify();
    let mut published = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) {
        let rows = source.poll(&mut router, server_now())?;
        router.notify();
        if let (Some(registry), true) = (&hooks.registry, published.elapsed().as_secs() >= 1) {
            published = std::time::Instant::now();
            publish(registry, router.stats(), &source, &config.lease_file);
        }
        if rows == 0 {
            watcher.wait(config.idle_wait);
        }
    }
    Ok(router.stats().clone())
}

/// Apply up to `max` queued messages to `shard` at server time `now`; returns how many
/// were taken and whether the queue is closed (the ingest thread ended).
pub fn drain(
    shard: &mut Shard,
    queue: &Receiver<ShardMsg>,
    now: u32,
    max: usize,
    stamps: Option<&Stamps>,
) -> (usize, bool) {
    for taken in 0..max {
        match queue.try_recv() {
            Ok(msg) => {
                // The read time goes in before the record can be seen: another worker may
                // send it the moment it is committed. Nothing written: no time (0).
                let next = shard.next_sequence();
                let stamp = match (&msg, stamps) {
                    (ShardMsg::Change(change), Some(stamps)) => Some((stamps, change.read_ns)),
                    _ => None,
                };
                if let Some((stamps, read_ns)) = stamp {
                    stamps.put(next, read_ns);
                }
                let applied = apply(shard, &msg, now);
                if let Some((stamps, read_ns)) = stamp {
                    let after = shard.next_sequence();
                    if after > next + 1 {
                        // Compaction carried records first: the change's is the last one.
                        stamps.put(after - 1, read_ns);
                    }
                    if after != next + 1 {
                        stamps.put(next, 0);
                    }
                }
                if let Err(refused) = applied {
                    // Counted and logged by the shard; the message is not retried.
                    tracing::debug!(reason = refused.reason(), "queued change refused");
                }
            }
            Err(TryRecvError::Empty) => return (taken, false),
            Err(TryRecvError::Disconnected) => return (taken, true),
        }
    }
    (max, false)
}

/// A shard and the queue of changes the ingest thread routes to it, owned by the thread
/// that applies them: a network worker (architecture.md, "Threads": worker i owns shard i)
/// or, in tests, a consumer thread of its own ([`consume`]).
pub struct Owned {
    /// The shard.
    pub shard: Shard,
    queue: Receiver<ShardMsg>,
    /// Where the read times of the records it writes go (the latency histogram).
    stamps: Option<(Arc<Registry>, usize)>,
    last_tick: u32,
    closed: bool,
}

/// Changes applied per [`Owned::step`], so one step never holds a worker long.
pub const APPLY_PER_STEP: usize = 1024;

impl Owned {
    /// Own `shard` and its queue.
    pub const fn new(shard: Shard, queue: Receiver<ShardMsg>) -> Self {
        Self {
            shard,
            queue,
            stamps: None,
            last_tick: 0,
            closed: false,
        }
    }

    /// Publish the ingest read time of each record written to shard `index` of `registry`.
    pub fn stamp_into(&mut self, registry: Arc<Registry>, index: usize) {
        assert!(index < registry.stamps.len());
        self.stamps = Some((registry, index));
    }

    /// One step at server time `now`: apply up to [`APPLY_PER_STEP`] queued changes, end
    /// leases that expired, and once a second age out history. Returns how many records
    /// were written (changes and expiries): when non-zero, Active streams have news.
    pub fn step(&mut self, now: u32) -> usize {
        let stamps = self.stamps.as_ref().map(|(r, i)| &r.stamps[*i]);
        let (taken, closed) = drain(&mut self.shard, &self.queue, now, APPLY_PER_STEP, stamps);
        self.closed |= closed;
        let expired = self.shard.expire_due(now, APPLY_PER_STEP);
        if now != self.last_tick {
            self.last_tick = now;
            if let Err(refused) = self.shard.tick(now) {
                tracing::warn!(
                    reason = refused.reason(),
                    "retention tick failed: {refused}"
                );
            }
        }
        taken + expired
    }

    /// True once the ingest thread has ended and everything it queued was applied.
    pub const fn closed(&self) -> bool {
        self.closed
    }

    /// Wait up to `timeout` for a queued change (a consumer thread with nothing to do).
    fn wait(&self, timeout: Duration) {
        // Readiness only: the change stays queued for the next step.
        let mut select = crossbeam_channel::Select::new();
        select.recv(&self.queue);
        let _ = select.ready_timeout(timeout);
    }
}

/// A shard consumer on its own thread (tests, and embedding without network workers):
/// apply, expire, age out history, until the queue closes — which happens when the ingest
/// thread ends, so nothing it sent is lost. Returns the shard.
pub fn consume(shard: Shard, queue: Receiver<ShardMsg>) -> Shard {
    let mut owned = Owned::new(shard, queue);
    loop {
        let written = owned.step(server_now());
        if owned.closed() {
            return owned.shard;
        }
        if written == 0 {
            // Nothing queued: block briefly for the next message instead of spinning.
            owned.wait(Duration::from_millis(50));
        }
    }
}

/// Copy the ingest figures into the registry (once a second, off every hot path).
fn publish(registry: &Registry, stats: &IngestStats, source: &KeaSource, file: &std::path::Path) {
    let gauges = &registry.ingest;
    gauges.rows.store(stats.rows, Ordering::Relaxed);
    let mut rejected: Vec<(&'static str, u64)> =
        stats.rejected.iter().map(|(r, n)| (*r, *n)).collect();
    rejected.sort_unstable();
    *gauges
        .rejected
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = rejected;
    if let Ok(Some(position)) = source.position() {
        gauges.offset.store(position.offset, Ordering::Relaxed);
    }
    if let Ok(meta) = std::fs::metadata(file) {
        gauges.file_len.store(meta.len(), Ordering::Relaxed);
    }
}
