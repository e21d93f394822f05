//! `lq`, the leasequery requestor CLI.
//!
//! This build has one command, `lq decode`, which validates framed leasequery messages given
//! as hex (arguments or standard input) and prints each as an option tree; it is how an
//! operator reads a captured frame. `lq bulk`, `lq follow` and `lq mirror` come with the
//! requestor library.

use std::io::Read;
use std::process::ExitCode;

use lqd::wire::{FrameDecoder, Message, MESSAGE_SIZE_MAX};

const USAGE: &str = "\
lq: DHCPv6 leasequery requestor

usage: lq decode [HEX...]   decode TCP-framed messages (hex, whitespace ignored;
                            read from standard input when no argument is given)
       lq --version";

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let pair = std::str::from_utf8(pair).map_err(|_| format!("non-ASCII at octet {i}"))?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("bad hex {pair:?} at octet {i}"))
        })
        .collect()
}

fn decode(text: &str) -> Result<(), String> {
    let bytes = parse_hex(text)?;
    let mut decoder = FrameDecoder::new(MESSAGE_SIZE_MAX);
    let mut offset = 0;
    let mut frames = 0usize;
    while offset < bytes.len() {
        offset += decoder.extend(&bytes[offset..]);
        while let Some(frame) = decoder.next_frame().map_err(|e| format!("framing: {e}"))? {
            frames += 1;
            let message = Message::parse(frame).map_err(|e| format!("frame {frames}: {e}"))?;
            print!("{message}");
        }
    }
    if decoder.buffered() > 0 {
        return Err(format!(
            "{} octets of an incomplete frame at the end",
            decoder.buffered()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("lq {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("decode") if args.len() > 1 => decode(&args[1..].join("")),
        Some("decode") => {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => decode(&text),
                Err(e) => Err(format!("reading standard input: {e}")),
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lq: {message}");
            ExitCode::FAILURE
        }
    }
}
