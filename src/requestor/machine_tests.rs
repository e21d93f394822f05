//! The Bulk and Active state machines fed with messages built by the codec: no sockets.

use crate::wire::build::{framed, write_data, write_done, write_reply, Reply, StatusOut};
use crate::wire::client_data::{write_client_data, ClientDataInput, LeaseEntry, LeaseKind};
use crate::wire::{Message, MessageType, StatusCode, Writer, Xid};

use super::active::{Active, Event, Phase};
use super::bulk::Bulk;
use super::spec::QuerySpec;
use super::RequestorError;

const ME: [u8; 10] = [0, 3, 0, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
const SERVER: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];
const XID: u32 = 0xabcdef;

fn xid(n: u32) -> Xid {
    Xid::new(n).expect("valid in this test")
}

fn client_data(n: u8, valid: u32) -> Vec<u8> {
    let leases = [LeaseEntry {
        kind: LeaseKind::Address(
            format!("2001:db8::{n}")
                .parse()
                .expect("valid in this test"),
        ),
        preferred: valid / 2,
        valid,
    }];
    let mut buf = [0u8; 256];
    let mut w = Writer::new(&mut buf);
    let input = ClientDataInput {
        client_id: &[0, 3, 0, 1, 2, 0, 0, 0, 0, n],
        leases: &leases,
        clt_time: 10,
        relay_data: None,
    };
    write_client_data(&mut w, &input).expect("valid in this test");
    let n = w.len();
    buf[..n].to_vec()
}

/// An unframed message built by `f`.
fn msg(f: impl FnOnce(&mut Writer<'_>) -> Result<(), crate::wire::EncodeError>) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let n = framed(&mut buf, f).expect("valid in this test");
    buf[2..n].to_vec()
}

fn reply(
    x: u32,
    client_id: Option<&[u8]>,
    status: Option<StatusOut<'_>>,
    base: Option<u32>,
    cd: Option<&[u8]>,
) -> Vec<u8> {
    msg(|w| {
        write_reply(
            w,
            &Reply {
                xid: xid(x),
                server_id: &SERVER,
                client_id,
                status,
                base_time: base,
                client_data: cd,
            },
        )
    })
}

fn data(x: u32, status: Option<StatusOut<'_>>, base: Option<u32>, cd: Option<&[u8]>) -> Vec<u8> {
    msg(|w| write_data(w, xid(x), status, base, cd))
}

fn done(x: u32, status: Option<StatusOut<'_>>, base: Option<u32>) -> Vec<u8> {
    msg(|w| write_done(w, xid(x), status, base))
}

fn parse(bytes: &[u8]) -> Message<'_> {
    Message::parse(bytes).expect("valid in this test")
}

fn bulk() -> Bulk {
    Bulk::new(xid(XID), &ME, QuerySpec::all_bindings(), None, None)
}

#[test]
fn bulk_reply_data_done_r23() {
    let mut b = bulk();
    let mut frame = [0u8; 256];
    let n = b.encode(&mut frame).expect("valid in this test");
    assert_eq!(frame[2], MessageType::Leasequery.code());
    assert!(n > 20);
    let cd1 = client_data(1, 100);
    let step = b
        .on_message(&parse(&reply(XID, Some(&ME), None, Some(1000), Some(&cd1))))
        .expect("valid in this test");
    assert_eq!(
        step.binding.expect("valid in this test").last_contact(),
        Some(990)
    );
    assert!(!step.finished);
    let cd2 = client_data(2, 100);
    let step = b
        .on_message(&parse(&data(XID, None, Some(1001), Some(&cd2))))
        .expect("valid in this test");
    assert!(step.binding.is_some());
    // DATA without CLIENT_DATA is discarded in Bulk.
    let step = b
        .on_message(&parse(&data(XID, None, Some(1001), None)))
        .expect("valid in this test");
    assert!(step.discarded.is_some());
    let step = b
        .on_message(&parse(&done(XID, None, Some(1002))))
        .expect("valid in this test");
    assert!(step.finished);
    assert_eq!(b.bindings(), 2);
    assert_eq!(b.server_id(), Some(&SERVER[..]));
}

