//! `barman cron`: every server's maintenance in a process of its own.
//!
//! The cron process takes the global `.cron.lock` and starts, all at once,
//! one `barman cron --worker SERVER` per server that is not disabled (as
//! Barman starts an `archive-wal` subprocess per server). A worker runs the
//! server's steps ([`barman_core::cron::cron_server`], under the server's
//! cron lock) and writes each console line, then its report, as a JSON line
//! on its stdout: an unlinked temporary file, so a worker never blocks on
//! (nor dies of) a pipe nobody reads any more. The cron relays the lines in
//! server name order. It waits `--max-wait` seconds at most in all: a
//! worker still running then (stuck on a lock another process holds, a
//! long delete) is reported and left to go on in the background. It keeps
//! its server's cron lock, so later crons skip that server until it ends,
//! and the global lock is released: one server's stall never delays the
//! others, nor the next cron.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use barman_core::Error;
use barman_core::catalog::BackupId;
use barman_core::clock::SystemClock;
use barman_core::config::{Config, ServerConfig};
use barman_core::cron::{
    CronContext, CronSpawner, ServerCronReport, cron_server, cron_servers, global_lock,
};
use barman_core::event::{Event, Observer};
use barman_core::shared::ShellSpawner;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::catalog::Lines;
use crate::args::{Cli, Format};
use crate::output::Output;

/// At most this much of a worker's stdout or stderr is read (a retention
/// delete lists every WAL it removes).
const MAX_WORKER_OUTPUT: u64 = 64 << 20;

/// One line a worker writes on its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WorkerLine {
    /// A console line of the server's cron steps.
    Message(String),
    /// The server's report, as the JSON document shows it.
    Report(Value),
}

/// Starts the `barman` processes cron needs, with this configuration.
struct SelfSpawner {
    exe: PathBuf,
    config: PathBuf,
}

impl SelfSpawner {
    fn new(config: &Config, explicit: Option<&Path>) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find the barman executable")?;
        let path = explicit.map_or_else(|| config.path().to_path_buf(), Path::to_path_buf);
        Ok(Self {
            exe,
            config: std::fs::canonicalize(&path).unwrap_or(path),
        })
    }

    /// `barman -c CONFIG ARGS`, stdin closed.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("-c").arg(&self.config).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `barman -c CONFIG -q ARGS` in its own process group, detached (no
    /// stdin/stdout/stderr: it logs to the log file).
    fn spawn_detached(&self, args: &[&str]) -> barman_core::Result<u32> {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = self.command(&["-q"]);
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("cannot start", &self.exe, e))?;
        Ok(child.id())
    }
}

impl CronSpawner for SelfSpawner {
    fn spawn_receive_wal(&self, server: &str) -> barman_core::Result<u32> {
        self.spawn_detached(&["receive-wal", server])
    }

    fn terminate(&self, pid: u32) -> barman_core::Result<()> {
        terminate_pid(pid)
    }

    fn spawn_sync_backup(&self, server: &str, backup_id: &BackupId) -> barman_core::Result<u32> {
        self.spawn_detached(&["sync-backup", server, backup_id.as_str()])
    }

    fn spawn_sync_wals(&self, server: &str) -> barman_core::Result<u32> {
        self.spawn_detached(&["sync-wals", server])
    }
}

/// Sends SIGTERM to `pid` (through `kill`, no unsafe code here).
fn terminate_pid(pid: u32) -> barman_core::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::io("cannot run", "kill", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Timeout(format!(
            "kill -TERM {pid} exited with {status}"
        )))
    }
}

/// A server's report in cron's JSON document.
fn server_json(s: &ServerCronReport) -> Value {
    json!({
        "server": s.server,
        "skipped_busy": s.skipped_busy,
        "archived": s.archived,
        "receive_wal_started": s.receive_wal_started,
        "receive_wal_stopped": s.receive_wal_stopped,
        "failed_interrupted": s.failed_interrupted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "checked": s.checked.as_ref().map(|(id, st)| json!({"backup_id": id.to_string(), "status": st.as_str()})),
        "deleted": s.deleted.deleted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "wals_removed": s.deleted.wals_removed,
        "primary_info": s.primary_info,
        "sync_backup_started": s.sync_backup_started.as_ref().map(|(id, pid)| json!({"backup_id": id.to_string(), "pid": pid})),
        "sync_wals_started": s.sync_wals_started,
        "errors": s.errors,
    })
}

