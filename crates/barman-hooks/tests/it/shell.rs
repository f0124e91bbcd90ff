//! Real scripts through `/bin/sh -c`: order, environment, `path_prefix`,
//! retries, huge output, interruption, missing scripts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use barman_hooks::{
    BackupVars, HookEnv, HookEvent, HookKind, HookPhase, HookPoint, Hooks, OutputLimit,
    ProcessRunner, RetryEnd, RetryPacing, RunEnd, ScriptCommand, ScriptStatus, ShellRunner,
    Sleeper, StopReason,
};

const FAST: RetryPacing = RetryPacing {
    break_time: Duration::from_millis(1),
    nap_time: Duration::from_millis(5),
    attempts_before_nap: 5,
};

fn runner() -> ShellRunner {
    ShellRunner::new()
        .grace(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(5))
}

/// Runs `script` with `vars` as a post-archive hook, set up by `setup`.
fn run_with<'a>(
    script: &'a str,
    vars: &'a [(String, String)],
    setup: impl FnOnce(ScriptCommand<'a>) -> ScriptCommand<'a>,
) -> barman_hooks::ScriptOutput {
    let p = point(HookEvent::Archive, HookPhase::Post, HookKind::Standard);
    runner()
        .run(&setup(ScriptCommand::new(p, script, vars)))
        .unwrap()
}

/// Writes an executable script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn env(point: HookPoint, status: &str) -> HookEnv {
    HookEnv::new(point, "3.20.1", "pg", "/etc/barman.conf").backup(
        BackupVars::new(
            "20261122T041536",
            "/b/pg/base/20261122T041536",
            "/b/pg/meta/20261122T041536-backup.info",
            status,
        )
        .previous_id("20261122T041510"),
    )
}

fn point(event: HookEvent, phase: HookPhase, kind: HookKind) -> HookPoint {
    HookPoint::new(event, phase, kind)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn scripts_run_in_order_with_their_environment_and_path_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    // `logline` is found only through path_prefix.
    script(
        &bin,
        "logline",
        &format!("echo \"$*\" >> '{}'", log.display()),
    );
    let hook = script(
        dir.path(),
        "hook.sh",
        "logline \"$BARMAN_PHASE $BARMAN_HOOK $BARMAN_RETRY $BARMAN_STATUS $BARMAN_BACKUP_ID $BARMAN_PREVIOUS_ID $BARMAN_SERVER\"",
    );
    let mut hooks = Hooks::new()
        .runner(runner())
        .pacing(FAST)
        .path_prefix(bin.to_str().unwrap());
    for p in HookPoint::around(HookEvent::Backup) {
        hooks = hooks.script(p, hook.to_str().unwrap());
    }
    let done = hooks.around(
        HookEvent::Backup,
        |p| env(p, "EMPTY"),
        || fs::write(dir.path().join("op"), "x").map(|()| "DONE"),
        |p, outcome| {
            env(
                p,
                outcome
                    .ok()
                    .and_then(|r| r.as_ref().ok())
                    .copied()
                    .unwrap_or("FAILED"),
            )
        },
    );
    assert!(matches!(done, Ok(Ok("DONE"))));
    let ids = "20261122T041536 20261122T041510 pg";
    assert_eq!(
        lines(&log),
        [
            format!("pre backup_script 0 EMPTY {ids}"),
            format!("pre backup_retry_script 1 EMPTY {ids}"),
            format!("post backup_retry_script 1 DONE {ids}"),
            format!("post backup_script 0 DONE {ids}"),
        ]
    );
    assert!(dir.path().join("op").exists());
}

