//! One network worker: an io_uring, a listening socket (SO_REUSEPORT, one per worker), and
//! fixed-capacity connection slots, each driving a sans-IO [`Connection`].
//!
//! Every loop iteration: arm what is missing (an accept, a receive per connection, a send
//! per connection with something to say, the tick timeout, the doorbell read), submit and
//! wait for at least one completion, copy the completions out, dispatch them.
//!
//! Sending (architecture.md, "Fan-out" 2): `Connection::transmit` fills a [`Batch`] per
//! connection — whole frames of its own (control, Bulk) and, for each Active binding, a
//! small prefix of its own plus the worker's shared body of that record for this second
//! ([`Bodies`]). Except for Bulk answers, a batch's own octets go to the worker's own arena
//! for the iteration, and every batch's parts and iovecs to the worker's pools, so a
//! connection's own buffer is touched only by Bulk answers and by what a slow socket did
//! not take: an idle connection costs little resident memory. Such a batch goes out as one
//! `sendmsg` with `MSG_DONTWAIT`: io_uring then completes it at once (all, part or EAGAIN)
//! instead of parking it on the socket, so no send holds the arenas while a reader is
//! slow. Whatever the kernel did not take is copied into the connection's own buffer and
//! sent from there with an ordinary, waiting `send` (the slow-reader path, which the send
//! timeouts of S-61 and S-62 watch). The arenas are emptied only when no `sendmsg` borrows
//! them.
//!
//! SEND_ZC is not used: on loopback the kernel copies anyway, and for frames of a few
//! hundred octets its page pinning and notification costs more than the copy.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{io, ptr};

use io_uring::{cqueue, opcode, types, IoUring};

use crate::ingest::links::Links;
use crate::ingest::pipeline::Owned;
use crate::metrics::{add, Counters, Refusal, Registry, Sampler};
use crate::net::Doorbells;
use crate::server::connection::{CloseReason, Connection, Context, Permitted, Policy};
use crate::server::lookup::{lookup, Found, LookupKey};
use crate::server::out::{gather, Batch, Bodies, Part, DATA_FRAME_MAX};
use crate::store::model::Prefix;
use crate::store::{LogReader, Shard};

/// Settings of the network workers.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Address to listen on (default `[::]:547`, S-7).
    pub listen: SocketAddr,
    /// Connection slots of this worker.
    pub slots: usize,
    /// Send buffer per connection, octets.
    pub send_buffer: usize,
    /// Loop tick: the longest wait before Active connections look for new records.
    pub tick: Duration,
    /// ACTIVE_LQ_SEND_TIMEOUT: a blocked send on an Active connection, ms (S-61).
    pub send_timeout_active_ms: u64,
    /// BULK_LQ_DATA_TIMEOUT: a blocked send on any other connection, ms (S-62).
    pub send_timeout_bulk_ms: u64,
    /// Requestor prefixes allowed to connect (S-9); empty = every source.
    pub allow: Vec<Prefix>,
    /// `SO_SNDBUF` per connection (style.md T21).
    pub socket_send_buffer: usize,
    /// Permitted query types by source prefix; the longest match decides (S-9, S-27).
    pub requestors: Vec<(Prefix, Permitted)>,
    /// Connections per source address; 0 = no cap (S-11).
    pub per_source_max: usize,
    /// Octets of shared bodies per worker (the arena of [`Bodies`]).
    pub shared_bodies: usize,
    /// Send batches as `sendmsg` iovecs over the shared bodies (true), or laid out in the
    /// connection's own buffer first (false: one copy per connection, one iovec).
    pub vectored_sends: bool,
}

/// State shared by all workers: the global connection cap (S-8) and counters.
#[derive(Debug, Default)]
pub struct Shared {
    /// Connections open across workers.
    pub open: AtomicUsize,
    /// BULK_LQ_MAX_CONNS or its configured value.
    pub cap: usize,
    /// Set on SIGTERM/SIGINT.
    pub stop: AtomicBool,
    /// Open connections per source address (for `per_source_max`; touched on accept and
    /// close only).
    pub per_source: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl Shared {
    /// Count a connection from `ip`, unless that source is at its cap.
    fn admit(&self, ip: IpAddr, max: usize) -> bool {
        if max == 0 {
            return true;
        }
        let mut map = self
            .per_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(ip).or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, ip: IpAddr, max: usize) {
        if max == 0 {
            return;
        }
        let mut map = self
            .per_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&ip);
            }
        }
    }
}

const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_TICK: u64 = 4;
const KIND_CANCEL: u64 = 5;
const KIND_DOORBELL: u64 = 6;
const KIND_SENDMSG: u64 = 7;

/// Parts of one batch: a prefix and a body per LEASEQUERY-DATA, plus runs of own frames.
const PARTS_MAX: usize = 128;

/// How long accepting pauses after running out of descriptors or memory.
const ACCEPT_PAUSE_MS: u64 = 100;

fn user_data(kind: u64, generation: u32, slot: u32) -> u64 {
    kind << 56 | u64::from(generation & 0x00ff_ffff) << 32 | u64::from(slot)
}

/// (kind, generation, slot) of a completion.
fn decode(user_data: u64) -> (u64, u32, u32) {
    let generation = u32::try_from(user_data >> 32 & 0x00ff_ffff).expect("24 bits");
    let slot = u32::try_from(user_data & 0xffff_ffff).expect("32 bits");
    (user_data >> 56, generation, slot)
}

