//! Barman hook scripts: events, phases, standard and retry hooks, exit-code
//! semantics, the `BARMAN_*` environment, and the runner that executes them
//! around an operation.
//!
//! Barman runs user scripts around five operations ([`HookEvent`]): backup,
//! archive (per WAL), delete, recovery and WAL delete. Each has four slots
//! ([`HookPoint`]), run in this order: standard pre, retry pre, *the
//! operation*, retry post, standard post. Their configuration keys are
//! `<phase>_<event>_[retry_]script` ([`config_key`], [`all_config_keys`]).
//!
//! * A standard hook's exit status is logged and ignored.
//! * A retry hook runs again until it exits 0, 62 or 63 ([`RetryOutcome`]);
//!   63 (`ABORT_STOP`) in a pre hook aborts the operation, in a post hook it
//!   is logged and treated as 62. Between runs it pauses as [`RetryPacing`]
//!   says (Barman: 3 s, and 60 s in place of every sixth pause).
//! * [`HookEnv`] builds the environment: the common variables, plus the
//!   backup, recovery or WAL set the event needs, exactly as Barman fills them
//!   (JSON with sorted keys, Python float text).
//! * [`Hooks`] holds a server's scripts and runs them: [`Hooks::around`]
//!   wraps an operation (post hooks always run, and see the operation's
//!   result through their environment); [`Hooks::pre`] / [`Hooks::post`] do
//!   the two halves. Scripts run through a [`ProcessRunner`] — by default
//!   [`ShellRunner`], `/bin/sh -c` with `path_prefix` prepended to `PATH`,
//!   stdin from `/dev/null`, stdout and stderr captured within an
//!   [`OutputLimit`] into the `tracing` log, and a cancel flag or timeout that
//!   SIGTERMs the hook's process group (SIGKILL after a grace period). Waiting
//!   goes through a [`Sleeper`], so tests take no time.
//!
//! # Example
//!
//! ```
//! use barman_hooks::{
//!     config_key, AbortReason, BackupVars, HookEnv, HookEvent, HookKind, HookPhase, HookPoint,
//!     Hooks, RetryOutcome,
//! };
//!
//! assert_eq!(config_key(HookEvent::Backup, HookPhase::Pre, HookKind::Retry), "pre_backup_retry_script");
//! let point: HookPoint = "post_wal_delete_script".parse()?;
//! assert_eq!(point.event, HookEvent::WalDelete);
//!
//! let env = |point, status: &str| {
//!     HookEnv::new(point, "3.20.1", "pg", "/etc/barman.conf").backup(BackupVars::new(
//!         "20261122T041536",
//!         "/b/pg/base/20261122T041536",
//!         "/b/pg/meta/20261122T041536-backup.info",
//!         status,
//!     ))
//! };
//! let vars = env(HookPoint::new(HookEvent::Backup, HookPhase::Pre, HookKind::Retry), "EMPTY").vars()?;
//! assert!(vars.contains(&("BARMAN_HOOK".to_owned(), "backup_retry_script".to_owned())));
//! assert!(vars.contains(&("BARMAN_RETRY".to_owned(), "1".to_owned())));
//!
//! // 63 from a pre retry hook stops the backup; from a post hook it does not.
//! assert!(RetryOutcome::from_exit_code(63).aborts_operation(HookPhase::Pre));
//! assert_eq!(RetryOutcome::from_exit_code(1), RetryOutcome::Retry);
//!
//! // Real scripts, through `sh -c`: the pre retry hook stops the backup, and
//! // the post hooks still run (for backups, as in Barman) and see FAILED.
//! let dir = tempfile::tempdir()?;
//! let log = dir.path().join("hooks.log");
//! let hooks = Hooks::from_config([
//!     ("pre_backup_retry_script", "[ \"$BARMAN_STATUS\" = EMPTY ] && exit 63".to_owned()),
//!     ("post_backup_script", format!("echo \"$BARMAN_PHASE $BARMAN_STATUS\" >> {}", log.display())),
//! ])?;
//! let result = hooks.around(
//!     HookEvent::Backup,
//!     |point| env(point, "EMPTY"),
//!     || unreachable!("the backup does not start"),
//!     |point, outcome: Result<&(), _>| env(point, if outcome.is_ok() { "DONE" } else { "FAILED" }),
//! );
//! let abort = result.unwrap_err();
//! assert_eq!(abort.reason, AbortReason::AbortStop);
//! assert!(abort.to_string().starts_with("Abort 'pre_backup_retry_script' retry hook script"));
//! assert_eq!(std::fs::read_to_string(&log)?, "post FAILED\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod capture;
mod env;
mod error;
mod event;
mod hooks;
mod pacing;
mod retry;
mod runner;

pub use capture::{Captured, OutputLimit};
pub use env::{BackupVars, HookEnv, JsonScalar, RecoveryVars, WalVars};
pub use error::{Error, Result};
pub use event::{
    HookEvent, HookKind, HookPhase, HookPoint, all_config_keys, config_key, parse_config_key,
};
pub use hooks::{AbortReason, HookAbort, Hooks, RetryEnd, RetryRun, RunEnd};
pub use pacing::{RetryPacing, Sleeper, ThreadSleeper};
pub use retry::{EXIT_ABORT_CONTINUE, EXIT_ABORT_STOP, EXIT_SUCCESS, RetryOutcome};
pub use runner::{
    ProcessRunner, ScriptCommand, ScriptOutput, ScriptStatus, ShellRunner, StopReason,
};

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
