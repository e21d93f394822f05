//! An Active Leasequery session (RFC 7653 §6.2.1, §8.4, §9.3), sans-IO.
//!
//! ```text
//! REPLY (status DataMissing if the start time is before the horizon, S-54)
//!   → DATA per changed binding (catch-up and real time interleaved, S-52)
//!   → DATA CatchUpComplete once every shard's cursor caught up (S-53)
//!   → DATA per changed binding …, DATA keepalive after ACTIVE_LQ_IDLE_TIMEOUT of silence
//!     (S-58, D-15)
//!   → DONE QueryTerminated + LQ_BASE_TIME on shutdown (S-59)
//! ```
//!
//! One cursor per shard. With LQ_START_TIME it starts at the shard's time index in catch-up
//! mode — changes at or after the start time, latest state only (S-56) — and keeps that
//! mode until it reaches the committed end, because every later record qualifies anyway;
//! then it turns live. History recycled under a catch-up ends it with DATA DataMissing
//! (S-55); under a live cursor (the requestor fell behind the retention) the query ends
//! with DONE QueryTerminated (architecture.md, "Fan-out" 3). The same filter applies to
//! catch-up and live data (D-13). Time comes in as arguments (style.md S11).

use crate::store::model::{time_at_or_after, DuidBuf};
use crate::store::record::{decode_template, TemplateFields};
use crate::store::{Cursor, LogReader, Mode, Next, RecordRef, Shard};
use crate::wire::build::{framed, write_data, write_done, write_reply, Reply, StatusOut};
use crate::wire::{EncodeError, StatusCode, Xid};

use super::body::write_body;
use super::out::{Batch, BodyKey, Refused, Step, StepRecord};
use super::select::Selection;

pub use super::out::BODY_MAX;

/// Messages that can wait at once: the REPLY, a status DATA and DONE (and one spare).
const PENDING_MAX: usize = 4;

/// Records a session examines per [`ActiveSession::fill`] call.
pub const SCAN_PER_FILL_MAX: usize = 16_384;

/// Where an Active session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing more to send now.
    Idle,
    /// More is ready: call [`ActiveSession::fill`] again.
    More,
    /// The query ended (DONE written); close the connection after sending (S-59).
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// The REPLY, with this status (DataMissing) or none.
    Reply(Option<StatusCode>),
    /// A DATA carrying a status (CatchUpComplete, DataMissing).
    Status(StatusCode),
    /// DONE with QueryTerminated.
    Done,
}

/// One Active query.
pub struct ActiveSession {
    xid: Xid,
    requestor: DuidBuf,
    selection: Selection,
    cursors: Vec<Cursor>,
    shard: usize,
    catching_up: bool,
    pending: Vec<Pending>,
    /// Monotonic milliseconds of the last message written (D-15).
    last_sent_ms: u64,
    idle_timeout_ms: u64,
    ended: bool,
    /// How the catch-up ended (CatchUpComplete or DataMissing), until the worker counts it.
    catch_up_end: Option<StatusCode>,
    /// Bindings sent.
    pub sent: u64,
}

impl ActiveSession {
    /// Start a session at server time `now`; `idle_timeout_ms` is ACTIVE_LQ_IDLE_TIMEOUT.
    pub fn new(
        xid: Xid,
        requestor: &[u8],
        selection: Selection,
        readers: &[LogReader],
        now_ms: u64,
        idle_timeout_ms: u64,
    ) -> Self {
        let mut session = Self {
            xid,
            requestor: DuidBuf::new(requestor).expect("a validated query has a DUID"),
            selection: selection.clone(),
            cursors: Vec::with_capacity(readers.len()),
            shard: 0,
            catching_up: false,
            pending: Vec::with_capacity(PENDING_MAX),
            last_sent_ms: now_ms,
            idle_timeout_ms,
            ended: false,
            catch_up_end: None,
            sent: 0,
        };
        session.restart(xid, requestor, selection, readers, now_ms);
        session
    }

    /// Drop the cursors (and the log segments they hold) while the session waits for its
    /// next query; their vector keeps its capacity.
    pub fn release(&mut self) {
        self.cursors.clear();
    }