/// `barman cron`: the global lock, one worker per server, their lines.
pub fn run(config: &Config, cli: &Cli, max_wait: u64, out: &mut Output) -> Result<()> {
    let spawner = SelfSpawner::new(config, cli.config.as_deref())?;
    let servers: Vec<&ServerConfig> = config.servers().collect();
    let mut lines = Lines {
        out,
        collected: Vec::new(),
        style: crate::render::Style::Cron,
    };
    let lock = global_lock(config.global(), &mut lines)?;
    let mut reports = Vec::new();
    if lock.is_some() {
        let deadline = Instant::now() + Duration::from_secs(max_wait);
        let log_args = log_args(cli);
        let workers: Vec<_> = cron_servers(&servers)
            .into_iter()
            .map(|s| (s.name.clone(), Worker::start(&spawner, &s.name, &log_args)))
            .collect();
        for (name, worker) in workers {
            reports.push(match worker {
                Ok(worker) => worker.finish(deadline, max_wait, &mut lines)?,
                Err(e) => {
                    let text = format!("cannot start the cron steps of server {name}: {e}");
                    lines.message(&format!("ERROR: {text}"));
                    json!({ "server": name, "errors": [text] })
                }
            });
        }
    }
    let skipped_busy = lock.is_none();
    drop(lock);
    let collected = std::mem::take(&mut lines.collected);
    if out.format() == Format::Json {
        out.json_result(
            "cron",
            json!({ "skipped_busy": skipped_busy, "servers": reports, "messages": collected }),
        );
    }
    Ok(())
}

/// The logging options this cron was given, for its workers.
fn log_args(cli: &Cli) -> Vec<String> {
    let mut args = Vec::new();
    if cli.debug {
        args.push("-d".to_owned());
    }
    if let Some(level) = cli.log_level {
        args.push("--log-level".to_owned());
        args.push(format!("{level:?}").to_uppercase());
    }
    args
}

/// A running `barman cron --worker SERVER`.
struct Worker {
    server: String,
    child: Child,
    stdout: File,
    stderr: File,
}

