//! Helpers shared by the tests that run the real `lqd` binary against peers: a temporary
//! Kea journal, lqd started on it with a test configuration, and a plain requestor built
//! on lqd's own codec (`lqd::wire::build`, `FrameDecoder`).
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage};
use lqd::wire::{FrameDecoder, Message, MessageType, Opt, OptionCode, StatusCode, Xid};

#[path = "../server_common/mod.rs"]
mod server_common;

#[allow(unused_imports)] // Not every test that includes this module needs each.
pub use server_common::{free_port, HEADER, REQUESTOR};

/// lqd's SERVERID in every test configuration (DUID-LL 00:11:22:33:44:55).
pub const SERVER_DUID_HEX: &str = "00030001001122334455";

/// An `expire` in 2036 (Unix seconds): live whatever the test machine's clock says.
pub const EXPIRE: u64 = 2_100_000_000;

/// One lease6 row (NA when `prefix_len` is 128, else PD), Kea 2.2 layout.
#[derive(Clone, Debug)]
pub struct Row {
    /// Address or prefix.
    pub address: String,
    /// DUID as Kea writes it: colon-separated hex.
    pub duid: String,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// Expiry, Unix seconds.
    pub expire: u64,
    /// Kea subnet id.
    pub subnet_id: u32,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
    /// 128 for an address (lease_type 0), less for a delegated prefix (lease_type 2).
    pub prefix_len: u8,
    /// `user_context` as it stands in the file (commas escaped as `&#x2c`), or empty.
    pub user_context: String,
}

impl Row {
    /// An address lease of 4000 s valid, 3000 s preferred, expiring at [`EXPIRE`].
    pub fn address(address: &str, duid: &str, subnet_id: u32) -> Self {
        Self {
            address: address.to_owned(),
            duid: duid.to_owned(),
            valid: 4000,
            expire: EXPIRE,
            subnet_id,
            preferred: 3000,
            prefix_len: 128,
            user_context: String::new(),
        }
    }

    /// A delegated prefix `prefix/len` of 4000 s valid, 3000 s preferred.
    pub fn prefix(prefix: &str, len: u8, duid: &str, subnet_id: u32) -> Self {
        Self {
            prefix_len: len,
            ..Self::address(prefix, duid, subnet_id)
        }
    }

    /// The row as one journal line, newline included.
    pub fn line(&self) -> String {
        let lease_type = if self.prefix_len == 128 { 0 } else { 2 };
        format!(
            "{},{},{},{},{},{},{lease_type},1,{},0,0,,,0,{},1,0\n",
            self.address,
            self.duid,
            self.valid,
            self.expire,
            self.subnet_id,
            self.preferred,
            self.prefix_len,
            self.user_context
        )
    }
}

/// A Kea 2.2 `user_context` for one relay (`ISC.relays`, kea.md §6) with `options` as
/// uppercase hex, escaped as Kea writes it into the CSV.
pub fn relay_context(link: &str, peer: &str, options_hex: &str) -> String {
    format!(
        "{{ \"ISC\": {{ \"relays\": [ {{ \"hop\": 0&#x2c \"link\": \"{link}\"&#x2c \
         \"options\": \"0x{options_hex}\"&#x2c \"peer\": \"{peer}\" }} ] }} }}"
    )
}

/// Kea's journal in a temporary directory: created with the header, appended to by tests.
pub struct Journal {
    /// The file.
    pub path: PathBuf,
}

impl Journal {
    /// A journal holding the header and `rows`.
    pub fn create(dir: &Path, rows: &[Row]) -> Self {
        let path = dir.join("kea-leases6.csv");
        let mut text = format!("{HEADER}\n");
        text.extend(rows.iter().map(Row::line));
        std::fs::write(&path, text).expect("write the journal");
        Self { path }
    }

    /// Append `text` (whole lines) in one write, as Kea appends.
    pub fn append(&self, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .expect("open the journal");
        file.write_all(text.as_bytes())
            .expect("append to the journal");
    }
}

/// What differs between the tests' lqd configurations.
#[derive(Clone, Debug)]
pub struct Setup {
    /// `[server] listen`.
    pub listen: String,
    /// Further `[server]` lines (workers, connections_max, timers …).
    pub server: String,
    /// `[store] clients_max`, `addresses_max` and `prefixes_max`.
    pub capacity: usize,
    /// `[store] segment_bytes` (segments_max is 16).
    pub segment_bytes: usize,
    /// `[[links]]`: (subnet id, prefix).
    pub links: Vec<(u32, String)>,
    /// `[metrics] listen`; empty = off.
    pub metrics: String,
}

impl Setup {
    /// lqd on `listen` with two workers, Active enabled over plain TCP, link 1 =
    /// 2001:db8:1::/64.
    pub fn new(listen: &str) -> Self {
        Self {
            listen: listen.to_owned(),
            server: "workers = 2\nconnections_max = 20\n".to_owned(),
            capacity: 1000,
            segment_bytes: 1 << 20,
            links: vec![(1, "2001:db8:1::/64".to_owned())],
            metrics: String::new(),
        }
    }

