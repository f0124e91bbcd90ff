//! The typed configuration of one server (§2.3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use barman_retention::RetentionPolicy;
use barman_wal::{Compression, CompressionLevel};

use super::ctx::Ctx;
use super::values::{
    BackupCompression, BackupCompressionFormat, BackupCompressionLocation, BackupMethod,
    BackupOption, CombineMode, CreateSlot, Encryption, RecoveryOption, RetentionPolicyMode,
    ReuseBackup, StagingLocation, WalRetentionPolicy, parse_csv, parse_hex_magic, parse_int,
    parse_interval, parse_kbps, parse_size, parse_slot_name, parse_tablespace_limits,
};

/// The effective configuration of one server: its section, inherited `[barman]`
/// values for inheritable options, then Barman's defaults. `None` = unset.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The section name.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `active` (false: diagnostics only).
    pub active: bool,
    /// Set by Barman itself when the configuration is unusable; never by the user.
    pub disabled: bool,
    /// `cluster` (defaults to the server name).
    pub cluster: String,
    /// `conninfo` (libpq string).
    pub conninfo: Option<String>,
    /// `streaming_conninfo` (defaults to `conninfo`).
    pub streaming_conninfo: Option<String>,
    /// `wal_conninfo` (see [`ServerConfig::effective_wal_conninfo`]).
    pub wal_conninfo: Option<String>,
    /// `wal_streaming_conninfo` (see [`ServerConfig::effective_wal_streaming_conninfo`]).
    pub wal_streaming_conninfo: Option<String>,
    /// `primary_conninfo` (backups from a standby).
    pub primary_conninfo: Option<String>,
    /// `primary_checkpoint_timeout` in seconds.
    pub primary_checkpoint_timeout: u64,
    /// `ssh_command`.
    pub ssh_command: Option<String>,
    /// `backup_method`.
    pub backup_method: BackupMethod,
    /// `backup_options` (`concurrent_backup` added when no strategy is given).
    pub backup_options: BTreeSet<BackupOption>,
    /// `reuse_backup` (unset behaves as `off`).
    pub reuse_backup: Option<ReuseBackup>,
    /// `immediate_checkpoint`.
    pub immediate_checkpoint: bool,
    /// `bandwidth_limit` in KB/s (0 or unset: no limit).
    pub bandwidth_limit: Option<u64>,
    /// `tablespace_bandwidth_limit`: tablespace name -> KB/s.
    pub tablespace_bandwidth_limit: Option<BTreeMap<String, u64>>,
    /// `network_compression` (rsync `-z`).
    pub network_compression: bool,
    /// `parallel_jobs` (>= 1).
    pub parallel_jobs: u32,
    /// `parallel_jobs_start_batch_period` in seconds.
    pub parallel_jobs_start_batch_period: u64,
    /// `parallel_jobs_start_batch_size`.
    pub parallel_jobs_start_batch_size: u32,
    /// `basebackup_retry_times`.
    pub basebackup_retry_times: u32,
    /// `basebackup_retry_sleep` in seconds.
    pub basebackup_retry_sleep: u64,
    /// `keepalive_interval` in seconds.
    pub keepalive_interval: u64,
    /// `check_timeout` in seconds.
    pub check_timeout: u64,
    /// `agent_timeout` in seconds (barman-rs only; 0: none): how long an
    /// agent session may stay silent while barman waits on it.
    pub agent_timeout: u64,
    /// `autogenerate_manifest`.
    pub autogenerate_manifest: bool,
    /// `backup_compression`.
    pub backup_compression: Option<BackupCompression>,
    /// `backup_compression_format` (unset behaves as `tar`).
    pub backup_compression_format: Option<BackupCompressionFormat>,
    /// `backup_compression_level`.
    pub backup_compression_level: Option<i32>,
    /// `backup_compression_location` (unset behaves as `client`).
    pub backup_compression_location: Option<BackupCompressionLocation>,
    /// `backup_compression_workers`.
    pub backup_compression_workers: Option<u32>,
    /// `compression` (WAL).
    pub compression: Option<Compression>,
    /// `compression` as written (lower-cased), e.g. `pigz`.
    pub compression_name: Option<String>,
    /// `compression_level`.
    pub compression_level: CompressionLevel,
    /// `custom_compression_filter` (deprecated).
    pub custom_compression_filter: Option<String>,
    /// `custom_decompression_filter` (deprecated).
    pub custom_decompression_filter: Option<String>,
    /// `custom_compression_magic` as written (validated `0x..` hex).
    pub custom_compression_magic: Option<String>,
    /// `encryption` (unset behaves as `none`).
    pub encryption: Option<Encryption>,
    /// `encryption_key_id`.
    pub encryption_key_id: Option<String>,
    /// `encryption_passphrase_command`.
    pub encryption_passphrase_command: Option<String>,
    /// `minimum_redundancy`.
    pub minimum_redundancy: u32,
    /// `retention_policy`.
    pub retention_policy: Option<RetentionPolicy>,
    /// `wal_retention_policy`.
    pub wal_retention_policy: WalRetentionPolicy,
    /// `retention_policy_mode`.
    pub retention_policy_mode: RetentionPolicyMode,
    /// `last_backup_maximum_age`.
    pub last_backup_maximum_age: Option<Duration>,
    /// `last_backup_minimum_size` in bytes.
    pub last_backup_minimum_size: Option<u64>,
    /// `last_wal_maximum_age`.
    pub last_wal_maximum_age: Option<Duration>,
    /// `max_incoming_wals_queue`.
    pub max_incoming_wals_queue: Option<u64>,
    /// `archiver` (forced on when neither archiver is configured).
    pub archiver: bool,
    /// `archiver_batch_size` (0 = unlimited).
    pub archiver_batch_size: u64,
    /// `streaming_archiver`.
    pub streaming_archiver: bool,
    /// `streaming_archiver_batch_size` (0 = unlimited).
    pub streaming_archiver_batch_size: u64,
    /// `streaming_archiver_name`.
    pub streaming_archiver_name: String,
    /// `streaming_backup_name`.
    pub streaming_backup_name: String,
    /// `slot_name`.
    pub slot_name: Option<String>,
    /// `create_slot`.
    pub create_slot: CreateSlot,
    /// `path_prefix`.
    pub path_prefix: Option<String>,
    /// `primary_ssh_command` (makes the server passive).
    pub primary_ssh_command: Option<String>,
    /// `forward_config_path`.
    pub forward_config_path: bool,
    /// `recovery_options`.
    pub recovery_options: BTreeSet<RecoveryOption>,
    /// `staging_path`.
    pub staging_path: Option<PathBuf>,
    /// `staging_location`.
    pub staging_location: StagingLocation,
    /// `combine_mode`.
    pub combine_mode: CombineMode,
    /// `worm_mode`.
    pub worm_mode: bool,
    /// `backup_directory`.
    pub backup_directory: PathBuf,
    /// `basebackups_directory`.
    pub basebackups_directory: PathBuf,
    /// `wals_directory`.
    pub wals_directory: PathBuf,
    /// `incoming_wals_directory`.
    pub incoming_wals_directory: PathBuf,
    /// `streaming_wals_directory`.
    pub streaming_wals_directory: PathBuf,
    /// `errors_directory`.
    pub errors_directory: PathBuf,
    /// `xlogdb_directory`.
    pub xlogdb_directory: PathBuf,
    /// Hook scripts, by option name (`pre_backup_script`, `post_wal_delete_retry_script`, ...).
    pub hook_scripts: BTreeMap<String, String>,
    /// Out-of-scope options (aws_*, azure_*, gcp_*, snapshot_*, cloud_*, ...) as written.
    pub extra: BTreeMap<String, String>,
}

