//! `barman show-backup SERVER BACKUP_ID` (alias `show-backups`): Barman's
//! console block and its `-f json` document (output.py
//! `render_show_backup*` / `JsonOutputWriter.result_show_backup`).

use std::time::Duration;

use std::fmt::Write as _;

use anyhow::Result;
use barman_core::catalog::pytime::to_python_str;
use barman_core::clock::SystemClock;
use barman_core::config::Config;
use barman_core::listing::{BackupDetails, backup_details};
use barman_core::shared::{human_duration, human_size};
use serde_json::{Value, json};

use super::listing_fmt::{epoch_text, percent, row, sort_keys, whole};
use super::server_and_backup;
use crate::output::Output;

fn top(key: &str, value: impl std::fmt::Display) -> String {
    row(2, 23, key, value)
}

fn nested(key: &str, value: impl std::fmt::Display) -> String {
    row(4, 21, key, value)
}

fn seconds(s: f64) -> String {
    human_duration(Duration::from_secs_f64(s.max(0.0)))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "None".to_owned(), |v| v.to_string())
}

fn is_resource_saving(d: &BackupDetails) -> bool {
    matches!(d.info.backup_type(), "rsync" | "incremental")
}

fn general(d: &BackupDetails, lines: &mut Vec<String>) -> Result<()> {
    let info = &d.info;
    lines.push(format!("Backup {}:", info.backup_id()));
    if let Some(name) = info.backup_name() {
        lines.push(top("Backup Name", name));
    }
    lines.push(top("Server Name", info.server_name().unwrap_or_default()));
    if let Some(id) = info.systemid() {
        lines.push(top("System Id", id));
    }
    lines.push(top("Status", d.status));
    if d.status.is_copy_done() {
        lines.push(top("PostgreSQL Version", opt(info.version()?)));
        lines.push(top("PGDATA directory", opt(info.pgdata())));
        if let Some(size) = info.cluster_size()?.filter(|s| *s > 0) {
            lines.push(top("Estimated Cluster Size", human_size(size)));
        }
    }
    lines.push(String::new());
    let (checksums, summarizer) = (info.data_checksums(), info.summarize_wal());
    if checksums.is_some() || summarizer.is_some() {
        lines.push("  Server information:".into());
        if let Some(c) = checksums {
            lines.push(nested("Checksums", c));
        }
        if let Some(s) = summarizer {
            lines.push(nested("WAL summarizer", s));
        }
        lines.push(String::new());
    }
    Ok(())
}

fn base(d: &BackupDetails, lines: &mut Vec<String>) -> Result<()> {
    let info = &d.info;
    if let Some(tablespaces) = info.tablespaces()?.filter(|t| !t.is_empty()) {
        lines.push("  Tablespaces:".into());
        for t in tablespaces {
            lines.push(nested(&t.name, format!("{} (oid: {})", t.location, t.oid)));
        }
        lines.push(String::new());
    }
    lines.push("  Base backup information:".into());
    let mode = info.mode();
    if let Some(m) = mode {
        lines.push(nested("Backup Method", m));
    }
    if let Some(e) = info.encryption() {
        lines.push(nested("Encryption", e));
    }
    if let Some(c) = info.compression() {
        lines.push(nested("Compression", c));
    }
    if mode == Some("postgres") {
        lines.push(nested("Backup Type", info.backup_type()));
    }
    let dedup = info.deduplicated_size()?.unwrap_or(0);
    let wal_size = d.wal.wal_size;
    if dedup > 0 {
        let mut text = human_size(dedup);
        if wal_size > 0 {
            let _ = write!(text, " ({} with WALs)", human_size(dedup + wal_size));
        }
        lines.push(nested("Backup Size", text));
    }
    if wal_size > 0 {
        lines.push(nested("WAL Size", human_size(wal_size)));
    }
    if is_resource_saving(d) {
        lines.push(nested(
            "Resources saved",
            format!(
                "{} ({})",
                human_size(whole(d.est_dedup_size)),
                percent(d.deduplication_ratio)
            ),
        ));
    }
    lines.push(nested("Timeline", opt(info.timeline()?)));
    lines.push(nested("Begin WAL", opt(info.begin_wal())));
    lines.push(nested("End WAL", opt(info.end_wal())));
    if d.wal.wal_num > 0 {
        lines.push(nested("Number of WALs", d.wal.wal_num));
    }
    if d.wal.compression_ratio > 0.0 {
        lines.push(nested(
            "WAL compression ratio",
            percent(d.wal.compression_ratio),
        ));
    }
    lines.push(nested(
        "Begin time",
        opt(info.begin_time()?.map(|t| to_python_str(&t))),
    ));
    lines.push(nested(
        "End time",
        opt(info.end_time()?.map(|t| to_python_str(&t))),
    ));
    if let Some(copy) = d.copy_time {
        let mut text = seconds(copy);
        if let Some(analysis) = d.analysis_time {
            let _ = write!(text, " + {} startup", seconds(analysis));
        }
        lines.push(nested("Copy time", text));
        if let Some(t) = d.throughput {
            let mut text = format!("{}/s", human_size(whole(t)));
            if d.number_of_workers > 1 {
                let _ = write!(text, " ({} jobs)", d.number_of_workers);
            }
            lines.push(nested("Estimated throughput", text));
        }
    }
    lines.push(nested("Begin Offset", opt(info.begin_offset()?)));
    lines.push(nested("End Offset", opt(info.end_offset()?)));
    lines.push(nested("Begin LSN", opt(info.begin_xlog())));
    lines.push(nested("End LSN", opt(info.end_xlog())));
    lines.push(String::new());
    Ok(())
}

