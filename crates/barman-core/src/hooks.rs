//! Hook scripts around the operations (BARMAN-BEHAVIOUR.md §7): the
//! scripts of one server ([`ServerHooks`], made by a [`HookSetup`] from its
//! configuration) and the `BARMAN_*` variables of each event, filled as
//! Barman fills them.
//!
//! The operations take a [`ServerHooks`] and call [`ServerHooks::pre`] and
//! [`ServerHooks::post`] where Barman runs the hooks:
//!
//! | event | pre | post | 63 from the pre retry hook |
//! |---|---|---|---|
//! | `backup` | backup.info created (EMPTY) | after the backup (and `--wait`), any outcome | the backup is FAILED; post hooks still run |
//! | `delete` | `delete_this` marker written | the backup is gone | nothing is removed, the marker goes again |
//! | `archive` | before each file moves into `wals/` | after it (also when refused) | the run stops, the file stays where it was |
//! | `wal_delete` | before each WAL file is unlinked | after it | that file and the rest stay |
//! | `recovery` | nothing written to DEST yet | after the recovery, success or failure | nothing is written |
//!
//! Nothing runs for an event without scripts, and its variables (which may
//! read the catalog) are not even computed.

use barman_hooks::{
    AbortReason, BackupVars, HookAbort, HookEnv, HookEvent, HookKind, HookPhase, HookPoint, Hooks,
    RecoveryVars, WalVars,
};

use crate::archive::{ArchiveObserver, Arriving, Landed, StopArchiving};
use crate::{Error, Result};
use barman_catalog::{BackupId, BackupInfo, BackupStatus, ServerLayout};
use barman_config::ServerConfig;

/// What every server's hooks share: the runner settings (runner, sleeper,
/// retry pacing, output limit, timeout, cancel flag), `BARMAN_VERSION` and
/// `BARMAN_CONFIGURATION`. [`server`](Self::server) adds a server's scripts.
#[derive(Debug, Clone)]
pub struct HookSetup {
    base: Hooks,
    version: String,
    configuration: String,
}

impl HookSetup {
    /// Hooks run by barman `version` with configuration file
    /// `configuration`, with barman-hooks' defaults (`/bin/sh -c`, Barman's
    /// 3 s / 60 s pacing, no cancel flag).
    pub fn new(version: impl Into<String>, configuration: impl Into<String>) -> Self {
        Self {
            base: Hooks::new(),
            version: version.into(),
            configuration: configuration.into(),
        }
    }

    /// The runner settings every server's hooks start from; its scripts are
    /// replaced by each server's.
    #[must_use]
    pub fn base(mut self, base: Hooks) -> Self {
        self.base = base;
        self
    }

    /// The hooks of `server`: its 20 scripts (the global ones already merged
    /// in by the configuration) and its `path_prefix`.
    pub fn server(&self, server: &ServerConfig) -> Result<ServerHooks> {
        let mut hooks = self.base.clone();
        for point in HookPoint::all() {
            hooks = hooks.script(point, "");
        }
        for (key, script) in &server.hook_scripts {
            let point: HookPoint = key.parse().map_err(Error::Hooks)?;
            hooks = hooks.script(point, script.clone());
        }
        if let Some(prefix) = &server.path_prefix {
            hooks = hooks.path_prefix(prefix.clone());
        }
        Ok(ServerHooks {
            hooks,
            server: server.name.clone(),
            version: self.version.clone(),
            configuration: self.configuration.clone(),
        })
    }
}

/// The hook scripts of one server, run around its operations.
#[derive(Debug, Clone)]
pub struct ServerHooks {
    hooks: Hooks,
    server: String,
    version: String,
    configuration: String,
}

impl Default for ServerHooks {
    fn default() -> Self {
        Self::none()
    }
}

impl ServerHooks {
    /// No scripts at all: every hook point is a no-op.
    pub fn none() -> Self {
        Self::new(Hooks::new(), "", "", "")
    }

    /// `hooks` for `server`, with the common variables `BARMAN_VERSION` and
    /// `BARMAN_CONFIGURATION`.
    pub fn new(
        hooks: Hooks,
        server: impl Into<String>,
        version: impl Into<String>,
        configuration: impl Into<String>,
    ) -> Self {
        Self {
            hooks,
            server: server.into(),
            version: version.into(),
            configuration: configuration.into(),
        }
    }

    /// The scripts and runner settings.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Whether a script (standard or retry) is configured for `event` in `phase`.
    pub fn runs(&self, event: HookEvent, phase: HookPhase) -> bool {
        [HookKind::Standard, HookKind::Retry]
            .into_iter()
            .any(|kind| {
                self.hooks
                    .script_for(HookPoint::new(event, phase, kind))
                    .is_some()
            })
    }

