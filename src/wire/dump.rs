//! A human-readable tree of a message, for `lq decode`, logs and test failure output.
//!
//! ```text
//! LEASEQUERY-REPLY (15) xid 0xabcdef
//!   option 2 SERVERID duid 0003000100112233445
//!   option 100 LQ_BASE_TIME 849182400
//! ```
//! Times are printed as the wire says them; the caller knows the base time.

use core::fmt;

use super::codes::MessageType;
use super::message::Message;
use super::options::{Opt, OptionList, RelayMessage, RelayMsgBody, Status};

/// The RFC name of a message type.
pub const fn message_name(msg_type: MessageType) -> &'static str {
    match msg_type {
        MessageType::Reply => "REPLY",
        MessageType::RelayForw => "RELAY-FORW",
        MessageType::RelayRepl => "RELAY-REPL",
        MessageType::Leasequery => "LEASEQUERY",
        MessageType::LeasequeryReply => "LEASEQUERY-REPLY",
        MessageType::LeasequeryDone => "LEASEQUERY-DONE",
        MessageType::LeasequeryData => "LEASEQUERY-DATA",
        MessageType::ActiveLeasequery => "ACTIVELEASEQUERY",
        MessageType::StartTls => "STARTTLS",
        MessageType::Unknown(_) => "UNKNOWN",
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = message_name(self.msg_type);
        writeln!(f, "{name} ({}) xid {}", self.msg_type.code(), self.xid)?;
        write_list(f, self.options, 1)
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, list: OptionList<'_>, depth: usize) -> fmt::Result {
    list.iter().try_for_each(|opt| write_opt(f, &opt, depth))
}

fn write_relay(f: &mut fmt::Formatter<'_>, m: &RelayMessage<'_>, depth: usize) -> fmt::Result {
    let pad = depth * 2;
    writeln!(
        f,
        "{:pad$}{} ({}) hop-count {} link-address {} peer-address {}",
        "",
        message_name(m.msg_type),
        m.msg_type.code(),
        m.hop_count,
        m.link_address,
        m.peer_address
    )?;
    write_list(f, m.options, depth + 1)
}

fn write_status(f: &mut fmt::Formatter<'_>, s: &Status<'_>) -> fmt::Result {
    write!(f, "STATUS_CODE {} ({}) \"", s.code.code(), s.code.name())?;
    for chunk in s.message.utf8_chunks() {
        write!(f, "{}", chunk.valid().escape_debug())?;
        chunk
            .invalid()
            .iter()
            .try_for_each(|b| write!(f, "\\x{b:02x}"))?;
    }
    writeln!(f, "\"")
}

fn write_opt(f: &mut fmt::Formatter<'_>, opt: &Opt<'_>, depth: usize) -> fmt::Result {
    let pad = depth * 2;
    let code = opt.code().code();
    write!(f, "{:pad$}option {code} ", "")?;
    match opt {
        Opt::ClientId(d) => writeln!(f, "CLIENTID duid {}", Hex(d.bytes())),
        Opt::ServerId(d) => writeln!(f, "SERVERID duid {}", Hex(d.bytes())),
        Opt::RelayId(d) => writeln!(f, "RELAY_ID duid {}", Hex(d.bytes())),
        Opt::IaAddr(a) => {
            writeln!(
                f,
                "IAADDR {} preferred {} valid {}",
                a.address, a.preferred, a.valid
            )?;
            write_list(f, a.options, depth + 1)
        }
        Opt::IaPrefix(p) => {
            let (prefix, len, pref, valid) = (p.prefix, p.prefix_len, p.preferred, p.valid);
            writeln!(f, "IAPREFIX {prefix}/{len} preferred {pref} valid {valid}")?;
            write_list(f, p.options, depth + 1)
        }
        Opt::Oro(o) => {
            write!(f, "ORO")?;
            o.codes().try_for_each(|c| write!(f, " {c}"))?;
            writeln!(f)
        }
        Opt::Status(s) => write_status(f, s),
        Opt::InterfaceId(data) => writeln!(f, "INTERFACE_ID {}", Hex(data)),
        Opt::RemoteId(r) => {
            writeln!(
                f,
                "REMOTE_ID enterprise {} id {}",
                r.enterprise(),
                Hex(r.id())
            )
        }
        Opt::LqQuery(q) => {
            writeln!(
                f,
                "LQ_QUERY type {} link-address {}",
                q.query_type.code(),
                q.link_address
            )?;
            write_list(f, q.options, depth + 1)
        }
        Opt::ClientData(list) => {
            writeln!(f, "CLIENT_DATA")?;
            write_list(f, *list, depth + 1)
        }
        Opt::CltTime(t) => writeln!(f, "CLT_TIME {t}"),
        Opt::LqRelayData(d) => {
            writeln!(f, "LQ_RELAY_DATA peer-address {}", d.peer_address)?;
            write_relay(f, &d.relay, depth + 1)
        }
        Opt::RelayMsg(RelayMsgBody::Relay(m)) => {
            writeln!(f, "RELAY_MSG")?;
            write_relay(f, m, depth + 1)
        }
        Opt::RelayMsg(RelayMsgBody::Opaque(data)) => writeln!(f, "RELAY_MSG {}", Hex(data)),
        Opt::LqClientLink(data) => writeln!(f, "LQ_CLIENT_LINK {}", Hex(data)),
        Opt::LqBaseTime(t) => writeln!(f, "LQ_BASE_TIME {t}"),
        Opt::LqStartTime(t) => writeln!(f, "LQ_START_TIME {t}"),
        Opt::LqEndTime(t) => writeln!(f, "LQ_END_TIME {t}"),
        Opt::Unknown { data, .. } => writeln!(f, "unknown {}", Hex(data)),
    }
}
