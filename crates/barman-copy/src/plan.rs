//! The pure copy plan: what to do with each listed entry.

use std::fmt;

use crate::entry::{Entry, EntryKind, Mtime};
use crate::manifest::Manifest;

/// How unchanged files are reused from the previous backup (`reuse_backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// Copy everything from the source.
    #[default]
    Off,
    /// Hard-link unchanged files to the previous backup's copy.
    Link,
    /// Copy unchanged files locally from the previous backup.
    Copy,
}

/// Options of [`CopyPlan::compute`].
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Reuse mode.
    pub reuse: Reuse,
    /// Files whose mtime is at or after this instant are always compared by
    /// content, even when size and mtime match the previous manifest
    /// (usually the previous backup's start time minus a safety margin).
    /// `None`: no horizon (every size+mtime match is trusted).
    pub horizon: Option<Mtime>,
    /// Compare every file by content (delta), never trusting size+mtime.
    pub checksum: bool,
    /// Files smaller than this are fetched whole instead of by rsync delta.
    pub delta_min_size: u64,
    /// Fetch a changed file whole instead of by delta (rsync's
    /// `--whole-file`, its default for local copies): when the source is on
    /// this host, a delta would read the previous backup's copy as well as
    /// the source, and save nothing on the wire. A fetched file found
    /// identical to its previous copy is still hard-linked by the executor.
    pub whole_file: bool,
}

/// What to do with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the directory.
    Mkdir,
    /// Create the symbolic link.
    Symlink,
    /// Fetch the whole file from the source.
    Fetch,
    /// Hard-link the previous backup's copy (unchanged).
    Link,
    /// Copy the previous backup's copy locally (unchanged).
    CopyPrevious,
    /// Page-level delta: send the previous page fingerprints, fetch the pages that differ.
    DeltaPages,
    /// fast_rsync delta against the previous copy.
    DeltaRsync,
}

/// One planned entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// The source entry.
    pub entry: Entry,
    /// What to do.
    pub action: Action,
    /// Why (for `--dry-run` and logs).
    pub reason: &'static str,
}

/// A plan for a whole backup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// Directories and symlinks first (parents before children), then files;
    /// `data/global/pg_control` last.
    pub items: Vec<PlanItem>,
}

/// Default of [`PlanOptions::delta_min_size`] when it is 0: 64 KiB.
pub const DEFAULT_DELTA_MIN_SIZE: u64 = 64 * 1024;

/// The path of the control file, always copied last.
pub const PG_CONTROL: &str = "data/global/pg_control";

impl Action {
    /// A short name, as printed by [`CopyPlan`]'s `Display`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Mkdir => "mkdir",
            Self::Symlink => "symlink",
            Self::Fetch => "fetch",
            Self::Link => "link",
            Self::CopyPrevious => "copy-prev",
            Self::DeltaPages => "delta-pages",
            Self::DeltaRsync => "delta-rsync",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How many files a plan handles one way, and their total size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCount {
    /// Number of files.
    pub files: u64,
    /// Sum of their sizes (source sizes at listing time).
    pub bytes: u64,
}

impl FileCount {
    fn add(&mut self, size: u64) {
        self.files += 1;
        self.bytes += size;
    }
}

/// Totals of a [`CopyPlan`] by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Directories to create.
    pub dirs: u64,
    /// Symbolic links to create.
    pub symlinks: u64,
    /// Files fetched whole from the source.
    pub fetch: FileCount,
    /// Files hard-linked to the previous backup.
    pub link: FileCount,
    /// Files copied locally from the previous backup.
    pub copy_previous: FileCount,
    /// Files rebuilt from a page-level delta.
    pub delta_pages: FileCount,
    /// Files rebuilt from an rsync delta.
    pub delta_rsync: FileCount,
}

