//! `barman recover` end to end: a real PostgreSQL 15 (with tablespace `ts1`)
//! backed up under pgbench load, recovered with the command under test into
//! fresh directories, started as `postgres` and its data compared with the
//! primary's: a full recovery of `latest`, point-in-time recovery to every
//! target kind, timelines (a promoted recovery archiving on timeline 2),
//! tablespace relocation, remote recovery over a loopback sshd, and a delta
//! restore into a stale copy.

use std::collections::BTreeMap;
use std::fs;
use std::hash::Hasher as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::catalog::{file_names_in, is_segment, read_names, xlog_names};
use barman_testkit::{DataDirServer, SERVER_OS_USER, Sshd, chmod, chown_to};
use serde_json::Value;

use crate::archiving::ClientSide;
use crate::backup::{Bench, SNAPSHOT_SQL};

/// The server configuration of the recovery benches.
pub(crate) const LOCAL_RSYNC: &str = "backup_method = local-rsync\nreuse_backup = link\n";

/// How long a `barman recover` may take before the test gives up.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a recovered server may take to reach its target / end recovery.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A fresh parent directory owned by `postgres` for one recovery: `data/`
/// (the recovery destination, created by barman unless the test makes it)
/// and `ts1/` (where `ts1` is relocated). The server started on `data/`
/// writes its log and socket here too.
pub(crate) struct Dest {
    parent: tempfile::TempDir,
}

impl Dest {
    pub(crate) fn new(label: &str) -> Self {
        let parent = tempfile::Builder::new()
            .prefix(&format!("barman-e2e-recover-{label}-"))
            .tempdir_in("/tmp")
            .unwrap();
        chmod(parent.path(), 0o755).unwrap();
        chown_to(parent.path(), SERVER_OS_USER).unwrap();
        Self { parent }
    }

    pub(crate) fn path(&self) -> &Path {
        self.parent.path()
    }

    /// The recovery destination (PGDATA of the recovered server).
    pub(crate) fn data(&self) -> PathBuf {
        self.parent.path().join("data")
    }

    pub(crate) fn data_arg(&self) -> String {
        self.data().display().to_string()
    }

    /// Where `--tablespace ts1:...` relocates `ts1`.
    pub(crate) fn ts(&self) -> PathBuf {
        self.parent.path().join("ts1")
    }

    /// `ts1:<parent>/ts1`.
    pub(crate) fn ts_arg(&self) -> String {
        format!("ts1:{}", self.ts().display())
    }

    /// Creates `data/` empty, owned by `postgres`.
    pub(crate) fn make_data_dir(&self) {
        fs::create_dir(self.data()).unwrap();
        chown_to(&self.data(), SERVER_OS_USER).unwrap();
        chmod(&self.data(), 0o700).unwrap();
    }
}

