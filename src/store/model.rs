//! The binding model: one client (DUID + link) with its leases, last contact and relay
//! information, held in fixed-size buffers so that a worker can decode, change and re-encode
//! a binding on its stack without touching the heap (style.md S2).
//!
//! Times are server absolute times (seconds since 2000-01-01 UTC, u32, protocol.md §1.5).
//! A lease keeps its preferred and valid *expiry* times, not lifetimes; lifetimes are derived
//! for the moment a CLIENT_DATA is encoded. [`INFINITE`] marks an infinite lifetime (D-14).
//! A lease that ended (released, expired, declined, deleted: D-4) stays in the binding with
//! `ended_at` set and is reported with zero lifetimes until it is pruned.

use core::net::Ipv6Addr;

use crate::wire::client_data::{LeaseEntry, LeaseKind, LEASES_PER_CLIENT_MAX};
use crate::wire::{DUID_LEN_MAX, DUID_LEN_MIN};

/// An infinite lifetime / expiry (RFC 8415 §7.7).
pub const INFINITE: u32 = u32::MAX;

/// Longest OPTION_REMOTE_ID data lqd stores (enterprise number + remote-id).
pub const REMOTE_ID_LEN_MAX: usize = 128;

/// Longest RELAY-FORW chain lqd stores for OPTION_LQ_RELAY_DATA (S-46).
pub const RELAY_FORW_LEN_MAX: usize = 1024;

/// A byte string of at most `N` octets, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineBytes<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> core::fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_slice()
            .iter()
            .try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl<const N: usize> InlineBytes<N> {
    /// The empty string.
    pub const EMPTY: Self = Self {
        len: 0,
        bytes: [0; N],
    };

    /// A copy of `bytes`, or `None` when it is longer than `N`.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let mut out = Self::EMPTY;
        out.set(bytes).then_some(out)
    }

    /// Replace the contents; false (and unchanged) when `bytes` is longer than `N`.
    pub fn set(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > N {
            return false;
        }
        self.bytes[..bytes.len()].copy_from_slice(bytes);
        self.len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        true
    }

    /// The stored octets.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// True exactly when nothing is stored.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A client DUID (3..=130 octets once validated by [`Binding::new`]).
pub type DuidBuf = InlineBytes<DUID_LEN_MAX>;

/// Kea's lease state column (kea.md §2, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// 0: default (assigned).
    Default,
    /// 1: declined.
    Declined,
    /// 2: expired and reclaimed.
    ExpiredReclaimed,
    /// 3: released (Kea ≥ 2.7.0 with lease affinity).
    Released,
    /// 4: registered (RFC 9686, Kea ≥ 2.7.7).
    Registered,
    /// Any other value, kept as read.
    Other(u8),
}

impl LeaseState {
    /// The value of Kea's `state` column.
    pub const fn code(self) -> u8 {
        match self {
            Self::Default => 0,
            Self::Declined => 1,
            Self::ExpiredReclaimed => 2,
            Self::Released => 3,
            Self::Registered => 4,
            Self::Other(n) => n,
        }
    }

    /// The state for a `state` column value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Default,
            1 => Self::Declined,
            2 => Self::ExpiredReclaimed,
            3 => Self::Released,
            4 => Self::Registered,
            n => Self::Other(n),
        }
    }

    /// True for the states that can hold an active binding (kea.md §7.2).
    pub const fn can_be_active(self) -> bool {
        matches!(self, Self::Default | Self::Registered)
    }
}

/// One address or delegated prefix of a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Address (IA_NA/IA_TA) or prefix (IA_PD).
    pub kind: LeaseKind,
    /// Kea's state.
    pub state: LeaseState,
    /// Server time the preferred lifetime ends, or [`INFINITE`].
    pub preferred_until: u32,
    /// Server time the valid lifetime ends, or [`INFINITE`].
    pub valid_until: u32,
    /// Server time the lease ended (D-4), or 0 while it is live.
    pub ended_at: u32,
}

/// `a` is at or after `b` in wrapping 32-bit server time (D-14).
pub const fn time_at_or_after(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 1 << 31
}

