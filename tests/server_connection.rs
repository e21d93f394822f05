//! One leasequery connection, sans-IO: the bytes a requestor sends in, the bytes the server
//! answers, and when it closes (protocol.md S-2, S-4, S-6, S-9, S-10, S-12, S-17, S-23..S-29,
//! S-31, S-39, S-63, D-2, D-8).

mod store_common;

use std::net::Ipv6Addr;

use lqd::ingest::links::Links;
use lqd::metrics::Counters;
use lqd::server::connection::{CloseReason, Connection, Context, Permitted, Policy};
use lqd::server::lookup::lookup;
use lqd::server::out::{Batch, Bodies, Part, DATA_FRAME_MAX};
use lqd::store::model::{DuidBuf, Prefix, RelayInfo};
use lqd::store::{LogReader, Shard};
use lqd::wire::build::{framed, write_query, write_starttls, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::{FrameDecoder, Message, MessageType, Opt, OptionCode, StatusCode, Xid};
use store_common::{config, duid, update, NOW};

const SERVER: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

struct Lab {
    _dir: tempfile::TempDir,
    shard: Shard,
    readers: Vec<LogReader>,
    links: Links,
    policy: Policy,
    counters: Counters,
}

impl Lab {
    fn new(active: bool, insecure: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (shard, _, _) = Shard::open(config(dir.path(), 1 << 20, 8), NOW).unwrap();
        let readers = vec![shard.reader()];
        let mut links = Links::default();
        links.insert(
            1,
            Prefix {
                address: "2001:db8:1::".parse().unwrap(),
                len: 48,
            },
        );
        let policy = Policy {
            server_duid: DuidBuf::new(&SERVER).unwrap(),
            active_enabled: active,
            insecure_allowed: insecure,
            queries_max: 3,
            query_wait_ms: 300_000,
            idle_timeout_ms: 60_000,
            message_size_max: 4096,
        };
        Self {
            _dir: dir,
            shard,
            readers,
            links,
            policy,
            counters: Counters::default(),
        }
    }

    fn ctx(&self, now_ms: u64) -> Context<'_> {
        Context {
            policy: &self.policy,
            readers: &self.readers,
            links: &self.links,
            now: NOW,
            now_ms,
            counters: &self.counters,
        }
    }

    fn connection(&self) -> Connection {
        Connection::new(&self.policy, Permitted::ALL, 0)
    }

    /// Send `bytes`, then collect everything the connection writes.
    fn exchange(&self, conn: &mut Connection, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut offset = 0;
        while offset < bytes.len() {
            let spare = conn.spare();
            let n = spare.len().min(bytes.len() - offset);
            spare[..n].copy_from_slice(&bytes[offset..offset + n]);
            offset += n;
            conn.received(n, &self.ctx(0));
        }
        self.collect(conn)
    }

    fn collect(&self, conn: &mut Connection) -> Vec<Vec<u8>> {
        let mut wire = Vec::new();
        let mut own = vec![0u8; 2 * DATA_FRAME_MAX];
        let mut parts = vec![Part::default(); 8];
        let mut bodies = Bodies::new(64 * 1024);
        for _ in 0..100 {
            bodies.may_reset(0);
            let mut batch = Batch::new(&mut own, &mut parts, &mut bodies);
            conn.transmit(&self.ctx(0), &mut batch);
            if batch.is_empty() {
                break;
            }
            let mut bytes = vec![0; batch.len()];
            assert_eq!(batch.gather(&mut bytes), batch.len());
            wire.extend_from_slice(&bytes);
        }
        let mut decoder = FrameDecoder::new(u16::MAX);
        assert_eq!(decoder.extend(&wire), wire.len());
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame.to_vec());
        }
        frames
    }
}

fn query(msg_type: MessageType, xid: u32, lq: Option<LqQueryOut<'_>>, end: Option<u32>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = framed(&mut buf, |w| {
        write_query(
            w,
            &QueryMessage {
                msg_type,
                xid: Xid::new(xid).unwrap(),
                client_id: &REQUESTOR,
                lq_query: lq,
                oro: &[OptionCode::LqBaseTime],
                start_time: None,
                end_time: end,
            },
        )
    })
    .unwrap();
    buf[..n].to_vec()
}

fn all_bindings() -> Option<LqQueryOut<'static>> {
    Some(LqQueryOut {
        query: QueryOut::LinkAddress,
        link_address: Ipv6Addr::UNSPECIFIED,
        oro: &[],
    })
}

