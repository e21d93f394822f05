//! End to end with a real ISC Kea 2.2 (kea.md §12): `kea-dhcp6` serves `perfdhcp` and
//! `tests/kea/relay_client.py` across a veth pair between two network namespaces and writes
//! its memfile lease6 journal with a 5 s `lfc-interval`; lqd's ingest (tailer, router, four
//! shards with their consumers) follows that journal in-process from Kea's first row to its
//! last, across the LFC rotations.
//!
//! 1. Traffic: direct clients with addresses and prefixes, renewals and releases; clients
//!    relayed by perfdhcp (one hop, no relay options); clients relayed by relay_client.py
//!    (Interface-ID, Remote-ID, Relay-ID). Lifetimes are 10/12 s with fast reclaim, so the
//!    journal also holds reclaim (state 2) and flush (valid 0) rows; a last burst leaves
//!    live leases behind.
//! 2. A watcher in the test keeps every generation of the lease file open (by inode), so the
//!    whole history stays readable after kea-lfc removed the rotated files: the test counts
//!    the rotations (at least one) and the kinds of rows, and lqd must have routed exactly
//!    as many rows as Kea wrote.
//! 3. Kea stops; once every shard's checkpoint is at the end of the lease file, the ingest
//!    stops and the store is compared with Kea's lease state, which this test reads itself
//!    with plain string splitting from the final snapshot files in Kea's load order
//!    (X.completed, or X.2 then X.1, then X; last row wins, kea.md §8.3). Every lease must
//!    have the same liveness at the comparison time (valid, state 0/4, not expired), the
//!    same valid/preferred expiry, state, link and relay data, and the store must hold no
//!    live lease that Kea does not.
//!
//! Needs root, `ip`, `kea-dhcp6`, `perfdhcp` and python3 (Debian: iproute2,
//! kea-dhcp6-server, kea-admin, python3; `.ci/run` installs them). A missing tool fails the
//! test; it skips, with a message, only when network namespaces cannot be created. The run
//! is bounded to 90 s and leaves nothing behind: Kea, both namespaces and the temporary
//! directory are removed on drop, also after a failure.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv6Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::bounded;
use lqd::ingest::links::Links;
use lqd::ingest::pipeline::{consume, run, IngestConfig, Recovered};
use lqd::ingest::tailer::Position;
use lqd::ingest::IngestStats;
use lqd::store::model::{Binding, Lease, Prefix, RelayInfo};
use lqd::store::record::{decode_checkpoint, KIND_CHECKPOINT};
use lqd::store::table::TableLimits;
use lqd::store::{Cursor, LogConfig, LogReader, Mode, Next, Shard, ShardConfig};
use lqd::wire::client_data::LeaseKind;

/// The whole test, traffic and comparison included.
const BUDGET: Duration = Duration::from_secs(90);
/// Namespace names: this prefix, the test's pid, `-srv` / `-cli`.
const NS_PREFIX: &str = "lqd-e2e-";
/// Temporary directory names: this prefix, the test's pid, `-`, random characters.
const WORK_PREFIX: &str = "lqd-kea-e2e-";
const SHARDS: usize = 4;
const EPOCH_2000_UNIX: u64 = 946_684_800;
/// relay_client.py's clients: DUID-LL 02:00:00:00:10:0n, i.e. these octets, then n.
const RELAY_CLIENT_DUID: [u8; 9] = [0, 3, 0, 1, 2, 0, 0, 0, 0x10];
const RELAY_CLIENTS: u8 = 4;
/// The Relay-ID relay_client.py adds: DUID-LL 0a:0b:0c:0d:0e:01.
const RELAY_ID: [u8; 10] = [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x01];
/// That option as Kea 2.2 writes it inside `options` (kea.md §6).
const RELAY_ID_OPTION_HEX: &str = "0035000A000300010A0B0C0D0E01";
const LINK_RELAYED: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);

/// kea.md §12.3 with `lfc-interval` 5; `@WORK@` is the temporary directory.
const KEA_CONFIG: &str = r#"// lqd end-to-end test (tests/ingest_kea.rs), after kea.md §12.3.
{
  "Dhcp6": {
    "interfaces-config": {
      "interfaces": [ "veth-srv" ],
      "service-sockets-max-retries": 5,
      "service-sockets-retry-wait-time": 1000
    },
    "control-socket": { "socket-type": "unix", "socket-name": "@WORK@/kea6-ctrl.sock" },
    "lease-database": {
      "type": "memfile",
      "persist": true,
      "name": "@WORK@/kea-leases6.csv",
      "lfc-interval": 5
    },
    # No server-id file: /var/lib/kea may not exist.
    "server-id": { "type": "LLT", "persist": false },
    "store-extended-info": true,
    "renew-timer": 5,
    "rebind-timer": 8,
    "preferred-lifetime": 10,
    "valid-lifetime": 12,
    "expired-leases-processing": {
      "reclaim-timer-wait-time": 2,
      "flush-reclaimed-timer-wait-time": 3,
      "hold-reclaimed-time": 6,
      "max-reclaim-leases": 0,
      "max-reclaim-time": 0,
      "unwarned-reclaim-cycles": 5
    },
    "subnet6": [
      {
        "id": 1,
        "subnet": "2001:db8:1::/64",
        "interface": "veth-srv",
        "pools": [ { "pool": "2001:db8:1::1000-2001:db8:1::1fff" } ],
        "pd-pools": [ { "prefix": "2001:db8:8::", "prefix-len": 48, "delegated-len": 64 } ]
      },
      {
        "id": 2,
        "subnet": "2001:db8:2::/64",
        "rapid-commit": true,
        "pools": [ { "pool": "2001:db8:2::1000-2001:db8:2::1fff" } ],
        "pd-pools": [ { "prefix": "2001:db8:9::", "prefix-len": 48, "delegated-len": 56 } ]
      }
    ],
    "loggers": [ {
      "name": "kea-dhcp6",
      "output_options": [ { "output": "@WORK@/kea-dhcp6.log" } ],
      "severity": "INFO"
    } ]
  }
}
"#;

