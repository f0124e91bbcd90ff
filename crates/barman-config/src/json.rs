//! `ServerConfig::to_json`: Barman's `diagnose` / `show-servers` key set and
//! value formats (booleans and integers typed, durations human-readable,
//! CSV options comma-joined, unset = `null`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use serde_json::Value;

use super::global::path_json;
use super::keys::{RAW_KEYS, RawDefault};
use super::server::{HOOK_SCRIPT_KEYS, ServerConfig};
use super::values::{human_duration, parse_bool};

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

fn opt_str<T: Display>(v: Option<&T>) -> Value {
    v.map_or(Value::Null, |t| Value::from(t.to_string()))
}

fn csv<T: Display>(set: &BTreeSet<T>) -> Value {
    let mut names: Vec<String> = set.iter().map(ToString::to_string).collect();
    names.sort();
    Value::from(names.join(","))
}

/// A raw option's JSON: typed like its Barman default when it parses that way.
fn raw_json(value: &str, default: RawDefault) -> Value {
    match default {
        RawDefault::Int(_) => value
            .trim()
            .parse::<i64>()
            .map_or_else(|_| value.into(), Value::from),
        RawDefault::Bool(_) => parse_bool(value).map_or_else(|_| value.into(), Value::from),
        RawDefault::Null | RawDefault::Str(_) => value.into(),
    }
}

impl ServerConfig {
    /// The server's effective configuration as Barman's `diagnose` prints it
    /// (`servers.<name>.config`), keys sorted.
    pub fn to_json(&self) -> Value {
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("active", self.active.into());
        put("cluster", self.cluster.as_str().into());
        put("description", opt(self.description.clone()));
        put("disabled", self.disabled.into());
        put("forward_config_path", self.forward_config_path.into());
        put("name", self.name.as_str().into());
        for key in HOOK_SCRIPT_KEYS {
            put(key, opt(self.hook_scripts.get(key).cloned()));
        }
        self.directories_json(&mut put);
        self.connections_json(&mut put);
        self.backup_json(&mut put);
        self.wal_compression_json(&mut put);
        self.retention_json(&mut put);
        for (key, default) in RAW_KEYS {
            let v = match (self.extra.get(*key), default) {
                (Some(v), d) => raw_json(v, *d),
                (None, RawDefault::Null) => Value::Null,
                (None, RawDefault::Int(n)) => (*n).into(),
                (None, RawDefault::Bool(b)) => (*b).into(),
                (None, RawDefault::Str(s)) => (*s).into(),
            };
            put(key, v);
        }
        for (key, value) in &self.extra {
            if !RAW_KEYS.iter().any(|(k, _)| k == key) {
                put(key, value.as_str().into());
            }
        }
        Value::Object(m.into_iter().collect())
    }

    /// The server's directories.
    fn directories_json(&self, put: &mut dyn FnMut(&str, Value)) {
        put("backup_directory", path_json(&self.backup_directory));
        put(
            "basebackups_directory",
            path_json(&self.basebackups_directory),
        );
        put("errors_directory", path_json(&self.errors_directory));
        put(
            "incoming_wals_directory",
            path_json(&self.incoming_wals_directory),
        );
        put(
            "streaming_wals_directory",
            path_json(&self.streaming_wals_directory),
        );
        put("wals_directory", path_json(&self.wals_directory));
        put("xlogdb_directory", path_json(&self.xlogdb_directory));
    }

    /// How the server is reached: connections, commands, slots, the archivers.
    fn connections_json(&self, put: &mut dyn FnMut(&str, Value)) {
        put("archiver", self.archiver.into());
        put("archiver_batch_size", self.archiver_batch_size.into());
        put("check_timeout", self.check_timeout.into());
        put("conninfo", opt(self.conninfo.clone()));
        put("create_slot", self.create_slot.as_str().into());
        put("keepalive_interval", self.keepalive_interval.into());
        put("max_incoming_wals_queue", opt(self.max_incoming_wals_queue));
        put("path_prefix", opt(self.path_prefix.clone()));
        put(
            "primary_checkpoint_timeout",
            self.primary_checkpoint_timeout.into(),
        );
        put("primary_conninfo", opt(self.primary_conninfo.clone()));
        put("primary_ssh_command", opt(self.primary_ssh_command.clone()));
        put("slot_name", opt(self.slot_name.clone()));
        put("ssh_command", opt(self.ssh_command.clone()));
        put("streaming_archiver", self.streaming_archiver.into());
        put(
            "streaming_archiver_batch_size",
            self.streaming_archiver_batch_size.into(),
        );
        put(
            "streaming_archiver_name",
            self.streaming_archiver_name.as_str().into(),
        );
        put(
            "streaming_backup_name",
            self.streaming_backup_name.as_str().into(),
        );
        put("streaming_conninfo", opt(self.streaming_conninfo.clone()));
        put("wal_conninfo", opt(self.wal_conninfo.clone()));
        put(
            "wal_streaming_conninfo",
            opt(self.wal_streaming_conninfo.clone()),
        );
    }

