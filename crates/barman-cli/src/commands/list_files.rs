//! `barman list-files SERVER BACKUP_ID [--target standalone|data|wal|full]`.

use anyhow::Result;
use barman_core::config::Config;
use barman_core::listing::{FilesTarget, list_files};
use serde_json::{Value, json};

use super::server_and_backup;
use crate::output::Output;

/// Prints the files of backup `id` of server `name`, one absolute path per
/// line. Barman prints them as plain messages, so its JSON document has
/// them under `_INFO`; so does ours.
pub fn run(config: &Config, name: &str, id: &str, target: &str, out: &mut Output) -> Result<()> {
    let target: FilesTarget = target.parse()?;
    let Some((server, info)) = server_and_backup(config, name, id, out)? else {
        return Ok(());
    };
    let files = list_files(&server.catalog(), &info, target)?;
    let mut json_files = Vec::with_capacity(files.len());
    for path in &files {
        let text = path.display().to_string();
        out.line(&text)?;
        json_files.push(json!(text));
    }
    out.json_result("_INFO", Value::Array(json_files));
    Ok(())
}
