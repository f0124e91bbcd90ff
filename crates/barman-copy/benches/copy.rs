//! Micro-benchmarks of the copy engine:
//!
//! - `hash`: blake3 per file ([`Hasher`] without pages), per 8 KiB page
//!   ([`PageHash::of`] on every page) and both at once ([`Hasher`] with
//!   pages, as relation files are hashed: inline on 4 MiB, on the helper
//!   thread past [`BACKGROUND_PAGES_AFTER`] on 16 MiB);
//! - `plan`: [`CopyPlan::compute`] over a synthetic 10,000-file PGDATA
//!   listing, with no previous backup (full) and against the previous
//!   backup's manifest after 1 % of the files changed (size or mtime),
//!   `--reuse-backup link`;
//! - `rsync`: the fast_rsync delta of a 64 MiB relation file with 1 % of its
//!   8 KiB pages rewritten, with barman-copy's signature options: signature
//!   of the old file, diff of the new file against the indexed signature,
//!   apply (old + delta → new), and building the signature's index;
//! - `execute`: [`execute`] over a synthetic PGDATA read through
//!   [`LocalFactory`]: a full copy, and a page delta against the previous
//!   copy after 1 % of the pages changed (`--reuse-backup link`).
//!
//! `cargo bench -p barman-copy --bench copy -- --quick`; one group with
//! `cargo bench -p barman-copy --bench copy -- rsync/`; for a profile,
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

use barman_copy::hash::{
    BACKGROUND_PAGES_AFTER, FileHash, Hasher, PAGE_SIZE, PageHash, PageHashes, is_page_structured,
};
use barman_copy::{
    CopyPlan, Entry, EntryKind, Exclusions, ExecOptions, LocalFactory, Manifest, ManifestEntry,
    Mtime, NoProgress, PlanOptions, RelPath, Reuse, Roots, execute, listing,
};
use fast_rsync::{Signature, SignatureOptions};

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

/// Bytes hashed by the `hash` group's largest case: past
/// [`BACKGROUND_PAGES_AFTER`], so [`Hasher`] moves its page fingerprints to
/// its helper thread.
const HASH_LARGE: usize = 16 << 20;

/// Feeds `data` to a [`Hasher`] in 256 KiB chunks, as the executor's reads do.
fn hash_file(data: &[u8], pages: bool) -> (FileHash, Option<PageHashes>) {
    let mut hasher = Hasher::new(pages);
    for chunk in data.chunks(256 << 10) {
        hasher.update(chunk);
    }
    hasher.finish()
}

fn hashing(c: &mut Criterion) {
    let mut data = vec![0u8; HASH_LARGE];
    fill(&mut data, 42);
    let small = &data[..usize::try_from(BACKGROUND_PAGES_AFTER).expect("fits")];
    let mut group = c.benchmark_group("hash");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("per-file 16MiB", |b| {
        b.iter(|| hash_file(black_box(&data), false));
    });
    group.bench_function("per-page 16MiB", |b| {
        b.iter(|| {
            PageHashes(
                black_box(&data)
                    .chunks(PAGE_SIZE)
                    .map(PageHash::of)
                    .collect(),
            )
        });
    });
    group.bench_function("per-file+pages 16MiB", |b| {
        b.iter(|| hash_file(black_box(&data), true));
    });
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("per-file+pages 4MiB", |b| {
        b.iter(|| hash_file(black_box(small), true));
    });
    group.finish();
}

/// Files of the listing the `plan` group plans.
const PLAN_FILES: usize = 10_000;

/// When the previous backup started (seconds since the epoch): the plan's
/// horizon. Unchanged files are older, changed ones newer.
const PREVIOUS_START: i64 = 1_750_000_000;

