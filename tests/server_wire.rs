//! Wire check on a live session (issue 5, item 9): tshark captures lqd's loopback traffic
//! while a requestor runs Bulk and Active queries, and its `dhcpv6.bulk_leasequery`
//! dissector (protocol.md §6.1) must decode every message both ways exactly as sent.
//!
//! 1. tshark captures `tcp port N` on `lo` (started first; the test waits for "Capture
//!    started"); lqd serves 127.0.0.1:N with Active enabled over plain TCP and
//!    ACTIVE_LQ_IDLE_TIMEOUT shortened to 1 s.
//! 2. The session, on four connections: Bulk queries for all bindings (D-3) with relay data,
//!    by relay-id, and by an unknown client-id (a lone REPLY); an Active query for all
//!    bindings with LQ_START_TIME (catch-up of the rows appended after that time, then DATA
//!    CatchUpComplete, S-52, S-53); an Active query filtered by link-address with relay data
//!    and a start time before the horizon (REPLY DataMissing, S-54); an Active query by
//!    client-id without ORO; rows appended while they stream (live DATA, including a
//!    released prefix); keepalives after a second of silence, with LQ_BASE_TIME and, without
//!    ORO, empty (S-58); SIGTERM (DONE QueryTerminated, then close, S-59). The requestor
//!    checks each of these on its side too.
//! 3. tshark reads the capture with `-d tcp.port==N,dhcpv6.bulk_leasequery`. Per connection
//!    and direction, the messages tshark reassembles must be the frames the requestor sent
//!    and received, one for one: message-size, type, xid, every option code in tree order,
//!    DUIDs, status codes, IAADDR and IAPREFIX values, LQ_QUERY type and link-address, ORO
//!    codes, CLT_TIME and the LQ_RELAY_DATA peer address — expected values computed from
//!    the bytes the requestor sent and received, with a TLV walk independent of lqd's codec.
//! 4. Every expert info of severity note or above must be a known quirk of protocol.md
//!    §6.1, where expected: "Message Type 22 not allowed" per ACTIVELEASEQUERY, "Malformed
//!    Packet" per message without options, "Trailing stray characters" per LQ_RELAY_DATA;
//!    never `dhcpv6.malformed_option`. TCP's own notes on FIN segments ("This frame
//!    initiates/undergoes the connection closing") are allowed.
//!
//! tshark must be able to capture on `lo` (root, as in CI). Without tshark the test fails,
//! unless `LQD_SKIP_TSHARK=1` (the convention of tests/wire_tshark.rs).

mod server_peer;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lqd::wire::build::{LqQueryOut, QueryOut};
use lqd::wire::{MessageType, OptionCode, StatusCode, EPOCH_2000_UNIX};
use server_peer::{
    ends_with_done, hex, kind, query_frame, relay_context, Journal, Lqd, Requestor, Row, Setup,
    EXPIRE,
};

const TSHARK: &str = "tshark";
const RELAY_1_OPTIONS: &str =
    "0012000867652D302F302F310025000B0000118B636D2D303030310035000A000300010A0B0C0D0E01";
const RELAY_2_OPTIONS: &str =
    "0012000867652D302F302F320025000B0000118B636D2D303030320035000A000300010A0B0C0D0E02";
const RELAY_1_DUID: [u8; 10] = [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x01];
const LINK_2: &str = "2001:db8:2::1";
const A: &str = "00:03:00:01:02:00:00:00:00:0a";
const B: &str = "00:03:00:01:02:00:00:00:00:0b";
const C: &str = "00:03:00:01:02:00:00:00:00:0c";
const D: &str = "00:03:00:01:02:00:00:00:00:0d";
const E: &str = "00:03:00:01:02:00:00:00:00:0e";
const READ_LIMIT: Duration = Duration::from_secs(10);
/// tshark's expert severities (`_ws.expert.severity`): PI_NOTE; PI_CHAT is below it.
const SEVERITY_NOTE: u32 = 0x0040_0000;

fn relayed(mut row: Row, options: &str, peer: &str) -> Row {
    row.user_context = relay_context(LINK_2, peer, options);
    row
}

