//! An independent decoder checks the codec: frames built with lqd's builders are written into a
//! pcap of one IPv6/TCP connection on port 547 and decoded by tshark's
//! `dhcpv6.bulk_leasequery` dissector (protocol.md §6.1).
//!
//! 1. Server messages (LEASEQUERY-REPLY of §2.7, a LEASEQUERY-DATA with IAADDR, IAPREFIX and
//!    relay data, keepalive, CatchUpComplete, a DataMissing REPLY, DONE QueryTerminated, the
//!    REPLY refusing TLS) and requestor messages (ACTIVELEASEQUERY of §2.8, Bulk LEASEQUERY by
//!    relay-id, address, client-id, link-address and remote-id, STARTTLS) are framed.
//! 2. They go into TCP segments: several frames in one segment, frames split across
//!    segments (once inside the 2-octet message-size), so tshark has to desegment.
//! 3. tshark prints one row of fields per packet; each row must equal the fields expected
//!    from the messages that complete in that packet: message-size, message type, xid
//!    (tshark shows it as a 1-octet "Reserved" and a 16-bit "Transaction ID"), option codes
//!    in tree order, DUIDs, IAADDR/IAPREFIX values, status codes and messages, query types
//!    and link-addresses, ORO codes, CLT_TIME, relay peer address, remote-id; per packet, the
//!    sending port and a TCP checksum tshark verified as good. Expected values are written
//!    by hand, not computed by lqd.
//! 4. Options tshark names without decoding (LQ_BASE_TIME, LQ_START_TIME, LQ_RELAY_DATA)
//!    are compared as raw bytes, read from tshark's PDML.
//! 5. Every expert info of severity note or above must be a known quirk of protocol.md §6.1,
//!    exactly where expected: "Message Type N not allowed" for types 7, 22 and 23, "Malformed
//!    Packet" for a message without options (STARTTLS), and "Trailing stray characters" for
//!    the relay message of LQ_RELAY_DATA, which tshark shows as an ASCII string.
//!
//! tshark is required: without it the test fails, unless `LQD_SKIP_TSHARK=1` is set.

#[path = "common/pcap.rs"]
mod pcap;

use core::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lqd::wire::build::{
    framed, write_data, write_done, write_query, write_reply, write_starttls, write_starttls_reply,
    LqQueryOut, QueryMessage, QueryOut, Reply,
};
use lqd::wire::client_data::{
    write_client_data, ClientDataInput, LeaseEntry, LeaseKind, RelayDataInput,
};
use lqd::wire::{EncodeError, MessageType, OptionCode, StatusCode, Writer, Xid};

use pcap::Pcap;

const TSHARK: &str = "tshark";

const SERVER_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const REQUESTOR_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const CLIENT_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const RELAY_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x01];
/// Enterprise number 4491 (CableLabs) and remote-id "cm-42".
const REMOTE_ID: [u8; 9] = [0x00, 0x00, 0x11, 0x8b, b'c', b'm', b'-', b'4', b'2'];
const BASE_TIME: u32 = 849_182_400; // 0x329d7ec0, 2026-11-28T12:00:00Z
const START_TIME: u32 = 849_180_600; // 0x329d77b8, 2026-11-28T11:30:00Z
const XID: Xid = Xid::from_bytes([0xab, 0xcd, 0xef]);
const XID_123456: Xid = Xid::from_bytes([0x12, 0x34, 0x56]);
const INFINITY: u32 = u32::MAX;

