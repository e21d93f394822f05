//! A shard: its table and its change log, owned by one worker.
//!
//! Applying a lease change (one Kea row) reads the client's latest record from the log,
//! decodes it into a [`Binding`] on the stack, applies the change, and appends the client's
//! whole new state as one record (architecture.md, "Data": the change is the client's whole
//! current state). Nothing is allocated: the binding lives on the stack, the record is
//! encoded straight into the mapped segment.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::Ipv6Addr;

use super::cursor::{Cursor, Mode, Next};
use super::log::{AppendError, LogConfig, LogReader, LogWriter, RecordRef, Recovered};
use super::model::{time_at_or_after, Binding, Lease, Prefix, RelayInfo, INFINITE};
use super::record::{
    client_key, decode_change, decode_checkpoint, encode_change, encode_checkpoint, key_hash,
    low64, ChangeOut, ChangeView, KIND_CHANGE, KIND_CHECKPOINT,
};
use super::table::{Full, Keys, List, ShardTable, SlotId, TableLimits};
use crate::wire::client_data::LeaseKind;

/// Settings of one shard.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// The change log.
    pub log: LogConfig,
    /// Table capacities.
    pub table: TableLimits,
}

/// One lease change, as the ingest layer hands it over (one Kea row).
#[derive(Clone, Copy, Debug)]
pub struct LeaseUpdate<'a> {
    /// The client's DUID.
    pub duid: &'a [u8],
    /// The client's link (Kea subnet id; 0 unknown).
    pub link: u32,
    /// The link's prefix, when known.
    pub link_prefix: Option<Prefix>,
    /// The lease; `ended_at != 0` ends it (valid lifetime 0 in the journal).
    pub lease: Lease,
    /// Client last transaction time.
    pub cltt: u32,
    /// Relay information from the row.
    pub relay: &'a RelayInfo,
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The client's state changed; its new record is at this offset.
    Changed(u64),
    /// Nothing changed (a repeated row, or the end of a lease the shard never knew).
    Unchanged,
}

/// Why a change was refused. Every refusal is counted and logged; nothing is dropped
/// silently.
#[derive(Debug)]
pub enum Refused {
    /// A capacity from the configuration is reached.
    Full(Full),
    /// The binding cannot take the change (too many leases, DUID length).
    Binding(super::model::BindingError),
    /// Two DUIDs share a 64-bit client hash (never seen; handled, not assumed away).
    HashCollision,
    /// The log cannot take the record.
    Log(AppendError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(full) => write!(f, "{} capacity {} reached", full.index, full.max),
            Self::Binding(e) => write!(f, "binding refused the change: {e:?}"),
            Self::HashCollision => f.write_str("client hash collision"),
            Self::Log(e) => write!(f, "{e}"),
        }
    }
}

impl Refused {
    /// Stable reason label for metrics.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Full(full) => full.index,
            Self::Binding(_) => "binding",
            Self::HashCollision => "hash_collision",
            Self::Log(AppendError::LogFull) => "log_full",
            Self::Log(AppendError::Io(_)) => "log_io",
        }
    }
}

/// Counters of one shard (plain integers: the owning worker is the only writer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Changes appended.
    pub changed: u64,
    /// Changes that changed nothing.
    pub unchanged: u64,
    /// Changes refused.
    pub refused: u64,
    /// Records carried forward by compaction.
    pub carried: u64,
    /// Clients dropped by retention.
    pub dropped: u64,
    /// Leases expired on lqd's clock.
    pub expired: u64,
    /// Expiry entries not queued because the expiry queue was full (Kea's reclaim row
    /// then reports the expiry).
    pub expiries_dropped: u64,
}

/// A checkpoint found at recovery: the ingest position stored with the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Monotonic id chosen by the ingest layer.
    pub id: u64,
    /// Opaque position bytes.
    pub bytes: Vec<u8>,
}

