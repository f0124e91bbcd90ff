//! Hostile and stalled peers (issue 18, items 3 and 4), end to end over a
//! real sshd: a `barman agent` that stops answering mid-copy fails
//! `backup`, `recover --remote-ssh-command` and `sync-backup` within
//! `agent_timeout`, and the backup lock is free again; a primary that
//! serves a backup whose `data` is a link, an agent that lists a file
//! outside the requested tree, and a setuid file: the sync fails naming
//! what it refused (nothing DONE) or drops the setuid bit saying so, and
//! the primary's real backup syncs afterwards.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use barman_testkit::{SERVER_OS_USER, Sshd, chmod, stage_binary};

use crate::archiving::{ClientSide, ok};
use crate::backup::Bench;
use crate::backup_faults::{Good, Master, assert_failed_cleanly, next_backup_is_done};
use crate::passive::{Geo, info};
use crate::recover::Dest;

/// `agent_timeout` of these tests.
const TIMEOUT_SECS: u64 = 8;

/// How long after the first stalled agent the command must have ended:
/// the timeout and a few seconds (generous: the machine is shared).
const ENDED_WITHIN: Duration = Duration::from_secs(TIMEOUT_SECS + 12);

/// Which pipe of the agent stops flowing.
#[derive(Clone, Copy)]
enum Stall {
    /// Its output (replies to a backup or a sync).
    Output,
    /// Its input (a restore's uploads).
    Input,
}

/// A `barman agent` whose output or input stops flowing after some bytes,
/// mid-copy — a hung agent or a frozen connection, as barman sees it. The
/// stalled pipe is held by a `sleep` that records its pid in the
/// directory; dropping this kills those sleeps (the agents then end).
struct StallingAgent {
    dir: tempfile::TempDir,
}

impl StallingAgent {
    /// A script running `agent` (a shell command line) whose `pipe` stops
    /// after `bytes` bytes.
    fn new(agent: &str, pipe: Stall, bytes: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("barman-e2e-stall-")
            .tempdir_in("/tmp")
            .unwrap();
        chmod(dir.path(), 0o777).unwrap();
        let d = dir.path().display();
        // dd passes on each read at once (head's stdio would hold a reply
        // back), then a sleep holds the pipe without reading or writing.
        let hold = format!(
            "{{ dd bs=65536 iflag=count_bytes count={bytes} status=none; exec sh -c 'echo $$ > \"$0/stalled.$$\"; exec sleep 600' '{d}'; }}"
        );
        let line = match pipe {
            Stall::Output => format!("{agent} | {hold}"),
            Stall::Input => format!("{hold} | {agent}"),
        };
        let script = dir.path().join("stalling-agent");
        fs::write(
            &script,
            format!("#!/bin/sh\n# Serves, then stops after {bytes} bytes.\n{line}\n"),
        )
        .unwrap();
        chmod(&script, 0o755).unwrap();
        Self { dir }
    }

    /// The command to give as `BARMAN_AGENT_COMMAND`.
    fn command(&self) -> String {
        self.dir.path().join("stalling-agent").display().to_string()
    }

    /// The pids of the sleeps holding stalled pipes.
    fn holders(&self) -> Vec<u32> {
        fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("stalled."))
            .filter_map(|e| fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect()
    }