/// What tshark must show for one message. Lists are in tree order: wire order, depth first.
#[derive(Clone, Debug, Default)]
struct Expect {
    name: &'static str,
    /// message-size, counted by hand.
    size: u16,
    msg_type: u8,
    xid: u32,
    /// Every `dhcpv6.option.type`, nested ones included.
    options: &'static [u16],
    /// Every DUID (SERVERID, CLIENTID, RELAY_ID), nested ones included.
    duids: &'static [[u8; 10]],
    /// (address, preferred, valid) of each IAADDR.
    iaaddr: &'static [(&'static str, u32, u32)],
    /// (prefix, length, preferred, valid) of each IAPREFIX.
    iaprefix: &'static [(&'static str, u8, u32, u32)],
    status: &'static [u16],
    status_msg: &'static [&'static str],
    /// (query-type, link-address) of the LQ_QUERY.
    lq_query: Option<(u8, &'static str)>,
    /// Every ORO entry, top-level and inside LQ_QUERY.
    requested: &'static [u16],
    clt_time: Option<u32>,
    relay_peer: Option<&'static str>,
    /// (enterprise-number, remote-id) of OPTION_REMOTE_ID.
    remote_id: Option<(u32, &'static [u8])>,
    /// Options tshark names but does not decode (100-102, 47), as hex of the whole option.
    raw: Vec<String>,
}

impl Expect {
    /// tshark 4.0.17 flags "Message Type N not allowed" for the types it does not know on
    /// TCP (protocol.md §6.1).
    fn bad_msg_type(&self) -> usize {
        usize::from(matches!(self.msg_type, 7 | 22 | 23))
    }

    /// tshark 4.0.17 flags a message without options as malformed (protocol.md §6.1).
    fn malformed(&self) -> usize {
        usize::from(self.options.is_empty())
    }

    /// tshark shows the relay message of LQ_RELAY_DATA as an ASCII string, and its NUL
    /// octets raise "Trailing stray characters" (protocol.md §6.1: not dissected).
    fn stray_characters(&self) -> usize {
        usize::from(self.relay_peer.is_some())
    }
}

/// One framed message and its expected decoding.
struct Msg {
    frame: Vec<u8>,
    expect: Expect,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An option holding one u32 (LQ_BASE_TIME, LQ_START_TIME), as hex, encoded by hand.
fn time_option(code: u16, value: u32) -> String {
    format!("{code:04x}0004{value:08x}")
}

fn encode(build: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let n = framed(&mut buf, build).expect("message fits the buffer");
    buf[..n].to_vec()
}

fn client_data(input: &ClientDataInput<'_>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    write_client_data(&mut w, input).expect("CLIENT_DATA fits the buffer");
    w.written().to_vec()
}

/// A stored RELAY-FORW as lqd keeps it (innermost RELAY_MSG removed): the 34-octet relay
/// header (msg-type 12, hop-count 0, link-address 2001:db8:1::1, peer-address fe80::abcd)
/// followed by OPTION_INTERFACE_ID "eth0".
fn relay_forw() -> Vec<u8> {
    let mut v = vec![12, 0];
    v.extend("2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
    v.extend("fe80::abcd".parse::<Ipv6Addr>().unwrap().octets());
    v.extend([0x00, 0x12, 0x00, 0x04]);
    v.extend(b"eth0");
    assert_eq!(v.len(), 34 + 8);
    v
}

/// protocol.md §2.7.
fn reply_example_a() -> Msg {
    let leases = [LeaseEntry {
        kind: LeaseKind::Address("2001:db8::1:100".parse().unwrap()),
        preferred: 3600,
        valid: 7200,
    }];
    let data = client_data(&ClientDataInput {
        client_id: &CLIENT_DUID,
        leases: &leases,
        clt_time: 60,
        relay_data: None,
    });
    let reply = Reply {
        xid: XID,
        server_id: &SERVER_DUID,
        client_id: Some(&REQUESTOR_DUID),
        status: None,
        base_time: Some(BASE_TIME),
        client_data: Some(&data),
    };
    Msg {
        frame: encode(|w| write_reply(w, &reply)),
        expect: Expect {
            name: "REPLY of §2.7",
            size: 94,
            msg_type: 15,
            xid: 0xabcdef,
            options: &[2, 1, 100, 45, 1, 5, 46],
            duids: &[SERVER_DUID, REQUESTOR_DUID, CLIENT_DUID],
            iaaddr: &[("2001:db8::1:100", 3600, 7200)],
            clt_time: Some(60),
            raw: vec![time_option(100, BASE_TIME)],
            ..Expect::default()
        },
    }
}

fn data_with_prefix_and_relay() -> Msg {
    let leases = [
        LeaseEntry {
            kind: LeaseKind::Address("2001:db8::1:200".parse().unwrap()),
            preferred: 1800,
            valid: 3600,
        },
        LeaseEntry {
            kind: LeaseKind::Prefix("2001:db8:100::".parse().unwrap(), 56),
            preferred: 900,
            valid: INFINITY,
        },
    ];
    let relay_message = relay_forw();
    let data = client_data(&ClientDataInput {
        client_id: &CLIENT_DUID,
        leases: &leases,
        clt_time: 5,
        relay_data: Some(RelayDataInput {
            peer_address: "2001:db8:1::1".parse().unwrap(),
            relay_message: &relay_message,
        }),
    });
    // OPTION_LQ_RELAY_DATA: code 47, length 16 + 42, peer-address, the relay message.
    let relay_data = format!(
        "002f003a20010db8000100000000000000000001{}",
        hex(&relay_message)
    );
    Msg {
        frame: encode(|w| write_data(w, XID, None, Some(BASE_TIME), Some(&data))),
        expect: Expect {
            name: "DATA with IAADDR, IAPREFIX and relay data",
            size: 157,
            msg_type: 17,
            xid: 0xabcdef,
            options: &[100, 45, 1, 5, 26, 46, 47],
            duids: &[CLIENT_DUID],
            iaaddr: &[("2001:db8::1:200", 1800, 3600)],
            iaprefix: &[("2001:db8:100::", 56, 900, INFINITY)],
            clt_time: Some(5),
            relay_peer: Some("2001:db8:1::1"),
            raw: vec![time_option(100, BASE_TIME), relay_data],
            ..Expect::default()
        },
    }
}

fn keepalive() -> Msg {
    Msg {
        frame: encode(|w| write_data(w, XID, None, Some(BASE_TIME), None)),
        expect: Expect {
            name: "keepalive DATA",
            size: 12,
            msg_type: 17,
            xid: 0xabcdef,
            options: &[100],
            raw: vec![time_option(100, BASE_TIME)],
            ..Expect::default()
        },
    }
}

fn catch_up_complete() -> Msg {
    let status = Some((StatusCode::CatchUpComplete, ""));
    Msg {
        frame: encode(|w| write_data(w, XID, status, Some(BASE_TIME), None)),
        expect: Expect {
            name: "DATA CatchUpComplete",
            size: 18,
            msg_type: 17,
            xid: 0xabcdef,
            options: &[13, 100],
            status: &[13],
            raw: vec![time_option(100, BASE_TIME)],
            ..Expect::default()
        },
    }
}

fn reply_data_missing() -> Msg {
    let reply = Reply {
        xid: Xid::new(0x000102).unwrap(),
        server_id: &SERVER_DUID,
        client_id: Some(&REQUESTOR_DUID),
        status: Some((StatusCode::DataMissing, "history lost")),
        base_time: Some(BASE_TIME),
        client_data: None,
    };
    Msg {
        frame: encode(|w| write_reply(w, &reply)),
        expect: Expect {
            name: "REPLY DataMissing",
            size: 58,
            msg_type: 15,
            xid: 0x000102,
            options: &[2, 1, 13, 100],
            duids: &[SERVER_DUID, REQUESTOR_DUID],
            status: &[12],
            status_msg: &["history lost"],
            raw: vec![time_option(100, BASE_TIME)],
            ..Expect::default()
        },
    }
}

fn done_query_terminated() -> Msg {
    let status = Some((StatusCode::QueryTerminated, "shutdown"));
    Msg {
        frame: encode(|w| write_done(w, XID, status, Some(BASE_TIME))),
        expect: Expect {
            name: "DONE QueryTerminated",
            size: 26,
            msg_type: 16,
            xid: 0xabcdef,
            options: &[13, 100],
            status: &[11],
            status_msg: &["shutdown"],
            raw: vec![time_option(100, BASE_TIME)],
            ..Expect::default()
        },
    }
}

fn reply_refusing_tls() -> Msg {
    Msg {
        frame: encode(|w| write_starttls_reply(w, XID_123456, &SERVER_DUID, true)),
        expect: Expect {
            name: "REPLY refusing TLS",
            size: 24,
            msg_type: 7,
            xid: 0x123456,
            options: &[2, 13],
            duids: &[SERVER_DUID],
            status: &[15],
            ..Expect::default()
        },
    }
}

fn server_messages() -> Vec<Msg> {
    vec![
        reply_example_a(),
        data_with_prefix_and_relay(),
        keepalive(),
        catch_up_complete(),
        reply_data_missing(),
        done_query_terminated(),
        reply_refusing_tls(),
    ]
}

/// protocol.md §2.8.
fn active_example_b() -> Msg {
    let active = QueryMessage {
        msg_type: MessageType::ActiveLeasequery,
        xid: XID,
        client_id: &REQUESTOR_DUID,
        lq_query: None,
        oro: &[OptionCode::LqBaseTime],
        start_time: Some(START_TIME),
        end_time: None,
    };
    Msg {
        frame: encode(|w| write_query(w, &active)),
        expect: Expect {
            name: "ACTIVELEASEQUERY of §2.8",
            size: 32,
            msg_type: 22,
            xid: 0xabcdef,
            options: &[1, 6, 101],
            duids: &[REQUESTOR_DUID],
            requested: &[100],
            raw: vec![time_option(101, START_TIME)],
            ..Expect::default()
        },
    }
}

/// A Bulk LEASEQUERY with top-level ORO [100], `query` and `query_oro` inside LQ_QUERY.
fn bulk(xid: u32, query: QueryOut<'_>, link: &str, query_oro: &[OptionCode]) -> Vec<u8> {
    let message = QueryMessage {
        msg_type: MessageType::Leasequery,
        xid: Xid::new(xid).unwrap(),
        client_id: &REQUESTOR_DUID,
        lq_query: Some(LqQueryOut {
            query,
            link_address: link.parse().unwrap(),
            oro: query_oro,
        }),
        oro: &[OptionCode::LqBaseTime],
        start_time: None,
        end_time: None,
    };
    encode(|w| write_query(w, &message))
}

/// What every Bulk LEASEQUERY of [`bulk`] shows.
fn bulk_expect(name: &'static str, size: u16, xid: u32, lq_query: (u8, &'static str)) -> Expect {
    Expect {
        name,
        size,
        msg_type: 14,
        xid,
        lq_query: Some(lq_query),
        requested: &[100],
        ..Expect::default()
    }
}

fn bulk_queries() -> Vec<Msg> {
    let relay = [OptionCode::LqRelayData];
    let address = QueryOut::Address("2001:db8::1:100".parse().unwrap());
    vec![
        Msg {
            frame: bulk(7, QueryOut::RelayId(&RELAY_DUID), "::", &relay),
            expect: Expect {
                options: &[1, 6, 44, 53, 6],
                duids: &[REQUESTOR_DUID, RELAY_DUID],
                requested: &[100, 47],
                ..bulk_expect("LEASEQUERY by relay-id", 65, 7, (3, "::"))
            },
        },
        Msg {
            frame: bulk(8, address, "2001:db8:1::1", &[]),
            expect: Expect {
                options: &[1, 6, 44, 5],
                duids: &[REQUESTOR_DUID],
                iaaddr: &[("2001:db8::1:100", 0, 0)],
                ..bulk_expect("LEASEQUERY by address", 73, 8, (1, "2001:db8:1::1"))
            },
        },
        Msg {
            frame: bulk(0x010000, QueryOut::ClientId(&CLIENT_DUID), "::", &relay),
            expect: Expect {
                options: &[1, 6, 44, 1, 6],
                duids: &[REQUESTOR_DUID, CLIENT_DUID],
                requested: &[100, 47],
                ..bulk_expect("LEASEQUERY by client-id", 65, 0x010000, (2, "::"))
            },
        },
        Msg {
            frame: bulk(0xffffff, QueryOut::LinkAddress, "2001:db8:1::1", &[]),
            expect: Expect {
                options: &[1, 6, 44],
                duids: &[REQUESTOR_DUID],
                ..bulk_expect("LEASEQUERY by link", 45, 0xffffff, (4, "2001:db8:1::1"))
            },
        },
        Msg {
            frame: bulk(0x00ff00, QueryOut::RemoteId(&REMOTE_ID), "::", &[]),
            expect: Expect {
                options: &[1, 6, 44, 37],
                duids: &[REQUESTOR_DUID],
                remote_id: Some((4491, b"cm-42")),
                ..bulk_expect("LEASEQUERY by remote-id", 58, 0x00ff00, (5, "::"))
            },
        },
    ]
}

fn requestor_messages() -> Vec<Msg> {
    let mut msgs = vec![active_example_b()];
    msgs.extend(bulk_queries());
    msgs.push(Msg {
        frame: encode(|w| write_starttls(w, XID_123456)),
        expect: Expect {
            name: "STARTTLS",
            size: 4,
            msg_type: 23,
            xid: 0x123456,
            ..Expect::default()
        },
    });
    msgs
}

/// Where the byte streams are cut into segments: `(from_server, message, extra)` sends that
/// direction's stream up to `extra` octets past the start of message number `message`
/// (`message` = the count of messages for the end of the stream).
const SCHEDULE: &[(bool, usize, usize)] = &[
    (false, 1, 0),  // ACTIVELEASEQUERY alone
    (true, 3, 0),   // REPLY, DATA, keepalive in one segment
    (true, 4, 10),  // CatchUpComplete and the first 10 octets of the DataMissing REPLY
    (true, 6, 0),   // the rest of that REPLY, then DONE
    (false, 3, 0),  // by relay-id and by address in one segment
    (false, 3, 20), // the first 20 octets of by client-id: nothing completes
    (false, 5, 1),  // its rest, by link-address, 1 octet of by remote-id's message-size
    (false, 6, 0),  // the rest of by remote-id
    (false, 7, 0),  // STARTTLS
    (true, 7, 0),   // REPLY refusing TLS
];

/// One packet of the capture: who sent it and the messages that complete in it.
struct Packet {
    from_server: bool,
    completed: Vec<Expect>,
}

/// The capture of [`SCHEDULE`], and its packets in frame order.
fn capture(server: &[Msg], client: &[Msg]) -> (Pcap, Vec<Packet>) {
    let stream = |msgs: &[Msg]| {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for m in msgs {
            bytes.extend(&m.frame);
            ends.push(bytes.len());
        }
        (bytes, ends)
    };
    let streams = [stream(client), stream(server)];
    let mut sent = [0usize; 2];
    let mut pcap = Pcap::new();
    // The handshake: SYN, SYN+ACK, ACK.
    let mut packets: Vec<Packet> = [false, true, false]
        .into_iter()
        .map(|from_server| Packet {
            from_server,
            completed: Vec::new(),
        })
        .collect();
    assert_eq!(usize::try_from(pcap.packets()).unwrap(), packets.len());
    for &(from_server, message, extra) in SCHEDULE {
        let side = usize::from(from_server);
        let (bytes, ends) = &streams[side];
        let end = message.checked_sub(1).map_or(0, |i| ends[i]) + extra;
        pcap.segment(from_server, &bytes[sent[side]..end]);
        let msgs = if from_server { server } else { client };
        let completed = msgs
            .iter()
            .zip(ends)
            .filter(|&(_, &msg_end)| sent[side] < msg_end && msg_end <= end)
            .map(|(m, _)| m.expect.clone())
            .collect();
        packets.push(Packet {
            from_server,
            completed,
        });
        sent[side] = end;
    }
    assert_eq!(sent, [streams[0].0.len(), streams[1].0.len()], "all sent");
    (pcap, packets)
}

/// A field printed for every message, and how to get its expected values from an [`Expect`].
type Column = (&'static str, fn(&Expect) -> Vec<String>);

fn strings<T: ToString>(values: impl IntoIterator<Item = T>) -> Vec<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

/// Per-message fields: each cell holds the values of every message completed in the packet,
/// joined by ',' (tshark's aggregator).
const COLUMNS: &[Column] = &[
    ("dhcpv6.bulk_leasequery.size", |e| strings([e.size])),
    ("dhcpv6.bulk_leasequery.msgtype", |e| strings([e.msg_type])),
    ("dhcpv6.option.type", |e| strings(e.options)),
    ("dhcpv6.duid.bytes", |e| {
        e.duids.iter().map(|d| hex(d)).collect()
    }),
    ("dhcpv6.iaaddr.ip", |e| {
        strings(e.iaaddr.iter().map(|a| a.0))
    }),
    ("dhcpv6.iaaddr.pref_lifetime", |e| {
        strings(e.iaaddr.iter().map(|a| a.1))
    }),
    ("dhcpv6.iaaddr.valid_lifetime", |e| {
        strings(e.iaaddr.iter().map(|a| a.2))
    }),
    ("dhcpv6.iaprefix.pref_addr", |e| {
        strings(e.iaprefix.iter().map(|p| p.0))
    }),
    ("dhcpv6.iaprefix.pref_len", |e| {
        strings(e.iaprefix.iter().map(|p| p.1))
    }),
    ("dhcpv6.iaprefix.pref_lifetime", |e| {
        strings(e.iaprefix.iter().map(|p| p.2))
    }),
    ("dhcpv6.iaprefix.valid_lifetime", |e| {
        strings(e.iaprefix.iter().map(|p| p.3))
    }),
    ("dhcpv6.status_code", |e| strings(e.status)),
    ("dhcpv6.status_msg", |e| strings(e.status_msg)),
    ("dhcpv6.lq_query", |e| strings(e.lq_query.map(|q| q.0))),
    ("dhcpv6.lq_query_link_address", |e| {
        strings(e.lq_query.map(|q| q.1))
    }),
    ("dhcpv6.requested_option_code", |e| strings(e.requested)),
    ("dhcpv6.clt_time", |e| strings(e.clt_time)),
    ("dhcpv6.lq_relay_data_peer_addr", |e| strings(e.relay_peer)),
    ("dhcpv6.remoteid.enterprise", |e| {
        strings(e.remote_id.map(|r| r.0))
    }),
    ("dhcpv6.remoteid_enterprise_id", |e| {
        e.remote_id.map(|r| hex(r.1)).into_iter().collect()
    }),
];

/// The xid as tshark shows it: a 1-octet "Reserved" then a 16-bit "Transaction ID"
/// (protocol.md §6.1); xid = reserved << 16 | trans_id.
const XID_FIELDS: [&str; 2] = [
    "dhcpv6.bulk_leasequery.reserved",
    "dhcpv6.bulk_leasequery.trans_id",
];

/// Per-packet fields, after `frame.number`.
const PACKET_FIELDS: [&str; 2] = ["tcp.srcport", "tcp.checksum.status"];
/// `tcp.checksum.status` of a verified, correct checksum (PROTO_CHECKSUM_E_GOOD).
const CHECKSUM_GOOD: &str = "1";

/// Options whose value tshark 4.0.17 does not decode: LQ_BASE_TIME, LQ_START_TIME,
/// LQ_END_TIME (named only) and LQ_RELAY_DATA (relay message shown as a string). Their raw
/// bytes are read from PDML instead.
const RAW_OPTION_PREFIXES: [&str; 4] = ["0064", "0065", "0066", "002f"];

/// tshark's expert severities (`_ws.expert.severity`): PI_NOTE; PI_CHAT is below it.
const SEVERITY_NOTE: u32 = 0x0040_0000;

/// A temporary directory, removed on drop unless the test failed.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("lqd-wire-tshark-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("capture kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Whether tshark runs. Without it the test fails, unless `LQD_SKIP_TSHARK=1`.
fn tshark_available() -> bool {
    let why = match Command::new(TSHARK).arg("--version").output() {
        Ok(output) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout);
            eprintln!("{}", version.lines().next().unwrap_or("tshark: no version"));
            return true;
        }
        Ok(output) => format!("`{TSHARK} --version` failed ({})", output.status),
        Err(e) => format!("cannot run `{TSHARK}`: {e}"),
    };
    if std::env::var_os("LQD_SKIP_TSHARK").is_some_and(|v| v == "1") {
        eprintln!("skipping the tshark decode test: {why}; LQD_SKIP_TSHARK=1 is set");
        return false;
    }
    panic!(
        "{why}. This test needs tshark as an independent decoder (Debian: \
         `apt-get install tshark`, as .ci/run does); set LQD_SKIP_TSHARK=1 to skip it"
    );
}

/// Run tshark on `pcap` with `args` (checksums verified, no name resolution); its stdout.
fn run_tshark(pcap: &Path, args: &[&str]) -> String {
    let output = Command::new(TSHARK)
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-o", "tcp.check_checksum:TRUE"])
        .args(args)
        .output()
        .expect("run tshark");
    assert!(
        output.status.success(),
        "tshark {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("tshark prints UTF-8")
}

/// Run tshark with `-T fields` for `frame.number` and `fields`, all occurrences joined by
/// ','; each row keyed by its frame number.
fn tshark_fields(pcap: &Path, filter: Option<&str>, fields: &[&str]) -> Vec<(u32, Vec<String>)> {
    let mut args = vec!["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"];
    args.extend(["-E", "aggregator=,", "-e", "frame.number"]);
    for field in fields {
        args.extend(["-e", field]);
    }
    if let Some(filter) = filter {
        args.extend(["-Y", filter]);
    }
    run_tshark(pcap, &args)
        .lines()
        .map(|line| {
            let mut cells = line.split('\t').map(str::to_owned);
            let frame = cells
                .next()
                .and_then(|f| f.parse().ok())
                .expect("a frame number");
            let cells: Vec<String> = cells.collect();
            assert_eq!(cells.len(), fields.len(), "one cell per field in {line:?}");
            (frame, cells)
        })
        .collect()
}

/// The items of a ','-joined cell.
fn items(cell: &str) -> Vec<&str> {
    if cell.is_empty() {
        Vec::new()
    } else {
        cell.split(',').collect()
    }
}

fn frame_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap()
}

fn names(packet: &Packet) -> String {
    let names: Vec<&str> = packet.completed.iter().map(|e| e.name).collect();
    names.join(" + ")
}

/// Compare every per-packet and per-message field with what the packet should show.
fn check_fields(pcap: &Path, packets: &[Packet]) -> Vec<String> {
    let mut fields: Vec<&str> = PACKET_FIELDS.to_vec();
    fields.extend(XID_FIELDS);
    fields.extend(COLUMNS.iter().map(|column| column.0));
    let rows = tshark_fields(pcap, None, &fields);
    assert_eq!(rows.len(), packets.len(), "tshark shows one row per packet");
    let mut errors = Vec::new();
    for (index, ((frame, cells), packet)) in rows.iter().zip(packets).enumerate() {
        assert_eq!(*frame, frame_number(index));
        let port = if packet.from_server {
            pcap::SERVER_PORT
        } else {
            pcap::CLIENT_PORT
        };
        let xids: Vec<String> = items(&cells[2])
            .iter()
            .zip(items(&cells[3]))
            .map(|(reserved, trans_id)| {
                let reserved: u32 = reserved.parse().expect("a number");
                let trans_id: u32 = trans_id.parse().expect("a number");
                format!("{:#08x}", reserved << 16 | trans_id)
            })
            .collect();
        let mut actual = vec![cells[0].clone(), cells[1].clone(), xids.join(",")];
        actual.extend_from_slice(&cells[4..]);
        let mut expected = vec![port.to_string(), CHECKSUM_GOOD.to_owned()];
        let xids = packet.completed.iter().map(|e| format!("{:#08x}", e.xid));
        expected.push(xids.collect::<Vec<_>>().join(","));
        for (_, values) in COLUMNS {
            let cell: Vec<String> = packet.completed.iter().flat_map(values).collect();
            expected.push(cell.join(","));
        }
        let mut names: Vec<&str> = PACKET_FIELDS.to_vec();
        names.push("xid (reserved << 16 | trans_id)");
        names.extend(COLUMNS.iter().map(|column| column.0));
        for ((name, actual), expected) in names.iter().zip(&actual).zip(&expected) {
            if actual != expected {
                errors.push(format!(
                    "frame {frame} ({}): {name}: tshark {actual:?}, expected {expected:?}",
                    self::names(packet)
                ));
            }
        }
    }
    errors
}

/// The value of attribute `name` in one PDML line.
fn attribute<'l>(line: &'l str, name: &str) -> &'l str {
    let key = format!(" {name}=\"");
    let start = line
        .find(&key)
        .map(|at| at + key.len())
        .expect("the attribute");
    let end = line[start..].find('"').expect("a closing quote");
    &line[start..start + end]
}

