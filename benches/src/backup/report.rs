//! The `backup` report: medians of the runs as Markdown tables, the
//! targets with PASS/MISS, and JSON with every run.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{INCREMENTAL_CLIENTS, INCREMENTAL_TRANSACTIONS, Kind, Operation, Run, kib_mib, mb};
use crate::report;
use crate::stats;

/// A full local uncompressed backup should take at most this multiple of
/// `cp -a`'s time.
const FULL_VS_CP: f64 = 1.1;
/// A second backup (`--reuse-backup link` after `pgbench -t 1000`) should
/// take at most this fraction of a full backup's time.
const INCREMENTAL_VS_FULL: f64 = 0.25;
/// Peak RSS ceiling of a barman process, MiB.
const RSS_MIB: f64 = 100.0;

/// Everything the report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    /// The machine and the load averages.
    pub conditions: report::Conditions,
    /// The pgbench scale.
    pub scale: u32,
    /// Runs per operation.
    pub runs: usize,
    /// Whether the page cache was dropped before every operation.
    pub drop_caches: bool,
    /// PGDATA's regular files after set-up, bytes.
    pub pgdata_bytes: u64,
    /// `pgbench -i` seconds.
    pub pgbench_init_s: f64,
    /// Seconds to archive and file the WAL of `pgbench -i`.
    pub wal_catch_up_s: f64,
    /// The operations, in report order.
    pub operations: &'a [Operation],
    /// The runs of each operation (same order).
    pub results: &'a [Vec<Run>],
}

/// The numbers of one operation's row.
#[derive(Debug, Clone)]
struct Summary {
    /// Median seconds.
    seconds: f64,
    /// Median bytes covered.
    bytes: u64,
    /// MB/s: median bytes ÷ median seconds.
    mb_per_s: f64,
    /// Highest peak RSS over the runs, KiB.
    rss_kib: Option<u64>,
    /// Highest agent peak RSS over the runs, KiB.
    agent_rss_kib: Option<u64>,
    /// Median user + system CPU seconds.
    cpu_s: Option<f64>,
    /// Index of the run closest to the median time (its copy statistics
    /// are shown).
    median_run: usize,
}

impl Summary {
    fn of(runs: &[Run]) -> Self {
        let seconds = stats::median(&runs.iter().map(|r| r.seconds).collect::<Vec<_>>());
        let mut bytes: Vec<u64> = runs.iter().map(|r| r.bytes).collect();
        bytes.sort_unstable();
        let bytes = bytes.get(bytes.len() / 2).copied().unwrap_or(0);
        let cpu: Vec<f64> = runs.iter().filter_map(|r| r.cpu_s).collect();
        let median_run = runs
            .iter()
            .enumerate()
            .min_by(|a, b| {
                (a.1.seconds - seconds)
                    .abs()
                    .total_cmp(&(b.1.seconds - seconds).abs())
            })
            .map_or(0, |(i, _)| i);
        Self {
            seconds,
            bytes,
            mb_per_s: mb(bytes) / seconds,
            rss_kib: runs.iter().filter_map(|r| r.rss_kib).max(),
            agent_rss_kib: runs.iter().filter_map(|r| r.agent_rss_kib).max(),
            cpu_s: (!cpu.is_empty()).then(|| stats::median(&cpu)),
            median_run,
        }
    }
}

/// One target and how the run fared.
#[derive(Debug, Clone)]
struct Target {
    /// What is measured against what.
    name: String,
    /// The measured value, as shown.
    measured: String,
    /// The threshold, as shown.
    threshold: String,
    /// `Some(true)` PASS, `Some(false)` MISS, `None` not measured.
    pass: Option<bool>,
    /// The measured value, for JSON.
    value: Option<f64>,
}

impl Target {
    fn verdict(&self) -> &'static str {
        report::verdict(self.pass)
    }
}

/// `x` with one decimal, or an en dash.
fn opt1(x: Option<f64>) -> String {
    report::cell(x, 1)
}

