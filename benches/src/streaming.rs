//! `streaming`: the replication-protocol commands end to end, each beside
//! the PostgreSQL tool it replaces, on the same server.
//!
//! The world is the `backup` scenario's [`Fixture`] (PostgreSQL 15 filled by
//! `pgbench -i -s SCALE`, archiving through `barman put-wal`, the staged
//! `barman`, a barman home owned by `postgres`).
//!
//! 1. **Base backup**: `barman -f json backup` with `backup_method =
//!    postgres` (the fixture's `postgres.conf`: `BASE_BACKUP` over our
//!    replication client, `immediate_checkpoint = true`) beside
//!    `pg_basebackup -D DIR -Fp -X none --checkpoint=fast`, both as
//!    `postgres` under GNU time, interleaved, `sync` before each; every
//!    result is deleted after it is timed. A barman backup must end DONE.
//! 2. **WAL streaming**: `barman receive-wal pg-stream` (a second server
//!    section, `streaming_archiver = on`, its own slot with `create_slot =
//!    auto`) beside `pg_receivewal --no-loop -s 1 --slot S` (its default
//!    mode: a segment fsynced when complete; the reference of the ratios)
//!    and `pg_receivewal --synchronous` (fsync and flush report after every
//!    message), one after the other, never together. Each is
//!    measured two ways: **live** (the streamer runs and has caught up; a
//!    WAL-heavy load of `--wal-mb` MB is written — `INSERT … repeat('x',
//!    500)` batches, then `pg_switch_wal()` — and the time runs from the
//!    start of the load until the streamer's `flush_lsn` in
//!    `pg_stat_replication` reaches the server's LSN at its end — for the
//!    default `pg_receivewal`, which reports its flush position only every
//!    status interval, until the last segment is complete in its
//!    directory) and
//!    **backlog** (the same load written while the streamer is down, its
//!    slot retaining the WAL; the time runs from the streamer's spawn until
//!    its `flush_lsn` reaches the end). MB/s = WAL bytes (LSN difference) ÷
//!    that time. The server's `archive_command` is `/bin/true` during this
//!    part (no `put-wal` competing for the two cores). Each streamer is
//!    stopped by pid with SIGTERM; its peak RSS (`VmHWM`) and CPU time are
//!    read from `/proc` just before.
//!
//! Checks (a failure fails the run): one complete segment streamed by both
//! is byte-identical in barman's `streaming/`, in `pg_receivewal`'s
//! directory and in the server's `pg_wal`; every postgres-method backup
//! ends DONE. The median run is reported, with PASS/MISS against the
//! targets (a MISS never fails the process).

mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use crate::backup::fixture::{self, Conf, Fixture};
use crate::backup::{mb, read_time_file, settle};
use crate::machine::{self, Machine};
use crate::report::Conditions;

/// Options of the `streaming` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// pgbench scale of the backed-up cluster (≈ 15 MB per unit).
    #[arg(long, default_value_t = 100)]
    pub scale: u32,
    /// Runs of each operation; the median run is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// WAL written by each streaming load, MB (rounded up to whole
    /// `INSERT` batches, then to the segment end by `pg_switch_wal()`).
    #[arg(long, default_value_t = 256)]
    pub wal_mb: u64,
    /// Where streaming.md and streaming.json go
    /// [default: <cargo target dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The barman server section `receive-wal` streams for.
const STREAM_SERVER: &str = "pg-stream";
/// Its configuration file, beside the fixture's.
const STREAM_CONF: &str = "streaming.conf";
/// Slot of `barman receive-wal`.
const BARMAN_SLOT: &str = "bench_barman";
/// Slot of `pg_receivewal`.
const PG_RECEIVEWAL_SLOT: &str = "bench_pg_receivewal";
/// Rows of one load batch (≈ 30 MB of WAL).
const BATCH_ROWS: u32 = 50_000;
/// How long a streamer may take to reach a position, seconds.
const FLUSH_TIMEOUT_S: u64 = 600;

/// A WAL streamer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamer {
    /// `barman receive-wal pg-stream`.
    Barman,
    /// `pg_receivewal -s 1` (its default mode: segments fsynced when
    /// complete): done when the last segment is complete in its directory.
    PgReceivewal,
    /// `pg_receivewal --synchronous` (fsync and flush report after every
    /// write, as a synchronous standby needs).
    PgReceivewalSync,
}

