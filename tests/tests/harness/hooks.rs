//! Hook scripts end to end (issue 8) on a real PostgreSQL 15: all twenty
//! hooks configured (globally, one overridden per server, found through
//! `path_prefix`) as real shell scripts that append one line per run —
//! `$BARMAN_PHASE $BARMAN_HOOK $BARMAN_RETRY` and every `BARMAN_*`
//! variable — to a log; each command's log is compared line by line with
//! the order Barman runs them in, and every value with the catalog (backup
//! ids, previous/next, status, error, segment names, paths, sizes,
//! compression, times, recovery options). Retry hooks exit as the test
//! says: 1 twice then 0 (retried, with Barman's 3 s pauses), 63 (the backup
//! is FAILED, archiving stops with the WAL in `incoming/`, the recovery
//! writes nothing). Then hooks that print 50 MB, that do not exist or that
//! never end, and SIGTERM to `barman` while one runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::catalog::{file_names_in, is_segment};
use barman_testkit::hooks::{HookRun as Run, log_script, take_runs, write_script};
use barman_testkit::{PgCluster, SERVER_OS_USER, chown_to, pid_alive};
use serde_json::Value;

use crate::archiving::{LocalSetup, ok};
use crate::backup::Bench;
use crate::recover::{Dest, LOCAL_RSYNC, archived_path, recover, recover_raw};

const EVENTS: [&str; 5] = ["backup", "archive", "delete", "recovery", "wal_delete"];

/// The hook scripts, in a directory the `postgres` user owns (barman runs
/// as `postgres` here): `log.sh` appends one line per run to `hooks.log`;
/// `exit.sh NAME` exits with the next code listed in `codes.NAME` (0 when
/// none is left).
struct HookDir {
    dir: PathBuf,
}

impl HookDir {
    fn new(parent: &Path) -> Self {
        let dir = parent.join("hooks");
        fs::create_dir(&dir).unwrap();
        let script = |name: &str, text: String| write_script(&dir.join(name), &text).unwrap();
        script("log.sh", log_script(&dir.join("hooks.log")));
        script(
            "exit.sh",
            format!(
                "#!/bin/sh\nf={}/codes.$1\n[ -s \"$f\" ] || exit 0\ncode=$(head -n 1 \"$f\")\n\
                 tail -n +2 \"$f\" > \"$f.next\" && mv \"$f.next\" \"$f\"\nexit \"$code\"\n",
                dir.display()
            ),
        );
        chown_to(&dir, SERVER_OS_USER).unwrap();
        for f in ["log.sh", "exit.sh"] {
            chown_to(&dir.join(f), SERVER_OS_USER).unwrap();
        }
        Self { dir }
    }

    /// The options of the `[barman]` section: every hook runs `log.sh`,
    /// every retry hook then `exit.sh <phase>_<event>`.
    fn global_options(&self) -> String {
        let mut text = format!("path_prefix = {}\n", self.dir.display());
        for e in EVENTS {
            let _ = write!(
                text,
                "pre_{e}_script = log.sh\npre_{e}_retry_script = log.sh; exit.sh pre_{e}\n\
                 post_{e}_retry_script = log.sh; exit.sh post_{e}\npost_{e}_script = log.sh\n"
            );
        }
        text
    }

    /// The next exit codes of `exit.sh name`.
    fn codes(&self, name: &str, codes: &[i32]) {
        let path = self.dir.join(format!("codes.{name}"));
        let text = codes.iter().fold(String::new(), |mut t, c| {
            let _ = writeln!(t, "{c}");
            t
        });
        fs::write(&path, text).unwrap();
        chown_to(&path, SERVER_OS_USER).unwrap();
    }

    /// The runs logged since the last call.
    fn take(&self) -> Vec<Run> {
        take_runs(&self.dir.join("hooks.log"))
    }
}

/// The log lines of one hook point `phase` of `event` about `subject`.
fn hook(phase: &str, event: &str, retry: bool, subject: &str) -> String {
    if retry {
        format!("{phase} {event}_retry_script 1 {subject}")
    } else {
        format!("{phase} {event}_script 0 {subject}")
    }
}

