//! `barman check`: Barman's server checks (BARMAN-BEHAVIOUR.md §1.4, §13),
//! with the names and hints Barman prints, so a Nagios setup that watched
//! Barman reads barman-rs the same way.
//!
//! Every check yields a [`CheckResult`]; the command fails (exit 1, or 2
//! with `--nagios`) when any result is not OK. Checks that need
//! PostgreSQL are skipped on passive nodes. Beyond Barman:
//!
//! * `pg_basebackup` / `pg_receivexlog` checks are replaced by checks of
//!   our own replication client (`PostgreSQL streaming`, `streaming
//!   protocol compatible`, `max_wal_senders`);
//! * interrupted backups (EMPTY/STARTED with no backup process alive) count
//!   as failed backups — Barman reports 0 failed backups for them;
//! * an interrupted delete (a `delete_this` marker no process works on)
//!   fails the `interrupted deletes` check until `cron` finishes it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::Result;
use crate::clock::Clock;
use crate::hooks::HookSetup;
use crate::server::ArchiveWait;
use barman_catalog::{BackupInfo, BackupStatus, LockKind, XlogEntry, read_owner};
use barman_config::{BackupMethod, GlobalConfig, ServerConfig};
use barman_pg::postgres::PgConnection;
use barman_pg::replication::{ReplicationConfig, ReplicationConnection};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Barman's name of the check (`continuous archiving`).
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// The hint Barman prints in parentheses, if any.
    pub hint: Option<String>,
    /// Nagios performance data (bytes), for `backup minimum size` and `wal size`.
    pub perfdata: Option<u64>,
}

impl CheckResult {
    fn new(check: &str, ok: bool, hint: Option<String>) -> Self {
        Self {
            check: check.to_owned(),
            ok,
            hint,
            perfdata: None,
        }
    }

    fn ok(check: &str) -> Self {
        Self::new(check, true, None)
    }

    fn with_perfdata(mut self, bytes: u64) -> Self {
        self.perfdata = Some(bytes);
        self
    }
}

/// Runs an external command (the `ssh` check), injected.
pub trait CommandRunner {
    /// Runs `shell_command` through a shell with a timeout; the exit code,
    /// or an error text when it could not run or timed out.
    fn run(&self, shell_command: &str, timeout: Duration) -> std::result::Result<i32, String>;
}

/// What the checks need from their caller.
pub struct CheckContext<'a> {
    /// The clock (backup and WAL ages).
    pub clock: &'a dyn Clock,
    /// Runs `ssh_command true`.
    pub runner: &'a dyn CommandRunner,
    /// `--check-timeout` (default `check_timeout`).
    pub timeout: Duration,
    /// The hook settings: the archiving the `WAL archive` check may do runs
    /// the server's archive hooks.
    pub hooks: &'a HookSetup,
}

impl std::fmt::Debug for CheckContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckContext")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Facts read from PostgreSQL over the SQL connection.
#[derive(Debug, Default)]
struct PgFacts {
    version: u32,
    systemid: Option<String>,
    wal_level: Option<String>,
    archive_mode: Option<String>,
    archive_command: Option<String>,
    max_wal_senders: Option<u32>,
    backup_privileges: Option<bool>,
    is_archiving: Option<bool>,
    slot: Option<SlotFacts>,
}

#[derive(Debug)]
struct SlotFacts {
    restart_lsn: Option<String>,
    active: bool,
}

