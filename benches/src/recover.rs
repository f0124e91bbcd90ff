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
//! With `--with-peers`, pgBackRest and Barman (Python) each take their own
//! backup of the same cluster (untimed) and restore it the same ways
//! (local and over the loopback sshd, 1 and 2 processes).
//!
//! PostgreSQL is started on the last run of every restore (barman-rs's and
//! the peers', kept for it; `archive_mode = off`): with no target it
//! replays the WAL (staged in `pg_wal`, or fetched by the peer's
//! `restore_command`), comes up as a primary and must count SCALE × 100000
//! rows in `pgbench_accounts`, or the benchmark fails — a fast wrong
//! restore cannot pass. The median run is reported, with PASS/MISS against
//! the targets (a MISS never fails the process).

mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use barman_testkit::DataDirServer;
use serde_json::Value;

use crate::backup::fixture::{self, Conf, Fixture, SERVER, TIME};
use crate::backup::{mb, read_time_file, time_it};
use crate::machine::{self, Machine};
use crate::report::Conditions;

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
    /// Also restore with pgBackRest and Barman (Python) from their own
    /// backups of the same cluster (installs them first:
    /// benches/scripts/install-peers.sh).
    #[arg(long)]
    pub with_peers: bool,
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
    /// `pgbackrest restore --pg1-path=DEST --process-max=PROCS` of its
    /// own full backup, through `repo1-host` over the loopback sshd when
    /// `ssh`.
    PgBackRest {
        /// Whether the repository is reached over ssh.
        ssh: bool,
        /// `--process-max`.
        procs: u32,
    },
    /// Barman (Python): `barman recover --jobs JOBS pg latest DEST` of its
    /// own backup, through `--remote-ssh-command` when `remote`.
    BarmanPy {
        /// Whether DEST is written over ssh.
        remote: bool,
        /// `--jobs`.
        jobs: u32,
    },
}

