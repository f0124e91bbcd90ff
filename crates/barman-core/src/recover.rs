//! `barman recover` (alias `restore`): the flow of BARMAN-BEHAVIOUR.md §8.
//!
//! 1. The target options are validated and the backup chosen (an id, a
//!    name, a shortcut, or `auto`: the newest backup that can reach the
//!    target) before anything is written.
//! 2. The WALs the target needs are computed from xlog.db and the timeline
//!    histories (§4.1); a segment missing from that range fails the
//!    recovery, naming it, before any file is copied.
//! 3. The backup is restored with [`barman_copy::restore()`]: locally, or
//!    through `barman agent` sessions over `--remote-ssh-command`; every
//!    file's blake3 is checked against the backup's manifest while it is
//!    sent; `--delta-restore` keeps the files already right in DEST;
//!    `--tablespace NAME:LOCATION` relocates a tablespace (its
//!    `pg_tblspc` link and `tablespace_map` line).
//! 4. The WALs are staged (decompressed) into `barman_wal/` (PITR) or
//!    `pg_wal/` with `.done` status files, unless `restore_command` fetches
//!    them (`--get-wal`).
//! 5. The configuration: `.origin` copies, `archive_command` neutralised
//!    with `#BARMAN#`, the recovery settings appended to
//!    `postgresql.auto.conf` with `recovery.signal`/`standby.signal`
//!    (`recovery.conf` before PostgreSQL 12), `.barman-recover.info`,
//!    `backup_manifest` renamed.
//!
//! The catalog is only read: a failed recovery changes nothing in it.

mod chain;
pub mod conf;
pub mod target;
mod untar;
pub mod wals;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use barman_copy::{
    Destination, DestinationFactory, Entry, Exclusions, LocalDestination, Manifest, Mtime, RelPath,
    RestoreOptions, Roots,
};
use barman_hooks::{HookEvent, HookPhase, JsonScalar, RecoveryVars};
use barman_wal::{Codec, Compression, TimelineId, WalFileName, WalSegmentSize};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::archive::inspect::{detect_servable, open_plain};
use crate::clock::Clock;
use crate::event::{Event, Observer, Operation, Phase, ProgressEvents};
use crate::hooks::{EventVars, ServerHooks, backup_vars};
use crate::shared::{MANIFEST_FILE, Spawner, resolve_backup};
use crate::{Error, Result};
use barman_catalog::{BackupId, BackupInfo, BackupStatus, Catalog, Tablespace};
use barman_config::{GlobalConfig, RecoveryOption, ServerConfig};

pub use crate::event::recovery::{Change, Warning};
pub use target::{RecoveryTarget, TargetAction, TargetOptions, TargetTli};
pub use wals::{MissingWal, WalNeeds, WalStop, required_wals};

/// Name of the copy of backup.info written into DEST.
pub const RECOVER_INFO_FILE: &str = ".barman-recover.info";

/// Mode of the files recovery writes (configuration, WALs).
const FILE_MODE: u32 = 0o600;

/// The options of `barman recover`.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// BACKUP_ID as given (id, name, shortcut or `auto`).
    pub backup_id: String,
    /// DEST (absolute).
    pub destination: PathBuf,
    /// The target options.
    pub target: TargetOptions,
    /// `--standby-mode`.
    pub standby_mode: bool,
    /// `--remote-ssh-command`.
    pub remote_ssh_command: Option<String>,
    /// `-j/--jobs` (else `parallel_jobs`).
    pub jobs: Option<u32>,
    /// `--bwlimit` in KB/s (else `bandwidth_limit`; 0: none).
    pub bwlimit: Option<u64>,
    /// `--network-compression` / `--no-network-compression`.
    pub network_compression: Option<bool>,
    /// `--tablespace NAME:LOCATION`.
    pub tablespaces: Vec<(String, PathBuf)>,
    /// `--delta-restore` / `--no-delta-restore` (else `recovery_options`).
    pub delta_restore: Option<bool>,
    /// `--get-wal` / `--no-get-wal` (else `recovery_options`).
    pub get_wal: Option<bool>,
    /// `--partial-wal`: also stage the WAL in `streaming/` that
    /// `archive-wal` has not filed yet (complete segments, and the
    /// `.partial` a timeline continues in), a `.partial` under its
    /// segment's name. With get-wal, `-P` is added to `restore_command`
    /// whatever this says (except in standby mode), as Barman does.
    pub partial_wal: bool,
    /// `--restore-command` (used with get-wal).
    pub restore_command: Option<String>,
    /// `--staging-wal-directory` (PITR WAL directory instead of DEST/barman_wal).
    pub staging_wal_directory: Option<PathBuf>,
    /// `--staging-path`, `--staging-location`, `--local-staging-path`,
    /// `--recovery-staging-path` (see [`StagingOptions`]).
    pub staging: StagingOptions,
    /// `--recovery-conf-filename` (instead of postgresql.auto.conf).
    pub recovery_conf_filename: Option<String>,
    /// The command run after the ssh command to start the agent (`barman agent`).
    pub agent_command: Option<String>,
    /// How `restore_command` calls this barman locally (`barman -c FILE`):
    /// shell text, its words quoted by the caller ([`crate::shell::quote`]);
    /// its `%` are doubled here.
    pub barman_command: Option<String>,
}

/// Barman's staging options (`--staging-path`, ...; else the server's
/// `staging_path`, `staging_location`, `local_staging_path`,
/// `recovery_staging_path`). Barman stages compressed, encrypted and
/// incremental backups before copying them; barman-rs unpacks compressed
/// backups and combines incremental chains straight into the destination,
/// so these are validated as Barman does (absolute paths, `remote` needs
/// `--remote-ssh-command`, the deprecated options' rules) and used only
/// for the one staging copy it makes: the tar-format members of an
/// incremental chain ([`chain`]).
#[derive(Debug, Clone, Default)]
pub struct StagingOptions {
    /// `--staging-path`.
    pub path: Option<PathBuf>,
    /// `--staging-location`: `Some(true)` for `remote`.
    pub remote: Option<bool>,
    /// `--local-staging-path` (deprecated).
    pub local_path: Option<PathBuf>,
    /// `--recovery-staging-path` (deprecated).
    pub recovery_path: Option<PathBuf>,
}

/// The staging settings of a recovery: the options over the server's.
#[derive(Debug, Clone)]
struct Staging {
    path: Option<PathBuf>,
    local_path: Option<PathBuf>,
    recovery_path: Option<PathBuf>,
    /// Only the deprecated paths are set (they force `local`).
    deprecated: bool,
    /// `staging_location = remote`.
    remote: bool,
}

