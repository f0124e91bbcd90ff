//! The `incremental` report: one row per operation (median of the runs),
//! each increment's time and bytes as a share of its full backup's, the
//! chain's recovery against the full's, barman-rs beside Barman, the
//! PostgreSQL check of every recovery and the targets with PASS/MISS.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Check, INCREMENTS, Operation, Options, Run, Step, Tool};
use crate::backup::{kib_mib, mb};
use crate::report;
use crate::stats;

/// An increment's time at most this share of its full backup's.
const INC_TIME_SHARE: f64 = 0.15;
/// An increment's bytes at most this share of its full backup's.
const INC_BYTES_SHARE: f64 = 0.05;
/// The chain's recovery at most this multiple of the full's recovery.
const CHAIN_VS_FULL: f64 = 1.3;
/// barman-rs's compressed backup at most this multiple of Barman's bytes.
const ZSTD_BYTES_VS_BARMAN: f64 = 1.1;

/// Everything the report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    /// The machine and the load averages.
    pub conditions: report::Conditions,
    /// The options (scale, runs, major, cache).
    pub options: &'a Options,
    /// PGDATA's regular files after `pgbench -i`, bytes.
    pub pgdata_bytes: u64,
    /// The machine as probed with the compressed rows' PostgreSQL 15.
    pub zstd_pg: Value,
    /// The operations, in report order.
    pub operations: &'a [Operation],
    /// Their runs (same order).
    pub results: &'a [Vec<Run>],
    /// PostgreSQL started on the last run's recoveries.
    pub checks: &'a [Check],
    /// Barman's version, when it ran.
    pub peers: Option<&'a crate::peers::Peers>,
}

/// One operation's medians.
#[derive(Debug, Clone)]
struct Row {
    op: Operation,
    seconds: f64,
    /// Median backup.info `size`.
    size: Option<f64>,
    /// Median backup.info `deduplicated_size`.
    dedup: Option<f64>,
    /// Median `du` of `base/<id>` (backups) or of DEST (recoveries).
    du: Option<f64>,
    rss_kib: Option<u64>,
    cpu_s: Option<f64>,
    times: String,
}

/// One target.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    measured: String,
    threshold: String,
    pass: bool,
    value: f64,
}

impl Target {
    fn line(&self) -> String {
        format!(
            "- **{}** {}: {} (target {})",
            report::verdict(Some(self.pass)),
            self.name,
            self.measured,
            self.threshold
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "target": self.name,
            "measured": self.measured,
            "threshold": self.threshold,
            "value": self.value,
            "verdict": report::verdict(Some(self.pass)),
        })
    }
}

/// Median of `values`, `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| stats::median(values))
}

/// Bytes as f64 (exact below 2^53).
fn as_f64(bytes: u64) -> f64 {
    mb(bytes) * 1e6
}