#[test]
fn operation_runs_between_pre_and_post_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let hook = format!(
        "echo \"$BARMAN_PHASE $BARMAN_HOOK $BARMAN_RETRY\" >> '{}'",
        log.display()
    );
    let mut hooks = Hooks::new().runner(runner()).pacing(FAST);
    for p in HookPoint::around(HookEvent::Delete) {
        hooks = hooks.script(p, hook.as_str());
    }
    let result: Result<Result<(), String>, _> = hooks.around(
        HookEvent::Delete,
        |p| env(p, "DONE"),
        || {
            fs::write(
                &log,
                format!("{}operation\n", fs::read_to_string(&log).unwrap()),
            )
            .unwrap();
            Err("failed".to_owned())
        },
        |p, _| env(p, "DONE"),
    );
    assert_eq!(result.unwrap(), Err("failed".to_owned()));
    assert_eq!(
        lines(&log),
        [
            "pre delete_script 0",
            "pre delete_retry_script 1",
            "operation",
            "post delete_retry_script 1",
            "post delete_script 0"
        ]
    );
}

#[test]
fn a_retry_script_failing_twice_then_succeeding_runs_three_times() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let count = dir.path().join("count");
    let hook = script(
        dir.path(),
        "flaky.sh",
        &format!(
            "echo \"$BARMAN_PHASE $BARMAN_HOOK $BARMAN_RETRY\" >> '{log}'\n\
             n=$(cat '{count}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{count}'\n\
             [ $n -ge 3 ] && exit 0; exit 1",
            log = log.display(),
            count = count.display()
        ),
    );
    let p = point(HookEvent::Backup, HookPhase::Pre, HookKind::Retry);
    let hooks = Hooks::new()
        .runner(runner())
        .pacing(FAST)
        .script(p, hook.to_str().unwrap());
    let run = hooks.run_retry(&env(p, "EMPTY")).unwrap();
    assert_eq!((run.end, run.attempts), (RetryEnd::Success, 3));
    assert_eq!(lines(&log), ["pre backup_retry_script 1"; 3]);
}

#[test]
fn fifty_megabytes_of_output_are_bounded_and_do_not_wedge() {
    let limit = OutputLimit {
        head: 4096,
        tail: 4096,
    };
    let script = "head -c 52428800 /dev/zero | tr '\\0' x; echo END; echo oops >&2; exit 3";
    let started = Instant::now();
    let out = run_with(script, &[], |c| c.output_limit(limit));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status, ScriptStatus::Exited(3));
    assert_eq!(out.stdout.total(), 52_428_800 + 4);
    assert_eq!(out.stdout.dropped(), 52_428_804 - 8192);
    let (head, tail) = out.stdout.kept();
    assert_eq!((head.len(), tail.len()), (4096, 4096));
    assert!(head.iter().all(|b| *b == b'x'));
    assert!(tail.ends_with(b"xxxEND\n"));
    assert_eq!(out.stderr.to_string(), "oops\n");
    let text = out.stdout.to_string();
    assert!(
        text.contains("[... 52420612 bytes of output not kept ...]"),
        "{}",
        &text[4000..4200]
    );
}

