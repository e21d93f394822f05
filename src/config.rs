//! lqd's configuration: one TOML file, every setting documented with its default, validated
//! once into the sizes the daemon runs with (style.md S26).
//!
//! This covers what the daemon runs today: the store and the Kea source. The listener and
//! protocol timers (protocol.md §5) join it with the server.
//!
//! ```toml
//! [store]
//! data_dir = "/var/lib/lqd"
//!
//! [ingest]
//! lease_file = "/var/lib/kea/kea-leases6.csv"
//! kea_config = "/etc/kea/kea-dhcp6.conf"
//!
//! [[links]]            # overrides Kea's subnet6 entries (kea.md §10)
//! subnet_id = 1
//! prefix = "2001:db8:1::/64"
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ingest::links::{parse_prefix, Links};
use crate::ingest::pipeline::IngestConfig;
use crate::net::worker::NetConfig;
use crate::server::connection::{Permitted, Policy};
use crate::store::model::{DuidBuf, Prefix};
use crate::store::table::TableLimits;
use crate::store::{LogConfig, ShardConfig};

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The binding store.
    pub store: StoreSection,
    /// The Kea lease-file source.
    pub ingest: IngestSection,
    /// The TCP leasequery server.
    pub server: ServerSection,
    /// The Prometheus endpoint.
    pub metrics: MetricsSection,
    /// Links by Kea subnet id; these override Kea's configuration.
    pub links: Vec<LinkEntry>,
}

/// `[metrics]`: `GET /metrics` in the Prometheus text format (architecture.md,
/// "Observability").
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of the HTTP endpoint; empty = no endpoint. Loopback by default: the figures
    /// name requestors' behaviour and lqd's load, nothing for the open network.
    pub listen: String,
}

impl MetricsSection {
    fn address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.listen.as_str() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| {
                ConfigError(format!(
                    "metrics: listen {text:?} is not address:port (or \"\" for none)"
                ))
            }),
        }
    }
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9547".into(),
        }
    }
}

/// `[store]`: shards, change log and capacities. Capacities are totals over all shards.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Directory of the change logs (one sub-directory per shard).
    pub data_dir: PathBuf,
    /// Number of shards; 0 = one per CPU. Must not change while `data_dir` holds data.
    pub shards: u32,
    /// Size of one change-log segment file, octets (multiple of 4096, ≥ 64 KiB).
    pub segment_bytes: usize,
    /// Segments kept per shard: retention by bytes is `segment_bytes × segments_max`.
    pub segments_max: usize,
    /// History kept for catch-up (S-57), seconds; ended leases are reported this long.
    pub retention_age_s: u32,
    /// Sparse time-index entries per shard (one per second with a change).
    pub time_index_entries_max: usize,
    /// Clients (DUID + link), in total.
    pub clients_max: usize,
    /// Addresses with a live lease, in total.
    pub addresses_max: usize,
    /// Delegated prefixes with a live lease, in total.
    pub prefixes_max: usize,
    /// Distinct links (Kea subnets).
    pub links_max: usize,
    /// Distinct relay-ids.
    pub relay_ids_max: usize,
    /// Distinct remote-ids.
    pub remote_ids_max: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/lqd"),
            shards: 0,
            segment_bytes: 64 << 20,
            segments_max: 64,
            retention_age_s: 7 * 86_400,
            time_index_entries_max: 1 << 18,
            clients_max: 1_000_000,
            addresses_max: 2_000_000,
            prefixes_max: 1_000_000,
            links_max: 65_536,
            relay_ids_max: 65_536,
            remote_ids_max: 1_000_000,
        }
    }
}

