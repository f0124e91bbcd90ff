//! Physical WAL streaming: `START_REPLICATION ... PHYSICAL` in CopyBoth
//! mode, keepalives, standby status updates and the end of a timeline.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use barman_wal::Lsn;
use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::wire::{self, Frame};
use super::{
    Error, ReplicationConnection, Result, check_slot_name, parse_column, server_error, unexpected,
};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// How long [`WalStream::into_connection`] waits for the server to leave
/// copy mode.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A message of the WAL stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// WAL bytes starting at `start`; the server has WAL up to `wal_end`.
    XLogData {
        /// The position of `data[0]`.
        start: Lsn,
        /// The end of the WAL the server has (may be past this message).
        wal_end: Lsn,
        /// The WAL bytes.
        data: Vec<u8>,
    },
    /// A keepalive; with `reply_requested` the server wants a
    /// [`WalStream::send_status`] now (or it will drop the connection after
    /// `wal_sender_timeout`).
    Keepalive {
        /// The end of the WAL the server has.
        wal_end: Lsn,
        /// Whether the server asks for a status update at once.
        reply_requested: bool,
    },
    /// The server ended the stream because the timeline ended (the server
    /// was promoted, or a historic timeline was asked for): continue on
    /// `next_timeline` from `next_start` after
    /// [`WalStream::into_connection`].
    EndOfTimeline {
        /// The timeline that follows.
        next_timeline: u32,
        /// Where the next timeline starts.
        next_start: Lsn,
    },
}

/// Where the stream is in the protocol.
#[derive(Debug)]
enum State {
    /// In CopyBoth mode.
    Copy,
    /// The server ended the copy; reading the next-timeline result set
    /// until ReadyForQuery.
    Draining {
        next: Option<(u32, Lsn)>,
        error: Option<Error>,
    },
    /// Back in command mode.
    Ended,
    /// An error left the protocol state unknown.
    Failed,
}

/// A physical replication stream (CopyBoth mode), from
/// [`ReplicationConnection::start_physical`].
#[derive(Debug)]
pub struct WalStream {
    conn: ReplicationConnection,
    state: State,
}

impl ReplicationConnection {
    /// `START_REPLICATION [SLOT slot] PHYSICAL start TIMELINE timeline`
    /// (`timeline` 0: the server's current one). `start` should be the
    /// start of a WAL segment or inside the one the caller has partly.
    ///
    /// A server refusal (WAL already removed, start past the server's WAL,
    /// unknown slot, ...) is an [`Error::Server`]; the connection is lost
    /// with it.
    pub fn start_physical(
        mut self,
        slot: Option<&str>,
        start: Lsn,
        timeline: u32,
    ) -> Result<WalStream> {
        let slot = match slot {
            Some(slot) => {
                check_slot_name(slot)?;
                format!("SLOT \"{slot}\" ")
            }
            None => String::new(),
        };
        let timeline = if timeline == 0 {
            String::new()
        } else {
            format!(" TIMELINE {timeline}")
        };
        let sql = format!("START_REPLICATION {slot}PHYSICAL {start}{timeline}");
        self.send_query(&sql)?;
        let state = match self.next_message()? {
            Frame::CopyBoth => State::Copy,
            // The requested start is the exact end of a historic timeline:
            // the server answers with the next timeline at once.
            Frame::Message(Message::RowDescription(_)) => State::Draining {
                next: None,
                error: None,
            },
            Frame::Message(Message::ErrorResponse(body)) => {
                let error = server_error(&body);
                // Best effort: the caller gets the server's reason either way.
                let _ = self.drain_until_ready(STOP_TIMEOUT);
                return Err(error);
            }
            other @ Frame::Message(_) => {
                return Err(unexpected(&format!("in reply to `{sql}`"), &other));
            }
        };
        tracing::debug!("{}: {sql}", self.target);
        Ok(WalStream { conn: self, state })
    }

    /// Sends a CopyData message.
    pub(super) fn send_copy_data(&mut self, payload: &[u8]) -> Result<()> {
        let mut buf = BytesMut::with_capacity(payload.len() + 5);
        frontend::CopyData::new(payload)
            .map_err(|e| Error::protocol(format!("cannot encode CopyData: {e}")))?
            .write(&mut buf);
        self.wire.send(&buf)
    }

    /// Sends CopyDone.
    pub(super) fn send_copy_done(&mut self) -> Result<()> {
        let mut buf = BytesMut::new();
        frontend::copy_done(&mut buf);
        self.wire.send(&buf)
    }

    /// Reads until ReadyForQuery (within `timeout`), skipping everything
    /// else; returns the first server error seen on the way.
    pub(super) fn drain_until_ready(&mut self, timeout: Duration) -> Result<Option<Error>> {
        let deadline = Instant::now() + timeout;
        let mut error = None;
        loop {
            match self.next_frame(Some(deadline))? {
                None => {
                    return Err(Error::io(
                        "wait for the server to become ready",
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
                    ));
                }
                Some(Frame::Message(Message::ReadyForQuery(_))) => {
                    self.ready = true;
                    return Ok(error);
                }
                Some(Frame::Message(Message::ErrorResponse(body))) => {
                    error.get_or_insert(server_error(&body));
                }
                Some(_) => {}
            }
        }
    }
}