struct Slot {
    fd: RawFd,
    generation: u32,
    conn: Option<Connection>,
    /// The connection's own octets: batch prefixes and frames, or the unsent rest of a
    /// batch (sent from `send_off` to `send_len` with a plain `send`).
    send: Share<u8>,
    send_len: usize,
    send_off: usize,
    /// The batch of the `sendmsg` in flight (parts, their iovecs, its header): these
    /// belong to the kernel until its completion.
    /// The batch's parts are `parts_base..parts_base + parts_len` of the pools.
    parts_base: usize,
    parts_len: usize,
    batch_len: usize,
    /// Where the batch's own parts are: at this offset of the worker's own arena, or
    /// (`None`, Bulk answers) in `send`.
    own_base: Option<usize>,
    msg: Box<libc::msghdr>,
    recv_busy: bool,
    send_busy: bool,
    /// Monotonic ms of the last send progress (or of becoming idle).
    progress_ms: u64,
    shut: bool,
    /// The requestor's address.
    peer: Option<IpAddr>,
    /// The connection of the slot while it is free: buffers and sessions are reused by the
    /// next connection (no allocation per accept or per query).
    spare: Option<Connection>,
}

/// A message between workers: index lookups for Bulk queries ([`crate::server::lookup`]).
#[derive(Debug)]
pub enum Note {
    /// Look `key` up in `shard` (owned by the receiver) for a slot of worker `from`.
    Lookup {
        /// The asking worker.
        from: usize,
        /// Its slot and the slot's generation (a reused slot ignores the answer).
        slot: u32,
        /// See `slot`.
        generation: u32,
        /// The query's number on its connection (a later query ignores the answer).
        query: u32,
        /// The shard to look in.
        shard: u16,
        /// What to look up.
        key: LookupKey,
    },
    /// The answer to a lookup, for the receiver's `slot`.
    Found {
        /// The asking slot.
        slot: u32,
        /// Its generation when it asked.
        generation: u32,
        /// The query's number on its connection.
        query: u32,
        /// The records found.
        hits: Found,
    },
}

/// A worker's mailboxes: its own inbox and every worker's (its own included).
pub struct Mail {
    /// Notes for this worker.
    pub inbox: crossbeam_channel::Receiver<Note>,
    /// Every worker's inbox, by worker index.
    pub outboxes: Vec<crossbeam_channel::Sender<Note>>,
}

/// What a worker is given besides its settings.
pub struct Parts<'a> {
    /// Its listening socket (SO_REUSEPORT).
    pub listener: OwnedFd,
    /// Every worker's doorbell; this worker's is rung when other workers' shards wrote
    /// records or a note arrived.
    pub doorbells: &'a Doorbells,
    /// The shards it owns and applies changes to (architecture.md, "Threads"), with their
    /// numbers.
    pub owned: Vec<(usize, Owned)>,
    /// Its mailboxes.
    pub mail: Mail,
    /// Where its counters and latency samples go.
    pub registry: Arc<Registry>,
    /// Its index among the workers (its counters in the registry).
    pub index: usize,
    /// Told once the worker has its ring and slots (lqd says it serves after every worker
    /// is ready).
    pub ready: Option<std::sync::mpsc::Sender<()>>,
}

/// Run one worker until `shared.stop` is set, its connections are done and the ingest
/// thread has closed its shards' queues (every change routed to them applied); returns the
/// shards it owned.
pub fn run(
    parts: Parts<'_>,
    policy: &Policy,
    readers: &[LogReader],
    links: &Links,
    config: &NetConfig,
    shared: &Shared,
) -> io::Result<Vec<Shard>> {
    let Parts {
        listener,
        doorbells,
        mut owned,
        mail,
        registry,
        index,
        ready,
    } = parts;
    let doorbell = Some(doorbells.fd(index));
    let counters = &registry.workers[index];
    let mut worker = Worker::new(listener, doorbell, config, (shared, counters), policy)?;
    worker.bodies.sampler = Some(Sampler::new(Arc::clone(&registry), index));
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let mut published_at = 0;
    let started = Instant::now();
    let tick = types::Timespec::new()
        .sec(config.tick.as_secs())
        .nsec(config.tick.subsec_nanos());
    loop {
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let now = crate::ingest::pipeline::server_now();
        // The shards this worker owns first: records written now reach its connections in
        // this iteration and the other workers' at their doorbell.
        let written: usize = owned.iter_mut().map(|(_, o)| o.step(now)).sum();
        if written > 0 {
            add(&counters.applied, written as u64);
            doorbells.ring_except(index);
        }
        worker.read_mail(&mail, doorbells, &owned, readers);
        if now != published_at {
            published_at = now;
            worker.publish();
        }
        let ctx = Context {
            policy,
            readers,
            links,
            now,
            now_ms,
            counters,
        };
        let stopping = shared.stop.load(Ordering::Acquire);
        if stopping {
            // Also connections accepted while the accept was being cancelled (idempotent).
            worker
                .slots
                .iter_mut()
                .filter_map(|s| s.conn.as_mut())
                .for_each(Connection::terminate);
            let idle = worker.slots.iter().all(|s| s.conn.is_none()) && !worker.accept_busy;
            if idle && owned.iter().all(|(_, o)| o.closed()) {
                return Ok(owned.into_iter().map(|(_, o)| o.shard).collect());
            }
        }
        let asks = Asks {
            mail: &mail,
            doorbells,
            worker: index,
        };
        worker.arm(&ctx, &tick, stopping, &asks)?;
        add(&counters.enters, 1);
        match worker.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        worker.dispatch(&ctx, policy);
    }
}