    /// Serve another query with this session's buffers (nothing is allocated).
    pub fn restart(
        &mut self,
        xid: Xid,
        requestor: &[u8],
        selection: Selection,
        readers: &[LogReader],
        now_ms: u64,
    ) {
        self.xid = xid;
        self.requestor = DuidBuf::new(requestor).expect("a validated query has a DUID");
        let start_time = selection.start_time;
        self.selection = selection;
        self.cursors.clear();
        let mut reply_status = None;
        self.catching_up = false;
        if let Some(since) = start_time {
            let starts = readers.iter().map_while(|r| Cursor::catch_up(r, since));
            self.cursors.extend(starts);
            self.catching_up = self.cursors.len() == readers.len();
            // S-54: some shard's history does not reach back: DataMissing, live from now.
            reply_status = (!self.catching_up).then_some(StatusCode::DataMissing);
        }
        if !self.catching_up {
            set_live(&mut self.cursors, readers);
        }
        self.shard = 0;
        self.pending.clear();
        self.pending.push(Pending::Reply(reply_status));
        self.last_sent_ms = now_ms;
        self.ended = false;
        self.catch_up_end = reply_status;
        self.sent = 0;
    }

    /// True while the catch-up has not completed.
    pub const fn catching_up(&self) -> bool {
        self.catching_up
    }

    /// How the catch-up ended, once (for the worker's counters).
    pub fn take_catch_up_end(&mut self) -> Option<StatusCode> {
        self.catch_up_end.take()
    }

    /// When the next keepalive is due (monotonic ms), for the worker's timer.
    pub const fn keepalive_due_ms(&self) -> u64 {
        self.last_sent_ms + self.idle_timeout_ms
    }

    /// End the query: the next fill writes DONE QueryTerminated with LQ_BASE_TIME (S-59).
    pub fn terminate(&mut self) {
        if !self.ended && !self.pending.contains(&Pending::Done) {
            self.pending.push(Pending::Done);
        }
    }

    /// Add what is ready to `batch` at server time `now` and monotonic `now_ms`: pending
    /// status messages as frames of the connection's own, bindings as a prefix of its own
    /// plus the worker's shared body of the record (architecture.md, "Fan-out" 2).
    pub fn fill(
        &mut self,
        readers: &[LogReader],
        server_id: &[u8],
        now: u32,
        now_ms: u64,
        batch: &mut Batch<'_>,
    ) -> Progress {
        let before = batch.frames();
        let mut full = false;
        while !self.ended {
            if let Some(&next) = self.pending.first() {
                if batch
                    .write_own(1, |out| self.write_pending(next, server_id, now, out))
                    .is_err()
                {
                    full = true;
                    break;
                }
                continue;
            }
            if !batch.has_room_for_data() {
                full = true;
                break;
            }
            if !self.next_binding(readers, now, batch) {
                break;
            }
        }
        let wrote = batch.frames() > before;
        if wrote {
            self.last_sent_ms = now_ms;
        } else if !self.ended && now_ms >= self.keepalive_due_ms() {
            // S-58, D-15: nothing sent for ACTIVE_LQ_IDLE_TIMEOUT: a DATA without CLIENT_DATA.
            let base_time = self.selection.base_time.then_some(now);
            let keepalive = batch.write_own(1, |out| {
                framed(out, |w| write_data(w, self.xid, None, base_time, None))
            });
            if keepalive.is_ok() {
                self.last_sent_ms = now_ms;
            }
        }
        match (self.ended, full || !self.pending.is_empty()) {
            (true, _) => Progress::Ended,
            (false, true) => Progress::More,
            (false, false) => Progress::Idle,
        }
    }

    fn write_pending(
        &mut self,
        next: Pending,
        server_id: &[u8],
        now: u32,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let base_time = self.selection.base_time.then_some(now);
        let status = |code: StatusCode| -> StatusOut<'static> { (code, "") };
        let len = framed(out, |w| match next {
            Pending::Reply(code) => write_reply(
                w,
                &Reply {
                    xid: self.xid,
                    server_id,
                    client_id: Some(self.requestor.as_slice()),
                    status: code.map(status),
                    // S-54 asks for BASE_TIME with DataMissing whatever the ORO says.
                    base_time: if code.is_some() { Some(now) } else { base_time },
                    client_data: None,
                },
            ),
            Pending::Status(code) => {
                let base = if code == StatusCode::DataMissing {
                    Some(now)
                } else {
                    base_time
                };
                write_data(w, self.xid, Some(status(code)), base, None)
            }
            Pending::Done => write_done(
                w,
                self.xid,
                Some((StatusCode::QueryTerminated, "shutdown")),
                Some(now),
            ),
        })?;
        self.pending.remove(0);
        if next == Pending::Done {
            self.ended = true;
        }
        Ok(len)
    }

