//! Tailing Kea's journal as it grows and rotates (kea.md §8), restarting from the checkpoint
//! kept in the store, and back-pressure through the bounded shard queues (issue 4 items 2,
//! 3, 7).
//!
//! Each test writes the journal the way Kea and kea-lfc do — whole rows appended, X renamed
//! to X.1 and a new X started with its header, X.1 compacted into X.2 — and checks that
//! every row is applied exactly once: the store matches a last-row-wins model of the rows
//! written, and each client has exactly as many change records as rows that changed it.

mod ingest_common;

use std::fs;
use std::path::Path;

use ingest_common::{
    append, assert_matches, compact, lines, now, rotate, with_suffix, Ingest, Lab, Model, Options,
    H17, H18,
};
use lqd::ingest::source::Start;
use lqd::store::model::Binding;
use lqd::wire::client_data::LeaseKind;

/// `expire` of a first allocation (CLTT 1795896400, after "now").
const E: u64 = 1_795_900_000;

/// DUID of client `n`.
fn client(n: u32) -> Vec<u8> {
    let b = n.to_be_bytes();
    vec![0, 3, 0, 1, 2, 0, b[0], b[1], b[2], b[3]]
}

fn duid_text(n: u32) -> String {
    client(n)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Client `n`'s address lease row (17 columns), valid 3600, expiring at `expire`.
fn row(n: u32, expire: u64) -> String {
    format!(
        "2001:db8:1::{n:x},{},3600,{expire},1,1800,0,1,128,0,0,,,0,,,",
        duid_text(n)
    )
}

/// The same row in an 18-column file (pool 5).
fn row18(n: u32, expire: u64) -> String {
    format!("{},5", row(n, expire))
}

/// Client `n`'s release of its address (valid 0, expire = its CLTT, kea.md §7.1).
fn release(n: u32, expire: u64) -> String {
    format!(
        "2001:db8:1::{n:x},{},0,{},1,0,0,1,128,0,0,,,0,,,",
        duid_text(n),
        expire - 3600
    )
}

fn rows(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// Every data row written so far, with their headers, for the model.
struct Written(String);

impl Written {
    fn new(header: &str) -> Self {
        Self(format!("{header}\n"))
    }

    fn add(&mut self, list: &[String]) {
        self.0.push_str(&lines(&rows(list)));
    }

    fn header(&mut self, header: &str) {
        self.0.push_str(header);
        self.0.push('\n');
    }

    fn model(&self) -> Model {
        Model::of_text(&self.0)
    }
}

fn allocations(clients: std::ops::Range<u32>, expire: u64) -> Vec<String> {
    clients.map(|n| row(n, expire)).collect()
}

fn records_of(ingest: &Ingest, n: u32) -> usize {
    ingest.records_of(&client(n), 1)
}

fn assert_records(ingest: &Ingest, expected: &[(u32, usize)]) {
    for &(n, records) in expected {
        assert_eq!(
            records_of(ingest, n),
            records,
            "change records of client {n}"
        );
    }
}

fn address(n: u32) -> LeaseKind {
    LeaseKind::Address(format!("2001:db8:1::{n:x}").parse().expect("address"))
}

fn lease_ended(binding: &Binding, n: u32) -> bool {
    binding
        .leases()
        .iter()
        .find(|l| l.kind == address(n))
        .is_some_and(|l| l.ended_at != 0)
}

/// A lab whose X holds the header and `first`, tailed to its end.
fn started(first: &[String]) -> (Lab, Ingest, Written) {
    let lab = Lab::new();
    fs::write(&lab.journal, format!("{H17}\n")).expect("X");
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    append(&lab.journal, &lines(&rows(first)));
    ingest.poll(now());
    let mut written = Written::new(H17);
    written.add(first);
    (lab, ingest, written)
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).expect("metadata").ino()
}

#[test]
fn rows_appended_in_pieces_and_partial_lines_held_back() {
    let lab = Lab::new();
    let mut text = format!("{H17}\n");
    let body: Vec<String> = (1..=40).map(|n| row(n, E + u64::from(n % 3))).collect();
    text.push_str(&lines(&rows(&body)));
    // The header itself arrives in two pieces.
    fs::write(&lab.journal, &text[..50]).expect("X");
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    let mut at = 50;
    let sizes = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144];
    let mut i = 0;
    while at < text.len() {
        let end = (at + sizes[i % sizes.len()]).min(text.len());
        append(&lab.journal, &text[at..end]);
        at = end;
        i += 1;
        ingest.poll(now());
        // Only complete lines are read: the row count is the number of newlines after the
        // header's.
        let complete = text[..at].matches('\n').count().saturating_sub(1);
        assert_eq!(
            ingest.router.stats().rows,
            complete as u64,
            "after {at} octets"
        );
        assert_eq!(ingest.clients(), complete);
    }
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    assert_matches(&ingest, &Model::of_text(&text), now());
    // A row without its newline is held back until the newline arrives.
    let last = row(41, E);
    append(&lab.journal, &last);
    ingest.poll(now());
    assert!(ingest.binding(&client(41), 1).is_none());
    append(&lab.journal, "\n");
    ingest.poll(now());
    assert!(ingest.binding(&client(41), 1).is_some());
    assert_records(&ingest, &[(41, 1), (1, 1)]);
}

