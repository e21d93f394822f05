//! The server rules of protocol.md §3(a) over TCP, one test each, against the real `lqd`
//! binary on 127.0.0.1 (issue 5, item 7). Timers are shortened in the test configuration
//! (lqd accepts values below the RFC defaults with a warning, S-65); changes are injected
//! by appending rows to the Kea journal lqd tails (kea.md §13).
//!
//! Refusals: S-2/S-6, S-4, S-29, D-2, S-26, S-17. Selection: S-31..S-35, D-3, S-41, S-44,
//! S-46, S-37. Times: S-49/D-1/D-12. Active: S-52/S-53/S-56 catch-up, S-54 DataMissing,
//! S-58/D-15 keepalive, S-61 eviction, S-59 shutdown, D-8. Connections: S-8, S-9, S-10, S-12.

mod server_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::Ipv6Addr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use lqd::wire::build::{LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::{MessageType, OptionCode, StatusCode, Xid};
use server_common::{
    active, bulk, duid, query, server_now, Client, ClientData, Event, Lqd, Msg, Row, RELAY_ID,
    RELAY_OPTIONS, REMOTE_ID, REQUESTOR, SERVER_DUID,
};

/// Longest wait for one expected message.
const T: Duration = Duration::from_secs(5);
/// The relay's link-address and peer (kea.md §13).
const LINK2: &str = "2001:db8:2::1";
const PEER: &str = "fe80::200:ff:fe00:1001";
/// Relayed client: NA on link 2 and a /56 delegated prefix.
const RELAYED: u16 = 0x1001;
/// Direct client on link 2.
const DIRECT2: u16 = 0x2001;

fn ip(text: &str) -> Ipv6Addr {
    text.parse().expect("IPv6 address")
}

/// A refusal: LEASEQUERY-REPLY with `status`, the query's xid, SERVERID and the requestor's
/// CLIENTID, no binding (S-26, S-38).
fn assert_refusal(reply: &Msg, xid: u32, status: StatusCode) {
    assert_eq!(reply.kind(), MessageType::LeasequeryReply, "{reply:?}");
    assert_eq!(reply.xid(), xid, "the reply copies the xid (S-26)");
    assert_eq!(reply.status(), Some(status), "{reply:?}");
    assert_eq!(reply.server_id().as_deref(), Some(&SERVER_DUID[..]));
    assert_eq!(reply.client_id().as_deref(), Some(&REQUESTOR[..]));
    assert!(
        reply.client_data().is_none(),
        "a failed query has no binding (S-38)"
    );
}

/// A LEASEQUERY (14) with a hand-made LQ_QUERY: `query_type`, link `::`, `query_options`.
fn raw_leasequery(xid: u8, query_type: u8, query_options: &[u8]) -> Vec<u8> {
    let mut message = vec![14, 0, 0, xid, 0, 1, 0, 10];
    message.extend_from_slice(&REQUESTOR);
    let lq_len = u16::try_from(17 + query_options.len()).expect("short");
    message.extend_from_slice(&[0, 44]);
    message.extend_from_slice(&lq_len.to_be_bytes());
    message.push(query_type);
    message.extend_from_slice(&[0; 16]);
    message.extend_from_slice(query_options);
    let mut frame = u16::try_from(message.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&message);
    frame
}

/// S-2: Active Leasequery is off out of the box; S-6: an ACTIVELEASEQUERY then gets
/// LEASEQUERY-REPLY NotSupported (14) with its xid, and the connection closes. S-1: Bulk is
/// still served.
#[test]
fn s2_s6_active_off_by_default_is_not_supported() {
    let lqd = Lqd::start(&[], &[("active_enabled", ""), ("insecure_allowed", "")]);
    let mut c = lqd.connect();
    c.send(&active(0xab_cdef, &[OptionCode::LqBaseTime], None));
    let reply = c.msg(T);
    assert_refusal(&reply, 0xab_cdef, StatusCode::NotSupported);
    assert!(reply.base_time().is_some(), "100 was in the ORO (S-49)");
    c.expect_closed(T);

    let mut b = lqd.connect();
    b.send(&bulk(7, QueryOut::LinkAddress, "::", &[], &[]));
    let answer = b.bulk_answer();
    assert_eq!(answer.len(), 1, "no bindings: a bare REPLY (S-41)");
    assert_eq!(answer[0].status(), None);
}

/// S-4: enabling Active Leasequery alone is not enough in a TLS-less build; plain TCP needs
/// the separate insecure switch, else NotAllowed (10) and close.
#[test]
fn s4_active_over_plain_tcp_needs_the_insecure_switch() {
    let lqd = Lqd::start(&[], &[("active_enabled", "true"), ("insecure_allowed", "")]);
    let mut c = lqd.connect();
    c.send(&active(0x42, &[], None));
    let reply = c.msg(T);
    assert_refusal(&reply, 0x42, StatusCode::NotAllowed);
    assert!(reply.base_time().is_none(), "not asked for (D-12)");
    c.expect_closed(T);
}

/// S-29: LQ_END_TIME in an ACTIVELEASEQUERY → REPLY MalformedQuery (8) and close. D-2: an
/// ACTIVELEASEQUERY without CLIENTID → REPLY MalformedQuery with SERVERID, no CLIENTID, and
/// close.
#[test]
fn s29_end_time_and_d2_no_client_id_are_malformed() {
    let lqd = Lqd::start(&[], &[]);
    let mut c = lqd.connect();
    c.send(&query(&QueryMessage {
        msg_type: MessageType::ActiveLeasequery,
        xid: Xid::new(0x29).expect("xid"),
        client_id: &REQUESTOR,
        lq_query: None,
        oro: &[],
        start_time: None,
        end_time: Some(server_now()),
    }));
    assert_refusal(&c.msg(T), 0x29, StatusCode::MalformedQuery);
    c.expect_closed(T);

    // Header and an ORO [100]; no CLIENTID.
    let mut d = lqd.connect();
    d.send(&[0, 10, 22, 0x00, 0xd0, 0x02, 0, 6, 0, 2, 0, 100]);
    let reply = d.msg(T);
    assert_eq!(reply.kind(), MessageType::LeasequeryReply);
    assert_eq!(reply.xid(), 0xd002);
    assert_eq!(reply.status(), Some(StatusCode::MalformedQuery));
    assert_eq!(reply.server_id().as_deref(), Some(&SERVER_DUID[..]));
    assert_eq!(reply.client_id(), None, "nothing to echo (D-2)");
    d.expect_closed(T);
}

/// S-26: an unknown query type (9) → UnknownQueryType (7); a known type without its
/// required query-option → MalformedQuery (8). Each copies the xid, echoes CLIENTID, and
/// the connection closes (S-39).
#[test]
fn s26_unknown_query_type_and_missing_query_option() {
    let lqd = Lqd::start(&[], &[]);
    let cases = [
        (9, StatusCode::UnknownQueryType),
        (1, StatusCode::MalformedQuery), // QUERY_BY_ADDRESS without IAADDR
        (2, StatusCode::MalformedQuery), // QUERY_BY_CLIENTID without CLIENTID
        (3, StatusCode::MalformedQuery), // QUERY_BY_RELAY_ID without RELAY_ID
        (5, StatusCode::MalformedQuery), // QUERY_BY_REMOTE_ID without REMOTE_ID
    ];
    for (query_type, status) in cases {
        let mut c = lqd.connect();
        c.send(&raw_leasequery(0x60 + query_type, query_type, &[]));
        assert_refusal(&c.msg(T), u32::from(0x60 + query_type), status);
        c.expect_closed(T);
    }
}

/// S-17: STARTTLS in a build without TLS → REPLY (7) with SERVERID and status
/// TLSConnectionRefused (15), byte for byte as protocol.md §2.9, then close.
#[test]
fn s17_starttls_is_refused_exactly() {
    let lqd = Lqd::start(&[], &[]);
    let mut c = lqd.connect();
    c.send(&[0x00, 0x04, 0x17, 0x12, 0x34, 0x56]);
    let expected = [
        0x00, 0x18, 0x07, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x00,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x0d, 0x00, 0x02, 0x00, 0x0f,
    ];
    let mut got = [0u8; 26];
    c.stream.set_read_timeout(Some(T)).expect("timeout");
    c.stream.read_exact(&mut got).expect("the REPLY");
    assert_eq!(got, expected);
    let mut rest = [0u8; 16];
    let n = c.stream.read(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "closed after the REPLY, got {:02x?}", &rest[..n]);
}

/// The standard bindings: clients 1..3 on link 1, the relayed client (NA + /56 PD, relay
/// options of kea.md §13) and a direct client on link 2.
fn fixture() -> Lqd {
    let relayed = |row: Row| row.relayed(LINK2, PEER, RELAY_OPTIONS);
    let rows = [
        Row::na(1, "2001:db8:1::1", 1),
        Row::na(2, "2001:db8:1::2", 1),
        Row::na(3, "2001:db8:1::3", 1),
        relayed(Row::na(RELAYED, "2001:db8:2::1015", 2)),
        relayed(Row::pd(RELAYED, "2001:db8:9::", 56, 2)),
        Row::na(DIRECT2, "2001:db8:2::2001", 2),
    ];
    let lqd = Lqd::start(&rows, &[("queries_per_connection", "64")]);
    lqd.wait_clients(5);
    lqd
}

/// S-44: a CLIENT_DATA holds CLIENTID, its leases with lifetimes 0 < preferred ≤ valid, not
/// above the configured 3000/4000 s, and CLT_TIME; no CLIENT_LINK (S-37).
fn check_client_data(cd: &ClientData) {
    assert_eq!(cd.client_id.len(), 10, "{cd:?}");
    assert!(
        !cd.addresses.is_empty() || !cd.prefixes.is_empty(),
        "{cd:?}"
    );
    let lifetimes = cd
        .addresses
        .iter()
        .map(|a| (a.1, a.2))
        .chain(cd.prefixes.iter().map(|p| (p.2, p.3)));
    for (preferred, valid) in lifetimes {
        assert!(preferred > 0 && preferred <= 3000, "{cd:?}");
        assert!(valid > 0 && valid <= 4000 && preferred <= valid, "{cd:?}");
    }
    assert!(
        cd.clt_time.is_some_and(|t| t < 60),
        "CLT_TIME (S-44): {cd:?}"
    );
    assert!(!cd.codes.contains(&48), "no CLIENT_LINK over TCP (S-37)");
}

/// Send a Bulk query and check the answer's shape: REPLY(+CLIENT_DATA) → DATA… → DONE, or a
/// bare REPLY without status and without DONE (S-40, S-41, S-42, S-43). Returns the
/// bindings by client DUID.
fn ask(c: &mut Client, xid: u32, key: QueryOut<'_>, link: &str, oro: &[OptionCode]) -> Answer {
    c.send(&bulk(xid, key, link, oro, &[]));
    let answer = c.bulk_answer();
    let reply = &answer[0];
    assert_eq!(reply.xid(), xid, "{answer:?}");
    assert_eq!(reply.status(), None, "{answer:?}");
    assert_eq!(reply.server_id().as_deref(), Some(&SERVER_DUID[..]));
    assert_eq!(reply.client_id().as_deref(), Some(&REQUESTOR[..]));
    let mut bindings = BTreeMap::new();
    for (i, m) in answer.iter().enumerate() {
        assert_eq!(m.xid(), xid);
        let last = i + 1 == answer.len() && i > 0;
        if i > 0 {
            let kind = if last {
                MessageType::LeasequeryDone
            } else {
                MessageType::LeasequeryData
            };
            assert_eq!(m.kind(), kind, "{answer:?}");
            assert!(m.server_id().is_none() && m.client_id().is_none(), "S-42");
            assert_eq!(m.status(), None, "{m:?}");
        }
        if let Some(cd) = m.client_data() {
            assert!(!last, "DONE carries no binding");
            check_client_data(&cd);
            assert!(
                bindings.insert(cd.client_id.clone(), cd).is_none(),
                "sent twice"
            );
        } else {
            assert!(
                i == 0 && answer.len() == 1 || last,
                "one binding per message (S-40)"
            );
        }
    }
    bindings
}

type Answer = BTreeMap<Vec<u8>, ClientData>;

fn clients(answer: &Answer) -> BTreeSet<Vec<u8>> {
    answer.keys().cloned().collect()
}

fn set(ns: &[u16]) -> BTreeSet<Vec<u8>> {
    ns.iter().map(|&n| duid(n)).collect()
}

/// S-31: QUERY_BY_ADDRESS finds the client holding the address, or a delegated prefix that
/// contains it; a non-`::` link-address restricts to that link; nothing held → a bare REPLY
/// (S-41); an unknown link → NotConfigured (9) and close.
#[test]
fn s31_query_by_address_and_delegated_prefix() {
    let lqd = fixture();
    let mut c = lqd.connect();
    let a = ask(&mut c, 1, QueryOut::Address(ip("2001:db8:1::2")), "::", &[]);
    assert_eq!(clients(&a), set(&[2]));
    let cd = &a[&duid(2)];
    assert_eq!(cd.addresses.len(), 1);
    assert_eq!(cd.addresses[0].0, ip("2001:db8:1::2"));
    assert!(cd.prefixes.is_empty());
    let on_link = ask(
        &mut c,
        2,
        QueryOut::Address(ip("2001:db8:1::2")),
        "2001:db8:1::9",
        &[],
    );
    assert_eq!(clients(&on_link), set(&[2]));
    let elsewhere = ask(
        &mut c,
        3,
        QueryOut::Address(ip("2001:db8:1::2")),
        LINK2,
        &[],
    );
    assert!(elsewhere.is_empty(), "not on link 2");

    let pd = ask(
        &mut c,
        4,
        QueryOut::Address(ip("2001:db8:9:ff::1")),
        "::",
        &[],
    );
    assert_eq!(clients(&pd), set(&[RELAYED]));
    let cd = &pd[&duid(RELAYED)];
    assert_eq!(cd.prefixes.len(), 1, "{cd:?}");
    assert_eq!(
        (cd.prefixes[0].0, cd.prefixes[0].1),
        (ip("2001:db8:9::"), 56)
    );
    assert_eq!(
        cd.addresses.len(),
        1,
        "every lease of the client on the link (S-44)"
    );
    assert_eq!(cd.addresses[0].0, ip("2001:db8:2::1015"));
    assert!(cd.relay.is_none(), "47 not asked for (S-46)");

    let outside = ask(
        &mut c,
        5,
        QueryOut::Address(ip("2001:db8:9:100::1")),
        "::",
        &[],
    );
    assert!(outside.is_empty(), "outside the /56");
    let unleased = ask(
        &mut c,
        6,
        QueryOut::Address(ip("2001:db8:1::ff")),
        "::",
        &[],
    );
    assert!(unleased.is_empty(), "S-41");

    c.send(&bulk(
        7,
        QueryOut::Address(ip("2001:db8:1::2")),
        "2001:db8:7::1",
        &[],
        &[],
    ));
    assert_refusal(&c.msg(T), 7, StatusCode::NotConfigured);
    c.expect_closed(T);
}

/// Run `cases` (selection, link-address, expected clients) on `c`, no ORO, xids from `xid`.
fn expect_clients(c: &mut Client, xid: u32, cases: &[(QueryOut<'_>, &str, &[u16])]) {
    for (xid, &(key, link, want)) in (xid..).zip(cases) {
        let answer = ask(c, xid, key, link, &[]);
        assert_eq!(clients(&answer), set(want), "{key:?} on {link}");
        for cd in answer.values() {
            assert!(cd.relay.is_none(), "47 not asked for (S-46)");
        }
    }
}

/// S-32: QUERY_BY_CLIENTID with `::` searches every link, with a link-address only that
/// link; an unknown client gets a bare REPLY (S-41); S-46: no LQ_RELAY_DATA for a client
/// without relay data even when 47 is asked for.
#[test]
fn s32_s46_by_client_id() {
    let lqd = fixture();
    let mut c = lqd.connect();
    let relayed = duid(RELAYED);
    let (three, unknown) = (duid(3), duid(99));
    expect_clients(
        &mut c,
        1,
        &[
            (QueryOut::ClientId(&three), "::", &[3]),
            (QueryOut::ClientId(&relayed), "::", &[RELAYED]),
            (QueryOut::ClientId(&relayed), LINK2, &[RELAYED]),
            (QueryOut::ClientId(&relayed), "2001:db8:1::1", &[]),
            (QueryOut::ClientId(&unknown), "::", &[]),
        ],
    );
    let asked = [OptionCode::LqRelayData];
    let by_id = ask(&mut c, 9, QueryOut::ClientId(&three), "::", &asked);
    assert_eq!(by_id[&three].addresses[0].0, ip("2001:db8:1::3"));
    assert!(by_id[&three].relay.is_none(), "no relay info held (S-46)");
    c.send(&bulk(
        10,
        QueryOut::ClientId(&three),
        "2001:db8:7::1",
        &[],
        &[],
    ));
    assert_refusal(&c.msg(T), 10, StatusCode::NotConfigured);
    c.expect_closed(T);
}

/// S-33: QUERY_BY_RELAY_ID; S-35: QUERY_BY_REMOTE_ID, each with `::` and with a
/// link-address, and NotConfigured for a link-address outside every link; S-46:
/// LQ_RELAY_DATA only when the query ORO asks for 47, holding the relay's options.
#[test]
fn s33_s35_s46_by_relay_id_and_remote_id() {
    let lqd = fixture();
    let mut c = lqd.connect();
    let other_relay = [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x02];
    let other_remote = *b"\0\0\x11\x8bcm-0002";
    expect_clients(
        &mut c,
        1,
        &[
            (QueryOut::RelayId(&RELAY_ID), "::", &[RELAYED]),
            (QueryOut::RelayId(&RELAY_ID), LINK2, &[RELAYED]),
            (QueryOut::RelayId(&RELAY_ID), "2001:db8:1::1", &[]),
            (QueryOut::RelayId(&other_relay), "::", &[]),
            (QueryOut::RemoteId(&REMOTE_ID), "::", &[RELAYED]),
            (QueryOut::RemoteId(&REMOTE_ID), LINK2, &[RELAYED]),
            (QueryOut::RemoteId(&REMOTE_ID), "2001:db8:1::1", &[]),
            (QueryOut::RemoteId(&other_remote), "::", &[]),
        ],
    );
    let asked = [OptionCode::LqRelayData];
    let with = ask(&mut c, 20, QueryOut::RelayId(&RELAY_ID), "::", &asked);
    let cd = &with[&duid(RELAYED)];
    let (peer, link, codes) = cd.relay.clone().expect("LQ_RELAY_DATA (S-46)");
    assert_eq!((peer, link), (ip(PEER), ip(LINK2)));
    assert_eq!(
        codes,
        [18, 37, 53],
        "the relay's options, RELAY_MSG stripped"
    );
    assert_eq!(cd.codes.last(), Some(&47), "{cd:?}");
    for (xid, key) in [
        (21, QueryOut::RemoteId(&REMOTE_ID)),
        (22, QueryOut::RelayId(&RELAY_ID)),
    ] {
        let mut d = lqd.connect();
        d.send(&bulk(xid, key, "2001:db8:7::1", &[], &[]));
        assert_refusal(&d.msg(T), xid, StatusCode::NotConfigured);
        d.expect_closed(T);
    }
}

/// S-34: QUERY_BY_LINK_ADDRESS returns the bindings of the link; D-3: `::` returns all
/// bindings; a link-address outside every configured link → NotConfigured (9) and close.
#[test]
fn s34_d3_by_link_address_and_not_configured() {
    let lqd = fixture();
    let mut c = lqd.connect();
    let link1 = ask(&mut c, 1, QueryOut::LinkAddress, "2001:db8:1::1", &[]);
    assert_eq!(clients(&link1), set(&[1, 2, 3]));
    let link2 = ask(&mut c, 2, QueryOut::LinkAddress, LINK2, &[]);
    assert_eq!(clients(&link2), set(&[RELAYED, DIRECT2]));
    let all = ask(&mut c, 3, QueryOut::LinkAddress, "::", &[]);
    assert_eq!(clients(&all), set(&[1, 2, 3, RELAYED, DIRECT2]));
    let with_relay = ask(
        &mut c,
        4,
        QueryOut::LinkAddress,
        "::",
        &[OptionCode::LqRelayData],
    );
    for (id, cd) in &with_relay {
        assert_eq!(cd.relay.is_some(), *id == duid(RELAYED), "S-46: {cd:?}");
    }
    c.send(&bulk(5, QueryOut::LinkAddress, "2001:db8:7::1", &[], &[]));
    assert_refusal(&c.msg(T), 5, StatusCode::NotConfigured);
    c.expect_closed(T);
}

/// Every message of a Bulk answer for all bindings, with `query_oro` and `oro`.
fn all_messages(lqd: &Lqd, xid: u32, query_oro: &[OptionCode], oro: &[OptionCode]) -> Vec<Msg> {
    let mut c = lqd.connect();
    c.send(&bulk(xid, QueryOut::LinkAddress, "::", query_oro, oro));
    let answer = c.bulk_answer();
    assert_eq!(answer.len(), 6, "REPLY(+1), 4 DATA, DONE: {answer:?}");
    answer
}

/// S-49/D-1: LQ_BASE_TIME in every message of a Bulk answer (REPLY, DATA, DONE) when 100
/// is in the top-level ORO, and also when it is only in the LQ_QUERY's ORO; D-12: absent
/// when not asked for. Its value is the server's "now".
#[test]
fn s49_d1_d12_base_time_in_bulk_answers() {
    let lqd = fixture();
    let base = [OptionCode::LqBaseTime];
    for (xid, query_oro, oro) in [(1, &[][..], &base[..]), (2, &base[..], &[][..])] {
        for m in all_messages(&lqd, xid, query_oro, oro) {
            let t = m
                .base_time()
                .unwrap_or_else(|| panic!("BASE_TIME in {m:?}"));
            assert!(t.abs_diff(server_now()) <= 5, "BASE_TIME {t} is now");
        }
    }
    for m in all_messages(&lqd, 3, &[OptionCode::LqRelayData], &[]) {
        assert_eq!(m.base_time(), None, "not requested (D-12): {m:?}");
    }
}

/// S-49/D-1 for Active: 100 in the LQ_QUERY ORO switches LQ_BASE_TIME on for the REPLY and
/// every DATA, and so does 100 in the top-level ORO of a query without LQ_QUERY; without
/// either (D-12) no message carries one. S-46/D-1: LQ_RELAY_DATA only where 47 is asked
/// for, here in the top-level ORO of a query without LQ_QUERY.
#[test]
fn s49_d1_d12_base_time_in_active_streams() {
    let lqd = Lqd::start(&[], &[]);
    let all = |oro| LqQueryOut {
        query: QueryOut::LinkAddress,
        link_address: Ipv6Addr::UNSPECIFIED,
        oro,
    };
    let base = [OptionCode::LqBaseTime];
    let both = [OptionCode::LqRelayData, OptionCode::LqBaseTime];
    // (xid, LQ_QUERY ORO, top-level ORO, BASE_TIME expected, relay data expected)
    let cases = [
        (1, Some(&base[..]), &[][..], true, false),
        (2, Some(&[][..]), &[][..], false, false),
        (3, None, &both[..], true, true),
    ];
    let mut streams = Vec::new();
    for (xid, query_oro, oro, with_base, with_relay) in cases {
        let mut c = lqd.connect();
        c.send(&query(&QueryMessage {
            msg_type: MessageType::ActiveLeasequery,
            xid: Xid::new(xid).expect("xid"),
            client_id: &REQUESTOR,
            lq_query: query_oro.map(all),
            oro,
            start_time: None,
            end_time: None,
        }));
        let reply = c.msg(T);
        assert_eq!(
            (reply.kind(), reply.status()),
            (MessageType::LeasequeryReply, None)
        );
        assert_eq!(reply.base_time().is_some(), with_base, "{reply:?}");
        streams.push((c, with_base, with_relay));
    }
    lqd.append(&[Row::na(5, "2001:db8:1::5", 1).relayed("2001:db8:1::1", PEER, RELAY_OPTIONS)]);
    for (c, with_base, with_relay) in &mut streams {
        let data = c.msg(T);
        assert_eq!(data.kind(), MessageType::LeasequeryData);
        let cd = data.client_data().expect("binding");
        assert_eq!(cd.client_id, duid(5));
        assert_eq!(data.base_time().is_some(), *with_base, "{data:?}");
        assert_eq!(cd.relay.is_some(), *with_relay, "{cd:?}");
    }
}

/// D-11: a Bulk query with LQ_START_TIME and/or LQ_END_TIME selects the bindings whose last
/// change lies in [START_TIME, END_TIME] (server time, both inclusive). A and C changed
/// again after `start`; B last changed before it.
fn check_windows(lqd: &Lqd, start: u32) {
    let mut c = lqd.connect();
    let windows = [
        (Some(start), None, &[0xa, 0xc, 0xd, 0xe][..]),
        (None, Some(start - 1), &[0xb][..]),
        (Some(start), Some(start - 1), &[][..]),
    ];
    for (xid, (start_time, end_time, want)) in (0x11..).zip(windows) {
        c.send(&query(&QueryMessage {
            msg_type: MessageType::Leasequery,
            xid: Xid::new(xid).expect("xid"),
            client_id: &REQUESTOR,
            lq_query: Some(LqQueryOut {
                query: QueryOut::LinkAddress,
                link_address: Ipv6Addr::UNSPECIFIED,
                oro: &[],
            }),
            oro: &[],
            start_time,
            end_time,
        }));
        let ids: BTreeSet<Vec<u8>> = c
            .bulk_answer()
            .iter()
            .filter_map(Msg::client_data)
            .map(|cd| cd.client_id)
            .collect();
        assert_eq!(ids, set(want), "window {start_time:?}..={end_time:?}");
    }
}

/// The DATA of an Active catch-up up to its CatchUpComplete (S-53): one binding per client
/// (S-56), each with LQ_BASE_TIME (S-49).
fn catch_up(c: &mut Client, xid: u32) -> Answer {
    let mut caught = BTreeMap::new();
    loop {
        let m = c.msg(T);
        assert_eq!(
            (m.kind(), m.xid()),
            (MessageType::LeasequeryData, xid),
            "{m:?}"
        );
        assert!(m.base_time().is_some(), "S-49");
        if m.status() == Some(StatusCode::CatchUpComplete) {
            assert!(m.client_data().is_none(), "{m:?}");
            return caught;
        }
        assert_eq!(m.status(), None, "{m:?}");
        let cd = m.client_data().expect("a binding");
        let id = cd.client_id.clone();
        assert!(
            caught.insert(id, cd).is_none(),
            "one message per binding (S-56)"
        );
    }
}

/// S-52/S-53/S-56: an ACTIVELEASEQUERY with LQ_START_TIME gets its REPLY, then exactly one
/// DATA per client changed at or after the start time — its current state — then DATA
/// CatchUpComplete (13), then live DATA. D-11 on the same history.
#[test]
fn s52_s53_s56_catch_up_then_live() {
    let second = Duration::from_millis(1100);
    let row = |n: u16| Row::na(n, &format!("2001:db8:1::{n:x}"), 1);
    let renewed = |n: u16| Row {
        valid: 5000,
        pref: 4500,
        ..row(n)
    };
    let lqd = Lqd::start(&[row(0xa)], &[]);
    lqd.wait_clients(1);
    std::thread::sleep(second);
    lqd.append(&[row(0xb)]);
    lqd.wait_clients(2);
    std::thread::sleep(second);
    // A and B changed at least a second before `start`; lqd stamps later rows at or after it.
    let start = lqd.base_time();
    lqd.append(&[row(0xc), row(0xd)]);
    lqd.wait_clients(4);
    std::thread::sleep(second);
    lqd.append(&[row(0xe), renewed(0xa), renewed(0xc)]);
    lqd.wait_bindings(|b| {
        b.len() == 5 && b.iter().filter(|cd| cd.addresses[0].2 > 4000).count() == 2
    });
    check_windows(&lqd, start);

    let mut c = lqd.connect();
    c.send(&active(0x52, &[OptionCode::LqBaseTime], Some(start)));
    let reply = c.msg(T);
    assert_eq!(
        (reply.kind(), reply.status()),
        (MessageType::LeasequeryReply, None)
    );
    assert!(reply.base_time().is_some() && reply.client_id().is_some());
    let caught = catch_up(&mut c, 0x52);
    let ids: BTreeSet<Vec<u8>> = caught.keys().cloned().collect();
    assert_eq!(
        ids,
        set(&[0xa, 0xc, 0xd, 0xe]),
        "changed at or after the start time"
    );
    for n in [0xa, 0xc] {
        let valid = caught[&duid(n)].addresses[0].2;
        assert!(
            valid > 4000 && valid <= 5000,
            "current state (S-56): {valid}"
        );
    }
    lqd.append(&[row(0xf)]);
    let live = c.msg(T);
    assert_eq!(
        (live.kind(), live.status()),
        (MessageType::LeasequeryData, None)
    );
    assert_eq!(live.client_data().expect("binding").client_id, duid(0xf));
}

/// S-54: LQ_START_TIME before lqd's history → REPLY DataMissing (12) with LQ_BASE_TIME =
/// now even though the ORO did not ask for it; catch-up is over and live DATA follows
/// (without BASE_TIME, D-12). S-53: a catch-up with nothing to send still ends with DATA
/// CatchUpComplete.
#[test]
fn s54_s53_start_before_history_is_data_missing() {
    let lqd = Lqd::start(&[], &[]);
    let now = lqd.base_time();
    let mut missing = lqd.connect();
    missing.send(&active(0x54, &[], Some(now - 100_000)));
    let reply = missing.msg(T);
    assert_eq!(reply.kind(), MessageType::LeasequeryReply);
    assert_eq!(reply.xid(), 0x54);
    assert_eq!(reply.status(), Some(StatusCode::DataMissing));
    let base = reply
        .base_time()
        .expect("BASE_TIME with DataMissing (S-54)");
    assert!(base.abs_diff(now) <= 5, "BASE_TIME = now");
    assert_eq!(reply.client_id().as_deref(), Some(&REQUESTOR[..]));
    assert!(reply.client_data().is_none());

    let mut empty = lqd.connect();
    empty.send(&active(0x53, &[], Some(now)));
    let reply = empty.msg(T);
    assert_eq!(
        (reply.kind(), reply.status()),
        (MessageType::LeasequeryReply, None)
    );
    let done = empty.msg(T);
    assert_eq!(
        (done.kind(), done.xid()),
        (MessageType::LeasequeryData, 0x53)
    );
    assert_eq!(done.status(), Some(StatusCode::CatchUpComplete), "{done:?}");
    assert!(done.client_data().is_none());

    lqd.append(&[Row::na(2, "2001:db8:1::2", 1)]);
    for c in [&mut missing, &mut empty] {
        let data = c.msg(T);
        assert_eq!(
            (data.kind(), data.status()),
            (MessageType::LeasequeryData, None)
        );
        let cd = data.client_data().expect("a live binding");
        assert_eq!(cd.client_id, duid(2));
        check_client_data(&cd);
        assert_eq!(data.base_time(), None, "D-12: {data:?}");
    }
}

/// S-25: a message that has no business on a leasequery connection (SOLICIT) closes it
/// without an answer; S-24: a LEASEQUERY-REPLY sent to the server is discarded and the
/// connection goes on.
#[test]
fn s25_s24_foreign_messages() {
    let lqd = Lqd::start(&[], &[]);
    let mut c = lqd.connect();
    c.send(&[0, 4, 1, 0, 0, 1]);
    c.expect_closed(T);
    let mut d = lqd.connect();
    d.send(&[0, 4, 15, 0, 0, 2]);
    works(&mut d, 3);
}

/// Messages of an Active stream for `window` after its REPLY, with their arrival times.
fn collect_for(mut c: Client, window: Duration) -> Vec<(Duration, Msg)> {
    let reply = c.msg(T);
    assert_eq!(
        (reply.kind(), reply.status()),
        (MessageType::LeasequeryReply, None)
    );
    let t0 = Instant::now();
    let mut got = Vec::new();
    while let Some(left) = window.checked_sub(t0.elapsed()) {
        match c.next(left) {
            Event::Msg(m) => got.push((t0.elapsed(), m)),
            Event::Timeout => break,
            Event::Closed | Event::Reset => panic!("closed"),
        }
    }
    got
}

/// S-58/D-15: with ACTIVE_LQ_IDLE_TIMEOUT = 1 s and no changes, a LEASEQUERY-DATA without
/// CLIENT_DATA (only LQ_BASE_TIME when asked, nothing otherwise) comes about every second,
/// never sooner than 0.8 s after the previous message.
#[test]
fn s58_d15_keepalive_every_idle_timeout() {
    let lqd = Lqd::start(&[], &[("active_idle_timeout_s", "1")]);
    let streams: Vec<_> = [(0x58, vec![OptionCode::LqBaseTime]), (0x59, vec![])]
        .into_iter()
        .map(|(xid, oro)| {
            let mut c = lqd.connect();
            c.send(&active(xid, &oro, None));
            (
                xid,
                std::thread::spawn(move || collect_for(c, Duration::from_millis(3500))),
            )
        })
        .collect();
    for (xid, stream) in streams {
        let got = stream.join().expect("reader");
        assert!(got.len() >= 2, "at least two keepalives in 3.5 s: {got:?}");
        let mut previous = Duration::ZERO;
        for (at, m) in &got {
            assert!(
                *at - previous >= Duration::from_millis(800),
                "too soon: {got:?}"
            );
            previous = *at;
            assert_eq!((m.kind(), m.xid()), (MessageType::LeasequeryData, xid));
            assert!(m.base_time().is_none_or(|t| t.abs_diff(server_now()) <= 5));
            let want: &[u16] = if xid == 0x58 { &[100] } else { &[] };
            assert_eq!(
                m.codes(),
                want,
                "a keepalive has no CLIENT_DATA or status: {m:?}"
            );
        }
    }
}

/// A row of client `n` whose relay data is padded (an 800-octet INTERFACE_ID) so that each
/// DATA is about 1 KiB when 47 is asked for.
fn padded(n: u16) -> Row {
    let options = format!("0x00120320{}", "41".repeat(800));
    Row::na(n, &format!("2001:db8:1::{n:x}"), 1).relayed("2001:db8:1::1", PEER, &options)
}

const EVICT_CLIENTS: u16 = 3000;
const READERS: usize = 50;

/// A requestor that reads every DATA, after pausing `pause` once the rows are written;
/// returns how many distinct clients it saw.
fn reader(port: u16, ready: Arc<Barrier>, pause: Duration) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut c = Client::connect(port);
        c.send(&active(
            0x61,
            &[OptionCode::LqBaseTime, OptionCode::LqRelayData],
            None,
        ));
        assert_eq!(c.msg(T).kind(), MessageType::LeasequeryReply);
        ready.wait();
        std::thread::sleep(pause);
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(12);
        while seen.len() < usize::from(EVICT_CLIENTS) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match c.next(left) {
                Event::Msg(m) => {
                    if let Some(cd) = m.client_data() {
                        assert!(cd.relay.is_some(), "47 asked for (D-1, S-46)");
                        seen.insert(cd.client_id);
                    }
                }
                Event::Closed | Event::Reset | Event::Timeout => break,
            }
        }
        seen.len()
    })
}

