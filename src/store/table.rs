//! The shard table: where each client's latest record is, and the indexes every query type
//! needs (S-31..S-35). It holds no binding data: the latest change record in the log is the
//! client's state, so a slot is 80 octets whatever the client holds.
//!
//! - by client key (DUID + link hash) → slot;
//! - by DUID, by link, by relay-id, by remote-id → intrusive doubly linked lists through the
//!   slots (insert and remove in O(1), no allocation);
//! - by address → the slot holding a live lease on it;
//! - by delegated prefix (length, masked prefix) → slot, plus a count per prefix length so
//!   that "which prefix contains this address" (S-31) tries only the lengths in use.
//!
//! Every map is allocated once, at twice its configured capacity, so that inserts below the
//! capacity never rehash into a new allocation (hashbrown rehashes in place while at most
//! half full). A change that would exceed a capacity is refused before anything is touched.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that are already hashes or addresses: a multiply-xorshift mix.
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, n: u128) {
        let [lo, hi] = [n, n >> 64].map(crate::store::record::low64);
        self.write_u64(lo);
        self.write_u64(hi);
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<MixHasher>>;

fn map<K, V>(capacity: usize) -> Map<K, V> {
    Map::with_capacity_and_hasher(
        capacity.saturating_mul(2).max(16),
        BuildHasherDefault::default(),
    )
}

/// A slot number.
pub type SlotId = u32;
const NIL: SlotId = SlotId::MAX;

/// The secondary lists a slot is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    /// Same DUID (all links).
    Duid = 0,
    /// Same link.
    Link = 1,
    /// Same relay-id.
    Relay = 2,
    /// Same remote-id.
    Remote = 3,
}

const LISTS: [List; 4] = [List::Duid, List::Link, List::Relay, List::Remote];

/// Capacities of one shard's table (from the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLimits {
    /// Clients (DUID + link).
    pub clients_max: usize,
    /// Addresses with a live lease.
    pub addresses_max: usize,
    /// Delegated prefixes with a live lease.
    pub prefixes_max: usize,
    /// Distinct links.
    pub links_max: usize,
    /// Distinct relay-ids.
    pub relay_ids_max: usize,
    /// Distinct remote-ids.
    pub remote_ids_max: usize,
}

/// The keys a client is indexed under (0 = none for the hashes; link 0 = unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    /// Hash of the DUID.
    pub duid: u64,
    /// Link (Kea subnet id).
    pub link: u32,
    /// Hash of the relay-id, 0 when none.
    pub relay: u64,
    /// Hash of the remote-id, 0 when none.
    pub remote: u64,
}

impl Keys {
    fn key(&self, list: List) -> u64 {
        match list {
            List::Duid => self.duid,
            List::Link => u64::from(self.link),
            List::Relay => self.relay,
            List::Remote => self.remote,
        }
    }
}

/// Which capacity a refused change would exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// The index: "clients", "addresses", "prefixes", "links", "relay_ids", "remote_ids".
    pub index: &'static str,
    /// Its configured capacity.
    pub max: usize,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    client: u64,
    record: u64,
    keys: Keys,
    prev: [SlotId; 4],
    next: [SlotId; 4],
    used: bool,
}

const EMPTY_SLOT: Slot = Slot {
    client: 0,
    record: 0,
    keys: Keys {
        duid: 0,
        link: 0,
        relay: 0,
        remote: 0,
    },
    prev: [NIL; 4],
    next: [NIL; 4],
    used: false,
};

/// The table of one shard.
pub struct ShardTable {
    limits: TableLimits,
    slots: Box<[Slot]>,
    free: Vec<SlotId>,
    by_client: Map<u64, SlotId>,
    /// Head slot and length of each list, per key.
    heads: [Map<u64, (SlotId, u32)>; 4],
    by_address: Map<u128, SlotId>,
    by_prefix: Map<(u128, u8), SlotId>,
    prefix_lens: [u32; 129],
}

