//! `lq-loadgen run`: one whole benchmark. In order: the loopback round-trip baseline, lqd
//! (spawned or given), N Active requestors, the open-loop schedule of binding changes
//! appended to the Kea journal, a drain, then the pump baseline over the same number of
//! sockets with lqd's batch size and the frames lqd sent; a report table and JSON.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};

use crate::fleet::{FleetConfig, Mix, Receiver, Shared};
use crate::inject::{inject, Injected};
use crate::observe::{cpu_seconds, host_line, perf_works, rss_kib, scrape, PerfSyscalls};
use crate::parts::{Parts, CONNECTIONS_PER_PROCESS, PARTS_MAX};
use crate::population::Population;
use crate::progress::Progress;
use crate::report::{LqdFigures, Report, Syscalls};
use crate::spawn::{find_lqd, Lqd, SpawnConfig};
use crate::stats::{to_u64, ThreadStats};
use crate::{parts, pump, rtt};

/// Arguments of `lq-loadgen run`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Start lqd with a temporary data directory and an embedded configuration.
    #[arg(long)]
    pub(crate) spawn: bool,
    /// lqd's executable for --spawn [default: lqd beside lq-loadgen].
    #[arg(long)]
    pub(crate) lqd: Option<PathBuf>,
    /// Without --spawn: the lqd to connect to.
    #[arg(long)]
    pub(crate) target: Option<SocketAddr>,
    /// Without --spawn: the Kea lease6 journal that lqd tails (rows are appended to it).
    #[arg(long)]
    pub(crate) journal: Option<PathBuf>,
    /// Without --spawn: lqd's pid, for RSS and syscall counts.
    #[arg(long)]
    pub(crate) pid: Option<u32>,
    /// Without --spawn: lqd's /metrics address.
    #[arg(long)]
    pub(crate) metrics: Option<SocketAddr>,
    /// Active requestor connections.
    #[arg(long, default_value_t = 100)]
    pub(crate) connections: usize,
    /// Binding changes per second.
    #[arg(long, default_value_t = 10_000.0)]
    pub(crate) rate: f64,
    /// How long the schedule runs (e.g. 20s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Changes in all (default: rate × duration; the smaller wins).
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Distinct clients changed round robin.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) clients: u32,
    /// Links (Kea subnets).
    #[arg(long, default_value_t = 4)]
    pub(crate) links: u32,
    /// Relays (0 = rows without relay information).
    #[arg(long, default_value_t = 4)]
    pub(crate) relays: u32,
    /// Every n-th client holds a delegated prefix instead of an address (0 = none).
    #[arg(long, default_value_t = 4)]
    pub(crate) pd_every: u32,
    /// Receiver threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Loopback source addresses, comma-separated.
    #[arg(
        long,
        default_value = "127.0.0.1,127.0.0.2,127.0.0.3",
        value_delimiter = ','
    )]
    pub(crate) sources: Vec<Ipv4Addr>,
    /// Percent of connections that query one link.
    #[arg(long, default_value_t = 0)]
    pub(crate) link_pct: u32,
    /// Percent of connections that query one relay-id.
    #[arg(long, default_value_t = 0)]
    pub(crate) relay_pct: u32,
    /// Percent of connections that stop reading after --stop-after.
    #[arg(long, default_value_t = 0)]
    pub(crate) stop_pct: u32,
    /// When stopping readers stop, into the schedule.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) stop_after: Duration,
    /// Percent of connections that reconnect periodically with catch-up.
    #[arg(long, default_value_t = 0)]
    pub(crate) reconnect_pct: u32,
    /// Their period.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub(crate) reconnect_every: Duration,
    /// --spawn: lqd's shards and network workers (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub(crate) workers: usize,
    /// --spawn: lqd's tick_ms (default: lqd's own).
    #[arg(long)]
    pub(crate) tick_ms: Option<u64>,
    /// --spawn: lqd's active_send_timeout_s (eviction of stopped readers).
    #[arg(long, default_value_t = 120)]
    pub(crate) send_timeout_s: u64,
    /// Longest wait after the schedule for the last changes to arrive.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) drain_max: Duration,
    /// The drain also ends after this long without any DATA (lqd can fall silent for
    /// seconds and then deliver: see README, "Benchmarks: the load generator").
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub(crate) drain_quiet: Duration,
    /// How long the pump baseline writes (0s = skip it).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) pump_duration: Duration,
    /// Round trips of the loopback baseline (0 = skip it).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) rtt_count: u64,
    /// Processes holding the connections (0 = one per 9,000 connections).
    #[arg(long, default_value_t = 0)]
    pub(crate) processes: usize,
    /// Write the report as JSON to this file too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// Most connections one process holds (descriptor limit; spread larger fleets over