/// What one `barman` run printed.
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Run {
    /// stdout and stderr, for failure messages.
    pub(crate) fn both(&self) -> String {
        format!(
            "exit {}\nstdout: {}\nstderr: {}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `barman -c CONF ARGS` as `postgres` with the bench's environment and
/// `env`; output goes to files (an ssh ControlMaster forked by the run may
/// keep pipes open), and the run is killed after `timeout`.
pub(crate) fn barman_run(
    bench: &Bench,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Run {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let mut child = bench
        .setup
        .command(args)
        .envs(bench.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "barman {} still running after {timeout:?}; stderr: {}",
                args.join(" "),
                fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: fs::read_to_string(out.path()).unwrap(),
        stderr: fs::read_to_string(err.path()).unwrap(),
        elapsed: start.elapsed(),
    }
}

/// `barman recover pg ARGS` (console output), whatever the outcome.
pub(crate) fn recover_raw(bench: &Bench, args: &[&str], env: &[(String, String)]) -> Run {
    let mut all = vec!["recover", "pg"];
    all.extend_from_slice(args);
    barman_run(bench, &all, env, RECOVER_TIMEOUT)
}

/// `barman -f json recover pg ARGS`, expected to succeed: the recovery's
/// JSON object (the document itself, or its `pg` member).
pub(crate) fn recover(bench: &Bench, args: &[&str], env: &[(String, String)]) -> Value {
    let mut all = vec!["-f", "json", "recover", "pg"];
    all.extend_from_slice(args);
    let run = barman_run(bench, &all, env, RECOVER_TIMEOUT);
    assert!(
        run.status.success(),
        "barman recover pg {} failed: {}\nlog:\n{}",
        args.join(" "),
        run.both(),
        tail(&bench.setup.home.log(), 4000)
    );
    eprintln!("recover {} took {:?}", args.join(" "), run.elapsed);
    let doc: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("recover JSON: {e}: {}", run.both()));
    let result = if doc.get("backup_id").is_some() {
        doc
    } else if doc.get("pg").is_some_and(Value::is_object) {
        doc["pg"].clone()
    } else {
        panic!("no recovery result in the JSON: {doc}")
    };
    for key in [
        "backup_id",
        "destination",
        "files",
        "files_written",
        "files_reused",
        "files_removed",
        "bytes_written",
        "wals",
        "recovery_target",
        "changes",
        "warnings",
    ] {
        assert!(result.get(key).is_some(), "`{key}` missing: {result}");
    }
    assert!(result["changes"].is_array(), "{result}");
    assert!(result["warnings"].is_array(), "{result}");
    assert!(result["recovery_target"].is_object(), "{result}");
    result
}

pub(crate) fn num(doc: &Value, key: &str) -> u64 {
    doc[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a number: {doc}"))
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Starts PostgreSQL on the recovered `dest` (a fresh port; `extra_conf`
/// appended to postgresql.conf).
pub(crate) fn start(bench: &Bench, dest: &Dest, extra_conf: &str) -> DataDirServer {
    DataDirServer::start(bench.pg.pg_bin(), &dest.data(), extra_conf)
        .unwrap_or_else(|e| panic!("start the recovered {}: {e}", dest.data().display()))
}

/// Waits until recovery has ended (no target, or `--target-action promote`).
pub(crate) fn wait_promoted(server: &DataDirServer) {
    server
        .wait_for("SELECT pg_is_in_recovery()", "f", START_TIMEOUT)
        .unwrap();
}

/// Waits until recovery has paused at its target (hot standby, read-only).
pub(crate) fn wait_paused(server: &DataDirServer) {
    server
        .wait_for(
            "SELECT pg_get_wal_replay_pause_state()",
            "paused",
            START_TIMEOUT,
        )
        .unwrap();
    assert_eq!(server.psql("SELECT pg_is_in_recovery()").unwrap(), "t");
}

/// The tables compared row by row.
pub(crate) const TABLES: [&str; 5] = [
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_tellers",
    "pgbench_history",
    "in_ts",
];

/// `SNAPSHOT_SQL` and, per table, its row count and the md5 of all its rows.
pub(crate) fn data_digest(psql: impl Fn(&str) -> String) -> Vec<String> {
    let mut out = vec![psql(SNAPSHOT_SQL)];
    for t in TABLES {
        out.push(format!(
            "{t}: {}",
            psql(&format!(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '') FROM {t} r"
            ))
        ));
    }
    out
}

/// Every entry under `root` (not following symlinks): relative path →
/// `file <size> <hash>`, `dir`, or `link -> <target>`.
pub(crate) fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let value = if meta.is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                let bytes = fs::read(&path).unwrap();
                let mut h = std::hash::DefaultHasher::new();
                h.write(&bytes);
                format!("file {} {:016x}", bytes.len(), h.finish())
            };
            out.insert(rel, value);
        }
    }
    out
}

/// The differences between two trees (at most 30 lines).
pub(crate) fn tree_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .filter(|k| a.get(*k) != b.get(*k))
        .take(30)
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect()
}

/// The trees of `dest`'s data directory and `ts1` with the destination's
/// own path replaced by `<DEST>` (tablespace_map, the pg_tblspc link and
/// the configuration name it), to compare recoveries into different places.
pub(crate) fn comparable(dest: &Dest) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let own = dest.path().display().to_string();
    let mut data = tree(&dest.data());
    for value in data.values_mut() {
        if value.starts_with("link -> ") {
            *value = value.replace(&own, "<DEST>");
        }
    }
    for f in [
        "tablespace_map",
        ".barman-recover.info",
        "postgresql.auto.conf",
        "postgresql.conf",
    ] {
        if let Ok(text) = fs::read_to_string(dest.data().join(f)) {
            data.insert(f.to_owned(), text.replace(&own, "<DEST>"));
        }
    }
    (data, tree(&dest.ts()))
}

/// Regular files of backup `id` (its `manifest` excluded): count, bytes.
pub(crate) fn backup_files(bench: &Bench, id: &str) -> (u64, u64) {
    let files = crate::backup::files(&bench.backup_dir(id));
    let mut count = 0;
    let mut bytes = 0;
    for (rel, (_, _, size)) in files {
        if rel != "manifest" {
            count += 1;
            bytes += size;
        }
    }
    (count, bytes)
}

/// WAL names listed in `pg-xlog.db` (first column), in order.
pub(crate) fn xlogdb_names(bench: &Bench) -> Vec<String> {
    let mut names =
        xlog_names(&fs::read_to_string(bench.setup.dir("wals").join("pg-xlog.db")).unwrap());
    names.sort();
    names
}

/// Where the archive keeps `name`.
pub(crate) fn archived_path(bench: &Bench, name: &str) -> PathBuf {
    let wals = bench.setup.dir("wals");
    if name.len() >= 24 && !name.ends_with(".history") {
        wals.join(&name[..16]).join(name)
    } else {
        wals.join(name)
    }
}

/// postgresql.conf + postgresql.auto.conf of a recovered directory.
pub(crate) fn config_text(data: &Path) -> String {
    let mut text = String::new();
    for f in ["postgresql.conf", "postgresql.auto.conf"] {
        text += &fs::read_to_string(data.join(f)).unwrap_or_default();
        text.push('\n');
    }
    text
}

