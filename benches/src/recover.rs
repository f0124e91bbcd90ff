//! `recover`: restoring a base backup end to end, `barman recover` of a
//! backup of a `pgbench -i -s SCALE` cluster into a fresh directory, next
//! to `cp -a` of the backup's `data` directory.
//!
//! The world is the `backup` scenario's [`Fixture`] (PostgreSQL 15
//! archiving through `barman put-wal`, a loopback sshd logging in
//! `postgres`, the staged `barman`). One full local-rsync backup is taken,
//! untimed; every run then restores it the same ways: `cp -a
//! base/<id>/data DEST` (the reference) and `cp -a … && sync`, then
//! `barman -c CONF -f json recover pg latest DEST -j 1|2` locally and
//! through `--remote-ssh-command` to the loopback sshd, where the staged
//! `barman agent` writes DEST as `postgres`. Every operation runs as
//! `postgres` under GNU time into a fresh DEST, which is removed after
//! the run (untimed); `sync` runs before every operation (and the page
//! cache is dropped with `--drop-caches`). A recovery must exit 0 and
//! report every file written, verified against the manifest, and WALs
//! staged, or the benchmark fails.
//!
//! After the runs, PostgreSQL is started once on the last run's
//! [`CHECKED`] recovery (kept for it): with no target it replays the
//! staged `pg_wal`, comes up as a primary and must count SCALE × 100000
//! rows in `pgbench_accounts`, or the benchmark fails — a fast wrong
//! restore cannot pass. The median run is reported, with PASS/MISS against
//! the targets (a MISS never fails the process).

mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use barman_e2e::DataDirServer;
use serde_json::Value;

use crate::backup::fixture::{self, Conf, Fixture, SERVER, TIME};
use crate::backup::{mb, read_time_file, settle};
use crate::machine::{self, Machine};

/// Options of the `recover` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// pgbench scale of the backed-up cluster (100 ≈ 1.6 GB restored).
    #[arg(long, default_value_t = 100)]
    pub scale: u32,
    /// How many times each operation runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Before every operation, also `echo 3 > /proc/sys/vm/drop_caches`
    /// (cold reads of the backup; slows the whole machine down).
    #[arg(long)]
    pub drop_caches: bool,
    /// Where recover.md and recover.json go
    /// [default: <cargo target dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// How an operation restores the backup into DEST (as `postgres`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cp -a BACKUP/data DEST`, followed by `sync` in the timed command
    /// when `true`.
    CpA(bool),
    /// `barman -f json recover pg latest DEST -j JOBS`, through
    /// `--remote-ssh-command` and `barman agent` when `remote`.
    Recover {
        /// Whether DEST is written by agent sessions behind sshd.
        remote: bool,
        /// `-j`.
        jobs: u32,
    },
}

