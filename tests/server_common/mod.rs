//! The harness of the server tests: the real `lqd` binary on 127.0.0.1 with a temporary
//! configuration, data directory and Kea journal (kea.md §3, §13), requestor connections
//! that send framed queries (protocol.md §2.1) and decode the answers into owned summaries.
//!
//! Every test gets its own directory and port, so tests run in parallel. Changes reach lqd
//! the production way: rows appended to the journal it tails.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::{FrameDecoder, Message, MessageType, Opt, OptionCode, StatusCode, Xid};

/// Kea 2.1 … 2.3.7 header (17 columns, kea.md §3).
pub const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";
/// The requestor's DUID-LL 00:aa:bb:cc:dd:ee (protocol.md §2.7).
pub const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
/// The configured server DUID-LL 00:11:22:33:44:55.
pub const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];
/// Relay options of kea.md §6/§13: INTERFACE_ID `ge-0/0/1`, REMOTE_ID 4491 `cm-0001`,
/// RELAY_ID DUID-LL 0a:0b:0c:0d:0e:01.
pub const RELAY_OPTIONS: &str =
    "0x0012000867652D302F302F310025000B0000118B636D2D303030310035000A000300010A0B0C0D0E01";
/// The relay DUID inside [`RELAY_OPTIONS`].
pub const RELAY_ID: [u8; 10] = [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x01];
/// The REMOTE_ID option data inside [`RELAY_OPTIONS`]: enterprise 4491 and `cm-0001`.
pub const REMOTE_ID: [u8; 11] = [0, 0, 0x11, 0x8b, b'c', b'm', b'-', b'0', b'0', b'0', b'1'];

/// Seconds from the Unix epoch to the DHCPv6 epoch (protocol.md §1.5).
const EPOCH_2000_UNIX: u64 = 946_684_800;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Server time now as the test sees it (2000 epoch, protocol.md §1.5).
pub fn server_now() -> u32 {
    u32::try_from(unix_now() - EPOCH_2000_UNIX).expect("before 2136")
}

