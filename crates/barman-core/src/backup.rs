//! `barman backup` for the `rsync` and `local-rsync` methods: the lifecycle
//! of BARMAN-BEHAVIOUR.md §5 over the barman-copy engine.
//!
//! The backup holds a SQL session open for `pg_backup_start`/`pg_backup_stop`
//! (non-exclusive), copies PGDATA and every tablespace with the copy engine
//! (in-process for `local-rsync`, through `barman agent` sessions started by
//! `ssh_command` for `rsync`), reusing the previous DONE backup by hard link,
//! local copy or delta (`reuse_backup`), writes `backup_label` and
//! `tablespace_map` into the copy and a manifest with a blake3 per file, then
//! moves backup.info through EMPTY → STARTED → WAITING_FOR_WALS → DONE.
//! Any failure (Ctrl-C included) leaves a FAILED backup.info with an `error`
//! and no partial data.

pub mod incremental;
pub mod pg_manifest;
pub mod pgside;
pub mod streamed;
pub mod tar_sink;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barman_copy::{
    CopyPlan, CopyReport, Entry, EntryKind, Exclusions, ExecOptions, Manifest, ManifestEntry,
    PlanOptions, RelPath, Reuse, Roots, SourceFactory,
};
use barman_hooks::HookEvent;
use barman_wal::WalSegmentSize;
use jiff::Zoned;
use jiff::tz::TimeZone;

use crate::archive::archive_wal;
use crate::clock::Clock;
use crate::event::{CopyDetails, Event, LogObserver, Observer, Operation, Phase, ProgressEvents};
use crate::hooks::{EventVars, ServerHooks, backup_vars_now};
use crate::{Error, Result};
use barman_catalog::{
    BackupId, BackupInfo, BackupStatus, LockKind, PyFloat, PyValue, ServerLayout, Tablespace,
    try_acquire,
};
use barman_config::{BackupMethod, BackupOption, GlobalConfig, ReuseBackup, ServerConfig};
use barman_pg::postgres::PgConnection;

use crate::shared::backups::remove_partial_data;
use crate::shared::{MANIFEST_FILE, Spawner, check_backup_info, fail_interrupted};

/// Command-line overrides of the server's backup settings.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// `--reuse-backup`.
    pub reuse: Option<ReuseBackup>,
    /// `--immediate-checkpoint` / `--no-immediate-checkpoint`.
    pub immediate_checkpoint: Option<bool>,
    /// `-j/--jobs`.
    pub jobs: Option<u32>,
    /// `--bwlimit` in KB/s (0 = unlimited).
    pub bwlimit: Option<u64>,
    /// `--name`.
    pub name: Option<String>,
    /// `--wait`: wait until every WAL the backup needs is archived.
    pub wait: bool,
    /// `--wait-timeout` (None: wait for ever).
    pub wait_timeout: Option<Duration>,
    /// `--retry-times`.
    pub retry_times: Option<u32>,
    /// `--retry-sleep` in seconds.
    pub retry_sleep: Option<u64>,
    /// Compare every file by content (checksum mode) instead of trusting size+mtime.
    pub checksum: bool,
    /// The command run after `ssh_command` to start the agent (`barman agent`).
    pub agent_command: Option<String>,
    /// `--incremental PARENT`: a block-level incremental backup (PostgreSQL
    /// 17+, `backup_method = postgres`) on top of `PARENT` (an id, a name
    /// or a shortcut, see [`incremental::resolve_parent`]).
    pub incremental: Option<String>,
}

/// What a backup needs from its caller.
pub struct BackupContext<'a> {
    /// The clock (backup id, begin/end times).
    pub clock: &'a dyn Clock,
    /// The events of the backup ([`crate::event`]), copy progress
    /// included (sent from the copy's worker threads, hence `Send`).
    pub observer: &'a mut (dyn Observer + Send),
    /// Set to cancel (Ctrl-C / SIGTERM): the backup ends FAILED.
    pub cancel: &'a AtomicBool,
    /// Process spawning (agent sessions over `ssh_command`).
    pub spawner: Arc<dyn Spawner>,
    /// The server's hook scripts: backup hooks around the backup, archive
    /// hooks in the inline archive-wal, WAL-delete hooks in the first
    /// backup's purge.
    pub hooks: &'a ServerHooks,
}

impl std::fmt::Debug for BackupContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupContext").finish_non_exhaustive()
    }
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The backup's metadata as written last.
    pub info: BackupInfo,
    /// The backup directory.
    pub directory: PathBuf,
    /// What the copy did (None when the backup failed before copying).
    pub copy: Option<CopySummary>,
}

/// The copy figures of a backup: the copy engine's report (its manifest
/// moved to `base/<id>/manifest`) and the backup it reused.
#[derive(Debug, Clone, Default)]
pub struct CopySummary {
    /// What the copy engine did (`manifest` left empty).
    pub report: CopyReport,
    /// The previous backup reused, if any.
    pub previous: Option<BackupId>,
}

/// The backup `mode` recorded in backup.info.
///
/// `local-rsync` records `rsync-concurrent`, as Barman 3.20.1 does (see the
/// fixture catalog): readers tell the backup type from this prefix.
fn mode_name(method: BackupMethod) -> &'static str {
    match method {
        BackupMethod::Postgres => "postgres",
        _ => "rsync-concurrent",
    }
}

/// Refuses what this build cannot back up, before anything is written.
fn refuse_unsupported(server: &ServerConfig, options: &BackupOptions) -> Result<()> {
    if server.is_passive() {
        return Err(Error::PassiveServer {
            server: server.name.clone(),
            action: "backup",
        });
    }
    // snapshot and local-to-cloud backup methods are rows of the table.
    server.refuse_not_implemented()?;
    refuse_compression_issues(server, None)?;
    server.check_bandwidth_limits(options.bwlimit)?;
    if server.backup_method == BackupMethod::Rsync && server.ssh_command.is_none() {
        return Err(Error::BackupRefused(format!(
            "server `{}`: backup_method = rsync needs ssh_command",
            server.name
        )));
    }
    if server.conninfo.is_none() {
        return Err(Error::BackupRefused(format!(
            "server `{}`: conninfo is not set",
            server.name
        )));
    }
    Ok(())
}

