//! Kea lease6 journals written from kea.md (§3 headers, §4 escaping, §6 relay info, §7 life
//! cycle, §13 real rows) read through the whole ingest path — tailer, router, bounded
//! queues, shards — and compared with an independent last-row-wins model of Kea's table.
//!
//! Fixtures (tests/fixtures/kea/): the same leases as Kea 2.0 (15 columns), 2.2 (17), 2.4
//! to 3.2 (18, `relay-info`), 3.3 (18, control and non-ASCII bytes escaped) and a future
//! Kea with an unknown trailing column; Kea ≥ 2.7.7 states; malformed rows.

mod ingest_common;

use std::net::Ipv6Addr;

use ingest_common::{
    append, append_bytes, assert_matches, final_rows, fixture, now, tail_text, until, Ingest, Lab,
    Model, Options, H15, H17, H18,
};
use lqd::ingest::row::server_time;
use lqd::ingest::source::Start;
use lqd::store::model::{Binding, LeaseState, INFINITE};
use lqd::wire::client_data::LeaseKind;
use lqd::wire::{Opt, OptionCode, OptionList, RelayMsgBody};

const GENERATIONS: [&str; 5] = [
    "leases6-2.0-15col.csv",
    "leases6-2.2-17col.csv",
    "leases6-2.4-18col.csv",
    "leases6-3.3-18col.csv",
    "leases6-future-19col.csv",
];

/// Data rows in each generation fixture.
const GENERATION_ROWS: u64 = 21;

fn duid(text: &str) -> Vec<u8> {
    text.split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("hex"))
        .collect()
}

fn addr(text: &str) -> Ipv6Addr {
    text.parse().expect("IPv6 address")
}

