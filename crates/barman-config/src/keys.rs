//! The option tables: which keys exist, their scope and Barman's defaults.

/// Where an option may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `[barman]` (inherited by servers) or a server section.
    Global,
    /// A server (or model) section only.
    Server,
}

/// A server option: name, scope, default (a `%(name)s` template, before parsing).
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) scope: Scope,
    pub(crate) default: Option<&'static str>,
}

const fn g(name: &'static str, default: Option<&'static str>) -> Key {
    Key {
        name,
        scope: Scope::Global,
        default,
    }
}

const fn s(name: &'static str, default: Option<&'static str>) -> Key {
    Key {
        name,
        scope: Scope::Server,
        default,
    }
}

/// Every typed server option, sorted by name (Barman resolves them in this order,
/// which matters for `%(name)s` references to earlier options).
pub(crate) const SERVER_KEYS: &[Key] = &[
    s("active", Some("true")),
    // barman-rs only (Barman has no agent): not in `diagnose`.
    g("agent_timeout", Some("600")),
    g("archiver", None),
    g("archiver_batch_size", Some("0")),
    g("autogenerate_manifest", Some("false")),
    g("backup_compression", None),
    g("backup_compression_format", None),
    g("backup_compression_level", None),
    g("backup_compression_location", None),
    g("backup_compression_workers", None),
    s("backup_directory", Some("%(barman_home)s/%(name)s")),
    g("backup_method", Some("rsync")),
    g("backup_options", Some("")),
    g("bandwidth_limit", None),
    g("basebackup_retry_sleep", Some("30")),
    g("basebackup_retry_times", Some("0")),
    s("basebackups_directory", Some("%(backup_directory)s/base")),
    g("check_timeout", Some("30")),
    s("cluster", Some("%(name)s")),
    g("combine_mode", Some("copy")),
    g("compression", None),
    g("compression_level", Some("medium")),
    s("conninfo", None),
    g("create_slot", Some("manual")),
    g("custom_compression_filter", None),
    g("custom_compression_magic", None),
    g("custom_decompression_filter", None),
    s("description", None),
    g("encryption", None),
    g("encryption_key_id", None),
    g("encryption_passphrase_command", None),
    s("errors_directory", Some("%(backup_directory)s/errors")),
    g("forward_config_path", Some("false")),
    g("immediate_checkpoint", Some("false")),
    s(
        "incoming_wals_directory",
        Some("%(backup_directory)s/incoming"),
    ),
    s("keepalive_interval", Some("60")),
    g("last_backup_maximum_age", None),
    g("last_backup_minimum_size", None),
    g("last_wal_maximum_age", None),
    g("max_incoming_wals_queue", None),
    g("minimum_redundancy", Some("0")),
    g("network_compression", Some("false")),
    g("parallel_jobs", Some("1")),
    g("parallel_jobs_start_batch_period", Some("1")),
    g("parallel_jobs_start_batch_size", Some("10")),
    g("path_prefix", None),
    g("post_archive_retry_script", None),
    g("post_archive_script", None),
    g("post_backup_retry_script", None),
    g("post_backup_script", None),
    g("post_delete_retry_script", None),
    g("post_delete_script", None),
    g("post_recovery_retry_script", None),
    g("post_recovery_script", None),
    g("post_wal_delete_retry_script", None),
    g("post_wal_delete_script", None),
    g("pre_archive_retry_script", None),
    g("pre_archive_script", None),
    g("pre_backup_retry_script", None),
    g("pre_backup_script", None),
    g("pre_delete_retry_script", None),
    g("pre_delete_script", None),
    g("pre_recovery_retry_script", None),
    g("pre_recovery_script", None),
    g("pre_wal_delete_retry_script", None),
    g("pre_wal_delete_script", None),
    s("primary_checkpoint_timeout", Some("0")),
    s("primary_conninfo", None),
    g("primary_ssh_command", None),
    g("recovery_options", Some("")),
    g("retention_policy", None),
    g("retention_policy_mode", Some("auto")),
    g("reuse_backup", None),
    g("slot_name", None),
    s("ssh_command", None),
    g("staging_location", Some("local")),
    g("staging_path", None),
    g("streaming_archiver", None),
    g("streaming_archiver_batch_size", Some("0")),
    g("streaming_archiver_name", Some("barman_receive_wal")),
    g("streaming_backup_name", Some("barman_streaming_backup")),
    s("streaming_conninfo", Some("%(conninfo)s")),
    s(
        "streaming_wals_directory",
        Some("%(backup_directory)s/streaming"),
    ),
    g("tablespace_bandwidth_limit", None),
    s("wal_conninfo", None),
    g("wal_retention_policy", Some("main")),
    s("wal_streaming_conninfo", None),
    s("wals_directory", Some("%(backup_directory)s/wals")),
    g("worm_mode", Some("false")),
    g("xlogdb_directory", Some("%(wals_directory)s")),
];

