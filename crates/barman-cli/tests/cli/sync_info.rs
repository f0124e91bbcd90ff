//! `barman sync-info` against the Barman 3.20.1 fixture catalog: the
//! document Barman printed (outputs/sync-info.json) is the expected value;
//! the LAST_WAL / LAST_POS forms and the refusals of the passive commands.

use std::fs;

use serde_json::Value;

use super::{barman_output, fixture, fixture_setup};

fn doc(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn barman_doc() -> Value {
    let text = fs::read_to_string(fixture("outputs/sync-info.json")).unwrap();
    doc(&text[text.find('{').unwrap()..])
}

fn names(doc: &Value) -> Vec<&str> {
    doc["wals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect()
}

#[test]
fn sync_info_is_what_barman_prints() {
    let (_dir, conf) = fixture_setup();
    let (code, stdout, stderr) = barman_output(&conf, &["sync-info", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    let ours = doc(&stdout);
    let theirs = barman_doc();
    let keys = |d: &Value| d.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&theirs));
    for key in ["last_position", "last_name", "backups", "wals"] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    // Same key order in every backup (sorted fields, then the id and the
    // ISO times), four-space indent.
    for (id, backup) in theirs["backups"].as_object().unwrap() {
        assert_eq!(keys(&ours["backups"][id]), keys(backup), "{id}");
    }
    assert!(
        stdout.starts_with("{\n    \"last_position\": 326,\n"),
        "{stdout}"
    );
    assert!(ours["version"].as_str().unwrap().contains("barman-rs"));
    // The configuration carries Barman's keys (values are this test's paths).
    let mut ours_cfg = keys(&ours["config"]);
    let mut theirs_cfg = keys(&theirs["config"]);
    ours_cfg.sort();
    theirs_cfg.sort();
    assert_eq!(ours_cfg, theirs_cfg);
    assert_eq!(ours["config"]["name"], "pg");
}

#[test]
fn sync_info_from_a_position() {
    let (_dir, conf) = fixture_setup();
    // The hint matches (Barman's own answer): nothing new.
    let (code, stdout, stderr) = barman_output(
        &conf,
        &[
            "sync-info",
            "pg",
            "000000010000000000000006.00000028.backup",
            "326",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let d = doc(&stdout);
    assert!(names(&d).is_empty(), "{d}");
    assert_eq!(d["last_position"], 326);
    // A stale hint: rescanned, LAST_WAL still the limit.
    let (code, stdout, _) =
        barman_output(&conf, &["sync-info", "pg", "000000010000000000000004", "7"]);
    assert_eq!(code, 0);
    assert_eq!(
        names(&doc(&stdout)),
        [
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.00000028.backup"
        ]
    );
    // Outside the archive: exit 1, as Barman (the passive then retries
    // without a position).
    for (wal, word) in [
        ("000000010000000000000009", "newer"),
        ("000000010000000000000001", "older"),
    ] {
        let (code, stdout, stderr) = barman_output(&conf, &["sync-info", "pg", wal]);
        assert_eq!(code, 1, "{wal}: {stdout}");
        assert!(stderr.contains(word), "{stderr}");
    }
    let (code, _, stderr) = barman_output(&conf, &["sync-info", "pg", "../etc/passwd"]);
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn sync_commands_need_a_passive_node() {
    let (_dir, conf) = fixture_setup();
    for args in [
        &["sync-backup", "pg", "20261122T041510"][..],
        &["sync-wals", "pg"],
        &["sync-info", "--primary", "pg"],
    ] {
        let (code, _, stderr) = barman_output(&conf, args);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            stderr.contains("only for passive nodes"),
            "{args:?}: {stderr}"
        );
    }
}
