//! SQL access to a PostgreSQL server (`conninfo`), through `tokio-postgres`
//! on a small single-threaded tokio runtime behind a blocking facade.
//!
//! Only what the operations need: the system identifier and version, WAL
//! switching, checkpoints, the current WAL position and the archiver's
//! statistics. Messages never contain a password: conninfo strings are shown
//! through [`redact_conninfo`].

use std::str::FromStr;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::{Error, Result};

/// Default connection timeout when the conninfo sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys of a libpq conninfo whose values are secret.
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

/// Keys tokio-postgres understands; others (libpq-only) are dropped with a
/// debug message rather than failing the connection.
const SUPPORTED_KEYS: [&str; 14] = [
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "target_session_attrs",
    "channel_binding",
];

/// A conninfo string with secret values replaced by `***` (key=value form;
/// a URI has its password removed).
pub fn redact_conninfo(conninfo: &str) -> String {
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        // scheme://user:password@host...
        if let Some((scheme, rest)) = conninfo.split_once("://")
            && let Some((auth, tail)) = rest.split_once('@')
            && let Some((user, _)) = auth.split_once(':')
        {
            return format!("{scheme}://{user}:***@{tail}");
        }
        return conninfo.to_owned();
    }
    parse_conninfo(conninfo).map_or_else(
        |_| "<unparsable conninfo>".to_owned(),
        |pairs| {
            pairs
                .iter()
                .map(|(k, v)| {
                    if SECRET_KEYS.contains(&k.as_str()) {
                        format!("{k}=***")
                    } else {
                        format!("{k}={}", quote_value(v))
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\\']) {
        return v.to_owned();
    }
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// Parses a libpq `key=value` conninfo (values optionally single-quoted with
/// backslash escapes). The error is a bare reason.
pub fn parse_conninfo(conninfo: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing `=` after `{key}`"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted value for `{key}`")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        if key.is_empty() {
            return Err("empty key".into());
        }
        pairs.push((key, value));
    }
}

/// Builds a tokio-postgres configuration from a libpq conninfo (key=value
/// or URI). Keys tokio-postgres does not know are ignored.
fn client_config(conninfo: &str, application_name: &str) -> Result<tokio_postgres::Config> {
    let redacted = redact_conninfo(conninfo);
    let bad = |message: String| Error::Postgres {
        conninfo: redacted.clone(),
        message,
    };
    let mut config = if conninfo.contains("://") {
        tokio_postgres::Config::from_str(conninfo)
            .map_err(|e| bad(format!("invalid conninfo: {e}")))?
    } else {
        let pairs = parse_conninfo(conninfo).map_err(|e| bad(format!("invalid conninfo: {e}")))?;
        let mut kept = Vec::new();
        for (k, v) in pairs {
            if SUPPORTED_KEYS.contains(&k.as_str()) {
                kept.push(format!("{k}={}", quote_value(&v)));
            } else {
                tracing::debug!("conninfo key `{k}` is not supported and is ignored");
            }
        }
        tokio_postgres::Config::from_str(&kept.join(" "))
            .map_err(|e| bad(format!("invalid conninfo: {e}")))?
    };
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
    Ok(config)
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
    pub fn connect(conninfo: &str, application_name: &str) -> Result<Self> {
        let redacted = redact_conninfo(conninfo);
        let config = client_config(conninfo, application_name)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Postgres {
                conninfo: redacted.clone(),
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        let client = rt
            .block_on(async {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("PostgreSQL connection closed: {e}");
                    }
                });
                Ok::<_, tokio_postgres::Error>(client)
            })
            .map_err(|e| Error::Postgres {
                conninfo: redacted.clone(),
                message: format!("cannot connect: {}", error_text(&e)),
            })?;
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
    fn conninfo_parses_quotes_and_escapes() {
        let pairs = parse_conninfo("host=pg  port = 5432 password='a b\\'c' user=x\\ y").unwrap();
        assert_eq!(
            pairs,
            [
                ("host".into(), "pg".into()),
                ("port".into(), "5432".into()),
                ("password".into(), "a b'c".into()),
                ("user".into(), "x y".into()),
            ]
        );
        assert!(parse_conninfo("host").is_err());
        assert!(parse_conninfo("host='x").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let r = redact_conninfo("host=pg password=s3cret user=barman");
        assert_eq!(r, "host=pg password=*** user=barman");
        assert!(!r.contains("s3cret"));
        let r = redact_conninfo("postgresql://barman:s3cret@pg:5432/postgres");
        assert_eq!(r, "postgresql://barman:***@pg:5432/postgres");
        assert!(!redact_conninfo("host='x password=s3cret").contains("s3cret"));
    }

    #[test]
    fn unsupported_keys_are_dropped() {
        let c = client_config(
            "host=127.0.0.1 port=5 sslrootcert=/x user=u dbname=d",
            "barman",
        )
        .unwrap();
        assert_eq!(c.get_ports(), [5]);
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_application_name(), Some("barman"));
    }

    #[test]
    fn connection_errors_do_not_leak_passwords() {
        // Nothing listens on port 1.
        let err = PgConnection::connect(
            "host=127.0.0.1 port=1 user=u password=hunter2 connect_timeout=2",
            "barman",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot connect"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
