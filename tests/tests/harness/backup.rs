//! Base backups end to end (`barman backup`, rsync and local-rsync methods):
//! a real PostgreSQL 15 with a user tablespace under pgbench load, backed up,
//! copied back by hand (recovery is issue 5), started with `restore_command`
//! from the archive, and its data compared with the primary's; hard-link
//! reuse checked by inode; page deltas over the agent measured in bytes;
//! faults leave FAILED backups and the next backup works.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use barman_testkit::catalog::backup_ids;
use barman_testkit::{DataDirServer, PgCluster, PgClusterBuilder, SERVER_OS_USER, Sshd, run};
use serde_json::Value;

use crate::archiving::{ClientSide, LocalSetup, ok};

/// The queries whose answers must survive backup + WAL replay exactly.
pub(crate) const SNAPSHOT_SQL: &str = "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || \
     (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || \
     (SELECT count(*) FROM pgbench_history) || ' ' || \
     (SELECT coalesce(sum(delta), 0) FROM pgbench_history) || ' ' || \
     (SELECT count(*) || ':' || sum(n) FROM in_ts)";

/// A PostgreSQL 15 archiving into `barman put-wal pg` (one host), with a
/// tablespace `ts1` outside PGDATA holding table `in_ts`.
pub(crate) struct Bench {
    pub(crate) setup: LocalSetup,
    pub(crate) pg: PgCluster,
    _ts: PathBuf,
    /// Environment of the backup commands.
    pub(crate) env: Vec<(String, String)>,
}

impl Bench {
    pub(crate) fn new(server_conf: &str, scale: u32) -> Self {
        Self::with_cluster(server_conf, scale, |b| b)
    }

    /// [`new`](Self::new) with the cluster's builder passed through
    /// `customize` first (TLS, pg_hba lines, more settings).
    pub(crate) fn with_cluster(
        server_conf: &str,
        scale: u32,
        customize: impl FnOnce(PgClusterBuilder) -> PgClusterBuilder,
    ) -> Self {
        let setup = LocalSetup::new();
        let pg = customize(PgCluster::builder())
            .archive_command(setup.archive_command())
            .conf("max_wal_size = '1GB'")
            .conf("checkpoint_timeout = '30min'")
            .data_checksums(true)
            .start()
            .expect("start PostgreSQL 15");
        let ts = pg.server_owned_dir("ts1").unwrap();
        pg.psql(&format!(
            "CREATE TABLESPACE ts1 LOCATION '{}'",
            ts.display()
        ))
        .unwrap();
        pg.psql("CREATE TABLE in_ts (id int PRIMARY KEY, n int) TABLESPACE ts1")
            .unwrap();
        pg.psql("INSERT INTO in_ts SELECT g, g FROM generate_series(1, 20000) g")
            .unwrap();
        pg.pgbench_init(scale).unwrap();
        let conf = fs::read_to_string(setup.home.conf()).unwrap()
            + &format!(
                "[pg]\ndescription = backup test\nconninfo = {}\narchiver = on\nimmediate_checkpoint = true\n{server_conf}\n",
                pg.conninfo()
            );
        fs::write(setup.home.conf(), conf).unwrap();
        Self {
            setup,
            pg,
            _ts: ts,
            env: Vec::new(),
        }
    }

    /// A bench over a cluster and a `[pg]` section the caller made (no
    /// tablespace, nothing configured here).
    pub(crate) fn from_cluster(setup: LocalSetup, pg: PgCluster) -> Self {
        Self {
            setup,
            pg,
            _ts: PathBuf::new(),
            env: Vec::new(),
        }
    }

    /// A bench backing up with `rsync` through a loopback sshd, two jobs;
    /// the agent the ssh session starts is the staged `barman agent`.
    pub(crate) fn rsync(sshd: &Sshd, client: &ClientSide) -> Self {
        let mut bench = Self::new(
            &format!(
                "backup_method = rsync\nreuse_backup = link\nssh_command = {} -p {} {SERVER_OS_USER}@127.0.0.1\nparallel_jobs = 2\nnetwork_compression = false\n",
                client.bin("ssh").display(),
                sshd.port()
            ),
            1,
        );
        bench.env.push((
            "BARMAN_AGENT_COMMAND".into(),
            format!("{} agent", client.bin("barman").display()),
        ));
        bench
    }