fn wal_and_catalog(d: &BackupDetails, lines: &mut Vec<String>) -> Result<()> {
    let w = &d.wal;
    lines.push("  WAL information:".into());
    lines.push(nested("Number of files", w.until_next_num));
    lines.push(nested("Disk usage", human_size(w.until_next_size)));
    if w.wals_per_second > 0.0 {
        lines.push(nested(
            "WAL rate",
            format!("{:.2}/hour", w.wals_per_second * 3600.0),
        ));
    }
    if w.until_next_compression_ratio > 0.0 {
        lines.push(nested(
            "Compression ratio",
            percent(w.until_next_compression_ratio),
        ));
    }
    lines.push(nested("Last available", opt(w.last.as_deref())));
    if !d.children_timelines.is_empty() {
        let tlis: Vec<String> = d
            .children_timelines
            .iter()
            .map(|c| c.tli.to_string())
            .collect();
        lines.push(nested("Reachable timelines", tlis.join(", ")));
    }
    lines.push(String::new());
    lines.push("  Catalog information:".into());
    lines.push(nested("Retention Policy", retention_text(d)));
    lines.push(nested("Previous Backup", previous_text(d)));
    lines.push(nested("Next Backup", next_text(d)));
    if !d.children_timelines.is_empty() {
        lines.push(String::new());
        lines.push(
            "WARNING: WAL information is inaccurate due to multiple timelines interacting with this backup"
                .into(),
        );
    }
    let info = &d.info;
    if info.backup_type() == "incremental" {
        lines.push(nested("Root Backup", &d.root_backup_id));
        lines.push(nested("Parent Backup", opt(info.parent_backup_id()?)));
        lines.push(nested("Backup chain size", d.chain_size));
    }
    if info.mode() == Some("postgres")
        && let Some(children) = info.raw("children_backup_ids")
    {
        lines.push(nested("Children Backup(s)", children));
    }
    Ok(())
}

fn retention_text(d: &BackupDetails) -> String {
    d.retention
        .map_or_else(|| "not enforced".to_owned(), |r| r.to_string())
}

fn previous_text(d: &BackupDetails) -> String {
    d.previous.as_ref().map_or_else(
        || "- (this is the oldest base backup)".to_owned(),
        ToString::to_string,
    )
}

fn next_text(d: &BackupDetails) -> String {
    d.next.as_ref().map_or_else(
        || "- (this is the latest base backup)".to_owned(),
        ToString::to_string,
    )
}

/// Barman's console lines for `d`.
pub fn console_lines(d: &BackupDetails) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    general(d, &mut lines)?;
    if d.status.is_copy_done() {
        base(d, &mut lines)?;
        wal_and_catalog(d, &mut lines)?;
    } else if let Some(error) = d.info.error() {
        lines.push(top("Error", error));
    }
    Ok(lines)
}

fn base_json(d: &BackupDetails) -> Result<Value> {
    let info = &d.info;
    let dedup = info.deduplicated_size()?.unwrap_or(0);
    let wal_size = d.wal.wal_size;
    let time = |t: Option<jiff::Zoned>| (t.as_ref().map(epoch_text), t.as_ref().map(to_python_str));
    let (begin_ts, begin) = time(info.begin_time()?);
    let (end_ts, end) = time(info.end_time()?);
    let mut b = json!({
        "backup_method": info.mode(),
        "encryption": info.encryption(),
        "compression": info.compression(),
        "backup_size": human_size(dedup),
        "backup_size_bytes": dedup,
        "backup_size_with_wals": human_size(dedup + wal_size),
        "backup_size_with_wals_bytes": dedup + wal_size,
        "wal_size": human_size(wal_size),
        "wal_size_bytes": wal_size,
        "timeline": info.timeline()?,
        "begin_wal": info.begin_wal(),
        "end_wal": info.end_wal(),
        "wal_num": d.wal.wal_num,
        "begin_time_timestamp": begin_ts,
        "begin_time": begin,
        "end_time_timestamp": end_ts,
        "end_time": end,
        "begin_offset": info.begin_offset()?,
        "end_offset": info.end_offset()?,
        "begin_lsn": info.begin_xlog(),
        "end_lsn": info.end_xlog(),
    });
    if is_resource_saving(d) {
        b["resources_saved"] = json!(human_size(whole(d.est_dedup_size)));
        b["resources_saved_bytes"] = json!(whole(d.est_dedup_size));
        b["resources_saved_percentage"] = json!(percent(d.deduplication_ratio));
    }
    if d.wal.compression_ratio > 0.0 {
        b["wal_compression_ratio"] = json!(percent(d.wal.compression_ratio));
    }
    if let Some(copy) = d.copy_time {
        b["copy_time"] = json!(seconds(copy));
        b["copy_time_seconds"] = json!(copy);
        if let Some(analysis) = d.analysis_time {
            b["analysis_time"] = json!(seconds(analysis));
            b["analysis_time_seconds"] = json!(analysis);
        }
        let throughput = d.throughput.unwrap_or(0.0);
        b["throughput"] = json!(format!("{}/s", human_size(whole(throughput))));
        b["throughput_bytes"] = json!(whole(throughput));
        b["number_of_workers"] = json!(d.number_of_workers);
    }
    Ok(b)
}

