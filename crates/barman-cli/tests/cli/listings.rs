//! The listing commands against the Barman 3.20.1 fixture catalog: the
//! outputs Barman printed (tests/fixtures/.../outputs) are the expected
//! values; catalogs derived from the fixture check the rules Barman's
//! outputs do not show (retention labels, failed backups, data files).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use super::{barman_output, fixture, fixture_json, fixture_setup};

/// The result lines of a fixture output (Barman's capture starts with the
/// WARNING it printed on stderr).
fn fixture_lines(name: &str) -> Vec<String> {
    fs::read_to_string(fixture(&format!("outputs/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("WARNING: "))
        .map(str::to_owned)
        .collect()
}

fn lines(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_owned).collect()
}

fn json_out(conf: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["-f", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = barman_output(conf, &all);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (code, v)
}

/// Appends `text` to the configuration file.
pub(super) fn add_conf(conf: &Path, text: &str) {
    let mut c = fs::read_to_string(conf).unwrap();
    c.push_str(text);
    fs::write(conf, c).unwrap();
}

/// Writes a backup.info for `id` in `home/<server>/meta`, derived from the
/// fixture's first backup with `changes` (key, value) applied.
pub(super) fn derived_backup(home: &Path, server: &str, id: &str, changes: &[(&str, &str)]) {
    let text = fs::read_to_string(fixture("catalog/pg/meta/20261122T041510-backup.info")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap();
        let value = changes
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(value, |(_, v)| *v);
        let _ = writeln!(out, "{key}={value}");
    }
    let meta = home.join(server).join("meta");
    fs::create_dir_all(&meta).unwrap();
    fs::write(meta.join(format!("{id}-backup.info")), out).unwrap();
}

#[test]
fn list_backups_matches_barman_console_and_json() {
    let (_dir, conf) = fixture_setup();
    let (code, stdout, stderr) = barman_output(&conf, &["list-backups", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines(&stdout), fixture_lines("list-backups.txt"));
    // The alias, and `all`.
    let (_, alias, _) = barman_output(&conf, &["list-backup", "all"]);
    assert_eq!(alias, stdout);

    let (code, doc) = json_out(&conf, &["list-backups", "pg"]);
    assert_eq!(code, 0);
    assert_eq!(doc, fixture_json("list-backups.json"));

    let (_, minimal, _) = barman_output(&conf, &["list-backups", "--minimal", "pg"]);
    assert_eq!(minimal, "20261122T041536\n20261122T041510\n");
    let (_, doc) = json_out(&conf, &["list-backups", "--minimal", "pg"]);
    assert_eq!(doc["pg"], json!(["20261122T041536", "20261122T041510"]));

    // The keep mark of the first backup shows no label without a policy
    // (list-backups-after-keep.txt is what Barman printed with it).
    assert_eq!(lines(&stdout), fixture_lines("list-backups-after-keep.txt"));
}

#[test]
fn show_backup_matches_barman_console_and_json() {
    let (_dir, conf) = fixture_setup();
    let (code, stdout, stderr) = barman_output(&conf, &["show-backup", "pg", "20261122T041536"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines(&stdout), fixture_lines("show-backup.txt"));
    // Shortcuts and the alias name the same backup.
    for (cmd, id) in [("show-backup", "last"), ("show-backups", "latest")] {
        let (_, same, _) = barman_output(&conf, &[cmd, "pg", id]);
        assert_eq!(same, stdout, "{cmd} {id}");
    }
    let (code, doc) = json_out(&conf, &["show-backup", "pg", "20261122T041536"]);
    assert_eq!(code, 0);
    assert_eq!(doc, fixture_json("show-backup.json"));

    // The first backup: its next backup, 3 WALs until it (04, 05, 06) in
    // 26 seconds of archive time (xlog.db: 1795320911.3077557 → 1795320937.7277567).
    let (_, doc) = json_out(&conf, &["show-backup", "pg", "first"]);
    let pg = &doc["pg"];
    assert_eq!(
        pg["catalog_information"]["previous_backup"],
        "- (this is the oldest base backup)"
    );
    assert_eq!(pg["catalog_information"]["next_backup"], "20261122T041536");
    let wal = &pg["wal_information"];
    assert_eq!(wal["no_of_files"], 3);
    assert_eq!(wal["disk_usage_bytes"], 3 * 16_777_216);
    assert_eq!(wal["last_available"], "000000010000000000000006");
    let rate = 4.0 / (1_795_320_937.727_756_7 - 1_795_320_911.307_755_7);
    assert!((wal["wal_rate_per_second"].as_f64().unwrap() - rate).abs() < 1e-9);
    assert_eq!(wal["wal_rate"], format!("{:.2}/hour", rate * 3600.0));
    assert_eq!(pg["base_backup_information"]["wal_num"], 1);
    // 1 - 54605825/54605825: nothing reused by the first backup.
    assert_eq!(
        pg["base_backup_information"]["resources_saved_percentage"],
        "0.00%"
    );

    let (code, _, stderr) = barman_output(&conf, &["show-backup", "pg", "20200101T000000"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("ERROR: Unknown backup '20200101T000000' for server 'pg'"),
        "{stderr}"
    );
    let (code, _, stderr) = barman_output(&conf, &["show-backup", "all", "last"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("You cannot use 'all' in a single server context"),
        "{stderr}"
    );
}

#[test]
fn list_files_matches_barman_and_lists_data_and_standalone() {
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    let expected: Vec<String> = fixture_lines("list-files-wal.txt")
        .iter()
        .map(|l| l.replace("/srv/demo/home", home.to_str().unwrap()))
        .collect();
    let (code, stdout, stderr) = barman_output(
        &conf,
        &["list-files", "--target", "wal", "pg", "20261122T041510"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines(&stdout), expected);

    // The fixture leaves the data files out: give the first backup some.
    let base = home.join("pg/base/20261122T041510");
    fs::create_dir_all(base.join("data/global")).unwrap();
    fs::create_dir_all(base.join("data/base/1")).unwrap();
    for f in [
        "data/PG_VERSION",
        "data/backup_label",
        "data/global/pg_control",
        "data/base/1/112",
        "data/base/1/1249",
    ] {
        fs::write(base.join(f), "x").unwrap();
    }
    let data: Vec<String> = [
        "data/PG_VERSION",
        "data/backup_label",
        "data/base/1/112",
        "data/base/1/1249",
        "data/global/pg_control",
    ]
    .iter()
    .map(|f| base.join(f).display().to_string())
    .collect();
    let (_, stdout, _) = barman_output(&conf, &["list-files", "--target", "data", "pg", "first"]);
    assert_eq!(lines(&stdout), data);
    // standalone (the default) = data + the WALs from begin_wal to end_wal.
    let mut standalone = data.clone();
    standalone.push(expected[0].clone());
    let (_, stdout, _) = barman_output(&conf, &["list-files", "pg", "first"]);
    assert_eq!(lines(&stdout), standalone);
    let mut full = data.clone();
    full.extend(expected.iter().cloned());
    let (_, stdout, _) = barman_output(&conf, &["list-files", "--target", "full", "pg", "first"]);
    assert_eq!(lines(&stdout), full);
    let (_, doc) = json_out(&conf, &["list-files", "--target", "full", "pg", "first"]);
    // Barman prints the paths as messages: JSON has them under _INFO.
    assert_eq!(doc["_INFO"], json!(full));

    // The newest backup: its WALs run to the end of the archive.
    let (_, stdout, _) = barman_output(&conf, &["list-files", "--target", "wal", "pg", "last"]);
    assert_eq!(lines(&stdout), expected[3..]);
    let (code, _, _) = barman_output(&conf, &["list-files", "--target", "bogus", "pg", "last"]);
    assert_eq!(code, 2, "clap refuses an unknown target");
}

#[test]
fn retention_labels_keep_marks_and_non_completed_backups() {
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    // An older DONE backup and a newer FAILED one around the fixture's two.
    derived_backup(
        &home,
        "pg",
        "20261120T100000",
        &[
            ("begin_time", "2026-11-20 10:00:00.000000+00:00"),
            ("end_time", "2026-11-20 10:00:05.000000+00:00"),
            ("begin_wal", "000000010000000000000001"),
            ("end_wal", "000000010000000000000001"),
            ("begin_xlog", "0/1000028"),
            ("end_xlog", "0/1000100"),
        ],
    );
    derived_backup(
        &home,
        "pg",
        "20261123T100000",
        &[
            ("status", "FAILED"),
            ("error", "failure copying files (connection lost)"),
        ],
    );
    add_conf(&conf, "retention_policy = REDUNDANCY 1\n");
    // REDUNDANCY 1 (§6.2), newest first: FAILED → "-"; 041536 VALID (slot 1);
    // 041510 kept standalone → KEEP:STANDALONE (slot 2); 20261120 OBSOLETE.
    let (code, stdout, stderr) = barman_output(&conf, &["list-backups", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "pg 20261123T100000 - R - FAILED",
            "pg 20261122T041536 - R - Sun Nov 22 04:15:37 2026 - Size: 68.1 MiB - WAL Size: 0 B",
            "pg 20261122T041510 - R - Sun Nov 22 04:15:11 2026 - Size: 68.1 MiB - WAL Size: 48.0 MiB - KEEP:STANDALONE",
            // 01 is not archived: Size is the backup alone; WAL Size counts
            // 03, up to the next DONE backup's end_wal (03; .backup files
            // are not WALs).
            "pg 20261120T100000 - R - Fri Nov 20 10:00:05 2026 - Size: 52.1 MiB - WAL Size: 16.0 MiB - OBSOLETE",
        ]
    );
    let (_, doc) = json_out(&conf, &["list-backups", "pg"]);
    let rows = doc["pg"].as_array().unwrap();
    assert_eq!(
        rows[0],
        json!({"backup_id": "20261123T100000", "backup_type": "rsync", "status": "FAILED"})
    );
    let labels: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r["retention_status"].as_str().unwrap())
        .collect();
    // VALID is "-" in Barman's JSON too.
    assert_eq!(labels, ["-", "KEEP:STANDALONE", "OBSOLETE"]);

    // show-backup always shows the label, VALID included.
    for (id, label) in [
        ("20261122T041536", "VALID"),
        ("20261122T041510", "KEEP:STANDALONE"),
        ("20261120T100000", "OBSOLETE"),
    ] {
        let (_, stdout, _) = barman_output(&conf, &["show-backup", "pg", id]);
        assert!(
            stdout.contains(&format!("    Retention Policy     : {label}\n")),
            "{id}: {stdout}"
        );
    }
    // A FAILED backup shows its error and no WAL or catalog section.
    let (_, stdout, _) = barman_output(&conf, &["show-backup", "pg", "last-failed"]);
    assert!(
        stdout.ends_with("  Error                  : failure copying files (connection lost)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("WAL information"), "{stdout}");
    let (_, doc) = json_out(&conf, &["show-backup", "pg", "last-failed"]);
    assert_eq!(
        doc["pg"]["error"],
        "failure copying files (connection lost)"
    );
    assert!(doc["pg"].get("wal_information").is_none());
    // Previous/next skip the FAILED backup: DONE backups only.
    let (_, doc) = json_out(&conf, &["show-backup", "pg", "20261122T041536"]);
    assert_eq!(
        doc["pg"]["catalog_information"]["next_backup"],
        "- (this is the latest base backup)"
    );

    // minimum_redundancy = 3 raises the redundancy to 3: nothing obsolete.
    add_conf(&conf, "minimum_redundancy = 3\n");
    let (_, stdout, _) = barman_output(&conf, &["list-backups", "pg"]);
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .ends_with("WAL Size: 16.0 MiB"),
        "{stdout}"
    );
}

#[test]
fn recovery_window_labels_potentially_obsolete_and_waiting_backups() {
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    add_conf(
        &conf,
        &format!(
            "\n[old]\ndescription = old backups\nconninfo = host=127.0.0.1 port=1 user=postgres\n\
             retention_policy = RECOVERY WINDOW OF 1 DAYS\nminimum_redundancy = 2\nbackup_directory = {}/old\n",
            home.display()
        ),
    );
    for (id, day) in [
        ("20200101T000000", "01"),
        ("20200102T000000", "02"),
        ("20200103T000000", "03"),
    ] {
        derived_backup(
            &home,
            "old",
            id,
            &[
                ("server_name", "old"),
                (
                    "begin_time",
                    &format!("2020-01-{day} 00:00:00.000000+00:00"),
                ),
                ("end_time", &format!("2020-01-{day} 00:10:00.000000+00:00")),
            ],
        );
    }
    derived_backup(
        &home,
        "old",
        "20200104T000000",
        &[
            ("server_name", "old"),
            ("status", "WAITING_FOR_WALS"),
            ("begin_time", "2020-01-04 00:00:00.000000+00:00"),
            ("end_time", "2020-01-04 00:10:00.000000+00:00"),
        ],
    );
    // RECOVERY WINDOW (§6.3), newest DONE first: 0103 ends before the point of
    // recoverability → VALID (the base for PITR to it); 0102 → OBSOLETE*
    // (only 1 valid < minimum_redundancy 2); 0101 → OBSOLETE. The
    // WAITING_FOR_WALS backup is "-" and says so.
    let (code, stdout, stderr) = barman_output(&conf, &["list-backups", "old"]);
    assert_eq!(code, 0, "{stderr}");
    let tails: Vec<String> = stdout
        .lines()
        .map(|l| l.rsplit(" - ").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        tails,
        ["WAITING_FOR_WALS", "WAL Size: 0 B", "OBSOLETE*", "OBSOLETE"]
    );
    assert!(stdout.starts_with("old 20200104T000000 - R - Sat Jan  4 00:10:00 2020 - Size: "));
}

#[test]
fn check_wal_archive_fails_on_a_used_archive_and_passes_on_an_empty_one() {
    let (dir, conf) = fixture_setup();
    let (code, stdout, stderr) = barman_output(&conf, &["check-wal-archive", "pg"]);
    assert_eq!((code, stdout.as_str()), (1, "Server pg:\n"));
    assert!(
        stderr.contains("ERROR: WAL archive check failed for server pg: Expected empty archive"),
        "{stderr}"
    );
    let (code, doc) = json_out(&conf, &["check-wal-archive", "pg"]);
    assert_eq!(code, 1);
    assert_eq!(
        doc["_ERROR"][0],
        "WAL archive check failed for server pg: Expected empty archive"
    );
    // Timeline 1 WALs (and .backup files) only: a new cluster on timeline 2 may use it.
    let (code, stdout, _) = barman_output(&conf, &["check-wal-archive", "--timeline", "2", "pg"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "Server pg:\n - WAL archive check for server pg passed\n"
    );
    let (code, _, stderr) = barman_output(&conf, &["check-wal-archive", "--timeline", "1", "pg"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Found 6 files in WAL archive equal to or newer than timeline 1"),
        "{stderr}"
    );
    add_conf(
        &conf,
        &format!(
            "\n[empty]\nconninfo = host=127.0.0.1 port=1\nbackup_directory = {}/empty\n",
            dir.path().display()
        ),
    );
    let (code, doc) = json_out(&conf, &["check-wal-archive", "empty"]);
    assert_eq!(code, 0);
    assert_eq!(doc["empty"], "WAL archive check for server empty passed");
}

#[test]
fn list_processes_names_the_holders_of_the_servers_locks() {
    use barman_core::catalog::{LockKind, try_acquire};

    let (dir, conf) = fixture_setup();
    let (code, stdout, _) = barman_output(&conf, &["list-processes", "pg"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "No active subprocesses found for server pg.\n")
    );
    let lock_dir = dir.path().join("home");
    // A lock file left behind with a PID in it, not held: not listed.
    fs::write(lock_dir.join(".pg-backup.lock"), "4242\n").unwrap();
    let held = try_acquire(&lock_dir, &LockKind::ReceiveWal("pg".into())).unwrap();
    let pid = std::process::id();
    let (code, stdout, _) = barman_output(&conf, &["list-process", "pg"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        format!("Active subprocesses for server pg:\n{pid} receive-wal\n")
    );
    let (_, doc) = json_out(&conf, &["list-processes", "pg"]);
    assert_eq!(doc["pg"], json!([{"name": "receive-wal", "pid": pid}]));
    drop(held);
    let (_, doc) = json_out(&conf, &["list-processes", "pg"]);
    assert_eq!(doc["pg"], json!([]));
}

#[test]
fn status_of_an_unreachable_server_says_so() {
    let (_dir, conf) = fixture_setup();
    let text = fs::read_to_string(&conf)
        .unwrap()
        .replace("port=55510", "port=1");
    fs::write(
        &conf,
        text + "retention_policy = REDUNDANCY 2\nminimum_redundancy = 3\n",
    )
    .unwrap();
    let (code, stdout, stderr) = barman_output(&conf, &["status", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "Server pg:",
            "\tDescription: bars test server pg",
            "\tActive: True",
            "\tDisabled: False",
            "\tActive configuration model: None",
            "\tPostgreSQL version: FAILED trying to get PostgreSQL version",
            "\tPassive node: False",
            "\tRetention policies: enforced (mode: auto, retention: REDUNDANCY 2, WAL retention: MAIN)",
            "\tNo. of available backups: 2",
            "\tFirst available backup: 20261122T041510",
            "\tLast available backup: 20261122T041536",
            "\tMinimum redundancy requirements: FAILED (2/3)",
        ]
    );
    let (_, doc) = json_out(&conf, &["status", "pg"]);
    assert_eq!(
        doc["pg"]["pg_version"],
        json!({"description": "PostgreSQL version", "message": "FAILED trying to get PostgreSQL version"})
    );
    assert_eq!(doc["pg"]["backups_number"]["message"], "2");
    assert_eq!(doc["pg"].as_object().unwrap().len(), 11);
}

#[test]
fn incremental_chain_shows_root_parent_children_and_type() {
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    add_conf(
        &conf,
        &format!(
            "\n[inc]\nconninfo = host=127.0.0.1 port=1\nbackup_method = postgres\nbackup_directory = {}/inc\n",
            home.display()
        ),
    );
    let (full, child) = ("20261201T100000", "20261201T110000");
    let common = [("server_name", "inc"), ("mode", "postgres")];
    derived_backup(
        &home,
        "inc",
        full,
        &[common[0], common[1], ("children_backup_ids", child)],
    );
    derived_backup(
        &home,
        "inc",
        child,
        &[
            common[0],
            common[1],
            ("parent_backup_id", full),
            ("cluster_size", "54775497"),
            ("deduplicated_size", "1000000"),
        ],
    );
    let (_, stdout, _) = barman_output(&conf, &["list-backups", "--minimal", "inc"]);
    assert_eq!(stdout, format!("{child}\n{full}\n"));
    let (_, stdout, _) = barman_output(&conf, &["list-backups", "inc"]);
    let letters: Vec<&str> = stdout
        .lines()
        .map(|l| l.split(" - ").nth(1).unwrap())
        .collect();
    assert_eq!(letters, ["I", "F"], "{stdout}");

    let (_, text, _) = barman_output(&conf, &["show-backup", "inc", child]);
    // postgres method: deduplication against cluster_size (Barman's rule).
    let ratio = 1.0 - 1_000_000.0 / 54_775_497.0;
    for line in [
        "    Backup Method        : postgres".to_owned(),
        "    Backup Type          : incremental".to_owned(),
        format!(
            "    Resources saved      : 51.3 MiB ({:.2}%)",
            ratio * 100.0
        ),
        format!("    Previous Backup      : {full}"),
        format!("    Root Backup          : {full}"),
        format!("    Parent Backup        : {full}"),
        "    Backup chain size    : 2".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
    }
    assert!(!text.contains("Children Backup(s)"), "{text}");
    let (_, doc) = json_out(&conf, &["show-backup", "inc", child]);
    let catalog = &doc["inc"]["catalog_information"];
    assert_eq!(catalog["root_backup_id"], full);
    assert_eq!(catalog["parent_backup_id"], full);
    assert_eq!(catalog["chain_size"], 2);
    assert_eq!(catalog["children_backup_ids"], Value::Null);
    assert_eq!(doc["inc"]["backup_type"], "incremental");

    let (_, text, _) = barman_output(&conf, &["show-backup", "inc", full]);
    assert!(text.contains("    Backup Type          : full\n"), "{text}");
    assert!(
        text.contains(&format!("    Children Backup(s)   : {child}\n")),
        "{text}"
    );
    assert!(!text.contains("Resources saved"), "{text}");
    let (_, doc) = json_out(&conf, &["show-backup", "inc", full]);
    assert_eq!(
        doc["inc"]["catalog_information"]["children_backup_ids"],
        json!([child])
    );
    assert!(
        doc["inc"]["catalog_information"]
            .get("root_backup_id")
            .is_none()
    );
}