/// (type, xid, status) of a message.
fn summary(frame: &[u8]) -> (MessageType, u32, Option<StatusCode>) {
    let m = Message::parse(frame).unwrap();
    let status = match m.options.find(OptionCode::StatusCode) {
        Some(Opt::Status(s)) => Some(s.code),
        _ => None,
    };
    (m.msg_type, m.xid.value(), status)
}

#[test]
fn active_off_is_not_supported_and_plain_tcp_needs_its_own_switch() {
    let lab = Lab::new(false, false);
    let mut conn = lab.connection();
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::ActiveLeasequery, 5, None, None),
    );
    assert_eq!(
        summary(&frames[0]),
        (
            MessageType::LeasequeryReply,
            5,
            Some(StatusCode::NotSupported)
        )
    );
    assert_eq!(
        conn.closed(),
        Some(CloseReason::Refused(StatusCode::NotSupported)),
        "S-6"
    );
    let lab = Lab::new(true, false);
    let mut conn = lab.connection();
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::ActiveLeasequery, 6, None, None),
    );
    assert_eq!(summary(&frames[0]).2, Some(StatusCode::NotAllowed), "S-4");
    assert!(conn.closed().is_some());
}

#[test]
fn active_stream_and_a_second_query_on_it() {
    let mut lab = Lab::new(true, true);
    let mut conn = lab.connection();
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::ActiveLeasequery, 7, None, None),
    );
    assert_eq!(summary(&frames[0]), (MessageType::LeasequeryReply, 7, None));
    let reply = Message::parse(&frames[0]).unwrap();
    let echo = reply.options.find(OptionCode::ClientId);
    assert!(matches!(echo, Some(Opt::ClientId(d)) if d.bytes() == REQUESTOR));
    let d = duid(1);
    lab.shard
        .apply(&update(&d, 1, NOW, &RelayInfo::NONE), NOW)
        .unwrap();
    let frames = lab.collect(&mut conn);
    assert_eq!(summary(&frames[0]), (MessageType::LeasequeryData, 7, None));
    // D-8: a Bulk query on the Active connection gets NotAllowed with its own xid; the
    // stream goes on.
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::Leasequery, 8, all_bindings(), None),
    );
    assert_eq!(
        summary(&frames[0]),
        (
            MessageType::LeasequeryReply,
            8,
            Some(StatusCode::NotAllowed)
        )
    );
    assert_eq!(conn.closed(), None);
    lab.shard
        .apply(&update(&d, 1, NOW + 1, &RelayInfo::NONE), NOW + 1)
        .unwrap();
    assert_eq!(
        summary(&lab.collect(&mut conn)[0]),
        (MessageType::LeasequeryData, 7, None)
    );
    // S-59: shutdown.
    conn.terminate();
    let frames = lab.collect(&mut conn);
    assert_eq!(
        summary(&frames[0]),
        (
            MessageType::LeasequeryDone,
            7,
            Some(StatusCode::QueryTerminated)
        )
    );
    lab.collect(&mut conn);
    assert_eq!(conn.closed(), Some(CloseReason::QueryTerminated));
}

#[test]
fn malformed_and_incomplete_queries_get_the_rfc_answers() {
    let lab = Lab::new(true, true);
    // S-29: LQ_END_TIME in ACTIVELEASEQUERY.
    let mut conn = lab.connection();
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::ActiveLeasequery, 9, None, Some(NOW)),
    );
    assert_eq!(summary(&frames[0]).2, Some(StatusCode::MalformedQuery));
    assert_eq!(
        conn.closed(),
        Some(CloseReason::Refused(StatusCode::MalformedQuery))
    );
    // D-2: ACTIVELEASEQUERY without CLIENTID: MalformedQuery, SERVERID, no CLIENTID.
    let mut conn = lab.connection();
    let frames = lab.exchange(&mut conn, &[0, 4, 22, 0, 0, 10]);
    assert_eq!(
        summary(&frames[0]),
        (
            MessageType::LeasequeryReply,
            10,
            Some(StatusCode::MalformedQuery)
        )
    );
    let reply = Message::parse(&frames[0]).unwrap();
    assert!(reply.options.find(OptionCode::ClientId).is_none());
    assert!(reply.options.find(OptionCode::ServerId).is_some());
    // S-23: LEASEQUERY without CLIENTID is discarded; the connection stays.
    let mut conn = lab.connection();
    assert!(lab.exchange(&mut conn, &[0, 4, 14, 0, 0, 11]).is_empty());
    assert_eq!(conn.closed(), None);
    // S-24: a REPLY sent to the server is discarded; S-25: a SOLICIT closes.
    assert!(lab.exchange(&mut conn, &[0, 4, 15, 0, 0, 12]).is_empty());
    assert_eq!(conn.closed(), None);
    assert!(lab.exchange(&mut conn, &[0, 4, 1, 0, 0, 13]).is_empty());
    assert_eq!(
        conn.closed(),
        Some(CloseReason::Protocol("unexpected_message"))
    );
    // Framing: a message-size below 4 closes at once.
    let mut conn = lab.connection();
    lab.exchange(&mut conn, &[0, 2, 1, 2]);
    assert_eq!(
        conn.closed(),
        Some(CloseReason::Protocol("frame_too_short"))
    );
    // S-31..S-35: a link-address outside every configured link is NotConfigured.
    let mut conn = lab.connection();
    let lq = LqQueryOut {
        query: QueryOut::LinkAddress,
        link_address: "2001:db8:99::1".parse().unwrap(),
        oro: &[],
    };
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::Leasequery, 14, Some(lq), None),
    );
    assert_eq!(summary(&frames[0]).2, Some(StatusCode::NotConfigured));
}

