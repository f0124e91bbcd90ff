//! The global (`[barman]`) configuration (§2.2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ini::Ini;
use super::keys::GLOBAL_KEYS;
use super::log_format::LogFormat;
use super::resolve::{GLOBAL, get};
use super::values::{LogLevel, parse_bool};
use crate::error::Error;

/// Barman's default `log_format`.
pub const DEFAULT_LOG_FORMAT: &str =
    "%(asctime)s [%(process)s] %(name)s %(levelname)s: %(message)s";

/// `barman_home` when `[barman]` does not set it (Barman's documented default).
pub const DEFAULT_BARMAN_HOME: &str = "/var/lib/barman";

/// The global options of `[barman]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GlobalConfig {
    /// `barman_home`.
    pub barman_home: PathBuf,
    /// `barman_user` (default `barman`).
    pub barman_user: String,
    /// `barman_lock_directory` (default `barman_home`).
    pub barman_lock_directory: PathBuf,
    /// `lock_directory_cleanup` (default true).
    pub lock_directory_cleanup: bool,
    /// `config_changes_queue` (default `<home>/cfg_changes.queue`).
    pub config_changes_queue: PathBuf,
    /// `configuration_files_directory`.
    pub configuration_files_directory: Option<PathBuf>,
    /// `log_file` (`None`: log to stderr).
    pub log_file: Option<PathBuf>,
    /// `log_level` (default INFO).
    pub log_level: LogLevel,
    /// `log_format` (default [`DEFAULT_LOG_FORMAT`]), parsed: a format
    /// Python's logging could not render is a configuration error.
    pub log_format: LogFormat,
    /// Every `[barman]` option as written (interpolated, quotes stripped), for `diagnose`.
    pub raw: BTreeMap<String, String>,
}

impl GlobalConfig {
    /// Reads `[barman]`; invalid values are pushed to `errors`.
    pub(crate) fn from_ini(ini: &Ini, errors: &mut Vec<Error>) -> Self {
        let vars = BTreeMap::new();
        let mut raw = BTreeMap::new();
        let mut origins = BTreeMap::new();
        if let Some(section) = ini.section(GLOBAL) {
            for key in section.entries.keys() {
                match get(ini, GLOBAL, key, &vars) {
                    Ok(Some((value, origin))) => {
                        raw.insert(key.clone(), value);
                        origins.insert(key.clone(), origin);
                    }
                    Ok(None) => {}
                    // Server options in [barman] may refer to per-server names
                    // (`%(name)s`); they are interpolated per server later.
                    Err(_) if !GLOBAL_KEYS.contains(&key.as_str()) => {
                        let e = &section.entries[key];
                        raw.insert(key.clone(), e.value.clone());
                        origins.insert(key.clone(), e.origin.clone());
                    }
                    Err(e) if key == "log_format" => {
                        errors.push(percent_hint(e, &section.entries[key].value));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        let opt = |k: &str| raw.get(k).filter(|v| !v.is_empty()).cloned();
        let mut bad = |k: &str, allowed: &str| {
            let origin = &origins[k];
            errors.push(Error::ConfigValue {
                file: origin.file.clone(),
                line: origin.line,
                section: GLOBAL.to_owned(),
                option: k.to_owned(),
                value: raw[k].as_str().into(),
                allowed: allowed.into(),
            });
        };
        let barman_home =
            PathBuf::from(opt("barman_home").unwrap_or_else(|| DEFAULT_BARMAN_HOME.to_owned()));
        let lock_directory_cleanup = match opt("lock_directory_cleanup").map(|v| parse_bool(&v)) {
            None => true,
            Some(Ok(b)) => b,
            Some(Err(allowed)) => {
                bad("lock_directory_cleanup", &allowed);
                true
            }
        };
        let log_level = match opt("log_level").map(|v| LogLevel::parse(&v)) {
            None => LogLevel::Info,
            Some(Ok(l)) => l,
            Some(Err(_)) => {
                bad("log_level", "DEBUG, INFO, WARNING, ERROR, CRITICAL");
                LogLevel::Info
            }
        };
        let log_format = match opt("log_format") {
            None => LogFormat::default(),
            Some(value) => LogFormat::parse(&value).unwrap_or_else(|e| {
                let origin = &origins["log_format"];
                errors.push(Error::ConfigRule {
                    file: origin.file.clone(),
                    line: origin.line,
                    section: GLOBAL.to_owned(),
                    message: format!("log_format = {value}: {e}"),
                });
                LogFormat::default()
            }),
        };
        GlobalConfig {
            barman_user: opt("barman_user").unwrap_or_else(|| "barman".to_owned()),
            barman_lock_directory: opt("barman_lock_directory")
                .map_or_else(|| barman_home.clone(), PathBuf::from),
            lock_directory_cleanup,
            config_changes_queue: opt("config_changes_queue")
                .map_or_else(|| barman_home.join("cfg_changes.queue"), PathBuf::from),
            configuration_files_directory: opt("configuration_files_directory").map(PathBuf::from),
            log_file: opt("log_file").map(PathBuf::from),
            log_level,
            log_format,
            barman_home,
            raw,
        }
    }

    /// `diagnose`'s `global.config` object: every `[barman]` option as written,
    /// plus the computed `barman_home`, `barman_lock_directory`,
    /// `config_changes_queue`, `lock_directory_cleanup` and `errors_list`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m: BTreeMap<String, serde_json::Value> = self
            .raw
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect();
        m.insert("barman_home".into(), path_json(&self.barman_home));
        m.insert(
            "barman_lock_directory".into(),
            path_json(&self.barman_lock_directory),
        );
        m.insert(
            "config_changes_queue".into(),
            path_json(&self.config_changes_queue),
        );
        m.insert(
            "lock_directory_cleanup".into(),
            self.lock_directory_cleanup.into(),
        );
        m.insert("errors_list".into(), serde_json::Value::Array(Vec::new()));
        serde_json::Value::Object(m.into_iter().collect())
    }
}

/// A `log_format` whose `%(field)s` were read as interpolations (Barman's
/// ConfigParser reads them so too): says how to write them.
fn percent_hint(e: Error, written: &str) -> Error {
    match e {
        Error::ConfigRule {
            file,
            line,
            section,
            message,
        } => Error::ConfigRule {
            file,
            line,
            section,
            message: format!(
                "log_format = {written}: {} (a log format's `%` is written `%%` in the configuration, \
                 as for Barman: `log_format = %%(asctime)s %%(levelname)s: %%(message)s`)",
                message.strip_prefix("log_format: ").unwrap_or(&message)
            ),
        },
        other => other,
    }
}

pub(crate) fn path_json(p: &Path) -> serde_json::Value {
    serde_json::Value::from(p.to_string_lossy().into_owned())
}
