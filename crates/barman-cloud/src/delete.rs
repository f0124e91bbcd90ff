//! `barman-cloud-backup-delete`: removing backups from a bucket, one by id
//! (`-b`) or every backup a retention policy makes obsolete (`-r`), and
//! the WALs no remaining backup needs, as barman-cloud does it
//! (BARMAN-CLOUD.md §8): the tar objects first, `backup.info` last (a
//! failed run can be retried), then the WAL cleanup of Barman's
//! `should_remove_wals` and `remove_wal_before_backup` (barman-retention's
//! [`wal_cleanup_for_delete`], shared with `barman delete`).

use barman_catalog::BackupStatus;
use barman_retention::{
    BackupSummary, DeleteKind, RetentionPolicy, evaluate, wal_cleanup_for_delete,
};

use crate::Result;
use crate::catalog::Catalog;
use crate::layout::{Layout, Tree};
use crate::store::Bucket;

/// How a deletion runs.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// `--dry-run`: report what would go, delete nothing.
    pub dry_run: bool,
    /// `--batch-size`: objects per delete request.
    pub batch_size: usize,
}

/// What a deletion reports: the lines barman-cloud prints for `--dry-run`
/// and the warnings it logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// The backups deleted (or that would be).
    pub deleted: Vec<String>,
    /// Objects deleted (or that would be).
    pub objects: Vec<String>,
    /// `--dry-run` lines, in Barman's words.
    pub dry_run_lines: Vec<String>,
}

/// Python's repr of a list of strings: `['a', 'b']`.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The summaries retention reasons on.
fn summaries(catalog: &Catalog) -> Vec<BackupSummary> {
    catalog
        .backups
        .values()
        .map(|b| {
            let info = &b.info;
            let status = info.status().unwrap_or(BackupStatus::Failed);
            let mut s = BackupSummary::new(info.backup_id().to_string(), status);
            if let Ok(Some(end)) = info.end_time() {
                s = s.end_time(end.timestamp().as_second());
            }
            if let Some(keep) = b.keep {
                s = s.keep(keep);
            }
            if let (Some(begin), Some(end)) = (info.begin_wal(), info.end_wal()) {
                s = s.wals(begin, end);
            }
            s
        })
        .collect()
}

/// Deletes `keys` in batches (or reports them with `--dry-run`).
fn delete_keys(bucket: &Bucket, keys: &[String], options: &DeleteOptions) -> Result<()> {
    for batch in keys.chunks(options.batch_size.max(1)) {
        bucket.delete(batch)?;
    }
    Ok(())
}

/// Deletes backup `id` and the WALs it alone needed.
///
/// # Errors
/// [`crate::Error::Store`] when a deletion fails (the backup's `backup.info` is
/// then left in place, so that the deletion can be retried).
pub fn delete_backup(
    bucket: &Bucket,
    layout: &Layout,
    catalog: &mut Catalog,
    id: &str,
    kind: DeleteKind,
    options: &DeleteOptions,
    report: &mut DeleteReport,
) -> Result<()> {
    let Some(backup) = catalog.backups.get(id) else {
        tracing::warn!("Backup {id} does not exist");
        return Ok(());
    };
    // PGDATA's parts first, then each tablespace's, each main part first.
    let mut tars = backup.tars.clone();
    tars.sort_by(|a, b| {
        let order = |t: &Tree| match t {
            Tree::Data => -1i64,
            Tree::Tablespace(oid) => i64::from(*oid),
        };
        (order(&a.0.tree), a.0.part).cmp(&(order(&b.0.tree), b.0.part))
    });
    let mut objects: Vec<String> = tars.into_iter().map(|(_, l)| l.key).collect();
    // Our checksum manifest goes with the tars (barman-cloud leaves it).
    objects.extend(backup.manifest.iter().map(|l| l.key.clone()));
    let info_key = layout.backup_info_key(id);
    if options.dry_run {
        let mut all = objects.clone();
        all.push(info_key.clone());
        report.dry_run_lines.push(format!(
            "Skipping deletion of objects {} due to --dry-run option",
            python_list(&all)
        ));
    } else {
        delete_keys(bucket, &objects, options)?;
        bucket.delete(std::slice::from_ref(&info_key))?;
    }
    objects.push(info_key);
    report.objects.extend(objects);

    // The WALs: what the remaining backups do not need (barman-cloud's
    // remove_until is the next backup, else the deleted one).
    let summaries = summaries(catalog);
    if let Some(cleanup) = wal_cleanup_for_delete(&summaries, id, kind, true) {
        if catalog.wal_keys.is_none() {
            let keys = bucket
                .list(&layout.wals_prefix())?
                .into_iter()
                .map(|o| o.key);
            catalog.wal_keys = Some(keys.collect());
        }
        let wal_keys = catalog.wal_keys.get_or_insert_with(Vec::new);
        let (mut removable, kept): (Vec<String>, Vec<String>) =
            wal_keys.drain(..).partition(|key| {
                Layout::parse_wal_key(key)
                    .is_some_and(|(name, _)| !cleanup.keeps(&name.to_string()))
            });
        *wal_keys = kept;
        removable.sort();
        if !removable.is_empty() {
            if options.dry_run {
                report.dry_run_lines.push(format!(
                    "Skipping deletion of objects {} due to --dry-run option",
                    python_list(&removable)
                ));
            } else if let Err(e) = delete_keys(bucket, &removable, options) {
                tracing::error!(
                    "Could not delete the following WALs for backup {id}: {}, Reason: {e}",
                    python_list(&removable)
                );
                // Left in the cache: a later deletion tries them again.
                if let Some(keys) = &mut catalog.wal_keys {
                    keys.extend(removable.iter().cloned());
                }
            }
            report.objects.extend(removable);
        }
    }
    catalog.backups.remove(id);
    report.deleted.push(id.to_owned());
    Ok(())
}

/// The backups `policy` makes obsolete (with `minimum_redundancy`), oldest
/// first.
pub fn obsolete_backups(
    catalog: &Catalog,
    policy: &RetentionPolicy,
    minimum_redundancy: u32,
    now_epoch_secs: i64,
) -> Vec<String> {
    let report = evaluate(
        policy,
        &summaries(catalog),
        now_epoch_secs,
        minimum_redundancy,
    );
    let mut ids: Vec<String> = report
        .obsolete_ids()
        .into_iter()
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

/// Why `-b` may not delete `id`: kept, or the minimum redundancy.
pub fn refusal(
    catalog: &Catalog,
    id: &str,
    server: &str,
    minimum_redundancy: u32,
) -> Option<String> {
    if catalog.backups.get(id).is_some_and(|b| b.keep.is_some()) {
        return Some(format!(
            "Skipping delete of backup {id} for server {server} as it has a current keep request. \
             If you really want to delete this backup please remove the keep and try again."
        ));
    }
    if minimum_redundancy > 0 {
        let completed = catalog
            .backups
            .values()
            .filter(|b| !matches!(b.info.status(), Ok(BackupStatus::Started)))
            .count();
        if minimum_redundancy as usize >= completed {
            return Some(format!(
                "Skipping delete of backup {id} for server {server} due to minimum redundancy \
                 requirements (minimum redundancy = {minimum_redundancy}, current redundancy = {completed})"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_lists() {
        assert_eq!(python_list(&[]), "[]");
        assert_eq!(
            python_list(&["a/b".into(), "it's".into()]),
            "['a/b', 'it\\'s']"
        );
    }
}
