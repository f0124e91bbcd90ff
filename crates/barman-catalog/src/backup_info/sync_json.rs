//! The JSON form of a backup in `barman sync-info` (BARMAN-BEHAVIOUR.md §9)
//! and its way back into a backup.info on a passive node.
//!
//! Barman's `BackupInfo.to_json()`: every field, keys sorted, ints as
//! numbers, `begin_time`/`end_time` as `ctime()` text, `tablespaces` as
//! lists, `copy_stats`/`included_files` as JSON values, `backup_label` as
//! its repr string; then `backup_id`, `begin_time_iso` and `end_time_iso`.

use serde_json::{Map, Value};

use super::{BackupInfo, INT_KEYS, LITERAL_JSON_KEYS, known_key};
use crate::python::PyValue;
use crate::pytime::{parse_python_datetime, to_python_ctime, to_python_isoformat};
use crate::{BackupId, BackupStatus, Tablespace};
use crate::{Error, Result};

/// The two datetime fields, each with its `_iso` companion.
const TIME_KEYS: [&str; 2] = ["begin_time", "end_time"];

impl BackupInfo {
    /// The backup as `barman sync-info` lists it under `backups.<id>`.
    pub fn to_sync_json(&self) -> Result<Value> {
        let Value::Object(mut map) = self.to_json()? else {
            unreachable!("to_json returns an object");
        };
        let id = map.shift_remove("backup_id").unwrap_or(Value::Null);
        let mut iso = Vec::new();
        for (key, time) in TIME_KEYS
            .into_iter()
            .zip([self.begin_time()?, self.end_time()?])
        {
            if let Some(time) = time {
                // Replaces the ISO text in place: the key keeps its position.
                map.insert(key.into(), Value::String(to_python_ctime(&time)));
                iso.push((format!("{key}_iso"), to_python_isoformat(&time)));
            }
        }
        map.insert("backup_id".into(), id);
        for (key, text) in iso {
            map.insert(key, Value::String(text));
        }
        Ok(Value::Object(map))
    }

    /// A backup.info for `server_name` from the JSON a primary's `sync-info`
    /// gave for backup `id`, every field validated: the id must match, WAL
    /// names and LSNs must parse, numbers must be integers, texts one line;
    /// a key Barman does not write is refused. Datetimes come from the
    /// `_iso` fields when present (ctime text has neither offset nor
    /// microseconds), else from the ctime text in the local time zone.
    pub fn from_sync_json(
        server_name: &str,
        id: &BackupId,
        json: &Map<String, Value>,
    ) -> Result<Self> {
        let mut info = Self::new(server_name, id.clone());
        let bad = |key: &str, reason: &str| Error::InvalidCatalogValue {
            what: "backup in the primary's sync-info",
            value: format!("{id}.{key}"),
            reason: reason.to_owned(),
        };
        let local = jiff::tz::TimeZone::system();
        for (key, value) in json {
            let key = key.as_str();
            match key {
                "backup_id" => {
                    if value.as_str() != Some(id.as_str()) {
                        return Err(bad(key, "not the id the backup is listed under"));
                    }
                    continue;
                }
                "begin_time_iso" | "end_time_iso" => continue,
                _ => {}
            }
            let Some(known) = known_key(key) else {
                return Err(bad(key, "not a backup.info field"));
            };
            if value.is_null() {
                continue;
            }
            let text = |v: &Value| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(key, "expected a string"))
            };
            match known {
                "server_name" => {}
                "begin_time" | "end_time" => {
                    let raw = json
                        .get(&format!("{known}_iso"))
                        .filter(|v| !v.is_null())
                        .unwrap_or(value);
                    let time = parse_python_datetime(&text(raw)?, &local)?;
                    if known == "begin_time" {
                        info.set_begin_time(Some(&time));
                    } else {
                        info.set_end_time(Some(&time));
                    }
                }
                "status" => {
                    let status: BackupStatus = text(value)?
                        .parse()
                        .map_err(|_| bad(key, "not a backup status"))?;
                    info.set_status(status);
                }
                "begin_wal" => info.set_begin_wal(Some(&text(value)?))?,
                "end_wal" => info.set_end_wal(Some(&text(value)?))?,
                "begin_xlog" => info.set_begin_xlog(Some(&text(value)?))?,
                "end_xlog" => info.set_end_xlog(Some(&text(value)?))?,
                "parent_backup_id" => info.set_parent_backup_id(Some(&text(value)?.parse()?)),
                "children_backup_ids" => {
                    let ids = text(value)?
                        .split(',')
                        .map(|s| s.trim().parse())
                        .collect::<Result<Vec<BackupId>>>()?;
                    info.set_children_backup_ids(&ids);
                }
                "tablespaces" => info.set_tablespaces(
                    &tablespaces(value)
                        .ok_or_else(|| bad(key, "expected a list of [name, oid, location]"))?,
                ),
                "backup_label" => {
                    let label = text(value)?;
                    if !matches!(PyValue::parse(&label), Ok(PyValue::Str(_))) {
                        return Err(bad(key, "expected the repr of a string"));
                    }
                    info.set_raw(key, Some(&label))?;
                }
                k if INT_KEYS.contains(&k) => {
                    let n = value
                        .as_u64()
                        .ok_or_else(|| bad(key, "expected a non-negative integer"))?;
                    info.set_raw(k, Some(&n.to_string()))?;
                }
                k if LITERAL_JSON_KEYS.contains(&k) => {
                    info.set_raw(k, Some(&PyValue::from_json(value).to_repr()))?;
                }
                k => info.set_raw(k, Some(&text(value)?))?,
            }
        }
        Ok(info)
    }
}

