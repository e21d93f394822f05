//! Observability (architecture.md, "Observability"): counters every worker keeps in
//! atomics of its own, per-worker latency histograms merged at scrape time, ingest and
//! store gauges, rendered in the Prometheus text format by [`http`] on `GET /metrics`.
//!
//! Nothing here takes a lock on a worker's hot path: a worker adds to its own relaxed
//! atomics (one writer, so no contention), records latencies into a histogram only it
//! touches, and once a second *tries* to fold that histogram into the published one; when
//! a scrape holds the published one, the fold waits for the next second.

pub mod http;
pub mod render;
pub mod stamps;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::server::connection::CloseReason;
use crate::wire::StatusCode;

pub use stamps::Stamps;

/// Monotonic nanoseconds since the first call in this process (the latency clock).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A histogram of latencies in nanoseconds, 1 µs to 100 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3).expect("static bounds are valid")
}

/// Query types in the `type` label: 1–5 (RFC 5007, RFC 5460), `all` (an Active query
/// without LQ_QUERY) and `unparsed` (refused before its type was known).
pub const QUERY_TYPES: [&str; 7] = [
    "unparsed",
    "address",
    "client_id",
    "relay_id",
    "link_address",
    "remote_id",
    "all",
];

/// Outcomes in the `outcome` label: `accepted`, or the status code of the refusal.
pub const OUTCOMES: usize = 16;

/// Kinds in the `kind` label.
pub const QUERY_KINDS: [&str; 2] = ["bulk", "active"];

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not on the allow-list (S-9).
    NotAllowed = 0,
    /// Over the global cap (S-8).
    OverCap = 1,
    /// Over the per-source cap.
    PerSource = 2,
}

/// Reasons in the `reason` label of refused connections.
pub const REFUSALS: [&str; 3] = ["not_allowed", "over_cap", "per_source"];

/// Reasons in the `reason` label of closed connections (protocol errors are counted by
/// their own reason as well, see [`Counters::protocol`]).
pub const CLOSES: [&str; 11] = [
    "protocol",
    "refused",
    "tls_refused",
    "query_timeout",
    "peer_closed",
    "query_terminated",
    "query_limit",
    "send_timeout",
    "send_failed",
    "shutdown",
    "idle_at_cap",
];

fn close_index(reason: CloseReason) -> usize {
    match reason {
        CloseReason::Protocol(_) => 0,
        CloseReason::Refused(_) => 1,
        CloseReason::TlsRefused => 2,
        CloseReason::QueryTimeout => 3,
        CloseReason::PeerClosed => 4,
        CloseReason::QueryTerminated => 5,
        CloseReason::QueryLimit => 6,
        CloseReason::SendTimeout => 7,
        CloseReason::SendFailed => 8,
        CloseReason::Shutdown => 9,
        CloseReason::IdleAtCap => 10,
    }
}

/// Protocol-error reasons counted separately (the codec's [`crate::wire::Error::reason`]
/// names, a fixed set); more distinct names than this are counted as `other`.
const PROTOCOL_REASONS_MAX: usize = 32;

/// One worker's counters. Only that worker writes them.
#[derive(Debug)]
pub struct Counters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused at accept, by [`Refusal`].
    pub refused: [AtomicU64; 3],
    /// Connections closed, by [`CLOSES`].
    pub closed: [AtomicU64; 11],
    /// Connections closed for a protocol error, by its reason.
    protocol: Mutex<Vec<(&'static str, u64)>>,
    /// Connections open on this worker.
    pub open: AtomicI64,
    /// Queries by kind, type and outcome (0 = accepted, else the status code).
    pub queries: [[[AtomicU64; OUTCOMES]; 7]; 2],
    /// Frames sent (every message).
    pub frames: AtomicU64,
    /// Octets handed to the kernel.
    pub bytes: AtomicU64,
    /// `sendmsg` operations with shared bodies.
    pub batches: AtomicU64,
    /// Plain `send` operations (own octets only, or the rest of a batch).
    pub sends: AtomicU64,
    /// Batches the socket did not take whole (copied to the connection's buffer).
    pub spills: AtomicU64,
    /// `io_uring_enter` calls: the worker's system calls on the serving path.
    pub enters: AtomicU64,
    /// Bodies built into the shared arena.
    pub bodies_built: AtomicU64,
    /// Bodies found already built (each one a copy saved).
    pub bodies_shared: AtomicU64,
    /// Bodies copied per connection because the arena was full.
    pub bodies_copied: AtomicU64,
    /// Cursor steps taken from another connection instead of reading the log.
    pub steps_shared: AtomicU64,
    /// Bulk queries answered from the shards' indexes, and by scanning the logs.
    pub bulk_indexed: AtomicU64,
    /// See `bulk_indexed`.
    pub bulk_scanned: AtomicU64,
    /// Catch-ups that completed (S-53).
    pub catch_up_complete: AtomicU64,
    /// DataMissing sent (S-54, S-55).
    pub data_missing: AtomicU64,
    /// Changes applied to the shards this worker owns.
    pub applied: AtomicU64,
    /// Connections evicted: send timeout (S-61, S-62).
    pub evicted_send: AtomicU64,
    /// Connections closed while idle to make room at the cap (S-11).
    pub evicted_idle: AtomicU64,
    /// Latency from reading a Kea row to queuing the first send of its change, merged
    /// from the worker's own histogram once a second.
    pub latency: Mutex<Histogram<u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            refused: Default::default(),
            closed: Default::default(),
            protocol: Mutex::new(Vec::with_capacity(PROTOCOL_REASONS_MAX)),
            open: AtomicI64::new(0),
            queries: Default::default(),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            sends: AtomicU64::new(0),
            spills: AtomicU64::new(0),
            enters: AtomicU64::new(0),
            bodies_built: AtomicU64::new(0),
            bodies_shared: AtomicU64::new(0),
            bodies_copied: AtomicU64::new(0),
            steps_shared: AtomicU64::new(0),
            bulk_indexed: AtomicU64::new(0),
            bulk_scanned: AtomicU64::new(0),
            catch_up_complete: AtomicU64::new(0),
            data_missing: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            evicted_send: AtomicU64::new(0),
            evicted_idle: AtomicU64::new(0),
            latency: Mutex::new(latency_histogram()),
        }
    }
}

