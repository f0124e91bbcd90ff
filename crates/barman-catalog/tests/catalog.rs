//! Catalog compatibility tests against a real Barman 3.20.1 catalog
//! (tests/fixtures/barman-3.20.1, copied from /work/shared/fixtures).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barman_catalog::Error;
use barman_catalog::fs::{append_durable, create_dir_secure, write_atomic};
use barman_catalog::{
    BackupId, BackupInfo, BackupStatus, Catalog, Identity, KeepTarget, LockKind, PyValue,
    ServerLayout, Tablespace, XlogDb, XlogEntry, acquire_blocking, read_keep, read_owner,
    remove_keep, try_acquire, write_keep,
};
use jiff::Zoned;

const FIRST: &str = "20261122T041510";
const SECOND: &str = "20261122T041536";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/barman-3.20.1")
}

fn fixture_server() -> PathBuf {
    fixture_dir().join("catalog/pg")
}

fn id(s: &str) -> BackupId {
    s.parse().unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- backup.info

#[test]
fn fixture_backup_info_round_trips_byte_identically() {
    let layout = ServerLayout::new(fixture_server());
    let out = tempfile::tempdir().unwrap();
    for backup in [FIRST, SECOND] {
        let path = layout.backup_info_path(&id(backup));
        let original = fs::read(&path).unwrap();
        let info = BackupInfo::read(&layout, &id(backup)).unwrap();
        assert_eq!(info.origin(), Some(path.as_path()));
        assert_eq!(
            info.to_file_string().as_bytes(),
            original.as_slice(),
            "{backup}"
        );
        let target = out.path().join(format!("{backup}-backup.info"));
        info.write_to(&target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), original, "{backup}");
    }
}

#[test]
fn fixture_backup_info_typed_fields() {
    let layout = ServerLayout::new(fixture_server());
    let info = BackupInfo::read(&layout, &id(FIRST)).unwrap();
    assert_eq!(info.status().unwrap(), BackupStatus::Done);
    assert_eq!(info.begin_wal(), Some("000000010000000000000003"));
    assert_eq!(info.end_xlog(), Some("0/3000100"));
    assert_eq!(info.begin_offset().unwrap(), Some(40));
    assert_eq!(info.timeline().unwrap(), Some(1));
    assert_eq!(info.version().unwrap(), Some(150_018));
    assert_eq!(info.systemid(), Some("7710844591821430748"));
    assert_eq!(info.size().unwrap(), Some(54_605_825));
    assert_eq!(info.xlog_segment_size().unwrap(), 16_777_216);
    assert_eq!(info.mode(), Some("rsync-concurrent"));
    assert_eq!(info.backup_type(), "rsync");
    assert_eq!(info.tablespaces().unwrap(), None);
    assert_eq!(info.error(), None);
    assert_eq!(info.backup_name(), None);
    let begin = info.begin_time().unwrap().unwrap();
    assert_eq!(begin.timestamp().as_microsecond(), 1_795_320_910_863_835);
    assert_eq!(begin.offset().seconds(), 0);
    let label = info.backup_label().unwrap().unwrap();
    assert!(
        label.starts_with(
            "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nCHECKPOINT"
        )
    );
    assert!(label.ends_with("START TIMELINE: 1\n"));
    let stats = info.copy_stats().unwrap().unwrap();
    assert_eq!(stats.get("number_of_workers"), Some(&PyValue::Int(1)));
    let PyValue::Float(total) = stats.get("total_time").unwrap() else {
        panic!("total_time not a float")
    };
    assert!((total.value() - 0.415_365).abs() < 1e-12);
}

