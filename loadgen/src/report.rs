//! The report of a run: a table on stdout and the same figures as JSON (`--json FILE`).

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::observe::PerfSyscalls;
use crate::population::Population;
use crate::pump::PumpReport;
use crate::rtt;
use crate::run::Load;
use crate::stats::{percentiles_json, to_u64, ThreadStats, PERCENTILES};

/// Syscalls per delivered frame, and where the count came from.
#[derive(Clone, Debug)]
pub(crate) struct Syscalls {
    /// The ratio, when it could be measured.
    pub(crate) per_frame: Option<f64>,
    /// Syscalls counted.
    pub(crate) syscalls: Option<u64>,
    /// Frames they are divided by.
    pub(crate) frames: Option<u64>,
    /// How: lqd's counters, perf, or nothing.
    pub(crate) source: &'static str,
}

impl Syscalls {
    /// From `/metrics` before and after (lqd_io_uring_enter_total / lqd_frames_sent_total)
    /// or else from perf's count over the schedule and `frames` received in that window.
    pub(crate) fn from_counts(
        before: Option<&BTreeMap<String, f64>>,
        after: Option<&BTreeMap<String, f64>>,
        perf: Option<PerfSyscalls>,
        frames: u64,
    ) -> Self {
        let delta = |name: &str| -> Option<f64> { Some(after?.get(name)? - before?.get(name)?) };
        if let (Some(enters), Some(sent)) = (
            delta("lqd_io_uring_enter_total"),
            delta("lqd_frames_sent_total"),
        ) {
            if let Some(perf) = perf {
                let _ = perf.finish();
            }
            return Self {
                per_frame: (sent > 0.0).then(|| enters / sent),
                syscalls: Some(to_u64(enters)),
                frames: Some(to_u64(sent)),
                source: "lqd /metrics: lqd_io_uring_enter_total / lqd_frames_sent_total",
            };
        }
        if let Some(count) = perf.and_then(PerfSyscalls::finish) {
            return Self {
                per_frame: (frames > 0).then(|| count as f64 / frames as f64),
                syscalls: Some(count),
                frames: Some(frames),
                source: "perf stat -e raw_syscalls:sys_enter -p PID (all lqd threads) over the \
                         schedule / DATA frames received in it",
            };
        }
        Self {
            per_frame: None,
            syscalls: None,
            frames: None,
            source: "n/a (no lqd /metrics counters, perf unavailable)",
        }
    }
}

/// lqd's process figures.
#[derive(Clone, Debug)]
pub(crate) struct LqdFigures {
    /// VmRSS before any connection, KiB.
    pub(crate) rss_before_kib: Option<u64>,
    /// VmRSS with every connection open and idle, KiB.
    pub(crate) rss_idle_kib: Option<u64>,
    /// Its exit status, when spawned.
    pub(crate) exit: Option<String>,
    /// The host: CPUs and /proc/loadavg when the run started (other load skews figures).
    pub(crate) host: String,
}

/// Everything a run measured.
pub(crate) struct Report {
    /// The arguments, as given.
    pub(crate) args: String,
    /// Connections asked for.
    pub(crate) connections: usize,
    /// Connections that got their REPLY.
    pub(crate) connected: usize,
    /// Changes per second scheduled.
    pub(crate) rate: f64,
    /// The population.
    pub(crate) population: Population,
    /// The receivers' merged counts.
    pub(crate) stats: ThreadStats,
    /// The schedule's figures.
    pub(crate) load: Load,
    /// The round-trip baseline.
    pub(crate) rtt: Option<rtt::Report>,
    /// The pump baseline.
    pub(crate) pump: Option<PumpReport>,
    /// lqd's process figures.
    pub(crate) lqd: LqdFigures,
}

impl Report {
    /// Seconds the delivery took: to the last DATA when every connection got every final
    /// state; to the end of the drain when it did not (a silent lqd is no faster for it).
    fn delivery_s(&self) -> f64 {
        if self.load.drain_timed_out {
            return self.load.wall_s.max(1e-9);
        }
        let ns = self.load.last_data_ns.saturating_sub(self.load.start_ns);
        (ns as f64 / 1e9).max(1e-9)
    }

    /// DATA frames with CLIENT_DATA per second over [`Self::delivery_s`].
    pub(crate) fn frames_per_s(&self) -> f64 {
        self.stats.data_frames as f64 / self.delivery_s()
    }

