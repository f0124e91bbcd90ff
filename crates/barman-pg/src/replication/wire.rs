//! The transport: a TCP or unix socket, TLS over TCP (SSLRequest, then a
//! rustls handshake), message framing on top of `postgres-protocol`'s
//! backend parser (plus the CopyBothResponse it does not know), and the few
//! message bodies this client encodes or decodes by hand.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator as _;
use postgres_protocol::message::backend::{DataRowBody, ErrorFields, Message};
use postgres_protocol::message::frontend;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::config::ReplicationConfig;
use super::error::{Error, Result, ServerError};

/// Messages larger than this are refused as a protocol error (PostgreSQL
/// sends at most 1 GiB in one message).
const MAX_MESSAGE: usize = 1 << 30;

/// How much is read from the socket at a time (at least).
const READ_CHUNK: usize = 128 * 1024;

/// How much the read buffer grows at most for one read.
const MAX_GROWTH: usize = 1024 * 1024;

/// A connected socket. The TLS stream keeps the TCP socket's timeouts: a
/// read that times out leaves a partly received record inside rustls for
/// the next read.
#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Socket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(timeout),
            Self::Unix(s) => s.set_read_timeout(timeout),
            Self::Tls(s) => s.sock.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(timeout),
            Self::Unix(s) => s.set_write_timeout(timeout),
            Self::Tls(s) => s.sock.set_write_timeout(timeout),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Unix(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// What became of an SSLRequest.
pub(crate) enum TlsStart {
    /// The server answered `S` and the handshake completed.
    Encrypted(Wire),
    /// The server answered `N`: the same connection, still plain.
    Refused(Wire),
}

/// One message from the server.
pub(crate) enum Frame {
    /// Anything `postgres-protocol` parses.
    Message(Message),
    /// CopyBothResponse (`W`), which `postgres-protocol` does not know.
    CopyBoth,
}

/// A framed connection: the socket and what was read but not yet parsed.
#[derive(Debug)]
pub(crate) struct Wire {
    socket: Socket,
    buf: BytesMut,
    read_timeout: Option<Duration>,
    /// With TLS: the server certificate's `tls-server-end-point` hash, when
    /// its signature algorithm gives one.
    end_point_hash: Option<Vec<u8>>,
}

impl Wire {
    /// Opens the socket `config` names (TCP with `TCP_NODELAY`, or the unix
    /// socket `<dir>/.s.PGSQL.<port>`), within `connect_timeout`.
    pub(crate) fn connect(config: &ReplicationConfig) -> Result<Self> {
        let target = config.target();
        let connect_err = |source| Error::Connect {
            target: target.clone(),
            source,
        };
        let socket = if config.is_unix_socket() {
            Socket::Unix(UnixStream::connect(config.socket_path()).map_err(connect_err)?)
        } else {
            let addrs: Vec<_> = (config.host.as_str(), config.port)
                .to_socket_addrs()
                .map_err(connect_err)?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
            let mut stream = None;
            for addr in addrs {
                let attempt = match config.connect_timeout {
                    Some(t) => TcpStream::connect_timeout(&addr, t),
                    None => TcpStream::connect(addr),
                };
                match attempt {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let stream = stream.ok_or_else(|| connect_err(last))?;
            stream.set_nodelay(true).map_err(connect_err)?;
            Socket::Tcp(stream)
        };
        Ok(Self {
            socket,
            buf: BytesMut::with_capacity(READ_CHUNK),
            read_timeout: None,
            end_point_hash: None,
        })
    }

    /// Sends an SSLRequest and, when the server answers `S`, runs the TLS
    /// handshake (within the socket's current timeouts). Only before the
    /// start-up message, on TCP.
    pub(crate) fn start_tls(
        mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        target: &str,
    ) -> Result<TlsStart> {
        let mut request = BytesMut::new();
        frontend::ssl_request(&mut request);
        self.send(&request)?;
        // One byte, read straight from the socket: nothing the server sent
        // before the handshake can end up in the buffer (CVE-2021-23222).
        let mut answer = [0u8; 1];
        self.socket
            .read_exact(&mut answer)
            .map_err(|e| Error::io("read the answer to SSLRequest", e))?;
        match answer[0] {
            b'N' => return Ok(TlsStart::Refused(self)),
            b'S' => {}
            // A server that cannot start a session says why in an ErrorResponse.
            b'E' => {
                self.buf.extend_from_slice(b"E");
                return match self.read(None)? {
                    Some(Frame::Message(Message::ErrorResponse(body))) => {
                        Err(Error::Server(Box::new(server_error(body.fields()))))
                    }
                    _ => Err(Error::protocol("unexpected answer to SSLRequest")),
                };
            }
            other => {
                return Err(Error::protocol(format!(
                    "unexpected answer `{}` to SSLRequest",
                    char::from(other).escape_default()
                )));
            }
        }
        let Socket::Tcp(tcp) = self.socket else {
            return Err(Error::protocol("TLS is only negotiated over TCP"));
        };
        let handshake_error = |message: String| Error::TlsHandshake {
            target: target.to_owned(),
            message,
        };
        let conn =
            ClientConnection::new(config, name).map_err(|e| handshake_error(e.to_string()))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                return Err(handshake_error(match crate::tls::rustls_error(&e) {
                    Some(inner) => crate::tls::describe_handshake_error(inner),
                    None if e.kind() == io::ErrorKind::UnexpectedEof => {
                        "the server closed the connection".to_owned()
                    }
                    None => e.to_string(),
                }));
            }
        }
        let end_point_hash = stream
            .conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| crate::tls::server_end_point_hash(cert));
        tracing::debug!(
            "{target}: TLS {:?} with {:?}",
            stream.conn.protocol_version(),
            stream.conn.negotiated_cipher_suite().map(|s| s.suite())
        );
        Ok(TlsStart::Encrypted(Self {
            socket: Socket::Tls(Box::new(stream)),
            buf: self.buf,
            read_timeout: self.read_timeout,
            end_point_hash,
        }))
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.socket, Socket::Tls(_))
    }

    /// The `tls-server-end-point` channel-binding data (TLS only).
    pub(crate) fn end_point_hash(&self) -> Option<&[u8]> {
        self.end_point_hash.as_deref()
    }

    /// Limits how long one blocking read (`read`) and one blocking write
    /// (`write`) may wait (`None`: forever).
    pub(crate) fn set_io_timeouts(
        &mut self,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> Result<()> {
        self.socket
            .set_write_timeout(write)
            .map_err(|e| Error::io("set a socket timeout", e))?;
        self.set_read_timeout(read)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if self.read_timeout != timeout {
            self.socket
                .set_read_timeout(timeout)
                .map_err(|e| Error::io("set a socket timeout", e))?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// Writes `bytes` (one or more encoded messages) to the server.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.socket
            .write_all(bytes)
            .and_then(|()| self.socket.flush())
            .map_err(|e| Error::io("write to the server", e))
    }

    /// The next message. With a `deadline`, `Ok(None)` when it passes first;
    /// a partly received message is kept for the next call.
    pub(crate) fn read(&mut self, deadline: Option<Instant>) -> Result<Option<Frame>> {
        loop {
            let needed = self.needed()?;
            if needed == 0 {
                return self.parse().map(Some);
            }
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left.max(Duration::from_millis(1)))
                }
            };
            self.set_read_timeout(timeout)?;
            let start = self.buf.len();
            // Grow by at most MAX_GROWTH at a time: a length announced by the
            // peer is not allocated before its bytes arrive.
            self.buf
                .resize(start + needed.clamp(READ_CHUNK, MAX_GROWTH), 0);
            let got = self.socket.read(&mut self.buf[start..]);
            self.buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) => return Err(Error::Closed),
                // A TLS peer gone without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(Error::Closed),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io("read from the server", e)),
            }
        }
    }

    /// How many more bytes the message at the head of the buffer needs (0:
    /// it is complete).
    fn needed(&self) -> Result<usize> {
        if self.buf.len() < 5 {
            return Ok(5 - self.buf.len());
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Err(Error::protocol(format!(
                "message `{}` has an invalid length {len}",
                char::from(self.buf[0]).escape_default()
            )));
        }
        Ok((len + 1).saturating_sub(self.buf.len()))
    }

    /// Splits the complete message at the head of the buffer off and parses it.
    fn parse(&mut self) -> Result<Frame> {
        if self.buf[0] == b'W' {
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            self.buf.advance(len + 1);
            return Ok(Frame::CopyBoth);
        }
        let tag = self.buf[0];
        match Message::parse(&mut self.buf) {
            Ok(Some(message)) => Ok(Frame::Message(message)),
            Ok(None) => Err(Error::protocol("incomplete message")),
            Err(e) => Err(Error::protocol(format!(
                "cannot parse message `{}`: {e}",
                char::from(tag).escape_default()
            ))),
        }
    }
}