    /// Add the next matching record to `batch`: a prefix and the worker's shared body of
    /// the record re-based to `now` — or to the record's change time when the shard's clock
    /// already read the next second (the message's LQ_BASE_TIME must be the time its
    /// lifetimes count from, S-49). False when every cursor is at the committed end (or the
    /// scan budget ran out). The caller checked that the batch has room.
    fn next_binding(&mut self, readers: &[LogReader], now: u32, batch: &mut Batch<'_>) -> bool {
        // A live stream of every binding (the fan-out) shares its cursor steps with the
        // worker's other connections: one reads the log, the others jump (out::Step).
        let shared_steps = !self.selection.needs_binding() && !self.catching_up;
        let mut idle_shards = 0;
        for _ in 0..SCAN_PER_FILL_MAX {
            if idle_shards == self.cursors.len() {
                self.caught_up();
                return false;
            }
            let shard = self.shard;
            let shard_id = u16::try_from(shard).expect("shards fit u16");
            let from = self.cursors[shard].position();
            if shared_steps {
                match self.follow_step(readers, now, batch, shard) {
                    Some(true) => return true,
                    Some(false) => {
                        idle_shards = 0;
                        continue;
                    }
                    None => {}
                }
            }
            let selection = &self.selection;
            match self.cursors[shard].next(&readers[shard]) {
                Next::Record(record) => {
                    idle_shards = 0;
                    if !selection.may_match(&record.header) {
                        continue;
                    }
                    let found = StepRecord {
                        offset: record.offset,
                        sequence: record.header.sequence,
                        change_time: record.header.change_time,
                    };
                    let Some((template, fields)) = template_of(selection, &record, now) else {
                        continue;
                    };
                    let (key, base_time) = body_key(selection, shard_id, &found, now);
                    let relay = selection.relay_data;
                    let built = batch.data(self.xid, base_time, &key, |out| {
                        write_body(template, &fields, found.change_time, key.at, relay, out).ok()
                    });
                    self.count(built, &key);
                    if shared_steps {
                        let after = self.cursors[shard].position();
                        remember(batch, (shard_id, from), after, Some(found));
                    }
                    // Round robin: the next binding comes from the next shard.
                    self.shard = (shard + 1) % self.cursors.len();
                    return true;
                }
                Next::Again => {
                    if shared_steps {
                        let after = self.cursors[shard].position();
                        remember(batch, (shard_id, from), after, None);
                    }
                }
                Next::Pending => {
                    idle_shards += 1;
                    self.shard = (self.shard + 1) % self.cursors.len();
                }
                Next::HorizonPassed => self.horizon_passed(readers, shard),
            }
        }
        false
    }

    /// Count a binding added to the batch. Room was checked: only a body that cannot be
    /// built (a template over BODY_MAX, which the store does not write) is refused; it is
    /// skipped, loudly.
    fn count(&mut self, built: Result<(), Refused>, key: &BodyKey) {
        match built {
            Ok(()) => self.sent += 1,
            Err(refused) => tracing::error!(
                shard = key.shard,
                sequence = key.sequence,
                ?refused,
                "a record's CLIENT_DATA could not be built: not sent"
            ),
        }
    }

    /// Take the step another connection's cursor took from where `shard`'s cursor is, if
    /// any: `Some(true)` when it found a record (sent), `Some(false)` when it only skipped.
    fn follow_step(
        &mut self,
        readers: &[LogReader],
        now: u32,
        batch: &mut Batch<'_>,
        shard: usize,
    ) -> Option<bool> {
        let shard_id = u16::try_from(shard).expect("shards fit u16");
        let step = batch
            .bodies()
            .step(shard_id, self.cursors[shard].position())?;
        self.cursors[shard].advance_to(step.after);
        let Some(found) = step.record else {
            return Some(false);
        };
        self.send_stepped(readers, now, batch, shard, found);
        Some(true)
    }

