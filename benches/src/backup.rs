//! `backup`: base backups end to end, `barman backup` against a real
//! PostgreSQL 15 cluster filled by `pgbench -i -s SCALE`, next to `cp -a` of
//! the same data directory.
//!
//! The cluster archives its WAL through `barman put-wal` (the one-host
//! mode); the WAL written by `pgbench -i` is pushed and filed before the
//! first measurement. One barman server `pg`, three configuration files
//! that differ only in how the copy reaches PGDATA: `local-rsync` (barman
//! reads PGDATA itself), `rsync` through `ssh_command` to a loopback sshd
//! that runs `barman agent` as `postgres`, and the same with
//! `network_compression = true` (zstd on the wire).
//!
//! Every operation runs as `postgres` under GNU time (peak RSS, user and
//! system CPU) and is timed spawn to exit. Every backup is
//! `barman -f json backup --wait --wait-timeout 120` and must end DONE
//! (checked in `meta/<id>-backup.info`): anything else fails the benchmark.
//! The incremental is `--reuse-backup link` after a full backup and
//! `pgbench -n -t 1000 -c 2`. The operations run interleaved (run 1 of
//! every operation, then run 2, ...); older backups are deleted before each
//! backup (the newest one is kept: the incremental's base) and `sync` runs
//! between operations, untimed. The median run is reported, with
//! PASS/MISS against the targets (a MISS never fails the process).

pub mod fixture;
mod report;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::machine::{self, Machine};
use crate::peers::{Peers, PyConf, STANZA};
use crate::report::Conditions;
use fixture::{Conf, Fixture, SERVER};

/// Options of the `backup` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// pgbench scale of the cluster (≈ 15 MB per unit: 100 ≈ 1.5 GB).
    #[arg(long, default_value_t = 100)]
    pub scale: u32,
    /// Runs of each operation; the median run is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Only these operations (comma-separated ids: cp-a, cp-a-sync,
    /// local-j1, local-j2, incremental, ssh-j1, ssh-j2, ssh-zstd-j1).
    /// Default: all.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub operations: Vec<String>,
    /// Drop the page cache (`echo 3 > /proc/sys/vm/drop_caches`) before
    /// every timed operation: PGDATA is then read from disk. Off by
    /// default (it slows down everything else on the machine).
    #[arg(long)]
    pub drop_caches: bool,
    /// Also measure pgBackRest and Barman (Python) on the same cluster at
    /// equal settings (installs them first: benches/scripts/install-peers.sh).
    #[arg(long)]
    pub with_peers: bool,
    /// Directory for backup.md and backup.json
    /// [default: <cargo target dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cp -a PGDATA DEST` (then `sync` when `sync`), as `postgres`.
    Copy {
        /// Whether a `sync` after the copy is part of the timed command.
        sync: bool,
    },
    /// `barman backup --reuse-backup off -j JOBS pg`.
    Full {
        /// The configuration (how the copy reaches PGDATA).
        conf: Conf,
        /// `-j`.
        jobs: u32,
    },
    /// `pgbench -n -t 1000 -c 2` after a full backup (untimed), then
    /// `barman backup --reuse-backup link -j JOBS pg`.
    Incremental {
        /// The configuration.
        conf: Conf,
        /// `-j`.
        jobs: u32,
    },
    /// pgBackRest: `pgbackrest backup --type=full|incr` into its own
    /// repository (after `pgbench -n` when `incr`).
    PgBackRest {
        /// Through `pg1-host` over the loopback sshd.
        ssh: bool,
        /// `--process-max`.
        procs: u32,
        /// `--compress-type=zst` (else none).
        zst: bool,
        /// `--type=incr` after `pgbench -n` (else `--type=full`).
        incr: bool,
    },
    /// Barman (Python): `barman backup --reuse-backup off|link --jobs N`.
    BarmanPy {
        /// The configuration.
        conf: PyConf,
        /// `--jobs`.
        jobs: u32,
        /// `--reuse-backup link` after `pgbench -n` (else off).
        incr: bool,
    },
}

