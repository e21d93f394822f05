//! Request views: LEASEQUERY (14) and ACTIVELEASEQUERY (22) validated into a [`Query`].
//!
//! The rules applied here, in order:
//! - S-25: only query messages are accepted (REPLY/DATA/DONE are discarded, S-24).
//! - S-23: a LEASEQUERY needs CLIENTID and LQ_QUERY and, if it names a server, ours; else it
//!   is discarded. D-2: an ACTIVELEASEQUERY without CLIENTID is refused with MalformedQuery.
//! - S-29: LQ_END_TIME in an ACTIVELEASEQUERY is refused with MalformedQuery.
//! - S-26: an unknown query type gets UnknownQueryType; a missing query-option gets
//!   MalformedQuery.
//! - D-1: BASE_TIME is wanted when 100 is in the top-level ORO or in the LQ_QUERY ORO.
//!
//! Options a query has no use for are refused rather than ignored (style.md S12): a known
//! option in the wrong place is `Forbidden` (MalformedQuery); unknown options are kept in the
//! message and ignored, as RFC 8415 §16 asks of unknown options.

use core::net::Ipv6Addr;

use super::codes::{MessageType, OptionCode, QueryType};
use super::error::Error;
use super::message::{Message, Xid};
use super::options::{Duid, LqQuery, Opt, Oro, RemoteId};

/// Which leasequery a [`Query`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// LEASEQUERY over TCP: Bulk Leasequery (RFC 5460).
    Bulk,
    /// ACTIVELEASEQUERY (RFC 7653).
    Active,
}

/// What a query selects bindings by (S-31..S-35).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKey<'a> {
    /// QUERY_BY_ADDRESS: the client holding this address or a prefix containing it (S-31).
    Address(Ipv6Addr),
    /// QUERY_BY_CLIENTID: the client with this DUID (S-32).
    ClientId(Duid<'a>),
    /// QUERY_BY_RELAY_ID: bindings learned through this relay (S-33).
    RelayId(Duid<'a>),
    /// QUERY_BY_LINK_ADDRESS: bindings on the link of `Filter::link_address`; `::` selects
    /// every link (D-3).
    LinkAddress,
    /// QUERY_BY_REMOTE_ID: bindings whose last Remote-ID equals this one (S-35).
    RemoteId(RemoteId<'a>),
}

/// A validated OPTION_LQ_QUERY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter<'a> {
    /// The selection key.
    pub key: QueryKey<'a>,
    /// The link-address; `::` means unspecified.
    pub link_address: Ipv6Addr,
    /// The ORO inside the query-options (per-client options wanted, e.g. 47).
    pub oro: Option<Oro<'a>>,
}

/// A validated LEASEQUERY or ACTIVELEASEQUERY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// Bulk or Active.
    pub kind: QueryKind,
    /// The transaction-id every answer copies (S-26, R-1).
    pub xid: Xid,
    /// The requestor's own DUID (OPTION_CLIENTID), echoed in the REPLY.
    pub requestor: Duid<'a>,
    /// OPTION_SERVERID, when present; already checked to be ours (S-23).
    pub server_id: Option<Duid<'a>>,
    /// OPTION_LQ_QUERY; `None` only for an ACTIVELEASEQUERY for all bindings (S-36).
    pub filter: Option<Filter<'a>>,
    /// The top-level ORO.
    pub oro: Option<Oro<'a>>,
    /// OPTION_LQ_START_TIME: bindings changed at or after this server time (S-52, D-11).
    pub start_time: Option<u32>,
    /// OPTION_LQ_END_TIME: bindings changed at or before this server time; Bulk only (S-29).
    pub end_time: Option<u32>,
}

impl Query<'_> {
    /// True exactly when LQ_BASE_TIME goes in every answer (S-49): 100 is in the top-level
    /// ORO or in the LQ_QUERY ORO (D-1).
    pub fn wants_base_time(&self) -> bool {
        let in_query = self
            .filter
            .and_then(|f| f.oro)
            .is_some_and(|o| o.contains(OptionCode::LqBaseTime));
        in_query || self.oro.is_some_and(|o| o.contains(OptionCode::LqBaseTime))
    }

    /// True exactly when `code` is asked for inside each OPTION_CLIENT_DATA: it is in the
    /// LQ_QUERY ORO, or, for a query without LQ_QUERY, in the top-level ORO (D-1).
    pub fn wants_in_client_data(&self, code: OptionCode) -> bool {
        match self.filter {
            Some(filter) => filter.oro.is_some_and(|o| o.contains(code)),
            None => self.oro.is_some_and(|o| o.contains(code)),
        }
    }
}

