//! `incremental`: PostgreSQL 17+ block-level incremental backups end to
//! end, barman-rs beside real Barman on the same cluster.
//!
//! The world is the `backup` scenario's [`Fixture`] on PostgreSQL 18 (the
//! complete build: server and client tools) or 17 (the embedded server),
//! with `summarize_wal = on`, archiving through `barman put-wal` (and into
//! Barman's `incoming/`), filled by `pgbench -i -s SCALE`. barman-rs backs
//! up with `backup_method = postgres` (its own replication client); Barman
//! (the peer virtualenv) with `backup_method = postgres`, `path_prefix` =
//! PostgreSQL 18's binaries (`pg_basebackup --incremental`,
//! `pg_combinebackup`) and a `local_staging_path`.
//!
//! One run: a full backup by each (barman-rs first, then Barman), then
//! three times `pgbench -n -t 1000 -c 2` (untimed) followed by an
//! incremental backup by each (barman-rs `--incremental latest`, Barman
//! `--incremental <its newest>`); then `barman recover --target-immediate
//! --target-action promote -j JOBS` (`--jobs`, default 1) of the full
//! backup alone and of the third increment (the chain of four combined)
//! by each into fresh directories.
//! Every operation runs as `postgres` under GNU time (peak RSS, CPU),
//! timed spawn to exit, after `sync`, the page cache dropped and the
//! operation's input (PGDATA for a backup, the backups of the chain for a
//! recovery) read back into it (`--drop-caches`: left cold).
//!
//! Every backup must end DONE with the expected parent; on the last run
//! PostgreSQL is started on every recovery and must reach, as a primary,
//! exactly the primary's state when that backup was taken (rows, the sum
//! of `abalance`, the rows of `pgbench_history`), or the benchmark fails.
//! With `--major 17`, Barman cannot recover (no `pg_combinebackup` 17 on
//! this machine; it must match the backup's major), so only its backups
//! are measured.
//!
//! Then, on a second fixture with PostgreSQL 15 (idle after `pgbench -i`),
//! a full backup with `backup_compression = zstd` (tar, compressed by the
//! client) by each, `--runs` times: Barman compresses with
//! `pg_basebackup --compress=client-zstd`, and the only `pg_basebackup`
//! here built with zstd is PostgreSQL 15's, which refuses newer servers.
//! Each must end DONE with `compression = zstd`; on the last run each is
//! recovered (untimed) and started like the others.

mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use barman_testkit::DataDirServer;
use serde_json::Value;

use crate::backup::fixture::{self, Conf, Fixture, SERVER, Setup};
use crate::backup::{kib_mib, mb, read_time_file, settle_for};
use crate::machine::{self, Machine};
use crate::peers::{Peers, STANZA};
use crate::report::Conditions;
use barman_testkit::PG18_BIN;

/// Options of the `incremental` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// pgbench scale of the cluster (≈ 15 MB per unit: 100 ≈ 1.5 GB).
    #[arg(long, default_value_t = 100)]
    pub scale: u32,
    /// Runs of the whole sequence (full, three increments, recoveries;
    /// then the zstd backups); the median of each operation is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// PostgreSQL major of the cluster: 18 (the complete build) or 17
    /// (server only; Barman's recoveries are then skipped: no
    /// `pg_combinebackup` 17 here).
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u32).range(17..=18))]
    pub major: u32,
    /// `-j` of barman-rs's recoveries and `--jobs` of Barman's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Leave the page cache empty before every operation (cold reads)
    /// instead of holding the operation's input.
    #[arg(long)]
    pub drop_caches: bool,
    /// barman-rs alone (no real Barman beside it).
    #[arg(long)]
    pub without_barman: bool,
    /// Where incremental.md and incremental.json go
    /// [default: <cargo target dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The increments of a run.
pub const INCREMENTS: u8 = 3;
/// `pgbench -n -t` before each increment.
const TRANSACTIONS: u32 = 1000;
/// `pgbench -n -c` before each increment.
const CLIENTS: u32 = 2;
/// The compression lines of both tools' `backup_compression` rows.
const ZSTD_LINES: &str = "backup_compression = zstd\nbackup_compression_format = tar\n\
     backup_compression_location = client\n";
/// `--wait-timeout` of barman-rs's backups, seconds.
const WAIT_TIMEOUT_S: u32 = 120;

