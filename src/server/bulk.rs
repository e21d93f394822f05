//! A Bulk Leasequery over TCP (RFC 5460 §5, §7.2; RFC 7653 §5 time windows), sans-IO.
//!
//! A query by address or by client-id (without a time window) asks each shard's owner for
//! the matching clients' latest records ([`super::lookup`]) and reads just those. Every
//! other query — and a lookup that found too many or whose records moved — reads every
//! shard's log in `Mode::Latest`: each client's latest record, compaction copies
//! included, so the logs alone are a snapshot of the current state and no worker reads
//! another worker's table (style.md S18). The session keeps the bindings its
//! [`Selection`] matches, and writes them as framed messages:
//!
//! ```text
//! match found:  REPLY(+CLIENT_DATA #1) → DATA(CLIENT_DATA #2) … → DONE        (S-40, S-43)
//! no match:     REPLY without status and without CLIENT_DATA, nothing after   (S-41)
//! ```
//!
//! Ended leases are left out unless the query has a time window (D-4); with a window, only
//! bindings whose last change lies in it are sent (D-11). Work per call is bounded by the
//! caller's buffer and frame budget and by the cursors' skip bound.

use crate::store::model::{Binding, DuidBuf};
use crate::store::{Cursor, LogReader, Mode, Next, Shard};
use crate::wire::build::{framed, write_data, write_done, write_reply, Reply};
use crate::wire::client_data::{
    write_client_data, ClientDataInput, LeaseEntry, LeaseKind, RelayDataInput,
    LEASES_PER_CLIENT_MAX,
};
use crate::wire::{EncodeError, Writer, Xid};

use super::lookup::{Found as Hits, LookupKey, FOUND_MAX};
use super::select::{Key, Selection};

/// Longest wait for the shards' owners to answer a lookup; they answer within a loop
/// iteration unless a mailbox overflowed.
pub const LOOKUP_WAIT_MS: u64 = 1000;

/// Longest CLIENT_DATA a Bulk reply carries (the store's largest binding fits).
pub const CLIENT_DATA_MAX: usize = 4096;

/// Records a session examines per [`BulkSession::fill`] call: bounds one call's work when
/// few records match (about 1.5 ms at the measured scan rate).
pub const SCAN_PER_FILL_MAX: usize = 16_384;

/// Where a Bulk session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More to send: call [`BulkSession::fill`] again.
    More,
    /// The last message (REPLY without data, or DONE) has been written.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Reply,
    Data,
    Done,
}

/// One Bulk query being answered.
pub struct BulkSession {
    xid: Xid,
    requestor: DuidBuf,
    selection: Selection,
    cursors: Vec<Cursor>,
    shard: usize,
    state: State,
    /// Bindings sent so far.
    pub sent: u64,
    /// Frames written (REPLY, DATA, DONE).
    pub frames: u64,
    body: Box<[u8]>,
    /// Where the bindings come from: the logs, or index lookups.
    source: Source,
    /// Monotonic ms when the lookups were sent.
    asked_ms: u64,
    /// Records the lookups found: (shard, offset, client hash); allocated once.
    hits: Vec<(usize, u64, u64)>,
    /// The next of `hits` to send.
    next_hit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Scan every shard's log.
    Scan,
    /// The lookup key is still to be taken by the worker; then `Waiting`.
    Unsent,
    /// Waiting for this many shards' answers.
    Waiting(usize),
    /// Every shard answered: send `hits`.
    Hits,
}

impl BulkSession {
    /// A session for a validated query over the shards behind `readers`.
    pub fn new(xid: Xid, requestor: &[u8], selection: Selection, readers: &[LogReader]) -> Self {
        let mut session = Self {
            xid,
            requestor: DuidBuf::new(requestor).expect("a validated query has a DUID"),
            selection: selection.clone(),
            cursors: Vec::with_capacity(readers.len()),
            shard: 0,
            state: State::Reply,
            sent: 0,
            frames: 0,
            body: vec![0; CLIENT_DATA_MAX].into_boxed_slice(),
            source: Source::Scan,
            asked_ms: 0,
            hits: Vec::with_capacity(readers.len() * FOUND_MAX),
            next_hit: 0,
        };
        session.restart(xid, requestor, selection, readers);
        session
    }

    /// Drop the cursors (and the log segments they hold) while the session waits for its
    /// next query; their vector keeps its capacity.
    pub fn release(&mut self) {
        self.cursors.clear();
    }

