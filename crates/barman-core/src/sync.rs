//! Geographical redundancy: a **passive node** keeps a copy of another
//! barman's catalog (BARMAN-BEHAVIOUR.md §9, DESIGN.md §2).
//!
//! A server with `primary_ssh_command` is passive. It never talks to
//! PostgreSQL; it copies what its primary barman has:
//!
//! - [`sync_info`] runs on the primary (`barman sync-info SERVER [LAST_WAL
//!   [LAST_POS]]`): its DONE backups, the xlog.db lines after `LAST_WAL`
//!   ([`seek`]: the `LAST_POS` seek hint, the rescan fallback) and its
//!   configuration, as JSON in Barman's format.
//! - [`primary_node_info`] runs it through `primary_ssh_command` from the
//!   position in `sync-wals.info`, retries without it when the primary
//!   cannot answer from there ("self-recovery"), validates the answer
//!   ([`PrimaryInfo::parse`]) and saves it to `primary.info`.
//! - [`sync_backup`] copies one backup from the primary's
//!   `basebackups_directory` through `barman agent` started over
//!   `primary_ssh_command` and the copy engine (SYNCING → WAITING_FOR_WALS
//!   → DONE once its WALs are here, FAILED on any error), reusing the
//!   newest local backup by hard link or delta and checking every file
//!   against the primary's manifest (blake3).
//! - [`sync_wals`] copies the listed WALs the same way, checks their size,
//!   compression and header, writes them durably, appends their xlog.db
//!   lines (never twice) and records `sync-wals.info`.
//! - `cron` on a passive node ([`crate::cron`]) chains them: `sync-info
//!   --primary`, one `sync-backup` per run, `sync-wals` when there are new
//!   WALs, then the passive node's own retention.
//!
//! Everything a peer sends is validated before use: backup ids, WAL names,
//! the primary's directories (absolute, no `..`), the paths of its
//! manifest (no `..`, no absolute path, tree names `data` or tablespace
//! OIDs, tree roots that are directories), the entries of its listings
//! (inside the tree asked for, bounded), and the agent itself refuses paths
//! that leave its roots and, for `sync-backup`, roots that are links.
//! Copies never get setuid/setgid bits; `sync-info`'s output is bounded;
//! every agent session has the `agent_timeout` inactivity timeout.

pub mod backup;
pub mod info;
pub mod primary;
pub mod seek;
pub mod wals;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use barman_copy::remote::with_ssh_keepalive;
use barman_copy::{AgentFactory, Roots};
use barman_retention::RetentionStatus;

use crate::clock::Clock;
use crate::retention::{catalog_backups, summary_of};
use crate::shared::Spawner;
use crate::{Error, Result};
use barman_catalog::BackupInfo;
use barman_config::{RetentionPolicyMode, ServerConfig};

pub use backup::{SyncBackupReport, sync_backup};
pub use info::{PrimaryConfig, PrimaryInfo, sync_info};
pub use primary::{
    SyncWalsInfo, load_primary_info, load_sync_wals_info, primary_node_info, write_sync_wals_info,
};
pub use seek::Position;
pub use wals::{SyncWalsReport, sync_wals};

/// What a synchronisation needs from its caller.
pub struct SyncContext<'a> {
    /// The clock (local retention).
    pub clock: &'a dyn Clock,
    /// Process spawning: `primary_ssh_command` sessions.
    pub spawner: Arc<dyn Spawner>,
    /// Set to cancel (Ctrl-C / SIGTERM): a backup sync ends FAILED.
    pub cancel: &'a AtomicBool,
    /// The events of the synchronisation ([`crate::event`]), copy
    /// progress included (sent from the copy's worker threads).
    pub observer: &'a mut (dyn crate::event::Observer + Send),
    /// The configuration file, sent to the primary as `-c` with
    /// `forward_config_path = true`.
    pub config_path: Option<&'a Path>,
    /// The command started on the primary to serve files (default
    /// `barman agent`).
    pub agent_command: Option<String>,
}

impl std::fmt::Debug for SyncContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext")
            .field("config_path", &self.config_path)
            .field("agent_command", &self.agent_command)
            .finish_non_exhaustive()
    }
}

/// `primary_ssh_command`, or the refusal of `action` on a server that is
/// not passive.
pub(crate) fn passive_ssh<'s>(server: &'s ServerConfig, action: &str) -> Result<&'s str> {
    server
        .primary_ssh_command
        .as_deref()
        .ok_or_else(|| Error::Sync {
            server: server.name.clone(),
            message: format!("{action} is only for passive nodes (primary_ssh_command is not set)"),
        })
}

/// Agent sessions on the primary serving `roots`, started through
/// `primary_ssh_command` (`<primary_ssh_command> barman agent`, with ssh
/// keepalives), with the `agent_timeout` inactivity timeout.
fn agent_factory(
    server: &ServerConfig,
    ctx: &SyncContext<'_>,
    roots: Roots,
) -> Result<AgentFactory> {
    let ssh = with_ssh_keepalive(passive_ssh(server, "synchronisation")?);
    let agent = ctx.agent_command.as_deref().unwrap_or("barman agent");
    let line = crate::shell::ssh_line(&ssh, agent);
    let spawner = Arc::clone(&ctx.spawner);
    Ok(AgentFactory::new(
        move || spawner.shell(&line),
        roots,
        server.network_compression,
    )
    .timeout(server.agent_timeout()))
}

/// Whether the local retention policy would call the primary's backup
/// `remote` OBSOLETE once copied (Barman's `is_backup_locally_obsolete`):
/// only with a `retention_policy` and `retention_policy_mode = auto`.
pub fn locally_obsolete(
    server: &ServerConfig,
    remote: &BackupInfo,
    clock: &dyn Clock,
) -> Result<bool> {
    let Some(policy) = server.retention_policy.as_ref() else {
        return Ok(false);
    };
    if server.retention_policy_mode != RetentionPolicyMode::Auto {
        return Ok(false);
    }
    let id = remote.backup_id().as_str();
    let mut summaries: Vec<_> = catalog_backups(&server.catalog())?
        .into_iter()
        .map(|b| b.summary)
        .filter(|s| s.id != id)
        .collect();
    summaries.push(summary_of(remote, None)?);
    summaries.sort_by(|a, b| a.id.cmp(&b.id));
    let report = barman_retention::evaluate(
        policy,
        &summaries,
        clock.now().as_second(),
        server.minimum_redundancy,
    );
    Ok(report.status_of(id) == RetentionStatus::Obsolete)
}
