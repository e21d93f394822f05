//! lqd: a DHCPv6 Active Leasequery (RFC 7653) and Bulk Leasequery (RFC 5460) server that
//! learns bindings from ISC Kea's lease6 journal and streams them to requestors over TCP.
//!
//! The design is in `architecture.md`; the wire rules (S-n, R-n, D-n) in `protocol.md`.
//! `unsafe` is denied crate-wide; only the io_uring reactor (`net`) and the memory-mapped
//! change log (`store`) may allow it, each block with a `SAFETY:` comment (style.md S6).

pub mod config;
pub mod ingest;
pub mod metrics;
pub mod net;
pub mod requestor;
pub mod server;
pub mod store;
pub mod wire;