impl PlanSummary {
    /// All regular files of the plan.
    pub fn files(&self) -> FileCount {
        let all = [
            self.fetch,
            self.link,
            self.copy_previous,
            self.delta_pages,
            self.delta_rsync,
        ];
        FileCount {
            files: all.iter().map(|c| c.files).sum(),
            bytes: all.iter().map(|c| c.bytes).sum(),
        }
    }
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.files();
        write!(
            f,
            "{} directories, {} symlinks, {} files ({} bytes): ",
            self.dirs, self.symlinks, files.files, files.bytes
        )?;
        let parts = [
            ("fetch", self.fetch),
            ("link", self.link),
            ("copy-prev", self.copy_previous),
            ("delta-pages", self.delta_pages),
            ("delta-rsync", self.delta_rsync),
        ];
        for (i, (label, count)) in parts.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{label} {} ({} bytes)", count.files, count.bytes)?;
        }
        Ok(())
    }
}

impl CopyPlan {
    /// Plans `listing` against `previous` (the previous backup's manifest).
    ///
    /// Directories become [`Action::Mkdir`] and symbolic links
    /// [`Action::Symlink`]. A regular file is fetched whole when reuse is
    /// off or the previous backup has no file at its path. A file whose size
    /// and mtime match the previous copy, last modified strictly before
    /// `options.horizon` (when set), is reused ([`Action::Link`] or
    /// [`Action::CopyPrevious`]) unless `options.checksum` is set. Any other
    /// file is compared by content: [`Action::DeltaPages`] when the previous
    /// copy has page fingerprints, [`Action::DeltaRsync`] when the file is at
    /// least `options.delta_min_size` bytes (0: [`DEFAULT_DELTA_MIN_SIZE`])
    /// and the previous copy is not empty, else [`Action::Fetch`];
    /// always [`Action::Fetch`] with `options.whole_file`.
    ///
    /// Items are ordered directories first (sorted, so parents precede their
    /// children), then symbolic links, then files, all sorted by path, with
    /// [`PG_CONTROL`] always last. Pure: no I/O.
    pub fn compute(previous: Option<&Manifest>, listing: &[Entry], options: &PlanOptions) -> Self {
        Self::build(listing.iter().cloned(), |entry| {
            plan_file(previous, entry, options)
        })
    }

    /// Plans the copy of a backup whose manifest is `target` (a passive
    /// node copying a backup from its primary) against `previous`, the
    /// manifest of a local backup.
    ///
    /// Files are compared by content, never by size and mtime: a file
    /// whose size and blake3 in `target` equal those of the previous
    /// backup's copy is reused ([`Action::Link`] or [`Action::CopyPrevious`],
    /// by `options.reuse`); any other file is planned as
    /// [`compute`](Self::compute) plans a changed one (a page or rsync
    /// delta against the previous copy, else a whole fetch), or fetched
    /// when it is new. Directories and symbolic links as in `compute`, and
    /// the same order. Pure: no I/O.
    pub fn from_manifest(
        previous: Option<&Manifest>,
        target: &Manifest,
        options: &PlanOptions,
    ) -> Self {
        let listing = target.iter().map(|m| Entry {
            path: m.path.clone(),
            kind: m.kind.clone(),
            size: m.size,
            mtime: m.mtime,
            mode: m.mode,
        });
        Self::build(listing, |entry| {
            let wanted = target.get(&entry.path).and_then(|m| m.blake3);
            let same = previous
                .and_then(|p| p.get(&entry.path))
                .filter(|old| matches!(old.kind, EntryKind::File) && old.size == entry.size)
                .is_some_and(|old| wanted.is_some() && old.blake3 == wanted);
            match options.reuse {
                Reuse::Link if same => (Action::Link, "unchanged (blake3)"),
                Reuse::Copy if same => (Action::CopyPrevious, "unchanged (blake3)"),
                _ => plan_file(
                    previous,
                    entry,
                    &PlanOptions {
                        checksum: true,
                        ..options.clone()
                    },
                ),
            }
        })
    }

