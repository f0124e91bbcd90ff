//! `wal-archive`: WAL archiving end to end, one `archive_command` call per
//! segment, the way PostgreSQL's archiver calls it.
//!
//! A throwaway PostgreSQL 15 cluster produces real 16 MiB segments
//! (`pgbench -i` rounds, then `pg_switch_wal()`); the last `--segments`
//! completed ones are copied into a directory shaped like a data directory
//! (`pgdata/pg_wal/<segment>` plus `archive_status/<segment>.ready`). Every
//! variant archives those same files: for each segment in name order, as the
//! `postgres` OS user, `/bin/sh -c '<archive_command with %p and %f
//! substituted>'` in `pgdata/`, one process at a time, renaming `.ready` to
//! `.done` after each success (what the archiver does). Each call is timed
//! from spawn to exit; the run's total is the wall time of the whole
//! sequence. For the barman variants one `barman archive-wal SERVER` then
//! files the run's segments (timed separately) and the archive is checked:
//! `xlog.db` must list exactly the input segments.
//!
//! The variants run interleaved (run 1 of every variant, then run 2, ...)
//! so background load spreads over all of them; the median run is reported.
//! Between runs the outputs are removed and `sync` flushes dirty pages, so a
//! run does not pay for the previous one's writeback.

pub(crate) mod fixture;
mod report;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use barman_testkit::SERVER_OS_USER;

use crate::machine::{self, Machine};
use crate::report::Conditions;
use fixture::Fixture;

/// Options of the `wal-archive` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Segments archived per run (16 MiB each).
    #[arg(long, default_value_t = 200)]
    pub segments: usize,
    /// Runs of each variant; the median run is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// pgbench scale of each `pgbench -i` round that generates the WAL
    /// (about 20 segments per round at scale 20).
    #[arg(long, default_value_t = 20)]
    pub scale: u32,
    /// Only these variants (comma-separated ids: cp, cp-fsync, cp-durable,
    /// local-none, local-zstd, ssh-cat, ssh-none, ssh-zstd, ssh-none-p4,
    /// ssh-zstd-p4, ssh-zstd-mux). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub variants: Vec<String>,
    /// Also measure pgBackRest's `archive-push` and Barman's (Python)
    /// `barman-wal-archive` (installs them first:
    /// benches/scripts/install-peers.sh).
    #[arg(long)]
    pub with_peers: bool,
    /// Directory for wal-archive.md and wal-archive.json
    /// [default: <cargo target dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What a variant writes, and so how it is prepared, checked and cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A reference copy into the directory `{out}`.
    Copy,
    /// The ssh transport alone; nothing is kept.
    Transport,
    /// A barman server (`{server}`, compression `compression`), filed by
    /// `archive-wal` after the run; `prefetch` when `{prefetch}` is a
    /// `--prefetch-cache-dir`.
    Barman {
        /// The server's `compression` (`""`: none).
        compression: &'static str,
        /// Whether the variant uses `--parallel` and a prefetch cache.
        prefetch: bool,
    },
    /// pgBackRest `archive-push` into its repository (emptied and the
    /// stanza re-created before each run); `drain` when asynchronous (the
    /// run waits, untimed but reported, until every segment is in the
    /// repository).
    PgBackRest {
        /// `--archive-async`: the calls return once the spool says so.
        drain: bool,
    },
    /// Barman (Python): `barman-wal-archive` to its own `barman put-wal`
    /// behind the second sshd, filed by its `archive-wal` after the run.
    BarmanPy,
}

