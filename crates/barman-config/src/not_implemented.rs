//! Options barman-rs accepts (Barman 3.20 has them, so a Barman
//! configuration loads) but does not act on yet.
//!
//! A server that sets one of [`NOT_IMPLEMENTED`] is refused by `check`,
//! `backup`, `archive-wal`, `cron` and `diagnose`, naming the option, rather
//! than silently getting what barman-rs does without it (an uncompressed,
//! unencrypted backup, say). Implementing a feature removes its rows.
//! [`ACCEPTED_AND_IGNORED`] lists the options that stay accepted because
//! ignoring them changes nothing barman-rs does.

use super::server::ServerConfig;
use super::values::{BackupMethod, Encryption};
use crate::{Error, Result};

/// `(option, what barman-rs does not do yet)`. A name ending in `*` is a
/// prefix (the cloud and snapshot option families). An option counts as
/// set when it has a value that asks for the missing feature (see
/// [`ServerConfig::not_implemented`]).
pub const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    ("backup_method", "snapshot and local-to-cloud backups"),
    ("encryption", "GPG encryption of backups and WAL files"),
    (
        "encryption_key_id",
        "GPG encryption of backups and WAL files",
    ),
    (
        "encryption_passphrase_command",
        "decryption of GPG-encrypted backups and WAL files",
    ),
    (
        "primary_checkpoint_timeout",
        "a checkpoint forced on the primary when a standby's backup waits for its last WAL",
    ),
    ("warehousepg_dbid", "WarehousePG backups"),
    ("aws_*", "cloud snapshots and cloud storage"),
    ("azure_*", "cloud snapshots and cloud storage"),
    ("cloud_*", "cloud storage (local-to-cloud)"),
    ("gcp_*", "cloud snapshots"),
    ("snapshot_*", "cloud snapshots"),
];

/// `(option, why ignoring it is harmless)`: Barman options barman-rs accepts
/// and does not act on, documented rather than refused.
pub const ACCEPTED_AND_IGNORED: &[(&str, &str)] = &[
    (
        "keepalive_interval",
        "backup sessions need no keepalive query: the backup connection is never idle long enough to be dropped",
    ),
    (
        "parallel_jobs_start_batch_period",
        "copy workers start at once (their start is not rate-limited)",
    ),
    (
        "parallel_jobs_start_batch_size",
        "copy workers start at once (their start is not rate-limited)",
    ),
    (
        "combine_mode",
        "barman-rs combines an incremental chain itself while it streams into the destination: every reconstructed file is written (Barman's `copy`); `link` and `clone` only apply to pg_combinebackup's staging copy, which barman-rs never makes",
    ),
    (
        "staging_path",
        "barman-rs restores compressed backups by unpacking them as they stream into the destination: no staging copy is made",
    ),
    (
        "staging_location",
        "barman-rs restores compressed backups by unpacking them as they stream into the destination (locally, or through the agent of a remote recovery): no staging copy is made",
    ),
    (
        "local_staging_path",
        "deprecated staging option (see staging_path)",
    ),
    (
        "recovery_staging_path",
        "deprecated staging option (see staging_path)",
    ),
];

impl ServerConfig {
    /// The options of this server in [`NOT_IMPLEMENTED`] that are set, as
    /// `(option, value)`, in the table's order.
    pub fn not_implemented(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (option, _) in NOT_IMPLEMENTED {
            if let Some(prefix) = option.strip_suffix('*') {
                found.extend(
                    self.extra
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix))
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            } else if let Some(value) = self.set_value(option) {
                found.push(((*option).to_owned(), value));
            }
        }
        for (option, value) in &mut found {
            if option.contains("customer_key") || option.contains("password") {
                "***".clone_into(value);
            }
        }
        found
    }

    /// [`Error::NotImplemented`] naming the first option of
    /// [`not_implemented`](Self::not_implemented), if any.
    pub fn refuse_not_implemented(&self) -> Result<()> {
        match self.not_implemented().into_iter().next() {
            None => Ok(()),
            Some((option, value)) => Err(Error::NotImplemented {
                server: self.name.clone(),
                missing: missing(&option).to_owned(),
                option,
                value,
            }),
        }
    }

    /// The value of a fixed-name row of [`NOT_IMPLEMENTED`] when it asks
    /// for the missing feature.
    fn set_value(&self, option: &str) -> Option<String> {
        fn text<T: ToString>(v: Option<&T>) -> Option<String> {
            v.map(ToString::to_string)
        }
        match option {
            "backup_method" => matches!(
                self.backup_method,
                BackupMethod::Snapshot | BackupMethod::LocalToCloud
            )
            .then(|| self.backup_method.to_string()),
            "encryption" => text(self.encryption.as_ref().filter(|e| **e != Encryption::None)),
            "encryption_key_id" => self.encryption_key_id.clone(),
            "encryption_passphrase_command" => self.encryption_passphrase_command.clone(),
            "primary_checkpoint_timeout" => {
                text(Some(&self.primary_checkpoint_timeout).filter(|t| **t != 0))
            }
            other => self.extra.get(other).cloned(),
        }
    }
}

