//! What one receiver thread counts, merged at the end (style.md §1.8: one HDR histogram per
//! load thread, never a shared locked one).
//!
//! Histograms hold microseconds, 3 significant figures, 1 µs ..= 10 min; a larger value is
//! recorded as the maximum (saturating).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Frames kept as samples for the pump baseline.
pub(crate) const SAMPLES_MAX: usize = 256;

/// Largest latency recorded, µs (larger ones saturate to it).
pub(crate) const LATENCY_US_MAX: u64 = 600_000_000;

/// `v` rounded down to a u64: Rust's float-to-integer `as` saturates at both ends and maps
/// NaN to 0, which is what every count and instant computed in floating point here wants.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) const fn to_u64(v: f64) -> u64 {
    v as u64
}

/// A latency histogram with the bounds above.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant bounds are valid")
}

/// The percentiles every report prints, as (name, quantile).
pub(crate) const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// The fixed percentile set of a histogram as JSON (µs).
pub(crate) fn percentiles_json(h: &Histogram<u64>) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("count".into(), json!(h.len()));
    for (name, q) in PERCENTILES {
        map.insert(format!("{name}_us"), json!(h.value_at_quantile(q)));
    }
    map.insert("max_us".into(), json!(h.max()));
    Value::Object(map)
}

/// One receiver thread's counters.
pub(crate) struct ThreadStats {
    /// Latency of live changes, scheduled write → receipt, µs.
    pub(crate) latency: Histogram<u64>,
    /// LEASEQUERY-DATA frames with CLIENT_DATA.
    pub(crate) data_frames: u64,
    /// Other frames (REPLY, status DATA, keepalives, DONE).
    pub(crate) other_frames: u64,
    /// Keepalive DATA (no CLIENT_DATA, no status).
    pub(crate) keepalives: u64,
    /// Octets received, framing included.
    pub(crate) bytes: u64,
    /// `read` calls that returned data.
    pub(crate) reads: u64,
    /// A state received twice on a live stream.
    pub(crate) duplicates: u64,
    /// A state older than one already received for that client.
    pub(crate) out_of_order: u64,
    /// States received again during a catch-up (allowed: LQ_START_TIME has 1 s resolution).
    pub(crate) catchup_repeats: u64,
    /// New states received during catch-ups (not in the latency histogram).
    pub(crate) catchup_frames: u64,
    /// Final states not received, summed over (checked connection, client).
    pub(crate) missing: u64,
    /// Intermediate states not received (coalesced by lqd, RFC 7653 §7, S-51).
    pub(crate) coalesced: u64,
    /// States written for the checked connections' filters.
    pub(crate) expected: u64,
    /// Connections checked for completeness (read to the end, not evicted).
    pub(crate) checked: u64,
    /// Reconnects done (with LQ_START_TIME).
    pub(crate) reconnects: u64,
    /// Connections lqd closed (end of stream or reset) without being asked.
    pub(crate) evicted: u64,
    /// Errors by kind.
    pub(crate) errors: BTreeMap<String, u64>,
    /// The first DATA frames with CLIENT_DATA received, size prefix included (at most
    /// [`SAMPLES_MAX`]): the pump's frames.
    pub(crate) samples: Vec<Vec<u8>>,
}

impl ThreadStats {
    /// Empty counters.
    pub(crate) fn new() -> Self {
        Self {
            latency: histogram(),
            data_frames: 0,
            other_frames: 0,
            keepalives: 0,
            bytes: 0,
            reads: 0,
            duplicates: 0,
            out_of_order: 0,
            catchup_repeats: 0,
            catchup_frames: 0,
            missing: 0,
            coalesced: 0,
            expected: 0,
            checked: 0,
            reconnects: 0,
            evicted: 0,
            errors: BTreeMap::new(),
            samples: Vec::new(),
        }
    }