/// S-61: with ACTIVE_LQ_SEND_TIMEOUT = 1 s, a requestor that stops reading is closed by the
/// server once its socket stays full, while 50 requestors that read — one of them after a
/// pause shorter than the timeout — receive every change (each changed client at least
/// once: S-51 allows coalescing). lqd still exits cleanly.
#[test]
fn s61_blocked_requestor_is_evicted_others_get_everything() {
    let mut lqd = Lqd::start(
        &[],
        &[
            ("connections_max", "400"),
            ("active_send_timeout_s", "1"),
            ("socket_send_buffer", "4096"),
            ("send_buffer", "65537"),
        ],
    );
    let ready = Arc::new(Barrier::new(READERS + 1));
    // The last reader pauses for less than the send timeout: it must not be evicted.
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let pause = Duration::from_millis(if i + 1 == READERS { 400 } else { 0 });
            reader(lqd.port, Arc::clone(&ready), pause)
        })
        .collect();
    let mut stuck = Client::connect_small_window(lqd.port, 4096);
    stuck.send(&active(0x66, &[OptionCode::LqRelayData], None));
    assert_eq!(stuck.msg(T).kind(), MessageType::LeasequeryReply);
    ready.wait();
    let rows: Vec<Row> = (1..=EVICT_CLIENTS).map(padded).collect();
    lqd.append(&rows);
    let appended = Instant::now();
    for (i, r) in readers.into_iter().enumerate() {
        let seen = r.join().expect("reader");
        assert_eq!(
            seen,
            usize::from(EVICT_CLIENTS),
            "reader {i} missed changes"
        );
    }
    // Start reading 3 s after the rows: by then the send timeout has long run out.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(appended.elapsed()));
    let mut data = 0;
    loop {
        match stuck.next(T) {
            Event::Msg(m) => {
                assert_eq!(m.kind(), MessageType::LeasequeryData, "{m:?}");
                data += usize::from(m.client_data().is_some());
            }
            Event::Closed | Event::Reset => break,
            Event::Timeout => panic!("the blocked requestor was not closed ({data} DATA)"),
        }
    }
    assert!(
        data < usize::from(EVICT_CLIENTS),
        "evicted before the end: {data} DATA"
    );
    assert!(
        lqd.terminate().success(),
        "lqd exits cleanly after an eviction"
    );
}

