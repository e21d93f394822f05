//! Interop (issue 5, item 10): dhcpkit 1.0.7's requestor `ipv6-dhcp-test-leasequery`
//! (kea.md §14.6, protocol.md §6.3), an independent RFC 5007/5460 implementation, queries
//! lqd over TCP and decodes the bindings lqd holds.
//!
//! 1. lqd runs on `[::1]:547` (the CLI's port is fixed; only this test uses 547) over a Kea
//!    journal with four clients: A direct on link 1 (DUID-LLT, one address), B relayed on
//!    link 2 (DUID-LL, an address and a /56 prefix), C relayed by the same relay (DUID-LL),
//!    D relayed on link 2 by another relay (DUID-EN). The relays' options carry
//!    Interface-ID, Remote-ID and Relay-ID (kea.md §6).
//! 2. The CLI (`-t -s ::1`) queries by client-id with relay data (`-R`), by link-address,
//!    by relay-id, by remote-id, by client address, and by an unknown client-id.
//! 3. From its printed messages (dhcpkit's own `repr` of what it parsed) the test takes the
//!    message classes and, per OPTION_CLIENT_DATA, the client DUID (rebuilt from dhcpkit's
//!    DUID fields), the IAADDR addresses and the IAPREFIX prefixes, and asserts they are
//!    exactly the bindings of the query: REPLY carrying the first binding, one
//!    LEASEQUERY-DATA per further binding, then LEASEQUERY-DONE (S-40, S-41, S-43); for no
//!    match a lone REPLY without CLIENT_DATA or status (5460 §5.2). lqd's SERVERID and the
//!    echo of the CLI's DUID-EN 40208 `LeaseQueryTester` are checked in every REPLY, and
//!    the relay data of B (peer address, RELAY-FORW link-address, Interface-ID,
//!    Remote-ID, Relay-ID) as dhcpkit parsed it.
//!
//! 4. dhcpkit's codec itself (tests/dhcpkit/validate_bulk.py): a Bulk query for all bindings
//!    with relay data; every REPLY, DATA and DONE must parse using all its octets, pass
//!    `validate()` (with the registration fixes of kea.md §14.3) and re-encode byte for byte.
//!
//! dhcpkit comes from a Python venv (`LQD_DHCPKIT_VENV`, default `/opt/lqd-dhcpkit-venv`)
//! that `.ci/run` creates with the patches of kea.md §14.4 (`tests/dhcpkit/`). Without the
//! venv the test is skipped with a message, except under CI (`CI` set), where it fails.

mod server_peer;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use server_peer::{relay_context, Journal, Lqd, Row, Setup};

/// The CLI always connects to port 547 (kea.md §14.6).
const LISTEN: &str = "[::1]:547";
const DEFAULT_VENV: &str = "/opt/lqd-dhcpkit-venv";
const CLI: &str = "ipv6-dhcp-test-leasequery";

/// Relay 1: Interface-ID "ge-0/0/1", Remote-ID 4491 "cm-0001", Relay-ID DUID-LL
/// 0a:0b:0c:0d:0e:01 (the sample of kea.md §6).
const RELAY_1_OPTIONS: &str =
    "0012000867652D302F302F310025000B0000118B636D2D303030310035000A000300010A0B0C0D0E01";
/// Relay 2: Interface-ID "ge-0/0/2", Remote-ID 4491 "cm-0002", Relay-ID DUID-LL
/// 0a:0b:0c:0d:0e:02.
const RELAY_2_OPTIONS: &str =
    "0012000867652D302F302F320025000B0000118B636D2D303030320035000A000300010A0B0C0D0E02";
const RELAY_1_PEER: &str = "fe80::200:ff:fe00:1001";
const RELAY_2_PEER: &str = "fe80::200:ff:fe00:1002";
const LINK_2: &str = "2001:db8:2::1";

/// A client as the journal holds it and as dhcpkit must show it.
struct Client {
    /// As Kea writes it.
    duid: &'static str,
    addresses: &'static [&'static str],
    /// "prefix/len".
    prefixes: &'static [&'static str],
}

const A: Client = Client {
    duid: "00:01:00:01:32:9d:f0:19:00:0c:01:02:03:05",
    addresses: &["2001:db8:1::100"],
    prefixes: &[],
};
const B: Client = Client {
    duid: "00:03:00:01:02:00:00:00:10:01",
    addresses: &["2001:db8:2::1015"],
    prefixes: &["2001:db8:9::/56"],
};
const C: Client = Client {
    duid: "00:03:00:01:02:00:00:00:10:02",
    addresses: &["2001:db8:2::1016"],
    prefixes: &[],
};
const D: Client = Client {
    duid: "00:02:00:00:9d:10:6c:61:62:2d:64",
    addresses: &["2001:db8:2::1017"],
    prefixes: &[],
};