/// Runs every check that applies to `server`, in Barman's order. On an
/// empty archive the `WAL archive` check first archives what waits and
/// may switch a WAL on PostgreSQL, waiting at most a third of
/// `ctx.timeout` for it (Barman 3.20's `check_archive`).
pub fn check_server(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &CheckContext<'_>,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    // Options barman-rs would ignore: nothing else is checked (or archived).
    if let Err(e) = server.refuse_not_implemented() {
        out.push(CheckResult::new(
            "configuration",
            false,
            Some(e.to_string()),
        ));
        return out;
    }
    // backup_compression*: Barman disables the server (configuration FAILED).
    let issues = server.backup_compression_issues(None);
    if !issues.is_empty() {
        out.push(CheckResult::new(
            "configuration",
            false,
            Some(issues.join("; ")),
        ));
        return out;
    }
    let catalog = server.catalog();
    let layout = catalog.layout().clone();
    let backups = catalog.backups().unwrap_or_else(|e| {
        out.push(CheckResult::new(
            "backup catalog",
            false,
            Some(e.to_string()),
        ));
        Vec::new()
    });
    // WAL archive: visible only when it fails.
    let waiting = backups
        .iter()
        .any(|b| b.status().is_ok_and(|s| s == BackupStatus::WaitingForWals));
    let archive_works = archive_works(global, server, waiting, ctx);
    let xlog = match catalog.xlogdb().read() {
        Ok(x) => x,
        Err(e) => {
            out.push(CheckResult::new("WAL catalog", false, Some(e.to_string())));
            Vec::new()
        }
    };
    if !archive_works {
        out.push(CheckResult::new(
            "WAL archive",
            false,
            Some("please make sure WAL shipping is setup".into()),
        ));
    }
    wal_queue(
        &mut out,
        server,
        layout.incoming_directory(),
        "incoming",
        "archiver",
        server.archiver,
    );
    wal_queue(
        &mut out,
        server,
        layout.streaming_directory(),
        "streaming",
        "streaming_archiver",
        server.streaming_archiver,
    );

    let mut facts = None;
    if !server.is_passive() {
        facts = check_postgres(&mut out, server, ctx);
        // The rules that need the live server's version.
        let issues = facts
            .as_ref()
            .map(|f| server.backup_compression_issues(Some(f.version)))
            .unwrap_or_default();
        if !issues.is_empty() {
            out.push(CheckResult::new(
                "configuration",
                false,
                Some(issues.join("; ")),
            ));
        }
    }

    // directories
    match layout.ensure() {
        Ok(()) => out.push(CheckResult::ok("directories")),
        Err(e) => out.push(CheckResult::new("directories", false, Some(e.to_string()))),
    }
    out.push(CheckResult::ok("retention policy settings"));

    backup_validity(&mut out, server, &backups, ctx.clock);
    wal_validity(&mut out, server, &backups, &xlog, ctx.clock);

    // compression settings
    match crate::server::wal_codec(server) {
        Ok(_) => out.push(CheckResult::ok("compression settings")),
        Err(e) => out.push(CheckResult::new(
            "compression settings",
            false,
            Some(e.to_string()),
        )),
    }
    failed_backups(&mut out, global, server, &backups);
    let done = backups
        .iter()
        .filter(|b| b.status().is_ok_and(|s| s == BackupStatus::Done))
        .count();
    out.push(CheckResult::new(
        "minimum redundancy requirements",
        done as u64 >= u64::from(server.minimum_redundancy),
        Some(format!(
            "have {done} backups, expected at least {}",
            server.minimum_redundancy
        )),
    ));
    if !server.is_passive() {
        executor_checks(&mut out, server, ctx, facts.as_ref());
        identity(&mut out, server, facts.as_ref());
        archiver_checks(&mut out, global, server, facts.as_ref());
    }
    interrupted_deletes(&mut out, global, server);
    archiver_errors(&mut out, layout.errors_directory());
    out
}