/// The one link under `data/pg_tblspc` and where it points.
pub(crate) fn tablespace_link(data: &Path) -> (String, PathBuf) {
    let links: Vec<_> = fs::read_dir(data.join("pg_tblspc"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(links.len(), 1, "pg_tblspc: {links:?}");
    let oid = links[0].file_name().to_string_lossy().into_owned();
    let target = fs::read_link(links[0].path())
        .unwrap_or_else(|e| panic!("pg_tblspc/{oid} is not a symlink: {e}"));
    (oid, target)
}

pub(crate) fn ids(server: &DataDirServer, table: &str) -> String {
    server
        .psql(&format!(
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM {table}"
        ))
        .unwrap()
}

pub(crate) fn backup_id(doc: &Value) -> String {
    doc["backup_id"].as_str().unwrap().to_owned()
}

/// Full recovery of `latest` (no target) of a backup taken under pgbench
/// load, with every archived WAL: the WALs go to pg_wal (marked `.done`),
/// the configuration is mangled as Barman does, and the started server has
/// exactly the primary's data.
#[test]
fn full_recovery_of_latest_under_load_has_the_primary_data() {
    let bench = Bench::new(&format!("{LOCAL_RSYNC}autogenerate_manifest = true\n"), 1);
    let pg = &bench.pg;
    let id = std::thread::scope(|s| {
        let load = s.spawn(|| pg.pgbench_run(2, 5).unwrap());
        std::thread::sleep(Duration::from_secs(1));
        let doc = bench.backup(&["--wait", "--wait-timeout", "120", "--bwlimit", "8000"]);
        let report = load.join().unwrap();
        assert!(
            report.contains("number of transactions actually processed"),
            "{report}"
        );
        backup_id(&doc)
    });
    // More changes after the backup: only WAL replay brings them back.
    pg.pgbench_run(2, 2).unwrap();
    pg.psql("UPDATE in_ts SET n = n * 2 WHERE id % 7 = 0")
        .unwrap();
    let expected = data_digest(|sql| pg.psql(sql).unwrap());
    bench.flush_wal();
    let info = bench.info(&id);
    assert_eq!(info["status"], "DONE", "{info:?}");
    let backup_dir = bench.backup_dir(&id);
    assert!(backup_dir.join("data/backup_manifest").is_file());

    let dest = Dest::new("full");
    let data = dest.data();
    let doc = recover(
        &bench,
        &[&id, &dest.data_arg(), "--tablespace", &dest.ts_arg()],
        &[],
    );
    eprintln!("recover JSON: {doc}");
    assert_eq!(doc["backup_id"], id.as_str());
    assert!(
        doc["destination"]
            .as_str()
            .is_some_and(|d| d.contains(&dest.data_arg())),
        "{doc}"
    );
    let (files, bytes) = backup_files(&bench, &id);
    assert_eq!(num(&doc, "files"), files, "{doc}");
    assert_eq!(num(&doc, "files_written"), files, "{doc}");
    assert_eq!(num(&doc, "files_reused"), 0, "{doc}");
    assert_eq!(num(&doc, "files_removed"), 0, "{doc}");
    let written = num(&doc, "bytes_written");
    assert!(
        written >= bytes / 2,
        "bytes_written {written}, backup {bytes}"
    );
    assert!(
        !doc["changes"].as_array().unwrap().is_empty()
            && doc["changes"].to_string().contains("archive_command"),
        "changes: {}",
        doc["changes"]
    );

    // WAL: every archived segment from begin_wal on, in pg_wal, marked done.
    assert!(!data.join("recovery.signal").exists());
    assert!(!data.join("standby.signal").exists());
    let staged: Vec<String> = file_names_in(&data.join("pg_wal"));
    assert_eq!(num(&doc, "wals"), staged.len() as u64, "{staged:?}");
    let wanted: Vec<String> = xlogdb_names(&bench)
        .into_iter()
        .filter(|n| is_segment(n) && n.as_str() >= info["begin_wal"].as_str())
        .collect();
    let staged_segments: Vec<String> = staged.iter().filter(|n| is_segment(n)).cloned().collect();
    assert_eq!(staged_segments, wanted, "staged WALs");
    for name in &staged {
        assert_eq!(
            fs::read(data.join("pg_wal").join(name)).unwrap(),
            fs::read(archived_path(&bench, name)).unwrap(),
            "{name} differs from the archive"
        );
        if is_segment(name) {
            assert!(
                data.join(format!("pg_wal/archive_status/{name}.done"))
                    .is_file(),
                "no archive_status/{name}.done"
            );
        }
    }

    // Metadata kept next to the data.
    let recover_info = fs::read_to_string(data.join(".barman-recover.info")).unwrap();
    assert!(recover_info.contains(&id), "{recover_info}");
    assert!(!data.join("backup_manifest").exists());
    assert_eq!(
        fs::read(data.join(format!("backup_manifest.{id}"))).unwrap(),
        fs::read(backup_dir.join("data/backup_manifest")).unwrap()
    );
    // Configuration: the original archive_command commented out, originals kept.
    let conf = config_text(&data);
    assert!(
        conf.lines()
            .any(|l| l.starts_with("#BARMAN#") && l.contains("archive_command")),
        "{conf}"
    );
    assert!(
        conf.lines()
            .any(|l| l.replace(' ', "") == "archive_command=false"),
        "{conf}"
    );
    for f in ["postgresql.conf", "postgresql.auto.conf"] {
        assert_eq!(
            fs::read(data.join(format!("{f}.origin"))).unwrap(),
            fs::read(backup_dir.join("data").join(f)).unwrap(),
            "{f}.origin"
        );
    }
    // ts1 relocated.
    let (oid, target) = tablespace_link(&data);
    assert_eq!(target, dest.ts());
    if let Ok(map) = fs::read_to_string(data.join("tablespace_map")) {
        assert_eq!(map.trim(), format!("{oid} {}", dest.ts().display()));
    }

    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), expected);
    assert_eq!(server.psql("SHOW archive_command").unwrap(), "false");
    assert_eq!(
        server
            .psql("SELECT system_identifier FROM pg_control_system()")
            .unwrap(),
        pg.system_identifier().unwrap().to_string()
    );
    assert_eq!(
        server
            .psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'")
            .unwrap(),
        dest.ts().display().to_string()
    );
}

