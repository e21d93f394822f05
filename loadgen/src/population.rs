//! The client population and its schedule: who changes when, how each change is written as
//! a Kea lease6 row (kea.md §3–§6), and how a received CLIENT_DATA maps back to the change
//! that produced it.
//!
//! Change `g` (0, 1, 2 …) is client `g % clients`'s `k`-th change, `k = g / clients`, and is
//! scheduled at `g / rate` seconds after the start. Its row's `expire` is `expire_base + k`
//! (Unix seconds), unique per (client, k). lqd re-bases lifetimes to the second it sends
//! (src/server/body.rs): LQ_BASE_TIME + valid-lifetime is the absolute expiry it was
//! given, exactly, so the receiver recovers `k` and from it `g` and the scheduled instant.
//!
//! Each client holds one lease: a delegated prefix (every `pd_every`-th client) or an
//! address, on link `c % links`, through relay `(c / links) % relays` (no relay information
//! when `relays` is 0).

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use anyhow::ensure;
use lqd::wire::EPOCH_2000_UNIX;

/// The 17-column header of Kea 2.1 … 2.3.7's lease6 memfile (kea.md §3).
pub(crate) const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,\
lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,\
hwaddr_source";

/// Most clients (the DUID and address encode the index in 24 bits).
pub(crate) const CLIENTS_MAX: u32 = 1 << 24;
/// Most links (`2001:db8:L::/64`, L a 16-bit group).
pub(crate) const LINKS_MAX: u32 = 4096;
/// Most relays (relay DUID-LL `0a:0b:0c:00:hi:lo`).
pub(crate) const RELAYS_MAX: u32 = 4096;
/// Changes per client the receivers can tell apart (a `u16` per client and connection, 0
/// meaning "none seen").
pub(crate) const CHANGES_PER_CLIENT_MAX: u64 = u16::MAX as u64 - 1;

/// The population and its schedule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Population {
    /// Distinct clients (DUID + link).
    pub(crate) clients: u32,
    /// Links (Kea subnets 1 ..= links).
    pub(crate) links: u32,
    /// Relays; 0 = rows carry no relay information.
    pub(crate) relays: u32,
    /// Every `pd_every`-th client holds a delegated prefix instead of an address; 0 = none.
    pub(crate) pd_every: u32,
    /// `expire` (Unix seconds) of every client's change 0.
    pub(crate) expire_base: u64,
}

/// A change recognised in a received CLIENT_DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The client.
    pub(crate) client: u32,
    /// Its change number.
    pub(crate) k: u64,
}

impl Population {
    /// Check the sizes against the encodings' limits.
    pub(crate) fn validate(&self, changes: u64) -> anyhow::Result<()> {
        ensure!(
            self.clients >= 1 && self.clients <= CLIENTS_MAX,
            "--clients must be 1 ..= {CLIENTS_MAX}"
        );
        ensure!(
            self.links >= 1 && self.links <= LINKS_MAX,
            "--links must be 1 ..= {LINKS_MAX}"
        );
        ensure!(self.relays <= RELAYS_MAX, "--relays must be ≤ {RELAYS_MAX}");
        ensure!(
            changes.div_ceil(u64::from(self.clients)) <= CHANGES_PER_CLIENT_MAX,
            "{changes} changes over {} clients is more than {CHANGES_PER_CLIENT_MAX} a client: \
             raise --clients",
            self.clients
        );
        Ok(())
    }

    /// The link (0-based) of client `c`.
    pub(crate) const fn link_of(&self, c: u32) -> u32 {
        c % self.links
    }

    /// The relay (0-based) of client `c`, if rows carry relay information.
    pub(crate) const fn relay_of(&self, c: u32) -> Option<u32> {
        if self.relays == 0 {
            None
        } else {
            Some((c / self.links) % self.relays)
        }
    }

    /// True when client `c` holds a delegated prefix.
    pub(crate) const fn is_pd(&self, c: u32) -> bool {
        self.pd_every != 0 && c % self.pd_every == self.pd_every - 1
    }

    /// Client and change number of change `g`.
    pub(crate) fn change_of(&self, g: u64) -> Change {
        let clients = u64::from(self.clients);
        Change {
            client: u32::try_from(g % clients).expect("below clients, a u32"),
            k: g / clients,
        }
    }

    /// The change index `g` of a change.
    pub(crate) fn index_of(&self, change: Change) -> u64 {
        change.k * u64::from(self.clients) + u64::from(change.client)
    }