/// One measured operation: its id (report rows, DEST's name) and kind.
pub type Operation = (&'static str, Kind);

/// Every operation, in run and report order; `cp-a` is the reference of
/// the ratios.
pub const OPERATIONS: [Operation; 6] = [
    ("cp-a", Kind::CpA(false)),
    ("cp-a-sync", Kind::CpA(true)),
    (
        "local-j1",
        Kind::Recover {
            remote: false,
            jobs: 1,
        },
    ),
    (
        "local-j2",
        Kind::Recover {
            remote: false,
            jobs: 2,
        },
    ),
    (
        "ssh-j1",
        Kind::Recover {
            remote: true,
            jobs: 1,
        },
    ),
    (
        "ssh-j2",
        Kind::Recover {
            remote: true,
            jobs: 2,
        },
    ),
];

/// The operation whose last recovery is started with PostgreSQL.
pub const CHECKED: &str = "local-j2";

/// Rows `pgbench -i` puts in `pgbench_accounts` per scale unit.
const ACCOUNTS_PER_SCALE: u64 = 100_000;

impl Kind {
    /// What it is, for the report.
    pub fn about(self) -> String {
        match self {
            Self::CpA(false) => {
                "reference: the backup's data directory copied, no fsync".to_owned()
            }
            Self::CpA(true) => "reference: the same copy, then `sync` (on disk)".to_owned(),
            Self::Recover {
                remote: false,
                jobs,
            } => {
                format!("local recovery with {jobs} job(s)")
            }
            Self::Recover { remote: true, jobs } => format!(
                "remote recovery over the loopback sshd with {jobs} `barman agent` session(s) \
                 writing DEST as `postgres`, no network compression"
            ),
        }
    }

    /// The command line as shown in the report.
    pub fn display(self) -> String {
        match self {
            Self::CpA(false) => "cp -a BACKUP/data DEST".to_owned(),
            Self::CpA(true) => "sh -c 'cp -a BACKUP/data DEST && sync'".to_owned(),
            Self::Recover { remote, jobs } => format!(
                "barman -c CONF -f json recover {SERVER} latest DEST -j {jobs}{}",
                if remote {
                    " --remote-ssh-command 'ssh … -p PORT postgres@127.0.0.1'"
                } else {
                    ""
                }
            ),
        }
    }
}

/// The fields of `barman -f json recover` the report shows.
#[derive(Debug, Clone)]
pub struct RecoverStats {
    /// Regular files in the backup.
    pub files: u64,
    /// Files written into DEST.
    pub files_written: u64,
    /// Files restored without a checksum (`None`: not reported).
    pub files_unverified: Option<u64>,
    /// Bytes of the backup's files.
    pub bytes_total: u64,
    /// Bytes of the files written.
    pub bytes_written: u64,
    /// WAL files staged into `pg_wal`.
    pub wals: u64,
    /// The command's own wall time, seconds.
    pub elapsed_seconds: f64,
    /// The document as printed.
    pub raw: Value,
}

impl RecoverStats {
    fn from_json(doc: Value) -> Self {
        let n = |key: &str| doc.get(key).and_then(Value::as_u64);
        Self {
            files: n("files").unwrap_or(0),
            files_written: n("files_written").unwrap_or(0),
            files_unverified: n("files_unverified"),
            bytes_total: n("bytes_total").unwrap_or(0),
            bytes_written: n("bytes_written").unwrap_or(0),
            wals: n("wals").unwrap_or(0),
            elapsed_seconds: doc
                .get("elapsed_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN),
            raw: doc,
        }
    }
}

/// One timed run of one operation.
#[derive(Debug, Clone)]
pub struct Run {
    /// Wall time of the command, spawn to exit, seconds.
    pub seconds: f64,
    /// GNU time's figures for the command and the children it waited for
    /// (not the agents behind sshd): peak RSS in KiB, user + system CPU
    /// seconds.
    pub usage: (Option<u64>, Option<f64>),
    /// The peak RSS of each `barman agent` session, KiB (remote
    /// recoveries; one entry per session).
    pub agents: Vec<u64>,
    /// What `barman recover` reported (recoveries).
    pub recover: Option<RecoverStats>,
}

/// The proof that a recovery is usable: PostgreSQL started on it.
#[derive(Debug, Clone)]
pub struct Check {
    /// The operation whose recovery was started.
    pub operation: &'static str,
    /// `SELECT count(*) FROM pgbench_accounts` on the started server.
    pub rows: u64,
    /// `pg_ctl start` until the server answered as a primary, seconds.
    pub start_s: f64,
}

/// The backup every run restores, and how to reach it.
#[derive(Debug)]
pub struct Source {
    /// Its id.
    pub id: String,
    /// Its `base/<id>/data`.
    pub data: PathBuf,
    /// The regular files under `data`, bytes (what every row's MB/s
    /// divides).
    pub bytes: u64,
    /// Seconds the (untimed) backup took.
    pub backup_s: f64,
    /// `--remote-ssh-command` of the remote recoveries.
    ssh_command: String,
    /// Whether to drop the page cache before each operation.
    drop_caches: bool,
}

/// Runs the scenario and writes the report.
pub fn run(options: &Options) -> Result<()> {
    ensure!(options.runs > 0, "--runs must be at least 1");
    let load_before = machine::load_average();
    let fixture = Fixture::start(options.scale)?;
    let machine = Machine::probe(fixture.pg.pg_bin());
    let source = take_backup(&fixture, options.drop_caches)?;

    let mut results: Vec<Vec<Run>> = vec![Vec::new(); OPERATIONS.len()];
    for round in 1..=options.runs {
        for (&(id, kind), runs) in OPERATIONS.iter().zip(&mut results) {
            let keep = round == options.runs && id == CHECKED;
            let r = run_once(&fixture, &source, id, kind, keep)
                .with_context(|| format!("operation {id} (run {round})"))?;
            let written = r.recover.as_ref().map_or_else(String::new, |s| {
                format!(
                    ", {} files / {:.0} MB written, {} WALs, {} agent session(s)",
                    s.files_written,
                    mb(s.bytes_written),
                    s.wals,
                    r.agents.len()
                )
            });
            eprintln!(
                "[{round}/{}] {id}: {:.2} s, {:.1} MB/s, peak RSS {} KiB{written}",
                options.runs,
                r.seconds,
                mb(source.bytes) / r.seconds,
                r.usage.0.unwrap_or(0),
            );
            runs.push(r);
        }
    }
    let load_after = machine::load_average();
    let checked = fixture.ref_dir().join(CHECKED);
    let check = start_recovered(&fixture, &checked, options.scale);
    fixture::remove_dir(&checked)?;
    let check = check?;
    eprintln!(
        "PostgreSQL on the {CHECKED} recovery: {} rows in pgbench_accounts, up in {:.1} s",
        check.rows, check.start_s
    );

    let report = report::Report {
        machine: &machine,
        load: [&load_before, &load_after],
        options,
        source: &source,
        results: &results,
        check: &check,
    };
    let out = options
        .out
        .clone()
        .unwrap_or_else(crate::default_report_dir);
    let markdown = report.markdown();
    let documents = [
        ("recover.md", markdown.clone()),
        (
            "recover.json",
            serde_json::to_string_pretty(&report.json())?,
        ),
    ];
    fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    for (name, text) in &documents {
        let path = out.join(name);
        fs::write(&path, format!("{text}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    println!("{markdown}");
    eprintln!("report written to {}/recover.{{md,json}}", out.display());
    Ok(())
}

/// Takes the one backup every run restores (local-rsync, `-j 2`, must end
/// DONE) and finds the ssh command reaching the fixture's sshd.
fn take_backup(fixture: &Fixture, drop_caches: bool) -> Result<Source> {
    eprintln!("taking the backup every run restores (local-rsync, -j 2)...");
    let time_file = fixture.out_dir().join("time.txt");
    let backup = crate::backup::backup(fixture, Conf::Local, 2, "off", &time_file, false)?;
    let id = backup.backup_id.unwrap_or_default();
    let data = fixture.server_dir().join("base").join(&id).join("data");
    // The `ssh_command` the fixture wrote for its rsync backups (port,
    // key, `postgres@127.0.0.1`): the remote recoveries use the same.
    let conf = fixture.conf(Conf::Ssh);
    let text = fs::read_to_string(&conf).with_context(|| format!("read {}", conf.display()))?;
    let ssh_command = text
        .lines()
        .find_map(|l| l.strip_prefix("ssh_command = "))
        .map(str::to_owned)
        .with_context(|| format!("no ssh_command in {}", conf.display()))?;
    let source = Source {
        bytes: fixture::tree_bytes(&data)?,
        id,
        data,
        backup_s: backup.seconds,
        ssh_command,
        drop_caches,
    };
    eprintln!(
        "backup {}: {:.0} MB in {} ({:.1} s); sshd on port {}",
        source.id,
        mb(source.bytes),
        source.data.display(),
        source.backup_s,
        fixture.sshd.port()
    );
    Ok(source)
}

/// Settles the machine (see [`settle`]), then runs `cmd` timed spawn to
/// exit.
fn time_it(cmd: &mut Command, drop_caches: bool) -> Result<(Output, f64)> {
    settle(drop_caches)?;
    let t = Instant::now();
    let out = barman_e2e::output(cmd)?;
    Ok((out, t.elapsed().as_secs_f64()))
}

/// One run into a fresh `ref/<id>`: the operation timed, its result
/// checked, DEST removed unless `keep`.
fn run_once(fixture: &Fixture, source: &Source, id: &str, kind: Kind, keep: bool) -> Result<Run> {
    let time_file = fixture.out_dir().join("time.txt");
    let _ = fs::remove_file(&time_file);
    let dest = fixture.ref_dir().join(id);
    fixture::remove_dir(&dest)?;
    let run = match kind {
        Kind::CpA(sync) => {
            let script = if sync {
                "cp -a \"$0\" \"$1\" && sync"
            } else {
                "exec cp -a \"$0\" \"$1\""
            };
            let (src, dst) = (source.data.to_string_lossy(), dest.to_string_lossy());
            let mut cmd =
                fixture.timed(&time_file, "/bin/sh".as_ref(), &["-c", script, &src, &dst]);
            let (out, seconds) = time_it(&mut cmd, source.drop_caches)?;
            ensure!(
                out.status.success(),
                "`{}` failed ({}):\n{}",
                kind.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let copied = fixture::tree_bytes(&dest)?;
            ensure!(
                copied == source.bytes,
                "cp -a copied {copied} bytes of {}",
                source.bytes
            );
            Run {
                seconds,
                usage: read_time_file(&time_file),
                agents: Vec::new(),
                recover: None,
            }
        }
        Kind::Recover { remote, jobs } => recover(fixture, source, remote, jobs, &dest)?,
    };
    if !keep {
        fixture::remove_dir(&dest)?;
    }
    Ok(run)
}

/// One `barman -f json recover` into `dest` under GNU time; fails unless
/// it exits 0 and reports every file of the backup written and verified,
/// and WALs staged.
fn recover(
    fixture: &Fixture,
    source: &Source,
    remote: bool,
    jobs: u32,
    dest: &Path,
) -> Result<Run> {
    let time_file = fixture.out_dir().join("time.txt");
    let agent_file = fixture.out_dir().join("agent-time.txt");
    let _ = fs::remove_file(&agent_file);
    let barman = fixture.bin().join("barman");
    let conf = fixture.conf(Conf::Local);
    let (conf, dst, jobs) = (
        conf.to_string_lossy(),
        dest.to_string_lossy(),
        jobs.to_string(),
    );
    let mut args = vec![
        "-c", &conf, "-f", "json", "recover", SERVER, "latest", &dst, "-j", &jobs,
    ];
    if remote {
        args.extend(["--remote-ssh-command", source.ssh_command.as_str()]);
    }
    let mut cmd = fixture.timed(&time_file, &barman, &args);
    if remote {
        // What the ssh command starts: the staged barman under GNU time,
        // each session appending its peak RSS.
        let agent = format!(
            "{TIME} -a -o {} -f %M {} agent",
            agent_file.display(),
            barman.display()
        );
        cmd.env("BARMAN_AGENT_COMMAND", agent);
    }
    let (out, seconds) = time_it(&mut cmd, source.drop_caches)?;
    let context = || {
        let mut text = format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}\n--- barman log (tail) ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            fixture.log_tail()
        );
        if remote {
            text.push_str("\n--- sshd log (tail) ---\n");
            text.push_str(&fixture.sshd_log());
        }
        text
    };
    ensure!(
        out.status.success(),
        "`barman recover` exited with {}\n{}",
        out.status,
        context()
    );
    let doc: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "`barman recover` printed no JSON document: {e}\n{}",
            context()
        )
    })?;
    let stats = RecoverStats::from_json(doc);
    ensure!(
        stats.files > 0
            && stats.files_written == stats.files
            && stats.bytes_written == stats.bytes_total
            && stats.files_unverified == Some(0)
            && stats.wals > 0,
        "a fresh recovery should write every file of the backup, verified, and stage its WALs; \
         it reported {stats:?}\n{}",
        context()
    );
    let agents: Vec<u64> = fs::read_to_string(&agent_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    ensure!(
        !remote || !agents.is_empty(),
        "no agent session wrote {}: did the recovery go through BARMAN_AGENT_COMMAND?",
        agent_file.display()
    );
    Ok(Run {
        seconds,
        usage: read_time_file(&time_file),
        agents,
        recover: Some(stats),
    })
}

/// Starts PostgreSQL on the recovered `dest` (a free port, as `postgres`),
/// waits until it has replayed `pg_wal` and runs as a primary, counts
/// `pgbench_accounts` and stops it; fails unless the count is
/// `scale` × 100000.
fn start_recovered(fixture: &Fixture, dest: &Path, scale: u32) -> Result<Check> {
    let t = Instant::now();
    let mut server = DataDirServer::start(fixture.pg.pg_bin(), dest, "")
        .with_context(|| format!("start PostgreSQL on the recovered {}", dest.display()))?;
    server
        .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(300))
        .context("the recovered server did not come up as a primary")?;
    let start_s = t.elapsed().as_secs_f64();
    let count = server.psql("SELECT count(*) FROM pgbench_accounts");
    let log = server.log();
    server.stop();
    let rows: u64 = count
        .context("count pgbench_accounts on the recovered server")?
        .parse()
        .context("parse the row count")?;
    let expected = u64::from(scale) * ACCOUNTS_PER_SCALE;
    ensure!(
        rows == expected,
        "the recovered server counts {rows} rows in pgbench_accounts, not {expected}\n\
         --- server log (tail) ---\n{log}"
    );
    Ok(Check {
        operation: CHECKED,
        rows,
        start_s,
    })
}
