//! OPTION_CLIENT_DATA from a binding, encoded once and re-based to later seconds by patching
//! fixed offsets (architecture.md, "Change record"; protocol.md S-44, D-4, D-14).
//!
//! ```text
//! OPTION_CLIENT_DATA (45)
//!   OPTION_CLIENTID (1)          the bound client's DUID
//!   OPTION_IAADDR (5) ...        address, preferred, valid   (one per address lease)
//!   OPTION_IAPREFIX (26) ...     preferred, valid, len, prefix (one per delegated prefix)
//!   OPTION_CLT_TIME (46)         seconds since last contact
//!   OPTION_LQ_RELAY_DATA (47)    only when asked for and held (S-46)
//! ```
//!
//! Lifetimes and CLT_TIME are relative to the time the message is built (its LQ_BASE_TIME).
//! A change record keeps the encoding made at its change time plus a [`TimeFields`] table;
//! sending it `delta` seconds later subtracts `delta` from every lifetime (0 and infinity
//! excepted, D-14) and adds it to CLT_TIME, without re-encoding. In both IAADDR and IAPREFIX
//! the valid lifetime directly follows the preferred one, so one offset locates both.

use core::net::Ipv6Addr;

use super::codes::OptionCode;
use super::error::EncodeError;
use super::writer::Writer;

/// Most leases one CLIENT_DATA carries: addresses and delegated prefixes, ended ones (D-4)
/// included. The store refuses a client that would need more (a counted, logged error).
pub const LEASES_PER_CLIENT_MAX: usize = 32;

/// The "infinity" lifetime (RFC 8415 §7.7): never re-based.
pub const LIFETIME_INFINITE: u32 = u32::MAX;

/// What a lease is: an address (IAADDR) or a delegated prefix (IAPREFIX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseKind {
    /// An IA_NA/IA_TA address.
    Address(Ipv6Addr),
    /// A delegated prefix and its length in bits (0..=128).
    Prefix(Ipv6Addr, u8),
}

/// One lease as sent: lifetimes relative to the encoding time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseEntry {
    /// Address or prefix.
    pub kind: LeaseKind,
    /// Preferred lifetime left, seconds.
    pub preferred: u32,
    /// Valid lifetime left, seconds; 0 = the lease ended (D-4).
    pub valid: u32,
}

/// OPTION_LQ_RELAY_DATA contents (S-46).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayDataInput<'b> {
    /// Address of the relay the server heard the client through.
    pub peer_address: Ipv6Addr,
    /// The encoded RELAY-FORW, innermost RELAY_MSG removed.
    pub relay_message: &'b [u8],
}

/// Everything a CLIENT_DATA says about one client on one link.
#[derive(Clone, Copy, Debug)]
pub struct ClientDataInput<'b> {
    /// The client's DUID.
    pub client_id: &'b [u8],
    /// Its leases on this link (at most [`LEASES_PER_CLIENT_MAX`]).
    pub leases: &'b [LeaseEntry],
    /// Seconds since the server last heard from the client.
    pub clt_time: u32,
    /// Relay data, when the query asked for it and the server holds it.
    pub relay_data: Option<RelayDataInput<'b>>,
}

/// Offsets of the time-relative fields of an encoded CLIENT_DATA, counted from the first
/// octet of the option (its code), so they hold wherever the option is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeFields {
    /// Offset of the 4-octet CLT_TIME value.
    pub clt_at: u16,
    /// Offsets of each lease's preferred lifetime; the valid lifetime follows at +4.
    lifetimes_at: [u16; LEASES_PER_CLIENT_MAX],
    /// Entries of `lifetimes_at` in use.
    lease_count: u8,
}

const _: () = assert!(LEASES_PER_CLIENT_MAX <= u8::MAX as usize);

impl TimeFields {
    /// Offsets of each lease's preferred lifetime.
    pub fn lifetimes_at(&self) -> &[u16] {
        &self.lifetimes_at[..usize::from(self.lease_count)]
    }
}

fn offset(at: usize, start: usize) -> Result<u16, EncodeError> {
    u16::try_from(at - start).map_err(|_| EncodeError::TooLong)
}

/// Encode OPTION_CLIENT_DATA for `input` into `w`; returns where its time fields are.
///
/// Panics if `input.leases` holds more than [`LEASES_PER_CLIENT_MAX`] entries (the store
/// enforces the limit before it gets here) or a prefix length above 128.
pub fn write_client_data(
    w: &mut Writer<'_>,
    input: &ClientDataInput<'_>,
) -> Result<TimeFields, EncodeError> {
    assert!(
        input.leases.len() <= LEASES_PER_CLIENT_MAX,
        "leases per client over the limit"
    );
    let start = w.len();
    let mut fields = TimeFields {
        clt_at: 0,
        lifetimes_at: [0; LEASES_PER_CLIENT_MAX],
        lease_count: 0,
    };
    let outer = w.begin(OptionCode::ClientData)?;
    w.option(OptionCode::ClientId, input.client_id)?;
    for lease in input.leases {
        let mark = match lease.kind {
            LeaseKind::Address(address) => {
                let mark = w.begin(OptionCode::IaAddr)?;
                w.put(&address.octets())?;
                mark
            }
            LeaseKind::Prefix(..) => w.begin(OptionCode::IaPrefix)?,
        };
        fields.lifetimes_at[usize::from(fields.lease_count)] = offset(w.len(), start)?;
        fields.lease_count += 1;
        w.u32(lease.preferred)?;
        w.u32(lease.valid)?;
        if let LeaseKind::Prefix(prefix, length) = lease.kind {
            assert!(length <= 128, "prefix length {length} above 128");
            w.u8(length)?;
            w.put(&prefix.octets())?;
        }
        w.end(mark)?;
    }
    fields.clt_at = offset(w.len() + 4, start)?;
    w.option_u32(OptionCode::CltTime, input.clt_time)?;
    if let Some(relay) = input.relay_data {
        let mark = w.begin(OptionCode::LqRelayData)?;
        w.put(&relay.peer_address.octets())?;
        w.put(relay.relay_message)?;
        w.end(mark)?;
    }
    w.end(outer)?;
    Ok(fields)
}

