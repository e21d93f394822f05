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
use crate::store::record::decode_template;
use crate::store::{Cursor, LogReader, Mode, Next, Shard};
use crate::wire::build::{framed, write_data, write_done, write_reply, Reply, StatusOut};
use crate::wire::{EncodeError, StatusCode, Xid};

use super::body::write_body;
use super::select::Selection;

/// Longest CLIENT_DATA body sent.
pub const BODY_MAX: usize = 4096;

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
    body: Box<[u8]>,
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
        let since = selection.start_time;
        let starts: Option<Vec<Cursor>> = since.and_then(|since| {
            readers
                .iter()
                .map(|r| Cursor::catch_up(r, since))
                .collect::<Option<Vec<_>>>()
        });
        let (cursors, reply_status, catching_up) = match (since, starts) {
            (Some(_), Some(cursors)) => (cursors, None, true),
            // S-54: some shard's history does not reach back: DataMissing, live from now.
            (Some(_), None) => (live_cursors(readers), Some(StatusCode::DataMissing), false),
            (None, _) => (live_cursors(readers), None, false),
        };
        Self {
            xid,
            requestor: DuidBuf::new(requestor).expect("a validated query has a DUID"),
            selection,
            cursors,
            shard: 0,
            catching_up,
            pending: {
                let mut pending = Vec::with_capacity(4);
                pending.push(Pending::Reply(reply_status));
                pending
            },
            last_sent_ms: now_ms,
            idle_timeout_ms,
            ended: false,
            body: vec![0; BODY_MAX].into_boxed_slice(),
            sent: 0,
        }
    }

    /// True while the catch-up has not completed.
    pub const fn catching_up(&self) -> bool {
        self.catching_up
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

    /// Write whole frames into `out` (at most `frames_max`) at server time `now` and
    /// monotonic `now_ms`.
    pub fn fill(
        &mut self,
        readers: &[LogReader],
        server_id: &[u8],
        now: u32,
        now_ms: u64,
        out: &mut [u8],
        frames_max: usize,
    ) -> (usize, Progress) {
        let mut written = 0;
        let mut frames = 0;
        while frames < frames_max && !self.ended {
            let wrote = if let Some(&next) = self.pending.first() {
                self.write_pending(next, server_id, now, &mut out[written..])
            } else if let Some((len, at)) = self.next_binding(readers, now) {
                self.write_binding(len, at, &mut out[written..])
            } else {
                break;
            };
            let Ok(len) = wrote else {
                return (written, Progress::More);
            };
            written += len;
            frames += 1;
            self.last_sent_ms = now_ms;
        }
        if frames == 0 && !self.ended && now_ms >= self.keepalive_due_ms() {
            // S-58, D-15: nothing sent for ACTIVE_LQ_IDLE_TIMEOUT: a DATA without CLIENT_DATA.
            let base_time = self.selection.base_time.then_some(now);
            if let Ok(len) = framed(out, |w| write_data(w, self.xid, None, base_time, None)) {
                self.last_sent_ms = now_ms;
                return (len, Progress::Idle);
            }
        }
        let progress = match (self.ended, frames == frames_max || !self.pending.is_empty()) {
            (true, _) => Progress::Ended,
            (false, true) => Progress::More,
            (false, false) => Progress::Idle,
        };
        (written, progress)
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

    fn write_binding(
        &mut self,
        body_len: usize,
        now: u32,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let base_time = self.selection.base_time.then_some(now);
        let body = &self.body[..body_len];
        let len = framed(out, |w| {
            write_data(w, self.xid, None, base_time, Some(body))
        })?;
        self.sent += 1;
        Ok(len)
    }

    /// The next matching record, its body re-based in `self.body`, with the server time the
    /// body is re-based to: `now`, or the record's change time when the shard thread's clock
    /// already read the next second (the message's LQ_BASE_TIME must be the time its
    /// lifetimes count from, S-49). `None` when every cursor is at the committed end (or
    /// the scan budget ran out).
    fn next_binding(&mut self, readers: &[LogReader], now: u32) -> Option<(usize, u32)> {
        let mut idle_shards = 0;
        for _ in 0..SCAN_PER_FILL_MAX {
            if idle_shards == self.cursors.len() {
                self.caught_up();
                return None;
            }
            let shard = self.shard;
            match self.cursors[shard].next(&readers[shard]) {
                Next::Record(record) => {
                    idle_shards = 0;
                    if !self.selection.may_match(&record.header) {
                        continue;
                    }
                    let change_time = record.header.change_time;
                    let at = if time_at_or_after(now, change_time) {
                        now
                    } else {
                        change_time
                    };
                    let relay = self.selection.relay_data;
                    let (template, fields) = if self.selection.needs_binding() {
                        let Some(view) = Shard::view(&record) else {
                            continue;
                        };
                        if !self.selection.matches(&view.binding, now, true) {
                            continue;
                        }
                        (view.template, view.time_fields)
                    } else {
                        // Every binding: the template is all that is sent (fan-out path).
                        let Ok(found) = decode_template(record.payload) else {
                            continue;
                        };
                        found
                    };
                    let written =
                        write_body(template, &fields, change_time, at, relay, &mut self.body);
                    if let Ok(len) = written {
                        // Round robin: the next binding comes from the next shard.
                        self.shard = (shard + 1) % self.cursors.len();
                        return Some((len, at));
                    }
                }
                Next::Again => {}
                Next::Pending => {
                    idle_shards += 1;
                    self.shard = (self.shard + 1) % self.cursors.len();
                }
                Next::HorizonPassed => self.horizon_passed(readers, shard),
            }
        }
        None
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
        }
    }

    fn horizon_passed(&mut self, readers: &[LogReader], shard: usize) {
        if self.catching_up {
            // S-55: DataMissing with BASE_TIME; catch-up is over, real time goes on.
            self.catching_up = false;
            self.cursors = live_cursors(readers);
            self.pending.push(Pending::Status(StatusCode::DataMissing));
        } else {
            // The requestor fell behind the retained history: no silent gap.
            tracing::warn!(shard, "active requestor fell behind the history horizon");
            self.cursors[shard] = Cursor::at_end(&readers[shard], Mode::Live);
            self.terminate();
        }
    }
}

fn live_cursors(readers: &[LogReader]) -> Vec<Cursor> {
    readers
        .iter()
        .map(|r| Cursor::at_end(r, Mode::Live))
        .collect()
}