/// Barman 3.20's `check_archive` (`server.py`): the archive works when
/// xlog.db lists a WAL or a backup waits for WALs. Otherwise what waits in
/// `incoming/` and `streaming/` is archived; if the archive is still
/// empty, a WAL is switched on PostgreSQL and archived, waiting at most a
/// third of the check timeout. Silent, as Barman's (whose output is muted
/// here): what goes wrong is logged. Passive nodes get their WALs from the
/// primary: only xlog.db counts.
fn archive_works(
    global: &GlobalConfig,
    server: &ServerConfig,
    backup_waiting: bool,
    ctx: &CheckContext<'_>,
) -> bool {
    let xlogdb = server.layout().xlogdb_path(&server.name);
    let archived = || std::fs::metadata(&xlogdb).is_ok_and(|m| m.len() > 0);
    if archived() || backup_waiting {
        return true;
    }
    if server.is_passive() {
        return false;
    }
    // archive-wal may read the system identifier from PostgreSQL: within
    // the check's timeout too.
    let mut timed = server.clone();
    timed.conninfo = server
        .conninfo
        .as_deref()
        .map(|c| with_timeout(c, ctx.timeout));
    let server = &timed;
    let hooks = match ctx.hooks.server(server) {
        Ok(hooks) => hooks,
        Err(e) => {
            tracing::warn!("check of server {}: {e}", server.name);
            return false;
        }
    };
    let archive = |timeout: Duration| match crate::server::archive_until(
        global, server, &hooks, ctx.clock, timeout, archived,
    ) {
        Ok(ArchiveWait::Done) => true,
        Ok(ArchiveWait::Stopped(stopped)) => {
            tracing::info!(
                "check of server {}: archiving stopped at {}: {}",
                server.name,
                stopped.name,
                stopped.reason
            );
            false
        }
        Ok(ArchiveWait::TimedOut) => false,
        Err(e) => {
            tracing::warn!("check of server {}: archive-wal: {e}", server.name);
            false
        }
    };
    if archive(Duration::ZERO) {
        return true;
    }
    tracing::debug!(
        "check of server {}: no archived or waiting WAL; switching a WAL and archiving it",
        server.name
    );
    switch_wal(server) && archive(ctx.timeout / 3)
}

/// `pg_switch_wal()` for [`archive_works`], on `server.conninfo` (which
/// carries the check's timeout); a standby is not switched, its WALs are
/// waited for all the same. False when PostgreSQL cannot do it.
fn switch_wal(server: &ServerConfig) -> bool {
    let Some(conninfo) = server.conninfo.as_deref() else {
        return false;
    };
    let attempt = || -> Result<Option<String>> {
        let pg = PgConnection::connect(conninfo, "barman_check")?;
        if pg.is_in_recovery()? {
            return Ok(None);
        }
        pg.switch_wal().map_err(crate::Error::from)
    };
    match attempt() {
        Ok(closed) => {
            tracing::debug!("check of server {}: switched WAL {closed:?}", server.name);
            true
        }
        Err(e) => {
            tracing::warn!("check of server {}: cannot switch WAL: {e}", server.name);
            false
        }
    }
}

fn wal_queue(
    out: &mut Vec<CheckResult>,
    server: &ServerConfig,
    dir: &Path,
    label: &str,
    option: &str,
    enabled: bool,
) {
    let mut count = std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| !crate::archive::store::is_skipped_temp(&e.file_name().to_string_lossy()))
            .count()
    });
    if label == "streaming" {
        // The streaming directory always holds one .partial segment.
        count = count.saturating_sub(1);
    }
    if !enabled {
        if count > 0 {
            out.push(CheckResult::new(
                &format!("empty {label} directory"),
                false,
                Some(format!(
                    "'{}' must be empty when {option}=off",
                    dir.display()
                )),
            ));
        }
        return;
    }
    if let Some(max) = server.max_incoming_wals_queue
        && count as u64 > max
    {
        out.push(CheckResult::new(
            &format!("{label} WALs directory"),
            false,
            Some(format!(
                "there are too many WALs in queue: {count}, max {max}"
            )),
        ));
    }
}

/// A conninfo with `connect_timeout` set (key=value form only), so that
/// an unreachable host does not hold the check past its timeout.
fn with_timeout(conninfo: &str, timeout: Duration) -> String {
    let is_uri = conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://");
    if is_uri || conninfo.contains("connect_timeout") {
        conninfo.to_owned()
    } else {
        format!("{conninfo} connect_timeout={}", timeout.as_secs().max(1))
    }
}

