#!/usr/bin/env bash
# check.sh: compare this host with what lqd wants, one line per setting: want, have, status.
# Read-only: it reads /proc, /sys, ulimit, id and systemctl; it changes nothing.
#
#   tuning/check.sh                 production profile, sized for 10,000 connections
#   tuning/check.sh --dev           development box: also the load generator's needs
#   tuning/check.sh --config /etc/lqd/lqd.toml   size from connections_max and
#                                                socket_send_buffer in that file
#   tuning/check.sh --strict        exit 1 when a line is not ok (n/a lines do not count)
#
# Environment: LQD_USER (default lqd), KEA_DIR (default /var/lib/kea).
# Status: ok; LOW / HIGH (a number on the wrong side of want); DIFF (another value);
# n/a (cannot be seen here). Every want is explained in tuning/README.md and sysctl.conf.
set -u

profile=prod
strict=0
config=""
connections=10000
send_buffer=262144
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) profile=dev ;;
        --strict) strict=1 ;;
        --config) config="${2:-}"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# A TOML integer setting of the configuration: the first "key = N" line.
toml_int() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$config" | head -n 1
}
if [ -n "$config" ]; then
    if [ ! -r "$config" ]; then
        echo "check.sh: cannot read $config" >&2
        exit 2
    fi
    connections="$(toml_int connections_max)"; connections="${connections:-10}"
    send_buffer="$(toml_int socket_send_buffer)"; send_buffer="${send_buffer:-262144}"
fi
lqd_user="${LQD_USER:-lqd}"
kea_dir="${KEA_DIR:-/var/lib/kea}"
# Descriptors: one per connection, plus segment files (shards x segments_max, 64 x 16
# shards at most by default), plus rings, eventfds, inotify, listeners.
fds=$((connections + 1088))

total=0
bad=0
row() { # name want have status
    printf '%-38s want %-16s have %-16s %s\n' "$1" "$2" "$3" "$4"
    total=$((total + 1))
    case "$4" in ok|n/a*) ;; *) bad=$((bad + 1)) ;; esac
}
# at_least NAME WANT HAVE: ok when HAVE >= WANT (numbers), n/a when HAVE is empty.
at_least() {
    if [ -z "$3" ]; then row "$1" ">= $2" "-" "n/a"
    elif [ "$3" = unlimited ] || [ "$3" -ge "$2" ] 2>/dev/null; then row "$1" ">= $2" "$3" ok
    else row "$1" ">= $2" "$3" LOW; fi
}
at_most() {
    if [ -z "$3" ]; then row "$1" "<= $2" "-" "n/a"
    elif [ "$3" -le "$2" ] 2>/dev/null; then row "$1" "<= $2" "$3" ok
    else row "$1" "<= $2" "$3" HIGH; fi
}
equals() {
    if [ -z "$3" ]; then row "$1" "$2" "-" "n/a"
    elif [ "$3" = "$2" ]; then row "$1" "$2" "$3" ok
    else row "$1" "$2" "$3" DIFF; fi
}
sysctl_value() { # the value of a sysctl, blanks squeezed; empty when absent
    local path="/proc/sys/${1//.//}"
    [ -r "$path" ] && tr -s '\t ' '  ' < "$path"
}

echo "lqd host check ($profile profile; $connections connections, socket_send_buffer $send_buffer)"
printf '%-38s %-21s %-21s %s\n' setting want have status

# Kernel: io_uring with the opcodes lqd uses (Linux >= 6.1).
release="$(uname -r)"
major="${release%%.*}"; rest="${release#*.}"; minor="${rest%%[!0-9]*}"
if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 1 ]; }; then
    row "kernel release" ">= 6.1" "${release%%-*}" ok
else
    row "kernel release" ">= 6.1" "${release%%-*}" LOW
fi
equals kernel.io_uring_disabled 0 "$(sysctl_value kernel.io_uring_disabled)"

# Limits: of the running lqd when there is one, else of this shell.
pid=""
if command -v pgrep >/dev/null 2>&1; then
    pid="$(pgrep -x lqd 2>/dev/null | head -n 1)"
fi
if [ -n "$pid" ] && [ -r "/proc/$pid/limits" ]; then
    who="lqd pid $pid"
    nofile="$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")"
    memlock="$(awk '/^Max locked memory/ {print $4}' "/proc/$pid/limits")"
    [ "$memlock" = unlimited ] || memlock=$((memlock / 1024))
