//! Binding sources. The first is ISC Kea's memfile lease6 journal (kea.md).
//!
//! ```text
//!  lease file ──Tailer──► lines ──Router──► parse, relay, link ──► bounded queue per shard
//!   (inotify wake-ups,      (header         (one row = one lease)     (back-pressure: the
//!    rotation by inode)      re-mapped)                                 tailer waits)
//! ```
//!
//! - [`csv`]: header and row syntax, escaping; [`relay`]: relay info from `user_context`;
//!   [`links`]: subnet_id → link prefix from Kea's configuration; [`row`]: a row as a
//!   change; [`tailer`]: following the file across rotations; [`Router`]: routing to shards.
//! - Bad rows are counted by reason and logged at most once per reason per minute with the
//!   file and line number, then skipped; the tailer goes on (kea.md §4, §5).
//! - The ingest position travels to every shard as a checkpoint after each batch; a shard
//!   stores it in its log, so a restart resumes exactly where the records end.
//! - An address that moves to another client (Kea's table is keyed by address, last row
//!   wins) is ended for its previous holder, on whichever shard that holder lives.

pub mod csv;
pub mod links;
pub mod pipeline;
pub mod relay;
pub mod row;
pub mod source;
pub mod tailer;
pub mod watch;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::store::model::RelayInfo;
use crate::store::table::MixHasher;
use crate::store::{shard_of, Applied, Refused, Shard};
use crate::wire::client_data::LeaseKind;
use csv::{parse_row, unescape, Header};
use links::Links;
use row::{row_change, Change, RowChange};
use tailer::Position;

/// Longest unescaped `user_context` lqd reads.
pub const USER_CONTEXT_LEN_MAX: usize = 16 * 1024;

/// What the ingest thread sends a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// A client's lease changed.
    Change(Box<Change>),
    /// End `kind` for the client with this hash (the address moved on, or was declined).
    End {
        /// Client key hash of the previous holder.
        client: u64,
        /// The address or prefix.
        kind: LeaseKind,
    },
    /// After a rebuild from Kea's snapshot: end every live lease not in this set
    /// (resource → owner's client hash).
    Sweep(std::sync::Arc<HashMap<LeaseKind, u64>>),
    /// Everything before this position has been sent.
    Checkpoint {
        /// Monotonic checkpoint id.
        id: u64,
        /// The encoded [`Position`].
        position: [u8; Position::LEN],
    },
}

/// Apply one message to a shard at server time `now` (the shard's side of the queue).
/// Returns the records written.
pub fn apply(shard: &mut Shard, msg: &ShardMsg, now: u32) -> Result<usize, Refused> {
    let written = |applied: Applied| usize::from(applied != Applied::Unchanged);
    match msg {
        ShardMsg::Change(change) => shard.apply(&change.update(), now).map(written),
        ShardMsg::End { client, kind } => shard.end_lease(*client, kind, now).map(written),
        ShardMsg::Sweep(keep) => {
            Ok(shard.sweep(&|client, kind| keep.get(kind) == Some(&client), now))
        }
        ShardMsg::Checkpoint { id, position } => shard.checkpoint(*id, position, now).map(|_| 1),
    }
}

/// Counters of the ingest thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Rows parsed and routed.
    pub rows: u64,
    /// Rows rejected, by reason.
    pub rejected: HashMap<&'static str, u64>,
    /// Rows whose subnet the configuration does not name (stored with the link unknown).
    pub unknown_subnet: u64,
    /// Leases ended for a previous holder.
    pub moved: u64,
    /// Checkpoints sent.
    pub checkpoints: u64,
}