/// The DUID-LL of test client `n`: 00:03:00:01:02:00:00:00:hi:lo.
pub fn duid(n: u16) -> Vec<u8> {
    let [hi, lo] = n.to_be_bytes();
    vec![0, 3, 0, 1, 2, 0, 0, 0, hi, lo]
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One Kea lease6 row (kea.md §4, §5), expiring `valid` seconds after it is written.
#[derive(Clone, Debug)]
pub struct Row {
    /// Address, or prefix base address for a PD row.
    pub address: String,
    /// The client's DUID.
    pub duid: Vec<u8>,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// Preferred lifetime, seconds.
    pub pref: u32,
    /// Kea subnet id.
    pub subnet: u32,
    /// 0 = NA, 2 = PD.
    pub lease_type: u8,
    /// 128 for NA.
    pub prefix_len: u8,
    /// Kea's hostname column (escaped form).
    pub hostname: String,
    /// Kea's user_context column (escaped form, kea.md §4).
    pub user_context: String,
}

impl Row {
    /// An NA lease of client `n` at `address` on `subnet` (valid 4000 s, preferred 3000 s).
    pub fn na(n: u16, address: &str, subnet: u32) -> Self {
        Self {
            address: address.to_owned(),
            duid: duid(n),
            valid: 4000,
            pref: 3000,
            subnet,
            lease_type: 0,
            prefix_len: 128,
            hostname: String::new(),
            user_context: String::new(),
        }
    }

    /// A delegated prefix of client `n` (lease_type 2).
    pub fn pd(n: u16, prefix: &str, len: u8, subnet: u32) -> Self {
        Self {
            lease_type: 2,
            prefix_len: len,
            ..Self::na(n, prefix, subnet)
        }
    }

    /// The same row relayed by one relay (Kea 2.2 `ISC.relays`, kea.md §6) whose options
    /// are `options` (`0x` + uppercase hex).
    pub fn relayed(mut self, link: &str, peer: &str, options: &str) -> Self {
        self.user_context = format!(
            "{{ \"ISC\": {{ \"relays\": [ {{ \"hop\": 0&#x2c \"link\": \"{link}\"&#x2c \
             \"options\": \"{options}\"&#x2c \"peer\": \"{peer}\" }} ] }} }}"
        );
        self
    }

    /// The journal line, `expire` = now + valid (so CLTT = now).
    pub fn line(&self) -> String {
        let expire = unix_now() + u64::from(self.valid);
        format!(
            "{},{},{},{expire},{},{},{},1,{},0,0,{},,0,{},1,0\n",
            self.address,
            colon_hex(&self.duid),
            self.valid,
            self.subnet,
            self.pref,
            self.lease_type,
            self.prefix_len,
            self.hostname,
            self.user_context
        )
    }
}

/// Append `rows` to the Kea journal at `journal` in one write, as Kea does (kea.md §7).
pub fn append_rows(journal: &std::path::Path, rows: &[Row]) {
    let text: String = rows.iter().map(Row::line).collect();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(journal)
        .expect("journal");
    file.write_all(text.as_bytes()).expect("append");
}

/// A TCP port free on 127.0.0.1 right now (a clash with another test makes a start retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running lqd process: its stderr, line by line as it comes and all of it so far.
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// Lines of its stderr as they come.
    pub lines: mpsc::Receiver<String>,
    /// Every line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Start the lqd binary with `config`, run by `wrapper` if one is given (e.g. `prlimit`).
pub fn spawn(config: &std::path::Path, wrapper: &[&str]) -> Spawned {
    let lqd = env!("CARGO_BIN_EXE_lqd");
    let (program, args): (&str, Vec<&str>) = match wrapper.split_first() {
        Some((first, rest)) => (first, rest.iter().copied().chain([lqd]).collect()),
        None => (lqd, Vec::new()),
    };
    let mut child = Command::new(program)
        .args(args)
        .arg("--config")
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("lqd starts");
    let stderr = child.stderr.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            keep.lock().expect("log").push(line.clone());
            let _ = tx.send(line);
        }
    });
    Spawned { child, lines, log }
}

/// A port for one lqd, held until that lqd is gone: a socket bound with SO_REUSEPORT (but
/// not listening, so it takes no connections) keeps every other `bind(0)` — in this process
/// or another test process — off the port, while lqd's own SO_REUSEPORT listeners (same
/// user) may bind it.
pub fn reserve_port() -> (socket2::Socket, u16) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(true).expect("SO_REUSEPORT");
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&any.into()).expect("bind");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address")
        .port();
    (socket, port)
}

/// A running `lqd` with its directory, journal and log.
pub struct Lqd {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The Kea journal it tails.
    pub journal: PathBuf,
    /// The configuration, data directory and journal; removed after lqd is gone.
    _dir: tempfile::TempDir,
    /// Keeps the port reserved for as long as lqd runs (dropped after it, see `Drop`).
    _port: socket2::Socket,
}

/// `[server]` settings every test starts from; a test overrides or adds keys.
const SERVER_DEFAULTS: [(&str, &str); 5] = [
    ("workers", "2"),
    ("connections_max", "20"),
    ("active_enabled", "true"),
    ("insecure_allowed", "true"),
    ("server_duid", "\"00030001001122334455\""),
];

fn config_text(dir: &std::path::Path, port: u16, server: &[(&str, &str)]) -> String {
    let mut settings: Vec<(&str, &str)> = SERVER_DEFAULTS.to_vec();
    for &(key, value) in server {
        match settings.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => settings.push((key, value)),
        }
    }
    // `metrics_listen` is `[metrics] listen` (off unless a test asks: tests run in parallel).
    let metrics = settings
        .iter()
        .find(|(k, _)| *k == "metrics_listen")
        .map_or("\"\"", |(_, v)| v);
    // An empty value leaves the key out: lqd's own default applies.
    let server: String = settings
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "metrics_listen")
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!(
        "[metrics]\nlisten = {metrics}\n\
         [store]\ndata_dir = \"{data}\"\nshards = 2\nsegment_bytes = 1048576\n\
         segments_max = 16\nclients_max = 10000\naddresses_max = 10000\nprefixes_max = 1000\n\
         [ingest]\nlease_file = \"{journal}\"\nkea_config = \"\"\nidle_wait_ms = 20\n\
         [server]\nlisten = \"127.0.0.1:{port}\"\ntick_ms = 2\n{server}\
         [[links]]\nsubnet_id = 1\nprefix = \"2001:db8:1::/64\"\n\
         [[links]]\nsubnet_id = 2\nprefix = \"2001:db8:2::/64\"\n",
        data = dir.join("data").display(),
        journal = dir.join("kea-leases6.csv").display(),
    )
}