/// Who runs an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// barman-rs.
    Ours,
    /// Barman (Python, the peer virtualenv).
    Barman,
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A full backup.
    Full,
    /// The n-th incremental backup (1..=3), after `pgbench -n`.
    Increment(u8),
    /// `barman recover` of the full backup alone.
    RecoverFull,
    /// `barman recover` of the third increment: the chain combined.
    RecoverChain,
    /// A full backup with `backup_compression = zstd`, tar format,
    /// compressed by the client (after the recoveries).
    Zstd,
}

/// One measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// Who.
    pub tool: Tool,
    /// What.
    pub step: Step,
}

impl Operation {
    /// The row id (`full`, `inc-2`, `recover-chain`, `barman-py-full`, ...).
    pub fn id(self) -> &'static str {
        match (self.tool, self.step) {
            (Tool::Ours, Step::Full) => "full",
            (Tool::Ours, Step::Increment(1)) => "inc-1",
            (Tool::Ours, Step::Increment(2)) => "inc-2",
            (Tool::Ours, Step::Increment(_)) => "inc-3",
            (Tool::Ours, Step::RecoverFull) => "recover-full",
            (Tool::Ours, Step::RecoverChain) => "recover-chain",
            (Tool::Barman, Step::Full) => "barman-py-full",
            (Tool::Barman, Step::Increment(1)) => "barman-py-inc-1",
            (Tool::Barman, Step::Increment(2)) => "barman-py-inc-2",
            (Tool::Barman, Step::Increment(_)) => "barman-py-inc-3",
            (Tool::Barman, Step::RecoverFull) => "barman-py-recover-full",
            (Tool::Barman, Step::RecoverChain) => "barman-py-recover-chain",
            (Tool::Ours, Step::Zstd) => "zstd",
            (Tool::Barman, Step::Zstd) => "barman-py-zstd",
        }
    }

    /// For Barman's operation, the barman-rs one it is compared with.
    pub fn peer_of(self) -> Option<&'static str> {
        (self.tool == Tool::Barman).then(|| {
            Self {
                tool: Tool::Ours,
                step: self.step,
            }
            .id()
        })
    }

    /// Whether it is a backup (else a recovery).
    pub fn is_backup(self) -> bool {
        matches!(self.step, Step::Full | Step::Increment(_) | Step::Zstd)
    }

    /// The command line as shown in the report.
    pub fn display(self) -> String {
        let recover = "--target-immediate --target-action promote";
        match (self.tool, self.step) {
            (Tool::Ours, Step::Full) => {
                format!("barman -c CONF -f json backup --wait --wait-timeout {WAIT_TIMEOUT_S} pg")
            }
            (Tool::Ours, Step::Increment(_)) => format!(
                "barman -c CONF -f json backup --incremental latest --wait --wait-timeout \
                 {WAIT_TIMEOUT_S} pg"
            ),
            (Tool::Ours, Step::RecoverFull) => {
                format!("barman -c CONF -f json recover -j JOBS {recover} pg FULL_ID DEST")
            }
            (Tool::Ours, Step::RecoverChain) => {
                format!("barman -c CONF -f json recover -j JOBS {recover} pg INC3_ID DEST")
            }
            (Tool::Barman, Step::Full) => "barman (Python) -c CONF backup --wait pg".to_owned(),
            (Tool::Barman, Step::Increment(_)) => {
                "barman (Python) -c CONF backup --incremental PARENT_ID --wait pg".to_owned()
            }
            (Tool::Barman, Step::RecoverFull) => {
                format!("barman (Python) -c CONF recover --jobs JOBS {recover} pg FULL_ID DEST")
            }
            (Tool::Barman, Step::RecoverChain) => {
                format!("barman (Python) -c CONF recover --jobs JOBS {recover} pg INC3_ID DEST")
            }
            (Tool::Ours, Step::Zstd) => format!(
                "barman -c ZSTD_CONF -f json backup --wait --wait-timeout {WAIT_TIMEOUT_S} pg"
            ),
            (Tool::Barman, Step::Zstd) => {
                "barman (Python) -c ZSTD_CONF backup --wait pg".to_owned()
            }
        }
    }

    /// What it is, for the report.
    pub fn about(self) -> String {
        let who = match self.tool {
            Tool::Ours => "barman-rs",
            Tool::Barman => "Barman (Python)",
        };
        match (self.tool, self.step) {
            (Tool::Ours, Step::Full) => format!(
                "{who} full backup, `backup_method = postgres` (its own replication client)"
            ),
            (Tool::Barman, Step::Full) => format!(
                "{who} full backup, `backup_method = postgres` (`pg_basebackup` 18, plain format)"
            ),
            (_, Step::Increment(n)) => format!(
                "{who} incremental backup #{n} (parent: the previous backup) after \
                 `pgbench -n -t {TRANSACTIONS} -c {CLIENTS}`"
            ),
            (_, Step::RecoverFull) => {
                format!("{who} recovery of the full backup alone into a fresh directory")
            }
            (Tool::Ours, Step::RecoverChain) => format!(
                "{who} recovery of the third increment: full + 3 increments combined while \
                 they stream into the destination"
            ),
            (Tool::Barman, Step::RecoverChain) => format!(
                "{who} recovery of the third increment: `pg_combinebackup` 18 into \
                 `local_staging_path`, then rsync into the destination"
            ),
            (Tool::Ours, Step::Zstd) => format!(
                "{who} full backup with `backup_compression = zstd`, \
                 `backup_compression_format = tar` (compressed by barman-rs as the stream \
                 arrives, level 3)"
            ),
            (Tool::Barman, Step::Zstd) => format!(
                "{who} full backup with `backup_compression = zstd`, \
                 `backup_compression_format = tar` (`pg_basebackup --format=tar \
                 --compress=client-zstd`)"
            ),
        }
    }
}

