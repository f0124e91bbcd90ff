//! `barman-cloud-wal-restore`: PostgreSQL's `restore_command` from object
//! storage, compatible with Barman's tool of the same name.
//!
//! `restore_command = 'barman-cloud-wal-restore s3://bucket/prefix pg %f %p'`
//! writes WAL file `%f` (decompressed by its object's extension) at `%p`,
//! through a temporary file renamed into place; with `-p N` the N−1
//! following files go to the spool directory, where the next calls take
//! them without contacting the cloud.

use std::path::PathBuf;
use std::process::ExitCode;

use barman_cli::cloud::{self, CloudArgs, Exit, Failure};
use barman_cloud::Error;
use barman_cloud::layout::Layout;
use barman_cloud::store::{Bucket, Encryption};
use barman_cloud::wal::{self, RestoreOptions, Restored};
use clap::Parser;

/// Command-line arguments (the options of Barman's `barman-cloud-wal-restore`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-wal-restore",
    version,
    disable_help_flag = true,
    about = "This script can be used as a `restore_command` to download WAL files previously \
             archived with barman-cloud-wal-archive command. Currently AWS S3, Azure Blob \
             Storage and Google Cloud Storage are supported."
)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// Do not download partial WAL files.
    #[arg(long)]
    no_partial: bool,
    /// Specifies the number of files to peek and transfer in parallel
    /// (0 or 1: only the requested one).
    #[arg(short = 'p', long, value_name = "JOBS", default_value_t = 0)]
    parallel: usize,
    /// Specifies spool directory for WAL files.
    #[arg(long, value_name = "SPOOL_DIR", default_value = "/var/tmp/walrestore")]
    spool_dir: PathBuf,
    /// SSE-C: the base64 of a 32-byte key, read from file:///PATH.
    #[arg(long, value_name = "SSE_CUSTOMER_KEY")]
    sse_customer_key: Option<String>,
    /// URL of the cloud source, such as a bucket in AWS S3. For example:
    /// `s3://bucket/path/to/folder`.
    #[arg(value_name = "SOURCE_URL")]
    source_url: String,
    /// The name of the server as configured in Barman.
    #[arg(value_name = "SERVER_NAME")]
    server_name: String,
    /// The value of the '%f' keyword (according to 'restore_command').
    #[arg(value_name = "WAL_NAME")]
    wal_name: String,
    /// The value of the '%p' keyword (according to 'restore_command').
    #[arg(value_name = "WAL_DEST")]
    wal_dest: PathBuf,
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

/// Restores `args.wal_name` into `args.wal_dest` (or tests the bucket).
fn run(args: &Args) -> Result<(), Failure> {
    args.cloud.refuse_unimplemented()?;
    let url = args.cloud.url(&args.source_url)?;
    let encryption: Encryption =
        cloud::s3_encryption(None, None, args.sse_customer_key.as_deref())?;
    let options = RestoreOptions {
        parallel: args.parallel,
        spool_dir: args.spool_dir.clone(),
        no_partial: args.no_partial,
    };
    // A file an earlier call fetched ahead needs no connection.
    let spooled = options.spool_dir.join(&args.wal_name);
    if !args.cloud.test && spooled.is_file() {
        return barman_fs::rename_durable(&spooled, &args.wal_dest)
            .map_err(|e| Failure::new(Exit::Network, e));
    }
    if !args.cloud.test && args.wal_name.parse::<barman_wal::WalFileName>().is_err() {
        return Err(Failure::cli(format!(
            "`{}` is not a valid WAL file name",
            args.wal_name
        )));
    }
    let bucket = Bucket::open(&url, &args.cloud.store_options(encryption))
        .map_err(|e| Failure::new(Exit::General, e))?;
    if args.cloud.test {
        return cloud::probe(&bucket);
    }
    // The endpoint is reached first, as Barman's download does:
    // unreachable is 2, any other failure 4.
    match bucket.exists() {
        Ok(true) => {}
        Ok(false) => {
            return Err(Failure::new(
                Exit::General,
                format!("Bucket {} does not exist", bucket.name()),
            ));
        }
        Err(e) if e.is_network() => {
            return Err(Failure::new(
                Exit::Network,
                format!("Can't connect to cloud provider: {e}"),
            ));
        }
        Err(e) => return Err(Failure::new(Exit::General, e)),
    }
    let layout = Layout::new(url.path(), &args.server_name);
    match wal::restore_wal(&bucket, &layout, &args.wal_name, &args.wal_dest, &options) {
        Ok(Restored::FromSpool) => Ok(()),
        Ok(Restored::Downloaded { key, prefetched }) => {
            tracing::info!(
                "restored {key} into {}; {} file(s) prefetched",
                args.wal_dest.display(),
                prefetched.len()
            );
            Ok(())
        }
        Err(Error::NotFound(what)) => Err(Failure::new(
            Exit::Operation,
            format!("{what} does not exist"),
        )),
        Err(Error::WalName(name)) => Err(Failure::cli(format!(
            "`{name}` is not a valid WAL file name"
        ))),
        Err(e @ Error::Io(_)) => Err(Failure::new(
            Exit::Network,
            format!("Barman cloud WAL restore exception: {e}"),
        )),
        Err(e) if e.is_network() => Err(Failure::new(Exit::Network, e)),
        Err(e) => Err(Failure::new(
            Exit::General,
            format!("Barman cloud WAL restore exception: {e}"),
        )),
    }
}