impl Staging {
    fn resolve(server: &ServerConfig, options: &RecoverOptions) -> Self {
        let staging = &options.staging;
        let extra = |key: &str| {
            server
                .extra
                .get(key)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let path = staging.path.clone().or_else(|| server.staging_path.clone());
        let local_path = staging
            .local_path
            .clone()
            .or_else(|| extra("local_staging_path"));
        let recovery_path = staging
            .recovery_path
            .clone()
            .or_else(|| extra("recovery_staging_path"));
        let deprecated = path.is_none() && (local_path.is_some() || recovery_path.is_some());
        // The deprecated options force staging_location = local.
        let remote = !deprecated
            && staging
                .remote
                .unwrap_or(server.staging_location == barman_config::StagingLocation::Remote);
        Self {
            path,
            local_path,
            recovery_path,
            deprecated,
            remote,
        }
    }

    /// Where the tar-format members of a chain are unpacked: the staging
    /// path, else the deprecated ones, else `/tmp` (Barman's default for
    /// these backups).
    fn root(&self) -> PathBuf {
        self.path
            .clone()
            .or_else(|| self.local_path.clone())
            .or_else(|| self.recovery_path.clone())
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    }

    /// Checks them as Barman 3.20 does (`cli:restore`,
    /// `_handle_deprecated_staging_options`).
    fn check(&self, info: &BackupInfo, remote: bool, delta: bool) -> Result<()> {
        for (option, value) in [
            ("staging_path", &self.path),
            ("local_staging_path", &self.local_path),
            ("recovery_staging_path", &self.recovery_path),
        ] {
            if let Some(dir) = value
                && !dir.is_absolute()
            {
                return Err(refuse(format!(
                    "{option} `{}` must be an absolute path",
                    dir.display()
                )));
            }
        }
        if self.remote && !remote {
            return Err(refuse(
                "staging_location = remote requires --remote-ssh-command".to_owned(),
            ));
        }
        if self.remote && delta {
            return Err(refuse(
                "--delta-restore is not supported with staging_location = remote".to_owned(),
            ));
        }
        if self.deprecated && info.compression().is_some() && self.recovery_path.is_none() {
            return Err(refuse(format!(
                "Cannot restore from backup {} because no recovery staging path was provided",
                info.backup_id()
            )));
        }
        Ok(())
    }
}

/// What a recovery needs from its caller.
pub struct RecoverContext<'a> {
    /// The clock.
    pub clock: &'a dyn Clock,
    /// The time zone of naive `--target-time` values.
    pub local_tz: TimeZone,
    /// The events of the recovery ([`crate::event`]), copy progress
    /// included (sent from the copy's worker threads, hence `Send`).
    pub observer: &'a mut (dyn Observer + Send),
    /// Set to cancel (Ctrl-C / SIGTERM).
    pub cancel: &'a AtomicBool,
    /// Process spawning (agent sessions over ssh).
    pub spawner: Arc<dyn Spawner>,
    /// The server's hook scripts (recovery hooks).
    pub hooks: &'a ServerHooks,
}

impl std::fmt::Debug for RecoverContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverContext").finish_non_exhaustive()
    }
}

/// What a recovery did (the `--format json` summary).
#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    /// The backup restored.
    pub backup_id: String,
    /// The server.
    pub server: String,
    /// DEST.
    pub destination: String,
    /// The ssh command of a remote recovery.
    pub remote_ssh_command: Option<String>,
    /// The recovery target.
    pub recovery_target: RecoveryTarget,
    /// Whether this is a point-in-time recovery.
    pub pitr: bool,
    /// The timeline recovery ends on (as staged).
    pub target_timeline: u32,
    /// Tablespaces: name → location they were restored to.
    pub tablespaces: BTreeMap<String, String>,
    /// What the copy did: files and bytes in the backup, written, reused
    /// and removed (delta restore), unverified, and sent to the sessions
    /// (flattened into the JSON summary).
    #[serde(flatten)]
    pub copied: barman_copy::RestoreReport,
    /// WAL files staged.
    pub wals: u64,
    /// Where the WALs were staged.
    pub wal_directory: Option<String>,
    /// The `restore_command` written.
    pub restore_command: Option<String>,
    /// The file the recovery settings went to.
    pub recovery_configuration_file: Option<String>,
    /// `recovery.signal` / `standby.signal` when written.
    pub signal_file: Option<String>,
    /// What was changed in DEST's configuration.
    pub changes: Vec<Change>,
    /// What to review before starting PostgreSQL.
    pub warnings: Vec<Warning>,
    /// Wall time in seconds.
    pub elapsed_seconds: f64,
}

/// Restores a backup of `server` into `options.destination`.
///
/// # Errors
///
/// [`Error::BackupRefused`] for bad options or a backup that cannot serve
/// the target (checked before anything is written);
/// [`barman_catalog::Error::BackupNotFound`]; [`Error::WalNotFound`] naming the first WAL
/// missing from the range the recovery needs; [`Error::Copy`] for copy
/// failures (a checksum mismatch names the file; a non-empty DEST without
/// delta restore); [`Error::HookAborted`] when the pre recovery retry
/// hook exited 63 (nothing was written).
///
/// The pre recovery hooks run once the options, the backup and its WALs
/// are checked, before anything is written to DEST; the post hooks at the
/// end, whether the recovery succeeded or not (`BARMAN_ERROR` says why
/// not).
pub fn recover(
    global: &GlobalConfig,
    server: &ServerConfig,
    options: &RecoverOptions,
    ctx: &mut RecoverContext<'_>,
) -> Result<RecoverReport> {
    let hooks = ctx.hooks;
    let mut checked: Option<EventVars> = None;
    let result = restore(global, server, options, ctx, &mut |catalog, info| {
        let runs = |phase| hooks.runs(HookEvent::Recovery, phase);
        if !runs(HookPhase::Pre) && !runs(HookPhase::Post) {
            return Ok(());
        }
        let backups = catalog.backups().unwrap_or_default();
        let vars = EventVars::recovery(
            backup_vars(catalog.layout(), &backups, info),
            recovery_vars(options),
        );
        hooks.pre(HookEvent::Recovery, || vars.clone())?;
        checked = Some(vars);
        Ok(())
    });
    if let Some(vars) = checked {
        let error = result.as_ref().err().map(ToString::to_string);
        hooks.post(HookEvent::Recovery, || vars.with_error(error));
    }
    result
}

/// The recovery variables Barman gives hooks: DEST, the `--tablespace`
/// relocations, the `--remote-ssh-command` and the non-empty target
/// options, named as Barman's `recover` keyword arguments.
fn recovery_vars(options: &RecoverOptions) -> RecoveryVars {
    let mut vars = RecoveryVars::new(options.destination.display().to_string());
    for (name, location) in &options.tablespaces {
        vars = vars.tablespace(name.clone(), location.display().to_string());
    }
    if let Some(remote) = &options.remote_ssh_command {
        vars = vars.remote_command(remote.clone());
    }
    let t = &options.target;
    let text = |v: &Option<String>| JsonScalar::Text(v.clone().unwrap_or_default());
    // Barman's `--target-tli` is an int, or `current` / `latest` as typed.
    let tli = t.tli.as_deref().map(str::trim).unwrap_or_default();
    let tli = tli
        .parse::<i64>()
        .map_or_else(|_| JsonScalar::Text(tli.to_owned()), JsonScalar::Int);
    for (name, value) in [
        ("target_tli", tli),
        ("target_time", text(&t.time)),
        ("target_xid", text(&t.xid)),
        ("target_lsn", text(&t.lsn)),
        ("target_name", text(&t.name)),
        ("target_immediate", JsonScalar::Bool(t.immediate)),
        ("exclusive", JsonScalar::Bool(t.exclusive)),
        ("target_action", text(&t.action)),
        ("standby_mode", JsonScalar::Bool(options.standby_mode)),
        (
            "recovery_conf_filename",
            text(&options.recovery_conf_filename),
        ),
    ] {
        vars = vars.option(name, value);
    }
    vars
}

