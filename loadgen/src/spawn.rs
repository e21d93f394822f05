//! `--spawn`: lqd started by the load generator with a temporary data directory, an empty
//! Kea journal and an embedded configuration (every key is one of src/config.rs; limits sized
//! from the run), so one command benchmarks a fresh machine.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::population::{link_prefix, HEADER};

/// Lines of lqd's log kept for error messages.
const LOG_LINES_MAX: usize = 200;
/// Longest wait for lqd to serve.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the embedded configuration is sized for.
#[derive(Clone, Debug)]
pub(crate) struct SpawnConfig {
    /// Requestor connections (connections_max gets headroom above it).
    pub(crate) connections: usize,
    /// Clients in the population.
    pub(crate) clients: u32,
    /// Links (Kea subnets 1 ..= links).
    pub(crate) links: u32,
    /// `[store] shards` and `[server] workers`; 0 = lqd's default (one per CPU).
    pub(crate) workers: usize,
    /// `[server] tick_ms`, when given.
    pub(crate) tick_ms: Option<u64>,
    /// `[server] active_send_timeout_s`.
    pub(crate) send_timeout_s: u64,
}

/// lqd's executable: `--lqd`, else beside this executable (target/<profile>/lqd).
pub(crate) fn find_lqd(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        ensure!(path.is_file(), "--lqd {}: no such file", path.display());
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().context("finding this executable")?;
    let dir = me.parent().context("this executable has no directory")?;
    // Test executables live one level deeper, in target/<profile>/deps.
    for candidate in [dir.join("lqd"), dir.join("..").join("lqd")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no lqd beside {}: build it (cargo build --release --workspace) or pass --lqd PATH",
        me.display()
    )
}

/// A free loopback port (the kernel's pick; released before lqd binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn config_text(dir: &Path, port: u16, metrics_port: Option<u16>, c: &SpawnConfig) -> String {
    let capacity = (2 * c.clients as usize).max(4096);
    let connections_max = c.connections + c.connections / 5 + 64;
    let mut text = format!(
        "# Written by lq-loadgen --spawn.\n[store]\ndata_dir = \"{data}\"\nshards = {workers}\n\
         segment_bytes = 33554432\nsegments_max = 32\nclients_max = {capacity}\n\
         addresses_max = {capacity}\nprefixes_max = {capacity}\nlinks_max = {links}\n\
         [ingest]\nlease_file = \"{journal}\"\nkea_config = \"\"\n\
         [server]\nlisten = \"127.0.0.1:{port}\"\nworkers = {workers}\n\
         connections_max = {connections_max}\nactive_enabled = true\ninsecure_allowed = true\n\
         server_duid = \"00030001001122334455\"\nactive_send_timeout_s = {send_timeout}\n",
        data = dir.join("data").display(),
        journal = dir.join("kea-leases6.csv").display(),
        workers = c.workers,
        links = (2 * c.links).max(64),
        send_timeout = c.send_timeout_s,
    );
    if let Some(tick) = c.tick_ms {
        let _ = writeln!(text, "tick_ms = {tick}");
    }
    for link in 0..c.links {
        let _ = write!(
            text,
            "[[links]]\nsubnet_id = {}\nprefix = \"{}/64\"\n",
            link + 1,
            link_prefix(link)
        );
    }
    if let Some(port) = metrics_port {
        let _ = write!(text, "[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    }
    text
}

/// A running lqd with its temporary directory; stopped (SIGTERM, then SIGKILL) on drop.
pub(crate) struct Lqd {
    child: Child,
    /// Its log, the last [`LOG_LINES_MAX`] lines.
    log: Arc<Mutex<VecDeque<String>>>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its `/metrics` endpoint, when this lqd accepts a `[metrics]` section.
    pub(crate) metrics: Option<SocketAddr>,
    /// The Kea journal it tails.
    pub(crate) journal: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lqd {
    /// Start `binary` on a fresh directory and wait until it serves.
    pub(crate) fn start(binary: &Path, spawn: &SpawnConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lq-loadgen-")
            .tempdir()
            .context("creating a temporary directory")?;
        let journal = dir.path().join("kea-leases6.csv");
        std::fs::write(&journal, format!("{HEADER}\n")).context("writing the journal")?;
        let config = dir.path().join("lqd.toml");
        let port = free_port()?;
        let metrics_port = free_port()?;
        // A build without metrics refuses the unknown [metrics] section: check, and drop it.
        std::fs::write(
            &config,
            config_text(dir.path(), port, Some(metrics_port), spawn),
        )?;
        let metrics = if check_config(binary, &config)? {
            Some(SocketAddr::from(([127, 0, 0, 1], metrics_port)))
        } else {
            std::fs::write(&config, config_text(dir.path(), port, None, spawn))?;
            ensure!(
                check_config(binary, &config)?,
                "lqd refuses the embedded configuration:\n{}",
                std::fs::read_to_string(&config)?
            );
            None
        };
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("lqd's stderr")?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES_MAX)));
        let (tx, lines) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                if log.len() == LOG_LINES_MAX {
                    log.pop_front();
                }
                log.push_back(line.clone());
                let _ = tx.send(line);
            }
        });
        let lqd = Self {
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            metrics,
            journal,
            _dir: dir,
        };
        lqd.wait_ready(&lines)?;
        Ok(lqd)
    }

    fn wait_ready(&self, lines: &mpsc::Receiver<String>) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut serving, mut loaded) = (false, false);
        while !(serving && loaded) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    serving |= line.contains("serving leasequery");
                    loaded |= line.contains("loaded Kea lease snapshot");
                }
                Err(_) => bail!(
                    "lqd did not start within {START_TIMEOUT:?}; its log:\n{}",
                    self.log_tail()
                ),
            }
        }
        Ok(())
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines it logged.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log lock");
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then wait up to 10 s (SIGKILL after that).
    pub(crate) fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Lqd {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// `lqd --check-config`: true when it accepts the file.
fn check_config(binary: &Path, config: &Path) -> anyhow::Result<bool> {
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --check-config", binary.display()))?;
    Ok(out.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_link_and_sizes_connections() {
        let c = SpawnConfig {
            connections: 1000,
            clients: 20_000,
            links: 3,
            workers: 0,
            tick_ms: Some(2),
            send_timeout_s: 120,
        };
        let text = config_text(Path::new("/tmp/x"), 5470, None, &c);
        assert!(text.contains("connections_max = 1264"), "{text}");
        assert!(text.contains("prefix = \"2001:db8:3::/64\""), "{text}");
        assert!(text.contains("tick_ms = 2"), "{text}");
        assert!(!text.contains("[metrics]"), "{text}");
        let with_metrics = config_text(Path::new("/tmp/x"), 5470, Some(9547), &c);
        assert!(with_metrics.ends_with("[metrics]\nlisten = \"127.0.0.1:9547\"\n"));
    }
}
