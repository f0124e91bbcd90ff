//! `list_tree` on real directories laid out like a PGDATA.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use barman_copy::listing::list_tree;
use barman_copy::{Entry, EntryKind, Error, Exclusions};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn mkdir(root: &Path, rel: &str) {
    fs::create_dir_all(root.join(rel)).unwrap();
}

fn paths(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn find<'a>(entries: &'a [Entry], path: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.path.as_str() == path)
        .unwrap_or_else(|| panic!("{path} not listed"))
}

/// A small data directory with one of everything the exclusions care about.
fn pgdata(root: &Path) {
    write(root, "PG_VERSION", b"17\n");
    write(root, "postgresql.auto.conf", b"");
    write(root, "postmaster.pid", b"1234\n");
    write(root, "postmaster.opts", b"postgres\n");
    write(root, "global/pg_control", &[0u8; 8192]);
    write(root, "global/1262", &[0u8; 8192]);
    write(root, "base/5/PG_VERSION", b"17\n");
    write(root, "base/5/16384", &[1u8; 8192]);
    write(root, "base/5/16384_fsm", &[1u8; 8192]);
    write(root, "base/5/16400", &[2u8; 8192]);
    write(root, "base/5/16400_fsm", &[2u8; 8192]);
    write(root, "base/5/16400_init", &[0u8; 8192]);
    write(root, "base/5/t3_16500", &[3u8; 8192]);
    write(root, "base/5/pgsql_tmp/pgsql_tmp1.0", b"sort");
    write(root, "pg_wal/000000010000000000000001", &[0u8; 1024]);
    write(
        root,
        "pg_wal/archive_status/000000010000000000000001.done",
        b"",
    );
    mkdir(root, "pg_wal/summaries");
    write(root, "pg_replslot/x/state", b"slot");
    write(root, "pg_stat_tmp/x", b"stats");
    mkdir(root, "pg_logical/snapshots");
    mkdir(root, "pg_tblspc");
    symlink("/some/dir", root.join("pg_tblspc/16385")).unwrap();
    // No standard filter applies: hidden files and .gitignore are ordinary.
    write(root, ".gitignore", b"*\n");
    write(root, ".hidden", b"x");
    // Temporary files of barman-rs (an earlier version's name and
    // today's) are left out of a backup.
    write(root, "base/5/.16384.barman-tmp", b"partial");
    write(root, ".PG_VERSION.4242.7.barman-tmp", b"partial");
}