/// [`recover`] without the hooks: `before_writing` is called once every
/// check passed, before DEST is touched; its error ends the recovery.
///
/// The [`Plan`] is computed (and every check made) first; the phases that
/// write DEST follow it: the base backup ([`copy_backup`]), the files next
/// to it ([`write_backup_files`]), the WALs ([`stage_wals`]), the
/// configuration ([`configuration_files`], [`write_configuration`])
/// and the end ([`finish`]).
fn restore(
    global: &GlobalConfig,
    server: &ServerConfig,
    options: &RecoverOptions,
    ctx: &mut RecoverContext<'_>,
    before_writing: &mut dyn FnMut(&Catalog, &BackupInfo) -> Result<()>,
) -> Result<RecoverReport> {
    let started = Instant::now();
    let mut plan = Plan::new(global, server, options, &ctx.local_tz)?;
    before_writing(&plan.catalog, &plan.info)?;
    let (factory, copied) = copy_backup(server, options, &plan, ctx)?;

    // Everything else goes through one more session.
    let mut session = factory.open()?;
    let mut changes = write_backup_files(session.as_mut(), options, &plan)?;
    let since = phase_started(ctx, Phase::RestoreWals);
    let (wal_directory, staged) = stage_wals(session.as_mut(), options, &plan, ctx)?;
    phase_finished(ctx, Phase::RestoreWals, since);
    let since = phase_started(ctx, Phase::Configure);
    let texts = configuration_files(session.as_mut(), &mut plan, &mut changes)?;
    let written = write_configuration(session.as_mut(), options, &plan, ctx, texts, &mut changes)?;
    let mut trees: Vec<String> = plan.roots.keys().cloned().collect();
    trees.sort();
    let dirs = [RelPath::new("data")?, plan.staging.dir.clone()];
    let dirs: Vec<&RelPath> = dirs.iter().collect();
    session.sync(&trees, &dirs)?;
    phase_finished(ctx, Phase::Configure, since);
    let copied = barman_copy::RestoreReport {
        wire_bytes: copied.wire_bytes + session.wire_bytes(),
        ..copied
    };
    Ok(finish(
        server,
        options,
        plan,
        ctx,
        Outcome {
            copied,
            wals: staged,
            wal_directory,
            written,
            changes,
            started,
        },
    ))
}

/// What a recovery does, computed and checked before anything is written:
/// the backup and its files, where they go, the WALs, the target and the
/// recovery settings.
struct Plan<'a> {
    /// The recovery target.
    target: RecoveryTarget,
    /// The server's catalog.
    catalog: Catalog,
    /// The backup restored.
    info: BackupInfo,
    /// Its id.
    id: BackupId,
    /// Its PostgreSQL version (0: unknown).
    version: u32,
    /// Whether `restore_command` fetches the WALs (nothing staged).
    get_wal: bool,
    /// Delta restore.
    delta: bool,
    /// Whether this is a point-in-time recovery.
    pitr: bool,
    /// The ssh command of a remote recovery.
    remote: Option<&'a str>,
    /// Copy workers.
    jobs: usize,
    /// The backup's tablespaces.
    tablespaces: Vec<Tablespace>,
    /// Tablespace name → the location it is restored to.
    locations: BTreeMap<String, String>,
    /// The destination trees: `data`, the tablespaces' oids, `wal`.
    roots: Roots,
    /// The `pg_tblspc` links of relocated tablespaces → their new targets.
    symlink_targets: BTreeMap<RelPath, String>,
    /// The backup's directory in the catalog.
    backup_dir: PathBuf,
    /// The backup's files (an incremental backup's: its chain's, combined).
    manifest: Manifest,
    /// An incremental backup's chain, root first, leaf last; empty for a
    /// full backup.
    chain: Vec<chain::Member>,
    /// Where tar-format members of a chain are unpacked before the chain
    /// is combined (`--staging-path`, ...; `/tmp` by default as in Barman).
    staging_root: PathBuf,
    /// The server's WAL compression codec.
    codec: Option<Codec>,
    /// The backup's WAL segment size.
    segment_size: WalSegmentSize,
    /// The WALs to stage: (name staged, archived file); none with get-wal.
    located: Vec<(String, PathBuf)>,
    /// A tar-format backup: its stream algorithm and archive suffix.
    compressed: Option<(Option<Compression>, &'static str)>,
    /// The timeline recovery ends on.
    target_tli: TimelineId,
    /// `--staging-wal-directory` when it applies.
    wal_root: Option<&'a PathBuf>,
    /// Where the WALs go.
    staging: StagingDir,
    /// The file the recovery settings go to (PostgreSQL 12 and later).
    auto_conf: String,
    /// The recovery settings, when written (PITR, get-wal, standby mode).
    recovery: Option<RecoverySettings>,
    /// What to review before starting PostgreSQL.
    warnings: Vec<Warning>,
}

/// Where the WALs are staged. PostgreSQL runs `restore_command` and
/// `recovery_end_command` through `sh -c` in the data directory:
/// DEST/barman_wal is written relative (as Barman 2.x did), a staging
/// directory elsewhere absolute, shell-quoted, its `%` doubled
/// (BARMAN-BEHAVIOUR.md §8.1; Barman 3 writes the absolute path unquoted).
struct StagingDir {
    /// The directory in the destination's trees.
    dir: RelPath,
    /// Its path as shown.
    text: String,
    /// Its path in `restore_command` and `recovery_end_command`.
    command: String,
}

/// The recovery settings a recovery writes.
struct RecoverySettings {
    /// The `restore_command` (unquoted).
    command: String,
    /// Every setting, `restore_command` first, its value quoted.
    settings: Vec<(String, String)>,
}

