//! A fleet of Active requestor connections, spread over receiver threads; each thread owns
//! its connections and one `mio` poll (epoll, edge-triggered), and counts into its own
//! [`ThreadStats`], merged by the caller at the end.
//!
//! Connections are opened in chunks of [`CONNECT_CHUNK`] per thread, each chunk's REPLYs
//! awaited before the next (lqd's accept backlog is finite), from the loopback source
//! addresses given, round robin by connection index.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lqd::wire::FrameDecoder;
use mio::{Events, Interest, Poll, Token};

use crate::conn::{active_query, Filter, Phase, Stream};
use crate::population::Population;
use crate::stats::{to_u64, ThreadStats};

/// Connections a thread opens before waiting for their REPLYs.
const CONNECT_CHUNK: usize = 64;
/// Longest wait for one chunk's REPLYs, and for one connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads of one connection per turn before the others get theirs.
const READS_PER_TURN_MAX: usize = 16;
/// Poll timeout when nothing is pending: the housekeeping period.
const POLL_TIMEOUT: Duration = Duration::from_millis(5);
/// Octets read from a stopped reader at the end while looking for lqd's close.
const DRAIN_BYTES_MAX: u64 = 256 << 20;

/// The optional mixes, in percent of the connections.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mix {
    /// Connections that query one link (QUERY_BY_LINK_ADDRESS).
    pub(crate) link_pct: u32,
    /// Connections that query one relay (QUERY_BY_RELAY_ID).
    pub(crate) relay_pct: u32,
    /// Connections that stop reading `stop_after` into the schedule.
    pub(crate) stop_pct: u32,
    /// When stopped readers stop.
    pub(crate) stop_after: Duration,
    /// Connections that reconnect every `reconnect_every` with LQ_START_TIME.
    pub(crate) reconnect_pct: u32,
    /// Their period.
    pub(crate) reconnect_every: Duration,
}

/// What a fleet connects to and how.
#[derive(Clone, Debug)]
pub(crate) struct FleetConfig {
    /// lqd's address.
    pub(crate) target: SocketAddr,
    /// Loopback source addresses, used round robin.
    pub(crate) sources: Vec<Ipv4Addr>,
    /// The clients and their schedule.
    pub(crate) population: Population,
    /// Changes per second.
    pub(crate) rate: f64,
    /// Connections in all.
    pub(crate) connections: usize,
    /// Receiver threads.
    pub(crate) threads: usize,
    /// Optional mixes.
    pub(crate) mix: Mix,
    /// Changes the schedule plans (each connection knows every client's final state).
    pub(crate) planned: u64,
    /// (this process's part, parts): it holds connections `part, part + parts, …`.
    pub(crate) part: (usize, usize),
}

impl FleetConfig {
    /// The connections receiver thread `thread` of this process holds.
    fn connections_of(&self, thread: usize) -> Vec<usize> {
        let (part, parts) = self.part;
        (part..self.connections)
            .step_by(parts)
            .skip(thread)
            .step_by(self.threads)
            .collect()
    }

    /// Connection `i`'s filter.
    pub(crate) fn filter_of(&self, i: usize) -> Filter {
        let p = &self.population;
        let slot = pct_slot(i, 37, 0);
        let link = u32::try_from(i % p.links as usize).expect("below links");
        if slot < self.mix.link_pct {
            return Filter::Link(link);
        }
        if slot < self.mix.link_pct + self.mix.relay_pct && p.relays > 0 {
            return Filter::Relay(u32::try_from(i % p.relays as usize).expect("below relays"));
        }
        Filter::All
    }

    fn stops(&self, i: usize) -> bool {
        pct_slot(i, 53, 11) < self.mix.stop_pct
    }

    fn reconnects(&self, i: usize) -> bool {
        !self.stops(i) && pct_slot(i, 71, 29) < self.mix.reconnect_pct
    }
}

/// A spread of connection indexes over 0..100.
fn pct_slot(i: usize, step: usize, offset: usize) -> u32 {
    u32::try_from((i * step + offset) % 100).expect("below 100")
}

