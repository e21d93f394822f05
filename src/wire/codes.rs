//! Code points of DHCPv6 leasequery (protocol.md §1).
//!
//! Every conversion is total in both directions: a value the table does not name becomes
//! `Unknown(n)` and encodes back to `n`. Whether an unknown value is acceptable is decided by
//! the caller (a query view refuses an unknown query type with UnknownQueryType, S-26).

/// Message type, the first octet of every DHCPv6 message (protocol.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// REPLY (7), used on a leasequery connection only to answer STARTTLS
    /// ([RFC 8415 §7.3](https://www.rfc-editor.org/rfc/rfc8415#section-7.3),
    /// [RFC 7653 §8.2](https://www.rfc-editor.org/rfc/rfc7653#section-8.2)).
    Reply,
    /// RELAY-FORW (12), found only inside OPTION_LQ_RELAY_DATA
    /// ([RFC 8415 §9.1](https://www.rfc-editor.org/rfc/rfc8415#section-9.1)).
    RelayForw,
    /// RELAY-REPL (13); never sent by lqd, named so that a nested relay blob decodes.
    RelayRepl,
    /// LEASEQUERY (14) ([RFC 5007 §4.1.1](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.1)).
    Leasequery,
    /// LEASEQUERY-REPLY (15) ([RFC 5007 §4.1.1](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.1)).
    LeasequeryReply,
    /// LEASEQUERY-DONE (16) ([RFC 5460 §5.2.2](https://www.rfc-editor.org/rfc/rfc5460#section-5.2.2)).
    LeasequeryDone,
    /// LEASEQUERY-DATA (17) ([RFC 5460 §5.2.1](https://www.rfc-editor.org/rfc/rfc5460#section-5.2.1)).
    LeasequeryData,
    /// ACTIVELEASEQUERY (22) ([RFC 7653 §6.2.1](https://www.rfc-editor.org/rfc/rfc7653#section-6.2.1)).
    ActiveLeasequery,
    /// STARTTLS (23) ([RFC 7653 §6.2.2](https://www.rfc-editor.org/rfc/rfc7653#section-6.2.2)).
    StartTls,
    /// Any other message type.
    Unknown(u8),
}

impl MessageType {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Reply => 7,
            Self::RelayForw => 12,
            Self::RelayRepl => 13,
            Self::Leasequery => 14,
            Self::LeasequeryReply => 15,
            Self::LeasequeryDone => 16,
            Self::LeasequeryData => 17,
            Self::ActiveLeasequery => 22,
            Self::StartTls => 23,
            Self::Unknown(n) => n,
        }
    }

    /// The message type for a wire value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            7 => Self::Reply,
            12 => Self::RelayForw,
            13 => Self::RelayRepl,
            14 => Self::Leasequery,
            15 => Self::LeasequeryReply,
            16 => Self::LeasequeryDone,
            17 => Self::LeasequeryData,
            22 => Self::ActiveLeasequery,
            23 => Self::StartTls,
            n => Self::Unknown(n),
        }
    }

    /// True exactly when the type may appear on a TCP leasequery connection (S-25):
    /// 14–17 from RFC 5460, 22 and 23 from RFC 7653, and REPLY as the answer to STARTTLS.
    pub const fn allowed_on_tcp(self) -> bool {
        matches!(
            self,
            Self::Reply
                | Self::Leasequery
                | Self::LeasequeryReply
                | Self::LeasequeryDone
                | Self::LeasequeryData
                | Self::ActiveLeasequery
                | Self::StartTls
        )
    }
}

