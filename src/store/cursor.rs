//! Cursors: how readers on any thread follow a shard's log (architecture.md, "Fan-out").
//!
//! A cursor is a position plus the segment it is in; it costs no memory beyond that, so a
//! requestor's backlog is just how far its cursors lag. Three modes:
//! - [`Mode::All`]: every record, in log order (tests, replication);
//! - [`Mode::Live`]: binding changes only: carried copies and records already superseded by
//!   a later change of the same client are skipped (S-51 allows sending only the current
//!   state);
//! - [`Mode::Latest`]: every client's latest record, carried copies included (a Bulk
//!   snapshot);
//! - [`Mode::CatchUp`]: as Live, and only changes at or after `since` (S-52, S-56). When the
//!   horizon passes `since` during the scan the cursor reports [`Next::HorizonPassed`]
//!   (S-55).
//!
//! A position below the oldest retained segment yields [`Next::HorizonPassed`]: the records
//! it would have read were recycled.

use std::sync::Arc;

use super::log::{LogReader, RecordRef};
use super::model::time_at_or_after;
use super::record::{FLAG_CARRIED, KIND_CHANGE};
use super::segment::Segment;

/// What a cursor yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every record.
    All,
    /// Current binding changes.
    Live,
    /// Current binding changes at or after `since` (server time).
    CatchUp {
        /// LQ_START_TIME.
        since: u32,
    },
    /// Every client's latest record, compaction copies included: read from the start, a
    /// snapshot of the current state (Bulk Leasequery, S-41). A client that changes during
    /// the scan is seen again at its new record.
    Latest,
}

/// The result of [`Cursor::next`].
#[derive(Debug)]
pub enum Next<'c> {
    /// The next record.
    Record(RecordRef<'c>),
    /// Nothing new: the cursor is at the committed end.
    Pending,
    /// [`SKIP_MAX`] unwanted records were skipped; call again for more.
    Again,
    /// The history this cursor needs has been recycled.
    HorizonPassed,
}

/// A position in one shard's log.
#[derive(Debug)]
pub struct Cursor {
    position: u64,
    segment: Option<Arc<Segment>>,
    mode: Mode,
}

/// Bound on records skipped in one call, so one call does bounded work (style.md S1).
pub const SKIP_MAX: usize = 4096;

impl Cursor {
    /// A cursor at the committed end: it sees changes from now on.
    pub fn at_end(reader: &LogReader, mode: Mode) -> Self {
        Self {
            position: reader.committed_end(),
            segment: None,
            mode,
        }
    }

    /// A cursor at the oldest retained record.
    pub fn at_start(reader: &LogReader, mode: Mode) -> Self {
        Self {
            position: reader.oldest_start(),
            segment: None,
            mode,
        }
    }

    /// A catch-up cursor from `since`, or `None` when `since` is before the horizon (S-54).
    pub fn catch_up(reader: &LogReader, since: u32) -> Option<Self> {
        let position = reader.catch_up_start(since)?;
        Some(Self {
            position,
            segment: None,
            mode: Mode::CatchUp { since },
        })
    }

    /// The logical offset of the next record to read.
    pub const fn position(&self) -> u64 {
        self.position
    }

    /// Move ahead to `position`, a record start at or after this cursor's position that
    /// another cursor in the same mode reached by skipping only records this one would
    /// skip too (a worker shares such steps between its connections).
    pub fn advance_to(&mut self, position: u64) {
        assert!(position >= self.position, "cursors only move forward");
        self.position = position;
    }

    /// The mode.
    pub const fn mode(&self) -> Mode {
        self.mode
    }

    /// Switch mode (catch-up → live once caught up, S-53).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// True when the cursor is at the committed end.
    pub fn caught_up(&self, reader: &LogReader) -> bool {
        self.position >= reader.committed_end()
    }

    fn wants(&self, record: &RecordRef<'_>) -> bool {
        let h = &record.header;
        match self.mode {
            Mode::All => true,
            Mode::Live => {
                h.kind == KIND_CHANGE && h.flags & FLAG_CARRIED == 0 && !record.superseded
            }
            Mode::CatchUp { since } => {
                h.kind == KIND_CHANGE
                    && h.flags & FLAG_CARRIED == 0
                    && !record.superseded
                    && time_at_or_after(h.change_time, since)
            }
            Mode::Latest => h.kind == KIND_CHANGE && !record.superseded,
        }
    }

    /// The next record this cursor wants, skipping at most [`SKIP_MAX`] others.
    pub fn next(&mut self, reader: &LogReader) -> Next<'_> {
        let segment_bytes = reader.segment_bytes();
        for _ in 0..SKIP_MAX {
            if self.position < reader.oldest_start() {
                return Next::HorizonPassed;
            }
            if let Mode::CatchUp { since } = self.mode {
                if !time_at_or_after(since, reader.horizon()) {
                    return Next::HorizonPassed;
                }
            }
            if self.position >= reader.committed_end() {
                return Next::Pending;
            }
            let index = self.position / segment_bytes;
            if self.segment.as_ref().is_none_or(|s| s.index != index) {
                match reader.segment(index) {
                    Some(segment) => self.segment = Some(segment),
                    None => return Next::HorizonPassed,
                }
            }
            let segment = self.segment.as_ref().expect("set above");
            match reader.read_at(segment, self.position) {
                None => self.position = (index + 1) * segment_bytes,
                Some(record) => {
                    self.position += u64::from(record.header.length);
                    if self.wants(&record) {
                        // Re-borrow for the returned lifetime.
                        let segment = self.segment.as_ref().expect("set above");
                        let record = reader.read_at(segment, record.offset).expect("just read");
                        return Next::Record(record);
                    }
                }
            }
        }
        Next::Again
    }
}
