//! Crash recovery (issue 3 item 7): `kill -9` a process at random points while it applies
//! changes to a shard, then check that recovery rebuilds exactly the state at the last
//! committed record.
//!
//! 1. [`Script`] is a deterministic, bounded sequence of steps: new clients (an IAADDR or an
//!    IAPREFIX), renewals (every step writes new lifetimes, so every change is a real
//!    change), more leases for known clients, lease ends, relay information that comes and
//!    goes, and now and then an ingest checkpoint (with long gaps). Step `i` happens at
//!    server time `NOW + i / OPS_PER_SECOND`. The script keeps its own model of every
//!    client's binding, built with the store's `Binding` the same way the shard builds it.
//! 2. The parent re-runs this test binary as a child (`crash_child`, ignored unless
//!    `LQD_CRASH_DIR` names a data directory). The child opens a shard with 64 KiB segments
//!    and at most 4 of them, so that rolls, compaction (carried records) and recycling
//!    happen every few hundred steps, applies the script and prints `step N` after each
//!    committed step.
//! 3. The parent kills the child with SIGKILL a random 1..=100 ms after it said `ready`.
//!    Then it starts a second child on the same directory, which recovers the killed log
//!    and continues the script from there, and kills it 1..=60 ms after starting it, so the
//!    kill may also hit a recovery (the cut of a torn tail, the repair of flags) or the
//!    first appends after one. Each child reports the step it recovered to before `ready`.
//! 4. It reopens the shard and finds how many steps survived: the newest change time `s` in
//!    the log (carried copies keep their change time) and the original records at `s` say
//!    that the first `OPS_PER_SECOND * (s - NOW) + count` steps are in the log. That count
//!    must be the children's last report or one more (the step in flight at the kill).
//! 5. It replays that many steps of the script into a fresh model and compares: every
//!    client's latest record decodes to the model's binding, the address and prefix indexes
//!    point at it exactly for live leases, no extra client exists, and the checkpoint
//!    returned is the last one in the replayed prefix; every change record is flagged
//!    superseded exactly when it is not its client's latest, and a catch-up from the horizon
//!    yields each client changed since then once, at its latest record.
//! 6. It appends more steps to the recovered shard, reopens it once more and checks the same
//!    things again, so the log is healthy after recovery, not just readable.
//!
//! At least `ITERATIONS_MIN` iterations run, each in its own directory; no new iteration
//! starts after `TEST_TIME_MAX`.
//!
//! A kill lands inside a segment recycle only now and then; the second test,
//! `a_kill_during_a_recycle_keeps_catch_up_complete`, builds every such state on purpose.

mod store_common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lqd::store::model::{Binding, InlineBytes, Lease, LeaseState, Prefix, RelayInfo};
use lqd::store::record::{
    decode_checkpoint, encode_change, encode_checkpoint, ChangeOut, FLAG_CARRIED, KIND_CHANGE,
    KIND_CHECKPOINT,
};
use lqd::store::{
    Applied, Checkpoint, Cursor, LeaseUpdate, LogWriter, Mode, Next, Recovered, Shard, ShardConfig,
};
use lqd::wire::client_data::LeaseKind;
use store_common::{duid, NOW};

/// Environment variable naming the child's data directory.
const DIR_VAR: &str = "LQD_CRASH_DIR";
/// Prefix of the child's protocol lines (libtest prints its own lines too).
const LINE_PREFIX: &str = "lqd-crash ";
/// Client slots: `CLIENTS / 2` DUIDs, each on two links. Their latest records take about a
/// third of the four small segments, so compaction always frees a segment.
const CLIENTS: u32 = 160;
/// Lease slots per client (alternately addresses and delegated prefixes).
const LEASES_MAX: u32 = 4;
/// Steps per second of server time.
const OPS_PER_SECOND: u64 = 3;
/// Bound on the child's steps (it is normally killed long before).
const STEPS_MAX: u64 = 200_000;
/// Steps appended to the recovered shard before the second reopen.
const STEPS_AFTER: u64 = 64;
/// One checkpoint every this many steps, on average, in the first `CHECKPOINT_STEPS` steps
/// of every `CHECKPOINT_PERIOD`; none in the rest, long enough (a dozen segments) that the
/// latest checkpoint only survives by being carried forward.
const CHECKPOINT_EVERY: u64 = 32;
const CHECKPOINT_STEPS: u64 = 512;
const CHECKPOINT_PERIOD: u64 = 2048;
const ITERATIONS: usize = 100;
const ITERATIONS_MIN: usize = 50;
const TEST_TIME_MAX: Duration = Duration::from_secs(60);
const SEGMENT_BYTES: usize = 64 << 10;
const SEGMENTS_MAX: usize = 4;

