//! `executor::execute` against an in-test source serving directories of a
//! temporary directory, with hand-built plans.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barman_copy::executor::CONTROL_FILE;
use barman_copy::hash::{PAGE_SIZE, PageHash, PageHashes};
use barman_copy::source::{PageChunk, PageDeltaEnd};
use barman_copy::{
    Action, CopyPlan, CopyReport, Entry, EntryKind, Error, Exclusions, ExecOptions, Manifest,
    Mtime, NoProgress, PlanItem, Progress, RelPath, Result, Reuse, Roots, Source, SourceFactory,
    execute,
};
use barman_fs::is_temp_name;

const CHUNK: usize = 64 * 1024;

/// What the fake source was asked, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Start(String),
    End(String),
    Page(String, u64),
    /// A path announced by `read_ahead` (once while it is in flight).
    Ahead(String),
}

/// Shared state of the fake sessions.
#[derive(Default)]
struct Shared {
    events: Mutex<Vec<Event>>,
    /// A path whose reads fail.
    fail: Option<String>,
    /// Sets this flag once this many chunks were delivered.
    cancel_after: Option<(u64, Arc<AtomicBool>)>,
    chunks: AtomicU64,
    sessions: AtomicU64,
}

/// Opens [`FakeSource`] sessions over `roots`.
struct FakeFactory {
    roots: Roots,
    shared: Arc<Shared>,
}

impl FakeFactory {
    fn new(roots: Roots) -> Self {
        Self {
            roots,
            shared: Arc::default(),
        }
    }

    fn with(roots: Roots, shared: Shared) -> Self {
        Self {
            roots,
            shared: Arc::new(shared),
        }
    }

    fn events(&self) -> Vec<Event> {
        self.shared.events.lock().unwrap().clone()
    }

    fn pages_sent(&self, path: &str) -> Vec<u64> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Page(p, n) if p == path => Some(n),
                _ => None,
            })
            .collect()
    }
}

impl SourceFactory for FakeFactory {
    fn open(&self) -> Result<Box<dyn Source>> {
        self.shared.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(FakeSource {
            roots: self.roots.clone(),
            shared: self.shared.clone(),
            wire: 0,
            ahead: Vec::new(),
        }))
    }
}

struct FakeSource {
    roots: Roots,
    shared: Arc<Shared>,
    wire: u64,
    /// Announced and not read yet, oldest first (as an agent session has
    /// them in flight).
    ahead: Vec<String>,
}