/// Standard pre, `pre_retries` runs of the retry pre.
fn pre_part(event: &str, subject: &str, pre_retries: usize) -> Vec<String> {
    let mut v = vec![hook("pre", event, false, subject)];
    v.extend(std::iter::repeat_n(
        hook("pre", event, true, subject),
        pre_retries,
    ));
    v
}

/// Retry post, standard post.
fn post_part(event: &str, subject: &str) -> Vec<String> {
    vec![
        hook("post", event, true, subject),
        hook("post", event, false, subject),
    ]
}

/// The four hooks of one operation, in Barman's order.
fn four(event: &str, subject: &str) -> Vec<String> {
    let mut v = pre_part(event, subject, 1);
    v.extend(post_part(event, subject));
    v
}

/// The subjects of the runs with `head`, in order, each once.
fn subjects(runs: &[Run], head: &str) -> Vec<String> {
    let names: Vec<String> = runs
        .iter()
        .filter(|r| r.head == head)
        .map(|r| r.subject().to_owned())
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "{head} twice for a file: {names:?}"
    );
    names
}

fn lines(runs: &[Run]) -> Vec<String> {
    runs.iter().map(Run::line).collect()
}

/// One xlog.db line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    size: String,
    time: String,
    compression: String,
}

fn xlogdb(bench: &Bench) -> BTreeMap<String, Entry> {
    fs::read_to_string(bench.setup.dir("wals").join("pg-xlog.db"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let compression = if cols[3] == "None" { "" } else { cols[3] };
            (
                cols[0].to_owned(),
                Entry {
                    size: cols[1].to_owned(),
                    time: cols[2].to_owned(),
                    compression: compression.to_owned(),
                },
            )
        })
        .collect()
}

/// Checks what every run carries.
fn check_common(bench: &Bench, runs: &[Run]) {
    let conf = bench.setup.home.conf().display().to_string();
    for run in runs {
        assert_eq!(run.var("SERVER"), "pg", "{run:?}");
        assert_eq!(run.var("CONFIGURATION"), conf, "{run:?}");
        assert_eq!(run.var("VERSION"), env!("CARGO_PKG_VERSION"), "{run:?}");
        let mut words = run.head.split(' ');
        assert_eq!(words.next(), Some(run.var("PHASE")), "{run:?}");
        assert_eq!(words.next(), Some(run.var("HOOK")), "{run:?}");
        let retry = if run.var("HOOK").ends_with("_retry_script") {
            "1"
        } else {
            "0"
        };
        assert_eq!(run.var("RETRY"), retry, "{run:?}");
        // The per-server override of pre_backup_script, and only it.
        let from = (run.head == "pre backup_script 0").then_some("server");
        assert_eq!(run.vars.get("FROM").map(String::as_str), from, "{run:?}");
    }
}

/// The archive runs: pre hooks see the file in `incoming/`, post hooks the
/// archived file as xlog.db lists it (`known` for files a purge removed
/// meanwhile); both see the same mtime.
fn check_archive(bench: &Bench, runs: &[Run], known: &BTreeMap<String, Entry>) {
    let incoming = bench.setup.dir("incoming");
    for run in runs.iter().filter(|r| r.event() == "archive") {
        let name = run.var("SEGMENT");
        let entry = &known[name];
        assert_eq!(run.var("TIMESTAMP"), entry.time, "{run:?}");
        assert_eq!(run.var("ERROR"), "", "{run:?}");
        if run.var("PHASE") == "pre" {
            assert_eq!(run.var("FILE"), incoming.join(name).display().to_string());
            assert_eq!(run.var("COMPRESSION"), "", "{run:?}");
            if is_segment(name) {
                assert_eq!(run.var("SIZE"), "16777216", "{run:?}");
            }
        } else {
            assert_eq!(
                run.var("FILE"),
                archived_path(bench, name).display().to_string()
            );
            assert_eq!(run.var("SIZE"), entry.size, "{run:?}");
            assert_eq!(run.var("COMPRESSION"), entry.compression, "{run:?}");
            if is_segment(name) {
                assert_eq!(entry.compression, "zstd", "{run:?}");
            }
        }
    }
}