fn check_postgres(
    out: &mut Vec<CheckResult>,
    server: &ServerConfig,
    ctx: &CheckContext<'_>,
) -> Option<PgFacts> {
    let Some(conninfo) = server.conninfo.as_deref() else {
        out.push(CheckResult::new(
            "PostgreSQL",
            false,
            Some("conninfo is not set".into()),
        ));
        return None;
    };
    let pg = match PgConnection::connect(&with_timeout(conninfo, ctx.timeout), "barman_check") {
        Ok(pg) => pg,
        Err(e) => {
            tracing::warn!("check of server {}: {e}", server.name);
            out.push(CheckResult::new("PostgreSQL", false, None));
            return None;
        }
    };
    let facts = match read_facts(&pg, server) {
        Ok(f) => f,
        Err(e) => {
            out.push(CheckResult::new("PostgreSQL", false, Some(e.to_string())));
            return None;
        }
    };
    out.push(CheckResult::ok("PostgreSQL"));
    if let Some(privileged) = facts.backup_privileges {
        out.push(if privileged {
            CheckResult::ok("superuser or standard user with backup privileges")
        } else {
            CheckResult::new(
                "no access to backup functions",
                false,
                Some(
                    "privileges for PostgreSQL backup functions are required (see documentation)"
                        .into(),
                ),
            )
        });
    }
    if needs_streaming(server) {
        out.push(streaming_connection(server, ctx));
    }
    if let Some(level) = &facts.wal_level {
        out.push(if level == "minimal" {
            CheckResult::new(
                "wal_level",
                false,
                Some("please set it to a higher level than 'minimal'".into()),
            )
        } else {
            CheckResult::ok("wal_level")
        });
    }
    replication_slot(out, server, &facts);
    Some(facts)
}

/// Whether the server streams (WAL or base backups) over replication.
fn needs_streaming(server: &ServerConfig) -> bool {
    server.streaming_archiver
        || server.backup_method == BackupMethod::Postgres
        || server.streaming_conninfo.is_some()
}

fn streaming_connection(server: &ServerConfig, ctx: &CheckContext<'_>) -> CheckResult {
    let conninfo = match crate::server::streaming_conninfo(server) {
        Ok(c) => c,
        Err(e) => return CheckResult::new("PostgreSQL streaming", false, Some(e.to_string())),
    };
    let attempt = (|| -> Result<()> {
        let mut config = ReplicationConfig::from_conninfo(&with_timeout(conninfo, ctx.timeout))?;
        if config.application_name.is_none() {
            config.application_name = Some("barman_check".into());
        }
        let mut conn = ReplicationConnection::connect(&config)?;
        conn.identify_system()?;
        Ok(())
    })();
    match attempt {
        Ok(()) => CheckResult::ok("PostgreSQL streaming"),
        Err(e) => CheckResult::new("PostgreSQL streaming", false, Some(e.to_string())),
    }
}

