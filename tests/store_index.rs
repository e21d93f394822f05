//! Every query index of a shard (protocol.md S-31..S-35) and every capacity (issue 3, item 3:
//! a full index refuses the change, counts it and changes nothing).

mod store_common;

use std::net::Ipv6Addr;

use lqd::store::model::{BindingError, InlineBytes, Lease, LeaseState, RelayInfo};
use lqd::store::record::{key_hash, FLAG_NO_LIVE_LEASE};
use lqd::store::table::{Full, List, TableLimits};
use lqd::store::{Applied, LeaseUpdate, Refused, Shard};
use lqd::wire::client_data::{LeaseKind, LEASES_PER_CLIENT_MAX};
use store_common::{address, change, config_with, duid, lease, link_of, open, update, LIMITS, NOW};

const WEEK_S: u32 = 7 * 86_400;

fn shard_with(dir: &std::path::Path, limits: TableLimits) -> Shard {
    open(config_with(dir, 1 << 20, 8, WEEK_S, limits), NOW).0
}

fn relay(relay_id: &[u8], remote_id: &[u8]) -> RelayInfo {
    RelayInfo {
        relay_id: InlineBytes::new(relay_id).unwrap(),
        remote_id: InlineBytes::new(remote_id).unwrap(),
        link_address: "2001:db8:1::1".parse().unwrap(),
        peer_address: "fe80::1".parse().unwrap(),
        relay_forw: InlineBytes::EMPTY,
    }
}

/// The DUID of client `n`, for as long as the test runs.
fn id(n: u32) -> &'static [u8; 10] {
    Box::leak(Box::new(duid(n)))
}

fn ip(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

/// An update giving client `n` (on `link`) the lease `kind`, valid for an hour.
fn lease_update<'a>(
    duid: &'a [u8; 10],
    link: u32,
    kind: LeaseKind,
    now: u32,
    relay: &'a RelayInfo,
) -> LeaseUpdate<'a> {
    LeaseUpdate {
        duid,
        link,
        link_prefix: None,
        lease: Lease {
            kind,
            state: LeaseState::Default,
            preferred_until: now + 1800,
            valid_until: now + 3600,
            ended_at: 0,
        },
        cltt: now,
        relay,
    }
}

/// The same update, ending the lease at `now`.
fn ending<'a>(mut update: LeaseUpdate<'a>, now: u32) -> LeaseUpdate<'a> {
    update.lease.ended_at = now;
    update.cltt = now;
    update
}

fn sorted(offsets: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = offsets.collect();
    v.sort_unstable();
    v
}

/// The record offsets of `Shard::by_list`'s (offset, client hash) pairs, sorted.
fn found_offsets(found: impl Iterator<Item = (u64, u64)>) -> Vec<u64> {
    sorted(found.map(|(offset, _)| offset))
}

#[test]
fn by_address_finds_the_holder_or_the_longest_delegated_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), LIMITS);
    let none = RelayInfo::NONE;
    let a = change(&mut shard, &update(id(1), 1, NOW, &none), NOW);
    let p48 = LeaseKind::Prefix(ip("2001:db8:100::"), 48);
    let p56 = LeaseKind::Prefix(ip("2001:db8:100:200::"), 56);
    let b = change(&mut shard, &lease_update(id(2), 1, p48, NOW, &none), NOW);
    let c = change(&mut shard, &lease_update(id(3), 1, p56, NOW, &none), NOW);
    assert_eq!(shard.by_address(address(1)), Some(a));
    assert_eq!(shard.by_address(address(2)), None, "nobody holds it");
    // S-31: an address inside a delegated prefix finds the prefix's client; the longest
    // prefix containing it wins.
    assert_eq!(shard.by_address(ip("2001:db8:100:2ff::1")), Some(c));
    assert_eq!(shard.by_address(ip("2001:db8:100:200::")), Some(c));
    assert_eq!(shard.by_address(ip("2001:db8:100:ff00::1")), Some(b));
    assert_eq!(shard.by_address(ip("2001:db8:100::")), Some(b));
    assert_eq!(shard.by_address(ip("2001:db8:101::1")), None);
    assert_eq!(shard.table().prefix_count(), 2);
    // The /56 ends: its addresses fall back to the /48.
    let c2 = change(
        &mut shard,
        &ending(lease_update(id(3), 1, p56, NOW, &none), NOW + 5),
        NOW + 5,
    );
    assert_eq!(shard.by_address(ip("2001:db8:100:2ff::1")), Some(b));
    assert_eq!(shard.latest(id(3), 1), Some(c2), "the client stays");
    assert_eq!(shard.table().prefix_count(), 1);
    // After a restart the indexes are the same.
    drop(shard);
    let (shard, _, _) = open(config_with(dir.path(), 1 << 20, 8, WEEK_S, LIMITS), NOW + 6);
    assert_eq!(shard.by_address(address(1)), Some(a));
    assert_eq!(shard.by_address(ip("2001:db8:100:2ff::1")), Some(b));
    assert_eq!(shard.by_address(ip("2001:db8:100:ff00::1")), Some(b));
    assert_eq!(shard.table().prefix_count(), 1);
}