/// `[[name, oid, location], ...]` (lists or tuples in Barman's JSON).
fn tablespaces(value: &Value) -> Option<Vec<Tablespace>> {
    value
        .as_array()?
        .iter()
        .map(|item| match item.as_array()?.as_slice() {
            [Value::String(name), oid, Value::String(location)] => Some(Tablespace {
                name: name.clone(),
                oid: u32::try_from(oid.as_u64()?).ok()?,
                location: location.clone(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_backup() -> Map<String, Value> {
        let text = include_str!("../../tests/fixtures/barman-3.20.1/outputs/sync-info.json");
        let json = text.split_once('\n').map_or(text, |(_, rest)| rest);
        let doc: Value = serde_json::from_str(json).unwrap();
        doc["backups"]["20261122T041510"]
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn barman_json_round_trips() {
        let json = fixture_backup();
        let id: BackupId = "20261122T041510".parse().unwrap();
        let info = BackupInfo::from_sync_json("pg", &id, &json).unwrap();
        assert_eq!(info.status().unwrap(), BackupStatus::Done);
        assert_eq!(info.begin_wal(), Some("000000010000000000000003"));
        assert_eq!(
            info.raw("begin_time"),
            Some("2026-11-22 04:15:10.863835+00:00")
        );
        assert_eq!(info.size().unwrap(), Some(54_605_825));
        let back = info.to_sync_json().unwrap();
        assert_eq!(back, Value::Object(json.clone()));
        let keys: Vec<&String> = back.as_object().unwrap().keys().collect();
        let fixture_keys: Vec<&String> = json.keys().collect();
        assert_eq!(keys, fixture_keys, "same key order as Barman");
    }

    #[test]
    fn tablespaces_are_lists_both_ways() {
        let mut json = fixture_backup();
        json.insert(
            "tablespaces".into(),
            serde_json::json!([["tbs1", 16384, "/srv/tbs1"]]),
        );
        let id: BackupId = "20261122T041510".parse().unwrap();
        let info = BackupInfo::from_sync_json("pg", &id, &json).unwrap();
        assert_eq!(
            info.raw("tablespaces"),
            Some("[('tbs1', 16384, '/srv/tbs1')]")
        );
        assert_eq!(
            info.to_sync_json().unwrap()["tablespaces"],
            json["tablespaces"]
        );
    }

    #[test]
    fn bad_fields_are_refused() {
        let id: BackupId = "20261122T041510".parse().unwrap();
        let cases: [(&str, Value); 8] = [
            ("backup_id", Value::from("20261122T041536")),
            ("begin_wal", Value::from("../../etc/passwd")),
            ("end_xlog", Value::from("nonsense")),
            ("size", Value::from(-1)),
            ("tablespaces", serde_json::json!([["x", "16384", "/a"]])),
            ("mode", Value::from("two\nlines")),
            ("status", Value::from("DONE_SOON")),
            ("surprise", Value::from(1)),
        ];
        for (key, value) in cases {
            let mut json = fixture_backup();
            json.insert(key.into(), value);
            assert!(
                BackupInfo::from_sync_json("pg", &id, &json).is_err(),
                "{key} accepted"
            );
        }
    }
}
