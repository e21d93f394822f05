//! The one error type of the codec, and the one place that maps it to the server's answer
//! (style.md S12, S14).
//!
//! A `wire::Error` is always the peer's fault. [`Error::disposition`] says what the server does
//! about it: answer LEASEQUERY-REPLY with a status and close (S-26, S-29, S-39, D-2), discard
//! the message (S-23, S-24), or close the connection at once (S-25, malformed framing).

use core::fmt;

use super::codes::{MessageType, OptionCode, QueryType, StatusCode};

/// The part of a message a decoding error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The 2-octet message-size prefix of TCP framing (RFC 5460 §5.1).
    FrameSize,
    /// The 4-octet client/server message header: msg-type and transaction-id (RFC 8415 §8).
    MessageHeader,
    /// The 34-octet relay message header (RFC 8415 §9) inside OPTION_LQ_RELAY_DATA.
    RelayHeader,
    /// The 4-octet option-code and option-len of an option TLV (RFC 8415 §21.1).
    OptionHeader,
    /// The data of an option with this code.
    Option(OptionCode),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameSize => f.write_str("message-size"),
            Self::MessageHeader => f.write_str("message header"),
            Self::RelayHeader => f.write_str("relay message header"),
            Self::OptionHeader => f.write_str("option header"),
            Self::Option(code) => write!(f, "option {}", code.code()),
        }
    }
}

/// Why a frame, message or query was rejected. Every variant names the field at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer octets remain than the fixed layout of `field` needs.
    Truncated {
        /// The field being read.
        field: Field,
        /// Octets the field needs.
        needed: usize,
        /// Octets that remain.
        available: usize,
    },
    /// An option's option-len runs past the end of the message or of its parent option.
    OptionOverrun {
        /// The option-code of the overrunning option.
        code: u16,
        /// Its option-len.
        length: u16,
        /// Octets left in the enclosing message or option after the option header.
        available: usize,
    },
    /// Octets remain after the last field of a fixed-layout field or option.
    TrailingBytes {
        /// The field that should have ended.
        field: Field,
        /// How many octets were left over.
        count: usize,
    },
    /// The option-len is impossible for the option's type (e.g. STATUS_CODE shorter than 2,
    /// CLT_TIME not 4, a DUID longer than 130).
    BadLength {
        /// The option.
        option: OptionCode,
        /// Its option-len.
        length: usize,
    },
    /// A singleton option appears twice in one option list (RFC 8415 §21, Table 4).
    Duplicate {
        /// The repeated option.
        option: OptionCode,
    },
    /// A field inside an option holds a value its layout forbids.
    BadValue {
        /// The option.
        option: OptionCode,
    },
    /// Nested options (relay messages within relay messages) go deeper than
    /// [`super::NESTING_MAX`].
    NestingTooDeep,
    /// The relay message inside OPTION_LQ_RELAY_DATA is not RELAY-FORW or RELAY-REPL.
    NotARelayMessage {
        /// The msg-type found.
        msg_type: u8,
    },
    /// A message type that the receiver does not accept here (S-24, S-25).
    UnexpectedMessage {
        /// The msg-type found.
        msg_type: MessageType,
    },
    /// A message lacks an option it must carry.
    Missing {
        /// The missing option.
        option: OptionCode,
        /// The message that lacks it.
        message: MessageType,
    },
    /// OPTION_LQ_QUERY lacks the query-option its query type requires (S-26).
    MissingQueryOption {
        /// The query type.
        query_type: QueryType,
        /// The query-option it requires.
        option: OptionCode,
    },
    /// OPTION_LQ_QUERY carries a query type lqd does not know (S-26).
    UnknownQueryType {
        /// The query-type octet.
        query_type: u8,
    },
    /// A message carries an option that it must not (LQ_END_TIME in ACTIVELEASEQUERY, S-29).
    Forbidden {
        /// The option.
        option: OptionCode,
        /// The message that carries it.
        message: MessageType,
    },
    /// OPTION_SERVERID names another server (S-23).
    WrongServerId,
    /// A TCP message-size below 4, the size of the bare message header (RFC 5460 §5.1).
    FrameTooShort {
        /// The message-size read.
        size: u16,
    },
    /// A TCP message-size above the configured maximum; rejected before buffering the body.
    FrameTooLarge {
        /// The message-size read.
        size: u16,
        /// The configured maximum.
        max: u16,
    },
}

/// What a server does with a query that failed to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Answer LEASEQUERY-REPLY carrying this status and the query's xid, then close
    /// (S-26, S-29, S-39, D-2).
    Refuse(StatusCode),
    /// Drop the message and keep the connection (S-23, S-24).
    Discard,
    /// Close the connection without an answer: the byte stream cannot be trusted, or the
    /// message type has no business on a leasequery connection (S-25).
    Close,
}

