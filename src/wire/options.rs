//! Typed, borrowed views of every option leasequery uses (protocol.md §2.3, §2.4).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          option-code          |           option-len          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          option-data                          |
//! |                      (option-len octets)                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! ([RFC 8415 §21.1](https://www.rfc-editor.org/rfc/rfc8415#section-21.1))
//!
//! Decoding happens in two steps. [`OptionList::parse`] validates a whole list once, deeply:
//! every TLV inside its parent, every fixed layout, every nested list, no duplicate singleton.
//! Iterating a validated list then decodes each option shallowly, which cannot fail. Nothing
//! is copied: views borrow the message bytes.

use core::net::Ipv6Addr;

use super::codes::{MessageType, OptionCode, QueryType, StatusCode, KNOWN_OPTION_CODES};
use super::error::{EncodeError, Error, Field};
use super::reader::Reader;
use super::writer::Writer;

/// How deeply option lists may nest. The top level is 0; CLIENT_DATA's list is 1; the options
/// of the relay message in its LQ_RELAY_DATA are 2; each further relay hop (a RELAY_MSG holding
/// the next RELAY-FORW) adds 1. RFC 8415 §7.6 caps relaying at HOP_COUNT_LIMIT = 8 hops, so
/// 2 + 8 levels are legal; 20 leaves room for sub-options and refuses anything deeper.
pub const NESTING_MAX: u8 = 20;

/// Length bounds of a DUID: a 2-octet type plus 1..=128 octets (RFC 8415 §11.1).
pub const DUID_LEN_MIN: usize = 3;
/// See [`DUID_LEN_MIN`].
pub const DUID_LEN_MAX: usize = 130;

const _: () = assert!(
    KNOWN_OPTION_CODES.len() <= 32,
    "duplicate detector keeps a u32 bitset"
);

/// A DUID, validated to be 3..=130 octets. Compared by bytes only (RFC 8415 §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duid<'a>(&'a [u8]);

impl<'a> Duid<'a> {
    /// A DUID view, or `BadLength` naming `option` when the length is out of bounds.
    pub fn new(bytes: &'a [u8], option: OptionCode) -> Result<Self, Error> {
        if (DUID_LEN_MIN..=DUID_LEN_MAX).contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(Error::BadLength {
                option,
                length: bytes.len(),
            })
        }
    }

    /// The DUID octets, type included.
    pub const fn bytes(self) -> &'a [u8] {
        self.0
    }

    /// The DUID type (1 LLT, 2 EN, 3 LL, 4 UUID).
    pub fn duid_type(self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }
}

/// OPTION_IAADDR (5): address, lifetimes, sub-options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IaAddr<'a> {
    /// The IPv6 address.
    pub address: Ipv6Addr,
    /// Preferred lifetime in seconds, relative to the message's base time.
    pub preferred: u32,
    /// Valid lifetime in seconds; 0 means the lease ended (D-4).
    pub valid: u32,
    /// IAaddr-options (e.g. a STATUS_CODE).
    pub options: OptionList<'a>,
}

/// OPTION_IAPREFIX (26): lifetimes, prefix length, prefix, sub-options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IaPrefix<'a> {
    /// Preferred lifetime in seconds.
    pub preferred: u32,
    /// Valid lifetime in seconds; 0 means the delegation ended (D-4).
    pub valid: u32,
    /// Prefix length in bits, 0..=128.
    pub prefix_len: u8,
    /// The prefix.
    pub prefix: Ipv6Addr,
    /// IAprefix-options.
    pub options: OptionList<'a>,
}

/// OPTION_STATUS_CODE (13): a 16-bit code and a UTF-8 message (not validated: text is the
/// peer's, and a bad byte in it is no reason to lose the code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status<'a> {
    /// The status code.
    pub code: StatusCode,
    /// The status-message octets.
    pub message: &'a [u8],
}

/// OPTION_ORO (6): a list of 2-octet option codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oro<'a>(&'a [u8]);

impl<'a> Oro<'a> {
    /// The requested codes, in wire order.
    pub fn codes(self) -> impl Iterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
    }

    /// True exactly when `code` is requested.
    pub fn contains(self, code: OptionCode) -> bool {
        self.codes().any(|c| c == code.code())
    }

    /// The raw option data (2 × count octets).
    pub const fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// OPTION_REMOTE_ID (37): enterprise number and remote-id. Matching uses the whole option
/// data, exact bytes (RFC 4649 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteId<'a>(&'a [u8]);