impl FakeSource {
    fn load(&mut self, path: &RelPath) -> Result<Vec<u8>> {
        self.record(Event::Start(path.to_string()));
        if self.shared.fail.as_deref() == Some(path.as_str()) {
            return Err(Error::Vanished {
                path: path.to_string(),
            });
        }
        let file = self.roots[path.tree()].join(path.in_tree());
        fs::read(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Vanished {
                path: path.to_string(),
            },
            _ => Error::io(file, e),
        })
    }

    fn record(&self, event: Event) {
        self.shared.events.lock().unwrap().push(event);
    }

    fn deliver(&mut self, data: &[u8]) {
        self.wire += data.len() as u64;
        let chunks = self.shared.chunks.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some((after, flag)) = &self.shared.cancel_after
            && chunks >= *after
        {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

impl Source for FakeSource {
    fn list(&mut self, _tree: &str, _exclusions: &Exclusions) -> Result<Vec<Entry>> {
        Ok(Vec::new())
    }

    fn read_ahead(&mut self, paths: &[&RelPath]) {
        for path in paths {
            if !self.ahead.iter().any(|p| p == path.as_str()) {
                self.ahead.push(path.to_string());
                self.record(Event::Ahead(path.to_string()));
            }
        }
    }

    fn read(&mut self, path: &RelPath, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<u64> {
        if self.ahead.first().map(String::as_str) == Some(path.as_str()) {
            self.ahead.remove(0);
        } else {
            self.ahead.clear();
        }
        let data = self.load(path)?;
        for chunk in data.chunks(CHUNK) {
            self.deliver(chunk);
            sink(chunk)?;
        }
        self.record(Event::End(path.to_string()));
        Ok(data.len() as u64)
    }

    fn changed_pages(
        &mut self,
        path: &RelPath,
        previous: &PageHashes,
        sink: &mut dyn FnMut(PageChunk<'_>) -> Result<()>,
    ) -> Result<PageDeltaEnd> {
        let data = self.load(path)?;
        let mut pages_sent = 0;
        for (n, page) in data.chunks(PAGE_SIZE).enumerate() {
            if previous.0.get(n) == Some(&PageHash::of(page)) {
                continue;
            }
            let first = n as u64;
            self.record(Event::Page(path.to_string(), first));
            self.deliver(page);
            sink(PageChunk::Pages { first, data: page })?;
            pages_sent += 1;
        }
        self.record(Event::End(path.to_string()));
        Ok(PageDeltaEnd {
            size: data.len() as u64,
            pages_sent,
        })
    }

    fn rsync_delta(
        &mut self,
        path: &RelPath,
        signature: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let data = self.load(path)?;
        let signature = fast_rsync::Signature::deserialize(signature.to_vec())
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut delta = Vec::new();
        fast_rsync::diff(&signature.index(), &data, &mut delta)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        for chunk in delta.chunks(1000) {
            self.deliver(chunk);
            sink(chunk)?;
        }
        self.record(Event::End(path.to_string()));
        Ok(delta.len() as u64)
    }

    fn wire_bytes(&self) -> u64 {
        self.wire
    }
}

/// Counts what the executor reports.
#[derive(Default)]
struct CountingProgress {
    starts: Mutex<Vec<(u64, u64)>>,
    bytes: AtomicU64,
    files: AtomicU64,
}

impl Progress for CountingProgress {
    fn start(&self, files: u64, bytes: u64) {
        self.starts.lock().unwrap().push((files, bytes));
    }
    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn file_done(&self, _path: &RelPath) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
}

/// Deterministic pseudo-random bytes (blake3's extendable output).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

const RELATION: &str = "base/5/16384";
const CONF: &str = "postgresql.conf";

/// A temporary directory with a PGDATA (`pgdata`), a tablespace (`tbs`)
/// and room for backups (`backups/<name>`).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fx = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let pg = fx.pgdata();
        for d in ["base/5", "global", "pg_wal", "pg_tblspc", "private"] {
            fs::create_dir_all(pg.join(d)).unwrap();
        }
        fx.write("PG_VERSION", b"15\n");
        fx.write(RELATION, &noise(100 * PAGE_SIZE, 1));
        fx.write("base/5/16385_fsm", &noise(3 * PAGE_SIZE, 2));
        fx.write("global/1262", &noise(PAGE_SIZE, 3));
        fx.write("global/pg_control", &noise(PAGE_SIZE, 4));
        let conf: Vec<u8> = (0..3000)
            .flat_map(|i| format!("setting_{i} = 'value {i}'\n").into_bytes())
            .collect();
        fx.write(CONF, &conf);
        fx.write("private/secret", b"0400 file");
        fs::set_permissions(pg.join("private/secret"), fs::Permissions::from_mode(0o400)).unwrap();
        fs::set_permissions(pg.join("private"), fs::Permissions::from_mode(0o750)).unwrap();
        fx.write("empty", b"");
        std::os::unix::fs::symlink("/srv/tablespace/16385", pg.join("pg_tblspc/16385")).unwrap();
        let tbs = fx.tablespace();
        fs::create_dir_all(tbs.join("PG_15_202209061/5")).unwrap();
        fs::write(tbs.join("PG_15_202209061/5/16390"), noise(2 * PAGE_SIZE, 5)).unwrap();
        // Distinct, old mtimes with nanoseconds, directories last.
        for (i, entry) in (0_i64..).zip(fx.listing().iter().rev()) {
            if !matches!(entry.kind, EntryKind::Symlink { .. }) {
                let path = fx.source_path(&entry.path);
                let time = filetime::FileTime::from_unix_time(1_600_000_000 + i, 123_456_789);
                filetime::set_file_mtime(path, time).unwrap();
            }
        }
        fx
    }

    /// How many of the source's files are the same inode in backups `a` and `b`.
    fn shared_inodes(&self, a: &str, b: &str) -> u64 {
        let same =
            |e: &Entry| ino(&e.path.under(&self.backup(a))) == ino(&e.path.under(&self.backup(b)));
        self.listing()
            .iter()
            .filter(|e| e.is_file() && same(e))
            .count() as u64
    }

    /// The inode of PGDATA's `path` in backup `name`.
    fn inode(&self, name: &str, path: &str) -> u64 {
        ino(&self.backup(name).join("data").join(path))
    }

    fn pgdata(&self) -> PathBuf {
        self.dir.path().join("pgdata")
    }

    fn tablespace(&self) -> PathBuf {
        self.dir.path().join("tbs")
    }

    fn backup(&self, name: &str) -> PathBuf {
        self.dir.path().join("backups").join(name)
    }

    fn roots(&self) -> Roots {
        Roots::from([
            ("data".to_owned(), self.pgdata()),
            ("16385".to_owned(), self.tablespace()),
        ])
    }

    fn factory(&self) -> FakeFactory {
        FakeFactory::new(self.roots())
    }

    fn write(&self, path: &str, data: &[u8]) {
        fs::write(self.pgdata().join(path), data).unwrap();
    }

    fn source_path(&self, path: &RelPath) -> PathBuf {
        self.roots()[path.tree()].join(path.in_tree())
    }

    /// Every entry of both trees, sorted by path.
    fn listing(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for (tree, root) in self.roots() {
            walk(&root, &RelPath::new(tree).unwrap(), &mut out);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// A plan over the current listing; `action` picks each file's action.
    fn plan(&self, action: impl Fn(&str) -> Action) -> CopyPlan {
        let listing = self.listing();
        let mut items: Vec<PlanItem> = listing
            .iter()
            .filter(|e| !e.is_file())
            .map(|entry| PlanItem {
                action: match entry.kind {
                    EntryKind::Dir => Action::Mkdir,
                    _ => Action::Symlink,
                },
                entry: entry.clone(),
                reason: "test",
            })
            .collect();
        let (control, files): (Vec<_>, Vec<_>) = listing
            .iter()
            .filter(|e| e.is_file())
            .partition(|e| e.path.as_str() == CONTROL_FILE);
        for entry in files.into_iter().chain(control) {
            items.push(PlanItem {
                action: action(entry.path.as_str()),
                entry: entry.clone(),
                reason: "test",
            });
        }
        CopyPlan { items }
    }

    /// A plan with `action` for the file `path` and `Link` for the others.
    fn plan_with(&self, path: &str, action: &Action) -> CopyPlan {
        self.plan(|p| {
            if p == path {
                action.clone()
            } else {
                Action::Link
            }
        })
    }

    /// Runs `plan` into backup `b2` after `b1` with default options.
    fn second_backup(&self, plan: &CopyPlan, b1: &CopyReport, factory: &FakeFactory) -> CopyReport {
        self.run(plan, "b2", Some(("b1", b1)), factory, |_| {})
            .unwrap()
    }

    /// Runs `plan` into backup `name` with the previous backup `previous`.
    fn run(
        &self,
        plan: &CopyPlan,
        name: &str,
        previous: Option<(&str, &CopyReport)>,
        factory: &FakeFactory,
        tweak: impl FnOnce(&mut ExecOptions),
    ) -> Result<CopyReport> {
        let mut options = ExecOptions {
            jobs: 2,
            reuse: Reuse::Link,
            ..ExecOptions::default()
        };
        if let Some((dir, report)) = previous {
            options.previous_dir = Some(self.backup(dir));
            options.previous = Some(Arc::new(report.manifest.clone()));
        }
        tweak(&mut options);
        let cancel = AtomicBool::new(false);
        execute(
            plan,
            factory,
            &self.backup(name),
            &options,
            &NoProgress,
            &cancel,
        )
    }

    /// A first backup `b1`, every file fetched.
    fn first_backup(&self) -> CopyReport {
        let plan = self.plan(|_| Action::Fetch);
        self.run(&plan, "b1", None, &self.factory(), |_| {})
            .unwrap()
    }
}

fn walk(dir: &Path, rel: &RelPath, out: &mut Vec<Entry>) {
    let meta = fs::symlink_metadata(dir).unwrap();
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Symlink {
            target: fs::read_link(dir).unwrap().to_str().unwrap().to_owned(),
        }
    } else if meta.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    let is_dir = kind == EntryKind::Dir;
    out.push(Entry {
        path: rel.clone(),
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        kind,
        mtime: Mtime::of(&meta),
        mode: meta.mode() & 0o7777,
    });
    if is_dir {
        for child in fs::read_dir(dir).unwrap() {
            let child = child.unwrap();
            let name = child.file_name().into_string().unwrap();
            walk(&child.path(), &rel.join(&name).unwrap(), out);
        }
    }
}

fn rel(path: &str) -> RelPath {
    RelPath::new(path).unwrap()
}

fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

/// Every temporary file of barman-rs under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_temp_name)
        {
            out.push(path.clone());
        }
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(temp_files(&path));
        }
    }
    out
}

