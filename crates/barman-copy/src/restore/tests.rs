use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::*;
use crate::executor::{ExecOptions, execute};
use crate::local::LocalFactory;
use crate::plan::{CopyPlan, PlanOptions};
use crate::progress::NoProgress;

/// A backup of a small tree (data + one tablespace) made by the executor,
/// with its manifest.
fn backup(root: &Path) -> (std::path::PathBuf, Manifest) {
    let pgdata = root.join("pgdata");
    let ts = root.join("ts");
    fs::create_dir_all(pgdata.join("base/5")).unwrap();
    fs::create_dir_all(pgdata.join("global")).unwrap();
    fs::create_dir_all(pgdata.join("pg_tblspc")).unwrap();
    fs::create_dir_all(ts.join("PG_15/5")).unwrap();
    fs::write(pgdata.join("base/5/1259"), vec![7u8; 3 * 8192]).unwrap();
    fs::write(pgdata.join("base/5/1260"), b"small".repeat(1000)).unwrap();
    fs::write(pgdata.join("global/pg_control"), vec![1u8; 8192]).unwrap();
    fs::write(pgdata.join("PG_VERSION"), "15\n").unwrap();
    fs::write(ts.join("PG_15/5/16390"), vec![9u8; 2 * 8192]).unwrap();
    std::os::unix::fs::symlink(&ts, pgdata.join("pg_tblspc/16390")).unwrap();
    back_up(&pgdata, &ts, root.join("backup"))
}

/// Backs up `pgdata` (tree `data`) and `ts` (tree `16390`) with the
/// executor into `dir`; returns `dir` and the backup's manifest.
pub(crate) fn back_up(
    pgdata: &Path,
    ts: &Path,
    dir: std::path::PathBuf,
) -> (std::path::PathBuf, Manifest) {
    let roots: Roots = [
        ("data".to_owned(), pgdata.to_path_buf()),
        ("16390".to_owned(), ts.to_path_buf()),
    ]
    .into();
    let mut listing = crate::local::list(&roots, "data", &Exclusions::none()).unwrap();
    listing.extend(crate::local::list(&roots, "16390", &Exclusions::none()).unwrap());
    let plan = CopyPlan::compute(None, &listing, &PlanOptions::default());
    let report = execute(
        &plan,
        &LocalFactory::new(roots),
        &dir,
        &ExecOptions::default(),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    (dir, report.manifest)
}

fn dest_roots(root: &Path) -> Roots {
    [
        ("data".to_owned(), root.join("dest")),
        ("16390".to_owned(), root.join("newts")),
    ]
    .into()
}

fn run(
    manifest: &Manifest,
    dir: &Path,
    root: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    restore(
        manifest,
        dir,
        &LocalDestination::new(dest_roots(root)),
        options,
        &NoProgress,
        &AtomicBool::new(false),
    )
}

fn relocated() -> RestoreOptions {
    RestoreOptions {
        jobs: 2,
        symlink_targets: BTreeMap::from([(
            RelPath::new("data/pg_tblspc/16390").unwrap(),
            "/new/place".to_owned(),
        )]),
        ..RestoreOptions::default()
    }
}

#[test]
fn restores_every_file_and_relocates_links() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = backup(tmp.path());
    let report = run(&manifest, &dir, tmp.path(), &relocated()).unwrap();
    assert_eq!(report.files, 5);
    assert_eq!(report.files_written, 5);
    assert_eq!(report.files_reused, 0);
    let dest = tmp.path().join("dest");
    assert_eq!(
        fs::read(dest.join("base/5/1260")).unwrap(),
        b"small".repeat(1000)
    );
    assert_eq!(
        fs::read(dest.join("global/pg_control")).unwrap(),
        vec![1u8; 8192]
    );
    assert_eq!(
        fs::read(tmp.path().join("newts/PG_15/5/16390")).unwrap(),
        vec![9u8; 2 * 8192]
    );
    assert_eq!(
        fs::read_link(dest.join("pg_tblspc/16390")).unwrap(),
        Path::new("/new/place")
    );
    // The source's root is 0755 (the umask's): PostgreSQL would refuse it.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&tmp.path().join("pgdata")), 0o755);
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(
        mode(&dest.join("base")),
        mode(&tmp.path().join("pgdata/base"))
    );
}

