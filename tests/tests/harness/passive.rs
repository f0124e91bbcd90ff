//! Geographical redundancy end to end: two barman homes on one machine. The
//! primary backs up a real PostgreSQL 15 under pgbench load and archives
//! its WAL; the passive node (`primary_ssh_command` and nothing else)
//! reaches it through a loopback sshd — `barman` on the "primary host" is
//! the primary's binary and configuration — and `barman cron` on the
//! passive copies every backup and WAL. The passive's catalog then
//! recovers to a point in time. Faults: the ssh session killed mid-sync, a
//! file corrupted on the primary, a position the primary does not know.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::{DataDirServer, SERVER_OS_USER, Sshd, chmod};
use serde_json::Value;

use crate::archiving::{ClientSide, LocalSetup, ok};
use crate::backup::{Bench, files};
use crate::recover::{Dest, LOCAL_RSYNC, data_digest, ids, wait_promoted};

/// How long `cron` on the passive may take to bring everything across.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

/// A primary barman (with its PostgreSQL) and a passive one reaching it
/// over ssh.
pub(crate) struct Geo {
    pub(crate) primary: Bench,
    pub(crate) passive: LocalSetup,
    sshd: Sshd,
    client: ClientSide,
    /// The primary host's `barman` (the ssh session's PATH).
    _remote_bin: tempfile::TempDir,
}