impl<'a> Worker<'a> {
    fn new(
        listener: OwnedFd,
        doorbell: Option<RawFd>,
        config: &'a NetConfig,
        (shared, counters): (&'a Shared, &'a Counters),
        policy: &Policy,
    ) -> io::Result<Self> {
        let entries = u32::try_from(config.slots * 2 + 8)
            .unwrap_or(u32::MAX)
            .next_power_of_two();
        // CQ twice the SQ (style.md T7): at most one accept, one tick, one cancel and a receive
        // and a send per slot are in flight.
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .build(entries)?;
        let mut areas = Areas::new(config.slots, config.send_buffer)?;
        let slots = (0..config.slots)
            .map(|i| Slot::new(&mut areas, i, policy))
            .collect();
        let pools = Pools {
            parts: areas.parts.share(0),
            iov: areas.iov.share(0),
            used: 0,
        };
        let slots_max = u32::try_from(config.slots).expect("slots fit u32");
        Ok(Worker {
            ring,
            slots,
            _areas: areas,
            free: (0..slots_max).rev().collect(),
            completions: Vec::with_capacity(usize::try_from(entries * 2).unwrap_or(1024)),
            accept_busy: false,
            accept_paused_until_ms: 0,
            accept_warned_ms: None,
            cancel_sent: false,
            tick_busy: false,
            doorbell,
            doorbell_busy: false,
            doorbell_value: Box::new([0; 8]),
            bodies: Bodies::new(config.shared_bodies),
            scratch: vec![0; config.send_buffer].into_boxed_slice(),
            own: Own::new(config.shared_bodies)?,
            pools,
            rotation: 0,
            listener,
            config,
            shared,
            counters,
        })
    }

    /// Answer the lookups other workers (or this one) asked of the shards this worker owns,
    /// and hand answers to the slots that asked.
    fn read_mail(
        &mut self,
        mail: &Mail,
        doorbells: &Doorbells,
        owned: &[(usize, Owned)],
        readers: &[LogReader],
    ) {
        while let Ok(note) = mail.inbox.try_recv() {
            match note {
                Note::Lookup {
                    from,
                    slot,
                    generation,
                    query,
                    shard,
                    key,
                } => {
                    let own = owned.iter().find(|(n, _)| *n == usize::from(shard));
                    let hits =
                        own.map_or(Found::none(shard), |(_, o)| lookup(&o.shard, shard, &key));
                    let answer = Note::Found {
                        slot,
                        generation,
                        query,
                        hits,
                    };
                    // The asker's inbox holds every answer it waits for; if it is full all
                    // the same, the asker stops waiting after LOOKUP_WAIT_MS and scans.
                    if mail.outboxes[from].try_send(answer).is_err() {
                        tracing::warn!(from, "a worker's inbox is full: lookup answer dropped");
                    }
                    doorbells.ring_one(from);
                }
                Note::Found {
                    slot,
                    generation,
                    query,
                    hits,
                } => {
                    let slot = &mut self.slots[slot as usize];
                    if let (Some(conn), true) = (&mut slot.conn, slot.generation == generation) {
                        conn.found(query, &hits, readers);
                    }
                }
            }
        }
    }

    /// Publish what the worker keeps to itself: body counts and latency samples (once a
    /// second; the latency fold skips a second when a scrape holds the histogram).
    fn publish(&mut self) {
        let c = self.counters;
        c.bodies_built.store(self.bodies.built, Ordering::Relaxed);
        c.bodies_shared.store(self.bodies.hits, Ordering::Relaxed);
        c.bodies_copied.store(self.bodies.copied, Ordering::Relaxed);
        c.steps_shared
            .store(self.bodies.steps_reused, Ordering::Relaxed);
        if let Some(sampler) = &mut self.bodies.sampler {
            sampler.publish();
        }
    }
}

/// A worker's ring, slots and in-flight flags.
struct Worker<'a> {
    ring: IoUring,
    slots: Vec<Slot>,
    /// The memory behind the slots' buffers; declared after `slots`, so dropped after them.
    _areas: Areas,
    free: Vec<u32>,
    completions: Vec<(u64, i32)>,
    accept_busy: bool,
    /// Monotonic ms before which no accept is armed (after EMFILE and the like).
    accept_paused_until_ms: u64,
    /// When the last accept failure was logged.
    accept_warned_ms: Option<u64>,
    cancel_sent: bool,
    tick_busy: bool,
    /// The eventfd other workers (and the ingest thread) ring after queuing or appending
    /// records, and its 8-octet read buffer
    /// (boxed: it belongs to the kernel while the read is in flight).
    doorbell: Option<RawFd>,
    doorbell_busy: bool,
    doorbell_value: Box<[u8; 8]>,
    /// Shared bodies of this worker (architecture.md, "Fan-out" 2).
    bodies: Bodies,
    /// Where the unsent rest of a batch is assembled before it moves to the slot's buffer.
    scratch: Box<[u8]>,
    /// The own octets (prefixes, control frames) of this iteration's batches (see `Own`).
    own: Own,
    /// The parts and iovecs of this iteration's batches.
    pools: Pools,
    /// The slot the next iteration starts with (fair use of a full own arena).
    rotation: usize,
    listener: OwnedFd,
    config: &'a NetConfig,
    shared: &'a Shared,
    counters: &'a Counters,
}

