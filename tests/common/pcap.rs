//! A minimal classic-libpcap writer for one IPv6/TCP connection, so that independent decoders
//! (tshark) can read what lqd puts on the wire.
//!
//! The capture uses link type 101 (LINKTYPE_RAW: each packet starts with its IPv6 header).
//! [`Pcap::new`] records a three-way handshake; each [`Pcap::segment`] then adds one PSH|ACK
//! segment in either direction, with sequence and acknowledgement numbers that stay
//! consistent per direction (so a decoder reassembles the byte streams) and a correct TCP
//! checksum over the IPv6 pseudo-header (RFC 8200 §8.1). Timestamps are synthetic: one
//! millisecond apart from a fixed start.
//!
//! Include it from a test with `#[path = "common/pcap.rs"] mod pcap;`.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use core::net::{Ipv6Addr, SocketAddrV6};
use std::io;
use std::path::Path;

/// LINKTYPE_RAW: packets begin with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u32 = 101;
/// Classic pcap magic, microsecond timestamps.
const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// IPv6 next-header value of TCP.
const NEXT_HEADER_TCP: u8 = 6;
const IPV6_HEADER_LEN: usize = 40;
const TCP_HEADER_LEN: usize = 20;
/// The largest payload one segment can carry: the IPv6 payload length is 16 bits.
pub(crate) const SEGMENT_PAYLOAD_MAX: usize = u16::MAX as usize - TCP_HEADER_LEN;

const FLAG_SYN: u8 = 0x02;
const FLAG_PSH: u8 = 0x08;
const FLAG_ACK: u8 = 0x10;

/// The client's port in [`Pcap::new`].
pub(crate) const CLIENT_PORT: u16 = 40000;
/// The server's port in [`Pcap::new`]: the leasequery port (RFC 5460 §5.6).
pub(crate) const SERVER_PORT: u16 = 547;

/// First capture timestamp: 2026-11-28T12:00:00Z, in Unix seconds.
const START_UNIX_S: u32 = 1_795_867_200;

/// One side of the connection and the next sequence number it sends.
#[derive(Clone, Copy, Debug)]
struct Endpoint {
    addr: SocketAddrV6,
    next_seq: u32,
}

/// A capture of one TCP connection between a requestor (client) and a server.
#[derive(Debug)]
pub(crate) struct Pcap {
    client: Endpoint,
    server: Endpoint,
    /// Packet records, each a 16-octet record header then the packet.
    records: Vec<u8>,
    packets: u32,
}

impl Pcap {
    /// A capture of a connection from `[2001:db8::2]:40000` to the leasequery port 547 of
    /// `[2001:db8::1]`, starting with the three-way handshake (3 packets).
    pub(crate) fn new() -> Self {
        let client_ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let server_ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let client = SocketAddrV6::new(client_ip, CLIENT_PORT, 0, 0);
        let server = SocketAddrV6::new(server_ip, SERVER_PORT, 0, 0);
        Self::with_endpoints(client, server)
    }

    /// A capture of a connection from `client` to `server`, starting with the handshake.
    pub(crate) fn with_endpoints(client: SocketAddrV6, server: SocketAddrV6) -> Self {
        let mut pcap = Self {
            client: Endpoint {
                addr: client,
                next_seq: 0x1000_0000,
            },
            server: Endpoint {
                addr: server,
                next_seq: 0x5000_0000,
            },
            records: Vec::new(),
            packets: 0,
        };
        pcap.packet(false, FLAG_SYN, &[]);
        pcap.client.next_seq = pcap.client.next_seq.wrapping_add(1);
        pcap.packet(true, FLAG_SYN | FLAG_ACK, &[]);
        pcap.server.next_seq = pcap.server.next_seq.wrapping_add(1);
        pcap.packet(false, FLAG_ACK, &[]);
        pcap
    }

    /// Packets recorded so far; the next packet is frame number `packets() + 1`.
    pub(crate) fn packets(&self) -> u32 {
        self.packets
    }

    /// Record one data segment carrying `payload`, sent by the server when `from_server`,
    /// else by the client. Returns its frame number (1-based, as tshark counts).
    ///
    /// Panics if `payload` is empty or longer than [`SEGMENT_PAYLOAD_MAX`].
    pub(crate) fn segment(&mut self, from_server: bool, payload: &[u8]) -> u32 {
        assert!(!payload.is_empty(), "a data segment carries data");
        assert!(
            payload.len() <= SEGMENT_PAYLOAD_MAX,
            "payload over one segment"
        );
        self.packet(from_server, FLAG_PSH | FLAG_ACK, payload);
        let sender = if from_server {
            &mut self.server
        } else {
            &mut self.client
        };
        let len = u32::try_from(payload.len()).unwrap_or_else(|_| unreachable!("checked above"));
        sender.next_seq = sender.next_seq.wrapping_add(len);
        self.packets
    }

