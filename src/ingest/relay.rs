//! Relay information from Kea's `user_context` (kea.md §6), turned into what lqd stores:
//! relay-id (S-33), remote-id (S-35), the client's link-address, and the RELAY-FORW chain
//! for OPTION_LQ_RELAY_DATA (S-46).
//!
//! Two layouts: `ISC.relays` (Kea ≤ 2.3.1) and `ISC.relay-info` (≥ 2.3.2, adding `relay-id`
//! and `remote-id` members). Element 0 is the outermost relay, the last element the relay
//! closest to the client. The chain is rebuilt as Kea's lease_query hook does: one
//! RELAY-FORW per relay, outermost first, nested through OPTION_RELAY_MSG, the innermost
//! without RELAY_MSG; the peer-address of OPTION_LQ_RELAY_DATA is element 0's `peer`.

use core::net::Ipv6Addr;

use serde_json::Value;

use crate::store::model::{InlineBytes, RelayInfo, RELAY_FORW_LEN_MAX, REMOTE_ID_LEN_MAX};
use crate::wire::{MessageType, OptionCode, OptionList, Writer, DUID_LEN_MAX};

/// Most relays in one chain (RFC 8415 §7.6 HOP_COUNT_LIMIT).
pub const RELAYS_MAX: usize = 8;

/// Why a user_context could not give relay information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayError {
    /// Not JSON.
    Json,
    /// A relay entry lacks `link` or `peer`, or one is not an IPv6 address.
    Address,
    /// `options`, `relay-id` or `remote-id` is not the hex Kea writes, or not valid TLVs.
    Hex,
    /// More than [`RELAYS_MAX`] relays, or a field longer than lqd stores.
    TooLong,
}

impl RelayError {
    /// Stable label for the "rejected by reason" counters.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Json => "user_context_json",
            Self::Address => "relay_address",
            Self::Hex => "relay_hex",
            Self::TooLong => "relay_too_long",
        }
    }
}

/// Decode hex (optionally `0x`-prefixed, either case) into `out`; returns the length.
fn hex_into(text: &str, out: &mut [u8]) -> Result<usize, RelayError> {
    let digits = text.strip_prefix("0x").unwrap_or(text).as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(RelayError::Hex);
    }
    let n = digits.len() / 2;
    if n > out.len() {
        return Err(RelayError::TooLong);
    }
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let pair = core::str::from_utf8(pair).map_err(|_| RelayError::Hex)?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| RelayError::Hex)?;
    }
    Ok(n)
}

fn address(entry: &Value, key: &str) -> Result<Ipv6Addr, RelayError> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or(RelayError::Address)
}

/// One relay of the chain, decoded.
struct Relay {
    hop: u8,
    link: Ipv6Addr,
    peer: Ipv6Addr,
    options: [u8; RELAY_FORW_LEN_MAX],
    options_len: usize,
    relay_id: Option<InlineBytes<DUID_LEN_MAX>>,
    remote_id: Option<InlineBytes<REMOTE_ID_LEN_MAX>>,
}

fn decode_relay(entry: &Value) -> Result<Relay, RelayError> {
    let hop = entry.get("hop").and_then(Value::as_u64).unwrap_or(0);
    let mut relay = Relay {
        hop: u8::try_from(hop).map_err(|_| RelayError::TooLong)?,
        link: address(entry, "link")?,
        peer: address(entry, "peer")?,
        options: [0; RELAY_FORW_LEN_MAX],
        options_len: 0,
        relay_id: None,
        remote_id: None,
    };
    if let Some(options) = entry.get("options").and_then(Value::as_str) {
        relay.options_len = hex_into(options, &mut relay.options)?;
        let list = OptionList::parse(&relay.options[..relay.options_len], 1)
            .map_err(|_| RelayError::Hex)?;
        for opt in list {
            match opt {
                crate::wire::Opt::RelayId(duid) => {
                    relay.relay_id = InlineBytes::new(duid.bytes());
                }
                crate::wire::Opt::RemoteId(id) => {
                    relay.remote_id = InlineBytes::new(id.bytes());
                }
                _ => {}
            }
        }
    }
    // Kea ≥ 2.3.2 names them explicitly; they win over what the options say.
    if let Some(text) = entry.get("relay-id").and_then(Value::as_str) {
        let mut buf = [0u8; DUID_LEN_MAX];
        let n = hex_into(text, &mut buf)?;
        relay.relay_id = Some(InlineBytes::new(&buf[..n]).ok_or(RelayError::TooLong)?);
    }
    if let Some(text) = entry.get("remote-id").and_then(Value::as_str) {
        let mut buf = [0u8; REMOTE_ID_LEN_MAX];
        let n = hex_into(text, &mut buf)?;
        relay.remote_id = Some(InlineBytes::new(&buf[..n]).ok_or(RelayError::TooLong)?);
    }
    Ok(relay)
}

/// Write the RELAY-FORW chain, outermost first, each nesting the next in RELAY_MSG.
fn write_chain(w: &mut Writer<'_>, relays: &[Relay]) -> Result<(), RelayError> {
    let Some((first, inner)) = relays.split_first() else {
        return Ok(());
    };
    let too_long = |_| RelayError::TooLong;
    w.u8(MessageType::RelayForw.code()).map_err(too_long)?;
    w.u8(first.hop).map_err(too_long)?;
    w.put(&first.link.octets()).map_err(too_long)?;
    w.put(&first.peer.octets()).map_err(too_long)?;
    w.put(&first.options[..first.options_len])
        .map_err(too_long)?;
    if !inner.is_empty() {
        let mark = w.begin(OptionCode::RelayMsg).map_err(too_long)?;
        write_chain(w, inner)?;
        w.end(mark).map_err(too_long)?;
    }
    Ok(())
}