/// S-59: on SIGTERM every Active query ends with LEASEQUERY-DONE QueryTerminated (11) and
/// LQ_BASE_TIME, the connection closes after it, an idle connection just closes, and lqd
/// exits 0.
#[test]
fn s59_sigterm_ends_every_active_query() {
    let mut lqd = Lqd::start(&[], &[]);
    let mut streams: Vec<(u32, Client)> = (0..5)
        .map(|i| {
            let mut c = lqd.connect();
            let oro: &[OptionCode] = if i % 2 == 0 {
                &[OptionCode::LqBaseTime]
            } else {
                &[]
            };
            c.send(&active(0x590 + i, oro, None));
            assert_eq!(c.msg(T).kind(), MessageType::LeasequeryReply);
            (0x590 + i, c)
        })
        .collect();
    let mut idle = lqd.connect();
    let status = lqd.terminate();
    for (xid, c) in &mut streams {
        let done = c.msg(T);
        assert_eq!(
            (done.kind(), done.xid()),
            (MessageType::LeasequeryDone, *xid)
        );
        assert_eq!(done.status(), Some(StatusCode::QueryTerminated));
        let base = done.base_time().expect("LQ_BASE_TIME in the DONE (S-59)");
        assert!(base.abs_diff(server_now()) <= 5);
        c.expect_closed(T);
    }
    idle.expect_closed(T);
    assert!(status.success(), "lqd exited with {status}");
}