    /// The pre hooks of `event` (standard, then retry), with the variables
    /// `vars` makes (called only when a pre script is configured). `Err`
    /// when the retry hook exited 63 or the cancel flag stopped it: the
    /// operation must not run.
    pub fn pre(
        &self,
        event: HookEvent,
        vars: impl FnOnce() -> EventVars,
    ) -> std::result::Result<(), HookAbort> {
        if !self.runs(event, HookPhase::Pre) {
            return Ok(());
        }
        let vars = vars();
        self.hooks.pre(event, |point| self.env(point, &vars))
    }

    /// The post hooks of `event` (retry, then standard; 63 is logged and
    /// ignored), with the variables `vars` makes (called only when a post
    /// script is configured).
    pub fn post(&self, event: HookEvent, vars: impl FnOnce() -> EventVars) {
        if !self.runs(event, HookPhase::Post) {
            return;
        }
        let vars = vars();
        self.hooks.post(event, |point| self.env(point, &vars));
    }

    /// An [`ArchiveObserver`] running these archive hooks around each WAL
    /// file of an archive-wal run.
    pub fn archive_observer(&self) -> ArchiveHooks<'_> {
        ArchiveHooks { hooks: self }
    }

    fn env(&self, point: HookPoint, vars: &EventVars) -> HookEnv {
        let mut env = HookEnv::new(point, &self.version, &self.server, &self.configuration);
        if let Some(error) = &vars.error {
            env = env.error(error.clone());
        }
        if let Some(backup) = &vars.backup {
            env = env.backup(backup.clone());
        }
        if let Some(recovery) = &vars.recovery {
            env = env.recovery(recovery.clone());
        }
        if let Some(wal) = &vars.wal {
            env = env.wal(wal.clone());
        }
        env
    }
}

/// Runs a server's archive hooks around each file of an archive-wal run:
/// the pre hooks see the file where it arrived, the post hooks where it
/// went, with `BARMAN_ERROR` set when it was not archived; 63 from the pre
/// retry hook stops the run with the file left in place.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveHooks<'a> {
    hooks: &'a ServerHooks,
}

impl ArchiveObserver for ArchiveHooks<'_> {
    fn before(&mut self, wal: &Arriving<'_>) -> std::result::Result<(), StopArchiving> {
        self.hooks
            .pre(HookEvent::Archive, || {
                let path = wal.path.display().to_string();
                let vars = WalVars::new(wal.name, path, wal.size, wal.mtime);
                EventVars::wal(match wal.compression {
                    Some(c) => vars.compression(c.name()),
                    None => vars,
                })
            })
            .map_err(|abort| StopArchiving {
                reason: abort.to_string(),
                interrupted: abort.reason == AbortReason::Interrupted,
            })
    }

    fn after(&mut self, wal: &Arriving<'_>, landed: &Landed) {
        self.hooks.post(HookEvent::Archive, || {
            let path = landed.path.display().to_string();
            let vars = WalVars::new(wal.name, path, landed.size, wal.mtime);
            EventVars::wal(match &landed.compression {
                Some(c) => vars.compression(c.clone()),
                None => vars,
            })
            .with_error(landed.error.clone())
        });
    }
}

/// The event variables of a hook (everything but the common ones).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EventVars {
    /// Backup, delete and recovery hooks.
    pub backup: Option<BackupVars>,
    /// Recovery hooks.
    pub recovery: Option<RecoveryVars>,
    /// Archive and WAL-delete hooks.
    pub wal: Option<WalVars>,
    /// `BARMAN_ERROR` of recovery and WAL hooks (backup and delete hooks
    /// report the backup's own `error`, in [`BackupVars`]).
    pub error: Option<String>,
}

impl EventVars {
    /// The variables of a backup or delete hook.
    pub fn backup(vars: BackupVars) -> Self {
        Self {
            backup: Some(vars),
            ..Self::default()
        }
    }

    /// The variables of a recovery hook.
    pub fn recovery(backup: BackupVars, recovery: RecoveryVars) -> Self {
        Self {
            backup: Some(backup),
            recovery: Some(recovery),
            ..Self::default()
        }
    }

    /// The variables of an archive or WAL-delete hook.
    pub fn wal(vars: WalVars) -> Self {
        Self {
            wal: Some(vars),
            ..Self::default()
        }
    }