/// One shard.
pub struct Shard {
    table: ShardTable,
    log: LogWriter,
    stats: ShardStats,
    /// Ended leases are reported for this long, then pruned (the log's age retention).
    ended_keep_s: u32,
    /// Lease expiries on lqd's own clock (kea.md §7.3): (valid_until, client, resource),
    /// earliest first. Entries go stale when a lease is renewed or ended; they are checked
    /// against the client's latest record when due. Capacity: one entry per indexed
    /// address and prefix, allocated at start-up.
    expiries: BinaryHeap<Reverse<(u32, u64, ResourceKey)>>,
    expiries_max: usize,
    /// The latest change time used: change times never go backwards in the log, whatever
    /// the wall clock does (the time index and the horizon rely on it).
    time_floor: u32,
}

/// A lease resource as an ordered key: (address or prefix, prefix length, 1 for a prefix).
type ResourceKey = (u128, u8, u8);

fn resource_key(kind: &LeaseKind) -> ResourceKey {
    match *kind {
        LeaseKind::Address(a) => (u128::from(a), 128, 0),
        LeaseKind::Prefix(p, len) => (u128::from(p), len, 1),
    }
}

fn resource_kind(key: ResourceKey) -> LeaseKind {
    match key {
        (a, _, 0) => LeaseKind::Address(a.into()),
        (p, len, _) => LeaseKind::Prefix(p.into(), len),
    }
}

fn keys_of(b: &Binding) -> Keys {
    let hash = |bytes: &[u8]| if bytes.is_empty() { 0 } else { key_hash(bytes) };
    Keys {
        duid: key_hash(b.duid.as_slice()),
        link: b.link,
        relay: hash(b.relay.relay_id.as_slice()),
        remote: hash(b.relay.remote_id.as_slice()),
    }
}

/// The addresses and prefixes a binding is indexed under: its live leases at `at`.
fn indexed(b: &Binding, at: u32) -> impl Iterator<Item = LeaseKind> + '_ {
    b.leases()
        .iter()
        .filter(move |l| l.is_live(at))
        .map(|l| l.kind)
}

impl Shard {
    /// Open or create the shard, recovering its table from the log. Returns the latest
    /// checkpoint found and what recovery saw.
    pub fn open(
        config: ShardConfig,
        now: u32,
    ) -> io::Result<(Self, Option<Checkpoint>, Recovered)> {
        let mut table = ShardTable::new(config.table);
        let mut checkpoint = None;
        let mut failure = None;
        let retention = config.log.retention_age_s;
        // Change times continue from the log, not from a wall clock that may now be behind
        // it: a change stamped before the log's newest (or before the horizon) would sit
        // where no catch-up looks for it (found by tests/store_log.rs).
        let mut time_floor = now;
        let mut later = |t: u32| {
            if !time_at_or_after(time_floor, t) {
                time_floor = t;
            }
        };
        let (log, recovered) = LogWriter::open(config.log, now, &mut |record| {
            later(record.header.change_time);
            if failure.is_none() {
                failure = recover_record(&mut table, &mut checkpoint, record).err();
            }
        })?;
        later(log.reader().horizon());
        if let Some(error) = failure {
            return Err(error);
        }
        let expiries_max = config.table.addresses_max + config.table.prefixes_max;
        let mut shard = Self {
            table,
            log,
            stats: ShardStats::default(),
            ended_keep_s: retention,
            expiries: BinaryHeap::with_capacity(expiries_max),
            expiries_max,
            time_floor,
        };
        shard.rebuild_indexes()?;
        Ok((shard, checkpoint, recovered))
    }

