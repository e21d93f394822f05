//! The per-shard change log: segments, the committed end, the time index, retention and
//! recovery. One [`LogWriter`] (the owning worker) appends; any number of readers on other
//! threads follow through [`LogReader`] and [`super::cursor::Cursor`].
//!
//! Logical offsets: segment `k` covers offsets `k * segment_bytes ..`, so an offset names
//! its segment without a lookup. A record never spans two segments: when fewer than
//! [`RECORD_LEN_MAX`] octets remain, the writer moves to the next segment and the zero
//! length left behind tells readers to jump.
//!
//! Retention and the horizon: when the log holds more than `segments_max` segments, or its
//! segments up to one whose newest change is older than `retention_age_s` (segments holding
//! only carried records do not count as history), the oldest segments are recycled. Before
//! a file is unlinked, every record in it that is still its client's latest is copied to the
//! head as a *carried* record, so the current state of every client survives (compaction); a
//! client whose latest record says it has no live lease and is older than the age limit is
//! dropped instead. The latest checkpoint is carried too. Before anything is carried, the
//! history horizon becomes one second after the last original change in the recycled
//! segment: every change at or after the horizon is still in the log as its client's latest
//! original record, so a catch-up from there is complete (S-54, S-56).
//!
//! Capacity: compaction can only make room while the live records (each client's latest and
//! the latest checkpoint) fit in `segments_max - 2` full segments; past that, a change that
//! needs a new segment is refused as [`AppendError::LogFull`] before anything is touched.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::record::{
    Header, FLAG_CARRIED, FLAG_NO_LIVE_LEASE, HEADER_LEN, KIND_CHANGE, KIND_CHECKPOINT,
    RECORD_ALIGN, RECORD_LEN_MAX, STATE_SUPERSEDED,
};
use super::segment::{parse_segment_name, Segment};

/// Log settings, validated by [`LogConfig::validate`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Directory of this shard's segments.
    pub dir: PathBuf,
    /// Size of one segment file.
    pub segment_bytes: usize,
    /// Most segments kept: retention by bytes is `segment_bytes * segments_max`.
    pub segments_max: usize,
    /// Retention by age: history older than this is recycled (seconds).
    pub retention_age_s: u32,
    /// Entries of the sparse time index (one per second that saw a change).
    pub time_index_entries_max: usize,
}

impl LogConfig {
    /// Check the relationships the log relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 4 * RECORD_LEN_MAX || !self.segment_bytes.is_multiple_of(4096) {
            return Err(format!(
                "segment_bytes {} must be a multiple of 4096 and at least {}",
                self.segment_bytes,
                4 * RECORD_LEN_MAX
            ));
        }
        if self.segments_max < 3 {
            return Err(format!(
                "segments_max {} must be at least 3",
                self.segments_max
            ));
        }
        if self.time_index_entries_max == 0 {
            return Err("time_index_entries_max must be at least 1".into());
        }
        Ok(())
    }
}

/// A record as a reader sees it.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// Logical offset of the record.
    pub offset: u64,
    /// Its header.
    pub header: Header,
    /// Its payload (after the header, padding included).
    pub payload: &'a [u8],
    /// True when a later record of the same client exists (or this record was carried).
    pub superseded: bool,
}