/// Refuses a backup when the `backup_compression*` options have issues
/// (Barman disables the server); `version` is the live server's, once
/// connected.
fn refuse_compression_issues(server: &ServerConfig, version: Option<u32>) -> Result<()> {
    let issues = server.backup_compression_issues(version);
    if issues.is_empty() {
        return Ok(());
    }
    Err(Error::BackupRefused(format!(
        "server `{}`: {}",
        server.name,
        issues.join("; ")
    )))
}

/// The newest DONE backup with a manifest (the one a new backup reuses).
fn previous_backup(layout: &ServerLayout, server: &str) -> Result<Option<(BackupInfo, Manifest)>> {
    let catalog = barman_catalog::Catalog::open(layout.clone(), server);
    let mut backups = catalog.backups()?;
    backups.reverse();
    for info in backups {
        if info.status()? != BackupStatus::Done {
            continue;
        }
        let path = layout.backup_dir(info.backup_id()).join(MANIFEST_FILE);
        if !path.is_file() {
            tracing::info!(
                "backup {} has no manifest (taken by Barman?): not reused",
                info.backup_id()
            );
            continue;
        }
        let manifest = Manifest::read(&path)?;
        return Ok(Some((info, manifest)));
    }
    Ok(None)
}

/// A fresh backup id: the local time now, waiting for the next second if a
/// backup with this id exists.
fn new_backup_id(layout: &ServerLayout, clock: &dyn Clock) -> (BackupId, Zoned) {
    loop {
        let now = clock.now().to_zoned(TimeZone::system());
        let id = BackupId::from_timestamp(&now);
        if !layout.backup_info_path(&id).exists() && !layout.backup_dir(&id).exists() {
            return (id, now);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The copy roots: `data` → PGDATA, `<oid>` → each tablespace location.
fn roots(pgdata: &str, tablespaces: &[Tablespace]) -> Roots {
    let mut roots: Roots = BTreeMap::new();
    roots.insert("data".into(), PathBuf::from(pgdata));
    for t in tablespaces {
        roots.insert(t.oid.to_string(), PathBuf::from(&t.location));
    }
    roots
}

fn source_factory(
    server: &ServerConfig,
    options: &BackupOptions,
    roots: Roots,
    spawner: Arc<dyn Spawner>,
) -> Box<dyn SourceFactory> {
    match (server.backup_method, server.ssh_command.as_deref()) {
        (BackupMethod::Rsync, Some(ssh)) => {
            let agent = options.agent_command.as_deref().unwrap_or("barman agent");
            let line = crate::shell::ssh_line(&barman_copy::remote::with_ssh_keepalive(ssh), agent);
            Box::new(
                barman_copy::remote::AgentFactory::new(
                    Box::new(move || spawner.shell(&line)),
                    roots,
                    server.network_compression,
                )
                .timeout(server.agent_timeout()),
            )
        }
        _ => Box::new(barman_copy::local::LocalFactory::new(roots)),
    }
}

/// `--reuse-backup`, else `reuse_backup`.
fn reuse_mode(options: &BackupOptions, server: &ServerConfig) -> Reuse {
    match options.reuse.or(server.reuse_backup) {
        Some(ReuseBackup::Link) => Reuse::Link,
        Some(ReuseBackup::Copy) => Reuse::Copy,
        _ => Reuse::Off,
    }
}

/// Files modified at or after this instant are compared by content: the
/// previous backup's start, minus two seconds for clock differences between hosts.
fn horizon_of(previous: &BackupInfo) -> Option<barman_copy::Mtime> {
    previous
        .begin_time()
        .ok()
        .flatten()
        .map(|t| barman_copy::Mtime {
            secs: t.timestamp().as_second() - 2,
            nanos: 0,
        })
}

/// `barman backup --dry-run`: the copy plan the next backup would follow
/// (listing and plan only; nothing is written, PostgreSQL is only queried).
pub fn plan_backup(
    server: &ServerConfig,
    options: &BackupOptions,
    spawner: Arc<dyn Spawner>,
) -> Result<CopyPlan> {
    refuse_unsupported(server, options)?;
    let pg = PgConnection::connect(
        server.conninfo.as_deref().unwrap_or_default(),
        "barman_backup",
    )?;
    let facts = pgside::server_facts(&pg)?;
    let roots = roots(&facts.data_directory, &facts.tablespaces);
    let sources = source_factory(server, options, roots.clone(), spawner);
    let (listing, _) = list_all(sources.as_ref(), &roots)?;
    let layout = server.layout();
    let previous = if layout.meta_directory().is_dir() {
        previous_backup(&layout, &server.name)?
    } else {
        None
    };
    let reuse = reuse_mode(options, server);
    Ok(CopyPlan::compute(
        previous.as_ref().map(|(_, m)| m),
        &listing,
        &plan_options(
            server,
            options,
            reuse,
            previous.as_ref().and_then(|(p, _)| horizon_of(p)),
        ),
    ))
}

/// How a backup of `server` plans its copy (`plan_backup` and the backup
/// itself plan alike).
fn plan_options(
    server: &ServerConfig,
    options: &BackupOptions,
    reuse: Reuse,
    horizon: Option<barman_copy::Mtime>,
) -> PlanOptions {
    PlanOptions {
        reuse,
        horizon,
        checksum: options.checksum,
        delta_min_size: 0,
        // A local source: a delta would read the previous copy as well
        // and save nothing on the wire (rsync's local default).
        whole_file: server.backup_method == BackupMethod::LocalRsync,
    }
}

/// The listing of every tree, tablespace links in `pg_tblspc` left out (the
/// tablespaces are recorded in backup.info and `tablespace_map`, and copied
/// as their own trees). The session is returned for the copy to go on with.
fn list_all(
    sources: &dyn SourceFactory,
    roots: &Roots,
) -> Result<(Vec<Entry>, Box<dyn barman_copy::Source>)> {
    let mut session = sources.open()?;
    let mut all = Vec::new();
    for tree in roots.keys() {
        let exclusions = if tree == "data" {
            Exclusions::barman_rsync()
        } else {
            Exclusions::postgres_default()
        };
        for entry in session.list(tree, &exclusions)? {
            let in_tablespace_dir = entry.path.as_str().starts_with("data/pg_tblspc/");
            if in_tablespace_dir && matches!(entry.kind, EntryKind::Symlink { .. }) {
                continue;
            }
            all.push(entry);
        }
    }
    Ok((all, session))
}

/// The step a backup failed at, as backup.info's `error` names it.
struct FailedAt(&'static str);

fn fail_message(phase: &FailedAt, e: &Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").to_owned();
    format!("failure {} ({first})", phase.0)
}

/// Reports `phase` of a backup started.
fn phase_started(ctx: &mut BackupContext<'_>, phase: Phase) -> Instant {
    ctx.observer.event(&Event::PhaseStarted {
        operation: Operation::Backup,
        phase,
    });
    Instant::now()
}

/// Reports `phase` of a backup finished.
fn phase_finished(ctx: &mut BackupContext<'_>, phase: Phase, since: Instant) {
    ctx.observer.event(&Event::PhaseFinished {
        operation: Operation::Backup,
        phase,
        elapsed: since.elapsed(),
    });
}

/// Runs `f` as `phase`: started and finished events around it (no
/// finished event when it fails).
fn in_phase<T>(
    ctx: &mut BackupContext<'_>,
    phase: Phase,
    f: impl FnOnce(&mut BackupContext<'_>) -> PhaseResult<T>,
) -> PhaseResult<T> {
    let since = phase_started(ctx, phase);
    let value = f(ctx)?;
    phase_finished(ctx, phase, since);
    Ok(value)
}

/// Runs one backup of `server`. On failure after the backup.info was
/// created, the backup is FAILED and [`Error::BackupFailed`] is returned.
///
/// The phases, reported as [`Event::PhaseStarted`]/[`Event::PhaseFinished`]:
/// [`Phase::Check`], [`Phase::Start`], [`Phase::Copy`], [`Phase::Stop`],
/// [`Phase::Finalise`], [`Phase::Wals`].
///
/// The pre backup hooks run once backup.info exists (EMPTY); 63 from the
/// retry one fails the backup (`error` says why). The post hooks run
/// whatever the outcome, once the backup is FAILED or WAITING_FOR_WALS —
/// with `--wait`, after the wait, so usually DONE — as in Barman; not when
/// the cancel flag stopped the backup.
pub fn backup(
    global: &GlobalConfig,
    server: &ServerConfig,
    options: &BackupOptions,
    ctx: &mut BackupContext<'_>,
) -> Result<BackupReport> {
    let since = phase_started(ctx, Phase::Check);
    if options.incremental.is_some() {
        incremental::check_method(server)?;
    }
    let (pg, facts) = pre_backup_checks(server, options)?;
    let layout = server.layout();
    let parent = match &options.incremental {
        Some(text) => {
            let parent = incremental::resolve_parent(&server.catalog(), text)?;
            Some(incremental::check(&layout, &facts, parent)?)
        }
        None => None,
    };
    let lock = try_acquire(
        &global.barman_lock_directory,
        &LockKind::Backup(server.name.clone()),
    )?;
    for id in fail_interrupted(&layout, &server.name)? {
        ctx.observer.event(&Event::InterruptedBackupFailed {
            server: server.name.clone(),
            id,
        });
    }
    phase_finished(ctx, Phase::Check, since);

    let parent_id = parent.as_ref().map(|p| p.info.backup_id());
    let info = new_backup_info(server, options, &facts, parent_id, &layout, ctx.clock)?;
    let id = info.backup_id().clone();
    if let Some(parent_id) = parent_id {
        incremental::link_child(&layout, &server.catalog(), parent_id, &id)?;
    }
    let dir = layout.backup_dir(&id);
    ctx.observer.event(&Event::BackupStarting {
        server: server.name.clone(),
        id: id.clone(),
        mode: mode_name(server.backup_method).to_owned(),
        directory: dir.clone(),
    });
    let hooks = ctx.hooks;
    let pre = hooks.pre(HookEvent::Backup, || {
        EventVars::backup(backup_vars_now(server, &info))
    });
    let mut state = Running {
        server,
        options,
        layout: &layout,
        info,
        pg: &pg,
        facts: &facts,
        parent: parent.as_ref(),
        started: false,
        copy: None,
    };
    let result = match pre {
        Ok(()) => state.run(ctx),
        Err(abort) => Err(Box::new((FailedAt("starting backup"), abort.into()))),
    };
    let Running {
        mut info,
        started,
        copy,
        ..
    } = state;
    if let Err(failure) = result {
        let failed = Failed {
            pg: &pg,
            version: facts.version,
            started,
            failure: *failure,
        };
        return Err(fail_backup(server, &layout, info, failed, ctx)?);
    }

    let since = phase_started(ctx, Phase::Wals);
    let post = |info: &BackupInfo| {
        hooks.post(HookEvent::Backup, || {
            EventVars::backup(backup_vars_now(server, info))
        });
    };
    // Inline archive-wal and check-backup, as Barman does after the copy;
    // the post hooks run before them, or after the wait with `--wait`.
    if options.wait {
        drop(lock);
        let waited = finish_wals(global, server, &mut info, options, ctx);
        post(&info);
        waited?;
    } else {
        post(&info);
        drop(lock);
        finish_wals(global, server, &mut info, options, ctx)?;
    }
    purge_before_first(global, server, &info, ctx)?;
    phase_finished(ctx, Phase::Wals, since);
    Ok(BackupReport {
        info,
        directory: dir,
        copy,
    })
}

/// The pre-backup checks: what this build can back up, PostgreSQL answers,
/// the API and identity agree. Returns the session and the server's facts.
fn pre_backup_checks(
    server: &ServerConfig,
    options: &BackupOptions,
) -> Result<(PgConnection, pgside::ServerFacts)> {
    refuse_unsupported(server, options)?;
    let conninfo = server.conninfo.clone().unwrap_or_default();
    let pg = PgConnection::connect(&conninfo, "barman_backup")?;
    let facts = pgside::server_facts(&pg)?;
    refuse_compression_issues(server, Some(facts.version))?;
    if facts.version >= 150_000
        && server
            .backup_options
            .contains(&BackupOption::ExclusiveBackup)
    {
        return Err(Error::BackupRefused(format!(
            "server `{}`: backup_options = exclusive_backup is not supported by PostgreSQL 15 and later (use concurrent_backup)",
            server.name
        )));
    }
    if let Some(why) = facts.backup_obstacle(server.backup_method == BackupMethod::Postgres) {
        return Err(Error::BackupRefused(format!(
            "server `{}`: {why}",
            server.name
        )));
    }
    if !server.archiver && !server.streaming_archiver {
        return Err(Error::BackupRefused(format!(
            "server `{}`: neither archiver nor streaming_archiver is on: the backup's WAL would never arrive",
            server.name
        )));
    }
    let layout = server.layout();
    layout.ensure()?;
    let identity = crate::server::ensure_identity(server)?;
    if let Some(identity) = &identity
        && identity.systemid != facts.systemid.to_string()
    {
        return Err(Error::BackupRefused(format!(
            "server `{}`: system identifier mismatch: the catalog (identity.json) has {}, PostgreSQL has {}",
            server.name, identity.systemid, facts.systemid
        )));
    }
    Ok((pg, facts))
}

/// A new backup's backup.info (EMPTY, with its parent for an incremental
/// backup), written with its directory.
fn new_backup_info(
    server: &ServerConfig,
    options: &BackupOptions,
    facts: &pgside::ServerFacts,
    parent: Option<&BackupId>,
    layout: &ServerLayout,
    clock: &dyn Clock,
) -> Result<BackupInfo> {
    let (id, begin_time) = new_backup_id(layout, clock);
    let dir = layout.backup_dir(&id);
    let mut info = BackupInfo::new(&server.name, id);
    info.set_mode(Some(mode_name(server.backup_method)))?;
    info.set_systemid(Some(&facts.systemid.to_string()))?;
    info.set_version(Some(facts.version));
    info.set_xlog_segment_size(facts.wal_segment_size);
    info.set_pgdata(Some(&facts.data_directory))?;
    info.set_config_file(facts.config_file.as_deref())?;
    info.set_hba_file(facts.hba_file.as_deref())?;
    info.set_ident_file(facts.ident_file.as_deref())?;
    info.set_data_checksums(facts.data_checksums.as_deref())?;
    info.set_summarize_wal(facts.summarize_wal.as_deref())?;
    info.set_cluster_size(facts.cluster_size);
    if !facts.tablespaces.is_empty() {
        info.set_tablespaces(&facts.tablespaces);
    }
    // A tar-format backup records its compression (`none` included).
    if let Some(c) = server
        .backup_compression_settings()
        .filter(|c| c.format == barman_config::BackupCompressionFormat::Tar)
    {
        info.set_compression(Some(c.algorithm.as_str()))?;
    }
    if let Some(name) = &options.name {
        info.set_backup_name(Some(name))?;
    }
    info.set_parent_backup_id(parent);
    info.set_begin_time(Some(&begin_time));
    barman_catalog::fs::create_dir_secure(&dir)?;
    info.write(layout)?;
    Ok(info)
}

/// How a backup failed.
struct Failed<'a> {
    pg: &'a PgConnection,
    version: u32,
    /// `pg_backup_start` was called and not stopped.
    started: bool,
    failure: (FailedAt, Error),
}

/// Marks the backup FAILED (partial data removed, backup mode left), runs
/// the post hooks and returns the [`Error::BackupFailed`] to report.
fn fail_backup(
    server: &ServerConfig,
    layout: &ServerLayout,
    mut info: BackupInfo,
    failed: Failed<'_>,
    ctx: &mut BackupContext<'_>,
) -> Result<Error> {
    let (phase, e) = failed.failure;
    let message = if ctx.cancel.load(Ordering::SeqCst) {
        format!("failure {} (interrupted by signal)", phase.0)
    } else {
        fail_message(&phase, &e)
    };
    if failed.started {
        // Leave backup mode now rather than when the session closes.
        if let Err(stop) = pgside::stop_backup(failed.pg, failed.version) {
            tracing::debug!("stopping the failed backup: {stop}");
        }
    }
    let id = info.backup_id().clone();
    remove_partial_data(layout, &id);
    info.set_error(Some(&message))?;
    info.set_status(BackupStatus::Failed);
    info.set_end_time(Some(&ctx.clock.now().to_zoned(TimeZone::system())));
    info.write(layout)?;
    ctx.observer.event(&Event::BackupFailed {
        id: id.clone(),
        error: message.clone(),
    });
    ctx.hooks.post(HookEvent::Backup, || {
        EventVars::backup(backup_vars_now(server, &info))
    });
    Ok(Error::BackupFailed {
        server: server.name.clone(),
        id: id.to_string(),
        message,
    })
}

struct Running<'a> {
    server: &'a ServerConfig,
    options: &'a BackupOptions,
    layout: &'a ServerLayout,
    info: BackupInfo,
    pg: &'a PgConnection,
    facts: &'a pgside::ServerFacts,
    /// The parent of an incremental backup.
    parent: Option<&'a incremental::Parent>,
    started: bool,
    copy: Option<CopySummary>,
}

type PhaseResult<T> = std::result::Result<T, Box<(FailedAt, Error)>>;

fn at<T>(phase: &'static str, r: Result<T>) -> PhaseResult<T> {
    r.map_err(|e| Box::new((FailedAt(phase), e)))
}

/// What a backup will do, fixed before it starts.
struct BackupPlan {
    id: BackupId,
    dir: PathBuf,
    label: String,
    /// Immediate checkpoint.
    fast: bool,
    seg_size: WalSegmentSize,
    /// `backup_method = postgres` (`BASE_BACKUP`).
    streamed: bool,
}

/// What the copy leaves for the later phases.
struct Copied {
    manifest: Manifest,
    summary: CopySummary,
    /// The listing and planning time.
    analysis: Duration,
}

/// The end of the backup, from `pg_backup_stop` (or `BASE_BACKUP`).
struct Stopped {
    stop: pgside::StopResult,
    end_time: Zoned,
    end_wal: barman_wal::SegmentName,
    end_offset: u64,
}

impl Running<'_> {
    /// The plan, then the phases: start, copy, stop, finalise.
    fn run(&mut self, ctx: &mut BackupContext<'_>) -> PhaseResult<()> {
        let plan = self.plan()?;
        let (mut copied, streamed_stop) = if plan.streamed {
            let conn = in_phase(ctx, Phase::Start, |ctx| self.start_streamed(ctx))?;
            let (copied, stop) = in_phase(ctx, Phase::Copy, |ctx| {
                self.stream_base_backup(ctx, conn, &plan)
            })?;
            (copied, Some(stop))
        } else {
            in_phase(ctx, Phase::Start, |ctx| self.start(ctx, &plan))?;
            let copied = in_phase(ctx, Phase::Copy, |ctx| self.copy(ctx, &plan.dir))?;
            (copied, None)
        };
        let since = phase_started(ctx, Phase::Stop);
        let stop = match streamed_stop {
            Some(stop) => stop,
            None => self.stop(ctx)?,
        };
        let stopped = self.record_stop(ctx, &plan, stop, &mut copied)?;
        phase_finished(ctx, Phase::Stop, since);
        let summary = in_phase(ctx, Phase::Finalise, |ctx| {
            self.finalise(ctx, &plan, copied)
        })?;
        self.report_completion(ctx, &summary, &stopped);
        self.copy = Some(summary);
        Ok(())
    }

    fn plan(&self) -> PhaseResult<BackupPlan> {
        let server = self.server;
        let id = self.info.backup_id().clone();
        let seg_size = at(
            "starting backup",
            WalSegmentSize::new(self.facts.wal_segment_size).map_err(Error::from),
        )?;
        Ok(BackupPlan {
            dir: self.layout.backup_dir(&id),
            label: format!("Barman backup {} {id}", server.name),
            fast: self
                .options
                .immediate_checkpoint
                .unwrap_or(server.immediate_checkpoint),
            seg_size,
            streamed: server.backup_method == BackupMethod::Postgres,
            id,
        })
    }

    /// Writes backup.info with `status`.
    fn write_status(&mut self, status: BackupStatus, phase: &'static str) -> PhaseResult<()> {
        self.info.set_status(status);
        at(
            phase,
            self.info
                .write(self.layout)
                .map(|_| ())
                .map_err(crate::Error::from),
        )
    }

    /// `pg_backup_start`; the backup is STARTED.
    fn start(&mut self, ctx: &mut BackupContext<'_>, plan: &BackupPlan) -> PhaseResult<()> {
        let start_lsn = at(
            "starting backup",
            pgside::start_backup(self.pg, self.facts.version, &plan.label, plan.fast),
        )?;
        self.started = true;
        self.write_status(BackupStatus::Started, "starting backup")?;
        ctx.observer
            .event(&Event::BackupStartLsn { lsn: start_lsn });
        Ok(())
    }

    /// The copy of the rsync methods, reusing the previous backup.
    fn copy(&mut self, ctx: &mut BackupContext<'_>, dir: &Path) -> PhaseResult<Copied> {
        let server = self.server;
        let previous = at("copying files", previous_backup(self.layout, &server.name))?;
        let reuse = reuse_mode(self.options, server);
        match &previous {
            None => ctx.observer.event(&Event::FirstBackup {
                server: server.name.clone(),
            }),
            Some((p, _)) if reuse != Reuse::Off => ctx.observer.event(&Event::ReusingBackup {
                previous: p.backup_id().clone(),
                reuse: self.options.reuse.or(server.reuse_backup),
            }),
            Some(_) => {}
        }
        let copied = self.copy_files(ctx, dir, previous, reuse)?;
        let report = &copied.summary.report;
        ctx.observer.event(&Event::CopyFinished {
            elapsed: report.elapsed,
            files: report.files,
            bytes: report.bytes_total,
            details: Some(CopyDetails {
                files_linked: report.files_linked,
                files_delta: report.files_delta,
                wire_bytes: report.wire_bytes,
            }),
        });
        Ok(copied)
    }

    /// `pg_backup_stop`.
    fn stop(&mut self, ctx: &mut BackupContext<'_>) -> PhaseResult<pgside::StopResult> {
        ctx.observer.event(&Event::BackupStopping);
        let stop = at(
            "stopping backup",
            pgside::stop_backup(self.pg, self.facts.version),
        )?;
        self.started = false;
        Ok(stop)
    }

    /// Records the end of the backup: `backup_label` and `tablespace_map`
    /// in the copy (rsync methods), the WAL positions in backup.info.
    fn record_stop(
        &mut self,
        ctx: &BackupContext<'_>,
        plan: &BackupPlan,
        stop: pgside::StopResult,
        copied: &mut Copied,
    ) -> PhaseResult<Stopped> {
        let end_time = ctx.clock.now().to_zoned(TimeZone::system());
        let label_facts = at("stopping backup", pgside::parse_label(&stop.label))?;
        let (begin_wal, begin_offset) =
            pgside::wal_position(label_facts.timeline, label_facts.start_lsn, plan.seg_size);
        let (end_wal, end_offset) =
            pgside::wal_position(label_facts.timeline, stop.lsn, plan.seg_size);
        if !plan.streamed {
            // BASE_BACKUP sent backup_label and tablespace_map itself.
            let mut extra = |rel: &str, text: &str| -> PhaseResult<()> {
                let bytes = at(
                    "stopping backup",
                    write_into_copy(&plan.dir, rel, text, &mut copied.manifest),
                )?;
                copied.summary.report.bytes_total += bytes;
                copied.summary.report.bytes_written += bytes;
                Ok(())
            };
            extra("data/backup_label", &stop.label)?;
            if !stop.tablespace_map.is_empty() {
                extra("data/tablespace_map", &stop.tablespace_map)?;
            }
        }
        self.info.set_backup_label(Some(&stop.label));
        self.info.set_timeline(Some(label_facts.timeline.get()));
        at(
            "stopping backup",
            (|| {
                self.info
                    .set_begin_xlog(Some(&label_facts.start_lsn.to_string()))?;
                self.info.set_begin_wal(Some(&begin_wal.to_string()))?;
                self.info.set_end_xlog(Some(&stop.lsn.to_string()))?;
                self.info.set_end_wal(Some(&end_wal.to_string()))
            })()
            .map_err(crate::Error::from),
        )?;
        self.info.set_begin_offset(Some(begin_offset));
        self.info.set_end_offset(Some(end_offset));
        self.info.set_end_time(Some(&end_time));
        Ok(Stopped {
            stop,
            end_time,
            end_wal,
            end_offset,
        })
    }

    /// Restore point, WAL switch, sizes, manifest; the backup is
    /// WAITING_FOR_WALS.
    fn finalise(
        &mut self,
        ctx: &mut BackupContext<'_>,
        plan: &BackupPlan,
        copied: Copied,
    ) -> PhaseResult<CopySummary> {
        const PHASE: &str = "finalising backup";
        let Copied {
            mut manifest,
            summary,
            analysis,
        } = copied;
        let dir = &plan.dir;
        at(PHASE, self.after_stop(&plan.id))?;
        self.info.set_size(Some(summary.report.bytes_total));
        self.info
            .set_deduplicated_size(Some(summary.report.bytes_written));
        self.info
            .set_copy_stats(Some(&copy_stats(&summary, analysis)));
        if self.server.autogenerate_manifest && !plan.streamed {
            let path = at(PHASE, pg_manifest::generate(self.layout, &self.info))?;
            let text = at(
                PHASE,
                std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e)),
            )?;
            at(
                PHASE,
                write_into_copy(dir, "data/backup_manifest", &text, &mut manifest),
            )?;
        }
        at(
            PHASE,
            manifest
                .write(&dir.join(MANIFEST_FILE))
                .map_err(Error::from)
                .and_then(|()| barman_catalog::fs::fsync_dir(dir).map_err(crate::Error::from)),
        )?;
        if ctx.cancel.load(Ordering::SeqCst) {
            return Err(Box::new((
                FailedAt(PHASE),
                Error::Copy(barman_copy::Error::Cancelled),
            )));
        }
        self.write_status(BackupStatus::WaitingForWals, PHASE)?;
        Ok(summary)
    }

    /// Sizes, end LSN, times.
    fn report_completion(
        &self,
        ctx: &mut BackupContext<'_>,
        summary: &CopySummary,
        stopped: &Stopped,
    ) {
        ctx.observer.event(&Event::BackupSize {
            total: summary.report.bytes_total,
            written: summary.report.bytes_written,
        });
        ctx.observer.event(&Event::BackupEndLsn {
            lsn: stopped.stop.lsn,
            wal: stopped.end_wal.to_string(),
            offset: stopped.end_offset,
        });
        let end_time = &stopped.end_time;
        let begin_time = self
            .info
            .begin_time()
            .ok()
            .flatten()
            .unwrap_or_else(|| end_time.clone());
        ctx.observer.event(&Event::BackupCompleted {
            id: self.info.backup_id().clone(),
            elapsed: end_time
                .timestamp()
                .duration_since(begin_time.timestamp())
                .unsigned_abs(),
            begin_time,
        });
    }

    /// `backup_method = postgres`: the replication connection; the backup
    /// is STARTED.
    fn start_streamed(
        &mut self,
        ctx: &mut BackupContext<'_>,
    ) -> PhaseResult<barman_pg::replication::ReplicationConnection> {
        let server = self.server;
        let conn = crate::server::connect_as(server, &server.streaming_backup_name);
        let conn = at("connecting for BASE_BACKUP", conn)?;
        self.write_status(BackupStatus::Started, "starting backup")?;
        ctx.observer.event(&Event::BaseBackupStreaming);
        Ok(conn)
    }

    /// `backup_method = postgres`: `BASE_BACKUP` streamed into the backup
    /// directory; returns what the copy returns for the rsync methods and
    /// the end of the backup as `pg_backup_stop` would.
    fn stream_base_backup(
        &mut self,
        ctx: &mut BackupContext<'_>,
        mut conn: barman_pg::replication::ReplicationConnection,
        plan: &BackupPlan,
    ) -> PhaseResult<(Copied, pgside::StopResult)> {
        use barman_pg::replication::BaseBackupOptions;
        let server = self.server;
        let dir = plan.dir.as_path();
        let started = Instant::now();
        let options = BaseBackupOptions {
            label: plan.label.clone(),
            fast: plan.fast,
            max_rate_kbps: self
                .options
                .bwlimit
                .or(server.bandwidth_limit)
                .filter(|&kb| kb > 0),
            manifest: true,
            progress: true,
            wal: false,
            wait: false,
            tablespace_map: true,
            incremental: self.parent.is_some(),
            compression: None,
        };
        if let Some(parent) = self.parent {
            let path = &parent.manifest;
            let mut file = at(
                "starting backup",
                std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e)),
            )?;
            at(
                "starting backup",
                conn.upload_manifest(&mut file).map_err(Error::from),
            )?;
        }
        let progress = ProgressEvents::new(&mut *ctx.observer);
        let (sink, result) = at(
            "copying files",
            stream_into(&mut conn, options, server, dir, &progress, ctx.cancel),
        )?;
        at("copying files", streamed::sync_dir(dir))?;
        let streamed::DirSink {
            manifest,
            bytes,
            files,
            label,
            tablespace_map,
            ..
        } = sink;
        let label_text = at(
            "stopping backup",
            label
                .ok_or_else(|| Error::BackupRefused("BASE_BACKUP sent no backup_label".to_owned())),
        )?;
        let elapsed = started.elapsed();
        ctx.observer.event(&Event::CopyFinished {
            elapsed,
            files,
            bytes,
            details: None,
        });
        let report = CopyReport {
            files,
            files_fetched: files,
            bytes_total: bytes,
            bytes_written: bytes,
            wire_bytes: result.bytes,
            workers: 1,
            elapsed,
            ..CopyReport::default()
        };
        let stop = pgside::StopResult {
            lsn: result.end_lsn,
            label: label_text,
            tablespace_map: tablespace_map.unwrap_or_default(),
        };
        let summary = CopySummary {
            report,
            previous: None,
        };
        let copied = Copied {
            manifest,
            summary,
            analysis: Duration::ZERO,
        };
        Ok((copied, stop))
    }

    /// Lists, plans and copies, with `basebackup_retry_times` retries.
    fn copy_files(
        &mut self,
        ctx: &mut BackupContext<'_>,
        dir: &Path,
        previous: Option<(BackupInfo, Manifest)>,
        reuse: Reuse,
    ) -> PhaseResult<Copied> {
        let server = self.server;
        let roots = roots(&self.facts.data_directory, &self.facts.tablespaces);
        let sources = source_factory(server, self.options, roots.clone(), ctx.spawner.clone());
        let retries = self
            .options
            .retry_times
            .unwrap_or(server.basebackup_retry_times);
        let sleep = Duration::from_secs(
            self.options
                .retry_sleep
                .unwrap_or(server.basebackup_retry_sleep),
        );
        let previous_id = previous.as_ref().map(|(p, _)| p.backup_id().clone());
        let horizon = previous.as_ref().and_then(|(p, _)| horizon_of(p));
        let (previous_dir, previous_manifest) = match previous {
            Some((p, m)) => (
                Some(self.layout.backup_dir(p.backup_id())),
                Some(Arc::new(m)),
            ),
            None => (None, None),
        };
        let jobs = self.options.jobs.unwrap_or(server.parallel_jobs).max(1) as usize;
        let kbps = self
            .options
            .bwlimit
            .or(server.bandwidth_limit)
            .filter(|&l| l > 0);
        let exec = ExecOptions {
            jobs,
            // Checked by refuse_unsupported: kbps * 1024 fits.
            bandwidth_limit: kbps.map(|k| k.saturating_mul(1024)),
            tree_limits: self
                .facts
                .tablespaces
                .iter()
                .filter_map(|t| {
                    let limit = server.tablespace_bandwidth_limit.as_ref()?.get(&t.name)?;
                    (*limit > 0).then(|| (t.oid.to_string(), limit.saturating_mul(1024)))
                })
                .collect(),
            previous_dir,
            previous: previous_manifest.clone(),
            reuse,
            skip_vanished: true,
        };
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = (|| {
                let (listing, session) = list_all(sources.as_ref(), &roots)?;
                // The first worker goes on with the listing's session.
                let sources = barman_copy::source::WithSession::new(session, sources.as_ref());
                let plan = CopyPlan::compute(
                    previous_manifest.as_deref(),
                    &listing,
                    &plan_options(server, self.options, reuse, horizon),
                );
                let analysis = started.elapsed();
                tracing::debug!("copy plan for {}:\n{plan}", self.info.backup_id());
                let progress = ProgressEvents::new(&mut *ctx.observer);
                let report =
                    barman_copy::execute(&plan, &sources, dir, &exec, &progress, ctx.cancel)?;
                Ok::<_, Error>((report, analysis))
            })();
            match result {
                Ok((report, analysis)) => {
                    let mut report = report;
                    let manifest = std::mem::take(&mut report.manifest);
                    let summary = CopySummary {
                        report,
                        previous: previous_id.clone(),
                    };
                    return Ok(Copied {
                        manifest,
                        summary,
                        analysis,
                    });
                }
                Err(e) => {
                    let cancelled = ctx.cancel.load(Ordering::SeqCst)
                        || matches!(e, Error::Copy(barman_copy::Error::Cancelled));
                    if cancelled || attempt >= retries {
                        return Err(Box::new((FailedAt("copying files"), e)));
                    }
                    attempt += 1;
                    ctx.observer.event(&Event::CopyRetry {
                        error: e.to_string(),
                        attempt,
                        retries,
                        sleep,
                    });
                    remove_partial_data(self.layout, self.info.backup_id());
                    std::thread::sleep(sleep);
                }
            }
        }
    }

    fn after_stop(&mut self, id: &BackupId) -> Result<()> {
        let server = self.server;
        if self.facts.in_recovery {
            // A standby cannot switch WAL or create restore points: ask the primary.
            if let Some(primary) = server.primary_conninfo.as_deref() {
                let p = PgConnection::connect(primary, "barman_backup")?;
                p.switch_wal()?;
            } else {
                tracing::warn!(
                    "server `{}` is a standby and primary_conninfo is not set: the backup's last WAL arrives only when the primary switches WAL",
                    server.name
                );
            }
        } else {
            self.pg.execute(&format!(
                "SELECT pg_catalog.pg_create_restore_point('barman_{id}')"
            ))?;
            self.pg.switch_wal()?;
        }
        Ok(())
    }
}

