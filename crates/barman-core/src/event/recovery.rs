//! What a recovery reports besides its figures: the changes it made to the
//! recovered cluster's files ([`Change`]) and what to review before
//! starting PostgreSQL ([`Warning`]). Typed, like every event: the CLI
//! words them (`Changed: ...`, `WARNING: ...`).

use std::path::PathBuf;

use jiff::Zoned;
use serde::Serialize;

/// A change a recovery made to the recovered cluster's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// `archive_command` commented out (and `archive_command = false`
    /// added) from line `line` of `file`.
    ArchiveCommandDisabled {
        /// The configuration file.
        file: String,
        /// The first `archive_command` line (1-based).
        line: usize,
    },
    /// An earlier `recovery_target*` setting commented out.
    TargetSettingCommentedOut {
        /// The configuration file.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// The setting's name.
        setting: String,
    },
    /// `tablespace_map` rewritten with the relocated tablespaces.
    TablespaceMapRewritten,
    /// PostgreSQL's `backup_manifest` renamed `backup_manifest.<id>`.
    ManifestRenamed {
        /// The backup id.
        backup_id: String,
    },
    /// The recovery settings written into `file`.
    RecoverySettingsWritten {
        /// `postgresql.auto.conf` or `recovery.conf`.
        file: String,
        /// The settings' names, in order.
        settings: Vec<String>,
    },
    /// A signal file created (`recovery.signal`, `standby.signal`).
    SignalFileCreated {
        /// Its name.
        file: String,
    },
}

/// Something to review before starting the recovered PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "warning", rename_all = "snake_case")]
pub enum Warning {
    /// The backup is `WAITING_FOR_WALS`: a WAL it needs may be missing.
    BackupWaitingForWals {
        /// The backup id.
        backup_id: String,
    },
    /// A tablespace is restored inside the data directory.
    TablespaceInsideDataDirectory {
        /// The tablespace.
        name: String,
        /// Where it is restored.
        location: PathBuf,
    },
    /// The backup has no manifest: no checksum verification.
    NoManifest {
        /// The backup id.
        backup_id: String,
        /// The manifest path looked for.
        path: PathBuf,
    },
    /// A setting that may point outside the recovered data directory.
    SettingMayPointOutside {
        /// The configuration file.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// The line's text, trimmed.
        text: String,
    },
    /// `pg_hba.conf` or `pg_ident.conf` is not in the backup.
    ConfigFileMissing {
        /// The file's name.
        file: String,
    },
    /// `--target-time` had no time zone: it was taken as local time.
    TargetTimeWithoutZone {
        /// The value given.
        given: String,
        /// The time it was taken as.
        #[serde(skip)]
        taken_as: Zoned,
    },
}
