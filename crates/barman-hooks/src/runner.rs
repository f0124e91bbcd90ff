//! [`ProcessRunner`]: how a hook script is run, injected so tests can fake it.

mod shell;

use std::fmt;
use std::io;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use shell::ShellRunner;

use crate::capture::{Captured, OutputLimit};
use crate::event::HookPoint;

/// One run of a hook script, as [`Hooks`](crate::Hooks) asks a
/// [`ProcessRunner`] for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScriptCommand<'a> {
    /// The hook being run.
    pub point: HookPoint,
    /// The script text from the configuration, run through `sh -c`.
    pub script: &'a str,
    /// The `BARMAN_*` variables, added to the inherited environment.
    pub env: &'a [(String, String)],
    /// `path_prefix`: prepended to `PATH` (`prefix:$PATH`), as Barman does.
    pub path_prefix: Option<&'a str>,
    /// While set, the script must not start, and a running one is stopped.
    pub cancel: Option<&'a AtomicBool>,
    /// Stop the script after this long.
    pub timeout: Option<Duration>,
    /// How much of stdout and of stderr to keep.
    pub output_limit: OutputLimit,
}

impl<'a> ScriptCommand<'a> {
    /// A run of `script` for hook `point` with `env`, no `path_prefix`, no
    /// cancel flag, no timeout and the default output limit.
    pub fn new(point: HookPoint, script: &'a str, env: &'a [(String, String)]) -> Self {
        Self {
            point,
            script,
            env,
            path_prefix: None,
            cancel: None,
            timeout: None,
            output_limit: OutputLimit::default(),
        }
    }

    /// Sets `path_prefix`.
    #[must_use]
    pub fn path_prefix(mut self, prefix: Option<&'a str>) -> Self {
        self.path_prefix = prefix;
        self
    }

    /// Sets the cancel flag.
    #[must_use]
    pub fn cancel(mut self, flag: Option<&'a AtomicBool>) -> Self {
        self.cancel = flag;
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the output limit.
    #[must_use]
    pub fn output_limit(mut self, limit: OutputLimit) -> Self {
        self.output_limit = limit;
        self
    }
}

/// How a script run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptStatus {
    /// The shell exited with this status (127: command not found).
    Exited(i32),
    /// The shell was killed by this signal.
    Signaled(i32),
}

impl ScriptStatus {
    /// The exit status, `None` for death by a signal.
    pub fn code(self) -> Option<i32> {
        match self {
            Self::Exited(code) => Some(code),
            Self::Signaled(_) => None,
        }
    }
}

impl fmt::Display for ScriptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "exit status {code}"),
            Self::Signaled(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// Why the runner stopped a script before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The cancel flag was set.
    Cancelled,
    /// The timeout passed.
    TimedOut,
}

/// What a script run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScriptOutput {
    /// How it ended.
    pub status: ScriptStatus,
    /// Set when the runner stopped it (SIGTERM, then SIGKILL after a grace period).
    pub stopped: Option<StopReason>,
    /// Its standard output, bounded.
    pub stdout: Captured,
    /// Its standard error, bounded.
    pub stderr: Captured,
}

impl ScriptOutput {
    /// A run that exited with `code` and printed nothing.
    pub fn exited(code: i32) -> Self {
        Self::new(ScriptStatus::Exited(code))
    }

    /// A run killed by `signal` that printed nothing.
    pub fn signaled(signal: i32) -> Self {
        Self::new(ScriptStatus::Signaled(signal))
    }

    fn new(status: ScriptStatus) -> Self {
        Self {
            status,
            stopped: None,
            stdout: Captured::default(),
            stderr: Captured::default(),
        }
    }

    /// Marks the run as stopped by the runner.
    #[must_use]
    pub fn stopped(mut self, reason: StopReason) -> Self {
        self.stopped = Some(reason);
        self
    }

    /// Sets the captured standard output.
    #[must_use]
    pub fn stdout(mut self, captured: Captured) -> Self {
        self.stdout = captured;
        self
    }

    /// Sets the captured standard error.
    #[must_use]
    pub fn stderr(mut self, captured: Captured) -> Self {
        self.stderr = captured;
        self
    }
}

/// Runs hook scripts. [`ShellRunner`] is the real one; tests inject fakes.
///
/// `Err` means the script could not be started at all (no shell, no fork);
/// [`Hooks`](crate::Hooks) treats it like a failed run, as Barman treats an
/// exception while running a hook.
pub trait ProcessRunner: Send + Sync + fmt::Debug {
    /// Runs `command` to its end (or until it is stopped).
    fn run(&self, command: &ScriptCommand<'_>) -> io::Result<ScriptOutput>;
}
