//! The Bulk Leasequery state machine (RFC 5460 §6; protocol.md R-18..R-24, R-27), sans-IO.
//!
//! [`Bulk::encode`] writes the framed LEASEQUERY; each decoded message from the server goes
//! to [`Bulk::on_message`], which returns at most one binding and says when the answer is
//! complete. Bindings are handed out one message at a time, never collected.

use crate::wire::build::{framed, write_query, QueryMessage};
use crate::wire::{Message, MessageType, Opt, OptionCode, OptionList, StatusCode, Xid};

use super::binding::{Binding, Dropped};
use super::spec::QuerySpec;
use super::RequestorError;

/// The top-level ORO of every query: LQ_BASE_TIME.
pub const BASE_TIME_ORO: [OptionCode; 1] = [OptionCode::LqBaseTime];

/// Largest query lq builds: header, CLIENTID, ORO, LQ_QUERY with a DUID or remote-id and
/// its ORO, START and END times, with room to spare.
pub const QUERY_SIZE_MAX: usize = 1024;

/// Where a Bulk query is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Sent; waiting for the LEASEQUERY-REPLY.
    AwaitReply,
    /// REPLY had a binding; DATA until DONE.
    AwaitDone,
    /// Complete.
    Finished,
}

/// What one message did.
#[derive(Debug, Default)]
pub struct Step {
    /// The binding it carried.
    pub binding: Option<Binding>,
    /// LQ_BASE_TIME, when present.
    pub base_time: Option<u32>,
    /// The answer is complete.
    pub finished: bool,
    /// The message was discarded, and why; the query goes on.
    pub discarded: Option<&'static str>,
}

/// One Bulk query on one connection.
#[derive(Debug)]
pub struct Bulk {
    xid: Xid,
    requestor: Vec<u8>,
    spec: QuerySpec,
    start_time: Option<u32>,
    end_time: Option<u32>,
    state: State,
    server_id: Option<Vec<u8>>,
    bindings: u64,
}

/// The status in an option list: code and message (absent = Success, RFC 8415 §21.13).
pub(crate) fn status_of(options: &OptionList<'_>) -> (StatusCode, String) {
    match options.find(OptionCode::StatusCode) {
        Some(Opt::Status(s)) => (s.code, String::from_utf8_lossy(s.message).into_owned()),
        _ => (StatusCode::Success, String::new()),
    }
}

/// LQ_BASE_TIME in an option list.
pub(crate) fn base_time_of(options: &OptionList<'_>) -> Option<u32> {
    match options.find(OptionCode::LqBaseTime) {
        Some(Opt::LqBaseTime(t)) => Some(t),
        _ => None,
    }
}

/// The binding of a message's CLIENT_DATA: `Ok(None)` when it has none or it is dropped.
pub(crate) fn binding_of(
    options: &OptionList<'_>,
    base_time: Option<u32>,
) -> Result<Option<Result<Binding, Dropped>>, RequestorError> {
    match options.find(OptionCode::ClientData) {
        Some(Opt::ClientData(inner)) => Binding::decode(inner, base_time)
            .map(Some)
            .map_err(|_| RequestorError::Protocol("a CLIENT_DATA with too many leases".into())),
        _ => Ok(None),
    }
}

/// a REPLY must carry SERVERID and echo our CLIENTID; returns the server's DUID, or
/// why the REPLY must be discarded.
pub(crate) fn check_reply_ids(
    options: &OptionList<'_>,
    requestor: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let Some(Opt::ServerId(server)) = options.find(OptionCode::ServerId) else {
        return Err("LEASEQUERY-REPLY without SERVERID (R-27)");
    };
    match options.find(OptionCode::ClientId) {
        Some(Opt::ClientId(c)) if c.bytes() == requestor => Ok(server.bytes().to_vec()),
        Some(Opt::ClientId(_)) => Err("LEASEQUERY-REPLY for another requestor's CLIENTID (R-27)"),
        _ => Err("LEASEQUERY-REPLY without CLIENTID (R-27)"),
    }
}

impl Bulk {
    /// A query `spec` from the requestor DUID `requestor`, with optional START/END times
    /// (7653 §5, R-6, R-7) and transaction-id `xid`.
    pub fn new(
        xid: Xid,
        requestor: &[u8],
        spec: QuerySpec,
        start_time: Option<u32>,
        end_time: Option<u32>,
    ) -> Self {
        Self {
            xid,
            requestor: requestor.to_vec(),
            spec,
            start_time,
            end_time,
            state: State::AwaitReply,
            server_id: None,
            bindings: 0,
        }
    }

