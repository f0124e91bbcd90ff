//! `barman replication-status`: the streaming clients of a server.
//!
//! One row of `pg_stat_replication` per WAL sender, joined with
//! `pg_replication_slots` on `active_pid` for the slot name (logical slots
//! are left out, as Barman does), plus the server's current WAL position:
//! `pg_current_wal_lsn()` on a primary, `pg_last_wal_receive_lsn()` on a
//! standby. A client whose `replay_lsn` is NULL never replays WAL: it is a
//! *WAL streamer* (`barman receive-wal`, `pg_receivewal`); any other client is
//! a *standby*.
//!
//! Column and function names are PostgreSQL 10+ (`sent_lsn`,
//! `pg_current_wal_lsn()`); servers older than 10 are queried with the
//! `*_location` / `*_xlog_*` names instead. That older path follows Barman's
//! SQL but is **untested** here (the test suite runs PostgreSQL 15).
//!
//! This module only reads and models; rendering (console, `-f json`) is the
//! command's business.

use barman_wal::Lsn;

use crate::{Error, Result};
use barman_config::ServerConfig;
use barman_pg::conninfo::redact as redact_conninfo;
use barman_pg::postgres::PgConnection;

/// Which clients to list (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Every streaming client.
    #[default]
    All,
    /// Only clients that replay WAL (standbys).
    HotStandby,
    /// Only clients that do not replay WAL (WAL receivers).
    WalStreamer,
}

impl Target {
    /// Barman's name for the listed clients: `streaming clients`,
    /// `hot standby servers` or `WAL streamers`.
    pub fn title(self) -> &'static str {
        match self {
            Self::All => "streaming clients",
            Self::HotStandby => "hot standby servers",
            Self::WalStreamer => "WAL streamers",
        }
    }
}

/// Which connection to use (`--source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// `conninfo`.
    #[default]
    BackupHost,
    /// `wal_conninfo`, else `wal_streaming_conninfo`, else `conninfo`.
    WalHost,
}

/// The SQL conninfo `source` selects for `server`, as Barman resolves it.
pub fn source_conninfo(server: &ServerConfig, source: Source) -> Option<&str> {
    match source {
        Source::BackupHost => server.conninfo.as_deref(),
        Source::WalHost => server
            .wal_conninfo
            .as_deref()
            .or(server.wal_streaming_conninfo.as_deref())
            .or(server.conninfo.as_deref()),
    }
}

/// Whether a client replays WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Replays WAL: a (hot) standby.
    Standby,
    /// Receives WAL without replaying it (`replay_lsn` is NULL).
    WalStreamer,
}

impl ClientKind {
    /// Barman's label: `standby` or `WAL streamer`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Standby => "standby",
            Self::WalStreamer => "WAL streamer",
        }
    }
}

/// One WAL sender of `pg_stat_replication`. Text fields are as the server
/// prints them; NULLs are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamingClient {
    /// WAL sender pid.
    pub pid: i64,
    /// Role the client connected as.
    pub usename: Option<String>,
    /// `application_name` of the client.
    pub application_name: String,
    /// Client IP address; `None` for a unix-socket connection.
    pub client_addr: Option<String>,
    /// Reverse-resolved client host name (with `log_hostname`).
    pub client_hostname: Option<String>,
    /// Client TCP port (-1 for a unix socket).
    pub client_port: Option<i64>,
    /// Connection time, as Python prints a datetime
    /// (`2024-05-01 10:00:00.123456+00:00`).
    pub backend_start: Option<String>,
    /// The standby's xmin horizon (with `hot_standby_feedback`).
    pub backend_xmin: Option<String>,
    /// WAL sender state (`streaming`, `catchup`, `backup`, ...).
    pub state: Option<String>,
    /// Last WAL position sent.
    pub sent_lsn: Option<Lsn>,
    /// Last position written by the client.
    pub write_lsn: Option<Lsn>,
    /// Last position flushed by the client.
    pub flush_lsn: Option<Lsn>,
    /// Last position replayed by the client (`None`: a WAL streamer).
    pub replay_lsn: Option<Lsn>,
    /// Priority as a synchronous standby (0: asynchronous).
    pub sync_priority: i64,
    /// `async`, `potential`, `sync` or `quorum`.
    pub sync_state: String,
    /// Physical replication slot the client uses.
    pub slot_name: Option<String>,
    /// The server's current position when the row was read (the diffs'
    /// reference).
    pub current_lsn: Option<Lsn>,
}