    /// The final change number of client `c` after `written` changes, if it changed.
    pub(crate) fn final_k(&self, c: u32, written: u64) -> Option<u64> {
        let c = u64::from(c);
        (c < written).then(|| (written - 1 - c) / u64::from(self.clients))
    }

    /// Append change `g`'s journal row, written at Unix second `now_unix`, to `out`.
    pub(crate) fn write_row(&self, g: u64, now_unix: u64, out: &mut String) {
        let Change { client: c, k } = self.change_of(g);
        let expire = self.expire_base + k;
        assert!(expire > now_unix, "expire_base lies in the future");
        let valid = expire - now_unix;
        let preferred = valid / 2;
        let link = self.link_of(c);
        let subnet = link + 1;
        let [_, b1, b2, b3] = c.to_be_bytes();
        let (address, lease_type, prefix_len) = if self.is_pd(c) {
            (prefix_of(c), 2, 48)
        } else {
            (address_of(link, c), 0, 128)
        };
        let _ = write!(
            out,
            "{address},00:03:00:01:02:4c:00:{b1:02x}:{b2:02x}:{b3:02x},{valid},{expire},\
             {subnet},{preferred},{lease_type},1,{prefix_len},0,0,,,0,"
        );
        if let Some(relay) = self.relay_of(c) {
            relay_context(link, relay, out);
        }
        out.push_str(",1,0\n");
    }

    /// Recognise a CLIENT_DATA (its option data) received with LQ_BASE_TIME `base_time`.
    pub(crate) fn recognise(
        &self,
        client_data: &[u8],
        base_time: u32,
    ) -> Result<Change, &'static str> {
        let mut client = None;
        let mut valid = None;
        for (code, data) in Tlvs(client_data) {
            match code {
                1 => client = Some(client_of_duid(data)?),
                5 if data.len() >= 24 => valid = Some(be32(&data[20..24])),
                26 if data.len() >= 25 => valid = Some(be32(&data[4..8])),
                5 | 26 => return Err("short IAADDR/IAPREFIX"),
                0xffff => return Err("CLIENT_DATA options overrun"),
                _ => {}
            }
        }
        let client = client.ok_or("CLIENT_DATA without CLIENTID")?;
        let valid = valid.ok_or("CLIENT_DATA without a lease")?;
        if client >= self.clients {
            return Err("CLIENTID of no client of the population");
        }
        let expire = u64::from(base_time) + u64::from(valid) + EPOCH_2000_UNIX;
        let k = expire
            .checked_sub(self.expire_base)
            .ok_or("LQ_BASE_TIME + valid before every expire written")?;
        Ok(Change { client, k })
    }
}

/// The DUID-LL `00:03:00:01:02:4c:00:b1:b2:b3` of client `b1 b2 b3`.
fn client_of_duid(duid: &[u8]) -> Result<u32, &'static str> {
    match duid {
        [0, 3, 0, 1, 2, 0x4c, 0, b1, b2, b3] => Ok(u32::from_be_bytes([0, *b1, *b2, *b3])),
        _ => Err("CLIENTID of no client of the population"),
    }
}

fn be32(data: &[u8]) -> u32 {
    u32::from_be_bytes([data[0], data[1], data[2], data[3]])
}

/// The prefix of link `link` (0-based): 2001:db8:L::/64, L = link + 1.
pub(crate) fn link_prefix(link: u32) -> Ipv6Addr {
    let group = u16::try_from(link + 1).expect("links ≤ LINKS_MAX");
    Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, 0)
}

fn address_of(link: u32, c: u32) -> Ipv6Addr {
    let group = u16::try_from(link + 1).expect("links ≤ LINKS_MAX");
    let hi = u16::try_from(c >> 16).expect("24-bit client");
    let lo = u16::try_from(c & 0xffff).expect("16 bits");
    Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 1, hi, lo)
}

/// Client `c`'s delegated prefix 3fff:hi:lo::/48.
fn prefix_of(c: u32) -> Ipv6Addr {
    let hi = u16::try_from(c >> 16).expect("24-bit client");
    let lo = u16::try_from(c & 0xffff).expect("16 bits");
    Ipv6Addr::new(0x3fff, hi, lo, 0, 0, 0, 0, 0)
}

