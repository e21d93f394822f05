//! Where a connection's frames go for one send: a [`Batch`] of parts, each either octets the
//! connection owns (control frames, Bulk frames, the per-connection prefix of a
//! LEASEQUERY-DATA) or a body in the worker's [`Bodies`] arena, shared by every connection
//! that sends the same record re-based to the same second (architecture.md, "Fan-out" 2).
//!
//! The worker turns a batch into one `sendmsg` whose iovecs point at the parts, so a body
//! is built once per worker and second however many requestors receive it. A batch is
//! bounded by the connection's own buffer: when the kernel takes only part of it, the
//! worker copies the rest there (the slow-reader path), so a shared body is never borrowed
//! by a send that waits.
//!
//! Sans-IO and allocation-free: the worker owns the buffers; this module only indexes them.

use crate::wire::build::{write_data_prefix, DATA_PREFIX_MAX};
use crate::wire::{EncodeError, Xid};

/// Longest CLIENT_DATA body sent (an OPTION_CLIENT_DATA with a client's leases and relay
/// data; the store refuses larger templates).
pub const BODY_MAX: usize = 4096;

/// Room a batch keeps for one more LEASEQUERY-DATA: the prefix and the longest body.
pub const DATA_FRAME_MAX: usize = DATA_PREFIX_MAX + BODY_MAX;

/// One part of a batch: octets `start..end` of the connection's own buffer or of the
/// worker's body arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Part {
    /// True for the body arena, false for the connection's own buffer.
    pub shared: bool,
    /// First octet.
    pub start: u32,
    /// One past the last octet.
    pub end: u32,
}

impl Part {
    /// Octets in the part.
    pub const fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True for an empty part.
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Which body a shared part is: a record of a shard, re-based to a second, with or
/// without relay data. Sequence numbers are unique within a shard, so the key names the
/// octets exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BodyKey {
    /// Shard of the record.
    pub shard: u16,
    /// Whether OPTION_LQ_RELAY_DATA is kept (S-46).
    pub relay: bool,
    /// The second the body is re-based to.
    pub at: u32,
    /// The record's sequence number in its shard.
    pub sequence: u64,
}

impl BodyKey {
    fn hash(&self) -> u64 {
        let mut h = self.sequence ^ (u64::from(self.shard) << 48) ^ (u64::from(self.at) << 17);
        h ^= u64::from(self.relay);
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// [`Bodies::stamp`] when written; an older stamp is an empty entry.
    stamp: u32,
    key: BodyKey,
    start: u32,
    end: u32,
}

/// Probes before a lookup gives up (the body is then copied, not shared).
const PROBES_MAX: usize = 8;

/// A step of a live all-bindings cursor, shared between the connections of a worker: from
/// position `from` of `shard`, the cursor skips to `after`, having found `record` (or only
/// skipped records: superseded ones, carried copies, checkpoints). Skipped records stay
/// skipped (superseded never reverts), so a step stays true as records are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Step {
    /// Where the cursor continues.
    pub after: u64,
    /// The record found, if any.
    pub record: Option<StepRecord>,
}

/// The record a [`Step`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StepRecord {
    /// Its offset in the shard's log.
    pub offset: u64,
    /// Its sequence number (the body's key).
    pub sequence: u64,
    /// Its change time.
    pub change_time: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct StepEntry {
    stamp: u32,
    shard: u16,
    from: u64,
    step: Step,
}

/// Steps remembered per worker until the arena is emptied.
const STEPS_MAX: usize = 1 << 14;

/// The worker's shared bodies: a fixed arena and an open-addressing index over it, emptied
/// as a whole when no send borrows it (see [`Bodies::may_reset`]).
pub struct Bodies {
    arena: Box<[u8]>,
    used: usize,
    index: Box<[Entry]>,
    entries: usize,
    stamp: u32,
    second: u32,
    /// `sendmsg`s in flight whose iovecs point into the arena.
    pub borrowed: usize,
    /// Bodies found already built.
    pub hits: u64,
    /// Bodies built.
    pub built: u64,
    /// Bodies copied into a connection's own buffer because the arena or its index was
    /// full.
    pub copied: u64,
    /// Samples the delivery latency of each record when its body is first built.
    pub sampler: Option<crate::metrics::Sampler>,
    /// Cursor steps taken by one connection, for the others (see [`Step`]).
    steps: Box<[StepEntry]>,
    /// Steps reused instead of reading the log.
    pub steps_reused: u64,
}