/// The JSON default of an option we accept but do not interpret.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawDefault {
    /// `null`.
    Null,
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'static str),
}

/// Options accepted and kept as raw strings (cloud, snapshot, staging extras),
/// with the default Barman 3.20 shows in `diagnose`.
pub(crate) const RAW_KEYS: &[(&str, RawDefault)] = &[
    ("aws_await_snapshots_timeout", RawDefault::Int(3600)),
    ("aws_check_object_lock", RawDefault::Bool(false)),
    ("aws_encryption", RawDefault::Null),
    ("aws_profile", RawDefault::Null),
    ("aws_read_timeout", RawDefault::Null),
    ("aws_region", RawDefault::Null),
    ("aws_snapshot_lock_cool_off_period", RawDefault::Null),
    ("aws_snapshot_lock_duration", RawDefault::Null),
    ("aws_snapshot_lock_expiration_date", RawDefault::Null),
    ("aws_snapshot_lock_mode", RawDefault::Null),
    ("aws_sse_customer_key", RawDefault::Null),
    ("aws_sse_kms_key_id", RawDefault::Null),
    ("azure_credential", RawDefault::Null),
    ("azure_resource_group", RawDefault::Null),
    ("azure_subscription_id", RawDefault::Null),
    ("cloud_delete_batch_size", RawDefault::Null),
    (
        "cloud_staging_directory",
        RawDefault::Str("/tmp/barman/cloud-staging"),
    ),
    ("cloud_staging_max_size", RawDefault::Int(32_212_254_720)),
    (
        "cloud_upload_max_archive_size",
        RawDefault::Int(107_374_182_400),
    ),
    ("cloud_upload_min_chunk_size", RawDefault::Null),
    ("cloud_wal_archive_parallel", RawDefault::Int(0)),
    ("cloud_wal_restore_parallel", RawDefault::Int(0)),
    ("gcp_project", RawDefault::Null),
    ("gcp_zone", RawDefault::Null),
    ("local_staging_path", RawDefault::Null),
    ("recovery_staging_path", RawDefault::Null),
    ("snapshot_disks", RawDefault::Null),
    ("snapshot_gcp_project", RawDefault::Null),
    ("snapshot_instance", RawDefault::Null),
    ("snapshot_provider", RawDefault::Null),
    ("snapshot_zone", RawDefault::Null),
    ("warehousepg_dbid", RawDefault::Null),
];

/// Prefixes of out-of-scope options that are accepted as raw strings.
const RAW_PREFIXES: &[&str] = &["aws_", "azure_", "gcp_", "snapshot_", "cloud_"];

/// Options only valid in `[barman]`.
pub(crate) const GLOBAL_KEYS: &[&str] = &[
    "barman_home",
    "barman_user",
    "barman_lock_directory",
    "lock_directory_cleanup",
    "config_changes_queue",
    "configuration_files_directory",
    "log_file",
    "log_level",
    "log_format",
];

/// Options deprecated by Barman (accepted, with a warning).
pub(crate) const DEPRECATED_KEYS: &[&str] = &[
    "custom_compression_filter",
    "custom_decompression_filter",
    "custom_compression_magic",
];

/// The typed server option called `name`.
pub(crate) fn server_key(name: &str) -> Option<&'static Key> {
    SERVER_KEYS.iter().find(|k| k.name == name)
}

/// Whether `name` is kept as a raw string.
pub(crate) fn is_raw_key(name: &str) -> bool {
    RAW_KEYS.iter().any(|(k, _)| *k == name) || RAW_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys_are_sorted_and_unique() {
        assert!(SERVER_KEYS.windows(2).all(|w| w[0].name < w[1].name));
        assert!(RAW_KEYS.windows(2).all(|w| w[0].0 < w[1].0));
        // The 20 hook scripts are all there.
        let hooks = SERVER_KEYS
            .iter()
            .filter(|k| k.name.ends_with("_script"))
            .count();
        assert_eq!(hooks, 20);
    }
}
