//! Fleets larger than one process holds (the descriptor limit: ~20,000 here, and the pump
//! needs both ends of each socket): the coordinator starts `lq-loadgen fleet-part` children,
//! each holding connections `part, part + parts, …` of the whole fleet (so the mixes and
//! source addresses are the same as in one process), and talks to them in lines:
//!
//! ```text
//! child  → replied R F                 connect progress (REPLYs, failed connects)
//! coord. → start UNIX_NS               the schedule's start, CLOCK_REALTIME nanoseconds
//! child  → progress D S L              DATA frames, settled connections, last DATA (UNIX_NS)
//! coord. → stop WRITTEN                changes written; finish and report
//! child  → result JSON                 its merged counts (ThreadStats::to_wire)
//! ```
//!
//! Instants cross processes as CLOCK_REALTIME nanoseconds: each process maps them onto its
//! own monotonic clock once, at start; a clock step during a run would skew latencies.
//! `pump-part` children run the pump baseline the same way, each over its share of the
//! sockets, all at once; their frames per second add up.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::fleet::{FleetConfig, Shared};
use crate::pump::{PumpArgs, PumpReport};
use crate::run::{ensure_fd_limit, fleet_config, start_receivers, Args};
use crate::stats::ThreadStats;

/// Connections one process holds by default (the pump doubles the descriptors).
pub(crate) const CONNECTIONS_PER_PROCESS: usize = 9_000;
/// Most fleet processes.
pub(crate) const PARTS_MAX: usize = 64;

/// Arguments of the hidden `lq-loadgen fleet-part`.
#[derive(clap::Args, Debug)]
pub(crate) struct PartArgs {
    /// The run's arguments (with --target).
    #[command(flatten)]
    pub(crate) run: Args,
    /// This part's index.
    #[arg(long)]
    pub(crate) part: usize,
    /// Parts in all.
    #[arg(long)]
    pub(crate) parts: usize,
    /// The population's `expire` base, as the coordinator chose it.
    #[arg(long)]
    pub(crate) expire_base: u64,
}

/// Arguments of the hidden `lq-loadgen pump-part`.
#[derive(clap::Args, Debug)]
pub(crate) struct PumpPartArgs {
    /// Sockets.
    #[arg(long)]
    pub(crate) connections: usize,
    /// Frames per write.
    #[arg(long)]
    pub(crate) batch: usize,
    /// Writer threads.
    #[arg(long)]
    pub(crate) writers: usize,
    /// Receiver threads.
    #[arg(long)]
    pub(crate) receivers: usize,
    /// Milliseconds of writing.
    #[arg(long)]
    pub(crate) duration_ms: u64,
    /// A file of framed messages (each with its size prefix).
    #[arg(long)]
    pub(crate) frames: PathBuf,
    /// Loopback source addresses.
    #[arg(long, value_delimiter = ',')]
    pub(crate) sources: Vec<std::net::Ipv4Addr>,
    /// SO_SNDBUF of the writing sockets.
    #[arg(long)]
    pub(crate) send_buffer: usize,
}

/// The run's arguments for a child, with `target`.
fn child_args(args: &Args, target: SocketAddr) -> Vec<String> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let sources: Vec<String> = args.sources.iter().map(ToString::to_string).collect();
    let mut v = vec![
        format!("--target={target}"),
        format!("--connections={}", args.connections),
        format!("--rate={}", args.rate),
        format!("--duration={}", ms(args.duration)),
        format!("--clients={}", args.clients),
        format!("--links={}", args.links),
        format!("--relays={}", args.relays),
        format!("--pd-every={}", args.pd_every),
        format!("--threads={}", args.threads),
        format!("--sources={}", sources.join(",")),
        format!("--link-pct={}", args.link_pct),
        format!("--relay-pct={}", args.relay_pct),
        format!("--stop-pct={}", args.stop_pct),
        format!("--stop-after={}", ms(args.stop_after)),
        format!("--reconnect-pct={}", args.reconnect_pct),
        format!("--reconnect-every={}", ms(args.reconnect_every)),
    ];
    if let Some(count) = args.count {
        v.push(format!("--count={count}"));
    }
    v
}

/// The coordinator's side of the fleet processes.
pub(crate) struct Parts {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    readers: Vec<JoinHandle<anyhow::Result<ThreadStats>>>,
    shared: Arc<Shared>,
}

