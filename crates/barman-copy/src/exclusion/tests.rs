use super::*;

use Exclusion::{Exclude, ExcludeContents, Include};

fn check(exclusions: &Exclusions, cases: &[(&str, bool, Exclusion)]) {
    for &(path, is_dir, expected) in cases {
        assert_eq!(
            exclusions.is_excluded(Path::new(path), is_dir),
            expected,
            "{path} (dir: {is_dir})"
        );
    }
}

#[test]
fn ordinary_data_directory_entries_are_included() {
    check(
        &Exclusions::postgres_default(),
        &[
            ("PG_VERSION", false, Include),
            ("postgresql.conf", false, Include),
            ("postgresql.auto.conf", false, Include),
            ("current_logfiles", false, Include),
            ("base", true, Include),
            ("base/16384", true, Include),
            ("base/16384/16400", false, Include),
            ("base/16384/16400_fsm", false, Include),
            ("base/16384/PG_VERSION", false, Include),
            ("global/pg_control", false, Include),
            ("global/1262", false, Include),
            ("pg_xact/0000", false, Include),
            ("pg_multixact/offsets/0000", false, Include),
            ("pg_tblspc", true, Include),
            ("pg_tblspc/16385", false, Include),
            (
                "pg_tblspc/16385/PG_15_202209061/16384/16401",
                false,
                Include,
            ),
            ("pg_logical/snapshots", true, Include),
            ("log/postgresql.log", false, Include),
            ("", true, Include),
            (".", true, Include),
        ],
    );
}

#[test]
fn temporary_files_are_excluded_at_any_depth() {
    check(
        &Exclusions::postgres_default(),
        &[
            ("base/pgsql_tmp", true, Exclude),
            ("base/pgsql_tmp/pgsql_tmp1234.0", false, Exclude),
            ("base/16384/pgsql_tmp", true, Exclude),
            ("base/16384/pgsql_tmp/x", false, Exclude),
            (
                "pg_tblspc/16385/PG_15_202209061/pgsql_tmp/pgsql_tmp99.1",
                false,
                Exclude,
            ),
            ("pgsql_tmp_anything", false, Exclude),
            (".DS_Store", false, Exclude),
            ("base/16384/.DS_Store", false, Exclude),
        ],
    );
}

#[test]
fn every_excluded_file_name_is_excluded_anywhere() {
    let exclusions = Exclusions::postgres_default();
    for name in [
        "postgresql.auto.conf.tmp",
        "current_logfiles.tmp",
        "backup_label",
        "tablespace_map",
        "backup_manifest",
        "postmaster.pid",
        "postmaster.opts",
    ] {
        check(
            &exclusions,
            &[
                (name, false, Exclude),
                (&format!("global/{name}"), false, Exclude),
            ],
        );
    }
    // Exact names only: a longer name is an ordinary file.
    check(
        &exclusions,
        &[
            ("backup_label.old", false, Include),
            ("postmaster.pid.bak", false, Include),
            ("tablespace_map.old", false, Include),
        ],
    );
}

#[test]
fn relcache_init_files_are_excluded_by_prefix() {
    check(
        &Exclusions::postgres_default(),
        &[
            ("global/pg_internal.init", false, Exclude),
            ("base/16384/pg_internal.init", false, Exclude),
            ("base/16384/pg_internal.init.12345", false, Exclude),
            ("base/16384/pg_filenode.map", false, Include),
        ],
    );
}

#[test]
fn temporary_relations_are_excluded_only_in_database_directories() {
    check(
        &Exclusions::postgres_default(),
        &[
            ("base/16384/t3_16400", false, Exclude),
            ("base/16384/t3_16400_fsm", false, Exclude),
            ("base/16384/t3_16400.1", false, Exclude),
            (
                "pg_tblspc/16385/PG_15_202209061/16384/t7_16500_vm",
                false,
                Exclude,
            ),
            ("PG_16_202307071/16384/t7_16500", false, Exclude),
            // Not a database directory: kept.
            ("global/t3_16400", false, Include),
            ("base/t3_16400", false, Include),
            ("t3_16400", false, Include),
            // Not a temporary relation name.
            ("base/16384/t3_16400_main", false, Include),
            ("base/16384/t_16400", false, Include),
        ],
    );
}

#[test]
fn directories_whose_contents_are_excluded_are_kept_empty() {
    let exclusions = Exclusions::postgres_default();
    for dir in [
        "pg_stat_tmp",
        "pg_replslot",
        "pg_dynshmem",
        "pg_notify",
        "pg_serial",
        "pg_snapshots",
        "pg_subtrans",
    ] {
        check(
            &exclusions,
            &[
                (dir, true, ExcludeContents),
                (&format!("{dir}/file"), false, Exclude),
                (&format!("{dir}/sub"), true, Exclude),
                (&format!("{dir}/sub/deeper"), false, Exclude),
                // A non-directory with that name is left out.
                (dir, false, Exclude),
                // basebackup.c matches these names at any depth.
                (&format!("base/16384/{dir}"), true, ExcludeContents),
            ],
        );
    }
}

