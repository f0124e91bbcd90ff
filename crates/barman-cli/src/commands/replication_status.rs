//! `barman replication-status`: the streaming clients of each server, in
//! Barman's console layout (full or `--minimal`) or its `-f json` document.

use std::collections::BTreeMap;
use std::fmt::Display;

use anyhow::Result;
use barman_core::config::Config;
use barman_core::postgres::PgConnection;
use barman_core::replication_status::{
    ClientKind, ReplicationStatus, Source, StreamingClient, Target, replication_status,
    source_conninfo,
};
use barman_core::shared::human_size;
use serde_json::{Value, json};

use super::select_servers;
use crate::output::Output;

/// `barman replication-status [--minimal] [--target T] [--source S] SERVER...`.
///
/// `target` and `source` are the (already validated) option values.
pub fn run(
    config: &Config,
    names: &[String],
    minimal: bool,
    target: &str,
    source: &str,
    out: &mut Output,
) -> Result<()> {
    let target = match target {
        "hot-standby" => Target::HotStandby,
        "wal-streamer" => Target::WalStreamer,
        _ => Target::All,
    };
    let source = if source == "wal-host" {
        Source::WalHost
    } else {
        Source::BackupHost
    };
    let mut servers = select_servers(config, names, out);
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    for server in servers {
        let name = &server.name;
        if !server.active {
            out.line(&format!("Skipping inactive server '{name}'"))?;
            continue;
        }
        if server.is_passive() {
            out.line(&format!("Skipping passive server '{name}'"))?;
            continue;
        }
        if server.disabled {
            out.error(&format!("Server '{name}' is temporarily disabled"));
            continue;
        }
        let Some(conninfo) = source_conninfo(server, source) else {
            out.error(&format!(
                "Unable to connect to server {name}: no conninfo configured"
            ));
            continue;
        };
        let pg = match PgConnection::connect(conninfo, "barman") {
            Ok(pg) => pg,
            Err(e) => {
                out.error(&format!("Unable to connect to server {name}: {e}"));
                continue;
            }
        };
        match replication_status(&pg, conninfo, target) {
            Ok(status) => {
                for line in console_lines(name, target, minimal, &status) {
                    out.line(&line)?;
                }
                out.json_result(name, json_document(target, minimal, &status));
            }
            Err(e) => out.error(&format!(
                "Unable to read the streaming clients of server {name}: {e}"
            )),
        }
    }
    Ok(())
}

/// Barman's `pretty_size` of a signed byte count (`-1.2 MiB`, `0 B`).
pub(crate) fn pretty_diff(bytes: i64) -> String {
    let size = human_size(bytes.unsigned_abs());
    if bytes < 0 { format!("-{size}") } else { size }
}

/// Python's `str.capitalize()`: first character upper case, the rest lower.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |first| {
        first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect()
    })
}

/// A value as Python's `%s` prints it (`None` when missing).
fn py<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "None".to_owned(), |v| v.to_string())
}

/// `#2 Sync WAL streamer`, `Async standby`: the heading of a client.
fn client_name(c: &StreamingClient) -> String {
    let kind = c.kind().label();
    let state = capitalize(&c.sync_state);
    if c.sync_priority > 0 {
        format!("#{} {state} {kind}", c.sync_priority)
    } else {
        format!("{state} {kind}")
    }
}

fn sync_initial(c: &StreamingClient) -> String {
    c.sync_state
        .chars()
        .next()
        .map(|ch| ch.to_uppercase().collect())
        .unwrap_or_default()
}

fn client_addr(c: &StreamingClient) -> &str {
    c.client_addr.as_deref().unwrap_or("socket")
}

