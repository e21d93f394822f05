//! The leasequery server's protocol core: sans-IO, no clock (time is passed in), no
//! allocation on the paths a worker runs per record (style.md S2, S11).
//!
//! - [`select`]: which bindings a query selects (S-31..S-36, D-3, D-4, D-11, D-13).
//! - [`body`]: a record's CLIENT_DATA re-based to the second it is sent, with or without
//!   relay data (the shared bodies of the fan-out).
//! - [`active`]: an Active Leasequery session: REPLY, catch-up, CatchUpComplete or
//!   DataMissing, live changes, keepalives, QueryTerminated (S-52..S-59).
//! - [`bulk`]: a Bulk Leasequery session: REPLY, DATA…, DONE from a snapshot scan of the
//!   shard logs (S-40, S-41, S-43).
//!
//! - [`connection`]: one TCP connection: framing, refusals, STARTTLS, access, query
//!   sequencing, timers.
//! - [`out`]: a connection's batch for one `sendmsg`: its own octets and the worker's
//!   shared bodies.
//!
//! The io_uring reactor that drives connections is [`crate::net`].

pub mod active;
pub mod body;
pub mod bulk;
pub mod connection;
pub mod lookup;
pub mod out;
pub mod select;