    fn schedule_s(&self) -> f64 {
        self.load.injected.rows as f64 / self.rate
    }

    fn rss_per_connection_kib(&self) -> Option<f64> {
        let (before, idle) = (self.lqd.rss_before_kib?, self.lqd.rss_idle_kib?);
        (self.connected > 0).then(|| (idle as f64 - before as f64) / self.connected as f64)
    }

    fn p99_ratio(&self) -> Option<f64> {
        let rtt = self.rtt.as_ref()?.histogram.value_at_quantile(0.99);
        (rtt > 0 && !self.stats.latency.is_empty())
            .then(|| self.stats.latency.value_at_quantile(0.99) as f64 / rtt as f64)
    }

    fn pump_ratio(&self) -> Option<f64> {
        let pump = self.pump?.frames_per_s();
        (pump > 0.0).then(|| self.frames_per_s() / pump)
    }

    /// The report as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let i = &self.load.injected;
        json!({
            "args": self.args,
            "connections": self.connections,
            "connected": self.connected,
            "rate": self.rate,
            "changes": i.rows,
            "clients": self.population.clients,
            "writer": { "rows": i.rows, "writes": i.writes, "bytes": i.bytes,
                        "late_us_max": i.late_us_max },
            "receivers": self.stats.to_json(),
            "delivered_frames_per_s": self.frames_per_s(),
            "delivery_s": self.delivery_s(),
            "delivered_bytes_per_s": self.stats.bytes as f64 / self.delivery_s(),
            "offered_frames_per_s": self.stats.expected as f64 / self.schedule_s().max(1e-9),
            "rtt": self.rtt.as_ref().map(|r| percentiles_json(&r.histogram)),
            "p99_over_rtt_p99": self.p99_ratio(),
            "pump": self.pump.map(PumpReport::to_json),
            "frames_over_pump": self.pump_ratio(),
            "lqd": {
                "rss_before_kib": self.lqd.rss_before_kib,
                "rss_idle_kib": self.lqd.rss_idle_kib,
                "rss_load_kib": self.load.rss_load_kib,
                "rss_per_idle_connection_kib": self.rss_per_connection_kib(),
                "exit": self.lqd.exit,
            },
            "host": self.lqd.host,
            "syscalls": {
                "per_frame": self.load.syscalls.per_frame,
                "syscalls": self.load.syscalls.syscalls,
                "frames": self.load.syscalls.frames,
                "source": self.load.syscalls.source,
            },
            "drain_timed_out": self.load.drain_timed_out,
            "cpu": { "wall_s": self.load.wall_s, "lqd_s": self.load.lqd_cpu_s,
                     "loadgen_s": self.load.own_cpu_s },
        })
    }
}

