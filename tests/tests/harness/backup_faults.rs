//! Faults during `barman backup` beyond those of `backup.rs` (SIGINT, an
//! unreachable PostgreSQL, SIGKILL): the `barman agent` killed mid-copy, ssh
//! unreachable, PostgreSQL stopped mid-backup, tables dropped during the
//! copy, and a full disk under `barman_home`. Each one must leave the
//! previous DONE backup untouched and let the next backup end DONE.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::{SERVER_OS_USER, Sshd, chown_to, free_port, run};
use serde_json::Value;

use crate::archiving::ClientSide;
use crate::backup::{Bench, SNAPSHOT_SQL, files, newest, wait_for_status};

/// A DONE backup taken before the fault, and its files (path → inode, size;
/// the link count grows when later backups hard-link to it).
pub(crate) struct Good {
    pub(crate) id: String,
    files: BTreeMap<String, (u64, u64)>,
}

fn inodes_and_sizes(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    files(dir)
        .into_iter()
        .map(|(path, (ino, _nlink, size))| (path, (ino, size)))
        .collect()
}

impl Good {
    pub(crate) fn take(bench: &Bench) -> Self {
        let doc = bench.backup(&["--wait", "--wait-timeout", "60"]);
        let id = doc["backup_id"].as_str().unwrap().to_owned();
        assert_eq!(bench.info(&id)["status"], "DONE");
        let files = inodes_and_sizes(&bench.backup_dir(&id));
        assert!(files.len() > 500, "only {} files", files.len());
        Self { id, files }
    }

    /// Still DONE, the same files with the same inodes and sizes.
    fn assert_untouched(&self, bench: &Bench) {
        let info = bench.info(&self.id);
        assert_eq!(info["status"], "DONE", "good backup changed: {info:?}");
        let now = inodes_and_sizes(&bench.backup_dir(&self.id));
        let changed: Vec<&String> = self
            .files
            .keys()
            .chain(now.keys())
            .filter(|k| self.files.get(*k) != now.get(*k))
            .take(20)
            .collect();
        assert!(
            changed.is_empty(),
            "the files of the good backup {} changed: {changed:?}",
            self.id
        );
    }
}

/// The next backup after a fault: DONE, and the good one untouched.
pub(crate) fn next_backup_is_done(bench: &Bench, good: &Good) -> String {
    let doc = bench.backup(&["--wait", "--wait-timeout", "120"]);
    let id = doc["backup_id"].as_str().unwrap().to_owned();
    assert_eq!(bench.info(&id)["status"], "DONE");
    assert!(
        bench
            .backup_dir(&id)
            .join("data/global/pg_control")
            .is_file()
    );
    good.assert_untouched(bench);
    id
}

/// A `barman -f json backup ARGS pg` running in the background, its output
/// going to files (an ssh ControlMaster it forks may keep pipes open).
struct Background {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

impl Background {
    fn spawn(bench: &Bench, args: &[&str]) -> Self {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let mut all = vec!["-f", "json", "backup"];
        all.extend_from_slice(args);
        all.push("pg");
        let child = bench
            .setup
            .command(&all)
            .envs(bench.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(err.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child, out, err }
    }

    /// Waits for the exit (killing barman after `timeout`): status, the
    /// JSON document printed, stderr.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, Value, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "barman backup still running after {timeout:?}; stderr: {}",
                    fs::read_to_string(self.err.path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = fs::read_to_string(self.out.path()).unwrap();
        let stderr = fs::read_to_string(self.err.path()).unwrap();
        let doc = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("backup JSON: {e}: {stdout}\nstderr: {stderr}"));
        (status, doc, stderr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The newest backup is FAILED with an `error=failure ...`; no data or
/// manifest left in its directory. Returns (id, error).
pub(crate) fn assert_failed_cleanly(bench: &Bench, good: &Good) -> (String, String) {
    let id = newest(bench);
    assert_ne!(id, good.id, "no new backup.info was written");
    let info = bench.info(&id);
    assert_eq!(info["status"], "FAILED", "{info:?}");
    let error = info["error"].clone();
    assert!(error.starts_with("failure "), "error = {error}");
    let dir = bench.backup_dir(&id);
    assert!(
        !dir.join("data").exists(),
        "partial data left in {}",
        dir.display()
    );
    assert!(
        !dir.join("manifest").exists(),
        "manifest left in {}",
        dir.display()
    );
    if let Ok(entries) = fs::read_dir(&dir) {
        let left: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
    }
    (id, error)
}

/// Pids of the processes whose argv is `EXE agent ...`.
fn agent_pids(exe: &Path) -> Vec<u32> {
    let exe = exe.to_string_lossy();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) == Some(exe.as_ref())
            && args.get(1).map(String::as_str) == Some("agent")
        {
            pids.push(pid);
        }
    }
    pids
}

/// Stops the ssh multiplexing master on drop (also on a failed assertion).
pub(crate) struct Master<'a>(pub(crate) &'a ClientSide, pub(crate) u16);

impl Drop for Master<'_> {
    fn drop(&mut self) {
        self.0.stop_master(self.1);
    }
}

