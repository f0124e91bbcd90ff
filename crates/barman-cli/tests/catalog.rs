//! Catalog management through the `barman` binary on synthetic catalogs
//! (real files, no PostgreSQL needed): `delete`, `keep` and `cron`'s
//! retention, with the expected outcomes written from Barman's rules
//! (BARMAN-BEHAVIOUR.md §4.2, §6).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use barman_core::catalog::{BackupInfo, BackupStatus, Identity};
use barman_testkit::catalog;
use jiff::{Timestamp, ToSpan as _, tz::TimeZone};

const DAY: i64 = 86_400;

/// A catalog under construction: one server `pg`, its home and config.
struct Catalog {
    dir: tempfile::TempDir,
}

/// One synthetic backup: id, status, end time (days ago), WAL range (segment numbers).
struct Spec {
    id: &'static str,
    status: BackupStatus,
    ended_days_ago: i64,
    begin_seg: u32,
    end_seg: u32,
}

fn seg(n: u32) -> String {
    format!("00000001{:08X}{:08X}", 0, n)
}

impl Catalog {
    fn new(server_options: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir_all(home.join("pg/wals/0000000100000000")).unwrap();
        fs::create_dir_all(home.join("pg/meta")).unwrap();
        fs::create_dir_all(home.join("pg/base")).unwrap();
        fs::create_dir_all(home.join("pg/incoming")).unwrap();
        fs::create_dir_all(home.join("pg/errors")).unwrap();
        fs::create_dir_all(home.join("pg/streaming")).unwrap();
        Identity::new("7710844591821430748", "15")
            .write(&home.join("pg/identity.json"))
            .unwrap();
        let conf = format!(
            "[barman]\nbarman_home = {}\nlog_file = {}\nlog_level = DEBUG\n\n[pg]\ndescription = test\n\
             conninfo = host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=1\n\
             backup_method = local-rsync\nbackup_options = concurrent_backup\narchiver = on\n{server_options}\n",
            home.display(),
            dir.path().join("barman.log").display()
        );
        fs::write(dir.path().join("barman.conf"), conf).unwrap();
        Self { dir }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("barman.conf")
    }

    fn srv(&self) -> PathBuf {
        self.dir.path().join("home/pg")
    }

    /// Archives segments `0..count` (fake 64-byte files) with xlog.db lines.
    fn wals(&self, count: u32) {
        use std::fmt::Write as _;
        let mut xlog = String::new();
        for n in 0..count {
            let name = seg(n);
            let path = self.srv().join("wals/0000000100000000").join(&name);
            fs::write(&path, [u8::try_from(n % 256).unwrap(); 64]).unwrap();
            writeln!(xlog, "{name}\t64\t{}.5\tNone\tNone", 1_790_000_000 + n).unwrap();
        }
        fs::write(self.srv().join("wals/pg-xlog.db"), xlog).unwrap();
    }

    fn backup(&self, spec: &Spec) {
        let id = spec.id.parse().unwrap();
        let mut info = BackupInfo::new("pg", id);
        info.set_status(spec.status);
        info.set_mode(Some("rsync-concurrent")).unwrap();
        let end = Timestamp::now() - (spec.ended_days_ago * DAY).seconds();
        let zoned = end.to_zoned(TimeZone::UTC);
        info.set_begin_time(Some(&zoned));
        info.set_end_time(Some(&zoned));
        info.set_begin_wal(Some(&seg(spec.begin_seg))).unwrap();
        info.set_end_wal(Some(&seg(spec.end_seg))).unwrap();
        info.set_timeline(Some(1));
        info.set_size(Some(100));
        info.set_deduplicated_size(Some(100));
        info.write(&barman_core::ServerLayout::new(self.srv()))
            .unwrap();
        let data = self.srv().join("base").join(spec.id).join("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("PG_VERSION"), "15\n").unwrap();
    }

    fn backup_ids(&self) -> Vec<String> {
        catalog::backup_ids(&self.srv().join("meta")).unwrap()
    }

    /// xlog.db names, and the files present in wals/<hash>/.
    fn wal_state(&self) -> (Vec<String>, Vec<String>) {
        let xlog =
            catalog::xlog_names(&fs::read_to_string(self.srv().join("wals/pg-xlog.db")).unwrap());
        let files = catalog::names_in(&self.srv().join("wals/0000000100000000"));
        (xlog, files)
    }

    fn barman(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::cargo_bin("barman")
            .unwrap()
            .env_remove("HOME")
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// Every file under the home (path → content), for "nothing changed".
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    out.insert(p.strip_prefix(root).unwrap().to_path_buf(), Vec::new());
                    walk(&p, root, out);
                } else if !p.to_string_lossy().ends_with(".lock") {
                    out.insert(
                        p.strip_prefix(root).unwrap().to_path_buf(),
                        fs::read(&p).unwrap(),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.srv(), &self.srv(), &mut out);
        out
    }
}

fn done(id: &'static str, ended_days_ago: i64, begin_seg: u32, end_seg: u32) -> Spec {
    Spec {
        id,
        status: BackupStatus::Done,
        ended_days_ago,
        begin_seg,
        end_seg,
    }
}

fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(seg).collect()
}