#[test]
fn pg_wal_is_kept_empty_with_its_status_directories() {
    check(
        &Exclusions::postgres_default(),
        &[
            ("pg_wal", true, ExcludeContents),
            ("pg_wal/000000010000000000000001", false, Exclude),
            ("pg_wal/00000002.history", false, Exclude),
            ("pg_wal/archive_status", true, ExcludeContents),
            (
                "pg_wal/archive_status/000000010000000000000001.done",
                false,
                Exclude,
            ),
            ("pg_wal/summaries", true, ExcludeContents),
            (
                "pg_wal/summaries/0000000100000000010000280000000001000100.summary",
                false,
                Exclude,
            ),
            ("pg_wal/archive_status", false, Exclude),
            ("pg_wal/other_dir", true, Exclude),
            ("./pg_wal/000000010000000000000001", false, Exclude),
            // Only the top-level pg_wal is special.
            ("base/pg_wal", true, Include),
            ("pg_xlog", true, ExcludeContents),
            ("pg_xlog/000000010000000000000001", false, Exclude),
            ("pg_xlog/archive_status", true, ExcludeContents),
            ("pg_xlog/summaries", true, Exclude),
        ],
    );
}

#[test]
fn barman_rsync_adds_logs_and_recovery_files() {
    let barman = Exclusions::barman_rsync();
    check(
        &barman,
        &[
            ("log", true, ExcludeContents),
            ("log/postgresql-2026-11-22.log", false, Exclude),
            ("pg_log", true, ExcludeContents),
            ("pg_log/postgresql.csv", false, Exclude),
            ("recovery.conf", false, Exclude),
            ("standby.signal", false, Exclude),
            ("base/16384/log", true, Include),
            // PostgreSQL's own rules still apply.
            ("postmaster.pid", false, Exclude),
            ("pg_wal/archive_status", true, ExcludeContents),
        ],
    );
    check(
        &Exclusions::postgres_default(),
        &[
            ("recovery.conf", false, Include),
            ("standby.signal", false, Include),
        ],
    );
}

#[test]
fn explain_names_the_deciding_rule() {
    let exclusions = Exclusions::postgres_default();
    let rule = exclusions
        .explain(Path::new("pg_wal/000000010000000000000001"), false)
        .unwrap();
    assert_eq!(rule.matcher(), &Matcher::TopLevel("pg_wal".into()));
    assert_eq!(rule.action(), ExcludeContents);
    assert_eq!(
        rule.kept_subdirs().collect::<Vec<_>>(),
        ["archive_status", "summaries"]
    );
    assert!(rule.reason().contains("WAL archive"));
    let rule = exclusions
        .explain(Path::new("base/16384/t3_1"), false)
        .unwrap();
    assert_eq!(rule.matcher(), &Matcher::TempRelation);
    assert!(
        exclusions
            .explain(Path::new("base/16384/16400"), false)
            .is_none()
    );
    for set in [Exclusions::postgres_default(), Exclusions::barman_rsync()] {
        let rule = set
            .explain(Path::new("base/16384/.16400.4242.7.barman-tmp"), false)
            .unwrap();
        assert_eq!(rule.matcher(), &Matcher::BarmanTemp);
        assert_eq!(rule.action(), Exclude);
    }
    assert_eq!(
        Exclusions::none().is_excluded(Path::new(".PG_VERSION.1.2.barman-tmp"), false),
        Include
    );
    // Every built-in rule documents its reason.
    for rule in Exclusions::barman_rsync().rules() {
        assert!(rule.reason().len() > 10, "{rule:?}");
    }
}

#[test]
fn custom_rules_are_validated_and_applied_in_order() {
    let mut exclusions = Exclusions::none();
    assert_eq!(
        exclusions.is_excluded(Path::new("postmaster.pid"), false),
        Include
    );
    exclusions.push(Rule::exclude(Matcher::NamePrefix("core.".into()), "core dumps").unwrap());
    exclusions
        .push(Rule::exclude_contents(Matcher::Name("core.d".into()), "never reached").unwrap());
    check(
        &exclusions,
        &[("core.1234", false, Exclude), ("core.d", true, Exclude)],
    );
    for bad in ["", "a/b", ".", ".."] {
        let err = Rule::exclude(Matcher::Name(bad.to_owned().into()), "x").unwrap_err();
        assert!(
            matches!(err, Error::InvalidPattern { ref pattern } if pattern == bad),
            "{bad}"
        );
    }
    let err = Rule::exclude_contents(Matcher::TopLevel("x".into()), "x")
        .unwrap()
        .keep_empty_subdirs(["a/b"])
        .unwrap_err();
    assert!(err.to_string().contains("`a/b`"), "{err}");
}

#[test]
fn unlogged_relation_forks_point_at_their_init_fork() {
    let init = |p: &str| Exclusions::unlogged_init_fork(Path::new(p));
    assert_eq!(
        init("base/16384/16400"),
        Some(PathBuf::from("base/16384/16400_init"))
    );
    assert_eq!(
        init("base/16384/16400.3"),
        Some(PathBuf::from("base/16384/16400_init"))
    );
    assert_eq!(
        init("base/16384/16400_fsm"),
        Some(PathBuf::from("base/16384/16400_init"))
    );
    assert_eq!(
        init("base/16384/16400_vm"),
        Some(PathBuf::from("base/16384/16400_init"))
    );
    assert_eq!(
        init("pg_tblspc/16385/PG_15_202209061/16384/16500"),
        Some(PathBuf::from(
            "pg_tblspc/16385/PG_15_202209061/16384/16500_init"
        ))
    );
    assert_eq!(init("global/1262"), Some(PathBuf::from("global/1262_init")));
    assert_eq!(init("base/16384/16400_init"), None);
    assert_eq!(init("base/16384/PG_VERSION"), None);
    assert_eq!(init("base/16384/t3_16400"), None);
    assert_eq!(init("pg_xact/0000"), None);
    assert_eq!(init("16400"), None);
}