/// A listing of a PGDATA of [`PLAN_FILES`] files, sorted by path as
/// [`listing::list_tree`] returns it: four databases of relation files
/// (main forks of 1 to 256 pages, every third relation with its `_fsm` and
/// `_vm` forks), a few files in `global/` and at the top, all modified
/// before [`PREVIOUS_START`].
fn plan_listing() -> Vec<Entry> {
    const DBS: [u32; 4] = [1, 4, 5, 16_384];
    let page = PAGE_SIZE as u64;
    let mut dirs: Vec<String> = vec![
        "data".into(),
        "data/base".into(),
        "data/global".into(),
        "data/pg_wal".into(),
        "data/pg_xact".into(),
    ];
    let mut files: Vec<(String, u64)> = vec![
        ("data/PG_VERSION".into(), 3),
        ("data/postgresql.auto.conf".into(), 88),
        ("data/pg_xact/0000".into(), 256 << 10),
        ("data/global/1262".into(), page),
        ("data/global/pg_filenode.map".into(), 524),
        ("data/global/pg_control".into(), page),
    ];
    for db in DBS {
        dirs.push(format!("data/base/{db}"));
        files.push((format!("data/base/{db}/PG_VERSION"), 3));
        files.push((format!("data/base/{db}/pg_filenode.map"), 524));
    }
    let mut oid = 16_384usize;
    while files.len() < PLAN_FILES {
        let base = format!("data/base/{}/{oid}", DBS[oid % DBS.len()]);
        let pages = 1 + (oid.wrapping_mul(2_654_435_761) >> 7) % 256;
        files.push((base.clone(), pages as u64 * page));
        for (fork, pages) in [("_fsm", 3), ("_vm", 1)] {
            if oid.is_multiple_of(3) && files.len() < PLAN_FILES {
                files.push((format!("{base}{fork}"), pages * page));
            }
        }
        oid += 1;
    }
    let entry = |path: &str, kind: EntryKind, size, secs| Entry {
        path: RelPath::new(path).expect("a valid path"),
        mode: if kind == EntryKind::Dir { 0o700 } else { 0o600 },
        kind,
        size,
        mtime: Mtime { secs, nanos: 0 },
    };
    let old = PREVIOUS_START - 3_600;
    let mut entries: Vec<Entry> = dirs
        .iter()
        .map(|dir| entry(dir, EntryKind::Dir, 0, old))
        .chain(
            files
                .iter()
                .zip(0..)
                .map(|((path, size), n)| entry(path, EntryKind::File, *size, old - n)),
        )
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

/// The previous backup's manifest of `listing`: a blake3 per file, page
/// fingerprints for relation files.
fn plan_manifest(listing: &[Entry]) -> Manifest {
    let mut manifest = Manifest::default();
    for entry in listing {
        let mut item = ManifestEntry::from(entry);
        if entry.is_file() {
            item.blake3 = Some(FileHash(
                *blake3::hash(entry.path.as_str().as_bytes()).as_bytes(),
            ));
            if is_page_structured(entry.path.in_tree(), entry.size) {
                let pages = usize::try_from(entry.size).expect("fits") / PAGE_SIZE;
                item.pages = Some(PageHashes(vec![PageHash([0x5a; 16]); pages]));
            }
        }
        manifest.insert(item);
    }
    manifest
}

fn planning(c: &mut Criterion) {
    let previous_listing = plan_listing();
    let previous = plan_manifest(&previous_listing);
    // One file in a hundred modified since the previous backup started,
    // every other one grown by a page.
    let mut listing = previous_listing;
    for (n, entry) in listing.iter_mut().filter(|e| e.is_file()).enumerate() {
        if n.is_multiple_of(100) {
            entry.mtime.secs = PREVIOUS_START + 60;
            if n.is_multiple_of(200) {
                entry.size += PAGE_SIZE as u64;
            }
        }
    }
    let options = PlanOptions {
        reuse: Reuse::Link,
        horizon: Some(Mtime {
            secs: PREVIOUS_START,
            nanos: 0,
        }),
        ..PlanOptions::default()
    };
    let full = CopyPlan::compute(None, &listing, &options).summary();
    assert_eq!(full.fetch.files, PLAN_FILES as u64, "{full}");
    let incremental = CopyPlan::compute(Some(&previous), &listing, &options).summary();
    let changed = PLAN_FILES as u64 / 100;
    assert_eq!(
        incremental.files().files,
        PLAN_FILES as u64,
        "{incremental}"
    );
    assert_eq!(
        incremental.link.files,
        PLAN_FILES as u64 - changed,
        "{incremental}"
    );
    assert_eq!(
        incremental.delta_pages.files + incremental.delta_rsync.files + incremental.fetch.files,
        changed,
        "{incremental}"
    );

    let mut group = c.benchmark_group("plan");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(PLAN_FILES as u64));
    group.bench_function("full 10k files", |b| {
        b.iter(|| CopyPlan::compute(None, black_box(&listing), &options));
    });
    group.bench_function("1% changed link 10k files", |b| {
        b.iter(|| CopyPlan::compute(Some(&previous), black_box(&listing), &options));
    });
    group.finish();
}

/// Size of the relation file of the `rsync` group.
const RSYNC_FILE: usize = 64 << 20;

/// barman-copy's rsync signature options (`RSYNC_BLOCK_SIZE` and
/// `RSYNC_HASH_SIZE` in src/executor.rs, private there).
const RSYNC_OPTIONS: SignatureOptions = SignatureOptions {
    block_size: 4096,
    crypto_hash_size: 8,
};

fn rsync(c: &mut Criterion) {
    let mut old = vec![0u8; RSYNC_FILE];
    fill(&mut old, 7);
    // One page in a hundred rewritten.
    let mut new = old.clone();
    for (n, page) in new.chunks_mut(PAGE_SIZE).enumerate().step_by(100) {
        fill(page, 0xC0FF_EE00 ^ n as u64);
    }
    let signature = Signature::calculate(&old, RSYNC_OPTIONS);
    let index = signature.index();
    let mut delta = Vec::new();
    fast_rsync::diff(&index, &new, &mut delta).expect("diff");
    let mut out = Vec::with_capacity(RSYNC_FILE);
    fast_rsync::apply(&old, &delta, &mut out).expect("apply");
    assert!(out == new, "apply(old, diff(old, new)) != new");

    let mut group = c.benchmark_group("rsync");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Bytes(RSYNC_FILE as u64));
    group.bench_function("signature 64MiB", |b| {
        b.iter(|| Signature::calculate(black_box(&old), RSYNC_OPTIONS));
    });
    group.bench_function("diff 1% pages 64MiB", |b| {
        let mut buf = Vec::with_capacity(delta.len());
        b.iter(|| {
            buf.clear();
            fast_rsync::diff(&index, black_box(&new), &mut buf).expect("diff");
            buf.len()
        });
    });
    group.bench_function("apply 1% pages 64MiB", |b| {
        b.iter(|| {
            out.clear();
            fast_rsync::apply(black_box(&old), black_box(&delta), &mut out).expect("apply");
            out.len()
        });
    });
    // Built once per file (each `rsync_delta` request); in signature blocks.
    group.throughput(Throughput::Elements(
        RSYNC_FILE.div_ceil(RSYNC_OPTIONS.block_size as usize) as u64,
    ));
    group.bench_function("index 64MiB", |b| {
        b.iter(|| black_box(&signature).index());
    });
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

criterion_group!(benches, hashing, planning, rsync, executing);
criterion_main!(benches);