/// Option code, the first two octets of every option TLV (protocol.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionCode {
    /// OPTION_CLIENTID (1) ([RFC 8415 §21.2](https://www.rfc-editor.org/rfc/rfc8415#section-21.2)).
    ClientId,
    /// OPTION_SERVERID (2) ([RFC 8415 §21.3](https://www.rfc-editor.org/rfc/rfc8415#section-21.3)).
    ServerId,
    /// OPTION_IAADDR (5) ([RFC 8415 §21.6](https://www.rfc-editor.org/rfc/rfc8415#section-21.6)).
    IaAddr,
    /// OPTION_ORO (6) ([RFC 8415 §21.7](https://www.rfc-editor.org/rfc/rfc8415#section-21.7)).
    Oro,
    /// OPTION_RELAY_MSG (9), only inside a relay message
    /// ([RFC 8415 §21.10](https://www.rfc-editor.org/rfc/rfc8415#section-21.10)).
    RelayMsg,
    /// OPTION_STATUS_CODE (13) ([RFC 8415 §21.13](https://www.rfc-editor.org/rfc/rfc8415#section-21.13)).
    StatusCode,
    /// OPTION_INTERFACE_ID (18) ([RFC 8415 §21.18](https://www.rfc-editor.org/rfc/rfc8415#section-21.18)).
    InterfaceId,
    /// OPTION_IAPREFIX (26) ([RFC 8415 §21.22](https://www.rfc-editor.org/rfc/rfc8415#section-21.22)).
    IaPrefix,
    /// OPTION_REMOTE_ID (37) ([RFC 4649 §3](https://www.rfc-editor.org/rfc/rfc4649#section-3)).
    RemoteId,
    /// OPTION_LQ_QUERY (44) ([RFC 5007 §4.1.2.1](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.1)).
    LqQuery,
    /// OPTION_CLIENT_DATA (45) ([RFC 5007 §4.1.2.2](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.2)).
    ClientData,
    /// OPTION_CLT_TIME (46) ([RFC 5007 §4.1.2.3](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.3)).
    CltTime,
    /// OPTION_LQ_RELAY_DATA (47) ([RFC 5007 §4.1.2.4](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.4)).
    LqRelayData,
    /// OPTION_LQ_CLIENT_LINK (48) ([RFC 5007 §4.1.2.5](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.5)).
    LqClientLink,
    /// OPTION_RELAY_ID (53) ([RFC 5460 §5.4.1](https://www.rfc-editor.org/rfc/rfc5460#section-5.4.1)).
    RelayId,
    /// OPTION_LQ_BASE_TIME (100) ([RFC 7653 §6.3.1](https://www.rfc-editor.org/rfc/rfc7653#section-6.3.1)).
    LqBaseTime,
    /// OPTION_LQ_START_TIME (101) ([RFC 7653 §6.3.2](https://www.rfc-editor.org/rfc/rfc7653#section-6.3.2)).
    LqStartTime,
    /// OPTION_LQ_END_TIME (102) ([RFC 7653 §6.3.3](https://www.rfc-editor.org/rfc/rfc7653#section-6.3.3)).
    LqEndTime,
    /// Any other option code; kept as a raw TLV.
    Unknown(u16),
}

/// Every option code the codec decodes, in code order. `OptionCode::index` is the position in
/// this table; the duplicate detector keeps one bit per entry.
pub(crate) const KNOWN_OPTION_CODES: [u16; 18] = [
    1, 2, 5, 6, 9, 13, 18, 26, 37, 44, 45, 46, 47, 48, 53, 100, 101, 102,
];

impl OptionCode {
    /// The wire value.
    pub const fn code(self) -> u16 {
        match self {
            Self::ClientId => 1,
            Self::ServerId => 2,
            Self::IaAddr => 5,
            Self::Oro => 6,
            Self::RelayMsg => 9,
            Self::StatusCode => 13,
            Self::InterfaceId => 18,
            Self::IaPrefix => 26,
            Self::RemoteId => 37,
            Self::LqQuery => 44,
            Self::ClientData => 45,
            Self::CltTime => 46,
            Self::LqRelayData => 47,
            Self::LqClientLink => 48,
            Self::RelayId => 53,
            Self::LqBaseTime => 100,
            Self::LqStartTime => 101,
            Self::LqEndTime => 102,
            Self::Unknown(n) => n,
        }
    }

    /// The option code for a wire value.
    pub const fn from_code(code: u16) -> Self {
        match code {
            1 => Self::ClientId,
            2 => Self::ServerId,
            5 => Self::IaAddr,
            6 => Self::Oro,
            9 => Self::RelayMsg,
            13 => Self::StatusCode,
            18 => Self::InterfaceId,
            26 => Self::IaPrefix,
            37 => Self::RemoteId,
            44 => Self::LqQuery,
            45 => Self::ClientData,
            46 => Self::CltTime,
            47 => Self::LqRelayData,
            48 => Self::LqClientLink,
            53 => Self::RelayId,
            100 => Self::LqBaseTime,
            101 => Self::LqStartTime,
            102 => Self::LqEndTime,
            n => Self::Unknown(n),
        }
    }

