//! Fan-out (issue 5, item 8): 2,000 concurrent Active requestors each receive every one of
//! 20,000 binding changes, in per-client order, none missing, none duplicated, within 60 s
//! (protocol.md S-38, S-40, S-50, S-51; architecture.md, "Fan-out").
//!
//! 1. lqd starts on an empty Kea journal: two shards, two network workers, tick 2 ms.
//! 2. 2,000 requestors connect (from 200 loopback source addresses) and send an
//!    ACTIVELEASEQUERY for all bindings with ORO [LQ_BASE_TIME]; each must get its REPLY
//!    (Success, LQ_BASE_TIME) before any change is written.
//! 3. Phase 1: 20,000 rows for 20,000 distinct clients are appended to the journal in four
//!    writes. Every change is a client's first state, so nothing may be coalesced: every
//!    requestor must see each client exactly once, with the address the row gave it.
//! 4. Phase 2: 500 of those clients are renewed four times (four appends, `expire` one
//!    step later each time). Intermediate states may be coalesced (S-51), but for every
//!    requestor and client the expiries received must strictly increase (per-client order,
//!    no state twice) and the last must be the fourth renewal.
//! 5. Each DATA's state is identified by CLIENT_DATA's CLIENTID, the IAADDR address and
//!    the absolute expiry LQ_BASE_TIME + valid-lifetime, which must equal the row's
//!    `expire` (Unix − 946684800) exactly.
//! 6. After both phases and a quiet half second, SIGTERM: every requestor gets LEASEQUERY-DONE
//!    QueryTerminated as its last frame, then the end of the stream (S-59); lqd exits 0.
//!
//! Phases 1 and 2 together must finish within 60 s of the first append. The delivery time
//! and rates are printed (`--nocapture`). The test profile builds lqd at opt-level 1
//! (Cargo.toml): unoptimised, delivery takes ~90 s. The same checks at 200 requestors ×
//! 4,000 changes run in a second test.
//!
//! Frames are cut with `lqd::wire::FrameDecoder`; DATA options are walked by hand on the hot
//! path and one frame in [`FULL_PARSE_EVERY`] (and every non-DATA frame) is validated in
//! full with `lqd::wire::Message::parse`.

#[path = "common/scrape.rs"]
mod scrape;
mod server_peer;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lqd::wire::{FrameDecoder, Message, MessageType, OptionCode, EPOCH_2000_UNIX};
use server_peer::{free_port, query_frame, Journal, Lqd, Row, Setup, EXPIRE};

/// The size of one run.
#[derive(Clone, Copy, Debug)]
struct Scale {
    /// Concurrent Active requestors.
    requestors: usize,
    /// Distinct clients changed in phase 1 (at most 65,536: addresses 2001:db8:1::1:n).
    clients: usize,
}

impl Scale {
    /// Clients renewed in phase 2: every [`RENEW_EVERY`]-th.
    const fn renewed(&self) -> usize {
        self.clients.div_ceil(RENEW_EVERY)
    }
}

/// The figures: 2,000 requestors × 20,000 changes.
const FULL: Scale = Scale {
    requestors: 2_000,
    clients: 20_000,
};
/// A tenth of the requestors and a fifth of the changes, for every run of the suite.
const SMALL: Scale = Scale {
    requestors: 200,
    clients: 4_000,
};
/// Every `RENEW_EVERY`-th client is renewed in phase 2 …
const RENEW_EVERY: usize = 40;
/// … this many times, …
const RENEWALS: u8 = 4;
/// … its `expire` this much later each time.
const STEP: u32 = 1000;
/// Appends that carry phase 1.
const APPENDS: usize = 4;
/// Loopback source addresses the requestors connect from (127.0.0.2 …).
const SOURCES: usize = 200;
/// Phases 1 and 2 must be delivered within this.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// Every this-many frames one is validated in full.
const FULL_PARSE_EVERY: u64 = 64;
/// Stage of a client not seen yet; stage 1 = its phase-1 state, 2.. = renewals.
const UNSEEN: u8 = 0;
const FINAL_STAGE: u8 = 1 + RENEWALS;