/// Relay information from an unescaped `user_context`; [`RelayInfo::NONE`] when it holds
/// no relay list.
pub fn parse_user_context(json: &[u8]) -> Result<RelayInfo, RelayError> {
    if json.is_empty() {
        return Ok(RelayInfo::NONE);
    }
    let value: Value = serde_json::from_slice(json).map_err(|_| RelayError::Json)?;
    let isc = value.get("ISC");
    let list = isc
        .and_then(|isc| isc.get("relay-info").or_else(|| isc.get("relays")))
        .and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(RelayInfo::NONE);
    };
    if list.len() > RELAYS_MAX {
        return Err(RelayError::TooLong);
    }
    let relays: Vec<Relay> = list.iter().map(decode_relay).collect::<Result<_, _>>()?;
    let mut info = RelayInfo::NONE;
    // The relay closest to the client adds Relay-ID and Remote-ID (RFC 4649 §4): look
    // from the innermost outward.
    info.relay_id = relays
        .iter()
        .rev()
        .find_map(|r| r.relay_id)
        .unwrap_or(InlineBytes::EMPTY);
    info.remote_id = relays
        .iter()
        .rev()
        .find_map(|r| r.remote_id)
        .unwrap_or(InlineBytes::EMPTY);
    info.link_address = relays.last().map_or(Ipv6Addr::UNSPECIFIED, |r| r.link);
    info.peer_address = relays[0].peer;
    let mut chain = [0u8; RELAY_FORW_LEN_MAX];
    let mut w = Writer::new(&mut chain);
    write_chain(&mut w, &relays)?;
    info.relay_forw = InlineBytes::new(w.written()).ok_or(RelayError::TooLong)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Opt;

    const SEEN_22: &str = r#"{ "ISC": { "relays": [ { "hop": 0, "link": "2001:db8:2::1",
  "options": "0x0012000867652D302F302F310025000B0000118B636D2D303030310035000A000300010A0B0C0D0E01",
  "peer": "fe80::200:ff:fe00:1001" } ] } }"#;

    #[test]
    fn kea_22_relays_give_ids_link_and_chain() {
        let info = parse_user_context(SEEN_22.as_bytes()).unwrap();
        assert_eq!(
            info.relay_id.as_slice(),
            [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x01]
        );
        assert_eq!(info.remote_id.as_slice(), b"\x00\x00\x11\x8bcm-0001");
        assert_eq!(
            info.link_address,
            "2001:db8:2::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            info.peer_address,
            "fe80::200:ff:fe00:1001".parse::<Ipv6Addr>().unwrap()
        );
        let chain = info.relay_forw.as_slice();
        assert_eq!(chain[0], 12);
        assert_eq!(chain.len(), 34 + 12 + 15 + 14);
        // The chain is a RELAY-FORW whose options decode.
        let list = OptionList::parse(&chain[34..], 1).unwrap();
        assert!(matches!(
            list.find(OptionCode::InterfaceId),
            Some(Opt::InterfaceId(b"ge-0/0/1"))
        ));
    }

    #[test]
    fn relay_info_layout_and_two_hops() {
        let json = r#"{ "ISC": { "relay-info": [
            { "hop": 1, "link": "::", "peer": "2001:db8:ff::2" },
            { "hop": 0, "link": "2001:db8:2::1", "peer": "fe80::1",
              "relay-id": "000300010A0B0C0D0E01", "remote-id": "0000118B636D2D30303031" } ] } }"#;
        let info = parse_user_context(json.as_bytes()).unwrap();
        assert_eq!(
            info.link_address,
            "2001:db8:2::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            info.peer_address,
            "2001:db8:ff::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(info.remote_id.as_slice(), b"\x00\x00\x11\x8bcm-0001");
        let chain = info.relay_forw.as_slice();
        // Outer RELAY-FORW (hop 1) holding RELAY_MSG with the inner one (hop 0).
        assert_eq!((chain[0], chain[1]), (12, 1));
        let list = OptionList::parse(&chain[34..], 1).unwrap();
        let Some(Opt::RelayMsg(crate::wire::RelayMsgBody::Relay(inner))) =
            list.find(OptionCode::RelayMsg)
        else {
            panic!("nested relay expected")
        };
        assert_eq!(inner.hop_count, 0);
        assert!(
            inner.options.find(OptionCode::RelayMsg).is_none(),
            "innermost has no RELAY_MSG"
        );
    }

    #[test]
    fn no_relays_and_bad_contexts() {
        assert_eq!(parse_user_context(b""), Ok(RelayInfo::NONE));
        assert_eq!(
            parse_user_context(br#"{ "note": "x" }"#),
            Ok(RelayInfo::NONE)
        );
        assert_eq!(parse_user_context(b"{ nope"), Err(RelayError::Json));
        let bad_peer = r#"{ "ISC": { "relays": [ { "hop": 0, "link": "::", "peer": "x" } ] } }"#;
        assert_eq!(
            parse_user_context(bad_peer.as_bytes()),
            Err(RelayError::Address)
        );
        let bad_hex =
            r#"{ "ISC": { "relays": [ { "link": "::", "peer": "::", "options": "0x001" } ] } }"#;
        assert_eq!(parse_user_context(bad_hex.as_bytes()), Err(RelayError::Hex));
    }
}
