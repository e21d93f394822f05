//! One TCP leasequery connection, sans-IO: bytes in, framed messages out, time passed in.
//!
//! What it decides (protocol.md §3(a)):
//! - framing and message types: a malformed frame, or a message that has no business on a
//!   leasequery connection, closes it (S-25); REPLY/DATA/DONE sent to the server are
//!   discarded (S-24);
//! - STARTTLS: this build has no TLS, so REPLY TLSConnectionRefused and close (S-17);
//! - ACTIVELEASEQUERY: NotSupported and close while Active is off (S-2, S-6); NotAllowed and
//!   close while plain TCP is not explicitly allowed (S-4); a second query on an Active
//!   connection gets NotAllowed with its own xid and the stream goes on (D-8);
//! - LEASEQUERY: one Bulk query at a time — frames after it wait in the decoder, so no more
//!   is read than can be handled (S-12); at most `queries_max` per connection;
//! - refusals: the status of [`crate::wire::Error::disposition`], then close (S-39), or a
//!   silent discard (S-23);
//! - query types the requestor is not permitted get NotAllowed and close (S-9, S-27);
//! - no complete query within BULK_LQ_DATA_TIMEOUT closes the connection (S-10); the
//!   requestor closing its side closes ours (S-63).

use crate::ingest::links::Links;
use crate::store::model::DuidBuf;
use crate::store::LogReader;
use crate::wire::build::{framed, write_reply, write_starttls_reply, Reply};
use crate::wire::{
    parse_header, parse_query, Disposition, Error, FrameDecoder, Message, MessageType, Opt,
    OptionCode, Query, QueryKind, QueryType, StatusCode, Xid,
};

use super::active::{self, ActiveSession};
use super::bulk::{self, BulkSession};
use super::lookup::{Found, LookupKey};
use super::out::Batch;
use super::select::Selection;
use crate::metrics::{add, Counters};

/// Server-wide settings a connection follows (from the configuration, protocol.md §5).
#[derive(Clone, Debug)]
pub struct Policy {
    /// Our DUID (SERVERID).
    pub server_duid: DuidBuf,
    /// Active Leasequery enabled (S-2; off by default).
    pub active_enabled: bool,
    /// Plain TCP explicitly allowed for Active Leasequery (S-4; this build has no TLS).
    pub insecure_allowed: bool,
    /// Queries one connection may make (S-12).
    pub queries_max: u32,
    /// BULK_LQ_DATA_TIMEOUT: longest wait for a complete query, ms (S-10).
    pub query_wait_ms: u64,
    /// ACTIVE_LQ_IDLE_TIMEOUT, ms (S-58).
    pub idle_timeout_ms: u64,
    /// Largest message accepted (RFC 5460 §5.1).
    pub message_size_max: u16,
}

/// Query types a requestor may use: bit `n` for query type `n` (1..=5), bit 6 for Active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permitted(pub u8);

impl Permitted {
    /// Every query type and Active Leasequery.
    pub const ALL: Self = Self(0b111_1110);
    /// Bit for Active Leasequery.
    pub const ACTIVE: u8 = 1 << 6;

    fn allows(self, query: &Query<'_>) -> bool {
        let active = query.kind != QueryKind::Active || self.0 & Self::ACTIVE != 0;
        let type_bit = match query.filter.map(|f| f.key) {
            None => Self::ACTIVE,
            Some(key) => 1 << query_type(key).code(),
        };
        active && self.0 & type_bit != 0
    }
}

fn query_type(key: crate::wire::QueryKey<'_>) -> QueryType {
    use crate::wire::QueryKey as K;
    match key {
        K::Address(_) => QueryType::ByAddress,
        K::ClientId(_) => QueryType::ByClientId,
        K::RelayId(_) => QueryType::ByRelayId,
        K::LinkAddress => QueryType::ByLinkAddress,
        K::RemoteId(_) => QueryType::ByRemoteId,
    }
}

