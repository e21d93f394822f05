//! `lq mirror`: a SQLite database equal to the server's binding state.
//!
//! - Initial load: a Bulk query for all bindings (QUERY_BY_LINK_ADDRESS with `::`, D-3);
//!   its REPLY's LQ_BASE_TIME is saved with the last of the data. Then an Active query with
//!   LQ_START_TIME = that base time catches up on what changed meanwhile.
//! - Every update is one transaction; the base time (and the server's DUID) that may be
//!   saved is written in the same transaction as the binding that carried it,
//!   so a restarted `lq` resumes from a base time whose data is all in the database: no
//!   loss; and applying a binding twice changes nothing: no duplicates.
//! - A lease (address or prefix) is one row, keyed by the lease itself; a zero valid
//!   lifetime deletes it (D-4). A lease that moved to another client goes with the most
//!   recent last contact; a deletion only removes the lease from the client that
//!   held it, so catch-up's order (R-29: not change order) cannot delete a new owner's lease.
//! - DataMissing recovery runs while the stream goes on. The mirror asks for the whole
//!   current state ([`follow::Recovery::Full`]) rather than R-32's window: a server whose
//!   history horizon passed a deletion no longer reports it, so only a full answer shows
//!   it. A recovered binding is applied only to leases the stream has not touched since
//!   the DataMissing (each row carries the sequence number of its last update; stream
//!   deletions leave tombstones meanwhile); when the answer is complete, leases that
//!   neither the answer nor the stream confirmed are dropped.
//! - Server and local times are both stored: lifetimes as server absolute times and
//!   UTC text, the local time of each update, and the estimated skew.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::wire::client_data::LeaseKind;

use super::binding::{Binding, Lease};
use super::follow::{self, Checkpoint, Notice, Settings, Sink};
use super::output::{self, duid_type_name, Origin};
use super::spec::QuerySpec;
use super::time;
use super::{Clock, RequestorError};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server_id BLOB,
    base_time INTEGER,
    base_time_utc TEXT,
    saved_local_unix INTEGER,
    saved_local_utc TEXT,
    skew_s INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO state (id) VALUES (1);
CREATE TABLE IF NOT EXISTS clients (
    client_id BLOB PRIMARY KEY,
    client_id_hex TEXT NOT NULL,
    duid_type TEXT NOT NULL,
    last_contact_server INTEGER,
    last_contact_utc TEXT,
    relay_peer TEXT,
    relay_link TEXT,
    updated_local_unix INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    lease TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id BLOB NOT NULL,
    preferred INTEGER NOT NULL,
    valid INTEGER NOT NULL,
    base_time_server INTEGER,
    expires_server INTEGER,
    expires_utc TEXT,
    expires_local_unix INTEGER,
    last_contact_server INTEGER,
    updated_local_unix INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS leases_by_client ON leases (client_id);
";

/// SQLite integers are signed; Unix times fit until the year 292 billion.
fn unix_i64(unix: u64) -> i64 {
    i64::try_from(unix).unwrap_or(i64::MAX)
}

fn sql_error(e: rusqlite::Error) -> RequestorError {
    RequestorError::Sink(format!("SQLite: {e}"))
}

/// The saved resume point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedState {
    /// The server's DUID.
    pub server_id: Option<Vec<u8>>,
    /// The last saved base time.
    pub base_time: Option<u32>,
    /// The skew estimate, seconds.
    pub skew_s: i64,
}

/// A lease row as it stands.
struct Existing {
    client_id: Vec<u8>,
    last_contact: Option<u32>,
    seq: i64,
    deleted: bool,
}

/// The mirror database and the sink that keeps it.
#[derive(Debug)]
pub struct Mirror {
    db: Connection,
    /// Sequence number of the last update.
    seq: i64,
    /// While a DataMissing recovery runs: the sequence number when it started.
    recovery_from: Option<i64>,
    /// Local Unix time of the update being applied (for the `updated_local_unix` columns).
    local_unix: u64,
    /// Print notices as JSON lines on standard output.
    verbose: bool,
    /// Server minus local clock, seconds: local times of server times.
    skew: time::SkewEstimate,
}