/// State the coordinator and the receiver threads share.
pub(crate) struct Shared {
    /// The clock every instant is measured on.
    pub(crate) origin: Instant,
    /// `origin` as CLOCK_REALTIME nanoseconds (instants cross processes that way).
    pub(crate) origin_unix_ns: u64,
    /// Connections whose first REPLY arrived.
    pub(crate) replied: AtomicUsize,
    /// Connections that could not be opened.
    pub(crate) connect_failed: AtomicUsize,
    /// DATA frames with CLIENT_DATA received, all threads.
    pub(crate) data_frames: AtomicU64,
    /// Nanoseconds after `origin` of the last DATA with CLIENT_DATA.
    pub(crate) last_data_ns: AtomicU64,
    /// Schedule start, ns after `origin`; `u64::MAX` until set.
    pub(crate) start_ns: AtomicU64,
    /// Changes written (final once `stop` is set).
    pub(crate) written: AtomicU64,
    /// Connections done: every final state received, stopped on purpose, closed, or never
    /// opened.
    pub(crate) settled: AtomicUsize,
    /// Set when the receivers should finish.
    pub(crate) stop: AtomicBool,
}

impl Shared {
    /// Fresh shared state.
    pub(crate) fn new() -> Self {
        let origin = Instant::now();
        let origin_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            origin,
            origin_unix_ns,
            replied: AtomicUsize::new(0),
            connect_failed: AtomicUsize::new(0),
            data_frames: AtomicU64::new(0),
            last_data_ns: AtomicU64::new(0),
            start_ns: AtomicU64::new(u64::MAX),
            written: AtomicU64::new(0),
            settled: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Nanoseconds since `origin`.
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Open a blocking connection from `source` and set it up for the fleet.
pub(crate) fn connect_from(source: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(target);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    if target.is_ipv4() {
        socket.bind(&SocketAddr::from((IpAddr::V4(source), 0)).into())?;
    }
    socket.connect_timeout(&target.into(), CONNECT_TIMEOUT)?;
    socket.set_nodelay(true)?;
    Ok(socket.into())
}

struct Conn {
    index: usize,
    socket: Option<mio::net::TcpStream>,
    decoder: FrameDecoder,
    stream: Stream,
    stops: bool,
    reconnects: bool,
    next_reconnect_ns: u64,
    xid: u32,
    /// True once the first REPLY came (counted in [`Shared::replied`]).
    replied: bool,
    /// True once counted in [`Shared::settled`].
    settled: bool,
}

impl Conn {
    fn settle(&mut self, shared: &Shared) {
        if !self.settled {
            self.settled = true;
            shared.settled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One receiver thread.
pub(crate) struct Receiver {
    config: Arc<FleetConfig>,
    shared: Arc<Shared>,
    poll: Poll,
    conns: Vec<Conn>,
    stats: ThreadStats,
    published: u64,
    /// Tokens to read again in this turn (kept to reuse its allocation).
    again: Vec<usize>,
}

impl Receiver {
    /// Thread `thread`'s receiver: connections `thread`, `thread + threads`, ….
    pub(crate) fn new(
        config: Arc<FleetConfig>,
        shared: Arc<Shared>,
        thread: usize,
    ) -> anyhow::Result<Self> {
        assert!(thread < config.threads, "thread index within the fleet");
        let mine = config.connections_of(thread).len();
        Ok(Self {
            config,
            shared,
            poll: Poll::new().context("creating an epoll instance")?,
            conns: Vec::with_capacity(mine),
            stats: ThreadStats::new(),
            published: 0,
            again: Vec::with_capacity(1024),
        })
    }

    /// Open this thread's connections, then receive until told to stop; returns the counts.
    pub(crate) fn run(mut self, thread: usize) -> anyhow::Result<ThreadStats> {
        let mine = self.config.connections_of(thread);
        let mut events = Events::with_capacity(1024);
        for chunk in mine.chunks(CONNECT_CHUNK) {
            let first = self.conns.len();
            for &i in chunk {
                self.open(i);
            }
            let deadline = Instant::now() + CONNECT_TIMEOUT;
            while Instant::now() < deadline && self.querying(first) {
                self.turn(&mut events)?;
            }
        }
        while !self.shared.stop.load(Ordering::Acquire) {
            self.turn(&mut events)?;
            self.housekeeping();
        }
        self.finish();
        Ok(self.stats)
    }

    fn querying(&self, first: usize) -> bool {
        self.conns[first..]
            .iter()
            .any(|c| c.socket.is_some() && c.stream.phase == Phase::Querying)
    }

    fn open(&mut self, i: usize) {
        let config = &self.config;
        let filter = config.filter_of(i);
        let xid = u32::try_from(i % 0x00ff_ffff).expect("24 bits") + 1;
        let mut conn = Conn {
            index: i,
            socket: None,
            decoder: FrameDecoder::new(u16::MAX),
            stream: Stream::new(filter, &config.population, config.planned),
            stops: config.stops(i),
            reconnects: config.reconnects(i),
            next_reconnect_ns: 0,
            xid,
            replied: false,
            settled: false,
        };
        let token = Token(self.conns.len());
        match self.attach(token, &active_query(xid, filter, None)) {
            Ok(socket) => conn.socket = Some(socket),
            Err(e) => {
                self.shared.connect_failed.fetch_add(1, Ordering::Relaxed);
                self.stats.error(connect_error_kind(&e));
                conn.settle(&self.shared);
            }
        }
        self.conns.push(conn);
    }

    /// Connect connection `token` and send `query`.
    fn attach(&self, token: Token, query: &[u8]) -> std::io::Result<mio::net::TcpStream> {
        let i = self.conns.get(token.0).map_or(token.0, |c| c.index);
        let sources = &self.config.sources;
        let source = sources[i % sources.len()];
        let mut stream = connect_from(source, self.config.target)?;
        stream.write_all(query)?;
        stream.set_nonblocking(true)?;
        let mut socket = mio::net::TcpStream::from_std(stream);
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        Ok(socket)
    }

    /// One poll and the reads it enables.
    fn turn(&mut self, events: &mut Events) -> anyhow::Result<()> {
        match self.poll.poll(events, Some(POLL_TIMEOUT)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e).context("epoll_wait"),
        }
        let mut again = std::mem::take(&mut self.again);
        again.extend(events.iter().map(|e| e.token().0));
        // Edge-triggered: a connection read READS_PER_TURN_MAX times without WouldBlock is
        // read again before the next poll, after the others.
        while !again.is_empty() {
            again.retain(|&t| self.read(t));
        }
        self.again = again;
        self.publish();
        Ok(())
    }

    /// Read connection `t` until it would block (false) or its turn is used up (true).
    fn read(&mut self, t: usize) -> bool {
        let start = self.shared.start_ns.load(Ordering::Acquire);
        let rate = self.config.rate;
        let scheduled = move |g: u64| start.saturating_add(to_u64(g as f64 * 1e9 / rate));
        let population = self.config.population;
        let conn = &mut self.conns[t];
        if conn.stream.phase == Phase::Stopped {
            return false;
        }
        let Some(socket) = conn.socket.as_mut() else {
            return false;
        };
        for _ in 0..READS_PER_TURN_MAX {
            let n = match socket.read(conn.decoder.spare()) {
                Ok(0) => {
                    self.stats.evicted += 1;
                    self.stats.error("closed by lqd while reading");
                    close(conn, &self.poll, &self.shared);
                    return false;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.evicted += 1;
                    self.stats.error(read_error_kind(&e));
                    close(conn, &self.poll, &self.shared);
                    return false;
                }
            };
            conn.decoder.commit(n);
            self.stats.reads += 1;
            self.stats.bytes += n as u64;
            let now = u64::try_from(self.shared.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
            loop {
                match conn.decoder.next_frame() {
                    Ok(Some(frame)) => {
                        conn.stream
                            .frame(frame, &population, now, &scheduled, &mut self.stats);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.stats.error("framing error");
                        close(conn, &self.poll, &self.shared);
                        return false;
                    }
                }
            }
            if !conn.replied && conn.stream.phase != Phase::Querying {
                conn.replied = true;
                self.shared.replied.fetch_add(1, Ordering::Relaxed);
            }
            if conn.stream.complete() && !conn.settled {
                conn.settled = true;
                self.shared.settled.fetch_add(1, Ordering::Relaxed);
            }
            if conn.stream.phase == Phase::Closed {
                close(conn, &self.poll, &self.shared);
                return false;
            }
        }
        true
    }

    /// Share progress with the coordinator.
    fn publish(&mut self) {
        let delta = self.stats.data_frames - self.published;
        if delta > 0 {
            self.published = self.stats.data_frames;
            self.shared.data_frames.fetch_add(delta, Ordering::Relaxed);
            self.shared
                .last_data_ns
                .fetch_max(self.shared.now_ns(), Ordering::Relaxed);
        }
    }

    /// Stopped readers stop; reconnecting connections reconnect when due.
    fn housekeeping(&mut self) {
        let start = self.shared.start_ns.load(Ordering::Acquire);
        if start == u64::MAX {
            return;
        }
        let now = self.shared.now_ns();
        let mix = self.config.mix;
        let stop_at = start.saturating_add(duration_ns(mix.stop_after));
        let every = duration_ns(mix.reconnect_every).max(1_000_000);
        for t in 0..self.conns.len() {
            let conn = &mut self.conns[t];
            if conn.socket.is_none() {
                continue;
            }
            if conn.stops && now >= stop_at && conn.stream.phase != Phase::Stopped {
                if let Some(socket) = conn.socket.as_mut() {
                    let _ = self.poll.registry().deregister(socket);
                }
                conn.stream.phase = Phase::Stopped;
                conn.settle(&self.shared);
                continue;
            }
            // No reconnect once the schedule is written: the drain waits for final states.
            let written = self.shared.written.load(Ordering::Relaxed);
            if !conn.reconnects
                || conn.stream.phase != Phase::Live
                || written >= self.config.planned
            {
                continue;
            }
            if conn.next_reconnect_ns == 0 {
                // Staggered: the first reconnect comes 1..2 periods in.
                let spread = every / 100 * (conn.index as u64 % 100);
                conn.next_reconnect_ns = start + every + spread;
            } else if now >= conn.next_reconnect_ns {
                conn.next_reconnect_ns += every;
                self.reconnect(t);
            }
        }
    }

    fn reconnect(&mut self, t: usize) {
        let conn = &mut self.conns[t];
        if let Some(mut socket) = conn.socket.take() {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        conn.decoder = FrameDecoder::new(u16::MAX);
        conn.xid = conn.xid % 0x00ff_ffff + 1;
        let query = conn.stream.resume(conn.xid);
        self.stats.reconnects += 1;
        match self.attach(Token(t), &query) {
            Ok(socket) => self.conns[t].socket = Some(socket),
            Err(e) => {
                self.stats.error(connect_error_kind(&e));
                self.conns[t].stream.phase = Phase::Closed;
                self.conns[t].settle(&self.shared);
            }
        }
    }

    /// Count what each connection missed; look for lqd's close on stopped readers.
    fn finish(&mut self) {
        self.publish();
        let written = self.shared.written.load(Ordering::Acquire);
        let population = self.config.population;
        for conn in &mut self.conns {
            match conn.stream.phase {
                Phase::Live | Phase::CatchingUp => {
                    conn.stream.check(&population, written, &mut self.stats);
                }
                Phase::Querying if conn.replied => {
                    self.stats.error("a reconnect unanswered at the end");
                    conn.stream.check(&population, written, &mut self.stats);
                }
                Phase::Stopped => {
                    if let Some(socket) = conn.socket.as_mut() {
                        if closed_by_peer(socket) {
                            self.stats.evicted += 1;
                        }
                    }
                }
                Phase::Querying | Phase::Closed => {}
            }
            if let Some(mut socket) = conn.socket.take() {
                let _ = self.poll.registry().deregister(&mut socket);
            }
        }
    }
}

/// Drop the connection's socket; a connection closed for good is settled.
fn close(conn: &mut Conn, poll: &Poll, shared: &Shared) {
    if let Some(mut socket) = conn.socket.take() {
        let _ = poll.registry().deregister(&mut socket);
    }
    if conn.stream.phase != Phase::Stopped {
        conn.stream.phase = Phase::Closed;
        conn.settle(shared);
    }
}

/// Read a stopped reader's backlog: true when lqd closed it (end of stream or reset).
fn closed_by_peer(socket: &mut mio::net::TcpStream) -> bool {
    let mut drained = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while drained < DRAIN_BYTES_MAX {
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => drained += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn connect_error_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ConnectionRefused => "connect: refused",
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "connect: timed out",
        ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse => "connect: no source port",
        _ if e.raw_os_error() == Some(24) => "connect: out of descriptors (EMFILE)",
        _ => "connect: other error",
    }
}

fn read_error_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ConnectionReset => "reset by lqd while reading",
        _ => "read error",
    }
}
