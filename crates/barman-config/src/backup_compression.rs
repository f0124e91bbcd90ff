//! `backup_compression*`: compressed base backups of `backup_method =
//! postgres` (Barman 3.20's `compression:*PgBaseBackupCompressionOption`
//! and `backup_executor:*.validate_configuration`).
//!
//! Barman validates these options when it builds the server and, finding
//! an issue, disables the server: `check` shows `configuration: FAILED`
//! with the messages, `backup` refuses. [`ServerConfig::backup_compression_issues`]
//! gives the same messages; the PostgreSQL version rule needs the live
//! server's version, so callers pass it once connected.

use crate::server::ServerConfig;
use crate::values::{
    BackupCompression, BackupCompressionFormat, BackupCompressionLocation, BackupMethod,
};

/// The first PostgreSQL version (`server_version_num`) with server-side
/// compression and the `COMPRESSION` option of `BASE_BACKUP`.
pub const SERVER_COMPRESSION_MIN_VERSION: u32 = 150_000;

/// The compression of a base backup, resolved from the options (unset
/// format and location are Barman's defaults: `tar`, `client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupCompressionSettings {
    /// The algorithm (`none`: an uncompressed tar backup).
    pub algorithm: BackupCompression,
    /// tar archives or plain files.
    pub format: BackupCompressionFormat,
    /// Who compresses.
    pub location: BackupCompressionLocation,
    /// `backup_compression_level`, if set.
    pub level: Option<i32>,
    /// `backup_compression_workers`, if set (zstd only).
    pub workers: Option<u32>,
}

impl BackupCompressionSettings {
    /// The suffix of the stored archives: `tar.gz`, `tar.lz4`, `tar.zst`
    /// or `tar` (`compression:*Compression.file_extension`).
    pub fn file_extension(&self) -> &'static str {
        file_extension(self.algorithm)
    }
}

/// The suffix of archives of `algorithm` ([`BackupCompressionSettings::file_extension`]).
pub fn file_extension(algorithm: BackupCompression) -> &'static str {
    match algorithm {
        BackupCompression::Gzip => "tar.gz",
        BackupCompression::Lz4 => "tar.lz4",
        BackupCompression::Zstd => "tar.zst",
        BackupCompression::None => "tar",
    }
}

/// The levels `algorithm` accepts, inclusive (`-1` too for gzip: its
/// default).
pub fn level_range(algorithm: BackupCompression) -> (i32, i32) {
    match algorithm {
        BackupCompression::Gzip => (1, 9),
        BackupCompression::Lz4 => (0, 12),
        BackupCompression::Zstd => (-131_072, 22),
        BackupCompression::None => (0, 0),
    }
}

impl ServerConfig {
    /// The compression of this server's base backups, `None` when
    /// `backup_compression` is unset.
    pub fn backup_compression_settings(&self) -> Option<BackupCompressionSettings> {
        Some(BackupCompressionSettings {
            algorithm: self.backup_compression?,
            format: self
                .backup_compression_format
                .unwrap_or(BackupCompressionFormat::Tar),
            location: self
                .backup_compression_location
                .unwrap_or(BackupCompressionLocation::Client),
            level: self.backup_compression_level,
            workers: self.backup_compression_workers,
        })
    }

