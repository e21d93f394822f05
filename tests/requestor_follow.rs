//! `lq follow` against the real lqd (issue 6, item 2): live changes as JSON lines, catch-up
//! from a start time (S-52, S-53) with its base time never saved, reconnection after
//! QueryTerminated with the last saved base time as LQ_START_TIME and a short test backoff
//! DataMissing followed by the Bulk recovery of R-32 while the stream
//! goes on, NotSupported, and the receive timeout.

mod requestor_common;
mod server_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use lqd::wire::build::{framed, write_reply, Reply};
use lqd::wire::Xid;
use requestor_common::{lq, LqProc, Station};
use serde_json::Value;
use server_common::{duid, server_now, Lqd, Row};

const T: Duration = Duration::from_secs(15);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is(kind: &'static str) -> impl FnMut(&Value) -> bool {
    move |v| v["type"] == kind
}

fn binding_of(n: u16) -> impl FnMut(&Value) -> bool {
    let id = hex(&duid(n));
    move |v| v["type"] == "binding" && v["client_id"]["hex"] == id.as_str()
}

#[test]
fn follow_prints_live_changes_and_deletions_d4() {
    let lqd = Lqd::start(
        &[Row::na(1, "2001:db8:1::1", 1)],
        &[("active_idle_timeout_s", "1")],
    );
    let server = format!("127.0.0.1:{}", lqd.port);
    let f = LqProc::start(&[
        "follow",
        "-s",
        &server,
        "--retry-min",
        "1",
        "--rcv-timeout",
        "5",
    ]);
    let mut seen = Vec::new();
    let started = f.until(T, &mut seen, is("started"));
    assert_eq!(started["server_id"]["hex"], "00030001001122334455");
    assert!(started["start_time"].is_null(), "R-8: no catch-up asked");
    lqd.append(&[Row::na(2, "2001:db8:1::2", 1)]);
    let live = f.until(T, &mut seen, binding_of(2));
    assert_eq!(live["origin"], "live");
    assert_eq!(live["leases"][0]["address"], "2001:db8:1::2");
    assert!(live["leases"][0]["expires"]["utc"].as_str().is_some());
    let mut gone = Row::na(2, "2001:db8:1::2", 1);
    gone.valid = 0;
    gone.pref = 0;
    lqd.append(&[gone]);
    let ended = f.until(T, &mut seen, binding_of(2));
    assert_eq!(ended["leases"][0]["ended"], true, "D-4: {ended}");
}

#[test]
fn catch_up_then_live_r29() {
    let lqd = Lqd::start(&[], &[("active_idle_timeout_s", "1")]);
    let start = lqd.base_time();
    lqd.append(&[
        Row::na(3, "2001:db8:1::3", 1),
        Row::na(4, "2001:db8:2::4", 2),
    ]);
    requestor_common::wait_clients(lqd.port, 2);
    let server = format!("127.0.0.1:{}", lqd.port);
    let f = LqProc::start(&[
        "follow",
        "-s",
        &server,
        "--start",
        &start.to_string(),
        "--retry-min",
        "1",
    ]);
    let mut seen = Vec::new();
    let started = f.until(T, &mut seen, is("started"));
    assert_eq!(started["start_time"]["server"], start);
    f.until(T, &mut seen, is("catch-up-complete"));
    let caught: Vec<&Value> = seen.iter().filter(|v| v["type"] == "binding").collect();
    assert_eq!(caught.len(), 2, "{seen:#?}");
    assert!(caught.iter().all(|v| v["origin"] == "catch-up"));
}

#[test]
fn reconnects_after_query_terminated_with_saved_base_time_r11_r30() {
    let mut station = Station::new(&[Row::na(1, "2001:db8:1::1", 1)], "");
    let f = LqProc::start(&[
        "follow",
        "-s",
        &station.server(),
        "--retry-min",
        "1",
        "--rcv-timeout",
        "5",
    ]);
    let mut seen = Vec::new();
    f.until(T, &mut seen, is("started"));
    station.append(&[Row::na(5, "2001:db8:1::5", 1)]);
    let live = f.until(T, &mut seen, binding_of(5));
    let base = live["base_time"]["server"].as_u64().expect("base");
    // SIGTERM: DONE QueryTerminated (S-59), lq waits its backoff and reconnects.
    station.terminate();
    let gone = f.until(T, &mut seen, is("disconnected"));
    let error = gone["error"].as_str().expect("error");
    assert!(error.contains("QueryTerminated"), "{error}");
    assert!(gone["retry_in_s"].as_f64().expect("retry") >= 1.0, "R-11");
    let next = gone["next_start_time"]["server"].as_u64().expect("R-30");
    assert!(
        next >= base,
        "the saved base time is at least the last binding's"
    );
    station.append(&[Row::na(6, "2001:db8:1::6", 1)]);
    station.start();
    let again = f.until(Duration::from_secs(30), &mut seen, is("started"));
    assert_eq!(again["start_time"]["server"].as_u64(), Some(next));
    // The change made while lq was away comes by catch-up (S-52).
    let caught = f.until(T, &mut seen, binding_of(6));
    assert_eq!(caught["origin"], "catch-up");
    f.until(T, &mut seen, is("catch-up-complete"));
}

