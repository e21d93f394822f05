//! Looking at lqd from outside: resident memory (`/proc/PID/status` VmRSS), its Prometheus
//! counters (`GET /metrics`), and, where those are absent, syscalls counted by
//! `perf stat -e raw_syscalls:sys_enter -p PID`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Largest `/metrics` answer read.
const METRICS_BYTES_MAX: u64 = 8 << 20;

/// CPUs and the load average now (other load on the host skews every figure).
pub(crate) fn host_line() -> String {
    format!(
        "{} CPUs, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// VmRSS of process `pid`, KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of process `pid` ("self" for this one), all threads.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold blanks: state is field 3, utime 14,
    // stime 15 (proc(5)).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_s())
}

/// `getconf CLK_TCK` (100 on every Linux seen).
fn clock_ticks_per_s() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t: &f64| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Every sample of a `/metrics` answer, summed per metric name (labels dropped).
pub(crate) fn scrape(addr: SocketAddr) -> Option<BTreeMap<String, f64>> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream
        .take(METRICS_BYTES_MAX)
        .read_to_string(&mut text)
        .ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200") {
        return None;
    }
    Some(parse_metrics(body))
}

fn parse_metrics(body: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in body.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(series), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            *sums.entry(name.to_owned()).or_insert(0.0) += v;
        }
    }
    sums
}

/// A running `perf stat` counting lqd's syscalls over a window.
pub(crate) struct PerfSyscalls {
    child: Child,
}

impl PerfSyscalls {
    /// Count syscalls of every thread of `pid` for `window`; `None` when perf cannot.
    pub(crate) fn start(pid: u32, window: Duration) -> Option<Self> {
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .args(["--", "sleep"])
            .arg(format!("{:.3}", window.as_secs_f64()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(Self { child })
    }

    /// The count, once the window is over.
    pub(crate) fn finish(self) -> Option<u64> {
        let out = self.child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        parse_perf(&text)
    }
}

fn parse_perf(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next())
        .and_then(|v| v.trim().parse().ok())
}

/// True when `perf stat` can count syscalls here (tried on `true`).
pub(crate) fn perf_works() -> bool {
    Command::new("perf")
        .args([
            "stat",
            "-x",
            ",",
            "-e",
            "raw_syscalls:sys_enter",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()
        .is_some_and(|o| {
            o.status.success() && parse_perf(&String::from_utf8_lossy(&o.stderr)).is_some()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics_and_perf() {
        let m = parse_metrics(
            "# HELP x\nlqd_frames_sent_total{worker=\"0\"} 10\n\
             lqd_frames_sent_total{worker=\"1\"} 5\nlqd_io_uring_enter_total 3\n",
        );
        assert_eq!(m["lqd_frames_sent_total"], 15.0);
        assert_eq!(m["lqd_io_uring_enter_total"], 3.0);
        assert_eq!(
            parse_perf("12345,,raw_syscalls:sys_enter,1000,100.00,,\n"),
            Some(12345)
        );
        assert_eq!(
            parse_perf("<not supported>,,raw_syscalls:sys_enter\n"),
            None
        );
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert!(cpu_seconds("self").is_some_and(|s| s >= 0.0));
    }
}
