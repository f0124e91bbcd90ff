//! Catalog management on a real PostgreSQL 15 (issue 7): retention enforced
//! by `barman cron` (REDUNDANCY with a `keep:standalone` backup), every
//! remaining backup recovered to its end and to a point in time with the
//! exact rows, `kill -9` of `barman delete` at many instants finished by the
//! next `cron`, concurrent crons and busy locks, and `barman check` / Nagios
//! on a healthy and on broken servers.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::catalog;
use serde_json::Value;

use crate::archiving::ok;
use crate::backup::Bench;
use crate::recover::{Dest, backup_id, ids, recover, start, wait_paused, xlogdb_names};

/// The marker rows: one committed after each backup.
const MARKS: &str =
    "CREATE TABLE marks (id int PRIMARY KEY, t timestamptz DEFAULT clock_timestamp())";

/// Commits marker `i` and returns the time right after the commit (UTC).
fn mark(bench: &Bench, i: u32) -> String {
    bench
        .pg
        .psql(&format!("INSERT INTO marks (id) VALUES ({i})"))
        .unwrap();
    let after = bench
        .pg
        .psql(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    after
}

/// `barman ARGS` as postgres; (exit code, stdout, stderr).
fn barman(bench: &Bench, args: &[&str]) -> (i32, String, String) {
    let out = bench.setup.run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn backup_ids(bench: &Bench) -> Vec<String> {
    catalog::backup_ids(&bench.setup.dir("meta")).unwrap()
}

/// Recovers `id` with `target` options, starts PostgreSQL on it and
/// returns the marker ids it has.
fn recovered_marks(bench: &Bench, label: &str, id: &str, target: &[&str]) -> String {
    let dest = Dest::new(label);
    let data = dest.data_arg();
    let ts = dest.ts_arg();
    let mut args = vec![id, data.as_str(), "--tablespace", ts.as_str()];
    args.extend_from_slice(target);
    recover(bench, &args, &[]);
    let server = start(bench, &dest, "");
    wait_paused(&server);
    ids(&server, "marks")
}

/// Every WAL file under wals/<hash>/ (names), sorted.
fn archived_files(bench: &Bench) -> Vec<String> {
    let mut out = Vec::new();
    for dir in fs::read_dir(bench.setup.dir("wals")).unwrap() {
        let dir = dir.unwrap();
        if dir.file_type().unwrap().is_dir() {
            for f in fs::read_dir(dir.path()).unwrap() {
                out.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        } else {
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.ends_with(".history") {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// xlog.db and wals/ agree exactly, with no duplicate line.
fn assert_archive_consistent(bench: &Bench, when: &str) {
    let listed = xlogdb_names(bench);
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "{when}: duplicate xlog.db lines"
    );
    assert_eq!(
        listed,
        archived_files(bench),
        "{when}: xlog.db and wals/ differ"
    );
}

#[test]
fn cron_enforces_redundancy_and_every_remaining_backup_recovers() {
    let bench = Bench::new(
        "backup_method = local-rsync\nreuse_backup = link\nretention_policy = REDUNDANCY 2\nminimum_redundancy = 1\n",
        1,
    );
    bench.pg.psql(MARKS).unwrap();
    let mut backups = Vec::new();
    let mut after = Vec::new();
    for i in 1..=5 {
        bench.pg.pgbench_run(2, 1).unwrap();
        backups.push(backup_id(&bench.backup(&[
            "--wait",
            "--wait-timeout",
            "120",
        ])));
        after.push(mark(&bench, i));
        bench.flush_wal();
    }
    // A commit after the last target, so that recovery can tell it passed it.
    mark(&bench, 6);
    bench.flush_wal();
    let begin = |i: usize| bench.info(&backups[i])["begin_wal"].clone();
    let end = |i: usize| bench.info(&backups[i])["end_wal"].clone();
    let (code, stdout, stderr) = barman(
        &bench,
        &["keep", "pg", &backups[1], "--target", "standalone"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let before = xlogdb_names(&bench);
    assert!(
        before.iter().any(|n| n[..24] < *begin(1)),
        "no WAL before b2: {before:?}"
    );

    let (code, stdout, stderr) = barman(&bench, &["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{}", bench.setup.home.log());
    // REDUNDANCY 2: b5, b4 VALID; b3 OBSOLETE; b2 KEEP:STANDALONE; b1 OBSOLETE.
    assert_eq!(
        backup_ids(&bench),
        [backups[1].clone(), backups[3].clone(), backups[4].clone()]
    );
    for gone in [&backups[0], &backups[2]] {
        assert!(
            stdout.contains(&format!(
                "Enforcing retention policy: removing backup {gone} for server pg"
            )),
            "{stdout}"
        );
        assert!(!bench.backup_dir(gone).exists());
    }
    // §4.2: only the WALs of b4 on, plus b2's own range, are left.
    let (b2_begin, b2_end, b4_begin) = (begin(1), end(1), begin(3));
    let expected: Vec<String> = before
        .iter()
        .filter(|n| {
            n.ends_with(".history")
                || n[..24] >= *b4_begin
                || (n[..24] >= *b2_begin && n[..24] <= *b2_end)
        })
        .cloned()
        .collect();
    assert_eq!(xlogdb_names(&bench), expected);
    assert_archive_consistent(&bench, "after the first cron");
    assert!(expected.len() < before.len());

    // The standalone backup recovers to its end: mark 1 only.
    assert_eq!(
        recovered_marks(&bench, "b2-end", &backups[1], &["--target-immediate"]),
        "1"
    );

    // Released, b2 is OBSOLETE and goes with its WALs: exactly the WALs
    // before the oldest kept backup's begin_wal are gone.
    let (code, _, stderr) = barman(&bench, &["keep", "pg", &backups[1], "--release"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = barman(&bench, &["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(backup_ids(&bench), [backups[3].clone(), backups[4].clone()]);
    let expected: Vec<String> = before
        .iter()
        .filter(|n| n.ends_with(".history") || n[..24] >= *b4_begin)
        .cloned()
        .collect();
    let now = xlogdb_names(&bench);
    assert_eq!(now[..expected.len()], expected[..], "{now:?}");
    assert!(
        now.iter()
            .all(|n| n[..24] >= *b4_begin || n.ends_with(".history"))
    );
    assert_archive_consistent(&bench, "after the second cron");

    // Every remaining backup recovers to its end and to a point in time.
    assert_eq!(
        recovered_marks(&bench, "b4-end", &backups[3], &["--target-immediate"]),
        "1,2,3"
    );
    assert_eq!(
        recovered_marks(
            &bench,
            "b4-pitr",
            &backups[3],
            &["--target-time", &after[3]]
        ),
        "1,2,3,4"
    );
    assert_eq!(
        recovered_marks(&bench, "b5-end", &backups[4], &["--target-immediate"]),
        "1,2,3,4"
    );
    assert_eq!(
        recovered_marks(
            &bench,
            "b5-pitr",
            &backups[4],
            &["--target-time", &after[4]]
        ),
        "1,2,3,4,5"
    );
}

/// Waits for `child` at most `timeout`, killing it after that.
fn wait_child(mut child: Child, timeout: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > timeout {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn kill_9_during_delete_is_finished_by_the_next_cron() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = off\n", 1);
    bench.pg.psql(MARKS).unwrap();
    let take = |i: u32| {
        bench.pg.pgbench_run(1, 1).unwrap();
        let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "120"]));
        mark(&bench, i);
        bench.flush_wal();
        id
    };
    take(1);
    take(2);
    // One delete left alone: how long a whole one takes.
    let t0 = Instant::now();
    let (code, stdout, stderr) = barman(&bench, &["delete", "pg", "oldest"]);
    let whole = t0.elapsed();
    assert_eq!(code, 0, "{stdout}{stderr}");
    eprintln!("an uninterrupted delete took {whole:?}");
    let mut interrupted = 0;
    for (n, fraction) in [0.15, 0.3, 0.45, 0.6, 0.75, 0.9].into_iter().enumerate() {
        let id = take(3 + u32::try_from(n).unwrap());
        let victim = backup_ids(&bench)[0].clone();
        let child = bench
            .setup
            .command(&["delete", "pg", &victim])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(fraction));
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = wait_child(child, Duration::from_secs(30));
        let marker = bench
            .setup
            .dir("meta")
            .join(format!("{victim}-delete_this"));
        if marker.exists() {
            interrupted += 1;
        }
        eprintln!(
            "kill -9 at {fraction} of a delete: marker left: {}, backup.info left: {}",
            marker.exists(),
            bench
                .setup
                .dir("meta")
                .join(format!("{victim}-backup.info"))
                .exists()
        );
        let (code, stdout, stderr) = barman(&bench, &["cron"]);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        // The delete is complete: no marker, no data, no backup.info.
        assert!(!marker.exists(), "{stdout}");
        assert!(!bench.backup_dir(&victim).exists());
        assert!(!backup_ids(&bench).contains(&victim));
        // The catalog is consistent, and every remaining backup has its WALs.
        assert_archive_consistent(&bench, &format!("after kill at {fraction}"));
        let names = xlogdb_names(&bench);
        for b in backup_ids(&bench) {
            assert!(
                bench.backup_dir(&b).join("data").is_dir(),
                "{b} has no data"
            );
            let info = bench.info(&b);
            assert_eq!(info["status"], "DONE");
            let (first, last) = (&info["begin_wal"], &info["end_wal"]);
            let mut seg = u64::from_str_radix(&first[16..], 16).unwrap();
            let last_seg = u64::from_str_radix(&last[16..], 16).unwrap();
            while seg <= last_seg {
                let name = format!("{}{seg:08X}", &first[..16]);
                assert!(names.contains(&name), "backup {b} lost its WAL {name}");
                seg += 1;
            }
            let (code, _, stderr) = barman(&bench, &["check-backup", "pg", &b]);
            assert_eq!(code, 0, "{stderr}");
        }
        assert_eq!(backup_ids(&bench).last(), Some(&id));
    }
    eprintln!("{interrupted} of 6 kills left an interrupted delete");
    assert!(interrupted >= 1, "no kill landed inside a delete");
    // The newest backup still recovers with every mark up to its own.
    let newest = backup_ids(&bench).last().unwrap().clone();
    assert_eq!(
        recovered_marks(&bench, "after-kills", &newest, &["--target-immediate"]),
        "1,2,3,4,5,6,7"
    );
}

/// Holds `lock` (a barman lock file) with flock(1) until dropped.
pub(crate) struct Held(Child);

impl Held {
    pub(crate) fn new(lock: &Path) -> Self {
        use std::os::unix::process::CommandExt as _;
        // Its own process group, so that dropping it kills `sleep` too
        // (the child inherits the locked descriptor).
        let child = Command::new("flock")
            .arg(lock)
            .args(["sleep", "600"])
            .process_group(0)
            .spawn()
            .unwrap();
        let start = Instant::now();
        // Wait until flock holds it (a non-blocking attempt fails).
        loop {
            let busy = !Command::new("flock")
                .args(["-n"])
                .arg(lock)
                .arg("true")
                .status()
                .unwrap()
                .success();
            if busy {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "flock never held {}",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

#[test]
fn concurrent_crons_and_busy_locks_never_double_up() {
    let bench = Bench::new(
        "backup_method = local-rsync\nreuse_backup = link\nretention_policy = REDUNDANCY 1\n",
        1,
    );
    let mut backups = Vec::new();
    for _ in 0..4 {
        bench.pg.pgbench_run(1, 1).unwrap();
        backups.push(backup_id(&bench.backup(&[
            "--wait",
            "--wait-timeout",
            "120",
        ])));
    }
    let lock_dir = bench.setup.home.home();
    // WAL waiting in incoming/ for archive-wal.
    for k in 0..4 {
        let first = 1_000_000 + k * 1000;
        bench
            .pg
            .psql(&format!(
                "INSERT INTO in_ts SELECT g, g FROM generate_series({first}, {}) g",
                first + 99
            ))
            .unwrap();
        bench.pg.switch_wal().unwrap();
    }
    let incoming = bench.setup.dir("incoming");
    let start = Instant::now();
    while fs::read_dir(&incoming).unwrap().count() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "archive_command did not deliver"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // archive-wal running elsewhere, and a delete holding backups[0]: cron
    // archives nothing and skips that backup.
    {
        let _archiver = Held::new(&lock_dir.join(".pg-archive-wal.lock"));
        let _deleter = Held::new(&lock_dir.join(format!(".pg-{}.lock", backups[0])));
        let (code, stdout, stderr) = barman(&bench, &["cron"]);
        assert!(
            stdout.contains("Another archive-wal process is already running on server pg"),
            "{stdout}"
        );
        assert!(
            stderr.contains(&format!(
                "Another process is holding the lock for backup {} of server pg",
                backups[0]
            )),
            "{stdout}\n{stderr}"
        );
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        assert!(fs::read_dir(&incoming).unwrap().count() >= 4);
        assert!(backup_ids(&bench).contains(&backups[0]));
        // The others obsolete were deleted.
        assert_eq!(backup_ids(&bench), [backups[0].clone(), backups[3].clone()]);
    }

    // Three crons at once: one works, the others skip.
    let children: Vec<Child> = (0..3)
        .map(|_| {
            bench
                .setup
                .command(&["-f", "json", "cron"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<std::process::Output> = children
        .into_iter()
        .map(|c| wait_child(c, Duration::from_secs(120)))
        .collect();
    let mut worked = 0;
    for out in &outputs {
        let text = ok(out, "barman cron");
        let doc: Value = serde_json::from_str(text.trim()).unwrap();
        if doc["cron"]["skipped_busy"] == Value::Bool(false) {
            worked += 1;
        } else {
            assert!(
                text.contains("Another cron process is already running"),
                "{text}"
            );
        }
    }
    // At most one worked at a time; the skipped ones may have come after
    // the first ended, so count the effects, not the runs.
    assert!(worked >= 1);
    let log = bench.setup.home.log();
    let deletes = log
        .matches(&format!("Deleted backup {}", backups[0]))
        .count();
    let texts: Vec<String> = outputs
        .iter()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect();
    assert_eq!(
        deletes, 1,
        "backup deleted {deletes} times:\n{texts:#?}\n{log}"
    );
    assert_eq!(backup_ids(&bench), [backups[3].clone()]);
    assert_eq!(fs::read_dir(&incoming).unwrap().count(), 0);
    assert_archive_consistent(&bench, "after concurrent crons");
}

/// `barman check pg` (console) and `barman check --nagios pg`.
fn check(bench: &Bench) -> ((i32, String), (i32, String)) {
    let (code, stdout, stderr) = barman(bench, &["check", "pg"]);
    assert!(stdout.starts_with("Server pg:\n"), "{stdout}{stderr}");
    let (ncode, nout, _) = barman(bench, &["check", "--nagios", "pg"]);
    ((code, stdout), (ncode, nout))
}

/// A Nagios plugin's output: the first line is `BARMAN <STATE> - text`
/// with optional `|label=valueB ...` performance data.
fn parse_nagios(text: &str) -> (String, Vec<(String, u64)>) {
    let first = text.lines().next().unwrap_or_default();
    let state = first
        .strip_prefix("BARMAN ")
        .and_then(|r| r.split_once(" - "))
        .map_or_else(
            || panic!("not a Nagios status line: {first}"),
            |(s, _)| s.to_owned(),
        );
    let perf = first
        .split_once('|')
        .map(|(_, p)| {
            p.split_whitespace()
                .map(|item| {
                    let (label, value) = item.split_once('=').unwrap();
                    (
                        label.to_owned(),
                        value.strip_suffix('B').unwrap().parse().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (state, perf)
}

#[test]
fn check_fails_on_broken_archiving_stale_backups_and_archive_errors() {
    let bench = Bench::new(
        "backup_method = local-rsync\nreuse_backup = link\nlast_backup_maximum_age = 1 day\nminimum_redundancy = 1\n",
        1,
    );
    let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "120"]));
    bench.flush_wal();
    let ((code, out), (ncode, nout)) = check(&bench);
    assert_eq!(code, 0, "{out}");
    for line in [
        "\tPostgreSQL: OK",
        "\tsuperuser or standard user with backup privileges: OK",
        "\twal_level: OK",
        "\tdirectories: OK",
        "\tbackup maximum age: OK (interval provided: 1 day, latest backup age:",
        "\tfailed backups: OK (there are 0 failed backups)",
        "\tminimum redundancy requirements: OK (have 1 backups, expected at least 1)",
        "\tsystemid coherence: OK",
        "\tarchive_mode: OK",
        "\tarchive_command: OK",
        "\tcontinuous archiving: OK",
        "\tarchiver errors: OK",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    assert_eq!(ncode, 0, "{nout}");
    let (state, perf) = parse_nagios(&nout);
    assert_eq!(state, "OK");
    assert!(
        nout.starts_with("BARMAN OK - Ready to serve the Espresso backup for pg|"),
        "{nout}"
    );
    let size: u64 = bench.info(&id)["size"].parse().unwrap();
    assert!(perf.contains(&("pg".to_owned(), size)), "{perf:?}");
    assert!(perf.iter().any(|(l, _)| l == "pg_wals"), "{perf:?}");

    // A stale last backup (its end 3 days ago).
    let info_path = bench.setup.dir("meta").join(format!("{id}-backup.info"));
    let original = fs::read_to_string(&info_path).unwrap();
    let old_end = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(72))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S%.6f%:z")
        .to_string();
    let stale: String = original
        .lines()
        .map(|l| {
            if l.starts_with("end_time=") {
                format!("end_time={old_end}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    fs::write(&info_path, stale).unwrap();
    let ((code, out), (ncode, nout)) = check(&bench);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "\tbackup maximum age: FAILED (interval provided: 1 day, latest backup age: 3 days"
        ),
        "{out}"
    );
    assert_eq!(ncode, 2, "{nout}");
    assert_eq!(parse_nagios(&nout).0, "CRITICAL");
    assert!(
        nout.starts_with("BARMAN CRITICAL - server pg has issues * pg FAILED: backup maximum age"),
        "{nout}"
    );
    assert!(
        nout.contains("\npg.backup maximum age: FAILED (interval provided: 1 day"),
        "{nout}"
    );
    fs::write(&info_path, &original).unwrap();

    // A WAL in errors/.
    let errors = bench.setup.dir("errors");
    let bad = errors.join("000000010000000000000001.20261201T000000Z.duplicate");
    fs::write(&bad, b"x").unwrap();
    let ((code, out), (ncode, nout)) = check(&bench);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("\tarchiver errors: FAILED (1 duplicate)"),
        "{out}"
    );
    assert_eq!(ncode, 2);
    assert!(nout.contains("pg FAILED: archiver errors"), "{nout}");
    fs::remove_file(&bad).unwrap();

    // The archiver broken: archive_command failing.
    bench
        .pg
        .psql("ALTER SYSTEM SET archive_command = 'false'")
        .unwrap();
    bench.pg.psql("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    bench.pg.psql("CREATE TABLE t_broken AS SELECT 1").unwrap();
    bench.pg.switch_wal().unwrap();
    let start = Instant::now();
    while bench
        .pg
        .psql("SELECT failed_count FROM pg_stat_archiver")
        .unwrap()
        == "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "archive_command never failed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ((code, out), (ncode, nout)) = check(&bench);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\tcontinuous archiving: FAILED"), "{out}");
    assert_eq!(ncode, 2);
    assert!(nout.contains("pg FAILED: continuous archiving"), "{nout}");

    // Repaired: healthy again.
    bench.pg.psql("ALTER SYSTEM RESET archive_command").unwrap();
    bench.pg.psql("SELECT pg_reload_conf()").unwrap();
    let start = Instant::now();
    loop {
        let (code, _, _) = barman(&bench, &["check", "pg"]);
        if code == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "check never passed again"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ((code, out), (ncode, nout)) = check(&bench);
    assert_eq!((code, ncode), (0, 0), "{out}\n{nout}");
    assert_eq!(parse_nagios(&nout).0, "OK");
}
