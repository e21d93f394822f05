//! `lq mirror` against the real lqd (issue 6, items 3 and 5): the SQLite mirror ends equal to
//! lqd's binding state — no missing lease, no stale lease, no duplicate client — while
//! Kea-format rows keep being appended and lqd is SIGKILLed and restarted on the same data
//! directory several times (catch-up from the saved base time, R-30, R-31), `lq` itself is
//! SIGKILLed and restarted (the base time is saved with the data, so it resumes), and after
//! lqd lost its history (the saved base time is before the new horizon: DataMissing, S-54),
//! when the Bulk recovery brings it back to equal (R-32, D-3, D-4).

mod requestor_common;
mod server_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use requestor_common::{db_path, lq, lqd_state, LqProc, State, Station};
use server_common::{duid, server_now, Row};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The mirror's live leases, and its client rows.
fn mirror_state(db: &Path) -> Option<(State, BTreeSet<String>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let mut stmt = conn
        .prepare("SELECT lease, client_id FROM leases WHERE deleted = 0 AND valid > 0")
        .ok()?;
    let leases = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, hex(&r.get::<_, Vec<u8>>(1)?)))
        })
        .ok()?
        .collect::<Result<State, _>>()
        .ok()?;
    let mut stmt = conn.prepare("SELECT client_id_hex FROM clients").ok()?;
    let clients = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let set: BTreeSet<String> = clients.iter().cloned().collect();
    assert_eq!(set.len(), clients.len(), "duplicate client rows");
    Some((leases, set))
}