fn rows() -> Vec<Row> {
    let relay_1 = relay_context(LINK_2, RELAY_1_PEER, RELAY_1_OPTIONS);
    let relay_2 = relay_context(LINK_2, RELAY_2_PEER, RELAY_2_OPTIONS);
    let relayed = |mut row: Row, context: &str| {
        row.user_context = context.to_owned();
        row
    };
    vec![
        Row::address(A.addresses[0], A.duid, 1),
        relayed(Row::address(B.addresses[0], B.duid, 2), &relay_1),
        relayed(Row::prefix("2001:db8:9::", 56, B.duid, 2), &relay_1),
        relayed(Row::address(C.addresses[0], C.duid, 2), &relay_1),
        relayed(Row::address(D.addresses[0], D.duid, 2), &relay_2),
    ]
}

/// The venv's bin directory, or `None` (after saying why) when the test is to be skipped.
fn dhcpkit_bin() -> Option<PathBuf> {
    let venv = std::env::var_os("LQD_DHCPKIT_VENV").map_or(DEFAULT_VENV.into(), PathBuf::from);
    let bin = venv.join("bin");
    if bin.join(CLI).is_file() {
        return Some(bin);
    }
    let why = format!(
        "dhcpkit's {CLI} is not in {} (create the venv as .ci/run does: python3 -m venv, \
         pip install dhcpkit==1.0.7, tests/dhcpkit/patch_dhcpkit.py --fix-bulk-queries; \
         or point LQD_DHCPKIT_VENV at one)",
        bin.display()
    );
    assert!(std::env::var_os("CI").is_none(), "CI is set: {why}");
    eprintln!("skipping the dhcpkit interop test: {why}");
    None
}

/// Run the CLI with `args` against lqd; its log output (dhcpkit logs to stderr).
fn query(bin: &std::path::Path, args: &[&str]) -> String {
    let mut child = Command::new(bin.join(CLI))
        .args(["-t", "-s", "::1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dhcpkit's requestor");
    // It stops by itself after DONE, a REPLY without data, or 3 s; but a connection closed
    // early makes its framing loop spin: bound it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "{CLI} {args:?} did not finish within 15 s:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && !text.contains("Error:") && !text.contains("Traceback"),
        "{CLI} {args:?} failed ({}):\n{text}",
        output.status
    );
    text
}

/// The octets of a Python bytes literal such as `b'\x02\x00ab'` at the start of `text`,
/// and the rest of `text`.
fn python_bytes(text: &str) -> (Vec<u8>, &str) {
    let body = text.strip_prefix('b').expect("a bytes literal");
    let quote = body.chars().next().expect("a quote");
    let mut out = Vec::new();
    let mut chars = body[1..].char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c == quote => return (out, &body[1 + at + 1..]),
            '\\' => {
                let (_, e) = chars.next().expect("an escape");
                match e {
                    'x' => {
                        let hex: String = (0..2).map(|_| chars.next().expect("hex").1).collect();
                        out.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
                    }
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    other => out.push(u8::try_from(other).expect("an ASCII escape")),
                }
            }
            c => out.push(u8::try_from(c).expect("ASCII in a bytes literal")),
        }
    }
    panic!("unterminated bytes literal in {text:?}");
}

/// The integer after `key=` in `text`.
fn field_number(text: &str, key: &str) -> u64 {
    let start = text.find(key).expect("the key") + key.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

/// The DUID octets of dhcpkit's repr of a DUID, `text` starting at its class name.
fn duid_from_repr(text: &str) -> Vec<u8> {
    let bytes_after =
        |key: &str| python_bytes(&text[text.find(key).expect("field") + key.len()..]).0;
    let be16 = |v: u64| u16::try_from(v).expect("16 bits").to_be_bytes();
    let mut duid = Vec::new();
    if text.starts_with("LinkLayerDUID(") {
        duid.extend([0, 3]);
        duid.extend(be16(field_number(text, "hardware_type=")));
        duid.extend(bytes_after("link_layer_address="));
    } else if text.starts_with("LinkLayerTimeDUID(") {
        duid.extend([0, 1]);
        duid.extend(be16(field_number(text, "hardware_type=")));
        let time = u32::try_from(field_number(text, "time=")).expect("32 bits");
        duid.extend(time.to_be_bytes());
        duid.extend(bytes_after("link_layer_address="));
    } else if text.starts_with("EnterpriseDUID(") {
        duid.extend([0, 2]);
        let number = u32::try_from(field_number(text, "enterprise_number=")).expect("32 bits");
        duid.extend(number.to_be_bytes());
        duid.extend(bytes_after("identifier="));
    } else {
        panic!("a DUID type this test does not expect: {text}");
    }
    duid
}

/// The values of every `open` … `'` occurrence in `text` (e.g. `IPv6Address('`).
fn quoted_after<'t>(text: &'t str, open: &str) -> Vec<&'t str> {
    text.match_indices(open)
        .map(|(at, _)| {
            let rest = &text[at + open.len()..];
            &rest[..rest.find('\'').expect("closing quote")]
        })
        .collect()
}

