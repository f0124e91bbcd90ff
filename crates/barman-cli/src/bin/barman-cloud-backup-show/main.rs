//! `barman-cloud-backup-show`: one backup of a bucket, as Barman's tool
//! shows it (Barman's `show-backup` layout for the fields a cloud
//! backup.info holds, or JSON keyed by the backup's `server_name`).

use std::process::ExitCode;
use std::time::Duration;

use barman_catalog::{BackupInfo, BackupStatus, PyValue};
use barman_cli::cloud::{self, CloudArgs, Exit, Failure, Source};
use barman_cloud::store::Encryption;
use barman_core::shared::{human_duration, human_size};
use clap::Parser;
use serde_json::{Map, Value};

/// Command-line arguments (the options of Barman's `barman-cloud-backup-show`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-backup-show",
    version,
    disable_help_flag = true,
    about = "This script can be used to show metadata for backups made with \
             barman-cloud-backup command. Currently AWS S3, Azure Blob Storage and Google \
             Cloud Storage are supported."
)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// Output format (console or json). Default console.
    #[arg(long, default_value = "console")]
    format: String,
    #[command(flatten)]
    source: Source,
    /// The ID of the backup to be shown.
    #[arg(value_name = "BACKUP_ID")]
    backup_id: String,
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

fn run(args: &Args) -> Result<(), Failure> {
    let Some((url, bucket)) =
        cloud::open_bucket(&args.cloud, &args.source.source_url, Encryption::default())?
    else {
        return Ok(());
    };
    let general = |e: &dyn std::fmt::Display| {
        Failure::new(
            Exit::General,
            format!("Barman cloud backup show exception: {e}"),
        )
    };
    let (_, catalog) = cloud::load_catalog(
        &bucket,
        &url,
        &args.source.server_name,
        "Barman cloud backup show",
    )?;
    let id = catalog
        .resolve(&args.backup_id, &args.source.server_name)
        .map_err(|e| general(&e))?;
    let Some(backup) = catalog.backups.get(&id) else {
        return Err(Failure::new(
            Exit::Operation,
            format!(
                "Backup {id} for server {} does not exist",
                args.source.server_name
            ),
        ));
    };
    if args.format == "console" {
        print!("{}", console(&backup.info).map_err(|e| general(&e))?);
    } else {
        let doc = cloud::backup_json(&backup.info).map_err(|e| general(&e))?;
        let mut top = Map::new();
        top.insert(
            backup
                .info
                .raw("server_name")
                .unwrap_or_default()
                .to_owned(),
            doc,
        );
        println!("{}", cloud::python_json(&Value::Object(top)));
    }
    Ok(())
}

/// A raw field, `None` when absent or null.
fn field<'a>(info: &'a BackupInfo, key: &str) -> Option<&'a str> {
    info.raw(key).filter(|v| *v != "None")
}

/// Barman's `render_show_backup` for a cloud backup.info (`to_dict`: no
/// backup type, WAL statistics or catalog information).
fn console(info: &BackupInfo) -> barman_catalog::Result<String> {
    let mut out = Vec::new();
    let row = |k: &str, v: &str| format!("  {k:<23}: {v}");
    let nested = |k: &str, v: &str| format!("    {k:<21}: {v}");
    out.push(format!("Backup {}:", info.backup_id()));
    if let Some(name) = field(info, "backup_name") {
        out.push(row("Backup Name", name));
    }
    out.push(row(
        "Server Name",
        info.raw("server_name").unwrap_or_default(),
    ));
    if let Some(id) = field(info, "systemid") {
        out.push(row("System Id", id));
    }
    let status = info.raw("status").unwrap_or_default();
    out.push(row("Status", status));
    let copy_done = matches!(
        info.status()?,
        BackupStatus::Done | BackupStatus::WaitingForWals
    );
    if copy_done {
        out.push(row(
            "PostgreSQL Version",
            info.raw("version").unwrap_or("None"),
        ));
        out.push(row(
            "PGDATA directory",
            info.raw("pgdata").unwrap_or("None"),
        ));
        if let Some(size) = field(info, "cluster_size")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&s| s > 0)
        {
            out.push(row("Estimated Cluster Size", &human_size(size)));
        }
    }
    out.push(String::new());
    let checksums = field(info, "data_checksums").filter(|v| !v.is_empty());
    let summarize = field(info, "summarize_wal").filter(|v| !v.is_empty());
    if checksums.is_some() || summarize.is_some() {
        out.push("  Server information:".into());
        if let Some(c) = checksums {
            out.push(nested("Checksums", c));
        }
        if let Some(s) = summarize {
            out.push(nested("WAL summarizer", s));
        }
        out.push(String::new());
    }
    if !copy_done {
        if let Some(error) = field(info, "error") {
            out.push(row("Error", error));
        }
        return Ok(lines(&out));
    }
    let tablespaces = info.tablespaces()?.unwrap_or_default();
    if !tablespaces.is_empty() {
        out.push("  Tablespaces:".into());
        for t in &tablespaces {
            out.push(nested(&t.name, &format!("{} (oid: {})", t.location, t.oid)));
        }
        out.push(String::new());
    }
    out.push("  Base backup information:".into());
    if let Some(mode) = field(info, "mode") {
        out.push(nested("Backup Method", mode));
    }
    if let Some(encryption) = field(info, "encryption") {
        out.push(nested("Encryption", encryption));
    }
    if let Some(size) = field(info, "deduplicated_size")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
    {
        out.push(nested("Backup Size", &human_size(size)));
    }
    if let Some(c) = field(info, "compression").filter(|c| *c != "none") {
        out.push(nested("Backup Compression", c));
    }
    for (label, key) in [
        ("Timeline", "timeline"),
        ("Begin WAL", "begin_wal"),
        ("End WAL", "end_wal"),
        ("Begin time", "begin_time"),
        ("End time", "end_time"),
    ] {
        out.push(nested(label, info.raw(key).unwrap_or("None")));
    }
    if let Some(PyValue::Dict(stats)) = info.copy_stats()? {
        let number = |name: &str| {
            stats.iter().find_map(|(k, v)| match (k, v) {
                (PyValue::Str(k), PyValue::Float(f)) if k == name => Some(f.value()),
                (PyValue::Str(k), PyValue::Int(i)) if k == name => {
                    i32::try_from(*i).ok().map(f64::from)
                }
                _ => None,
            })
        };
        let copy_time = number("copy_time").unwrap_or(0.0);
        if copy_time > 0.0 {
            let mut text = human_duration(Duration::from_secs_f64(copy_time));
            let analysis = number("analysis_time").unwrap_or(0.0);
            if analysis >= 1.0 {
                text.push_str(" + ");
                text.push_str(&human_duration(Duration::from_secs_f64(analysis)));
                text.push_str(" startup");
            }
            out.push(nested("Copy time", &text));
        }
    }
    for (label, key) in [
        ("Begin Offset", "begin_offset"),
        ("End Offset", "end_offset"),
        ("Begin LSN", "begin_xlog"),
        ("End LSN", "end_xlog"),
    ] {
        out.push(nested(label, info.raw(key).unwrap_or("None")));
    }
    out.push(String::new());
    Ok(lines(&out))
}

fn lines(out: &[String]) -> String {
    let mut text = String::new();
    for line in out {
        text.push_str(line);
        text.push('\n');
    }
    text
}