#[test]
fn rotation_while_reading_drains_the_old_file_first() {
    let (lab, mut ingest, mut written) = started(&allocations(1..6, E));
    // Kea appends renewals to X, then rotates before lqd reads them.
    let before: Vec<String> = (1..4).map(|n| row(n, E + 10)).collect();
    append(&lab.journal, &lines(&rows(&before)));
    let after = vec![row(1, E + 20), row(2, E + 20), row(6, E)];
    rotate(&lab.journal, H17, &rows(&after));
    written.add(&before);
    written.add(&after);
    ingest.poll(now());
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    assert_eq!(ingest.router.stats().rows, 5 + 3 + 3);
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 3), (2, 3), (3, 2), (4, 1), (5, 1), (6, 1)]);
    // The tailer now follows the new X.
    let position = ingest
        .source
        .position()
        .expect("reading the position")
        .expect("a file is open");
    assert_eq!(position.file.ino, inode(&lab.journal));
    let more = vec![row(7, E)];
    append(&lab.journal, &lines(&rows(&more)));
    written.add(&more);
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
}

#[test]
fn rotation_with_a_gap_before_the_new_file() {
    let (lab, mut ingest, mut written) = started(&allocations(1..4, E));
    let before = vec![row(1, E + 10)];
    append(&lab.journal, &lines(&rows(&before)));
    written.add(&before);
    // Renamed, new X not created yet: the old file is read to its end, the tailer waits.
    fs::rename(&lab.journal, with_suffix(&lab.journal, ".1")).expect("rename");
    ingest.poll(now());
    assert_records(&ingest, &[(1, 2)]);
    // The new X, header only, then rows.
    fs::write(&lab.journal, format!("{H17}\n")).expect("new X");
    ingest.poll(now());
    assert_eq!(
        ingest
            .source
            .position()
            .expect("reading the position")
            .expect("open")
            .file
            .ino,
        inode(&lab.journal)
    );
    let after = vec![row(1, E + 20), row(4, E)];
    append(&lab.journal, &lines(&rows(&after)));
    written.add(&after);
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 3), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(ingest.router.stats().rejected_total(), 0);
}

#[test]
fn rotation_switches_the_header_generation() {
    // A Kea upgrade rotates X and starts the new one with the 18-column header (§8.4).
    let (lab, mut ingest, mut written) = started(&allocations(1..4, E));
    let before = vec![row(3, E + 10)];
    append(&lab.journal, &lines(&rows(&before)));
    written.add(&before);
    let after: Vec<String> = vec![row18(1, E + 20), row18(4, E)];
    rotate(&lab.journal, H18, &rows(&after));
    written.header(H18);
    written.add(&after);
    ingest.poll(now());
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 2), (2, 1), (3, 2), (4, 1)]);
}

