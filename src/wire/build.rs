//! Message builders: server answers (protocol.md §2.5, §2.6) and requestor queries.
//!
//! Each builder writes one unframed message into a [`Writer`]; [`framed`] wraps any of them in
//! the 2-octet message-size of TCP framing. Options are written in one fixed order: SERVERID,
//! CLIENTID, STATUS_CODE, LQ_BASE_TIME, CLIENT_DATA (the order of the worked examples of
//! protocol.md §2.7–§2.9). Nothing allocates.

use core::net::Ipv6Addr;

use super::codes::{MessageType, OptionCode, QueryType, StatusCode};
use super::error::EncodeError;
use super::message::{write_header, Xid};
use super::writer::Writer;

/// A status to put in OPTION_STATUS_CODE: code and UTF-8 message.
pub type StatusOut<'s> = (StatusCode, &'s str);

/// Write one OPTION_STATUS_CODE.
pub fn write_status(w: &mut Writer<'_>, status: StatusOut<'_>) -> Result<(), EncodeError> {
    let mark = w.begin(OptionCode::StatusCode)?;
    w.u16(status.0.code())?;
    w.put(status.1.as_bytes())?;
    w.end(mark)
}

/// Write an ORO listing `codes`.
pub fn write_oro(w: &mut Writer<'_>, codes: &[OptionCode]) -> Result<(), EncodeError> {
    let mark = w.begin(OptionCode::Oro)?;
    for code in codes {
        w.u16(code.code())?;
    }
    w.end(mark)
}

/// Write `build`'s message framed for TCP into `buf`; returns the frame's length, prefix
/// included (RFC 5460 §5.1).
pub fn framed(
    buf: &mut [u8],
    build: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    let mark = w.begin_frame()?;
    build(&mut w)?;
    w.end(mark)?;
    Ok(w.len())
}

/// What a LEASEQUERY-REPLY carries (S-38, 5460 §5.2).
#[derive(Clone, Copy, Debug)]
pub struct Reply<'b> {
    /// The query's transaction-id.
    pub xid: Xid,
    /// Our DUID.
    pub server_id: &'b [u8],
    /// The requestor's DUID, echoed; absent only when the query had none (D-2).
    pub client_id: Option<&'b [u8]>,
    /// A status; `None` means Success.
    pub status: Option<StatusOut<'b>>,
    /// LQ_BASE_TIME, when the query asked for it (S-49).
    pub base_time: Option<u32>,
    /// The first binding: a complete encoded OPTION_CLIENT_DATA (S-40).
    pub client_data: Option<&'b [u8]>,
}

/// Write a LEASEQUERY-REPLY (15).
pub fn write_reply(w: &mut Writer<'_>, reply: &Reply<'_>) -> Result<(), EncodeError> {
    write_header(w, MessageType::LeasequeryReply, reply.xid)?;
    w.option(OptionCode::ServerId, reply.server_id)?;
    if let Some(client_id) = reply.client_id {
        w.option(OptionCode::ClientId, client_id)?;
    }
    write_tail(w, reply.status, reply.base_time, reply.client_data)
}

/// STATUS_CODE, LQ_BASE_TIME and CLIENT_DATA, each when present, in that order.
fn write_tail(
    w: &mut Writer<'_>,
    status: Option<StatusOut<'_>>,
    base_time: Option<u32>,
    client_data: Option<&[u8]>,
) -> Result<(), EncodeError> {
    if let Some(status) = status {
        write_status(w, status)?;
    }
    if let Some(base_time) = base_time {
        w.option_u32(OptionCode::LqBaseTime, base_time)?;
    }
    if let Some(client_data) = client_data {
        debug_assert_eq!(client_data.get(..2), Some(&45u16.to_be_bytes()[..]));
        w.put(client_data)?;
    }
    Ok(())
}

/// Write a LEASEQUERY-DATA (17): one binding, a status (CatchUpComplete, DataMissing; D-6),
/// or neither (a keepalive, S-58).
pub fn write_data(
    w: &mut Writer<'_>,
    xid: Xid,
    status: Option<StatusOut<'_>>,
    base_time: Option<u32>,
    client_data: Option<&[u8]>,
) -> Result<(), EncodeError> {
    write_header(w, MessageType::LeasequeryData, xid)?;
    write_tail(w, status, base_time, client_data)
}

/// Write a LEASEQUERY-DONE (16) (S-43, S-59).
pub fn write_done(
    w: &mut Writer<'_>,
    xid: Xid,
    status: Option<StatusOut<'_>>,
    base_time: Option<u32>,
) -> Result<(), EncodeError> {
    write_header(w, MessageType::LeasequeryDone, xid)?;
    write_tail(w, status, base_time, None)
}

/// Write the REPLY (7) to STARTTLS: no status to go ahead (S-16), or TLSConnectionRefused
/// (S-17). lqd puts its SERVERID in it (protocol.md §2.5).
pub fn write_starttls_reply(
    w: &mut Writer<'_>,
    xid: Xid,
    server_id: &[u8],
    refused: bool,
) -> Result<(), EncodeError> {
    write_header(w, MessageType::Reply, xid)?;
    w.option(OptionCode::ServerId, server_id)?;
    if refused {
        write_status(w, (StatusCode::TlsConnectionRefused, ""))?;
    }
    Ok(())
}

/// Longest per-connection prefix of a framed LEASEQUERY-DATA: message-size (2), header (4)
/// and LQ_BASE_TIME (8).
pub const DATA_PREFIX_MAX: usize = 2 + 4 + 8;

