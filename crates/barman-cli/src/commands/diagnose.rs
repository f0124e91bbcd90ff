//! `barman diagnose`: one JSON document with the global configuration, system
//! facts, and for each server its configuration, catalog and WAL summary, in
//! Barman's layout (`global`, `models`, `servers.<name>.{config,backups,wals,...}`).

use std::process::Command;

use anyhow::Result;
use barman_core::config::{Config, ServerConfig};
use serde_json::{Map, Value, json};

use crate::args::Format;
use crate::output::Output;

/// Builds and prints the diagnose document.
pub fn run(config: &Config, show_config_source: bool, out: &mut Output) -> Result<()> {
    if show_config_source {
        out.warning("--show-config-source is not supported yet: configuration values are shown without their source");
    }
    let mut servers = Map::new();
    for server in config.servers() {
        servers.insert(server.name.clone(), server_section(server));
        // The document is still printed (it is what one debugs with), but
        // an option barman-rs would ignore fails the command.
        if let Err(e) = server.refuse_not_implemented() {
            out.error(&e.to_string());
        }
    }
    let mut models = Map::new();
    for model in config.models() {
        let opts: Map<String, Value> = model
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        models.insert(model.name.clone(), json!({ "config": opts }));
    }
    let global_config = config.global().to_json();
    let doc = json!({
        "global": { "config": global_config, "system_info": system_info() },
        "models": models,
        "servers": servers,
    });
    match out.format() {
        Format::Json => {
            if let Value::Object(map) = doc {
                for (k, v) in map {
                    out.json_result(&k, v);
                }
            }
        }
        Format::Console => out.line(&pretty(&doc)?)?,
    }
    Ok(())
}

/// JSON with 4-space indentation, as Barman prints it.
fn pretty(v: &Value) -> Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser)?;
    Ok(String::from_utf8(buf)?)
}

fn server_section(server: &ServerConfig) -> Value {
    let catalog = server.catalog();
    let mut msg_list = Vec::new();
    if let Err(e) = server.refuse_not_implemented() {
        msg_list.push(Value::String(e.to_string()));
    }
    let mut backups = Map::new();
    match catalog.backups() {
        Ok(list) => {
            for b in list {
                match b.to_json() {
                    Ok(v) => {
                        backups.insert(b.backup_id().to_string(), v);
                    }
                    Err(e) => msg_list.push(Value::String(e.to_string())),
                }
            }
        }
        Err(e) => msg_list.push(Value::String(e.to_string())),
    }
    let mut last_per_tli = Map::new();
    match catalog.xlogdb().read() {
        Ok(entries) => {
            for e in entries {
                if e.name.len() != 24 {
                    continue; // only plain segments, as Barman
                }
                let time = e
                    .time
                    .to_string()
                    .parse::<f64>()
                    .map_or(Value::Null, |t| json!(t));
                last_per_tli.insert(
                    e.name[..8].to_owned(),
                    json!({
                        "compression": e.compression,
                        "encryption": e.encryption,
                        "name": e.name,
                        "size": e.size,
                        "time": time,
                    }),
                );
            }
        }
        Err(e) => msg_list.push(Value::String(e.to_string())),
    }
    json!({
        "active_model": null,
        "backups": backups,
        "config": server.to_json(),
        "msg_list": msg_list,
        // Live PostgreSQL status needs a connection; it arrives with the
        // PostgreSQL access layer. Barman's keys are kept, unset.
        "status": {
            "archive_command": null, "archive_mode": null, "current_xlog": null,
            "data_directory": null, "is_in_recovery": null, "is_superuser": null,
            "postgres_systemid": null, "replication_slot": null,
            "replication_slot_support": null, "server_txt_version": null,
            "synchronous_standby_names": null, "version_supported": null,
        },
        "wals": { "last_archived_wal_per_timeline": last_per_tli },
    })
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.trim().to_owned()
        })
        .unwrap_or_default()
}

fn system_info() -> Value {
    let release = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_default();
    json!({
        "barman_ver": env!("CARGO_PKG_VERSION"),
        "implementation": "barman-rs",
        "kernel_ver": command_output("uname", &["-a"]),
        "release": release,
        "ssh_ver": command_output("ssh", &["-V"]),
        "timestamp": jiff::Zoned::now().strftime("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string(),
    })
}