/// One measured operation: its id (report rows, DEST's name) and kind.
pub type Operation = (&'static str, Kind);

/// The peers' operations (`--with-peers`).
pub const PEER_OPERATIONS: [Operation; 8] = [
    (
        "pgbackrest-p1",
        Kind::PgBackRest {
            ssh: false,
            procs: 1,
        },
    ),
    (
        "pgbackrest-p2",
        Kind::PgBackRest {
            ssh: false,
            procs: 2,
        },
    ),
    (
        "pgbackrest-ssh-p1",
        Kind::PgBackRest {
            ssh: true,
            procs: 1,
        },
    ),
    (
        "pgbackrest-ssh-p2",
        Kind::PgBackRest {
            ssh: true,
            procs: 2,
        },
    ),
    (
        "barman-py-local-j1",
        Kind::BarmanPy {
            remote: false,
            jobs: 1,
        },
    ),
    (
        "barman-py-local-j2",
        Kind::BarmanPy {
            remote: false,
            jobs: 2,
        },
    ),
    (
        "barman-py-ssh-j1",
        Kind::BarmanPy {
            remote: true,
            jobs: 1,
        },
    ),
    (
        "barman-py-ssh-j2",
        Kind::BarmanPy {
            remote: true,
            jobs: 2,
        },
    ),
];

/// The barman-rs operation a peer's operation is compared with.
pub fn peer_of(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::PgBackRest { ssh, procs }
        | Kind::BarmanPy {
            remote: ssh,
            jobs: procs,
        } => Some(match (ssh, procs) {
            (false, 1) => "local-j1",
            (false, _) => "local-j2",
            (true, 1) => "ssh-j1",
            (true, _) => "ssh-j2",
        }),
        _ => None,
    }
}

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
            Self::PgBackRest { ssh: false, procs } => format!(
                "pgBackRest restore of its own full backup (uncompressed, local repository), \
                 {procs} process(es)"
            ),
            Self::PgBackRest { ssh: true, procs } => format!(
                "pgBackRest restore through `repo1-host` over the loopback sshd, {procs} \
                 process(es)"
            ),
            Self::BarmanPy {
                remote: false,
                jobs,
            } => {
                format!("Barman (Python) local recovery of its own backup, {jobs} job(s)")
            }
            Self::BarmanPy { remote: true, jobs } => format!(
                "Barman (Python) remote recovery (`--remote-ssh-command`, rsync over the \
                 loopback sshd), {jobs} job(s)"
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
            Self::PgBackRest { ssh, procs } => format!(
                "pgbackrest --config=CONF --stanza=pg{} --pg1-path=DEST --process-max={procs} restore",
                if ssh {
                    " --repo1-host=127.0.0.1 --repo1-host-port=PORT --cmd-ssh=SSH"
                } else {
                    ""
                }
            ),
            Self::BarmanPy { remote, jobs } => format!(
                "barman (Python) -c CONF recover --jobs {jobs}{} pg latest DEST",
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
    pub operation: String,
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
    let peers = if options.with_peers {
        Some(crate::peers::Peers::install()?)
    } else {
        None
    };
    let load_before = machine::load_average();
    let fixture = Fixture::start(options.scale, peers)?;
    let conditions = Conditions::new(Machine::probe(fixture.pg.pg_bin()), load_before);
    let source = take_backup(&fixture, options.drop_caches)?;
    let operations: Vec<Operation> = OPERATIONS
        .iter()
        .chain(PEER_OPERATIONS.iter().filter(|_| options.with_peers))
        .copied()
        .collect();

    let mut results: Vec<Vec<Run>> = vec![Vec::new(); operations.len()];
    let mut checks = Vec::new();
    for round in 1..=options.runs {
        for (&(id, kind), runs) in operations.iter().zip(&mut results) {
            // The last run of every restore is started with PostgreSQL.
            let keep = round == options.runs && !matches!(kind, Kind::CpA(_));
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
            if keep {
                let dest = fixture.ref_dir().join(id);
                let check = start_recovered(&fixture, &dest, options.scale, id);
                fixture::remove_dir(&dest)?;
                let check = check.with_context(|| format!("the {id} restore"))?;
                eprintln!(
                    "PostgreSQL on the {id} restore: {} rows in pgbench_accounts, up in {:.1} s",
                    check.rows, check.start_s
                );
                checks.push(check);
            }
        }
    }

    let report = report::Report {
        conditions: conditions.ended(),
        options,
        source: &source,
        operations: &operations,
        results: &results,
        checks: &checks,
        peers: fixture.peers.as_ref().map(|w| &w.peers),
    };
    crate::report::publish(options.out.as_deref(), "recover", &report)
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
    if let Some(world) = &fixture.peers {
        eprintln!(
            "taking pgBackRest's full backup (uncompressed, --process-max=2) and Barman's (local-rsync, --jobs 2)..."
        );
        let mut cmd = fixture.as_postgres(crate::peers::PGBACKREST);
        cmd.args(
            world
                .pgbr()?
                .args(&["--type=full", "--process-max=2", "backup"]),
        );
        barman_testkit::run(&mut cmd).context("pgbackrest backup --type=full")?;
        let mut cmd = fixture.as_postgres(world.peers.barman());
        cmd.arg("-c")
            .arg(world.bpy.conf(crate::peers::PyConf::Local))
            .args(["backup", "--jobs", "2", "--wait", crate::peers::STANZA]);
        barman_testkit::run(&mut cmd).context("barman backup (Barman)")?;
        let backups = world.bpy.backups()?;
        ensure!(
            backups.last().is_some_and(|b| b.1 == "DONE"),
            "Barman's backup did not end DONE: {backups:?}\n{}",
            world.bpy.log_tail()
        );
    }
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
            let (out, seconds) = time_it(&mut cmd, source.drop_caches, &source.data)?;
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
        Kind::PgBackRest { .. } | Kind::BarmanPy { .. } => {
            peer_restore(fixture, source, kind, &dest)?
        }
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
    let (out, seconds) = time_it(&mut cmd, source.drop_caches, &source.data)?;
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

/// One restore by a peer into `dest` under GNU time; fails unless the
/// peer exits 0 (PostgreSQL started on the last run checks the data).
fn peer_restore(fixture: &Fixture, source: &Source, kind: Kind, dest: &Path) -> Result<Run> {
    let world = fixture
        .peers
        .as_ref()
        .context("the peers' operations need --with-peers")?;
    let time_file = fixture.out_dir().join("time.txt");
    let (program, args): (PathBuf, Vec<String>) = match kind {
        Kind::PgBackRest { ssh, procs } => {
            // pgBackRest restores into an existing, empty directory.
            fs::create_dir(dest).with_context(|| format!("create {}", dest.display()))?;
            barman_testkit::chown_to(dest, barman_testkit::SERVER_OS_USER)?;
            barman_testkit::chmod(dest, 0o700)?;
            let mut args = world.pgbr()?.args(&[]);
            if ssh {
                args.extend(world.pgbr()?.repo_host_args());
            }
            args.push(format!("--pg1-path={}", dest.display()));
            args.push(format!("--process-max={procs}"));
            args.push("restore".to_owned());
            (PathBuf::from(crate::peers::PGBACKREST), args)
        }
        Kind::BarmanPy { remote, jobs } => {
            let mut args = vec![
                "-c".to_owned(),
                world
                    .bpy
                    .conf(crate::peers::PyConf::Local)
                    .display()
                    .to_string(),
                "recover".to_owned(),
                "--jobs".to_owned(),
                jobs.to_string(),
            ];
            if remote {
                args.push("--remote-ssh-command".to_owned());
                args.push(source.ssh_command.clone());
            }
            args.extend([
                crate::peers::STANZA.to_owned(),
                "latest".to_owned(),
                dest.display().to_string(),
            ]);
            (world.peers.barman(), args)
        }
        _ => anyhow::bail!("not a peer's restore: {kind:?}"),
    };
    // What this peer reads: its own repository / backup.
    let warm = match kind {
        Kind::PgBackRest { .. } => world.pgbr()?.repo.clone(),
        _ => world.bpy.server_dir().join("base"),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = fixture.timed(&time_file, &program, &args);
    let (out, seconds) = time_it(&mut cmd, source.drop_caches, &warm)?;
    ensure!(
        out.status.success(),
        "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- Barman log ---\n{}\n--- sshd log ---\n{}",
        kind.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        world.bpy.log_tail(),
        fixture.sshd_log()
    );
    Ok(Run {
        seconds,
        usage: read_time_file(&time_file),
        agents: Vec::new(),
        recover: None,
    })
}

/// Starts PostgreSQL on the recovered `dest` (a free port, as `postgres`),
/// waits until it has replayed `pg_wal` and runs as a primary, counts
/// `pgbench_accounts` and stops it; fails unless the count is
/// `scale` × 100000.
fn start_recovered(fixture: &Fixture, dest: &Path, scale: u32, id: &str) -> Result<Check> {
    let t = Instant::now();
    // No archiving from the restored copy: it would push a new timeline
    // into the archives the next runs restore from.
    let mut server = DataDirServer::start(fixture.pg.pg_bin(), dest, "archive_mode = off")
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
        operation: id.to_owned(),
        rows,
        start_s,
    })
}