/// Asserts that backup `name` holds exactly the source's entries, with the
/// same content, modes and mtimes, and that the manifest describes them.
fn assert_same_as_source(fx: &Fixture, name: &str, report: &CopyReport) {
    let dest = fx.backup(name);
    let listing = fx.listing();
    assert_eq!(
        report.manifest.entries.keys().collect::<Vec<_>>(),
        listing.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
    for entry in &listing {
        let copy = entry.path.under(&dest);
        let meta = fs::symlink_metadata(&copy).unwrap();
        let recorded = report.manifest.get(&entry.path).unwrap();
        assert_eq!(recorded.kind, entry.kind, "{}", entry.path);
        assert_eq!(recorded.size, entry.size, "{}", entry.path);
        match &entry.kind {
            EntryKind::Symlink { target } => {
                assert_eq!(fs::read_link(&copy).unwrap().to_str().unwrap(), target);
                continue;
            }
            EntryKind::File => {
                let data = fs::read(&copy).unwrap();
                assert!(
                    data == fs::read(fx.source_path(&entry.path)).unwrap(),
                    "{}",
                    entry.path
                );
                assert_eq!(
                    recorded.blake3.unwrap().0,
                    *blake3::hash(&data).as_bytes(),
                    "{}",
                    entry.path
                );
                let paged = barman_copy::hash::is_page_structured(entry.path.in_tree(), entry.size);
                assert_eq!(recorded.pages.is_some(), paged, "{}", entry.path);
                if let Some(pages) = &recorded.pages {
                    assert_eq!(pages.0.len(), data.len() / PAGE_SIZE);
                }
            }
            EntryKind::Dir => assert!(meta.is_dir()),
        }
        assert_eq!(meta.mode() & 0o7777, entry.mode, "{}", entry.path);
        assert_eq!(Mtime::of(&meta), entry.mtime, "{}", entry.path);
    }
    assert!(temp_files(&dest).is_empty(), "{:?}", temp_files(&dest));
}

#[test]
fn full_fetch_copies_content_modes_mtimes_symlinks_and_empty_dirs() {
    let fx = Fixture::new();
    let factory = fx.factory();
    let plan = fx.plan(|_| Action::Fetch);
    let progress = CountingProgress::default();
    let report = execute(
        &plan,
        &factory,
        &fx.backup("b1"),
        &ExecOptions {
            jobs: 3,
            ..ExecOptions::default()
        },
        &progress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_same_as_source(&fx, "b1", &report);
    assert!(fx.backup("b1/data/pg_wal").is_dir());
    let files: Vec<_> = fx.listing().into_iter().filter(Entry::is_file).collect();
    let total: u64 = files.iter().map(|e| e.size).sum();
    assert_eq!(report.files, files.len() as u64);
    assert_eq!(report.files_fetched, files.len() as u64);
    assert_eq!(report.bytes_total, total);
    assert_eq!(report.bytes_written, total);
    assert_eq!(report.wire_bytes, total);
    assert_eq!(report.workers, 3);
    assert_eq!(
        (
            report.files_linked,
            report.files_delta,
            report.files_copied_locally
        ),
        (0, 0, 0)
    );
    assert_eq!(
        *progress.starts.lock().unwrap(),
        [(files.len() as u64, total)]
    );
    assert_eq!(progress.bytes.load(Ordering::Relaxed), total);
    assert_eq!(progress.files.load(Ordering::Relaxed), files.len() as u64);
    let relation = report.manifest.get(&rel("data/base/5/16384")).unwrap();
    assert_eq!(relation.pages.as_ref().unwrap().0.len(), 100);
}

#[test]
fn link_reuses_the_previous_inode() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    let plan = fx.plan(|_| Action::Link);
    let factory = fx.factory();
    let b2 = fx.second_backup(&plan, &b1, &factory);
    assert_same_as_source(&fx, "b2", &b2);
    assert_eq!(fx.shared_inodes("b1", "b2"), b2.files);
    assert_eq!(b2.files_linked, b2.files);
    assert_eq!(b2.bytes_linked, b2.bytes_total);
    assert_eq!((b2.bytes_written, b2.wire_bytes), (0, 0));
    assert_eq!(b2.manifest, b1.manifest);
}

#[test]
fn link_falls_back_to_fetch_when_the_previous_copy_is_missing() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    fs::remove_file(fx.backup("b1/data/PG_VERSION")).unwrap();
    let plan = fx.plan(|_| Action::Link);
    let b2 = fx
        .run(&plan, "b2", Some(("b1", &b1)), &fx.factory(), |_| {})
        .unwrap();
    assert_same_as_source(&fx, "b2", &b2);
    assert_eq!(b2.files_fetched, 1);
    assert_eq!(b2.files_linked, b2.files - 1);
    assert_eq!(b2.wire_bytes, 3);
}

