//! A blocking client for PostgreSQL's physical replication protocol, on
//! `postgres-protocol`'s message codec over `std::net` (TCP or a unix
//! socket). No `pg_receivewal` or `pg_basebackup` is needed.
//!
//! - [`ReplicationConfig`]: where to connect, from a libpq conninfo or a
//!   `postgres://` URI (libpq's defaults, `PGPASSWORD`, `~/.pgpass`).
//! - [`ReplicationConnection`]: a `replication=true` session, over TLS when
//!   `sslmode` asks (libpq's semantics, see [`crate::tls`]), authenticated
//!   with trust, cleartext, md5, SCRAM-SHA-256 or SCRAM-SHA-256-PLUS
//!   (`tls-server-end-point` channel binding); replication commands
//!   (`IDENTIFY_SYSTEM`, `TIMELINE_HISTORY`, slots, `SHOW`, ...).
//! - [`WalStream`]: `START_REPLICATION ... PHYSICAL` in CopyBoth mode —
//!   [`StreamMessage`]s (WAL, keepalives, the end of a timeline) read with a
//!   timeout, standby status updates (write/flush/apply) sent back.
//! - [`ReplicationConnection::base_backup`]: `BASE_BACKUP` (15+ syntax with
//!   one CopyOut stream, or the older one with a CopyOut per tablespace),
//!   tar archives unpacked as they stream into a [`BaseBackupSink`] (files,
//!   directories, symlinks per tablespace, then `backup_manifest`), never
//!   buffering more than one message.
//!
//! Errors are [`Error`]s carrying the server's SQLSTATE when it sent one;
//! no message ever holds a password. A command that fails with a server
//! `ERROR` leaves the connection usable; a lost connection or a protocol
//! error makes every later command fail with [`Error::Broken`].
//!
//! ```no_run
//! use barman_pg::replication::{ReplicationConfig, ReplicationConnection};
//!
//! let config = ReplicationConfig::from_conninfo("host=pg user=streaming_barman")?;
//! let mut conn = ReplicationConnection::connect(&config)?;
//! let system = conn.identify_system()?;
//! println!("{} on timeline {} at {}", system.systemid, system.timeline, system.xlogpos);
//! # Ok::<(), barman_pg::replication::Error>(())
//! ```

mod base_backup;
mod config;
mod error;
mod stream;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use barman_wal::Lsn;
use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramSha256,
};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

pub use base_backup::{
    ArchiveFile, BaseBackupOptions, BaseBackupResult, BaseBackupSink, ServerCompression,
    TablespaceInfo,
};
pub use config::{DEFAULT_PORT, DEFAULT_SOCKET_DIR, ReplicationConfig};
pub use error::{Error, Result, ServerError};
pub use stream::{StreamMessage, WalStream};
use wire::{Frame, TlsStart, Wire};

use crate::tls::{
    AttemptFailure, ChannelBindingMode, ClientConfig, FailedAttempt, ScramChoice, SslMode,
};

/// How long one write to the server may block once connected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// SQLSTATE `duplicate_object` (a slot that already exists).
pub const SQLSTATE_DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE `undefined_object` (a slot that does not exist).
pub const SQLSTATE_UNDEFINED_OBJECT: &str = "42704";

/// The answer to `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The database system identifier (decimal, as `pg_control_system()` shows it).
    pub systemid: String,
    /// The server's current timeline.
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database of a logical connection (`None` on a physical one).
    pub dbname: Option<String>,
}

/// Where a physical replication slot restarts (`READ_REPLICATION_SLOT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPosition {
    /// The oldest WAL the slot keeps (`None` until it reserves WAL).
    pub restart_lsn: Option<Lsn>,
    /// The timeline of `restart_lsn`.
    pub timeline: Option<u32>,
}

/// An open replication connection in command mode.
#[derive(Debug)]
pub struct ReplicationConnection {
    wire: Wire,
    target: String,
    server_version: u32,
    parameters: BTreeMap<String, String>,
    backend_pid: Option<i32>,
    /// Whether the last exchange ended with ReadyForQuery: only then may a
    /// new command be sent.
    ready: bool,
}