fn read_facts(pg: &PgConnection, server: &ServerConfig) -> Result<PgFacts> {
    let version = pg.server_version_num()?;
    let setting = |name: &str| -> Result<Option<String>> {
        pg.query_value(&format!(
            "SELECT setting FROM pg_settings WHERE name = '{name}'"
        ))
        .map_err(crate::Error::from)
    };
    let backup_functions = if version >= 150_000 {
        "has_function_privilege('pg_backup_start(text,boolean)', 'EXECUTE') \
         AND has_function_privilege('pg_backup_stop(boolean)', 'EXECUTE')"
    } else {
        "has_function_privilege('pg_start_backup(text,boolean,boolean)', 'EXECUTE') \
         AND has_function_privilege('pg_stop_backup(boolean,boolean)', 'EXECUTE')"
    };
    let privileges = pg.query_value(&format!(
        "SELECT rolsuper OR ({backup_functions} \
         AND has_function_privilege('pg_switch_wal()', 'EXECUTE') \
         AND has_function_privilege('pg_create_restore_point(text)', 'EXECUTE')) \
         FROM pg_roles WHERE rolname = current_user"
    ))?;
    // Barman's test: archive_mode on and the last failure, if any, is not
    // newer than the last success.
    let is_archiving = pg.query_value(
        "SELECT current_setting('archive_mode') IN ('on', 'always') \
         AND (last_failed_wal IS NULL \
              OR last_failed_wal LIKE '%.history' \
                 AND substring(last_failed_wal from 1 for 8) <= substring(last_archived_wal from 1 for 8) \
              OR last_failed_wal <= last_archived_wal) \
         FROM pg_stat_archiver",
    )?;
    let slot = match &server.slot_name {
        Some(name) if valid_slot_name(name) => pg
            .query_text(&format!(
                "SELECT restart_lsn, active FROM pg_replication_slots WHERE slot_name = '{name}'"
            ))?
            .into_iter()
            .next()
            .map(|row| SlotFacts {
                restart_lsn: row.first().cloned().flatten(),
                active: row.get(1).cloned().flatten().as_deref() == Some("t"),
            }),
        _ => None,
    };
    Ok(PgFacts {
        version,
        systemid: Some(pg.system_identifier()?.to_string()),
        wal_level: setting("wal_level")?,
        archive_mode: setting("archive_mode")?,
        archive_command: setting("archive_command")?,
        max_wal_senders: setting("max_wal_senders")?.and_then(|v| v.parse().ok()),
        backup_privileges: privileges.map(|v| v == "t"),
        is_archiving: is_archiving.map(|v| v == "t"),
        slot,
    })
}

/// Barman's rule for slot names; anything else never reaches SQL.
fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn replication_slot(out: &mut Vec<CheckResult>, server: &ServerConfig, facts: &PgFacts) {
    let Some(name) = &server.slot_name else {
        return;
    };
    let check = "replication slot";
    if server.streaming_archiver {
        out.push(match &facts.slot {
            None => CheckResult::new(
                check,
                false,
                Some(format!(
                    "replication slot '{name}' doesn't exist. Please execute 'barman receive-wal --create-slot {}'",
                    server.name
                )),
            ),
            Some(slot) if slot.restart_lsn.is_none() => CheckResult::new(
                check,
                false,
                Some(format!("slot '{name}' not initialised: is 'receive-wal' running?")),
            ),
            Some(slot) if !slot.active => CheckResult::new(
                check,
                false,
                Some(format!("slot '{name}' not active: is 'receive-wal' running?")),
            ),
            Some(_) => CheckResult::ok(check),
        });
    } else if let Some(slot) = &facts.slot
        && slot.restart_lsn.is_some()
    {
        let state = if slot.active { "active" } else { "initialised" };
        out.push(CheckResult::new(
            check,
            true,
            Some(format!(
                "WARNING: slot '{name}' is {state} but not required by the current config"
            )),
        ));
    }
}

/// `backup maximum age` and `backup minimum size`, from the newest DONE backup.
fn backup_validity(
    out: &mut Vec<CheckResult>,
    server: &ServerConfig,
    backups: &[BackupInfo],
    clock: &dyn Clock,
) {
    let last = backups
        .iter()
        .rev()
        .find(|b| b.status().is_ok_and(|s| s == BackupStatus::Done));
    let check = "backup maximum age";
    match server.last_backup_maximum_age {
        Some(max) => {
            let age = last.and_then(|b| b.end_time().ok().flatten()).map(|end| {
                let secs = clock.now().as_second() - end.timestamp().as_second();
                Duration::from_secs(u64::try_from(secs).unwrap_or(0))
            });
            let (ok, age_text) = match age {
                Some(age) => (age <= max, crate::shared::human_duration(age)),
                None => (false, "No available backups".to_owned()),
            };
            out.push(CheckResult::new(
                check,
                ok,
                Some(format!(
                    "interval provided: {}, latest backup age: {age_text}",
                    crate::shared::human_duration(max)
                )),
            ));
        }
        None => out.push(CheckResult::new(
            check,
            true,
            Some("no last_backup_maximum_age provided".into()),
        )),
    }
    let size = last.and_then(|b| b.size().ok().flatten()).unwrap_or(0);
    let check = "backup minimum size";
    match server.last_backup_minimum_size {
        Some(min) => {
            let ok = size >= min;
            let cmp = if ok { ">" } else { "<" };
            out.push(
                CheckResult::new(
                    check,
                    ok,
                    Some(format!(
                        "last backup size {} {cmp} {} minimum",
                        crate::shared::human_size(size),
                        crate::shared::human_size(min)
                    )),
                )
                .with_perfdata(size),
            );
        }
        None => out.push(
            CheckResult::new(check, true, Some(crate::shared::human_size(size)))
                .with_perfdata(size),
        ),
    }
}

