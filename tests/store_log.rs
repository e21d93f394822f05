//! The change log seen from outside a shard: readers on other threads, retention and the
//! history horizon, catch-up, cursor modes, recovery from corruption, checkpoints.
//!
//! Protocol rules exercised: S-51 (only the current state), S-52 and S-56 (catch-up sends
//! every binding changed at or after the start time, once, as its current state), S-54 and
//! S-55 (a start time or a running catch-up behind the horizon is reported), S-57 (bounded
//! retention, by bytes and by age).

mod store_common;

use std::fs;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lqd::store::model::{Lease, LeaseState, RelayInfo, INFINITE};
use lqd::store::record::{FLAG_CARRIED, HEADER_LEN, KIND_CHANGE, KIND_CHECKPOINT};
use lqd::store::{
    AppendError, Applied, Cursor, LeaseUpdate, LogReader, Mode, Next, Refused, Shard,
};
use lqd::wire::client_data::LeaseKind;
use store_common::{
    address, change, config_with, drain, duid, link_of, open, record_at, segment_file,
    segment_files, update, Seen, LIMITS, NOW, SEGMENT_BYTES_MIN,
};

const WEEK_S: u32 = 7 * 86_400;

/// Run `f` on its own thread and fail the test if it has not finished after `limit` (a
/// livelock or a reader that never catches up must fail, not hang the suite).
fn with_deadline<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            handle.join().expect("finished thread");
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("not finished after {limit:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// One writer, two readers.

const FOLLOW_CHANGES: u32 = 20_000;
const FOLLOW_CLIENTS: u32 = 2_000;

/// Change `i` of the follow test: client and change time.
fn follow_change(i: u32) -> (u32, u32) {
    (i % FOLLOW_CLIENTS, NOW + i / 10)
}

/// Follow the log in `Mode::All` from its start until `FOLLOW_CHANGES` records were seen,
/// checking each against what the writer wrote. Returns the number of segments crossed.
fn follow(reader: &LogReader) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut cursor = Cursor::at_start(reader, Mode::All);
    let mut expected_sequence = 1u64;
    let mut last_offset = None;
    let mut segments = 1;
    while expected_sequence <= u64::from(FOLLOW_CHANGES) {
        let record = match cursor.next(reader) {
            Next::Record(record) => record,
            Next::Pending | Next::Again => {
                if Instant::now() > deadline {
                    return Err(format!("stuck before sequence {expected_sequence}"));
                }
                std::thread::yield_now();
                continue;
            }
            Next::HorizonPassed => return Err("horizon passed: nothing was recycled".into()),
        };
        let h = record.header;
        if h.sequence != expected_sequence {
            return Err(format!(
                "sequence {} where {expected_sequence} was due",
                h.sequence
            ));
        }
        if last_offset.is_some_and(|o| record.offset <= o) {
            return Err(format!("offset {} after {last_offset:?}", record.offset));
        }
        if last_offset
            .is_some_and(|o| o / reader.segment_bytes() != record.offset / reader.segment_bytes())
        {
            segments += 1;
        }
        last_offset = Some(record.offset);
        // The record is complete when seen: its payload decodes to what the writer wrote.
        let i = u32::try_from(h.sequence - 1).expect("small");
        let (n, now) = follow_change(i);
        let binding = Shard::view(&record)
            .ok_or("payload does not decode")?
            .binding;
        let complete = h.kind == KIND_CHANGE
            && h.change_time == now
            && binding.duid.as_slice() == duid(n)
            && binding.cltt == now
            && binding.leases()[0].kind == LeaseKind::Address(address(n));
        if !complete {
            return Err(format!(
                "record {} is not change {i}: {h:?} {binding:?}",
                h.sequence
            ));
        }
        expected_sequence += 1;
    }
    match cursor.next(reader) {
        Next::Pending => Ok(segments),
        other => Err(format!("after the last record: {other:?}")),
    }
}

#[test]
fn two_readers_follow_one_writer_and_see_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Enough segments that nothing is recycled: every record stays readable.
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 256, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config, NOW);
    let reader = shard.reader();
    let (tx, rx) = mpsc::channel();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let reader = reader.clone();
            let tx = tx.clone();
            std::thread::spawn(move || tx.send(follow(&reader)).expect("test waits"))
        })
        .collect();
    drop(tx);
    let relay = RelayInfo::NONE;
    for i in 0..FOLLOW_CHANGES {
        let (n, now) = follow_change(i);
        change(&mut shard, &update(&duid(n), n, now, &relay), now);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let segments = rx
            .recv_timeout(left)
            .expect("both readers finish in time")
            .unwrap_or_else(|e| panic!("reader failed: {e}"));
        assert!(segments > 20, "the log rolled only {segments} segments");
    }
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(reader.oldest_start(), 0, "nothing was recycled");
    assert_eq!(shard.stats().changed, u64::from(FOLLOW_CHANGES));
}

