//! The `wal-archive` report: summaries of the runs as a Markdown table and
//! as JSON (with every call's latency).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Kind, RUN_AS, Run, Variant, count_f64};
use crate::report::verdict;
use crate::stats;

/// Everything the report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    /// The machine and the load averages.
    pub conditions: crate::report::Conditions,
    /// Segments per run.
    pub segments: usize,
    /// Bytes per segment.
    pub segment_bytes: u64,
    /// The first input segment.
    pub first_segment: String,
    /// The last input segment.
    pub last_segment: String,
    /// Runs per variant.
    pub runs: usize,
    /// The pgbench scale of the WAL-generating rounds.
    pub scale: u32,
    /// The variants, in report order.
    pub variants: &'a [Variant],
    /// The runs of each variant (same order).
    pub results: &'a [Vec<Run>],
}

/// The numbers of one variant's row.
#[derive(Debug, Clone)]
struct Summary {
    /// Median over runs of each run's median call latency (ms).
    p50_ms: f64,
    /// Median over runs of each run's 95th-percentile call latency (ms).
    p95_ms: f64,
    /// Median over runs of each run's mean call latency (ms).
    mean_ms: f64,
    /// Median run total (s).
    total_s: f64,
    /// Segments per second of the median run.
    seg_per_s: f64,
    /// Median `archive-wal` time (s), barman variants.
    archive_wal_s: Option<f64>,
    /// Segments per second counting the calls and `archive-wal`.
    seg_per_s_filed: Option<f64>,
    /// Bytes kept by the last run.
    stored_bytes: Option<u64>,
    /// Every run's total (s), in run order.
    totals_s: Vec<f64>,
}

impl Summary {
    fn of(runs: &[Run], segments: usize) -> Self {
        let per_run = |f: &dyn Fn(&Run) -> f64| -> f64 {
            stats::median(&runs.iter().map(f).collect::<Vec<_>>())
        };
        let total_s = per_run(&|r| r.total_s);
        let archive_wal: Vec<f64> = runs.iter().filter_map(|r| r.archive_wal_s).collect();
        let filed: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.archive_wal_s.map(|a| a + r.total_s))
            .collect();
        let n = count_f64(segments);
        Self {
            p50_ms: per_run(&|r| stats::median(&r.latencies_ms)),
            p95_ms: per_run(&|r| stats::percentile(&r.latencies_ms, 95)),
            mean_ms: per_run(&|r| stats::mean(&r.latencies_ms)),
            total_s,
            seg_per_s: n / total_s,
            archive_wal_s: (!archive_wal.is_empty()).then(|| stats::median(&archive_wal)),
            seg_per_s_filed: (!filed.is_empty()).then(|| n / stats::median(&filed)),
            stored_bytes: runs.last().and_then(|r| r.stored_bytes),
            totals_s: runs.iter().map(|r| r.total_s).collect(),
        }
    }
}

/// Bytes as MiB.
fn mib(bytes: u64) -> f64 {
    // Exact below 2^53 bytes.
    let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX);
    f64::from(kib) / 1024.0
}

impl Report<'_> {
    fn summaries(&self) -> Vec<Summary> {
        self.results
            .iter()
            .map(|runs| Summary::of(runs, self.segments))
            .collect()
    }

    /// The median run total of the variant `id`, if it ran.
    fn total_of(&self, summaries: &[Summary], id: &str) -> Option<f64> {
        self.variants
            .iter()
            .position(|v| v.id == id)
            .map(|i| summaries[i].total_s)
    }

    fn input_bytes(&self) -> u64 {
        self.segment_bytes * u64::try_from(self.segments).unwrap_or(u64::MAX)
    }

    /// The barman-rs rows beside the peers' (median run totals).
    fn versus_rows(&self, summaries: &[Summary]) -> Vec<crate::versus::Row<'_>> {
        self.variants
            .iter()
            .zip(summaries)
            .map(|(v, s)| crate::versus::Row {
                id: v.id,
                seconds: s.total_s,
                peer_of: v.peer_of,
            })
            .collect()
    }

    /// The latency targets of one `archive_command` call (p50 of the
    /// one-host variants): (name, measured ms, threshold ms, pass).
    fn targets(&self, summaries: &[Summary]) -> Vec<(String, f64, f64, bool)> {
        [("local-none", 20.0), ("local-zstd", 60.0)]
            .iter()
            .filter_map(|&(id, threshold)| {
                let i = self.variants.iter().position(|v| v.id == id)?;
                let p50 = summaries[i].p50_ms;
                Some((
                    format!("one `archive_command` call for a 16 MiB segment, `{id}` (p50)"),
                    p50,
                    threshold,
                    p50 <= threshold,
                ))
            })
            .collect()
    }
}

