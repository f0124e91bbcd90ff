//! Catalog management: `barman delete`, `barman keep`, `barman cron`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use barman_core::Error;
use barman_core::backup::ShellSpawner;
use barman_core::catalog::{BackupId, KeepTarget};
use barman_core::clock::SystemClock;
use barman_core::config::Config;
use barman_core::cron::{CronContext, CronObserver, CronSpawner};
use barman_core::delete::DeleteObserver;
use serde_json::{Value, json};

use crate::args::Format;
use crate::output::Output;

/// Console lines of a delete or a cron run: printed (console) and kept for
/// the JSON document.
struct Lines<'a> {
    out: &'a mut Output,
    collected: Vec<String>,
}

impl Lines<'_> {
    fn print(&mut self, text: &str) {
        tracing::info!("{text}");
        self.collected.push(text.to_owned());
        if let Some(w) = text.strip_prefix("WARNING: ") {
            self.out.warning(w);
        } else if let Some(e) = text.strip_prefix("ERROR: ") {
            self.out.error(e);
        } else {
            let _ = self.out.line(text);
        }
    }
}

impl DeleteObserver for Lines<'_> {
    fn message(&mut self, text: &str) {
        self.print(text);
    }

    fn wal_removed(&mut self, name: &str) {
        self.print(&format!("\t{name}"));
    }
}

impl CronObserver for Lines<'_> {
    fn message(&mut self, text: &str) {
        self.print(text);
    }
}

/// `barman delete SERVER BACKUP_ID`.
pub fn delete(config: &Config, name: &str, backup: &str, out: &mut Output) -> Result<()> {
    let Some((server, info)) = super::server_and_backup(config, name, backup, out)? else {
        return Ok(());
    };
    let id = info.backup_id().clone();
    let mut lines = Lines {
        out,
        collected: Vec::new(),
    };
    let hooks = super::interruptible_hooks(config, &[server])?.server(server)?;
    let result =
        barman_core::delete::delete_backup(config.global(), server, &id, &hooks, &mut lines);
    let collected = std::mem::take(&mut lines.collected);
    match result {
        Ok(report) => {
            if out.format() == Format::Json {
                let deleted: Vec<String> = report.deleted.iter().map(ToString::to_string).collect();
                out.json_result(
                    name,
                    json!({
                        "deleted": deleted,
                        "wals_removed": report.wals_removed,
                        "wal_range": report.wal_range.map(|(a, b)| vec![a, b]),
                        "resized": report.resized.map(|r| r.to_string()),
                        "messages": collected,
                    }),
                );
            }
            Ok(())
        }
        Err(Error::DeleteRefused(message)) => {
            out.warning(&message);
            out.error(&format!("Cannot delete backup ({name} {id})"));
            Ok(())
        }
        Err(e) => {
            out.error(&format!(
                "Failure deleting backup {id} for server {name}: {e}"
            ));
            Ok(())
        }
    }
}

/// What `barman keep` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAction {
    /// `--target full|standalone`.
    Add(KeepTarget),
    /// `-r/--release` (wins over `--target`, as in Barman).
    Release,
    /// `-s/--status`.
    Status,
    /// No action given.
    Missing,
}

impl KeepAction {
    /// Barman's precedence: release, then status, then target.
    pub fn from_flags(target: Option<&str>, release: bool, status: bool) -> Self {
        if release {
            Self::Release
        } else if status {
            Self::Status
        } else {
            match target {
                Some("full") => Self::Add(KeepTarget::Full),
                Some("standalone") => Self::Add(KeepTarget::Standalone),
                _ => Self::Missing,
            }
        }
    }
}