    /// Write the framed LEASEQUERY into `buf`; returns its length. It carries our CLIENTID
    /// ORO [LQ_BASE_TIME], the LQ_QUERY with its required option and the
    /// optional START/END times.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, RequestorError> {
        let mut remote_id = Vec::new();
        let query = QueryMessage {
            msg_type: MessageType::Leasequery,
            xid: self.xid,
            client_id: &self.requestor,
            lq_query: Some(self.spec.lq_query(&mut remote_id)),
            oro: &BASE_TIME_ORO,
            start_time: self.start_time,
            end_time: self.end_time,
        };
        framed(buf, |w| write_query(w, &query))
            .map_err(|e| RequestorError::Query(format!("query does not fit: {e}")))
    }

    /// The transaction-id.
    pub const fn xid(&self) -> Xid {
        self.xid
    }

    /// True once the answer is complete.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The server's DUID, once the REPLY arrived.
    pub fn server_id(&self) -> Option<&[u8]> {
        self.server_id.as_deref()
    }

    /// Bindings received so far.
    pub const fn bindings(&self) -> u64 {
        self.bindings
    }

    /// What the connection closing now means: fine when finished, else the answer is
    /// incomplete (R-23 counts a close as the end; lq reports it, since a mirror must not
    /// take a cut answer for a whole one).
    pub fn on_closed(&self) -> Result<(), RequestorError> {
        match self.state {
            State::Finished => Ok(()),
            State::AwaitReply => Err(RequestorError::Closed {
                waiting_for: "the LEASEQUERY-REPLY",
            }),
            State::AwaitDone => Err(RequestorError::Closed {
                waiting_for: "LEASEQUERY-DONE (the answer may be incomplete)",
            }),
        }
    }

    /// Process one message from the server.
    pub fn on_message(&mut self, message: &Message<'_>) -> Result<Step, RequestorError> {
        let mut step = Step {
            base_time: base_time_of(&message.options),
            ..Step::default()
        };
        if self.state == State::Finished {
            return Err(RequestorError::Protocol(format!(
                "{:?} after the answer was complete",
                message.msg_type
            )));
        }
        match message.msg_type {
            MessageType::Leasequery | MessageType::ActiveLeasequery => {
                step.discarded = Some("a query sent to the requestor (R-27)");
            }
            MessageType::LeasequeryReply => self.on_reply(message, &mut step)?,
            MessageType::LeasequeryData => self.on_data(message, &mut step)?,
            MessageType::LeasequeryDone => self.on_done(message, &mut step)?,
            other => {
                return Err(RequestorError::Protocol(format!(
                    "unexpected message {other:?} on a leasequery connection"
                )))
            }
        }
        step.finished = self.state == State::Finished;
        Ok(step)
    }

    fn take_binding(
        &mut self,
        options: &OptionList<'_>,
        step: &mut Step,
    ) -> Result<bool, RequestorError> {
        if options.find(OptionCode::LqClientLink).is_some() {
            return Err(RequestorError::Protocol(
                "OPTION_LQ_CLIENT_LINK in a Bulk reply (R-21)".into(),
            ));
        }
        match binding_of(options, step.base_time)? {
            Some(Ok(binding)) => {
                self.bindings += 1;
                step.binding = Some(binding);
                Ok(true)
            }
            Some(Err(Dropped::NoCltTime)) => {
                step.discarded = Some("CLIENT_DATA without CLT_TIME (R-19)");
                Ok(true)
            }
            Some(Err(Dropped::NoClientId)) => {
                step.discarded = Some("CLIENT_DATA without CLIENTID");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn on_reply(&mut self, message: &Message<'_>, step: &mut Step) -> Result<(), RequestorError> {
        if message.xid != self.xid {
            step.discarded = Some("LEASEQUERY-REPLY with another transaction-id (R-27)");
            return Ok(());
        }
        let server = match check_reply_ids(&message.options, &self.requestor) {
            Ok(server) => server,
            Err(why) => {
                step.discarded = Some(why);
                return Ok(());
            }
        };
        if self.state != State::AwaitReply {
            return Err(RequestorError::Protocol(
                "a second LEASEQUERY-REPLY for one query (S-38)".into(),
            ));
        }
        self.server_id = Some(server);
        let (code, text) = status_of(&message.options);
        if code != StatusCode::Success {
            self.state = State::Finished;
            return Err(RequestorError::Status {
                code,
                message: text,
                after_data: false,
            });
        }
        // a REPLY without CLIENT_DATA means no binding matched; no DONE follows.
        let has_data = self.take_binding(&message.options, step)?;
        self.state = if has_data {
            State::AwaitDone
        } else {
            State::Finished
        };
        Ok(())
    }

    fn on_data(&mut self, message: &Message<'_>, step: &mut Step) -> Result<(), RequestorError> {
        if message.xid != self.xid {
            step.discarded = Some("LEASEQUERY-DATA with another transaction-id (R-27)");
            return Ok(());
        }
        if self.state != State::AwaitDone {
            return Err(RequestorError::Protocol(
                "LEASEQUERY-DATA before a LEASEQUERY-REPLY with data (S-42)".into(),
            ));
        }
        if !self.take_binding(&message.options, step)? {
            // R-21, D-5: in Bulk a DATA without CLIENT_DATA is discarded.
            step.discarded = Some("LEASEQUERY-DATA without CLIENT_DATA (R-21)");
        }
        Ok(())
    }

    fn on_done(&mut self, message: &Message<'_>, step: &mut Step) -> Result<(), RequestorError> {
        if message.xid != self.xid {
            // a DONE for no outstanding query closes the connection.
            return Err(RequestorError::Protocol(format!(
                "LEASEQUERY-DONE with transaction-id {} for no outstanding query (R-22)",
                message.xid
            )));
        }
        if self.state == State::AwaitReply {
            return Err(RequestorError::Protocol(
                "LEASEQUERY-DONE before the LEASEQUERY-REPLY".into(),
            ));
        }
        let _ = step;
        self.state = State::Finished;
        let (code, text) = status_of(&message.options);
        if code != StatusCode::Success {
            return Err(RequestorError::Status {
                code,
                message: text,
                after_data: true,
            });
        }
        Ok(())
    }
}