#[test]
fn copy_previous_gives_a_new_inode_with_equal_content() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    // A corrupted previous copy is not reused: the file is fetched.
    fs::write(fx.backup("b1/data/PG_VERSION"), b"99\n").unwrap();
    let plan = fx.plan(|_| Action::CopyPrevious);
    let b2 = fx
        .run(&plan, "b2", Some(("b1", &b1)), &fx.factory(), |o| {
            o.reuse = Reuse::Copy;
        })
        .unwrap();
    assert_same_as_source(&fx, "b2", &b2);
    assert_eq!(fx.shared_inodes("b1", "b2"), 0);
    assert_eq!(b2.files_copied_locally, b2.files - 1);
    assert_eq!(b2.files_fetched, 1);
    assert_eq!(b2.bytes_written, b2.bytes_total);
    assert_eq!(b2.wire_bytes, 3);
}

#[test]
fn page_delta_fetches_only_the_changed_pages() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    let path = fx.pgdata().join(RELATION);
    let mut data = fs::read(&path).unwrap();
    // One page of 100 changes, and the file grows by one page.
    data[57 * PAGE_SIZE + 100] ^= 0xff;
    data.extend(noise(PAGE_SIZE, 9));
    fs::write(&path, &data).unwrap();
    let plan = fx.plan_with("data/base/5/16384", &Action::DeltaPages);
    let factory = fx.factory();
    let b2 = fx.second_backup(&plan, &b1, &factory);
    assert_same_as_source(&fx, "b2", &b2);
    assert_eq!(factory.pages_sent("data/base/5/16384"), [57, 100]);
    assert_eq!(b2.wire_bytes, 2 * PAGE_SIZE as u64);
    assert_eq!(b2.files_delta, 1);
    assert_eq!(b2.files_linked, b2.files - 1);
    assert_ne!(fx.inode("b2", RELATION), fx.inode("b1", RELATION));
    // The previous backup is untouched.
    assert_eq!(
        blake3::hash(&fs::read(fx.backup("b1/data").join(RELATION)).unwrap()),
        blake3::hash(&noise(100 * PAGE_SIZE, 1))
    );
}