/// State shared between the writer and the readers.
#[derive(Debug)]
pub(crate) struct LogShared {
    segment_bytes: u64,
    /// End of the committed records (logical offset); Release by the writer, Acquire by
    /// readers.
    committed_end: AtomicU64,
    /// First offset of the oldest retained segment; a position below it was recycled.
    oldest_start: AtomicU64,
    /// Oldest change time a catch-up may start from (server time).
    horizon: AtomicU32,
    /// Retained segments, oldest first. Locked only on segment changes and lookups by
    /// cursors that cross into another segment.
    segments: Mutex<VecDeque<Arc<Segment>>>,
    /// (change time, offset of the first record with that time), ascending.
    time_index: Mutex<VecDeque<(u32, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks is already fatal for the shard; keep going
    // with the data, which is never left half-updated inside a critical section.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cloneable handle readers use to follow a shard's log.
#[derive(Clone, Debug)]
pub struct LogReader {
    shared: Arc<LogShared>,
}

impl LogReader {
    /// End of the committed records.
    pub fn committed_end(&self) -> u64 {
        self.shared.committed_end.load(Ordering::Acquire)
    }

    /// First offset still retained.
    pub fn oldest_start(&self) -> u64 {
        self.shared.oldest_start.load(Ordering::Acquire)
    }

    /// The history horizon: the oldest change time a catch-up can start from (S-54).
    pub fn horizon(&self) -> u32 {
        self.shared.horizon.load(Ordering::Acquire)
    }

    /// Segment size in octets.
    pub fn segment_bytes(&self) -> u64 {
        self.shared.segment_bytes
    }

    /// The retained segment with this index, if any.
    pub fn segment(&self, index: u64) -> Option<Arc<Segment>> {
        let segments = lock(&self.shared.segments);
        let first = segments.front()?.index;
        let at = usize::try_from(index.checked_sub(first)?).ok()?;
        segments.get(at).cloned()
    }

    /// Where a catch-up from `since` starts: the first record whose change time is at or
    /// after `since`, or an earlier position. `None` when `since` is before the horizon.
    pub fn catch_up_start(&self, since: u32) -> Option<u64> {
        if !super::model::time_at_or_after(since, self.horizon()) {
            return None;
        }
        let index = lock(&self.shared.time_index);
        let oldest = self.oldest_start();
        // First entry at or after `since`: records before it are older.
        let at = index.partition_point(|&(t, _)| !super::model::time_at_or_after(t, since));
        let start = match (at, index.get(at)) {
            (0, _) => oldest,
            (_, Some(&(_, offset))) => offset,
            (_, None) => self.committed_end(),
        };
        Some(start.max(oldest))
    }

    /// Run `f` on the record that starts at `offset`, if it is still retained (an offset
    /// from another thread's index may have been recycled since; a retained one is a
    /// record start, as the writer gave it).
    pub fn with_record<R>(&self, offset: u64, f: impl FnOnce(&RecordRef<'_>) -> R) -> Option<R> {
        if offset < self.oldest_start() || offset >= self.committed_end() {
            return None;
        }
        let segment = self.segment(offset / self.segment_bytes())?;
        let record = self.read_at(&segment, offset)?;
        // Still retained after the read: the segment was not recycled under it.
        (offset >= self.oldest_start()).then(|| f(&record))
    }

    /// Read the record at `offset` within `segment`, which the caller got for this offset.
    /// `None` at the end-of-segment marker.
    pub fn read_at<'s>(&self, segment: &'s Segment, offset: u64) -> Option<RecordRef<'s>> {
        read_record(segment, offset, self.shared.segment_bytes)
    }
}

/// Read the committed record at `offset` in `segment`; `None` at the end-of-segment marker.
fn read_record(segment: &Segment, offset: u64, segment_bytes: u64) -> Option<RecordRef<'_>> {
    {
        let at = usize::try_from(offset % segment_bytes).ok()?;
        if at + HEADER_LEN > segment.len() {
            return None;
        }
        let header = read_header(segment, at);
        if header.length == 0 {
            return None;
        }
        let length = header.length as usize;
        assert!(
            length >= HEADER_LEN && at + length <= segment.len(),
            "committed record bad"
        );
        let superseded = segment.state_word(at).load(Ordering::Acquire) & STATE_SUPERSEDED != 0;
        let payload = segment.read(at + HEADER_LEN, length - HEADER_LEN);
        Some(RecordRef {
            offset,
            header,
            payload,
            superseded,
        })
    }
}

/// Read a header without touching the state word (octets 8..12 read as zero).
fn read_header(segment: &Segment, at: usize) -> Header {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[..8].copy_from_slice(segment.read(at, 8));
    bytes[12..].copy_from_slice(segment.read(at + 12, HEADER_LEN - 12));
    Header::decode(&bytes)
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Valid records found.
    pub records: u64,
    /// Records cut because they were torn or corrupt (0 or 1: the log is cut at the first).
    pub corrupt: u64,
    /// Where the cut happened: (segment index, offset in segment).
    pub cut_at: Option<(u64, usize)>,
}