fn lease_of(binding: &Binding, kind: LeaseKind) -> lqd::store::model::Lease {
    *binding
        .leases()
        .iter()
        .find(|l| l.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {:?}", binding.leases()))
}

#[test]
fn headers_are_byte_exact() {
    // kea.md §3: 139, 160 and 168 octets including the newline.
    for (name, header, len) in [
        ("leases6-2.0-15col.csv", H15, 139),
        ("leases6-2.2-17col.csv", H17, 160),
        ("leases6-2.4-18col.csv", H18, 168),
        ("leases6-3.3-18col.csv", H18, 168),
    ] {
        let text = fixture(name);
        let first = &text[..=text.find('\n').expect("header")];
        assert_eq!(first, format!("{header}\n"), "{name}");
        assert_eq!(first.len(), len, "{name}");
    }
}

#[test]
fn every_column_generation_gives_the_same_store() {
    let mut reference = None;
    for name in GENERATIONS {
        let text = fixture(name);
        let (_lab, ingest) = tail_text(&text, Options::default());
        let stats = ingest.router.stats();
        assert_eq!(stats.rejected_total(), 0, "{name}: {:?}", stats.rejected);
        assert_eq!(stats.rows, GENERATION_ROWS, "{name}");
        assert_eq!(
            stats.unknown_subnet, 1,
            "{name}: subnet 3 is not configured"
        );
        let model = Model::of_text(&text);
        assert_eq!(model.clients.len(), 10, "{name}: the model reads every row");
        assert_matches(&ingest, &model, now());
        let bindings = ingest.bindings();
        match &reference {
            None => reference = Some(bindings),
            Some(first) => assert_eq!(&bindings, first, "{name} differs from the 15-column file"),
        }
    }
}

#[test]
fn kea_md_sample_rows_give_the_documented_leases() {
    let (_lab, ingest) = tail_text(&fixture("leases6-2.2-17col.csv"), Options::default());
    let now = now();
    // The §13 NA life cycle ends with the flush row: ended, zero lifetimes, state 2.
    let d5 = duid("00:01:00:01:32:9d:f0:19:00:0c:01:02:03:05");
    let b = ingest.binding(&d5, 1).expect("client 05");
    let na = lease_of(&b, LeaseKind::Address(addr("2001:db8:1::1001")));
    assert_ne!(na.ended_at, 0);
    assert_eq!(na.state, LeaseState::ExpiredReclaimed);
    assert_eq!((na.entry(now).preferred, na.entry(now).valid), (0, 0));
    // Its prefix was renewed a second later: CLTT = expire − valid = 1795896218.
    let pd = lease_of(&b, LeaseKind::Prefix(addr("2001:db8:8:1::"), 64));
    assert!(pd.is_live(now));
    assert_eq!(pd.valid_until, server_time(1_795_896_230));
    assert_eq!(pd.preferred_until, server_time(1_795_896_228));
    assert_eq!(pd.entry(now).valid, 130);
    assert_eq!(b.cltt, server_time(1_795_896_218));
    // Infinite lease: valid 4294967295, u64 expire 6090863745.
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:78"), 1)
        .expect("client 78");
    let inf = lease_of(&b, LeaseKind::Address(addr("2001:db8:1::78")));
    assert_eq!((inf.valid_until, inf.preferred_until), (INFINITE, INFINITE));
    assert_eq!(inf.entry(now).valid, INFINITE);
    assert_eq!(b.cltt, server_time(6_090_863_745 - 4_294_967_295));
    // The release of 100a (valid 0, state 0): ended, stamped with the time it was read.
    let b = ingest
        .binding(&duid("00:01:00:01:32:9d:f0:19:00:0c:01:02:03:0e"), 1)
        .expect("client 0e");
    let released = lease_of(&b, LeaseKind::Address(addr("2001:db8:1::100a")));
    assert_eq!(released.ended_at, now);
    // An unknown subnet: stored, link unknown.
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:7e"), 3)
        .expect("client 7e on subnet 3");
    assert_eq!(b.link_prefix, None);
    assert!(lease_of(&b, LeaseKind::Address(addr("2001:db8:1::7e"))).is_live(now));
    // IA_TA is an address lease.
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:7f"), 1)
        .expect("client 7f");
    assert!(lease_of(&b, LeaseKind::Address(addr("2001:db8:1::7f"))).is_live(now));
}

#[test]
fn first_start_loads_the_journal_as_a_snapshot() {
    // No checkpoint: X is read with last-row-wins before tailing (kea.md §8.3).
    let text = fixture("leases6-2.2-17col.csv");
    let lab = Lab::new();
    std::fs::write(&lab.journal, &text).expect("X");
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    let finals = final_rows(&text);
    assert_eq!(ingest.start, Start::Snapshot { rows: finals.len() });
    assert_eq!(ingest.router.stats().rows, finals.len() as u64);
    assert_matches(&ingest, &Model::of(&finals), now());
    // Then it tails X from where the snapshot stopped.
    let row = "2001:db8:1::7e,00:03:00:01:02:00:00:00:00:7e,3600,1795900060,3,1800,0,7,128,0,0,\
,,0,,,";
    append(&lab.journal, &format!("{row}\n"));
    assert_eq!(ingest.poll(now()), 1);
    let mut all = finals;
    all.extend(ingest_common::parse_journal(&format!("{H17}\n{row}\n")));
    assert_matches(&ingest, &Model::of(&all), now());
}

/// Relay info stored for the relay_client.py client of kea.md §13.
fn assert_relay_client(binding: &Binding, name: &str) {
    let relay = &binding.relay;
    assert_eq!(
        relay.relay_id.as_slice(),
        [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x01],
        "{name}"
    );
    assert_eq!(
        relay.remote_id.as_slice(),
        b"\x00\x00\x11\x8bcm-0001",
        "{name}"
    );
    assert_eq!(relay.link_address, addr("2001:db8:2::1"), "{name}");
    assert_eq!(relay.peer_address, addr("fe80::200:ff:fe00:1001"), "{name}");
    let chain = relay.relay_forw.as_slice();
    assert_eq!((chain[0], chain[1]), (12, 0), "{name}: RELAY-FORW, hop 0");
    assert_eq!(
        &chain[2..18],
        &addr("2001:db8:2::1").octets(),
        "{name}: link"
    );
    assert_eq!(
        &chain[18..34],
        &addr("fe80::200:ff:fe00:1001").octets(),
        "{name}"
    );
    let options = OptionList::parse(&chain[34..], 1).expect("the relay's options decode");
    assert!(
        matches!(
            options.find(OptionCode::InterfaceId),
            Some(Opt::InterfaceId(b"ge-0/0/1"))
        ),
        "{name}"
    );
    let Some(Opt::RemoteId(remote)) = options.find(OptionCode::RemoteId) else {
        panic!("{name}: no REMOTE_ID in the chain")
    };
    assert_eq!((remote.enterprise(), remote.id()), (4491, &b"cm-0001"[..]));
    let Some(Opt::RelayId(relay_id)) = options.find(OptionCode::RelayId) else {
        panic!("{name}: no RELAY_ID in the chain")
    };
    assert_eq!(relay_id.bytes(), relay.relay_id.as_slice());
    assert!(
        options.find(OptionCode::RelayMsg).is_none(),
        "{name}: no client message"
    );
}

#[test]
fn relay_info_under_relays_and_relay_info() {
    for name in ["leases6-2.2-17col.csv", "leases6-2.4-18col.csv"] {
        let (_lab, ingest) = tail_text(&fixture(name), Options::default());
        let b = ingest
            .binding(&duid("00:03:00:01:02:00:00:00:10:01"), 2)
            .expect("relayed client");
        assert_relay_client(&b, name);
        assert_eq!(b.link_prefix.map(|p| p.address), Some(addr("2001:db8:2::")));
        // perfdhcp's relay: no options, so no relay-id or remote-id; the bare RELAY-FORW.
        let b = ingest
            .binding(&duid("00:01:00:01:32:9d:f0:1e:00:0c:01:02:03:04"), 2)
            .expect("perfdhcp client");
        assert!(
            b.relay.relay_id.is_empty() && b.relay.remote_id.is_empty(),
            "{name}"
        );
        assert_eq!(b.relay.link_address, addr("2001:db8:2::1"));
        assert_eq!(b.relay.peer_address, addr("2001:db8:1::2"));
        assert_eq!(b.relay.relay_forw.as_slice().len(), 34);
        // A non-relay user_context gives no relay information.
        let b = ingest
            .binding(&duid("00:03:00:01:02:00:00:00:00:7d"), 1)
            .expect("client 7d");
        assert!(!b.relay.is_some(), "{name}");
    }
}

#[test]
fn two_relays_nest_outermost_first() {
    let opts =
        "0x0012000867652D302F302F310025000B0000118B636D2D303030310035000A000300010A0B0C0D0E01";
    let context = format!(
        "{{ \"ISC\": {{ \"relay-info\": [ {{ \"hop\": 1&#x2c \"link\": \"::\"&#x2c \"peer\": \
\"2001:db8:ff::2\" }}&#x2c {{ \"hop\": 0&#x2c \"link\": \"2001:db8:2::1\"&#x2c \"options\": \
\"{opts}\"&#x2c \"peer\": \"fe80::200:ff:fe00:1001\"&#x2c \"relay-id\": \
\"000300010A0B0C0D0E01\"&#x2c \"remote-id\": \"0000118B636D2D30303031\" }} ] }} }}"
    );
    let text = format!(
        "{H18}\n2001:db8:2::1016,00:03:00:01:02:00:00:00:10:02,3600,1795900050,2,1800,0,1,128,\
0,0,,,0,{context},0,0,0\n"
    );
    let (_lab, ingest) = tail_text(&text, Options::default());
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:10:02"), 2)
        .expect("client");
    assert_eq!(
        b.relay.link_address,
        addr("2001:db8:2::1"),
        "innermost link"
    );
    assert_eq!(
        b.relay.peer_address,
        addr("2001:db8:ff::2"),
        "outermost peer"
    );
    assert_eq!(b.relay.remote_id.as_slice(), b"\x00\x00\x11\x8bcm-0001");
    let chain = b.relay.relay_forw.as_slice();
    assert_eq!((chain[0], chain[1]), (12, 1));
    let outer = OptionList::parse(&chain[34..], 1).expect("outer options");
    let Some(Opt::RelayMsg(RelayMsgBody::Relay(inner))) = outer.find(OptionCode::RelayMsg) else {
        panic!("the outer RELAY-FORW nests the inner one")
    };
    assert_eq!(
        (inner.hop_count, inner.link_address),
        (0, addr("2001:db8:2::1"))
    );
    assert!(inner.options.find(OptionCode::RelayId).is_some());
    assert!(inner.options.find(OptionCode::RelayMsg).is_none());
}

#[test]
fn escaping_generations() {
    let row = |addr: &str, n: u8, hostname: &str, context: &str| {
        format!(
            "{addr},00:03:00:01:02:00:00:00:00:{n:02x},3600,1795900050,2,1800,0,7,128,0,0,\
{hostname},,0,{context},,,0"
        )
    };
    let relays = "{ \"ISC\": { \"relays\": [ { \"hop\": 0&#x2C&#x0a \"link\": \"2001:db8:2::1\"\
&#x2c&#x09\"peer\": \"fe80::1\" } ] } }";
    let mut text = format!("{H18}\n");
    // Kea ≤ 3.2: a raw newline in a hostname splits the row; both halves are skipped.
    text.push_str(&row("2001:db8:2::a1", 0xa1, "line1\nline2", ""));
    text.push('\n');
    // Kea ≥ 3.3: the same hostname escaped, and raw UTF-8 / escaped UTF-8 hostnames.
    for (i, hostname) in ["line1&#x0aline2", "caf&#xc3&#xa9", "café", "a&#x2cb&#x26c"]
        .into_iter()
        .enumerate()
    {
        let n = 0xb0 + u8::try_from(i).expect("few rows");
        text.push_str(&row(&format!("2001:db8:2::{n:x}"), n, hostname, ""));
        text.push('\n');
    }
    // user_context escapes: upper-case hex and control bytes (JSON whitespace) decode.
    text.push_str(&row("2001:db8:2::c0", 0xc0, "", relays));
    text.push('\n');
    let (_lab, ingest) = tail_text(&text, Options::default());
    let stats = ingest.router.stats();
    assert_eq!(
        stats.rejected.get("column_count"),
        Some(&2),
        "{:?}",
        stats.rejected
    );
    assert_eq!(stats.rejected_total(), 2);
    assert_eq!(stats.rows, 5);
    for n in [0xb0u8, 0xb1, 0xb2, 0xb3, 0xc0] {
        let b = ingest
            .binding(&duid(&format!("00:03:00:01:02:00:00:00:00:{n:02x}")), 2)
            .unwrap_or_else(|| panic!("client {n:x}"));
        assert!(b.has_live_lease(now()));
    }
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:c0"), 2)
        .expect("client c0");
    assert_eq!(b.relay.peer_address, addr("fe80::1"));
    assert!(ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:a1"), 2)
        .is_none());
}

#[test]
fn states_zero_to_four_and_unknown() {
    let text = fixture("leases6-2.7-states.csv");
    let (_lab, ingest) = tail_text(&text, Options::default());
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    assert_matches(&ingest, &Model::of_text(&text), now());
    let now = now();
    let get = |n: &str, kind: LeaseKind| {
        let b = ingest
            .binding(&duid(&format!("00:03:00:01:02:00:00:00:00:{n}")), 1)
            .unwrap_or_else(|| panic!("client {n}"));
        lease_of(&b, kind)
    };
    let a = |last: &str| LeaseKind::Address(addr(&format!("2001:db8:1::{last}")));
    // 3 released with affinity: valid 0 → ended.
    let l = get("01", a("2001"));
    assert_eq!((l.state, l.ended_at), (LeaseState::Released, now));
    // 4 registered: an active binding.
    let l = get("02", a("2002"));
    assert_eq!(l.state, LeaseState::Registered);
    assert!(l.is_live(now) && l.entry(now).valid == 3600 - 50);
    // 2 reclaimed and 1 declined: stored, not active, reported with zero lifetimes.
    for (n, state) in [
        ("03", LeaseState::ExpiredReclaimed),
        ("04", LeaseState::Declined),
    ] {
        let l = get(n, a(&format!("20{n}")));
        assert_eq!((l.state, l.ended_at), (state, 0));
        assert!(!l.is_live(now));
        assert_eq!(l.entry(now).valid, 0);
    }
    // A deletion of a lease lqd never saw creates nothing.
    assert!(ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:05"), 1)
        .is_none());
    // An unknown state is kept as read, not active.
    let l = get("06", a("2006"));
    assert_eq!(l.state, LeaseState::Other(7));
    assert!(!l.is_live(now));
    // A prefix released twice: ended once, the repeated deletion changes nothing.
    let d07 = duid("00:03:00:01:02:00:00:00:00:07");
    assert_eq!(ingest.records_of(&d07, 1), 2);
}

#[test]
fn valid_lifetime_zero_deletes_with_zero_lifetimes() {
    let text = format!(
        "{H17}\n\
2001:db8:1::100a,00:01:00:01:32:9d:f0:19:00:0c:01:02:03:0e,12,1795896229,1,10,0,1,128,0,0,,\
00:0c:01:02:03:0e,0,,1,2\n"
    );
    let (lab, mut ingest) = tail_text(&text, Options::default());
    let d = duid("00:01:00:01:32:9d:f0:19:00:0c:01:02:03:0e");
    let kind = LeaseKind::Address(addr("2001:db8:1::100a"));
    assert!(lease_of(&ingest.binding(&d, 1).expect("client"), kind).is_live(now()));
    // kea.md §13 release: valid 0, pref 0, expire = CLTT; read 7 s after "now".
    let later = now() + 7;
    append(
        &lab.journal,
        "2001:db8:1::100a,00:01:00:01:32:9d:f0:19:00:0c:01:02:03:0e,0,1795896217,1,0,0,1,128,0,0,\
,00:0c:01:02:03:0e,0,,1,2\n",
    );
    ingest.poll(later);
    let b = ingest.binding(&d, 1).expect("client");
    let l = lease_of(&b, kind);
    assert_eq!(
        l.ended_at, later,
        "stamped with the time lqd read the row (kea.md §7.1)"
    );
    assert_eq!((l.entry(later).preferred, l.entry(later).valid), (0, 0));
    assert_eq!(b.cltt, server_time(1_795_896_217));
    assert!(ingest
        .shards
        .iter()
        .all(|s| s.by_address(addr("2001:db8:1::100a")).is_none()));
}

#[test]
fn cltt_is_expire_minus_valid() {
    let text = fixture("leases6-3.3-18col.csv");
    let (_lab, ingest) = tail_text(&text, Options::default());
    for row in final_rows(&text)
        .iter()
        .filter(|r| r.valid != 0 && r.duid.len() > 3)
    {
        let b = ingest.binding(&row.duid, row.subnet).expect("client");
        let l = lease_of(&b, row.kind());
        if l.ended_at == 0 {
            assert_eq!(
                l.valid_until,
                until(row.expire - u64::from(row.valid), row.valid)
            );
        }
    }
}

/// Lines of leases6-2.2-malformed.csv that must be rejected, with the reason counted.
const MALFORMED: [(usize, &str); 16] = [
    (3, "column_count"), // kea.md §4 trap: a raw newline in a hostname, first half …
    (4, "column_count"), // … and second half
    (6, "address"),
    (7, "duid"),    // not hex
    (8, "duid"),    // a one-digit octet
    (9, "number"),  // valid_lifetime "36o0"
    (10, "number"), // negative expire
    (11, "number"), // valid_lifetime above u32
    (12, "lease_type"),
    (13, "prefix_len"),        // an address with prefix_len 64
    (14, "escape"),            // "&#x2" at the end of the hostname
    (15, "escape"),            // "&#xzz" in user_context
    (16, "user_context_json"), // not JSON once unescaped
    (17, "relay_address"),     // peer "fe80::zz"
    (18, "relay_hex"),         // odd number of hex digits in options
    (19, "number"),            // "+3600": Kea never writes a sign
];

#[test]
fn malformed_rows_are_counted_by_reason_and_skipped() {
    let text = fixture("leases6-2.2-malformed.csv");
    let (_lab, ingest) = tail_text(&text, Options::default());
    let stats = ingest.router.stats();
    let mut expected = std::collections::HashMap::new();
    for (_, reason) in MALFORMED {
        *expected.entry(reason).or_insert(0u64) += 1;
    }
    assert_eq!(stats.rejected, expected);
    // The rows around them are applied: the model of the good lines only.
    let good: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| !MALFORMED.iter().any(|(line, _)| *line == i + 1))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert_eq!(good.lines().count(), 6, "header and five good rows");
    assert_eq!(stats.rows, 5);
    assert_matches(&ingest, &Model::of_text(&good), now());
}

