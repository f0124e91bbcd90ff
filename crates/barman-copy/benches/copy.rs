//! Micro-benchmarks of the copy engine: hashing ([`Hasher`] with and without
//! page fingerprints) and [`execute`] over a synthetic PGDATA read through
//! [`LocalFactory`]: a full copy, and a page delta against the previous copy
//! after 1 % of the pages changed (`--reuse-backup link`).
//!
//! `cargo bench -p barman-copy --bench copy -- --quick`; for a profile,
//! `cargo bench -p barman-copy --bench copy -- --profile-time 10 execute/full`
//! under `perf record -g`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use barman_copy::hash::{Hasher, PAGE_SIZE};
use barman_copy::{
    CopyPlan, Exclusions, ExecOptions, LocalFactory, Manifest, Mtime, NoProgress, PlanOptions,
    Reuse, Roots, execute, listing,
};

/// Relation files of the synthetic PGDATA (bytes): one large table, an
/// index, a few small relations.
const FILES: [(&str, usize); 5] = [
    ("base/5/16384", 48 << 20),
    ("base/5/16385", 8 << 20),
    ("base/5/16386", 256 << 10),
    ("base/5/16386_fsm", 24 << 10),
    ("global/1262", 8 << 10),
];

/// Deterministic, incompressible-looking bytes.
fn fill(buf: &mut [u8], mut seed: u64) {
    for word in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let bytes = seed.to_le_bytes();
        word.copy_from_slice(&bytes[..word.len()]);
    }
}

fn total_size() -> u64 {
    FILES.iter().map(|&(_, size)| size as u64).sum()
}

/// Writes the synthetic PGDATA under `root`.
fn make_pgdata(root: &Path) {
    for (i, &(path, size)) in FILES.iter().enumerate() {
        let path = root.join(path);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        let mut data = vec![0u8; size];
        fill(&mut data, 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        fs::write(&path, &data).expect("write");
    }
}

/// Rewrites one page in a hundred of every relation file (fresh mtime).
fn touch_pages(root: &Path, round: u64) {
    use std::os::unix::fs::FileExt;
    for &(path, size) in &FILES {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(root.join(path))
            .expect("open");
        let mut page = vec![0u8; PAGE_SIZE];
        for n in (0..size / PAGE_SIZE).step_by(100) {
            fill(&mut page, round.wrapping_mul(7919) ^ n as u64 ^ 1);
            file.write_all_at(&page, (n * PAGE_SIZE) as u64)
                .expect("write page");
        }
    }
}

fn roots(pgdata: &Path) -> Roots {
    Roots::from([("data".to_owned(), pgdata.to_path_buf())])
}

fn plan(pgdata: &Path, previous: Option<&Manifest>, reuse: Reuse) -> CopyPlan {
    let listing = listing::list_tree(pgdata, "data", &Exclusions::none()).expect("list the tree");
    let options = PlanOptions {
        reuse,
        horizon: Some(Mtime {
            secs: i64::MIN,
            nanos: 0,
        }),
        ..PlanOptions::default()
    };
    CopyPlan::compute(previous, &listing, &options)
}

fn hashing(c: &mut Criterion) {
    let mut data = vec![0u8; 4 << 20];
    fill(&mut data, 42);
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, pages) in [("whole", false), ("whole+pages", true)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut hasher = Hasher::new(pages);
                for chunk in black_box(&data).chunks(256 << 10) {
                    hasher.update(chunk);
                }
                hasher.finish()
            });
        });
    }
    group.finish();
}

fn executing(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pgdata = dir.path().join("pgdata");
    make_pgdata(&pgdata);
    let factory = LocalFactory::new(roots(&pgdata));
    let cancel = AtomicBool::new(false);
    let full_plan = plan(&pgdata, None, Reuse::Off);

    let mut group = c.benchmark_group("execute");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(total_size()));
    for jobs in [1, 2] {
        group.bench_function(format!("full -j{jobs}"), |b| {
            let dest = dir.path().join("full");
            b.iter(|| {
                let _ = fs::remove_dir_all(&dest);
                let options = ExecOptions {
                    jobs,
                    ..ExecOptions::default()
                };
                execute(&full_plan, &factory, &dest, &options, &NoProgress, &cancel)
                    .expect("full copy")
            });
        });
    }

    // The previous backup: a full copy with its manifest.
    let base = dir.path().join("base");
    let report = execute(
        &full_plan,
        &factory,
        &base,
        &ExecOptions::default(),
        &NoProgress,
        &cancel,
    )
    .expect("base copy");
    let previous = Arc::new(report.manifest);
    let mut round = 0;
    group.bench_function("page delta 1% -j1", |b| {
        let dest = dir.path().join("delta");
        b.iter(|| {
            round += 1;
            touch_pages(&pgdata, round);
            let delta_plan = plan(&pgdata, Some(&previous), Reuse::Link);
            let _ = fs::remove_dir_all(&dest);
            let options = ExecOptions {
                jobs: 1,
                previous_dir: Some(base.clone()),
                previous: Some(Arc::clone(&previous)),
                reuse: Reuse::Link,
                ..ExecOptions::default()
            };
            let report = execute(&delta_plan, &factory, &dest, &options, &NoProgress, &cancel)
                .expect("delta copy");
            assert_eq!(report.files_delta, FILES.len() as u64);
            report
        });
    });
    group.finish();
}

criterion_group!(benches, hashing, executing);
criterion_main!(benches);
