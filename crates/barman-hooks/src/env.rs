//! [`HookEnv`]: the `BARMAN_*` environment a hook script runs with.

mod python;

use std::collections::BTreeMap;

pub use python::JsonScalar;

use crate::error::{Error, Result};
use crate::event::{HookEvent, HookKind, HookPoint};

/// Variables of backup, delete and recovery hooks (from the backup concerned).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupVars {
    /// `BARMAN_BACKUP_ID`.
    pub backup_id: String,
    /// `BARMAN_BACKUP_DIR`: the backup's base directory.
    pub backup_dir: String,
    /// `BARMAN_BACKUP_INFO_PATH`: the backup's `backup.info` file.
    pub backup_info_path: String,
    /// `BARMAN_PREVIOUS_ID`: the previous backup, empty if none.
    pub previous_id: Option<String>,
    /// `BARMAN_NEXT_ID`: the next backup, empty if none.
    pub next_id: Option<String>,
    /// `BARMAN_STATUS`: the backup's status when the hook runs (`EMPTY`, `DONE`, ...).
    pub status: String,
    /// The backup's `error` field: `BARMAN_ERROR` for backup and delete hooks.
    pub error: Option<String>,
}

impl BackupVars {
    /// The variables of backup `backup_id`, with no neighbours and no error.
    pub fn new(
        backup_id: impl Into<String>,
        backup_dir: impl Into<String>,
        backup_info_path: impl Into<String>,
        status: impl Into<String>,
    ) -> Self {
        Self {
            backup_id: backup_id.into(),
            backup_dir: backup_dir.into(),
            backup_info_path: backup_info_path.into(),
            previous_id: None,
            next_id: None,
            status: status.into(),
            error: None,
        }
    }

    /// Sets `BARMAN_PREVIOUS_ID`.
    #[must_use]
    pub fn previous_id(mut self, id: impl Into<String>) -> Self {
        self.previous_id = Some(id.into());
        self
    }

    /// Sets `BARMAN_NEXT_ID`.
    #[must_use]
    pub fn next_id(mut self, id: impl Into<String>) -> Self {
        self.next_id = Some(id.into());
        self
    }

    /// Sets the backup's error.
    #[must_use]
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// Variables of recovery hooks (added to the [`BackupVars`] of the backup recovered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryVars {
    /// `BARMAN_DESTINATION_DIRECTORY`.
    pub destination_directory: String,
    /// Tablespace relocations, name → location: `BARMAN_TABLESPACES` as JSON,
    /// empty when there are none.
    pub tablespaces: BTreeMap<String, String>,
    /// `BARMAN_REMOTE_COMMAND`: the `--remote-ssh-command`, empty if local.
    pub remote_command: Option<String>,
    /// Recovery target options (`target_time`, `target_tli`, ...):
    /// `BARMAN_RECOVER_OPTIONS` as JSON of the non-empty ones, empty if none.
    pub recover_options: BTreeMap<String, JsonScalar>,
}

impl RecoveryVars {
    /// Recovery into `destination_directory`, locally, with no relocation or target.
    pub fn new(destination_directory: impl Into<String>) -> Self {
        Self {
            destination_directory: destination_directory.into(),
            ..Self::default()
        }
    }

    /// Relocates tablespace `name` to `location`.
    #[must_use]
    pub fn tablespace(mut self, name: impl Into<String>, location: impl Into<String>) -> Self {
        self.tablespaces.insert(name.into(), location.into());
        self
    }

    /// Sets `BARMAN_REMOTE_COMMAND`.
    #[must_use]
    pub fn remote_command(mut self, command: impl Into<String>) -> Self {
        self.remote_command = Some(command.into());
        self
    }

    /// Adds a recovery option (dropped from the JSON if empty, false or 0, as Barman does).
    #[must_use]
    pub fn option(mut self, name: impl Into<String>, value: JsonScalar) -> Self {
        self.recover_options.insert(name.into(), value);
        self
    }