impl Bodies {
    /// An arena of `octets` (at least one body) with an index sized for it.
    pub fn new(octets: usize) -> Self {
        let octets = octets.max(BODY_MAX);
        // Bodies are rarely under 64 octets; twice that many index entries keeps probes short.
        let slots = (octets / 32).next_power_of_two();
        Self {
            arena: vec![0; octets].into_boxed_slice(),
            used: 0,
            index: vec![Entry::default(); slots].into_boxed_slice(),
            entries: 0,
            stamp: 1,
            second: 0,
            borrowed: 0,
            hits: 0,
            built: 0,
            copied: 0,
            sampler: None,
            steps: vec![StepEntry::default(); STEPS_MAX].into_boxed_slice(),
            steps_reused: 0,
        }
    }

    /// The arena, for the worker's iovecs.
    pub fn arena(&self) -> &[u8] {
        &self.arena
    }

    /// Octets in use.
    pub const fn used(&self) -> usize {
        self.used
    }

    /// At the top of a loop iteration: empty the arena when no send borrows it and the
    /// second changed (bodies re-based to an older second will not be asked for again) or
    /// it is more than three quarters full.
    pub fn may_reset(&mut self, now: u32) {
        let stale = now != self.second || self.used > self.arena.len() / 4 * 3;
        if self.borrowed == 0 && stale {
            self.used = 0;
            self.entries = 0;
            self.second = now;
            self.stamp = self.stamp.wrapping_add(1).max(1);
            if self.stamp == 1 {
                // The stamp wrapped: old entries could look current.
                self.index.fill(Entry::default());
                self.steps.fill(StepEntry::default());
            }
        }
    }

    fn step_slot(&self, shard: u16, from: u64) -> usize {
        let h = (from ^ (u64::from(shard) << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        usize::try_from(h >> 40).unwrap_or(0) & (self.steps.len() - 1)
    }

    /// The step a cursor of `shard` at `from` takes, if another connection took it.
    pub fn step(&mut self, shard: u16, from: u64) -> Option<Step> {
        let entry = &self.steps[self.step_slot(shard, from)];
        let hit = entry.stamp == self.stamp && entry.shard == shard && entry.from == from;
        self.steps_reused += u64::from(hit);
        hit.then_some(entry.step)
    }

    /// Remember a step for the other connections (the slot's previous step is replaced).
    pub fn remember(&mut self, shard: u16, from: u64, step: Step) {
        let slot = self.step_slot(shard, from);
        self.steps[slot] = StepEntry {
            stamp: self.stamp,
            shard,
            from,
            step,
        };
    }

    fn find(&self, key: &BodyKey) -> Result<Part, Option<usize>> {
        let mask = self.index.len() - 1;
        let mut at = usize::try_from(key.hash()).unwrap_or(usize::MAX) & mask;
        for _ in 0..PROBES_MAX {
            let entry = &self.index[at];
            if entry.stamp != self.stamp {
                return Err(Some(at));
            }
            if entry.key == *key {
                return Ok(Part {
                    shared: true,
                    start: entry.start,
                    end: entry.end,
                });
            }
            at = (at + 1) & mask;
        }
        Err(None)
    }

    /// The body for `key`: found, or built by `build` into the arena and indexed. `None`
    /// when the arena or the index has no room (the caller copies the body instead).
    fn get_or_build<F: FnOnce(&mut [u8]) -> Option<usize>>(
        &mut self,
        key: &BodyKey,
        build: F,
    ) -> Result<Part, Room<F>> {
        let free_entry = match self.find(key) {
            Ok(part) => {
                self.hits += 1;
                return Ok(part);
            }
            Err(free) => free,
        };
        let room = self.arena.len() - self.used;
        let (Some(at), true) = (
            free_entry,
            room >= BODY_MAX && self.entries < self.index.len() / 2,
        ) else {
            return Err(Room::Full(build));
        };
        let start = self.used;
        let len = build(&mut self.arena[start..start + BODY_MAX]).ok_or(Room::Unusable)?;
        assert!(len <= BODY_MAX, "a body is at most BODY_MAX");
        self.used += len;
        self.built += 1;
        if let Some(sampler) = &mut self.sampler {
            sampler.sample(usize::from(key.shard), key.sequence);
        }
        self.entries += 1;
        let part = Part {
            shared: true,
            start: u32::try_from(start).expect("arena below 4 GiB"),
            end: u32::try_from(start + len).expect("arena below 4 GiB"),
        };
        self.index[at] = Entry {
            stamp: self.stamp,
            key: *key,
            start: part.start,
            end: part.end,
        };
        Ok(part)
    }
}

/// Why a body is not in the arena.
enum Room<F> {
    /// No room: the builder comes back so the body can be copied instead.
    Full(F),
    /// The builder failed.
    Unusable,
}

/// Why a frame was not added to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No room left in this batch: send it and ask again.
    Full,
    /// The frame cannot be built (a body larger than [`BODY_MAX`], a message over 65535
    /// octets): skip it.
    Unusable,
}

/// One batch of frames for one connection (at most one `sendmsg`).
pub struct Batch<'a> {
    own: &'a mut [u8],
    own_len: usize,
    parts: &'a mut [Part],
    parts_len: usize,
    bodies: &'a mut Bodies,
    len: usize,
    frames: usize,
}