/// Relay `r`'s DUID (DUID-LL 0a:0b:0c:00:hi:lo), the key of QUERY_BY_RELAY_ID.
pub(crate) fn relay_duid(r: u32) -> [u8; 10] {
    let [_, _, hi, lo] = r.to_be_bytes();
    [0, 3, 0, 1, 0x0a, 0x0b, 0x0c, 0, hi, lo]
}

/// Kea 2.2's `user_context` for one relay (kea.md §6), escaped as Kea writes it: the relay
/// options hold INTERFACE_ID `eth0` and RELAY_ID (option 53) = [`relay_duid`].
fn relay_context(link: u32, relay: u32, out: &mut String) {
    let duid: String = relay_duid(relay)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let options = format!("0012000465746830{}{duid}", "0035000A");
    let _ = write!(
        out,
        "{{ \"ISC\": {{ \"relays\": [ {{ \"hop\": 0&#x2c \"link\": \"{}\"&#x2c \
         \"options\": \"0x{options}\"&#x2c \"peer\": \"fe80::{:x}\" }} ] }} }}",
        address_of(link, 0),
        relay + 1
    );
}

/// The (code, data) options of an option list; `(0xffff, [])` once for an overrun.
pub(crate) struct Tlvs<'a>(pub(crate) &'a [u8]);

impl<'a> Iterator for Tlvs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.0;
        if bytes.is_empty() {
            return None;
        }
        let overrun = (0xffff, &[][..]);
        if bytes.len() < 4 {
            self.0 = &[];
            return Some(overrun);
        }
        let code = u16::from_be_bytes([bytes[0], bytes[1]]);
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let Some(data) = bytes.get(4..4 + len) else {
            self.0 = &[];
            return Some(overrun);
        };
        self.0 = &bytes[4 + len..];
        Some((code, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population() -> Population {
        Population {
            clients: 10,
            links: 3,
            relays: 2,
            pd_every: 4,
            expire_base: 2_000_000_000,
        }
    }

    #[test]
    fn schedule_round_trips() {
        let p = population();
        for g in 0..100 {
            assert_eq!(p.index_of(p.change_of(g)), g);
        }
        assert_eq!(p.final_k(3, 25), Some(2));
        assert_eq!(p.final_k(7, 25), Some(1));
        assert_eq!(p.final_k(7, 5), None);
    }

    #[test]
    fn rows_have_seventeen_columns_and_kea_escaping() {
        let p = population();
        let mut out = String::new();
        p.write_row(12, 1_900_000_000, &mut out);
        assert!(out.ends_with('\n'));
        assert_eq!(
            out.trim_end().split(',').count(),
            HEADER.split(',').count(),
            "{out}"
        );
        assert!(out.contains("0x001200046574683000350"), "{out}");
        assert!(
            out.starts_with("2001:db8:3::1:0:2,00:03:00:01:02:4c:00:00:00:02,"),
            "{out}"
        );
        // Change 12 is client 2's change 1: expire base + 1, subnet 3.
        assert!(out.contains(",2000000001,3,"), "{out}");
        let mut pd = String::new();
        p.write_row(3, 1_900_000_000, &mut pd);
        assert!(pd.starts_with("3fff:0:3::,"), "{pd}");
        assert!(pd.contains(",2,1,48,"), "{pd}");
    }

    #[test]
    fn recognises_address_and_prefix() {
        let p = population();
        let base = u32::try_from(1_999_990_000 - EPOCH_2000_UNIX).unwrap();
        let mut cd = vec![0, 1, 0, 10, 0, 3, 0, 1, 2, 0x4c, 0, 0, 0, 7];
        cd.extend_from_slice(&[0, 5, 0, 24]);
        cd.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        cd.extend_from_slice(&1000u32.to_be_bytes());
        cd.extend_from_slice(&10_002u32.to_be_bytes());
        assert_eq!(p.recognise(&cd, base), Ok(Change { client: 7, k: 2 }));
        let mut pd = vec![0, 1, 0, 10, 0, 3, 0, 1, 2, 0x4c, 0, 0, 0, 3, 0, 26, 0, 25];
        pd.extend_from_slice(&1000u32.to_be_bytes());
        pd.extend_from_slice(&10_001u32.to_be_bytes());
        pd.push(48);
        pd.extend_from_slice(&[0x3f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p.recognise(&pd, base), Ok(Change { client: 3, k: 1 }));
        assert!(p.recognise(&cd[..20], base).is_err());
    }
}