impl Mirror {
    /// Open (or create) the database at `path`. Tombstones left by a recovery that did not
    /// finish are dropped: that recovery will run again.
    pub fn open(path: &Path, verbose: bool) -> Result<Self, RequestorError> {
        let db = Connection::open(path).map_err(sql_error)?;
        db.execute_batch(SCHEMA).map_err(sql_error)?;
        db.execute("DELETE FROM leases WHERE deleted = 1", [])
            .map_err(sql_error)?;
        let (seq, skew_s) = db
            .query_row("SELECT seq, skew_s FROM state WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql_error)?;
        Ok(Self {
            db,
            seq,
            recovery_from: None,
            local_unix: 0,
            verbose,
            skew: time::SkewEstimate::from_seconds(skew_s),
        })
    }

    /// The saved resume point.
    pub fn saved(&self) -> Result<SavedState, RequestorError> {
        self.db
            .query_row(
                "SELECT server_id, base_time, skew_s FROM state WHERE id = 1",
                [],
                |r| {
                    Ok(SavedState {
                        server_id: r.get(0)?,
                        base_time: r.get(1)?,
                        skew_s: r.get(2)?,
                    })
                },
            )
            .map_err(sql_error)
    }

    /// Forget everything: before an initial load.
    pub fn reset(&mut self) -> Result<(), RequestorError> {
        self.db
            .execute_batch(
                "BEGIN; DELETE FROM leases; DELETE FROM clients;
                 UPDATE state SET server_id = NULL, base_time = NULL, base_time_utc = NULL;
                 COMMIT;",
            )
            .map_err(sql_error)
    }

    /// The live leases: (client DUID, lease key), sorted.
    pub fn live_leases(&self) -> Result<Vec<(Vec<u8>, String)>, RequestorError> {
        let mut stmt = self
            .db
            .prepare(
                "SELECT client_id, lease FROM leases WHERE deleted = 0 AND valid > 0 \
                 ORDER BY client_id, lease",
            )
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)
    }

    fn existing(tx: &Transaction<'_>, key: &str) -> Result<Option<Existing>, RequestorError> {
        tx.query_row(
            "SELECT client_id, last_contact_server, seq, deleted FROM leases WHERE lease = ?1",
            [key],
            |r| {
                Ok(Existing {
                    client_id: r.get(0)?,
                    last_contact: r.get(1)?,
                    seq: r.get(2)?,
                    deleted: r.get::<_, i64>(3)? != 0,
                })
            },
        )
        .optional()
        .map_err(sql_error)
    }

    /// Apply one lease of `binding`; returns the previous owner when it was another client.
    fn apply_lease(
        &self,
        tx: &Transaction<'_>,
        binding: &Binding,
        lease: &Lease,
        origin: Origin,
    ) -> Result<Option<Vec<u8>>, RequestorError> {
        let key = lease.key();
        let existing = Self::existing(tx, &key)?;
        if let (Origin::Recovery, Some(from), Some(e)) = (origin, self.recovery_from, &existing) {
            if e.seq > from {
                // The stream updated this lease after the DataMissing: it is newer.
                return Ok(None);
            }
        }
        let last_contact = binding.last_contact();
        let other_owner = existing
            .as_ref()
            .filter(|e| !e.deleted && e.client_id != binding.client_id);
        if lease.ended() {
            // D-4: zero valid lifetime = delete, but only the lease of this client.
            let mine = existing
                .as_ref()
                .is_some_and(|e| !e.deleted && e.client_id == binding.client_id);
            let tombstone = self.recovery_from.is_some() && origin != Origin::Recovery;
            if tombstone && (mine || existing.is_none()) {
                self.write_lease(tx, binding, lease, &key, true)?;
            } else if mine {
                tx.execute("DELETE FROM leases WHERE lease = ?1", [&key])
                    .map_err(sql_error)?;
            }
            return Ok(None);
        }
        if let (Some(e), Origin::Live | Origin::CatchUp) = (other_owner, origin) {
            // conflicting owners: the most recent last contact wins. (A Bulk answer
            // is the current state: it wins anyway.)
            if let (Some(theirs), Some(ours)) = (e.last_contact, last_contact) {
                if !time::at_or_after(ours, theirs) {
                    return Ok(None);
                }
            }
        }
        self.write_lease(tx, binding, lease, &key, false)?;
        Ok(other_owner.map(|e| e.client_id.clone()))
    }

