//! Unit tests of [`Hooks`] with a fake process runner and a fake sleeper:
//! ordering, exit-code semantics and pacing as Barman's `hooks.py` has them.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Mutex;

use super::*;
use crate::capture::Captured;
use crate::env::BackupVars;
use crate::event::HookKind::{Retry, Standard};
use crate::event::HookPhase::{Post, Pre};

/// What happened, in order: hook runs (`pre_backup_script`) and `operation`.
type Journal = Arc<Mutex<Vec<String>>>;

/// One recorded hook run.
#[derive(Debug, Clone)]
struct Call {
    script: String,
    env: HashMap<String, String>,
    path_prefix: Option<String>,
    timeout: Option<Duration>,
    output_limit: OutputLimit,
}

/// Answers each script with the next queued result (exit 0 once the queue is empty).
#[derive(Debug, Default)]
struct FakeRunner {
    results: Mutex<HashMap<String, VecDeque<io::Result<ScriptOutput>>>>,
    calls: Mutex<Vec<Call>>,
    journal: Journal,
}

impl FakeRunner {
    fn new(journal: &Journal) -> Arc<Self> {
        Arc::new(Self {
            journal: Arc::clone(journal),
            ..Self::default()
        })
    }

    fn answer(&self, script: &str, results: impl IntoIterator<Item = io::Result<ScriptOutput>>) {
        self.results
            .lock()
            .unwrap()
            .entry(script.to_owned())
            .or_default()
            .extend(results);
    }

    fn exits(&self, script: &str, codes: &[i32]) {
        self.answer(script, codes.iter().map(|&c| Ok(ScriptOutput::exited(c))));
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl ProcessRunner for Arc<FakeRunner> {
    fn run(&self, command: &ScriptCommand<'_>) -> io::Result<ScriptOutput> {
        self.journal
            .lock()
            .unwrap()
            .push(command.point.config_key());
        self.calls.lock().unwrap().push(Call {
            script: command.script.to_owned(),
            env: command.env.iter().cloned().collect(),
            path_prefix: command.path_prefix.map(str::to_owned),
            timeout: command.timeout,
            output_limit: command.output_limit,
        });
        self.results
            .lock()
            .unwrap()
            .get_mut(command.script)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| Ok(ScriptOutput::exited(0)))
    }
}

/// Records the pauses; sets the cancel flag at the `cancel_at`-th one.
#[derive(Debug, Default)]
struct FakeSleeper {
    pauses: Mutex<Vec<Duration>>,
    cancel_at: Option<(usize, Arc<AtomicBool>)>,
}

impl FakeSleeper {
    fn pauses_secs(&self) -> Vec<u64> {
        self.pauses
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_secs)
            .collect()
    }
}

