//! `CopyPlan::compute`: one test per rule, the order, the summary and `Display`.

use barman_copy::hash::{PageHash, PageHashes};
use barman_copy::plan::{DEFAULT_DELTA_MIN_SIZE, FileCount, PG_CONTROL, PlanSummary};
use barman_copy::{
    Action, CopyPlan, Entry, EntryKind, Manifest, ManifestEntry, Mtime, PlanOptions, RelPath, Reuse,
};

const T: i64 = 1_700_000_000;

fn at(secs: i64) -> Mtime {
    Mtime { secs, nanos: 0 }
}

fn file(path: &str, size: u64, mtime: Mtime) -> Entry {
    Entry {
        path: RelPath::new(path).unwrap(),
        kind: EntryKind::File,
        size,
        mtime,
        mode: 0o600,
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        path: RelPath::new(path).unwrap(),
        kind: EntryKind::Dir,
        size: 0,
        mtime: at(T),
        mode: 0o700,
    }
}

fn link(path: &str, target: &str) -> Entry {
    Entry {
        path: RelPath::new(path).unwrap(),
        kind: EntryKind::Symlink {
            target: target.to_owned(),
        },
        size: 0,
        mtime: at(T),
        mode: 0o777,
    }
}

fn previous_of(entry: &Entry) -> ManifestEntry {
    ManifestEntry::from(entry)
}

fn manifest(entries: impl IntoIterator<Item = ManifestEntry>) -> Manifest {
    let mut m = Manifest::default();
    for e in entries {
        m.insert(e);
    }
    m
}

fn opts(reuse: Reuse) -> PlanOptions {
    PlanOptions {
        reuse,
        ..PlanOptions::default()
    }
}

/// The single item planned for `entry` against `previous`.
fn plan_one(previous: Option<&Manifest>, entry: &Entry, options: &PlanOptions) -> (Action, String) {
    let plan = CopyPlan::compute(previous, std::slice::from_ref(entry), options);
    assert_eq!(plan.items.len(), 1);
    let item = &plan.items[0];
    assert_eq!(&item.entry, entry);
    (item.action.clone(), item.reason.to_owned())
}

#[test]
fn dirs_and_symlinks() {
    let d = dir("data/base");
    let l = link("data/pg_tblspc/16385", "/srv/ts");
    for reuse in [Reuse::Off, Reuse::Link, Reuse::Copy] {
        let prev = manifest([previous_of(&d), previous_of(&l)]);
        assert_eq!(
            plan_one(Some(&prev), &d, &opts(reuse)),
            (Action::Mkdir, "directory".to_owned())
        );
        assert_eq!(
            plan_one(None, &l, &opts(reuse)),
            (Action::Symlink, "symlink".to_owned())
        );
    }
}

#[test]
fn reuse_off_fetches_everything() {
    let f = file("data/base/5/16384", 8192, at(T));
    let prev = manifest([previous_of(&f)]);
    let mut options = opts(Reuse::Off);
    options.checksum = true;
    assert_eq!(
        plan_one(Some(&prev), &f, &options),
        (Action::Fetch, "reuse off".to_owned())
    );
}

#[test]
fn no_previous_or_new_file_is_fetched() {
    let f = file("data/base/5/16384", 1 << 20, at(T));
    let (action, reason) = plan_one(None, &f, &opts(Reuse::Link));
    assert_eq!(action, Action::Fetch);
    assert!(reason.contains("no previous"), "{reason}");

    let other = file("data/base/5/99999", 1 << 20, at(T));
    let prev = manifest([previous_of(&other)]);
    assert_eq!(
        plan_one(Some(&prev), &f, &opts(Reuse::Link)),
        (Action::Fetch, "new file".to_owned())
    );
}

#[test]
fn previously_not_a_file_is_fetched() {
    let f = file("data/thing", 1 << 20, at(T));
    let mut old = previous_of(&dir("data/thing"));
    old.mtime = f.mtime;
    let prev = manifest([old]);
    let (action, reason) = plan_one(Some(&prev), &f, &opts(Reuse::Link));
    assert_eq!(action, Action::Fetch);
    assert!(reason.starts_with("new file"), "{reason}");
}

#[test]
fn unchanged_is_linked_or_copied() {
    let f = file("data/base/5/16384", 8192, at(T));
    let prev = manifest([previous_of(&f)]);
    assert_eq!(
        plan_one(Some(&prev), &f, &opts(Reuse::Link)),
        (Action::Link, "unchanged (size and mtime)".to_owned())
    );
    assert_eq!(
        plan_one(Some(&prev), &f, &opts(Reuse::Copy)),
        (
            Action::CopyPrevious,
            "unchanged (size and mtime)".to_owned()
        )
    );
}