/// Validate a parsed message as a query addressed to the server whose DUID is `server_duid`.
pub fn parse_query<'a>(message: &Message<'a>, server_duid: &[u8]) -> Result<Query<'a>, Error> {
    let kind = match message.msg_type {
        MessageType::Leasequery => QueryKind::Bulk,
        MessageType::ActiveLeasequery => QueryKind::Active,
        msg_type => return Err(Error::UnexpectedMessage { msg_type }),
    };
    let msg_type = message.msg_type;
    let mut top = TopLevel::default();
    for opt in message.options {
        match opt {
            Opt::ClientId(duid) => top.client_id = Some(duid),
            Opt::ServerId(duid) => top.server_id = Some(duid),
            Opt::LqQuery(query) => top.lq_query = Some(query),
            Opt::Oro(oro) => top.oro = Some(oro),
            Opt::LqStartTime(t) => top.start_time = Some(t),
            Opt::LqEndTime(t) => top.end_time = Some(t),
            Opt::Unknown { .. } => {}
            other => {
                return Err(Error::Forbidden {
                    option: other.code(),
                    message: msg_type,
                })
            }
        }
    }
    // S-29 first: an Active query carrying END_TIME is malformed whatever else it lacks.
    if kind == QueryKind::Active && top.end_time.is_some() {
        return Err(Error::Forbidden {
            option: OptionCode::LqEndTime,
            message: msg_type,
        });
    }
    let requestor = top.client_id.ok_or(Error::Missing {
        option: OptionCode::ClientId,
        message: msg_type,
    })?;
    if kind == QueryKind::Bulk && top.lq_query.is_none() {
        return Err(Error::Missing {
            option: OptionCode::LqQuery,
            message: msg_type,
        });
    }
    if top.server_id.is_some_and(|id| id.bytes() != server_duid) {
        return Err(Error::WrongServerId);
    }
    let filter = top
        .lq_query
        .map(|q| parse_filter(q, msg_type))
        .transpose()?;
    Ok(Query {
        kind,
        xid: message.xid,
        requestor,
        server_id: top.server_id,
        filter,
        oro: top.oro,
        start_time: top.start_time,
        end_time: top.end_time,
    })
}

/// The top-level options of a query, gathered before the rules are applied.
#[derive(Default)]
struct TopLevel<'a> {
    client_id: Option<Duid<'a>>,
    server_id: Option<Duid<'a>>,
    lq_query: Option<LqQuery<'a>>,
    oro: Option<Oro<'a>>,
    start_time: Option<u32>,
    end_time: Option<u32>,
}

/// Validate OPTION_LQ_QUERY: a known type, its required query-option exactly once, an
/// optional ORO, nothing else known (S-26).
fn parse_filter(query: LqQuery<'_>, message: MessageType) -> Result<Filter<'_>, Error> {
    let query_type = query.query_type;
    if let QueryType::Unknown(code) = query_type {
        return Err(Error::UnknownQueryType { query_type: code });
    }
    let required = query_type.required_option();
    let mut key = None;
    let mut oro = None;
    for opt in query.options {
        if Some(opt.code()) == required {
            if key.is_some() {
                // IAADDR is not a singleton in general, but a query names one address.
                return Err(Error::Duplicate { option: opt.code() });
            }
            key = Some(opt);
            continue;
        }
        match opt {
            Opt::Oro(o) => oro = Some(o),
            Opt::Unknown { .. } => {}
            other => {
                return Err(Error::Forbidden {
                    option: other.code(),
                    message,
                });
            }
        }
    }
    let key = query_key(query_type, key)?;
    Ok(Filter {
        key,
        link_address: query.link_address,
        oro,
    })
}

fn query_key<'a>(query_type: QueryType, key: Option<Opt<'a>>) -> Result<QueryKey<'a>, Error> {
    let missing = |option| Error::MissingQueryOption { query_type, option };
    match (query_type, key) {
        (QueryType::ByLinkAddress, None) => Ok(QueryKey::LinkAddress),
        (QueryType::ByAddress, Some(Opt::IaAddr(a))) => Ok(QueryKey::Address(a.address)),
        (QueryType::ByClientId, Some(Opt::ClientId(d))) => Ok(QueryKey::ClientId(d)),
        (QueryType::ByRelayId, Some(Opt::RelayId(d))) => Ok(QueryKey::RelayId(d)),
        (QueryType::ByRemoteId, Some(Opt::RemoteId(r))) => Ok(QueryKey::RemoteId(r)),
        (QueryType::ByAddress, _) => Err(missing(OptionCode::IaAddr)),
        (QueryType::ByClientId, _) => Err(missing(OptionCode::ClientId)),
        (QueryType::ByRelayId, _) => Err(missing(OptionCode::RelayId)),
        (QueryType::ByRemoteId, _) => Err(missing(OptionCode::RemoteId)),
        (QueryType::ByLinkAddress | QueryType::Unknown(_), Some(_))
        | (QueryType::Unknown(_), None) => {
            unreachable!("link-address queries take no key; unknown types are refused earlier")
        }
    }
}