/// The 20 hook script option names.
pub const HOOK_SCRIPT_KEYS: [&str; 20] = [
    "post_archive_retry_script",
    "post_archive_script",
    "post_backup_retry_script",
    "post_backup_script",
    "post_delete_retry_script",
    "post_delete_script",
    "post_recovery_retry_script",
    "post_recovery_script",
    "post_wal_delete_retry_script",
    "post_wal_delete_script",
    "pre_archive_retry_script",
    "pre_archive_script",
    "pre_backup_retry_script",
    "pre_backup_script",
    "pre_delete_retry_script",
    "pre_delete_script",
    "pre_recovery_retry_script",
    "pre_recovery_script",
    "pre_wal_delete_retry_script",
    "pre_wal_delete_script",
];

impl ServerConfig {
    /// The inactivity timeout of agent sessions (`agent_timeout`; `None`
    /// when 0).
    pub fn agent_timeout(&self) -> Option<Duration> {
        (self.agent_timeout > 0).then(|| Duration::from_secs(self.agent_timeout))
    }

    /// A passive node (geo-redundancy copy) has `primary_ssh_command` set.
    pub fn is_passive(&self) -> bool {
        self.primary_ssh_command.is_some()
    }

    /// The server's catalog directories, as configured.
    pub fn layout(&self) -> barman_catalog::ServerLayout {
        barman_catalog::ServerLayout::new(&self.backup_directory)
            .with_basebackups_directory(&self.basebackups_directory)
            .with_wals_directory(&self.wals_directory)
            .with_incoming_directory(&self.incoming_wals_directory)
            .with_streaming_directory(&self.streaming_wals_directory)
            .with_errors_directory(&self.errors_directory)
            .with_xlogdb_directory(&self.xlogdb_directory)
    }

