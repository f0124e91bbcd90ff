//! `barman list-processes SERVER` (alias `list-process`).

use anyhow::Result;
use barman_core::config::Config;
use barman_core::listing::list_processes;
use serde_json::{Value, json};

use super::single_server;
use crate::output::Output;

/// Lists the barman processes holding `name`'s locks.
pub fn run(config: &Config, name: &str, out: &mut Output) -> Result<()> {
    let Some(server) = single_server(config, name, out) else {
        return Ok(());
    };
    let processes = list_processes(&config.global().barman_lock_directory, &server.name)?;
    if processes.is_empty() {
        out.line(&format!(
            "No active subprocesses found for server {}.",
            server.name
        ))?;
    } else {
        out.line(&format!("Active subprocesses for server {}:", server.name))?;
        for p in &processes {
            out.line(&format!("{} {}", p.pid, p.task))?;
        }
    }
    let list = processes
        .iter()
        .map(|p| json!({"name": p.task, "pid": p.pid}))
        .collect();
    out.json_result(&server.name, Value::Array(list));
    Ok(())
}