/// D-8: a second query on an Active connection gets REPLY NotAllowed (10) with its own xid;
/// the Active stream goes on.
#[test]
fn d8_second_query_on_an_active_connection() {
    let lqd = Lqd::start(&[], &[]);
    let mut c = lqd.connect();
    c.send(&active(0x81, &[], None));
    assert_eq!(c.msg(T).kind(), MessageType::LeasequeryReply);
    c.send(&bulk(
        0x82,
        QueryOut::LinkAddress,
        "::",
        &[],
        &[OptionCode::LqBaseTime],
    ));
    let refusal = c.msg(T);
    assert_refusal(&refusal, 0x82, StatusCode::NotAllowed);
    assert!(
        refusal.base_time().is_some(),
        "the refused query asked for it"
    );
    c.send(&active(0x83, &[], None));
    assert_refusal(&c.msg(T), 0x83, StatusCode::NotAllowed);
    lqd.append(&[Row::na(8, "2001:db8:1::8", 1)]);
    let data = c.msg(T);
    assert_eq!(
        (data.kind(), data.xid()),
        (MessageType::LeasequeryData, 0x81)
    );
    let cd = data.client_data().expect("binding");
    assert_eq!(cd.client_id, duid(8));
    assert_eq!(cd.addresses[0].0, ip("2001:db8:1::8"));
    check_client_data(&cd);
}

