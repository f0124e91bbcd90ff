//! The `recover` report: medians of the runs as Markdown tables, the
//! targets with PASS/MISS and by how much, the start-up check, and JSON
//! with every run.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{ACCOUNTS_PER_SCALE, Check, Kind, Operation, Options, Run, Source, peer_of};
use crate::backup::{kib_mib, mb};
use crate::report;
use crate::stats;

/// A local recovery should take at most this multiple of `cp -a`'s time
/// (throughput at least its inverse).
const RECOVER_VS_CP: f64 = 1.0 / 1.1;
/// Peak RSS ceiling of a barman process, MiB.
const RSS_MIB: f64 = 100.0;

/// Everything the report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    /// The machine and the load averages.
    pub conditions: report::Conditions,
    /// The scenario's options (scale, runs, page cache).
    pub options: &'a Options,
    /// The backup restored.
    pub source: &'a Source,
    /// The operations, in report order.
    pub operations: &'a [Operation],
    /// The runs of each operation (same order).
    pub results: &'a [Vec<Run>],
    /// PostgreSQL started on the last run of every restore.
    pub checks: &'a [Check],
    /// The peers, when they ran.
    pub peers: Option<&'a crate::peers::Peers>,
}

/// The numbers of one operation's row.
#[derive(Debug, Clone)]
struct Row {
    /// The operation's id.
    id: &'static str,
    /// What it runs.
    kind: Kind,
    /// Median seconds.
    seconds: f64,
    /// MB/s: the backup's bytes ÷ median seconds.
    mb_per_s: f64,
    /// Throughput ÷ `cp -a`'s.
    ratio: f64,
    /// Highest peak RSS over the runs, KiB.
    rss_kib: Option<u64>,
    /// Highest agent peak RSS over the runs, KiB.
    agent_rss_kib: Option<u64>,
    /// Most agent sessions in one run.
    sessions: usize,
    /// Median user + system CPU seconds.
    cpu_s: Option<f64>,
    /// Median of barman's own `elapsed_seconds`.
    elapsed_s: Option<f64>,
    /// Every run's seconds, `a / b / c`.
    times: String,
}

/// One target and how the run fared.
#[derive(Debug, Clone)]
struct Target {
    /// What is measured against what.
    name: String,
    /// The measured value and the margin, as shown.
    measured: String,
    /// The threshold, as shown.
    threshold: String,
    /// PASS or MISS.
    pass: bool,
    /// The measured value, for JSON.
    value: f64,
}

impl Target {
    /// PASS or MISS.
    fn verdict(&self) -> &'static str {
        report::verdict(Some(self.pass))
    }

    /// The target as a Markdown list item.
    fn line(&self) -> String {
        format!(
            "- **{}** {}: {} (target {})",
            self.verdict(),
            self.name,
            self.measured,
            self.threshold
        )
    }

    /// The target in the JSON report.
    fn to_json(&self) -> Value {
        json!({
            "target": self.name,
            "measured": self.measured,
            "threshold": self.threshold,
            "value": self.value,
            "verdict": self.verdict(),
        })
    }
}