fn wal_validity(
    out: &mut Vec<CheckResult>,
    server: &ServerConfig,
    backups: &[BackupInfo],
    xlog: &[XlogEntry],
    clock: &dyn Clock,
) {
    let last = backups
        .iter()
        .rev()
        .find(|b| b.status().is_ok_and(BackupStatus::is_copy_done));
    let stats = last
        .and_then(|b| crate::shared::wal_stats::WalStats::of(b, backups, xlog).ok())
        .unwrap_or_default();
    let (size, last_time) = (stats.until_next_size, stats.last_time);
    let check = "wal maximum age";
    match server.last_wal_maximum_age {
        Some(max) => match last_time {
            Some(time) => {
                #[allow(clippy::cast_precision_loss)]
                let now = clock.now().as_second() as f64;
                let age = Duration::from_secs_f64((now - time).max(0.0));
                out.push(CheckResult::new(
                    check,
                    age <= max,
                    Some(format!(
                        "interval provided: {}, latest wal age: {}",
                        crate::shared::human_duration(max),
                        crate::shared::human_duration(age)
                    )),
                ));
            }
            None => out.push(CheckResult::new(
                check,
                false,
                Some("No WAL files archived for last backup".into()),
            )),
        },
        None => out.push(CheckResult::new(
            check,
            true,
            Some("no last_wal_maximum_age provided".into()),
        )),
    }
    out.push(
        CheckResult::new("wal size", true, Some(crate::shared::human_size(size)))
            .with_perfdata(size),
    );
}

/// FAILED backups, plus EMPTY/STARTED ones no backup process owns.
fn failed_backups(
    out: &mut Vec<CheckResult>,
    global: &GlobalConfig,
    server: &ServerConfig,
    backups: &[BackupInfo],
) {
    let backup_running =
        read_owner(&LockKind::Backup(server.name.clone()).path(&global.barman_lock_directory))
            .is_some();
    let mut failed = 0;
    let mut interrupted = 0;
    for b in backups {
        match b.status() {
            Ok(BackupStatus::Failed) => failed += 1,
            Ok(BackupStatus::Empty | BackupStatus::Started) if !backup_running => interrupted += 1,
            _ => {}
        }
    }
    let total = failed + interrupted;
    let hint = if interrupted > 0 {
        format!(
            "there are {total} failed backups, {interrupted} of them interrupted (run `barman cron` to mark them FAILED)"
        )
    } else {
        format!("there are {total} failed backups")
    };
    out.push(CheckResult::new("failed backups", total == 0, Some(hint)));
}

fn executor_checks(
    out: &mut Vec<CheckResult>,
    server: &ServerConfig,
    ctx: &CheckContext<'_>,
    facts: Option<&PgFacts>,
) {
    if server.backup_method == BackupMethod::Rsync {
        let result = match &server.ssh_command {
            None => CheckResult::new("ssh", false, Some("ssh_command is not set".into())),
            Some(ssh) => match ctx
                .runner
                .run(&crate::shell::ssh_line(ssh, "true"), ctx.timeout)
            {
                Ok(0) => CheckResult::new("ssh", true, Some("PostgreSQL server".into())),
                Ok(code) => CheckResult::new(
                    "ssh",
                    false,
                    Some(format!(
                        "Connection failed using '{ssh}' return code {code}"
                    )),
                ),
                Err(e) => CheckResult::new(
                    "ssh",
                    false,
                    Some(format!("Connection failed using '{ssh}': {e}")),
                ),
            },
        };
        out.push(result);
    }
    if needs_streaming(server)
        && let Some(facts) = facts
    {
        out.push(match facts.max_wal_senders {
            Some(0) => CheckResult::new(
                "max_wal_senders",
                false,
                Some("max_wal_senders = 0: streaming needs a free WAL sender".into()),
            ),
            _ => CheckResult::ok("max_wal_senders"),
        });
        out.push(protocol_compatible(facts.version));
    }
}