/// The fields of an `ErrorResponse` or `NoticeResponse`.
pub(crate) fn server_error(mut fields: ErrorFields<'_>) -> ServerError {
    let mut error = ServerError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
    };
    let mut localized_severity = String::new();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'S' => localized_severity = value,
            b'V' => error.severity = value,
            b'C' => error.code = value,
            b'M' => error.message = value,
            b'D' => error.detail = Some(value),
            b'H' => error.hint = Some(value),
            _ => {}
        }
    }
    if error.severity.is_empty() {
        error.severity = localized_severity;
    }
    error
}

/// The columns of a `DataRow` (`None` for SQL NULL), as raw bytes.
pub(crate) fn row_values(row: &DataRowBody) -> Result<Vec<Option<Bytes>>> {
    let buffer = row.buffer_bytes();
    row.ranges()
        .map(|range| Ok(range.map(|r| buffer.slice(r))))
        .collect()
        .map_err(|e| Error::protocol(format!("malformed DataRow: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wire over one end of a socket pair, and the other end.
    fn pair() -> (Wire, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (
            Wire {
                socket: Socket::Unix(a),
                buf: BytesMut::new(),
                read_timeout: None,
                end_point_hash: None,
            },
            b,
        )
    }

    #[test]
    fn frames_split_across_reads_and_timeouts() {
        let (mut wire, mut peer) = pair();
        // CopyBothResponse, then a CopyData sent in two halves.
        peer.write_all(&[b'W', 0, 0, 0, 7, 0, 0, 0]).unwrap();
        assert!(matches!(wire.read(None).unwrap(), Some(Frame::CopyBoth)));
        let copy_data = [b'd', 0, 0, 0, 8, 1, 2, 3, 4];
        peer.write_all(&copy_data[..3]).unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(wire.read(Some(deadline)).unwrap().is_none());
        peer.write_all(&copy_data[3..]).unwrap();
        match wire.read(None).unwrap() {
            Some(Frame::Message(Message::CopyData(body))) => assert_eq!(body.data(), [1, 2, 3, 4]),
            _ => panic!("expected CopyData"),
        }
        // A bad length and an unknown tag are protocol errors.
        peer.write_all(&[b'd', 0, 0, 0, 1]).unwrap();
        assert!(matches!(wire.read(None), Err(Error::Protocol(_))));
        let (mut wire, mut peer) = pair();
        peer.write_all(&[b'?', 0, 0, 0, 4]).unwrap();
        assert!(matches!(wire.read(None), Err(Error::Protocol(_))));
        // A huge announced length is not allocated up front.
        let (mut wire, mut peer) = pair();
        peer.write_all(&[b'd', 0x3f, 0xff, 0xff, 0xff, 1, 2])
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(wire.read(Some(deadline)).unwrap().is_none());
        assert!(
            wire.buf.capacity() < 4 * MAX_GROWTH,
            "{}",
            wire.buf.capacity()
        );
        // End of stream.
        let (mut wire, peer) = pair();
        drop(peer);
        assert!(matches!(wire.read(None), Err(Error::Closed)));
    }

    #[test]
    fn error_fields() {
        // ErrorResponse body: S, V, C, M, D, H fields then a terminating 0.
        let mut body = Vec::new();
        for (t, v) in [
            (b'S', "FEHLER"),
            (b'V', "ERROR"),
            (b'C', "42704"),
            (b'M', "no such slot"),
            (b'D', "details"),
            (b'H', "a hint"),
        ] {
            body.push(t);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut frame = BytesMut::new();
        frame.extend_from_slice(b"E");
        frame.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        frame.extend_from_slice(&body);
        let Ok(Some(Message::ErrorResponse(body))) = Message::parse(&mut frame) else {
            panic!("expected an ErrorResponse");
        };
        let e = server_error(body.fields());
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.code, "42704");
        assert_eq!(
            e.to_string(),
            "ERROR 42704: no such slot (detail: details) (hint: a hint)"
        );
    }
}