impl Streamer {
    /// Both, in run order.
    pub const ALL: [Self; 3] = [Self::Barman, Self::PgReceivewal, Self::PgReceivewalSync];

    /// Short id for the report.
    pub fn id(self) -> &'static str {
        match self {
            Self::Barman => "barman receive-wal",
            Self::PgReceivewal => "pg_receivewal",
            Self::PgReceivewalSync => "pg_receivewal --synchronous",
        }
    }

    /// Its `application_name` in `pg_stat_replication`.
    fn application_name(self) -> &'static str {
        match self {
            Self::Barman => "barman_receive_wal",
            Self::PgReceivewal | Self::PgReceivewalSync => "pg_receivewal",
        }
    }

    /// The extra arguments of `pg_receivewal`.
    fn pg_receivewal_args(self) -> &'static [&'static str] {
        match self {
            Self::PgReceivewalSync => &["--synchronous", "--no-loop"],
            _ => &["--no-loop", "-s", "1"],
        }
    }

    /// The command line as shown in the report.
    pub fn display(self) -> String {
        match self {
            Self::Barman => format!("barman -c CONF receive-wal {STREAM_SERVER}"),
            Self::PgReceivewal | Self::PgReceivewalSync => format!(
                "pg_receivewal -D DIR --slot {PG_RECEIVEWAL_SLOT} {} -h 127.0.0.1 -p PORT \
                 -U postgres",
                self.pg_receivewal_args().join(" ")
            ),
        }
    }
}

/// How a streaming run is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The streamer runs while the load is written.
    Live,
    /// The load is written first; the streamer starts afterwards.
    Backlog,
}

impl Mode {
    /// Both, in run order.
    pub const ALL: [Self; 2] = [Self::Live, Self::Backlog];

    /// Short id for the report.
    pub fn id(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Backlog => "backlog",
        }
    }
}

/// One timed run: `seconds` (see the module documentation for what is
/// timed), `bytes` (the backup's data, or the WAL streamed), `rss_kib`,
/// `cpu_s`; a streaming run keeps the seconds its load took in
/// `pgbench_s`.
pub use crate::backup::Run;

/// The measurements, in report order.
#[derive(Debug, Default)]
pub struct Results {
    /// `pg_basebackup` runs.
    pub basebackup: Vec<Run>,
    /// `barman backup` (postgres method) runs.
    pub barman_backup: Vec<Run>,
    /// Streaming runs per (streamer, mode) of [`Streamer::ALL`] ×
    /// [`Mode::ALL`].
    pub streaming: Vec<((Streamer, Mode), Vec<Run>)>,
    /// The segment found identical in the three places.
    pub checked_segment: String,
    /// The postgres-method backups that ended DONE.
    pub backups_done: Vec<String>,
    /// PGDATA's regular files after `pgbench -i`, bytes.
    pub pgdata_bytes: u64,
}