/// A PITR case: label, options, words expected in postgresql.auto.conf,
/// the marker ids present after recovery, whether it is promoted.
type PitrCase<'a> = (&'a str, Vec<&'a str>, Vec<String>, &'a str, bool);

/// One marker row committed after the backup.
struct Mark {
    xid: String,
    /// `clock_timestamp()` right after the commit (UTC, `+00:00`).
    after: String,
    /// `pg_current_wal_insert_lsn()` right after the commit.
    lsn: String,
}

/// Point-in-time recovery to a time, an xid (inclusive and exclusive), an
/// LSN, a restore point and `immediate`: each recovered server has exactly
/// the marker rows committed up to its target; `promote` ends recovery, the
/// others pause read-only at the target.
#[test]
fn point_in_time_recovery_stops_at_each_target_kind() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let pg = &bench.pg;
    pg.psql(
        "CREATE TABLE marks (id int PRIMARY KEY, t timestamptz DEFAULT clock_timestamp(), \
         x xid8 DEFAULT pg_current_xact_id())",
    )
    .unwrap();
    let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    let mut marks = Vec::new();
    for i in 1..=8 {
        if i == 5 {
            pg.psql("SELECT pg_create_restore_point('before_5')")
                .unwrap();
        }
        let xid = pg
            .psql(&format!("INSERT INTO marks (id) VALUES ({i}) RETURNING x"))
            .unwrap();
        let after = pg
            .psql(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00' || '|' || pg_current_wal_insert_lsn()",
            )
            .unwrap();
        let (after, lsn) = after.split_once('|').unwrap();
        marks.push(Mark {
            xid,
            after: after.to_owned(),
            lsn: lsn.to_owned(),
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    bench.flush_wal();
    let end_time = bench.info(&id)["end_time"].clone();
    eprintln!(
        "backup {id} ended {end_time}; marks after-commit: {:?}",
        marks.iter().map(|m| &m.after).collect::<Vec<_>>()
    );

    // (label, options, words expected in postgresql.auto.conf, marker ids, promoted)
    let cases: Vec<PitrCase> = vec![
        (
            "time",
            vec![
                "--target-time",
                &marks[2].after,
                "--target-action",
                "promote",
            ],
            vec!["recovery_target_time".into(), "promote".into()],
            "1,2,3",
            true,
        ),
        (
            "xid",
            vec!["--target-xid", &marks[5].xid],
            vec!["recovery_target_xid".into(), marks[5].xid.clone()],
            "1,2,3,4,5,6",
            false,
        ),
        (
            "xid-exclusive",
            vec!["--target-xid", &marks[5].xid, "--exclusive"],
            vec![
                "recovery_target_xid".into(),
                "recovery_target_inclusive".into(),
            ],
            "1,2,3,4,5",
            false,
        ),
        (
            "lsn",
            vec!["--target-lsn", &marks[1].lsn],
            vec!["recovery_target_lsn".into(), marks[1].lsn.clone()],
            "1,2",
            false,
        ),
        (
            "name",
            vec!["--target-name", "before_5"],
            vec!["recovery_target_name".into(), "before_5".into()],
            "1,2,3,4",
            false,
        ),
        (
            "immediate",
            vec!["--target-immediate"],
            vec!["recovery_target".into(), "immediate".into()],
            "",
            false,
        ),
    ];
    for (label, options, conf_words, expected, promoted) in cases {
        let started = Instant::now();
        let dest = Dest::new(label);
        let data = dest.data();
        let (d, ts) = (dest.data_arg(), dest.ts_arg());
        let mut args = vec![id.as_str(), d.as_str(), "--tablespace", ts.as_str()];
        args.extend(options.iter().copied());
        let doc = recover(&bench, &args, &[]);
        eprintln!("{label}: {doc}");
        assert_eq!(doc["backup_id"], id.as_str());
        // PITR: WALs in barman_wal, restored by `cp`, recovery.signal.
        assert!(data.join("recovery.signal").is_file(), "{label}");
        let staged = file_names_in(&data.join("barman_wal"));
        assert!(!staged.is_empty(), "{label}: nothing in barman_wal");
        assert_eq!(num(&doc, "wals"), staged.len() as u64, "{label}");
        let auto = fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        let restore = auto
            .lines()
            .rfind(|l| l.trim_start().starts_with("restore_command"))
            .unwrap_or_else(|| panic!("{label}: no restore_command in\n{auto}"));
        // Relative: PostgreSQL runs restore_command in the data directory.
        assert_eq!(
            restore, "restore_command = 'cp barman_wal/%f %p'",
            "{label}"
        );
        for word in &conf_words {
            assert!(
                auto.contains(word.as_str()),
                "{label}: `{word}` not in\n{auto}"
            );
        }
        if label == "xid" {
            assert!(!auto.contains("recovery_target_inclusive"), "{auto}");
        }

        let server = start(&bench, &dest, "");
        if promoted {
            wait_promoted(&server);
            server.psql("INSERT INTO marks (id) VALUES (100)").unwrap();
            assert_eq!(ids(&server, "marks"), format!("{expected},100"), "{label}");
        } else {
            wait_paused(&server);
            assert_eq!(ids(&server, "marks"), expected, "{label}");
            let err = server
                .psql("INSERT INTO marks (id) VALUES (100)")
                .unwrap_err()
                .to_string();
            assert!(err.contains("read-only"), "{label}: {err}");
        }
        // The rest of the data is the backup's (nothing else changed).
        assert_eq!(
            server.psql("SELECT count(*) FROM in_ts").unwrap(),
            "20000",
            "{label}"
        );
        eprintln!("{label}: {:?}", started.elapsed());
    }

    // --get-wal: restore_command fetches from barman, nothing staged.
    let dest = Dest::new("get-wal");
    let doc = recover(
        &bench,
        &[
            &id,
            &dest.data_arg(),
            "--tablespace",
            &dest.ts_arg(),
            "--get-wal",
            "--target-name",
            "before_5",
        ],
        &[],
    );
    assert_eq!(num(&doc, "wals"), 0, "{doc}");
    assert!(file_names_in(&dest.data().join("barman_wal")).is_empty());
    let auto = fs::read_to_string(dest.data().join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.lines()
            .any(|l| l.trim_start().starts_with("restore_command") && l.contains("get-wal")),
        "{auto}"
    );
}

/// `clock_timestamp()` in UTC as `--target-time` takes it.
const NOW_UTC: &str = "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', \
                       'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'";

/// Timelines: backup B1 on timeline 1; rows 1–4 on timeline 1 after it; a
/// recovery of B1 promoted at `immediate` (timeline 2) archives into the
/// same server, gets rows 101–103 and is backed up (B2). Recovering B1 with
/// `--target-tli latest` follows timeline 2; with a time on timeline 1 and
/// `--target-tli current` it stays on timeline 1; `latest` is B2.
#[test]
fn recovery_follows_the_requested_timeline() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let pg = &bench.pg;
    pg.psql("CREATE TABLE tl (id int PRIMARY KEY)").unwrap();
    let b1 = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    for i in 1..=3 {
        pg.psql(&format!("INSERT INTO tl VALUES ({i})")).unwrap();
    }
    let t_old = pg.psql(NOW_UTC).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    pg.psql("INSERT INTO tl VALUES (4)").unwrap();
    bench.flush_wal();

    // A: B1 promoted at the end of the backup, archiving to barman.
    let da = Dest::new("tl-a");
    let doc = recover(
        &bench,
        &[
            &b1,
            &da.data_arg(),
            "--tablespace",
            &da.ts_arg(),
            "--target-immediate",
            "--target-action",
            "promote",
        ],
        &[],
    );
    assert_eq!(doc["backup_id"], b1.as_str());
    let a = start(&bench, &da, "archive_mode = on");
    wait_promoted(&a);
    assert_eq!(ids(&a, "tl"), "");
    assert_eq!(
        a.psql("SELECT timeline_id FROM pg_control_checkpoint()")
            .unwrap(),
        "2"
    );
    a.psql(&format!(
        "ALTER SYSTEM SET archive_command = '{}'",
        bench.setup.archive_command().replace('\'', "''")
    ))
    .unwrap();
    a.psql("SELECT pg_reload_conf()").unwrap();
    for i in 101..=103 {
        a.psql(&format!("INSERT INTO tl VALUES ({i})")).unwrap();
    }
    a.wait_for(
        "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
        "0",
        Duration::from_secs(60),
    )
    .unwrap();
    // The barman server now points at A.
    let conf_path = bench.setup.home.conf().to_path_buf();
    let conf = fs::read_to_string(&conf_path).unwrap();
    let to_a = conf.replace(
        &format!("conninfo = {}", pg.conninfo()),
        &format!(
            "conninfo = host=127.0.0.1 port={} user=postgres dbname=postgres",
            a.port()
        ),
    );
    assert_ne!(to_a, conf);
    fs::write(&conf_path, to_a).unwrap();
    bench.flush_wal();
    let b2 = backup_id(&bench.backup(&["--wait", "--wait-timeout", "90"]));
    assert_eq!(bench.info(&b2)["timeline"], "2");
    a.psql("UPDATE in_ts SET n = -n WHERE id <= 10").unwrap();
    let a_expected = data_digest(|sql| a.psql(sql).unwrap());
    bench.flush_wal();
    assert!(
        archived_path(&bench, "00000002.history").is_file(),
        "timeline 2 history not archived: {:?}",
        xlogdb_names(&bench)
    );

    // (a) B1 to the latest timeline: A's rows, not timeline 1's.
    {
        let dest = Dest::new("tl-latest");
        recover(
            &bench,
            &[
                &b1,
                &dest.data_arg(),
                "--tablespace",
                &dest.ts_arg(),
                "--target-tli",
                "latest",
            ],
            &[],
        );
        let staged = file_names_in(&dest.data().join("barman_wal"));
        assert!(
            staged.iter().any(|n| n.starts_with("00000002")),
            "no timeline 2 WAL staged: {staged:?}"
        );
        let server = start(&bench, &dest, "");
        wait_promoted(&server);
        assert_eq!(ids(&server, "tl"), "101,102,103");
        assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), a_expected);
    }
    // (b) B1 to a time on timeline 1 before the promotion: the old rows.
    {
        let dest = Dest::new("tl-current");
        recover(
            &bench,
            &[
                &b1,
                &dest.data_arg(),
                "--tablespace",
                &dest.ts_arg(),
                "--target-time",
                &t_old,
                "--target-tli",
                "current",
            ],
            &[],
        );
        let server = start(&bench, &dest, "");
        wait_paused(&server);
        assert_eq!(ids(&server, "tl"), "1,2,3");
    }
    // (c) latest = B2, the backup of timeline 2, with all its WAL.
    {
        let dest = Dest::new("tl-b2");
        let doc = recover(
            &bench,
            &["latest", &dest.data_arg(), "--tablespace", &dest.ts_arg()],
            &[],
        );
        assert_eq!(doc["backup_id"], b2.as_str());
        let server = start(&bench, &dest, "");
        wait_promoted(&server);
        assert_eq!(ids(&server, "tl"), "101,102,103");
        assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), a_expected);
    }
    fs::write(&conf_path, conf).unwrap();
}