impl Lqd {
    /// Start lqd on a journal holding `rows`, with `server` overriding `[server]` keys
    /// (values in TOML syntax; an empty value removes the key, leaving lqd's default).
    /// Returns once it serves and has loaded the snapshot.
    pub fn start(rows: &[Row], server: &[(&str, &str)]) -> Self {
        Self::start_wrapped(rows, server, &[])
    }

    /// [`Self::start`] with lqd run by `wrapper` (e.g. `prlimit --nofile=64:64`).
    pub fn start_wrapped(rows: &[Row], server: &[(&str, &str)], wrapper: &[&str]) -> Self {
        for _ in 0..3 {
            if let Some(lqd) = Self::try_start(rows, server, wrapper) {
                return lqd;
            }
        }
        panic!("lqd did not start three times in a row");
    }

    fn try_start(rows: &[Row], server: &[(&str, &str)], wrapper: &[&str]) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = dir.path().join("kea-leases6.csv");
        let body: String = rows.iter().map(Row::line).collect();
        std::fs::write(&journal, format!("{HEADER}\n{body}")).expect("journal");
        let (reservation, port) = reserve_port();
        let config = dir.path().join("lqd.toml");
        std::fs::write(&config, config_text(dir.path(), port, server)).expect("config");
        let Spawned { child, lines, log } = spawn(&config, wrapper);
        let lqd = Self {
            child,
            lines,
            log,
            port,
            journal,
            _dir: dir,
            _port: reservation,
        };
        (lqd.wait_for("serving leasequery") && lqd.wait_for("loaded Kea lease snapshot"))
            .then_some(lqd)
    }

    /// Wait up to 10 s for a log line containing `text`; false if lqd never logs it.
    pub fn wait_for(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// lqd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything lqd logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// Append rows to the journal in one write, as Kea does (kea.md §7).
    pub fn append(&self, rows: &[Row]) {
        append_rows(&self.journal, rows);
    }

    /// A new requestor connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// Poll with Bulk all-bindings queries (D-3) until `done` holds for the bindings lqd
    /// reports; returns them. Panics after 10 s.
    pub fn wait_bindings(&self, mut done: impl FnMut(&[ClientData]) -> bool) -> Vec<ClientData> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut xid = 0x100;
        loop {
            xid += 1;
            // A connection per poll: lqd closes one after queries_per_connection (S-12).
            let mut client = self.connect();
            client.send(&bulk(xid, QueryOut::LinkAddress, "::", &[], &[]));
            let bindings: Vec<ClientData> = client
                .bulk_answer()
                .iter()
                .filter_map(Msg::client_data)
                .collect();
            if done(&bindings) {
                return bindings;
            }
            assert!(Instant::now() < deadline, "bindings never settled");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until lqd reports exactly `n` bindings.
    pub fn wait_clients(&self, n: usize) -> Vec<ClientData> {
        self.wait_bindings(|b| b.len() == n)
    }

    /// The server's current BASE_TIME, from a Bulk query with 100 in its ORO (S-49) that
    /// matches nothing (a bare REPLY, S-41).
    pub fn base_time(&self) -> u32 {
        let mut client = self.connect();
        client.send(&bulk(
            0x77,
            QueryOut::ClientId(&duid(0xfffe)),
            "::",
            &[],
            &[OptionCode::LqBaseTime],
        ));
        let reply = client.msg(Duration::from_secs(5));
        reply.base_time().expect("BASE_TIME requested")
    }

    /// Send SIGTERM and wait (≤ 10 s) for lqd to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        self.wait_exit(Duration::from_secs(10))
            .expect("lqd exits within 10 s of SIGTERM")
    }

    /// Wait up to `timeout` for lqd to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
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

/// A framed query (protocol.md §2.1, §2.5).
pub fn query(message: &QueryMessage<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let n = framed(&mut buf, |w| write_query(w, message)).expect("query fits");
    buf[..n].to_vec()
}

/// A framed Bulk LEASEQUERY from [`REQUESTOR`]: `query_oro` inside LQ_QUERY, `oro` at the
/// top level.
pub fn bulk(
    xid: u32,
    key: QueryOut<'_>,
    link: &str,
    query_oro: &[OptionCode],
    oro: &[OptionCode],
) -> Vec<u8> {
    query(&QueryMessage {
        msg_type: MessageType::Leasequery,
        xid: Xid::new(xid).expect("24-bit xid"),
        client_id: &REQUESTOR,
        lq_query: Some(LqQueryOut {
            query: key,
            link_address: link.parse().expect("link-address"),
            oro: query_oro,
        }),
        oro,
        start_time: None,
        end_time: None,
    })
}

/// A framed ACTIVELEASEQUERY for all bindings from [`REQUESTOR`] (S-36).
pub fn active(xid: u32, oro: &[OptionCode], start_time: Option<u32>) -> Vec<u8> {
    query(&QueryMessage {
        msg_type: MessageType::ActiveLeasequery,
        xid: Xid::new(xid).expect("24-bit xid"),
        client_id: &REQUESTOR,
        lq_query: None,
        oro,
        start_time,
        end_time: None,
    })
}

/// What a read produced.
#[derive(Debug)]
pub enum Event {
    /// A whole message.
    Msg(Msg),
    /// End of stream: the server closed the connection (read returned 0).
    Closed,
    /// The connection was reset.
    Reset,
    /// Nothing within the timeout.
    Timeout,
}

/// One requestor connection.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl Client {
    /// Connect to lqd on 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Self {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    /// Connect with a small receive buffer (set before connecting, so the window stays small).
    pub fn connect_small_window(port: u16, recv_buffer: usize) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(recv_buffer).expect("SO_RCVBUF");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        socket.connect(&addr.into()).expect("connect");
        Self::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            decoder: FrameDecoder::new(u16::MAX),
        }
    }

    /// Send raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next message, end of stream, or a timeout.
    pub fn next(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid framing from lqd") {
                return Event::Msg(Msg {
                    bytes: frame.to_vec(),
                });
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Event::Timeout;
            };
            let left = left.max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(self.decoder.spare()) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.decoder.commit(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Event::Reset,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next message; panics on end of stream or timeout.
    pub fn msg(&mut self, timeout: Duration) -> Msg {
        match self.next(timeout) {
            Event::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Assert that the server closes the connection within `timeout` with no further
    /// message: an orderly end of stream, not a reset.
    pub fn expect_closed(&mut self, timeout: Duration) {
        match self.next(timeout) {
            Event::Closed => {}
            other => panic!("expected the server to close, got {other:?}"),
        }
    }

    /// Read a whole Bulk answer (RFC 5460 §6.3.1, R-23): a REPLY with a status or without
    /// CLIENT_DATA ends it; otherwise read to the DONE.
    pub fn bulk_answer(&mut self) -> Vec<Msg> {
        let reply = self.msg(Duration::from_secs(5));
        assert_eq!(reply.kind(), MessageType::LeasequeryReply, "{reply:?}");
        let more = reply.status().is_none() && reply.client_data().is_some();
        let mut answer = vec![reply];
        if more {
            loop {
                let m = self.msg(Duration::from_secs(5));
                let done = m.kind() == MessageType::LeasequeryDone;
                answer.push(m);
                if done {
                    break;
                }
            }
        }
        answer
    }
}

/// One message received (without its 2-octet size prefix).
#[derive(Clone)]
pub struct Msg {
    /// The DHCPv6 message.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Message::parse(&self.bytes) {
            Ok(m) => write!(
                f,
                "{:?} xid {:#x} {:?}",
                m.msg_type,
                m.xid.value(),
                m.options
            ),
            Err(e) => write!(f, "unparsable {e:?}: {:02x?}", self.bytes),
        }
    }
}