/// Write the per-connection prefix of a framed LEASEQUERY-DATA whose CLIENT_DATA (a shared
/// body of `body_len` octets) follows in the same `sendmsg` (architecture.md, "Fan-out").
/// Returns the prefix length.
pub fn write_data_prefix(
    out: &mut [u8; DATA_PREFIX_MAX],
    xid: Xid,
    base_time: Option<u32>,
    body_len: usize,
) -> Result<usize, EncodeError> {
    let prefix_len = if base_time.is_some() {
        DATA_PREFIX_MAX
    } else {
        DATA_PREFIX_MAX - 8
    };
    let size = u16::try_from(prefix_len - 2 + body_len).map_err(|_| EncodeError::TooLong)?;
    let mut w = Writer::new(out);
    w.u16(size)?;
    write_header(&mut w, MessageType::LeasequeryData, xid)?;
    if let Some(base_time) = base_time {
        w.option_u32(OptionCode::LqBaseTime, base_time)?;
    }
    assert_eq!(w.len(), prefix_len);
    Ok(prefix_len)
}

/// The selection of a query being built (requestor side, R-2..R-4).
#[derive(Clone, Copy, Debug)]
pub enum QueryOut<'b> {
    /// QUERY_BY_ADDRESS.
    Address(Ipv6Addr),
    /// QUERY_BY_CLIENTID: the target client's DUID.
    ClientId(&'b [u8]),
    /// QUERY_BY_RELAY_ID: the relay's DUID.
    RelayId(&'b [u8]),
    /// QUERY_BY_LINK_ADDRESS (`::` = all bindings, D-3).
    LinkAddress,
    /// QUERY_BY_REMOTE_ID: enterprise number and remote-id, as option data.
    RemoteId(&'b [u8]),
}

/// An OPTION_LQ_QUERY to write.
#[derive(Clone, Copy, Debug)]
pub struct LqQueryOut<'b> {
    /// The selection.
    pub query: QueryOut<'b>,
    /// The link-address (`::` = unspecified).
    pub link_address: Ipv6Addr,
    /// Codes for the ORO inside the query-options (e.g. 47); empty = no ORO.
    pub oro: &'b [OptionCode],
}

/// Write OPTION_LQ_QUERY.
pub fn write_lq_query(w: &mut Writer<'_>, query: &LqQueryOut<'_>) -> Result<(), EncodeError> {
    let mark = w.begin(OptionCode::LqQuery)?;
    let query_type = match query.query {
        QueryOut::Address(_) => QueryType::ByAddress,
        QueryOut::ClientId(_) => QueryType::ByClientId,
        QueryOut::RelayId(_) => QueryType::ByRelayId,
        QueryOut::LinkAddress => QueryType::ByLinkAddress,
        QueryOut::RemoteId(_) => QueryType::ByRemoteId,
    };
    w.u8(query_type.code())?;
    w.put(&query.link_address.octets())?;
    match query.query {
        QueryOut::Address(address) => {
            // Lifetimes in a query are meaningless; send 0 (protocol.md §2.4).
            let ia = w.begin(OptionCode::IaAddr)?;
            w.put(&address.octets())?;
            w.u32(0)?;
            w.u32(0)?;
            w.end(ia)?;
        }
        QueryOut::ClientId(duid) => w.option(OptionCode::ClientId, duid)?,
        QueryOut::RelayId(duid) => w.option(OptionCode::RelayId, duid)?,
        QueryOut::RemoteId(id) => w.option(OptionCode::RemoteId, id)?,
        QueryOut::LinkAddress => {}
    }
    if !query.oro.is_empty() {
        write_oro(w, query.oro)?;
    }
    w.end(mark)
}

/// What a LEASEQUERY or ACTIVELEASEQUERY carries.
#[derive(Clone, Copy, Debug)]
pub struct QueryMessage<'b> {
    /// LEASEQUERY (14) or ACTIVELEASEQUERY (22).
    pub msg_type: MessageType,
    /// Transaction-id, unique on the connection.
    pub xid: Xid,
    /// The requestor's DUID.
    pub client_id: &'b [u8],
    /// OPTION_LQ_QUERY; `None` = all bindings (Active only, R-2).
    pub lq_query: Option<LqQueryOut<'b>>,
    /// Codes for the top-level ORO (R-9: include LQ_BASE_TIME); empty = no ORO.
    pub oro: &'b [OptionCode],
    /// LQ_START_TIME.
    pub start_time: Option<u32>,
    /// LQ_END_TIME, Bulk only.
    pub end_time: Option<u32>,
}

/// Write a LEASEQUERY or ACTIVELEASEQUERY. Order: CLIENTID, ORO, LQ_QUERY, START, END
/// (protocol.md §2.8, §2.9).
pub fn write_query(w: &mut Writer<'_>, query: &QueryMessage<'_>) -> Result<(), EncodeError> {
    assert!(matches!(
        query.msg_type,
        MessageType::Leasequery | MessageType::ActiveLeasequery
    ));
    write_header(w, query.msg_type, query.xid)?;
    w.option(OptionCode::ClientId, query.client_id)?;
    if !query.oro.is_empty() {
        write_oro(w, query.oro)?;
    }
    if let Some(lq_query) = &query.lq_query {
        write_lq_query(w, lq_query)?;
    }
    if let Some(start_time) = query.start_time {
        w.option_u32(OptionCode::LqStartTime, start_time)?;
    }
    if let Some(end_time) = query.end_time {
        w.option_u32(OptionCode::LqEndTime, end_time)?;
    }
    Ok(())
}

/// Write a STARTTLS (23): header only.
pub fn write_starttls(w: &mut Writer<'_>, xid: Xid) -> Result<(), EncodeError> {
    write_header(w, MessageType::StartTls, xid)
}