/// The operations in report order: barman-rs's, then Barman's.
pub fn operations(with_barman: bool, barman_recovers: bool) -> Vec<Operation> {
    let steps: Vec<Step> = [Step::Full]
        .into_iter()
        .chain((1..=INCREMENTS).map(Step::Increment))
        .chain([Step::RecoverFull, Step::RecoverChain, Step::Zstd])
        .collect();
    let mut ops: Vec<Operation> = steps
        .iter()
        .map(|&step| Operation {
            tool: Tool::Ours,
            step,
        })
        .collect();
    if with_barman {
        ops.extend(
            steps
                .iter()
                .filter(|s| {
                    barman_recovers || matches!(s, Step::Full | Step::Increment(_) | Step::Zstd)
                })
                .map(|&step| Operation {
                    tool: Tool::Barman,
                    step,
                }),
        );
    }
    ops
}

/// A backup's size as its catalog and the disk tell.
#[derive(Debug, Clone)]
pub struct Bytes {
    /// The backup id.
    pub id: String,
    /// backup.info `size`.
    pub size: Option<u64>,
    /// backup.info `deduplicated_size`.
    pub deduplicated_size: Option<u64>,
    /// `du -s -B1 base/<id>`.
    pub du: u64,
    /// backup.info `compression` (`None`: plain files).
    pub compression: Option<String>,
}

/// One timed run of one operation.
#[derive(Debug, Clone)]
pub struct Run {
    /// Spawn to exit, seconds.
    pub seconds: f64,
    /// Peak RSS of the command (GNU time), KiB.
    pub rss_kib: Option<u64>,
    /// User + system CPU seconds of the command and its children.
    pub cpu_s: Option<f64>,
    /// A backup's sizes.
    pub bytes: Option<Bytes>,
    /// A recovery's destination, `du -s -B1`.
    pub dest_du: Option<u64>,
    /// What barman-rs printed (`-f json`).
    pub json: Option<Value>,
}

/// The primary's data as a recovery must show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State(pub String);

/// SQL giving a [`State`]: rows and the sum of `abalance` of
/// `pgbench_accounts`, rows of `pgbench_history`.
const STATE_SQL: &str = "SELECT (SELECT count(*) FROM pgbench_accounts) || ' accounts, sum ' || \
     (SELECT sum(abalance) FROM pgbench_accounts) || ', ' || \
     (SELECT count(*) FROM pgbench_history) || ' history'";

/// PostgreSQL started on a recovery.
#[derive(Debug, Clone)]
pub struct Check {
    /// The recovery's operation id.
    pub operation: &'static str,
    /// The state found, equal to the primary's at the backup.
    pub state: String,
    /// Start until it answered as a primary, seconds.
    pub start_s: f64,
}