impl<'a> Plan<'a> {
    /// Checks the options, the backup and its WALs, and plans the recovery.
    fn new(
        global: &GlobalConfig,
        server: &ServerConfig,
        options: &'a RecoverOptions,
        local_tz: &TimeZone,
    ) -> Result<Self> {
        let mut warnings = Vec::new();
        let target = RecoveryTarget::from_options(&options.target, local_tz, &mut warnings)?;
        let catalog = server.catalog();
        let info = choose_backup(&catalog, &options.backup_id, &target)?;
        // Tar-format backups (`compression` set) are unpacked on the way.
        let compressed = info
            .compression()
            .map(|c| {
                untar::codec_of(c).ok_or_else(|| {
                    refuse(format!(
                        "backup {} has an unknown compression `{c}`",
                        info.backup_id()
                    ))
                })
            })
            .transpose()?;
        info.ensure_restorable_with(&server.name, "restored", compressed.is_some())?;
        server.check_bandwidth_limits(options.bwlimit)?;
        let id = info.backup_id().clone();
        let get_wal = options
            .get_wal
            .unwrap_or_else(|| server.recovery_options.contains(&RecoveryOption::GetWal));
        let delta = options.delta_restore.unwrap_or_else(|| {
            server
                .recovery_options
                .contains(&RecoveryOption::DeltaRestore)
        });
        let staging = Staging::resolve(server, options);
        staging.check(&info, remote_given(options), delta)?;
        if compressed.is_some() && delta {
            return Err(refuse(format!(
                "backup {}: delta restore is not supported for compressed backups (compression = {})",
                info.backup_id(),
                info.compression().unwrap_or_default()
            )));
        }
        let version = check_backup(server, &target, &info, get_wal, &mut warnings)?;
        let dest = &options.destination;
        if !dest.is_absolute() {
            return Err(refuse(format!(
                "destination `{}` must be an absolute path",
                dest.display()
            )));
        }
        let remote = options
            .remote_ssh_command
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        let tablespaces = info.tablespaces()?.unwrap_or_default();
        let Placement {
            locations,
            mut roots,
            symlink_targets,
        } = place_tablespaces(options, &id, &tablespaces, &mut warnings)?;

        // The WALs, checked before anything is written.
        let pitr = target.is_pitr();
        let codec = crate::server::wal_codec(server)?;
        let segment_size = WalSegmentSize::new(info.xlog_segment_size()?)?;
        // As Barman writes it, get-wal's restore_command asks for `.partial`
        // files (`-P`) except in standby mode; staged WALs include them with
        // --partial-wal.
        let partial = if get_wal {
            !options.standby_mode
        } else {
            options.partial_wal
        };
        let (wal_names, target_tli) =
            plan_wals(&catalog, &info, &target, version, partial, segment_size)?;
        let located = if get_wal {
            Vec::new()
        } else {
            locate_wals(&catalog, &wal_names, partial, codec.as_ref())?
        };

        // The backup's files; an incremental backup's chain, combined
        // (planned now, so that a broken chain is refused before anything
        // is written).
        let backup_dir = catalog.layout().backup_dir(&id);
        let (manifest, chain) = if info.is_incremental() {
            let chain = chain::backup_chain(&catalog, &info, &tablespaces, &mut warnings)?;
            let manifest = if chain.iter().any(|m| m.compressed.is_some()) {
                if staging.remote {
                    return Err(refuse(format!(
                        "backup {id}: its chain holds tar-format (compressed) backups, which barman-rs unpacks into a local staging directory before combining them: staging_location = remote is not supported (use local)"
                    )));
                }
                // Planned once its tar-format members are unpacked.
                chain.last().map(|m| m.manifest.clone()).unwrap_or_default()
            } else {
                let combined = barman_copy::combine::plan(&chain::members(&chain))?;
                let manifest = combined.manifest().clone();
                refuse_unless_plain(&catalog, &id, &manifest)?;
                manifest
            };
            (manifest, chain)
        } else {
            let manifest = backup_manifest(
                &catalog,
                &id,
                &backup_dir,
                &tablespaces,
                compressed.is_none(),
                &mut warnings,
            )?;
            (manifest, Vec::new())
        };

        let wal_root = options
            .staging_wal_directory
            .as_ref()
            .filter(|_| pitr || options.standby_mode);
        if let Some(dir) = wal_root {
            if !dir.is_absolute() {
                return Err(refuse(format!(
                    "--staging-wal-directory `{}` must be an absolute path",
                    dir.display()
                )));
            }
            roots.insert("wal".to_owned(), dir.clone());
        }
        if remote.is_none() && !delta {
            // Refused here, before any directory is created.
            check_empty(&roots)?;
        }
        let mut plan = Plan {
            staging: StagingDir::new(options, pitr, version, wal_root)?,
            target,
            catalog,
            info,
            id,
            version,
            get_wal,
            delta,
            pitr,
            remote,
            jobs: options.jobs.unwrap_or(server.parallel_jobs).max(1) as usize,
            tablespaces,
            locations,
            roots,
            symlink_targets,
            backup_dir,
            manifest,
            chain,
            staging_root: staging.root(),
            codec,
            segment_size,
            located,
            compressed,
            target_tli,
            wal_root,
            auto_conf: options
                .recovery_conf_filename
                .clone()
                .unwrap_or_else(|| "postgresql.auto.conf".to_owned()),
            recovery: None,
            warnings,
        };
        plan.recovery = plan.recovery_settings(global, server, options, partial);
        Ok(plan)
    }

    /// The recovery settings, written for a PITR, get-wal or standby mode.
    fn recovery_settings(
        &self,
        global: &GlobalConfig,
        server: &ServerConfig,
        options: &RecoverOptions,
        partial: bool,
    ) -> Option<RecoverySettings> {
        let get_wal = self.get_wal;
        if !(self.pitr || get_wal || options.standby_mode) {
            return None;
        }
        let mut settings: Vec<(String, String)> = Vec::new();
        let command = if get_wal {
            options.restore_command.clone().unwrap_or_else(|| {
                get_wal_command(
                    global,
                    server,
                    options,
                    self.remote.is_some(),
                    partial,
                    self.jobs,
                )
            })
        } else {
            format!("cp {}/%f %p", self.staging.command)
        };
        settings.push(("restore_command".into(), target::quote(&command)));
        if !get_wal && !options.standby_mode && self.wal_root.is_none() {
            settings.push((
                "recovery_end_command".into(),
                target::quote(&format!("rm -fr {}", self.staging.command)),
            ));
        }
        settings.extend(self.target.settings(self.version));
        Some(RecoverySettings { command, settings })
    }
}

/// Checks the backup's status and that it can reach the target; returns
/// its PostgreSQL version (0: unknown).
fn check_backup(
    server: &ServerConfig,
    target: &RecoveryTarget,
    info: &BackupInfo,
    get_wal: bool,
    warnings: &mut Vec<Warning>,
) -> Result<u32> {
    let id = info.backup_id();
    match info.status()? {
        BackupStatus::Done => {}
        BackupStatus::WaitingForWals if get_wal => {}
        BackupStatus::WaitingForWals => warnings.push(Warning::BackupWaitingForWals {
            backup_id: id.to_string(),
        }),
        other => {
            return Err(refuse(format!(
                "backup {id} of server `{}` is {other}: only DONE (or WAITING_FOR_WALS) backups can be recovered",
                server.name
            )));
        }
    }
    let version = info.version()?.unwrap_or(0);
    check_version(target, version)?;
    if let (Some(time), Some(end)) = (&target.time_value, info.end_time()?)
        && time.timestamp() < end.timestamp()
    {
        return Err(refuse(format!(
            "the target time {} is before the end of backup {id} ({}): choose an earlier backup or a later target",
            target::format_time(time),
            target::format_time(&end)
        )));
    }
    if let (Some(lsn), Some(end)) = (target.lsn_value, info.end_xlog())
        && let Ok(end) = end.parse::<barman_wal::Lsn>()
        && lsn < end
    {
        return Err(refuse(format!(
            "the target LSN {lsn} is before the end of backup {id} ({end}): choose an earlier backup"
        )));
    }
    Ok(version)
}

/// Where the data directory and the tablespaces go.
struct Placement {
    /// Tablespace name → the location it is restored to.
    locations: BTreeMap<String, String>,
    /// The destination's roots: DEST as `data`, a tablespace's location
    /// under its oid.
    roots: Roots,
    /// The `pg_tblspc` links of the relocated tablespaces → their targets.
    symlink_targets: BTreeMap<RelPath, String>,
}

