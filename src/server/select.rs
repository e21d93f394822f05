//! Which bindings a query selects (protocol.md S-31..S-36, D-3, D-4, D-11, D-13).
//!
//! A [`Selection`] is copied out of a validated [`Query`] so that an Active session outlives
//! the frame it came in. It answers two questions: may a record match, from its header
//! alone (link and the relay-id / remote-id hashes, no decoding: the fan-out fast path), and
//! does a decoded binding match.

use core::net::Ipv6Addr;

use crate::ingest::links::Links;
use crate::store::model::{time_at_or_after, Binding, DuidBuf, InlineBytes, REMOTE_ID_LEN_MAX};
use crate::store::record::{key_hash, Header};
use crate::wire::client_data::LeaseKind;
use crate::wire::{OptionCode, Query, QueryKey, StatusCode};

/// What is selected by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// Every binding: an ACTIVELEASEQUERY without LQ_QUERY (S-36), or QUERY_BY_LINK_ADDRESS
    /// with link-address `::` (D-3).
    All,
    /// QUERY_BY_ADDRESS (S-31).
    Address(Ipv6Addr),
    /// QUERY_BY_CLIENTID (S-32).
    ClientId(DuidBuf),
    /// QUERY_BY_RELAY_ID (S-33).
    RelayId(DuidBuf),
    /// QUERY_BY_LINK_ADDRESS with a link-address (S-34).
    Link,
    /// QUERY_BY_REMOTE_ID (S-35): enterprise number and remote-id, the whole option data.
    RemoteId(InlineBytes<REMOTE_ID_LEN_MAX>),
}

/// A query's selection and output options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The key.
    pub key: Key,
    /// The link-address; `::` = any link.
    pub link_address: Ipv6Addr,
    /// LQ_START_TIME: changed at or after (S-52, D-11).
    pub start_time: Option<u32>,
    /// LQ_END_TIME: changed at or before (Bulk only, D-11).
    pub end_time: Option<u32>,
    /// OPTION_LQ_RELAY_DATA wanted in each CLIENT_DATA (S-46, D-1).
    pub relay_data: bool,
    /// LQ_BASE_TIME in every message (S-49, D-1).
    pub base_time: bool,
    /// Hash of the relay-id or remote-id key, as record headers carry it (0 = none).
    key_hash: u64,
}

impl Selection {
    /// The selection of a validated query. Key bytes longer than lqd stores cannot match
    /// any stored binding; they are kept truncated-free by refusing them here.
    pub fn from_query(query: &Query<'_>) -> Result<Self, StatusCode> {
        let (key, link_address) = match &query.filter {
            None => (Key::All, Ipv6Addr::UNSPECIFIED),
            Some(filter) => {
                let key = match filter.key {
                    QueryKey::Address(a) => Key::Address(a),
                    QueryKey::ClientId(d) => Key::ClientId(duid(d.bytes())?),
                    QueryKey::RelayId(d) => Key::RelayId(duid(d.bytes())?),
                    QueryKey::LinkAddress if filter.link_address.is_unspecified() => Key::All,
                    QueryKey::LinkAddress => Key::Link,
                    QueryKey::RemoteId(r) => Key::RemoteId(
                        InlineBytes::new(r.bytes()).ok_or(StatusCode::MalformedQuery)?,
                    ),
                };
                (key, filter.link_address)
            }
        };
        let key_hash = match &key {
            Key::RelayId(d) => key_hash(d.as_slice()),
            Key::RemoteId(r) => key_hash(r.as_slice()),
            _ => 0,
        };
        Ok(Self {
            key,
            link_address,
            start_time: query.start_time,
            end_time: query.end_time,
            relay_data: query.wants_in_client_data(OptionCode::LqRelayData),
            base_time: query.wants_base_time(),
            key_hash,
        })
    }

    /// S-31..S-35: a link-address must name a configured link, else NotConfigured.
    pub fn check_link(&self, links: &Links) -> Result<(), StatusCode> {
        if self.link_address.is_unspecified() || links.contains_address(self.link_address) {
            Ok(())
        } else {
            Err(StatusCode::NotConfigured)
        }
    }