/// splitmix64: the step's randomness is a pure function of its number.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xorshift64 for the kill delays.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `x % n` as a u32 (n is a u32, so the remainder fits).
fn below(x: u64, n: u32) -> u32 {
    u32::try_from(x % u64::from(n)).expect("remainder below a u32")
}

fn u16_of(n: u32) -> u16 {
    u16::try_from(n).expect("small number")
}

fn shard_config(dir: &Path) -> ShardConfig {
    let mut config = store_common::config(dir, SEGMENT_BYTES, SEGMENTS_MAX);
    // Ended leases are pruned after the age retention: keep it far beyond the script's
    // time span (STEPS_MAX / OPS_PER_SECOND seconds), so the model never prunes.
    config.log.retention_age_s = 10 * 365 * 86_400;
    config.table.clients_max = 4096;
    config.table.addresses_max = 8192;
    config.table.prefixes_max = 8192;
    config
}

/// Server time of step `step`.
fn time_of(step: u64) -> u32 {
    NOW + u32::try_from(step / OPS_PER_SECOND).expect("script time fits")
}

fn client_duid(client: u32) -> [u8; 10] {
    duid(client / 2)
}

/// Links 1 and 3 for even clients, 2 and 4 for odd ones: a DUID is on two links.
fn client_link(client: u32) -> u32 {
    1 + client % 4
}

fn link_prefix(link: u32) -> Prefix {
    Prefix {
        address: Ipv6Addr::new(0x2001, 0xdb8, u16_of(link), 0, 0, 0, 0, 0),
        len: 48,
    }
}

/// Lease slot `slot` of `client`: even slots are addresses, odd slots /56 prefixes; no two
/// clients share one, so the address index has a single answer.
fn lease_kind(client: u32, slot: u32) -> LeaseKind {
    let (c, s) = (u16_of(client), u16_of(slot));
    if slot.is_multiple_of(2) {
        LeaseKind::Address(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, c, s))
    } else {
        LeaseKind::Prefix(
            Ipv6Addr::new(0x2001, 0xdb8, 0x1000 + c, s << 8, 0, 0, 0, 0),
            56,
        )
    }
}

/// The address the index should answer for a lease (a prefix is found by its base).
fn lease_address(kind: LeaseKind) -> Ipv6Addr {
    match kind {
        LeaseKind::Address(a) | LeaseKind::Prefix(a, _) => a,
    }
}

/// Relay information: every third client is relayed, through one of four relays; the
/// remote-id and the stored RELAY-FORW change with `variant`.
fn relay_of(client: u32, variant: u32) -> RelayInfo {
    if !client.is_multiple_of(3) {
        return RelayInfo::NONE;
    }
    let relay = u8::try_from(client % 4).expect("below 4");
    let port = u8::try_from(client % 16).expect("below 16");
    let variant = u8::try_from(variant % 2).expect("below 2");
    let mut info = RelayInfo::NONE;
    info.relay_id = InlineBytes::new(&[0, 3, 0, 1, 0xaa, 0xbb, 0xcc, 0, 0, relay]).expect("fits");
    info.remote_id = InlineBytes::new(&[0, 0, 0x0d, 0xe9, b'p', port, variant]).expect("fits");
    info.link_address = Ipv6Addr::new(0x2001, 0xdb8, 0xf0, u16::from(relay), 0, 0, 0, 1);
    info.peer_address = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(relay) + 1);
    if client.is_multiple_of(6) {
        let forw: Vec<u8> = (0..24 + variant).map(|i| i ^ relay).collect();
        info.relay_forw = InlineBytes::new(&forw).expect("fits");
    }
    info
}