/// Seconds from `now` until `until`, 0 once passed, [`INFINITE`] stays infinite.
pub const fn remaining(until: u32, now: u32) -> u32 {
    if until == INFINITE {
        INFINITE
    } else if time_at_or_after(now, until) {
        0
    } else {
        until.wrapping_sub(now)
    }
}

impl Lease {
    /// True exactly when the lease has not ended and its valid lifetime has not run out at
    /// `now`, in a state that can be active (kea.md §7.2).
    pub const fn is_live(&self, now: u32) -> bool {
        self.ended_at == 0 && self.state.can_be_active() && remaining(self.valid_until, now) > 0
    }

    /// The lease as sent at `now`: remaining lifetimes, or zeros once ended or in a state
    /// that is not an active binding (declined, reclaimed: D-4, kea.md §7.2).
    pub const fn entry(&self, now: u32) -> LeaseEntry {
        let (preferred, valid) = if self.ended_at != 0 || !self.state.can_be_active() {
            (0, 0)
        } else {
            (
                remaining(self.preferred_until, now),
                remaining(self.valid_until, now),
            )
        };
        LeaseEntry {
            kind: self.kind,
            preferred,
            valid,
        }
    }

    /// True when `self` and `other` are the same address or the same prefix.
    pub fn same_resource(&self, other: &LeaseKind) -> bool {
        self.kind == *other
    }
}

/// Relay information learned with the client's last relayed message (S-33, S-35, S-46).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayInfo {
    /// OPTION_RELAY_ID of the relay (a DUID), empty when none.
    pub relay_id: DuidBuf,
    /// OPTION_REMOTE_ID data (enterprise number + remote-id), empty when none.
    pub remote_id: InlineBytes<REMOTE_ID_LEN_MAX>,
    /// The link-address the relay closest to the client put in its RELAY-FORW.
    pub link_address: Ipv6Addr,
    /// The peer-address for OPTION_LQ_RELAY_DATA (the outermost relay's address).
    pub peer_address: Ipv6Addr,
    /// The RELAY-FORW chain, innermost RELAY_MSG removed; empty when not held.
    pub relay_forw: InlineBytes<RELAY_FORW_LEN_MAX>,
}

impl RelayInfo {
    /// No relay information.
    pub const NONE: Self = Self {
        relay_id: DuidBuf::EMPTY,
        remote_id: InlineBytes::EMPTY,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: Ipv6Addr::UNSPECIFIED,
        relay_forw: InlineBytes::EMPTY,
    };

    /// True exactly when the client was heard through a relay.
    pub fn is_some(&self) -> bool {
        *self != Self::NONE
    }
}

/// A prefix: address and length in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The prefix base address.
    pub address: Ipv6Addr,
    /// Length in bits, 0..=128.
    pub len: u8,
}

impl Prefix {
    /// True when `address` falls inside this prefix.
    pub fn contains(&self, address: Ipv6Addr) -> bool {
        let mask = mask(self.len);
        u128::from(address) & mask == u128::from(self.address) & mask
    }
}

/// The network mask of a prefix length (0..=128).
pub const fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else if len >= 128 {
        u128::MAX
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// Why a binding could not take a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingError {
    /// The DUID is shorter than 3 or longer than 130 octets.
    BadDuid {
        /// Its length.
        len: usize,
    },
    /// The client would hold more than `LEASES_PER_CLIENT_MAX` leases.
    TooManyLeases,
    /// A relay field is longer than lqd stores.
    RelayTooLong,
}

/// One client on one link, with everything a CLIENT_DATA says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The client's DUID.
    pub duid: DuidBuf,
    /// The link: Kea's subnet id; 0 = unknown link.
    pub link: u32,
    /// The link's prefix when known (kea.md §10).
    pub link_prefix: Option<Prefix>,
    /// Server time of the client's last transaction (CLTT).
    pub cltt: u32,
    /// Relay information, [`RelayInfo::NONE`] when the client was not relayed.
    pub relay: RelayInfo,
    leases: [Lease; LEASES_PER_CLIENT_MAX],
    lease_count: u8,
}

const NO_LEASE: Lease = Lease {
    kind: LeaseKind::Address(Ipv6Addr::UNSPECIFIED),
    state: LeaseState::Default,
    preferred_until: 0,
    valid_until: 0,
    ended_at: 0,
};

