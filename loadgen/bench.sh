#!/usr/bin/env bash
# The README's benchmark table: lq-loadgen run --spawn for N = 100, 1,000 and 5,000 Active
# requestors at 10k and 50k changes/s, 10 s schedules, drains of at most 30 s. Reports
# (text and JSON) go to ${1:-loadgen/results}. Before each run it waits (up to 3 minutes)
# for the CPUs to be idle; each report prints the load average it started with. About 8
# minutes; needs `cargo build --release --workspace` first.
set -eu
out="${1:-loadgen/results}"
mkdir -p "$out"
# Wait (at most 3 minutes) until the CPUs were less than 20 % busy over 2 s: other work on
# the box skews every figure. /proc/stat's first line: user nice system idle iowait ...
busy_pct() {
    local a b
    a=($(head -n 1 /proc/stat)); sleep 2; b=($(head -n 1 /proc/stat))
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    local idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
quiet() {
    local busy
    for _ in $(seq 1 90); do
        busy="$(busy_pct)"
        [ "$busy" -lt 20 ] && return 0
    done
    echo "warning: the CPUs are still ${busy} % busy with other work; running anyway" >&2
}
for n in 100 1000 5000; do
    for rate in 10000 50000; do
        quiet
        echo "== $n requestors, $rate changes/s" >&2
        target/release/lq-loadgen run --spawn --connections "$n" --rate "$rate" \
            --duration 10s --drain-max 30s --drain-quiet 30s --quiet --json "$out/n$n-r$rate.json" \
            | tee "$out/n$n-r$rate.txt"
    done
done