/// The scenario's world: the fixture and Barman's configuration.
struct World {
    fixture: Fixture,
    /// Barman's `backup_method = postgres` configuration.
    barman_conf: Option<PathBuf>,
    /// barman-rs's configuration with `backup_compression = zstd`.
    zstd_conf: PathBuf,
    /// Barman's, the same.
    barman_zstd_conf: Option<PathBuf>,
    drop_caches: bool,
    /// `-j` / `--jobs` of the recoveries.
    jobs: u32,
}

/// Runs the scenario and writes the report.
pub fn run(options: &Options) -> Result<()> {
    ensure!(options.runs > 0, "--runs must be at least 1");
    let with_barman = !options.without_barman;
    let barman_recovers = with_barman && options.major == 18;
    let peers = if with_barman {
        Some(Peers::install()?)
    } else {
        None
    };
    let load_before = machine::load_average();
    let setup = Setup {
        major: Some(options.major),
        conf: vec!["summarize_wal = on".to_owned()],
        pgbackrest: false,
    };
    let world = World::start(options, peers.clone(), &setup, Path::new(PG18_BIN))?;
    let conditions = Conditions::new(Machine::probe(world.fixture.pg.pg_bin()), load_before);
    let pgdata_bytes = world.fixture.pgdata_bytes;
    let ops = operations(with_barman, barman_recovers);
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); ops.len()];
    let mut checks = Vec::new();
    for round in 1..=options.runs {
        let last = round == options.runs;
        one_run(
            &world,
            &ops,
            &mut results,
            &mut checks,
            last,
            round,
            options,
        )
        .with_context(|| format!("run {round}"))?;
    }
    world.fixture.prune(0)?;
    drop(world);

    // The compressed backups, on a PostgreSQL 15 cluster: Barman compresses
    // with `pg_basebackup --compress=client-zstd`, and the only
    // `pg_basebackup` here built with zstd is PostgreSQL 15's, which
    // refuses newer servers (PostgreSQL 18's is built without zstd).
    let zstd_pg = crate::machine::Machine::probe(Path::new(barman_testkit::DEFAULT_PG_BIN));
    let world = World::start(
        options,
        peers,
        &Setup::default(),
        Path::new(barman_testkit::DEFAULT_PG_BIN),
    )?;
    for round in 1..=options.runs {
        zstd_run(
            &world,
            &ops,
            &mut results,
            &mut checks,
            round == options.runs,
            round,
            options,
        )
        .with_context(|| format!("compressed backups, run {round}"))?;
    }
    world.fixture.prune(0)?;

    let report = report::Report {
        conditions: conditions.ended(),
        options,
        pgdata_bytes,
        zstd_pg: zstd_pg.to_json(),
        operations: &ops,
        results: &results,
        checks: &checks,
        peers: world.fixture.peers.as_ref().map(|w| &w.peers),
    };
    crate::report::publish(options.out.as_deref(), "incremental", &report)
}

impl World {
    /// The fixture of `setup` at the scale of `options`, barman-rs's
    /// configuration with `backup_compression = zstd` beside its others and,
    /// with `peers`, Barman's postgres-method configurations (plain and
    /// zstd) using the client tools in `path_prefix`.
    fn start(
        options: &Options,
        peers: Option<Peers>,
        setup: &Setup,
        path_prefix: &Path,
    ) -> Result<Self> {
        let fixture = Fixture::start_with(options.scale, peers, setup)?;
        let (barman_conf, barman_zstd_conf) = match &fixture.peers {
            Some(world) => {
                let conf = |name, extra| {
                    world
                        .bpy
                        .write_postgres_conf(name, &fixture.pg.conninfo(), path_prefix, extra)
                };
                (
                    Some(conf("postgres", "")?),
                    Some(conf("postgres-zstd", ZSTD_LINES)?),
                )
            }
            None => (None, None),
        };
        // barman-rs's: the postgres-method configuration (its server
        // section last) with the compression lines appended.
        let zstd_conf = fixture.barman_dir().join("postgres-zstd.conf");
        let text = fs::read_to_string(fixture.conf(Conf::Postgres))?;
        fs::write(&zstd_conf, format!("{text}{ZSTD_LINES}"))
            .with_context(|| format!("write {}", zstd_conf.display()))?;
        barman_testkit::chown_to(&zstd_conf, barman_testkit::SERVER_OS_USER)?;
        barman_testkit::chmod(&zstd_conf, 0o600)?;
        eprintln!(
            "PostgreSQL {} on port {}: PGDATA {:.0} MB; pgbench -i took {:.1} s, archiving its \
             WAL {:.1} s",
            fixture.pg.major(),
            fixture.pg.port(),
            mb(fixture.pgdata_bytes),
            fixture.pgbench_init_s,
            fixture.wal_catch_up_s,
        );
        Ok(Self {
            fixture,
            barman_conf,
            zstd_conf,
            barman_zstd_conf,
            drop_caches: options.drop_caches,
            jobs: options.jobs,
        })
    }
}