// ---------------------------------------------------------------------------------------
// Retention by bytes: the horizon, HorizonPassed, carry-forward.

const RETAINED_CLIENTS: u32 = 150;

/// Every client `n` of `last` is in the table, its latest record holds the lease it was last
/// given (at `last[n]`), and its address finds that record; no other client is.
fn assert_current_state(shard: &Shard, last: &[u32]) {
    for (n, &when) in (0u32..).zip(last) {
        let offset = shard
            .latest(&duid(n), link_of(n))
            .unwrap_or_else(|| panic!("client {n} lost"));
        let binding = shard.binding_at(offset).expect("latest record retained");
        assert_eq!(binding.duid.as_slice(), duid(n));
        assert_eq!(binding.cltt, when, "client {n}");
        assert_eq!(binding.leases()[0].valid_until, when + 3600, "client {n}");
        assert_eq!(shard.by_address(address(n)), Some(offset), "client {n}");
    }
    assert_eq!(shard.table().len(), last.len());
}

#[test]
fn byte_retention_moves_the_horizon_and_carries_every_client_forward() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 3, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config.clone(), NOW);
    let reader = shard.reader();
    assert_eq!(
        reader.horizon(),
        NOW,
        "history starts when the log is created"
    );
    let mut from_start = Cursor::at_start(&reader, Mode::All);
    let relay = RelayInfo::NONE;
    // Clients 0..150 churn; 150..170 change once, first, and must be carried forward.
    let mut last = vec![NOW; RETAINED_CLIENTS as usize + 20];
    for n in RETAINED_CLIENTS..RETAINED_CLIENTS + 20 {
        change(&mut shard, &update(&duid(n), n, NOW, &relay), NOW);
    }
    let horizons = churn(&mut shard, dir.path(), &mut last);
    assert!(horizons.len() > 10, "only {} recycles", horizons.len() - 1);
    // A cursor positioned in a recycled segment is told so (S-55), not fed a gap.
    assert!(from_start.position() < reader.oldest_start());
    assert!(matches!(from_start.next(&reader), Next::HorizonPassed));
    assert!(
        shard.stats().carried > 0,
        "live records were carried forward"
    );
    assert_current_state(&shard, &last);
    // A catch-up from the horizon yields exactly the clients changed since, once each.
    let horizon = reader.horizon();
    let (seen, pending) = drain(&mut Cursor::catch_up(&reader, horizon).unwrap(), &reader);
    assert!(pending);
    let mut got: Vec<u32> = seen.iter().map(client_of).collect();
    got.sort_unstable();
    let want: Vec<u32> = (0u32..)
        .zip(&last)
        .filter(|&(_, &t)| t >= horizon)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(got, want);

    drop(shard);
    let (mut shard, _, recovered) = open(config, NOW + 10_000);
    assert_eq!(recovered.corrupt, 0);
    assert_eq!(
        shard.reader().horizon(),
        horizon,
        "the horizon survives a restart"
    );
    assert_current_state(&shard, &last);
    // Recycling goes on after recovery (its live-record accounting was rebuilt).
    let relay = RelayInfo::NONE;
    for i in 0..1_500u32 {
        let n = i % RETAINED_CLIENTS;
        let now = NOW + 10_000 + i;
        change(&mut shard, &update(&duid(n), n, now, &relay), now);
        last[n as usize] = now;
    }
    assert!(shard.reader().horizon() > horizon);
    assert_current_state(&shard, &last);
}