    /// `barman -f json backup pg ARGS`, expected to succeed; returns the JSON of `pg`.
    pub(crate) fn backup(&self, args: &[&str]) -> Value {
        let mut all = vec!["-f", "json", "backup"];
        all.extend_from_slice(args);
        all.push("pg");
        let out = self
            .setup
            .command(&all)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        let text = ok(&out, "barman backup");
        let doc: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!("backup JSON: {e}: {text}\nlog:\n{}", self.setup.home.log())
        });
        doc["pg"].clone()
    }

    pub(crate) fn info(&self, id: &str) -> BTreeMap<String, String> {
        let path = self.setup.dir("meta").join(format!("{id}-backup.info"));
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub(crate) fn backup_dir(&self, id: &str) -> PathBuf {
        self.setup.dir("base").join(id)
    }

    /// Archives everything written so far (switch + archive-wal).
    pub(crate) fn flush_wal(&self) {
        ok(
            &self
                .setup
                .run(&["switch-wal", "--force", "--archive", "pg"]),
            "switch-wal --archive",
        );
    }

    /// Copies backup `id` to a new directory the way a DBA would without
    /// `barman recover`: data/, each tablespace relocated (tablespace_map
    /// rewritten), `recovery.signal` with `restore_command = barman get-wal`;
    /// starts it and waits for the end of recovery.
    pub(crate) fn restore_and_start(&self, id: &str) -> (tempfile::TempDir, DataDirServer) {
        self.restore(id, None)
    }

    /// [`restore_and_start`](Self::restore_and_start), or with
    /// `standby_of = Some(conninfo)` a hot standby streaming from that
    /// primary (waits until it accepts read-only queries).
    pub(crate) fn restore(
        &self,
        id: &str,
        standby_of: Option<&str>,
    ) -> (tempfile::TempDir, DataDirServer) {
        let dest = tempfile::Builder::new()
            .prefix("barman-e2e-restore-")
            .tempdir_in("/tmp")
            .unwrap();
        barman_testkit::chmod(dest.path(), 0o755).unwrap();
        // The server writes its log and socket next to its data directory.
        barman_testkit::chown_to(dest.path(), SERVER_OS_USER).unwrap();
        let src = self.backup_dir(id);
        let data = dest.path().join("data");
        run(Command::new("cp")
            .arg("-a")
            .arg(src.join("data"))
            .arg(&data))
        .unwrap();
        let map_path = data.join("tablespace_map");
        if map_path.exists() {
            let mut map = String::new();
            for line in fs::read_to_string(&map_path).unwrap().lines() {
                let (oid, _old) = line.split_once(' ').unwrap();
                let new = dest.path().join(format!("ts_{oid}"));
                run(Command::new("cp").arg("-a").arg(src.join(oid)).arg(&new)).unwrap();
                run(Command::new("chown")
                    .args(["-R", &format!("{SERVER_OS_USER}:")])
                    .arg(&new))
                .unwrap();
                let _ = writeln!(map, "{oid} {}", new.display());
            }
            fs::write(&map_path, map).unwrap();
        }
        let mut conf = format!(
            "archive_mode = off\nrestore_command = '{} -c {} get-wal pg %f > %p'\n",
            self.setup.barman().display(),
            self.setup.home.conf().display()
        );
        let signal = match standby_of {
            Some(primary) => {
                let _ = writeln!(conf, "primary_conninfo = '{primary}'\nhot_standby = on");
                "standby.signal"
            }
            None => "recovery.signal",
        };
        fs::write(data.join(signal), "").unwrap();
        let server = DataDirServer::start(self.pg.pg_bin(), &data, &conf)
            .unwrap_or_else(|e| panic!("start the restored backup {id}: {e}"));
        let in_recovery = if standby_of.is_some() { "t" } else { "f" };
        server
            .wait_for(
                "SELECT pg_is_in_recovery()",
                in_recovery,
                Duration::from_secs(180),
            )
            .unwrap();
        (dest, server)
    }
}

fn content_digest(path: &Path) -> String {
    // Content equality judged by `cmp`, not by our own hashing.
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Every regular file under `root`, relative path → (inode, nlink, size).
pub(crate) fn files(root: &Path) -> BTreeMap<String, (u64, u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, (meta.ino(), meta.nlink(), meta.len()));
            }
        }
    }
    out
}

