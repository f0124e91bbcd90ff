//! SQL access to a PostgreSQL server (`conninfo`), through `tokio-postgres`
//! on a small single-threaded tokio runtime behind a blocking facade.
//!
//! Only what the operations need: the system identifier and version, WAL
//! switching, checkpoints, the current WAL position and the archiver's
//! statistics. Messages never contain a password: conninfo strings are shown
//! through [`conninfo::redact`].
//!
//! TLS follows libpq's `sslmode` with the settings, rustls configuration
//! and retries of [`crate::tls`] (the same as the replication client's);
//! SCRAM-SHA-256-PLUS channel binding is tokio-postgres' own, fed with the
//! shared `tls-server-end-point` hash.

use std::str::FromStr;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_postgres::config::{ChannelBinding, Host, SslMode as PgSslMode};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket};

use crate::conninfo;
use crate::tls::{
    AttemptFailure, ChannelBindingMode, FailedAttempt, HandshakeState, MakeRustlsConnect, SslMode,
    TlsOptions, TlsOptionsBuilder,
};
use crate::{Error, Result};

/// Default connection timeout when the conninfo sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys passed on to tokio-postgres (the TLS keys are [`crate::tls`]'s);
/// others (libpq-only) are dropped with a debug message rather than failing
/// the connection.
const SUPPORTED_KEYS: [&str; 12] = [
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "target_session_attrs",
];

/// Builds a tokio-postgres configuration and the TLS settings from a libpq
/// conninfo (key=value or URI). Keys tokio-postgres does not know are
/// ignored; the TLS keys go to [`TlsOptionsBuilder`].
fn client_config(
    conninfo: &str,
    application_name: &str,
) -> Result<(tokio_postgres::Config, TlsOptions)> {
    let redacted = conninfo::redact(conninfo);
    let bad = |message: String| Error::Postgres {
        conninfo: redacted.clone(),
        message: format!("invalid conninfo: {message}"),
    };
    let pairs = conninfo::parse(conninfo).map_err(|e| bad(e.0))?;
    let mut tls = TlsOptionsBuilder::default();
    let mut kept = Vec::new();
    for (k, v) in pairs {
        if tls.set(&k, &v) {
            continue;
        }
        if SUPPORTED_KEYS.contains(&k.as_str()) {
            kept.push(format!("{k}={}", conninfo::quote_value(&v)));
        } else {
            tracing::debug!("conninfo key `{k}` is not supported and is ignored");
        }
    }
    let tls = tls
        .resolve(&|name| std::env::var(name).ok())
        .map_err(|e| bad(e.to_string()))?;
    let mut config =
        tokio_postgres::Config::from_str(&kept.join(" ")).map_err(|e| bad(e.to_string()))?;
    config.channel_binding(match tls.channel_binding {
        ChannelBindingMode::Disable => ChannelBinding::Disable,
        ChannelBindingMode::Prefer => ChannelBinding::Prefer,
        ChannelBindingMode::Require => ChannelBinding::Require,
    });
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_user().is_none()
        && let Ok(user) = std::env::var("PGUSER").or_else(|_| std::env::var("USER"))
    {
        config.user(&user);
    }
    if config.get_hosts().is_empty() {
        config.host(
            std::env::var("PGHOST")
                .as_deref()
                .unwrap_or("/var/run/postgresql"),
        );
    }
    if config.get_dbname().is_none()
        && let Ok(db) = std::env::var("PGDATABASE")
    {
        config.dbname(&db);
    }
    Ok((config, tls))
}

/// One connection attempt with `tls`; the connection task runs on the runtime.
async fn open<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// An open SQL connection.
pub struct PgConnection {
    rt: Runtime,
    client: Client,
    conninfo: String,
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("conninfo", &self.conninfo)
            .finish_non_exhaustive()
    }
}

