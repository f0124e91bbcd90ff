//! The `streaming` report: medians as two Markdown tables (base backups,
//! WAL streaming), the checks, the targets with PASS/MISS and by how much,
//! and JSON with every run.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Mode, Options, Results, Run, Streamer};
use crate::backup::fixture::SERVER;
use crate::backup::{kib_mib, mb};
use crate::report::{cell, verdict};
use crate::stats;

/// `backup_method = postgres` may take at most this multiple of
/// `pg_basebackup`'s time.
const BACKUP_VS_PG_BASEBACKUP: f64 = 1.1;
/// `barman receive-wal` should reach this fraction of `pg_receivewal`'s
/// throughput.
const RECEIVE_VS_PG_RECEIVEWAL: f64 = 0.9;

/// Everything the report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    /// The machine and the load averages.
    pub conditions: crate::report::Conditions,
    /// The options.
    pub options: &'a Options,
    /// The runs.
    pub results: &'a Results,
}

/// Medians of a list of runs.
#[derive(Debug, Clone, Copy)]
struct Median {
    seconds: f64,
    mb_per_s: f64,
    bytes: u64,
    rss_kib: Option<u64>,
    cpu_s: Option<f64>,
    load_s: Option<f64>,
}

impl Median {
    fn of(runs: &[Run]) -> Self {
        let med = |f: fn(&Run) -> Option<f64>| {
            let v: Vec<f64> = runs.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| stats::median(&v))
        };
        Self {
            seconds: med(|r| Some(r.seconds)).unwrap_or(f64::NAN),
            mb_per_s: med(|r| Some(mb(r.bytes) / r.seconds)).unwrap_or(f64::NAN),
            bytes: runs.iter().map(|r| r.bytes).max().unwrap_or(0),
            rss_kib: runs.iter().filter_map(|r| r.rss_kib).max(),
            cpu_s: med(|r| r.cpu_s),
            load_s: med(|r| r.pgbench_s),
        }
    }
}

/// A verdict line: (what, measured ratio, threshold text, pass, margin).
type Verdict = (String, f64, String, bool, String);

fn times(runs: &[Run], f: fn(&Run) -> f64) -> String {
    runs.iter()
        .map(|r| format!("{:.2}", f(r)))
        .collect::<Vec<_>>()
        .join(" / ")
}

impl Report<'_> {
    fn streaming(&self, streamer: Streamer, mode: Mode) -> &[Run] {
        self.results
            .streaming
            .iter()
            .find(|(k, _)| *k == (streamer, mode))
            .map_or(&[], |(_, runs)| runs.as_slice())
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let base = Median::of(&self.results.basebackup);
        let ours = Median::of(&self.results.barman_backup);
        let ratio = ours.seconds / base.seconds;
        let pass = ratio <= BACKUP_VS_PG_BASEBACKUP;
        let margin = if pass {
            format!(
                "{:.0} % under the limit",
                (1.0 - ratio / BACKUP_VS_PG_BASEBACKUP) * 100.0
            )
        } else {
            format!(
                "{:.0} % too slow: {:.1} s to gain",
                (ratio / BACKUP_VS_PG_BASEBACKUP - 1.0) * 100.0,
                ours.seconds - base.seconds * BACKUP_VS_PG_BASEBACKUP
            )
        };
        let mut out = vec![(
            "`backup_method = postgres` time ÷ `pg_basebackup -Fp` time".to_owned(),
            ratio,
            format!("≤ {BACKUP_VS_PG_BASEBACKUP:.1}×"),
            pass,
            margin,
        )];
        for mode in Mode::ALL {
            let ours = Median::of(self.streaming(Streamer::Barman, mode)).mb_per_s;
            let theirs = Median::of(self.streaming(Streamer::PgReceivewal, mode)).mb_per_s;
            let ratio = ours / theirs;
            let pass = ratio >= RECEIVE_VS_PG_RECEIVEWAL;
            let margin = if pass {
                format!("{:.2}× above the target", ratio - RECEIVE_VS_PG_RECEIVEWAL)
            } else {
                format!(
                    "{:.0} % more throughput needed",
                    (RECEIVE_VS_PG_RECEIVEWAL / ratio - 1.0) * 100.0
                )
            };
            out.push((
                format!(
                    "`barman receive-wal` throughput ÷ `pg_receivewal` throughput, {}",
                    mode.id()
                ),
                ratio,
                format!("≥ {RECEIVE_VS_PG_RECEIVEWAL:.1}×"),
                pass,
                margin,
            ));
        }
        out
    }
}

