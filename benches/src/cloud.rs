//! The barman-cloud tools against S3 (moto on loopback), barman-rs beside
//! real barman-cloud on the same emulator and cluster: one
//! `archive_command` call of a 16 MiB segment (none, gzip, zstd), a
//! backup of a `pgbench -i` cluster (gzip, lz4; zstd: barman-rs only, the
//! barman-cloud of Debian's Python has none), and the restore of a backup
//! (gzip); median seconds and the highest peak RSS of the runs, under GNU
//! time. The page cache is dropped and PGDATA read back before every
//! backup, so that each row starts in the same state.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use barman_testkit::object_storage::{Moto, S3_ENV, barman_cloud_tool};
use barman_testkit::{PgCluster, SERVER_OS_USER, barman_bin, chown_to, stage_binary};
use serde_json::{Value, json};

use crate::backup::{kib_mib, read_time_file, settle_for};
use crate::machine::{self, Machine};
use crate::report::{Conditions, Document};
use crate::stats;

/// Options of the `cloud` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// pgbench scale of the backed-up cluster (≈ 15 MB per unit).
    #[arg(long, default_value_t = 100)]
    pub scale: u32,
    /// Runs of each operation; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// archive_command calls per run (one 16 MiB segment each).
    #[arg(long, default_value_t = 10)]
    pub calls: usize,
    /// Upload jobs of both backup tools (`-J`).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Directory for cloud.md and cloud.json [default: <cargo target
    /// dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// One measured row.
#[derive(Debug, Clone)]
struct Row {
    operation: String,
    tool: &'static str,
    /// Seconds of every run.
    seconds: Vec<f64>,
    /// Highest peak RSS over the runs, KiB.
    rss_kib: Option<u64>,
}

/// The report.
#[derive(Debug)]
struct Report {
    conditions: Conditions,
    options_text: String,
    pgdata_bytes: u64,
    rows: Vec<Row>,
}

impl Document for Report {
    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Object storage (`barman-benches cloud`)\n\n{} PGDATA {:.0} MB; moto on loopback; barman-cloud 3.19 from PyPI.\n",
            self.options_text,
            crate::backup::mb(self.pgdata_bytes)
        );
        md.push_str(&self.conditions.markdown());
        md.push_str("| operation | tool | median s | ÷ barman-cloud | peak RSS MiB | run times s |\n|---|---|--:|--:|--:|---|\n");
        for row in &self.rows {
            let median = stats::median(&row.seconds);
            let peer = self
                .rows
                .iter()
                .find(|r| r.operation == row.operation && r.tool == "barman-cloud")
                .map(|r| stats::median(&r.seconds));
            let ratio = peer.map_or_else(|| "–".to_owned(), |p| format!("{:.2}", median / p));
            let times: Vec<String> = row.seconds.iter().map(|s| format!("{s:.3}")).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {median:.3} | {ratio} | {} | {} |",
                row.operation,
                row.tool,
                row.rss_kib
                    .map_or_else(|| "?".to_owned(), |k| format!("{:.1}", kib_mib(k))),
                times.join(" ")
            );
        }
        md
    }

    fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "operation": r.operation,
                    "tool": r.tool,
                    "median_s": stats::median(&r.seconds),
                    "seconds": r.seconds,
                    "peak_rss_kib": r.rss_kib,
                })
            })
            .collect();
        self.conditions.document(
            "cloud",
            json!({"parameters": self.options_text, "pgdata_bytes": self.pgdata_bytes, "rows": rows}),
        )
    }
}

