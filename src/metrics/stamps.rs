//! When the ingest thread read the row behind each recent record: a fixed ring per shard,
//! written by the shard's owner after applying a change and read by every worker when it
//! first sends the record, for the delivery-latency histogram. Lock-free: a slot holds the
//! record's sequence number (plus one; zero is empty) and the time; a reader that finds
//! another sequence (the slot was reused) or sees it change while reading takes no sample.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Records remembered per shard.
pub const STAMPS: usize = 1 << 16;

/// The ring of one shard.
#[derive(Debug)]
pub struct Stamps {
    slots: Box<[(AtomicU64, AtomicU64)]>,
}

impl Stamps {
    /// A ring of `len` slots (a power of two).
    pub fn new(len: usize) -> Self {
        assert!(len.is_power_of_two());
        Self {
            slots: (0..len)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }

    fn slot(&self, sequence: u64) -> &(AtomicU64, AtomicU64) {
        let mask = (self.slots.len() - 1) as u64;
        &self.slots[usize::try_from(sequence & mask).expect("masked below len")]
    }

    /// Record `read_ns` for the record with `sequence` (the shard's owner only).
    pub fn put(&self, sequence: u64, read_ns: u64) {
        let (tag, time) = self.slot(sequence);
        tag.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        time.store(read_ns, Ordering::Relaxed);
        tag.store(sequence + 1, Ordering::Release);
    }

    /// The read time of the record with `sequence`, if still remembered.
    pub fn get(&self, sequence: u64) -> Option<u64> {
        let (tag, time) = self.slot(sequence);
        if tag.load(Ordering::Acquire) != sequence + 1 {
            return None;
        }
        let read_ns = time.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (tag.load(Ordering::Relaxed) == sequence + 1).then_some(read_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_gives_no_sample() {
        let stamps = Stamps::new(4);
        stamps.put(1, 100);
        assert_eq!(stamps.get(1), Some(100));
        stamps.put(5, 500); // Same slot.
        assert_eq!(stamps.get(1), None);
        assert_eq!(stamps.get(5), Some(500));
        assert_eq!(stamps.get(2), None, "never written");
    }
}
