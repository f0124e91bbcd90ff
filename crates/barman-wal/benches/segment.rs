//! Micro-benchmarks for WAL naming: parsing and printing segment names,
//! stepping through segments, LSN conversion and archive file-name parsing.
//!
//! `cargo bench -p barman-wal --bench segment -- --quick`

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use barman_wal::{Lsn, SegmentName, TimelineId, WalFileName, WalSegmentSize};

fn segment_names(c: &mut Criterion) {
    let size = WalSegmentSize::DEFAULT;
    let name: SegmentName = "0000000100000A1F000000C3".parse().expect("valid name");

    c.bench_function("SegmentName::from_str", |b| {
        b.iter(|| black_box("0000000100000a1f000000C3").parse::<SegmentName>());
    });
    c.bench_function("SegmentName::to_string", |b| {
        b.iter(|| black_box(name).to_string());
    });

    let mut group = c.benchmark_group("SegmentName::next");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000 names", |b| {
        b.iter(|| {
            let mut n = black_box(name);
            for _ in 0..1000 {
                n = n.next(size);
            }
            n
        });
    });
    group.finish();

    let lsn = Lsn(0x16_B374_D848);
    c.bench_function("SegmentName::from_lsn", |b| {
        b.iter(|| SegmentName::from_lsn(TimelineId::ONE, black_box(lsn), black_box(size)));
    });
    c.bench_function("Lsn::from_str", |b| {
        b.iter(|| black_box("16/B374D848").parse::<Lsn>());
    });
}

fn wal_file_names(c: &mut Criterion) {
    let names = [
        "000000010000000000000003",
        "000000010000000000000003.partial",
        "000000010000000000000003.00000028.backup",
        "00000002.history",
    ];
    let mut group = c.benchmark_group("WalFileName::from_str");
    group.throughput(Throughput::Elements(names.len() as u64));
    group.bench_function("4 kinds", |b| {
        b.iter(|| {
            for n in black_box(&names) {
                black_box(n.parse::<WalFileName>().expect("valid name"));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, segment_names, wal_file_names);
criterion_main!(benches);