#[test]
fn by_duid_spans_every_link_of_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), LIMITS);
    let none = RelayInfo::NONE;
    let mine = duid(7);
    let mut offsets = Vec::new();
    for (k, link) in [1u32, 2, 5].into_iter().enumerate() {
        let kind = LeaseKind::Address(address(100 + u32::try_from(k).unwrap()));
        offsets.push(change(
            &mut shard,
            &lease_update(&mine, link, kind, NOW, &none),
            NOW,
        ));
    }
    change(&mut shard, &update(id(8), 8, NOW, &none), NOW);
    // S-32 with `::`: all links of the DUID, each client (DUID + link) once.
    let by_duid = found_offsets(shard.by_list(List::Duid, key_hash(&mine)));
    offsets.sort_unstable();
    assert_eq!(by_duid, offsets);
    assert_eq!(shard.table().list(List::Duid, key_hash(&mine)).count(), 3);
    assert_eq!(shard.by_list(List::Duid, key_hash(id(8))).count(), 1);
    assert_eq!(shard.by_list(List::Duid, key_hash(id(9))).count(), 0);
    // A renewal on link 2 moves that client's record; the list follows.
    let kind = LeaseKind::Address(address(101));
    let renewed = change(
        &mut shard,
        &lease_update(&mine, 2, kind, NOW + 1, &none),
        NOW + 1,
    );
    let by_duid = found_offsets(shard.by_list(List::Duid, key_hash(&mine)));
    assert!(by_duid.contains(&renewed));
    assert_eq!(by_duid.len(), 3);
    for link in [1, 2, 5] {
        assert!(by_duid.contains(&shard.latest(&mine, link).unwrap()));
    }
}

#[test]
fn by_relay_id_remote_id_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), LIMITS);
    let r1: Vec<RelayInfo> = (0..10)
        .map(|n| {
            relay(
                b"\x00\x03\x00\x01relay-1",
                format!("\0\0\0\x09port-{n}").as_bytes(),
            )
        })
        .collect();
    let r2 = relay(b"\x00\x03\x00\x01relay-2", b"\0\0\0\x09shared-port");
    let none = RelayInfo::NONE;
    for n in 0..10u32 {
        change(&mut shard, &update(id(n), n, NOW, &r1[n as usize]), NOW);
    }
    for n in 10..15u32 {
        change(&mut shard, &update(id(n), n, NOW, &r2), NOW);
    }
    change(&mut shard, &update(id(15), 15, NOW, &none), NOW);
    let relay_count = |shard: &Shard, id: &[u8]| shard.by_list(List::Relay, key_hash(id)).count();
    let remote_count = |shard: &Shard, id: &[u8]| shard.by_list(List::Remote, key_hash(id)).count();
    // S-33.
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-1"), 10);
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-2"), 5);
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-3"), 0);
    // S-35: one remote-id per port, one shared by five clients.
    let port3 = found_offsets(shard.by_list(List::Remote, key_hash(b"\0\0\0\x09port-3")));
    assert_eq!(port3, [shard.latest(id(3), link_of(3)).unwrap()]);
    assert_eq!(remote_count(&shard, b"\0\0\0\x09shared-port"), 5);
    // S-34: by link (update puts client n on link 1 + n % 4).
    for link in 1..=4u32 {
        let want = sorted(
            (0..16u32)
                .filter(|&n| link_of(n) == link)
                .map(|n| shard.latest(id(n), link).unwrap()),
        );
        assert_eq!(
            found_offsets(shard.by_list(List::Link, u64::from(link))),
            want,
            "link {link}"
        );
    }
    assert_eq!(shard.by_list(List::Link, 9).count(), 0);
    // The record header carries the filter keys.
    let offset = shard.latest(id(12), link_of(12)).unwrap();
    let record = store_common::record_at(&shard.reader(), offset).unwrap();
    assert_eq!(
        record.header.relay_hash,
        key_hash(b"\x00\x03\x00\x01relay-2")
    );
    assert_eq!(
        record.header.remote_hash,
        key_hash(b"\0\0\0\x09shared-port")
    );
    // Client 0 is next heard through relay 2; client 1 directly: the lists follow (the
    // most recently seen relay information counts, S-35).
    change(&mut shard, &update(id(0), 0, NOW + 1, &r2), NOW + 1);
    change(&mut shard, &update(id(1), 1, NOW + 1, &none), NOW + 1);
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-1"), 8);
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-2"), 6);
    assert_eq!(remote_count(&shard, b"\0\0\0\x09port-0"), 0);
    assert_eq!(remote_count(&shard, b"\0\0\0\x09shared-port"), 6);
    // The same after a restart.
    drop(shard);
    let (shard, _, _) = open(config_with(dir.path(), 1 << 20, 8, WEEK_S, LIMITS), NOW + 2);
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-1"), 8);
    assert_eq!(relay_count(&shard, b"\x00\x03\x00\x01relay-2"), 6);
    assert_eq!(remote_count(&shard, b"\0\0\0\x09port-1"), 0);
    assert_eq!(remote_count(&shard, b"\0\0\0\x09port-2"), 1);
    assert_eq!(shard.by_list(List::Link, 1).count(), 4);
}