/// One OPTION_CLIENT_DATA as dhcpkit printed it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Binding {
    duid: Vec<u8>,
    addresses: Vec<String>,
    prefixes: Vec<String>,
    /// The whole printed option, for relay-data checks.
    text: String,
}

fn binding(line: &str) -> Binding {
    let client = "ClientIdOption(duid=";
    let at = line.find(client).expect("CLIENT_DATA holds a CLIENTID") + client.len();
    // Relay data (LQRelayDataOption) follows the leases: read leases before it.
    let leases = &line[..line.find("LQRelayDataOption(").unwrap_or(line.len())];
    Binding {
        duid: duid_from_repr(&line[at..]),
        addresses: quoted_after(leases, "IAAddressOption(address=IPv6Address('")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        prefixes: quoted_after(leases, "IAPrefixOption(prefix=IPv6Network('")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        text: line.to_owned(),
    }
}

/// One message the CLI received: its dhcpkit class and its bindings.
#[derive(Debug)]
struct Received {
    class: String,
    block: String,
    bindings: Vec<Binding>,
}

/// The messages of the CLI's log, in order.
fn received(log: &str) -> Vec<Received> {
    let mut messages = Vec::new();
    for block in log.split("Received from ::1:\n").skip(1) {
        // The block ends where the next log line starts.
        let block = block.split(" MainProcess: ").next().expect("a block");
        let class = block
            .split('(')
            .next()
            .expect("a class name")
            .trim()
            .to_owned();
        let bindings = block
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("ClientDataOption(options=["))
            .map(binding)
            .collect();
        messages.push(Received {
            class,
            block: block.to_owned(),
            bindings,
        });
    }
    let count = messages.len();
    let summary = format!(
        "{count} {} received",
        if count == 1 { "response" } else { "responses" }
    );
    assert!(log.contains(&summary), "{summary:?} missing in:\n{log}");
    messages
}