impl Error {
    /// The server's answer to this error: the single mapping from error to status code
    /// (style.md S12). Requestor code does not use it; it reports the error itself.
    pub const fn disposition(self) -> Disposition {
        match self {
            Self::FrameTooShort { .. } | Self::FrameTooLarge { .. } => Disposition::Close,
            // Without a complete header there is no xid to answer with.
            Self::Truncated {
                field: Field::MessageHeader,
                ..
            } => Disposition::Close,
            Self::UnexpectedMessage { msg_type } => {
                if msg_type.allowed_on_tcp() {
                    // A REPLY/DATA/DONE sent to a server: discarded (S-24).
                    Disposition::Discard
                } else {
                    Disposition::Close
                }
            }
            // S-23: a LEASEQUERY without CLIENTID or LQ_QUERY, or for another server, is
            // discarded. D-2: an ACTIVELEASEQUERY without CLIENTID is refused instead.
            Self::Missing {
                message: MessageType::ActiveLeasequery,
                ..
            } => Disposition::Refuse(StatusCode::MalformedQuery),
            Self::Missing { .. } | Self::WrongServerId => Disposition::Discard,
            Self::UnknownQueryType { .. } => Disposition::Refuse(StatusCode::UnknownQueryType),
            Self::Truncated { .. }
            | Self::OptionOverrun { .. }
            | Self::TrailingBytes { .. }
            | Self::BadLength { .. }
            | Self::Duplicate { .. }
            | Self::BadValue { .. }
            | Self::NestingTooDeep
            | Self::NotARelayMessage { .. }
            | Self::MissingQueryOption { .. }
            | Self::Forbidden { .. } => Disposition::Refuse(StatusCode::MalformedQuery),
        }
    }

    /// A short stable name for metrics labels ("refused by reason").
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::OptionOverrun { .. } => "option_overrun",
            Self::TrailingBytes { .. } => "trailing_bytes",
            Self::BadLength { .. } => "bad_length",
            Self::Duplicate { .. } => "duplicate_option",
            Self::BadValue { .. } => "bad_value",
            Self::NestingTooDeep => "nesting_too_deep",
            Self::NotARelayMessage { .. } => "not_a_relay_message",
            Self::UnexpectedMessage { .. } => "unexpected_message",
            Self::Missing { .. } => "missing_option",
            Self::MissingQueryOption { .. } => "missing_query_option",
            Self::UnknownQueryType { .. } => "unknown_query_type",
            Self::Forbidden { .. } => "forbidden_option",
            Self::WrongServerId => "wrong_server_id",
            Self::FrameTooShort { .. } => "frame_too_short",
            Self::FrameTooLarge { .. } => "frame_too_large",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated {
                field,
                needed,
                available,
            } => {
                write!(
                    f,
                    "{field} truncated: needs {needed} octets, {available} left"
                )
            }
            Self::OptionOverrun {
                code,
                length,
                available,
            } => write!(
                f,
                "option {code} length {length} runs past its parent ({available} octets left)"
            ),
            Self::TrailingBytes { field, count } => {
                write!(f, "{count} trailing octets after {field}")
            }
            Self::BadLength { option, length } => {
                write!(f, "option {} has impossible length {length}", option.code())
            }
            Self::Duplicate { option } => {
                write!(f, "singleton option {} appears twice", option.code())
            }
            Self::BadValue { option } => write!(f, "option {} holds a bad value", option.code()),
            Self::NestingTooDeep => f.write_str("relay messages nested too deep"),
            Self::NotARelayMessage { msg_type } => {
                write!(
                    f,
                    "relay data holds message type {msg_type}, not a relay message"
                )
            }
            Self::UnexpectedMessage { msg_type } => {
                write!(f, "message type {} not accepted here", msg_type.code())
            }
            Self::Missing { option, message } => write!(
                f,
                "message type {} lacks option {}",
                message.code(),
                option.code()
            ),
            Self::MissingQueryOption { query_type, option } => write!(
                f,
                "query type {} lacks query-option {}",
                query_type.code(),
                option.code()
            ),
            Self::UnknownQueryType { query_type } => write!(f, "unknown query type {query_type}"),
            Self::Forbidden { option, message } => write!(
                f,
                "option {} is not allowed in message type {}",
                option.code(),
                message.code()
            ),
            Self::WrongServerId => f.write_str("SERVERID names another server"),
            Self::FrameTooShort { size } => write!(f, "message-size {size} is below 4"),
            Self::FrameTooLarge { size, max } => {
                write!(f, "message-size {size} exceeds the maximum {max}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Why an encoder could not write a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The caller's buffer is too small for the message; nothing useful was written.
    BufferTooSmall,
    /// An option's data, or a framed message, would exceed 65535 octets.
    TooLong,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall => f.write_str("buffer too small"),
            Self::TooLong => f.write_str("option or message longer than 65535 octets"),
        }
    }
}

impl std::error::Error for EncodeError {}
