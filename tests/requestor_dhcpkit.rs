//! `lq bulk` against an independent server (issue 6, item 5): dhcpkit 1.0.7's DHCPv6 server
//! `ipv6-dhcpd` with its SQLite leasequery store (kea.md §14.5), RFC 5460 over TCP.
//!
//! dhcpkit's TCP listener needs a concrete global address and the fixed port 547, so the
//! test makes a network namespace of its own (`ip netns`, root), puts 2001:db8:1::1 (server)
//! and 2001:db8:1::2 (relay) on its loopback, and runs everything in it: no clash with other
//! tests on [::1]:547. dhcpkit does not allocate from pools: it hands out the assignments of
//! a static CSV and records each lease it gives in its leasequery store. The store is fed the
//! production way: `tests/dhcpkit/feed_dhcpkit.py` plays a relay and sends relayed Rapid
//! Commit SOLICITs by unicast UDP for three clients.
//!
//! Then `lq bulk` by client-id (with relay data) and by link-address (and the other types)
//! must return exactly what dhcpkit's store holds — read directly from its SQLite file, an
//! oracle independent of dhcpkit's TCP path: each client's DUID, address and /56 prefix,
//! valid lifetimes matching the store's end times, relay data when asked for.
//!
//! Needs root (netns) and the venv of `.ci/run` (`LQD_DHCPKIT_VENV`, default
//! `/opt/lqd-dhcpkit-venv`); without them the test is skipped with a message, except under
//! CI (`CI` set), where it fails. The namespace and dhcpkit are removed at the end, also on
//! failure.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const DEFAULT_VENV: &str = "/opt/lqd-dhcpkit-venv";
const SERVER: &str = "[2001:db8:1::1]:547";
const LIMIT: Duration = Duration::from_secs(20);

const CONFIG: &str = "\
# dhcpkit 1.0.7: RFC 5460 over TCP on 2001:db8:1::1, leases from static.csv (kea.md §14.5)
user root
group root
workers 1
pid-file dhcpkit.pid
control-socket dhcpkit.sock
allow-rapid-commit yes

# The loopback has no MAC address to make a server DUID from.
<duid-ll server-id>
    hardware-type 1
    link-layer-address 00:d0:0d:00:00:01
</duid-ll>

<logging>
    <console>
        level debug-handling
        color no
    </console>
</logging>

<listen-unicast 2001:db8:1::1 />
<listen-tcp>
    address 2001:db8:1::1
    allow-from 2001:db8:1::/64
</listen-tcp>
<server-unicast>
    address 2001:db8:1::1
</server-unicast>

<static-csv static.csv />

<leasequery>
    allow-from 2001:db8:1::/64
    <lq-sqlite lq.sqlite />
</leasequery>
";

const STATIC_CSV: &str = "\
id,address,prefix
duid:00030001020000001001,2001:db8:1::1:1,2001:db8:8:100::/56
duid:00030001020000001002,2001:db8:1::1:2,2001:db8:8:200::/56
duid:00030001020000001003,2001:db8:1::1:3,2001:db8:8:300::/56
";

fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI is set: {why}");
    eprintln!("skipping the dhcpkit server test: {why}");
}

/// The venv's bin directory, when the test can run here.
fn dhcpkit_bin() -> Option<PathBuf> {
    let venv = std::env::var_os("LQD_DHCPKIT_VENV").map_or(DEFAULT_VENV.into(), PathBuf::from);
    let bin = venv.join("bin");
    if !bin.join("ipv6-dhcpd").is_file() {
        skip(&format!(
            "dhcpkit's ipv6-dhcpd is not in {} (create the venv as .ci/run does)",
            bin.display()
        ));
        return None;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        skip("not root: the test needs a network namespace");
        return None;
    }
    Some(bin)
}

/// A network namespace with dhcpkit's server in it; both go away on drop.
struct Lab {
    ns: String,
    dir: tempfile::TempDir,
    server: Option<Child>,
}

