#!/usr/bin/env bash
# The README's benchmark table: lq-loadgen run --spawn for N = 100, 1,000 and 5,000 Active
# requestors at 10k and 50k changes/s, 10 s schedules, 10 s drains. Reports (text and
# JSON) go to ${1:-loadgen/results}. Before each run it waits (up to 3 minutes) for the
# 1-minute load average to fall below 1.5, since other work on the box skews every figure;
# each report prints the load average it started with. About 5 minutes on a quiet box;
# needs `cargo build --release --workspace` first.
set -eu
out="${1:-loadgen/results}"
mkdir -p "$out"
quiet() {
    for _ in $(seq 1 90); do
        awk '{ exit !($1 < 1.5) }' /proc/loadavg && return 0
        sleep 2
    done
    echo "warning: load average still $(cut -d' ' -f1-3 /proc/loadavg); running anyway" >&2
}
for n in 100 1000 5000; do
    for rate in 10000 50000; do
        quiet
        echo "== $n requestors, $rate changes/s" >&2
        target/release/lq-loadgen run --spawn --connections "$n" --rate "$rate" \
            --duration 10s --drain-max 10s --quiet --json "$out/n$n-r$rate.json" \
            | tee "$out/n$n-r$rate.txt"
    done
done
