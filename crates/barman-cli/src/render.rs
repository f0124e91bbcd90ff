//! Barman's console lines, rendered from barman-core's events
//! ([`barman_core::event`]): the one place where the English text of
//! backup, recover, delete, cron, receive-wal and the sync commands lives.
//!
//! Phase and copy-progress events render no line (the progress bar takes
//! its figures from barman-copy's `Progress` directly).

use barman_core::event::recovery::{Change, Warning};
use barman_core::event::{CopyDetails, Event};
use barman_core::shared::{human_duration, human_size};

/// Where the lines are printed: Barman words a few events differently in
/// `barman cron` than in the command that caused them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Style {
    /// `barman backup`, `recover`, `delete`, `receive-wal`, `sync-*`.
    #[default]
    Command,
    /// `barman cron` (and its workers).
    Cron,
}

/// The console lines of `event` (none for phases and progress). A line
/// starting with `WARNING: ` or `ERROR: ` is a warning or an error.
#[allow(clippy::too_many_lines)] // one arm per event, nothing else
pub(crate) fn lines(event: &Event, style: Style) -> Vec<String> {
    let one = |s: String| vec![s];
    match event {
        Event::Failure {
            server: None,
            error,
        } => one(format!("ERROR: {error}")),
        Event::Failure {
            server: Some(server),
            error,
        } => one(format!("ERROR: server {server}: {error}")),
        Event::CopyRetry {
            error,
            attempt,
            retries,
            sleep,
        } => one(format!(
            "WARNING: copy failed ({error}); retrying in {} s ({attempt}/{retries})",
            sleep.as_secs()
        )),
        Event::BackupStatusChanged { server, id, status } => {
            one(format!("Backup {id} of server {server} is now {status}"))
        }
        Event::InterruptedBackupFailed { server, id } => match style {
            Style::Command => one(format!("Marked interrupted backup {id} as FAILED")),
            Style::Cron => one(format!(
                "Backup {id} of server {server} was interrupted: marked FAILED"
            )),
        },
        Event::WalsArchived { server, wals } => match style {
            Style::Command => {
                let mut lines = vec![format!(
                    "Processing xlog segments from file archival for {server}"
                )];
                lines.extend(wals.iter().map(|w| format!("\t{w}")));
                lines
            }
            Style::Cron => one(format!(
                "Processed {} WAL file(s) for server {server}",
                wals.len()
            )),
        },
        Event::ArchivingStopped {
            server,
            wal,
            reason,
        } => match style {
            Style::Command => one(format!("WARNING: archiving stopped at {wal}: {reason}")),
            Style::Cron => one(format!(
                "WARNING: archiving of server {server} stopped at {wal}: {reason}"
            )),
        },
        _ => backup_lines(event)
            .or_else(|| recovery_lines(event))
            .or_else(|| delete_lines(event))
            .or_else(|| cron_lines(event))
            .or_else(|| receive_lines(event))
            .or_else(|| sync_lines(event))
            .unwrap_or_default(),
    }
}