const HANDWRITTEN: &str = "\
backup_label='START WAL LOCATION: 0/5000028 (file 000000020000000000000005)\\nLABEL: it\\'s \"quoted\"\\n'
backup_name=nightly before upgrade
begin_offset=40
begin_time=2024-09-01 10:30:00.123456+02:00
begin_wal=000000020000000000000005
begin_xlog=0/5000028
children_backup_ids=20240902T103000,20240903T103000
cluster_size=None
compression=None
config_file=/etc/postgresql/16/main/postgresql.conf
copy_stats={'copy_time': 1.5, 'number_of_workers': 2, 'per_item': {'pgdata': 1e-05}}
data_checksums=on
deduplicated_size=None
encryption=None
end_offset=None
end_time=2024-09-01 10:31:02-05:30
end_wal=None
end_xlog=None
error=failure copy (rsync error: connection reset)
hba_file=/etc/postgresql/16/main/pg_hba.conf
ident_file=/etc/postgresql/16/main/pg_ident.conf
included_files=['/etc/postgresql/16/main/conf.d/tuning.conf', \"/etc/it's.conf\"]
mode=postgres
parent_backup_id=20240831T103000
pgdata=/var/lib/postgresql/16/main
server_name=main
size=None
status=FAILED
summarize_wal=off
systemid=7400000000000000001
tablespaces=[('tbs1', 16384, '/srv/tbs1'), ('tbs2', 16385, \"/srv/it's\")]
timeline=2
version=160004
xlog_segment_size=16777216
";

#[test]
fn handwritten_backup_info_round_trips_and_setters_reproduce_it() {
    let path = Path::new("/catalog/meta/20240901T103000-backup.info");
    let info = BackupInfo::parse(HANDWRITTEN, id("20240901T103000"), path).unwrap();
    assert_eq!(info.to_file_string(), HANDWRITTEN);

    assert_eq!(info.status().unwrap(), BackupStatus::Failed);
    assert_eq!(
        info.error(),
        Some("failure copy (rsync error: connection reset)")
    );
    assert_eq!(info.backup_name(), Some("nightly before upgrade"));
    assert_eq!(
        info.tablespaces().unwrap().unwrap(),
        vec![
            Tablespace {
                name: "tbs1".into(),
                oid: 16384,
                location: "/srv/tbs1".into()
            },
            Tablespace {
                name: "tbs2".into(),
                oid: 16385,
                location: "/srv/it's".into()
            },
        ]
    );
    assert_eq!(
        info.included_files().unwrap().unwrap(),
        vec![
            "/etc/postgresql/16/main/conf.d/tuning.conf".to_owned(),
            "/etc/it's.conf".to_owned()
        ]
    );
    assert_eq!(
        info.children_backup_ids().unwrap().unwrap(),
        vec![id("20240902T103000"), id("20240903T103000")]
    );
    assert_eq!(
        info.parent_backup_id().unwrap(),
        Some(id("20240831T103000"))
    );
    assert!(info.is_incremental());
    assert_eq!(info.backup_type(), "incremental");
    let end = info.end_time().unwrap().unwrap();
    assert_eq!(end.offset().seconds(), -(5 * 3600 + 30 * 60));
    assert_eq!(end.datetime().to_string(), "2024-09-01T10:31:02");
    assert_eq!(
        info.backup_label().unwrap().unwrap(),
        "START WAL LOCATION: 0/5000028 (file 000000020000000000000005)\nLABEL: it's \"quoted\"\n"
    );
    assert_eq!(info.end_wal(), None);
    assert_eq!(info.size().unwrap(), None);

    // Building the same backup through the typed setters gives the same bytes.
    let mut built = BackupInfo::new("main", id("20240901T103000"));
    built.set_backup_label(Some(&info.backup_label().unwrap().unwrap()));
    built
        .set_backup_name(Some("nightly before upgrade"))
        .unwrap();
    built.set_begin_offset(Some(40));
    built.set_begin_time(Some(&info.begin_time().unwrap().unwrap()));
    built
        .set_begin_wal(Some("000000020000000000000005"))
        .unwrap();
    built.set_begin_xlog(Some("0/5000028")).unwrap();
    built.set_children_backup_ids(&[id("20240902T103000"), id("20240903T103000")]);
    built
        .set_config_file(Some("/etc/postgresql/16/main/postgresql.conf"))
        .unwrap();
    built.set_copy_stats(Some(
        &PyValue::parse(
            "{'copy_time': 1.5, 'number_of_workers': 2, 'per_item': {'pgdata': 1e-05}}",
        )
        .unwrap(),
    ));
    built.set_data_checksums(Some("on")).unwrap();
    built.set_end_time(Some(&end));
    built
        .set_error(Some("failure copy (rsync error: connection reset)"))
        .unwrap();
    built
        .set_hba_file(Some("/etc/postgresql/16/main/pg_hba.conf"))
        .unwrap();
    built
        .set_ident_file(Some("/etc/postgresql/16/main/pg_ident.conf"))
        .unwrap();
    built.set_included_files(&info.included_files().unwrap().unwrap());
    built.set_mode(Some("postgres")).unwrap();
    built.set_parent_backup_id(Some(&id("20240831T103000")));
    built
        .set_pgdata(Some("/var/lib/postgresql/16/main"))
        .unwrap();
    built.set_status(BackupStatus::Failed);
    built.set_summarize_wal(Some("off")).unwrap();
    built.set_systemid(Some("7400000000000000001")).unwrap();
    built.set_tablespaces(&info.tablespaces().unwrap().unwrap());
    built.set_timeline(Some(2));
    built.set_version(Some(160_004));
    assert_eq!(built.to_file_string(), HANDWRITTEN);
}

#[test]
fn new_backup_info_is_empty_with_defaults_and_hides_null_name() {
    let info = BackupInfo::new("pg", id("20240901T103000"));
    let text = info.to_file_string();
    assert_eq!(
        text.lines().count(),
        33,
        "35 known keys minus backup_name and snapshots_info"
    );
    assert!(text.contains("\nstatus=EMPTY\n"));
    assert!(text.contains("\nserver_name=pg\n"));
    assert!(text.ends_with("xlog_segment_size=16777216\n"));
    assert!(text.contains("\nerror=None\n"));
    assert!(!text.contains("backup_name") && !text.contains("snapshots_info"));
    let keys: Vec<&str> = text.lines().map(|l| l.split_once('=').unwrap().0).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
}

#[test]
fn backup_info_read_accepts_comments_blanks_and_naive_times() {
    let text = "# written by hand\n\nstatus = DONE\nbegin_time=2024-09-01 10:30:00\nerror=a=b\n";
    let info = BackupInfo::parse(text, id("20240901T103000"), Path::new("x")).unwrap();
    assert_eq!(info.status().unwrap(), BackupStatus::Done);
    assert_eq!(info.error(), Some("a=b"), "split on the first `=` only");
    let begin = info.begin_time().unwrap().unwrap();
    let expected = jiff::civil::datetime(2024, 9, 1, 10, 30, 0, 0)
        .to_zoned(jiff::tz::TimeZone::system())
        .unwrap();
    assert_eq!(
        begin.timestamp(),
        expected.timestamp(),
        "naive timestamps are local time"
    );
}

#[test]
fn unknown_key_error_names_file_line_and_key() {
    let path = Path::new("/srv/pg/meta/20240901T103000-backup.info");
    let text = "status=DONE\n# comment\nshiny_new_field=1\n";
    let err = BackupInfo::parse(text, id("20240901T103000"), path).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownBackupInfoKey { line: 3, key, .. } if key == "shiny_new_field")
    );
    let msg = err.to_string();
    assert!(
        msg.contains("/srv/pg/meta/20240901T103000-backup.info:3"),
        "{msg}"
    );
    assert!(
        msg.contains("shiny_new_field") && msg.contains("newer version of Barman"),
        "{msg}"
    );

    let err = BackupInfo::parse("status=DONE\nno equals sign\n", id("20240901T103000"), path)
        .unwrap_err();
    assert!(
        err.to_string().contains("20240901T103000-backup.info:2"),
        "{err}"
    );
}

#[test]
fn invalid_typed_values_are_errors_naming_the_key() {
    let info = BackupInfo::parse(
        "timeline=two\nstatus=BROKEN\n",
        id("20240901T103000"),
        Path::new("f.info"),
    )
    .unwrap();
    let err = info.timeline().unwrap_err().to_string();
    assert!(
        err.contains("f.info") && err.contains("timeline") && err.contains("two"),
        "{err}"
    );
    assert!(info.status().is_err());
    let mut info = BackupInfo::new("pg", id("20240901T103000"));
    assert!(info.set_begin_wal(Some("00000001000000000000000")).is_err());
    assert!(info.set_end_xlog(Some("0-3000028")).is_err());
    assert!(info.set_error(Some("two\nlines")).is_err());
    assert!(info.set_raw("no_such_key", Some("1")).is_err());
}

#[test]
fn backup_info_json_matches_barman_diagnose() {
    let text = fs::read_to_string(fixture_dir().join("outputs/diagnose.json")).unwrap();
    // Barman printed a WARNING line before the JSON document.
    let diagnose: serde_json::Value =
        serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let layout = ServerLayout::new(fixture_server());
    for backup in [FIRST, SECOND] {
        let info = BackupInfo::read(&layout, &id(backup)).unwrap();
        let expected = &diagnose["servers"]["pg"]["backups"][backup];
        assert!(expected.is_object());
        assert_eq!(&info.to_json().unwrap(), expected, "{backup}");
    }
}

#[test]
fn handwritten_backup_info_json_forms() {
    let info = BackupInfo::parse(HANDWRITTEN, id("20240901T103000"), Path::new("x")).unwrap();
    let json = info.to_json().unwrap();
    assert_eq!(
        json["tablespaces"],
        serde_json::json!([["tbs1", 16384, "/srv/tbs1"], ["tbs2", 16385, "/srv/it's"]])
    );
    assert_eq!(json["included_files"][1], "/etc/it's.conf");
    assert_eq!(
        json["children_backup_ids"],
        "20240902T103000,20240903T103000"
    );
    assert_eq!(json["end_time"], "2024-09-01T10:31:02-05:30");
    assert_eq!(json["copy_stats"]["per_item"]["pgdata"], 1e-05);
    assert_eq!(json["backup_name"], "nightly before upgrade");
    assert_eq!(json["timeline"], 2);
    assert!(json.get("snapshots_info").is_none());
}

#[test]
fn backup_info_write_goes_to_meta_atomically_with_mode_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = ServerLayout::new(tmp.path().join("pg"));
    let mut info = BackupInfo::new("pg", id("20240901T103000"));
    let path = info.write(&layout).unwrap();
    assert_eq!(
        path,
        layout.meta_directory().join("20240901T103000-backup.info")
    );
    assert_eq!(mode_of(&path), 0o600);
    info.set_status(BackupStatus::Started);
    info.write(&layout).unwrap();
    assert_eq!(
        dir_entries(layout.meta_directory()),
        vec!["20240901T103000-backup.info"]
    );
    let back = BackupInfo::read(&layout, &id("20240901T103000")).unwrap();
    assert_eq!(back.status().unwrap(), BackupStatus::Started);
}

