//! `list-processes`: the barman processes working on a server, found through
//! the lock files they hold in `barman_lock_directory` (BARMAN-BEHAVIOUR.md
//! §3.6).

use std::path::Path;

use serde::Serialize;

use crate::{Error, Result};
use barman_catalog::{BackupId, read_owner};

/// A process holding one of a server's locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerProcess {
    /// The holder's PID (written in the lock file).
    pub pid: u32,
    /// What it is doing: `backup`, `cron`, `archive-wal`, `receive-wal`,
    /// `sync-wal`, `check-backup <id>` (the lock of one backup, also taken
    /// by a delete) or `sync-backup <id>`.
    pub task: String,
}

/// The task a lock-file name (without `.<server>-` and `.lock`) stands for,
/// `None` for a file that is not a server lock of this server (or the
/// short-lived xlog.db lock).
fn task_of(middle: &str) -> Option<String> {
    match middle {
        "backup" | "cron" | "archive-wal" | "receive-wal" | "sync-wal" => Some(middle.to_owned()),
        _ => {
            if let Some(id) = middle.strip_suffix("-sync-backup")
                && id.parse::<BackupId>().is_ok()
            {
                return Some(format!("sync-backup {id}"));
            }
            middle
                .parse::<BackupId>()
                .ok()
                .map(|id| format!("check-backup {id}"))
        }
    }
}

/// The processes holding `server`'s locks in `lock_dir`, sorted by task.
/// A lock file whose lock is free (a stale PID left behind) is not listed.
pub fn list_processes(lock_dir: &Path, server: &str) -> Result<Vec<ServerProcess>> {
    let entries = match std::fs::read_dir(lock_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", lock_dir, e)),
    };
    let prefix = format!(".{server}-");
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", lock_dir, e))?;
        let name = entry.file_name();
        let Some(middle) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".lock"))
        else {
            continue;
        };
        let Some(task) = task_of(middle) else {
            continue;
        };
        if let Some(pid) = read_owner(&entry.path()) {
            found.push(ServerProcess { pid, task });
        }
    }
    found.sort_by(|a, b| a.task.cmp(&b.task).then(a.pid.cmp(&b.pid)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use barman_catalog::{LockKind, try_acquire};

    #[test]
    fn held_locks_of_this_server_only() {
        let dir = tempfile::tempdir().unwrap();
        let id: BackupId = "20260101T000000".parse().unwrap();
        let _backup = try_acquire(dir.path(), &LockKind::Backup("pg".into())).unwrap();
        let _check = try_acquire(dir.path(), &LockKind::BackupId("pg".into(), id)).unwrap();
        // Another server whose name starts like this one's.
        let _other = try_acquire(dir.path(), &LockKind::Backup("pg-b".into())).unwrap();
        // A released lock with its PID left inside.
        drop(try_acquire(dir.path(), &LockKind::ArchiveWal("pg".into())).unwrap());
        let pid = std::process::id();
        let got = list_processes(dir.path(), "pg").unwrap();
        assert_eq!(
            got,
            [
                ServerProcess {
                    pid,
                    task: "backup".into()
                },
                ServerProcess {
                    pid,
                    task: "check-backup 20260101T000000".into()
                },
            ]
        );
        assert!(
            list_processes(&dir.path().join("nope"), "pg")
                .unwrap()
                .is_empty()
        );
    }
}