    /// Send the record another connection's cursor step found: its body is usually in the
    /// arena already; if not, it is read back from the log. A record recycled meanwhile
    /// means this cursor fell behind the retained history.
    fn send_stepped(
        &mut self,
        readers: &[LogReader],
        now: u32,
        batch: &mut Batch<'_>,
        shard: usize,
        found: StepRecord,
    ) {
        let shard_id = u16::try_from(shard).expect("shards fit u16");
        let (key, base_time) = body_key(&self.selection, shard_id, &found, now);
        let relay = self.selection.relay_data;
        let mut recycled = false;
        let built = batch.data(self.xid, base_time, &key, |out| {
            let body = readers[shard].with_record(found.offset, |record| {
                let (template, fields) = decode_template(record.payload).ok()?;
                write_body(template, &fields, found.change_time, key.at, relay, out).ok()
            });
            recycled = body.is_none();
            body.flatten()
        });
        if recycled {
            self.horizon_passed(readers, shard);
        } else {
            self.count(built, &key);
        }
        self.shard = (shard + 1) % self.cursors.len();
    }

    /// Every cursor reached the committed end: a catch-up is complete (S-53).
    fn caught_up(&mut self) {
        if self.catching_up {
            self.catching_up = false;
            for cursor in &mut self.cursors {
                cursor.set_mode(Mode::Live);
            }
            self.pending
                .push(Pending::Status(StatusCode::CatchUpComplete));
            self.catch_up_end = Some(StatusCode::CatchUpComplete);
        }
    }

    fn horizon_passed(&mut self, readers: &[LogReader], shard: usize) {
        if self.catching_up {
            // S-55: DataMissing with BASE_TIME; catch-up is over, real time goes on.
            self.catching_up = false;
            set_live(&mut self.cursors, readers);
            self.pending.push(Pending::Status(StatusCode::DataMissing));
            self.catch_up_end = Some(StatusCode::DataMissing);
        } else {
            // The requestor fell behind the retained history: no silent gap.
            tracing::warn!(shard, "active requestor fell behind the history horizon");
            self.cursors[shard] = Cursor::at_end(&readers[shard], Mode::Live);
            self.terminate();
        }
    }
}

/// What a session sends of `record`: its CLIENT_DATA template and time fields, when the
/// binding matches the selection.
fn template_of<'r>(
    selection: &Selection,
    record: &RecordRef<'r>,
    now: u32,
) -> Option<(&'r [u8], TemplateFields)> {
    if selection.needs_binding() {
        let view = Shard::view(record)?;
        selection
            .matches(&view.binding, now, true)
            .then_some((view.template, view.time_fields))
    } else {
        // Every binding: the template is all that is sent (fan-out path).
        decode_template(record.payload).ok()
    }
}

/// Share a cursor step (from `at` = (shard, position) to `after`) with the worker's other
/// connections.
fn remember(batch: &mut Batch<'_>, at: (u16, u64), after: u64, record: Option<StepRecord>) {
    batch.bodies().remember(at.0, at.1, Step { after, record });
}

/// The shared body's key for a record, and the message's LQ_BASE_TIME: the second the
/// body is re-based to (`now`, or the record's change time when the owner's clock
/// already read the next second, S-49).
fn body_key(
    selection: &Selection,
    shard: u16,
    found: &StepRecord,
    now: u32,
) -> (BodyKey, Option<u32>) {
    let at = if time_at_or_after(now, found.change_time) {
        now
    } else {
        found.change_time
    };
    let key = BodyKey {
        shard,
        relay: selection.relay_data,
        at,
        sequence: found.sequence,
    };
    (key, selection.base_time.then_some(at))
}

/// Every shard's cursor at its committed end, live (into the session's own vector).
fn set_live(cursors: &mut Vec<Cursor>, readers: &[LogReader]) {
    cursors.clear();
    cursors.extend(readers.iter().map(|r| Cursor::at_end(r, Mode::Live)));
}