impl Msg {
    /// The parsed message; every message lqd sends must parse.
    pub fn parsed(&self) -> Message<'_> {
        Message::parse(&self.bytes).expect("lqd sends valid messages")
    }

    /// Its message type.
    pub fn kind(&self) -> MessageType {
        self.parsed().msg_type
    }

    /// Its transaction-id.
    pub fn xid(&self) -> u32 {
        self.parsed().xid.value()
    }

    /// The STATUS_CODE code, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self.parsed().options.find(OptionCode::StatusCode) {
            Some(Opt::Status(s)) => Some(s.code),
            _ => None,
        }
    }

    /// LQ_BASE_TIME, if present.
    pub fn base_time(&self) -> Option<u32> {
        match self.parsed().options.find(OptionCode::LqBaseTime) {
            Some(Opt::LqBaseTime(t)) => Some(t),
            _ => None,
        }
    }

    /// SERVERID, if present.
    pub fn server_id(&self) -> Option<Vec<u8>> {
        match self.parsed().options.find(OptionCode::ServerId) {
            Some(Opt::ServerId(d)) => Some(d.bytes().to_vec()),
            _ => None,
        }
    }

    /// CLIENTID, if present.
    pub fn client_id(&self) -> Option<Vec<u8>> {
        match self.parsed().options.find(OptionCode::ClientId) {
            Some(Opt::ClientId(d)) => Some(d.bytes().to_vec()),
            _ => None,
        }
    }

    /// The top-level option codes, in order.
    pub fn codes(&self) -> Vec<u16> {
        self.parsed()
            .options
            .iter()
            .map(|o| o.code().code())
            .collect()
    }

    /// The CLIENT_DATA, decoded.
    pub fn client_data(&self) -> Option<ClientData> {
        match self.parsed().options.find(OptionCode::ClientData) {
            Some(Opt::ClientData(list)) => Some(ClientData::decode(list)),
            _ => None,
        }
    }
}