fn relay_1(row: Row) -> Row {
    relayed(row, RELAY_1_OPTIONS, "fe80::200:ff:fe00:1001")
}

fn relay_2(row: Row) -> Row {
    relayed(row, RELAY_2_OPTIONS, "fe80::200:ff:fe00:1002")
}

/// A direct, B relayed with an address and a prefix, C relayed: the journal at start.
fn initial_rows() -> Vec<Row> {
    vec![
        Row::address("2001:db8:1::a", A, 1),
        relay_1(Row::address("2001:db8:2::b", B, 2)),
        relay_1(Row::prefix("2001:db8:9::", 56, B, 2)),
        relay_1(Row::address("2001:db8:2::c", C, 2)),
    ]
}

/// tshark capturing `tcp port {port}` on `lo` into a file.
struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    fn start(dir: &Path, port: u16) -> Self {
        let path = dir.join("session.pcapng");
        let mut child = Command::new(TSHARK)
            .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-q"])
            .arg("-w")
            .arg(&path)
            .args(["-a", "duration:120"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tshark");
        let stderr = child.stderr.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let started = || {
            lines
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains("Capture started"))
        };
        while !(started() && path.exists()) {
            let exited = child.try_wait().expect("wait");
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "tshark could not capture on lo ({exited:?}); this test needs root or \
                     capture rights (CI runs as root). tshark said:\n{}",
                    lines.lock().expect("lock").join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The capture filter is installed; let the first packets find it running.
        std::thread::sleep(Duration::from_millis(500));
        Self { child, path }
    }

    /// Stop the capture with SIGINT (tshark then flushes and closes the file).
    fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(300));
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "tshark did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.path.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether tshark runs; without it the test fails unless `LQD_SKIP_TSHARK=1`.
fn tshark_available() -> bool {
    let ok = Command::new(TSHARK)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    if std::env::var_os("LQD_SKIP_TSHARK").is_some_and(|v| v == "1") {
        eprintln!("skipping the live wire check: no tshark; LQD_SKIP_TSHARK=1 is set");
        return false;
    }
    panic!("this test needs tshark (`apt-get install tshark`, as .ci/run does)");
}

/// What went over one connection: the local port, frames sent and frames received.
struct Conn {
    name: &'static str,
    port: u16,
    sent: Vec<Vec<u8>>,
    received: Vec<Vec<u8>>,
}

impl Conn {
    fn open(name: &'static str, addr: &str) -> (Self, Requestor) {
        let requestor = Requestor::connect(addr);
        let port = requestor.stream.local_addr().expect("local addr").port();
        let conn = Self {
            name,
            port,
            sent: Vec::new(),
            received: Vec::new(),
        };
        (conn, requestor)
    }

    fn send(&mut self, requestor: &mut Requestor, frame: Vec<u8>) {
        requestor.send(&frame);
        // Kept without the size prefix, like the frames received.
        self.sent.push(frame[2..].to_vec());
    }

    fn read(
        &mut self,
        requestor: &mut Requestor,
        what: &str,
        done: impl FnMut(&[Vec<u8>]) -> bool,
    ) -> Vec<Vec<u8>> {
        let frames = requestor.read_until(what, READ_LIMIT, done);
        self.received.extend(frames.iter().cloned());
        frames
    }
}

fn duid(kea: &str) -> Vec<u8> {
    kea.split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn lq<'q>(query: QueryOut<'q>, link: &str, oro: &'static [OptionCode]) -> LqQueryOut<'q> {
    LqQueryOut {
        query,
        link_address: link.parse().expect("an address"),
        oro,
    }
}

/// The (code, data) TLVs of `bytes`; panics on a malformed list (lqd's frames are checked
/// by the tests of its codec; here a bad one is a failure too).
fn tlvs(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "stray octets {bytes:02x?}");
        let code = u16::from_be_bytes([bytes[0], bytes[1]]);
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        out.push((code, &bytes[4..4 + len]));
        bytes = &bytes[4 + len..];
    }
    out
}