// ---------------------------------------------------------------- catalog, layout

#[test]
fn layout_paths_follow_barman() {
    let l = ServerLayout::new("/home/barman/pg");
    let b = id(FIRST);
    assert_eq!(
        l.backup_info_path(&b),
        Path::new("/home/barman/pg/meta/20261122T041510-backup.info")
    );
    assert_eq!(
        l.legacy_backup_info_path(&b),
        Path::new("/home/barman/pg/base/20261122T041510/backup.info")
    );
    assert_eq!(
        l.keep_path(&b),
        Path::new("/home/barman/pg/meta/20261122T041510-keep")
    );
    assert_eq!(
        l.legacy_keep_path(&b),
        Path::new("/home/barman/pg/base/20261122T041510/annotations/keep")
    );
    assert_eq!(
        l.delete_marker_path(&b),
        Path::new("/home/barman/pg/meta/20261122T041510-delete_this")
    );
    assert_eq!(
        l.xlogdb_path("pg"),
        Path::new("/home/barman/pg/wals/pg-xlog.db")
    );
    assert_eq!(
        l.wal_path(&"000000010000000000000003".parse().unwrap()),
        Path::new("/home/barman/pg/wals/0000000100000000/000000010000000000000003")
    );
    assert_eq!(
        l.wal_path(&"00000002.history".parse().unwrap()),
        Path::new("/home/barman/pg/wals/00000002.history")
    );
    assert_eq!(
        l.identity_path(),
        Path::new("/home/barman/pg/identity.json")
    );
    let l = l.with_xlogdb_directory("/var/xlogdb");
    assert_eq!(l.xlogdb_path("pg"), Path::new("/var/xlogdb/pg-xlog.db"));
}