/// Why a connection closes, for the "closed by reason" counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The byte stream is not valid framing, or a message has no business here (S-25).
    Protocol(&'static str),
    /// A query was refused with this status (S-39, S-6, S-29, D-2).
    Refused(StatusCode),
    /// STARTTLS in a build without TLS (S-17).
    TlsRefused,
    /// No complete query in time (S-10).
    QueryTimeout,
    /// The requestor closed its side (S-63).
    PeerClosed,
    /// The Active query ended (shutdown, or the requestor fell behind the history).
    QueryTerminated,
    /// The per-connection query limit was used up (S-12).
    QueryLimit,
    /// The requestor stopped reading for longer than the send timeout (S-61, S-62).
    SendTimeout,
    /// A send failed (S-63).
    SendFailed,
    /// lqd is shutting down.
    Shutdown,
    /// Closed while idle to make room under the connection cap (S-11).
    IdleAtCap,
}

enum Running {
    None,
    Bulk(Box<BulkSession>),
    Active(Box<ActiveSession>),
}

/// One connection.
pub struct Connection {
    decoder: FrameDecoder,
    running: Running,
    permitted: Permitted,
    queries: u32,
    /// Monotonic ms since which the connection waits for a query (opened, or last query
    /// ended).
    waiting_since_ms: u64,
    /// Control frames (refusals) waiting to be sent before anything else.
    control: Vec<u8>,
    /// Close once `control` is sent.
    closing: Option<CloseReason>,
    /// True once the connection must not be used any more.
    closed: Option<CloseReason>,
    /// Sessions of finished queries, kept for the next query (no allocation per query).
    spare_bulk: Option<Box<BulkSession>>,
    spare_active: Option<Box<ActiveSession>>,
}

/// Most octets of control frames queued at once (a few REPLYs).
const CONTROL_MAX: usize = 1024;

impl Connection {
    /// A connection accepted at monotonic `now_ms` from a requestor permitted `permitted`.
    pub fn new(policy: &Policy, permitted: Permitted, now_ms: u64) -> Self {
        Self {
            decoder: FrameDecoder::new(policy.message_size_max),
            running: Running::None,
            permitted,
            queries: 0,
            waiting_since_ms: now_ms,
            control: Vec::with_capacity(CONTROL_MAX),
            closing: None,
            closed: None,
            spare_bulk: None,
            spare_active: None,
        }
    }

    /// Make this finished connection a new one accepted at `now_ms`, keeping its buffers
    /// and sessions (a worker recycles the connection of each slot).
    pub fn reopen(&mut self, permitted: Permitted, now_ms: u64) {
        self.decoder.reset();
        self.retire_session();
        self.permitted = permitted;
        self.queries = 0;
        self.waiting_since_ms = now_ms;
        self.control.clear();
        self.closing = None;
        self.closed = None;
    }

    /// Keep the running session, if any, for the next query.
    fn retire_session(&mut self) {
        match std::mem::replace(&mut self.running, Running::None) {
            Running::None => {}
            Running::Bulk(mut session) => {
                session.release();
                self.spare_bulk = Some(session);
            }
            Running::Active(mut session) => {
                session.release();
                self.spare_active = Some(session);
            }
        }
    }

    /// Why the connection is closed, once it is: the caller closes the socket.
    pub const fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// True when the connection has answered at least one query and has only waited since,
    /// for at least `idle_ms`: the one to close when the cap is reached and a new requestor
    /// arrives (S-11).
    pub fn idle_after_query(&self, now_ms: u64, idle_ms: u64) -> bool {
        self.queries > 0
            && now_ms >= self.waiting_since_ms + idle_ms
            && matches!(self.running, Running::None)
            && self.control.is_empty()
            && self.closing.is_none()
            && self.closed.is_none()
    }

    /// True while a Bulk query is being answered on this connection.
    pub const fn is_bulk(&self) -> bool {
        matches!(self.running, Running::Bulk(_))
    }

    /// True while an Active query streams on this connection.
    pub const fn is_active(&self) -> bool {
        matches!(self.running, Running::Active(_))
    }