/// `--tablespace ts1:DIR` relocates ts1 (link and tablespace_map); without
/// it ts1 goes back to its original location (the primary stopped and its
/// directory moved away first).
#[test]
fn tablespaces_are_relocated_or_restored_in_place() {
    let mut bench = Bench::new(LOCAL_RSYNC, 1);
    let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    bench
        .pg
        .psql("INSERT INTO in_ts SELECT g, g FROM generate_series(20001, 25000) g")
        .unwrap();
    let expected = data_digest(|sql| bench.pg.psql(sql).unwrap());
    let original = bench
        .pg
        .psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'")
        .unwrap();
    bench.flush_wal();

    // Relocated into an existing empty directory owned by postgres.
    {
        let dest = Dest::new("ts-moved");
        fs::create_dir(dest.ts()).unwrap();
        chown_to(&dest.ts(), SERVER_OS_USER).unwrap();
        chmod(&dest.ts(), 0o700).unwrap();
        recover(
            &bench,
            &[&id, &dest.data_arg(), "--tablespace", &dest.ts_arg()],
            &[],
        );
        let (oid, target) = tablespace_link(&dest.data());
        assert_eq!(target, dest.ts());
        let version_dir = format!("PG_15_{}", catalog_version(&bench));
        assert_eq!(read_names(&dest.ts()).unwrap(), [version_dir]);
        if let Ok(map) = fs::read_to_string(dest.data().join("tablespace_map")) {
            assert_eq!(map.trim(), format!("{oid} {}", dest.ts().display()));
        }
        let server = start(&bench, &dest, "");
        wait_promoted(&server);
        assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), expected);
        assert_eq!(
            server
                .psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'")
                .unwrap(),
            dest.ts().display().to_string()
        );
        assert_eq!(
            server
                .psql("SELECT count(*) FROM pg_tables WHERE tablespace = 'ts1'")
                .unwrap(),
            "1"
        );
    }

    // In place: the primary's tablespace directory is free again.
    bench.pg.stop().unwrap();
    let moved = PathBuf::from(format!("{original}.primary"));
    fs::rename(&original, &moved).unwrap();
    let dest = Dest::new("ts-in-place");
    recover(&bench, &[&id, &dest.data_arg()], &[]);
    let (_, target) = tablespace_link(&dest.data());
    assert_eq!(target, PathBuf::from(&original));
    assert!(Path::new(&original).is_dir());
    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), expected);
    assert_eq!(
        server
            .psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'")
            .unwrap(),
        original
    );
}