    /// Sorts `listing` into a plan, files planned by `plan_file`.
    fn build(
        listing: impl Iterator<Item = Entry>,
        mut plan_file: impl FnMut(&Entry) -> (Action, &'static str),
    ) -> Self {
        let mut dirs = Vec::new();
        let mut links = Vec::new();
        let mut files = Vec::new();
        let mut control = Vec::new();
        for entry in listing {
            match entry.kind {
                EntryKind::Dir => dirs.push(PlanItem {
                    entry,
                    action: Action::Mkdir,
                    reason: "directory",
                }),
                EntryKind::Symlink { .. } => links.push(PlanItem {
                    entry,
                    action: Action::Symlink,
                    reason: "symlink",
                }),
                EntryKind::File => {
                    let (action, reason) = plan_file(&entry);
                    let item = PlanItem {
                        entry,
                        action,
                        reason,
                    };
                    if item.entry.path.as_str() == PG_CONTROL {
                        control.push(item);
                    } else {
                        files.push(item);
                    }
                }
            }
        }
        for group in [&mut dirs, &mut links, &mut files] {
            group.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
        }
        let mut items = dirs;
        items.extend(links);
        items.extend(files);
        items.extend(control);
        Self { items }
    }

    /// Totals by action.
    pub fn summary(&self) -> PlanSummary {
        let mut summary = PlanSummary::default();
        for item in &self.items {
            let size = item.entry.size;
            match item.action {
                Action::Mkdir => summary.dirs += 1,
                Action::Symlink => summary.symlinks += 1,
                Action::Fetch => summary.fetch.add(size),
                Action::Link => summary.link.add(size),
                Action::CopyPrevious => summary.copy_previous.add(size),
                Action::DeltaPages => summary.delta_pages.add(size),
                Action::DeltaRsync => summary.delta_rsync.add(size),
            }
        }
        summary
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the plan has no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The action for one regular file, and why.
fn plan_file(
    previous: Option<&Manifest>,
    entry: &Entry,
    options: &PlanOptions,
) -> (Action, &'static str) {
    if options.reuse == Reuse::Off {
        return (Action::Fetch, "reuse off");
    }
    let Some(previous) = previous else {
        return (Action::Fetch, "no previous backup");
    };
    let Some(old) = previous.get(&entry.path) else {
        return (Action::Fetch, "new file");
    };
    if !matches!(old.kind, EntryKind::File) {
        return (Action::Fetch, "new file (previously not a regular file)");
    }
    let before_horizon = options.horizon.is_none_or(|h| entry.mtime < h);
    let reason = if old.size != entry.size {
        "changed: size"
    } else if old.mtime != entry.mtime {
        "changed: mtime"
    } else if options.checksum {
        "checksum mode"
    } else if !before_horizon {
        "modified after previous backup started"
    } else {
        let action = match options.reuse {
            Reuse::Copy => Action::CopyPrevious,
            Reuse::Link | Reuse::Off => Action::Link,
        };
        return (action, "unchanged (size and mtime)");
    };
    let min_size = match options.delta_min_size {
        0 => DEFAULT_DELTA_MIN_SIZE,
        n => n,
    };
    let action = if options.whole_file {
        Action::Fetch
    } else if old.pages.is_some() {
        Action::DeltaPages
    } else if entry.size >= min_size && old.size > 0 {
        Action::DeltaRsync
    } else {
        Action::Fetch
    };
    (action, reason)
}

impl fmt::Display for CopyPlan {
    /// One line per item, then a summary line:
    /// `link        data/base/5/16384  (8192 bytes; unchanged (size and mtime))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            let label = item.action.label();
            let path = &item.entry.path;
            match &item.entry.kind {
                EntryKind::File => writeln!(
                    f,
                    "{label:<11} {path}  ({} bytes; {})",
                    item.entry.size, item.reason
                )?,
                EntryKind::Symlink { target } => {
                    writeln!(f, "{label:<11} {path} -> {target}  ({})", item.reason)?;
                }
                EntryKind::Dir => writeln!(f, "{label:<11} {path}  ({})", item.reason)?,
            }
        }
        write!(f, "total: {}", self.summary())
    }
}
