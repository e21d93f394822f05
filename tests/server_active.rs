//! Active Leasequery sessions over real shards (RFC 7653; protocol.md S-49, S-52..S-59,
//! D-4, D-13, D-15), checked on the framed bytes they write.

mod store_common;

use std::net::Ipv6Addr;

use lqd::server::active::{ActiveSession, Progress};
use lqd::server::out::{Batch, Bodies, Part, DATA_FRAME_MAX};
use lqd::server::select::Selection;
use lqd::store::model::{Lease, LeaseState, RelayInfo};
use lqd::store::{LeaseUpdate, LogReader, Shard};
use lqd::wire::build::{framed, write_query, QueryMessage};
use lqd::wire::client_data::LeaseKind;
use lqd::wire::{
    parse_query, FrameDecoder, Message, MessageType, Opt, OptionCode, StatusCode, Xid,
};
use store_common::{config, duid, NOW};

const SERVER: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];
const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const IDLE_MS: u64 = 60_000;

struct Lab {
    _dirs: Vec<tempfile::TempDir>,
    shards: Vec<Shard>,
    readers: Vec<LogReader>,
}

impl Lab {
    fn new(segments_max: usize) -> Self {
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let shards: Vec<Shard> = dirs
            .iter()
            .map(|d| {
                Shard::open(config(d.path(), 64 * 1024, segments_max), NOW)
                    .unwrap()
                    .0
            })
            .collect();
        let readers = shards.iter().map(Shard::reader).collect();
        Self {
            _dirs: dirs,
            shards,
            readers,
        }
    }

    /// Client `n` gets (or renews) its address at `at`.
    fn change(&mut self, n: u32, at: u32) {
        let d = duid(n);
        let lease = Lease {
            kind: LeaseKind::Address(Ipv6Addr::new(
                0x2001,
                0xdb8,
                1,
                0,
                0,
                0,
                0,
                u16::try_from(n).unwrap(),
            )),
            state: LeaseState::Default,
            preferred_until: at + 1800,
            valid_until: at + 3600,
            ended_at: 0,
        };
        let relay = RelayInfo::NONE;
        let update = LeaseUpdate {
            duid: &d,
            link: 1,
            link_prefix: None,
            lease,
            cltt: at,
            relay: &relay,
        };
        let shard = lqd::store::shard_of(&d, 2) as usize;
        self.shards[shard].apply(&update, at).unwrap();
    }

    fn session(&self, start: Option<u32>, now_ms: u64) -> ActiveSession {
        let mut buf = [0u8; 256];
        let n = framed(&mut buf, |w| {
            write_query(
                w,
                &QueryMessage {
                    msg_type: MessageType::ActiveLeasequery,
                    xid: Xid::new(0x77).unwrap(),
                    client_id: &REQUESTOR,
                    lq_query: None,
                    oro: &[OptionCode::LqBaseTime],
                    start_time: start,
                    end_time: None,
                },
            )
        })
        .unwrap();
        let message = Message::parse(&buf[2..n]).unwrap();
        let q = parse_query(&message, &SERVER).unwrap();
        let selection = Selection::from_query(&q).unwrap();
        ActiveSession::new(
            q.xid,
            q.requestor.bytes(),
            selection,
            &self.readers,
            now_ms,
            IDLE_MS,
        )
    }
}

/// What one message says, for assertions.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Reply(Option<StatusCode>),
    Data(u32),
    Status(StatusCode),
    Keepalive,
    Done(StatusCode),
}

/// A connection's batch buffers and a worker's shared bodies, small enough that a session
/// needs several batches (at most three DATA each).
struct Out {
    own: Vec<u8>,
    parts: Vec<Part>,
    bodies: Bodies,
}

impl Out {
    fn new() -> Self {
        Self {
            own: vec![0; 3 * DATA_FRAME_MAX],
            parts: vec![Part::default(); 6],
            bodies: Bodies::new(64 * 1024),
        }
    }

    /// One batch, as the octets a socket would carry.
    fn fill(
        &mut self,
        session: &mut ActiveSession,
        lab: &Lab,
        now: u32,
        now_ms: u64,
    ) -> (Vec<u8>, Progress) {
        self.bodies.may_reset(now);
        let mut batch = Batch::new(&mut self.own, &mut self.parts, &mut self.bodies);
        let progress = session.fill(&lab.readers, &SERVER, now, now_ms, &mut batch);
        let mut bytes = vec![0; batch.len()];
        assert_eq!(batch.gather(&mut bytes), batch.len());
        (bytes, progress)
    }
}

/// Fill until idle; decode the frames.
fn drain(session: &mut ActiveSession, lab: &Lab, now: u32, now_ms: u64) -> (Vec<Seen>, Progress) {
    let mut wire = Vec::new();
    let mut last = Progress::More;
    let mut out = Out::new();
    for _ in 0..10_000 {
        let (bytes, progress) = out.fill(session, lab, now, now_ms);
        wire.extend_from_slice(&bytes);
        last = progress;
        if progress != Progress::More {
            break;
        }
    }
    let mut decoder = FrameDecoder::new(u16::MAX);
    assert_eq!(decoder.extend(&wire), wire.len());
    let mut seen = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        seen.push(describe(frame, now));
    }
    (seen, last)
}