impl Report<'_> {
    fn rows(&self) -> Vec<Row> {
        self.operations
            .iter()
            .zip(self.results)
            .map(|(&op, runs)| {
                let of = |f: &dyn Fn(&Run) -> Option<f64>| {
                    median(&runs.iter().filter_map(f).collect::<Vec<_>>())
                };
                Row {
                    op,
                    seconds: of(&|r| Some(r.seconds)).unwrap_or(f64::NAN),
                    size: of(&|r| r.bytes.as_ref()?.size.map(as_f64)),
                    dedup: of(&|r| r.bytes.as_ref()?.deduplicated_size.map(as_f64)),
                    du: of(&|r| r.bytes.as_ref().map(|b| b.du).or(r.dest_du).map(as_f64)),
                    rss_kib: runs.iter().filter_map(|r| r.rss_kib).max(),
                    cpu_s: of(&|r| r.cpu_s),
                    times: runs
                        .iter()
                        .map(|r| format!("{:.2}", r.seconds))
                        .collect::<Vec<_>>()
                        .join(" / "),
                }
            })
            .collect()
    }

    /// The row of `tool`'s `step`.
    fn find(rows: &[Row], tool: Tool, step: Step) -> Option<&Row> {
        rows.iter().find(|r| r.op == Operation { tool, step })
    }

    /// The share (time, du) of the row against its tool's reference: the
    /// full backup for an increment, the full's recovery for the chain's.
    fn shares(rows: &[Row], row: &Row) -> (Option<f64>, Option<f64>) {
        let base = match row.op.step {
            Step::Increment(_) | Step::Zstd => Step::Full,
            Step::RecoverChain => Step::RecoverFull,
            _ => return (None, None),
        };
        let Some(b) = Self::find(rows, row.op.tool, base) else {
            return (None, None);
        };
        let du = match (row.du, b.du) {
            (Some(a), Some(f)) if row.op.is_backup() => Some(a / f),
            _ => None,
        };
        (Some(row.seconds / b.seconds), du)
    }

    fn targets(rows: &[Row]) -> Vec<Target> {
        let mut out = Vec::new();
        let incs: Vec<&Row> = rows
            .iter()
            .filter(|r| r.op.tool == Tool::Ours && matches!(r.op.step, Step::Increment(_)))
            .collect();
        let worst = |f: &dyn Fn(&Row) -> Option<f64>| {
            incs.iter()
                .filter_map(|r| Some((f(r)?, r.op.id())))
                .max_by(|a, b| a.0.total_cmp(&b.0))
        };
        if let Some((share, id)) = worst(&|r| Self::shares(rows, r).0) {
            let pass = share <= INC_TIME_SHARE;
            out.push(Target {
                name: "barman-rs increment's time ÷ its full backup's (the slowest of the three)"
                    .to_owned(),
                measured: format!(
                    "{:.1} % (`{id}`){}",
                    share * 100.0,
                    if pass {
                        String::new()
                    } else {
                        format!(
                            ": {:.1} points over; an increment pays the full backup's fixed \
                             costs (process start, catalog, fast checkpoint, the end WAL \
                             archived and filed, syncfs) while its transfer shrinks to the \
                             changed blocks",
                            (share - INC_TIME_SHARE) * 100.0
                        )
                    }
                ),
                threshold: format!("≤ {:.0} %", INC_TIME_SHARE * 100.0),
                pass,
                value: share,
            });
        }
        if let Some((share, id)) = worst(&|r| Self::shares(rows, r).1) {
            let pass = share <= INC_BYTES_SHARE;
            out.push(Target {
                name: "barman-rs increment's bytes on disk (`du` of `base/<id>`) ÷ its full \
                       backup's (the largest of the three)"
                    .to_owned(),
                measured: format!(
                    "{:.2} % (`{id}`){}",
                    share * 100.0,
                    if pass {
                        String::new()
                    } else {
                        format!(
                            ": {:.2} points over; the blocks `pgbench` touched are spread \
                             over the whole table, and files other than relations are sent \
                             whole",
                            (share - INC_BYTES_SHARE) * 100.0
                        )
                    }
                ),
                threshold: format!("≤ {:.0} %", INC_BYTES_SHARE * 100.0),
                pass,
                value: share,
            });
        }
        let chain = Self::find(rows, Tool::Ours, Step::RecoverChain);
        if let Some(c) = chain
            && let (Some(x), _) = Self::shares(rows, c)
        {
            let pass = x <= CHAIN_VS_FULL;
            out.push(Target {
                name: "barman-rs recovery of the chain (full + 3 increments) ÷ recovery of the \
                       full backup alone"
                    .to_owned(),
                measured: format!(
                    "{x:.2}×{}",
                    if pass {
                        String::new()
                    } else {
                        format!(
                            ": {:.0} % over; every relation file with an `INCREMENTAL` \
                             counterpart is rebuilt block by block from up to four backups \
                             (the root's file and each `INCREMENTAL` file read and verified) \
                             instead of streamed whole; it is CPU-bound (see the CPU column and \
                             `--jobs`)",
                            (x / CHAIN_VS_FULL - 1.0) * 100.0
                        )
                    }
                ),
                threshold: format!("≤ {CHAIN_VS_FULL:.1}×"),
                pass,
                value: x,
            });
        }
        if let (Some(c), Some(b)) = (chain, Self::find(rows, Tool::Barman, Step::RecoverChain)) {
            let ratio = b.seconds / c.seconds;
            let pass = c.seconds < b.seconds;
            out.push(Target {
                name: "barman-rs recovery of the chain faster than Barman's \
                       (`pg_combinebackup` + rsync)"
                    .to_owned(),
                measured: format!(
                    "{:.2} s vs {:.2} s: Barman takes {ratio:.2}× ours{}",
                    c.seconds,
                    b.seconds,
                    if pass { "" } else { " (slower than Barman)" }
                ),
                threshold: "Barman ÷ barman-rs > 1".to_owned(),
                pass,
                value: ratio,
            });
        }
        let ours_z = Self::find(rows, Tool::Ours, Step::Zstd);
        if let (Some(z), Some(b)) = (ours_z, Self::find(rows, Tool::Barman, Step::Zstd)) {
            let ratio = b.seconds / z.seconds;
            let pass = z.seconds < b.seconds;
            out.push(Target {
                name: "barman-rs zstd (tar, client) backup faster than Barman's".to_owned(),
                measured: format!(
                    "{:.2} s vs {:.2} s: Barman takes {ratio:.2}× ours{}",
                    z.seconds,
                    b.seconds,
                    if pass {
                        ""
                    } else {
                        " (slower: both compress one stream at zstd level 3 on one core; the \
                         difference is the rest of the pipeline)"
                    }
                ),
                threshold: "Barman ÷ barman-rs > 1".to_owned(),
                pass,
                value: ratio,
            });
            if let (Some(a), Some(c)) = (z.du, b.du) {
                let x = a / c;
                let pass = x <= ZSTD_BYTES_VS_BARMAN;
                out.push(Target {
                    name: "barman-rs zstd backup's bytes on disk ÷ Barman's".to_owned(),
                    measured: format!(
                        "{:.1} MB vs {:.1} MB = {x:.3}×{}",
                        a / 1e6,
                        c / 1e6,
                        if pass {
                            String::new()
                        } else {
                            format!(
                                ": {:.1} % over; the zstd frames or level differ",
                                (x / ZSTD_BYTES_VS_BARMAN - 1.0) * 100.0
                            )
                        }
                    ),
                    threshold: format!("≤ {ZSTD_BYTES_VS_BARMAN:.1}×"),
                    pass,
                    value: x,
                });
            }
        }
        out
    }

    fn versus_rows(rows: &[Row]) -> Vec<crate::versus::Row<'_>> {
        rows.iter()
            .map(|r| crate::versus::Row {
                id: r.op.id(),
                seconds: r.seconds,
                peer_of: r.op.peer_of(),
            })
            .collect()
    }
}

