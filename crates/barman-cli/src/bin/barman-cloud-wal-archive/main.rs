//! `barman-cloud-wal-archive`: PostgreSQL's `archive_command` into object
//! storage, compatible with Barman's tool of the same name (options,
//! object keys and formats, exit statuses).
//!
//! `archive_command = 'barman-cloud-wal-archive s3://bucket/prefix pg %p'`
//! uploads the WAL file (compressed with `-z`, `-j`, `--xz`, `--snappy`,
//! `--zstd` or `--lz4`) as `prefix/pg/wals/<hash dir>/<name>[.ext]`.
//! Unlike Barman's, it streams: the file is never held whole in memory,
//! and `--parallel N` archives the next ready segments ahead of
//! PostgreSQL's requests. Barman's hook mode (`BARMAN_FILE`) is supported.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use barman_cli::Warning;
use barman_cli::client::CompressionFlags;
use barman_cli::cloud::{self, CloudArgs, Exit, Failure};
use barman_cli::wal_archive::prefetch;
use barman_cloud::layout::Layout;
use barman_cloud::size::parse_size;
use barman_cloud::store::{Bucket, UploadTuning};
use barman_cloud::url::Provider;
use barman_cloud::wal::{self, ArchiveOptions};
use clap::Parser;

/// The `--help` text describing `--parallel` and the hook mode.
const AFTER_HELP: &str = "\
Parallel archiving (--parallel N, N > 1, a barman-rs option): a call for WAL X \
first looks in the prefetch cache directory for a marker left by an earlier \
call. When the marker records the size and modification time X has now, X was \
already archived: the marker is removed and the command exits 0 at once. \
Otherwise X is archived together with the plain segment names that follow it \
among pg_wal/archive_status/*.ready (at most 4xN-1, in order, skipping those \
already archived), N at a time. A marker is written (atomically, mode 0600, in \
a 0700 directory) for each extra segment archived; one that fails leaves none, \
so PostgreSQL asks for it again. The exit status is X's. Markers older than a \
day are removed. The cache directory must be owned by the user running the \
command and writable by nobody else; otherwise it is ignored (with a warning) \
and only X is archived.

