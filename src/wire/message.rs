//! The DHCPv6 client/server message view (RFC 8415 §8, protocol.md §2.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    msg-type   |               transaction-id                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! .                            options                            .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! ([RFC 8415 §8](https://www.rfc-editor.org/rfc/rfc8415#section-8))

use core::fmt;

use super::codes::MessageType;
use super::error::{EncodeError, Error, Field};
use super::options::OptionList;
use super::reader::Reader;
use super::writer::Writer;

/// Size of the client/server message header: msg-type and 3-octet transaction-id.
pub const HEADER_LEN: usize = 4;

/// A 24-bit transaction-id; invariant: the value is below 2^24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xid(u32);

impl Xid {
    /// The largest transaction-id.
    pub const MAX: u32 = 0x00ff_ffff;

    /// A transaction-id, or `None` when `value` does not fit 24 bits.
    pub const fn new(value: u32) -> Option<Self> {
        if value <= Self::MAX {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The transaction-id from its three wire octets.
    pub const fn from_bytes(bytes: [u8; 3]) -> Self {
        Self(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]))
    }

    /// The three wire octets.
    pub const fn to_bytes(self) -> [u8; 3] {
        let b = self.0.to_be_bytes();
        [b[1], b[2], b[3]]
    }

    /// The value, below 2^24.
    pub const fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#08x}", self.0)
    }
}

/// A validated client/server message borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message type.
    pub msg_type: MessageType,
    /// The transaction-id.
    pub xid: Xid,
    /// The top-level options, validated deeply.
    pub options: OptionList<'a>,
}

/// Read only the header of a message: enough to answer it (the xid) even when its options
/// are malformed.
pub fn parse_header(bytes: &[u8]) -> Result<(MessageType, Xid), Error> {
    let mut r = Reader::new(bytes);
    let msg_type = MessageType::from_code(r.u8(Field::MessageHeader)?);
    let xid = Xid::from_bytes(r.array(Field::MessageHeader)?);
    Ok((msg_type, xid))
}

impl<'a> Message<'a> {
    /// Validate a whole message: the header, then every option, deeply, with nothing left
    /// over. Relay messages (12, 13) have another header and are refused here: on a
    /// leasequery connection they appear only inside OPTION_LQ_RELAY_DATA.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let (msg_type, xid) = parse_header(bytes)?;
        if matches!(msg_type, MessageType::RelayForw | MessageType::RelayRepl) {
            return Err(Error::UnexpectedMessage { msg_type });
        }
        let options = OptionList::parse(&bytes[HEADER_LEN..], 0)?;
        Ok(Self {
            msg_type,
            xid,
            options,
        })
    }

    /// Encode the message (unframed). A parsed message re-encodes byte for byte.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_header(w, self.msg_type, self.xid)?;
        self.options.encode(w)
    }
}

/// Write the 4-octet message header.
pub fn write_header(
    w: &mut Writer<'_>,
    msg_type: MessageType,
    xid: Xid,
) -> Result<(), EncodeError> {
    w.u8(msg_type.code())?;
    w.put(&xid.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_is_24_bits() {
        assert_eq!(Xid::new(0x0100_0000), None);
        let xid = Xid::new(0xabcdef).unwrap();
        assert_eq!(xid.to_bytes(), [0xab, 0xcd, 0xef]);
        assert_eq!(Xid::from_bytes([0xab, 0xcd, 0xef]), xid);
        assert_eq!(xid.to_string(), "0xabcdef");
    }

    #[test]
    fn header_only_message_parses_and_reencodes() {
        let bytes = [23, 0x12, 0x34, 0x56];
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.msg_type, MessageType::StartTls);
        assert!(m.options.is_empty());
        let mut out = [0u8; 8];
        let mut w = Writer::new(&mut out);
        m.encode(&mut w).unwrap();
        assert_eq!(w.written(), bytes);
    }

    #[test]
    fn relay_message_at_top_level_is_refused() {
        let mut bytes = [0u8; 34];
        bytes[0] = 12;
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::UnexpectedMessage {
                msg_type: MessageType::RelayForw
            })
        );
    }
}
