//! Command-line arguments (clap), mirroring Barman's command tree.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Barman-compatible backup and recovery manager for PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "barman", disable_version_flag = true)]
pub struct Cli {
    /// Configuration file (default: ~/.barman.conf, /etc/barman.conf, /etc/barman/barman.conf).
    #[arg(short = 'c', long = "config", global = true, value_name = "CONFIG")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Console, global = true)]
    pub format: Format,

    /// Be quiet: print only errors.
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,

    /// Debug output (log level DEBUG, also on stderr).
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,

    /// Override the log level of the configuration.
    #[arg(long = "log-level", value_enum, global = true)]
    pub log_level: Option<LogLevel>,

    /// Colour in console output.
    #[arg(long = "color", alias = "colour", value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    pub version: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Output writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Console,
    /// One JSON document printed at exit.
    Json,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Never colour.
    Never,
    /// Always colour.
    Always,
    /// Colour on a terminal.
    Auto,
}

/// Log levels, in Barman's (Python logging) spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
    /// Critical errors only.
    Critical,
}

impl Cli {
    /// `check --nagios`: only the Nagios status may be printed.
    pub fn nagios(&self) -> bool {
        matches!(self.command, Some(Command::Check { nagios: true, .. }))
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List available servers, with useful information.
    ListServers {
        /// Machine readable output: server names only.
        #[arg(long)]
        minimal: bool,
    },
    /// Show the configuration of one or more servers (`all` for every server).
    #[command(alias = "show-server")]
    ShowServers {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Diagnostic information in JSON format.
    Diagnose {
        /// Include the source file and line of each configuration value.
        #[arg(long = "show-config-source")]
        show_config_source: bool,
    },
    /// Receive a WAL file from barman-wal-archive (a tar stream on stdin),
    /// or read one local WAL file (one-host archive_command).
    PutWal {
        /// Test mode: check that the server accepts WAL files, write nothing.
        #[arg(short = 't', long = "test")]
        test: bool,
        /// The server.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// A local WAL file to archive instead of reading a tar stream from
        /// stdin: `archive_command = 'barman put-wal SERVER %p'`.
        #[arg(value_name = "WAL_PATH")]
        wal_path: Option<PathBuf>,
    },
    /// Move the WAL files of incoming/ (and streaming/) into the archive.
    ArchiveWal {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Retrieve a WAL file from the archive (stdout, or -o DIR).
    GetWal {
        /// Write the file into this directory instead of stdout.
        #[arg(short = 'o', long = "output-directory", value_name = "DIR")]
        output_directory: Option<PathBuf>,
        /// Also look for a `.partial` file.
        #[arg(short = 'P', long = "partial")]
        partial: bool,
        /// Print up to N existing WAL names starting from WAL_NAME.
        #[arg(short = 'p', long = "peek", value_name = "N")]
        peek: Option<usize>,
        /// Test mode: check that WAL files can be retrieved.
        #[arg(short = 't', long = "test")]
        test: bool,
        /// Send the file as stored (compressed), not decompressed.
        #[arg(long = "keep-compression")]
        keep_compression: bool,
        /// Deprecated: gzip the output.
        #[arg(short = 'z', long = "gzip")]
        gzip: bool,
        /// Deprecated: bzip2 the output.
        #[arg(short = 'j', long = "bzip2")]
        bzip2: bool,
        /// Deprecated: xz the output.
        #[arg(short = 'x', long = "xz")]
        xz: bool,
        /// The server.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// The WAL file name.
        #[arg(value_name = "WAL_NAME")]
        wal_name: String,
    },
    /// Force PostgreSQL to switch to a new WAL file.
    #[command(alias = "switch-xlog")]
    SwitchWal {
        /// Issue a CHECKPOINT first (makes the switch happen on an idle server).
        #[arg(long)]
        force: bool,
        /// Wait for the closed WAL file to be archived.
        #[arg(long)]
        archive: bool,
        /// Seconds to wait with --archive.
        #[arg(long = "archive-timeout", default_value_t = 30, value_name = "SECONDS")]
        archive_timeout: u64,
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Stream WAL into the server's streaming/ directory over the replication protocol.
    ReceiveWal {
        /// Create the replication slot (slot_name) and exit.
        #[arg(long = "create-slot")]
        create_slot: bool,
        /// With --create-slot: an existing slot is not an error.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
        /// Drop the replication slot (slot_name) and exit.
        #[arg(long = "drop-slot")]
        drop_slot: bool,
        /// Restart from the server's (or the slot's) position: discard the local .partial state.
        #[arg(long = "reset", conflicts_with = "stop")]
        reset: bool,
        /// Stop the running receive-wal of the server.
        #[arg(long = "stop")]
        stop: bool,
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
    },
    /// Take a base backup of one or more servers.
    Backup {
        /// Reuse the previous backup: off, copy or link (bare flag: link).
        #[arg(long = "reuse-backup", value_name = "MODE", num_args = 0..=1, default_missing_value = "link")]
        reuse_backup: Option<String>,
        /// Ask PostgreSQL for an immediate (fast) checkpoint at start.
        #[arg(
            long = "immediate-checkpoint",
            overrides_with = "no_immediate_checkpoint"
        )]
        immediate_checkpoint: bool,
        /// Wait for the regular (spread) checkpoint at start.
        #[arg(long = "no-immediate-checkpoint")]
        no_immediate_checkpoint: bool,
        /// Parallel copy workers (agent sessions).
        #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
        /// Accepted for compatibility (workers start at once).
        #[arg(long = "jobs-start-batch-period", value_name = "SECONDS", hide = true)]
        jobs_start_batch_period: Option<u64>,
        /// Accepted for compatibility (workers start at once).
        #[arg(long = "jobs-start-batch-size", value_name = "N", hide = true)]
        jobs_start_batch_size: Option<u32>,
        /// Bandwidth limit in KB/s for the whole backup (0: none).
        #[arg(long = "bwlimit", value_name = "KBPS", value_parser = bwlimit_parser())]
        bwlimit: Option<u64>,
        /// Retries of the copy after a failure.
        #[arg(long = "retry-times", value_name = "N")]
        retry_times: Option<u32>,
        /// Seconds between retries.
        #[arg(long = "retry-sleep", value_name = "SECONDS")]
        retry_sleep: Option<u64>,
        /// No retries (retry-times 0).
        #[arg(long = "no-retry")]
        no_retry: bool,
        /// Wait until every WAL the backup needs is archived.
        #[arg(short = 'w', long = "wait")]
        wait: bool,
        /// Seconds to wait with --wait (0: for ever).
        #[arg(long = "wait-timeout", value_name = "SECONDS")]
        wait_timeout: Option<u64>,
        /// A friendly name for the backup.
        #[arg(short = 'n', long = "name", value_name = "NAME")]
        name: Option<String>,
        /// A block-level incremental backup (PostgreSQL 17+, backup_method =
        /// postgres) on top of BACKUP_ID: an id, a name, or latest, last,
        /// oldest, first, latest-full, last-full, last-failed.
        #[arg(long = "incremental", value_name = "BACKUP_ID")]
        incremental: Option<String>,
        /// Compare every file by content instead of trusting size and mtime.
        #[arg(long = "checksum")]
        checksum: bool,
        /// Print the copy plan (what would be fetched, linked, copied or
        /// delta-copied) and exit without backing up.
        #[arg(long = "dry-run")]
        dry_run: bool,
        /// Accepted for compatibility (the SQL session has TCP keepalives).
        #[arg(long = "keepalive-interval", value_name = "SECONDS", hide = true)]
        keepalive_interval: Option<u64>,
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Check that every WAL a backup needs is archived (WAITING_FOR_WALS → DONE/FAILED).
    CheckBackup {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id (or latest, oldest, ...).
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// Write a PostgreSQL backup_manifest (SHA256) into an rsync backup's data directory.
    GenerateManifest {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id (or latest, oldest, ...).
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// Check a backup with pg_verifybackup against its backup_manifest.
    #[command(alias = "verify")]
    VerifyBackup {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id (or latest, oldest, ...).
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// The copy agent (run on the PostgreSQL host through ssh_command; speaks on stdin/stdout).
    Agent,
    /// Restore a backup into a directory (local or remote), with point-in-time recovery.
    #[command(alias = "restore")]
    Recover(Box<RecoverArgs>),
    /// Show live information and status of any streaming client.
    ReplicationStatus {
        /// Machine readable output: one line per client.
        #[arg(long)]
        minimal: bool,
        /// Which clients: hot-standby, wal-streamer (no replay) or all.
        #[arg(long, default_value = "all", value_parser = ["all", "hot-standby", "wal-streamer"])]
        target: String,
        /// Connection: backup-host (conninfo) or wal-host (wal_conninfo).
        #[arg(long, default_value = "backup-host", value_parser = ["backup-host", "wal-host"])]
        source: String,
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Delete a backup (and the WALs no other backup needs).
    Delete {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id, name, or first/oldest, last/latest, last-full, last-failed.
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// Keep a backup beyond the retention policy, release it, or show its keep status.
    Keep {
        /// Keep the backup with every WAL from it on (`full`) or only what makes it consistent (`standalone`).
        #[arg(long = "target", value_parser = ["full", "standalone"])]
        target: Option<String>,
        /// Release the keep: retention applies again.
        #[arg(short = 'r', long = "release")]
        release: bool,
        /// Print the keep status: full, standalone or nokeep.
        #[arg(short = 's', long = "status")]
        status: bool,
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id, name, or first/oldest, last/latest, last-full.
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// Periodic maintenance of every server: archive-wal, receive-wal,
    /// check-backup, interrupted operations, retention policies.
    Cron {
        /// Accepted for compatibility (background processes get no descriptors).
        #[arg(long = "keep-descriptors", hide = true)]
        keep_descriptors: bool,
        /// How long cron waits for the servers' maintenance (each server
        /// runs in a process of its own); a server still busy then goes on
        /// in the background and later crons skip it until it ends
        /// (barman-rs only).
        #[arg(long = "max-wait", value_name = "SECONDS", default_value_t = 50)]
        max_wait: u64,
        /// Internal: run the maintenance of this one server, reporting to
        /// the cron that started this process.
        #[arg(long = "worker", value_name = "SERVER", hide = true)]
        worker: Option<String>,
    },
    /// Check the configuration, the server and the catalog of one or more servers.
    Check {
        /// Nagios plugin compatible output (exit 2 = CRITICAL).
        #[arg(long)]
        nagios: bool,
        /// Seconds every connection of the check may take (default check_timeout).
        #[arg(long = "check-timeout", value_name = "SECONDS")]
        check_timeout: Option<u64>,
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Rewrite the WAL catalogue (xlog.db) from the files in wals/.
    RebuildXlogdb {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    // -- listings (issue 7, item 6) --
    /// List the backups of one or more servers, newest first.
    #[command(alias = "list-backup")]
    ListBackups {
        /// Machine readable output: backup ids only.
        #[arg(long)]
        minimal: bool,
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Show the details of a backup.
    #[command(alias = "show-backups")]
    ShowBackup {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id, name, or first/oldest, last/latest, last-full, last-failed.
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// List the files of a backup (absolute paths, one per line).
    ListFiles {
        /// standalone (the backup and the WALs it needs), data (the
        /// backup's files), wal (the WALs from the backup to the next one or
        /// the end of the archive) or full (data + wal).
        #[arg(long, default_value = "standalone", value_parser = ["standalone", "data", "wal", "full"])]
        target: String,
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id, name, or first/oldest, last/latest, last-full, last-failed.
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// Show the status of one or more servers: PostgreSQL, archiving, backups.
    Status {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// List the barman processes working on a server (from its lock files).
    #[command(alias = "list-process")]
    ListProcesses {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
    },
    /// Check that the WAL archive can be used by a new cluster (it is empty,
    /// or holds nothing on timeline --timeline or later).
    CheckWalArchive {
        /// The earliest timeline whose WALs make the check fail.
        #[arg(long, value_name = "TIMELINE", value_parser = clap::value_parser!(u32).range(1..))]
        timeline: Option<u32>,
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
    },
    /// Geographical redundancy: the server's status for a passive node
    /// (DONE backups, WALs after LAST_WAL, configuration) as JSON; with
    /// `--primary`, ask the primary of a passive node and save its answer.
    SyncInfo {
        /// On a passive node: run sync-info on the primary (through
        /// primary_ssh_command) and save the answer to primary.info.
        #[arg(long)]
        primary: bool,
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// The last WAL the passive node has.
        #[arg(value_name = "LAST_WAL")]
        last_wal: Option<String>,
        /// Where LAST_WAL's line starts in xlog.db (a hint).
        #[arg(value_name = "LAST_POSITION")]
        last_position: Option<u64>,
    },
    /// Passive node: copy one backup from the primary.
    SyncBackup {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
        /// Backup id (as the primary lists it).
        #[arg(value_name = "BACKUP_ID")]
        backup_id: String,
    },
    /// Passive node: copy the WAL files the primary listed in its last sync-info.
    SyncWals {
        /// Server name.
        #[arg(value_name = "SERVER_NAME")]
        server: String,
    },
}

/// `barman recover SERVER BACKUP_ID DEST`.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// Server name.
    #[arg(value_name = "SERVER_NAME")]
    pub server: String,
    /// Backup id, name, or first/oldest, last/latest, last-full, auto.
    #[arg(value_name = "BACKUP_ID")]
    pub backup_id: String,
    /// Destination directory (the new PGDATA).
    #[arg(value_name = "DESTINATION_DIRECTORY")]
    pub destination: std::path::PathBuf,
    /// Recover to this time (time-zone aware; a naive time is local time).
    #[arg(long = "target-time", value_name = "TIMESTAMP")]
    pub target_time: Option<String>,
    /// Recover to this transaction id.
    #[arg(long = "target-xid", value_name = "XID")]
    pub target_xid: Option<String>,
    /// Recover to this LSN.
    #[arg(long = "target-lsn", value_name = "LSN")]
    pub target_lsn: Option<String>,
    /// Recover to this restore point (pg_create_restore_point).
    #[arg(long = "target-name", value_name = "NAME")]
    pub target_name: Option<String>,
    /// End recovery as soon as the backup is consistent.
    #[arg(long = "target-immediate")]
    pub target_immediate: bool,
    /// Recovery target timeline: a number, `current` or `latest`.
    #[arg(long = "target-tli", value_name = "TLI")]
    pub target_tli: Option<String>,
    /// Stop just before the target (time, xid or lsn) instead of just after.
    #[arg(long = "exclusive")]
    pub exclusive: bool,
    /// What PostgreSQL does at the target: pause, shutdown or promote.
    #[arg(long = "target-action", value_name = "ACTION")]
    pub target_action: Option<String>,
    /// Write standby.signal: the recovered server starts as a standby.
    #[arg(long = "standby-mode")]
    pub standby_mode: bool,
    /// Relocate a tablespace (repeatable).
    #[arg(long = "tablespace", value_name = "NAME:LOCATION")]
    pub tablespace: Vec<String>,
    /// Recover to a remote host: the ssh command reaching it (runs `barman agent` there).
    #[arg(long = "remote-ssh-command", value_name = "SSH_COMMAND")]
    pub remote_ssh_command: Option<String>,
    /// restore_command fetches WALs with barman get-wal / barman-wal-restore.
    #[arg(long = "get-wal", overrides_with = "no_get_wal")]
    pub get_wal: bool,
    /// Stage the WALs in the destination (the default unless recovery_options has get-wal).
    #[arg(long = "no-get-wal")]
    pub no_get_wal: bool,
    /// Also stage the WAL receive-wal has not archived yet: the complete
    /// segments in streaming/ and the .partial the last one continues in
    /// (get-wal's restore_command always asks for them with -P, except in
    /// standby mode).
    #[arg(long = "partial-wal")]
    pub partial_wal: bool,
    /// The restore_command to write (with --get-wal).
    #[arg(long = "restore-command", value_name = "COMMAND")]
    pub restore_command: Option<String>,
    /// Parallel copy workers.
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Accepted for compatibility (workers start at once).
    #[arg(long = "jobs-start-batch-period", value_name = "SECONDS", hide = true)]
    pub jobs_start_batch_period: Option<u64>,
    /// Accepted for compatibility (workers start at once).
    #[arg(long = "jobs-start-batch-size", value_name = "N", hide = true)]
    pub jobs_start_batch_size: Option<u32>,
    /// Bandwidth limit in KB/s (0: none).
    #[arg(long = "bwlimit", value_name = "KBPS", value_parser = bwlimit_parser())]
    pub bwlimit: Option<u64>,
    /// Compress the agent sessions with zstd.
    #[arg(
        long = "network-compression",
        overrides_with = "no_network_compression"
    )]
    pub network_compression: bool,
    /// Do not compress the agent sessions.
    #[arg(long = "no-network-compression")]
    pub no_network_compression: bool,
    /// Restore into a non-empty destination, rewriting only what differs.
    #[arg(long = "delta-restore", overrides_with = "no_delta_restore")]
    pub delta_restore: bool,
    /// Refuse a non-empty destination.
    #[arg(long = "no-delta-restore")]
    pub no_delta_restore: bool,
    /// Where PITR WALs are staged (default DEST/barman_wal).
    #[arg(long = "staging-wal-directory", value_name = "DIR")]
    pub staging_wal_directory: Option<std::path::PathBuf>,
    /// Barman's staging directory for compressed, encrypted or incremental
    /// backups (absolute). Accepted and checked, but barman-rs never makes a
    /// staging copy: compressed backups are unpacked straight into DEST.
    #[arg(long = "staging-path", value_name = "DIR")]
    pub staging_path: Option<std::path::PathBuf>,
    /// Where Barman would stage (local, or remote: needs
    /// --remote-ssh-command). Accepted and checked; barman-rs never stages.
    #[arg(long = "staging-location", value_name = "LOCATION", value_parser = ["local", "remote"])]
    pub staging_location: Option<String>,
    /// Deprecated (see --staging-path); accepted and checked, never used.
    #[arg(long = "local-staging-path", value_name = "DIR")]
    pub local_staging_path: Option<std::path::PathBuf>,
    /// Deprecated (see --staging-path): Barman's staging directory for
    /// compressed backups; accepted and checked, never used (no staging copy).
    #[arg(long = "recovery-staging-path", value_name = "DIR")]
    pub recovery_staging_path: Option<std::path::PathBuf>,
    /// File the recovery settings are appended to (default postgresql.auto.conf).
    #[arg(long = "recovery-conf-filename", value_name = "FILE")]
    pub recovery_conf_filename: Option<String>,
    /// Accepted for compatibility (copies are retried by the agent session).
    #[arg(long = "retry-times", value_name = "N", hide = true)]
    pub retry_times: Option<u32>,
    /// Accepted for compatibility.
    #[arg(long = "retry-sleep", value_name = "SECONDS", hide = true)]
    pub retry_sleep: Option<u64>,
    /// Accepted for compatibility.
    #[arg(long = "no-retry", hide = true)]
    pub no_retry: bool,
}

/// `--bwlimit KBPS`: at most [`MAX_BANDWIDTH_LIMIT_KBPS`](barman_core::config::MAX_BANDWIDTH_LIMIT_KBPS),
/// whose bytes per second fit (a larger value would wrap to a tiny limit, or none).
fn bwlimit_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(..=barman_core::config::MAX_BANDWIDTH_LIMIT_KBPS)
}