    /// Sets `BARMAN_ERROR` (recovery and WAL hooks).
    #[must_use]
    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

/// The backup variables of `info` as Barman fills them: its directory, its
/// backup.info in `meta/`, its status and error, and as previous / next the
/// nearest older / newer backup among `backups` that is WAITING_FOR_WALS or
/// DONE (Barman's `get_previous_backup` / `get_next_backup`).
pub fn backup_vars<'a>(
    layout: &ServerLayout,
    backups: impl IntoIterator<Item = &'a BackupInfo>,
    info: &BackupInfo,
) -> BackupVars {
    let id = info.backup_id();
    let mut previous: Option<&BackupId> = None;
    let mut next: Option<&BackupId> = None;
    for other in backups {
        let other_id = other.backup_id();
        if !other.status().is_ok_and(BackupStatus::is_copy_done) {
            continue;
        }
        if other_id < id && previous.is_none_or(|p| other_id > p) {
            previous = Some(other_id);
        }
        if other_id > id && next.is_none_or(|n| other_id < n) {
            next = Some(other_id);
        }
    }
    let status = info
        .status()
        .map_or_else(|_| String::new(), |s| s.as_str().to_owned());
    let mut vars = BackupVars::new(
        id.as_str(),
        layout.backup_dir(id).display().to_string(),
        layout.backup_info_path(id).display().to_string(),
        status,
    );
    if let Some(p) = previous {
        vars = vars.previous_id(p.as_str());
    }
    if let Some(n) = next {
        vars = vars.next_id(n.as_str());
    }
    if let Some(error) = info.error() {
        vars = vars.error(error);
    }
    vars
}

/// [`backup_vars`] over the server's catalog as it is on disk now (when it
/// cannot be read, previous and next stay empty, as in Barman).
pub fn backup_vars_now(server: &ServerConfig, info: &BackupInfo) -> BackupVars {
    let catalog = server.catalog();
    let backups = catalog.backups().unwrap_or_else(|e| {
        tracing::warn!(
            "server {}: cannot read the catalog for the hook variables: {e}",
            server.name
        );
        Vec::new()
    });
    backup_vars(catalog.layout(), &backups, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, status: BackupStatus) -> BackupInfo {
        let mut info = BackupInfo::new("pg", id.parse().unwrap());
        info.set_status(status);
        info
    }

    #[test]
    fn previous_and_next_skip_backups_that_are_not_copy_done() {
        let layout = ServerLayout::new("/b/pg");
        let backups = [
            info("20260101T000000", BackupStatus::Done),
            info("20260102T000000", BackupStatus::WaitingForWals),
            info("20260103T000000", BackupStatus::Failed),
            info("20260104T000000", BackupStatus::Empty),
            info("20260105T000000", BackupStatus::Failed),
            info("20260106T000000", BackupStatus::Done),
        ];
        let vars = backup_vars(&layout, &backups, &backups[3]);
        assert_eq!(vars.previous_id.as_deref(), Some("20260102T000000"));
        assert_eq!(vars.next_id.as_deref(), Some("20260106T000000"));
        assert_eq!(vars.status, "EMPTY");
        assert_eq!(vars.backup_dir, "/b/pg/base/20260104T000000");
        assert_eq!(
            vars.backup_info_path,
            "/b/pg/meta/20260104T000000-backup.info"
        );
        let first = backup_vars(&layout, &backups, &backups[0]);
        assert_eq!(first.previous_id, None);
        assert_eq!(first.next_id.as_deref(), Some("20260102T000000"));
        // A backup no longer in the list (deleted) still gets its neighbours.
        let gone = backup_vars(&layout, &backups[..2], &backups[5]);
        assert_eq!(gone.previous_id.as_deref(), Some("20260102T000000"));
        assert_eq!(gone.next_id, None);
    }

    #[test]
    fn setup_takes_the_server_scripts_and_nothing_else() {
        use HookEvent::{Archive, Backup, Delete};
        use HookKind::{Retry, Standard};
        use HookPhase::{Post, Pre};
        let text = "[barman]\nbarman_home = /b\npre_backup_script = echo global\npost_archive_script = echo global\npath_prefix = /opt/hooks\n\n[pg]\nconninfo = host=pg\npost_archive_script = echo mine\n";
        let config =
            barman_config::Config::parse_str(text, std::path::Path::new("/etc/barman.conf"))
                .unwrap();
        let server = config.server("pg").unwrap();
        let base = Hooks::new().script(
            HookPoint::new(HookEvent::Delete, HookPhase::Pre, HookKind::Standard),
            "echo base",
        );
        let hooks = HookSetup::new("1.0", "/etc/barman.conf")
            .base(base)
            .server(server)
            .unwrap();
        let script = |e, p, k| hooks.hooks().script_for(HookPoint::new(e, p, k));
        assert_eq!(script(Backup, Pre, Standard), Some("echo global"));
        assert_eq!(script(Archive, Post, Standard), Some("echo mine"));
        assert_eq!(script(Delete, Pre, Standard), None);
        assert_eq!(script(Backup, Pre, Retry), None);
        assert!(hooks.runs(Backup, Pre));
        assert!(!hooks.runs(Backup, Post));
        assert!(!ServerHooks::none().runs(Backup, Pre));
    }
}