fn describe(frame: &[u8], now: u32) -> Seen {
    let m = Message::parse(frame).unwrap();
    assert_eq!(
        m.xid.value(),
        0x77,
        "every answer carries the query's xid (R-1)"
    );
    assert_eq!(
        m.options.find(OptionCode::LqBaseTime),
        Some(Opt::LqBaseTime(now)),
        "S-49"
    );
    let status = match m.options.find(OptionCode::StatusCode) {
        Some(Opt::Status(s)) => Some(s.code),
        _ => None,
    };
    match m.msg_type {
        MessageType::LeasequeryReply => Seen::Reply(status),
        MessageType::LeasequeryDone => Seen::Done(status.expect("DONE with a status")),
        MessageType::LeasequeryData => match (m.options.find(OptionCode::ClientData), status) {
            (Some(Opt::ClientData(inner)), _) => {
                let Some(Opt::ClientId(d)) = inner.find(OptionCode::ClientId) else {
                    panic!()
                };
                Seen::Data(u32::from(*d.bytes().last().unwrap()))
            }
            (_, Some(code)) => Seen::Status(code),
            (_, None) => Seen::Keepalive,
        },
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn live_changes_follow_the_reply_then_keepalive_then_query_terminated() {
    let mut lab = Lab::new(8);
    lab.change(1, NOW);
    let mut session = lab.session(None, 0);
    // S-36: without a start time only what changes after the query is sent.
    assert_eq!(drain(&mut session, &lab, NOW, 0).0, [Seen::Reply(None)]);
    lab.change(2, NOW + 1);
    lab.change(3, NOW + 1);
    lab.change(2, NOW + 2);
    let (seen, progress) = drain(&mut session, &lab, NOW + 2, 1_000);
    // Client 2's first change is superseded before it is sent: only its current state
    // (S-51), once.
    let mut data: Vec<Seen> = seen;
    data.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(data, [Seen::Data(2), Seen::Data(3)]);
    assert_eq!(progress, Progress::Idle);
    // D-15: a keepalive after ACTIVE_LQ_IDLE_TIMEOUT of silence, not before.
    assert!(drain(&mut session, &lab, NOW + 30, 1_000 + IDLE_MS - 1)
        .0
        .is_empty());
    assert_eq!(
        drain(&mut session, &lab, NOW + 61, 1_000 + IDLE_MS).0,
        [Seen::Keepalive]
    );
    // S-59: shutdown ends the query with DONE QueryTerminated and BASE_TIME.
    session.terminate();
    let (seen, progress) = drain(&mut session, &lab, NOW + 70, 200_000);
    assert_eq!(seen, [Seen::Done(StatusCode::QueryTerminated)]);
    assert_eq!(progress, Progress::Ended);
}

#[test]
fn catch_up_sends_each_changed_client_once_then_catch_up_complete() {
    let mut lab = Lab::new(8);
    for n in 1..=10 {
        lab.change(n, NOW + n); // client n changed at NOW + n
    }
    lab.change(4, NOW + 20); // client 4 again: its latest state is at NOW + 20
    let mut session = lab.session(Some(NOW + 6), 0);
    let (seen, _) = drain(&mut session, &lab, NOW + 30, 0);
    assert_eq!(seen.first(), Some(&Seen::Reply(None)));
    assert_eq!(
        seen.last(),
        Some(&Seen::Status(StatusCode::CatchUpComplete)),
        "S-53"
    );
    let mut clients: Vec<u32> = seen
        .iter()
        .filter_map(|s| {
            if let Seen::Data(n) = s {
                Some(*n)
            } else {
                None
            }
        })
        .collect();
    clients.sort_unstable();
    assert_eq!(
        clients,
        [4, 6, 7, 8, 9, 10],
        "changed at or after the start, once each (S-56)"
    );
    assert!(!session.catching_up());
    // Real time after catch-up.
    lab.change(1, NOW + 31);
    assert_eq!(drain(&mut session, &lab, NOW + 31, 0).0, [Seen::Data(1)]);
}

#[test]
fn start_before_the_horizon_is_data_missing_then_real_time() {
    let mut lab = Lab::new(3);
    // Enough changes over time that 64 KiB segments recycle and the horizon moves.
    for i in 0..2_000u32 {
        lab.change(i % 150, NOW + i / 10);
    }
    let horizon = lab.readers.iter().map(LogReader::horizon).max().unwrap();
    assert!(horizon > NOW, "the horizon moved");
    let mut session = lab.session(Some(NOW), 0);
    let (seen, _) = drain(&mut session, &lab, NOW + 300, 0);
    assert_eq!(seen, [Seen::Reply(Some(StatusCode::DataMissing))], "S-54");
    lab.change(7, NOW + 301);
    assert_eq!(drain(&mut session, &lab, NOW + 301, 0).0, [Seen::Data(7)]);
}

/// S-49: a record stamped a second after the session's clock (the shard thread read the
/// next second first) is sent with LQ_BASE_TIME = its change time, so BASE_TIME + valid
/// lifetime is still the lease's expiry.
#[test]
fn base_time_follows_a_record_stamped_ahead_of_the_sender() {
    let mut lab = Lab::new(8);
    let mut session = lab.session(None, 0);
    drain(&mut session, &lab, NOW, 0);
    lab.change(5, NOW + 1); // valid until NOW + 1 + 3600
    let (bytes, _) = Out::new().fill(&mut session, &lab, NOW, 0);
    let mut decoder = FrameDecoder::new(u16::MAX);
    decoder.extend(&bytes);
    let frame = decoder.next_frame().unwrap().expect("one DATA").to_vec();
    let m = Message::parse(&frame).unwrap();
    assert_eq!(
        m.options.find(OptionCode::LqBaseTime),
        Some(Opt::LqBaseTime(NOW + 1))
    );
    let Some(Opt::ClientData(inner)) = m.options.find(OptionCode::ClientData) else {
        panic!()
    };
    let Some(Opt::IaAddr(a)) = inner.find(OptionCode::IaAddr) else {
        panic!()
    };
    assert_eq!(a.valid, 3600, "BASE_TIME + valid = NOW + 1 + 3600");
}