/// `[ingest]`: Kea's lease file and configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Kea's memfile lease6 journal (`Dhcp6.lease-database.name`).
    pub lease_file: PathBuf,
    /// Kea's dhcp6 configuration, read for subnet ids → link prefixes; empty = none.
    pub kea_config: PathBuf,
    /// Longest journal line accepted, octets.
    pub line_max: usize,
    /// Capacity of each shard's queue, in changes (back-pressure beyond it).
    pub queue_capacity: usize,
    /// Longest wait for an inotify event before polling anyway, milliseconds.
    pub idle_wait_ms: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            lease_file: PathBuf::from("/var/lib/kea/kea-leases6.csv"),
            kea_config: PathBuf::from("/etc/kea/kea-dhcp6.conf"),
            line_max: 64 * 1024,
            queue_capacity: 4096,
            idle_wait_ms: 1000,
        }
    }
}

/// `[server]`: the TCP listener, access and the protocol timers (protocol.md §5).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address and port to listen on (S-7: port 547).
    pub listen: String,
    /// Network workers; 0 = as many as shards.
    pub workers: usize,
    /// Connections open at once, all workers together (S-8: BULK_LQ_MAX_CONNS = 10).
    pub connections_max: usize,
    /// Serve ACTIVELEASEQUERY (S-2: off until enabled).
    pub active_enabled: bool,
    /// Allow Active Leasequery over plain TCP (S-4: a separate, explicit switch; this
    /// build has no TLS, so Active needs both).
    pub insecure_allowed: bool,
    /// Requestor prefixes allowed to connect (S-9); empty = every source. IPv4 sources
    /// match as IPv4-mapped addresses (`::ffff:0:0/96`).
    pub allow: Vec<String>,
    /// Connections one source address may hold at once; 0 = no per-source cap (S-11).
    pub connections_per_source_max: usize,
    /// Query types per requestor prefix (S-9, S-27); the longest matching prefix decides,
    /// a requestor matching none may use every type.
    pub requestors: Vec<RequestorEntry>,
    /// Queries one connection may make (S-12).
    pub queries_per_connection: u32,
    /// ACTIVE_LQ_SEND_TIMEOUT, seconds (S-61).
    pub active_send_timeout_s: u64,
    /// ACTIVE_LQ_IDLE_TIMEOUT, seconds (S-58).
    pub active_idle_timeout_s: u64,
    /// BULK_LQ_DATA_TIMEOUT, seconds (S-10, S-62).
    pub bulk_data_timeout_s: u64,
    /// Largest message accepted, octets.
    pub message_size_max: u16,
    /// Server DUID as hex; empty = DUID-UUID from /etc/machine-id.
    pub server_duid: String,
    /// Send buffer per connection in lqd, octets.
    pub send_buffer: usize,
    /// `SO_SNDBUF` per connection, octets (tuning/README.md, T21).
    pub socket_send_buffer: usize,
    /// Shared LEASEQUERY-DATA bodies per worker, octets (architecture.md, "Fan-out" 2).
    pub shared_bodies: usize,
    /// Send batches with iovecs over the shared bodies (true) or copied into each
    /// connection's buffer first (false).
    pub vectored_sends: bool,
    /// Longest wait before Active connections look for new records, ms.
    pub tick_ms: u64,
    /// Pin network worker i (the owner of shard i) to CPU i (modulo the CPUs present).
    pub pin_cpus: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "[::]:547".into(),
            workers: 0,
            connections_max: 10,
            active_enabled: false,
            insecure_allowed: false,
            allow: Vec::new(),
            connections_per_source_max: 0,
            requestors: Vec::new(),
            queries_per_connection: 16,
            active_send_timeout_s: 120,
            active_idle_timeout_s: 60,
            bulk_data_timeout_s: 300,
            message_size_max: u16::MAX,
            server_duid: String::new(),
            send_buffer: 256 * 1024,
            socket_send_buffer: 256 * 1024,
            shared_bodies: 4 << 20,
            vectored_sends: true,
            tick_ms: 5,
            pin_cpus: true,
        }
    }
}

