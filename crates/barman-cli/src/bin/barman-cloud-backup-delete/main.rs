//! `barman-cloud-backup-delete`: delete one backup of a bucket (`-b`) or
//! every backup a retention policy makes obsolete (`-r`), with the WALs no
//! remaining backup needs, as Barman's tool does (options, dry-run lines,
//! refusals, exit statuses).

use std::process::ExitCode;

use barman_cli::cloud::{self, CloudArgs, Exit, Failure, Source};
use barman_cloud::catalog::Catalog;
use barman_cloud::delete::{self, DeleteOptions, DeleteReport};
use barman_cloud::store::Encryption;
use barman_cloud::url::Provider;
use barman_retention::{DeleteKind, RetentionPolicy};
use clap::Parser;

/// Command-line arguments (the options of Barman's `barman-cloud-backup-delete`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-backup-delete",
    version,
    disable_help_flag = true,
    about = "This script can be used to delete backups made with barman-cloud-backup \
             command. Currently AWS S3, Azure Blob Storage and Google Cloud Storage are \
             supported."
)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["backup_id", "retention_policy"])))]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// Backup ID of the backup to be deleted.
    #[arg(short = 'b', long, value_name = "BACKUP_ID")]
    backup_id: Option<String>,
    /// If specified, delete all backups eligible for deletion according to
    /// the supplied retention policy. Syntax: REDUNDANCY value | RECOVERY
    /// WINDOW OF value {DAYS | WEEKS | MONTHS}.
    #[arg(short = 'r', long, value_name = "RETENTION_POLICY")]
    retention_policy: Option<String>,
    /// The minimum number of backups that should always be available.
    #[arg(
        short = 'm',
        long,
        value_name = "MINIMUM_REDUNDANCY",
        default_value_t = 0
    )]
    minimum_redundancy: u32,
    /// Find the objects which need to be deleted but do not delete them.
    #[arg(long)]
    dry_run: bool,
    /// The maximum number of objects to be deleted in a single request to
    /// the cloud provider.
    #[arg(long, value_name = "DELETE_BATCH_SIZE")]
    batch_size: Option<usize>,
    /// S3: check the object lock of each backup file first (not implemented
    /// yet: refused).
    #[arg(long)]
    check_object_lock: bool,
    #[command(flatten)]
    source: Source,
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

fn run(args: &Args) -> Result<(), Failure> {
    if args.check_object_lock {
        return Err(cloud::not_implemented("--check-object-lock"));
    }
    let policy = args
        .retention_policy
        .as_deref()
        .map(|p| {
            p.parse::<RetentionPolicy>()
                .map_err(|e| Failure::cli(format!("Could not create retention policy {p}: {e}")))
        })
        .transpose()?;
    let Some((url, bucket)) =
        cloud::open_bucket(&args.cloud, &args.source.source_url, Encryption::default())?
    else {
        return Ok(());
    };
    // The provider's largest batch: S3 1000, Azure 256.
    let max_batch = match url.provider() {
        Provider::AzureBlobStorage => 256,
        _ => 1000,
    };
    let options = DeleteOptions {
        dry_run: args.dry_run,
        batch_size: args.batch_size.unwrap_or(max_batch).clamp(1, max_batch),
    };
    let general = |e: &dyn std::fmt::Display| {
        Failure::new(
            Exit::General,
            format!("Barman cloud backup delete exception: {e}"),
        )
    };
    let (layout, mut catalog) = cloud::load_catalog(
        &bucket,
        &url,
        &args.source.server_name,
        "Barman cloud backup delete",
    )?;
    if !catalog.unreadable.is_empty() {
        let ids: Vec<String> = catalog
            .unreadable
            .iter()
            .map(|(id, _)| format!("'{id}'"))
            .collect();
        return Err(Failure::new(
            Exit::Operation,
            format!(
                "Cannot read the following backups: [{}]\nUnsafe to proceed with deletion due to failure reading backup catalog",
                ids.join(", ")
            ),
        ));
    }
    let mut report = DeleteReport::default();
    let run_one = |catalog: &mut Catalog, id: &str, kind: DeleteKind, report: &mut DeleteReport| {
        delete::delete_backup(&bucket, &layout, catalog, id, kind, &options, report).map_err(|e| {
            Failure::new(
                Exit::Operation,
                format!("Could not delete backup {id}: {e}"),
            )
        })
    };
    if let Some(text) = &args.backup_id {
        let id = catalog
            .resolve(text, &args.source.server_name)
            .map_err(|e| general(&e))?;
        if let Some(why) = delete::refusal(
            &catalog,
            &id,
            &args.source.server_name,
            args.minimum_redundancy,
        ) {
            return Err(Failure::new(Exit::Operation, why));
        }
        run_one(&mut catalog, &id, DeleteKind::Manual, &mut report)?;
    } else if let Some(policy) = &policy {
        let now = jiff::Timestamp::now().as_second();
        for id in delete::obsolete_backups(&catalog, policy, args.minimum_redundancy, now) {
            run_one(&mut catalog, &id, DeleteKind::Retention, &mut report)?;
        }
    }
    for line in &report.dry_run_lines {
        println!("{line}");
    }
    Ok(())
}