/// Client DUIDs of the CLIENT_DATA in `frames`, in order.
fn clients(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for frame in frames {
        for (code, data) in tlvs(&frame[4..]) {
            if code == 45 {
                let client = tlvs(data).into_iter().find(|o| o.0 == 1).expect("CLIENTID");
                out.push(client.1.to_vec());
            }
        }
    }
    out
}

/// A DATA with LQ_BASE_TIME only (S-58, D-15).
fn is_keepalive(frame: &[u8]) -> bool {
    let codes: Vec<u16> = tlvs(&frame[4..]).iter().map(|o| o.0).collect();
    frame[0] == 17 && codes == [100]
}

fn has_status(frame: &[u8], code: StatusCode) -> bool {
    kind(frame).1 == Some(code)
}

/// Bulk queries on one connection (S-12): all bindings, by relay-id, an unknown client.
fn bulk_session(addr: &str) -> Conn {
    let (mut conn, mut r) = Conn::open("bulk", addr);
    let relay = &[OptionCode::LqRelayData];
    let base = &[OptionCode::LqBaseTime];
    let all = lq(QueryOut::LinkAddress, "::", relay);
    conn.send(
        &mut r,
        query_frame(MessageType::Leasequery, 1, Some(all), base, None),
    );
    let frames = conn.read(&mut r, "bulk all", ends_with_done);
    let mut got = clients(&frames);
    got.sort();
    assert_eq!(got, [duid(A), duid(B), duid(C)], "all bindings (D-3)");
    let by_relay = lq(QueryOut::RelayId(&RELAY_1_DUID), "::", &[]);
    conn.send(
        &mut r,
        query_frame(MessageType::Leasequery, 2, Some(by_relay), base, None),
    );
    let frames = conn.read(&mut r, "bulk by relay-id", ends_with_done);
    assert_eq!(clients(&frames).len(), 2, "B and C share relay 1");
    let unknown = duid("00:03:00:01:02:00:00:00:99:99");
    let by_client = lq(QueryOut::ClientId(&unknown), "::", &[]);
    conn.send(
        &mut r,
        query_frame(MessageType::Leasequery, 3, Some(by_client), &[], None),
    );
    let frames = conn.read(&mut r, "bulk unknown client", |f| !f.is_empty());
    assert_eq!(
        kind(&frames[0]),
        (MessageType::LeasequeryReply, None, false)
    );
    conn
}

/// Server time now (seconds since 2000, RFC 7653 §2).
fn server_now() -> u32 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    u32::try_from(unix - EPOCH_2000_UNIX).expect("before 2136")
}

/// An Active query for all bindings from `since`: catch-up, then CatchUpComplete.
fn catch_up(addr: &str, journal: &Journal) -> (Conn, Requestor, u32) {
    // Rows after `since` are what the catch-up must deliver (S-52, S-56).
    std::thread::sleep(Duration::from_millis(1100));
    let since = server_now();
    let mut renewed_a = Row::address("2001:db8:1::a", A, 1);
    renewed_a.expire = EXPIRE + 1000;
    journal.append(&(renewed_a.line() + &relay_2(Row::address("2001:db8:2::d", D, 2)).line()));
    std::thread::sleep(Duration::from_millis(500));
    let (mut conn, mut r) = Conn::open("active all", addr);
    let base = &[OptionCode::LqBaseTime];
    let query = query_frame(MessageType::ActiveLeasequery, 0x10, None, base, Some(since));
    conn.send(&mut r, query);
    let frames = conn.read(&mut r, "catch-up", |f| {
        f.last()
            .is_some_and(|l| has_status(l, StatusCode::CatchUpComplete))
    });
    let mut caught = clients(&frames);
    caught.sort();
    assert_eq!(caught, [duid(A), duid(D)], "catch-up since {since}");
    (conn, r, since)
}