#[test]
fn lists_a_pgdata_with_postgres_exclusions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pgdata");
    pgdata(&root);
    fs::set_permissions(root.join("base/5/16384"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(
        root.join("base/5/16384_fsm"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();

    let entries = list_tree(&root, "data", &Exclusions::postgres_default()).unwrap();
    assert_eq!(
        paths(&entries),
        [
            "data",
            "data/.gitignore",
            "data/.hidden",
            "data/PG_VERSION",
            "data/base",
            "data/base/5",
            "data/base/5/16384",
            "data/base/5/16384_fsm",
            "data/base/5/16400_init",
            "data/base/5/PG_VERSION",
            "data/global",
            "data/global/1262",
            "data/global/pg_control",
            "data/pg_logical",
            "data/pg_logical/snapshots",
            "data/pg_replslot",
            "data/pg_stat_tmp",
            "data/pg_tblspc",
            "data/pg_tblspc/16385",
            "data/pg_wal",
            "data/pg_wal/archive_status",
            "data/pg_wal/summaries",
            "data/postgresql.auto.conf",
        ]
    );

    let file = find(&entries, "data/base/5/16384");
    assert_eq!(file.kind, EntryKind::File);
    assert_eq!(file.size, 8192);
    assert_eq!(file.mode, 0o600);
    assert_eq!(find(&entries, "data/base/5/16384_fsm").mode, 0o640);
    let meta = fs::metadata(root.join("base/5/16384")).unwrap();
    assert_eq!(file.mtime, barman_copy::Mtime::of(&meta));

    let link = find(&entries, "data/pg_tblspc/16385");
    assert_eq!(
        link.kind,
        EntryKind::Symlink {
            target: "/some/dir".to_owned()
        }
    );
    assert_eq!(link.size, 0);

    let root_entry = find(&entries, "data");
    assert_eq!(root_entry.kind, EntryKind::Dir);
    assert_eq!(root_entry.size, 0);
    for dir in [
        "data/pg_wal",
        "data/pg_replslot",
        "data/pg_logical/snapshots",
    ] {
        assert_eq!(find(&entries, dir).kind, EntryKind::Dir, "{dir}");
    }
}

#[test]
fn without_exclusions_everything_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    pgdata(tmp.path());
    let entries = list_tree(tmp.path(), "data", &Exclusions::none()).unwrap();
    let listed = paths(&entries);
    for path in [
        "data/postmaster.pid",
        "data/base/5/16400",
        "data/base/5/16400_fsm",
        "data/base/5/t3_16500",
        "data/base/5/pgsql_tmp/pgsql_tmp1.0",
        "data/pg_wal/000000010000000000000001",
        "data/pg_stat_tmp/x",
        "data/pg_replslot/x/state",
        // A restore destination lists them: a delta restore removes them.
        "data/base/5/.16384.barman-tmp",
        "data/.PG_VERSION.4242.7.barman-tmp",
    ] {
        assert!(listed.contains(&path), "{path} missing");
    }
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted);
}

#[test]
fn symlinked_pg_wal_is_an_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pgdata");
    let wal = tmp.path().join("wal");
    write(&wal, "000000010000000000000001", b"wal");
    write(&wal, "archive_status/000000010000000000000001.ready", b"");
    fs::set_permissions(&wal, fs::Permissions::from_mode(0o700)).unwrap();
    mkdir(&root, "");
    symlink(&wal, root.join("pg_wal")).unwrap();
    // A link to a directory that is included stays a link, not followed.
    symlink(&wal, root.join("walcopy")).unwrap();
    // A dangling link is listed as a link.
    symlink("/nonexistent/target", root.join("dangling")).unwrap();

    let entries = list_tree(&root, "data", &Exclusions::postgres_default()).unwrap();
    assert_eq!(
        paths(&entries),
        ["data", "data/dangling", "data/pg_wal", "data/walcopy"]
    );
    let pg_wal = find(&entries, "data/pg_wal");
    assert_eq!(pg_wal.kind, EntryKind::Dir);
    assert_eq!(pg_wal.mode, 0o700);
    assert!(matches!(
        find(&entries, "data/walcopy").kind,
        EntryKind::Symlink { .. }
    ));
    assert_eq!(
        find(&entries, "data/dangling").kind,
        EntryKind::Symlink {
            target: "/nonexistent/target".to_owned()
        }
    );
}

#[test]
fn tablespace_tree_uses_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "PG_17_202406281/5/16390", &[0u8; 8192]);
    write(tmp.path(), "PG_17_202406281/5/pgsql_tmp/x", b"x");
    let entries = list_tree(tmp.path(), "16385", &Exclusions::postgres_default()).unwrap();
    assert_eq!(
        paths(&entries),
        [
            "16385",
            "16385/PG_17_202406281",
            "16385/PG_17_202406281/5",
            "16385/PG_17_202406281/5/16390",
        ]
    );
}

#[test]
fn bad_roots_and_names_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    assert!(matches!(
        list_tree(&missing, "data", &Exclusions::none()),
        Err(Error::Io { path, .. }) if path == missing
    ));
    write(tmp.path(), "file", b"x");
    assert!(matches!(
        list_tree(&tmp.path().join("file"), "data", &Exclusions::none()),
        Err(Error::Io { .. })
    ));
    for tree in ["", "a/b", "..", "/abs"] {
        assert!(
            matches!(
                list_tree(tmp.path(), tree, &Exclusions::none()),
                Err(Error::UnsafePath { .. })
            ),
            "{tree:?}"
        );
    }
}

#[test]
fn non_utf8_names_are_errors() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let tmp = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"bad\xffname");
    fs::write(tmp.path().join(name), b"x").unwrap();
    let err = list_tree(tmp.path(), "data", &Exclusions::none()).unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn unreadable_directory_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let locked = tmp.path().join("locked");
    write(&locked, "inside", b"x");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    // root can read anything: the test only means something for other users.
    let readable = fs::read_dir(&locked).is_ok();
    let result = list_tree(tmp.path(), "data", &Exclusions::none());
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    if !readable {
        assert!(
            matches!(result, Err(Error::Io { ref path, .. }) if path == &locked),
            "{result:?}"
        );
    }
}
