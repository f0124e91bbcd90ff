//! [`Hooks`]: runs the configured scripts around an operation, as Barman's
//! `HookScriptRunner` and `RetryHookScriptRunner` do.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::capture::OutputLimit;
use crate::env::HookEnv;
use crate::error::Result;
use crate::event::{HookEvent, HookKind, HookPhase, HookPoint};
use crate::pacing::{RetryPacing, Sleeper, ThreadSleeper};
use crate::retry::{EXIT_ABORT_STOP, RetryOutcome};
use crate::runner::{
    ProcessRunner, ScriptCommand, ScriptOutput, ScriptStatus, ShellRunner, StopReason,
};

/// How one run of a script ended, as [`Hooks`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEnd {
    /// The script ended by itself with this status.
    Status(ScriptStatus),
    /// The timeout passed and the runner stopped it.
    TimedOut,
    /// The cancel flag was set: the script was not started, or was stopped.
    Interrupted,
    /// The script could not be started (no shell, no fork).
    SpawnFailed,
}

/// How a retry hook ended, after as many runs as it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEnd {
    /// Exit 0.
    Success,
    /// Exit 62 (`ABORT_CONTINUE`): logged, the operation goes on.
    AbortContinue,
    /// Exit 63 (`ABORT_STOP`): before the operation it stops it; after, it
    /// is logged and treated as [`AbortContinue`](Self::AbortContinue).
    AbortStop,
    /// The cancel flag ended the retry loop.
    Interrupted,
}

/// The runs of one retry hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryRun {
    /// How the loop ended.
    pub end: RetryEnd,
    /// How many times the script was started.
    pub attempts: u32,
}

/// Why a pre retry hook stopped the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// The script exited 63 (`ABORT_STOP`).
    AbortStop,
    /// The cancel flag was set while the hooks ran.
    Interrupted,
}

/// A pre hook stopped the operation: a retry hook exited 63, or the cancel
/// flag was set. The text for 63 is Barman's `AbortedRetryHookScript`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct HookAbort {
    /// The hook that stopped it.
    pub point: HookPoint,
    /// Its script.
    pub script: String,
    /// Why.
    pub reason: AbortReason,
}

impl fmt::Display for HookAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            AbortReason::AbortStop => write!(
                f,
                "Abort '{}' retry hook script ({}, exit code: {EXIT_ABORT_STOP})",
                self.point, self.script
            ),
            AbortReason::Interrupted => write!(
                f,
                "Interrupted '{}' hook script ({})",
                self.point, self.script
            ),
        }
    }
}

/// The hook scripts of one server and how to run them.
///
/// Built from the configuration ([`from_config`](Self::from_config) or
/// [`script`](Self::script)), then used around each operation with
/// [`around`](Self::around), or step by step with [`pre`](Self::pre) and
/// [`post`](Self::post):
///
/// 1. standard pre hook: run once, its exit status logged and ignored;
/// 2. retry pre hook: run until it exits 0, 62 or 63, pausing as
///    [`RetryPacing`] says (3 s, and 60 s after every fifth short break); 63
///    stops the operation ([`HookAbort`]);
/// 3. the operation;
/// 4. retry post hook: as 2, but 63 is logged and treated as 62;
/// 5. standard post hook.
///
/// Any other exit status of a retry hook, death by a signal, a timeout or a
/// failure to start means "run it again", as in Barman: a script that does
/// not exist (`sh` exits 127) is retried for ever, with a warning naming it
/// each time. A standard hook with a missing script logs that warning once.
///
/// Output: each run's stdout and stderr are kept within the
/// [`OutputLimit`] and logged through `tracing` (at WARN with the status when
/// the exit status is not 0, as Barman logs "returned N / Output details",
/// at DEBUG otherwise).
///
/// Interruption: while the cancel flag ([`cancel_flag`](Self::cancel_flag))
/// is set no script starts, a running one is stopped (SIGTERM to its process
/// group, SIGKILL after the runner's grace period), a retry loop ends and a
/// pre phase reports [`AbortReason::Interrupted`]. The flag is a level, not
/// an event: clear it if post hooks should still run after an interruption.
#[derive(Debug, Clone)]
pub struct Hooks {
    scripts: BTreeMap<HookPoint, String>,
    path_prefix: Option<String>,
    runner: Arc<dyn ProcessRunner>,
    sleeper: Arc<dyn Sleeper>,
    pacing: RetryPacing,
    output_limit: OutputLimit,
    timeout: Option<Duration>,
    cancel: Option<Arc<AtomicBool>>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self::new()
    }
}

