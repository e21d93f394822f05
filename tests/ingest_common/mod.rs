//! Helpers shared by the ingest tests: a single-threaded harness (shards, bounded queues,
//! router, Kea source), journal file operations as Kea and kea-lfc perform them (kea.md §8),
//! and an independent last-row-wins model of Kea's lease table (kea.md §7.2) to compare the
//! store against.
//!
//! The model reads rows with its own small parser (columns by header name), not with lqd's.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crossbeam_channel::{bounded, Receiver};
use lqd::ingest::links::Links;
use lqd::ingest::pipeline::drain;
use lqd::ingest::row::server_time;
use lqd::ingest::source::{KeaSource, Start};
use lqd::ingest::tailer::Position;
use lqd::ingest::{Router, ShardMsg};
use lqd::store::model::{Binding, Prefix, INFINITE};
use lqd::store::record::{FLAG_CARRIED, KIND_CHANGE};
use lqd::store::table::TableLimits;
use lqd::store::{Checkpoint, Cursor, LogConfig, Mode, Next, Shard, ShardConfig};
use lqd::wire::client_data::LeaseKind;

/// Kea 1.5 … 2.0 header (15 columns, kea.md §3).
pub const H15: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context";
/// Kea 2.1 … 2.3.7 header (17 columns).
pub const H17: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";
/// Kea ≥ 2.3.8 header (18 columns).
pub const H18: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,\
iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,\
pool_id";

/// "Now" for the fixture rows, Unix seconds: before every `expire` of kea.md §13.
pub const NOW_UNIX: u64 = 1_795_896_100;

/// [`NOW_UNIX`] in server time.
pub fn now() -> u32 {
    server_time(NOW_UNIX)
}

/// Longest line the tests' tailers accept.
pub const LINE_MAX: usize = 4096;

/// Capacity of each shard queue in single-threaded tests: more than one poll can send.
pub const QUEUE: usize = 4096;

/// A fixture journal's text.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kea")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The subnets of the lab configuration (kea.md §12.3): 1 and 2. Subnet 3 stays unknown.
pub fn links() -> Links {
    let mut links = Links::default();
    for (id, prefix) in [(1, "2001:db8:1::"), (2, "2001:db8:2::")] {
        links.insert(
            id,
            Prefix {
                address: prefix.parse().expect("prefix"),
                len: 64,
            },
        );
    }
    links
}

/// A shard configuration for the tests: 1 MiB segments, generous tables.
pub fn shard_config(dir: &Path) -> ShardConfig {
    ShardConfig {
        log: LogConfig {
            dir: dir.to_path_buf(),
            segment_bytes: 1 << 20,
            segments_max: 8,
            retention_age_s: 7 * 86_400,
            time_index_entries_max: 4096,
        },
        table: TableLimits {
            clients_max: 100_000,
            addresses_max: 100_000,
            prefixes_max: 50_000,
            links_max: 64,
            relay_ids_max: 64,
            remote_ids_max: 64,
        },
    }
}

/// The checkpoint to resume from: the one with the lowest id across shards (the position
/// every shard has applied up to). `None` when a shard holds none.
pub fn lowest_checkpoint(checkpoints: &[Option<Checkpoint>]) -> Option<(u64, Position)> {
    let mut lowest: Option<&Checkpoint> = None;
    for checkpoint in checkpoints {
        let checkpoint = checkpoint.as_ref()?;
        if lowest.is_none_or(|l| checkpoint.id < l.id) {
            lowest = Some(checkpoint);
        }
    }
    let lowest = lowest?;
    let position = Position::from_bytes(&lowest.bytes).expect("a checkpoint decodes");
    Some((lowest.id, position))
}

/// Options of the harness.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Number of shards.
    pub shards: usize,
    /// Lines per poll.
    pub lines_per_poll: usize,
    /// Longest line.
    pub line_max: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shards: 3,
            lines_per_poll: 64,
            line_max: LINE_MAX,
        }
    }
}

/// Shards, their queues, the router and the Kea source, driven from one thread.
pub struct Ingest {
    /// The shards, by number.
    pub shards: Vec<Shard>,
    /// Each shard's queue.
    pub queues: Vec<Receiver<ShardMsg>>,
    /// The router.
    pub router: Router,
    /// The Kea source.
    pub source: KeaSource,
    /// How the source started.
    pub start: Start,
    /// The checkpoint recovered from the store (lowest id across shards).
    pub recovered: Option<(u64, Position)>,
}

