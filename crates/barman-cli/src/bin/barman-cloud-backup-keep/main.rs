//! `barman-cloud-backup-keep`: keep a backup of a bucket beyond its
//! retention policy (`--target full|standalone`), release it (`-r`) or
//! show its keep status (`-s`), as Barman's tool does.

use std::process::ExitCode;

use barman_catalog::{BackupStatus, KeepTarget};
use barman_cli::cloud::{self, CloudArgs, Exit, Failure, Source};
use barman_cloud::catalog::{self};
use barman_cloud::store::Encryption;
use clap::Parser;

/// Command-line arguments (the options of Barman's `barman-cloud-backup-keep`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-backup-keep",
    version,
    disable_help_flag = true,
    about = "This script can be used to tag backups in cloud storage as archival backups \
             such that they will not be deleted. Currently AWS S3, Azure Blob Storage and \
             Google Cloud Storage are supported."
)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["release", "status", "target"])))]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// If specified, the command will remove the keep annotation and the
    /// backup will be eligible for deletion.
    #[arg(short = 'r', long)]
    release: bool,
    /// Print the keep status of the backup.
    #[arg(short = 's', long)]
    status: bool,
    /// Specify the recovery target for this backup.
    #[arg(long, value_parser = ["full", "standalone"])]
    target: Option<String>,
    #[command(flatten)]
    source: Source,
    /// The backup ID of the backup to be kept.
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
    let general = |e: barman_cloud::Error| {
        Failure::new(Exit::General, format!("Barman cloud keep exception: {e}"))
    };
    let (layout, catalog) =
        cloud::load_catalog(&bucket, &url, &args.source.server_name, "Barman cloud keep")?;
    let id = catalog
        .resolve(&args.backup_id, &args.source.server_name)
        .map_err(general)?;
    if args.release {
        return catalog::release_keep(&bucket, &layout, &id).map_err(general);
    }
    if args.status {
        let keep = catalog.backups.get(&id).and_then(|b| b.keep);
        println!("Keep: {}", keep.map_or("nokeep", KeepTarget::as_str));
        return Ok(());
    }
    let target = match args.target.as_deref() {
        Some("standalone") => KeepTarget::Standalone,
        _ => KeepTarget::Full,
    };
    let backup = catalog.backups.get(&id).ok_or_else(|| {
        general(barman_cloud::Error::UnknownBackup {
            backup: id.clone(),
            server: args.source.server_name.clone(),
        })
    })?;
    let status = backup
        .info
        .status()
        .map_err(|e| general(barman_cloud::Error::Catalog(e)))?;
    if status != BackupStatus::Done {
        return Err(Failure::new(
            Exit::Operation,
            format!(
                "Cannot add keep to backup {id} because it has status {}. Only backups with status DONE can be kept.",
                backup.info.raw("status").unwrap_or_default()
            ),
        ));
    }
    catalog::put_keep(&bucket, &layout, &id, target).map_err(general)
}