/// The preferred and valid lifetimes of lease `i` in the stored CLIENT_DATA template.
fn template_lifetimes(shard: &Shard, offset: u64, i: usize) -> (u32, u32) {
    let reader = shard.reader();
    let segment = reader.segment(offset / reader.segment_bytes()).unwrap();
    let record = reader.read_at(&segment, offset).unwrap();
    let view = Shard::view(&record).unwrap();
    let at = usize::from(view.time_fields.lifetimes_at()[i]);
    let word = |at: usize| u32::from_be_bytes(view.template[at..at + 4].try_into().unwrap());
    (word(at), word(at + 4))
}

#[test]
fn an_ended_lease_leaves_the_address_index_and_keeps_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), LIMITS);
    let none = RelayInfo::NONE;
    let live = change(&mut shard, &update(id(1), 1, NOW, &none), NOW);
    assert_eq!(template_lifetimes(&shard, live, 0), (1800, 3600));
    let ended = ending(update(id(1), 1, NOW, &none), NOW + 60);
    let offset = change(&mut shard, &ended, NOW + 60);
    assert_eq!(shard.by_address(address(1)), None);
    assert_eq!(shard.table().address_count(), 0);
    assert_eq!(shard.latest(id(1), link_of(1)), Some(offset));
    assert_eq!(shard.table().len(), 1);
    // D-4: the record reports the lease with zero lifetimes.
    let binding = shard.binding_at(offset).unwrap();
    assert_eq!(binding.leases().len(), 1);
    let entry = binding.leases()[0].entry(NOW + 60);
    assert_eq!((entry.preferred, entry.valid), (0, 0));
    assert_eq!(template_lifetimes(&shard, offset, 0), (0, 0));
    let record = store_common::record_at(&shard.reader(), offset).unwrap();
    assert_ne!(record.header.flags & FLAG_NO_LIVE_LEASE, 0);
    // The same end again, or the end of a lease never held, changes nothing.
    assert_eq!(shard.apply(&ended, NOW + 61).unwrap(), Applied::Unchanged);
    let stranger = ending(update(id(2), 2, NOW, &none), NOW + 61);
    assert_eq!(
        shard.apply(&stranger, NOW + 61).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(shard.table().len(), 1);
    // After a restart the ended lease stays out of the index.
    drop(shard);
    let (shard, _, _) = open(
        config_with(dir.path(), 1 << 20, 8, WEEK_S, LIMITS),
        NOW + 62,
    );
    assert_eq!(shard.by_address(address(1)), None);
    assert_eq!(shard.latest(id(1), link_of(1)), Some(offset));
}

