//! `lq bulk` against the real lqd (issue 6, items 1, 4, 5): one Bulk query of each type
//! (RFC 5007 §4.1.2.1, RFC 5460 §5.3; D-3 for link-address `::`), the START/END window
//! (D-11), the table format, and a clear message for each failure: connection refused,
//! NotAllowed, MalformedQuery, receive timeout, framing error (RFC 5460 §5.1).

mod requestor_common;
mod server_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use lqd::wire::build::{framed, write_reply, Reply};
use lqd::wire::{StatusCode, Xid};
use requestor_common::{lq, reserve_port};
use server_common::{duid, server_now, Lqd, Row, RELAY_ID, RELAY_OPTIONS, REMOTE_ID};

const LIMIT: Duration = Duration::from_secs(20);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rows() -> Vec<Row> {
    vec![
        Row::na(1, "2001:db8:1::1", 1),
        Row::na(2, "2001:db8:2::2", 2).relayed("2001:db8:2::1", "fe80::1", RELAY_OPTIONS),
        Row::pd(2, "2001:db8:9::", 56, 2).relayed("2001:db8:2::1", "fe80::1", RELAY_OPTIONS),
        Row::na(3, "2001:db8:1::3", 1),
    ]
}

/// `lq bulk` with `args`; the bindings printed, as (client-id hex, sorted lease keys).
fn bulk(lqd: &Lqd, args: &[&str]) -> Vec<(String, Vec<String>)> {
    let server = format!("127.0.0.1:{}", lqd.port);
    let mut all = vec!["bulk", "--server", &server];
    all.extend_from_slice(args);
    let run = lq(&all, LIMIT);
    assert!(run.ok, "lq {all:?} failed: {}", run.stderr);
    let mut out: Vec<(String, Vec<String>)> = run
        .json()
        .iter()
        .map(|v| {
            assert_eq!(v["type"], "binding");
            assert_eq!(v["origin"], "bulk");
            let mut leases: Vec<String> = v["leases"]
                .as_array()
                .expect("leases")
                .iter()
                .map(|l| {
                    l["address"]
                        .as_str()
                        .or(l["prefix"].as_str())
                        .expect("address or prefix")
                        .to_owned()
                })
                .collect();
            leases.sort();
            (
                v["client_id"]["hex"].as_str().expect("hex").to_owned(),
                leases,
            )
        })
        .collect();
    out.sort();
    out
}

fn client(n: u16, leases: &[&str]) -> (String, Vec<String>) {
    let mut leases: Vec<String> = leases.iter().map(|s| (*s).to_owned()).collect();
    leases.sort();
    (hex(&duid(n)), leases)
}

#[test]
fn bulk_of_each_query_type() {
    let lqd = Lqd::start(&rows(), &[]);
    requestor_common::wait_clients(lqd.port, 3);
    let two = client(2, &["2001:db8:2::2", "2001:db8:9::/56"]);
    assert_eq!(
        bulk(&lqd, &["address", "2001:db8:1::3"]),
        [client(3, &["2001:db8:1::3"])]
    );
    assert_eq!(
        bulk(&lqd, &["client-id", &hex(&duid(2))]),
        std::slice::from_ref(&two)
    );
    assert_eq!(
        bulk(&lqd, &["relay-id", &hex(&RELAY_ID)]),
        std::slice::from_ref(&two)
    );
    let remote = format!("4491:{}", hex(&REMOTE_ID[4..]));
    assert_eq!(
        bulk(&lqd, &["remote-id", &remote]),
        std::slice::from_ref(&two)
    );
    assert_eq!(
        bulk(&lqd, &["link-address", "2001:db8:1::"]),
        [client(1, &["2001:db8:1::1"]), client(3, &["2001:db8:1::3"])]
    );
    // D-3: link-address :: is every binding.
    let all = bulk(&lqd, &["link-address"]);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(bulk(&lqd, &["client-id", &hex(&duid(9))]), []);
}

