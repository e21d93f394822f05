//! Shard behaviour end to end: apply, query, supersede, recover.

mod store_common;

use lqd::store::model::{LeaseState, RelayInfo};
use lqd::store::table::List;
use lqd::store::{Applied, Cursor, Mode, Next, Shard};
use store_common::{address, config, duid, update, NOW};

#[test]
fn apply_query_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayInfo::NONE;
    let duids: Vec<[u8; 10]> = (0..100).map(duid).collect();
    {
        let (mut shard, checkpoint, recovered) =
            Shard::open(config(dir.path(), 1 << 20, 8), NOW).unwrap();
        assert_eq!(checkpoint, None);
        assert_eq!(recovered.records, 0);
        for n in 0..100u32 {
            let applied = shard
                .apply(&update(&duids[n as usize], n, NOW, &relay), NOW)
                .unwrap();
            assert!(matches!(applied, Applied::Changed(_)));
        }
        // The same row again changes nothing.
        assert_eq!(
            shard
                .apply(&update(&duids[7], 7, NOW, &relay), NOW)
                .unwrap(),
            Applied::Unchanged
        );
        // A renewal a second later is a change; the first record is superseded.
        let first = shard.latest(&duids[7], 1 + 7 % 4).unwrap();
        let renewed = shard
            .apply(&update(&duids[7], 7, NOW + 1, &relay), NOW + 1)
            .unwrap();
        let Applied::Changed(second) = renewed else {
            panic!("renewal changed nothing")
        };
        assert_ne!(first, second);
        assert_eq!(shard.by_address(address(7)), Some(second));
        assert_eq!(shard.by_list(List::Link, 4).count(), 25);
        shard
            .checkpoint(42, b"inode 7 offset 1234", NOW + 1)
            .unwrap();

        // A live cursor from the start sees 100 current changes (client 7 once, renewed).
        let reader = shard.reader();
        let mut cursor = Cursor::at_start(&reader, Mode::Live);
        let mut seen = 0;
        while let Next::Record(_) = cursor.next(&reader) {
            seen += 1;
        }
        assert_eq!(seen, 100);
        let mut all = Cursor::at_start(&reader, Mode::All);
        let mut count = 0;
        while let Next::Record(_) = all.next(&reader) {
            count += 1;
        }
        assert_eq!(count, 102, "101 changes and a checkpoint");
    }
    let (shard, checkpoint, recovered) =
        Shard::open(config(dir.path(), 1 << 20, 8), NOW + 2).unwrap();
    assert_eq!(recovered.records, 102);
    assert_eq!(recovered.corrupt, 0);
    assert_eq!(checkpoint.unwrap().bytes, b"inode 7 offset 1234");
    assert_eq!(shard.table().len(), 100);
    let offset = shard.by_address(address(7)).unwrap();
    let binding = shard.binding_at(offset).unwrap();
    assert_eq!(binding.duid.as_slice(), duids[7]);
    assert_eq!(binding.cltt, NOW + 1);
    assert_eq!(binding.leases()[0].state, LeaseState::Default);
}
