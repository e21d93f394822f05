//! Harness of the requestor tests: an `lqd` that can be SIGKILLed and restarted on the same
//! data directory, port and Kea journal ([`Station`]), and the `lq` binary run to completion
//! ([`lq`]) or in the background with its standard output read line by line ([`LqProc`]).
//! Every wait is bounded.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::net::TcpStream;

use lqd::wire::build::QueryOut;
use lqd::wire::{FrameDecoder, Message, MessageType, Opt, OptionCode};

pub use super::server_common::reserve_port;
use super::server_common::{append_rows, bulk, spawn, Row, Spawned, HEADER};

/// Lease key (`2001:db8::1`, `2001:db8:100::/56`) → client DUID (hex).
pub type State = BTreeMap<String, String>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An lqd with a fixed directory, port and journal, which survives its process.
pub struct Station {
    /// The port (127.0.0.1).
    pub port: u16,
    /// The Kea journal.
    pub journal: PathBuf,
    /// Where the configuration, data and journal live.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    lines: Option<mpsc::Receiver<String>>,
    _port: socket2::Socket,
    extra: String,
}

impl Station {
    /// A station whose journal holds `rows`; `extra` adds `[server]` keys (TOML lines).
    /// Keepalives every second (`active_idle_timeout_s = 1`) so requestors can use short
    /// receive timeouts.
    pub fn new(rows: &[Row], extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = dir.path().join("kea-leases6.csv");
        let body: String = rows.iter().map(Row::line).collect();
        std::fs::write(&journal, format!("{HEADER}\n{body}")).expect("journal");
        let (reservation, port) = reserve_port();
        let mut station = Self {
            port,
            journal,
            dir,
            child: None,
            lines: None,
            _port: reservation,
            extra: extra.to_owned(),
        };
        station.start();
        station
    }

    fn config(&self) -> String {
        format!(
            "[metrics]\nlisten = \"\"\n\
             [store]\ndata_dir = \"{data}\"\nshards = 2\nsegment_bytes = 1048576\n\
             segments_max = 16\nclients_max = 10000\naddresses_max = 10000\n\
             prefixes_max = 1000\n\
             [ingest]\nlease_file = \"{journal}\"\nkea_config = \"\"\nidle_wait_ms = 20\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\ntick_ms = 2\nworkers = 2\n\
             connections_max = 20\nactive_enabled = true\ninsecure_allowed = true\n\
             server_duid = \"00030001001122334455\"\nactive_idle_timeout_s = 1\n{extra}\
             [[links]]\nsubnet_id = 1\nprefix = \"2001:db8:1::/64\"\n\
             [[links]]\nsubnet_id = 2\nprefix = \"2001:db8:2::/64\"\n",
            data = self.dir.path().join("data").display(),
            journal = self.journal.display(),
            port = self.port,
            extra = self.extra,
        )
    }

