//! The mirror's rules on an in-memory database, without a server: D-4 deletes only the
//! owner's lease, R-34 conflicts, idempotence, the checkpoint in the same transaction, and
//! the DataMissing recovery (tombstones, then the sweep).

use std::path::Path;

use crate::wire::client_data::LeaseKind;

use super::binding::{Binding, Lease};
use super::follow::{Checkpoint, Notice, Sink};
use super::mirror::Mirror;
use super::output::Origin;

const SERVER: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];

fn mirror() -> Mirror {
    Mirror::open(Path::new(":memory:"), false).expect("in-memory database")
}

fn binding(client: u8, address: &str, valid: u32, base: u32, clt: u32) -> Binding {
    Binding {
        client_id: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, client],
        leases: vec![Lease {
            kind: LeaseKind::Address(address.parse().expect("address")),
            preferred: valid / 2,
            valid,
        }],
        clt_time: clt,
        relay: None,
        base_time: Some(base),
    }
}

fn live(m: &Mirror) -> Vec<(u8, String)> {
    m.live_leases()
        .expect("query")
        .into_iter()
        .map(|(id, lease)| (id[9], lease))
        .collect()
}

fn apply(m: &mut Mirror, b: &Binding, origin: Origin) {
    m.apply(Some(b), origin, None).expect("apply");
}

#[test]
fn applying_twice_changes_nothing_and_checkpoints_go_with_the_data() {
    let mut m = mirror();
    let b = binding(1, "2001:db8::1", 100, 1000, 0);
    let cp = Checkpoint {
        base_time: 1000,
        server_id: &SERVER,
        local_unix: 1_800_000_000,
        skew_s: 0,
    };
    m.apply(Some(&b), Origin::Live, Some(cp)).expect("apply");
    m.apply(Some(&b), Origin::Live, Some(cp)).expect("apply");
    assert_eq!(live(&m), [(1, "2001:db8::1".to_owned())]);
    let saved = m.saved().expect("state");
    assert_eq!(saved.base_time, Some(1000));
    assert_eq!(saved.server_id.as_deref(), Some(&SERVER[..]));
}

#[test]
fn zero_lifetime_deletes_only_the_owners_lease_d4() {
    let mut m = mirror();
    apply(
        &mut m,
        &binding(2, "2001:db8::7", 100, 1000, 0),
        Origin::CatchUp,
    );
    // Catch-up is not in change order: client 1's old release of the address comes
    // after client 2's allocation. It must not delete client 2's lease.
    apply(
        &mut m,
        &binding(1, "2001:db8::7", 0, 1000, 500),
        Origin::CatchUp,
    );
    assert_eq!(live(&m), [(2, "2001:db8::7".to_owned())]);
    apply(&mut m, &binding(2, "2001:db8::7", 0, 1001, 0), Origin::Live);
    assert_eq!(live(&m), []);
}

#[test]
fn conflicting_owners_most_recent_contact_wins_r34() {
    let mut m = mirror();
    apply(
        &mut m,
        &binding(1, "2001:db8::9", 100, 1000, 0),
        Origin::Live,
    );
    // An older claim (last contact 900 < 1000) loses.
    apply(
        &mut m,
        &binding(2, "2001:db8::9", 100, 1000, 100),
        Origin::CatchUp,
    );
    assert_eq!(live(&m), [(1, "2001:db8::9".to_owned())]);
    // A newer one wins.
    apply(
        &mut m,
        &binding(2, "2001:db8::9", 100, 1010, 0),
        Origin::Live,
    );
    assert_eq!(live(&m), [(2, "2001:db8::9".to_owned())]);
}

#[test]
fn recovery_keeps_what_the_stream_did_and_sweeps_the_rest() {
    let mut m = mirror();
    for (c, a) in [(1, "2001:db8::1"), (2, "2001:db8::2"), (3, "2001:db8::3")] {
        apply(&mut m, &binding(c, a, 100, 1000, 0), Origin::Bulk);
    }
    m.notice(&Notice::DataMissing {
        start_time: 900,
        end_time: 2000,
        recovering: true,
    })
    .expect("notice");
    // While the recovery runs the stream deletes client 1's lease and adds client 4's.
    apply(&mut m, &binding(1, "2001:db8::1", 0, 2001, 0), Origin::Live);
    apply(
        &mut m,
        &binding(4, "2001:db8::4", 100, 2001, 0),
        Origin::Live,
    );
    // The recovery answer was taken before: it still has client 1, not client 4; client 2
    // was released on the server while nobody listened (no report of it exists any more).
    apply(
        &mut m,
        &binding(1, "2001:db8::1", 100, 2000, 0),
        Origin::Recovery,
    );
    apply(
        &mut m,
        &binding(3, "2001:db8::3", 100, 2000, 0),
        Origin::Recovery,
    );
    m.notice(&Notice::RecoveryDone { bindings: 2 })
        .expect("notice");
    assert_eq!(
        live(&m),
        [(3, "2001:db8::3".to_owned()), (4, "2001:db8::4".to_owned())]
    );
}