/// A query on `c` that must be answered (a bare REPLY: nothing matches).
fn works(c: &mut Client, xid: u32) {
    c.send(&bulk(xid, QueryOut::ClientId(&duid(7)), "::", &[], &[]));
    let reply = c.msg(T);
    assert_eq!(
        (reply.kind(), reply.xid()),
        (MessageType::LeasequeryReply, xid)
    );
}

/// S-8: with connections_max = 3 the 4th connection is closed at once while the first three
/// keep working; closing one makes room again. Checked with one worker and with two.
#[test]
fn s8_connection_cap_closes_the_extra_connection() {
    for workers in ["1", "2"] {
        let lqd = Lqd::start(&[], &[("connections_max", "3"), ("workers", workers)]);
        let mut open: Vec<Client> = (0..3).map(|_| lqd.connect()).collect();
        for (xid, c) in (1..).zip(&mut open) {
            works(c, xid);
        }
        let mut fourth = lqd.connect();
        let t0 = Instant::now();
        let got = fourth.next(Duration::from_secs(2));
        assert!(
            matches!(got, Event::Closed),
            "4th, {workers} worker(s): {got:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "closed at once ({workers} workers)"
        );
        for (xid, c) in (10..).zip(&mut open) {
            works(c, xid);
        }
        drop(open.pop());
        std::thread::sleep(Duration::from_millis(200));
        works(&mut lqd.connect(), 20);
    }
}

