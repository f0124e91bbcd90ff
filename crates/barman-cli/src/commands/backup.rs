//! `barman backup`, `barman check-backup` and `barman agent`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use barman_core::backup::{self as core_backup, BackupContext, BackupOptions};
use barman_core::clock::SystemClock;
use barman_core::config::{Config, ReuseBackup};
use barman_core::event::{Event, Observer};
use barman_core::shared::ShellSpawner;
use barman_core::{BackupStatus, Error};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::{select_servers, server_and_backup};
use crate::args::{Cli, Command, Format};
use crate::output::Output;

/// `barman agent`: serve the copy protocol on stdin/stdout until EOF.
pub fn agent(cli: &Cli) -> Result<()> {
    // Logs go to stderr only (stdout is the protocol channel); ssh carries
    // stderr back to the barman host, which keeps the last lines for errors.
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    crate::logging::init(None, level, &barman_core::config::LogFormat::default())?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    barman_copy::agent::serve(stdin, stdout)?;
    Ok(())
}

/// The observer of a copying command (backup, recover, sync): its console
/// lines, to stdout (console) or collected (JSON), and the progress bar
/// (on a TTY, console format only) driven by the copy's events.
pub(super) struct Lines<'a> {
    pub(super) out: &'a mut Output,
    pub(super) collected: Vec<String>,
    bar: Option<ProgressBar>,
    files_done: u64,
    files_total: u64,
}

impl Lines<'_> {
    /// Prints one console line (a `WARNING: ` one as a warning) and keeps
    /// it for the JSON document.
    pub(super) fn message(&mut self, text: &str) {
        tracing::info!("{text}");
        self.collected.push(text.to_owned());
        let print = |out: &mut Output| {
            if let Some(w) = text.strip_prefix("WARNING: ") {
                out.warning(w);
            } else {
                let _ = out.line(text);
            }
        };
        match &self.bar {
            Some(bar) => bar.suspend(|| print(self.out)),
            None => print(self.out),
        }
    }

    /// Removes the progress bar (the command's copy is over).
    pub(super) fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Moves the progress bar for a copy event; false for other events.
    fn progress(&mut self, event: &Event) -> bool {
        match *event {
            Event::CopyPlanned { files, bytes } => {
                self.files_total = files;
                if let Some(bar) = &self.bar {
                    bar.set_length(bytes);
                    bar.set_message(format!("0/{files} files"));
                }
            }
            Event::BytesCopied { bytes } => {
                if let Some(bar) = &self.bar {
                    bar.inc(bytes);
                }
            }
            Event::FileCopied { .. } => {
                self.files_done += 1;
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{}/{} files", self.files_done, self.files_total));
                }
            }
            _ => return false,
        }
        true
    }
}

impl Observer for Lines<'_> {
    fn event(&mut self, event: &Event) {
        if self.progress(event) {
            return;
        }
        for line in crate::render::lines(event, crate::render::Style::Command) {
            self.message(&line);
        }
    }
}

/// The observer of a copying command, with a progress bar on a TTY in
/// the console format.
pub(super) fn copy_lines(out: &mut Output) -> Lines<'_> {
    let enabled = out.format() == Format::Console && std::io::stderr().is_terminal();
    let bar = enabled.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    Lines {
        out,
        collected: Vec::new(),
        bar,
        files_done: 0,
        files_total: 0,
    }
}

/// Ctrl-C and SIGTERM set the flag: the backup stops and is marked FAILED.
pub(super) fn cancel_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

fn options(command: &Command) -> Result<(BackupOptions, &[String], bool)> {
    let Command::Backup {
        reuse_backup,
        immediate_checkpoint,
        no_immediate_checkpoint,
        jobs,
        bwlimit,
        retry_times,
        retry_sleep,
        no_retry,
        wait,
        wait_timeout,
        name,
        incremental,
        checksum,
        dry_run,
        servers,
        ..
    } = command
    else {
        bail!("not a backup command");
    };
    let reuse = match reuse_backup.as_deref() {
        None => None,
        Some(v) => Some(ReuseBackup::parse(v).map_err(|_| {
            anyhow::anyhow!("invalid --reuse-backup value `{v}` (expected off, copy or link)")
        })?),
    };
    if let Some(n) = name
        && (n.trim().is_empty() || n.contains('\n'))
    {
        bail!("invalid --name: it must be one non-empty line");
    }
    let immediate = if *immediate_checkpoint {
        Some(true)
    } else if *no_immediate_checkpoint {
        Some(false)
    } else {
        None
    };
    Ok((
        BackupOptions {
            reuse,
            immediate_checkpoint: immediate,
            jobs: *jobs,
            bwlimit: *bwlimit,
            name: name.clone(),
            wait: *wait,
            wait_timeout: wait_timeout.filter(|&t| t > 0).map(Duration::from_secs),
            retry_times: if *no_retry { Some(0) } else { *retry_times },
            retry_sleep: *retry_sleep,
            checksum: *checksum,
            agent_command: std::env::var("BARMAN_AGENT_COMMAND").ok(),
            incremental: incremental.clone(),
        },
        servers,
        *dry_run,
    ))
}