/// `lsn - current` in bytes (≤ 0 for a client behind), `None` when either
/// is unknown.
pub fn lsn_diff(lsn: Option<Lsn>, current: Option<Lsn>) -> Option<i64> {
    let (a, b) = (i128::from(lsn?.0), i128::from(current?.0));
    i64::try_from(a - b).ok()
}

impl StreamingClient {
    /// Standby or WAL streamer.
    pub fn kind(&self) -> ClientKind {
        if self.replay_lsn.is_some() {
            ClientKind::Standby
        } else {
            ClientKind::WalStreamer
        }
    }

    /// Sent, write, flush and replay positions, each with its diff from the
    /// current position, in that order (`("sent", lsn, diff)`).
    pub fn positions(&self) -> [(&'static str, Option<Lsn>, Option<i64>); 4] {
        let d = |l| lsn_diff(l, self.current_lsn);
        [
            ("sent", self.sent_lsn, d(self.sent_lsn)),
            ("write", self.write_lsn, d(self.write_lsn)),
            ("flush", self.flush_lsn, d(self.flush_lsn)),
            ("replay", self.replay_lsn, d(self.replay_lsn)),
        ]
    }

    /// Barman's "sync stage": how far the client has gone with the current
    /// WAL (`5/5 Hot standby (max)` ... `1/5 1-safe`; WAL streamers stop at
    /// `3/3 Remote write`).
    pub fn sync_stage(&self) -> String {
        let [sent, write, flush, replay] = self.positions().map(|(_, _, d)| d);
        let max = match self.kind() {
            ClientKind::Standby if replay == Some(0) => return "5/5 Hot standby (max)".into(),
            ClientKind::Standby if flush == Some(0) => return "4/5 2-safe".into(),
            ClientKind::Standby => 5,
            ClientKind::WalStreamer => 3,
        };
        if write == Some(0) {
            format!("3/{max} Remote write")
        } else if sent == Some(0) {
            format!("2/{max} WAL Sent (min)")
        } else {
            format!("1/{max} 1-safe")
        }
    }
}

/// What `replication-status` reports for one server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicationStatus {
    /// `server_version_num`.
    pub server_version: u32,
    /// Whether the server is a standby.
    pub in_recovery: bool,
    /// Current WAL position (receive position on a standby; `None` when a
    /// standby has received nothing yet).
    pub current_lsn: Option<Lsn>,
    /// The clients `target` selected, synchronous ones first.
    pub clients: Vec<StreamingClient>,
}

/// Function and column names for a server version.
struct Names {
    current: &'static str,
    receive: &'static str,
    suffix: &'static str,
}

impl Names {
    fn for_version(version: u32) -> Self {
        if version >= 100_000 {
            Self {
                current: "pg_current_wal_lsn",
                receive: "pg_last_wal_receive_lsn",
                suffix: "lsn",
            }
        } else {
            Self {
                current: "pg_current_xlog_location",
                receive: "pg_last_xlog_receive_location",
                suffix: "location",
            }
        }
    }

    fn current_lsn_sql(&self) -> String {
        format!(
            "CASE WHEN pg_is_in_recovery() THEN {}() ELSE {}() END",
            self.receive, self.current
        )
    }
}

/// The query over `pg_stat_replication` for `target` (columns in the order
/// [`client_from_row`] reads them).
fn stats_sql(version: u32, target: Target) -> String {
    let n = Names::for_version(version);
    let s = n.suffix;
    let replay_filter = match target {
        Target::All => String::new(),
        Target::HotStandby => format!(" AND r.replay_{s} IS NOT NULL"),
        Target::WalStreamer => format!(" AND r.replay_{s} IS NULL"),
    };
    format!(
        "SELECT r.pid, r.usename, r.application_name, r.client_addr, r.client_hostname, \
         r.client_port, to_char(r.backend_start, 'YYYY-MM-DD HH24:MI:SS.US'), \
         to_char(r.backend_start, 'OF'), r.backend_xmin, r.state, \
         r.sent_{s}, r.write_{s}, r.flush_{s}, r.replay_{s}, r.sync_priority, r.sync_state, \
         rs.slot_name, {current} \
         FROM pg_stat_replication r \
         LEFT JOIN pg_replication_slots rs ON (r.pid = rs.active_pid) \
         WHERE (rs.slot_type IS NULL OR rs.slot_type = 'physical'){replay_filter} \
         ORDER BY r.sync_state DESC, r.sync_priority, r.pid",
        current = n.current_lsn_sql()
    )
}