#[test]
fn bulk_output_shows_times_duid_types_and_relay_data() {
    let lqd = Lqd::start(&rows(), &[]);
    requestor_common::wait_clients(lqd.port, 3);
    let server = format!("127.0.0.1:{}", lqd.port);
    let run = lq(
        &[
            "bulk",
            "-s",
            &server,
            "--relay-data",
            "client-id",
            &hex(&duid(2)),
        ],
        LIMIT,
    );
    assert!(run.ok, "{}", run.stderr);
    let lines = run.json();
    assert_eq!(lines.len(), 1);
    let b = &lines[0];
    assert_eq!(b["client_id"]["type"], "DUID-LL");
    let base = b["base_time"]["server"].as_u64().expect("BASE_TIME (R-9)");
    assert!(base.abs_diff(u64::from(server_now())) <= 5);
    assert!(b["base_time"]["utc"].as_str().expect("utc").ends_with('Z'));
    let contact = b["last_contact"]["server"].as_u64().expect("last contact");
    assert_eq!(contact, base - b["clt_time"].as_u64().expect("clt"));
    let address = b["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .find(|l| l["address"] == "2001:db8:2::2")
        .expect("address lease");
    assert_eq!(
        address["expires"]["server"].as_u64(),
        Some(base + address["valid"].as_u64().expect("valid"))
    );
    assert_eq!(b["relay"]["peer_address"], "fe80::1");
    assert_eq!(b["relay"]["link_address"], "2001:db8:2::1");
    assert!(
        run.stderr
            .contains("1 binding(s) from server 00030001001122334455 (DUID-LL)"),
        "{}",
        run.stderr
    );

    let table = lq(
        &["bulk", "-s", &server, "--format", "table", "link-address"],
        LIMIT,
    );
    assert!(table.ok, "{}", table.stderr);
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert!(rows[0].starts_with("CLIENT-ID"), "{rows:?}");
    assert_eq!(rows.len(), 1 + 4, "one row per lease: {rows:?}");
    assert!(table.stdout.contains("2001:db8:9::/56"));
}

/// D-11 / 7653 §5: START/END select bindings by last change time.
#[test]
fn bulk_time_window() {
    let lqd = Lqd::start(&rows(), &[]);
    requestor_common::wait_clients(lqd.port, 3);
    let now = server_now();
    let (before, after) = ((now - 3600).to_string(), (now + 3600).to_string());
    assert_eq!(
        bulk(&lqd, &["--start", &before, "--end", &after, "link-address"]).len(),
        3
    );
    assert_eq!(bulk(&lqd, &["--start", &after, "link-address"]), []);
    let utc_before = "2001-01-01T00:00:00Z";
    assert_eq!(bulk(&lqd, &["--end", utc_before, "link-address"]), []);
}

fn assert_fails(args: &[&str], words: &[&str]) {
    let run = lq(args, LIMIT);
    assert!(!run.ok, "lq {args:?} should fail; stdout {}", run.stdout);
    for word in words {
        assert!(
            run.stderr.contains(word),
            "{word:?} not in {:?}",
            run.stderr
        );
    }
}

#[test]
fn failures_have_clear_messages() {
    // Connection refused: a reserved port with no listener.
    let (_held, port) = reserve_port();
    let server = format!("127.0.0.1:{port}");
    assert_fails(
        &[
            "bulk",
            "-s",
            &server,
            "--connect-timeout",
            "2",
            "link-address",
        ],
        &["connection refused"],
    );

    // NotAllowed (S-27): this requestor may only query by address.
    let lqd = Lqd::start(
        &rows(),
        &[(
            "requestors",
            "[{ prefix = \"127.0.0.0/8\", permitted = [\"address\"] }]",
        )],
    );
    let server = format!("127.0.0.1:{}", lqd.port);
    assert_fails(
        &["bulk", "-s", &server, "client-id", &hex(&duid(1))],
        &["NotAllowed (10)", "try another server"],
    );
    // Bad arguments never reach the wire.
    assert_fails(&["bulk", "-s", &server, "client-id", "00"], &["DUID"]);
}

/// A one-connection fake server: reads the query, writes `answer(query)`, then waits.
fn fake_server(answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).expect("query");
        let out = answer(&buf[..n]);
        s.write_all(&out).expect("answer");
        std::thread::sleep(Duration::from_secs(5));
    });
    addr.to_string()
}

#[test]
fn malformed_query_timeout_and_framing_errors() {
    // MalformedQuery: REPLY echoing our CLIENTID and xid with status 8.
    let me = [0u8, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    let server = fake_server(move |query| {
        let xid = Xid::from_bytes([query[3], query[4], query[5]]);
        let mut buf = [0u8; 256];
        let reply = Reply {
            xid,
            server_id: &[0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55],
            client_id: Some(&me),
            status: Some((StatusCode::MalformedQuery, "bad")),
            base_time: None,
            client_data: None,
        };
        let n = framed(&mut buf, |w| write_reply(w, &reply)).expect("fits");
        buf[..n].to_vec()
    });
    let me_hex = hex(&me);
    assert_fails(
        &["bulk", "-s", &server, "--duid", &me_hex, "link-address"],
        &["MalformedQuery (8)", "fix the query", "\"bad\""],
    );

    // Receive timeout: the server takes the query and says nothing.
    let server = fake_server(|_| Vec::new());
    assert_fails(
        &["bulk", "-s", &server, "--bulk-timeout", "1", "link-address"],
        &["receive timeout"],
    );

    // Framing error: a message-size below the 4-octet header.
    let server = fake_server(|_| vec![0, 2, 15, 0]);
    assert_fails(&["bulk", "-s", &server, "link-address"], &["framing error"]);
}