#[test]
fn page_delta_of_a_shrunk_file() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    let path = fx.pgdata().join(RELATION);
    let data = fs::read(&path).unwrap();
    fs::write(&path, &data[..40 * PAGE_SIZE]).unwrap();
    let plan = fx.plan(|_| Action::DeltaPages);
    let factory = fx.factory();
    let b2 = fx.run(&plan, "b2", Some(("b1", &b1)), &factory, |o| {
        o.reuse = Reuse::Copy;
    });
    let b2 = b2.unwrap();
    assert_same_as_source(&fx, "b2", &b2);
    assert!(factory.pages_sent("data/base/5/16384").is_empty());
}

#[test]
fn rsync_delta_on_a_text_file() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    let path = fx.pgdata().join(CONF);
    let mut conf = fs::read(&path).unwrap();
    conf.splice(30_000..30_000, b"work_mem = '64MB'\n".iter().copied());
    conf.truncate(conf.len() - 500);
    fs::write(&path, &conf).unwrap();
    let plan = fx.plan_with("data/postgresql.conf", &Action::DeltaRsync);
    let factory = fx.factory();
    let b2 = fx.second_backup(&plan, &b1, &factory);
    assert_same_as_source(&fx, "b2", &b2);
    assert_eq!(b2.files_delta, 1);
    assert!(
        b2.wire_bytes < conf.len() as u64 / 4,
        "{} bytes on the wire for {}",
        b2.wire_bytes,
        conf.len()
    );
    assert_ne!(fx.inode("b2", CONF), fx.inode("b1", CONF));
}