#[test]
fn an_address_moves_to_its_new_holder() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), LIMITS);
    let none = RelayInfo::NONE;
    let x = LeaseKind::Address(address(50));
    let y = LeaseKind::Address(address(51));
    let z = LeaseKind::Address(address(52));
    // A releases X, B gets X: the index names B; A keeps X as an ended lease.
    change(&mut shard, &lease_update(id(1), 1, x, NOW, &none), NOW);
    change(
        &mut shard,
        &ending(lease_update(id(1), 1, x, NOW, &none), NOW + 10),
        NOW + 10,
    );
    let b = change(
        &mut shard,
        &lease_update(id(2), 1, x, NOW + 20, &none),
        NOW + 20,
    );
    assert_eq!(shard.by_address(address(50)), Some(b));
    // A's next change (a new address) does not take X back.
    let a = change(
        &mut shard,
        &lease_update(id(1), 1, y, NOW + 30, &none),
        NOW + 30,
    );
    assert_eq!(shard.by_address(address(50)), Some(b));
    assert_eq!(shard.by_address(address(51)), Some(a));
    // C's lease on Z runs out without a row; D gets Z; C's next change leaves Z with D.
    change(&mut shard, &lease_update(id(3), 1, z, NOW, &none), NOW);
    let later = NOW + 4_000;
    let d = change(&mut shard, &lease_update(id(4), 1, z, later, &none), later);
    assert_eq!(shard.by_address(address(52)), Some(d));
    let w = LeaseKind::Address(address(53));
    change(
        &mut shard,
        &lease_update(id(3), 1, w, later + 1, &none),
        later + 1,
    );
    assert_eq!(shard.by_address(address(52)), Some(d));
    assert_eq!(shard.table().address_count(), 4, "X, Y, Z and W");
    // Recovery agrees.
    drop(shard);
    let (shard, _, _) = open(
        config_with(dir.path(), 1 << 20, 8, WEEK_S, LIMITS),
        later + 2,
    );
    assert_eq!(shard.by_address(address(50)), Some(b));
    assert_eq!(shard.by_address(address(51)), Some(a));
    assert_eq!(shard.by_address(address(52)), Some(d));
    assert_eq!(shard.table().address_count(), 4);
}

// ---------------------------------------------------------------------------------------
// Capacities.

/// Apply `update` and expect it refused as `Full { index, max }`, with nothing changed.
fn assert_full(shard: &mut Shard, update: &LeaseUpdate<'_>, now: u32, index: &str, max: usize) {
    let reader = shard.reader();
    let end = reader.committed_end();
    let clients = shard.table().len();
    let addresses = shard.table().address_count();
    let prefixes = shard.table().prefix_count();
    let refused = shard.stats().refused;
    match shard.apply(update, now) {
        Err(Refused::Full(Full { index: i, max: m })) => assert_eq!((i, m), (index, max)),
        other => panic!("expected {index} full, got {other:?}"),
    }
    assert_eq!(shard.stats().refused, refused + 1, "counted");
    assert_eq!(reader.committed_end(), end, "nothing appended");
    assert_eq!(shard.table().len(), clients);
    assert_eq!(shard.table().address_count(), addresses);
    assert_eq!(shard.table().prefix_count(), prefixes);
}

const TIGHT: TableLimits = TableLimits {
    clients_max: 3,
    addresses_max: 3,
    prefixes_max: 1,
    links_max: 2,
    relay_ids_max: 1,
    remote_ids_max: 1,
};

#[test]
fn clients_max_refuses_a_new_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(
        dir.path(),
        TableLimits {
            addresses_max: 10,
            ..TIGHT
        },
    );
    let none = RelayInfo::NONE;
    for n in 0..3 {
        change(
            &mut shard,
            &lease_update(id(n), 1, lease(n, NOW).kind, NOW, &none),
            NOW,
        );
    }
    let fourth = lease_update(id(3), 1, lease(3, NOW).kind, NOW, &none);
    assert_full(&mut shard, &fourth, NOW, "clients", 3);
    assert_eq!(shard.latest(id(3), 1), None);
    assert_eq!(shard.by_address(address(3)), None);
    // An existing client still changes.
    let kind = lease(0, NOW).kind;
    change(
        &mut shard,
        &lease_update(id(0), 1, kind, NOW + 1, &none),
        NOW + 1,
    );
    assert_eq!(shard.stats().refused, 1);
}

