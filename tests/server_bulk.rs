//! Bulk Leasequery sessions over real shards (RFC 5460 §5.2, §7.2; protocol.md S-31..S-35,
//! S-40, S-41, S-43, D-3, D-4, D-11), checked on the framed bytes they write.

mod store_common;

use std::net::Ipv6Addr;

use lqd::server::bulk::{BulkSession, Progress};
use lqd::server::lookup::{lookup, FOUND_MAX};
use lqd::server::select::Selection;
use lqd::store::model::{Lease, LeaseState, RelayInfo};
use lqd::store::{LeaseUpdate, LogReader, Shard};
use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::client_data::LeaseKind;
use lqd::wire::{parse_query, FrameDecoder, Message, MessageType, Opt, OptionCode, Xid};
use store_common::{config, duid, NOW};

const SERVER: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];
const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const RELAY: [u8; 10] = [0, 3, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 1];

fn address(n: u32) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        1,
        0,
        0,
        0,
        0,
        u16::try_from(n).expect("small"),
    )
}

/// Clients 1..=10 with an address each at NOW; 1..=5 behind RELAY; client 10's lease ends.
fn shards(dirs: &[tempfile::TempDir]) -> Vec<Shard> {
    let mut shards: Vec<Shard> = dirs
        .iter()
        .map(|d| Shard::open(config(d.path(), 1 << 20, 8), NOW).unwrap().0)
        .collect();
    let mut relayed = RelayInfo::NONE;
    relayed.relay_id.set(&RELAY);
    relayed.link_address = "2001:db8:1::1".parse().unwrap();
    for n in 1..=10u32 {
        let d = duid(n);
        let lease = Lease {
            kind: LeaseKind::Address(address(n)),
            state: LeaseState::Default,
            preferred_until: NOW + 1800,
            valid_until: NOW + 3600,
            ended_at: 0,
        };
        let relay = if n <= 5 { &relayed } else { &RelayInfo::NONE };
        let update = LeaseUpdate {
            duid: &d,
            link: 1,
            link_prefix: None,
            lease,
            cltt: NOW,
            relay,
        };
        let shard = &mut shards[lqd::store::shard_of(&d, 2) as usize];
        shard.apply(&update, NOW).unwrap();
        if n == 10 {
            let ended = LeaseUpdate {
                lease: Lease {
                    ended_at: NOW + 5,
                    ..lease
                },
                ..update
            };
            shard.apply(&ended, NOW + 5).unwrap();
        }
    }
    shards
}

fn query(q: QueryOut<'_>, start: Option<u32>, end: Option<u32>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = framed(&mut buf, |w| {
        write_query(
            w,
            &QueryMessage {
                msg_type: MessageType::Leasequery,
                xid: Xid::new(0x42).unwrap(),
                client_id: &REQUESTOR,
                lq_query: Some(LqQueryOut {
                    query: q,
                    link_address: Ipv6Addr::UNSPECIFIED,
                    oro: &[],
                }),
                oro: &[OptionCode::LqBaseTime],
                start_time: start,
                end_time: end,
            },
        )
    })
    .unwrap();
    buf[2..n].to_vec()
}

/// Run a session to completion with small output chunks, answering its index lookups as
/// the shards' owners would; return the frames' messages.
fn run(shards: &[Shard], message: &[u8], now: u32) -> Vec<Vec<u8>> {
    run_as(shards, message, now, true)
}

/// [`run`], with index lookups (`lookups`) or scanning the logs.
fn run_as(shards: &[Shard], message: &[u8], now: u32, lookups: bool) -> Vec<Vec<u8>> {
    let readers: Vec<LogReader> = shards.iter().map(Shard::reader).collect();
    let readers = &readers[..];
    let message = Message::parse(message).unwrap();
    let q = parse_query(&message, &SERVER).unwrap();
    let selection = Selection::from_query(&q).unwrap();
    let mut session = BulkSession::new(q.xid, q.requestor.bytes(), selection, readers);
    if let Some(key) = session.take_lookup(readers.len(), 0) {
        if !lookups {
            session.lookup_failed();
        }
        for (i, shard) in shards.iter().enumerate() {
            let index = u16::try_from(i).unwrap();
            session.found(&lookup(shard, index, &key), readers);
        }
    }
    let mut wire = Vec::new();
    let mut chunk = [0u8; 300];
    for _ in 0..1000 {
        let (n, progress) = session.fill(readers, &SERVER, now, &mut chunk, 2);
        wire.extend_from_slice(&chunk[..n]);
        if progress == Progress::Done {
            let mut decoder = FrameDecoder::new(u16::MAX);
            assert_eq!(decoder.extend(&wire), wire.len());
            let mut frames = Vec::new();
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame.to_vec());
            }
            assert_eq!(decoder.buffered(), 0);
            return frames;
        }
    }
    panic!("the session never finished");
}

