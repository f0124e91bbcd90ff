//! `barman-cloud-check-wal-archive`: whether a bucket's WAL archive is
//! ready for a new cluster (empty, or holding only timelines below
//! `--timeline`), as Barman's tool of the same name checks it.
//!
//! Barman's tool creates the bucket when it is missing; barman-rs does not
//! create buckets (its object-storage client has no bucket API): a missing
//! bucket fails with exit 1 and a message saying so.

use std::process::ExitCode;

use barman_cli::cloud::{self, CloudArgs, Exit, Failure};
use barman_cloud::layout::Layout;
use barman_cloud::store::{Bucket, Encryption};
use barman_cloud::wal;
use clap::Parser;

/// Command-line arguments (the options of Barman's
/// `barman-cloud-check-wal-archive`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-cloud-check-wal-archive",
    version,
    disable_help_flag = true,
    about = "Checks that the WAL archive on the specified cloud storage can be safely used \
             for a new PostgreSQL server."
)]
struct Args {
    #[command(flatten)]
    cloud: CloudArgs,
    /// The earliest timeline whose WALs should cause the check to fail.
    #[arg(long, value_name = "TIMELINE", value_parser = clap::value_parser!(u32).range(1..))]
    timeline: Option<u32>,
    /// URL of the cloud destination, such as a bucket in AWS S3. For
    /// example: `s3://bucket/path/to/folder`.
    #[arg(value_name = "DESTINATION_URL")]
    destination_url: String,
    /// The name of the server as configured in Barman.
    #[arg(value_name = "SERVER_NAME")]
    server_name: String,
}

fn main() -> ExitCode {
    cloud::main(|a: &Args| &a.cloud, run)
}

fn run(args: &Args) -> Result<(), Failure> {
    args.cloud.refuse_unimplemented()?;
    let url = args.cloud.url(&args.destination_url)?;
    let bucket = Bucket::open(&url, &args.cloud.store_options(Encryption::default()))
        .map_err(|e| Failure::new(Exit::General, e))?;
    match cloud::probe(&bucket) {
        Ok(()) => {}
        // Barman's -t only probes the endpoint: a missing bucket passes.
        Err(f) if args.cloud.test && f.exit == Exit::Operation => return Ok(()),
        Err(f) if f.exit == Exit::Operation => {
            return Err(Failure::new(
                Exit::Operation,
                format!(
                    "{}: barman-rs does not create buckets; create it with your provider's tools",
                    f.message
                ),
            ));
        }
        Err(f) => return Err(f),
    }
    if args.cloud.test {
        return Ok(());
    }
    let layout = Layout::new(url.path(), &args.server_name);
    let names = wal::archived_wals(&bucket, &layout).map_err(|e| {
        Failure::new(
            if e.is_network() {
                Exit::Network
            } else {
                Exit::General
            },
            e,
        )
    })?;
    let conflicts = wal::conflicting_wals(&names, args.timeline);
    if let Some(first) = conflicts.first() {
        return Err(Failure::new(
            Exit::Operation,
            match args.timeline {
                None => format!(
                    "WAL archive check failed for server {}: Expected empty archive",
                    args.server_name
                ),
                Some(t) => format!(
                    "WAL archive check failed for server {}: Found WAL {first} with timeline >= {t}",
                    args.server_name
                ),
            },
        ));
    }
    Ok(())
}