impl Binding {
    /// A binding with no lease yet.
    pub fn new(duid: &[u8], link: u32) -> Result<Self, BindingError> {
        if !(DUID_LEN_MIN..=DUID_LEN_MAX).contains(&duid.len()) {
            return Err(BindingError::BadDuid { len: duid.len() });
        }
        Ok(Self {
            duid: DuidBuf::new(duid).ok_or(BindingError::BadDuid { len: duid.len() })?,
            link,
            link_prefix: None,
            cltt: 0,
            relay: RelayInfo::NONE,
            leases: [NO_LEASE; LEASES_PER_CLIENT_MAX],
            lease_count: 0,
        })
    }

    /// The leases, live and ended.
    pub fn leases(&self) -> &[Lease] {
        &self.leases[..usize::from(self.lease_count)]
    }

    /// True when at least one lease is live at `now`.
    pub fn has_live_lease(&self, now: u32) -> bool {
        self.leases().iter().any(|l| l.is_live(now))
    }

    /// Insert or replace the lease for `lease.kind`.
    pub fn upsert(&mut self, lease: Lease) -> Result<(), BindingError> {
        let count = usize::from(self.lease_count);
        if let Some(slot) = self.leases[..count]
            .iter_mut()
            .find(|l| l.kind == lease.kind)
        {
            *slot = lease;
            return Ok(());
        }
        if count == LEASES_PER_CLIENT_MAX {
            return Err(BindingError::TooManyLeases);
        }
        self.leases[count] = lease;
        self.lease_count += 1;
        Ok(())
    }

    /// Remove the entry for `kind` entirely (not an end: the lease never was this client's,
    /// e.g. the address moved to another client). Returns whether it was there.
    pub fn remove(&mut self, kind: &LeaseKind) -> bool {
        let count = usize::from(self.lease_count);
        let Some(at) = self.leases[..count].iter().position(|l| l.kind == *kind) else {
            return false;
        };
        self.leases.copy_within(at + 1..count, at);
        self.lease_count -= 1;
        true
    }

    /// Drop ended leases that ended before `cutoff` (their zero-lifetime report is old
    /// history). Returns how many were dropped.
    pub fn prune_ended(&mut self, cutoff: u32) -> usize {
        let before = usize::from(self.lease_count);
        let mut kept = 0;
        for i in 0..before {
            let lease = self.leases[i];
            let old = lease.ended_at != 0 && !time_at_or_after(lease.ended_at, cutoff);
            if !old {
                self.leases[kept] = lease;
                kept += 1;
            }
        }
        self.lease_count = u8::try_from(kept).unwrap_or(u8::MAX);
        before - kept
    }

    /// Seconds from the last contact to `now` (OPTION_CLT_TIME), 0 if `now` is earlier.
    pub const fn clt_time(&self, now: u32) -> u32 {
        if time_at_or_after(now, self.cltt) {
            now.wrapping_sub(self.cltt)
        } else {
            0
        }
    }