/// What one step does.
#[derive(Clone, Debug)]
enum Op {
    /// A lease change of `client` (one Kea row).
    Change {
        client: u32,
        lease: Lease,
        /// Which of the client's two relay informations ([`relay_of`]).
        relay: u32,
    },
    /// An ingest checkpoint.
    Checkpoint(Checkpoint),
}

/// One step of the script.
#[derive(Clone, Debug)]
struct Step {
    time: u32,
    op: Op,
}

/// The deterministic script and its model of every client.
struct Script {
    step: u64,
    clients: Vec<Option<Binding>>,
    checkpoint: Option<Checkpoint>,
}

impl Script {
    fn new() -> Self {
        Self {
            step: 0,
            clients: vec![None; CLIENTS as usize],
            checkpoint: None,
        }
    }

    /// The next step, already applied to the model.
    fn next_step(&mut self) -> Step {
        let step = self.step;
        let r = mix(step);
        let time = time_of(step);
        let op =
            if r.is_multiple_of(CHECKPOINT_EVERY) && step % CHECKPOINT_PERIOD < CHECKPOINT_STEPS {
                Op::Checkpoint(Checkpoint {
                    id: step,
                    bytes: format!("kea-leases6.csv inode 4711 offset {}", step * 97).into_bytes(),
                })
            } else {
                self.change(r, step, time)
            };
        self.apply(&op, time);
        self.step += 1;
        Step { time, op }
    }

    /// A change for a random client: a new lease or a renewal, or the end of a live lease.
    fn change(&self, r: u64, step: u64, time: u32) -> Op {
        let client = below(r >> 8, CLIENTS);
        let relay = below(r >> 44, 2);
        let binding = self.clients[client as usize].as_ref();
        let live: Vec<&Lease> = binding
            .map(|b| b.leases().iter().filter(|l| l.ended_at == 0).collect())
            .unwrap_or_default();
        if below(r >> 24, 8) < 2 && !live.is_empty() {
            let pick = below(r >> 32, u32::try_from(live.len()).expect("few leases"));
            let previous = live[pick as usize];
            let state = if r >> 40 & 1 == 0 {
                LeaseState::Released
            } else {
                LeaseState::ExpiredReclaimed
            };
            let lease = Lease {
                state,
                ended_at: time,
                ..*previous
            };
            return Op::Change {
                client,
                lease,
                relay,
            };
        }
        // Unique lifetimes per step: a renewal always changes the binding.
        let valid_until = NOW + 1_000_000 + u32::try_from(step).expect("below STEPS_MAX");
        let lease = Lease {
            kind: lease_kind(client, below(r >> 20, LEASES_MAX)),
            state: LeaseState::Default,
            preferred_until: valid_until - 1800,
            valid_until,
            ended_at: 0,
        };
        Op::Change {
            client,
            lease,
            relay,
        }
    }

    /// The model: what the shard does to a binding, written out independently.
    fn apply(&mut self, op: &Op, time: u32) {
        match op {
            Op::Checkpoint(checkpoint) => self.checkpoint = Some(checkpoint.clone()),
            Op::Change {
                client,
                lease,
                relay,
            } => {
                let slot = &mut self.clients[*client as usize];
                let mut binding = slot.clone().unwrap_or_else(|| {
                    Binding::new(&client_duid(*client), client_link(*client)).expect("valid")
                });
                binding.cltt = time;
                binding.link_prefix = Some(link_prefix(client_link(*client)));
                binding.relay = relay_of(*client, *relay);
                binding.upsert(*lease).expect("at most LEASES_MAX leases");
                assert_ne!(slot.as_ref(), Some(&binding), "every step is a real change");
                *slot = Some(binding);
            }
        }
    }

    /// A script advanced by `steps` steps.
    fn replayed(steps: u64) -> Self {
        let mut script = Self::new();
        for _ in 0..steps {
            script.next_step();
        }
        script
    }
}

