//! Property: every listed entry is planned exactly once, parents first.

use std::collections::{BTreeMap, BTreeSet};

use barman_copy::hash::PageHashes;
use barman_copy::plan::PG_CONTROL;
use barman_copy::{
    Action, CopyPlan, Entry, EntryKind, Manifest, ManifestEntry, Mtime, PlanOptions, RelPath, Reuse,
};
use proptest::prelude::*;

/// A listing: a random set of paths in up to two trees, with every parent
/// directory listed, plus `data/global/pg_control` sometimes.
fn listing() -> impl Strategy<Value = Vec<Entry>> {
    let component = prop::sample::select(vec!["a", "b", "c", "base", "5", "16384", "global"]);
    let path = (
        prop::sample::select(vec!["data", "16385"]),
        prop::collection::vec(component, 0..4),
        0u8..3,
        0u64..200_000,
        0i64..4,
    );
    (prop::collection::vec(path, 0..30), any::<bool>()).prop_map(|(paths, control)| {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        let add_dir = |entries: &mut BTreeMap<String, Entry>, p: &str| {
            entries.entry(p.to_owned()).or_insert_with(|| Entry {
                path: RelPath::new(p).unwrap(),
                kind: EntryKind::Dir,
                size: 0,
                mtime: Mtime::default(),
                mode: 0o700,
            });
        };
        let mut leaves = Vec::new();
        for (tree, parts, kind, size, secs) in paths {
            let mut p = tree.to_owned();
            add_dir(&mut entries, &p);
            for part in &parts {
                add_dir(&mut entries, &p);
                p = format!("{p}/{part}");
            }
            leaves.push((p, kind, size, secs));
        }
        if control {
            add_dir(&mut entries, "data");
            add_dir(&mut entries, "data/global");
            leaves.push((PG_CONTROL.to_owned(), 0, 8192, 1));
        }
        for (p, kind, size, secs) in leaves {
            if entries.contains_key(&p) {
                continue;
            }
            // A leaf under a non-directory would not be a valid listing.
            let path = RelPath::new(p.clone()).unwrap();
            if path.parent().is_some_and(|parent| {
                entries
                    .get(parent.as_str())
                    .is_none_or(|e| e.kind != EntryKind::Dir)
            }) {
                continue;
            }
            let kind = match kind {
                0 => EntryKind::Dir,
                1 => EntryKind::Symlink {
                    target: "/elsewhere".to_owned(),
                },
                _ => EntryKind::File,
            };
            let size = if kind == EntryKind::File { size } else { 0 };
            entries.insert(
                p,
                Entry {
                    path,
                    kind,
                    size,
                    mtime: Mtime { secs, nanos: 0 },
                    mode: 0o600,
                },
            );
        }
        // Listing order does not matter to the plan: hand them over reversed.
        entries.into_values().rev().collect()
    })
}

/// A previous manifest holding some of the listed entries, some changed.
fn previous(listing: &[Entry], picks: &[(bool, u8)]) -> Manifest {
    let mut m = Manifest::default();
    for (entry, &(keep, change)) in listing.iter().zip(picks.iter().cycle()) {
        if !keep {
            continue;
        }
        let mut old = ManifestEntry::from(entry);
        match change % 4 {
            1 => old.size += 1,
            2 => old.mtime.secs -= 1,
            3 => old.pages = Some(PageHashes::default()),
            _ => {}
        }
        m.insert(old);
    }
    m
}

fn reuse() -> impl Strategy<Value = Reuse> {
    prop::sample::select(vec![Reuse::Off, Reuse::Link, Reuse::Copy])
}

proptest! {
    #[test]
    fn every_entry_once_parents_first(
        listing in listing(),
        picks in prop::collection::vec((any::<bool>(), any::<u8>()), 1..8),
        has_previous in any::<bool>(),
        reuse in reuse(),
        horizon in prop::option::of(0i64..5),
        checksum in any::<bool>(),
        delta_min_size in prop::sample::select(vec![0u64, 1, 100_000]),
    ) {
        let prev = previous(&listing, &picks);
        let options = PlanOptions {
            reuse,
            horizon: horizon.map(|secs| Mtime { secs, nanos: 0 }),
            checksum,
            delta_min_size,
            whole_file: false,
        };
        let plan = CopyPlan::compute(has_previous.then_some(&prev), &listing, &options);

        // Exactly once each.
        prop_assert_eq!(plan.items.len(), listing.len());
        let planned: BTreeSet<&str> = plan.items.iter().map(|i| i.entry.path.as_str()).collect();
        prop_assert_eq!(planned.len(), listing.len());
        for entry in &listing {
            let item = plan.items.iter().find(|i| i.entry.path == entry.path).unwrap();
            prop_assert_eq!(&item.entry, entry);
        }

        // Parents before children.
        let mut seen = BTreeSet::new();
        for item in &plan.items {
            if let Some(parent) = item.entry.path.parent()
                && planned.contains(parent.as_str())
            {
                prop_assert!(seen.contains(parent.as_str()), "{} before its parent", item.entry.path);
            }
            seen.insert(item.entry.path.as_str());
        }

        // Kinds map to actions; pg_control last; reuse only when allowed.
        for (index, item) in plan.items.iter().enumerate() {
            match item.entry.kind {
                EntryKind::Dir => prop_assert_eq!(&item.action, &Action::Mkdir),
                EntryKind::Symlink { .. } => prop_assert_eq!(&item.action, &Action::Symlink),
                EntryKind::File => {
                    prop_assert!(!matches!(item.action, Action::Mkdir | Action::Symlink));
                    if item.entry.path.as_str() == PG_CONTROL {
                        prop_assert_eq!(index, plan.items.len() - 1);
                    }
                }
            }
            match item.action {
                Action::Link => prop_assert_eq!(reuse, Reuse::Link),
                Action::CopyPrevious => prop_assert_eq!(reuse, Reuse::Copy),
                _ => {}
            }
            if matches!(item.action, Action::Link | Action::CopyPrevious) {
                prop_assert!(!checksum);
                let old = prev.get(&item.entry.path).unwrap();
                prop_assert_eq!(old.size, item.entry.size);
                prop_assert_eq!(old.mtime, item.entry.mtime);
                if let Some(h) = options.horizon {
                    prop_assert!(item.entry.mtime < h);
                }
            }
        }
        let s = plan.summary();
        let total = s.dirs + s.symlinks + s.files().files;
        prop_assert_eq!(total, listing.len() as u64);
    }
}
