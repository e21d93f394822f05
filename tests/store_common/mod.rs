//! Helpers shared by the store tests: a small shard configuration and realistic updates.
#![allow(dead_code, unreachable_pub)]

use std::net::Ipv6Addr;
use std::path::Path;

use lqd::store::model::{Lease, LeaseState, Prefix, RelayInfo};
use lqd::store::table::TableLimits;
use lqd::store::{LeaseUpdate, LogConfig, ShardConfig};
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
