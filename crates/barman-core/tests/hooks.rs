//! Hook scripts around the core operations, with real shell scripts and
//! fast retry pacing (the library API; the end-to-end crate runs them
//! through `barman` with Barman's 3 s pauses): archive-wal per WAL, delete
//! and its WAL deletions, their order, their `BARMAN_*` values, retries,
//! 63 stopping each operation where Barman stops it, and interruption.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barman_core::archive::{self, Source};
use barman_core::catalog::{BackupId, BackupInfo, BackupStatus, XlogDb, XlogEntry};
use barman_core::clock::FixedClock;
use barman_core::config::Config;
use barman_core::delete;
use barman_core::hooks::{HookSetup, ServerHooks};
use barman_core::{Error, ServerLayout};
use barman_hooks::{Hooks, RetryPacing};
use barman_wal::{Codec, Compression, CompressionLevel};

mod support;

use barman_testkit::hooks::{HookRun as Run, heads, log_script, take_runs, write_script};

use support::{SEG, SYSID, env, name, options, put, segment, xlog};

const CONF_PATH: &str = "/etc/barman-test.conf";

/// A directory holding the hook scripts (`log.sh` on `path_prefix`,
/// `flaky.sh`) and the log they append to.
struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let log = dir.path().join("hooks.log");
        // One line per run: the head, then every BARMAN_ variable (sorted),
        // separated by `|`.
        write_script(&bin.join("log.sh"), &log_script(&log)).unwrap();
        // flaky.sh COUNTER N: fails the first N times, then succeeds.
        write_script(
            &bin.join("flaky.sh"),
            "#!/bin/sh\nn=$(cat \"$1\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"$1\"; [ $n -gt \"$2\" ]\n",
        )
        .unwrap();
        Self { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn counter(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The runs logged so far, and the log emptied.
    fn take(&self) -> Vec<Run> {
        take_runs(&self.dir.path().join("hooks.log"))
    }
}

/// Pauses of 10 ms instead of 3 s, 20 ms instead of 60 s.
fn fast() -> Hooks {
    Hooks::new().pacing(RetryPacing {
        break_time: Duration::from_millis(10),
        nap_time: Duration::from_millis(20),
        attempts_before_nap: 5,
    })
}

/// The server `pg` of a configuration with `barman_home = home` and the
/// hook options `hooks` (path_prefix = the scripts' bin/).
fn config(home: &Path, scripts: &Scripts, hooks: &str) -> Config {
    let text = format!(
        "[barman]\nbarman_home = {}\nbarman_lock_directory = {}\npath_prefix = {}\n\n[pg]\nconninfo = host=pg\n{hooks}\n",
        home.display(),
        home.display(),
        scripts.bin().display()
    );
    Config::parse_str(&text, Path::new(CONF_PATH)).unwrap()
}

fn server_hooks(config: &Config, base: Hooks) -> ServerHooks {
    HookSetup::new("9.9.9", CONF_PATH)
        .base(base)
        .server(config.server("pg").unwrap())
        .unwrap()
}

#[test]
fn archive_hooks_wrap_each_wal_and_63_stops_the_run_with_the_wal_in_incoming() {
    let env = env();
    let scripts = Scripts::new();
    let home = env.layout.backup_directory().parent().unwrap();
    let seg3 = name(3);
    let config = config(
        home,
        &scripts,
        &format!(
            "pre_archive_script = log.sh\n\
             pre_archive_retry_script = log.sh; [ \"$BARMAN_SEGMENT\" = {seg3} ] && exit 63; flaky.sh {} 2\n\
             post_archive_retry_script = log.sh\n\
             post_archive_script = log.sh\n",
            scripts.counter("archive")
        ),
    );
    let hooks = server_hooks(&config, fast());
    for i in 1..=4 {
        put(&env, &name(i), &segment(&name(i), SYSID));
    }
    let codec = Codec::builtin(Compression::Gzip, CompressionLevel::Low).unwrap();
    let opts = options(&env, Some(codec));
    let clock = FixedClock("2026-11-27T10:00:00Z".parse().unwrap());
    let started = Instant::now();
    let report =
        archive::archive_wal(&env.layout, &opts, &clock, &mut hooks.archive_observer()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "pacing is slow"
    );

    // Two files archived, the run stopped at the third.
    let done: Vec<&str> = report.processed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(done, [name(1), name(2)]);
    let stopped = report.stopped.clone().expect("the run stopped");
    assert!(!stopped.interrupted);
    assert_eq!(
        (stopped.source, stopped.name.as_str()),
        (Source::Incoming, seg3.as_str())
    );
    assert!(
        stopped
            .reason
            .starts_with("Abort 'pre_archive_retry_script' retry hook script (log.sh;")
            && stopped.reason.ends_with("exit code: 63)"),
        "{}",
        stopped.reason
    );
    assert_eq!(xlog(&env), [name(1), name(2)]);
    let incoming = env.layout.incoming_directory();
    assert_eq!(
        fs::read(incoming.join(&seg3)).unwrap(),
        segment(&seg3, SYSID),
        "the stopped WAL is left untouched"
    );
    assert!(incoming.join(name(4)).is_file());
    let hash_dir = env.layout.wals_directory().join("0000000100000000");
    let mut stored: Vec<String> = fs::read_dir(&hash_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    assert_eq!(stored, [name(1), name(2)], "no partial file in wals/");

    // The order: per WAL, standard pre, retry pre (as often as it takes),
    // retry post, standard post; for the stopped WAL the post hooks too.
    let runs = scripts.take();
    let per_wal = [
        "pre archive_script 0",
        "pre archive_retry_script 1",
        "post archive_retry_script 1",
        "post archive_script 0",
    ];
    let mut expected = vec![per_wal[0], per_wal[1], per_wal[1], per_wal[1]];
    expected.extend_from_slice(&per_wal[2..]);
    expected.extend_from_slice(&per_wal);
    expected.extend_from_slice(&per_wal);
    assert_eq!(heads(&runs), expected);

    // The values.
    let entries = XlogDb::new(env.layout.xlogdb_path("pg")).read().unwrap();
    for run in &runs {
        assert_eq!(run.var("SERVER"), "pg");
        assert_eq!(run.var("VERSION"), "9.9.9");
        assert_eq!(run.var("CONFIGURATION"), CONF_PATH);
        assert!(!run.vars.contains_key("BACKUP_ID"), "{run:?}");
    }
    for (i, wal_runs) in [&runs[0..6], &runs[6..10]].into_iter().enumerate() {
        let wal = name(u32::try_from(i).unwrap() + 1);
        let entry = &entries[i];
        let source = incoming.join(&wal).display().to_string();
        let dest = hash_dir.join(&wal).display().to_string();
        for run in wal_runs {
            assert_eq!(run.var("SEGMENT"), wal);
            assert_eq!(run.var("TIMESTAMP"), entry.time.as_str(), "{run:?}");
            assert_eq!(run.var("ERROR"), "");
            if run.head.starts_with("pre") {
                assert_eq!(run.var("FILE"), source);
                assert_eq!(run.var("SIZE"), SEG.to_string());
                assert_eq!(run.var("COMPRESSION"), "");
            } else {
                assert_eq!(run.var("FILE"), dest);
                assert_eq!(run.var("SIZE"), entry.size.to_string());
                assert_eq!(run.var("COMPRESSION"), "gzip");
            }
        }
    }
    let stopped_runs = &runs[10..];
    assert_eq!(
        stopped_runs[0].var("FILE"),
        incoming.join(&seg3).display().to_string()
    );
    for run in &stopped_runs[2..] {
        assert_eq!(run.var("SEGMENT"), seg3);
        assert_eq!(run.var("ERROR"), stopped.reason);
        assert_eq!(run.var("FILE"), hash_dir.join(&seg3).display().to_string());
    }

    // The next run (the hook now says yes) archives the rest.
    let hooks = server_hooks(
        &self::config(home, &scripts, "pre_archive_retry_script = log.sh\n"),
        fast(),
    );
    let report =
        archive::archive_wal(&env.layout, &opts, &clock, &mut hooks.archive_observer()).unwrap();
    assert_eq!(report.stopped, None);
    assert_eq!(xlog(&env), [name(1), name(2), seg3.clone(), name(4)]);
    assert_eq!(heads(&scripts.take()), ["pre archive_retry_script 1"; 2]);
}

#[test]
fn a_missing_retry_script_is_retried_until_the_cancel_flag_stops_it() {
    let env = env();
    let scripts = Scripts::new();
    let home = env.layout.backup_directory().parent().unwrap();
    let config = config(
        home,
        &scripts,
        "pre_archive_script = /nonexistent/pre-archive\npre_archive_retry_script = /nonexistent/retry\npost_archive_script = log.sh\n",
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let hooks = server_hooks(&config, fast().cancel_flag(Arc::clone(&cancel)));
    put(&env, &name(1), &segment(&name(1), SYSID));
    let flag = Arc::clone(&cancel);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        flag.store(true, Ordering::SeqCst);
    });
    let clock = FixedClock("2026-11-27T10:00:00Z".parse().unwrap());
    let started = Instant::now();
    let report = archive::archive_wal(
        &env.layout,
        &options(&env, None),
        &clock,
        &mut hooks.archive_observer(),
    )
    .unwrap();
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    // The missing standard script did not stop anything; the missing retry
    // script kept being retried until the flag was set; then nothing runs,
    // not even the post hook.
    let stopped = report.stopped.expect("stopped by the cancel flag");
    assert!(stopped.interrupted);
    assert!(
        stopped.reason.starts_with("Interrupted"),
        "{}",
        stopped.reason
    );
    assert!(report.processed.is_empty());
    assert!(env.layout.incoming_directory().join(name(1)).is_file());
    assert!(xlog(&env).is_empty());
    assert!(scripts.take().is_empty());
}

/// Writes a DONE backup `id` whose WALs are `begin..=end`, with a data file.
fn done_backup(layout: &ServerLayout, id: &str, begin: u32, end: u32) -> BackupInfo {
    let id: BackupId = id.parse().unwrap();
    let mut info = BackupInfo::new("pg", id.clone());
    info.set_status(BackupStatus::Done);
    info.set_timeline(Some(1));
    info.set_begin_wal(Some(&name(begin))).unwrap();
    info.set_end_wal(Some(&name(end))).unwrap();
    info.write(layout).unwrap();
    let data = layout.backup_dir(&id).join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("PG_VERSION"), "15\n").unwrap();
    info
}