/// Renew clients `0..RETAINED_CLIENTS` in turn, eight changes a second, through many
/// recycles of a three-segment log; at each recycle check the horizon (S-54, S-55).
/// Returns the horizons seen, the first being the initial one.
fn churn(shard: &mut Shard, dir: &std::path::Path, last: &mut [u32]) -> Vec<u32> {
    let reader = shard.reader();
    let relay = RelayInfo::NONE;
    let mut horizons = vec![reader.horizon()];
    let mut oldest = reader.oldest_start();
    // A catch-up that has caught up, whose start time the horizon will pass (S-55).
    let mut overtaken: Option<Cursor> = None;
    for i in 0..4_000u32 {
        let n = i % RETAINED_CLIENTS;
        let now = NOW + 1 + i / 8;
        change(shard, &update(&duid(n), n, now, &relay), now);
        last[n as usize] = now;
        if reader.oldest_start() == oldest {
            continue;
        }
        oldest = reader.oldest_start();
        let horizon = reader.horizon();
        let previous = *horizons.last().unwrap();
        assert!(
            horizon > previous,
            "horizon {horizon} did not pass {previous}"
        );
        assert!(horizon <= now + 1);
        assert!(Cursor::catch_up(&reader, horizon - 1).is_none(), "S-54");
        assert!(Cursor::catch_up(&reader, horizon).is_some());
        horizons.push(horizon);
        assert!(segment_files(dir) <= 3, "segments_max is 3");
        if let Some(mut cursor) = overtaken.take() {
            assert!(matches!(cursor.next(&reader), Next::HorizonPassed), "S-55");
        }
        if horizons.len() == 4 {
            let mut cursor = Cursor::catch_up(&reader, horizon).unwrap();
            let (_, pending) = drain(&mut cursor, &reader);
            assert!(pending);
            assert!(cursor.position() >= reader.oldest_start());
            overtaken = Some(cursor);
        }
    }
    assert!(overtaken.is_none(), "the S-55 cursor was checked");
    horizons
}

/// The client number of a yielded change record (DUIDs are `duid(n)`).
fn client_of(seen: &Seen) -> u32 {
    let duid = seen.binding.as_ref().expect("a change record").duid;
    let bytes = duid.as_slice();
    u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]])
}

// ---------------------------------------------------------------------------------------
// Retention by age.

fn lasting(n: u32) -> Lease {
    Lease {
        kind: LeaseKind::Address(address(n)),
        state: LeaseState::Default,
        preferred_until: INFINITE,
        valid_until: INFINITE,
        ended_at: 0,
    }
}

fn lease_update<'a>(
    duid: &'a [u8; 10],
    n: u32,
    lease: Lease,
    relay: &'a RelayInfo,
) -> LeaseUpdate<'a> {
    LeaseUpdate {
        duid,
        link: link_of(n),
        link_prefix: None,
        lease,
        cltt: if lease.ended_at == 0 {
            lease.preferred_until.min(NOW)
        } else {
            lease.ended_at
        },
        relay,
    }
}

#[test]
fn age_retention_drops_ended_clients_and_keeps_live_ones() {
    with_deadline(Duration::from_secs(30), age_retention);
}

// 600 live clients hold more than one segment: carrying them forward must spill into new
// segments without recycling those again.
const LIVE: u32 = 600;
const ENDED: u32 = 100;

/// Clients `LIVE..LIVE + ENDED` get a lease and end it at NOW + 1; then clients `0..LIVE`
/// get a lease that never ends, at NOW + 2.
fn live_and_ended(shard: &mut Shard) {
    let relay = RelayInfo::NONE;
    for n in LIVE..LIVE + ENDED {
        let lease = Lease {
            valid_until: NOW + 3600,
            preferred_until: NOW + 1800,
            ..lasting(n)
        };
        change(shard, &lease_update(&duid(n), n, lease, &relay), NOW);
    }
    for n in LIVE..LIVE + ENDED {
        let lease = Lease {
            valid_until: NOW + 3600,
            preferred_until: NOW + 1800,
            ended_at: NOW + 1,
            ..lasting(n)
        };
        change(shard, &lease_update(&duid(n), n, lease, &relay), NOW + 1);
    }
    for n in 0..LIVE {
        change(
            shard,
            &lease_update(&duid(n), n, lasting(n), &relay),
            NOW + 2,
        );
    }
}

/// Every client `0..LIVE` is in the table, with its lasting lease, and found by address.
fn assert_live_kept(shard: &Shard) {
    for n in 0..LIVE {
        let offset = shard
            .latest(&duid(n), link_of(n))
            .expect("live client kept");
        let binding = shard.binding_at(offset).unwrap();
        assert_eq!(binding.leases()[0].valid_until, INFINITE);
        assert_eq!(shard.by_address(address(n)), Some(offset));
    }
}