/// The single writer of a shard's log.
#[derive(Debug)]
pub struct LogWriter {
    config: LogConfig,
    shared: Arc<LogShared>,
    head: Arc<Segment>,
    /// Logical offset of the next record.
    write_at: u64,
    next_sequence: u64,
    /// Newest original change time per retained segment, oldest first (for age retention
    /// and the horizon).
    newest_change: VecDeque<(u64, Option<u32>)>,
    /// Change time of the last time-index entry.
    last_indexed: Option<u32>,
    /// Offset of the latest checkpoint record.
    last_checkpoint: Option<u64>,
    /// Octets of the records compaction must keep: each client's latest change record (not
    /// superseded) and the latest checkpoint. `append` refuses a roll that compaction could
    /// not make room for ([`Self::live_bytes_max`]). Only the writer touches it; an atomic
    /// only so that `supersede` keeps taking `&self`.
    live_bytes: AtomicU64,
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// The retained segments are full of live records: the head is full and compaction
    /// could not be sure to free a segment (live records above `segments_max - 2` full
    /// segments). The change is refused; raise `segments_max` or `segment_bytes`. Every
    /// change that needs a new segment is refused until age retention drops clients.
    LogFull,
    /// Creating or mapping a segment failed.
    Io(io::Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LogFull => f.write_str("change log full of live records"),
            Self::Io(e) => write!(f, "change log I/O: {e}"),
        }
    }
}

/// Called for each record that compaction moves or drops: `(client_hash, Some(new offset))`
/// when carried, `(client_hash, None)` when dropped.
pub type Relocate<'f> = &'f mut dyn FnMut(u64, Option<u64>);