/// The console lines of one server, as Barman prints them.
fn console_lines(
    name: &str,
    target: Target,
    minimal: bool,
    status: &ReplicationStatus,
) -> Vec<String> {
    let title = target.title();
    let mut lines = Vec::new();
    if minimal {
        lines.push(match status.current_lsn {
            Some(lsn) => format!("{} for master '{name}' (LSN @ {lsn}):", capitalize(title)),
            None => format!("{} for slave '{name}':", capitalize(title)),
        });
    } else {
        lines.push(format!("Status of {title} for server '{name}':"));
        if let Some(lsn) = status.current_lsn {
            lines.push(format!("  Current LSN on master: {lsn}"));
        }
    }
    if status.clients.is_empty() {
        lines.push(format!("  No {title} attached"));
        return lines;
    }
    if minimal {
        for (n, c) in status.clients.iter().enumerate() {
            let who = format!("{}@{}", py(c.usename.as_deref()), client_addr(c));
            lines.push(match c.kind() {
                ClientKind::WalStreamer => format!(
                    "  {}. W) {who} S:{} W:{} P:{} AN:{}",
                    n + 1,
                    py(c.sent_lsn),
                    py(c.write_lsn),
                    c.sync_priority,
                    c.application_name
                ),
                ClientKind::Standby => format!(
                    "  {}. {}) {who} S:{} F:{} R:{} P:{} AN:{}",
                    n + 1,
                    sync_initial(c),
                    py(c.sent_lsn),
                    py(c.flush_lsn),
                    py(c.replay_lsn),
                    c.sync_priority,
                    c.application_name
                ),
            });
        }
        return lines;
    }
    lines.push(format!("  Number of {title}: {}", status.clients.len()));
    for (n, c) in status.clients.iter().enumerate() {
        lines.push(String::new());
        lines.push(format!("  {}. {}", n + 1, client_name(c)));
        lines.push(format!("     Application name: {}", c.application_name));
        lines.push(format!("     Sync stage      : {}", c.sync_stage()));
        if let Some(addr) = &c.client_addr {
            lines.push("     Communication   : TCP/IP".into());
            lines.push(format!(
                "     IP Address      : {addr} / Port: {} / Host: {}",
                py(c.client_port),
                c.client_hostname.as_deref().unwrap_or("-")
            ));
        } else {
            lines.push("     Communication   : Unix domain socket".into());
        }
        lines.push(format!(
            "     User name       : {}",
            py(c.usename.as_deref())
        ));
        lines.push(format!(
            "     Current state   : {} ({})",
            py(c.state.as_deref()),
            c.sync_state
        ));
        if let Some(slot) = &c.slot_name {
            lines.push(format!("     Replication slot: {slot}"));
        }
        lines.push(format!("     WAL sender PID  : {}", c.pid));
        lines.push(format!(
            "     Started at      : {}",
            py(c.backend_start.as_deref())
        ));
        if let Some(xmin) = &c.backend_xmin {
            lines.push(format!("     Standby's xmin  : {xmin}"));
        }
        for (label, (_, lsn, diff)) in ["Sent LSN   ", "Write LSN  ", "Flush LSN  ", "Replay LSN "]
            .into_iter()
            .zip(c.positions())
        {
            if let Some(lsn) = lsn {
                let diff = diff.map_or_else(|| "None".to_owned(), pretty_diff);
                lines.push(format!("     {label}: {lsn} (diff: {diff})"));
            }
        }
    }
    lines
}

fn lsn_value(lsn: Option<barman_wal::Lsn>) -> Value {
    lsn.map_or(Value::Null, |l| Value::String(l.to_string()))
}

/// Barman's JSON for one server (keys sorted, as its writer dumps them):
/// `{<title key>: [...], "server_lsn": ..., ["standby_info": "No ... attached"]}`.
fn json_document(target: Target, minimal: bool, status: &ReplicationStatus) -> Value {
    let title = target.title();
    let key = title.to_lowercase().replace(' ', "_");
    let mut doc = BTreeMap::new();
    doc.insert("server_lsn".to_owned(), lsn_value(status.current_lsn));
    if status.clients.is_empty() {
        doc.insert(
            "standby_info".to_owned(),
            json!(format!("No {title} attached")),
        );
    }
    let clients = status
        .clients
        .iter()
        .map(|c| {
            if minimal {
                minimal_json(c)
            } else {
                client_json(c)
            }
        })
        .collect();
    doc.insert(key, Value::Array(clients));
    sorted(doc)
}

fn sorted(map: BTreeMap<String, Value>) -> Value {
    Value::Object(map.into_iter().collect())
}