/// Barman's JSON document for `d` (the value of the server's key).
pub fn json_document(d: &BackupDetails) -> Result<Value> {
    let info = &d.info;
    let mut v = json!({
        "backup_id": info.backup_id().as_str(),
        "status": d.status.as_str(),
        "backup_type": info.backup_type(),
        "server_information": {
            "data_checksums": info.data_checksums(),
            "summarize_wal": info.summarize_wal(),
        },
    });
    if let Some(name) = info.backup_name() {
        v["backup_name"] = json!(name);
    }
    if let Some(id) = info.systemid() {
        v["system_id"] = json!(id);
    }
    if !d.status.is_copy_done() {
        if let Some(error) = info.error() {
            v["error"] = json!(error);
        }
        return Ok(sort_keys(v));
    }
    if let Some(size) = info.cluster_size()?.filter(|s| *s > 0) {
        v["cluster_size"] = json!(human_size(size));
        v["cluster_size_bytes"] = json!(size);
    }
    v["postgresql_version"] = json!(info.version()?);
    v["pgdata_directory"] = json!(info.pgdata());
    v["tablespaces"] = json!(
        info.tablespaces()?
            .unwrap_or_default()
            .iter()
            .map(|t| json!({"name": t.name, "location": t.location, "oid": t.oid}))
            .collect::<Vec<_>>()
    );
    v["base_backup_information"] = base_json(d)?;
    let mut catalog = json!({
        "retention_policy": retention_text(d),
        "previous_backup": previous_text(d),
        "next_backup": next_text(d),
    });
    if info.backup_type() == "incremental" {
        catalog["root_backup_id"] = json!(d.root_backup_id.as_str());
        catalog["parent_backup_id"] = json!(info.parent_backup_id()?.map(|p| p.to_string()));
        catalog["chain_size"] = json!(d.chain_size);
    }
    if info.mode() == Some("postgres") {
        catalog["children_backup_ids"] = json!(
            info.children_backup_ids()?
                .map(|ids| ids.iter().map(ToString::to_string).collect::<Vec<_>>())
        );
    }
    v["catalog_information"] = catalog;
    let w = &d.wal;
    let mut wal = json!({
        "no_of_files": w.until_next_num,
        "disk_usage": human_size(w.until_next_size),
        "disk_usage_bytes": w.until_next_size,
        "wal_rate": 0,
        "wal_rate_per_second": 0,
        "compression_ratio": 0,
        "last_available": w.last,
        "timelines": d.children_timelines.iter().map(|c| c.tli.to_string()).collect::<Vec<_>>(),
    });
    if w.wals_per_second > 0.0 {
        wal["wal_rate"] = json!(format!("{:.2}/hour", w.wals_per_second * 3600.0));
        wal["wal_rate_per_second"] = json!(w.wals_per_second);
    }
    if w.until_next_compression_ratio > 0.0 {
        wal["compression_ratio"] = json!(percent(w.until_next_compression_ratio));
    }
    if !d.children_timelines.is_empty() {
        wal["_WARNING"] = json!(
            "WAL information is inaccurate due to multiple timelines interacting with this backup"
        );
    }
    v["wal_information"] = wal;
    Ok(sort_keys(v))
}

/// Shows backup `id` of server `name`.
pub fn run(config: &Config, name: &str, id: &str, out: &mut Output) -> Result<()> {
    let Some((server, info)) = server_and_backup(config, name, id, out)? else {
        return Ok(());
    };
    let details = backup_details(server, info, &SystemClock)?;
    for line in console_lines(&details)? {
        out.line(&line)?;
    }
    out.json_result(&server.name, json_document(&details)?);
    Ok(())
}
