//! The DHCPv6 leasequery codec: sans-IO, no allocation, no `unsafe` (architecture.md).
//!
//! - [`codes`]: message types, option codes, query types, status codes (protocol.md §1).
//! - [`Reader`] / [`Writer`]: bounded reads, single-pass writes with length back-patching.
//! - [`Message`], [`OptionList`], [`Opt`]: validated borrowed views of messages and options;
//!   a parsed message re-encodes byte for byte.
//! - [`parse_query`]: LEASEQUERY / ACTIVELEASEQUERY into a validated [`Query`], applying
//!   S-23, S-26, S-29, D-1 and D-2; errors map to the server's answer through
//!   [`Error::disposition`].
//! - [`build`]: REPLY, DATA, DONE, STARTTLS REPLY and query builders.
//! - [`client_data`]: OPTION_CLIENT_DATA from a binding, re-based by patching offsets.
//! - [`FrameDecoder`]: TCP framing (RFC 5460 §5.1).

pub mod build;
pub mod client_data;
pub mod codes;
mod dump;
mod error;
mod frame;
mod message;
mod options;
mod query;
mod reader;
mod writer;

pub use codes::{MessageType, OptionCode, QueryType, StatusCode};
pub use dump::message_name;
pub use error::{Disposition, EncodeError, Error, Field};
pub use frame::{FrameDecoder, PREFIX_LEN};
pub use message::{parse_header, write_header, Message, Xid, HEADER_LEN};
pub use options::{
    Duid, IaAddr, IaPrefix, LqQuery, Opt, OptionIter, OptionList, Oro, RelayData, RelayMessage,
    RelayMsgBody, RemoteId, Status, DUID_LEN_MAX, DUID_LEN_MIN, NESTING_MAX,
};
pub use query::{parse_query, Filter, Query, QueryKey, QueryKind};
pub use reader::Reader;
pub use writer::{Mark, Writer};

/// Largest DHCPv6 message TCP framing can carry (a 16-bit message-size).
pub const MESSAGE_SIZE_MAX: u16 = u16::MAX;

/// Seconds from the Unix epoch to the DHCPv6 absolute-time epoch, 2000-01-01T00:00:00Z
/// (RFC 7653 §2, RFC 8415 §11.2).
pub const EPOCH_2000_UNIX: u64 = 946_684_800;