/// One measured operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Short id (`--operations`, report rows).
    pub id: &'static str,
    /// What it is, for the report.
    pub about: &'static str,
    /// What it runs.
    pub kind: Kind,
    /// For a peer's operation: the barman-rs operation it is compared
    /// with (equal settings).
    pub peer_of: Option<&'static str>,
}

/// Transactions of the `pgbench -n` run before each incremental.
pub const INCREMENTAL_TRANSACTIONS: u32 = 1000;
/// Clients of that run.
pub const INCREMENTAL_CLIENTS: u32 = 2;
/// `--wait-timeout` of every backup, seconds.
const WAIT_TIMEOUT_S: u32 = 120;

/// Every operation, in run and report order. `cp-a` is the reference of
/// the ratios; `incremental` follows the local full backups so that its
/// base (the newest backup) was taken the same way.
pub const OPERATIONS: [Operation; 8] = [
    Operation {
        id: "cp-a",
        about: "reference: `cp -a PGDATA DEST` (no fsync)",
        kind: Kind::Copy { sync: false },
        peer_of: None,
    },
    Operation {
        id: "cp-a-sync",
        about: "reference: `cp -a PGDATA DEST && sync` (the copy on disk)",
        kind: Kind::Copy { sync: true },
        peer_of: None,
    },
    Operation {
        id: "local-j1",
        about: "full backup, `backup_method = local-rsync`, `--reuse-backup off -j 1`",
        kind: Kind::Full {
            conf: Conf::Local,
            jobs: 1,
        },
        peer_of: None,
    },
    Operation {
        id: "local-j2",
        about: "full backup, `backup_method = local-rsync`, `--reuse-backup off -j 2`",
        kind: Kind::Full {
            conf: Conf::Local,
            jobs: 2,
        },
        peer_of: None,
    },
    Operation {
        id: "incremental",
        about: "after a full backup and `pgbench -n -t 1000 -c 2`: `backup_method = local-rsync`, \
                `--reuse-backup link -j 1`",
        kind: Kind::Incremental {
            conf: Conf::Local,
            jobs: 1,
        },
        peer_of: None,
    },
    Operation {
        id: "ssh-j1",
        about: "full backup, `backup_method = rsync` over the loopback sshd (`barman agent` on \
                the PostgreSQL side), `network_compression = false`, `--reuse-backup off -j 1`",
        kind: Kind::Full {
            conf: Conf::Ssh,
            jobs: 1,
        },
        peer_of: None,
    },
    Operation {
        id: "ssh-j2",
        about: "the same with `-j 2` (two agent sessions)",
        kind: Kind::Full {
            conf: Conf::Ssh,
            jobs: 2,
        },
        peer_of: None,
    },
    Operation {
        id: "ssh-zstd-j1",
        about: "`backup_method = rsync` over sshd with `network_compression = true` (zstd on the \
                wire), `--reuse-backup off -j 1`",
        kind: Kind::Full {
            conf: Conf::SshZstd,
            jobs: 1,
        },
        peer_of: None,
    },
];