fn client_ids(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut ids = Vec::new();
    for frame in frames {
        let m = Message::parse(frame).unwrap();
        if let Some(Opt::ClientData(inner)) = m.options.find(OptionCode::ClientData) {
            let Some(Opt::ClientId(d)) = inner.find(OptionCode::ClientId) else {
                panic!()
            };
            ids.push(*d.bytes().last().unwrap());
        }
    }
    ids.sort_unstable();
    ids
}

#[test]
fn all_bindings_reply_data_done() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shards = shards(&dirs);
    // D-3: QUERY_BY_LINK_ADDRESS with :: is every binding; client 10 has no live lease and
    // no window asks for ended ones (D-4), so nine bindings.
    let frames = run(&shards, &query(QueryOut::LinkAddress, None, None), NOW + 10);
    assert_eq!(
        frames.len(),
        1 + 8 + 1,
        "REPLY, eight DATA, DONE (S-40, S-43)"
    );
    let types: Vec<u8> = frames.iter().map(|f| f[0]).collect();
    assert_eq!(types[0], 15);
    assert!(types[1..9].iter().all(|&t| t == 17));
    assert_eq!(types[9], 16);
    assert!(
        frames.iter().all(|f| f[1..4] == [0, 0, 0x42]),
        "xid copied (S-26)"
    );
    let reply = Message::parse(&frames[0]).unwrap();
    let server_id = reply.options.find(OptionCode::ServerId);
    assert!(matches!(server_id, Some(Opt::ServerId(d)) if d.bytes() == SERVER));
    let client_id = reply.options.find(OptionCode::ClientId);
    assert!(matches!(client_id, Some(Opt::ClientId(d)) if d.bytes() == REQUESTOR));
    assert!(
        reply.options.find(OptionCode::StatusCode).is_none(),
        "success: no status"
    );
    for frame in &frames {
        let m = Message::parse(frame).unwrap();
        assert_eq!(
            m.options.find(OptionCode::LqBaseTime),
            Some(Opt::LqBaseTime(NOW + 10)),
            "S-49"
        );
    }
    assert_eq!(client_ids(&frames), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Lifetimes as of the reply: 1800 - 10 and 3600 - 10; CLT 10.
    let data = Message::parse(&frames[1]).unwrap();
    let Some(Opt::ClientData(inner)) = data.options.find(OptionCode::ClientData) else {
        panic!()
    };
    let Some(Opt::IaAddr(a)) = inner.find(OptionCode::IaAddr) else {
        panic!()
    };
    assert_eq!((a.preferred, a.valid), (1790, 3590));
    assert_eq!(inner.find(OptionCode::CltTime), Some(Opt::CltTime(10)));
}

#[test]
fn keyed_queries_and_no_match() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shards = shards(&dirs);
    let by_relay = run(&shards, &query(QueryOut::RelayId(&RELAY), None, None), NOW);
    assert_eq!(client_ids(&by_relay), [1, 2, 3, 4, 5], "S-33");
    let by_address = run(
        &shards,
        &query(QueryOut::Address(address(7)), None, None),
        NOW,
    );
    assert_eq!(by_address.len(), 2, "REPLY with the binding, then DONE");
    assert_eq!(client_ids(&by_address), [7], "S-31");
    let d3 = duid(3);
    let by_client = run(&shards, &query(QueryOut::ClientId(&d3), None, None), NOW);
    assert_eq!(client_ids(&by_client), [3], "S-32");
    // The index lookups answer exactly what a scan of the logs does.
    for q in [QueryOut::Address(address(7)), QueryOut::ClientId(&d3)] {
        let scanned = run_as(&shards, &query(q, None, None), NOW, false);
        let looked_up = run_as(&shards, &query(q, None, None), NOW, true);
        assert_eq!(scanned, looked_up);
    }
    // S-41: no match is a REPLY without status and without CLIENT_DATA, and no DONE.
    let nobody = run(
        &shards,
        &query(QueryOut::Address(address(99)), None, None),
        NOW,
    );
    assert_eq!(nobody.len(), 1);
    let reply = Message::parse(&nobody[0]).unwrap();
    assert_eq!(reply.msg_type, MessageType::LeasequeryReply);
    assert!(reply.options.find(OptionCode::ClientData).is_none());
    assert!(reply.options.find(OptionCode::StatusCode).is_none());
}