    /// Second recovery pass: repair superseded flags and index live addresses and prefixes.
    fn rebuild_indexes(&mut self) -> io::Result<()> {
        let reader = self.log.reader();
        let mut cursor = Cursor::at_start(&reader, Mode::All);
        loop {
            let record = match cursor.next(&reader) {
                Next::Record(record) => record,
                Next::Again => continue,
                Next::Pending | Next::HorizonPassed => return Ok(()),
            };
            if record.header.kind != KIND_CHANGE {
                continue;
            }
            let slot = self
                .table
                .lookup(record.header.client_hash)
                .expect("recovered client");
            let latest = self.table.record(slot) == record.offset;
            if latest == record.superseded {
                if latest {
                    self.log.clear_superseded(record.offset);
                } else {
                    self.log.supersede(record.offset);
                }
            }
            if latest {
                let view = decode_change(record.payload, record.header.link)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let (new_addresses, new_prefixes) =
                    self.index_counts(None, &view.binding, record.header.change_time);
                self.table
                    .check(
                        Some(slot),
                        &keys_of(&view.binding),
                        new_addresses,
                        new_prefixes,
                    )
                    .map_err(capacity_error)?;
                self.claim(slot, &view.binding, record.header.change_time);
                self.schedule_expiries(slot, None, &view.binding, record.header.change_time);
            }
        }
    }

    /// The sequence number the next record will get (the last written is one less).
    pub fn next_sequence(&self) -> u64 {
        self.log.next_sequence()
    }

    /// A reader handle for cursors on other threads.
    pub fn reader(&self) -> LogReader {
        self.log.reader()
    }

    /// Counters.
    pub const fn stats(&self) -> ShardStats {
        self.stats
    }

    /// The table (queries).
    pub const fn table(&self) -> &ShardTable {
        &self.table
    }

    /// The change time for a change made at wall-clock server time `now`: never earlier
    /// than the previous one.
    fn stamp(&mut self, now: u32) -> u32 {
        if time_at_or_after(now, self.time_floor) {
            self.time_floor = now;
        }
        self.time_floor
    }

    /// Apply one lease change at server time `now` (the change time).
    pub fn apply(&mut self, update: &LeaseUpdate<'_>, now: u32) -> Result<Applied, Refused> {
        let now = self.stamp(now);
        let result = self.apply_inner(update, now);
        match &result {
            Ok(Applied::Changed(_)) => self.stats.changed += 1,
            Ok(Applied::Unchanged) => self.stats.unchanged += 1,
            Err(refused) => {
                self.stats.refused += 1;
                tracing::warn!(
                    reason = refused.reason(),
                    link = update.link,
                    "change refused: {refused}"
                );
            }
        }
        result
    }

    fn apply_inner(&mut self, update: &LeaseUpdate<'_>, now: u32) -> Result<Applied, Refused> {
        let client = low64(client_key(update.duid, update.link));
        let slot = self.table.lookup(client);
        let (old, old_time) = match slot {
            Some(slot) => {
                let (binding, time) = self.latest_binding(slot);
                if binding.duid.as_slice() != update.duid {
                    return Err(Refused::HashCollision);
                }
                (Some(binding), time)
            }
            None => (None, now),
        };
        let ending = update.lease.ended_at != 0;
        let known = old
            .as_ref()
            .is_some_and(|b| b.leases().iter().any(|l| l.kind == update.lease.kind));
        if ending && !known {
            return Ok(Applied::Unchanged);
        }
        let mut new = match &old {
            Some(b) => b.clone(),
            None => Binding::new(update.duid, update.link).map_err(Refused::Binding)?,
        };
        // Rows can arrive out of time order (kea-lfc writes its snapshot by address, and a
        // deletion row carries the lease's last contact, kea.md §7.1): the binding keeps the
        // latest contact, and the relay seen with it.
        let newer = old
            .as_ref()
            .is_none_or(|b| time_at_or_after(update.cltt, b.cltt));
        if newer {
            new.cltt = update.cltt;
            new.relay = *update.relay;
        }
        new.link_prefix = update.link_prefix;
        let lease = update.lease;
        let previous = new.leases().iter().find(|l| l.kind == lease.kind).copied();
        if let Some(previous) = previous {
            // An ended lease stays ended until a row makes it live again: Kea's reclaim and
            // flush rows after lqd expired it (kea.md §7.3), or a repeated deletion, only
            // confirm the end.
            if previous.ended_at != 0 && !lease.is_live(now) {
                if old.as_ref() == Some(&new) {
                    return Ok(Applied::Unchanged);
                }
                return self
                    .commit(slot, old.as_ref(), old_time, &new, now)
                    .map(Applied::Changed);
            }
        }
        new.upsert(lease).map_err(Refused::Binding)?;
        new.prune_ended(now.wrapping_sub(self.ended_keep_s));
        if old.as_ref() == Some(&new) {
            return Ok(Applied::Unchanged);
        }
        self.commit(slot, old.as_ref(), old_time, &new, now)
            .map(Applied::Changed)
    }

