//! The leasequery server's protocol core: sans-IO, no clock (time is passed in), no
//! allocation on the paths a worker runs per record (style.md S2, S11).
//!
//! - [`select`]: which bindings a query selects (S-31..S-36, D-3, D-4, D-11, D-13).
//! - [`body`]: a record's CLIENT_DATA re-based to the second it is sent, with or without
//!   relay data (the shared bodies of the fan-out).
//! - [`bulk`]: a Bulk Leasequery session: REPLY, DATA…, DONE from a snapshot scan of the
//!   shard logs (S-40, S-41, S-43).
//!
//! The sessions (Active and Bulk state machines), the worker loop and the io_uring reactor
//! that drive them are not built yet (issue 5).

pub mod body;
pub mod bulk;
pub mod select;