impl PgConnection {
    /// Connects with `conninfo` (libpq key=value or URI) as `application_name`
    /// (unless the conninfo sets one).
    ///
    /// TLS as libpq's `sslmode` says ([`crate::tls`]): unix sockets never
    /// use it; `allow` and `prefer` retry once the other way. Errors name
    /// the problem (the server does not support TLS, certificate verify
    /// failed, a missing root certificate file) and the sslmode.
    pub fn connect(conninfo: &str, application_name: &str) -> Result<Self> {
        let redacted = conninfo::redact(conninfo);
        let fail = |message: String| Error::Postgres {
            conninfo: redacted.clone(),
            message,
        };
        let (mut config, tls) = client_config(conninfo, application_name)?;
        let unix = config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
        let mode = if unix { SslMode::Disable } else { tls.sslmode };
        let connector = match mode {
            SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(
                tls.client_config().map_err(|e| fail(format!("TLS: {e}")))?,
                mode,
            )),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the I/O runtime: {e}")))?;
        let client = crate::tls::connect_with_retry(mode, connector.is_some(), &redacted, |tls| {
            config.ssl_mode(match (tls, mode.plain_allowed()) {
                (false, _) => PgSslMode::Disable,
                (true, true) => PgSslMode::Prefer,
                (true, false) => PgSslMode::Require,
            });
            let attempt = connector.as_ref().map(MakeRustlsConnect::fresh);
            let result = match attempt.clone() {
                Some(tls) => rt.block_on(open(&config, tls)),
                None => rt.block_on(open(&config, NoTls)),
            };
            result.map_err(|e| {
                let state = attempt.map_or(HandshakeState::NotStarted, |c| c.state());
                let failure = if e.as_db_error().is_some() {
                    AttemptFailure::Refused
                } else if state == HandshakeState::Failed {
                    AttemptFailure::Handshake
                } else {
                    AttemptFailure::Other
                };
                FailedAttempt {
                    error: error_text(&e),
                    used_tls: state != HandshakeState::NotStarted,
                    failure,
                }
            })
        })
        .map_err(|e| fail(format!("cannot connect: {e} (sslmode={mode})")))?;
        Ok(Self {
            rt,
            client,
            conninfo: redacted,
        })
    }

    fn err(&self, sql: &str, e: &tokio_postgres::Error) -> Error {
        Error::Postgres {
            conninfo: self.conninfo.clone(),
            message: format!("`{sql}` failed: {}", error_text(e)),
        }
    }

    /// Runs `sql` (simple query protocol) and returns the rows as text.
    pub fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self
            .rt
            .block_on(self.client.simple_query(sql))
            .map_err(|e| self.err(sql, &e))?;
        let mut rows = Vec::new();
        for m in messages {
            if let SimpleQueryMessage::Row(row) = m {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }

    /// The first column of the first row of `sql`.
    pub fn query_value(&self, sql: &str) -> Result<Option<String>> {
        Ok(self
            .query_text(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// Runs a statement, ignoring its result.
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| self.err(sql, &e))
    }

    /// `server_version_num` (e.g. 150004).
    pub fn server_version_num(&self) -> Result<u32> {
        let v = self
            .query_value("SHOW server_version_num")?
            .unwrap_or_default();
        v.trim().parse().map_err(|_| Error::Postgres {
            conninfo: self.conninfo.clone(),
            message: format!("unexpected server_version_num `{v}`"),
        })
    }

    /// The cluster's system identifier (`pg_control_system()`).
    pub fn system_identifier(&self) -> Result<u64> {
        let v = self
            .query_value("SELECT system_identifier FROM pg_control_system()")?
            .unwrap_or_default();
        v.trim().parse().map_err(|_| Error::Postgres {
            conninfo: self.conninfo.clone(),
            message: format!("unexpected system identifier `{v}`"),
        })
    }

    /// Whether the server is a standby.
    pub fn is_in_recovery(&self) -> Result<bool> {
        Ok(self.query_value("SELECT pg_is_in_recovery()")?.as_deref() == Some("t"))
    }

    /// The name of the WAL file holding the current insert position.
    pub fn current_wal_file(&self) -> Result<String> {
        self.query_value("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")?
            .ok_or_else(|| Error::Postgres {
                conninfo: self.conninfo.clone(),
                message: "pg_walfile_name returned NULL".into(),
            })
    }

    /// Issues `CHECKPOINT` (needs superuser or pg_checkpoint).
    pub fn checkpoint(&self) -> Result<()> {
        self.execute("CHECKPOINT")
    }

    /// Calls `pg_switch_wal()`. Returns the name of the WAL file that was
    /// closed, or `None` when no switch was needed (nothing written since the
    /// last switch).
    pub fn switch_wal(&self) -> Result<Option<String>> {
        let before = self.current_wal_file()?;
        self.query_value("SELECT pg_switch_wal()")?;
        let after = self.current_wal_file()?;
        Ok((before != after).then_some(before))
    }

    /// `pg_stat_archiver`: (last_archived_wal, last_failed_wal, failed_count).
    pub fn archiver_stats(&self) -> Result<(Option<String>, Option<String>, u64)> {
        let rows = self.query_text(
            "SELECT last_archived_wal, last_failed_wal, failed_count FROM pg_stat_archiver",
        )?;
        let row = rows.into_iter().next().unwrap_or_default();
        let get = |i: usize| row.get(i).cloned().flatten();
        Ok((
            get(0),
            get(1),
            get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
        ))
    }
}

/// The error text with the server's message when there is one.
fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_keys_are_dropped() {
        let (c, _) = client_config(
            "host=127.0.0.1 port=5 krbsrvname=x user=u dbname=d",
            "barman",
        )
        .unwrap();
        assert_eq!(c.get_ports(), [5]);
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_application_name(), Some("barman"));
    }