impl LogWriter {
    /// Open (or create) the log in `config.dir`, verify every record and cut at the first
    /// torn or corrupt one. `visit` sees each valid record in log order. `now` is the
    /// initial horizon of a new log (history starts when lqd starts).
    pub fn open(
        config: LogConfig,
        now: u32,
        visit: &mut dyn FnMut(&RecordRef<'_>),
    ) -> io::Result<(Self, Recovered)> {
        config.validate().map_err(io::Error::other)?;
        fs::create_dir_all(&config.dir)?;
        let indexes = segment_indexes(&config.dir)?;
        let horizon = read_horizon(&config.dir)?.unwrap_or(now);
        let seg_len = config.segment_bytes;
        let mut segments = VecDeque::with_capacity(config.segments_max + 2);
        for &index in &indexes {
            segments.push_back(Arc::new(Segment::open(&config.dir, index, seg_len)?));
        }
        if segments.is_empty() {
            segments.push_back(Arc::new(Segment::create(&config.dir, 0, seg_len)?));
            write_horizon(&config.dir, horizon)?;
        }
        let first = segments.front().map_or(0, |s| s.index);
        let shared = Arc::new(LogShared {
            segment_bytes: seg_len as u64,
            committed_end: AtomicU64::new(first * seg_len as u64),
            oldest_start: AtomicU64::new(first * seg_len as u64),
            horizon: AtomicU32::new(horizon),
            segments: Mutex::new(segments),
            time_index: Mutex::new(VecDeque::with_capacity(config.time_index_entries_max)),
        });
        let head = lock(&shared.segments)
            .front()
            .cloned()
            .expect("at least one segment");
        let mut writer = Self {
            newest_change: VecDeque::with_capacity(config.segments_max + 2),
            config,
            shared,
            head,
            write_at: first * seg_len as u64,
            next_sequence: 1,
            last_indexed: None,
            last_checkpoint: None,
            live_bytes: AtomicU64::new(0),
        };
        let recovered = writer.recover(visit)?;
        Ok((writer, recovered))
    }

    /// A handle for readers.
    pub fn reader(&self) -> LogReader {
        LogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Sequence number the next record gets.
    pub const fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Scan every segment in order, verifying lengths, checksums and sequence numbers.
    fn recover(&mut self, visit: &mut dyn FnMut(&RecordRef<'_>)) -> io::Result<Recovered> {
        let mut found = Recovered::default();
        let segments: Vec<Arc<Segment>> = lock(&self.shared.segments).iter().cloned().collect();
        let mut expected_sequence = None;
        for (i, segment) in segments.iter().enumerate() {
            self.head = Arc::clone(segment);
            self.write_at = segment.index * self.shared.segment_bytes;
            self.newest_change.push_back((segment.index, None));
            let mut at = 0usize;
            while let Some(header) = self.valid_record(segment, at, expected_sequence, &mut found) {
                let offset = segment.index * self.shared.segment_bytes + at as u64;
                let record = read_record(segment, offset, self.shared.segment_bytes)
                    .expect("validated record");
                visit(&record);
                if !record.superseded {
                    self.add_live_bytes(u64::from(header.length));
                }
                self.note_appended(&header, offset);
                expected_sequence = Some(header.sequence + 1);
                at += header.length as usize;
                found.records += 1;
            }
            self.write_at = segment.index * self.shared.segment_bytes + at as u64;
            if found.cut_at.is_some() {
                self.cut(segment, at, &segments[i + 1..])?;
                break;
            }
        }
        self.next_sequence = expected_sequence.unwrap_or(1);
        self.shared
            .committed_end
            .store(self.write_at, Ordering::Release);
        Ok(found)
    }

    /// The header of a valid record at `at`, or `None` at the end of the segment or at a
    /// torn/corrupt record (then `found.cut_at` is set).
    fn valid_record(
        &self,
        segment: &Segment,
        at: usize,
        expected_sequence: Option<u64>,
        found: &mut Recovered,
    ) -> Option<Header> {
        if at + HEADER_LEN > segment.len() {
            return None;
        }
        let header = read_header(segment, at);
        if header.length == 0 {
            // End of segment, unless garbage follows (a torn header whose length is zero).
            let rest = segment.read(at + 12, (segment.len() - at - 12).min(4096));
            if rest.iter().all(|&b| b == 0) && segment.read(at, 8).iter().all(|&b| b == 0) {
                return None;
            }
        }
        let length = header.length as usize;
        let sane = length >= HEADER_LEN
            && length.is_multiple_of(RECORD_ALIGN)
            && at + length <= segment.len()
            && matches!(header.kind, KIND_CHANGE | KIND_CHECKPOINT)
            && expected_sequence.is_none_or(|s| header.sequence == s);
        let valid = sane && checksum_at(segment, at, length) == header.crc;
        if !valid {
            found.corrupt += 1;
            found.cut_at = Some((segment.index, at));
            tracing::error!(
                segment = %segment.path().display(),
                offset = at,
                sequence = header.sequence,
                "change log record torn or corrupt: cutting the log here"
            );
            return None;
        }
        Some(header)
    }

    /// Cut the log at `at` in `segment`: zero the rest of it and unlink later segments.
    fn cut(&mut self, segment: &Arc<Segment>, at: usize, later: &[Arc<Segment>]) -> io::Result<()> {
        let rest = segment.len() - at;
        segment.write_area(at, rest).fill(0);
        let mut segments = lock(&self.shared.segments);
        for dead in later {
            dead.unlink()?;
            segments.pop_back();
        }
        self.head = Arc::clone(segment);
        Ok(())
    }

    fn note_appended(&mut self, header: &Header, offset: u64) {
        if header.kind == KIND_CHECKPOINT {
            // Only the latest checkpoint is live (and carried).
            if let Some(previous) = self.last_checkpoint.replace(offset) {
                self.supersede(previous);
            }
        }
        if header.kind != KIND_CHANGE || header.flags & FLAG_CARRIED != 0 {
            return;
        }
        if let Some(last) = self.newest_change.back_mut() {
            last.1 = Some(header.change_time);
        }
        if self.last_indexed.is_none_or(|t| t != header.change_time) {
            self.last_indexed = Some(header.change_time);
            let mut index = lock(&self.shared.time_index);
            if index.len() == self.config.time_index_entries_max {
                index.pop_front();
            }
            index.push_back((header.change_time, offset));
        }
    }

    /// Append one record written by `encode` into the head (at most [`RECORD_LEN_MAX`]
    /// octets; returns its length). Returns the record's offset. `relocate` hears about
    /// records moved or dropped by a compaction this append triggers.
    pub fn append(
        &mut self,
        encode: &mut dyn FnMut(&mut [u8], u64) -> usize,
        relocate: Relocate<'_>,
    ) -> Result<u64, AppendError> {
        // Found by tests/store_log.rs: when live records filled the log, a roll carried a
        // fully live oldest segment into the new head and (1) returned with the head full
        // again, so `append_here` asserted (a worker panic), or (2) failed with `LogFull`
        // one segment over `segments_max`, and the next roll opened one more: the log grew
        // without bound. Now a roll is refused before anything is touched unless compaction
        // is sure to make room (`live_bytes_max`), and the writer rolls until the head has
        // room, which within that bound takes at most a pass over the log.
        let mut rolls = 0;
        while self.space_left() < RECORD_LEN_MAX {
            let needed = self.live_bytes() + RECORD_LEN_MAX as u64;
            if needed > self.live_bytes_max() || rolls > self.config.segments_max + 1 {
                return Err(AppendError::LogFull);
            }
            self.roll(relocate)?;
            rolls += 1;
        }
        self.append_here(encode)
    }

    fn space_left(&self) -> usize {
        let seg = self.shared.segment_bytes;
        usize::try_from(seg - self.write_at % seg).expect("segment_bytes is a usize")
    }

    /// Append into the head, which has room for one maximal record.
    fn append_here(
        &mut self,
        encode: &mut dyn FnMut(&mut [u8], u64) -> usize,
    ) -> Result<u64, AppendError> {
        assert!(self.space_left() >= RECORD_LEN_MAX);
        let at = in_segment(self.write_at, self.shared.segment_bytes);
        let area = self.head.write_area(at, RECORD_LEN_MAX);
        let len = encode(area, self.next_sequence);
        assert!((HEADER_LEN..=RECORD_LEN_MAX).contains(&len) && len.is_multiple_of(RECORD_ALIGN));
        let header = read_header(&self.head, at);
        assert_eq!(header.sequence, self.next_sequence);
        self.add_live_bytes(len as u64);
        let offset = self.write_at;
        self.next_sequence += 1;
        self.write_at += len as u64;
        self.shared
            .committed_end
            .store(self.write_at, Ordering::Release);
        self.note_appended(&header, offset);
        Ok(offset)
    }

    /// Mark the record at `offset` superseded: a later record of its client exists.
    pub fn supersede(&self, offset: u64) {
        let Some(segment) = self.segment_for(offset) else {
            return; // Already recycled.
        };
        let at = in_segment(offset, self.shared.segment_bytes);
        let before = segment
            .state_word(at)
            .fetch_or(STATE_SUPERSEDED, Ordering::Release);
        if before & STATE_SUPERSEDED == 0 {
            self.sub_live_bytes(u64::from(read_header(&segment, at).length));
        }
    }

    /// The retained segment holding `offset`: the head without a lock, others through the
    /// segment table.
    fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let index = offset / self.shared.segment_bytes;
        if index == self.head.index {
            return Some(Arc::clone(&self.head));
        }
        self.reader().segment(index)
    }

    /// True when the record at `offset` is not superseded (recovery repairs flags with it).
    pub fn clear_superseded(&self, offset: u64) {
        if let Some(segment) = self.reader().segment(offset / self.shared.segment_bytes) {
            let at = in_segment(offset, self.shared.segment_bytes);
            let before = segment
                .state_word(at)
                .fetch_and(!STATE_SUPERSEDED, Ordering::Release);
            if before & STATE_SUPERSEDED != 0 {
                self.add_live_bytes(u64::from(read_header(&segment, at).length));
            }
        }
    }

    /// Octets of live records (each client's latest change, the latest checkpoint).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Most live octets for which a roll is sure to make room: compaction packs live records
    /// into full segments of more than `segment_bytes - RECORD_LEN_MAX` octets each, so with
    /// at most `segments_max - 2` of those the compacted log leaves a segment free for the
    /// head and a roll never has to recycle a fully live segment into a new head.
    pub fn live_bytes_max(&self) -> u64 {
        let full = self.shared.segment_bytes - RECORD_LEN_MAX as u64;
        (self.config.segments_max as u64 - 2) * full
    }

    fn add_live_bytes(&self, n: u64) {
        let live = self.live_bytes.load(Ordering::Relaxed);
        self.live_bytes.store(live + n, Ordering::Relaxed);
    }

    fn sub_live_bytes(&self, n: u64) {
        let live = self.live_bytes.load(Ordering::Relaxed);
        assert!(live >= n, "live bytes {live} below a live record of {n}");
        self.live_bytes.store(live - n, Ordering::Relaxed);
    }

    /// Move to a new head segment, recycling the oldest segments while there are too many.
    fn roll(&mut self, relocate: Relocate<'_>) -> Result<(), AppendError> {
        self.open_next_segment()?;
        let mut rounds = 0;
        while self.segment_count() > self.config.segments_max {
            rounds += 1;
            if rounds > self.config.segments_max {
                return Err(AppendError::LogFull);
            }
            self.recycle_oldest(None, relocate)?;
        }
        Ok(())
    }

    fn segment_count(&self) -> usize {
        lock(&self.shared.segments).len()
    }

    fn open_next_segment(&mut self) -> Result<(), AppendError> {
        let index = self.head.index + 1;
        let segment = Segment::create(&self.config.dir, index, self.config.segment_bytes)
            .map_err(AppendError::Io)?;
        let segment = Arc::new(segment);
        lock(&self.shared.segments).push_back(Arc::clone(&segment));
        self.newest_change.push_back((index, None));
        self.head = segment;
        self.write_at = index * self.shared.segment_bytes;
        // Readers at the old end see the zero length and jump here.
        self.shared
            .committed_end
            .store(self.write_at, Ordering::Release);
        Ok(())
    }

    /// Age retention (S-57): recycle old segments whose newest change is older than
    /// `retention_age_s` before `now`. Called from the worker's tick, not per append.
    pub fn enforce_age(&mut self, now: u32, relocate: Relocate<'_>) -> Result<usize, AppendError> {
        let cutoff = now.wrapping_sub(self.config.retention_age_s);
        // Recycle up to the last segment, before the head, whose history is older than the
        // cutoff. A segment holding only carried records (`newest` None) is not history and
        // is recycled only on the way to old history behind it: recycling it for its own
        // sake moved its records to the head, spilling into a new carried-only segment, and
        // so on forever once the live records outgrew one segment (a livelock found by
        // tests/store_log.rs; short of that, every tick rewrote every old live client).
        let head = self.head.index;
        let mut target = None;
        for &(index, newest) in &self.newest_change {
            match newest {
                _ if index >= head => break, // Never the head (nor what this call opens).
                None => {}
                Some(t) if !super::model::time_at_or_after(t, cutoff) => target = Some(index),
                Some(_) => break,
            }
        }
        let Some(target) = target else {
            return Ok(0);
        };
        let mut recycled = 0;
        while lock(&self.shared.segments)
            .front()
            .is_some_and(|s| s.index <= target)
        {
            self.recycle_oldest(Some(cutoff), relocate)?;
            recycled += 1;
        }
        assert!(recycled > 0);
        Ok(recycled)
    }

    /// Compact and unlink the oldest segment. Live latest records are carried to the head;
    /// latest records of clients without a live lease changed before `drop_before` are
    /// dropped.
    fn recycle_oldest(
        &mut self,
        drop_before: Option<u32>,
        relocate: Relocate<'_>,
    ) -> Result<(), AppendError> {
        let oldest = lock(&self.shared.segments)
            .front()
            .cloned()
            .expect("a segment");
        assert_ne!(oldest.index, self.head.index, "recycling the head segment");
        let (index, newest) = *self.newest_change.front().expect("meta per segment");
        assert_eq!(index, oldest.index);
        // The horizon moves first, in memory and on disk. Carried copies are not changes,
        // so catch-up cursors skip them; until the horizon passes the changes being carried,
        // a catch-up from before it missed every client carried so far: a cursor could
        // read an original once superseded by its copy, then the copy, and finish; and a
        // kill before the horizon file was written left the copies with the old horizon
        // (found by tests/store_crash.rs).
        if let Some(newest) = newest {
            let horizon = newest.wrapping_add(1);
            if super::model::time_at_or_after(horizon, self.shared.horizon.load(Ordering::Acquire))
            {
                self.shared.horizon.store(horizon, Ordering::Release);
                write_horizon(&self.config.dir, horizon).map_err(AppendError::Io)?;
            }
        }
        let base = oldest.index * self.shared.segment_bytes;
        let reader = self.reader();
        let mut offset = base;
        while let Some(record) = reader.read_at(&oldest, offset) {
            offset += u64::from(record.header.length);
            self.carry(&record, drop_before, relocate)?;
        }
        let mut segments = lock(&self.shared.segments);
        segments.pop_front();
        self.newest_change.pop_front();
        let next_start = segments
            .front()
            .map_or(self.write_at, |s| s.index * self.shared.segment_bytes);
        drop(segments);
        self.shared
            .oldest_start
            .store(next_start, Ordering::Release);
        lock(&self.shared.time_index).retain(|&(_, o)| o >= next_start);
        oldest.unlink().map_err(AppendError::Io)?;
        Ok(())
    }

    fn carry(
        &mut self,
        record: &RecordRef<'_>,
        drop_before: Option<u32>,
        relocate: Relocate<'_>,
    ) -> Result<(), AppendError> {
        let h = record.header;
        let is_latest_checkpoint =
            h.kind == KIND_CHECKPOINT && self.last_checkpoint == Some(record.offset);
        let live_change = h.kind == KIND_CHANGE && !record.superseded;
        if !is_latest_checkpoint && !live_change {
            return Ok(());
        }
        let expired = h.flags & FLAG_NO_LIVE_LEASE != 0
            && drop_before.is_some_and(|t| !super::model::time_at_or_after(h.change_time, t));
        if live_change && expired {
            self.sub_live_bytes(u64::from(h.length));
            relocate(h.client_hash, None);
            return Ok(());
        }
        if self.space_left() < RECORD_LEN_MAX {
            // Carrying fills the head: continue in a new segment without recycling more.
            self.open_next_segment()?;
        }
        let source = record.payload;
        let new_offset =
            self.append_here(&mut |area, sequence| copy_carried(area, &h, source, sequence))?;
        self.supersede(record.offset);
        if h.kind == KIND_CHANGE {
            relocate(h.client_hash, Some(new_offset));
        } else {
            self.last_checkpoint = Some(new_offset);
        }
        Ok(())
    }

    /// Ask the kernel to write dirty pages of the head back (power-loss durability).
    pub fn flush_async(&self) -> io::Result<()> {
        self.head.flush_async()
    }

    /// Call `f` with the record at `offset`, if it is retained. The head segment is checked
    /// first, without a lock.
    pub fn read<R>(&self, offset: u64, f: impl FnOnce(&RecordRef<'_>) -> R) -> Option<R> {
        let index = offset / self.shared.segment_bytes;
        if index == self.head.index {
            return read_record(&self.head, offset, self.shared.segment_bytes).map(|r| f(&r));
        }
        let segment = self.reader().segment(index)?;
        read_record(&segment, offset, self.shared.segment_bytes).map(|r| f(&r))
    }
}

/// Write a carried copy of a record: same header and payload, new sequence, carried flag.
fn copy_carried(area: &mut [u8], header: &Header, payload: &[u8], sequence: u64) -> usize {
    let len = header.length as usize;
    area[HEADER_LEN..len].copy_from_slice(payload);
    let mut h = *header;
    h.sequence = sequence;
    if h.kind == KIND_CHANGE {
        h.flags |= FLAG_CARRIED;
    }
    super::record::seal(&mut area[..len], h);
    len
}

/// The position of a logical offset inside its segment.
fn in_segment(offset: u64, segment_bytes: u64) -> usize {
    usize::try_from(offset % segment_bytes).expect("segment_bytes is a usize")
}

fn checksum_at(segment: &Segment, at: usize, length: usize) -> u32 {
    // Octets 12..length: after the state word.
    crc32c::crc32c(segment.read(at + 12, length - 12))
}

fn segment_indexes(dir: &Path) -> io::Result<Vec<u64>> {
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(index) = name.to_str().and_then(parse_segment_name) {
            indexes.push(index);
        }
    }
    indexes.sort_unstable();
    for pair in indexes.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "segment {:016x} is missing in {}",
                    pair[0] + 1,
                    dir.display()
                ),
            ));
        }
    }
    Ok(indexes)
}

fn read_horizon(dir: &Path) -> io::Result<Option<u32>> {
    match fs::read_to_string(dir.join("horizon")) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}/horizon is not a number", dir.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_horizon(dir: &Path, horizon: u32) -> io::Result<()> {
    let tmp = dir.join("horizon.tmp");
    fs::write(&tmp, format!("{horizon}\n"))?;
    fs::rename(tmp, dir.join("horizon"))
}
