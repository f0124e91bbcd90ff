//! `barman-cloud-wal-archive`: PostgreSQL's `archive_command` into object
//! storage, compatible with Barman's tool of the same name (options,
//! object keys and formats, exit statuses).
//!
//! `archive_command = 'barman-cloud-wal-archive s3://bucket/prefix pg %p'`
//! uploads the WAL file (compressed with `-z`, `-j`, `--xz`, `--snappy`,
//! `--zstd` or `--lz4`) as `prefix/pg/wals/<hash dir>/<name>[.ext]`.
//! Unlike Barman's, it streams: the file is never held whole in memory.

use std::path::PathBuf;
use std::process::ExitCode;

use barman_cli::client::CompressionFlags;
use barman_cli::cloud::{self, CloudArgs, Exit, Failure};
use barman_cloud::layout::Layout;
use barman_cloud::store::Bucket;
use barman_cloud::wal::{self, ArchiveOptions};
use clap::Parser;

/// Command-line arguments (the options of Barman's `barman-cloud-wal-archive`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-wal-archive",
    version,
    disable_help_flag = true,
    about = "This script can be used in the `archive_command` of a PostgreSQL server to ship \
             WAL files to the Cloud. Currently AWS S3, Azure Blob Storage and Google Cloud \
             Storage are supported."
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
    /// Azure: the chunk size for block uploads (not implemented yet:
    /// refused).
    #[arg(long, value_name = "MAX_BLOCK_SIZE")]
    max_block_size: Option<String>,
    /// Azure: the upload concurrency (not implemented yet: refused).
    #[arg(long, value_name = "MAX_CONCURRENCY")]
    max_concurrency: Option<u32>,
    /// Azure: the size under which a single PUT is used (not implemented
    /// yet: refused).
    #[arg(long, value_name = "MAX_SINGLE_PUT_SIZE")]
    max_single_put_size: Option<String>,
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
            (self.max_block_size.is_some(), "--max-block-size"),
            (self.max_concurrency.is_some(), "--max-concurrency"),
            (self.max_single_put_size.is_some(), "--max-single-put-size"),
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
    let wal_path = match (&args.wal_path, args.cloud.test) {
        (Some(path), _) => Some(path),
        (None, true) => None,
        (None, false) => return Err(Failure::cli("the WAL_PATH argument is required")),
    };
    // The file's name first: a bad one fails before any connection.
    if let Some(path) = wal_path {
        wal::wal_name_of(path).map_err(Failure::cli)?;
    }
    let bucket = Bucket::open(&url, &args.cloud.store_options(encryption))
        .map_err(|e| Failure::new(Exit::General, e))?;
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
    let archived = wal::archive_wal(&bucket, &layout, wal_path, &options).map_err(|e| {
        Failure::new(
            Exit::General,
            format!("Barman cloud WAL archiver exception: {e}"),
        )
    })?;
    tracing::info!(
        "archived {} as {} ({} bytes, {} uploaded)",
        wal_path.display(),
        archived.key,
        archived.bytes_in,
        archived.bytes_out
    );
    Ok(())
}