#[test]
fn layout_ensure_creates_dirs_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = ServerLayout::new(tmp.path().join("home/pg"));
    layout.ensure().unwrap();
    for dir in [
        "home",
        "home/pg",
        "home/pg/base",
        "home/pg/wals",
        "home/pg/meta",
        "home/pg/incoming",
        "home/pg/streaming",
        "home/pg/errors",
    ] {
        let p = tmp.path().join(dir);
        assert!(p.is_dir(), "{dir}");
        assert_eq!(mode_of(&p), 0o700, "{dir}");
    }
    layout.ensure().unwrap();
}

#[test]
fn catalog_lists_both_locations_meta_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = ServerLayout::new(tmp.path().join("pg"));
    layout.ensure().unwrap();
    let mut legacy_only = BackupInfo::new("pg", id("20240101T000000"));
    legacy_only.set_status(BackupStatus::Done);
    let legacy_dir = layout.backup_dir(&id("20240101T000000"));
    create_dir_secure(&legacy_dir).unwrap();
    legacy_only
        .write_to(&layout.legacy_backup_info_path(&id("20240101T000000")))
        .unwrap();

    // Both locations for one id: meta/ must win.
    let both = id("20240301T000000");
    create_dir_secure(&layout.backup_dir(&both)).unwrap();
    let mut old = BackupInfo::new("pg", both.clone());
    old.set_status(BackupStatus::Failed);
    old.write_to(&layout.legacy_backup_info_path(&both))
        .unwrap();
    let mut new = BackupInfo::new("pg", both.clone());
    new.set_status(BackupStatus::Done);
    new.write(&layout).unwrap();
    BackupInfo::new("pg", id("20240201T000000"))
        .write(&layout)
        .unwrap();
    fs::write(layout.meta_directory().join("garbage-backup.info"), "x").unwrap();

    let catalog = Catalog::open(layout.clone(), "pg");
    let backups = catalog.backups().unwrap();
    let ids: Vec<&str> = backups.iter().map(|b| b.backup_id().as_str()).collect();
    assert_eq!(
        ids,
        ["20240101T000000", "20240201T000000", "20240301T000000"]
    );
    assert_eq!(backups[2].status().unwrap(), BackupStatus::Done);
    assert_eq!(
        catalog
            .backup(&id("20240101T000000"))
            .unwrap()
            .status()
            .unwrap(),
        BackupStatus::Done
    );
    let missing = catalog.backup(&id("20250101T000000")).unwrap_err();
    assert!(matches!(missing, Error::BackupNotFound { .. }));
}

