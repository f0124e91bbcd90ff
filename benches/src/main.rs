//! End-to-end benchmarks of barman-rs: whole commands against real
//! PostgreSQL clusters and a loopback sshd, timed the way they are used.
//!
//! ```text
//! cargo build --release -p barman-cli --bins
//! cargo run --release -p barman-benches -- wal-archive [--segments 200] [--runs 3]
//! cargo run --release -p barman-benches -- backup [--scale 100] [--runs 3]
//! cargo run --release -p barman-benches -- recover [--scale 100] [--runs 3]
//! cargo run --release -p barman-benches -- streaming [--scale 100] [--runs 3] [--wal-mb 256]
//! cargo run --release -p barman-benches -- incremental [--scale 100] [--runs 3] [--major 18]
//! cargo run --release -p barman-benches -- compare [--scale 100] [--with-peers]
//! cargo run --release -p barman-benches -- list
//! ```
//!
//! Each scenario writes a Markdown table and a JSON file under
//! `target/bench-report/` (`--out` to change it) and prints the Markdown.
//! Scenarios need root (the server and the archive commands run as the
//! `postgres` OS user), PostgreSQL 15 and openssh-server; a missing piece is
//! an error, never a skip. Micro-benchmarks live in each crate's `benches/`
//! (`cargo bench` at the workspace root runs them all).

mod backup;
mod cloud;
mod compare;
mod incremental;
mod machine;
mod peers;
mod recover;
mod report;
mod stats;
mod streaming;
mod versus;
mod wal_archive;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line of `barman-benches`.
#[derive(Debug, Parser)]
#[command(
    name = "barman-benches",
    about = "End-to-end benchmarks of barman-rs against real PostgreSQL clusters and a loopback sshd",
    arg_required_else_help = true
)]
struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Lists the scenarios and what they measure.
    List,
    /// WAL archiving end to end: `barman put-wal` (local) and
    /// `barman-wal-archive` over a loopback sshd (none/zstd, --parallel 4),
    /// called once per segment as PostgreSQL's archive_command is, next to
    /// `cp` of the same segments.
    WalArchive(wal_archive::Options),
    /// Base backups end to end: `barman backup` (local-rsync -j 1/2, rsync
    /// over a loopback sshd -j 1/2 with and without zstd, and an
    /// incremental `--reuse-backup link`) of a `pgbench -i` cluster, next
    /// to `cp -a` of its data directory; time, MB/s, peak RSS.
    Backup(backup::Options),
    /// Recovery end to end: `barman recover` of one backup of a
    /// `pgbench -i` cluster (local -j 1/2, remote over a loopback sshd
    /// -j 1/2) into a fresh directory, next to `cp -a` of the backup's
    /// data directory; time, MB/s, peak RSS, and PostgreSQL started on a
    /// recovery to count the rows.
    Recover(recover::Options),
    /// The replication protocol end to end: `barman backup` with
    /// `backup_method = postgres` beside `pg_basebackup -Fp` of a
    /// `pgbench -i` cluster (time, peak RSS), and `barman receive-wal`
    /// beside `pg_receivewal --synchronous` under a WAL-heavy load, live and
    /// from a slot's backlog (MB/s of WAL, peak RSS); segments compared
    /// byte for byte.
    Streaming(streaming::Options),
    /// PostgreSQL 17+ block-level incremental backups (`backup_method =
    /// postgres`, `summarize_wal = on`): a full backup and three
    /// increments after `pgbench -n` work, then the full and the chain
    /// recovered (combined while streaming), beside real Barman
    /// (`pg_basebackup --incremental`, `pg_combinebackup` + rsync) on the
    /// same cluster; then a `backup_compression = zstd` (tar) backup by
    /// each on a PostgreSQL 15 cluster; time, bytes, peak RSS; PostgreSQL
    /// started on every recovery.
    Incremental(incremental::Options),
    /// The barman-cloud tools against S3 (moto on loopback), barman-rs
    /// beside real barman-cloud: one archive_command call of a 16 MiB
    /// segment, backups (gzip, lz4, zstd) and a restore; median time and
    /// peak RSS.
    Cloud(cloud::Options),
    /// Every scenario in one command at one scale (`--scale 10` for a few
    /// minutes), with pgBackRest and Barman beside barman-rs when
    /// `--with-peers`; gathers the reports into compare.{md,json}.
    Compare(compare::Options),
}

/// The items named by `ids` among `ours` and — with `with_peers` — `peers`
/// (all when `ids` is empty), in order; an unknown id is an error listing
/// the known ones (`what`: "operation", "variant").
pub fn select_by_id<T: Copy>(
    ours: &[T],
    peers: &[T],
    with_peers: bool,
    ids: &[String],
    what: &str,
    id_of: impl Fn(&T) -> &'static str,
) -> anyhow::Result<Vec<T>> {
    let all: Vec<T> = ours
        .iter()
        .chain(peers.iter().filter(|_| with_peers))
        .copied()
        .collect();
    for id in ids {
        if !all.iter().any(|t| id_of(t) == id) {
            let known: Vec<&str> = all.iter().map(&id_of).collect();
            anyhow::bail!(
                "unknown {what} `{id}` (known: {}{})",
                known.join(", "),
                if with_peers {
                    ""
                } else {
                    "; the peers' need --with-peers"
                }
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|t| ids.is_empty() || ids.iter().any(|id| id == id_of(t)))
        .collect())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.scenario {
        Scenario::List => {
            let mut out = std::io::stdout();
            let _ = writeln!(
                out,
                "wal-archive  per-segment latency and segments/s of archive_command variants \
                 (cp, barman put-wal, barman-wal-archive over ssh; none/zstd; --parallel 4)\n\
                 backup       time, MB/s and peak RSS of `barman backup` (local-rsync, rsync over \
                 ssh, zstd, -j 1/2, incremental --reuse-backup link) beside `cp -a` of PGDATA\n\
                 recover      time, MB/s and peak RSS of `barman recover` (local and over ssh, \
                 -j 1/2) beside `cp -a` of the backup; PostgreSQL started on every restore\n\
                 streaming    backup_method = postgres beside pg_basebackup; receive-wal beside \
                 pg_receivewal\n\
                 incremental  PostgreSQL 17+ incremental backups (full + 3 increments) and the \
                 chain's recovery, and zstd backups, beside real Barman; time, bytes, peak RSS\n\
                 cloud        barman-cloud tools on S3 (moto): archive_command calls, backups, a \
                 restore, beside real barman-cloud; time and peak RSS\n\
                 compare      all of the above at one --scale; --with-peers adds pgBackRest and \
                 Barman (Python) beside barman-rs\n\
                 \n\
                 Micro-benchmarks: cargo bench (WAL names and codecs, blake3 hashing, copy \
                 plan, fast_rsync delta, retention)."
            );
            Ok(())
        }
        Scenario::WalArchive(options) => wal_archive::run(&options),
        Scenario::Backup(options) => backup::run(&options),
        Scenario::Recover(options) => recover::run(&options),
        Scenario::Streaming(options) => streaming::run(&options),
        Scenario::Incremental(options) => incremental::run(&options),
        Scenario::Cloud(options) => cloud::run(&options),
        Scenario::Compare(options) => compare::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "barman-benches: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