impl Worker {
    fn start(spawner: &SelfSpawner, server: &str, log_args: &[String]) -> std::io::Result<Self> {
        let stdout = tempfile::tempfile()?;
        let stderr = tempfile::tempfile()?;
        let mut cmd = spawner.command(&[]);
        cmd.args(log_args)
            .args(["cron", "--worker", server])
            .stdout(stdout.try_clone()?)
            .stderr(stderr.try_clone()?);
        let child = cmd.spawn()?;
        tracing::debug!("cron steps of server {server}: pid {}", child.id());
        Ok(Self {
            server: server.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    /// Waits for the worker until `deadline`, relays its lines and returns
    /// its report; a worker still running is left to go on, said so.
    fn finish(mut self, deadline: Instant, max_wait: u64, lines: &mut Lines<'_>) -> Result<Value> {
        let status = wait_until(&mut self.child, deadline);
        let name = &self.server;
        let mut report = None;
        for line in complete_lines(&self.stdout) {
            match serde_json::from_str::<WorkerLine>(&line) {
                Ok(WorkerLine::Message(text)) => {
                    lines.collected.push(text.clone());
                    lines.out.relay(&text)?;
                }
                Ok(WorkerLine::Report(value)) => report = Some(value),
                Err(_) => {
                    lines.collected.push(line.clone());
                    lines.out.relay(&line)?;
                }
            }
        }
        let stderr = read_capped(&self.stderr);
        if !stderr.is_empty() {
            let _ = std::io::stderr().write_all(&stderr);
        }
        Ok(match (status, report) {
            (Some(status), Some(report)) if status.success() => report,
            (Some(status), report) => {
                let text = format!("the cron steps of server {name} failed ({status})");
                lines.message(&format!("ERROR: {text}"));
                report.unwrap_or_else(|| json!({ "server": name, "errors": [text] }))
            }
            (None, _) => {
                let pid = self.child.id();
                lines.message(&format!(
                    "WARNING: the cron steps of server {name} are still running after \
                     {max_wait} seconds (pid {pid}): they go on in the background, and \
                     later crons skip the server until they end"
                ));
                json!({ "server": name, "still_running": pid })
            }
        })
    }
}

/// The child's exit status, or `None` if it still runs at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

/// What `file` holds (a worker may still write to it: read at offsets,
/// without moving the offset it shares), at most [`MAX_WORKER_OUTPUT`].
fn read_capped(file: &File) -> Vec<u8> {
    let len = file
        .metadata()
        .map_or(0, |m| m.len())
        .min(MAX_WORKER_OUTPUT);
    let mut buf = vec![0; usize::try_from(len).unwrap_or(0)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    buf.truncate(filled);
    buf
}

/// The complete (newline-terminated) lines of a worker's stdout.
fn complete_lines(file: &File) -> Vec<String> {
    let bytes = read_capped(file);
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `barman cron --worker SERVER`: the server's cron steps, each console
/// line and then the report written to stdout as [`WorkerLine`]s.
pub fn worker(config: &Config, explicit: Option<&Path>, name: &str) -> Result<()> {
    let server = config
        .server(name)
        .with_context(|| format!("Unknown server '{name}'"))?;
    let spawner = SelfSpawner::new(config, explicit)?;
    let hooks = super::interruptible_hooks(config, &[server])?;
    let mut lines = WorkerLines;
    let mut ctx = CronContext {
        clock: &SystemClock,
        spawner: &spawner,
        shell: Arc::new(ShellSpawner),
        config_path: Some(&spawner.config),
        observer: &mut lines,
        hooks: &hooks,
    };
    let report = cron_server(config.global(), server, &mut ctx);
    emit(&WorkerLine::Report(server_json(&report)))?;
    Ok(())
}

/// A worker's console lines: logged, and written for its cron.
struct WorkerLines;

impl Observer for WorkerLines {
    fn event(&mut self, event: &Event) {
        for text in crate::render::lines(event, crate::render::Style::Cron) {
            tracing::info!("{text}");
            if let Err(e) = emit(&WorkerLine::Message(text)) {
                tracing::warn!("cannot report to cron: {e}");
            }
        }
    }
}

fn emit(line: &WorkerLine) -> std::io::Result<()> {
    let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_round_trip_as_one_json_line_each() {
        let message = serde_json::to_string(&WorkerLine::Message(
            "WARNING: a\nmulti-line \"message\"".into(),
        ))
        .unwrap();
        assert!(!message.contains('\n'));
        assert!(message.starts_with("{\"message\":"), "{message}");
        match serde_json::from_str(&message).unwrap() {
            WorkerLine::Message(text) => assert_eq!(text, "WARNING: a\nmulti-line \"message\""),
            WorkerLine::Report(_) => panic!("not a message"),
        }
        let report = serde_json::to_string(&WorkerLine::Report(json!({"server": "pg"}))).unwrap();
        assert_eq!(report, r#"{"report":{"server":"pg"}}"#);
    }

    #[test]
    fn only_complete_lines_are_read_and_the_shared_offset_stays() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"{\"message\":\"one\"}\n{\"message\":\"tw")
            .unwrap();
        assert_eq!(complete_lines(&file), ["{\"message\":\"one\"}"]);
        // The writer goes on where it was.
        file.write_all(b"o\"}\n").unwrap();
        assert_eq!(
            complete_lines(&file),
            ["{\"message\":\"one\"}", "{\"message\":\"two\"}"]
        );
    }

    #[test]
    fn a_worker_still_running_at_the_deadline_is_left_running() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let start = Instant::now();
        assert!(wait_until(&mut child, start + Duration::from_millis(200)).is_none());
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the worker was stopped"
        );
        child.kill().unwrap();
        let mut done = Command::new("true").spawn().unwrap();
        let status = wait_until(&mut done, Instant::now() + Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()));
    }
}