/// Add `n` to a counter only this thread writes.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// A query of `kind` (0 bulk, 1 active) and type index (see [`QUERY_TYPES`]) was
    /// accepted (`None`) or refused with `status`.
    pub fn query(&self, active: bool, query_type: usize, status: Option<StatusCode>) {
        let outcome = status.map_or(0, |s| usize::from(s.code()).min(OUTCOMES - 1));
        add(
            &self.queries[usize::from(active)][query_type.min(6)][outcome],
            1,
        );
    }

    /// A connection closed for `reason`.
    pub fn close(&self, reason: CloseReason) {
        add(&self.closed[close_index(reason)], 1);
        if let CloseReason::Protocol(why) = reason {
            // Rare (a broken requestor), never per record: a short lock is fine here.
            let mut reasons = self
                .protocol
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let name = if reasons.len() < PROTOCOL_REASONS_MAX - 1 {
                why
            } else {
                "other"
            };
            match reasons.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => reasons.push((name, 1)),
            }
        }
    }

    /// Protocol-error closes by reason.
    pub fn protocol(&self) -> Vec<(&'static str, u64)> {
        self.protocol
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fold a worker's own histogram into the published one, unless a scrape holds it;
    /// true when folded (the caller then resets its own).
    pub fn publish_latency(&self, local: &Histogram<u64>) -> bool {
        let Ok(mut published) = self.latency.try_lock() else {
            return false;
        };
        // Same bounds: adding never reallocates.
        published.add(local).is_ok()
    }
}

/// Ingest figures, published by the ingest thread after each batch of rows.
#[derive(Debug, Default)]
pub struct IngestGauges {
    /// Rows parsed and routed.
    pub rows: AtomicU64,
    /// Rows rejected, by reason (the ingest thread's own map, copied; not a hot path).
    pub rejected: Mutex<Vec<(&'static str, u64)>>,
    /// Octets of the lease file read.
    pub offset: AtomicU64,
    /// Octets in the lease file when last looked at.
    pub file_len: AtomicU64,
}

/// Everything a scrape shows.
pub struct Registry {
    /// One per worker.
    pub workers: Vec<Counters>,
    /// The ingest thread's figures.
    pub ingest: IngestGauges,
    /// Every shard's log, for sizes and horizons.
    pub readers: Vec<crate::store::LogReader>,
    /// Ingest timestamps of recent records, per shard (for the latency histogram).
    pub stamps: Vec<Stamps>,
}

impl Registry {
    /// A registry for `workers` workers over `readers`.
    pub fn new(workers: usize, readers: Vec<crate::store::LogReader>) -> Self {
        let stamps = readers
            .iter()
            .map(|_| Stamps::new(stamps::STAMPS))
            .collect();
        Self {
            workers: (0..workers).map(|_| Counters::default()).collect(),
            ingest: IngestGauges::default(),
            readers,
            stamps,
        }
    }
}

/// A worker's latency recorder: when a worker first builds the body of a record, the time
/// since the ingest thread read its row (from the shard's [`Stamps`]) goes into the
/// worker's own histogram, which [`Sampler::publish`] folds into the registry once a second.
pub struct Sampler {
    registry: std::sync::Arc<Registry>,
    worker: usize,
    local: Histogram<u64>,
}

impl Sampler {
    /// The recorder of worker `worker`.
    pub fn new(registry: std::sync::Arc<Registry>, worker: usize) -> Self {
        assert!(worker < registry.workers.len());
        Self {
            registry,
            worker,
            local: latency_histogram(),
        }
    }

    /// Record the latency of the record `sequence` of `shard`, if its read time is known.
    pub fn sample(&mut self, shard: usize, sequence: u64) {
        let Some(stamps) = self.registry.stamps.get(shard) else {
            return;
        };
        // 0: the change wrote no record under this sequence (the stamp was withdrawn).
        if let Some(read_ns) = stamps.get(sequence).filter(|&ns| ns != 0) {
            let latency = now_ns().saturating_sub(read_ns).max(1_000);
            // Beyond the bounds (100 s) is saturated rather than lost.
            self.local.saturating_record(latency);
        }
    }

    /// Fold the samples into the published histogram (unless a scrape holds it right now).
    pub fn publish(&mut self) {
        if self.local.is_empty() {
            return;
        }
        if self.registry.workers[self.worker].publish_latency(&self.local) {
            self.local.reset();
        }
    }
}