impl ReplicationConnection {
    /// Connects and authenticates a physical replication session
    /// (`replication=true`, `application_name` from `config`).
    ///
    /// Over TCP, TLS follows `sslmode` as libpq does ([`SslMode`]): an
    /// SSLRequest first from `prefer` on, the handshake verified as the
    /// mode and the root certificate file say, one retry the other way for
    /// `allow` and `prefer`. A server without TLS under `require` or
    /// stronger is [`Error::TlsRefused`], a failed handshake (certificate
    /// verification included) [`Error::TlsHandshake`], an unusable TLS
    /// setting [`Error::TlsConfig`]. Unix sockets never use TLS.
    ///
    /// Authentication may be trust, cleartext password, md5, SCRAM-SHA-256
    /// or, over TLS, SCRAM-SHA-256-PLUS (`channel_binding`); a refusal is an
    /// [`Error::Server`] with the server's SQLSTATE (`28P01` for a wrong
    /// password). `connect_timeout` bounds the whole handshake.
    pub fn connect(config: &ReplicationConfig) -> Result<Self> {
        let mode = config.tls.sslmode;
        let tls = if config.is_unix_socket() || mode == SslMode::Disable {
            None
        } else {
            Some(
                config
                    .tls
                    .client_config()
                    .map_err(|source| Error::TlsConfig {
                        target: config.target(),
                        source,
                    })?,
            )
        };
        crate::tls::connect_with_retry(mode, tls.is_some(), &config.target(), |with_tls| {
            Self::attempt(config, tls.clone().filter(|_| with_tls)).map_err(|(error, used_tls)| {
                let failure = match &error {
                    Error::Server(_) => AttemptFailure::Refused,
                    Error::TlsHandshake { .. } => AttemptFailure::Handshake,
                    _ => AttemptFailure::Other,
                };
                FailedAttempt {
                    error,
                    used_tls,
                    failure,
                }
            })
        })
    }

    /// One connection attempt, with TLS when `tls` is given; a failure
    /// comes with whether TLS had started (the server answered `S`).
    fn attempt(
        config: &ReplicationConfig,
        tls: Option<Arc<ClientConfig>>,
    ) -> std::result::Result<Self, (Error, bool)> {
        let plain = |e| (e, false);
        let deadline = config.connect_timeout.map(|t| Instant::now() + t);
        let mut wire = Wire::connect(config).map_err(plain)?;
        wire.set_io_timeouts(config.connect_timeout, config.connect_timeout)
            .map_err(plain)?;
        if let Some(tls) = tls {
            let name = crate::tls::server_name(config.tls_host(), config.tls.sslmode).map_err(
                |source| {
                    plain(Error::TlsConfig {
                        target: config.target(),
                        source,
                    })
                },
            )?;
            wire = match wire.start_tls(tls, name, &config.target()) {
                Ok(TlsStart::Encrypted(wire)) => wire,
                Ok(TlsStart::Refused(wire)) if config.tls.sslmode.plain_allowed() => {
                    tracing::debug!("{}: the server does not offer TLS", config.target());
                    wire
                }
                Ok(TlsStart::Refused(_)) => {
                    return Err(plain(Error::TlsRefused {
                        target: config.target(),
                        sslmode: config.tls.sslmode,
                    }));
                }
                Err(e @ Error::TlsHandshake { .. }) => return Err((e, true)),
                Err(e) => return Err(plain(e)),
            };
        }
        let used_tls = wire.is_tls();
        let mut conn = Self {
            wire,
            target: config.target(),
            server_version: 0,
            parameters: BTreeMap::new(),
            backend_pid: None,
            ready: false,
        };
        let failed = |e| (e, used_tls);
        conn.startup(config, deadline).map_err(failed)?;
        // Reads wait as long as the caller says; a write blocks only while
        // the server does not read, and a minute of that is a dead server.
        conn.wire
            .set_io_timeouts(None, Some(WRITE_TIMEOUT))
            .map_err(failed)?;
        tracing::debug!(
            "replication connection to {} as `{}` (PostgreSQL {}, backend pid {:?}, {})",
            conn.target,
            config.user,
            conn.parameter("server_version").unwrap_or("?"),
            conn.backend_pid,
            if used_tls { "TLS" } else { "no TLS" }
        );
        Ok(conn)
    }