fn minimal_json(c: &StreamingClient) -> Value {
    let mut m = BTreeMap::new();
    m.insert("user_name".to_owned(), json!(c.usename));
    m.insert("client_addr".to_owned(), json!(client_addr(c)));
    m.insert("sent_lsn".to_owned(), lsn_value(c.sent_lsn));
    m.insert("sync_priority".to_owned(), json!(c.sync_priority));
    m.insert("application_name".to_owned(), json!(c.application_name));
    match c.kind() {
        ClientKind::WalStreamer => {
            m.insert("write_lsn".to_owned(), lsn_value(c.write_lsn));
        }
        ClientKind::Standby => {
            m.insert("sync_state".to_owned(), json!(sync_initial(c)));
            m.insert("flush_lsn".to_owned(), lsn_value(c.flush_lsn));
            m.insert("replay_lsn".to_owned(), lsn_value(c.replay_lsn));
        }
    }
    sorted(m)
}

fn client_json(c: &StreamingClient) -> Value {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("name", json!(client_name(c)));
    put("application_name", json!(c.application_name));
    put("sync_stage", json!(c.sync_stage()));
    if let Some(addr) = &c.client_addr {
        put("communication", json!("TCP/IP"));
        put("ip_address", json!(addr));
        put("port", json!(c.client_port));
        put("host", json!(c.client_hostname));
    } else {
        put("communication", json!("Unix domain socket"));
    }
    put("user_name", json!(c.usename));
    put("current_state", json!(c.state));
    put("current_sync_state", json!(c.sync_state));
    if let Some(slot) = &c.slot_name {
        put("replication_slot", json!(slot));
    }
    put("wal_sender_pid", json!(c.pid));
    put("started_at", json!(c.backend_start));
    if let Some(xmin) = &c.backend_xmin {
        put("standbys_xmin", json!(xmin));
    }
    for (which, lsn, diff) in c.positions() {
        if let Some(lsn) = lsn {
            put(&format!("{which}_lsn"), json!(lsn.to_string()));
            put(&format!("{which}_lsn_diff"), json!(diff.map(pretty_diff)));
            put(&format!("{which}_lsn_diff_bytes"), json!(diff));
        }
    }
    sorted(m)
}

#[cfg(test)]
mod tests {
    use barman_wal::Lsn;

    use super::*;