#[test]
fn addresses_max_refuses_a_new_address_until_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(
        dir.path(),
        TableLimits {
            clients_max: 10,
            ..TIGHT
        },
    );
    let none = RelayInfo::NONE;
    for n in 0..3 {
        change(
            &mut shard,
            &lease_update(id(n), 1, lease(n, NOW).kind, NOW, &none),
            NOW,
        );
    }
    let new_client = lease_update(id(3), 1, lease(3, NOW).kind, NOW, &none);
    assert_full(&mut shard, &new_client, NOW, "addresses", 3);
    assert_eq!(
        shard.latest(id(3), 1),
        None,
        "the refused client was not added"
    );
    let second = lease_update(id(0), 1, lease(9, NOW).kind, NOW, &none);
    assert_full(&mut shard, &second, NOW, "addresses", 3);
    let binding = shard.binding_at(shard.latest(id(0), 1).unwrap()).unwrap();
    assert_eq!(binding.leases().len(), 1, "client 0 unchanged");
    // Renewing a held address needs no new entry.
    let renew = lease_update(id(1), 1, lease(1, NOW).kind, NOW + 1, &none);
    change(&mut shard, &renew, NOW + 1);
    // Ending one frees room.
    let end = ending(
        lease_update(id(2), 1, lease(2, NOW).kind, NOW, &none),
        NOW + 2,
    );
    change(&mut shard, &end, NOW + 2);
    change(&mut shard, &new_client, NOW + 3);
    assert_eq!(shard.table().address_count(), 3);
    assert_eq!(shard.stats().refused, 2);
}

#[test]
fn prefixes_max_refuses_a_new_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), TIGHT);
    let none = RelayInfo::NONE;
    let p1 = LeaseKind::Prefix(ip("2001:db8:100::"), 56);
    let p2 = LeaseKind::Prefix(ip("2001:db8:200::"), 56);
    change(&mut shard, &lease_update(id(0), 1, p1, NOW, &none), NOW);
    assert_full(
        &mut shard,
        &lease_update(id(1), 1, p2, NOW, &none),
        NOW,
        "prefixes",
        1,
    );
    assert_full(
        &mut shard,
        &lease_update(id(0), 1, p2, NOW, &none),
        NOW,
        "prefixes",
        1,
    );
    assert_eq!(shard.by_address(ip("2001:db8:200::1")), None);
    assert_eq!(shard.table().len(), 1);
    change(
        &mut shard,
        &lease_update(id(0), 1, p1, NOW + 1, &none),
        NOW + 1,
    );
}

#[test]
fn links_max_refuses_a_new_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(
        dir.path(),
        TableLimits {
            clients_max: 10,
            ..TIGHT
        },
    );
    let none = RelayInfo::NONE;
    change(
        &mut shard,
        &lease_update(id(0), 1, lease(0, NOW).kind, NOW, &none),
        NOW,
    );
    change(
        &mut shard,
        &lease_update(id(1), 2, lease(1, NOW).kind, NOW, &none),
        NOW,
    );
    let third = lease_update(id(2), 3, lease(2, NOW).kind, NOW, &none);
    assert_full(&mut shard, &third, NOW, "links", 2);
    assert_eq!(shard.by_list(List::Link, 3).count(), 0);
    // A known link still takes new clients.
    change(
        &mut shard,
        &lease_update(id(2), 2, lease(2, NOW).kind, NOW, &none),
        NOW,
    );
    assert_eq!(shard.by_list(List::Link, 2).count(), 2);
}

#[test]
fn relay_ids_max_and_remote_ids_max_refuse_new_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(
        dir.path(),
        TableLimits {
            clients_max: 10,
            ..TIGHT
        },
    );
    let first = relay(b"relay-1", b"\0\0\0\x09port-1");
    let other_relay = relay(b"relay-2", b"\0\0\0\x09port-1");
    let other_remote = relay(b"relay-1", b"\0\0\0\x09port-2");
    change(
        &mut shard,
        &lease_update(id(0), 1, lease(0, NOW).kind, NOW, &first),
        NOW,
    );
    let kind = lease(1, NOW).kind;
    assert_full(
        &mut shard,
        &lease_update(id(1), 1, kind, NOW, &other_relay),
        NOW,
        "relay_ids",
        1,
    );
    assert_full(
        &mut shard,
        &lease_update(id(1), 1, kind, NOW, &other_remote),
        NOW,
        "remote_ids",
        1,
    );
    // An existing client moving to a new relay-id is refused too, and keeps its keys.
    let own = lease(0, NOW).kind;
    assert_full(
        &mut shard,
        &lease_update(id(0), 1, own, NOW + 1, &other_relay),
        NOW + 1,
        "relay_ids",
        1,
    );
    assert_eq!(shard.by_list(List::Relay, key_hash(b"relay-1")).count(), 1);
    assert_eq!(shard.by_list(List::Relay, key_hash(b"relay-2")).count(), 0);
    // Known ids and no relay at all are fine.
    change(&mut shard, &lease_update(id(1), 1, kind, NOW, &first), NOW);
    let none = RelayInfo::NONE;
    change(
        &mut shard,
        &lease_update(id(2), 1, lease(2, NOW).kind, NOW, &none),
        NOW,
    );
    assert_eq!(shard.by_list(List::Relay, key_hash(b"relay-1")).count(), 2);
    assert_eq!(shard.stats().refused, 3);
}