/// What a row of [`NOT_IMPLEMENTED`] says is missing, for `option` (a
/// prefix row matches the options it covers).
fn missing(option: &str) -> &'static str {
    NOT_IMPLEMENTED
        .iter()
        .find(|(name, _)| match name.strip_suffix('*') {
            Some(prefix) => option.starts_with(prefix),
            None => *name == option,
        })
        .map_or("", |(_, why)| why)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    fn server(options: &str) -> ServerConfig {
        let text = format!("[barman]\nbarman_home = /b\n[pg]\nconninfo = host=pg\n{options}\n");
        let config = Config::parse_str(&text, Path::new("/etc/barman.conf")).unwrap();
        config.server("pg").unwrap().clone()
    }

    #[test]
    fn a_plain_server_sets_nothing_unimplemented() {
        let pg = server(
            "backup_method = postgres\nencryption = none\nkeepalive_interval = 5\ncombine_mode = link",
        );
        assert_eq!(pg.not_implemented(), Vec::<(String, String)>::new());
        assert!(pg.refuse_not_implemented().is_ok());
    }

    #[test]
    fn every_row_is_found_and_named() {
        for (option, value) in [
            ("backup_method", "snapshot"),
            ("backup_method", "local-to-cloud"),
            ("encryption", "gpg"),
            ("encryption_key_id", "ABC"),
            ("encryption_passphrase_command", "cat /k"),
            ("primary_checkpoint_timeout", "60"),
            ("warehousepg_dbid", "2"),
            ("aws_profile", "prod"),
            ("azure_credential", "default"),
            ("cloud_staging_directory", "/s"),
            ("gcp_project", "p"),
            ("snapshot_instance", "i"),
            ("aws_sse_customer_key", "s3cret"),
        ] {
            let set = format!("{option} = {value}");
            // A secret is not shown.
            let value = if value == "s3cret" { "***" } else { value };
            let pg = server(&set);
            assert_eq!(
                pg.not_implemented(),
                [(option.to_owned(), value.to_owned())],
                "{set}"
            );
            let err = pg.refuse_not_implemented().unwrap_err().to_string();
            assert!(
                err.contains(&format!("{option} = {value}"))
                    && err.contains("server `pg`")
                    && err.contains("not implemented"),
                "{set}: {err}"
            );
            assert!(!missing(option).is_empty(), "{option}");
        }
    }

    #[test]
    fn catalog_directories_given_as_urls_are_configuration_errors() {
        for url in [
            "s3://bucket/pg",
            "gs://bucket/pg",
            "https://acct.blob.core.windows.net/container/pg",
            "azure://container/pg",
        ] {
            for key in [
                "basebackups_directory",
                "wals_directory",
                "backup_directory",
            ] {
                let text = format!("[barman]\nbarman_home = /b\n[pg]\n{key} = {url}\n");
                let err = Config::parse_str(&text, Path::new("/etc/barman.conf"))
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("/etc/barman.conf:4: [pg]")
                        && err.contains(&format!("{key} = {url}"))
                        && err.contains("not implemented"),
                    "{err}"
                );
            }
        }
        for path in ["/srv/s3://x", "relative/dir", "/srv/barman"] {
            assert!(!crate::url_dirs::is_url(path), "{path}");
        }
    }

    #[test]
    fn the_tables_name_real_options_once() {
        let mut names: Vec<&str> = NOT_IMPLEMENTED
            .iter()
            .chain(ACCEPTED_AND_IGNORED)
            .map(|(n, _)| *n)
            .collect();
        for name in &names {
            let known = match name.strip_suffix('*') {
                Some(prefix) => super::super::keys::is_raw_key(&format!("{prefix}x")),
                None => {
                    super::super::keys::server_key(name).is_some()
                        || super::super::keys::is_raw_key(name)
                }
            };
            assert!(known, "{name} is not an option barman-rs parses");
        }
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len, "an option is listed twice");
    }
}