/// Runs `program args` under GNU time as `user` (`None`: as is), with the
/// emulator's credentials; seconds and peak RSS.
fn timed(
    program: &Path,
    args: &[&str],
    moto: &Moto,
    user: Option<&str>,
    time_file: &Path,
) -> Result<(f64, Option<u64>)> {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-o").arg(time_file).args(["-f", "%M %e %U %S"]);
    if let Some(user) = user {
        cmd.args(["runuser", "-u", user, "--"]);
    }
    cmd.arg("env");
    for (k, v) in S3_ENV {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(program)
        .args(["--endpoint-url", &moto.endpoint()])
        .args(args)
        .current_dir("/tmp");
    let t = std::time::Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    let seconds = t.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (rss, _) = read_time_file(time_file);
    Ok((seconds, rss))
}

fn push(rows: &mut Vec<Row>, operation: &str, tool: &'static str, seconds: f64, rss: Option<u64>) {
    if let Some(row) = rows
        .iter_mut()
        .find(|r| r.operation == operation && r.tool == tool)
    {
        row.seconds.push(seconds);
        row.rss_kib = row.rss_kib.max(rss);
    } else {
        rows.push(Row {
            operation: operation.to_owned(),
            tool,
            seconds: vec![seconds],
            rss_kib: rss,
        });
    }
}

/// Runs the scenario and writes the report.
pub fn run(options: &Options) -> Result<()> {
    ensure!(
        options.runs > 0 && options.calls > 0,
        "--runs and --calls must be at least 1"
    );
    let load_before = machine::load_average();
    let moto = Moto::start().context("moto_server (scripts/install-test-deps.sh installs it)")?;
    let pg = PgCluster::builder()
        .archive_command("/bin/true")
        .start()
        .context("start PostgreSQL 15")?;
    let conditions = Conditions::new(Machine::probe(pg.pg_bin()), load_before);
    pg.pgbench_init(options.scale).context("pgbench -i")?;
    let mut pgdata_bytes = 0;
    crate::backup::fixture::for_each_file(pg.data_dir(), |_, meta| pgdata_bytes += meta.len())?;
    let work = tempfile::Builder::new()
        .prefix("barman-bench-cloud-")
        .tempdir_in("/tmp")?;
    chown_to(work.path(), SERVER_OS_USER)?;
    barman_testkit::chmod(work.path(), 0o755)?;
    let ours =
        |name: &str| -> Result<PathBuf> { Ok(stage_binary(&barman_bin(name)?, work.path())?) };
    let (ours_archive, ours_backup, ours_restore) = (
        ours("barman-cloud-wal-archive")?,
        ours("barman-cloud-backup")?,
        ours("barman-cloud-restore")?,
    );
    let theirs = |name: &str| barman_cloud_tool(name).context("barman[cloud]");
    let (theirs_archive, theirs_backup, theirs_restore) = (
        theirs("barman-cloud-wal-archive")?,
        theirs("barman-cloud-backup")?,
        theirs("barman-cloud-restore")?,
    );
    // Real 16 MiB segments to archive.
    let segments_dir = work.path().join("segments");
    fs::create_dir(&segments_dir)?;
    let mut segments = Vec::new();
    while segments.len() < options.calls {
        pg.psql("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, 1, g, g, now() FROM generate_series(1, 50000) g")?;
        let name = pg.switch_wal()?;
        let dst = segments_dir.join(&name);
        if !dst.exists() {
            fs::copy(pg.wal_dir().join(&name), &dst)?;
            segments.push(dst);
        }
    }
    for bucket in ["ours", "theirs"] {
        moto.create_bucket(&format!("bench-{bucket}"))?;
    }
    let time_file = work.path().join("time");
    let mut rows = Vec::new();
    let port = pg.port().to_string();
    for round in 1..=options.runs {
        // archive_command: one call per segment; the per-call median.
        for (codec, label) in [("", "none"), ("--gzip", "gzip"), ("--zstd", "zstd")] {
            for (tool, program, bucket) in [
                ("barman-rs", &ours_archive, "bench-ours"),
                ("barman-cloud", &theirs_archive, "bench-theirs"),
            ] {
                let url = format!("s3://{bucket}/wal-{label}-{round}");
                let mut seconds = Vec::new();
                let mut rss = None;
                for segment in &segments {
                    let mut args = vec![url.as_str(), "pg", segment.to_str().unwrap_or_default()];
                    if !codec.is_empty() {
                        args.insert(0, codec);
                    }
                    let (s, r) = timed(program, &args, &moto, None, &time_file)?;
                    seconds.push(s);
                    rss = rss.max(r);
                }
                push(
                    &mut rows,
                    &format!("archive_command, 16 MiB, {label}"),
                    tool,
                    stats::median(&seconds),
                    rss,
                );
            }
        }
        // Backups, PGDATA cached before each.
        for (codec, label) in [("-z", "gzip"), ("--lz4", "lz4"), ("--zstd", "zstd")] {
            for (tool, program, bucket) in [
                ("barman-rs", &ours_backup, "bench-ours"),
                ("barman-cloud", &theirs_backup, "bench-theirs"),
            ] {
                if codec == "--zstd" && tool == "barman-cloud" {
                    continue;
                }
                settle_for(false, &[pg.data_dir()])?;
                let url = format!("s3://{bucket}/backup-{label}");
                let jobs = options.jobs.to_string();
                let args = [
                    codec,
                    "-J",
                    &jobs,
                    "--immediate-checkpoint",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    &url,
                    "pg",
                ];
                let (s, r) = timed(program, &args, &moto, Some(SERVER_OS_USER), &time_file)?;
                eprintln!("run {round}: backup {label} {tool}: {s:.2} s");
                push(&mut rows, &format!("backup, {label}"), tool, s, r);
            }
        }
        // Restores of the latest gzip backup barman-cloud took.
        for (tool, program) in [
            ("barman-rs", &ours_restore),
            ("barman-cloud", &theirs_restore),
        ] {
            let dest = work.path().join(format!("restore-{tool}-{round}"));
            let dest_text = dest.to_str().unwrap_or_default().to_owned();
            let args = [
                "s3://bench-theirs/backup-gzip",
                "pg",
                "latest",
                dest_text.as_str(),
            ];
            let (s, r) = timed(program, &args, &moto, None, &time_file)?;
            eprintln!("run {round}: restore {tool}: {s:.2} s");
            push(&mut rows, "restore, gzip", tool, s, r);
            fs::remove_dir_all(&dest).ok();
        }
    }
    let options_text = format!(
        "`pgbench -i -s {}`; {} run(s), each: {} archive_command calls per codec, one backup per codec with -J {}, one restore.",
        options.scale, options.runs, options.calls, options.jobs
    );
    let report = Report {
        conditions: conditions.ended(),
        options_text,
        pgdata_bytes,
        rows,
    };
    crate::report::publish(options.out.as_deref(), "cloud", &report)
}