/// An Active query on link 2 with relay data from before the horizon: DataMissing (S-54).
fn data_missing(addr: &str, since: u32) -> (Conn, Requestor) {
    let (mut conn, mut r) = Conn::open("active link 2", addr);
    let filter = lq(QueryOut::LinkAddress, LINK_2, &[OptionCode::LqRelayData]);
    let start = Some(since - 86_400);
    let query = query_frame(
        MessageType::ActiveLeasequery,
        0x20,
        Some(filter),
        &[OptionCode::LqBaseTime],
        start,
    );
    conn.send(&mut r, query);
    let frames = conn.read(&mut r, "DataMissing", |f| !f.is_empty());
    let reply = (
        MessageType::LeasequeryReply,
        Some(StatusCode::DataMissing),
        true,
    );
    assert_eq!(kind(&frames[0]), reply);
    (conn, r)
}

/// An Active query for client A without ORO: its keepalives carry no option at all, which
/// tshark flags as malformed (the empty-message quirk of §6.1).
fn bare(addr: &str) -> (Conn, Requestor) {
    let (mut conn, mut r) = Conn::open("active bare", addr);
    let a = duid(A);
    let filter = lq(QueryOut::ClientId(&a), "::", &[]);
    let query = query_frame(MessageType::ActiveLeasequery, 0x30, Some(filter), &[], None);
    conn.send(&mut r, query);
    let frames = conn.read(&mut r, "bare REPLY", |f| !f.is_empty());
    assert_eq!(
        kind(&frames[0]),
        (MessageType::LeasequeryReply, None, false)
    );
    (conn, r)
}

/// The Active part: catch-up, DataMissing, live changes, keepalives, shutdown.
fn active_session(addr: &str, journal: &Journal, lqd: &mut Lqd) -> [Conn; 3] {
    let (mut all, mut r_all, since) = catch_up(addr, journal);
    let (mut link, mut r_link) = data_missing(addr, since);
    let (mut bare, mut r_bare) = bare(addr);
    // Live: E appears on link 2, B's prefix is released (valid_lifetime 0).
    let mut released = relay_1(Row::prefix("2001:db8:9::", 56, B, 2));
    released.valid = 0;
    journal.append(&(relay_2(Row::address("2001:db8:2::e", E, 2)).line() + &released.line()));
    for (conn, r) in [(&mut all, &mut r_all), (&mut link, &mut r_link)] {
        let frames = conn.read(r, "live", |f| clients(f).len() >= 2);
        let mut live = clients(&frames);
        live.sort();
        assert_eq!(live, [duid(B), duid(E)], "{}: live changes", conn.name);
    }
    // S-58: a keepalive (DATA without CLIENT_DATA or status) after a second of silence.
    all.read(&mut r_all, "keepalive", |f| {
        f.last().is_some_and(|l| is_keepalive(l))
    });
    bare.read(&mut r_bare, "bare keepalive", |f| {
        f.last().is_some_and(|l| l.len() == 4)
    });
    let status = lqd.terminate(Duration::from_secs(10));
    assert!(status.success(), "lqd exited with {status}");
    let conns = [
        (&mut all, &mut r_all),
        (&mut link, &mut r_link),
        (&mut bare, &mut r_bare),
    ];
    for (conn, r) in conns {
        let frames = conn.read(r, "shutdown", |_| false);
        let last = frames.last().map(|f| kind(f));
        let done = (
            MessageType::LeasequeryDone,
            Some(StatusCode::QueryTerminated),
            true,
        );
        assert_eq!(last, Some(done), "{}: S-59", conn.name);
    }
    [all, link, bare]
}

/// Per-message fields tshark prints, in column order; each cell holds the values of every
/// message that completes in the packet, joined by ','.
const COLUMNS: [&str; 19] = [
    "dhcpv6.bulk_leasequery.size",
    "dhcpv6.bulk_leasequery.msgtype",
    "dhcpv6.bulk_leasequery.reserved",
    "dhcpv6.bulk_leasequery.trans_id",
    "dhcpv6.option.type",
    "dhcpv6.duid.bytes",
    "dhcpv6.status_code",
    "dhcpv6.iaaddr.ip",
    "dhcpv6.iaaddr.pref_lifetime",
    "dhcpv6.iaaddr.valid_lifetime",
    "dhcpv6.iaprefix.pref_addr",
    "dhcpv6.iaprefix.pref_len",
    "dhcpv6.iaprefix.pref_lifetime",
    "dhcpv6.iaprefix.valid_lifetime",
    "dhcpv6.lq_query",
    "dhcpv6.lq_query_link_address",
    "dhcpv6.requested_option_code",
    "dhcpv6.clt_time",
    "dhcpv6.lq_relay_data_peer_addr",
];