/// The `PG_15_<catalog version>` directory name PostgreSQL uses in tablespaces.
fn catalog_version(bench: &Bench) -> String {
    bench
        .pg
        .psql("SELECT catalog_version_no FROM pg_control_system()")
        .unwrap_or_default()
}

/// A bench for remote recoveries: a loopback sshd as `postgres` with the
/// staged client side, a backup taken before some pgbench load (WALs
/// flushed), the data a recovery must give, the `--remote-ssh-command` and
/// the environment running the staged `barman agent`. Stops the ssh
/// multiplexing master on drop (also on a failed assertion).
pub(crate) struct RemoteBench {
    pub(crate) sshd: Sshd,
    pub(crate) client: ClientSide,
    pub(crate) bench: Bench,
    /// The backup.
    pub(crate) id: String,
    /// `data_digest` of the primary after the load.
    pub(crate) expected: Vec<String>,
    /// The `--remote-ssh-command`.
    pub(crate) ssh: String,
    /// `BARMAN_AGENT_COMMAND`.
    pub(crate) env: [(String, String); 1],
}

impl RemoteBench {
    pub(crate) fn new() -> Self {
        let sshd = Sshd::builder()
            .user(SERVER_OS_USER)
            .start()
            .expect("start sshd");
        let client = ClientSide::new(&sshd);
        let bench = Bench::new(LOCAL_RSYNC, 1);
        let pg = &bench.pg;
        let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
        pg.pgbench_run(2, 2).unwrap();
        let expected = data_digest(|sql| pg.psql(sql).unwrap());
        bench.flush_wal();
        let ssh = format!(
            "{} -p {} {SERVER_OS_USER}@127.0.0.1",
            client.bin("ssh").display(),
            sshd.port()
        );
        let env = [(
            "BARMAN_AGENT_COMMAND".to_owned(),
            format!("{} agent", client.bin("barman").display()),
        )];
        Self {
            sshd,
            client,
            bench,
            id,
            expected,
            ssh,
            env,
        }
    }