impl Ingest {
    /// Open (or reopen) the shards under `store` and start the source on `journal`.
    pub fn open(journal: &Path, store: &Path, now: u32) -> Self {
        Self::open_with(journal, store, Options::default(), now)
    }

    /// [`Self::open`] with options.
    pub fn open_with(journal: &Path, store: &Path, options: Options, now: u32) -> Self {
        Self::open_mapped(journal, store, options, now, |c| c)
    }

    /// [`Self::open_with`], passing the recovered checkpoint through `map` first (to stand
    /// for what a file system can do to a file identity).
    pub fn open_mapped(
        journal: &Path,
        store: &Path,
        options: Options,
        now: u32,
        map: impl FnOnce(Option<(u64, Position)>) -> Option<(u64, Position)>,
    ) -> Self {
        let mut shards = Vec::new();
        let mut checkpoints = Vec::new();
        let mut senders = Vec::new();
        let mut queues = Vec::new();
        for i in 0..options.shards {
            let (shard, checkpoint, _) =
                Shard::open(shard_config(&store.join(format!("shard-{i}"))), now)
                    .expect("shard opens");
            shards.push(shard);
            checkpoints.push(checkpoint);
            let (tx, rx) = bounded(QUEUE);
            senders.push(tx);
            queues.push(rx);
        }
        let recovered = map(lowest_checkpoint(&checkpoints));
        let capacity = 100_000;
        let mut router = Router::new(senders, links(), capacity);
        for (i, shard) in shards.iter().enumerate() {
            router.learn_owners(
                u32::try_from(i).expect("few shards"),
                &shard.live_leases(now),
            );
        }
        if let Some((id, _)) = recovered {
            router.resume_checkpoints_after(id);
        }
        let mut source = KeaSource::new(journal, options.line_max, options.lines_per_poll);
        let start = source
            .start(&mut router, recovered.map(|(_, p)| p), now)
            .expect("source starts");
        let mut ingest = Self {
            shards,
            queues,
            router,
            source,
            start,
            recovered,
        };
        ingest.drain(now);
        ingest
    }

    /// Apply everything queued; returns the messages applied.
    pub fn drain(&mut self, now: u32) -> usize {
        let mut total = 0;
        for (shard, queue) in self.shards.iter_mut().zip(&self.queues) {
            loop {
                let (taken, _) = drain(shard, queue, now, 1024, None);
                total += taken;
                if taken == 0 {
                    break;
                }
            }
        }
        total
    }

    /// Poll once and apply what was routed; returns the lines read.
    pub fn poll_once(&mut self, now: u32) -> usize {
        let lines = self.source.poll(&mut self.router, now).expect("poll");
        self.drain(now);
        lines
    }

    /// Poll until nothing more is read; returns the lines read.
    pub fn poll(&mut self, now: u32) -> usize {
        let mut total = 0;
        loop {
            let lines = self.poll_once(now);
            if lines == 0 {
                return total;
            }
            total += lines;
        }
    }

    /// The client's current binding.
    pub fn binding(&self, duid: &[u8], link: u32) -> Option<Binding> {
        self.shards.iter().find_map(|shard| {
            shard
                .latest(duid, link)
                .and_then(|offset| shard.binding_at(offset))
        })
    }

    /// Clients in the store, all shards together.
    pub fn clients(&self) -> usize {
        self.shards.iter().map(|s| s.table().len()).sum()
    }

    /// Every client's binding, keyed by (DUID, link).
    pub fn bindings(&self) -> BTreeMap<(Vec<u8>, u32), Binding> {
        let mut out = BTreeMap::new();
        for shard in &self.shards {
            for offset in shard.all() {
                let binding = shard.binding_at(offset).expect("latest record");
                out.insert((binding.duid.as_slice().to_vec(), binding.link), binding);
            }
        }
        out
    }

    /// Change records (not carried copies) per client hash, over every shard's whole log.
    pub fn change_records(&self) -> HashMap<u64, usize> {
        let mut counts = HashMap::new();
        for shard in &self.shards {
            let reader = shard.reader();
            let mut cursor = Cursor::at_start(&reader, Mode::All);
            loop {
                match cursor.next(&reader) {
                    Next::Record(record) => {
                        let h = record.header;
                        if h.kind == KIND_CHANGE && h.flags & FLAG_CARRIED == 0 {
                            *counts.entry(h.client_hash).or_default() += 1;
                        }
                    }
                    Next::Again => {}
                    Next::Pending | Next::HorizonPassed => break,
                }
            }
        }
        counts
    }