#[test]
fn starttls_is_refused_byte_for_byte() {
    let lab = Lab::new(true, true);
    let mut conn = lab.connection();
    let mut buf = [0u8; 8];
    let n = framed(&mut buf, |w| write_starttls(w, Xid::new(0x123456).unwrap())).unwrap();
    let frames = lab.exchange(&mut conn, &buf[..n]);
    // protocol.md §2.9: REPLY refusing TLS (SERVERID + status 15), S-17.
    let expected = [
        0x07, 0x12, 0x34, 0x56, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22,
        0x33, 0x44, 0x55, 0x00, 0x0d, 0x00, 0x02, 0x00, 0x0f,
    ];
    assert_eq!(frames, [expected.to_vec()]);
    assert_eq!(conn.closed(), Some(CloseReason::TlsRefused));
}

#[test]
fn bulk_queries_run_one_after_another_up_to_the_limit() {
    let mut lab = Lab::new(false, false);
    for n in 1..=3 {
        let d = duid(n);
        lab.shard
            .apply(&update(&d, n, NOW, &RelayInfo::NONE), NOW)
            .unwrap();
    }
    let mut conn = lab.connection();
    // Four queries in one read: three run in turn (S-12), the fourth is over the limit.
    let mut bytes = Vec::new();
    for xid in 20..24 {
        bytes.extend(query(MessageType::Leasequery, xid, all_bindings(), None));
    }
    let frames = lab.exchange(&mut conn, &bytes);
    let seen: Vec<(MessageType, u32, Option<StatusCode>)> =
        frames.iter().map(|f| summary(f)).collect();
    let mut expected = Vec::new();
    for xid in 20..23 {
        expected.push((MessageType::LeasequeryReply, xid, None));
        expected.push((MessageType::LeasequeryData, xid, None));
        expected.push((MessageType::LeasequeryData, xid, None));
        expected.push((MessageType::LeasequeryDone, xid, None));
    }
    expected.push((
        MessageType::LeasequeryReply,
        23,
        Some(StatusCode::QueryTerminated),
    ));
    assert_eq!(seen, expected);
    assert_eq!(
        conn.closed(),
        Some(CloseReason::Refused(StatusCode::QueryTerminated))
    );
}

#[test]
fn permissions_timeouts_and_end_of_stream() {
    let lab = Lab::new(true, true);
    // S-9, S-27: a requestor permitted only QUERY_BY_ADDRESS asks for all bindings.
    let mut conn = Connection::new(&lab.policy, Permitted(1 << 1), 0);
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::Leasequery, 30, all_bindings(), None),
    );
    assert_eq!(summary(&frames[0]).2, Some(StatusCode::NotAllowed));
    // S-10: no complete query within BULK_LQ_DATA_TIMEOUT.
    let mut conn = lab.connection();
    conn.check_timeout(&lab.policy, 299_999);
    assert_eq!(conn.closed(), None);
    conn.check_timeout(&lab.policy, 300_000);
    assert_eq!(conn.closed(), Some(CloseReason::QueryTimeout));
    // S-63: the requestor closed its side.
    let mut conn = lab.connection();
    conn.received(0, &lab.ctx(0));
    assert_eq!(conn.closed(), Some(CloseReason::PeerClosed));
}