#[test]
fn a_partial_line_left_in_a_rotated_file_is_counted() {
    let (lab, mut ingest, mut written) = started(&allocations(1..3, E));
    append(&lab.journal, &row(9, E)[..30]);
    let after = vec![row(3, E)];
    rotate(&lab.journal, H17, &rows(&after));
    written.add(&after);
    ingest.poll(now());
    let stats = ingest.router.stats();
    assert_eq!(stats.rejected.get("partial_line_at_rotation"), Some(&1));
    assert_eq!(stats.rejected_total(), 1);
    assert_matches(&ingest, &written.model(), now());
}

#[test]

fn two_rotations_between_polls() {
    // lqd falls one lfc-interval behind (kea.md §8.2: rotations every 10 s in the lab).
    let (lab, mut ingest, mut written) = started(&allocations(1..4, E));
    let r1 = vec![row(1, E + 10)];
    append(&lab.journal, &lines(&rows(&r1)));
    let r2 = vec![row(2, E + 10), row(4, E)];
    rotate(&lab.journal, H17, &rows(&r2));
    compact(&lab.journal, H17);
    let r3 = vec![row(3, E + 10)];
    append(&lab.journal, &lines(&rows(&r3)));
    let r4 = vec![row(5, E)];
    rotate(&lab.journal, H17, &rows(&r4));
    compact(&lab.journal, H17);
    for list in [&r1, &r2, &r3, &r4] {
        written.add(list);
    }
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
}

#[test]
fn restart_resumes_at_the_checkpoint() {
    let (lab, ingest, mut written) = started(&allocations(1..6, E));
    let checkpoint = ingest
        .source
        .position()
        .expect("reading the position")
        .expect("position");
    drop(ingest);
    // While lqd is down, Kea renews two clients and allocates a new one.
    let down = vec![row(2, E + 10), row(4, E + 10), row(6, E)];
    append(&lab.journal, &lines(&rows(&down)));
    written.add(&down);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert_eq!(ingest.start, Start::Resumed(checkpoint));
    assert_eq!(ingest.recovered.map(|(_, p)| p), Some(checkpoint));
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 1), (2, 2), (3, 1), (4, 2), (5, 1), (6, 1)]);
    let changed: u64 = ingest.shards.iter().map(|s| s.stats().changed).sum();
    let unchanged: u64 = ingest.shards.iter().map(|s| s.stats().unchanged).sum();
    assert_eq!(
        (changed, unchanged),
        (3, 0),
        "nothing before the checkpoint re-applied"
    );
    assert_eq!(ingest.router.stats().rows, 3);
}

#[test]
fn restart_with_a_partial_line_pending() {
    let (lab, mut ingest, mut written) = started(&allocations(1..3, E));
    let partial = row(3, E);
    append(&lab.journal, &partial[..40]);
    ingest.poll(now());
    assert!(ingest.binding(&client(3), 1).is_none());
    drop(ingest);
    append(
        &lab.journal,
        &format!("{}\n{}\n", &partial[40..], row(4, E)),
    );
    written.add(&[partial, row(4, E)]);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert!(matches!(ingest.start, Start::Resumed(_)));
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(ingest.router.stats().rejected_total(), 0);
}