/// A 17-column row for client `nn` on subnet 1, with `hostname` (raw bytes allowed).
fn row_with_hostname(n: u8, hostname: &[u8]) -> Vec<u8> {
    let mut line = format!(
        "2001:db8:1::{n:x},00:03:00:01:02:00:00:00:00:{n:02x},3600,1795900050,1,1800,0,1,128,0,0,"
    )
    .into_bytes();
    line.extend_from_slice(hostname);
    line.extend_from_slice(b",,0,,,\n");
    line
}

#[test]
fn unreadable_lines_are_counted_and_skipped() {
    let lab = Lab::new();
    std::fs::write(&lab.journal, format!("{H17}\n")).expect("X");
    let options = Options {
        line_max: 1024,
        ..Options::default()
    };
    let mut ingest = Ingest::open_with(&lab.journal, &lab.store, options, now());
    append_bytes(&lab.journal, &row_with_hostname(0xa1, b""));
    // Kea <= 3.2 writes hostname bytes raw: UTF-8 reads (kea.md §4).
    append_bytes(&lab.journal, &row_with_hostname(0xa2, "café".as_bytes()));
    // A byte that is not UTF-8 where Kea writes plain ASCII (the DUID): garbage.
    let mut garbage = row_with_hostname(0xa3, b"");
    garbage[20] = 0xff;
    append_bytes(&lab.journal, &garbage);
    // A line longer than line_max, then a good row.
    append_bytes(&lab.journal, &row_with_hostname(0xa4, &[b'h'; 3000]));
    append_bytes(&lab.journal, &row_with_hostname(0xa5, b""));
    ingest.poll(now());
    let stats = ingest.router.stats();
    let garbage = ["not_utf8", "duid"]
        .iter()
        .filter_map(|r| stats.rejected.get(r))
        .sum::<u64>();
    assert_eq!(garbage, 1, "{:?}", stats.rejected);
    assert_eq!(
        stats.rejected.get("line_too_long"),
        Some(&1),
        "{:?}",
        stats.rejected
    );
    assert_eq!(stats.rejected_total(), 2);
    for n in [0xa1u8, 0xa2, 0xa5] {
        let d = duid(&format!("00:03:00:01:02:00:00:00:00:{n:02x}"));
        assert!(ingest.binding(&d, 1).is_some(), "client {n:x}");
    }
    assert_eq!(ingest.clients(), 3);
}