/// Writes `text` as `rel` in the copy (durably) and records it in the manifest.
/// `BASE_BACKUP` into `dir`: plain files ([`streamed::DirSink`]), or one
/// (compressed) tar file per archive ([`tar_sink::TarSink`]) when
/// `backup_compression` asks for the tar format. Server-side compression
/// adds `COMPRESSION` to the command (with the plain format the archives
/// are decompressed as they arrive).
fn stream_into<'a>(
    conn: &mut barman_pg::replication::ReplicationConnection,
    mut options: barman_pg::replication::BaseBackupOptions,
    server: &ServerConfig,
    dir: &Path,
    progress: &'a dyn barman_copy::Progress,
    cancel: &'a std::sync::atomic::AtomicBool,
) -> Result<(
    streamed::DirSink<'a>,
    barman_pg::replication::BaseBackupResult,
)> {
    use barman_config::{BackupCompressionFormat, BackupCompressionLocation};
    let settings = server.backup_compression_settings();
    if let Some(c) = &settings
        && c.location == BackupCompressionLocation::Server
    {
        options.compression = tar_sink::wal_compression(c.algorithm).map(|method| {
            barman_pg::replication::ServerCompression {
                method,
                level: c.level,
                workers: c.workers,
            }
        });
    }
    if let Some(c) = settings.filter(|c| c.format == BackupCompressionFormat::Tar) {
        let format = tar_sink::TarFormat::of(&c);
        let mut sink = tar_sink::TarSink::new(dir, format, progress, cancel);
        let result = conn.base_backup(&options, &mut sink)?;
        Ok((sink.into_inner(), result))
    } else {
        let mut sink = streamed::DirSink::new(dir, progress, cancel);
        let result = conn.base_backup(&options, &mut sink)?;
        Ok((sink, result))
    }
}