#[test]
fn restart_inside_the_rotated_file() {
    let lab = Lab::new();
    fs::write(&lab.journal, format!("{H17}\n")).expect("X");
    let small = Options {
        lines_per_poll: 2,
        ..Options::default()
    };
    let mut ingest = Ingest::open_with(&lab.journal, &lab.store, small, now());
    let mut written = Written::new(H17);
    let first = allocations(1..6, E);
    append(&lab.journal, &lines(&rows(&first)));
    written.add(&first);
    ingest.poll(now());
    let before: Vec<String> = (1..6).map(|n| row(n, E + 10)).collect();
    append(&lab.journal, &lines(&rows(&before)));
    let after = vec![row(1, E + 20), row(6, E)];
    rotate(&lab.journal, H17, &rows(&after));
    written.add(&before);
    written.add(&after);
    // One poll of two lines: the checkpoint is in the old file, now X.1.
    assert_eq!(ingest.poll_once(now()), 2);
    let checkpoint = ingest
        .source
        .position()
        .expect("reading the position")
        .expect("position");
    assert_eq!(checkpoint.file.ino, inode(&with_suffix(&lab.journal, ".1")));
    drop(ingest);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert_eq!(ingest.start, Start::Resumed(checkpoint));
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 3), (2, 2), (5, 2), (6, 1)]);
}

#[test]
fn restart_after_a_rotation_while_down() {
    let (lab, ingest, mut written) = started(&allocations(1..6, E));
    drop(ingest);
    let before = vec![row(1, E + 10), row(2, E + 10)];
    append(&lab.journal, &lines(&rows(&before)));
    let after = vec![row(1, E + 20), row(6, E)];
    rotate(&lab.journal, H17, &rows(&after));
    written.add(&before);
    written.add(&after);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert!(
        matches!(ingest.start, Start::Resumed(_)),
        "X.1 still holds the checkpoint"
    );
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    assert_records(&ingest, &[(1, 3), (2, 2), (3, 1), (4, 1), (5, 1), (6, 1)]);
    assert_eq!(
        ingest
            .source
            .position()
            .expect("reading the position")
            .expect("open")
            .file
            .ino,
        inode(&lab.journal)
    );
}

#[test]
fn restart_after_rotation_and_compaction_while_down() {
    let (lab, ingest, mut written) = started(&allocations(1..6, E));
    let records_before = ingest.change_records();
    drop(ingest);
    // While down: client 2 renews, client 3 releases, X rotates, client 6 arrives in the
    // new X, and kea-lfc compacts X.1 into X.2 (client 3's deleted lease is dropped).
    let before = vec![row(2, E + 10), release(3, E)];
    append(&lab.journal, &lines(&rows(&before)));
    let after = vec![row(6, E)];
    rotate(&lab.journal, H17, &rows(&after));
    compact(&lab.journal, H17);
    assert!(!with_suffix(&lab.journal, ".1").exists());
    written.add(&before);
    written.add(&after);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert_eq!(
        ingest.start,
        Start::Snapshot { rows: 5 },
        "1, 2, 4, 5 from X.2; 6 from X"
    );
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    // Unchanged clients produce no record; 2 renewed, 3 swept, 6 new.
    assert_records(&ingest, &[(1, 1), (2, 2), (3, 2), (4, 1), (5, 1), (6, 1)]);
    let b = ingest.binding(&client(3), 1).expect("client 3");
    assert!(
        lease_ended(&b, 3),
        "the sweep ended the lease deleted while down"
    );
    let new_records = ingest.records_total() - records_before.values().sum::<usize>();
    assert_eq!(new_records, 3);
}

#[test]
fn restart_after_compaction_when_an_address_moved_while_down() {
    let (lab, ingest, mut written) = started(&allocations(1..4, E));
    drop(ingest);
    // While down Kea gives client 1's address to client 7; X is rotated and compacted.
    let moved = format!(
        "2001:db8:1::1,{},3600,{},1,1800,0,1,128,0,0,,,0,,,",
        duid_text(7),
        E + 10
    );
    append(&lab.journal, &format!("{moved}\n"));
    rotate(&lab.journal, H17, &[]);
    compact(&lab.journal, H17);
    written.add(&[moved]);
    let ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert_eq!(ingest.start, Start::Snapshot { rows: 3 });
    assert_matches(&ingest, &written.model(), now());
    let old = ingest.binding(&client(1), 1).expect("client 1");
    assert!(
        lease_ended(&old, 1),
        "the sweep ends the previous holder's lease"
    );
    assert_records(&ingest, &[(1, 2), (2, 1), (3, 1), (7, 1)]);
}

