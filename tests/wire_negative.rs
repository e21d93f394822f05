//! Negative vectors for the wire codec (style.md S12, S22; trap T18).
//!
//! Each test feeds byte-exact invalid input to the frame decoder, `Message::parse` or
//! `parse_query` and asserts the precise `lqd::wire::Error` value and its `disposition()`,
//! citing the rule of protocol.md (S-n, D-n, §n) that decides the answer. Where a vector has
//! a valid neighbour (a boundary length, the Bulk twin of an Active-only rule), the neighbour
//! is checked too, so each test shows the line between accepted and refused.
//!
//! Dispositions: `Refuse(status)` = LEASEQUERY-REPLY with that status, then close (S-39);
//! `Discard` = drop the message, keep the connection (S-23, S-24); `Close` = close without an
//! answer (S-25, broken framing).

use lqd::wire::{
    parse_header, parse_query, Disposition, Error, Field, FrameDecoder, Message, MessageType,
    OptionCode, QueryKey, QueryKind, QueryType, StatusCode, Xid, NESTING_MAX,
};

const SERVER_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const OTHER_SERVER_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x56];
const REQUESTOR_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const XID: [u8; 3] = [0xab, 0xcd, 0xef];

const MALFORMED: Disposition = Disposition::Refuse(StatusCode::MalformedQuery);

// Message types used below (protocol.md §1.1).
const SOLICIT: u8 = 1;
const REPLY: u8 = 7;
const RELAY_FORW: u8 = 12;
const LEASEQUERY: u8 = 14;
const LEASEQUERY_REPLY: u8 = 15;
const LEASEQUERY_DONE: u8 = 16;
const LEASEQUERY_DATA: u8 = 17;
const ACTIVELEASEQUERY: u8 = 22;

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// One option TLV; the option-len is the true length of `data`.
fn tlv(code: u16, data: &[u8]) -> Vec<u8> {
    let length = u16::try_from(data.len()).unwrap();
    let mut v = code.to_be_bytes().to_vec();
    v.extend(length.to_be_bytes());
    v.extend(data);
    v
}

/// A client/server message with xid 0xabcdef.
fn message(msg_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![msg_type];
    v.extend(XID);
    options.iter().for_each(|o| v.extend(o));
    v
}

fn client_id() -> Vec<u8> {
    tlv(1, &REQUESTOR_DUID)
}

/// OPTION_LQ_QUERY with link-address `::`.
fn lq_query(query_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
    let mut data = vec![query_type];
    data.extend([0u8; 16]);
    options.iter().for_each(|o| data.extend(o));
    tlv(44, &data)
}

/// OPTION_IAADDR for 2001:db8::1:100 with zero lifetimes and `sub` as its options.
fn iaaddr(sub: &[u8]) -> Vec<u8> {
    let mut data = hex("20 01 0d b8 00 00 00 00 00 00 00 00 00 01 01 00");
    data.extend([0u8; 8]);
    data.extend(sub);
    tlv(5, &data)
}

/// A valid Bulk LEASEQUERY: CLIENTID and a QUERY_BY_LINK_ADDRESS for `::` (D-3).
fn valid_bulk(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut options = vec![client_id(), lq_query(4, &[])];
    options.extend_from_slice(extra);
    message(LEASEQUERY, &options)
}

/// `Message::parse` fails with exactly `expected`, which maps to `disposition`. A refusal
/// needs the xid to answer with, so for `Refuse` the header must still decode (S-26).
fn assert_parse_error(bytes: &[u8], expected: Error, disposition: Disposition) {
    assert_eq!(Message::parse(bytes), Err(expected), "vector {bytes:02x?}");
    assert_eq!(expected.disposition(), disposition, "{expected}");
    if matches!(disposition, Disposition::Refuse(_)) {
        let (_, xid) = parse_header(bytes).expect("a refused message has a header");
        assert_eq!(xid, Xid::from_bytes(XID));
    }
}

/// The message decodes, but `parse_query` fails with exactly `expected` → `disposition`.
fn assert_query_error(bytes: &[u8], expected: Error, disposition: Disposition) {
    let m = Message::parse(bytes).expect("the message layer accepts the vector");
    assert_eq!(
        parse_query(&m, &SERVER_DUID),
        Err(expected),
        "vector {bytes:02x?}"
    );
    assert_eq!(expected.disposition(), disposition, "{expected}");
}

fn assert_query_ok(bytes: &[u8]) -> lqd::wire::Query<'_> {
    let m = Message::parse(bytes).expect("message accepted");
    parse_query(&m, &SERVER_DUID).expect("query accepted")
}

/// Feed `stream` to a fresh decoder of maximum `max` and return the first result that is
/// not "need more input".
fn first_frame_result(max: u16, stream: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut d = FrameDecoder::new(max);
    assert_eq!(d.extend(stream), stream.len());
    d.next_frame().map(|f| f.map(<[u8]>::to_vec))
}

// ---------------------------------------------------------------------------------------
// Framing and header
// ---------------------------------------------------------------------------------------

