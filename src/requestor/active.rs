//! The Active Leasequery state machine (RFC 7653 §8; protocol.md R-1..R-3, R-14, R-18,
//! R-27..R-32, D-5..D-7), sans-IO.
//!
//! Base-time bookkeeping: [`Output::checkpoint`] is the LQ_BASE_TIME that may be saved for
//! a later LQ_START_TIME. It is never set during catch-up: catch-up is not in
//! change order. Catch-up ends at DATA CatchUpComplete, or at DataMissing in the REPLY or in
//! a DATA. After DataMissing the gap is filled by a Bulk recovery; until
//! [`Active::recovery_done`] is called no checkpoint is given either, so that a restart
//! repeats the recovery instead of skipping the gap. If the connection dies first, the
//! caller reconnects with the checkpoint of the previous connection.

use crate::wire::build::{framed, write_query, LqQueryOut, QueryMessage};
use crate::wire::{Message, MessageType, OptionCode, StatusCode, Xid};

use super::binding::{Binding, Dropped};
use super::bulk::{base_time_of, binding_of, check_reply_ids, status_of, BASE_TIME_ORO};
use super::spec::QuerySpec;
use super::time;
use super::RequestorError;

/// Where an Active query is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Sent; waiting for the LEASEQUERY-REPLY.
    AwaitReply,
    /// Catch-up running (LQ_START_TIME was sent and accepted).
    CatchUp,
    /// Real time.
    Live,
}

/// What a message meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The REPLY accepted the query (D-7: without CLIENT_DATA it does not end it).
    Started {
        /// The server's DUID.
        server_id: Vec<u8>,
        /// A catch-up follows (START_TIME sent, no DataMissing).
        catch_up: bool,
        /// The first binding, when the REPLY carried one (S-40).
        first: Option<Binding>,
    },
    /// A binding changed (or, during catch-up, its state since START_TIME).
    Binding {
        /// The binding.
        binding: Binding,
        /// It arrived during catch-up (not necessarily in change order, R-29).
        catch_up: bool,
    },
    /// DATA CatchUpComplete (13): catch-up is over.
    CatchUpComplete,
    /// DataMissing (12): the server's history does not reach START_TIME; catch-up is over.
    /// A requestor wanting a complete copy runs a Bulk query over `[start_time, end_time]`
    ///
    DataMissing {
        /// The LQ_START_TIME that was sent.
        start_time: u32,
        /// The BASE_TIME of the DataMissing message (the server's "now").
        end_time: u32,
    },
    /// A keepalive: DATA without CLIENT_DATA or status (D-5).
    Keepalive,
    /// A message that was discarded, and why.
    Discarded(&'static str),
}

/// The result of one message.
#[derive(Debug, PartialEq, Eq)]
pub struct Output {
    /// What happened.
    pub event: Event,
    /// LQ_BASE_TIME of the message, when present (D-12: accepted even if not asked for).
    pub base_time: Option<u32>,
    /// The base time that may be saved now.
    pub checkpoint: Option<u32>,
}

/// One Active query on its own connection.
#[derive(Debug)]
pub struct Active {
    xid: Xid,
    requestor: Vec<u8>,
    filter: Option<QuerySpec>,
    start_time: Option<u32>,
    phase: Phase,
    server_id: Option<Vec<u8>>,
    /// Highest BASE_TIME seen outside catch-up.
    latest: Option<u32>,
    /// A DataMissing gap is being recovered: no checkpoint until it is done.
    recovering: bool,
}

impl Active {
    /// A query from `requestor` for all bindings (`filter` `None`, R-2) or a subset, with
    /// LQ_START_TIME `start_time` (the last saved base time, R-6, R-30; `None`: no catch-up,
    ///
    pub fn new(
        xid: Xid,
        requestor: &[u8],
        filter: Option<QuerySpec>,
        start_time: Option<u32>,
    ) -> Self {
        Self {
            xid,
            requestor: requestor.to_vec(),
            filter,
            start_time,
            phase: Phase::AwaitReply,
            server_id: None,
            latest: None,
            recovering: false,
        }
    }