fn latency_row(f: &mut fmt::Formatter<'_>, name: &str, h: &Histogram<u64>) -> fmt::Result {
    write!(f, "  {name:<24} {:>9}", h.len())?;
    for (_, q) in PERCENTILES {
        write!(f, " {:>9}", h.value_at_quantile(q))?;
    }
    writeln!(f, " {:>9}", h.max())
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

impl Report {
    fn fmt_latency(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\nlatency, µs                    count")?;
        for (name, _) in PERCENTILES {
            write!(f, " {name:>9}")?;
        }
        writeln!(f, " {:>9}", "max")?;
        latency_row(f, "lqd: scheduled → receipt", &self.stats.latency)?;
        if let Some(rtt) = &self.rtt {
            latency_row(f, "loopback round trip", &rtt.histogram)?;
            write!(f, "  {:<24} {:>9}", "lqd / round trip", "")?;
            for (_, q) in PERCENTILES {
                let r = rtt.histogram.value_at_quantile(q).max(1);
                let ratio = self.stats.latency.value_at_quantile(q) as f64 / r as f64;
                write!(f, " {:>8.1}×", ratio)?;
            }
            let ratio = self.stats.latency.max() as f64 / rtt.histogram.max().max(1) as f64;
            writeln!(f, " {ratio:>8.1}×")?;
        }
        Ok(())
    }

    fn fmt_throughput(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "\nthroughput                   DATA frames/s      bytes/s  frames/read"
        )?;
        writeln!(
            f,
            "  lqd delivered              {:>13.0} {:>12.0} {:>12.1}",
            self.frames_per_s(),
            s.bytes as f64 / self.delivery_s(),
            s.frames_per_read()
        )?;
        writeln!(
            f,
            "  offered (states / schedule) {:>12.0}",
            s.expected as f64 / self.schedule_s().max(1e-9)
        )?;
        if let Some(p) = self.pump {
            writeln!(
                f,
                "  pump (batch {:>4})          {:>13.0} {:>12.0}   {} writes in {:.1} s",
                p.batch,
                p.frames_per_s(),
                p.bytes as f64 / p.seconds,
                p.writes,
                p.seconds
            )?;
            let offered = s.expected as f64 / self.schedule_s().max(1e-9);
            let note = if self.frames_per_s() >= 0.95 * offered {
                "  (lqd kept up with the offered load: a lower bound, not a ceiling)"
            } else {
                "  (lqd saturated: delivered below offered)"
            };
            writeln!(
                f,
                "  lqd / pump                 {:>12.2}×{note}",
                self.pump_ratio().unwrap_or(0.0)
            )?;
        }
        Ok(())
    }

    fn fmt_checks(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "\ncorrectness ({} connections read to the end)",
            s.checked
        )?;
        writeln!(
            f,
            "  final states missing at the end {}   duplicates {}   out of order {}",
            s.missing, s.duplicates, s.out_of_order
        )?;
        writeln!(
            f,
            "  intermediate states coalesced {} of {} written for the filters (allowed: \
             RFC 7653 §7, only a client's latest state is due)",
            s.coalesced, s.expected
        )?;
        if s.reconnects > 0 {
            writeln!(
                f,
                "  reconnects {} (LQ_START_TIME): new states in catch-up {}, states repeated {}",
                s.reconnects, s.catchup_frames, s.catchup_repeats
            )?;
        }
        write!(
            f,
            "  evicted by lqd {}   keepalives {}   errors:",
            s.evicted, s.keepalives
        )?;
        if s.errors.is_empty() {
            write!(f, " none")?;
        }
        for (kind, n) in &s.errors {
            write!(f, " {kind}: {n};")?;
        }
        writeln!(f)
    }
}

impl Report {
    fn fmt_lqd(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.lqd;
        writeln!(
            f,
            "\nlqd: RSS before connections {}, with {} idle connections {} ({} KiB each), \
             under load (max) {}",
            mib(l.rss_before_kib),
            self.connected,
            mib(l.rss_idle_kib),
            opt(self.rss_per_connection_kib().map(|k| format!("{k:.1}"))),
            mib(self.load.rss_load_kib)
        )?;
        let sc = &self.load.syscalls;
        writeln!(
            f,
            "     syscalls per delivered frame {} ({} syscalls / {} frames; {})",
            opt(sc.per_frame.map(|v| format!("{v:.4}"))),
            opt(sc.syscalls),
            opt(sc.frames),
            sc.source
        )?;
        let cpu = |s: Option<f64>| {
            opt(s.map(|s| {
                format!(
                    "{s:.1} s ({:.0} % of one CPU)",
                    100.0 * s / self.load.wall_s
                )
            }))
        };
        writeln!(
            f,
            "     CPU from the schedule's start to the end of the drain ({:.1} s): lqd {}, \
             lq-loadgen {}",
            self.load.wall_s,
            cpu(self.load.lqd_cpu_s),
            cpu(self.load.own_cpu_s)
        )?;
        if let Some(exit) = &l.exit {
            writeln!(f, "     exit after SIGTERM: {exit}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.population;
        let i = &self.load.injected;
        writeln!(
            f,
            "lq-loadgen: {} Active requestors ({} got their REPLY), {} changes/s: {} changes \
             over {} clients ({} links, {} relays, every {} a prefix)",
            self.connections,
            self.connected,
            self.rate,
            i.rows,
            p.clients,
            p.links,
            p.relays,
            opt((p.pd_every > 0).then_some(p.pd_every))
        )?;
        writeln!(
            f,
            "writer: {} rows in {} appends, at most {} µs behind schedule{}",
            i.rows,
            i.writes,
            i.late_us_max,
            if self.load.drain_timed_out {
                "; the drain ended before every connection had every final state"
            } else {
                ""
            }
        )?;
        writeln!(f, "host: {}", self.lqd.host)?;
        self.fmt_latency(f)?;
        self.fmt_throughput(f)?;
        self.fmt_checks(f)?;
        self.fmt_lqd(f)
    }
}