/// The `barman agent` sessions are SIGKILLed mid-copy: the backup ends
/// FAILED in the copy phase with an error naming the agent.
#[test]
fn agent_killed_mid_copy_fails_the_backup_and_the_next_one_works() {
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);
    let _master = Master(&client, sshd.port());
    let bench = Bench::rsync(&sshd, &client);
    let good = Good::take(&bench);
    let agent = client.bin("barman");
    assert!(agent_pids(&agent).is_empty(), "agents left after a backup");

    let started = Instant::now();
    let backup = Background::spawn(&bench, &["--bwlimit", "300", "--reuse-backup", "off"]);
    wait_for_status(&bench, "STARTED", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(20);
    let pids = loop {
        let pids = agent_pids(&agent);
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "no `barman agent` process seen");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "killing agents {pids:?} {:?} after the start",
        started.elapsed()
    );
    let killed = Instant::now();
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let (status, doc, stderr) = backup.finish(Duration::from_secs(60));
    eprintln!(
        "agent killed: exit {status} {:?} after the kill; stderr: {stderr}; json: {doc}",
        killed.elapsed()
    );
    assert!(!status.success());
    let (id, error) = assert_failed_cleanly(&bench, &good);
    eprintln!("backup {id}: error={error}");
    assert!(error.starts_with("failure copying files ("), "{error}");
    assert!(error.to_lowercase().contains("agent"), "{error}");
    assert_eq!(doc["pg"]["status"], "FAILED", "{doc}");
    assert_eq!(doc["pg"]["error"].as_str(), Some(error.as_str()));
    assert!(
        agent_pids(&agent).is_empty(),
        "agents still running: {:?}",
        agent_pids(&agent)
    );

    next_backup_is_done(&bench, &good);
}

