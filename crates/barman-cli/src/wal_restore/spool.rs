//! The spool of WAL files fetched ahead by `--parallel`, and delivering a
//! spooled file to `WAL_DEST`.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::thread;

use barman_fs::TempFile;
use barman_wal::WalFileName;

use super::fetch::{self, FetchError};
use crate::ssh::Remote;
use crate::{Warn, Warning};

/// Moves `spooled` onto `dest`: a rename, or across file systems a copy
/// into `temp` (a temporary file next to `dest`) committed durably, and
/// removal of the spooled file.
pub fn deliver(spooled: &Path, dest: &Path, temp: TempFile) -> io::Result<()> {
    match barman_fs::rename_durable(spooled, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let mut source = File::open(spooled)?;
            let mut temp = temp;
            io::copy(&mut source, &mut temp)?;
            temp.commit()?;
            fs::remove_file(spooled)
        }
        Err(e) => Err(e.into()),
    }
}

/// Fetches `names` concurrently into `spool_dir` while `main` runs on the
/// calling thread; returns what `main` returned. Each file is written as a
/// hidden temporary file in the spool, synced and renamed to its name; a
/// failed fetch leaves nothing (and a warning).
pub fn fetch_with_prefetch<T>(
    remote: &Remote,
    spool_dir: &Path,
    names: &[String],
    command_for: &(dyn Fn(&str) -> String + Sync),
    main: impl FnOnce() -> T,
    warn: Warn<'_>,
) -> T {
    thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                scope.spawn(move || {
                    let result = fetch_into_spool(remote, spool_dir, name, &command_for(name));
                    (name, result)
                })
            })
            .collect();
        let result = main();
        for handle in handles {
            match handle.join() {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(message))) => warn(&Warning::FetchAheadFailed {
                    wal: name.clone(),
                    message,
                }),
                Err(_) => warn(&Warning::ThreadPanicked),
            }
        }
        result
    })
}

/// Fetches one WAL into the spool.
fn fetch_into_spool(
    remote: &Remote,
    spool_dir: &Path,
    name: &str,
    command: &str,
) -> Result<(), String> {
    let temp = TempFile::create(spool_dir.join(name), barman_fs::FILE_MODE)
        .map_err(|e| format!("cannot create a file in {}: {e}", spool_dir.display()))?;
    match fetch::fetch(remote, command, temp.file()) {
        Ok(()) => {}
        Err(FetchError::Ssh(ended)) => return Err(format!("ssh ended with {ended:?}")),
        Err(FetchError::Spawn(e) | FetchError::Local(e)) => return Err(e.to_string()),
    }
    temp.commit().map_err(|e| e.to_string())
}

/// The names `get-wal --peek` printed after the requested one, keeping
/// only valid WAL file names not already spooled, at most `limit`.
pub fn extra_names(peeked: &[String], spool_dir: &Path, limit: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    peeked
        .iter()
        .filter(|name| name.parse::<WalFileName>().is_ok() && seen.insert(name.as_str()))
        .filter(|name| fs::symlink_metadata(spool_dir.join(name)).is_err())
        .take(limit)
        .cloned()
        .collect()
}