/// Where the tablespaces go ([`Placement`]); a `--tablespace` the backup
/// does not have, or a relative location, is refused.
fn place_tablespaces(
    options: &RecoverOptions,
    id: &BackupId,
    tablespaces: &[Tablespace],
    warnings: &mut Vec<Warning>,
) -> Result<Placement> {
    let dest = &options.destination;
    let mut locations: BTreeMap<String, String> = BTreeMap::new();
    let mut roots: Roots = BTreeMap::from([("data".to_owned(), dest.clone())]);
    let mut symlink_targets = BTreeMap::new();
    for (name, _) in &options.tablespaces {
        if !tablespaces.iter().any(|t| &t.name == name) {
            let known: Vec<&str> = tablespaces.iter().map(|t| t.name.as_str()).collect();
            return Err(refuse(format!(
                "--tablespace {name}: backup {id} has no tablespace `{name}` (it has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    for t in tablespaces {
        let relocated = options
            .tablespaces
            .iter()
            .rev()
            .find(|(name, _)| name == &t.name)
            .map(|(_, path)| path.clone());
        let location = relocated
            .clone()
            .unwrap_or_else(|| PathBuf::from(&t.location));
        if !location.is_absolute() {
            return Err(refuse(format!(
                "--tablespace {}:{}: the location must be an absolute path",
                t.name,
                location.display()
            )));
        }
        if location.starts_with(dest) {
            warnings.push(Warning::TablespaceInsideDataDirectory {
                name: t.name.clone(),
                location: location.clone(),
            });
        }
        let location_text = location.display().to_string();
        if relocated.is_some() {
            symlink_targets.insert(
                RelPath::new(format!("data/pg_tblspc/{}", t.oid))?,
                location_text.clone(),
            );
        }
        roots.insert(t.oid.to_string(), location);
        locations.insert(t.name.clone(), location_text);
    }
    Ok(Placement {
        locations,
        roots,
        symlink_targets,
    })
}

/// The archived file of each WAL to stage, under the name it is staged
/// as; a WAL missing fails the recovery, naming it.
fn locate_wals(
    catalog: &Catalog,
    wal_names: &[String],
    partial: bool,
    codec: Option<&Codec>,
) -> Result<Vec<(String, PathBuf)>> {
    let layout = catalog.layout();
    let mut located = Vec::new();
    for name in wal_names {
        let file: WalFileName = name.parse()?;
        // A `.partial` is staged under its segment's name (the name
        // PostgreSQL asks restore_command for); the complete segment,
        // when it has arrived meanwhile, is preferred.
        let (staged_name, found) = match file {
            WalFileName::Partial(seg) | WalFileName::Segment(seg) if partial => (
                WalFileName::Segment(seg).to_string(),
                crate::archive::locate(layout, &WalFileName::Segment(seg), true, codec)?
                    .map(|l| l.path),
            ),
            _ => {
                let path = layout.wal_path(&file);
                (name.clone(), path.is_file().then_some(path))
            }
        };
        let Some(path) = found else {
            return Err(Error::WalNotFound {
                name: name.clone(),
                server: catalog.server_name().to_owned(),
            });
        };
        located.push((staged_name, path));
    }
    Ok(located)
}

/// The backup's files: its manifest, else a listing without checksums
/// (warned about); a backup that is not a plain copy is refused.
fn backup_manifest(
    catalog: &Catalog,
    id: &BackupId,
    backup_dir: &Path,
    tablespaces: &[Tablespace],
    plain: bool,
    warnings: &mut Vec<Warning>,
) -> Result<Manifest> {
    let manifest_path = backup_dir.join(MANIFEST_FILE);
    let manifest = if manifest_path.is_file() {
        Manifest::read(&manifest_path)?
    } else {
        warnings.push(Warning::NoManifest {
            backup_id: id.to_string(),
            path: manifest_path.clone(),
        });
        listing_manifest(backup_dir, tablespaces)?
    };
    if plain {
        refuse_unless_plain(catalog, id, &manifest)?;
    }
    Ok(manifest)
}

/// [`plain_format_obstacle`] as the refusal of the recovery.
fn refuse_unless_plain(catalog: &Catalog, id: &BackupId, manifest: &Manifest) -> Result<()> {
    match plain_format_obstacle(manifest) {
        None => Ok(()),
        Some(reason) => Err(Error::Catalog(barman_catalog::Error::BackupNotSupported {
            server: catalog.server_name().to_owned(),
            backup_id: id.to_string(),
            action: "restored",
            reason,
        })),
    }
}

/// Refuses a destination root that holds something (but the WAL staging
/// directory), before any directory is created.
fn check_empty(roots: &Roots) -> Result<()> {
    for (tree, root) in roots {
        let first = std::fs::read_dir(root)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(std::result::Result::ok);
        if let Some(entry) = first.filter(|_| tree != "wal") {
            return Err(Error::Copy(barman_copy::Error::NotEmpty {
                tree: tree.clone(),
                example: entry.path().display().to_string(),
            }));
        }
    }
    Ok(())
}

impl StagingDir {
    /// `barman_wal/` (or the staging directory) for a PITR or a standby,
    /// else the data directory's WAL directory.
    fn new(
        options: &RecoverOptions,
        pitr: bool,
        version: u32,
        wal_root: Option<&PathBuf>,
    ) -> Result<Self> {
        let dest = &options.destination;
        let wal_dir_name = if version >= 100_000 || version == 0 {
            "pg_wal"
        } else {
            "pg_xlog"
        };
        Ok(if pitr || options.standby_mode {
            match wal_root {
                Some(dir) => {
                    let text = dir.display().to_string();
                    let command = crate::shell::pg_command_word(&text);
                    Self {
                        dir: RelPath::new("wal")?,
                        text,
                        command,
                    }
                }
                None => Self {
                    dir: data("barman_wal")?,
                    text: dest.join("barman_wal").display().to_string(),
                    command: "barman_wal".to_owned(),
                },
            }
        } else {
            Self {
                dir: data(wal_dir_name)?,
                text: dest.join(wal_dir_name).display().to_string(),
                command: wal_dir_name.to_owned(),
            }
        })
    }
}

/// Whether `--remote-ssh-command` is given (not blank).
fn remote_given(options: &RecoverOptions) -> bool {
    options
        .remote_ssh_command
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
}

/// Phase 1: the base backup, copied into DEST (locally or through agent
/// sessions); returns the destination for the phases that follow.
fn copy_backup(
    server: &ServerConfig,
    options: &RecoverOptions,
    plan: &Plan<'_>,
    ctx: &mut RecoverContext<'_>,
) -> Result<(Box<dyn DestinationFactory>, barman_copy::RestoreReport)> {
    let (remote, roots, id) = (plan.remote, &plan.roots, &plan.id);
    let dest = &options.destination;
    let factory: Box<dyn DestinationFactory> = match remote {
        Some(ssh) => {
            let agent = options.agent_command.as_deref().unwrap_or("barman agent");
            let line = crate::shell::ssh_line(&barman_copy::remote::with_ssh_keepalive(ssh), agent);
            let spawner = Arc::clone(&ctx.spawner);
            Box::new(
                barman_copy::AgentFactory::new(
                    move || spawner.shell(&line),
                    roots.clone(),
                    options
                        .network_compression
                        .unwrap_or(server.network_compression),
                )
                .timeout(server.agent_timeout()),
            )
        }
        None => Box::new(LocalDestination::new(roots.clone())),
    };
    ctx.observer.event(&Event::RestoreStarting {
        server: server.name.clone(),
        id: id.clone(),
        ssh: remote.map(str::to_owned),
        destination: dest.clone(),
        tablespaces: plan
            .locations
            .iter()
            .map(|(name, location)| (name.clone(), location.clone()))
            .collect(),
    });

    let restore_options = RestoreOptions {
        jobs: plan.jobs,
        bandwidth_limit: options
            .bwlimit
            .or(server.bandwidth_limit)
            .filter(|&kb| kb > 0)
            .map(|kb| kb.saturating_mul(1024)),
        delta: plan.delta,
        symlink_targets: plan.symlink_targets.clone(),
    };
    let since = phase_started(ctx, Phase::RestoreBase);
    ctx.observer.event(&Event::CopyingBaseBackup);
    if let Some((compression, extension)) = plan.compressed.filter(|_| plan.chain.is_empty()) {
        let oids: Vec<u32> = plan.tablespaces.iter().map(|t| t.oid).collect();
        let archives = untar::archives(&plan.manifest, &plan.backup_dir, extension, &oids)?;
        let mut session = factory.open()?;
        let copied = untar::unpack(
            session.as_mut(),
            &plan.backup_dir,
            compression,
            &archives,
            &ProgressEvents::new(&mut *ctx.observer),
            ctx.cancel,
        )?;
        phase_finished(ctx, Phase::RestoreBase, since);
        return Ok((factory, copied));
    }
    let copied = if plan.chain.is_empty() {
        barman_copy::restore(
            &plan.manifest,
            &plan.backup_dir,
            factory.as_ref(),
            &restore_options,
            &ProgressEvents::new(&mut *ctx.observer),
            ctx.cancel,
        )?
    } else {
        // An incremental backup: each file reconstructed from the chain
        // while it streams into the destination, every source verified;
        // tar-format members unpacked into a staging directory first.
        let staged = chain::stage(
            &plan.chain,
            &plan.staging_root,
            &ProgressEvents::new(&mut *ctx.observer),
            ctx.cancel,
        )?;
        let combined = barman_copy::combine::plan(&staged.members())?;
        barman_copy::restore_combined(
            &combined,
            factory.as_ref(),
            &restore_options,
            &ProgressEvents::new(&mut *ctx.observer),
            ctx.cancel,
        )?
    };
    phase_finished(ctx, Phase::RestoreBase, since);
    Ok((factory, copied))
}

/// Phase 2: the files next to the copy: the `pg_tblspc` links and
/// `tablespace_map` with the final locations, `backup_manifest` renamed,
/// `.barman-recover.info`. Returns the changes made.
fn write_backup_files(
    session: &mut dyn Destination,
    options: &RecoverOptions,
    plan: &Plan<'_>,
) -> Result<Vec<Change>> {
    let (tablespaces, locations, id) = (&plan.tablespaces, &plan.locations, &plan.id);
    let mut changes = Vec::new();
    // pg_tblspc links to the final locations (a backup keeps the
    // tablespaces in tablespace_map and backup.info, not as links).
    for t in tablespaces {
        session.symlink(&data(&format!("pg_tblspc/{}", t.oid))?, &locations[&t.name])?;
    }
    // tablespace_map with the final locations.
    let map_path = data("tablespace_map")?;
    if plan.manifest.get(&map_path).is_some() && !tablespaces.is_empty() {
        let mut text = String::new();
        for t in tablespaces {
            let _ = writeln!(text, "{} {}", t.oid, locations[&t.name]);
        }
        put(session, &map_path, text.as_bytes())?;
        if !options.tablespaces.is_empty() {
            changes.push(Change::TablespaceMapRewritten);
        }
    }
    // backup_manifest → backup_manifest.<id>
    let pg_manifest = data("backup_manifest")?;
    if plan.compressed.is_none() && plan.manifest.get(&pg_manifest).is_some() {
        let bytes = read_backup_file(&plan.backup_dir, &pg_manifest)?;
        put(session, &data(&format!("backup_manifest.{id}"))?, &bytes)?;
        session.remove(&pg_manifest)?;
        changes.push(Change::ManifestRenamed {
            backup_id: id.to_string(),
        });
    }
    put(
        session,
        &data(RECOVER_INFO_FILE)?,
        plan.info.to_file_string().as_bytes(),
    )?;
    Ok(changes)
}

/// Phase 3: the WALs staged, decompressed (with `.done` status files in
/// the data directory's WAL directory), unless get-wal fetches them.
/// Returns where they went and how many.
fn stage_wals(
    session: &mut dyn Destination,
    options: &RecoverOptions,
    plan: &Plan<'_>,
    ctx: &mut RecoverContext<'_>,
) -> Result<(Option<String>, u64)> {
    if plan.get_wal {
        return Ok((None, 0));
    }
    let mut staged = 0_u64;
    let (dir, dir_text) = (&plan.staging.dir, &plan.staging.text);
    session.mkdir(dir, 0o700)?;
    let status = if plan.pitr || options.standby_mode {
        None
    } else {
        let status = dir.join("archive_status")?;
        session.mkdir(&status, 0o700)?;
        Some(status)
    };
    ctx.observer.event(&Event::CopyingWals {
        directory: dir_text.clone(),
    });
    for (name, path) in &plan.located {
        stage_wal(
            session,
            &dir.join(name)?,
            path,
            plan.codec.as_ref(),
            plan.segment_size,
        )?;
        if let Some(status) = &status {
            put(session, &status.join(&format!("{name}.done"))?, b"")?;
        }
        staged += 1;
    }
    Ok((Some(dir_text.clone()), staged))
}

/// Phase 4: DEST's configuration files: a `.origin` copy of each, its
/// text with `archive_command` neutralised (returned: written with the
/// recovery settings); a missing `pg_hba.conf`/`pg_ident.conf` is warned
/// about.
fn configuration_files(
    session: &mut dyn Destination,
    plan: &mut Plan<'_>,
    changes: &mut Vec<Change>,
) -> Result<BTreeMap<String, String>> {
    let (auto_conf, manifest, warnings) = (&plan.auto_conf, &plan.manifest, &mut plan.warnings);
    let mut conf_files = vec![
        "postgresql.conf".to_owned(),
        "postgresql.auto.conf".to_owned(),
    ];
    if !conf_files.contains(auto_conf) {
        conf_files.push(auto_conf.clone());
    }
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for file in &conf_files {
        let rel = data(file)?;
        if manifest.get(&rel).is_none() {
            continue;
        }
        let original =
            String::from_utf8_lossy(&read_backup_file(&plan.backup_dir, &rel)?).into_owned();
        put(
            session,
            &data(&format!("{file}.origin"))?,
            original.as_bytes(),
        )?;
        let mangled = conf::mangle(&original, file);
        changes.extend(mangled.changes);
        warnings.extend(mangled.warnings);
        texts.insert(file.clone(), mangled.text);
    }
    for missing in ["pg_hba.conf", "pg_ident.conf"] {
        if manifest.get(&data(missing)?).is_none() {
            warnings.push(Warning::ConfigFileMissing {
                file: missing.to_owned(),
            });
        }
    }
    Ok(texts)
}

/// The recovery configuration written.
#[derive(Default)]
struct Written {
    /// The `restore_command`.
    restore_command: Option<String>,
    /// The file the recovery settings went to.
    recovery_file: Option<String>,
    /// `recovery.signal` / `standby.signal`.
    signal_file: Option<String>,
}

/// Phase 5: the recovery settings, appended to the configuration file
/// with `recovery.signal`/`standby.signal` (`recovery.conf` before
/// PostgreSQL 12), and the configuration files `texts` written.
fn write_configuration(
    session: &mut dyn Destination,
    options: &RecoverOptions,
    plan: &Plan<'_>,
    ctx: &RecoverContext<'_>,
    mut texts: BTreeMap<String, String>,
    changes: &mut Vec<Change>,
) -> Result<Written> {
    let (id, version, auto_conf) = (&plan.id, plan.version, &plan.auto_conf);
    let mut written = Written::default();
    if let Some(RecoverySettings { command, settings }) = &plan.recovery {
        let mut block = format!(
            "\n# Recovery settings written by barman-rs recover on {} (backup {id})\n",
            target::format_time(&ctx.clock.now().to_zoned(ctx.local_tz.clone()))
        );
        for (k, v) in settings {
            let _ = writeln!(block, "{k} = {v}");
        }
        if version >= 120_000 || version == 0 {
            let text = texts.entry(auto_conf.clone()).or_default();
            text.push_str(&block);
            let signal = if options.standby_mode {
                "standby.signal"
            } else {
                "recovery.signal"
            };
            put(session, &data(signal)?, b"")?;
            written.signal_file = Some(signal.to_owned());
            written.recovery_file = Some(auto_conf.clone());
        } else {
            if options.standby_mode {
                block.push_str("standby_mode = 'on'\n");
            }
            put(session, &data("recovery.conf")?, block.as_bytes())?;
            written.recovery_file = Some("recovery.conf".to_owned());
        }
        changes.push(Change::RecoverySettingsWritten {
            file: written.recovery_file.clone().unwrap_or_default(),
            settings: settings.iter().map(|(k, _)| k.clone()).collect(),
        });
        if let Some(signal) = &written.signal_file {
            changes.push(Change::SignalFileCreated {
                file: signal.clone(),
            });
        }
        written.restore_command = Some(command.clone());
    }
    for (file, text) in &texts {
        put(session, &data(file)?, text.as_bytes())?;
    }
    Ok(written)
}

/// What the phases did.
struct Outcome {
    /// The copy of the base backup (its wire bytes with the last session's).
    copied: barman_copy::RestoreReport,
    /// WAL files staged.
    wals: u64,
    /// Where they were staged.
    wal_directory: Option<String>,
    /// The recovery configuration written.
    written: Written,
    /// What was changed in DEST's configuration.
    changes: Vec<Change>,
    /// When the recovery started.
    started: Instant,
}

/// Phase 6: what was done and what to review, told; the report.
fn finish(
    server: &ServerConfig,
    options: &RecoverOptions,
    plan: Plan<'_>,
    ctx: &mut RecoverContext<'_>,
    outcome: Outcome,
) -> RecoverReport {
    let Outcome {
        copied,
        wals,
        wal_directory,
        written,
        changes,
        started,
    } = outcome;
    let Written {
        restore_command,
        recovery_file,
        signal_file,
    } = written;
    let warnings = plan.warnings;
    ctx.observer.event(&Event::RestoreCompleted {
        restore_command: restore_command.clone(),
        changes: changes.clone(),
        warnings: warnings.clone(),
    });
    RecoverReport {
        backup_id: plan.id.to_string(),
        server: server.name.clone(),
        destination: options.destination.display().to_string(),
        remote_ssh_command: plan.remote.map(str::to_owned),
        recovery_target: plan.target,
        pitr: plan.pitr,
        target_timeline: plan.target_tli.get(),
        tablespaces: plan.locations,
        copied,
        wals,
        wal_directory,
        restore_command,
        recovery_configuration_file: recovery_file,
        signal_file,
        changes,
        warnings,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    }
}

/// `path` in the data directory's tree.
fn data(path: &str) -> barman_copy::Result<RelPath> {
    RelPath::new(format!("data/{path}"))
}

/// Reports `phase` of a recovery started.
fn phase_started(ctx: &mut RecoverContext<'_>, phase: Phase) -> std::time::Instant {
    ctx.observer.event(&Event::PhaseStarted {
        operation: Operation::Recovery,
        phase,
    });
    std::time::Instant::now()
}

/// Reports `phase` of a recovery finished.
fn phase_finished(ctx: &mut RecoverContext<'_>, phase: Phase, since: std::time::Instant) {
    ctx.observer.event(&Event::PhaseFinished {
        operation: Operation::Recovery,
        phase,
        elapsed: since.elapsed(),
    });
}

fn refuse(message: String) -> Error {
    Error::BackupRefused(message)
}

/// Targets a PostgreSQL version cannot honour.
fn check_version(target: &RecoveryTarget, version: u32) -> Result<()> {
    if version == 0 {
        return Ok(());
    }
    if target.lsn.is_some() && version < 100_000 {
        return Err(refuse("--target-lsn needs PostgreSQL 10 or later".into()));
    }
    if target.immediate && version < 90_400 {
        return Err(refuse(
            "--target-immediate needs PostgreSQL 9.4 or later".into(),
        ));
    }
    Ok(())
}

/// The backup for BACKUP_ID: `auto` picks the newest DONE backup that ends
/// before a time or LSN target (the latest DONE without one).
pub fn choose_backup(catalog: &Catalog, text: &str, target: &RecoveryTarget) -> Result<BackupInfo> {
    if text == "last-failed" {
        return Err(refuse(
            "`last-failed` cannot be recovered: a FAILED backup is incomplete".into(),
        ));
    }
    if text != "auto" {
        return resolve_backup(catalog, text);
    }
    if target.xid.is_some() || target.name.is_some() {
        return Err(refuse(
            "`auto` cannot choose a backup for --target-xid or --target-name (the catalog does not record them): give a backup id".into(),
        ));
    }
    let backups = catalog.backups()?;
    let mut candidates = backups
        .iter()
        .rev()
        .filter(|b| b.status().is_ok_and(|s| s == BackupStatus::Done));
    let found = if let Some(time) = &target.time_value {
        candidates.find(|b| {
            b.end_time()
                .ok()
                .flatten()
                .is_some_and(|end| end.timestamp() <= time.timestamp())
        })
    } else if let Some(lsn) = target.lsn_value {
        candidates.find(|b| {
            b.end_xlog()
                .and_then(|e| e.parse::<barman_wal::Lsn>().ok())
                .is_some_and(|end| end <= lsn)
        })
    } else {
        candidates.next()
    };
    found.cloned().ok_or_else(|| {
        refuse(format!(
            "no DONE backup of server `{}` can reach the requested target",
            catalog.server_name()
        ))
    })
}

/// The WAL names to stage and the target timeline.
fn plan_wals(
    catalog: &Catalog,
    info: &BackupInfo,
    target: &RecoveryTarget,
    version: u32,
    partial: bool,
    segment_size: WalSegmentSize,
) -> Result<(Vec<String>, TimelineId)> {
    let id = info.backup_id();
    let begin = info
        .begin_wal()
        .ok_or_else(|| refuse(format!("backup {id} has no begin_wal")))?
        .parse()?;
    let end = info
        .end_wal()
        .ok_or_else(|| refuse(format!("backup {id} has no end_wal")))?
        .parse()?;
    let entries = catalog.xlogdb().read()?;
    let encrypted: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.encryption.is_some())
        .map(|e| e.name.as_str())
        .collect();
    let mut archived: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let layout = catalog.layout();
    if partial {
        archived.extend(streamed_wals(layout, segment_size)?);
    }
    let mut histories = BTreeMap::new();
    let mut newest = TimelineId::ONE;
    for name in &archived {
        let Ok(file) = name.parse::<WalFileName>() else {
            continue;
        };
        if file.timeline().get() > newest.get() {
            newest = file.timeline();
        }
        if let WalFileName::History(tli) = file
            && let Some(history) = crate::archive::read_history(layout, tli)?
        {
            histories.insert(tli, history);
        }
    }
    let backup_tli = barman_wal::SegmentName::timeline(&begin);
    let target_tli = match target.tli {
        Some(TargetTli::Number(n)) => TimelineId::new(n)?,
        Some(TargetTli::Latest) => newest,
        None if version >= 120_000 || version == 0 => newest,
        Some(TargetTli::Current) | None => backup_tli,
    };
    if target_tli.get() < backup_tli.get() {
        return Err(refuse(format!(
            "target timeline {} is older than backup {id}'s timeline {}",
            target_tli.get(),
            backup_tli.get()
        )));
    }
    let stop = if target.immediate {
        WalStop::Immediate
    } else if let Some(lsn) = target.lsn_value {
        WalStop::Lsn(lsn)
    } else {
        WalStop::End
    };
    let needs = WalNeeds {
        begin_wal: begin,
        end_wal: end,
        target_tli,
        stop,
        partial,
        segment_size,
        archived: &archived,
    };
    let names = required_wals(&needs, &histories).map_err(|m| {
        Error::BackupRefused(format!(
            "WAL {} is missing from the archive of server `{}` ({}): backup {id} cannot be recovered to this target; nothing was written",
            m.name,
            catalog.server_name(),
            m.reason
        ))
    })?;
    // Served as they are, they would end PostgreSQL's recovery early.
    if let Some(name) = names.iter().find(|n| encrypted.contains(n.as_str())) {
        return Err(refuse(format!(
            "WAL {name} of server `{}` is encrypted (xlog.db: encryption = gpg) and barman-rs cannot decrypt WAL files yet (not implemented): backup {id} cannot be recovered to this target; nothing was written",
            catalog.server_name()
        )));
    }
    Ok((names, target_tli))
}

/// The WAL receive-wal wrote that `archive-wal` has not filed yet: the
/// complete segments in `streaming/` and its full-size `.partial` files
/// (an empty `.partial` is the marker `receive-wal --reset` leaves).
fn streamed_wals(
    layout: &crate::ServerLayout,
    segment_size: WalSegmentSize,
) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (name, path, is_dir) in crate::archive::rebuild::list(layout.streaming_directory())? {
        let Ok(file @ (WalFileName::Segment(_) | WalFileName::Partial(_))) =
            name.parse::<WalFileName>()
        else {
            continue;
        };
        let whole = std::fs::metadata(&path).is_ok_and(|m| m.len() == segment_size.bytes());
        if !is_dir && whole {
            names.push(file.to_string());
        }
    }
    Ok(names)
}

/// A manifest without checksums from a listing of the backup directory
/// (a backup made by Barman).
fn listing_manifest(
    backup_dir: &Path,
    tablespaces: &[barman_catalog::Tablespace],
) -> Result<Manifest> {
    let mut manifest = Manifest::default();
    let mut trees = vec!["data".to_owned()];
    trees.extend(tablespaces.iter().map(|t| t.oid.to_string()));
    for tree in trees {
        let entries: Vec<Entry> =
            barman_copy::listing::list_tree(&backup_dir.join(&tree), &tree, &Exclusions::none())?;
        for entry in &entries {
            manifest.insert(entry.into());
        }
    }
    Ok(manifest)
}

/// What the files of a backup say against restoring it as a plain copy
/// (its backup.info may not tell): `INCREMENTAL.*` files (PostgreSQL 17
/// incremental), or no `global/pg_control` (a tar-format backup, ...).
fn plain_format_obstacle(manifest: &Manifest) -> Option<String> {
    if let Some(e) = manifest
        .iter()
        .find(|e| e.path.file_name().starts_with("INCREMENTAL."))
    {
        return Some(format!(
            "it holds PostgreSQL incremental files (`{}`): restoring it needs its chain combined",
            e.path.as_str()
        ));
    }
    let control = RelPath::new("data/global/pg_control").ok()?;
    if manifest.get(&control).is_none() {
        return Some(
            "its data directory has no global/pg_control: it is not a plain-format backup"
                .to_owned(),
        );
    }
    None
}

/// Reads a (small) file of the backup.
fn read_backup_file(backup_dir: &Path, path: &RelPath) -> Result<Vec<u8>> {
    let local = path.under(backup_dir);
    std::fs::read(&local).map_err(|e| Error::io("cannot read", &local, e))
}

/// Writes a small file through the destination.
fn put(session: &mut dyn Destination, path: &RelPath, bytes: &[u8]) -> Result<()> {
    let mut data = bytes;
    session.write_file(
        path,
        barman_copy::FileMeta {
            size: bytes.len() as u64,
            mode: FILE_MODE,
            mtime: now_mtime(),
        },
        &mut data,
    )?;
    Ok(())
}

fn now_mtime() -> Mtime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Mtime {
        secs: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        nanos: now.subsec_nanos(),
    }
}

/// Stages one archived WAL file, decompressed, at `dest`.
fn stage_wal(
    session: &mut dyn Destination,
    dest: &RelPath,
    path: &Path,
    codec: Option<&Codec>,
    segment_size: WalSegmentSize,
) -> Result<()> {
    let compression: Option<Compression> = detect_servable(path, codec)?;
    let mtime = std::fs::metadata(path)
        .map(|m| Mtime::of(&m))
        .map_err(|e| Error::io("cannot read", path, e))?;
    let mut reader = open_plain(path, compression, codec)?;
    let size = if compression.is_none() {
        std::fs::metadata(path)
            .map_err(|e| Error::io("cannot read", path, e))?
            .len()
    } else if dest.file_name().ends_with(".history") {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("cannot read", path, e))?;
        session.write_file(
            dest,
            barman_copy::FileMeta {
                size: bytes.len() as u64,
                mode: FILE_MODE,
                mtime,
            },
            &mut bytes.as_slice(),
        )?;
        return Ok(());
    } else {
        segment_size.bytes()
    };
    session.write_file(
        dest,
        barman_copy::FileMeta {
            size,
            mode: FILE_MODE,
            mtime,
        },
        &mut reader,
    )?;
    Ok(())
}

