//! `lqd`, the leasequery daemon.
//!
//! It follows Kea's lease6 journal into the sharded change log (surviving restarts at its
//! checkpoint, ageing leases on its own clock) and serves Bulk and Active Leasequery over
//! TCP from io_uring network workers. SIGTERM/SIGINT end every Active query with
//! LEASEQUERY-DONE QueryTerminated (S-59), then lqd exits.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;

use anyhow::{bail, Context};
use clap::Parser;
use lqd::config::{Config, Limits};
use lqd::ingest::pipeline::{self, Owned, Recovered};
use lqd::ingest::tailer::Position;
use lqd::metrics::Registry;
use lqd::net::worker::Shared;
use lqd::net::Doorbells;
use lqd::store::Shard;

#[derive(Parser)]
#[command(
    name = "lqd",
    version,
    about = "DHCPv6 Active (RFC 7653) and Bulk (RFC 5460) Leasequery"
)]
struct Cli {
    /// Configuration file (TOML); see tuning/lqd.example.toml.
    #[arg(short, long, default_value = "/etc/lqd/lqd.toml")]
    config: PathBuf,
    /// Validate the configuration, print the effective limits and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LQD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(&Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lqd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    let cpus = thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let limits = config.validate(cpus)?;
    for line in limits.to_string().lines() {
        tracing::info!("limit: {line}");
    }
    let links = limits.links()?;
    if cli.check_config {
        println!("{limits}\nlinks known: {}", links.len());
        return Ok(());
    }
    for warning in &limits.warnings {
        tracing::warn!("{warning}");
    }
    check_layout(&config.store.data_dir, &limits)?;
    lqd::net::probe()?;
    if limits.policy.active_enabled && !limits.policy.insecure_allowed {
        tracing::warn!(
            "active_enabled without insecure_allowed: this build has no TLS, so Active \
             queries are refused (S-4)"
        );
    }
    serve(&limits, links)
}

/// The data directory was made for this shard count and segment size, or is new.
fn check_layout(dir: &Path, limits: &Limits) -> anyhow::Result<()> {
    let meta = dir.join("lqd.meta");
    let want = format!(
        "shards {}\nsegment_bytes {}\n",
        limits.shards, limits.shard[0].log.segment_bytes
    );
    match std::fs::read_to_string(&meta) {
        Ok(have) if have == want => Ok(()),
        Ok(have) => bail!(
            "{} was made with\n{have}but the configuration gives\n{want}shards and segment size \
             cannot change while the data directory holds data (move it away to start afresh)",
            meta.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(&meta, want).with_context(|| format!("writing {}", meta.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", meta.display())),
    }
}

/// Pin the calling thread to CPU `index` modulo the CPUs present; logs the shard/worker ↔
/// CPU mapping (style.md 1.6: shard id ≠ CPU id).
fn pin_to_cpu(pin: bool, index: usize) {
    if !pin {
        return;
    }
    let Some(cores) = core_affinity::get_core_ids().filter(|c| !c.is_empty()) else {
        tracing::warn!("cannot read the CPU list: threads are not pinned");
        return;
    };
    let core = cores[index % cores.len()];
    let name = thread::current().name().unwrap_or("lqd").to_owned();
    if core_affinity::set_for_current(core) {
        tracing::info!(thread = %name, cpu = core.id, "pinned");
    } else {
        tracing::warn!(thread = %name, cpu = core.id, "pinning failed");
    }
}

/// Start the network workers, each with its own listening socket (SO_REUSEPORT) and the
/// shards it owns (worker i owns shards i, i + workers, …; architecture.md, "Threads").
fn spawn_workers(
    limits: &Limits,
    shards: &mut Shards,
    links: &lqd::ingest::links::Links,
    shared: &Arc<Shared>,
    stop: &Arc<AtomicBool>,
    (doorbells, registry): (&Arc<Doorbells>, &Arc<Registry>),
) -> anyhow::Result<Vec<thread::JoinHandle<std::io::Result<Vec<Shard>>>>> {
    let mut owned: Vec<Vec<(usize, Owned)>> = (0..limits.workers).map(|_| Vec::new()).collect();
    for (i, mut shard) in shards.owned.drain(..).enumerate() {
        shard.stamp_into(Arc::clone(registry), i);
        owned[i % limits.workers].push((i, shard));
    }
    let mut mail = mailboxes(limits);
    let mut workers = Vec::with_capacity(limits.workers);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for (i, owned) in owned.into_iter().enumerate() {
        let mail = mail.remove(0);
        let ready = Some(ready_tx.clone());
        let listener = lqd::net::worker::listener(limits.net.listen, 1024)
            .with_context(|| format!("listening on {}", limits.net.listen))?;
        let (policy, net, readers, links) = (
            limits.policy.clone(),
            limits.net.clone(),
            shards.readers.clone(),
            links.clone(),
        );
        let (shared, stop) = (Arc::clone(shared), Arc::clone(stop));
        let (doorbells, registry) = (Arc::clone(doorbells), Arc::clone(registry));
        let pin = limits.pin_cpus;
        let worker = thread::Builder::new()
            .name(format!("lqd-worker-{i}"))
            .spawn(move || {
                pin_to_cpu(pin, i);
                // The signal flag drives this worker's shutdown (S-59).
                let watcher = {
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || {
                        while !stop.load(std::sync::atomic::Ordering::Acquire) {
                            thread::sleep(std::time::Duration::from_millis(20));
                        }
                        shared
                            .stop
                            .store(true, std::sync::atomic::Ordering::Release);
                    })
                };
                let parts = lqd::net::worker::Parts {
                    listener,
                    doorbells: &doorbells,
                    owned,
                    mail,
                    registry,
                    index: i,
                    ready,
                };
                let result = lqd::net::worker::run(parts, &policy, &readers, &links, &net, &shared);
                let _ = watcher.join();
                result
            })?;
        workers.push(worker);
    }
    drop(ready_tx);
    await_ready(&ready_rx, &mut workers)?;
    Ok(workers)
}

/// Wait until every worker has its ring and slots, so that "serving leasequery" is true when
/// logged; a worker that failed to start is reported with its error.
fn await_ready(
    ready: &std::sync::mpsc::Receiver<()>,
    workers: &mut Vec<thread::JoinHandle<std::io::Result<Vec<Shard>>>>,
) -> anyhow::Result<()> {
    let mut started = 0;
    while started < workers.len() {
        match ready.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(()) => started += 1,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(i) = workers.iter().position(thread::JoinHandle::is_finished) {
                    let failed = workers.remove(i).join();
                    let error = match failed {
                        Ok(Err(e)) => anyhow::Error::new(e),
                        Ok(Ok(_)) => anyhow::anyhow!("stopped before it started"),
                        Err(_) => anyhow::anyhow!("panicked"),
                    };
                    return Err(error.context(format!("network worker {i} did not start")));
                }
            }
        }
    }
    Ok(())
}