    /// A plain local recovery of the backup into a new `Dest`.
    pub(crate) fn local_recovery(&self, label: &str) -> Dest {
        let dest = Dest::new(label);
        recover(
            &self.bench,
            &[&self.id, &dest.data_arg(), "--tablespace", &dest.ts_arg()],
            &[],
        );
        dest
    }
}

impl Drop for RemoteBench {
    fn drop(&mut self) {
        self.client.stop_master(self.sshd.port());
    }
}

/// Remote recovery through `barman agent` over a loopback sshd as
/// `postgres`, one and two jobs: the same files as a local recovery, and
/// the started server has the primary's data.
#[test]
fn remote_recovery_over_ssh_matches_the_local_one() {
    let remote = RemoteBench::new();
    let RemoteBench {
        bench,
        id,
        expected,
        ssh,
        env,
        ..
    } = &remote;
    let local = remote.local_recovery("local");
    let reference = comparable(&local);
    assert!(reference.0.len() > 500, "{} entries", reference.0.len());

    for (label, jobs) in [("remote-j1", "1"), ("remote-j2", "2")] {
        let dest = Dest::new(label);
        let mut args = vec![
            id.as_str(),
            "--remote-ssh-command",
            ssh.as_str(),
            "-j",
            jobs,
        ];
        let (d, ts) = (dest.data_arg(), dest.ts_arg());
        args.extend([d.as_str(), "--tablespace", ts.as_str()]);
        if jobs == "2" {
            args.extend(["--network-compression", "--bwlimit", "200000"]);
        }
        let doc = recover(bench, &args, env);
        eprintln!("{label}: {doc}");
        let (files, _) = backup_files(bench, id);
        assert_eq!(num(&doc, "files"), files);
        assert_eq!(num(&doc, "files_written"), files);
        let got = comparable(&dest);
        let diff = tree_diff(&reference.0, &got.0);
        assert!(
            diff.is_empty(),
            "{label}: data differs from the local recovery: {diff:#?}"
        );
        let diff = tree_diff(&reference.1, &got.1);
        assert!(
            diff.is_empty(),
            "{label}: ts1 differs from the local recovery: {diff:#?}"
        );
        let (_, target) = tablespace_link(&dest.data());
        assert_eq!(target, dest.ts());
        let conf = config_text(&dest.data());
        assert!(
            conf.lines()
                .any(|l| l.starts_with("#BARMAN#") && l.contains("archive_command")),
            "{conf}"
        );
        if jobs == "2" {
            let server = start(bench, &dest, "");
            wait_promoted(&server);
            assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), *expected);
        }
    }
}