    #[test]
    fn diffs_print_like_barman_pretty_size() {
        assert_eq!(pretty_diff(0), "0 B");
        assert_eq!(pretty_diff(-232), "-232 B");
        assert_eq!(pretty_diff(1023), "1023 B");
        assert_eq!(pretty_diff(-1024), "-1.0 KiB");
        assert_eq!(pretty_diff(-1_258_291), "-1.2 MiB");
        assert_eq!(pretty_diff(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(pretty_diff(-5 * (1 << 30)), "-5.0 GiB");
        assert_eq!(pretty_diff(i64::MIN), "-8192.0 PiB");
    }

    #[test]
    fn python_capitalize() {
        assert_eq!(capitalize("WAL streamers"), "Wal streamers");
        assert_eq!(capitalize("async"), "Async");
        assert_eq!(capitalize(""), "");
    }

    fn sample() -> ReplicationStatus {
        let cur = Lsn(0x300_0148);
        ReplicationStatus {
            server_version: 150_000,
            in_recovery: false,
            current_lsn: Some(cur),
            clients: vec![
                StreamingClient {
                    pid: 11,
                    usename: Some("postgres".into()),
                    application_name: "standby1".into(),
                    client_addr: Some("127.0.0.1".into()),
                    client_port: Some(40000),
                    backend_start: Some("2024-05-01 10:00:00.500000+00:00".into()),
                    state: Some("streaming".into()),
                    sent_lsn: Some(cur),
                    write_lsn: Some(cur),
                    flush_lsn: Some(cur),
                    replay_lsn: Some(Lsn(0x300_0000)),
                    sync_state: "async".into(),
                    current_lsn: Some(cur),
                    ..StreamingClient::default()
                },
                StreamingClient {
                    pid: 12,
                    usename: Some("barman".into()),
                    application_name: "barman_receive_wal".into(),
                    backend_start: Some("2024-05-01 10:00:01+00:00".into()),
                    state: Some("streaming".into()),
                    sent_lsn: Some(cur),
                    write_lsn: Some(cur),
                    sync_priority: 1,
                    sync_state: "sync".into(),
                    slot_name: Some("barman".into()),
                    current_lsn: Some(cur),
                    ..StreamingClient::default()
                },
            ],
        }
    }

    #[test]
    fn console_layout_is_barmans() {
        let lines = console_lines("pg", Target::All, false, &sample());
        let text = lines.join("\n");
        let expected = "\
Status of streaming clients for server 'pg':
  Current LSN on master: 0/3000148
  Number of streaming clients: 2

  1. Async standby
     Application name: standby1
     Sync stage      : 4/5 2-safe
     Communication   : TCP/IP
     IP Address      : 127.0.0.1 / Port: 40000 / Host: -
     User name       : postgres
     Current state   : streaming (async)
     WAL sender PID  : 11
     Started at      : 2024-05-01 10:00:00.500000+00:00
     Sent LSN   : 0/3000148 (diff: 0 B)
     Write LSN  : 0/3000148 (diff: 0 B)
     Flush LSN  : 0/3000148 (diff: 0 B)
     Replay LSN : 0/3000000 (diff: -328 B)

  2. #1 Sync WAL streamer
     Application name: barman_receive_wal
     Sync stage      : 3/3 Remote write
     Communication   : Unix domain socket
     User name       : barman
     Current state   : streaming (sync)
     Replication slot: barman
     WAL sender PID  : 12
     Started at      : 2024-05-01 10:00:01+00:00
     Sent LSN   : 0/3000148 (diff: 0 B)
     Write LSN  : 0/3000148 (diff: 0 B)";
        assert_eq!(text, expected);

        let minimal = console_lines("pg", Target::All, true, &sample()).join("\n");
        assert_eq!(
            minimal,
            "Streaming clients for master 'pg' (LSN @ 0/3000148):\n  \
             1. A) postgres@127.0.0.1 S:0/3000148 F:0/3000148 R:0/3000000 P:0 AN:standby1\n  \
             2. W) barman@socket S:0/3000148 W:0/3000148 P:1 AN:barman_receive_wal"
        );

        let empty = ReplicationStatus {
            clients: Vec::new(),
            current_lsn: None,
            ..sample()
        };
        assert_eq!(
            console_lines("pg", Target::WalStreamer, true, &empty),
            [
                "Wal streamers for slave 'pg':",
                "  No WAL streamers attached"
            ]
        );
        assert_eq!(
            console_lines("pg", Target::HotStandby, false, &empty),
            [
                "Status of hot standby servers for server 'pg':",
                "  No hot standby servers attached"
            ]
        );
    }

    #[test]
    fn json_keys_are_barmans() {
        let doc = json_document(Target::All, false, &sample());
        assert_eq!(doc["server_lsn"], "0/3000148");
        let c = &doc["streaming_clients"][0];
        assert_eq!(c["name"], "Async standby");
        assert_eq!(c["replay_lsn"], "0/3000000");
        assert_eq!(c["replay_lsn_diff"], "-328 B");
        assert_eq!(c["replay_lsn_diff_bytes"], -328);
        assert_eq!(c["port"], 40000);
        assert_eq!(c["host"], Value::Null);
        let w = &doc["streaming_clients"][1];
        assert_eq!(w["replication_slot"], "barman");
        assert!(w.get("replay_lsn").is_none());
        assert!(w.get("ip_address").is_none());
        let keys: Vec<_> = c.as_object().unwrap().keys().cloned().collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        assert_eq!(keys, sorted_keys);

        let min = json_document(Target::WalStreamer, true, &sample());
        assert_eq!(min["wal_streamers"][0]["sync_state"], "A");
        assert_eq!(min["wal_streamers"][1]["client_addr"], "socket");
        let empty = ReplicationStatus {
            clients: Vec::new(),
            ..sample()
        };
        let doc = json_document(Target::HotStandby, false, &empty);
        assert_eq!(doc["standby_info"], "No hot standby servers attached");
        assert_eq!(doc["hot_standby_servers"], json!([]));
    }
}