/// protocol.md §2.2: the header is 4 octets; without it there is no xid to answer with, so
/// the connection is closed (error.rs; §2.1 "minimum legal message is 4").
#[test]
fn truncated_message_header_closes() {
    let cases: [(&[u8], usize, usize); 4] = [
        (&[], 1, 0),
        (&[0x0e], 3, 0),
        (&[0x0e, 0xab], 3, 1),
        (&[0x0e, 0xab, 0xcd], 3, 2),
    ];
    for (bytes, needed, available) in cases {
        let expected = Error::Truncated {
            field: Field::MessageHeader,
            needed,
            available,
        };
        assert_parse_error(bytes, expected, Disposition::Close);
        assert_eq!(parse_header(bytes), Err(expected));
    }
    // Four octets are a whole (option-less) message.
    assert!(Message::parse(&hex("0e ab cd ef")).is_ok());
}

/// protocol.md §2.1: message-size below 4 cannot hold a header; the stream is unusable and
/// the connection is closed (S-25 class).
#[test]
fn frame_size_below_header_closes() {
    for size in 0u16..=3 {
        let mut stream = size.to_be_bytes().to_vec();
        stream.extend([0x0e, 0xab, 0xcd, 0xef]);
        let expected = Error::FrameTooShort { size };
        assert_eq!(first_frame_result(100, &stream), Err(expected));
        assert_eq!(expected.disposition(), Disposition::Close);
        // The prefix alone is enough to reject it.
        assert_eq!(first_frame_result(100, &stream[..2]), Err(expected));
    }
    // Size 4 is the smallest legal frame.
    assert_eq!(
        first_frame_result(100, &hex("00 04 17 12 34 56")),
        Ok(Some(hex("17 12 34 56")))
    );
}

/// protocol.md §2.1 and S-8/S-11 (bounded resources): a message-size above the configured
/// maximum is refused as soon as the 2-octet prefix has arrived, before any body is
/// buffered, and the decoder stays failed.
#[test]
fn frame_size_above_max_is_rejected_on_the_prefix_alone() {
    let expected = Error::FrameTooLarge {
        size: 101,
        max: 100,
    };
    assert_eq!(expected.disposition(), Disposition::Close);
    let mut d = FrameDecoder::new(100);
    assert_eq!(d.extend(&hex("00 65")), 2);
    assert_eq!(d.next_frame(), Err(expected));
    // More input does not revive it.
    d.extend(&[0x0e, 0xab, 0xcd, 0xef]);
    assert_eq!(d.next_frame(), Err(expected));

    // The largest size a 16-bit prefix can say, against a maximum one below it.
    assert_eq!(
        first_frame_result(65_534, &hex("ff ff")),
        Err(Error::FrameTooLarge {
            size: 65_535,
            max: 65_534
        })
    );

    // A good frame before the oversize prefix is still delivered first.
    let mut d = FrameDecoder::new(10);
    d.extend(&hex("00 04 17 12 34 56 00 0b"));
    assert_eq!(d.next_frame(), Ok(Some(&hex("17 12 34 56")[..])));
    assert_eq!(
        d.next_frame(),
        Err(Error::FrameTooLarge { size: 11, max: 10 })
    );

    // Exactly the maximum is accepted.
    let at_max = hex("00 0a 11 ab cd ef 00 0d 00 02 00 00");
    assert_eq!(
        first_frame_result(10, &at_max),
        Ok(Some(at_max[2..].to_vec()))
    );
}

// ---------------------------------------------------------------------------------------
// Option TLVs: overruns and stray bytes
// ---------------------------------------------------------------------------------------