/// Compare the raw bytes of the options tshark does not decode (100-102, 47), from PDML.
fn check_raw_options(pcap: &Path, packets: &[Packet]) -> Vec<String> {
    let pdml = run_tshark(pcap, &["-T", "pdml"]);
    let mut actual: Vec<Vec<String>> = Vec::new();
    for line in pdml.lines() {
        if line.trim_start().starts_with("<packet>") {
            actual.push(Vec::new());
        } else if line.contains("<field name=\"dhcpv6.option.type_str\"") {
            let value = attribute(line, "value");
            if RAW_OPTION_PREFIXES.iter().any(|p| value.starts_with(p)) {
                actual
                    .last_mut()
                    .expect("inside a packet")
                    .push(value.to_owned());
            }
        }
    }
    assert_eq!(
        actual.len(),
        packets.len(),
        "PDML has one <packet> per packet"
    );
    let mut errors = Vec::new();
    for (index, (actual, packet)) in actual.iter().zip(packets).enumerate() {
        let expected: Vec<String> = packet
            .completed
            .iter()
            .flat_map(|e| e.raw.clone())
            .collect();
        if *actual != expected {
            errors.push(format!(
                "frame {} ({}): raw options 100-102/47: tshark {actual:?}, expected {expected:?}",
                frame_number(index),
                names(packet)
            ));
        }
    }
    errors
}

