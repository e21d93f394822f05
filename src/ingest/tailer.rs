//! Following Kea's lease file by path across LFC rotations (kea.md §8.5).
//!
//! 1. The tailer reads the file it has open to its end, line by line; a trailing partial
//!    line is held back until its newline arrives.
//! 2. At the end of the file it compares the inode at the path with the one it reads. When
//!    they differ (Kea renamed X to X.1 and created a new X), it reads the old descriptor to
//!    its end first — nothing is lost — and then opens the new file, whose first line is a
//!    header: columns are re-mapped from it.
//! 3. Its position — file identity (device, inode), the offset after the last complete line
//!    and that line's number — is what the store keeps as the ingest checkpoint. A position
//!    resumes exactly where it was, in X or, after a rotation, in X.1.
//!
//! A line longer than `line_max` is reported as malformed and skipped up to its newline; the
//! read buffer is allocated once.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::csv::{Header, HeaderError};

/// Identity of a file: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where the tailer is: the checkpoint the store keeps (40 octets).
///
/// An inode number alone does not name a file for long: once kea-lfc removes X.1, the file
/// system may give its inode to the next X. The fingerprint (a hash of the octets just
/// before `offset`) tells such an impostor from the file that was checkpointed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The file being read.
    pub file: FileId,
    /// Offset just after the last complete line consumed.
    pub offset: u64,
    /// Number of that line (1 = the header).
    pub line: u64,
    /// xxh3 of the up to [`FINGERPRINT_LEN`] octets before `offset` (0 at offset 0).
    pub fingerprint: u64,
}

/// Octets hashed into a position's fingerprint.
pub const FINGERPRINT_LEN: usize = 128;

/// The fingerprint of `file` at `offset`, or `None` if the file is shorter.
pub fn fingerprint(file: &File, offset: u64) -> io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(offset).map_or(FINGERPRINT_LEN, |o| o.min(FINGERPRINT_LEN));
    let mut buf = [0u8; FINGERPRINT_LEN];
    let buf = &mut buf[..len];
    match file.read_exact_at(buf, offset - len as u64) {
        Ok(()) => Ok(Some(xxhash_rust::xxh3::xxh3_64(buf))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

impl Position {
    /// Encoded size.
    pub const LEN: usize = 40;

    /// Encode for a store checkpoint.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let fields = [
            self.file.dev,
            self.file.ino,
            self.offset,
            self.line,
            self.fingerprint,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Decode a store checkpoint.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let v = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        Some(Self {
            file: FileId {
                dev: v(0),
                ino: v(1),
            },
            offset: v(2),
            line: v(3),
            fingerprint: v(4),
        })
    }
}

/// One line as the tailer hands it over.
#[derive(Debug)]
pub enum Line<'a> {
    /// A data row, with the header it is read against.
    Row {
        /// The line without its newline (and without a trailing `\r`).
        text: &'a str,
        /// The file's header.
        header: &'a Header,
        /// Its line number in the file (1 = the header).
        line: u64,
    },
    /// A line that cannot be read: not UTF-8, too long, no valid header above it, a
    /// header that does not parse, or a partial line left in a file that was rotated away.
    Malformed {
        /// Why.
        reason: &'static str,
        /// Its line number in the file, for the log.
        line: u64,
    },
    /// A new file was opened after a rotation (or at start).
    Opened {
        /// Its identity.
        file: FileId,
    },
    /// The file just finished is no longer at X.1: kea-lfc has already compacted it, so a
    /// whole generation may have been rotated in and out since the last read. Only a
    /// rebuild from the snapshot can tell (the source does one).
    Gap,
}

struct Current {
    file: File,
    id: FileId,
    /// Offset of `buf[start]` in the file.
    offset: u64,
    /// Lines consumed.
    line: u64,
    header: Option<Header>,
    /// True while skipping the rest of an over-long line.
    skipping: bool,
    /// True once the path was seen to name another file: read to the end, then switch.
    rotation_seen: bool,
}