    /// Whether the connection is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.wire.is_tls()
    }

    /// The server's version as `server_version_num` (e.g. `150004`), from
    /// the `server_version` the server reported at start-up (0 if unknown).
    pub fn server_version(&self) -> u32 {
        self.server_version
    }

    /// A run-time parameter the server reported (`server_version`,
    /// `integer_datetimes`, `server_encoding`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The pid of the walsender serving this connection.
    pub fn backend_pid(&self) -> Option<i32> {
        self.backend_pid
    }

    /// `host:port` or the socket path this connection goes to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `IDENTIFY_SYSTEM`: system identifier, timeline and WAL position.
    pub fn identify_system(&mut self) -> Result<SystemIdentity> {
        let rows = self.query_raw("IDENTIFY_SYSTEM")?;
        let row = single_row(&rows, "IDENTIFY_SYSTEM")?;
        Ok(SystemIdentity {
            systemid: required(row, 0, "IDENTIFY_SYSTEM systemid")?,
            timeline: parse_column(row, 1, "IDENTIFY_SYSTEM timeline")?,
            xlogpos: parse_column(row, 2, "IDENTIFY_SYSTEM xlogpos")?,
            dbname: text(row, 3, "IDENTIFY_SYSTEM dbname")?,
        })
    }

    /// `TIMELINE_HISTORY n`: the history file's name and content. Timeline 1
    /// has no history file (the server answers SQLSTATE `58P01`).
    pub fn timeline_history(&mut self, timeline: u32) -> Result<(String, Vec<u8>)> {
        let rows = self.query_raw(&format!("TIMELINE_HISTORY {timeline}"))?;
        let row = single_row(&rows, "TIMELINE_HISTORY")?;
        let name = required(row, 0, "TIMELINE_HISTORY filename")?;
        let content = row
            .get(1)
            .cloned()
            .flatten()
            .ok_or_else(|| Error::protocol("TIMELINE_HISTORY returned no content"))?;
        Ok((name, content.to_vec()))
    }

    /// `CREATE_REPLICATION_SLOT name PHYSICAL [RESERVE_WAL]`. With
    /// `reserve_wal` the slot holds WAL from now on (otherwise only once a
    /// client has streamed from it). An existing slot is
    /// [`Error::SlotExists`].
    pub fn create_physical_slot(&mut self, name: &str, reserve_wal: bool) -> Result<()> {
        check_slot_name(name)?;
        let reserve = if reserve_wal { " RESERVE_WAL" } else { "" };
        let sql = format!("CREATE_REPLICATION_SLOT \"{name}\" PHYSICAL{reserve}");
        self.slot_command(&sql, SQLSTATE_DUPLICATE_OBJECT, || Error::SlotExists {
            name: name.to_owned(),
        })
    }

    /// `READ_REPLICATION_SLOT name` (PostgreSQL 15+): where a physical slot
    /// would restart streaming, or `None` if there is no such slot. Older
    /// servers give [`Error::Unsupported`].
    pub fn read_replication_slot(&mut self, name: &str) -> Result<Option<SlotPosition>> {
        check_slot_name(name)?;
        if self.server_version < 150_000 {
            return Err(Error::Unsupported(format!(
                "READ_REPLICATION_SLOT needs PostgreSQL 15 or later (server: {})",
                self.parameter("server_version").unwrap_or("unknown")
            )));
        }
        let rows = self.query_raw(&format!("READ_REPLICATION_SLOT \"{name}\""))?;
        let row = single_row(&rows, "READ_REPLICATION_SLOT")?;
        if text(row, 0, "READ_REPLICATION_SLOT slot_type")?.is_none() {
            return Ok(None);
        }
        let restart_lsn = text(row, 1, "READ_REPLICATION_SLOT restart_lsn")?
            .map(|v| {
                v.parse::<Lsn>()
                    .map_err(|_| Error::protocol(format!("invalid restart_lsn `{v}`")))
            })
            .transpose()?;
        let timeline = text(row, 2, "READ_REPLICATION_SLOT restart_tli")?
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| Error::protocol(format!("invalid restart_tli `{v}`")))
            })
            .transpose()?;
        Ok(Some(SlotPosition {
            restart_lsn,
            timeline,
        }))
    }

    /// `DROP_REPLICATION_SLOT name [WAIT]`. With `wait`, an active slot is
    /// dropped once its user disconnects (otherwise that is a server error,
    /// SQLSTATE `55006`). A missing slot is [`Error::SlotMissing`].
    pub fn drop_slot(&mut self, name: &str, wait: bool) -> Result<()> {
        check_slot_name(name)?;
        let wait = if wait { " WAIT" } else { "" };
        let sql = format!("DROP_REPLICATION_SLOT \"{name}\"{wait}");
        self.slot_command(&sql, SQLSTATE_UNDEFINED_OBJECT, || Error::SlotMissing {
            name: name.to_owned(),
        })
    }

    /// Runs a slot command; the server error with SQLSTATE `code` becomes `error()`.
    fn slot_command(&mut self, sql: &str, code: &str, error: impl FnOnce() -> Error) -> Result<()> {
        match self.query_raw(sql) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(code) => Err(error()),
            Err(e) => Err(e),
        }
    }

    /// Runs a command (`SHOW wal_segment_size`, ...) with the simple query
    /// protocol and returns the rows of every result set as text (`None`
    /// for NULL). Commands that start a copy are refused by the server's
    /// side of the protocol: use the dedicated methods.
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.query_raw(sql)?
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|value| value.map(|v| utf8(&v, "a query result")).transpose())
                    .collect()
            })
            .collect()
    }

    // -- protocol plumbing --

    /// Start-up message, authentication, then parameters until ReadyForQuery.
    fn startup(&mut self, config: &ReplicationConfig, deadline: Option<Instant>) -> Result<()> {
        let mut params = vec![("user", config.user.as_str()), ("replication", "true")];
        if let Some(name) = &config.application_name {
            params.push(("application_name", name));
        }
        let mut buf = BytesMut::new();
        frontend::startup_message(params, &mut buf)
            .map_err(|e| Error::Conninfo(format!("cannot encode the start-up message: {e}")))?;
        self.wire.send(&buf)?;
        self.authenticate(config, deadline)?;
        loop {
            match self.handshake_message(deadline)? {
                Message::ReadyForQuery(_) => {
                    self.ready = true;
                    return Ok(());
                }
                Message::BackendKeyData(body) => self.backend_pid = Some(body.process_id()),
                Message::ErrorResponse(body) => return Err(server_error(&body)),
                other => return Err(unexpected("after authentication", &Frame::Message(other))),
            }
        }
    }

    /// Answers the server's authentication requests until AuthenticationOk.
    fn authenticate(
        &mut self,
        config: &ReplicationConfig,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let password = || {
            config.password.as_deref().ok_or_else(|| {
                Error::Auth(format!(
                    "the server asks a password for user \"{}\" and none was given \
                     (conninfo `password`, PGPASSWORD or ~/.pgpass)",
                    config.user
                ))
            })
        };
        let binding = config.tls.channel_binding;
        // Never send a password by a method that cannot bind when binding is required.
        let unbound = || {
            if binding == ChannelBindingMode::Require {
                Err(Error::Auth(
                    "channel binding required, but the server asks for an authentication \
                     method that does not support it"
                        .into(),
                ))
            } else {
                Ok(())
            }
        };
        let mut scram: Option<ScramSha256> = None;
        let mut bound = false;
        let mut buf = BytesMut::new();
        loop {
            buf.clear();
            match self.handshake_message(deadline)? {
                Message::AuthenticationOk if binding == ChannelBindingMode::Require && !bound => {
                    return Err(Error::Auth(
                        "channel binding required, but the server authenticated the client \
                         without channel binding"
                            .into(),
                    ));
                }
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    unbound()?;
                    frontend::password_message(password()?.as_bytes(), &mut buf)
                        .map_err(|e| Error::Auth(format!("cannot encode the password: {e}")))?;
                }
                Message::AuthenticationMd5Password(body) => {
                    unbound()?;
                    let hash =
                        md5_hash(config.user.as_bytes(), password()?.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut buf)
                        .map_err(|e| Error::Auth(format!("cannot encode the password: {e}")))?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut offered = Vec::new();
                    let mut mechanisms = body.mechanisms();
                    while let Some(m) =
                        fallible_iterator::FallibleIterator::next(&mut mechanisms)
                            .map_err(|e| Error::protocol(format!("bad SASL mechanism list: {e}")))?
                    {
                        offered.push(m.to_owned());
                    }
                    let hash = self.wire.end_point_hash();
                    let choice = binding
                        .scram(
                            self.wire.is_tls(),
                            offered.iter().any(|m| m == SCRAM_SHA_256_PLUS),
                            hash.is_some(),
                        )
                        .map_err(|m| Error::Auth(m.to_owned()))?;
                    let (mechanism, cb) = match (choice, hash) {
                        (ScramChoice::Plus, Some(hash)) => (
                            SCRAM_SHA_256_PLUS,
                            ChannelBinding::tls_server_end_point(hash.to_vec()),
                        ),
                        (
                            ScramChoice::Plain {
                                client_supports_binding: true,
                            },
                            _,
                        ) => (SCRAM_SHA_256, ChannelBinding::unrequested()),
                        _ => (SCRAM_SHA_256, ChannelBinding::unsupported()),
                    };
                    if !offered.iter().any(|m| m == mechanism) {
                        return Err(Error::Auth(format!(
                            "the server offers SASL mechanisms {offered:?}; this client supports \
                             SCRAM-SHA-256 and, over TLS, SCRAM-SHA-256-PLUS"
                        )));
                    }
                    tracing::debug!("{}: SASL {mechanism}", self.target);
                    let s = ScramSha256::new(password()?.as_bytes(), cb);
                    frontend::sasl_initial_response(mechanism, s.message(), &mut buf)
                        .map_err(|e| Error::Auth(format!("SCRAM: {e}")))?;
                    bound = mechanism == SCRAM_SHA_256_PLUS;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| Error::protocol("SASL continue without a SASL start"))?;
                    s.update(body.data())
                        .map_err(|e| Error::Auth(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut buf)
                        .map_err(|e| Error::Auth(format!("SCRAM: {e}")))?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram
                        .take()
                        .ok_or_else(|| Error::protocol("SASL final without a SASL start"))?;
                    s.finish(body.data()).map_err(|e| {
                        Error::Auth(format!("the server's SCRAM signature is invalid: {e}"))
                    })?;
                    continue;
                }
                Message::ErrorResponse(body) => return Err(server_error(&body)),
                Message::AuthenticationKerberosV5
                | Message::AuthenticationGss
                | Message::AuthenticationGssContinue(_)
                | Message::AuthenticationSspi
                | Message::AuthenticationScmCredential => {
                    return Err(Error::Auth(
                        "the server asks for Kerberos/GSSAPI/SSPI/SCM authentication, \
                         which this client does not support"
                            .into(),
                    ));
                }
                other => return Err(unexpected("during authentication", &Frame::Message(other))),
            }
            self.wire.send(&buf)?;
        }
    }

    /// The next message of the start-up handshake, within `deadline`.
    fn handshake_message(&mut self, deadline: Option<Instant>) -> Result<Message> {
        match self.next_frame(deadline)? {
            Some(Frame::Message(m)) => Ok(m),
            Some(other) => Err(unexpected("during start-up", &other)),
            None => Err(Error::io(
                "complete the start-up handshake",
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect_timeout expired"),
            )),
        }
    }

    /// The next message that needs an answer; notices and parameter changes
    /// are handled here. `Ok(None)` when `deadline` passes first.
    fn next_frame(&mut self, deadline: Option<Instant>) -> Result<Option<Frame>> {
        loop {
            match self.wire.read(deadline)? {
                Some(Frame::Message(Message::NoticeResponse(body))) => {
                    let notice = wire::server_error(body.fields());
                    if notice.severity == "WARNING" {
                        tracing::warn!("{}: {notice}", self.target);
                    } else {
                        tracing::debug!("{}: {notice}", self.target);
                    }
                }
                Some(Frame::Message(Message::ParameterStatus(body))) => {
                    let (Ok(name), Ok(value)) = (body.name(), body.value()) else {
                        continue;
                    };
                    if name == "server_version" {
                        self.server_version = parse_server_version(value).unwrap_or(0);
                    }
                    self.parameters.insert(name.to_owned(), value.to_owned());
                }
                Some(Frame::Message(Message::NotificationResponse(_))) => {}
                other => return Ok(other),
            }
        }
    }

    /// The next message, waiting as long as it takes.
    fn next_message(&mut self) -> Result<Frame> {
        self.next_frame(None)?
            .ok_or_else(|| Error::protocol("no message and no deadline"))
    }

    /// Sends a simple Query, after checking that the previous exchange ended.
    fn send_query(&mut self, sql: &str) -> Result<()> {
        if !self.ready {
            return Err(Error::Broken);
        }
        self.ready = false;
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)
            .map_err(|e| Error::protocol(format!("cannot encode `{sql}`: {e}")))?;
        tracing::trace!("{}: {sql}", self.target);
        self.wire.send(&buf)
    }

    /// Runs `sql` and collects the rows of every result set until
    /// ReadyForQuery. A server error is returned once the server is ready
    /// again, so the connection stays usable.
    fn query_raw(&mut self, sql: &str) -> Result<Vec<Vec<Option<Bytes>>>> {
        self.send_query(sql)?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next_message()? {
                Frame::Message(Message::DataRow(body)) => rows.push(wire::row_values(&body)?),
                Frame::Message(
                    Message::RowDescription(_)
                    | Message::CommandComplete(_)
                    | Message::EmptyQueryResponse,
                ) => {}
                Frame::Message(Message::ErrorResponse(body)) => {
                    error.get_or_insert(server_error(&body));
                }
                Frame::Message(Message::ReadyForQuery(_)) => {
                    self.ready = true;
                    return error.map_or(Ok(rows), Err);
                }
                other => return Err(unexpected(&format!("in reply to `{sql}`"), &other)),
            }
        }
    }
}