#[test]
fn catalog_over_fixture() {
    let catalog = Catalog::open(ServerLayout::new(fixture_server()), "pg");
    let backups = catalog.backups().unwrap();
    assert_eq!(backups.len(), 2);
    assert_eq!(backups[0].backup_id().as_str(), FIRST);
    assert_eq!(catalog.xlogdb().read().unwrap().len(), 6);
    let identity = catalog.identity().unwrap().unwrap();
    assert_eq!(identity.systemid, "7710844591821430748");
    assert_eq!(identity.version, "15");
    assert_eq!(
        catalog.keep(&id(FIRST)).unwrap(),
        Some(KeepTarget::Standalone)
    );
    assert_eq!(catalog.keep(&id(SECOND)).unwrap(), None);
}

// ---------------------------------------------------------------- ids and statuses

#[test]
fn backup_ids_and_statuses() {
    assert!("20240901T103000".parse::<BackupId>().is_ok());
    for bad in [
        "20240901 103000",
        "2024090T1103000",
        "20241301T103000",
        "20240901T256000",
        "latest",
        "",
    ] {
        assert!(bad.parse::<BackupId>().is_err(), "{bad}");
    }
    assert!(id("20240901T103000") < id("20241001T000000"));
    let z: Zoned = "2024-09-01T10:30:05+02:00[+02:00]".parse().unwrap();
    assert_eq!(BackupId::from_timestamp(&z).to_string(), "20240901T103005");
    for s in BackupStatus::ALL {
        assert_eq!(s.to_string().parse::<BackupStatus>().unwrap(), s);
    }
    assert_eq!(BackupStatus::WaitingForWals.to_string(), "WAITING_FOR_WALS");
    assert!("done".parse::<BackupStatus>().is_err());
}

// ---------------------------------------------------------------- fs helpers

#[test]
fn write_atomic_leaves_no_temp_and_sets_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("file");
    write_atomic(&path, b"one", 0o600).unwrap();
    write_atomic(&path, b"two", 0o600).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(mode_of(&path), 0o600);
    write_atomic(&path, b"three", 0o640).unwrap();
    assert_eq!(mode_of(&path), 0o640);
    assert_eq!(dir_entries(tmp.path()), vec!["file"]);

    let err =
        barman_catalog::fs::write_atomic_with(&path, 0o600, |_| Err(std::io::Error::other("boom")))
            .unwrap_err();
    assert!(err.to_string().contains("boom"));
    assert_eq!(
        dir_entries(tmp.path()),
        vec!["file"],
        "failed write removes its temp file"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        b"three",
        "failed write keeps the old content"
    );

    let err = write_atomic(&tmp.path().join("missing/file"), b"x", 0o600).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn append_durable_appends_and_creates_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log");
    append_durable(&path, "a\n").unwrap();
    append_durable(&path, "b\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb\n");
    assert_eq!(mode_of(&path), 0o600);
}

// ---------------------------------------------------------------- xlog.db

#[test]
fn fixture_xlogdb_round_trips_byte_identically() {
    let path = fixture_server().join("wals/pg-xlog.db");
    let original = fs::read_to_string(&path).unwrap();
    let entries = XlogDb::new(&path).read().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[1].name, "000000010000000000000003.00000028.backup");
    assert_eq!(entries[1].size, 345);
    assert!((entries[0].time.value() - 1_795_320_911.307_755_7).abs() < 1e-6);
    assert_eq!(entries[0].compression, None);
    assert_eq!(XlogDb::render(&entries), original);

    let tmp = tempfile::tempdir().unwrap();
    let copy = XlogDb::new(tmp.path().join("pg-xlog.db"));
    copy.rewrite(&entries).unwrap();
    assert_eq!(fs::read_to_string(copy.path()).unwrap(), original);
    assert_eq!(mode_of(copy.path()), 0o600);
    assert_eq!(dir_entries(tmp.path()), vec!["pg-xlog.db"]);
}

#[test]
fn xlogdb_reads_old_column_counts_and_writes_five() {
    let text = "000000010000000000000001\t16777216\t1700000000.5\n\
                000000010000000000000002 16777216 1700000001.25 gzip\n\
                00000002.history\t42\t1700000002.0\tNone\tNone\n\
                000000020000000000000003\t1234\t1700000003.125\tzstd\tgpg\n";
    let entries = XlogDb::parse(text, Path::new("pg-xlog.db")).unwrap();
    assert_eq!(entries[0].compression, None);
    assert_eq!(entries[1].compression.as_deref(), Some("gzip"));
    assert_eq!(entries[1].encryption, None);
    assert_eq!(entries[3].encryption.as_deref(), Some("gpg"));
    assert_eq!(
        XlogDb::render(&entries),
        "000000010000000000000001\t16777216\t1700000000.5\tNone\tNone\n\
         000000010000000000000002\t16777216\t1700000001.25\tgzip\tNone\n\
         00000002.history\t42\t1700000002.0\tNone\tNone\n\
         000000020000000000000003\t1234\t1700000003.125\tzstd\tgpg\n"
    );
}