/// Apply one step to the shard; every step must commit. Returns its record's offset.
fn apply_step(shard: &mut Shard, step: &Step) -> u64 {
    match &step.op {
        Op::Checkpoint(checkpoint) => shard
            .checkpoint(checkpoint.id, &checkpoint.bytes, step.time)
            .expect("checkpoint committed"),
        Op::Change {
            client,
            lease,
            relay,
        } => {
            let duid = client_duid(*client);
            let link = client_link(*client);
            let relay = relay_of(*client, *relay);
            let update = LeaseUpdate {
                duid: &duid,
                link,
                link_prefix: Some(link_prefix(link)),
                lease: *lease,
                cltt: step.time,
                relay: &relay,
            };
            match shard.apply(&update, step.time).expect("change committed") {
                Applied::Changed(offset) => offset,
                Applied::Unchanged => panic!("step changed nothing: {step:?}"),
            }
        }
    }
}

/// The child: recover whatever the directory holds (a previous child's killed log, or
/// nothing), then continue the script until killed, reporting each committed step.
fn run_child(dir: &Path) {
    let (mut shard, _, _) = Shard::open(shard_config(dir), NOW).expect("child opens the shard");
    let mut script = Script::replayed(steps_in_log(&shard));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{LINE_PREFIX}step {}", script.step).expect("stdout");
    writeln!(out, "{LINE_PREFIX}ready").expect("stdout");
    out.flush().expect("stdout");
    while script.step < STEPS_MAX {
        let step = script.next_step();
        apply_step(&mut shard, &step);
        // Written and flushed only after the step committed: a lower bound for the parent.
        writeln!(out, "{LINE_PREFIX}step {}", script.step).expect("stdout");
        out.flush().expect("stdout");
    }
}

#[test]
#[ignore = "the child process of kill_9_at_random_points_recovers_the_last_committed_state"]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    run_child(Path::new(&dir));
}

/// A child's protocol line.
enum Report {
    Ready,
    Step(u64),
}

fn parse_report(line: &str) -> Option<Report> {
    let rest = line.strip_prefix(LINE_PREFIX)?.trim_end();
    if rest == "ready" {
        return Some(Report::Ready);
    }
    let n = rest.strip_prefix("step ")?.parse().expect("step number");
    Some(Report::Step(n))
}

/// Run one child on `dir` and kill it `delay` after it is ready (`after_ready`) or after it
/// was started (then the kill may hit its recovery); returns the last step it reported
/// committed.
fn run_and_kill(dir: &Path, delay: Duration, after_ready: bool) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--ignored"])
        .env(DIR_VAR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // Only whole lines count: the kill may cut the last one.
        while stdout.read_line(&mut line).expect("child stdout") > 0 && line.ends_with('\n') {
            if let Some(report) = parse_report(&line) {
                if tx.send(report).is_err() {
                    break;
                }
            }
            line.clear();
        }
    });
    let mut reports = Vec::new();
    if after_ready {
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Report::Ready) => break,
                Ok(report) => reports.push(report),
                Err(e) => panic!("the child never got ready: {e}"),
            }
        }
    }
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().expect("child status") {
        assert!(status.success(), "the child failed on its own: {status}");
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread");
    reports
        .into_iter()
        .chain(rx.try_iter())
        .filter_map(|r| match r {
            Report::Step(n) => Some(n),
            Report::Ready => None,
        })
        .max()
        .unwrap_or(0)
}

/// How many script steps the log holds, from its records alone.
///
/// The newest second `s` of any record belongs to the last steps; carried copies keep their
/// change time but are flagged (changes) or repeat an id (checkpoints), so the original
/// records at `s` are the first `count` steps of that second.
fn steps_in_log(shard: &Shard) -> u64 {
    let reader = shard.reader();
    let mut cursor = Cursor::at_start(&reader, Mode::All);
    let mut newest: Option<u32> = None;
    let mut at_newest: Vec<(u8, u64)> = Vec::new();
    loop {
        let record = match cursor.next(&reader) {
            Next::Record(record) => record,
            Next::Again => continue,
            Next::Pending => break,
            Next::HorizonPassed => panic!("a scan from the oldest record passed the horizon"),
        };
        let h = record.header;
        let original = match h.kind {
            KIND_CHANGE if h.flags & FLAG_CARRIED == 0 => (KIND_CHANGE, h.sequence),
            KIND_CHECKPOINT => {
                let (id, _) = decode_checkpoint(record.payload).expect("checkpoint decodes");
                (KIND_CHECKPOINT, id)
            }
            _ => continue,
        };
        if newest.is_none_or(|t| h.change_time > t) {
            newest = Some(h.change_time);
            at_newest.clear();
        }
        if newest == Some(h.change_time) && !at_newest.contains(&original) {
            at_newest.push(original);
        }
    }
    newest.map_or(0, |t| {
        u64::from(t - NOW) * OPS_PER_SECOND + at_newest.len() as u64
    })
}

