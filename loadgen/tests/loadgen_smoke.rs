//! `lq-loadgen run --spawn` end to end at a tiny size (issue 7, item 2): lqd starts from
//! the embedded configuration, 24 Active requestors (a quarter filtered by link, a quarter
//! by relay-id, some reconnecting with catch-up, some that stop reading) receive 3,000
//! changes at 1,500/s, and the JSON report has every figure with no final state missing, no
//! duplicate, no change out of order and no error; then 20 requestors over two fleet
//! processes. About 10 s in all.
//!
//! lqd is the `lqd` binary beside `lq-loadgen` (target/<profile>/): `cargo test --workspace`
//! builds both.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn lqd() -> PathBuf {
    let me = Path::new(env!("CARGO_BIN_EXE_lq-loadgen"));
    let lqd = me.with_file_name("lqd");
    assert!(
        lqd.is_file(),
        "{} is missing: build the workspace first (cargo test --workspace does)",
        lqd.display()
    );
    lqd
}

fn run(args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_lq-loadgen"))
        .arg("run")
        .arg("--spawn")
        .arg("--lqd")
        .arg(lqd())
        .args(["--json", json.to_str().expect("UTF-8 path"), "--quiet"])
        .args(args)
        .output()
        .expect("lq-loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "lq-loadgen failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&json).expect("the JSON report");
    (stdout, serde_json::from_str(&report).expect("valid JSON"))
}

#[test]
fn a_tiny_spawned_run_loses_nothing() {
    let (table, report) = run(&[
        "--connections",
        "24",
        "--rate",
        "1500",
        "--duration",
        "2s",
        "--clients",
        "500",
        "--link-pct",
        "25",
        "--relay-pct",
        "25",
        "--reconnect-pct",
        "20",
        "--reconnect-every",
        "700ms",
        "--stop-pct",
        "10",
        "--stop-after",
        "1s",
        "--pump-duration",
        "300ms",
        "--rtt-count",
        "300",
        "--threads",
        "2",
    ]);
    let r = &report["receivers"];
    assert_eq!(report["connected"], 24, "{table}");
    assert_eq!(report["changes"], 3000, "{table}");
    assert_eq!(r["missing_final_states"], 0, "{table}");
    assert_eq!(r["duplicates"], 0, "{table}");
    assert_eq!(r["out_of_order"], 0, "{table}");
    assert_eq!(r["errors"], serde_json::json!({}), "{table}");
    // 10 % stop reading (connections 1, 11, 21 by the spread): not checked, the rest are.
    let checked = r["checked_connections"].as_u64().expect("a count");
    assert!((20..24).contains(&checked), "{checked} checked\n{table}");
    assert!(r["reconnects"].as_u64().expect("a count") > 0, "{table}");
    assert!(
        r["latency"]["count"].as_u64().expect("a count") > 0,
        "{table}"
    );
    assert!(
        report["pump"]["frames_per_s"].as_f64().expect("a rate") > 0.0,
        "{table}"
    );
    assert!(
        report["rtt"]["p99_us"].as_u64().expect("a latency") > 0,
        "{table}"
    );
    assert!(
        report["lqd"]["rss_idle_kib"].as_u64().expect("RSS") > 0,
        "{table}"
    );
    assert_eq!(report["lqd"]["exit"], "exit status: 0", "{table}");
    for heading in [
        "p99.99",
        "lqd / round trip",
        "lqd / pump",
        "final states missing",
    ] {
        assert!(table.contains(heading), "{heading} not in\n{table}");
    }
}

/// The same over two fleet processes (`fleet-part`, `pump-part`), as runs beyond one
/// process's descriptors do.
#[test]
fn a_fleet_over_two_processes_loses_nothing() {
    let (table, report) = run(&[
        "--connections",
        "20",
        "--processes",
        "2",
        "--rate",
        "1000",
        "--duration",
        "2s",
        "--clients",
        "400",
        "--link-pct",
        "30",
        "--reconnect-pct",
        "30",
        "--reconnect-every",
        "600ms",
        "--pump-duration",
        "300ms",
        "--rtt-count",
        "200",
    ]);
    let r = &report["receivers"];
    assert_eq!(report["connected"], 20, "{table}");
    assert_eq!(r["checked_connections"], 20, "{table}");
    assert_eq!(r["missing_final_states"], 0, "{table}");
    assert_eq!(r["duplicates"], 0, "{table}");
    assert_eq!(r["out_of_order"], 0, "{table}");
    assert_eq!(r["errors"], serde_json::json!({}), "{table}");
    assert!(
        r["latency"]["count"].as_u64().expect("a count") > 0,
        "{table}"
    );
    assert!(
        report["pump"]["frames"].as_u64().expect("frames") > 0,
        "{table}"
    );
}

#[test]
fn refuses_a_run_without_target_or_spawn() {
    let out = Command::new(env!("CARGO_BIN_EXE_lq-loadgen"))
        .args(["run", "--rtt-count", "0"])
        .output()
        .expect("lq-loadgen runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--spawn"), "{stderr}");
}