    fn tablespaces_json(&self) -> String {
        if self.tablespaces.is_empty() {
            return String::new();
        }
        let map = self
            .tablespaces
            .iter()
            .map(|(k, v)| (k.clone(), JsonScalar::Text(v.clone())))
            .collect();
        python::json_object(&map)
    }

    fn recover_options_json(&self) -> String {
        let map: BTreeMap<String, JsonScalar> = self
            .recover_options
            .iter()
            .filter(|(_, v)| v.is_truthy())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if map.is_empty() {
            String::new()
        } else {
            python::json_object(&map)
        }
    }
}

/// Variables of WAL hooks (`archive`, `wal_delete`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WalVars {
    /// `BARMAN_SEGMENT`: the WAL file name.
    pub segment: String,
    /// `BARMAN_FILE`: for pre-archive hooks the source in `incoming/` or
    /// `streaming/`, otherwise the file's path in the archive.
    pub file: String,
    /// `BARMAN_SIZE`: size in bytes.
    pub size: u64,
    /// `BARMAN_TIMESTAMP`: modification time, seconds since the epoch, printed
    /// as Python prints a float (`1795320937.0`).
    pub timestamp: f64,
    /// `BARMAN_COMPRESSION`: the compression name, empty if none.
    pub compression: Option<String>,
}

impl WalVars {
    /// The variables of WAL file `segment` at `file`.
    pub fn new(
        segment: impl Into<String>,
        file: impl Into<String>,
        size: u64,
        timestamp: f64,
    ) -> Self {
        Self {
            segment: segment.into(),
            file: file.into(),
            size,
            timestamp,
            compression: None,
        }
    }

    /// Sets `BARMAN_COMPRESSION`.
    #[must_use]
    pub fn compression(mut self, name: impl Into<String>) -> Self {
        self.compression = Some(name.into());
        self
    }
}

/// Builder of a hook script's `BARMAN_*` environment.
///
/// Every hook gets `BARMAN_VERSION`, `BARMAN_SERVER`, `BARMAN_CONFIGURATION`,
/// `BARMAN_HOOK` (`backup_retry_script`), `BARMAN_RETRY` (`1`/`0`),
/// `BARMAN_PHASE` (`pre`/`post`) and `BARMAN_ERROR`. Backup and delete hooks
/// add [`BackupVars`]; recovery hooks add [`BackupVars`] and [`RecoveryVars`];
/// archive and WAL-delete hooks add [`WalVars`]. [`vars`](Self::vars) checks
/// that exactly the sets the event needs are present.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEnv {
    point: HookPoint,
    version: String,
    server: String,
    configuration: String,
    error: Option<String>,
    backup: Option<BackupVars>,
    recovery: Option<RecoveryVars>,
    wal: Option<WalVars>,
}

impl HookEnv {
    /// The environment of hook `point` for `server`, run by barman `version`
    /// with configuration file `configuration`.
    pub fn new(
        point: HookPoint,
        version: impl Into<String>,
        server: impl Into<String>,
        configuration: impl Into<String>,
    ) -> Self {
        Self {
            point,
            version: version.into(),
            server: server.into(),
            configuration: configuration.into(),
            error: None,
            backup: None,
            recovery: None,
            wal: None,
        }
    }

    /// The operation's error: `BARMAN_ERROR` for recovery and WAL hooks (backup
    /// and delete hooks report the backup's own error from [`BackupVars`]).
    #[must_use]
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Adds the backup variables.
    #[must_use]
    pub fn backup(mut self, vars: BackupVars) -> Self {
        self.backup = Some(vars);
        self
    }

    /// Adds the recovery variables.
    #[must_use]
    pub fn recovery(mut self, vars: RecoveryVars) -> Self {
        self.recovery = Some(vars);
        self
    }