impl IngestStats {
    /// Rejected rows in total.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Routes rows to shards.
pub struct Router {
    shards: Vec<Sender<ShardMsg>>,
    links: Links,
    /// Who holds each address/prefix: (shard, client hash). Bounded by `owners_max`.
    owners: HashMap<LeaseKind, (u32, u64), BuildHasherDefault<MixHasher>>,
    owners_max: usize,
    stats: IngestStats,
    last_logged: HashMap<&'static str, Instant>,
    next_checkpoint: u64,
    user_context: Box<[u8]>,
    /// The last escaped user_context parsed, and what it gave.
    last_context: String,
    last_relay: Option<Arc<RelayInfo>>,
    /// Wakes the threads that own the shards (the network workers' doorbells).
    notify: Option<Box<dyn Fn() + Send>>,
    /// Messages were queued since the last [`Router::notify`].
    queued: std::cell::Cell<bool>,
}

/// How often one rejection reason is logged.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Router {
    /// A router to `shards` (index = shard number) with the link map and the capacity of
    /// the address-owner map (the total of address and prefix capacities).
    pub fn new(shards: Vec<Sender<ShardMsg>>, links: Links, owners_max: usize) -> Self {
        assert!(!shards.is_empty());
        Self {
            shards,
            links,
            owners: HashMap::with_capacity_and_hasher(
                owners_max.min(1 << 24),
                BuildHasherDefault::default(),
            ),
            owners_max,
            stats: IngestStats::default(),
            last_logged: HashMap::new(),
            next_checkpoint: 1,
            user_context: vec![0; USER_CONTEXT_LEN_MAX].into_boxed_slice(),
            last_context: String::with_capacity(USER_CONTEXT_LEN_MAX),
            last_relay: None,
            notify: None,
            queued: std::cell::Cell::new(false),
        }
    }

    /// Capacity of the address-owner map: the most leases the store can index.
    pub const fn owners_max(&self) -> usize {
        self.owners_max
    }

    /// Counters.
    pub const fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Count and (rate-limited) log a rejected line.
    pub fn reject(
        &mut self,
        reason: &'static str,
        file: &std::path::Path,
        line: u64,
        detail: &str,
    ) {
        *self.stats.rejected.entry(reason).or_default() += 1;
        let now = Instant::now();
        let due = self
            .last_logged
            .get(reason)
            .is_none_or(|t| now.duration_since(*t) >= LOG_INTERVAL);
        if due {
            self.last_logged.insert(reason, now);
            tracing::warn!(file = %file.display(), line, reason, "lease row skipped: {detail}");
        }
    }

    /// Parse and route one row read at server time `now`. Blocks while the shard's queue is
    /// full (back-pressure).
    pub fn row(
        &mut self,
        text: &str,
        header: &Header,
        file: &std::path::Path,
        line: u64,
        now: u32,
    ) {
        let row = match parse_row(header, text) {
            Ok(row) => row,
            Err(e) => return self.reject(e.reason(), file, line, &e.to_string()),
        };
        let relay = match self.relay_of(row.user_context) {
            Ok(relay) => relay,
            Err((reason, detail)) => return self.reject(reason, file, line, &detail),
        };
        let link_prefix = self.links.get(row.subnet_id);
        if link_prefix.is_none() {
            self.stats.unknown_subnet += 1;
        }
        match row_change(&row, relay, link_prefix, now) {
            RowChange::Lease(change) => self.route(change, file, line),
            RowChange::Declined(kind) => {
                if let Some((shard, client)) = self.owners.remove(&kind) {
                    self.send(shard, ShardMsg::End { client, kind });
                }
                self.stats.rows += 1;
            }
        }
    }

    /// The relay information of an escaped `user_context`. Rows of one client, and of
    /// clients behind one relay, often repeat the same context: the last one is cached and
    /// shared, so the JSON is parsed once per distinct context.
    fn relay_of(
        &mut self,
        context: &str,
    ) -> Result<Option<Arc<RelayInfo>>, (&'static str, String)> {
        if context.is_empty() {
            return Ok(None);
        }
        if context == self.last_context {
            return Ok(self.last_relay.clone());
        }
        let n =
            unescape(context, &mut self.user_context).map_err(|e| (e.reason(), e.to_string()))?;
        let info = relay::parse_user_context(&self.user_context[..n])
            .map_err(|e| (e.reason(), format!("{e:?}")))?;
        let relay = info.is_some().then(|| Arc::new(info));
        self.last_context.clear();
        self.last_context.push_str(context);
        self.last_relay.clone_from(&relay);
        Ok(relay)
    }