impl Hooks {
    /// No scripts; [`ShellRunner`], [`ThreadSleeper`], Barman's pacing, the
    /// default output limit, no timeout, no cancel flag.
    pub fn new() -> Self {
        Self {
            scripts: BTreeMap::new(),
            path_prefix: None,
            runner: Arc::new(ShellRunner::new()),
            sleeper: Arc::new(ThreadSleeper),
            pacing: RetryPacing::default(),
            output_limit: OutputLimit::default(),
            timeout: None,
            cancel: None,
        }
    }

    /// The scripts of a server's configuration, by option name
    /// (`pre_backup_retry_script` → script). An empty script means none, as
    /// in Barman. Any other option name is an error.
    pub fn from_config<K, V, I>(options: I) -> Result<Self>
    where
        K: AsRef<str>,
        V: Into<String>,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut hooks = Self::new();
        for (key, script) in options {
            let point: HookPoint = key.as_ref().parse()?;
            hooks = hooks.script(point, script);
        }
        Ok(hooks)
    }

    /// Sets the script of hook `point` (an empty script means none).
    #[must_use]
    pub fn script(mut self, point: HookPoint, script: impl Into<String>) -> Self {
        let script = script.into();
        if script.is_empty() {
            self.scripts.remove(&point);
        } else {
            self.scripts.insert(point, script);
        }
        self
    }

    /// The script configured for `point`.
    pub fn script_for(&self, point: HookPoint) -> Option<&str> {
        self.scripts.get(&point).map(String::as_str)
    }

    /// `path_prefix`: prepended to `PATH` for every script.
    #[must_use]
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// The process runner (default [`ShellRunner`]).
    #[must_use]
    pub fn runner(mut self, runner: impl ProcessRunner + 'static) -> Self {
        self.runner = Arc::new(runner);
        self
    }

    /// The sleeper used between retry attempts (default [`ThreadSleeper`]).
    #[must_use]
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// The retry pacing (default Barman's: 3 s, 60 s, 5).
    #[must_use]
    pub fn pacing(mut self, pacing: RetryPacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// How much of each run's stdout and stderr to keep for the log.
    #[must_use]
    pub fn output_limit(mut self, limit: OutputLimit) -> Self {
        self.output_limit = limit;
        self
    }

    /// Stops any single run of a script after `timeout` (Barman has no
    /// timeout; a stopped retry hook counts as failed and is run again).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The cancel flag the embedding program sets to interrupt hooks (from
    /// its SIGINT/SIGTERM handler, for instance).
    #[must_use]
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Runs the standard hook of `env`'s point once, if a script is
    /// configured (`None` otherwise). Its end is logged and otherwise ignored.
    pub fn run_standard(&self, env: &HookEnv) -> Option<RunEnd> {
        let Prepared {
            point,
            script,
            vars,
        } = self.prepare(env, HookKind::Standard)?;
        Some(self.run_once(point, script, &vars))
    }

    /// Runs the retry hook of `env`'s point until it exits 0, 62 or 63 or the
    /// cancel flag is set, if a script is configured (`None` otherwise).
    pub fn run_retry(&self, env: &HookEnv) -> Option<RetryRun> {
        let Prepared {
            point,
            script,
            vars,
        } = self.prepare(env, HookKind::Retry)?;
        let mut attempts: u32 = 0;
        let mut failures: u32 = 0;
        loop {
            attempts = attempts.wrapping_add(1);
            let end = match self.run_once(point, script, &vars) {
                RunEnd::Interrupted => Some(RetryEnd::Interrupted),
                RunEnd::Status(status) => match RetryOutcome::from_status_code(status.code()) {
                    RetryOutcome::Success => Some(RetryEnd::Success),
                    RetryOutcome::AbortContinue => {
                        tracing::warn!(
                            hook = %point,
                            "{script} was aborted (got exit status 62, Barman resumes)"
                        );
                        Some(RetryEnd::AbortContinue)
                    }
                    RetryOutcome::AbortStop => {
                        tracing::error!(
                            hook = %point,
                            "{script} was aborted (got exit status 63, Barman requested to stop)"
                        );
                        Some(RetryEnd::AbortStop)
                    }
                    RetryOutcome::Retry => None,
                },
                RunEnd::TimedOut | RunEnd::SpawnFailed => None,
            };
            if let Some(end) = end {
                return Some(RetryRun { end, attempts });
            }
            failures = failures.wrapping_add(1);
            let pause = self.pacing.pause_after(failures);
            if self.pacing.naps_after(failures) {
                tracing::debug!(
                    hook = %point,
                    "Reached {} failures. Take a nap then retry again in {pause:?}",
                    self.pacing.attempts_before_nap
                );
            } else {
                tracing::debug!(hook = %point, "Retry again in {pause:?}");
            }
            self.sleeper.sleep(pause, self.cancel.as_deref());
            if self.cancelled() {
                tracing::warn!(hook = %point, "{script}: retry loop interrupted");
                return Some(RetryRun {
                    end: RetryEnd::Interrupted,
                    attempts,
                });
            }
        }
    }

    /// Runs the pre hooks of `event`: standard, then retry. `env` builds the
    /// environment of each hook point. `Err` when the retry hook exited 63,
    /// or when the cancel flag interrupted either hook: the operation must
    /// not run.
    pub fn pre(
        &self,
        event: HookEvent,
        env: impl Fn(HookPoint) -> HookEnv,
    ) -> Result<(), HookAbort> {
        let abort = |point, reason| HookAbort {
            point,
            script: self.script_for(point).unwrap_or_default().to_owned(),
            reason,
        };
        let standard = HookPoint::new(event, HookPhase::Pre, HookKind::Standard);
        if self.run_standard(&env(standard)) == Some(RunEnd::Interrupted) {
            return Err(abort(standard, AbortReason::Interrupted));
        }
        let retry = HookPoint::new(event, HookPhase::Pre, HookKind::Retry);
        match self.run_retry(&env(retry)).map(|run| run.end) {
            Some(RetryEnd::AbortStop) => Err(abort(retry, AbortReason::AbortStop)),
            Some(RetryEnd::Interrupted) => Err(abort(retry, AbortReason::Interrupted)),
            _ => Ok(()),
        }
    }

    /// Runs the post hooks of `event`: retry (63 logged and treated as 62),
    /// then standard. Never fails.
    pub fn post(&self, event: HookEvent, env: impl Fn(HookPoint) -> HookEnv) {
        let retry = HookPoint::new(event, HookPhase::Post, HookKind::Retry);
        if let Some(RetryRun {
            end: RetryEnd::AbortStop,
            ..
        }) = self.run_retry(&env(retry))
        {
            tracing::warn!(
                hook = %retry,
                "Ignoring stop request after receiving abort (exit code {EXIT_ABORT_STOP}) from \
                 post-{} retry hook script: {}",
                event.name().replace('_', "-"),
                self.script_for(retry).unwrap_or_default()
            );
        }
        self.run_standard(&env(HookPoint::new(
            event,
            HookPhase::Post,
            HookKind::Standard,
        )));
    }

    /// Runs `operation` inside the hooks of `event`: standard pre, retry
    /// pre, the operation, retry post, standard post.
    ///
    /// `pre_env` builds the pre hooks' environment; `post_env` builds the
    /// post hooks' from the operation's result (its status and
    /// `BARMAN_ERROR`), so the post hooks run whether the operation
    /// succeeded or failed — return a `Result` from `operation` and let
    /// `post_env` look at it.
    ///
    /// When a pre retry hook stops the operation ([`HookAbort`]), the
    /// operation does not run and `around` returns the abort. The post hooks
    /// then still run, with `Err(&abort)`, for the events where Barman runs
    /// them ([`HookEvent::runs_post_hooks_after_abort`]: `backup` and
    /// `archive`, whose pre hooks sit inside the operation's try/finally);
    /// for `delete`, `recovery` and `wal_delete` they do not.
    pub fn around<T>(
        &self,
        event: HookEvent,
        pre_env: impl Fn(HookPoint) -> HookEnv,
        operation: impl FnOnce() -> T,
        post_env: impl Fn(HookPoint, std::result::Result<&T, &HookAbort>) -> HookEnv,
    ) -> std::result::Result<T, HookAbort> {
        if let Err(abort) = self.pre(event, pre_env) {
            if event.runs_post_hooks_after_abort() {
                self.post(event, |point| post_env(point, Err(&abort)));
            }
            return Err(abort);
        }
        let value = operation();
        self.post(event, |point| post_env(point, Ok(&value)));
        Ok(value)
    }

    /// The script and environment of `env`'s point, if it is configured and
    /// of `kind`; logs why not otherwise.
    fn prepare(&self, env: &HookEnv, kind: HookKind) -> Option<Prepared<'_>> {
        let point = env.point();
        if point.kind != kind {
            tracing::error!(hook = %point, "not a {kind:?} hook: not run");
            return None;
        }
        let script = self.script_for(point)?;
        match env.vars() {
            Ok(vars) => Some(Prepared {
                point,
                script,
                vars,
            }),
            Err(e) => {
                tracing::error!(hook = %point, "{e}: {script} not run");
                None
            }
        }
    }

    /// One run of `script`, logged as Barman logs it.
    fn run_once(&self, point: HookPoint, script: &str, vars: &[(String, String)]) -> RunEnd {
        if self.cancelled() {
            tracing::warn!(hook = %point, "{script} not run: interrupted");
            return RunEnd::Interrupted;
        }
        tracing::debug!(hook = %point, "Attempt to run {}: {script}", point.hook_name());
        let command = ScriptCommand::new(point, script, vars)
            .path_prefix(self.path_prefix.as_deref())
            .cancel(self.cancel.as_deref())
            .timeout(self.timeout)
            .output_limit(self.output_limit);
        match self.runner.run(&command) {
            Ok(output) => log_output(point, script, &output),
            Err(e) => {
                tracing::error!(hook = %point, "cannot run {point} script {script}: {e}");
                RunEnd::SpawnFailed
            }
        }
    }
}