fn age_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 64, 1_000, LIMITS);
    let (mut shard, _, _) = open(config.clone(), NOW);
    live_and_ended(&mut shard);
    assert_eq!(shard.table().len(), (LIVE + ENDED) as usize);
    let segments_before = segment_files(dir.path());
    assert!(segments_before >= 3, "{segments_before} segments");
    // Nothing is old yet.
    assert_eq!(shard.tick(NOW + 900).unwrap(), 0);
    assert_eq!(shard.stats().dropped, 0);

    let recycled = shard.tick(NOW + 2_000).unwrap();
    assert!(
        recycled >= segments_before - 1,
        "recycled {recycled} of {segments_before}"
    );
    assert_eq!(shard.stats().dropped, u64::from(ENDED));
    assert_eq!(shard.table().len(), LIVE as usize);
    let reader = shard.reader();
    assert!(
        reader.horizon() > NOW + 2,
        "horizon {} did not move",
        reader.horizon() - NOW
    );
    assert!(Cursor::catch_up(&reader, NOW + 2).is_none());
    for n in LIVE..LIVE + ENDED {
        assert_eq!(
            shard.latest(&duid(n), link_of(n)),
            None,
            "ended client {n} kept"
        );
    }
    assert_live_kept(&shard);
    // Ticking again converges: the old head, no longer the head, is recycled once, then
    // nothing is left to do. Carried records are not history: moving them again would
    // rewrite every live client on every tick.
    let mut ticks = 0;
    while shard.tick(NOW + 2_000).unwrap() > 0 {
        ticks += 1;
        assert!(ticks <= 1, "tick keeps recycling carried records");
    }
    assert_eq!(shard.tick(NOW + 2_000).unwrap(), 0);
    assert_eq!(shard.table().len(), LIVE as usize);
    assert_live_kept(&shard);
    assert!(
        segment_files(dir.path()) <= segments_before,
        "live records fit where they were"
    );

    drop(shard);
    let (shard, _, recovered) = open(config, NOW + 2_001);
    assert_eq!(recovered.corrupt, 0);
    assert_eq!(shard.table().len(), LIVE as usize);
    assert_live_kept(&shard);
}

// ---------------------------------------------------------------------------------------
// Catch-up and cursor modes.

#[test]
fn catch_up_yields_each_client_changed_since_once_as_its_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), 1 << 20, 4, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config, NOW);
    let relay = RelayInfo::NONE;
    let t = |i: u32| NOW + 10 * i;
    // Client i changes at T_i; client 100 at T3 and T7; 101 at T6 and T8; 102 at T2 and
    // T5 (on the boundary); 103 at T1 only.
    let mut plan: Vec<(u32, u32)> = (0..10).map(|i| (i, i)).collect();
    plan.extend([
        (100, 3),
        (100, 7),
        (101, 6),
        (101, 8),
        (102, 2),
        (102, 5),
        (103, 1),
    ]);
    plan.sort_by_key(|&(n, i)| (i, n));
    for &(n, i) in &plan {
        change(&mut shard, &update(&duid(n), n, t(i), &relay), t(i));
    }
    let reader = shard.reader();
    assert!(
        Cursor::catch_up(&reader, NOW - 1).is_none(),
        "before the horizon: S-54"
    );
    let mut cursor = Cursor::catch_up(&reader, t(5)).unwrap();
    let (seen, pending) = drain(&mut cursor, &reader);
    assert!(pending, "a catch-up ends pending, not horizon-passed");
    let mut got: Vec<(u32, u32)> = seen
        .iter()
        .map(|s| (client_of(s), s.header.change_time))
        .collect();
    got.sort_unstable();
    let want = [
        (5, 5),
        (6, 6),
        (7, 7),
        (8, 8),
        (9, 9),
        (100, 7),
        (101, 8),
        (102, 5),
    ];
    assert_eq!(got, want.map(|(n, i)| (n, t(i))));
    for s in &seen {
        let n = client_of(s);
        assert_eq!(
            shard.latest(&duid(n), link_of(n)),
            Some(s.offset),
            "latest state"
        );
        assert_eq!(s.binding.as_ref().unwrap().cltt, s.header.change_time);
        assert!(!s.superseded);
    }
    // Once caught up the same cursor carries on with live changes (S-53).
    assert!(matches!(cursor.next(&reader), Next::Pending));
    let offset = change(&mut shard, &update(&duid(3), 3, t(10), &relay), t(10));
    match cursor.next(&reader) {
        Next::Record(record) => assert_eq!(record.offset, offset),
        other => panic!("expected the new change, got {other:?}"),
    }
    // From T0 every client appears once.
    let (seen, _) = drain(&mut Cursor::catch_up(&reader, t(0)).unwrap(), &reader);
    let mut clients: Vec<u32> = seen.iter().map(client_of).collect();
    clients.sort_unstable();
    assert_eq!(clients, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, 102, 103]);
}