#[test]
fn xlogdb_malformed_line_names_file_and_line() {
    let text = "000000010000000000000001\t16777216\t1700000000.5\tNone\tNone\n000000010000000000000002\tbig\t1.0\n";
    let err = XlogDb::parse(text, Path::new("/srv/pg/wals/pg-xlog.db")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/srv/pg/wals/pg-xlog.db:2") && msg.contains("big"),
        "{msg}"
    );
    for bad in [
        "000000010000000000000002\t1",
        "not-a-wal\t1\t1.0",
        "000000010000000000000002\t1\tsoon",
        "a b c d e f",
    ] {
        assert!(XlogDb::parse(bad, Path::new("x")).is_err(), "{bad}");
    }
}

#[test]
fn xlogdb_accepts_every_archive_name_and_rejects_others() {
    let text = "00000002.history\t42\t1.0\n\
                000000010000000000000003.00000028.backup\t300\t1.0\n\
                000000010000000000000003.partial\t16777216\t1.0\n\
                0000000100000000000000a3\t16777216\t1.0\n";
    let entries = XlogDb::parse(text, Path::new("x")).unwrap();
    // Names are kept exactly as written (lower case too) for round trips.
    assert_eq!(entries[3].name, "0000000100000000000000a3");
    assert_eq!(
        XlogDb::render(&entries).len(),
        text.len() + 4 * "\tNone\tNone".len()
    );
    for bad in [
        "00000002.history.tmp",
        "0000000100000000000000GG",
        "000000010000000000000003.0000028.backup",
        "00000000.history",
    ] {
        let line = format!("{bad}\t1\t1.0\n");
        let msg = XlogDb::parse(&line, Path::new("/w/pg-xlog.db"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/w/pg-xlog.db:1") && msg.contains(&format!("`{bad}`")),
            "{msg}"
        );
    }
}

#[test]
fn wal_path_hashes_segments_partials_and_labels() {
    let l = ServerLayout::new("/b/pg");
    for (name, expected) in [
        (
            "000000010000000200000003.partial",
            "/b/pg/wals/0000000100000002/000000010000000200000003.partial",
        ),
        (
            "000000010000000200000003.00000028.backup",
            "/b/pg/wals/0000000100000002/000000010000000200000003.00000028.backup",
        ),
        (
            "0000000a0000000b000000cc",
            "/b/pg/wals/0000000A0000000B/0000000A0000000B000000CC",
        ),
    ] {
        assert_eq!(l.wal_path(&name.parse().unwrap()), Path::new(expected));
    }
}

#[test]
fn wal_and_lsn_setters_use_barman_wal_rules() {
    let mut info = BackupInfo::new("pg", id("20240901T103000"));
    info.set_begin_wal(Some("000000010000000000000003"))
        .unwrap();
    assert_eq!(info.begin_wal(), Some("000000010000000000000003"));
    info.set_end_xlog(Some("16/b374d848")).unwrap();
    assert_eq!(info.end_xlog(), Some("16/b374d848"));
    // Timeline 0 does not exist in PostgreSQL; barman-wal refuses it.
    let err = info
        .set_end_wal(Some("000000000000000000000003"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("000000000000000000000003"), "{err}");
    assert!(info.set_begin_xlog(Some("0/123456789")).is_err());
    assert_eq!(info.begin_xlog(), None);
}

#[test]
fn xlogdb_append_and_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    let db = XlogDb::new(tmp.path().join("pg-xlog.db"));
    assert!(db.read().unwrap().is_empty());
    let mut e = XlogEntry::new(
        "000000010000000000000001",
        16_777_216,
        1_795_320_911.307_755_7,
    );
    db.append(&e).unwrap();
    e.name = "000000010000000000000002".into();
    e.compression = Some("gzip".into());
    db.append(&e).unwrap();
    assert_eq!(
        fs::read_to_string(db.path()).unwrap(),
        "000000010000000000000001\t16777216\t1795320911.3077557\tNone\tNone\n\
         000000010000000000000002\t16777216\t1795320911.3077557\tgzip\tNone\n"
    );
    let entries = db.read().unwrap();
    db.rewrite(&entries[1..]).unwrap();
    assert_eq!(db.read().unwrap(), entries[1..]);
}

// ---------------------------------------------------------------- identity, keep

#[test]
fn identity_round_trips() {
    let path = fixture_server().join("identity.json");
    let original = fs::read_to_string(&path).unwrap();
    let identity = Identity::read(&path).unwrap().unwrap();
    assert_eq!(identity.to_file_string(), original);
    assert_eq!(
        Identity::new("7710844591821430748", "15").to_file_string(),
        original
    );

    let numeric = "{\n    \"systemid\": \"1\",\n    \"version\": 17\n}\n";
    let id17 = Identity::parse(numeric, Path::new("identity.json")).unwrap();
    assert_eq!(id17.version, "17");
    assert_eq!(id17.to_file_string(), numeric);

    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("identity.json");
    assert!(Identity::read(&target).unwrap().is_none());
    identity.write(&target).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), original);
    assert!(Identity::parse("[1]", Path::new("identity.json")).is_err());
}