    /// Barman's validation messages of the `backup_compression*` options,
    /// in Barman's order. `pg_version` is the server's
    /// `server_version_num` when known: with it, `location = server` also
    /// needs PostgreSQL 15 or later. Empty when all is well (or
    /// `backup_compression` is unset: the other options are then unused).
    pub fn backup_compression_issues(&self, pg_version: Option<u32>) -> Vec<String> {
        let mut issues = Vec::new();
        let Some(algorithm) = self.backup_compression else {
            return issues;
        };
        match self.backup_method {
            BackupMethod::Rsync | BackupMethod::LocalRsync => {
                issues.push(format!(
                    "backup_compression option is not supported by {} backup_method",
                    self.backup_method
                ));
                return issues;
            }
            BackupMethod::Snapshot => {
                issues.push(
                    "backup_compression option is not supported by snapshot backup_method"
                        .to_owned(),
                );
                return issues;
            }
            BackupMethod::Postgres | BackupMethod::LocalToCloud => {}
        }
        let location = self.backup_compression_location;
        if location == Some(BackupCompressionLocation::Server)
            && pg_version.is_some_and(|v| v < SERVER_COMPRESSION_MIN_VERSION)
        {
            issues.push(
                "backup_compression_location = server requires PostgreSQL 15 or greater".to_owned(),
            );
        }
        if self.backup_compression_format == Some(BackupCompressionFormat::Plain)
            && location != Some(BackupCompressionLocation::Server)
        {
            issues.push(format!(
                "backup_compression_format plain is not compatible with backup_compression_location {}",
                location.map_or_else(|| "None".to_owned(), |l| l.to_string())
            ));
        }
        if let Some(level) = self.backup_compression_level {
            let (min, max) = level_range(algorithm);
            let gzip_default = algorithm == BackupCompression::Gzip && level == -1;
            if !gzip_default && !(min..=max).contains(&level) {
                issues.push(format!(
                    "backup_compression_level {level} unsupported by compression algorithm. \
                     '{algorithm}' expects a compression level between {min} and {max}{}",
                    if algorithm == BackupCompression::Gzip {
                        " (-1 means default)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if self.backup_compression_workers.is_some() && algorithm != BackupCompression::Zstd {
            issues.push(format!(
                "backup_compression_workers is not compatible with compression {algorithm}"
            ));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    fn server(options: &str) -> ServerConfig {
        let text = format!(
            "[barman]\nbarman_home = /b\n[pg]\nconninfo = host=pg\nbackup_method = postgres\n{options}\n"
        );
        let config = Config::parse_str(&text, Path::new("/etc/barman.conf")).unwrap();
        config.server("pg").unwrap().clone()
    }

    #[test]
    fn good_settings_have_no_issue() {
        for options in [
            "",
            "backup_compression = gzip",
            "backup_compression = gzip\nbackup_compression_level = -1",
            "backup_compression = gzip\nbackup_compression_level = 9",
            "backup_compression = lz4\nbackup_compression_level = 0",
            "backup_compression = lz4\nbackup_compression_level = 12\nbackup_compression_location = server",
            "backup_compression = zstd\nbackup_compression_level = -131072\nbackup_compression_workers = 4",
            "backup_compression = zstd\nbackup_compression_format = plain\nbackup_compression_location = server",
            // Without backup_compression the others are unused.
            "backup_compression_workers = 3\nbackup_compression_format = plain",
        ] {
            let pg = server(options);
            assert_eq!(
                pg.backup_compression_issues(Some(150_000)),
                Vec::<String>::new(),
                "{options}"
            );
        }
        let pg = server("backup_compression = zstd");
        let settings = pg.backup_compression_settings().unwrap();
        assert_eq!(settings.format, BackupCompressionFormat::Tar);
        assert_eq!(settings.location, BackupCompressionLocation::Client);
        assert_eq!(settings.file_extension(), "tar.zst");
        assert_eq!(server("").backup_compression_settings(), None);
    }

    #[test]
    fn bad_settings_get_barmans_messages() {
        for (options, version, expected) in [
            (
                "backup_method = rsync\nssh_command = ssh pg\nbackup_compression = gzip",
                None,
                vec!["backup_compression option is not supported by rsync backup_method"],
            ),
            (
                "backup_compression = lz4\nbackup_compression_workers = 2",
                None,
                vec!["backup_compression_workers is not compatible with compression lz4"],
            ),
            (
                "backup_compression = gzip\nbackup_compression_format = plain\nbackup_compression_location = client",
                None,
                vec![
                    "backup_compression_format plain is not compatible with backup_compression_location client",
                ],
            ),
            (
                "backup_compression = gzip\nbackup_compression_format = plain",
                None,
                vec![
                    "backup_compression_format plain is not compatible with backup_compression_location None",
                ],
            ),
            (
                "backup_compression = gzip\nbackup_compression_level = 10",
                None,
                vec![
                    "backup_compression_level 10 unsupported by compression algorithm. 'gzip' expects a compression level between 1 and 9 (-1 means default)",
                ],
            ),
            (
                "backup_compression = lz4\nbackup_compression_level = 13",
                None,
                vec![
                    "backup_compression_level 13 unsupported by compression algorithm. 'lz4' expects a compression level between 0 and 12",
                ],
            ),
            (
                "backup_compression = zstd\nbackup_compression_level = 23",
                None,
                vec![
                    "backup_compression_level 23 unsupported by compression algorithm. 'zstd' expects a compression level between -131072 and 22",
                ],
            ),
            (
                "backup_compression = gzip\nbackup_compression_location = server",
                Some(140_010),
                vec!["backup_compression_location = server requires PostgreSQL 15 or greater"],
            ),
        ] {
            let pg = server(options);
            assert_eq!(pg.backup_compression_issues(version), expected, "{options}");
        }
        // The version rule waits for the live server's version.
        let pg = server("backup_compression = gzip\nbackup_compression_location = server");
        assert!(pg.backup_compression_issues(None).is_empty());
    }
}
