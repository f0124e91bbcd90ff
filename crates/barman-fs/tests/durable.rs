//! Temporary files and durable writes on a real file system: links planted
//! at the target are replaced, not followed; nothing is left behind on
//! failure or drop; modes are exact; no-replace installs never replace.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use barman_fs::{
    NoReplace, TempFile, TempPath, create_dir_secure, create_new, is_temp_name, remove_stale_temps,
    write_atomic, write_atomic_with,
};
use barman_testkit::catalog::read_names;

fn names(dir: &Path) -> Vec<String> {
    read_names(dir).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A directory with a victim file outside it.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    fs::write(&victim, b"untouched").unwrap();
    let dir = root.path().join("dest");
    fs::create_dir(&dir).unwrap();
    (root, dir, victim)
}

#[test]
fn a_link_at_the_target_is_replaced_never_followed() {
    let (_root, dir, victim) = setup();
    let target = dir.join("postgresql.conf");
    symlink(&victim, &target).unwrap();
    write_atomic(&target, b"new", 0o600).unwrap();
    assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");

    // A no-replace install leaves the link (and its target) alone.
    let wal = dir.join("000000010000000000000001");
    symlink(&victim, &wal).unwrap();
    let mut temp = TempFile::create(&wal, 0o600).unwrap();
    temp.write_all(b"wal").unwrap();
    let NoReplace::Exists(temp) = temp.commit_no_replace().unwrap() else {
        panic!("a link at the target was replaced");
    };
    let temp_path = temp.path().to_path_buf();
    drop(temp);
    assert!(!temp_path.exists());
    assert!(fs::symlink_metadata(&wal).unwrap().is_symlink());
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");
}

#[test]
fn create_new_refuses_a_planted_link_or_file() {
    let (_root, dir, victim) = setup();
    let path = dir.join(".x.barman-tmp");
    symlink(&victim, &path).unwrap();
    let err = create_new(&path, 0o600).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains(".x.barman-tmp"), "{err}");
    // A dangling link too (O_CREAT alone would create its target).
    let dangling = dir.join("dangling");
    let outside = dir.parent().unwrap().join("created-through-link");
    symlink(&outside, &dangling).unwrap();
    assert!(create_new(&dangling, 0o600).is_err());
    assert!(!outside.exists());
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");
}

