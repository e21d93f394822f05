//! Binding-store benchmarks (issue 3 item 8; README "Benchmarks"), over 1M records.
//!
//! - `store_append/records` and `store_append/bytes`: `Shard::apply` of a 1M-change
//!   workload in batches of 100k (one batch per iteration) into a shard with 256 MiB
//!   segments in a temporary directory on /tmp; after ten batches the shard is replaced by a
//!   fresh one (not timed), so the log grows from 0 to 1M records. The workload: 40% new
//!   clients with one IAADDR, 20% an IAPREFIX added to or renewed for a known client, 40%
//!   renewals of a known client's address; every client relayed (relay-id per link,
//!   remote-id per client). The same measurement, reported once per record and once per
//!   octet of log written (the average per batch). A segment roll in a batch is timed.
//!   Before the benchmarks, one untimed fill prints the record size and the changes per
//!   CPU second (useful on a busy machine, where wall time overstates the cost).
//! - `store_scan/all` and `store_scan/catch_up`: a cursor over a log prefilled once with the
//!   same 1M changes, from its first record to `Next::Pending`, in `Mode::All` (every
//!   record) and in `Mode::CatchUp` from the start of history (only records still their
//!   client's latest are yielded; the rest are skipped). Throughput is records traversed.
//!
//! Targets (not tests): ≥ 2M appends/s and ≥ 10M scanned records/s on one core.

use std::hint::black_box;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use lqd::store::model::{InlineBytes, Lease, LeaseState, Prefix, RelayInfo};
use lqd::store::table::TableLimits;
use lqd::store::ShardConfig;
use lqd::store::{Applied, Cursor, LeaseUpdate, LogConfig, LogReader, Mode, Next, Shard};
use lqd::wire::client_data::LeaseKind;

/// Changes per run.
const RECORDS: u64 = 1_000_000;
/// Server time at the start of the workload (2026-11-28T12:00:00Z).
const NOW: u32 = 849_182_400;
/// Changes per second of server time: a busy Kea server.
const CHANGES_PER_SECOND: u64 = 10_000;
const SEGMENT_BYTES: usize = 256 << 20;
/// Enough that 1M records never recycle a segment.
const SEGMENTS_MAX: usize = 8;
const LINKS: u32 = 64;

fn config(dir: &Path) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir: dir.to_path_buf(),
            segment_bytes: SEGMENT_BYTES,
            segments_max: SEGMENTS_MAX,
            retention_age_s: 7 * 86_400,
            time_index_entries_max: 1 << 16,
        },
        table: TableLimits {
            clients_max: 1 << 20,
            addresses_max: 1 << 20,
            prefixes_max: 1 << 20,
            links_max: 1024,
            relay_ids_max: 1024,
            remote_ids_max: 1 << 20,
        },
    }
}

/// What one change does.
#[derive(Clone, Copy)]
enum Kind {
    /// A new client gets its address.
    NewClient,
    /// A known client gets or renews a delegated prefix.
    Prefix,
    /// A known client renews its address.
    Renewal,
}

/// One change of the workload.
#[derive(Clone, Copy)]
struct Change {
    client: u32,
    kind: Kind,
    time: u32,
    /// Varies the lifetimes so that two changes of a client in one second still differ.
    jitter: u32,
}

/// splitmix64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn low32(x: u64) -> u32 {
    u32::try_from(x & u64::from(u32::MAX)).expect("masked")
}

/// The deterministic workload, generated before any timing.
fn workload(n: u64) -> Vec<Change> {
    let mut clients = 0u32;
    (0..n)
        .map(|i| {
            let r = mix(i);
            let time = NOW + u32::try_from(i / CHANGES_PER_SECOND).expect("fits");
            let jitter = low32(i % 1024);
            let pick = r % 10;
            if clients == 0 || pick < 4 {
                clients += 1;
                return Change {
                    client: clients - 1,
                    kind: Kind::NewClient,
                    time,
                    jitter,
                };
            }
            let client = low32(r >> 16) % clients;
            let kind = if pick < 6 {
                Kind::Prefix
            } else {
                Kind::Renewal
            };
            Change {
                client,
                kind,
                time,
                jitter,
            }
        })
        .collect()
}

/// DUID-LLT of a client: consecutive MAC addresses.
fn duid(client: u32) -> [u8; 14] {
    let m = client.to_be_bytes();
    [
        0, 1, 0, 1, 0x32, 0x9d, 0x7e, 0xc0, 0x02, 0x42, m[0], m[1], m[2], m[3],
    ]
}

fn link_of(client: u32) -> u32 {
    1 + client % LINKS
}

fn relay(client: u32, link: u32) -> RelayInfo {
    let l = link.to_be_bytes();
    let c = client.to_be_bytes();
    let mut relay = RelayInfo::NONE;
    relay.relay_id =
        InlineBytes::new(&[0, 3, 0, 1, 0x0a, 0, l[0], l[1], l[2], l[3]]).expect("fits");
    relay.remote_id = InlineBytes::new(&[0, 0, 0x0d, 0xe9, c[0], c[1], c[2], c[3]]).expect("fits");
    relay.link_address = Ipv6Addr::new(0x2001, 0xdb8, 0xf000, 0, 0, 0, 0, 1);
    relay.peer_address = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    relay
}

fn lease(change: &Change) -> Lease {
    let [hi, lo] =
        [change.client >> 16, change.client & 0xffff].map(|x| u16::try_from(x).expect("16 bits"));
    let kind = match change.kind {
        Kind::NewClient | Kind::Renewal => {
            LeaseKind::Address(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, hi, lo))
        }
        Kind::Prefix => {
            LeaseKind::Prefix(Ipv6Addr::new(0x2001, 0xdb9, hi, lo << 8, 0, 0, 0, 0), 56)
        }
    };
    let valid_until = change.time + 3600 + change.jitter;
    Lease {
        kind,
        state: LeaseState::Default,
        preferred_until: valid_until - 1800,
        valid_until,
        ended_at: 0,
    }
}