    /// The binding in a slot's latest record and that record's change time.
    fn latest_binding(&self, slot: SlotId) -> (Binding, u32) {
        self.log
            .read(self.table.record(slot), |record| {
                let view = decode_change(record.payload, record.header.link);
                (
                    view.expect("own record decodes").binding,
                    record.header.change_time,
                )
            })
            .expect("the table points at retained records")
    }

    fn index_counts(&self, old: Option<(&Binding, u32)>, new: &Binding, at: u32) -> (usize, usize) {
        let mut addresses = 0;
        let mut prefixes = 0;
        for kind in indexed(new, at) {
            let had = old.is_some_and(|(b, t)| indexed(b, t).any(|k| k == kind));
            if had {
                continue;
            }
            match kind {
                LeaseKind::Address(a) => {
                    addresses += usize::from(self.table.address_owner(u128::from(a)).is_none())
                }
                LeaseKind::Prefix(p, len) => {
                    prefixes += usize::from(self.table.prefix_owner(u128::from(p), len).is_none())
                }
            }
        }
        (addresses, prefixes)
    }

    fn commit(
        &mut self,
        slot: Option<SlotId>,
        old: Option<&Binding>,
        old_time: u32,
        new: &Binding,
        now: u32,
    ) -> Result<u64, Refused> {
        let keys = keys_of(new);
        let (addresses, prefixes) = self.index_counts(old.map(|b| (b, old_time)), new, now);
        self.table
            .check(slot, &keys, addresses, prefixes)
            .map_err(Refused::Full)?;
        let offset = self.append_change(new, now)?;
        let slot = match slot {
            Some(slot) => {
                self.log.supersede(self.table.record(slot));
                self.table.set_record(slot, offset);
                self.table.set_keys(slot, keys);
                slot
            }
            None => self.table.insert(
                low64(client_key(new.duid.as_slice(), new.link)),
                offset,
                keys,
            ),
        };
        // Index only the difference: a renewal touches no address or prefix entry.
        if let Some(old) = old {
            self.release_missing(slot, old, old_time, new, now);
        }
        self.claim_missing(slot, old.map(|b| (b, old_time)), new, now);
        self.schedule_expiries(slot, old, new, now);
        Ok(offset)
    }

    /// Release what `old` had indexed and `new` does not.
    fn release_missing(
        &mut self,
        slot: SlotId,
        old: &Binding,
        old_at: u32,
        new: &Binding,
        at: u32,
    ) {
        for kind in indexed(old, old_at) {
            if !indexed(new, at).any(|k| k == kind) {
                match kind {
                    LeaseKind::Address(a) => self.table.release_address(u128::from(a), slot),
                    LeaseKind::Prefix(p, len) => {
                        self.table.release_prefix(u128::from(p), len, slot)
                    }
                }
            }
        }
    }

    /// Claim what `new` indexes and `old` did not.
    fn claim_missing(
        &mut self,
        slot: SlotId,
        old: Option<(&Binding, u32)>,
        new: &Binding,
        at: u32,
    ) {
        for kind in indexed(new, at) {
            if old.is_some_and(|(b, t)| indexed(b, t).any(|k| k == kind)) {
                continue;
            }
            match kind {
                LeaseKind::Address(a) => {
                    self.table.claim_address(u128::from(a), slot);
                }
                LeaseKind::Prefix(p, len) => {
                    self.table.claim_prefix(u128::from(p), len, slot);
                }
            }
        }
    }

