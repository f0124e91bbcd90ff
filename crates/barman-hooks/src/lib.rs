//! Barman hook scripts: events, phases, standard and retry hooks, exit-code
//! semantics and the `BARMAN_*` environment scripts run with.
//!
//! Barman runs user scripts around five operations ([`HookEvent`]): backup,
//! archive (per WAL), delete, recovery and WAL delete. Each has four slots
//! ([`HookPoint`]), run in this order: standard pre, retry pre, *the
//! operation*, retry post, standard post. Their configuration keys are
//! `<phase>_<event>_[retry_]script` ([`config_key`], [`all_config_keys`]).
//!
//! * A standard hook's exit status is logged and ignored.
//! * A retry hook runs again until it exits 0, 62 or 63 ([`RetryOutcome`]);
//!   63 (`ABORT_STOP`) in a pre hook aborts the operation.
//! * [`HookEnv`] builds the environment: the common variables, plus the
//!   backup, recovery or WAL set the event needs, exactly as Barman fills them
//!   (JSON with sorted keys, Python float text).
//!
//! Running the scripts (shell, `path_prefix`, retry pacing, output capture)
//! is not in this crate yet.
//!
//! # Example
//!
//! ```
//! use barman_hooks::{
//!     config_key, BackupVars, HookEnv, HookEvent, HookKind, HookPhase, HookPoint, RetryOutcome,
//! };
//!
//! assert_eq!(config_key(HookEvent::Backup, HookPhase::Pre, HookKind::Retry), "pre_backup_retry_script");
//! let point: HookPoint = "post_wal_delete_script".parse()?;
//! assert_eq!(point.event, HookEvent::WalDelete);
//!
//! let env = HookEnv::new(
//!     HookPoint::new(HookEvent::Backup, HookPhase::Pre, HookKind::Retry),
//!     "3.20.1",
//!     "pg",
//!     "/etc/barman.conf",
//! )
//! .backup(BackupVars::new("20261122T041536", "/b/pg/base/20261122T041536", "/b/pg/meta/20261122T041536-backup.info", "EMPTY"));
//! let vars = env.vars()?;
//! assert!(vars.contains(&("BARMAN_HOOK".to_owned(), "backup_retry_script".to_owned())));
//! assert!(vars.contains(&("BARMAN_RETRY".to_owned(), "1".to_owned())));
//!
//! // 63 from a pre retry hook stops the backup; from a post hook it does not.
//! assert!(RetryOutcome::from_exit_code(63).aborts_operation(HookPhase::Pre));
//! assert_eq!(RetryOutcome::from_exit_code(1), RetryOutcome::Retry);
//! # Ok::<(), barman_hooks::Error>(())
//! ```

mod env;
mod error;
mod event;
mod retry;

pub use env::{BackupVars, HookEnv, JsonScalar, RecoveryVars, WalVars};
pub use error::{Error, Result};
pub use event::{
    HookEvent, HookKind, HookPhase, HookPoint, all_config_keys, config_key, parse_config_key,
};
pub use retry::{EXIT_ABORT_CONTINUE, EXIT_ABORT_STOP, EXIT_SUCCESS, RetryOutcome};

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