    /// The server's catalog.
    pub fn catalog(&self) -> barman_catalog::Catalog {
        barman_catalog::Catalog::open(self.layout(), self.name.clone())
    }

    /// The conninfo used for WAL-related queries: `wal_conninfo`, else `conninfo`.
    pub fn effective_wal_conninfo(&self) -> Option<&str> {
        self.wal_conninfo.as_deref().or(self.conninfo.as_deref())
    }

    /// The conninfo for pg_receivewal: `wal_streaming_conninfo`, else `streaming_conninfo`.
    pub fn effective_wal_streaming_conninfo(&self) -> Option<&str> {
        self.wal_streaming_conninfo
            .as_deref()
            .or(self.streaming_conninfo.as_deref())
    }

    /// The hook script configured for option `key` (e.g. `pre_backup_script`).
    pub fn hook_script(&self, key: &str) -> Option<&str> {
        self.hook_scripts.get(key).map(String::as_str)
    }

    /// Refuses a bandwidth limit (`bwlimit`, the `--bwlimit` of a run, then
    /// `bandwidth_limit` and `tablespace_bandwidth_limit`) above
    /// [`MAX_BANDWIDTH_LIMIT_KBPS`](super::MAX_BANDWIDTH_LIMIT_KBPS), whose
    /// bytes per second would overflow (and wrap to a tiny limit or none).
    pub fn check_bandwidth_limits(&self, bwlimit: Option<u64>) -> crate::Result<()> {
        let tablespaces = self.tablespace_bandwidth_limit.iter().flatten();
        let limits = [
            ("--bwlimit", bwlimit),
            ("bandwidth_limit", self.bandwidth_limit),
        ]
        .into_iter()
        .filter_map(|(option, kbps)| Some((option.to_owned(), kbps?)))
        .chain(tablespaces.map(|(t, kbps)| (format!("tablespace_bandwidth_limit ({t})"), *kbps)));
        for (option, kbps) in limits {
            if kbps > super::MAX_BANDWIDTH_LIMIT_KBPS {
                return Err(crate::Error::BandwidthTooLarge {
                    server: self.name.clone(),
                    option,
                    kbps,
                });
            }
        }
        Ok(())
    }

    /// The custom compression magic as bytes, if set.
    pub fn custom_compression_magic_bytes(&self) -> Option<Vec<u8>> {
        self.custom_compression_magic
            .as_deref()
            .and_then(|m| parse_hex_magic(m).ok())
    }
}