/// The WAL-delete runs: the archived file as xlog.db listed it.
fn check_wal_delete(bench: &Bench, runs: &[Run], known: &BTreeMap<String, Entry>) {
    for run in runs.iter().filter(|r| r.event() == "wal_delete") {
        let name = run.var("SEGMENT");
        let entry = &known[name];
        assert_eq!(
            run.var("FILE"),
            archived_path(bench, name).display().to_string()
        );
        assert_eq!(run.var("SIZE"), entry.size, "{run:?}");
        assert_eq!(run.var("TIMESTAMP"), entry.time, "{run:?}");
        assert_eq!(run.var("COMPRESSION"), entry.compression, "{run:?}");
        assert_eq!(run.var("ERROR"), "", "{run:?}");
        assert!(!archived_path(bench, name).exists(), "{name} still there");
    }
}

/// What the backup variables of backup `id` must be.
struct Expect<'a> {
    id: &'a str,
    previous: &'a str,
    next: &'a str,
}

/// The backup (or delete, recovery) runs about `e.id`: pre hooks see
/// `pre_status`, post hooks `post_status` with `error`.
fn check_backup_vars(
    bench: &Bench,
    runs: &[Run],
    event: &str,
    e: &Expect<'_>,
    (pre_status, post_status, error): (&str, &str, &str),
) {
    let mut seen = 0;
    for run in runs.iter().filter(|r| r.event() == event) {
        seen += 1;
        assert_eq!(run.var("BACKUP_ID"), e.id, "{run:?}");
        assert_eq!(
            run.var("BACKUP_DIR"),
            bench.backup_dir(e.id).display().to_string()
        );
        assert_eq!(
            run.var("BACKUP_INFO_PATH"),
            bench
                .setup
                .dir("meta")
                .join(format!("{}-backup.info", e.id))
                .display()
                .to_string()
        );
        assert_eq!(run.var("PREVIOUS_ID"), e.previous, "{run:?}");
        assert_eq!(run.var("NEXT_ID"), e.next, "{run:?}");
        let (status, error) = if run.var("PHASE") == "pre" {
            (pre_status, "")
        } else {
            (post_status, error)
        };
        assert_eq!(run.var("STATUS"), status, "{run:?}");
        assert_eq!(run.var("ERROR"), error, "{run:?}");
    }
    assert!(seen > 0, "no {event} hook ran");
}

/// `barman ARGS` as `postgres`.
fn barman(bench: &Bench, args: &[&str]) -> Output {
    bench.setup.run(args)
}

/// Writes a little WAL and switches: the name of a segment no one archived
/// yet (a switch with nothing written names the previous, archived one).
fn switch_new_wal(pg: &PgCluster) -> String {
    pg.psql("CREATE TABLE IF NOT EXISTS hook_t (i int); INSERT INTO hook_t VALUES (1)")
        .unwrap();
    pg.switch_wal().unwrap()
}