#[test]
fn time_windows_report_ended_leases() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shards = shards(&dirs);
    // D-11: only client 10 changed at or after NOW + 1; D-4: its ended lease is reported
    // with zero lifetimes because the query has a window.
    let frames = run(
        &shards,
        &query(QueryOut::LinkAddress, Some(NOW + 1), Some(NOW + 100)),
        NOW + 10,
    );
    assert_eq!(client_ids(&frames), [10]);
    let reply = Message::parse(&frames[0]).unwrap();
    let Some(Opt::ClientData(inner)) = reply.options.find(OptionCode::ClientData) else {
        panic!()
    };
    let Some(Opt::IaAddr(a)) = inner.find(OptionCode::IaAddr) else {
        panic!()
    };
    assert_eq!((a.address, a.preferred, a.valid), (address(10), 0, 0));
    // A window that ends before any change selects nothing.
    let none = run(
        &shards,
        &query(QueryOut::LinkAddress, None, Some(NOW - 1)),
        NOW + 10,
    );
    assert_eq!(none.len(), 1, "REPLY alone (S-41)");
}

/// A DUID on more links than one lookup answer holds (S-32 over every link): the session
/// scans instead, and every client is there once.
#[test]
fn a_lookup_that_overflows_scans() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut shards = shards(&dirs);
    let d = duid(77);
    let links = u32::try_from(FOUND_MAX).unwrap() + 3;
    for link in 1..=links {
        let update = LeaseUpdate {
            duid: &d,
            link,
            link_prefix: None,
            lease: Lease {
                kind: LeaseKind::Address(address(100 + link)),
                state: LeaseState::Default,
                preferred_until: NOW + 1800,
                valid_until: NOW + 3600,
                ended_at: 0,
            },
            cltt: NOW,
            relay: &RelayInfo::NONE,
        };
        shards[0].apply(&update, NOW).unwrap();
    }
    let frames = run(&shards, &query(QueryOut::ClientId(&d), None, None), NOW);
    let datas = frames.iter().filter(|f| f[0] == 15 || f[0] == 17).count();
    assert_eq!(datas, links as usize, "REPLY + DATA: one per link");
    assert_eq!(
        frames,
        run_as(
            &shards,
            &query(QueryOut::ClientId(&d), None, None),
            NOW,
            false
        )
    );
}

/// Point queries are answered from the owners' indexes, not by scanning: the session takes
/// a lookup key and, with every shard's answer in, sends from the records found.
#[test]
fn point_queries_use_the_indexes() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shards = shards(&dirs);
    let readers: Vec<LogReader> = shards.iter().map(Shard::reader).collect();
    let d3 = duid(3);
    for (q, indexed) in [
        (QueryOut::Address(address(7)), true),
        (QueryOut::ClientId(&d3), true),
        (QueryOut::RelayId(&RELAY), false),
        (QueryOut::LinkAddress, false),
    ] {
        let bytes = query(q, None, None);
        let message = Message::parse(&bytes[..]).unwrap();
        let parsed = parse_query(&message, &SERVER).unwrap();
        let selection = Selection::from_query(&parsed).unwrap();
        let mut session = BulkSession::new(parsed.xid, &REQUESTOR, selection, &readers);
        let key = session.take_lookup(2, 0);
        assert_eq!(key.is_some(), indexed, "{q:?}");
        if let Some(key) = key {
            assert!(session.take_lookup(2, 0).is_none(), "asked once");
            session.found(&lookup(&shards[0], 0, &key), &readers);
            assert!(!session.looked_up(), "one answer of two");
            session.found(&lookup(&shards[1], 1, &key), &readers);
            assert!(session.looked_up());
        }
    }
    // A time window needs ended leases, which the indexes do not hold (D-4): scan.
    let bytes = query(QueryOut::Address(address(10)), Some(NOW), None);
    let message = Message::parse(&bytes[..]).unwrap();
    let parsed = parse_query(&message, &SERVER).unwrap();
    let selection = Selection::from_query(&parsed).unwrap();
    let mut session = BulkSession::new(parsed.xid, &REQUESTOR, selection, &readers);
    assert!(session.take_lookup(2, 0).is_none());
}