/// Builds the typed server configuration from resolved strings.
pub(crate) fn build(c: &mut Ctx<'_>, barman_home: &Path) -> ServerConfig {
    let name = c.name.to_owned();
    let backup_directory = c
        .path("backup_directory")
        .unwrap_or_else(|| barman_home.join(&name));
    let wals_directory = c
        .path("wals_directory")
        .unwrap_or_else(|| backup_directory.join("wals"));
    let (backup_options, backup_method) = backup_strategy(c, &name);
    let WalCompression {
        compression_name,
        compression,
        custom_compression_magic,
    } = wal_compression(c);
    let explicit_archiver =
        c.r.explicit.contains("archiver") || c.r.explicit.contains("streaming_archiver");
    let archiver = c.bool("archiver", false);
    let streaming_archiver = c.bool("streaming_archiver", false);
    super::url_dirs::refuse_url_directories(c);
    let hook_scripts = HOOK_SCRIPT_KEYS
        .iter()
        .filter_map(|k| c.string(k).map(|v| ((*k).to_owned(), v)))
        .collect();
    ServerConfig {
        description: c.string("description"),
        active: c.bool("active", true),
        disabled: false,
        cluster: c.string("cluster").unwrap_or_else(|| name.clone()),
        conninfo: c.string("conninfo"),
        streaming_conninfo: c.string("streaming_conninfo"),
        wal_conninfo: c.string("wal_conninfo"),
        wal_streaming_conninfo: c.string("wal_streaming_conninfo"),
        primary_conninfo: c.string("primary_conninfo"),
        primary_checkpoint_timeout: c.int("primary_checkpoint_timeout", 0).unwrap_or(0),
        ssh_command: c.string("ssh_command"),
        backup_method,
        backup_options,
        reuse_backup: c.parse("reuse_backup", ReuseBackup::parse),
        immediate_checkpoint: c.bool("immediate_checkpoint", false),
        bandwidth_limit: c.parse("bandwidth_limit", parse_kbps),
        tablespace_bandwidth_limit: c.parse("tablespace_bandwidth_limit", parse_tablespace_limits),
        network_compression: c.bool("network_compression", false),
        parallel_jobs: c.int("parallel_jobs", 1).unwrap_or(1),
        parallel_jobs_start_batch_period: c.int("parallel_jobs_start_batch_period", 1).unwrap_or(1),
        parallel_jobs_start_batch_size: c.int("parallel_jobs_start_batch_size", 1).unwrap_or(10),
        basebackup_retry_times: c.int("basebackup_retry_times", 0).unwrap_or(0),
        basebackup_retry_sleep: c.int("basebackup_retry_sleep", 0).unwrap_or(30),
        keepalive_interval: c.int("keepalive_interval", 0).unwrap_or(60),
        check_timeout: c.int("check_timeout", 0).unwrap_or(30),
        agent_timeout: c.int("agent_timeout", 0).unwrap_or(600),
        autogenerate_manifest: c.bool("autogenerate_manifest", false),
        backup_compression: c.parse("backup_compression", BackupCompression::parse),
        backup_compression_format: c.parse("backup_compression_format", BackupCompressionFormat::parse),
        backup_compression_level: c.parse("backup_compression_level", |v| {
            parse_int(v, i64::from(i32::MIN), i64::from(i32::MAX))
        }),
        backup_compression_location: c.parse("backup_compression_location", BackupCompressionLocation::parse),
        backup_compression_workers: c.int("backup_compression_workers", 0),
        compression,
        compression_name,
        compression_level: c
            .parse("compression_level", |v| {
                v.parse::<CompressionLevel>().map_err(|_| "low, medium, high or an integer".to_owned())
            })
            .unwrap_or_default(),
        custom_compression_filter: c.string("custom_compression_filter"),
        custom_decompression_filter: c.string("custom_decompression_filter"),
        custom_compression_magic,
        encryption: c.parse("encryption", Encryption::parse),
        encryption_key_id: c.string("encryption_key_id"),
        encryption_passphrase_command: c.string("encryption_passphrase_command"),
        minimum_redundancy: c.int("minimum_redundancy", 0).unwrap_or(0),
        retention_policy: c.parse("retention_policy", |v| {
            v.parse::<RetentionPolicy>().map_err(|_| {
                "REDUNDANCY n or RECOVERY WINDOW OF n {DAY|WEEK|MONTH}[S] (n >= 1, case-insensitive)".to_owned()
            })
        }),
        wal_retention_policy: c.parse("wal_retention_policy", WalRetentionPolicy::parse).unwrap_or(WalRetentionPolicy::Main),
        retention_policy_mode: c
            .parse("retention_policy_mode", RetentionPolicyMode::parse)
            .unwrap_or(RetentionPolicyMode::Auto),
        last_backup_maximum_age: c.parse("last_backup_maximum_age", parse_interval),
        last_backup_minimum_size: c.parse("last_backup_minimum_size", parse_size),
        last_wal_maximum_age: c.parse("last_wal_maximum_age", parse_interval),
        max_incoming_wals_queue: c.int("max_incoming_wals_queue", 0),
        // Legacy rule: with neither archiver configured, the archiver is on.
        archiver: archiver || !explicit_archiver,
        archiver_batch_size: c.int("archiver_batch_size", 0).unwrap_or(0),
        streaming_archiver,
        streaming_archiver_batch_size: c.int("streaming_archiver_batch_size", 0).unwrap_or(0),
        streaming_archiver_name: c.string("streaming_archiver_name").unwrap_or_else(|| "barman_receive_wal".to_owned()),
        streaming_backup_name: c.string("streaming_backup_name").unwrap_or_else(|| "barman_streaming_backup".to_owned()),
        slot_name: c.parse("slot_name", parse_slot_name),
        create_slot: c.parse("create_slot", CreateSlot::parse).unwrap_or(CreateSlot::Manual),
        path_prefix: c.string("path_prefix"),
        primary_ssh_command: c.string("primary_ssh_command"),
        forward_config_path: c.bool("forward_config_path", false),
        recovery_options: c.parse("recovery_options", |v| parse_csv(v, RecoveryOption::parse)).unwrap_or_default(),
        staging_path: c.path("staging_path"),
        staging_location: c.parse("staging_location", StagingLocation::parse).unwrap_or(StagingLocation::Local),
        combine_mode: c.parse("combine_mode", CombineMode::parse).unwrap_or(CombineMode::Copy),
        worm_mode: c.bool("worm_mode", false),
        basebackups_directory: c.path("basebackups_directory").unwrap_or_else(|| backup_directory.join("base")),
        incoming_wals_directory: c.path("incoming_wals_directory").unwrap_or_else(|| backup_directory.join("incoming")),
        streaming_wals_directory: c
            .path("streaming_wals_directory")
            .unwrap_or_else(|| backup_directory.join("streaming")),
        errors_directory: c.path("errors_directory").unwrap_or_else(|| backup_directory.join("errors")),
        xlogdb_directory: c.path("xlogdb_directory").unwrap_or_else(|| wals_directory.clone()),
        wals_directory,
        backup_directory,
        hook_scripts,
        extra: c.r.raw.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect(),
        name,
    }
}