/// Client `n`'s DUID (DUID-LL 02:00:00:nn:nn:nn), as Kea writes it.
fn duid_text(n: usize) -> String {
    let b = u32::try_from(n)
        .expect("client index fits u32")
        .to_be_bytes();
    format!(
        "00:03:00:01:02:00:00:{:02x}:{:02x}:{:02x}",
        b[1], b[2], b[3]
    )
}

/// Client `n`'s address, 2001:db8:1::1:n.
fn address_of(n: usize) -> std::net::Ipv6Addr {
    let n = u16::try_from(n).expect("client index fits u16");
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, n)
}

fn row(n: usize, stage: u8) -> String {
    let mut row = Row::address(&address_of(n).to_string(), &duid_text(n), 1);
    row.expire = EXPIRE + u64::from(stage - 1) * u64::from(STEP);
    row.line()
}

/// Counters every requestor thread bumps; the test thread waits on them.
#[derive(Default)]
struct Progress {
    replied: AtomicUsize,
    /// Requestors that saw every client of phase 1.
    phase1: AtomicUsize,
    /// Requestors that saw every renewed client at [`FINAL_STAGE`].
    phase2: AtomicUsize,
    /// DATA frames with CLIENT_DATA, all requestors together.
    delivered: AtomicUsize,
}

/// What one requestor saw.
#[derive(Debug, Default)]
struct Report {
    index: usize,
    frames: u64,
    bytes: u64,
    keepalives: u64,
    /// Clients seen at least once.
    distinct: usize,
    /// Renewed clients seen at their final stage.
    renewed: usize,
    /// Frames whose stage was not above the last one seen for that client.
    repeated: u64,
    /// DONE's status code, when one came.
    done_status: Option<u16>,
    /// Frames after DONE.
    after_done: u64,
    errors: Vec<String>,
}

impl Report {
    fn error(&mut self, what: String) {
        if self.errors.len() < 8 {
            self.errors.push(what);
        }
    }
}

/// The (code, data) TLVs of `bytes`, or an error text.
fn tlvs(mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::with_capacity(4);
    while !bytes.is_empty() {
        if bytes.len() < 4 {
            return Err(format!("{} stray octets after the options", bytes.len()));
        }
        let code = u16::from_be_bytes([bytes[0], bytes[1]]);
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let data = bytes
            .get(4..4 + len)
            .ok_or_else(|| format!("option {code} of length {len} overruns"))?;
        out.push((code, data));
        bytes = &bytes[4 + len..];
    }
    Ok(out)
}

fn be32(data: &[u8]) -> Result<u32, String> {
    let bytes: [u8; 4] = data
        .get(..4)
        .and_then(|d| d.try_into().ok())
        .ok_or("short u32")?;
    Ok(u32::from_be_bytes(bytes))
}

