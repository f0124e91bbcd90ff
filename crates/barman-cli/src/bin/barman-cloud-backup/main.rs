//! `barman-cloud-backup`: a concurrent base backup of a running
//! PostgreSQL straight into object storage, in Barman's layout and formats
//! (restorable by Barman's `barman-cloud-restore` and ours), with Barman's
//! options and exit statuses. Nothing is staged on local disk.
//!
//! Run by Barman (or barman-rs) as a `post_backup_script` (`BARMAN_HOOK`,
//! `BARMAN_PHASE=post`), it uploads the backup just taken instead, as
//! Barman's tool does.

use std::path::PathBuf;
use std::process::ExitCode;

use barman_cli::cloud::{self, CloudArgs, Exit, Failure};
use barman_cloud::backup::{self, BackupOptions};
use barman_cloud::layout::Layout;
use barman_cloud::size::parse_size;
use barman_cloud::store::Bucket;
use barman_pg::postgres::PgConnection;
use barman_wal::Compression;
use clap::Parser;

/// Backup names Barman refuses (its shortcuts and `auto`).
const RESERVED_NAMES: [&str; 8] = [
    "latest",
    "last",
    "oldest",
    "first",
    "last-failed",
    "latest-full",
    "last-full",
    "auto",
];

/// Command-line arguments (the options of Barman's `barman-cloud-backup`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-backup",
    version,
    disable_help_flag = true,
    about = "This script can be used to perform a backup of a local PostgreSQL instance and \
             ship the resulting tarball(s) to the Cloud. Currently AWS S3, Azure Blob Storage \
             and Google Cloud Storage are supported."
)]
#[allow(clippy::struct_excessive_bools)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// gzip-compress the backup while uploading to the cloud.
    #[arg(short = 'z', long, group = "compression")]
    gzip: bool,
    /// bzip2-compress the backup while uploading to the cloud.
    #[arg(short = 'j', long, group = "compression")]
    bzip2: bool,
    /// snappy-compress the backup while uploading to the cloud.
    #[arg(long, group = "compression")]
    snappy: bool,
    /// lz4-compress the backup while uploading to the cloud.
    #[arg(long, group = "compression")]
    lz4: bool,
    /// zstd-compress the backup while uploading to the cloud.
    #[arg(long, group = "compression")]
    zstd: bool,
    /// Host or Unix socket for PostgreSQL connection (default: libpq settings).
    #[arg(short = 'h', long, value_name = "HOST")]
    host: Option<String>,
    /// Port for PostgreSQL connection (default: libpq settings).
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<String>,
    /// User name for PostgreSQL connection (default: libpq settings).
    #[arg(short = 'U', long, value_name = "USER")]
    user: Option<String>,
    /// Database name or conninfo string for Postgres connection (default:
    /// postgres).
    #[arg(short = 'd', long, value_name = "DBNAME", default_value = "postgres")]
    dbname: String,
    /// Forces the initial checkpoint to be done as quickly as possible.
    #[arg(long)]
    immediate_checkpoint: bool,
    /// Number of subprocesses to upload data to cloud storage (default: 2).
    #[arg(short = 'J', long, value_name = "JOBS", default_value_t = 2)]
    jobs: usize,
    /// Maximum size of an archive when uploading to cloud storage (default:
    /// 100GB).
    #[arg(
        short = 'S',
        long,
        value_name = "MAX_ARCHIVE_SIZE",
        default_value = "100GB"
    )]
    max_archive_size: String,
    /// Minimum size of an individual chunk when uploading to cloud storage.
    #[arg(long, value_name = "MIN_CHUNK_SIZE")]
    min_chunk_size: Option<String>,
    /// The maximum amount of data to be uploaded per second when backing up
    /// to object storages (Barman's size syntax, e.g. `50MB`).
    #[arg(long, value_name = "MAX_BANDWIDTH")]
    max_bandwidth: Option<String>,
    /// The time, in seconds, between keepalive queries to PostgreSQL during
    /// the backup (0 disables them; default 60).
    #[arg(long, value_name = "KEEPALIVE_INTERVAL", default_value_t = 60)]
    keepalive_interval: u64,
    /// A name which can be used to reference this backup in commands such
    /// as barman-cloud-restore and barman-cloud-backup-delete.
    #[arg(short = 'n', long, value_name = "BACKUP_NAME")]
    name: Option<String>,
    /// Tags to be added to all uploaded files in cloud storage (KEY,VALUE
    /// pairs; put this option last, it takes every value after it).
    #[arg(long, num_args = 0.., value_name = "KEY,VALUE")]
    tags: Vec<String>,
    /// A tag for all uploaded files (KEY,VALUE; repeatable).
    #[arg(long, value_name = "KEY,VALUE")]
    tag: Vec<String>,
    /// The encryption algorithm used when storing the uploaded data in S3.
    #[arg(short = 'e', long, value_parser = ["AES256", "aws:kms"])]
    encryption: Option<String>,
    /// The AWS KMS key ID for the uploaded data (with -e aws:kms).
    #[arg(long, value_name = "SSE_KMS_KEY_ID")]
    sse_kms_key_id: Option<String>,
    /// SSE-C: the base64 of a 32-byte key, read from file:///PATH.
    #[arg(long, value_name = "SSE_CUSTOMER_KEY")]
    sse_customer_key: Option<String>,
    /// Azure encryption scope (not implemented yet: refused).
    #[arg(long, value_name = "ENCRYPTION_SCOPE")]
    encryption_scope: Option<String>,
    /// GCS KMS key (not implemented yet: refused).
    #[arg(long, value_name = "KMS_KEY_NAME")]
    kms_key_name: Option<String>,
    /// Snapshot backups (not supported: refused).
    #[arg(long, value_name = "INSTANCE")]
    snapshot_instance: Option<String>,
    /// Snapshot backups (not supported: refused).
    #[arg(long, value_name = "DISK")]
    snapshot_disk: Vec<String>,
    /// URL of the cloud destination, such as a bucket in AWS S3. For
    /// example: `s3://bucket/path/to/folder`.
    #[arg(value_name = "DESTINATION_URL")]
    destination_url: String,
    /// The name of the server as configured in Barman.
    #[arg(value_name = "SERVER_NAME")]
    server_name: String,
}

