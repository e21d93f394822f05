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
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ingest::links::{parse_prefix, Links};
use crate::ingest::pipeline::IngestConfig;
use crate::store::model::Prefix;
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
    /// Links by Kea subnet id; these override Kea's configuration.
    pub links: Vec<LinkEntry>,
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
        Ok(Limits {
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
        write!(
            f,
            "ingest: {} line_max {} queue_capacity {} links from config {}",
            self.ingest.lease_file.display(),
            self.ingest.line_max,
            self.queue_capacity,
            self.links.len()
        )
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