/// One run of the whole sequence; the recoveries of the `last` run are
/// started with PostgreSQL and checked.
fn one_run(
    world: &World,
    ops: &[Operation],
    results: &mut [Vec<Run>],
    checks: &mut Vec<Check>,
    last: bool,
    round: usize,
    options: &Options,
) -> Result<()> {
    let fixture = &world.fixture;
    world.clear_catalogs()?;
    let mut record = |op: Operation, run: Run| record_run(ops, results, op, run, round, options);
    let with_barman = ops.iter().any(|o| o.tool == Tool::Barman);
    let mut states = Vec::new();
    let mut ours_ids: Vec<String> = Vec::new();
    let mut theirs_ids: Vec<String> = Vec::new();
    for step in [Step::Full]
        .into_iter()
        .chain((1..=INCREMENTS).map(Step::Increment))
    {
        if step != Step::Full {
            fixture.pgbench_run(TRANSACTIONS, CLIENTS)?;
        }
        states.push(State(fixture.pg.psql(STATE_SQL)?));
        let conf = fixture.conf(Conf::Postgres);
        let r = ours_backup(world, &conf, ours_ids.last().map(String::as_str))
            .with_context(|| format!("barman-rs backup {step:?}"))?;
        ours_ids.push(r.bytes.as_ref().map(|b| b.id.clone()).unwrap_or_default());
        record(
            Operation {
                tool: Tool::Ours,
                step,
            },
            r,
        );
        if with_barman {
            let conf = world
                .barman_conf
                .as_ref()
                .context("no Barman configuration")?;
            let r = barman_backup(world, conf, theirs_ids.last().map(String::as_str))
                .with_context(|| format!("Barman backup {step:?}"))?;
            theirs_ids.push(r.bytes.as_ref().map(|b| b.id.clone()).unwrap_or_default());
            record(
                Operation {
                    tool: Tool::Barman,
                    step,
                },
                r,
            );
        }
    }
    fixture.catch_up_wal()?;
    let recoveries = ops
        .iter()
        .filter(|o| matches!(o.step, Step::RecoverFull | Step::RecoverChain));
    for op in recoveries {
        let (ids, state) = match op.step {
            Step::RecoverFull => (
                &ours_or_theirs(op.tool, &ours_ids, &theirs_ids)[..1],
                &states[0],
            ),
            _ => (
                ours_or_theirs(op.tool, &ours_ids, &theirs_ids),
                &states[states.len() - 1],
            ),
        };
        let dest = fixture.ref_dir().join(op.id());
        fixture::remove_dir(&dest)?;
        let r = recover(world, *op, ids, &dest).with_context(|| op.id().to_owned())?;
        record(*op, r);
        if last {
            let check = start_recovered(fixture, &dest, op.id(), state);
            fixture::remove_dir(&dest)?;
            let check = check?;
            eprintln!(
                "PostgreSQL on the {} recovery: {} (as at the backup), up in {:.1} s",
                check.operation, check.state, check.start_s
            );
            checks.push(check);
        } else {
            fixture::remove_dir(&dest)?;
        }
    }
    Ok(())
}