#[test]
fn live_mode_skips_superseded_and_carried_records_and_all_mode_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 3, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config, NOW);
    let reader = shard.reader();
    let relay = RelayInfo::NONE;
    // Client 0 changes first and never again: recycling carries it forward.
    change(&mut shard, &update(&duid(0), 0, NOW, &relay), NOW);
    let mut i = 0;
    while shard.stats().carried == 0 {
        let n = 1 + i % 50;
        change(
            &mut shard,
            &update(&duid(n), n, NOW + 1 + i, &relay),
            NOW + 1 + i,
        );
        i += 1;
        assert!(i < 10_000, "nothing was carried");
    }
    // Three quick changes of client 7 before anyone reads.
    let mut live_end = Cursor::at_end(&reader, Mode::Live);
    let mut all_end = Cursor::at_end(&reader, Mode::All);
    for k in 0..3 {
        change(
            &mut shard,
            &update(&duid(7), 7, NOW + 20_000 + k, &relay),
            NOW + 20_000 + k,
        );
    }
    let (live, _) = drain(&mut live_end, &reader);
    let (all, _) = drain(&mut all_end, &reader);
    assert_eq!(live.len(), 1, "only the current state (S-51)");
    assert_eq!(Some(live[0].offset), shard.latest(&duid(7), link_of(7)));
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().filter(|s| s.superseded).count(), 2);

    let (all, _) = drain(&mut Cursor::at_start(&reader, Mode::All), &reader);
    let (live, _) = drain(&mut Cursor::at_start(&reader, Mode::Live), &reader);
    let carried = all
        .iter()
        .filter(|s| s.header.flags & FLAG_CARRIED != 0)
        .count();
    let superseded = all.iter().filter(|s| s.superseded).count();
    assert!(
        carried > 0 && superseded > 0,
        "{carried} carried, {superseded} superseded"
    );
    // Live yields exactly the records of All that are neither carried nor superseded.
    let want: Vec<u64> = all
        .iter()
        .filter(|s| s.header.flags & FLAG_CARRIED == 0 && !s.superseded)
        .map(|s| s.offset)
        .collect();
    let got: Vec<u64> = live.iter().map(|s| s.offset).collect();
    assert_eq!(got, want);
    // Each is its client's latest record; client 0 (carried only) is not among them.
    for s in &live {
        let n = client_of(s);
        assert_eq!(shard.latest(&duid(n), link_of(n)), Some(s.offset));
    }
    assert!(live.iter().all(|s| client_of(s) != 0));
    let zero = shard.latest(&duid(0), link_of(0)).unwrap();
    let record = record_at(&reader, zero).unwrap();
    assert_ne!(record.header.flags & FLAG_CARRIED, 0);
    assert!(all.iter().any(|s| s.offset == zero));
    // All mode shows every retained record in sequence order without gaps.
    for pair in all.windows(2) {
        assert_eq!(pair[1].header.sequence, pair[0].header.sequence + 1);
    }
}

// ---------------------------------------------------------------------------------------
// Recovery: corrupt records, torn tails, checkpoints.

/// Write one record per client `0..count` into a fresh shard; returns the offsets.
fn write_clients(dir: &std::path::Path, segment_bytes: usize, count: u32) -> Vec<u64> {
    let config = config_with(dir, segment_bytes, 64, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config, NOW);
    let relay = RelayInfo::NONE;
    (0..count)
        .map(|n| change(&mut shard, &update(&duid(n), n, NOW + n, &relay), NOW + n))
        .collect()
}