    /// Write the capture to `path`.
    pub(crate) fn write(&self, path: &Path) -> io::Result<()> {
        let mut file = Vec::with_capacity(24 + self.records.len());
        file.extend(PCAP_MAGIC.to_le_bytes());
        file.extend(2u16.to_le_bytes()); // version 2.4
        file.extend(4u16.to_le_bytes());
        file.extend(0i32.to_le_bytes()); // thiszone
        file.extend(0u32.to_le_bytes()); // sigfigs
        file.extend(u32::from(u16::MAX).to_le_bytes()); // snaplen
        file.extend(LINKTYPE_RAW.to_le_bytes());
        file.extend(&self.records);
        std::fs::write(path, file)
    }

    /// Append one packet: IPv6 header, TCP header, payload. Sequence numbers are not advanced.
    fn packet(&mut self, from_server: bool, flags: u8, payload: &[u8]) {
        let (from, to) = if from_server {
            (self.server, self.client)
        } else {
            (self.client, self.server)
        };
        let ack = if flags & FLAG_ACK != 0 {
            to.next_seq
        } else {
            0
        };
        let tcp = tcp_segment(from, to.addr, ack, flags, payload);
        let tcp_len = u16::try_from(tcp.len()).expect("segment length fits 16 bits");

        let mut packet = Vec::with_capacity(IPV6_HEADER_LEN + tcp.len());
        packet.extend(0x6000_0000u32.to_be_bytes()); // version 6, class 0, flow 0
        packet.extend(tcp_len.to_be_bytes());
        packet.push(NEXT_HEADER_TCP);
        packet.push(64); // hop limit
        packet.extend(from.addr.ip().octets());
        packet.extend(to.addr.ip().octets());
        packet.extend(tcp);

        let micros = u64::from(self.packets) * 1000;
        let seconds = u64::from(START_UNIX_S) + micros / 1_000_000;
        let seconds = u32::try_from(seconds).expect("timestamp fits 32 bits");
        let micros = u32::try_from(micros % 1_000_000).expect("below 10^6");
        let len = u32::try_from(packet.len()).expect("packet length fits 32 bits");
        self.records.extend(seconds.to_le_bytes());
        self.records.extend(micros.to_le_bytes());
        self.records.extend(len.to_le_bytes()); // captured
        self.records.extend(len.to_le_bytes()); // on the wire
        self.records.extend(packet);
        self.packets += 1;
    }
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

/// A TCP header (no options) and payload, checksum filled in.
fn tcp_segment(from: Endpoint, to: SocketAddrV6, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(TCP_HEADER_LEN + payload.len());
    tcp.extend(from.addr.port().to_be_bytes());
    tcp.extend(to.port().to_be_bytes());
    tcp.extend(from.next_seq.to_be_bytes());
    tcp.extend(ack.to_be_bytes());
    tcp.push(5 << 4); // data offset: 5 words
    tcp.push(flags);
    tcp.extend(u16::MAX.to_be_bytes()); // window
    tcp.extend([0, 0]); // checksum, filled below
    tcp.extend([0, 0]); // urgent pointer
    tcp.extend(payload);
    let checksum = tcp_checksum(*from.addr.ip(), *to.ip(), &tcp);
    tcp[16..18].copy_from_slice(&checksum.to_be_bytes());
    tcp
}

/// The Internet checksum of `segment` (its checksum field zero) under the IPv6 pseudo-header:
/// source, destination, upper-layer length (32 bits), three zero octets, next header.
fn tcp_checksum(src: Ipv6Addr, dst: Ipv6Addr, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).expect("segment length fits 32 bits");
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend(src.octets());
    pseudo.extend(dst.octets());
    pseudo.extend(len.to_be_bytes());
    pseudo.extend([0, 0, 0, NEXT_HEADER_TCP]);
    let sum = ones_complement_sum(&pseudo, 0);
    let sum = ones_complement_sum(segment, sum);
    !fold(sum)
}

/// Add `bytes` as big-endian 16-bit words (an odd last octet padded with zero) to `sum`.
fn ones_complement_sum(bytes: &[u8], mut sum: u64) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Fold carries back into 16 bits.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).unwrap_or_else(|_| unreachable!("folded to 16 bits"))
}
