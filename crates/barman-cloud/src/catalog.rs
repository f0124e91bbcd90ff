//! The backups of a server in a bucket, as barman-cloud's
//! `CloudBackupCatalog` reads them: one listing of `P/S/base/`, each
//! `base/<id>/backup.info` read strictly (an unknown key is an error, as
//! with Barman), the keep annotations, the tar objects of each backup, and
//! backup ids resolved from ids, shortcuts and names.

use std::collections::BTreeMap;
use std::path::Path;

use barman_catalog::{BackupId, BackupInfo, BackupStatus, KeepTarget};

use crate::layout::{Layout, TarPart};
use crate::store::{Bucket, Listed};
use crate::{Error, Result};

/// The largest `backup.info` read (Barman's are a few KiB): a larger object
/// is an unreadable backup, never loaded into memory.
const MAX_INFO_BYTES: u64 = 1 << 20;

/// The largest keep annotation read (its body is `full` or `standalone`).
const MAX_KEEP_BYTES: u64 = 1 << 10;

/// One backup of the catalog.
#[derive(Debug, Clone)]
pub struct CloudBackup {
    /// Its metadata.
    pub info: BackupInfo,
    /// Its keep annotation, if any.
    pub keep: Option<KeepTarget>,
    /// Its tar objects (sorted by tree and part).
    pub tars: Vec<(TarPart, Listed)>,
    /// Its checksum manifest (backups barman-rs uploaded), if listed.
    pub manifest: Option<Listed>,
}

/// The catalog: readable backups by id, and the ids of unreadable ones.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The backups whose `backup.info` could be read, by id.
    pub backups: BTreeMap<String, CloudBackup>,
    /// Backup directories whose `backup.info` could not be read (with the
    /// reason), skipped with a warning by a listing.
    pub unreadable: Vec<(String, String)>,
    /// The keys of the WAL archive, listed once by the first deletion that
    /// needs them and kept up to date by the deletions (as barman-cloud's
    /// catalog caches its WAL paths).
    pub wal_keys: Option<Vec<String>>,
}