/// Column index in [`COLUMNS`].
#[derive(Clone, Copy)]
enum Col {
    Size,
    MsgType,
    Reserved,
    TransId,
    OptionType,
    Duid,
    Status,
    AddrIp,
    AddrPreferred,
    AddrValid,
    PrefixIp,
    PrefixLen,
    PrefixPreferred,
    PrefixValid,
    QueryType,
    QueryLink,
    Requested,
    CltTime,
    RelayPeer,
}

fn be32(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[..4].try_into().expect("4 octets"))
}

fn ip(data: &[u8]) -> String {
    let octets: [u8; 16] = data[..16].try_into().expect("16 octets");
    Ipv6Addr::from(octets).to_string()
}

fn put(out: &mut [Vec<String>], col: Col, value: impl ToString) {
    out[col as usize].push(value.to_string());
}

/// Walk `options` depth first as tshark's tree does, pushing each field's values.
fn walk(options: &[u8], out: &mut [Vec<String>]) {
    for (code, data) in tlvs(options) {
        put(out, Col::OptionType, code);
        match code {
            1 | 2 | 53 => put(out, Col::Duid, hex(data)),
            13 => put(out, Col::Status, u16::from_be_bytes([data[0], data[1]])),
            6 => {
                for pair in data.chunks(2) {
                    put(out, Col::Requested, u16::from_be_bytes([pair[0], pair[1]]));
                }
            }
            46 => put(out, Col::CltTime, be32(data)),
            // tshark shows the relay message as a string, not as options (§6.1).
            47 => put(out, Col::RelayPeer, ip(data)),
            5 => {
                put(out, Col::AddrIp, ip(data));
                put(out, Col::AddrPreferred, be32(&data[16..]));
                put(out, Col::AddrValid, be32(&data[20..]));
                walk(&data[24..], out);
            }
            26 => {
                put(out, Col::PrefixPreferred, be32(data));
                put(out, Col::PrefixValid, be32(&data[4..]));
                put(out, Col::PrefixLen, data[8]);
                put(out, Col::PrefixIp, ip(&data[9..]));
                walk(&data[25..], out);
            }
            44 => {
                put(out, Col::QueryType, data[0]);
                put(out, Col::QueryLink, ip(&data[1..]));
                walk(&data[17..], out);
            }
            45 => walk(data, out),
            _ => {}
        }
    }
}

/// The values tshark must show for one message (`frame` without its size prefix).
fn expected_fields(frame: &[u8]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); COLUMNS.len()];
    let xid = u32::from_be_bytes([0, frame[1], frame[2], frame[3]]);
    put(&mut out, Col::Size, frame.len());
    put(&mut out, Col::MsgType, frame[0]);
    // tshark shows the xid as a 1-octet "Reserved" and a 16-bit "Transaction ID" (§6.1).
    put(&mut out, Col::Reserved, xid >> 16);
    put(&mut out, Col::TransId, xid & 0xffff);
    walk(&frame[4..], &mut out);
    out
}

/// Known quirks of protocol.md §6.1 a message raises: [bad message type, malformed packet,
/// trailing stray characters].
fn expected_experts(frame: &[u8]) -> [usize; 3] {
    let mut fields = vec![Vec::new(); COLUMNS.len()];
    walk(&frame[4..], &mut fields);
    [
        usize::from(matches!(frame[0], 7 | 22 | 23)),
        usize::from(frame.len() == 4),
        fields[Col::RelayPeer as usize].len(),
    ]
}