    /// Answer another query with this session's buffers (nothing is allocated).
    pub fn restart(
        &mut self,
        xid: Xid,
        requestor: &[u8],
        selection: Selection,
        readers: &[LogReader],
    ) {
        self.xid = xid;
        self.requestor = DuidBuf::new(requestor).expect("a validated query has a DUID");
        self.selection = selection;
        self.cursors.clear();
        let starts = readers.iter().map(|r| Cursor::at_start(r, Mode::Latest));
        self.cursors.extend(starts);
        self.shard = 0;
        self.state = State::Reply;
        self.sent = 0;
        self.frames = 0;
        let point = matches!(self.selection.key, Key::Address(_) | Key::ClientId(_));
        let windowed = self.selection.start_time.is_some() || self.selection.end_time.is_some();
        // Time windows include ended leases, which the indexes do not hold (D-4): scan.
        self.source = if point && !windowed {
            Source::Unsent
        } else {
            Source::Scan
        };
        self.hits.clear();
        self.next_hit = 0;
    }

    /// What to look up in every shard's index, once: the worker asks each shard's owner
    /// and hands the answers to [`Self::found`]. `None` for a session that scans.
    pub fn take_lookup(&mut self, shards: usize, now_ms: u64) -> Option<LookupKey> {
        if self.source != Source::Unsent {
            return None;
        }
        self.source = Source::Waiting(shards);
        self.asked_ms = now_ms;
        match &self.selection.key {
            Key::Address(address) => Some(LookupKey::Address(*address)),
            Key::ClientId(duid) => Some(LookupKey::ClientId(*duid)),
            _ => unreachable!("only point queries look up"),
        }
    }

    /// True when the bindings come from index lookups (every shard answered, no doubt).
    pub fn looked_up(&self) -> bool {
        self.source == Source::Hits
    }

    /// The lookups could not be sent: scan instead.
    pub fn lookup_failed(&mut self) {
        self.scan_instead();
    }

    /// One shard's answer. Once every shard answered, the records are checked (still
    /// retained, still the client's); any doubt and the session scans instead.
    pub fn found(&mut self, hits: &Hits, readers: &[LogReader]) {
        let Source::Waiting(waiting) = self.source else {
            return; // Scanning already (an earlier answer overflowed).
        };
        let shard = usize::from(hits.shard);
        if hits.overflow || shard >= readers.len() {
            return self.scan_instead();
        }
        let records = hits.records().iter();
        self.hits
            .extend(records.map(|&(offset, client)| (shard, offset, client)));
        if waiting > 1 {
            self.source = Source::Waiting(waiting - 1);
            return;
        }
        let retained = |&(shard, offset, client): &(usize, u64, u64)| {
            readers[shard]
                .with_record(offset, |r| r.header.client_hash == client)
                .unwrap_or(false)
        };
        if self.hits.iter().all(retained) {
            self.source = Source::Hits;
        } else {
            self.scan_instead();
        }
    }

    /// Answers that do not come within [`LOOKUP_WAIT_MS`] (a worker that could not
    /// deliver one) are not waited for: the session scans.
    pub fn check_lookup(&mut self, now_ms: u64) {
        if matches!(self.source, Source::Waiting(_)) && now_ms >= self.asked_ms + LOOKUP_WAIT_MS {
            tracing::warn!("index lookups unanswered: scanning the logs instead");
            self.scan_instead();
        }
    }

    fn scan_instead(&mut self) {
        self.source = Source::Scan;
        self.hits.clear();
    }

    /// Write whole frames into `out` (at most `frames_max` of them) at server time `now`.
    /// Returns the octets written and whether the query is done.
    pub fn fill(
        &mut self,
        readers: &[LogReader],
        server_id: &[u8],
        now: u32,
        out: &mut [u8],
        frames_max: usize,
    ) -> (usize, Progress) {
        assert_eq!(readers.len(), self.cursors.len());
        let mut written = 0;
        let mut frames = 0;
        while self.state != State::Done && frames < frames_max {
            let Some(found) = self.next_match(readers, now) else {
                break; // The skip budget ran out: call again.
            };
            let body_len = match found {
                Found::Binding(len) => Some(len),
                Found::End => None,
            };
            let frame = self.frame(server_id, now, body_len, &mut out[written..]);
            let Ok(len) = frame else {
                break; // `out` is full: the caller sends it and calls again.
            };
            written += len;
            frames += 1;
            self.frames += 1;
            self.advance(body_len.is_some());
        }
        let progress = if self.state == State::Done {
            Progress::Done
        } else {
            Progress::More
        };
        (written, progress)
    }