fn write_into_copy(dir: &Path, rel: &str, text: &str, manifest: &mut Manifest) -> Result<u64> {
    let path = dir.join(rel);
    barman_catalog::fs::write_atomic(&path, text.as_bytes(), 0o600)?;
    let meta = std::fs::metadata(&path).map_err(|e| Error::io("cannot stat", &path, e))?;
    let bytes = text.as_bytes();
    manifest.insert(ManifestEntry {
        entry: Entry {
            path: RelPath::new(rel)?,
            kind: EntryKind::File,
            size: bytes.len() as u64,
            mtime: barman_copy::Mtime::of(&meta),
            mode: 0o600,
        },
        blake3: Some(file_hash(bytes)),
        pages: None,
    });
    Ok(bytes.len() as u64)
}

fn file_hash(bytes: &[u8]) -> barman_copy::hash::FileHash {
    let mut hasher = barman_copy::hash::Hasher::new(false);
    hasher.update(bytes);
    hasher.finish().0
}

#[allow(clippy::cast_precision_loss)]
fn copy_stats(summary: &CopySummary, analysis: Duration) -> PyValue {
    let secs = |d: Duration| PyValue::Float(PyFloat::new(d.as_secs_f64()));
    let summary = &summary.report;
    PyValue::Dict(vec![
        (
            PyValue::Str("total_time".into()),
            secs(summary.elapsed + analysis),
        ),
        (
            PyValue::Str("number_of_workers".into()),
            PyValue::Int(i128::try_from(summary.workers).unwrap_or(1)),
        ),
        (PyValue::Str("analysis_time".into()), secs(analysis)),
        (PyValue::Str("copy_time".into()), secs(summary.elapsed)),
        (
            PyValue::Str("files_linked".into()),
            PyValue::Int(i128::from(summary.files_linked)),
        ),
        (
            PyValue::Str("bytes_transferred".into()),
            PyValue::Int(i128::from(summary.wire_bytes)),
        ),
    ])
}

