//! Codec micro-benchmarks (README "Benchmarks").
//!
//! - `parse_activeleasequery`: frame-decode, validate and query-parse the ACTIVELEASEQUERY
//!   of protocol.md §2.8 (34 octets on the wire).
//! - `build_leasequery_data`: build a framed LEASEQUERY-DATA carrying LQ_BASE_TIME and one
//!   CLIENT_DATA with one IAADDR and one IAPREFIX, from the binding (full encode).
//! - `data_prefix_plus_rebase`: the fan-out path instead: re-base a pre-encoded CLIENT_DATA
//!   to a later second and write the per-connection prefix (architecture.md, "Fan-out").

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lqd::wire::build::{framed, write_data, write_data_prefix, DATA_PREFIX_MAX};
use lqd::wire::client_data::{
    rebase, write_client_data, ClientDataInput, LeaseEntry, LeaseKind, TimeFields,
};
use lqd::wire::{parse_query, FrameDecoder, Message, Writer, Xid};

const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];
const CLIENT_DUID: [u8; 14] = [0, 1, 0, 1, 0x32, 0x9d, 0x7e, 0xc0, 2, 0, 0, 0, 0, 1];
const ACTIVE_QUERY: [u8; 34] = [
    0x00, 0x20, 0x16, 0xab, 0xcd, 0xef, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x00, 0xaa,
    0xbb, 0xcc, 0xdd, 0xee, 0x00, 0x06, 0x00, 0x02, 0x00, 0x64, 0x00, 0x65, 0x00, 0x04, 0x32, 0x9d,
    0x77, 0xb8,
];
const XID: Xid = Xid::from_bytes([0xab, 0xcd, 0xef]);

fn leases() -> [LeaseEntry; 2] {
    [
        LeaseEntry {
            kind: LeaseKind::Address("2001:db8::1:100".parse().expect("address")),
            preferred: 3600,
            valid: 7200,
        },
        LeaseEntry {
            kind: LeaseKind::Prefix("2001:db8:1200::".parse().expect("prefix"), 56),
            preferred: 3600,
            valid: 7200,
        },
    ]
}

fn parse_activeleasequery(c: &mut Criterion) {
    let mut decoder = FrameDecoder::new(u16::MAX);
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_activeleasequery", |b| {
        b.iter(|| {
            decoder.extend(black_box(&ACTIVE_QUERY));
            let frame = decoder
                .next_frame()
                .expect("valid frame")
                .expect("whole frame");
            let message = Message::parse(frame).expect("valid message");
            let query = parse_query(&message, &SERVER_DUID).expect("valid query");
            black_box(query.start_time)
        });
    });
    group.finish();
}

fn build_leasequery_data(c: &mut Criterion) {
    let leases = leases();
    let input = ClientDataInput {
        client_id: &CLIENT_DUID,
        leases: &leases,
        clt_time: 60,
        relay_data: None,
    };
    let mut body = [0u8; 256];
    let mut frame = [0u8; 512];
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("build_leasequery_data", |b| {
        b.iter(|| {
            let mut w = Writer::new(&mut body);
            write_client_data(&mut w, black_box(&input)).expect("fits");
            let n = w.len();
            let len = framed(&mut frame, |w| {
                write_data(w, XID, None, Some(black_box(849_182_400)), Some(&body[..n]))
            })
            .expect("fits");
            black_box(&frame[..len]);
        });
    });
    group.finish();
}

fn data_prefix_plus_rebase(c: &mut Criterion) {
    let leases = leases();
    let input = ClientDataInput {
        client_id: &CLIENT_DUID,
        leases: &leases,
        clt_time: 60,
        relay_data: None,
    };
    let mut template = [0u8; 256];
    let mut w = Writer::new(&mut template);
    let fields: TimeFields = write_client_data(&mut w, &input).expect("fits");
    let len = w.len();
    let mut body = [0u8; 256];
    let mut prefix = [0u8; DATA_PREFIX_MAX];
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("data_prefix_plus_rebase", |b| {
        b.iter(|| {
            body[..len].copy_from_slice(&template[..len]);
            rebase(&mut body[..len], &fields, black_box(5));
            let n = write_data_prefix(&mut prefix, XID, Some(849_182_405), len).expect("fits");
            black_box((&prefix[..n], &body[..len]));
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    parse_activeleasequery,
    build_leasequery_data,
    data_prefix_plus_rebase
);
criterion_main!(benches);