impl Sleeper for Arc<FakeSleeper> {
    fn sleep(&self, duration: Duration, _cancel: Option<&AtomicBool>) {
        let mut pauses = self.pauses.lock().unwrap();
        pauses.push(duration);
        if let Some((at, flag)) = &self.cancel_at
            && pauses.len() == *at
        {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

const ALL_FOUR: [(HookPhase, HookKind, &str); 4] = [
    (Pre, Standard, "pre.sh"),
    (Pre, Retry, "pre-retry.sh"),
    (Post, Retry, "post-retry.sh"),
    (Post, Standard, "post.sh"),
];

struct Fixture {
    journal: Journal,
    runner: Arc<FakeRunner>,
    sleeper: Arc<FakeSleeper>,
    hooks: Hooks,
}

fn fixture(event: HookEvent) -> Fixture {
    fixture_with(event, FakeSleeper::default())
}

fn fixture_with(event: HookEvent, sleeper: FakeSleeper) -> Fixture {
    let journal = Journal::default();
    let runner = FakeRunner::new(&journal);
    let sleeper = Arc::new(sleeper);
    let mut hooks = Hooks::new()
        .runner(Arc::clone(&runner))
        .sleeper(Arc::clone(&sleeper));
    for (phase, kind, script) in ALL_FOUR {
        hooks = hooks.script(HookPoint::new(event, phase, kind), script);
    }
    Fixture {
        journal,
        runner,
        sleeper,
        hooks,
    }
}

/// The environment of `point` with the variable sets its event needs.
fn env_for(point: HookPoint, status: &str, error: Option<&str>) -> HookEnv {
    if point.event.is_wal_event() {
        let env = env_wal(point);
        return match error {
            Some(error) => env.error(error),
            None => env,
        };
    }
    let mut vars = BackupVars::new(
        "20261122T041536",
        "/b/pg/base/20261122T041536",
        "/b/pg/meta/20261122T041536-backup.info",
        status,
    );
    if let Some(error) = error {
        vars = vars.error(error);
    }
    let env = HookEnv::new(point, "3.20.1", "pg", "/etc/barman.conf").backup(vars);
    if point.event == HookEvent::Recovery {
        env.recovery(crate::env::RecoveryVars::new("/var/lib/pg/restore"))
    } else {
        env
    }
}

/// `around` for a backup-like event: pre hooks see EMPTY; post hooks see
/// DONE, or FAILED with the operation's (or the abort's) error.
fn run_around(
    f: &Fixture,
    event: HookEvent,
    result: std::result::Result<(), &str>,
) -> std::result::Result<std::result::Result<(), String>, HookAbort> {
    let journal = Arc::clone(&f.journal);
    f.hooks.around(
        event,
        |point| env_for(point, "EMPTY", None),
        move || {
            journal.lock().unwrap().push("operation".to_owned());
            result.map_err(str::to_owned)
        },
        |point, outcome| match outcome {
            Ok(Ok(())) => env_for(point, "DONE", None),
            Ok(Err(e)) => env_for(point, "FAILED", Some(e)),
            Err(abort) => env_for(point, "FAILED", Some(&abort.to_string())),
        },
    )
}

fn journal(f: &Fixture) -> Vec<String> {
    f.journal.lock().unwrap().clone()
}

#[test]
fn order_is_standard_pre_retry_pre_operation_retry_post_standard_post() {
    let f = fixture(HookEvent::Backup);
    assert_eq!(run_around(&f, HookEvent::Backup, Ok(())), Ok(Ok(())));
    assert_eq!(
        journal(&f),
        [
            "pre_backup_script",
            "pre_backup_retry_script",
            "operation",
            "post_backup_retry_script",
            "post_backup_script"
        ]
    );
    let seen: Vec<(String, String, String, String)> = f
        .runner
        .calls()
        .iter()
        .map(|c| {
            let get = |k: &str| c.env[k].clone();
            (
                get("BARMAN_PHASE"),
                get("BARMAN_HOOK"),
                get("BARMAN_RETRY"),
                get("BARMAN_STATUS"),
            )
        })
        .collect();
    let row = |p: &str, h: &str, r: &str, s: &str| {
        (p.to_owned(), h.to_owned(), r.to_owned(), s.to_owned())
    };
    assert_eq!(
        seen,
        [
            row("pre", "backup_script", "0", "EMPTY"),
            row("pre", "backup_retry_script", "1", "EMPTY"),
            row("post", "backup_retry_script", "1", "DONE"),
            row("post", "backup_script", "0", "DONE"),
        ]
    );
}

#[test]
fn post_hooks_run_after_a_failed_operation_and_see_its_error() {
    let f = fixture(HookEvent::Delete);
    assert_eq!(
        run_around(&f, HookEvent::Delete, Err("disk on fire")),
        Ok(Err("disk on fire".to_owned()))
    );
    assert_eq!(journal(&f).len(), 5);
    for call in &f.runner.calls()[2..] {
        assert_eq!(call.env["BARMAN_STATUS"], "FAILED");
        assert_eq!(call.env["BARMAN_ERROR"], "disk on fire");
    }
}

#[test]
fn standard_hook_exit_status_is_ignored() {
    let f = fixture(HookEvent::Backup);
    f.runner.exits("pre.sh", &[1]);
    f.runner.exits("post.sh", &[127]);
    f.runner.answer("pre-retry.sh", []);
    assert_eq!(run_around(&f, HookEvent::Backup, Ok(())), Ok(Ok(())));
    assert_eq!(
        journal(&f).len(),
        5,
        "each hook ran once, the operation ran"
    );
    assert!(f.sleeper.pauses_secs().is_empty());
}

#[test]
fn retry_hook_runs_until_success_pausing_3_s() {
    let f = fixture(HookEvent::Backup);
    // 127 (the script does not exist yet) is a transient failure for a retry hook.
    f.runner.exits("pre-retry.sh", &[1, 127, 2, 0]);
    assert_eq!(run_around(&f, HookEvent::Backup, Ok(())), Ok(Ok(())));
    let runs = journal(&f)
        .iter()
        .filter(|j| *j == "pre_backup_retry_script")
        .count();
    assert_eq!(runs, 4);
    assert_eq!(f.sleeper.pauses_secs(), [3, 3, 3]);
    assert!(journal(&f).contains(&"operation".to_owned()));
}

#[test]
fn pacing_is_five_breaks_of_3_s_then_a_nap_of_60_s() {
    let f = fixture(HookEvent::Archive);
    let mut codes = vec![1; 13];
    codes.push(0);
    f.runner.exits("pre-retry.sh", &codes);
    let env = env_wal(HookPoint::new(HookEvent::Archive, Pre, Retry));
    assert_eq!(
        f.hooks.run_retry(&env),
        Some(RetryRun {
            end: RetryEnd::Success,
            attempts: 14
        })
    );
    assert_eq!(
        f.sleeper.pauses_secs(),
        [3, 3, 3, 3, 3, 60, 3, 3, 3, 3, 3, 60, 3]
    );
}

#[test]
fn pacing_values_are_configurable() {
    let f = fixture(HookEvent::Archive);
    let hooks = f.hooks.clone().pacing(RetryPacing {
        break_time: Duration::from_millis(10),
        nap_time: Duration::from_millis(500),
        attempts_before_nap: 1,
    });
    f.runner.exits("pre-retry.sh", &[9, 9, 9, 62]);
    let run = hooks.run_retry(&env_wal(HookPoint::new(HookEvent::Archive, Pre, Retry)));
    assert_eq!(
        run,
        Some(RetryRun {
            end: RetryEnd::AbortContinue,
            attempts: 4
        })
    );
    let millis: Vec<u128> = f
        .sleeper
        .pauses
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_millis)
        .collect();
    assert_eq!(millis, [10, 500, 10]);
}

fn env_wal(point: HookPoint) -> HookEnv {
    HookEnv::new(point, "3.20.1", "pg", "/etc/barman.conf").wal(crate::env::WalVars::new(
        "000000010000000000000006",
        "/b/pg/incoming/000000010000000000000006",
        16_777_216,
        1_795_320_937.0,
    ))
}

#[test]
fn exit_62_from_a_pre_retry_hook_lets_the_operation_run() {
    let f = fixture(HookEvent::Backup);
    f.runner.exits("pre-retry.sh", &[62]);
    assert_eq!(run_around(&f, HookEvent::Backup, Ok(())), Ok(Ok(())));
    assert!(journal(&f).contains(&"operation".to_owned()));
    assert!(f.sleeper.pauses_secs().is_empty());
}

#[test]
fn exit_63_from_a_pre_retry_hook_aborts_the_backup_and_post_hooks_still_run() {
    let f = fixture(HookEvent::Backup);
    f.runner.exits("pre-retry.sh", &[63]);
    let abort = run_around(&f, HookEvent::Backup, Ok(())).unwrap_err();
    assert_eq!(abort.reason, AbortReason::AbortStop);
    assert_eq!(
        abort.to_string(),
        "Abort 'pre_backup_retry_script' retry hook script (pre-retry.sh, exit code: 63)"
    );
    assert_eq!(
        journal(&f),
        [
            "pre_backup_script",
            "pre_backup_retry_script",
            "post_backup_retry_script",
            "post_backup_script"
        ]
    );
    let post = &f.runner.calls()[3];
    assert_eq!(post.env["BARMAN_STATUS"], "FAILED");
    assert_eq!(post.env["BARMAN_ERROR"], abort.to_string());
}

#[test]
fn exit_63_from_a_pre_retry_hook_aborts_delete_recovery_wal_delete_without_post_hooks() {
    for event in [HookEvent::Delete, HookEvent::Recovery, HookEvent::WalDelete] {
        let f = fixture(event);
        f.runner.exits("pre-retry.sh", &[63]);
        let abort = run_around(&f, event, Ok(())).unwrap_err();
        assert_eq!(abort.point, HookPoint::new(event, Pre, Retry));
        assert_eq!(journal(&f).len(), 2, "{event}: {:?}", journal(&f));
    }
}

#[test]
fn exit_63_from_a_post_retry_hook_is_treated_as_62() {
    let f = fixture(HookEvent::Backup);
    f.runner.exits("post-retry.sh", &[1, 63]);
    assert_eq!(
        run_around(&f, HookEvent::Backup, Err("x")),
        Ok(Err("x".to_owned()))
    );
    assert_eq!(
        journal(&f),
        [
            "pre_backup_script",
            "pre_backup_retry_script",
            "operation",
            "post_backup_retry_script",
            "post_backup_retry_script",
            "post_backup_script"
        ]
    );
    assert_eq!(f.sleeper.pauses_secs(), [3]);
}

#[test]
fn signals_timeouts_and_spawn_failures_are_retried() {
    let f = fixture(HookEvent::Backup);
    f.runner.answer(
        "pre-retry.sh",
        [
            Ok(ScriptOutput::signaled(9)),
            Ok(ScriptOutput::exited(0).stopped(StopReason::TimedOut)),
            Err(io::Error::other("fork failed")),
            Ok(ScriptOutput::exited(0)),
        ],
    );
    f.runner
        .answer("pre.sh", [Err(io::Error::other("fork failed"))]);
    assert_eq!(run_around(&f, HookEvent::Backup, Ok(())), Ok(Ok(())));
    assert_eq!(f.sleeper.pauses_secs(), [3, 3, 3]);
}

#[test]
fn cancel_flag_ends_the_retry_loop_and_the_operation_does_not_run() {
    let flag = Arc::new(AtomicBool::new(false));
    let sleeper = FakeSleeper {
        cancel_at: Some((2, Arc::clone(&flag))),
        ..FakeSleeper::default()
    };
    let mut f = fixture_with(HookEvent::Delete, sleeper);
    f.hooks = f.hooks.clone().cancel_flag(Arc::clone(&flag));
    f.runner.exits("pre-retry.sh", &[1; 10]);
    let abort = run_around(&f, HookEvent::Delete, Ok(())).unwrap_err();
    assert_eq!(abort.reason, AbortReason::Interrupted);
    assert_eq!(
        journal(&f),
        [
            "pre_delete_script",
            "pre_delete_retry_script",
            "pre_delete_retry_script"
        ]
    );
    // While the flag stays set no hook starts.
    f.hooks
        .post(HookEvent::Delete, |p| env_for(p, "DONE", None));
    assert_eq!(journal(&f).len(), 3);
    assert_eq!(
        f.hooks.run_standard(&env_for(
            HookPoint::new(HookEvent::Delete, Post, Standard),
            "DONE",
            None
        )),
        Some(RunEnd::Interrupted)
    );
}

#[test]
fn a_run_stopped_by_the_cancel_flag_is_interrupted() {
    let f = fixture(HookEvent::Backup);
    f.runner.answer(
        "pre-retry.sh",
        [Ok(ScriptOutput::signaled(15).stopped(StopReason::Cancelled))],
    );
    let abort = run_around(&f, HookEvent::Backup, Ok(())).unwrap_err();
    assert_eq!(abort.reason, AbortReason::Interrupted);
    assert!(!journal(&f).contains(&"operation".to_owned()));
}

#[test]
fn an_interrupted_standard_pre_hook_stops_the_operation_too() {
    let f = fixture(HookEvent::Archive);
    f.runner.answer(
        "pre.sh",
        [Ok(ScriptOutput::signaled(15).stopped(StopReason::Cancelled))],
    );
    let abort = run_around(&f, HookEvent::Archive, Ok(())).unwrap_err();
    assert_eq!(abort.reason, AbortReason::Interrupted);
    assert_eq!(abort.point.kind, Standard);
    assert!(
        abort
            .to_string()
            .starts_with("Interrupted 'pre_archive_script' hook script")
    );
    let ran = journal(&f);
    assert!(!ran.contains(&"operation".to_owned()), "{ran:?}");
    assert!(
        !ran.contains(&"pre_archive_retry_script".to_owned()),
        "{ran:?}"
    );
}

#[test]
fn unconfigured_hooks_do_nothing() {
    let journal = Journal::default();
    let runner = FakeRunner::new(&journal);
    let hooks = Hooks::new()
        .runner(Arc::clone(&runner))
        .script(HookPoint::new(HookEvent::Backup, Post, Standard), "post.sh")
        .script(HookPoint::new(HookEvent::Backup, Post, Standard), "");
    let value = hooks.around(
        HookEvent::Backup,
        |p| env_for(p, "EMPTY", None),
        || 7,
        |p, _| env_for(p, "DONE", None),
    );
    assert_eq!(value, Ok(7));
    assert!(runner.calls().is_empty());
    assert_eq!(
        hooks.run_retry(&env_for(
            HookPoint::new(HookEvent::Backup, Pre, Retry),
            "EMPTY",
            None
        )),
        None
    );
}

#[test]
fn a_wrong_environment_skips_the_hook() {
    let f = fixture(HookEvent::Archive);
    // An archive hook needs the WAL variables, not the backup ones.
    let point = HookPoint::new(HookEvent::Archive, Pre, Standard);
    let wrong = HookEnv::new(point, "3.20.1", "pg", "/etc/barman.conf").backup(BackupVars::new(
        "20261122T041536",
        "/b",
        "/b/backup.info",
        "DONE",
    ));
    assert_eq!(f.hooks.run_standard(&wrong), None);
    // A retry environment given to run_standard is refused too.
    assert_eq!(
        f.hooks
            .run_standard(&env_wal(HookPoint::new(HookEvent::Archive, Pre, Retry))),
        None
    );
    assert!(f.runner.calls().is_empty());
}

#[test]
fn runner_gets_path_prefix_timeout_and_limits() {
    let f = fixture(HookEvent::Archive);
    let limit = OutputLimit { head: 10, tail: 20 };
    let hooks = f
        .hooks
        .clone()
        .path_prefix("/opt/hooks/bin")
        .timeout(Duration::from_secs(9))
        .output_limit(limit);
    hooks.run_standard(&env_wal(HookPoint::new(HookEvent::Archive, Post, Standard)));
    let call = &f.runner.calls()[0];
    assert_eq!(call.script, "post.sh");
    assert_eq!(call.path_prefix.as_deref(), Some("/opt/hooks/bin"));
    assert_eq!(call.timeout, Some(Duration::from_secs(9)));
    assert_eq!(call.output_limit, limit);
    assert_eq!(call.env["BARMAN_SEGMENT"], "000000010000000000000006");
}

#[test]
fn from_config_reads_option_names() {
    let hooks = Hooks::from_config([
        ("pre_backup_script", "echo pre"),
        ("post_wal_delete_retry_script", "x.sh"),
        ("post_archive_script", ""),
    ])
    .unwrap();
    assert_eq!(
        hooks.script_for(HookPoint::new(HookEvent::Backup, Pre, Standard)),
        Some("echo pre")
    );
    assert_eq!(
        hooks.script_for(HookPoint::new(HookEvent::WalDelete, Post, Retry)),
        Some("x.sh")
    );
    assert_eq!(
        hooks.script_for(HookPoint::new(HookEvent::Archive, Post, Standard)),
        None
    );
    let err = Hooks::from_config([("pre_backup_hook", "x")]).unwrap_err();
    assert!(err.to_string().contains("pre_backup_hook"), "{err}");
}

#[test]
fn post_hooks_after_abort_follow_barman_per_event() {
    let runs: Vec<bool> = HookEvent::ALL
        .iter()
        .map(|e| e.runs_post_hooks_after_abort())
        .collect();
    // backup, archive, delete, recovery, wal_delete
    assert_eq!(runs, [true, true, false, false, false]);
}

thread_local! {
    /// What `tracing` logged on this test's thread.
    static LOGS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes into this thread's [`LOGS`].
struct ThreadLogs;

impl io::Write for ThreadLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        LOGS.with(|logs| logs.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `f` logs. A global subscriber (installed once, writing to each
/// thread's own buffer) rather than a scoped one: `tracing` caches callsite
/// interest globally, which makes scoped subscribers miss events when tests
/// run in parallel.
fn logs_of(f: impl FnOnce()) -> String {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadLogs)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    LOGS.with(|logs| logs.borrow_mut().clear());
    f();
    LOGS.with(|logs| String::from_utf8(logs.borrow().clone()).unwrap())
}

#[test]
fn logs_name_the_script_and_carry_its_output() {
    let f = fixture(HookEvent::Backup);
    f.runner.answer(
        "pre.sh",
        [Ok(ScriptOutput::exited(127).stderr(Captured::from_bytes(
            b"sh: 1: pre.sh: not found\n",
            OutputLimit::default(),
        )))],
    );
    f.runner.exits("pre-retry.sh", &[62]);
    f.runner.exits("post-retry.sh", &[63]);
    let logs = logs_of(|| {
        run_around(&f, HookEvent::Backup, Ok(())).unwrap().unwrap();
    });
    for expected in [
        "pre.sh returned 127\nOutput details:\nsh: 1: pre.sh: not found",
        "pre_backup_script: the shell could not find the command of `pre.sh` (exit status 127)",
        "pre-retry.sh was aborted (got exit status 62, Barman resumes)",
        "post-retry.sh was aborted (got exit status 63, Barman requested to stop)",
        "Ignoring stop request after receiving abort (exit code 63) from post-backup retry hook script: post-retry.sh",
        "Attempt to run backup_script: post.sh",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in:\n{logs}");
    }
}