#[test]
fn an_unchanged_delta_under_link_reuse_is_a_hard_link() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    let plan = fx.plan(|p| match p {
        "data/base/5/16384" => Action::DeltaPages,
        "data/postgresql.conf" => Action::DeltaRsync,
        _ => Action::Fetch,
    });
    let factory = fx.factory();
    let b2 = fx.second_backup(&plan, &b1, &factory);
    assert_same_as_source(&fx, "b2", &b2);
    for path in [RELATION, CONF] {
        assert_eq!(fx.inode("b2", path), fx.inode("b1", path), "{path}");
    }
    assert!(factory.pages_sent("data/base/5/16384").is_empty());
    // Nothing changed since b1: the two deltas and every file fetched whole
    // and found identical to its previous copy are hard links.
    assert_eq!(b2.files_linked, b2.files);
    assert_eq!(b2.bytes_written, 0);
    // Under copy reuse the unchanged file is a new one.
    let b3 = fx
        .run(&plan, "b3", Some(("b1", &b1)), &fx.factory(), |o| {
            o.reuse = Reuse::Copy;
        })
        .unwrap();
    assert_same_as_source(&fx, "b3", &b3);
    assert_eq!((b3.files_linked, b3.files_delta), (0, 2));
    assert_ne!(fx.inode("b3", RELATION), fx.inode("b1", RELATION));
}

#[test]
fn pg_control_is_copied_after_every_other_file() {
    let fx = Fixture::new();
    let factory = fx.factory();
    let plan = fx.plan(|_| Action::Fetch);
    let report = fx.run(&plan, "b1", None, &factory, |o| o.jobs = 4).unwrap();
    assert_same_as_source(&fx, "b1", &report);
    let events = factory.events();
    let control_start = events
        .iter()
        .position(|e| *e == Event::Start(CONTROL_FILE.to_owned()))
        .unwrap();
    let last_other_end = events
        .iter()
        .rposition(|e| matches!(e, Event::End(p) if p != CONTROL_FILE))
        .unwrap();
    assert!(control_start > last_other_end, "{events:?}");
    let reads = events.iter().filter(|e| !matches!(e, Event::Ahead(_)));
    assert_eq!(reads.count() as u64, 2 * report.files);
}

#[test]
fn four_jobs_give_the_same_backup_as_one() {
    let fx = Fixture::new();
    for i in 0..40 {
        fx.write(
            &format!("base/5/{}", 20000 + i),
            &noise(PAGE_SIZE * (i % 7 + 1), i as u64),
        );
    }
    let plan = fx.plan(|_| Action::Fetch);
    let one = fx
        .run(&plan, "one", None, &fx.factory(), |o| o.jobs = 1)
        .unwrap();
    let factory = fx.factory();
    let four = fx
        .run(&plan, "four", None, &factory, |o| o.jobs = 4)
        .unwrap();
    assert_same_as_source(&fx, "one", &one);
    assert_same_as_source(&fx, "four", &four);
    assert_eq!(one.manifest, four.manifest);
    assert_eq!((one.workers, four.workers), (1, 4));
    assert_eq!(factory.shared.sessions.load(Ordering::Relaxed), 4);
    assert_eq!(one.wire_bytes, four.wire_bytes);
}

