//! The shared body of a LEASEQUERY-DATA: a record's CLIENT_DATA template, re-based from its
//! change time to the second it is sent (architecture.md, "Fan-out" 2).
//!
//! A worker builds each body once per second and per variant and every connection that
//! sends the record in that second points an iovec at it. Two variants exist: with
//! OPTION_LQ_RELAY_DATA (the query's ORO asked for 47, S-46) and without it. Relay data is
//! the last option of the template, so the variant without it is a prefix of the template
//! with the CLIENT_DATA length patched.

use crate::store::model::time_at_or_after;
use crate::store::record::TemplateFields;
use crate::wire::client_data::rebase_at;

/// Why a body could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// `out` is smaller than the template.
    BufferTooSmall,
}

/// Write the body of a record changed at `change_time`, as sent at `now`, into `out`;
/// returns its length. `with_relay` keeps OPTION_LQ_RELAY_DATA when the template has it.
pub fn write_body(
    template: &[u8],
    fields: &TemplateFields,
    change_time: u32,
    now: u32,
    with_relay: bool,
    out: &mut [u8],
) -> Result<usize, BodyError> {
    let relay_at = usize::from(fields.relay_at);
    let len = if relay_at == 0 || with_relay {
        template.len()
    } else {
        relay_at
    };
    assert!(
        len >= 4 && len <= template.len(),
        "template shorter than its own offsets"
    );
    let out = out.get_mut(..len).ok_or(BodyError::BufferTooSmall)?;
    out.copy_from_slice(&template[..len]);
    let option_len = u16::try_from(len - 4).expect("a template fits an option");
    out[2..4].copy_from_slice(&option_len.to_be_bytes());
    // A record stamped a moment after `now` (the writer's clock read later than ours) is
    // sent as encoded rather than re-based backwards.
    let delta = if time_at_or_after(now, change_time) {
        now.wrapping_sub(change_time)
    } else {
        0
    };
    rebase_at(out, fields.clt_at, fields.lifetimes_at(), delta);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Binding, Lease, LeaseState, RelayInfo, INFINITE};
    use crate::store::record::{decode_change, encode_change, ChangeOut, HEADER_LEN};
    use crate::wire::client_data::LeaseKind;
    use crate::wire::{Opt, OptionCode, OptionList};

    fn binding(relay: bool) -> Binding {
        let mut b = Binding::new(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1], 1).unwrap();
        b.cltt = 1_000;
        b.upsert(Lease {
            kind: LeaseKind::Address("2001:db8::1".parse().unwrap()),
            state: LeaseState::Default,
            preferred_until: 2_000,
            valid_until: 3_000,
            ended_at: 0,
        })
        .unwrap();
        b.upsert(Lease {
            kind: LeaseKind::Prefix("2001:db8:100::".parse().unwrap(), 56),
            state: LeaseState::Default,
            preferred_until: INFINITE,
            valid_until: INFINITE,
            ended_at: 0,
        })
        .unwrap();
        if relay {
            b.relay = RelayInfo::NONE;
            b.relay.peer_address = "fe80::1".parse().unwrap();
            let mut forw = [0u8; 34];
            forw[0] = 12;
            b.relay.relay_forw.set(&forw);
        }
        b
    }

    /// Encode a record for `b` changed at 1_500 and return (record bytes, payload start).
    fn record(b: &Binding) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let change = ChangeOut {
            sequence: 1,
            change_time: 1_500,
            carried: false,
            binding: b,
        };
        let len = encode_change(&mut buf, &change).unwrap();
        buf.truncate(len);
        buf
    }

    fn decode(body: &[u8]) -> Vec<String> {
        let list = OptionList::parse(body, 0).unwrap();
        let Some(Opt::ClientData(inner)) = list.iter().next() else {
            panic!("CLIENT_DATA")
        };
        inner.iter().map(|o| format!("{o:?}")).collect()
    }

    #[test]
    fn lifetimes_and_clt_follow_the_second_of_sending() {
        let rec = record(&binding(false));
        let view = decode_change(&rec[HEADER_LEN..], 1).unwrap();
        let mut out = [0u8; 512];
        let n = write_body(
            view.template,
            &view.time_fields,
            1_500,
            1_600,
            true,
            &mut out,
        )
        .unwrap();
        let opts = decode(&out[..n]);
        // At 1_500 the address had 500/1_500 s left and CLT 500; 100 s later 400/1_400, 600.
        assert!(opts[1].contains("preferred: 400, valid: 1400"), "{opts:?}");
        assert!(
            opts[2].contains("preferred: 4294967295, valid: 4294967295"),
            "{opts:?}"
        );
        assert_eq!(opts[3], "CltTime(600)");
        // A second before the change: sent as encoded (CLT 500), never re-based backwards.
        let n = write_body(
            view.template,
            &view.time_fields,
            1_500,
            1_499,
            true,
            &mut out,
        );
        assert_eq!(decode(&out[..n.unwrap()])[3], "CltTime(500)");
    }

    #[test]
    fn relay_data_is_sent_only_when_asked_for() {
        let rec = record(&binding(true));
        let view = decode_change(&rec[HEADER_LEN..], 1).unwrap();
        let mut out = [0u8; 512];
        let with = write_body(
            view.template,
            &view.time_fields,
            1_500,
            1_500,
            true,
            &mut out,
        );
        let with = with.unwrap();
        let list = OptionList::parse(&out[..with], 0).unwrap();
        let Some(Opt::ClientData(inner)) = list.iter().next() else {
            panic!()
        };
        assert!(inner.find(OptionCode::LqRelayData).is_some());
        let without = write_body(
            view.template,
            &view.time_fields,
            1_500,
            1_500,
            false,
            &mut out,
        );
        let without = without.unwrap();
        assert!(without < with);
        let list = OptionList::parse(&out[..without], 0).unwrap();
        let Some(Opt::ClientData(inner)) = list.iter().next() else {
            panic!()
        };
        assert!(inner.find(OptionCode::LqRelayData).is_none());
        assert!(inner.find(OptionCode::CltTime).is_some());
        let mut small = [0u8; 8];
        assert_eq!(
            write_body(
                view.template,
                &view.time_fields,
                1_500,
                1_500,
                false,
                &mut small
            ),
            Err(BodyError::BufferTooSmall)
        );
    }
}