#[test]
fn first_start_reads_x2_x1_then_x() {
    let lab = Lab::new();
    let x2 = vec![row(1, E), row(2, E), row(3, E)];
    let x1 = vec![row(1, E + 10), release(2, E)];
    // X comes from an upgraded Kea: 18 columns (kea.md §8.4).
    let x = vec![row18(1, E + 20), row18(4, E)];
    fs::write(
        with_suffix(&lab.journal, ".2"),
        format!("{H17}\n{}", lines(&rows(&x2))),
    )
    .expect("X.2");
    fs::write(
        with_suffix(&lab.journal, ".1"),
        format!("{H17}\n{}", lines(&rows(&x1))),
    )
    .expect("X.1");
    fs::write(&lab.journal, format!("{H18}\n{}", lines(&rows(&x)))).expect("X");
    let ingest = Ingest::open(&lab.journal, &lab.store, now());
    // Final rows: 1 from X, 2 deleted in X.1 (never stored), 3 from X.2, 4 from X.
    assert_eq!(ingest.start, Start::Snapshot { rows: 4 });
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    let mut all = Written::new(H17);
    all.add(&x2);
    all.add(&x1);
    all.header(H18);
    all.add(&x);
    let finals = ingest_common::final_rows(&all.0);
    assert_matches(&ingest, &Model::of(&finals), now());
    assert!(ingest.binding(&client(2), 1).is_none());
}

#[test]
fn first_start_prefers_x_completed() {
    let lab = Lab::new();
    let stale = vec![row(1, E), row(9, E)];
    fs::write(
        with_suffix(&lab.journal, ".2"),
        format!("{H17}\n{}", lines(&rows(&stale))),
    )
    .expect("X.2");
    fs::write(
        with_suffix(&lab.journal, ".1"),
        format!("{H17}\n{}", lines(&rows(&stale))),
    )
    .expect("X.1");
    let completed = vec![row(1, E + 10), row(2, E)];
    fs::write(
        with_suffix(&lab.journal, ".completed"),
        format!("{H17}\n{}", lines(&rows(&completed))),
    )
    .expect("X.completed");
    fs::write(&lab.journal, format!("{H17}\n{}", lines(&[&row(3, E)]))).expect("X");
    let ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert_eq!(ingest.start, Start::Snapshot { rows: 3 });
    let text = format!("{H17}\n{}{}\n", lines(&rows(&completed)), row(3, E));
    assert_matches(&ingest, &Model::of_text(&text), now());
    assert!(
        ingest.binding(&client(9), 1).is_none(),
        "X.2 and X.1 are not read"
    );
}

#[test]
fn restart_from_the_lowest_checkpoint_across_shards() {
    let (lab, mut ingest, mut written) = started(&allocations(1..13, E));
    // New rows reach every queue, but only shard 0 applies them before lqd dies.
    let more: Vec<String> = (1..13).map(|n| row(n, E + 10)).collect();
    append(&lab.journal, &lines(&rows(&more)));
    written.add(&more);
    while ingest.source.poll(&mut ingest.router, now()).expect("poll") > 0 {}
    let (shard0, rest) = ingest.shards.split_at_mut(1);
    lqd::ingest::pipeline::drain(&mut shard0[0], &ingest.queues[0], now(), 1 << 20, None);
    assert!(rest.len() == 2 && ingest.queues[1..].iter().any(|q| !q.is_empty()));
    let renewed_on_0: Vec<u32> = (1..13)
        .filter(|&n| lqd::store::shard_of(&client(n), 3) == 0)
        .collect();
    assert!(!renewed_on_0.is_empty(), "some client lives on shard 0");
    drop(ingest);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert!(matches!(ingest.start, Start::Resumed(_)));
    ingest.poll(now());
    assert_matches(&ingest, &written.model(), now());
    // Shard 0 gets the rows again; they change nothing there.
    for n in 1..13 {
        assert_eq!(records_of(&ingest, n), 2, "client {n}");
    }
    assert_eq!(
        ingest.shards[0].stats().unchanged,
        renewed_on_0.len() as u64
    );
}

