//! Golden vectors: the byte-exact worked examples of protocol.md §2.7, §2.8 and §2.9, in both
//! directions. Encoding with the builders gives exactly these bytes; decoding them gives the
//! fields the tables of protocol.md annotate; re-encoding a decoded message gives the input.

use core::net::Ipv6Addr;

use lqd::wire::build::{
    framed, write_data, write_data_prefix, write_done, write_query, write_reply, write_starttls,
    write_starttls_reply, LqQueryOut, QueryMessage, QueryOut, Reply, DATA_PREFIX_MAX,
};
use lqd::wire::client_data::{write_client_data, ClientDataInput, LeaseEntry, LeaseKind};
use lqd::wire::{
    parse_query, FrameDecoder, Message, MessageType, Opt, OptionCode, QueryKey, QueryKind,
    StatusCode, Writer, Xid,
};

const SERVER_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const REQUESTOR_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const CLIENT_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const RELAY_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x01];
const BASE_TIME: u32 = 849_182_400; // 0x329d7ec0, 2026-11-28T12:00:00Z
const START_TIME: u32 = 849_180_600; // 0x329d77b8, 2026-11-28T11:30:00Z
const XID: Xid = Xid::from_bytes([0xab, 0xcd, 0xef]);
const XID_123456: Xid = Xid::from_bytes([0x12, 0x34, 0x56]);

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// §2.7 as sent on TCP (96 bytes).
fn example_a() -> Vec<u8> {
    hex("00 5e 0f ab cd ef 00 02 00 0a 00 03 00 01 00 11
         22 33 44 55 00 01 00 0a 00 03 00 01 00 aa bb cc
         dd ee 00 64 00 04 32 9d 7e c0 00 2d 00 32 00 01
         00 0a 00 03 00 01 02 00 00 00 00 01 00 05 00 18
         20 01 0d b8 00 00 00 00 00 00 00 00 00 01 01 00
         00 00 0e 10 00 00 1c 20 00 2e 00 04 00 00 00 3c")
}

/// §2.8 (34 bytes).
fn example_b() -> Vec<u8> {
    hex("00 20 16 ab cd ef 00 01 00 0a 00 03 00 01 00 aa
         bb cc dd ee 00 06 00 02 00 64 00 65 00 04 32 9d
         77 b8")
}

/// §2.9 Bulk LEASEQUERY BY_RELAY_ID.
fn bulk_by_relay_id_bytes() -> Vec<u8> {
    let mut v = hex("00 41 0e 00 00 07 00 01 00 0a 00 03 00 01 00 aa bb cc dd ee");
    v.extend(hex("00 06 00 02 00 64 00 2c 00 25 03"));
    v.extend([0u8; 16]);
    v.extend(hex(
        "00 35 00 0a 00 03 00 01 00 de ad be ef 01 00 06 00 02 00 2f",
    ));
    v
}

/// The CLIENT_DATA of §2.7: one IAADDR (pref 3600, valid 7200), CLT_TIME 60.
fn example_client_data() -> Vec<u8> {
    let leases = [LeaseEntry {
        kind: LeaseKind::Address("2001:db8::1:100".parse().unwrap()),
        preferred: 3600,
        valid: 7200,
    }];
    let input = ClientDataInput {
        client_id: &CLIENT_DUID,
        leases: &leases,
        clt_time: 60,
        relay_data: None,
    };
    let mut buf = [0u8; 128];
    let mut w = Writer::new(&mut buf);
    write_client_data(&mut w, &input).unwrap();
    w.written().to_vec()
}

fn encode(build: impl FnOnce(&mut Writer<'_>) -> Result<(), lqd::wire::EncodeError>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = framed(&mut buf, build).unwrap();
    buf[..n].to_vec()
}

/// Decode one frame through the frame decoder (whole input must be exactly one frame).
fn decode_frame(bytes: &[u8]) -> Vec<u8> {
    let mut decoder = FrameDecoder::new(u16::MAX);
    assert_eq!(decoder.extend(bytes), bytes.len());
    let message = decoder
        .next_frame()
        .unwrap()
        .expect("one whole frame")
        .to_vec();
    assert_eq!(decoder.buffered(), 0, "exactly one frame");
    message
}

fn reencode(message: &Message<'_>) -> Vec<u8> {
    encode(|w| message.encode(w))
}

#[test]
fn example_a_reply_encodes_exactly() {
    let client_data = example_client_data();
    let bytes = encode(|w| {
        write_reply(
            w,
            &Reply {
                xid: XID,
                server_id: &SERVER_DUID,
                client_id: Some(&REQUESTOR_DUID),
                status: None,
                base_time: Some(BASE_TIME),
                client_data: Some(&client_data),
            },
        )
    });
    assert_eq!(bytes, example_a());
}

#[test]
fn example_a_reply_decodes_to_the_annotated_fields() {
    let frame = example_a();
    let body = decode_frame(&frame);
    assert_eq!(body.len(), 94);
    let m = Message::parse(&body).unwrap();
    assert_eq!(m.msg_type, MessageType::LeasequeryReply);
    assert_eq!(m.xid.value(), 0xabcdef);
    let opts: Vec<Opt<'_>> = m.options.iter().collect();
    assert_eq!(opts.len(), 4);
    assert!(matches!(opts[0], Opt::ServerId(d) if d.bytes() == SERVER_DUID && d.duid_type() == 3));
    assert!(matches!(opts[1], Opt::ClientId(d) if d.bytes() == REQUESTOR_DUID));
    assert_eq!(opts[2], Opt::LqBaseTime(BASE_TIME));
    let Opt::ClientData(inner) = opts[3] else {
        panic!("CLIENT_DATA expected")
    };
    assert_eq!(inner.bytes().len(), 50);
    let inner: Vec<Opt<'_>> = inner.iter().collect();
    assert!(matches!(inner[0], Opt::ClientId(d) if d.bytes() == CLIENT_DUID));
    let Opt::IaAddr(a) = inner[1] else {
        panic!("IAADDR expected")
    };
    assert_eq!(a.address, "2001:db8::1:100".parse::<Ipv6Addr>().unwrap());
    assert_eq!((a.preferred, a.valid), (3600, 7200));
    assert!(a.options.is_empty());
    assert_eq!(inner[2], Opt::CltTime(60));
    assert_eq!(inner.len(), 3);
    assert_eq!(reencode(&m), frame);
}

#[test]
fn example_a_as_leasequery_data_is_66_octets() {
    // protocol.md §2.7: `00 42 11 ab cd ef` + BASE_TIME(8) + CLIENT_DATA(54).
    let client_data = example_client_data();
    let bytes = encode(|w| write_data(w, XID, None, Some(BASE_TIME), Some(&client_data)));
    let mut expected = hex("00 42 11 ab cd ef 00 64 00 04 32 9d 7e c0");
    expected.extend(&example_a()[42..]);
    assert_eq!(bytes, expected);

    // The fan-out path: a per-connection prefix plus the shared body gives the same frame.
    let mut prefix = [0u8; DATA_PREFIX_MAX];
    let n = write_data_prefix(&mut prefix, XID, Some(BASE_TIME), client_data.len()).unwrap();
    let mut joined = prefix[..n].to_vec();
    joined.extend(&client_data);
    assert_eq!(joined, expected);
}

#[test]
fn example_b_activeleasequery_round_trips_and_validates() {
    let bytes = encode(|w| {
        write_query(
            w,
            &QueryMessage {
                msg_type: MessageType::ActiveLeasequery,
                xid: XID,
                client_id: &REQUESTOR_DUID,
                lq_query: None,
                oro: &[OptionCode::LqBaseTime],
                start_time: Some(START_TIME),
                end_time: None,
            },
        )
    });
    assert_eq!(bytes, example_b());

    let body = decode_frame(&example_b());
    let m = Message::parse(&body).unwrap();
    assert_eq!(m.msg_type, MessageType::ActiveLeasequery);
    let q = parse_query(&m, &SERVER_DUID).unwrap();
    assert_eq!(q.kind, QueryKind::Active);
    assert_eq!(q.xid, XID);
    assert_eq!(q.requestor.bytes(), REQUESTOR_DUID);
    assert_eq!(q.filter, None, "no LQ_QUERY: all bindings (S-36)");
    assert_eq!(q.start_time, Some(START_TIME));
    assert_eq!(q.end_time, None);
    assert_eq!(q.server_id, None);
    assert!(q.wants_base_time(), "100 in the top-level ORO (S-49, D-1)");
    assert_eq!(q.oro.unwrap().codes().collect::<Vec<_>>(), [100]);
    assert_eq!(reencode(&m), example_b());
}

#[test]
fn example_keepalive() {
    let expected = hex("00 0c 11 ab cd ef 00 64 00 04 32 9d 7e c0");
    assert_eq!(
        encode(|w| write_data(w, XID, None, Some(BASE_TIME), None)),
        expected
    );
    let body = decode_frame(&expected);
    let m = Message::parse(&body).unwrap();
    assert_eq!(m.msg_type, MessageType::LeasequeryData);
    assert_eq!(
        m.options.iter().collect::<Vec<_>>(),
        [Opt::LqBaseTime(BASE_TIME)]
    );
}

#[test]
fn example_catch_up_complete() {
    let expected = hex("00 12 11 ab cd ef 00 0d 00 02 00 0d 00 64 00 04 32 9d 7e c0");
    let status = Some((StatusCode::CatchUpComplete, ""));
    assert_eq!(
        encode(|w| write_data(w, XID, status, Some(BASE_TIME), None)),
        expected
    );
    let body = decode_frame(&expected);
    let m = Message::parse(&body).unwrap();
    let opts: Vec<Opt<'_>> = m.options.iter().collect();
    let Opt::Status(s) = opts[0] else {
        panic!("status expected")
    };
    assert_eq!(s.code, StatusCode::CatchUpComplete);
    assert!(s.message.is_empty());
    assert_eq!(opts[1], Opt::LqBaseTime(BASE_TIME));
}

#[test]
fn example_done_query_terminated() {
    let expected =
        hex("00 1a 10 ab cd ef 00 0d 00 0a 00 0b 73 68 75 74 64 6f 77 6e 00 64 00 04 32 9d 7e c0");
    let status = Some((StatusCode::QueryTerminated, "shutdown"));
    assert_eq!(
        encode(|w| write_done(w, XID, status, Some(BASE_TIME))),
        expected
    );
    let body = decode_frame(&expected);
    let m = Message::parse(&body).unwrap();
    assert_eq!(m.msg_type, MessageType::LeasequeryDone);
    let Some(Opt::Status(s)) = m.options.find(OptionCode::StatusCode) else {
        panic!()
    };
    assert_eq!(
        (s.code, s.message),
        (StatusCode::QueryTerminated, &b"shutdown"[..])
    );
    assert_eq!(
        m.options.find(OptionCode::LqBaseTime),
        Some(Opt::LqBaseTime(BASE_TIME))
    );
}

#[test]
fn example_starttls() {
    let expected = hex("00 04 17 12 34 56");
    assert_eq!(encode(|w| write_starttls(w, XID_123456)), expected);
    let body = decode_frame(&expected);
    let m = Message::parse(&body).unwrap();
    assert_eq!((m.msg_type, m.xid), (MessageType::StartTls, XID_123456));
    assert!(m.options.is_empty());
}

#[test]
fn example_reply_refusing_tls() {
    let expected =
        hex("00 18 07 12 34 56 00 02 00 0a 00 03 00 01 00 11 22 33 44 55 00 0d 00 02 00 0f");
    assert_eq!(
        encode(|w| write_starttls_reply(w, XID_123456, &SERVER_DUID, true)),
        expected
    );
    let body = decode_frame(&expected);
    let m = Message::parse(&body).unwrap();
    assert_eq!(m.msg_type, MessageType::Reply);
    let Some(Opt::Status(s)) = m.options.find(OptionCode::StatusCode) else {
        panic!()
    };
    assert_eq!(s.code, StatusCode::TlsConnectionRefused);
    // The go-ahead REPLY (S-16) is the same without the status.
    let go = encode(|w| write_starttls_reply(w, XID_123456, &SERVER_DUID, false));
    assert_eq!(go[..2], [0, 18]);
    assert_eq!(go[2..], expected[2..20]);
}

#[test]
fn example_bulk_by_relay_id() {
    let expected = bulk_by_relay_id_bytes();
    let bytes = encode(|w| {
        write_query(
            w,
            &QueryMessage {
                msg_type: MessageType::Leasequery,
                xid: Xid::new(7).unwrap(),
                client_id: &REQUESTOR_DUID,
                lq_query: Some(LqQueryOut {
                    query: QueryOut::RelayId(&RELAY_DUID),
                    link_address: Ipv6Addr::UNSPECIFIED,
                    oro: &[OptionCode::LqRelayData],
                }),
                oro: &[OptionCode::LqBaseTime],
                start_time: None,
                end_time: None,
            },
        )
    });
    assert_eq!(bytes, expected);

    let body = decode_frame(&expected);
    let m = Message::parse(&body).unwrap();
    let q = parse_query(&m, &SERVER_DUID).unwrap();
    assert_eq!(q.kind, QueryKind::Bulk);
    let filter = q.filter.unwrap();
    assert!(matches!(filter.key, QueryKey::RelayId(d) if d.bytes() == RELAY_DUID));
    assert_eq!(filter.link_address, Ipv6Addr::UNSPECIFIED);
    assert!(q.wants_base_time());
    assert!(q.wants_in_client_data(OptionCode::LqRelayData));
    assert!(!q.wants_in_client_data(OptionCode::LqBaseTime));
    assert_eq!(reencode(&m), expected);
}