impl ShardTable {
    /// An empty table; allocates everything it will ever use.
    pub fn new(limits: TableLimits) -> Self {
        let clients = SlotId::try_from(limits.clients_max).expect("clients_max below 2^32 - 1");
        assert!(clients > 0 && clients < NIL);
        let free = (0..clients).rev().collect();
        Self {
            slots: vec![EMPTY_SLOT; limits.clients_max].into_boxed_slice(),
            free,
            by_client: map(limits.clients_max),
            heads: [
                map(limits.clients_max),
                map(limits.links_max),
                map(limits.relay_ids_max),
                map(limits.remote_ids_max),
            ],
            by_address: map(limits.addresses_max),
            by_prefix: map(limits.prefixes_max),
            prefix_lens: [0; 129],
            limits,
        }
    }

    /// Clients in the table.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// True when no client is in the table.
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// The slot of a client.
    pub fn lookup(&self, client: u64) -> Option<SlotId> {
        self.by_client.get(&client).copied()
    }

    /// Offset of a slot's latest record.
    pub fn record(&self, slot: SlotId) -> u64 {
        let s = &self.slots[slot as usize];
        assert!(s.used);
        s.record
    }

    /// The client hash of a slot.
    pub fn client(&self, slot: SlotId) -> u64 {
        self.slots[slot as usize].client
    }

    /// The keys of a slot.
    pub fn keys(&self, slot: SlotId) -> Keys {
        self.slots[slot as usize].keys
    }

    /// Point a slot at its new latest record.
    pub fn set_record(&mut self, slot: SlotId, record: u64) {
        let s = &mut self.slots[slot as usize];
        assert!(s.used);
        s.record = record;
    }

    /// Check, before changing anything, that a client with `keys` (new when `slot` is
    /// `None`) gaining `new_addresses` addresses and `new_prefixes` prefixes fits.
    pub fn check(
        &self,
        slot: Option<SlotId>,
        keys: &Keys,
        new_addresses: usize,
        new_prefixes: usize,
    ) -> Result<(), Full> {
        let l = &self.limits;
        if slot.is_none() && self.by_client.len() >= l.clients_max {
            return Err(Full {
                index: "clients",
                max: l.clients_max,
            });
        }
        if self.by_address.len() + new_addresses > l.addresses_max {
            return Err(Full {
                index: "addresses",
                max: l.addresses_max,
            });
        }
        if self.by_prefix.len() + new_prefixes > l.prefixes_max {
            return Err(Full {
                index: "prefixes",
                max: l.prefixes_max,
            });
        }
        let caps = [
            (List::Link, "links", l.links_max),
            (List::Relay, "relay_ids", l.relay_ids_max),
            (List::Remote, "remote_ids", l.remote_ids_max),
        ];
        for (list, index, max) in caps {
            let key = keys.key(list);
            // Most changes keep their keys: no lookup then (each is a likely cache miss).
            let unchanged = slot.is_some_and(|s| self.slots[s as usize].keys.key(list) == key);
            if key == 0 || unchanged || self.heads[list as usize].len() < max {
                continue;
            }
            if !self.heads[list as usize].contains_key(&key) {
                return Err(Full { index, max });
            }
        }
        Ok(())
    }

    /// Add a client. The caller ran [`Self::check`].
    pub fn insert(&mut self, client: u64, record: u64, keys: Keys) -> SlotId {
        assert!(
            !self.by_client.contains_key(&client),
            "client already in the table"
        );
        let slot = self.free.pop().expect("capacity checked");
        self.slots[slot as usize] = Slot {
            client,
            record,
            keys,
            prev: [NIL; 4],
            next: [NIL; 4],
            used: true,
        };
        self.by_client.insert(client, slot);
        for list in LISTS {
            self.link(slot, list, keys.key(list));
        }
        slot
    }

    /// Re-index a client under new keys.
    pub fn set_keys(&mut self, slot: SlotId, keys: Keys) {
        let old = self.slots[slot as usize].keys;
        for list in LISTS {
            if old.key(list) != keys.key(list) {
                self.unlink(slot, list, old.key(list));
                self.link(slot, list, keys.key(list));
            }
        }
        self.slots[slot as usize].keys = keys;
    }

    /// Remove a client; its addresses and prefixes must have been released.
    pub fn remove(&mut self, slot: SlotId) {
        let s = self.slots[slot as usize];
        assert!(s.used);
        for list in LISTS {
            self.unlink(slot, list, s.keys.key(list));
        }
        self.by_client.remove(&s.client);
        self.slots[slot as usize] = EMPTY_SLOT;
        assert!(
            self.free.len() < self.limits.clients_max,
            "slot freed twice"
        );
        self.free.push(slot);
    }

