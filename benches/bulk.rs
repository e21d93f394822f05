//! Bulk Leasequery point queries (README "Benchmarks"): one QUERY_BY_ADDRESS answered from
//! the shards' indexes (what lqd does: src/server/lookup.rs) against the same query
//! answered by scanning the logs (what every other query type does), over two shards
//! holding 200,000 clients with an address each. The lookup is run the way a worker runs
//! it for a shard it owns; the session then reads the records found.

use std::hint::black_box;
use std::net::Ipv6Addr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use lqd::server::bulk::{BulkSession, Progress};
use lqd::server::lookup::lookup;
use lqd::server::select::Selection;
use lqd::store::model::{Lease, LeaseState, RelayInfo};
use lqd::store::table::TableLimits;
use lqd::store::{LeaseUpdate, LogConfig, LogReader, Shard, ShardConfig};
use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::client_data::LeaseKind;
use lqd::wire::{parse_query, Message, MessageType, OptionCode, Xid};

const CLIENTS: u32 = 200_000;
const NOW: u32 = 849_182_400;
const SERVER: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];
const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

fn config(dir: &Path) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir: dir.to_path_buf(),
            segment_bytes: 64 << 20,
            segments_max: 8,
            retention_age_s: 86_400,
            time_index_entries_max: 1 << 12,
        },
        table: TableLimits {
            clients_max: 1 << 18,
            addresses_max: 1 << 18,
            prefixes_max: 16,
            links_max: 16,
            relay_ids_max: 16,
            remote_ids_max: 16,
        },
    }
}

fn address(n: u32) -> Ipv6Addr {
    Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0000_0000u128 | u128::from(n))
}

fn duid(n: u32) -> [u8; 10] {
    let [a, b, c, d] = n.to_be_bytes();
    [0, 3, 0, 1, 2, 0, a, b, c, d]
}

fn fill(dirs: &[tempfile::TempDir]) -> Vec<Shard> {
    let mut shards: Vec<Shard> = dirs
        .iter()
        .map(|d| Shard::open(config(d.path()), NOW).expect("shard").0)
        .collect();
    for n in 1..=CLIENTS {
        let d = duid(n);
        let update = LeaseUpdate {
            duid: &d,
            link: 1,
            link_prefix: None,
            lease: Lease {
                kind: LeaseKind::Address(address(n)),
                state: LeaseState::Default,
                preferred_until: NOW + 1800,
                valid_until: NOW + 3600,
                ended_at: 0,
            },
            cltt: NOW,
            relay: &RelayInfo::NONE,
        };
        let shard = lqd::store::shard_of(&d, 2) as usize;
        shards[shard].apply(&update, NOW).expect("apply");
    }
    shards
}

fn by_address(n: u32) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let len = framed(&mut buf, |w| {
        write_query(
            w,
            &QueryMessage {
                msg_type: MessageType::Leasequery,
                xid: Xid::new(7).expect("xid"),
                client_id: &REQUESTOR,
                lq_query: Some(LqQueryOut {
                    query: QueryOut::Address(address(n)),
                    link_address: Ipv6Addr::UNSPECIFIED,
                    oro: &[],
                }),
                oro: &[OptionCode::LqBaseTime],
                start_time: None,
                end_time: None,
            },
        )
    })
    .expect("query");
    buf[2..len].to_vec()
}

/// Answer one query to its end; the octets written.
fn answer(shards: &[Shard], readers: &[LogReader], query: &[u8], indexed: bool) -> usize {
    let message = Message::parse(query).expect("message");
    let q = parse_query(&message, &SERVER).expect("query");
    let selection = Selection::from_query(&q).expect("selection");
    let mut session = BulkSession::new(q.xid, &REQUESTOR, selection, readers);
    let key = session
        .take_lookup(readers.len(), 0)
        .expect("a point query");
    if !indexed {
        session.lookup_failed();
    }
    for (i, shard) in shards.iter().enumerate() {
        let index = u16::try_from(i).expect("two shards");
        session.found(&lookup(shard, index, &key), readers);
    }
    let mut out = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let (n, progress) = session.fill(readers, &SERVER, NOW, &mut out, 64);
        total += n;
        if progress == Progress::Done {
            return total;
        }
    }
}

fn bench(c: &mut Criterion) {
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let shards = fill(&dirs);
    let readers: Vec<LogReader> = shards.iter().map(Shard::reader).collect();
    let query = by_address(CLIENTS / 2);
    assert_eq!(
        answer(&shards, &readers, &query, true),
        answer(&shards, &readers, &query, false),
        "both answer the same"
    );
    let mut group = c.benchmark_group("bulk_by_address");
    group.bench_function("index", |b| {
        b.iter(|| black_box(answer(&shards, &readers, &query, true)));
    });
    group.sample_size(10);
    group.bench_function("scan", |b| {
        b.iter(|| black_box(answer(&shards, &readers, &query, false)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