/// `backup_options` and `backup_method`, checked: not both strategies,
/// `exclusive_backup` deprecated; with neither, `concurrent_backup`
/// (warned about for the rsync methods).
fn backup_strategy(c: &mut Ctx<'_>, name: &str) -> (BTreeSet<BackupOption>, BackupMethod) {
    let mut backup_options = c
        .parse("backup_options", |v| parse_csv(v, BackupOption::parse))
        .unwrap_or_default();
    if backup_options.contains(&BackupOption::ConcurrentBackup)
        && backup_options.contains(&BackupOption::ExclusiveBackup)
    {
        let r = c.r;
        if let Some(v) = r.values.get("backup_options") {
            let allowed = format!(
                "comma separated list of: {}; not both concurrent_backup and exclusive_backup",
                BackupOption::allowed()
            );
            c.value_error("backup_options", v, allowed);
        }
    }
    if backup_options.contains(&BackupOption::ExclusiveBackup) {
        c.warn(
            "backup_options",
            "exclusive_backup is deprecated (PostgreSQL < 15 only)",
        );
    }
    let backup_method = c
        .parse("backup_method", BackupMethod::parse)
        .unwrap_or(BackupMethod::Rsync);
    if !backup_options.contains(&BackupOption::ConcurrentBackup)
        && !backup_options.contains(&BackupOption::ExclusiveBackup)
    {
        if matches!(
            backup_method,
            BackupMethod::Rsync | BackupMethod::LocalRsync
        ) {
            c.warnings.push(format!(
                "No backup strategy set for server '{name}' (using default 'concurrent_backup')."
            ));
        }
        backup_options.insert(BackupOption::ConcurrentBackup);
    }
    (backup_options, backup_method)
}

/// The WAL compression options: `compression` (its name as written, and
/// parsed), the custom compression's options (deprecated, both filters
/// required) and its magic.
struct WalCompression {
    compression_name: Option<String>,
    compression: Option<Compression>,
    custom_compression_magic: Option<String>,
}

fn wal_compression(c: &mut Ctx<'_>) -> WalCompression {
    let compression_name = c.string("compression").map(|s| s.to_ascii_lowercase());
    let compression = c.parse("compression", |v| {
        v.parse::<Compression>()
            .map_err(|_| Compression::ALLOWED.to_owned())
    });
    if matches!(compression_name.as_deref(), Some("pygzip" | "pybzip2")) {
        c.warn("compression", "this compression name is deprecated");
    }
    for key in super::keys::DEPRECATED_KEYS {
        if c.r.explicit.contains(key) {
            c.warn(key, "deprecated since Barman 3.17");
        }
    }
    if compression == Some(Compression::Custom)
        && (c.string("custom_compression_filter").is_none()
            || c.string("custom_decompression_filter").is_none())
    {
        c.rule(
            "compression",
            "compression = custom requires custom_compression_filter and custom_decompression_filter".to_owned(),
        );
    }
    let custom_compression_magic = c.parse("custom_compression_magic", |v| {
        parse_hex_magic(v).map(|_| v.trim().to_owned())
    });
    WalCompression {
        compression_name,
        compression,
        custom_compression_magic,
    }
}