/// One `[[server.requestors]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RequestorEntry {
    /// Source prefix ("2001:db8::/32", "192.0.2.0/24", or an address).
    pub prefix: String,
    /// Permitted queries: "address", "client-id", "relay-id", "link-address",
    /// "remote-id", "active". Others get NotAllowed.
    pub permitted: Vec<String>,
}

/// One `[[links]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// Kea's subnet id.
    pub subnet_id: u32,
    /// The link prefix, "prefix/len".
    pub prefix: String,
}

/// A configuration error: the operator's to fix; the message says what and where.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Sizes and settings derived from a validated [`Config`].
#[derive(Clone, Debug)]
pub struct Limits {
    /// Shards (workers).
    pub shards: u32,
    /// Settings of each shard.
    pub shard: Vec<ShardConfig>,
    /// The Kea source.
    pub ingest: IngestConfig,
    /// Queue capacity per shard.
    pub queue_capacity: usize,
    /// `[[links]]` overrides, parsed.
    pub links: Vec<(u32, Prefix)>,
    /// Kea's configuration file, if one is to be read.
    pub kea_config: Option<PathBuf>,
    /// Network workers.
    pub workers: usize,
    /// Connections open at once (S-8).
    pub connections_max: usize,
    /// What every connection follows.
    pub policy: Policy,
    /// Listener and socket settings.
    pub net: NetConfig,
    /// Settings below the RFC defaults, to be logged (S-65).
    pub warnings: Vec<String>,
    /// Pin threads to CPUs.
    pub pin_cpus: bool,
    /// Where `GET /metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// Per-shard share of a total capacity: even share plus 1/8 for imbalance (`shard_of`
/// stays within ±5 % of even, see tests/store_balance.rs), at least 16.
fn per_shard(total: usize, shards: u32) -> usize {
    let even = total.div_ceil(shards as usize);
    (even + even / 8).max(16)
}

impl Config {
    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Check every setting and derive the sizes the daemon runs with.
    pub fn validate(&self, cpus: usize) -> Result<Limits, ConfigError> {
        let s = &self.store;
        let shards = if s.shards == 0 {
            u32::try_from(cpus.max(1)).unwrap_or(1)
        } else {
            s.shards
        };
        if shards > 1024 {
            return Err(ConfigError(format!("store.shards {shards} is above 1024")));
        }
        let table = TableLimits {
            clients_max: per_shard(s.clients_max, shards),
            addresses_max: per_shard(s.addresses_max, shards),
            prefixes_max: per_shard(s.prefixes_max, shards),
            links_max: s.links_max.max(1),
            relay_ids_max: per_shard(s.relay_ids_max, shards),
            remote_ids_max: per_shard(s.remote_ids_max, shards),
        };
        let shard = (0..shards)
            .map(|i| {
                let log = LogConfig {
                    dir: s.data_dir.join(format!("shard-{i:03}")),
                    segment_bytes: s.segment_bytes,
                    segments_max: s.segments_max,
                    retention_age_s: s.retention_age_s,
                    time_index_entries_max: s.time_index_entries_max,
                };
                log.validate()
                    .map_err(|e| ConfigError(format!("store: {e}")))?;
                Ok(ShardConfig { log, table })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let i = &self.ingest;
        if i.line_max < 1024 || i.queue_capacity == 0 {
            return Err(ConfigError(
                "ingest.line_max must be ≥ 1024, queue_capacity ≥ 1".into(),
            ));
        }
        let links = self
            .links
            .iter()
            .map(|l| {
                parse_prefix(Some(&l.prefix))
                    .map(|p| (l.subnet_id, p))
                    .map_err(|e| ConfigError(format!("[[links]] subnet_id {}: {e}", l.subnet_id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let server = self.server.validate(shards)?;
        let metrics_listen = self.metrics.address()?;
        Ok(Limits {
            metrics_listen,
            workers: server.workers,
            connections_max: self.server.connections_max,
            policy: server.policy,
            net: server.net,
            warnings: server.warnings,
            pin_cpus: self.server.pin_cpus,
            shards,
            shard,
            ingest: IngestConfig {
                lease_file: i.lease_file.clone(),
                line_max: i.line_max,
                lines_per_poll: 1024,
                idle_wait: Duration::from_millis(i.idle_wait_ms.max(1)),
                owners_max: s.addresses_max + s.prefixes_max,
            },
            queue_capacity: i.queue_capacity,
            links,
            kea_config: (!i.kea_config.as_os_str().is_empty()).then(|| i.kea_config.clone()),
        })
    }
}

struct ServerLimits {
    workers: usize,
    policy: Policy,
    net: NetConfig,
    warnings: Vec<String>,
}

impl ServerSection {
    /// S-65: timers below the RFC defaults are allowed but logged; zero is refused.
    fn timer_warnings(&self) -> Result<Vec<String>, ConfigError> {
        let err = |what: String| ConfigError(format!("server: {what}"));
        let mut warnings = Vec::new();
        let timers = [
            ("active_send_timeout_s", self.active_send_timeout_s, 120),
            ("active_idle_timeout_s", self.active_idle_timeout_s, 60),
            ("bulk_data_timeout_s", self.bulk_data_timeout_s, 300),
        ];
        for (name, value, default) in timers {
            if value == 0 {
                return Err(err(format!("{name} must be at least 1")));
            }
            if value < default {
                warnings.push(format!(
                    "server.{name} = {value} is below the RFC default {default}; \
                     RFC 7653 §6.4 says smaller values SHOULD NOT be used (S-65)"
                ));
            }
        }
        Ok(warnings)
    }

    fn validate(&self, shards: u32) -> Result<ServerLimits, ConfigError> {
        let err = |what: String| ConfigError(format!("server: {what}"));
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| err(format!("listen {:?} is not address:port", self.listen)))?;
        if self.connections_max == 0
            || self.queries_per_connection == 0
            || self.message_size_max < 4
        {
            return Err(err(
                "connections_max, queries_per_connection ≥ 1, message_size_max ≥ 4".into(),
            ));
        }
        let workers = if self.workers == 0 {
            shards as usize
        } else {
            self.workers
        };
        if listen.port() == 0 && workers > 1 {
            // Each worker binds its own SO_REUSEPORT socket: port 0 would give each a port.
            return Err(err("listen port 0 needs workers = 1".into()));
        }
        let allow = self
            .allow
            .iter()
            .map(|p| parse_allow(p).map_err(&err))
            .collect::<Result<_, _>>()?;
        let warnings = self.timer_warnings()?;
        let server_duid = server_duid(&self.server_duid).map_err(err)?;
        let requestors = self
            .requestors
            .iter()
            .map(|r| Ok((parse_allow(&r.prefix)?, permitted(&r.permitted)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(err)?;
        let policy = Policy {
            server_duid,
            active_enabled: self.active_enabled,
            insecure_allowed: self.insecure_allowed,
            queries_max: self.queries_per_connection,
            query_wait_ms: self.bulk_data_timeout_s * 1000,
            idle_timeout_ms: self.active_idle_timeout_s * 1000,
            message_size_max: self.message_size_max,
        };
        let net = NetConfig {
            listen,
            // SO_REUSEPORT spreads connections at random: any worker may have to hold
            // every connection under the global cap, plus one newcomer admitted while an
            // idle connection it displaced is still closing (S-11).
            slots: self.connections_max + 1,
            // Room for a whole query's answer frame and for a batch of at least two
            // LEASEQUERY-DATA of the largest body.
            send_buffer: self
                .send_buffer
                .max(usize::from(self.message_size_max) + 2)
                .max(2 * crate::server::out::DATA_FRAME_MAX),
            tick: Duration::from_millis(self.tick_ms.max(1)),
            send_timeout_active_ms: self.active_send_timeout_s * 1000,
            send_timeout_bulk_ms: self.bulk_data_timeout_s * 1000,
            allow,
            socket_send_buffer: self.socket_send_buffer,
            requestors,
            per_source_max: self.connections_per_source_max,
            shared_bodies: self.shared_bodies.max(crate::server::out::BODY_MAX),
            vectored_sends: self.vectored_sends,
        };
        Ok(ServerLimits {
            workers,
            policy,
            net,
            warnings,
        })
    }
}

/// The permitted set named by a requestor entry.
fn permitted(names: &[String]) -> Result<Permitted, String> {
    let mut bits = 0u8;
    for name in names {
        bits |= match name.as_str() {
            "address" => 1 << 1,
            "client-id" => 1 << 2,
            "relay-id" => 1 << 3,
            "link-address" => 1 << 4,
            "remote-id" => 1 << 5,
            "active" => Permitted::ACTIVE,
            other => return Err(format!("requestors: unknown query kind {other:?}")),
        };
    }
    Ok(Permitted(bits))
}

/// An allow-list entry: an IPv6 prefix, or an IPv4 prefix as IPv4-mapped IPv6.
fn parse_allow(text: &str) -> Result<Prefix, String> {
    let (address, len) = text.split_once('/').unwrap_or((text, ""));
    if let Ok(v4) = address.parse::<std::net::Ipv4Addr>() {
        let len: u8 = if len.is_empty() {
            32
        } else {
            len.parse().map_err(|_| format!("allow {text:?}"))?
        };
        if len > 32 {
            return Err(format!("allow {text:?}: IPv4 prefix longer than 32"));
        }
        return Ok(Prefix {
            address: v4.to_ipv6_mapped(),
            len: 96 + len,
        });
    }
    let text = if len.is_empty() {
        format!("{address}/128")
    } else {
        text.to_owned()
    };
    parse_prefix(Some(&text)).map_err(|e| format!("allow: {e}"))
}

/// The configured DUID, or DUID-UUID (RFC 6355) from /etc/machine-id.
fn server_duid(hex: &str) -> Result<DuidBuf, String> {
    let hex: String = if hex.is_empty() {
        let id = std::fs::read_to_string("/etc/machine-id")
            .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
            .map_err(|e| {
                format!("server_duid is empty and no machine-id is readable ({e}): set server_duid")
            })?;
        format!("0004{}", id.trim())
    } else {
        hex.chars().filter(|c| *c != ':').collect()
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    bytes
        .filter(|b| (3..=130).contains(&b.len()))
        .and_then(|b| DuidBuf::new(&b))
        .ok_or_else(|| format!("server_duid {hex:?} is not hex of 3..130 octets"))
}

impl Limits {
    /// The link map: Kea's configuration (if set and readable), overridden by `[[links]]`.
    pub fn links(&self) -> Result<Links, ConfigError> {
        let mut links = match &self.kea_config {
            Some(path) => Links::from_kea_file(path).map_err(|e| ConfigError(e.to_string()))?,
            None => Links::default(),
        };
        for &(subnet, prefix) in &self.links {
            links.insert(subnet, prefix);
        }
        Ok(links)
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shard = &self.shard[0];
        let t = &shard.table;
        let l = &shard.log;
        writeln!(f, "shards {}", self.shards)?;
        writeln!(
            f,
            "per shard: clients_max {} addresses_max {} prefixes_max {} links_max {} \
             relay_ids_max {} remote_ids_max {}",
            t.clients_max,
            t.addresses_max,
            t.prefixes_max,
            t.links_max,
            t.relay_ids_max,
            t.remote_ids_max
        )?;
        writeln!(
            f,
            "change log per shard: segment_bytes {} segments_max {} (retention {} MiB, {} s)",
            l.segment_bytes,
            l.segments_max,
            (l.segment_bytes * l.segments_max) >> 20,
            l.retention_age_s
        )?;
        writeln!(
            f,
            "ingest: {} line_max {} queue_capacity {} links from config {}",
            self.ingest.lease_file.display(),
            self.ingest.line_max,
            self.queue_capacity,
            self.links.len()
        )?;
        let p = &self.policy;
        write!(
            f,
            "server: listen {} workers {} connections_max {} (slots per worker {}) active {} \
             insecure {} queries_per_connection {} idle {} ms send timeout {} ms query wait {} ms",
            self.net.listen,
            self.workers,
            self.connections_max,
            self.net.slots,
            p.active_enabled,
            p.insecure_allowed,
            p.queries_max,
            p.idle_timeout_ms,
            self.net.send_timeout_active_ms,
            p.query_wait_ms
        )?;
        writeln!(
            f,
            "\nbuffers per connection: send {} socket {}; shared bodies per worker {}",
            self.net.send_buffer, self.net.socket_send_buffer, self.net.shared_bodies
        )?;
        match self.metrics_listen {
            Some(addr) => write!(f, "metrics: GET http://{addr}/metrics"),
            None => write!(f, "metrics: off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_links_override() {
        let config: Config = toml::from_str(
            r#"
            [store]
            data_dir = "/tmp/lqd"
            shards = 4
            [ingest]
            kea_config = ""
            [[links]]
            subnet_id = 1
            prefix = "2001:db8:1::1/64"
            "#,
        )
        .unwrap();
        let limits = config.validate(2).unwrap();
        assert_eq!(limits.shards, 4);
        assert_eq!(limits.shard[3].log.dir, PathBuf::from("/tmp/lqd/shard-003"));
        assert_eq!(limits.shard[0].table.clients_max, 281_250);
        let links = limits.links().unwrap();
        assert_eq!(
            links.get(1).unwrap().address,
            "2001:db8:1::".parse::<std::net::Ipv6Addr>().unwrap()
        );
        assert!(limits.to_string().contains("shards 4"));
        assert_eq!(Config::default().validate(3).unwrap().shards, 3);
    }

    #[test]
    fn requestor_permissions_and_allow_lists_parse() {
        let config: Config = toml::from_str(
            r#"
            [server]
            server_duid = "0003000100aabbccddee"
            allow = ["127.0.0.0/8", "::1", "2001:db8::/32"]
            [[server.requestors]]
            prefix = "127.0.0.2"
            permitted = ["address", "active"]
            "#,
        )
        .unwrap();
        let limits = config.validate(1).unwrap();
        assert_eq!(limits.net.allow.len(), 3);
        assert_eq!(limits.net.allow[0].len, 104, "IPv4 /8 as IPv4-mapped /104");
        assert_eq!(limits.net.allow[1].len, 128);
        assert_eq!(
            limits.net.requestors[0].1,
            Permitted(1 << 1 | Permitted::ACTIVE)
        );
        let bad: Config =
            toml::from_str("[[server.requestors]]\nprefix = \"::1\"\npermitted = [\"bulk\"]\n")
                .unwrap();
        assert!(bad
            .validate(1)
            .unwrap_err()
            .to_string()
            .contains("unknown query kind"));
        let slow: Config = toml::from_str(
            "[server]\nactive_idle_timeout_s = 5\nserver_duid = \"0003000100aabbccddee\"\n",
        )
        .unwrap();
        assert!(slow.validate(1).unwrap().warnings[0].contains("S-65"));
    }

    #[test]
    fn mistakes_are_named() {
        let unknown: Result<Config, _> = toml::from_str("[store]\nshard = 4\n");
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `shard`"));
        let bad: Config = toml::from_str("[[links]]\nsubnet_id = 2\nprefix = \"nope\"\n").unwrap();
        let err = bad.validate(1).unwrap_err().to_string();
        assert!(err.contains("[[links]] subnet_id 2"), "{err}");
        let small: Config = toml::from_str("[store]\nsegment_bytes = 1000\n").unwrap();
        assert!(small
            .validate(1)
            .unwrap_err()
            .to_string()
            .contains("segment_bytes"));
    }
}