    fn link(&mut self, slot: SlotId, list: List, key: u64) {
        if key == 0 && list != List::Link {
            return;
        }
        let i = list as usize;
        let entry = self.heads[i].entry(key).or_insert((NIL, 0));
        let old_head = entry.0;
        *entry = (slot, entry.1 + 1);
        self.slots[slot as usize].prev[i] = NIL;
        self.slots[slot as usize].next[i] = old_head;
        if old_head != NIL {
            self.slots[old_head as usize].prev[i] = slot;
        }
    }

    fn unlink(&mut self, slot: SlotId, list: List, key: u64) {
        if key == 0 && list != List::Link {
            return;
        }
        let i = list as usize;
        let (prev, next) = (
            self.slots[slot as usize].prev[i],
            self.slots[slot as usize].next[i],
        );
        if prev != NIL {
            self.slots[prev as usize].next[i] = next;
        }
        if next != NIL {
            self.slots[next as usize].prev[i] = prev;
        }
        let entry = self.heads[i]
            .get_mut(&key)
            .expect("a linked slot's key has a head");
        if entry.0 == slot {
            entry.0 = next;
        }
        entry.1 -= 1;
        if entry.1 == 0 {
            self.heads[i].remove(&key);
        }
        self.slots[slot as usize].prev[i] = NIL;
        self.slots[slot as usize].next[i] = NIL;
    }

    /// The slots on `list` under `key`, at most `max` of them.
    pub fn list(&self, list: List, key: u64) -> ListIter<'_> {
        let i = list as usize;
        let (head, len) = self.heads[i].get(&key).copied().unwrap_or((NIL, 0));
        ListIter {
            table: self,
            list: i,
            at: head,
            left: len,
        }
    }

    /// Every client slot.
    pub fn slots(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.by_client.values().copied()
    }

    /// The slot holding a live lease on `address`.
    pub fn address_owner(&self, address: u128) -> Option<SlotId> {
        self.by_address.get(&address).copied()
    }

    /// Record that `slot` holds `address` (replacing another holder); true if it was new.
    pub fn claim_address(&mut self, address: u128, slot: SlotId) -> bool {
        self.by_address.insert(address, slot).is_none()
    }

    /// Forget `address` if `slot` holds it.
    pub fn release_address(&mut self, address: u128, slot: SlotId) {
        if self.by_address.get(&address) == Some(&slot) {
            self.by_address.remove(&address);
        }
    }

    /// Record that `slot` holds the prefix; true if it was new.
    pub fn claim_prefix(&mut self, prefix: u128, len: u8, slot: SlotId) -> bool {
        let fresh = self.by_prefix.insert((prefix, len), slot).is_none();
        if fresh {
            self.prefix_lens[usize::from(len)] += 1;
        }
        fresh
    }

    /// Forget the prefix if `slot` holds it.
    pub fn release_prefix(&mut self, prefix: u128, len: u8, slot: SlotId) {
        if self.by_prefix.get(&(prefix, len)) == Some(&slot) {
            self.by_prefix.remove(&(prefix, len));
            self.prefix_lens[usize::from(len)] -= 1;
        }
    }

    /// The owner of the exact prefix.
    pub fn prefix_owner(&self, prefix: u128, len: u8) -> Option<SlotId> {
        self.by_prefix.get(&(prefix, len)).copied()
    }

    /// The slot holding the longest delegated prefix that contains `address` (S-31).
    pub fn prefix_containing(&self, address: u128) -> Option<SlotId> {
        (0..=128u8)
            .rev()
            .filter(|&len| self.prefix_lens[usize::from(len)] > 0)
            .find_map(|len| {
                let masked = address & super::model::mask(len);
                self.by_prefix.get(&(masked, len)).copied()
            })
    }

    /// Addresses with a live lease.
    pub fn address_count(&self) -> usize {
        self.by_address.len()
    }

    /// Delegated prefixes with a live lease.
    pub fn prefix_count(&self) -> usize {
        self.by_prefix.len()
    }
}

/// Iterator over one intrusive list.
pub struct ListIter<'t> {
    table: &'t ShardTable,
    list: usize,
    at: SlotId,
    left: u32,
}

