//! `barman-cloud-backup-list`: the backups of a server in a bucket, as
//! Barman's tool prints them (a console table, or JSON with any other
//! `--format`).

use std::process::ExitCode;

use barman_catalog::BackupStatus;
use barman_catalog::pytime::parse_python_datetime;
use barman_cli::cloud::{self, CloudArgs, Exit, Failure, Source};
use barman_cloud::catalog::Catalog;
use barman_cloud::store::Encryption;
use clap::Parser;
use serde_json::{Map, Value};

/// Command-line arguments (the options of Barman's `barman-cloud-backup-list`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-backup-list",
    version,
    disable_help_flag = true,
    about = "This script can be used to list backups made with barman-cloud-backup command. \
             Currently AWS S3, Azure Blob Storage and Google Cloud Storage are supported."
)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// Output format (console or json). Default console.
    #[arg(long, default_value = "console")]
    format: String,
    #[command(flatten)]
    source: Source,
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
    let (_, catalog) = cloud::load_catalog(
        &bucket,
        &url,
        &args.source.server_name,
        "Barman cloud backup list",
    )?;
    let text = if args.format == "console" {
        console(&catalog)
    } else {
        json(&catalog).map_err(|e| {
            Failure::new(
                Exit::General,
                format!("Barman cloud backup list exception: {e}"),
            )
        })?
    };
    print!("{text}");
    Ok(())
}

/// `"{:<20}{:<25}{:<30}{:<17}{:<20}"`, trailing spaces kept.
fn row(cells: [&str; 5]) -> String {
    format!(
        "{:<20}{:<25}{:<30}{:<17}{:<20}\n",
        cells[0], cells[1], cells[2], cells[3], cells[4]
    )
}

/// The console table: every backup, the status column showing `KEEP:...`
/// for a kept DONE backup and the status of a backup that is not DONE.
fn console(catalog: &Catalog) -> String {
    let mut out = row([
        "Backup ID",
        "End Time",
        "Begin Wal",
        "Archival Status",
        "Name",
    ]);
    let local = jiff::tz::TimeZone::system();
    for (id, backup) in &catalog.backups {
        let info = &backup.info;
        let end_time = info
            .raw("end_time")
            .filter(|t| *t != "None")
            .and_then(|t| parse_python_datetime(t, &local).ok())
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let status = match info.status() {
            Ok(BackupStatus::Done) => backup
                .keep
                .map(|k| format!("KEEP:{}", k.as_str().to_uppercase()))
                .unwrap_or_default(),
            _ => info.raw("status").unwrap_or_default().to_owned(),
        };
        out.push_str(&row([
            id,
            &end_time,
            info.begin_wal().unwrap_or_default(),
            &status,
            info.raw("backup_name")
                .filter(|n| *n != "None")
                .unwrap_or_default(),
        ]));
    }
    out
}

/// `{"backups_list": [...]}` on one line, with Python's separators.
fn json(catalog: &Catalog) -> barman_catalog::Result<String> {
    let list: Vec<Value> = catalog
        .backups
        .values()
        .map(|b| cloud::backup_json(&b.info))
        .collect::<barman_catalog::Result<_>>()?;
    let mut doc = Map::new();
    doc.insert("backups_list".into(), Value::Array(list));
    Ok(format!("{}\n", cloud::python_json(&Value::Object(doc))))
}
