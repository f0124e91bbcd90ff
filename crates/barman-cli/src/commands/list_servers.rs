//! `barman list-servers`.

use anyhow::Result;
use barman_core::config::Config;
use serde_json::json;

use crate::args::Format;
use crate::output::Output;

/// `<name> - <description>[ (Passive)]`, or names only with `--minimal`.
pub fn run(config: &Config, minimal: bool, out: &mut Output) -> Result<()> {
    for server in config.servers() {
        let description = server.description.clone().unwrap_or_default();
        if out.format() == Format::Json {
            out.json_result(&server.name, json!({ "description": description }));
            continue;
        }
        if minimal {
            out.line(&server.name)?;
        } else {
            let passive = if server.is_passive() {
                " (Passive)"
            } else {
                ""
            };
            let inactive = if server.active { "" } else { " (inactive)" };
            out.line(&format!(
                "{} - {description}{passive}{inactive}",
                server.name
            ))?;
        }
    }
    Ok(())
}