/// One run of the compressed backups on `world`'s cluster (idle since
/// `pgbench -i`); on the `last` run each is recovered (untimed) and
/// started with PostgreSQL.
fn zstd_run(
    world: &World,
    ops: &[Operation],
    results: &mut [Vec<Run>],
    checks: &mut Vec<Check>,
    last: bool,
    round: usize,
    options: &Options,
) -> Result<()> {
    let fixture = &world.fixture;
    world.clear_catalogs()?;
    let state = State(fixture.pg.psql(STATE_SQL)?);
    let mut record = |op: Operation, run: Run| record_run(ops, results, op, run, round, options);
    for op in ops.iter().filter(|o| o.step == Step::Zstd) {
        let r = match op.tool {
            Tool::Ours => ours_backup(world, &world.zstd_conf, None),
            Tool::Barman => barman_backup(
                world,
                world
                    .barman_zstd_conf
                    .as_ref()
                    .context("no Barman configuration")?,
                None,
            ),
        }
        .with_context(|| op.id().to_owned())?;
        let bytes = r.bytes.as_ref().context("no backup sizes")?;
        ensure!(
            bytes.compression.as_deref() == Some("zstd"),
            "{}: backup {} has compression {:?}, not zstd",
            op.id(),
            bytes.id,
            bytes.compression
        );
        let id = bytes.id.clone();
        record(*op, r);
        if last {
            // Untimed: the compressed backup recovered and started.
            let dest = fixture.ref_dir().join(op.id());
            fixture::remove_dir(&dest)?;
            recover(world, *op, std::slice::from_ref(&id), &dest)
                .with_context(|| format!("recovery of {} (untimed check)", op.id()))?;
            let check = start_recovered(fixture, &dest, op.id(), &state);
            fixture::remove_dir(&dest)?;
            let check = check?;
            eprintln!(
                "PostgreSQL on the recovery of {}: {} (as at the backup), up in {:.1} s",
                check.operation, check.state, check.start_s
            );
            checks.push(check);
        }
    }
    Ok(())
}

impl World {
    /// Removes every backup from both catalogs.
    fn clear_catalogs(&self) -> Result<()> {
        self.fixture.prune(0)?;
        if let Some(w) = &self.fixture.peers {
            let base = w.bpy.server_dir().join("base");
            for (id, _) in w.bpy.backups()? {
                let info = w.bpy.info_path(&id);
                if info.exists() {
                    fs::remove_file(&info).with_context(|| format!("remove {}", info.display()))?;
                }
                fixture::remove_dir(&base.join(id))?;
            }
        }
        Ok(())
    }
}

/// Files `run` under `op` in `results` and prints it.
fn record_run(
    ops: &[Operation],
    results: &mut [Vec<Run>],
    op: Operation,
    run: Run,
    round: usize,
    options: &Options,
) {
    eprintln!(
        "run {round}/{}  {:<24} {:>8.2} s  peak RSS {}{}",
        options.runs,
        op.id(),
        run.seconds,
        run.rss_kib
            .map_or_else(|| "?".to_owned(), |k| format!("{:.1} MiB", kib_mib(k))),
        run.bytes.as_ref().map_or_else(String::new, |b| format!(
            "  {}: size {:?}, du {:.1} MB",
            b.id,
            b.size,
            mb(b.du)
        )),
    );
    if let Some(i) = ops.iter().position(|o| *o == op) {
        results[i].push(run);
    }
}

fn ours_or_theirs<'a>(tool: Tool, ours: &'a [String], theirs: &'a [String]) -> &'a [String] {
    match tool {
        Tool::Ours => ours,
        Tool::Barman => theirs,
    }
}

/// `du -s -B1 DIR`: bytes on disk.
fn du(dir: &Path) -> Result<u64> {
    let out = barman_testkit::run(Command::new("du").args(["-s", "-B1"]).arg(dir))
        .with_context(|| format!("du {}", dir.display()))?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("parse du {}", dir.display()))
}

/// The `key=value` of a backup.info file.
fn info_field(info: &Path, key: &str) -> Result<Option<String>> {
    let text = fs::read_to_string(info).with_context(|| format!("read {}", info.display()))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v != "None"))
}

/// The sizes of backup `id` whose backup.info is `info`, directory `dir`.
fn bytes_of(id: &str, info: &Path, dir: &Path) -> Result<Bytes> {
    let n =
        |key| -> Result<Option<u64>> { Ok(info_field(info, key)?.and_then(|v| v.parse().ok())) };
    Ok(Bytes {
        id: id.to_owned(),
        size: n("size")?,
        deduplicated_size: n("deduplicated_size")?,
        du: du(dir)?,
        compression: info_field(info, "compression")?,
    })
}