#[test]
fn bulk_reply_without_data_ends_the_query_r20() {
    let mut b = bulk();
    let step = b
        .on_message(&parse(&reply(XID, Some(&ME), None, None, None)))
        .expect("valid in this test");
    assert!(step.finished);
    assert!(b.on_closed().is_ok());
}

#[test]
fn bulk_reply_checks_r27() {
    let mut b = bulk();
    let other = [0, 3, 0, 1, 9, 9, 9, 9, 9, 9];
    for bad in [
        reply(XID, Some(&other), None, None, None),
        reply(XID, None, None, None, None),
        reply(XID + 1, Some(&ME), None, None, None),
    ] {
        let step = b.on_message(&parse(&bad)).expect("valid in this test");
        assert!(step.discarded.is_some() && !step.finished);
    }
    // DONE for another xid: close.
    let err = b
        .on_message(&parse(&done(XID + 1, None, None)))
        .expect_err("an error");
    assert!(err.to_string().contains("R-22"), "{err}");
}

#[test]
fn bulk_error_statuses_are_clear_r18() {
    for (code, word) in [
        (StatusCode::NotAllowed, "NotAllowed"),
        (StatusCode::MalformedQuery, "MalformedQuery"),
        (StatusCode::NotSupported, "NotSupported"),
    ] {
        let mut b = bulk();
        let err = b
            .on_message(&parse(&reply(
                XID,
                Some(&ME),
                Some((code, "no")),
                None,
                None,
            )))
            .expect_err("an error");
        assert!(matches!(err, RequestorError::Status { code: c, .. } if c == code));
        assert!(err.to_string().contains(word), "{err}");
        assert!(!err.is_retryable() || code == StatusCode::QueryTerminated);
    }
    // An error DONE after data: the answer is incomplete.
    let mut b = bulk();
    let cd = client_data(1, 5);
    b.on_message(&parse(&reply(XID, Some(&ME), None, None, Some(&cd))))
        .expect("valid in this test");
    assert!(b.on_closed().is_err(), "closed before DONE");
    let err = b
        .on_message(&parse(&done(
            XID,
            Some((StatusCode::QueryTerminated, "bye")),
            None,
        )))
        .expect_err("an error");
    assert!(err.to_string().contains("incomplete"), "{err}");
    assert!(err.is_retryable());
}

#[test]
fn active_base_time_is_not_saved_during_catch_up_r29_r31() {
    let mut a = Active::new(xid(XID), &ME, None, Some(500));
    let out = a
        .on_message(&parse(&reply(XID, Some(&ME), None, Some(1000), None)))
        .expect("valid in this test");
    assert!(matches!(
        out.event,
        Event::Started {
            catch_up: true,
            first: None,
            ..
        }
    ));
    assert_eq!(out.checkpoint, None);
    assert_eq!(a.phase(), Phase::CatchUp);
    let cd = client_data(1, 100);
    let out = a
        .on_message(&parse(&data(XID, None, Some(1001), Some(&cd))))
        .expect("valid in this test");
    assert!(matches!(out.event, Event::Binding { catch_up: true, .. }));
    assert_eq!(out.checkpoint, None, "R-29");
    let out = a
        .on_message(&parse(&data(
            XID,
            Some((StatusCode::CatchUpComplete, "")),
            Some(1002),
            None,
        )))
        .expect("valid in this test");
    assert_eq!(out.event, Event::CatchUpComplete);
    assert_eq!(out.checkpoint, Some(1002));
    let out = a
        .on_message(&parse(&data(XID, None, Some(1003), Some(&cd))))
        .expect("valid in this test");
    assert!(matches!(
        out.event,
        Event::Binding {
            catch_up: false,
            ..
        }
    ));
    assert_eq!(out.checkpoint, Some(1003));
    // A keepalive carries a base time too (D-5).
    let out = a
        .on_message(&parse(&data(XID, None, Some(1004), None)))
        .expect("valid in this test");
    assert_eq!((out.event, out.checkpoint), (Event::Keepalive, Some(1004)));
}

