//! The open-loop writer: appends change `g`'s Kea row to the journal lqd tails at its
//! scheduled instant `start + g / rate`, whatever lqd does. Rows that fell due while the
//! writer slept or wrote go out together in one `write` (Kea's own appends are one row per
//! write; several per write only make lqd's reading cheaper, never the latency shorter,
//! because latency counts from the scheduled instant).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::fleet::Shared;
use crate::population::Population;
use crate::stats::to_u64;

/// Most rows in one `write`.
const ROWS_PER_WRITE_MAX: u64 = 16_384;
/// Longest sleep between checks of the schedule.
const SLEEP_MAX: Duration = Duration::from_millis(1);

/// What the writer did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Injected {
    /// Rows written.
    pub(crate) rows: u64,
    /// `write` calls.
    pub(crate) writes: u64,
    /// Octets written.
    pub(crate) bytes: u64,
    /// Largest lateness of a row behind its scheduled instant, µs.
    pub(crate) late_us_max: u64,
}

/// Write `count` changes at `rate` per second from `shared.start_ns` on; stops early when
/// `shared.stop` is set.
pub(crate) fn inject(
    journal: &Path,
    population: &Population,
    rate: f64,
    count: u64,
    shared: &Shared,
) -> anyhow::Result<Injected> {
    assert!(rate > 0.0, "a positive rate");
    let start = shared.start_ns.load(Ordering::Acquire);
    assert!(start != u64::MAX, "the schedule starts before the writer");
    let mut file = OpenOptions::new()
        .append(true)
        .open(journal)
        .with_context(|| format!("opening {} to append", journal.display()))?;
    let mut out = Injected::default();
    let mut text = String::with_capacity(1 << 20);
    let ns_per_change = 1e9 / rate;
    while out.rows < count && !shared.stop.load(Ordering::Relaxed) {
        let now = shared.now_ns();
        let elapsed = now.saturating_sub(start);
        // Changes scheduled at or before now: g with g * ns_per_change <= elapsed.
        let due = (to_u64(elapsed as f64 / ns_per_change) + 1).min(count);
        if due <= out.rows {
            let next = start + to_u64(out.rows as f64 * ns_per_change);
            let wait = Duration::from_nanos(next.saturating_sub(now)).min(SLEEP_MAX);
            std::thread::sleep(wait);
            continue;
        }
        let first = out.rows;
        let last = due.min(first + ROWS_PER_WRITE_MAX);
        let late = now.saturating_sub(start + to_u64(first as f64 * ns_per_change));
        out.late_us_max = out.late_us_max.max(late / 1000);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs();
        text.clear();
        for g in first..last {
            population.write_row(g, unix, &mut text);
        }
        file.write_all(text.as_bytes())
            .with_context(|| format!("appending to {}", journal.display()))?;
        out.rows = last;
        out.writes += 1;
        out.bytes += text.len() as u64;
        shared.written.store(out.rows, Ordering::Release);
    }
    assert!(out.rows <= count, "never more than the schedule");
    Ok(out)
}