/// Runs `cmd` timed after settling the page cache with `warm` in it.
fn timed(
    world: &World,
    cmd: &mut Command,
    warm: &[&Path],
    time_file: &Path,
) -> Result<(std::process::Output, Run)> {
    settle_for(world.drop_caches, warm)?;
    let t = Instant::now();
    let out = barman_testkit::output(cmd)?;
    let seconds = t.elapsed().as_secs_f64();
    let (rss_kib, cpu_s) = read_time_file(time_file);
    Ok((
        out,
        Run {
            seconds,
            rss_kib,
            cpu_s,
            bytes: None,
            dest_du: None,
            json: None,
        },
    ))
}

/// A command's output for an error message.
fn outputs(out: &std::process::Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// barman-rs's backup: full when `parent` is `None`, else
/// `--incremental latest`, which must pick `parent`.
fn ours_backup(world: &World, conf: &Path, parent: Option<&str>) -> Result<Run> {
    let fixture = &world.fixture;
    let time_file = fixture.out_dir().join("time.txt");
    let _ = fs::remove_file(&time_file);
    let conf = conf.to_string_lossy().into_owned();
    let wait = WAIT_TIMEOUT_S.to_string();
    let mut args = vec!["-c", &conf, "-f", "json", "backup"];
    if parent.is_some() {
        args.extend(["--incremental", "latest"]);
    }
    args.extend(["--wait", "--wait-timeout", &wait, SERVER]);
    let mut cmd = fixture.timed(&time_file, &fixture.bin().join("barman"), &args);
    let (out, mut run) = timed(world, &mut cmd, &[fixture.pg.data_dir()], &time_file)?;
    let fail = |what: String| {
        anyhow::anyhow!(
            "{what}\n{}\n--- barman log (tail) ---\n{}",
            outputs(&out),
            fixture.log_tail()
        )
    };
    if !out.status.success() {
        return Err(fail(format!("`barman backup` exited with {}", out.status)));
    }
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("`barman backup` printed no JSON document: {e}")))?;
    let id = doc
        .get(SERVER)
        .and_then(|r| r.get("backup_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no backup_id in the JSON output".to_owned()))?
        .to_owned();
    let status = fixture.backup_status(&id)?;
    ensure!(
        status == "DONE",
        "{}",
        fail(format!("backup {id}: status={status}"))
    );
    let info = fixture
        .server_dir()
        .join("meta")
        .join(format!("{id}-backup.info"));
    let got_parent = info_field(&info, "parent_backup_id")?;
    ensure!(
        got_parent.as_deref() == parent,
        "backup {id}: parent_backup_id {got_parent:?}, expected {parent:?}"
    );
    run.bytes = Some(bytes_of(
        &id,
        &info,
        &fixture.server_dir().join("base").join(&id),
    )?);
    run.json = Some(doc);
    Ok(run)
}

/// Barman's backup: full when `parent` is `None`, else `--incremental
/// PARENT`.
fn barman_backup(world: &World, conf: &Path, parent: Option<&str>) -> Result<Run> {
    let fixture = &world.fixture;
    let peer = fixture.peers.as_ref().context("Barman is not set up")?;
    let time_file = fixture.out_dir().join("time.txt");
    let _ = fs::remove_file(&time_file);
    let before = peer.bpy.backups()?;
    let conf_s = conf.to_string_lossy().into_owned();
    let mut args = vec!["-c", &conf_s, "backup"];
    if let Some(p) = parent {
        args.extend(["--incremental", p]);
    }
    args.extend(["--wait", STANZA]);
    let mut cmd = fixture.timed(&time_file, &peer.peers.barman(), &args);
    let (out, mut run) = timed(world, &mut cmd, &[fixture.pg.data_dir()], &time_file)?;
    let after = peer.bpy.backups()?;
    let new: Vec<&(String, String)> = after.iter().filter(|b| !before.contains(b)).collect();
    let fail = |what: String| {
        anyhow::anyhow!(
            "{what}\n{}\n--- Barman log (tail) ---\n{}",
            outputs(&out),
            peer.bpy.log_tail()
        )
    };
    if !out.status.success() {
        return Err(fail(format!("Barman's backup exited with {}", out.status)));
    }
    let Some((id, status)) = new.last() else {
        return Err(fail("no new backup in Barman's catalog".to_owned()));
    };
    if status != "DONE" {
        return Err(fail(format!("Barman's backup {id}: status={status}")));
    }
    let dir = peer.bpy.server_dir().join("base").join(id);
    let info = peer.bpy.info_path(id);
    let got_parent = info_field(&info, "parent_backup_id")?;
    ensure!(
        got_parent.as_deref() == parent,
        "Barman's backup {id}: parent_backup_id {got_parent:?}, expected {parent:?}"
    );
    run.bytes = Some(bytes_of(id, &info, &dir)?);
    Ok(run)
}

