//! Micro-benchmarks for retention: `evaluate` over a 10,000-backup catalog
//! under both policy kinds, and `WalCleanup::removable` over 100,000 names.
//!
//! `cargo bench -p barman-retention --bench retention -- --quick`

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use barman_retention::{
    BackupStatus, BackupSummary, DeleteKind, KeepTarget, RetentionPolicy, evaluate,
    wal_cleanup_for_delete,
};

const NOW: i64 = 1_800_000_000;
const BACKUPS: usize = 10_000;
const NAMES: usize = 100_000;

/// One backup an hour, newest ending now; every 10th is FAILED, every 100th
/// kept standalone, every 4th an incremental of the one before.
fn catalog() -> Vec<BackupSummary> {
    (0..BACKUPS)
        .map(|i| {
            let status = if i % 10 == 9 {
                BackupStatus::Failed
            } else {
                BackupStatus::Done
            };
            let ago = i64::try_from(BACKUPS - i).expect("small") * 3600;
            let mut b = BackupSummary::new(format!("b{i:06}"), status)
                .end_time(NOW - ago)
                .wals(segment(1, i * 8), segment(1, i * 8 + 2));
            if i % 100 == 50 {
                b = b.keep(KeepTarget::Standalone);
            }
            if i % 4 == 3 {
                b = b.parent(format!("b{:06}", i - 1));
            }
            b
        })
        .collect()
}

fn segment(tli: u32, n: usize) -> String {
    format!("{tli:08X}{:08X}{:08X}", n / 256, n % 256)
}

fn evaluate_bench(c: &mut Criterion) {
    let backups = catalog();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(BACKUPS as u64));
    for policy in ["REDUNDANCY 50", "RECOVERY WINDOW OF 4 WEEKS"] {
        let policy: RetentionPolicy = policy.parse().expect("valid policy");
        group.bench_function(format!("{policy} over {BACKUPS} backups"), |b| {
            b.iter(|| evaluate(black_box(&policy), black_box(&backups), NOW, 3));
        });
    }
    group.finish();
}

fn removable_bench(c: &mut Criterion) {
    let backups = catalog();
    // Deleting an obsolete backup halfway, past standalone-kept ones.
    let cleanup = wal_cleanup_for_delete(&backups, "b005000", DeleteKind::Retention, true);
    let cleanup = cleanup.unwrap_or_default();
    let mut names: Vec<String> = (0..NAMES).map(|n| segment(1, n)).collect();
    for n in (0..NAMES).step_by(1000) {
        names[n] = format!("{}.00000028.backup", segment(1, n));
    }
    names.push("00000002.history".to_owned());
    let mut group = c.benchmark_group("WalCleanup");
    group.throughput(Throughput::Elements(names.len() as u64));
    group.bench_function(format!("removable over {NAMES} names"), |b| {
        b.iter(|| {
            black_box(&cleanup)
                .removable(names.iter().map(String::as_str))
                .len()
        });
    });
    group.finish();
}

criterion_group!(benches, evaluate_bench, removable_bench);
criterion_main!(benches);