/// `ssh_command` pointing at a closed port: refused or FAILED with an error
/// naming ssh or the agent; nothing DONE.
#[test]
fn ssh_unreachable_fails_the_backup_and_the_next_one_works() {
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);
    let _master = Master(&client, sshd.port());
    let bench = Bench::rsync(&sshd, &client);
    let good = Good::take(&bench);

    let conf_path = bench.setup.home.conf().to_path_buf();
    let conf = fs::read_to_string(&conf_path).unwrap();
    let closed = free_port().unwrap();
    let broken = conf.replace(
        &format!("-p {} {SERVER_OS_USER}@", sshd.port()),
        &format!("-p {closed} {SERVER_OS_USER}@"),
    );
    assert_ne!(broken, conf);
    fs::write(&conf_path, broken).unwrap();
    let started = Instant::now();
    let (status, doc, stderr) = Background::spawn(&bench, &["--wait", "--wait-timeout", "30"])
        .finish(Duration::from_secs(60));
    eprintln!(
        "ssh unreachable: exit {status} after {:?}; stderr: {stderr}; json: {doc}",
        started.elapsed()
    );
    assert!(!status.success());
    let error = doc["pg"]["error"].as_str().unwrap_or_default().to_owned();
    let lower = error.to_lowercase();
    assert!(
        lower.contains("ssh") || lower.contains("agent"),
        "error names neither ssh nor the agent: {error}"
    );
    match doc["pg"]["status"].as_str() {
        Some("FAILED") => {
            let (id, info_error) = assert_failed_cleanly(&bench, &good);
            eprintln!("backup {id}: error={info_error}");
            assert_eq!(info_error, error);
        }
        Some("REFUSED") => assert_eq!(newest(&bench), good.id, "a backup.info was written"),
        other => panic!("status {other:?}: {doc}"),
    }
    // Nothing DONE but the good backup.
    for e in fs::read_dir(bench.setup.dir("meta")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix("-backup.info") else {
            continue;
        };
        if id != good.id {
            assert_ne!(bench.info(id)["status"], "DONE", "{id} is DONE");
        }
    }

    fs::write(&conf_path, &conf).unwrap();
    next_backup_is_done(&bench, &good);
}

/// PostgreSQL stopped (fast) while the files are copied: FAILED; after a
/// restart the next backup is DONE.
#[test]
fn postgres_stopped_mid_backup_fails_it_and_the_next_one_works() {
    let mut bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 1);
    let good = Good::take(&bench);

    let started = Instant::now();
    let backup = Background::spawn(&bench, &["--bwlimit", "4000", "--reuse-backup", "off"]);
    wait_for_status(&bench, "STARTED", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    bench.pg.stop().unwrap();
    eprintln!("PostgreSQL stopped {:?} after the start", started.elapsed());
    let (status, doc, stderr) = backup.finish(Duration::from_secs(120));
    eprintln!(
        "PostgreSQL down: exit {status} after {:?}; stderr: {stderr}; json: {doc}",
        started.elapsed()
    );
    assert!(!status.success());
    let (id, error) = assert_failed_cleanly(&bench, &good);
    eprintln!("backup {id}: error={error}");
    assert!(!error.contains("interrupted"), "{error}");
    // The local copy does not need the server: the loss shows when the
    // backup is stopped on the (terminated) session.
    assert!(error.contains("PostgreSQL"), "{error}");
    assert_eq!(doc["pg"]["status"], "FAILED", "{doc}");

    bench.pg.restart().unwrap();
    next_backup_is_done(&bench, &good);
}

/// Relative path of a relation file inside a backup directory: `data/...`
/// or `<tablespace oid>/...`.
fn in_backup(relation_path: &str) -> String {
    relation_path
        .strip_prefix("pg_tblspc/")
        .map_or_else(|| format!("data/{relation_path}"), str::to_owned)
}

