//! Bounds of the ingest start-up: the snapshot keeps at most one row per lease the store
//! can index (the address-owner capacity); rows beyond it are counted and refused, never
//! held without bound (style.md S1).

use std::fmt::Write as _;

use lqd::ingest::links::Links;
use lqd::ingest::source::{KeaSource, Start};
use lqd::ingest::{Router, ShardMsg};

const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";

#[test]
fn snapshot_beyond_the_lease_capacity_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("kea-leases6.csv");
    let mut text = format!("{HEADER}\n");
    for n in 1..=5u32 {
        let duid = format!("00:03:00:01:02:00:00:00:00:{n:02x}");
        writeln!(
            text,
            "2001:db8:1::{n:x},{duid},4000,2100000000,1,3000,0,1,128,0,0,,,0,,1,0"
        )
        .unwrap();
    }
    // A renewal of an address already kept is not a new lease: still accepted.
    text.push_str(
        "2001:db8:1::1,00:03:00:01:02:00:00:00:00:01,4000,2100000100,1,3000,0,1,128,0,0,,,0,,1,0\n",
    );
    std::fs::write(&journal, text).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(64);
    let mut router = Router::new(vec![tx], Links::default(), 3);
    let mut source = KeaSource::new(&journal, 64 * 1024, 1024);
    let start = source.start(&mut router, None, 1).unwrap();
    assert_eq!(start, Start::Snapshot { rows: 3 });
    assert_eq!(router.stats().rejected.get("owners_full"), Some(&2));
    let changes = rx
        .try_iter()
        .filter(|m| matches!(m, ShardMsg::Change(_)))
        .count();
    assert_eq!(changes, 3);
}