fn duid_octets(kea: &str) -> Vec<u8> {
    kea.split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn expected(clients: &[&Client]) -> Vec<(Vec<u8>, Vec<String>, Vec<String>)> {
    let mut all: Vec<_> = clients
        .iter()
        .map(|c| {
            let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            (
                duid_octets(c.duid),
                strings(c.addresses),
                strings(c.prefixes),
            )
        })
        .collect();
    all.sort();
    all
}

/// Check a Bulk answer: REPLY with the first binding, DATA per further binding, DONE; or a
/// lone REPLY when nothing matches. Returns the bindings.
fn check_answer(what: &str, log: &str, clients: &[&Client]) -> Vec<Binding> {
    let messages = received(log);
    let classes: Vec<&str> = messages.iter().map(|m| m.class.as_str()).collect();
    let mut want = vec!["LeasequeryReplyMessage"];
    if !clients.is_empty() {
        want.extend(std::iter::repeat_n(
            "LeasequeryDataMessage",
            clients.len() - 1,
        ));
        want.push("LeasequeryDoneMessage");
    }
    assert_eq!(classes, want, "{what}: message sequence; log:\n{log}");
    let reply = &messages[0].block;
    // lqd's SERVERID (DUID-LL 00:11:22:33:44:55) and the echo of the CLI's CLIENTID.
    for part in [
        "link_layer_address=00:11:22:33:44:55",
        "enterprise_number=40208",
        "identifier=b'LeaseQueryTester'",
    ] {
        assert!(reply.contains(part), "{what}: REPLY lacks {part}:\n{reply}");
    }
    for m in &messages {
        // Success is the absence of a status (RFC 8415 §7.5); DONE of a Bulk query too.
        assert!(
            !m.block.contains("StatusCodeOption"),
            "{what}: status in {}",
            m.block
        );
        let data = usize::from(m.class != "LeasequeryDoneMessage" && !clients.is_empty());
        assert_eq!(m.bindings.len(), data, "{what}: CLIENT_DATA in {}", m.block);
    }
    let mut bindings: Vec<Binding> = messages.into_iter().flat_map(|m| m.bindings).collect();
    bindings.sort();
    let got: Vec<_> = bindings
        .iter()
        .map(|b| (b.duid.clone(), b.addresses.clone(), b.prefixes.clone()))
        .collect();
    assert_eq!(got, expected(clients), "{what}: bindings; log:\n{log}");
    bindings
}

/// B's relay data as dhcpkit parsed the RELAY-FORW in OPTION_LQ_RELAY_DATA.
fn check_relay_data(binding: &Binding) {
    for part in [
        "LQRelayDataOption(peer_address=IPv6Address('fe80::200:ff:fe00:1001')",
        "relay_message=RelayForwardMessage(hop_count=0, link_address=IPv6Address('2001:db8:2::1')",
        "peer_address=IPv6Address('fe80::200:ff:fe00:1001'), options=[",
        "InterfaceIdOption(interface_id=b'ge-0/0/1')",
        "RemoteIdOption(enterprise_number=4491, remote_id=b'cm-0001')",
        "RelayIdOption(duid=LinkLayerDUID(hardware_type=1, \
         link_layer_address=b'\\n\\x0b\\x0c\\r\\x0e\\x01'))",
    ] {
        assert!(
            binding.text.contains(part),
            "relay data lacks {part}:\n{}",
            binding.text
        );
    }
    // RFC 5007 §4.1.2.4: the client's own message (OPTION_RELAY_MSG) is not included.
    assert!(
        !binding.text.contains("RelayMessageOption"),
        "{}",
        binding.text
    );
}

/// dhcpkit's codec on a Bulk answer for all bindings: every message parses with all its
/// octets, validates and re-encodes byte for byte (tests/dhcpkit/validate_bulk.py).
fn validate_with_dhcpkit(bin: &std::path::Path, clients: usize) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/dhcpkit/validate_bulk.py"
    );
    let output = Command::new(bin.join("python"))
        .args([script, "::1", "547"])
        .stdin(Stdio::null())
        .output()
        .expect("run validate_bulk.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dhcpkit rejects lqd's answer ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut want = vec!["LeasequeryReplyMessage 1".to_owned()];
    want.extend((1..clients).map(|_| "LeasequeryDataMessage 1".to_owned()));
    want.push("LeasequeryDoneMessage 0".to_owned());
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);
}

#[test]
fn dhcpkit_requestor_decodes_lqd_bindings() {
    let Some(bin) = dhcpkit_bin() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Journal::create(dir.path(), &rows());
    let mut setup = Setup::new(LISTEN);
    setup.links.push((2, "2001:db8:2::/64".to_owned()));
    let mut lqd = Lqd::start(dir.path(), &journal, &setup);

    let b_relay = ["-R", "client-id", "linklayer:1:020000001001"];
    let bindings = check_answer("client-id B", &query(&bin, &b_relay), &[&B]);
    check_relay_data(&bindings[0]);
    let b_plain = query(&bin, &["client-id", "linklayer:1:020000001001"]);
    let bindings = check_answer("client-id B without -R", &b_plain, &[&B]);
    assert!(
        !bindings[0].text.contains("LQRelayDataOption"),
        "S-46: 47 not asked for"
    );
    let by_link = query(&bin, &["-L", LINK_2, "link-address"]);
    check_answer("link-address 2001:db8:2::1", &by_link, &[&B, &C, &D]);
    let by_relay = query(&bin, &["relay-id", "linklayer:1:0a0b0c0d0e01"]);
    check_answer("relay-id 0a0b0c0d0e01", &by_relay, &[&B, &C]);
    let by_remote = query(&bin, &["remote-id", "4491", "636d2d30303032"]);
    check_answer("remote-id 4491 cm-0002", &by_remote, &[&D]);
    let by_address = query(&bin, &["client-address", A.addresses[0]]);
    check_answer("client-address of A", &by_address, &[&A]);
    let all = query(&bin, &["link-address"]);
    check_answer("link-address :: (all, D-3)", &all, &[&A, &B, &C, &D]);
    let unknown = query(&bin, &["client-id", "linklayer:1:0200000099ff"]);
    check_answer("unknown client-id", &unknown, &[]);
    validate_with_dhcpkit(&bin, 4);

    let status = lqd.terminate(Duration::from_secs(10));
    assert!(status.success(), "lqd exited with {status}");
}