    #[test]
    fn tls_keys_are_taken_by_the_tls_settings() {
        let (c, tls) = client_config(
            "host=db port=5 user=u sslmode=verify-full sslrootcert=/ca.crt sslsni=0 \
             channel_binding=require",
            "barman",
        )
        .unwrap();
        assert_eq!(tls.sslmode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, crate::tls::RootCert::File("/ca.crt".into()));
        assert!(!tls.sni);
        assert_eq!(c.get_channel_binding(), ChannelBinding::Require);
        // The URI form, with several hosts kept for tokio-postgres.
        let (c, tls) = client_config(
            "postgresql://u:pw@a:1,b:2/db?sslmode=require&sslrootcert=%2Fr.crt",
            "barman",
        )
        .unwrap();
        assert_eq!(c.get_hosts().len(), 2);
        assert_eq!(c.get_ports(), [1, 2]);
        assert_eq!(c.get_dbname(), Some("db"));
        assert_eq!(tls.sslmode, SslMode::Require);
        assert_eq!(tls.root_cert, crate::tls::RootCert::File("/r.crt".into()));
        for bad in [
            "host=h sslmode=sometimes",
            "host=h sslcrl=/x",
            "postgres://h?sslsni=2",
        ] {
            let e = client_config(bad, "barman").unwrap_err().to_string();
            assert!(e.contains("invalid conninfo"), "{bad}: {e}");
        }
    }

    #[test]
    fn verifying_modes_need_a_root_certificate_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.crt");
        let err = PgConnection::connect(
            &format!(
                "host=127.0.0.1 port=1 user=u password=hunter2 sslmode=verify-ca sslrootcert={}",
                missing.display()
            ),
            "barman",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("missing-ca.crt") && err.contains("does not exist"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn connection_errors_do_not_leak_passwords() {
        // Nothing listens on port 1. A password the URI parser refuses is
        // not quoted back either.
        for (conninfo, failure) in [
            (
                "host=127.0.0.1 port=1 user=u password=hunter2 connect_timeout=2",
                "cannot connect",
            ),
            (
                "postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
                "cannot connect",
            ),
            (
                "postgresql://u@127.0.0.1:1/db?password=hunter2&connect_timeout=2",
                "cannot connect",
            ),
            (
                "postgresql://u:hunter2%zz@127.0.0.1:1/db",
                "invalid conninfo",
            ),
            (
                "postgresql://u@127.0.0.1:1/db?password=hunter2%zz",
                "invalid conninfo",
            ),
        ] {
            let err = PgConnection::connect(conninfo, "barman")
                .unwrap_err()
                .to_string();
            assert!(err.contains(failure), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