    fn append_change(&mut self, binding: &Binding, now: u32) -> Result<u64, Refused> {
        let table = &mut self.table;
        let stats = &mut self.stats;
        let mut encode = |area: &mut [u8], sequence: u64| {
            let change = ChangeOut {
                sequence,
                change_time: now,
                carried: false,
                binding,
            };
            encode_change(area, &change).expect("a binding fits RECORD_LEN_MAX")
        };
        self.log
            .append(&mut encode, &mut |client, moved| {
                relocate(table, stats, client, moved)
            })
            .map_err(Refused::Log)
    }

    /// Queue the expiry of every live lease of `new` that `old` did not already have with
    /// the same valid-until time (one entry per lease and lifetime, not per change).
    fn schedule_expiries(&mut self, slot: SlotId, old: Option<&Binding>, new: &Binding, at: u32) {
        let client = self.table.client(slot);
        for lease in new
            .leases()
            .iter()
            .filter(|l| l.is_live(at) && l.valid_until != INFINITE)
        {
            let queued = old.is_some_and(|b| {
                b.leases().iter().any(|o| {
                    o.kind == lease.kind && o.valid_until == lease.valid_until && o.ended_at == 0
                })
            });
            if queued {
                continue;
            }
            if self.expiries.len() == self.expiries_max {
                self.compact_expiries();
            }
            if self.expiries.len() < self.expiries_max {
                let key = resource_key(&lease.kind);
                self.expiries
                    .push(Reverse((lease.valid_until, client, key)));
            } else {
                self.stats.expiries_dropped += 1;
            }
        }
    }

    /// Drop expiry entries that no longer match a live lease (renewed or ended since), in
    /// place: the heap keeps its allocation. Rare: only when the queue is full.
    fn compact_expiries(&mut self) {
        let mut entries = std::mem::take(&mut self.expiries).into_vec();
        entries.retain(|&Reverse((until, client, key))| {
            self.lease_valid_until(client, &resource_kind(key)) == Some(until)
        });
        self.expiries = BinaryHeap::from(entries);
    }

    fn claim(&mut self, slot: SlotId, binding: &Binding, at: u32) {
        for kind in indexed(binding, at) {
            match kind {
                LeaseKind::Address(a) => {
                    self.table.claim_address(u128::from(a), slot);
                }
                LeaseKind::Prefix(p, len) => {
                    self.table.claim_prefix(u128::from(p), len, slot);
                }
            }
        }
    }

    /// Expire, on lqd's own clock, up to `max` leases whose valid lifetime ran out at or
    /// before `now` (kea.md §7.3: Kea writes nothing until its reclaim timer fires). Each
    /// becomes a change with zero lifetimes (D-4). Returns the leases expired.
    pub fn expire_due(&mut self, now: u32, max: usize) -> usize {
        let now = self.stamp(now);
        let mut expired = 0;
        let mut checked = 0;
        while checked < max {
            let Some(&Reverse((until, client, key))) = self.expiries.peek() else {
                break;
            };
            if !time_at_or_after(now, until) {
                break;
            }
            self.expiries.pop();
            checked += 1;
            let kind = resource_kind(key);
            if self.lease_valid_until(client, &kind) == Some(until) {
                if let Ok(Applied::Changed(_)) = self.end_lease(client, &kind, now) {
                    expired += 1;
                    self.stats.expired += 1;
                }
            }
        }
        expired
    }

    /// The valid-until time of a client's live lease on `kind`.
    fn lease_valid_until(&self, client: u64, kind: &LeaseKind) -> Option<u32> {
        let slot = self.table.lookup(client)?;
        let (binding, _) = self.latest_binding(slot);
        let lease = binding
            .leases()
            .iter()
            .find(|l| l.kind == *kind && l.ended_at == 0)?;
        Some(lease.valid_until)
    }