/// processes and source addresses).
const CONNECTIONS_MAX: usize = 50_000;
/// Most memory for the receivers' per-client tables (2 octets per client and connection).
const SEEN_BYTES_MAX: u64 = 4 << 30;

/// `20s`, `500ms`, `2m`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

impl Args {
    /// Changes the schedule writes.
    pub(crate) fn changes(&self) -> u64 {
        let by_duration = to_u64((self.rate * self.duration.as_secs_f64()).round());
        self.count
            .map_or(by_duration, |c| c.min(by_duration.max(1)))
    }

    /// Processes for the fleet.
    pub(crate) fn parts(&self) -> usize {
        if self.processes > 0 {
            self.processes.min(PARTS_MAX)
        } else {
            self.connections
                .div_ceil(CONNECTIONS_PER_PROCESS)
                .clamp(1, PARTS_MAX)
        }
    }

    fn validate(&self) -> anyhow::Result<Population> {
        ensure!(
            self.rate > 0.0 && self.rate <= 10_000_000.0,
            "--rate must be in (0, 1e7]"
        );
        ensure!(
            (1..=CONNECTIONS_MAX).contains(&self.connections),
            "--connections must be 1 ..= {CONNECTIONS_MAX}"
        );
        ensure!(
            (1..=64).contains(&self.threads),
            "--threads must be 1 ..= 64"
        );
        ensure!(!self.sources.is_empty(), "--sources needs an address");
        ensure!(
            self.link_pct + self.relay_pct <= 100
                && self.stop_pct <= 100
                && self.reconnect_pct <= 100,
            "percentages add up to at most 100"
        );
        ensure!(
            self.changes() > 0,
            "the schedule has no change: raise --rate or --duration"
        );
        let seen = self.connections as u64 * u64::from(self.clients) * 2;
        ensure!(
            seen <= SEEN_BYTES_MAX,
            "{} connections × {} clients need {} MiB of tables (> {} MiB): fewer clients",
            self.connections,
            self.clients,
            seen >> 20,
            SEEN_BYTES_MAX >> 20
        );
        let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        // A month ahead: every lease is live for the whole run.
        self.population(unix + 30 * 86_400)
    }

    /// The population with every client's change 0 expiring at `expire_base`.
    pub(crate) fn population(&self, expire_base: u64) -> anyhow::Result<Population> {
        let population = Population {
            clients: self.clients,
            links: self.links,
            relays: self.relays,
            pd_every: self.pd_every,
            expire_base,
        };
        population.validate(self.changes())?;
        Ok(population)
    }
}

/// The fleet of this process: part `part.0` of `part.1`.
pub(crate) fn fleet_config(
    args: &Args,
    target: SocketAddr,
    population: Population,
    part: (usize, usize),
) -> FleetConfig {
    FleetConfig {
        target,
        sources: args.sources.clone(),
        population,
        rate: args.rate,
        connections: args.connections,
        threads: args.threads.min(args.connections.div_ceil(part.1)).max(1),
        mix: Mix {
            link_pct: args.link_pct,
            relay_pct: args.relay_pct,
            stop_pct: args.stop_pct,
            stop_after: args.stop_after,
            reconnect_pct: args.reconnect_pct,
            reconnect_every: args.reconnect_every,
        },
        planned: args.changes(),
        part,
    }
}