    /// Change records of one client.
    pub fn records_of(&self, duid: &[u8], link: u32) -> usize {
        let hash = Shard::client_hash(duid, link);
        self.change_records().get(&hash).copied().unwrap_or(0)
    }

    /// Change records in total.
    pub fn records_total(&self) -> usize {
        self.change_records().values().sum()
    }

    /// Expire due leases on every shard; returns how many.
    pub fn expire_due(&mut self, now: u32) -> usize {
        self.shards
            .iter_mut()
            .map(|s| s.expire_due(now, 1_000_000))
            .sum()
    }
}

/// The path `<journal><suffix>` (X.1, X.2, X.completed).
pub fn with_suffix(journal: &Path, suffix: &str) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Append text to a file (created if missing), as Kea's buffered write + flush does.
pub fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

/// Append bytes to a file (created if missing).
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(bytes).expect("append");
}

/// Lines joined, each ending with `\n`.
pub fn lines(rows: &[&str]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

/// Kea's LFC rotation (kea.md §8.2 step 1): rename X → X.1, new X holding `header` and
/// then `rows`.
pub fn rotate(journal: &Path, header: &str, rows: &[&str]) {
    fs::rename(journal, with_suffix(journal, ".1")).expect("rename X to X.1");
    let mut text = format!("{header}\n");
    text.push_str(&lines(rows));
    fs::write(journal, text).expect("new X");
}

/// kea-lfc (kea.md §8.2 step 2): X.2 := last-row-wins of X.2 then X.1 without deleted
/// leases, written under `header` in address order; X.1 removed.
pub fn compact(journal: &Path, header: &str) {
    let x2 = with_suffix(journal, ".2");
    let x1 = with_suffix(journal, ".1");
    let mut text = String::new();
    for file in [&x2, &x1] {
        if let Ok(t) = fs::read_to_string(file) {
            text.push_str(&t);
        }
    }
    let rows = parse_journal(&text);
    // Kea's table is keyed by address alone, for NA and PD (kea.md §1).
    let mut last: BTreeMap<u128, &ModelRow> = BTreeMap::new();
    for row in &rows {
        last.insert(u128::from(row.address), row);
    }
    let mut out = format!("{header}\n");
    for row in last.values().filter(|r| r.valid != 0) {
        out.push_str(&row.reformat(header));
        out.push('\n');
    }
    let completed = with_suffix(journal, ".completed");
    fs::write(&completed, out).expect("X.completed");
    let _ = fs::remove_file(&x2);
    fs::remove_file(&x1).expect("remove X.1");
    fs::rename(&completed, &x2).expect("X.completed to X.2");
}

/// One row as the model reads it (escaped fields kept as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRow {
    /// The fields by column name.
    pub fields: BTreeMap<String, String>,
    /// Address or prefix base.
    pub address: Ipv6Addr,
    /// DUID octets.
    pub duid: Vec<u8>,
    /// Valid lifetime.
    pub valid: u32,
    /// Expire, Unix seconds.
    pub expire: u64,
    /// Subnet id.
    pub subnet: u32,
    /// Preferred lifetime.
    pub pref: u32,
    /// 0 NA, 1 TA, 2 PD.
    pub lease_type: u8,
    /// Prefix length.
    pub prefix_len: u8,
    /// State (0 when absent).
    pub state: u32,
    /// Escaped user_context.
    pub user_context: String,
}

impl ModelRow {
    /// The lease resource.
    pub fn kind(&self) -> LeaseKind {
        if self.lease_type == 2 {
            LeaseKind::Prefix(self.address, self.prefix_len)
        } else {
            LeaseKind::Address(self.address)
        }
    }

    /// CLTT, Unix seconds.
    pub fn cltt(&self) -> u64 {
        self.expire - u64::from(self.valid)
    }

    /// The row under another header (missing columns empty, `pool_id` 0).
    pub fn reformat(&self, header: &str) -> String {
        let field = |name: &str| match self.fields.get(name) {
            Some(v) => v.clone(),
            None if name == "pool_id" => "0".to_owned(),
            None => String::new(),
        };
        header.split(',').map(field).collect::<Vec<_>>().join(",")
    }
}