#[test]
fn a_hook_that_never_exits_is_stopped_by_the_cancel_flag() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The hook and a child of its own; both must go.
    let script = format!(
        "sleep 1000 & echo $! > '{}'; echo started; wait",
        pids.display()
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = {
        let cancel = Arc::clone(&cancel);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let p = point(HookEvent::Backup, HookPhase::Pre, HookKind::Retry);
    let hooks = Hooks::new()
        .runner(runner())
        .pacing(FAST)
        .cancel_flag(Arc::clone(&cancel))
        .script(p, script.as_str());
    let started = Instant::now();
    let abort = hooks
        .around(
            HookEvent::Backup,
            |p| env(p, "EMPTY"),
            || unreachable!(),
            |p, _| env(p, "FAILED"),
        )
        .unwrap_err();
    setter.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(abort.reason, barman_hooks::AbortReason::Interrupted);
    let child: i32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    assert!(gone(child), "the hook's child {child} survived");
}

/// Whether process `pid` has ended (waiting a little for it to be reaped).
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // A zombie (state Z) has ended.
            Ok(stat) if stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')) => {
                return true;
            }
            Ok(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn a_hook_ignoring_sigterm_is_killed_after_the_grace_period() {
    // Set once the trap is in place.
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = {
        let cancel = Arc::clone(&cancel);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    let script = "trap '' TERM; echo ready; while :; do sleep 1; done";
    let out = run_with(script, &[], |c| c.cancel(Some(&cancel)));
    setter.join().unwrap();
    assert_eq!(out.stopped, Some(StopReason::Cancelled));
    assert_eq!(out.status, ScriptStatus::Signaled(9));
    let took = started.elapsed();
    // 200 ms before the flag, then the 300 ms grace before SIGKILL.
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(out.stdout.to_string(), "ready\n");
}

#[test]
fn a_timeout_stops_the_hook() {
    let started = Instant::now();
    let out = run_with("exec sleep 1000", &[], |c| {
        c.timeout(Some(Duration::from_millis(200)))
    });
    assert_eq!(out.stopped, Some(StopReason::TimedOut));
    assert_eq!(out.status, ScriptStatus::Signaled(15));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_background_process_holding_the_output_does_not_block() {
    let started = Instant::now();
    let out = run_with("echo before; sleep 3 & exit 0", &[], |c| c);
    assert_eq!(out.status, ScriptStatus::Exited(0));
    assert_eq!(out.stdout.to_string(), "before\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn stdin_is_empty_and_signals_are_reported() {
    let vars = [(
        "BARMAN_SEGMENT".to_owned(),
        "000000010000000000000006".to_owned(),
    )];
    let out = run_with("cat; echo \"$BARMAN_SEGMENT\"", &vars, |c| c);
    assert_eq!(out.status, ScriptStatus::Exited(0));
    assert_eq!(out.stdout.to_string(), "000000010000000000000006\n");
    let out = run_with("kill -9 $$", &vars, |c| c);
    assert_eq!(out.status, ScriptStatus::Signaled(9));
}

#[test]
fn a_missing_standard_script_warns_and_the_operation_proceeds() {
    let p = point(HookEvent::Backup, HookPhase::Pre, HookKind::Standard);
    let hooks = Hooks::new()
        .runner(runner())
        .script(p, "/nonexistent/barman-hooks-test/pre.sh");
    assert_eq!(
        hooks.run_standard(&env(p, "EMPTY")),
        Some(RunEnd::Status(ScriptStatus::Exited(127)))
    );
    let ran = hooks.around(
        HookEvent::Backup,
        |p| env(p, "EMPTY"),
        || 42,
        |p, _| env(p, "DONE"),
    );
    assert_eq!(ran, Ok(42));
}

/// A sleeper that creates the missing script at its second pause.
#[derive(Debug)]
struct CreatesScript {
    path: PathBuf,
    pauses: AtomicUsize,
    log: Mutex<Vec<Duration>>,
}

impl Sleeper for CreatesScript {
    fn sleep(&self, duration: Duration, _cancel: Option<&AtomicBool>) {
        self.log.lock().unwrap().push(duration);
        if self.pauses.fetch_add(1, Ordering::SeqCst) == 1 {
            script(self.path.parent().unwrap(), "late.sh", "exit 0");
        }
    }
}

#[test]
fn a_missing_retry_script_is_retried_as_a_transient_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.sh");
    let sleeper = Arc::new(CreatesScript {
        path: path.clone(),
        pauses: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
    });
    let p = point(HookEvent::Backup, HookPhase::Pre, HookKind::Retry);
    let hooks = Hooks::new()
        .runner(runner())
        .sleeper(SharedSleeper(Arc::clone(&sleeper)))
        .script(p, path.to_str().unwrap());
    let run = hooks.run_retry(&env(p, "EMPTY")).unwrap();
    assert_eq!((run.end, run.attempts), (RetryEnd::Success, 3));
    assert_eq!(
        *sleeper.log.lock().unwrap(),
        [Duration::from_secs(3), Duration::from_secs(3)]
    );
}

#[derive(Debug)]
struct SharedSleeper(Arc<CreatesScript>);

impl Sleeper for SharedSleeper {
    fn sleep(&self, duration: Duration, cancel: Option<&AtomicBool>) {
        self.0.sleep(duration, cancel);
    }
}