fn backup_lines(event: &Event) -> Option<Vec<String>> {
    let line = match event {
        Event::BackupStarting {
            server,
            mode,
            directory,
            ..
        } => format!(
            "Starting backup using {mode} method for server {server} in {}",
            directory.display()
        ),
        Event::BackupStartLsn { lsn } => format!("Backup start at LSN: {lsn}"),
        Event::FirstBackup { server } => format!("This is the first backup for server {server}"),
        Event::ReusingBackup { previous, reuse } => format!(
            "Reusing unchanged files of backup {previous} (reuse_backup = {})",
            reuse.map_or("off", |r| r.as_str())
        ),
        Event::BaseBackupStreaming => {
            "Starting backup copy via BASE_BACKUP (replication protocol)".to_owned()
        }
        Event::CopyFinished {
            elapsed,
            files,
            bytes,
            details: None,
        } => format!(
            "Copy done (time: {}, {files} files, {})",
            human_duration(*elapsed),
            human_size(*bytes)
        ),
        Event::CopyFinished {
            elapsed,
            files,
            bytes,
            details:
                Some(CopyDetails {
                    files_linked,
                    files_delta,
                    wire_bytes,
                }),
        } => {
            let secs = elapsed.as_secs_f64().max(0.001);
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let rate = (*bytes as f64 / secs) as u64;
            format!(
                "Copy done (time: {}, {files} files, {} at {}/s; {files_linked} hard-linked, {files_delta} from deltas, {} received)",
                human_duration(*elapsed),
                human_size(*bytes),
                human_size(rate),
                human_size(*wire_bytes)
            )
        }
        Event::BackupStopping => "Asking PostgreSQL server to finalize the backup.".to_owned(),
        Event::BackupSize { total, written } => {
            let dedup_ratio = if *total == 0 {
                0.0
            } else {
                #[allow(clippy::cast_precision_loss)]
                let r = 100.0 * (1.0 - *written as f64 / *total as f64);
                r
            };
            format!(
                "Backup size: {}. Actual size on disk: {} (-{dedup_ratio:.2}% deduplication ratio).",
                human_size(*total),
                human_size(*written)
            )
        }
        Event::BackupEndLsn { lsn, wal, offset } => {
            format!("Backup end at LSN: {lsn} ({wal}, {offset:08X})")
        }
        Event::BackupCompleted {
            begin_time,
            elapsed,
            ..
        } => format!(
            "Backup completed (start time: {}, elapsed time: {})",
            barman_core::catalog::pytime::to_python_str(begin_time),
            human_duration(*elapsed)
        ),
        Event::BackupFailed { error, .. } => format!(
            "ERROR: Backup failed {}",
            error.trim_start_matches("failure ")
        ),
        Event::BackupWaitingForWals { id, end_wal } => format!(
            "WARNING: backup {id} is WAITING_FOR_WALS: its last WAL {} is not archived yet (run `barman cron`, or use --wait)",
            end_wal.as_deref().unwrap_or("?")
        ),
        Event::WaitingForWal { wal } => format!(
            "Waiting for the WAL file {} from the server",
            wal.as_deref().unwrap_or("?")
        ),
        Event::WalPurgeStopped { id, reason } => format!(
            "WARNING: removal of the WAL files older than the first backup {id} stopped: {reason}"
        ),
        Event::WalsPurged { server, id, count } => format!(
            "Removed {count} WAL file(s) older than the first backup {id} of server {server}"
        ),
        _ => return None,
    };
    Some(vec![line])
}

fn recovery_lines(event: &Event) -> Option<Vec<String>> {
    let lines = match event {
        Event::RestoreStarting {
            server,
            id,
            ssh,
            destination,
            tablespaces,
        } => {
            let where_to = match ssh {
                Some(ssh) => format!("{ssh}:{}", destination.display()),
                None => destination.display().to_string(),
            };
            let mut lines = vec![
                format!(
                    "Starting {} restore for server {server} using backup {id}",
                    if ssh.is_some() { "remote" } else { "local" }
                ),
                format!("Destination directory: {where_to}"),
            ];
            lines.extend(
                tablespaces
                    .iter()
                    .map(|(name, location)| format!("\t{name}, {location}")),
            );
            lines
        }
        Event::CopyingBaseBackup => vec!["Copying the base backup.".to_owned()],
        Event::CopyingWals { directory } => {
            vec![format!("Copying required WAL segments to {directory}.")]
        }
        Event::RestoreCompleted {
            restore_command,
            changes,
            warnings,
        } => {
            let mut lines = vec!["Restore operation completed".to_owned()];
            if let Some(command) = restore_command {
                lines.push(format!(
                    "restore_command = {}",
                    barman_core::recover::target::quote(command)
                ));
            }
            lines.extend(changes.iter().map(|c| format!("Changed: {}", change(c))));
            lines.extend(warnings.iter().map(|w| format!("WARNING: {}", warning(w))));
            lines.push(
                "Review the configuration of the recovered cluster before starting PostgreSQL."
                    .to_owned(),
            );
            lines
        }
        _ => return None,
    };
    Some(lines)
}

