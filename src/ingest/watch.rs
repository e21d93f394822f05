//! Wake-ups for the tailer: inotify on the lease file's directory (kea.md §8.5 item 1).
//!
//! A thread blocks in inotify's read and turns every event about the followed file (its
//! writes, and the create/rename of a rotation) into a wake-up on a channel of capacity 1;
//! the ingest thread waits on that channel with a timeout, so a lost event costs at most
//! one timeout, never a stall. Dropping the [`Watcher`] removes the watch, which wakes the
//! thread (IN_IGNORED) so that it exits.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use inotify::{Inotify, WatchDescriptor, WatchMask};

/// Watches the directory of one file.
pub struct Watcher {
    wakeups: Receiver<()>,
    stop: Arc<AtomicBool>,
    watches: inotify::Watches,
    descriptor: WatchDescriptor,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watch the directory holding `file` for events about any name starting with `file`'s
    /// name (X, X.1, X.2, X.completed …).
    pub fn new(file: &Path) -> io::Result<Self> {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name: OsString = file.file_name().map(ToOwned::to_owned).unwrap_or_default();
        let inotify = Inotify::init()?;
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::CLOSE_WRITE
            | WatchMask::DELETE;
        let watches = inotify.watches();
        let descriptor = watches.clone().add(dir, mask)?;
        let (tx, wakeups) = bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lqd-inotify".into())
            .spawn(move || {
                let mut inotify = inotify;
                let mut buf = [0u8; 4096];
                while !stopping.load(Ordering::Acquire) {
                    let Ok(events) = inotify.read_events_blocking(&mut buf) else {
                        break;
                    };
                    let relevant = events.into_iter().any(|e| {
                        e.name.is_none_or(|n| {
                            n.as_encoded_bytes().starts_with(name.as_encoded_bytes())
                        })
                    });
                    if relevant {
                        // Full means a wake-up is already pending: nothing is lost.
                        let _ = tx.try_send(());
                    }
                }
            })?;
        Ok(Self {
            wakeups,
            stop,
            watches,
            descriptor,
            thread: Some(thread),
        })
    }

    /// Wait for a change or `timeout`; true when woken by an event.
    pub fn wait(&self, timeout: Duration) -> bool {
        match self.wakeups.recv_timeout(timeout) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Removing the watch queues IN_IGNORED, which ends the blocking read.
        let _ = self.watches.remove(self.descriptor.clone());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn writes_and_renames_wake_the_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kea-leases6.csv");
        std::fs::write(&file, "header\n").unwrap();
        let watcher = Watcher::new(&file).unwrap();
        assert!(!watcher.wait(Duration::from_millis(50)), "no event yet");
        std::fs::write(&file, "header\nrow\n").unwrap();
        assert!(watcher.wait(Duration::from_secs(5)));
        while watcher.wait(Duration::from_millis(20)) {}
        std::fs::rename(&file, dir.path().join("kea-leases6.csv.1")).unwrap();
        assert!(watcher.wait(Duration::from_secs(5)));
        while watcher.wait(Duration::from_millis(20)) {}
        std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
        assert!(
            !watcher.wait(Duration::from_millis(100)),
            "other files do not wake"
        );
        let started = Instant::now();
        drop(watcher);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "drop joins the thread promptly"
        );
    }
}
