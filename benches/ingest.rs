//! Ingest throughput (issue 4 item 9): rows per second parsed, and parsed + routed + applied
//! to a shard, from a 1M-row Kea 2.2 journal (17 columns) generated once.
//!
//! The journal mixes what Kea writes (kea.md §13): address and prefix allocations, renewals
//! of the same leases, releases (valid 0) and relayed rows with `ISC.relays` user_context.
//! `parse` measures `csv::parse_row` alone; `apply` measures `KeaSource::poll` → `Router` →
//! bounded queue → `ingest::apply` on one shard, single-threaded, so one core does it all.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lqd::ingest::csv::{parse_row, Header};
use lqd::ingest::links::Links;
use lqd::ingest::source::KeaSource;
use lqd::ingest::tailer::{fingerprint, FileId, Position};
use lqd::ingest::{pipeline, Router};
use lqd::store::table::TableLimits;
use lqd::store::{LogConfig, Shard, ShardConfig};
use std::os::unix::fs::MetadataExt;

const ROWS: u32 = 1_000_000;
const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,\
prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";
/// An `ISC.relays` user_context as Kea 2.2 writes it (kea.md §13), commas escaped.
const RELAYS: &str = concat!(
    r#"{ "ISC": { "relays": [ { "hop": 0&#x2c "link": "2001:db8:2::1"&#x2c "options": "#,
    r#""0x0012000867652D302F302F310025000B0000118B636D2D303030310035000A000300010A0B0C0D0E01""#,
    r#"&#x2c "peer": "fe80::200:ff:fe00:1001" } ] } }"#
);

/// One journal row for step `i`: 250k clients, each allocated, renewed, released or relayed.
fn row(out: &mut String, i: u32) {
    let client = i % 250_000;
    let (b2, b3) = (client >> 8 & 0xff, client & 0xff);
    let duid = format!(
        "00:03:00:01:02:00:00:{:02x}:{b2:02x}:{b3:02x}",
        client >> 16
    );
    let expire = 1_795_896_229 + u64::from(i / 1000);
    let (hi, lo) = (client >> 16, client & 0xffff);
    let pd = 0x8 + hi;
    match i / 250_000 {
        0 => writeln!(
            out,
            "2001:db8:1::{hi:x}:{lo:x},{duid},3600,{expire},1,1800,0,1,128,0,0,,,0,,1,2"
        ),
        1 => writeln!(
            out,
            "2001:db8:{pd:x}:{lo:x}::,{duid},3600,{expire},1,1800,2,1,64,0,0,,,0,,1,2"
        ),
        2 => writeln!(
            out,
            "2001:db8:2::{hi:x}:{lo:x},{duid},3600,{expire},2,1800,0,1,128,0,0,,,0,{RELAYS},1,2"
        ),
        _ => writeln!(
            out,
            "2001:db8:1::{hi:x}:{lo:x},{duid},0,{expire},1,0,0,1,128,0,0,,,0,,1,2"
        ),
    }
    .expect("writing to a String");
}

fn journal(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let path = dir.join("kea-leases6.csv");
    let mut text = String::with_capacity(150 * ROWS as usize);
    text.push_str(HEADER);
    text.push('\n');
    for i in 0..ROWS {
        row(&mut text, i);
    }
    let mut file = std::fs::File::create(&path).expect("journal");
    file.write_all(text.as_bytes()).expect("journal");
    (path, text.len() as u64)
}

/// The position just after the journal's header, as a checkpoint would store it.
fn after_header(path: &std::path::Path) -> Position {
    let meta = std::fs::metadata(path).expect("journal");
    let offset = HEADER.len() as u64 + 1;
    let journal_file = std::fs::File::open(path).expect("journal");
    Position {
        file: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        offset,
        line: 1,
        fingerprint: fingerprint(&journal_file, offset)
            .expect("read")
            .expect("long enough"),
    }
}

fn shard_config(dir: &std::path::Path) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir: dir.to_path_buf(),
            segment_bytes: 256 << 20,
            segments_max: 16,
            retention_age_s: 7 * 86_400,
            time_index_entries_max: 1 << 16,
        },
        table: TableLimits {
            clients_max: 600_000,
            addresses_max: 1_200_000,
            prefixes_max: 600_000,
            links_max: 16,
            relay_ids_max: 16,
            remote_ids_max: 16,
        },
    }
}

fn parse(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = journal(dir.path());
    let text = std::fs::read_to_string(&path).expect("journal");
    let header = Header::parse(HEADER).expect("header");
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(u64::from(ROWS)));
    group.bench_function("parse_1m_rows", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for line in text.lines().skip(1) {
                ok += u32::from(parse_row(&header, black_box(line)).is_ok());
            }
            assert_eq!(ok, ROWS);
        });
    });
    group.finish();
}

fn apply(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = journal(dir.path());
    let meta = std::fs::metadata(&path).expect("journal");
    let offset = HEADER.len() as u64 + 1;
    let journal_file = std::fs::File::open(&path).expect("journal");
    let after_header = Position {
        file: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        offset,
        line: 1,
        fingerprint: fingerprint(&journal_file, offset)
            .expect("read")
            .expect("long enough"),
    };
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(u64::from(ROWS)));
    group.bench_function("parse_route_apply_1m_rows", |b| {
        b.iter_with_setup(
            || {
                // Opening a shard allocates and touches its tables and maps its first
                // segment: start-up work, kept out of the measurement.
                let store_dir = tempfile::tempdir().expect("tempdir");
                let (shard, _, _) = Shard::open(shard_config(store_dir.path()), 1).expect("shard");
                (store_dir, shard)
            },
            |(store_dir, mut shard)| {
                let (tx, rx) = crossbeam_channel::bounded(4096);
                let mut router = Router::new(vec![tx], Links::default(), 2_000_000);
                let mut source = KeaSource::new(&path, 64 * 1024, 1024);
                // Resume just after the header, as after a restart: every row is then read,
                // routed and applied (a snapshot start would keep only the last row per
                // address). Poll 1024 lines, drain the queue, repeat: one thread does it all.
                source
                    .start(&mut router, Some(after_header), 1)
                    .expect("resume");
                let mut total = 0usize;
                loop {
                    let lines = source.poll(&mut router, 2).expect("poll");
                    let (taken, _) = pipeline::drain(&mut shard, &rx, 2, 1 << 20, None);
                    total += taken;
                    if lines == 0 && taken == 0 {
                        break;
                    }
                }
                assert!(total >= ROWS as usize, "only {total} messages applied");
                black_box(shard.stats());
                (store_dir, shard)
            },
        );
    });
    group.finish();
}

/// Parse and route without applying: the ingest thread's share of the work.
fn route(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = journal(dir.path());
    let after_header = after_header(&path);
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(u64::from(ROWS)));
    group.bench_function("parse_route_1m_rows", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded(4096);
            let mut router = Router::new(vec![tx], Links::default(), 2_000_000);
            let mut source = KeaSource::new(&path, 64 * 1024, 1024);
            source
                .start(&mut router, Some(after_header), 1)
                .expect("resume");
            let mut total = 0usize;
            while source.poll(&mut router, 2).expect("poll") > 0 {
                total += rx.try_iter().count();
            }
            assert!(total >= ROWS as usize, "only {total} messages routed");
        });
    });
    group.finish();
}

criterion_group!(benches, parse, route, apply);
criterion_main!(benches);