#[test]
fn kea_dhcp6_end_to_end() {
    let started = Instant::now();
    let tools = Tools::find();
    let Some(mut lab) = Lab::create(tools) else {
        return;
    };
    lab.topology();
    let config = lab.write_config();
    let lease_file = lab.path("kea-leases6.csv");
    let watch = JournalWatch::start(&lease_file);
    lab.start_kea(&config);
    let mut ingest = Ingest::start(&lease_file, &config, &lab.path("store"));
    let setup = started.elapsed();
    lab.traffic();
    let traffic = started.elapsed() - setup;
    lab.stop_kea();
    lab.wait_for_lfc(&lease_file);
    let generations = watch.finish();
    let end = file_end(&lease_file);
    let caught_up = ingest.wait_caught_up(end, Duration::from_secs(10));
    let (stats, mut shards) = ingest.finish();
    assert!(
        caught_up,
        "lqd did not reach the end of {}",
        lease_file.display()
    );
    let history = check_history(&generations, &stats, end);
    let now_unix = unix_now();
    let (state, files) = kea_state(&lease_file);
    assert_eq!(
        live_set(&history_state(&history), now_unix),
        live_set(&state, now_unix),
        "the journal's history and Kea's snapshot files disagree on the live leases"
    );
    let compared = compare(&state, &shards, now_unix);
    println!("snapshot files: {files:?}");
    println!("compared: {compared:?}");
    check_shard_stats(&shards);
    let compare_done = started.elapsed();
    let expired = check_own_clock_expiry(&state, &mut shards, now_unix);
    println!("lqd's clock ended the {expired} leases Kea had live once they ran out");
    let total = started.elapsed();
    let waited = total - compare_done;
    println!("timing: waiting for the last expiry {waited:.1?}");
    println!("timing: setup {setup:.1?}, traffic {traffic:.1?}, total {total:.1?}");
    assert!(compared.kea_live > 0 && compared.relay_client_bindings > 0);
    assert!(
        total < BUDGET,
        "the test took {total:.1?}, over its {BUDGET:?} budget"
    );
}

// ---------------------------------------------------------------------------------------
// Tools, namespaces, Kea and traffic.

struct Tools {
    ip: PathBuf,
    kea: PathBuf,
    perfdhcp: PathBuf,
    python: PathBuf,
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// Every tool, or a failure that names the package.
    fn find() -> Self {
        let need = |name: &str, package: &str| {
            find_tool(name).unwrap_or_else(|| {
                panic!(
                    "{name} not found: install the Debian package {package}; `.ci/run` \
                     installs kea-dhcp6-server, kea-admin, iproute2 and python3"
                )
            })
        };
        Self {
            ip: need("ip", "iproute2"),
            kea: need("kea-dhcp6", "kea-dhcp6-server"),
            perfdhcp: need("perfdhcp", "kea-admin"),
            python: need("python3", "python3"),
        }
    }
}

/// Send a signal with the shell's `kill` builtin (no procps needed, no `unsafe`).
fn signal(pid: u32, name: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .stderr(Stdio::null())
        .status();
}

/// Wait up to `limit` for `child` to exit.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// End the processes left in `ns` (a Kea of a killed earlier run keeps its namespace alive),
/// then delete the namespace (which removes its veth end). Best effort.
fn delete_namespace(ip: &Path, ns: &str) {
    if let Ok(out) = Command::new(ip).args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse() {
                signal(pid, "KILL");
            }
        }
    }
    let _ = Command::new(ip)
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// True when `rest` (after a name prefix) starts with the pid of a process that is gone,
/// or with ours (a leftover of an earlier process that had our pid).
fn owner_gone(rest: &str) -> bool {
    let me = std::process::id();
    let owner: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
    !owner.is_some_and(|p| p != me && Path::new(&format!("/proc/{p}")).exists())
}