#[test]
fn the_data_root_gets_postgres_modes() {
    for (backup, restored) in [
        (0o700, 0o700),
        (0o755, 0o700),
        (0o777, 0o700),
        (0o751, 0o700),
        (0o711, 0o700),
        (0o740, 0o700),
        (0o750, 0o750),
        (0o770, 0o750),
    ] {
        assert_eq!(data_root_mode(backup), restored, "{backup:o}");
    }
    // Group access (initdb --allow-group-access) is kept, also into an
    // existing 0755 directory; a tablespace root keeps its mode.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut manifest) = backup(tmp.path());
    for (path, mode) in [("data", 0o750), ("16390", 0o755)] {
        let mut root = manifest.get(&RelPath::new(path).unwrap()).unwrap().clone();
        root.mode = mode;
        manifest.insert(root);
    }
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
    run(&manifest, &dir, tmp.path(), &relocated()).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dest), 0o750);
    assert_eq!(mode(&tmp.path().join("newts")), 0o755);
}

/// Plants, in a destination, what an attacker (or a killed restore) left:
/// symbolic links at the temporary names earlier versions used, pointing
/// outside, and a stale temporary file. Returns the victim file.
fn plant(root: &Path) -> std::path::PathBuf {
    let victim = root.join("victim");
    fs::write(&victim, "untouched").unwrap();
    let dest = root.join("dest");
    fs::create_dir_all(dest.join("base/5")).unwrap();
    fs::create_dir_all(dest.join("global")).unwrap();
    for name in [
        ".PG_VERSION.barman-tmp",
        "base/5/.1259.barman-tmp",
        "global/.pg_control.barman-tmp",
    ] {
        std::os::unix::fs::symlink(&victim, dest.join(name)).unwrap();
    }
    fs::write(dest.join("base/5/.1260.4242.7.barman-tmp"), "stale").unwrap();
    victim
}

/// Every name under `dir` that is a temporary file of barman-rs.
fn temp_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if barman_fs::is_temp_name(&name) {
            out.push(name);
        } else if entry.file_type().unwrap().is_dir() {
            out.extend(temp_names(&entry.path()));
        }
    }
    out
}

#[test]
fn planted_temp_links_are_never_written_through_and_stale_temps_go() {
    for remote in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, manifest) = backup(tmp.path());
        let victim = plant(tmp.path());
        let dest = tmp.path().join("dest");
        let go = |options: &RestoreOptions| {
            if remote {
                run_remote(&manifest, &dir, tmp.path(), options)
            } else {
                run(&manifest, &dir, tmp.path(), options)
            }
        };
        // Without delta, a destination holding them is not empty.
        let err = go(&relocated()).unwrap_err();
        assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
        let options = RestoreOptions {
            delta: true,
            ..relocated()
        };
        let report = go(&options).unwrap();
        assert_eq!(report.files_written, 5, "{report:?}");
        assert_eq!(report.files_removed, 4, "{report:?}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(dest.join("PG_VERSION")).unwrap(), "15\n");
        assert!(
            !fs::symlink_metadata(dest.join("PG_VERSION"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            fs::read(dest.join("global/pg_control")).unwrap(),
            vec![1u8; 8192]
        );
        assert!(temp_names(&dest).is_empty(), "{:?}", temp_names(&dest));
    }
}

#[test]
fn refuses_a_non_empty_destination_without_delta() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = backup(tmp.path());
    fs::create_dir_all(tmp.path().join("dest")).unwrap();
    fs::write(tmp.path().join("dest/stray"), "x").unwrap();
    let err = run(&manifest, &dir, tmp.path(), &relocated()).unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("data/stray"), "{err}");
    // Nothing was written.
    assert!(!tmp.path().join("dest/base").exists());
}

#[test]
fn a_corrupted_backup_file_fails_naming_it_and_is_not_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = backup(tmp.path());
    let mut bytes = fs::read(dir.join("data/base/5/1259")).unwrap();
    bytes[8192 + 17] ^= 0xff;
    fs::write(dir.join("data/base/5/1259"), bytes).unwrap();
    let err = run(&manifest, &dir, tmp.path(), &relocated()).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("data/base/5/1259"), "{err}");
    assert!(!tmp.path().join("dest/base/5/1259").exists());
    // No temporary file left behind either.
    let left: Vec<_> = fs::read_dir(tmp.path().join("dest/base/5"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().contains("1259")),
        "{left:?}"
    );
}