/// Apply every change; returns how many changed the shard.
fn apply_all(shard: &mut Shard, changes: &[Change]) -> u64 {
    let mut changed = 0;
    for change in changes {
        let duid = duid(change.client);
        let link = link_of(change.client);
        let relay = relay(change.client, link);
        let update = LeaseUpdate {
            duid: &duid,
            link,
            link_prefix: Some(Prefix {
                address: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0),
                len: 48,
            }),
            lease: lease(change),
            cltt: change.time,
            relay: &relay,
        };
        let applied = shard
            .apply(&update, change.time)
            .expect("the shard has room");
        changed += u64::from(matches!(applied, Applied::Changed(_)));
    }
    changed
}

fn open(dir: &Path) -> Shard {
    let (shard, _, _) = Shard::open(config(dir), NOW).expect("open the shard");
    shard
}

/// A temporary directory on /tmp (not the repository's file system).
fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/tmp").expect("temp dir in /tmp")
}

/// Changes per timed batch: ten batches make the 1M-change workload.
const BATCH: usize = 100_000;

/// A shard being filled batch by batch; replaced by a fresh one once it holds the whole
/// workload, so every batch lands on a log of 0..1M records.
struct Appender<'c> {
    changes: &'c [Change],
    shard: Option<(Shard, tempfile::TempDir)>,
    next_batch: usize,
}

impl Appender<'_> {
    /// `iters` batches; only the applies are timed.
    fn timed_batches(&mut self, iters: u64) -> Duration {
        let batches = self.changes.len() / BATCH;
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if self.shard.is_none() || self.next_batch == batches {
                self.shard = None;
                let dir = temp_dir();
                self.shard = Some((open(dir.path()), dir));
                self.next_batch = 0;
            }
            let (shard, _) = self.shard.as_mut().expect("opened above");
            let batch = &self.changes[self.next_batch * BATCH..][..BATCH];
            let start = Instant::now();
            black_box(apply_all(shard, batch));
            total += start.elapsed();
            self.next_batch += 1;
        }
        total
    }
}

/// CPU time this thread has used (user + system), from /proc, in 10 ms ticks.
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// One untimed run of the whole workload into a fresh shard: the shard, how many changes
/// wrote records, the log octets they took, and the run's wall and CPU time.
fn fill(changes: &[Change]) -> (Shard, tempfile::TempDir, u64, u64) {
    let dir = temp_dir();
    let mut shard = open(dir.path());
    let start = shard.reader().committed_end();
    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    let changed = apply_all(&mut shard, changes);
    let (wall, cpu) = (wall.elapsed(), thread_cpu_time() - cpu);
    let bytes = shard.reader().committed_end() - start;
    eprintln!(
        "store fill: {changed} of {} changes wrote records, {bytes} octets of log ({} per \
         record); {:.2} s wall, {:.2} s CPU: {:.0} changes per CPU second",
        changes.len(),
        bytes / changed.max(1),
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        changes.len() as f64 / cpu.as_secs_f64().max(0.01)
    );
    (shard, dir, changed, bytes)
}

fn append(c: &mut Criterion) {
    let changes = workload(RECORDS);
    let (_, _, _, bytes) = fill(&changes);
    let batches = (changes.len() / BATCH) as u64;
    let mut appender = Appender {
        changes: &changes,
        shard: None,
        next_batch: 0,
    };
    let mut group = c.benchmark_group("store_append");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("records", |b| {
        b.iter_custom(|iters| appender.timed_batches(iters));
    });
    group.throughput(Throughput::Bytes(bytes / batches));
    group.bench_function("bytes", |b| {
        b.iter_custom(|iters| appender.timed_batches(iters));
    });
    group.finish();
}

/// Drive `cursor` to the committed end; returns (records traversed, records yielded).
fn scan_to_end(reader: &LogReader, cursor: &mut Cursor) -> (u64, u64) {
    let start = cursor.position();
    let mut yielded = 0u64;
    let mut sum = 0u64;
    loop {
        match cursor.next(reader) {
            Next::Record(record) => {
                yielded += 1;
                sum = sum.wrapping_add(record.header.sequence);
            }
            Next::Again => {}
            Next::Pending => break,
            Next::HorizonPassed => panic!("nothing was recycled"),
        }
    }
    black_box(sum);
    (cursor.position() - start, yielded)
}

fn scan(c: &mut Criterion) {
    let (shard, _dir, _, _) = fill(&workload(RECORDS));
    let reader = shard.reader();
    let (_, records) = scan_to_end(&reader, &mut Cursor::at_start(&reader, Mode::All));
    let catch_up = Cursor::catch_up(&reader, NOW).expect("history starts at NOW");
    let (_, latest) = scan_to_end(&reader, &mut { catch_up });
    eprintln!("store_scan: {records} records in the log, {latest} of them their client's latest");
    let mut group = c.benchmark_group("store_scan");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(records));
    group.bench_function("all", |b| {
        b.iter(|| scan_to_end(&reader, &mut Cursor::at_start(&reader, Mode::All)));
    });
    group.bench_function("catch_up", |b| {
        b.iter(|| {
            let mut cursor = Cursor::catch_up(&reader, NOW).expect("history starts at NOW");
            scan_to_end(&reader, &mut cursor)
        });
    });
    group.finish();
}

criterion_group!(benches, append, scan);
criterion_main!(benches);