fn parse_hex_duid(text: &str) -> Option<Vec<u8>> {
    text.split(':')
        .map(|p| {
            if p.len() == 2 {
                u8::from_str_radix(p, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

/// Parse one row against header names; `None` when the model cannot read it.
pub fn parse_model_row(names: &[&str], line: &str) -> Option<ModelRow> {
    let values: Vec<&str> = line.split(',').collect();
    if values.len() != names.len() {
        return None;
    }
    let fields: BTreeMap<String, String> = names
        .iter()
        .zip(&values)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let get = |name: &str| fields.get(name).map(String::as_str);
    let state = match get("state") {
        None | Some("") => 0,
        Some(s) => s.parse().ok()?,
    };
    Some(ModelRow {
        address: get("address")?.parse().ok()?,
        duid: parse_hex_duid(get("duid")?)?,
        valid: get("valid_lifetime")?.parse().ok()?,
        expire: get("expire")?.parse().ok()?,
        subnet: get("subnet_id")?.parse().ok()?,
        pref: get("pref_lifetime")?.parse().ok()?,
        lease_type: get("lease_type")?.parse().ok()?,
        prefix_len: get("prefix_len")?.parse().ok()?,
        state,
        user_context: get("user_context").unwrap_or("").to_owned(),
        fields,
    })
}

/// Every row of a journal text the model can read; header lines (re-)map the columns.
pub fn parse_journal(text: &str) -> Vec<ModelRow> {
    let mut names: Vec<&str> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.starts_with("address,") {
            names = line.split(',').collect();
        } else if let Some(row) = parse_model_row(&names, line) {
            rows.push(row);
        }
    }
    rows
}

/// A lease in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelLease {
    /// Kea state of the row that set it.
    pub state: u32,
    /// Preferred lifetime.
    pub pref: u32,
    /// Valid lifetime.
    pub valid: u32,
    /// CLTT of the row, Unix seconds.
    pub cltt: u64,
    /// Ended (deleted, moved, declined away, expired).
    pub ended: bool,
}

/// A client in the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelClient {
    /// Latest CLTT, Unix seconds.
    pub cltt: u64,
    /// The user_context of the last row applied to the client.
    pub user_context: String,
    /// Leases by resource.
    pub leases: BTreeMap<KindKey, (LeaseKind, ModelLease)>,
}

/// An orderable key for a lease resource.
pub type KindKey = (u128, u8, bool);

/// The key of a resource.
pub fn kind_key(kind: &LeaseKind) -> KindKey {
    match *kind {
        LeaseKind::Address(a) => (u128::from(a), 128, false),
        LeaseKind::Prefix(p, len) => (u128::from(p), len, true),
    }
}

/// Kea's lease table replayed row by row (kea.md §1, §7.2): the last row per address wins;
/// a row for another client ends the address for its previous holder; a valid lifetime of
/// 0 ends the lease; a placeholder DUID (declined) ends the address for whoever held it.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Clients by (DUID, subnet).
    pub clients: BTreeMap<(Vec<u8>, u32), ModelClient>,
    holders: BTreeMap<KindKey, (Vec<u8>, u32)>,
}

impl Model {
    /// The model after `rows`.
    pub fn of(rows: &[ModelRow]) -> Self {
        let mut model = Self::default();
        for row in rows {
            model.apply(row);
        }
        model
    }

    /// The model of a journal text.
    pub fn of_text(text: &str) -> Self {
        Self::of(&parse_journal(text))
    }

    fn end_for_holder(&mut self, key: KindKey) {
        if let Some(holder) = self.holders.remove(&key) {
            if let Some((_, lease)) = self
                .clients
                .get_mut(&holder)
                .and_then(|c| c.leases.get_mut(&key))
            {
                lease.ended = true;
            }
        }
    }

    /// Apply one row.
    pub fn apply(&mut self, row: &ModelRow) {
        let kind = row.kind();
        let key = kind_key(&kind);
        if row.duid == [0] || row.duid == [0, 0, 0] {
            self.end_for_holder(key);
            return;
        }
        let client = (row.duid.clone(), row.subnet);
        if self.holders.get(&key).is_some_and(|h| *h != client) {
            self.end_for_holder(key);
        }
        let lease = ModelLease {
            state: row.state,
            pref: row.pref,
            valid: row.valid,
            cltt: row.cltt(),
            ended: row.valid == 0,
        };
        if row.valid == 0 {
            self.holders.remove(&key);
            let Some(c) = self.clients.get_mut(&client) else {
                return;
            };
            if !c.leases.contains_key(&key) {
                return;
            }
            c.leases.insert(key, (kind, lease));
            c.cltt = c.cltt.max(row.cltt());
            c.user_context.clone_from(&row.user_context);
            return;
        }
        self.holders.insert(key, client.clone());
        let c = self.clients.entry(client).or_default();
        c.leases.insert(key, (kind, lease));
        c.cltt = c.cltt.max(row.cltt());
        c.user_context.clone_from(&row.user_context);
    }

    /// End a client's lease as lqd's clock does (expiry).
    pub fn expire(&mut self, duid: &[u8], subnet: u32, kind: &LeaseKind) {
        let key = kind_key(kind);
        let client = (duid.to_vec(), subnet);
        if let Some((_, lease)) = self
            .clients
            .get_mut(&client)
            .and_then(|c| c.leases.get_mut(&key))
        {
            lease.ended = true;
        }
    }
}

/// Server time a lifetime ends, as the store keeps it (infinite stays infinite).
pub fn until(cltt_unix: u64, lifetime: u32) -> u32 {
    if lifetime == INFINITE {
        INFINITE
    } else {
        server_time(cltt_unix + u64::from(lifetime))
    }
}

/// Assert that the store holds exactly the model's clients and leases at `now`.
pub fn assert_matches(ingest: &Ingest, model: &Model, now: u32) {
    let links = links();
    assert_eq!(
        ingest.clients(),
        model.clients.len(),
        "client count: store {:?}",
        ingest.bindings().keys().collect::<Vec<_>>()
    );
    for ((duid, subnet), expected) in &model.clients {
        let who = format!("client {duid:02x?} subnet {subnet}");
        let binding = ingest
            .binding(duid, *subnet)
            .unwrap_or_else(|| panic!("{who}: not in the store"));
        assert_eq!(binding.cltt, server_time(expected.cltt), "{who}: cltt");
        assert_eq!(
            binding.link_prefix,
            links.get(*subnet),
            "{who}: link prefix"
        );
        let relayed = expected.user_context.contains("relay");
        assert_eq!(binding.relay.is_some(), relayed, "{who}: relay info");
        assert_eq!(
            binding.leases().len(),
            expected.leases.len(),
            "{who}: leases {:?}",
            binding.leases()
        );
        for (kind, lease) in expected.leases.values() {
            assert_lease(&binding, kind, lease, now, &who);
        }
    }
}

fn assert_lease(binding: &Binding, kind: &LeaseKind, expected: &ModelLease, now: u32, who: &str) {
    let got = binding
        .leases()
        .iter()
        .find(|l| l.kind == *kind)
        .unwrap_or_else(|| panic!("{who}: no lease {kind:?} in {:?}", binding.leases()));
    let what = format!("{who} lease {kind:?}: {got:?} vs {expected:?}");
    assert_eq!(got.ended_at != 0, expected.ended, "{what}: ended");
    let entry = got.entry(now);
    let active = !expected.ended && matches!(expected.state, 0 | 4);
    if active {
        assert_eq!(
            got.state.code(),
            u8::try_from(expected.state).expect("state")
        );
        assert_eq!(
            got.valid_until,
            until(expected.cltt, expected.valid),
            "{what}"
        );
        assert_eq!(
            got.preferred_until,
            until(expected.cltt, expected.pref),
            "{what}"
        );
        assert!(got.is_live(now), "{what}: live");
        assert!(entry.valid > 0, "{what}: valid lifetime");
    } else {
        assert!(!got.is_live(now), "{what}: not live");
        assert_eq!(
            (entry.preferred, entry.valid),
            (0, 0),
            "{what}: zero lifetimes"
        );
    }
    if !expected.ended {
        assert_eq!(u32::from(got.state.code()), expected.state, "{what}: state");
    }
}

/// A journal in a temporary directory, with a store beside it.
pub struct Lab {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The lease file X.
    pub journal: PathBuf,
    /// The shards' directory.
    pub store: PathBuf,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    /// An empty lab: no journal yet.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = dir.path().join("kea-leases6.csv");
        let store = dir.path().join("store");
        Self {
            dir,
            journal,
            store,
        }
    }
}

/// Tail `text` (a whole journal, header first) row by row: X starts with the header only,
/// the source starts on it, then the rows are appended and polled.
pub fn tail_text(text: &str, options: Options) -> (Lab, Ingest) {
    let lab = Lab::new();
    let (header, body) = text.split_at(text.find('\n').expect("a header line") + 1);
    fs::write(&lab.journal, header).expect("write X");
    let mut ingest = Ingest::open_with(&lab.journal, &lab.store, options, now());
    assert_eq!(ingest.start, Start::Snapshot { rows: 0 });
    append(&lab.journal, body);
    ingest.poll(now());
    (lab, ingest)
}

/// The rows Kea would load from `text` (last row per address), in file order.
pub fn final_rows(text: &str) -> Vec<ModelRow> {
    let rows = parse_journal(text);
    let mut last: HashMap<u128, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        last.insert(u128::from(row.address), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| rows[i].clone()).collect()
}