/// The receivers: threads of this process, or fleet processes.
enum Fleet {
    Threads(Vec<JoinHandle<anyhow::Result<ThreadStats>>>),
    Parts(Parts),
}

impl Fleet {
    /// CPU seconds of the load generator: this process and its fleet processes.
    fn cpu_seconds(&self) -> Option<f64> {
        let mut total = cpu_seconds("self")?;
        if let Self::Parts(parts) = self {
            for pid in parts.pids() {
                total += cpu_seconds(&pid.to_string())?;
            }
        }
        Some(total)
    }

    fn start(&mut self, start_ns: u64) -> anyhow::Result<()> {
        match self {
            Self::Threads(_) => Ok(()),
            Self::Parts(parts) => parts.start(start_ns),
        }
    }

    fn finish(self, shared: &Shared) -> anyhow::Result<ThreadStats> {
        shared.stop.store(true, Ordering::Release);
        match self {
            Self::Threads(threads) => {
                let mut stats = ThreadStats::new();
                for t in threads {
                    let s = t
                        .join()
                        .map_err(|_| anyhow::anyhow!("a receiver thread panicked"))??;
                    stats.merge(&s);
                }
                Ok(stats)
            }
            Self::Parts(parts) => parts.finish(),
        }
    }
}

/// The lqd under test: spawned, or given by address and journal.
struct Target {
    spawned: Option<Lqd>,
    addr: SocketAddr,
    journal: PathBuf,
    pid: Option<u32>,
    metrics: Option<SocketAddr>,
}

fn target(args: &Args) -> anyhow::Result<Target> {
    if args.spawn {
        let binary = find_lqd(args.lqd.as_deref())?;
        let lqd = Lqd::start(
            &binary,
            &SpawnConfig {
                connections: args.connections,
                clients: args.clients,
                links: args.links,
                workers: args.workers,
                tick_ms: args.tick_ms,
                send_timeout_s: args.send_timeout_s,
            },
        )?;
        return Ok(Target {
            addr: lqd.addr,
            journal: lqd.journal.clone(),
            pid: Some(lqd.pid()),
            metrics: lqd.metrics,
            spawned: Some(lqd),
        });
    }
    let (Some(addr), Some(journal)) = (args.target, args.journal.clone()) else {
        bail!("give --spawn, or --target ADDR and --journal PATH of a running lqd");
    };
    Ok(Target {
        spawned: None,
        addr,
        journal,
        pid: args.pid,
        metrics: args.metrics,
    })
}

/// Run the whole benchmark.
pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    let population = args.validate()?;
    let per_process = args.connections.div_ceil(args.parts()) as u64;
    ensure_fd_limit(2 * per_process + 256)?;
    let host = host_line();
    let rtt = (args.rtt_count > 0)
        .then(|| {
            rtt::run(&rtt::Args {
                count: args.rtt_count,
                address: "127.0.0.1".into(),
            })
        })
        .transpose()?;
    let mut target = target(args)?;
    let rss_before = target.pid.and_then(rss_kib);
    let shared = Arc::new(Shared::new());
    let parts = args.parts();
    let mut fleet = if parts > 1 {
        Fleet::Parts(Parts::spawn(
            args,
            target.addr,
            population.expire_base,
            parts,
            &shared,
        )?)
    } else {
        let config = Arc::new(fleet_config(args, target.addr, population, (0, 1)));
        Fleet::Threads(start_receivers(&config, &shared)?)
    };
    let connected = wait_connected(args.connections, &shared, &target)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = target.pid.and_then(rss_kib);
    let load = run_schedule(args, &population, &shared, &target, &mut fleet)?;
    let stats = fleet.finish(&shared)?;
    let exit = match target.spawned.as_mut() {
        Some(lqd) => Some(lqd.stop()?.to_string()),
        None => None,
    };
    let pump = run_pump(args, &stats, &target)?;
    Ok(Report {
        args: format!("{args:?}"),
        connections: args.connections,
        connected,
        rate: args.rate,
        population,
        stats,
        load,
        rtt,
        pump,
        lqd: LqdFigures {
            rss_before_kib: rss_before,
            rss_idle_kib: rss_idle,
            exit,
            host,
        },
    })
}

