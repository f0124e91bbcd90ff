//! The one event stream: every operation of barman-core (backup, recovery,
//! delete, cron, receive-wal, synchronisation) reports what it does as typed
//! [`Event`]s to one [`Observer`]. Events carry data (ids, names, sizes,
//! durations, paths, counts), never console sentences: the CLI renders
//! Barman's console lines and JSON from them, an embedder matches on the
//! variants.
//!
//! Phases of the long operations are reported as [`Event::PhaseStarted`] and
//! [`Event::PhaseFinished`] (with the elapsed time), in order; the other
//! events happen inside them.
//!
//! Copy progress (barman-copy's [`Progress`], called from several worker
//! threads) becomes events through [`ProgressEvents`]: the operations wrap
//! their context's observer in it for their copy phase, so an observer
//! sees the copy's progress in the same stream (the contexts take an
//! `Observer + Send` for that), and the CLI's progress bar is driven by
//! those events.
//!
//! Not here: `archive::ArchiveObserver`'s `before`/`after` hooks, which can
//! stop an archive-wal run (control flow, not notification); archive-wal
//! reports what it archived in its returned report.

pub mod recovery;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use barman_catalog::{BackupId, BackupStatus};
use barman_config::ReuseBackup;
use barman_copy::{Progress, RelPath};
use barman_wal::Lsn;
use jiff::Zoned;

/// The operations that report phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `barman backup`.
    Backup,
    /// `barman recover`.
    Recovery,
}

/// A phase of an operation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Backup: the pre-backup checks (PostgreSQL, catalog, identity, lock).
    Check,
    /// Backup: backup.info created, pre-backup hooks, `pg_backup_start`.
    Start,
    /// Backup: the copy of PGDATA and the tablespaces (or `BASE_BACKUP`).
    Copy,
    /// Backup: `pg_backup_stop`, `backup_label`, WAL positions.
    Stop,
    /// Backup: restore point, sizes, manifest, WAITING_FOR_WALS.
    Finalise,
    /// Backup: the inline archive-wal and check-backup (and `--wait`).
    Wals,
    /// Recovery: the base backup copied into the destination.
    RestoreBase,
    /// Recovery: the WAL files the recovery needs copied.
    RestoreWals,
    /// Recovery: the recovery configuration written.
    Configure,
}