/// S-9: a requestor outside the allow-list is closed at once; one inside is served.
#[test]
fn s9_allow_list_closes_other_sources() {
    let denied = Lqd::start(&[], &[("allow", "[\"10.0.0.0/8\"]")]);
    let t0 = Instant::now();
    let mut c = denied.connect();
    c.expect_closed(Duration::from_secs(2));
    assert!(t0.elapsed() < Duration::from_secs(1), "closed at once");
    // A requestor that sends its query at once may see a reset instead (unread data).
    let mut d = denied.connect();
    d.send(&bulk(1, QueryOut::LinkAddress, "::", &[], &[]));
    assert!(matches!(
        d.next(Duration::from_secs(2)),
        Event::Closed | Event::Reset
    ));
    let allowed = Lqd::start(&[], &[("allow", "[\"10.0.0.0/8\", \"127.0.0.0/8\"]")]);
    works(&mut allowed.connect(), 2);
}

/// S-10: with BULK_LQ_DATA_TIMEOUT = 1 s, a connection that sends nothing, or only part of
/// a query, is closed after about a second (not before 0.8 s, by 3 s); an Active query that
/// is running is not.
#[test]
fn s10_no_query_within_bulk_data_timeout() {
    let lqd = Lqd::start(&[], &[("bulk_data_timeout_s", "1")]);
    let t0 = Instant::now();
    let mut silent = lqd.connect();
    let mut partial = lqd.connect();
    partial.send(&[0, 40, 14, 0]);
    let mut streaming = lqd.connect();
    streaming.send(&active(0x10, &[], None));
    assert_eq!(streaming.msg(T).kind(), MessageType::LeasequeryReply);
    for c in [&mut silent, &mut partial] {
        c.expect_closed(Duration::from_secs(3));
        let at = t0.elapsed();
        assert!(at >= Duration::from_millis(800), "closed too soon: {at:?}");
        assert!(at <= Duration::from_secs(3), "closed too late: {at:?}");
    }
    std::thread::sleep(Duration::from_millis(500));
    lqd.append(&[Row::na(1, "2001:db8:1::1", 1)]);
    let data = streaming.msg(T);
    assert_eq!(
        data.kind(),
        MessageType::LeasequeryData,
        "the Active query goes on"
    );
}