/// A worker recycles each slot's connection: after `reopen` nothing of the old connection
/// shows (query count, a failed stream, a running stream).
#[test]
fn a_reopened_connection_starts_clean() {
    let lab = Lab::new(true, true);
    let mut conn = lab.connection();
    // Three queries (the limit, S-12), then the fourth is refused and closes.
    for xid in 1..=3 {
        let frames = lab.exchange(
            &mut conn,
            &query(MessageType::Leasequery, xid, all_bindings(), None),
        );
        assert_eq!(
            summary(&frames[0]),
            (MessageType::LeasequeryReply, xid, None)
        );
    }
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::Leasequery, 4, all_bindings(), None),
    );
    assert_eq!(summary(&frames[0]).2, Some(StatusCode::QueryTerminated));
    assert!(conn.closed().is_some());
    conn.reopen(Permitted::ALL, 0);
    assert_eq!(conn.closed(), None);
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::Leasequery, 5, all_bindings(), None),
    );
    assert_eq!(
        summary(&frames[0]),
        (MessageType::LeasequeryReply, 5, None),
        "count reset"
    );
    // An Active stream, then a framing error; the next connection on the slot is clean.
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::ActiveLeasequery, 6, None, None),
    );
    assert_eq!(summary(&frames[0]), (MessageType::LeasequeryReply, 6, None));
    assert!(conn.is_active());
    lab.exchange(&mut conn, &[0, 1, 0]);
    assert!(matches!(conn.closed(), Some(CloseReason::Protocol(_))));
    conn.reopen(Permitted::ALL, 0);
    assert!(
        !conn.is_active(),
        "the stream ended with the old connection"
    );
    let frames = lab.exchange(
        &mut conn,
        &query(MessageType::ActiveLeasequery, 7, None, None),
    );
    assert_eq!(summary(&frames[0]), (MessageType::LeasequeryReply, 7, None));
    assert_eq!(conn.closed(), None, "the decoder's failure was forgotten");
}

/// The DUIDs inside the CLIENT_DATA of `frames`.
fn clients(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for frame in frames {
        let m = Message::parse(frame).unwrap();
        if let Some(Opt::ClientData(inner)) = m.options.find(OptionCode::ClientData) {
            if let Some(Opt::ClientId(d)) = inner.find(OptionCode::ClientId) {
                found.push(d.bytes().to_vec());
            }
        }
    }
    found
}

/// Index lookups (S-32 from the owners' indexes): a Bulk query waits for its answers; an
/// answer that comes late, for an earlier query on the connection, is not taken for the
/// answer of the query now running.
#[test]
fn lookup_answers_belong_to_their_query() {
    let mut lab = Lab::new(true, true);
    let (d1, d2) = (duid(1), duid(2));
    for (n, d) in [(1, &d1), (2, &d2)] {
        lab.shard
            .apply(&update(d, n, NOW, &RelayInfo::NONE), NOW)
            .unwrap();
    }
    let by_client = |xid: u32, d: &[u8]| {
        let lq = LqQueryOut {
            query: QueryOut::ClientId(d),
            link_address: Ipv6Addr::UNSPECIFIED,
            oro: &[],
        };
        query(MessageType::Leasequery, xid, Some(lq), None)
    };
    let mut conn = lab.connection();
    assert!(
        lab.exchange(&mut conn, &by_client(1, &d1)).is_empty(),
        "waits for its lookups"
    );
    let (key1, q1) = conn.take_lookup(1, 0).expect("a point query looks up");
    assert!(conn.take_lookup(1, 0).is_none(), "once");
    // No answer yet and the lookups are given up: the query scans.
    conn.lookup_failed();
    assert_eq!(clients(&lab.collect(&mut conn)), [d1]);
    // The next query waits; query 1's late answer does not count for it.
    assert!(lab.exchange(&mut conn, &by_client(2, &d2)).is_empty());
    let (key2, q2) = conn.take_lookup(1, 0).expect("looks up");
    assert_ne!(q1, q2);
    conn.found(q1, &lookup(&lab.shard, 0, &key1), &lab.readers);
    assert!(
        lab.collect(&mut conn).is_empty(),
        "still waiting for its own answer"
    );
    conn.found(q2, &lookup(&lab.shard, 0, &key2), &lab.readers);
    assert_eq!(clients(&lab.collect(&mut conn)), [d2]);
}