/// Run tshark on `pcap` with the leasequery dissector on `port`; one row of `fields` per
/// packet (all occurrences joined by ','), after `frame.number`.
fn tshark_fields(
    pcap: &Path,
    port: u16,
    filter: Option<&str>,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let decode_as = format!("tcp.port=={port},dhcpv6.bulk_leasequery");
    let mut args = vec!["-n", "-d", &decode_as, "-T", "fields", "-E", "separator=/t"];
    args.extend([
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-e",
        "frame.number",
    ]);
    for field in fields {
        args.extend(["-e", field]);
    }
    if let Some(filter) = filter {
        args.extend(["-Y", filter]);
    }
    let output = Command::new(TSHARK)
        .arg("-r")
        .arg(pcap)
        .args(&args)
        .output()
        .expect("run tshark");
    assert!(
        output.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    text.lines()
        .map(|line| {
            let cells: Vec<String> = line.split('\t').map(str::to_owned).collect();
            assert_eq!(
                cells.len(),
                fields.len() + 1,
                "one cell per field: {line:?}"
            );
            cells
        })
        .collect()
}

fn items(cell: &str) -> Vec<&str> {
    if cell.is_empty() {
        Vec::new()
    } else {
        cell.split(',').collect()
    }
}

/// The messages of one direction of one connection, consumed as tshark reports them.
struct Stream<'c> {
    name: String,
    frames: std::collections::VecDeque<&'c Vec<u8>>,
}

/// Compare every packet's message fields with the frames the requestor sent and got;
/// returns the mismatches and the known-quirk counts expected per frame number.
fn check_fields(
    pcap: &Path,
    port: u16,
    conns: &[Conn],
) -> (Vec<String>, BTreeMap<u32, [usize; 3]>) {
    let mut streams: BTreeMap<(u16, u16), Stream<'_>> = BTreeMap::new();
    for c in conns {
        let name = |dir: &str| format!("{} {dir}", c.name);
        let to_server = Stream {
            name: name("requestor → lqd"),
            frames: c.sent.iter().collect(),
        };
        let to_requestor = Stream {
            name: name("lqd → requestor"),
            frames: c.received.iter().collect(),
        };
        streams.insert((c.port, port), to_server);
        streams.insert((port, c.port), to_requestor);
    }
    let mut fields = vec!["tcp.srcport", "tcp.dstport"];
    fields.extend(COLUMNS);
    let mut errors = Vec::new();
    let mut quirks = BTreeMap::new();
    for row in tshark_fields(pcap, port, None, &fields) {
        let frame_number: u32 = row[0].parse().expect("a frame number");
        let ports = (row[1].parse().expect("port"), row[2].parse().expect("port"));
        let Some(stream) = streams.get_mut(&ports) else {
            errors.push(format!(
                "frame {frame_number}: packet of an unknown connection {ports:?}"
            ));
            continue;
        };
        let count = items(&row[3]).len();
        let mut expected = vec![Vec::new(); COLUMNS.len()];
        let mut known = [0; 3];
        for _ in 0..count {
            let Some(frame) = stream.frames.pop_front() else {
                errors.push(format!(
                    "frame {frame_number}: {}: more messages than sent",
                    stream.name
                ));
                break;
            };
            for (all, one) in expected.iter_mut().zip(expected_fields(frame)) {
                all.extend(one);
            }
            for (k, n) in known.iter_mut().zip(expected_experts(frame)) {
                *k += n;
            }
        }
        quirks.insert(frame_number, known);
        for ((name, actual), expected) in COLUMNS.iter().zip(&row[3..]).zip(&expected) {
            if *actual != expected.join(",") {
                errors.push(format!(
                    "frame {frame_number} ({}): {name}: tshark {actual:?}, sent {:?}",
                    stream.name,
                    expected.join(",")
                ));
            }
        }
    }
    for stream in streams.values() {
        if !stream.frames.is_empty() {
            errors.push(format!(
                "{}: tshark decoded {} messages fewer",
                stream.name,
                stream.frames.len()
            ));
        }
    }
    (errors, quirks)
}

/// Frames with a malformed option, a malformed packet or an expert info of note or above.
const EXPERT_FILTER: &str =
    "dhcpv6.malformed_option || _ws.malformed || _ws.expert.severity >= note";