    /// The index lookup a Bulk query just started wants, once (see [`super::lookup`]),
    /// with the query's number on this connection: answers carry it back.
    pub fn take_lookup(&mut self, shards: usize, now_ms: u64) -> Option<(LookupKey, u32)> {
        match &mut self.running {
            Running::Bulk(session) => session
                .take_lookup(shards, now_ms)
                .map(|key| (key, self.queries)),
            _ => None,
        }
    }

    /// One shard's answer to the lookup of query number `query`; an answer to an earlier
    /// query of this connection (late, after that query went on by scanning) is dropped.
    pub fn found(&mut self, query: u32, hits: &Found, readers: &[LogReader]) {
        if let (Running::Bulk(session), true) = (&mut self.running, query == self.queries) {
            session.found(hits, readers);
        }
    }

    /// The lookup could not be asked: the Bulk query scans the logs instead.
    pub fn lookup_failed(&mut self) {
        if let Running::Bulk(session) = &mut self.running {
            session.lookup_failed();
        }
    }

    /// Space to receive into; then [`Self::received`].
    pub fn spare(&mut self) -> &mut [u8] {
        self.decoder.spare()
    }

    /// `n` octets were received into [`Self::spare`]; `n == 0` is the peer's end of stream
    /// (S-63). Handles every complete frame that can be handled now.
    pub fn received(&mut self, n: usize, ctx: &Context<'_>) {
        if n == 0 {
            self.close_now(CloseReason::PeerClosed);
            return;
        }
        self.decoder.commit(n);
        self.handle_frames(ctx);
    }

    /// S-10: close when no complete query arrived within BULK_LQ_DATA_TIMEOUT of the
    /// connection opening or of the last query's end.
    pub fn check_timeout(&mut self, policy: &Policy, now_ms: u64) {
        let waiting = matches!(self.running, Running::None);
        if waiting
            && self.closed.is_none()
            && now_ms >= self.waiting_since_ms + policy.query_wait_ms
        {
            self.close_now(CloseReason::QueryTimeout);
        }
    }

    /// Shutdown: an Active query ends with DONE QueryTerminated (S-59) and the connection
    /// closes after it; any other connection closes once what is queued has been sent.
    pub fn terminate(&mut self) {
        match &mut self.running {
            Running::Active(session) => session.terminate(),
            Running::Bulk(_) | Running::None => {
                self.closing.get_or_insert(CloseReason::Shutdown);
            }
        }
    }

    /// Close for a reason the socket layer found (send timeout, send error).
    pub fn abort(&mut self, reason: CloseReason) {
        self.close_now(reason);
    }

    fn close_now(&mut self, reason: CloseReason) {
        self.closed.get_or_insert(reason);
    }

    fn handle_frames(&mut self, ctx: &Context<'_>) {
        while self.closing.is_none() && self.closed.is_none() {
            // S-12: while a Bulk query runs, later frames wait in the decoder.
            if matches!(self.running, Running::Bulk(_)) {
                return;
            }
            // The frame is handled in place: the decoder is taken out of the connection
            // for the call (an empty stand-in allocates nothing) and put back after.
            let mut decoder = std::mem::take(&mut self.decoder);
            let more = match decoder.next_frame() {
                Ok(Some(frame)) => {
                    self.handle_message(frame, ctx);
                    true
                }
                Ok(None) => false,
                Err(error) => {
                    self.close_now(CloseReason::Protocol(error.reason()));
                    false
                }
            };
            self.decoder = decoder;
            if !more {
                return;
            }
        }
    }

    fn handle_message(&mut self, bytes: &[u8], ctx: &Context<'_>) {
        let Ok((msg_type, xid)) = parse_header(bytes) else {
            return self.close_now(CloseReason::Protocol("truncated"));
        };
        if msg_type == MessageType::StartTls {
            self.queue(|out| framed(out, |w| write_starttls_reply(w, xid, ctx.server_id(), true)));
            self.closing = Some(CloseReason::TlsRefused);
            return;
        }
        let message = Message::parse(bytes);
        let requestor = message.as_ref().ok().and_then(client_id);
        let query = message.and_then(|m| parse_query(&m, ctx.server_id()));
        match query {
            Ok(query) => self.start_query(&query, ctx),
            Err(error) => self.refuse_error(error, (msg_type, xid), requestor.as_ref(), ctx),
        }
    }