/// The get-wal `restore_command`: `barman-wal-restore [-P] -U USER HOST
/// SERVER %f %p [-p JOBS]` on a remote host, else `<barman -c FILE> get-wal
/// [-P] SERVER %f > %p`. Every value is shell-quoted and its `%` doubled
/// (PostgreSQL expands `%` before the shell runs the command).
fn get_wal_command(
    global: &GlobalConfig,
    server: &ServerConfig,
    options: &RecoverOptions,
    remote: bool,
    partial: bool,
    jobs: usize,
) -> String {
    use crate::shell::{escape_percent, pg_command_word};
    let partial = if partial { "-P " } else { "" };
    let name = pg_command_word(&server.name);
    if remote {
        let mut c = format!(
            "barman-wal-restore {partial}-U {} {} {name} %f %p",
            pg_command_word(&global.barman_user),
            pg_command_word(&hostname()),
        );
        if jobs > 1 {
            let _ = write!(c, " -p {jobs}");
        }
        c
    } else {
        let barman = escape_percent(options.barman_command.as_deref().unwrap_or("barman"));
        format!("{barman} get-wal {partial}{name} %f > %p")
    }
}

/// This host's name, for `barman-wal-restore` on the recovered host.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_wals_are_the_whole_files_of_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::ServerLayout::new(dir.path().join("pg"));
        let size = WalSegmentSize::new(1 << 20).unwrap();
        assert!(streamed_wals(&layout, size).unwrap().is_empty());
        layout.ensure().unwrap();
        let streaming = layout.streaming_directory();
        let whole = vec![0u8; 1 << 20];
        for (name, bytes) in [
            ("000000010000000000000005", &whole[..]),
            ("000000010000000000000006.partial", &whole[..]),
            // --reset's empty marker, a truncated leftover, not WAL names.
            ("000000010000000000000007.partial", &[][..]),
            ("000000010000000000000008.partial", &whole[..4096]),
            ("00000002.history", b"1\t0/6000000\tno recovery target\n"),
            ("garbage", &whole[..]),
            ("000000010000000000000009.tmp", &whole[..]),
        ] {
            std::fs::write(streaming.join(name), bytes).unwrap();
        }
        let mut got = streamed_wals(&layout, size).unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                "000000010000000000000005",
                "000000010000000000000006.partial"
            ]
        );
    }

    #[test]
    fn files_of_a_backup_that_is_not_a_plain_copy_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("global")).unwrap();
        std::fs::create_dir_all(data.join("base/5")).unwrap();
        std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
        let listed = || listing_manifest(dir.path(), &[]).unwrap();
        // Barman's tar format: base.tar.gz, no pg_control.
        std::fs::write(data.join("base.tar.gz"), b"\x1f\x8b").unwrap();
        let why = plain_format_obstacle(&listed()).unwrap();
        assert!(why.contains("global/pg_control"), "{why}");
        std::fs::write(data.join("global/pg_control"), [0u8; 64]).unwrap();
        assert_eq!(plain_format_obstacle(&listed()), None);
        // PostgreSQL 17's incremental files.
        std::fs::write(data.join("base/5/INCREMENTAL.16384"), b"x").unwrap();
        let why = plain_format_obstacle(&listed()).unwrap();
        assert!(why.contains("data/base/5/INCREMENTAL.16384"), "{why}");
    }
}
