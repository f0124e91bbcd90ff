//! Shell command lines barman writes or runs (issue 18, items 1 and 6).
//!
//! Point-in-time recovery of a real PostgreSQL 15 backup into destinations
//! whose names a shell would read as commands (`pg data; touch pwned`, a
//! staging directory and a configuration path with `%`, `'` and `$(...)`):
//! the recovered server replays exactly the rows up to the target time, no
//! `pwned` file appears, the sibling directories are intact and
//! `recovery_end_command` removes `barman_wal`. Then the ssh commands barman
//! starts (backup and recovery agents, the `check` probe) are `exec`ed: when
//! barman kills the `sh` around a session that failed, the "ssh" dies too.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use barman_testkit::{DataDirServer, SERVER_OS_USER, chmod, chown_to, pid_alive, user_ids};

use crate::backup::Bench;
use crate::recover::{
    Dest, LOCAL_RSYNC, Run, backup_id, barman_run, ids, recover, recover_raw, wait_promoted,
};

/// What the injected commands would create.
const PWNED: &str = "pwned";

/// `clock_timestamp()` in UTC as `--target-time` takes it.
const NOW_UTC: &str = "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', \
                       'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'";

/// The value of `setting` in the recovered `postgresql.auto.conf` (the
/// last line setting it, as PostgreSQL reads it).
fn auto_conf_line(data: &Path, setting: &str) -> String {
    let auto = fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    auto.lines()
        .rfind(|l| l.trim_start().starts_with(setting))
        .unwrap_or_else(|| panic!("no {setting} in\n{auto}"))
        .to_owned()
}

/// Every file or directory named `pwned*` under `roots` (recursively) and
/// directly in `shallow` (the data directories' parents up to `/`, /tmp,
/// the postgres home).
fn pwned_files(roots: &[&Path], shallow: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(PWNED) {
                found.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), found);
            }
        }
    }
    let mut found = Vec::new();
    for root in roots {
        walk(root, &mut found);
    }
    for dir in shallow {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(PWNED) {
                found.push(e.path());
            }
        }
    }
    found
}

/// `dir` and its ancestors.
fn ancestors(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors().map(Path::to_path_buf).collect()
}

/// A directory `name` in `parent` holding a file, as a sibling of the
/// destination that must survive the recovery.
fn sibling(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("keep"), b"sibling data\n").unwrap();
    chown_to(&dir, SERVER_OS_USER).unwrap();
    dir
}

fn assert_sibling_intact(dir: &Path) {
    assert_eq!(
        fs::read(dir.join("keep"))
            .unwrap_or_else(|e| panic!("sibling {} was damaged: {e}", dir.display())),
        b"sibling data\n"
    );
}

/// Starts PostgreSQL 15 on `data`, waits for the end of recovery (the
/// target reached, promoted) and returns the marker rows.
fn start_and_read(bench: &Bench, data: &Path) -> (DataDirServer, String) {
    let server = DataDirServer::start(bench.pg.pg_bin(), data, "")
        .unwrap_or_else(|e| panic!("start the recovered {}: {e}", data.display()));
    wait_promoted(&server);
    let rows = ids(&server, "marks");
    (server, rows)
}