#[test]

fn a_raw_latin1_hostname_byte_does_not_lose_the_lease() {
    // kea.md §4: before 3.3 raw bytes >= 0x80 reach the hostname as they are; Kea loads
    // such a row, and lqd does not use the hostname at all.
    let lab = Lab::new();
    std::fs::write(&lab.journal, format!("{H17}\n")).expect("X");
    let mut ingest = Ingest::open(&lab.journal, &lab.store, now());
    append_bytes(&lab.journal, &row_with_hostname(0xa6, b"caf\xe9"));
    ingest.poll(now());
    assert_eq!(
        ingest.router.stats().rejected_total(),
        0,
        "{:?}",
        ingest.router.stats()
    );
    let d = duid("00:03:00:01:02:00:00:00:00:a6");
    assert!(ingest
        .binding(&d, 1)
        .is_some_and(|b| b.has_live_lease(now())));
}

#[test]
fn a_file_without_a_header_is_refused_line_by_line() {
    let lab = Lab::new();
    let row = "2001:db8:1::a1,00:03:00:01:02:00:00:00:00:a1,3600,1795900050,1,1800,0,1,128,0,0,,,\
0,,,\n";
    std::fs::write(&lab.journal, row.repeat(3)).expect("X");
    let ingest = Ingest::open(&lab.journal, &lab.store, now());
    let stats = ingest.router.stats();
    // The first row read as a header: its empty fields repeat, so the header is refused.
    let header: u64 = stats
        .rejected
        .iter()
        .filter(|(reason, _)| reason.starts_with("header_"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(header, 1, "{stats:?}");
    assert_eq!(stats.rejected.get("no_header"), Some(&2));
    assert_eq!(ingest.clients(), 0);
}

fn declined_journal(header: &str, tail: &str, placeholder: &str) -> String {
    format!(
        "{header}\n\
2001:db8:1::7c,00:03:00:01:02:00:00:00:00:7c,3600,1795900050,1,1800,0,7,128,0,0,host,\
02:00:00:00:00:7c,0,,1,0{tail}\n\
2001:db8:1::7c,{placeholder},3600,1795900050,1,0,0,7,128,0,0,,,1,,,{tail}\n\
2001:db8:1::7c,{placeholder},3600,1795900050,1,0,0,7,128,0,0,,,2,,,{tail}\n\
2001:db8:1::7c,{placeholder},0,1795896450,1,0,0,7,128,0,0,,,2,,,{tail}\n"
    )
}

fn assert_declined_away(text: &str, placeholder: &[u8]) {
    let (_lab, ingest) = tail_text(text, Options::default());
    assert_eq!(ingest.router.stats().rejected_total(), 0);
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:7c"), 1)
        .expect("previous holder");
    let l = lease_of(&b, LeaseKind::Address(addr("2001:db8:1::7c")));
    assert_ne!(l.ended_at, 0, "the decline ends the address for its holder");
    assert_eq!(l.entry(now()).valid, 0);
    assert!(
        ingest.binding(placeholder, 1).is_none(),
        "the placeholder DUID is nobody's binding"
    );
    assert_eq!(ingest.clients(), 1);
    assert_matches(&ingest, &Model::of_text(text), now());
}

#[test]
fn declined_with_placeholder_duid_00_ends_the_previous_holder() {
    // Kea ≤ 2.3.7 (kea.md §5, §7.1): decline, its reclaim and its flush.
    assert_declined_away(&declined_journal(H17, "", "00"), &[0]);
}

#[test]

fn declined_with_placeholder_duid_00_00_00_ends_the_previous_holder() {
    // Kea ≥ 2.3.8 writes the placeholder as 00:00:00 (kea.md §5).
    assert_declined_away(&declined_journal(H18, ",0", "00:00:00"), &[0, 0, 0]);
}

/// Two DUIDs (`00:03:00:01:02:00:00:00:00:nn`) that live on different shards of 3.
fn duids_on_two_shards() -> (String, String) {
    let text = |n: u8| format!("00:03:00:01:02:00:00:00:00:{n:02x}");
    let first = lqd::store::shard_of(&duid(&text(0x60)), 3);
    let other = (0x61..=0xff)
        .find(|&n| lqd::store::shard_of(&duid(&text(n)), 3) != first)
        .expect("some DUID hashes elsewhere");
    (text(0x60), text(other))
}

#[test]
fn an_address_given_to_another_client_ends_it_for_the_previous_holder() {
    let (a, b) = duids_on_two_shards();
    let text = format!(
        "{H17}\n\
2001:db8:1::50,{a},3600,1795900050,1,1800,0,1,128,0,0,,,0,,,\n\
2001:db8:1::51,{a},3600,1795900050,1,1800,0,1,128,0,0,,,0,,,\n\
2001:db8:1::50,{a},3600,1795900050,1,1800,0,1,128,0,0,,,2,,,\n\
2001:db8:1::50,{b},3600,1795900060,1,1800,0,1,128,0,0,,,0,,,\n\
2001:db8:1::51,{b},3600,1795900060,1,1800,0,1,128,0,0,,,0,,,\n"
    );
    let (_lab, ingest) = tail_text(&text, Options::default());
    assert_eq!(ingest.router.stats().moved, 2);
    assert_matches(&ingest, &Model::of_text(&text), now());
    let old = ingest.binding(&duid(&a), 1).expect("previous holder");
    assert!(old.leases().iter().all(|l| l.ended_at != 0));
    for address in ["2001:db8:1::50", "2001:db8:1::51"] {
        let owners: Vec<_> = ingest
            .shards
            .iter()
            .filter_map(|s| s.by_address(addr(address)).and_then(|o| s.binding_at(o)))
            .collect();
        assert_eq!(owners.len(), 1, "{address} has one holder");
        assert_eq!(owners[0].duid.as_slice(), duid(&b));
    }
}

#[test]
fn leases_expire_on_lqds_clock_and_kea_rows_do_not_revive_them() {
    let alloc = "2001:db8:1::1001,00:01:00:01:32:9d:f0:19:00:0c:01:02:03:05,12,1795896229,1,10,0,\
1,128,0,0,,00:0c:01:02:03:05,0,,1,2";
    let inf = "2001:db8:1::78,00:03:00:01:02:00:00:00:00:78,4294967295,6090863745,1,4294967295,0,\
7,128,0,0,,,0,,,";
    let (lab, mut ingest) = tail_text(&format!("{H17}\n{alloc}\n{inf}\n"), Options::default());
    let d = duid("00:01:00:01:32:9d:f0:19:00:0c:01:02:03:05");
    let kind = LeaseKind::Address(addr("2001:db8:1::1001"));
    let expiry = server_time(1_795_896_229);
    assert_eq!(ingest.expire_due(expiry - 1), 0, "not yet");
    assert_eq!(ingest.records_of(&d, 1), 1);
    // Kea writes nothing at expiry (kea.md §7.3): lqd ends the lease itself.
    assert_eq!(ingest.expire_due(expiry), 1);
    assert_eq!(ingest.records_of(&d, 1), 2, "a new record: the lease ended");
    let l = lease_of(&ingest.binding(&d, 1).expect("client"), kind);
    assert_eq!(l.ended_at, expiry);
    assert_eq!((l.entry(expiry).preferred, l.entry(expiry).valid), (0, 0));
    assert!(ingest
        .shards
        .iter()
        .all(|s| s.by_address(addr("2001:db8:1::1001")).is_none()));
    // Kea's later rows: the same allocation row again, the reclaim, the flush.
    let reclaim = alloc.replace(",0,,1,2", ",2,,1,2");
    let flush = reclaim.replace(",12,1795896229,", ",0,1795896217,");
    for (i, row) in [alloc.to_owned(), reclaim, flush].iter().enumerate() {
        append(&lab.journal, &format!("{row}\n"));
        let t = expiry + 1 + u32::try_from(i).expect("small");
        ingest.poll(t);
        let l = lease_of(&ingest.binding(&d, 1).expect("client"), kind);
        assert!(!l.is_live(t), "row {i} revived the lease: {l:?}");
        assert_eq!(l.entry(t).valid, 0, "row {i}");
        assert!(ingest
            .shards
            .iter()
            .all(|s| s.by_address(addr("2001:db8:1::1001")).is_none()));
    }
    // The infinite lease never expires.
    assert_eq!(ingest.expire_due(u32::MAX - 1), 0);
    let b = ingest
        .binding(&duid("00:03:00:01:02:00:00:00:00:78"), 1)
        .expect("infinite client");
    assert!(b.has_live_lease(u32::MAX - 1));
}

#[test]

fn the_flush_of_an_older_lease_keeps_the_latest_cltt() {
    // NA and PD allocated at CLTT t1; the NA renewed at t2; the PD expires, is reclaimed
    // and flushed (expire = its CLTT t1, kea.md §7.1). The client last talked at t2.
    let d = "00:01:00:01:32:9d:f0:19:00:0c:01:02:03:05";
    let text = format!(
        "{H17}\n\
2001:db8:1::1001,{d},12,1795896229,1,10,0,1,128,0,0,,,0,,,\n\
2001:db8:8:1::,{d},12,1795896229,1,10,2,1,64,0,0,,,0,,,\n\
2001:db8:1::1001,{d},12,1795896230,1,10,0,1,128,0,0,,,0,,,\n\
2001:db8:8:1::,{d},12,1795896229,1,10,2,1,64,0,0,,,2,,,\n\
2001:db8:8:1::,{d},0,1795896217,1,10,2,1,64,0,0,,,2,,,\n"
    );
    let (_lab, ingest) = tail_text(&text, Options::default());
    let b = ingest.binding(&duid(d), 1).expect("client");
    assert_eq!(
        b.cltt,
        server_time(1_795_896_218),
        "CLT_TIME is the latest contact"
    );
}
