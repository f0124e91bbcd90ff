//! The `sync-info` document (BARMAN-BEHAVIOUR.md §9): written by the
//! primary ([`sync_info`]), read and validated by the passive node
//! ([`PrimaryInfo::parse`]).
//!
//! Keys, in Barman's order: `last_position`, `last_name`, `backups` (DONE
//! backups by id, [`BackupInfo::to_sync_json`]), `wals` (`compression`,
//! `encryption`, `name`, `size`, `time` of each xlog.db line the passive
//! node still needs), `version`, `config` (the server's configuration as
//! `diagnose` prints it). Printed with an indent of 4, as Python's
//! `json.dumps(..., indent=4)`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use barman_wal::{Compression, WalFileName};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::seek::{Position, scan};
use crate::{Error, Result};
use barman_catalog::{
    BackupId, BackupInfo, BackupStatus, LockKind, PyFloat, XlogEntry, acquire_blocking,
};
use barman_config::{GlobalConfig, ServerConfig};

/// The `version` a barman-rs primary reports.
pub fn version() -> String {
    format!("{} (barman-rs)", env!("CARGO_PKG_VERSION"))
}

/// `barman sync-info SERVER [LAST_WAL [LAST_POS]]` on the primary: the
/// document, read under the server's xlogdb lock.
pub fn sync_info(
    global: &GlobalConfig,
    server: &ServerConfig,
    position: Position<'_>,
) -> Result<Value> {
    if let Some(wal) = position.last_wal {
        wal.parse::<WalFileName>().map_err(Error::from)?;
    }
    let catalog = server.catalog();
    let done: Vec<BackupInfo> = catalog
        .backups()?
        .into_iter()
        .filter(|b| b.status().is_ok_and(|s| s == BackupStatus::Done))
        .collect();
    let mut backups = Map::new();
    for info in &done {
        backups.insert(info.backup_id().to_string(), info.to_sync_json()?);
    }
    let from_wal = done.first().and_then(BackupInfo::begin_wal);
    let xlogdb = catalog.xlogdb();
    let scan = {
        barman_catalog::fs::create_dir_secure(&global.barman_lock_directory)?;
        let _lock = acquire_blocking(
            &global.barman_lock_directory,
            &LockKind::XlogDb(server.name.clone()),
        )?;
        let text = barman_catalog::fs::read_optional(xlogdb.path())?.unwrap_or_default();
        scan(&text, xlogdb.path(), position, from_wal)?
    };
    if scan.rescanned {
        tracing::info!(
            "sync-info of `{}`: the position hint {:?} does not match xlog.db, read from its start",
            server.name,
            position.last_position
        );
    }
    let wals: Vec<Value> = scan
        .wals
        .iter()
        .map(|e| {
            json!({
                "compression": e.compression,
                "encryption": e.encryption,
                "name": e.name,
                "size": e.size,
                "time": e.time.value(),
            })
        })
        .collect();
    Ok(json!({
        "last_position": scan.last_position,
        "last_name": scan.last_name,
        "backups": backups,
        "wals": wals,
        "version": version(),
        "config": server.to_json(),
    }))
}

/// The document as text, indented by 4 spaces like Python's `json.dumps`.
pub fn render(doc: &Value) -> String {
    use serde::Serialize as _;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    // Serializing a Value into memory cannot fail.
    let _ = doc.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// What a passive node uses of the primary's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryConfig {
    /// The primary's `basebackups_directory` (absolute, no `.`/`..`).
    pub basebackups_directory: PathBuf,
    /// The primary's `wals_directory` (absolute, no `.`/`..`).
    pub wals_directory: PathBuf,
    /// The primary's WAL `compression` as its configuration says it.
    pub compression: Option<String>,
}