/// The peers' operations (`--with-peers`), each beside the barman-rs
/// operation with the same settings.
pub const PEER_OPERATIONS: [Operation; 12] = [
    Operation {
        id: "pgbackrest-p1",
        about: "pgBackRest full backup into a local repository, `--process-max=1 --compress-type=none`",
        kind: Kind::PgBackRest {
            ssh: false,
            procs: 1,
            zst: false,
            incr: false,
        },
        peer_of: Some("local-j1"),
    },
    Operation {
        id: "pgbackrest-p2",
        about: "the same with `--process-max=2`",
        kind: Kind::PgBackRest {
            ssh: false,
            procs: 2,
            zst: false,
            incr: false,
        },
        peer_of: Some("local-j2"),
    },
    Operation {
        id: "pgbackrest-incr",
        about: "after `pgbench -n -t 1000 -c 2`: pgBackRest `--type=incr --process-max=1`",
        kind: Kind::PgBackRest {
            ssh: false,
            procs: 1,
            zst: false,
            incr: true,
        },
        peer_of: Some("incremental"),
    },
    Operation {
        id: "pgbackrest-ssh-p1",
        about: "pgBackRest full backup through `pg1-host` over the loopback sshd, `--process-max=1 --compress-type=none`",
        kind: Kind::PgBackRest {
            ssh: true,
            procs: 1,
            zst: false,
            incr: false,
        },
        peer_of: Some("ssh-j1"),
    },
    Operation {
        id: "pgbackrest-ssh-p2",
        about: "the same with `--process-max=2`",
        kind: Kind::PgBackRest {
            ssh: true,
            procs: 2,
            zst: false,
            incr: false,
        },
        peer_of: Some("ssh-j2"),
    },
    Operation {
        id: "pgbackrest-ssh-zst-p1",
        about: "pgBackRest through `pg1-host` with `--compress-type=zst` (compressed on the PostgreSQL side, zstd on the wire)",
        kind: Kind::PgBackRest {
            ssh: true,
            procs: 1,
            zst: true,
            incr: false,
        },
        peer_of: Some("ssh-zstd-j1"),
    },
    Operation {
        id: "barman-py-local-j1",
        about: "Barman (Python) `backup_method = local-rsync`, `--reuse-backup off --jobs 1`",
        kind: Kind::BarmanPy {
            conf: PyConf::Local,
            jobs: 1,
            incr: false,
        },
        peer_of: Some("local-j1"),
    },
    Operation {
        id: "barman-py-local-j2",
        about: "the same with `--jobs 2`",
        kind: Kind::BarmanPy {
            conf: PyConf::Local,
            jobs: 2,
            incr: false,
        },
        peer_of: Some("local-j2"),
    },
    Operation {
        id: "barman-py-incr",
        about: "after `pgbench -n -t 1000 -c 2`: Barman local-rsync `--reuse-backup link --jobs 1`",
        kind: Kind::BarmanPy {
            conf: PyConf::Local,
            jobs: 1,
            incr: true,
        },
        peer_of: Some("incremental"),
    },
    Operation {
        id: "barman-py-ssh-j1",
        about: "Barman `backup_method = rsync` over the loopback sshd, `network_compression = false`, `--jobs 1`",
        kind: Kind::BarmanPy {
            conf: PyConf::Ssh,
            jobs: 1,
            incr: false,
        },
        peer_of: Some("ssh-j1"),
    },
    Operation {
        id: "barman-py-ssh-j2",
        about: "the same with `--jobs 2`",
        kind: Kind::BarmanPy {
            conf: PyConf::Ssh,
            jobs: 2,
            incr: false,
        },
        peer_of: Some("ssh-j2"),
    },
    Operation {
        id: "barman-py-ssh-z-j1",
        about: "Barman rsync over sshd with `network_compression = true` (rsync -z: zlib on the wire; Barman has no zstd here)",
        kind: Kind::BarmanPy {
            conf: PyConf::SshZ,
            jobs: 1,
            incr: false,
        },
        peer_of: Some("ssh-zstd-j1"),
    },
];

impl Operation {
    /// The command line as shown in the report.
    pub fn display(&self) -> String {
        match self.kind {
            Kind::Copy { sync: false } => "cp -a PGDATA DEST".to_owned(),
            Kind::Copy { sync: true } => "sh -c 'cp -a PGDATA DEST && sync'".to_owned(),
            Kind::Full { jobs, .. } => format!(
                "barman -c CONF -f json backup --reuse-backup off -j {jobs} --wait \
                 --wait-timeout {WAIT_TIMEOUT_S} pg"
            ),
            Kind::Incremental { jobs, .. } => format!(
                "barman -c CONF -f json backup --reuse-backup link -j {jobs} --wait \
                 --wait-timeout {WAIT_TIMEOUT_S} pg"
            ),
            Kind::PgBackRest {
                ssh,
                procs,
                zst,
                incr,
            } => format!(
                "pgbackrest --config=CONF --stanza=pg{} --type={} --process-max={procs} \
                 --compress-type={} backup",
                if ssh {
                    " --pg1-host=127.0.0.1 --pg1-host-port=PORT --cmd-ssh=SSH"
                } else {
                    ""
                },
                if incr { "incr" } else { "full" },
                if zst { "zst" } else { "none" },
            ),
            Kind::BarmanPy { jobs, incr, .. } => format!(
                "barman (Python) -c CONF backup --reuse-backup {} --jobs {jobs} --wait \
                 --wait-timeout {WAIT_TIMEOUT_S} pg",
                if incr { "link" } else { "off" }
            ),
        }
    }
}