Hook mode (as Barman's): with BARMAN_HOOK=archive_script or \
archive_retry_script and BARMAN_PHASE=pre in the environment, the WAL is the \
file BARMAN_FILE names (WAL_PATH is not needed).";

/// Command-line arguments (the options of Barman's `barman-cloud-wal-archive`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-wal-archive",
    version,
    disable_help_flag = true,
    about = "This script can be used in the `archive_command` of a PostgreSQL server to ship \
             WAL files to the Cloud. Currently AWS S3, Azure Blob Storage and Google Cloud \
             Storage are supported.",
    after_help = AFTER_HELP
)]
#[allow(clippy::struct_excessive_bools)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    #[command(flatten)]
    compress: CompressionFlags,
    /// Tags to be added to archived WAL files in cloud storage (KEY,VALUE
    /// pairs; put this option last, it takes every value after it).
    #[arg(long, num_args = 0.., value_name = "KEY,VALUE")]
    tags: Vec<String>,
    /// A tag for archived WAL files (KEY,VALUE; repeatable).
    #[arg(long, value_name = "KEY,VALUE")]
    tag: Vec<String>,
    /// Tags to be added to archived history files in cloud storage (instead
    /// of the --tags ones).
    #[arg(long, num_args = 0.., value_name = "KEY,VALUE")]
    history_tags: Option<Vec<String>>,
    /// A tag for archived history files (KEY,VALUE; repeatable).
    #[arg(long, value_name = "KEY,VALUE")]
    history_tag: Vec<String>,
    /// The encryption algorithm used when storing the uploaded data in S3.
    #[arg(short = 'e', long, value_parser = ["AES256", "aws:kms"])]
    encryption: Option<String>,
    /// The AWS KMS key ID that should be used for encrypting the uploaded
    /// data in S3 (with --encryption aws:kms).
    #[arg(long, value_name = "SSE_KMS_KEY_ID")]
    sse_kms_key_id: Option<String>,
    /// SSE-C: the base64 of a 32-byte key, read from file:///PATH.
    #[arg(long, value_name = "SSE_CUSTOMER_KEY")]
    sse_customer_key: Option<String>,
    /// GCS: the KMS key for the uploaded data (not implemented yet:
    /// refused).
    #[arg(long, value_name = "KMS_KEY_NAME")]
    kms_key_name: Option<String>,
    /// Azure: the encryption scope (not implemented yet: refused).
    #[arg(long, value_name = "ENCRYPTION_SCOPE")]
    encryption_scope: Option<String>,
    /// Azure: the chunk size of block uploads (size syntax).
    #[arg(long, value_name = "MAX_BLOCK_SIZE")]
    max_block_size: Option<String>,
    /// Azure: the blocks uploaded at once.
    #[arg(long, value_name = "MAX_CONCURRENCY")]
    max_concurrency: Option<u32>,
    /// Azure: the largest WAL uploaded in one PUT (size syntax); larger
    /// ones go as blocks.
    #[arg(long, value_name = "MAX_SINGLE_PUT_SIZE")]
    max_single_put_size: Option<String>,
    /// Archive up to N WAL files in parallel by uploading the next ready
    /// segments ahead of PostgreSQL's requests (0 or 1: disabled; a
    /// barman-rs option, see --help).
    #[arg(long, value_name = "N", default_value_t = 0)]
    parallel: usize,
    /// Directory of the markers of WAL files archived ahead by --parallel
    /// [default: /tmp/barman-cloud-<SERVER_NAME>-<hash of the URL>].
    #[arg(long, value_name = "DIR")]
    prefetch_cache_dir: Option<PathBuf>,
    /// URL of the cloud destination, such as a bucket in AWS S3. For
    /// example: `s3://bucket/path/to/folder`.
    #[arg(value_name = "DESTINATION_URL")]
    destination_url: String,
    /// The name of the server as configured in Barman.
    #[arg(value_name = "SERVER_NAME")]
    server_name: String,
    /// The value of the '%p' keyword (according to 'archive_command').
    #[arg(value_name = "WAL_PATH")]
    wal_path: Option<PathBuf>,
}

