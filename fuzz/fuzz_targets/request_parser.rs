//! Fuzz the request parser: message validation, query validation and the error mapping.
//!
//! Properties: no panic; a message that parses re-encodes to exactly its input; a query that
//! validates is a LEASEQUERY or ACTIVELEASEQUERY with a requestor DUID, never an Active query
//! with LQ_END_TIME (S-29); every error has a disposition and a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lqd::wire::{parse_query, Message, MessageType, QueryKind, Writer};

const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0, 0x11, 0x22, 0x33, 0x44, 0x55];

fuzz_target!(|data: &[u8]| {
    let message = match Message::parse(data) {
        Ok(message) => message,
        Err(error) => {
            let _ = (error.disposition(), error.reason(), error.to_string());
            return;
        }
    };
    let mut out = vec![0u8; data.len()];
    let mut w = Writer::new(&mut out);
    message.encode(&mut w).expect("a parsed message fits its own length");
    assert_eq!(w.written(), data, "re-encoding differs from the input");
    let _ = message.to_string();
    match parse_query(&message, &SERVER_DUID) {
        Ok(query) => {
            assert!(matches!(
                message.msg_type,
                MessageType::Leasequery | MessageType::ActiveLeasequery
            ));
            assert!(!(query.kind == QueryKind::Active && query.end_time.is_some()));
            assert!(query.kind == QueryKind::Active || query.filter.is_some());
            let _ = (query.wants_base_time(), query.requestor.duid_type());
        }
        Err(error) => {
            let _ = (error.disposition(), error.reason(), error.to_string());
        }
    }
});