    /// Count one error of `kind`.
    pub(crate) fn error(&mut self, kind: &str) {
        match self.errors.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(kind.to_owned(), 1);
            }
        }
    }

    /// Add `other` into `self`.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds merge");
        self.data_frames += other.data_frames;
        self.other_frames += other.other_frames;
        self.keepalives += other.keepalives;
        self.bytes += other.bytes;
        self.reads += other.reads;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.catchup_repeats += other.catchup_repeats;
        self.catchup_frames += other.catchup_frames;
        self.missing += other.missing;
        self.coalesced += other.coalesced;
        self.expected += other.expected;
        self.checked += other.checked;
        self.reconnects += other.reconnects;
        self.evicted += other.evicted;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_insert(0) += n;
        }
        let room = SAMPLES_MAX - self.samples.len();
        self.samples
            .extend(other.samples.iter().take(room).cloned());
    }

    /// Keep `frame` (without its size prefix) as a sample if there is room.
    pub(crate) fn sample(&mut self, frame: &[u8]) {
        if self.samples.len() < SAMPLES_MAX {
            let size = u16::try_from(frame.len()).expect("a frame fits its size prefix");
            let mut framed = Vec::with_capacity(2 + frame.len());
            framed.extend_from_slice(&size.to_be_bytes());
            framed.extend_from_slice(frame);
            self.samples.push(framed);
        }
    }

    /// Average frames per `read` (a lower bound of the sender's frames per send).
    pub(crate) fn frames_per_read(&self) -> f64 {
        if self.reads == 0 {
            return 0.0;
        }
        (self.data_frames + self.other_frames) as f64 / self.reads as f64
    }

    /// Every count, the histogram as (value, count) pairs and the samples, for a fleet
    /// process to hand to its coordinator ([`Self::from_wire`] reads it back).
    pub(crate) fn to_wire(&self) -> Value {
        let latency: Vec<[u64; 2]> = self
            .latency
            .iter_recorded()
            .map(|v| [v.value_iterated_to(), v.count_at_value()])
            .collect();
        json!({
            "latency": latency,
            "counts": [self.data_frames, self.other_frames, self.keepalives, self.bytes,
                       self.reads, self.duplicates, self.out_of_order, self.catchup_repeats,
                       self.catchup_frames, self.missing, self.coalesced, self.expected,
                       self.checked, self.reconnects, self.evicted],
            "errors": self.errors,
            "samples": self.samples,
        })
    }

    /// The counts [`Self::to_wire`] wrote.
    pub(crate) fn from_wire(v: &Value) -> Option<Self> {
        let mut s = Self::new();
        for pair in v["latency"].as_array()? {
            let (value, count) = (pair[0].as_u64()?, pair[1].as_u64()?);
            s.latency.saturating_record_n(value, count);
        }
        let counts: Vec<u64> = v["counts"]
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<_>>()?;
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o] = counts[..] else {
            return None;
        };
        (
            s.data_frames,
            s.other_frames,
            s.keepalives,
            s.bytes,
            s.reads,
        ) = (a, b, c, d, e);
        (
            s.duplicates,
            s.out_of_order,
            s.catchup_repeats,
            s.catchup_frames,
        ) = (f, g, h, i);
        (
            s.missing,
            s.coalesced,
            s.expected,
            s.checked,
            s.reconnects,
            s.evicted,
        ) = (j, k, l, m, n, o);
        for (kind, n) in v["errors"].as_object()? {
            s.errors.insert(kind.clone(), n.as_u64()?);
        }
        for sample in v["samples"].as_array()?.iter().take(SAMPLES_MAX) {
            let bytes = sample
                .as_array()?
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()));
            s.samples.push(bytes.collect::<Option<Vec<u8>>>()?);
        }
        Some(s)
    }

    /// The counters as JSON.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "latency": percentiles_json(&self.latency),
            "data_frames": self.data_frames,
            "other_frames": self.other_frames,
            "keepalives": self.keepalives,
            "bytes": self.bytes,
            "reads": self.reads,
            "frames_per_read": self.frames_per_read(),
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "missing_final_states": self.missing,
            "coalesced_states": self.coalesced,
            "expected_states": self.expected,
            "checked_connections": self.checked,
            "catchup_repeats": self.catchup_repeats,
            "catchup_frames": self.catchup_frames,
            "reconnects": self.reconnects,
            "evicted": self.evicted,
            "errors": self.errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = ThreadStats::new();
        let mut b = ThreadStats::new();
        a.latency.saturating_record(10);
        b.latency.saturating_record(LATENCY_US_MAX * 2);
        b.error("reset");
        b.data_frames = 3;
        b.reads = 1;
        a.merge(&b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(
            a.latency.max(),
            a.latency.highest_equivalent(LATENCY_US_MAX)
        );
        assert_eq!(a.errors["reset"], 1);
        assert!((a.frames_per_read() - 3.0).abs() < 1e-9);
        assert_eq!(a.to_json()["latency"]["count"], 2);
        a.sample(&[17, 0, 0, 1]);
        let back = ThreadStats::from_wire(&a.to_wire()).unwrap();
        assert_eq!(back.latency.len(), 2);
        assert_eq!(back.latency.max(), a.latency.max());
        assert_eq!((back.data_frames, back.reads), (3, 1));
        assert_eq!(back.errors, a.errors);
        assert_eq!(back.samples, vec![vec![0, 4, 17, 0, 0, 1]]);
    }
}