    fn advance(&mut self, had_body: bool) {
        self.state = match (self.state, had_body) {
            (State::Reply | State::Data, true) => State::Data,
            (State::Reply | State::Data, false) | (State::Done, _) => State::Done,
        };
        if had_body {
            self.sent += 1;
        }
    }

    /// Build the next frame: REPLY, DATA or DONE, by state and whether a body is pending.
    fn frame(
        &self,
        server_id: &[u8],
        now: u32,
        body_len: Option<usize>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let base_time = self.selection.base_time.then_some(now);
        let body = body_len.map(|len| &self.body[..len]);
        framed(out, |w| match self.state {
            State::Reply => write_reply(
                w,
                &Reply {
                    xid: self.xid,
                    server_id,
                    client_id: Some(self.requestor.as_slice()),
                    status: None,
                    base_time,
                    client_data: body,
                },
            ),
            State::Data => match body {
                Some(body) => write_data(w, self.xid, None, base_time, Some(body)),
                None => write_done(w, self.xid, None, base_time),
            },
            State::Done => unreachable!("no frame after the last"),
        })
    }

    /// The next matching binding, encoded into `self.body`, or the end of all shards;
    /// `None` when the skip budget ran out first.
    fn next_match(&mut self, readers: &[LogReader], now: u32) -> Option<Found> {
        match self.source {
            Source::Scan => {}
            Source::Unsent | Source::Waiting(_) => return None,
            Source::Hits => return Some(self.next_hit(readers, now)),
        }
        for _ in 0..SCAN_PER_FILL_MAX {
            let Some(cursor) = self.cursors.get_mut(self.shard) else {
                return Some(Found::End);
            };
            let record = match cursor.next(&readers[self.shard]) {
                Next::Record(record) => record,
                Next::Again => continue,
                // The end of this shard's log (or history overtaken: a snapshot has no
                // history to lose, recycled records were carried forward first).
                Next::Pending | Next::HorizonPassed => {
                    self.shard += 1;
                    continue;
                }
            };
            if !self.selection.may_match(&record.header) {
                continue;
            }
            let Some(view) = Shard::view(&record) else {
                continue;
            };
            let include_ended = self.selection.include_ended(false);
            if !self.selection.matches(&view.binding, now, include_ended) {
                continue;
            }
            if let Some(len) = encode(
                &view.binding,
                now,
                include_ended,
                &self.selection,
                &mut self.body,
            ) {
                return Some(Found::Binding(len));
            }
        }
        None
    }
}

impl BulkSession {
    /// The next of the records the lookups found that matches, or the end.
    fn next_hit(&mut self, readers: &[LogReader], now: u32) -> Found {
        let include_ended = self.selection.include_ended(false);
        while let Some(&(shard, offset, client)) = self.hits.get(self.next_hit) {
            self.next_hit += 1;
            let (selection, body) = (&self.selection, &mut self.body);
            let encoded = readers[shard].with_record(offset, |record| {
                if record.header.client_hash != client {
                    return None;
                }
                let view = Shard::view(record)?;
                if !selection.matches(&view.binding, now, include_ended) {
                    return None;
                }
                encode(&view.binding, now, include_ended, selection, body)
            });
            match encoded {
                Some(Some(len)) => return Found::Binding(len),
                Some(None) => {}
                // Checked when the answers came; recycled since (the log rolled over).
                None => tracing::warn!(shard, offset, "a looked-up record was recycled"),
            }
        }
        Found::End
    }
}

enum Found {
    Binding(usize),
    End,
}

/// Encode a binding's CLIENT_DATA as of `now`; `None` when it has nothing to report (no
/// lease left to list, S-44).
fn encode(
    binding: &Binding,
    now: u32,
    include_ended: bool,
    selection: &Selection,
    out: &mut [u8],
) -> Option<usize> {
    let mut entries = [LeaseEntry {
        kind: LeaseKind::Address(core::net::Ipv6Addr::UNSPECIFIED),
        preferred: 0,
        valid: 0,
    }; LEASES_PER_CLIENT_MAX];
    let n = binding.entries(now, include_ended, &mut entries);
    if n == 0 {
        return None;
    }
    let relay = &binding.relay;
    let relay_data =
        (selection.relay_data && !relay.relay_forw.is_empty()).then(|| RelayDataInput {
            peer_address: relay.peer_address,
            relay_message: relay.relay_forw.as_slice(),
        });
    let clt_time = binding.clt_time(now);
    let input = ClientDataInput {
        client_id: binding.duid.as_slice(),
        leases: &entries[..n],
        clt_time,
        relay_data,
    };
    let mut w = Writer::new(out);
    write_client_data(&mut w, &input).ok()?;
    Some(w.len())
}