    fn write_lease(
        &self,
        tx: &Transaction<'_>,
        binding: &Binding,
        lease: &Lease,
        key: &str,
        deleted: bool,
    ) -> Result<(), RequestorError> {
        let kind = match lease.kind {
            LeaseKind::Address(_) => "address",
            LeaseKind::Prefix(..) => "prefix",
        };
        let expires = binding.base_time.and_then(|b| lease.expires(b));
        tx.execute(
            "INSERT INTO leases (lease, kind, client_id, preferred, valid, base_time_server, \
             expires_server, expires_utc, last_contact_server, updated_local_unix, seq, deleted, \
             expires_local_unix) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (lease) DO UPDATE SET kind = ?2, client_id = ?3, preferred = ?4, \
             valid = ?5, base_time_server = ?6, expires_server = ?7, expires_utc = ?8, \
             last_contact_server = ?9, updated_local_unix = ?10, seq = ?11, deleted = ?12, \
             expires_local_unix = ?13",
            params![
                key,
                kind,
                binding.client_id,
                lease.preferred,
                lease.valid,
                binding.base_time,
                expires,
                expires.map(time::server_to_utc),
                binding.last_contact(),
                unix_i64(self.local_unix),
                self.seq,
                i64::from(deleted),
                expires.map(|e| self.skew.to_local_unix(e)),
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    /// Keep the client row of `client_id` iff it holds a live lease.
    fn refresh_client(
        &self,
        tx: &Transaction<'_>,
        client_id: &[u8],
        binding: Option<&Binding>,
    ) -> Result<(), RequestorError> {
        let live: i64 = tx
            .query_row(
                "SELECT count(*) FROM leases WHERE client_id = ?1 AND deleted = 0",
                [client_id],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        if live == 0 {
            tx.execute("DELETE FROM clients WHERE client_id = ?1", [client_id])
                .map_err(sql_error)?;
            return Ok(());
        }
        let Some(b) = binding else { return Ok(()) };
        tx.execute(
            "INSERT INTO clients (client_id, client_id_hex, duid_type, last_contact_server, \
             last_contact_utc, relay_peer, relay_link, updated_local_unix) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (client_id) DO UPDATE SET last_contact_server = ?4, \
             last_contact_utc = ?5, relay_peer = coalesce(?6, relay_peer), \
             relay_link = coalesce(?7, relay_link), updated_local_unix = ?8",
            params![
                b.client_id,
                output::hex(&b.client_id),
                duid_type_name(&b.client_id),
                b.last_contact(),
                b.last_contact_utc(),
                b.relay.map(|r| r.peer_address.to_string()),
                b.relay.map(|r| r.link_address.to_string()),
                unix_i64(self.local_unix),
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    fn write_checkpoint(
        tx: &Transaction<'_>,
        cp: &Checkpoint<'_>,
        seq: i64,
    ) -> Result<(), RequestorError> {
        tx.execute(
            "UPDATE state SET server_id = ?1, base_time = ?2, base_time_utc = ?3, \
             saved_local_unix = ?4, saved_local_utc = ?5, skew_s = ?6, seq = ?7 WHERE id = 1",
            params![
                cp.server_id,
                cp.base_time,
                time::server_to_utc(cp.base_time),
                unix_i64(cp.local_unix),
                time::unix_to_utc(cp.local_unix),
                cp.skew_s,
                seq,
            ],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    /// Drop leases updated at or before sequence `from`, then tombstones; refresh clients.
    fn sweep(&mut self, from: i64) -> Result<(), RequestorError> {
        let tx = self.db.unchecked_transaction().map_err(sql_error)?;
        tx.execute("DELETE FROM leases WHERE seq <= ?1 OR deleted = 1", [from])
            .map_err(sql_error)?;
        tx.execute(
            "DELETE FROM clients WHERE client_id NOT IN (SELECT client_id FROM leases)",
            [],
        )
        .map_err(sql_error)?;
        tx.commit().map_err(sql_error)
    }

    fn print(&self, value: &serde_json::Value) {
        if self.verbose {
            println!("{value}");
        }
    }
}

/// An exclusive lock on `<db>.lock`, held while one `lq mirror` keeps the database: a second
/// one on the same file would interleave its base times with the first's. The kernel drops
/// the lock when the process ends, however it ends.
fn lock(path: &Path) -> Result<std::fs::File, RequestorError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| RequestorError::Sink(format!("{}: {e}", Path::new(&name).display())))?;
    file.try_lock().map_err(|_| {
        RequestorError::Sink(format!(
            "another lq mirror keeps {} (it holds {})",
            path.display(),
            Path::new(&name).display()
        ))
    })?;
    Ok(file)
}

impl Sink for Mirror {
    fn set_local_unix(&mut self, local_unix: u64) {
        self.local_unix = local_unix;
    }

    fn apply(
        &mut self,
        binding: Option<&Binding>,
        origin: Origin,
        checkpoint: Option<Checkpoint<'_>>,
    ) -> Result<(), RequestorError> {
        if let Some(cp) = &checkpoint {
            self.local_unix = cp.local_unix;
            self.skew = time::SkewEstimate::from_seconds(cp.skew_s);
        }
        self.seq += 1;
        let tx = self.db.unchecked_transaction().map_err(sql_error)?;
        if let Some(b) = binding {
            let mut owners = Vec::new();
            for lease in &b.leases {
                if let Some(previous) = self.apply_lease(&tx, b, lease, origin)? {
                    owners.push(previous);
                }
            }
            self.refresh_client(&tx, &b.client_id, Some(b))?;
            for owner in owners {
                self.refresh_client(&tx, &owner, None)?;
            }
        }
        if let Some(cp) = &checkpoint {
            Self::write_checkpoint(&tx, cp, self.seq)?;
        } else {
            tx.execute("UPDATE state SET seq = ?1 WHERE id = 1", [self.seq])
                .map_err(sql_error)?;
        }
        tx.commit().map_err(sql_error)?;
        if let (Some(b), true) = (binding, self.verbose) {
            println!("{}", output::binding_json(b, origin));
        }
        Ok(())
    }

    fn notice(&mut self, notice: &Notice<'_>) -> Result<(), RequestorError> {
        match notice {
            Notice::Started { server_id, .. } => {
                let saved = self.saved()?;
                if let Some(saved_id) = saved.server_id.filter(|s| s != server_id) {
                    return Err(RequestorError::Sink(format!(
                        "the server's DUID is {} but the database mirrors {}: its base time \
                         means nothing to this server; use another --db or --reset",
                        output::hex(server_id),
                        output::hex(&saved_id)
                    )));
                }
            }
            Notice::DataMissing {
                recovering: true, ..
            } => self.recovery_from = Some(self.seq),
            Notice::RecoveryDone { .. } => {
                // The recovery is a full Bulk (follow::Recovery::Full): what it did not
                // report and the stream did not touch since the DataMissing is gone from
                // the server. Then the stream's tombstones have done their job.
                if let Some(from) = self.recovery_from.take() {
                    self.sweep(from)?;
                }
            }
            _ => {}
        }
        if let Some(v) = notice_json(notice) {
            self.print(&v);
        }
        if let (
            false,
            Notice::Disconnected {
                error, retry_in, ..
            },
        ) = (self.verbose, notice)
        {
            // Without -v the operator still learns why the mirror is not current.
            eprintln!("lq: {error}; reconnecting in {} s", retry_in.as_secs());
        }
        Ok(())
    }
}

/// A notice as a JSON line (`None` for keepalives, which are not worth a line).
pub fn notice_json(notice: &Notice<'_>) -> Option<serde_json::Value> {
    use serde_json::json;
    let opt_time = |t: Option<u32>| t.map_or(serde_json::Value::Null, output::time_json);
    Some(match notice {
        Notice::Started {
            server_id,
            start_time,
            base_time,
        } => json!({
            "type": "started",
            "server_id": output::duid_json(server_id),
            "start_time": opt_time(*start_time),
            "base_time": opt_time(*base_time),
        }),
        Notice::CatchUpComplete { base_time } => {
            json!({ "type": "catch-up-complete", "base_time": opt_time(*base_time) })
        }
        Notice::DataMissing {
            start_time,
            end_time,
            recovering,
        } => json!({
            "type": "data-missing",
            "start_time": output::time_json(*start_time),
            "end_time": output::time_json(*end_time),
            "recovery": recovering,
        }),
        Notice::RecoveryDone { bindings } => {
            json!({ "type": "recovery-done", "bindings": bindings })
        }
        Notice::Keepalive { .. } => return None,
        Notice::Discarded(why) => json!({ "type": "discarded", "reason": why }),
        Notice::Disconnected {
            error,
            retry_in,
            start_time,
        } => json!({
            "type": "disconnected",
            "error": error.to_string(),
            "retry_in_s": retry_in.as_secs_f64(),
            "next_start_time": opt_time(*start_time),
        }),
    })
}

/// Options of `lq mirror`.
#[derive(Clone, Debug)]
pub struct MirrorOptions {
    /// Seconds subtracted from the saved base time when resuming: changes the server had
    /// not yet sent when that base time was saved come again (harmless: applying twice
    /// changes nothing). Still server-derived.
    pub resume_margin_s: u32,
    /// Print bindings and notices as JSON lines.
    pub verbose: bool,
}

/// The initial load (D-3): all bindings by Bulk, then the REPLY's base time saved. Retried
/// with the backoff of `settings` on failures that retrying can fix.
fn initial_load(
    mirror: &mut Mirror,
    settings: &Settings,
    clock: &dyn Clock,
) -> Result<u32, RequestorError> {
    let mut failures = 0;
    loop {
        mirror.reset()?;
        mirror.set_local_unix(clock.unix_now());
        let mut on_binding = |b: Binding| {
            mirror.set_local_unix(clock.unix_now());
            mirror.apply(Some(&b), Origin::Bulk, None)
        };
        let xid = crate::wire::Xid::new(0x10_0000).unwrap_or_else(|| unreachable!("24-bit"));
        let result = follow::run_bulk(
            settings,
            xid,
            &QuerySpec::all_bindings(),
            (None, None),
            &mut on_binding,
            &mut |_| {},
        );
        let error = match result {
            Ok(summary) => {
                let Some(base_time) = summary.reply_base_time else {
                    return Err(RequestorError::Protocol(
                        "the server sent no LQ_BASE_TIME though lq asked (R-9); without it \
                         lq cannot resume"
                            .into(),
                    ));
                };
                let local_unix = clock.unix_now();
                let mut skew = time::SkewEstimate::default();
                skew.sample(base_time, local_unix);
                let cp = Checkpoint {
                    base_time,
                    server_id: &summary.server_id,
                    local_unix,
                    skew_s: skew.seconds(),
                };
                mirror.apply(None, Origin::Bulk, Some(cp))?;
                mirror.print(&serde_json::json!({
                    "type": "initial-load-done",
                    "bindings": summary.bindings,
                    "base_time": output::time_json(base_time),
                }));
                return Ok(base_time);
            }
            Err(e) if e.is_retryable() => e,
            Err(e) => return Err(e),
        };
        failures += 1;
        if settings.retries_max.is_some_and(|max| failures > max) {
            return Err(error);
        }
        let retry_in = settings.backoff(failures);
        mirror.notice(&Notice::Disconnected {
            error: &error,
            retry_in,
            start_time: None,
        })?;
        std::thread::sleep(retry_in);
    }
}

/// Run `lq mirror` on the database at `path` until a failure retrying cannot fix.
pub fn run(
    path: &Path,
    settings: &Settings,
    options: &MirrorOptions,
    clock: &dyn Clock,
) -> Result<(), RequestorError> {
    let _lock = lock(path)?;
    let mut mirror = Mirror::open(path, options.verbose)?;
    let base_time = match mirror.saved()?.base_time {
        Some(base_time) => base_time,
        None => initial_load(&mut mirror, settings, clock)?,
    };
    let start_time = base_time.wrapping_sub(options.resume_margin_s);
    let mut settings = settings.clone();
    settings.resume_margin_s = options.resume_margin_s;
    follow::follow(
        &settings,
        None,
        Some(start_time),
        follow::Recovery::Full,
        &mut mirror,
        clock,
    )
}
