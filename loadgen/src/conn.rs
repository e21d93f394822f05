//! One Active requestor's view of its stream: which query it sent, what it has seen per
//! client, and how each frame counts (no sockets here: the fleet reads, this judges).
//!
//! Definitions (printed with the report):
//! - **duplicate**: a (client, change) received a second time on a live stream;
//! - **out of order**: a change older than one already received for that client;
//! - **missing**: a client whose final written state never arrived on a connection that
//!   read to the end (lqd may coalesce intermediate states of a client, RFC 7653 §7 / S-51,
//!   so only the last state per client is required);
//! - **coalesced**: intermediate states not received (allowed, counted for information);
//! - during a catch-up (LQ_START_TIME after a reconnect) a state already seen is a
//!   **catch-up repeat**, not a duplicate: LQ_START_TIME has one-second resolution.

use std::net::Ipv6Addr;

use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::{MessageType, OptionCode, StatusCode, Xid};

use crate::population::{link_prefix, relay_duid, Change, Population, Tlvs};
use crate::stats::ThreadStats;

/// The requestor DUID every connection sends (DUID-LL 00:aa:bb:cc:dd:ee).
const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

/// What a connection asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    /// All bindings (no LQ_QUERY, S-36).
    All,
    /// QUERY_BY_LINK_ADDRESS with link `n`'s prefix.
    Link(u32),
    /// QUERY_BY_RELAY_ID with relay `n`'s DUID.
    Relay(u32),
}

impl Filter {
    /// True when client `c`'s changes match.
    pub(crate) fn matches(self, population: &Population, c: u32) -> bool {
        match self {
            Self::All => true,
            Self::Link(l) => population.link_of(c) == l,
            Self::Relay(r) => population.relay_of(c) == Some(r),
        }
    }
}

/// Where a connection's stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Query sent, REPLY not yet received.
    Querying,
    /// Receiving live changes.
    Live,
    /// Receiving a catch-up (until DATA CatchUpComplete).
    CatchingUp,
    /// Stopped reading on purpose (the "stopped readers" mix).
    Stopped,
    /// Closed by lqd or after an error.
    Closed,
}

/// A framed ACTIVELEASEQUERY with ORO [LQ_BASE_TIME] for `filter`, from `start_time`.
pub(crate) fn active_query(xid: u32, filter: Filter, start_time: Option<u32>) -> Vec<u8> {
    let relay;
    let lq_query = match filter {
        Filter::All => None,
        Filter::Link(l) => Some(LqQueryOut {
            query: QueryOut::LinkAddress,
            link_address: link_prefix(l),
            oro: &[],
        }),
        Filter::Relay(r) => {
            relay = relay_duid(r);
            Some(LqQueryOut {
                query: QueryOut::RelayId(&relay),
                link_address: Ipv6Addr::UNSPECIFIED,
                oro: &[],
            })
        }
    };
    let message = QueryMessage {
        msg_type: MessageType::ActiveLeasequery,
        xid: Xid::new(xid & 0x00ff_ffff).expect("masked to 24 bits"),
        client_id: &REQUESTOR,
        lq_query,
        oro: &[OptionCode::LqBaseTime],
        start_time,
        end_time: None,
    };
    let mut buf = [0u8; 256];
    let n = framed(&mut buf, |w| write_query(w, &message)).expect("a query fits 256 octets");
    buf[..n].to_vec()
}

/// One requestor's stream state.
pub(crate) struct Stream {
    /// The query's filter.
    pub(crate) filter: Filter,
    /// Where the stream is.
    pub(crate) phase: Phase,
    /// The last LQ_BASE_TIME seen (the next catch-up's LQ_START_TIME).
    pub(crate) base_time: Option<u32>,
    /// True when the query in flight carries LQ_START_TIME (a catch-up follows the REPLY).
    resumed: bool,
    /// Distinct states received (live and catch-up).
    received: u64,
    /// Clients of the filter that change at all in the planned schedule.
    finals_needed: u32,
    /// Of those, clients whose final planned state arrived.
    finals_seen: u32,
    /// Changes the schedule plans.
    planned: u64,
    /// Per client: 0 = nothing seen, else 1 + the highest change number seen.
    seen: Box<[u16]>,
}

impl Stream {
    /// A stream for `filter` over the population, whose schedule plans `planned` changes;
    /// its query just sent.
    pub(crate) fn new(filter: Filter, population: &Population, planned: u64) -> Self {
        let clients = population.clients;
        let finals_needed = (0..clients)
            .filter(|&c| filter.matches(population, c) && population.final_k(c, planned).is_some())
            .count();
        Self {
            finals_needed: u32::try_from(finals_needed).expect("at most `clients`, a u32"),
            finals_seen: 0,
            planned,
            filter,
            phase: Phase::Querying,
            base_time: None,
            resumed: false,
            received: 0,
            seen: vec![0; clients as usize].into_boxed_slice(),
        }
    }

