//! The binding store: per-core shards, each with a table and a memory-mapped, append-only
//! change log (architecture.md, "Data").
//!
//! # Design
//!
//! - **The log is the state.** Each change appends one record holding the client's whole
//!   binding and its encoded CLIENT_DATA template (record.rs). The shard table (table.rs)
//!   only maps clients and index keys to the offset of their latest record, so memory per
//!   client is one 80-octet slot plus index entries, whatever the client holds.
//! - **One writer, many readers.** The owning worker appends; readers on other threads
//!   follow with cursors (cursor.rs) up to the committed end, published with Release and
//!   read with Acquire (log.rs). A record's state word marks it superseded once a later
//!   record of the same client exists; live and catch-up cursors skip superseded records,
//!   which yields "only the current state" (S-51, S-56).
//! - **Retention and compaction.** The log keeps at most `segments_max` segment files and
//!   history no older than `retention_age_s`. Recycling the oldest segment first copies
//!   every record in it that is still its client's latest to the head ("carried" records),
//!   so the current state of every client survives; clients that have had no live lease
//!   for longer than the age limit are dropped instead. The history horizon moves, before
//!   anything is carried, to one second after the last change in the recycled segment: a
//!   catch-up from before it is answered DataMissing (S-54, S-55). Live records must fit in
//!   `segments_max - 2` segments; beyond that a change needing a new segment is refused.
//! - **Durability.** Records are written into `MAP_SHARED` mappings of preallocated files,
//!   so they survive `kill -9` as soon as they are written. Recovery verifies every record's
//!   length, crc32c and sequence number, cuts the log at the first torn or corrupt record
//!   (logged with segment and offset), rebuilds the table, repairs superseded flags and
//!   returns the latest ingest checkpoint (an opaque record the ingest layer appends).
//!   Power-loss durability needs `flush_async` (msync) on a timer; kill -9 does not.
//! - **Limits.** Every table and index has a configured capacity, allocated at start-up; a
//!   change that would exceed one is refused, counted and logged ([`Refused`]).
//! - **Sharding.** A client goes to shard `shard_of(duid)`: all links of one DUID share a
//!   shard, so a query by client-id touches one shard (architecture.md, "Fan-out" 6).

mod cursor;
mod log;
pub mod model;
pub mod record;
mod segment;
mod shard;
pub mod table;

pub use cursor::{Cursor, Mode, Next, SKIP_MAX};
pub use log::{AppendError, LogConfig, LogReader, LogWriter, RecordRef, Recovered, Relocate};
pub use shard::{Applied, Checkpoint, LeaseUpdate, Refused, Shard, ShardConfig, ShardStats};

/// The shard that owns clients with this DUID: a pure function of the DUID and the shard
/// count (xxh3, reduced with a multiply-shift so every shard count is even-handed).
pub fn shard_of(duid: &[u8], shards: u32) -> u32 {
    assert!(shards > 0);
    let hash = xxhash_rust::xxh3::xxh3_64(duid);
    let shard = record::low64((u128::from(hash) * u128::from(shards)) >> 64);
    u32::try_from(shard).expect("below shards")
}