fn push(sq: &mut io_uring::SubmissionQueue<'_>, entry: &io_uring::squeue::Entry) -> io::Result<()> {
    // SAFETY: every entry pushed through here references no buffer (accept without an
    // address, cancel) or one that outlives its completion (the tick's timespec lives in
    // `run`'s frame for the whole loop).
    unsafe { sq.push(entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))
}

impl Worker<'_> {
    /// Queue what is missing: the accept (or its cancellation when stopping), the tick, and
    /// each connection's receive and send.
    fn arm(
        &mut self,
        ctx: &Context<'_>,
        tick: &types::Timespec,
        stopping: bool,
        asks: &Asks<'_>,
    ) -> io::Result<()> {
        let mut sq = self.ring.submission();
        if stopping && self.accept_busy && !self.cancel_sent {
            let cancel = opcode::AsyncCancel::new(user_data(KIND_ACCEPT, 0, 0)).build();
            push(&mut sq, &cancel.user_data(user_data(KIND_CANCEL, 0, 0)))?;
            self.cancel_sent = true;
        }
        // Always accept, even with every slot taken: an extra connection is then closed at
        // once (S-8) instead of waiting unseen in the kernel's queue.
        if !self.accept_busy && !stopping && ctx.now_ms >= self.accept_paused_until_ms {
            let fd = types::Fd(self.listener.as_raw_fd());
            let accept = opcode::Accept::new(fd, ptr::null_mut(), ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(user_data(KIND_ACCEPT, 0, 0));
            push(&mut sq, &accept)?;
            self.accept_busy = true;
        }
        if !self.tick_busy {
            let timeout = opcode::Timeout::new(tick)
                .build()
                .user_data(user_data(KIND_TICK, 0, 0));
            push(&mut sq, &timeout)?;
            self.tick_busy = true;
        }
        if let (Some(fd), false) = (self.doorbell, self.doorbell_busy) {
            let read = opcode::Read::new(types::Fd(fd), self.doorbell_value.as_mut_ptr(), 8)
                .build()
                .user_data(user_data(KIND_DOORBELL, 0, 0));
            // SAFETY: the boxed 8-octet buffer lives as long as the worker and is not touched
            // until this read completes (rule 1).
            unsafe { sq.push(&read) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            self.doorbell_busy = true;
        }
        self.bodies.may_reset(ctx.now);
        if self.bodies.borrowed == 0 {
            self.own.used = 0;
            self.pools.used = 0;
        }
        let count = self.slots.len();
        self.rotation = (self.rotation + 1) % count.max(1);
        let vectored = self.config.vectored_sends;
        for index in (self.rotation..count).chain(0..self.rotation) {
            ask_owners(&mut self.slots[index], index, asks, ctx);
            let bufs = Bufs {
                bodies: &mut self.bodies,
                own: &mut self.own,
                pools: &mut self.pools,
                scratch: &mut self.scratch,
                vectored,
            };
            arm(&mut sq, &mut self.slots[index], index, ctx, bufs);
        }
        Ok(())
    }

    /// After an accept that ran out of descriptors or memory: pause accepting for a while
    /// instead of spinning on the backlog (style.md T13); warn at most once a minute.
    fn accept_exhausted(&mut self, result: i32, now_ms: u64) -> bool {
        if !matches!(
            -result,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        ) {
            return false;
        }
        self.accept_paused_until_ms = now_ms + ACCEPT_PAUSE_MS;
        if self.accept_warned_ms.is_none_or(|t| now_ms >= t + 60_000) {
            self.accept_warned_ms = Some(now_ms);
            tracing::warn!(errno = -result, "accept failed: pausing accepts for 100 ms");
        }
        true
    }

    /// A connection arrived (or the accept failed): admit it into a free slot, or close it
    /// at once and count why (S-8, S-9, S-11).
    fn accepted(&mut self, result: i32, policy: &Policy, now_ms: u64) {
        let (config, shared, counters) = (self.config, self.shared, self.counters);
        let (slots, free) = (&mut self.slots, &mut self.free);
        if result == -libc::ECANCELED {
            return; // Shutting down.
        }
        if result < 0 {
            // ECONNABORTED and the like: the connection is gone; accept the next one.
            tracing::debug!(errno = -result, "accept failed");
            return;
        }
        // SAFETY: a successful accept returns a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result) };
        let socket = socket2::Socket::from(fd);
        let peer = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip());
        let allowed = config.allow.is_empty() || peer.is_some_and(|ip| allowed(&config.allow, ip));
        let mut over_cap = shared.open.fetch_add(1, Ordering::AcqRel) >= shared.cap;
        if over_cap && allowed && evict_idle(slots, now_ms, policy.idle_timeout_ms) {
            // S-11: an idle connection of this worker makes room; it is freed once closed.
            add(&counters.evicted_idle, 1);
            over_cap = false;
        }
        let per_source =
            !over_cap && allowed && peer.is_none_or(|ip| shared.admit(ip, config.per_source_max));
        let slot_free = !free.is_empty();
        if !allowed || over_cap || !per_source || !slot_free {
            if per_source && allowed && !over_cap {
                if let Some(ip) = peer {
                    shared.release(ip, config.per_source_max);
                }
            }
            shared.open.fetch_sub(1, Ordering::AcqRel);
            let refusal = if !allowed {
                Refusal::NotAllowed
            } else if over_cap || !slot_free {
                Refusal::OverCap
            } else {
                Refusal::PerSource
            };
            add(&counters.refused[refusal as usize], 1);
            tracing::debug!(
                ?peer,
                allowed,
                over_cap,
                per_source,
                "connection refused (S-8, S-9, S-11)"
            );
            return; // Dropping the socket closes it at once.
        }
        let _ = socket.set_nodelay(true);
        let _ = socket.set_send_buffer_size(config.socket_send_buffer);
        let index = free.pop().expect("checked above");
        let permitted = peer.map_or(Permitted::ALL, |ip| permitted_for(&config.requestors, ip));
        add(&counters.accepted, 1);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let slot = &mut slots[index as usize];
        slot.fd = socket.into_raw_fd();
        slot.generation = slot.generation.wrapping_add(1);
        slot.conn = Some(match slot.spare.take() {
            Some(mut conn) => {
                conn.reopen(permitted, now_ms);
                conn
            }
            None => Connection::new(policy, permitted, now_ms),
        });
        slot.peer = peer;
        slot.send_len = 0;
        slot.send_off = 0;
        slot.progress_ms = now_ms;
        slot.shut = false;
    }

    /// Copy the completions out, then handle them; then close finished connections.
    fn dispatch(&mut self, ctx: &Context<'_>, policy: &Policy) {
        self.completions.clear();
        let completions = self
            .ring
            .completion()
            .map(|c: cqueue::Entry| (c.user_data(), c.result()));
        self.completions.extend(completions);
        for i in 0..self.completions.len() {
            let (data, result) = self.completions[i];
            let (kind, generation, index) = decode(data);
            match kind {
                KIND_ACCEPT => {
                    self.accept_busy = false;
                    if self.accept_exhausted(result, ctx.now_ms) {
                        continue;
                    }
                    self.accepted(result, policy, ctx.now_ms);
                }
                KIND_TICK => self.tick_busy = false,
                KIND_CANCEL => {}
                // New records: the next arm() fills every Active connection.
                KIND_DOORBELL => self.doorbell_busy = false,
                KIND_RECV | KIND_SEND | KIND_SENDMSG => {
                    let slot = &mut self.slots[index as usize];
                    assert_eq!(
                        slot.generation & 0x00ff_ffff,
                        generation,
                        "stale completion"
                    );
                    if kind == KIND_RECV {
                        slot.recv_busy = false;
                        received(slot, result, ctx);
                    } else if kind == KIND_SENDMSG {
                        slot.send_busy = false;
                        self.bodies.borrowed -= 1;
                        let scratch = &mut self.scratch;
                        let arenas = (&self.bodies, &self.own, &*self.pools.parts);
                        sent_batch(slot, result, ctx, arenas, scratch);
                    } else {
                        slot.send_busy = false;
                        sent(slot, result, ctx);
                    }
                }
                _ => unreachable!("unknown completion kind {kind}"),
            }
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if finish(slot, policy, ctx, self.config, self.shared) {
                self.free.push(u32::try_from(index).expect("slots fit u32"));
            }
        }
    }
}

