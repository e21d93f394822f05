//! The `lqd` binary serving leasequery over TCP on loopback (tests/server_common):
//!
//! 1. A Bulk query for all bindings (D-3) gets REPLY, DATA, DONE with every client; an
//!    Active query gets its REPLY and rows appended to the journal arrive as DATA (S-50);
//!    SIGTERM ends the Active query with DONE QueryTerminated and LQ_BASE_TIME, then the
//!    connection closes (S-59), and lqd exits 0.
//! 2. Out of descriptors, lqd pauses accepting instead of spinning (style.md T13).
//! 3. At the cap, an idle connection makes room for a new requestor (S-11).

mod server_common;

use std::time::Duration;

use lqd::wire::build::QueryOut;
use lqd::wire::{MessageType, OptionCode, StatusCode};
use server_common::{active, bulk, Client, Event, Lqd, Msg, Row};

fn row(n: u16) -> Row {
    Row::na(n, &format!("2001:db8:1::{n:x}"), 1)
}

/// (type, status, LQ_BASE_TIME present) of a message.
fn kind(m: &Msg) -> (MessageType, Option<StatusCode>, bool) {
    (m.kind(), m.status(), m.base_time().is_some())
}

/// A Bulk query for all bindings (D-3) with 100 in the ORO; the whole answer.
fn bulk_all(client: &mut Client, xid: u32) -> Vec<Msg> {
    client.send(&bulk(
        xid,
        QueryOut::LinkAddress,
        "::",
        &[],
        &[OptionCode::LqBaseTime],
    ));
    client.bulk_answer()
}

#[test]
fn bulk_active_and_shutdown_over_tcp() {
    let mut lqd = Lqd::start(&[row(1), row(2), row(3)], &[]);
    // The workers apply the snapshot's rows from their queues.
    lqd.wait_clients(3);
    let kinds: Vec<MessageType> = bulk_all(&mut lqd.connect(), 1)
        .iter()
        .map(Msg::kind)
        .collect();
    assert_eq!(
        kinds,
        [
            MessageType::LeasequeryReply,
            MessageType::LeasequeryData,
            MessageType::LeasequeryData,
            MessageType::LeasequeryDone
        ]
    );

    // Active: REPLY, then a DATA per appended row.
    let mut stream = lqd.connect();
    stream.send(&active(2, &[OptionCode::LqBaseTime], None));
    let wait = Duration::from_secs(10);
    assert_eq!(
        kind(&stream.msg(wait)),
        (MessageType::LeasequeryReply, None, true)
    );
    lqd.append(&[row(4), row(5)]);
    for _ in 0..2 {
        assert_eq!(
            kind(&stream.msg(wait)),
            (MessageType::LeasequeryData, None, true)
        );
    }

    // Shutdown: DONE QueryTerminated with BASE_TIME, then end of stream (S-59).
    let status = lqd.terminate();
    let done = (
        MessageType::LeasequeryDone,
        Some(StatusCode::QueryTerminated),
        true,
    );
    assert_eq!(kind(&stream.msg(wait)), done);
    stream.expect_closed(Duration::from_secs(5));
    assert!(status.success(), "lqd exited with {status}");
}

/// CPU seconds a process has used (utime + stime from /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// style.md T13: out of descriptors, lqd pauses accepting instead of spinning on the
/// backlog, and serves again once descriptors are free.
#[test]
fn out_of_descriptors_does_not_spin() {
    // A cap far above what 64 descriptors allow: accept itself runs out (EMFILE).
    let lqd = Lqd::start_wrapped(
        &[row(1)],
        &[("connections_max", "1000")],
        &["prlimit", "--nofile=64:64"],
    );
    let mut held: Vec<std::net::TcpStream> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", lqd.port)).ok())
        .collect();
    assert!(lqd.wait_for("pausing accepts"));
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(lqd.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(lqd.pid()) - before;
    assert!(
        used < 0.5,
        "lqd used {used:.2} s of CPU in 2 s while out of descriptors"
    );
    held.clear();
    std::thread::sleep(Duration::from_millis(500));
    let answer = bulk_all(&mut lqd.connect(), 9);
    assert_eq!(
        answer[0].kind(),
        MessageType::LeasequeryReply,
        "serving again"
    );
}

/// S-11: at the cap, a connection that answered its query and then idled for
/// ACTIVE_LQ_IDLE_TIMEOUT is closed to admit a new requestor; a fresh one is not.
#[test]
fn idle_connection_makes_room_at_the_cap() {
    let lqd = Lqd::start(
        &[row(1)],
        &[
            ("connections_max", "2"),
            ("active_idle_timeout_s", "1"),
            ("workers", "1"),
        ],
    );
    // The worker applies the snapshot's row from its queue: ask on this one connection
    // until it is there (another connection for that could still count against the cap
    // of 2 while lqd closes it).
    let mut idle = lqd.connect();
    let mut answer = Vec::new();
    for xid in 1..=10 {
        answer = bulk_all(&mut idle, xid);
        if answer.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(answer.len(), 2, "REPLY with the binding, DONE");
    let mut busy = lqd.connect();
    busy.send(&active(2, &[], None));
    // Right away the cap holds: a third connection is closed at once (S-8).
    lqd.connect().expect_closed(Duration::from_secs(2));
    // After the idle timeout the idle connection makes room.
    std::thread::sleep(Duration::from_millis(1_300));
    let mut late = lqd.connect();
    assert_eq!(
        bulk_all(&mut late, 3).len(),
        2,
        "the new requestor is served"
    );
    assert!(
        matches!(
            idle.next(Duration::from_secs(2)),
            Event::Closed | Event::Reset
        ),
        "the idle one was closed"
    );
}