/// A figure-carrying report from an operation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    // ----- Phases -----
    /// A phase began.
    PhaseStarted {
        /// The operation.
        operation: Operation,
        /// The phase.
        phase: Phase,
    },
    /// A phase ended successfully.
    PhaseFinished {
        /// The operation.
        operation: Operation,
        /// The phase.
        phase: Phase,
        /// How long it took.
        elapsed: Duration,
    },

    // ----- Copy progress (barman-copy) -----
    /// The copy plan is known: this many files and bytes will be processed.
    CopyPlanned {
        /// Files.
        files: u64,
        /// Bytes.
        bytes: u64,
    },
    /// More bytes of file content were processed.
    BytesCopied {
        /// Bytes since the previous report.
        bytes: u64,
    },
    /// A file was copied (or linked, or found unchanged).
    FileCopied {
        /// Its path in the copy.
        path: RelPath,
    },

    // ----- Generic -----
    /// An error that did not stop the operation (cron goes on with the next step).
    Failure {
        /// The server it concerns, when the error text does not name it.
        server: Option<String>,
        /// The error.
        error: String,
    },
    /// A copy attempt failed and is retried after `sleep`.
    CopyRetry {
        /// The error.
        error: String,
        /// This retry's number (from 1).
        attempt: u32,
        /// The retries allowed.
        retries: u32,
        /// The pause before the retry.
        sleep: Duration,
    },
    /// A backup's status changed after a check of its WALs.
    BackupStatusChanged {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
        /// Its new status.
        status: BackupStatus,
    },
    /// A backup left EMPTY/STARTED by a killed process was marked FAILED.
    InterruptedBackupFailed {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// Archive-wal archived WAL files from the incoming directory.
    WalsArchived {
        /// The server.
        server: String,
        /// The WAL files, in order.
        wals: Vec<String>,
    },
    /// Archive-wal stopped before the end (a pre-archive hook asked to).
    ArchivingStopped {
        /// The server.
        server: String,
        /// The WAL file it stopped at.
        wal: String,
        /// Why.
        reason: String,
    },

    // ----- Backup -----
    /// A backup began: backup.info exists (EMPTY).
    BackupStarting {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
        /// The `mode` recorded in backup.info (`rsync-concurrent`, `postgres`).
        mode: String,
        /// The backup directory.
        directory: PathBuf,
    },
    /// `pg_backup_start` returned.
    BackupStartLsn {
        /// The start LSN.
        lsn: Lsn,
    },
    /// No previous backup to reuse.
    FirstBackup {
        /// The server.
        server: String,
    },
    /// The copy reuses a previous backup's unchanged files.
    ReusingBackup {
        /// The previous backup.
        previous: BackupId,
        /// The reuse mode asked for (None: off).
        reuse: Option<ReuseBackup>,
    },
    /// `backup_method = postgres`: the `BASE_BACKUP` stream begins.
    BaseBackupStreaming,
    /// The copy of a backup ended.
    CopyFinished {
        /// How long the copy took.
        elapsed: Duration,
        /// Files.
        files: u64,
        /// Bytes of the backup.
        bytes: u64,
        /// Copy figures of the rsync methods (None for `BASE_BACKUP`).
        details: Option<CopyDetails>,
    },
    /// `pg_backup_stop` is called.
    BackupStopping,
    /// The backup's sizes once finalised.
    BackupSize {
        /// Total size.
        total: u64,
        /// Bytes written (the rest was deduplicated).
        written: u64,
    },
    /// `pg_backup_stop` returned.
    BackupEndLsn {
        /// The end LSN.
        lsn: Lsn,
        /// The WAL file holding it.
        wal: String,
        /// The offset in that file.
        offset: u64,
    },
    /// The backup is WAITING_FOR_WALS (or DONE).
    BackupCompleted {
        /// The backup.
        id: BackupId,
        /// `begin_time`.
        begin_time: Zoned,
        /// From begin to end.
        elapsed: Duration,
    },
    /// The backup failed: it is FAILED with this `error`.
    BackupFailed {
        /// The backup.
        id: BackupId,
        /// The `error` written in backup.info (`failure PHASE (...)`).
        error: String,
    },
    /// The backup stays WAITING_FOR_WALS (no `--wait`).
    BackupWaitingForWals {
        /// The backup.
        id: BackupId,
        /// Its last WAL.
        end_wal: Option<String>,
    },
    /// `--wait`: waiting for the backup's last WAL.
    WaitingForWal {
        /// The WAL file.
        wal: Option<String>,
    },
    /// WAL files older than a server's first backup were removed.
    WalsPurged {
        /// The server.
        server: String,
        /// The first backup.
        id: BackupId,
        /// How many.
        count: u64,
    },
    /// A hook stopped the removal of WALs older than the first backup.
    WalPurgeStopped {
        /// The first backup.
        id: BackupId,
        /// Why.
        reason: String,
    },

    // ----- Recovery -----
    /// A recovery began.
    RestoreStarting {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
        /// `--remote-ssh-command`, for a remote recovery.
        ssh: Option<String>,
        /// The destination directory.
        destination: PathBuf,
        /// The relocated tablespaces: (name, location).
        tablespaces: Vec<(String, String)>,
    },
    /// The base backup's copy begins.
    CopyingBaseBackup,
    /// The required WAL files' copy begins.
    CopyingWals {
        /// Where they go (as the recovery configuration names it).
        directory: String,
    },
    /// The recovery ended.
    RestoreCompleted {
        /// The `restore_command` written (unquoted), if any.
        restore_command: Option<String>,
        /// The changes made to the recovered cluster's files.
        changes: Vec<recovery::Change>,
        /// What the recovered cluster's administrator should check.
        warnings: Vec<recovery::Warning>,
    },

    // ----- Delete and retention -----
    /// The backup has incremental children: the whole tree is deleted.
    DeletingBackupTree {
        /// The root backup.
        id: BackupId,
    },
    /// A backup's deletion begins.
    BackupDeleting {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// The WAL files the deletion frees are removed next.
    WalRemovalStarted,
    /// One WAL file was removed from the archive.
    WalRemoved {
        /// The WAL file.
        name: String,
    },
    /// A backup was deleted.
    BackupDeleted {
        /// The backup.
        id: BackupId,
        /// When the deletion began.
        started_at: Zoned,
        /// How long it took.
        elapsed: Duration,
    },
    /// An interrupted deletion is finished.
    DeleteResuming {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// Retention policy (cron): an obsolete backup is removed.
    RetentionRemoving {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// Retention policy (cron): a deletion was refused.
    RetentionRefused {
        /// Why.
        reason: String,
    },
    /// Retention policy (cron): a hook stopped the enforcement.
    RetentionStopped {
        /// The server.
        server: String,
        /// The backup it stopped at.
        id: BackupId,
        /// Why.
        reason: String,
    },

    // ----- Cron -----
    /// Another cron holds the global lock.
    CronBusy,
    /// Another cron works on this server.
    CronServerBusy {
        /// The server.
        server: String,
    },
    /// Another archive-wal runs on this server.
    ArchiverBusy {
        /// The server.
        server: String,
    },
    /// A WAL file was rejected into `errors/`.
    WalRejected {
        /// The server.
        server: String,
        /// The file.
        wal: String,
    },
    /// Cron started receive-wal.
    ReceiveWalSpawned {
        /// The server.
        server: String,
        /// Its pid.
        pid: u32,
    },
    /// Cron stopped receive-wal (streaming off or server inactive).
    ReceiveWalTerminated {
        /// The server.
        server: String,
        /// Its pid.
        pid: u32,
    },
    /// Cron could not stop receive-wal.
    ReceiveWalTerminateFailed {
        /// The server.
        server: String,
        /// Its pid.
        pid: u32,
        /// The error.
        error: String,
    },

    // ----- receive-wal -----
    /// A replication slot was created.
    SlotCreated {
        /// The server.
        server: String,
        /// The slot.
        slot: String,
    },
    /// `--create-slot --if-not-exists`: the slot exists.
    SlotExists {
        /// The slot.
        slot: String,
    },
    /// A replication slot was dropped.
    SlotDropped {
        /// The slot.
        slot: String,
    },
    /// `create_slot = auto`: the slot is created.
    SlotAutoCreated {
        /// The slot.
        slot: String,
    },
    /// Streaming begins.
    StreamingStarted {
        /// The server.
        server: String,
        /// The start position.
        lsn: Lsn,
        /// The timeline.
        timeline: u32,
        /// The segment of `lsn`.
        segment: String,
    },
    /// Streaming stopped (cancelled).
    StreamingStopped,
    /// The server switched timeline.
    TimelineFollowed {
        /// The new timeline.
        timeline: u32,
        /// Where it begins.
        lsn: Lsn,
    },
    /// `--reset`: the streaming directory restarts from `segment`.
    StreamingReset {
        /// The segment.
        segment: String,
    },
    /// A streamed segment was completed in `streaming/`.
    WalStreamed {
        /// The segment.
        name: String,
    },

    // ----- Synchronisation (passive nodes) -----
    /// A backup synchronisation left by a killed process was marked FAILED.
    SyncInterrupted {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// The primary's status could not be read.
    PrimaryInfoFailed {
        /// The error.
        error: String,
    },
    /// The primary has no backup.
    NoBackupToSync {
        /// The server.
        server: String,
    },
    /// A primary's backup cannot be synchronised by this build.
    BackupNotSynchronised {
        /// The backup.
        id: BackupId,
        /// Why.
        reason: String,
    },
    /// Another process synchronises this backup.
    BackupSyncBusy {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// Cron started sync-backup.
    BackupSyncSpawned {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
        /// Its pid.
        pid: u32,
    },
    /// The primary has no WAL.
    NoWalToSync {
        /// The server.
        server: String,
    },
    /// Another process synchronises the WALs.
    WalSyncBusy {
        /// The server.
        server: String,
    },
    /// Cron started sync-wals.
    WalSyncSpawned {
        /// The server.
        server: String,
        /// Its pid.
        pid: u32,
    },
    /// A backup's synchronisation begins.
    BackupSyncStarted {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
    },
    /// A backup was synchronised.
    BackupSynchronised {
        /// The server.
        server: String,
        /// The backup.
        id: BackupId,
        /// Its status now.
        status: BackupStatus,
        /// How long it took.
        elapsed: Duration,
        /// Files.
        files: u64,
        /// Bytes of the backup.
        bytes: u64,
        /// Files hard-linked from a local backup.
        files_linked: u64,
        /// Files rebuilt from deltas.
        files_delta: u64,
        /// Files fetched whole.
        files_fetched: u64,
        /// Bytes received.
        bytes_transferred: u64,
    },
    /// The synchronisation reuses a local backup.
    ReusingLocalBackup {
        /// The local backup.
        id: BackupId,
    },
    /// The primary has no manifest for this backup.
    NoPrimaryManifest {
        /// The backup.
        id: BackupId,
    },
    /// sync-wals: no base backup, nothing to do.
    NoBaseBackup {
        /// The server.
        server: String,
    },
    /// sync-wals copied WAL files.
    WalsSynchronised {
        /// The server.
        server: String,
        /// How many.
        count: usize,
        /// Bytes received.
        bytes: u64,
    },
    /// The local sync position did not match the primary: full resync.
    SyncInfoOutOfSync {
        /// The primary server.
        server: String,
    },
}

/// The copy figures of the rsync methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyDetails {
    /// Files hard-linked from the previous backup.
    pub files_linked: u64,
    /// Files rebuilt from deltas.
    pub files_delta: u64,
    /// Bytes received from the source.
    pub wire_bytes: u64,
}

/// Receives the events of an operation.
pub trait Observer {
    /// One event.
    fn event(&mut self, event: &Event);
}

impl<O: Observer + ?Sized> Observer for &mut O {
    fn event(&mut self, event: &Event) {
        (**self).event(event);
    }
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn event(&mut self, _event: &Event) {}
}

/// Logs every event (tracing, `debug` for progress, `info` otherwise).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogObserver;

impl Observer for LogObserver {
    fn event(&mut self, event: &Event) {
        match event {
            Event::BytesCopied { .. } | Event::FileCopied { .. } | Event::CopyPlanned { .. } => {
                tracing::debug!("{event:?}");
            }
            _ => tracing::info!("{event:?}"),
        }
    }
}

/// barman-copy's [`Progress`] as events: `start` → [`Event::CopyPlanned`],
/// `advance` → [`Event::BytesCopied`], `file_done` → [`Event::FileCopied`].
/// The observer is shared by the copy's worker threads behind a mutex.
pub struct ProgressEvents<'a> {
    observer: Mutex<&'a mut (dyn Observer + Send)>,
}

impl<'a> ProgressEvents<'a> {
    /// Forwards progress to `observer`.
    pub fn new(observer: &'a mut (dyn Observer + Send)) -> Self {
        Self {
            observer: Mutex::new(observer),
        }
    }

    fn emit(&self, event: &Event) {
        let mut observer = self
            .observer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        observer.event(event);
    }
}

impl std::fmt::Debug for ProgressEvents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressEvents").finish_non_exhaustive()
    }
}

impl Progress for ProgressEvents<'_> {
    fn start(&self, files: u64, bytes: u64) {
        self.emit(&Event::CopyPlanned { files, bytes });
    }
    fn advance(&self, bytes: u64) {
        self.emit(&Event::BytesCopied { bytes });
    }
    fn file_done(&self, path: &RelPath) {
        self.emit(&Event::FileCopied { path: path.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<Event>);

    impl Observer for Collect {
        fn event(&mut self, event: &Event) {
            self.0.push(event.clone());
        }
    }

    #[test]
    fn progress_becomes_events() {
        let mut collect = Collect::default();
        {
            let progress = ProgressEvents::new(&mut collect);
            progress.start(2, 10);
            progress.advance(4);
            progress.file_done(&RelPath::new("data/a").unwrap());
        }
        assert!(matches!(
            collect.0.as_slice(),
            [
                Event::CopyPlanned {
                    files: 2,
                    bytes: 10
                },
                Event::BytesCopied { bytes: 4 },
                Event::FileCopied { .. }
            ]
        ));
    }
}