/// The shard holds exactly the script's model.
fn assert_state(shard: &Shard, checkpoint: Option<&Checkpoint>, script: &Script, what: &str) {
    let known = script.clients.iter().flatten().count();
    assert_eq!(shard.table().len(), known, "{what}: client count");
    for (client, binding) in script.clients.iter().enumerate() {
        let Some(binding) = binding else {
            continue;
        };
        let client = u32::try_from(client).expect("below CLIENTS");
        let latest = shard
            .latest(&client_duid(client), client_link(client))
            .unwrap_or_else(|| panic!("{what}: client {client} lost"));
        let got = shard.binding_at(latest).expect("latest record retained");
        assert_eq!(&got, binding, "{what}: client {client}");
        for lease in binding.leases() {
            let owner = (lease.ended_at == 0).then_some(latest);
            assert_eq!(
                shard.by_address(lease_address(lease.kind)),
                owner,
                "{what}: index of {:?} of client {client}",
                lease.kind
            );
        }
    }
    assert_eq!(checkpoint, script.checkpoint.as_ref(), "{what}: checkpoint");
    assert_superseded_flags(shard, what);
    assert_catch_up(shard, script, what);
}

/// Every change record is marked superseded exactly when it is not its client's latest
/// (a kill between an append and the supersede of the previous record leaves a stale flag
/// that recovery must repair, or compaction would carry an old state forward).
fn assert_superseded_flags(shard: &Shard, what: &str) {
    let reader = shard.reader();
    let mut cursor = Cursor::at_start(&reader, Mode::All);
    loop {
        let record = match cursor.next(&reader) {
            Next::Record(record) => record,
            Next::Again => continue,
            Next::Pending => return,
            Next::HorizonPassed => panic!("{what}: a scan from the oldest record passed"),
        };
        if record.header.kind != KIND_CHANGE {
            continue;
        }
        let table = shard.table();
        let slot = table.lookup(record.header.client_hash);
        let latest = slot.map(|slot| table.record(slot));
        assert_eq!(
            record.superseded,
            latest != Some(record.offset),
            "{what}: superseded flag of the record at {}",
            record.offset
        );
    }
}

/// A catch-up from the horizon yields each client changed since then once, at its latest
/// record (S-56), and nothing else.
fn assert_catch_up(shard: &Shard, script: &Script, what: &str) {
    let reader = shard.reader();
    let since = reader.horizon();
    let mut cursor = Cursor::catch_up(&reader, since).expect("the horizon is not before itself");
    let mut got = Vec::new();
    loop {
        match cursor.next(&reader) {
            Next::Record(record) => got.push((record.header.client_hash, record.offset)),
            Next::Again => continue,
            Next::Pending => break,
            Next::HorizonPassed => panic!("{what}: catch-up from the horizon passed it"),
        }
    }
    let mut expected = Vec::new();
    for (client, binding) in script.clients.iter().enumerate() {
        let Some(binding) = binding else {
            continue;
        };
        if binding.cltt >= since {
            let client = u32::try_from(client).expect("below CLIENTS");
            let (duid, link) = (client_duid(client), client_link(client));
            let latest = shard.latest(&duid, link).expect("checked above");
            expected.push((Shard::client_hash(&duid, link), latest));
        }
    }
    got.sort_unstable();
    expected.sort_unstable();
    let missing: Vec<RecordInfo> = expected
        .iter()
        .filter(|e| !got.contains(e))
        .map(|&(_, offset)| record_info(shard, offset))
        .collect();
    let extra: Vec<RecordInfo> = got
        .iter()
        .enumerate()
        .filter(|&(i, g)| !expected.contains(g) || i > 0 && got[i - 1] == *g)
        .map(|(_, &(_, offset))| record_info(shard, offset))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: catch-up from the horizon {since} yields {} records for {} clients; \
         latest records missing: {missing:?}; records not expected or repeated: {extra:?}",
        got.len(),
        expected.len()
    );
}