/// Tables dropped (and their files unlinked by a checkpoint) between the
/// listing and the copy: the backup is DONE, the vanished files are listed,
/// and the restored backup has the other data but not the dropped tables.
#[test]
fn tables_dropped_during_the_backup_leave_a_done_backup_that_restores() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 1);
    let pg = &bench.pg;
    let good = Good::take(&bench);
    let tables = ["t1", "t2", "t3", "t4", "t5"];
    for (i, t) in tables.iter().enumerate() {
        // ~2 MB each (copied after the bigger pgbench files); t5 in ts1.
        let ts = if i == 4 { " TABLESPACE ts1" } else { "" };
        pg.psql(&format!(
            "CREATE TABLE {t}{ts} AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 15000) g"
        ))
        .unwrap();
    }
    pg.psql("CHECKPOINT").unwrap();
    let dropped: Vec<String> = tables
        .iter()
        .map(|t| {
            pg.psql(&format!("SELECT pg_relation_filepath('{t}')"))
                .unwrap()
        })
        .collect();
    for path in &dropped {
        assert!(pg.data_dir().join(path).is_file(), "{path}");
    }
    // Every file of the dropped tables: theirs, their TOAST tables' and
    // the TOAST indexes'.
    let mut relation_files = Vec::new();
    for t in tables {
        let list = pg
            .psql(&format!(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c, pg_class t \
                 WHERE t.oid = '{t}'::regclass AND (c.oid = t.oid OR c.oid = t.reltoastrelid \
                 OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = t.reltoastrelid))"
            ))
            .unwrap();
        relation_files.extend(list.lines().map(|l| in_backup(l.trim())));
    }
    assert!(relation_files.len() >= 10, "{relation_files:?}");

    let started = Instant::now();
    let backup = Background::spawn(
        &bench,
        &[
            "--bwlimit",
            "4000",
            "--reuse-backup",
            "off",
            "--wait",
            "--wait-timeout",
            "120",
        ],
    );
    wait_for_status(&bench, "STARTED", Duration::from_secs(30));
    // The listing is done well within this.
    std::thread::sleep(Duration::from_millis(500));
    pg.psql(&format!("DROP TABLE {}", tables.join(", ")))
        .unwrap();
    // The main forks are truncated at commit and unlinked at the checkpoint.
    pg.psql("CHECKPOINT").unwrap();
    eprintln!("tables dropped {:?} after the start", started.elapsed());
    for path in &dropped {
        assert!(!pg.data_dir().join(path).exists(), "{path} still there");
    }
    let (status, doc, stderr) = backup.finish(Duration::from_secs(150));
    eprintln!(
        "tables dropped: exit {status} after {:?}; stderr: {stderr}",
        started.elapsed()
    );
    assert!(status.success(), "{doc}\n{stderr}");
    let doc = &doc["pg"];
    let id = doc["backup_id"].as_str().unwrap().to_owned();
    assert_eq!(doc["status"], "DONE", "{doc}");
    assert_eq!(bench.info(&id)["status"], "DONE");
    let vanished: Vec<String> = doc["copy"]["vanished"]
        .as_array()
        .unwrap_or_else(|| panic!("no copy.vanished: {doc}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = dropped.iter().map(|p| in_backup(p)).collect();
    eprintln!("vanished: {vanished:?}; dropped files: {expected:?}");
    let manifest = fs::read_to_string(bench.backup_dir(&id).join("manifest")).unwrap();
    for v in &vanished {
        assert!(
            !bench.backup_dir(&id).join(v).exists(),
            "{v} reported vanished but is in the backup"
        );
        assert!(
            !manifest.contains(&format!("\"path\":\"{v}\"")),
            "{v} reported vanished but is in the manifest"
        );
    }
    // Nothing else vanished (forks `_fsm`/`_vm` and segments `.N` included).
    for v in &vanished {
        assert!(
            relation_files.iter().any(|r| v == r
                || v.strip_prefix(r.as_str())
                    .is_some_and(|rest| rest.starts_with('_') || rest.starts_with('.'))),
            "{v} vanished but belongs to no dropped table ({relation_files:?})"
        );
    }
    let vanished_dropped = expected.iter().filter(|p| vanished.contains(p)).count();
    eprintln!(
        "{vanished_dropped} of {} dropped tables' files vanished during the copy",
        expected.len()
    );
    // Dropped files not reported vanished were copied before the drop.
    for p in expected.iter().filter(|p| !vanished.contains(p)) {
        assert!(
            bench.backup_dir(&id).join(p).is_file(),
            "{p} neither vanished nor copied"
        );
    }

    pg.psql("UPDATE in_ts SET n = n + 1 WHERE id <= 10")
        .unwrap();
    let snapshot = pg.psql(SNAPSHOT_SQL).unwrap();
    bench.flush_wal();
    let (_dest, restored) = bench.restore_and_start(&id);
    assert_eq!(restored.psql(SNAPSHOT_SQL).unwrap(), snapshot);
    for t in tables {
        assert_eq!(
            restored
                .psql(&format!("SELECT to_regclass('{t}') IS NULL"))
                .unwrap(),
            "t",
            "{t} exists in the restored backup"
        );
    }
    assert_eq!(
        restored
            .psql("SELECT count(*) FROM pgbench_accounts")
            .unwrap(),
        "100000"
    );
    good.assert_untouched(&bench);
    next_backup_is_done(&bench, &good);
}

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let (uid, gid) = barman_testkit::user_ids(SERVER_OS_USER).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},uid={uid},gid={gid},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs (needs root)");
        Self(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0))
        .unwrap();
    }

    /// Bytes in use.
    fn used(&self) -> u64 {
        let out = run(Command::new("stat")
            .args(["-f", "-c", "%b %f %S"])
            .arg(&self.0))
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        (v[0] - v[1]) * v[2]
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Archived WAL files (under `wals/<hash>/`) → size.
fn archived_wals(wals: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(wals).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            for f in fs::read_dir(e.path()).unwrap().flatten() {
                out.insert(
                    f.file_name().to_string_lossy().into_owned(),
                    f.metadata().unwrap().len(),
                );
            }
        }
    }
    out
}