/// (client index, stage) of a DATA's CLIENT_DATA sent at `base_time`; `clients` known.
fn binding_of(client_data: &[u8], base_time: u32, clients: usize) -> Result<(usize, u8), String> {
    let mut client = None;
    let mut lease = None;
    for (code, data) in tlvs(client_data)? {
        match code {
            1 if data.len() == 10 && data[..7] == [0, 3, 0, 1, 2, 0, 0] => {
                let n = u32::from_be_bytes([0, data[7], data[8], data[9]]);
                client = Some(usize::try_from(n).expect("24 bits fit usize"));
            }
            1 => return Err(format!("CLIENTID {data:02x?} is no test client")),
            5 if data.len() >= 24 => {
                let address: [u8; 16] = data[..16].try_into().expect("16 octets");
                lease = Some((std::net::Ipv6Addr::from(address), be32(&data[20..24])?));
            }
            5 | 26 => return Err(format!("unexpected lease option {code}: {data:02x?}")),
            _ => {}
        }
    }
    let (Some(n), Some((address, valid))) = (client, lease) else {
        return Err("CLIENT_DATA without CLIENTID or IAADDR".to_owned());
    };
    if n >= clients || address != address_of(n) {
        return Err(format!("client {n} with address {address}"));
    }
    let first = u32::try_from(EXPIRE - EPOCH_2000_UNIX).expect("2036 fits u32");
    let offset = base_time.wrapping_add(valid).wrapping_sub(first);
    if !offset.is_multiple_of(STEP) || offset / STEP > u32::from(RENEWALS) {
        return Err(format!(
            "client {n}: BASE_TIME {base_time} + valid {valid} is no expire written"
        ));
    }
    let stage = u8::try_from(offset / STEP).expect("at most RENEWALS") + 1;
    Ok((n, stage))
}

/// One requestor's state while it reads.
struct Seen {
    scale: &'static Scale,
    report: Report,
    /// Highest stage seen per client.
    stage: Vec<u8>,
    replied: bool,
}

impl Seen {
    fn frame(&mut self, frame: &[u8], progress: &Progress) {
        self.report.frames += 1;
        self.report.bytes += 2 + frame.len() as u64;
        let full = frame[0] != 17 || self.report.frames.is_multiple_of(FULL_PARSE_EVERY);
        if full {
            if let Err(e) = Message::parse(frame) {
                self.report
                    .error(format!("frame {frame:02x?} does not parse: {e:?}"));
            }
        }
        if self.report.done_status.is_some() {
            self.report.after_done += 1;
            return;
        }
        let result = match MessageType::from_code(frame[0]) {
            MessageType::LeasequeryReply => self.reply(frame, progress),
            MessageType::LeasequeryData => self.data(frame, progress),
            MessageType::LeasequeryDone => self.done(frame),
            other => Err(format!("unexpected {other:?}")),
        };
        if let Err(e) = result {
            self.report.error(e);
        }
    }