impl crate::report::Document for Report<'_> {
    /// The Markdown report.
    fn markdown(&self) -> String {
        let o = self.options;
        let r = self.results;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Streaming, end to end (`barman-benches streaming`)\n\n\
             `pgbench -i -s {}` ({:.0} MB in PGDATA); {} interleaved run(s) of each operation, \
             the median reported; every WAL load ≥ {} MB (`INSERT … repeat('x', 500)` batches \
             of {} rows, then `pg_switch_wal()`).\n",
            o.scale,
            mb(r.pgdata_bytes),
            o.runs,
            o.wal_mb,
            super::BATCH_ROWS,
        );
        md.push_str(&self.conditions.markdown());
        md.push_str(
            "### Base backup\n\n\
             | operation | median s | MB | MB/s | time ÷ `pg_basebackup` | peak RSS MiB | CPU s | \
             run times s |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        let base = Median::of(&r.basebackup).seconds;
        for (name, runs) in [
            (
                "`pg_basebackup -D DIR -Fp -X none --checkpoint=fast`",
                &r.basebackup,
            ),
            (
                "`barman backup` (`backup_method = postgres`)",
                &r.barman_backup,
            ),
        ] {
            let m = Median::of(runs);
            let _ = writeln!(
                md,
                "| {name} | {:.2} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
                m.seconds,
                mb(m.bytes),
                m.mb_per_s,
                m.seconds / base,
                cell(m.rss_kib.map(kib_mib), 1),
                cell(m.cpu_s, 1),
                times(runs, |r| r.seconds),
            );
        }
        md.push_str(
            "\n### WAL streaming\n\n\
             | streamer | mode | median MB/s | median s | WAL MB | throughput ÷ `pg_receivewal` | \
             load s | peak RSS MiB | CPU s | run MB/s |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for mode in Mode::ALL {
            let theirs = Median::of(self.streaming(Streamer::PgReceivewal, mode)).mb_per_s;
            for streamer in Streamer::ALL {
                let runs = self.streaming(streamer, mode);
                let m = Median::of(runs);
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} | {:.2} | {:.0} | {:.2} | {} | {} | {} | {} |",
                    streamer.id(),
                    mode.id(),
                    m.mb_per_s,
                    m.seconds,
                    mb(m.bytes),
                    m.mb_per_s / theirs,
                    cell(m.load_s, 2),
                    cell(m.rss_kib.map(kib_mib), 1),
                    cell(m.cpu_s, 1),
                    times(runs, |r| mb(r.bytes) / r.seconds),
                );
            }
        }
        let _ = writeln!(
            md,
            "\n**Checks**: segment `{}` is byte-identical in barman's `streaming/`, in \
             `pg_receivewal`'s directory and in the server's `pg_wal`; every postgres-method \
             backup ended DONE ({}).",
            r.checked_segment,
            r.backups_done.join(", ")
        );
        let _ = writeln!(
            md,
            "\nTargets (a MISS is a finding, not a failure of the run):\n"
        );
        for (name, ratio, threshold, pass, margin) in self.verdicts() {
            let _ = writeln!(
                md,
                "- **{}** {name}: {ratio:.2}× ({margin}) (target {threshold})",
                verdict(Some(pass))
            );
        }
        let _ = writeln!(
            md,
            "\nCommands: `barman -c CONF -f json backup --reuse-backup off -j 1 --wait \
             --wait-timeout 120 {SERVER}`; `{}`; `{}`; `{}`. The ratios and targets are against \
             `pg_receivewal` in its default mode (done when its last segment is complete, fsynced \
             and renamed, in its directory); `--synchronous` (fsync after every message) is \
             shown for the record.\n\n\
             Columns: *median s* of a backup: spawn to exit; *MB*: the bytes of the result \
             (`bytes_total` for barman, the regular files for `pg_basebackup`); of a streaming \
             run: *live* from the start of the load to the streamer's `flush_lsn` reaching the \
             end, *backlog* from the streamer's spawn to the same; *WAL MB*: the LSN distance \
             covered (MB = 10⁶ bytes); *load s*: the load alone; *peak RSS*: GNU time's maximum \
             resident set size (backups) or the streamer's `VmHWM` (highest over the runs); \
             *CPU s*: user + system seconds of the measured process.",
            Streamer::Barman.display(),
            Streamer::PgReceivewal.display(),
            Streamer::PgReceivewalSync.display(),
        );
        md
    }

    /// The JSON report (every run included).
    fn json(&self) -> Value {
        let runs_json = |runs: &[Run]| -> Vec<Value> {
            runs.iter()
                .map(|r| {
                    json!({
                        "seconds": r.seconds,
                        "bytes": r.bytes,
                        "mb_per_s": mb(r.bytes) / r.seconds,
                        "peak_rss_kib": r.rss_kib,
                        "cpu_s": r.cpu_s,
                        "load_s": r.pgbench_s,
                    })
                })
                .collect()
        };
        let summary = |runs: &[Run]| {
            let m = Median::of(runs);
            json!({
                "median_s": m.seconds,
                "median_mb_per_s": m.mb_per_s,
                "peak_rss_mib": m.rss_kib.map(kib_mib),
                "cpu_s": m.cpu_s,
                "load_s": m.load_s,
            })
        };
        let streaming: Vec<Value> = self
            .results
            .streaming
            .iter()
            .map(|((s, m), runs)| {
                json!({
                    "streamer": s.id(),
                    "command": s.display(),
                    "mode": m.id(),
                    "summary": summary(runs),
                    "runs": runs_json(runs),
                })
            })
            .collect();
        self.conditions.document("streaming", json!({
            "parameters": {
                "pgbench_scale": self.options.scale,
                "runs": self.options.runs,
                "wal_mb_per_load": self.options.wal_mb,
                "pgdata_bytes": self.results.pgdata_bytes,
                "run_as": barman_testkit::SERVER_OS_USER,
            },
            "backup": {
                "pg_basebackup": {
                    "summary": summary(&self.results.basebackup),
                    "runs": runs_json(&self.results.basebackup),
                },
                "barman_postgres_method": {
                    "summary": summary(&self.results.barman_backup),
                    "runs": runs_json(&self.results.barman_backup),
                    "backups_done": self.results.backups_done,
                },
            },
            "streaming": streaming,
            "checked_segment": self.results.checked_segment,
            "targets": self.verdicts().into_iter().map(|(name, ratio, threshold, pass, margin)| json!({
                "target": name,
                "value": ratio,
                "threshold": threshold,
                "margin": margin,
                "verdict": verdict(Some(pass)),
            })).collect::<Vec<_>>(),
        }))
    }
}