    /// True when ended leases are reported as zero-lifetime entries: Active streams always,
    /// Bulk only with a time window (D-4).
    pub fn include_ended(&self, active: bool) -> bool {
        active || self.start_time.is_some() || self.end_time.is_some()
    }

    /// True when matching needs the binding decoded; false for every binding on every
    /// link, where the record's template alone is sent (the fan-out fast path).
    pub fn needs_binding(&self) -> bool {
        !(self.key == Key::All && self.link_address.is_unspecified())
    }

    /// Whether a record may match, from its header alone (no decoding).
    pub fn may_match(&self, header: &Header) -> bool {
        if !self.in_window(header.change_time) {
            return false;
        }
        match self.key {
            Key::RelayId(_) => header.relay_hash == self.key_hash,
            Key::RemoteId(_) => header.remote_hash == self.key_hash,
            _ => true,
        }
    }

    /// D-11: change time within [start, end], both inclusive.
    pub fn in_window(&self, change_time: u32) -> bool {
        self.start_time
            .is_none_or(|s| time_at_or_after(change_time, s))
            && self
                .end_time
                .is_none_or(|e| time_at_or_after(e, change_time))
    }

    /// Whether a binding matches the key and the link-address at `now`. An address is held
    /// by a live lease, or, when ended leases are reported (`include_ended`, D-4), by one
    /// that ended.
    pub fn matches(&self, binding: &Binding, now: u32, include_ended: bool) -> bool {
        let key_matches = match &self.key {
            Key::All | Key::Link => true,
            Key::Address(a) => binding
                .leases()
                .iter()
                .any(|l| (include_ended || l.is_live(now)) && holds(&l.kind, *a)),
            Key::ClientId(d) => binding.duid == *d,
            Key::RelayId(d) => binding.relay.relay_id == *d,
            Key::RemoteId(r) => binding.relay.remote_id == *r,
        };
        key_matches && self.on_link(binding)
    }

    /// The binding is on the link that the link-address names: inside the link's prefix, or
    /// equal to the link-address its relay reported (a relay's link-address identifies the
    /// link, S-34). With `::`, every link.
    fn on_link(&self, binding: &Binding) -> bool {
        let a = self.link_address;
        a.is_unspecified()
            || binding.link_prefix.is_some_and(|p| p.contains(a))
            || (binding.relay.is_some() && binding.relay.link_address == a)
    }
}

fn duid(bytes: &[u8]) -> Result<DuidBuf, StatusCode> {
    DuidBuf::new(bytes).ok_or(StatusCode::MalformedQuery)
}