#[test]
fn backup_under_load_with_a_tablespace_restores_to_the_same_data() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 5);
    let pg = &bench.pg;

    // pgbench runs while the backup copies (the bandwidth limit stretches
    // the copy over the load).
    let started = Instant::now();
    let id = std::thread::scope(|s| {
        let load = s.spawn(|| pg.pgbench_run(2, 8).unwrap());
        std::thread::sleep(Duration::from_secs(1));
        let doc = bench.backup(&[
            "--wait",
            "--wait-timeout",
            "120",
            "--bwlimit",
            "20000",
            "-j",
            "2",
        ]);
        let report = load.join().unwrap();
        assert!(
            report.contains("number of transactions actually processed"),
            "{report}"
        );
        doc["backup_id"].as_str().unwrap().to_owned()
    });
    eprintln!("backup {id} under load in {:?}", started.elapsed());
    pg.psql("UPDATE in_ts SET n = n + 1 WHERE id <= 100")
        .unwrap();
    let expected = pg.psql(SNAPSHOT_SQL).unwrap();
    bench.flush_wal();

    let info = bench.info(&id);
    assert_eq!(info["status"], "DONE", "{info:?}");
    assert_eq!(info["mode"], "rsync-concurrent");
    assert!(
        info["tablespaces"].starts_with("[('ts1', "),
        "{}",
        info["tablespaces"]
    );
    assert_eq!(info["data_checksums"], "on");
    assert_eq!(info["version"].len(), 6);
    assert_eq!(
        info["systemid"],
        pg.system_identifier().unwrap().to_string()
    );
    for key in [
        "begin_wal",
        "end_wal",
        "begin_xlog",
        "end_xlog",
        "size",
        "deduplicated_size",
        "timeline",
        "begin_time",
        "end_time",
        "pgdata",
        "config_file",
        "hba_file",
        "ident_file",
        "copy_stats",
        "backup_label",
    ] {
        assert_ne!(info[key], "None", "{key} unset: {info:?}");
    }
    assert!(info["begin_wal"] <= info["end_wal"]);
    let dir = bench.backup_dir(&id);
    assert!(dir.join("data/backup_label").is_file());
    assert!(dir.join("data/tablespace_map").is_file());
    assert!(!dir.join("data/postmaster.pid").exists());
    assert!(dir.join("data/pg_wal").is_dir());
    // pg_wal is kept with only an empty archive_status/, as PostgreSQL's
    // own base backup does.
    let in_wal: Vec<String> = fs::read_dir(dir.join("data/pg_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(in_wal, ["archive_status"], "pg_wal copied");
    assert_eq!(
        fs::read_dir(dir.join("data/pg_wal/archive_status"))
            .unwrap()
            .count(),
        0
    );
    assert!(dir.join("manifest").is_file());
    // The restore point barman_<id> exists in the WAL, and so does the
    // backup history file.
    let history = bench
        .setup
        .run(&["get-wal", "--peek", "5", "pg", &info["begin_wal"]]);
    assert!(history.status.success());

    // Copy back, replay the archive, compare.
    let (_dest, restored) = bench.restore_and_start(&id);
    assert_eq!(restored.psql(SNAPSHOT_SQL).unwrap(), expected);
    let amcheck = Command::new("runuser")
        .args(["-u", SERVER_OS_USER, "--"])
        .arg(pg.pg_bin().join("pg_amcheck"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &restored.port().to_string(),
            "-U",
            "postgres",
            "--install-missing",
            "-d",
            "postgres",
            "--heapallindexed",
        ])
        .output()
        .unwrap();
    assert!(
        amcheck.status.success(),
        "pg_amcheck: {}{}",
        String::from_utf8_lossy(&amcheck.stdout),
        String::from_utf8_lossy(&amcheck.stderr)
    );

    // A PostgreSQL backup_manifest: pg_verifybackup passes, and fails once
    // a file of the backup is altered.
    let out = ok(
        &bench.setup.run(&["generate-manifest", "pg", &id]),
        "generate-manifest",
    );
    assert!(out.contains("backup_manifest"), "{out}");
    let out = ok(
        &bench.setup.run(&["verify-backup", "pg", &id]),
        "verify-backup",
    );
    assert!(out.contains("successfully verified"), "{out}");
    let victim = dir.join("data/PG_VERSION");
    let mut text = fs::read_to_string(&victim).unwrap();
    text.push('\n');
    fs::write(&victim, text).unwrap();
    let out = bench.setup.run(&["verify-backup", "pg", &id]);
    assert!(!out.status.success(), "a modified backup verified");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PG_VERSION"));
}

#[test]
fn reuse_backup_link_copy_off_and_check_backup() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 2);
    let pg = &bench.pg;
    pg.psql("CHECKPOINT").unwrap();
    // Files written more than 2 s before a backup starts are trusted by
    // size and mtime by the next one; younger ones are compared by content.
    std::thread::sleep(Duration::from_secs(3));
    let first = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let first = first["backup_id"].as_str().unwrap().to_owned();
    pg.psql("UPDATE pgbench_branches SET bbalance = bbalance + 1")
        .unwrap();
    pg.psql("CHECKPOINT").unwrap();

    // --dry-run prints the plan and writes nothing.
    let plan = ok(
        &bench.setup.run(&["backup", "--dry-run", "pg"]),
        "backup --dry-run",
    );
    assert!(plan.contains("data/global/pg_control"), "{plan}");
    let links = plan.lines().filter(|l| l.starts_with("link")).count();
    assert!(links > 300, "{links} links planned:\n{plan}");
    assert!(plan.lines().any(|l| l.starts_with("total")), "{plan}");
    assert_eq!(newest(&bench), first, "--dry-run created a backup");

    let second = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let second_id = second["backup_id"].as_str().unwrap().to_owned();
    assert_ne!(first, second_id);
    let a = files(&bench.backup_dir(&first));
    let b = files(&bench.backup_dir(&second_id));
    let mut linked = 0u64;
    let mut fresh_bytes = 0;
    for (rel, (ino, nlink, size)) in &b {
        if *nlink == 1 {
            fresh_bytes += size;
        }
        let Some((ino_a, _, _)) = a.get(rel) else {
            continue;
        };
        let same_content = content_digest(&bench.backup_dir(&first).join(rel))
            == content_digest(&bench.backup_dir(&second_id).join(rel));
        if same_content
            && rel != "manifest"
            && !rel.ends_with("backup_label")
            && !rel.ends_with("tablespace_map")
        {
            assert_eq!(
                ino,
                ino_a,
                "{rel}: unchanged but not hard-linked; manifests:\n{}\n{}",
                manifest_line(&bench.backup_dir(&first), rel),
                manifest_line(&bench.backup_dir(&second_id), rel)
            );
            linked += 1;
        }
        if !same_content {
            assert_ne!(ino, ino_a, "{rel}: changed yet shares the previous inode");
        }
    }
    assert!(linked > 500, "only {linked} files linked");
    let info = bench.info(&second_id);
    let dedup: u64 = info["deduplicated_size"].parse().unwrap();
    let size: u64 = info["size"].parse().unwrap();
    // deduplicated_size counts exactly the files written anew (not the manifest).
    let manifest_len = fs::metadata(bench.backup_dir(&second_id).join("manifest"))
        .unwrap()
        .len();
    assert_eq!(dedup, fresh_bytes - manifest_len, "deduplicated_size");
    assert!(dedup * 10 < size, "dedup {dedup} vs size {size}");
    assert_eq!(second["copy"]["files_linked"].as_u64(), Some(linked));

    // copy: independent files with equal content.
    let third = bench.backup(&["--reuse-backup", "copy", "--wait", "--wait-timeout", "60"]);
    let third_id = third["backup_id"].as_str().unwrap().to_owned();
    let c = files(&bench.backup_dir(&third_id));
    assert!(
        c.values().all(|(_, nlink, _)| *nlink == 1),
        "copy mode left hard links"
    );
    assert!(
        third["copy"]["files_copied_locally"].as_u64().unwrap() > 300,
        "{:?}",
        third["copy"]
    );
    assert_eq!(third["copy"]["files_linked"].as_u64(), Some(0));
    // off: everything fetched.
    let fourth = bench.backup(&["--reuse-backup", "off", "--wait", "--wait-timeout", "60"]);
    assert_eq!(fourth["copy"]["files_linked"].as_u64(), Some(0));
    assert_eq!(fourth["copy"]["files_copied_locally"].as_u64(), Some(0));
    let fourth_id = fourth["backup_id"].as_str().unwrap();
    let info = bench.info(fourth_id);
    assert_eq!(info["size"], info["deduplicated_size"]);

    // check-backup on a DONE backup stays DONE; after losing a WAL it is FAILED.
    let out = ok(
        &bench.setup.run(&["check-backup", "pg", &second_id]),
        "check-backup",
    );
    assert!(out.contains("DONE"), "{out}");
    // Lose the first WAL of the second backup: later WALs exist, so the
    // gap is certain.
    let begin = bench.info(&second_id)["begin_wal"].clone();
    let hash_dir = bench.setup.dir("wals").join(&begin[..16]);
    fs::remove_file(hash_dir.join(&begin)).unwrap();
    let xlogdb = bench.setup.dir("wals").join("pg-xlog.db");
    let text: String = fs::read_to_string(&xlogdb)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(&format!("{begin}\t")))
        .fold(String::new(), |mut acc, l| {
            let _ = writeln!(acc, "{l}");
            acc
        });
    fs::write(&xlogdb, text).unwrap();
    let out = bench.setup.run(&["check-backup", "pg", &second_id]);
    assert!(
        !out.status.success(),
        "check-backup after losing {begin}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let info = bench.info(&second_id);
    assert_eq!(info["status"], "FAILED");
    assert!(info["error"].contains(&begin), "{}", info["error"]);
    // `latest` resolves to the newest DONE backup.
    let out = ok(
        &bench.setup.run(&["check-backup", "pg", "latest"]),
        "check-backup latest",
    );
    assert!(out.contains(fourth_id), "{out}");
}