#[test]
fn data_missing_runs_the_bulk_recovery_r32() {
    let lqd = Lqd::start(
        &[
            Row::na(1, "2001:db8:1::1", 1),
            Row::na(2, "2001:db8:2::2", 2),
        ],
        &[("active_idle_timeout_s", "1")],
    );
    requestor_common::wait_clients(lqd.port, 2);
    let server = format!("127.0.0.1:{}", lqd.port);
    // A start time before lqd's history began (S-54).
    let start = (server_now() - 100_000).to_string();
    let f = LqProc::start(&[
        "follow",
        "-s",
        &server,
        "--start",
        &start,
        "--retry-min",
        "1",
    ]);
    let mut seen = Vec::new();
    let missing = f.until(T, &mut seen, is("data-missing"));
    assert_eq!(missing["start_time"]["server"].as_str(), None);
    assert_eq!(missing["start_time"]["server"].as_u64(), start.parse().ok());
    assert_eq!(missing["recovery"], true);
    // The stream goes on while the recovery runs on its own connection.
    lqd.append(&[Row::na(7, "2001:db8:1::7", 1)]);
    let done = f.until(T, &mut seen, is("recovery-done"));
    let live_7 = |v: &Value| binding_of(7)(v) && v["origin"] == "live";
    if !seen.iter().any(live_7) {
        f.until(T, &mut seen, live_7);
    }
    let recovered: Vec<String> = seen
        .iter()
        .filter(|v| v["type"] == "binding" && v["origin"] == "recovery")
        .map(|v| v["client_id"]["hex"].as_str().expect("hex").to_owned())
        .collect();
    assert!(recovered.contains(&hex(&duid(1))), "{seen:#?}");
    assert!(recovered.contains(&hex(&duid(2))), "{seen:#?}");
    assert_eq!(done["bindings"].as_u64(), Some(recovered.len() as u64));
}

#[test]
fn not_supported_and_receive_timeout_fail_clearly() {
    let lqd = Lqd::start(&[], &[("active_enabled", "false")]);
    let server = format!("127.0.0.1:{}", lqd.port);
    let run = lq(&["follow", "-s", &server, "--retry-min", "1"], T);
    assert!(!run.ok);
    assert!(run.stderr.contains("NotSupported (14)"), "{}", run.stderr);

    // a server that accepts the query and then goes silent.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let me = [0u8, 2, 0, 0, 0x7e, 0xd9, b'l', b'q'];
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("query");
        assert!(n > 6);
        let xid = Xid::from_bytes([buf[3], buf[4], buf[5]]);
        let reply = Reply {
            xid,
            server_id: &[0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55],
            client_id: Some(&me),
            status: None,
            base_time: Some(server_now()),
            client_data: None,
        };
        let mut out = [0u8; 256];
        let n = framed(&mut out, |w| write_reply(w, &reply)).expect("fits");
        s.write_all(&out[..n]).expect("reply");
        std::thread::sleep(Duration::from_secs(6));
    });
    let run = lq(
        &[
            "follow",
            "-s",
            &addr,
            "--rcv-timeout",
            "1",
            "--retries-max",
            "0",
        ],
        T,
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("receive timeout"), "{}", run.stderr);
    assert!(run.stdout.contains("\"started\""), "{}", run.stdout);
}

/// R-2, D-13: a filtered Active query streams only the matching client; `--count` ends it.
#[test]
fn follow_with_a_filter_d13() {
    let lqd = Lqd::start(&[], &[("active_idle_timeout_s", "1")]);
    let server = format!("127.0.0.1:{}", lqd.port);
    let id = hex(&duid(9));
    let mut f = LqProc::start(&["follow", "-s", &server, "--count", "1", "client-id", &id]);
    let mut seen = Vec::new();
    f.until(T, &mut seen, is("started"));
    lqd.append(&[Row::na(8, "2001:db8:1::8", 1)]);
    lqd.append(&[Row::na(9, "2001:db8:1::9", 1)]);
    let b = f.until(T, &mut seen, |v| v["type"] == "binding");
    assert_eq!(
        b["client_id"]["hex"],
        id.as_str(),
        "only the filtered client"
    );
    let deadline = std::time::Instant::now() + T;
    while f.running() {
        assert!(std::time::Instant::now() < deadline, "--count 1 ends lq");
        std::thread::sleep(Duration::from_millis(20));
    }
}