    /// True exactly when at most one instance may appear in one option list.
    ///
    /// RFC 8415 Table 4 marks every known code here as a singleton except IAADDR and IAPREFIX,
    /// which repeat inside OPTION_CLIENT_DATA (one per lease, RFC 5007 §4.1.2.2). Unknown
    /// options are not checked: their rules are not ours to know.
    pub const fn is_singleton(self) -> bool {
        !matches!(self, Self::IaAddr | Self::IaPrefix | Self::Unknown(_))
    }

    /// Position in [`KNOWN_OPTION_CODES`], or `None` for an unknown code.
    pub(crate) const fn index(self) -> Option<usize> {
        let code = self.code();
        let mut i = 0;
        while i < KNOWN_OPTION_CODES.len() {
            if KNOWN_OPTION_CODES[i] == code && !matches!(self, Self::Unknown(_)) {
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

/// OPTION_LQ_QUERY query-type (protocol.md §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryType {
    /// QUERY_BY_ADDRESS (1), [RFC 5007 §4.1.2.1](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.1).
    ByAddress,
    /// QUERY_BY_CLIENTID (2), [RFC 5007 §4.1.2.1](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.2.1).
    ByClientId,
    /// QUERY_BY_RELAY_ID (3), [RFC 5460 §5.3.1](https://www.rfc-editor.org/rfc/rfc5460#section-5.3.1).
    ByRelayId,
    /// QUERY_BY_LINK_ADDRESS (4), [RFC 5460 §5.3.2](https://www.rfc-editor.org/rfc/rfc5460#section-5.3.2).
    ByLinkAddress,
    /// QUERY_BY_REMOTE_ID (5), [RFC 5460 §5.3.3](https://www.rfc-editor.org/rfc/rfc5460#section-5.3.3).
    ByRemoteId,
    /// Any other value; a server answers UnknownQueryType (S-26).
    Unknown(u8),
}

impl QueryType {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::ByAddress => 1,
            Self::ByClientId => 2,
            Self::ByRelayId => 3,
            Self::ByLinkAddress => 4,
            Self::ByRemoteId => 5,
            Self::Unknown(n) => n,
        }
    }

    /// The query type for a wire value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => Self::ByAddress,
            2 => Self::ByClientId,
            3 => Self::ByRelayId,
            4 => Self::ByLinkAddress,
            5 => Self::ByRemoteId,
            n => Self::Unknown(n),
        }
    }

    /// The query-option each type requires inside OPTION_LQ_QUERY (protocol.md §2.4, R-4),
    /// or `None` for QUERY_BY_LINK_ADDRESS, whose key is the link-address itself.
    pub const fn required_option(self) -> Option<OptionCode> {
        match self {
            Self::ByAddress => Some(OptionCode::IaAddr),
            Self::ByClientId => Some(OptionCode::ClientId),
            Self::ByRelayId => Some(OptionCode::RelayId),
            Self::ByRemoteId => Some(OptionCode::RemoteId),
            Self::ByLinkAddress | Self::Unknown(_) => None,
        }
    }
}

/// Status code carried in OPTION_STATUS_CODE (protocol.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// Success (0); also what an absent status option means.
    Success,
    /// UnspecFail (1).
    UnspecFail,
    /// NoAddrsAvail (2), not used by leasequery.
    NoAddrsAvail,
    /// NoBinding (3), not used by leasequery.
    NoBinding,
    /// NotOnLink (4), not used by leasequery.
    NotOnLink,
    /// UseMulticast (5), not used by leasequery.
    UseMulticast,
    /// NoPrefixAvail (6), not used by leasequery.
    NoPrefixAvail,
    /// UnknownQueryType (7), [RFC 5007 §4.1.3](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.3).
    UnknownQueryType,
    /// MalformedQuery (8), [RFC 5007 §4.1.3](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.3).
    MalformedQuery,
    /// NotConfigured (9), [RFC 5007 §4.1.3](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.3).
    NotConfigured,
    /// NotAllowed (10), [RFC 5007 §4.1.3](https://www.rfc-editor.org/rfc/rfc5007#section-4.1.3).
    NotAllowed,
    /// QueryTerminated (11), [RFC 5460 §5.5](https://www.rfc-editor.org/rfc/rfc5460#section-5.5).
    QueryTerminated,
    /// DataMissing (12), [RFC 7653 §8.4.1](https://www.rfc-editor.org/rfc/rfc7653#section-8.4.1).
    DataMissing,
    /// CatchUpComplete (13), [RFC 7653 §8.4.1](https://www.rfc-editor.org/rfc/rfc7653#section-8.4.1).
    CatchUpComplete,
    /// NotSupported (14), [RFC 7653 §9.2](https://www.rfc-editor.org/rfc/rfc7653#section-9.2).
    NotSupported,
    /// TLSConnectionRefused (15), [RFC 7653 §9.1](https://www.rfc-editor.org/rfc/rfc7653#section-9.1).
    TlsConnectionRefused,
    /// Any other 16-bit value (RFC 8415 §24).
    Unknown(u16),
}

