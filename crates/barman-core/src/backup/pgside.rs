//! The PostgreSQL side of a backup: settings, tablespaces, start and stop.

use barman_wal::{Lsn, SegmentName, TimelineId, WalSegmentSize};

use crate::{Error, Result};
use barman_catalog::Tablespace;
use barman_pg::postgres::PgConnection;

/// What a backup records about its server before copying.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `server_version_num`.
    pub version: u32,
    /// System identifier.
    pub systemid: u64,
    /// `data_directory`.
    pub data_directory: String,
    /// `config_file`, `hba_file`, `ident_file`.
    pub config_file: Option<String>,
    /// `hba_file`.
    pub hba_file: Option<String>,
    /// `ident_file`.
    pub ident_file: Option<String>,
    /// `data_checksums` (`on`/`off`).
    pub data_checksums: Option<String>,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    /// User tablespaces.
    pub tablespaces: Vec<Tablespace>,
    /// Whether the server is a standby.
    pub in_recovery: bool,
    /// Sum of `pg_tablespace_size` over all tablespaces (Barman's
    /// `current_size`).
    pub cluster_size: Option<u64>,
    /// `wal_level` (`minimal`, `replica`, `logical`).
    pub wal_level: Option<String>,
    /// `max_wal_senders`.
    pub max_wal_senders: Option<u32>,
    /// `summarize_wal` (`on`/`off`) on PostgreSQL 17+, `None` before.
    pub summarize_wal: Option<String>,
}

impl ServerFacts {
    /// Why this server cannot be backed up at all (`wal_level = minimal`:
    /// PostgreSQL refuses to start a backup), or with `streamed`
    /// (`backup_method = postgres`) not over a replication connection
    /// (`max_wal_senders = 0`); `None` when it can.
    pub fn backup_obstacle(&self, streamed: bool) -> Option<String> {
        let level = self.wal_level.as_deref().unwrap_or("replica");
        if level == "minimal" {
            return Some(format!(
                "wal_level is minimal: a backup needs wal_level = replica (or logical){}",
                if streamed {
                    ", and backup_method = postgres also max_wal_senders > 0"
                } else {
                    ""
                }
            ));
        }
        if streamed && self.max_wal_senders == Some(0) {
            return Some(
                "max_wal_senders is 0: backup_method = postgres streams the backup over a \
                 replication connection, which needs max_wal_senders > 0 (and wal_level = \
                 replica or logical)"
                    .to_owned(),
            );
        }
        None
    }
}

fn setting(pg: &PgConnection, name: &str) -> Result<Option<String>> {
    pg.query_value(&format!(
        "SELECT setting FROM pg_catalog.pg_settings WHERE name = '{name}'"
    ))
    .map_err(crate::Error::from)
}

/// Reads [`ServerFacts`].
pub fn server_facts(pg: &PgConnection) -> Result<ServerFacts> {
    let version = pg.server_version_num()?;
    let systemid = pg.system_identifier()?;
    let data_directory = setting(pg, "data_directory")?.ok_or_else(|| {
        Error::postgres(
            String::new(),
            "cannot read data_directory (the user needs superuser or pg_read_all_settings)",
        )
    })?;
    let wal_segment_size = setting(pg, "wal_segment_size")?
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(16 * 1024 * 1024);
    let rows = pg.query_text(
        "SELECT spcname, oid, pg_catalog.pg_tablespace_location(oid) FROM pg_catalog.pg_tablespace \
         WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid",
    )?;
    let mut tablespaces = Vec::new();
    for row in rows {
        let name = row.first().cloned().flatten().unwrap_or_default();
        let oid = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let location = row.get(2).cloned().flatten().unwrap_or_default();
        if location.is_empty() || !location.starts_with('/') {
            // An in-place tablespace (allow_in_place_tablespaces) lives in pg_tblspc itself.
            continue;
        }
        tablespaces.push(Tablespace {
            name,
            oid,
            location,
        });
    }
    // Barman's `current_size`: every tablespace, `pg_global` included.
    let cluster_size = pg
        .query_value(
            "SELECT sum(pg_catalog.pg_tablespace_size(oid))::bigint FROM pg_catalog.pg_tablespace",
        )?
        .and_then(|v| v.parse().ok());
    Ok(ServerFacts {
        version,
        systemid,
        data_directory,
        config_file: setting(pg, "config_file")?,
        hba_file: setting(pg, "hba_file")?,
        ident_file: setting(pg, "ident_file")?,
        data_checksums: setting(pg, "data_checksums")?,
        summarize_wal: if version >= 170_000 {
            setting(pg, "summarize_wal")?
        } else {
            None
        },
        wal_segment_size,
        tablespaces,
        in_recovery: pg.is_in_recovery()?,
        cluster_size,
        wal_level: setting(pg, "wal_level")?,
        max_wal_senders: setting(pg, "max_wal_senders")?.and_then(|v| v.parse().ok()),
    })
}