impl<'a> RemoteId<'a> {
    /// A remote-id view over option data of at least 5 octets.
    pub fn new(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() >= 5 {
            Ok(Self(bytes))
        } else {
            Err(Error::BadLength {
                option: OptionCode::RemoteId,
                length: bytes.len(),
            })
        }
    }

    /// The enterprise number.
    pub fn enterprise(self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// The remote-id octets after the enterprise number.
    pub fn id(self) -> &'a [u8] {
        &self.0[4..]
    }

    /// The whole option data, the matching key.
    pub const fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// OPTION_LQ_QUERY (44): query type, link-address, query-options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LqQuery<'a> {
    /// The query type; unknown values decode and are refused by the query view (S-26).
    pub query_type: QueryType,
    /// The link-address; `::` means unspecified.
    pub link_address: Ipv6Addr,
    /// The query-options.
    pub options: OptionList<'a>,
}

/// A relay message header and options (RFC 8415 §9), as found in OPTION_LQ_RELAY_DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayMessage<'a> {
    /// RELAY-FORW (12) or RELAY-REPL (13).
    pub msg_type: MessageType,
    /// Hop count.
    pub hop_count: u8,
    /// The relay's link-address.
    pub link_address: Ipv6Addr,
    /// The peer-address.
    pub peer_address: Ipv6Addr,
    /// The relay's options (INTERFACE_ID, REMOTE_ID, RELAY_ID, a nested RELAY_MSG, …).
    pub options: OptionList<'a>,
}

/// OPTION_LQ_RELAY_DATA (47): the relay's peer-address and its last RELAY-FORW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayData<'a> {
    /// Address of the relay the server received the relayed message from.
    pub peer_address: Ipv6Addr,
    /// The relay message, innermost RELAY_MSG removed (RFC 5007 §4.1.2.4).
    pub relay: RelayMessage<'a>,
}