#[test]
fn delta_restore_rewrites_only_what_differs_and_removes_extras() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = backup(tmp.path());
    run(&manifest, &dir, tmp.path(), &relocated()).unwrap();
    let dest = tmp.path().join("dest");
    // A stale copy: one file changed (same size), one removed, one added,
    // a directory where a file was.
    let mut changed = fs::read(dest.join("base/5/1259")).unwrap();
    changed[5] ^= 1;
    fs::write(dest.join("base/5/1259"), changed).unwrap();
    fs::remove_file(dest.join("PG_VERSION")).unwrap();
    fs::write(dest.join("base/5/99999"), "extra").unwrap();
    fs::remove_file(dest.join("base/5/1260")).unwrap();
    fs::create_dir_all(dest.join("base/5/1260/inner")).unwrap();
    let options = RestoreOptions {
        delta: true,
        ..relocated()
    };
    let report = run(&manifest, &dir, tmp.path(), &options).unwrap();
    assert_eq!(report.files_written, 3, "{report:?}");
    assert_eq!(report.files_reused, 2, "{report:?}");
    assert_eq!(report.files_removed, 1, "{report:?}");
    assert_eq!(
        fs::read(dest.join("base/5/1259")).unwrap(),
        vec![7u8; 3 * 8192]
    );
    assert_eq!(
        fs::read(dest.join("base/5/1260")).unwrap(),
        b"small".repeat(1000)
    );
    assert_eq!(fs::read_to_string(dest.join("PG_VERSION")).unwrap(), "15\n");
    assert!(!dest.join("base/5/99999").exists());
}

/// Sessions with agents served in threads over pipes (the remote path
/// without ssh).
struct InProcessAgents {
    roots: Roots,
    compress: bool,
}

impl DestinationFactory for InProcessAgents {
    fn open(&self) -> Result<Box<dyn Destination>> {
        let (agent_in, client_out) = std::io::pipe().unwrap();
        let (client_in, agent_out) = std::io::pipe().unwrap();
        std::thread::spawn(move || crate::agent::serve(agent_in, agent_out));
        Ok(Box::new(AgentSource::over(
            client_in,
            client_out,
            &self.roots,
            self.compress,
        )?))
    }
}

fn run_remote(
    manifest: &Manifest,
    dir: &Path,
    root: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    restore(
        manifest,
        dir,
        &InProcessAgents {
            roots: dest_roots(root),
            compress: true,
        },
        options,
        &NoProgress,
        &AtomicBool::new(false),
    )
}

#[test]
fn through_an_agent_restores_verifies_and_deltas_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = backup(tmp.path());
    let report = run_remote(&manifest, &dir, tmp.path(), &relocated()).unwrap();
    assert_eq!(report.files_written, 5);
    assert!(report.wire_bytes > 0);
    let dest = tmp.path().join("dest");
    assert_eq!(
        fs::read(dest.join("base/5/1259")).unwrap(),
        vec![7u8; 3 * 8192]
    );
    assert_eq!(
        fs::read_link(dest.join("pg_tblspc/16390")).unwrap(),
        Path::new("/new/place")
    );
    // Delta: one relation page changed (compared by page fingerprints on
    // the agent's side), one small file changed (hashed there).
    let mut changed = fs::read(dest.join("base/5/1259")).unwrap();
    changed[2 * 8192 + 1] ^= 1;
    fs::write(dest.join("base/5/1259"), changed).unwrap();
    fs::write(dest.join("PG_VERSION"), "16\n").unwrap();
    let options = RestoreOptions {
        delta: true,
        ..relocated()
    };
    let report = run_remote(&manifest, &dir, tmp.path(), &options).unwrap();
    assert_eq!(
        (report.files_written, report.files_reused),
        (2, 3),
        "{report:?}"
    );
    assert_eq!(
        fs::read(dest.join("base/5/1259")).unwrap(),
        vec![7u8; 3 * 8192]
    );
    assert_eq!(fs::read_to_string(dest.join("PG_VERSION")).unwrap(), "15\n");
    // A corrupted backup file is refused by the agent session too, and
    // the destination keeps its (right) copy.
    let mut bytes = fs::read(dir.join("data/base/5/1260")).unwrap();
    bytes[3] ^= 0xff;
    fs::write(dir.join("data/base/5/1260"), bytes).unwrap();
    fs::write(dest.join("base/5/1260"), "stale").unwrap();
    let err = run_remote(&manifest, &dir, tmp.path(), &options).unwrap_err();
    assert!(err.to_string().contains("data/base/5/1260"), "{err}");
    assert_eq!(fs::read(dest.join("base/5/1260")).unwrap(), b"stale");
}
