#!/usr/bin/env python3
"""Play a one-hop DHCPv6 relay: send relayed SOLICITs (Rapid Commit, IA_NA + IA_PD)
that carry Interface-ID (18), Remote-ID (37) and Relay-ID (53), and wait for each
RELAY-REPL. Usage: relay_client.py RELAY_ADDR SERVER LINK_ADDR [COUNT] [--no-relay-id]

Copied from ../shared/docs/kea.md §12.6; tests/ingest_kea.rs runs it."""
import socket
import struct
import sys


def opt(code, data):
    return struct.pack("!HH", code, len(data)) + data


def solicit(mac, xid):
    duid = bytes.fromhex("00030001") + mac                       # DUID-LL, hw type 1
    return (bytes([1]) + xid.to_bytes(3, "big")
            + opt(1, duid) + opt(8, b"\x00\x00")                 # CLIENTID, ELAPSED_TIME
            + opt(3, struct.pack("!III", 1, 0, 0))               # IA_NA iaid 1
            + opt(25, struct.pack("!III", 2, 0, 0))              # IA_PD iaid 2
            + opt(14, b""))                                      # RAPID_COMMIT


def relay_forw(inner, link, peer, n, with_relay_id):
    msg = bytes([12, 0]) + socket.inet_pton(socket.AF_INET6, link) \
        + socket.inet_pton(socket.AF_INET6, peer)
    msg += opt(18, b"ge-0/0/%d" % n)                              # Interface-ID
    msg += opt(37, struct.pack("!I", 4491) + b"cm-%04d" % n)     # Remote-ID, enterprise 4491
    if with_relay_id:
        msg += opt(53, bytes.fromhex("000300010a0b0c0d0e01"))    # Relay-ID: DUID-LL
    return msg + opt(9, inner)                                   # RELAY_MSG


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with_relay_id = "--no-relay-id" not in sys.argv
    relay_addr, server, link = args[0], args[1], args[2]
    count = int(args[3]) if len(args) > 3 else 1
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((relay_addr, 547))                                 # relays talk from port 547
    sock.settimeout(2.0)
    dest = socket.getaddrinfo(server, 547, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]
    for n in range(1, count + 1):
        mac = bytes([0x02, 0, 0, 0, 0x10, n])
        peer = "fe80::200:ff:fe00:%x" % (0x1000 + n)
        sock.sendto(relay_forw(solicit(mac, 0x100 + n), link, peer, n, with_relay_id), dest)
        data, _ = sock.recvfrom(4096)
        print("client %d: got message type %d (%d bytes)" % (n, data[0], len(data)))


if __name__ == "__main__":  # also imported by tests/dhcpkit/feed_dhcpkit.py
    main()
