#!/usr/bin/env bash
# The README's benchmark table: lq-loadgen run --spawn for N = 100, 1,000 and 5,000 Active
# requestors at 10k and 50k changes/s, 10 s schedules. Reports (text and JSON) go to
# ${1:-loadgen/results}. About 5 minutes; needs `cargo build --release --workspace` first.
set -eu
out="${1:-loadgen/results}"
mkdir -p "$out"
for n in 100 1000 5000; do
    for rate in 10000 50000; do
        echo "== $n requestors, $rate changes/s" >&2
        target/release/lq-loadgen run --spawn --connections "$n" --rate "$rate" \
            --duration 10s --drain-max 10s --quiet --json "$out/n$n-r$rate.json" \
            | tee "$out/n$n-r$rate.txt"
    done
done