/// `barman backup SERVER...|all`.
pub fn backup(config: &Config, command: &Command, out: &mut Output) -> Result<()> {
    let (options, names, dry_run) = options(command)?;
    if dry_run {
        for server in select_servers(config, names, out) {
            let plan = core_backup::plan_backup(server, &options, Arc::new(ShellSpawner))?;
            out.line(&format!("Copy plan for server {}:", server.name))?;
            out.line(&plan.to_string())?;
            out.json_result(&server.name, json!({"plan": plan.summary().to_string()}));
        }
        return Ok(());
    }
    let cancel = cancel_flag()?;
    let hook_setup = super::hook_setup(config, Some(Arc::clone(&cancel)));
    for server in select_servers(config, names, out) {
        if server.is_passive() {
            out.line(&format!("Skipping passive server '{}'", server.name))?;
            continue;
        }
        if cancel.load(Ordering::SeqCst) {
            out.error("interrupted");
            break;
        }
        let mut lines = copy_lines(out);
        let hooks = hook_setup.server(server)?;
        let mut ctx = BackupContext {
            clock: &SystemClock,
            observer: &mut lines,
            cancel: &cancel,
            spawner: Arc::new(ShellSpawner),
            hooks: &hooks,
        };
        let result = core_backup::backup(config.global(), server, &options, &mut ctx);
        lines.finish_bar();
        let collected = std::mem::take(&mut lines.collected);
        match result {
            Ok(report) => {
                let mut doc = report.info.to_json()?;
                if let Value::Object(map) = &mut doc {
                    map.insert("backup_id".into(), json!(report.info.backup_id().as_str()));
                    if let Some(copy) = &report.copy {
                        let c = &copy.report;
                        map.insert(
                            "copy".into(),
                            json!({
                                "files": c.files,
                                "files_fetched": c.files_fetched,
                                "files_linked": c.files_linked,
                                "files_copied_locally": c.files_copied_locally,
                                "files_delta": c.files_delta,
                                "bytes_total": c.bytes_total,
                                "bytes_written": c.bytes_written,
                                "bytes_transferred": c.wire_bytes,
                                "bytes_linked": c.bytes_linked,
                                "vanished": c.vanished,
                                "workers": c.workers,
                                "copy_seconds": c.elapsed.as_secs_f64(),
                                "reused_backup": copy.previous.as_ref().map(ToString::to_string),
                            }),
                        );
                    }
                    map.insert("messages".into(), json!(collected));
                }
                out.json_result(&server.name, doc);
            }
            Err(Error::BackupFailed { id, message, .. }) => {
                out.json_result(
                    &server.name,
                    json!({"backup_id": id, "status": "FAILED", "error": message, "messages": collected}),
                );
                out.error(&format!(
                    "Backup {id} of server '{}' failed: {message}",
                    server.name
                ));
            }
            Err(e) => {
                out.json_result(
                    &server.name,
                    json!({"status": "REFUSED", "error": e.to_string()}),
                );
                if matches!(e, Error::IncrementalRefused(_)) {
                    // Barman's words: `failed to start backup: <why>`.
                    out.error(&e.to_string());
                } else {
                    out.error(&format!("Cannot back up server '{}': {e}", server.name));
                }
            }
        }
    }
    Ok(())
}

/// `barman check-backup SERVER BACKUP_ID`.
pub fn check_backup(config: &Config, name: &str, id: &str, out: &mut Output) -> Result<()> {
    let Some((server, info)) = server_and_backup(config, name, id, out)? else {
        return Ok(());
    };
    let status = barman_core::shared::check_backup(config.global(), server, info.backup_id())?;
    let info = server.catalog().backup(info.backup_id())?;
    out.json_result(
        name,
        json!({"backup_id": info.backup_id().as_str(), "status": status.to_string(), "error": info.error()}),
    );
    match status {
        BackupStatus::Failed => out.error(&format!(
            "Backup {} of server '{name}' is FAILED: {}",
            info.backup_id(),
            info.error().unwrap_or("unknown error")
        )),
        other => out.line(&format!(
            "Backup {} of server '{name}': {other}",
            info.backup_id()
        ))?,
    }
    Ok(())
}

/// `barman generate-manifest SERVER BACKUP_ID`.
pub fn generate_manifest(config: &Config, name: &str, id: &str, out: &mut Output) -> Result<()> {
    let Some((server, info)) = server_and_backup(config, name, id, out)? else {
        return Ok(());
    };
    let path = core_backup::pg_manifest::generate(&server.layout(), &info)?;
    out.line(&format!(
        "Backup manifest for backup '{}' successfully generated: {}",
        info.backup_id(),
        path.display()
    ))?;
    out.json_result(
        name,
        json!({"backup_id": info.backup_id().as_str(), "manifest": path}),
    );
    Ok(())
}

/// `barman verify-backup SERVER BACKUP_ID`: `pg_verifybackup -n` on the
/// backup's data directory (WAL completeness is check-backup's job).
pub fn verify_backup(config: &Config, name: &str, id: &str, out: &mut Output) -> Result<()> {
    let Some((server, info)) = server_and_backup(config, name, id, out)? else {
        return Ok(());
    };
    let data = server.layout().backup_dir(info.backup_id()).join("data");
    if !data
        .join(core_backup::pg_manifest::BACKUP_MANIFEST)
        .is_file()
    {
        bail!(
            "backup {} has no backup_manifest: run `barman generate-manifest {name} {}` first",
            info.backup_id(),
            info.backup_id()
        );
    }
    let major = info.version()?.unwrap_or(0) / 10000;
    let tool = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([std::path::PathBuf::from(format!(
            "/usr/lib/postgresql/{major}/bin"
        ))])
        .map(|d| d.join("pg_verifybackup"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!("pg_verifybackup not found in PATH nor /usr/lib/postgresql/{major}/bin")
        })?;
    let result = std::process::Command::new(&tool)
        .arg("-n")
        .arg(&data)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    out.json_result(
        name,
        json!({"backup_id": info.backup_id().as_str(), "ok": result.status.success(), "output": text.trim()}),
    );
    if result.status.success() {
        out.line(text.trim())?;
    } else {
        out.error(&format!(
            "pg_verifybackup failed for backup {}: {}",
            info.backup_id(),
            text.trim()
        ));
    }
    Ok(())
}