impl Args {
    /// Refuses the options not implemented yet, by name.
    fn refuse_unimplemented(&self) -> Result<(), Failure> {
        self.cloud.refuse_unimplemented()?;
        for (given, option) in [
            (self.kms_key_name.is_some(), "--kms-key-name"),
            (self.encryption_scope.is_some(), "--encryption-scope"),
        ] {
            if given {
                return Err(cloud::not_implemented(option));
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

impl Args {
    /// Azure's upload options: sizes in Barman's syntax, refused with
    /// another provider (Barman ignores them there; barman-rs never
    /// ignores an option).
    fn azure_tuning(&self) -> Result<UploadTuning, Failure> {
        let given = [
            (self.max_block_size.is_some(), "--max-block-size"),
            (self.max_concurrency.is_some(), "--max-concurrency"),
            (self.max_single_put_size.is_some(), "--max-single-put-size"),
        ];
        if let Some((_, option)) = given.iter().find(|(g, _)| *g)
            && self.cloud.cloud_provider != Provider::AzureBlobStorage
        {
            return Err(Failure::cli(format!(
                "{option} applies to --cloud-provider azure-blob-storage only"
            )));
        }
        let size = |what: &str, value: &Option<String>| -> Result<Option<usize>, Failure> {
            value
                .as_deref()
                .map(|v| {
                    let bytes =
                        parse_size(v).map_err(|e| Failure::cli(format!("argument {what}: {e}")))?;
                    usize::try_from(bytes)
                        .ok()
                        .filter(|&b| b > 0)
                        .ok_or_else(|| {
                            Failure::cli(format!("argument {what}: `{v}` is out of range"))
                        })
                })
                .transpose()
        };
        Ok(UploadTuning {
            single_put_max: size("--max-single-put-size", &self.max_single_put_size)?,
            part_size: size("--max-block-size", &self.max_block_size)?,
            parts_in_flight: self
                .max_concurrency
                .map(|n| usize::try_from(n.max(1)).unwrap_or(1)),
        })
    }
}

/// Archives `args.wal_path` (or tests the bucket).
fn run(args: &Args) -> Result<(), Failure> {
    args.refuse_unimplemented()?;
    let url = args.cloud.url(&args.destination_url)?;
    let tags = cloud::tags(&[args.tags.clone(), args.tag.clone()].concat())?;
    let history_tags = match (&args.history_tags, args.history_tag.is_empty()) {
        (None, true) => None,
        (given, _) => Some(cloud::tags(
            &[given.clone().unwrap_or_default(), args.history_tag.clone()].concat(),
        )?),
    };
    let encryption = cloud::s3_encryption(
        args.encryption.as_deref(),
        args.sse_kms_key_id.as_deref(),
        args.sse_customer_key.as_deref(),
    )?;
    let hook_file = hook_file()?;
    let wal_path = match (
        hook_file.as_ref().or(args.wal_path.as_ref()),
        args.cloud.test,
    ) {
        (Some(path), _) => Some(path),
        (None, true) => None,
        (None, false) => return Err(Failure::cli("the WAL_PATH argument is required")),
    };
    // The file's name first: a bad one fails before any connection.
    if let Some(path) = wal_path {
        wal::wal_name_of(path).map_err(Failure::cli)?;
    }
    let mut store_options = args.cloud.store_options(encryption);
    store_options.upload = args.azure_tuning()?;
    let bucket = Bucket::open(&url, &store_options).map_err(|e| Failure::new(Exit::General, e))?;
    if args.cloud.test {
        return cloud::probe(&bucket);
    }
    let Some(wal_path) = wal_path else {
        unreachable!("WAL_PATH is checked above")
    };
    let layout = Layout::new(url.path(), &args.server_name);
    let options = ArchiveOptions {
        compression: args.compress.compression(),
        level: args.compress.level(),
        tags,
        history_tags,
    };
    let archive = |path: &Path| -> Result<(), Failure> {
        let archived = wal::archive_wal(&bucket, &layout, path, &options).map_err(|e| {
            Failure::new(
                Exit::General,
                format!("Barman cloud WAL archiver exception: {e}"),
            )
        })?;
        tracing::info!(
            "archived {} as {} ({} bytes, {} uploaded)",
            path.display(),
            archived.key,
            archived.bytes_in,
            archived.bytes_out
        );
        Ok(())
    };
    if args.parallel <= 1 {
        return archive(wal_path);
    }
    let cache_dir = args.prefetch_cache_dir.clone().unwrap_or_else(|| {
        prefetch::default_cache_dir(
            &format!("cloud-{}", args.server_name),
            &args.destination_url,
            None,
            None,
        )
    });
    let warn = |w: &Warning| tracing::warn!("{w}");
    prefetch::archive_ahead(wal_path, args.parallel, &cache_dir, &warn, &archive)
}

/// The WAL of Barman's hook mode: `BARMAN_FILE` when `BARMAN_HOOK` is
/// `archive_script` or `archive_retry_script` and `BARMAN_PHASE` is `pre`
/// (any other hook is refused, as Barman's tool refuses it).
fn hook_file() -> Result<Option<PathBuf>, Failure> {
    let (Ok(hook), Ok(phase)) = (std::env::var("BARMAN_HOOK"), std::env::var("BARMAN_PHASE"))
    else {
        return Ok(None);
    };
    if !matches!(hook.as_str(), "archive_script" | "archive_retry_script") || phase != "pre" {
        return Err(Failure::new(
            Exit::Operation,
            format!("barman-cloud-wal-archive called as unsupported hook script: {phase}_{hook}"),
        ));
    }
    std::env::var_os("BARMAN_FILE")
        .map(|f| Some(PathBuf::from(f)))
        .ok_or_else(|| {
            Failure::new(
                Exit::Operation,
                "Expected environment variable BARMAN_FILE not set",
            )
        })
}