/// The lease is on `address`, or is a delegated prefix containing it (S-31).
fn holds(kind: &LeaseKind, address: Ipv6Addr) -> bool {
    match *kind {
        LeaseKind::Address(a) => a == address,
        LeaseKind::Prefix(p, len) => {
            crate::store::model::Prefix { address: p, len }.contains(address)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Lease, LeaseState, Prefix, RelayInfo};
    use crate::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
    use crate::wire::{parse_query, Message, MessageType, Xid};

    const REQUESTOR: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    const CLIENT: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
    const RELAY: [u8; 10] = [0, 3, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 1];

    fn selection(query: QueryOut<'_>, link: &str, times: (Option<u32>, Option<u32>)) -> Selection {
        let mut buf = [0u8; 512];
        let n = framed(&mut buf, |w| {
            write_query(
                w,
                &QueryMessage {
                    msg_type: MessageType::Leasequery,
                    xid: Xid::new(1).unwrap(),
                    client_id: &REQUESTOR,
                    lq_query: Some(LqQueryOut {
                        query,
                        link_address: link.parse().unwrap(),
                        oro: &[OptionCode::LqRelayData],
                    }),
                    oro: &[OptionCode::LqBaseTime],
                    start_time: times.0,
                    end_time: times.1,
                },
            )
        })
        .unwrap();
        let message = Message::parse(&buf[2..n]).unwrap();
        Selection::from_query(&parse_query(&message, &[0, 3, 0, 1, 1]).unwrap()).unwrap()
    }

    fn binding() -> Binding {
        let mut b = Binding::new(&CLIENT, 2).unwrap();
        b.link_prefix = Some(Prefix {
            address: "2001:db8:2::".parse().unwrap(),
            len: 64,
        });
        b.upsert(Lease {
            kind: LeaseKind::Prefix("2001:db8:9::".parse().unwrap(), 56),
            state: LeaseState::Default,
            preferred_until: 10,
            valid_until: 20,
            ended_at: 0,
        })
        .unwrap();
        b.relay = RelayInfo::NONE;
        b.relay.relay_id.set(&RELAY);
        b.relay.remote_id.set(b"\x00\x00\x11\x8bcm-0001");
        b.relay.link_address = "2001:db8:2::1".parse().unwrap();
        b
    }

    #[test]
    fn each_query_type_matches_its_binding() {
        let b = binding();
        let inside = "2001:db8:9:ff::1".parse().unwrap();
        let none = (None, None);
        assert!(
            selection(QueryOut::Address(inside), "::", none).matches(&b, 0, false),
            "S-31 prefix"
        );
        let outside = "2001:db8:a::1".parse().unwrap();
        assert!(!selection(QueryOut::Address(outside), "::", none).matches(&b, 0, false));
        assert!(
            selection(QueryOut::ClientId(&CLIENT), "::", none).matches(&b, 0, false),
            "S-32"
        );
        assert!(!selection(QueryOut::ClientId(&REQUESTOR), "::", none).matches(&b, 0, false));
        let by_relay = selection(QueryOut::RelayId(&RELAY), "::", none);
        assert!(by_relay.matches(&b, 0, false), "S-33");
        assert!(
            by_relay.relay_data && by_relay.base_time,
            "ORO 47 and 100 (D-1)"
        );
        let remote = b"\x00\x00\x11\x8bcm-0001";
        assert!(
            selection(QueryOut::RemoteId(remote), "::", none).matches(&b, 0, false),
            "S-35"
        );
        let all = selection(QueryOut::LinkAddress, "::", none);
        assert_eq!(all.key, Key::All, "D-3: link-address :: selects everything");
        let link = selection(QueryOut::LinkAddress, "2001:db8:2::1", none);
        assert!(
            link.matches(&b, 0, false),
            "S-34: inside the link prefix / the relay's link-address"
        );
        assert!(!selection(QueryOut::LinkAddress, "2001:db8:3::1", none).matches(&b, 0, false));
        let elsewhere = selection(QueryOut::ClientId(&CLIENT), "2001:db8:3::1", none);
        assert!(
            !elsewhere.matches(&b, 0, false),
            "a non-:: link-address restricts to that link"
        );
    }

    #[test]
    fn windows_and_header_fast_path() {
        let window = selection(QueryOut::RelayId(&RELAY), "::", (Some(100), Some(200)));
        assert!(window.in_window(100) && window.in_window(200) && !window.in_window(201));
        assert!(!window.in_window(99));
        assert!(
            window.include_ended(false),
            "D-4: a window reports ended leases"
        );
        let plain = selection(QueryOut::ClientId(&CLIENT), "::", (None, None));
        assert!(!plain.include_ended(false) && plain.include_ended(true));
        let mut header = Header::decode(&[0; crate::store::record::HEADER_LEN]);
        header.change_time = 150;
        assert!(!window.may_match(&header), "relay hash differs");
        header.relay_hash = key_hash(&RELAY);
        assert!(window.may_match(&header));
        header.change_time = 250;
        assert!(!window.may_match(&header), "outside the window");
    }

    #[test]
    fn unknown_links_are_not_configured() {
        let mut links = Links::default();
        links.insert(
            2,
            Prefix {
                address: "2001:db8:2::".parse().unwrap(),
                len: 64,
            },
        );
        let known = selection(QueryOut::LinkAddress, "2001:db8:2::1", (None, None));
        assert_eq!(known.check_link(&links), Ok(()));
        let unknown = selection(QueryOut::LinkAddress, "2001:db8:7::1", (None, None));
        assert_eq!(unknown.check_link(&links), Err(StatusCode::NotConfigured));
        let any = selection(QueryOut::ClientId(&CLIENT), "::", (None, None));
        assert_eq!(any.check_link(&links), Ok(()));
    }
}