/// `--delta-restore` into a recovery that has since been started and
/// changed: only the differing files are written, extra ones removed, and
/// the result is the fresh recovery again, file for file and in its data.
#[test]
fn delta_restore_into_a_stale_copy_gives_the_fresh_recovery() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let pg = &bench.pg;
    let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    pg.pgbench_run(2, 2).unwrap();
    let expected = data_digest(|sql| pg.psql(sql).unwrap());
    bench.flush_wal();

    let dest = Dest::new("delta");
    let (d, ts) = (dest.data_arg(), dest.ts_arg());
    let args = [id.as_str(), d.as_str(), "--tablespace", ts.as_str()];
    let first = recover(&bench, &args, &[]);
    let fresh = (tree(&dest.data()), tree(&dest.ts()));
    {
        let mut server = start(&bench, &dest, "");
        wait_promoted(&server);
        assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), expected);
        server
            .psql("CREATE TABLE scratch AS SELECT g FROM generate_series(1, 50000) g")
            .unwrap();
        server
            .psql("UPDATE pgbench_branches SET bbalance = bbalance + 1")
            .unwrap();
        server
            .psql("CREATE TABLE scratch_ts TABLESPACE ts1 AS SELECT 1 AS one")
            .unwrap();
        server.psql("CHECKPOINT").unwrap();
        server.stop();
    }
    let stale = (tree(&dest.data()), tree(&dest.ts()));
    assert!(!tree_diff(&fresh.0, &stale.0).is_empty());

    // Without --delta-restore the stale directory is refused.
    let refused = recover_raw(&bench, &args, &[]);
    assert!(!refused.status.success(), "{}", refused.both());
    assert!(refused.stderr.contains("not empty"), "{}", refused.both());
    assert_eq!(
        tree(&dest.data()),
        stale.0,
        "a refused recovery changed DEST"
    );

    let mut delta_args = args.to_vec();
    delta_args.push("--delta-restore");
    let doc = recover(&bench, &delta_args, &[]);
    eprintln!("delta restore: {doc}\nfirst: {first}");
    let files = num(&doc, "files");
    let written = num(&doc, "files_written");
    let reused = num(&doc, "files_reused");
    assert_eq!(files, num(&first, "files"));
    assert!(written > 0, "{doc}");
    assert!(reused > 0, "{doc}");
    assert!(written < files, "{doc}");
    assert_eq!(written + reused, files, "{doc}");
    assert!(num(&doc, "files_removed") > 0, "{doc}");
    assert!(
        num(&doc, "bytes_written") < num(&first, "bytes_written"),
        "{doc}"
    );
    let now = (tree(&dest.data()), tree(&dest.ts()));
    let diff = tree_diff(&fresh.0, &now.0);
    assert!(
        diff.is_empty(),
        "delta restore differs from the fresh recovery: {diff:#?}"
    );
    let diff = tree_diff(&fresh.1, &now.1);
    assert!(
        diff.is_empty(),
        "ts1 differs from the fresh recovery: {diff:#?}"
    );

    let server = start(&bench, &dest, "");
    wait_promoted(&server);
    assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), expected);
    assert_eq!(
        server
            .psql("SELECT to_regclass('scratch') IS NULL AND to_regclass('scratch_ts') IS NULL")
            .unwrap(),
        "t"
    );
}

/// Backup selection (`first`, `oldest`, `last`, `latest`, `last-full`, a
/// backup name, `auto` with a time or an LSN target), `--standby-mode`, and
/// a naive `--target-time` (local time, with a warning).
#[test]
fn backup_selection_standby_mode_and_naive_time() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let pg = &bench.pg;
    let b1 = backup_id(&bench.backup(&["--name", "nightly", "--wait", "--wait-timeout", "60"]));
    std::thread::sleep(Duration::from_millis(300));
    let between = pg.psql(NOW_UTC).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pg.psql("UPDATE in_ts SET n = n + 1 WHERE id <= 10")
        .unwrap();
    let b2 = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    assert_ne!(b1, b2);
    pg.psql("UPDATE in_ts SET n = n + 1 WHERE id <= 10")
        .unwrap();
    let lsn_after_b2 = pg.psql("SELECT pg_current_wal_insert_lsn()").unwrap();
    bench.flush_wal();

    let cases: [(&str, &[&str], &str); 8] = [
        ("first", &[], &b1),
        ("oldest", &[], &b1),
        ("last", &[], &b2),
        ("latest", &[], &b2),
        ("last-full", &[], &b2),
        ("nightly", &[], &b1),
        ("auto", &["--target-time", &between], &b1),
        ("auto", &["--target-lsn", &lsn_after_b2], &b2),
    ];
    for (selector, options, expected) in cases {
        let dest = Dest::new("select");
        let (d, ts) = (dest.data_arg(), dest.ts_arg());
        let mut args = vec![selector, d.as_str(), "--tablespace", ts.as_str()];
        args.extend(options.iter().copied());
        let doc = recover(&bench, &args, &[]);
        assert_eq!(doc["backup_id"], expected, "{selector} {options:?}: {doc}");
        assert_eq!(
            fs::read(dest.data().join("PG_VERSION")).unwrap(),
            b"15\n",
            "{selector}"
        );
    }

    // --standby-mode: standby.signal instead of recovery.signal.
    let dest = Dest::new("standby");
    recover(
        &bench,
        &[
            "latest",
            &dest.data_arg(),
            "--tablespace",
            &dest.ts_arg(),
            "--standby-mode",
        ],
        &[],
    );
    assert!(dest.data().join("standby.signal").is_file());
    assert!(!dest.data().join("recovery.signal").exists());
    let auto = fs::read_to_string(dest.data().join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.lines()
            .any(|l| l.trim_start().starts_with("restore_command")),
        "{auto}"
    );

    // A naive --target-time is local time: accepted with a warning.
    let dest = Dest::new("naive");
    let doc = recover(
        &bench,
        &[
            "latest",
            &dest.data_arg(),
            "--tablespace",
            &dest.ts_arg(),
            "--target-time",
            "2100-01-01 00:00:00",
        ],
        &[],
    );
    let time = doc["recovery_target"]["time"].as_str().unwrap_or_default();
    assert!(time.starts_with("2100-01-01 00:00:00"), "{doc}");
    assert!(
        time.len() > "2100-01-01 00:00:00".len(),
        "not tz-aware: {doc}"
    );
    let warnings = doc["warnings"].to_string().to_lowercase();
    assert!(
        warnings.contains("zone") || warnings.contains("local"),
        "no warning about the naive time: {doc}"
    );
}
