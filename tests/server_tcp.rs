//! The `lqd` binary serving leasequery over TCP on loopback (issue 5, first tests):
//!
//! 1. lqd starts on a Kea journal with Active Leasequery enabled over plain TCP.
//! 2. A Bulk query for all bindings (D-3) gets REPLY, DATA, DONE with every client.
//! 3. An Active query gets its REPLY; rows appended to the journal arrive as DATA within
//!    the test's deadline (S-50).
//! 4. SIGTERM ends the Active query with DONE QueryTerminated and LQ_BASE_TIME, then the
//!    connection closes (S-59), and lqd exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::{FrameDecoder, Message, MessageType, Opt, OptionCode, StatusCode, Xid};

const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";
const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

fn row(n: u32) -> String {
    let duid = format!("00:03:00:01:02:00:00:00:00:{n:02x}");
    // Expires in 2036: live whatever the test machine's clock says.
    format!("2001:db8:1::{n:x},{duid},4000,2100000000,1,3000,0,1,128,0,0,,,0,,1,0\n")
}

struct Lqd {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Lqd {
    fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, 20, "workers = 2", &[])
    }

    /// Start lqd with a connection cap and `extra` `[server]` lines, behind `wrapper` (e.g.
    /// `prlimit --nofile=…`).
    fn start_with(
        dir: &Path,
        port: u16,
        connections_max: u32,
        extra: &str,
        wrapper: &[&str],
    ) -> Self {
        let config = dir.join("lqd.toml");
        std::fs::write(
            &config,
            format!(
                "[metrics]\nlisten = \"\"\n\
                 [store]\ndata_dir = \"{data}\"\nshards = 2\nsegment_bytes = 1048576\n\
                 segments_max = 8\nclients_max = 1000\naddresses_max = 1000\nprefixes_max = 1000\n\
                 [ingest]\nlease_file = \"{journal}\"\nkea_config = \"\"\nidle_wait_ms = 50\n\
                 [server]\nlisten = \"127.0.0.1:{port}\"\n\
                 connections_max = {connections_max}\n{extra}\n\
                 active_enabled = true\ninsecure_allowed = true\n\
                 server_duid = \"00030001001122334455\"\n\
                 [[links]]\nsubnet_id = 1\nprefix = \"2001:db8:1::/64\"\n",
                data = dir.join("data").display(),
                journal = dir.join("kea-leases6.csv").display()
            ),
        )
        .expect("config");
        let lqd = env!("CARGO_BIN_EXE_lqd");
        let (program, args): (&str, Vec<&str>) = match wrapper.split_first() {
            Some((first, rest)) => (first, rest.iter().copied().chain([lqd]).collect()),
            None => (lqd, Vec::new()),
        };
        let mut child = Command::new(program)
            .args(args)
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .expect("lqd starts");
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let lqd = Self { child, lines };
        lqd.wait_for("serving leasequery");
        lqd.wait_for("loaded Kea lease snapshot");
        // The shard threads apply the snapshot's rows from their queues.
        std::thread::sleep(Duration::from_millis(300));
        lqd
    }

    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("lqd never logged {text:?}");
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "lqd did not exit after SIGTERM");
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn send_query(stream: &mut TcpStream, msg_type: MessageType, xid: u32, lq: Option<LqQueryOut<'_>>) {
    let mut buf = [0u8; 256];
    let n = framed(&mut buf, |w| {
        write_query(
            w,
            &QueryMessage {
                msg_type,
                xid: Xid::new(xid).unwrap(),
                client_id: &REQUESTOR,
                lq_query: lq,
                oro: &[OptionCode::LqBaseTime],
                start_time: None,
                end_time: None,
            },
        )
    })
    .unwrap();
    stream.write_all(&buf[..n]).expect("send query");
}

