#!/usr/bin/env python3
"""Resident memory of lqd per idle Active connection, against a fixed base.

Usage: python3 loadgen/idle_rss.py N [path/to/lqd]   (default target/release/lqd)

Starts lqd with a small configuration in a temporary directory (127.0.0.1:15470, two
workers, connections_max N + 100, no metrics endpoint), reads its VmRSS once it has loaded
the (empty) Kea journal, opens N connections that each send an ACTIVELEASEQUERY for all
bindings with ORO [LQ_BASE_TIME] (protocol.md section 2.8 without LQ_START_TIME), reads
every REPLY, and reads VmRSS again. Prints the difference over N. Needs `ulimit -n` above
N + 100. Bounded: every read has a 10 s timeout; lqd is stopped at the end.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

HEADER = ("address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,"
          "prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source\n")
# Framed ACTIVELEASEQUERY, xid 0xabcdef, CLIENTID DUID-LL 00:aa:bb:cc:dd:ee, ORO [100].
QUERY = bytes.fromhex("001816abcdef0001000a0003000100aabbccddee0006000200" + "64")
PORT = 15470


def vm_rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    n = int(sys.argv[1])
    lqd = sys.argv[2] if len(sys.argv) > 2 else "target/release/lqd"
    d = tempfile.mkdtemp()
    with open(f"{d}/kea.csv", "w") as f:
        f.write(HEADER)
    with open(f"{d}/lqd.toml", "w") as f:
        f.write(f"""[metrics]
listen = ""
[store]
data_dir = "{d}/data"
shards = 2
segment_bytes = 1048576
segments_max = 8
clients_max = 1000
addresses_max = 1000
prefixes_max = 1000
[ingest]
lease_file = "{d}/kea.csv"
kea_config = ""
[server]
listen = "127.0.0.1:{PORT}"
workers = 2
connections_max = {n + 100}
active_enabled = true
insecure_allowed = true
server_duid = "00030001001122334455"
""")
    p = subprocess.Popen([lqd, "--config", f"{d}/lqd.toml"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        for line in p.stderr:
            if "loaded Kea lease snapshot" in line or time.time() > deadline:
                break
        time.sleep(1)
        base = vm_rss(p.pid)
        conns = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
            s.sendall(QUERY)
            conns.append(s)
        for s in conns:
            s.recv(4096)
        time.sleep(0.5)
        idle = vm_rss(p.pid)
        print(f"lqd VmRSS {base} KiB before, {idle} KiB with {n} idle Active connections: "
              f"{(idle - base) * 1024 / n:.0f} octets per connection")
    finally:
        p.terminate()
        p.wait(timeout=30)


if __name__ == "__main__":
    main()