/// Remove what runs killed before their clean-up left: their namespaces (and the Kea
/// inside), then their temporary directories.
fn remove_leftovers(ip: &Path) {
    if let Ok(out) = Command::new(ip).args(["netns", "list"]).output() {
        for name in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
        {
            if name.strip_prefix(NS_PREFIX).is_some_and(owner_gone) {
                println!("removing stale namespace {name}");
                delete_namespace(ip, name);
            }
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix(WORK_PREFIX).is_some_and(owner_gone) {
            println!("removing stale directory {}", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The lab: two namespaces joined by a veth pair, Kea in one, clients in the other.
struct Lab {
    tools: Tools,
    ns_srv: String,
    ns_cli: String,
    kea: Option<Child>,
    work: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_kea();
        for ns in [&self.ns_cli, &self.ns_srv] {
            delete_namespace(&self.tools.ip, ns);
        }
        // `work` is removed after this, when the field drops.
    }
}

impl Lab {
    /// Create the server namespace, or `None` (skip) when namespaces cannot be created.
    fn create(tools: Tools) -> Option<Self> {
        remove_leftovers(&tools.ip);
        let pid = std::process::id();
        let work = tempfile::Builder::new()
            .prefix(&format!("{WORK_PREFIX}{pid}-"))
            .tempdir()
            .expect("temporary directory");
        let lab = Self {
            ns_srv: format!("{NS_PREFIX}{pid}-srv"),
            ns_cli: format!("{NS_PREFIX}{pid}-cli"),
            tools,
            kea: None,
            work,
        };
        let out = lab.ip(&["netns", "add", &lab.ns_srv]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
                println!(
                    "SKIPPED kea_dhcp6_end_to_end: network namespaces cannot be created here \
                     (`ip netns add` needs root / CAP_SYS_ADMIN): {}",
                    stderr.trim()
                );
                return None;
            }
            panic!("ip netns add {} failed: {}", lab.ns_srv, stderr.trim());
        }
        Some(lab)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn ip(&self, args: &[&str]) -> Output {
        Command::new(&self.tools.ip)
            .args(args)
            .output()
            .expect("run ip")
    }

    fn ip_ok(&self, args: &[&str]) -> String {
        let out = self.ip(args);
        assert!(
            out.status.success(),
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kea.md §12.2, with the veth ends created directly inside the namespaces (no name is
    /// ever taken in the host's namespace, so parallel runs do not collide).
    fn topology(&self) {
        self.ip_ok(&["netns", "add", &self.ns_cli]);
        for ns in [&self.ns_srv, &self.ns_cli] {
            // Before the veth ends exist, so that they inherit accept_dad=0.
            let no_dad = "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
                          echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad";
            self.ip_ok(&["netns", "exec", ns, "sh", "-c", no_dad]);
            self.ip_ok(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (srv, cli) = (self.ns_srv.as_str(), self.ns_cli.as_str());
        for line in [
            format!("-n {srv} link add veth-srv type veth peer name veth-cli netns {cli}"),
            format!("-n {srv} addr add 2001:db8:1::1/64 dev veth-srv nodad"),
            format!("-n {cli} addr add 2001:db8:1::2/64 dev veth-cli nodad"),
            format!("-n {srv} link set veth-srv up"),
            format!("-n {cli} link set veth-cli up"),
        ] {
            self.ip_ok(&line.split_whitespace().collect::<Vec<_>>());
        }
        // Kea binds the link-local address, which appears once both ends have carrier: wait
        // until each end has one and no address is tentative.
        let deadline = Instant::now() + Duration::from_secs(10);
        for (ns, dev) in [(srv, "veth-srv"), (cli, "veth-cli")] {
            let ready = || {
                let show = |what: &[&str]| {
                    let args = [&["-n", ns, "-6", "addr", "show", "dev", dev][..], what].concat();
                    !self.ip_ok(&args).trim().is_empty()
                };
                show(&["scope", "link"]) && !show(&["tentative"])
            };
            while !ready() {
                assert!(
                    Instant::now() < deadline,
                    "{dev} in {ns} has no usable link-local address"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn write_config(&self) -> PathBuf {
        let work = self.work.path().to_str().expect("UTF-8 temporary path");
        let path = self.path("kea-dhcp6.json");
        std::fs::write(&path, KEA_CONFIG.replace("@WORK@", work)).expect("write Kea config");
        path
    }

    /// kea.md §12.4: syntax check, then the server; returns once Kea logged DHCP6_STARTED.
    fn start_kea(&mut self, config: &Path) {
        let check = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.ns_srv])
            .arg(&self.tools.kea)
            .arg("-t")
            .arg(config)
            .output()
            .expect("run kea-dhcp6 -t");
        assert!(
            check.status.success(),
            "kea-dhcp6 -t refused the configuration: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let stdout = File::create(self.path("kea-stdout.log")).expect("Kea stdout log");
        let stderr = stdout.try_clone().expect("clone log handle");
        let work = self.work.path();
        let child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.ns_srv, "env"])
            .arg(format!("KEA_PIDFILE_DIR={}", work.display()))
            .arg(format!("KEA_LOCKFILE_DIR={}", work.display()))
            .arg(&self.tools.kea)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start kea-dhcp6");
        // `ip netns exec` and `env` both exec: this is kea-dhcp6 itself.
        self.kea = Some(child);
        self.wait_kea_started();
    }

    fn wait_kea_started(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = self.path("kea-dhcp6.log");
        let lease_file = self.path("kea-leases6.csv");
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("DHCP6_STARTED") && lease_file.exists() {
                return;
            }
            let kea = self.kea.as_mut().expect("Kea started");
            let exited = kea.try_wait().expect("try_wait");
            if exited.is_some() || Instant::now() >= deadline {
                let stdout = std::fs::read_to_string(self.path("kea-stdout.log"));
                panic!(
                    "kea-dhcp6 did not start ({exited:?}); its output:\n{}\n{text}",
                    stdout.unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait (Kea exits within ~2 s); SIGKILL after 5 s.
    fn stop_kea(&mut self) {
        let Some(mut kea) = self.kea.take() else {
            return;
        };
        signal(kea.id(), "TERM");
        if wait_for(&mut kea, Duration::from_secs(5)).is_none() {
            let _ = kea.kill();
            let _ = kea.wait();
        }
    }

    /// Kea may have rotated the file and started kea-lfc just before it stopped: wait until
    /// kea-lfc is done (no pid, work or rotated file left) so that the snapshot files are
    /// final. A kea-lfc that failed would leave X.1, which Kea's load order reads anyway.
    fn wait_for_lfc(&self, lease_file: &Path) {
        let busy = || {
            [".pid", ".1", ".output", ".completed"]
                .iter()
                .any(|s| with_suffix(lease_file, s).exists())
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while busy() {
            if Instant::now() >= deadline {
                println!("kea-lfc left files behind; reading them in Kea's load order");
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run a program in the client namespace, bounded by `limit`; output to `log`.
    fn client(&self, program: &Path, args: &[&str], limit: Duration, log: &str) -> ExitStatus {
        let out = File::create(self.path(log)).expect("client log");
        let err = out.try_clone().expect("clone log handle");
        let mut child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.ns_cli])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start client");
        let status = wait_for(&mut child, limit);
        let text = std::fs::read_to_string(self.path(log)).unwrap_or_default();
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {limit:?}:\n{text}",
                program.display()
            );
        };
        if !status.success() {
            println!(
                "{} {args:?} exited with {status}:\n{text}",
                program.display()
            );
        }
        status
    }

    /// perfdhcp for `seconds` on the client's veth; `args` separated by spaces.
    fn perfdhcp(&self, seconds: u64, args: &str, log: &str) {
        let seconds_text = seconds.to_string();
        let mut all = vec!["-6", "-l", "veth-cli", "-p", seconds_text.as_str()];
        all.extend(args.split_whitespace());
        let limit = Duration::from_secs(seconds + 10);
        self.client(&self.tools.perfdhcp, &all, limit, log);
    }

    fn relay_client(&self, log: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kea/relay_client.py");
        let script = script.to_str().expect("UTF-8 path");
        let count = RELAY_CLIENTS.to_string();
        let mut args = vec![script];
        args.extend("2001:db8:1::2 ff02::1:2%veth-cli 2001:db8:2::1".split_whitespace());
        args.push(&count);
        let status = self.client(&self.tools.python, &args, Duration::from_secs(15), log);
        assert!(status.success(), "relay_client.py failed (see above)");
    }

    /// kea.md §12.5, shortened: about 22 s.
    fn traffic(&self) {
        // Direct clients: 100 clients with an address and a prefix, renewals, releases.
        let direct = "-r 20 -R 100 -e address-and-prefix -f 5 -F 2";
        self.perfdhcp(5, direct, "perfdhcp-direct.log");
        // Relayed by perfdhcp: one relay level, link-address 2001:db8:2::1 (subnet 2).
        let links = self.path("relay-links.txt");
        std::fs::write(&links, "2001:db8:2::1\n").expect("relay links file");
        let relayed = format!(
            "-A 1 -J {} -r 10 -R 20 -e address-only -f 2 -F 1",
            links.display()
        );
        self.perfdhcp(3, &relayed, "perfdhcp-relayed.log");
        // Relayed with Interface-ID, Remote-ID and Relay-ID.
        self.relay_client("relay-client-1.log");
        // Leases run out, are reclaimed (state 2) and flushed (valid 0); Kea rotates.
        thread::sleep(Duration::from_secs(10));
        // A last burst, so that live leases remain at the comparison: the relay clients
        // again (same DUIDs: renewed), and new direct clients, some released at once.
        self.relay_client("relay-client-2.log");
        let last = "-r 10 -R 20 -e address-and-prefix -f 5 -F 5";
        self.perfdhcp(3, last, "perfdhcp-last.log");
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Identity and length of a file: where a caught-up tailer stands.
fn file_end(path: &Path) -> (u64, u64, u64) {
    let meta = std::fs::metadata(path).expect("lease file");
    (meta.dev(), meta.ino(), meta.len())
}

// ---------------------------------------------------------------------------------------
// The journal's generations, kept open by inode.

/// Every file that was ever the lease file, in order, and whether X.1 / X.2 were seen.
#[derive(Default)]
struct Generations {
    files: Vec<(u64, File)>,
    saw_rotated: bool,
    saw_compacted: bool,
}

struct JournalWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Generations>>,
}

impl JournalWatch {
    /// Sample the lease file every 10 ms (Kea rotates every 5 s) and keep each new inode open.
    fn start(path: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let path = path.to_path_buf();
        let thread = thread::spawn(move || {
            let mut seen = Generations::default();
            loop {
                let last = stopping.load(Ordering::Acquire);
                if let Ok(file) = File::open(&path) {
                    let ino = file.metadata().expect("fstat").ino();
                    if seen.files.last().is_none_or(|(i, _)| *i != ino) {
                        seen.files.push((ino, file));
                    }
                }
                seen.saw_rotated |= with_suffix(&path, ".1").exists();
                seen.saw_compacted |= with_suffix(&path, ".2").exists();
                if last {
                    return seen;
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Generations {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread.take().expect("running");
        thread.join().expect("journal watcher panicked")
    }
}

impl Drop for JournalWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// lqd's ingest, in-process.

fn shard_config(dir: PathBuf) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir,
            segment_bytes: 1 << 22,
            segments_max: 8,
            retention_age_s: 86_400,
            time_index_entries_max: 4096,
        },
        table: TableLimits {
            clients_max: 100_000,
            addresses_max: 100_000,
            prefixes_max: 100_000,
            links_max: 64,
            relay_ids_max: 64,
            remote_ids_max: 64,
        },
    }
}

/// A shard's log as seen from the test thread: the latest checkpoint it holds.
struct Follower {
    reader: LogReader,
    cursor: Cursor,
    checkpoint: Option<Position>,
}

impl Follower {
    fn latest(&mut self) -> Option<Position> {
        loop {
            match self.cursor.next(&self.reader) {
                Next::Record(record) if record.header.kind == KIND_CHECKPOINT => {
                    let (_, bytes) = decode_checkpoint(record.payload).expect("checkpoint");
                    self.checkpoint = Position::from_bytes(bytes);
                }
                Next::Record(_) | Next::Again => {}
                Next::Pending | Next::HorizonPassed => return self.checkpoint,
            }
        }
    }
}

struct Ingest {
    stop: Arc<AtomicBool>,
    ingest: Option<JoinHandle<io::Result<IngestStats>>>,
    consumers: Vec<JoinHandle<Shard>>,
    followers: Vec<Follower>,
}

impl Ingest {
    /// Shards with a consumer thread each, bounded queues, and the ingest thread.
    fn start(lease_file: &Path, kea_config: &Path, store: &Path) -> Self {
        let links = Links::from_kea_file(kea_config).expect("lqd reads Kea's configuration");
        assert_eq!(links.len(), 2, "two subnets in the Kea configuration");
        let mut queues = Vec::new();
        let mut consumers = Vec::new();
        let mut followers = Vec::new();
        for i in 0..SHARDS {
            let dir = store.join(format!("shard-{i}"));
            std::fs::create_dir_all(&dir).expect("shard directory");
            let now = lqd::ingest::pipeline::server_now();
            let (shard, checkpoint, _) = Shard::open(shard_config(dir), now).expect("shard");
            assert!(checkpoint.is_none(), "a new store");
            let reader = shard.reader();
            let cursor = Cursor::at_start(&reader, Mode::All);
            followers.push(Follower {
                reader,
                cursor,
                checkpoint: None,
            });
            let (tx, rx) = bounded(1024);
            queues.push(tx);
            consumers.push(thread::spawn(move || consume(shard, rx)));
        }
        let config = IngestConfig {
            lease_file: lease_file.to_path_buf(),
            line_max: 64 * 1024,
            lines_per_poll: 1024,
            idle_wait: Duration::from_millis(100),
            owners_max: 200_000,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let ingest =
            thread::spawn(move || run(&config, links, queues, Recovered::default(), &stopping));
        Self {
            stop,
            ingest: Some(ingest),
            consumers,
            followers,
        }
    }

    /// Wait until every shard holds a checkpoint at `end` (device, inode, length of X): all
    /// rows before it were applied, since each queue is in order.
    fn wait_caught_up(&mut self, end: (u64, u64, u64), limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let at_end =
                |p: Option<Position>| p.is_some_and(|p| (p.file.dev, p.file.ino, p.offset) == end);
            if self.followers.iter_mut().all(|f| at_end(f.latest())) {
                return true;
            }
            let ingest_ended = self.ingest.as_ref().is_none_or(JoinHandle::is_finished);
            if ingest_ended || Instant::now() >= deadline {
                let positions: Vec<_> = self.followers.iter().map(|f| f.checkpoint).collect();
                println!("not caught up with {end:?}: shard checkpoints {positions:?}");
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the ingest thread (its queues close, so the consumers return their shards).
    fn finish(mut self) -> (IngestStats, Vec<Shard>) {
        self.stop.store(true, Ordering::Release);
        let ingest = self.ingest.take().expect("running");
        let stats = ingest
            .join()
            .expect("ingest thread panicked")
            .expect("ingest ended with an error");
        let shards = self
            .consumers
            .drain(..)
            .map(|c| c.join().expect("shard consumer panicked"))
            .collect();
        (stats, shards)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(ingest) = self.ingest.take() {
            let _ = ingest.join();
        }
        for consumer in self.consumers.drain(..) {
            let _ = consumer.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kea's journal, read independently of lqd's parser.

/// (address, lease_type, prefix_len): the key of Kea's lease table.
type Key = (Ipv6Addr, u8, u8);

#[derive(Clone, Debug)]
struct KeaRow {
    address: Ipv6Addr,
    duid: Vec<u8>,
    valid: u32,
    expire: u64,
    subnet: u32,
    pref: u32,
    lease_type: u8,
    prefix_len: u8,
    state: u32,
    context: String,
    /// Where it was read, for messages: "file:line: text".
    origin: String,
}

impl KeaRow {
    const fn key(&self) -> Key {
        (self.address, self.lease_type, self.prefix_len)
    }

    const fn kind(&self) -> LeaseKind {
        if self.lease_type == 2 {
            LeaseKind::Prefix(self.address, self.prefix_len)
        } else {
            LeaseKind::Address(self.address)
        }
    }

    /// An active binding at `now` (kea.md §7.2).
    fn live_at(&self, now_unix: u64) -> bool {
        self.valid > 0
            && matches!(self.state, 0 | 4)
            && (self.valid == u32::MAX || self.expire > now_unix)
    }

    /// Server time of `expire − valid + lifetime` (lqd's `*_until`), infinite kept.
    fn until(&self, lifetime: u32) -> u32 {
        if lifetime == u32::MAX {
            return u32::MAX;
        }
        let unix = self.expire - u64::from(self.valid) + u64::from(lifetime);
        u32::try_from(unix - EPOCH_2000_UNIX).expect("server time before 2136")
    }
}

fn parse_duid(text: &str) -> Vec<u8> {
    text.split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("DUID hex"))
        .collect()
}

/// Split a lease file: header names map the columns; every row must have as many fields.
fn parse_journal(text: &str, name: &str) -> Vec<KeaRow> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let [address, duid, valid, expire, subnet, pref, lease_type, prefix_len, state, context] = [
        "address",
        "duid",
        "valid_lifetime",
        "expire",
        "subnet_id",
        "pref_lifetime",
        "lease_type",
        "prefix_len",
        "state",
        "user_context",
    ]
    .map(col);
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        let origin = format!("{name}:{}: {line}", i + 2);
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len(), "field count at {origin}");
        let num = |c: usize| -> u64 { f[c].parse().unwrap_or_else(|_| panic!("{origin}")) };
        let small = |c: usize| u32::try_from(num(c)).expect("u32 column");
        rows.push(KeaRow {
            address: f[address].parse().expect("IPv6 address"),
            duid: parse_duid(f[duid]),
            valid: small(valid),
            expire: num(expire),
            subnet: small(subnet),
            pref: small(pref),
            lease_type: u8::try_from(num(lease_type)).expect("lease type"),
            prefix_len: u8::try_from(num(prefix_len)).expect("prefix length"),
            state: small(state),
            context: f[context].to_owned(),
            origin,
        });
    }
    rows
}

/// Last row wins, in the order given.
fn last_row_wins<'a>(rows: impl IntoIterator<Item = &'a KeaRow>) -> HashMap<Key, KeaRow> {
    let mut state = HashMap::new();
    for row in rows {
        state.insert(row.key(), row.clone());
    }
    state
}

/// Kea's lease state from its snapshot files, in its start-up load order (kea.md §8.3).
fn kea_state(lease_file: &Path) -> (HashMap<Key, KeaRow>, Vec<String>) {
    let completed = with_suffix(lease_file, ".completed");
    let mut files: Vec<PathBuf> = if completed.exists() {
        vec![completed]
    } else {
        [".2", ".1"]
            .map(|s| with_suffix(lease_file, s))
            .into_iter()
            .filter(|p| p.exists())
            .collect()
    };
    files.push(lease_file.to_path_buf());
    let mut rows = Vec::new();
    let mut names = Vec::new();
    for file in &files {
        let name = file.file_name().expect("file name").to_string_lossy();
        let text = std::fs::read_to_string(file).expect("read snapshot file");
        let parsed = parse_journal(&text, &name);
        names.push(format!("{name} ({} rows)", parsed.len()));
        rows.extend(parsed);
    }
    (last_row_wins(&rows), names)
}

fn history_state(history: &[KeaRow]) -> HashMap<Key, KeaRow> {
    last_row_wins(history)
}

/// The live leases: (key, DUID, subnet).
fn live_set(state: &HashMap<Key, KeaRow>, now_unix: u64) -> HashSet<(Key, Vec<u8>, u32)> {
    state
        .values()
        .filter(|r| r.live_at(now_unix))
        .map(|r| (r.key(), r.duid.clone(), r.subnet))
        .collect()
}

/// Read every generation from its start; check the rotations, the kinds of rows, and that
/// lqd routed exactly the rows Kea wrote. Returns the rows, in journal order.
fn check_history(gen: &Generations, stats: &IngestStats, end: (u64, u64, u64)) -> Vec<KeaRow> {
    let mut history = Vec::new();
    for (i, (ino, file)) in gen.files.iter().enumerate() {
        let mut text = String::new();
        let mut reader: &File = file;
        reader.read_to_string(&mut text).expect("read a generation");
        history.extend(parse_journal(
            &text,
            &format!("generation {i} (inode {ino})"),
        ));
    }
    let rotations = gen.files.len().saturating_sub(1);
    let count = |f: &dyn Fn(&KeaRow) -> bool| history.iter().filter(|r| f(r)).count();
    let released = count(&|r| r.valid == 0 && r.state == 0);
    let reclaimed = count(&|r| r.valid > 0 && r.state == 2);
    let flushed = count(&|r| r.valid == 0 && r.state == 2);
    let prefixes = count(&|r| r.lease_type == 2);
    let relayed = count(&|r| r.subnet == 2);
    let relay_options = count(&|r| r.context.contains(RELAY_ID_OPTION_HEX));
    println!(
        "journal: {} rows in {} generations ({rotations} rotations; X.1 seen {}, X.2 seen {}); \
         {released} releases, {reclaimed} reclaims, {flushed} flushes, {prefixes} PD rows, \
         {relayed} relayed rows ({relay_options} with relay options)",
        history.len(),
        gen.files.len(),
        gen.saw_rotated,
        gen.saw_compacted
    );
    println!("lqd ingest: {stats:?}");
    assert!(rotations >= 1, "no LFC rotation happened during the run");
    assert_eq!(
        gen.files.last().map(|(ino, _)| *ino),
        Some(end.1),
        "X is the last generation"
    );
    for (what, n) in [
        ("release", released),
        ("reclaim", reclaimed),
        ("flush", flushed),
    ] {
        assert!(n > 0, "no {what} row in the journal");
    }
    assert!(prefixes > 0 && relayed > 0 && relay_options > 0);
    assert_eq!(
        stats.rejected_total(),
        0,
        "lqd rejected rows: {:?}",
        stats.rejected
    );
    assert_eq!(stats.unknown_subnet, 0);
    let rows = u64::try_from(history.len()).expect("row count");
    assert_eq!(
        stats.rows, rows,
        "lqd routed {} rows, Kea wrote {rows}",
        stats.rows
    );
    history
}

// ---------------------------------------------------------------------------------------
// The comparison.

#[derive(Debug, Default)]
struct Compared {
    /// Leases in Kea's state (one per address or prefix).
    kea_leases: usize,
    /// Of them: live at the comparison time.
    kea_live: usize,
    /// Valid, state 0, but expired and not yet reclaimed by Kea.
    kea_expired_unreclaimed: usize,
    /// Valid, state 2.
    kea_reclaimed: usize,
    /// Deleted (valid 0) rows still in X.
    kea_deleted: usize,
    /// Bindings (DUID + link) in lqd's store.
    store_bindings: usize,
    /// Live leases in lqd's store.
    store_live: usize,
    /// Bindings whose relay data was checked against relay_client.py's options.
    relay_client_bindings: usize,
}

fn binding_of(shards: &[Shard], duid: &[u8], subnet: u32) -> Option<Binding> {
    shards.iter().find_map(|s| {
        s.latest(duid, subnet)
            .and_then(|offset| s.binding_at(offset))
    })
}

/// Compare lqd's store with Kea's state at `now_unix`; panics listing every mismatch.
fn compare(state: &HashMap<Key, KeaRow>, shards: &[Shard], now_unix: u64) -> Compared {
    let now = u32::try_from(now_unix - EPOCH_2000_UNIX).expect("server time");
    let mut counts = Compared::default();
    let mut errors = Vec::new();
    let mut relays_checked = HashSet::new();
    let mut rows: Vec<&KeaRow> = state.values().collect();
    rows.sort_by(|a, b| a.origin.cmp(&b.origin));
    for row in rows {
        counts.kea_leases += 1;
        match (row.valid, row.state, row.live_at(now_unix)) {
            (0, _, _) => counts.kea_deleted += 1,
            (_, _, true) => counts.kea_live += 1,
            (_, 2, _) => counts.kea_reclaimed += 1,
            _ => counts.kea_expired_unreclaimed += 1,
        }
        let Some(binding) = binding_of(shards, &row.duid, row.subnet) else {
            errors.push(format!("no binding in lqd for Kea's {}", row.origin));
            continue;
        };
        check_lease(row, &binding, now, now_unix, &mut errors);
        if relays_checked.insert((row.duid.clone(), row.subnet)) {
            counts.relay_client_bindings += usize::from(check_relay(row, &binding, &mut errors));
        }
    }
    check_store_side(state, shards, now, now_unix, &mut counts, &mut errors);
    for error in errors.iter().take(40) {
        println!("MISMATCH {error}");
    }
    assert!(
        errors.is_empty(),
        "{} mismatches between lqd and Kea",
        errors.len()
    );
    counts
}

/// Counters of the shards: nothing refused, no expiry dropped, and lqd expired leases on
/// its own clock during the run (Kea's reclaim row comes up to 2 s after `expire`).
fn check_shard_stats(shards: &[Shard]) {
    let stats: Vec<_> = shards.iter().map(Shard::stats).collect();
    println!("shard stats: {stats:?}");
    assert!(stats
        .iter()
        .all(|s| s.refused == 0 && s.expiries_dropped == 0));
    assert!(
        stats.iter().map(|s| s.expired).sum::<u64>() > 0,
        "lqd expired nothing itself"
    );
}

/// Kea is stopped, so it will write no reclaim row any more: once every lease it had live
/// at `live_at` ran out, lqd's own clock must end each of them (kea.md §7.3), exactly once.
fn check_own_clock_expiry(
    state: &HashMap<Key, KeaRow>,
    shards: &mut [Shard],
    live_at: u64,
) -> usize {
    let live: Vec<&KeaRow> = state.values().filter(|r| r.live_at(live_at)).collect();
    let last = live.iter().map(|r| r.expire).max().unwrap_or(live_at);
    assert!(last <= live_at + 12, "lifetimes are 12 s at most");
    while unix_now() <= last {
        thread::sleep(Duration::from_millis(100));
    }
    let now = lqd::ingest::pipeline::server_now();
    let ended: usize = shards
        .iter_mut()
        .map(|s| s.expire_due(now, usize::MAX))
        .sum();
    for row in &live {
        let binding = binding_of(shards, &row.duid, row.subnet).expect("binding");
        let lease = binding.leases().iter().find(|l| l.kind == row.kind());
        assert!(
            lease.is_some_and(|l| l.ended_at != 0 && l.entry(now).valid == 0),
            "lqd did not end {lease:?} at {now}; Kea: {}",
            row.origin
        );
    }
    assert_eq!(ended, live.len(), "leases ended by lqd's clock");
    ended
}

/// One Kea lease against the store's lease on the same resource.
fn check_lease(row: &KeaRow, binding: &Binding, now: u32, now_unix: u64, errors: &mut Vec<String>) {
    let kind = row.kind();
    let Some(lease) = binding.leases().iter().find(|l| l.kind == kind).copied() else {
        errors.push(format!(
            "lqd's binding lacks the lease of Kea's {}",
            row.origin
        ));
        return;
    };
    let show = |l: &Lease| format!("{l:?} (now {now})");
    if lease.is_live(now) != row.live_at(now_unix) {
        errors.push(format!(
            "liveness differs: Kea live={} for {}; lqd {}",
            row.live_at(now_unix),
            row.origin,
            show(&lease)
        ));
    }
    if row.valid == 0 {
        if lease.ended_at == 0 {
            errors.push(format!(
                "deleted in Kea ({}), not ended in lqd: {}",
                row.origin,
                show(&lease)
            ));
        }
        return;
    }
    // A lease lqd already ended on its own clock keeps lqd's end: Kea's later reclaim row
    // (state 2) confirms it without a second report (kea.md §7.3), so its state stays the
    // one lqd saw while the lease was live.
    let state_confirmed = lease.ended_at != 0 && row.state == 2;
    let expected_state = if state_confirmed {
        u32::from(lease.state.code())
    } else {
        row.state
    };
    let expected = (row.until(row.valid), row.until(row.pref), expected_state);
    let got = (
        lease.valid_until,
        lease.preferred_until,
        u32::from(lease.state.code()),
    );
    if expected != got {
        errors.push(format!(
            "(valid_until, preferred_until, state) Kea {expected:?} for {}; lqd {got:?}",
            row.origin
        ));
    }
}

/// The text after `"key": "` in Kea's user_context, up to the next quote.
fn context_field<'a>(context: &'a str, key: &str) -> Option<&'a str> {
    let start = context.find(&format!("\"{key}\": \""))? + key.len() + 5;
    context[start..].split('"').next()
}

/// Link, relay data of a binding against Kea's row. True for a relay_client.py client.
fn check_relay(row: &KeaRow, binding: &Binding, errors: &mut Vec<String>) -> bool {
    let prefix = |third: u16| Prefix {
        address: Ipv6Addr::new(0x2001, 0xdb8, third, 0, 0, 0, 0, 0),
        len: 64,
    };
    let expected_prefix = match row.subnet {
        1 => Some(prefix(1)),
        2 => Some(prefix(2)),
        _ => None,
    };
    if binding.link_prefix != expected_prefix {
        errors.push(format!(
            "link prefix {:?} for {}",
            binding.link_prefix, row.origin
        ));
    }
    let relay = &binding.relay;
    let Some(link) = context_field(&row.context, "link") else {
        if *relay != RelayInfo::NONE {
            errors.push(format!("relay info {relay:?} for unrelayed {}", row.origin));
        }
        return false;
    };
    let peer = context_field(&row.context, "peer").expect("a relay has a peer");
    let addr = |s: &str| s.parse::<Ipv6Addr>().expect("relay address");
    if (relay.link_address, relay.peer_address) != (addr(link), addr(peer)) {
        errors.push(format!("relay link/peer {relay:?} for {}", row.origin));
    }
    let client = row
        .duid
        .strip_prefix(&RELAY_CLIENT_DUID[..])
        .and_then(|rest| match rest {
            [n] if (1..=RELAY_CLIENTS).contains(n) => Some(*n),
            _ => None,
        });
    let Some(n) = client else {
        if !relay.relay_id.is_empty() || !relay.remote_id.is_empty() {
            errors.push(format!(
                "relay/remote-id {relay:?} without options: {}",
                row.origin
            ));
        }
        return false;
    };
    let mut remote_id = vec![0, 0, 0x11, 0x8b]; // enterprise 4491
    remote_id.extend_from_slice(format!("cm-{n:04}").as_bytes());
    let peer = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x200, 0xff, 0xfe00, 0x1000 + u16::from(n));
    let ok = addr(link) == LINK_RELAYED
        && relay.peer_address == peer
        && relay.relay_id.as_slice() == RELAY_ID
        && relay.remote_id.as_slice() == remote_id
        && row.context.contains(RELAY_ID_OPTION_HEX);
    if !ok {
        errors.push(format!(
            "relay_client.py client {n}: lqd has {relay:?}; Kea {}",
            row.origin
        ));
    }
    true
}

/// Conversely: every live lease in the store is live in Kea, for the same client.
fn check_store_side(
    state: &HashMap<Key, KeaRow>,
    shards: &[Shard],
    now: u32,
    now_unix: u64,
    counts: &mut Compared,
    errors: &mut Vec<String>,
) {
    let mut clients = HashSet::new();
    for (i, shard) in shards.iter().enumerate() {
        for offset in shard.all() {
            let binding = shard.binding_at(offset).expect("latest record readable");
            counts.store_bindings += 1;
            if !clients.insert((binding.duid.as_slice().to_vec(), binding.link)) {
                errors.push(format!(
                    "client {:?} in two shards (again in {i})",
                    binding.duid
                ));
            }
            for lease in binding.leases().iter().filter(|l| l.is_live(now)) {
                counts.store_live += 1;
                let key = match lease.kind {
                    LeaseKind::Address(a) => (a, 0, 128),
                    LeaseKind::Prefix(p, len) => (p, 2, len),
                };
                let matches = state.get(&key).is_some_and(|r| {
                    r.live_at(now_unix)
                        && r.duid == binding.duid.as_slice()
                        && r.subnet == binding.link
                });
                if !matches {
                    let kea = state.get(&key).map(|r| r.origin.as_str());
                    errors.push(format!(
                        "lqd holds {lease:?} live for {:?}/{} (now {now}); Kea has {kea:?}",
                        binding.duid, binding.link
                    ));
                }
            }
        }
    }
    if counts.store_live != counts.kea_live {
        errors.push(format!(
            "live leases: lqd {} Kea {}",
            counts.store_live, counts.kea_live
        ));
    }
}