/// The primary's `sync-info`, validated.
#[derive(Debug, Clone)]
pub struct PrimaryInfo {
    /// Where the last xlog.db line starts on the primary.
    pub last_position: u64,
    /// The name of that line (`""`: empty xlog.db).
    pub last_name: String,
    /// The primary's DONE backups, as local backup.info files would hold
    /// them (`server_name` is the local server).
    pub backups: BTreeMap<BackupId, BackupInfo>,
    /// The xlog.db lines the passive node does not have yet.
    pub wals: Vec<XlogEntry>,
    /// The primary's version text.
    pub version: String,
    /// The primary's directories and compression.
    pub config: PrimaryConfig,
}

#[derive(Deserialize)]
struct RawInfo {
    last_position: u64,
    last_name: String,
    backups: Map<String, Value>,
    wals: Vec<RawWal>,
    version: String,
    config: RawConfig,
}

#[derive(Deserialize)]
struct RawWal {
    name: String,
    size: u64,
    time: f64,
    compression: Option<String>,
    encryption: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    basebackups_directory: PathBuf,
    wals_directory: PathBuf,
    compression: Option<String>,
}

impl PrimaryInfo {
    /// Parses the primary's answer for local server `server`. Lines before
    /// the JSON document (a login banner) are skipped. Every field used is
    /// checked: backup ids and their backup.info fields
    /// ([`BackupInfo::from_sync_json`], DONE only), WAL names, sizes and
    /// compression names, and the primary's directories (absolute, without
    /// `.` or `..`).
    pub fn parse(text: &str, server: &str) -> Result<Self> {
        let bad = |message: String| Error::PrimaryInfo {
            server: server.to_owned(),
            message,
        };
        let json = json_part(text).ok_or_else(|| bad("no JSON document in the answer".into()))?;
        let raw: RawInfo =
            serde_json::from_str(json).map_err(|e| bad(format!("invalid sync-info: {e}")))?;
        if !raw.last_name.is_empty() {
            raw.last_name
                .parse::<WalFileName>()
                .map_err(|e| bad(format!("last_name: {e}")))?;
        }
        let mut backups = BTreeMap::new();
        for (key, value) in &raw.backups {
            let id: BackupId = key
                .parse()
                .map_err(|e: barman_catalog::Error| bad(format!("backup id `{key}`: {e}")))?;
            let object = value
                .as_object()
                .ok_or_else(|| bad(format!("backup {id}: not an object")))?;
            let info = BackupInfo::from_sync_json(server, &id, object)
                .map_err(|e| bad(format!("backup {id}: {e}")))?;
            if info.status()? != BackupStatus::Done {
                return Err(bad(format!("backup {id}: status is not DONE")));
            }
            backups.insert(id, info);
        }
        let mut wals = Vec::with_capacity(raw.wals.len());
        for wal in raw.wals {
            wal.name
                .parse::<WalFileName>()
                .map_err(|e| bad(format!("wals: {e}")))?;
            if let Some(c) = &wal.compression
                && c.parse::<Compression>().is_err()
            {
                return Err(bad(format!(
                    "wals: {}: unknown compression `{c}`",
                    wal.name
                )));
            }
            if wal.encryption.as_deref().is_some_and(|e| e != "gpg") {
                return Err(bad(format!("wals: {}: unknown encryption", wal.name)));
            }
            if !wal.time.is_finite() {
                return Err(bad(format!("wals: {}: invalid time", wal.name)));
            }
            wals.push(XlogEntry {
                name: wal.name,
                size: wal.size,
                time: PyFloat::new(wal.time),
                compression: wal.compression,
                encryption: wal.encryption,
            });
        }
        for (what, dir) in [
            ("basebackups_directory", &raw.config.basebackups_directory),
            ("wals_directory", &raw.config.wals_directory),
        ] {
            if !is_clean_absolute(dir) {
                return Err(bad(format!(
                    "config.{what} `{}` is not an absolute path without `.` or `..`",
                    dir.display()
                )));
            }
        }
        Ok(Self {
            last_position: raw.last_position,
            last_name: raw.last_name,
            backups,
            wals,
            version: raw.version,
            config: PrimaryConfig {
                basebackups_directory: raw.config.basebackups_directory,
                wals_directory: raw.config.wals_directory,
                compression: raw.config.compression,
            },
        })
    }
}