#[test]
fn delete_hooks_stop_before_anything_goes_and_wal_delete_hooks_wrap_each_wal() {
    let home = tempfile::tempdir().unwrap();
    let scripts = Scripts::new();
    let hooks_conf = |pre_delete_retry: &str, pre_wal_delete_retry: &str| {
        format!(
            "pre_delete_script = log.sh\npre_delete_retry_script = log.sh; {pre_delete_retry}\n\
             post_delete_retry_script = log.sh\npost_delete_script = log.sh\n\
             pre_wal_delete_script = log.sh\npre_wal_delete_retry_script = log.sh; {pre_wal_delete_retry}\n\
             post_wal_delete_retry_script = log.sh\npost_wal_delete_script = log.sh\n"
        )
    };
    let config = config(home.path(), &scripts, &hooks_conf("exit 63", "exit 0"));
    let server = config.server("pg").unwrap();
    let layout = server.layout();
    layout.ensure().unwrap();
    let first = done_backup(&layout, "20260101T000000", 2, 2);
    done_backup(&layout, "20260102T000000", 5, 5);
    let xlogdb = XlogDb::new(layout.xlogdb_path("pg"));
    for i in 1..=6 {
        let wal: barman_wal::WalFileName = name(i).parse().unwrap();
        let path = layout.wal_path(&wal);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("wal {i}")).unwrap();
        xlogdb
            .append(&XlogEntry::new(name(i), 5, 1_790_000_000.0 + f64::from(i)))
            .unwrap();
    }
    let id = first.backup_id().clone();
    let marker = layout.delete_marker_path(&id);
    let listed = || -> Vec<String> { xlogdb.read().unwrap().into_iter().map(|e| e.name).collect() };
    let global = config.global();

    // 1. 63 from the pre retry hook: nothing is removed, the marker goes.
    let hooks = server_hooks(&config, fast());
    let err =
        delete::delete_backup(global, server, &id, &hooks, &mut delete::LogObserver).unwrap_err();
    assert!(matches!(err, Error::HookAborted(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("Abort 'pre_delete_retry_script' retry hook script"),
        "{err}"
    );
    assert!(!marker.exists());
    assert!(layout.backup_info_path(&id).is_file());
    assert!(layout.backup_dir(&id).join("data/PG_VERSION").is_file());
    assert_eq!(listed().len(), 6);
    let runs = scripts.take();
    assert_eq!(
        heads(&runs),
        ["pre delete_script 0", "pre delete_retry_script 1"]
    );
    for run in &runs {
        assert_eq!(run.var("BACKUP_ID"), "20260101T000000");
        assert_eq!(run.var("PREVIOUS_ID"), "");
        assert_eq!(run.var("NEXT_ID"), "20260102T000000");
        assert_eq!(run.var("STATUS"), "DONE");
        assert_eq!(run.var("ERROR"), "");
        assert_eq!(
            run.var("BACKUP_DIR"),
            layout.backup_dir(&id).display().to_string()
        );
        assert_eq!(
            run.var("BACKUP_INFO_PATH"),
            layout.backup_info_path(&id).display().to_string()
        );
    }

    // 2. The pre retry hook fails twice, then says yes; the WAL-delete
    // retry hook stops at the third WAL: the first two are gone, the rest
    // stays listed, and the marker stays for cron to finish the delete.
    let config = self::config(
        home.path(),
        &scripts,
        &hooks_conf(
            &format!("flaky.sh {} 2", scripts.counter("delete")),
            &format!("[ \"$BARMAN_SEGMENT\" = {} ] && exit 63; exit 0", name(3)),
        ),
    );
    let server = config.server("pg").unwrap();
    let hooks = server_hooks(&config, fast());
    let err =
        delete::delete_backup(global, server, &id, &hooks, &mut delete::LogObserver).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Abort 'pre_wal_delete_retry_script' retry hook script"),
        "{err}"
    );
    assert!(marker.exists());
    assert_eq!(listed(), [name(3), name(4), name(5), name(6)]);
    for i in 1..=6 {
        let wal: barman_wal::WalFileName = name(i).parse().unwrap();
        assert_eq!(layout.wal_path(&wal).exists(), i >= 3, "WAL {i}");
    }
    let runs = scripts.take();
    let wal_runs = [
        "pre wal_delete_script 0",
        "pre wal_delete_retry_script 1",
        "post wal_delete_retry_script 1",
        "post wal_delete_script 0",
    ];
    let mut expected = vec!["pre delete_script 0", "pre delete_retry_script 1"];
    expected.extend(["pre delete_retry_script 1"; 2]);
    expected.extend(wal_runs);
    expected.extend(wal_runs);
    expected.extend(&wal_runs[..2]);
    assert_eq!(heads(&runs), expected);
    for (run, i) in runs[4..].iter().zip([1, 1, 1, 1, 2, 2, 2, 2, 3, 3]) {
        let wal: barman_wal::WalFileName = name(i).parse().unwrap();
        assert_eq!(run.var("SEGMENT"), name(i));
        assert_eq!(run.var("FILE"), layout.wal_path(&wal).display().to_string());
        assert_eq!(run.var("SIZE"), "5");
        assert_eq!(run.var("TIMESTAMP"), format!("179000000{i}.0"));
        assert_eq!(run.var("COMPRESSION"), "");
        assert_eq!(run.var("ERROR"), "");
    }

    // 3. cron finishes the interrupted delete once the hook says yes.
    let config = self::config(home.path(), &scripts, &hooks_conf("exit 0", "exit 0"));
    let server = config.server("pg").unwrap();
    let hooks = server_hooks(&config, fast());
    let report =
        delete::finish_interrupted(global, server, &hooks, &mut delete::LogObserver).unwrap();
    assert_eq!(report.deleted, std::slice::from_ref(&id));
    assert!(!marker.exists());
    assert!(!layout.backup_info_path(&id).exists());
    assert!(!layout.backup_dir(&id).exists());
    assert_eq!(listed(), [name(5), name(6)]);
    let runs = scripts.take();
    let mut expected = vec!["pre delete_script 0", "pre delete_retry_script 1"];
    expected.extend(wal_runs);
    expected.extend(wal_runs);
    expected.extend(["post delete_retry_script 1", "post delete_script 0"]);
    assert_eq!(heads(&runs), expected);
    assert_eq!(runs[2].var("SEGMENT"), name(3));
    assert_eq!(runs[6].var("SEGMENT"), name(4));
    for run in [&runs[0], &runs[runs.len() - 1]] {
        assert_eq!(run.var("BACKUP_ID"), "20260101T000000");
        assert_eq!(run.var("NEXT_ID"), "20260102T000000");
        assert_eq!(run.var("STATUS"), "DONE");
    }
}