/// A configured hook ready to run.
struct Prepared<'a> {
    point: HookPoint,
    script: &'a str,
    vars: Vec<(String, String)>,
}

/// Logs one run's end and output; its [`RunEnd`].
fn log_output(point: HookPoint, script: &str, output: &ScriptOutput) -> RunEnd {
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    match output.stopped {
        Some(StopReason::Cancelled) => {
            tracing::warn!(hook = %point, "{script} interrupted ({})\nOutput details:\n{stdout}{stderr}", output.status);
            return RunEnd::Interrupted;
        }
        Some(StopReason::TimedOut) => {
            tracing::warn!(hook = %point, "{script} timed out ({})\nOutput details:\n{stdout}{stderr}", output.status);
            return RunEnd::TimedOut;
        }
        None => {}
    }
    match output.status {
        ScriptStatus::Exited(0) => {
            tracing::debug!(hook = %point, %stdout, %stderr, "{script} returned 0");
        }
        ScriptStatus::Exited(code) => {
            tracing::warn!(hook = %point, "{script} returned {code}\nOutput details:\n{stdout}{stderr}");
            match code {
                127 => tracing::warn!(
                    hook = %point,
                    "{point}: the shell could not find the command of `{script}` (exit status 127): \
                     check that the script exists, or is on PATH / path_prefix"
                ),
                126 => tracing::warn!(
                    hook = %point,
                    "{point}: `{script}` could not be executed (exit status 126): check its permissions"
                ),
                _ => {}
            }
        }
        ScriptStatus::Signaled(signal) => {
            tracing::warn!(hook = %point, "{script} was killed by signal {signal}\nOutput details:\n{stdout}{stderr}");
        }
    }
    RunEnd::Status(output.status)
}

impl HookEvent {
    /// Whether Barman runs the post hooks after a pre retry hook stopped the
    /// operation: yes for `backup` and `archive` (their pre hooks run inside
    /// the operation's try/finally, which runs the post hooks), no for
    /// `delete`, `recovery` and `wal_delete` (the abort leaves before them).
    pub fn runs_post_hooks_after_abort(self) -> bool {
        matches!(self, Self::Backup | Self::Archive)
    }
}

#[cfg(test)]
mod tests;