#[test]
fn recovery_window_keeps_the_newest_backup_before_the_point_of_recoverability() {
    let c = Catalog::new("retention_policy = RECOVERY WINDOW OF 1 WEEKS\nminimum_redundancy = 1");
    c.wals(20);
    // end_time on both sides of the window (PoR = now - 7 days).
    for spec in [
        done("20261101T000000", 20, 2, 3),
        done("20261111T000000", 10, 5, 6),
        done("20261113T000000", 8, 8, 9),
        done("20261118T000000", 3, 12, 13),
        done("20261120T000000", 1, 16, 17),
    ] {
        c.backup(&spec);
    }
    let (code, stdout, stderr) = c.barman(&["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // By §6.3: 1 and 3 days are inside the window (VALID); 8 days is the
    // newest ending before the PoR (VALID: needed to recover to it); 10 and
    // 20 days are older than that one: OBSOLETE (minimum_redundancy 1 is
    // already met), deleted oldest first.
    assert!(
        stdout
            .contains("Enforcing retention policy: removing backup 20261101T000000 for server pg"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("Enforcing retention policy: removing backup 20261111T000000 for server pg"),
        "{stdout}"
    );
    assert_eq!(
        c.backup_ids(),
        ["20261113T000000", "20261118T000000", "20261120T000000"]
    );
    assert!(!c.srv().join("base/20261101T000000").exists());
    assert!(!c.srv().join("base/20261111T000000").exists());
    // §4.2: the WALs before the begin_wal of the oldest remaining backup go.
    let (xlog, files) = c.wal_state();
    assert_eq!(xlog, names(8..20));
    assert_eq!(files, names(8..20));
    // A second cron has nothing left to do.
    let (code, stdout, _) = c.barman(&["cron"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("Enforcing"), "{stdout}");
}

#[test]
fn redundancy_with_a_standalone_keep_protects_its_wal_range() {
    let c = Catalog::new("retention_policy = REDUNDANCY 2\nminimum_redundancy = 1");
    c.wals(20);
    for spec in [
        done("20261101T000000", 5, 1, 2),
        done("20261102T000000", 4, 4, 5),
        done("20261103T000000", 3, 7, 8),
        done("20261104T000000", 2, 11, 12),
        done("20261105T000000", 1, 15, 16),
    ] {
        c.backup(&spec);
    }
    let (code, _, stderr) = c.barman(&["keep", "pg", "20261102T000000", "--target", "standalone"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = c.barman(&["keep", "pg", "20261102T000000", "--status"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Keep: standalone"), "{stdout}");
    let (code, stdout, stderr) = c.barman(&["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // REDUNDANCY 2: 05 and 04 VALID; 03 OBSOLETE; 02 KEEP:STANDALONE (uses
    // a slot); 01 OBSOLETE.
    assert_eq!(
        c.backup_ids(),
        ["20261102T000000", "20261104T000000", "20261105T000000"]
    );
    // Deleting 01: nothing older, next is 02: WALs before 02's begin go.
    // Deleting 03 by retention: 02 is keep:standalone, so its range 4..=5
    // is protected and the WALs before 04's begin (11) go.
    let expected: Vec<String> = names(4..6).into_iter().chain(names(11..20)).collect();
    let (xlog, files) = c.wal_state();
    assert_eq!(xlog, expected);
    assert_eq!(files, expected);

    // Released, 02 is OBSOLETE (third newest) and its range goes too.
    let (code, _, stderr) = c.barman(&["keep", "pg", "20261102T000000", "--release"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = c.barman(&["keep", "pg", "20261102T000000", "--status"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Keep: nokeep"), "{stdout}");
    let (code, stdout, stderr) = c.barman(&["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(c.backup_ids(), ["20261104T000000", "20261105T000000"]);
    let (xlog, files) = c.wal_state();
    assert_eq!(xlog, names(11..20));
    assert_eq!(files, names(11..20));
}

#[test]
fn manual_delete_removes_wals_and_recomputes_the_next_backups_sizes() {
    let c = Catalog::new("minimum_redundancy = 1");
    c.wals(10);
    c.backup(&done("20261101T000000", 3, 2, 3));
    c.backup(&done("20261102T000000", 2, 5, 6));
    // The second backup hard-links a file of the first (reuse_backup = link).
    let shared = c.srv().join("base/20261101T000000/data/base_file");
    fs::write(&shared, vec![7u8; 4096]).unwrap();
    fs::hard_link(&shared, c.srv().join("base/20261102T000000/data/base_file")).unwrap();
    let (code, stdout, stderr) = c.barman(&["delete", "pg", "oldest"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Deleting backup 20261101T000000 for server pg"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Delete associated WAL segments:"),
        "{stdout}"
    );
    assert_eq!(c.backup_ids(), ["20261102T000000"]);
    assert!(!c.srv().join("meta/20261101T000000-delete_this").exists());
    let (xlog, files) = c.wal_state();
    assert_eq!(xlog, names(5..10));
    assert_eq!(files, names(5..10));
    // The link is now the only one: the next backup's deduplicated size counts it.
    let kept = c.srv().join("base/20261102T000000/data/base_file");
    assert_eq!(fs::metadata(&kept).unwrap().nlink(), 1);
    let info = fs::read_to_string(c.srv().join("meta/20261102T000000-backup.info")).unwrap();
    let size = 4096 + 3; // base_file + PG_VERSION
    assert!(
        info.contains(&format!("\ndeduplicated_size={size}\n")),
        "{info}"
    );
    assert!(info.contains(&format!("\nsize={size}\n")), "{info}");
}

#[test]
fn refused_deletes_and_keeps_change_nothing() {
    let c = Catalog::new("minimum_redundancy = 2");
    c.wals(10);
    c.backup(&done("20261101T000000", 3, 2, 3));
    c.backup(&done("20261102T000000", 2, 5, 6));
    c.backup(&Spec {
        id: "20261103T000000",
        status: BackupStatus::Failed,
        ended_days_ago: 1,
        begin_seg: 8,
        end_seg: 8,
    });
    fs::write(c.srv().join("meta/20261102T000000-keep"), "full").unwrap();
    let before = c.snapshot();

    let (code, _, stderr) = c.barman(&["delete", "pg", "20261199T000000"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("Unknown backup '20261199T000000'"),
        "{stderr}"
    );

    let (code, _, stderr) = c.barman(&["delete", "pg", "20261130T000000"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Unknown backup"), "{stderr}");

    let (code, _, stderr) = c.barman(&["delete", "pg", "20261102T000000"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("as it has a current keep request"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Cannot delete backup (pg 20261102T000000)"),
        "{stderr}"
    );

    let (code, _, stderr) = c.barman(&["delete", "pg", "20261101T000000"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("due to minimum redundancy requirements (minimum redundancy = 2, current redundancy = 2)"),
        "{stderr}"
    );

    let (code, _, stderr) = c.barman(&["keep", "pg", "20261103T000000", "--target", "full"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("because it has status FAILED"), "{stderr}");

    let (code, _, stderr) = c.barman(&["keep", "pg", "20261101T000000"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--target, --release or --status"),
        "{stderr}"
    );

    let (code, _, stderr) = c.barman(&["keep", "pg", "nosuchname", "--status"]);
    assert_eq!(code, 1, "{stderr}");

    assert_eq!(
        c.snapshot(),
        before,
        "a refused command changed the catalog"
    );

    // A FAILED backup is deleted without minimum-redundancy objections.
    let (code, _, stderr) = c.barman(&["delete", "pg", "20261103T000000"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(c.backup_ids(), ["20261101T000000", "20261102T000000"]);
}

#[test]
fn cron_finishes_an_interrupted_delete() {
    let c = Catalog::new("");
    c.wals(10);
    c.backup(&done("20261101T000000", 3, 2, 3));
    c.backup(&done("20261102T000000", 2, 5, 6));
    // A delete killed after its marker and part of the data.
    fs::write(c.srv().join("meta/20261101T000000-delete_this"), "delete").unwrap();
    fs::remove_file(c.srv().join("base/20261101T000000/data/PG_VERSION")).unwrap();
    let (code, stdout, stderr) = c.barman(&["check", "pg"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "\tinterrupted deletes: FAILED (the delete of backup 20261101T000000 was interrupted"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = c.barman(&["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Finishing the interrupted delete of backup 20261101T000000"),
        "{stdout}"
    );
    assert_eq!(c.backup_ids(), ["20261102T000000"]);
    assert!(!c.srv().join("base/20261101T000000").exists());
    assert!(!c.srv().join("meta/20261101T000000-delete_this").exists());
    let (xlog, files) = c.wal_state();
    assert_eq!(xlog, names(5..10));
    assert_eq!(files, names(5..10));
    // A marker left after backup.info was removed is cleaned too.
    fs::write(c.srv().join("meta/20261102T000000-delete_this"), "delete").unwrap();
    fs::remove_file(c.srv().join("meta/20261102T000000-backup.info")).unwrap();
    let (code, stdout, stderr) = c.barman(&["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!c.srv().join("meta/20261102T000000-delete_this").exists());
    assert!(!c.srv().join("base/20261102T000000").exists());
}

#[test]
fn cron_marks_interrupted_backups_failed_and_check_reports_them() {
    let c = Catalog::new("");
    c.wals(4);
    c.backup(&Spec {
        id: "20261101T000000",
        status: BackupStatus::Started,
        ended_days_ago: 0,
        begin_seg: 2,
        end_seg: 2,
    });
    let (_, stdout, _) = c.barman(&["check", "pg"]);
    assert!(
        stdout.contains(
            "\tfailed backups: FAILED (there are 1 failed backups, 1 of them interrupted"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = c.barman(&["cron"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Backup 20261101T000000 of server pg was interrupted: marked FAILED"),
        "{stdout}"
    );
    let info = fs::read_to_string(c.srv().join("meta/20261101T000000-backup.info")).unwrap();
    assert!(info.contains("\nstatus=FAILED\n"), "{info}");
    assert!(info.contains("error=failure interrupted"), "{info}");
}

#[test]
fn a_delete_with_no_wal_bound_keeps_the_wals_while_a_backup_is_in_progress() {
    let c = Catalog::new("");
    c.wals(6);
    let layout = barman_core::ServerLayout::new(c.srv());
    // A FAILED backup that never got a begin_wal, and one EMPTY (in progress).
    for (id, status) in [
        ("20261101T000000", BackupStatus::Failed),
        ("20261102T000000", BackupStatus::Empty),
    ] {
        let mut info = BackupInfo::new("pg", id.parse().unwrap());
        info.set_status(status);
        info.write(&layout).unwrap();
        fs::create_dir_all(c.srv().join("base").join(id)).unwrap();
    }
    let (code, stdout, stderr) = c.barman(&["delete", "pg", "20261101T000000"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(c.backup_ids(), ["20261102T000000"]);
    // Barman would remove every WAL here (no lower bound): they stay.
    let (xlog, files) = c.wal_state();
    assert_eq!(xlog, names(0..6));
    assert_eq!(files, names(0..6));
}