/// The JSON document of `text`: from its first line starting with `{`.
pub(super) fn json_part(text: &str) -> Option<&str> {
    if text.starts_with('{') {
        return Some(text);
    }
    text.find("\n{").map(|i| &text[i + 1..])
}

fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../../barman-catalog/tests/fixtures/barman-3.20.1/outputs/sync-info.json");

    #[test]
    fn barman_sync_info_parses() {
        // The fixture starts with the WARNING line Barman printed first.
        let info = PrimaryInfo::parse(FIXTURE, "pg").unwrap();
        assert_eq!(info.last_position, 326);
        assert_eq!(info.last_name, "000000010000000000000006.00000028.backup");
        assert_eq!(info.backups.len(), 2);
        assert_eq!(info.wals.len(), 6);
        assert_eq!(info.wals[0].time.as_str(), "1795320911.3077557");
        assert_eq!(
            info.wals[1].to_line(),
            "000000010000000000000003.00000028.backup\t345\t1795320911.3151977\tNone\tNone\n"
        );
        assert_eq!(info.version, "3.20.1");
        assert_eq!(
            info.config.basebackups_directory,
            Path::new("/srv/demo/home/pg/base")
        );
        assert_eq!(info.config.compression, None);
        // Times keep every digit (a float parser one ulp off would not).
        let precise = with(|d| d["wals"][0]["time"] = json!(1_796_167_053.490_453_7));
        let info_precise = PrimaryInfo::parse(&precise, "pg").unwrap();
        assert_eq!(info_precise.wals[0].time.as_str(), "1796167053.4904537");
        let b = &info.backups[&"20261122T041536".parse::<BackupId>().unwrap()];
        assert_eq!(b.end_wal(), Some("000000010000000000000006"));
    }

    fn with(edit: impl FnOnce(&mut Value)) -> String {
        let mut doc: Value = serde_json::from_str(json_part(FIXTURE).unwrap()).unwrap();
        edit(&mut doc);
        render(&doc)
    }

    #[test]
    fn peer_paths_and_names_are_validated() {
        let cases: Vec<(&str, String)> = vec![
            (
                "relative dir",
                with(|d| d["config"]["basebackups_directory"] = json!("srv/base")),
            ),
            (
                "dotdot dir",
                with(|d| d["config"]["wals_directory"] = json!("/srv/../etc")),
            ),
            (
                "bad wal",
                with(|d| d["wals"][0]["name"] = json!("../../../etc/passwd")),
            ),
            (
                "bad compression",
                with(|d| d["wals"][0]["compression"] = json!("rar")),
            ),
            ("negative size", with(|d| d["wals"][0]["size"] = json!(-5))),
            (
                "bad id",
                with(|d| {
                    let b = d["backups"]["20261122T041510"].take();
                    d["backups"]
                        .as_object_mut()
                        .unwrap()
                        .insert("../x".into(), b);
                }),
            ),
            (
                "failed backup",
                with(|d| d["backups"]["20261122T041510"]["status"] = json!("FAILED")),
            ),
            ("bad last_name", with(|d| d["last_name"] = json!("x/y"))),
            ("not json", "ERROR: no such server".to_owned()),
        ];
        for (label, text) in cases {
            let e = PrimaryInfo::parse(&text, "pg");
            assert!(
                matches!(e, Err(Error::PrimaryInfo { .. })),
                "{label}: {e:?}"
            );
        }
    }

    #[test]
    fn render_is_python_indent_4() {
        let text = render(&json!({"a": 1, "b": [1, {"c": null}]}));
        assert_eq!(
            text,
            "{\n    \"a\": 1,\n    \"b\": [\n        1,\n        {\n            \"c\": null\n        }\n    ]\n}"
        );
    }
}