#[test]
fn keep_marks() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = ServerLayout::new(tmp.path().join("pg"));
    let b = id(FIRST);
    assert_eq!(read_keep(&layout, &b).unwrap(), None);
    write_keep(&layout, &b, KeepTarget::Standalone).unwrap();
    let written = fs::read(layout.keep_path(&b)).unwrap();
    assert_eq!(
        written,
        fs::read(fixture_server().join("meta/20261122T041510-keep")).unwrap()
    );
    assert_eq!(written, b"standalone");
    assert_eq!(
        read_keep(&layout, &b).unwrap(),
        Some(KeepTarget::Standalone)
    );
    assert!(remove_keep(&layout, &b).unwrap());
    assert!(!remove_keep(&layout, &b).unwrap());

    // Legacy location.
    let legacy = layout.legacy_keep_path(&b);
    create_dir_secure(legacy.parent().unwrap()).unwrap();
    fs::write(&legacy, "full\n").unwrap();
    assert_eq!(read_keep(&layout, &b).unwrap(), Some(KeepTarget::Full));
    fs::write(&legacy, "forever").unwrap();
    let err = read_keep(&layout, &b).unwrap_err().to_string();
    assert!(
        err.contains("annotations/keep") && err.contains("forever"),
        "{err}"
    );
    assert!(remove_keep(&layout, &b).unwrap());
    assert!(!legacy.exists());
}

// ---------------------------------------------------------------- locks

#[test]
fn lock_names_follow_barman() {
    let b = id(FIRST);
    let names: Vec<String> = [
        LockKind::Cron,
        LockKind::ConfigUpdate,
        LockKind::ServerCron("pg".into()),
        LockKind::Backup("pg".into()),
        LockKind::ArchiveWal("pg".into()),
        LockKind::ReceiveWal("pg".into()),
        LockKind::XlogDb("pg".into()),
        LockKind::BackupId("pg".into(), b.clone()),
        LockKind::SyncBackup("pg".into(), b),
        LockKind::SyncWal("pg".into()),
    ]
    .iter()
    .map(LockKind::file_name)
    .collect();
    assert_eq!(
        names,
        [
            ".cron.lock",
            ".config-update.lock",
            ".pg-cron.lock",
            ".pg-backup.lock",
            ".pg-archive-wal.lock",
            ".pg-receive-wal.lock",
            ".pg-xlogdb.lock",
            ".pg-20261122T041510.lock",
            ".pg-20261122T041510-sync-backup.lock",
            ".pg-sync-wal.lock",
        ]
    );
}

#[test]
fn lock_is_exclusive_within_a_process() {
    let tmp = tempfile::tempdir().unwrap();
    let kind = LockKind::Backup("pg".into());
    let guard = try_acquire(tmp.path(), &kind).unwrap();
    let path = guard.path().to_path_buf();
    assert_eq!(path, tmp.path().join(".pg-backup.lock"));
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    assert_eq!(read_owner(&path), Some(std::process::id()));

    let err = try_acquire(tmp.path(), &kind).unwrap_err();
    assert!(
        matches!(&err, Error::LockBusy { path: p, pid: Some(pid) } if *p == path && *pid == std::process::id()),
        "{err:?}"
    );
    // Another kind is independent.
    let _other = try_acquire(tmp.path(), &LockKind::XlogDb("pg".into())).unwrap();

    drop(guard);
    assert_eq!(
        read_owner(&path),
        None,
        "a released lock has no owner even if a pid is left"
    );
    let again = try_acquire(tmp.path(), &kind).unwrap();
    drop(again);
    let _blocking = acquire_blocking(tmp.path(), &kind).unwrap();
}

#[test]
fn lock_held_by_another_process_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let kind = LockKind::ArchiveWal("pg".into());
    let path = kind.path(tmp.path());
    let mut child = Command::new("/usr/bin/flock")
        .args(["-x", "-o"])
        .arg(&path)
        .args(["sh", "-c", "echo locked; sleep 5"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) is needed for this test");
    // Wait until the child holds the lock (it prints once locked).
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 7];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"locked\n");

    let err = try_acquire(tmp.path(), &kind).unwrap_err();
    assert!(matches!(err, Error::LockBusy { .. }), "{err:?}");

    // A blocking acquire waits for the child to finish.
    let started = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let guard = acquire_blocking(tmp.path(), &kind).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(read_owner(guard.path()), Some(std::process::id()));
}

// ---------------------------------------------------------------- python literals

