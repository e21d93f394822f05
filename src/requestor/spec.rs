//! What to ask: an owned query selection, parsed from the command line and turned into the
//! codec's [`LqQueryOut`].

use core::net::Ipv6Addr;

use crate::wire::build::{LqQueryOut, QueryOut};
use crate::wire::{OptionCode, DUID_LEN_MAX, DUID_LEN_MIN};

/// Query-options lq asks for inside LQ_QUERY: relay data (OPTION_LQ_RELAY_DATA, 47).
pub const RELAY_DATA_ORO: [OptionCode; 1] = [OptionCode::LqRelayData];

/// One query selection (RFC 5007 §4.1.2.1, RFC 5460 §5.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// QUERY_BY_ADDRESS (1): the client holding this address.
    Address(Ipv6Addr),
    /// QUERY_BY_CLIENTID (2): the client with this DUID.
    ClientId(Vec<u8>),
    /// QUERY_BY_RELAY_ID (3): clients relayed by the relay with this DUID.
    RelayId(Vec<u8>),
    /// QUERY_BY_LINK_ADDRESS (4): clients on the link (`::` = all bindings, D-3).
    LinkAddress,
    /// QUERY_BY_REMOTE_ID (5): enterprise number and remote-id.
    RemoteId(u32, Vec<u8>),
}

/// A query: the selection, its link-address, and whether to ask for relay data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerySpec {
    /// The selection.
    pub selection: Selection,
    /// The link-address (`::` = unspecified, or all links for QUERY_BY_LINK_ADDRESS).
    pub link_address: Ipv6Addr,
    /// Ask for OPTION_LQ_RELAY_DATA in each CLIENT_DATA (query ORO [47]).
    pub relay_data: bool,
}

impl QuerySpec {
    /// All bindings on all links: QUERY_BY_LINK_ADDRESS with `::` (D-3).
    pub const fn all_bindings() -> Self {
        Self {
            selection: Selection::LinkAddress,
            link_address: Ipv6Addr::UNSPECIFIED,
            relay_data: false,
        }
    }

    /// Parse `TYPE [VALUE]` from the command line: `address ADDR`, `client-id DUID`,
    /// `relay-id DUID`, `link-address [ADDR]` (default `::`), `remote-id ENTERPRISE:HEX`.
    /// `link` sets the link-address of the other types.
    pub fn parse(kind: &str, value: Option<&str>, link: Option<Ipv6Addr>) -> Result<Self, String> {
        let need = || value.ok_or_else(|| format!("query type {kind} needs a value"));
        let mut link_address = link.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let selection = match kind {
            "address" => Selection::Address(
                need()?
                    .parse()
                    .map_err(|e| format!("bad IPv6 address {:?}: {e}", need()))?,
            ),
            "client-id" => Selection::ClientId(parse_duid(need()?)?),
            "relay-id" => Selection::RelayId(parse_duid(need()?)?),
            "link-address" => {
                if let Some(text) = value {
                    link_address = text
                        .parse()
                        .map_err(|e| format!("bad link-address {text:?}: {e}"))?;
                }
                Selection::LinkAddress
            }
            "remote-id" => {
                let text = need()?;
                let (enterprise, id) = text
                    .split_once(':')
                    .ok_or_else(|| format!("remote-id {text:?}: expected ENTERPRISE:HEX"))?;
                let enterprise = enterprise
                    .parse()
                    .map_err(|_| format!("remote-id enterprise number {enterprise:?}"))?;
                let id = parse_hex(id)?;
                if id.is_empty() {
                    return Err("remote-id needs at least one octet (RFC 4649 §3)".into());
                }
                Selection::RemoteId(enterprise, id)
            }
            other => {
                return Err(format!(
                    "unknown query type {other:?}: address, client-id, relay-id, link-address \
                     or remote-id"
                ))
            }
        };
        Ok(Self {
            selection,
            link_address,
            relay_data: false,
        })
    }

    /// The codec's LQ_QUERY for this spec; `remote_id` is scratch space for the REMOTE_ID
    /// option data (enterprise number then id).
    pub fn lq_query<'b>(&'b self, remote_id: &'b mut Vec<u8>) -> LqQueryOut<'b> {
        let query = match &self.selection {
            Selection::Address(a) => QueryOut::Address(*a),
            Selection::ClientId(d) => QueryOut::ClientId(d),
            Selection::RelayId(d) => QueryOut::RelayId(d),
            Selection::LinkAddress => QueryOut::LinkAddress,
            Selection::RemoteId(enterprise, id) => {
                remote_id.clear();
                remote_id.extend_from_slice(&enterprise.to_be_bytes());
                remote_id.extend_from_slice(id);
                QueryOut::RemoteId(remote_id)
            }
        };
        LqQueryOut {
            query,
            link_address: self.link_address,
            oro: if self.relay_data {
                &RELAY_DATA_ORO
            } else {
                &[]
            },
        }
    }
}

/// Hex octets, with optional `:`, `-` or spaces between them.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b':' | b'-' | b' '))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{text:?}: odd number of hex digits"));
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            core::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("{text:?}: not hex"))
        })
        .collect()
}

/// A DUID in hex: 2-octet type plus 1..128 octets (RFC 8415 §11.1).
pub fn parse_duid(text: &str) -> Result<Vec<u8>, String> {
    let duid = parse_hex(text)?;
    if !(DUID_LEN_MIN..=DUID_LEN_MAX).contains(&duid.len()) {
        return Err(format!(
            "DUID {text:?} has {} octets; a DUID has {DUID_LEN_MIN}..={DUID_LEN_MAX}",
            duid.len()
        ));
    }
    Ok(duid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_query_type() {
        let a = QuerySpec::parse("address", Some("2001:db8::1"), None).unwrap();
        assert_eq!(
            a.selection,
            Selection::Address("2001:db8::1".parse().unwrap())
        );
        let c = QuerySpec::parse("client-id", Some("00:03:00:01:02:00:00:00:00:01"), None);
        assert_eq!(
            c.unwrap().selection,
            Selection::ClientId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1])
        );
        let l = QuerySpec::parse("link-address", Some("2001:db8:1::"), None).unwrap();
        assert_eq!(l.link_address, "2001:db8:1::".parse::<Ipv6Addr>().unwrap());
        let all = QuerySpec::parse("link-address", None, None).unwrap();
        assert_eq!(all, QuerySpec::all_bindings());
        let r = QuerySpec::parse("remote-id", Some("4491:636d2d30303031"), None).unwrap();
        assert_eq!(r.selection, Selection::RemoteId(4491, b"cm-0001".to_vec()));
        let mut scratch = Vec::new();
        let out = r.lq_query(&mut scratch);
        assert!(matches!(out.query, QueryOut::RemoteId(d) if d.len() == 11));
        assert!(QuerySpec::parse("relay-id", Some("00"), None).is_err());
        assert!(QuerySpec::parse("colour", Some("red"), None).is_err());
        assert!(QuerySpec::parse("address", None, None).is_err());
    }
}
