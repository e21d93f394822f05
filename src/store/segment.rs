//! One change-log segment: a preallocated file mapped shared, read-write (style.md T20).
//!
//! Ownership rules (the contract behind every `unsafe` block here):
//! 1. One writer per shard writes only at or beyond the shard's committed end, which no
//!    reader reads; after the Release store of the committed end those octets never change
//!    again, except the 4-octet state word at record offset 8, which is only accessed
//!    atomically.
//! 2. Readers read only below a committed end they loaded with Acquire, and never the state
//!    word except through [`Segment::state_word`].
//! 3. A segment is never truncated or reused while mapped: recycling unlinks the file; the
//!    mapping stays valid until the last `Arc<Segment>` is dropped.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

use memmap2::{MmapOptions, MmapRaw};

/// A mapped segment file.
#[derive(Debug)]
pub struct Segment {
    /// Position of the segment in the log: its first octet is logical offset
    /// `index * len`.
    pub index: u64,
    path: PathBuf,
    map: MmapRaw,
    len: usize,
    _file: File,
}

/// The file name of segment `index` in `dir`.
pub(super) fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}.seg"))
}

/// The segment index of a file name, if it is a segment file.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

impl Segment {
    /// Create segment `index` of `len` octets: a new file, preallocated with fallocate (not
    /// a sparse file: a full disk fails here, not as SIGBUS on a later write), mapped and
    /// pre-faulted.
    pub fn create(dir: &Path, index: u64, len: usize) -> io::Result<Self> {
        // Built under a temporary name and renamed when complete, so that a crash during
        // creation never leaves a short segment for recovery to trip on.
        let path = segment_path(dir, index);
        let tmp = path.with_extension("seg.tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let size = libc::off_t::try_from(len).map_err(|_| io::Error::other("segment too large"))?;
        // SAFETY: fallocate on a file descriptor we own, with no pointers involved.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(
                error.kind(),
                format!("fallocate {} octets for {}: {error}", len, path.display()),
            ));
        }
        if path.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        std::fs::rename(&tmp, &path)?;
        Self::map(file, path, index, len)
    }

    /// Open existing segment `index`; its size must be `len`.
    pub fn open(dir: &Path, index: u64, len: usize) -> io::Result<Self> {
        let path = segment_path(dir, index);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        if size != len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {size} octets, the configured segment size is {len}; \
                     segment_bytes must not change while a data directory exists",
                    path.display()
                ),
            ));
        }
        Self::map(file, path, index, len)
    }

    fn map(file: File, path: PathBuf, index: u64, len: usize) -> io::Result<Self> {
        let map = MmapOptions::new().len(len).populate().map_raw(&file)?;
        assert_eq!(map.len(), len);
        Ok(Self {
            index,
            path,
            map,
            len,
            _file: file,
        })
    }

    /// Size in octets.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: a segment has a fixed, non-zero size.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read `len` committed octets at `at`.
    ///
    /// The caller promises (rule 2) that the range is below a committed end it loaded with
    /// Acquire and does not cover a record's state word.
    pub fn read(&self, at: usize, len: usize) -> &[u8] {
        assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "read out of segment"
        );
        // SAFETY: in bounds (asserted); the mapping lives as long as `self`; by rules 1 and 2
        // nobody writes these octets while the returned borrow exists.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at), len) }
    }

    /// The writer's view of `len` uncommitted octets at `at`.
    ///
    /// The caller promises (rule 1) to be the shard's single writer and that the range is at
    /// or beyond the committed end, so no reader and no other borrow covers it.
    #[allow(clippy::mut_from_ref)]
    pub fn write_area(&self, at: usize, len: usize) -> &mut [u8] {
        assert!(
            at.checked_add(len).is_some_and(|end| end <= self.len),
            "write out of segment"
        );
        // SAFETY: in bounds (asserted); exclusive by rule 1 (single writer, uncommitted range).
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(at), len) }
    }

    /// The state word of the record at `at` (octets `at + 8 .. at + 12`).
    pub fn state_word(&self, at: usize) -> &AtomicU32 {
        let word = at + 8;
        assert!(
            word + 4 <= self.len && word.is_multiple_of(4),
            "state word out of segment or unaligned"
        );
        // SAFETY: in bounds and 4-aligned (asserted; the mapping is page-aligned); this word
        // is only ever accessed atomically (rules 1 and 2), so an AtomicU32 view is sound.
        unsafe { &*self.map.as_mut_ptr().add(word).cast::<AtomicU32>() }
    }

    /// Start writing dirty pages back without waiting (durability against power loss;
    /// `kill -9` loses nothing that reached the page cache).
    pub fn flush_async(&self) -> io::Result<()> {
        self.map.flush_async()
    }

    /// Remove the file; the mapping stays valid for readers still holding this segment.
    pub fn unlink(&self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_preallocates_and_open_checks_size() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 3, 1 << 16).unwrap();
        assert_eq!(std::fs::metadata(seg.path()).unwrap().len(), 1 << 16);
        // fallocate, not sparse: the blocks are allocated.
        let blocks =
            std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(seg.path()).unwrap());
        assert!(
            blocks * 512 >= 1 << 16,
            "segment is sparse ({blocks} blocks)"
        );
        seg.write_area(0, 4).copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(seg.read(0, 4), [1, 2, 3, 4]);
        drop(seg);
        let again = Segment::open(dir.path(), 3, 1 << 16).unwrap();
        assert_eq!(again.read(0, 4), [1, 2, 3, 4]);
        let err = Segment::open(dir.path(), 3, 1 << 17).unwrap_err();
        assert!(
            err.to_string().contains("segment_bytes must not change"),
            "{err}"
        );
        assert_eq!(parse_segment_name("0000000000000003.seg"), Some(3));
        assert_eq!(parse_segment_name("3.seg"), None);
    }
}