else
    who="this shell"
    nofile="$(ulimit -Sn)"
    memlock="$(ulimit -Sl)"
fi
at_least "RLIMIT_NOFILE ($who)" "$fds" "$nofile"
at_least "RLIMIT_MEMLOCK KiB ($who)" 8192 "$memlock"
at_least fs.nr_open "$fds" "$(sysctl_value fs.nr_open)"
at_least fs.file-max $((2 * fds)) "$(sysctl_value fs.file-max)"

# Network.
at_least net.core.somaxconn 4096 "$(sysctl_value net.core.somaxconn)"
at_least net.ipv4.tcp_max_syn_backlog 4096 "$(sysctl_value net.ipv4.tcp_max_syn_backlog)"
at_least net.core.wmem_max "$send_buffer" "$(sysctl_value net.core.wmem_max)"
# lqd does not set SO_RCVBUF; requestors on this host (lq-loadgen, lq mirror) may.
at_least net.core.rmem_max 212992 "$(sysctl_value net.core.rmem_max)"
tcp_mem="$(sysctl_value net.ipv4.tcp_mem)"
# Every connection's send buffer full, twice for the kernel's bookkeeping, in 4 KiB pages.
at_least "net.ipv4.tcp_mem (max, pages)" $((connections * send_buffer * 2 / 4096)) \
    "${tcp_mem##* }"
equals net.ipv4.tcp_slow_start_after_idle 0 "$(sysctl_value net.ipv4.tcp_slow_start_after_idle)"

# Memory.
at_least vm.max_map_count 65530 "$(sysctl_value vm.max_map_count)"
at_most vm.swappiness 10 "$(sysctl_value vm.swappiness)"

# CPUs: the governor, and whether irqbalance moves NIC interrupts onto lqd's cores.
cpus="$(nproc 2>/dev/null)"
row "CPUs online" "shards + 1" "${cpus:-?}" "n/a (compare with [store] shards)"
governor_file=/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor
if [ -r "$governor_file" ]; then
    equals "cpu0 scaling_governor" performance "$(cat "$governor_file")"
else
    row "cpu0 scaling_governor" performance "-" "n/a (no cpufreq: VM or fixed clock)"
fi
irqbalance="$(systemctl is-active irqbalance 2>/dev/null)"
if [ "$profile" = prod ]; then
    if [ -n "$irqbalance" ]; then
        equals "irqbalance (IRQs pinned by hand)" inactive "$irqbalance"
    else
        row "irqbalance (IRQs pinned by hand)" inactive "-" "n/a (no systemd)"
    fi
fi

# Kea's lease directory: lqd's user must read it (Kea >= 2.6.3 writes 0640: Kea's group).
if [ ! -d "$kea_dir" ]; then
    row "Kea dir readable by $lqd_user" readable "-" "n/a (no $kea_dir)"
elif ! id "$lqd_user" >/dev/null 2>&1; then
    row "Kea dir readable by $lqd_user" readable "-" "n/a (no user $lqd_user)"
else
    group="$(stat -c %G "$kea_dir")"
    mode="$(stat -c %a "$kea_dir")"
    if id -Gn "$lqd_user" | tr ' ' '\n' | grep -qx "$group"; then
        row "Kea dir readable by $lqd_user" readable "group-$group" ok
    elif [ $((0${mode} & 5)) -eq 5 ]; then
        row "Kea dir readable by $lqd_user" readable "world-$mode" ok
    else
        row "Kea dir readable by $lqd_user" readable "no-$group-$mode" DIFF
    fi
fi

# The load generator on a development box.
if [ "$profile" = dev ]; then
    range="$(sysctl_value net.ipv4.ip_local_port_range)"
    low="${range%% *}"; high="${range##* }"
    at_least "ephemeral ports per source address" 28000 $((high - low + 1))
    at_most kernel.perf_event_paranoid 2 "$(sysctl_value kernel.perf_event_paranoid)"
    if command -v perf >/dev/null 2>&1; then row "perf (syscall counts)" present present ok
    else row "perf (syscall counts)" present absent "n/a (lq-loadgen prints n/a)"; fi
fi

echo "$((total - bad)) of $total ok or not applicable"
if [ "$strict" -eq 1 ] && [ "$bad" -gt 0 ]; then
    exit 1
fi
exit 0