/// The privileges query: superuser, or `pg_monitor` (or both
/// `pg_read_all_settings` and `pg_read_all_stats`) from 10 on.
fn privileges_sql(version: u32) -> &'static str {
    if version >= 100_000 {
        "SELECT rolsuper OR pg_has_role(current_user, 'pg_monitor', 'USAGE') \
         OR (pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') \
         AND pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')) \
         FROM pg_roles WHERE rolname = current_user"
    } else {
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    }
}

/// Python's `str(datetime)` from `YYYY-MM-DD HH:MI:SS.US` and a `+HH[:MM]`
/// offset: microseconds dropped when zero, offset as `+HH:MM`.
fn python_timestamp(local: &str, offset: &str) -> String {
    let local = local.strip_suffix(".000000").unwrap_or(local);
    let offset = if offset.contains(':') {
        offset.to_owned()
    } else {
        format!("{offset}:00")
    };
    format!("{local}{offset}")
}

/// A value the server printed that does not parse: the bare reason.
type Parsed<T> = std::result::Result<Option<T>, String>;

fn parse_field<T: std::str::FromStr>(field: &str, value: Option<&str>) -> Parsed<T> {
    value
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("unexpected {field} `{v}`"))
        })
        .transpose()
}

/// One row of [`stats_sql`].
fn client_from_row(row: &[Option<String>]) -> std::result::Result<StreamingClient, String> {
    let col = |i: usize| row.get(i).and_then(|v| v.as_deref());
    let text = |i: usize| col(i).map(str::to_owned);
    Ok(StreamingClient {
        pid: parse_field("pid", col(0))?.unwrap_or_default(),
        usename: text(1),
        application_name: text(2).unwrap_or_default(),
        client_addr: text(3),
        client_hostname: text(4),
        client_port: parse_field("client_port", col(5))?,
        backend_start: col(6).map(|t| python_timestamp(t, col(7).unwrap_or("+00"))),
        backend_xmin: text(8),
        state: text(9),
        sent_lsn: parse_field("sent_lsn", col(10))?,
        write_lsn: parse_field("write_lsn", col(11))?,
        flush_lsn: parse_field("flush_lsn", col(12))?,
        replay_lsn: parse_field("replay_lsn", col(13))?,
        sync_priority: parse_field("sync_priority", col(14))?.unwrap_or_default(),
        sync_state: text(15).unwrap_or_default(),
        slot_name: text(16),
        current_lsn: parse_field("current lsn", col(17))?,
    })
}

