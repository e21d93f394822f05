//! Reading lqd's `GET /metrics` in tests: one HTTP request, and sums over samples.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP request to 127.0.0.1:`port`; the status line and the body.
pub fn http(port: u16, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP head");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// `GET /metrics`, which must answer 200.
pub fn scrape(port: u16) -> String {
    let (status, body) = http(port, "GET /metrics HTTP/1.1\r\nHost: lqd\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// Sum of the samples of `name` whose labels include every `want` pair.
pub fn sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let (metric, labels) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            continue;
        }
        let labels: HashMap<&str, &str> = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if want.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            total += value.parse::<f64>().expect("a number");
        }
    }
    total
}