    /// End every live lease that `keep` does not name (after a rebuild from Kea's snapshot:
    /// leases deleted while lqd was down, kea.md §8.5 item 6). `keep` gets the client hash
    /// and the resource. Returns the leases ended.
    pub fn sweep(&mut self, keep: &dyn Fn(u64, &LeaseKind) -> bool, now: u32) -> usize {
        let slots: Vec<SlotId> = self.table.slots().collect();
        let mut ended = 0;
        for slot in slots {
            let client = self.table.client(slot);
            let (binding, _) = self.latest_binding(slot);
            for lease in binding
                .leases()
                .iter()
                .filter(|l| l.ended_at == 0 && l.state.can_be_active())
            {
                if keep(client, &lease.kind) {
                    continue;
                }
                if let Ok(Applied::Changed(_)) = self.end_lease(client, &lease.kind, now) {
                    ended += 1;
                }
            }
        }
        ended
    }

    /// End the lease on `kind` of the client with hash `client`, if it holds it live: the
    /// address moved to another client or was declined (kea.md §7.1), or it expired on
    /// lqd's clock. The change is reported with zero lifetimes (D-4).
    pub fn end_lease(
        &mut self,
        client: u64,
        kind: &LeaseKind,
        now: u32,
    ) -> Result<Applied, Refused> {
        let now = self.stamp(now);
        let Some(slot) = self.table.lookup(client) else {
            return Ok(Applied::Unchanged);
        };
        let (old, old_time) = self.latest_binding(slot);
        let Some(lease) = old
            .leases()
            .iter()
            .find(|l| l.kind == *kind && l.ended_at == 0)
        else {
            return Ok(Applied::Unchanged);
        };
        let mut new = old.clone();
        new.upsert(Lease {
            ended_at: now.max(1),
            ..*lease
        })
        .map_err(Refused::Binding)?;
        let result = self
            .commit(Some(slot), Some(&old), old_time, &new, now)
            .map(Applied::Changed);
        match &result {
            Ok(_) => self.stats.changed += 1,
            Err(refused) => {
                // Counted and logged like a refused `apply`: never a silent drop.
                self.stats.refused += 1;
                tracing::warn!(reason = refused.reason(), "lease end refused: {refused}");
            }
        }
        result
    }

    /// Store an ingest checkpoint (S-n: the ingest position travels with the records).
    pub fn checkpoint(&mut self, id: u64, bytes: &[u8], now: u32) -> Result<u64, Refused> {
        let now = self.stamp(now);
        let table = &mut self.table;
        let stats = &mut self.stats;
        let mut encode = |area: &mut [u8], sequence: u64| {
            encode_checkpoint(area, sequence, now, id, bytes).expect("checkpoint within bounds")
        };
        self.log
            .append(&mut encode, &mut |client, moved| {
                relocate(table, stats, client, moved)
            })
            .map_err(Refused::Log)
    }

    /// Age retention and pruning; call from the worker's tick, not per change.
    pub fn tick(&mut self, now: u32) -> Result<usize, Refused> {
        let table = &mut self.table;
        let stats = &mut self.stats;
        self.log
            .enforce_age(now, &mut |client, moved| {
                relocate(table, stats, client, moved)
            })
            .map_err(Refused::Log)
    }

    /// The binding whose latest record is at `offset`.
    pub fn binding_at(&self, offset: u64) -> Option<Binding> {
        self.log.read(offset, |record| {
            decode_change(record.payload, record.header.link)
                .expect("own record decodes")
                .binding
        })
    }

    /// The client key hash of a binding, as the table and record headers use it.
    pub fn client_hash(duid: &[u8], link: u32) -> u64 {
        low64(client_key(duid, link))
    }

    /// Latest record of the client (`duid`, `link`).
    pub fn latest(&self, duid: &[u8], link: u32) -> Option<u64> {
        let slot = self.table.lookup(Self::client_hash(duid, link))?;
        Some(self.table.record(slot))
    }