/// Frames with a malformed option, a malformed packet or an expert info of severity note or
/// above.
const EXPERT_FILTER: &str =
    "dhcpv6.malformed_option || _ws.malformed || _ws.expert.severity >= note";
/// `_ws.expert.severity`, then the expert infos that are known quirks (protocol.md §6.1),
/// then one that must never appear.
const EXPERT_FIELDS: [&str; 5] = [
    "_ws.expert.severity",
    "dhcpv6.bulk_leasequery.bad_msg_type",
    "_ws.malformed.expert",
    "_ws.string.trailing_stray_characters",
    "dhcpv6.malformed_option",
];

/// Every expert info of severity note or above must be one of the known quirks, exactly where
/// expected.
fn check_expert_infos(pcap: &Path, packets: &[Packet]) -> Vec<String> {
    let rows = tshark_fields(pcap, Some(EXPERT_FILTER), &EXPERT_FIELDS);
    let mut errors = Vec::new();
    for (index, packet) in packets.iter().enumerate() {
        let frame = frame_number(index);
        let sum = |count: fn(&Expect) -> usize| packet.completed.iter().map(count).sum::<usize>();
        let known = [
            sum(Expect::bad_msg_type),
            sum(Expect::malformed),
            sum(Expect::stray_characters),
            0,
        ];
        let mut expected = vec![known.iter().sum()];
        expected.extend(known);
        let actual = match rows.iter().find(|row| row.0 == frame) {
            None => vec![0; EXPERT_FIELDS.len()],
            Some((_, cells)) => {
                let severities = items(&cells[0]).into_iter().map(|s| s.parse::<u32>());
                let above_chat = severities.filter(|s| *s.as_ref().unwrap() >= SEVERITY_NOTE);
                let mut counts = vec![above_chat.count()];
                counts.extend(cells[1..].iter().map(|cell| items(cell).len()));
                counts
            }
        };
        if actual != expected {
            errors.push(format!(
                "frame {frame} ({}): counts of [expert infos >= note, {}]: tshark {actual:?}, \
                 expected {expected:?}",
                names(packet),
                EXPERT_FIELDS[1..].join(", ")
            ));
        }
    }
    errors
}

#[test]
fn tshark_decodes_what_lqd_encodes() {
    if !tshark_available() {
        return;
    }
    let server = server_messages();
    let client = requestor_messages();
    let (pcap, packets) = capture(&server, &client);
    let dir = TempDir::new();
    let path = dir.0.join("leasequery.pcap");
    pcap.write(&path).expect("write the capture");

    let mut errors = check_fields(&path, &packets);
    errors.extend(check_raw_options(&path, &packets));
    errors.extend(check_expert_infos(&path, &packets));
    assert!(
        errors.is_empty(),
        "tshark disagrees with lqd on {} ({} mismatches):\n{}",
        path.display(),
        errors.len(),
        errors.join("\n")
    );
}