/// A recovery of the chain `ids` (root first; the last is recovered)
/// into `dest`.
fn recover(world: &World, op: Operation, ids: &[String], dest: &Path) -> Result<Run> {
    let fixture = &world.fixture;
    let time_file = fixture.out_dir().join("time.txt");
    let _ = fs::remove_file(&time_file);
    let target = ids.last().context("no backup to recover")?.as_str();
    let dst = dest.to_string_lossy().into_owned();
    let (program, conf, base): (PathBuf, String, PathBuf) = match op.tool {
        Tool::Ours => (
            fixture.bin().join("barman"),
            fixture.conf(Conf::Postgres).to_string_lossy().into_owned(),
            fixture.server_dir().join("base"),
        ),
        Tool::Barman => {
            let peer = fixture.peers.as_ref().context("Barman is not set up")?;
            (
                peer.peers.barman(),
                world
                    .barman_conf
                    .as_ref()
                    .context("no Barman configuration")?
                    .to_string_lossy()
                    .into_owned(),
                peer.bpy.server_dir().join("base"),
            )
        }
    };
    let jobs = world.jobs.to_string();
    let mut args: Vec<&str> = vec!["-c", &conf];
    match op.tool {
        Tool::Ours => args.extend(["-f", "json", "recover", "-j", &jobs]),
        Tool::Barman => args.extend(["recover", "--jobs", &jobs]),
    }
    args.extend([
        "--target-immediate",
        "--target-action",
        "promote",
        SERVER,
        target,
        &dst,
    ]);
    let warm: Vec<PathBuf> = ids.iter().map(|id| base.join(id)).collect();
    let warm: Vec<&Path> = warm.iter().map(PathBuf::as_path).collect();
    let mut cmd = fixture.timed(&time_file, &program, &args);
    let (out, mut run) = timed(world, &mut cmd, &warm, &time_file)?;
    if !out.status.success() {
        let log = match op.tool {
            Tool::Ours => fixture.log_tail(),
            Tool::Barman => fixture
                .peers
                .as_ref()
                .map(|p| p.bpy.log_tail())
                .unwrap_or_default(),
        };
        bail!(
            "`{} {}` exited with {}\n{}\n--- log (tail) ---\n{log}",
            program.display(),
            args.join(" "),
            out.status,
            outputs(&out)
        );
    }
    if op.tool == Tool::Ours {
        let doc: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "`barman recover` printed no JSON document\n{}",
                outputs(&out)
            )
        })?;
        run.json = Some(doc);
    }
    run.dest_du = Some(du(dest)?);
    Ok(run)
}

/// Starts PostgreSQL on the recovered `dest` (a free port, as `postgres`,
/// `archive_mode = off`), waits until it runs as a primary, and compares
/// its data with `expected`, the primary's when the backup was taken.
fn start_recovered(
    fixture: &Fixture,
    dest: &Path,
    operation: &'static str,
    expected: &State,
) -> Result<Check> {
    let t = Instant::now();
    let mut server = DataDirServer::start(fixture.pg.pg_bin(), dest, "archive_mode = off")
        .with_context(|| format!("start PostgreSQL on the recovered {}", dest.display()))?;
    let up = server.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(300));
    let start_s = t.elapsed().as_secs_f64();
    let state = up.and_then(|()| server.psql(STATE_SQL));
    let log = server.log();
    server.stop();
    let state = state.with_context(|| {
        format!("the {operation} recovery did not come up as a primary\n--- server log ---\n{log}")
    })?;
    ensure!(
        state == expected.0,
        "the {operation} recovery holds `{state}`, the primary held `{}` at that backup\n\
         --- server log (tail) ---\n{log}",
        expected.0
    );
    Ok(Check {
        operation,
        state,
        start_s,
    })
}