    /// Adds the WAL variables.
    #[must_use]
    pub fn wal(mut self, vars: WalVars) -> Self {
        self.wal = Some(vars);
        self
    }

    /// The hook point this environment is for.
    pub fn point(&self) -> HookPoint {
        self.point
    }

    /// The variables, in a fixed order: the common ones, then the backup,
    /// recovery and WAL sets.
    pub fn vars(&self) -> Result<Vec<(String, String)>> {
        self.check_sets()?;
        let event = self.point.event;
        let error = match (event, &self.backup) {
            (HookEvent::Backup | HookEvent::Delete, Some(backup)) => backup.error.clone(),
            _ => self.error.clone(),
        };
        let retry = match self.point.kind {
            HookKind::Retry => "1",
            HookKind::Standard => "0",
        };
        let mut vars: Vec<(&'static str, String)> = vec![
            ("BARMAN_VERSION", self.version.clone()),
            ("BARMAN_SERVER", self.server.clone()),
            ("BARMAN_CONFIGURATION", self.configuration.clone()),
            ("BARMAN_HOOK", self.point.hook_name()),
            ("BARMAN_RETRY", retry.to_owned()),
            ("BARMAN_PHASE", self.point.phase.name().to_owned()),
            ("BARMAN_ERROR", error.unwrap_or_default()),
        ];
        if let Some(b) = &self.backup {
            vars.extend([
                ("BARMAN_BACKUP_DIR", b.backup_dir.clone()),
                ("BARMAN_BACKUP_INFO_PATH", b.backup_info_path.clone()),
                ("BARMAN_BACKUP_ID", b.backup_id.clone()),
                (
                    "BARMAN_PREVIOUS_ID",
                    b.previous_id.clone().unwrap_or_default(),
                ),
                ("BARMAN_NEXT_ID", b.next_id.clone().unwrap_or_default()),
                ("BARMAN_STATUS", b.status.clone()),
            ]);
        }
        if let Some(r) = &self.recovery {
            vars.extend([
                (
                    "BARMAN_DESTINATION_DIRECTORY",
                    r.destination_directory.clone(),
                ),
                ("BARMAN_TABLESPACES", r.tablespaces_json()),
                (
                    "BARMAN_REMOTE_COMMAND",
                    r.remote_command.clone().unwrap_or_default(),
                ),
                ("BARMAN_RECOVER_OPTIONS", r.recover_options_json()),
            ]);
        }
        if let Some(w) = &self.wal {
            vars.extend([
                ("BARMAN_SEGMENT", w.segment.clone()),
                ("BARMAN_FILE", w.file.clone()),
                ("BARMAN_SIZE", w.size.to_string()),
                ("BARMAN_TIMESTAMP", python::float_str(w.timestamp)),
                (
                    "BARMAN_COMPRESSION",
                    w.compression.clone().unwrap_or_default(),
                ),
            ]);
        }
        vars.into_iter()
            .map(|(name, value)| {
                if value.contains('\0') {
                    Err(Error::NulInValue { name })
                } else {
                    Ok((name.to_owned(), value))
                }
            })
            .collect()
    }

    /// Checks that the event's variable sets, and only those, are present.
    fn check_sets(&self) -> Result<()> {
        let (backup, recovery, wal) = match self.point.event {
            HookEvent::Backup | HookEvent::Delete => (true, false, false),
            HookEvent::Recovery => (true, true, false),
            HookEvent::Archive | HookEvent::WalDelete => (false, false, true),
        };
        let hook = || self.point.config_key();
        for (name, wanted, present) in [
            ("backup", backup, self.backup.is_some()),
            ("recovery", recovery, self.recovery.is_some()),
            ("WAL", wal, self.wal.is_some()),
        ] {
            if wanted && !present {
                return Err(Error::MissingVariables {
                    hook: hook(),
                    needed: name,
                });
            }
            if present && !wanted {
                return Err(Error::UnexpectedVariables {
                    hook: hook(),
                    unexpected: name,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
