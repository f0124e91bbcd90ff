//! `barman-cloud-restore`: a backup of a bucket (written by
//! barman-cloud-backup, Barman's or ours) unpacked into RECOVERY_DIR, with
//! Barman's options and exit statuses; the tar objects are streamed and
//! unpacked in process, never staged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use barman_cli::cloud::{self, CloudArgs, Exit, Failure, Source};
use barman_cloud::Error;
use barman_cloud::catalog::AutoTarget;
use barman_cloud::layout::Layout;
use barman_cloud::{restore, wal};
use clap::Parser;

/// Command-line arguments (the options of Barman's `barman-cloud-restore`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-restore",
    version,
    disable_help_flag = true,
    about = "This script can be used to download a backup previously made with \
             barman-cloud-backup command. Currently AWS S3, Azure Blob Storage and Google \
             Cloud Storage are supported."
)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// Tablespace relocation rule (NAME:LOCATION; repeatable).
    #[arg(long, value_name = "NAME:LOCATION")]
    tablespace: Vec<String>,
    /// SSE-C: the base64 of a 32-byte key, read from file:///PATH.
    #[arg(long, value_name = "SSE_CUSTOMER_KEY")]
    sse_customer_key: Option<String>,
    /// With BACKUP_ID `auto`: the target timeline (a number or `latest`).
    #[arg(long, value_name = "TARGET_TLI")]
    target_tli: Option<String>,
    /// With BACKUP_ID `auto`: the target LSN.
    #[arg(long, value_name = "TARGET_LSN")]
    target_lsn: Option<String>,
    /// With BACKUP_ID `auto`: the target time.
    #[arg(long, value_name = "TARGET_TIME")]
    target_time: Option<String>,
    /// Snapshot backups: the instance to recover on (not supported).
    #[arg(long, value_name = "INSTANCE")]
    snapshot_recovery_instance: Option<String>,
    #[command(flatten)]
    source: Source,
    /// The backup ID (or name, or shortcut: latest, oldest, last-failed).
    #[arg(value_name = "BACKUP_ID")]
    backup_id: String,
    /// The path to a directory for recovery.
    #[arg(value_name = "RECOVERY_DIR")]
    recovery_dir: PathBuf,
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

fn run(args: &Args) -> Result<(), Failure> {
    if args.snapshot_recovery_instance.is_some() {
        return Err(cloud::not_implemented("--snapshot-recovery-instance"));
    }
    let targets_given =
        args.target_tli.is_some() || args.target_lsn.is_some() || args.target_time.is_some();
    if targets_given && args.backup_id != "auto" {
        return Err(Failure::cli(
            "--target-tli, --target-lsn and --target-time choose the backup of BACKUP_ID `auto` \
             only (barman-rs refuses them rather than ignore them with a backup id)",
        ));
    }
    let mut relocations = BTreeMap::new();
    for rule in &args.tablespace {
        let Some((name, location)) = rule.split_once(':') else {
            return Err(Failure::cli(format!(
                "Invalid tablespace relocation rule '{rule}'\nHINT: The valid syntax for a relocation rule is NAME:LOCATION"
            )));
        };
        relocations.insert(name.to_owned(), PathBuf::from(location));
    }
    let encryption = cloud::s3_encryption(None, None, args.sse_customer_key.as_deref())?;
    let Some((url, bucket)) = cloud::open_bucket(&args.cloud, &args.source.source_url, encryption)?
    else {
        return Ok(());
    };
    let general = |e: Error| {
        Failure::new(
            Exit::General,
            format!("Barman cloud restore exception: {e}"),
        )
    };
    let (_, catalog) = cloud::load_catalog(
        &bucket,
        &url,
        &args.source.server_name,
        "Barman cloud restore",
    )?;
    let id = if args.backup_id == "auto" {
        let target = auto_target(args, &bucket, &url)?;
        catalog.auto_backup(&target).ok_or_else(|| {
            Failure::new(
                Exit::Operation,
                "Cannot find any candidate backup for recovery.",
            )
        })?
    } else {
        catalog
            .resolve(&args.backup_id, &args.source.server_name)
            .map_err(general)?
    };
    let Some(backup) = catalog.backups.get(&id) else {
        return Err(Failure::new(
            Exit::Operation,
            format!(
                "Backup {id} for server {} does not exists",
                args.source.server_name
            ),
        ));
    };
    tracing::info!("Restoring from backup_id: {id}");
    match restore::restore_backup(&bucket, backup, &args.recovery_dir, &relocations) {
        Ok(report) => {
            tracing::info!(
                "restored {} object(s), {} entries into {}",
                report.objects,
                report.entries,
                args.recovery_dir.display()
            );
            Ok(())
        }
        Err(e @ (Error::DestinationNotEmpty(_) | Error::MissingTar(_))) => {
            Err(Failure::new(Exit::Operation, e))
        }
        Err(e @ Error::UnknownTablespace(_)) => Err(Failure::cli(e)),
        Err(e) => Err(general(e)),
    }
}

/// The recovery target of BACKUP_ID `auto`, as Barman parses it (a value
/// it cannot read is an exception: exit 4).
fn auto_target(
    args: &Args,
    bucket: &barman_cloud::store::Bucket,
    url: &barman_cloud::url::CloudUrl,
) -> Result<AutoTarget, Failure> {
    let bad = |message: String| {
        Failure::new(
            Exit::General,
            format!("Barman cloud restore exception: {message}"),
        )
    };
    let time =
        args.target_time
            .as_deref()
            .map(|t| {
                barman_catalog::pytime::parse_python_datetime(t, &jiff::tz::TimeZone::system())
                    .map_err(|e| {
                        bad(format!(
                            "Unable to parse the target time parameter '{t}': {e}"
                        ))
                    })
            })
            .transpose()?;
    let lsn = args
        .target_lsn
        .as_deref()
        .map(|l| {
            l.parse::<barman_wal::Lsn>()
                .map_err(|e| bad(format!("Invalid LSN '{l}': {e}")))
        })
        .transpose()?;
    let tli = match args.target_tli.as_deref() {
        None => None,
        Some("current") => {
            return Err(bad(
                "'current' is not a valid timeline keyword when recovering without a backup_id"
                    .into(),
            ));
        }
        Some("latest") => {
            let layout = Layout::new(url.path(), &args.source.server_name);
            let names = wal::archived_wals(bucket, &layout).map_err(|e| bad(e.to_string()))?;
            names.iter().map(|n| n.timeline().get()).max()
        }
        Some(n) => Some(
            n.parse::<u32>()
                .map_err(|_| bad(format!("{n} is not a valid timeline keyword")))?,
        ),
    };
    Ok(AutoTarget { time, lsn, tli })
}