/// Waits until PostgreSQL has nothing left to archive.
fn wait_no_ready(bench: &Bench) {
    let start = Instant::now();
    loop {
        let ready = fs::read_dir(bench.pg.wal_dir().join("archive_status"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
            .count();
        if ready == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{ready} WAL files still waiting for archiving"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `barman_home` on a tmpfs too small for one more backup: FAILED with
/// "No space left on device", nothing partial left, archived WALs intact;
/// after growing the tmpfs the next backup is DONE.
#[test]
fn full_disk_in_the_catalog_fails_the_backup_and_the_next_one_works_after_growing_it() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 1);
    // Move barman_home onto a tmpfs while nothing is being archived.
    bench.flush_wal();
    wait_no_ready(&bench);
    let home = bench.setup.home.home();
    let moved = bench.setup.home.dir().join("home.orig");
    fs::rename(&home, &moved).unwrap();
    fs::create_dir(&home).unwrap();
    let tmpfs = Tmpfs::mount(&home, "512m");
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", moved.display()))
        .arg(&home))
    .unwrap();
    fs::remove_dir_all(&moved).unwrap();
    chown_to(&home, SERVER_OS_USER).unwrap();

    let good = Good::take(&bench);
    bench.flush_wal();
    wait_no_ready(&bench);
    let wals_before = archived_wals(&bench.setup.dir("wals"));
    assert!(!wals_before.is_empty());
    // Room for a few MiB, not for another full copy.
    let used = tmpfs.used();
    let small = used / (1024 * 1024) + 12;
    tmpfs.resize(&format!("{small}m"));
    eprintln!(
        "tmpfs: {} MiB used, resized to {small} MiB; the good backup has {} MiB",
        used / (1024 * 1024),
        good.files.values().map(|f| f.1).sum::<u64>() / (1024 * 1024)
    );

    let started = Instant::now();
    let (status, doc, stderr) =
        Background::spawn(&bench, &["--reuse-backup", "off"]).finish(Duration::from_secs(120));
    eprintln!(
        "disk full: exit {status} after {:?}; stderr: {stderr}; json: {doc}",
        started.elapsed()
    );
    assert!(!status.success());
    let (id, error) = assert_failed_cleanly(&bench, &good);
    eprintln!("backup {id}: error={error}");
    assert!(
        error.contains("No space left on device") || error.contains("ENOSPC"),
        "{error}"
    );
    assert_eq!(doc["pg"]["status"], "FAILED", "{doc}");
    // The archived WALs are all still there, whole.
    let wals_after = archived_wals(&bench.setup.dir("wals"));
    for (name, size) in &wals_before {
        assert_eq!(
            wals_after.get(name),
            Some(size),
            "archived WAL {name} lost or changed"
        );
    }
    good.assert_untouched(&bench);

    tmpfs.resize("512m");
    next_backup_is_done(&bench, &good);
    drop(tmpfs);
}
