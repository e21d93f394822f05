//! The Kea source: start-up (resume or snapshot), then tailing, driven by the ingest thread.
//!
//! Start-up (kea.md §8.3, §8.5):
//! - with a checkpoint whose file still exists as X or X.1: resume exactly there;
//! - otherwise (first start, or the file was rotated away and compacted while lqd was
//!   down): read the snapshot in Kea's order — X.completed, or X.2 then X.1, then X — keep
//!   the last row per address, route only those final rows (the store turns a row that
//!   matches what it holds into no change), and sweep: every lease the store holds live
//!   that the snapshot does not is ended. Then tail X from where the snapshot stopped.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::csv::{parse_row, Header};
use super::row::lease_kind;
use super::tailer::{rotated_path, Line, Position, Tailer};
use super::Router;
use crate::wire::client_data::LeaseKind;

/// How the source started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Resumed at the stored checkpoint.
    Resumed(Position),
    /// Rebuilt from the snapshot: this many final rows routed.
    Snapshot {
        /// Final rows (one per address) routed.
        rows: usize,
    },
}

/// The snapshot files before X, in Kea's load order.
pub fn snapshot_files(path: &Path) -> Vec<PathBuf> {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let completed = with(".completed");
    if completed.exists() {
        return vec![completed];
    }
    [with(".2"), rotated_path(path)]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

/// The Kea lease-file source.
pub struct KeaSource {
    tailer: Tailer,
    /// The tailer's buffer size (the longest line).
    line_max: usize,
    /// Lines read per poll (a bound on one loop iteration).
    lines_per_poll: usize,
}

/// A line kept from the snapshot: its text, the file and line number (for errors).
struct Kept {
    text: String,
    header: Header,
    file: usize,
    line: u64,
}

impl KeaSource {
    /// A source for `path`; nothing is read until [`Self::start`].
    pub fn new(path: &Path, line_max: usize, lines_per_poll: usize) -> Self {
        assert!(lines_per_poll > 0);
        Self {
            tailer: Tailer::new(path, line_max),
            line_max,
            lines_per_poll,
        }
    }

    /// Resume at `checkpoint` or rebuild from the snapshot; after a rebuild the shards are
    /// sent the snapshot's lease set, so that they end every lease it does not hold.
    pub fn start(
        &mut self,
        router: &mut Router,
        checkpoint: Option<Position>,
        now: u32,
    ) -> io::Result<Start> {
        if let Some(at) = checkpoint {
            if self.tailer.resume(at)? {
                return Ok(Start::Resumed(at));
            }
            tracing::warn!(
                file = %self.tailer.path().display(),
                "checkpointed lease file is gone (rotated while lqd was down): \
                 rebuilding from the snapshot"
            );
        }
        let mut files = snapshot_files(self.tailer.path());
        files.push(self.tailer.path().to_path_buf());
        let mut last: HashMap<LeaseKind, Kept> = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            let is_live = i + 1 == files.len();
            self.read_snapshot_file(router, file, i, is_live, &mut last)?;
        }
        let rows = last.len();
        let mut live: HashMap<LeaseKind, u64> = HashMap::with_capacity(rows);
        let mut kept: Vec<Kept> = last.into_values().collect();
        kept.sort_by_key(|k| (k.file, k.line));
        for k in &kept {
            if let Ok(row) = parse_row(&k.header, &k.text) {
                if row.valid_lifetime != 0 && !super::row::is_placeholder_duid(row.duid.as_slice())
                {
                    live.insert(
                        lease_kind(&row),
                        crate::store::Shard::client_hash(row.duid.as_slice(), row.subnet_id),
                    );
                }
            }
            router.row(&k.text, &k.header, &files[k.file], k.line, now);
        }
        router.sweep(live);
        if let Some(position) = self.tailer.position()? {
            router.checkpoint(position);
        }
        Ok(Start::Snapshot { rows })
    }

    /// Read one snapshot file, keeping the last row per resource. The live file X is read
    /// through the tailer, which then goes on tailing it.
    fn read_snapshot_file(
        &mut self,
        router: &mut Router,
        file: &Path,
        index: usize,
        is_live: bool,
        last: &mut HashMap<LeaseKind, Kept>,
    ) -> io::Result<()> {
        let mut reader = if is_live {
            None
        } else {
            Some(Tailer::new(file, 64 * 1024))
        };
        let tailer = reader.as_mut().unwrap_or(&mut self.tailer);
        if !is_live {
            tailer.open_at(file, 0, 0)?;
        }
        // The snapshot holds at most one row per address or prefix the store can index:
        // beyond that, rows are refused (counted) rather than grown without bound.
        let kept_max = router.owners_max();
        loop {
            let mut rejected = Vec::new();
            let n = tailer.poll(self.lines_per_poll, &mut |line| match line {
                Line::Row { text, header, line } => match parse_row(header, text) {
                    Ok(row) if last.len() >= kept_max && !last.contains_key(&lease_kind(&row)) => {
                        rejected.push((
                            "owners_full",
                            line,
                            "snapshot exceeds the lease capacity".into(),
                        ));
                    }
                    Ok(row) => {
                        let kept = Kept {
                            text: text.to_owned(),
                            header: *header,
                            file: index,
                            line,
                        };
                        last.insert(lease_kind(&row), kept);
                    }
                    Err(e) => rejected.push((e.reason(), line, e.to_string())),
                },
                Line::Malformed { reason, line, .. } => {
                    rejected.push((reason, line, String::new()))
                }
                // Snapshot files are read whole; a gap while reading X itself is covered by
                // this very rebuild.
                Line::Opened { .. } | Line::Gap => {}
            })?;
            for (reason, line, detail) in rejected {
                router.reject(reason, file, line, &detail);
            }
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// Read what Kea appended since the last call and route it; sends a checkpoint after a
    /// batch that read anything. Returns the lines read.
    pub fn poll(&mut self, router: &mut Router, now: u32) -> io::Result<usize> {
        let path = self.tailer.path().to_path_buf();
        let mut malformed: Vec<(&'static str, u64)> = Vec::new();
        let mut gap = false;
        let n = self
            .tailer
            .poll(self.lines_per_poll, &mut |line| match line {
                Line::Row { text, header, line } => router.row(text, header, &path, line, now),
                Line::Malformed { reason, line, .. } => malformed.push((reason, line)),
                Line::Opened { file } => {
                    let inode = file.ino;
                    tracing::info!(path = %path.display(), inode, "following lease file");
                }
                Line::Gap => gap = true,
            })?;
        for (reason, line) in malformed {
            router.reject(reason, &path, line, "unreadable line");
        }
        if gap {
            tracing::warn!(
                path = %path.display(),
                "a rotated lease file was compacted before lqd finished it: \
                 rebuilding from the snapshot"
            );
            self.tailer = Tailer::new(&path, self.line_max);
            self.start(router, None, now)?;
            return Ok(n);
        }
        if n > 0 {
            if let Some(position) = self.tailer.position()? {
                router.checkpoint(position);
            }
        }
        Ok(n)
    }

    /// The tailer's current position.
    pub fn position(&self) -> io::Result<Option<Position>> {
        self.tailer.position()
    }
}