/// Runs the scenario and writes the report.
pub fn run(options: &Options) -> Result<()> {
    ensure!(options.runs > 0, "--runs must be at least 1");
    ensure!(options.wal_mb > 0, "--wal-mb must be at least 1");
    let load_before = machine::load_average();
    let fixture = Fixture::start(options.scale, None)?;
    let conditions = Conditions::new(Machine::probe(fixture.pg.pg_bin()), load_before);
    let mut results = Results {
        pgdata_bytes: fixture.pgdata_bytes,
        ..Results::default()
    };
    eprintln!(
        "PGDATA holds {:.0} MB; PostgreSQL on port {}",
        mb(fixture.pgdata_bytes),
        fixture.pg.port()
    );

    for round in 1..=options.runs {
        let r = basebackup(&fixture).with_context(|| format!("pg_basebackup (run {round})"))?;
        eprintln!(
            "[{round}/{}] pg_basebackup -Fp: {:.2} s, {:.0} MB",
            options.runs,
            r.seconds,
            mb(r.bytes)
        );
        results.basebackup.push(r);
        fixture.prune(0)?;
        let time_file = fixture.out_dir().join("time.txt");
        let b = crate::backup::backup(&fixture, Conf::Postgres, 1, "off", &time_file, false)
            .with_context(|| format!("barman backup, backup_method = postgres (run {round})"))?;
        eprintln!(
            "[{round}/{}] barman backup (postgres): {:.2} s, {:.0} MB, backup {}",
            options.runs,
            b.seconds,
            mb(b.bytes),
            b.backup_id.as_deref().unwrap_or("?")
        );
        results
            .backups_done
            .push(b.backup_id.clone().unwrap_or_default());
        results.barman_backup.push(b);
        fixture.prune(0)?;
    }

    let stream = StreamWorld::prepare(&fixture, options)?;
    results.streaming = Streamer::ALL
        .iter()
        .flat_map(|s| Mode::ALL.iter().map(move |m| ((*s, *m), Vec::new())))
        .collect();
    let mut reference: Option<(String, Vec<u8>)> = None;
    for round in 1..=options.runs {
        for ((streamer, mode), runs) in &mut results.streaming {
            let (streamer, mode) = (*streamer, *mode);
            let r = stream
                .measure(
                    streamer,
                    mode,
                    round == 1 && mode == Mode::Live && streamer != Streamer::PgReceivewalSync,
                    &mut reference,
                )
                .with_context(|| format!("{} {} (run {round})", streamer.id(), mode.id()))?;
            eprintln!(
                "[{round}/{}] {} {}: {:.0} MB of WAL in {:.2} s = {:.1} MB/s (load {:.2} s), \
                 peak RSS {} KiB",
                options.runs,
                streamer.id(),
                mode.id(),
                mb(r.bytes),
                r.seconds,
                mb(r.bytes) / r.seconds,
                r.pgbench_s.unwrap_or(f64::NAN),
                r.rss_kib.unwrap_or(0)
            );
            runs.push(r);
        }
    }
    results.checked_segment = reference.map(|(name, _)| name).unwrap_or_default();
    ensure!(
        !results.checked_segment.is_empty(),
        "no segment was compared between barman, pg_receivewal and the server"
    );

    let report = report::Report {
        conditions: conditions.ended(),
        options,
        results: &results,
    };
    crate::report::publish(options.out.as_deref(), "streaming", &report)
}

/// `pg_basebackup -D DEST -Fp -X none --checkpoint=fast` as `postgres`
/// under GNU time into a fresh DEST, removed afterwards.
fn basebackup(fixture: &Fixture) -> Result<Run> {
    let time_file = fixture.out_dir().join("time.txt");
    let _ = fs::remove_file(&time_file);
    let dest = fixture.ref_dir().join("basebackup");
    fixture::remove_dir(&dest)?;
    let tool = fixture.pg.pg_bin().join("pg_basebackup");
    let (dst, port) = (dest.to_string_lossy(), fixture.pg.port().to_string());
    let mut cmd = fixture.timed(
        &time_file,
        &tool,
        &[
            "-D",
            &dst,
            "-Fp",
            "-X",
            "none",
            "--checkpoint=fast",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
        ],
    );
    settle(false)?;
    let t = Instant::now();
    let out = barman_testkit::output(&mut cmd)?;
    let seconds = t.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "pg_basebackup exited with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = fixture::tree_bytes(&dest)?;
    fixture::remove_dir(&dest)?;
    let (rss_kib, cpu_s) = read_time_file(&time_file);
    Ok(stream_run(seconds, bytes, (rss_kib, cpu_s), None))
}

/// The streaming part's set-up: the `pg-stream` configuration, the load
/// table, the wait function, `pg_receivewal`'s directory and slot.
struct StreamWorld<'a> {
    fixture: &'a Fixture,
    /// `streaming.conf`.
    conf: PathBuf,
    /// `pg_receivewal`'s target directory.
    pg_receivewal_dir: PathBuf,
    /// Load target per run, bytes.
    wal_bytes: u64,
    /// Clock ticks per second (`/proc/<pid>/stat` CPU times).
    clk_tck: f64,
}