/// Reads the streaming clients `target` selects on the server behind `pg`.
///
/// A user that is neither superuser nor a `pg_monitor` member would see
/// the rows with their details hidden: that is an error naming the user.
///
/// `conninfo` is the string `pg` was opened with (errors show it redacted).
pub fn replication_status(
    pg: &PgConnection,
    conninfo: &str,
    target: Target,
) -> Result<ReplicationStatus> {
    let err = |message: String| {
        Error::from(barman_pg::Error::Postgres {
            conninfo: redact_conninfo(conninfo),
            message,
        })
    };
    let server_version = pg.server_version_num()?;
    let names = Names::for_version(server_version);
    let head = pg.query_text(&format!(
        "SELECT pg_is_in_recovery(), {}, current_user, ({})",
        names.current_lsn_sql(),
        privileges_sql(server_version)
    ))?;
    let head = head.into_iter().next().unwrap_or_default();
    let col = |i: usize| head.get(i).and_then(|v| v.as_deref());
    if col(3) != Some("t") {
        return Err(err(format!(
            "Postgres user '{}' is missing required privileges \
             (see \"Preliminary steps\" in the Barman manual)",
            col(2).unwrap_or_default()
        )));
    }
    let clients = pg
        .query_text(&stats_sql(server_version, target))?
        .iter()
        .map(|row| client_from_row(row))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(format!("pg_stat_replication: {e}")))?;
    Ok(ReplicationStatus {
        server_version,
        in_recovery: col(0) == Some("t"),
        current_lsn: parse_field("current lsn", col(1)).map_err(err)?,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(sent: u64, write: u64, flush: Option<u64>, replay: Option<u64>) -> StreamingClient {
        StreamingClient {
            sent_lsn: Some(Lsn(sent)),
            write_lsn: Some(Lsn(write)),
            flush_lsn: flush.map(Lsn),
            replay_lsn: replay.map(Lsn),
            current_lsn: Some(Lsn(0x300_0000)),
            ..StreamingClient::default()
        }
    }

    #[test]
    fn diffs_are_signed_bytes_from_current() {
        assert_eq!(lsn_diff(Some(Lsn(10)), Some(Lsn(10))), Some(0));
        assert_eq!(lsn_diff(Some(Lsn(0)), Some(Lsn(1 << 40))), Some(-(1 << 40)));
        assert_eq!(lsn_diff(Some(Lsn(5)), Some(Lsn(2))), Some(3));
        assert_eq!(lsn_diff(None, Some(Lsn(2))), None);
        assert_eq!(lsn_diff(Some(Lsn(2)), None), None);
        assert_eq!(lsn_diff(Some(Lsn(u64::MAX)), Some(Lsn(0))), None);
    }

    #[test]
    fn kinds_and_sync_stages_follow_barman() {
        let cur = 0x300_0000;
        let c = client(cur, cur, Some(cur), Some(cur));
        assert_eq!(c.kind(), ClientKind::Standby);
        assert_eq!(c.sync_stage(), "5/5 Hot standby (max)");
        assert_eq!(
            client(cur, cur, Some(cur), Some(1)).sync_stage(),
            "4/5 2-safe"
        );
        assert_eq!(
            client(cur, cur, Some(1), Some(1)).sync_stage(),
            "3/5 Remote write"
        );
        assert_eq!(
            client(cur, 1, Some(1), Some(1)).sync_stage(),
            "2/5 WAL Sent (min)"
        );
        assert_eq!(client(1, 1, Some(1), Some(1)).sync_stage(), "1/5 1-safe");
        let w = client(cur, cur, Some(cur), None);
        assert_eq!(w.kind(), ClientKind::WalStreamer);
        assert_eq!(w.kind().label(), "WAL streamer");
        assert_eq!(w.sync_stage(), "3/3 Remote write");
        assert_eq!(
            client(cur, 1, None, None).sync_stage(),
            "2/3 WAL Sent (min)"
        );
        assert_eq!(client(1, 1, None, None).sync_stage(), "1/3 1-safe");
    }

    #[test]
    fn rows_parse_into_clients() {
        let row: Vec<Option<String>> = [
            Some("4242"),
            Some("postgres"),
            Some("standby1"),
            Some("127.0.0.1"),
            None,
            Some("51234"),
            Some("2024-05-01 10:00:00.000000"),
            Some("+05:30"),
            None,
            Some("streaming"),
            Some("0/3000148"),
            Some("0/3000148"),
            Some("0/3000060"),
            None,
            Some("0"),
            Some("async"),
            Some("s1"),
            Some("0/3000148"),
        ]
        .into_iter()
        .map(|v| v.map(str::to_owned))
        .collect();
        let c = client_from_row(&row).unwrap();
        assert_eq!(c.pid, 4242);
        assert_eq!(c.client_port, Some(51234));
        assert_eq!(
            c.backend_start.as_deref(),
            Some("2024-05-01 10:00:00+05:30")
        );
        assert_eq!(c.flush_lsn, Some(Lsn(0x300_0060)));
        assert_eq!(c.kind(), ClientKind::WalStreamer);
        assert_eq!(c.positions()[2].2, Some(-0xE8));
        assert_eq!(c.slot_name.as_deref(), Some("s1"));
        assert_eq!(
            python_timestamp("2024-05-01 10:00:00.123400", "-03"),
            "2024-05-01 10:00:00.123400-03:00"
        );
        let mut bad = row.clone();
        bad[10] = Some("zz".into());
        assert!(client_from_row(&bad).is_err());
    }

    #[test]
    fn sql_uses_the_names_of_the_version() {
        let new = stats_sql(150_000, Target::WalStreamer);
        assert!(new.contains("r.replay_lsn IS NULL"), "{new}");
        assert!(new.contains("pg_current_wal_lsn()"), "{new}");
        let old = stats_sql(96_000, Target::HotStandby);
        assert!(old.contains("r.sent_location"), "{old}");
        assert!(old.contains("r.replay_location IS NOT NULL"), "{old}");
        assert!(old.contains("pg_last_xlog_receive_location()"), "{old}");
        assert!(!stats_sql(150_000, Target::All).contains("replay_lsn IS"));
    }
}
