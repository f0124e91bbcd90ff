//! Catalog management: `barman delete`, `barman keep` (`barman cron` is
//! in [`super::cron`]).

use anyhow::Result;
use barman_core::Error;
use barman_core::catalog::KeepTarget;
use barman_core::config::Config;
use barman_core::event::{Event, Observer};
use serde_json::json;

use crate::args::Format;
use crate::output::Output;
use crate::render::Style;

/// Console lines of a delete or a cron run: printed (console) and kept for
/// the JSON document.
pub(super) struct Lines<'a> {
    pub(super) out: &'a mut Output,
    pub(super) collected: Vec<String>,
    /// How Barman words the events (cron words a few differently).
    pub(super) style: Style,
}

impl Lines<'_> {
    /// Prints one console line (`WARNING: `/`ERROR: ` ones as warnings
    /// and errors) and keeps it for the JSON document.
    pub(super) fn message(&mut self, text: &str) {
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

impl Observer for Lines<'_> {
    fn event(&mut self, event: &Event) {
        for line in crate::render::lines(event, self.style) {
            self.message(&line);
        }
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
        style: Style::Command,
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