    /// Fill `out` with the leases as sent at `now`; returns how many. With
    /// `include_ended` false, only live leases are listed: an ended, expired, declined or
    /// reclaimed lease would be a zero-lifetime entry, which Bulk without a time window
    /// leaves out (D-4).
    pub fn entries(
        &self,
        now: u32,
        include_ended: bool,
        out: &mut [LeaseEntry; LEASES_PER_CLIENT_MAX],
    ) -> usize {
        let mut n = 0;
        for lease in self.leases() {
            if include_ended || lease.is_live(now) {
                out[n] = lease.entry(now);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u16) -> LeaseKind {
        LeaseKind::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
    }

    fn live(kind: LeaseKind) -> Lease {
        Lease {
            kind,
            state: LeaseState::Default,
            preferred_until: 1_000,
            valid_until: 2_000,
            ended_at: 0,
        }
    }

    #[test]
    fn lifetimes_derive_from_expiry_and_now() {
        let lease = live(address(1));
        assert_eq!(lease.entry(500).preferred, 500);
        assert_eq!(lease.entry(500).valid, 1_500);
        assert_eq!(lease.entry(1_500).preferred, 0);
        assert!(lease.is_live(1_999));
        assert!(!lease.is_live(2_000));
        let infinite = Lease {
            valid_until: INFINITE,
            preferred_until: INFINITE,
            ..lease
        };
        assert_eq!(infinite.entry(u32::MAX - 1).valid, INFINITE);
        let ended = Lease {
            ended_at: 700,
            ..lease
        };
        assert_eq!((ended.entry(500).preferred, ended.entry(500).valid), (0, 0));
        assert!(!ended.is_live(500));
        let declined = Lease {
            state: LeaseState::Declined,
            ..lease
        };
        assert!(!declined.is_live(500));
    }

    #[test]
    fn upsert_replaces_and_bounds_leases() {
        let mut b = Binding::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1], 1).unwrap();
        b.upsert(live(address(1))).unwrap();
        b.upsert(Lease {
            valid_until: 3_000,
            ..live(address(1))
        })
        .unwrap();
        assert_eq!(b.leases().len(), 1);
        assert_eq!(b.leases()[0].valid_until, 3_000);
        for i in 2..=LEASES_PER_CLIENT_MAX {
            b.upsert(live(address(u16::try_from(i).unwrap()))).unwrap();
        }
        assert_eq!(
            b.upsert(live(address(999))),
            Err(BindingError::TooManyLeases)
        );
        assert!(b.remove(&address(1)));
        assert!(!b.remove(&address(1)));
        assert_eq!(b.leases().len(), LEASES_PER_CLIENT_MAX - 1);
    }

    #[test]
    fn prune_drops_only_old_ended_leases() {
        let mut b = Binding::new(&[0, 3, 0, 1, 2], 1).unwrap();
        b.upsert(Lease {
            ended_at: 100,
            ..live(address(1))
        })
        .unwrap();
        b.upsert(Lease {
            ended_at: 300,
            ..live(address(2))
        })
        .unwrap();
        b.upsert(live(address(3))).unwrap();
        assert_eq!(b.prune_ended(200), 1);
        let kinds: Vec<LeaseKind> = b.leases().iter().map(|l| l.kind).collect();
        assert_eq!(kinds, [address(2), address(3)]);
    }

    #[test]
    fn bulk_entries_list_only_live_leases_and_clt_counts_from_last_contact() {
        let mut b = Binding::new(&[0, 3, 0, 1, 2], 1).unwrap();
        b.cltt = 400;
        b.upsert(live(address(1))).unwrap(); // valid until 2_000
        b.upsert(Lease {
            ended_at: 100,
            ..live(address(2))
        })
        .unwrap();
        b.upsert(Lease {
            state: LeaseState::Declined,
            ..live(address(3))
        })
        .unwrap();
        let mut out = [live(address(0)).entry(0); LEASES_PER_CLIENT_MAX];
        assert_eq!(
            b.entries(500, false, &mut out),
            1,
            "D-4: only the live lease"
        );
        assert_eq!(out[0].kind, address(1));
        assert_eq!(
            b.entries(2_000, false, &mut out),
            0,
            "expired on lqd's clock"
        );
        assert_eq!(
            b.entries(500, true, &mut out),
            3,
            "streams list every lease"
        );
        assert_eq!((b.clt_time(500), b.clt_time(300)), (100, 0));
    }

    #[test]
    fn duid_bounds_are_enforced() {
        assert_eq!(
            Binding::new(&[0, 1], 0),
            Err(BindingError::BadDuid { len: 2 })
        );
        assert!(Binding::new(&[7; 130], 0).is_ok());
        assert_eq!(
            Binding::new(&[7; 131], 0),
            Err(BindingError::BadDuid { len: 131 })
        );
    }

    #[test]
    fn prefix_contains_uses_the_mask() {
        let p = Prefix {
            address: "2001:db8:1200::".parse().unwrap(),
            len: 56,
        };
        assert!(p.contains("2001:db8:1200:ff::1".parse().unwrap()));
        assert!(!p.contains("2001:db8:1201::1".parse().unwrap()));
        assert_eq!(mask(0), 0);
        assert_eq!(mask(128), u128::MAX);
    }
}