    /// True once every client of the filter is at its final planned state.
    pub(crate) const fn complete(&self) -> bool {
        self.finals_seen == self.finals_needed
    }

    /// A new query on a new connection, resuming from the last LQ_BASE_TIME seen; returns
    /// the framed query.
    pub(crate) fn resume(&mut self, xid: u32) -> Vec<u8> {
        self.phase = Phase::Querying;
        self.resumed = self.base_time.is_some();
        active_query(xid, self.filter, self.base_time)
    }

    /// Judge one frame (without its size prefix) received at `now_ns`; `scheduled_ns` maps
    /// a change index to its scheduled write instant.
    pub(crate) fn frame(
        &mut self,
        frame: &[u8],
        population: &Population,
        now_ns: u64,
        scheduled_ns: &dyn Fn(u64) -> u64,
        stats: &mut ThreadStats,
    ) {
        assert!(
            frame.len() >= 4,
            "the frame decoder passes whole messages only"
        );
        let mut base_time = None;
        let mut client_data = None;
        let mut status = None;
        for (code, data) in Tlvs(&frame[4..]) {
            match code {
                100 if data.len() == 4 => {
                    base_time = Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                }
                45 => client_data = Some(data),
                13 if data.len() >= 2 => {
                    status = Some(StatusCode::from_code(u16::from_be_bytes([
                        data[0], data[1],
                    ])));
                }
                0xffff => stats.error("options overrun in a frame"),
                _ => {}
            }
        }
        if base_time.is_some() {
            self.base_time = base_time;
        }
        match MessageType::from_code(frame[0]) {
            MessageType::LeasequeryData => match (client_data, base_time) {
                (Some(data), Some(base)) => {
                    stats.data_frames += 1;
                    stats.sample(frame);
                    match population.recognise(data, base) {
                        Ok(change) => self.change(change, population, now_ns, scheduled_ns, stats),
                        Err(kind) => stats.error(kind),
                    }
                }
                (Some(_), None) => {
                    stats.data_frames += 1;
                    stats.error("DATA without LQ_BASE_TIME");
                }
                (None, _) => self.status_data(status, stats),
            },
            MessageType::LeasequeryReply => self.reply(status, stats),
            MessageType::LeasequeryDone => {
                stats.other_frames += 1;
                stats.error("DONE from lqd");
                self.phase = Phase::Closed;
            }
            _ => {
                stats.other_frames += 1;
                stats.error("unexpected message type");
            }
        }
    }

    fn reply(&mut self, status: Option<StatusCode>, stats: &mut ThreadStats) {
        stats.other_frames += 1;
        if self.phase != Phase::Querying {
            stats.error("a second REPLY");
            return;
        }
        match status {
            None | Some(StatusCode::Success) => {}
            Some(StatusCode::DataMissing) => {
                stats.error("REPLY DataMissing after a reconnect");
                self.phase = Phase::Live;
                return;
            }
            Some(_) => {
                stats.error("REPLY with an error status");
                self.phase = Phase::Closed;
                return;
            }
        }
        self.phase = if self.resumed {
            Phase::CatchingUp
        } else {
            Phase::Live
        };
    }

    fn status_data(&mut self, status: Option<StatusCode>, stats: &mut ThreadStats) {
        stats.other_frames += 1;
        match status {
            None => stats.keepalives += 1,
            Some(StatusCode::CatchUpComplete) if self.phase == Phase::CatchingUp => {
                self.phase = Phase::Live;
            }
            Some(StatusCode::CatchUpComplete) => {}
            Some(StatusCode::DataMissing) => stats.error("DATA DataMissing"),
            Some(_) => stats.error("DATA with an unexpected status"),
        }
    }

    fn change(
        &mut self,
        change: Change,
        population: &Population,
        now_ns: u64,
        scheduled_ns: &dyn Fn(u64) -> u64,
        stats: &mut ThreadStats,
    ) {
        let c = change.client as usize;
        if !self.filter.matches(population, change.client) {
            stats.error("a change outside the query's filter");
            return;
        }
        let Ok(mark) = u16::try_from(change.k + 1) else {
            stats.error("change number beyond the schedule");
            return;
        };
        let seen = self.seen[c];
        let catching_up = self.phase == Phase::CatchingUp;
        if mark <= seen {
            match (mark == seen, catching_up) {
                (true, true) => stats.catchup_repeats += 1,
                (true, false) => stats.duplicates += 1,
                (false, _) => stats.out_of_order += 1,
            }
            return;
        }
        self.seen[c] = mark;
        self.received += 1;
        if population.final_k(change.client, self.planned) == Some(change.k) {
            self.finals_seen += 1;
        }
        if catching_up {
            stats.catchup_frames += 1;
            return;
        }
        let scheduled = scheduled_ns(population.index_of(change));
        let micros = now_ns.saturating_sub(scheduled) / 1000;
        stats.latency.saturating_record(micros.max(1));
    }

