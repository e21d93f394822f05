#!/usr/bin/env python3
"""Feed dhcpkit's server the way a DHCPv6 relay would (kea.md §12.6, §14.5): for each client
n in 1..COUNT, a RELAY-FORW carrying Interface-ID, Remote-ID 4491 "cm-000n" (and Relay-ID
unless --no-relay-id) around a Rapid Commit SOLICIT (IA_NA + IA_PD) of the client with
DUID-LL 00:03:00:01:02:00:00:00:10:0n, sent by unicast UDP to SERVER port 547 from
RELAY_ADDR port 547; waits for each RELAY-REPL. dhcpkit records the leases it hands out in
its leasequery store, which then answers Bulk Leasequery over TCP.

Usage: feed_dhcpkit.py RELAY_ADDR SERVER LINK_ADDR [COUNT] [--no-relay-id]
Exit status 0 when every client got a RELAY-REPL carrying a REPLY (7)."""
import os
import socket
import struct
import sys

# The relayed Rapid Commit SOLICIT is the one tests/kea/relay_client.py sends to Kea.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kea"))
from relay_client import opt, relay_forw, solicit  # noqa: E402,F401


def inner_type(relay_repl):
    """The msg-type inside a RELAY-REPL's OPTION_RELAY_MSG, or None."""
    at = 34
    while at + 4 <= len(relay_repl):
        code, length = struct.unpack("!HH", relay_repl[at:at + 4])
        if code == 9 and length > 0:
            return relay_repl[at + 4]
        at += 4 + length
    return None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with_relay_id = "--no-relay-id" not in sys.argv
    relay_addr, server, link = args[0], args[1], args[2]
    count = int(args[3]) if len(args) > 3 else 1
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((relay_addr, 547))                                 # relays talk from port 547
    sock.settimeout(5.0)
    dest = socket.getaddrinfo(server, 547, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]
    ok = True
    for n in range(1, count + 1):
        mac = bytes([0x02, 0, 0, 0, 0x10, n])
        peer = "fe80::200:ff:fe00:%x" % (0x1000 + n)
        sock.sendto(relay_forw(solicit(mac, 0x100 + n), link, peer, n, with_relay_id), dest)
        data, _ = sock.recvfrom(4096)
        kind = inner_type(data) if data[0] == 13 else None
        print("client %d: message type %d, inner %s (%d bytes)" % (n, data[0], kind, len(data)))
        ok = ok and kind == 7
    sys.exit(0 if ok else 1)


main()