impl Args {
    fn compression(&self) -> Option<Compression> {
        [
            (self.gzip, Compression::Gzip),
            (self.bzip2, Compression::Bzip2),
            (self.snappy, Compression::Snappy),
            (self.lz4, Compression::Lz4),
            (self.zstd, Compression::Zstd),
        ]
        .into_iter()
        .find_map(|(set, c)| set.then_some(c))
    }

    /// The libpq connection string of `-h -p -U -d` (a `-d` holding `=`
    /// is the whole conninfo, as in Barman).
    fn conninfo(&self) -> String {
        if self.dbname.contains('=') {
            return self.dbname.clone();
        }
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = vec![format!("dbname={}", quote(&self.dbname))];
        for (key, value) in [
            ("host", &self.host),
            ("port", &self.port),
            ("user", &self.user),
        ] {
            if let Some(v) = value {
                parts.push(format!("{key}={}", quote(v)));
            }
        }
        parts.join(" ")
    }

    fn refuse_unimplemented(&self) -> Result<(), Failure> {
        self.cloud.refuse_unimplemented()?;
        for (given, option) in [
            (self.encryption_scope.is_some(), "--encryption-scope"),
            (self.kms_key_name.is_some(), "--kms-key-name"),
            (self.snapshot_instance.is_some(), "--snapshot-instance"),
            (!self.snapshot_disk.is_empty(), "--snapshot-disk"),
        ] {
            if given {
                return Err(cloud::not_implemented(option));
            }
        }
        Ok(())
    }
}

/// Barman's hook mode: run as a `post_backup_script` (or retry script),
/// the backup Barman just took.
struct Hook {
    backup_dir: PathBuf,
    backup_id: String,
    info_path: PathBuf,
}

impl Hook {
    /// The hook's backup when `BARMAN_HOOK`/`BARMAN_PHASE` say so, with
    /// Barman's checks and messages (exit 63 for a backup that is not DONE).
    fn from_env() -> Result<Option<Self>, Failure> {
        let var = |name: &str| std::env::var_os(name);
        let (Some(hook), Some(phase)) = (var("BARMAN_HOOK"), var("BARMAN_PHASE")) else {
            return Ok(None);
        };
        let (hook, phase) = (hook.to_string_lossy(), phase.to_string_lossy());
        let exception =
            |m: String| Failure::new(Exit::General, format!("Barman cloud backup exception: {m}"));
        if !matches!(hook.as_ref(), "backup_script" | "backup_retry_script") || phase != "post" {
            return Err(exception(format!(
                "barman-cloud-backup called as unsupported hook script: {phase}_{hook}"
            )));
        }
        let required = |name: &str| {
            var(name).ok_or_else(|| exception(format!("{name} environment variable not set")))
        };
        let backup_dir = PathBuf::from(required("BARMAN_BACKUP_DIR")?);
        let backup_id = required("BARMAN_BACKUP_ID")?.to_string_lossy().into_owned();
        let status = var("BARMAN_STATUS").map(|s| s.to_string_lossy().into_owned());
        if status.as_deref() != Some("DONE") {
            return Err(Failure::new(
                Exit::HookAbort,
                format!(
                    "Barman cloud backup exception: backup in '{}' has status '{}' (status should be: DONE)",
                    backup_dir.display(),
                    status.as_deref().unwrap_or("None")
                ),
            ));
        }
        let info_path = PathBuf::from(required("BARMAN_BACKUP_INFO_PATH")?);
        Ok(Some(Self {
            backup_dir,
            backup_id,
            info_path,
        }))
    }
}

