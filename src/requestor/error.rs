//! Typed requestor errors, each with a message an operator can act on (issue 6, item 4).

use core::fmt;
use std::io;

use crate::wire::{self, StatusCode};

/// Why a query or connection failed.
#[derive(Debug)]
pub enum RequestorError {
    /// The TCP connection could not be made (refused, unreachable, timed out).
    Connect {
        /// The server address.
        server: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    Io {
        /// What was being done.
        during: &'static str,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The server closed the connection.
    Closed {
        /// What the requestor was waiting for.
        waiting_for: &'static str,
    },
    /// Nothing arrived for the receive timeout.
    ReceiveTimeout {
        /// The timeout, seconds.
        timeout_s: u64,
    },
    /// The query could not be sent within BULK_LQ_DATA_TIMEOUT.
    SendTimeout {
        /// The timeout, seconds.
        timeout_s: u64,
    },
    /// The byte stream lost its TCP framing (RFC 5460 §5.1): the connection is unusable.
    Framing(wire::Error),
    /// A framed message failed to decode (the parser rejects, it never skips: style.md S12).
    Malformed(wire::Error),
    /// The server answered with an error status.
    Status {
        /// The status code.
        code: StatusCode,
        /// The status message the server sent.
        message: String,
        /// True when it came in LEASEQUERY-DONE, after some bindings (S-39).
        after_data: bool,
    },
    /// The server broke a protocol rule (R-21, R-22, ordering).
    Protocol(String),
    /// The sink (SQLite database, standard output) failed.
    Sink(String),
    /// The query itself cannot be built (bad arguments).
    Query(String),
}

impl RequestorError {
    /// True when retrying the same server later may succeed: connection trouble and
    /// QueryTerminated; false for answers that retrying cannot change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Io { .. }
            | Self::Closed { .. }
            | Self::ReceiveTimeout { .. }
            | Self::SendTimeout { .. }
            | Self::Framing(_)
            | Self::Malformed(_)
            | Self::Protocol(_) => true,
            Self::Status { code, .. } => {
                matches!(code, StatusCode::QueryTerminated | StatusCode::UnspecFail)
            }
            Self::Sink(_) | Self::Query(_) => false,
        }
    }
}

/// What R-18 (RFC 5007 §4.3.3) advises for a status.
fn advice(code: StatusCode) -> &'static str {
    match code {
        StatusCode::NotAllowed => "this requestor may not make this query here; try another server",
        StatusCode::NotConfigured => "the server does not serve that link; try another server",
        StatusCode::UnknownQueryType => "the server does not know this query type",
        StatusCode::MalformedQuery => "the server found the query malformed; fix the query",
        StatusCode::NotSupported => "the server does not support Active Leasequery",
        StatusCode::QueryTerminated => "the server ended the query; retry later",
        StatusCode::TlsConnectionRefused => "the server refused TLS",
        _ => "giving up",
    }
}

impl fmt::Display for RequestorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { server, source } => {
                if source.kind() == io::ErrorKind::ConnectionRefused {
                    write!(
                        f,
                        "connection refused by {server}: no leasequery server listens there"
                    )
                } else {
                    write!(f, "cannot connect to {server}: {source}")
                }
            }
            Self::Io { during, source } => write!(f, "connection failed while {during}: {source}"),
            Self::Closed { waiting_for } => {
                write!(
                    f,
                    "the server closed the connection while lq waited for {waiting_for}"
                )
            }
            Self::ReceiveTimeout { timeout_s } => write!(
                f,
                "receive timeout: nothing from the server for {timeout_s} s (R-15, R-17)"
            ),
            Self::SendTimeout { timeout_s } => {
                write!(
                    f,
                    "send timeout: the query was not taken within {timeout_s} s (R-16)"
                )
            }
            Self::Framing(e) => write!(f, "framing error, the stream is unusable: {e}"),
            Self::Malformed(e) => write!(f, "malformed message from the server: {e}"),
            Self::Status {
                code,
                message,
                after_data,
            } => {
                let place = if *after_data {
                    "LEASEQUERY-DONE (the answer is incomplete)"
                } else {
                    "LEASEQUERY-REPLY"
                };
                write!(
                    f,
                    "server answered {} ({}) in {place}",
                    code.name(),
                    code.code()
                )?;
                if !message.is_empty() {
                    write!(f, ": \"{message}\"")?;
                }
                write!(f, "; {}", advice(*code))
            }
            Self::Protocol(what) => write!(f, "protocol error from the server: {what}"),
            Self::Sink(what) => write!(f, "output failed: {what}"),
            Self::Query(what) => write!(f, "bad query: {what}"),
        }
    }
}

impl std::error::Error for RequestorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect { source, .. } | Self::Io { source, .. } => Some(source),
            Self::Framing(e) | Self::Malformed(e) => Some(e),
            _ => None,
        }
    }
}