/// A record as a failure message shows it.
#[derive(Debug)]
#[allow(dead_code)] // Read through Debug.
struct RecordInfo {
    offset: u64,
    change_time: u32,
    carried: bool,
    superseded: bool,
}

fn record_info(shard: &Shard, offset: u64) -> RecordInfo {
    let reader = shard.reader();
    let segment = reader
        .segment(offset / reader.segment_bytes())
        .expect("retained");
    let record = reader.read_at(&segment, offset).expect("a record");
    RecordInfo {
        offset,
        change_time: record.header.change_time,
        carried: record.header.flags & FLAG_CARRIED != 0,
        superseded: record.superseded,
    }
}

/// What one iteration saw, for the summary.
#[derive(Default)]
struct Seen {
    steps: u64,
    torn: u64,
    recycled: bool,
}

/// Reopen, check, extend, reopen, check.
fn recover_and_check(dir: &Path, reported: u64, iteration: usize) -> Seen {
    let (mut shard, checkpoint, recovered): (Shard, _, Recovered) =
        Shard::open(shard_config(dir), NOW).expect("recovery succeeds");
    let steps = steps_in_log(&shard);
    let what = format!("iteration {iteration}, {steps} steps, child reported {reported}");
    assert!(
        (reported..=reported + 1).contains(&steps),
        "{what}: recovered steps out of range"
    );
    let mut script = Script::replayed(steps);
    assert_state(&shard, checkpoint.as_ref(), &script, &what);
    let seen = Seen {
        steps,
        torn: recovered.corrupt,
        recycled: shard.reader().oldest_start() > 0,
    };
    for _ in 0..STEPS_AFTER {
        let step = script.next_step();
        apply_step(&mut shard, &step);
    }
    drop(shard);
    let (shard, checkpoint, recovered) =
        Shard::open(shard_config(dir), NOW).expect("second recovery succeeds");
    let what = format!("{what}, after {STEPS_AFTER} more steps and a reopen");
    assert_eq!(recovered.corrupt, 0, "{what}: corrupt records");
    assert_eq!(steps_in_log(&shard), steps + STEPS_AFTER, "{what}: steps");
    assert_state(&shard, checkpoint.as_ref(), &script, &what);
    seen
}

#[test]
fn kill_9_at_random_points_recovers_the_last_committed_state() {
    let started = Instant::now();
    let mut done = 0;
    let (mut steps_max, mut torn, mut recycled) = (0, 0, 0);
    for iteration in 0..ITERATIONS {
        if started.elapsed() > TEST_TIME_MAX {
            break;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rng = mix(iteration as u64) | 1;
        let first = Duration::from_millis(1 + xorshift(&mut rng) % 100);
        let second = Duration::from_millis(1 + xorshift(&mut rng) % 60);
        let reported_first = run_and_kill(dir.path(), first, true);
        let reported_second = run_and_kill(dir.path(), second, false);
        let reported = reported_first.max(reported_second);
        let seen = recover_and_check(dir.path(), reported, iteration);
        steps_max = steps_max.max(seen.steps);
        torn += seen.torn;
        recycled += usize::from(seen.recycled);
        done += 1;
    }
    eprintln!(
        "{done} iterations (two kills each) in {:.1} s: up to {steps_max} steps recovered, \
         {torn} torn tails cut, {recycled} runs past a segment recycle",
        started.elapsed().as_secs_f64()
    );
    assert!(
        done >= ITERATIONS_MIN,
        "only {done} iterations in {TEST_TIME_MAX:?}"
    );
    assert!(
        recycled >= done / 4,
        "too few runs reached compaction: {recycled} of {done}"
    );
}

/// The files of a shard directory, by name.
fn snapshot(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the shard directory") {
        let entry = entry.expect("directory entry");
        let bytes = std::fs::read(entry.path()).expect("read a shard file");
        files.push((entry.file_name(), bytes));
    }
    files
}