impl StatusCode {
    /// The wire value.
    pub const fn code(self) -> u16 {
        match self {
            Self::Success => 0,
            Self::UnspecFail => 1,
            Self::NoAddrsAvail => 2,
            Self::NoBinding => 3,
            Self::NotOnLink => 4,
            Self::UseMulticast => 5,
            Self::NoPrefixAvail => 6,
            Self::UnknownQueryType => 7,
            Self::MalformedQuery => 8,
            Self::NotConfigured => 9,
            Self::NotAllowed => 10,
            Self::QueryTerminated => 11,
            Self::DataMissing => 12,
            Self::CatchUpComplete => 13,
            Self::NotSupported => 14,
            Self::TlsConnectionRefused => 15,
            Self::Unknown(n) => n,
        }
    }

    /// The status code for a wire value.
    pub const fn from_code(code: u16) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::UnspecFail,
            2 => Self::NoAddrsAvail,
            3 => Self::NoBinding,
            4 => Self::NotOnLink,
            5 => Self::UseMulticast,
            6 => Self::NoPrefixAvail,
            7 => Self::UnknownQueryType,
            8 => Self::MalformedQuery,
            9 => Self::NotConfigured,
            10 => Self::NotAllowed,
            11 => Self::QueryTerminated,
            12 => Self::DataMissing,
            13 => Self::CatchUpComplete,
            14 => Self::NotSupported,
            15 => Self::TlsConnectionRefused,
            n => Self::Unknown(n),
        }
    }

    /// The RFC name, as operators see it in logs and in `lq` output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::UnspecFail => "UnspecFail",
            Self::NoAddrsAvail => "NoAddrsAvail",
            Self::NoBinding => "NoBinding",
            Self::NotOnLink => "NotOnLink",
            Self::UseMulticast => "UseMulticast",
            Self::NoPrefixAvail => "NoPrefixAvail",
            Self::UnknownQueryType => "UnknownQueryType",
            Self::MalformedQuery => "MalformedQuery",
            Self::NotConfigured => "NotConfigured",
            Self::NotAllowed => "NotAllowed",
            Self::QueryTerminated => "QueryTerminated",
            Self::DataMissing => "DataMissing",
            Self::CatchUpComplete => "CatchUpComplete",
            Self::NotSupported => "NotSupported",
            Self::TlsConnectionRefused => "TLSConnectionRefused",
            Self::Unknown(_) => "Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_total_and_inverse() {
        for code in 0..=u8::MAX {
            assert_eq!(MessageType::from_code(code).code(), code);
            assert_eq!(QueryType::from_code(code).code(), code);
        }
        for code in 0..=u16::MAX {
            assert_eq!(OptionCode::from_code(code).code(), code);
            assert_eq!(StatusCode::from_code(code).code(), code);
        }
    }

    #[test]
    fn known_codes_table_matches_enum() {
        for (i, &code) in KNOWN_OPTION_CODES.iter().enumerate() {
            let option = OptionCode::from_code(code);
            assert!(!matches!(option, OptionCode::Unknown(_)), "code {code}");
            assert_eq!(option.index(), Some(i));
        }
        assert_eq!(OptionCode::Unknown(3).index(), None);
        assert_eq!(OptionCode::from_code(3).index(), None);
    }

    #[test]
    fn status_codes_0_to_15_are_named() {
        for code in 0..=15 {
            assert!(!matches!(
                StatusCode::from_code(code),
                StatusCode::Unknown(_)
            ));
        }
        assert_eq!(StatusCode::from_code(16), StatusCode::Unknown(16));
        assert_eq!(
            StatusCode::TlsConnectionRefused.name(),
            "TLSConnectionRefused"
        );
    }

    #[test]
    fn tcp_message_types_follow_s25() {
        let allowed: Vec<u8> = (0..=u8::MAX)
            .filter(|&c| MessageType::from_code(c).allowed_on_tcp())
            .collect();
        assert_eq!(allowed, [7, 14, 15, 16, 17, 22, 23]);
    }
}
