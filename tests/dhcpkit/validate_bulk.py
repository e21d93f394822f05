"""Check lqd's Bulk Leasequery answers with dhcpkit 1.0.7's own codec (protocol.md §6.3).

Run with the venv's interpreter (patched with patch_dhcpkit.py --fix-bulk-queries, which
registers what LEASEQUERY-DATA and -DONE may contain):

    venv/bin/python validate_bulk.py HOST PORT

It sends one LEASEQUERY for all bindings (QUERY_BY_LINK_ADDRESS, link-address ::, relay data
asked for with an ORO [47] in the query) and reads the framed answers until LEASEQUERY-DONE
or a REPLY without CLIENT_DATA. Each message must parse with Message.parse() using all its
octets, pass validate(), and re-encode byte for byte with save(). Prints one line per
message: its class and how many OPTION_CLIENT_DATA it holds; exits 1 on the first failure.
"""
import socket
import struct
import sys
from ipaddress import IPv6Address

from dhcpkit.ipv6.duids import EnterpriseDUID
from dhcpkit.ipv6.extensions.bulk_leasequery import (LeasequeryDoneMessage,
                                                     QUERY_BY_LINK_ADDRESS)
from dhcpkit.ipv6.extensions.leasequery import (ClientDataOption, LQQueryOption,
                                                LeasequeryMessage, LeasequeryReplyMessage,
                                                OPTION_LQ_RELAY_DATA)
from dhcpkit.ipv6.messages import Message
from dhcpkit.ipv6.options import ClientIdOption, OptionRequestOption


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("connection closed after %d of %d octets" % (len(data), n))
        data += chunk
    return data


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    query = LeasequeryMessage(b"\x01\x02\x03", [
        ClientIdOption(EnterpriseDUID(40208, b"lqd-validate")),
        LQQueryOption(QUERY_BY_LINK_ADDRESS, IPv6Address("::"),
                      [OptionRequestOption([OPTION_LQ_RELAY_DATA])]),
    ])
    query.validate()
    packet = query.save()
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(struct.pack("!H", len(packet)) + packet)
    while True:
        (size,) = struct.unpack("!H", read_exactly(sock, 2))
        frame = read_exactly(sock, size)
        used, message = Message.parse(frame)
        name = type(message).__name__
        if used != len(frame):
            sys.exit("%s: parse used %d of %d octets" % (name, used, len(frame)))
        try:
            message.validate()
        except ValueError as error:
            sys.exit("%s does not validate: %s\n%r" % (name, error, message))
        if message.save() != frame:
            sys.exit("%s re-encodes differently:\n%s\n%s" % (name, frame.hex(), message.save().hex()))
        data = len(message.get_options_of_type(ClientDataOption))
        print("%s %d" % (name, data), flush=True)
        if isinstance(message, LeasequeryDoneMessage):
            break
        if isinstance(message, LeasequeryReplyMessage) and data == 0:
            break
    sock.close()


if __name__ == "__main__":
    main()