impl Lab {
    fn new() -> Self {
        let ns = format!("lqreq-dk-{}", std::process::id());
        let lab = Self {
            ns,
            dir: tempfile::tempdir().expect("dir"),
            server: None,
        };
        let _ = Command::new("ip").args(["netns", "del", &lab.ns]).status();
        lab.ip(&["netns", "add", &lab.ns]);
        lab.ip(&["-n", &lab.ns, "link", "set", "lo", "up"]);
        for address in ["2001:db8:1::1/64", "2001:db8:1::2/64"] {
            lab.ip(&["-n", &lab.ns, "addr", "add", address, "dev", "lo", "nodad"]);
        }
        lab
    }

    fn ip(&self, args: &[&str]) {
        let ok = Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args:?} failed");
    }

    /// A command run inside the namespace.
    fn exec(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// Start dhcpkit and wait (≤ 30 s) until it is ready.
    fn start_dhcpkit(&mut self, bin: &Path) {
        let dir = self.dir.path();
        std::fs::write(dir.join("dhcpkit.conf"), CONFIG).expect("config");
        std::fs::write(dir.join("static.csv"), STATIC_CSV).expect("csv");
        let log = std::fs::File::create(dir.join("dhcpkit.log")).expect("log");
        let child = self
            .exec(&bin.join("ipv6-dhcpd"))
            .arg(dir.join("dhcpkit.conf"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ipv6-dhcpd starts");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains("ready to handle requests") {
            assert!(
                Instant::now() < deadline,
                "dhcpkit did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dhcpkit.log")).unwrap_or_default()
    }

    /// `lq bulk` inside the namespace: the bindings printed.
    fn lq_bulk(&self, args: &[&str]) -> Vec<Value> {
        let lq = PathBuf::from(env!("CARGO_BIN_EXE_lq"));
        let mut child = self
            .exec(&lq)
            .args(["bulk", "-s", SERVER])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lq starts");
        let deadline = Instant::now() + LIMIT;
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "lq bulk {args:?}: {stderr}");
        assert!(stderr.contains("(DUID-LL)"), "{stderr}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SIGTERM lets dhcpkit stop its worker processes; then make sure.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Any process still in the namespace was started by this test.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// One client as dhcpkit's store holds it: addresses, prefixes ("p/len"), valid end (Unix).
#[derive(Debug, Default, PartialEq, Eq)]
struct Stored {
    leases: Vec<String>,
    valid_end: Vec<i64>,
}

/// dhcpkit's leasequery store, read directly (its schema: clients, addresses, prefixes).
fn store(path: &Path) -> BTreeMap<String, Stored> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("dhcpkit's store");
    let mut out: BTreeMap<String, Stored> = BTreeMap::new();
    let mut q = db
        .prepare(
            "SELECT c.client_id, a.address, a.valid_lifetime_end FROM clients c \
             JOIN addresses a ON a.client_fk = c.id",
        )
        .expect("query");
    let rows = q
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })
        .expect("rows");
    for row in rows {
        let (id, address, end): (String, String, i64) = row.expect("row");
        let e = out.entry(id).or_default();
        e.leases
            .push(address.parse::<Ipv6Addr>().expect("address").to_string());
        e.valid_end.push(end);
    }
    let mut q = db
        .prepare(
            "SELECT c.client_id, p.first_address, p.last_address, p.valid_lifetime_end \
             FROM clients c JOIN prefixes p ON p.client_fk = c.id",
        )
        .expect("query");
    let rows = q
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
            ))
        })
        .expect("rows");
    for row in rows {
        let (id, first, last, end): (String, String, String, i64) = row.expect("row");
        let first: Ipv6Addr = first.parse().expect("first");
        let last: Ipv6Addr = last.parse().expect("last");
        let len = (u128::from(first) ^ u128::from(last)).leading_zeros();
        let e = out.entry(id).or_default();
        e.leases.push(format!("{first}/{len}"));
        e.valid_end.push(end);
    }
    for e in out.values_mut() {
        let mut both: Vec<(String, i64)> = e.leases.drain(..).zip(e.valid_end.drain(..)).collect();
        both.sort();
        (e.leases, e.valid_end) = both.into_iter().unzip();
    }
    out
}