#[test]
fn too_many_leases_for_one_client_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut shard = shard_with(dir.path(), LIMITS);
    let none = RelayInfo::NONE;
    let max = u32::try_from(LEASES_PER_CLIENT_MAX).unwrap();
    for k in 0..max {
        let kind = LeaseKind::Address(address(1_000 + k));
        change(&mut shard, &lease_update(id(1), 1, kind, NOW, &none), NOW);
    }
    let end = shard.reader().committed_end();
    let kind = LeaseKind::Address(address(1_000 + max));
    match shard.apply(&lease_update(id(1), 1, kind, NOW, &none), NOW) {
        Err(Refused::Binding(BindingError::TooManyLeases)) => {}
        other => panic!("expected TooManyLeases, got {other:?}"),
    }
    assert_eq!(shard.stats().refused, 1);
    assert_eq!(shard.reader().committed_end(), end);
    assert_eq!(shard.by_address(address(1_000 + max)), None);
    let binding = shard.binding_at(shard.latest(id(1), 1).unwrap()).unwrap();
    assert_eq!(binding.leases().len(), LEASES_PER_CLIENT_MAX);
    assert_eq!(shard.table().address_count(), LEASES_PER_CLIENT_MAX);
    // Renewing one of the 32 still works.
    let kind = LeaseKind::Address(address(1_000));
    change(
        &mut shard,
        &lease_update(id(1), 1, kind, NOW + 1, &none),
        NOW + 1,
    );
    // A DUID shorter than 3 octets is refused as well.
    let short = LeaseUpdate {
        duid: &[0, 1],
        ..lease_update(id(2), 1, kind, NOW, &none)
    };
    assert!(matches!(
        shard.apply(&short, NOW),
        Err(Refused::Binding(BindingError::BadDuid { len: 2 }))
    ));
    assert_eq!(shard.stats().refused, 2);
}

/// Kea gives a held address to another client (kea.md §7.1): ingest applies the new row and
/// ends the old holder's lease with `end_lease`, in either order (they may be on two
/// shards). Either way the index names the new holder, the old holder reports the address
/// with zero lifetimes (D-4), and its later changes do not take the address back.
#[test]
fn a_held_address_given_to_another_client_moves_in_either_order() {
    for end_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut shard = shard_with(dir.path(), LIMITS);
        let none = RelayInfo::NONE;
        let x = LeaseKind::Address(address(60));
        let y = LeaseKind::Address(address(61));
        change(&mut shard, &lease_update(id(1), 1, x, NOW, &none), NOW);
        let a = Shard::client_hash(id(1), 1);
        let give = lease_update(id(2), 1, x, NOW + 10, &none);
        let b = if end_first {
            assert!(matches!(
                shard.end_lease(a, &x, NOW + 10),
                Ok(Applied::Changed(_))
            ));
            change(&mut shard, &give, NOW + 10)
        } else {
            let b = change(&mut shard, &give, NOW + 10);
            assert!(matches!(
                shard.end_lease(a, &x, NOW + 10),
                Ok(Applied::Changed(_))
            ));
            b
        };
        assert_eq!(
            shard.by_address(address(60)),
            Some(b),
            "end first: {end_first}"
        );
        let held = shard.binding_at(shard.latest(id(1), 1).unwrap()).unwrap();
        let entry = held.leases()[0].entry(NOW + 10);
        assert_eq!((entry.preferred, entry.valid), (0, 0));
        // Ending it again changes nothing.
        assert_eq!(
            shard.end_lease(a, &x, NOW + 11).unwrap(),
            Applied::Unchanged
        );
        let a_later = change(
            &mut shard,
            &lease_update(id(1), 1, y, NOW + 20, &none),
            NOW + 20,
        );
        assert_eq!(shard.by_address(address(60)), Some(b));
        assert_eq!(shard.by_address(address(61)), Some(a_later));
        assert_eq!(shard.table().address_count(), 2);
        drop(shard);
        let (shard, _, _) = open(
            config_with(dir.path(), 1 << 20, 8, WEEK_S, LIMITS),
            NOW + 30,
        );
        assert_eq!(shard.by_address(address(60)), Some(b));
        assert_eq!(shard.by_address(address(61)), Some(a_later));
    }
}