/// A decoded OPTION_CLIENT_DATA (protocol.md §2.4).
#[derive(Clone, Debug, Default)]
pub struct ClientData {
    /// CLIENTID of the bound client.
    pub client_id: Vec<u8>,
    /// IAADDR: address, preferred, valid.
    pub addresses: Vec<(Ipv6Addr, u32, u32)>,
    /// IAPREFIX: prefix, length, preferred, valid.
    pub prefixes: Vec<(Ipv6Addr, u8, u32, u32)>,
    /// CLT_TIME.
    pub clt_time: Option<u32>,
    /// LQ_RELAY_DATA: peer-address, the relay message's link-address and its options'
    /// codes.
    pub relay: Option<(Ipv6Addr, Ipv6Addr, Vec<u16>)>,
    /// Every option code inside, in order.
    pub codes: Vec<u16>,
}

impl ClientData {
    fn decode(list: lqd::wire::OptionList<'_>) -> Self {
        let mut cd = Self::default();
        for opt in list.iter() {
            cd.codes.push(opt.code().code());
            match opt {
                Opt::ClientId(d) => cd.client_id = d.bytes().to_vec(),
                Opt::IaAddr(a) => cd.addresses.push((a.address, a.preferred, a.valid)),
                Opt::IaPrefix(p) => {
                    cd.prefixes
                        .push((p.prefix, p.prefix_len, p.preferred, p.valid));
                }
                Opt::CltTime(t) => cd.clt_time = Some(t),
                Opt::LqRelayData(r) => {
                    let codes = r.relay.options.iter().map(|o| o.code().code()).collect();
                    cd.relay = Some((r.peer_address, r.relay.link_address, codes));
                }
                _ => {}
            }
        }
        cd
    }
}