impl WalStream {
    /// The connection underneath (server version, parameters, target).
    pub fn connection(&self) -> &ReplicationConnection {
        &self.conn
    }

    /// The next message, waiting at most `timeout`; `Ok(None)` if nothing
    /// complete arrived in time (a partly received message is kept).
    ///
    /// A dropped connection, a server error (e.g. `FATAL` when the walsender
    /// is terminated) or a malformed message is an error; so is calling it
    /// again after [`StreamMessage::EndOfTimeline`].
    pub fn next(&mut self, timeout: Duration) -> Result<Option<StreamMessage>> {
        let deadline = Instant::now().checked_add(timeout);
        let result = self.step(deadline);
        if result.is_err() && !matches!(self.state, State::Ended) {
            self.state = State::Failed;
        }
        result
    }

    fn step(&mut self, deadline: Option<Instant>) -> Result<Option<StreamMessage>> {
        loop {
            match &mut self.state {
                State::Copy => {
                    let Some(frame) = self.conn.next_frame(deadline)? else {
                        return Ok(None);
                    };
                    match frame {
                        Frame::Message(Message::CopyData(body)) => {
                            return parse_copy_both(body.into_bytes()).map(|m| Some(m.into()));
                        }
                        Frame::Message(Message::CopyDone) => {
                            // The server ends the timeline: acknowledge, then read
                            // the next timeline until ReadyForQuery.
                            self.conn.send_copy_done()?;
                            self.state = State::Draining {
                                next: None,
                                error: None,
                            };
                        }
                        Frame::Message(Message::ErrorResponse(body)) => {
                            return Err(server_error(&body));
                        }
                        other => return Err(unexpected("in the WAL stream", &other)),
                    }
                }
                State::Draining { next, error } => {
                    let Some(frame) = self.conn.next_frame(deadline)? else {
                        return Ok(None);
                    };
                    match frame {
                        Frame::Message(Message::DataRow(body)) => {
                            let row = wire::row_values(&body)?;
                            *next = Some((
                                parse_column(&row, 0, "next timeline")?,
                                parse_column(&row, 1, "next timeline start")?,
                            ));
                        }
                        Frame::Message(Message::ErrorResponse(body)) => {
                            error.get_or_insert(server_error(&body));
                        }
                        Frame::Message(Message::ReadyForQuery(_)) => {
                            self.conn.ready = true;
                            let (next, error) = (next.take(), error.take());
                            self.state = State::Ended;
                            if let Some(e) = error {
                                return Err(e);
                            }
                            let (next_timeline, next_start) = next.ok_or_else(|| {
                                Error::protocol(
                                    "the server ended the WAL stream without a next timeline",
                                )
                            })?;
                            return Ok(Some(StreamMessage::EndOfTimeline {
                                next_timeline,
                                next_start,
                            }));
                        }
                        // RowDescription, CommandComplete, late CopyData.
                        _ => {}
                    }
                }
                State::Ended => {
                    return Err(Error::protocol(
                        "the WAL stream has ended; call into_connection() to continue",
                    ));
                }
                State::Failed => return Err(Error::Broken),
            }
        }
    }

    /// Sends a standby status update (`r`): the positions written, flushed
    /// (durable) and applied, with the current time. A synchronous standby
    /// releases commits on the primary when `flush` passes them. Does
    /// nothing once the server has ended the stream.
    pub fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        apply: Lsn,
        reply_requested: bool,
    ) -> Result<()> {
        match self.state {
            State::Copy => {
                let message =
                    status_update(write.0, flush.0, apply.0, pg_now_micros(), reply_requested);
                let result = self.conn.send_copy_data(&message);
                if result.is_err() {
                    self.state = State::Failed;
                }
                result
            }
            State::Draining { .. } | State::Ended => Ok(()),
            State::Failed => Err(Error::Broken),
        }
    }

    /// Back to command mode, e.g. to `START_REPLICATION` on the next
    /// timeline after [`StreamMessage::EndOfTimeline`]. While still
    /// streaming this stops the stream (CopyDone) and waits for the server
    /// to be ready (at most a minute).
    pub fn into_connection(mut self) -> Result<ReplicationConnection> {
        match self.state {
            State::Ended => return Ok(self.conn),
            State::Failed => return Err(Error::Broken),
            State::Copy => self.conn.send_copy_done()?,
            State::Draining { .. } => {}
        }
        match self.conn.drain_until_ready(STOP_TIMEOUT)? {
            Some(error) => Err(error),
            None => Ok(self.conn),
        }
    }
}