impl Report<'_> {
    fn summaries(&self) -> Vec<Summary> {
        self.results.iter().map(|runs| Summary::of(runs)).collect()
    }

    /// The summary of operation `id`, if it ran.
    fn summary_of<'s>(&self, summaries: &'s [Summary], id: &str) -> Option<&'s Summary> {
        self.operations
            .iter()
            .position(|o| o.id == id)
            .map(|i| &summaries[i])
    }

    /// `cp -a`'s throughput, MB/s.
    fn cp_mb_per_s(&self, summaries: &[Summary]) -> Option<f64> {
        self.summary_of(summaries, "cp-a").map(|s| s.mb_per_s)
    }

    fn versus_rows(&self, summaries: &[Summary]) -> Vec<crate::versus::Row<'_>> {
        self.operations
            .iter()
            .zip(summaries)
            .map(|(o, s)| crate::versus::Row {
                id: o.id,
                seconds: s.seconds,
                peer_of: o.peer_of,
            })
            .collect()
    }

    fn targets(&self, summaries: &[Summary]) -> Vec<Target> {
        // `cp -a` copies all of PGDATA (pg_wal included), a backup what it
        // covers: compare the time for the same bytes (throughput).
        let cp = self.cp_mb_per_s(summaries);
        let mut targets = Vec::new();
        for id in ["local-j1", "local-j2"] {
            let ratio = self
                .summary_of(summaries, id)
                .and_then(|s| cp.map(|c| c / s.mb_per_s));
            targets.push(Target {
                name: format!(
                    "full local backup `{id}`: time per byte ÷ `cp -a`'s (= `cp -a` MB/s ÷ the backup's)"
                ),
                measured: ratio.map_or_else(
                    || "not measured".to_owned(),
                    |r| {
                        if r <= FULL_VS_CP {
                            format!("{r:.2}×")
                        } else {
                            format!("{r:.2}× ({:.0} % over)", (r / FULL_VS_CP - 1.0) * 100.0)
                        }
                    },
                ),
                threshold: format!("≤ {FULL_VS_CP:.1}×"),
                pass: ratio.map(|r| r <= FULL_VS_CP),
                value: ratio,
            });
        }
        let full = self
            .summary_of(summaries, "local-j1")
            .or_else(|| self.summary_of(summaries, "local-j2"));
        let ratio = self
            .summary_of(summaries, "incremental")
            .and_then(|i| full.map(|f| i.seconds / f.seconds));
        targets.push(Target {
            name: "`incremental` time ÷ full local backup (`local-j1`) time".to_owned(),
            measured: ratio.map_or_else(
                || "not measured".to_owned(),
                |r| format!("{:.1} %", r * 100.0),
            ),
            threshold: format!("≤ {:.0} %", INCREMENTAL_VS_FULL * 100.0),
            pass: ratio.map(|r| r <= INCREMENTAL_VS_FULL),
            value: ratio,
        });
        let mut peak = |name: &str, f: &dyn Fn(&Summary) -> Option<u64>| {
            let max = self
                .operations
                .iter()
                .zip(summaries)
                .filter(|(o, _)| matches!(o.kind, Kind::Full { .. } | Kind::Incremental { .. }))
                .filter_map(|(o, s)| f(s).map(|k| (kib_mib(k), o.id)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            targets.push(Target {
                name: name.to_owned(),
                measured: max.map_or_else(
                    || "not measured".to_owned(),
                    |(m, id)| format!("{m:.1} MiB (`{id}`)"),
                ),
                threshold: format!("< {RSS_MIB:.0} MiB"),
                pass: max.map(|(m, _)| m < RSS_MIB),
                value: max.map(|(m, _)| m),
            });
        };
        peak("peak RSS of the `barman backup` process", &|s| s.rss_kib);
        peak(
            "peak RSS of a `barman agent` session (ssh operations)",
            &|s| s.agent_rss_kib,
        );
        targets
    }
}

impl crate::report::Document for Report<'_> {
    /// The Markdown report.
    fn markdown(&self) -> String {
        let summaries = self.summaries();
        let cp = self.cp_mb_per_s(&summaries);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Base backups, end to end (`barman-benches backup`)\n"
        );
        let _ = writeln!(
            md,
            "PGDATA of `pgbench -i -s {}`: {:.0} MB in regular files (`pgbench -i` took {:.1} s; \
             archiving and filing its WAL through `barman put-wal` {:.1} s, before any \
             measurement). Every operation runs as `postgres`; {} interleaved run(s), the \
             median reported; `sync` before each operation{}.\n",
            self.scale,
            mb(self.pgdata_bytes),
            self.pgbench_init_s,
            self.wal_catch_up_s,
            self.runs,
            if self.drop_caches {
                ", and the page cache dropped (cold reads)"
            } else {
                " (PGDATA is read from the page cache)"
            },
        );
        md.push_str(&self.conditions.markdown());
        let _ = writeln!(
            md,
            "| operation | median s | MB/s | throughput ÷ `cp -a` | peak RSS MiB | agent peak RSS MiB | CPU s | run times s |"
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for ((o, s), runs) in self.operations.iter().zip(&summaries).zip(self.results) {
            let times: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.seconds)).collect();
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.0} | {} | {} | {} | {} | {} |",
                o.id,
                s.seconds,
                s.mb_per_s,
                cp.map_or_else(|| "n/a".to_owned(), |c| format!("{:.2}", s.mb_per_s / c)),
                opt1(s.rss_kib.map(kib_mib)),
                opt1(s.agent_rss_kib.map(kib_mib)),
                opt1(s.cpu_s),
                times.join(" / "),
            );
        }

        let copies: Vec<_> = self
            .operations
            .iter()
            .zip(&summaries)
            .zip(self.results)
            .filter_map(|((o, s), runs)| {
                runs.get(s.median_run)
                    .and_then(|r| r.copy.as_ref())
                    .map(|c| (o, c))
            })
            .collect();
        if !copies.is_empty() {
            let _ = writeln!(
                md,
                "\nCopy statistics of each backup's median run (`barman -f json backup`, `copy`):\n"
            );
            let _ = writeln!(
                md,
                "| operation | files | fetched | linked | copied locally | delta | total MB | written MB | transferred MB | copy s |"
            );
            let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        }
        for (o, c) in copies {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.2} |",
                o.id,
                c.files,
                c.files_fetched,
                c.files_linked,
                c.files_copied_locally,
                c.files_delta,
                mb(c.bytes_total),
                mb(c.bytes_written),
                mb(c.bytes_transferred),
                c.copy_seconds,
            );
        }

        md.push_str(&crate::versus::markdown(&self.versus_rows(&summaries), "s"));
        let _ = writeln!(
            md,
            "\nTargets (a MISS is a finding, not a failure of the run):\n"
        );
        for t in self.targets(&summaries) {
            let _ = writeln!(
                md,
                "- **{}** {}: {} (target {})",
                t.verdict(),
                t.name,
                t.measured,
                t.threshold
            );
        }

        let _ = writeln!(md, "\nOperations:\n");
        for o in self.operations {
            let _ = writeln!(md, "- `{}`: {} — `{}`", o.id, o.about, o.display());
        }
        let _ = writeln!(
            md,
            "\nColumns: *median s*: spawn to exit of the command (a backup includes its \
             checkpoint, `pg_backup_start/stop`, the copy, the fsyncs and `--wait` for its last \
             WAL); *MB/s*: bytes covered ÷ median s (MB = 10⁶ bytes; `cp -a`: PGDATA's regular \
             files; a backup: the copy's `bytes_total`, so an incremental's figure is the data \
             it covers, not what it wrote); *throughput ÷ `cp -a`*: > 1 is faster than `cp -a`; \
             *peak RSS*: GNU time's maximum resident set size of the command (the highest over \
             the runs); *agent*: the same for the `barman agent` sessions behind sshd; *CPU s*: \
             user + system seconds of the command and the children it waited for (not the \
             agents). The incremental runs after `pgbench -n -t {INCREMENTAL_TRANSACTIONS} -c \
             {INCREMENTAL_CLIENTS}` (untimed) on top of the newest full backup."
        );
        md
    }

    /// The JSON report (every run included).
    fn json(&self) -> Value {
        let summaries = self.summaries();
        let cp = self.cp_mb_per_s(&summaries);
        let operations: Vec<Value> = self
            .operations
            .iter()
            .zip(&summaries)
            .zip(self.results)
            .map(|((o, s), runs)| {
                let (kind, conf, jobs) = match o.kind {
                    Kind::Copy { .. } => ("reference", None, None),
                    Kind::Full { conf, jobs } => ("full", Some(conf), Some(jobs)),
                    Kind::Incremental { conf, jobs } => ("incremental", Some(conf), Some(jobs)),
                    Kind::PgBackRest { .. } => ("pgbackrest", None, None),
                    Kind::BarmanPy { .. } => ("barman-py", None, None),
                };
                json!({
                    "id": o.id,
                    "about": o.about,
                    "command": o.display(),
                    "kind": kind,
                    "configuration": conf.map(|c| format!("{c:?}")),
                    "jobs": jobs,
                    "peer_of": o.peer_of,
                    "summary": {
                        "median_s": s.seconds,
                        "bytes": s.bytes,
                        "mb_per_s": s.mb_per_s,
                        "throughput_ratio_to_cp_a": cp.map(|c| s.mb_per_s / c),
                        "peak_rss_mib": s.rss_kib.map(kib_mib),
                        "agent_peak_rss_mib": s.agent_rss_kib.map(kib_mib),
                        "cpu_s": s.cpu_s,
                    },
                    "runs": runs.iter().map(|r| json!({
                        "seconds": r.seconds,
                        "bytes": r.bytes,
                        "peak_rss_kib": r.rss_kib,
                        "agent_peak_rss_kib": r.agent_rss_kib,
                        "cpu_s": r.cpu_s,
                        "backup_id": r.backup_id,
                        "copy": r.copy.as_ref().map(|c| c.raw.clone()),
                        "pgbench_before_s": r.pgbench_s,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets(&summaries)
            .iter()
            .map(|t| {
                json!({
                    "target": t.name,
                    "threshold": t.threshold,
                    "value": t.value,
                    "verdict": t.verdict(),
                })
            })
            .collect();
        self.conditions.document(
            "backup",
            json!({
                "parameters": {
                    "pgbench_scale": self.scale,
                    "runs": self.runs,
                    "drop_caches": self.drop_caches,
                    "pgdata_bytes": self.pgdata_bytes,
                    "pgbench_init_s": self.pgbench_init_s,
                    "wal_catch_up_s": self.wal_catch_up_s,
                    "incremental_pgbench": format!(
                        "pgbench -n -t {INCREMENTAL_TRANSACTIONS} -c {INCREMENTAL_CLIENTS}"
                    ),
                    "run_as": barman_testkit::SERVER_OS_USER,
                },
                "operations": operations,
                "versus_peers": crate::versus::json(&self.versus_rows(&summaries)),
                "targets": targets,
            }),
        )
    }
}