    /// At the end: count missing final states and coalesced intermediates after `written`
    /// changes.
    pub(crate) fn check(&self, population: &Population, written: u64, stats: &mut ThreadStats) {
        stats.checked += 1;
        let mut expected = 0;
        for c in 0..population.clients {
            if !self.filter.matches(population, c) {
                continue;
            }
            let Some(last) = population.final_k(c, written) else {
                continue;
            };
            expected += last + 1;
            if u64::from(self.seen[c as usize]) != last + 1 {
                stats.missing += 1;
            }
        }
        stats.expected += expected;
        stats.coalesced += expected.saturating_sub(self.received);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lqd::wire::build::write_data;
    use lqd::wire::EPOCH_2000_UNIX;

    const BASE: u32 = 800_000_000;

    fn population() -> Population {
        Population {
            clients: 4,
            links: 2,
            relays: 0,
            pd_every: 0,
            expire_base: u64::from(BASE) + EPOCH_2000_UNIX + 100,
        }
    }

    /// A framed DATA for client `c`'s change `k`, without its size prefix.
    fn data(c: u8, k: u32) -> Vec<u8> {
        let mut cd = vec![0, 1, 0, 10, 0, 3, 0, 1, 2, 0x4c, 0, 0, 0, c, 0, 5, 0, 24];
        cd.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        cd.extend_from_slice(&50u32.to_be_bytes());
        cd.extend_from_slice(&(100 + k).to_be_bytes());
        let len = u16::try_from(cd.len()).unwrap().to_be_bytes();
        cd.splice(0..0, [0, 45, len[0], len[1]]);
        let mut buf = [0u8; 256];
        let xid = Xid::new(1).unwrap();
        let n = framed(&mut buf, |w| {
            write_data(w, xid, None, Some(BASE), Some(&cd))
        })
        .unwrap();
        buf[2..n].to_vec()
    }

    fn reply() -> Vec<u8> {
        vec![15, 0, 0, 1]
    }

    #[test]
    fn counts_duplicates_out_of_order_and_missing() {
        let p = population();
        let mut s = Stream::new(Filter::All, &p, 10);
        let mut stats = ThreadStats::new();
        let at = |g: u64| g * 1_000;
        s.frame(&reply(), &p, 0, &at, &mut stats);
        assert_eq!(s.phase, Phase::Live);
        for (c, k) in [(0, 0), (1, 0), (0, 1), (0, 1), (1, 0), (2, 0)] {
            s.frame(&data(c, k), &p, 10_000_000, &at, &mut stats);
        }
        assert_eq!(stats.data_frames, 6);
        assert_eq!(stats.duplicates, 2, "(0,1) and (1,0) again");
        assert_eq!(stats.latency.len(), 4);
        s.frame(&data(0, 0), &p, 10_000_000, &at, &mut stats);
        assert_eq!(stats.out_of_order, 1);
        // 10 changes written: client 0 ends at k 2, 1 at k 2, 2 and 3 at k 1.
        assert!(!s.complete());
        s.check(&p, 10, &mut stats);
        assert_eq!(stats.missing, 4);
        assert_eq!(stats.expected, 10);
        // Received: (0,0), (1,0), (0,1), (2,0).
        assert_eq!(stats.coalesced, 10 - 4);
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    }

    #[test]
    fn filters_and_queries() {
        let p = population();
        assert!(Filter::Link(1).matches(&p, 3));
        assert!(!Filter::Link(1).matches(&p, 2));
        let q = active_query(7, Filter::Link(0), Some(5));
        assert_eq!(q[2], 22, "ACTIVELEASEQUERY");
        assert_eq!(usize::from(u16::from_be_bytes([q[0], q[1]])), q.len() - 2);
        let mut s = Stream::new(Filter::Link(0), &p, 10);
        let mut stats = ThreadStats::new();
        s.frame(&reply(), &p, 0, &|g| g, &mut stats);
        s.frame(&data(1, 0), &p, 5, &|g| g, &mut stats);
        assert_eq!(stats.errors["a change outside the query's filter"], 1);
    }
}