impl<'a> Batch<'a> {
    /// An empty batch over a connection's own buffer and part list and the worker's bodies.
    /// Its length never exceeds `own.len()`, so the unsent rest of it always fits in `own`.
    pub fn new(own: &'a mut [u8], parts: &'a mut [Part], bodies: &'a mut Bodies) -> Self {
        assert!(parts.len() >= 2, "a batch holds a prefix and a body");
        Self {
            own,
            own_len: 0,
            parts,
            parts_len: 0,
            bodies,
            len: 0,
            frames: 0,
        }
    }

    /// Octets in the batch.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was added.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Octets written into the connection's own buffer (prefixes and whole frames).
    pub const fn own_len(&self) -> usize {
        self.own_len
    }

    /// Frames in the batch.
    pub const fn frames(&self) -> usize {
        self.frames
    }

    /// The parts, in wire order.
    pub fn parts(&self) -> &[Part] {
        &self.parts[..self.parts_len]
    }

    /// The worker's shared bodies and cursor steps.
    pub fn bodies(&mut self) -> &mut Bodies {
        self.bodies
    }

    /// True when one more LEASEQUERY-DATA of any size fits.
    pub const fn has_room_for_data(&self) -> bool {
        self.len + DATA_FRAME_MAX <= self.own.len() && self.parts_len + 2 <= self.parts.len()
    }

    /// Octets the connection may still write into its own buffer with [`Self::write_own`]:
    /// the batch as a whole stays within `own.len()`.
    pub fn own_room(&self) -> usize {
        let part_free = self.parts_len < self.parts.len() || self.last_own_ends_at(self.own_len);
        if part_free {
            self.own.len() - self.len
        } else {
            0
        }
    }

    /// Write octets of the connection's own with `write` (given [`Self::own_room`] octets;
    /// it returns how many it wrote, whole frames only) and count `frames` frames.
    pub fn write_own<E>(
        &mut self,
        frames: usize,
        write: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let room = self.own_room();
        let start = self.own_len;
        let n = write(&mut self.own[start..start + room])?;
        assert!(n <= room, "wrote more than offered");
        if n > 0 {
            self.push_own(start, n);
            self.frames += frames;
        }
        Ok(n)
    }

    fn push_own(&mut self, start: usize, n: usize) {
        let end = u32::try_from(start + n).expect("own buffer below 4 GiB");
        self.own_len = start + n;
        self.len += n;
        if self.last_own_ends_at(start) {
            self.parts[self.parts_len - 1].end = end;
        } else {
            assert!(self.parts_len < self.parts.len(), "room was checked");
            self.parts[self.parts_len] = Part {
                shared: false,
                start: u32::try_from(start).expect("own buffer below 4 GiB"),
                end,
            };
            self.parts_len += 1;
        }
    }

    fn last_own_ends_at(&self, at: usize) -> bool {
        self.parts_len > 0 && {
            let last = self.parts[self.parts_len - 1];
            !last.shared && last.end as usize == at
        }
    }