/// Start this process's receiver threads.
pub(crate) fn start_receivers(
    config: &Arc<FleetConfig>,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<ThreadStats>>>> {
    (0..config.threads)
        .map(|t| {
            let receiver = Receiver::new(Arc::clone(config), Arc::clone(shared), t)?;
            std::thread::Builder::new()
                .name(format!("receiver-{t}"))
                .spawn(move || receiver.run(t))
                .context("starting a receiver thread")
        })
        .collect()
}

/// Wait until every connection has its REPLY (or failed); returns how many replied.
fn wait_connected(n: usize, shared: &Shared, target: &Target) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(20 + n as u64 / 50);
    loop {
        let replied = shared.replied.load(Ordering::Acquire);
        let failed = shared.connect_failed.load(Ordering::Acquire);
        if replied + failed >= n {
            ensure!(
                replied > 0,
                "no connection got its REPLY ({failed} failed to connect){}",
                lqd_log(target)
            );
            return Ok(replied);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "warning: only {replied} of {n} connections got their REPLY ({failed} failed)"
            );
            return Ok(replied);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lqd_log(target: &Target) -> String {
    target
        .spawned
        .as_ref()
        .map(|l| format!("; lqd's log:\n{}", l.log_tail()))
        .unwrap_or_default()
}

/// What happened while the schedule ran.
pub(crate) struct Load {
    /// The writer's figures.
    pub(crate) injected: Injected,
    /// Schedule start, ns after the shared origin.
    pub(crate) start_ns: u64,
    /// Last DATA with CLIENT_DATA received, ns after the origin.
    pub(crate) last_data_ns: u64,
    /// Largest VmRSS sampled under load, KiB.
    pub(crate) rss_load_kib: Option<u64>,
    /// Syscalls per delivered frame and how they were counted.
    pub(crate) syscalls: Syscalls,
    /// True when the drain ended by its time limit or by quiet, not because every
    /// connection had every final state.
    pub(crate) drain_timed_out: bool,
    /// CPU seconds lqd used from the schedule's start to the end of the drain.
    pub(crate) lqd_cpu_s: Option<f64>,
    /// CPU seconds this process used in the same time.
    pub(crate) own_cpu_s: Option<f64>,
    /// That time, seconds.
    pub(crate) wall_s: f64,
}

/// Run the schedule: writer thread, progress, RSS samples, syscall counting, drain.
fn run_schedule(
    args: &Args,
    population: &Population,
    shared: &Arc<Shared>,
    target: &Target,
    fleet: &mut Fleet,
) -> anyhow::Result<Load> {
    let count = args.changes();
    let window = Duration::from_secs_f64(count as f64 / args.rate);
    let before = target.metrics.and_then(scrape);
    let perf = match (&before, target.pid) {
        (None, Some(pid)) if perf_works() => PerfSyscalls::start(pid, window),
        _ => None,
    };
    let start_ns = shared.now_ns() + 100_000_000;
    shared.start_ns.store(start_ns, Ordering::Release);
    fleet.start(start_ns)?;
    let lqd_pid = target.pid.map(|p| p.to_string());
    let cpu = |pid: Option<&str>| pid.and_then(cpu_seconds);
    let cpu_before = (cpu(lqd_pid.as_deref()), fleet.cpu_seconds());
    let writer = {
        let (shared, journal, population, rate) = (
            Arc::clone(shared),
            target.journal.clone(),
            *population,
            args.rate,
        );
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || inject(&journal, &population, rate, count, &shared))?
    };
    let mut progress = Progress::new(args.quiet, window, count);
    let mut rss_load = None::<u64>;
    let mut frames_at_window_end = None;
    while !writer.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        rss_load = rss_load.max(target.pid.and_then(rss_kib));
        progress.show(shared);
        if frames_at_window_end.is_none() && shared.now_ns() >= start_ns + duration_ns(window) {
            frames_at_window_end = Some(shared.data_frames.load(Ordering::Acquire));
        }
    }
    let injected = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let drain_timed_out = drain(args, shared, &mut progress, target, &mut rss_load);
    progress.finish(shared);
    let cpu_after = (cpu(lqd_pid.as_deref()), fleet.cpu_seconds());
    let wall_s = shared.now_ns().saturating_sub(start_ns) as f64 / 1e9;
    let after = target.metrics.and_then(scrape);
    let frames_in_window =
        frames_at_window_end.unwrap_or_else(|| shared.data_frames.load(Ordering::Acquire));
    let syscalls = Syscalls::from_counts(before.as_ref(), after.as_ref(), perf, frames_in_window);
    Ok(Load {
        injected,
        start_ns,
        last_data_ns: shared.last_data_ns.load(Ordering::Acquire),
        rss_load_kib: rss_load,
        syscalls,
        drain_timed_out,
        lqd_cpu_s: cpu_before.0.zip(cpu_after.0).map(|(b, a)| a - b),
        own_cpu_s: cpu_before.1.zip(cpu_after.1).map(|(b, a)| a - b),
        wall_s,
    })
}