#[test]
fn cancel_stops_with_no_temporary_file_left() {
    let fx = Fixture::new();
    for i in 0..20 {
        fx.write(&format!("base/5/{}", 30000 + i), &noise(PAGE_SIZE * 20, i));
    }
    let plan = fx.plan(|_| Action::Fetch);
    let cancel = Arc::new(AtomicBool::new(false));
    let factory = FakeFactory::with(
        fx.roots(),
        Shared {
            cancel_after: Some((5, cancel.clone())),
            ..Shared::default()
        },
    );
    let dest = fx.backup("b1");
    let result = execute(
        &plan,
        &factory,
        &dest,
        &ExecOptions {
            jobs: 3,
            ..ExecOptions::default()
        },
        &NoProgress,
        &cancel,
    );
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(temp_files(&dest).is_empty(), "{:?}", temp_files(&dest));
    assert!(!dest.join(CONTROL_FILE).exists());
    // Far from every chunk was read.
    assert!(factory.shared.chunks.load(Ordering::Relaxed) < 20);
}

#[test]
fn a_source_error_fails_the_copy_and_names_the_file() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    for jobs in [1, 4] {
        for action in [Action::Fetch, Action::DeltaPages] {
            let factory = FakeFactory::with(
                fx.roots(),
                Shared {
                    fail: Some("data/base/5/16384".to_owned()),
                    ..Shared::default()
                },
            );
            let plan = fx.plan(|_| action.clone());
            let name = format!("fail-{jobs}-{action:?}");
            let dest = fx.backup(&name);
            let result = fx.run(&plan, &name, Some(("b1", &b1)), &factory, |o| o.jobs = jobs);
            match result {
                Err(Error::Vanished { path }) => assert_eq!(path, "data/base/5/16384"),
                other => panic!("{other:?}"),
            }
            assert!(temp_files(&dest).is_empty(), "{:?}", temp_files(&dest));
            assert!(!dest.join(CONTROL_FILE).exists());
        }
    }
}

#[test]
fn a_file_inside_a_planned_symlink_is_refused() {
    let fx = Fixture::new();
    let mut plan = fx.plan(|_| Action::Fetch);
    let mut inside = plan
        .items
        .iter()
        .find(|i| i.entry.path.as_str() == "data/PG_VERSION")
        .unwrap()
        .clone();
    inside.entry.path = rel("data/pg_tblspc/16385/PG_VERSION");
    plan.items.push(inside);
    let result = fx.run(&plan, "b1", None, &fx.factory(), |_| {});
    assert!(
        matches!(result, Err(Error::UnsafePath { .. })),
        "{result:?}"
    );
}