/// Waits until PostgreSQL's archive_command has put `name` into `incoming`.
fn wait_incoming(incoming: &Path, name: &str) {
    let path = incoming.join(name);
    let start = Instant::now();
    while !path.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} never reached incoming/"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_operation_runs_its_hooks_in_barmans_order_with_barmans_values() {
    let bench = Bench::new(
        &format!(
            "{LOCAL_RSYNC}compression = zstd\npre_backup_script = BARMAN_FROM=server log.sh\n"
        ),
        1,
    );
    let hooks = HookDir::new(bench.setup.home.dir());
    let conf = fs::read_to_string(bench.setup.home.conf()).unwrap();
    fs::write(
        bench.setup.home.conf(),
        conf.replacen(
            "[barman]\n",
            &format!("[barman]\n{}", hooks.global_options()),
            1,
        ),
    )
    .unwrap();

    // 1. switch-wal --archive: the archive hooks around every WAL filed.
    bench.flush_wal();
    let runs = hooks.take();
    let archived = subjects(&runs, "pre archive_script 0");
    assert!(!archived.is_empty());
    let expected: Vec<String> = archived.iter().flat_map(|n| four("archive", n)).collect();
    assert_eq!(lines(&runs), expected);
    check_common(&bench, &runs);
    check_archive(&bench, &runs, &xlogdb(&bench));

    // 2. The first backup: backup hooks (post before the inline
    // archive-wal, so WAITING_FOR_WALS), then archive hooks for what the
    // inline archive-wal files, then WAL-delete hooks for every WAL older
    // than the backup (the first backup's purge).
    let before = xlogdb(&bench);
    let first = bench.backup(&[])["backup_id"].as_str().unwrap().to_owned();
    let runs = hooks.take();
    let archived = subjects(&runs, "pre archive_script 0");
    let purged = subjects(&runs, "pre wal_delete_script 0");
    let mut expected = four("backup", &first);
    expected.extend(archived.iter().flat_map(|n| four("archive", n)));
    expected.extend(purged.iter().flat_map(|n| four("wal_delete", n)));
    assert_eq!(lines(&runs), expected);
    let begin_wal = bench.info(&first)["begin_wal"].clone();
    // What xlog.db listed at some point: before, as the archive post hooks
    // saw it (files purged since), and now.
    let mut known = before.clone();
    known.extend(
        runs.iter()
            .filter(|r| r.head == "post archive_script 0")
            .map(|r| {
                let e = Entry {
                    size: r.var("SIZE").to_owned(),
                    time: r.var("TIMESTAMP").to_owned(),
                    compression: r.var("COMPRESSION").to_owned(),
                };
                (r.var("SEGMENT").to_owned(), e)
            }),
    );
    known.extend(xlogdb(&bench));
    let older: BTreeSet<&String> = known
        .keys()
        .filter(|n| n.as_str() < begin_wal.as_str() && !n.ends_with(".history"))
        .collect();
    assert!(!older.is_empty(), "nothing to purge before {begin_wal}");
    assert_eq!(purged.iter().collect::<BTreeSet<_>>(), older);
    check_common(&bench, &runs);
    check_backup_vars(
        &bench,
        &runs,
        "backup",
        &Expect {
            id: &first,
            previous: "",
            next: "",
        },
        ("EMPTY", "WAITING_FOR_WALS", ""),
    );
    check_archive(&bench, &runs, &known);
    check_wal_delete(&bench, &runs, &known);

    // 3. A pre retry hook that fails twice then succeeds: retried after
    // 3 s pauses, and the backup goes on; with --wait the post hooks run
    // after the wait and see DONE.
    hooks.codes("pre_backup", &[1, 1]);
    let started = Instant::now();
    let second = bench.backup(&["--wait", "--wait-timeout", "120"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(started.elapsed() >= Duration::from_secs(6), "no 3 s pauses");
    let runs = hooks.take();
    let archived = subjects(&runs, "pre archive_script 0");
    let mut expected = pre_part("backup", &second, 3);
    expected.extend(archived.iter().flat_map(|n| four("archive", n)));
    expected.extend(post_part("backup", &second));
    assert_eq!(lines(&runs), expected);
    assert_eq!(bench.info(&second)["status"], "DONE");
    check_common(&bench, &runs);
    let second_vars = Expect {
        id: &second,
        previous: &first,
        next: "",
    };
    check_backup_vars(&bench, &runs, "backup", &second_vars, ("EMPTY", "DONE", ""));
    check_archive(&bench, &runs, &xlogdb(&bench));

    // 4. A pre retry hook exiting 63: the backup is FAILED, its error says
    // why, and the post hooks still run and see it.
    hooks.codes("pre_backup", &[63]);
    let out = barman(&bench, &["-f", "json", "backup", "pg"]);
    assert!(!out.status.success(), "a stopped backup must fail");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let third = doc["pg"]["backup_id"].as_str().unwrap().to_owned();
    let info = bench.info(&third);
    assert_eq!(info["status"], "FAILED");
    let error = &info["error"];
    assert_eq!(
        error,
        "failure starting backup (Abort 'pre_backup_retry_script' retry hook script \
         (log.sh; exit.sh pre_backup, exit code: 63))"
    );
    assert!(!bench.backup_dir(&third).join("data").exists());
    let runs = hooks.take();
    assert_eq!(lines(&runs), four("backup", &third));
    check_common(&bench, &runs);
    let third_vars = Expect {
        id: &third,
        previous: &second,
        next: "",
    };
    check_backup_vars(
        &bench,
        &runs,
        "backup",
        &third_vars,
        ("EMPTY", "FAILED", error),
    );

    // 5. A pre-archive retry hook exiting 63 stops archive-wal (exit 0, as
    // in Barman) with the WAL still in incoming/; the next run files it.
    let segment = switch_new_wal(&bench.pg);
    wait_incoming(&bench.setup.dir("incoming"), &segment);
    let incoming = file_names_in(&bench.setup.dir("incoming"));
    let held = incoming[0].clone();
    let held_bytes = fs::read(bench.setup.dir("incoming").join(&held)).unwrap();
    hooks.codes("pre_archive", &[63]);
    let out = barman(&bench, &["archive-wal", "pg"]);
    let stdout = ok(&out, "archive-wal stopped by a hook");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "archiving of {held} for server pg stopped: Abort 'pre_archive_retry_script'"
        )),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let left = file_names_in(&bench.setup.dir("incoming"));
    assert!(
        incoming.iter().all(|n| left.contains(n)),
        "a file left incoming/: {incoming:?} → {left:?}"
    );
    assert_eq!(
        fs::read(bench.setup.dir("incoming").join(&held)).unwrap(),
        held_bytes
    );
    assert!(!archived_path(&bench, &held).exists());
    let runs = hooks.take();
    assert_eq!(lines(&runs), four("archive", &held));
    let reason = "Abort 'pre_archive_retry_script' retry hook script (log.sh; exit.sh pre_archive, exit code: 63)";
    for run in &runs[2..] {
        assert_eq!(run.var("ERROR"), reason);
        assert_eq!(
            run.var("FILE"),
            archived_path(&bench, &held).display().to_string()
        );
    }
    ok(&barman(&bench, &["archive-wal", "pg"]), "archive-wal");
    assert!(archived_path(&bench, &segment).exists());
    let runs = hooks.take();
    let archived = subjects(&runs, "pre archive_script 0");
    assert!(archived.contains(&held) && archived.contains(&segment));
    check_archive(&bench, &runs, &xlogdb(&bench));

    // 6. Manual delete of the first backup: delete pre hooks, WAL-delete
    // hooks around each WAL it frees, delete post hooks.
    let before = xlogdb(&bench);
    let first_status = bench.info(&first)["status"].clone();
    ok(&barman(&bench, &["delete", "pg", &first]), "delete");
    let runs = hooks.take();
    let removed = subjects(&runs, "pre wal_delete_script 0");
    let after = xlogdb(&bench);
    let gone: BTreeSet<&String> = before.keys().filter(|n| !after.contains_key(*n)).collect();
    assert!(!gone.is_empty());
    assert_eq!(removed.iter().collect::<BTreeSet<_>>(), gone);
    let mut expected = pre_part("delete", &first, 1);
    expected.extend(removed.iter().flat_map(|n| four("wal_delete", n)));
    expected.extend(post_part("delete", &first));
    assert_eq!(lines(&runs), expected);
    check_common(&bench, &runs);
    let first_vars = Expect {
        id: &first,
        previous: "",
        next: &second,
    };
    check_backup_vars(
        &bench,
        &runs,
        "delete",
        &first_vars,
        (&first_status, &first_status, ""),
    );
    check_wal_delete(&bench, &runs, &before);

    // 7. Retention through cron (REDUNDANCY 1 once a newer backup is DONE):
    // the same delete and WAL-delete hooks, for the second backup.
    let conf = fs::read_to_string(bench.setup.home.conf()).unwrap();
    fs::write(
        bench.setup.home.conf(),
        conf + "retention_policy = REDUNDANCY 1\n",
    )
    .unwrap();
    let fourth = bench.backup(&["--wait", "--wait-timeout", "120"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hooks.take();
    let before = xlogdb(&bench);
    ok(&barman(&bench, &["cron"]), "cron");
    assert!(
        !bench
            .setup
            .dir("meta")
            .join(format!("{second}-backup.info"))
            .exists()
    );
    let runs = hooks.take();
    let archived = subjects(&runs, "pre archive_script 0");
    let removed = subjects(&runs, "pre wal_delete_script 0");
    let mut expected: Vec<String> = archived.iter().flat_map(|n| four("archive", n)).collect();
    expected.extend(pre_part("delete", &second, 1));
    expected.extend(removed.iter().flat_map(|n| four("wal_delete", n)));
    expected.extend(post_part("delete", &second));
    assert_eq!(lines(&runs), expected);
    let after = xlogdb(&bench);
    let gone: BTreeSet<&String> = before.keys().filter(|n| !after.contains_key(*n)).collect();
    assert!(!gone.is_empty());
    assert_eq!(removed.iter().collect::<BTreeSet<_>>(), gone);
    check_common(&bench, &runs);
    let second_vars = Expect {
        id: &second,
        previous: "",
        next: &fourth,
    };
    check_backup_vars(&bench, &runs, "delete", &second_vars, ("DONE", "DONE", ""));
    check_wal_delete(&bench, &runs, &before);

    // 8. Recovery: 63 from the pre retry hook writes nothing and runs no
    // post hook; then the recovery with its JSON variables.
    let dest = Dest::new("hooks");
    let data = dest.data_arg();
    let ts = dest.ts_arg();
    let args = [
        fourth.as_str(),
        data.as_str(),
        "--tablespace",
        ts.as_str(),
        "--target-immediate",
        "--target-action",
        "shutdown",
    ];
    hooks.codes("pre_recovery", &[63]);
    let refused = recover_raw(&bench, &args, &[]);
    assert!(!refused.status.success(), "{}", refused.both());
    assert!(
        refused.stderr.contains("Abort 'pre_recovery_retry_script'"),
        "{}",
        refused.both()
    );
    assert!(
        !dest.data().exists() && !dest.ts().exists(),
        "DEST was written"
    );
    assert_eq!(lines(&hooks.take()), pre_part("recovery", &fourth, 1));
    recover(&bench, &args, &[]);
    let runs = hooks.take();
    assert_eq!(lines(&runs), four("recovery", &fourth));
    check_common(&bench, &runs);
    let fourth_vars = Expect {
        id: &fourth,
        previous: "",
        next: "",
    };
    check_backup_vars(
        &bench,
        &runs,
        "recovery",
        &fourth_vars,
        ("DONE", "DONE", ""),
    );
    for run in &runs {
        assert_eq!(run.var("DESTINATION_DIRECTORY"), data);
        assert_eq!(
            run.var("TABLESPACES"),
            format!("{{\"ts1\": \"{}\"}}", dest.ts().display())
        );
        assert_eq!(run.var("REMOTE_COMMAND"), "");
        assert_eq!(
            run.var("RECOVER_OPTIONS"),
            "{\"target_action\": \"shutdown\", \"target_immediate\": true}"
        );
    }
}

/// `barman -c CONF archive-wal pg` started as `postgres`, output to files.
fn spawn_archive_wal(setup: &LocalSetup, out: &Path) -> std::process::Child {
    setup
        .command(&["archive-wal", "pg"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(out.join("stdout")).unwrap())
        .stderr(fs::File::create(out.join("stderr")).unwrap())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("barman still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn hooks_that_flood_fail_to_exist_or_hang_never_wedge_barman() {
    let setup = LocalSetup::new();
    let pg = PgCluster::builder()
        .archive_command(setup.archive_command())
        .start()
        .expect("start PostgreSQL 15");
    setup.configure(&pg, "");
    let hooks = HookDir::new(setup.home.dir());
    let base = fs::read_to_string(setup.home.conf()).unwrap();
    let configure = |options: &str| {
        fs::write(setup.home.conf(), format!("{base}{options}\n")).unwrap();
    };
    let incoming = setup.dir("incoming");
    let next_wal = || {
        let name = switch_new_wal(&pg);
        wait_incoming(&incoming, &name);
        name
    };
    let archived = |name: &str| setup.dir("wals").join(&name[..16]).join(name).is_file();

    // 50 MB on stdout and a failure status: logged bounded, nothing blocks.
    let wal = next_wal();
    configure("pre_archive_script = yes | head -c 50000000; exit 1");
    let started = Instant::now();
    ok(
        &setup.run(&["archive-wal", "pg"]),
        "archive-wal with a flooding hook",
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(archived(&wal));
    let log = setup.home.log();
    assert!(
        log.len() < 1_000_000,
        "the log holds the flood: {} bytes",
        log.len()
    );
    assert!(
        log.contains("yes | head -c 50000000; exit 1 returned 1"),
        "{log}"
    );
    assert!(log.contains("bytes of output not kept"), "{log}");

    // A standard hook that does not exist: a clear warning, archiving goes on.
    let wal = next_wal();
    configure("pre_archive_script = /nonexistent/pre-archive-hook");
    ok(
        &setup.run(&["archive-wal", "pg"]),
        "archive-wal with a missing hook",
    );
    assert!(archived(&wal));
    let log = setup.home.log();
    assert!(
        log.contains("the shell could not find the command of `/nonexistent/pre-archive-hook` (exit status 127)"),
        "{log}"
    );

    // A retry hook that does not exist is retried as a transient failure
    // (every 3 s) until SIGTERM stops barman; the WAL stays in incoming/.
    let wal = next_wal();
    configure("pre_archive_retry_script = /nonexistent/retry-hook");
    let out = tempfile::tempdir().unwrap();
    let mut child = spawn_archive_wal(&setup, out.path());
    let start = Instant::now();
    while setup
        .home
        .log()
        .matches("/nonexistent/retry-hook returned 127")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not retried:\n{}",
            setup.home.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sigterm(child.id());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(!status.success());
    assert!(incoming.join(&wal).is_file() && !archived(&wal));
    let stderr = fs::read_to_string(out.path().join("stderr")).unwrap();
    assert!(
        stderr.contains(&format!(
            "archiving of {wal} for server pg stopped: Interrupted"
        )),
        "{stderr}"
    );

    // A hook that never ends: SIGTERM to barman stops it (its whole
    // process group) and barman exits; the WAL stays in incoming/.
    let pid_file = hooks.dir.join("hook.pid");
    configure(&format!(
        "pre_archive_script = echo $$ > {}; exec sleep 600",
        pid_file.display()
    ));
    let mut child = spawn_archive_wal(&setup, out.path());
    let start = Instant::now();
    let hook_pid: u32 = loop {
        if let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the hook never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(pid_alive(hook_pid));
    let stopped = Instant::now();
    sigterm(child.id());
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(stopped.elapsed() < Duration::from_secs(10));
    assert!(!status.success());
    assert!(!pid_alive(hook_pid), "the hook outlived barman");
    assert!(incoming.join(&wal).is_file() && !archived(&wal));
    assert!(
        setup
            .home
            .log()
            .contains("stopping hook script (interrupted)")
    );

    // And with the hooks gone, the next run archives it.
    configure("");
    ok(&setup.run(&["archive-wal", "pg"]), "archive-wal");
    assert!(archived(&wal));
}