/// Severity; the three known quirks; what must never appear; TCP's notes on a FIN (tshark
/// 4.0: "This frame initiates/undergoes the connection closing", allowed anywhere); the
/// messages, for the failure text.
const EXPERT_FIELDS: [&str; 8] = [
    "_ws.expert.severity",
    "dhcpv6.bulk_leasequery.bad_msg_type",
    "_ws.malformed.expert",
    "_ws.string.trailing_stray_characters",
    "dhcpv6.malformed_option",
    "tcp.connection.fin_active",
    "tcp.connection.fin_passive",
    "_ws.expert.message",
];

/// Counts of [expert infos >= note other than TCP's FIN notes, the known quirks …,
/// malformed options] in one row of [`EXPERT_FIELDS`].
fn expert_counts(cells: &[String]) -> Vec<usize> {
    let severities = items(&cells[1]).into_iter().map(|s| s.parse::<u32>());
    let noted = severities
        .filter(|s| *s.as_ref().expect("a number") >= SEVERITY_NOTE)
        .count();
    let fin_notes = items(&cells[6]).len() + items(&cells[7]).len();
    std::iter::once(noted.saturating_sub(fin_notes))
        .chain(cells[2..6].iter().map(|c| items(c).len()))
        .collect()
}

/// Every expert info of severity note or above must be a known quirk, where expected.
fn check_experts(pcap: &Path, port: u16, quirks: &BTreeMap<u32, [usize; 3]>) -> Vec<String> {
    let rows = tshark_fields(pcap, port, Some(EXPERT_FILTER), &EXPERT_FIELDS);
    let mut errors = Vec::new();
    for (&frame_number, known) in quirks {
        let row = rows.iter().find(|r| r[0] == frame_number.to_string());
        let expected: Vec<usize> = std::iter::once(known.iter().sum())
            .chain(known.iter().copied())
            .chain([0])
            .collect();
        let actual = row.map_or(vec![0; 5], |cells| expert_counts(cells));
        if actual != expected {
            let messages = row.map_or("", |r| r[8].as_str());
            errors.push(format!(
                "frame {frame_number}: [expert infos >= note, {}]: tshark {actual:?}, expected \
                 {expected:?} ({messages})",
                EXPERT_FIELDS[1..5].join(", ")
            ));
        }
    }
    errors
}

#[test]
fn tshark_decodes_a_live_session() {
    if !tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Journal::create(dir.path(), &initial_rows());
    let port = server_peer::free_port();
    let mut setup = Setup::new(&format!("127.0.0.1:{port}"));
    setup.server += "active_idle_timeout_s = 1\n";
    setup.links.push((2, "2001:db8:2::/64".to_owned()));
    let capture = Capture::start(dir.path(), port);
    let mut lqd = Lqd::start(dir.path(), &journal, &setup);
    let addr = format!("127.0.0.1:{port}");
    let bulk = bulk_session(&addr);
    let [all, link, bare] = active_session(&addr, &journal, &mut lqd);
    let conns = [bulk, all, link, bare];
    let pcap = capture.stop();

    let (mut errors, quirks) = check_fields(&pcap, port, &conns);
    errors.extend(check_experts(&pcap, port, &quirks));
    let messages: usize = conns.iter().map(|c| c.sent.len() + c.received.len()).sum();
    let mut seen = [0; 3];
    for counts in quirks.values() {
        seen.iter_mut().zip(counts).for_each(|(s, c)| *s += c);
    }
    // The session has ACTIVELEASEQUERYs (type 22), empty keepalives and relay data: the
    // check of each quirk is not vacuous.
    assert!(seen.iter().all(|&n| n >= 1), "quirks expected {seen:?}");
    if !errors.is_empty() {
        let keep = std::env::temp_dir().join(format!("lqd-server-wire-{port}.pcapng"));
        let _ = std::fs::copy(&pcap, &keep);
        panic!(
            "tshark disagrees with the session ({} mismatches; capture kept in {}):\n{}",
            errors.len(),
            keep.display(),
            errors.join("\n")
        );
    }
    eprintln!(
        "tshark decoded all {messages} messages of {} connections; known quirks [type 22/23/7 \
         not allowed, empty message, relay string]: {seen:?}",
        conns.len()
    );
}
