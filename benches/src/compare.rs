//! `compare`: every end-to-end scenario in one command, at one scale, with
//! the peers when asked — the table docs/performance.md records.
//!
//! In order: `backup` (full backups local and over ssh, -j 1/2,
//! uncompressed and zstd, the second backup with `reuse_backup = link`
//! after `pgbench -t 1000 -c 2`), `recover` (local and remote, every
//! restore started with PostgreSQL and its rows counted), `wal-archive`
//! (one `archive_command` call's latency and the throughput of a run of
//! segments, `--parallel 4` included) and `streaming` (receive-wal and the
//! postgres method beside pg_receivewal / pg_basebackup). Each scenario
//! builds its own `pgbench -i -s SCALE` cluster and writes its own
//! `<scenario>.{md,json}`; `compare.{md,json}` gathers them with the wall
//! time of each part. With `--with-peers`, pgBackRest and Barman (Python)
//! run beside barman-rs in `backup`, `recover` and `wal-archive`
//! (installed first by `benches/scripts/install-peers.sh`).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::{backup, recover, streaming, wal_archive};

/// Options of the `compare` scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// pgbench scale of the clusters (100 ≈ 1.5 GB; 10 for a run of a few
    /// minutes).
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// Runs of each operation (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs of each `wal-archive` variant [default: --runs].
    #[arg(long)]
    wal_runs: Option<usize>,
    /// Segments per `wal-archive` run [default: 2 × scale, between 10 and
    /// 200].
    #[arg(long)]
    segments: Option<usize>,
    /// MB of WAL per `streaming` run [default: 256 at scale ≥ 100, else
    /// 2.5 × scale, at least 16].
    #[arg(long)]
    wal_mb: Option<u64>,
    /// Also measure pgBackRest and Barman (Python) at equal settings
    /// (installs them: benches/scripts/install-peers.sh).
    #[arg(long)]
    with_peers: bool,
    /// Only these scenarios (comma-separated: backup, recover,
    /// wal-archive, streaming). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// Directory for the reports [default: <cargo target dir>/bench-report].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// The scenarios, in run order.
const SCENARIOS: [&str; 4] = ["backup", "recover", "wal-archive", "streaming"];

/// The segments of a `wal-archive` run at `scale`.
fn default_segments(scale: u32) -> usize {
    usize::try_from(scale.saturating_mul(2))
        .unwrap_or(200)
        .clamp(10, 200)
}

/// The MB of WAL of a `streaming` run at `scale`.
fn default_wal_mb(scale: u32) -> u64 {
    if scale >= 100 {
        256
    } else {
        (u64::from(scale) * 5 / 2).max(16)
    }
}

/// Runs the scenarios and writes `compare.{md,json}`.
pub fn run(options: &Options) -> Result<()> {
    ensure!(options.runs > 0, "--runs must be at least 1");
    for name in &options.only {
        ensure!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario `{name}` (known: {})",
            SCENARIOS.join(", ")
        );
    }
    let out = options
        .out
        .clone()
        .unwrap_or_else(crate::report::default_dir);
    let chosen: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| options.only.is_empty() || options.only.iter().any(|o| o == s))
        .collect();
    let peers = if options.with_peers {
        Some(crate::peers::Peers::install()?)
    } else {
        None
    };
    let started = Instant::now();
    let mut parts = Vec::new();
    for name in chosen {
        eprintln!("== compare: {name}");
        let t = Instant::now();
        let result = match name {
            "backup" => backup::run(&backup::Options {
                scale: options.scale,
                runs: options.runs,
                operations: Vec::new(),
                drop_caches: false,
                with_peers: options.with_peers,
                out: Some(out.clone()),
            }),
            "recover" => recover::run(&recover::Options {
                scale: options.scale,
                runs: options.runs,
                drop_caches: false,
                with_peers: options.with_peers,
                out: Some(out.clone()),
            }),
            "wal-archive" => wal_archive::run(&wal_archive::Options {
                segments: options
                    .segments
                    .unwrap_or_else(|| default_segments(options.scale)),
                runs: options.wal_runs.unwrap_or(options.runs),
                scale: 20,
                variants: Vec::new(),
                with_peers: options.with_peers,
                out: Some(out.clone()),
            }),
            _ => streaming::run(&streaming::Options {
                scale: options.scale,
                runs: options.runs,
                wal_mb: options
                    .wal_mb
                    .unwrap_or_else(|| default_wal_mb(options.scale)),
                out: Some(out.clone()),
            }),
        };
        result.with_context(|| format!("scenario {name}"))?;
        parts.push((name, t.elapsed().as_secs_f64()));
    }
    let total_s = started.elapsed().as_secs_f64();

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# barman-rs end-to-end comparison (`barman-benches compare --scale {}{}`)\n",
        options.scale,
        if options.with_peers {
            " --with-peers"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "{} run(s) per operation, medians; every scenario on its own `pgbench -i -s {}` cluster. \
         Wall time: {}; {:.0} s in all.\n",
        options.runs,
        options.scale,
        parts
            .iter()
            .map(|(n, s)| format!("{n} {s:.0} s"))
            .collect::<Vec<_>>()
            .join(", "),
        total_s
    );
    if let Some(p) = &peers {
        let _ = writeln!(md, "{}\n", p.to_markdown());
    }
    let mut documents = serde_json::Map::new();
    for (name, seconds) in &parts {
        let md_path = out.join(format!("{name}.md"));
        let json_path = out.join(format!("{name}.json"));
        let text =
            fs::read_to_string(&md_path).with_context(|| format!("read {}", md_path.display()))?;
        let doc: Value = serde_json::from_str(
            &fs::read_to_string(&json_path)
                .with_context(|| format!("read {}", json_path.display()))?,
        )
        .with_context(|| format!("parse {}", json_path.display()))?;
        // Each scenario's report starts with its own level-2 heading.
        md.push_str(text.trim_end());
        md.push_str("\n\n");
        documents.insert(
            (*name).to_owned(),
            json!({ "wall_s": seconds, "report": doc }),
        );
    }
    let json = json!({
        "scenario": "compare",
        "pgbench_scale": options.scale,
        "runs": options.runs,
        "with_peers": options.with_peers,
        "peers": peers.as_ref().map(crate::peers::Peers::to_json),
        "total_s": total_s,
        "scenarios": documents,
    });
    crate::report::write(Some(&out), "compare", &md, &json)?;
    eprintln!(
        "compare: {total_s:.0} s; report written to {}/compare.{{md,json}}",
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_scale() {
        assert_eq!(default_segments(100), 200);
        assert_eq!(default_segments(10), 20);
        assert_eq!(default_segments(1), 10);
        assert_eq!(default_segments(1000), 200);
        assert_eq!(default_wal_mb(100), 256);
        assert_eq!(default_wal_mb(10), 25);
        assert_eq!(default_wal_mb(2), 16);
    }
}
