//! Hook scripts that log their runs, and the reader of that log.
//!
//! [`log_script`] is a `/bin/sh` hook script appending one line per run to a
//! log: `$BARMAN_PHASE $BARMAN_HOOK $BARMAN_RETRY`, then every `BARMAN_*`
//! variable of its environment (sorted), each after a `|`. [`take_runs`]
//! reads those lines back as [`HookRun`]s and empties the log.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// One run of a hook script: `phase hook retry` and its `BARMAN_*`
/// variables (without the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// `$BARMAN_PHASE $BARMAN_HOOK $BARMAN_RETRY`, e.g. `pre backup_script 0`.
    pub head: String,
    /// Every `BARMAN_*` variable, without the `BARMAN_` prefix.
    pub vars: BTreeMap<String, String>,
}

impl HookRun {
    /// The value of `BARMAN_<name>`; panics when the run did not have it.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("BARMAN_{name} is not set in {self:?}"))
    }

    /// The event (`backup`, `wal_delete`, ...): `BARMAN_HOOK` without its
    /// `_script` or `_retry_script` suffix.
    pub fn event(&self) -> &str {
        let hook = self.var("HOOK");
        hook.strip_suffix("_retry_script")
            .or_else(|| hook.strip_suffix("_script"))
            .unwrap()
    }

    /// What the run is about: the backup id or the WAL name (empty for
    /// neither).
    pub fn subject(&self) -> &str {
        self.vars
            .get("BACKUP_ID")
            .or_else(|| self.vars.get("SEGMENT"))
            .map_or("", String::as_str)
    }

    /// The head and the subject: `pre backup_script 0 20261127T100000`.
    pub fn line(&self) -> String {
        format!("{} {}", self.head, self.subject())
    }
}

/// The text of a `/bin/sh` hook script appending one line per run to `log`
/// (see the module documentation).
pub fn log_script(log: &Path) -> String {
    format!(
        "#!/bin/sh\n{{ printf '%s %s %s' \"$BARMAN_PHASE\" \"$BARMAN_HOOK\" \"$BARMAN_RETRY\"; \
         env | grep '^BARMAN_' | sort | while IFS= read -r v; do printf '|%s' \"$v\"; done; echo; }} >> {}\n",
        log.display()
    )
}

/// Writes the script `text` at `path`, mode 0755.
pub fn write_script(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(path, e))?;
    crate::chmod(path, 0o755)
}

/// The runs a [`log_script`] log holds, in order.
pub fn parse_runs(text: &str) -> Vec<HookRun> {
    text.lines()
        .map(|line| {
            let mut parts = line.split('|');
            let head = parts.next().unwrap().to_owned();
            let vars = parts
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.trim_start_matches("BARMAN_").to_owned(), v.to_owned())
                })
                .collect();
            HookRun { head, vars }
        })
        .collect()
}

/// The runs logged in `log` so far (none when it does not exist), and the
/// log removed.
pub fn take_runs(log: &Path) -> Vec<HookRun> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let _ = fs::remove_file(log);
    parse_runs(&text)
}

/// The heads of `runs` (`phase hook retry`), in order.
pub fn heads(runs: &[HookRun]) -> Vec<&str> {
    runs.iter().map(|r| r.head.as_str()).collect()
}