/// The peers' variants (`--with-peers`), each beside barman-rs's variant
/// with the same settings.
pub const PEER_VARIANTS: [Variant; 7] = [
    Variant {
        id: "pgbackrest-local-none",
        about: "pgBackRest `archive-push` into a local repository, `--compress-type=none`",
        template: "{pgbr} --compress-type=none archive-push %p",
        kind: Kind::PgBackRest { drain: false },
        peer_of: Some("local-none"),
    },
    Variant {
        id: "pgbackrest-local-zst",
        about: "pgBackRest `archive-push` into a local repository, `--compress-type=zst`",
        template: "{pgbr} --compress-type=zst archive-push %p",
        kind: Kind::PgBackRest { drain: false },
        peer_of: Some("local-zstd"),
    },
    Variant {
        id: "pgbackrest-ssh-none",
        about: "pgBackRest `archive-push` through `repo1-host` over the loopback sshd, uncompressed",
        template: "{pgbr} {pgbr_ssh} --compress-type=none archive-push %p",
        kind: Kind::PgBackRest { drain: false },
        peer_of: Some("ssh-none"),
    },
    Variant {
        id: "pgbackrest-ssh-zst",
        about: "the same with `--compress-type=zst`",
        template: "{pgbr} {pgbr_ssh} --compress-type=zst archive-push %p",
        kind: Kind::PgBackRest { drain: false },
        peer_of: Some("ssh-zstd"),
    },
    Variant {
        id: "pgbackrest-ssh-zst-async4",
        about: "pgBackRest asynchronous `archive-push` through `repo1-host`, zst, `--archive-async --process-max=4` (its parallel mode)",
        template: "{pgbr} {pgbr_ssh} --compress-type=zst --archive-async --process-max=4 archive-push %p",
        kind: Kind::PgBackRest { drain: true },
        peer_of: Some("ssh-zstd-p4"),
    },
    Variant {
        id: "barman-py-ssh-none",
        about: "Barman's (Python) `barman-wal-archive` over ssh to its `barman put-wal`, uncompressed",
        template: "PATH={pybin}:$PATH {pywalarchive} -U postgres --port {pyport} -c {pyconf} 127.0.0.1 {server} %p",
        kind: Kind::BarmanPy,
        peer_of: Some("ssh-none"),
    },
    Variant {
        id: "barman-py-ssh-zstd",
        about: "the same with `--zstd`",
        template: "PATH={pybin}:$PATH {pywalarchive} -U postgres --port {pyport} -c {pyconf} --zstd 127.0.0.1 {server} %p",
        kind: Kind::BarmanPy,
        peer_of: Some("ssh-zstd"),
    },
];

/// One way of archiving a segment.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Short id (`--variants`, report rows).
    pub id: &'static str,
    /// What it is, for the report.
    pub about: &'static str,
    /// The `archive_command`, with `%p`/`%f` and the placeholders `{out}`,
    /// `{conf}`, `{port}`, `{server}`, `{prefetch}` and `{mux}` (the
    /// directory of the connection-sharing ssh wrapper).
    pub template: &'static str,
    /// What it writes.
    pub kind: Kind,
    /// For a peer's variant: the barman-rs variant with the same settings.
    pub peer_of: Option<&'static str>,
}

/// The barman-wal-archive command line shared by the ssh variants.
macro_rules! wal_archive {
    ($flags:literal) => {
        concat!(
            "barman-wal-archive -U postgres --port {port} -c {conf} ",
            $flags,
            "127.0.0.1 {server} %p"
        )
    };
}