/// Our replacement of `pg_basebackup compatible` / `pg_receivexlog
/// compatible`: the server speaks a replication protocol our client knows.
fn protocol_compatible(version: u32) -> CheckResult {
    let check = "streaming protocol compatible";
    if version >= 130_000 {
        CheckResult::ok(check)
    } else {
        CheckResult::new(
            check,
            false,
            Some(format!(
                "PostgreSQL {} is older than 13, the oldest version barman-rs streams from",
                version / 10_000
            )),
        )
    }
}

fn identity(out: &mut Vec<CheckResult>, server: &ServerConfig, facts: Option<&PgFacts>) {
    let check = "systemid coherence";
    let Some(live) = facts.and_then(|f| f.systemid.as_deref()) else {
        out.push(CheckResult::new(
            check,
            true,
            Some("no system Id available".into()),
        ));
        return;
    };
    let path = server.layout().identity_path();
    match server.catalog().identity() {
        Ok(None) => out.push(CheckResult::new(
            check,
            true,
            Some("no system Id stored on disk".into()),
        )),
        Ok(Some(stored)) if stored.systemid == live => out.push(CheckResult::ok(check)),
        Ok(Some(_)) => out.push(CheckResult::new(
            check,
            false,
            Some(format!(
                "the system Id of the connected PostgreSQL server changed, stored in \"{}\"",
                path.display()
            )),
        )),
        Err(e) => out.push(CheckResult::new(check, false, Some(e.to_string()))),
    }
}

fn archiver_checks(
    out: &mut Vec<CheckResult>,
    global: &GlobalConfig,
    server: &ServerConfig,
    facts: Option<&PgFacts>,
) {
    if server.archiver
        && let Some(facts) = facts
    {
        let mode_ok = matches!(facts.archive_mode.as_deref(), Some("on" | "always"));
        out.push(if mode_ok {
            CheckResult::ok("archive_mode")
        } else {
            CheckResult::new(
                "archive_mode",
                false,
                Some("please set it to 'on' or 'always'".into()),
            )
        });
        let command_set = facts
            .archive_command
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c != "(disabled)");
        if command_set {
            out.push(CheckResult::ok("archive_command"));
            if let Some(archiving) = facts.is_archiving {
                out.push(CheckResult::new("continuous archiving", archiving, None));
            }
        } else {
            out.push(CheckResult::new(
                "archive_command",
                false,
                Some("please set it accordingly to documentation".into()),
            ));
        }
    }
    if server.streaming_archiver {
        let running = read_owner(
            &LockKind::ReceiveWal(server.name.clone()).path(&global.barman_lock_directory),
        )
        .is_some();
        out.push(if running {
            CheckResult::ok("receive-wal running")
        } else {
            CheckResult::new(
                "receive-wal running",
                false,
                Some("See the Barman log file for more details".into()),
            )
        });
    }
}

fn interrupted_deletes(out: &mut Vec<CheckResult>, global: &GlobalConfig, server: &ServerConfig) {
    let pending = crate::removal::pending_deletes(&server.layout()).unwrap_or_default();
    let interrupted: Vec<String> = pending
        .iter()
        .filter(|id| {
            read_owner(
                &LockKind::BackupId(server.name.clone(), (*id).clone())
                    .path(&global.barman_lock_directory),
            )
            .is_none()
        })
        .map(ToString::to_string)
        .collect();
    if !interrupted.is_empty() {
        out.push(CheckResult::new(
            "interrupted deletes",
            false,
            Some(format!(
                "the delete of backup {} was interrupted: run `barman cron` to finish it",
                interrupted.join(", ")
            )),
        ));
    }
}