/// The `copy` statistics `barman -f json backup` reports.
#[derive(Debug, Clone, Default)]
pub struct CopyStats {
    /// Files in the backup.
    pub files: u64,
    /// Files fetched whole from the source.
    pub files_fetched: u64,
    /// Files hard-linked from the previous backup.
    pub files_linked: u64,
    /// Files copied from the previous backup on the barman side.
    pub files_copied_locally: u64,
    /// Files rebuilt from a delta against the previous backup's copy.
    pub files_delta: u64,
    /// Bytes of the backup's files.
    pub bytes_total: u64,
    /// Bytes written into the backup directory (new content).
    pub bytes_written: u64,
    /// Bytes received from the source (`bytes_transferred`).
    pub bytes_transferred: u64,
    /// The copy phase alone, seconds.
    pub copy_seconds: f64,
    /// The object as printed.
    pub raw: Value,
}

impl CopyStats {
    fn from_json(copy: &Value) -> Self {
        let n = |key: &str| copy.get(key).and_then(Value::as_u64).unwrap_or(0);
        Self {
            files: n("files"),
            files_fetched: n("files_fetched"),
            files_linked: n("files_linked"),
            files_copied_locally: n("files_copied_locally"),
            files_delta: n("files_delta"),
            bytes_total: n("bytes_total"),
            bytes_written: n("bytes_written"),
            bytes_transferred: n("bytes_transferred"),
            copy_seconds: copy
                .get("copy_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN),
            raw: copy.clone(),
        }
    }
}

/// One timed run of one operation.
#[derive(Debug, Clone)]
pub struct Run {
    /// Spawn to exit, seconds.
    pub seconds: f64,
    /// Bytes the operation covered: PGDATA's regular files for `cp -a`,
    /// the copy's `bytes_total` for a backup.
    pub bytes: u64,
    /// Peak RSS of the measured process (`cp`/`sh`, or `barman`), KiB.
    pub rss_kib: Option<u64>,
    /// Peak RSS over the `barman agent` sessions (ssh operations), KiB.
    pub agent_rss_kib: Option<u64>,
    /// User + system CPU seconds of the measured process and its waited
    /// children (not the agents behind sshd).
    pub cpu_s: Option<f64>,
    /// The backup id (barman operations).
    pub backup_id: Option<String>,
    /// The copy statistics (barman operations).
    pub copy: Option<CopyStats>,
    /// Seconds of the `pgbench -n` run before an incremental (untimed).
    pub pgbench_s: Option<f64>,
}

/// Runs the scenario and writes the report.
pub fn run(options: &Options) -> Result<()> {
    let operations = select(&options.operations, options.with_peers)?;
    ensure!(options.runs > 0, "--runs must be at least 1");
    let peers = if options.with_peers {
        Some(Peers::install()?)
    } else {
        None
    };
    let pg_bin = std::env::var_os(barman_testkit::PG_BIN_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from(barman_testkit::DEFAULT_PG_BIN),
            PathBuf::from,
        );
    let conditions = Conditions::new(Machine::probe(&pg_bin), machine::load_average());
    let fixture = Fixture::start(options.scale, peers)?;
    eprintln!(
        "PGDATA {} holds {:.0} MB; pgbench -i took {:.1} s, archiving its WAL {:.1} s; \
         sshd on port {}, PostgreSQL on port {}",
        fixture.pg.data_dir().display(),
        mb(fixture.pgdata_bytes),
        fixture.pgbench_init_s,
        fixture.wal_catch_up_s,
        fixture.sshd.port(),
        fixture.pg.port()
    );

    let mut results: Vec<Vec<Run>> = vec![Vec::new(); operations.len()];
    for round in 1..=options.runs {
        // Whether a full backup was taken this round since the last
        // incremental (its base).
        let mut base_ready = false;
        for (op, runs) in operations.iter().zip(&mut results) {
            let r = run_once(&fixture, op, options.drop_caches, &mut base_ready)
                .with_context(|| format!("operation {} (run {round})", op.id))?;
            eprintln!(
                "run {round}/{}  {:<12} {:>8.2} s  {:>7.1} MB/s  peak RSS {}{}",
                options.runs,
                op.id,
                r.seconds,
                mb(r.bytes) / r.seconds,
                r.rss_kib
                    .map_or_else(|| "?".to_owned(), |k| format!("{:.1} MiB", kib_mib(k))),
                r.copy.as_ref().map_or_else(String::new, |c| format!(
                    "  files {} (linked {}, delta {}), written {:.0} MB, transferred {:.0} MB",
                    c.files,
                    c.files_linked,
                    c.files_delta,
                    mb(c.bytes_written),
                    mb(c.bytes_transferred)
                )),
            );
            runs.push(r);
        }
    }
    fixture.prune(0)?;

    let report = report::Report {
        conditions: conditions.ended(),
        scale: options.scale,
        runs: options.runs,
        drop_caches: options.drop_caches,
        pgdata_bytes: fixture.pgdata_bytes,
        pgbench_init_s: fixture.pgbench_init_s,
        wal_catch_up_s: fixture.wal_catch_up_s,
        operations: &operations,
        results: &results,
    };
    crate::report::publish(options.out.as_deref(), "backup", &report)
}

/// The operations named by `--operations` (all when empty; the peers'
/// only with `--with-peers`), in run order.
fn select(ids: &[String], with_peers: bool) -> Result<Vec<Operation>> {
    crate::select_by_id(
        &OPERATIONS,
        &PEER_OPERATIONS,
        with_peers,
        ids,
        "operation",
        |o| o.id,
    )
}

/// One run: prepare (untimed), run the operation, check, clean up.
fn run_once(
    fixture: &Fixture,
    op: &Operation,
    drop_caches: bool,
    base_ready: &mut bool,
) -> Result<Run> {
    let time_file = fixture.out_dir().join("time.txt");
    let _ = fs::remove_file(&time_file);
    match op.kind {
        Kind::Copy { sync } => {
            let dest = fixture.ref_dir().join("data");
            fixture::remove_dir(&dest)?;
            settle_for(drop_caches, &[fixture.pg.data_dir()])?;
            let src = fixture.pg.data_dir().to_string_lossy().into_owned();
            let dst = dest.to_string_lossy().into_owned();
            let mut cmd = if sync {
                fixture.timed(
                    &time_file,
                    "/bin/sh".as_ref(),
                    &["-c", "cp -a \"$0\" \"$1\" && sync", &src, &dst],
                )
            } else {
                fixture.timed(&time_file, "/bin/cp".as_ref(), &["-a", &src, &dst])
            };
            let bytes = fixture::tree_bytes(fixture.pg.data_dir())?;
            let t = Instant::now();
            let out = barman_testkit::output(&mut cmd)?;
            let seconds = t.elapsed().as_secs_f64();
            // cp of a live data directory may race with a file PostgreSQL
            // removes; anything else is a failure.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let vanished = stderr
                .lines()
                .all(|l| l.contains("No such file or directory"));
            ensure!(
                out.status.success() || (vanished && !stderr.trim().is_empty()),
                "`{}` failed ({}):\n{stderr}",
                op.display(),
                out.status,
            );
            if !out.status.success() {
                eprintln!("warning: files vanished during cp -a:\n{stderr}");
            }
            let copied = fixture::tree_bytes(&dest)?;
            ensure!(
                copied * 10 >= bytes * 9,
                "cp -a copied {copied} bytes of {bytes}"
            );
            fixture::remove_dir(&dest)?;
            let (rss_kib, cpu_s) = read_time_file(&time_file);
            Ok(Run {
                seconds,
                bytes,
                rss_kib,
                agent_rss_kib: None,
                cpu_s,
                backup_id: None,
                copy: None,
                pgbench_s: None,
            })
        }
        Kind::Full { conf, jobs } => {
            fixture.prune(1)?;
            let r = backup(fixture, conf, jobs, "off", &time_file, drop_caches)?;
            *base_ready = true;
            Ok(r)
        }
        Kind::Incremental { conf, jobs } => {
            if !*base_ready {
                eprintln!("taking an untimed full backup as the incremental's base");
                fixture.prune(0)?;
                backup(fixture, conf, jobs, "off", &time_file, false)?;
            }
            fixture.prune(1)?;
            let base = fixture.backup_ids()?;
            let pgbench_s = fixture.pgbench_run(INCREMENTAL_TRANSACTIONS, INCREMENTAL_CLIENTS)?;
            let mut r = backup(fixture, conf, jobs, "link", &time_file, drop_caches)?;
            if let Some(c) = &r.copy {
                let previous = c.raw.get("reused_backup").and_then(Value::as_str);
                ensure!(
                    previous.is_some_and(|p| base.iter().any(|b| b == p)),
                    "the incremental reused {previous:?}, not the previous backup {base:?}"
                );
            }
            r.pgbench_s = Some(pgbench_s);
            *base_ready = false;
            Ok(r)
        }
        Kind::PgBackRest { .. } | Kind::BarmanPy { .. } => {
            peer_backup(fixture, op, &time_file, drop_caches)
        }
    }
}

/// Settles the machine with `warm` (the operation's input) in the page
/// cache (see [`settle_for`]), then runs `cmd` timed spawn to exit.
pub fn time_it(
    cmd: &mut Command,
    cold: bool,
    warm: &std::path::Path,
) -> Result<(std::process::Output, f64)> {
    settle_for(cold, &[warm])?;
    let t = Instant::now();
    let out = barman_testkit::output(cmd)?;
    Ok((out, t.elapsed().as_secs_f64()))
}

/// One backup by a peer (pgBackRest or Barman), under GNU time; fails
/// unless the peer says it succeeded and its catalog shows the new backup
/// (pgBackRest: `info` lists it with the right type; Barman: its
/// `backup.info` says DONE).
fn peer_backup(
    fixture: &Fixture,
    op: &Operation,
    time_file: &std::path::Path,
    drop_caches: bool,
) -> Result<Run> {
    let world = fixture
        .peers
        .as_ref()
        .context("the peers' operations need --with-peers")?;
    let pgbr_info = |args: &[String]| -> Result<String> {
        let mut cmd = fixture.as_postgres(crate::peers::PGBACKREST);
        cmd.args(args);
        let out = barman_testkit::run(&mut cmd).context("pgbackrest info")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut pgbench_s = None;
    let (out, seconds, id) = match op.kind {
        Kind::PgBackRest {
            ssh,
            procs,
            zst,
            incr,
        } => {
            if incr {
                if world.pgbr()?.backups(&pgbr_info)?.is_empty() {
                    eprintln!("taking an untimed pgBackRest full backup as the incremental's base");
                    let mut cmd = fixture.as_postgres(crate::peers::PGBACKREST);
                    cmd.args(world.pgbr()?.args(&["--type=full", "backup"]));
                    barman_testkit::run(&mut cmd).context("pgbackrest backup --type=full")?;
                }
                pgbench_s =
                    Some(fixture.pgbench_run(INCREMENTAL_TRANSACTIONS, INCREMENTAL_CLIENTS)?);
            }
            let before = world.pgbr()?.backups(&pgbr_info)?;
            let mut args = world.pgbr()?.args(&[]);
            if ssh {
                args.extend(world.pgbr()?.pg_host_args());
            }
            args.push(format!("--type={}", if incr { "incr" } else { "full" }));
            args.push(format!("--process-max={procs}"));
            args.push(format!(
                "--compress-type={}",
                if zst { "zst" } else { "none" }
            ));
            args.push("backup".to_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = fixture.timed(time_file, crate::peers::PGBACKREST.as_ref(), &args);
            let (out, seconds) = time_it(&mut cmd, drop_caches, fixture.pg.data_dir())?;
            ensure!(
                out.status.success(),
                "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- sshd log ---\n{}",
                op.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                fixture.sshd_log()
            );
            let after = world.pgbr()?.backups(&pgbr_info)?;
            let newest = after.last().cloned().unwrap_or_default();
            let want = if incr { "incr" } else { "full" };
            ensure!(
                !before.contains(&newest) && newest.1 == want,
                "pgbackrest info does not list a new {want} backup after `{}`: {after:?}",
                op.display()
            );
            (out, seconds, newest.0)
        }
        Kind::BarmanPy { conf, jobs, incr } => {
            let barman = |args: &[&str]| {
                let mut cmd = fixture.as_postgres(world.peers.barman());
                cmd.arg("-c").arg(world.bpy.conf(conf)).args(args);
                cmd
            };
            // Keep the newest backup only (the incremental's base).
            let existing = world.bpy.backups()?;
            for (id, _) in &existing[..existing.len().saturating_sub(1)] {
                barman_testkit::run(&mut barman(&["delete", STANZA, id]))
                    .context("barman delete (Barman)")?;
            }
            if incr {
                if existing.is_empty() {
                    eprintln!("taking an untimed Barman backup as the incremental's base");
                    barman_testkit::run(&mut barman(&["backup", "--wait", STANZA]))
                        .context("barman backup (Barman)")?;
                }
                pgbench_s =
                    Some(fixture.pgbench_run(INCREMENTAL_TRANSACTIONS, INCREMENTAL_CLIENTS)?);
            }
            let before = world.bpy.backups()?;
            let conf_path = world.bpy.conf(conf).to_string_lossy().into_owned();
            let jobs = jobs.to_string();
            let wait_timeout = WAIT_TIMEOUT_S.to_string();
            let args = [
                "-c",
                &conf_path,
                "backup",
                "--reuse-backup",
                if incr { "link" } else { "off" },
                "--jobs",
                &jobs,
                "--wait",
                "--wait-timeout",
                &wait_timeout,
                STANZA,
            ];
            let mut cmd = fixture.timed(time_file, &world.peers.barman(), &args);
            let (out, seconds) = time_it(&mut cmd, drop_caches, fixture.pg.data_dir())?;
            let after = world.bpy.backups()?;
            let new: Vec<_> = after.iter().filter(|b| !before.contains(b)).collect();
            ensure!(
                out.status.success() && new.len() == 1 && new[0].1 == "DONE",
                "`{}` exited with {} and left {new:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- Barman log ---\n{}",
                op.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                world.bpy.log_tail()
            );
            (out, seconds, new[0].0.clone())
        }
        _ => bail!("{} is not a peer's operation", op.id),
    };
    drop(out);
    let (rss_kib, cpu_s) = read_time_file(time_file);
    // What a backup covers (PGDATA without pg_wal), as barman-rs's rows.
    let wal = fixture::tree_bytes(&fixture.pg.data_dir().join("pg_wal"))?;
    Ok(Run {
        seconds,
        bytes: fixture.pgdata_bytes.saturating_sub(wal),
        rss_kib,
        agent_rss_kib: None,
        cpu_s,
        backup_id: Some(id),
        copy: None,
        pgbench_s,
    })
}

/// `sync` (all filesystems), and the page cache dropped when asked: the
/// previous steps' writeback is not paid by the next measurement.
pub fn settle(drop_caches: bool) -> Result<()> {
    barman_testkit::run(&mut Command::new("sync")).context("sync")?;
    if drop_caches {
        fs::write("/proc/sys/vm/drop_caches", "3").context("echo 3 > /proc/sys/vm/drop_caches")?;
    }
    Ok(())
}

/// Puts the machine in the same state before every measured operation:
/// `sync`, the page cache dropped, then — unless `cold` — the operation's
/// input (`warm`: PGDATA, or the backup being restored) read back into it.
/// Every operation, reference or not, starts with its input cached and
/// nothing else: without this, an operation that follows one which filled
/// the cache pays for reclaiming it (seen: `cp -a` 3× slower right after a
/// peer's backup than right after another `cp -a`).
pub fn settle_for(cold: bool, warm: &[&std::path::Path]) -> Result<()> {
    settle(true)?;
    if !cold {
        let mut buf = vec![0u8; 1 << 20];
        for dir in warm {
            fixture::for_each_file(dir, |path, _| {
                if let Ok(mut f) = fs::File::open(path) {
                    use std::io::Read as _;
                    while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
                }
            })?;
        }
    }
    Ok(())
}

/// One `barman -f json backup` under GNU time; fails unless the backup
/// ends DONE.
pub fn backup(
    fixture: &Fixture,
    conf: Conf,
    jobs: u32,
    reuse: &str,
    time_file: &std::path::Path,
    drop_caches: bool,
) -> Result<Run> {
    let agent_file = fixture.out_dir().join("agent-time.txt");
    let _ = fs::remove_file(&agent_file);
    let conf_path = fixture.conf(conf).to_string_lossy().into_owned();
    let jobs = jobs.to_string();
    let wait_timeout = WAIT_TIMEOUT_S.to_string();
    let barman = fixture.bin().join("barman");
    let mut cmd = fixture.timed(
        time_file,
        &barman,
        &[
            "-c",
            &conf_path,
            "-f",
            "json",
            "backup",
            "--reuse-backup",
            reuse,
            "-j",
            &jobs,
            "--wait",
            "--wait-timeout",
            &wait_timeout,
            SERVER,
        ],
    );
    if conf.uses_ssh() {
        // What runs after ssh_command on the PostgreSQL side: the staged
        // barman under GNU time, appending each session's peak RSS.
        cmd.env(
            "BARMAN_AGENT_COMMAND",
            format!(
                "{} -a -o {} -f %M {} agent",
                fixture::TIME,
                agent_file.display(),
                barman.display()
            ),
        );
    }
    let (out, seconds) = time_it(&mut cmd, drop_caches, fixture.pg.data_dir())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failure = |what: String| {
        let sshd = if conf.uses_ssh() {
            format!("\n--- sshd log (tail) ---\n{}", fixture.sshd_log())
        } else {
            String::new()
        };
        anyhow::anyhow!(
            "{what}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- barman log (tail) ---\n{}{sshd}",
            fixture.log_tail()
        )
    };
    let doc: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        failure(format!(
            "`barman backup` ({}) printed no JSON document: {e}",
            out.status
        ))
    })?;
    let result = doc
        .get(SERVER)
        .ok_or_else(|| failure(format!("no `{SERVER}` key in the JSON output")))?;
    let id = result
        .get("backup_id")
        .and_then(Value::as_str)
        .ok_or_else(|| failure("no backup_id in the JSON output".to_owned()))?
        .to_owned();
    if !out.status.success() {
        return Err(failure(format!(
            "`barman backup` exited with {} (backup {id})",
            out.status
        )));
    }
    let status = fixture.backup_status(&id)?;
    if status != "DONE" {
        return Err(failure(format!(
            "backup {id} ended with status={status}, not DONE"
        )));
    }
    let copy = result
        .get("copy")
        .map(CopyStats::from_json)
        .ok_or_else(|| failure("no `copy` statistics in the JSON output".to_owned()))?;
    let (rss_kib, cpu_s) = read_time_file(time_file);
    let agent_rss_kib = conf
        .uses_ssh()
        .then(|| {
            fs::read_to_string(&agent_file)
                .ok()?
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .max()
        })
        .flatten();
    Ok(Run {
        seconds,
        bytes: copy.bytes_total,
        rss_kib,
        agent_rss_kib,
        cpu_s,
        backup_id: Some(id),
        copy: Some(copy),
        pgbench_s: None,
    })
}

/// The peak RSS (KiB) and user + system seconds GNU time wrote with
/// `-f '%M %e %U %S'` (its last line; a first line may say the command
/// exited non-zero).
pub fn read_time_file(path: &std::path::Path) -> (Option<u64>, Option<f64>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return (None, None);
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let rss = fields.first().and_then(|v| v.parse().ok());
    let cpu = match (
        fields.get(2).and_then(|v| v.parse::<f64>().ok()),
        fields.get(3).and_then(|v| v.parse::<f64>().ok()),
    ) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    (rss, cpu)
}

/// Bytes as MB (10^6).
pub fn mb(bytes: u64) -> f64 {
    // Exact below 2^53 bytes.
    let kb = u32::try_from(bytes / 1000).unwrap_or(u32::MAX);
    f64::from(kb) / 1000.0
}

/// KiB as MiB.
pub fn kib_mib(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).unwrap_or(u32::MAX)) / 1024.0
}