impl Slot {
    /// A free slot, its connection allocated at startup.
    fn new(areas: &mut Areas, index: usize, policy: &Policy) -> Self {
        Self {
            fd: -1,
            generation: 0,
            conn: None,
            send: areas.send.share(index),
            send_len: 0,
            send_off: 0,
            parts_base: 0,
            parts_len: 0,
            batch_len: 0,
            own_base: None,
            // SAFETY: msghdr is plain data for which all zeroes is a valid (empty) value.
            msg: Box::new(unsafe { std::mem::zeroed() }),
            recv_busy: false,
            send_busy: false,
            progress_ms: 0,
            shut: false,
            peer: None,
            spare: Some(Connection::new(policy, Permitted::ALL, 0)),
        }
    }
}

/// One array per kind of slot buffer, for every slot of a worker, in an anonymous mapping:
/// the kernel maps a page only when a slot first writes to it, so the thousands of slots
/// reserved at startup cost no resident memory until they carry connections (an allocator
/// would touch a header page per buffer, or zero them).
struct Areas {
    send: Area<u8>,
    parts: Area<Part>,
    iov: Area<libc::iovec>,
}

impl Areas {
    /// Send buffers per slot; batch parts and iovecs as pools for the batches of one loop
    /// iteration (at most one batch per slot, so `slots * PARTS_MAX` suffices), packed from
    /// the start each iteration: only as many pages are resident as the busiest iteration
    /// used, however many connections are open.
    fn new(slots: usize, send_buffer: usize) -> io::Result<Self> {
        Ok(Self {
            send: Area::new(slots, send_buffer)?,
            parts: Area::new(1, slots * PARTS_MAX)?,
            iov: Area::new(1, slots * PARTS_MAX)?,
        })
    }
}

/// The parts and iovecs of an iteration's batches (see [`Areas::new`]).
struct Pools {
    parts: Share<Part>,
    iov: Share<libc::iovec>,
    /// Entries handed out this iteration.
    used: usize,
}

/// `slots` arrays of `per_slot` values of `T`, zero-filled.
struct Area<T> {
    map: memmap2::MmapMut,
    per_slot: usize,
    slots: usize,
    shared: Vec<bool>,
    kind: std::marker::PhantomData<T>,
}