/// An [`Error::Server`] from an `ErrorResponse` body.
fn server_error(body: &postgres_protocol::message::backend::ErrorResponseBody) -> Error {
    Error::Server(Box::new(wire::server_error(body.fields())))
}

/// A protocol error for a message that makes no sense `context`.
fn unexpected(context: &str, frame: &Frame) -> Error {
    let name = match frame {
        Frame::CopyBoth => "CopyBothResponse",
        Frame::Message(m) => match m {
            Message::CopyData(_) => "CopyData",
            Message::CopyDone => "CopyDone",
            Message::CopyInResponse(_) => "CopyInResponse",
            Message::CopyOutResponse(_) => "CopyOutResponse",
            Message::DataRow(_) => "DataRow",
            Message::RowDescription(_) => "RowDescription",
            Message::CommandComplete(_) => "CommandComplete",
            Message::ReadyForQuery(_) => "ReadyForQuery",
            Message::ErrorResponse(_) => "ErrorResponse",
            Message::AuthenticationOk => "AuthenticationOk",
            Message::BackendKeyData(_) => "BackendKeyData",
            Message::EmptyQueryResponse => "EmptyQueryResponse",
            _ => "an unexpected message",
        },
    };
    Error::protocol(format!("{name} {context}"))
}

/// Parses `server_version` (`15.4 (Debian ...)`, `17devel`, `9.6.24`) into
/// `server_version_num` form.
fn parse_server_version(text: &str) -> Option<u32> {
    let numeric: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let parts: Vec<u32> = numeric
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    // Numbers that do not fit `server_version_num` make the version unknown.
    match parts.as_slice() {
        [major, rest @ ..] if *major >= 10 => major
            .checked_mul(10_000)?
            .checked_add(*rest.first().unwrap_or(&0)),
        [major, minor, rest @ ..] => major
            .checked_mul(10_000)?
            .checked_add(minor.checked_mul(100)?)?
            .checked_add(*rest.first().unwrap_or(&0)),
        _ => None,
    }
}