impl Report<'_> {
    /// One row per operation; `cp-a` (the first) is the reference.
    fn rows(&self) -> Vec<Row> {
        let mb_s = mb(self.source.bytes);
        let mut rows: Vec<Row> = self
            .operations
            .iter()
            .zip(self.results)
            .map(|(&(id, kind), runs)| {
                let median_of = |f: &dyn Fn(&Run) -> Option<f64>| {
                    let v: Vec<f64> = runs.iter().filter_map(f).collect();
                    (!v.is_empty()).then(|| stats::median(&v))
                };
                let seconds = median_of(&|r| Some(r.seconds)).unwrap_or(f64::NAN);
                Row {
                    id,
                    kind,
                    seconds,
                    mb_per_s: mb_s / seconds,
                    ratio: f64::NAN,
                    rss_kib: runs.iter().filter_map(|r| r.usage.0).max(),
                    agent_rss_kib: runs.iter().flat_map(|r| r.agents.iter().copied()).max(),
                    sessions: runs.iter().map(|r| r.agents.len()).max().unwrap_or(0),
                    cpu_s: median_of(&|r| r.usage.1),
                    elapsed_s: median_of(&|r| r.recover.as_ref().map(|s| s.elapsed_seconds)),
                    times: runs
                        .iter()
                        .map(|r| format!("{:.2}", r.seconds))
                        .collect::<Vec<_>>()
                        .join(" / "),
                }
            })
            .collect();
        let cp = rows
            .iter()
            .find(|r| r.id == "cp-a")
            .map_or(f64::NAN, |r| r.mb_per_s);
        for r in &mut rows {
            r.ratio = r.mb_per_s / cp;
        }
        rows
    }

    fn versus_rows(rows: &[Row]) -> Vec<crate::versus::Row<'_>> {
        rows.iter()
            .map(|r| crate::versus::Row {
                id: r.id,
                seconds: r.seconds,
                peer_of: peer_of(r.kind),
            })
            .collect()
    }

    fn targets(rows: &[Row]) -> Vec<Target> {
        let mut targets: Vec<Target> = rows
            .iter()
            .filter(|r| matches!(r.kind, Kind::Recover { remote: false, .. }))
            .map(|r| {
                let pass = r.ratio >= RECOVER_VS_CP;
                let margin = if pass {
                    format!("{:.2}× above the target", r.ratio - RECOVER_VS_CP)
                } else {
                    format!(
                        "{:.2}× short: {:.0} % more throughput needed",
                        RECOVER_VS_CP - r.ratio,
                        (RECOVER_VS_CP / r.ratio - 1.0) * 100.0
                    )
                };
                Target {
                    name: format!(
                        "local recovery `{}`: throughput ÷ `cp -a` throughput (time ≤ 1.1× `cp -a`)",
                        r.id
                    ),
                    measured: format!("{:.2}× ({margin})", r.ratio),
                    threshold: format!("≥ {RECOVER_VS_CP:.2}×"),
                    pass,
                    value: r.ratio,
                }
            })
            .collect();
        for (name, rss) in [
            (
                "peak RSS of the `barman recover` process",
                &(|r: &Row| r.rss_kib) as &dyn Fn(&Row) -> Option<u64>,
            ),
            (
                "peak RSS of a `barman agent` session (remote recoveries)",
                &|r: &Row| r.agent_rss_kib,
            ),
        ] {
            let peak = rows
                .iter()
                .filter(|r| matches!(r.kind, Kind::Recover { .. }))
                .filter_map(|r| rss(r).map(|k| (kib_mib(k), r.id)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((mib, id)) = peak {
                targets.push(Target {
                    name: name.to_owned(),
                    measured: format!("{mib:.1} MiB (`{id}`)"),
                    threshold: format!("< {RSS_MIB:.0} MiB"),
                    pass: mib < RSS_MIB,
                    value: mib,
                });
            }
        }
        targets
    }
}

impl crate::report::Document for Report<'_> {
    /// The Markdown report.
    fn markdown(&self) -> String {
        let rows = self.rows();
        let cache = if self.options.drop_caches {
            "and the page cache dropped (cold reads)"
        } else {
            "the backup being read from the page cache"
        };
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Recovery, end to end (`barman-benches recover`)\n\n\
             The backup restored: `{}` of `pgbench -i -s {}` (local-rsync, `-j 2`, {:.1} s, \
             untimed), {:.0} MB in `base/<id>/data`. Every operation runs as `postgres` into a \
             fresh DEST, removed after it; {} interleaved run(s), the median reported; `sync` \
             before each operation, {cache}.\n",
            self.source.id,
            self.options.scale,
            self.source.backup_s,
            mb(self.source.bytes),
            self.options.runs,
        );
        md.push_str(&self.conditions.markdown());
        md.push_str(
            "| operation | median s | MB/s | throughput ÷ `cp -a` | peak RSS MiB | \
             agent sessions | agent peak RSS MiB | CPU s | barman's elapsed s | run times s |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &rows {
            let cells = [
                format!("{:.2}", r.seconds),
                format!("{:.0}", r.mb_per_s),
                format!("{:.2}", r.ratio),
                report::cell(r.rss_kib.map(kib_mib), 1),
                if r.sessions > 0 {
                    r.sessions.to_string()
                } else {
                    "–".to_owned()
                },
                report::cell(r.agent_rss_kib.map(kib_mib), 1),
                report::cell(r.cpu_s, 1),
                report::cell(r.elapsed_s, 2),
                r.times.clone(),
            ];
            let _ = writeln!(md, "| {} | {} |", r.id, cells.join(" | "));
        }
        if let Some(s) = self
            .results
            .iter()
            .flatten()
            .find_map(|r| r.recover.as_ref())
        {
            let _ = writeln!(
                md,
                "\nEvery recovery wrote {} files, {:.0} MB (`files_written`, `bytes_written`; \
                 each verified against the backup's manifest), and staged {} WAL file(s) into \
                 `pg_wal`.",
                s.files_written,
                mb(s.bytes_written),
                s.wals
            );
        }
        md.push_str(&crate::versus::markdown(&Self::versus_rows(&rows), "s"));
        let _ = writeln!(
            md,
            "\n**Check**: PostgreSQL was started on the last run of every restore (a free port, \
             `pg_ctl -w start` as `postgres`, `archive_mode = off`, no recovery target); each \
             replayed its WAL, answered as a primary and counted {} × {} rows in \
             `pgbench_accounts`:\n",
            self.options.scale, ACCOUNTS_PER_SCALE
        );
        for c in self.checks {
            let _ = writeln!(
                md,
                "- `{}`: {} rows, up after {:.1} s",
                c.operation, c.rows, c.start_s
            );
        }
        if let Some(p) = self.peers {
            let _ = writeln!(md, "\n{}", p.to_markdown());
        }
        let targets: Vec<String> = Self::targets(&rows).iter().map(Target::line).collect();
        let _ = writeln!(
            md,
            "\nTargets (a MISS is a finding, not a failure of the run):\n\n{}",
            targets.join("\n")
        );
        let _ = writeln!(md, "\nOperations:\n");
        for (id, kind) in self.operations {
            let _ = writeln!(md, "- `{id}`: {} — `{}`", kind.about(), kind.display());
        }
        let _ = writeln!(
            md,
            "\nColumns: *median s*: spawn to exit of the command (a recovery includes reading \
             the catalog, the copy with its blake3 verification, the WALs staged, the \
             configuration rewritten and everything made durable); *MB/s*: the backup's \
             `data` bytes ÷ median s (MB = 10⁶ bytes; the same bytes for every row); \
             *throughput ÷ `cp -a`*: > 1 is faster than `cp -a`; *peak RSS*: GNU time's maximum \
             resident set size of the command (the highest over the runs); *agent sessions*: \
             `barman agent` processes behind sshd in a run; *agent peak RSS*: the highest of \
             theirs; *CPU s*: user + system seconds of the \
             command and the children it waited for (not the agents); *barman's elapsed s*: \
             `elapsed_seconds` of `barman -f json recover`."
        );
        md
    }

    /// The JSON report (every run included).
    fn json(&self) -> Value {
        let rows = self.rows();
        let operations: Vec<Value> = rows
            .iter()
            .zip(self.results)
            .map(|(r, runs)| {
                let (remote, jobs) = match r.kind {
                    Kind::CpA(_) => (None, None),
                    Kind::Recover { remote, jobs }
                    | Kind::BarmanPy { remote, jobs }
                    | Kind::PgBackRest {
                        ssh: remote,
                        procs: jobs,
                    } => (Some(remote), Some(jobs)),
                };
                json!({
                    "id": r.id,
                    "about": r.kind.about(),
                    "command": r.kind.display(),
                    "remote": remote,
                    "jobs": jobs,
                    "peer_of": peer_of(r.kind),
                    "summary": {
                        "median_s": r.seconds,
                        "mb_per_s": r.mb_per_s,
                        "throughput_ratio_to_cp_a": r.ratio,
                        "peak_rss_mib": r.rss_kib.map(kib_mib),
                        "agent_peak_rss_mib": r.agent_rss_kib.map(kib_mib),
                        "agent_sessions": r.sessions,
                        "cpu_s": r.cpu_s,
                        "barman_elapsed_s": r.elapsed_s,
                    },
                    "runs": runs.iter().map(|run| json!({
                        "seconds": run.seconds,
                        "peak_rss_kib": run.usage.0,
                        "agent_sessions_peak_rss_kib": run.agents,
                        "cpu_s": run.usage.1,
                        "recover": run.recover.as_ref().map(|s| s.raw.clone()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        self.conditions.document(
            "recover",
            json!({
                "parameters": {
                    "pgbench_scale": self.options.scale,
                    "runs": self.options.runs,
                    "drop_caches": self.options.drop_caches,
                    "backup_id": self.source.id,
                    "backup_data_bytes": self.source.bytes,
                    "backup_s": self.source.backup_s,
                    "run_as": barman_testkit::SERVER_OS_USER,
                },
                "operations": operations,
                "checks": self.checks.iter().map(|c| json!({
                    "operation": c.operation,
                    "pgbench_accounts_rows": c.rows,
                    "expected_rows": u64::from(self.options.scale) * ACCOUNTS_PER_SCALE,
                    "start_s": c.start_s,
                })).collect::<Vec<_>>(),
                "peers": self.peers.map(crate::peers::Peers::to_json),
                "versus_peers": crate::versus::json(&Self::versus_rows(&rows)),
                "targets": Self::targets(&rows).iter().map(Target::to_json).collect::<Vec<_>>(),
            }),
        )
    }
}