#[test]

fn restart_then_an_address_moves_to_another_client() {
    let (lab, ingest, mut written) = started(&allocations(1..3, E));
    drop(ingest);
    // Kea gives client 1's address to client 7 (Kea's table is keyed by address, §1).
    let moved = format!(
        "2001:db8:1::1,{},3600,{},1,1800,0,1,128,0,0,,,0,,,",
        duid_text(7),
        E + 10
    );
    append(&lab.journal, &format!("{moved}\n"));
    written.add(&[moved]);
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    ingest.poll(now());
    let old = ingest.binding(&client(1), 1).expect("client 1");
    assert!(
        lease_ended(&old, 1),
        "the previous holder's lease ends: {old:?}"
    );
    assert_matches(&ingest, &written.model(), now());
}

#[test]

fn snapshot_rebuild_leaves_an_unchanged_two_lease_client_alone() {
    let d = duid_text(1);
    // The client's NA and PD allocated together; the NA renewed a second later.
    let first = vec![
        format!("2001:db8:1::1,{d},3600,{E},1,1800,0,1,128,0,0,,,0,,,"),
        format!("2001:db8:8:1::,{d},3600,{E},1,1800,2,1,64,0,0,,,0,,,"),
        format!("2001:db8:1::1,{d},3600,{},1,1800,0,1,128,0,0,,,0,,,", E + 1),
    ];
    let (lab, ingest, written) = started(&first);
    let before = ingest.records_of(&client(1), 1);
    drop(ingest);
    rotate(&lab.journal, H17, &[]);
    compact(&lab.journal, H17);
    let ingest = Ingest::open(&lab.journal, &lab.store, now());
    assert_eq!(ingest.start, Start::Snapshot { rows: 2 });
    assert_eq!(
        ingest.records_of(&client(1), 1),
        before,
        "no change for this client"
    );
    assert_matches(&ingest, &written.model(), now());
}

#[test]

fn restart_when_the_checkpointed_inode_is_reused() {
    let (lab, ingest, mut written) = started(&allocations(1..4, E));
    let old = ingest
        .source
        .position()
        .expect("reading the position")
        .expect("position");
    drop(ingest);
    // Two rotations and compactions while down: the checkpointed file is gone and ext4
    // readily gives its inode to the newest X.
    let r2: Vec<String> = (4..8).map(|n| row(n, E)).collect();
    rotate(&lab.journal, H17, &rows(&r2));
    compact(&lab.journal, H17);
    let r3: Vec<String> = (8..12).map(|n| row(n, E)).collect();
    rotate(&lab.journal, H17, &rows(&r3));
    compact(&lab.journal, H17);
    written.add(&r2);
    written.add(&r3);
    let reused = {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(&lab.journal).expect("X");
        lqd::ingest::tailer::FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    };
    assert!(fs::metadata(&lab.journal).expect("X").len() >= old.offset);
    // Whether or not this file system reused the inode, stand for the case where it did.
    let mut ingest =
        Ingest::open_mapped(&lab.journal, &lab.store, Options::default(), now(), |c| {
            c.map(|(id, p)| (id, lqd::ingest::tailer::Position { file: reused, ..p }))
        });
    ingest.poll(now());
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    assert!(
        matches!(ingest.start, Start::Snapshot { .. }),
        "{:?}",
        ingest.start
    );
    assert_matches(&ingest, &written.model(), now());
}

