//! From a parsed Kea row to the change lqd applies (kea.md §5, §7; protocol.md D-4, D-14).
//!
//! - Times: Kea writes Unix seconds; lqd's server time is Unix − 946684800 mod 2^32.
//!   CLTT = expire − valid_lifetime. An infinite lifetime (4294967295) stays infinite and
//!   is never added to a time.
//! - `valid_lifetime` 0 ends the lease whatever its state; lqd stamps the end with the time
//!   it reads the row (the row's `expire` is the last contact, not the release, §7.1).
//! - States 1 (declined) and 2 (reclaimed) are not active; the store reports them with zero
//!   lifetimes. A declined lease carries a placeholder DUID (`00`, `00:00:00`): it is
//!   nobody's binding, so the row only ends the address for whoever held it.

use std::sync::Arc;

use crate::store::model::{DuidBuf, Lease, LeaseState, Prefix, RelayInfo, INFINITE};
use crate::store::LeaseUpdate;
use crate::wire::client_data::LeaseKind;
use crate::wire::{DUID_LEN_MIN, EPOCH_2000_UNIX};

use super::csv::{LeaseType, Row};

/// Unix seconds to server absolute time (seconds since 2000-01-01, mod 2^32).
pub const fn server_time(unix: u64) -> u32 {
    // Truncation is the definition: the wire time wraps (RFC 7653 §2, D-14).
    #[allow(clippy::cast_possible_truncation)]
    let t = unix.wrapping_sub(EPOCH_2000_UNIX) as u32;
    t
}

/// A change ready for a shard: everything owned, no borrow of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The client's DUID.
    pub duid: DuidBuf,
    /// Kea's subnet id.
    pub link: u32,
    /// The subnet's prefix, when the configuration names it.
    pub link_prefix: Option<Prefix>,
    /// The lease as of this row.
    pub lease: Lease,
    /// Last transaction time (server time).
    pub cltt: u32,
    /// Relay information, shared between rows that carry the same `user_context`.
    pub relay: Option<Arc<RelayInfo>>,
    /// When the ingest thread read the row ([`crate::metrics::now_ns`]; 0 = unknown), for
    /// the delivery-latency histogram.
    pub read_ns: u64,
}

impl Change {
    /// The borrowed form the store takes.
    pub fn update(&self) -> LeaseUpdate<'_> {
        LeaseUpdate {
            duid: self.duid.as_slice(),
            link: self.link,
            link_prefix: self.link_prefix,
            lease: self.lease,
            cltt: self.cltt,
            relay: self.relay.as_deref().unwrap_or(&RelayInfo::NONE),
        }
    }
}

/// What one row means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowChange {
    /// A client's lease changed.
    Lease(Box<Change>),
    /// A declined address with a placeholder DUID: end it for whoever holds it.
    Declined(LeaseKind),
}

/// True for the DUIDs Kea writes on a declined lease: `00` (≤ 2.3.7) or `00:00:00`
/// (≥ 2.3.8), kea.md §5 — and any DUID too short to be one (RFC 8415 §11.1).
pub fn is_placeholder_duid(duid: &[u8]) -> bool {
    duid.len() < DUID_LEN_MIN || duid.iter().all(|&b| b == 0)
}

/// The resource a row is about.
pub const fn lease_kind(row: &Row<'_>) -> LeaseKind {
    match row.lease_type {
        LeaseType::Na | LeaseType::Ta => LeaseKind::Address(row.address),
        LeaseType::Pd => LeaseKind::Prefix(row.address, row.prefix_len),
    }
}

/// Interpret a row read at server time `now`.
pub fn row_change(
    row: &Row<'_>,
    relay: Option<Arc<RelayInfo>>,
    link_prefix: Option<Prefix>,
    now: u32,
) -> RowChange {
    let kind = lease_kind(row);
    if is_placeholder_duid(row.duid.as_slice()) {
        return RowChange::Declined(kind);
    }
    let cltt_unix = row.cltt();
    let until = |lifetime: u32| {
        if lifetime == INFINITE {
            INFINITE
        } else {
            server_time(cltt_unix.saturating_add(u64::from(lifetime)))
        }
    };
    let ended_at = if row.valid_lifetime == 0 {
        now.max(1)
    } else {
        0
    };
    let state = LeaseState::from_code(u8::try_from(row.state).unwrap_or(u8::MAX));
    let lease = Lease {
        kind,
        state,
        preferred_until: until(row.pref_lifetime),
        valid_until: until(row.valid_lifetime),
        ended_at,
    };
    RowChange::Lease(Box::new(Change {
        duid: row.duid,
        link: row.subnet_id,
        link_prefix,
        lease,
        cltt: server_time(cltt_unix),
        relay,
        read_ns: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::csv::{parse_row, Header};

    const H17: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,\
prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";

    fn change(line: &str, now: u32) -> RowChange {
        let header = Header::parse(H17).unwrap();
        let row = parse_row(&header, line).unwrap();
        row_change(&row, None, None, now)
    }

    #[test]
    fn times_convert_to_server_time() {
        // kea.md §13: expire 1795896229 = 2026-11-28T20:03:49Z, valid 12, pref 10.
        let RowChange::Lease(c) = change(
            "2001:db8:1::1001,00:01:00:01:32:9d:f0:19:00:0c:01:02:03:05,12,1795896229,1,10,0,1,\
128,0,0,,00:0c:01:02:03:05,0,,1,2",
            0,
        ) else {
            panic!("lease expected")
        };
        let cltt = server_time(1_795_896_217);
        assert_eq!(c.cltt, cltt);
        assert_eq!(c.lease.valid_until, cltt + 12);
        assert_eq!(c.lease.preferred_until, cltt + 10);
        assert_eq!(c.lease.ended_at, 0);
        assert_eq!(c.link, 1);
    }

    #[test]
    fn infinite_lifetimes_stay_infinite_and_zero_valid_ends() {
        let RowChange::Lease(c) = change(
            "2001:db8:1::78,00:03:00:01:02:00:00:00:00:78,4294967295,6090863745,1,4294967295,0,7,\
128,0,0,,,0,,,",
            5,
        ) else {
            panic!()
        };
        assert_eq!(
            (c.lease.valid_until, c.lease.preferred_until),
            (INFINITE, INFINITE)
        );
        let RowChange::Lease(c) = change(
            "2001:db8:1::7a,00:03:00:01:02:00:00:00:00:7a,0,1795896450,1,0,0,7,128,0,0,,,1,,,",
            777,
        ) else {
            panic!()
        };
        assert_eq!(c.lease.ended_at, 777);
        assert_eq!(c.lease.state, LeaseState::Declined);
    }

    #[test]
    fn placeholder_duid_declines_the_address() {
        for duid in ["00", "00:00:00"] {
            let line = format!("2001:db8:1::7b,{duid},3600,1795900050,1,0,0,7,128,0,0,,,1,,,");
            assert_eq!(
                change(&line, 1),
                RowChange::Declined(LeaseKind::Address("2001:db8:1::7b".parse().unwrap()))
            );
        }
        assert_eq!(server_time(EPOCH_2000_UNIX + 849_182_400), 849_182_400);
    }
}