/// The length field of the record at logical `offset`, read from the file.
fn record_len(dir: &std::path::Path, segment_bytes: usize, offset: u64) -> usize {
    let (index, at) = split(segment_bytes, offset);
    let bytes = fs::read(segment_file(dir, index)).unwrap();
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

fn split(segment_bytes: usize, offset: u64) -> (u64, usize) {
    let seg = segment_bytes as u64;
    (offset / seg, usize::try_from(offset % seg).unwrap())
}

/// Apply `f` to the octets of segment `index`.
fn edit_segment(dir: &std::path::Path, index: u64, f: impl FnOnce(&mut [u8])) {
    let path = segment_file(dir, index);
    let mut bytes = fs::read(&path).unwrap();
    f(&mut bytes);
    fs::write(&path, bytes).unwrap();
}

/// Reopen after damage at record `k` and check the cut, the table and later appends.
fn assert_cut_at(dir: &std::path::Path, segment_bytes: usize, offsets: &[u64], k: usize) {
    let config = config_with(dir, segment_bytes, 64, WEEK_S, LIMITS);
    let (mut shard, _, recovered) = open(config.clone(), NOW + 1_000);
    assert_eq!(recovered.corrupt, 1);
    assert_eq!(recovered.cut_at, Some(split(segment_bytes, offsets[k])));
    assert_eq!(recovered.records, k as u64);
    assert_eq!(shard.table().len(), k);
    let count = u32::try_from(offsets.len()).unwrap();
    for n in 0..count {
        let present = shard.latest(&duid(n), link_of(n));
        if (n as usize) < k {
            assert_eq!(
                present,
                Some(offsets[n as usize]),
                "client {n} precedes the cut"
            );
        } else {
            assert_eq!(present, None, "client {n} is at or after the cut");
            assert_eq!(shard.by_address(address(n)), None);
        }
    }
    // Appends continue where the log was cut, and survive another restart.
    let relay = RelayInfo::NONE;
    let again = u32::try_from(k).unwrap();
    let at = change(
        &mut shard,
        &update(&duid(again), again, NOW + 1_000, &relay),
        NOW + 1_000,
    );
    assert_eq!(at, offsets[k], "the first append reuses the cut space");
    change(
        &mut shard,
        &update(&duid(9_999), 9_999, NOW + 1_001, &relay),
        NOW + 1_001,
    );
    drop(shard);
    let (shard, _, recovered) = open(config, NOW + 1_002);
    assert_eq!((recovered.corrupt, recovered.cut_at), (0, None));
    assert_eq!(recovered.records, k as u64 + 2);
    assert_eq!(shard.table().len(), k + 2);
    let offset = shard.latest(&duid(again), link_of(again)).unwrap();
    assert_eq!(shard.binding_at(offset).unwrap().cltt, NOW + 1_000);
    assert!(shard.latest(&duid(9_999), link_of(9_999)).is_some());
}

#[test]
fn a_corrupt_record_is_counted_and_the_log_is_cut_there() {
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes = 1 << 20;
    let offsets = write_clients(dir.path(), segment_bytes, 50);
    let k = 20;
    let len = record_len(dir.path(), segment_bytes, offsets[k]);
    assert!(len > HEADER_LEN);
    let (index, at) = split(segment_bytes, offsets[k]);
    edit_segment(dir.path(), index, |b| b[at + len / 2] ^= 0x40);
    assert_cut_at(dir.path(), segment_bytes, &offsets, k);
}

#[test]
fn a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes = 1 << 20;
    let offsets = write_clients(dir.path(), segment_bytes, 50);
    let k = offsets.len() - 1;
    let len = record_len(dir.path(), segment_bytes, offsets[k]);
    let (index, at) = split(segment_bytes, offsets[k]);
    edit_segment(dir.path(), index, |b| b[at + len / 2..at + len].fill(0));
    assert_cut_at(dir.path(), segment_bytes, &offsets, k);
}

#[test]
fn a_corrupt_record_in_an_early_segment_cuts_every_later_segment() {
    let dir = tempfile::tempdir().unwrap();
    let offsets = write_clients(dir.path(), SEGMENT_BYTES_MIN, 800);
    let last_segment = offsets.last().unwrap() / SEGMENT_BYTES_MIN as u64;
    assert!(last_segment >= 2, "the records span several segments");
    // The first record of segment 1.
    let k = offsets
        .iter()
        .position(|&o| o / SEGMENT_BYTES_MIN as u64 == 1)
        .unwrap()
        + 3;
    let (index, at) = split(SEGMENT_BYTES_MIN, offsets[k]);
    edit_segment(dir.path(), index, |b| b[at + 20] ^= 1); // the sequence number
    assert_cut_at(dir.path(), SEGMENT_BYTES_MIN, &offsets, k);
    assert!(
        !segment_file(dir.path(), last_segment).exists(),
        "later segments unlinked"
    );
}