/// Wait until every connection has every final state (or is stopped or closed), no DATA
/// arrived for --drain-quiet, or --drain-max passed; true if the limit or the quiet ended
/// it (connections short of their final states count them as missing).
fn drain(
    args: &Args,
    shared: &Shared,
    progress: &mut Progress,
    target: &Target,
    rss_load: &mut Option<u64>,
) -> bool {
    let deadline = Instant::now() + args.drain_max;
    let quiet_ns = duration_ns(args.drain_quiet);
    loop {
        if shared.settled.load(Ordering::Acquire) >= args.connections {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
        *rss_load = (*rss_load).max(target.pid.and_then(rss_kib));
        progress.show(shared);
        let last = shared.last_data_ns.load(Ordering::Acquire);
        if shared.now_ns().saturating_sub(last) >= quiet_ns || Instant::now() >= deadline {
            return true;
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The pump over the same number of sockets, with lqd's batch size and frames.
fn run_pump(
    args: &Args,
    stats: &ThreadStats,
    target: &Target,
) -> anyhow::Result<Option<pump::PumpReport>> {
    if args.pump_duration.is_zero() {
        return Ok(None);
    }
    let frames = if stats.samples.is_empty() {
        vec![rtt::frame()?]
    } else {
        stats.samples.clone()
    };
    let writers = if args.workers > 0 {
        args.workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let _ = target;
    let pump_args = pump::PumpArgs {
        connections: args.connections,
        batch: usize::try_from(to_u64(stats.frames_per_read().round()))
            .unwrap_or(1)
            .max(1),
        writers,
        receivers: args.threads,
        duration: args.pump_duration,
        frames,
        sources: args.sources.clone(),
        send_buffer: 262_144,
    };
    let parts = args.parts();
    let report = if parts > 1 {
        parts::pump(&pump_args, parts)?
    } else {
        pump::run(&pump_args)?
    };
    Ok(Some(report))
}

/// Raise this process's soft descriptor limit to the hard one (prlimit(1), no `unsafe`)
/// when it is below `needed`.
pub(crate) fn ensure_fd_limit(needed: u64) -> anyhow::Result<()> {
    let limits = |text: &str| -> Option<(u64, u64)> {
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut v = line["Max open files".len()..].split_whitespace();
        let parse = |s: Option<&str>| s.map(|s| s.parse().unwrap_or(u64::MAX));
        Some((parse(v.next())?, parse(v.next())?))
    };
    let read = || {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|t| limits(&t))
    };
    let Some((soft, hard)) = read() else {
        return Ok(());
    };
    if soft < needed && hard > soft {
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &std::process::id().to_string()])
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    let soft = read().map_or(soft, |l| l.0);
    ensure!(
        soft >= needed,
        "{needed} descriptors needed, the limit is {soft} (hard {hard}): raise it (ulimit -n), \
         or split the fleet over processes (fewer --connections each)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
    }
}