/// Logs what a backup uploaded.
fn uploaded(report: &backup::BackupReport) {
    tracing::info!(
        "backup {} uploaded: {} object(s), {} bytes",
        report.backup_id,
        report.objects.len(),
        report.bytes
    );
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

fn run(args: &Args) -> Result<(), Failure> {
    args.refuse_unimplemented()?;
    if let Some(name) = &args.name
        && (RESERVED_NAMES.contains(&name.as_str())
            || name.parse::<barman_catalog::BackupId>().is_ok()
            || name.trim().is_empty())
    {
        return Err(Failure::cli(format!(
            "argument -n/--name: Backup name '{name}' is not allowed: reserved word or backup id"
        )));
    }
    let url = args.cloud.url(&args.destination_url)?;
    let size = |what: &str, v: &str| {
        parse_size(v).map_err(|e| Failure::cli(format!("argument {what}: {e}")))
    };
    let options = BackupOptions {
        compression: args.compression(),
        max_archive_size: size("-S/--max-archive-size", &args.max_archive_size)?,
        min_chunk_size: args
            .min_chunk_size
            .as_deref()
            .map(|v| size("--min-chunk-size", v))
            .transpose()?
            .unwrap_or(0),
        jobs: args.jobs.max(1),
        name: args.name.clone(),
        tags: cloud::tags(&[args.tags.clone(), args.tag.clone()].concat())?,
        immediate_checkpoint: args.immediate_checkpoint,
        max_bandwidth: args
            .max_bandwidth
            .as_deref()
            .map(|v| size("--max-bandwidth", v))
            .transpose()?,
        keepalive: (args.keepalive_interval > 0)
            .then(|| std::time::Duration::from_secs(args.keepalive_interval)),
    };
    let encryption = cloud::s3_encryption(
        args.encryption.as_deref(),
        args.sse_kms_key_id.as_deref(),
        args.sse_customer_key.as_deref(),
    )?;
    let bucket = Bucket::open(&url, &args.cloud.store_options(encryption))
        .map_err(|e| Failure::new(Exit::General, e))?;
    if args.cloud.test {
        return cloud::probe(&bucket);
    }
    let layout = Layout::new(url.path(), &args.server_name);
    if let Some(hook) = Hook::from_env()? {
        if args.name.is_some() {
            return Err(Failure::new(
                Exit::General,
                "Barman cloud backup exception: Cannot set backup name when running as a hook script",
            ));
        }
        return match backup::upload_existing(
            &bucket,
            &layout,
            &hook.backup_dir,
            &hook.info_path,
            &hook.backup_id,
            &options,
        ) {
            Ok(report) => {
                uploaded(&report);
                Ok(())
            }
            Err(e @ (barman_cloud::Error::Backup(_) | barman_cloud::Error::Catalog(_))) => Err(
                Failure::new(Exit::General, format!("Barman cloud backup exception: {e}")),
            ),
            Err(e) => Err(Failure::new(
                Exit::Operation,
                format!("Backup upload failed uploading data ({e})"),
            )),
        };
    }
    let pg = PgConnection::connect(&args.conninfo(), "barman_cloud_backup")
        .map_err(|e| Failure::new(Exit::Operation, format!("Cannot connect to postgres: {e}")))?;
    match backup::backup(&bucket, &layout, &pg, &options) {
        Ok(report) => {
            uploaded(&report);
            Ok(())
        }
        Err(barman_cloud::Error::NoSuchBucket(name)) => Err(Failure::new(
            Exit::General,
            format!("Barman cloud backup exception: bucket `{name}` does not exist"),
        )),
        Err(e) => Err(Failure::new(
            Exit::Operation,
            format!("Backup failed uploading data ({e})"),
        )),
    }
}