/// Every variant, in report order. `cp` is the reference of the ratios.
pub const VARIANTS: [Variant; 11] = [
    Variant {
        id: "cp",
        about: "reference: plain `cp`, no fsync",
        template: "cp %p {out}/%f",
        kind: Kind::Copy,
        peer_of: None,
    },
    Variant {
        id: "cp-fsync",
        about: "reference: copy + fsync of the file (`dd conv=fsync`)",
        template: "dd if=%p of={out}/%f bs=1M conv=fsync status=none",
        kind: Kind::Copy,
        peer_of: None,
    },
    Variant {
        id: "cp-durable",
        about: "reference: what put-wal guarantees, in shell: copy to a temp name, fsync it, \
                rename, fsync the directory (4 processes)",
        template: "cp %p {out}/%f.tmp && sync {out}/%f.tmp && mv {out}/%f.tmp {out}/%f && sync {out}",
        kind: Kind::Copy,
        peer_of: None,
    },
    Variant {
        id: "local-none",
        about: "one-host mode: `barman put-wal` into incoming/, server compression none",
        template: "barman -c {conf} put-wal {server} %p",
        kind: Kind::Barman {
            compression: "",
            prefetch: false,
        },
        peer_of: None,
    },
    Variant {
        id: "local-zstd",
        about: "one-host mode: `barman put-wal`, server compression zstd (applied by archive-wal)",
        template: "barman -c {conf} put-wal {server} %p",
        kind: Kind::Barman {
            compression: "zstd",
            prefetch: false,
        },
        peer_of: None,
    },
    Variant {
        id: "ssh-cat",
        about: "reference: the transport alone, `ssh ... 'cat > /dev/null' < %p`",
        template: "ssh -q -T -p {port} postgres@127.0.0.1 'cat > /dev/null' < %p",
        kind: Kind::Transport,
        peer_of: None,
    },
    Variant {
        id: "ssh-none",
        about: "barman-wal-archive over ssh, uncompressed",
        template: wal_archive!(""),
        kind: Kind::Barman {
            compression: "",
            prefetch: false,
        },
        peer_of: None,
    },
    Variant {
        id: "ssh-zstd",
        about: "barman-wal-archive --zstd over ssh (server compression zstd)",
        template: wal_archive!("--zstd "),
        kind: Kind::Barman {
            compression: "zstd",
            prefetch: false,
        },
        peer_of: None,
    },
    Variant {
        id: "ssh-none-p4",
        about: "barman-wal-archive --parallel 4 over ssh, uncompressed",
        template: wal_archive!("-p 4 --prefetch-cache-dir {prefetch} "),
        kind: Kind::Barman {
            compression: "",
            prefetch: true,
        },
        peer_of: None,
    },
    Variant {
        id: "ssh-zstd-p4",
        about: "barman-wal-archive --zstd --parallel 4 over ssh (server compression zstd)",
        template: wal_archive!("--zstd -p 4 --prefetch-cache-dir {prefetch} "),
        kind: Kind::Barman {
            compression: "zstd",
            prefetch: true,
        },
        peer_of: None,
    },
    Variant {
        id: "ssh-zstd-mux",
        about: "as ssh-zstd, with ssh connection sharing (ControlMaster=auto, ControlPersist=60 \
                in the ssh wrapper; not Barman's default)",
        template: concat!("PATH={mux}:$PATH ", wal_archive!("--zstd ")),
        kind: Kind::Barman {
            compression: "zstd",
            prefetch: false,
        },
        peer_of: None,
    },
];

impl Variant {
    /// The barman server of this variant (its id with `_`).
    pub fn server(&self) -> String {
        self.id.replace('-', "_")
    }

    /// The command line as shown in the report (placeholders in capitals).
    pub fn display(&self) -> String {
        self.template
            .replace("{out}", "OUT")
            .replace("{conf}", "CONF")
            .replace("{port}", "PORT")
            .replace("{server}", "SERVER")
            .replace("{prefetch}", "CACHE")
            .replace("{mux}", "MUXDIR")
            .replace(
                "{pgbr}",
                "pgbackrest --config=CONF --stanza=pg --pg1-path=PGDATA",
            )
            .replace(
                "{pgbr_ssh}",
                "--repo1-host=127.0.0.1 --repo1-host-port=PORT --cmd-ssh=SSH",
            )
            .replace("PATH={pybin}:$PATH ", "")
            .replace("{pywalarchive}", "barman-wal-archive (Python)")
            .replace("{pyport}", "PORT")
            .replace("{pyconf}", "CONF")
    }

    /// Whether the variant goes through sshd.
    fn uses_ssh(&self) -> bool {
        self.template.contains("ssh ")
            || self.template.contains("barman-wal-archive")
            || self.template.contains("{pgbr_ssh}")
            || self.template.contains("{pywalarchive}")
    }