/// One shard's consumer: applies slowly, samples its queue's length before each receive.
fn slow_consumer(
    mut shard: lqd::store::Shard,
    queue: crossbeam_channel::Receiver<lqd::ingest::ShardMsg>,
) -> (lqd::store::Shard, usize) {
    let mut longest = 0;
    let mut taken = 0u32;
    loop {
        longest = longest.max(queue.len());
        let Ok(msg) = queue.recv() else {
            return (shard, longest);
        };
        lqd::ingest::apply(&mut shard, &msg, now()).expect("applied");
        taken += 1;
        if taken.is_multiple_of(8) {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

#[test]
fn back_pressure_bounds_the_queues() {
    const CLIENTS: u32 = 5_000;
    let lab = Lab::new();
    fs::write(&lab.journal, format!("{H17}\n")).expect("X");
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for i in 0..2 {
        let dir = lab.store.join(format!("shard-{i}"));
        let (shard, _, _) =
            lqd::store::Shard::open(ingest_common::shard_config(&dir), now()).expect("shard");
        let (tx, rx) = crossbeam_channel::bounded(4);
        senders.push(tx);
        consumers.push(std::thread::spawn(move || slow_consumer(shard, rx)));
    }
    let mut router = lqd::ingest::Router::new(senders, ingest_common::links(), 100_000);
    let mut source = lqd::ingest::source::KeaSource::new(&lab.journal, 4096, 256);
    source.start(&mut router, None, now()).expect("start");
    // 10,000 rows: every client allocated, then every client renewed.
    let mut text = String::new();
    for expire in [E, E + 10] {
        for n in 1..=CLIENTS {
            text.push_str(&row(n, expire));
            text.push('\n');
        }
    }
    append(&lab.journal, &text);
    while source.poll(&mut router, now()).expect("poll") > 0 {}
    assert_eq!(router.stats().rows, 2 * u64::from(CLIENTS));
    drop(router);
    let mut clients = 0;
    let mut changed = 0;
    for consumer in consumers {
        let (shard, longest) = consumer.join().expect("consumer");
        assert!(longest <= 4, "a queue held {longest} messages");
        assert_eq!(longest, 4, "the queue filled up: the tailer had to wait");
        clients += shard.table().len();
        changed += shard.stats().changed;
    }
    assert_eq!(clients, CLIENTS as usize);
    assert_eq!(changed, 2 * u64::from(CLIENTS), "every row applied once");
}

#[test]

fn concurrent_rotations_lose_no_row() {
    // Kea appends a row and rotates at once, again and again, while lqd tails.
    const ROTATIONS: u32 = 400;
    let lab = Lab::new();
    fs::write(&lab.journal, format!("{H17}\n")).expect("X");
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    let following = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let journal = lab.journal.clone();
    let seen = std::sync::Arc::clone(&following);
    let writer = std::thread::spawn(move || {
        for n in 1..=ROTATIONS {
            // Wait until lqd follows the current X, so that no file is skipped entirely.
            let ino = inode(&journal);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while seen.load(std::sync::atomic::Ordering::Acquire) != ino {
                assert!(
                    std::time::Instant::now() < deadline,
                    "lqd stopped following"
                );
                std::thread::yield_now();
            }
            append(&journal, &format!("{}\n", row(n, E)));
            rotate(&journal, H17, &[]);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ingest.router.stats().rows < u64::from(ROTATIONS) && std::time::Instant::now() < deadline
    {
        ingest.poll_once(now());
        if let Some(p) = ingest.source.position().expect("reading the position") {
            following.store(p.file.ino, std::sync::atomic::Ordering::Release);
        }
        if writer.is_finished() && ingest.poll(now()) == 0 {
            break;
        }
    }
    writer.join().expect("writer");
    ingest.poll(now());
    let lost: Vec<u32> = (1..=ROTATIONS)
        .filter(|&n| ingest.binding(&client(n), 1).is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "rows lost at a rotation: {lost:?}; rejected {:?}",
        ingest.router.stats().rejected
    );
    for n in 1..=ROTATIONS {
        assert_eq!(records_of(&ingest, n), 1, "client {n}");
    }
}