    /// Add a LEASEQUERY-DATA for `xid` (with LQ_BASE_TIME when `base_time` is set) whose
    /// CLIENT_DATA is the body `key`: shared when the arena has it or room for it (`build`
    /// writes it and returns its length, `None` when it cannot), otherwise copied after the
    /// prefix into the connection's own buffer.
    pub fn data(
        &mut self,
        xid: Xid,
        base_time: Option<u32>,
        key: &BodyKey,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<(), Refused> {
        if !self.has_room_for_data() {
            return Err(Refused::Full);
        }
        let prefix_len = if base_time.is_some() {
            DATA_PREFIX_MAX
        } else {
            DATA_PREFIX_MAX - 8
        };
        let start = self.own_len;
        let body = match self.bodies.get_or_build(key, build) {
            Ok(body) => body,
            Err(Room::Unusable) => return Err(Refused::Unusable),
            Err(Room::Full(build)) => {
                // The arena is spent until the sends borrowing it complete: copy this one.
                let at = start + prefix_len;
                let len = build(&mut self.own[at..at + BODY_MAX]).ok_or(Refused::Unusable)?;
                assert!(len <= BODY_MAX, "a body is at most BODY_MAX");
                self.bodies.copied += 1;
                self.prefix(start, xid, base_time, len)?;
                self.push_own(start, prefix_len + len);
                self.frames += 1;
                return Ok(());
            }
        };
        self.prefix(start, xid, base_time, body.len())?;
        self.push_own(start, prefix_len);
        self.parts[self.parts_len] = body;
        self.parts_len += 1;
        self.len += body.len();
        self.frames += 1;
        Ok(())
    }

    /// Write the prefix of a DATA with a `body_len`-octet body at `start` of the own buffer.
    fn prefix(
        &mut self,
        start: usize,
        xid: Xid,
        base_time: Option<u32>,
        body_len: usize,
    ) -> Result<(), Refused> {
        let out: &mut [u8; DATA_PREFIX_MAX] = (&mut self.own[start..start + DATA_PREFIX_MAX])
            .try_into()
            .expect("room was checked");
        write_data_prefix(out, xid, base_time, body_len)
            .map(|_| ())
            .map_err(|_: EncodeError| Refused::Unusable)
    }
}

impl Batch<'_> {
    /// Copy the batch into `out` as the bytes on the wire (for a driver without vectored
    /// sends, and for tests); returns the octets copied, all of them when `out` is at least
    /// [`Self::len`] long.
    pub fn gather(&self, out: &mut [u8]) -> usize {
        gather(self.parts(), self.own, self.bodies.arena(), 0, out)
    }
}