/// PITR into `<dir>/pg data; touch pwned`, with a staging directory and a
/// configuration path holding `%`, `'` and `$(...)`: each recovered server
/// has exactly the rows committed up to the target time, nothing the path
/// spells is run, siblings survive, and `barman_wal` is removed by
/// `recovery_end_command` (a relative path: PostgreSQL runs it in DEST).
#[test]
fn pitr_into_hostile_paths_recovers_the_target_and_runs_nothing() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let pg = &bench.pg;
    pg.psql("CREATE TABLE marks (id int PRIMARY KEY)").unwrap();
    let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    for i in 1..=3 {
        pg.psql(&format!("INSERT INTO marks VALUES ({i})")).unwrap();
    }
    let target = pg.psql(NOW_UTC).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for i in 4..=6 {
        pg.psql(&format!("INSERT INTO marks VALUES ({i})")).unwrap();
    }
    bench.flush_wal();
    let pitr = [
        "--target-time",
        target.as_str(),
        "--target-action",
        "promote",
    ];
    let postgres_home = PathBuf::from("/var/lib/postgresql");

    // 1. DEST with a space and `;`: the default staging in DEST/barman_wal.
    let parent = Dest::new("shell-space");
    let keep = sibling(parent.path(), "pg");
    let keep_data = sibling(parent.path(), "data;");
    let data = parent.path().join("pg data; touch pwned");
    let (d, ts) = (
        data.display().to_string(),
        format!("ts1:{}", parent.path().join("ts1").display()),
    );
    let mut args = vec![id.as_str(), d.as_str(), "--tablespace", ts.as_str()];
    args.extend(pitr);
    let doc = recover(&bench, &args, &[]);
    assert_eq!(
        auto_conf_line(&data, "restore_command"),
        "restore_command = 'cp barman_wal/%f %p'"
    );
    assert_eq!(
        auto_conf_line(&data, "recovery_end_command"),
        "recovery_end_command = 'rm -fr barman_wal'"
    );
    assert_eq!(doc["restore_command"], "cp barman_wal/%f %p", "{doc}");
    assert!(data.join("barman_wal").is_dir());
    let (server, rows) = start_and_read(&bench, &data);
    assert_eq!(rows, "1,2,3", "space: the rows up to {target}");
    assert!(
        !data.join("barman_wal").exists(),
        "recovery_end_command did not remove barman_wal"
    );
    drop(server);
    assert_sibling_intact(&keep);
    assert_sibling_intact(&keep_data);

    // 2. A staging directory outside DEST with `%`, `'` and `$(...)`:
    //    written absolute, shell-quoted, `%` doubled.
    let staged = Dest::new("shell-staging");
    let keep_wal = sibling(staged.path(), "wal");
    let staging = staged
        .path()
        .join("wal 100%f it's $(touch pwned) `touch pwned2`");
    let (d, ts, s) = (
        staged.data_arg(),
        staged.ts_arg(),
        staging.display().to_string(),
    );
    let mut args = vec![
        id.as_str(),
        d.as_str(),
        "--tablespace",
        ts.as_str(),
        "--staging-wal-directory",
        s.as_str(),
    ];
    args.extend(pitr);
    recover(&bench, &args, &[]);
    let line = auto_conf_line(&staged.data(), "restore_command");
    assert!(line.contains("100%%f"), "`%` not doubled: {line}");
    assert!(!staged.data().join("barman_wal").exists());
    assert!(staging.is_dir(), "nothing staged in {}", staging.display());
    let (server, rows) = start_and_read(&bench, &staged.data());
    assert_eq!(rows, "1,2,3", "staging: the rows up to {target}");
    drop(server);
    assert_sibling_intact(&keep_wal);

    // 3. --get-wal through a configuration file whose path has `%`, `'`
    //    and `$(...)`: `barman -c <that path> get-wal` in restore_command.
    let fetched = Dest::new("shell-get-wal");
    let conf = fetched
        .path()
        .join("conf 50%p it's $(touch pwned) `touch pwned3`.conf");
    fs::copy(bench.setup.home.conf(), &conf).unwrap();
    chown_to(&conf, SERVER_OS_USER).unwrap();
    chmod(&conf, 0o600).unwrap();
    let (d, ts) = (fetched.data_arg(), fetched.ts_arg());
    let mut args = vec![
        "recover",
        "pg",
        id.as_str(),
        d.as_str(),
        "--tablespace",
        ts.as_str(),
        "--get-wal",
    ];
    args.extend(pitr);
    let run = barman_with_conf(&bench, &conf, &args);
    assert!(run.status.success(), "recover --get-wal: {}", run.both());
    let line = auto_conf_line(&fetched.data(), "restore_command");
    assert!(
        line.contains("get-wal") && line.contains("50%%p"),
        "restore_command: {line}"
    );
    let (server, rows) = start_and_read(&bench, &fetched.data());
    assert_eq!(rows, "1,2,3", "get-wal: the rows up to {target}");
    drop(server);

    let mut shallow = ancestors(&data);
    shallow.extend(ancestors(&staged.data()));
    shallow.extend(ancestors(&fetched.data()));
    shallow.push(postgres_home);
    let found = pwned_files(&[parent.path(), staged.path(), fetched.path()], &shallow);
    assert!(found.is_empty(), "injected commands ran: {found:?}");
}