/// A change a recovery made, in words (`Changed: ` lines, the JSON's
/// `changes`).
pub fn change(change: &Change) -> String {
    match change {
        Change::ArchiveCommandDisabled { file, line } => {
            format!("{file}:{line}: archive_command disabled")
        }
        Change::TargetSettingCommentedOut {
            file,
            line,
            setting,
        } => format!("{file}:{line}: earlier {setting} commented out"),
        Change::TablespaceMapRewritten => {
            "tablespace_map: relocated tablespaces rewritten".to_owned()
        }
        Change::ManifestRenamed { backup_id } => {
            format!("backup_manifest renamed backup_manifest.{backup_id}")
        }
        Change::RecoverySettingsWritten { file, settings } => {
            format!(
                "{file}: recovery settings written ({})",
                settings.join(", ")
            )
        }
        Change::SignalFileCreated { file } => format!("{file} created"),
    }
}

/// A recovery warning, in words (`WARNING: ` lines, the JSON's
/// `warnings`).
pub fn warning(warning: &Warning) -> String {
    match warning {
        Warning::BackupWaitingForWals { backup_id } => format!(
            "backup {backup_id} is WAITING_FOR_WALS: some WAL it needs may not be archived yet"
        ),
        Warning::TablespaceInsideDataDirectory { name, location } => format!(
            "tablespace {name} is restored inside the data directory ({})",
            location.display()
        ),
        Warning::NoManifest { backup_id, path } => format!(
            "backup {backup_id} has no manifest ({}): files are restored without checksum verification",
            path.display()
        ),
        Warning::SettingMayPointOutside { file, line, text } => format!(
            "{file}:{line}: `{text}` may point outside the recovered data directory: review it"
        ),
        Warning::ConfigFileMissing { file } => format!(
            "{file} is not in the backup (kept outside the data directory?): provide one before starting PostgreSQL"
        ),
        Warning::TargetTimeWithoutZone { given, taken_as } => format!(
            "--target-time `{given}` has no time zone: taken as local time ({})",
            barman_core::recover::target::format_time(taken_as)
        ),
    }
}

fn delete_lines(event: &Event) -> Option<Vec<String>> {
    let line = match event {
        Event::DeletingBackupTree { id } => format!(
            "WARNING: Backup {id} has incremental backups which depend on it. Deleting all backups in the tree"
        ),
        Event::BackupDeleting { server, id } => format!("Deleting backup {id} for server {server}"),
        Event::WalRemovalStarted => "Delete associated WAL segments:".to_owned(),
        Event::WalRemoved { name } => format!("\t{name}"),
        Event::BackupDeleted {
            id,
            started_at,
            elapsed,
        } => format!(
            "Deleted backup {id} (start time: {}, elapsed time: {})",
            started_at.strftime("%a %b %e %H:%M:%S %Y"),
            human_duration(*elapsed)
        ),
        Event::DeleteResuming { server, id } => {
            format!("Finishing the interrupted delete of backup {id} for server {server}")
        }
        Event::RetentionRemoving { server, id } => {
            format!("Enforcing retention policy: removing backup {id} for server {server}")
        }
        Event::RetentionRefused { reason } => format!("WARNING: {reason}"),
        Event::RetentionStopped { server, id, reason } => format!(
            "WARNING: retention policy enforcement of server {server} stopped at backup {id}: {reason}"
        ),
        _ => return None,
    };
    Some(vec![line])
}

fn cron_lines(event: &Event) -> Option<Vec<String>> {
    let line = match event {
        Event::CronBusy => "Another cron process is already running. Skipping.".to_owned(),
        Event::CronServerBusy { server } => format!(
            "Another cron process is already running on server {server}. Skipping to the next server"
        ),
        Event::ArchiverBusy { server } => format!(
            "Another archive-wal process is already running on server {server}. Skipping to the next server"
        ),
        Event::WalRejected { server, wal } => {
            format!("WARNING: {wal} of server {server} was moved to errors/")
        }
        Event::ReceiveWalSpawned { server, pid } => {
            format!("Starting streaming archiver for server {server} (pid {pid})")
        }
        Event::ReceiveWalTerminated { server, pid } => format!(
            "Stopping the streaming archiver of server {server} (pid {pid}): streaming_archiver is off or the server is inactive"
        ),
        Event::ReceiveWalTerminateFailed { server, pid, error } => {
            format!("ERROR: cannot stop receive-wal of server {server} (pid {pid}): {error}")
        }
        _ => return None,
    };
    Some(vec![line])
}

