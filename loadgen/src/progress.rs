//! The progress bar on stderr: redrawn in place on a terminal, a plain line every five
//! seconds otherwise, nothing with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::fleet::Shared;
use crate::stats::to_u64;

/// Width of the bar, characters.
const BAR_WIDTH: usize = 30;
/// Period of the plain lines when stderr is no terminal.
const PLAIN_PERIOD: Duration = Duration::from_secs(5);

/// The progress display of one schedule.
pub(crate) struct Progress {
    quiet: bool,
    terminal: bool,
    window: Duration,
    count: u64,
    shown_at: Option<Instant>,
    frames_then: u64,
}

impl Progress {
    /// A display for a schedule of `count` changes over `window`.
    pub(crate) fn new(quiet: bool, window: Duration, count: u64) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            window,
            count,
            shown_at: None,
            frames_then: 0,
        }
    }

    /// Redraw (at most every 100 ms on a terminal, every 5 s otherwise).
    pub(crate) fn show(&mut self, shared: &Shared) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        let period = if self.terminal {
            Duration::from_millis(100)
        } else {
            PLAIN_PERIOD
        };
        let since = self.shown_at.map(|t| now - t);
        if since.is_some_and(|s| s < period) {
            return;
        }
        let frames = shared.data_frames.load(Ordering::Relaxed);
        let per_s = since.map_or(0.0, |s| {
            (frames - self.frames_then) as f64 / s.as_secs_f64()
        });
        self.shown_at = Some(now);
        self.frames_then = frames;
        let start = shared.start_ns.load(Ordering::Relaxed);
        let elapsed = Duration::from_nanos(shared.now_ns().saturating_sub(start));
        let fraction = (elapsed.as_secs_f64() / self.window.as_secs_f64().max(1e-9)).min(1.0);
        let filled = usize::try_from(to_u64(fraction * BAR_WIDTH as f64))
            .map_or(BAR_WIDTH, |f| f.min(BAR_WIDTH));
        let line = format!(
            "[{}{}] {:5.1} s  changes {}/{}  DATA received {} ({:.2} M/s)",
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled),
            elapsed.as_secs_f64(),
            shared.written.load(Ordering::Relaxed),
            self.count,
            frames,
            per_s / 1e6
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
    }

    /// End the display.
    pub(crate) fn finish(&mut self, shared: &Shared) {
        self.shown_at = self.shown_at.map(|t| t - PLAIN_PERIOD);
        self.show(shared);
        if !self.quiet && self.terminal {
            eprintln!();
        }
    }
}