/// `rsync` over a loopback sshd: the agent runs as `postgres` through
/// `ssh_command`; two jobs; a page delta after touching 1% of a table's pages.
#[test]
fn rsync_over_ssh_with_page_deltas_moves_a_fraction_of_the_table() {
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);
    let bench = Bench::rsync(&sshd, &client);
    let pg = &bench.pg;
    pg.psql("CREATE TABLE big (id int, n int, pad text) WITH (fillfactor = 50)")
        .unwrap();
    pg.psql("INSERT INTO big SELECT g, 0, repeat('x', 200) FROM generate_series(1, 150000) g")
        .unwrap();
    // Hint bits and the visibility map settle once (as on any table that
    // has been read and vacuumed), so the next change touches only the
    // pages it updates.
    pg.psql("VACUUM FREEZE big").unwrap();
    pg.psql("CHECKPOINT").unwrap();
    let pages: u64 = pg
        .psql("SELECT pg_relation_size('big') / 8192")
        .unwrap()
        .parse()
        .unwrap();
    let first = bench.backup(&["--wait", "--wait-timeout", "60"]);
    assert_eq!(
        bench.info(first["backup_id"].as_str().unwrap())["mode"],
        "rsync-concurrent"
    );

    // One row on every 100th page: HOT updates stay on their page.
    pg.psql("UPDATE big SET n = 1 WHERE (ctid::text::point)[0]::int % 100 = 0 AND (ctid::text::point)[1] = 1")
        .unwrap();
    pg.psql("CHECKPOINT").unwrap();
    let expected = pg
        .psql("SELECT count(*) || ' ' || sum(n) FROM big")
        .unwrap();
    let second = bench.backup(&["--wait", "--wait-timeout", "60", "-j", "2"]);
    let table_bytes = pages * 8192;
    let wire = second["copy"]["bytes_transferred"].as_u64().unwrap();
    eprintln!(
        "delta backup: {wire} bytes over the agent for a {table_bytes}-byte table ({:.2}%), copy {:?}",
        percent(wire, table_bytes),
        second["copy"]
    );
    assert!(
        wire * 20 < table_bytes,
        "{wire} bytes transferred, table {table_bytes}"
    );
    assert!(second["copy"]["files_delta"].as_u64().unwrap() >= 1);

    bench.flush_wal();
    let id = second["backup_id"].as_str().unwrap();
    let (_dest, restored) = bench.restore_and_start(id);
    assert_eq!(
        restored
            .psql("SELECT count(*) || ' ' || sum(n) FROM big")
            .unwrap(),
        expected
    );
    client.stop_master(sshd.port());
}

