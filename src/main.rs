//! `lqd`, the leasequery daemon.
//!
//! This build carries the wire codec only; the store, Kea ingest and the io_uring server are
//! built in the issues that follow it. Until then the binary reports what it is and refuses
//! to pretend to serve.

use std::process::ExitCode;

const USAGE: &str = "\
lqd: DHCPv6 Active (RFC 7653) and Bulk (RFC 5460) Leasequery server

usage: lqd [--version | --help]

This build contains the leasequery codec (src/wire) only; it cannot serve yet.
See README.md for the project status.";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V") => {
            println!("lqd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