#[test]
fn horizon_edge() {
    let f = file("data/base/5/16384", 8192, at(T));
    let prev = manifest([previous_of(&f)]);
    let with_horizon = |horizon: Mtime| PlanOptions {
        reuse: Reuse::Link,
        horizon: Some(horizon),
        ..PlanOptions::default()
    };
    // Strictly before the horizon: trusted.
    assert_eq!(
        plan_one(Some(&prev), &f, &with_horizon(Mtime { secs: T, nanos: 1 })).0,
        Action::Link
    );
    // Exactly at the horizon: compared.
    let (action, reason) = plan_one(Some(&prev), &f, &with_horizon(at(T)));
    assert_eq!(action, Action::Fetch, "8 KiB is below the rsync threshold");
    assert_eq!(reason, "modified after previous backup started");
    // After the horizon: compared.
    assert_eq!(
        plan_one(Some(&prev), &f, &with_horizon(at(T - 1))).1,
        "modified after previous backup started"
    );
}

#[test]
fn checksum_mode_compares_unchanged_files() {
    let f = file("data/base/5/16384", 1 << 20, at(T));
    let prev = manifest([previous_of(&f)]);
    let options = PlanOptions {
        reuse: Reuse::Link,
        checksum: true,
        ..PlanOptions::default()
    };
    assert_eq!(
        plan_one(Some(&prev), &f, &options),
        (Action::DeltaRsync, "checksum mode".to_owned())
    );
}

#[test]
fn changed_size_or_mtime() {
    let f = file("data/base/5/16384", 1 << 20, at(T));
    let mut old = previous_of(&f);
    old.size = 1 << 19;
    assert_eq!(
        plan_one(Some(&manifest([old])), &f, &opts(Reuse::Link)),
        (Action::DeltaRsync, "changed: size".to_owned())
    );
    let mut old = previous_of(&f);
    old.mtime = at(T - 60);
    assert_eq!(
        plan_one(Some(&manifest([old])), &f, &opts(Reuse::Copy)),
        (Action::DeltaRsync, "changed: mtime".to_owned())
    );
}

#[test]
fn page_fingerprints_mean_page_delta() {
    // Even a small file, and even one that was empty.
    let f = file("data/base/5/16384", 8192, at(T));
    let mut old = previous_of(&f);
    old.size = 0;
    old.pages = Some(PageHashes(vec![]));
    assert_eq!(
        plan_one(Some(&manifest([old])), &f, &opts(Reuse::Link)),
        (Action::DeltaPages, "changed: size".to_owned())
    );
    let mut old = previous_of(&f);
    old.pages = Some(PageHashes(vec![PageHash([0; 16])]));
    let options = PlanOptions {
        reuse: Reuse::Link,
        checksum: true,
        ..PlanOptions::default()
    };
    assert_eq!(
        plan_one(Some(&manifest([old])), &f, &options).0,
        Action::DeltaPages
    );
}

#[test]
fn whole_file_fetches_what_changed_and_still_links_what_did_not() {
    let f = file("data/base/5/16384", 1 << 20, at(T));
    let mut old = previous_of(&f);
    old.pages = Some(PageHashes(vec![PageHash([0; 16])]));
    let whole = PlanOptions {
        reuse: Reuse::Link,
        whole_file: true,
        ..PlanOptions::default()
    };
    // Unchanged: linked, as without whole_file.
    assert_eq!(
        plan_one(Some(&manifest([old.clone()])), &f, &whole).0,
        Action::Link
    );
    // Changed (size), with page fingerprints and above the rsync
    // threshold: fetched whole, no delta.
    let mut changed = f.clone();
    changed.size += 8192;
    assert_eq!(
        plan_one(Some(&manifest([old.clone()])), &changed, &whole),
        (Action::Fetch, "changed: size".to_owned())
    );
    // Checksum mode: compared by fetching.
    let checksum = PlanOptions {
        checksum: true,
        ..whole
    };
    assert_eq!(
        plan_one(Some(&manifest([old])), &f, &checksum).0,
        Action::Fetch
    );
}

