//! `barman receive-wal`.

use anyhow::{Result, bail};
use barman_core::catalog::{LockKind, read_owner};
use barman_core::config::Config;
use barman_core::event::{Event, Observer};
use barman_core::receive_wal::{ReceiveAction, receive_wal as run};

use super::backup::cancel_flag;
use crate::output::Output;

/// The command line of receive-wal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// `--create-slot`.
    pub create_slot: bool,
    /// `--if-not-exists`.
    pub if_not_exists: bool,
    /// `--drop-slot`.
    pub drop_slot: bool,
    /// `--reset`.
    pub reset: bool,
    /// `--stop`.
    pub stop: bool,
}

struct Lines<'a> {
    out: &'a mut Output,
}

impl Observer for Lines<'_> {
    fn event(&mut self, event: &Event) {
        if let Event::WalStreamed { name } = event {
            tracing::info!("streamed {name}");
        }
        for text in crate::render::lines(event, crate::render::Style::Command) {
            tracing::info!("{text}");
            let _ = self.out.line(&text);
        }
    }
}

/// `barman receive-wal [--create-slot [--if-not-exists]|--drop-slot|--reset|--stop] SERVER`.
pub fn receive_wal(config: &Config, name: &str, flags: Flags, out: &mut Output) -> Result<()> {
    let actions = [flags.create_slot, flags.drop_slot, flags.reset, flags.stop]
        .iter()
        .filter(|f| **f)
        .count();
    if actions > 1 {
        bail!("--create-slot, --drop-slot, --reset and --stop are mutually exclusive");
    }
    if flags.if_not_exists && !flags.create_slot {
        bail!("--if-not-exists needs --create-slot");
    }
    let Some(server) = config.server(name) else {
        out.error(&format!("Unknown server '{name}'"));
        return Ok(());
    };
    if flags.stop {
        let lock =
            LockKind::ReceiveWal(server.name.clone()).path(&config.global().barman_lock_directory);
        match read_owner(&lock) {
            Some(pid) => {
                let status = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()?;
                if status.success() {
                    out.line(&format!(
                        "Stopped receive-wal of server '{name}' (pid {pid})"
                    ))?;
                } else {
                    out.error(&format!(
                        "Cannot stop receive-wal of server '{name}' (pid {pid})"
                    ));
                }
            }
            None => out.line(&format!(
                "No receive-wal process running for server '{name}'"
            ))?,
        }
        return Ok(());
    }
    if server.is_passive() {
        out.error(&format!(
            "server '{name}' is passive: receive-wal runs on the primary barman"
        ));
        return Ok(());
    }
    if !flags.create_slot && !flags.drop_slot && !server.streaming_archiver {
        out.error(&format!(
            "Unable to start receive-wal: streaming_archiver is off for server '{name}'"
        ));
        return Ok(());
    }
    let action = if flags.create_slot {
        ReceiveAction::CreateSlot {
            if_not_exists: flags.if_not_exists,
        }
    } else if flags.drop_slot {
        ReceiveAction::DropSlot
    } else if flags.reset {
        ReceiveAction::Reset
    } else {
        ReceiveAction::Stream
    };
    let cancel = cancel_flag()?;
    let mut lines = Lines { out };
    if let Err(e) = run(config.global(), server, action, &mut lines, &cancel) {
        out.error(&format!("receive-wal {name}: {e}"));
    }
    Ok(())
}
