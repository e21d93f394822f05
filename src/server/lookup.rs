//! Index lookups for Bulk queries keyed by one client or one address (S-31, S-32),
//! answered by the worker that owns each shard (architecture.md, "Fan-out" 6: a query
//! gathers from every shard's index).
//!
//! A shard's table belongs to the worker that applies its changes, so a Bulk session on
//! another worker does not read it: it asks. The session names what it wants
//! ([`LookupKey`]); the worker sends one request per shard to the shard's owner, which runs
//! [`lookup`] against its table and returns the offsets of the matching clients' latest
//! records ([`Found`]); the session then reads those records from the logs like any
//! reader. Few clients match such a query, so [`Found`] is a small fixed array: more than
//! [`FOUND_MAX`] matches, or a record that moved meanwhile, and the session scans the
//! logs instead, as queries of every other type do.

use std::net::Ipv6Addr;

use crate::store::model::DuidBuf;
use crate::store::record::key_hash;
use crate::store::table::List;
use crate::store::Shard;

/// Matches one shard returns; beyond it the session scans.
pub const FOUND_MAX: usize = 8;

/// What a Bulk session looks up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupKey {
    /// The client holding this address or a delegated prefix containing it (S-31).
    Address(Ipv6Addr),
    /// Every client (on any link) with this DUID (S-32).
    ClientId(DuidBuf),
}

/// One shard's answer: the matching clients' latest records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The shard asked.
    pub shard: u16,
    /// (record offset, client hash) of each match; `len` are valid.
    pub records: [(u64, u64); FOUND_MAX],
    /// Valid entries in `records`.
    pub len: u8,
    /// More matched than `records` holds.
    pub overflow: bool,
}

impl Found {
    /// No match in `shard`.
    pub const fn none(shard: u16) -> Self {
        Self {
            shard,
            records: [(0, 0); FOUND_MAX],
            len: 0,
            overflow: false,
        }
    }

    /// The matches.
    pub fn records(&self) -> &[(u64, u64)] {
        &self.records[..usize::from(self.len)]
    }

    fn push(&mut self, offset: u64, client: u64) {
        match self.records.get_mut(usize::from(self.len)) {
            Some(entry) => {
                *entry = (offset, client);
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }
}

/// Run `key` against the table of `shard` (number `index`), on the worker that owns it.
pub fn lookup(shard: &Shard, index: u16, key: &LookupKey) -> Found {
    let mut found = Found::none(index);
    match key {
        LookupKey::Address(address) => {
            if let Some((offset, client)) = shard.by_address_with_client(*address) {
                found.push(offset, client);
            }
        }
        LookupKey::ClientId(duid) => {
            let hash = key_hash(duid.as_slice());
            for (offset, client) in shard.by_list(List::Duid, hash) {
                found.push(offset, client);
            }
        }
    }
    found
}