/// Starts a concurrent (non-exclusive) backup on this session; returns the start LSN.
pub fn start_backup(pg: &PgConnection, version: u32, label: &str, fast: bool) -> Result<Lsn> {
    let label = label.replace('\'', "''");
    let sql = if version >= 150_000 {
        format!("SELECT pg_catalog.pg_backup_start('{label}', {fast})")
    } else {
        format!("SELECT pg_catalog.pg_start_backup('{label}', {fast}, false)")
    };
    let lsn = pg.query_value(&sql)?.unwrap_or_default();
    lsn.parse()
        .map_err(|_| Error::postgres(String::new(), format!("unexpected start LSN `{lsn}`")))
}

/// What `pg_backup_stop` returns.
#[derive(Debug, Clone)]
pub struct StopResult {
    /// End LSN.
    pub lsn: Lsn,
    /// Content of `backup_label`.
    pub label: String,
    /// Content of `tablespace_map` (empty when there are no tablespaces).
    pub tablespace_map: String,
}

/// Stops the concurrent backup started on this session (not waiting for archiving).
pub fn stop_backup(pg: &PgConnection, version: u32) -> Result<StopResult> {
    let sql = if version >= 150_000 {
        "SELECT lsn, labelfile, spcmapfile FROM pg_catalog.pg_backup_stop(false)"
    } else {
        "SELECT lsn, labelfile, spcmapfile FROM pg_catalog.pg_stop_backup(false, false)"
    };
    let row = pg.query_text(sql)?.into_iter().next().unwrap_or_default();
    let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let lsn_text = get(0);
    let lsn = lsn_text
        .parse()
        .map_err(|_| Error::postgres(String::new(), format!("unexpected stop LSN `{lsn_text}`")))?;
    Ok(StopResult {
        lsn,
        label: get(1),
        tablespace_map: get(2),
    })
}

/// Start facts read from a `backup_label`: start LSN, its segment, timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFacts {
    /// `START WAL LOCATION`.
    pub start_lsn: Lsn,
    /// The segment named there.
    pub start_wal: SegmentName,
    /// `START TIMELINE`.
    pub timeline: TimelineId,
}

/// Parses the lines of a `backup_label` that a backup records.
pub fn parse_label(label: &str) -> Result<LabelFacts> {
    let bad = |what: &str| {
        Error::postgres(
            String::new(),
            format!("backup_label returned by PostgreSQL has no valid {what}"),
        )
    };
    let mut start = None;
    let mut timeline = None;
    for line in label.lines() {
        if let Some(rest) = line.strip_prefix("START WAL LOCATION: ") {
            // `0/2000028 (file 000000010000000000000002)`
            let mut parts = rest.split_whitespace();
            let lsn: Lsn = parts
                .next()
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| bad("START WAL LOCATION"))?;
            let file = parts
                .nth(1)
                .map(|f| f.trim_end_matches(')'))
                .and_then(|f| f.parse::<SegmentName>().ok())
                .ok_or_else(|| bad("START WAL LOCATION file"))?;
            start = Some((lsn, file));
        } else if let Some(rest) = line.strip_prefix("START TIMELINE: ") {
            timeline = rest
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(|t| TimelineId::new(t).ok());
        }
    }
    let (start_lsn, start_wal) = start.ok_or_else(|| bad("START WAL LOCATION"))?;
    let timeline = timeline.unwrap_or_else(|| start_wal.timeline());
    Ok(LabelFacts {
        start_lsn,
        start_wal,
        timeline,
    })
}

/// The segment holding `lsn` on `timeline`, and the offset in it.
pub fn wal_position(timeline: TimelineId, lsn: Lsn, size: WalSegmentSize) -> (SegmentName, u64) {
    (
        SegmentName::from_lsn(timeline, lsn, size),
        lsn.segment_offset(size),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label() {
        let text = "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\nCHECKPOINT LOCATION: 0/6000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-22 04:15:37 UTC\nLABEL: Barman backup pg 20261122T041536\nSTART TIMELINE: 1\n";
        let f = parse_label(text).unwrap();
        assert_eq!(f.start_lsn.to_string(), "0/6000028");
        assert_eq!(f.start_wal.to_string(), "000000010000000000000006");
        assert_eq!(f.timeline.get(), 1);
        assert!(parse_label("garbage").is_err());
    }

    #[test]
    fn wal_level_and_max_wal_senders_obstacles() {
        let facts = |level: &str, senders: u32| ServerFacts {
            summarize_wal: None,
            version: 150_000,
            systemid: 1,
            data_directory: "/pg".into(),
            config_file: None,
            hba_file: None,
            ident_file: None,
            data_checksums: None,
            wal_segment_size: 16 << 20,
            tablespaces: Vec::new(),
            in_recovery: false,
            cluster_size: None,
            wal_level: Some(level.into()),
            max_wal_senders: Some(senders),
        };
        for streamed in [false, true] {
            let why = facts("minimal", 0).backup_obstacle(streamed).unwrap();
            assert!(why.contains("wal_level is minimal"), "{why}");
            assert_eq!(why.contains("max_wal_senders"), streamed, "{why}");
            assert_eq!(facts("replica", 10).backup_obstacle(streamed), None);
            assert_eq!(facts("logical", 1).backup_obstacle(streamed), None);
        }
        let why = facts("replica", 0).backup_obstacle(true).unwrap();
        assert!(why.starts_with("max_wal_senders is 0"), "{why}");
        // The rsync methods need no WAL sender.
        assert_eq!(facts("replica", 0).backup_obstacle(false), None);
    }
}
