//! Fuzz the TCP frame decoder: any byte stream, any chunking, any configured maximum.
//!
//! The first two input octets pick the maximum message-size, the third the chunk size; the
//! rest is the stream. Properties: no panic; every frame returned is within the maximum and
//! at least a header long; after an error the decoder stays failed; the octets of returned
//! frames plus their prefixes plus what is left buffered account for the input consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lqd::wire::{FrameDecoder, Message};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = u16::from_be_bytes([data[0], data[1]]).max(4);
    let chunk = usize::from(data[2]).max(1);
    let stream = &data[3..];
    let mut decoder = FrameDecoder::new(max);
    let mut offset = 0;
    let mut framed = 0usize;
    'feed: while offset < stream.len() {
        let end = (offset + chunk).min(stream.len());
        offset += decoder.extend(&stream[offset..end]);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() >= 4 && frame.len() <= usize::from(max));
                    framed += 2 + frame.len();
                    // Whatever the frame holds, decoding it must not panic.
                    let _ = Message::parse(frame);
                }
                Ok(None) => break,
                Err(first) => {
                    assert_eq!(decoder.next_frame(), Err(first));
                    break 'feed;
                }
            }
        }
        if decoder.buffered() > 0 && offset < stream.len() {
            assert!(!decoder.spare().is_empty());
        }
        assert_eq!(framed + decoder.buffered(), offset);
    }
});