impl<'a> StreamWorld<'a> {
    fn prepare(fixture: &'a Fixture, options: &Options) -> Result<Self> {
        let pg = &fixture.pg;
        pg.psql("ALTER SYSTEM SET archive_command = '/bin/true'")?;
        pg.psql("SELECT pg_reload_conf()")?;
        pg.psql("CREATE TABLE bench_wal (id int, pad text)")?;
        pg.psql(
            "CREATE FUNCTION bench_wait_flush(app text, target pg_lsn, seconds float8, col text) \
             RETURNS boolean LANGUAGE plpgsql AS $$ \
             DECLARE deadline timestamptz := clock_timestamp() + seconds * interval '1 second'; \
             BEGIN LOOP \
               IF EXISTS (SELECT 1 FROM pg_stat_replication \
                          WHERE application_name = app AND (CASE WHEN col = 'write' \
                          THEN write_lsn ELSE flush_lsn END) >= target) THEN \
                 RETURN true; END IF; \
               IF clock_timestamp() >= deadline THEN RETURN false; END IF; \
               PERFORM pg_sleep(0.01); \
             END LOOP; END $$",
        )?;
        let barman_dir = fixture.barman_dir();
        let conf = barman_dir.join(STREAM_CONF);
        let text = format!(
            "[barman]\nbarman_home = {home}\nlog_file = {log}\nlog_level = INFO\n\n\
             [{STREAM_SERVER}]\ndescription = barman-benches streaming\nconninfo = {ci}\n\
             streaming_conninfo = {ci}\nbackup_method = postgres\narchiver = off\n\
             streaming_archiver = on\nslot_name = {BARMAN_SLOT}\ncreate_slot = auto\n",
            home = barman_dir.join("home").display(),
            log = barman_dir.join("barman.log").display(),
            ci = pg.conninfo(),
        );
        fs::write(&conf, text).with_context(|| format!("write {}", conf.display()))?;
        barman_testkit::chown_to(&conf, barman_testkit::SERVER_OS_USER)?;
        barman_testkit::chmod(&conf, 0o600)?;
        let pg_receivewal_dir = fixture.out_dir().join("pg_receivewal");
        fs::create_dir(&pg_receivewal_dir)
            .with_context(|| format!("create {}", pg_receivewal_dir.display()))?;
        barman_testkit::chown_to(&pg_receivewal_dir, barman_testkit::SERVER_OS_USER)?;
        let clk_tck = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        let world = Self {
            fixture,
            conf,
            pg_receivewal_dir,
            wal_bytes: options.wal_mb * 1_000_000,
            clk_tck,
        };
        // pg_receivewal's slot first, reserving WAL now (`pg_receivewal
        // --create-slot` does not), so that it retains the segments barman
        // streams first: both copies of one segment can be compared.
        pg.psql(&format!(
            "SELECT pg_create_physical_replication_slot('{PG_RECEIVEWAL_SLOT}', true)"
        ))?;
        Ok(world)
    }

    /// `pg_receivewal -D DIR --slot S -h -p -U extra...` as `postgres`.
    fn pg_receivewal(&self, extra: &[&str]) -> Command {
        let mut cmd = self
            .fixture
            .as_postgres(self.fixture.pg.pg_bin().join("pg_receivewal"));
        cmd.arg("-D")
            .arg(&self.pg_receivewal_dir)
            .args(["--slot", PG_RECEIVEWAL_SLOT, "-h", "127.0.0.1", "-p"])
            .arg(self.fixture.pg.port().to_string())
            .args(["-U", "postgres"])
            .args(extra);
        cmd
    }

    /// The directory `streamer` writes segments into.
    fn dir(&self, streamer: Streamer) -> PathBuf {
        match streamer {
            Streamer::Barman => self
                .fixture
                .barman_dir()
                .join("home")
                .join(STREAM_SERVER)
                .join("streaming"),
            Streamer::PgReceivewal | Streamer::PgReceivewalSync => self.pg_receivewal_dir.clone(),
        }
    }

    /// Starts `streamer` as `postgres`, its output into `out/<name>.log`.
    fn spawn(&self, streamer: Streamer) -> Result<Child> {
        let log = self.log_path(streamer);
        let file = fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = match streamer {
            Streamer::Barman => {
                let mut cmd = self.fixture.as_postgres(self.fixture.bin().join("barman"));
                cmd.arg("-c")
                    .arg(&self.conf)
                    .args(["receive-wal", STREAM_SERVER]);
                cmd
            }
            Streamer::PgReceivewal | Streamer::PgReceivewalSync => {
                self.pg_receivewal(streamer.pg_receivewal_args())
            }
        };
        cmd.stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        cmd.spawn()
            .with_context(|| format!("start {}", streamer.display()))
    }

    fn log_path(&self, streamer: Streamer) -> PathBuf {
        let name = match streamer {
            Streamer::Barman => "receive-wal.log",
            Streamer::PgReceivewal | Streamer::PgReceivewalSync => "pg_receivewal.log",
        };
        self.fixture.out_dir().join(name)
    }

    /// The server's current WAL position.
    fn current_lsn(&self) -> Result<u64> {
        parse_lsn(&self.fixture.pg.psql("SELECT pg_current_wal_lsn()")?)
    }