/// Every worker's mailboxes for index lookups (src/server/lookup.rs). An inbox holds what
/// can be outstanding towards it: an answer for each shard per slot of
/// its own, a question for each shard it owns per slot of every worker.
fn mailboxes(limits: &Limits) -> Vec<lqd::net::worker::Mail> {
    let slots = limits.net.slots * limits.workers;
    let capacity = slots * limits.shards as usize + 1024;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..limits.workers)
        .map(|_| crossbeam_channel::bounded(capacity))
        .unzip();
    receivers
        .into_iter()
        .map(|inbox| lqd::net::worker::Mail {
            inbox,
            outboxes: senders.clone(),
        })
        .collect()
}

/// The shards, opened and recovered, with the queues the ingest thread feeds them through.
struct Shards {
    recovered: Recovered,
    readers: Vec<lqd::store::LogReader>,
    queues: Vec<crossbeam_channel::Sender<lqd::ingest::ShardMsg>>,
    owned: Vec<Owned>,
}

fn open_shards(limits: &Limits, now: u32) -> anyhow::Result<Shards> {
    let mut shards = Shards {
        recovered: Recovered::default(),
        readers: Vec::new(),
        queues: Vec::new(),
        owned: Vec::new(),
    };
    let mut checkpoints = Vec::new();
    for (i, config) in limits.shard.iter().enumerate() {
        let (shard, checkpoint, found) = Shard::open(config.clone(), now)
            .with_context(|| format!("opening shard {i} in {}", config.log.dir.display()))?;
        let (records, corrupt, clients) = (found.records, found.corrupt, shard.table().len());
        tracing::info!(shard = i, records, corrupt, clients, "shard recovered");
        checkpoints.push(checkpoint);
        shards.recovered.owners.push(shard.live_leases(now));
        shards.readers.push(shard.reader());
        let (tx, rx) = crossbeam_channel::bounded(limits.queue_capacity);
        shards.queues.push(tx);
        shards.owned.push(Owned::new(shard, rx));
    }
    // Resume where every shard has its records: the lowest checkpoint (rows after it are
    // re-applied; a shard that has them already finds them unchanged).
    if checkpoints.iter().all(Option::is_some) {
        shards.recovered.checkpoint = checkpoints
            .into_iter()
            .flatten()
            .min_by_key(|c| c.id)
            .and_then(|c| Position::from_bytes(&c.bytes).map(|p| (c.id, p)));
    }
    Ok(shards)
}

fn serve(limits: &Limits, links: lqd::ingest::links::Links) -> anyhow::Result<()> {
    let doorbells = Arc::new(Doorbells::new(limits.workers)?);
    let mut shards = open_shards(limits, pipeline::server_now())?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        cap: limits.connections_max,
        ..Shared::default()
    });
    let net_stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&net_stop))?;
    }
    let registry = Arc::new(Registry::new(limits.workers, shards.readers.clone()));
    let metrics = match limits.metrics_listen {
        Some(addr) => {
            let stop = Arc::clone(&net_stop);
            let server = lqd::metrics::http::spawn(addr, Arc::clone(&registry), stop)
                .with_context(|| format!("serving metrics on {addr}"))?;
            tracing::info!(%addr, "serving GET /metrics");
            Some(server)
        }
        None => None,
    };
    let workers = spawn_workers(
        limits,
        &mut shards,
        &links,
        &shared,
        &net_stop,
        (&doorbells, &registry),
    )?;
    tracing::info!(listen = %limits.net.listen, workers = workers.len(), "serving leasequery");
    let wake = Arc::clone(&doorbells);
    let hooks = pipeline::Hooks {
        notify: Some(Box::new(move || wake.ring())),
        registry: Some(Arc::clone(&registry)),
    };
    let stats = pipeline::run_with(
        &limits.ingest,
        links,
        shards.queues,
        shards.recovered,
        &stop,
        hooks,
    )?;
    tracing::info!(
        rows = stats.rows,
        rejected = stats.rejected_total(),
        "ingest stopped"
    );
    for worker in workers {
        let owned = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a network worker panicked"))??;
        for shard in owned {
            shard.flush_async()?;
        }
    }
    if let Some(metrics) = metrics {
        let _ = metrics.join();
    }
    Ok(())
}