    /// How backups are taken (and recovered): method, compression, parallelism, bandwidth.
    fn backup_json(&self, put: &mut dyn FnMut(&str, Value)) {
        put("autogenerate_manifest", self.autogenerate_manifest.into());
        put(
            "backup_compression",
            opt_str(self.backup_compression.as_ref()),
        );
        put(
            "backup_compression_format",
            opt_str(self.backup_compression_format.as_ref()),
        );
        put(
            "backup_compression_level",
            opt(self.backup_compression_level),
        );
        put(
            "backup_compression_location",
            opt_str(self.backup_compression_location.as_ref()),
        );
        put(
            "backup_compression_workers",
            opt(self.backup_compression_workers),
        );
        put("backup_method", self.backup_method.as_str().into());
        put("backup_options", csv(&self.backup_options));
        put("bandwidth_limit", opt(self.bandwidth_limit));
        put("basebackup_retry_sleep", self.basebackup_retry_sleep.into());
        put("basebackup_retry_times", self.basebackup_retry_times.into());
        put("combine_mode", self.combine_mode.as_str().into());
        put("immediate_checkpoint", self.immediate_checkpoint.into());
        put("network_compression", self.network_compression.into());
        put("parallel_jobs", self.parallel_jobs.into());
        put(
            "parallel_jobs_start_batch_period",
            self.parallel_jobs_start_batch_period.into(),
        );
        put(
            "parallel_jobs_start_batch_size",
            self.parallel_jobs_start_batch_size.into(),
        );
        put("recovery_options", csv(&self.recovery_options));
        put("reuse_backup", opt_str(self.reuse_backup.as_ref()));
        put("staging_location", self.staging_location.as_str().into());
        put(
            "staging_path",
            self.staging_path.as_deref().map_or(Value::Null, path_json),
        );
        put(
            "tablespace_bandwidth_limit",
            self.tablespace_bandwidth_limit
                .as_ref()
                .map_or(Value::Null, |t| {
                    Value::Object(
                        t.iter()
                            .map(|(k, v)| (k.clone(), Value::from(*v)))
                            .collect(),
                    )
                }),
        );
    }

    /// How WAL files are compressed and encrypted.
    fn wal_compression_json(&self, put: &mut dyn FnMut(&str, Value)) {
        put("compression", opt(self.compression_name.clone()));
        put(
            "compression_level",
            match self.compression_level {
                barman_wal::CompressionLevel::Level(n) => n.into(),
                other => other.to_string().into(),
            },
        );
        put(
            "custom_compression_filter",
            opt(self.custom_compression_filter.clone()),
        );
        put(
            "custom_compression_magic",
            opt(self.custom_compression_magic.clone()),
        );
        put(
            "custom_decompression_filter",
            opt(self.custom_decompression_filter.clone()),
        );
        put("encryption", opt_str(self.encryption.as_ref()));
        put("encryption_key_id", opt(self.encryption_key_id.clone()));
        put(
            "encryption_passphrase_command",
            opt(self.encryption_passphrase_command.clone()),
        );
    }

    /// Retention, and the ages and sizes `check` compares.
    fn retention_json(&self, put: &mut dyn FnMut(&str, Value)) {
        put(
            "last_backup_maximum_age",
            opt(self.last_backup_maximum_age.map(human_duration)),
        );
        put(
            "last_backup_minimum_size",
            opt(self.last_backup_minimum_size),
        );
        put(
            "last_wal_maximum_age",
            opt(self.last_wal_maximum_age.map(human_duration)),
        );
        put("minimum_redundancy", self.minimum_redundancy.into());
        put("retention_policy", opt_str(self.retention_policy.as_ref()));
        put(
            "retention_policy_mode",
            self.retention_policy_mode.as_str().into(),
        );
        put(
            "wal_retention_policy",
            self.wal_retention_policy.as_str().into(),
        );
        put("worm_mode", self.worm_mode.into());
    }
}