#[test]
fn the_latest_checkpoint_survives_restarts_and_recycling() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 3, WEEK_S, LIMITS);
    let relay = RelayInfo::NONE;
    {
        let (mut shard, checkpoint, _) = open(config.clone(), NOW);
        assert_eq!(checkpoint, None);
        change(&mut shard, &update(&duid(1), 1, NOW, &relay), NOW);
        shard.checkpoint(1, b"older", NOW).unwrap();
        change(&mut shard, &update(&duid(2), 2, NOW, &relay), NOW);
        shard.checkpoint(2, b"inode 42 offset 9000", NOW).unwrap();
    }
    let (mut shard, checkpoint, _) = open(config.clone(), NOW + 1);
    let checkpoint = checkpoint.unwrap();
    assert_eq!(
        (checkpoint.id, checkpoint.bytes.as_slice()),
        (2, &b"inode 42 offset 9000"[..])
    );
    // Recycle the checkpoint's segment several times over.
    let reader = shard.reader();
    let mut i = 0;
    while reader.oldest_start() < 4 * SEGMENT_BYTES_MIN as u64 {
        let n = 10 + i % 40;
        change(
            &mut shard,
            &update(&duid(n), n, NOW + 2 + i, &relay),
            NOW + 2 + i,
        );
        i += 1;
    }
    assert!(!segment_file(dir.path(), 0).exists());
    // Exactly one checkpoint record is retained: the latest, carried.
    let (all, _) = drain(&mut Cursor::at_start(&reader, Mode::All), &reader);
    let kept: Vec<&Seen> = all
        .iter()
        .filter(|s| s.header.kind == KIND_CHECKPOINT)
        .collect();
    assert_eq!(kept.len(), 1, "only the latest checkpoint is carried");
    drop(shard);
    let (shard, checkpoint, recovered) = open(config, NOW + 100_000);
    assert_eq!(recovered.corrupt, 0);
    let checkpoint = checkpoint.unwrap();
    assert_eq!(
        (checkpoint.id, checkpoint.bytes.as_slice()),
        (2, &b"inode 42 offset 9000"[..])
    );
    // Clients 1 and 2, never changed again, were carried as well.
    for n in [1, 2] {
        let offset = shard.latest(&duid(n), link_of(n)).unwrap();
        assert_eq!(shard.binding_at(offset).unwrap().cltt, NOW);
    }
}

// ---------------------------------------------------------------------------------------
// A log full of live records.

#[test]
fn a_roll_that_carries_a_fully_live_segment_still_makes_room() {
    with_deadline(Duration::from_secs(30), fully_live_oldest_segment);
}

fn fully_live_oldest_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 4, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config.clone(), NOW);
    let reader = shard.reader();
    let relay = RelayInfo::NONE;
    let seg = SEGMENT_BYTES_MIN as u64;
    // Segment 0 holds only clients that never change again: all of it is live, and
    // carrying it fills a new segment exactly as full as it was.
    let mut statics = 0;
    while change(
        &mut shard,
        &update(&duid(statics), statics, NOW, &relay),
        NOW,
    ) < seg
    {
        statics += 1;
    }
    statics += 1;
    // Then a few clients churn until segment 0 has been recycled twice over.
    let mut i = 0;
    while reader.oldest_start() < 3 * seg {
        let n = 100_000 + i % 10;
        change(
            &mut shard,
            &update(&duid(n), n, NOW + 1 + i, &relay),
            NOW + 1 + i,
        );
        i += 1;
        assert!(segment_files(dir.path()) <= 4);
    }
    assert!(shard.stats().carried >= u64::from(statics));
    for n in 0..statics {
        let offset = shard
            .latest(&duid(n), link_of(n))
            .expect("static client kept");
        assert_eq!(shard.binding_at(offset).unwrap().cltt, NOW);
    }
    drop(shard);
    let (shard, _, recovered) = open(config, NOW + 100_000);
    assert_eq!(recovered.corrupt, 0);
    assert_eq!(shard.table().len(), statics as usize + 10);
}

#[test]
fn a_log_full_of_live_records_refuses_changes_without_growing() {
    with_deadline(Duration::from_secs(30), log_full);
}

fn log_full() {
    let dir = tempfile::tempdir().unwrap();
    let (mut shard, _, _) = open(
        config_with(dir.path(), SEGMENT_BYTES_MIN, 4, WEEK_S, LIMITS),
        NOW,
    );
    let reader = shard.reader();
    let relay = RelayInfo::NONE;
    let mut accepted = 0u32;
    for n in 0..2_000u32 {
        let end = reader.committed_end();
        match shard.apply(&update(&duid(n), n, NOW, &relay), NOW) {
            Ok(Applied::Changed(_)) => {
                assert_eq!(accepted, n, "accepted after a refusal");
                accepted += 1;
            }
            Err(Refused::Log(AppendError::LogFull)) => {
                assert_eq!(reader.committed_end(), end, "nothing appended");
                assert_eq!(shard.latest(&duid(n), link_of(n)), None);
            }
            other => panic!("client {n}: {other:?}"),
        }
        assert!(
            segment_files(dir.path()) <= 4,
            "the log grew past segments_max"
        );
    }
    assert!((300..2_000).contains(&accepted), "accepted {accepted}");
    assert_eq!(shard.stats().refused, u64::from(2_000 - accepted));
    assert_eq!(shard.table().len(), accepted as usize);
    // As the error says: a larger configuration makes room, and nothing was lost.
    drop(shard);
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 16, WEEK_S, LIMITS);
    let (mut shard, _, recovered) = open(config, NOW + 1);
    assert_eq!(recovered.corrupt, 0);
    for n in accepted..accepted + 500 {
        change(&mut shard, &update(&duid(n), n, NOW + 1, &relay), NOW + 1);
    }
    for n in 0..accepted + 500 {
        let offset = shard.latest(&duid(n), link_of(n)).expect("client kept");
        assert_eq!(shard.by_address(address(n)), Some(offset));
    }
}

