//! Compression throughput on a real 16 MiB WAL segment, ours beside the
//! command-line tools.
//!
//! `cargo bench -p barman-wal --bench compression`
//!
//! The segment comes from `BARMAN_BENCH_WAL`, else `target/bench-data/wal-segment`,
//! else a PostgreSQL 15 cluster started for the purpose (see `wal_source.rs`).
//! Criterion measures our encoders and decoders; afterwards a table on
//! stderr lists, per codec and level, our MiB/s (best of 3, in process) and
//! the CLI's MiB/s (best of 3, `tool -c < file > /dev/null`, process start
//! included) and the compression ratio.

#![allow(clippy::cast_precision_loss)]

#[path = "compression/wal_source.rs"]
mod wal_source;

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barman_wal::{Compression, CompressionLevel, compress, decompress};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

const MIB: f64 = 1024.0 * 1024.0;

/// One benchmarked configuration: codec, Barman level, the CLI flag that
/// corresponds to it (None: no CLI).
struct Case {
    codec: Compression,
    level: CompressionLevel,
    cli_level: Option<String>,
}

fn cases() -> Vec<Case> {
    use CompressionLevel::{High, Low, Medium};
    let mut out = Vec::new();
    for codec in Compression::BUILTIN {
        let levels: &[CompressionLevel] = match codec {
            Compression::Bzip2 | Compression::Xz => &[Low, Medium],
            Compression::Snappy => &[Medium],
            _ => &[Low, Medium, High],
        };
        for &level in levels {
            let cli_level = match codec {
                Compression::Snappy => None,
                // The lz4 CLI has no level 0 (Barman's low): -1 is the same fast mode.
                _ => codec.level_for(level).map(|n| format!("-{}", n.max(1))),
            };
            out.push(Case {
                codec,
                level,
                cli_level,
            });
        }
    }
    out
}

fn ours_compress(case: &Case, wal: &[u8]) -> Vec<u8> {
    let enc = case
        .codec
        .writer(Vec::with_capacity(wal.len()), case.level)
        .unwrap();
    compress(&mut &wal[..], enc).unwrap().1
}

fn ours_decompress(codec: Compression, stored: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    decompress(codec.reader(stored).unwrap(), &mut out).unwrap();
    out
}

fn criterion_benches(c: &mut Criterion, wal: &[u8], cases: &[Case]) {
    let mut group = c.benchmark_group("compress");
    group.throughput(Throughput::Bytes(wal.len() as u64));
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for case in cases {
        let id = BenchmarkId::new(case.codec.name(), case.level);
        group.bench_with_input(id, wal, |b, wal| {
            b.iter(|| ours_compress(case, black_box(wal)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decompress");
    group.throughput(Throughput::Bytes(wal.len() as u64));
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for case in cases {
        let stored = ours_compress(case, wal);
        let id = BenchmarkId::new(case.codec.name(), case.level);
        group.bench_with_input(id, &stored, |b, stored| {
            b.iter(|| ours_decompress(case.codec, black_box(stored), wal.len()));
        });
    }
    group.finish();
}

/// Best of 3 wall-clock runs, in MiB/s of uncompressed data.
fn best_mib_s(len: usize, mut run: impl FnMut()) -> f64 {
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .unwrap();
    len as f64 / MIB / best.as_secs_f64()
}

fn cli_tool(codec: Compression) -> (&'static str, &'static str) {
    match codec {
        Compression::Gzip => ("gzip", "gzip"),
        Compression::Bzip2 => ("bzip2", "bzip2"),
        Compression::Xz => ("xz", "xz-utils"),
        Compression::Zstd => ("zstd", "zstd"),
        Compression::Lz4 => ("lz4", "lz4"),
        other => panic!("no CLI for {other}"),
    }
}

/// `tool args < input > output`, asserting success.
fn run_cli(tool: &str, package: &str, args: &[&str], input: &Path, output: Stdio) {
    let status = Command::new(tool)
        .args(args)
        .stdin(File::open(input).unwrap())
        .stdout(output)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{tool}` ({e}): apt-get install -y {package}"));
    assert!(status.success(), "{tool} {args:?}: {status}");
}

fn table(wal: &[u8], cases: &[Case]) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wal");
    std::fs::write(&input, wal).unwrap();
    let mut input_back = Vec::new();
    File::open(&input)
        .unwrap()
        .read_to_end(&mut input_back)
        .unwrap();
    assert!(input_back == wal);

    eprintln!();
    eprintln!(
        "| codec | level | ours compress MiB/s | ours decompress MiB/s | ratio | CLI | CLI compress MiB/s | CLI decompress MiB/s | CLI ratio |"
    );
    eprintln!("|---|---|---:|---:|---:|---|---:|---:|---:|");
    for case in cases {
        let stored = ours_compress(case, wal);
        let c_ours = best_mib_s(wal.len(), || {
            black_box(ours_compress(case, wal));
        });
        let d_ours = best_mib_s(wal.len(), || {
            black_box(ours_decompress(case.codec, &stored, wal.len()));
        });
        let ratio = wal.len() as f64 / stored.len() as f64;
        let (cli, c_cli, d_cli, r_cli) = match &case.cli_level {
            None => (
                "—".to_owned(),
                "—".to_owned(),
                "—".to_owned(),
                "—".to_owned(),
            ),
            Some(flag) => {
                let (tool, package) = cli_tool(case.codec);
                let packed = dir.path().join(format!("wal.{tool}{flag}"));
                run_cli(
                    tool,
                    package,
                    &[flag, "-c"],
                    &input,
                    File::create(&packed).unwrap().into(),
                );
                let c = best_mib_s(wal.len(), || {
                    run_cli(tool, package, &[flag, "-c"], &input, Stdio::null());
                });
                let d = best_mib_s(wal.len(), || {
                    run_cli(tool, package, &["-dc"], &packed, Stdio::null());
                });
                let r = wal.len() as f64 / std::fs::metadata(&packed).unwrap().len() as f64;
                (
                    format!("`{tool} {flag}`"),
                    format!("{c:.0}"),
                    format!("{d:.0}"),
                    format!("{r:.1}"),
                )
            }
        };
        eprintln!(
            "| {} | {} | {c_ours:.0} | {d_ours:.0} | {ratio:.1} | {cli} | {c_cli} | {d_cli} | {r_cli} |",
            case.codec, case.level
        );
    }
    eprintln!();
}

fn main() {
    let (wal, source) = wal_source::load();
    eprintln!("WAL segment: {} bytes, {source}", wal.len());
    let cases = cases();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &wal, &cases);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        table(&wal, &cases);
    }
}