/// A lifetime `delta` seconds later: 0 and infinity stay (D-14); others count down to 0.
pub const fn rebase_lifetime(lifetime: u32, delta: u32) -> u32 {
    if lifetime == LIFETIME_INFINITE {
        lifetime
    } else {
        lifetime.saturating_sub(delta)
    }
}

fn patch_u32(body: &mut [u8], at: u16, f: impl FnOnce(u32) -> u32) {
    let at = usize::from(at);
    let field: &mut [u8; 4] = (&mut body[at..at + 4])
        .try_into()
        .unwrap_or_else(|_| unreachable!("a 4-octet range converts to [u8; 4]"));
    *field = f(u32::from_be_bytes(*field)).to_be_bytes();
}

/// Re-base an encoded CLIENT_DATA (`body` starts at its option code) by `delta` seconds:
/// from the time it was encoded to a later one. `delta` comes from wrapping subtraction of
/// server times (D-14) and must be below 2^31, i.e. "later", not "earlier".
pub fn rebase(body: &mut [u8], fields: &TimeFields, delta: u32) {
    rebase_at(body, fields.clt_at, fields.lifetimes_at(), delta);
}

/// [`rebase`] with the offsets given directly (the store keeps its own copy of the table).
pub fn rebase_at(body: &mut [u8], clt_at: u16, lifetimes_at: &[u16], delta: u32) {
    assert!(delta < 1 << 31, "re-basing backwards in time");
    assert!(usize::from(clt_at) + 4 <= body.len());
    for &at in lifetimes_at {
        patch_u32(body, at, |v| rebase_lifetime(v, delta));
        patch_u32(body, at + 4, |v| rebase_lifetime(v, delta));
    }
    patch_u32(body, clt_at, |v| v.saturating_add(delta));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Opt, OptionList};

    fn sample() -> [LeaseEntry; 2] {
        [
            LeaseEntry {
                kind: LeaseKind::Address("2001:db8::1:100".parse().unwrap()),
                preferred: 3600,
                valid: 7200,
            },
            LeaseEntry {
                kind: LeaseKind::Prefix("2001:db8:100::".parse().unwrap(), 56),
                preferred: 0,
                valid: LIFETIME_INFINITE,
            },
        ]
    }

    #[test]
    fn rebase_patches_exactly_the_time_fields() {
        let leases = sample();
        let input = ClientDataInput {
            client_id: &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            leases: &leases,
            clt_time: 60,
            relay_data: None,
        };
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        let fields = write_client_data(&mut w, &input).unwrap();
        let len = w.len();
        let mut body = buf[..len].to_vec();
        rebase(&mut body, &fields, 100);

        // Decode the patched option and check every value.
        let list = OptionList::parse(&body, 0).unwrap();
        let Some(Opt::ClientData(inner)) = list.iter().next() else {
            panic!("not CLIENT_DATA")
        };
        let opts: Vec<Opt<'_>> = inner.iter().collect();
        let Opt::IaAddr(a) = opts[1] else { panic!() };
        assert_eq!((a.preferred, a.valid), (3500, 7100));
        let Opt::IaPrefix(p) = opts[2] else { panic!() };
        assert_eq!(
            (p.preferred, p.valid, p.prefix_len),
            (0, LIFETIME_INFINITE, 56)
        );
        assert_eq!(opts[3], Opt::CltTime(160));
        // Everything else is untouched.
        let mut again = buf[..len].to_vec();
        rebase(&mut again, &fields, 0);
        assert_eq!(again, &buf[..len]);
    }

    #[test]
    fn lifetimes_count_down_to_zero_and_never_wrap() {
        assert_eq!(rebase_lifetime(5, 10), 0);
        assert_eq!(rebase_lifetime(0, 10), 0);
        assert_eq!(rebase_lifetime(LIFETIME_INFINITE, 10), LIFETIME_INFINITE);
    }

    #[test]
    #[should_panic(expected = "backwards")]
    fn rebase_backwards_is_a_bug() {
        let leases = sample();
        let input = ClientDataInput {
            client_id: &[0, 3, 0, 1, 2],
            leases: &leases,
            clt_time: 0,
            relay_data: None,
        };
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        let fields = write_client_data(&mut w, &input).unwrap();
        let len = w.len();
        rebase(&mut buf[..len], &fields, 0u32.wrapping_sub(1));
    }
}