/// A byte count as MB with one decimal, or a dash.
fn mb_cell(bytes: Option<f64>) -> String {
    report::cell(bytes.map(|b| b / 1e6), 1)
}

impl crate::report::Document for Report<'_> {
    fn markdown(&self) -> String {
        let rows = self.rows();
        let o = self.options;
        let cache = if o.drop_caches {
            "the page cache dropped (cold reads)"
        } else {
            "the page cache dropped and the operation's input (PGDATA for a backup, every \
             backup of the chain for a recovery) read back into it"
        };
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Incremental backups, PostgreSQL {major} (`barman-benches incremental`)\n\n\
             `pgbench -i -s {scale}` ({pgdata:.0} MB of PGDATA), `summarize_wal = on`, WAL \
             archived through `barman put-wal`. Per run: a full backup, then {INCREMENTS} times \
             `pgbench -n -t 1000 -c 2` (untimed) and an incremental backup on the previous one; \
             then the full backup alone and the third increment (the chain) recovered into \
             fresh directories with `--target-immediate --target-action promote -j {jobs}` \
             (Barman: `--jobs {jobs}`). barman-rs \
             and Barman take turns on the same cluster at each step, so each increment covers \
             the same work. Last, a full backup with `backup_compression = zstd` \
             (`backup_compression_format = tar`, compressed by the client) by each. Every \
             operation runs as `postgres` under GNU time after `sync` and \
             {cache}; {runs} run(s), the median reported.\n",
            major = o.major,
            scale = o.scale,
            pgdata = mb(self.pgdata_bytes),
            runs = o.runs,
            jobs = o.jobs,
        );
        md.push_str(&self.conditions.markdown());
        md.push_str(
            "| operation | median s | time ÷ full | size MB | deduplicated MB | du MB | du ÷ full \
             | peak RSS MiB | CPU s | run times s |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &rows {
            let (t, d) = Self::shares(&rows, r);
            let share = |x: Option<f64>, pct: bool| {
                x.map_or_else(
                    || "–".to_owned(),
                    |v| {
                        if pct {
                            format!("{:.2} %", v * 100.0)
                        } else {
                            format!("{v:.2}×")
                        }
                    },
                )
            };
            let cells = [
                format!("{:.2}", r.seconds),
                share(t, r.op.is_backup()),
                mb_cell(r.size),
                mb_cell(r.dedup),
                mb_cell(r.du),
                share(d, true),
                report::cell(r.rss_kib.map(kib_mib), 1),
                report::cell(r.cpu_s, 1),
                r.times.clone(),
            ];
            let _ = writeln!(md, "| {} | {} |", r.op.id(), cells.join(" | "));
        }
        md.push_str(
            "\n*time ÷ full*: an increment's (or the zstd backup's) time as a share of its \
             tool's full backup; for `recover-chain`, its time ÷ the same tool's `recover-full`. *size*, \
             *deduplicated*: backup.info's `size` and `deduplicated_size`; *du*: `du -s -B1` \
             of `base/<id>` (a backup) or of DEST after the recovery (WALs staged included). \
             MB = 10⁶ bytes.\n",
        );
        md.push_str(&crate::versus::markdown(&Self::versus_rows(&rows), "s"));
        if o.major != 18 && !o.without_barman {
            md.push_str(
                "\nBarman's recoveries are not measured on PostgreSQL 17: they run \
                 `pg_combinebackup`, whose major must be the backup's, and only \
                 `pg_combinebackup` 18 exists on this machine.\n",
            );
        }
        let _ = writeln!(
            md,
            "\nThe `zstd` rows ran on a second cluster, {} (`pgbench -i -s {}`, \
             idle), with Barman's `path_prefix` = PostgreSQL 15's binaries: Barman compresses \
             with `pg_basebackup --compress=client-zstd`, and the only `pg_basebackup` here \
             built with zstd is PostgreSQL 15's, which refuses newer servers (PostgreSQL 18's \
             is built without zstd). Their *time ÷ full* and *du ÷ full* compare with the \
             uncompressed full backups of the PostgreSQL {} cluster above.\n",
            self.zstd_pg
                .get("postgres")
                .and_then(Value::as_str)
                .unwrap_or("PostgreSQL 15"),
            o.scale,
            o.major
        );
        let _ = writeln!(
            md,
            "\n**Check**: PostgreSQL ({} for the chain, 15 for `zstd`) was started on every \
             recovery of the last run (a free \
             port, `archive_mode = off`; the zstd backups recovered untimed for the check); \
             each came up as a primary holding exactly the \
             primary's data when that backup was taken (rows and sum of `abalance` in \
             `pgbench_accounts`, rows in `pgbench_history`):\n",
            o.major
        );
        for c in self.checks {
            let _ = writeln!(
                md,
                "- `{}`: {}, up after {:.1} s",
                c.operation, c.state, c.start_s
            );
        }
        if let Some(p) = self.peers {
            let _ = writeln!(
                md,
                "\nPeer: {}, `backup_method = postgres`, `path_prefix` = PostgreSQL 18's \
                 binaries (15's for the `zstd` rows), `local_staging_path` (and `staging_path`) \
                 on the same file system.",
                p.barman_version
            );
        }
        let targets: Vec<String> = Self::targets(&rows).iter().map(Target::line).collect();
        let _ = writeln!(
            md,
            "\nTargets (a MISS is a finding, not a failure of the run):\n\n{}",
            targets.join("\n")
        );
        let _ = writeln!(md, "\nOperations:\n");
        for op in self.operations {
            let _ = writeln!(md, "- `{}`: {} — `{}`", op.id(), op.about(), op.display());
        }
        md
    }

    fn json(&self) -> Value {
        let rows = self.rows();
        let operations: Vec<Value> = rows
            .iter()
            .zip(self.results)
            .map(|(r, runs)| {
                let (t, d) = Self::shares(&rows, r);
                json!({
                    "id": r.op.id(),
                    "about": r.op.about(),
                    "command": r.op.display(),
                    "peer_of": r.op.peer_of(),
                    "summary": {
                        "median_s": r.seconds,
                        "time_ratio_to_full": t,
                        "size_bytes": r.size,
                        "deduplicated_size_bytes": r.dedup,
                        "du_bytes": r.du,
                        "du_ratio_to_full": d,
                        "peak_rss_mib": r.rss_kib.map(kib_mib),
                        "cpu_s": r.cpu_s,
                    },
                    "runs": runs.iter().map(|run| json!({
                        "seconds": run.seconds,
                        "peak_rss_kib": run.rss_kib,
                        "cpu_s": run.cpu_s,
                        "backup_id": run.bytes.as_ref().map(|b| b.id.clone()),
                        "size": run.bytes.as_ref().and_then(|b| b.size),
                        "deduplicated_size": run.bytes.as_ref().and_then(|b| b.deduplicated_size),
                        "du": run.bytes.as_ref().map(|b| b.du).or(run.dest_du),
                        "barman_json": run.json,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        self.conditions.document(
            "incremental",
            json!({
                "parameters": {
                    "pgbench_scale": self.options.scale,
                    "runs": self.options.runs,
                    "postgresql_major": self.options.major,
                    "drop_caches": self.options.drop_caches,
                    "recover_jobs": self.options.jobs,
                    "with_barman": !self.options.without_barman,
                    "pgdata_bytes": self.pgdata_bytes,
                    "increments": INCREMENTS,
                    "pgbench_before_each_increment": "pgbench -n -t 1000 -c 2",
                    "run_as": barman_testkit::SERVER_OS_USER,
                },
                "operations": operations,
                "zstd_cluster": self.zstd_pg,
                "checks": self.checks.iter().map(|c| json!({
                    "operation": c.operation,
                    "state": c.state,
                    "start_s": c.start_s,
                })).collect::<Vec<_>>(),
                "peers": self.peers.map(crate::peers::Peers::to_json),
                "versus_peers": crate::versus::json(&Self::versus_rows(&rows)),
                "targets": Self::targets(&rows).iter().map(Target::to_json).collect::<Vec<_>>(),
            }),
        )
    }
}