    fn refuse_error(
        &mut self,
        error: Error,
        (msg_type, xid): (MessageType, Xid),
        requestor: Option<&DuidBuf>,
        ctx: &Context<'_>,
    ) {
        match error.disposition() {
            Disposition::Discard => {}
            Disposition::Close => self.close_now(CloseReason::Protocol(error.reason())),
            // The query did not parse, so whether it asked for LQ_BASE_TIME is unknown.
            Disposition::Refuse(status) => {
                let active = msg_type == MessageType::ActiveLeasequery;
                ctx.counters.query(active, 0, Some(status));
                self.refuse(status, xid, requestor, None, true, ctx);
            }
        }
    }

    /// Answer REPLY with `status` (and LQ_BASE_TIME when the query asked for it, D-12);
    /// close afterwards when `close` (S-39; D-8 keeps the connection).
    fn refuse(
        &mut self,
        status: StatusCode,
        xid: Xid,
        requestor: Option<&DuidBuf>,
        base_time: Option<u32>,
        close: bool,
        ctx: &Context<'_>,
    ) {
        let client_id = requestor.map(DuidBuf::as_slice);
        self.queue(|out| {
            framed(out, |w| {
                write_reply(
                    w,
                    &Reply {
                        xid,
                        server_id: ctx.server_id(),
                        client_id,
                        status: Some((status, status.name())),
                        base_time,
                        client_data: None,
                    },
                )
            })
        });
        if close {
            self.closing = Some(CloseReason::Refused(status));
        }
    }

    fn start_query(&mut self, query: &Query<'_>, ctx: &Context<'_>) {
        let requestor = DuidBuf::new(query.requestor.bytes());
        let policy = ctx.policy;
        let base_time = query.wants_base_time().then_some(ctx.now);
        let active = query.kind == QueryKind::Active;
        let type_index = query
            .filter
            .map_or(6, |f| usize::from(query_type(f.key).code()));
        let refuse = |this: &mut Self, status: StatusCode, close: bool| {
            ctx.counters.query(active, type_index, Some(status));
            this.refuse(status, query.xid, requestor.as_ref(), base_time, close, ctx);
        };
        if self.is_active() {
            return refuse(self, StatusCode::NotAllowed, false); // D-8
        }
        if query.kind == QueryKind::Active && !policy.active_enabled {
            return refuse(self, StatusCode::NotSupported, true); // S-6
        }
        if query.kind == QueryKind::Active && !policy.insecure_allowed {
            return refuse(self, StatusCode::NotAllowed, true); // S-4: TLS-less build
        }
        if !self.permitted.allows(query) {
            return refuse(self, StatusCode::NotAllowed, true); // S-9, S-27
        }
        if self.queries >= policy.queries_max {
            return refuse(self, StatusCode::QueryTerminated, true); // S-12, S-66
        }
        let selection = match Selection::from_query(query) {
            Ok(selection) => selection,
            Err(status) => return refuse(self, status, true),
        };
        if let Err(status) = selection.check_link(ctx.links) {
            return refuse(self, status, true); // S-31..S-35: NotConfigured
        }
        self.queries += 1;
        ctx.counters.query(active, type_index, None);
        let requestor = query.requestor.bytes();
        // A session of an earlier query is reused: allocation happens once per slot.
        self.running = match query.kind {
            QueryKind::Bulk => Running::Bulk(match self.spare_bulk.take() {
                Some(mut session) => {
                    session.restart(query.xid, requestor, selection, ctx.readers);
                    session
                }
                None => Box::new(BulkSession::new(
                    query.xid,
                    requestor,
                    selection,
                    ctx.readers,
                )),
            }),
            QueryKind::Active => {
                let (now_ms, idle_ms) = (ctx.now_ms, policy.idle_timeout_ms);
                Running::Active(match self.spare_active.take() {
                    Some(mut session) => {
                        session.restart(query.xid, requestor, selection, ctx.readers, now_ms);
                        session
                    }
                    None => Box::new(ActiveSession::new(
                        query.xid,
                        requestor,
                        selection,
                        ctx.readers,
                        now_ms,
                        idle_ms,
                    )),
                })
            }
        };
    }