#[test]
fn drop_and_failures_leave_nothing() {
    let (_root, dir, _) = setup();
    let target = dir.join("backup.info");
    let mut temp = TempFile::create(&target, 0o600).unwrap();
    temp.write_all(b"half").unwrap();
    assert_eq!(names(&dir).len(), 1);
    assert!(is_temp_name(&names(&dir)[0]), "{:?}", names(&dir));
    drop(temp);
    assert!(names(&dir).is_empty());

    // A failing fill: nothing at the target, no temporary file.
    let err = write_atomic_with(&target, 0o600, |w| {
        w.write_all(b"partial")?;
        Err(std::io::Error::other("boom"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(names(&dir).is_empty());

    // A failing rename (the target is a non-empty directory).
    let blocked = dir.join("blocked");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("inside"), b"x").unwrap();
    let err = write_atomic(&blocked, b"x", 0o600).unwrap_err();
    assert!(err.to_string().contains("blocked"), "{err}");
    assert_eq!(names(&dir), ["blocked"]);

    // A panic while writing (unwinding drops the temporary file).
    let panicked = std::panic::catch_unwind(|| {
        let mut temp = TempFile::create(dir.join("panics"), 0o600).unwrap();
        temp.write_all(b"x").unwrap();
        panic!("writer died");
    });
    assert!(panicked.is_err());
    assert_eq!(names(&dir), ["blocked"]);
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    let (_root, dir, _) = setup();
    for m in [0o600, 0o640, 0o644, 0o400] {
        let target = dir.join(format!("f{m:o}"));
        write_atomic(&target, b"x", m).unwrap();
        assert_eq!(mode(&target), m);
    }
    // Temporary files never carry special bits.
    let temp = TempFile::create(dir.join("setuid"), 0o4755).unwrap();
    assert_eq!(mode(temp.path()), 0o755);
    create_dir_secure(&dir.join("a/b/c")).unwrap();
    for d in ["a", "a/b", "a/b/c"] {
        assert_eq!(mode(&dir.join(d)), 0o700, "{d}");
    }
}

#[test]
fn commit_no_replace_installs_once() {
    let (_root, dir, _) = setup();
    let target = dir.join("000000010000000000000002");
    let mut first = TempFile::create(&target, 0o600).unwrap();
    first.write_all(b"first").unwrap();
    let mut second = TempFile::create(&target, 0o600).unwrap();
    second.write_all(b"second").unwrap();
    assert_ne!(first.path(), second.path(), "one temporary name per writer");
    assert!(matches!(
        first.commit_no_replace().unwrap(),
        NoReplace::Installed
    ));
    let NoReplace::Exists(second) = second.commit_no_replace().unwrap() else {
        panic!("replaced an installed file");
    };
    assert_eq!(fs::read(second.target()).unwrap(), b"first");
    drop(second);
    assert_eq!(names(&dir), ["000000010000000000000002"]);
}

#[test]
fn concurrent_writers_of_one_target_never_share_a_temporary_file() {
    let (_root, dir, _) = setup();
    let target = dir.join("000000010000000000000003");
    let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 64 << 10]).collect();
    let installed = std::thread::scope(|scope| {
        let handles: Vec<_> = contents
            .iter()
            .map(|content| {
                let target = &target;
                scope.spawn(move || {
                    let mut temp = TempFile::create(target, 0o600).unwrap();
                    for chunk in content.chunks(4096) {
                        temp.write_all(chunk).unwrap();
                    }
                    matches!(temp.commit_no_replace().unwrap(), NoReplace::Installed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&installed| installed)
            .count()
    });
    assert_eq!(installed, 1);
    let stored = fs::read(&target).unwrap();
    assert!(contents.contains(&stored), "a torn file was installed");
    assert_eq!(names(&dir), ["000000010000000000000003"]);
}

#[test]
fn hard_linked_temp_names() {
    let (_root, dir, victim) = setup();
    let target = dir.join("16384");
    let temp = TempPath::hard_link(&victim, &target).unwrap();
    assert!(is_temp_name(
        temp.path().file_name().unwrap().to_str().unwrap()
    ));
    temp.rename_unsynced().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
    let dropped = TempPath::hard_link(&victim, &dir.join("16385")).unwrap();
    let path = dropped.path().to_path_buf();
    drop(dropped);
    assert!(!path.exists());
    assert!(victim.exists(), "dropping a link removes the link only");
    assert_eq!(names(&dir), ["16384"]);
}

#[test]
fn stale_temporary_files_are_removed() {
    let (_root, dir, victim) = setup();
    for name in [
        ".xlog.db.4242.7.barman-tmp",
        ".xlog.db.barman-tmp",
        ".xlog.db.4242.1700000000.0.tmp",
        ".other.4242.7.barman-tmp",
        "xlog.db",
        ".xlog.db.bak",
    ] {
        fs::write(dir.join(name), b"x").unwrap();
    }
    // A stale temporary name holding a link: the link goes, not its target.
    symlink(&victim, dir.join(".xlog.db.99.1.barman-tmp")).unwrap();
    let mut removed: Vec<String> = remove_stale_temps(&dir, "xlog.db")
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ".xlog.db.4242.1700000000.0.tmp",
            ".xlog.db.4242.7.barman-tmp",
            ".xlog.db.99.1.barman-tmp",
            ".xlog.db.barman-tmp",
        ]
    );
    assert_eq!(
        names(&dir),
        [".other.4242.7.barman-tmp", ".xlog.db.bak", "xlog.db"]
    );
    assert_eq!(fs::read(&victim).unwrap(), b"untouched");
}
