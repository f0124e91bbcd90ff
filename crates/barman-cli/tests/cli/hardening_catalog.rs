//! Issue 18 hardening against copies of the Barman 3.20.1 fixture catalog:
//! a truncated backup.info (item 9), secrets and the log file's mode (10),
//! bandwidth limits whose bytes per second overflow (11), options accepted
//! but not implemented (14), backups barman-rs cannot restore (16).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;

use super::listings::{add_conf, derived_backup};
use super::{barman, barman_output, fixture_setup};

const SECOND: &str = "20261122T041536";

fn all_output(stdout: &str, stderr: &str) -> String {
    format!("{stdout}\n{stderr}")
}

#[test]
fn a_truncated_backup_info_is_named_and_never_rewritten() {
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    let info = home.join(format!("pg/meta/{SECOND}-backup.info"));
    let text = fs::read_to_string(&info).unwrap();
    // Cut in the middle of `pgdata=...`, before `status`: what a crashed
    // non-atomic writer or a copy onto a full disk leaves.
    let cut = text.find("pgdata=").unwrap() + "pgdata=/srv/de".len();
    fs::write(&info, &text[..cut]).unwrap();
    let data = home.join(format!("pg/base/{SECOND}/data"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("PG_VERSION"), "15\n").unwrap();
    let before = fs::read(&info).unwrap();
    let name = info.display().to_string();
    for args in [
        &["cron"][..],
        &["cron"],
        &["list-backups", "pg"],
        &["check", "pg"],
        &["show-backup", "pg", "latest"],
    ] {
        let (code, stdout, stderr) = barman_output(&conf, args);
        let all = all_output(&stdout, &stderr);
        assert_eq!(
            fs::read(&info).unwrap(),
            before,
            "{args:?} rewrote {name}: {all}"
        );
        assert!(
            data.join("PG_VERSION").is_file(),
            "{args:?} removed the backup's data: {all}"
        );
        assert_ne!(code, 0, "{args:?}: {all}");
        assert!(
            all.contains(&name) && all.contains("truncated backup.info"),
            "{args:?}: {all}"
        );
    }
}

#[test]
fn options_accepted_but_not_implemented_are_refused_naming_them() {
    for (option, value) in [
        ("encryption", "gpg"),
        ("aws_profile", "prod"),
        ("primary_checkpoint_timeout", "30"),
    ] {
        let (dir, conf) = fixture_setup();
        // Appended to [pg], the configuration's last section.
        add_conf(&conf, &format!("{option} = {value}\n"));
        // A backup cron would mark FAILED (no backup process holds the lock).
        let home = dir.path().join("home");
        derived_backup(&home, "pg", "20261123T000000", &[("status", "STARTED")]);
        let started = home.join("pg/meta/20261123T000000-backup.info");
        let before = fs::read(&started).unwrap();
        let needle = format!("option {option} = {value} is accepted but not implemented");
        for args in [
            &["check", "pg"][..],
            &["backup", "pg"],
            &["archive-wal", "pg"],
            &["cron"],
            &["diagnose"],
        ] {
            let (code, stdout, stderr) = barman_output(&conf, args);
            let all = all_output(&stdout, &stderr);
            assert_ne!(code, 0, "{option}: {args:?}: {all}");
            assert!(all.contains(&needle), "{option}: {args:?}: {all}");
        }
        let (code, stdout, _) = barman_output(&conf, &["check", "--nagios", "pg"]);
        assert_eq!(code, 2, "{stdout}");
        assert!(stdout.contains("pg FAILED: configuration"), "{stdout}");
        // Barman's `configuration: FAILED` line, and nothing else checked.
        let (_, stdout, _) = barman_output(&conf, &["check", "pg"]);
        assert!(
            stdout.starts_with("Server pg:\n\tconfiguration: FAILED (")
                && stdout.lines().count() == 2,
            "{stdout}"
        );
        assert_eq!(
            fs::read(&started).unwrap(),
            before,
            "{option}: cron went on with the server"
        );
        // What only reads the catalog still works.
        let (code, stdout, stderr) = barman_output(&conf, &["list-backups", "pg"]);
        assert_eq!(code, 0, "{option}: {stdout}{stderr}");
        assert!(
            !dir.path().join("home/pg/incoming").exists(),
            "{option}: archive-wal or cron touched the catalog"
        );
    }
    // The harmless tuning options stay accepted.
    let (_dir, conf) = fixture_setup();
    add_conf(
        &conf,
        "keepalive_interval = 10\nparallel_jobs_start_batch_size = 2\ncombine_mode = link\n",
    );
    let (code, stdout, stderr) = barman_output(&conf, &["archive-wal", "pg"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn catalog_directories_given_as_urls_are_configuration_errors() {
    for (option, url) in [
        ("basebackups_directory", "s3://bucket/pg"),
        ("wals_directory", "gs://bucket/pg/wals"),
        (
            "basebackups_directory",
            "https://acct.blob.core.windows.net/container/pg",
        ),
    ] {
        let (dir, conf) = fixture_setup();
        add_conf(&conf, &format!("{option} = {url}\n"));
        let cwd = dir.path().join("cwd");
        fs::create_dir(&cwd).unwrap();
        for args in [
            &["check", "pg"][..],
            &["archive-wal", "pg"],
            &["list-servers"],
        ] {
            let out = barman()
                .current_dir(&cwd)
                .arg("-c")
                .arg(&conf)
                .args(args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_ne!(out.status.code(), Some(0), "{args:?}: {stderr}");
            assert!(
                stderr.contains("barman.conf:")
                    && stderr.contains(&format!("[pg] {option} = {url}")),
                "{args:?}: {stderr}"
            );
        }
        let created: Vec<_> = fs::read_dir(&cwd)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(created.is_empty(), "{url}: created {created:?}");
    }
}

#[test]
fn bandwidth_limits_whose_bytes_overflow_are_refused() {
    let (dir, conf) = fixture_setup();
    let max = u64::MAX / 1024;
    let over = (max + 1).to_string();
    let dest = dir.path().join("restore");
    let dest = dest.to_str().unwrap();
    for args in [
        &["backup", "pg", "--bwlimit", &over][..],
        &["recover", "pg", "latest", dest, "--bwlimit", &over],
    ] {
        let (code, stdout, stderr) = barman_output(&conf, args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("--bwlimit"), "{args:?}: {stderr}");
    }
    for (option, value) in [
        ("bandwidth_limit", over.clone()),
        ("tablespace_bandwidth_limit", format!("tbs1:{over}")),
    ] {
        let (_dir, conf) = fixture_setup();
        add_conf(&conf, &format!("{option} = {value}\n"));
        let (code, stdout, stderr) = barman_output(&conf, &["show-servers", "pg"]);
        assert_ne!(code, 0, "{option}: {stdout}");
        assert!(
            stderr.contains(&format!("[pg] {option} = {value}"))
                && stderr.contains(&max.to_string()),
            "{option}: {stderr}"
        );
    }
    // The largest limit that fits is a limit.
    let (_dir, conf) = fixture_setup();
    add_conf(&conf, &format!("bandwidth_limit = {max}\n"));
    let (code, stdout, stderr) = barman_output(&conf, &["show-servers", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("bandwidth_limit: {max}")),
        "{stdout}"
    );
}

#[test]
fn passwords_in_uri_parameters_stay_out_of_errors_and_the_log_created_0600() {
    let (dir, conf) = fixture_setup();
    let log = dir.path().join("barman.log");
    // Nothing listens on port 1.
    let text = fs::read_to_string(&conf).unwrap().replace(
        "conninfo = host=127.0.0.1 port=55510 user=postgres dbname=postgres",
        "conninfo = postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2&password=hunter2",
    );
    fs::write(&conf, text).unwrap();
    assert!(!log.exists());
    for args in [["check", "pg"], ["backup", "pg"], ["switch-wal", "pg"]] {
        // Under umask 000, the log must still be created 0600.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"umask 000; exec "$0" "$@""#)
            .arg(assert_cmd::cargo::cargo_bin("barman"))
            .arg("-c")
            .arg(&conf)
            .args(args)
            .env_remove("HOME")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        let logged = fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains("password=***"),
            "{args:?}: the log should show the redacted conninfo: {logged}"
        );
        for (what, text) in [
            ("stdout", &*stdout),
            ("stderr", &*stderr),
            ("log", &*logged),
        ] {
            assert!(!text.contains("hunter2"), "{args:?}: {what}: {text}");
        }
        let mode = fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{args:?}: log file mode {mode:o}");
    }
}

/// A backup.info for `id` derived from the fixture's first backup, and its
/// data directory holding `files`.
fn unusual_backup(home: &Path, id: &str, changes: &[(&str, &str)], files: &[&str]) {
    derived_backup(home, "pg", id, changes);
    let data = home.join(format!("pg/base/{id}/data"));
    for file in files {
        let path = data.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"\x1f\x8b not really").unwrap();
    }
}

#[test]
fn backups_barman_rs_cannot_restore_are_refused_before_writing_and_still_listed() {
    const TAR: &str = "20261123T000000";
    const INCREMENTAL: &str = "20261124T000000";
    const UNSAID: &str = "20261122T100000";
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    // As Barman 3.20 writes them: a gzip tar backup, a PostgreSQL 17
    // incremental one (postgres method).
    unusual_backup(
        &home,
        TAR,
        &[("compression", "gzip"), ("mode", "postgres")],
        &["base.tar.gz", "backup_manifest"],
    );
    unusual_backup(
        &home,
        INCREMENTAL,
        &[("parent_backup_id", SECOND), ("mode", "postgres")],
        &[
            "PG_VERSION",
            "global/pg_control",
            "base/5/INCREMENTAL.16384",
        ],
    );
    // Its backup.info says nothing, its files do.
    unusual_backup(&home, UNSAID, &[], &["base.tar.gz"]);
    let dest = dir.path().join("restore");
    // A compressed tar backup is unpacked: this one's archive is damaged
    // (or missing), which fails naming it.
    let (code, stdout, stderr) = barman_output(
        &conf,
        &["recover", "--get-wal", "pg", TAR, dest.to_str().unwrap()],
    );
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains(".tar.gz"), "{stderr}");
    assert!(
        !dest.exists() || fs::read_dir(&dest).unwrap().next().is_none(),
        "something was installed"
    );
    let _ = fs::remove_dir(&dest);
    for (asked, id, reason) in [
        (UNSAID, UNSAID, "no global/pg_control"),
        // An incremental backup whose parent's files are gone: its chain
        // cannot be combined.
        (
            INCREMENTAL,
            INCREMENTAL,
            "its backup chain is broken: the directory",
        ),
        ("latest", INCREMENTAL, "backup 20261122T041536"),
        ("auto", INCREMENTAL, "its backup chain is broken"),
    ] {
        let (code, stdout, stderr) = barman_output(
            &conf,
            &["recover", "--get-wal", "pg", asked, dest.to_str().unwrap()],
        );
        assert_ne!(code, 0, "{asked}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("backup {id} of server `pg` cannot be restored"))
                && stderr.contains(reason),
            "{asked}: {stderr}"
        );
        assert!(!dest.exists(), "{asked}: the destination was created");
    }
    // Still listed and shown.
    let (code, stdout, stderr) = barman_output(&conf, &["list-backups", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(TAR) && stdout.contains(INCREMENTAL),
        "{stdout}"
    );
    for id in [TAR, INCREMENTAL] {
        let (code, stdout, stderr) = barman_output(&conf, &["show-backup", "pg", id]);
        assert_eq!(code, 0, "{id}: {stderr}");
        assert!(stdout.contains(id), "{stdout}");
    }

    // A passive node refuses to synchronise them, and its cron skips them
    // (rather than retrying the first one forever).
    let (code, sync_info, stderr) = barman_output(&conf, &["sync-info", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    let mut doc: Value = serde_json::from_str(&sync_info).unwrap();
    doc["wals"] = Value::Array(Vec::new());
    let primary_json = dir.path().join("primary.json");
    fs::write(&primary_json, doc.to_string()).unwrap();
    let fake_ssh = dir.path().join("fake-primary.sh");
    fs::write(&fake_ssh, format!("cat '{}'\n", primary_json.display())).unwrap();
    let passive = home.join("passive");
    fs::create_dir_all(passive.join("meta")).unwrap();
    for id in ["20261122T041510", SECOND, UNSAID] {
        let name = format!("{id}-backup.info");
        fs::copy(
            home.join("pg/meta").join(&name),
            passive.join("meta").join(&name),
        )
        .unwrap();
    }
    fs::write(passive.join("primary.info"), doc.to_string()).unwrap();
    add_conf(
        &conf,
        &format!(
            "\n[passive]\nprimary_ssh_command = sh {}\nbackup_directory = {}\n",
            fake_ssh.display(),
            passive.display()
        ),
    );
    let (code, stdout, stderr) = barman_output(&conf, &["sync-backup", "passive", TAR]);
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "backup {TAR} of server `passive` cannot be synchronised"
        )) && stderr.contains("compression = gzip"),
        "{stderr}"
    );
    assert!(!passive.join(format!("meta/{TAR}-backup.info")).exists());
    let (_, stdout, stderr) = barman_output(&conf, &["-f", "json", "cron"]);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let servers = report["cron"]["servers"].as_array().unwrap();
    let passive_report = servers.iter().find(|s| s["server"] == "passive").unwrap();
    assert!(passive_report["primary_info"] == true, "{report}");
    assert!(passive_report["sync_backup_started"].is_null(), "{report}");
    let messages = report["cron"]["messages"].to_string();
    for id in [TAR, INCREMENTAL] {
        assert!(
            messages.contains(&format!("backup {id} of the primary is not synchronised")),
            "{messages}"
        );
    }
}

/// `gpg --encrypt` of `input` to `output` with a throw-away key, as Barman
/// 3.14+ encrypts an archived WAL (`--recipient KEY --encrypt`).
fn gpg_encrypt(dir: &Path, input: &Path, output: &Path) {
    let home = dir.join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let out = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .expect("gpg (Debian package gnupg) must be installed");
        assert!(out.status.success(), "gpg {args:?}: {out:?}");
    };
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "barman-test@example.invalid",
        "default",
        "default",
        "never",
    ]);
    gpg(&[
        "--trust-model",
        "always",
        "--compress-level",
        "0",
        "--recipient",
        "barman-test@example.invalid",
        "--encrypt",
        "--output",
        output.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
}

/// Barman 3.14+ stores an encrypted WAL under its own name (xlog.db says
/// `gpg` in its fifth column). Served as it is, PostgreSQL would take it
/// for the end of the archive and end recovery early: get-wal refuses to
/// serve it and recover refuses a backup whose WALs include it, before
/// writing anything.
#[test]
fn encrypted_wals_are_never_served_or_staged() {
    const RESTORABLE: &str = "20261122T050000";
    const WAL: &str = "000000010000000000000004";
    let (dir, conf) = fixture_setup();
    let home = dir.path().join("home");
    let plain = dir.path().join("plain-wal");
    fs::write(&plain, vec![0x10u8; 1 << 16]).unwrap();
    let archived = home.join("pg/wals/0000000100000000").join(WAL);
    gpg_encrypt(dir.path(), &plain, &archived);

    let (code, stdout, stderr) = barman_output(&conf, &["get-wal", "pg", WAL]);
    assert_ne!(code, 0, "get-wal served an encrypted WAL: {stderr}");
    assert!(stdout.is_empty(), "{} bytes served", stdout.len());
    assert!(
        stderr.contains(WAL) && stderr.contains("is encrypted"),
        "{stderr}"
    );

    let xlogdb = home.join("pg/wals/pg-xlog.db");
    let text = fs::read_to_string(&xlogdb).unwrap();
    let marked = text.replace(
        &format!("{WAL}\t16777216\t1795320915.8997614\tNone\tNone"),
        &format!("{WAL}\t16777216\t1795320915.8997614\tNone\tgpg"),
    );
    assert_ne!(marked, text, "the fixture's xlog.db line changed");
    fs::write(&xlogdb, marked).unwrap();
    unusual_backup(&home, RESTORABLE, &[], &["PG_VERSION", "global/pg_control"]);
    let dest = dir.path().join("restore");
    for extra in [&["--get-wal"][..], &[]] {
        let mut args = vec!["recover"];
        args.extend_from_slice(extra);
        args.extend(["pg", RESTORABLE, dest.to_str().unwrap()]);
        let (code, stdout, stderr) = barman_output(&conf, &args);
        assert_ne!(code, 0, "{extra:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("WAL {WAL} of server `pg` is encrypted")),
            "{extra:?}: {stderr}"
        );
        assert!(!dest.exists(), "{extra:?}: the destination was created");
    }
}