fn receive_lines(event: &Event) -> Option<Vec<String>> {
    let line = match event {
        Event::SlotCreated { server, slot } => {
            format!("Creating physical replication slot '{slot}' on server '{server}'")
        }
        Event::SlotExists { slot } => format!("Replication slot '{slot}' already exists"),
        Event::SlotDropped { slot } => format!("Replication slot '{slot}' dropped"),
        Event::SlotAutoCreated { slot } => {
            format!("Creating physical replication slot '{slot}' (create_slot = auto)")
        }
        Event::StreamingStarted {
            server,
            lsn,
            timeline,
            segment,
        } => format!(
            "Starting receive-wal for server '{server}' at {lsn} on timeline {timeline} ({segment})"
        ),
        Event::StreamingStopped => "receive-wal stopped".to_owned(),
        Event::TimelineFollowed { timeline, lsn } => format!(
            "Timeline {} ended; following timeline {timeline} from {lsn}",
            timeline - 1
        ),
        Event::StreamingReset { segment } => {
            format!("Resetting receive-wal directory status: restart from {segment}")
        }
        _ => return None,
    };
    Some(vec![line])
}

fn sync_lines(event: &Event) -> Option<Vec<String>> {
    let line = match event {
        Event::SyncInterrupted { server, id } => format!(
            "Synchronisation of backup {id} of server {server} was interrupted: marked FAILED"
        ),
        Event::PrimaryInfoFailed { error } => {
            format!("ERROR: Failed to retrieve the primary node status: {error}")
        }
        Event::NoBackupToSync { server } => {
            format!("No backup synchronisation required for server {server}")
        }
        Event::BackupNotSynchronised { id, reason } => format!(
            "WARNING: backup {id} of the primary is not synchronised: {reason} (not implemented by barman-rs yet)"
        ),
        Event::BackupSyncBusy { server, id } => format!(
            "A synchronisation process for backup {id} on server {server} is already in progress"
        ),
        Event::BackupSyncSpawned { server, id, pid } => {
            format!("Starting copy of backup {id} for server {server} (pid {pid})")
        }
        Event::NoWalToSync { server } => {
            format!("No WAL synchronisation required for server {server}")
        }
        Event::WalSyncBusy { server } => {
            format!("WAL synchronisation already running for server {server}")
        }
        Event::WalSyncSpawned { server, pid } => {
            format!("Started copy of WAL files for server {server} (pid {pid})")
        }
        Event::BackupSyncStarted { server, id } => {
            format!("Starting copy of backup {id} for server {server}")
        }
        Event::BackupSynchronised {
            server,
            id,
            status,
            elapsed,
            files,
            bytes,
            files_linked,
            files_delta,
            files_fetched,
            bytes_transferred,
        } => format!(
            "Synchronised backup {id} of server {server}, now {status} (time: {}, {files} files, {}; {files_linked} hard-linked, {files_delta} from deltas, {files_fetched} fetched; {bytes_transferred} bytes transferred)",
            human_duration(*elapsed),
            human_size(*bytes),
        ),
        Event::ReusingLocalBackup { id } => {
            format!("Reusing unchanged files of local backup {id}")
        }
        Event::NoPrimaryManifest { id } => format!(
            "WARNING: backup {id} has no manifest on the primary: its files are copied unverified"
        ),
        Event::NoBaseBackup { server } => format!("WARNING: No base backup for server {server}"),
        Event::WalsSynchronised {
            server,
            count,
            bytes,
        } => format!(
            "Synchronised {count} WAL file(s) for server {server} ({bytes} bytes transferred)"
        ),
        Event::SyncInfoOutOfSync { server } => format!(
            "WARNING: sync-info is out of sync. Self-recovery procedure started: \
             requesting full synchronisation from primary server {server}"
        ),
        _ => return None,
    };
    Some(vec![line])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn phases_and_progress_render_nothing() {
        for event in [
            Event::PhaseStarted {
                operation: barman_core::event::Operation::Backup,
                phase: barman_core::event::Phase::Copy,
            },
            Event::BytesCopied { bytes: 3 },
        ] {
            assert!(lines(&event, Style::Command).is_empty());
        }
    }

    #[test]
    fn cron_words_archiving_differently() {
        let event = Event::WalsArchived {
            server: "pg".into(),
            wals: vec!["000000010000000000000001".into()],
        };
        assert_eq!(
            lines(&event, Style::Command),
            [
                "Processing xlog segments from file archival for pg",
                "\t000000010000000000000001"
            ]
        );
        assert_eq!(
            lines(&event, Style::Cron),
            ["Processed 1 WAL file(s) for server pg"]
        );
    }

    #[test]
    fn copy_retry_and_failures() {
        let retry = Event::CopyRetry {
            error: "boom".into(),
            attempt: 1,
            retries: 3,
            sleep: Duration::from_secs(30),
        };
        assert_eq!(
            lines(&retry, Style::Command),
            ["WARNING: copy failed (boom); retrying in 30 s (1/3)"]
        );
        let failure = Event::Failure {
            server: Some("pg".into()),
            error: "x".into(),
        };
        assert_eq!(lines(&failure, Style::Cron), ["ERROR: server pg: x"]);
    }

    /// The end of a recovery: each typed change and warning in the words
    /// barman-rs has always printed.
    #[test]
    fn restore_completed_words_every_change_and_warning() {
        let taken_as: jiff::Zoned = "2026-11-27T18:30:00+01:00[Europe/Paris]".parse().unwrap();
        let event = Event::RestoreCompleted {
            restore_command: Some("cp barman_wal/%f %p".into()),
            changes: vec![
                Change::ArchiveCommandDisabled {
                    file: "postgresql.conf".into(),
                    line: 3,
                },
                Change::TargetSettingCommentedOut {
                    file: "postgresql.auto.conf".into(),
                    line: 7,
                    setting: "recovery_target_time".into(),
                },
                Change::TablespaceMapRewritten,
                Change::ManifestRenamed {
                    backup_id: "20261127T183000".into(),
                },
                Change::RecoverySettingsWritten {
                    file: "postgresql.auto.conf".into(),
                    settings: vec!["restore_command".into(), "recovery_target_time".into()],
                },
                Change::SignalFileCreated {
                    file: "recovery.signal".into(),
                },
            ],
            warnings: vec![
                Warning::BackupWaitingForWals {
                    backup_id: "B".into(),
                },
                Warning::TablespaceInsideDataDirectory {
                    name: "ts".into(),
                    location: "/srv/pg/ts".into(),
                },
                Warning::NoManifest {
                    backup_id: "B".into(),
                    path: "/b/manifest".into(),
                },
                Warning::SettingMayPointOutside {
                    file: "postgresql.conf".into(),
                    line: 5,
                    text: "data_directory = '/x'".into(),
                },
                Warning::ConfigFileMissing {
                    file: "pg_hba.conf".into(),
                },
                Warning::TargetTimeWithoutZone {
                    given: "2026-11-27 18:30:00".into(),
                    taken_as,
                },
            ],
        };
        assert_eq!(
            lines(&event, Style::Command),
            [
                "Restore operation completed",
                "restore_command = 'cp barman_wal/%f %p'",
                "Changed: postgresql.conf:3: archive_command disabled",
                "Changed: postgresql.auto.conf:7: earlier recovery_target_time commented out",
                "Changed: tablespace_map: relocated tablespaces rewritten",
                "Changed: backup_manifest renamed backup_manifest.20261127T183000",
                "Changed: postgresql.auto.conf: recovery settings written (restore_command, recovery_target_time)",
                "Changed: recovery.signal created",
                "WARNING: backup B is WAITING_FOR_WALS: some WAL it needs may not be archived yet",
                "WARNING: tablespace ts is restored inside the data directory (/srv/pg/ts)",
                "WARNING: backup B has no manifest (/b/manifest): files are restored without checksum verification",
                "WARNING: postgresql.conf:5: `data_directory = '/x'` may point outside the recovered data directory: review it",
                "WARNING: pg_hba.conf is not in the backup (kept outside the data directory?): provide one before starting PostgreSQL",
                "WARNING: --target-time `2026-11-27 18:30:00` has no time zone: taken as local time (2026-11-27 18:30:00+01:00)",
                "Review the configuration of the recovered cluster before starting PostgreSQL.",
            ]
        );
    }
}