    fn toml(&self, dir: &Path, journal: &Path) -> String {
        let mut links = String::new();
        for (id, prefix) in &self.links {
            links += &format!("[[links]]\nsubnet_id = {id}\nprefix = \"{prefix}\"\n");
        }
        format!(
            "[metrics]\nlisten = \"{metrics}\"\n\
             [store]\ndata_dir = \"{data}\"\nshards = 2\nsegment_bytes = {segment}\n\
             segments_max = 16\nclients_max = {cap}\naddresses_max = {cap}\n\
             prefixes_max = {cap}\n\
             [ingest]\nlease_file = \"{journal}\"\nkea_config = \"\"\nidle_wait_ms = 20\n\
             [server]\nlisten = \"{listen}\"\nactive_enabled = true\ninsecure_allowed = true\n\
             server_duid = \"{SERVER_DUID_HEX}\"\n{server}{links}",
            data = dir.join("data").display(),
            segment = self.segment_bytes,
            cap = self.capacity,
            journal = journal.display(),
            listen = self.listen,
            server = self.server,
            metrics = self.metrics,
        )
    }
}

/// A running lqd; killed on drop. Its stderr lines are kept for failure messages.
pub struct Lqd {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Lqd {
    /// Start lqd on `journal` with `setup` and wait until it serves and has loaded the
    /// journal's rows.
    pub fn start(dir: &Path, journal: &Journal, setup: &Setup) -> Self {
        let config = dir.join("lqd.toml");
        std::fs::write(&config, setup.toml(dir, &journal.path)).expect("write the config");
        let server_common::Spawned { child, log, .. } = server_common::spawn(&config, &[]);
        let mut lqd = Self { child, lines: log };
        lqd.wait_for("serving leasequery", Duration::from_secs(20));
        lqd.wait_for("loaded Kea lease snapshot", Duration::from_secs(20));
        // The workers apply the snapshot's rows from their queues.
        std::thread::sleep(Duration::from_millis(300));
        lqd
    }

    /// lqd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until lqd logged a line containing `text`; panics with its log otherwise.
    pub fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.log().iter().any(|l| l.contains(text)) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!(
                    "lqd exited ({status}) before logging {text:?}:\n{}",
                    self.tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "lqd never logged {text:?}:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line lqd wrote to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().expect("log lock").clone()
    }

    /// The last 40 lines of lqd's log, for failure messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        log[log.len().saturating_sub(40)..].join("\n")
    }

    /// Send SIGTERM (with the `kill` utility: no `unsafe` in tests) and wait for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(status.expect("run kill").success(), "kill -TERM {pid}");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "lqd did not exit within {limit:?} of SIGTERM:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lqd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A leasequery message as the requestor sends it: CLIENTID [`REQUESTOR`], ORO `oro`.
pub fn query_frame(
    msg_type: MessageType,
    xid: u32,
    lq_query: Option<LqQueryOut<'_>>,
    oro: &[OptionCode],
    start_time: Option<u32>,
) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = framed(&mut buf, |w| {
        write_query(
            w,
            &QueryMessage {
                msg_type,
                xid: Xid::new(xid).expect("a 24-bit xid"),
                client_id: &REQUESTOR,
                lq_query,
                oro,
                start_time,
                end_time: None,
            },
        )
    })
    .expect("the query fits 512 octets");
    buf[..n].to_vec()
}

/// A requestor connection reading whole frames with lqd's decoder.
pub struct Requestor {
    /// The connection.
    pub stream: TcpStream,
    decoder: FrameDecoder,
    /// True once lqd closed its side.
    pub eof: bool,
}

impl Requestor {
    /// Connect to `addr`.
    pub fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        Self {
            stream,
            decoder: FrameDecoder::new(u16::MAX),
            eof: false,
        }
    }

    /// Send one framed message.
    pub fn send(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).expect("send");
    }

    /// Read frames until `done` holds for what was read, the stream ends, or `limit`
    /// passes (a panic naming `what`).
    pub fn read_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&[Vec<u8>]) -> bool,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut frames = Vec::new();
        while !done(&frames) && !self.eof {
            assert!(
                Instant::now() < deadline,
                "{what}: timed out after {} frames",
                frames.len()
            );
            match self.stream.read(self.decoder.spare()) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.decoder.commit(n);
                    while let Some(frame) = self.decoder.next_frame().expect("framing") {
                        frames.push(frame.to_vec());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => self.eof = true,
                Err(e) => panic!("{what}: read: {e}"),
            }
        }
        frames
    }

    /// Read until lqd closes the connection.
    pub fn read_to_end(&mut self, what: &str, limit: Duration) -> Vec<Vec<u8>> {
        self.read_until(what, limit, |_| false)
    }
}

/// Message type, status code and whether LQ_BASE_TIME is present.
pub fn kind(frame: &[u8]) -> (MessageType, Option<StatusCode>, bool) {
    let m = Message::parse(frame).expect("lqd's frame parses");
    let status = match m.options.find(OptionCode::StatusCode) {
        Some(Opt::Status(s)) => Some(s.code),
        _ => None,
    };
    let base_time = m.options.find(OptionCode::LqBaseTime).is_some();
    (m.msg_type, status, base_time)
}

/// True when the last frame is a LEASEQUERY-DONE.
pub fn ends_with_done(frames: &[Vec<u8>]) -> bool {
    frames
        .last()
        .is_some_and(|f| kind(f).0 == MessageType::LeasequeryDone)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
