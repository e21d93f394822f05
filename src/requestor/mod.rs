//! The leasequery requestor: Bulk (RFC 5460) and Active (RFC 7653) queries, resume and
//! recovery (protocol.md §3(b), rules R-1..R-36).
//!
//! Layers, bottom up:
//!
//! - [`binding`]: an owned view of one OPTION_CLIENT_DATA, with its times resolved
//!   against LQ_BASE_TIME (D-14).
//! - [`bulk`] and [`active`]: sans-IO state machines. Each takes decoded messages and
//!   returns what happened (a binding, the end of the answer, a notice, the base time that
//!   may be saved); they validate replies (R-18..R-23, R-27) and keep the base-time
//!   bookkeeping of R-29..R-31. No sockets, no clock: time comes in as an argument.
//! - [`conn`]: a thin blocking `std::net` TCP connection: framing, bounded reads with a
//!   receive timeout, send timeout.
//! - [`follow`]: the Active loop over [`conn`]: reconnects with the last saved base time as
//!   LQ_START_TIME and a retry backoff, and on DataMissing runs the Bulk
//!   recovery of R-32 on a second connection while the stream goes on.
//! - [`mirror`]: a SQLite copy of the server's bindings, kept by Bulk then Active (D-3, D-4),
//!   the base time stored in the same transaction as the data it covers.
//! - [`output`]: JSON lines and tables; times as server absolute time and UTC, DUIDs as hex
//!   with their type.
//!
//! The clock is injected ([`Clock`]); the `lq` binary supplies the system clock.

pub mod active;
pub mod binding;
pub mod bulk;
pub mod conn;
mod error;
pub mod follow;
pub mod mirror;
pub mod output;
pub mod spec;
pub mod time;

pub use error::RequestorError;

/// Where the requestor's time comes from: the `lq` binary reads the system clock, tests may
/// use their own. Keeping clock reads out of this module keeps it sans-IO (style.md S11).
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch, local clock.
    fn unix_now(&self) -> u64;
    /// A monotonic instant, for timeouts.
    fn monotonic(&self) -> std::time::Instant;
}

#[cfg(test)]
mod machine_tests;

#[cfg(test)]
mod mirror_tests;