/// Read frames until `done` says stop or the deadline passes.
fn read_until(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    mut done: impl FnMut(&[Vec<u8>]) -> bool,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut frames = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while !done(&frames) {
        assert!(
            Instant::now() < deadline,
            "timed out; got {} frames",
            frames.len()
        );
        match stream.read(decoder.spare()) {
            Ok(0) => break,
            Ok(n) => {
                decoder.commit(n);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    frames.push(frame.to_vec());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    frames
}

fn kind(frame: &[u8]) -> (MessageType, Option<StatusCode>, bool) {
    let m = Message::parse(frame).unwrap();
    let status = match m.options.find(OptionCode::StatusCode) {
        Some(Opt::Status(s)) => Some(s.code),
        _ => None,
    };
    let base_time = m.options.find(OptionCode::LqBaseTime).is_some();
    (m.msg_type, status, base_time)
}

#[test]
fn bulk_active_and_shutdown_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("kea-leases6.csv");
    std::fs::write(
        &journal,
        format!("{HEADER}\n{}{}{}", row(1), row(2), row(3)),
    )
    .unwrap();
    let port = free_port();
    let mut lqd = Lqd::start(dir.path(), port);

    // Bulk: all bindings (D-3).
    let mut bulk = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let all = LqQueryOut {
        query: QueryOut::LinkAddress,
        link_address: "::".parse().unwrap(),
        oro: &[],
    };
    send_query(&mut bulk, MessageType::Leasequery, 1, Some(all));
    let mut decoder = FrameDecoder::new(u16::MAX);
    let frames = read_until(&mut bulk, &mut decoder, |f| {
        f.last()
            .is_some_and(|l| kind(l).0 == MessageType::LeasequeryDone)
    });
    let kinds: Vec<MessageType> = frames.iter().map(|f| kind(f).0).collect();
    assert_eq!(
        kinds,
        [
            MessageType::LeasequeryReply,
            MessageType::LeasequeryData,
            MessageType::LeasequeryData,
            MessageType::LeasequeryDone
        ]
    );

    // Active: REPLY, then a DATA per appended row.
    let mut active = TcpStream::connect(("127.0.0.1", port)).unwrap();
    send_query(&mut active, MessageType::ActiveLeasequery, 2, None);
    let mut decoder = FrameDecoder::new(u16::MAX);
    let reply = read_until(&mut active, &mut decoder, |f| !f.is_empty());
    assert_eq!(kind(&reply[0]), (MessageType::LeasequeryReply, None, true));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    file.write_all((row(4) + &row(5)).as_bytes()).unwrap();
    let data = read_until(&mut active, &mut decoder, |f| f.len() >= 2);
    assert!(data
        .iter()
        .all(|f| kind(f) == (MessageType::LeasequeryData, None, true)));

    // Shutdown: DONE QueryTerminated with BASE_TIME, then end of stream (S-59).
    let status = lqd.terminate();
    let rest = read_until(&mut active, &mut decoder, |f| {
        f.last()
            .is_some_and(|l| kind(l).0 == MessageType::LeasequeryDone)
    });
    assert_eq!(
        kind(rest.last().unwrap()),
        (
            MessageType::LeasequeryDone,
            Some(StatusCode::QueryTerminated),
            true
        )
    );
    let mut tail = [0u8; 16];
    active
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(active.read(&mut tail).unwrap_or(0), 0, "closed after DONE");
    assert!(status.success(), "lqd exited with {status}");
}

/// CPU seconds a process has used (utime + stime from /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// style.md T13: out of descriptors, lqd pauses accepting instead of spinning on the
/// backlog, and serves again once descriptors are free.
#[test]
fn out_of_descriptors_does_not_spin() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("kea-leases6.csv");
    std::fs::write(&journal, format!("{HEADER}\n{}", row(1))).unwrap();
    let port = free_port();
    // A cap far above what 64 descriptors allow: accept itself runs out (EMFILE).
    let lqd = Lqd::start_with(
        dir.path(),
        port,
        1000,
        "workers = 2",
        &["prlimit", "--nofile=64:64"],
    );
    let pid = lqd.child.id();
    let mut held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    lqd.wait_for("pausing accepts");
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.5,
        "lqd used {used:.2} s of CPU in 2 s while out of descriptors"
    );
    held.clear();
    std::thread::sleep(Duration::from_millis(500));
    let mut bulk = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let all = LqQueryOut {
        query: QueryOut::LinkAddress,
        link_address: "::".parse().unwrap(),
        oro: &[],
    };
    send_query(&mut bulk, MessageType::Leasequery, 9, Some(all));
    let mut decoder = FrameDecoder::new(u16::MAX);
    let frames = read_until(&mut bulk, &mut decoder, |f| !f.is_empty());
    assert_eq!(
        kind(&frames[0]).0,
        MessageType::LeasequeryReply,
        "serving again"
    );
}

fn bulk_all(stream: &mut TcpStream, xid: u32) -> Vec<Vec<u8>> {
    let all = LqQueryOut {
        query: QueryOut::LinkAddress,
        link_address: "::".parse().unwrap(),
        oro: &[],
    };
    send_query(stream, MessageType::Leasequery, xid, Some(all));
    let mut decoder = FrameDecoder::new(u16::MAX);
    read_until(stream, &mut decoder, |f| {
        f.last()
            .is_some_and(|l| matches!(kind(l).0, MessageType::LeasequeryDone))
    })
}

/// S-11: at the cap, a connection that answered its query and then idled for
/// ACTIVE_LQ_IDLE_TIMEOUT is closed to admit a new requestor; a fresh one is not.
#[test]
fn idle_connection_makes_room_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("kea-leases6.csv");
    std::fs::write(&journal, format!("{HEADER}\n{}", row(1))).unwrap();
    let port = free_port();
    let lqd = Lqd::start_with(
        dir.path(),
        port,
        2,
        "active_idle_timeout_s = 1\nworkers = 1",
        &[],
    );
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(
        bulk_all(&mut idle, 1).len(),
        2,
        "REPLY with the binding, DONE"
    );
    let mut busy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    send_query(&mut busy, MessageType::ActiveLeasequery, 2, None);
    // Right away the cap holds: a third connection is closed at once (S-8).
    let mut early = TcpStream::connect(("127.0.0.1", port)).unwrap();
    early
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(early.read(&mut [0u8; 8]).unwrap_or(0), 0);
    // After the idle timeout the idle connection makes room.
    std::thread::sleep(Duration::from_millis(1_300));
    let mut late = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(
        bulk_all(&mut late, 3).len(),
        2,
        "the new requestor is served"
    );
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        idle.read(&mut [0u8; 8]).unwrap_or(0),
        0,
        "the idle one was closed"
    );
    drop(lqd);
}
