//! One binding as a requestor holds it: an owned copy of one OPTION_CLIENT_DATA (one client
//! on one link, RFC 5007 §4.1.2.2) with the LQ_BASE_TIME of the message that carried it.

use core::net::Ipv6Addr;

use crate::wire::client_data::{LeaseKind, LIFETIME_INFINITE};
use crate::wire::{Opt, OptionList};

use super::time;

/// Most leases lq accepts in one CLIENT_DATA. A larger one is rejected as malformed (the
/// parser rejects, it never skips: style.md S12), which bounds memory per message.
pub const LEASES_PER_BINDING_MAX: usize = 256;

/// One address or delegated prefix of a binding, lifetimes relative to the base time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Address (IAADDR) or prefix (IAPREFIX).
    pub kind: LeaseKind,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
    /// Valid lifetime, seconds; 0 = the lease ended: delete it (D-4).
    pub valid: u32,
}

impl Lease {
    /// True when the lease ended (zero valid lifetime, D-4).
    pub const fn ended(&self) -> bool {
        self.valid == 0
    }

    /// Expiry in server time: base + valid; `None` for infinite or ended leases (D-14).
    pub const fn expires(&self, base_time: u32) -> Option<u32> {
        if self.valid == 0 || self.valid == LIFETIME_INFINITE {
            None
        } else {
            Some(base_time.wrapping_add(self.valid))
        }
    }

    /// The lease key as text: `2001:db8::1` or `2001:db8:100::/56`.
    pub fn key(&self) -> String {
        match self.kind {
            LeaseKind::Address(a) => a.to_string(),
            LeaseKind::Prefix(p, len) => format!("{p}/{len}"),
        }
    }
}

/// Relay information of a binding (OPTION_LQ_RELAY_DATA, S-46): where the server heard it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayInfo {
    /// The relay's address (peer-address).
    pub peer_address: Ipv6Addr,
    /// The link-address of the outermost RELAY-FORW.
    pub link_address: Ipv6Addr,
}

/// One client on one link, as the server reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The client's DUID.
    pub client_id: Vec<u8>,
    /// Its leases (ended ones with zero lifetimes, D-4).
    pub leases: Vec<Lease>,
    /// Seconds between the last contact and the message (CLT_TIME).
    pub clt_time: u32,
    /// Relay data, when asked for and held.
    pub relay: Option<RelayInfo>,
    /// LQ_BASE_TIME of the message, when it carried one.
    pub base_time: Option<u32>,
}

/// Why a CLIENT_DATA was not turned into a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// No CLT_TIME: silently dropped.
    NoCltTime,
    /// No CLIENTID: the binding cannot be keyed (RFC 5007 §4.1.2.2 requires it).
    NoClientId,
}

/// A CLIENT_DATA holding more leases than [`LEASES_PER_BINDING_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyLeases;

impl Binding {
    /// The binding in `client_data`, carried by a message with `base_time`.
    /// `Ok(Err(_))` is a CLIENT_DATA to drop; `Err` a message to reject.
    pub fn decode(
        client_data: OptionList<'_>,
        base_time: Option<u32>,
    ) -> Result<Result<Self, Dropped>, TooManyLeases> {
        let mut client_id = None;
        let mut clt_time = None;
        let mut relay = None;
        let mut leases = Vec::new();
        for opt in client_data.iter() {
            let lease = match opt {
                Opt::ClientId(d) => {
                    client_id = Some(d.bytes().to_vec());
                    continue;
                }
                Opt::CltTime(t) => {
                    clt_time = Some(t);
                    continue;
                }
                Opt::LqRelayData(r) => {
                    relay = Some(RelayInfo {
                        peer_address: r.peer_address,
                        link_address: r.relay.link_address,
                    });
                    continue;
                }
                Opt::IaAddr(a) => Lease {
                    kind: LeaseKind::Address(a.address),
                    preferred: a.preferred,
                    valid: a.valid,
                },
                Opt::IaPrefix(p) => Lease {
                    kind: LeaseKind::Prefix(p.prefix, p.prefix_len),
                    preferred: p.preferred,
                    valid: p.valid,
                },
                _ => continue,
            };
            if leases.len() == LEASES_PER_BINDING_MAX {
                return Err(TooManyLeases);
            }
            leases.push(lease);
        }
        let Some(clt_time) = clt_time else {
            return Ok(Err(Dropped::NoCltTime));
        };
        let Some(client_id) = client_id else {
            return Ok(Err(Dropped::NoClientId));
        };
        Ok(Ok(Self {
            client_id,
            leases,
            clt_time,
            relay,
            base_time,
        }))
    }

    /// Last contact in server time: base − CLT_TIME (RFC 7653 §6.3.1, D-14).
    pub fn last_contact(&self) -> Option<u32> {
        self.base_time.map(|b| b.wrapping_sub(self.clt_time))
    }

    /// True when every lease of the binding ended (D-4).
    pub fn all_ended(&self) -> bool {
        self.leases.iter().all(Lease::ended)
    }

    /// The last-contact time as UTC text, when the base time is known.
    pub fn last_contact_utc(&self) -> Option<String> {
        self.last_contact().map(time::server_to_utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::client_data::{write_client_data, ClientDataInput, LeaseEntry};
    use crate::wire::{OptionCode, Writer};

    fn encode(leases: &[LeaseEntry], with_clt: bool) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut w = Writer::new(&mut buf);
        let input = ClientDataInput {
            client_id: &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            leases,
            clt_time: 60,
            relay_data: None,
        };
        write_client_data(&mut w, &input).expect("fits");
        let n = w.len();
        let mut out = buf[..n].to_vec();
        if !with_clt {
            // Rewrite CLT_TIME's code into an unknown option: the binding has none.
            let at = out
                .windows(4)
                .position(|w| w == [0, 46, 0, 4])
                .expect("clt");
            out[at + 1] = 0xf0;
        }
        out
    }

    fn inner(bytes: &[u8]) -> OptionList<'_> {
        let list = OptionList::parse(bytes, 0).expect("valid");
        match list.find(OptionCode::ClientData) {
            Some(Opt::ClientData(inner)) => inner,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn times_follow_the_base_time() {
        let leases = [LeaseEntry {
            kind: LeaseKind::Address("2001:db8::1:100".parse().unwrap()),
            preferred: 3600,
            valid: 7200,
        }];
        let bytes = encode(&leases, true);
        let b = Binding::decode(inner(&bytes), Some(849_182_400))
            .unwrap()
            .unwrap();
        assert_eq!(b.last_contact(), Some(849_182_340));
        assert_eq!(b.leases[0].expires(849_182_400), Some(849_189_600));
        assert_eq!(b.leases[0].key(), "2001:db8::1:100");
        assert!(!b.all_ended());
    }

    #[test]
    fn client_data_without_clt_time_is_dropped_r19() {
        let bytes = encode(&[], false);
        assert_eq!(
            Binding::decode(inner(&bytes), None),
            Ok(Err(Dropped::NoCltTime))
        );
    }

    #[test]
    fn zero_and_infinite_lifetimes_have_no_expiry_d4_d14() {
        let ended = Lease {
            kind: LeaseKind::Prefix("2001:db8:100::".parse().unwrap(), 56),
            preferred: 0,
            valid: 0,
        };
        assert!(ended.ended());
        assert_eq!(ended.expires(5), None);
        assert_eq!(ended.key(), "2001:db8:100::/56");
        let forever = Lease {
            valid: LIFETIME_INFINITE,
            ..ended
        };
        assert_eq!(forever.expires(5), None);
    }
}