/// Wait (≤ 40 s) until the mirror equals lqd, which must equal `model`; returns lqd's state.
fn wait_equal(station: &Station, db: &Path, model: &State, mirror: &LqProc) -> State {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let server = lqd_state(station.port);
        let local = mirror_state(db);
        if let (Some((leases, clients)), Some(server)) = (&local, &server) {
            let owners: BTreeSet<String> = leases.values().cloned().collect();
            if leases == server && *clients == owners && server == model {
                return server.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "mirror never equal to lqd:\nlqd   {server:?}\nmodel {model:?}\nmirror {local:?}\n\
             lq stderr {:?}",
            mirror.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The test's own account of what Kea's journal says.
struct Kea {
    model: State,
    next: u16,
}

impl Kea {
    fn new() -> Self {
        Self {
            model: State::new(),
            next: 1,
        }
    }

    /// A new client with an address (and every third one a /56 prefix).
    fn add(&mut self) -> Vec<Row> {
        let n = self.next;
        self.next += 1;
        let link = 1 + u32::from(n % 2);
        let address = format!("2001:db8:{link}::{n:x}");
        let mut rows = vec![Row::na(n, &address, link)];
        self.model.insert(address, hex(&duid(n)));
        if n.is_multiple_of(3) {
            let prefix = format!("2001:db8:{n:x}00::");
            rows.push(Row::pd(n, &prefix, 56, link));
            self.model.insert(format!("{prefix}/56"), hex(&duid(n)));
        }
        rows
    }

    /// Release the address of client `n` (a Kea deletion row: valid 0, kea.md §7.1).
    fn release(&mut self, n: u16) -> Vec<Row> {
        let link = 1 + u32::from(n % 2);
        let address = format!("2001:db8:{link}::{n:x}");
        if self.model.remove(&address).is_none() {
            return Vec::new();
        }
        let mut row = Row::na(n, &address, link);
        row.valid = 0;
        row.pref = 0;
        vec![row]
    }

    /// Renew client `n`'s address (a full row again).
    fn renew(&self, n: u16) -> Vec<Row> {
        let link = 1 + u32::from(n % 2);
        let address = format!("2001:db8:{link}::{n:x}");
        if self.model.contains_key(&address) {
            vec![Row::na(n, &address, link)]
        } else {
            Vec::new()
        }
    }

    /// A batch: three new clients, a release, a renewal.
    fn batch(&mut self, release: u16) -> Vec<Row> {
        let mut rows = Vec::new();
        for _ in 0..3 {
            rows.extend(self.add());
        }
        rows.extend(self.release(release));
        rows.extend(self.renew(release + 1));
        rows
    }
}

fn mirror_args<'a>(station: &'a str, db: &'a str) -> Vec<&'a str> {
    vec![
        "mirror",
        "--db",
        db,
        "-s",
        station,
        "--retry-min",
        "1",
        "--retry-max",
        "2",
        "--rcv-timeout",
        "5",
        "--verbose",
    ]
}

#[test]
fn mirror_survives_sigkill_of_lqd_and_of_lq() {
    let mut kea = Kea::new();
    let first: Vec<Row> = (0..8).flat_map(|_| kea.add()).collect();
    let mut station = Station::new(&first, "");
    let dir = tempfile::tempdir().expect("dir");
    let db = db_path(dir.path());
    let server = station.server();
    let mut mirror = LqProc::start(&mirror_args(&server, &db));
    wait_equal(&station, Path::new(&db), &kea.model, &mirror);
    // One mirror per database.
    let second = lq(&mirror_args(&server, &db), Duration::from_secs(10));
    assert!(!second.ok);
    assert!(
        second.stderr.contains("another lq mirror"),
        "{}",
        second.stderr
    );

    for round in 0..4u16 {
        // Live changes, then a SIGKILL of lqd, more changes while it is down, a restart:
        // lq reconnects with its saved base time and catches up.
        station.append(&kea.batch(1 + round * 2));
        std::thread::sleep(Duration::from_millis(300));
        station.kill();
        station.append(&kea.batch(2 + round * 2));
        if round == 1 {
            // lq itself is killed too and restarted on the same database.
            mirror.kill();
            station.append(&kea.batch(9));
            mirror = LqProc::start(&mirror_args(&server, &db));
        }
        station.start();
        station.append(&kea.batch(20 + round));
        wait_equal(&station, Path::new(&db), &kea.model, &mirror);
    }
    let state = wait_equal(&station, Path::new(&db), &kea.model, &mirror);
    assert!(state.len() > 30, "{state:?}");
    check_resume_notices(&mirror);
    check_state_row(Path::new(&db));
}

/// The last lq saw lqd go away and come back, resuming with a saved base time and
/// catching up (its --verbose lines).
fn check_resume_notices(mirror: &LqProc) {
    let mut lines = Vec::new();
    while let Some(v) = mirror.next(Duration::from_millis(200)) {
        lines.push(v);
    }
    let count = |kind: &str| lines.iter().filter(|v| v["type"] == kind).count();
    assert!(count("disconnected") >= 2, "{lines:#?}");
    // Each of its connections (its start, two lqd restarts) ended catch-up:
    // CatchUpComplete, or DataMissing when the resume margin reached before lqd's horizon
    // (a fresh lqd's history starts when it starts), then a recovery.
    assert!(
        count("catch-up-complete") + count("data-missing") >= 3,
        "{lines:#?}"
    );
    assert!(
        count("recovery-done") + 1 >= count("data-missing"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .filter(|v| v["type"] == "started")
            .all(|v| v["start_time"]["server"].is_u64()),
        "every connection resumes from the saved base time (R-30)"
    );
    assert!(lines.iter().any(|v| v["origin"] == "catch-up"));
}

/// The resume point: base time and server DUID, server and local times.
fn check_state_row(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("db");
    let (base, server_id, local, skew): (u32, Vec<u8>, i64, i64) = conn
        .query_row(
            "SELECT base_time, server_id, saved_local_unix, skew_s FROM state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("state row");
    assert_eq!(hex(&server_id), "00030001001122334455");
    assert!(base.abs_diff(server_now()) < 60, "{base}");
    assert!(local > 1_700_000_000);
    assert!(skew.abs() <= 2, "same machine: no skew ({skew})");
    // Each lease has its expiry in server time, UTC and local time, and the local time of
    // its last update.
    let (rows, complete): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(expires_server + expires_local_unix + updated_local_unix \
             + length(expires_utc)) FROM leases",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("leases");
    assert_eq!(rows, complete);
}

#[test]
fn mirror_recovers_after_data_missing() {
    let mut kea = Kea::new();
    let first: Vec<Row> = (0..6).flat_map(|_| kea.add()).collect();
    let mut station = Station::new(&first, "");
    let dir = tempfile::tempdir().expect("dir");
    let db = db_path(dir.path());
    let server = station.server();
    let mut mirror = LqProc::start(&mirror_args(&server, &db));
    wait_equal(&station, Path::new(&db), &kea.model, &mirror);

    // lq is away while bindings change, and lqd loses its history meanwhile: its new
    // horizon is after lq's saved base time.
    mirror.kill();
    station.append(&kea.batch(1));
    station.append(&kea.batch(2));
    std::thread::sleep(Duration::from_millis(300));
    station.kill();
    station.wipe_data();
    station.start();
    std::thread::sleep(Duration::from_millis(1100));

    let mirror = LqProc::start(&mirror_args(&server, &db));
    let mut seen = Vec::new();
    let missing = mirror.until(Duration::from_secs(20), &mut seen, |v| {
        v["type"] == "data-missing"
    });
    assert_eq!(missing["recovery"], true);
    // Changes keep coming while the recovery runs.
    station.append(&kea.batch(3));
    mirror.until(Duration::from_secs(20), &mut seen, |v| {
        v["type"] == "recovery-done"
    });
    station.append(&kea.batch(4));
    wait_equal(&station, Path::new(&db), &kea.model, &mirror);
}