/// `barman -c CONF ARGS` as `postgres` (cwd /tmp), killed after 5 minutes.
fn barman_with_conf(bench: &Bench, conf: &Path, args: &[&str]) -> Run {
    let (uid, gid) = user_ids(SERVER_OS_USER).unwrap();
    let started = Instant::now();
    let out = Command::new(bench.setup.barman())
        .arg("-c")
        .arg(conf)
        .args(args)
        .uid(uid)
        .gid(gid)
        .current_dir("/tmp")
        .output()
        .unwrap();
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A stand-in for ssh: records its pid, prints a login banner (which the
/// agent protocol refuses at once) and waits, as one process (like ssh),
/// for ten minutes.
fn fake_ssh(dir: &Path) -> (PathBuf, PathBuf) {
    let pids = dir.join("pids");
    let script = dir.join("fake-ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ >> '{}'\necho 'Last login: yesterday'\nexec sleep 600\n",
            pids.display()
        ),
    )
    .unwrap();
    chmod(&script, 0o755).unwrap();
    fs::write(&pids, b"").unwrap();
    chown_to(&pids, SERVER_OS_USER).unwrap();
    (script, pids)
}

/// The pids the fake ssh recorded since the last call, still alive 5
/// seconds after barman returned (killed here, so that none outlives the
/// test).
fn surviving_ssh(pids: &Path) -> Vec<u32> {
    let recorded: Vec<u32> = fs::read_to_string(pids)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    fs::write(pids, b"").unwrap();
    assert!(!recorded.is_empty(), "the fake ssh never ran");
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorded.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive: Vec<u32> = recorded.into_iter().filter(|&p| pid_alive(p)).collect();
    for pid in &alive {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    alive
}

/// The agent sessions of `backup` (rsync over `ssh_command`) and `recover
/// --remote-ssh-command`, and `check`'s ssh probe, run their ssh command
/// with `exec`: when a session fails and barman kills the `sh` it started,
/// no ssh is left behind (with a plain `sh -c "ssh ..."`, dash forks ssh
/// and killing the shell leaves ssh running).
#[test]
fn ssh_commands_are_execed_and_die_with_their_session() {
    let bench = Bench::new(LOCAL_RSYNC, 1);
    let id = backup_id(&bench.backup(&["--wait", "--wait-timeout", "60"]));
    let dir = Dest::new("fake-ssh");
    let (ssh, pids) = fake_ssh(dir.path());
    let conf = fs::read_to_string(bench.setup.home.conf()).unwrap()
        + &format!(
            "\n[fake]\ndescription = fake ssh\nconninfo = {}\nbackup_method = rsync\nssh_command = {}\narchiver = on\n",
            bench.pg.conninfo(),
            ssh.display()
        );
    fs::write(bench.setup.home.conf(), conf).unwrap();

    // Each command's survivors (all three are tried, then reported).
    let mut survivors = Vec::new();

    // backup: the first agent session gets the banner and fails.
    let run = barman_run(&bench, &["backup", "fake"], &[], Duration::from_secs(300));
    assert!(
        !run.status.success(),
        "backup through the fake ssh: {}",
        run.both()
    );
    let left = surviving_ssh(&pids);
    if !left.is_empty() {
        survivors.push(format!("backup left ssh running: pids {left:?}"));
    }

    // recover --remote-ssh-command: the same.
    let ssh_text = ssh.display().to_string();
    let (d, ts) = (dir.data_arg(), dir.ts_arg());
    let run = recover_raw(
        &bench,
        &[
            &id,
            &d,
            "--tablespace",
            &ts,
            "--remote-ssh-command",
            &ssh_text,
        ],
        &[],
    );
    assert!(
        !run.status.success(),
        "recover through the fake ssh: {}",
        run.both()
    );
    assert!(
        run.stderr.contains("Last") || run.stdout.contains("Last"),
        "{}",
        run.both()
    );
    let left = surviving_ssh(&pids);
    if !left.is_empty() {
        survivors.push(format!("recover left ssh running: pids {left:?}"));
    }

    // check: the ssh probe never answers; killed at the check timeout.
    let run = barman_run(
        &bench,
        &["check", "--check-timeout", "3", "fake"],
        &[],
        Duration::from_secs(120),
    );
    assert!(
        run.stdout.contains("ssh: FAILED"),
        "check through the fake ssh: {}",
        run.both()
    );
    let left = surviving_ssh(&pids);
    if !left.is_empty() {
        survivors.push(format!("check left ssh running: pids {left:?}"));
    }
    assert!(survivors.is_empty(), "{survivors:#?}");
}