impl Iterator for ListIter<'_> {
    type Item = SlotId;
    fn next(&mut self) -> Option<SlotId> {
        if self.at == NIL || self.left == 0 {
            return None;
        }
        let slot = self.at;
        self.left -= 1;
        self.at = self.table.slots[slot as usize].next[self.list];
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TableLimits {
        TableLimits {
            clients_max: 4,
            addresses_max: 4,
            prefixes_max: 2,
            links_max: 2,
            relay_ids_max: 1,
            remote_ids_max: 1,
        }
    }

    fn keys(duid: u64, link: u32, relay: u64) -> Keys {
        Keys {
            duid,
            link,
            relay,
            remote: 0,
        }
    }

    #[test]
    fn lists_follow_inserts_moves_and_removes() {
        let mut t = ShardTable::new(limits());
        let a = t.insert(1, 0, keys(10, 1, 7));
        let b = t.insert(2, 8, keys(10, 2, 7));
        let c = t.insert(3, 16, keys(11, 1, 0));
        let mut duid10: Vec<SlotId> = t.list(List::Duid, 10).collect();
        duid10.sort_unstable();
        assert_eq!(duid10, [a, b]);
        assert_eq!(t.list(List::Relay, 7).count(), 2);
        assert_eq!(t.list(List::Link, 1).count(), 2);
        t.set_keys(b, keys(10, 1, 0));
        assert_eq!(t.list(List::Relay, 7).collect::<Vec<_>>(), [a]);
        assert_eq!(t.list(List::Link, 1).count(), 3);
        assert_eq!(t.list(List::Link, 2).count(), 0);
        t.remove(a);
        assert_eq!(t.list(List::Relay, 7).count(), 0);
        assert_eq!(t.list(List::Duid, 10).collect::<Vec<_>>(), [b]);
        assert_eq!(t.lookup(3), Some(c));
        assert_eq!(t.lookup(1), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn capacities_refuse_before_changing_anything() {
        let mut t = ShardTable::new(limits());
        for i in 0..4 {
            t.check(None, &keys(i, 1, 0), 1, 0).unwrap();
            t.insert(i, 0, keys(i, 1, 0));
        }
        assert_eq!(
            t.check(None, &keys(9, 1, 0), 0, 0),
            Err(Full {
                index: "clients",
                max: 4
            })
        );
        assert_eq!(
            t.check(Some(0), &keys(0, 1, 0), 5, 0).unwrap_err().index,
            "addresses"
        );
        assert_eq!(
            t.check(Some(0), &keys(0, 1, 0), 0, 3).unwrap_err().index,
            "prefixes"
        );
        assert_eq!(t.check(Some(0), &keys(0, 2, 0), 0, 0), Ok(()));
        assert_eq!(t.check(Some(0), &keys(0, 1, 5), 0, 0), Ok(()));
        t.set_keys(0, keys(0, 2, 5));
        assert_eq!(
            t.check(Some(1), &keys(1, 3, 0), 0, 0).unwrap_err().index,
            "links"
        );
        assert_eq!(
            t.check(Some(1), &keys(1, 1, 6), 0, 0).unwrap_err().index,
            "relay_ids"
        );
    }

    #[test]
    fn longest_prefix_containing_an_address_wins() {
        let mut t = ShardTable::new(limits());
        let a = t.insert(1, 0, keys(1, 1, 0));
        let b = t.insert(2, 0, keys(2, 1, 0));
        let p48 = u128::from("2001:db8:1::".parse::<std::net::Ipv6Addr>().unwrap());
        let p56 = u128::from("2001:db8:1:100::".parse::<std::net::Ipv6Addr>().unwrap());
        assert!(t.claim_prefix(p48, 48, a));
        assert!(t.claim_prefix(p56, 56, b));
        let inside56 = u128::from("2001:db8:1:1ff::1".parse::<std::net::Ipv6Addr>().unwrap());
        let inside48 = u128::from("2001:db8:1:ff00::1".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(t.prefix_containing(inside56), Some(b));
        assert_eq!(t.prefix_containing(inside48), Some(a));
        t.release_prefix(p56, 56, a); // not a's: ignored
        assert_eq!(t.prefix_containing(inside56), Some(b));
        t.release_prefix(p56, 56, b);
        assert_eq!(t.prefix_containing(inside56), Some(a));
        assert_eq!(t.prefix_containing(0), None);
    }
}