    /// Write the framed ACTIVELEASEQUERY: CLIENTID (R-3, D-2), ORO [LQ_BASE_TIME] (R-9,
    /// D-1), LQ_QUERY only for a subset, LQ_START_TIME if any, never LQ_END_TIME.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, RequestorError> {
        let mut remote_id = Vec::new();
        let lq_query: Option<LqQueryOut<'_>> =
            self.filter.as_ref().map(|f| f.lq_query(&mut remote_id));
        let query = QueryMessage {
            msg_type: MessageType::ActiveLeasequery,
            xid: self.xid,
            client_id: &self.requestor,
            lq_query,
            oro: &BASE_TIME_ORO,
            start_time: self.start_time,
            end_time: None,
        };
        framed(buf, |w| write_query(w, &query))
            .map_err(|e| RequestorError::Query(format!("query does not fit: {e}")))
    }

    /// The phase.
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// The server's DUID, once the REPLY arrived.
    pub fn server_id(&self) -> Option<&[u8]> {
        self.server_id.as_deref()
    }

    /// True while a DataMissing gap awaits its Bulk recovery.
    pub const fn is_recovering(&self) -> bool {
        self.recovering
    }

    /// The Bulk recovery of R-32 finished: returns the base time that may now be saved
    /// (the highest seen on this connection since catch-up ended).
    pub fn recovery_done(&mut self) -> Option<u32> {
        self.recovering = false;
        self.latest
    }

    fn live_base(&mut self, base_time: Option<u32>) -> Option<u32> {
        let base = base_time?;
        let latest = self.latest.map_or(base, |l| time::later(l, base));
        self.latest = Some(latest);
        (!self.recovering).then_some(latest)
    }

    /// Process one message from the server (R-14: many replies share the xid).
    pub fn on_message(&mut self, message: &Message<'_>) -> Result<Output, RequestorError> {
        let base_time = base_time_of(&message.options);
        let event = match message.msg_type {
            MessageType::Leasequery | MessageType::ActiveLeasequery => {
                Event::Discarded("a query sent to the requestor (R-27)")
            }
            _ if message.xid != self.xid => {
                if message.msg_type == MessageType::LeasequeryDone {
                    return Err(RequestorError::Protocol(format!(
                        "LEASEQUERY-DONE with transaction-id {} for no outstanding query (R-22)",
                        message.xid
                    )));
                }
                Event::Discarded("a reply with another transaction-id (R-27)")
            }
            MessageType::LeasequeryReply => self.on_reply(message, base_time)?,
            MessageType::LeasequeryData => self.on_data(message, base_time)?,
            MessageType::LeasequeryDone => {
                // The server ended the query (S-59): QueryTerminated or an error status.
                let (code, text) = status_of(&message.options);
                let code = if code == StatusCode::Success {
                    StatusCode::QueryTerminated
                } else {
                    code
                };
                return Err(RequestorError::Status {
                    code,
                    message: text,
                    after_data: true,
                });
            }
            other => {
                return Err(RequestorError::Protocol(format!(
                    "unexpected message {other:?} on a leasequery connection"
                )))
            }
        };
        let checkpoint = match (&event, self.phase) {
            (Event::Discarded(_), _) | (_, Phase::AwaitReply | Phase::CatchUp) => {
                // nothing from catch-up is saved.
                None
            }
            (_, Phase::Live) => self.live_base(base_time),
        };
        Ok(Output {
            event,
            base_time,
            checkpoint,
        })
    }

    fn on_reply(
        &mut self,
        message: &Message<'_>,
        base_time: Option<u32>,
    ) -> Result<Event, RequestorError> {
        let server_id = match check_reply_ids(&message.options, &self.requestor) {
            Ok(s) => s,
            Err(why) => return Ok(Event::Discarded(why)),
        };
        if self.phase != Phase::AwaitReply {
            return Err(RequestorError::Protocol(
                "a second LEASEQUERY-REPLY for one Active query (S-38)".into(),
            ));
        }
        self.server_id = Some(server_id.clone());
        let (code, text) = status_of(&message.options);
        match code {
            StatusCode::Success => {
                let catch_up = self.start_time.is_some();
                self.phase = if catch_up {
                    Phase::CatchUp
                } else {
                    Phase::Live
                };
                // A REPLY may carry the first binding (S-40); one without CLIENT_DATA starts
                // the stream and does not end the query (D-7). A CLIENT_DATA to drop
                // is dropped silently.
                let first = match binding_of(&message.options, base_time)? {
                    Some(Ok(binding)) => Some(binding),
                    Some(Err(_)) | None => None,
                };
                Ok(Event::Started {
                    server_id,
                    catch_up,
                    first,
                })
            }
            StatusCode::DataMissing => {
                // S-54: history does not reach START_TIME; the stream goes on.
                self.phase = Phase::Live;
                self.data_missing(base_time)
            }
            _ => Err(RequestorError::Status {
                code,
                message: text,
                after_data: false,
            }),
        }
    }

    fn data_missing(&mut self, base_time: Option<u32>) -> Result<Event, RequestorError> {
        let Some(start_time) = self.start_time else {
            return Err(RequestorError::Protocol(
                "DataMissing for a query without LQ_START_TIME".into(),
            ));
        };
        // Without BASE_TIME (it was asked for, R-9) the window ends at the last one seen.
        let end_time = base_time.or(self.latest).unwrap_or(start_time);
        self.recovering = true;
        Ok(Event::DataMissing {
            start_time,
            end_time,
        })
    }

    fn on_data(
        &mut self,
        message: &Message<'_>,
        base_time: Option<u32>,
    ) -> Result<Event, RequestorError> {
        if self.phase == Phase::AwaitReply {
            return Err(RequestorError::Protocol(
                "LEASEQUERY-DATA before the LEASEQUERY-REPLY (S-42)".into(),
            ));
        }
        let (code, _) = status_of(&message.options);
        match code {
            StatusCode::CatchUpComplete => {
                self.phase = Phase::Live;
                return Ok(Event::CatchUpComplete);
            }
            StatusCode::DataMissing => {
                self.phase = Phase::Live;
                return self.data_missing(base_time);
            }
            _ => {}
        }
        if message.options.find(OptionCode::LqClientLink).is_some() {
            return Err(RequestorError::Protocol(
                "OPTION_LQ_CLIENT_LINK in an Active reply (S-37)".into(),
            ));
        }
        Ok(match binding_of(&message.options, base_time)? {
            Some(Ok(binding)) => Event::Binding {
                binding,
                catch_up: self.phase == Phase::CatchUp,
            },
            Some(Err(Dropped::NoCltTime)) => {
                Event::Discarded("CLIENT_DATA without CLT_TIME (R-19)")
            }
            Some(Err(Dropped::NoClientId)) => Event::Discarded("CLIENT_DATA without CLIENTID"),
            // D-5: a keepalive: the caller resets its receive timer.
            None => Event::Keepalive,
        })
    }
}
