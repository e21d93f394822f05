//! Helpers shared by the store tests: a small shard configuration and realistic updates.
#![allow(dead_code, unreachable_pub)]

use std::net::Ipv6Addr;
use std::path::Path;

use lqd::store::model::{Binding, Lease, LeaseState, Prefix, RelayInfo};
use lqd::store::record::Header;
use lqd::store::table::TableLimits;
use lqd::store::{
    Applied, Checkpoint, Cursor, LeaseUpdate, LogConfig, LogReader, Next, Recovered, Shard,
    ShardConfig,
};
use lqd::wire::client_data::LeaseKind;

/// Server time used as "now" by the tests (2026-11-28T12:00:00Z).
pub const NOW: u32 = 849_182_400;

/// A shard configuration with small segments so that tests roll and recycle quickly.
pub fn config(dir: &Path, segment_bytes: usize, segments_max: usize) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments_max,
            retention_age_s: 7 * 86_400,
            time_index_entries_max: 4096,
        },
        table: TableLimits {
            clients_max: 100_000,
            addresses_max: 200_000,
            prefixes_max: 100_000,
            links_max: 64,
            relay_ids_max: 64,
            remote_ids_max: 64,
        },
    }
}

/// DUID-LL of client `n`.
pub fn duid(n: u32) -> [u8; 10] {
    let b = n.to_be_bytes();
    [0, 3, 0, 1, 2, 0, b[0], b[1], b[2], b[3]]
}

/// Address of client `n`.
pub fn address(n: u32) -> Ipv6Addr {
    let b = n.to_be_bytes();
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        1,
        0,
        0,
        0,
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    )
}

/// A live address lease for client `n`, valid for an hour after `now`.
pub fn lease(n: u32, now: u32) -> Lease {
    Lease {
        kind: LeaseKind::Address(address(n)),
        state: LeaseState::Default,
        preferred_until: now + 1800,
        valid_until: now + 3600,
        ended_at: 0,
    }
}

/// The update that gives client `n` its address at `now`.
pub fn update<'a>(duid: &'a [u8; 10], n: u32, now: u32, relay: &'a RelayInfo) -> LeaseUpdate<'a> {
    LeaseUpdate {
        duid,
        link: 1 + n % 4,
        link_prefix: Some(Prefix {
            address: "2001:db8:1::".parse().expect("prefix"),
            len: 48,
        }),
        lease: lease(n, now),
        cltt: now,
        relay,
    }
}

/// Smallest segment the log accepts (four maximal records, a multiple of 4096).
pub const SEGMENT_BYTES_MIN: usize = 4 * lqd::store::record::RECORD_LEN_MAX;

/// Generous table limits: tests that need a capacity lower one field.
pub const LIMITS: TableLimits = TableLimits {
    clients_max: 100_000,
    addresses_max: 200_000,
    prefixes_max: 100_000,
    links_max: 64,
    relay_ids_max: 64,
    remote_ids_max: 64,
};

/// A shard configuration with every field chosen by the test.
pub fn config_with(
    dir: &Path,
    segment_bytes: usize,
    segments_max: usize,
    retention_age_s: u32,
    table: TableLimits,
) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments_max,
            retention_age_s,
            time_index_entries_max: 4096,
        },
        table,
    }
}

/// The link `update` puts client `n` on.
pub fn link_of(n: u32) -> u32 {
    1 + n % 4
}

/// Open a shard, expecting success.
pub fn open(config: ShardConfig, now: u32) -> (Shard, Option<Checkpoint>, Recovered) {
    Shard::open(config, now).expect("shard opens")
}

/// Apply `update` at `now`, expecting a change; returns the new record's offset.
pub fn change(shard: &mut Shard, update: &LeaseUpdate<'_>, now: u32) -> u64 {
    match shard.apply(update, now) {
        Ok(Applied::Changed(offset)) => offset,
        other => panic!("expected a change, got {other:?}"),
    }
}

/// A copy of what a cursor yielded: enough to assert on after the borrow ends.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Logical offset.
    pub offset: u64,
    /// Header fields.
    pub header: Header,
    /// The superseded bit as read.
    pub superseded: bool,
    /// The binding, for change records.
    pub binding: Option<Binding>,
}

/// Drive `cursor` until it is pending (or the horizon passed); returns what it yielded and
/// the final result (`Next::Pending` or `Next::HorizonPassed`) as a bool: true = pending.
pub fn drain(cursor: &mut Cursor, reader: &LogReader) -> (Vec<Seen>, bool) {
    let mut seen = Vec::new();
    // Bounded: no test log holds a million records.
    for _ in 0..1_000_000 {
        match cursor.next(reader) {
            Next::Record(record) => seen.push(Seen {
                offset: record.offset,
                header: record.header,
                superseded: record.superseded,
                binding: Shard::view(&record).map(|v| v.binding),
            }),
            Next::Again => {}
            Next::Pending => return (seen, true),
            Next::HorizonPassed => return (seen, false),
        }
    }
    panic!("cursor never reached the end")
}

/// The record at `offset`, read through the reader as another thread would.
pub fn record_at(reader: &LogReader, offset: u64) -> Option<Seen> {
    let segment = reader.segment(offset / reader.segment_bytes())?;
    let record = reader.read_at(&segment, offset)?;
    Some(Seen {
        offset: record.offset,
        header: record.header,
        superseded: record.superseded,
        binding: Shard::view(&record).map(|v| v.binding),
    })
}

/// The path of segment `index` in `dir`.
pub fn segment_file(dir: &Path, index: u64) -> std::path::PathBuf {
    dir.join(format!("{index:016x}.seg"))
}

/// Segment files present in `dir`.
pub fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("log dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .count()
}