    /// Start lqd (again) on the same directory; returns once it serves.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let config = self.dir.path().join("lqd.toml");
        std::fs::write(&config, self.config()).expect("config");
        for _ in 0..3 {
            let Spawned { child, lines, .. } = spawn(&config, &[]);
            self.child = Some(child);
            self.lines = Some(lines);
            // A fresh data directory loads the journal; an existing one resumes it.
            if self.wait_for(&["serving leasequery"])
                && self.wait_for(&["loaded Kea lease snapshot", "resumed Kea lease file"])
            {
                return;
            }
            self.kill();
        }
        panic!("lqd did not start three times in a row");
    }

    fn wait_for(&self, texts: &[&str]) -> bool {
        let Some(lines) = &self.lines else {
            return false;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if texts.iter().any(|t| line.contains(t)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// SIGKILL lqd and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.lines = None;
    }

    /// SIGTERM lqd (QueryTerminated to every Active requestor, S-59) and reap it (≤ 10 s).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().expect("wait").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.lines = None;
    }

    /// Remove lqd's data directory (history lost: the next start has a new horizon).
    pub fn wipe_data(&self) {
        assert!(self.child.is_none(), "stop lqd first");
        let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
    }

    /// Append rows to the journal in one write, as Kea does (kea.md §7).
    pub fn append(&self, rows: &[Row]) {
        append_rows(&self.journal, rows);
    }

    /// `127.0.0.1:port`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a finished `lq` run gave.
#[derive(Debug)]
pub struct LqRun {
    /// Exit status success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl LqRun {
    /// Standard output as JSON values, one per line.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// Run `lq args…` to completion; killed after `limit`.
pub fn lq(args: &[&str], limit: Duration) -> LqRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lq"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lq starts");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "lq {args:?} ran past {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    LqRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A background `lq` (follow or mirror) whose standard output lines arrive on a channel.
pub struct LqProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Standard error lines, kept for failure messages.
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LqProc {
    /// Start `lq args…`.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lq"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lq starts");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&errors);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().expect("errors").push(line);
            }
        });
        Self {
            child,
            lines,
            errors,
        }
    }

    /// The next JSON line within `timeout`, or `None`.
    pub fn next(&self, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
    }

    /// Read lines until one satisfies `want` (returned) or `timeout` passes (panics),
    /// collecting the others into `seen`.
    pub fn until(
        &self,
        timeout: Duration,
        seen: &mut Vec<serde_json::Value>,
        mut want: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| {
                    panic!(
                        "no wanted line within {timeout:?}; saw {seen:#?}; stderr {:?}",
                        self.stderr()
                    )
                });
            if let Some(v) = self.next(left) {
                if want(&v) {
                    return v;
                }
                seen.push(v);
            }
        }
    }

    /// Standard error so far.
    pub fn stderr(&self) -> Vec<String> {
        self.errors.lock().expect("errors").clone()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True when it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for LqProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The database path of a mirror test.
pub fn db_path(dir: &Path) -> String {
    dir.join("mirror.sqlite").display().to_string()
}

/// lqd's bindings, by a Bulk query for all of them (D-3), read with the codec alone (not
/// with the requestor under test); `None` when the connection fails (lqd restarting).
pub fn lqd_state(port: u16) -> Option<State> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(&bulk(0x51, QueryOut::LinkAddress, "::", &[], &[]))
        .ok()?;
    let mut decoder = FrameDecoder::new(u16::MAX);
    let mut state = State::new();
    loop {
        let frame = match decoder.next_frame().ok()? {
            Some(frame) => frame.to_vec(),
            None => {
                let n = stream.read(decoder.spare()).ok()?;
                if n == 0 {
                    return None;
                }
                decoder.commit(n);
                continue;
            }
        };
        let message = Message::parse(&frame).ok()?;
        let data = match message.options.find(OptionCode::ClientData) {
            Some(Opt::ClientData(inner)) => Some(inner),
            _ => None,
        };
        if let Some(inner) = data {
            add_client_data(&mut state, inner);
        }
        match message.msg_type {
            MessageType::LeasequeryReply if data.is_none() => return Some(state),
            MessageType::LeasequeryDone => return Some(state),
            _ => {}
        }
    }
}

fn add_client_data(state: &mut State, inner: lqd::wire::OptionList<'_>) {
    let mut owner = String::new();
    let mut keys = Vec::new();
    for opt in inner.iter() {
        match opt {
            Opt::ClientId(d) => owner = hex(d.bytes()),
            Opt::IaAddr(a) => {
                assert!(
                    a.valid > 0,
                    "a Bulk answer without a window lists live leases (D-4)"
                );
                keys.push(a.address.to_string());
            }
            Opt::IaPrefix(p) => keys.push(format!("{}/{}", p.prefix, p.prefix_len)),
            _ => {}
        }
    }
    for key in keys {
        // A client that changes while the answer streams may come twice (the answer is
        // not a snapshot); a lease never has two owners.
        if let Some(previous) = state.insert(key.clone(), owner.clone()) {
            assert_eq!(previous, owner, "{key} has two owners");
        }
    }
}

/// Wait (≤ 20 s) until lqd reports leases of exactly `clients` clients; a new connection
/// per attempt (lqd closes one after `queries_per_connection` queries).
pub fn wait_clients(port: u16, clients: usize) -> State {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(state) = lqd_state(port) {
            let owners: std::collections::BTreeSet<&String> = state.values().collect();
            if owners.len() == clients {
                return state;
            }
        }
        assert!(Instant::now() < deadline, "lqd never had {clients} clients");
        std::thread::sleep(Duration::from_millis(50));
    }
}