    /// Whether the variant shares one ssh connection between calls.
    fn uses_mux(&self) -> bool {
        self.template.contains("{mux}")
    }

    /// The directory this variant writes into, under the fixture's scratch.
    fn out_name(&self) -> String {
        format!("out-{}", self.id)
    }

    /// The prefetch cache directory name.
    fn prefetch_name(&self) -> String {
        format!("prefetch-{}", self.id)
    }
}

/// One timed run of one variant.
#[derive(Debug, Clone)]
pub struct Run {
    /// Spawn-to-exit time of every call, in segment order, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Wall time of the whole sequence of calls, in seconds.
    pub total_s: f64,
    /// `barman archive-wal` afterwards, in seconds (barman variants).
    pub archive_wal_s: Option<f64>,
    /// Bytes kept (the copies, or the files under `wals/`).
    pub stored_bytes: Option<u64>,
    /// Calls that failed and were retried (their time counts in the
    /// segment's latency and the total, as PostgreSQL would retry them).
    pub failed_calls: u32,
}

/// Attempts per segment before the run is abandoned (PostgreSQL's archiver
/// also retries a failed `archive_command` three times in a row).
const ATTEMPTS: u32 = 3;

/// Runs the scenario and writes the report.
pub fn run(options: &Options) -> Result<()> {
    let variants = select(&options.variants, options.with_peers)?;
    ensure!(options.runs > 0, "--runs must be at least 1");
    let peers = if options.with_peers {
        Some((crate::peers::Peers::install()?, py_servers_conf(&variants)))
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
    let fixture = Fixture::start(
        options.segments,
        options.scale,
        &servers_conf(&variants),
        peers,
    )?;
    eprintln!(
        "{} segments ready in {}; sshd on port {}, PostgreSQL on port {}",
        fixture.segments.len(),
        fixture.pgdata().display(),
        fixture.sshd.port(),
        fixture.pg.port()
    );

    let mut results: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
    for round in 1..=options.runs {
        for (variant, runs) in variants.iter().zip(&mut results) {
            let r = run_once(&fixture, variant)
                .with_context(|| format!("variant {} (run {round})", variant.id))?;
            eprintln!(
                "run {round}/{}  {:<12} {:>8.2} s  {:>7.1} seg/s{}",
                options.runs,
                variant.id,
                r.total_s,
                count_f64(fixture.segments.len()) / r.total_s,
                r.archive_wal_s
                    .map_or_else(String::new, |s| format!("  archive-wal {s:.2} s"))
            );
            runs.push(r);
        }
    }

    let report = report::Report {
        conditions: conditions.ended(),
        segments: fixture.segments.len(),
        segment_bytes: fixture.segment_bytes,
        first_segment: fixture.segments.first().cloned().unwrap_or_default(),
        last_segment: fixture.segments.last().cloned().unwrap_or_default(),
        runs: options.runs,
        scale: options.scale,
        variants: &variants,
        results: &results,
    };
    crate::report::publish(options.out.as_deref(), "wal-archive", &report)
}

/// The variants named by `--variants` (all when empty; the peers' only
/// with `--with-peers`), in report order.
fn select(ids: &[String], with_peers: bool) -> Result<Vec<Variant>> {
    crate::select_by_id(&VARIANTS, &PEER_VARIANTS, with_peers, ids, "variant", |v| {
        v.id
    })
}

/// Barman's (Python) servers of the `barman-py-*` variants.
fn py_servers_conf(variants: &[Variant]) -> String {
    let mut text = String::new();
    for v in variants {
        if v.kind == Kind::BarmanPy {
            let _ = write!(
                text,
                "[{server}]\ndescription = bench {id}\nconninfo = {{conninfo}}\n\
                 backup_method = rsync\nssh_command = false\narchiver = on\n\n",
                server = v.server(),
                id = v.id,
            );
        }
    }
    text
}

/// The barman servers of the barman variants (`{conninfo}` is filled in by
/// the fixture).
fn servers_conf(variants: &[Variant]) -> String {
    let mut text = String::new();
    for v in variants {
        if let Kind::Barman { compression, .. } = v.kind {
            let _ = write!(
                text,
                "[{server}]\ndescription = bench {id}\nconninfo = {{conninfo}}\n\
                 backup_method = postgres\narchiver = on\ncompression = {compression}\n\n",
                server = v.server(),
                id = v.id,
            );
        }
    }
    text
}

/// One run: prepare, archive every segment, file and check, clean up.
fn run_once(fixture: &Fixture, variant: &Variant) -> Result<Run> {
    fixture.reset_status()?;
    let server = variant.server();
    let server_dir = fixture.home.server_dir(&server);
    let out = fixture.scratch_path(&variant.out_name());
    let prefetch = fixture.scratch_path(&variant.prefetch_name());
    match variant.kind {
        Kind::Copy => {
            fixture.fresh_dir(&variant.out_name())?;
        }
        Kind::Transport => {}
        Kind::Barman { prefetch: p, .. } => {
            fixture::remove_dir(&server_dir)?;
            if p {
                fixture.fresh_dir(&variant.prefetch_name())?;
            }
        }
        Kind::PgBackRest { .. } => peer_reset_pgbackrest(fixture)?,
        Kind::BarmanPy => {
            let world = fixture.peers.as_ref().context("--with-peers")?;
            let dir = world.home.join(&server);
            fixture::remove_dir(&dir)?;
            for d in [dir.clone(), dir.join("incoming")] {
                fs::create_dir(&d).with_context(|| format!("create {}", d.display()))?;
                barman_testkit::chown_to(&d, SERVER_OS_USER)?;
                barman_testkit::chmod(&d, 0o700)?;
            }
        }
    }
    let mut line = variant.template.to_owned();
    if let Some(world) = &fixture.peers {
        let pgbr = format!(
            "{} --config={} --stanza={} --pg1-path={}",
            crate::peers::PGBACKREST,
            world.pgbr.conf.display(),
            crate::peers::STANZA,
            fixture.pgdata().display()
        );
        line = line
            .replace("{pgbr}", &pgbr)
            .replace("{pgbr_ssh}", &world.pgbr.repo_host_args().join(" "))
            .replace("{pybin}", &fixture.scratch_path("bin-py").to_string_lossy())
            .replace(
                "{pywalarchive}",
                &world.peers.barman_wal_archive().to_string_lossy(),
            )
            .replace("{pyport}", &world.sshd.port().to_string())
            .replace("{pyconf}", &world.conf.to_string_lossy());
    }
    let line = line
        .replace("{out}", &out.to_string_lossy())
        .replace("{conf}", &fixture.home.conf().to_string_lossy())
        .replace("{port}", &fixture.sshd.port().to_string())
        .replace("{server}", &server)
        .replace("{prefetch}", &prefetch.to_string_lossy())
        .replace("{mux}", &fixture.mux_bin().to_string_lossy());
    // Every run starts alike: the page cache dropped, the input segments
    // read back into it (freshly written WAL is usually cached), nothing
    // else — no run pays for reclaiming what the previous one cached.
    crate::backup::settle_for(false, &[&fixture.pgdata().join("pg_wal")])?;

    // stderr goes to a file, as PostgreSQL sends it to its log: a pipe
    // would also wait for a background ssh master holding it open.
    let stderr_path = fixture.scratch_path("call.stderr");
    let mut latencies_ms = Vec::with_capacity(fixture.segments.len());
    let mut failed_calls = 0;
    let start = Instant::now();
    for seg in &fixture.segments {
        // PostgreSQL substitutes %p (relative to PGDATA) and %f.
        let call = line
            .replace("%p", &format!("pg_wal/{seg}"))
            .replace("%f", seg);
        let mut stderr = File::create(&stderr_path)?;
        let t = Instant::now();
        for attempt in 1..=ATTEMPTS {
            let status = fixture
                .shell(&call)
                .stdout(Stdio::null())
                .stderr(stderr)
                .status()
                .with_context(|| format!("spawn /bin/sh -c {call:?}"))?;
            if status.success() {
                break;
            }
            failed_calls += 1;
            let message = fs::read_to_string(&stderr_path).unwrap_or_default();
            let sshd_log = if variant.uses_ssh() {
                format!("\n--- sshd log (tail) ---\n{}", fixture.sshd_log())
            } else {
                String::new()
            };
            if attempt == ATTEMPTS {
                bail!("`{call}` failed {ATTEMPTS} times ({status}):\n{message}{sshd_log}");
            }
            eprintln!("warning: `{call}` failed ({status}), retrying:\n{message}{sshd_log}");
            stderr = File::create(&stderr_path)?;
        }
        latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        fixture.mark_done(seg)?;
    }
    let total_s = start.elapsed().as_secs_f64();
    if variant.uses_mux() {
        fixture.stop_mux();
    }

    let (archive_wal_s, stored_bytes) = match variant.kind {
        Kind::Copy => {
            let bytes = check_copies(&out, &fixture.segments, fixture.segment_bytes)?;
            fixture::remove_dir(&out)?;
            (None, Some(bytes))
        }
        Kind::Transport => (None, None),
        Kind::Barman { .. } => {
            let t = Instant::now();
            let mut cmd = fixture.barman(&["archive-wal", &server]);
            barman_testkit::run(&mut cmd).context("barman archive-wal")?;
            let archive_wal_s = t.elapsed().as_secs_f64();
            let bytes = check_archive(&server_dir, &server, &fixture.segments)?;
            fixture::remove_dir(&server_dir)?;
            fixture::remove_dir(&prefetch)?;
            (Some(archive_wal_s), Some(bytes))
        }
        Kind::PgBackRest { drain } => {
            let t = Instant::now();
            let bytes = check_pgbackrest(fixture, &fixture.segments, drain)?;
            (drain.then(|| t.elapsed().as_secs_f64()), Some(bytes))
        }
        Kind::BarmanPy => {
            let world = fixture.peers.as_ref().context("--with-peers")?;
            let t = Instant::now();
            let mut cmd = fixture.as_postgres(world.peers.barman());
            cmd.arg("-c")
                .arg(&world.conf)
                .args(["archive-wal", &server]);
            barman_testkit::run(&mut cmd).context("barman archive-wal (Barman)")?;
            let archive_wal_s = t.elapsed().as_secs_f64();
            let dir = world.home.join(&server);
            let bytes = check_archive(&dir, &server, &fixture.segments)?;
            fixture::remove_dir(&dir)?;
            (Some(archive_wal_s), Some(bytes))
        }
    };
    sync()?;
    Ok(Run {
        latencies_ms,
        total_s,
        archive_wal_s,
        stored_bytes,
        failed_calls,
    })
}

/// Empties pgBackRest's repository and spool and re-creates the stanza
/// (untimed), so that no run finds a segment already archived.
fn peer_reset_pgbackrest(fixture: &Fixture) -> Result<()> {
    let world = fixture.peers.as_ref().context("--with-peers")?;
    let dir = world
        .pgbr
        .repo
        .parent()
        .context("the repository has a parent")?;
    for sub in ["repo", "spool"] {
        let d = dir.join(sub);
        fixture::remove_dir(&d)?;
        fs::create_dir(&d).with_context(|| format!("create {}", d.display()))?;
        barman_testkit::chown_to(&d, SERVER_OS_USER)?;
        barman_testkit::chmod(&d, 0o700)?;
    }
    let mut cmd = fixture.as_postgres(crate::peers::PGBACKREST);
    cmd.args(world.pgbr.args(&["stanza-create"]));
    barman_testkit::run(&mut cmd).context("pgbackrest stanza-create")?;
    Ok(())
}

/// Checks that pgBackRest's repository holds exactly the segments (waiting
/// up to 5 minutes for an asynchronous push to drain); returns the bytes.
fn check_pgbackrest(fixture: &Fixture, segments: &[String], drain: bool) -> Result<u64> {
    let world = fixture.peers.as_ref().context("--with-peers")?;
    let archive = world.pgbr.repo.join("archive").join(crate::peers::STANZA);
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let mut names = Vec::new();
        let mut bytes = 0;
        let mut stack = vec![archive.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let meta = e.metadata()?;
                let name = e.file_name().to_string_lossy().into_owned();
                if meta.is_dir() {
                    stack.push(e.path());
                } else if name.len() > 24 && name.as_bytes()[24] == b'-' {
                    names.push(name[..24].to_owned());
                    bytes += meta.len();
                }
            }
        }
        names.sort();
        if names == segments {
            return Ok(bytes);
        }
        if !drain || Instant::now() >= deadline {
            bail!(
                "pgBackRest's archive {} holds {} segments, not the {} input segments",
                archive.display(),
                names.len(),
                segments.len()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `sync` (all filesystems): flushes the previous steps' dirty pages
/// outside the timed part.
fn sync() -> Result<()> {
    barman_testkit::run(&mut Command::new("sync"))
        .map(drop)
        .context("sync")
}

/// Checks that `out` holds exactly the segments, each of full size; returns
/// the bytes held.
fn check_copies(out: &Path, segments: &[String], segment_bytes: u64) -> Result<u64> {
    let mut names = Vec::new();
    let mut bytes = 0;
    for entry in fs::read_dir(out).with_context(|| format!("read {}", out.display()))? {
        let entry = entry?;
        let len = entry.metadata()?.len();
        let name = entry.file_name().to_string_lossy().into_owned();
        ensure!(len == segment_bytes, "copy {name} has {len} bytes");
        bytes += len;
        names.push(name);
    }
    names.sort();
    ensure!(
        names == segments,
        "{} holds {} files, not the {} input segments",
        out.display(),
        names.len(),
        segments.len()
    );
    Ok(bytes)
}

/// Checks the server's archive after `archive-wal`: `xlog.db` lists exactly
/// the segments, each has a file under `wals/`, `incoming/` is empty.
/// Returns the bytes under `wals/` (the catalog excluded).
fn check_archive(server_dir: &Path, server: &str, segments: &[String]) -> Result<u64> {
    let wals = server_dir.join("wals");
    let xlog_db = wals.join(format!("{server}-xlog.db"));
    let text =
        fs::read_to_string(&xlog_db).with_context(|| format!("read {}", xlog_db.display()))?;
    let mut listed: Vec<String> = text
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_owned))
        .collect();
    listed.sort();
    ensure!(
        listed == segments,
        "{} lists {} entries, not the {} input segments",
        xlog_db.display(),
        listed.len(),
        segments.len()
    );
    let incoming = server_dir.join("incoming");
    if let Ok(entries) = fs::read_dir(&incoming) {
        let left: Vec<String> = entries
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        ensure!(left.is_empty(), "left in incoming/: {left:?}");
    }
    let mut files = 0;
    let mut bytes = 0;
    for entry in fs::read_dir(&wals).with_context(|| format!("read {}", wals.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            for file in fs::read_dir(entry.path())? {
                bytes += file?.metadata()?.len();
                files += 1;
            }
        }
    }
    ensure!(
        files == segments.len(),
        "{} holds {files} files for {} segments",
        wals.display(),
        segments.len()
    );
    Ok(bytes)
}

/// A count as `f64` (exact for any realistic count).
pub fn count_f64(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The OS user the commands run as (for the report).
pub const RUN_AS: &str = SERVER_OS_USER;
