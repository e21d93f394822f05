//! `GET /metrics` of the real lqd (architecture.md, "Observability"; issue 7): the
//! exposition passes `promtool check metrics`, and the counters, gauges and the merged
//! latency histogram move with what requestors and the Kea journal do.

#[path = "common/scrape.rs"]
mod scrape;
mod server_common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lqd::wire::build::QueryOut;
use lqd::wire::{MessageType, OptionCode};
use scrape::{http, scrape, sum};
use server_common::{active, bulk, duid, free_port, Lqd, Row};

fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wait up to 10 s for `check` to hold on a fresh scrape; returns that scrape.
fn scrape_until(port: u16, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(port);
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed it:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Bulk query by client-id, an Active stream that gets two new rows, and a broken frame;
/// returns the Active stream.
fn traffic(lqd: &Lqd) -> server_common::Client {
    let mut client = lqd.connect();
    let id = duid(1);
    client.send(&bulk(7, QueryOut::ClientId(&id), "::", &[], &[]));
    assert_eq!(
        client.bulk_answer().last().map(|m| m.kind()),
        Some(MessageType::LeasequeryDone)
    );
    let mut stream = lqd.connect();
    stream.send(&active(9, &[OptionCode::LqBaseTime], None));
    assert_eq!(
        stream.msg(Duration::from_secs(5)).kind(),
        MessageType::LeasequeryReply
    );
    lqd.append(&[
        Row::na(4, "2001:db8:1::4", 1),
        Row::na(5, "2001:db8:1::5", 1),
    ]);
    for _ in 0..2 {
        assert_eq!(
            stream.msg(Duration::from_secs(5)).kind(),
            MessageType::LeasequeryData
        );
    }
    // A frame that is not DHCPv6: closed and counted by reason (S-25).
    let mut broken = lqd.connect();
    broken.send(&[0, 2, 0xff, 0xff]);
    broken.expect_closed(Duration::from_secs(5));

    stream
}

/// What [`traffic`] must have moved.
fn check_counters(text: &str) {
    let accepted = [("outcome", "accepted")];
    let by_client = [("kind", "bulk"), ("type", "client_id"), accepted[0]];
    assert_eq!(sum(text, "lqd_queries_total", &by_client), 1.0);
    let all = [("kind", "active"), ("type", "all"), accepted[0]];
    assert_eq!(sum(text, "lqd_queries_total", &all), 1.0);
    let indexed = [("source", "index")];
    assert_eq!(
        sum(text, "lqd_bulk_answers_total", &indexed),
        1.0,
        "by client-id"
    );
    assert!(sum(text, "lqd_connections_accepted_total", &[]) >= 3.0);
    assert_eq!(
        sum(text, "lqd_connections_open", &[]),
        1.0,
        "the Active stream (the Bulk requestor has gone)"
    );
    assert_eq!(
        sum(
            text,
            "lqd_connections_closed_total",
            &[("reason", "protocol")]
        ),
        1.0
    );
    assert_eq!(sum(text, "lqd_connections_protocol_errors_total", &[]), 1.0);
    // REPLY (with the binding, S-40) + DONE for the Bulk query, REPLY + 2 DATA on the
    // stream.
    assert_eq!(sum(text, "lqd_frames_sent_total", &[]), 5.0);
    assert!(sum(text, "lqd_sent_bytes_total", &[]) > 100.0);
    assert!(sum(text, "lqd_io_uring_enter_total", &[]) > 0.0);
    assert!(sum(text, "lqd_shared_bodies_total", &[("outcome", "built")]) >= 2.0);
    assert!(sum(text, "lqd_changes_applied_total", &[]) >= 5.0);
    assert_eq!(sum(text, "lqd_ingest_lag_bytes", &[]), 0.0);
    assert!(sum(text, "lqd_log_bytes", &[]) > 0.0);
    let count = sum(text, "lqd_delivery_latency_seconds_count", &[]);
    let inf = sum(
        text,
        "lqd_delivery_latency_seconds_bucket",
        &[("le", "+Inf")],
    );
    let ten_s = sum(text, "lqd_delivery_latency_seconds_bucket", &[("le", "10")]);
    assert_eq!(count, inf);
    assert_eq!(ten_s, count, "loopback delivery well under 10 s");
}

#[test]
fn metrics_pass_promtool_and_move_with_traffic() {
    let port = free_port();
    let listen = format!("\"127.0.0.1:{port}\"");
    let rows: Vec<Row> = (1..=3)
        .map(|n| Row::na(n, &format!("2001:db8:1::{n}"), 1))
        .collect();
    let lqd = Lqd::start(&rows, &[("metrics_listen", &listen)]);

    let first = scrape(port);
    promtool(&first);

    let mut stream = traffic(&lqd);
    // Workers and the ingest thread publish once a second.
    let text = scrape_until(port, |t| {
        sum(t, "lqd_delivery_latency_seconds_count", &[]) >= 2.0
            && sum(t, "lqd_ingest_rows_total", &[]) >= 5.0
    });
    promtool(&text);
    check_counters(&text);

    // Counters only grow.
    lqd.append(&[Row::na(6, "2001:db8:1::6", 1)]);
    assert_eq!(
        stream.msg(Duration::from_secs(5)).kind(),
        MessageType::LeasequeryData
    );
    let later = scrape_until(port, |t| sum(t, "lqd_ingest_rows_total", &[]) >= 6.0);
    assert!(sum(&later, "lqd_frames_sent_total", &[]) > sum(&text, "lqd_frames_sent_total", &[]));
}

#[test]
fn only_get_metrics_is_served() {
    let port = free_port();
    let listen = format!("\"127.0.0.1:{port}\"");
    let _lqd = Lqd::start(&[], &[("metrics_listen", &listen)]);
    let (status, _) = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, body) = http(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("# TYPE lqd_delivery_latency_seconds histogram"));
}
