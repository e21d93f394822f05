//! A blocking TCP connection to a leasequery server: the thin I/O shell under the sans-IO
//! state machines. Framing (RFC 5460 §5.1) by [`FrameDecoder`], whose buffer bounds a
//! message; reads wait at most a slice of the receive timeout so the caller can do other
//! work (drain a recovery) between them.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::wire::{FrameDecoder, Message};

use super::RequestorError;

/// ACTIVE_LQ_RCV_TIMEOUT (RFC 7653 §6.4): 120 s.
pub const ACTIVE_LQ_RCV_TIMEOUT: Duration = Duration::from_secs(120);
/// BULK_LQ_DATA_TIMEOUT (RFC 5460 §5.6): 300 s.
pub const BULK_LQ_DATA_TIMEOUT: Duration = Duration::from_secs(300);
/// ACTIVE_LQ_IDLE_TIMEOUT (RFC 7653 §6.4): 60 s, the minimum retry spacing.
pub const ACTIVE_LQ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The leasequery TCP port.
pub const PORT: u16 = 547;

/// Resolve `server`: `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address;
/// the port defaults to 547.
pub fn resolve(server: &str) -> Result<SocketAddr, RequestorError> {
    let bad = |why: String| RequestorError::Query(format!("server {server:?}: {why}"));
    if let Ok(v6) = server.parse::<core::net::Ipv6Addr>() {
        return Ok(SocketAddr::from((v6, PORT)));
    }
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let with_port = if server.ends_with(']') || !server.contains(':') {
        format!("{server}:{PORT}")
    } else {
        server.to_owned()
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address".into()))
}

/// What one bounded wait produced.
#[derive(Debug)]
pub enum Received<'a> {
    /// A whole, validated message.
    Message(Message<'a>),
    /// Nothing within the wait.
    Nothing,
    /// The server closed the connection.
    Closed,
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    decoder: FrameDecoder,
    /// The message being handed out.
    current: Vec<u8>,
    server: SocketAddr,
}

impl Conn {
    /// Connect within `timeout`; messages larger than `message_size_max` are a framing error.
    pub fn connect(
        server: SocketAddr,
        timeout: Duration,
        message_size_max: u16,
    ) -> Result<Self, RequestorError> {
        let stream = TcpStream::connect_timeout(&server, timeout).map_err(|source| {
            RequestorError::Connect {
                server: server.to_string(),
                source,
            }
        })?;
        stream
            .set_nodelay(true)
            .map_err(|source| RequestorError::Io {
                during: "setting TCP_NODELAY",
                source,
            })?;
        Ok(Self {
            stream,
            decoder: FrameDecoder::new(message_size_max.max(4)),
            current: Vec::with_capacity(usize::from(message_size_max)),
            server,
        })
    }

    /// The server's address.
    pub const fn server(&self) -> SocketAddr {
        self.server
    }

    /// Send one framed message; a send blocked for `timeout` fails.
    pub fn send(&mut self, frame: &[u8], timeout: Duration) -> Result<(), RequestorError> {
        self.stream
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|source| RequestorError::Io {
                during: "setting the send timeout",
                source,
            })?;
        self.stream.write_all(frame).map_err(|source| {
            if matches!(source.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                RequestorError::SendTimeout {
                    timeout_s: timeout.as_secs(),
                }
            } else {
                RequestorError::Io {
                    during: "sending the query",
                    source,
                }
            }
        })
    }

    /// Wait up to `wait` for the next message. A framing or decoding error ends the stream.
    pub fn receive(&mut self, wait: Duration) -> Result<Received<'_>, RequestorError> {
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(RequestorError::Framing)? {
                // One copy into a buffer reused for every message (bounded by the maximum
                // message size), so the decoder can take more input meanwhile.
                self.current.clear();
                self.current.extend_from_slice(frame);
                break;
            }
            self.stream
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .map_err(|source| RequestorError::Io {
                    during: "setting the receive timeout",
                    source,
                })?;
            match self.stream.read(self.decoder.spare()) {
                Ok(0) => return Ok(Received::Closed),
                Ok(n) => self.decoder.commit(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(Received::Nothing)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(Received::Nothing),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(Received::Closed),
                Err(source) => {
                    return Err(RequestorError::Io {
                        during: "receiving",
                        source,
                    })
                }
            }
        }
        Message::parse(&self.current)
            .map(Received::Message)
            .map_err(RequestorError::Malformed)
    }

    /// Shut both directions down (S-63: the server sees our close).
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_default_to_port_547_r10() {
        let p = |s: &str| resolve(s).expect("resolves").to_string();
        assert_eq!(p("2001:db8::53"), "[2001:db8::53]:547");
        assert_eq!(p("[2001:db8::53]:5470"), "[2001:db8::53]:5470");
        assert_eq!(p("127.0.0.1:5470"), "127.0.0.1:5470");
        assert_eq!(p("127.0.0.1"), "127.0.0.1:547");
        assert_eq!(p("[::1]"), "[::1]:547");
        assert!(resolve("no such host.invalid:1:2").is_err());
    }
}