impl<T> Area<T> {
    /// Only for types valid as all-zero bytes (octets, `Part`, `iovec`: see `share`).
    fn new(slots: usize, per_slot: usize) -> io::Result<Self> {
        let bytes = std::mem::size_of::<T>() * per_slot * slots;
        Ok(Self {
            map: memmap2::MmapMut::map_anon(bytes.max(1))?,
            per_slot,
            slots,
            shared: vec![false; slots],
            kind: std::marker::PhantomData,
        })
    }

    /// Slot `index`'s array, handed out once.
    fn share(&mut self, index: usize) -> Share<T> {
        assert!(index < self.slots && !self.shared[index], "each array once");
        self.shared[index] = true;
        let base = self.map.as_mut_ptr().cast::<T>();
        // SAFETY: the mapping holds `slots * per_slot` values of `T` (page-aligned, so
        // aligned for `T`); slot `index`'s range lies inside it and is handed out once.
        let ptr = unsafe { base.add(index * self.per_slot) };
        Share {
            ptr: ptr::NonNull::new(ptr).expect("a mapping is not at address 0"),
            len: self.per_slot,
        }
    }
}

/// A slot's array in an [`Area`]: owned by that slot alone; the area outlives it (the
/// worker drops its slots before its areas).
struct Share<T> {
    ptr: ptr::NonNull<T>,
    len: usize,
}