#[test]
fn python_repr_matches_cpython() {
    // Expected values printed by CPython 3.11's repr().
    let cases: [(&str, &str); 11] = [
        ("a", "'a'"),
        ("it's", "\"it's\""),
        ("say \"hi\"", "'say \"hi\"'"),
        ("both ' and \"", "'both \\' and \"'"),
        ("tab\there\nnl\r", "'tab\\there\\nnl\\r'"),
        ("\\back", "'\\\\back'"),
        ("\x00\x1f\x7f", "'\\x00\\x1f\\x7f'"),
        (
            "caf\u{e9} \u{a0}nbsp \u{ad} shy",
            "'caf\u{e9} \\xa0nbsp \\xad shy'",
        ),
        (
            "\u{2028}ls \u{200b}zw \u{e000}pua",
            "'\\u2028ls \\u200bzw \\ue000pua'",
        ),
        ("\u{1F600} emoji", "'\u{1F600} emoji'"),
        ("\u{85} nel \u{9f}", "'\\x85 nel \\x9f'"),
    ];
    for (value, repr) in cases {
        assert_eq!(PyValue::Str(value.into()).to_repr(), repr, "{value:?}");
        assert_eq!(
            PyValue::parse(repr).unwrap(),
            PyValue::Str(value.into()),
            "{repr}"
        );
    }
    let floats: [(f64, &str); 10] = [
        (0.152_235, "0.152235"),
        (1_795_320_911.307_755_7, "1795320911.3077557"),
        (1e16, "1e+16"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (123_456_789_012_345_678.0, "1.2345678901234568e+17"),
        (1.5e-7, "1.5e-07"),
        (-0.0, "-0.0"),
        (2.0, "2.0"),
        (0.1 + 0.2, "0.30000000000000004"),
    ];
    for (value, repr) in floats {
        assert_eq!(barman_catalog::python::float_repr(value), repr);
    }
    let nested = "{'a': (1,), 'b': [None, True, False, -3, 2.5], 'c': {}, 'd': ()}";
    assert_eq!(PyValue::parse(nested).unwrap().to_repr(), nested);
}

#[test]
fn python_parse_accepts_literal_eval_forms() {
    let v = PyValue::parse(
        " ( 'a' , u\"b\" , r'c\\d', 0x10, -  7, .5, 3., 1_000, 'x\\101\\u00e9\\U0001F600' ) ",
    )
    .unwrap();
    assert_eq!(
        v.to_repr(),
        "('a', 'b', 'c\\\\d', 16, -7, .5, 3., 1000, 'xA\u{e9}\u{1F600}')"
    );
    assert_eq!(PyValue::parse("(5)").unwrap(), PyValue::Int(5));
    assert_eq!(PyValue::parse("[1, 2,]").unwrap().to_repr(), "[1, 2]");
    for bad in [
        "'open", "[1, 2", "{1 2}", "foo", "'''x'''", "1 2", "'\\x4'", "007", "{'a': }",
    ] {
        assert!(PyValue::parse(bad).is_err(), "{bad}");
    }
    let deep = "[".repeat(500) + &"]".repeat(500);
    assert!(
        PyValue::parse(&deep).is_err(),
        "deep nesting is refused, not a stack overflow"
    );
}

mod props {
    use barman_catalog::PyValue;
    use barman_catalog::python::{PyFloat, float_repr, str_repr};
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = PyValue> {
        prop_oneof![
            Just(PyValue::None),
            any::<bool>().prop_map(PyValue::Bool),
            any::<i64>().prop_map(|i| PyValue::Int(i128::from(i))),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| PyValue::Float(PyFloat::new(f))),
            any::<String>().prop_map(PyValue::Str),
        ]
    }

    fn value() -> impl Strategy<Value = PyValue> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(PyValue::List),
                prop::collection::vec(inner.clone(), 0..4).prop_map(PyValue::Tuple),
                prop::collection::vec((any::<String>().prop_map(PyValue::Str), inner), 0..4)
                    .prop_map(PyValue::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn str_repr_round_trips(s in any::<String>()) {
            let repr = str_repr(&s);
            prop_assert_eq!(PyValue::parse(&repr).unwrap(), PyValue::Str(s));
        }

        #[test]
        fn quote_heavy_strings_round_trip(s in "[a'\"\\\\\n\t\r\u{0}-\u{1f}\u{7f}-\u{a0}é€\u{2028}\u{1F600}]{0,20}") {
            let repr = str_repr(&s);
            prop_assert_eq!(PyValue::parse(&repr).unwrap(), PyValue::Str(s));
        }

        #[test]
        fn values_round_trip_byte_identically(v in value()) {
            let repr = v.to_repr();
            let parsed = PyValue::parse(&repr).unwrap();
            prop_assert_eq!(parsed.to_repr(), repr);
        }

        #[test]
        fn float_repr_round_trips_the_value(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = float_repr(f);
            prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), f.to_bits());
        }
    }
}