    fn route(&mut self, change: Box<Change>, file: &std::path::Path, line: u64) {
        let shard = shard_of(change.duid.as_slice(), self.shard_count());
        let client = Shard::client_hash(change.duid.as_slice(), change.link);
        let kind = change.lease.kind;
        let ending = change.lease.ended_at != 0;
        match self.owners.get(&kind).copied() {
            Some((old_shard, old_client)) if old_client != client => {
                self.send(
                    old_shard,
                    ShardMsg::End {
                        client: old_client,
                        kind,
                    },
                );
                self.stats.moved += 1;
            }
            None if !ending && self.owners.len() >= self.owners_max => {
                return self.reject("owners_full", file, line, "address-owner map is full");
            }
            _ => {}
        }
        if ending {
            self.owners.remove(&kind);
        } else {
            self.owners.insert(kind, (shard, client));
        }
        let mut change = change;
        change.read_ns = crate::metrics::now_ns();
        self.send(shard, ShardMsg::Change(change));
        self.stats.rows += 1;
    }

    fn shard_count(&self) -> u32 {
        u32::try_from(self.shards.len()).expect("shard count fits u32")
    }

    fn send(&self, shard: u32, msg: ShardMsg) {
        let queue = &self.shards[shard as usize];
        let sent = match queue.try_send(msg) {
            Err(crossbeam_channel::TrySendError::Full(msg)) => {
                // Back-pressure: wake the owners so they drain, then wait for room.
                self.wake();
                queue.send(msg).map_err(|_| ())
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(()),
            Ok(()) => Ok(()),
        };
        match sent {
            Ok(()) => self.queued.set(true),
            // A closed queue means the shard's owner is gone: the daemon is shutting down.
            Err(()) => tracing::debug!(
                shard,
                "shard queue closed; change not delivered during shutdown"
            ),
        }
    }

    /// Wake the shards' owners with `notify` whenever changes were queued (see
    /// [`Router::notify`]).
    pub fn set_notify(&mut self, notify: Box<dyn Fn() + Send>) {
        self.notify = Some(notify);
    }

    /// After a batch of rows: wake the shards' owners if anything was queued for them.
    pub fn notify(&self) {
        if self.queued.replace(false) {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(notify) = &self.notify {
            notify();
        }
    }

    /// Tell every shard that everything before `position` has been sent.
    pub fn checkpoint(&mut self, position: Position) {
        let id = self.next_checkpoint;
        self.next_checkpoint += 1;
        let bytes = position.to_bytes();
        for shard in 0..self.shard_count() {
            self.send(
                shard,
                ShardMsg::Checkpoint {
                    id,
                    position: bytes,
                },
            );
        }
        self.stats.checkpoints += 1;
    }

    /// Learn who holds each lease on `shard` (at start-up, from the recovered store).
    pub fn learn_owners(&mut self, shard: u32, leases: &[(LeaseKind, u64)]) {
        assert!(shard < self.shard_count());
        for &(kind, client) in leases {
            if self.owners.len() < self.owners_max || self.owners.contains_key(&kind) {
                self.owners.insert(kind, (shard, client));
            }
        }
    }

    /// Send the snapshot's lease set to every shard, which ends every other live lease.
    pub fn sweep(&mut self, live: HashMap<LeaseKind, u64>) {
        let live = std::sync::Arc::new(live);
        for shard in 0..self.shard_count() {
            self.send(shard, ShardMsg::Sweep(std::sync::Arc::clone(&live)));
        }
    }

    /// Continue checkpoint ids after `id` (the one recovered from the store).
    pub fn resume_checkpoints_after(&mut self, id: u64) {
        self.next_checkpoint = id + 1;
    }
}