    fn reply(&mut self, frame: &[u8], progress: &Progress) -> Result<(), String> {
        let options = tlvs(&frame[4..])?;
        let codes: Vec<u16> = options.iter().map(|o| o.0).collect();
        if self.replied || codes != [2, 1, 100] {
            return Err(format!(
                "REPLY (a second one: {}) with {codes:?}",
                self.replied
            ));
        }
        self.replied = true;
        progress.replied.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn data(&mut self, frame: &[u8], progress: &Progress) -> Result<(), String> {
        if !self.replied {
            return Err("DATA before REPLY".to_owned());
        }
        let options = tlvs(&frame[4..])?;
        let (base_time, client_data) = match options.as_slice() {
            [(100, base)] => {
                be32(base)?;
                self.report.keepalives += 1;
                return Ok(());
            }
            [(100, base), (45, client_data)] => (be32(base)?, *client_data),
            _ => return Err(format!("DATA with {:?}", options.iter().map(|o| o.0))),
        };
        let (n, stage) = binding_of(client_data, base_time, self.scale.clients)?;
        progress.delivered.fetch_add(1, Ordering::Relaxed);
        let before = self.stage[n];
        if stage <= before {
            self.report.repeated += 1;
            return Err(format!("client {n}: stage {stage} after stage {before}"));
        }
        self.stage[n] = stage;
        if before == UNSEEN {
            self.report.distinct += 1;
            if self.report.distinct == self.scale.clients {
                progress.phase1.fetch_add(1, Ordering::AcqRel);
            }
        }
        if stage == FINAL_STAGE {
            self.report.renewed += 1;
            if self.report.renewed == self.scale.renewed() {
                progress.phase2.fetch_add(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    fn done(&mut self, frame: &[u8]) -> Result<(), String> {
        let options = tlvs(&frame[4..])?;
        let status = options.iter().find(|o| o.0 == 13).map(|o| o.1);
        let code = status
            .and_then(|s| s.get(..2))
            .map(|c| u16::from_be_bytes([c[0], c[1]]));
        self.report.done_status = Some(code.unwrap_or(0));
        Ok(())
    }
}

/// Send the Active query, then read until lqd closes the connection.
fn requestor(
    scale: &'static Scale,
    index: usize,
    mut stream: TcpStream,
    progress: &Progress,
) -> Report {
    let xid = u32::try_from(index + 1).expect("xid fits");
    let query = query_frame(
        MessageType::ActiveLeasequery,
        xid,
        None,
        &[OptionCode::LqBaseTime],
        None,
    );
    let mut seen = Seen {
        scale,
        report: Report {
            index,
            ..Report::default()
        },
        stage: vec![UNSEEN; scale.clients],
        replied: false,
    };
    if let Err(e) = std::io::Write::write_all(&mut stream, &query) {
        seen.report.error(format!("sending the query: {e}"));
        return seen.report;
    }
    let mut decoder = FrameDecoder::new(u16::MAX);
    loop {
        match stream.read(decoder.spare()) {
            Ok(0) => break,
            Ok(n) => decoder.commit(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                seen.report.error(format!("read: {e}"));
                break;
            }
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => seen.frame(frame, progress),
                Ok(None) => break,
                Err(e) => {
                    seen.report.error(format!("framing: {e:?}"));
                    return seen.report;
                }
            }
        }
    }
    seen.report
}

/// Connect requestor `index` from its loopback source address and start its thread.
fn spawn_requestor(
    scale: &'static Scale,
    index: usize,
    port: u16,
    progress: &Arc<Progress>,
) -> JoinHandle<Report> {
    let source = Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(index % SOURCES).expect("< 200"));
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind a loopback source");
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    socket
        .connect_timeout(&server.into(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("requestor {index} connects: {e}"));
    let stream = TcpStream::from(socket);
    let progress = Arc::clone(progress);
    std::thread::Builder::new()
        .name(format!("requestor-{index}"))
        .stack_size(256 * 1024)
        .spawn(move || requestor(scale, index, stream, &progress))
        .expect("spawn a requestor thread")
}

/// A running fan-out: lqd, its journal, the scale and the requestors' counters.
struct Run {
    scale: &'static Scale,
    lqd: Lqd,
    journal: Journal,
    progress: Arc<Progress>,
}

impl Run {
    /// Wait until `counter` reaches the number of requestors by `deadline`; panics with
    /// `what` and the progress so far.
    fn wait_all(&self, counter: &AtomicUsize, what: &str, deadline: Instant) {
        let p = &self.progress;
        let want = self.scale.requestors;
        while counter.load(Ordering::Acquire) < want {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} of {want} requestors got there; replies {}, phase 1 {}, \
                 phase 2 {}, DATA delivered {}\nlqd log:\n{}",
                counter.load(Ordering::Acquire),
                p.replied.load(Ordering::Acquire),
                p.phase1.load(Ordering::Acquire),
                p.phase2.load(Ordering::Acquire),
                p.delivered.load(Ordering::Acquire),
                self.lqd.tail()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Append phase 1 (every client once) and phase 2 (the renewals); the instants each
    /// phase was complete for every requestor.
    fn inject(&self) -> (Instant, Instant, Instant) {
        let clients = self.scale.clients;
        let start = Instant::now();
        let deadline = start + DELIVERY_LIMIT;
        for part in 0..APPENDS {
            let rows: String = (part * clients / APPENDS..(part + 1) * clients / APPENDS)
                .map(|n| row(n, 1))
                .collect();
            self.journal.append(&rows);
        }
        self.wait_all(&self.progress.phase1, "phase 1", deadline);
        let phase1 = Instant::now();
        for stage in 2..=FINAL_STAGE {
            let rows: String = (0..clients)
                .step_by(RENEW_EVERY)
                .map(|n| row(n, stage))
                .collect();
            self.journal.append(&rows);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_all(&self.progress.phase2, "phase 2", deadline);
        (start, phase1, Instant::now())
    }
}

fn setup(port: u16, metrics: u16, scale: &Scale, extra: &str) -> Setup {
    let mut setup = Setup::new(&format!("127.0.0.1:{port}"));
    setup.metrics = format!("127.0.0.1:{metrics}");
    // Headroom over the requestors: each worker gets connections_max / workers slots and
    // SO_REUSEPORT need not split the connections evenly.
    let connections_max = scale.requestors + scale.requestors / 5;
    setup.server =
        format!("workers = 2\nconnections_max = {connections_max}\ntick_ms = 2\n{extra}");
    setup.capacity = 2 * scale.clients;
    setup.segment_bytes = 4 << 20;
    setup
}

fn check(reports: &[Report], scale: &Scale) {
    let mut failures = Vec::new();
    let (clients, renewed) = (scale.clients, scale.renewed());
    for r in reports {
        let complete = r.distinct == clients && r.renewed == renewed;
        let clean = r.errors.is_empty() && r.repeated == 0 && r.after_done == 0;
        // S-59: DONE with QueryTerminated (11) ends every Active query at shutdown.
        if !complete || !clean || r.done_status != Some(11) {
            failures.push(format!(
                "requestor {}: {} clients of {clients}, {} renewed of {renewed}, \
                 {} repeated, DONE status {:?}, {} frames after DONE, errors {:?}",
                r.index, r.distinct, r.renewed, r.repeated, r.done_status, r.after_done, r.errors
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requestors failed:\n{}",
        failures.len(),
        reports.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

fn print_figures(reports: &[Report], scale: &Scale, times: (Instant, Instant, Instant)) {
    let (start, phase1, phase2) = times;
    let Scale {
        requestors,
        clients,
    } = *scale;
    let frames: u64 = reports.iter().map(|r| r.frames).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let keepalives: u64 = reports.iter().map(|r| r.keepalives).sum();
    let (p1, total) = (phase1 - start, phase2 - start);
    let phase1_frames = (requestors * clients) as u64;
    eprintln!(
        "fan-out: {requestors} requestors × {clients} changes: phase 1 delivered in {:.2} s \
         ({:.2} M DATA/s); phase 2 ({} clients × {RENEWALS} renewals) done {:.2} s later; \
         total {:.2} s",
        p1.as_secs_f64(),
        phase1_frames as f64 / p1.as_secs_f64() / 1e6,
        scale.renewed(),
        (phase2 - phase1).as_secs_f64(),
        total.as_secs_f64()
    );
    let least = requestors * scale.renewed();
    eprintln!(
        "fan-out: {frames} frames, {:.1} MB received ({:.1} MB/s over the total), \
         {keepalives} keepalives, {} renewal DATA (from {least} if every requestor got only \
         the last state to {} if none was coalesced)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / total.as_secs_f64(),
        frames - phase1_frames - 2 * requestors as u64 - keepalives,
        least * usize::from(RENEWALS),
    );
}

/// The zero-copy fan-out (architecture.md, "Fan-out" 2): bodies are built once per worker
/// and second and shared by the connections sending them; sends are batched.
fn check_sharing(text: &str, scale: &Scale) {
    let bodies = |outcome| scrape::sum(text, "lqd_shared_bodies_total", &[("outcome", outcome)]);
    let (built, shared, copied) = (bodies("built"), bodies("shared"), bodies("copied"));
    let frames = scrape::sum(text, "lqd_frames_sent_total", &[]);
    let enters = scrape::sum(text, "lqd_io_uring_enter_total", &[]);
    let send = |kind| scrape::sum(text, "lqd_send_operations_total", &[("kind", kind)]);
    let steps = scrape::sum(text, "lqd_cursor_steps_shared_total", &[]);
    eprintln!(
        "fan-out: bodies built {built}, shared {shared}, copied {copied}; {frames} frames in \
         {} batch sendmsg + {} plain sends ({} spilled); {enters} io_uring_enter ({:.4} per \
         frame); {steps} cursor steps shared",
        send("batch"),
        send("plain"),
        send("spill"),
        enters / frames
    );
    // Every change goes to every requestor: with the connections split over two workers,
    // a body is built at most once per worker and second and copied only when the arena
    // is full, so shares outnumber builds by far.
    let sends_per_body = (shared + built + copied) / built.max(1.0);
    assert!(
        sends_per_body >= (scale.requestors / 10) as f64,
        "bodies were not shared: built {built}, shared {shared}, copied {copied}"
    );
}

/// (soft, hard) limit on open files of this process, from /proc/self/limits.
fn fd_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(u64::MAX));
    (values.next().expect("soft"), values.next().expect("hard"))
}

/// The requestors' sockets live in this process and lqd inherits its limit: raise the soft
/// limit to the hard one with prlimit(1) (no `unsafe` in tests) when it is too low.
fn ensure_fd_limit(needed: u64) {
    let (soft, hard) = fd_limits();
    if soft < needed && hard >= needed {
        let pid = std::process::id().to_string();
        let _ = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
            .status();
    }
    let (soft, _) = fd_limits();
    assert!(
        soft >= needed,
        "this test needs {needed} open files per process, the limit is {soft} (hard {hard}): \
         raise it (ulimit -n)"
    );
}

/// Run the fan-out at `scale` and check every requestor's report.
fn fan_out(scale: &'static Scale, extra: &str) {
    ensure_fd_limit(scale.requestors as u64 + 1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Journal::create(dir.path(), &[]);
    let (port, metrics) = (free_port(), free_port());
    let lqd = Lqd::start(dir.path(), &journal, &setup(port, metrics, scale, extra));
    let progress = Arc::new(Progress::default());
    let mut run = Run {
        scale,
        lqd,
        journal,
        progress,
    };
    let connect_start = Instant::now();
    let threads: Vec<JoinHandle<Report>> = (0..scale.requestors)
        .map(|i| spawn_requestor(scale, i, port, &run.progress))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    run.wait_all(&run.progress.replied, "REPLY", deadline);
    eprintln!(
        "fan-out: {} Active queries answered in {:.2} s",
        scale.requestors,
        connect_start.elapsed().as_secs_f64()
    );
    let times = run.inject();
    // A quiet moment in which a duplicate would show up (and the workers publish their
    // figures), then shutdown (S-59).
    std::thread::sleep(Duration::from_millis(1100));
    let text = scrape::scrape(metrics);
    let status = run.lqd.terminate(Duration::from_secs(30));
    let reports: Vec<Report> = threads
        .into_iter()
        .map(|t| t.join().expect("requestor thread"))
        .collect();
    print_figures(&reports, scale, times);
    check(&reports, scale);
    check_sharing(&text, scale);
    assert!(status.success(), "lqd exited with {status}");
    let delivery = times.2 - times.0;
    assert!(delivery <= DELIVERY_LIMIT, "delivery took {delivery:?}");
}

/// The fan-out: 2,000 requestors × 20,000 changes within 60 s.
#[test]
fn every_requestor_gets_every_change_once_in_order() {
    fan_out(&FULL, "");
}

/// The same checks at a tenth of the requestors and a fifth of the changes.
#[test]
fn small_fan_out_gets_every_change_once_in_order() {
    fan_out(&SMALL, "");
}

/// The same with every batch copied into its connection's buffer before sending
/// (`vectored_sends = false`): the bodies are still built once per worker.
#[test]
fn small_fan_out_with_copied_sends() {
    fan_out(&SMALL, "vectored_sends = false\n");
}