/// The data of OPTION_RELAY_MSG (9): a nested relay message (multi-hop) or, where a server
/// did not strip it, an opaque client message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMsgBody<'a> {
    /// A relay message of the next hop inward.
    Relay(RelayMessage<'a>),
    /// Any other message, kept as bytes.
    Opaque(&'a [u8]),
}

/// One decoded option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt<'a> {
    /// OPTION_CLIENTID (1).
    ClientId(Duid<'a>),
    /// OPTION_SERVERID (2).
    ServerId(Duid<'a>),
    /// OPTION_IAADDR (5).
    IaAddr(IaAddr<'a>),
    /// OPTION_ORO (6).
    Oro(Oro<'a>),
    /// OPTION_RELAY_MSG (9).
    RelayMsg(RelayMsgBody<'a>),
    /// OPTION_STATUS_CODE (13).
    Status(Status<'a>),
    /// OPTION_INTERFACE_ID (18), opaque.
    InterfaceId(&'a [u8]),
    /// OPTION_IAPREFIX (26).
    IaPrefix(IaPrefix<'a>),
    /// OPTION_REMOTE_ID (37).
    RemoteId(RemoteId<'a>),
    /// OPTION_LQ_QUERY (44).
    LqQuery(LqQuery<'a>),
    /// OPTION_CLIENT_DATA (45): the options of one client on one link.
    ClientData(OptionList<'a>),
    /// OPTION_CLT_TIME (46): seconds since last contact.
    CltTime(u32),
    /// OPTION_LQ_RELAY_DATA (47).
    LqRelayData(RelayData<'a>),
    /// OPTION_LQ_CLIENT_LINK (48): 16-octet link addresses.
    LqClientLink(&'a [u8]),
    /// OPTION_RELAY_ID (53).
    RelayId(Duid<'a>),
    /// OPTION_LQ_BASE_TIME (100).
    LqBaseTime(u32),
    /// OPTION_LQ_START_TIME (101).
    LqStartTime(u32),
    /// OPTION_LQ_END_TIME (102).
    LqEndTime(u32),
    /// An option this codec does not interpret, kept as a raw TLV.
    Unknown {
        /// Its option-code.
        code: u16,
        /// Its option-data.
        data: &'a [u8],
    },
}

/// A validated list of option TLVs, borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionList<'a> {
    bytes: &'a [u8],
    /// Nesting level of this list; the message's top level is 0.
    depth: u8,
}

fn ipv6(r: &mut Reader<'_>, field: Field) -> Result<Ipv6Addr, Error> {
    Ok(Ipv6Addr::from(r.array::<16>(field)?))
}

fn u32_option(data: &[u8], option: OptionCode) -> Result<u32, Error> {
    let bytes: [u8; 4] = data.try_into().map_err(|_| Error::BadLength {
        option,
        length: data.len(),
    })?;
    Ok(u32::from_be_bytes(bytes))
}

/// Check that `data` holds at least the `fixed` octets of `option`'s layout.
fn fixed_len(data: &[u8], fixed: usize, option: OptionCode) -> Result<(), Error> {
    if data.len() < fixed {
        return Err(Error::BadLength {
            option,
            length: data.len(),
        });
    }
    Ok(())
}

impl<'a> IaAddr<'a> {
    fn decode(data: &'a [u8], nested: u8) -> Result<Self, Error> {
        let field = Field::Option(OptionCode::IaAddr);
        fixed_len(data, 24, OptionCode::IaAddr)?;
        let mut r = Reader::new(data);
        Ok(Self {
            address: ipv6(&mut r, field)?,
            preferred: r.u32(field)?,
            valid: r.u32(field)?,
            options: OptionList::unvalidated(r.rest(), nested),
        })
    }
}

impl<'a> IaPrefix<'a> {
    fn decode(data: &'a [u8], nested: u8) -> Result<Self, Error> {
        let field = Field::Option(OptionCode::IaPrefix);
        fixed_len(data, 25, OptionCode::IaPrefix)?;
        let mut r = Reader::new(data);
        let preferred = r.u32(field)?;
        let valid = r.u32(field)?;
        let prefix_len = r.u8(field)?;
        if prefix_len > 128 {
            return Err(Error::BadValue {
                option: OptionCode::IaPrefix,
            });
        }
        let prefix = ipv6(&mut r, field)?;
        let options = OptionList::unvalidated(r.rest(), nested);
        Ok(Self {
            preferred,
            valid,
            prefix_len,
            prefix,
            options,
        })
    }
}

impl<'a> LqQuery<'a> {
    fn decode(data: &'a [u8], nested: u8) -> Result<Self, Error> {
        let field = Field::Option(OptionCode::LqQuery);
        fixed_len(data, 17, OptionCode::LqQuery)?;
        let mut r = Reader::new(data);
        let query_type = QueryType::from_code(r.u8(field)?);
        let link_address = ipv6(&mut r, field)?;
        Ok(Self {
            query_type,
            link_address,
            options: OptionList::unvalidated(r.rest(), nested),
        })
    }
}

impl<'a> RelayData<'a> {
    fn decode(data: &'a [u8], nested: u8) -> Result<Self, Error> {
        // peer-address (16) and at least a relay message header (34).
        fixed_len(data, 16 + 34, OptionCode::LqRelayData)?;
        let mut r = Reader::new(data);
        let peer_address = ipv6(&mut r, Field::Option(OptionCode::LqRelayData))?;
        let relay = RelayMessage::decode_shallow(r.rest(), nested)?;
        Ok(Self {
            peer_address,
            relay,
        })
    }
}

impl<'a> RelayMessage<'a> {
    /// Decode a relay message header; its options are validated by the caller's list walk.
    fn decode_shallow(bytes: &'a [u8], depth: u8) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let msg_type = r.u8(Field::RelayHeader)?;
        if !matches!(msg_type, 12 | 13) {
            return Err(Error::NotARelayMessage { msg_type });
        }
        let hop_count = r.u8(Field::RelayHeader)?;
        let link_address = ipv6(&mut r, Field::RelayHeader)?;
        let peer_address = ipv6(&mut r, Field::RelayHeader)?;
        Ok(Self {
            msg_type: MessageType::from_code(msg_type),
            hop_count,
            link_address,
            peer_address,
            options: OptionList::unvalidated(r.rest(), depth),
        })
    }

    /// Encode the relay message (header and options).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.msg_type.code())?;
        w.u8(self.hop_count)?;
        w.put(&self.link_address.octets())?;
        w.put(&self.peer_address.octets())?;
        self.options.encode(w)
    }
}

impl<'a> Opt<'a> {
    /// The option-code of this option.
    pub const fn code(&self) -> OptionCode {
        match self {
            Self::ClientId(_) => OptionCode::ClientId,
            Self::ServerId(_) => OptionCode::ServerId,
            Self::IaAddr(_) => OptionCode::IaAddr,
            Self::Oro(_) => OptionCode::Oro,
            Self::RelayMsg(_) => OptionCode::RelayMsg,
            Self::Status(_) => OptionCode::StatusCode,
            Self::InterfaceId(_) => OptionCode::InterfaceId,
            Self::IaPrefix(_) => OptionCode::IaPrefix,
            Self::RemoteId(_) => OptionCode::RemoteId,
            Self::LqQuery(_) => OptionCode::LqQuery,
            Self::ClientData(_) => OptionCode::ClientData,
            Self::CltTime(_) => OptionCode::CltTime,
            Self::LqRelayData(_) => OptionCode::LqRelayData,
            Self::LqClientLink(_) => OptionCode::LqClientLink,
            Self::RelayId(_) => OptionCode::RelayId,
            Self::LqBaseTime(_) => OptionCode::LqBaseTime,
            Self::LqStartTime(_) => OptionCode::LqStartTime,
            Self::LqEndTime(_) => OptionCode::LqEndTime,
            Self::Unknown { code, .. } => OptionCode::Unknown(*code),
        }
    }

    /// Decode the fixed layout of one option's data. Nested lists are wrapped, not walked:
    /// [`OptionList::parse`] walks them.
    fn decode_shallow(code: OptionCode, data: &'a [u8], depth: u8) -> Result<Self, Error> {
        let bad_length = Error::BadLength {
            option: code,
            length: data.len(),
        };
        let nested = depth.checked_add(1).ok_or(Error::NestingTooDeep)?;
        let opt = match code {
            OptionCode::ClientId => Self::ClientId(Duid::new(data, code)?),
            OptionCode::ServerId => Self::ServerId(Duid::new(data, code)?),
            OptionCode::RelayId => Self::RelayId(Duid::new(data, code)?),
            OptionCode::IaAddr => Self::IaAddr(IaAddr::decode(data, nested)?),
            OptionCode::IaPrefix => Self::IaPrefix(IaPrefix::decode(data, nested)?),
            OptionCode::Oro if data.len().is_multiple_of(2) => Self::Oro(Oro(data)),
            OptionCode::Oro => return Err(bad_length),
            OptionCode::StatusCode => {
                // Never `len - 2` (T18): a 1-octet status is refused, not wrapped around.
                let mut r = Reader::new(data);
                let status = r.u16(Field::Option(code)).map_err(|_| bad_length)?;
                Self::Status(Status {
                    code: StatusCode::from_code(status),
                    message: r.rest(),
                })
            }
            OptionCode::InterfaceId => Self::InterfaceId(data),
            OptionCode::RemoteId => Self::RemoteId(RemoteId::new(data)?),
            OptionCode::LqQuery => Self::LqQuery(LqQuery::decode(data, nested)?),
            OptionCode::ClientData => Self::ClientData(OptionList::unvalidated(data, nested)),
            OptionCode::CltTime => Self::CltTime(u32_option(data, code)?),
            OptionCode::LqRelayData => Self::LqRelayData(RelayData::decode(data, nested)?),
            OptionCode::RelayMsg => Self::RelayMsg(match data.first() {
                Some(12 | 13) => RelayMsgBody::Relay(RelayMessage::decode_shallow(data, nested)?),
                _ => RelayMsgBody::Opaque(data),
            }),
            OptionCode::LqClientLink if data.len().is_multiple_of(16) => Self::LqClientLink(data),
            OptionCode::LqClientLink => return Err(bad_length),
            OptionCode::LqBaseTime => Self::LqBaseTime(u32_option(data, code)?),
            OptionCode::LqStartTime => Self::LqStartTime(u32_option(data, code)?),
            OptionCode::LqEndTime => Self::LqEndTime(u32_option(data, code)?),
            OptionCode::Unknown(code) => Self::Unknown { code, data },
        };
        Ok(opt)
    }

    /// The option list nested in this option, if it has one.
    const fn nested(&self) -> Option<OptionList<'a>> {
        match self {
            Self::IaAddr(a) => Some(a.options),
            Self::IaPrefix(p) => Some(p.options),
            Self::LqQuery(q) => Some(q.options),
            Self::ClientData(list) => Some(*list),
            Self::LqRelayData(d) => Some(d.relay.options),
            Self::RelayMsg(RelayMsgBody::Relay(m)) => Some(m.options),
            _ => None,
        }
    }

    /// Encode this option, nested lists included. A decoded option re-encodes to exactly
    /// the bytes it came from.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let mark = w.begin(self.code())?;
        match self {
            Self::ClientId(d) | Self::ServerId(d) | Self::RelayId(d) => w.put(d.bytes())?,
            Self::IaAddr(a) => {
                w.put(&a.address.octets())?;
                w.u32(a.preferred)?;
                w.u32(a.valid)?;
                a.options.encode(w)?;
            }
            Self::IaPrefix(p) => {
                w.u32(p.preferred)?;
                w.u32(p.valid)?;
                w.u8(p.prefix_len)?;
                w.put(&p.prefix.octets())?;
                p.options.encode(w)?;
            }
            Self::Oro(o) => w.put(o.bytes())?,
            Self::RelayMsg(RelayMsgBody::Relay(m)) => m.encode(w)?,
            Self::RelayMsg(RelayMsgBody::Opaque(data))
            | Self::InterfaceId(data)
            | Self::LqClientLink(data)
            | Self::Unknown { data, .. } => w.put(data)?,
            Self::Status(s) => {
                w.u16(s.code.code())?;
                w.put(s.message)?;
            }
            Self::RemoteId(id) => w.put(id.bytes())?,
            Self::LqQuery(q) => {
                w.u8(q.query_type.code())?;
                w.put(&q.link_address.octets())?;
                q.options.encode(w)?;
            }
            Self::ClientData(list) => list.encode(w)?,
            Self::LqRelayData(d) => {
                w.put(&d.peer_address.octets())?;
                d.relay.encode(w)?;
            }
            Self::CltTime(v) | Self::LqBaseTime(v) | Self::LqStartTime(v) | Self::LqEndTime(v) => {
                w.u32(*v)?;
            }
        }
        w.end(mark)
    }
}

/// Split one TLV off the front of `r`, checking its length against what is left.
fn next_tlv<'a>(r: &mut Reader<'a>) -> Result<(u16, &'a [u8]), Error> {
    let code = r.u16(Field::OptionHeader)?;
    let length = r.u16(Field::OptionHeader)?;
    let available = r.remaining();
    if usize::from(length) > available {
        return Err(Error::OptionOverrun {
            code,
            length,
            available,
        });
    }
    Ok((code, r.take(usize::from(length), Field::OptionHeader)?))
}

impl<'a> OptionList<'a> {
    /// An empty list.
    pub const EMPTY: OptionList<'static> = OptionList {
        bytes: &[],
        depth: 0,
    };

    const fn unvalidated(bytes: &'a [u8], depth: u8) -> Self {
        Self { bytes, depth }
    }

    /// Validate `bytes` as a complete option list at nesting level `depth`, deeply: every
    /// TLV fits its parent, every fixed layout holds, no singleton repeats, nesting stays
    /// within [`NESTING_MAX`]. The walk is bounded by the input length (each TLV is ≥ 4 octets).
    pub fn parse(bytes: &'a [u8], depth: u8) -> Result<Self, Error> {
        if depth > NESTING_MAX {
            return Err(Error::NestingTooDeep);
        }
        let mut seen: u32 = 0;
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let (code, data) = next_tlv(&mut r)?;
            let code = OptionCode::from_code(code);
            if let (true, Some(bit)) = (code.is_singleton(), code.index()) {
                if seen & (1 << bit) != 0 {
                    return Err(Error::Duplicate { option: code });
                }
                seen |= 1 << bit;
            }
            let opt = Opt::decode_shallow(code, data, depth)?;
            if let Some(nested) = opt.nested() {
                Self::parse(nested.bytes, nested.depth)?;
            }
        }
        Ok(Self { bytes, depth })
    }

    /// The raw octets of the list.
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// True exactly when the list holds no option.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The options, in wire order.
    pub fn iter(&self) -> OptionIter<'a> {
        OptionIter {
            reader: Reader::new(self.bytes),
            depth: self.depth,
        }
    }

    /// The first option with this code (singletons have at most one).
    pub fn find(&self, code: OptionCode) -> Option<Opt<'a>> {
        self.iter().find(|opt| opt.code() == code)
    }

    /// Encode every option of the list.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.iter().try_for_each(|opt| opt.encode(w))
    }
}

impl<'a> IntoIterator for OptionList<'a> {
    type Item = Opt<'a>;
    type IntoIter = OptionIter<'a>;
    fn into_iter(self) -> OptionIter<'a> {
        self.iter()
    }
}

/// Iterator over a validated [`OptionList`].
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    reader: Reader<'a>,
    depth: u8,
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Opt<'a>;

    fn next(&mut self) -> Option<Opt<'a>> {
        if self.reader.is_empty() {
            return None;
        }
        // The list was validated by OptionList::parse; a failure here is a codec bug.
        let decoded = next_tlv(&mut self.reader).and_then(|(code, data)| {
            Opt::decode_shallow(OptionCode::from_code(code), data, self.depth)
        });
        match decoded {
            Ok(opt) => Some(opt),
            Err(error) => unreachable!("validated option list failed to decode: {error}"),
        }
    }
}
