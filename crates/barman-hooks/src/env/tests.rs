use super::*;
use crate::event::{HookKind, HookPhase};

fn point(event: HookEvent, phase: HookPhase, kind: HookKind) -> HookPoint {
    HookPoint::new(event, phase, kind)
}

fn env(point: HookPoint) -> HookEnv {
    HookEnv::new(point, "3.20.1", "pg", "/etc/barman.conf")
}

fn pairs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn backup() -> BackupVars {
    BackupVars::new(
        "20261122T041536",
        "/srv/demo/barman/pg/base/20261122T041536",
        "/srv/demo/barman/pg/meta/20261122T041536-backup.info",
        "EMPTY",
    )
    .previous_id("20261122T041510")
}

#[test]
fn pre_backup_retry_hook_gets_common_and_backup_vars_in_order() {
    let vars = env(point(HookEvent::Backup, HookPhase::Pre, HookKind::Retry))
        .error("ignored for backup hooks")
        .backup(backup())
        .vars()
        .unwrap();
    assert_eq!(
        pairs(&vars),
        [
            ("BARMAN_VERSION", "3.20.1"),
            ("BARMAN_SERVER", "pg"),
            ("BARMAN_CONFIGURATION", "/etc/barman.conf"),
            ("BARMAN_HOOK", "backup_retry_script"),
            ("BARMAN_RETRY", "1"),
            ("BARMAN_PHASE", "pre"),
            ("BARMAN_ERROR", ""),
            (
                "BARMAN_BACKUP_DIR",
                "/srv/demo/barman/pg/base/20261122T041536"
            ),
            (
                "BARMAN_BACKUP_INFO_PATH",
                "/srv/demo/barman/pg/meta/20261122T041536-backup.info"
            ),
            ("BARMAN_BACKUP_ID", "20261122T041536"),
            ("BARMAN_PREVIOUS_ID", "20261122T041510"),
            ("BARMAN_NEXT_ID", ""),
            ("BARMAN_STATUS", "EMPTY"),
        ]
    );
}

#[test]
fn post_delete_hook_reports_the_backups_error() {
    let b = backup()
        .next_id("20261123T000000")
        .error("failure copy (boom)");
    let vars = env(point(
        HookEvent::Delete,
        HookPhase::Post,
        HookKind::Standard,
    ))
    .backup(b)
    .vars()
    .unwrap();
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("BARMAN_HOOK"), Some("delete_script"));
    assert_eq!(get("BARMAN_RETRY"), Some("0"));
    assert_eq!(get("BARMAN_PHASE"), Some("post"));
    assert_eq!(get("BARMAN_ERROR"), Some("failure copy (boom)"));
    assert_eq!(get("BARMAN_NEXT_ID"), Some("20261123T000000"));
    assert_eq!(get("BARMAN_DESTINATION_DIRECTORY"), None);
    // Each variable appears once.
    let mut names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), vars.len());
}

#[test]
fn recovery_hook_encodes_tablespaces_and_non_empty_options_as_sorted_json() {
    let recovery = RecoveryVars::new("/var/lib/pg/restore")
        .tablespace("tbs2", "/mnt/b")
        .tablespace("tbs1", "/mnt/a")
        .remote_command("ssh postgres@db")
        .option(
            "target_time",
            JsonScalar::Text("2026-11-22 05:00:00+00:00".into()),
        )
        .option("target_xid", JsonScalar::Text(String::new()))
        .option("target_immediate", JsonScalar::Bool(false))
        .option("target_tli", JsonScalar::Int(2))
        .option("standby_mode", JsonScalar::Bool(true));
    let vars = env(point(
        HookEvent::Recovery,
        HookPhase::Post,
        HookKind::Standard,
    ))
    .error("recovery failed")
    .backup(backup().error("backup error is overridden"))
    .recovery(recovery)
    .vars()
    .unwrap();
    let tail: Vec<(&str, &str)> = pairs(&vars)[13..].to_vec();
    assert_eq!(
        tail,
        [
            ("BARMAN_DESTINATION_DIRECTORY", "/var/lib/pg/restore"),
            (
                "BARMAN_TABLESPACES",
                r#"{"tbs1": "/mnt/a", "tbs2": "/mnt/b"}"#
            ),
            ("BARMAN_REMOTE_COMMAND", "ssh postgres@db"),
            (
                "BARMAN_RECOVER_OPTIONS",
                r#"{"standby_mode": true, "target_time": "2026-11-22 05:00:00+00:00", "target_tli": 2}"#
            ),
        ]
    );
    assert_eq!(pairs(&vars)[6], ("BARMAN_ERROR", "recovery failed"));
    assert_eq!(pairs(&vars)[3], ("BARMAN_HOOK", "recovery_script"));
}