#[test]
fn the_previous_backup_is_never_read_through_a_symlink() {
    let fx = Fixture::new();
    let b1 = fx.first_backup();
    // A directory of the previous backup replaced by a link elsewhere.
    let elsewhere = fx.dir.path().join("elsewhere");
    fs::rename(fx.backup("b1/data/base"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, fx.backup("b1/data/base")).unwrap();
    let plan = fx.plan(|_| Action::Link);
    let b2 = fx
        .run(&plan, "b2", Some(("b1", &b1)), &fx.factory(), |_| {})
        .unwrap();
    assert_same_as_source(&fx, "b2", &b2);
    assert_eq!(b2.files_fetched, 2);
    assert_ne!(fx.inode("b2", RELATION), ino(&elsewhere.join("5/16384")));
}

#[test]
fn bandwidth_limit_slows_the_copy_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pgdata");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("big"), noise(2 << 20, 7)).unwrap();
    let roots = Roots::from([("data".to_owned(), root.clone())]);
    let meta = fs::metadata(root.join("big")).unwrap();
    let entry = |path: &str, kind: EntryKind, size| Entry {
        path: rel(path),
        kind,
        size,
        mtime: Mtime::of(&meta),
        mode: 0o700,
    };
    let plan = CopyPlan {
        items: vec![
            PlanItem {
                entry: entry("data", EntryKind::Dir, 0),
                action: Action::Mkdir,
                reason: "test",
            },
            PlanItem {
                entry: entry("data/big", EntryKind::File, 2 << 20),
                action: Action::Fetch,
                reason: "test",
            },
        ],
    };
    let limits: [(Option<u64>, BTreeMap<String, u64>); 2] = [
        (Some(4 << 20), BTreeMap::new()),
        (None, BTreeMap::from([("data".to_owned(), 4 << 20)])),
    ];
    for (i, (bandwidth_limit, tree_limits)) in limits.into_iter().enumerate() {
        let started = Instant::now();
        let report = execute(
            &plan,
            &FakeFactory::new(roots.clone()),
            &dir.path().join(format!("b{i}")),
            &ExecOptions {
                bandwidth_limit,
                tree_limits,
                ..ExecOptions::default()
            },
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.bytes_total, 2 << 20);
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}

#[test]
fn an_empty_plan_opens_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let factory = FakeFactory::new(Roots::new());
    let report = execute(
        &CopyPlan::default(),
        &factory,
        &dir.path().join("b"),
        &ExecOptions::default(),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((report.files, report.workers), (0, 0));
    assert_eq!(report.manifest, Manifest::default());
    assert_eq!(factory.shared.sessions.load(Ordering::Relaxed), 0);
}

#[test]
fn small_fetches_are_announced_in_the_order_they_are_read() {
    let fx = Fixture::new();
    for i in 0..100 {
        fx.write(
            &format!("base/5/{}", 20000 + i),
            &noise(PAGE_SIZE * (i % 5 + 1), i as u64),
        );
    }
    let big = ["base/5/30000", "base/5/30001", "base/5/30002"];
    for (i, path) in big.iter().enumerate() {
        fx.write(path, &noise((2 << 20) + i, 100 + i as u64));
    }
    let plan = fx.plan(|_| Action::Fetch);
    let factory = fx.factory();
    let report = fx
        .run(&plan, "one", None, &factory, |o| o.jobs = 1)
        .unwrap();
    assert_same_as_source(&fx, "one", &report);
    let events = factory.events();
    let paths = |want: fn(&Event) -> Option<&String>| -> Vec<&str> {
        events.iter().filter_map(want).map(String::as_str).collect()
    };
    let announced = paths(|e| match e {
        Event::Ahead(p) => Some(p),
        _ => None,
    });
    let started = paths(|e| match e {
        Event::Start(p) => Some(p),
        _ => None,
    });
    let small: Vec<&str> = started
        .iter()
        .copied()
        .filter(|p| {
            fs::metadata(fx.source_path(&RelPath::new(*p).unwrap()))
                .unwrap()
                .len()
                <= 1 << 20
        })
        .filter(|p| *p != CONTROL_FILE)
        .collect();
    // Every small file but pg_control (copied last, alone) is announced
    // once, before it is read, in the order of the reads; large files never.
    assert_eq!(announced, small, "{events:?}");
    for path in &small {
        let ahead = events
            .iter()
            .position(|e| *e == Event::Ahead((*path).to_owned()));
        let start = events
            .iter()
            .position(|e| *e == Event::Start((*path).to_owned()));
        assert!(ahead < start, "{path}: {events:?}");
    }
    // Announcements run ahead of the reads: at the first small read, more
    // than one small file is in flight.
    let first_read = events
        .iter()
        .position(|e| *e == Event::Start(small[0].to_owned()))
        .unwrap();
    let in_flight = events[..first_read]
        .iter()
        .filter(|e| matches!(e, Event::Ahead(_)))
        .count();
    assert!(in_flight > 10, "{in_flight}: {events:?}");

    // With two jobs the large files are still shared between the workers
    // and the backup is the same.
    let two = fx
        .run(&plan, "two", None, &fx.factory(), |o| o.jobs = 2)
        .unwrap();
    assert_eq!(two.manifest, report.manifest);
}
