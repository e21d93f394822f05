//! The Prometheus text exposition format (version 0.0.4) of a [`Registry`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::{latency_histogram, Counters, Registry, CLOSES, QUERY_KINDS, QUERY_TYPES, REFUSALS};
use crate::wire::StatusCode;

/// Bucket bounds of the latency histograms, nanoseconds: 10 µs to 10 s.
pub const BUCKETS_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// One counter family with a sample per worker and value of `label`.
    fn by_label(
        &mut self,
        registry: &Registry,
        name: &str,
        help: &str,
        (label, values): (&str, &[&str]),
        get: impl Fn(&Counters, usize) -> &AtomicU64,
    ) {
        self.family(name, "counter", help);
        for (i, w) in registry.workers.iter().enumerate() {
            let worker = i.to_string();
            for (r, value) in values.iter().enumerate() {
                let count = get(w, r).load(Ordering::Relaxed);
                self.sample(name, &[("worker", &worker), (label, value)], count);
            }
        }
    }

    /// [`Self::by_label`] with the label `reason`.
    fn by_reason(
        &mut self,
        registry: &Registry,
        name: &str,
        help: &str,
        reasons: &[&str],
        get: impl Fn(&Counters, usize) -> &AtomicU64,
    ) {
        self.by_label(registry, name, help, ("reason", reasons), get);
    }

    /// One counter family with a sample per worker.
    fn per_worker(
        &mut self,
        registry: &Registry,
        name: &str,
        help: &str,
        get: impl Fn(&Counters) -> &AtomicU64,
    ) {
        self.family(name, "counter", help);
        for (i, w) in registry.workers.iter().enumerate() {
            let worker = i.to_string();
            self.sample(name, &[("worker", &worker)], get(w).load(Ordering::Relaxed));
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(registry: &Registry) -> String {
    let mut out = Out {
        text: String::with_capacity(16 * 1024),
    };
    connections(&mut out, registry);
    queries(&mut out, registry);
    sending(&mut out, registry);
    ingest(&mut out, registry);
    store(&mut out, registry);
    latency(&mut out, registry);
    out.text
}

fn connections(out: &mut Out, registry: &Registry) {
    out.per_worker(
        registry,
        "lqd_connections_accepted_total",
        "Requestor connections accepted.",
        |w| &w.accepted,
    );
    out.family(
        "lqd_connections_open",
        "gauge",
        "Requestor connections open, per worker.",
    );
    for (i, w) in registry.workers.iter().enumerate() {
        out.sample(
            "lqd_connections_open",
            &[("worker", &i.to_string())],
            w.open.load(Ordering::Relaxed),
        );
    }
    out.by_reason(
        registry,
        "lqd_connections_refused_total",
        "Connections closed at accept: not on the allow-list (S-9), over the cap (S-8), \
         over the per-source cap.",
        &REFUSALS,
        |w, r| &w.refused[r],
    );
    out.by_reason(
        registry,
        "lqd_connections_closed_total",
        "Connections closed, by reason.",
        &CLOSES,
        |w, r| &w.closed[r],
    );
    out.family(
        "lqd_connections_protocol_errors_total",
        "counter",
        "Connections closed for a framing or message error (S-25), by the error.",
    );
    for (i, w) in registry.workers.iter().enumerate() {
        for (reason, n) in w.protocol() {
            out.sample(
                "lqd_connections_protocol_errors_total",
                &[("worker", &i.to_string()), ("reason", reason)],
                n,
            );
        }
    }
    out.by_reason(
        registry,
        "lqd_connections_evicted_total",
        "Connections closed by lqd: blocked sends (S-61, S-62), idle at the cap (S-11).",
        &["send_timeout", "idle_at_cap"],
        |w, r| {
            if r == 0 {
                &w.evicted_send
            } else {
                &w.evicted_idle
            }
        },
    );
}

fn outcome_name(outcome: usize) -> String {
    if outcome == 0 {
        return "accepted".into();
    }
    let code = u16::try_from(outcome).expect("below OUTCOMES");
    StatusCode::from_code(code).name().to_owned()
}

fn queries(out: &mut Out, registry: &Registry) {
    out.family(
        "lqd_queries_total",
        "counter",
        "Queries by kind, query type and outcome (accepted, or the status of the refusal).",
    );
    for (i, w) in registry.workers.iter().enumerate() {
        let worker = i.to_string();
        for (k, kind) in QUERY_KINDS.iter().enumerate() {
            for (t, query_type) in QUERY_TYPES.iter().enumerate() {
                for (o, count) in w.queries[k][t].iter().enumerate() {
                    let n = count.load(Ordering::Relaxed);
                    // Always the accepted samples, so the family is never empty.
                    if n > 0 || (o == 0 && t > 0) {
                        let outcome = outcome_name(o);
                        out.sample(
                            "lqd_queries_total",
                            &[
                                ("worker", &worker),
                                ("kind", kind),
                                ("type", query_type),
                                ("outcome", &outcome),
                            ],
                            n,
                        );
                    }
                }
            }
        }
    }
    out.by_label(
        registry,
        "lqd_bulk_answers_total",
        "Bulk queries answered, by source: the shards' indexes (by address, by client-id) \
         or a scan of the logs.",
        ("source", &["index", "scan"]),
        |w, k| [&w.bulk_indexed, &w.bulk_scanned][k],
    );
    out.family(
        "lqd_catch_up_total",
        "counter",
        "Active catch-ups ended: complete (S-53) or with DataMissing (S-54, S-55).",
    );
    for (i, w) in registry.workers.iter().enumerate() {
        let worker = i.to_string();
        out.sample(
            "lqd_catch_up_total",
            &[("worker", &worker), ("outcome", "complete")],
            w.catch_up_complete.load(Ordering::Relaxed),
        );
        out.sample(
            "lqd_catch_up_total",
            &[("worker", &worker), ("outcome", "data_missing")],
            w.data_missing.load(Ordering::Relaxed),
        );
    }
}

fn sending(out: &mut Out, registry: &Registry) {
    out.per_worker(
        registry,
        "lqd_frames_sent_total",
        "Leasequery messages queued for sending.",
        |w| &w.frames,
    );
    out.per_worker(
        registry,
        "lqd_sent_bytes_total",
        "Octets the kernel took.",
        |w| &w.bytes,
    );
    out.by_label(
        registry,
        "lqd_send_operations_total",
        "Send operations: batch (one sendmsg with shared bodies), plain (own octets), \
         spill (a batch the socket did not take whole).",
        ("kind", &["batch", "plain", "spill"]),
        |w, k| [&w.batches, &w.sends, &w.spills][k],
    );
    out.per_worker(
        registry,
        "lqd_io_uring_enter_total",
        "io_uring_enter system calls of the workers (their only system calls per loop iteration).",
        |w| &w.enters,
    );
    out.by_label(
        registry,
        "lqd_shared_bodies_total",
        "LEASEQUERY-DATA bodies: built once into the shared arena, shared (found built), \
         copied (arena full).",
        ("outcome", &["built", "shared", "copied"]),
        |w, k| [&w.bodies_built, &w.bodies_shared, &w.bodies_copied][k],
    );
    out.per_worker(
        registry,
        "lqd_cursor_steps_shared_total",
        "Steps of live all-bindings cursors taken from another connection of the worker \
         instead of reading the log.",
        |w| &w.steps_shared,
    );
    out.per_worker(
        registry,
        "lqd_changes_applied_total",
        "Changes applied to the shards a worker owns.",
        |w| &w.applied,
    );
}

fn ingest(out: &mut Out, registry: &Registry) {
    let ingest = &registry.ingest;
    out.family(
        "lqd_ingest_rows_total",
        "counter",
        "Kea lease rows parsed and routed.",
    );
    out.sample(
        "lqd_ingest_rows_total",
        &[],
        ingest.rows.load(Ordering::Relaxed),
    );
    out.family(
        "lqd_ingest_rejected_total",
        "counter",
        "Kea lease rows rejected, by reason (each logged with its position).",
    );
    let rejected = ingest
        .rejected
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if rejected.is_empty() {
        out.sample("lqd_ingest_rejected_total", &[("reason", "any")], 0);
    }
    for (reason, n) in rejected {
        out.sample("lqd_ingest_rejected_total", &[("reason", reason)], n);
    }
    let offset = ingest.offset.load(Ordering::Relaxed);
    out.family(
        "lqd_ingest_offset_bytes",
        "gauge",
        "Octets of the current Kea lease file read.",
    );
    out.sample("lqd_ingest_offset_bytes", &[], offset);
    out.family(
        "lqd_ingest_lag_bytes",
        "gauge",
        "Octets of the Kea lease file not read yet.",
    );
    out.sample(
        "lqd_ingest_lag_bytes",
        &[],
        ingest
            .file_len
            .load(Ordering::Relaxed)
            .saturating_sub(offset),
    );
}

fn store(out: &mut Out, registry: &Registry) {
    out.family(
        "lqd_log_bytes",
        "gauge",
        "Octets of retained change history, per shard.",
    );
    for (i, r) in registry.readers.iter().enumerate() {
        out.sample(
            "lqd_log_bytes",
            &[("shard", &i.to_string())],
            r.committed_end() - r.oldest_start(),
        );
    }
    out.family(
        "lqd_log_horizon_timestamp_seconds",
        "gauge",
        "Unix time of the oldest retained change (the history horizon, S-54), per shard.",
    );
    for (i, r) in registry.readers.iter().enumerate() {
        let unix = u64::from(r.horizon()) + crate::wire::EPOCH_2000_UNIX;
        out.sample(
            "lqd_log_horizon_timestamp_seconds",
            &[("shard", &i.to_string())],
            unix,
        );
    }
}

fn latency(out: &mut Out, registry: &Registry) {
    let mut merged: Histogram<u64> = latency_histogram();
    for w in &registry.workers {
        let own = w
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = merged.add(&*own);
    }
    let name = "lqd_delivery_latency_seconds";
    out.family(
        name,
        "histogram",
        "From the ingest thread reading a Kea row to a worker queuing the first send of the \
         change, merged across workers.",
    );
    for ns in BUCKETS_NS {
        let count = if merged.is_empty() {
            0
        } else {
            merged.count_between(0, ns)
        };
        let le = format!("{}", ns as f64 / 1e9);
        out.sample(&format!("{name}_bucket"), &[("le", &le)], count);
    }
    out.sample(&format!("{name}_bucket"), &[("le", "+Inf")], merged.len());
    let sum = merged.mean() * merged.len() as f64 / 1e9;
    out.sample(&format!("{name}_sum"), &[], sum);
    out.sample(&format!("{name}_count"), &[], merged.len());
}