impl Catalog {
    /// Reads the catalog of `layout` in `bucket`.
    ///
    /// # Errors
    /// [`Error::Store`] / [`Error::NoSuchBucket`] when the listing fails.
    pub fn load(bucket: &Bucket, layout: &Layout) -> Result<Self> {
        let base = layout.base_prefix();
        let mut dirs: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
        for listed in bucket.list(&base)? {
            let Some(rest) = listed.key.strip_prefix(&base) else {
                continue;
            };
            if let Some((dir, _)) = rest.split_once('/') {
                dirs.entry(dir.to_owned()).or_default().push(listed.clone());
            }
        }
        let mut catalog = Self::default();
        for (dir, objects) in dirs {
            let info_key = layout.backup_info_key(&dir);
            let Some(info_object) = objects.iter().find(|o| o.key == info_key) else {
                // A directory without backup.info is skipped silently.
                continue;
            };
            match read_info(bucket, info_object, &dir) {
                Ok(info) => {
                    let keep = read_keep(bucket, layout, &dir, &objects)?;
                    let prefix = layout.backup_prefix(&dir);
                    let mut tars: Vec<(TarPart, Listed)> = objects
                        .iter()
                        .filter_map(|o| {
                            let name = o.key.strip_prefix(&prefix)?;
                            Some((TarPart::parse(name)?, o.clone()))
                        })
                        .collect();
                    tars.sort_by(|a, b| a.0.cmp(&b.0));
                    let manifest_key = layout.manifest_key(&dir);
                    let manifest = objects.iter().find(|o| o.key == manifest_key).cloned();
                    catalog.backups.insert(
                        dir,
                        CloudBackup {
                            info,
                            keep,
                            tars,
                            manifest,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!("Unable to open backup.info file for {dir}: {e}");
                    catalog.unreadable.push((dir, e.to_string()));
                }
            }
        }
        Ok(catalog)
    }

    /// The backup id `text` names, as Barman's `parse_backup_id`: an id
    /// (`YYYYMMDDTHHMMSS`) as it is; `last`/`latest` and `first`/`oldest`
    /// (skipping STARTED backups), `last-failed`; else a backup name.
    ///
    /// # Errors
    /// [`Error::UnknownBackup`] when nothing matches, naming the server;
    /// [`Error::AmbiguousBackupName`] when two backups carry the name.
    pub fn resolve(&self, text: &str, server: &str) -> Result<String> {
        if text.parse::<BackupId>().is_ok() {
            return Ok(text.to_owned());
        }
        let not_started = |b: &&CloudBackup| !matches!(b.info.status(), Ok(BackupStatus::Started));
        let found = match text {
            "last" | "latest" => self.backups.values().rev().find(not_started),
            "first" | "oldest" => self.backups.values().find(not_started),
            "last-failed" => self
                .backups
                .values()
                .rev()
                .find(|b| matches!(b.info.status(), Ok(BackupStatus::Failed))),
            name => {
                let named: Vec<&CloudBackup> = self
                    .backups
                    .values()
                    .filter(|b| b.info.raw("backup_name") == Some(name))
                    .collect();
                if named.len() > 1 {
                    let ids: Vec<String> = named
                        .iter()
                        .map(|b| b.info.backup_id().to_string())
                        .collect();
                    return Err(Error::AmbiguousBackupName {
                        name: name.to_owned(),
                        ids: ids.join(" "),
                    });
                }
                named.first().copied()
            }
        };
        found
            .map(|b| b.info.backup_id().to_string())
            .ok_or_else(|| Error::UnknownBackup {
                backup: text.to_owned(),
                server: server.to_owned(),
            })
    }
}

/// Reads and parses one `backup.info` (at most [`MAX_INFO_BYTES`]).
fn read_info(bucket: &Bucket, object: &Listed, dir: &str) -> Result<BackupInfo> {
    let key = object.key.as_str();
    if object.size > MAX_INFO_BYTES {
        return Err(Error::Key {
            key: key.to_owned(),
            reason: format!("{} bytes: larger than any backup.info", object.size),
        });
    }
    let id: BackupId = dir.parse().map_err(|_| Error::Key {
        key: key.to_owned(),
        reason: format!("`{dir}` is not a backup id"),
    })?;
    let bytes = bucket.get_bounded(key, MAX_INFO_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Key {
        key: key.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    BackupInfo::parse(&text, id, Path::new(key)).map_err(Error::Catalog)
}

/// The keep annotation of backup `dir`, when its object is listed.
fn read_keep(
    bucket: &Bucket,
    layout: &Layout,
    dir: &str,
    objects: &[Listed],
) -> Result<Option<KeepTarget>> {
    let key = layout.keep_key(dir);
    let Some(object) = objects.iter().find(|o| o.key == key) else {
        return Ok(None);
    };
    if object.size > MAX_KEEP_BYTES {
        tracing::warn!("ignoring keep annotation `{key}`: {} bytes", object.size);
        return Ok(None);
    }
    let bytes = match bucket.get_bounded(&key, MAX_KEEP_BYTES) {
        Ok(bytes) => bytes,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e @ Error::Key { .. }) => {
            tracing::warn!("ignoring keep annotation: {e}");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(match text.lines().next().unwrap_or_default() {
        "full" => Some(KeepTarget::Full),
        "standalone" => Some(KeepTarget::Standalone),
        other => {
            tracing::warn!("ignoring keep annotation `{key}`: unknown target `{other}`");
            None
        }
    })
}

/// Writes the keep annotation of backup `id` (`--target`).
///
/// # Errors
/// [`Error::Store`] when the upload fails.
pub fn put_keep(bucket: &Bucket, layout: &Layout, id: &str, target: KeepTarget) -> Result<()> {
    bucket
        .put(&layout.keep_key(id), &mut target.as_str().as_bytes(), &[])
        .map(drop)
}

/// Removes the keep annotation of backup `id` (`--release`).
///
/// # Errors
/// [`Error::Store`] when the deletion fails.
pub fn release_keep(bucket: &Bucket, layout: &Layout, id: &str) -> Result<()> {
    bucket.delete(&[layout.keep_key(id)])
}

/// The recovery target of `barman-cloud-restore ... auto`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoTarget {
    /// `--target-time`, parsed.
    pub time: Option<jiff::Zoned>,
    /// `--target-lsn`, parsed.
    pub lsn: Option<barman_wal::Lsn>,
    /// `--target-tli`, resolved to a number (`latest` is resolved by the
    /// caller from the archived WALs).
    pub tli: Option<u32>,
}

impl Catalog {
    /// The backup `auto` names for `target`, as Barman chooses it: among
    /// the backups that are not STARTED, newest first, the first that
    /// ended at or before `--target-time` (else at or before
    /// `--target-lsn`) on `--target-tli` when given; without a time or an
    /// LSN, the newest on `--target-tli`, or the newest of all. `None` when
    /// no backup fits.
    pub fn auto_backup(&self, target: &AutoTarget) -> Option<String> {
        let mut candidates: Vec<&CloudBackup> = self
            .backups
            .values()
            .filter(|b| !matches!(b.info.status(), Ok(BackupStatus::Started)))
            .collect();
        candidates.sort_by(|a, b| b.info.backup_id().cmp(a.info.backup_id()));
        let on_timeline = |b: &&CloudBackup| {
            target
                .tli
                .is_none_or(|t| b.info.timeline().ok().flatten() == Some(t))
        };
        let fits = |b: &&CloudBackup| {
            if let Some(time) = &target.time {
                return b
                    .info
                    .end_time()
                    .ok()
                    .flatten()
                    .is_some_and(|end| end.timestamp() <= time.timestamp());
            }
            if let Some(lsn) = target.lsn {
                return b
                    .info
                    .end_xlog()
                    .and_then(|l| l.parse::<barman_wal::Lsn>().ok())
                    .is_some_and(|end| end <= lsn);
            }
            true
        };
        candidates
            .iter()
            .find(|b| fits(b) && on_timeline(b))
            .map(|b| b.info.backup_id().to_string())
    }
}

#[cfg(test)]
mod tests {
    use barman_catalog::{BackupId, BackupInfo, BackupStatus};

    use super::*;

    fn backup(
        id: &str,
        status: BackupStatus,
        end: &str,
        lsn: &str,
        tli: u32,
    ) -> (String, CloudBackup) {
        let mut info = BackupInfo::new("cloud", id.parse::<BackupId>().unwrap());
        info.set_status(status);
        info.set_end_time(Some(&end.parse::<jiff::Zoned>().unwrap()));
        info.set_end_xlog(Some(lsn)).unwrap();
        info.set_timeline(Some(tli));
        (
            id.to_owned(),
            CloudBackup {
                info,
                keep: None,
                tars: Vec::new(),
                manifest: None,
            },
        )
    }

    fn catalog() -> Catalog {
        Catalog {
            backups: [
                backup(
                    "20261201T000000",
                    BackupStatus::Done,
                    "2026-12-01T00:10:00+00:00[UTC]",
                    "0/3000100",
                    1,
                ),
                backup(
                    "20261202T000000",
                    BackupStatus::Done,
                    "2026-12-02T00:10:00+00:00[UTC]",
                    "0/5000100",
                    2,
                ),
                backup(
                    "20261203T000000",
                    BackupStatus::Started,
                    "2026-12-03T00:10:00+00:00[UTC]",
                    "0/7000100",
                    2,
                ),
            ]
            .into_iter()
            .collect(),
            ..Catalog::default()
        }
    }

    #[test]
    fn auto_chooses_as_barman() {
        let c = catalog();
        let at = |t: &str| t.parse::<jiff::Zoned>().unwrap();
        let auto = |target: AutoTarget| c.auto_backup(&target);
        // The newest not STARTED.
        assert_eq!(
            auto(AutoTarget::default()).as_deref(),
            Some("20261202T000000")
        );
        // Ended at or before the time.
        let time = |t: &str| AutoTarget {
            time: Some(at(t)),
            ..AutoTarget::default()
        };
        assert_eq!(
            auto(time("2026-12-01T12:00:00+00:00[UTC]")).as_deref(),
            Some("20261201T000000")
        );
        assert_eq!(
            auto(time("2026-12-02T00:10:00+00:00[UTC]")).as_deref(),
            Some("20261202T000000")
        );
        assert_eq!(auto(time("2026-11-30T00:00:00+00:00[UTC]")), None);
        // The time wins over the LSN; the LSN alone.
        let lsn = |l: &str| AutoTarget {
            lsn: Some(l.parse().unwrap()),
            ..AutoTarget::default()
        };
        assert_eq!(auto(lsn("0/4000000")).as_deref(), Some("20261201T000000"));
        assert_eq!(auto(lsn("0/2000000")), None);
        // On a timeline.
        let tli = |t: u32| AutoTarget {
            tli: Some(t),
            ..AutoTarget::default()
        };
        assert_eq!(auto(tli(1)).as_deref(), Some("20261201T000000"));
        assert_eq!(auto(tli(3)), None);
        let both = AutoTarget {
            time: Some(at("2026-12-05T00:00:00+00:00[UTC]")),
            tli: Some(1),
            lsn: None,
        };
        assert_eq!(auto(both).as_deref(), Some("20261201T000000"));
    }
}