/// Follows one lease file path.
pub struct Tailer {
    path: PathBuf,
    current: Option<Current>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Why a header line was refused, as a counter label.
fn header_reason(error: &HeaderError) -> &'static str {
    match error {
        HeaderError::Missing(_) => "header_missing_column",
        HeaderError::TooManyColumns(_) => "header_too_many_columns",
        HeaderError::Duplicate(_) => "header_duplicate_column",
    }
}

impl Tailer {
    /// A tailer for `path` with a read buffer of `line_max` octets (the longest line).
    pub fn new(path: &Path, line_max: usize) -> Self {
        assert!(line_max >= 256);
        Self {
            path: path.to_path_buf(),
            current: None,
            buf: vec![0; line_max].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current position, once a file is open (one `pread` for the fingerprint).
    pub fn position(&self) -> io::Result<Option<Position>> {
        let Some(c) = self.current.as_ref() else {
            return Ok(None);
        };
        let fingerprint = fingerprint(&c.file, c.offset)?.unwrap_or(0);
        Ok(Some(Position {
            file: c.id,
            offset: c.offset,
            line: c.line,
            fingerprint,
        }))
    }

    /// Start reading `path` (whatever file it is now) from `offset`, which must be the start
    /// of a line; the header is re-read from the start of the file.
    pub fn open_at(&mut self, path: &Path, offset: u64, line: u64) -> io::Result<FileId> {
        let mut file = File::open(path)?;
        let id = FileId::of(&file.metadata()?);
        let header = if offset > 0 {
            read_header(&mut file)?
        } else {
            None
        };
        file.seek(SeekFrom::Start(offset))?;
        self.current = Some(Current {
            file,
            id,
            offset,
            line,
            header,
            skipping: false,
            rotation_seen: false,
        });
        self.start = 0;
        self.end = 0;
        Ok(id)
    }

    /// Resume at a checkpoint: in the followed file, or in `<path>.1` after a rotation.
    /// `Ok(false)` when neither holds the file any more (it was rotated away and compacted
    /// while lqd was down: rebuild from the snapshot).
    pub fn resume(&mut self, at: Position) -> io::Result<bool> {
        let rotated = rotated_path(&self.path);
        for candidate in [self.path.clone(), rotated] {
            let Ok(file) = File::open(&candidate) else {
                continue;
            };
            let same_inode = FileId::of(&file.metadata()?) == at.file;
            // The inode may have been reused by a newer file: the octets before the offset
            // must be the ones checkpointed.
            if same_inode && fingerprint(&file, at.offset)? == Some(at.fingerprint) {
                self.open_at(&candidate, at.offset, at.line)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Read what is available and hand every complete line to `sink`; switch files on a
    /// rotation. Returns the number of lines handed over. Reads at most `lines_max` lines,
    /// so the caller keeps its loop bounded.
    pub fn poll(&mut self, lines_max: usize, sink: &mut dyn FnMut(Line<'_>)) -> io::Result<usize> {
        if self.current.is_none() && !self.open_path(sink)? {
            return Ok(0);
        }
        let mut lines = 0;
        while lines < lines_max {
            let n = self.deliver(lines_max - lines, sink);
            lines += n;
            if n > 0 {
                continue;
            }
            if self.fill()? > 0 {
                continue;
            }
            // At the end of the open file: has the path moved on? Once it has, read the old
            // descriptor to its end once more — a row may have landed between our last read
            // and the rename; Kea closes the file before renaming it, so that end is final.
            let current = self.current.as_mut().expect("a file is open");
            if !current.rotation_seen {
                if !self.rotated()? {
                    break;
                }
                self.current.as_mut().expect("a file is open").rotation_seen = true;
                continue;
            }
            let finished = current.id;
            self.finish_rotated(sink);
            if !self.open_next(finished, sink)? {
                break;
            }
        }
        Ok(lines)
    }

    /// Open the file that follows `finished`: X.1 when it is a file we have not read (a
    /// second rotation happened before we finished the first), else X.
    fn open_next(&mut self, finished: FileId, sink: &mut dyn FnMut(Line<'_>)) -> io::Result<bool> {
        let rotated = rotated_path(&self.path);
        let id_of = |p: &Path| std::fs::metadata(p).ok().map(|m| FileId::of(&m));
        match id_of(&rotated) {
            // The usual case: X.1 is the file just finished, X its successor.
            Some(between) if between == finished => {}
            // X.1 is a generation we never read: read it before X.
            Some(between) if Some(between) != id_of(&self.path) => {
                if let Ok(file) = self.open_at(&rotated, 0, 0) {
                    tracing::warn!(
                        path = %rotated.display(),
                        "two rotations since the last read: reading the intermediate file"
                    );
                    sink(Line::Opened { file });
                    return Ok(true);
                }
                sink(Line::Gap);
            }
            _ => sink(Line::Gap),
        }
        self.open_path(sink)
    }

    fn open_path(&mut self, sink: &mut dyn FnMut(Line<'_>)) -> io::Result<bool> {
        match self.open_at(&self.path.clone(), 0, 0) {
            Ok(file) => {
                sink(Line::Opened { file });
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// True when the path names another file than the one being read.
    fn rotated(&self) -> io::Result<bool> {
        let current = self.current.as_ref().expect("a file is open");
        match std::fs::metadata(&self.path) {
            Ok(meta) => Ok(FileId::of(&meta) != current.id),
            // Between Kea's rename and its new file: not yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The old file is read to its end; a partial line left in it is malformed.
    fn finish_rotated(&mut self, sink: &mut dyn FnMut(Line<'_>)) {
        let current = self.current.as_mut().expect("a file is open");
        if self.end > self.start || current.skipping {
            current.line += 1;
            sink(Line::Malformed {
                reason: "partial_line_at_rotation",
                line: current.line,
            });
        }
        self.current = None;
        self.start = 0;
        self.end = 0;
    }

    /// Read more of the file into the buffer; returns the octets read.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let current = self.current.as_mut().expect("a file is open");
        if self.end == self.buf.len() {
            // A line longer than the buffer: drop what is buffered and skip to its newline.
            current.offset += self.end as u64;
            current.skipping = true;
            self.end = 0;
        }
        let n = current.file.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Hand over the complete lines in the buffer (at most `max`); returns how many.
    fn deliver(&mut self, max: usize, sink: &mut dyn FnMut(Line<'_>)) -> usize {
        let mut delivered = 0;
        while delivered < max {
            let Some(newline) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            else {
                break;
            };
            let line_start = self.start;
            let line_end = self.start + newline;
            self.start = line_end + 1;
            let current = self.current.as_mut().expect("a file is open");
            current.offset += (newline + 1) as u64;
            current.line += 1;
            delivered += 1;
            if std::mem::take(&mut current.skipping) {
                sink(Line::Malformed {
                    reason: "line_too_long",
                    line: current.line,
                });
                continue;
            }
            let raw = &self.buf[line_start..line_end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            // Kea <= 3.2 may write raw non-UTF-8 octets in a hostname, which lqd does not
            // use: read such a line with replacement characters rather than lose the lease.
            let lossy;
            let text = match std::str::from_utf8(raw) {
                Ok(text) => text,
                Err(_) => {
                    lossy = String::from_utf8_lossy(raw).into_owned();
                    lossy.as_str()
                }
            };
            if current.line == 1 {
                match Header::parse(text) {
                    Ok(header) => current.header = Some(header),
                    Err(e) => {
                        current.header = None;
                        sink(Line::Malformed {
                            reason: header_reason(&e),
                            line: 1,
                        });
                    }
                }
                continue;
            }
            match &current.header {
                Some(header) => sink(Line::Row {
                    text,
                    header,
                    line: current.line,
                }),
                None => sink(Line::Malformed {
                    reason: "no_header",
                    line: current.line,
                }),
            }
        }
        delivered
    }
}

/// `<path>.1`: where Kea moves the live file at an LFC rotation.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Read the first line of a file as a header (for resuming past it).
fn read_header(file: &mut File) -> io::Result<Option<Header>> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    while len < buf.len() {
        let n = file.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].contains(&b'\n') {
            break;
        }
    }
    let line = buf[..len].split(|&b| b == b'\n').next().unwrap_or(&[]);
    Ok(std::str::from_utf8(line)
        .ok()
        .and_then(|l| Header::parse(l).ok()))
}