/// Copy the octets of `parts` from `skip` on into `out` (own parts from `own`, shared parts
/// from `arena`), as far as `out` reaches; returns the octets copied.
pub fn gather(parts: &[Part], own: &[u8], arena: &[u8], skip: usize, out: &mut [u8]) -> usize {
    let mut skip = skip;
    let mut at = 0;
    for part in parts {
        let source = if part.shared { arena } else { own };
        let octets = &source[part.start as usize..part.end as usize];
        let from = skip.min(octets.len());
        skip -= from;
        let n = (octets.len() - from).min(out.len() - at);
        out[at..at + n].copy_from_slice(&octets[from..from + n]);
        at += n;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sequence: u64) -> BodyKey {
        BodyKey {
            shard: 0,
            relay: false,
            at: 100,
            sequence,
        }
    }

    /// A body of `len` octets, each `fill`.
    fn body(fill: u8, len: usize) -> impl FnOnce(&mut [u8]) -> Option<usize> {
        move |out| {
            out[..len].fill(fill);
            Some(len)
        }
    }

    fn wire(batch: &Batch<'_>) -> Vec<u8> {
        let mut bytes = vec![0; batch.len()];
        assert_eq!(batch.gather(&mut bytes), batch.len());
        bytes
    }

    #[test]
    fn a_body_is_built_once_and_shared_by_every_batch() {
        let mut bodies = Bodies::new(64 * 1024);
        let (mut own_a, mut own_b) = (vec![0; 3 * DATA_FRAME_MAX], vec![0; 3 * DATA_FRAME_MAX]);
        let (mut parts_a, mut parts_b) = (vec![Part::default(); 8], vec![Part::default(); 8]);
        let mut a = Batch::new(&mut own_a, &mut parts_a, &mut bodies);
        a.data(Xid::new(1).unwrap(), Some(7), &key(1), body(0xaa, 40))
            .unwrap();
        let first = a.parts()[1];
        let wire_a = wire(&a);
        let mut b = Batch::new(&mut own_b, &mut parts_b, &mut bodies);
        b.data(Xid::new(2).unwrap(), None, &key(1), |_| {
            panic!("built twice")
        })
        .unwrap();
        assert_eq!(b.parts()[1], first, "the same arena octets");
        let wire_b = wire(&b);
        assert_eq!((bodies.built, bodies.hits), (1, 1));
        // Prefixes differ (xid, BASE_TIME), bodies are identical.
        assert_eq!(&wire_a[..2], &[0, 12 + 40]);
        assert_eq!(&wire_a[14..], &[0xaa; 40][..]);
        assert_eq!(&wire_b[..2], &[0, 4 + 40]);
        assert_eq!(&wire_b[6..], &[0xaa; 40][..]);
    }

    #[test]
    fn a_full_arena_copies_and_a_reset_waits_for_borrowers() {
        let mut bodies = Bodies::new(BODY_MAX);
        bodies.may_reset(100);
        let mut own = vec![0; 4 * DATA_FRAME_MAX];
        let mut parts = vec![Part::default(); 8];
        let mut batch = Batch::new(&mut own, &mut parts, &mut bodies);
        batch
            .data(Xid::new(1).unwrap(), None, &key(1), body(1, 30))
            .unwrap();
        // Under BODY_MAX free: the next body is copied after its prefix.
        batch
            .data(Xid::new(1).unwrap(), None, &key(2), body(2, 30))
            .unwrap();
        assert_eq!(batch.parts().len(), 3, "prefix, shared body, copied frame");
        let bytes = wire(&batch);
        assert_eq!(&bytes[6..36], &[1; 30][..]);
        assert_eq!(&bytes[42..], &[2; 30][..]);
        assert_eq!(bodies.copied, 1);
        bodies.borrowed = 1;
        bodies.may_reset(101);
        assert_eq!(bodies.used(), 30, "borrowed: kept");
        bodies.borrowed = 0;
        bodies.may_reset(101);
        assert_eq!(bodies.used(), 0, "new second, nothing borrowed: emptied");
    }

    #[test]
    fn cursor_steps_are_shared_until_the_arena_empties() {
        let mut bodies = Bodies::new(64 * 1024);
        bodies.may_reset(100);
        assert_eq!(bodies.step(0, 4096), None);
        let found = StepRecord {
            offset: 8192,
            sequence: 7,
            change_time: 99,
        };
        let step = Step {
            after: 8448,
            record: Some(found),
        };
        bodies.remember(0, 4096, step);
        assert_eq!(bodies.step(0, 4096), Some(step));
        assert_eq!(bodies.step(1, 4096), None, "another shard");
        assert_eq!(bodies.steps_reused, 1);
        bodies.may_reset(101);
        assert_eq!(bodies.step(0, 4096), None, "forgotten with the arena");
    }

    #[test]
    fn room_is_checked_before_a_record_is_taken() {
        let mut bodies = Bodies::new(64 * 1024);
        let mut own = vec![0; 2 * DATA_FRAME_MAX];
        let mut parts = vec![Part::default(); 4];
        let mut batch = Batch::new(&mut own, &mut parts, &mut bodies);
        assert!(batch.has_room_for_data());
        batch
            .data(Xid::new(1).unwrap(), None, &key(1), body(1, 10))
            .unwrap();
        batch
            .data(Xid::new(1).unwrap(), None, &key(2), body(2, 10))
            .unwrap();
        assert!(!batch.has_room_for_data(), "four parts used");
        assert_eq!(
            batch.data(Xid::new(1).unwrap(), None, &key(3), |_| panic!("taken")),
            Err(Refused::Full)
        );
        assert_eq!(batch.frames(), 2);
        assert_eq!(
            batch.own_room(),
            0,
            "no part left and the last part is shared"
        );
    }

    #[test]
    fn own_frames_extend_one_run_and_unsent_rests_keep_their_order() {
        let mut bodies = Bodies::new(64 * 1024);
        let mut own = vec![0; 3 * DATA_FRAME_MAX];
        let mut parts = vec![Part::default(); 8];
        let mut batch = Batch::new(&mut own, &mut parts, &mut bodies);
        let frame = |fill: u8| {
            move |out: &mut [u8]| -> Result<usize, ()> {
                out[..5].fill(fill);
                Ok(5)
            }
        };
        batch.write_own(1, frame(9)).unwrap();
        batch.write_own(1, frame(8)).unwrap();
        assert_eq!(batch.parts().len(), 1, "adjacent own frames are one part");
        batch
            .data(Xid::new(1).unwrap(), None, &key(1), body(3, 20))
            .unwrap();
        batch.write_own(1, frame(7)).unwrap();
        batch
            .data(Xid::new(1).unwrap(), None, &key(2), body(4, 20))
            .unwrap();
        let expected = wire(&batch);
        let parts_now: Vec<Part> = batch.parts().to_vec();
        // Every split point: gather from it equals the wire's tail.
        for skip in 0..expected.len() {
            let mut rest = vec![0; expected.len() - skip];
            let n = gather(&parts_now, &own, bodies.arena(), skip, &mut rest);
            assert_eq!(n, rest.len());
            assert_eq!(rest, expected[skip..]);
        }
    }
}