impl Geo {
    /// A primary with pgbench scale `scale`; `passive_conf` is appended to
    /// the passive's `[pg]` section.
    pub(crate) fn new(scale: u32, passive_conf: &str) -> Self {
        let primary = Bench::new(LOCAL_RSYNC, scale);
        // `barman` as the primary host knows it: its binary, its configuration.
        let remote_bin = tempfile::Builder::new()
            .prefix("barman-e2e-primary-host-")
            .tempdir_in("/tmp")
            .unwrap();
        chmod(remote_bin.path(), 0o755).unwrap();
        let wrapper = remote_bin.path().join("barman");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} -c {} \"$@\"\n",
                primary.setup.barman().display(),
                primary.setup.home.conf().display()
            ),
        )
        .unwrap();
        chmod(&wrapper, 0o755).unwrap();
        let sshd = Sshd::builder()
            .user(SERVER_OS_USER)
            .config_line(format!(
                "SetEnv PATH={}:/usr/bin:/bin",
                remote_bin.path().display()
            ))
            .start()
            .expect("start sshd");
        let client = ClientSide::new(&sshd);
        let passive = LocalSetup::new();
        let geo = Self {
            primary,
            passive,
            sshd,
            client,
            _remote_bin: remote_bin,
        };
        geo.configure_passive(passive_conf);
        geo
    }

    /// Rewrites the passive's `[pg]`: Barman's passive configuration, one
    /// option (plus `extra`).
    pub(crate) fn configure_passive(&self, extra: &str) {
        let conf = self.passive.home.conf();
        let text = fs::read_to_string(conf).unwrap();
        let head = text.split("[pg]").next().unwrap().to_owned();
        fs::write(
            conf,
            format!(
                "{head}[pg]\nprimary_ssh_command = {} -p {} {SERVER_OS_USER}@127.0.0.1\n{extra}",
                self.client.bin("ssh").display(),
                self.sshd.port()
            ),
        )
        .unwrap();
    }

    /// `barman -f json cron` on the passive: its `pg` report and messages.
    fn cron(&self) -> (Value, Vec<String>) {
        let out = self.passive.run(&["-f", "json", "cron"]);
        let text = ok(&out, "passive cron");
        let doc: Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("cron JSON: {e}: {text}"));
        let messages = doc["cron"]["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (doc["cron"]["servers"][0].clone(), messages)
    }

    /// Runs `cron` on the passive until `done` holds (a second apart).
    fn sync_until(&self, what: &str, done: impl Fn(&Self) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let (report, messages) = self.cron();
            if done(self) {
                eprintln!("{what}: synchronised in {:?}", started.elapsed());
                return started.elapsed();
            }
            assert!(
                started.elapsed() < SYNC_TIMEOUT,
                "{what}: not synchronised after {SYNC_TIMEOUT:?}; last cron: {report} {messages:?}\n\
                 passive list-backups:\n{}\nprimary list-backups:\n{}\n\
                 xlog.db: passive {:#?}\nprimary {:#?}\npassive log:\n{}",
                list_backups(&self.passive),
                list_backups(&self.primary.setup),
                xlogdb(&self.passive),
                xlogdb(&self.primary.setup),
                log_tail(&self.passive.home.log())
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The status in the passive's backup.info of `id` (`None`: no backup.info).
    pub(crate) fn passive_status(&self, id: &str) -> Option<String> {
        info(&self.passive, id).map(|i| i["status"].clone())
    }

    /// Both sides list the same backups and hold the same xlog.db.
    fn converged(&self) -> bool {
        list_backups(&self.passive) == list_backups(&self.primary.setup)
            && xlogdb(&self.passive) == xlogdb(&self.primary.setup)
    }
}

impl Drop for Geo {
    /// Stops the ssh multiplexing master the passive's sessions started.
    fn drop(&mut self) {
        self.client.stop_master(self.sshd.port());
    }
}

/// `list-backups pg` (console) of one side.
fn list_backups(side: &LocalSetup) -> String {
    ok(&side.run(&["list-backups", "pg"]), "list-backups")
}

/// The backup.info of `id` in `side`'s catalog.
pub(crate) fn info(side: &LocalSetup, id: &str) -> Option<BTreeMap<String, String>> {
    let path = side.dir("meta").join(format!("{id}-backup.info"));
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// No WAL has two lines in `side`'s xlog.db.
fn assert_no_duplicate_lines(side: &LocalSetup) {
    let lines = xlogdb(side);
    let mut names: Vec<&str> = lines.iter().filter_map(|l| l.split('\t').next()).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate xlog.db lines: {lines:#?}");
}

/// The lines of `side`'s xlog.db.
fn xlogdb(side: &LocalSetup) -> Vec<String> {
    fs::read_to_string(side.dir("wals").join("pg-xlog.db"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The last lines of a barman log worth reading (not the repeated
/// configuration warning, nor cron's "nothing to do" lines).
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            !l.contains("No backup strategy set") && !l.contains("synchronisation required")
        })
        .collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A backup of the primary while pgbench runs.
fn backup_under_load(bench: &Bench) -> String {
    std::thread::scope(|s| {
        let load = s.spawn(|| bench.pg.pgbench_run(2, 6).unwrap());
        std::thread::sleep(Duration::from_secs(1));
        let doc = bench.backup(&["--wait", "--wait-timeout", "120", "--bwlimit", "20000"]);
        load.join().unwrap();
        doc["backup_id"].as_str().unwrap().to_owned()
    })
}

/// `clock_timestamp()` in UTC, as `--target-time` takes it.
const NOW_UTC: &str = "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', \
                       'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'";

/// Every DONE backup and every WAL of the primary reach the passive through
/// `cron`; the passive lists the same backups and holds the same xlog.db;
/// the second backup's unchanged files are hard links to the passive's copy
/// of the first; a point-in-time recovery from the passive's catalog has
/// exactly the primary's rows at that time.
#[test]
fn cron_on_a_passive_node_copies_every_backup_and_wal_and_recovers_from_them() {
    let geo = Geo::new(1, "");
    let primary = &geo.primary;
    let pg = &primary.pg;

    // What a passive node refuses, and how it is listed.
    let servers = ok(&geo.passive.run(&["list-servers"]), "list-servers");
    assert!(servers.contains("(Passive)"), "{servers}");
    let backup = geo.passive.run(&["backup", "pg"]);
    assert!(
        String::from_utf8_lossy(&backup.stdout).contains("Skipping passive server"),
        "{backup:?}"
    );
    for args in [&["archive-wal", "pg"][..], &["receive-wal", "pg"]] {
        let out = geo.passive.run(args);
        assert!(!out.status.success(), "{args:?} allowed on a passive node");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("passive"),
            "{args:?}: {out:?}"
        );
    }

    let b1 = backup_under_load(primary);
    let b2 = backup_under_load(primary);
    pg.psql("CREATE TABLE marks (id int PRIMARY KEY)").unwrap();
    for i in 1..=3 {
        pg.psql(&format!("INSERT INTO marks VALUES ({i})")).unwrap();
    }
    let at_target = data_digest(|sql| pg.psql(sql).unwrap());
    let target = pg.psql(NOW_UTC).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for i in 4..=6 {
        pg.psql(&format!("INSERT INTO marks VALUES ({i})")).unwrap();
    }
    pg.pgbench_run(1, 2).unwrap();
    primary.flush_wal();
    eprintln!("primary backups {b1} {b2}, target {target}");

    let took = geo.sync_until("two backups and their WALs", Geo::converged);
    eprintln!(
        "passive list-backups after {took:?}:\n{}",
        list_backups(&geo.passive)
    );
    for id in [&b1, &b2] {
        assert_eq!(geo.passive_status(id).as_deref(), Some("DONE"), "{id}");
        assert!(geo.passive.dir("base").join(id).join("manifest").is_file());
    }
    assert_no_duplicate_lines(&geo.passive);
    assert!(geo.passive.dir("wals").join("sync-wals.info").is_file());
    assert!(
        geo.passive
            .home
            .server_dir("pg")
            .join("primary.info")
            .is_file()
    );
    // The passive node adopted the cluster's identity.
    let identity =
        fs::read_to_string(geo.passive.home.server_dir("pg").join("identity.json")).unwrap();
    assert!(
        identity.contains(&pg.system_identifier().unwrap().to_string()),
        "{identity}"
    );

    // Incremental: what the primary hard-linked between its two backups is
    // hard-linked on the passive too, and the transfer was smaller.
    let (p1, p2) = (
        files(&primary.backup_dir(&b1)),
        files(&primary.backup_dir(&b2)),
    );
    let base = geo.passive.dir("base");
    let (q1, q2) = (files(&base.join(&b1)), files(&base.join(&b2)));
    let shared: Vec<&String> = p2
        .iter()
        .filter(|(path, (ino, _, _))| {
            *path != "manifest" && p1.get(*path).is_some_and(|o| o.0 == *ino)
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        shared.len() > 100,
        "only {} files shared on the primary",
        shared.len()
    );
    for path in &shared {
        assert_eq!(
            q1[*path].0, q2[*path].0,
            "{path} is not a hard link on the passive"
        );
    }
    let total: u64 = p2.values().map(|(_, _, size)| size).sum();
    let (full, incremental) = (transferred(&geo, &b1), transferred(&geo, &b2));
    assert!(
        incremental > 0 && incremental < full && incremental < total,
        "{incremental} bytes transferred for {b2} ({total} bytes), {full} for {b1}"
    );

    // Point-in-time recovery from the passive's catalog.
    let dest = Dest::new("passive-pitr");
    let (d, ts) = (dest.data_arg(), dest.ts_arg());
    let out = geo.passive.run(&[
        "-f",
        "json",
        "recover",
        "pg",
        &b2,
        &d,
        "--tablespace",
        &ts,
        "--target-time",
        &target,
        "--target-action",
        "promote",
    ]);
    let text = ok(&out, "recover from the passive");
    eprintln!("recover: {}", text.trim());
    let server = DataDirServer::start(pg.pg_bin(), &dest.data(), "")
        .unwrap_or_else(|e| panic!("start the recovered server: {e}"));
    wait_promoted(&server);
    assert_eq!(ids(&server, "marks"), "1,2,3");
    assert_eq!(data_digest(|sql| server.psql(sql).unwrap()), at_target);
}

/// The bytes the sync of `id` reports in the passive's log.
fn transferred(geo: &Geo, id: &str) -> u64 {
    let log = geo.passive.home.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("Synchronised backup {id} ")))
        .unwrap_or_else(|| panic!("no sync report for {id} in the log:\n{}", tail(&log, 4000)));
    eprintln!("{line}");
    assert!(line.contains(" hard-linked"), "{line}");
    line.rsplit_once("; ")
        .and_then(|(_, t)| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line}"))
}

/// The pids of the `ssh` processes `parent` started.
fn ssh_children(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && comm.ends_with("(ssh") {
            pids.push(pid);
        }
    }
    pids
}

/// Starts `sync-backup pg ID` on the passive and waits until it copies
/// (SYNCING, files arriving, ssh sessions open); returns it and the pids of
/// its ssh children, two seconds into the copy.
#[allow(
    clippy::zombie_processes,
    reason = "the child is returned to the caller, which waits for it"
)]
fn sync_in_flight(geo: &Geo, id: &str) -> (std::process::Child, Vec<u32>) {
    let mut child = geo
        .passive
        .command(&["sync-backup", "pg", id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let data = geo.passive.dir("base").join(id).join("data");
    loop {
        if geo.passive_status(id).as_deref() == Some("SYNCING")
            && data.is_dir()
            && !ssh_children(pid).is_empty()
        {
            std::thread::sleep(Duration::from_secs(2));
            return (child, ssh_children(pid));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the sync never got going: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILLs `pids` (processes this test started).
fn kill(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Waits for `child` (killed after `timeout`).
fn finish(mut child: std::process::Child, timeout: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > timeout {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A data file of backup `newer` on the primary that is not a hard link to
/// backup `older`'s copy (so a sync fetches or patches it).
fn file_new_in(bench: &Bench, older: &str, newer: &str) -> PathBuf {
    let old = files(&bench.backup_dir(older));
    let new = files(&bench.backup_dir(newer));
    let rel = new
        .iter()
        .find(|(path, (ino, _, size))| {
            path.starts_with("data/base/")
                && *size >= 16384
                && old.get(*path).is_some_and(|o| o.0 != *ino)
        })
        .map(|(path, _)| path.clone())
        .expect("a relation file that changed between the backups");
    bench.backup_dir(newer).join(rel)
}

/// Flips 16 bytes of `path` at `offset`; returns what was there.
fn corrupt(path: &Path, offset: usize) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap();
    let original = bytes[offset..offset + 16].to_vec();
    for b in &mut bytes[offset..offset + 16] {
        *b = !*b;
    }
    fs::write(path, bytes).unwrap();
    original
}

/// Faults: the ssh session to the primary killed mid-sync leaves the
/// backup FAILED and the next `cron` syncs it; a file corrupted on the
/// primary fails the sync by checksum, naming the file; a `sync-wals.info`
/// position the primary does not know is rescanned, a WAL it does not know
/// triggers the self-recovery; the passive node's own retention deletes,
/// and never syncs again, what it calls OBSOLETE.
#[test]
fn passive_sync_survives_a_dropped_session_a_corrupt_file_and_an_unknown_position() {
    let geo = Geo::new(1, "bandwidth_limit = 1500\n");
    let primary = &geo.primary;
    let b1 = primary.backup(&["--wait", "--wait-timeout", "120"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &geo.passive.run(&["sync-info", "--primary", "pg"]),
        "sync-info --primary",
    );

    // The ssh session dies mid-copy.
    let (child, victims) = sync_in_flight(&geo, &b1);
    let pid = child.id();
    let victims: Vec<u32> = victims.into_iter().filter(|&v| v != pid).collect();
    eprintln!("killing the ssh children {victims:?} of sync-backup {pid}");
    kill(&victims);
    let out = finish(child, Duration::from_secs(60));
    eprintln!("sync-backup after the kill: {out:?}");
    assert!(!out.status.success());
    let failed = info(&geo.passive, &b1).unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed:?}");
    assert!(
        failed["error"].starts_with(&format!("failure syncing server pg backup {b1}: ")),
        "{failed:?}"
    );
    assert!(
        !geo.passive.dir("base").join(&b1).exists(),
        "partial copy left"
    );

    // sync-backup itself killed: SYNCING, until the next cron marks it FAILED.
    let (child, _) = sync_in_flight(&geo, &b1);
    kill(&[child.id()]);
    finish(child, Duration::from_secs(60));
    assert_eq!(geo.passive_status(&b1).as_deref(), Some("SYNCING"));
    // The next cron retries it.
    geo.configure_passive("");
    let (report, messages) = geo.cron();
    assert!(
        messages.iter().any(|m| m.contains(&format!(
            "Synchronisation of backup {b1} of server pg was interrupted: marked FAILED"
        ))),
        "{messages:?}"
    );
    assert_eq!(
        report["sync_backup_started"]["backup_id"],
        b1.as_str(),
        "{report}"
    );
    geo.sync_until("the interrupted backup", |g| {
        g.passive_status(&b1).as_deref() == Some("DONE") && g.converged()
    });

    // A file corrupted on the primary is caught by its checksum.
    primary.pg.pgbench_run(2, 3).unwrap();
    let b2 = primary.backup(&["--wait", "--wait-timeout", "120"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = file_new_in(primary, &b1, &b2);
    let rel = victim
        .strip_prefix(primary.backup_dir(&b2))
        .unwrap()
        .display()
        .to_string();
    let original = corrupt(&victim, 8192 + 100);
    geo.sync_until("the corrupt backup (FAILED)", |g| {
        g.passive_status(&b2).as_deref() == Some("FAILED")
    });
    let error = info(&geo.passive, &b2).unwrap()["error"].clone();
    eprintln!("corrupt {rel}: {error}");
    assert!(
        error.contains("checksum mismatch") && error.contains(&rel),
        "{error}"
    );
    // Mended on the primary: the next cron syncs it.
    let mut bytes = fs::read(&victim).unwrap();
    bytes[8192 + 100..8192 + 116].copy_from_slice(&original);
    fs::write(&victim, bytes).unwrap();
    geo.sync_until("the mended backup", |g| {
        g.passive_status(&b2).as_deref() == Some("DONE") && g.converged()
    });

    // A stale position: the primary reads its xlog.db from the start.
    let info_path = geo.passive.dir("wals").join("sync-wals.info");
    let position = fs::read_to_string(&info_path).unwrap();
    let (last, _) = position.split_once('\t').unwrap();
    fs::write(&info_path, format!("{last}\t1")).unwrap();
    primary
        .pg
        .psql("CREATE TABLE more AS SELECT 1 AS x")
        .unwrap();
    primary.flush_wal();
    let (_, messages) = geo.cron();
    assert!(
        !messages.iter().any(|m| m.contains("Self-recovery")),
        "{messages:?}"
    );
    assert!(
        primary
            .setup
            .home
            .log()
            .contains("does not match xlog.db, read from its start"),
        "no rescan in the primary's log"
    );
    geo.sync_until("WALs after a rescan", Geo::converged);

    // A WAL the primary does not know: self-recovery.
    fs::write(&info_path, "0000000100000000000000FF\t999999").unwrap();
    primary.pg.psql("INSERT INTO more VALUES (2)").unwrap();
    primary.flush_wal();
    let (_, messages) = geo.cron();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Self-recovery procedure started")),
        "{messages:?}"
    );
    geo.sync_until("WALs after the self-recovery", Geo::converged);
    assert_no_duplicate_lines(&geo.passive);

    // The passive node's own retention: B1 goes, and is not synced again.
    geo.configure_passive("retention_policy = REDUNDANCY 1\n");
    let (report, messages) = geo.cron();
    eprintln!("retention: {report} {messages:?}");
    assert!(
        report["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == b1.as_str()),
        "{report}"
    );
    for _ in 0..2 {
        let (report, _) = geo.cron();
        assert!(report["sync_backup_started"].is_null(), "{report}");
    }
    assert!(geo.passive_status(&b1).is_none());
    assert_eq!(geo.passive_status(&b2).as_deref(), Some("DONE"));
}