    /// Kills the sleeps holding stalled pipes.
    fn release(&self) {
        for pid in self.holders() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for StallingAgent {
    fn drop(&mut self) {
        self.release();
    }
}

/// A directory the `postgres` user can read.
fn script_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("barman-e2e-peer-")
        .tempdir_in("/tmp")
        .unwrap();
    chmod(dir.path(), 0o755).unwrap();
    dir
}

/// How a watched command ended.
struct Watched {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// From the first stall to the command's exit.
    after_stall: Duration,
}

/// Runs `command` (output to files) until it exits (killed after three
/// minutes), noting when `agent` first stalls.
fn run_watching(mut command: Command, agent: &StallingAgent) -> Watched {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .env("BARMAN_AGENT_COMMAND", agent.command())
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut stalled = None;
    let status = loop {
        if stalled.is_none() && !agent.holders().is_empty() {
            stalled = Some(Instant::now());
            eprintln!("an agent stalled {:?} into the run", started.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after three minutes (no timeout?); stderr: {}",
                fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = fs::read_to_string(err.path()).unwrap();
    let stalled = stalled.unwrap_or_else(|| panic!("no agent stalled; stderr: {stderr}"));
    Watched {
        status,
        stdout: fs::read_to_string(out.path()).unwrap(),
        stderr,
        after_stall: stalled.elapsed(),
    }
}

/// Appends `line` to the configuration (its last section is `[pg]`).
fn append_conf(conf: &Path, line: &str) {
    let text = fs::read_to_string(conf).unwrap();
    fs::write(conf, format!("{}\n{line}\n", text.trim_end())).unwrap();
}

/// An agent that stops answering mid-copy: `backup` ends FAILED within
/// `agent_timeout` (plus a few seconds), naming the timeout, with the lock
/// released (the next backup runs and is DONE); `recover
/// --remote-ssh-command` fails the same way.
#[test]
fn a_stalled_agent_fails_backup_and_remote_recover_within_agent_timeout() {
    let sshd = Sshd::builder()
        .user(SERVER_OS_USER)
        .start()
        .expect("start sshd");
    let client = ClientSide::new(&sshd);
    let _master = Master(&client, sshd.port());
    let bench = Bench::rsync(&sshd, &client);
    let agent = format!("{} agent", client.bin("barman").display());
    let good = Good::take(&bench);
    append_conf(
        bench.setup.home.conf(),
        &format!("agent_timeout = {TIMEOUT_SECS}"),
    );
    // About 40 MB to copy, on two sessions: each stops after 4 MB.
    let stall = StallingAgent::new(&agent, Stall::Output, 4 << 20);
    let command = bench
        .setup
        .command(&["-f", "json", "backup", "--reuse-backup", "off", "pg"]);
    let run = run_watching(command, &stall);
    eprintln!(
        "backup with a stalled agent: {} {:?} after the stall; stderr: {}",
        run.status, run.after_stall, run.stderr
    );
    assert!(!run.status.success());
    assert!(
        run.after_stall < ENDED_WITHIN,
        "the backup ended {:?} after the agent stalled (agent_timeout = {TIMEOUT_SECS})",
        run.after_stall
    );
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("backup JSON: {e}: {}", run.stdout));
    assert_eq!(doc["pg"]["status"], "FAILED", "{doc}");
    let (id, error) = assert_failed_cleanly(&bench, &good);
    eprintln!("backup {id}: error={error}");
    assert!(error.starts_with("failure copying files ("), "{error}");
    assert!(error.contains("agent_timeout"), "{error}");
    stall.release();
    // The lock is free: the next backup runs, and is DONE.
    next_backup_is_done(&bench, &good);

    let ssh = format!(
        "{} -p {} {SERVER_OS_USER}@127.0.0.1",
        client.bin("ssh").display(),
        sshd.port()
    );
    let dest = Dest::new("stalled-agent");
    let (data, ts) = (dest.data_arg(), dest.ts_arg());
    let stall = StallingAgent::new(&agent, Stall::Input, 4 << 20);
    let command = bench.setup.command(&[
        "recover",
        "pg",
        &good.id,
        "--remote-ssh-command",
        &ssh,
        &data,
        "--tablespace",
        &ts,
    ]);
    let run = run_watching(command, &stall);
    eprintln!(
        "recover with a stalled agent: {} {:?} after the stall; stderr: {}",
        run.status, run.after_stall, run.stderr
    );
    assert!(!run.status.success());
    assert!(run.after_stall < ENDED_WITHIN, "{:?}", run.after_stall);
    assert!(run.stderr.contains("agent_timeout"), "{}", run.stderr);
}

/// The primary's copy of `id`: `base/<id>` under its catalog.
fn primary_dir(geo: &Geo, id: &str) -> PathBuf {
    geo.primary.backup_dir(id)
}

/// `barman sync-backup pg ID` on the passive with `env`.
fn sync_backup(geo: &Geo, id: &str, env: &[(&str, &str)]) -> std::process::Output {
    geo.passive
        .command(&["sync-backup", "pg", id])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The status and error of `id` on the passive.
fn passive_info(geo: &Geo, id: &str) -> (String, String) {
    let info = info(&geo.passive, id).unwrap_or_default();
    let field = |k: &str| info.get(k).cloned().unwrap_or_default();
    (field("status"), field("error"))
}

/// A sync that exited with `status` failed: FAILED with an error
/// containing each of `words`, no copy left behind.
fn assert_sync_refused(geo: &Geo, id: &str, status: ExitStatus, words: &[&str]) {
    let (state, error) = passive_info(geo, id);
    eprintln!("sync-backup {id}: {status}, {state}: {error}");
    assert!(!status.success(), "the sync succeeded: {state} {error}");
    assert_eq!(state, "FAILED", "{error}");
    for word in words {
        assert!(error.contains(word), "`{word}` not in: {error}");
    }
    assert!(
        !geo.passive.dir("base").join(id).exists(),
        "a partial copy was left"
    );
}

/// A compromised primary: its backup's `data` made a link to another
/// directory, an agent listing a file outside the requested tree, a
/// stalled agent, a setuid file. The first three fail the sync (FAILED,
/// named, nothing copied), the last is copied without its setuid bit (and
/// the log says so), which is the primary's real backup syncing after all
/// those failures.
#[test]
fn passive_sync_refuses_a_hostile_primary_then_syncs_the_real_backup() {
    let geo = Geo::new(1, &format!("agent_timeout = {TIMEOUT_SECS}\n"));
    let id = geo.primary.backup(&["--wait", "--wait-timeout", "120"])["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &geo.passive.run(&["sync-info", "--primary", "pg"]),
        "sync-info --primary",
    );
    let dir = primary_dir(&geo, &id);
    let aside = script_dir();

    // 1. `base/<id>/data` is a link to another directory.
    let moved = aside.path().join("data");
    fs::rename(dir.join("data"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, dir.join("data")).unwrap();
    let out = sync_backup(&geo, &id, &[]);
    assert_sync_refused(&geo, &id, out.status, &["data", "symbolic link"]);
    fs::remove_file(dir.join("data")).unwrap();
    fs::rename(&moved, dir.join("data")).unwrap();

    // 2. An agent that adds a file of another tree to the listing (the
    // primary's manifest set aside: the sync lists the trees).
    let manifest = dir.join("manifest");
    let kept_manifest = aside.path().join("manifest");
    fs::rename(&manifest, &kept_manifest).unwrap();
    let hostile =
        stage_binary(Path::new(env!("CARGO_BIN_EXE_hostile_agent")), aside.path()).unwrap();
    let command = format!(
        "{} backup/data/PG_VERSION 3 barman agent",
        hostile.display()
    );
    let out = sync_backup(&geo, &id, &[("BARMAN_AGENT_COMMAND", command.as_str())]);
    assert_sync_refused(
        &geo,
        &id,
        out.status,
        &["`backup/data/PG_VERSION`", "outside the requested tree"],
    );
    fs::rename(&kept_manifest, &manifest).unwrap();

    // 3. An agent that stops answering mid-copy.
    let stall = StallingAgent::new("barman agent", Stall::Output, 4 << 20);
    let run = run_watching(geo.passive.command(&["sync-backup", "pg", &id]), &stall);
    eprintln!(
        "sync-backup with a stalled agent: {} {:?} after the stall; stderr: {}",
        run.status, run.after_stall, run.stderr
    );
    assert!(run.after_stall < ENDED_WITHIN, "{:?}", run.after_stall);
    assert_sync_refused(&geo, &id, run.status, &["agent_timeout"]);
    drop(stall);

    // 4. A setuid file, recorded as such in the primary's manifest.
    let version = dir.join("data/PG_VERSION");
    fs::set_permissions(&version, fs::Permissions::from_mode(0o4755)).unwrap();
    let text = fs::read_to_string(&manifest).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            if line.contains("\"path\":\"data/PG_VERSION\"") {
                let mut entry: serde_json::Value = serde_json::from_str(line).unwrap();
                entry["mode"] = 0o4755.into();
                entry.to_string()
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_ne!(
        edited.join("\n"),
        text.trim_end(),
        "PG_VERSION not in the manifest"
    );
    fs::write(&manifest, edited.join("\n") + "\n").unwrap();
    let out = sync_backup(&geo, &id, &[]);
    let (status, error) = passive_info(&geo, &id);
    eprintln!("sync-backup of the setuid backup: {status} {error} {out:?}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        status == "WAITING_FOR_WALS" || status == "DONE",
        "{status}: {error}"
    );
    let copy = geo.passive.dir("base").join(&id).join("data/PG_VERSION");
    let mode = fs::metadata(&copy).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "copied with mode {mode:o}");
    let log = geo.passive.home.log();
    assert!(
        log.lines()
            .any(|l| l.contains("data/PG_VERSION") && l.contains("setuid/setgid bits dropped")),
        "no log line about the setuid bit"
    );
    fs::set_permissions(&version, fs::Permissions::from_mode(0o600)).unwrap();
}