/// `barman keep SERVER BACKUP_ID --target T | --release | --status`.
pub fn keep(
    config: &Config,
    name: &str,
    backup: &str,
    action: KeepAction,
    out: &mut Output,
) -> Result<()> {
    if action == KeepAction::Missing {
        out.error("one of --target, --release or --status is required");
        return Ok(());
    }
    let Some((server, info)) = super::server_and_backup(config, name, backup, out)? else {
        return Ok(());
    };
    let catalog = server.catalog();
    let id = info.backup_id().clone();
    match action {
        KeepAction::Add(target) => match barman_core::keep::keep(&catalog, &id, target) {
            Ok(()) => {
                if out.format() == Format::Json {
                    out.json_result(
                        name,
                        json!({ "backup_id": id.to_string(), "keep": target.as_str() }),
                    );
                }
            }
            Err(Error::KeepRefused(message)) => out.error(&message),
            Err(e) => return Err(e.into()),
        },
        KeepAction::Release => {
            barman_core::keep::release(&catalog, &id)?;
            if out.format() == Format::Json {
                out.json_result(
                    name,
                    json!({ "backup_id": id.to_string(), "keep": "nokeep" }),
                );
            }
        }
        KeepAction::Status => {
            let status =
                barman_core::keep::status(&catalog, &id)?.map_or("nokeep", KeepTarget::as_str);
            if out.format() == Format::Json {
                out.json_result(name, json!({ "keep_status": status }));
            } else {
                out.line(&format!("Server {name}:"))?;
                out.line(&format!("\tKeep: {status}"))?;
            }
        }
        KeepAction::Missing => {}
    }
    Ok(())
}

/// Starts `barman -c CONFIG receive-wal SERVER` in its own process group,
/// detached from cron (no stdin/stdout/stderr: it logs to the log file).
struct SelfSpawner {
    exe: PathBuf,
    config: PathBuf,
}

impl SelfSpawner {
    /// `barman -c CONFIG -q ARGS` in its own process group, detached.
    fn spawn(&self, args: &[&str]) -> barman_core::Result<u32> {
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(&self.exe)
            .arg("-c")
            .arg(&self.config)
            .arg("-q")
            .args(args)
            .stdin(Stdio::null())
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
        self.spawn(&["receive-wal", server])
    }

    fn terminate(&self, pid: u32) -> barman_core::Result<()> {
        terminate_pid(pid)
    }

    fn spawn_sync_backup(&self, server: &str, backup_id: &BackupId) -> barman_core::Result<u32> {
        self.spawn(&["sync-backup", server, backup_id.as_str()])
    }

    fn spawn_sync_wals(&self, server: &str) -> barman_core::Result<u32> {
        self.spawn(&["sync-wals", server])
    }
}

/// Sends SIGTERM to `pid` (through `kill`, no unsafe code here).
pub fn terminate_pid(pid: u32) -> barman_core::Result<()> {
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

/// `barman cron`.
pub fn cron(config: &Config, explicit: Option<&Path>, out: &mut Output) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the barman executable")?;
    let config_path = explicit.map_or_else(|| config.path().to_path_buf(), Path::to_path_buf);
    let spawner = SelfSpawner {
        exe,
        config: std::fs::canonicalize(&config_path).unwrap_or(config_path),
    };
    let servers: Vec<_> = config.servers().collect();
    let hooks = super::interruptible_hooks(config, &servers)?;
    let mut lines = Lines {
        out,
        collected: Vec::new(),
    };
    let mut ctx = CronContext {
        clock: &SystemClock,
        spawner: &spawner,
        shell: Arc::new(ShellSpawner),
        config_path: Some(&spawner.config),
        observer: &mut lines,
        hooks: &hooks,
    };
    let report = barman_core::cron::cron(config.global(), &servers, &mut ctx)?;
    let collected = std::mem::take(&mut lines.collected);
    if out.format() == Format::Json {
        let servers: Vec<Value> = report
            .servers
            .iter()
            .map(|s| {
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
            })
            .collect();
        out.json_result(
            "cron",
            json!({ "skipped_busy": report.skipped_busy, "servers": servers, "messages": collected }),
        );
    }
    Ok(())
}