impl From<CopyBothMessage> for StreamMessage {
    fn from(m: CopyBothMessage) -> Self {
        match m {
            CopyBothMessage::XLogData {
                start,
                wal_end,
                data,
            } => Self::XLogData {
                start: Lsn(start),
                wal_end: Lsn(wal_end),
                data: data.to_vec(),
            },
            CopyBothMessage::Keepalive {
                wal_end,
                reply_requested,
            } => Self::Keepalive {
                wal_end: Lsn(wal_end),
                reply_requested,
            },
        }
    }
}

/// Now, in microseconds since 2000-01-01 00:00:00 UTC.
fn pg_now_micros() -> i64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_unix.as_micros()).unwrap_or(i64::MAX) - PG_EPOCH_OFFSET_MICROS
}

/// A standby status update (`r`): the payload of a CopyData message.
fn status_update(
    write: u64,
    flush: u64,
    apply: u64,
    now_micros: i64,
    reply_requested: bool,
) -> [u8; 34] {
    let mut out = [0u8; 34];
    out[0] = b'r';
    out[1..9].copy_from_slice(&write.to_be_bytes());
    out[9..17].copy_from_slice(&flush.to_be_bytes());
    out[17..25].copy_from_slice(&apply.to_be_bytes());
    out[25..33].copy_from_slice(&now_micros.to_be_bytes());
    out[33] = u8::from(reply_requested);
    out
}

/// A message of the replication stream (the payload of a CopyData).
#[derive(Debug, PartialEq, Eq)]
enum CopyBothMessage {
    /// `w`: WAL starting at `start`; the server's WAL ends at `wal_end`.
    XLogData {
        start: u64,
        wal_end: u64,
        data: Bytes,
    },
    /// `k`: the server's WAL end, and whether it wants a status update now.
    Keepalive { wal_end: u64, reply_requested: bool },
}

/// Decodes a CopyData payload of the replication stream.
fn parse_copy_both(mut payload: Bytes) -> Result<CopyBothMessage> {
    let Some(&kind) = payload.first() else {
        return Err(Error::protocol("empty CopyData message"));
    };
    match kind {
        b'w' if payload.len() >= 25 => {
            payload.advance(1);
            let start = payload.get_u64();
            let wal_end = payload.get_u64();
            let _send_time = payload.get_i64();
            Ok(CopyBothMessage::XLogData {
                start,
                wal_end,
                data: payload,
            })
        }
        b'k' if payload.len() >= 18 => {
            payload.advance(1);
            let wal_end = payload.get_u64();
            let _send_time = payload.get_i64();
            Ok(CopyBothMessage::Keepalive {
                wal_end,
                reply_requested: payload.get_u8() != 0,
            })
        }
        b'w' | b'k' => Err(Error::protocol(format!(
            "truncated `{}` message ({} bytes)",
            char::from(kind),
            payload.len()
        ))),
        other => Err(Error::protocol(format!(
            "unknown replication message `{}`",
            char::from(other).escape_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_update_layout() {
        let m = status_update(0x0102, 0x0304, 0x0506, 0x0708, true);
        assert_eq!(m[0], b'r');
        assert_eq!(&m[1..9], &0x0102u64.to_be_bytes());
        assert_eq!(&m[9..17], &0x0304u64.to_be_bytes());
        assert_eq!(&m[17..25], &0x0506u64.to_be_bytes());
        assert_eq!(&m[25..33], &0x0708i64.to_be_bytes());
        assert_eq!(m[33], 1);
        assert_eq!(status_update(0, 0, 0, 0, false)[33], 0);
    }

    #[test]
    fn pg_epoch() {
        // 2000-01-01 is 30 years after 1970; now is well after it.
        assert!(pg_now_micros() > 20 * 365 * 86_400 * 1_000_000);
    }

    #[test]
    fn xlogdata_and_keepalive() {
        let mut w = vec![b'w'];
        w.extend_from_slice(&0x1_0000_0000u64.to_be_bytes());
        w.extend_from_slice(&0x1_0000_0010u64.to_be_bytes());
        w.extend_from_slice(&7i64.to_be_bytes());
        w.extend_from_slice(b"walbytes");
        assert_eq!(
            parse_copy_both(Bytes::from(w)).unwrap(),
            CopyBothMessage::XLogData {
                start: 0x1_0000_0000,
                wal_end: 0x1_0000_0010,
                data: Bytes::from_static(b"walbytes"),
            }
        );
        let mut k = vec![b'k'];
        k.extend_from_slice(&42u64.to_be_bytes());
        k.extend_from_slice(&7i64.to_be_bytes());
        k.push(1);
        assert_eq!(
            parse_copy_both(Bytes::from(k.clone())).unwrap(),
            CopyBothMessage::Keepalive {
                wal_end: 42,
                reply_requested: true
            }
        );
        // Truncated, empty and unknown messages are errors, not panics.
        for bad in [&k[..10], &[][..], b"x123", b"w"] {
            assert!(matches!(
                parse_copy_both(Bytes::copy_from_slice(bad)),
                Err(Error::Protocol(_))
            ));
        }
    }
}