#[test]
fn rsync_threshold() {
    let changed = |size: u64, old_size: u64, min: u64| {
        let f = file("data/big", size, at(T));
        let mut old = previous_of(&f);
        old.size = old_size;
        old.mtime = at(T - 1);
        let options = PlanOptions {
            reuse: Reuse::Link,
            delta_min_size: min,
            ..PlanOptions::default()
        };
        plan_one(Some(&manifest([old])), &f, &options).0
    };
    // 0 means the 64 KiB default.
    assert_eq!(DEFAULT_DELTA_MIN_SIZE, 65536);
    assert_eq!(changed(65536, 100, 0), Action::DeltaRsync);
    assert_eq!(changed(65535, 100, 0), Action::Fetch);
    assert_eq!(changed(100, 100, 100), Action::DeltaRsync);
    assert_eq!(changed(99, 100, 100), Action::Fetch);
    // Nothing to delta against.
    assert_eq!(changed(1 << 20, 0, 0), Action::Fetch);
}

#[test]
fn order_dirs_then_links_then_files_then_pg_control() {
    let listing = vec![
        file(PG_CONTROL, 8192, at(T)),
        file("data/PG_VERSION", 3, at(T)),
        link("data/pg_tblspc/16385", "/srv/ts"),
        dir("data/global"),
        file("data/global/1262", 8192, at(T)),
        dir("data/base/5"),
        dir("data"),
        file("data/base/5/16384", 8192, at(T)),
        dir("data/base"),
        dir("data/pg_tblspc"),
        link("data/pg_wal_link", "/srv/wal"),
        dir("16385"),
        file("16385/PG_17/5/1", 1, at(T)),
        dir("16385/PG_17"),
        dir("16385/PG_17/5"),
        // Only the data tree's control file goes last.
        file("16385/global/pg_control", 1, at(T)),
    ];
    let plan = CopyPlan::compute(None, &listing, &opts(Reuse::Link));
    let order: Vec<&str> = plan.items.iter().map(|i| i.entry.path.as_str()).collect();
    assert_eq!(
        order,
        [
            "16385",
            "16385/PG_17",
            "16385/PG_17/5",
            "data",
            "data/base",
            "data/base/5",
            "data/global",
            "data/pg_tblspc",
            "data/pg_tblspc/16385",
            "data/pg_wal_link",
            "16385/PG_17/5/1",
            "16385/global/pg_control",
            "data/PG_VERSION",
            "data/base/5/16384",
            "data/global/1262",
            PG_CONTROL,
        ]
    );
    assert_eq!(plan.len(), listing.len());
    assert!(!plan.is_empty());
}

#[test]
fn pg_control_is_planned_like_any_file() {
    let control = file(PG_CONTROL, 8192, at(T));
    let prev = manifest([previous_of(&control)]);
    assert_eq!(
        plan_one(Some(&prev), &control, &opts(Reuse::Link)).0,
        Action::Link
    );
}

fn mixed() -> CopyPlan {
    let unchanged = file("data/base/5/16384", 8192, at(T));
    let copied = file("data/base/5/16385", 100, at(T));
    let paged = file("data/base/5/16386", 16384, at(T));
    let big = file("data/base/5/16387", 1 << 20, at(T));
    let new = file("data/base/5/16388", 10, at(T));
    let mut paged_old = previous_of(&paged);
    paged_old.mtime = at(T - 5);
    paged_old.pages = Some(PageHashes(vec![PageHash([0; 16]); 2]));
    let mut big_old = previous_of(&big);
    big_old.size = 1000;
    let prev = manifest([
        previous_of(&unchanged),
        previous_of(&copied),
        paged_old,
        big_old,
    ]);
    let listing = vec![
        dir("data"),
        dir("data/base"),
        dir("data/base/5"),
        link("data/pg_tblspc_16385", "/srv/ts"),
        unchanged,
        copied,
        paged,
        big,
        new,
    ];
    CopyPlan::compute(Some(&prev), &listing, &opts(Reuse::Link))
}

#[test]
fn summary_counts_by_action() {
    let mut plan = mixed();
    // Pretend one file is copied locally, to fill every bucket.
    plan.items[5].action = Action::CopyPrevious;
    let s = plan.summary();
    let n = |files, bytes| FileCount { files, bytes };
    assert_eq!(
        s,
        PlanSummary {
            dirs: 3,
            symlinks: 1,
            fetch: n(1, 10),
            link: n(1, 8192),
            copy_previous: n(1, 100),
            delta_pages: n(1, 16384),
            delta_rsync: n(1, 1 << 20),
        }
    );
    assert_eq!(s.files(), n(5, 10 + 8192 + 100 + 16384 + (1 << 20)));
}