#[test]
fn recovery_without_relocation_or_options_leaves_them_empty() {
    let recovery =
        RecoveryVars::new("/restore").option("target_name", JsonScalar::Text(String::new()));
    let vars = env(point(HookEvent::Recovery, HookPhase::Pre, HookKind::Retry))
        .backup(backup())
        .recovery(recovery)
        .vars()
        .unwrap();
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("BARMAN_TABLESPACES"), Some(""));
    assert_eq!(get("BARMAN_RECOVER_OPTIONS"), Some(""));
    assert_eq!(get("BARMAN_REMOTE_COMMAND"), Some(""));
    assert_eq!(get("BARMAN_ERROR"), Some(""));
}

#[test]
fn archive_hook_gets_wal_vars() {
    let wal = WalVars::new(
        "000000010000000000000006",
        "/srv/demo/barman/pg/incoming/000000010000000000000006",
        16_777_216,
        1_795_320_937.0,
    );
    let vars = env(point(
        HookEvent::Archive,
        HookPhase::Pre,
        HookKind::Standard,
    ))
    .wal(wal.clone())
    .vars()
    .unwrap();
    assert_eq!(
        pairs(&vars)[3..],
        [
            ("BARMAN_HOOK", "archive_script"),
            ("BARMAN_RETRY", "0"),
            ("BARMAN_PHASE", "pre"),
            ("BARMAN_ERROR", ""),
            ("BARMAN_SEGMENT", "000000010000000000000006"),
            (
                "BARMAN_FILE",
                "/srv/demo/barman/pg/incoming/000000010000000000000006"
            ),
            ("BARMAN_SIZE", "16777216"),
            ("BARMAN_TIMESTAMP", "1795320937.0"),
            ("BARMAN_COMPRESSION", ""),
        ]
    );
    let vars = env(point(
        HookEvent::WalDelete,
        HookPhase::Post,
        HookKind::Retry,
    ))
    .error("disk full")
    .wal(
        WalVars {
            timestamp: 1_795_320_937.25,
            ..wal
        }
        .compression("zstd"),
    )
    .vars()
    .unwrap();
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("BARMAN_HOOK"), Some("wal_delete_retry_script"));
    assert_eq!(get("BARMAN_TIMESTAMP"), Some("1795320937.25"));
    assert_eq!(get("BARMAN_COMPRESSION"), Some("zstd"));
    assert_eq!(get("BARMAN_ERROR"), Some("disk full"));
}

#[test]
fn refuses_missing_or_foreign_variable_sets() {
    let backup_point = point(HookEvent::Backup, HookPhase::Pre, HookKind::Standard);
    let err = env(backup_point).vars().unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingVariables {
                needed: "backup",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "pre_backup_script hook environment is missing the backup variables"
    );

    let wal = WalVars::new("000000010000000000000001", "/x", 1, 0.0);
    let err = env(backup_point)
        .backup(backup())
        .wal(wal.clone())
        .vars()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedVariables {
                unexpected: "WAL",
                ..
            }
        ),
        "{err}"
    );

    let recovery_point = point(HookEvent::Recovery, HookPhase::Pre, HookKind::Standard);
    let err = env(recovery_point).backup(backup()).vars().unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingVariables {
                needed: "recovery",
                ..
            }
        ),
        "{err}"
    );

    let archive_point = point(HookEvent::Archive, HookPhase::Post, HookKind::Standard);
    let err = env(archive_point)
        .wal(wal)
        .backup(backup())
        .vars()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedVariables {
                unexpected: "backup",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn refuses_nul_bytes() {
    let err = env(point(HookEvent::Backup, HookPhase::Pre, HookKind::Standard))
        .backup(BackupVars::new("id", "/dir\0x", "/info", "EMPTY"))
        .vars()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NulInValue {
                name: "BARMAN_BACKUP_DIR"
            }
        ),
        "{err}"
    );
}