impl crate::report::Document for Report<'_> {
    /// The Markdown report.
    fn markdown(&self) -> String {
        let summaries = self.summaries();
        let cp = self.total_of(&summaries, "cp");
        let durable = self.total_of(&summaries, "cp-durable");
        let ratio = |base: Option<f64>, total: f64| {
            base.map_or_else(|| "n/a".to_owned(), |b| format!("{:.2}", total / b))
        };
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## WAL archiving, end to end (`barman-benches wal-archive`)\n"
        );
        let _ = writeln!(
            md,
            "{} segments of {} MiB ({:.0} MiB, {} … {}) from `pgbench -i -s {}` rounds; each \
             variant archives all of them one `archive_command` call at a time, as `{RUN_AS}`, \
             through `/bin/sh -c`, in name order; {} interleaved runs, the median run reported.\n",
            self.segments,
            mib(self.segment_bytes),
            mib(self.input_bytes()),
            self.first_segment,
            self.last_segment,
            self.scale,
            self.runs,
        );
        md.push_str(&self.conditions.markdown());
        let _ = writeln!(
            md,
            "| variant | p50 ms/call | p95 ms/call | mean ms/call | seg/s | time ÷ cp | time ÷ cp-durable | archive-wal s | seg/s incl. archive-wal | kept MiB | run totals s |"
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (v, s) in self.variants.iter().zip(&summaries) {
            let totals: Vec<String> = s.totals_s.iter().map(|t| format!("{t:.2}")).collect();
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
                v.id,
                s.p50_ms,
                s.p95_ms,
                s.mean_ms,
                s.seg_per_s,
                ratio(cp, s.total_s),
                ratio(durable, s.total_s),
                s.archive_wal_s
                    .map_or_else(|| "–".to_owned(), |a| format!("{a:.2}")),
                s.seg_per_s_filed
                    .map_or_else(|| "–".to_owned(), |a| format!("{a:.1}")),
                s.stored_bytes
                    .map_or_else(|| "–".to_owned(), |b| format!("{:.0}", mib(b))),
                totals.join(" / "),
            );
        }
        md.push_str(&crate::versus::markdown(
            &self.versus_rows(&summaries),
            "run total s",
        ));
        let _ = writeln!(
            md,
            "\nTargets (a MISS is a finding, not a failure of the run):\n"
        );
        for (name, value, threshold, pass) in self.targets(&summaries) {
            let _ = writeln!(
                md,
                "- **{}** {name}: {value:.1} ms (target ≤ {threshold:.0} ms{})",
                verdict(Some(pass)),
                if pass {
                    String::new()
                } else {
                    format!(", {:.0} % over", (value / threshold - 1.0) * 100.0)
                }
            );
        }
        let _ = writeln!(
            md,
            "\nVariants (`%p` = `pg_wal/<segment>`, run in a directory shaped like PGDATA):\n"
        );
        for v in self.variants {
            let _ = writeln!(md, "- `{}`: {} — `{}`", v.id, v.about, v.display());
        }
        if let Some((v, bytes)) =
            self.variants
                .iter()
                .zip(&summaries)
                .find_map(|(v, s)| match v.kind {
                    Kind::Barman { compression, .. } if !compression.is_empty() => {
                        s.stored_bytes.map(|b| (v, b))
                    }
                    _ => None,
                })
        {
            let _ = writeln!(
                md,
                "\nzstd keeps {:.0} MiB of the {:.0} MiB ({}, {:.1}×): `pgbench -i` WAL is very \
                 compressible, real WAL less so, which flatters the zstd rows (less to fsync \
                 and to send).",
                mib(bytes),
                mib(self.input_bytes()),
                v.id,
                mib(self.input_bytes()) / mib(bytes).max(f64::MIN_POSITIVE),
            );
        }
        let failures: Vec<String> = self
            .variants
            .iter()
            .zip(self.results)
            .filter_map(|(v, runs)| {
                let n: u32 = runs.iter().map(|r| r.failed_calls).sum();
                (n > 0).then(|| format!("{} ({n})", v.id))
            })
            .collect();
        let _ = writeln!(
            md,
            "\nFailed calls (retried immediately, their time included): {}.",
            if failures.is_empty() {
                "none".to_owned()
            } else {
                failures.join(", ")
            }
        );
        let _ = writeln!(
            md,
            "\nColumns: *p50/p95/mean ms/call*: spawn-to-exit time of single calls (the median \
             over runs of each run's statistic); *seg/s*: segments ÷ wall time of the median \
             run's calls; *time ÷ X*: median run total over X's; *archive-wal s*: one `barman \
             archive-wal SERVER` after the run, filing its segments (compressing for zstd \
             servers); *kept MiB*: bytes kept (copies, or `wals/`). With `--parallel 4` most \
             calls return at once because an earlier call already pushed their segment, so \
             their p50 is tiny and the cost sits in the p95 and the mean."
        );
        md
    }

    /// The JSON report (every call's latency included).
    fn json(&self) -> Value {
        let summaries = self.summaries();
        let cp = self.total_of(&summaries, "cp");
        let variants: Vec<Value> = self
            .variants
            .iter()
            .zip(&summaries)
            .zip(self.results)
            .map(|((v, s), runs)| {
                let (kind, compression, parallel) = match v.kind {
                    Kind::Copy => ("copy", "none", false),
                    Kind::Transport => ("transport", "none", false),
                    Kind::Barman {
                        compression,
                        prefetch,
                    } => (
                        "barman",
                        if compression.is_empty() {
                            "none"
                        } else {
                            compression
                        },
                        prefetch,
                    ),
                    Kind::PgBackRest { drain } => ("pgbackrest", "per variant", drain),
                    Kind::BarmanPy => ("barman-py", "per variant", false),
                };
                json!({
                    "id": v.id,
                    "about": v.about,
                    "archive_command": v.display(),
                    "kind": kind,
                    "compression": compression,
                    "parallel": if parallel { 4 } else { 1 },
                    "peer_of": v.peer_of,
                    "summary": {
                        "p50_ms": s.p50_ms,
                        "p95_ms": s.p95_ms,
                        "mean_ms": s.mean_ms,
                        "total_s": s.total_s,
                        "segments_per_s": s.seg_per_s,
                        "time_ratio_to_cp": cp.map(|c| s.total_s / c),
                        "archive_wal_s": s.archive_wal_s,
                        "segments_per_s_incl_archive_wal": s.seg_per_s_filed,
                        "kept_bytes": s.stored_bytes,
                    },
                    "runs": runs.iter().map(|r| json!({
                        "total_s": r.total_s,
                        "archive_wal_s": r.archive_wal_s,
                        "kept_bytes": r.stored_bytes,
                        "failed_calls_retried": r.failed_calls,
                        "latencies_ms": r.latencies_ms,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        self.conditions.document("wal-archive", json!({
            "parameters": {
                "segments": self.segments,
                "segment_bytes": self.segment_bytes,
                "input_bytes": self.input_bytes(),
                "first_segment": self.first_segment,
                "last_segment": self.last_segment,
                "runs": self.runs,
                "pgbench_scale": self.scale,
                "run_as": RUN_AS,
            },
            "variants": variants,
            "versus_peers": crate::versus::json(&self.versus_rows(&summaries)),
            "targets": self.targets(&summaries).iter().map(|(name, value, threshold, pass)| json!({
                "target": name,
                "value_ms": value,
                "threshold_ms": threshold,
                "verdict": verdict(Some(*pass)),
            })).collect::<Vec<_>>(),
        }))
    }
}
