//! `barman show-servers`.

use anyhow::Result;
use barman_core::config::Config;

use crate::args::Format;
use crate::commands::{python_text, select_servers};
use crate::output::Output;

/// Prints each selected server's effective configuration, keys sorted.
pub fn run(config: &Config, names: &[String], out: &mut Output) -> Result<()> {
    for server in select_servers(config, names, out) {
        let cfg = server.to_json();
        if out.format() == Format::Json {
            out.json_result(&server.name, cfg);
            continue;
        }
        out.line(&format!("Server {}:", server.name))?;
        if let serde_json::Value::Object(map) = &cfg {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                out.line(&format!("\t{k}: {}", python_text(&map[k])))?;
            }
        }
    }
    Ok(())
}