/// The shard's write path, spelled out on the log (the shard does the same: append the
/// client's whole binding, then mark its previous record superseded), so that a test can
/// watch compaction from the `relocate` callback.
struct LogDriver {
    writer: LogWriter,
    /// Client hash → offset of its latest record.
    latest: HashMap<u64, u64>,
}

impl LogDriver {
    /// Append `step` (already applied to `script`); `on_carry` runs after each record that
    /// compaction carries forward.
    fn append(&mut self, script: &Script, step: &Step, on_carry: &mut dyn FnMut()) {
        let latest = &mut self.latest;
        let mut relocate = |client: u64, moved: Option<u64>| {
            match moved {
                Some(offset) => latest.insert(client, offset),
                None => latest.remove(&client),
            };
            on_carry();
        };
        match &step.op {
            Op::Checkpoint(c) => {
                let mut encode = |area: &mut [u8], sequence: u64| {
                    encode_checkpoint(area, sequence, step.time, c.id, &c.bytes).expect("fits")
                };
                self.writer
                    .append(&mut encode, &mut relocate)
                    .expect("append");
            }
            Op::Change { client, .. } => {
                let binding = script.clients[*client as usize].as_ref().expect("applied");
                let mut encode = |area: &mut [u8], sequence: u64| {
                    let change = ChangeOut {
                        sequence,
                        change_time: step.time,
                        carried: false,
                        binding,
                    };
                    encode_change(area, &change).expect("fits")
                };
                let offset = self
                    .writer
                    .append(&mut encode, &mut relocate)
                    .expect("append");
                let hash = Shard::client_hash(&client_duid(*client), client_link(*client));
                if let Some(previous) = self.latest.insert(hash, offset) {
                    self.writer.supersede(previous);
                }
            }
        }
    }
}

/// A kill while a segment is being recycled, at every record compaction writes.
///
/// 1. Drive the script through the log until the oldest segment has been recycled three
///    times (the horizon has moved), then through the next recycle.
/// 2. During that recycle, each time a live record has been carried forward (the log's
///    `relocate` callback), copy the data directory as it is on disk: the state `kill -9`
///    leaves at that instant, whatever order the log writes its files in.
/// 3. Recover each copy with `Shard::open`: it must hold the state after the steps before
///    the one that triggered the recycle (or after that step too, if the log appends it
///    first), and a catch-up from the recovered horizon must yield every client changed
///    since then. A carried copy whose change time is at or after the recovered horizon is
///    skipped by catch-up cursors (it is flagged carried) while its original is marked
///    superseded, so such a client goes missing (S-56).
#[test]
fn a_kill_during_a_recycle_keeps_catch_up_complete() {
    let live = tempfile::tempdir().expect("temp dir");
    let config = shard_config(live.path()).log;
    let (writer, _) = LogWriter::open(config, NOW, &mut |_| {}).expect("open the log");
    let mut log = LogDriver {
        writer,
        latest: HashMap::new(),
    };
    let mut script = Script::new();
    let seg = SEGMENT_BYTES as u64;
    while log.writer.reader().oldest_start() / seg < 3 {
        let step = script.next_step();
        log.append(&script, &step, &mut || {});
        assert!(script.step < 20_000, "the log never recycled");
    }
    let mut snapshots = Vec::new();
    let steps = loop {
        let steps = script.step;
        let step = script.next_step();
        log.append(&script, &step, &mut || {
            snapshots.push(snapshot(live.path()))
        });
        if !snapshots.is_empty() {
            break steps;
        }
    };
    let count = snapshots.len();
    for (k, files) in snapshots.into_iter().enumerate() {
        let crash = tempfile::tempdir().expect("temp dir");
        for (name, bytes) in files {
            std::fs::write(crash.path().join(name), bytes).expect("write a shard file");
        }
        let (shard, checkpoint, _) =
            Shard::open(shard_config(crash.path()), NOW).expect("recovery succeeds");
        let recovered = steps_in_log(&shard);
        let what = format!("kill after carried copy {} of {count}", k + 1);
        assert!(
            (steps..=steps + 1).contains(&recovered),
            "{what}: {recovered} steps recovered, {steps} expected"
        );
        assert_state(
            &shard,
            checkpoint.as_ref(),
            &Script::replayed(recovered),
            &what,
        );
    }
}