/// protocol.md §2.3; S12 (every length checked before slicing); S-39: refused with
/// MalformedQuery. CLIENTID says 11 octets, 10 follow.
#[test]
fn option_len_past_end_of_message_is_overrun() {
    let bytes = hex("0e ab cd ef
         00 01 00 0b 00 03 00 01 00 aa bb cc dd ee");
    let expected = Error::OptionOverrun {
        code: 1,
        length: 11,
        available: 10,
    };
    assert_parse_error(&bytes, expected, MALFORMED);

    // option-len 0xffff on an otherwise empty message.
    let bytes = hex("0e ab cd ef 00 2c ff ff 04");
    let expected = Error::OptionOverrun {
        code: 44,
        length: 0xffff,
        available: 1,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

/// protocol.md §2.3/§2.4: a nested option must fit its parent, not just the message; S-39.
/// The IAADDR says 25 octets but CLIENT_DATA holds only 24 after the IAADDR header, even
/// though the CLT_TIME that follows CLIENT_DATA would give a lax parser the missing octet.
#[test]
fn iaaddr_overrunning_client_data_is_overrun() {
    let bytes = hex("0f ab cd ef
         00 2d 00 1c
            00 05 00 19
               20 01 0d b8 00 00 00 00 00 00 00 00 00 01 01 00
               00 00 0e 10 00 00 1c 20
         00 2e 00 04 00 00 00 3c");
    let expected = Error::OptionOverrun {
        code: 5,
        length: 25,
        available: 24,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

/// Same as above inside OPTION_LQ_QUERY of a LEASEQUERY (protocol.md §2.4; S-26: a broken
/// query-option is a MalformedQuery).
#[test]
fn iaaddr_overrunning_lq_query_is_overrun() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 2d
            01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
            00 05 00 19
               20 01 0d b8 00 00 00 00 00 00 00 00 00 01 01 00
               00 00 00 00 00 00 00 00
         00 06 00 02 00 64");
    let expected = Error::OptionOverrun {
        code: 5,
        length: 25,
        available: 24,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

/// protocol.md §2.3: a parent whose data ends inside a child's 4-octet header; S-39.
#[test]
fn option_header_cut_by_parent_is_truncated() {
    // CLIENT_DATA of length 3 holding `00 2e 00`: the child's option-len is cut.
    let bytes = hex("0f ab cd ef 00 2d 00 03 00 2e 00");
    let expected = Error::Truncated {
        field: Field::OptionHeader,
        needed: 2,
        available: 1,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

/// style.md S12 (trailing bytes are an error, never skipped); S-39. One to three stray
/// octets after the last option cannot form an option header: they surface as
/// `Truncated { field: OptionHeader }`. Four stray octets form a header whose option-len
/// overruns.
#[test]
fn stray_bytes_after_last_option() {
    let cases: [(&str, usize); 3] = [("00", 1), ("00 2e", 0), ("00 2e 00", 1)];
    for (stray, available) in cases {
        let mut bytes = valid_bulk(&[]);
        bytes.extend(hex(stray));
        let expected = Error::Truncated {
            field: Field::OptionHeader,
            needed: 2,
            available,
        };
        assert_parse_error(&bytes, expected, MALFORMED);
    }
    let mut bytes = valid_bulk(&[]);
    bytes.extend(hex("00 2e 00 05"));
    let expected = Error::OptionOverrun {
        code: 46,
        length: 5,
        available: 0,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
    // The same stray octet at the end of a nested list (inside LQ_QUERY).
    let mut query = vec![4u8];
    query.extend([0u8; 16]);
    query.push(0xff);
    let bytes = message(LEASEQUERY, &[client_id(), tlv(44, &query)]);
    let expected = Error::Truncated {
        field: Field::OptionHeader,
        needed: 2,
        available: 1,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
    // Without the stray octets the message is a valid query.
    assert_query_ok(&valid_bulk(&[]));
}

/// protocol.md §2.4 (CLT_TIME and LQ_*_TIME are option-len 4); S12: a trailing octet inside
/// a fixed layout is `BadLength` (the parser never produces `TrailingBytes` for options: the
/// length check comes first).
#[test]
fn stray_bytes_inside_fixed_layouts_are_bad_length() {
    let cases = [
        (46u16, OptionCode::CltTime, 5usize),
        (46, OptionCode::CltTime, 3),
        (100, OptionCode::LqBaseTime, 5),
        (101, OptionCode::LqStartTime, 8),
        (102, OptionCode::LqEndTime, 0),
    ];
    for (code, option, length) in cases {
        let bytes = message(LEASEQUERY_DATA, &[tlv(code, &vec![0u8; length])]);
        let expected = Error::BadLength { option, length };
        assert_parse_error(&bytes, expected, MALFORMED);
    }
    // The precise vector: CLT_TIME of length 5 inside CLIENT_DATA.
    let bytes = hex("11 ab cd ef 00 2d 00 09 00 2e 00 05 00 00 00 3c 00");
    let expected = Error::BadLength {
        option: OptionCode::CltTime,
        length: 5,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

// ---------------------------------------------------------------------------------------
// Fixed layouts: impossible lengths and values
// ---------------------------------------------------------------------------------------

/// Trap T18 (dhcproto panics on STATUS_CODE shorter than 2); protocol.md §2.4: option-len
/// is 2 + message length. Lengths 1 and 0 are `BadLength`, never a wrapped `len - 2`.
#[test]
fn status_code_shorter_than_two_is_bad_length() {
    let bytes = hex("10 ab cd ef 00 0d 00 01 00");
    let expected = Error::BadLength {
        option: OptionCode::StatusCode,
        length: 1,
    };
    assert_parse_error(&bytes, expected, MALFORMED);

    let bytes = hex("10 ab cd ef 00 0d 00 00");
    let expected = Error::BadLength {
        option: OptionCode::StatusCode,
        length: 0,
    };
    assert_parse_error(&bytes, expected, MALFORMED);

    // Inside an IAADDR's options (nested lists get the same check).
    let bytes = message(
        LEASEQUERY_REPLY,
        &[tlv(45, &iaaddr(&hex("00 0d 00 01 08")))],
    );
    assert_parse_error(&bytes, expected_status_len(1), MALFORMED);

    // Length 2: a code and an empty message.
    assert!(Message::parse(&hex("10 ab cd ef 00 0d 00 02 00 08")).is_ok());
}

fn expected_status_len(length: usize) -> Error {
    Error::BadLength {
        option: OptionCode::StatusCode,
        length,
    }
}

/// protocol.md §1.5/§2.4: a DUID is 2 + 1..=128 octets, i.e. 3..=130; S-39.
#[test]
fn duid_length_out_of_bounds_is_bad_length() {
    let options = [
        (1u16, OptionCode::ClientId),
        (2, OptionCode::ServerId),
        (53, OptionCode::RelayId),
    ];
    for (code, option) in options {
        for length in [0usize, 1, 2, 131, 200] {
            let bytes = message(LEASEQUERY_REPLY, &[tlv(code, &vec![0u8; length])]);
            assert_parse_error(&bytes, Error::BadLength { option, length }, MALFORMED);
        }
        for length in [3usize, 130] {
            let bytes = message(LEASEQUERY_REPLY, &[tlv(code, &vec![0u8; length])]);
            assert!(Message::parse(&bytes).is_ok(), "DUID of {length} octets");
        }
    }
    // The exact two vectors of the brief: CLIENTID of length 2 and of length 131.
    let two = hex("0e ab cd ef 00 01 00 02 00 03");
    let expected = Error::BadLength {
        option: OptionCode::ClientId,
        length: 2,
    };
    assert_parse_error(&two, expected, MALFORMED);
    let mut long = hex("0e ab cd ef 00 01 00 83 00 03 00 01");
    long.extend([0x5a; 127]);
    let expected = Error::BadLength {
        option: OptionCode::ClientId,
        length: 131,
    };
    assert_parse_error(&long, expected, MALFORMED);
}

/// protocol.md §2.4 (IAPREFIX prefix-length in bits, an IPv6 prefix is at most 128); S-39.
#[test]
fn iaprefix_prefix_length_129_is_bad_value() {
    let iaprefix = |prefix_len: &str| {
        hex(&format!(
            "11 ab cd ef
             00 1a 00 19
                00 00 0e 10 00 00 1c 20 {prefix_len}
                20 01 0d b8 01 00 00 00 00 00 00 00 00 00 00 00"
        ))
    };
    let expected = Error::BadValue {
        option: OptionCode::IaPrefix,
    };
    assert_parse_error(&iaprefix("81"), expected, MALFORMED);
    assert_parse_error(&iaprefix("ff"), expected, MALFORMED);
    assert!(Message::parse(&iaprefix("80")).is_ok());
    assert!(Message::parse(&iaprefix("00")).is_ok());
}

/// protocol.md §2.4: the fixed parts of IAADDR (24), IAPREFIX (25), LQ_QUERY (17) and
/// LQ_RELAY_DATA (16 + a 34-octet relay header) must fit the option-len; S-39.
#[test]
fn fixed_layouts_shorter_than_their_minimum_are_bad_length() {
    let cases = [
        (5u16, OptionCode::IaAddr, 23usize),
        (26, OptionCode::IaPrefix, 24),
        (44, OptionCode::LqQuery, 16),
        (44, OptionCode::LqQuery, 0),
        (47, OptionCode::LqRelayData, 49),
        (47, OptionCode::LqRelayData, 16),
    ];
    for (code, option, length) in cases {
        let bytes = message(LEASEQUERY_REPLY, &[tlv(code, &vec![0u8; length])]);
        assert_parse_error(&bytes, Error::BadLength { option, length }, MALFORMED);
    }
}

/// protocol.md §2.4: ORO is a list of 2-octet codes (option-len = 2 × count); S-39.
#[test]
fn oro_of_odd_length_is_bad_length() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 06 00 03 00 64 00");
    let expected = Error::BadLength {
        option: OptionCode::Oro,
        length: 3,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
    let bytes = message(LEASEQUERY, &[client_id(), tlv(6, &[0x00])]);
    let expected = Error::BadLength {
        option: OptionCode::Oro,
        length: 1,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
    // An empty ORO is a list of zero codes.
    assert!(Message::parse(&message(LEASEQUERY, &[tlv(6, &[])])).is_ok());
}

/// protocol.md §2.4: LQ_CLIENT_LINK is a list of 16-octet addresses; S-39.
#[test]
fn lq_client_link_not_a_multiple_of_16_is_bad_length() {
    for length in [1usize, 15, 17, 31, 33] {
        let bytes = message(LEASEQUERY_REPLY, &[tlv(48, &vec![0x20; length])]);
        let expected = Error::BadLength {
            option: OptionCode::LqClientLink,
            length,
        };
        assert_parse_error(&bytes, expected, MALFORMED);
    }
    for length in [0usize, 16, 32] {
        let bytes = message(LEASEQUERY_REPLY, &[tlv(48, &vec![0x20; length])]);
        assert!(Message::parse(&bytes).is_ok());
    }
}

/// protocol.md §2.4 (REMOTE_ID = enterprise-number(4) + remote-id(≥1), option-len ≥ 5);
/// S-26: a broken QUERY_BY_REMOTE_ID key is a MalformedQuery.
#[test]
fn remote_id_shorter_than_5_is_bad_length() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 19
            05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
            00 25 00 04 00 00 0d e9");
    let expected = Error::BadLength {
        option: OptionCode::RemoteId,
        length: 4,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
    // Five octets make a QUERY_BY_REMOTE_ID key.
    let bytes = message(
        LEASEQUERY,
        &[
            client_id(),
            lq_query(5, &[hex("00 25 00 05 00 00 0d e9 01")]),
        ],
    );
    let q = assert_query_ok(&bytes);
    let Some(QueryKey::RemoteId(r)) = q.filter.map(|f| f.key) else {
        panic!("remote-id key expected")
    };
    assert_eq!((r.enterprise(), r.id()), (3561, &[1u8][..]));
}

// ---------------------------------------------------------------------------------------
// Relay data
// ---------------------------------------------------------------------------------------

/// A 34-octet relay header of `msg_type` (RFC 8415 §9), hop-count 0, zero addresses.
fn relay_header(msg_type: u8) -> Vec<u8> {
    let mut v = vec![msg_type, 0];
    v.extend([0u8; 32]);
    v
}

/// OPTION_LQ_RELAY_DATA with peer-address `::` around `relay`.
fn relay_data(relay: &[u8]) -> Vec<u8> {
    let mut data = vec![0u8; 16];
    data.extend(relay);
    tlv(47, &data)
}

/// protocol.md §2.4 (LQ_RELAY_DATA holds a RELAY-FORW, S-46); S-39. A client/server message
/// type in the relay slot is `NotARelayMessage`.
#[test]
fn relay_data_holding_a_non_relay_message() {
    for msg_type in [0u8, 1, 11, 14, 255] {
        let rd = relay_data(&relay_header(msg_type));
        let bytes = message(LEASEQUERY_REPLY, &[tlv(45, &rd)]);
        assert_parse_error(&bytes, Error::NotARelayMessage { msg_type }, MALFORMED);
    }
    // The exact vector: peer-address ::, then a 34-octet header whose msg-type is 1.
    let mut bytes = hex("0f ab cd ef 00 2d 00 36 00 2f 00 32");
    bytes.extend([0u8; 16]);
    bytes.extend(relay_header(SOLICIT));
    assert_parse_error(&bytes, Error::NotARelayMessage { msg_type: 1 }, MALFORMED);
    // RELAY-FORW and RELAY-REPL are accepted.
    for msg_type in [RELAY_FORW, 13] {
        let rd = relay_data(&relay_header(msg_type));
        assert!(Message::parse(&message(LEASEQUERY_REPLY, &[tlv(45, &rd)])).is_ok());
    }
}

/// RFC 8415 §9 via protocol.md §2.4: a RELAY_MSG whose data starts with 12 is a relay
/// message and must hold a whole 34-octet header; S-39.
#[test]
fn relay_msg_cut_inside_the_relay_header_is_truncated() {
    let mut relay = relay_header(RELAY_FORW);
    relay.extend(tlv(9, &hex("0c 00 00 00 00 00 00 00 00 00")));
    let bytes = message(LEASEQUERY_REPLY, &[tlv(45, &relay_data(&relay))]);
    let expected = Error::Truncated {
        field: Field::RelayHeader,
        needed: 16,
        available: 8,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

/// A CLIENT_DATA holding relay data whose RELAY-FORW nests `hops` more RELAY-FORWs through
/// RELAY_MSG.
fn nested_relays(hops: usize) -> Vec<u8> {
    let mut relay = relay_header(RELAY_FORW);
    for _ in 0..hops {
        let mut outer = relay_header(RELAY_FORW);
        outer.extend(tlv(9, &relay));
        relay = outer;
    }
    message(LEASEQUERY_REPLY, &[tlv(45, &relay_data(&relay))])
}

/// style.md S12 (bounded recursion), protocol.md §2.4 (multi-hop relay data); S-39.
///
/// Depth accounting as implemented: the message's options are level 0, CLIENT_DATA's
/// level 1, the LQ_RELAY_DATA relay's options level 2, and each RELAY_MSG hop adds one, so
/// the innermost relay of `h` hops has its (empty) options at level 2 + h. A level above
/// `NESTING_MAX` is refused: `NESTING_MAX - 2` hops pass, one more does not. (options.rs
/// says each hop costs two levels; in fact it costs one, so 18 hops pass, not 8.)
#[test]
fn relay_nesting_deeper_than_nesting_max_is_refused() {
    let deepest = usize::from(NESTING_MAX) - 2;
    assert!(Message::parse(&nested_relays(deepest)).is_ok());
    assert_parse_error(
        &nested_relays(deepest + 1),
        Error::NestingTooDeep,
        MALFORMED,
    );
    assert_parse_error(&nested_relays(200), Error::NestingTooDeep, MALFORMED);
}

// ---------------------------------------------------------------------------------------
// Duplicates
// ---------------------------------------------------------------------------------------

/// RFC 8415 Table 4 via protocol.md §1.2 (CLIENTID is a singleton); style.md S12; S-39.
#[test]
fn duplicate_clientid_is_refused() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 11 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    let expected = Error::Duplicate {
        option: OptionCode::ClientId,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
    // Two different DUIDs are just as much a duplicate.
    let bytes = message(
        LEASEQUERY,
        &[client_id(), tlv(1, &SERVER_DUID), lq_query(4, &[])],
    );
    assert_parse_error(&bytes, expected, MALFORMED);
}

/// protocol.md §1.2 / §2.4: singletons are per option list; IAADDR repeats inside
/// CLIENT_DATA (one per lease) but CLT_TIME does not; S-39.
#[test]
fn duplicate_singleton_in_a_nested_list_is_refused() {
    let clt = hex("00 2e 00 04 00 00 00 3c");
    let mut data = iaaddr(&[]);
    data.extend(&clt);
    data.extend(&clt);
    let bytes = message(LEASEQUERY_DATA, &[tlv(45, &data)]);
    let expected = Error::Duplicate {
        option: OptionCode::CltTime,
    };
    assert_parse_error(&bytes, expected, MALFORMED);

    let mut data = iaaddr(&[]);
    data.extend(iaaddr(&[]));
    data.extend(&clt);
    assert!(Message::parse(&message(LEASEQUERY_DATA, &[tlv(45, &data)])).is_ok());
    // The same CLT_TIME once in CLIENT_DATA and once at top level is not a duplicate.
    let bytes = message(LEASEQUERY_DATA, &[tlv(45, &data), clt]);
    assert!(Message::parse(&bytes).is_ok());
}

/// S-26 / protocol.md §2.4: a QUERY_BY_ADDRESS names one address; two IAADDRs in the query
/// are a MalformedQuery (IAADDR is not a singleton in general, so this is `parse_query`'s).
#[test]
fn duplicate_key_in_lq_query_is_refused() {
    let bytes = message(
        LEASEQUERY,
        &[client_id(), lq_query(1, &[iaaddr(&[]), iaaddr(&[])])],
    );
    let expected = Error::Duplicate {
        option: OptionCode::IaAddr,
    };
    assert_query_error(&bytes, expected, MALFORMED);
    // A second ORO in the query-options is caught by the message layer.
    let oro = tlv(6, &[0, 47]);
    let bytes = message(LEASEQUERY, &[client_id(), lq_query(4, &[oro.clone(), oro])]);
    let expected = Error::Duplicate {
        option: OptionCode::Oro,
    };
    assert_parse_error(&bytes, expected, MALFORMED);
}

// ---------------------------------------------------------------------------------------
// Query validation (parse_query)
// ---------------------------------------------------------------------------------------

/// S-26: each query type but QUERY_BY_LINK_ADDRESS requires its query-option (protocol.md
/// §2.4, R-4); missing ⇒ MalformedQuery. The exact vector for type 1 is spelled out.
#[test]
fn missing_query_option_is_malformed() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 11 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    let expected = Error::MissingQueryOption {
        query_type: QueryType::ByAddress,
        option: OptionCode::IaAddr,
    };
    assert_query_error(&bytes, expected, MALFORMED);

    let cases = [
        (1u8, QueryType::ByAddress, OptionCode::IaAddr),
        (2, QueryType::ByClientId, OptionCode::ClientId),
        (3, QueryType::ByRelayId, OptionCode::RelayId),
        (5, QueryType::ByRemoteId, OptionCode::RemoteId),
    ];
    for (code, query_type, option) in cases {
        let expected = Error::MissingQueryOption { query_type, option };
        // Bare, and with only an ORO (which is not the key).
        for extra in [vec![], vec![tlv(6, &[0, 47])]] {
            for msg_type in [LEASEQUERY, ACTIVELEASEQUERY] {
                let bytes = message(msg_type, &[client_id(), lq_query(code, &extra)]);
                assert_query_error(&bytes, expected, MALFORMED);
            }
        }
    }
}

/// S-34 / D-3: QUERY_BY_LINK_ADDRESS needs no query-option; the link-address is the key.
#[test]
fn link_address_query_needs_no_query_option() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 11 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    let q = assert_query_ok(&bytes);
    assert_eq!(q.kind, QueryKind::Bulk);
    assert_eq!(q.filter.map(|f| f.key), Some(QueryKey::LinkAddress));
    let bytes = message(ACTIVELEASEQUERY, &[client_id(), lq_query(4, &[])]);
    assert_eq!(assert_query_ok(&bytes).kind, QueryKind::Active);
}

/// S-26: a query-option that is not the one the type requires is not accepted as its key:
/// RELAY_ID in a QUERY_BY_CLIENTID is a known option in the wrong place (MalformedQuery).
#[test]
fn key_of_another_query_type_is_forbidden() {
    let bytes = message(
        LEASEQUERY,
        &[client_id(), lq_query(2, &[tlv(53, &REQUESTOR_DUID)])],
    );
    let expected = Error::Forbidden {
        option: OptionCode::RelayId,
        message: MessageType::Leasequery,
    };
    assert_query_error(&bytes, expected, MALFORMED);
}

/// S-26: an unknown query type ⇒ UnknownQueryType (status 7), in Bulk and Active alike.
#[test]
fn unknown_query_type_is_refused_with_unknown_query_type() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 11 06 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    let refuse = Disposition::Refuse(StatusCode::UnknownQueryType);
    assert_query_error(&bytes, Error::UnknownQueryType { query_type: 6 }, refuse);
    for query_type in [0u8, 6, 255] {
        for msg_type in [LEASEQUERY, ACTIVELEASEQUERY] {
            // With a plausible key, so that only the type is wrong.
            let bytes = message(
                msg_type,
                &[client_id(), lq_query(query_type, &[iaaddr(&[])])],
            );
            assert_query_error(&bytes, Error::UnknownQueryType { query_type }, refuse);
        }
    }
}

/// S-29 / R-7: LQ_END_TIME in an ACTIVELEASEQUERY ⇒ MalformedQuery, checked before
/// anything else is missing; in a Bulk LEASEQUERY it is accepted (protocol.md §2.5, D-11).
#[test]
fn end_time_is_forbidden_in_active_and_accepted_in_bulk() {
    let bytes = hex("16 ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 66 00 04 32 9d 7e c0");
    let expected = Error::Forbidden {
        option: OptionCode::LqEndTime,
        message: MessageType::ActiveLeasequery,
    };
    assert_query_error(&bytes, expected, MALFORMED);
    // S-29 wins even over a missing CLIENTID (D-2).
    let bytes = message(ACTIVELEASEQUERY, &[tlv(102, &[0, 0, 0, 1])]);
    assert_query_error(&bytes, expected, MALFORMED);

    let bulk = valid_bulk(&[
        tlv(101, &0x329d_77b8u32.to_be_bytes()),
        tlv(102, &0x329d_7ec0u32.to_be_bytes()),
    ]);
    let q = assert_query_ok(&bulk);
    assert_eq!(q.kind, QueryKind::Bulk);
    assert_eq!(
        (q.start_time, q.end_time),
        (Some(0x329d_77b8), Some(0x329d_7ec0))
    );
}

/// S-23: a LEASEQUERY without CLIENTID is discarded.
#[test]
fn leasequery_without_clientid_is_discarded() {
    let bytes = hex("0e ab cd ef
         00 2c 00 11 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    let expected = Error::Missing {
        option: OptionCode::ClientId,
        message: MessageType::Leasequery,
    };
    assert_query_error(&bytes, expected, Disposition::Discard);
}

/// D-2: an ACTIVELEASEQUERY without CLIENTID is refused with MalformedQuery (not discarded:
/// a silent discard on TCP would leave the requestor waiting).
#[test]
fn activeleasequery_without_clientid_is_refused() {
    let bytes = hex("16 ab cd ef 00 06 00 02 00 64");
    let expected = Error::Missing {
        option: OptionCode::ClientId,
        message: MessageType::ActiveLeasequery,
    };
    assert_query_error(&bytes, expected, MALFORMED);
}

/// S-23: a LEASEQUERY without LQ_QUERY is discarded; S-36: an ACTIVELEASEQUERY without it
/// asks for all bindings.
#[test]
fn leasequery_without_lq_query_is_discarded() {
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee");
    let expected = Error::Missing {
        option: OptionCode::LqQuery,
        message: MessageType::Leasequery,
    };
    assert_query_error(&bytes, expected, Disposition::Discard);

    let mut active = bytes.clone();
    active[0] = ACTIVELEASEQUERY;
    let q = assert_query_ok(&active);
    assert_eq!((q.kind, q.filter), (QueryKind::Active, None));
}

/// S-23: a SERVERID that is not ours ⇒ discard; ours ⇒ accepted and reported.
#[test]
fn foreign_serverid_is_discarded_and_ours_accepted() {
    let foreign = valid_bulk(&[tlv(2, &OTHER_SERVER_DUID)]);
    assert_query_error(&foreign, Error::WrongServerId, Disposition::Discard);
    // A prefix of our DUID is not our DUID.
    let prefix = valid_bulk(&[tlv(2, &SERVER_DUID[..9])]);
    assert_query_error(&prefix, Error::WrongServerId, Disposition::Discard);
    let mut active = foreign.clone();
    active[0] = ACTIVELEASEQUERY;
    assert_query_error(&active, Error::WrongServerId, Disposition::Discard);

    let ours = valid_bulk(&[tlv(2, &SERVER_DUID)]);
    let q = assert_query_ok(&ours);
    assert_eq!(q.server_id.map(|d| d.bytes()), Some(&SERVER_DUID[..]));
}

/// S-24: a server discards LEASEQUERY-REPLY (and DATA, DONE by analogy) and the REPLY of
/// STARTTLS; S-25: anything that is not a leasequery message closes the connection.
#[test]
fn non_query_messages_are_discarded_or_close() {
    let reply = hex("0f ab cd ef
         00 02 00 0a 00 03 00 01 00 11 22 33 44 55
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee");
    let expected = Error::UnexpectedMessage {
        msg_type: MessageType::LeasequeryReply,
    };
    assert_query_error(&reply, expected, Disposition::Discard);
    for msg_type in [REPLY, LEASEQUERY_DONE, LEASEQUERY_DATA, 23] {
        let expected = Error::UnexpectedMessage {
            msg_type: MessageType::from_code(msg_type),
        };
        assert_query_error(&message(msg_type, &[]), expected, Disposition::Discard);
    }

    // SOLICIT (1) carrying a CLIENTID: not leasequery at all.
    let solicit = hex("01 ab cd ef 00 01 00 0a 00 03 00 01 00 aa bb cc dd ee");
    let expected = Error::UnexpectedMessage {
        msg_type: MessageType::Unknown(SOLICIT),
    };
    assert_query_error(&solicit, expected, Disposition::Close);
    for msg_type in [0u8, 3, 11, 18, 21, 24, 255] {
        let expected = Error::UnexpectedMessage {
            msg_type: MessageType::Unknown(msg_type),
        };
        assert_query_error(&message(msg_type, &[]), expected, Disposition::Close);
    }
    // A relay message at top level is refused by the message layer itself.
    for (code, msg_type) in [
        (RELAY_FORW, MessageType::RelayForw),
        (13, MessageType::RelayRepl),
    ] {
        let expected = Error::UnexpectedMessage { msg_type };
        assert_parse_error(&relay_header(code), expected, Disposition::Close);
    }
}

/// protocol.md §2.5 and query.rs (options a query has no use for are refused, style.md
/// S12); S-39: a known option in the wrong place of a query is `Forbidden` ⇒ MalformedQuery.
#[test]
fn known_option_in_the_wrong_place_is_forbidden() {
    // CLIENT_DATA (45, holding a CLT_TIME) at the top level of a LEASEQUERY.
    let bytes = hex("0e ab cd ef
         00 01 00 0a 00 03 00 01 00 aa bb cc dd ee
         00 2c 00 11 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
         00 2d 00 08 00 2e 00 04 00 00 00 3c");
    let expected = Error::Forbidden {
        option: OptionCode::ClientData,
        message: MessageType::Leasequery,
    };
    assert_query_error(&bytes, expected, MALFORMED);

    let top_level = [
        (tlv(13, &[0, 0]), OptionCode::StatusCode),
        (iaaddr(&[]), OptionCode::IaAddr),
        (tlv(100, &[0; 4]), OptionCode::LqBaseTime),
        (tlv(46, &[0; 4]), OptionCode::CltTime),
        (tlv(48, &[]), OptionCode::LqClientLink),
        (tlv(53, &REQUESTOR_DUID), OptionCode::RelayId),
    ];
    for (opt, option) in top_level {
        for (code, message_type) in [
            (LEASEQUERY, MessageType::Leasequery),
            (ACTIVELEASEQUERY, MessageType::ActiveLeasequery),
        ] {
            let bytes = message(code, &[client_id(), lq_query(4, &[]), opt.clone()]);
            let expected = Error::Forbidden {
                option,
                message: message_type,
            };
            assert_query_error(&bytes, expected, MALFORMED);
        }
    }
    // Inside LQ_QUERY of a LEASEQUERY: a CLT_TIME next to the IAADDR key.
    let bytes = message(
        LEASEQUERY,
        &[client_id(), lq_query(1, &[iaaddr(&[]), tlv(46, &[0; 4])])],
    );
    let expected = Error::Forbidden {
        option: OptionCode::CltTime,
        message: MessageType::Leasequery,
    };
    assert_query_error(&bytes, expected, MALFORMED);
}

/// RFC 8415 §16 via query.rs: unknown options in a query are ignored, at top level and in
/// the query-options (the positive neighbour of the `Forbidden` tests).
#[test]
fn unknown_options_in_a_query_are_ignored() {
    let unknown = tlv(0x1234, &[1, 2, 3]);
    let bytes = message(
        LEASEQUERY,
        &[
            unknown.clone(),
            client_id(),
            lq_query(1, &[unknown.clone(), iaaddr(&[])]),
            unknown,
        ],
    );
    let q = assert_query_ok(&bytes);
    assert!(matches!(
        q.filter.map(|f| f.key),
        Some(QueryKey::Address(a)) if a == "2001:db8::1:100".parse::<core::net::Ipv6Addr>().unwrap()
    ));
}

/// `Error::Forbidden::message` is "the message that carries it": a CLT_TIME inside the
/// LQ_QUERY of an ACTIVELEASEQUERY names the ACTIVELEASEQUERY (22), not LEASEQUERY (14).
/// Regression: `parse_filter` once hard-coded type 14.
#[test]
fn forbidden_option_inside_active_lq_query_names_the_active_message() {
    let bytes = message(
        ACTIVELEASEQUERY,
        &[client_id(), lq_query(1, &[iaaddr(&[]), tlv(46, &[0; 4])])],
    );
    let expected = Error::Forbidden {
        option: OptionCode::CltTime,
        message: MessageType::ActiveLeasequery,
    };
    assert_query_error(&bytes, expected, MALFORMED);
}