/// lq's bindings in the same shape, the valid end computed from lq's valid lifetime.
fn from_lq(bindings: &[Value], now: i64) -> BTreeMap<String, Stored> {
    let mut out = BTreeMap::new();
    for b in bindings {
        assert_eq!(b["type"], "binding");
        assert_eq!(b["client_id"]["type"], "DUID-LL");
        let mut both: Vec<(String, i64)> = b["leases"]
            .as_array()
            .expect("leases")
            .iter()
            .map(|l| {
                let key = l["address"].as_str().or(l["prefix"].as_str()).expect("key");
                (key.to_owned(), now + l["valid"].as_i64().expect("valid"))
            })
            .collect();
        both.sort();
        let (leases, valid_end) = both.into_iter().unzip();
        let id = b["client_id"]["hex"].as_str().expect("hex").to_owned();
        assert!(
            out.insert(id, Stored { leases, valid_end }).is_none(),
            "one CLIENT_DATA per client"
        );
    }
    out
}

/// Equal leases; valid ends within a few seconds (lifetimes are relative to when sent).
fn assert_same(lq: &BTreeMap<String, Stored>, dk: &BTreeMap<String, Stored>) {
    assert_eq!(lq.keys().collect::<Vec<_>>(), dk.keys().collect::<Vec<_>>());
    for (id, got) in lq {
        let want = &dk[id];
        assert_eq!(got.leases, want.leases, "{id}");
        for (g, w) in got.valid_end.iter().zip(&want.valid_end) {
            assert!((g - w).abs() <= 5, "{id}: valid end {g} vs {w}");
        }
    }
}

#[test]
fn lq_bulk_returns_what_dhcpkit_serves() {
    let Some(bin) = dhcpkit_bin() else { return };
    let mut lab = Lab::new();
    lab.start_dhcpkit(&bin);
    let feed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dhcpkit/feed_dhcpkit.py");
    let fed = lab
        .exec(Path::new("python3"))
        .arg(&feed)
        .args(["2001:db8:1::2", "2001:db8:1::1", "2001:db8:1::2", "3"])
        .output()
        .expect("feed runs");
    assert!(
        fed.status.success(),
        "feeding dhcpkit failed: {}\n{}",
        String::from_utf8_lossy(&fed.stdout),
        lab.log()
    );
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits");
    let served = store(&lab.dir.path().join("lq.sqlite"));
    assert_eq!(served.len(), 3, "{served:?}");

    // By link-address: the relay's link, all three clients.
    let by_link = lab.lq_bulk(&["link-address", "2001:db8:1::2"]);
    assert_same(&from_lq(&by_link, now), &served);
    assert!(
        by_link.iter().all(|b| b["base_time"].is_null()),
        "dhcpkit has no 7653 times"
    );

    // By client-id, with relay data (ORO [47]).
    let id = "00030001020000001002";
    let one = lab.lq_bulk(&["--relay-data", "client-id", id]);
    let want: BTreeMap<String, Stored> = served.into_iter().filter(|(k, _)| k == id).collect();
    assert_same(&from_lq(&one, now), &want);
    assert!(one[0]["relay"]["peer_address"].is_string(), "{}", one[0]);

    // The other query types too.
    assert_eq!(lab.lq_bulk(&["address", "2001:db8:1::1:3"]).len(), 1);
    assert_eq!(lab.lq_bulk(&["relay-id", "000300010a0b0c0d0e01"]).len(), 3);
    assert_eq!(lab.lq_bulk(&["remote-id", "4491:636d2d30303032"]).len(), 1);
    assert_eq!(lab.lq_bulk(&["client-id", "00030001020000009999"]).len(), 0);
}