/// Refuses slot names PostgreSQL would refuse (`ReplicationSlotValidateName`),
/// which also keeps them safe to quote in a command.
fn check_slot_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidSlotName {
            name: name.to_owned(),
        })
    }
}

/// Text of a column (UTF-8), `None` for NULL.
fn text(row: &[Option<Bytes>], index: usize, what: &str) -> Result<Option<String>> {
    match row.get(index) {
        None => Err(Error::protocol(format!("{what}: missing column"))),
        Some(None) => Ok(None),
        Some(Some(v)) => utf8(v, what).map(Some),
    }
}

/// Text of a column that must not be NULL.
fn required(row: &[Option<Bytes>], index: usize, what: &str) -> Result<String> {
    text(row, index, what)?.ok_or_else(|| Error::protocol(format!("{what} is NULL")))
}

/// A column parsed with `FromStr` (NULL is an error).
fn parse_column<T: std::str::FromStr>(
    row: &[Option<Bytes>],
    index: usize,
    what: &str,
) -> Result<T> {
    let value = required(row, index, what)?;
    value
        .trim()
        .parse()
        .map_err(|_| Error::protocol(format!("{what}: invalid value `{value}`")))
}

fn utf8(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::protocol(format!("{what} is not UTF-8")))
}

/// The only row of a result.
fn single_row<'r>(rows: &'r [Vec<Option<Bytes>>], command: &str) -> Result<&'r [Option<Bytes>]> {
    match rows {
        [row] => Ok(row),
        _ => Err(Error::protocol(format!(
            "{command} returned {} rows instead of one",
            rows.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("15.4 (Debian 15.4-1)"), Some(150_004));
        assert_eq!(parse_server_version("17.10"), Some(170_010));
        assert_eq!(parse_server_version("17devel"), Some(170_000));
        assert_eq!(parse_server_version("18beta1"), Some(180_000));
        assert_eq!(parse_server_version("9.6.24"), Some(90_624));
        assert_eq!(parse_server_version("9.6"), Some(90_600));
        assert_eq!(parse_server_version("devel"), None);
        assert_eq!(parse_server_version("9"), None);
    }

    /// A server_version whose numbers do not fit `server_version_num` is
    /// unknown, not an arithmetic overflow (a panic in debug builds).
    #[test]
    fn server_versions_out_of_range() {
        assert_eq!(parse_server_version("999999.1"), None);
        assert_eq!(parse_server_version("429497"), None);
        assert_eq!(parse_server_version("9.4294967295"), None);
        assert_eq!(parse_server_version("9.99.4294967295"), None);
        assert_eq!(parse_server_version("4294967296"), None);
    }

    #[test]
    fn slot_names() {
        for ok in ["barman", "a_1", &"x".repeat(63)] {
            assert!(check_slot_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Barman", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(
                matches!(check_slot_name(bad), Err(Error::InvalidSlotName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn column_helpers() {
        let row = vec![
            Some(Bytes::from_static(b"12")),
            None,
            Some(Bytes::from_static(b"\xff")),
        ];
        assert_eq!(parse_column::<u32>(&row, 0, "n").unwrap(), 12);
        assert!(matches!(
            parse_column::<u32>(&row, 1, "n"),
            Err(Error::Protocol(_))
        ));
        assert_eq!(text(&row, 1, "n").unwrap(), None);
        assert!(text(&row, 2, "n").is_err());
        assert!(text(&row, 3, "n").is_err());
        assert!(single_row(&[], "X").is_err());
        assert!(single_row(&[row.clone(), row], "X").is_err());
    }
}