    /// Latest record of the client holding `address`, or a delegated prefix containing it
    /// (S-31).
    pub fn by_address(&self, address: Ipv6Addr) -> Option<u64> {
        self.by_address_with_client(address)
            .map(|(offset, _)| offset)
    }

    /// [`Self::by_address`] with the holder's client hash (for a reader on another thread to
    /// check the record it finds at the offset).
    pub fn by_address_with_client(&self, address: Ipv6Addr) -> Option<(u64, u64)> {
        let key = u128::from(address);
        let slot = self
            .table
            .address_owner(key)
            .or_else(|| self.table.prefix_containing(key))?;
        Some((self.table.record(slot), self.table.client(slot)))
    }

    /// Latest records of the clients on `list` under the hash or link `key`, with each
    /// client's hash.
    pub fn by_list(&self, list: List, key: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.table
            .list(list, key)
            .map(|slot| (self.table.record(slot), self.table.client(slot)))
    }

    /// Every live lease the shard holds, with its client's hash (start-up: the ingest
    /// router learns who holds each address, so that a move after a restart ends the old
    /// holder's lease).
    pub fn live_leases(&self, now: u32) -> Vec<(LeaseKind, u64)> {
        let mut out = Vec::with_capacity(self.table.address_count() + self.table.prefix_count());
        for slot in self.table.slots() {
            let client = self.table.client(slot);
            let (binding, _) = self.latest_binding(slot);
            out.extend(
                binding
                    .leases()
                    .iter()
                    .filter(|l| l.is_live(now))
                    .map(|l| (l.kind, client)),
            );
        }
        out
    }

    /// Latest records of every client.
    pub fn all(&self) -> impl Iterator<Item = u64> + '_ {
        self.table.slots().map(|slot| self.table.record(slot))
    }

    /// Decode a change record's payload.
    pub fn view<'r>(record: &RecordRef<'r>) -> Option<ChangeView<'r>> {
        decode_change(record.payload, record.header.link).ok()
    }

    /// Flush the head segment towards the disk.
    pub fn flush_async(&self) -> io::Result<()> {
        self.log.flush_async()
    }
}

fn relocate(table: &mut ShardTable, stats: &mut ShardStats, client: u64, moved: Option<u64>) {
    let Some(slot) = table.lookup(client) else {
        return;
    };
    match moved {
        Some(offset) => {
            table.set_record(slot, offset);
            stats.carried += 1;
        }
        None => {
            table.remove(slot);
            stats.dropped += 1;
        }
    }
}

fn capacity_error(full: Full) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "recovered state exceeds the {} capacity {}: raise it in the configuration",
            full.index, full.max
        ),
    )
}

/// First recovery pass: the latest record of each client, and the latest checkpoint.
fn recover_record(
    table: &mut ShardTable,
    checkpoint: &mut Option<Checkpoint>,
    record: &RecordRef<'_>,
) -> io::Result<()> {
    let invalid = |e: crate::wire::Error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record at {}: {e}", record.offset),
        )
    };
    match record.header.kind {
        KIND_CHECKPOINT => {
            let (id, bytes) = decode_checkpoint(record.payload).map_err(invalid)?;
            *checkpoint = Some(Checkpoint {
                id,
                bytes: bytes.to_vec(),
            });
        }
        KIND_CHANGE => {
            let view = decode_change(record.payload, record.header.link).map_err(invalid)?;
            let keys = keys_of(&view.binding);
            match table.lookup(record.header.client_hash) {
                Some(slot) => {
                    table.set_record(slot, record.offset);
                    table.set_keys(slot, keys);
                }
                None => {
                    table.check(None, &keys, 0, 0).map_err(capacity_error)?;
                    table.insert(record.header.client_hash, record.offset, keys);
                }
            }
        }
        _ => unreachable!("the log validates record kinds"),
    }
    Ok(())
}