    fn queue(&mut self, build: impl FnOnce(&mut [u8]) -> Result<usize, crate::wire::EncodeError>) {
        let mut buf = [0u8; 256];
        match build(&mut buf) {
            Ok(n) if self.control.len() + n <= CONTROL_MAX => {
                self.control.extend_from_slice(&buf[..n])
            }
            // A requestor that piles up refusals without reading them is dropped.
            _ => self.close_now(CloseReason::Protocol("control_backlog")),
        }
    }

    /// Write what is ready into `out` (whole frames, at most `frames_max`); returns the
    /// octets written. Check [`Self::closed`] afterwards.
    pub fn transmit(&mut self, ctx: &Context<'_>, batch: &mut Batch<'_>) {
        if self.closed.is_some() {
            return;
        }
        if !self.control.is_empty() {
            let control = &mut self.control;
            let copied = batch.write_own(1, |out| {
                let n = control.len().min(out.len());
                out[..n].copy_from_slice(&control[..n]);
                Ok::<_, std::convert::Infallible>(n)
            });
            let Ok(n) = copied;
            self.control.drain(..n);
            if !self.control.is_empty() {
                return;
            }
        }
        if let Some(reason) = self.closing.take() {
            self.close_now(reason);
            return;
        }
        let server_id = ctx.server_id();
        match &mut self.running {
            Running::None => {}
            Running::Bulk(session) => {
                session.check_lookup(ctx.now_ms);
                let mut progress = bulk::Progress::More;
                let frames_before = session.frames;
                let filled = batch.write_own(0, |out| {
                    let (n, p) =
                        session.fill(ctx.readers, server_id, ctx.now, out, BULK_FRAMES_MAX);
                    progress = p;
                    Ok::<_, std::convert::Infallible>(n)
                });
                let Ok(_) = filled;
                add(&ctx.counters.frames, session.frames - frames_before);
                if progress == bulk::Progress::Done {
                    let source = if session.looked_up() {
                        &ctx.counters.bulk_indexed
                    } else {
                        &ctx.counters.bulk_scanned
                    };
                    add(source, 1);
                    self.retire_session();
                    self.waiting_since_ms = ctx.now_ms;
                    self.handle_frames(ctx); // Queries that waited (S-12).
                }
            }
            Running::Active(session) => {
                let progress = session.fill(ctx.readers, server_id, ctx.now, ctx.now_ms, batch);
                match session.take_catch_up_end() {
                    Some(StatusCode::CatchUpComplete) => add(&ctx.counters.catch_up_complete, 1),
                    Some(_) => add(&ctx.counters.data_missing, 1),
                    None => {}
                }
                if progress == active::Progress::Ended {
                    self.closing = Some(CloseReason::QueryTerminated);
                }
            }
        }
    }
}

/// Bulk frames per batch: a Bulk answer is copied per connection (nothing to share).
const BULK_FRAMES_MAX: usize = 64;

/// What a connection needs from its worker for one call.
pub struct Context<'a> {
    /// Server-wide settings.
    pub policy: &'a Policy,
    /// Every shard's log.
    pub readers: &'a [LogReader],
    /// Known links (NotConfigured, S-31..S-35).
    pub links: &'a Links,
    /// Server time now.
    pub now: u32,
    /// Monotonic milliseconds now.
    pub now_ms: u64,
    /// The worker's counters (architecture.md, "Observability").
    pub counters: &'a Counters,
}

impl Context<'_> {
    fn server_id(&self) -> &[u8] {
        self.policy.server_duid.as_slice()
    }
}

fn client_id(message: &Message<'_>) -> Option<DuidBuf> {
    match message.options.find(OptionCode::ClientId) {
        Some(Opt::ClientId(d)) => DuidBuf::new(d.bytes()),
        _ => None,
    }
}