#[test]
fn active_data_missing_holds_checkpoints_until_recovery_r32() {
    let mut a = Active::new(xid(XID), &ME, None, Some(500));
    let out = a
        .on_message(&parse(&reply(
            XID,
            Some(&ME),
            Some((StatusCode::DataMissing, "")),
            Some(2000),
            None,
        )))
        .expect("valid in this test");
    assert_eq!(
        out.event,
        Event::DataMissing {
            start_time: 500,
            end_time: 2000
        }
    );
    assert_eq!(out.checkpoint, None);
    let out = a
        .on_message(&parse(&data(XID, None, Some(2005), None)))
        .expect("valid in this test");
    assert_eq!(out.checkpoint, None, "recovery pending");
    assert_eq!(a.recovery_done(), Some(2005));
    let out = a
        .on_message(&parse(&data(XID, None, Some(2006), None)))
        .expect("valid in this test");
    assert_eq!(out.checkpoint, Some(2006));
}

#[test]
fn active_without_start_time_saves_from_the_reply_r8() {
    let mut a = Active::new(xid(7), &ME, None, None);
    let mut frame = [0u8; 256];
    let n = a.encode(&mut frame).expect("valid in this test");
    // protocol.md §2.8 without START_TIME: CLIENTID + ORO [100], no LQ_QUERY, no END_TIME.
    assert_eq!(n, 2 + 4 + 14 + 6);
    let out = a
        .on_message(&parse(&reply(7, Some(&ME), None, Some(10), None)))
        .expect("valid in this test");
    assert_eq!(out.checkpoint, Some(10));
    let err = a
        .on_message(&parse(&done(
            7,
            Some((StatusCode::QueryTerminated, "bye")),
            Some(11),
        )))
        .expect_err("an error");
    assert!(err.is_retryable(), "{err}");
}

#[test]
fn active_rejects_not_supported_and_data_before_reply() {
    let mut a = Active::new(xid(7), &ME, None, None);
    let err = a
        .on_message(&parse(&data(7, None, None, None)))
        .expect_err("an error");
    assert!(matches!(err, RequestorError::Protocol(_)));
    let mut a = Active::new(xid(7), &ME, None, None);
    let err = a
        .on_message(&parse(&reply(
            7,
            Some(&ME),
            Some((StatusCode::NotSupported, "")),
            None,
            None,
        )))
        .expect_err("an error");
    assert!(err.to_string().contains("does not support Active"), "{err}");
    assert!(!err.is_retryable());
}

#[test]
fn worked_example_b_is_what_lq_sends() {
    // protocol.md §2.8, byte for byte.
    let a = Active::new(xid(XID), &ME, None, Some(849_180_600));
    let mut frame = [0u8; 64];
    let n = a.encode(&mut frame).expect("valid in this test");
    let expected = [
        0x00, 0x20, 0x16, 0xab, 0xcd, 0xef, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x00,
        0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x00, 0x06, 0x00, 0x02, 0x00, 0x64, 0x00, 0x65, 0x00, 0x04,
        0x32, 0x9d, 0x77, 0xb8,
    ];
    assert_eq!(&frame[..n], &expected);
}

#[test]
fn active_reply_may_carry_the_first_binding_s40() {
    let mut a = Active::new(xid(9), &ME, None, None);
    let cd = client_data(3, 50);
    let out = a
        .on_message(&parse(&reply(9, Some(&ME), None, Some(70), Some(&cd))))
        .expect("valid in this test");
    let Event::Started { first, .. } = out.event else {
        panic!("{out:?}")
    };
    assert_eq!(first.expect("binding").last_contact(), Some(60));
    assert_eq!(out.checkpoint, Some(70));
}