// ---------------------------------------------------------------------------------------
// Catch-up racing with recycling.

/// Picks of the race test's writer: 300 clients chosen by a fixed LCG, so that some go
/// unchanged for several segments and their latest records are carried.
fn pick(state: &mut u64) -> u32 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    u32::try_from(*state >> 33).unwrap() % 300
}

#[test]
fn a_catch_up_racing_a_recycle_is_complete_or_told_the_horizon_passed() {
    with_deadline(Duration::from_secs(60), catch_up_race);
}

fn catch_up_race() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), SEGMENT_BYTES_MIN, 6, WEEK_S, LIMITS);
    let (mut shard, _, _) = open(config, NOW);
    let reader = shard.reader();
    // Last change time per client, published after each change.
    let last = Arc::new(Mutex::new(vec![0u32; 300]));
    let writer = {
        let last = Arc::clone(&last);
        std::thread::spawn(move || {
            let relay = RelayInfo::NONE;
            let mut state = 7;
            for i in 0..30_000u32 {
                let n = pick(&mut state);
                let now = NOW + 1 + i / 8;
                // A client picked twice in one second changes once.
                shard.apply(&update(&duid(n), n, now, &relay), now).unwrap();
                last.lock().unwrap()[n as usize] = now;
            }
            shard.stats().carried
        })
    };
    let mut complete = 0;
    while !writer.is_finished() {
        let since = reader.horizon();
        let want: Vec<u32> = (0u32..)
            .zip(last.lock().unwrap().iter())
            .filter(|&(_, &t)| t != 0 && t >= since)
            .map(|(n, _)| n)
            .collect();
        let Some(mut cursor) = Cursor::catch_up(&reader, since) else {
            continue;
        };
        let (seen, pending) = drain(&mut cursor, &reader);
        if !pending {
            continue; // HorizonPassed: reported, not a silent gap (S-55).
        }
        let got: std::collections::HashSet<u32> = seen.iter().map(client_of).collect();
        let missing: Vec<&u32> = want.iter().filter(|n| !got.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "catch-up from {since} missed {missing:?} (S-56)"
        );
        complete += 1;
    }
    let carried = writer.join().unwrap();
    assert!(carried > 100, "only {carried} records carried");
    assert!(complete > 10, "only {complete} catch-ups completed");
}

// ---------------------------------------------------------------------------------------
// A server clock that steps back (NTP, or a restart on a clock behind the log).

/// The change times of every record in the log, in log order.
fn change_times(reader: &LogReader) -> Vec<u32> {
    let (all, _) = drain(&mut Cursor::at_start(reader, Mode::All), reader);
    all.iter()
        .filter(|s| s.header.kind == KIND_CHANGE && s.header.flags & FLAG_CARRIED == 0)
        .map(|s| s.header.change_time)
        .collect()
}

#[test]
fn change_times_never_go_backwards_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), 1 << 20, 4, WEEK_S, LIMITS);
    let relay = RelayInfo::NONE;
    {
        let (mut shard, _, _) = open(config.clone(), NOW);
        // Client 0 at +100, then the clock steps back: client 1 at +50, client 2 at +60.
        for (n, dt) in [(0, 100), (1, 50), (2, 60)] {
            change(&mut shard, &update(&duid(n), n, NOW + dt, &relay), NOW + dt);
        }
        let reader = shard.reader();
        assert_eq!(change_times(&reader), [NOW + 100; 3]);
        // A catch-up from +60 therefore sends all three (their change times are +100).
        let (seen, _) = drain(&mut Cursor::catch_up(&reader, NOW + 60).unwrap(), &reader);
        assert_eq!(seen.len(), 3);
    }
    // lqd restarts on a clock 90 s behind its log.
    let (mut shard, _, _) = open(config, NOW + 10);
    change(&mut shard, &update(&duid(3), 3, NOW + 11, &relay), NOW + 11);
    let times = change_times(&shard.reader());
    assert!(
        times.windows(2).all(|w| w[1] >= w[0]),
        "change times went backwards: {times:?}"
    );
    // A catch-up from +100 must include the change made after the restart.
    let reader = shard.reader();
    let (seen, _) = drain(&mut Cursor::catch_up(&reader, NOW + 100).unwrap(), &reader);
    assert!(
        seen.iter().any(|s| client_of(s) == 3),
        "S-52: the newest change is missed"
    );
}