#[test]
fn display_one_line_per_item_and_a_summary() {
    let plan = mixed();
    let text = plan.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), plan.items.len() + 1);
    assert_eq!(lines[0], "mkdir       data  (directory)");
    assert_eq!(
        lines[3],
        "symlink     data/pg_tblspc_16385 -> /srv/ts  (symlink)"
    );
    assert_eq!(
        lines[4],
        "link        data/base/5/16384  (8192 bytes; unchanged (size and mtime))"
    );
    assert_eq!(
        lines[6],
        "delta-pages data/base/5/16386  (16384 bytes; changed: mtime)"
    );
    assert_eq!(
        lines[7],
        "delta-rsync data/base/5/16387  (1048576 bytes; changed: size)"
    );
    assert_eq!(
        lines[8],
        "fetch       data/base/5/16388  (10 bytes; new file)"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("total: 3 directories, 1 symlinks, 5 files"),
        "{last}"
    );
    assert!(last.contains("link 2 (8292 bytes)"), "{last}");
    assert_eq!(CopyPlan::default().to_string().lines().count(), 1);
}

/// A manifest entry of `entry` with content hash `hash` (a byte repeated).
fn hashed(entry: &Entry, hash: u8) -> ManifestEntry {
    ManifestEntry {
        blake3: Some(barman_copy::hash::FileHash([hash; 32])),
        ..ManifestEntry::from(entry)
    }
}

#[test]
fn from_manifest_trusts_checksums_not_times() {
    let same = file("data/base/5/1", 8192, at(T));
    let touched = file("data/base/5/2", 8192, at(T + 60));
    let changed = file("data/base/5/3", 8192, at(T));
    let paged = file("data/base/5/4", 8192, at(T));
    let grown = file("data/base/5/5", 100_000, at(T));
    let new = file("data/base/5/6", 10, at(T));
    let target = manifest([
        previous_of(&dir("data")),
        hashed(&same, 1),
        hashed(&touched, 2),
        hashed(&changed, 3),
        hashed(&paged, 4),
        hashed(&grown, 5),
        hashed(&new, 6),
    ]);
    let mut old_paged = hashed(&paged, 40);
    old_paged.pages = Some(PageHashes(vec![PageHash([0; 16])]));
    let previous = manifest([
        hashed(&same, 1),
        // Same content, another mtime: still reused.
        hashed(&file("data/base/5/2", 8192, at(T)), 2),
        // Same size and mtime, another content: compared.
        hashed(&changed, 30),
        old_paged,
        hashed(&file("data/base/5/5", 90_000, at(T)), 50),
    ]);
    let plan = CopyPlan::from_manifest(Some(&previous), &target, &opts(Reuse::Link));
    let got: Vec<(&str, Action, &str)> = plan
        .items
        .iter()
        .map(|i| (i.entry.path.as_str(), i.action.clone(), i.reason))
        .collect();
    assert_eq!(
        got,
        [
            ("data", Action::Mkdir, "directory"),
            ("data/base/5/1", Action::Link, "unchanged (blake3)"),
            ("data/base/5/2", Action::Link, "unchanged (blake3)"),
            ("data/base/5/3", Action::Fetch, "checksum mode"),
            ("data/base/5/4", Action::DeltaPages, "checksum mode"),
            ("data/base/5/5", Action::DeltaRsync, "changed: size"),
            ("data/base/5/6", Action::Fetch, "new file"),
        ]
    );
    // The entries keep the target's sizes, mtimes and modes.
    assert_eq!(plan.items[2].entry, touched);
    let copy = CopyPlan::from_manifest(Some(&previous), &target, &opts(Reuse::Copy));
    assert_eq!(copy.items[1].action, Action::CopyPrevious);
    let off = CopyPlan::from_manifest(Some(&previous), &target, &opts(Reuse::Off));
    assert!(off.items[1..].iter().all(|i| i.action == Action::Fetch));
    let first = CopyPlan::from_manifest(None, &target, &opts(Reuse::Link));
    assert!(first.items[1..].iter().all(|i| i.action == Action::Fetch));
}

#[test]
fn from_manifest_without_checksums_never_reuses() {
    let f = file("data/base/5/1", 8192, at(T));
    let bare = manifest([previous_of(&f)]);
    let plan = CopyPlan::from_manifest(Some(&bare), &bare, &opts(Reuse::Link));
    assert_ne!(plan.items[0].action, Action::Link);
}
