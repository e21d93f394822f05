//! The `lqd` binary as an operator runs it: a TOML file, Kea's journal, SIGTERM, restart.
//!
//! 1. A first run loads the journal as a snapshot and follows rows appended while it runs.
//! 2. SIGTERM stops it cleanly (exit 0); the store on disk holds every client.
//! 3. Rows appended while it is down are applied after a restart, which resumes at the
//!    checkpoint instead of reloading.
//! 4. Mistakes in the configuration, and a shard count that differs from the data
//!    directory's, exit non-zero with a message that names the problem.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lqd::config::Config;
use lqd::store::Shard;

const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";

fn row(n: u32, expire: u64) -> String {
    let duid = format!("00:03:00:01:02:00:00:00:00:{n:02x}");
    format!("2001:db8:1::{n:x},{duid},4000,{expire},1,3000,0,1,128,0,0,,,0,,1,0\n")
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("journal");
    file.write_all(text.as_bytes()).expect("append");
}

fn config_text(dir: &Path, shards: u32) -> String {
    format!(
        "[metrics]\nlisten = \"\"\n\
         [store]\ndata_dir = \"{data}\"\nshards = {shards}\nsegment_bytes = 1048576\n\
         segments_max = 8\nclients_max = 1000\naddresses_max = 1000\nprefixes_max = 1000\n\
         [ingest]\nlease_file = \"{journal}\"\nkea_config = \"\"\nidle_wait_ms = 50\n\
         [server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nserver_duid = \"000300010a0b0c0d0e0f\"\n\
         [[links]]\nsubnet_id = 1\nprefix = \"2001:db8:1::/64\"\n",
        data = dir.join("data").display(),
        journal = dir.join("kea-leases6.csv").display()
    )
}

/// A running lqd whose stderr lines arrive on a channel.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lqd"))
            .arg("--config")
            .arg(config)
            .env("LQD_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("lqd starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Wait (at most 10 s) for a log line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("lqd never logged {text:?}");
    }

    fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        assert!(status.expect("kill runs").success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "lqd exited with {status} after SIGTERM");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lqd did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client numbers with a live lease in the store under `config`.
fn stored_clients(config: &Path) -> Vec<u32> {
    let limits = Config::load(config)
        .expect("config")
        .validate(1)
        .expect("valid");
    let mut found = Vec::new();
    for shard_config in &limits.shard {
        let (shard, _, _) = Shard::open(shard_config.clone(), 1).expect("shard opens");
        for offset in shard.all() {
            let binding = shard.binding_at(offset).expect("retained");
            found.push(u32::from(*binding.duid.as_slice().last().expect("duid")));
        }
    }
    found.sort_unstable();
    found
}

#[test]
fn run_stop_restart_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("kea-leases6.csv");
    let config = dir.path().join("lqd.toml");
    std::fs::write(&config, config_text(dir.path(), 2)).expect("config");
    let expire = 1_795_900_000;
    std::fs::write(
        &journal,
        format!("{HEADER}\n{}{}", row(1, expire), row(2, expire)),
    )
    .expect("journal");

    let daemon = Daemon::start(&config);
    daemon.wait_for("loaded Kea lease snapshot");
    append(&journal, &row(3, expire));
    // Give inotify and the shard threads a moment; then stop.
    std::thread::sleep(Duration::from_millis(500));
    daemon.stop();
    assert_eq!(stored_clients(&config), [1, 2, 3]);

    append(&journal, &(row(4, expire) + &row(5, expire)));
    let daemon = Daemon::start(&config);
    let line = daemon.wait_for("resumed Kea lease file");
    assert!(
        line.contains("line=4"),
        "resumed after the third row: {line}"
    );
    std::thread::sleep(Duration::from_millis(500));
    daemon.stop();
    assert_eq!(stored_clients(&config), [1, 2, 3, 4, 5]);
}

#[test]
fn bad_configurations_exit_non_zero_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("lqd.toml");
    let run = |text: &str| {
        std::fs::write(&config, text).expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_lqd"))
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()
            .expect("lqd runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("[store]\nshardz = 2\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown field `shardz`"), "{err}");
    let (code, err) = run("[store]\nsegment_bytes = 12345\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("segment_bytes 12345"), "{err}");
    let (code, err) = run("[[links]]\nsubnet_id = 3\nprefix = \"2001:db8::/129\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("[[links]] subnet_id 3"), "{err}");

    // A data directory made for 2 shards refuses 3.
    std::fs::write(&config, config_text(dir.path(), 2)).expect("config");
    std::fs::write(dir.path().join("kea-leases6.csv"), format!("{HEADER}\n")).expect("journal");
    let daemon = Daemon::start(&config);
    daemon.wait_for("loaded Kea lease snapshot");
    daemon.stop();
    std::fs::write(&config, config_text(dir.path(), 3)).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_lqd"))
        .arg("--config")
        .arg(&config)
        .output();
    let out = out.expect("lqd runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shards and segment size cannot change"),
        "{err}"
    );
}