fn archiver_errors(out: &mut Vec<CheckResult>, errors_dir: &Path) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(errors_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = name
                .rsplit_once('.')
                .map_or("unknown", |(_, suffix)| suffix)
                .to_owned();
            *counts.entry(kind).or_default() += 1;
        }
    }
    let total: usize = counts.values().sum();
    let hint = (total > 0).then(|| {
        counts
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    out.push(CheckResult::new("archiver errors", total == 0, hint));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_added_to_keyword_conninfo_only() {
        let t = Duration::from_secs(30);
        assert_eq!(with_timeout("host=pg", t), "host=pg connect_timeout=30");
        assert_eq!(
            with_timeout("host=pg connect_timeout=3", t),
            "host=pg connect_timeout=3"
        );
        assert_eq!(with_timeout("postgresql://pg/db", t), "postgresql://pg/db");
    }

    #[test]
    fn slot_names_are_checked_before_sql() {
        assert!(valid_slot_name("barman_1"));
        assert!(!valid_slot_name("x'; DROP TABLE t; --"));
        assert!(!valid_slot_name(""));
    }

    struct NoCommands;

    impl CommandRunner for NoCommands {
        fn run(&self, _: &str, _: Duration) -> std::result::Result<i32, String> {
            Err("no command in unit tests".into())
        }
    }

    #[test]
    fn the_wal_archive_check_archives_and_switches_only_on_an_empty_archive() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let text = format!(
            "[barman]\nbarman_home = {}\n\n[pg]\nconninfo = host=127.0.0.1 port=1\narchiver = on\n\n\
             [nopg]\narchiver = on\n\n[passive]\nprimary_ssh_command = ssh pg\n",
            home.display()
        );
        let config =
            barman_config::Config::parse_str(&text, Path::new("/etc/barman.conf")).unwrap();
        let hooks = HookSetup::new("1.0", "/etc/barman.conf");
        let ctx = CheckContext {
            clock: &crate::clock::SystemClock,
            runner: &NoCommands,
            timeout: Duration::from_secs(30),
            hooks: &hooks,
        };
        let global = config.global();
        let server = |name| {
            let s = config.server(name).unwrap();
            s.layout().ensure().unwrap();
            s
        };
        // Empty, nothing waits, no PostgreSQL to switch a WAL on: at once.
        let start = std::time::Instant::now();
        assert!(!archive_works(global, server("nopg"), false, &ctx));
        assert!(!archive_works(global, server("pg"), false, &ctx));
        assert!(start.elapsed() < Duration::from_secs(10));
        // A backup waiting for WALs, or a WAL in xlog.db: it works.
        assert!(archive_works(global, server("pg"), true, &ctx));
        let pg = server("pg");
        std::fs::write(
            pg.layout().xlogdb_path("pg"),
            "000000010000000000000001\t16777216\t1700000000.0\tNone\n",
        )
        .unwrap();
        assert!(archive_works(global, pg, false, &ctx));
        // A passive node never archives nor switches: xlog.db decides.
        assert!(!archive_works(global, server("passive"), false, &ctx));
    }

    #[test]
    fn archiver_errors_are_counted_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        archiver_errors(&mut out, dir.path());
        assert!(out[0].ok);
        for name in [
            "000000010000000000000001.20261201T000000Z.duplicate",
            "000000010000000000000002.20261201T000000Z.duplicate",
            "junk.20261201T000000Z.unknown",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let mut out = Vec::new();
        archiver_errors(&mut out, dir.path());
        assert!(!out[0].ok);
        assert_eq!(out[0].hint.as_deref(), Some("2 duplicate, 1 unknown"));
    }
}