impl Parts {
    /// Start `parts` fleet processes against `target`.
    pub(crate) fn spawn(
        args: &Args,
        target: SocketAddr,
        expire_base: u64,
        parts: usize,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<Self> {
        ensure!(
            (2..=PARTS_MAX).contains(&parts),
            "2 ..= {PARTS_MAX} processes"
        );
        let me = std::env::current_exe().context("finding lq-loadgen")?;
        let mut out = Self {
            children: Vec::with_capacity(parts),
            stdins: Vec::with_capacity(parts),
            readers: Vec::with_capacity(parts),
            shared: Arc::clone(shared),
        };
        for part in 0..parts {
            let mut child = Command::new(&me)
                .arg("fleet-part")
                .args(child_args(args, target))
                .args([format!("--part={part}"), format!("--parts={parts}")])
                .arg(format!("--expire-base={expire_base}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting a fleet process")?;
            let stdout = child.stdout.take().context("a child's stdout")?;
            out.stdins
                .push(child.stdin.take().context("a child's stdin")?);
            out.children.push(child);
            let shared = Arc::clone(shared);
            out.readers
                .push(std::thread::spawn(move || follow(stdout, &shared)));
        }
        Ok(out)
    }

    /// The processes' ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Tell every part the schedule's start (`start_ns` after the shared origin).
    pub(crate) fn start(&mut self, start_ns: u64) -> anyhow::Result<()> {
        let unix = self.shared.origin_unix_ns + start_ns;
        for stdin in &mut self.stdins {
            writeln!(stdin, "start {unix}").context("telling a fleet process to start")?;
        }
        Ok(())
    }

    /// Tell every part the changes written, collect and merge their counts.
    pub(crate) fn finish(mut self) -> anyhow::Result<ThreadStats> {
        let written = self.shared.written.load(Ordering::Acquire);
        for stdin in &mut self.stdins {
            let _ = writeln!(stdin, "stop {written}");
        }
        let mut stats = ThreadStats::new();
        for reader in self.readers {
            let part = reader
                .join()
                .map_err(|_| anyhow::anyhow!("a fleet process reader panicked"))??;
            stats.merge(&part);
        }
        for child in &mut self.children {
            let status = child.wait()?;
            ensure!(status.success(), "a fleet process exited with {status}");
        }
        Ok(stats)
    }
}

/// Read one child's lines into the shared counters until its result.
fn follow(stdout: std::process::ChildStdout, shared: &Shared) -> anyhow::Result<ThreadStats> {
    let (mut replied, mut failed, mut data, mut settled) = (0u64, 0u64, 0u64, 0u64);
    let add = |atomic: &std::sync::atomic::AtomicUsize, old: &mut u64, new: u64| {
        let delta = usize::try_from(new.saturating_sub(*old)).unwrap_or(usize::MAX);
        atomic.fetch_add(delta, Ordering::AcqRel);
        *old = new;
    };
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading a fleet process")?;
        let mut words = line.splitn(2, ' ');
        let (word, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let numbers: Vec<u64> = rest.split(' ').filter_map(|n| n.parse().ok()).collect();
        match (word, numbers.as_slice()) {
            ("replied", [r, f]) => {
                add(&shared.replied, &mut replied, *r);
                add(&shared.connect_failed, &mut failed, *f);
            }
            ("progress", [d, s, last]) => {
                shared
                    .data_frames
                    .fetch_add(d.saturating_sub(data), Ordering::AcqRel);
                data = *d;
                add(&shared.settled, &mut settled, *s);
                if *last > 0 {
                    let ns = last.saturating_sub(shared.origin_unix_ns);
                    shared.last_data_ns.fetch_max(ns, Ordering::AcqRel);
                }
            }
            ("result", _) => {
                let value: serde_json::Value = serde_json::from_str(rest)?;
                return ThreadStats::from_wire(&value).context("a fleet process's result");
            }
            _ => bail!("unexpected line from a fleet process: {line:?}"),
        }
    }
    bail!("a fleet process ended without a result")
}

/// The child: hold part `part` of the fleet and follow the coordinator's lines.
pub(crate) fn run_part(p: &PartArgs) -> anyhow::Result<()> {
    let args = &p.run;
    let target = args.target.context("fleet-part needs --target")?;
    let population = args.population(p.expire_base)?;
    let mine = (p.part..args.connections).step_by(p.parts).count();
    ensure_fd_limit(mine as u64 + 256)?;
    let shared = Arc::new(Shared::new());
    let config: Arc<FleetConfig> =
        Arc::new(fleet_config(args, target, population, (p.part, p.parts)));
    let receivers = start_receivers(&config, &shared)?;
    let commands = stdin_lines();
    let deadline = Instant::now() + Duration::from_secs(20 + mine as u64 / 50);
    loop {
        let (r, f) = (
            shared.replied.load(Ordering::Acquire),
            shared.connect_failed.load(Ordering::Acquire),
        );
        println!("replied {r} {f}");
        if r + f >= mine || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let start: u64 = command(&commands, "start")?;
    shared.start_ns.store(
        start.saturating_sub(shared.origin_unix_ns),
        Ordering::Release,
    );
    let written = loop {
        match commands.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => break parse_command(&line, "stop")?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the coordinator went away"),
        }
        let last = shared.last_data_ns.load(Ordering::Acquire);
        println!(
            "progress {} {} {}",
            shared.data_frames.load(Ordering::Acquire),
            shared.settled.load(Ordering::Acquire),
            if last == 0 {
                0
            } else {
                shared.origin_unix_ns + last
            }
        );
    };
    shared.written.store(written, Ordering::Release);
    shared.stop.store(true, Ordering::Release);
    let mut stats = ThreadStats::new();
    for r in receivers {
        stats.merge(
            &r.join()
                .map_err(|_| anyhow::anyhow!("a receiver panicked"))??,
        );
    }
    println!("result {}", stats.to_wire());
    Ok(())
}

fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn command(commands: &mpsc::Receiver<String>, word: &str) -> anyhow::Result<u64> {
    let line = commands.recv().context("the coordinator went away")?;
    parse_command(&line, word)
}

fn parse_command(line: &str, word: &str) -> anyhow::Result<u64> {
    match line.split_once(' ') {
        Some((w, n)) if w == word => Ok(n.trim().parse()?),
        _ => bail!("expected {word:?} from the coordinator, got {line:?}"),
    }
}

/// The pump over `parts` processes at once; their figures add up.
pub(crate) fn pump(args: &PumpArgs, parts: usize) -> anyhow::Result<PumpReport> {
    let dir = tempfile::tempdir()?;
    let frames = dir.path().join("frames");
    std::fs::write(&frames, args.frames.concat())?;
    let me = std::env::current_exe()?;
    let sources: Vec<String> = args.sources.iter().map(ToString::to_string).collect();
    let children: Vec<Child> = (0..parts)
        .map(|part| {
            let connections = (part..args.connections).step_by(parts).count();
            Command::new(&me)
                .arg("pump-part")
                .arg(format!("--connections={connections}"))
                .arg(format!("--batch={}", args.batch))
                .arg(format!("--writers={}", args.writers.div_ceil(parts)))
                .arg(format!("--receivers={}", args.receivers.div_ceil(parts)))
                .arg(format!("--duration-ms={}", args.duration.as_millis()))
                .arg("--frames")
                .arg(&frames)
                .arg(format!("--sources={}", sources.join(",")))
                .arg(format!("--send-buffer={}", args.send_buffer))
                .stdout(Stdio::piped())
                .spawn()
                .context("starting a pump process")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut total = PumpReport {
        frames: 0,
        bytes: 0,
        writes: 0,
        seconds: 0.0,
        batch: args.batch,
    };
    let mut rate = 0.0;
    for child in children {
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "a pump process exited with {}",
            out.status
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let get = |k: &str| v[k].as_u64().context("a pump figure");
        total.frames += get("frames")?;
        total.bytes += get("bytes")?;
        total.writes += get("writes")?;
        total.seconds = total.seconds.max(v["seconds"].as_f64().context("seconds")?);
        rate += v["frames_per_s"].as_f64().context("a pump rate")?;
    }
    // Report the summed rate: seconds such that frames / seconds = Σ per-process rates.
    total.seconds = total.frames as f64 / rate.max(1e-9);
    Ok(total)
}

/// The child: one share of the pump; prints its report as JSON.
pub(crate) fn run_pump_part(p: &PumpPartArgs) -> anyhow::Result<()> {
    ensure_fd_limit(2 * p.connections as u64 + 64)?;
    let bytes = std::fs::read(&p.frames).context("reading the frames")?;
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let len = 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        ensure!(
            rest.len() >= len,
            "a truncated frame in {}",
            p.frames.display()
        );
        frames.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    let report = crate::pump::run(&PumpArgs {
        connections: p.connections,
        batch: p.batch,
        writers: p.writers,
        receivers: p.receivers,
        duration: Duration::from_millis(p.duration_ms),
        frames,
        sources: p.sources.clone(),
        send_buffer: p.send_buffer,
    })?;
    println!("{}", report.to_json());
    Ok(())
}
