//! `tuning/check.sh` (issue 7, item 5): it runs on this host without changing anything,
//! prints every setting as a want / have / status line, and checks every setting that
//! `tuning/sysctl.conf` sets.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new("bash")
        .arg(root().join("tuning/check.sh"))
        .args(args)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "check.sh wrote to stderr: {stderr}");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
    )
}

/// The setting lines: those with " want " and " have " (not the column titles).
fn rows(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains(" want ") && l.contains(" have ") && !l.starts_with("setting "))
        .collect()
}

#[test]
fn every_line_says_want_have_and_a_status() {
    for args in [&[][..], &["--dev"][..]] {
        let (code, text) = check(args);
        assert_eq!(code, 0, "without --strict check.sh exits 0:\n{text}");
        let rows = rows(&text);
        assert!(rows.len() >= 15, "too few settings:\n{text}");
        for row in &rows {
            let status = row
                .split(" have ")
                .nth(1)
                .expect("have")
                .split_whitespace()
                .nth(1);
            let status = status.unwrap_or_else(|| panic!("no status in {row:?}"));
            assert!(
                ["ok", "LOW", "HIGH", "DIFF", "n/a"].contains(&status),
                "status {status:?} in {row:?}"
            );
        }
        let summary = text.lines().last().expect("a summary line");
        assert!(summary.ends_with("ok or not applicable"), "{summary}");
    }
}

#[test]
fn sizes_from_a_configuration_and_covers_sysctl_conf() {
    let (_, text) = check(&["--config", "tuning/lqd.example.toml"]);
    assert!(
        text.starts_with("lqd host check (prod profile; 10 connections"),
        "{text}"
    );
    let sysctl = std::fs::read_to_string(root().join("tuning/sysctl.conf")).expect("sysctl.conf");
    for line in sysctl.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().expect("key = value").trim();
        assert!(
            rows(&text).iter().any(|r| r.starts_with(key)),
            "sysctl.conf sets {key}, check.sh does not show it:\n{text}"
        );
    }
}

#[test]
fn strict_fails_on_a_setting_that_is_not_ok() {
    let (code, text) = check(&["--strict"]);
    let bad = rows(&text)
        .iter()
        .filter(|r| !(r.ends_with(" ok") || r.contains(" n/a")))
        .count();
    assert_eq!(code, i32::from(bad > 0), "{bad} lines not ok:\n{text}");
    let unknown = Command::new("bash")
        .arg(root().join("tuning/check.sh"))
        .arg("--no-such-flag")
        .output()
        .expect("bash runs");
    assert_eq!(unknown.status.code(), Some(2));
}