/// Faults: a FAILED backup with a clear error, previous backups untouched,
/// the next backup works.
#[test]
fn faults_leave_failed_backups_and_the_next_backup_works() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 1);
    let good = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let good_id = good["backup_id"].as_str().unwrap().to_owned();
    let good_files = files(&bench.backup_dir(&good_id));

    // Ctrl-C (SIGINT) during a slow copy.
    let mut child = bench
        .setup
        .command(&["backup", "--bwlimit", "500", "--reuse-backup", "off", "pg"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_status(&bench, "STARTED", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    run(Command::new("kill").args(["-INT", &child.id().to_string()])).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let failed = newest(&bench);
    let info = bench.info(&failed);
    assert_eq!(info["status"], "FAILED");
    assert!(info["error"].contains("interrupted"), "{}", info["error"]);
    assert!(
        !bench.backup_dir(&failed).join("data").exists(),
        "partial data left"
    );

    // PostgreSQL unreachable: refused before anything is written.
    let conf_path = bench.setup.home.conf().to_path_buf();
    let conf = fs::read_to_string(&conf_path).unwrap();
    fs::write(
        &conf_path,
        conf.replace(&format!("port={}", bench.pg.port()), "port=1"),
    )
    .unwrap();
    let out = bench.setup.run(&["backup", "pg"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(&conf_path, &conf).unwrap();

    // SIGKILL: the next backup marks the interrupted one FAILED.
    let mut child = bench
        .setup
        .command(&["backup", "--bwlimit", "500", "--reuse-backup", "off", "pg"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(&bench, "STARTED", Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = newest(&bench);
    assert_eq!(bench.info(&killed)["status"], "STARTED");

    let next = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let info = bench.info(&killed);
    assert_eq!(info["status"], "FAILED");
    assert!(info["error"].contains("interrupted"), "{}", info["error"]);
    assert_eq!(
        bench.info(next["backup_id"].as_str().unwrap())["status"],
        "DONE"
    );
    // The first good backup is untouched.
    assert_eq!(bench.info(&good_id)["status"], "DONE");
    let now = files(&bench.backup_dir(&good_id));
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        good_files.keys().collect::<Vec<_>>()
    );
}

#[allow(clippy::cast_precision_loss)]
fn percent(part: u64, whole: u64) -> f64 {
    part as f64 * 100.0 / whole as f64
}

fn manifest_line(dir: &Path, rel: &str) -> String {
    let needle = format!("\"path\":\"{rel}\"");
    fs::read_to_string(dir.join("manifest"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(|l| l.chars().take(300).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn newest(bench: &Bench) -> String {
    let mut ids = backup_ids(&bench.setup.dir("meta")).unwrap();
    ids.pop().expect("a backup")
}

pub(crate) fn wait_for_status(bench: &Bench, status: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        if bench.setup.dir("meta").is_dir() {
            let id = newest(bench);
            if bench.info(&id).get("status").map(String::as_str) == Some(status) {
                return;
            }
        }
        assert!(start.elapsed() < timeout, "no backup reached {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A backup taken from a hot standby (itself built from a barman backup):
/// `pg_backup_start/stop` on the standby, the WAL switch asked of the
/// primary through `primary_conninfo`, and the result restores to the
/// primary's data.
#[test]
fn backup_from_a_hot_standby_restores() {
    let bench = Bench::new("backup_method = local-rsync\nreuse_backup = link\n", 1);
    let pg = &bench.pg;
    let base = bench.backup(&["--wait", "--wait-timeout", "60"]);
    let base_id = base["backup_id"].as_str().unwrap().to_owned();
    let (_standby_dir, standby) = bench.restore(&base_id, Some(&pg.conninfo()));
    pg.psql("INSERT INTO in_ts SELECT g, g FROM generate_series(20001, 21000) g")
        .unwrap();
    standby
        .wait_for(
            "SELECT count(*) FROM in_ts",
            "21000",
            Duration::from_secs(60),
        )
        .unwrap();

    // The same server entry now backs up the standby.
    let conf_path = bench.setup.home.conf().to_path_buf();
    let primary_conf = fs::read_to_string(&conf_path).unwrap();
    let conf = primary_conf.replace(
        &format!("conninfo = {}", pg.conninfo()),
        &format!(
            "conninfo = host=127.0.0.1 port={} user=postgres dbname=postgres\nprimary_conninfo = {}",
            standby.port(),
            pg.conninfo()
        ),
    );
    fs::write(&conf_path, &conf).unwrap();
    let from_standby = bench.backup(&["--wait", "--wait-timeout", "90"]);
    let id = from_standby["backup_id"].as_str().unwrap().to_owned();
    let info = bench.info(&id);
    assert_eq!(info["status"], "DONE", "{info:?}");
    assert!(
        info["backup_label"].contains("BACKUP FROM: standby"),
        "{}",
        info["backup_label"]
    );
    assert!(
        info["pgdata"] != bench.info(&base_id)["pgdata"],
        "copied the primary"
    );

    pg.psql("UPDATE in_ts SET n = 0 WHERE id <= 10").unwrap();
    let expected = pg.psql(SNAPSHOT_SQL).unwrap();
    fs::write(&conf_path, primary_conf).unwrap();
    bench.flush_wal();
    let (_dest, restored) = bench.restore_and_start(&id);
    assert_eq!(restored.psql(SNAPSHOT_SQL).unwrap(), expected);
}