/// S-12: queries sent back to back in one write are answered one after the other, the
/// second's REPLY after the first's DONE; with queries_per_connection = 2 the third gets
/// REPLY QueryTerminated (11) and the connection closes.
#[test]
fn s12_queries_in_one_write_in_order_up_to_the_limit() {
    let rows: Vec<Row> = (1..=3)
        .map(|n| Row::na(n, &format!("2001:db8:1::{n}"), 1))
        .collect();
    let lqd = Lqd::start(&rows, &[("queries_per_connection", "2")]);
    lqd.wait_clients(3);
    let mut c = lqd.connect();
    let mut three = bulk(1, QueryOut::LinkAddress, "::", &[], &[]);
    three.extend(bulk(2, QueryOut::ClientId(&duid(2)), "::", &[], &[]));
    three.extend(bulk(3, QueryOut::LinkAddress, "::", &[], &[]));
    c.send(&three);
    let first = c.bulk_answer();
    assert_eq!(first.len(), 4, "REPLY, DATA, DATA, DONE: {first:?}");
    assert!(first.iter().all(|m| m.xid() == 1), "{first:?}");
    let second = c.bulk_answer();
    assert_eq!(second.len(), 2, "REPLY, DONE: {second:?}");
    assert!(second.iter().all(|m| m.xid() == 2), "{second:?}");
    assert_eq!(second[0].client_data().expect("binding").client_id, duid(2));
    assert_refusal(&c.msg(T), 3, StatusCode::QueryTerminated);
    c.expect_closed(T);
}