    /// Waits until `streamer` (running as `child`) has `target`: its
    /// `flush_lsn` reached it, or — `pg_receivewal` in its default mode,
    /// `timed` — the segment ending at or before it is complete in its
    /// directory (untimed, its `write_lsn` reached it); fails when it exits
    /// first or takes more than [`FLUSH_TIMEOUT_S`].
    fn wait_flushed(
        &self,
        streamer: Streamer,
        child: &mut Child,
        target: u64,
        timed: bool,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(FLUSH_TIMEOUT_S);
        let by_file = timed && streamer == Streamer::PgReceivewal;
        let column = if streamer == Streamer::PgReceivewal {
            "write"
        } else {
            "flush"
        };
        let sql = format!(
            "SELECT bench_wait_flush('{}', '{}', 2, '{column}')",
            streamer.application_name(),
            format_lsn(target)
        );
        // Timeline 1, 16 MiB segments: the fixture's cluster.
        let segment = self.dir(streamer).join(segment_name((target >> 24) - 1));
        loop {
            if by_file {
                if segment.exists() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            } else if self.fixture.pg.psql(&sql)? == "t" {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited ({status}) before reaching {}:\n{}",
                    streamer.id(),
                    format_lsn(target),
                    self.failure_context(streamer)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not reach {} in {FLUSH_TIMEOUT_S} s:\n{}",
                    streamer.id(),
                    format_lsn(target),
                    self.failure_context(streamer)
                );
            }
        }
    }

    /// The streamer's output and, for barman, its log.
    fn failure_context(&self, streamer: Streamer) -> String {
        let mut text = format!(
            "--- output ---\n{}\n--- pg_stat_replication ---\n{}",
            fixture::tail(&self.log_path(streamer), 4096),
            self.fixture
                .pg
                .psql(
                    "SELECT application_name, state, sent_lsn, flush_lsn FROM pg_stat_replication"
                )
                .unwrap_or_default()
        );
        if streamer == Streamer::Barman {
            text.push_str("\n--- barman log (tail) ---\n");
            text.push_str(&self.fixture.log_tail());
        }
        text
    }

    /// Writes at least [`Self::wal_bytes`] of WAL from `start` in
    /// `INSERT` batches, then switches segment; returns the server's
    /// position at the end.
    fn load(&self, start: u64) -> Result<u64> {
        let insert = format!(
            "INSERT INTO bench_wal SELECT g, repeat('x', 500) FROM generate_series(1, {BATCH_ROWS}) AS g"
        );
        while self.current_lsn()? - start < self.wal_bytes {
            self.fixture.pg.psql(&insert)?;
        }
        self.fixture.pg.psql("SELECT pg_switch_wal()")?;
        self.current_lsn()
    }

    /// One run of `streamer` in `mode`; `check` compares a segment with the
    /// server's and with `reference` (set by the first check).
    fn measure(
        &self,
        streamer: Streamer,
        mode: Mode,
        check: bool,
        reference: &mut Option<(String, Vec<u8>)>,
    ) -> Result<Run> {
        self.fixture.pg.psql("TRUNCATE bench_wal")?;
        settle(false)?;
        let (mut child, start, end, seconds, load_s) = match mode {
            Mode::Live => {
                let mut child = self.spawn(streamer)?;
                let caught_up = self.current_lsn()?;
                let waited = self.wait_flushed(streamer, &mut child, caught_up, false);
                if let Err(e) = waited {
                    stop(&mut child);
                    return Err(e);
                }
                let start = self.current_lsn()?;
                let t = Instant::now();
                let end = self.load(start);
                let load_s = t.elapsed().as_secs_f64();
                let waited = end.and_then(|end| {
                    self.wait_flushed(streamer, &mut child, end, true)
                        .map(|()| end)
                });
                let seconds = t.elapsed().as_secs_f64();
                match waited {
                    Ok(end) => (child, start, end, seconds, load_s),
                    Err(e) => {
                        stop(&mut child);
                        return Err(e);
                    }
                }
            }
            Mode::Backlog => {
                let start = self.current_lsn()?;
                let t = Instant::now();
                let end = self.load(start)?;
                let load_s = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let mut child = self.spawn(streamer)?;
                let waited = self.wait_flushed(streamer, &mut child, end, true);
                let seconds = t.elapsed().as_secs_f64();
                if let Err(e) = waited {
                    stop(&mut child);
                    return Err(e);
                }
                (child, start, end, seconds, load_s)
            }
        };
        let (rss_kib, cpu_s) = self.usage(child.id());
        stop(&mut child);
        if check {
            self.compare_segment(streamer, reference)?;
        }
        self.clean(streamer)?;
        Ok(stream_run(
            seconds,
            end - start,
            (rss_kib, cpu_s),
            Some(load_s),
        ))
    }

    /// Peak RSS (KiB) and user + system CPU seconds of a live `pid`.
    fn usage(&self, pid: u32) -> (Option<u64>, Option<f64>) {
        let rss = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            });
        let cpu = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| {
                let rest = t.rsplit_once(')')?.1.to_owned();
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // After the name: state is field 3; utime 14, stime 15.
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) / self.clk_tck)
            });
        (rss, cpu)
    }

    /// The newest complete segment of `streamer`'s directory compared with
    /// the server's `pg_wal` copy; the first becomes the `reference`, which
    /// the other streamer's copy of the same segment must equal.
    fn compare_segment(
        &self,
        streamer: Streamer,
        reference: &mut Option<(String, Vec<u8>)>,
    ) -> Result<()> {
        let dir = self.dir(streamer);
        let name = match reference {
            Some((name, _)) => name.clone(),
            None => complete_segments(&dir)?
                .pop()
                .with_context(|| format!("no complete segment in {} after a run", dir.display()))?,
        };
        let ours = fs::read(dir.join(&name))
            .with_context(|| format!("read {} from {}", name, dir.display()))?;
        if let Some((_, bytes)) = reference {
            ensure!(
                *bytes == ours,
                "segment {name} differs between barman's streaming/ and {}",
                dir.display()
            );
        } else {
            let server = self.fixture.pg.wal_dir().join(&name);
            let theirs = fs::read(&server).with_context(|| format!("read {}", server.display()))?;
            ensure!(
                theirs == ours,
                "segment {name} streamed by {} differs from the server's {}",
                streamer.id(),
                server.display()
            );
            *reference = Some((name.clone(), ours));
        }
        eprintln!(
            "check: {name} from {} is byte-identical to {}",
            streamer.id(),
            if streamer == Streamer::Barman {
                "the server's pg_wal copy"
            } else {
                "barman's and the server's"
            }
        );
        Ok(())
    }

    /// Empties `streamer`'s directory (the next run restarts from its slot).
    fn clean(&self, streamer: Streamer) -> Result<()> {
        let dir = self.dir(streamer);
        for entry in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                fixture::remove_dir(&path)?;
            } else {
                fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// A [`Run`] of a process barman did not start.
fn stream_run(
    seconds: f64,
    bytes: u64,
    usage: (Option<u64>, Option<f64>),
    load_s: Option<f64>,
) -> Run {
    Run {
        seconds,
        bytes,
        rss_kib: usage.0,
        agent_rss_kib: None,
        cpu_s: usage.1,
        backup_id: None,
        copy: None,
        pgbench_s: load_s,
    }
}

/// SIGTERM to `child`, then SIGKILL after 30 s; reaps it.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The complete segments (24 hex digits, no suffix) in `dir`, sorted.
fn complete_segments(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort();
    Ok(names)
}

/// The name of segment `segno` on timeline 1 (16 MiB segments).
fn segment_name(segno: u64) -> String {
    format!("{:08X}{:08X}{:08X}", 1, segno >> 8, segno & 0xFF)
}

/// `X/Y` as a 64-bit position.
fn parse_lsn(text: &str) -> Result<u64> {
    let (hi, lo) = text
        .trim()
        .split_once('/')
        .with_context(|| format!("not an LSN: {text:?}"))?;
    let hi = u64::from_str_radix(hi, 16).with_context(|| format!("not an LSN: {text:?}"))?;
    let lo = u64::from_str_radix(lo, 16).with_context(|| format!("not an LSN: {text:?}"))?;
    Ok((hi << 32) | lo)
}

/// A position as `X/Y`.
fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip() {
        assert_eq!(parse_lsn("1/2A").unwrap(), 0x1_0000_002A);
        assert_eq!(format_lsn(0x1_0000_002A), "1/2A");
        assert!(parse_lsn("12").is_err());
        assert_eq!(segment_name(0x115), "000000010000000100000015");
    }
}