/// After the copy: archive-wal inline, then check-backup; with `--wait`,
/// repeat until the backup is DONE (or FAILED, or the timeout).
fn finish_wals(
    global: &GlobalConfig,
    server: &ServerConfig,
    info: &mut BackupInfo,
    options: &BackupOptions,
    ctx: &mut BackupContext<'_>,
) -> Result<()> {
    let layout = server.layout();
    let deadline = options.wait_timeout.map(|t| Instant::now() + t);
    let mut announced = false;
    loop {
        let (archive_options, _) = crate::server::archive_setup(global, server)?;
        match archive_wal(
            &layout,
            &archive_options,
            ctx.clock,
            &mut ctx.hooks.archive_observer(),
        ) {
            Ok(report) => {
                if let Some(stopped) = &report.stopped {
                    ctx.observer.event(&Event::ArchivingStopped {
                        server: server.name.clone(),
                        wal: stopped.name.clone(),
                        reason: stopped.reason.clone(),
                    });
                }
                if !report.processed.is_empty() {
                    ctx.observer.event(&Event::WalsArchived {
                        server: server.name.clone(),
                        wals: report.processed.iter().map(|p| p.name.clone()).collect(),
                    });
                }
            }
            Err(Error::Catalog(barman_catalog::Error::LockBusy { .. })) => {
                tracing::debug!("archive-wal is running elsewhere");
            }
            Err(e) => return Err(e),
        }
        let status = check_backup_info(global, server, info)?;
        if status != BackupStatus::WaitingForWals || !options.wait {
            if status == BackupStatus::WaitingForWals {
                ctx.observer.event(&Event::BackupWaitingForWals {
                    id: info.backup_id().clone(),
                    end_wal: info.end_wal().map(str::to_owned),
                });
            }
            return Ok(());
        }
        if !announced {
            ctx.observer.event(&Event::WaitingForWal {
                wal: info.end_wal().map(str::to_owned),
            });
            announced = true;
        }
        if ctx.cancel.load(Ordering::SeqCst) {
            return Err(Error::Timeout("interrupted while waiting for WALs".into()));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout(format!(
                "backup {} is still WAITING_FOR_WALS after --wait-timeout",
                info.backup_id()
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// After the very first backup of a server (no older WAITING_FOR_WALS or
/// DONE backup): the WALs older than its `begin_wal` can never be used and
/// are removed, as Barman does (not with `worm_mode`).
fn purge_before_first(
    global: &GlobalConfig,
    server: &ServerConfig,
    info: &BackupInfo,
    ctx: &mut BackupContext<'_>,
) -> Result<()> {
    if server.worm_mode || info.status()? == BackupStatus::Failed {
        return Ok(());
    }
    let backups = crate::retention::catalog_backups(&server.catalog())?;
    let summaries: Vec<_> = backups.into_iter().map(|b| b.summary).collect();
    if !barman_retention::is_first_backup(&summaries, info.backup_id().as_str()) {
        return Ok(());
    }
    let removed = crate::removal::purge_before_first_backup(
        global,
        server,
        info,
        ctx.hooks,
        &mut LogObserver,
    )?;
    if let Some(abort) = &removed.aborted {
        ctx.observer.event(&Event::WalPurgeStopped {
            id: info.backup_id().clone(),
            reason: abort.to_string(),
        });
    }
    if removed.count > 0 {
        ctx.observer.event(&Event::WalsPurged {
            server: server.name.clone(),
            id: info.backup_id().clone(),
            count: removed.count,
        });
    }
    Ok(())
}