/// S-62: a Bulk answer to a requestor that stops reading is closed after
/// BULK_LQ_DATA_TIMEOUT (1 s here) without progress — not after ACTIVE_LQ_SEND_TIMEOUT
/// (30 s here), which is for Active queries (S-61; tuning/lqd.example.toml documents
/// bulk_data_timeout_s as "wait for a query / a blocked Bulk send").
#[test]
fn s62_blocked_bulk_send_closed_after_bulk_data_timeout() {
    let rows: Vec<Row> = (1..=600).map(padded).collect();
    let lqd = Lqd::start(
        &rows,
        &[
            ("bulk_data_timeout_s", "1"),
            ("active_send_timeout_s", "30"),
            ("socket_send_buffer", "4096"),
            ("send_buffer", "65537"),
        ],
    );
    lqd.wait_clients(600);
    let mut c = Client::connect_small_window(lqd.port, 4096);
    c.send(&bulk(
        0x62,
        QueryOut::LinkAddress,
        "::",
        &[OptionCode::LqRelayData],
        &[],
    ));
    std::thread::sleep(Duration::from_secs(3));
    let mut data = 0;
    loop {
        match c.next(T) {
            Event::Msg(m) => {
                assert_ne!(
                    m.kind(),
                    MessageType::LeasequeryDone,
                    "sent to the end: {data}"
                );
                data += 1;
            }
            Event::Closed | Event::Reset => break,
            Event::Timeout => panic!("neither closed nor finished after {data} messages"),
        }
    }
    assert!(data < 600, "closed before the end: {data}");
}

/// S-10 after a first query: a requestor that was answered once and then sends only part of
/// its next query is stuck "while reading a query" too, and is closed after
/// BULK_LQ_DATA_TIMEOUT (1 s here; by 3 s).
#[test]
fn s10_partial_query_after_an_answered_one() {
    let lqd = Lqd::start(&[], &[("bulk_data_timeout_s", "1")]);
    let mut c = lqd.connect();
    works(&mut c, 1);
    c.send(&[0, 40, 14]);
    let t0 = Instant::now();
    let got = c.next(Duration::from_secs(4));
    assert!(matches!(got, Event::Closed), "got {got:?}");
    assert!(t0.elapsed() <= Duration::from_secs(3), "{:?}", t0.elapsed());
}
