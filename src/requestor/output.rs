//! What `lq` prints: one JSON object per line (the default) or a table. Times appear as
//! server absolute time (seconds since 2000, the server's clock) and as UTC text; DUIDs as
//! hex with their type (RFC 8415 §11.1).

use serde_json::{json, Value};

use crate::wire::client_data::LeaseKind;

use super::binding::{Binding, Lease};
use super::time;

/// The name of a DUID's type (RFC 8415 §11.1).
pub fn duid_type_name(duid: &[u8]) -> &'static str {
    match duid {
        [0, 1, ..] => "DUID-LLT",
        [0, 2, ..] => "DUID-EN",
        [0, 3, ..] => "DUID-LL",
        [0, 4, ..] => "DUID-UUID",
        _ => "unknown",
    }
}

/// Lower-case hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A DUID as JSON: `{"hex": "...", "type": "DUID-LL"}`.
pub fn duid_json(duid: &[u8]) -> Value {
    json!({ "hex": hex(duid), "type": duid_type_name(duid) })
}

/// A server time as JSON: `{"server": 849182400, "utc": "2026-11-28T12:00:00Z"}`.
pub fn time_json(server_time: u32) -> Value {
    json!({ "server": server_time, "utc": time::server_to_utc(server_time) })
}

fn opt_time_json(server_time: Option<u32>) -> Value {
    server_time.map_or(Value::Null, time_json)
}

fn lease_json(lease: &Lease, base_time: Option<u32>) -> Value {
    let mut v = match lease.kind {
        LeaseKind::Address(a) => json!({ "address": a.to_string() }),
        LeaseKind::Prefix(p, len) => json!({ "prefix": format!("{p}/{len}") }),
    };
    v["preferred"] = json!(lease.preferred);
    v["valid"] = json!(lease.valid);
    if lease.ended() {
        v["ended"] = json!(true);
    } else if let Some(base) = base_time {
        v["expires"] = lease
            .expires(base)
            .map_or_else(|| json!("never"), time_json);
    }
    v
}

/// Where a binding came from, as printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A Bulk answer.
    Bulk,
    /// The Active stream, real time.
    Live,
    /// The Active stream during catch-up.
    CatchUp,
    /// The Bulk recovery after DataMissing.
    Recovery,
}

impl Origin {
    /// The name printed in `"origin"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bulk => "bulk",
            Self::Live => "live",
            Self::CatchUp => "catch-up",
            Self::Recovery => "recovery",
        }
    }
}

/// One binding as a JSON object.
pub fn binding_json(binding: &Binding, origin: Origin) -> Value {
    let leases: Vec<Value> = binding
        .leases
        .iter()
        .map(|l| lease_json(l, binding.base_time))
        .collect();
    let mut v = json!({
        "type": "binding",
        "origin": origin.name(),
        "client_id": duid_json(&binding.client_id),
        "leases": leases,
        "clt_time": binding.clt_time,
        "base_time": opt_time_json(binding.base_time),
        "last_contact": opt_time_json(binding.last_contact()),
    });
    if let Some(relay) = binding.relay {
        v["relay"] = json!({
            "peer_address": relay.peer_address.to_string(),
            "link_address": relay.link_address.to_string(),
        });
    }
    v
}

/// The header of the table format.
pub const TABLE_HEADER: &str = "CLIENT-ID                                  TYPE       \
LEASE                          PREF       VALID      EXPIRES (UTC)         LAST CONTACT (UTC)";

/// One binding as table rows: one row per lease.
pub fn binding_rows(binding: &Binding) -> Vec<String> {
    let id = hex(&binding.client_id);
    let kind = duid_type_name(&binding.client_id);
    let contact = binding.last_contact_utc().unwrap_or_else(|| "-".into());
    let rows: Vec<String> = binding
        .leases
        .iter()
        .map(|lease| {
            let expires = if lease.ended() {
                "ended".to_owned()
            } else {
                match binding.base_time {
                    Some(base) => lease
                        .expires(base)
                        .map_or_else(|| "never".to_owned(), time::server_to_utc),
                    None => "-".to_owned(),
                }
            };
            format!(
                "{id:<42} {kind:<10} {:<30} {:<10} {:<10} {expires:<21} {contact}",
                lease.key(),
                lease.preferred,
                lease.valid
            )
        })
        .collect();
    if rows.is_empty() {
        vec![format!("{id:<42} {kind:<10} (no leases)")]
    } else {
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_json_shows_times_and_duid_type() {
        let binding = Binding {
            client_id: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
            leases: vec![
                Lease {
                    kind: LeaseKind::Address("2001:db8::1:100".parse().unwrap()),
                    preferred: 3600,
                    valid: 7200,
                },
                Lease {
                    kind: LeaseKind::Prefix("2001:db8:100::".parse().unwrap(), 56),
                    preferred: 0,
                    valid: 0,
                },
            ],
            clt_time: 60,
            relay: None,
            base_time: Some(849_182_400),
        };
        let v = binding_json(&binding, Origin::Live);
        assert_eq!(v["client_id"]["type"], "DUID-LL");
        assert_eq!(v["client_id"]["hex"], "00030001020000000001");
        assert_eq!(v["last_contact"]["utc"], "2026-11-28T11:59:00Z");
        assert_eq!(v["leases"][0]["expires"]["utc"], "2026-11-28T14:00:00Z");
        assert_eq!(v["leases"][1]["ended"], true);
        let rows = binding_rows(&binding);
        assert_eq!(rows.len(), 2);
        assert!(rows[1].contains("ended"), "{}", rows[1]);
    }
}