impl<T> std::ops::Deref for Share<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr..ptr + len` is this slot's range of a live mapping, zero-filled at
        // first, and only ever written as `T` (octets, `Part`, `iovec`: each valid as all
        // zero bytes); no other `Share` covers it.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for Share<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// The worker's own arena: the own octets of every batch built in one loop iteration
/// (prefixes of LEASEQUERY-DATA, control frames, keepalives), so that a connection's own
/// buffer is touched only by Bulk answers and by what a slow socket did not take. Emptied at
/// the top of an iteration when no `sendmsg` borrows it (they complete at once).
struct Own {
    map: memmap2::MmapMut,
    used: usize,
}

impl Own {
    fn new(octets: usize) -> io::Result<Self> {
        Ok(Self {
            map: memmap2::MmapMut::map_anon(octets.max(2 * DATA_FRAME_MAX))?,
            used: 0,
        })
    }

    fn octets(&self) -> &[u8] {
        &self.map
    }
}

/// Where a worker sends the index lookups of its Bulk queries (src/server/lookup.rs).
struct Asks<'a> {
    mail: &'a Mail,
    doorbells: &'a Doorbells,
    /// This worker's index (where the answers go).
    worker: usize,
}

/// If the slot's Bulk query just started and wants an index lookup, ask every shard's
/// owner (one note each); a full mailbox makes the query scan instead.
fn ask_owners(slot: &mut Slot, index: usize, asks: &Asks<'_>, ctx: &Context<'_>) {
    let Some(conn) = &mut slot.conn else { return };
    let shards = ctx.readers.len();
    let Some((key, query)) = conn.take_lookup(shards, ctx.now_ms) else {
        return;
    };
    let workers = asks.mail.outboxes.len();
    for shard in 0..shards {
        let owner = shard % workers;
        let note = Note::Lookup {
            from: asks.worker,
            slot: u32::try_from(index).expect("slots fit u32"),
            generation: slot.generation,
            query,
            shard: u16::try_from(shard).expect("shards fit u16"),
            key: key.clone(),
        };
        if asks.mail.outboxes[owner].try_send(note).is_err() {
            // Answers already asked for are ignored once the session scans.
            conn.lookup_failed();
            return;
        }
        asks.doorbells.ring_one(owner);
    }
}

/// What `arm` builds batches with.
struct Bufs<'a> {
    bodies: &'a mut Bodies,
    own: &'a mut Own,
    pools: &'a mut Pools,
    scratch: &'a mut [u8],
    vectored: bool,
}

/// Queue a receive and a send for a connection that needs them.
fn arm(
    sq: &mut io_uring::SubmissionQueue<'_>,
    slot: &mut Slot,
    index: usize,
    ctx: &Context<'_>,
    bufs: Bufs<'_>,
) {
    let index = u32::try_from(index).expect("slots fit u32");
    let Some(conn) = &mut slot.conn else { return };
    let pool_room = bufs.pools.parts.len() - bufs.pools.used;
    if slot.send_off == slot.send_len && !slot.send_busy && pool_room >= PARTS_MAX {
        slot.send_off = 0;
        slot.send_len = 0;
        // Bulk answers are copied per connection anyway: built in its own buffer. The rest
        // goes to the worker's own arena, bounded so that a spill fits the own buffer, or,
        // when the arena is spent (a send still borrows it), to the own buffer too.
        let bulk = conn.is_bulk();
        let base = bufs.own.used;
        let room = (bufs.own.map.len() - base).min(slot.send.len());
        let in_arena = !bulk && room >= 2 * DATA_FRAME_MAX;
        let own: &mut [u8] = if in_arena {
            &mut bufs.own.map[base..base + room]
        } else {
            &mut slot.send
        };
        let parts_base = bufs.pools.used;
        let pool = &mut bufs.pools.parts[parts_base..parts_base + PARTS_MAX];
        let mut batch = Batch::new(own, pool, bufs.bodies);
        conn.transmit(ctx, &mut batch);
        let (len, own_len, parts) = (batch.len(), batch.own_len(), batch.parts().len());
        bufs.pools.used += parts;
        slot.parts_base = parts_base;
        add(&ctx.counters.frames, batch.frames() as u64);
        slot.own_base = in_arena.then_some(base);
        if in_arena {
            bufs.own.used += own_len;
        }
        if len == 0 {
            slot.progress_ms = ctx.now_ms;
        } else if bulk {
            // Own frames only: one run from the start of the buffer.
            let run = bufs.pools.parts[parts_base];
            assert!(parts == 1 && run.start == 0 && run.len() == len);
            slot.send_len = len;
        } else {
            slot.parts_len = parts;
            slot.batch_len = len;
            if bufs.vectored && push_batch(sq, slot, index, (bufs.bodies, bufs.own, bufs.pools)) {
                bufs.bodies.borrowed += 1;
                add(&ctx.counters.batches, 1);
            } else {
                // Copied sends (`vectored_sends = false`), or no room in the submission
                // queue: lay the batch out in the own buffer and send it from there.
                let arenas = (&*bufs.bodies, &*bufs.own, &*bufs.pools.parts);
                spill(slot, 0, arenas, bufs.scratch);
            }
        }
    }
    let Some(conn) = &mut slot.conn else { return };
    if !slot.send_busy && slot.send_off < slot.send_len {
        let data = &slot.send[slot.send_off..slot.send_len];
        let len = u32::try_from(data.len()).expect("send buffer below 4 GiB");
        let send = opcode::Send::new(types::Fd(slot.fd), data.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(KIND_SEND, slot.generation, index));
        // SAFETY: the send buffer belongs to the slot and is not touched until this send's
        // completion (rule 1); the fd stays open while it is in flight (rule 2).
        if unsafe { sq.push(&send) }.is_ok() {
            slot.send_busy = true;
            add(&ctx.counters.sends, 1);
        }
    }
    if !slot.recv_busy && conn.closed().is_none() && !slot.shut {
        let spare = conn.spare();
        if !spare.is_empty() {
            let len = u32::try_from(spare.len()).expect("frames below 4 GiB");
            let recv = opcode::Recv::new(types::Fd(slot.fd), spare.as_mut_ptr(), len)
                .build()
                .user_data(user_data(KIND_RECV, slot.generation, index));
            // SAFETY: the decoder's spare region is not touched until this receive completes
            // (one receive in flight; frames are handled only after its completion).
            if unsafe { sq.push(&recv) }.is_ok() {
                slot.recv_busy = true;
            }
        }
    }
}

/// Queue the slot's batch as one `sendmsg` (`MSG_DONTWAIT`: completed at once, see the
/// module docs); false when the submission queue is full.
fn push_batch(
    sq: &mut io_uring::SubmissionQueue<'_>,
    slot: &mut Slot,
    index: u32,
    (bodies, own, pools): (&Bodies, &Own, &mut Pools),
) -> bool {
    let arena = bodies.arena();
    let span = slot.parts_base..slot.parts_base + slot.parts_len;
    let own_octets: &[u8] = match slot.own_base {
        Some(base) => &own.octets()[base..],
        None => &slot.send,
    };
    let iovs = &mut pools.iov[span.clone()];
    for (iov, part) in iovs.iter_mut().zip(&pools.parts[span]) {
        let source: &[u8] = if part.shared { arena } else { own_octets };
        let octets = &source[part.start as usize..part.end as usize];
        *iov = libc::iovec {
            iov_base: octets.as_ptr().cast_mut().cast(),
            iov_len: octets.len(),
        };
    }
    slot.msg.msg_iov = iovs.as_mut_ptr();
    slot.msg.msg_iovlen = slot.parts_len;
    let flags = u32::try_from(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL).expect("flags");
    let send = opcode::SendMsg::new(types::Fd(slot.fd), &raw const *slot.msg)
        .flags(flags)
        .build()
        .user_data(user_data(KIND_SENDMSG, slot.generation, index));
    // SAFETY: the header and the iovecs belong to the slot, the arenas to the worker; none
    // is written or freed until this completion (rule 1: both arenas are emptied only while
    // `Bodies::borrowed` is zero); the fd stays open meanwhile (rule 2).
    let pushed = unsafe { sq.push(&send) }.is_ok();
    slot.send_busy = pushed;
    pushed
}

/// A batch `sendmsg` completed.
fn sent_batch(
    slot: &mut Slot,
    result: i32,
    ctx: &Context<'_>,
    arenas: (&Bodies, &Own, &[Part]),
    scratch: &mut [u8],
) {
    if slot.conn.as_ref().is_some_and(|c| c.closed().is_some()) {
        return; // Evicted or failed meanwhile: the rest is dropped.
    }
    let taken = match usize::try_from(result) {
        Ok(n) => n,
        Err(_) if result == -libc::EAGAIN => 0,
        // EPIPE, ECONNRESET: close quietly (S-63).
        Err(_) => {
            if let Some(conn) = &mut slot.conn {
                conn.abort(CloseReason::SendFailed);
            }
            return;
        }
    };
    add(&ctx.counters.bytes, taken as u64);
    if taken > 0 {
        slot.progress_ms = ctx.now_ms;
    }
    if taken < slot.batch_len {
        add(&ctx.counters.spills, 1);
        // The socket is full: the rest waits in the slot's own buffer (the slow path).
        spill(slot, taken, arenas, scratch);
    }
}

/// Move the batch's octets from `taken` on into the slot's own buffer, to be sent with a
/// plain `send`. The own parts may live in that same buffer, so the rest is assembled in
/// `scratch` first.
fn spill(
    slot: &mut Slot,
    taken: usize,
    (bodies, own, pool): (&Bodies, &Own, &[Part]),
    scratch: &mut [u8],
) {
    let rest = slot.batch_len - taken;
    let own_octets: &[u8] = match slot.own_base {
        Some(base) => &own.octets()[base..],
        None => &slot.send,
    };
    let parts = &pool[slot.parts_base..slot.parts_base + slot.parts_len];
    let at = gather(parts, own_octets, bodies.arena(), taken, scratch);
    assert_eq!(at, rest);
    slot.send[..rest].copy_from_slice(&scratch[..rest]);
    slot.parts_len = 0;
    slot.batch_len = 0;
    slot.send_off = 0;
    slot.send_len = rest;
}

/// Close one connection that answered its queries and has only waited since, for at least
/// ACTIVE_LQ_IDLE_TIMEOUT (S-11); true if one was found.
fn evict_idle(slots: &mut [Slot], now_ms: u64, idle_ms: u64) -> bool {
    let idle = slots
        .iter_mut()
        .filter_map(|s| s.conn.as_mut())
        .find(|c| c.idle_after_query(now_ms, idle_ms));
    idle.map(|conn| conn.abort(CloseReason::IdleAtCap))
        .is_some()
}

fn mapped(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}

fn allowed(allow: &[Prefix], ip: IpAddr) -> bool {
    allow.iter().any(|p| p.contains(mapped(ip)))
}

/// The query types of the longest requestor prefix containing `ip`; every type when none.
fn permitted_for(requestors: &[(Prefix, Permitted)], ip: IpAddr) -> Permitted {
    requestors
        .iter()
        .filter(|(p, _)| p.contains(mapped(ip)))
        .max_by_key(|(p, _)| p.len)
        .map_or(Permitted::ALL, |&(_, permitted)| permitted)
}

fn received(slot: &mut Slot, result: i32, ctx: &Context<'_>) {
    let Some(conn) = &mut slot.conn else { return };
    match usize::try_from(result) {
        Ok(n) => conn.received(n, ctx),
        // ECONNRESET and the like: the requestor is gone (style.md S15).
        Err(_) => conn.received(0, ctx),
    }
}

fn sent(slot: &mut Slot, result: i32, ctx: &Context<'_>) {
    if slot.conn.as_ref().is_some_and(|c| c.closed().is_some()) {
        // Evicted or failed meanwhile: what remains is dropped, whatever this send did.
        slot.send_off = slot.send_len;
        return;
    }
    match usize::try_from(result) {
        Ok(n) => {
            slot.send_off = (slot.send_off + n).min(slot.send_len);
            add(&ctx.counters.bytes, n as u64);
            if n > 0 {
                slot.progress_ms = ctx.now_ms;
            }
        }
        // EPIPE, ECONNRESET: close quietly (S-63).
        Err(_) => {
            slot.send_off = slot.send_len;
            if let Some(conn) = &mut slot.conn {
                conn.abort(CloseReason::SendFailed);
            }
        }
    }
}

/// Close a slot whose connection is done and has nothing in flight; true when freed.
fn finish(
    slot: &mut Slot,
    policy: &Policy,
    ctx: &Context<'_>,
    config: &NetConfig,
    shared: &Shared,
) -> bool {
    let Some(conn) = &mut slot.conn else {
        return false;
    };
    let now_ms = ctx.now_ms;
    conn.check_timeout(policy, now_ms);
    let timeout = if conn.is_active() {
        config.send_timeout_active_ms
    } else {
        config.send_timeout_bulk_ms
    };
    let blocked = slot.send_off < slot.send_len && now_ms >= slot.progress_ms + timeout;
    if blocked && conn.closed().is_none() {
        // S-61, S-62: the requestor stopped draining.
        add(&ctx.counters.evicted_send, 1);
        conn.abort(CloseReason::SendTimeout);
        slot.send_off = slot.send_len;
    }
    let done = conn.closed().is_some() && slot.send_off == slot.send_len;
    if !done {
        return false;
    }
    if !slot.shut {
        // Ends a receive in flight; the fd is closed once nothing is in flight (rule 2).
        // SAFETY: shutdown(2) on a descriptor this slot owns.
        unsafe { libc::shutdown(slot.fd, libc::SHUT_RDWR) };
        slot.shut = true;
    }
    if slot.recv_busy || slot.send_busy {
        return false;
    }
    // SAFETY: nothing is in flight on this descriptor and the slot owns it.
    drop(unsafe { OwnedFd::from_raw_fd(slot.fd) });
    slot.fd = -1;
    if let Some(reason) = slot.conn.as_ref().and_then(Connection::closed) {
        ctx.counters.close(reason);
    }
    slot.spare = slot.conn.take();
    ctx.counters.open.fetch_sub(1, Ordering::Relaxed);
    if let Some(ip) = slot.peer.take() {
        shared.release(ip, config.per_source_max);
    }
    shared.open.fetch_sub(1, Ordering::AcqRel);
    true
}

/// A listening socket for `addr` with SO_REUSEPORT, so that every worker has its own.
pub fn listener(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}
