//! `barman check-wal-archive SERVER [--timeline N]`.

use anyhow::Result;
use barman_core::config::Config;
use barman_core::listing::check_wal_archive;
use serde_json::json;

use super::single_server;
use crate::output::Output;

/// Fails (exit 1) when `name`'s archive holds any WAL (with `timeline`: any
/// WAL on that timeline or a later one), as Barman does.
pub fn run(config: &Config, name: &str, timeline: Option<u32>, out: &mut Output) -> Result<()> {
    let Some(server) = single_server(config, name, out) else {
        return Ok(());
    };
    out.line(&format!("Server {}:", server.name))?;
    out.json_result(&server.name, json!({}));
    let entries = server.catalog().xlogdb().read()?;
    match check_wal_archive(&entries, timeline) {
        Ok(()) => {
            let msg = format!("WAL archive check for server {} passed", server.name);
            out.line(&format!(" - {msg}"))?;
            out.json_result(&server.name, json!(msg));
        }
        Err(reason) => out.error(&format!(
            "WAL archive check failed for server {}: {reason}",
            server.name
        )),
    }
    Ok(())
}
